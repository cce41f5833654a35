/* SPDX-License-Identifier: MIT */
/*
 * sim: the device model and its one owner (see sim.h for who depends on whom). The device
 * table with lookup by UDID and by DeviceID, attach/detach (a fresh DeviceID on every attach,
 * like usbmuxd re-enumerating after a reboot), the restart dance used by diagnostics_relay
 * Restart, value and pairing changes, the pair records, and the per-device journal the control
 * socket hands to tests ("what did the client ask this phone to do"). Whoever needs to know
 * about a change subscribes instead of being called by name, so the model does not depend on
 * the usbmuxd side.
 *
 * Devices are created at load time and live until exit, so loop timers may point at them. The
 * journal is capped: past SIM_JOURNAL_MAX entries the oldest go, so a client that polls a
 * device forever cannot grow the simulator without bound.
 */
#include "sim.h"

#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <cjson/cJSON.h>

#include "log.h"
#include "loop.h"
#include "timefmt.h"

struct sim_restart {
	struct sim_restart *next;
	struct sim *sim;
	struct sim_device *dev;
	uint64_t timer;
};

static bool is_hex(const char *s, size_t n)
{
	size_t i;

	for (i = 0; i < n; i++)
		if (!isxdigit((unsigned char)s[i]))
			return false;
	return true;
}

int sim_normalize_udid(const char *in, char *out, size_t size)
{
	size_t n = strlen(in);

	if (size < 41)
		return -EINVAL;
	if (n == 24 && is_hex(in, 24)) {
		memcpy(out, in, 8);
		out[8] = '-';
		memcpy(out + 9, in + 8, 16);
		out[25] = '\0';
		return 0;
	}
	if ((n == 25 && in[8] == '-' && is_hex(in, 8) && is_hex(in + 9, 16)) ||
	    (n == 40 && is_hex(in, 40))) {
		memcpy(out, in, n + 1);
		return 0;
	}
	return -EINVAL;
}

static void announce(struct sim *sim, struct sim_device *dev, enum sim_event ev)
{
	int i;

	for (i = 0; i < sim->n_subscribers; i++)
		sim->subscribers[i].fn(sim, dev, ev, sim->subscribers[i].data);
}

int sim_subscribe(struct sim *sim, sim_event_fn fn, void *data)
{
	if (sim->n_subscribers >= SIM_SUBSCRIBERS_MAX)
		return -ENOSPC;
	sim->subscribers[sim->n_subscribers].fn = fn;
	sim->subscribers[sim->n_subscribers].data = data;
	sim->n_subscribers++;
	return 0;
}

void sim_unsubscribe(struct sim *sim, sim_event_fn fn, void *data)
{
	int i;

	for (i = 0; i < sim->n_subscribers; i++)
		if (sim->subscribers[i].fn == fn && sim->subscribers[i].data == data) {
			memmove(&sim->subscribers[i], &sim->subscribers[i + 1],
			        sizeof(sim->subscribers[0]) * (size_t)(sim->n_subscribers - i - 1));
			sim->n_subscribers--;
			return;
		}
}

/* ---- devices ---- */

struct sim_device *sim_device_new(const char *udid)
{
	struct sim_device *dev = calloc(1, sizeof(*dev));

	if (!dev)
		return NULL;
	snprintf(dev->udid, sizeof(dev->udid), "%s", udid);
	dev->values = plist_new_dict();
	plist_dict_set_item(dev->values, "", plist_new_dict());
	dev->journal = cJSON_CreateArray();
	dev->pairing = SIM_PAIRING_PAIRED;
	if (!dev->values || !dev->journal) {
		sim_device_free(dev);
		return NULL;
	}
	return dev;
}

void sim_device_free(struct sim_device *dev)
{
	int i;

	if (!dev)
		return;
	if (dev->port_state_free)
		dev->port_state_free(dev);
	plist_free(dev->values);
	for (i = 0; i < dev->n_syslog; i++)
		free(dev->syslog[i]);
	free(dev->syslog);
	for (i = 0; i < dev->n_refused; i++)
		free(dev->refused[i]);
	free(dev->refused);
	cJSON_Delete(dev->journal);
	free(dev);
}

