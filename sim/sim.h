/* SPDX-License-Identifier: MIT */
/*
 * sim: the device model of cradle-sim and its one owner. struct sim holds the simulated phones
 * (identity, lockdown values, pairing state, scripts, journal), the DeviceID counter, the pair
 * records the simulator keeps as usbmuxd and the pending restart re-attaches; every change of
 * that state goes through a sim_*() function here. The mux half (usbmuxd) and the device half
 * (lockdownd, TLS, services) both depend on this module and never on each other:
 *
 *  - the mux half subscribes to the model's events (sim_subscribe) to tell its Listen clients
 *    about Attached / Detached / Paired, and hands a Connect'ed client to the device ports
 *    through the model (sim_port_open, sim_port_connect);
 *  - the device half registers as the model's port provider (struct sim_ports, devport_init):
 *    it hears of detaches before the subscribers and makes the pair records of pre-paired
 *    phones; it changes the model only through sim_*() (journal, restart, detach).
 *
 * Modules, each with what it uses in sim/ (no cycles; tests/sim/test_include_graph.sh checks
 * the #include lines and libsim.a's symbols):
 *
 *   main       -> control generate timeline scenario mux devport lockdown sim  (wiring)
 *   control    -> scenario listener outbuf sim      control socket, drives the model
 *   timeline   -> scenario sim                      scripted events, drives the model
 *   generate   -> scenario                          --generate N
 *   scenario   -> sim                               JSON scenario -> devices
 *   mux        -> listener outbuf sim               mux half: usbmuxd protocol
 *   lockdown   -> svc_* devport crypto svc sim      device half: lockdownd, StartService
 *   svc_*      -> devport svc sim                   device half: the services
 *   devport    -> crypto outbuf svc sim             device half: connections, TLS
 *   crypto     -> -                                 device half: keys, pair records
 *   sim        -> pairrec                           the model, the one owner
 *   pairrec    -> -                                 pair-record store
 *   svc        -> -                                 the service interface (devport, svc_*)
 *   listener   -> -                                 accept4 that cannot spin
 *   outbuf     -> -                                 bounded output queue
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
#define SIM_SYSLOG_LINE_MAX 8192 /* bytes of one syslog line */
#define SIM_TIME_SCALE_MAX  3600

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
	char **refused; /* service names StartService refuses (ServiceProhibited); owned */
	int n_refused;
	struct sim_backup_script backup;
	struct sim_cloud_script cloud;
	int restart_delay_ms;  /* diagnostics Restart: detach, re-attach after this */
	int backups_done;      /* a second backup is incremental */
	struct cJSON *journal; /* array of entries since the last control `journal`; owned */
	/* The device half's per-device state (connections, reserved service ports, trusted
	 * hosts) and how to free it; set by the device half, freed by sim_device_free(). */
	void *port_state;
	void (*port_state_free)(struct sim_device *dev);
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

/* What the model pushes to the open connections of one device (struct sim_ports.notice);
 * each service takes what concerns it. Pointers are valid during the call only. */
enum sim_notice_kind {
	SIM_NOTICE_SYSLOG, /* a live syslog line, emitted now: line[0..len) (no "\n", no NUL) */
	SIM_NOTICE_VALUE,  /* values[domain][key] was set or removed (control, timeline) */
};

struct sim_notice {
	enum sim_notice_kind kind;
	const char *line;
	size_t len;
	const char *domain;
	const char *key;
};

struct sim_subscriber {
	sim_event_fn fn;
	void *data;
};

/* The device half as the model sees it: what sits behind a device's ports. Registered in
 * struct sim by the device half (devport_init); without one every port is closed. */
