/* SPDX-License-Identifier: MIT */
/*
 * cradle-agent-action: the killable helper that performs one remediation on one device over USB
 * and prints one JSON line with the outcome, e.g.
 *
 *     cradle-agent-action --udid U cloud-on      -> {"ok":true}
 *     cradle-agent-action --udid U restart       -> {"ok":false,"error_code":-3,"error":"…"}
 *
 * Like the probe helper it runs in its own process so that the daemon can kill it at a
 * deadline: libimobiledevice calls block (30 s receive timeouts, a phone that shows a dialog),
 * and a thread cannot be killed. It never pairs: without a pair record on this host it refuses,
 * because the handshake's automatic Pair would put a trust prompt on the phone.
 *
 *     cradle-agent-action --exec /usr/bin/idevicebackup2 -u U backup DIR
 *
 * --exec runs a tool in place of this process after arranging that it dies with the agent
 * (PR_SET_PDEATHSIG survives exec): a kill -9 of the agent must not leave a backup running that
 * nobody follows, writing into a folder the restarted agent discards.
 *
 * Exit status: 0 when the outcome was printed (ok or not), 2 on bad usage.
 */
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <unistd.h>

#include <cjson/cJSON.h>
#include <libimobiledevice/diagnostics_relay.h>
#include <libimobiledevice/libimobiledevice.h>
#include <libimobiledevice/lockdown.h>
#include <libimobiledevice/mobilebackup2.h>
#include <plist/plist.h>
#include <usbmuxd.h>

#define LABEL "cradle-agent"

static void print_outcome(bool ok, int code, const char *error)
{
	cJSON *o = cJSON_CreateObject();
	char *s;

	cJSON_AddBoolToObject(o, "ok", ok);
	if (!ok) {
		cJSON_AddNumberToObject(o, "error_code", code);
		cJSON_AddStringToObject(o, "error", error ? error : "");
	}
	s = cJSON_PrintUnformatted(o);
	if (s)
		printf("%s\n", s);
	fflush(stdout);
	free(s);
	cJSON_Delete(o);
}

static bool has_pair_record(const char *udid)
{
	char *data = NULL;
	uint32_t len = 0;
	bool ok = usbmuxd_read_pair_record(udid, &data, &len) == 0 && len > 0;

	free(data);
	return ok;
}

/* Reads the ErrorCode of a DLMessageProcessMessage reply; text gets ErrorDescription. */
static int reply_error_code(plist_t msg, char *text, size_t size)
{
	plist_t dict = plist_array_get_item(msg, 1), node;
	uint64_t code = 0;
	char *desc = NULL;

	text[0] = '\0';
	if (!dict || plist_get_node_type(dict) != PLIST_DICT)
		return -1;
	node = plist_dict_get_item(dict, "ErrorCode");
	if (node && plist_get_node_type(node) == PLIST_UINT)
		plist_get_uint_val(node, &code);
	node = plist_dict_get_item(dict, "ErrorDescription");
	if (node && plist_get_node_type(node) == PLIST_STRING) {
		plist_get_string_val(node, &desc);
		snprintf(text, size, "%s", desc ? desc : "");
		free(desc);
	}
	return (int)code;
}

static int do_cloud(idevice_t dev, lockdownd_client_t lockdown, const char *udid, bool enable)
{
	lockdownd_service_descriptor_t svc = NULL;
	mobilebackup2_client_t mb2 = NULL;
	double versions[2] = { 2.0, 2.1 }, remote = 0.0;
	plist_t opts = NULL, msg = NULL;
	char *dlmsg = NULL, text[256];
	lockdownd_error_t lerr;
	int r, code;

	/* idevicebackup2 starts mobilebackup2 with the escrow bag; so do we, the device expects it
	 */
	lerr = lockdownd_start_service_with_escrow_bag(lockdown, MOBILEBACKUP2_SERVICE_NAME, &svc);
	if (lerr != LOCKDOWN_E_SUCCESS) {
		snprintf(text, sizeof(text), "cannot start %s (lockdown %d)",
		         MOBILEBACKUP2_SERVICE_NAME, lerr);
		print_outcome(false, lerr, text);
		r = 0;
		goto out;
	}
	if (mobilebackup2_client_new(dev, svc, &mb2) != MOBILEBACKUP2_E_SUCCESS ||
	    mobilebackup2_version_exchange(mb2, versions, 2, &remote) != MOBILEBACKUP2_E_SUCCESS) {
		print_outcome(false, -1, "mobilebackup2 version exchange failed");
		r = 0;
		goto out;
	}
	opts = plist_new_dict();
	plist_dict_set_item(opts, "CloudBackupState", plist_new_bool(enable));
	if (mobilebackup2_send_request(mb2, "EnableCloudBackup", udid, udid, opts) !=
	    MOBILEBACKUP2_E_SUCCESS) {
		print_outcome(false, -1, "sending EnableCloudBackup failed");
		r = 0;
		goto out;
	}
	if (mobilebackup2_receive_message(mb2, &msg, &dlmsg) != MOBILEBACKUP2_E_SUCCESS || !msg) {
		print_outcome(false, -1, "no reply to EnableCloudBackup");
		r = 0;
		goto out;
	}
	code = reply_error_code(msg, text, sizeof(text));
	if (code == 0)
		print_outcome(true, 0, NULL);
	else
		print_outcome(false, code, text[0] ? text : "EnableCloudBackup failed");
	mobilebackup2_send_message(mb2, "DLMessageDisconnect", NULL);
	r = 0;
out:
	free(dlmsg);
	plist_free(msg);
	plist_free(opts);
	mobilebackup2_client_free(mb2);
	lockdownd_service_descriptor_free(svc);
	return r;
}

