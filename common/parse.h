/* SPDX-License-Identifier: MIT */
/*
 * parse: the value syntax shared by configuration files and command-line flags, so that
 * `probe_timeout 30` in a file and `--timeout 30` on a command line mean the same thing.
 *
 *  - durations: a bare number is seconds (as systemd time spans); otherwise numbers with a
 *    unit d, h, m, s or ms, largest unit first, each unit at most once: 30s, 5m, 1h30m, 2d12h,
 *    1500ms, 1s500ms. parse_duration() wants whole seconds ("1500ms" is an error there);
 *  - sizes: a bare number is bytes; one binary suffix K, M, G or T (1K = 1024): 512, 64K, 1G;
 *  - booleans: true/false, yes/no, on/off, 1/0 (lower case);
 *  - unsigned integers: decimal digits only;
 *  - broker URLs: Paho's schemes followed by a host; the scheme alone says whether it is TLS.
 *
 * The whole string must be the value: no sign, no blanks, no trailing junk. Every function
 * returns 0, -EINVAL (not the syntax) or -ERANGE (too large), and writes *ret only on success.
 * Pure functions, callable from any thread.
 */
#ifndef CRADLE_PARSE_H
#define CRADLE_PARSE_H

#include <stdbool.h>
#include <stdint.h>

/* Largest duration accepted, in seconds: its milliseconds still fit in an int64_t. */
#define PARSE_DURATION_MAX ((uint64_t)INT64_MAX / 1000)

int parse_uint(const char *s, uint64_t *ret);
/* In seconds, at most PARSE_DURATION_MAX. */
int parse_duration(const char *s, uint64_t *ret_s);
/* In milliseconds, at most PARSE_DURATION_MAX * 1000 + 999. */
int parse_duration_ms(const char *s, uint64_t *ret_ms);
int parse_size(const char *s, uint64_t *ret_bytes);
int parse_bool(const char *s, bool *ret);
/*
 * Whether a broker URL means TLS: 1 for ssl://, mqtts://, wss://; 0 for tcp://, mqtt://,
 * ws://; -EINVAL for no known scheme or no host after it. Paho connects in plaintext for a
 * plaintext scheme even when TLS options are given, so every program that takes a CA or client
 * certificate checks the URL with this and refuses the pair (no silent plaintext fallback).
 */
int parse_broker_url_tls(const char *url);

#endif
