/* SPDX-License-Identifier: MIT */
/*
 * outbox: order, acks, reopen, coalescing, the overflow policy, damaged tails (kill -9 or
 * power cut in the middle of a write), compaction, and a throughput figure with batched fsync.
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "outbox.h"

static char dir[64];
static char path[128];

static int setup(void **state)
{
	(void)state;
	snprintf(dir, sizeof(dir), "/tmp/agent-outbox-XXXXXX");
	if (!mkdtemp(dir))
		return -1;
	snprintf(path, sizeof(path), "%s/" OUTBOX_FILE, dir);
	return 0;
}

static int teardown(void **state)
{
	(void)state;
	unlink(path);
	rmdir(dir);
	return 0;
}

static const struct outbox_limits big = { .max_bytes = 1 << 30, .max_records = 1000000 };

static struct outbox *open_ob(const struct outbox_limits *lim)
{
	struct outbox *ob = NULL;

	assert_int_equal(outbox_open(dir, lim, &ob), 0);
	return ob;
}

static uint64_t put(struct outbox *ob, const char *topic, const char *payload, const char *key)
{
	uint64_t seq = 0;

	assert_int_equal(outbox_put(ob, topic, payload, strlen(payload), key != NULL, 1, key, &seq),
	                 0);
	return seq;
}

/* The live records in order, as "payload" strings joined by ' '. */
static void expect_payloads(struct outbox *ob, const char *want)
{
	char got[4096] = "";
	struct outbox_record *rec = NULL;
	uint64_t after = 0;
	size_t len = 0;

	while (outbox_next(ob, after, &rec) == 0) {
		len += (size_t)snprintf(got + len, sizeof(got) - len, "%s%s", len ? " " : "",
		                        rec->payload);
		assert_true(len < sizeof(got));
		after = rec->seq;
		rec = outbox_record_free(rec);
	}
	assert_string_equal(got, want);
}

static void test_order_ack_reopen(void **state)
{
	struct outbox *ob = open_ob(&big);
	struct outbox_record *rec = NULL;
	uint64_t s1, s2, s3;

	(void)state;
	assert_int_equal(outbox_depth(ob), 0);
	assert_int_equal(outbox_next(ob, 0, &rec), -ENOENT);
	s1 = put(ob, "t/a", "e1", NULL);
	s2 = put(ob, "t/b", "e2", NULL);
	s3 = put(ob, "t/c", "e3", "result:cmd-1");
	assert_true(s1 < s2 && s2 < s3);
	assert_int_equal(outbox_next(ob, s1, &rec), 0);
	assert_int_equal(rec->seq, s2);
	assert_string_equal(rec->topic, "t/b");
	assert_int_equal(rec->len, 2);
	assert_false(rec->retained);
	assert_int_equal(rec->qos, 1);
	rec = outbox_record_free(rec);
	assert_int_equal(outbox_ack(ob, s2), 0);
	assert_int_equal(outbox_ack(ob, s2), -ENOENT);
	assert_false(outbox_contains(ob, s2));
	expect_payloads(ob, "e1 e3");
	ob = outbox_close(ob);

	/* reopen: same records, same seqs, same order; new seqs continue after the old ones */
	ob = open_ob(&big);
	assert_int_equal(outbox_depth(ob), 2);
	expect_payloads(ob, "e1 e3");
	assert_true(outbox_contains(ob, s1) && outbox_contains(ob, s3));
	assert_true(put(ob, "t/d", "e4", NULL) > s3);
	assert_int_equal(outbox_next(ob, s1, &rec), 0);
	assert_int_equal(rec->kind, OUTBOX_RESULT);
	assert_true(rec->retained);
	rec = outbox_record_free(rec);
	/* seqs never go back, even when everything was acked and the journal compacted */
	assert_int_equal(outbox_ack(ob, s1), 0);
	assert_int_equal(outbox_ack(ob, s3), 0);
	assert_int_equal(outbox_ack(ob, s3 + 1), 0);
	ob = outbox_close(ob);
	ob = open_ob(&big);
	assert_int_equal(outbox_depth(ob), 0);
	assert_true(put(ob, "t/e", "e5", NULL) > s3 + 1);
	outbox_close(ob);
}

