/* SPDX-License-Identifier: MIT */
/*
 * config: defaults, every value syntax, and every error path with its FILE:LINE message;
 * also the statefile counters, which share the "small persisted settings" theme.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "config.h"
#include "statefile.h"

static int parse(const char *text, struct agent_config *cfg, char *err)
{
	agent_config_defaults(cfg);
	return agent_config_parse("t.conf", text, strlen(text), cfg, err, AGENT_CONFIG_ERROR_MAX);
}

static void test_defaults(void **state)
{
	struct agent_config cfg;
	struct diagnose_config dc;
	char err[AGENT_CONFIG_ERROR_MAX];

	(void)state;
	assert_int_equal(parse("agent_id st-001\n", &cfg, err), 0);
	assert_string_equal(cfg.agent_id, "st-001");
	assert_string_equal(cfg.broker_url, "tcp://127.0.0.1:1883");
	assert_string_equal(cfg.state_dir, "/var/lib/cradle-agent");
	assert_string_equal(cfg.metrics_file, ""); /* off */
	assert_int_equal(cfg.metrics_interval_s, 15);
	assert_int_equal(cfg.diagnose.stale_after_s, 72 * 3600);
	assert_int_equal(cfg.probe_interval_s, 15 * 60);
	assert_int_equal(cfg.refresh_interval_s, 3600);
	assert_string_equal(cfg.diagnose.min_ios_version, "");
	assert_int_equal(cfg.probe_concurrency, 16);
	assert_int_equal(cfg.probe_timeout_s, 30);
	assert_int_equal(cfg.resync_interval_s, 10);
	assert_false(cfg.publish_device_name);
	assert_false(cfg.syslog_watch);
	assert_int_equal(cfg.syslog_window_s, 5);
	assert_int_equal(cfg.keepalive_s, 30);
	assert_int_equal(cfg.will_delay_s, 15);
	assert_int_equal(cfg.cmd_table_size, 20000);
	assert_int_equal(cfg.cmd_intake_rate, 200);
	assert_int_equal(cfg.cmd_rejection_results_rate, 20);
	assert_int_equal(cfg.cmd_clock_skew_s, 300);
	assert_int_equal(cfg.session_expiry_s, 3600);
	assert_int_equal(cfg.outbox_max_bytes, 64 * 1024 * 1024);
	assert_int_equal(cfg.outbox_max_records, 100000);
	assert_int_equal(cfg.log_level, LOG_LEVEL_INFO);
	assert_int_equal(cfg.allowed_commands.n, 4);
	assert_string_equal(cfg.allowed_commands.item[0], "device.refresh");
	assert_string_equal(cfg.allowed_commands.item[3], "backup.local.start");
	assert_int_equal(cfg.backup_retention, 2);
	assert_int_equal(cfg.backup_min_free, 1024 * 1024 * 1024);
	assert_int_equal(cfg.max_concurrent_backups, 2);
	assert_int_equal(cfg.restart_timeout_s, 180);
	assert_int_equal(cfg.cmd_rate_per_device.count, 6);
	assert_int_equal(cfg.cmd_rate_per_device.interval_s, 3600);
	assert_int_equal(cfg.cmd_id_retention_s, 7 * 86400);
	assert_int_equal(cfg.backup_stall_timeout_s, 600);
	assert_true(cfg.disk_low_free == 2ULL << 30);
	assert_int_equal(cfg.disk_check_interval_s, 60);
	assert_int_equal(cfg.security_event_interval_s, 60);
	assert_int_equal(cfg.command_keys.n, 0);
	assert_true(cfg.require_signed_commands);
	/* the pattern defaults are the diagnosis' own */
	diagnose_config_defaults(&dc);
	assert_true(dc.storage_full.n > 0);
	assert_memory_equal(&cfg.diagnose.storage_full, &dc.storage_full, sizeof(dc.storage_full));
	assert_memory_equal(&cfg.diagnose.network, &dc.network, sizeof(dc.network));
	assert_memory_equal(&cfg.diagnose.apple_id, &dc.apple_id, sizeof(dc.apple_id));
}

