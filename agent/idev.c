/* SPDX-License-Identifier: MIT */
/*
 * idev: see idev.h. The probe: usbmuxd lookup, pair-record check, one lockdown session, four
 * GetValue requests (root, backup, battery, disk usage), optional syslog_relay sampling. The
 * actions: the same lookup, check and handshake, then mobilebackup2 or diagnostics_relay.
 *
 * Value decoding is lenient on types because iOS versions and the simulator differ: dates may
 * be integers, reals or plist dates (all seconds since 2001-01-01), booleans may be 0/1
 * integers (RequiresEncryption is one). Absent keys leave has_* false: "never backed up" is a
 * finding, not an error. Errors map to domain states as docs/device-protocols.md (Lockdown
 * errors) lists them.
 */
#include "idev.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <libimobiledevice/diagnostics_relay.h>
#include <libimobiledevice/libimobiledevice.h>
#include <libimobiledevice/lockdown.h>
#include <libimobiledevice/mobilebackup2.h>
#include <libimobiledevice/notification_proxy.h>
#include <libimobiledevice/syslog_relay.h>
#include <plist/plist.h>
#include <usbmuxd.h>

#include "log.h"
#include "loop.h"
#include "timefmt.h"

#define IDEV_LABEL         "cradle-agent-probe"
#define IDEV_ACTION_LABEL  "cradle-agent"
#define IDEV_WATCH_LABEL   "cradle-agent-watch"
#define IDEV_WATCH_POLL_MS 1000 /* how soon a watch notices its stop flag */

static void copy_plist_str(plist_t dict, const char *key, char *dst, size_t size)
{
	plist_t n = plist_dict_get_item(dict, key);
	const char *s;
	uint64_t len = 0;

	if (!n || plist_get_node_type(n) != PLIST_STRING)
		return;
	s = plist_get_string_ptr(n, &len);
	if (!s)
		return;
	if (len >= size)
		len = size - 1;
	memcpy(dst, s, len);
	dst[len] = '\0';
}

/* Bool, or an integer 0/1 (RequiresEncryption is an integer on real phones). */
static void get_bool(plist_t dict, const char *key, bool *has, bool *val)
{
	plist_t n = plist_dict_get_item(dict, key);
	uint8_t b = 0;
	uint64_t u = 0;

	if (!n)
		return;
	if (plist_get_node_type(n) == PLIST_BOOLEAN) {
		plist_get_bool_val(n, &b);
		*val = b != 0;
	} else if (plist_get_node_type(n) == PLIST_UINT) {
		plist_get_uint_val(n, &u);
		*val = u != 0;
	} else {
		return;
	}
	if (has)
		*has = true;
}

static bool get_uint(plist_t dict, const char *key, uint64_t *val)
{
	plist_t n = plist_dict_get_item(dict, key);

	if (!n || plist_get_node_type(n) != PLIST_UINT)
		return false;
	plist_get_uint_val(n, val);
	return true;
}

/* Apple absolute time (integer, real or date) -> Unix seconds. */
static void get_apple_date(plist_t dict, const char *key, bool *has, int64_t *unix_s)
{
	plist_t n = plist_dict_get_item(dict, key);
	uint64_t u;
	double d;
	int32_t sec = 0, usec = 0;

	if (!n)
		return;
	switch (plist_get_node_type(n)) {
	case PLIST_UINT:
		plist_get_uint_val(n, &u);
		/* libplist keeps negative integers as two's complement bits */
		*unix_s = timefmt_mac_to_unix((int64_t)u);
		break;
	case PLIST_REAL:
		plist_get_real_val(n, &d);
		if (!(d > -1e15 && d < 1e15))
			return;
		*unix_s = timefmt_mac_to_unix((int64_t)d);
		break;
	case PLIST_DATE:
		/* libplist 2.2 counts plist dates from 2001-01-01 too */
		plist_get_date_val(n, &sec, &usec);
		*unix_s = timefmt_mac_to_unix(sec);
		break;
	default:
		return;
	}
	*has = true;
}

static void read_root(plist_t d, struct device_facts *f)
{
	copy_plist_str(d, "ProductType", f->product_type, sizeof(f->product_type));
	copy_plist_str(d, "ProductVersion", f->ios_version, sizeof(f->ios_version));
	copy_plist_str(d, "BuildVersion", f->build, sizeof(f->build));
	copy_plist_str(d, "SerialNumber", f->serial, sizeof(f->serial));
	copy_plist_str(d, "DeviceName", f->device_name, sizeof(f->device_name));
	get_bool(d, "PasswordProtected", &f->has_password_protected, &f->password_protected);
}

static void read_backup(plist_t d, struct device_facts *f)
{
	get_bool(d, "CloudBackupEnabled", &f->has_icloud_enabled, &f->icloud_enabled);
	get_apple_date(d, "LastCloudBackupDate", &f->has_last_icloud, &f->last_icloud_unix);
	get_apple_date(d, "LastiTunesBackupDate", &f->has_last_local, &f->last_local_unix);
	get_bool(d, "WillEncrypt", &f->has_will_encrypt, &f->will_encrypt);
	get_bool(d, "RequiresEncryption", &f->has_requires_encryption, &f->requires_encryption);
}

static void read_battery(plist_t d, struct device_facts *f)
{
	uint64_t pct;

	if (!get_uint(d, "BatteryCurrentCapacity", &pct))
		return;
	f->has_battery = true;
	f->battery_pct = pct > 100 ? 100 : (int)pct;
	get_bool(d, "ExternalConnected", NULL, &f->external_connected);
	get_bool(d, "BatteryIsCharging", NULL, &f->charging);
}