struct sim_device *sim_device_by_udid(struct sim *sim, const char *udid)
{
	char norm[SIM_UDID_MAX];
	int i;

	if (!udid)
		return NULL;
	if (sim_normalize_udid(udid, norm, sizeof(norm)) < 0)
		return NULL;
	for (i = 0; i < sim->n_devices; i++)
		if (strcmp(sim->devices[i]->udid, norm) == 0)
			return sim->devices[i];
	return NULL;
}

struct sim_device *sim_device_by_id(struct sim *sim, uint32_t device_id)
{
	int i;

	if (device_id == 0)
		return NULL;
	for (i = 0; i < sim->n_devices; i++)
		if (sim->devices[i]->attached && sim->devices[i]->device_id == device_id)
			return sim->devices[i];
	return NULL;
}

void sim_device_attach(struct sim *sim, struct sim_device *dev)
{
	if (dev->attached)
		return;
	dev->device_id = ++sim->last_device_id;
	dev->attached = true;
	log_debug("device %s: attached as %u", dev->udid, dev->device_id);
	announce(sim, dev, SIM_EVENT_ATTACHED);
}

void sim_device_detach(struct sim *sim, struct sim_device *dev)
{
	if (!dev->attached)
		return;
	dev->attached = false;
	if (sim->ports)
		sim->ports->gone(sim, dev);
	log_debug("device %s: detached (was %u)", dev->udid, dev->device_id);
	announce(sim, dev, SIM_EVENT_DETACHED);
}

static void restart_fire(struct loop *loop, uint64_t timer_id, void *data)
{
	struct sim_restart *p = data, **pp;
	struct sim *sim = p->sim;

	(void)loop;
	(void)timer_id;
	for (pp = &sim->restarts; *pp; pp = &(*pp)->next)
		if (*pp == p) {
			*pp = p->next;
			break;
		}
	sim_device_attach(sim, p->dev);
	free(p);
}

void sim_device_restart(struct sim *sim, struct sim_device *dev)
{
	struct sim_restart *p;
	int delay = dev->restart_delay_ms > 0 ? dev->restart_delay_ms : 0;

	sim_device_detach(sim, dev);
	if (!sim->loop)
		return;
	p = calloc(1, sizeof(*p));
	if (!p) {
		sim_device_attach(sim, dev);
		return;
	}
	p->sim = sim;
	p->dev = dev;
	p->timer = loop_add_timer(sim->loop, (uint64_t)delay, restart_fire, p);
	if (!p->timer) {
		free(p);
		sim_device_attach(sim, dev);
		return;
	}
	p->next = sim->restarts;
	sim->restarts = p;
}

void sim_device_paired(struct sim *sim, struct sim_device *dev)
{
	if (dev->attached)
		announce(sim, dev, SIM_EVENT_PAIRED);
}

int sim_device_set_value(struct sim *sim, struct sim_device *dev, const char *domain,
                         const char *key, plist_t value)
{
	plist_t dict = plist_dict_get_item(dev->values, domain);
	struct sim_notice n = { .kind = SIM_NOTICE_VALUE, .domain = domain, .key = key };

	if (dict && plist_get_node_type(dict) != PLIST_DICT)
		dict = NULL; /* cannot happen from a scenario; replaced below when setting */
	if (!value) {
		if (dict && plist_dict_get_item(dict, key))
			plist_dict_remove_item(dict, key);
	} else {
		if (!dict) {
			dict = plist_new_dict();
			plist_dict_set_item(dev->values, domain, dict);
		}
		plist_dict_set_item(dict, key, value);
	}
	announce(sim, dev, SIM_EVENT_CHANGED);
	if (!dev->attached || !sim->ports || !sim->ports->notice)
		return 0;
	return sim->ports->notice(sim, dev, &n);
}

