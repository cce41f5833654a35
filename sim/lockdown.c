// SPDX-License-Identifier: MIT
/*
 * lockdown: lockdownd as libimobiledevice 1.3.0 sees it (docs/device-protocols.md "lockdownd").
 *
 * Every reply echoes Request (lockdown_check_result rejects a reply without it) and reports
 * failure as an Error string from the client's table ("Lockdown errors" there), because that
 * string is all the tools turn into their messages and exit codes. Trust is decided by the
 * device's pairing state plus the HostIDs it trusts (devport's trust store, filled by Pair), so
 * "unpaired -> Pair -> StartSession" behaves like a phone whose owner tapped Trust.
 *
 * Without a session a real lockdownd answers only a small public set, enough for the handshake
 * (ProductVersion) and for pairing (DevicePublicKey, WiFiAddress) plus the identity
 * keys tools print before pairing: see lockdown_public_keys. Other keys answer GetProhibited and
 * other domains too; a whole-root read returns just the public keys that exist.
 *
 * Journal (sim_journal, read by tests through the control socket): StartSession, GetValue
 * (domain/key), SetValue, RemoveValue, StartService, Pair, ValidatePair, Unpair.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>
#include <openssl/rand.h>

#include "crypto.h"
#include "devport.h"
#include "lockdown.h"
#include "log.h"
#include "macro.h"
#include "sim.h"
#include "svc.h"

#define LOCKDOWN_TYPE       "com.apple.mobile.lockdown"
#define LOCKDOWN_ESCROW_LEN 32

/* Answered outside a session (root domain only). */
static const char *const lockdown_public_keys[] = {
	"ActivationState", "BasebandVersion", "BluetoothAddress", "BuildVersion",
	"DeviceClass",     "DeviceColor",     "DeviceName",       "DevicePublicKey",
	"FirmwareVersion", "HardwareModel",   "ProductName",      "ProductType",
	"ProductVersion",  "UniqueDeviceID",  "WiFiAddress",
};

static bool lockdown_is_public(const char *key)
{
	size_t i;

	for (i = 0; i < ARRAY_SIZE(lockdown_public_keys); i++)
		if (strcmp(lockdown_public_keys[i], key) == 0)
			return true;
	return false;
}

static const char *dict_string(plist_t dict, const char *key)
{
	plist_t v = dict ? plist_dict_get_item(dict, key) : NULL;

	if (!v || plist_get_node_type(v) != PLIST_STRING)
		return NULL;
	return plist_get_string_ptr(v, NULL);
}

/* Values the simulator supplies when the scenario leaves them out (root domain). */
static plist_t lockdown_default_value(struct sim *sim, struct sim_device *dev, const char *key)
{
	struct crypto *cr = devport_crypto(sim);

	if (strcmp(key, "UniqueDeviceID") == 0)
		return plist_new_string(dev->udid);
	if (strcmp(key, "DevicePublicKey") == 0 && cr)
		return plist_new_data(cr->device_pub_pem, cr->device_pub_len);
	return NULL;
}

static void lockdown_add_defaults(struct sim *sim, struct sim_device *dev, plist_t dict)
{
	static const char *const keys[] = { "UniqueDeviceID", "DevicePublicKey" };
	size_t i;

	for (i = 0; i < ARRAY_SIZE(keys); i++) {
		plist_t v;

		if (plist_dict_get_item(dict, keys[i]))
			continue;
		v = lockdown_default_value(sim, dev, keys[i]);
		if (v)
			plist_dict_set_item(dict, keys[i], v);
	}
}

static void lockdown_journal(struct sim_device *dev, const char *op, const char *k1, const char *v1,
                             const char *k2, const char *v2)
{
	cJSON *f = cJSON_CreateObject();

	if (f && k1)
		cJSON_AddStringToObject(f, k1, v1 ? v1 : "");
	if (f && k2)
		cJSON_AddStringToObject(f, k2, v2 ? v2 : "");
	sim_journal(dev, op, f);
}

static void set_error(plist_t reply, const char *error)
{
	plist_dict_set_item(reply, "Error", plist_new_string(error));
}