static void read_disk(plist_t d, struct device_facts *f)
{
	uint64_t total = 0, avail = 0;

	if (!get_uint(d, "TotalDiskCapacity", &total) && !get_uint(d, "TotalDataCapacity", &total))
		return;
	f->has_storage = true;
	f->total_bytes = total;
	if (get_uint(d, "AmountDataAvailable", &avail) || get_uint(d, "TotalDataAvailable", &avail))
		f->available_bytes = avail;
}

/*
 * The processes whose lines are backup evidence: backupd (iCloud backup), BackupAgent and
 * BackupAgent2 (local backups), MobileBackup (the framework's own lines). Matched on the
 * process of the line's header, "Mon DD HH:MM:SS Name process[pid] <Level>: message", so a
 * message of another process that merely mentions backupd is not kept.
 */
static const char *const relevant_procs[] = { "backupd", "BackupAgent", "MobileBackup" };

int idev_syslog_line_relevant(const char *line)
{
	const char *br, *sp, *colon = strstr(line, ": ");
	size_t i;

	/* the header ends at the first ": "; its process is the word before the first "[pid]" */
	for (br = strchr(line, '['); br && (!colon || br < colon); br = strchr(br + 1, '[')) {
		const char *d = br + 1;
		size_t n;

		while (*d >= '0' && *d <= '9')
			d++;
		if (d == br + 1 || *d != ']')
			continue;
		for (sp = br; sp > line && sp[-1] != ' '; sp--)
			;
		n = (size_t)(br - sp);
		for (i = 0; i < sizeof(relevant_procs) / sizeof(relevant_procs[0]); i++) {
			size_t m = strlen(relevant_procs[i]);

			/* "BackupAgent2", "backupd(CloudKit)" */
			if (n >= m && strncmp(sp, relevant_procs[i], m) == 0)
				return 1;
		}
		return 0;
	}
	return 0;
}

/* Keeps the newest FACTS_EVIDENCE_MAX relevant lines (the latest attempt matters most). */
static void keep_line(struct device_facts *f, const char *line)
{
	if (!idev_syslog_line_relevant(line))
		return;
	if (f->n_syslog == FACTS_EVIDENCE_MAX) {
		memmove(f->syslog[0], f->syslog[1],
		        sizeof(f->syslog[0]) * (FACTS_EVIDENCE_MAX - 1));
		f->n_syslog--;
	}
	snprintf(f->syslog[f->n_syslog], FACTS_LINE_MAX, "%s", line);
	f->n_syslog++;
}

/* Reads the relay for ms; lines end at '\n' (followed by a NUL on the wire). Bounded line. */
static void sample_syslog(idevice_t dev, lockdownd_service_descriptor_t svc, int ms,
                          struct device_facts *f)
{
	syslog_relay_client_t sr = NULL;
	char buf[1], line[FACTS_LINE_MAX];
	size_t len = 0;
	uint64_t end = loop_now_ms() + (uint64_t)ms, now;

	if (syslog_relay_client_new(dev, svc, &sr) != SYSLOG_RELAY_E_SUCCESS) {
		log_debug("%s: syslog_relay client failed", f->udid);
		return;
	}
	while ((now = loop_now_ms()) < end) {
		uint32_t got = 0, i;
		syslog_relay_error_t e;

		e = syslog_relay_receive_with_timeout(sr, buf, sizeof(buf), &got,
		                                      (unsigned)(end - now));
		if (e != SYSLOG_RELAY_E_SUCCESS && e != SYSLOG_RELAY_E_TIMEOUT)
			break;
		for (i = 0; i < got; i++) {
			char c = buf[i];

			if (c == '\n' || c == '\0') {
				line[len] = '\0';
				if (len > 0)
					keep_line(f, line);
				len = 0;
			} else if (len < sizeof(line) - 1) {
				line[len++] = c; /* the rest of an overlong line is cut */
			}
		}
	}
	if (len > 0) {
		line[len] = '\0';
		keep_line(f, line);
	}
	syslog_relay_client_free(sr);
}

static void set_error(struct device_facts *f, enum facts_probe p, int lerr, const char *what)
{
	f->probe = p;
	f->lockdown_error = lerr;
	if (lerr)
		snprintf(f->error_text, sizeof(f->error_text), "%s (%d)", what, lerr);
	else
		snprintf(f->error_text, sizeof(f->error_text), "%s", what);
}

/* Still listed by usbmuxd? Decides "gone" versus "error" after a failed request. */
static bool device_present(const char *udid)
{
	idevice_t d = NULL;

	if (idevice_new_with_options(&d, udid, IDEVICE_LOOKUP_USBMUX) != IDEVICE_E_SUCCESS)
		return false;
	idevice_free(d);
	return true;
}

/*
 * Whether usbmuxd holds a pair record for udid: 0, -ENOENT (none, or an empty one) or another
 * -errno. The record decides whether a handshake is allowed: without one,
 * lockdownd_client_new_with_handshake() would send Pair (the Trust prompt).
 */
static int pair_record_check(const char *udid)
{
	char *rec = NULL;
	uint32_t len = 0;
	int r = usbmuxd_read_pair_record(udid, &rec, &len);

	free(rec);
	if (r >= 0 && len == 0)
		r = -ENOENT;
	return r < 0 ? r : 0;
}

