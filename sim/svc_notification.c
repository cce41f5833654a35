// SPDX-License-Identifier: MIT
/*
 * svc_notification: com.apple.mobile.notification_proxy (docs/device-protocols.md "Services").
 *
 * ObserveNotification and PostNotification get no reply; Shutdown gets ProxyDeath and the
 * connection closes. idevicebackup2 cannot live without this service (it dereferences a NULL
 * service when StartService fails), so it exists even though nothing here is scripted. Posts
 * are journaled (the backup tool posts its sync notifications); observed names are kept, capped.
 *
 * When a value of a domain that has a notification changes (com.apple.mobile.backup ->
 * com.apple.mobile.backup.domain_changed) every connection that observes that name gets
 * {Command:"RelayNotification", Name}, as a phone pushes it (libimobiledevice's np client
 * thread waits for exactly this) and the journal gets a RelayNotification entry.
 */
#include <errno.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "devport.h"
#include "sim.h"
#include "svc.h"

#define NP_OBSERVED_MAX 64

struct np_state {
	char *observed[NP_OBSERVED_MAX];
	int n_observed;
};

/* Domains whose changes a phone announces, and the name it posts. */
static const struct {
	const char *domain;
	const char *name;
} np_domain_names[] = {
	{ "com.apple.mobile.backup", "com.apple.mobile.backup.domain_changed" },
};

static bool np_observes(const struct np_state *st, const char *name)
{
	int i;

	for (i = 0; i < st->n_observed; i++)
		if (strcmp(st->observed[i], name) == 0)
			return true;
	return false;
}

static int np_notice(struct svc_conn *c, const struct sim_notice *n)
{
	struct np_state *st = *svc_state(c);
	const char *name = NULL;
	plist_t msg;
	cJSON *f;
	size_t i;
	int r;

	if (n->kind != SIM_NOTICE_VALUE || !st || !n->domain)
		return 0;
	for (i = 0; i < sizeof(np_domain_names) / sizeof(np_domain_names[0]); i++)
		if (strcmp(np_domain_names[i].domain, n->domain) == 0)
			name = np_domain_names[i].name;
	if (!name || !np_observes(st, name))
		return 0;
	msg = plist_new_dict();
	plist_dict_set_item(msg, "Command", plist_new_string("RelayNotification"));
	plist_dict_set_item(msg, "Name", plist_new_string(name));
	r = svc_write_plist(c, msg, false);
	plist_free(msg);
	if (r < 0)
		return 0;
	f = cJSON_CreateObject();
	if (f)
		cJSON_AddStringToObject(f, "name", name);
	sim_journal(svc_device(c), "RelayNotification", f);
	return 1;
}

static int np_open(struct svc_conn *c)
{
	struct np_state *st = calloc(1, sizeof(*st));

	if (!st)
		return -ENOMEM;
	*svc_state(c) = st;
	return 0;
}

static void np_close(struct svc_conn *c)
{
	struct np_state *st = *svc_state(c);
	int i;

	if (!st)
		return;
	for (i = 0; i < st->n_observed; i++)
		free(st->observed[i]);
	free(st);
	*svc_state(c) = NULL;
}

static const char *np_string(plist_t dict, const char *key)
{
	plist_t v = plist_get_node_type(dict) == PLIST_DICT ? plist_dict_get_item(dict, key) : NULL;

	if (!v || plist_get_node_type(v) != PLIST_STRING)
		return NULL;
	return plist_get_string_ptr(v, NULL);
}

static int np_handle(struct svc_conn *c, plist_t req)
{
	struct np_state *st = *svc_state(c);
	const char *cmd = np_string(req, "Command");
	const char *name = np_string(req, "Name");

	if (!cmd)
		return 0; /* a real proxy ignores what it does not understand */
	if (strcmp(cmd, "ObserveNotification") == 0 && name) {
		if (st->n_observed < NP_OBSERVED_MAX && !np_observes(st, name)) {
			char *dup = strdup(name);

			if (!dup)
				return -ENOMEM;
			st->observed[st->n_observed++] = dup;
		}
		return 0;
	}
	if (strcmp(cmd, "PostNotification") == 0 && name) {
		cJSON *f = cJSON_CreateObject();

		if (f)
			cJSON_AddStringToObject(f, "name", name);
		sim_journal(svc_device(c), "PostNotification", f);
		return 0;
	}
	if (strcmp(cmd, "Shutdown") == 0) {
		plist_t reply = plist_new_dict();
		int r;

		plist_dict_set_item(reply, "Command", plist_new_string("ProxyDeath"));
		r = svc_write_plist(c, reply, false);
		plist_free(reply);
		svc_close(c);
		return r;
	}
	return 0;
}

static ssize_t np_input(struct svc_conn *c, const uint8_t *buf, size_t len)
{
	return devport_input_frames(c, buf, len, np_handle);
}

const struct svc_ops svc_notification_proxy = {
	.name = "com.apple.mobile.notification_proxy",
	.ssl = false,
	.open = np_open,
	.input = np_input,
	.close = np_close,
	.notice = np_notice,
};