static void test_bad_args(void **state)
{
	struct outbox *ob = open_ob(&big);
	char topic[OUTBOX_TOPIC_MAX + 1];
	char *payload = calloc(1, OUTBOX_PAYLOAD_MAX + 1);

	(void)state;
	memset(topic, 'a', sizeof(topic) - 1);
	topic[sizeof(topic) - 1] = '\0';
	assert_int_equal(outbox_put(ob, "", "x", 1, false, 1, NULL, NULL), -EINVAL);
	assert_int_equal(outbox_put(ob, topic, "x", 1, false, 1, NULL, NULL), -EINVAL);
	assert_int_equal(outbox_put(ob, "t", "x", 1, false, 3, NULL, NULL), -EINVAL);
	assert_int_equal(outbox_put(ob, "t", payload, OUTBOX_PAYLOAD_MAX + 1, false, 1, NULL, NULL),
	                 -EINVAL);
	assert_int_equal(outbox_put(ob, "t", payload, OUTBOX_PAYLOAD_MAX, false, 1, NULL, NULL), 0);
	assert_int_equal(outbox_put(ob, "t", NULL, 0, true, 1, "state:x", NULL),
	                 0); /* empty = delete */
	assert_int_equal(outbox_depth(ob), 2);
	free(payload);
	outbox_close(ob);
}

static void test_coalescing(void **state)
{
	struct outbox_limits four = { .max_bytes = 1 << 20, .max_records = 4 };
	struct outbox *ob = open_ob(&big);
	struct outbox_stats st;

	(void)state;
	/* with room, every state change is kept: consumers see each one, no seq gaps */
	put(ob, "s/A", "A1", "state:A");
	put(ob, "e", "ev1", NULL);
	put(ob, "s/B", "B1", "state:B");
	put(ob, "s/A", "A2", "state:A");
	put(ob, "r", "R1", "result:c1");
	put(ob, "r", "R2", "result:c1");
	expect_payloads(ob, "A1 ev1 B1 A2 R1 R2");
	outbox_get_stats(ob, &st);
	assert_int_equal(st.superseded, 0);
	for (uint64_t seq = 1; seq <= 6; seq++)
		outbox_ack(ob, seq);
	ob = outbox_close(ob);

	/* under pressure: the older state of the same device goes first, then redundant older
	 * states, then events; the newest state per device is never dropped */
	ob = open_ob(&four);
	put(ob, "s/A", "A1", "state:A");
	put(ob, "s/B", "B1", "state:B");
	put(ob, "s/A", "A2", "state:A");
	put(ob, "e", "ev1", NULL);
	put(ob, "s/A", "A3", "state:A"); /* full: supersedes A1 */
	expect_payloads(ob, "B1 A2 ev1 A3");
	put(ob, "e", "ev2", NULL); /* full: A2 is redundant (A3 is newer) */
	expect_payloads(ob, "B1 ev1 A3 ev2");
	put(ob, "e", "ev3", NULL); /* full, nothing redundant: the oldest event goes */
	expect_payloads(ob, "B1 A3 ev2 ev3");
	outbox_get_stats(ob, &st);
	assert_int_equal(st.superseded, 2);
	assert_int_equal(st.dropped, 1);
	ob = outbox_close(ob);
	/* replay gives the same records: supersessions were journaled like acks */
	ob = open_ob(&four);
	expect_payloads(ob, "B1 A3 ev2 ev3");
	outbox_close(ob);
}