static void map_handshake_error(struct device_facts *f, lockdownd_error_t e, const char *udid)
{
	switch (e) {
	case LOCKDOWN_E_PAIRING_DIALOG_RESPONSE_PENDING:
		f->pairing = FACTS_PAIRING_TRUST_PENDING;
		set_error(f, FACTS_PROBE_NOT_TRUSTED, e, "trust dialog pending");
		break;
	case LOCKDOWN_E_USER_DENIED_PAIRING:
		f->pairing = FACTS_PAIRING_DENIED;
		set_error(f, FACTS_PROBE_NOT_TRUSTED, e, "user denied pairing");
		break;
	case LOCKDOWN_E_INVALID_HOST_ID:
	case LOCKDOWN_E_INVALID_CONF:
		f->pairing = FACTS_PAIRING_INVALID;
		set_error(f, FACTS_PROBE_NOT_TRUSTED, e, "pair record not accepted");
		break;
	case LOCKDOWN_E_PASSWORD_PROTECTED:
		set_error(f, FACTS_PROBE_LOCKED, e, "device locked");
		break;
	default:
		if (e == LOCKDOWN_E_MUX_ERROR || !device_present(udid))
			set_error(f, FACTS_PROBE_GONE, e, "device gone during handshake");
		else
			set_error(f, FACTS_PROBE_ERROR, e, "lockdown handshake failed");
		break;
	}
}

/* One GetValue; a missing domain is not an error. false: the session broke (f set). */
static bool get_domain(lockdownd_client_t lc, const char *udid, const char *domain,
                       void (*read)(plist_t, struct device_facts *), struct device_facts *f)
{
	plist_t v = NULL;
	lockdownd_error_t e = lockdownd_get_value(lc, domain, NULL, &v);

	if (e == LOCKDOWN_E_SUCCESS) {
		if (v && plist_get_node_type(v) == PLIST_DICT)
			read(v, f);
		plist_free(v);
		return true;
	}
	plist_free(v);
	if (e == LOCKDOWN_E_MISSING_VALUE || e == LOCKDOWN_E_MISSING_KEY ||
	    e == LOCKDOWN_E_GET_PROHIBITED || e == LOCKDOWN_E_UNKNOWN_ERROR)
		return true; /* the domain is not there on this iOS: no values from it */
	if (e == LOCKDOWN_E_PASSWORD_PROTECTED)
		set_error(f, FACTS_PROBE_LOCKED, e, "device locked");
	else if (!device_present(udid))
		set_error(f, FACTS_PROBE_GONE, e, "device gone during GetValue");
	else
		set_error(f, FACTS_PROBE_ERROR, e, domain ? domain : "root GetValue failed");
	return false;
}

int idev_probe(const char *udid, const struct idev_probe_opts *opts, struct device_facts *f)
{
	idevice_t dev = NULL;
	lockdownd_client_t lc = NULL;
	lockdownd_service_descriptor_t svc = NULL;
	lockdownd_error_t le;
	idevice_error_t ie;
	int r;

	facts_init(f, udid);
	f->probed_at_ms = wall_now_ms();
	if (!udid || !udid[0] || strlen(udid) >= FACTS_UDID_MAX)
		return -EINVAL;

	ie = idevice_new_with_options(&dev, udid, IDEVICE_LOOKUP_USBMUX);
	if (ie != IDEVICE_E_SUCCESS) {
		set_error(f, FACTS_PROBE_GONE, 0, "device not found on usbmuxd");
		return 0;
	}

	r = pair_record_check(udid);
	if (r < 0) {
		if (r == -ENOENT) {
			f->pairing = FACTS_PAIRING_UNPAIRED;
			set_error(f, FACTS_PROBE_NOT_TRUSTED, 0, "no pair record on this host");
		} else if (!device_present(udid)) {
			set_error(f, FACTS_PROBE_GONE, 0, "device gone before the handshake");
		} else {
			set_error(f, FACTS_PROBE_ERROR, r, "ReadPairRecord failed");
		}
		r = 0;
		goto out;
	}

	le = lockdownd_client_new_with_handshake(dev, &lc, IDEV_LABEL);
	if (le != LOCKDOWN_E_SUCCESS) {
		lc = NULL;
		map_handshake_error(f, le, udid);
		r = 0;
		goto out;
	}
	f->probe = FACTS_PROBE_OK;
	f->error_text[0] = '\0';
	if (!get_domain(lc, udid, NULL, read_root, f) ||
	    !get_domain(lc, udid, "com.apple.mobile.backup", read_backup, f) ||
	    !get_domain(lc, udid, "com.apple.mobile.battery", read_battery, f) ||
	    !get_domain(lc, udid, "com.apple.disk_usage", read_disk, f)) {
		r = 0;
		goto out;
	}
	if (opts && opts->syslog_ms > 0 &&
	    lockdownd_start_service(lc, "com.apple.syslog_relay", &svc) == LOCKDOWN_E_SUCCESS) {
		/* end the lockdown session first: the relay is its own connection */
		lockdownd_client_free(lc);
		lc = NULL;
		sample_syslog(dev, svc, opts->syslog_ms, f);
	}
	r = 0;
out:
	if (svc)
		lockdownd_service_descriptor_free(svc);
	if (lc)
		lockdownd_client_free(lc);
	idevice_free(dev);
	return r;
}

/* ---- evidence capture ---- */

struct watch_np {
	const struct idev_watch_ops *ops;
	void *data;
};

/* libimobiledevice's notifier thread */
static void watch_np_cb(const char *name, void *data)
{
	struct watch_np *w = data;

	if (name && strcmp(name, IDEV_BACKUP_DOMAIN_CHANGED) == 0 && w->ops->changed)
		w->ops->changed(w->data);
}

/* Splits the relay's bytes into lines and passes the relevant ones on (overlong ones cut). */
struct watch_lines {
	char line[FACTS_LINE_MAX];
	size_t len;
	bool cut;
};

