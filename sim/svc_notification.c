// SPDX-License-Identifier: MIT
/*
 * svc_notification: com.apple.mobile.notification_proxy (docs/device-protocols.md "Services").
 *
 * ObserveNotification and PostNotification get no reply; Shutdown gets ProxyDeath and the
 * connection closes. idevicebackup2 cannot live without this service (it dereferences a NULL
 * service when StartService fails), so it exists even though nothing here is scripted. Posts
 * are journaled (the backup tool posts its sync notifications); observed names are kept, capped.
 */
#include <errno.h>
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
		if (st->n_observed < NP_OBSERVED_MAX) {
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
};
