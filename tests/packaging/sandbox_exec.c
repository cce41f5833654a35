/* SPDX-License-Identifier: MIT */
/*
 * sandbox-exec: runs a program confined the way the systemd units confine the daemons, as far
 * as that can be done without systemd as PID 1 (the container the suite runs in has none), for
 * tests/packaging/sandbox_test.py:
 *
 *  - ProtectSystem=strict: a mount namespace of its own in which everything is read-only but
 *    /dev, /proc, /sys and the --rw paths (the test's state and configuration directories);
 *  - NoNewPrivileges=yes, CapabilityBoundingSet= (empty): no capability left, none to gain;
 *  - SystemCallFilter=@system-service ~@privileged @resources, SystemCallErrorNumber=EPERM,
 *    SystemCallArchitectures=native, RestrictAddressFamilies=AF_UNIX AF_INET AF_INET6: a seccomp
 *    filter from the lists `systemd-analyze syscall-filter` prints. The allowed calls pass, the
 *    denied ones fail with EPERM as under the unit, and any other call, or a socket of another
 *    family, kills the process (SIGSYS), so that a test sees it instead of a silent error.
 *
 * Then it execs the program: the same pid, so the test's signals reach the daemon itself.
 *
 *   sandbox-exec --allow FILE --deny FILE [--rw PATH]... -- PROGRAM [ARG]...
 *
 * FILE: one system call name per line. Exit status 127 when the sandbox cannot be set up.
 */
#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <seccomp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <linux/capability.h>

#define SANDBOX_RW_MAX 16

static int fail(const char *what, int err)
{
	fprintf(stderr, "sandbox-exec: %s: %s\n", what, strerror(err));
	return 127;
}

/* Adds action for every system call named in path (unknown names: other architectures). */
static int add_list(scmp_filter_ctx ctx, const char *path, uint32_t action)
{
	char line[128];
	FILE *f = fopen(path, "re");
	int r = 0;

	if (!f)
		return -errno;
	while (fgets(line, sizeof(line), f)) {
		int nr;

		line[strcspn(line, " \t\r\n")] = '\0';
		/* socket() is allowed per address family below */
		if (!line[0] || strcmp(line, "socket") == 0)
			continue;
		nr = seccomp_syscall_resolve_name(line);
		if (nr < 0)
			continue;
		r = seccomp_rule_add(ctx, action, nr, 0);
		if (r < 0)
			break;
	}
	fclose(f);
	return r;
}

static int load_filter(const char *allow, const char *deny)
{
	static const int families[] = { AF_UNIX, AF_INET, AF_INET6 };
	scmp_filter_ctx ctx = seccomp_init(SCMP_ACT_KILL_PROCESS);
	int r;

	if (!ctx)
		return -ENOMEM;
	r = add_list(ctx, allow, SCMP_ACT_ALLOW);
	if (r == 0)
		r = add_list(ctx, deny, SCMP_ACT_ERRNO(EPERM));
	for (size_t i = 0; r == 0 && i < sizeof(families) / sizeof(families[0]); i++)
		r = seccomp_rule_add(ctx, SCMP_ACT_ALLOW, SCMP_SYS(socket), 1,
		                     SCMP_A0(SCMP_CMP_EQ, (scmp_datum_t)families[i]));
	if (r == 0)
		r = seccomp_load(ctx);
	seccomp_release(ctx);
	return r;
}

/* Makes path a mount of its own (a bind onto itself) and writable, with what is below it. */
static int make_writable(const char *path, int required)
{
	struct mount_attr rw = { .attr_clr = MOUNT_ATTR_RDONLY };

	if (mount(path, path, NULL, MS_BIND | MS_REC, NULL) < 0 ||
	    mount_setattr(AT_FDCWD, path, AT_RECURSIVE, &rw, sizeof(rw)) < 0)
		return required ? -errno : 0;
	return 0;
}

static int drop_capabilities(void)
{
	struct __user_cap_header_struct hdr = { .version = _LINUX_CAPABILITY_VERSION_3 };
	struct __user_cap_data_struct data[2];

	for (int cap = 0; cap <= CAP_LAST_CAP; cap++)
		if (prctl(PR_CAPBSET_DROP, cap, 0, 0, 0) < 0 && errno != EINVAL)
			return -errno;
	if (prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0) < 0)
		return -errno;
	memset(data, 0, sizeof(data));
	if (syscall(SYS_capset, &hdr, data) < 0)
		return -errno;
	return 0;
}

int main(int argc, char **argv)
{
	static const char *const api_fs[] = { "/dev", "/proc", "/sys" };
	const char *allow = NULL, *deny = NULL, *rw[SANDBOX_RW_MAX];
	struct mount_attr ro = { .attr_set = MOUNT_ATTR_RDONLY };
	int n_rw = 0, i, r;

	for (i = 1; i < argc && strcmp(argv[i], "--") != 0; i++) {
		if (i + 1 >= argc)
			break;
		if (strcmp(argv[i], "--allow") == 0)
			allow = argv[++i];
		else if (strcmp(argv[i], "--deny") == 0)
			deny = argv[++i];
		else if (strcmp(argv[i], "--rw") == 0 && n_rw < SANDBOX_RW_MAX)
			rw[n_rw++] = argv[++i];
		else
			break;
	}
	if (!allow || !deny || i + 1 >= argc || strcmp(argv[i], "--") != 0) {
		fprintf(stderr, "usage: sandbox-exec --allow FILE --deny FILE [--rw PATH]... -- "
		                "PROGRAM [ARG]...\n");
		return 127;
	}

	/* ProtectSystem=strict */
	if (unshare(CLONE_NEWNS) < 0)
		return fail("unshare(CLONE_NEWNS) (needs root)", errno);
	if (mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL) < 0)
		return fail("making / private", errno);
	if (mount_setattr(AT_FDCWD, "/", AT_RECURSIVE, &ro, sizeof(ro)) < 0)
		return fail("making / read-only", errno);
	for (size_t k = 0; k < sizeof(api_fs) / sizeof(api_fs[0]); k++)
		(void)make_writable(api_fs[k], 0); /* as systemd leaves them, where the host lets */
	for (int k = 0; k < n_rw; k++) {
		r = make_writable(rw[k], 1);
		if (r < 0)
			return fail(rw[k], -r);
	}

	/* NoNewPrivileges=yes, CapabilityBoundingSet= */
	if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) < 0)
		return fail("PR_SET_NO_NEW_PRIVS", errno);
	r = drop_capabilities();
	if (r < 0)
		return fail("dropping capabilities", -r);

	/* SystemCallFilter=, RestrictAddressFamilies= */
	r = load_filter(allow, deny);
	if (r < 0)
		return fail("loading the system call filter", -r);

	execv(argv[i + 1], argv + i + 1);
	return fail(argv[i + 1], errno);
}
