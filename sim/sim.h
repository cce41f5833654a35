/* SPDX-License-Identifier: MIT */
/*
 * sim: the device model of cradle-sim and its one owner. struct sim holds the simulated phones
 * (identity, lockdown values, pairing state, scripts, journal), the DeviceID counter, the pair
 * records the simulator keeps as usbmuxd and the pending restart re-attaches; every change of
 * that state goes through a sim_*() function here. The two halves depend on this module and
 * never on each other:
 *
 *  - the mux half (mux.c and listener.c; control.c, timeline.c, scenario.c drive the model
 *    beside it) speaks usbmuxd; it subscribes to the model's events (sim_subscribe) to tell its
 *    Listen clients about Attached / Detached / Paired;
 *  - the device half (devport.c, lockdown.c, crypto.c, svc_*.c) owns everything after a
 *    usbmuxd Connect succeeded: lockdownd, TLS, pairing, services.
 *
 * One thread, one loop (common/loop.h). Nothing here blocks.
 */
#ifndef CRADLE_SIM_H
#define CRADLE_SIM_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <plist/plist.h>

#include "pairrec.h"

struct loop;
struct cJSON;
struct sim;

#define SIM_LOCKDOWN_PORT   62078
#define SIM_JOURNAL_MAX     4096 /* entries kept per device (the oldest go first) */
#define SIM_SUBSCRIBERS_MAX 8
#define SIM_UDID_MAX        64

enum sim_pairing {
	SIM_PAIRING_PAIRED,   /* host trusted, pair record present */
	SIM_PAIRING_UNPAIRED, /* no record; Pair succeeds (auto-pairing, as idevicepair pair) */
	SIM_PAIRING_TRUST_PENDING, /* Pair answers PairingDialogResponsePending */
	SIM_PAIRING_DENIED,        /* Pair answers UserDeniedPairing */
	SIM_PAIRING_INVALID_HOST,  /* stale record: StartSession answers InvalidHostID */
	_SIM_PAIRING_MAX,
};

/* Scripted local-backup behaviour (mobilebackup2 Backup). */
struct sim_backup_script {
	int file_count; /* files in a full backup */
	int file_size;  /* bytes per file */
	int error_code; /* 0 = succeed; else MBErrorDomain code (208 = passcode required) */
	char error_text[128];
	int delay_ms;          /* before the error or between progress steps */
	bool purge_disk_space; /* send DLMessagePurgeDiskSpace first (iOS 14+ behaviour) */
};

/* Scripted EnableCloudBackup behaviour. */
struct sim_cloud_script {
	int error_code; /* 0 = succeed and set CloudBackupEnabled */
	char error_text[128];
};

struct sim_device {
	char udid[SIM_UDID_MAX]; /* as usbmuxd reports it: dashed 25-char or 40-hex */
	uint32_t device_id;      /* > 0; a new one on every (re)attach */
	bool attached;
	enum sim_pairing pairing;
	plist_t values; /* dict: domain name ("" = root) -> dict of keys; owned */
	char **syslog;  /* NUL-terminated lines streamed by syslog_relay; owned */
	int n_syslog;
	struct sim_backup_script backup;
	struct sim_cloud_script cloud;
	int restart_delay_ms;  /* diagnostics Restart: detach, re-attach after this */
	int backups_done;      /* a second backup is incremental */
	struct cJSON *journal; /* array of entries since the last control `journal`; owned */
	void *port_state; /* owned by the device half (service ports reserved by StartService) */
};

/* What the model announces to its subscribers, after the change. */
enum sim_event {
	SIM_EVENT_ATTACHED, /* dev->device_id is the new DeviceID */
	SIM_EVENT_DETACHED, /* dev->device_id is still the old one; its connections are closed */
	SIM_EVENT_PAIRED,   /* a host saved a pair record for the attached dev */
	SIM_EVENT_CHANGED,  /* a value or the pairing state was changed (control, timeline) */
};

