/* SPDX-License-Identifier: MIT */
/*
 * sim: the shared model of cradle-sim, the contract between its two halves.
 *
 *  - the mux half (mux.c, device.c, scenario.c, control.c, timeline, main.c) owns the
 *    listeners, the device table, attach/detach, pair records and the journal;
 *  - the device half (devport.c, lockdown.c, tls.c, svc_*.c) owns everything that happens on a
 *    connection after a usbmuxd Connect succeeded: lockdownd, TLS, pairing, services.
 *
 * One thread, one loop (common/loop.h). Nothing here blocks.
 */
#ifndef CRADLE_SIM_H
#define CRADLE_SIM_H

#include <stdbool.h>
#include <stdint.h>

#include <plist/plist.h>

struct loop;
struct cJSON;

#define SIM_LOCKDOWN_PORT 62078

enum sim_pairing {
	SIM_PAIRING_PAIRED,        /* host trusted, pair record present */
	SIM_PAIRING_UNPAIRED,      /* no record; Pair succeeds (auto-pairing, as idevicepair pair) */
	SIM_PAIRING_TRUST_PENDING, /* Pair answers PairingDialogResponsePending */
	SIM_PAIRING_DENIED,        /* Pair answers UserDeniedPairing */
	SIM_PAIRING_INVALID_HOST,  /* stale record: StartSession answers InvalidHostID */
	_SIM_PAIRING_MAX,
};

/* Scripted local-backup behaviour (mobilebackup2 Backup). */
struct sim_backup_script {
	int file_count;      /* files in a full backup */
	int file_size;       /* bytes per file */
	int error_code;      /* 0 = succeed; else MBErrorDomain code (208 = passcode required) */
	char error_text[128];
	int delay_ms;        /* before the error or between progress steps */
	bool purge_disk_space; /* send DLMessagePurgeDiskSpace first (iOS 14+ behaviour) */
};

/* Scripted EnableCloudBackup behaviour. */
struct sim_cloud_script {
	int error_code;      /* 0 = succeed and set CloudBackupEnabled */
	char error_text[128];
};

struct sim_device {
	char udid[64];       /* as usbmuxd reports it: dashed 25-char or 40-hex */
	uint32_t device_id;  /* > 0; a new one on every (re)attach */
	bool attached;
	enum sim_pairing pairing;
	plist_t values;      /* dict: domain name ("" = root) -> dict of keys; owned */
	char **syslog;       /* NUL-terminated lines streamed by syslog_relay; owned */
	int n_syslog;
	struct sim_backup_script backup;
	struct sim_cloud_script cloud;
	int restart_delay_ms; /* diagnostics Restart: detach, re-attach after this */
	int backups_done;     /* a second backup is incremental */
	struct cJSON *journal; /* array of entries since the last control `journal`; owned */
	void *port_state;    /* owned by the device half (service ports reserved by StartService) */
};

struct sim {
	struct loop *loop;
	struct sim_device **devices;
	int n_devices;
	char buid[64];           /* one SystemBUID per simulator instance */
	bool plaintext;          /* --plaintext: StartSession answers EnableSessionSSL=false */
	void *crypto;            /* owned by the device half: keys and certificates */
	void *mux;               /* owned by the mux half: listeners, clients, pair records */
};

/* ---- provided by the mux half ---- */

struct sim_device *sim_device_by_udid(struct sim *sim, const char *udid);
struct sim_device *sim_device_by_id(struct sim *sim, uint32_t device_id);
/* Sends Attached/Detached to Listen clients; attach assigns a fresh device_id. */
void sim_device_attach(struct sim *sim, struct sim_device *dev);
void sim_device_detach(struct sim *sim, struct sim_device *dev);
/* Detach now, re-attach under a new DeviceID after dev->restart_delay_ms. */
void sim_device_restart(struct sim *sim, struct sim_device *dev);
/* Appends {"ts":…, "op": op, …fields} to dev->journal; fields is consumed (may be NULL). */
void sim_journal(struct sim_device *dev, const char *op, struct cJSON *fields);
/* Pair records kept by the simulator-as-usbmuxd (binary or XML plist bytes inside). */
plist_t sim_pair_record_get(struct sim *sim, const char *udid); /* caller frees; NULL if none */
int sim_pair_record_set(struct sim *sim, const char *udid, plist_t record); /* takes ownership */

/* ---- provided by the device half ---- */

/* Creates keys and certificates (once per process). 0 or -errno. */
int devport_crypto_init(struct sim *sim);
void devport_crypto_free(struct sim *sim);
/* A pair record like the one a real pairing leaves behind, for a pre-paired device.
 * Caller frees. */
plist_t devport_make_pair_record(struct sim *sim, const char *udid);
/* Is something listening on this device port (62078 always while attached; service ports
 * while reserved)? Decides Result 0 vs 3 (CONNREFUSED) on Connect. */
bool devport_is_open(struct sim *sim, struct sim_device *dev, uint16_t port);
/* Takes ownership of fd (non-blocking, already answered Result 0). leftover: bytes the mux
 * already read past the Connect request (client data sent early), may be NULL. */
int devport_accept(struct sim *sim, struct sim_device *dev, uint16_t port, int fd,
		   const uint8_t *leftover, size_t leftover_len);
/* Closes every connection and reservation of dev (called on detach). */
void devport_device_gone(struct sim *sim, struct sim_device *dev);
void devport_device_free(struct sim_device *dev); /* frees dev->port_state */

#endif