static void lockdown_get_value(struct sim *sim, struct sim_device *dev, struct lockdown_session *s,
                               plist_t req, plist_t reply)
{
	const char *domain = dict_string(req, "Domain");
	const char *key = dict_string(req, "Key");
	plist_t dict, v = NULL;

	if (domain)
		plist_dict_set_item(reply, "Domain", plist_new_string(domain));
	if (key)
		plist_dict_set_item(reply, "Key", plist_new_string(key));
	lockdown_journal(dev, "GetValue", "domain", domain ? domain : "", "key", key ? key : "");
	if (!domain)
		domain = "";
	if (!s->active && (domain[0] || (key && !lockdown_is_public(key)))) {
		set_error(reply, "GetProhibited");
		return;
	}
	dict = plist_dict_get_item(dev->values, domain);
	if (dict && plist_get_node_type(dict) != PLIST_DICT)
		dict = NULL;
	if (key) {
		plist_t item = dict ? plist_dict_get_item(dict, key) : NULL;

		if (item)
			v = plist_copy(item);
		else if (!domain[0])
			v = lockdown_default_value(sim, dev, key);
	} else if (!dict && domain[0]) {
		v = NULL;
	} else {
		v = dict ? plist_copy(dict) : plist_new_dict();
		if (!domain[0])
			lockdown_add_defaults(sim, dev, v);
		if (!s->active) {
			/* outside a session only the public keys */
			plist_t pub = plist_new_dict();
			plist_dict_iter it = NULL;
			char *k = NULL;
			plist_t item = NULL;

			plist_dict_new_iter(v, &it);
			for (;;) {
				plist_dict_next_item(v, it, &k, &item);
				if (!k)
					break;
				if (lockdown_is_public(k))
					plist_dict_set_item(pub, k, plist_copy(item));
				free(k);
				k = NULL;
			}
			free(it);
			plist_free(v);
			v = pub;
		}
	}
	if (!v) {
		set_error(reply, "MissingValue");
		return;
	}
	plist_dict_set_item(reply, "Value", v);
}

/* SetValue / RemoveValue: value NULL removes. */
static void lockdown_set_value(struct sim_device *dev, struct lockdown_session *s, plist_t req,
                               plist_t reply, bool remove)
{
	const char *domain = dict_string(req, "Domain");
	const char *key = dict_string(req, "Key");
	plist_t value = plist_dict_get_item(req, "Value");
	plist_t dict;

	if (domain)
		plist_dict_set_item(reply, "Domain", plist_new_string(domain));
	if (key)
		plist_dict_set_item(reply, "Key", plist_new_string(key));
	if (!s->active) {
		set_error(reply, remove ? "RemoveProhibited" : "SetProhibited");
		return;
	}
	if (!key) {
		set_error(reply, "MissingKey");
		return;
	}
	if (!remove && !value) {
		set_error(reply, "MissingValue");
		return;
	}
	if (!domain)
		domain = "";
	lockdown_journal(dev, remove ? "RemoveValue" : "SetValue", "domain", domain, "key", key);
	dict = plist_dict_get_item(dev->values, domain);
	if (dict && plist_get_node_type(dict) != PLIST_DICT)
		dict = NULL;
	if (remove) {
		if (!dict || !plist_dict_get_item(dict, key))
			set_error(reply, "MissingValue");
		else
			plist_dict_remove_item(dict, key);
		return;
	}
	if (!dict) {
		dict = plist_new_dict();
		plist_dict_set_item(dev->values, domain, dict);
	}
	plist_dict_set_item(dict, key, plist_copy(value));
}

/* Does the device let host_id start a session? */
static bool lockdown_trusts(struct sim *sim, struct sim_device *dev, const char *host_id)
{
	struct crypto *cr = devport_crypto(sim);
	plist_t rec;
	bool ok = false;

	if (!host_id || dev->pairing != SIM_PAIRING_PAIRED)
		return false;
	if (devport_host_trusted(dev, host_id))
		return true;
	/* a pre-paired phone trusts the host that made the record usbmuxd holds */
	if (cr && strcmp(host_id, cr->host_id) == 0)
		return true;
	rec = sim_pair_record_get(sim, dev->udid);
	if (rec) {
		const char *h = dict_string(rec, "HostID");

		ok = h && strcmp(h, host_id) == 0;
		plist_free(rec);
	}
	return ok;
}

