/* SPDX-License-Identifier: MIT */
/*
 * dashboard config: defaults, every key of the dump documented in dashboard/README.md, the
 * per-site stale_after list, rules between keys, and a dump that reads back to the same values.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "config.h"

static const char *readme_path;

static char *write_tmp(const char *text)
{
	static char path[64];
	FILE *f;
	int fd;

	snprintf(path, sizeof(path), "/tmp/dash-config-XXXXXX");
	fd = mkstemp(path);
	assert_true(fd >= 0);
	f = fdopen(fd, "w");
	assert_non_null(f);
	fputs(text, f);
	fclose(f);
	return path;
}

static int load_text(struct dash_config *cfg, const char *text, char *err, size_t errsz)
{
	char *path = write_tmp(text);
	int r;

	dash_config_defaults(cfg);
	r = dash_config_load(cfg, path, err, errsz);
	unlink(path);
	return r;
}

static void test_defaults(void **state)
{
	struct dash_config cfg;
	char err[256];

	(void)state;
	dash_config_defaults(&cfg);
	assert_string_equal(cfg.broker_url, "tcp://127.0.0.1:1883");
	assert_string_equal(cfg.http_listen, "127.0.0.1:8080");
	assert_int_equal(cfg.http_max_body, 64 * 1024);
	assert_int_equal(cfg.http_max_connections, 256);
	assert_int_equal(cfg.session_ttl_s, 12 * 3600);
	assert_int_equal(cfg.login_rate.count, 5);
	assert_int_equal(cfg.login_rate.interval_s, 60);
	assert_string_equal(cfg.db, "/var/lib/cradle-dashboard/cradle.db");
	assert_int_equal(cfg.history_days, 90);
	assert_int_equal(cfg.stale_after_s, 72 * 3600);
	assert_int_equal(cfg.n_site_stale, 0);
	assert_int_equal(cfg.missing_after_s, 7 * 86400);
	assert_string_equal(cfg.command_key, "/var/lib/cradle-dashboard/command.key");
	assert_int_equal(cfg.command_ttl_s, 600);
	assert_int_equal(cfg.log_level, LOG_LEVEL_INFO);
	assert_string_equal(cfg.metrics_listen, ""); /* off */
	assert_int_equal(dash_config_check(&cfg, err, sizeof(err)), 0);
}

static void test_site_stale(void **state)
{
	struct dash_config cfg;
	char err[256] = "";

	(void)state;
	assert_int_equal(load_text(&cfg,
	                           "stale_after 2d\nstale_after_site north=48h , south = 5d\n", err,
	                           sizeof(err)),
	                 0);
	assert_int_equal(cfg.n_site_stale, 2);
	assert_int_equal(dash_config_stale_after(&cfg, "north"), 48 * 3600);
	assert_int_equal(dash_config_stale_after(&cfg, "south"), 5 * 86400);
	assert_int_equal(dash_config_stale_after(&cfg, "east"), 2 * 86400);
	assert_int_equal(dash_config_stale_after(&cfg, ""), 2 * 86400);
	assert_int_equal(dash_config_stale_after(&cfg, NULL), 2 * 86400);

	assert_int_equal(load_text(&cfg, "stale_after_site north\n", err, sizeof(err)), -EINVAL);
	assert_non_null(strstr(err, ":1:"));
	assert_non_null(strstr(err, "SITE=DURATION"));
	assert_int_equal(load_text(&cfg, "stale_after_site north=soon\n", err, sizeof(err)),
	                 -EINVAL);
	assert_int_equal(load_text(&cfg, "stale_after_site a=1h,a=2h\n", err, sizeof(err)),
	                 -EINVAL);
	assert_non_null(strstr(err, "twice"));
	assert_int_equal(load_text(&cfg, "stale_after_site =1h\n", err, sizeof(err)), -EINVAL);
}