static void test_overflow(void **state)
{
	struct outbox_limits lim = { .max_bytes = 1 << 20, .max_records = 6 };
	struct outbox *ob = open_ob(&lim);
	struct outbox_stats st;

	(void)state;
	put(ob, "e", "e1", NULL);
	put(ob, "s", "S1", "state:1");
	put(ob, "e", "e2", NULL);
	put(ob, "r", "R1", "result:c");
	put(ob, "e", "e3", NULL);
	put(ob, "e", "e4", NULL);
	assert_int_equal(outbox_take_dropped(ob), 0);
	/* full: the oldest event goes */
	put(ob, "e", "e5", NULL);
	expect_payloads(ob, "S1 e2 R1 e3 e4 e5");
	assert_int_equal(outbox_take_dropped(ob), 1);
	assert_int_equal(outbox_take_dropped(ob), 0);
	/* a new state evicts events too, never the other state or the result */
	put(ob, "s", "S2", "state:2");
	put(ob, "s", "S3", "state:3");
	put(ob, "r", "R2", "result:d");
	expect_payloads(ob, "S1 R1 e5 S2 S3 R2");
	assert_int_equal(outbox_take_dropped(ob), 3);
	put(ob, "s", "S4", "state:4");
	expect_payloads(ob, "S1 R1 S2 S3 R2 S4");
	/* only states and results left: a new event is refused, states/results still accepted */
	assert_int_equal(outbox_put(ob, "e", "e6", 2, false, 1, NULL, NULL), -ENOBUFS);
	assert_int_equal(outbox_take_dropped(ob), 2);
	put(ob, "r", "R3", "result:e");
	put(ob, "s", "S1b", "state:1");
	expect_payloads(ob, "R1 S2 S3 R2 S4 R3 S1b");
	outbox_get_stats(ob, &st);
	assert_int_equal(st.dropped, 6); /* 5 evicted + 1 refused */
	ob = outbox_close(ob);
	ob = open_ob(&lim);
	expect_payloads(ob, "R1 S2 S3 R2 S4 R3 S1b");
	outbox_close(ob);
}

static void test_overflow_bytes(void **state)
{
	struct outbox_limits lim = { .max_bytes = 64 * 1024, .max_records = 1000000 };
	struct outbox *ob = open_ob(&lim);
	char payload[1000];
	struct outbox_stats st;

	(void)state;
	memset(payload, 'x', sizeof(payload) - 1);
	payload[sizeof(payload) - 1] = '\0';
	for (int i = 0; i < 200; i++)
		put(ob, "e", payload, NULL);
	outbox_get_stats(ob, &st);
	assert_true(st.bytes <= lim.max_bytes);
	assert_true(st.depth >= 60 && st.depth < 70);
	assert_int_equal(st.dropped, 200 - st.depth);
	outbox_close(ob);
}

static void corrupt(off_t from_end, const void *bytes, size_t n, bool truncate_only)
{
	struct stat stt;
	int fd = open(path, O_RDWR);

	assert_true(fd >= 0);
	assert_int_equal(fstat(fd, &stt), 0);
	if (truncate_only)
		assert_int_equal(ftruncate(fd, stt.st_size - from_end), 0);
	else
		assert_int_equal(pwrite(fd, bytes, n, stt.st_size - from_end), (ssize_t)n);
	close(fd);
}

static void test_damaged_tail(void **state)
{
	struct outbox *ob = open_ob(&big);
	struct outbox_stats st;
	uint64_t s4;

	(void)state;
	put(ob, "t", "one", NULL);
	put(ob, "t", "two", NULL);
	put(ob, "t", "three", NULL);
	ob = outbox_close(ob);
	/* a write cut short by kill -9 / power loss: the last record is incomplete */
	corrupt(2, NULL, 0, true);
	ob = open_ob(&big);
	expect_payloads(ob, "one two");
	outbox_get_stats(ob, &st);
	assert_true(st.truncated > 0);
	/* the journal is usable again: new records go after the cut */
	s4 = put(ob, "t", "four", NULL);
	ob = outbox_close(ob);
	ob = open_ob(&big);
	expect_payloads(ob, "one two four");
	assert_true(outbox_contains(ob, s4));
	ob = outbox_close(ob);

	/* a flipped byte inside the last record: crc mismatch, record cut */
	corrupt(1, "?", 1, false);
	ob = open_ob(&big);
	expect_payloads(ob, "one two");
	ob = outbox_close(ob);

	/* garbage after the last record (a half-written frame header with a huge length) */
	corrupt(0, "\xff\xff\xff\x7f\x00", 5, false);
	ob = open_ob(&big);
	expect_payloads(ob, "one two");
	ob = outbox_close(ob);

	/* a zero-length journal (power cut right after create) is an empty outbox */
	corrupt(0, NULL, 0, false);
	{
		int fd = open(path, O_RDWR | O_TRUNC);

		close(fd);
	}
	ob = open_ob(&big);
	assert_int_equal(outbox_depth(ob), 0);
	put(ob, "t", "five", NULL);
	expect_payloads(ob, "five");
	outbox_close(ob);
}

