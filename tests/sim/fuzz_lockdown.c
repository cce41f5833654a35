/* SPDX-License-Identifier: MIT */
/*
 * fuzz_lockdown: lockdownd's request parser and dispatcher on arbitrary bytes. The first byte
 * picks the device's pairing state and --plaintext; the rest is split into frames exactly as
 * the connection does (svc_parse_frame) and each request is dispatched and its reply
 * serialised. One device per input (values, trust store, reservations, journal), freed after,
 * so leaks show up under ASan. Keys are made once per process: they cost far more than a run.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "devport.h"
#include "lockdown.h"
#include "sim.h"
#include "svc.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static struct sim fuzz_sim;

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct lockdown_session s;
	struct sim_device *dev;
	size_t off = 1;
	plist_t root;

	if (size < 1)
		return 0;
	if (!fuzz_sim.ports && devport_init(&fuzz_sim, &lockdown_ops) < 0)
		abort();
	snprintf(fuzz_sim.buid, sizeof(fuzz_sim.buid), "FUZZ-BUID");
	fuzz_sim.plaintext = data[0] & 0x80;
	dev = sim_device_new("00008030-001A2B3C4D5E6F70");
	if (!dev)
		return 0;
	dev->attached = true;
	dev->pairing = (enum sim_pairing)((data[0] & 0x7f) % _SIM_PAIRING_MAX);
	root = plist_dict_get_item(dev->values, "");
	plist_dict_set_item(root, "ProductVersion", plist_new_string("16.6.1"));
	plist_dict_set_item(root, "SerialNumber", plist_new_string("F4GZ1234ABCD"));
	plist_dict_set_item(dev->values, "com.apple.mobile.backup", plist_new_dict());
	devport_trust_host(dev, "FUZZHOST");
	memset(&s, 0, sizeof(s));

	while (off < size) {
		enum lockdown_action action;
		plist_t req = NULL, reply = NULL;
		ssize_t n = svc_parse_frame(data + off, size - off, &req);
		char *xml = NULL;
		uint32_t len = 0;

		if (n <= 0)
			break;
		off += (size_t)n;
		if (lockdown_dispatch(&fuzz_sim, dev, &s, req, &reply, &action) == 0) {
			plist_to_xml(reply, &xml, &len);
			free(xml);
		}
		plist_free(req);
		plist_free(reply);
		if (action == LOCKDOWN_CLOSE)
			break;
	}
	sim_device_free(dev);
	return 0;
}