static void test_errors(void **state)
{
	struct dash_config cfg;
	char err[256] = "";

	(void)state;
	assert_int_equal(load_text(&cfg, "no_such_key 1\n", err, sizeof(err)), -EINVAL);
	assert_non_null(strstr(err, "no_such_key"));
	assert_int_equal(load_text(&cfg, "history_days 0\n", err, sizeof(err)), -EINVAL);
	assert_int_equal(load_text(&cfg, "missing_after 7x\n", err, sizeof(err)), -EINVAL);
	assert_int_equal(load_text(&cfg, "login_rate 5\n", err, sizeof(err)), -EINVAL);

	assert_int_equal(load_text(&cfg, "tls_cert /x.pem\n", err, sizeof(err)), 0);
	assert_int_equal(dash_config_check(&cfg, err, sizeof(err)), -EINVAL);
	assert_non_null(strstr(err, "tls_key"));
	assert_int_equal(load_text(&cfg, "http_listen localhost\n", err, sizeof(err)), 0);
	assert_int_equal(dash_config_check(&cfg, err, sizeof(err)), -EINVAL);
	assert_int_equal(load_text(&cfg, "http_listen 0.0.0.0:99999\n", err, sizeof(err)), 0);
	assert_int_equal(dash_config_check(&cfg, err, sizeof(err)), -EINVAL);
	assert_int_equal(load_text(&cfg, "http_listen [::1]:8443\n", err, sizeof(err)), 0);
	assert_int_equal(dash_config_check(&cfg, err, sizeof(err)), 0);
	/* metrics_listen: ADDR:PORT like http_listen, and not the same one */
	assert_int_equal(load_text(&cfg, "metrics_listen 9108\n", err, sizeof(err)), 0);
	assert_int_equal(dash_config_check(&cfg, err, sizeof(err)), -EINVAL);
	assert_non_null(strstr(err, "metrics_listen"));
	assert_int_equal(load_text(&cfg, "metrics_listen 127.0.0.1:8080\n", err, sizeof(err)), 0);
	assert_int_equal(dash_config_check(&cfg, err, sizeof(err)), -EINVAL);
	assert_non_null(strstr(err, "differ"));
	assert_int_equal(load_text(&cfg, "metrics_listen [::1]:9108\n", err, sizeof(err)), 0);
	assert_int_equal(dash_config_check(&cfg, err, sizeof(err)), 0);
	assert_int_equal(load_text(&cfg, "mqtt_share_group a/b\n", err, sizeof(err)), 0);
	assert_int_equal(dash_config_check(&cfg, err, sizeof(err)), -EINVAL);
	/* certificates with a plaintext URL: Paho would connect in plaintext; refused */
	assert_int_equal(load_text(&cfg, "mqtt_cafile /ca.pem\n", err, sizeof(err)), 0);
	assert_int_equal(dash_config_check(&cfg, err, sizeof(err)), -EINVAL);
	assert_non_null(strstr(err, "plaintext"));
	assert_int_equal(load_text(&cfg,
	                           "broker_url mqtt://b:1883\nmqtt_certfile /c.pem\n"
	                           "mqtt_keyfile /c.key\n",
	                           err, sizeof(err)),
	                 0);
	assert_int_equal(dash_config_check(&cfg, err, sizeof(err)), -EINVAL);
	assert_int_equal(
	        load_text(&cfg, "broker_url ssl://b:8883\nmqtt_cafile /ca.pem\n", err, sizeof(err)),
	        0);
	assert_int_equal(dash_config_check(&cfg, err, sizeof(err)), 0);
	assert_int_equal(load_text(&cfg, "broker_url http://b:80\n", err, sizeof(err)), 0);
	assert_int_equal(dash_config_check(&cfg, err, sizeof(err)), -EINVAL);
	assert_non_null(strstr(err, "broker_url"));
}

/* The dump of a configured file parses back to the same structure; the password is masked. */
static void test_dump_roundtrip(void **state)
{
	struct dash_config a, b;
	char err[256] = "", *buf = NULL, *path;
	size_t len = 0;
	FILE *f;

	(void)state;
	assert_int_equal(load_text(&a,
	                           "broker_url tcp://10.0.0.1:1883\nmqtt_share_group dash\n"
	                           "stale_after_site north=48h,south=5d\nhistory_days 30\n"
	                           "log_level debug\nlogin_rate 10/5m\n",
	                           err, sizeof(err)),
	                 0);
	f = open_memstream(&buf, &len);
	assert_non_null(f);
	assert_int_equal(dash_config_dump(&a, f), 0);
	fclose(f);
	assert_non_null(strstr(buf, "stale_after_site north=2d,south=5d\n"));
	path = write_tmp(buf);
	dash_config_defaults(&b);
	assert_int_equal(dash_config_load(&b, path, err, sizeof(err)), 0);
	unlink(path);
	assert_memory_equal(&a, &b, sizeof(a));
	free(buf);

	assert_int_equal(load_text(&a, "mqtt_password hunter2\n", err, sizeof(err)), 0);
	f = open_memstream(&buf, &len);
	assert_int_equal(dash_config_dump(&a, f), 0);
	fclose(f);
	assert_null(strstr(buf, "hunter2"));
	free(buf);
}

/* Every key the dump writes has a row `key` in dashboard/README.md. */
static void test_documented(void **state)
{
	struct dash_config cfg;
	char *buf = NULL, *readme, *save = NULL;
	size_t len = 0;
	long n;
	FILE *f;

	(void)state;
	if (!readme_path)
		skip();
	f = fopen(readme_path, "r");
	assert_non_null(f);
	fseek(f, 0, SEEK_END);
	n = ftell(f);
	rewind(f);
	readme = calloc(1, (size_t)n + 1);
	assert_int_equal(fread(readme, 1, (size_t)n, f), (size_t)n);
	fclose(f);

	dash_config_defaults(&cfg);
	f = open_memstream(&buf, &len);
	assert_int_equal(dash_config_dump(&cfg, f), 0);
	fclose(f);
	for (char *line = strtok_r(buf, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
		char key[80];

		*strchr(line, ' ') = '\0';
		snprintf(key, sizeof(key), "| `%s` |", line);
		if (!strstr(readme, key))
			fail_msg("key %s is not documented in %s", line, readme_path);
	}
	free(buf);
	free(readme);
}

int main(int argc, char **argv)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_defaults),   cmocka_unit_test(test_site_stale),
		cmocka_unit_test(test_errors),     cmocka_unit_test(test_dump_roundtrip),
		cmocka_unit_test(test_documented),
	};

	readme_path = argc > 1 ? argv[1] : getenv("DASH_README");
	return cmocka_run_group_tests(tests, NULL, NULL);
}
