/* SPDX-License-Identifier: MIT */
/*
 * cradle-sim: stands in for usbmuxd and a cart full of iPhones so that unmodified
 * libimobiledevice (Debian's idevice* tools, the agent) can be tested without hardware.
 * This file only parses options, loads the scenario, wires the halves together on one loop
 * and prints the ready line tests wait for; everything else lives in libsim.
 *
 * Exit status: 0 after SIGTERM/SIGINT, 1 on a runtime failure, 2 on bad usage or a bad
 * scenario (the message names the JSON path).
 */
#include <errno.h>
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/resource.h>

#include "control.h"
#include "devport.h"
#include "generate.h"
#include "lockdown.h"
#include "log.h"
#include "loop.h"
#include "mux.h"
#include "scenario.h"
#include "sim.h"
#include "timeline.h"
#include "version.h"

#define MAIN_LISTEN_MAX MUX_LISTENERS_MAX

static void usage(FILE *f)
{
	fputs("usage: cradle-sim --listen ADDR [--listen ADDR...] [--control unix:PATH]\n"
	      "                  [--scenario FILE] [--generate N [--seed S]] [--plaintext]\n"
	      "                  [--log-level error|warn|notice|info|debug]\n"
	      "       cradle-sim --version | -h | --help\n"
	      "  ADDR: unix:/path or HOST:PORT (PORT 0 picks a free port)\n"
	      "Prints 'cradle-sim: ready usbmuxd=ADDR[,ADDR] control=PATH' when serving.\n"
	      "See sim/README.md.\n",
	      f);
}

static void on_signal(struct loop *loop, int signo, void *data)
{
	(void)signo;
	(void)data;
	loop_stop(loop);
}

static void make_buid(char *buf, size_t size)
{
	uint8_t b[16] = { 0 };

	if (getrandom(b, sizeof(b), 0) != (ssize_t)sizeof(b))
		memset(b, 0x5a, sizeof(b));
	b[6] = (uint8_t)((b[6] & 0x0f) | 0x40);
	b[8] = (uint8_t)((b[8] & 0x3f) | 0x80);
	snprintf(buf, size, "%02X%02X%02X%02X-%02X%02X-%02X%02X-%02X%02X-%02X%02X%02X%02X%02X%02X",
	         b[0], b[1], b[2], b[3], b[4], b[5], b[6], b[7], b[8], b[9], b[10], b[11], b[12],
	         b[13], b[14], b[15]);
}

/* 500 phones and a busy agent mean thousands of short-lived sockets: take the hard limit. */
static void raise_fd_limit(void)
{
	struct rlimit rl;

	if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
		rl.rlim_cur = rl.rlim_max;
		(void)setrlimit(RLIMIT_NOFILE, &rl);
	}
}

static int parse_u64(const char *s, uint64_t *ret)
{
	char *end = NULL;
	unsigned long long v;

	errno = 0;
	v = strtoull(s, &end, 0);
	if (errno || !end || *end || end == s || s[0] == '-')
		return -EINVAL;
	*ret = v;
	return 0;
}