static void watch_bytes(struct watch_lines *wl, const char *buf, uint32_t n,
                        const struct idev_watch_ops *ops, void *data)
{
	uint32_t i;

	for (i = 0; i < n; i++) {
		char c = buf[i];

		if (c == '\n' || c == '\0') {
			wl->line[wl->len] = '\0';
			if (wl->len > 0 && idev_syslog_line_relevant(wl->line))
				ops->line(wl->line, data);
			wl->len = 0;
			continue;
		}
		if (wl->len < sizeof(wl->line) - 1)
			wl->line[wl->len++] = (unsigned char)c < 0x20 || c == 0x7f ? ' ' : c;
	}
}

int idev_watch(const char *udid, const struct idev_watch_ops *ops, void *data,
               const atomic_int *stop)
{
	idevice_t dev = NULL;
	lockdownd_client_t lc = NULL;
	lockdownd_service_descriptor_t svc = NULL, np_svc = NULL;
	syslog_relay_client_t sr = NULL;
	np_client_t np = NULL;
	struct watch_np wnp = { ops, data };
	struct watch_lines wl = { .len = 0 };
	bool np_on = false;
	char buf[4096];
	uint32_t chunk;
	int r;

	if (!udid || !udid[0] || strlen(udid) >= FACTS_UDID_MAX || !ops || !ops->line)
		return -EINVAL;
	if (idevice_new_with_options(&dev, udid, IDEVICE_LOOKUP_USBMUX) != IDEVICE_E_SUCCESS)
		return -ENODEV;
	/* never a handshake without a pair record: it would raise the Trust prompt */
	r = pair_record_check(udid);
	if (r < 0) {
		r = -EPERM;
		goto out;
	}
	if (lockdownd_client_new_with_handshake(dev, &lc, IDEV_WATCH_LABEL) != LOCKDOWN_E_SUCCESS) {
		lc = NULL;
		r = -EPERM;
		goto out;
	}
	if (lockdownd_start_service(lc, "com.apple.syslog_relay", &svc) != LOCKDOWN_E_SUCCESS) {
		r = -EIO;
		goto out;
	}
	/* notification_proxy is optional: a phone that refuses it is re-probed on the interval */
	if (ops->changed && lockdownd_start_service(lc, "com.apple.mobile.notification_proxy",
	                                            &np_svc) != LOCKDOWN_E_SUCCESS)
		np_svc = NULL;
	/* the services are connections of their own: end the lockdown session first */
	lockdownd_client_free(lc);
	lc = NULL;
	if (syslog_relay_client_new(dev, svc, &sr) != SYSLOG_RELAY_E_SUCCESS) {
		sr = NULL;
		r = -EIO;
		goto out;
	}
	/*
	 * libimobiledevice 1.3.0 reads a TLS service until the buffer is full and drops what it
	 * has at the timeout: over TLS only a byte at a time is safe (as idevicesyslog reads).
	 * A plain relay returns what arrived, so it is read in chunks.
	 */
	chunk = svc->ssl_enabled ? 1 : sizeof(buf);
	if (np_svc && np_client_new(dev, np_svc, &np) == NP_E_SUCCESS &&
	    np_observe_notification(np, IDEV_BACKUP_DOMAIN_CHANGED) == NP_E_SUCCESS &&
	    np_set_notify_callback(np, watch_np_cb, &wnp) == NP_E_SUCCESS)
		np_on = true;
	/* the phone granted the service and still nothing observes it (e.g. the notifier thread
	 * could not start): not the phone's refusal, say so rather than fall back in silence */
	if (np_svc && !np_on)
		log_warn("device '%s': cannot observe %s: re-probed on the interval", udid,
		         IDEV_BACKUP_DOMAIN_CHANGED);
	if (ops->up)
		ops->up(np_on, data);
	while (!*stop) {
		uint32_t got = 0;
		syslog_relay_error_t e;

		e = syslog_relay_receive_with_timeout(sr, buf, chunk, &got, IDEV_WATCH_POLL_MS);
		if (got > 0)
			watch_bytes(&wl, buf, got, ops, data);
		if (e != SYSLOG_RELAY_E_SUCCESS && e != SYSLOG_RELAY_E_TIMEOUT)
			break; /* the phone or usbmuxd ended the stream */
	}
	r = *stop ? 0 : -ECONNRESET;
out:
	if (np) {
		np_set_notify_callback(np, NULL, NULL); /* joins libimobiledevice's thread */
		np_client_free(np);
	}
	if (sr)
		syslog_relay_client_free(sr);
	if (svc)
		lockdownd_service_descriptor_free(svc);
	if (np_svc)
		lockdownd_service_descriptor_free(np_svc);
	if (lc)
		lockdownd_client_free(lc);
	idevice_free(dev);
	return r;
}

/* ---- actions ---- */

static void outcome_fail(struct idev_outcome *o, int code, const char *fmt, ...)
        __attribute__((format(printf, 3, 4)));

static void outcome_fail(struct idev_outcome *o, int code, const char *fmt, ...)
{
	va_list ap;

	o->ok = false;
	o->code = code;
	va_start(ap, fmt);
	vsnprintf(o->error, sizeof(o->error), fmt, ap);
	va_end(ap);
}

/* Reads the ErrorCode of a DLMessageProcessMessage reply; text gets ErrorDescription. */
static int reply_error_code(plist_t msg, char *text, size_t size)
{
	plist_t dict = plist_array_get_item(msg, 1), node;
	uint64_t code = 0;
	char *desc = NULL;

	text[0] = '\0';
	if (!dict || plist_get_node_type(dict) != PLIST_DICT)
		return -1;
	node = plist_dict_get_item(dict, "ErrorCode");
	if (node && plist_get_node_type(node) == PLIST_UINT)
		plist_get_uint_val(node, &code);
	node = plist_dict_get_item(dict, "ErrorDescription");
	if (node && plist_get_node_type(node) == PLIST_STRING) {
		plist_get_string_val(node, &desc);
		snprintf(text, size, "%s", desc ? desc : "");
		free(desc);
	}
	return (int)code;
}