static void lockdown_start_session(struct sim *sim, struct sim_device *dev,
                                   struct lockdown_session *s, plist_t req, plist_t reply,
                                   enum lockdown_action *action)
{
	const char *host_id = dict_string(req, "HostID");
	bool ssl = !sim->plaintext && devport_crypto(sim);
	cJSON *f;

	if (!host_id) {
		set_error(reply, "MissingHostID");
		return;
	}
	if (s->active) {
		set_error(reply, "SessionActive");
		return;
	}
	if (dev->pairing == SIM_PAIRING_INVALID_HOST || !lockdown_trusts(sim, dev, host_id)) {
		lockdown_journal(dev, "StartSession", "host_id", host_id, "result",
		                 "InvalidHostID");
		set_error(reply, "InvalidHostID");
		return;
	}
	s->active = true;
	s->ssl = ssl;
	crypto_uuid(s->session_id, sizeof(s->session_id));
	snprintf(s->host_id, sizeof(s->host_id), "%s", host_id);
	plist_dict_set_item(reply, "SessionID", plist_new_string(s->session_id));
	plist_dict_set_item(reply, "EnableSessionSSL", plist_new_bool(ssl));
	f = cJSON_CreateObject();
	if (f) {
		cJSON_AddStringToObject(f, "host_id", host_id);
		cJSON_AddBoolToObject(f, "ssl", ssl);
		cJSON_AddStringToObject(f, "label", s->label);
		cJSON_AddStringToObject(f, "result", "Success");
	}
	sim_journal(dev, "StartSession", f);
	if (ssl)
		*action = LOCKDOWN_START_TLS;
}

static void lockdown_stop_session(struct lockdown_session *s, plist_t req, plist_t reply,
                                  enum lockdown_action *action)
{
	const char *sid = dict_string(req, "SessionID");

	if (!s->active) {
		set_error(reply, "SessionInactive");
		return;
	}
	if (!sid) {
		set_error(reply, "MissingSessionID");
		return;
	}
	if (strcmp(sid, s->session_id) != 0) {
		set_error(reply, "InvalidSessionID");
		return;
	}
	if (s->ssl)
		*action = LOCKDOWN_STOP_TLS;
	s->active = false;
	s->ssl = false;
}

static void lockdown_escrow_bag(plist_t reply)
{
	char bag[LOCKDOWN_ESCROW_LEN];

	if (RAND_bytes((unsigned char *)bag, sizeof(bag)) != 1)
		memset(bag, 0x42, sizeof(bag));
	plist_dict_set_item(reply, "EscrowBag", plist_new_data(bag, sizeof(bag)));
}