static void test_garbage_file(void **state)
{
	struct outbox *ob;
	uint8_t junk[4096];
	int fd;

	(void)state;
	srand(7);
	for (size_t i = 0; i < sizeof(junk); i++)
		junk[i] = (uint8_t)rand();
	fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
	assert_int_equal(write(fd, junk, sizeof(junk)), (ssize_t)sizeof(junk));
	close(fd);
	ob = open_ob(&big);
	assert_int_equal(outbox_depth(ob), 0);
	put(ob, "t", "ok", NULL);
	ob = outbox_close(ob);
	ob = open_ob(&big);
	expect_payloads(ob, "ok");
	outbox_close(ob);
}

static void test_compaction(void **state)
{
	struct outbox *ob = open_ob(&big);
	char payload[4000];
	struct outbox_stats st;
	uint64_t keep = 0;
	struct stat stt;

	(void)state;
	memset(payload, 'p', sizeof(payload) - 1);
	payload[sizeof(payload) - 1] = '\0';
	for (int i = 0; i < 2000; i++) {
		uint64_t s = put(ob, "t", i == 500 ? "keep" : payload, NULL);

		if (i == 500)
			keep = s;
		else
			assert_int_equal(outbox_ack(ob, s), 0);
	}
	outbox_get_stats(ob, &st);
	assert_true(st.compactions > 0);
	assert_true(st.file_bytes < 2 * 1024 * 1024);
	ob = outbox_close(ob);
	assert_int_equal(stat(path, &stt), 0);
	assert_true(stt.st_size < 2 * 1024 * 1024);
	ob = open_ob(&big);
	expect_payloads(ob, "keep");
	assert_true(outbox_contains(ob, keep));

	/* a long broker outage: nothing is acked; once the outbox is full, superseded states must
	 * not grow the file, and the newest state is kept */
	ob = outbox_close(ob);
	{
		struct outbox_limits lim = { .max_bytes = 256 * 1024, .max_records = 1000000 };
		struct outbox_record *rec = NULL;
		uint64_t last = 0;

		ob = open_ob(&lim);
		for (int i = 0; i < 2000; i++)
			last = put(ob, "s", i == 1999 ? "last" : payload, "state:dev");
		outbox_get_stats(ob, &st);
		assert_true(st.file_bytes < 2 * 1024 * 1024);
		assert_true(st.bytes <= lim.max_bytes);
		assert_true(outbox_contains(ob, keep));
		assert_true(outbox_contains(ob, last));
		assert_int_equal(outbox_next(ob, last - 1, &rec), 0);
		assert_string_equal(rec->payload, "last");
		outbox_record_free(rec);
	}
	outbox_close(ob);
}

/*
 * A full disk, simulated with RLIMIT_FSIZE (no root needed): a put fails and changes nothing,
 * acks still work (in memory), and once nothing is live the journal is cut in place, which
 * needs no space, so puts work again.
 */
