/* SPDX-License-Identifier: MIT */
/*
 * notify_driver: the delivery queue and its worker on a real store, driven by notify_test.py
 * until the alerts engine runs in the same test. Usage:
 *
 *   notify_driver CONFIG ACTION...
 *
 * Actions, in order: `worker` starts the worker (else the receivers are only published to
 * notify_enqueue, for a running dashboard to deliver); `enqueue:N:RULE:STATE` queues N alerts
 * in one transaction (ids a1, a2, ... across actions; subject udid-<id>); `sleep:MS`;
 * `wait-empty:MS` waits until no undelivered row is left (exit 3 on timeout); `status` prints
 * GET /api/v1/notify/status's JSON on one line.
 */
#include <cjson/cJSON.h>
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "config.h"
#include "loop.h"
#include "notify.h"
#include "store.h"

static int enqueue(struct store *s, int n, const char *rule, const char *state, int *next_id)
{
	int r = store_begin(s);

	for (int i = 0; r == 0 && i < n; i++) {
		char id[32], subject[48], summary[96], detail[64];
		int k = (*next_id)++;
		struct notify_alert a = {
			.alert_id = id,
			.rule = rule,
			.state = state,
			.subject_kind = "udid",
			.subject = subject,
			.site = "north",
			.station = "st1",
			.summary = summary,
			.detail_json = detail,
			.fired_at = wall_now_ms() / 1000 - 60,
			.resolved_at = strcmp(state, "resolved") == 0 ? wall_now_ms() / 1000 : 0,
		};

		snprintf(id, sizeof(id), "a%d", k);
		snprintf(subject, sizeof(subject), "udid-%d", k);
		snprintf(summary, sizeof(summary), "phone %d: no iCloud backup for 80 h", k);
		snprintf(detail, sizeof(detail), "{\"k\": %d}", k);
		r = notify_enqueue(s, &a);
	}
	if (r == 0)
		return store_commit(s);
	store_rollback(s);
	return r;
}

static int64_t live(struct store *s, const struct dash_config *cfg)
{
	cJSON *o = notify_status_json(s, cfg);
	int64_t n = o ? (int64_t)cJSON_GetNumberValue(cJSON_GetObjectItem(o, "queued")) : -1;

	cJSON_Delete(o);
	return n;
}

int main(int argc, char **argv)
{
	static struct dash_config cfg;
	struct notify *n = NULL;
	struct store *s = NULL;
	char err[512];
	int r, next_id = 1, rc = 0;

	if (argc < 3) {
		fprintf(stderr, "usage: notify_driver CONFIG ACTION...\n");
		return 2;
	}
	dash_config_defaults(&cfg);
	if (dash_config_load(&cfg, argv[1], err, sizeof(err)) < 0 ||
	    dash_config_check(&cfg, err, sizeof(err)) < 0) {
		fprintf(stderr, "notify_driver: %s\n", err);
		return 2;
	}
	log_set_level(cfg.log_level);
	r = store_open(cfg.db, &cfg, &s, err, sizeof(err));
	if (r < 0) {
		fprintf(stderr, "notify_driver: %s\n", err);
		return 1;
	}
	notify_configure(&cfg);
	for (int i = 2; i < argc && rc == 0; i++) {
		char *a = argv[i];

		if (strcmp(a, "worker") == 0) {
			if (notify_start(&cfg, &n) < 0)
				rc = 1;
		} else if (strncmp(a, "enqueue:", 8) == 0) {
			char rule[64] = "", state[16] = "";
			int cnt = 0;

			if (sscanf(a + 8, "%d:%63[^:]:%15s", &cnt, rule, state) != 3) {
				fprintf(stderr, "notify_driver: bad action %s\n", a);
				rc = 2;
			} else if (enqueue(s, cnt, rule, state, &next_id) < 0) {
				rc = 1;
			}
		} else if (strncmp(a, "sleep:", 6) == 0) {
			usleep((useconds_t)atoi(a + 6) * 1000);
		} else if (strncmp(a, "wait-empty:", 11) == 0) {
			int64_t until = wall_now_ms() + atoi(a + 11);

			while (live(s, &cfg) != 0 && wall_now_ms() < until)
				usleep(50 * 1000);
			if (live(s, &cfg) != 0)
				rc = 3;
		} else if (strcmp(a, "status") == 0) {
			cJSON *o = notify_status_json(s, &cfg);
			char *t = o ? cJSON_PrintUnformatted(o) : NULL;

			printf("%s\n", t ? t : "null");
			fflush(stdout);
			free(t);
			cJSON_Delete(o);
		} else {
			fprintf(stderr, "notify_driver: unknown action %s\n", a);
			rc = 2;
		}
	}
	n = notify_stop(n);
	notify_configure(NULL);
	s = store_close(s);
	return rc;
}