static int do_restart(idevice_t dev)
{
	diagnostics_relay_client_t diag = NULL;
	diagnostics_relay_error_t err;

	err = diagnostics_relay_client_start_service(dev, &diag, LABEL);
	if (err != DIAGNOSTICS_RELAY_E_SUCCESS) {
		print_outcome(false, err, "cannot start diagnostics_relay");
		return 0;
	}
	err = diagnostics_relay_restart(diag, DIAGNOSTICS_RELAY_ACTION_FLAG_WAIT_FOR_DISCONNECT);
	if (err == DIAGNOSTICS_RELAY_E_SUCCESS)
		print_outcome(true, 0, NULL);
	else
		print_outcome(false, err, "Restart was refused");
	/* the device is going away: Goodbye fails on the closed socket, as with idevicediagnostics
	 */
	diagnostics_relay_goodbye(diag);
	diagnostics_relay_client_free(diag);
	return 0;
}

static void usage(void)
{
	fprintf(stderr, "usage: cradle-agent-action --udid UDID cloud-on|cloud-off|restart\n");
}

int main(int argc, char **argv)
{
	const char *udid = NULL, *action = NULL;
	idevice_t dev = NULL;
	lockdownd_client_t lockdown = NULL;
	lockdownd_error_t lerr;
	char text[128];
	int i, r = 0;

	if (argc > 2 && strcmp(argv[1], "--exec") == 0) {
		if (prctl(PR_SET_PDEATHSIG, SIGKILL) < 0 || getppid() == 1)
			return 2; /* the agent is already gone */
		execv(argv[2], argv + 2);
		perror(argv[2]);
		return 2;
	}
	for (i = 1; i < argc; i++) {
		if (strcmp(argv[i], "--udid") == 0 && i + 1 < argc)
			udid = argv[++i];
		else if (!action && argv[i][0] != '-')
			action = argv[i];
		else {
			usage();
			return 2;
		}
	}
	if (!udid || !action ||
	    (strcmp(action, "cloud-on") && strcmp(action, "cloud-off") &&
	     strcmp(action, "restart"))) {
		usage();
		return 2;
	}
	if (idevice_new_with_options(&dev, udid, IDEVICE_LOOKUP_USBMUX) != IDEVICE_E_SUCCESS) {
		print_outcome(false, -8, "device_disconnected");
		goto out;
	}
	if (!has_pair_record(udid)) {
		print_outcome(false, -29, "not_trusted");
		goto out;
	}
	lerr = lockdownd_client_new_with_handshake(dev, &lockdown, LABEL);
	if (lerr != LOCKDOWN_E_SUCCESS) {
		snprintf(text, sizeof(text), "lockdown handshake failed (%d)", lerr);
		print_outcome(false, lerr, text);
		goto out;
	}
	if (strcmp(action, "restart") == 0) {
		/* diagnostics_relay starts its own lockdown session */
		lockdownd_client_free(lockdown);
		lockdown = NULL;
		r = do_restart(dev);
	} else {
		r = do_cloud(dev, lockdown, udid, strcmp(action, "cloud-on") == 0);
	}
out:
	lockdownd_client_free(lockdown);
	idevice_free(dev);
	return r;
}