static void test_full_disk(void **state)
{
	struct outbox *ob = open_ob(&big);
	struct outbox_stats st;
	struct rlimit old, lim;
	uint64_t s1, s2, seq = 0;
	struct stat stt;
	char payload[2000];

	(void)state;
	memset(payload, 'f', sizeof(payload) - 1);
	payload[sizeof(payload) - 1] = '\0';
	s1 = put(ob, "t", "one", NULL);
	s2 = put(ob, "t", payload, "state:a");
	assert_int_equal(stat(path, &stt), 0);
	signal(SIGXFSZ, SIG_IGN);
	assert_int_equal(getrlimit(RLIMIT_FSIZE, &old), 0);
	lim = old;
	lim.rlim_cur = (rlim_t)stt.st_size + 1000;
	assert_int_equal(setrlimit(RLIMIT_FSIZE, &lim), 0);
	assert_true(outbox_put(ob, "t", payload, strlen(payload), false, 1, NULL, &seq) < 0);
	assert_true(outbox_put(ob, "t", payload, strlen(payload), false, 1, NULL, &seq) < 0);
	outbox_get_stats(ob, &st);
	assert_int_equal(st.write_failures, 2);
	assert_int_equal(outbox_depth(ob), 2);
	/* fill the rest with acks until they fail too: they still count in memory */
	for (int i = 0; i < 3; i++) {
		uint64_t s = 0;

		if (outbox_put(ob, "t", "x", 1, false, 1, NULL, &s) == 0)
			assert_int_equal(outbox_ack(ob, s), 0);
	}
	assert_int_equal(outbox_ack(ob, s1), 0);
	assert_int_equal(outbox_ack(ob, s2), 0);
	assert_int_equal(outbox_depth(ob), 0);
	/* nothing live: a put that does not fit first cuts the journal in place (no space
	 * needed), then fits under the same limit */
	assert_int_equal(outbox_put(ob, "t", payload, strlen(payload), false, 1, NULL, &seq), 0);
	assert_true(seq > s2);
	outbox_get_stats(ob, &st);
	assert_true(st.file_bytes < sizeof(payload) + 100);
	assert_int_equal(setrlimit(RLIMIT_FSIZE, &old), 0);
	ob = outbox_close(ob);
	ob = open_ob(&big);
	expect_payloads(ob, payload);
	outbox_close(ob);
}

/* 120 unsent records of varied sizes; returns the file size. */
static off_t fill_120(void)
{
	struct outbox *ob;
	char payload[64];
	struct stat stt;

	unlink(path);
	ob = open_ob(&big);
	for (int i = 1; i <= 120; i++) {
		snprintf(payload, sizeof(payload), "r%d-%.*s", i, i % 23,
		         "xxxxxxxxxxxxxxxxxxxxxxxx");
		put(ob, "cradle/v1/agent/a/event", payload, NULL);
	}
	outbox_close(ob);
	assert_int_equal(stat(path, &stt), 0);
	return stt.st_size;
}

static void poke(off_t at, const void *bytes, size_t n)
{
	int fd = open(path, O_RDWR);

	assert_true(fd >= 0);
	assert_int_equal(pwrite(fd, bytes, n, at), (ssize_t)n);
	close(fd);
}

/* Offset of the frame holding record index k (0 = header) in a journal of puts only. */
static off_t frame_at(int k)
{
	uint8_t hdr[4];
	off_t off = 0;
	int fd = open(path, O_RDONLY);

	for (int i = 0; i < k; i++) {
		assert_int_equal(pread(fd, hdr, 4, off), 4);
		off += 8 + (off_t)(hdr[0] | hdr[1] << 8 | hdr[2] << 16 | (uint32_t)hdr[3] << 24);
	}
	close(fd);
	return off;
}

static void expect_damage(struct outbox *ob, uint64_t lost, uint64_t first, uint64_t last)
{
	struct outbox_damage d;

	outbox_get_damage(ob, &d);
	assert_true(d.damaged);
	assert_int_equal(d.lost_records, lost);
	assert_int_equal(d.first_seq, first);
	assert_int_equal(d.last_seq, last);
	assert_true(d.bytes_skipped > 0);
}