int sim_device_syslog(struct sim *sim, struct sim_device *dev, const char *line)
{
	struct sim_notice n = { .kind = SIM_NOTICE_SYSLOG, .line = line };

	n.len = strnlen(line, SIM_SYSLOG_LINE_MAX);
	while (n.len && (line[n.len - 1] == '\n' || line[n.len - 1] == '\r'))
		n.len--; /* the stream adds its own "\n\0" */
	if (!dev->attached || !sim->ports || !sim->ports->notice)
		return 0;
	return sim->ports->notice(sim, dev, &n);
}

/* A stable, plausible pid per device and process (FNV-1a), so the lines of one attempt agree. */
static unsigned syslog_pid(const struct sim_device *dev, const char *process)
{
	uint32_t h = 2166136261u;
	const char *s;

	for (s = dev->udid; *s; s++)
		h = (h ^ (uint8_t)*s) * 16777619u;
	for (s = process; *s; s++)
		h = (h ^ (uint8_t)*s) * 16777619u;
	return 100 + h % 9900;
}

int sim_syslog_format(struct sim *sim, struct sim_device *dev, const char *process,
                      const char *level, const char *message, char *out, size_t size)
{
	static const char *const months[] = { "Jan", "Feb", "Mar", "Apr", "May", "Jun",
		                              "Jul", "Aug", "Sep", "Oct", "Nov", "Dec" };
	plist_t root = plist_dict_get_item(dev->values, "");
	plist_t v = root ? plist_dict_get_item(root, "DeviceName") : NULL;
	const char *name = "iPhone";
	time_t t = (time_t)(sim_clock_ms(sim) / 1000);
	char host[64];
	struct tm tm;
	size_t i;
	int n;

	if (!process || !*process || !level || !message || !gmtime_r(&t, &tm))
		return -EINVAL;
	if (v && plist_get_node_type(v) == PLIST_STRING && plist_get_string_ptr(v, NULL) &&
	    *plist_get_string_ptr(v, NULL))
		name = plist_get_string_ptr(v, NULL);
	/* The phone writes its host name, which has no spaces ("Ward A 01" -> "Ward-A-01"):
	 * idevicesyslog cuts the name at the first space after the time stamp. */
	for (i = 0; name[i] && i < sizeof(host) - 1; i++)
		host[i] = isalnum((unsigned char)name[i]) ? name[i] : '-';
	host[i] = '\0';
	n = snprintf(out, size, "%s %2d %02d:%02d:%02d %s %s[%u] <%s>: %s", months[tm.tm_mon],
	             tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, host, process,
	             syslog_pid(dev, process), *level ? level : "Notice", message);
	if (n < 0)
		return -EINVAL;
	return (size_t)n < size ? n : (int)size - 1;
}

bool sim_device_refuses(const struct sim_device *dev, const char *service)
{
	int i;

	for (i = 0; i < dev->n_refused; i++)
		if (strcmp(dev->refused[i], service) == 0)
			return true;
	return false;
}

/* ---- the simulated clock ---- */

void sim_clock_start(struct sim *sim, double scale)
{
	sim->clock_wall0_ms = wall_now_ms();
	sim->clock_mono0_ms = loop_now_ms();
	sim->time_scale = scale > 0 ? scale : 1;
}

int64_t sim_clock_ms(const struct sim *sim)
{
	uint64_t real;

	if (!sim->clock_wall0_ms || sim->time_scale <= 0)
		return wall_now_ms();
	real = loop_now_ms() - sim->clock_mono0_ms;
	return sim->clock_wall0_ms + (int64_t)((double)real * sim->time_scale);
}

uint64_t sim_clock_real_ms(const struct sim *sim, uint64_t sim_ms)
{
	double scale = sim->time_scale > 0 ? sim->time_scale : 1;
	double real = (double)sim_ms / scale;
	uint64_t r = (uint64_t)real;

	return (double)r < real ? r + 1 : r;
}

