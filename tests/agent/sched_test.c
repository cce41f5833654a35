/* SPDX-License-Identifier: MIT */
/*
 * probe scheduler against real and misbehaving helpers, in one process so the test can count
 * its own fds and children:
 *  - the real cradle-agent-probe pointed (USBMUXD_SOCKET_ADDRESS) at a socket that accepts and
 *    never answers: the deadline kills it, the result is "timeout", within deadline + grace;
 *  - a helper that ignores SIGTERM: SIGKILL follows, still one "timeout" result;
 *  - garbage output, no output, a missing helper: "error" with a reason;
 *  - concurrency is respected and requests for one UDID coalesce;
 * and after each case no fd is left open and no child is left unreaped.
 *
 * usage: test-agent-probe-sched PROBE_HELPER SCRATCH_DIR
 */
#include <arpa/inet.h>
#include <dirent.h>
#include <errno.h>
#include <netinet/in.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

#include "child.h"
#include "loop.h"
#include "probe.h"

static const char *helper_bin;
static const char *scratch;

struct result {
	struct loop *loop;
	struct probe_sched *s;
	struct device_facts facts[8];
	int n;
	unsigned max_running;
};

static int count_fds(void)
{
	DIR *d = opendir("/proc/self/fd");
	struct dirent *e;
	int n = 0;

	assert_non_null(d);
	while ((e = readdir(d)))
		if (e->d_name[0] != '.')
			n++;
	closedir(d);
	return n - 1; /* the DIR's own fd */
}

static void assert_no_children(void)
{
	/* every child was reaped: nothing left to wait for */
	assert_int_equal(waitpid(-1, NULL, WNOHANG), -1);
	assert_int_equal(errno, ECHILD);
}

static void on_done(const struct device_facts *f, void *data)
{
	struct result *r = data;

	if (r->n < 8)
		r->facts[r->n++] = *f;
	if (probe_idle(r->s))
		loop_stop(r->loop);
}

static void on_guard(struct loop *loop, uint64_t id, void *data)
{
	(void)id;
	(void)data;
	fail_msg("test guard: loop still running after 20 s");
	loop_stop(loop);
}

static void on_watch(struct loop *loop, uint64_t id, void *data)
{
	struct result *r = data;

	(void)id;
	if (probe_running(r->s) > r->max_running)
		r->max_running = probe_running(r->s);
	loop_add_timer(loop, 10, on_watch, r);
}

/* Runs one scheduler over udids with helper; returns elapsed ms. */
static uint64_t run(const char *helper, unsigned conc, uint64_t timeout_ms, const char **udids,
                    int n, struct result *r)
{
	struct probe_config pc = {
		.helper = helper,
		.concurrency = conc,
		.timeout_ms = timeout_ms,
	};
	uint64_t t0 = loop_now_ms(), guard;
	int i;

	memset(r, 0, sizeof(*r));
	r->loop = loop_new();
	assert_non_null(r->loop);
	r->s = probe_sched_new(r->loop, &pc, on_done, r);
	assert_non_null(r->s);
	for (i = 0; i < n; i++)
		assert_int_equal(probe_request(r->s, udids[i]), 0);
	guard = loop_add_timer(r->loop, 20000, on_guard, NULL);
	loop_add_timer(r->loop, 0, on_watch, r);
	assert_int_equal(loop_run(r->loop), 0);
	loop_cancel_timer(r->loop, guard);
	r->s = probe_sched_free(r->s);
	r->loop = loop_free(r->loop);
	return loop_now_ms() - t0;
}

static char *script(const char *name, const char *body)
{
	static char path[4][512];
	static int k;
	char *p = path[k++ % 4];
	FILE *f;

	snprintf(p, 512, "%s/%s", scratch, name);
	f = fopen(p, "w");
	assert_non_null(f);
	fprintf(f, "#!/bin/sh\n%s\n", body);
	fclose(f);
	chmod(p, 0755);
	return p;
}

/* A TCP socket that accepts connections (backlog) and never says anything. */
static int silent_listener(int *port)
{
	struct sockaddr_in a = { .sin_family = AF_INET };
	socklen_t len = sizeof(a);
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);

	assert_true(fd >= 0);
	a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	assert_int_equal(bind(fd, (struct sockaddr *)&a, sizeof(a)), 0);
	assert_int_equal(listen(fd, 16), 0);
	assert_int_equal(getsockname(fd, (struct sockaddr *)&a, &len), 0);
	*port = ntohs(a.sin_port);
	return fd;
}

