/* SPDX-License-Identifier: MIT */
/*
 * idev_listen: the agent's own usbmuxd Listen client against a real UNIX socket this test
 * serves (USBMUXD_SOCKET_ADDRESS=UNIX:...): the request it sends, the events it reports, how a
 * Detached finds its UDID, and the clear end of the connection on every kind of bad input
 * (refused Listen, garbage XML, a short or huge length, EOF), never a crash or a spin; and
 * the TCP addresses it accepts.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <cmocka.h>
#include <plist/plist.h>

#include "idev.h"

struct server {
	char dir[64];
	char path[96];
	int lfd; /* listening */
	int cfd; /* the accepted client */
};

struct seen {
	int n;
	enum idev_mux_event ev[16];
	char udid[16][FACTS_UDID_MAX];
};

static void on_event(enum idev_mux_event ev, const char *udid, void *data)
{
	struct seen *s = data;

	assert_true(s->n < 16);
	s->ev[s->n] = ev;
	snprintf(s->udid[s->n], FACTS_UDID_MAX, "%s", udid ? udid : "");
	s->n++;
}

static int setup(void **state)
{
	struct server *sv = calloc(1, sizeof(*sv));
	struct sockaddr_un un = { .sun_family = AF_UNIX };
	char env[160];

	assert_non_null(sv);
	snprintf(sv->dir, sizeof(sv->dir), "/tmp/idev-listen-XXXXXX");
	assert_non_null(mkdtemp(sv->dir));
	snprintf(sv->path, sizeof(sv->path), "%s/usbmuxd", sv->dir);
	snprintf(un.sun_path, sizeof(un.sun_path), "%s", sv->path);
	sv->lfd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	assert_true(sv->lfd >= 0);
	assert_int_equal(bind(sv->lfd, (struct sockaddr *)&un, sizeof(un)), 0);
	assert_int_equal(listen(sv->lfd, 4), 0);
	snprintf(env, sizeof(env), "UNIX:%s", sv->path);
	setenv("USBMUXD_SOCKET_ADDRESS", env, 1);
	sv->cfd = -1;
	*state = sv;
	return 0;
}

static int teardown(void **state)
{
	struct server *sv = *state;

	if (sv->cfd >= 0)
		close(sv->cfd);
	close(sv->lfd);
	unlink(sv->path);
	rmdir(sv->dir);
	free(sv);
	return 0;
}

/* Reads one whole request from the client: its plist (caller frees) and header fields. */
static plist_t read_request(int fd, uint32_t *version, uint32_t *message)
{
	uint32_t hdr[4];
	char *body;
	plist_t p = NULL;

	assert_int_equal(recv(fd, hdr, sizeof(hdr), MSG_WAITALL), (ssize_t)sizeof(hdr));
	assert_true(hdr[0] > 16 && hdr[0] < 4096);
	body = malloc(hdr[0] - 16);
	assert_non_null(body);
	assert_int_equal(recv(fd, body, hdr[0] - 16, MSG_WAITALL), (ssize_t)(hdr[0] - 16));
	plist_from_xml(body, hdr[0] - 16, &p);
	free(body);
	*version = hdr[1];
	*message = hdr[2];
	return p;
}

static void send_raw(int fd, uint32_t length, uint32_t message, const char *body, size_t len)
{
	uint32_t hdr[4] = { length, 1, message, 0 };

	assert_int_equal(send(fd, hdr, sizeof(hdr), MSG_NOSIGNAL), (ssize_t)sizeof(hdr));
	if (len)
		assert_int_equal(send(fd, body, len, MSG_NOSIGNAL), (ssize_t)len);
}

static void send_plist(int fd, plist_t p)
{
	char *xml = NULL;
	uint32_t len = 0;

	plist_to_xml(p, &xml, &len);
	assert_non_null(xml);
	send_raw(fd, 16 + len, 8, xml, len);
	plist_to_xml_free(xml);
	plist_free(p);
}

static plist_t result(uint64_t number)
{
	plist_t p = plist_new_dict();

	plist_dict_set_item(p, "MessageType", plist_new_string("Result"));
	plist_dict_set_item(p, "Number", plist_new_uint(number));
	return p;
}