static void test_values(void **state)
{
	struct agent_config cfg;
	char err[AGENT_CONFIG_ERROR_MAX];
	const char *text = "# station config\n"
	                   "\n"
	                   "  agent_id   cart-7  \n"
	                   "stale_after 2d\n"
	                   "probe_interval 90s\n"
	                   "min_ios_version 16.4\n"
	                   "publish_device_name yes\n"
	                   "syslog_watch on\n"
	                   "pattern_network  timed out , no network,offline\n"
	                   "pattern_apple_id \"\"\n"
	                   "site \" Lab 2 \"\n"
	                   "mqtt_password s3cret\r\n"
	                   "outbox_max_bytes 16M\n"
	                   "outbox_max_records 5000\n"
	                   "backup_min_free 512K\n"
	                   "log_level debug\n"
	                   "allowed_commands device.refresh\n"
	                   "cmd_rate_per_device 3/10m\n"
	                   "command_keys 11qYAYKxCrfVS/7TyWQHOg7hcvPapiMlrwIaaPcHURo=, "
	                   "PUAXw+hDiVqStwqnTRt+vJyYLM8uxJaMwM1V8Sr0Zgw=\n"
	                   "require_signed_commands false\n"
	                   "broker_url mqtts://broker.example:8883\n"
	                   "probe_timeout 45\n"
	                   "restart_timeout 1m30s\n"
	                   "session_expiry 5m";

	(void)state;
	assert_int_equal(parse(text, &cfg, err), 0);
	assert_string_equal(err, "");
	assert_string_equal(cfg.agent_id, "cart-7");
	assert_int_equal(cfg.diagnose.stale_after_s, 2 * 86400);
	assert_int_equal(cfg.probe_interval_s, 90);
	assert_string_equal(cfg.diagnose.min_ios_version, "16.4");
	assert_true(cfg.publish_device_name);
	assert_true(cfg.syslog_watch);
	assert_int_equal(cfg.diagnose.network.n, 3);
	assert_string_equal(cfg.diagnose.network.text[0], "timed out");
	assert_string_equal(cfg.diagnose.network.text[1], "no network");
	assert_string_equal(cfg.diagnose.network.text[2], "offline");
	assert_int_equal(cfg.diagnose.apple_id.n, 0);
	assert_string_equal(cfg.site, " Lab 2 ");
	assert_string_equal(cfg.mqtt_password, "s3cret");
	assert_int_equal(cfg.outbox_max_bytes, 16 * 1024 * 1024);
	assert_int_equal(cfg.outbox_max_records, 5000);
	assert_int_equal(cfg.backup_min_free, 512 * 1024);
	assert_int_equal(cfg.log_level, LOG_LEVEL_DEBUG);
	assert_int_equal(cfg.allowed_commands.n, 1);
	assert_int_equal(cfg.cmd_rate_per_device.count, 3);
	assert_int_equal(cfg.cmd_rate_per_device.interval_s, 600);
	assert_int_equal(cfg.session_expiry_s, 300);
	assert_int_equal(cfg.command_keys.n, 2);
	assert_string_equal(cfg.command_keys.item[1],
	                    "PUAXw+hDiVqStwqnTRt+vJyYLM8uxJaMwM1V8Sr0Zgw=");
	assert_false(cfg.require_signed_commands);
	/* a bare number is seconds, as on the command line */
	assert_int_equal(cfg.probe_timeout_s, 45);
	assert_int_equal(cfg.restart_timeout_s, 90);
}

static void expect_error(const char *text, const char *want)
{
	struct agent_config cfg;
	char err[AGENT_CONFIG_ERROR_MAX];

	assert_int_equal(parse(text, &cfg, err), -EINVAL);
	if (strstr(err, want) == NULL)
		fail_msg("for %s\n got '%s'\nwant '%s'", text, err, want);
}

