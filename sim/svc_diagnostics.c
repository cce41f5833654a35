// SPDX-License-Identifier: MIT
/*
 * svc_diagnostics: com.apple.mobile.diagnostics_relay (also reached as
 * com.apple.iosdiagnostics.relay, see lockdown_find_service), docs/device-protocols.md "Services".
 *
 * Restart and Shutdown answer Success first and act only once that reply has been flushed and
 * the connection closed (devport_after_close): idevicediagnostics reads the reply, then its
 * Goodbye hits a closed socket, which it tolerates, and the device re-enumerates under a new
 * DeviceID after restart_delay_ms (Restart) or never comes back (Shutdown).
 *
 * Data requests are answered from the device's values, by convention (scenario authors and the
 * mux half: keep to it):
 *   values["diagnostics.MobileGestalt"][key]          -> MobileGestalt, per requested key
 *   values["diagnostics.IORegistry"][EntryName]       -> IORegistry with EntryName
 *   values["diagnostics.IORegistry"][EntryClass]      -> IORegistry with EntryClass
 *   values["diagnostics.IORegistry"][CurrentPlane]    -> IORegistry with only CurrentPlane
 *   values["diagnostics.<Type>"] (a dict)             -> All, WiFi, GasGauge, NAND, HDMI
 * The answer is {Status:"Success", Diagnostics:{<Request>: …}}; an IORegistry entry that is not
 * there answers Status "Failure"; an unknown request "UnknownRequest".
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "devport.h"
#include "macro.h"
#include "sim.h"
#include "svc.h"

#define DIAG_DOMAIN_PREFIX "diagnostics."

static const char *diag_string(plist_t dict, const char *key)
{
	plist_t v = plist_dict_get_item(dict, key);

	if (!v || plist_get_node_type(v) != PLIST_STRING)
		return NULL;
	return plist_get_string_ptr(v, NULL);
}

static plist_t diag_domain(struct sim_device *dev, const char *name)
{
	char domain[128];
	plist_t d;

	snprintf(domain, sizeof(domain), DIAG_DOMAIN_PREFIX "%s", name);
	d = plist_dict_get_item(dev->values, domain);
	return d && plist_get_node_type(d) == PLIST_DICT ? d : NULL;
}

static plist_t diag_mobilegestalt(struct sim_device *dev, plist_t req)
{
	plist_t keys = plist_dict_get_item(req, "MobileGestaltKeys");
	plist_t src = diag_domain(dev, "MobileGestalt");
	plist_t out = plist_new_dict();
	uint32_t i, n;

	if (keys && plist_get_node_type(keys) == PLIST_ARRAY) {
		n = plist_array_get_size(keys);
		for (i = 0; i < n; i++) {
			plist_t k = plist_array_get_item(keys, i);
			const char *name;
			plist_t v;

			if (plist_get_node_type(k) != PLIST_STRING)
				continue;
			name = plist_get_string_ptr(k, NULL);
			v = src && name ? plist_dict_get_item(src, name) : NULL;
			if (v)
				plist_dict_set_item(out, name, plist_copy(v));
		}
	}
	plist_dict_set_item(out, "Status", plist_new_string("Success"));
	return out;
}

static plist_t diag_ioregistry(struct sim_device *dev, plist_t req)
{
	static const char *const selectors[] = { "EntryName", "EntryClass", "CurrentPlane" };
	plist_t src = diag_domain(dev, "IORegistry");
	size_t i;

	if (!src)
		return NULL;
	for (i = 0; i < ARRAY_SIZE(selectors); i++) {
		const char *sel = diag_string(req, selectors[i]);
		plist_t v;

		if (!sel)
			continue;
		v = plist_dict_get_item(src, sel);
		return v ? plist_copy(v) : NULL;
	}
	return NULL;
}

static bool diag_is_type(const char *request)
{
	static const char *const types[] = { "All", "WiFi", "GasGauge", "NAND", "HDMI" };
	size_t i;

	for (i = 0; i < ARRAY_SIZE(types); i++)
		if (strcmp(types[i], request) == 0)
			return true;
	return false;
}

static void diag_journal(struct sim_device *dev, const char *op, plist_t req)
{
	cJSON *f = cJSON_CreateObject();
	plist_t v = plist_dict_get_item(req, "WaitForDisconnect");
	uint8_t b = 0;

	if (f && v && plist_get_node_type(v) == PLIST_BOOLEAN) {
		plist_get_bool_val(v, &b);
		cJSON_AddBoolToObject(f, "wait_for_disconnect", b);
	}
	if (f)
		cJSON_AddStringToObject(f, "service", "diagnostics_relay");
	sim_journal(dev, op, f);
}

static int diag_reply(struct svc_conn *c, const char *status, const char *what, plist_t data)
{
	plist_t reply = plist_new_dict();
	int r;

	plist_dict_set_item(reply, "Status", plist_new_string(status));
	if (data) {
		plist_t diag = plist_new_dict();

		plist_dict_set_item(diag, what, data);
		plist_dict_set_item(reply, "Diagnostics", diag);
	}
	r = svc_write_plist(c, reply, false);
	plist_free(reply);
	return r;
}

static int diag_handle(struct svc_conn *c, plist_t req)
{
	struct sim_device *dev = svc_device(c);
	const char *request =
	        plist_get_node_type(req) == PLIST_DICT ? diag_string(req, "Request") : NULL;
	plist_t data;
	int r;

	if (!request)
		return diag_reply(c, "UnknownRequest", NULL, NULL);
	if (strcmp(request, "Restart") == 0 || strcmp(request, "Shutdown") == 0) {
		bool restart = request[0] == 'R';

		diag_journal(dev, request, req);
		r = diag_reply(c, "Success", NULL, NULL);
		devport_after_close(c, restart ? DEVPORT_AFTER_RESTART : DEVPORT_AFTER_DETACH);
		svc_close(c);
		return r;
	}
	if (strcmp(request, "Sleep") == 0) {
		diag_journal(dev, request, req);
		return diag_reply(c, "Success", NULL, NULL);
	}
	if (strcmp(request, "Goodbye") == 0) {
		r = diag_reply(c, "Success", NULL, NULL);
		svc_close(c);
		return r;
	}
	if (strcmp(request, "MobileGestalt") == 0)
		return diag_reply(c, "Success", "MobileGestalt", diag_mobilegestalt(dev, req));
	if (strcmp(request, "IORegistry") == 0) {
		data = diag_ioregistry(dev, req);
		if (!data)
			return diag_reply(c, "Failure", NULL, NULL);
		return diag_reply(c, "Success", "IORegistry", data);
	}
	if (diag_is_type(request)) {
		plist_t d = diag_domain(dev, request);

		return diag_reply(c, "Success", request, d ? plist_copy(d) : plist_new_dict());
	}
	return diag_reply(c, "UnknownRequest", NULL, NULL);
}

static ssize_t diag_input(struct svc_conn *c, const uint8_t *buf, size_t len)
{
	return devport_input_frames(c, buf, len, diag_handle);
}

const struct svc_ops svc_diagnostics_relay = {
	.name = "com.apple.mobile.diagnostics_relay",
	.ssl = true,
	.input = diag_input,
};