/* Pair, ValidatePair, Unpair, driven by dev->pairing. */
static void lockdown_pairing(struct sim *sim, struct sim_device *dev, const char *request,
                             plist_t req, plist_t reply)
{
	plist_t rec = plist_dict_get_item(req, "PairRecord");
	const char *host_id = NULL, *error = NULL;
	cJSON *f;

	if (rec && plist_get_node_type(rec) == PLIST_DICT)
		host_id = dict_string(rec, "HostID");
	if (!host_id) {
		error = "InvalidPairRecord";
		goto out;
	}
	if (strcmp(request, "Unpair") == 0) {
		devport_untrust_host(dev, host_id);
		if (dev->pairing == SIM_PAIRING_PAIRED || dev->pairing == SIM_PAIRING_INVALID_HOST)
			dev->pairing = SIM_PAIRING_UNPAIRED;
		goto out;
	}
	switch (dev->pairing) {
	case SIM_PAIRING_TRUST_PENDING:
		error = "PairingDialogResponsePending";
		break;
	case SIM_PAIRING_DENIED:
		error = "UserDeniedPairing";
		break;
	case SIM_PAIRING_PAIRED:
		if (strcmp(request, "Pair") == 0) {
			if (devport_trust_host(dev, host_id) < 0)
				error = "PairingProhibitedOverThisConnection";
		} else if (!lockdown_trusts(sim, dev, host_id)) {
			error = "InvalidHostID";
		}
		break;
	case SIM_PAIRING_UNPAIRED:
	case SIM_PAIRING_INVALID_HOST:
	default:
		if (strcmp(request, "Pair") != 0) {
			error = "InvalidHostID";
			break;
		}
		/* the owner taps Trust: the phone now trusts this host (a stale record is
		 * healed the same way, by pairing again) */
		if (devport_trust_host(dev, host_id) < 0) {
			error = "PairingProhibitedOverThisConnection";
			break;
		}
		dev->pairing = SIM_PAIRING_PAIRED;
		break;
	}
out:
	if (error)
		set_error(reply, error);
	else if (strcmp(request, "Pair") == 0)
		lockdown_escrow_bag(reply);
	f = cJSON_CreateObject();
	if (f) {
		cJSON_AddStringToObject(f, "host_id", host_id ? host_id : "");
		cJSON_AddStringToObject(f, "result", error ? error : "Success");
	}
	sim_journal(dev, request, f);
}

/* The services this phone offers through StartService. */
static const struct svc_ops *const lockdown_services[] = {
	&svc_diagnostics_relay,
	&svc_notification_proxy,
	&svc_syslog_relay,
	&svc_mobilebackup2,
};

#define LOCKDOWN_DIAG_FALLBACK "com.apple.iosdiagnostics.relay"

/* By lockdown name (includes the older diagnostics name). NULL if unknown. */
static const struct svc_ops *lockdown_find_service(const char *name)
{
	size_t i;

	if (!name)
		return NULL;
	if (strcmp(name, LOCKDOWN_DIAG_FALLBACK) == 0)
		return &svc_diagnostics_relay;
	for (i = 0; i < sizeof(lockdown_services) / sizeof(lockdown_services[0]); i++)
		if (lockdown_services[i]->name && strcmp(lockdown_services[i]->name, name) == 0)
			return lockdown_services[i];
	return NULL;
}

static void lockdown_start_service(struct sim *sim, struct sim_device *dev,
                                   struct lockdown_session *s, plist_t req, plist_t reply)
{
	const char *name = dict_string(req, "Service");
	const struct svc_ops *ops;
	uint16_t port = 0;
	cJSON *f;
	int r;

	if (name)
		plist_dict_set_item(reply, "Service", plist_new_string(name));
	if (!name) {
		set_error(reply, "MissingService");
		return;
	}
	f = cJSON_CreateObject();
	if (f) {
		cJSON_AddStringToObject(f, "service", name);
		cJSON_AddBoolToObject(f, "escrow_bag",
		                      plist_dict_get_item(req, "EscrowBag") != NULL);
	}
	ops = lockdown_find_service(name);
	if (!s->active) {
		cJSON_AddStringToObject(f, "result", "SessionInactive");
		set_error(reply, "SessionInactive");
	} else if (!ops) {
		cJSON_AddStringToObject(f, "result", "InvalidService");
		set_error(reply, "InvalidService");
	} else if (sim_device_refuses(dev, name)) {
		cJSON_AddStringToObject(f, "result", "ServiceProhibited");
		set_error(reply, "ServiceProhibited");
	} else if ((r = devport_reserve(sim, dev, ops, &port)) < 0) {
		cJSON_AddStringToObject(f, "result", "ServiceLimit");
		set_error(reply, "ServiceLimit");
	} else {
		cJSON_AddStringToObject(f, "result", "Success");
		cJSON_AddNumberToObject(f, "port", port);
		plist_dict_set_item(reply, "Port", plist_new_uint(port));
		plist_dict_set_item(
		        reply, "EnableServiceSSL",
		        plist_new_bool(ops->ssl && !sim->plaintext && devport_crypto(sim)));
	}
	sim_journal(dev, "StartService", f);
}