static void test_errors(void **state)
{
	(void)state;
	expect_error("agent_id ok-1\nbogus 1\n", "t.conf:2: unknown key 'bogus'");
	expect_error("", "t.conf: missing required key 'agent_id'");
	expect_error("# only a comment\n", "t.conf: missing required key 'agent_id'");
	expect_error("agent_id X-upper\n", "t.conf:1: 'agent_id': 'X-upper' does not match");
	expect_error("agent_id ab\n", "t.conf:1: 'agent_id': 'ab' does not match");
	expect_error("agent_id -abc\n", "t.conf:1: 'agent_id'");
	expect_error("agent_id abc\nagent_id abd\n",
	             "t.conf:2: 'agent_id' set twice (first on line 1)");
	expect_error("agent_id abc\nkeepalive\n", "t.conf:2: 'keepalive': missing value");
	expect_error("agent_id abc\nkeepalive 30m1\n",
	             "t.conf:2: 'keepalive': bad duration '30m1'");
	expect_error("agent_id abc\nkeepalive 1s1m\n", "t.conf:2: 'keepalive': bad duration");
	expect_error("agent_id abc\nkeepalive 4\n", "t.conf:2: 'keepalive': value 4 out of range");
	expect_error("agent_id abc\nkeepalive 30x\n", "t.conf:2: 'keepalive': bad duration");
	expect_error("agent_id abc\nkeepalive 3s\n", "t.conf:2: 'keepalive': value 3 out of range");
	expect_error("agent_id abc\nkeepalive 99999999999999999999s\n",
	             "t.conf:2: 'keepalive': bad duration");
	expect_error("agent_id abc\nkeepalive 9999999999999999d\n",
	             "t.conf:2: 'keepalive': bad duration");
	expect_error("agent_id abc\noutbox_max_bytes 64Q\n",
	             "t.conf:2: 'outbox_max_bytes': bad size");
	expect_error("agent_id abc\noutbox_max_bytes 1K\n",
	             "t.conf:2: 'outbox_max_bytes': value 1024 out of range");
	expect_error("agent_id abc\nprobe_concurrency -1\n",
	             "t.conf:2: 'probe_concurrency': bad number");
	expect_error("agent_id abc\nprobe_concurrency 0\n",
	             "t.conf:2: 'probe_concurrency': value 0 out of range");
	expect_error("agent_id abc\nprobe_concurrency 4 4\n",
	             "t.conf:2: 'probe_concurrency': bad number");
	expect_error("agent_id abc\nsyslog_watch maybe\n", "t.conf:2: 'syslog_watch': bad boolean");
	expect_error("agent_id abc\nlog_level loud\n", "t.conf:2: 'log_level': bad level");
	expect_error("agent_id abc\ncmd_rate_per_device 6\n",
	             "t.conf:2: 'cmd_rate_per_device': bad rate");
	expect_error("agent_id abc\ncmd_rate_per_device x/1h\n",
	             "t.conf:2: 'cmd_rate_per_device': bad count");
	expect_error("agent_id abc\ncmd_rate_per_device 6/0\n",
	             "t.conf:2: 'cmd_rate_per_device': bad interval");
	expect_error("agent_id abc\ncmd_rate_per_device 0/1h\n",
	             "t.conf:2: 'cmd_rate_per_device': value 0 out of range");
	expect_error("agent_id abc\npattern_network a,,b\n",
	             "t.conf:2: 'pattern_network': empty list item");
	expect_error("agent_id abc\nallowed_commands a,b,c,d,e,f,g,h,i,j,k,l,m,n,o,p,q\n",
	             "t.conf:2: 'allowed_commands': more than 16 items");
	expect_error("agent_id abc\nallowed_commands "
	             "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\n",
	             "t.conf:2: 'allowed_commands': item");
	expect_error("agent_id abc\nsite \"open\n",
	             "t.conf:2: 'site': unbalanced or embedded quote");
	expect_error("agent_id abc\nsite a\"b\n", "t.conf:2: 'site': unbalanced or embedded quote");
	expect_error("agent_id abc\nsite a\x01z\n",
	             "t.conf:2: 'site': value contains a control byte");
	expect_error("agent_id abc\nsite "
	             "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\n",
	             "t.conf:2: 'site': value longer than 63 bytes");
	expect_error("agent_id abc\nwill_delay 1h\nsession_expiry 1h\n",
	             "t.conf: will_delay (3600s) must be shorter than session_expiry (3600s)");
	expect_error("agent_id abc\ncmd_id_retention 1h\ncmd_clock_skew 30m\n",
	             "t.conf: cmd_id_retention (3600s) must be at least 60s + 2 x cmd_clock_skew "
	             "(1800s)");
	expect_error("agent_id abc\nbroker_url ssl://h:8883\nmqtt_certfile /c.pem\n",
	             "t.conf: mqtt_certfile and mqtt_keyfile must be set together");
	/* a key that is not one names its line and item (a typo must not drop a trusted key) */
	expect_error("agent_id abc\n\ncommand_keys 11qYAYKxCrfVS/7TyWQHOg7hcvPapiMlrwIaaPcHURo=,"
	             "11qYAYKxCrfVS/7TyWQHOg7hcvPapiMlrwIaaPcHUR\n",
	             "t.conf:3: 'command_keys': item 2 '11qYAYKxCrfVS/7T...' is not an Ed25519 "
	             "public key");
	expect_error("agent_id abc\ncommand_keys -----BEGIN PUBLIC KEY-----\n",
	             "t.conf:2: 'command_keys': item 1");
	/* issue 8 item 11: mistakes caught before they bite, and no value ever echoed */
	expect_error("agent_id abc\nmqtt_cafile /ca.pem\n",
	             "t.conf: mqtt_cafile/mqtt_certfile set but broker_url is plaintext");
	expect_error("agent_id abc\nbroker_url mqtt://h:1883\nmqtt_certfile /c\nmqtt_keyfile /k\n",
	             "t.conf: mqtt_cafile/mqtt_certfile set but broker_url is plaintext");
	expect_error("agent_id abc\nbroker_url ftp://h:21\n", "t.conf: broker_url: want tcp://");
	expect_error("agent_id abc\nbroker_url \"\"\n", "t.conf: broker_url: want tcp://");
	expect_error("agent_id abc\nbroker_url ssl://\n", "t.conf: broker_url: want tcp://");
	expect_error("agent_id abc\nbroker_url h:1883\n", "t.conf: broker_url: want tcp://");
	expect_error("agent_id abc\nmin_ios_version banana\n", "t.conf: min_ios_version: want");
	expect_error("agent_id abc\nmin_ios_version 16.\n", "t.conf: min_ios_version: want");
	expect_error("agent_id abc\nmin_ios_version 16..4\n", "t.conf: min_ios_version: want");
	expect_error("agent_id abc\nmin_ios_version 1.2.3.4.5\n", "t.conf: min_ios_version: want");
	expect_error("agent_id abc\nallowed_commands device.refresh,device.reboot\n",
	             "t.conf: allowed_commands: item 2 'device.reboot' is not a command");
	expect_error("agent_id abc\nmqtt_password=hunter2\n",
	             "t.conf:2: 'mqtt_password': write 'KEY VALUE', not 'KEY=VALUE' (value not "
	             "shown)");
	expect_error("agent_id abc\nmqtt_passwd hunter2\n", "t.conf:2: unknown key 'mqtt_passwd'");
	expect_error("agent_id abc\n\xff\xfe 1\n",
	             "t.conf:2: key contains a control or non-ASCII byte");
}