static void do_cloud(idevice_t dev, lockdownd_client_t lockdown, const char *udid, bool enable,
                     struct idev_outcome *o)
{
	lockdownd_service_descriptor_t svc = NULL;
	mobilebackup2_client_t mb2 = NULL;
	double versions[2] = { 2.0, 2.1 }, remote = 0.0;
	plist_t opts = NULL, msg = NULL;
	char *dlmsg = NULL, text[IDEV_ERROR_MAX];
	lockdownd_error_t lerr;
	int code;

	/* idevicebackup2 starts mobilebackup2 with the escrow bag; so do we, the device expects it
	 */
	lerr = lockdownd_start_service_with_escrow_bag(lockdown, MOBILEBACKUP2_SERVICE_NAME, &svc);
	if (lerr != LOCKDOWN_E_SUCCESS) {
		outcome_fail(o, lerr, "cannot start %s (lockdown %d)", MOBILEBACKUP2_SERVICE_NAME,
		             lerr);
		goto out;
	}
	if (mobilebackup2_client_new(dev, svc, &mb2) != MOBILEBACKUP2_E_SUCCESS ||
	    mobilebackup2_version_exchange(mb2, versions, 2, &remote) != MOBILEBACKUP2_E_SUCCESS) {
		outcome_fail(o, -1, "mobilebackup2 version exchange failed");
		goto out;
	}
	opts = plist_new_dict();
	plist_dict_set_item(opts, "CloudBackupState", plist_new_bool(enable));
	if (mobilebackup2_send_request(mb2, "EnableCloudBackup", udid, udid, opts) !=
	    MOBILEBACKUP2_E_SUCCESS) {
		outcome_fail(o, -1, "sending EnableCloudBackup failed");
		goto out;
	}
	if (mobilebackup2_receive_message(mb2, &msg, &dlmsg) != MOBILEBACKUP2_E_SUCCESS || !msg) {
		outcome_fail(o, -1, "no reply to EnableCloudBackup");
		goto out;
	}
	code = reply_error_code(msg, text, sizeof(text));
	if (code == 0)
		o->ok = true;
	else
		outcome_fail(o, code, "%s", text[0] ? text : "EnableCloudBackup failed");
	mobilebackup2_send_message(mb2, "DLMessageDisconnect", NULL);
out:
	free(dlmsg);
	plist_free(msg);
	plist_free(opts);
	mobilebackup2_client_free(mb2);
	lockdownd_service_descriptor_free(svc);
}

static void do_restart(idevice_t dev, struct idev_outcome *o)
{
	diagnostics_relay_client_t diag = NULL;
	diagnostics_relay_error_t err;

	err = diagnostics_relay_client_start_service(dev, &diag, IDEV_ACTION_LABEL);
	if (err != DIAGNOSTICS_RELAY_E_SUCCESS) {
		outcome_fail(o, err, "cannot start diagnostics_relay");
		return;
	}
	err = diagnostics_relay_restart(diag, DIAGNOSTICS_RELAY_ACTION_FLAG_WAIT_FOR_DISCONNECT);
	if (err == DIAGNOSTICS_RELAY_E_SUCCESS)
		o->ok = true;
	else
		outcome_fail(o, err, "Restart was refused");
	/* the device is going away: Goodbye fails on the closed socket, as with idevicediagnostics
	 */
	diagnostics_relay_goodbye(diag);
	diagnostics_relay_client_free(diag);
}

void idev_act(const char *udid, enum idev_action action, struct idev_outcome *o)
{
	idevice_t dev = NULL;
	lockdownd_client_t lockdown = NULL;
	lockdownd_error_t lerr;

	memset(o, 0, sizeof(*o));
	if (idevice_new_with_options(&dev, udid, IDEVICE_LOOKUP_USBMUX) != IDEVICE_E_SUCCESS) {
		outcome_fail(o, -8, "device_disconnected");
		goto out;
	}
	if (pair_record_check(udid) < 0) {
		outcome_fail(o, -29, "not_trusted");
		goto out;
	}
	lerr = lockdownd_client_new_with_handshake(dev, &lockdown, IDEV_ACTION_LABEL);
	if (lerr != LOCKDOWN_E_SUCCESS) {
		lockdown = NULL;
		outcome_fail(o, lerr, "lockdown handshake failed (%d)", lerr);
		goto out;
	}
	if (action == IDEV_ACTION_RESTART) {
		/* diagnostics_relay starts its own lockdown session */
		lockdownd_client_free(lockdown);
		lockdown = NULL;
		do_restart(dev, o);
	} else {
		do_cloud(dev, lockdown, udid, action == IDEV_ACTION_CLOUD_ON, o);
	}
out:
	if (lockdown)
		lockdownd_client_free(lockdown);
	idevice_free(dev);
}

/* ---- the device list ---- */

static int cmp_udid(const void *a, const void *b)
{
	return strcmp((const char *)a, (const char *)b);
}

