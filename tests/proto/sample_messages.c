/* SPDX-License-Identifier: MIT */
/*
 * Prints one JSON message per line, made by the real encoders from a spread of facts (every
 * probe outcome and pairing state, every diagnosis cause, hostile strings), so that the test
 * suite can check the C side against the JSON Schemas with tests/proto/validate.py.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "diagnose.h"
#include "facts.h"
#include "proto.h"
#include "state.h"

#define NOW 1764000000LL

static int emit(char *json)
{
	if (!json)
		return 1;
	puts(json);
	free(json);
	return 0;
}

static void base(struct device_facts *f, int i)
{
	memset(f, 0, sizeof(*f));
	snprintf(f->udid, sizeof(f->udid), "00008110-00000000000%05d", i);
	f->probed_at_ms = NOW * 1000 - i;
	snprintf(f->product_type, sizeof(f->product_type), "iPhone14,%d", i % 8);
	snprintf(f->ios_version, sizeof(f->ios_version), "%d.%d", 14 + i % 5, i % 3);
	snprintf(f->build, sizeof(f->build), "21F%d", 80 + i);
	snprintf(f->serial, sizeof(f->serial), "F2LXK0QN%04d", i);
	snprintf(f->device_name, sizeof(f->device_name), "Phone %d \xe2\x80\x99s \x01", i);
	f->has_icloud_enabled = true;
	f->icloud_enabled = i % 3 != 0;
	f->has_last_icloud = i % 4 != 0;
	f->last_icloud_unix = NOW - (int64_t)i * 20000;
	f->has_last_local = i % 2;
	f->last_local_unix = NOW - 86400 * 30;
	f->has_will_encrypt = f->will_encrypt = true;
	f->has_requires_encryption = true;
	f->has_battery = i % 5 != 0;
	f->battery_pct = i * 7 % 101;
	f->external_connected = i % 6 != 0;
	f->charging = f->external_connected && f->battery_pct < 80;
	f->has_storage = true;
	f->total_bytes = 128000000000ULL;
	f->available_bytes = 1000000000ULL * (uint64_t)i;
	if (i % 7 == 0)
		snprintf(f->syslog[f->n_syslog++], FACTS_LINE_MAX,
		         "backupd[1] <Error>: Not enough iCloud storage \xff\t\x1b");
	if (i % 9 == 0)
		snprintf(f->syslog[f->n_syslog++], FACTS_LINE_MAX,
		         "backupd[1] <Error>: NSURLErrorDomain Code=-1001 timed out");
	if (i % 11 == 0)
		snprintf(f->syslog[f->n_syslog++], FACTS_LINE_MAX,
		         "backupd[1] <Error>: AKAuthenticationError not signed in");
	if (i % 13 == 0)
		f->last_backup_error = 208;
}

int main(void)
{
	struct diagnose_config cfg;
	struct state_ctx ctx = { .agent = "st-sample", .session = 1, .seq = 0 };
	struct proto_agent_status st;
	struct proto_agent_meta meta;
	struct proto_device_event ev;
	struct proto_agent_event ae;
	int i, failed = 0;

	diagnose_config_defaults(&cfg);
	snprintf(cfg.min_ios_version, sizeof(cfg.min_ios_version), "16.0");
	ctx.diag = &cfg;
	ctx.now_ms = NOW * 1000;

	memset(&st, 0, sizeof(st));
	snprintf(st.h.agent, sizeof(st.h.agent), "%s", ctx.agent);
	st.h.session = 1;
	st.h.ts_ms = ctx.now_ms;
	st.online = true;
	st.has_started_at = true;
	st.started_at = NOW - 5;
	snprintf(st.agent_version, sizeof(st.agent_version), "0.1.0");
	failed |= emit(proto_agent_status_encode(&st));
	st.is_will = true;
	failed |= emit(proto_agent_status_encode(&st));

	memset(&meta, 0, sizeof(meta));
	meta.h = st.h;
	meta.h.seq = 1;
	snprintf(meta.version_agent, sizeof(meta.version_agent), "0.1.0");
	snprintf(meta.capabilities.item[meta.capabilities.n++], PROTO_STR_MAX, "probe");
	snprintf(meta.allowed_commands.item[meta.allowed_commands.n++], PROTO_STR_MAX,
	         "device.refresh");
	meta.stale_after_s = cfg.stale_after_s;
	meta.probe_interval_s = 900;
	failed |= emit(proto_agent_meta_encode(&meta));

	for (i = 0; i < 6 * _FACTS_PAIRING_MAX * 3; i++) {
		struct device_facts f;

		base(&f, i);
		f.probe = i % _FACTS_PROBE_MAX;
		f.pairing = f.probe == FACTS_PROBE_NOT_TRUSTED ? (i / 6) % _FACTS_PAIRING_MAX
		                                               : FACTS_PAIRING_PAIRED;
		if (f.probe != FACTS_PROBE_OK && i % 2) /* a failed probe reads nothing */
			f.has_icloud_enabled = f.has_last_icloud = f.has_battery = false;
		if (f.probe == FACTS_PROBE_ERROR)
			snprintf(f.error_text, sizeof(f.error_text), "lockdown error %d \xc3", -i);
		ctx.seq = 2 + i;
		ctx.publish_device_name = i % 2;
		failed |= emit(state_encode(&f, /* attached = */ i % 10 != 9, &ctx, NULL));
	}

	for (i = 0; i < _PROTO_EVENT_MAX; i++) {
		memset(&ev, 0, sizeof(ev));
		ev.h = st.h;
		ev.h.seq = 1000 + i;
		ev.event = i;
		snprintf(ev.udid, sizeof(ev.udid), "00008110-001A2B3C4D5E801E");
		/* every member somewhere, some with content the encoder must clean */
		if (i % 2) {
			ev.details.has_age_s = true;
			ev.details.age_s = i;
			ev.details.n_causes = 1;
			snprintf(ev.details.causes[0], PROTO_CODE_MAX,
			         i % 3 ? "quota" : "Not A Code");
			snprintf(ev.details.error, sizeof(ev.details.error), "lockdown %d \xc3\n",
			         -i);
		} else {
			snprintf(ev.details.kind, sizeof(ev.details.kind), "local");
			snprintf(ev.details.cmd_id, sizeof(ev.details.cmd_id), "cmd-%d", i);
			ev.details.has_bytes = true;
			ev.details.bytes = (uint64_t)i << 40;
			ev.details.has_lockdown_error = true;
			ev.details.lockdown_error = -i;
			ev.details.has_last_icloud = true;
			ev.details.last_icloud = 1764126312 + i;
			ev.details.has_probe = true;
			ev.details.probe = (enum proto_probe)(i % _PROTO_PROBE_MAX);
		}
		failed |= emit(proto_device_event_encode(&ev));
	}

	/* agent events: every kind, with extreme and hostile values */
	for (i = 0; i < 2 * _PROTO_AGENT_EVENT_MAX; i++) {
		memset(&ae, 0, sizeof(ae));
		ae.h = st.h;
		ae.h.seq = 2000 + i;
		ae.event = i % _PROTO_AGENT_EVENT_MAX;
		snprintf(ae.security.reason, sizeof(ae.security.reason), "%s",
		         i % 2 ? "wrong_agent" : "Not A Code");
		ae.security.count = i - 3;
		ae.security.first_at = NOW - i;
		ae.security.last_at = NOW;
		ae.security.interval_s = i % 3 ? 60 : -1;
		if (i % 2)
			snprintf(ae.security.detail, sizeof(ae.security.detail),
			         "command for agent 'x\xff\x1b'");
		ae.usbmuxd.devices = i % 4 ? i : -1;
		ae.usbmuxd.down_s = i * 10;
		if (i % 3)
			snprintf(ae.disk.path, sizeof(ae.disk.path), "/var/lib/cradle \x01");
		ae.disk.free_bytes = i % 2 ? UINT64_MAX : 1;
		ae.disk.total_bytes = 1ULL << 40;
		ae.disk.floor_bytes = 1ULL << 31;
		ae.outbox.dropped = i % 2 ? INT64_MAX : -5;
		ae.outbox.records = 100000;
		failed |= emit(proto_agent_event_encode(&ae));
	}
	return failed;
}