static void test_nul_byte(void **state)
{
	struct agent_config cfg;
	char err[AGENT_CONFIG_ERROR_MAX];
	const char text[] = "agent_id abc\nsite a\0b\n";

	(void)state;
	agent_config_defaults(&cfg);
	assert_int_equal(
	        agent_config_parse("t.conf", text, sizeof(text) - 1, &cfg, err, sizeof(err)),
	        -EINVAL);
	assert_string_equal(err, "t.conf:2: NUL byte in line");
}

static void test_load_and_dump(void **state)
{
	char path[] = "/tmp/agent-config-XXXXXX";
	struct agent_config cfg, again;
	char err[AGENT_CONFIG_ERROR_MAX];
	char *dump = NULL;
	size_t dump_len = 0;
	FILE *f;
	int fd;

	(void)state;
	assert_int_equal(agent_config_load("/nonexistent/x.conf", &cfg, err, sizeof(err)), -ENOENT);
	assert_non_null(strstr(err, "/nonexistent/x.conf: cannot read"));

	fd = mkstemp(path);
	assert_true(fd >= 0);
	f = fdopen(fd, "w");
	fputs("agent_id dump-test\nmqtt_password hunter2\nsite \" padded \"\n"
	      "pattern_network a b,c\nstale_after 90m\n",
	      f);
	fclose(f);
	assert_int_equal(agent_config_load(path, &cfg, err, sizeof(err)), 0);
	assert_int_equal(chmod(path, 0644), 0);
	{
		/* a password readable by others is warned about, without the password */
		char logged[1024] = "";
		FILE *cap = tmpfile();
		int saved = dup(2);

		assert_non_null(cap);
		fflush(stderr);
		dup2(fileno(cap), 2);
		assert_int_equal(agent_config_load(path, &cfg, err, sizeof(err)), 0);
		fflush(stderr);
		dup2(saved, 2);
		close(saved);
		rewind(cap);
		logged[fread(logged, 1, sizeof(logged) - 1, cap)] = '\0';
		fclose(cap);
		assert_non_null(strstr(logged, "readable by group or others (mode 0644)"));
		assert_null(strstr(logged, "hunter2"));
	}
	f = open_memstream(&dump, &dump_len);
	assert_int_equal(agent_config_dump(&cfg, f), 0);
	fclose(f);
	assert_null(strstr(dump, "hunter2"));
	assert_non_null(strstr(dump, "mqtt_password ********\n"));
	assert_non_null(strstr(dump, "stale_after 90m\n"));
	assert_non_null(strstr(dump, "min_ios_version \"\"\n"));
	assert_non_null(strstr(dump, "cmd_rate_per_device 6/1h\n"));
	/* the dump (with the secret restored) reads back to the same configuration */
	{
		char *p = strstr(dump, "********");

		memcpy(p, "hunter2 ", 8);
	}
	agent_config_defaults(&again);
	assert_int_equal(agent_config_parse("dump", dump, dump_len, &again, err, sizeof(err)), 0);
	assert_string_equal(again.mqtt_password, "hunter2");
	assert_string_equal(again.site, " padded ");
	assert_int_equal(again.diagnose.network.n, 2);
	assert_string_equal(again.diagnose.network.text[0], "a b");
	assert_int_equal(again.diagnose.stale_after_s, cfg.diagnose.stale_after_s);
	assert_int_equal(again.outbox_max_bytes, cfg.outbox_max_bytes);
	free(dump);
	unlink(path);
}