int idev_list(struct idev_list *ret)
{
	idevice_info_t *devs = NULL;
	int count = 0, i;
	size_t n = 0, k;

	ret->udid = NULL;
	ret->n = 0;
	if (idevice_get_device_list_extended(&devs, &count) != IDEVICE_E_SUCCESS) {
		int r = idev_mux_reachable();

		/* only an absent usbmuxd is "not there"; any other failure is a failed request */
		return r == -ENOENT || r == -ECONNREFUSED ? -ENOTCONN : -EIO;
	}
	if (count > IDEV_LIST_MAX) {
		log_warn("usbmuxd lists %d devices, only %d are watched", count, IDEV_LIST_MAX);
		count = IDEV_LIST_MAX;
	}
	if (count > 0) {
		ret->udid = calloc((size_t)count, sizeof(*ret->udid));
		if (!ret->udid) {
			idevice_device_list_extended_free(devs);
			return -ENOMEM;
		}
	}
	for (i = 0; i < count && devs && devs[i]; i++) {
		if (devs[i]->conn_type != CONNECTION_USBMUXD || !devs[i]->udid ||
		    !devs[i]->udid[0] || strlen(devs[i]->udid) >= FACTS_UDID_MAX)
			continue;
		snprintf(ret->udid[n++], FACTS_UDID_MAX, "%s", devs[i]->udid);
	}
	idevice_device_list_extended_free(devs);
	if (n > 1)
		qsort(ret->udid, n, sizeof(*ret->udid), cmp_udid);
	/* drop duplicates (usbmuxd lists a device once per connection type) */
	for (i = 0, k = 0; (size_t)i < n; i++)
		if (k == 0 || strcmp(ret->udid[k - 1], ret->udid[i]) != 0)
			memmove(ret->udid[k++], ret->udid[i], FACTS_UDID_MAX);
	ret->n = k;
	return 0;
}

void idev_list_free(struct idev_list *l)
{
	if (!l)
		return;
	free(l->udid);
	l->udid = NULL;
	l->n = 0;
}

/* ---- the usbmuxd socket ---- */

#define IDEV_MUX_DEFAULT "/var/run/usbmuxd"

/*
 * The address libusbmuxd 2.0.2 connects to (connect_usbmuxd_socket()), parsed the same way:
 * `UNIX:/path`, else HOST:PORT split at the last colon, the host in [] for IPv6; a value that
 * is neither means the default socket. The host must be numeric (or localhost): a name lookup
 * could block the loop thread. 0 when unusable.
 */
static socklen_t mux_addr(struct sockaddr_storage *ss)
{
	const char *env = getenv("USBMUXD_SOCKET_ADDRESS");
	struct sockaddr_un *un = (struct sockaddr_un *)ss;
	struct sockaddr_in *in = (struct sockaddr_in *)ss;
	struct sockaddr_in6 *in6 = (struct sockaddr_in6 *)ss;
	const char *path = IDEV_MUX_DEFAULT, *colon;
	char host[64], *h = host;
	size_t hlen;
	long port;
	char *end;

	memset(ss, 0, sizeof(*ss));
	if (env && strncmp(env, "UNIX:", 5) == 0) {
		if (env[5])
			path = env + 5;
	} else if (env && (colon = strrchr(env, ':'))) {
		hlen = (size_t)(colon - env);
		errno = 0;
		port = strtol(colon + 1, &end, 10);
		if (errno || *end || end == colon + 1 || port <= 0 || port > 65535 || hlen == 0)
			goto unix_socket; /* libusbmuxd falls back to the default too */
		if (hlen >= sizeof(host))
			return 0;
		memcpy(host, env, hlen);
		host[hlen] = '\0';
		if (host[0] == '[') {
			h = host + 1;
			if (strchr(h, ']'))
				*strchr(h, ']') = '\0';
		}
		if (strcmp(h, "localhost") == 0 || inet_pton(AF_INET, h, &in->sin_addr) == 1) {
			if (strcmp(h, "localhost") == 0)
				in->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
			in->sin_family = AF_INET;
			in->sin_port = htons((uint16_t)port);
			return sizeof(*in);
		}
		if (inet_pton(AF_INET6, h, &in6->sin6_addr) == 1) {
			in6->sin6_family = AF_INET6;
			in6->sin6_port = htons((uint16_t)port);
			return sizeof(*in6);
		}
		return 0;
	}
unix_socket:
	if (strlen(path) >= sizeof(un->sun_path))
		return 0;
	un->sun_family = AF_UNIX;
	memcpy(un->sun_path, path, strlen(path) + 1);
	return sizeof(*un);
}

void idev_mux_unix_path(char *buf, size_t size)
{
	struct sockaddr_storage ss;

	if (mux_addr(&ss) && ss.ss_family == AF_UNIX)
		snprintf(buf, size, "%s", ((struct sockaddr_un *)&ss)->sun_path);
	else if (size)
		buf[0] = '\0';
}

/* A connection to usbmuxd made within 1 s (non-blocking connect): a non-blocking fd, -errno. */
static int mux_connect(void)
{
	struct sockaddr_storage ss;
	struct pollfd pfd = { .events = POLLOUT };
	socklen_t len = mux_addr(&ss), elen = sizeof(int);
	int fd, err = 0, r;

	if (!len)
		return -EINVAL;
	fd = socket(ss.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -errno;
	r = connect(fd, (struct sockaddr *)&ss, len);
	if (r < 0 && (errno == EINPROGRESS || errno == EAGAIN)) {
		pfd.fd = fd;
		r = poll(&pfd, 1, 1000);
		if (r == 0) {
			r = -ETIMEDOUT;
			goto out;
		}
		if (r < 0 || getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &elen) < 0) {
			r = -errno;
			goto out;
		}
		r = -err;
		goto out;
	}
	r = r < 0 ? -errno : 0;
out:
	if (r < 0) {
		close(fd);
		return r;
	}
	return fd;
}

int idev_mux_reachable(void)
{
	int fd = mux_connect();

	if (fd < 0)
		return fd;
	close(fd);
	return 0;
}

/* ---- usbmuxd events ---- */