static plist_t attached(uint64_t id, const char *serial, const char *type)
{
	plist_t p = plist_new_dict(), props = plist_new_dict();

	plist_dict_set_item(props, "DeviceID", plist_new_uint(id));
	plist_dict_set_item(props, "SerialNumber", plist_new_string(serial));
	plist_dict_set_item(props, "ConnectionType", plist_new_string(type));
	plist_dict_set_item(p, "DeviceID", plist_new_uint(id));
	plist_dict_set_item(p, "MessageType", plist_new_string("Attached"));
	plist_dict_set_item(p, "Properties", props);
	return p;
}

static plist_t by_id(const char *type, uint64_t id)
{
	plist_t p = plist_new_dict();

	plist_dict_set_item(p, "MessageType", plist_new_string(type));
	plist_dict_set_item(p, "DeviceID", plist_new_uint(id));
	return p;
}

/* Opens a client and accepts it; checks the Listen request. */
static struct idev_listen *open_client(struct server *sv, struct seen *seen)
{
	struct idev_listen *l = NULL;
	uint32_t version = 0, message = 0;
	uint64_t v = 0;
	char *s = NULL;
	plist_t req;

	assert_int_equal(idev_listen_open(on_event, seen, &l), 0);
	assert_non_null(l);
	sv->cfd = accept(sv->lfd, NULL, NULL);
	assert_true(sv->cfd >= 0);
	req = read_request(sv->cfd, &version, &message);
	assert_non_null(req);
	assert_int_equal(version, 1);
	assert_int_equal(message, 8);
	plist_get_string_val(plist_dict_get_item(req, "MessageType"), &s);
	assert_string_equal(s, "Listen");
	free(s);
	plist_get_uint_val(plist_dict_get_item(req, "kLibUSBMuxVersion"), &v);
	assert_int_equal(v, 3);
	assert_non_null(plist_dict_get_item(req, "ClientVersionString"));
	assert_non_null(plist_dict_get_item(req, "ProgName"));
	plist_free(req);
	return l;
}

static void test_events(void **state)
{
	struct server *sv = *state;
	struct seen seen = { 0 };
	struct idev_listen *l = open_client(sv, &seen);

	/* nothing yet: not an error, no event */
	assert_int_equal(idev_listen_read(l), 0);
	assert_int_equal(seen.n, 0);
	send_plist(sv->cfd, result(0));
	send_plist(sv->cfd, attached(3, "00008110000A000000000001", "USB"));
	send_plist(sv->cfd, attached(4, "00008110000A000000000002", "Network"));
	send_plist(sv->cfd, attached(5, "ffffffffffffffffffffffffffffffffffffffff", "USB"));
	send_plist(sv->cfd, by_id("Paired", 3));
	send_plist(sv->cfd, by_id("Detached", 4)); /* the network device: not reported */
	send_plist(sv->cfd, by_id("Detached", 9)); /* never announced */
	send_plist(sv->cfd, by_id("Detached", 3));
	send_plist(sv->cfd, by_id("Paired", 3)); /* gone: nothing */
	assert_int_equal(idev_listen_read(l), 0);
	assert_int_equal(seen.n, 5);
	assert_int_equal(seen.ev[0], IDEV_MUX_LISTENING);
	assert_int_equal(seen.ev[1], IDEV_MUX_ATTACHED);
	/* spelled as libusbmuxd does: a dash after digit 8 of a 24-digit serial */
	assert_string_equal(seen.udid[1], "00008110-000A000000000001");
	assert_int_equal(seen.ev[2], IDEV_MUX_ATTACHED);
	assert_string_equal(seen.udid[2], "ffffffffffffffffffffffffffffffff00000005");
	assert_int_equal(seen.ev[3], IDEV_MUX_PAIRED);
	assert_string_equal(seen.udid[3], "00008110-000A000000000001");
	assert_int_equal(seen.ev[4], IDEV_MUX_DETACHED);
	assert_string_equal(seen.udid[4], "00008110-000A000000000001");
	/* a message split anywhere is reassembled */
	{
		char *xml = NULL;
		uint32_t len = 0, hdr[4];
		plist_t p = attached(7, "00008110000A000000000007", "USB");

		plist_to_xml(p, &xml, &len);
		hdr[0] = 16 + len;
		hdr[1] = 1;
		hdr[2] = 8;
		hdr[3] = 0;
		assert_int_equal(send(sv->cfd, hdr, 10, 0), 10);
		assert_int_equal(idev_listen_read(l), 0);
		assert_int_equal(send(sv->cfd, (char *)hdr + 10, 6, 0), 6);
		assert_int_equal(send(sv->cfd, xml, len / 2, 0), (ssize_t)(len / 2));
		assert_int_equal(idev_listen_read(l), 0);
		assert_int_equal(seen.n, 5);
		assert_int_equal(send(sv->cfd, xml + len / 2, len - len / 2, 0),
		                 (ssize_t)(len - len / 2));
		assert_int_equal(idev_listen_read(l), 0);
		assert_int_equal(seen.n, 6);
		assert_string_equal(seen.udid[5], "00008110-000A000000000007");
		plist_to_xml_free(xml);
		plist_free(p);
	}
	/* usbmuxd gone: EOF ends the connection */
	close(sv->cfd);
	sv->cfd = -1;
	assert_int_equal(idev_listen_read(l), -ECONNRESET);
	idev_listen_free(l);
}

