/* SPDX-License-Identifier: MIT */
/*
 * test_np: a notification_proxy observer through the libimobiledevice 1.3.0 C API, as the agent
 * uses it: np_client_start_service(), np_observe_notification(), np_set_notify_callback() (the
 * np client's own thread reads the RelayNotification pushes).
 *
 * Usage (driven by test_live.py): test_np UDID NAME SECONDS
 * with USBMUXD_SOCKET_ADDRESS pointing at the simulator. Prints "observing" once the
 * observation is sent, then "notified NAME" per notification, and exits 0 after SECONDS;
 * exit 3 with "refused N" when the phone refuses the service, 1 on any other failure.
 */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <libimobiledevice/libimobiledevice.h>
#include <libimobiledevice/notification_proxy.h>

static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;

static void on_notification(const char *name, void *data)
{
	(void)data;
	pthread_mutex_lock(&lock);
	printf("notified %s\n", name);
	fflush(stdout);
	pthread_mutex_unlock(&lock);
}

int main(int argc, char **argv)
{
	idevice_t dev = NULL;
	np_client_t np = NULL;
	struct timespec ts;
	np_error_t e;
	int status = 1;

	if (argc != 4) {
		fprintf(stderr, "usage: test_np UDID NAME SECONDS\n");
		return 2;
	}
	if (idevice_new_with_options(&dev, argv[1], IDEVICE_LOOKUP_USBMUX) != IDEVICE_E_SUCCESS) {
		fprintf(stderr, "test_np: no device %s\n", argv[1]);
		goto out;
	}
	e = np_client_start_service(dev, &np, "test_np");
	if (e != NP_E_SUCCESS) {
		printf("refused %d\n", (int)e);
		status = 3;
		goto out;
	}
	if (np_observe_notification(np, argv[2]) != NP_E_SUCCESS ||
	    np_set_notify_callback(np, on_notification, NULL) != NP_E_SUCCESS) {
		fprintf(stderr, "test_np: cannot observe %s\n", argv[2]);
		goto out;
	}
	pthread_mutex_lock(&lock);
	printf("observing\n");
	fflush(stdout);
	pthread_mutex_unlock(&lock);
	ts.tv_sec = atoi(argv[3]);
	ts.tv_nsec = 0;
	nanosleep(&ts, NULL);
	status = 0;
out:
	if (np)
		np_client_free(np);
	if (dev)
		idevice_free(dev);
	return status;
}