/* One flipped byte at 10 % of the journal: the one record hit is lost, the 119 others kept. */
static void test_resync_flipped_byte(void **state)
{
	off_t size = fill_120();
	struct outbox *ob;
	uint8_t b;
	int fd = open(path, O_RDWR);

	(void)state;
	assert_int_equal(pread(fd, &b, 1, size / 10), 1);
	b ^= 0x5a;
	assert_int_equal(pwrite(fd, &b, 1, size / 10), 1);
	close(fd);
	ob = open_ob(&big);
	assert_int_equal(outbox_depth(ob), 119);
	{
		struct outbox_damage d;

		outbox_get_damage(ob, &d);
		assert_int_equal(d.lost_records, 1);
		assert_true(d.first_seq >= 10 && d.first_seq <= 14);
		assert_int_equal(d.first_seq, d.last_seq);
		assert_false(outbox_contains(ob, d.first_seq));
	}
	/* reported once: the damaged bytes are compacted away */
	ob = outbox_close(ob);
	ob = open_ob(&big);
	{
		struct outbox_damage d;

		outbox_get_damage(ob, &d);
		assert_false(d.damaged);
	}
	assert_int_equal(outbox_depth(ob), 119);
	outbox_close(ob);
}

/* A bad length in frame 3 (the third record after the header): only record 3 is lost. */
static void test_resync_bad_length(void **state)
{
	struct outbox *ob;
	struct outbox_record *rec = NULL;

	(void)state;
	fill_120();
	poke(frame_at(3), "\x00\x10\x00\x00", 4);
	ob = open_ob(&big);
	expect_damage(ob, 1, 3, 3);
	assert_int_equal(outbox_depth(ob), 119);
	assert_int_equal(outbox_next(ob, 2, &rec), 0);
	assert_int_equal(rec->seq, 4);
	assert_string_equal(rec->payload, "r4-xxxx");
	outbox_record_free(rec);
	outbox_close(ob);
	/* a huge length too */
	fill_120();
	poke(frame_at(50), "\xff\xff\xff\x7f", 4);
	ob = open_ob(&big);
	expect_damage(ob, 1, 50, 50);
	assert_int_equal(outbox_depth(ob), 119);
	outbox_close(ob);
}

/* A damaged record already acknowledged is not lost; damage in two places is counted twice. */
static void test_resync_acked_and_two_spots(void **state)
{
	struct outbox *ob = open_ob(&big);
	char payload[32];

	(void)state;
	for (int i = 1; i <= 20; i++) {
		snprintf(payload, sizeof(payload), "p%d", i);
		put(ob, "t", payload, NULL);
	}
	assert_int_equal(outbox_ack(ob, 5), 0);
	outbox_close(ob);
	poke(frame_at(5) + 12, "\xee", 1); /* inside record 5's body: acked later, not lost */
	poke(frame_at(9) + 12, "\xee", 1);
	poke(frame_at(15), "\x00\x00\x00\x00", 4);
	ob = open_ob(&big);
	expect_damage(ob, 2, 9, 15);
	assert_int_equal(outbox_depth(ob), 17);
	outbox_close(ob);
}

/* A truncated tail loses the record cut, counted; a zero-length journal is reported. */
static void test_resync_tail_and_empty(void **state)
{
	struct outbox *ob;
	struct outbox_damage d;
	struct stat stt;

	(void)state;
	fill_120();
	assert_int_equal(stat(path, &stt), 0);
	assert_int_equal(truncate(path, stt.st_size - 3), 0);
	ob = open_ob(&big);
	expect_damage(ob, 1, 120, 120);
	assert_int_equal(outbox_depth(ob), 119);
	outbox_close(ob);

	assert_int_equal(truncate(path, 0), 0);
	ob = open_ob(&big);
	outbox_get_damage(ob, &d);
	assert_true(d.damaged);
	assert_true(d.empty);
	assert_int_equal(outbox_depth(ob), 0);
	outbox_close(ob);

	/* a fresh journal is not damage */
	assert_int_equal(unlink(path), 0);
	ob = open_ob(&big);
	outbox_get_damage(ob, &d);
	assert_false(d.damaged);
	outbox_close(ob);
}