static void test_deadline_kills_real_helper(void **state)
{
	const char *udids[] = { "00008110-0000000000000001", "00008110-0000000000000002" };
	struct result r;
	char addr[64];
	int fd, port, fds_before;
	uint64_t ms;

	(void)state;
	fd = silent_listener(&port);
	snprintf(addr, sizeof(addr), "127.0.0.1:%d", port);
	setenv("USBMUXD_SOCKET_ADDRESS", addr, 1);
	fds_before = count_fds();
	ms = run(helper_bin, 2, 1000, udids, 2, &r);
	unsetenv("USBMUXD_SOCKET_ADDRESS");
	assert_int_equal(r.n, 2);
	assert_int_equal(r.facts[0].probe, FACTS_PROBE_TIMEOUT);
	assert_int_equal(r.facts[1].probe, FACTS_PROBE_TIMEOUT);
	assert_non_null(strstr(r.facts[0].error_text, "deadline"));
	/* both ran at once: one deadline, plus at most the kill grace */
	assert_true(ms >= 1000);
	assert_true(ms < 1000 + CHILD_KILL_GRACE_MS + 1500);
	assert_int_equal(count_fds(), fds_before);
	assert_no_children();
	close(fd);
}

static void test_sigterm_ignored(void **state)
{
	const char *udids[] = { "U-TERM" };
	const char *h = script("stubborn", "trap '' TERM\nexec sleep 30");
	struct result r;
	int fds_before = count_fds();
	uint64_t ms;

	(void)state;
	ms = run(h, 1, 500, udids, 1, &r);
	assert_int_equal(r.n, 1);
	assert_int_equal(r.facts[0].probe, FACTS_PROBE_TIMEOUT);
	assert_string_equal(r.facts[0].udid, "U-TERM");
	assert_true(ms >= 500 + CHILD_KILL_GRACE_MS);
	assert_true(ms < 500 + CHILD_KILL_GRACE_MS + 2000);
	assert_int_equal(count_fds(), fds_before);
	assert_no_children();
}

static void test_bad_helpers(void **state)
{
	const char *udids[] = { "U-1" };
	char missing[512];
	struct result r;
	int fds_before = count_fds();

	(void)state;
	run(script("garbage", "echo 'not json'"), 1, 5000, udids, 1, &r);
	assert_int_equal(r.n, 1);
	assert_int_equal(r.facts[0].probe, FACTS_PROBE_ERROR);
	assert_non_null(strstr(r.facts[0].error_text, "bad helper output"));

	run(script("silent", "exit 3"), 1, 5000, udids, 1, &r);
	assert_int_equal(r.facts[0].probe, FACTS_PROBE_ERROR);
	assert_non_null(strstr(r.facts[0].error_text, "exited 3"));

	/* valid JSON for another device is not accepted as this one's */
	run(script("liar", "echo '{\"udid\":\"OTHER\",\"probe\":\"ok\"}'"), 1, 5000, udids, 1, &r);
	assert_int_equal(r.facts[0].probe, FACTS_PROBE_ERROR);
	assert_non_null(strstr(r.facts[0].error_text, "mismatch"));

	/* a huge line is cut at the cap, not buffered */
	run(script("flood", "head -c 200000 /dev/zero | tr '\\0' x"), 1, 5000, udids, 1, &r);
	assert_int_equal(r.facts[0].probe, FACTS_PROBE_ERROR);

	snprintf(missing, sizeof(missing), "%s/does-not-exist", scratch);
	run(missing, 1, 5000, udids, 1, &r);
	assert_int_equal(r.n, 1);
	assert_int_equal(r.facts[0].probe, FACTS_PROBE_ERROR);
	assert_int_equal(count_fds(), fds_before);
	assert_no_children();
}

static void test_concurrency_and_coalescing(void **state)
{
	const char *udids[] = { "A", "B", "C", "A", "D", "B" };
	const char *h = script(
	        "ok", "sleep 0.2; echo \"{\\\"udid\\\":\\\"$2\\\",\\\"probe\\\":\\\"ok\\\"}\"");
	struct result r;
	uint64_t ms;

	(void)state;
	ms = run(h, 2, 5000, udids, 6, &r);
	assert_int_equal(r.n, 4); /* A and B coalesced */
	assert_true(r.max_running <= 2);
	assert_true(ms >= 400); /* 4 x 0.2 s two at a time */
	for (int i = 0; i < r.n; i++)
		assert_int_equal(r.facts[i].probe, FACTS_PROBE_OK);
	assert_no_children();
}

int main(int argc, char **argv)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_deadline_kills_real_helper),
		cmocka_unit_test(test_sigterm_ignored),
		cmocka_unit_test(test_bad_helpers),
		cmocka_unit_test(test_concurrency_and_coalescing),
	};

	if (argc != 3) {
		fprintf(stderr, "usage: %s PROBE_HELPER SCRATCH_DIR\n", argv[0]);
		return 2;
	}
	helper_bin = argv[1];
	scratch = argv[2];
	signal(SIGPIPE, SIG_IGN);
	return cmocka_run_group_tests(tests, NULL, NULL);
}
