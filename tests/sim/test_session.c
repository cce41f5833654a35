/* SPDX-License-Identifier: MIT */
/*
 * test_session: the lockdown session life cycle through the libimobiledevice 1.3.0 C API, which
 * the tools never exercise fully: StartSession (TLS unless --plaintext) -> GetValue ->
 * StopSession (TLS shutdown) -> GetValue in plaintext on the same connection -> a second
 * StartSession/StopSession -> Goodbye; plus StartService for a known and an unknown service.
 * usage: test-sim-session UDID EXPECT_SSL(0|1)   (USBMUXD_SOCKET_ADDRESS points at cradle-sim)
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <libimobiledevice/libimobiledevice.h>
#include <libimobiledevice/lockdown.h>
#include <plist/plist.h>
#include <usbmuxd.h>

static int failures;

#define CHECK(cond, ...)                  \
 do {                                     \
  if (!(cond)) {                          \
   fprintf(stderr, "FAIL: " __VA_ARGS__); \
   fprintf(stderr, "\n");                 \
   failures++;                            \
  }                                       \
 } while (0)

static char *read_host_id(const char *udid)
{
	char *data = NULL, *host_id = NULL;
	uint32_t len = 0;
	plist_t rec = NULL, v;

	if (usbmuxd_read_pair_record(udid, &data, &len) < 0 || !data)
		return NULL;
	if (len > 8 && memcmp(data, "bplist00", 8) == 0)
		plist_from_bin(data, len, &rec);
	else
		plist_from_xml(data, len, &rec);
	v = rec ? plist_dict_get_item(rec, "HostID") : NULL;
	if (v && plist_get_node_type(v) == PLIST_STRING)
		plist_get_string_val(v, &host_id);
	plist_free(rec);
	free(data);
	return host_id;
}

static char *get_string(lockdownd_client_t c, const char *domain, const char *key,
                        lockdownd_error_t *ret_err)
{
	plist_t v = NULL;
	char *s = NULL;

	*ret_err = lockdownd_get_value(c, domain, key, &v);
	if (v && plist_get_node_type(v) == PLIST_STRING)
		plist_get_string_val(v, &s);
	plist_free(v);
	return s;
}

int main(int argc, char **argv)
{
	idevice_t dev = NULL;
	lockdownd_client_t c = NULL;
	lockdownd_service_descriptor_t svc = NULL;
	lockdownd_error_t e;
	char *host_id = NULL, *sid = NULL, *s;
	int ssl = -1, want_ssl, round;

	if (argc != 3)
		return 2;
	want_ssl = atoi(argv[2]);
	if (idevice_new(&dev, argv[1]) != IDEVICE_E_SUCCESS) {
		fprintf(stderr, "FAIL: no device %s\n", argv[1]);
		return 1;
	}
	host_id = read_host_id(argv[1]);
	CHECK(host_id != NULL, "no pair record / HostID");
	e = lockdownd_client_new(dev, &c, "test-sim-session");
	CHECK(e == LOCKDOWN_E_SUCCESS, "lockdownd_client_new %d", e);
	if (!c || !host_id)
		goto out;

	for (round = 0; round < 2; round++) {
		e = lockdownd_start_session(c, host_id, &sid, &ssl);
		CHECK(e == LOCKDOWN_E_SUCCESS, "round %d: StartSession %d", round, e);
		CHECK(ssl == want_ssl, "round %d: ssl %d, want %d", round, ssl, want_ssl);
		s = get_string(c, NULL, "SerialNumber", &e);
		CHECK(e == LOCKDOWN_E_SUCCESS && s && strcmp(s, "F4GZ1234ABCD") == 0,
		      "round %d: in session SerialNumber %d '%s'", round, e, s ? s : "(null)");
		free(s);
		if (round == 0) {
			e = lockdownd_start_service(c, "com.apple.mobile.notification_proxy", &svc);
			CHECK(e == LOCKDOWN_E_SUCCESS && svc && svc->port > 0,
			      "StartService notification_proxy %d", e);
			lockdownd_service_descriptor_free(svc);
			svc = NULL;
			e = lockdownd_start_service(c, "com.apple.no.such.service", &svc);
			CHECK(e == LOCKDOWN_E_INVALID_SERVICE, "unknown service gave %d", e);
			lockdownd_service_descriptor_free(svc);
			svc = NULL;
		}
		e = lockdownd_stop_session(c, sid);
		CHECK(e == LOCKDOWN_E_SUCCESS, "round %d: StopSession %d", round, e);
		free(sid);
		sid = NULL;
		/* plaintext again on the same socket: public keys only */
		s = get_string(c, NULL, "ProductVersion", &e);
		CHECK(e == LOCKDOWN_E_SUCCESS && s && strcmp(s, "16.6.1") == 0,
		      "round %d: after StopSession ProductVersion %d '%s'", round, e,
		      s ? s : "(null)");
		free(s);
		s = get_string(c, NULL, "SerialNumber", &e);
		CHECK(e == LOCKDOWN_E_GET_PROHIBITED, "round %d: SerialNumber outside a session %d",
		      round, e);
		free(s);
	}
	e = lockdownd_goodbye(c);
	CHECK(e == LOCKDOWN_E_SUCCESS, "Goodbye %d", e);
out:
	lockdownd_client_free(c);
	idevice_free(dev);
	free(host_id);
	if (failures == 0)
		printf("PASS\n");
	return failures ? 1 : 0;
}