/* The usbmuxd header: four u32 in host byte order (usbmuxd and its clients share the host). */
#define MUX_HEADER_SIZE   16
#define MUX_VERSION_PLIST 1
#define MUX_MESSAGE_PLIST 8
#define MUX_LISTEN_TAG    1
/* what libimobiledevice's libusbmuxd says it speaks: usbmuxd then sends plist events */
#define MUX_LIB_VERSION 3
/* messages handled per idev_listen_read(): a flood cannot hold the loop thread */
#define MUX_READ_BATCH 64

struct mux_dev {
	uint32_t id;
	char udid[FACTS_UDID_MAX];
};

struct idev_listen {
	int fd;
	bool listening; /* the Result came */
	idev_mux_fn fn;
	void *data;
	struct mux_dev *devs; /* USB devices announced on this connection, unordered */
	size_t n_devs, cap_devs;
	bool full_logged;
	size_t have; /* bytes of the current message in buf */
	unsigned char buf[IDEV_MUX_MSG_MAX];
};

static int mux_send_listen(int fd)
{
	plist_t p = plist_new_dict();
	char *xml = NULL, *msg = NULL;
	uint32_t xlen = 0, hdr[4];
	ssize_t n;
	int r;

	if (!p)
		return -ENOMEM;
	plist_dict_set_item(p, "MessageType", plist_new_string("Listen"));
	plist_dict_set_item(p, "ClientVersionString", plist_new_string(IDEV_ACTION_LABEL));
	plist_dict_set_item(p, "ProgName", plist_new_string(program_invocation_short_name));
	plist_dict_set_item(p, "kLibUSBMuxVersion", plist_new_uint(MUX_LIB_VERSION));
	plist_to_xml(p, &xml, &xlen);
	if (!xml || !(msg = malloc(MUX_HEADER_SIZE + (size_t)xlen))) {
		r = -ENOMEM;
		goto out;
	}
	hdr[0] = MUX_HEADER_SIZE + xlen;
	hdr[1] = MUX_VERSION_PLIST;
	hdr[2] = MUX_MESSAGE_PLIST;
	hdr[3] = MUX_LISTEN_TAG;
	memcpy(msg, hdr, MUX_HEADER_SIZE);
	memcpy(msg + MUX_HEADER_SIZE, xml, xlen);
	/* a new socket's send buffer takes these few hundred bytes at once */
	n = send(fd, msg, hdr[0], MSG_NOSIGNAL);
	r = n < 0 ? -errno : (size_t)n != hdr[0] ? -EIO : 0;
out:
	free(msg);
	if (xml)
		plist_to_xml_free(xml);
	plist_free(p);
	return r;
}

int idev_listen_open(idev_mux_fn fn, void *data, struct idev_listen **ret)
{
	struct idev_listen *l = NULL;
	int r;

	if (!ret || !fn)
		return -EINVAL;
	*ret = NULL;
	l = calloc(1, sizeof(*l));
	if (!l)
		return -ENOMEM;
	l->fn = fn;
	l->data = data;
	l->fd = mux_connect();
	if (l->fd < 0) {
		r = l->fd;
		goto out;
	}
	r = mux_send_listen(l->fd);
	if (r < 0)
		goto out;
	*ret = l;
	l = NULL;
out:
	idev_listen_free(l);
	return r;
}

int idev_listen_fd(const struct idev_listen *l)
{
	return l ? l->fd : -1;
}

struct idev_listen *idev_listen_free(struct idev_listen *l)
{
	if (!l)
		return NULL;
	if (l->fd >= 0)
		close(l->fd);
	free(l->devs);
	free(l);
	return NULL;
}

/* A uint in dict, up to UINT32_MAX and not 0 (usbmuxd's device handles start at 1). */
static bool mux_get_id(plist_t dict, uint32_t *id)
{
	plist_t n = dict ? plist_dict_get_item(dict, "DeviceID") : NULL;
	uint64_t v = 0;

	if (!n || plist_get_node_type(n) != PLIST_UINT)
		return false;
	plist_get_uint_val(n, &v);
	if (v == 0 || v > UINT32_MAX)
		return false;
	*id = (uint32_t)v;
	return true;
}

/* A string in dict, NUL-free, or NULL. */
static const char *mux_get_str(plist_t dict, const char *key)
{
	plist_t n = plist_dict_get_item(dict, key);
	uint64_t len = 0;
	const char *s;

	if (!n || plist_get_node_type(n) != PLIST_STRING)
		return NULL;
	s = plist_get_string_ptr(n, &len);
	return s && strlen(s) == len ? s : NULL;
}

/*
 * The UDID as libusbmuxd 2.0.2 spells it (what idev_list() and the helpers see): usbmuxd
 * reports 24-digit serials without their dash; 40 'f's (a device without a serial) get the
 * handle as their last 8 digits. 0 or -EINVAL (empty or too long).
 */
static int mux_udid(const char *serial, uint32_t id, char udid[FACTS_UDID_MAX])
{
	size_t len = strlen(serial);

	if (len == 0 || len + 1 >= FACTS_UDID_MAX)
		return -EINVAL;
	if (len == 24) {
		memcpy(udid, serial, 8);
		udid[8] = '-';
		memcpy(udid + 9, serial + 8, 17);
		return 0;
	}
	memcpy(udid, serial, len + 1);
	if (len == 40 && strspn(serial, "fF") == 40)
		snprintf(udid + 32, FACTS_UDID_MAX - 32, "%08x", id);
	return 0;
}

static struct mux_dev *mux_find(struct idev_listen *l, uint32_t id)
{
	for (size_t i = 0; i < l->n_devs; i++)
		if (l->devs[i].id == id)
			return &l->devs[i];
	return NULL;
}