static void test_refused(void **state)
{
	struct server *sv = *state;
	struct seen seen = { 0 };
	struct idev_listen *l = open_client(sv, &seen);

	send_plist(sv->cfd, result(6));
	assert_int_equal(idev_listen_read(l), -ECONNREFUSED);
	assert_int_equal(seen.n, 0);
	idev_listen_free(l);
}

static void test_bad_input(void **state)
{
	struct server *sv = *state;
	static const char garbage[] = "<plist><dict><key>MessageType";
	struct {
		uint32_t length, message;
		const char *body;
		int want;
	} cases[] = {
		{ 8, 8, NULL, -EPROTO },                           /* shorter than its header */
		{ IDEV_MUX_MSG_MAX + 1, 8, NULL, -EMSGSIZE },      /* over the cap */
		{ 0xffffffffu, 8, NULL, -EMSGSIZE },               /* a wrapped length */
		{ 16, 8, NULL, -EPROTO },                          /* no plist at all */
		{ 16 + sizeof(garbage) - 1, 8, garbage, -EPROTO }, /* not XML */
		{ 16 + sizeof(garbage) - 1, 4, garbage, -EPROTO }, /* not a plist message */
	};

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct seen seen = { 0 };
		struct idev_listen *l = open_client(sv, &seen);

		send_plist(sv->cfd, result(0));
		send_raw(sv->cfd, cases[i].length, cases[i].message, cases[i].body,
		         cases[i].body ? strlen(cases[i].body) : 0);
		assert_int_equal(idev_listen_read(l), cases[i].want);
		assert_int_equal(seen.n, 1); /* the Result only */
		idev_listen_free(l);
		close(sv->cfd);
		sv->cfd = -1;
	}
}

/*
 * An Attached whose values are unusable (DeviceID 0, an empty or overlong serial) is skipped
 * and the connection goes on; one without Properties is malformed and ends it.
 */
static void test_odd_attached(void **state)
{
	struct server *sv = *state;
	struct seen seen = { 0 };
	struct idev_listen *l = open_client(sv, &seen);
	char longer[FACTS_UDID_MAX + 8];
	plist_t p;

	memset(longer, 'a', sizeof(longer) - 1);
	longer[sizeof(longer) - 1] = '\0';
	send_plist(sv->cfd, result(0));
	send_plist(sv->cfd, attached(0, "00008110000A000000000001", "USB"));
	send_plist(sv->cfd, attached(2, "", "USB"));
	send_plist(sv->cfd, attached(2, longer, "USB"));
	send_plist(sv->cfd, attached(2, "00008110000A000000000002", "Bluetooth"));
	send_plist(sv->cfd, by_id("Detached", 2)); /* none of those was taken */
	assert_int_equal(idev_listen_read(l), 0);
	assert_int_equal(seen.n, 1);
	p = plist_new_dict();
	plist_dict_set_item(p, "MessageType", plist_new_string("Attached"));
	send_plist(sv->cfd, p);
	assert_int_equal(idev_listen_read(l), -EPROTO);
	assert_int_equal(seen.n, 1);
	idev_listen_free(l);
}

