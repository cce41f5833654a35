/* SPDX-License-Identifier: MIT */
/*
 * Replay driver for fuzz targets: feeds every regular file under the given directories (or the
 * given files) to LLVMFuzzerTestOneInput once. Linked with each target so that the suite
 * replays the whole corpus, including past crashers, on every build (systemd's fuzz-main.c).
 */
#include <dirent.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static int run_file(const char *path)
{
	FILE *f = fopen(path, "rb");
	uint8_t *buf = NULL;
	long len;
	int r = -1;

	if (!f)
		return -1;
	if (fseek(f, 0, SEEK_END) == 0 && (len = ftell(f)) >= 0 && fseek(f, 0, SEEK_SET) == 0) {
		buf = malloc((size_t)len + 1);
		if (buf && fread(buf, 1, (size_t)len, f) == (size_t)len) {
			LLVMFuzzerTestOneInput(buf, (size_t)len);
			r = 0;
		}
	}
	free(buf);
	fclose(f);
	return r;
}

int main(int argc, char **argv)
{
	int i, n = 0, failed = 0;

	for (i = 1; i < argc; i++) {
		struct stat st;
		DIR *d;
		struct dirent *de;

		if (stat(argv[i], &st) < 0) {
			fprintf(stderr, "fuzz replay: cannot open '%s'\n", argv[i]);
			return 1;
		}
		if (!S_ISDIR(st.st_mode)) {
			failed |= run_file(argv[i]) < 0;
			n++;
			continue;
		}
		d = opendir(argv[i]);
		if (!d)
			return 1;
		while ((de = readdir(d))) {
			char path[4096];
			if (de->d_name[0] == '.')
				continue;
			snprintf(path, sizeof(path), "%s/%s", argv[i], de->d_name);
			if (stat(path, &st) == 0 && S_ISREG(st.st_mode)) {
				failed |= run_file(path) < 0;
				n++;
			}
		}
		closedir(d);
	}
	printf("replayed %d inputs\n", n);
	if (n == 0) {
		fprintf(stderr, "fuzz replay: empty corpus\n");
		return 1;
	}
	return failed;
}