int main(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "listen", required_argument, NULL, 'l' },
		{ "control", required_argument, NULL, 'c' },
		{ "scenario", required_argument, NULL, 's' },
		{ "generate", required_argument, NULL, 'g' },
		{ "seed", required_argument, NULL, 'S' },
		{ "plaintext", no_argument, NULL, 'p' },
		{ "log-level", required_argument, NULL, 'L' },
		{ "help", no_argument, NULL, 'h' },
		{ "version", no_argument, NULL, 'V' },
		{ NULL, 0, NULL, 0 },
	};
	const char *listens[MAIN_LISTEN_MAX], *control_spec = NULL, *scenario_path = NULL;
	struct scenario sc = { 0 };
	struct sim sim = { 0 };
	struct control *ctl = NULL;
	struct mux *mux = NULL;
	struct timeline *tl = NULL;
	uint64_t generate = 0, seed = 1;
	char err[SCENARIO_ERR_MAX];
	enum log_level level = LOG_LEVEL_NOTICE;
	int n_listens = 0, c, i, r, status = 1;

	log_init("cradle-sim", level);
	while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
		switch (c) {
		case 'l':
			if (n_listens == MAIN_LISTEN_MAX) {
				fprintf(stderr, "cradle-sim: at most %d --listen\n",
				        MAIN_LISTEN_MAX);
				return 2;
			}
			listens[n_listens++] = optarg;
			break;
		case 'c':
			control_spec = optarg;
			break;
		case 's':
			scenario_path = optarg;
			break;
		case 'g':
			if (parse_u64(optarg, &generate) < 0 || generate > GENERATE_MAX) {
				fprintf(stderr, "cradle-sim: --generate: expected 0..%d\n",
				        GENERATE_MAX);
				return 2;
			}
			break;
		case 'S':
			if (parse_u64(optarg, &seed) < 0) {
				fprintf(stderr,
				        "cradle-sim: --seed: expected an unsigned integer\n");
				return 2;
			}
			break;
		case 'p':
			sim.plaintext = true;
			break;
		case 'L':
			if (log_level_from_string(optarg, &level) < 0) {
				fprintf(stderr, "cradle-sim: --log-level: unknown level '%s'\n",
				        optarg);
				return 2;
			}
			log_set_level(level);
			break;
		case 'h':
			usage(stdout);
			return 0;
		case 'V':
			puts("cradle-sim " CRADLE_VERSION);
			return 0;
		default:
			usage(stderr);
			return 2;
		}
	}
	if (optind < argc || n_listens == 0) {
		usage(stderr);
		return 2;
	}

	/* Load everything before opening a socket: a bad scenario must not look "ready". */
	if (scenario_path && scenario_load_file(&sc, scenario_path, err, sizeof(err)) < 0) {
		fprintf(stderr, "scenario: %s\n", err);
		status = 2;
		goto out;
	}
	if (generate && generate_devices(&sc, (int)generate, seed, wall_now_ms() / 1000, err,
	                                 sizeof(err)) < 0) {
		fprintf(stderr, "scenario: %s\n", err);
		status = 2;
		goto out;
	}

	(void)signal(SIGPIPE, SIG_IGN);
	raise_fd_limit();
	sim.loop = loop_new();
	if (!sim.loop) {
		log_error("out of memory");
		goto out;
	}
	make_buid(sim.buid, sizeof(sim.buid));
	r = mux_new(&sim, &mux);
	if (r < 0) {
		log_error_errno(r, "mux");
		goto out;
	}
	r = devport_init(&sim, &lockdown_ops);
	if (r < 0) {
		log_error_errno(r, "crypto init");
		goto out;
	}

	/* The devices move into struct sim; pre-paired ones get the record a real pairing
	 * leaves behind. */
	sim.devices = sc.devices;
	sim.n_devices = sc.n_devices;
	sc.devices = NULL;
	sc.n_devices = 0;
	for (i = 0; i < sim.n_devices; i++) {
		struct sim_device *dev = sim.devices[i];
		bool want = dev->attached;

		dev->attached = false;
		sim_device_set_pairing(&sim, dev, dev->pairing);
		if (want)
			sim_device_attach(&sim, dev);
	}

	for (i = 0; i < n_listens; i++) {
		r = mux_listen(mux, listens[i]);
		if (r < 0) {
			log_error_errno(r, "--listen %s", listens[i]);
			goto out;
		}
	}
	if (control_spec) {
		r = control_new(&sim, control_spec, &ctl);
		if (r < 0) {
			log_error_errno(r, "--control %s", control_spec);
			goto out;
		}
	}
	sim_clock_start(&sim, sc.time_scale);
	r = timeline_start(&sim, &sc, &tl);
	if (r < 0) {
		log_error_errno(r, "timeline");
		goto out;
	}
	if (loop_add_signal(sim.loop, SIGTERM, on_signal, NULL) < 0 ||
	    loop_add_signal(sim.loop, SIGINT, on_signal, NULL) < 0) {
		log_error("cannot watch signals");
		goto out;
	}

	printf("cradle-sim: ready usbmuxd=");
	for (i = 0; i < mux->n_listeners; i++)
		printf("%s%s", i ? "," : "", mux->listeners[i].addr);
	printf(" control=%s\n", ctl ? control_path(ctl) : "");
	fflush(stdout);
	log_notice("serving %d devices (%s, time scale %g)", sim.n_devices,
	           sim.plaintext ? "plaintext" : "TLS", sim.time_scale);
	r = loop_run(sim.loop);
	status = r < 0 ? 1 : 0;
out:
	if (sim.loop) {
		timeline_stop(tl);
		control_free(ctl);
		mux_free(mux);
		sim_done(&sim);
		devport_free(&sim);
		loop_free(sim.loop);
	}
	scenario_free(&sc);
	return status;
}