static int mux_attached(struct idev_listen *l, plist_t msg)
{
	plist_t props = plist_dict_get_item(msg, "Properties");
	char udid[FACTS_UDID_MAX];
	const char *serial, *type;
	struct mux_dev *d;
	uint32_t id;

	if (!props || plist_get_node_type(props) != PLIST_DICT)
		return -EPROTO;
	serial = mux_get_str(props, "SerialNumber");
	type = mux_get_str(props, "ConnectionType");
	if ((!mux_get_id(props, &id) && !mux_get_id(msg, &id)) || !serial || !type ||
	    mux_udid(serial, id, udid) < 0) {
		log_debug("usbmuxd: an Attached event without a usable DeviceID, SerialNumber or "
		          "ConnectionType ignored");
		return 0;
	}
	if (strcmp(type, "USB") != 0)
		return 0; /* network devices are not watched */
	d = mux_find(l, id);
	if (!d) {
		if (l->n_devs == l->cap_devs) {
			size_t cap = l->cap_devs ? 2 * l->cap_devs : 16;
			struct mux_dev *p;

			if (l->n_devs >= IDEV_LIST_MAX) {
				if (!l->full_logged)
					log_warn(
					        "usbmuxd announces more than %d devices, only %d are "
					        "watched",
					        IDEV_LIST_MAX, IDEV_LIST_MAX);
				l->full_logged = true;
				return 0;
			}
			p = realloc(l->devs, cap * sizeof(*p));
			if (!p)
				return -ENOMEM;
			l->devs = p;
			l->cap_devs = cap;
		}
		d = &l->devs[l->n_devs++];
		d->id = id;
	}
	memcpy(d->udid, udid, sizeof(udid));
	l->fn(IDEV_MUX_ATTACHED, udid, l->data);
	return 0;
}

/* Detached (removes the device) or Paired: both name only the DeviceID. */
static void mux_known_event(struct idev_listen *l, plist_t msg, enum idev_mux_event ev)
{
	char udid[FACTS_UDID_MAX];
	struct mux_dev *d;
	uint32_t id;

	if (!mux_get_id(msg, &id) || !(d = mux_find(l, id)))
		return; /* a network device's, or one never announced */
	memcpy(udid, d->udid, sizeof(udid));
	if (ev == IDEV_MUX_DETACHED)
		*d = l->devs[--l->n_devs];
	l->fn(ev, udid, l->data);
}

static int mux_result(struct idev_listen *l, plist_t msg)
{
	plist_t n = plist_dict_get_item(msg, "Number");
	uint64_t v = 1;

	if (l->listening)
		return 0; /* nothing else was asked */
	if (n && plist_get_node_type(n) == PLIST_UINT)
		plist_get_uint_val(n, &v);
	if (v != 0) {
		log_debug("usbmuxd refused Listen (result %" PRIu64 ")", v);
		return -ECONNREFUSED;
	}
	l->listening = true;
	l->fn(IDEV_MUX_LISTENING, NULL, l->data);
	return 0;
}

/* One whole message in l->buf. */
static int mux_message(struct idev_listen *l, uint32_t len, uint32_t type)
{
	plist_t msg = NULL;
	const char *mt;
	int r = 0;

	if (type != MUX_MESSAGE_PLIST || len == MUX_HEADER_SIZE)
		return -EPROTO; /* only XML plists were asked for */
	plist_from_xml((const char *)l->buf + MUX_HEADER_SIZE, len - MUX_HEADER_SIZE, &msg);
	if (!msg || plist_get_node_type(msg) != PLIST_DICT) {
		r = -EPROTO;
		goto out;
	}
	mt = mux_get_str(msg, "MessageType");
	if (!mt)
		r = -EPROTO;
	else if (strcmp(mt, "Result") == 0)
		r = mux_result(l, msg);
	else if (strcmp(mt, "Attached") == 0)
		r = mux_attached(l, msg);
	else if (strcmp(mt, "Detached") == 0)
		mux_known_event(l, msg, IDEV_MUX_DETACHED);
	else if (strcmp(mt, "Paired") == 0)
		mux_known_event(l, msg, IDEV_MUX_PAIRED);
	else /* a newer usbmuxd's event: not one of ours */
		log_debug("usbmuxd: a '%s' message on the Listen connection ignored", mt);
out:
	plist_free(msg);
	return r;
}

int idev_listen_read(struct idev_listen *l)
{
	uint32_t hdr[4] = { 0 };
	int batch = 0;

	if (!l || l->fd < 0)
		return -EINVAL;
	for (;;) {
		size_t need = MUX_HEADER_SIZE;
		ssize_t n;
		int r;

		if (l->have >= MUX_HEADER_SIZE) { /* checked when it came in */
			memcpy(hdr, l->buf, sizeof(hdr));
			need = hdr[0];
		}
		n = read(l->fd, l->buf + l->have, need - l->have);

		if (n == 0)
			return -ECONNRESET;
		if (n < 0) {
			if (errno == EINTR)
				continue;
			return errno == EAGAIN ? 0 : -errno;
		}
		l->have += (size_t)n;
		if (l->have < MUX_HEADER_SIZE)
			continue;
		memcpy(hdr, l->buf, sizeof(hdr));
		if (hdr[0] < MUX_HEADER_SIZE)
			return -EPROTO;
		if (hdr[0] > IDEV_MUX_MSG_MAX)
			return -EMSGSIZE;
		if (l->have < hdr[0])
			continue;
		l->have = 0;
		r = mux_message(l, hdr[0], hdr[2]);
		if (r < 0)
			return r;
		if (++batch >= MUX_READ_BATCH)
			return 0; /* the rest at the loop's next turn (level-triggered) */
	}
}