void sim_device_set_pairing(struct sim *sim, struct sim_device *dev, enum sim_pairing p)
{
	plist_t rec;

	dev->pairing = p;
	if (p == SIM_PAIRING_PAIRED || p == SIM_PAIRING_INVALID_HOST) {
		rec = sim_pair_record_get(sim, dev->udid);
		if (rec) {
			plist_free(rec);
			goto out;
		}
		rec = sim->ports ? sim->ports->make_pair_record(sim, dev) : NULL;
		if (rec)
			(void)sim_pair_record_set(sim, dev->udid, rec);
	} else {
		(void)sim_pair_record_delete(sim, dev->udid);
	}
out:
	announce(sim, dev, SIM_EVENT_CHANGED);
}

void sim_journal(struct sim_device *dev, const char *op, struct cJSON *fields)
{
	char ts[TIMEFMT_RFC3339_MAX];
	cJSON *e = NULL, *item;

	if (!dev->journal)
		goto out;
	e = cJSON_CreateObject();
	if (!e)
		goto out;
	if (timefmt_rfc3339_ms(wall_now_ms(), ts, sizeof(ts)) == 0)
		cJSON_AddStringToObject(e, "ts", ts);
	cJSON_AddStringToObject(e, "op", op);
	if (fields && cJSON_IsObject(fields)) {
		while ((item = fields->child)) {
			cJSON_DetachItemViaPointer(fields, item);
			if (cJSON_GetObjectItemCaseSensitive(e, item->string))
				cJSON_Delete(item);
			else
				cJSON_AddItemToObject(e, item->string, item);
		}
	}
	while (cJSON_GetArraySize(dev->journal) >= SIM_JOURNAL_MAX)
		cJSON_DeleteItemFromArray(dev->journal, 0);
	cJSON_AddItemToArray(dev->journal, e);
	e = NULL;
out:
	cJSON_Delete(e);
	cJSON_Delete(fields);
}

/* ---- pair records ---- */

/* The store's key: the dashed form of a 24-hex UDID, anything else as given (truncated). */
static void record_key(const char *udid, char key[PAIRREC_KEY_MAX])
{
	if (sim_normalize_udid(udid, key, PAIRREC_KEY_MAX) < 0)
		snprintf(key, PAIRREC_KEY_MAX, "%s", udid);
}

plist_t sim_pair_record_get(struct sim *sim, const char *udid)
{
	char key[PAIRREC_KEY_MAX];

	if (!udid)
		return NULL;
	record_key(udid, key);
	return pairrec_get(&sim->pairrecs, key);
}

int sim_pair_record_set(struct sim *sim, const char *udid, plist_t record)
{
	char key[PAIRREC_KEY_MAX];

	if (!udid || !record || strlen(udid) >= PAIRREC_KEY_MAX) {
		plist_free(record);
		return -EINVAL;
	}
	record_key(udid, key);
	return pairrec_set(&sim->pairrecs, key, record);
}

int sim_pair_record_delete(struct sim *sim, const char *udid)
{
	char key[PAIRREC_KEY_MAX];

	if (!udid)
		return -ENOENT;
	record_key(udid, key);
	return pairrec_delete(&sim->pairrecs, key);
}

/* ---- device ports ---- */

bool sim_port_open(struct sim *sim, struct sim_device *dev, uint16_t port)
{
	return sim->ports && sim->ports->is_open(sim, dev, port);
}

int sim_port_connect(struct sim *sim, struct sim_device *dev, uint16_t port, int fd,
                     const uint8_t *leftover, size_t leftover_len)
{
	if (!sim->ports) {
		close(fd);
		return -ENOTCONN;
	}
	return sim->ports->connect(sim, dev, port, fd, leftover, leftover_len);
}

/* ---- shutdown ---- */

void sim_done(struct sim *sim)
{
	int i;

	while (sim->restarts) {
		struct sim_restart *p = sim->restarts;

		sim->restarts = p->next;
		loop_cancel_timer(sim->loop, p->timer);
		free(p);
	}
	for (i = 0; i < sim->n_devices; i++) {
		if (sim->ports && sim->devices[i]->attached)
			sim->ports->gone(sim, sim->devices[i]);
		sim_device_free(sim->devices[i]);
	}
	free(sim->devices);
	sim->devices = NULL;
	sim->n_devices = 0;
	pairrec_free_all(&sim->pairrecs);
}