typedef void (*sim_event_fn)(struct sim *sim, struct sim_device *dev, enum sim_event ev,
                             void *data);

struct sim_subscriber {
	sim_event_fn fn;
	void *data;
};

struct sim_restart;

/* Zero-initialise, set loop (and buid, plaintext); sim_done() frees what it owns. */
struct sim {
	struct loop *loop;
	struct sim_device **devices; /* owned; devices live until sim_done (timers point at them) */
	int n_devices;
	char buid[64];           /* one SystemBUID per simulator instance */
	bool plaintext;          /* --plaintext: StartSession answers EnableSessionSSL=false */
	uint32_t last_device_id; /* DeviceIDs are > 0 and never reused */
	struct pairrec_store pairrecs; /* keyed by the normalised UDID */
	struct sim_restart *restarts;  /* pending re-attaches (sim_device_restart) */
	struct sim_subscriber subscribers[SIM_SUBSCRIBERS_MAX];
	int n_subscribers;
	void *crypto; /* owned by the device half: keys and certificates */
};

/* 24 hex -> dashed 25-char (as usbmuxd reports it); dashed 25-char and 40 hex kept (hex
 * case kept). out must hold SIM_UDID_MAX bytes. 0 or -EINVAL when it is none of these. */
int sim_normalize_udid(const char *in, char *out, size_t size);

/* ---- devices ---- */

/* A detached device with an empty root domain and an empty journal; udid already normalised. */
struct sim_device *sim_device_new(const char *udid);
void sim_device_free(struct sim_device *dev); /* NULL-safe; also devport_device_free() */
/* Either UDID form; NULL if unknown. */
struct sim_device *sim_device_by_udid(struct sim *sim, const char *udid);
/* Attached devices only; NULL if none. */
struct sim_device *sim_device_by_id(struct sim *sim, uint32_t device_id);
/* Attach assigns a fresh device_id; both announce (no-op when already so). Detach closes the
 * device's connections first. */
void sim_device_attach(struct sim *sim, struct sim_device *dev);
void sim_device_detach(struct sim *sim, struct sim_device *dev);
/* Detach now, re-attach under a new DeviceID after dev->restart_delay_ms. */
void sim_device_restart(struct sim *sim, struct sim_device *dev);
/* A host saved a pair record for dev: announces SIM_EVENT_PAIRED when it is attached. */
void sim_device_paired(struct sim *sim, struct sim_device *dev);
/* values[domain][key] = value (taken over; NULL removes the key). */
void sim_device_set_value(struct sim *sim, struct sim_device *dev, const char *domain,
                          const char *key, plist_t value);
/* Changes dev->pairing and the pair record usbmuxd holds for it: paired and invalid_host get
 * a record (devport_make_pair_record) when none exists, the others lose theirs. */
void sim_device_set_pairing(struct sim *sim, struct sim_device *dev, enum sim_pairing p);
/* Appends {"ts":…, "op": op, …fields} to dev->journal; fields is consumed (may be NULL). */
void sim_journal(struct sim_device *dev, const char *op, struct cJSON *fields);

/* ---- pair records kept by the simulator-as-usbmuxd (either UDID form) ---- */

plist_t sim_pair_record_get(struct sim *sim, const char *udid); /* caller frees; NULL if none */
int sim_pair_record_set(struct sim *sim, const char *udid, plist_t record); /* takes ownership */
int sim_pair_record_delete(struct sim *sim, const char *udid);              /* 0 or -ENOENT */

/* ---- events ---- */

/* fn(sim, dev, ev, data) after every change, in subscription order. 0 or -ENOSPC. */
int sim_subscribe(struct sim *sim, sim_event_fn fn, void *data);
void sim_unsubscribe(struct sim *sim, sim_event_fn fn, void *data);

/* Cancels pending re-attaches and frees every device and pair record (shutdown). */
void sim_done(struct sim *sim);

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