static void test_statefile(void **state)
{
	char dir[] = "/tmp/agent-statefile-XXXXXX";
	char path[256];
	struct statefile sf, back;
	uint64_t seq = 0, before_us, first;
	FILE *f;

	(void)state;
	assert_non_null(mkdtemp(dir));
	snprintf(path, sizeof(path), "%s/state", dir);
	assert_int_equal(statefile_load(path, &sf), 0); /* missing: zeros */
	assert_int_equal(sf.session, 0);
	before_us = (uint64_t)time(NULL) * 1000000;
	assert_int_equal(statefile_begin_session(path, &sf), 0);
	/* the session is the start time in µs: unique even when the file is lost later */
	assert_true(sf.session >= before_us);
	assert_true(sf.session < before_us + 10 * 1000000ULL);
	first = sf.session;
	for (int i = 0; i < 5; i++)
		assert_int_equal(statefile_next_seq(path, &sf, &seq), 0);
	assert_int_equal(seq, 4);
	/* a crash now: the restart continues after the reserved block, never reusing a seq */
	assert_int_equal(statefile_load(path, &back), 0);
	assert_int_equal(back.session, first);
	assert_int_equal(back.next_seq, STATEFILE_SEQ_BLOCK);
	assert_int_equal(statefile_begin_session(path, &back), 0);
	assert_true(back.session > first);
	assert_int_equal(statefile_next_seq(path, &back, &seq), 0);
	assert_int_equal(seq, STATEFILE_SEQ_BLOCK);
	/* damaged file */
	f = fopen(path, "w");
	fputs("session x\n", f);
	fclose(f);
	assert_int_equal(statefile_load(path, &back), -EBADMSG);
	assert_int_equal(back.session, 0);
	/* the damaged file's zeros still give a session no earlier run had */
	assert_int_equal(statefile_begin_session(path, &back), 0);
	assert_true(back.session > first);
	unlink(path);
	rmdir(dir);
}