int lockdown_dispatch(struct sim *sim, struct sim_device *dev, struct lockdown_session *s,
                      plist_t req, plist_t *ret_reply, enum lockdown_action *ret_action)
{
	enum lockdown_action action = LOCKDOWN_CONTINUE;
	plist_t reply = plist_new_dict();
	const char *request, *label;

	if (!reply)
		return -ENOMEM;
	if (!req || plist_get_node_type(req) != PLIST_DICT) {
		set_error(reply, "InvalidRequest");
		goto out;
	}
	request = dict_string(req, "Request");
	if (!request) {
		set_error(reply, "InvalidRequest");
		goto out;
	}
	plist_dict_set_item(reply, "Request", plist_new_string(request));
	label = dict_string(req, "Label");
	if (label)
		snprintf(s->label, sizeof(s->label), "%s", label);

	if (strcmp(request, "QueryType") == 0) {
		plist_dict_set_item(reply, "Type", plist_new_string(LOCKDOWN_TYPE));
	} else if (strcmp(request, "GetValue") == 0) {
		lockdown_get_value(sim, dev, s, req, reply);
	} else if (strcmp(request, "SetValue") == 0) {
		lockdown_set_value(dev, s, req, reply, false);
	} else if (strcmp(request, "RemoveValue") == 0) {
		lockdown_set_value(dev, s, req, reply, true);
	} else if (strcmp(request, "StartSession") == 0) {
		lockdown_start_session(sim, dev, s, req, reply, &action);
	} else if (strcmp(request, "StopSession") == 0) {
		lockdown_stop_session(s, req, reply, &action);
	} else if (strcmp(request, "Pair") == 0 || strcmp(request, "ValidatePair") == 0 ||
	           strcmp(request, "Unpair") == 0) {
		lockdown_pairing(sim, dev, request, req, reply);
	} else if (strcmp(request, "StartService") == 0) {
		lockdown_start_service(sim, dev, s, req, reply);
	} else if (strcmp(request, "Goodbye") == 0) {
		action = LOCKDOWN_CLOSE;
	} else {
		set_error(reply, "UnknownRequest");
	}
out:
	*ret_reply = reply;
	*ret_action = action;
	return 0;
}

/* ---- the connection glue ---- */

static int lockdown_open(struct svc_conn *c)
{
	struct lockdown_session *s = calloc(1, sizeof(*s));

	if (!s)
		return -ENOMEM;
	*svc_state(c) = s;
	return 0;
}

/* One request: answer it, then switch TLS or close as the answer says (1 = stop reading). */
static int lockdown_handle(struct svc_conn *c, plist_t req)
{
	struct lockdown_session *s = *svc_state(c);
	enum lockdown_action action;
	plist_t reply = NULL;
	int r;

	r = lockdown_dispatch(svc_sim(c), svc_device(c), s, req, &reply, &action);
	if (r < 0)
		return r;
	r = svc_write_plist(c, reply, false);
	plist_free(reply);
	if (r < 0)
		return r;
	switch (action) {
	case LOCKDOWN_START_TLS:
		r = devport_start_tls(c);
		return r < 0 ? r : 1; /* the rest is TLS */
	case LOCKDOWN_STOP_TLS:
		r = devport_stop_tls(c);
		return r < 0 ? r : 1;
	case LOCKDOWN_CLOSE:
		svc_close(c);
		return 1;
	case LOCKDOWN_CONTINUE:
		break;
	}
	return 0;
}

static ssize_t lockdown_input(struct svc_conn *c, const uint8_t *buf, size_t len)
{
	return devport_input_frames(c, buf, len, lockdown_handle);
}

static void lockdown_close(struct svc_conn *c)
{
	free(*svc_state(c));
	*svc_state(c) = NULL;
}

const struct svc_ops lockdown_ops = {
	.name = LOCKDOWN_TYPE,
	.ssl = false,
	.open = lockdown_open,
	.input = lockdown_input,
	.close = lockdown_close,
};