/*
 * The journal stays within its live content plus a bound while records are acked (it filled
 * a 512 KiB disk with dead records before): a steady flow of 2 MB, acked as it goes.
 */
static void test_bounded_file(void **state)
{
	struct outbox *ob = open_ob(&big);
	char payload[1000];
	struct outbox_stats st;
	uint64_t maxf = 0, s, held = 0;

	(void)state;
	memset(payload, 'q', sizeof(payload) - 1);
	payload[sizeof(payload) - 1] = '\0';
	for (int i = 0; i < 2000; i++) {
		s = put(ob, "t", payload, NULL);
		/* one in ten waits for the next round (like records in flight) */
		if (held)
			assert_int_equal(outbox_ack(ob, held), 0);
		held = 0;
		if (i % 10 == 0)
			held = s;
		else
			assert_int_equal(outbox_ack(ob, s), 0);
		outbox_get_stats(ob, &st);
		if (st.file_bytes > maxf)
			maxf = st.file_bytes;
		assert_true(st.file_bytes <= 2 * st.bytes + OUTBOX_COMPACT_MIN_DEAD + 2048);
	}
	printf("outbox: largest journal while acking 2 MB: %" PRIu64 " bytes\n", maxf);
	assert_true(maxf < 128 * 1024);
	outbox_close(ob);
}

static double now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* The rate the agent can absorb: put + fdatasync every 20 records, then ack all. */
static void test_throughput(void **state)
{
	struct outbox *ob = open_ob(&big);
	const char *payload =
	        "{\"schema\":\"cradle.device_event.v1\",\"agent\":\"st-001\","
	        "\"seq\":123456,\"ts\":\"2026-01-01T00:00:00Z\",\"event\":\"attached\"}";
	const int n = 2000;
	double t0, t1, t2;

	(void)state;
	t0 = now_s();
	for (int i = 1; i <= n; i++) {
		assert_int_equal(outbox_put(ob, "cradle/v1/agent/st-001/device/x/event", payload,
		                            strlen(payload), false, 1, NULL, NULL),
		                 0);
		if (i % 20 == 0)
			assert_int_equal(outbox_flush(ob), 0);
	}
	t1 = now_s();
	for (uint64_t s = 1; s <= (uint64_t)n + 10; s++)
		outbox_ack(ob, s);
	t2 = now_s();
	printf("outbox: %d puts with an fdatasync every 20: %.0f records/s; acks: %.0f/s\n", n,
	       n / (t1 - t0), n / (t2 - t1));
	assert_true(n / (t1 - t0) > 300);
	assert_int_equal(outbox_depth(ob), 0);
	outbox_close(ob);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_order_ack_reopen, setup, teardown),
		cmocka_unit_test_setup_teardown(test_bad_args, setup, teardown),
		cmocka_unit_test_setup_teardown(test_coalescing, setup, teardown),
		cmocka_unit_test_setup_teardown(test_overflow, setup, teardown),
		cmocka_unit_test_setup_teardown(test_overflow_bytes, setup, teardown),
		cmocka_unit_test_setup_teardown(test_damaged_tail, setup, teardown),
		cmocka_unit_test_setup_teardown(test_garbage_file, setup, teardown),
		cmocka_unit_test_setup_teardown(test_compaction, setup, teardown),
		cmocka_unit_test_setup_teardown(test_throughput, setup, teardown),
		cmocka_unit_test_setup_teardown(test_resync_flipped_byte, setup, teardown),
		cmocka_unit_test_setup_teardown(test_resync_bad_length, setup, teardown),
		cmocka_unit_test_setup_teardown(test_resync_acked_and_two_spots, setup, teardown),
		cmocka_unit_test_setup_teardown(test_resync_tail_and_empty, setup, teardown),
		cmocka_unit_test_setup_teardown(test_bounded_file, setup, teardown),
		cmocka_unit_test_setup_teardown(test_full_disk, setup, teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
