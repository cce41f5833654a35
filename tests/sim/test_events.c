/* SPDX-License-Identifier: MIT */
/*
 * test_events: cradle-sim through the libimobiledevice 1.3.0 C API, the way the agent uses it.
 * idevice_get_device_list() sees the scenario's attached devices; idevice_event_subscribe()
 * gets one IDEVICE_DEVICE_ADD per present device, then REMOVE/ADD when the control socket
 * detaches and attaches a device.
 *
 * Usage (run by test_events.py once the simulator is ready):
 *   test_events CONTROL_PATH N_ATTACHED UDID
 * with USBMUXD_SOCKET_ADDRESS pointing at the simulator. Every wait is bounded.
 */
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include <libimobiledevice/libimobiledevice.h>

#define MAX_EVENTS 256

struct ev {
	int type;
	char udid[64];
};

static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t cond = PTHREAD_COND_INITIALIZER;
static struct ev events[MAX_EVENTS];
static int n_events;

static void on_event(const idevice_event_t *e, void *data)
{
	(void)data;
	pthread_mutex_lock(&lock);
	if (n_events < MAX_EVENTS) {
		events[n_events].type = e->event;
		snprintf(events[n_events].udid, sizeof(events[n_events].udid), "%s", e->udid);
		n_events++;
	}
	pthread_cond_broadcast(&cond);
	pthread_mutex_unlock(&lock);
}

static int count_events(int type, const char *udid)
{
	int i, n = 0;

	for (i = 0; i < n_events; i++)
		if (events[i].type == type && (!udid || strcmp(events[i].udid, udid) == 0))
			n++;
	return n;
}

/* Waits up to 10 s until at least want events of type (for udid, or any) were seen. */
static int wait_events(int type, const char *udid, int want)
{
	struct timespec until;
	int r = 0;

	clock_gettime(CLOCK_REALTIME, &until);
	until.tv_sec += 10;
	pthread_mutex_lock(&lock);
	while (count_events(type, udid) < want && r != ETIMEDOUT)
		r = pthread_cond_timedwait(&cond, &lock, &until);
	r = count_events(type, udid) >= want ? 0 : -ETIMEDOUT;
	pthread_mutex_unlock(&lock);
	return r;
}

static int control(const char *path, const char *req)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	struct timeval tv = { .tv_sec = 10 };
	char reply[4096];
	size_t len = 0;
	int fd, r = -1;

	snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", path);
	fd = socket(AF_UNIX, SOCK_STREAM, 0);
	if (fd < 0)
		return -1;
	setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0 ||
	    write(fd, req, strlen(req)) != (ssize_t)strlen(req) || write(fd, "\n", 1) != 1)
		goto out;
	while (len < sizeof(reply) - 1) {
		ssize_t n = read(fd, reply + len, sizeof(reply) - 1 - len);

		if (n <= 0)
			break;
		len += (size_t)n;
		if (memchr(reply, '\n', len))
			break;
	}
	reply[len] = '\0';
	r = strstr(reply, "\"ok\":true") ? 0 : -1;
	if (r < 0)
		fprintf(stderr, "control %s -> %s\n", req, reply);
out:
	close(fd);
	return r;
}

static int list_has(const char *udid, int *count)
{
	char **list = NULL;
	int n = 0, i, found = 0;

	if (idevice_get_device_list(&list, &n) != IDEVICE_E_SUCCESS)
		return -1;
	for (i = 0; i < n; i++)
		if (strcmp(list[i], udid) == 0)
			found = 1;
	idevice_device_list_free(list);
	*count = n;
	return found;
}

#define CHECK(cond, ...)                  \
 do {                                     \
  if (!(cond)) {                          \
   fprintf(stderr, "FAIL: " __VA_ARGS__); \
   fputc('\n', stderr);                   \
   goto out;                              \
  }                                       \
 } while (0)

int main(int argc, char **argv)
{
	char req[256];
	int n_attached, count = 0, status = 1, subscribed = 0;
	const char *ctl, *udid;

	if (argc != 4) {
		fprintf(stderr, "usage: test_events CONTROL N_ATTACHED UDID\n");
		return 2;
	}
	ctl = argv[1];
	n_attached = atoi(argv[2]);
	udid = argv[3];

	CHECK(list_has(udid, &count) == 1, "%s not in idevice_get_device_list", udid);
	CHECK(count == n_attached, "device list has %d entries, expected %d", count, n_attached);

	CHECK(idevice_event_subscribe(on_event, NULL) == IDEVICE_E_SUCCESS, "subscribe");
	subscribed = 1;
	CHECK(wait_events(IDEVICE_DEVICE_ADD, NULL, n_attached) == 0,
	      "initial ADD events: %d of %d", count_events(IDEVICE_DEVICE_ADD, NULL), n_attached);
	CHECK(count_events(IDEVICE_DEVICE_ADD, udid) == 1, "one initial ADD for %s", udid);

	snprintf(req, sizeof(req), "{\"op\":\"detach\",\"udid\":\"%s\"}", udid);
	CHECK(control(ctl, req) == 0, "detach");
	CHECK(wait_events(IDEVICE_DEVICE_REMOVE, udid, 1) == 0, "REMOVE for %s", udid);
	CHECK(list_has(udid, &count) == 0 && count == n_attached - 1, "list after detach");

	snprintf(req, sizeof(req), "{\"op\":\"attach\",\"udid\":\"%s\"}", udid);
	CHECK(control(ctl, req) == 0, "attach");
	CHECK(wait_events(IDEVICE_DEVICE_ADD, udid, 2) == 0, "second ADD for %s", udid);
	CHECK(list_has(udid, &count) == 1 && count == n_attached, "list after attach");
	CHECK(count_events(IDEVICE_DEVICE_REMOVE, NULL) == 1, "exactly one REMOVE overall");
	status = 0;
	printf("ok\n");
out:
	if (subscribed)
		idevice_event_unsubscribe();
	return status;
}