static void test_absent(void **state)
{
	struct server *sv = *state;
	struct idev_listen *l = NULL;
	struct seen seen = { 0 };
	char env[160];

	snprintf(env, sizeof(env), "UNIX:%s/nothing-here", sv->dir);
	setenv("USBMUXD_SOCKET_ADDRESS", env, 1);
	assert_int_equal(idev_listen_open(on_event, &seen, &l), -ENOENT);
	assert_null(l);
	snprintf(env, sizeof(env), "UNIX:%s", sv->path);
	setenv("USBMUXD_SOCKET_ADDRESS", env, 1);
	assert_int_equal(idev_listen_open(NULL, &seen, &l), -EINVAL);
}

/* TCP as libusbmuxd parses it: numeric hosts (also in []) and localhost; nothing to look up. */
static void test_tcp_address(void **state)
{
	static const char *const names[] = { "usbmuxd.example:27015", "[usbmuxd]:27015" };
	/* libusbmuxd takes these for the default socket: so does the agent */
	static const char *const malformed[] = {
		"127.0.0.1:0", "127.0.0.1:65536", "127.0.0.1:", "127.0.0.1:12x",
		"127.0.0.1",   ":27015",          "UNIX:",
	};
	struct sockaddr_in sa = { .sin_family = AF_INET };
	socklen_t len = sizeof(sa);
	struct idev_listen *l = NULL;
	struct seen seen = { 0 };
	char env[64];
	int lfd;

	(void)state;
	for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
		setenv("USBMUXD_SOCKET_ADDRESS", names[i], 1);
		assert_int_equal(idev_listen_open(on_event, &seen, &l), -EINVAL);
		assert_int_equal(idev_mux_reachable(), -EINVAL);
	}
	for (size_t i = 0; i < sizeof(malformed) / sizeof(malformed[0]); i++) {
		char path[64];

		setenv("USBMUXD_SOCKET_ADDRESS", malformed[i], 1);
		idev_mux_unix_path(path, sizeof(path));
		assert_string_equal(path, "/var/run/usbmuxd");
	}
	setenv("USBMUXD_SOCKET_ADDRESS", "[::1]:27015", 1);
	{
		char path[64];

		idev_mux_unix_path(path, sizeof(path));
		assert_string_equal(path, ""); /* TCP */
	}
	lfd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	assert_true(lfd >= 0);
	sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	assert_int_equal(bind(lfd, (struct sockaddr *)&sa, sizeof(sa)), 0);
	assert_int_equal(listen(lfd, 4), 0);
	assert_int_equal(getsockname(lfd, (struct sockaddr *)&sa, &len), 0);
	snprintf(env, sizeof(env), "127.0.0.1:%u", ntohs(sa.sin_port));
	setenv("USBMUXD_SOCKET_ADDRESS", env, 1);
	assert_int_equal(idev_listen_open(on_event, &seen, &l), 0);
	l = idev_listen_free(l);
	snprintf(env, sizeof(env), "localhost:%u", ntohs(sa.sin_port));
	setenv("USBMUXD_SOCKET_ADDRESS", env, 1);
	assert_int_equal(idev_mux_reachable(), 0);
	close(lfd);
	/* nothing listens there any more */
	assert_int_equal(idev_listen_open(on_event, &seen, &l), -ECONNREFUSED);
	assert_null(l);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_events, setup, teardown),
		cmocka_unit_test_setup_teardown(test_refused, setup, teardown),
		cmocka_unit_test_setup_teardown(test_bad_input, setup, teardown),
		cmocka_unit_test_setup_teardown(test_odd_attached, setup, teardown),
		cmocka_unit_test_setup_teardown(test_absent, setup, teardown),
		cmocka_unit_test(test_tcp_address),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