struct sim_ports {
	/* Is something listening on this port of the attached dev (62078 always; a service port
	 * while reserved)? Decides Result 0 vs 3 (CONNREFUSED) on a usbmuxd Connect. */
	bool (*is_open)(struct sim *sim, struct sim_device *dev, uint16_t port);
	/* Takes ownership of fd (non-blocking, already answered Result 0). leftover: bytes the
	 * mux already read past the Connect request (client data sent early), may be NULL. */
	int (*connect)(struct sim *sim, struct sim_device *dev, uint16_t port, int fd,
	               const uint8_t *leftover, size_t leftover_len);
	/* dev was detached: close every connection and reservation (before subscribers hear). */
	void (*gone)(struct sim *sim, struct sim_device *dev);
	/* A pair record like the one a real pairing leaves behind, for a pre-paired dev. Caller
	 * frees; NULL on failure. */
	plist_t (*make_pair_record)(struct sim *sim, struct sim_device *dev);
	/* Hands n to every open connection of dev whose service wants it; returns how many took
	 * it (syslog streams written to, observers notified). */
	int (*notice)(struct sim *sim, struct sim_device *dev, const struct sim_notice *n);
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
	const struct sim_ports *ports; /* the device half (NULL: none) */
	void *ports_data;              /* its state (keys and certificates), its own business */
	/* The simulated clock (sim_clock_start): wall time at the origin, the loop's monotonic
	 * time then, and how many simulated ms pass per real ms (1 = real time). */
	int64_t clock_wall0_ms;
	uint64_t clock_mono0_ms;
	double time_scale;
};

/* 24 hex -> dashed 25-char (as usbmuxd reports it); dashed 25-char and 40 hex kept (hex
 * case kept). out must hold SIM_UDID_MAX bytes. 0 or -EINVAL when it is none of these. */
int sim_normalize_udid(const char *in, char *out, size_t size);

/* ---- devices ---- */

/* A detached device with an empty root domain and an empty journal; udid already normalised. */
struct sim_device *sim_device_new(const char *udid);
void sim_device_free(struct sim_device *dev); /* NULL-safe; also dev->port_state */
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
/* values[domain][key] = value (taken over; NULL removes the key). Announces
 * SIM_EVENT_CHANGED and hands a SIM_NOTICE_VALUE to the device's connections; returns how many
 * took it (notification_proxy observers that were posted a notification). */
int sim_device_set_value(struct sim *sim, struct sim_device *dev, const char *domain,
                         const char *key, plist_t value);
/* Changes dev->pairing and the pair record usbmuxd holds for it: paired and invalid_host get
 * a record (sim_ports.make_pair_record) when none exists, the others lose theirs. */
void sim_device_set_pairing(struct sim *sim, struct sim_device *dev, enum sim_pairing p);
/* A live syslog line from dev, now: written to every open syslog_relay stream of dev (not
 * kept: a stream opened later does not see it, as on a phone). Returns the streams written
 * to (0 when detached or nobody listens). Lines over SIM_SYSLOG_LINE_MAX are cut. */
int sim_device_syslog(struct sim *sim, struct sim_device *dev, const char *line);
/* "Mon DD HH:MM:SS HostName process[pid] <level>: message" at the simulated time (UTC), the
 * form syslog_relay sends; HostName is DeviceName with every character but letters and digits
 * made '-'; pid is stable per device and process. Returns strlen or -EINVAL. */
int sim_syslog_format(struct sim *sim, struct sim_device *dev, const char *process,
                      const char *level, const char *message, char *out, size_t size);
/* Is service refused by dev's scenario (refuse_services)? */
bool sim_device_refuses(const struct sim_device *dev, const char *service);

/* ---- the simulated clock ---- */

/* Starts the clock now at wall time, running scale times faster (<= 0 means 1). */
void sim_clock_start(struct sim *sim, double scale);
/* Simulated wall time, Unix ms (wall time when the clock runs at 1 or was never started). */
int64_t sim_clock_ms(const struct sim *sim);
/* Real ms until sim_ms simulated ms have passed (rounded up). */
uint64_t sim_clock_real_ms(const struct sim *sim, uint64_t sim_ms);

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

/* ---- the device ports (for the mux half's Connect) ---- */

bool sim_port_open(struct sim *sim, struct sim_device *dev, uint16_t port);
/* Hands the connected client fd to the device half (sim_ports.connect). Without a device half
 * fd is closed and -ENOTCONN returned. */
int sim_port_connect(struct sim *sim, struct sim_device *dev, uint16_t port, int fd,
                     const uint8_t *leftover, size_t leftover_len);

#endif