/* The session rule: the clock, or one more than the last when the clock is behind it. */
static void test_statefile_session_rule(void **state)
{
	(void)state;
	assert_int_equal(statefile_session_after(0, 1764712345678901ULL), 1764712345678901ULL);
	assert_int_equal(statefile_session_after(7, 1764712345678901ULL), 1764712345678901ULL);
	/* a clock set back: never below the last session */
	assert_int_equal(statefile_session_after(1764712345678901ULL, 1000), 1764712345678902ULL);
	/* no clock at all (0) and no file: still a session */
	assert_int_equal(statefile_session_after(0, 0), 1);
	/* the wire's integer range: a damaged huge value is ignored, the result stays exact */
	assert_int_equal(statefile_session_after(STATEFILE_SESSION_MAX, 5), 5);
	assert_int_equal(statefile_session_after(UINT64_MAX, 5), 5);
	assert_int_equal(statefile_session_after(1, UINT64_MAX), STATEFILE_SESSION_MAX);
	assert_int_equal(statefile_session_after(STATEFILE_SESSION_MAX - 1, 5),
	                 STATEFILE_SESSION_MAX);
}

static const char *example_path, *readme_path;

/* The shipped example parses, and agent/README.md documents every key of the table. */
static void test_example_and_readme(void **state)
{
	struct agent_config cfg;
	char err[AGENT_CONFIG_ERROR_MAX];
	char *dump = NULL, *readme = NULL, *line, *save = NULL;
	size_t dump_len = 0, readme_len = 0;
	FILE *f;

	(void)state;
	if (!example_path || !readme_path)
		skip();
	assert_int_equal(agent_config_load(example_path, &cfg, err, sizeof(err)), 0);
	assert_string_equal(cfg.agent_id, "station-001");
	f = fopen(readme_path, "r");
	assert_non_null(f);
	assert_true(getdelim(&readme, &readme_len, '\0', f) > 0);
	fclose(f);
	f = open_memstream(&dump, &dump_len);
	agent_config_dump(&cfg, f);
	fclose(f);
	for (line = strtok_r(dump, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
		char want[96];

		*strchr(line, ' ') = '\0';
		snprintf(want, sizeof(want), "| `%s` |", line);
		if (!strstr(readme, want))
			fail_msg("agent/README.md does not document key '%s'", line);
	}
	free(dump);
	free(readme);
}

int main(int argc, char **argv)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_defaults),
		cmocka_unit_test(test_values),
		cmocka_unit_test(test_errors),
		cmocka_unit_test(test_nul_byte),
		cmocka_unit_test(test_load_and_dump),
		cmocka_unit_test(test_statefile),
		cmocka_unit_test(test_statefile_session_rule),
		cmocka_unit_test(test_example_and_readme),
	};

	if (argc == 3) {
		example_path = argv[1];
		readme_path = argv[2];
	}

	return cmocka_run_group_tests(tests, NULL, NULL);
}
