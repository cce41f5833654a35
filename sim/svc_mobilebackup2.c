// SPDX-License-Identifier: MIT
/*
 * svc_mobilebackup2: com.apple.mobilebackup2, the DeviceLink backup service
 * (docs/device-protocols.md "Services"), enough of it for Debian's `idevicebackup2` 1.3.0 to run
 * `cloud on|off` and a real, small `backup DIR` against a simulated phone.
 *
 * Why a state machine and not a script: the host interleaves binary plists with raw file
 * streams on one socket, answers every device request with a DLMessageStatusResponse, and a
 * scripted phone must be able to stall (delay_ms, a lost passcode prompt) without blocking the
 * one loop that serves every other phone. So input() only parses and advances the state, and
 * everything the device does on its own (delays, pacing a large upload under the connection's
 * output cap) runs from svc_add_timer callbacks.
 *
 * The conversation, device first:
 *   -> ["DLMessageVersionExchange", 400, 0]      (400: Debian's 1.3.0 accepts it, iOS 14+ sends it)
 *   <- ["DLMessageVersionExchange", "DLVersionsOk", n]
 *   -> ["DLMessageDeviceReady"]
 *   <- ProcessMessage Hello   -> Response {ErrorCode 0, ProtocolVersion 2.1}
 *   <- ProcessMessage EnableCloudBackup {CloudBackupState} -> Response per dev->cloud
 *   <- ProcessMessage Backup  -> [PurgeDiskSpace] DownloadFiles(Status.plist) GetFreeDiskSpace
 *                                CreateDirectory×buckets UploadFiles×batches Response
 *   <- DLMessageDisconnect    -> close
 * A backup uploads `file_count` data files of `file_size` bytes at UDID/<sha1[:2]>/<sha1>, then
 * Manifest.db (a placeholder, not SQLite), Manifest.plist and Status.plist (SnapshotState
 * "finished", which is what the host checks). The first backup of a device is full; later ones
 * (dev->backups_done > 0, no ForceFullBackup) upload only a rotating quarter of the data files
 * with new contents, and Status.plist says IsFullBackup false.
 *
 * PurgeDiskSpace: iOS 14+ sends it first and waits for a StatusResponse. libimobiledevice 1.3.0
 * does not know the message and silently waits for the next one, so both sides wait: the backup
 * hangs until the host gives up. The simulator reproduces exactly that (it waits for a reply and
 * carries on if a newer host sends one); a caller must bound the tool with a deadline.
 *
 * Other outcomes: a scripted error_code is answered after delay_ms as
 * ["DLMessageProcessMessage", {MessageName:"Response", ErrorCode, ErrorDescription}] (208 makes
 * idevicebackup2 exit 48); a host reporting less free space than the backup needs gets 105; a
 * failed upload (non-zero StatusResponse) 104; requests not simulated (Info, List, Restore,
 * Unback, ChangePassword) get 1000, which is not an MBErrorDomain code.
 *
 * Journal (sim_journal): "cloud_backup" {enable, error_code}; "backup_started" {full};
 * "purge_disk_space"; "backup_finished" {ok, error_code, files} where files counts every file
 * uploaded (data and the three metadata files, as the host's "Received N files") and
 * error_code -1 means the host went away mid-backup. Success sets com.apple.mobile.backup
 * LastiTunesBackupDate (Apple seconds, the simulated clock) and counts dev->backups_done;
 * EnableCloudBackup success sets CloudBackupEnabled. Both go through the model, so
 * notification_proxy observers hear com.apple.mobile.backup.domain_changed.
 *
 * Bad input (a malformed frame, a raw stream that breaks its own format) closes the connection.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cjson/cJSON.h>
#include <openssl/evp.h>

#include "log.h"
#include "sim.h"
#include "svc.h"
#include "timefmt.h"

#define MB2_DL_VERSION_MAJOR 400
#define MB2_DL_VERSION_MINOR 0
#define MB2_EMPTY            "___EmptyParameterString___"
#define MB2_BACKUP_DOMAIN    "com.apple.mobile.backup"

/* Raw stream codes. */
#define MB2_CODE_SUCCESS      0x00
#define MB2_CODE_ERROR_LOCAL  0x06
#define MB2_CODE_ERROR_REMOTE 0x0b
#define MB2_CODE_FILE_DATA    0x0c

#define MB2_NAME_MAX    4096u         /* the host's own filename limit */
#define MB2_BLOCK_MAX   (1u << 20)    /* a host data block (it sends 32 KiB) */
#define MB2_CHUNK       (32u * 1024)  /* device data block, as the host reads them */
#define MB2_TICK_BUDGET (512u * 1024) /* bytes queued per timer tick: fair to other phones */
#define MB2_RETRY_MS    5             /* output cap reached: try again after this */
#define MB2_BATCH_BYTES (4ull << 20)  /* one UploadFiles message carries about this much */
#define MB2_BATCH_FILES 64
#define MB2_BUCKETS     256
/* Not an MBErrorDomain code: the simulator answers requests it does not implement with it. */
#define MB2_E_UNSUPPORTED 1000
#define MB2_E_NO_SPACE    105
#define MB2_E_UPLOAD      104

enum mb2_phase {
	MB2_PHASE_VERSION, /* sent VersionExchange, expecting DLVersionsOk */
	MB2_PHASE_HELLO,   /* sent DeviceReady, expecting Hello */
	MB2_PHASE_IDLE,    /* expecting a request */
	MB2_PHASE_BUSY,    /* a backup step runs from a timer */
	MB2_PHASE_STREAM,  /* reading the host's file stream (after DownloadFiles) */
	MB2_PHASE_STATUS,  /* expecting DLMessageStatusResponse for step */
};

enum mb2_step {
	MB2_STEP_PURGE,
	MB2_STEP_DOWNLOAD,
	MB2_STEP_FREESPACE,
	MB2_STEP_MKDIR,
	MB2_STEP_UPLOAD,
};

/* Host -> device file stream parser (answering DownloadFiles). */
enum mb2_rs {
	MB2_RS_NAMELEN,
	MB2_RS_BLOCK,
};

/* Device -> host upload position inside the current file. */
enum mb2_up {
	MB2_UP_NAMES,
	MB2_UP_DATA,
	MB2_UP_END,
};

enum mb2_meta {
	MB2_META_DB,
	MB2_META_MANIFEST,
	MB2_META_STATUS,
	_MB2_META_MAX,
};

static const char *const mb2_meta_name[_MB2_META_MAX] = {
	[MB2_META_DB] = "Manifest.db",
	[MB2_META_MANIFEST] = "Manifest.plist",
	[MB2_META_STATUS] = "Status.plist",
};

struct mb2_backup {
	bool full;
	int n_data;         /* data files in this backup (all, or the changed ones) */
	int first_changed;  /* incremental: data files first_changed.. (mod file_count) */
	int generation;     /* content generation: dev->backups_done at start */
	int file_count;     /* copied from dev->backup at start: a control change mid-run */
	uint64_t file_size; /* must not corrupt the stream */
	uint64_t total;     /* bytes to upload */
	uint64_t sent;      /* data bytes uploaded so far */
	uint8_t *meta[_MB2_META_MAX];
	size_t meta_len[_MB2_META_MAX];
	bool bucket[MB2_BUCKETS];
	int next_bucket;
	int files_sent;
	/* current upload batch: items [batch_first, batch_end); item i < n_data is a data file */
	int batch_first, batch_end, item;
	enum mb2_up up;
	uint64_t off; /* bytes of the current item sent */
	uint64_t rng; /* content generator of the current data file */
	bool host_had_status;
};

struct mb2_state {
	enum mb2_phase phase;
	enum mb2_step step;
	bool closing;
	/* raw stream parser */
	enum mb2_rs rs;
	struct mb2_backup *bk;
};

/* ---- small helpers ---- */

static const char *mb2_string(plist_t node)
{
	if (!node || plist_get_node_type(node) != PLIST_STRING)
		return NULL;
	return plist_get_string_ptr(node, NULL);
}

static uint32_t mb2_be32(const uint8_t *p)
{
	return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

static void mb2_put_be32(uint8_t *p, uint32_t v)
{
	p[0] = (uint8_t)(v >> 24);
	p[1] = (uint8_t)(v >> 16);
	p[2] = (uint8_t)(v >> 8);
	p[3] = (uint8_t)v;
}

static const char *mb2_default_text(int code)
{
	switch (code) {
	case 1:
		return "Error copying keychain data";
	case 104:
		return "Multiple errors uploading files";
	case 105:
		return "Insufficient free disk space on drive to back up";
	case 205:
	case 103:
		return "Error reading backup properties";
	case 207:
		return "Invalid password when restoring encrypted backup";
	case 208:
		return "Device locked";
	case 212:
		return "Unable to backup until Setup is finished";
	default:
		return "Operation failed";
	}
}

/* ["DLMessageProcessMessage", {MessageName:"Response", ErrorCode, [ErrorDescription], extra…}] */
static int mb2_send_response(struct svc_conn *c, int code, const char *text, plist_t extra)
{
	plist_t msg = plist_new_array();
	plist_t dict = extra ? extra : plist_new_dict();
	int r;

	plist_dict_set_item(dict, "MessageName", plist_new_string("Response"));
	/* the host insists on an unsigned integer; negative codes wrap as they do on a phone */
	plist_dict_set_item(dict, "ErrorCode", plist_new_uint((uint64_t)(int64_t)code));
	if (code != 0)
		plist_dict_set_item(
		        dict, "ErrorDescription",
		        plist_new_string(text && *text ? text : mb2_default_text(code)));
	plist_array_append_item(msg, plist_new_string("DLMessageProcessMessage"));
	plist_array_append_item(msg, dict);
	r = svc_write_plist(c, msg, true);
	plist_free(msg);
	return r;
}

static int mb2_send_simple(struct svc_conn *c, const char *name, plist_t a1, plist_t a2, plist_t a3)
{
	plist_t msg = plist_new_array();
	int r;

	plist_array_append_item(msg, plist_new_string(name));
	if (a1)
		plist_array_append_item(msg, a1);
	if (a2)
		plist_array_append_item(msg, a2);
	if (a3)
		plist_array_append_item(msg, a3);
	r = svc_write_plist(c, msg, true);
	plist_free(msg);
	return r;
}

static void mb2_sha1_hex(const char *s, char out[41])
{
	static const char hex[] = "0123456789abcdef";
	unsigned char md[EVP_MAX_MD_SIZE];
	unsigned int n = 0;
	unsigned int i;

	if (!EVP_Digest(s, strlen(s), md, &n, EVP_sha1(), NULL) || n != 20)
		memset(md, 0, sizeof(md)); /* cannot happen with the default provider */
	for (i = 0; i < 20; i++) {
		out[2 * i] = hex[md[i] >> 4];
		out[2 * i + 1] = hex[md[i] & 15];
	}
	out[40] = '\0';
}

/* A data file's name is SHA1("<domain>-<relative path>"), as on a real phone, so it is stable
 * across backups and an incremental backup overwrites the same files. */
static void mb2_data_name(int index, char out[41])
{
	char src[96];

	snprintf(src, sizeof(src), "HomeDomain-Library/CradleSim/file%06d.dat", index);
	mb2_sha1_hex(src, out);
}

static int mb2_data_index(const struct mb2_backup *bk, int item)
{
	return bk->full ? item : (bk->first_changed + item) % bk->file_count;
}

/* ---- metadata files ---- */

static plist_t mb2_value(struct sim_device *dev, const char *domain, const char *key)
{
	plist_t d = plist_dict_get_item(dev->values, domain);

	if (!d || plist_get_node_type(d) != PLIST_DICT)
		return NULL;
	return plist_dict_get_item(d, key);
}

static int mb2_to_bin(plist_t p, uint8_t **ret, size_t *ret_len)
{
	char *data = NULL;
	uint32_t len = 0;

	plist_to_bin(p, &data, &len);
	plist_free(p);
	if (!data)
		return -ENOMEM;
	*ret = (uint8_t *)data;
	*ret_len = len;
	return 0;
}

static int mb2_make_meta(struct sim_device *dev, struct mb2_backup *bk, int64_t now_mac)
{
	static const char *const lockdown_keys[] = { "ProductVersion", "ProductType",
		                                     "BuildVersion",   "DeviceName",
		                                     "SerialNumber",   NULL };
	static const char placeholder[] = "cradle-sim: Manifest.db is not simulated (not SQLite)\n";
	plist_t status, manifest, lockdown;
	char uuid_src[128], uuid[41];
	int i, r;

	snprintf(uuid_src, sizeof(uuid_src), "%s/%d", dev->udid, bk->generation);
	mb2_sha1_hex(uuid_src, uuid);
	uuid[32] = '\0';

	status = plist_new_dict();
	plist_dict_set_item(status, "BackupState", plist_new_string("new"));
	plist_dict_set_item(status, "Date", plist_new_date((int32_t)now_mac, 0));
	plist_dict_set_item(status, "IsFullBackup", plist_new_bool(bk->full));
	plist_dict_set_item(status, "SnapshotState", plist_new_string("finished"));
	plist_dict_set_item(status, "UUID", plist_new_string(uuid));
	plist_dict_set_item(status, "Version", plist_new_string("3.3"));
	r = mb2_to_bin(status, &bk->meta[MB2_META_STATUS], &bk->meta_len[MB2_META_STATUS]);
	if (r < 0)
		return r;

	lockdown = plist_new_dict();
	for (i = 0; lockdown_keys[i]; i++) {
		plist_t v = mb2_value(dev, "", lockdown_keys[i]);

		if (v)
			plist_dict_set_item(lockdown, lockdown_keys[i], plist_copy(v));
	}
	plist_dict_set_item(lockdown, "UniqueDeviceID", plist_new_string(dev->udid));
	manifest = plist_new_dict();
	plist_dict_set_item(manifest, "Version", plist_new_string("10.0"));
	plist_dict_set_item(manifest, "IsEncrypted", plist_new_bool(0));
	plist_dict_set_item(manifest, "Date", plist_new_date((int32_t)now_mac, 0));
	plist_dict_set_item(manifest, "SystemDomainsVersion", plist_new_string("24.0"));
	plist_dict_set_item(manifest, "WasPasscodeSet", plist_new_bool(0));
	plist_dict_set_item(manifest, "Lockdown", lockdown);
	plist_dict_set_item(manifest, "Applications", plist_new_dict());
	r = mb2_to_bin(manifest, &bk->meta[MB2_META_MANIFEST], &bk->meta_len[MB2_META_MANIFEST]);
	if (r < 0)
		return r;

	bk->meta[MB2_META_DB] = malloc(sizeof(placeholder) - 1);
	if (!bk->meta[MB2_META_DB])
		return -ENOMEM;
	memcpy(bk->meta[MB2_META_DB], placeholder, sizeof(placeholder) - 1);
	bk->meta_len[MB2_META_DB] = sizeof(placeholder) - 1;
	return 0;
}

static void mb2_backup_free(struct mb2_backup *bk)
{
	int i;

	if (!bk)
		return;
	for (i = 0; i < _MB2_META_MAX; i++)
		free(bk->meta[i]);
	free(bk);
}

/* ---- the end of a backup ---- */

static void mb2_journal_finished(struct sim_device *dev, bool ok, int code, int files)
{
	cJSON *f = cJSON_CreateObject();

	if (f) {
		cJSON_AddBoolToObject(f, "ok", ok);
		cJSON_AddNumberToObject(f, "error_code", code);
		cJSON_AddNumberToObject(f, "files", files);
	}
	sim_journal(dev, "backup_finished", f);
}

/* Ends the running backup with an MBErrorDomain error; the connection stays usable. */
static int mb2_backup_fail(struct svc_conn *c, int code, const char *text)
{
	struct mb2_state *st = *svc_state(c);
	int files = st->bk ? st->bk->files_sent : 0;

	mb2_backup_free(st->bk);
	st->bk = NULL;
	st->phase = MB2_PHASE_IDLE;
	mb2_journal_finished(svc_device(c), false, code, files);
	log_info("mobilebackup2 %s: backup failed: %d", svc_device(c)->udid, code);
	return mb2_send_response(c, code, text, NULL);
}

static int mb2_backup_succeed(struct svc_conn *c)
{
	struct mb2_state *st = *svc_state(c);
	struct sim_device *dev = svc_device(c);
	int files = st->bk->files_sent;
	int64_t now_mac = timefmt_unix_to_mac(sim_clock_ms(svc_sim(c)) / 1000);

	/* through the model: the backup domain changed, observers hear domain_changed */
	sim_device_set_value(svc_sim(c), dev, MB2_BACKUP_DOMAIN, "LastiTunesBackupDate",
	                     plist_new_uint((uint64_t)now_mac));
	dev->backups_done++;
	mb2_backup_free(st->bk);
	st->bk = NULL;
	st->phase = MB2_PHASE_IDLE;
	mb2_journal_finished(dev, true, 0, files);
	return mb2_send_response(c, 0, NULL, NULL);
}

/* ---- upload (device -> host raw stream) ---- */

static uint64_t mb2_item_size(const struct mb2_backup *bk, int item)
{
	return item < bk->n_data ? bk->file_size : bk->meta_len[item - bk->n_data];
}

static int mb2_items(const struct mb2_backup *bk)
{
	return bk->n_data + _MB2_META_MAX;
}

static void mb2_item_paths(struct svc_conn *c, const struct mb2_backup *bk, int item, char *dname,
                           size_t dlen, char *path, size_t plen)
{
	const char *udid = svc_device(c)->udid;

	if (item < bk->n_data) {
		char h[41];

		mb2_data_name(mb2_data_index(bk, item), h);
		snprintf(dname, dlen, "%s", h);
		snprintf(path, plen, "%s/%.2s/%s", udid, h, h);
	} else {
		const char *n = mb2_meta_name[item - bk->n_data];

		snprintf(dname, dlen, "%s", n);
		snprintf(path, plen, "%s/%s", udid, n);
	}
}

/* Fills buf with the next bytes of a data file: xorshift64, seeded per file and generation,
 * so an incremental backup really changes the files it uploads. */
static void mb2_fill(uint64_t *rng, uint8_t *buf, size_t len)
{
	size_t i;

	for (i = 0; i < len; i++) {
		if ((i & 7) == 0) {
			*rng ^= *rng << 13;
			*rng ^= *rng >> 7;
			*rng ^= *rng << 17;
		}
		buf[i] = (uint8_t)(*rng >> ((i & 7) * 8));
	}
}

/* Writes one unit of the upload. 1 = progressed, 0 = output full (retry later), 2 = batch
 * stream complete, -errno = give up. */
static int mb2_upload_unit(struct svc_conn *c, struct mb2_backup *bk, uint8_t *buf)
{
	int r;

	if (bk->item >= bk->batch_end) {
		uint8_t zero[4] = { 0 };

		r = svc_write(c, zero, 4);
		return r == -ENOBUFS ? 0 : r < 0 ? r : 2;
	}
	if (bk->up == MB2_UP_NAMES) {
		char dname[64], path[160];
		size_t dl, pl;

		mb2_item_paths(c, bk, bk->item, dname, sizeof(dname), path, sizeof(path));
		dl = strlen(dname);
		pl = strlen(path);
		mb2_put_be32(buf, (uint32_t)dl);
		memcpy(buf + 4, dname, dl);
		mb2_put_be32(buf + 4 + dl, (uint32_t)pl);
		memcpy(buf + 8 + dl, path, pl);
		r = svc_write(c, buf, 8 + dl + pl);
		if (r < 0)
			return r == -ENOBUFS ? 0 : r;
		if (bk->item < bk->n_data) {
			bk->rng = 0x9e3779b97f4a7c15ull ^
			          (uint64_t)mb2_data_index(bk, bk->item) * 0x100000001b3ull ^
			          (uint64_t)bk->generation << 40;
			if (!bk->rng)
				bk->rng = 1;
		}
		bk->off = 0;
		bk->up = MB2_UP_DATA;
		return 1;
	}
	if (bk->up == MB2_UP_DATA) {
		uint64_t size = mb2_item_size(bk, bk->item);
		size_t n = size - bk->off > MB2_CHUNK ? MB2_CHUNK : (size_t)(size - bk->off);
		uint64_t saved = bk->rng;

		if (n == 0) {
			bk->up = MB2_UP_END;
			return 1;
		}
		mb2_put_be32(buf, (uint32_t)n + 1);
		buf[4] = MB2_CODE_FILE_DATA;
		if (bk->item < bk->n_data)
			mb2_fill(&bk->rng, buf + 5, n);
		else
			memcpy(buf + 5, bk->meta[bk->item - bk->n_data] + bk->off, n);
		r = svc_write(c, buf, 5 + n);
		if (r < 0) {
			bk->rng =
			        saved; /* nothing was queued: regenerate the same bytes next time */
			return r == -ENOBUFS ? 0 : r;
		}
		bk->off += n;
		bk->sent += n;
		return 1;
	}
	mb2_put_be32(buf, 1);
	buf[4] = MB2_CODE_SUCCESS;
	r = svc_write(c, buf, 5);
	if (r < 0)
		return r == -ENOBUFS ? 0 : r;
	bk->files_sent++;
	bk->item++;
	bk->up = MB2_UP_NAMES;
	return 1;
}

static void mb2_pump(struct svc_conn *c)
{
	struct mb2_state *st = *svc_state(c);
	struct mb2_backup *bk = st ? st->bk : NULL;
	uint8_t *buf;
	size_t budget = 0;
	int r = 1;

	if (!bk || st->closing)
		return;
	buf = malloc(MB2_CHUNK + MB2_NAME_MAX);
	if (!buf) {
		svc_close(c);
		return;
	}
	while (budget < MB2_TICK_BUDGET) {
		r = mb2_upload_unit(c, bk, buf);
		if (r != 1)
			break;
		budget += MB2_CHUNK / 4; /* names and ends count too, data dominates */
		if (bk->up == MB2_UP_DATA)
			budget += MB2_CHUNK * 3 / 4;
	}
	free(buf);
	if (r < 0) {
		log_warn_errno(r, "mobilebackup2 %s: upload", svc_device(c)->udid);
		st->closing = true;
		svc_close(c);
		return;
	}
	if (r == 2) {
		st->phase = MB2_PHASE_STATUS;
		st->step = MB2_STEP_UPLOAD;
		return;
	}
	/* r == 0: the output cap is reached, let the host drain; r == 1: budget spent, yield */
	if (!svc_add_timer(c, r == 0 ? MB2_RETRY_MS : 0, mb2_pump)) {
		st->closing = true;
		svc_close(c);
	}
}

/* Starts the next UploadFiles batch (from a timer: delay_ms paces the progress steps). */
static void mb2_upload_batch(struct svc_conn *c)
{
	struct mb2_state *st = *svc_state(c);
	struct mb2_backup *bk = st ? st->bk : NULL;
	uint64_t bytes = 0;
	double progress;
	int end, r;

	if (!bk || st->closing)
		return;
	end = bk->batch_first;
	while (end < mb2_items(bk)) {
		bytes += mb2_item_size(bk, end);
		end++;
		if (end < bk->n_data &&
		    (bytes >= MB2_BATCH_BYTES || end - bk->batch_first >= MB2_BATCH_FILES))
			break;
	}
	progress = bk->total ? 5.0 + 94.0 * (double)(bk->sent + bytes) / (double)bk->total : 99.0;
	r = mb2_send_simple(c, "DLMessageUploadFiles", plist_new_dict(), plist_new_real(progress),
	                    plist_new_uint(bytes));
	if (r == -ENOBUFS) {
		if (svc_add_timer(c, MB2_RETRY_MS, mb2_upload_batch))
			return;
		r = -ENOMEM;
	}
	if (r < 0) {
		st->closing = true;
		svc_close(c);
		return;
	}
	bk->batch_end = end;
	bk->item = bk->batch_first;
	bk->up = MB2_UP_NAMES;
	st->phase = MB2_PHASE_BUSY;
	mb2_pump(c);
}

/* ---- the backup steps (each device request is answered by one StatusResponse) ---- */

static int mb2_wait_status(struct mb2_state *st, enum mb2_step step)
{
	st->phase = MB2_PHASE_STATUS;
	st->step = step;
	return 0;
}

static int mb2_step_download(struct svc_conn *c)
{
	struct mb2_state *st = *svc_state(c);
	char path[128];
	plist_t files = plist_new_array();

	snprintf(path, sizeof(path), "%s/Status.plist", svc_device(c)->udid);
	plist_array_append_item(files, plist_new_string(path));
	st->phase = MB2_PHASE_STREAM;
	st->step = MB2_STEP_DOWNLOAD;
	st->rs = MB2_RS_NAMELEN;
	return mb2_send_simple(c, "DLMessageDownloadFiles", files, plist_new_dict(),
	                       plist_new_real(1.0));
}

static int mb2_step_mkdir(struct svc_conn *c)
{
	struct mb2_state *st = *svc_state(c);
	struct mb2_backup *bk = st->bk;
	char path[96];

	while (bk->next_bucket < MB2_BUCKETS && !bk->bucket[bk->next_bucket])
		bk->next_bucket++;
	if (bk->next_bucket == MB2_BUCKETS) {
		st->phase = MB2_PHASE_BUSY;
		bk->batch_first = 0;
		if (!svc_add_timer(c, (uint64_t)svc_device(c)->backup.delay_ms, mb2_upload_batch))
			return -ENOMEM;
		return 0;
	}
	snprintf(path, sizeof(path), "%s/%02x", svc_device(c)->udid, bk->next_bucket);
	bk->next_bucket++;
	mb2_wait_status(st, MB2_STEP_MKDIR);
	return mb2_send_simple(c, "DLMessageCreateDirectory", plist_new_string(path),
	                       plist_new_real(3.0), NULL);
}

/* The host answered the current step. code, item 3 of the StatusResponse. */
static int mb2_status(struct svc_conn *c, int64_t code, plist_t item3)
{
	struct mb2_state *st = *svc_state(c);
	struct mb2_backup *bk = st->bk;
	uint64_t free_bytes = 0;

	if (!bk)
		return 0;
	switch (st->step) {
	case MB2_STEP_PURGE:
		log_info("mobilebackup2 %s: host answered PurgeDiskSpace (%lld)",
		         svc_device(c)->udid, (long long)code);
		return mb2_step_download(c);
	case MB2_STEP_DOWNLOAD:
		/* -13 "Multi status" with ENOENT for Status.plist is a host without a backup */
		log_debug("mobilebackup2 %s: host %s a previous Status.plist (%lld)",
		          svc_device(c)->udid, bk->host_had_status ? "sent" : "has no",
		          (long long)code);
		mb2_wait_status(st, MB2_STEP_FREESPACE);
		return mb2_send_simple(c, "DLMessageGetFreeDiskSpace", plist_new_string(MB2_EMPTY),
		                       NULL, NULL);
	case MB2_STEP_FREESPACE:
		if (item3 && plist_get_node_type(item3) == PLIST_UINT)
			plist_get_uint_val(item3, &free_bytes);
		if (code == 0 && free_bytes < bk->total)
			return mb2_backup_fail(c, MB2_E_NO_SPACE, NULL);
		return mb2_step_mkdir(c);
	case MB2_STEP_MKDIR:
		/* the host answers an existing directory with -7 (EEXIST): not a failure */
		return mb2_step_mkdir(c);
	case MB2_STEP_UPLOAD:
		if (code != 0)
			return mb2_backup_fail(c, MB2_E_UPLOAD, NULL);
		if (bk->batch_end >= mb2_items(bk))
			return mb2_backup_succeed(c);
		bk->batch_first = bk->batch_end;
		st->phase = MB2_PHASE_BUSY;
		if (!svc_add_timer(c, (uint64_t)svc_device(c)->backup.delay_ms, mb2_upload_batch))
			return -ENOMEM;
		return 0;
	}
	return 0;
}

static void mb2_scripted_failure(struct svc_conn *c)
{
	struct mb2_state *st = *svc_state(c);
	struct sim_device *dev = svc_device(c);

	if (!st || st->closing || !st->bk)
		return;
	if (mb2_backup_fail(c, dev->backup.error_code, dev->backup.error_text) < 0) {
		st->closing = true;
		svc_close(c);
	}
}

static int mb2_backup_start(struct svc_conn *c, plist_t req)
{
	struct mb2_state *st = *svc_state(c);
	struct sim_device *dev = svc_device(c);
	plist_t opts = plist_dict_get_item(req, "Options");
	plist_t force = opts && plist_get_node_type(opts) == PLIST_DICT
	                        ? plist_dict_get_item(opts, "ForceFullBackup")
	                        : NULL;
	uint8_t force_full = 0;
	struct mb2_backup *bk;
	cJSON *f;
	int i, r;

	if (force && plist_get_node_type(force) == PLIST_BOOLEAN)
		plist_get_bool_val(force, &force_full);
	bk = calloc(1, sizeof(*bk));
	if (!bk)
		return -ENOMEM;
	st->bk = bk;
	bk->file_count = dev->backup.file_count > 0 ? dev->backup.file_count : 0;
	bk->file_size = dev->backup.file_size > 0 ? (uint64_t)dev->backup.file_size : 0;
	bk->generation = dev->backups_done;
	bk->full = dev->backups_done == 0 || force_full;
	if (bk->full) {
		bk->n_data = bk->file_count;
	} else {
		bk->n_data = bk->file_count / 4 > 0 ? bk->file_count / 4 : bk->file_count;
		bk->first_changed =
		        bk->file_count
		                ? (int)((int64_t)bk->generation * bk->n_data % bk->file_count)
		                : 0;
	}

	f = cJSON_CreateObject();
	if (f)
		cJSON_AddBoolToObject(f, "full", bk->full);
	sim_journal(dev, "backup_started", f);
	log_info("mobilebackup2 %s: %s backup, %d files", dev->udid,
	         bk->full ? "full" : "incremental", bk->n_data);

	if (dev->backup.error_code != 0) {
		/* a real phone sits on the passcode prompt (or whatever failed) before answering */
		st->phase = MB2_PHASE_BUSY;
		if (!svc_add_timer(c, (uint64_t)dev->backup.delay_ms, mb2_scripted_failure))
			return -ENOMEM;
		return 0;
	}

	r = mb2_make_meta(dev, bk, timefmt_unix_to_mac((int64_t)time(NULL)));
	if (r < 0)
		return r;
	for (i = 0; i < bk->n_data; i++) {
		char h[41];

		mb2_data_name(mb2_data_index(bk, i), h);
		bk->bucket[strtoul((char[]){ h[0], h[1], '\0' }, NULL, 16) & 0xff] = true;
	}
	bk->total = (uint64_t)bk->n_data * bk->file_size;
	for (i = 0; i < _MB2_META_MAX; i++)
		bk->total += bk->meta_len[i];

	if (dev->backup.purge_disk_space) {
		/* iOS 14+; 1.3.0 never answers it (see the top of the file) */
		sim_journal(dev, "purge_disk_space", NULL);
		mb2_wait_status(st, MB2_STEP_PURGE);
		return mb2_send_simple(c, "DLMessagePurgeDiskSpace", plist_new_uint(bk->total),
		                       NULL, NULL);
	}
	return mb2_step_download(c);
}

/* ---- EnableCloudBackup ---- */

static int mb2_cloud(struct svc_conn *c, plist_t req)
{
	struct sim_device *dev = svc_device(c);
	plist_t v = plist_dict_get_item(req, "CloudBackupState");
	plist_t opts = plist_dict_get_item(req, "Options");
	uint8_t enable = 0;
	cJSON *f;
	int code;

	if ((!v || plist_get_node_type(v) != PLIST_BOOLEAN) && opts &&
	    plist_get_node_type(opts) == PLIST_DICT)
		v = plist_dict_get_item(opts, "CloudBackupState");
	if (!v || plist_get_node_type(v) != PLIST_BOOLEAN)
		return mb2_send_response(c, MB2_E_UNSUPPORTED, "CloudBackupState missing", NULL);
	plist_get_bool_val(v, &enable);
	code = dev->cloud.error_code;
	if (code == 0)
		sim_device_set_value(svc_sim(c), dev, MB2_BACKUP_DOMAIN, "CloudBackupEnabled",
		                     plist_new_bool(enable));
	f = cJSON_CreateObject();
	if (f) {
		cJSON_AddBoolToObject(f, "enable", enable);
		cJSON_AddNumberToObject(f, "error_code", code);
	}
	sim_journal(dev, "cloud_backup", f);
	return mb2_send_response(c, code, dev->cloud.error_text, NULL);
}

/* ---- plist messages from the host ---- */

static int mb2_hello(struct svc_conn *c, plist_t req)
{
	plist_t vers = plist_dict_get_item(req, "SupportedProtocolVersions");
	double best = 0.0;
	uint32_t i, n;
	plist_t extra;

	n = vers && plist_get_node_type(vers) == PLIST_ARRAY ? plist_array_get_size(vers) : 0;
	for (i = 0; i < n; i++) {
		plist_t it = plist_array_get_item(vers, i);
		double d = 0.0;

		if (plist_get_node_type(it) == PLIST_REAL)
			plist_get_real_val(it, &d);
		if (d <= 2.1 + 1e-9 && d >= 2.0 - 1e-9 && d > best)
			best = d;
	}
	if (best == 0.0)
		return mb2_send_response(c, 1, "No common protocol version", NULL);
	extra = plist_new_dict();
	plist_dict_set_item(extra, "ProtocolVersion", plist_new_real(best > 2.05 ? 2.1 : 2.0));
	return mb2_send_response(c, 0, NULL, extra);
}

static int mb2_process_message(struct svc_conn *c, plist_t req)
{
	struct mb2_state *st = *svc_state(c);
	const char *name = mb2_string(plist_dict_get_item(req, "MessageName"));

	if (!name)
		return -EBADMSG;
	if (strcmp(name, "Hello") == 0) {
		if (st->phase != MB2_PHASE_HELLO && st->phase != MB2_PHASE_IDLE)
			return -EPROTO;
		st->phase = MB2_PHASE_IDLE;
		return mb2_hello(c, req);
	}
	if (st->phase != MB2_PHASE_IDLE) {
		/* one operation at a time, as on a phone; the host never does this */
		log_warn("mobilebackup2 %s: %s while busy, ignored", svc_device(c)->udid, name);
		return 0;
	}
	if (strcmp(name, "EnableCloudBackup") == 0)
		return mb2_cloud(c, req);
	if (strcmp(name, "Backup") == 0)
		return mb2_backup_start(c, req);
	log_info("mobilebackup2 %s: %s not simulated", svc_device(c)->udid, name);
	return mb2_send_response(c, MB2_E_UNSUPPORTED, "Not supported by cradle-sim", NULL);
}

static int mb2_message(struct svc_conn *c, plist_t msg)
{
	struct mb2_state *st = *svc_state(c);
	const char *dl;

	if (plist_get_node_type(msg) != PLIST_ARRAY || plist_array_get_size(msg) < 1)
		return -EBADMSG;
	dl = mb2_string(plist_array_get_item(msg, 0));
	if (!dl)
		return -EBADMSG;
	if (strcmp(dl, "DLMessageDisconnect") == 0) {
		st->closing = true;
		svc_close(c);
		return 0;
	}
	if (st->phase == MB2_PHASE_VERSION) {
		const char *ok = mb2_string(plist_array_get_item(msg, 1));

		if (strcmp(dl, "DLMessageVersionExchange") != 0 || !ok ||
		    strcmp(ok, "DLVersionsOk") != 0)
			return -EPROTO;
		st->phase = MB2_PHASE_HELLO;
		return mb2_send_simple(c, "DLMessageDeviceReady", NULL, NULL, NULL);
	}
	if (strcmp(dl, "DLMessageProcessMessage") == 0) {
		plist_t req = plist_array_get_item(msg, 1);

		if (!req || plist_get_node_type(req) != PLIST_DICT)
			return -EBADMSG;
		return mb2_process_message(c, req);
	}
	if (strcmp(dl, "DLMessageStatusResponse") == 0) {
		plist_t codep = plist_array_get_item(msg, 1);
		uint64_t code = 0;

		if (st->phase != MB2_PHASE_STATUS)
			return 0; /* nothing asked: a stray answer changes nothing */
		if (codep && plist_get_node_type(codep) == PLIST_UINT)
			plist_get_uint_val(codep, &code);
		return mb2_status(c, (int64_t)code, plist_array_get_item(msg, 3));
	}
	log_debug("mobilebackup2 %s: %s ignored", svc_device(c)->udid, dl);
	return 0;
}

/* ---- the host's file stream (answer to DownloadFiles) ---- */

/* Consumes one unit of the stream. Bytes consumed, 0 = need more, -EBADMSG. */
static ssize_t mb2_stream(struct svc_conn *c, const uint8_t *buf, size_t len)
{
	struct mb2_state *st = *svc_state(c);
	uint32_t n;

	if (len < 4)
		return 0;
	n = mb2_be32(buf);
	if (st->rs == MB2_RS_NAMELEN) {
		if (n == 0) {
			/* end of the stream: the StatusResponse follows */
			mb2_wait_status(st, MB2_STEP_DOWNLOAD);
			return 4;
		}
		if (n > MB2_NAME_MAX)
			return -EBADMSG;
		if (len - 4 < n)
			return 0;
		st->rs = MB2_RS_BLOCK;
		return 4 + (ssize_t)n;
	}
	/* a block: (n+1), code, n bytes */
	if (n == 0 || n > MB2_BLOCK_MAX)
		return -EBADMSG;
	if (len - 4 < n)
		return 0;
	switch (buf[4]) {
	case MB2_CODE_FILE_DATA:
		if (st->bk)
			st->bk->host_had_status = true;
		break;
	case MB2_CODE_SUCCESS:
	case MB2_CODE_ERROR_LOCAL:
	case MB2_CODE_ERROR_REMOTE:
		st->rs = MB2_RS_NAMELEN;
		break;
	default:
		return -EBADMSG;
	}
	return 4 + (ssize_t)n;
}

/* ---- svc_ops ---- */

static int mb2_open(struct svc_conn *c)
{
	struct mb2_state *st = calloc(1, sizeof(*st));
	plist_t msg;
	int r;

	if (!st)
		return -ENOMEM;
	*svc_state(c) = st;
	st->phase = MB2_PHASE_VERSION;
	msg = plist_new_array();
	plist_array_append_item(msg, plist_new_string("DLMessageVersionExchange"));
	plist_array_append_item(msg, plist_new_uint(MB2_DL_VERSION_MAJOR));
	plist_array_append_item(msg, plist_new_uint(MB2_DL_VERSION_MINOR));
	r = svc_write_plist(c, msg, true);
	plist_free(msg);
	return r;
}

static ssize_t mb2_input(struct svc_conn *c, const uint8_t *buf, size_t len)
{
	struct mb2_state *st = *svc_state(c);
	size_t used = 0;

	while (used < len && !st->closing) {
		ssize_t n;

		if (st->phase == MB2_PHASE_STREAM) {
			n = mb2_stream(c, buf + used, len - used);
		} else {
			plist_t msg = NULL;
			int r;

			n = svc_parse_frame(buf + used, len - used, &msg);
			if (n > 0) {
				r = mb2_message(c, msg);
				plist_free(msg);
				if (r < 0) {
					log_warn_errno(r, "mobilebackup2 %s: closing",
					               svc_device(c)->udid);
					return r;
				}
			}
		}
		if (n < 0) {
			log_warn_errno((int)n, "mobilebackup2 %s: bad input, closing",
			               svc_device(c)->udid);
			return n;
		}
		if (n == 0)
			break;
		used += (size_t)n;
	}
	if (st->closing)
		return (ssize_t)len; /* whatever follows a Disconnect is of no interest */
	return (ssize_t)used;
}

static void mb2_close(struct svc_conn *c)
{
	struct mb2_state *st = *svc_state(c);

	if (!st)
		return;
	if (st->bk) {
		/* the host went away mid-backup (killed, timed out, unplugged) */
		mb2_journal_finished(svc_device(c), false, -1, st->bk->files_sent);
		mb2_backup_free(st->bk);
	}
	free(st);
	*svc_state(c) = NULL;
}

const struct svc_ops svc_mobilebackup2 = {
	.name = "com.apple.mobilebackup2",
	.ssl = true,
	.open = mb2_open,
	.input = mb2_input,
	.close = mb2_close,
};
