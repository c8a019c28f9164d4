/* SPDX-License-Identifier: MIT */
/*
 * test_kv_journal.c - cmocka tests of the fsync journal under the RocksDB
 * backend (store/journal.c, store/kv.c), on real RocksDB.
 *
 * A power cut is simulated after a child process exits without closing:
 * RocksDB's WAL files are cut back to the size they had when the child's
 * open made them durable (RocksDB's WAL is never synced on the fsync path,
 * so a power cut may lose all of that), and the journal is left as the
 * child's fdatasync calls made it.  Then:
 *  - every batch written before a kv_sync() is there after reopen, and the
 *    batches present are a prefix of those written (no holes); a copy of
 *    the same crash image without its journal loses them, which shows the
 *    cut really removed data;
 *  - a damaged record the database lacks ends the replay there (a prefix
 *    again) if it may be a torn tail, but refuses the open (-EUCLEAN, one
 *    message, the journal left as it was) if later records say it was
 *    synced; damage the database holds is stepped over;
 *  - after a torn tail and a restart, records of the earlier run left
 *    further in the ring are not taken as a continuation (the epoch rule),
 *    even when they line up exactly with the new records;
 *  - a small ring wraps many times, with and without a crash;
 *  - every kind of op (put, delete, single delete, delete range) is
 *    replayed, in order;
 *  - a journal whose headers are both damaged is refused (-EUCLEAN);
 *  - a read-only open changes no file, finds held damage every time, and
 *    counts what the journal would replay instead of replaying it;
 *  - a cut that keeps a newer WAL file whole and an older one's synced
 *    part only (a hole: RocksDB alone recovers later batches without
 *    earlier ones): a read-only open reports it and changes nothing, an
 *    open cuts the WAL at the hole, keeps what it cut, and the journal
 *    gives back every synced batch; the same when the older file's lost
 *    tail reads as zeros and then stale bytes that RocksDB's reader takes
 *    for the file's end (a header of a recyclable type naming another
 *    file), and when the open comes after a crash in the middle of an
 *    earlier cut; and no cut after a crash in the middle of RocksDB's
 *    deletion of WAL files it no longer needs, which leaves the oldest
 *    (their batches end long before the live files' first);
 *  - a WAL file newer than every other that holds a deleted file's older
 *    batches (a power-cut harness once made one): the open, read-only or
 *    not, refuses the store in one line naming it and the sequences,
 *    where RocksDB aborted; moved aside, the store opens whole.  On
 *    crafted WAL files, the scan takes a file whose first batch re-uses
 *    the sequence of the batch before (RocksDB's retry after a write that
 *    failed) as no step back, and any other step back as one, past a hole
 *    too;
 *  - on the journal alone (store/journal.h), damage to a payload or a
 *    header byte: stepped over when the database holds it (said and
 *    counted when later marks say it had been synced, not when none
 *    does), refused when synced and not held, a torn unsynced tail
 *    replayed as a prefix, and a journal without durable marks (an older
 *    build's) replayed as before.
 *
 * Children are re-executed from /proc/self/exe (RocksDB's threads make a
 * plain fork unsafe), as in test_store_persist.c.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

#include "store/journal.h"
#include "store/kv.h"
#include "store/walscan.h"
#include "tests/unit/test_logbuf.h"
#include "tests/unit/test_walcut.h"

#define VLEN 200u

static void tj_key(unsigned char k[16], uint64_t i)
{
	memset(k, 0, 16);
	for (int b = 0; b < 8; b++)
		k[7 - b] = (unsigned char)(i >> (8 * b));
	k[15] = 1;
}

static void tj_val(unsigned char v[VLEN], uint64_t i, unsigned gen)
{
	for (unsigned b = 0; b < VLEN; b++)
		v[b] = (unsigned char)(i * 31 + b + gen * 7);
}

/* Errors and warnings logged (test_logbuf.h). */
static struct tlog_buf tj_log;

static const struct store_log tj_logger = { tlog_buf_fn, &tj_log,
					    STORE_LOG_WARN };

static int tj_open(const char *dir, struct kv **kv)
{
	char db[4096];

	snprintf(db, sizeof(db), "%s/db", dir);
	return kv_rocksdb_open(db, true, 8u << 20, 0, &tj_logger, kv);
}

/* Put batch i (key i, value of generation gen) in its own batch. */
static int tj_put(struct kv *kv, uint64_t i, unsigned gen)
{
	unsigned char k[16], v[VLEN];
	struct kv_batch b;
	int rc;

	tj_key(k, i);
	tj_val(v, i, gen);
	kv_batch_init(&b);
	kv_batch_put(&b, KV_CF_INODE, k, sizeof(k), v, sizeof(v));
	rc = kv_write(kv, &b, false);
	kv_batch_release(&b);
	return rc;
}

/* 1 present with generation gen, 0 absent, -1 present with other bytes. */
static int tj_has(struct kv *kv, uint64_t i, unsigned gen)
{
	unsigned char k[16], v[VLEN], want[VLEN];
	size_t vlen;
	bool found;

	tj_key(k, i);
	assert_int_equal(kv_get(kv, KV_CF_INODE, k, sizeof(k), v, sizeof(v),
				&vlen, &found),
			 0);
	if (!found)
		return 0;
	tj_val(want, i, gen);
	return vlen == VLEN && memcmp(v, want, VLEN) == 0 ? 1 : -1;
}

/* ---- child: open, record the WAL sizes, write n batches from first,
 * kv_sync every sync_every, note the last synced index, _exit ---- */
static int tj_child(const char *dir, uint64_t first, uint64_t n,
		    uint64_t sync_every, unsigned gen)
{
	char p[4096];
	struct kv *kv;
	const char *mark = getenv("TJ_WAL_AT");
	uint64_t i;
	FILE *f;

	if (tj_open(dir, &kv) != 0)
		return 2;
	snprintf(p, sizeof(p), "%s/wal-at-open", dir);
	if (twal_record(dir, p))
		abort();
	for (i = 0; i < n; i++) {
		if (tj_put(kv, first + i, gen) != 0)
			return 3;
		if ((i + 1) % sync_every == 0) {
			if (kv_sync(kv) != 0)
				return 4;
			snprintf(p, sizeof(p), "%s/synced", dir);
			f = fopen(p, "w");
			if (!f)
				return 5;
			fprintf(f, "%llu\n", (unsigned long long)(first + i));
			fclose(f);
		}
		/* TJ_WAL_AT=k: also the WAL's sizes once batch k is in it,
		 * for a cut that leaves the database holding 1..k. */
		if (mark && strtoull(mark, NULL, 10) == first + i) {
			snprintf(p, sizeof(p), "%s/wal-at-mark", dir);
			if (twal_record(dir, p))
				abort();
		}
	}
	_exit(0); /* no kv_close: a crash */
}

/* Child of test_journal_every_op: puts 1..100, then in separate batches a
 * Delete of 10, a SingleDelete of 20, a DeleteRange over [30, 40) and a
 * put of 101; one kv_sync at the end; a crash. */
static int tj_child_ops(const char *dir)
{
	unsigned char lo[16], hi[16];
	struct kv_batch b;
	struct kv *kv;
	char p[4096];
	int rc = 0;

	if (tj_open(dir, &kv) != 0)
		return 2;
	snprintf(p, sizeof(p), "%s/wal-at-open", dir);
	if (twal_record(dir, p))
		abort();
	for (uint64_t i = 1; i <= 100 && rc == 0; i++)
		rc = tj_put(kv, i, 0);
	kv_batch_init(&b);
	tj_key(lo, 10);
	kv_batch_delete(&b, KV_CF_INODE, lo, sizeof(lo));
	rc = rc ? rc : kv_write(kv, &b, false);
	kv_batch_clear(&b);
	tj_key(lo, 20);
	kv_batch_single_delete(&b, KV_CF_INODE, lo, sizeof(lo));
	rc = rc ? rc : kv_write(kv, &b, false);
	kv_batch_clear(&b);
	tj_key(lo, 30);
	tj_key(hi, 40);
	kv_batch_delete_range(&b, KV_CF_INODE, lo, sizeof(lo), hi, sizeof(hi));
	rc = rc ? rc : kv_write(kv, &b, false);
	kv_batch_release(&b);
	rc = rc ? rc : tj_put(kv, 101, 0);
	rc = rc ? rc : kv_sync(kv);
	if (rc)
		return 3;
	_exit(0);
}

/* Write large values to another column family than the test's until
 * RocksDB switches to a WAL file newer than the newest now (a memtable
 * full); then put from..to (generation 0).  0, 4 no switch, or an error. */
static int tj_switch_put(struct kv *kv, const char *dir, uint64_t from,
			 uint64_t to)
{
	static unsigned char big[64 << 10];
	unsigned long long wal = twal_newest(dir);
	unsigned char k[16];
	struct kv_batch b;
	int rc = 0, n;

	memset(big, 0xab, sizeof(big));
	for (n = 0; rc == 0 && twal_newest(dir) == wal; n++) {
		if (n == 1000)
			return 4; /* no switch */
		tj_key(k, (uint64_t)n);
		kv_batch_init(&b);
		kv_batch_put(&b, KV_CF_BLOCK, k, sizeof(k), big, sizeof(big));
		rc = kv_write(kv, &b, false);
		kv_batch_release(&b);
	}
	for (uint64_t i = from; i <= to && rc == 0; i++)
		rc = tj_put(kv, i, 0);
	return rc;
}

/* Child of test_journal_wal_hole: puts 1..100 and syncs; records the WAL
 * sizes; puts 101..200 and syncs; writes large values to another column
 * family until RocksDB switches to a new WAL file (its memtable full);
 * puts 201..300 and syncs; switches-1 times more, a switch and the next
 * 100 puts (301..400, ...) synced; a crash. */
static int tj_child_hole(const char *dir, int switches)
{
	struct kv *kv;
	char p[4096];
	int rc = 0;

	if (tj_open(dir, &kv) != 0)
		return 2;
	for (uint64_t i = 1; i <= 100 && rc == 0; i++)
		rc = tj_put(kv, i, 0);
	rc = rc ? rc : kv_sync(kv);
	snprintf(p, sizeof(p), "%s/wal-at-mark", dir);
	if (rc || twal_record(dir, p))
		return 3;
	for (uint64_t i = 101; i <= 200 && rc == 0; i++)
		rc = tj_put(kv, i, 0);
	rc = rc ? rc : kv_sync(kv);
	/* The switch from the file the mark saw: its tail is cut. */
	for (int s = 0; s < switches && rc == 0; s++) {
		rc = tj_switch_put(kv, dir, 201 + 100 * (uint64_t)s,
				   300 + 100 * (uint64_t)s);
		rc = rc ? rc : kv_sync(kv);
	}
	if (rc)
		return 5;
	_exit(0);
}

/* Child of test_journal_wal_purge_cut: puts 1..100 in the first WAL file
 * (a hard link to it kept as dir/w1.keep), 101..300 across two switches,
 * flushes every column family so that RocksDB deletes those files, puts
 * 301..700 with a sync every 50 (the journal's small ring checkpoints:
 * RocksDB's WAL synced, the journal's older records dropped); a crash. */
static int tj_child_purge(const char *dir)
{
	unsigned long long w1;
	char p[4096], q[4200];
	struct stat st;
	struct kv *kv;
	int rc = 0, n;
	FILE *f;

	if (tj_open(dir, &kv) != 0)
		return 2;
	w1 = twal_newest(dir);
	for (uint64_t i = 1; i <= 100 && rc == 0; i++)
		rc = tj_put(kv, i, 0);
	snprintf(p, sizeof(p), "%s/db/%06llu.log", dir, w1);
	snprintf(q, sizeof(q), "%s/w1.keep", dir);
	if (rc || link(p, q) != 0)
		return 3;
	snprintf(q, sizeof(q), "%s/w1.name", dir);
	f = fopen(q, "w");
	if (!f || fprintf(f, "%llu\n", w1) < 0 || fclose(f) != 0)
		return 3;
	for (int s = 0; s < 2 && rc == 0; s++)
		rc = tj_switch_put(kv, dir, 101 + 100 * (uint64_t)s,
				   200 + 100 * (uint64_t)s);
	for (int cf = 0; cf < KV_CF_COUNT && rc == 0; cf++)
		rc = kv_compact(kv, (enum kv_cf)cf, NULL, 0, NULL, 0, false);
	for (n = 0; rc == 0 && stat(p, &st) == 0; n++) {
		if (n == 1000)
			return 6; /* never deleted */
		usleep(10000);
	}
	for (uint64_t i = 301; i <= 700 && rc == 0; i++) {
		rc = tj_put(kv, i, 0);
		if (rc == 0 && i % 50 == 0)
			rc = kv_sync(kv);
	}
	if (rc)
		return 5;
	_exit(0);
}

/* Run this binary as the child "--child-MODE dir [arg]" (env: one more
 * "NAME=value" for the child only, or NULL) and check it exited 0. */
static void tj_run_mode(const char *dir, const char *mode, const char *arg,
			const char *env)
{
	char opt[64];
	int status;
	pid_t pid;

	snprintf(opt, sizeof(opt), "--child-%s", mode);
	pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		if (env)
			putenv((char *)env);
		execl("/proc/self/exe", "test_kv_journal", opt, dir, arg,
		      (char *)NULL);
		_exit(127);
	}
	assert_int_equal(waitpid(pid, &status, 0), pid);
	assert_true(WIFEXITED(status));
	assert_int_equal(WEXITSTATUS(status), 0);
}

static void tj_run_child(const char *dir, uint64_t first, uint64_t n,
			 uint64_t sync_every, unsigned gen)
{
	char a[4][32];
	int status;
	pid_t pid;

	snprintf(a[0], sizeof(a[0]), "%llu", (unsigned long long)first);
	snprintf(a[1], sizeof(a[1]), "%llu", (unsigned long long)n);
	snprintf(a[2], sizeof(a[2]), "%llu", (unsigned long long)sync_every);
	snprintf(a[3], sizeof(a[3]), "%u", gen);
	pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		execl("/proc/self/exe", "test_kv_journal", "--child", dir, a[0],
		      a[1], a[2], a[3], (char *)NULL);
		_exit(127);
	}
	assert_int_equal(waitpid(pid, &status, 0), pid);
	assert_true(WIFEXITED(status));
	assert_int_equal(WEXITSTATUS(status), 0);
}

static uint64_t tj_synced(const char *dir)
{
	char p[4096];
	unsigned long long v = 0;
	FILE *f;

	snprintf(p, sizeof(p), "%s/synced", dir);
	f = fopen(p, "r");
	assert_non_null(f);
	assert_int_equal(fscanf(f, "%llu", &v), 1);
	fclose(f);
	return v;
}

/* Batches first.. present: count of the prefix, and no batch after it. */
static uint64_t tj_prefix(struct kv *kv, uint64_t first, uint64_t n,
			  unsigned gen)
{
	uint64_t i, len = 0;

	while (len < n && tj_has(kv, first + len, gen) == 1)
		len++;
	for (i = len; i < n; i++)
		assert_int_equal(tj_has(kv, first + i, gen), 0);
	return len;
}

static void tj_rmrf(const char *d)
{
	char cmd[4200];

	snprintf(cmd, sizeof(cmd), "rm -rf '%s' '%s.nojournal' '%s.before'", d, d, d);
	if (system(cmd) != 0)
		fprintf(stderr, "could not remove %s\n", d);
}

/* Each test's temp dir: made in setup, removed in teardown, which cmocka
 * runs also when the test fails. */
static int tj_setup(void **state)
{
	char *d = strdup("/var/tmp/test_kv_journal.XXXXXX");

	if (!d || !mkdtemp(d)) {
		free(d);
		return -1;
	}
	*state = d;
	return 0;
}

static int tj_teardown(void **state)
{
	tj_rmrf(*state);
	free(*state);
	return 0;
}

/* Synced batches survive losing every unsynced byte of RocksDB's WAL. */
static void test_journal_power_cut(void **state)
{
	char *dir = *state, p[4200], cmd[8500];
	uint64_t synced, len;
	struct kv *kv;

	setenv("BRANCHFS_JOURNAL_KIB", "65536", 1); /* no checkpoint */
	tj_run_child(dir, 1, 3000, 100, 0);
	synced = tj_synced(dir);
	assert_int_equal(synced, 3000);
	snprintf(p, sizeof(p), "%s/wal-at-open", dir);
	assert_true(twal_cut(dir, p) > 3000 * VLEN);
	/* The same image without its journal: the test can fail. */
	snprintf(
		cmd, sizeof(cmd),
		"cp -a '%s' '%s.nojournal' && rm '%s.nojournal/db/BRANCHFS-JOURNAL'",
		dir, dir, dir);
	assert_int_equal(system(cmd), 0);
	snprintf(p, sizeof(p), "%s.nojournal", dir);
	assert_int_equal(tj_open(p, &kv), 0);
	assert_true(tj_prefix(kv, 1, 3000, 0) < 3000);
	kv_close(kv);

	assert_int_equal(tj_open(dir, &kv), 0);
	len = tj_prefix(kv, 1, 3000, 0);
	assert_int_equal(len, 3000);
	kv_close(kv);
	/* And again: the replayed batches were made durable in RocksDB. */
	assert_int_equal(tj_open(dir, &kv), 0);
	assert_int_equal(tj_prefix(kv, 1, 3000, 0), 3000);
	kv_close(kv);
}

/* A power cut keeps the newer WAL file's records and loses the older
 * one's unsynced tail (the kernel writes files back in no order): RocksDB
 * alone recovers batches 1..100 and 201..300, and its journal mark, set by
 * batch 300, would skip the replay of 101..200, fsynced and lost.  The
 * open cuts the WAL at the hole and the journal gives everything back. */
static void test_journal_wal_hole(void **state)
{
	char *dir = *state, p[4200];
	struct walscan_hole hole;
	struct stat st;
	struct kv *kv;

	setenv("BRANCHFS_JOURNAL_KIB", "65536", 1); /* no checkpoint */
	/* Small memtables: a WAL switch soon. */
	tj_run_mode(dir, "hole", NULL, "BRANCHFS_TEST_SST_KIB=256");
	/* Whole, the WAL has no hole (its batches, some in fragments across
	 * blocks, follow on through two or more files); cut, it has one. */
	snprintf(p, sizeof(p), "%s/db", dir);
	assert_int_equal(walscan_find_hole(p, 0, &tj_logger, &hole), 0);
	snprintf(p, sizeof(p), "%s/wal-at-mark", dir);
	assert_true(twal_cut_listed(dir, p) > 100 * VLEN);
	snprintf(p, sizeof(p), "%s/db", dir);
	assert_int_equal(walscan_find_hole(p, 0, &tj_logger, &hole), 1);
	assert_true(hole.seq_found > hole.seq_expected);
	assert_true(hole.file > 0 && hole.bytes > 0);

	/* A read-only open finds the hole and changes nothing. */
	snprintf(p, sizeof(p), "%s/db", dir);
	assert_int_equal(kv_rocksdb_open(p, KV_OPEN_READ_ONLY, 8u << 20, 0,
					 &tj_logger, &kv),
			 0);
	assert_true(kv->open_wal_hole > 0);
	assert_int_equal(tj_has(kv, 150, 0), 0); /* the hole, as RocksDB */
	assert_int_equal(tj_has(kv, 250, 0), 1); /* sees it */
	kv_close(kv);
	snprintf(p, sizeof(p), "%s/db/BRANCHFS-WAL-HOLE", dir);
	assert_int_equal(stat(p, &st), -1);

	tj_log.text[0] = 0;
	assert_int_equal(tj_open(dir, &kv), 0);
	assert_int_equal(tj_prefix(kv, 1, 300, 0), 300);
	assert_int_equal(kv->open_wal_hole, 0);
	kv_close(kv);
	assert_non_null(strstr(tj_log.text, "lost the batches of sequences"));
	assert_int_equal(stat(p, &st), 0); /* what was cut is kept */
	/* And again: the replayed batches were made durable. */
	assert_int_equal(tj_open(dir, &kv), 0);
	assert_int_equal(tj_prefix(kv, 1, 300, 0), 300);
	kv_close(kv);
}

/* The image of test_journal_wal_hole, made with switches WAL switches
 * after the mark (batches 1..100 + 100 * switches, 101..200 lost from the
 * older file, which the mark's newest file is); *older is that file's
 * number, *hole what a scan finds. */
static void tj_hole_image(const char *dir, int switches,
			  unsigned long long *older, struct walscan_hole *hole)
{
	char p[4200], name[256], sw[16];
	long long size;
	unsigned long long n;
	FILE *f;

	setenv("BRANCHFS_JOURNAL_KIB", "65536", 1); /* no checkpoint */
	snprintf(sw, sizeof(sw), "%d", switches);
	/* Small memtables: a WAL switch soon. */
	tj_run_mode(dir, "hole", sw, "BRANCHFS_TEST_SST_KIB=256");
	snprintf(p, sizeof(p), "%s/wal-at-mark", dir);
	*older = 0;
	f = fopen(p, "r");
	assert_non_null(f);
	while (fscanf(f, "%255s %lld", name, &size) == 2)
		if (sscanf(name, "%llu", &n) == 1 && n > *older)
			*older = n;
	fclose(f);
	assert_true(twal_cut_listed(dir, p) > 100 * VLEN);
	snprintf(p, sizeof(p), "%s/db", dir);
	assert_int_equal(walscan_find_hole(p, 0, &tj_logger, hole), 1);
	assert_true(hole->file > *older);
}

/* The older file's lost tail reads as zeros to the end of its block and
 * then stale bytes: a header of a recyclable type (5) naming another file,
 * which RocksDB's reader takes for the file's end without a word (an old
 * record of a recycled file) and so goes on with the newer file, past the
 * hole.  The scan must read it the same way, not give up on the type. */
static void test_journal_wal_hole_stale(void **state)
{
	static const unsigned char stale[11] = { 0x12, 0x34, 0x56, 0x78, 0,
						 0,    5,    0xef, 0xbe, 0xad,
						 0xde };
	char *dir = *state, p[4200];
	unsigned long long older;
	struct walscan_hole hole;
	struct stat st;
	struct kv *kv;
	off_t end;
	int fd;

	tj_hole_image(dir, 1, &older, &hole);
	snprintf(p, sizeof(p), "%s/db/%06llu.log", dir, older);
	fd = open(p, O_WRONLY);
	assert_true(fd >= 0);
	assert_int_equal(fstat(fd, &st), 0);
	end = (st.st_size + 32767) / 32768 * 32768;
	assert_int_equal(ftruncate(fd, end), 0); /* zeros */
	assert_int_equal(pwrite(fd, stale, sizeof(stale), end),
			 (ssize_t)sizeof(stale));
	close(fd);

	assert_int_equal(tj_open(dir, &kv), 0);
	assert_int_equal(tj_prefix(kv, 1, 300, 0), 300);
	kv_close(kv);
	snprintf(p, sizeof(p), "%s/db", dir);
	assert_int_equal(walscan_find_hole(p, 0, &tj_logger, &hole), 0);
}

/* A crash in the middle of the cut (walscan_cut: the directory made, the
 * copy of the tail torn, a later WAL file moved, the file not truncated
 * yet) leaves a WAL in which the next open finds the same hole, cuts it
 * there and gives every batch back. */
static void test_journal_wal_hole_cut_crash(void **state)
{
	char *dir = *state, p[4200], q[4400];
	unsigned long long older;
	struct walscan_hole hole, again;
	struct stat st;
	struct kv *kv;
	off_t tail;
	FILE *f;

	tj_hole_image(dir, 2, &older, &hole);
	assert_true(twal_newest(dir) > hole.file); /* a later file to move */
	snprintf(p, sizeof(p), "%s/db/BRANCHFS-WAL-HOLE", dir);
	assert_int_equal(mkdir(p, 0700), 0);
	snprintf(q, sizeof(q), "%s/%06llu.log.tail", p,
		 (unsigned long long)hole.file);
	f = fopen(q, "w");
	assert_non_null(f);
	fputs("torn", f);
	fclose(f);
	snprintf(p, sizeof(p), "%s/db/%06llu.log", dir, twal_newest(dir));
	snprintf(q, sizeof(q), "%s/db/BRANCHFS-WAL-HOLE/%06llu.log", dir,
		 twal_newest(dir));
	assert_int_equal(rename(p, q), 0);
	snprintf(p, sizeof(p), "%s/db", dir);
	assert_int_equal(walscan_find_hole(p, 0, &tj_logger, &again), 1);
	assert_int_equal(again.file, hole.file);
	assert_int_equal(again.offset, hole.offset);
	snprintf(p, sizeof(p), "%s/db/%06llu.log", dir,
		 (unsigned long long)hole.file);
	assert_int_equal(stat(p, &st), 0);
	tail = st.st_size - (off_t)hole.offset;
	assert_true(tail > 4);

	assert_int_equal(tj_open(dir, &kv), 0);
	assert_int_equal(tj_prefix(kv, 1, 400, 0), 400);
	kv_close(kv);
	assert_int_equal(stat(q, &st), 0); /* the moved file kept */
	snprintf(p, sizeof(p), "%s/db/BRANCHFS-WAL-HOLE/%06llu.log.tail", dir,
		 (unsigned long long)hole.file);
	assert_int_equal(stat(p, &st), 0); /* the copy made again, whole */
	assert_int_equal(st.st_size, tail);
	assert_int_equal(tj_open(dir, &kv), 0);
	assert_int_equal(tj_prefix(kv, 1, 400, 0), 400);
	kv_close(kv);
}

/* Open dir's store (its log in tj_log) and find batches 1..n, all of
 * them. */
static void tj_open_all(const char *dir, uint64_t n)
{
	struct kv *kv;

	tj_log.text[0] = 0;
	if (tj_open(dir, &kv) != 0)
		fail_msg("open: %s", tj_log.text);
	assert_int_equal(tj_prefix(kv, 1, n, 0), n);
	kv_close(kv);
}

/* RocksDB deletes WAL files it no longer needs newest first
 * (PurgeObsoleteFiles sorts them by name, descending): a crash in the
 * middle leaves the oldest of them, which its recovery skips (below its
 * minimum log number to keep) and whose batches end long before the live
 * files' first.  That gap is no hole: an open must not cut there, or it
 * drops batches synced in RocksDB's WAL that the journal no longer holds. */
static void test_journal_wal_purge_cut(void **state)
{
	char *dir = *state, p[4200], q[4200];
	unsigned long long w1;
	struct stat st;
	FILE *f;

	setenv("BRANCHFS_JOURNAL_KIB", "64", 1);   /* checkpoints */
	/* Small memtables: a WAL switch soon. */
	tj_run_mode(dir, "purge", NULL, "BRANCHFS_TEST_SST_KIB=256");
	/* The purge cut short: the oldest file it deleted is back. */
	snprintf(q, sizeof(q), "%s/w1.name", dir);
	f = fopen(q, "r");
	assert_non_null(f);
	assert_int_equal(fscanf(f, "%llu", &w1), 1);
	fclose(f);
	snprintf(p, sizeof(p), "%s/db/%06llu.log", dir, w1);
	assert_int_equal(stat(p, &st), -1);
	assert_true(twal_newest(dir) > w1);
	snprintf(q, sizeof(q), "%s/w1.keep", dir);
	assert_int_equal(rename(q, p), 0);

	tj_open_all(dir, 700);
	assert_null(strstr(tj_log.text, "lost the batches of sequences"));
	snprintf(p, sizeof(p), "%s/db/BRANCHFS-WAL-HOLE", dir);
	assert_int_equal(stat(p, &st), -1);
}

/* A WAL file newer than every live one holds the batches of one RocksDB
 * deleted, older than theirs (what powercut.so's image once made of a
 * new WAL file that got a deleted one's inode number: it gave the new
 * file the old one's synced content; Debian's librocksdb then aborted
 * replaying it, MemTable::Add's first_seqno_ assertion).  The open,
 * read-only or not, refuses the store in one line naming the file and
 * the sequences, and leaves the file as it is; moved aside, the store
 * opens with every batch. */
static void test_journal_wal_back(void **state)
{
	char *dir = *state, p[4200], q[4200], name[32];
	unsigned long long newest;
	struct walscan_hole hole;
	struct stat st, st2;
	struct kv *kv;

	setenv("BRANCHFS_JOURNAL_KIB", "64", 1); /* checkpoints */
	/* Small memtables: a WAL switch soon. */
	tj_run_mode(dir, "purge", NULL, "BRANCHFS_TEST_SST_KIB=256");
	newest = twal_newest(dir);
	snprintf(q, sizeof(q), "%s/w1.keep", dir);
	snprintf(p, sizeof(p), "%s/db/%06llu.log", dir, newest + 1);
	assert_int_equal(rename(q, p), 0);
	assert_int_equal(stat(p, &st), 0);
	snprintf(q, sizeof(q), "%s/db", dir);
	assert_int_equal(walscan_find_hole(q, 0, &tj_logger, &hole), 1);
	assert_true(hole.back);
	assert_int_equal(hole.file, newest + 1);
	assert_int_equal(hole.offset, 0);
	assert_int_equal(hole.prev_file, newest);
	assert_true(hole.seq_found < hole.seq_expected);

	snprintf(name, sizeof(name), "%06llu.log", newest + 1);
	for (int ro = 1; ro >= 0; ro--) {
		tj_log.text[0] = 0;
		assert_int_equal(kv_rocksdb_open(q, ro ? KV_OPEN_READ_ONLY : 0,
						 8u << 20, 0, &tj_logger, &kv),
				 -EUCLEAN);
		assert_non_null(strstr(tj_log.text, "steps back"));
		assert_non_null(strstr(tj_log.text, name));
		/* one message, on one line */
		assert_ptr_equal(strchr(tj_log.text, '\n'),
				 tj_log.text + strlen(tj_log.text) - 1);
		assert_int_equal(stat(p, &st2), 0);
		assert_int_equal(st2.st_size, st.st_size);
		assert_int_equal(st2.st_mtime, st.st_mtime);
	}

	snprintf(q, sizeof(q), "%s/aside.log", dir);
	assert_int_equal(rename(p, q), 0);
	tj_open_all(dir, 700);
}

/* Write a WAL file of RocksDB's format (walscan.c's header): one FULL
 * record per batch, batch i of sequence seq[i] and count cnt[i]. */
static void tj_wal_file(const char *dir, unsigned num, const uint64_t *seq,
			const uint32_t *cnt, int n)
{
	char p[4200];
	FILE *f;

	snprintf(p, sizeof(p), "%s/%06u.log", dir, num);
	f = fopen(p, "w");
	assert_non_null(f);
	for (int i = 0; i < n; i++) {
		unsigned char r[7 + 20];
		uint32_t crc;

		memset(r, 0, sizeof(r));
		r[4] = 20; /* payload: the batch header and 8 bytes */
		r[6] = 1;  /* FULL */
		for (int b = 0; b < 8; b++)
			r[7 + b] = (unsigned char)(seq[i] >> (8 * b));
		for (int b = 0; b < 4; b++)
			r[15 + b] = (unsigned char)(cnt[i] >> (8 * b));
		crc = journal_crc32c(0, r + 6, 21);
		crc = ((crc >> 15) | (crc << 17)) + 0xa282ead8u;
		for (int b = 0; b < 4; b++)
			r[b] = (unsigned char)(crc >> (8 * b));
		assert_int_equal(fwrite(r, sizeof(r), 1, f), 1);
	}
	assert_int_equal(fclose(f), 0);
}

/* The scan of dir finds a step back: in file at offset, sequence found
 * where expected was next, after the batches of prev_file. */
static void tj_assert_back(const char *dir, unsigned file, uint64_t offset,
			   uint64_t expected, uint64_t found, unsigned prev_file)
{
	struct walscan_hole h;

	assert_int_equal(walscan_find_hole(dir, 0, &tj_logger, &h), 1);
	assert_true(h.back);
	assert_int_equal(h.file, file);
	assert_int_equal(h.offset, offset);
	assert_int_equal(h.seq_expected, expected);
	assert_int_equal(h.seq_found, found);
	assert_int_equal(h.prev_file, prev_file);
}

/* On crafted WAL files: a file whose first batch re-uses the sequence of
 * the batch before it (RocksDB's next write after one that failed, in
 * the next file) is no step back, and the scan follows the new file; any
 * other batch that starts before the one before it ended is one, found
 * past a hole too. */
static void test_walscan_back(void **state)
{
	char *dir = *state;
	struct walscan_hole h;
	char cmd[4300];

	/* 10: 1-2, 3; 11: 3 again (the retry), 4-5; 12: 6 */
	tj_wal_file(dir, 10, (uint64_t[]){ 1, 3 }, (uint32_t[]){ 2, 1 }, 2);
	tj_wal_file(dir, 11, (uint64_t[]){ 3, 4 }, (uint32_t[]){ 1, 2 }, 2);
	tj_wal_file(dir, 12, (uint64_t[]){ 6 }, (uint32_t[]){ 1 }, 1);
	assert_int_equal(walscan_find_hole(dir, 0, &tj_logger, &h), 0);
	/* the retry with a smaller count, then on from its end */
	tj_wal_file(dir, 10, (uint64_t[]){ 1, 3 }, (uint32_t[]){ 2, 3 }, 2);
	tj_wal_file(dir, 11, (uint64_t[]){ 3, 4 }, (uint32_t[]){ 1, 2 }, 2);
	assert_int_equal(walscan_find_hole(dir, 0, &tj_logger, &h), 0);

	/* inside a file */
	tj_wal_file(dir, 11, (uint64_t[]){ 4, 3 }, (uint32_t[]){ 2, 1 }, 2);
	tj_wal_file(dir, 12, (uint64_t[]){ 7 }, (uint32_t[]){ 1 }, 1);
	tj_wal_file(dir, 10, (uint64_t[]){ 1, 3 }, (uint32_t[]){ 2, 1 }, 2);
	tj_assert_back(dir, 11, 27, 6, 3, 11);

	/* a file's first batch, but not the sequence of the one before */
	tj_wal_file(dir, 11, (uint64_t[]){ 2, 3 }, (uint32_t[]){ 1, 4 }, 2);
	tj_assert_back(dir, 11, 0, 4, 2, 10);

	/* a hole (11 starts at 9, not 4), then a step back (12 at 5) */
	tj_wal_file(dir, 11, (uint64_t[]){ 9 }, (uint32_t[]){ 1 }, 1);
	tj_wal_file(dir, 12, (uint64_t[]){ 5 }, (uint32_t[]){ 1 }, 1);
	assert_int_equal(walscan_find_hole(dir, 0, &tj_logger, &h), 1);
	assert_true(h.back);
	assert_int_equal(h.file, 12);
	assert_int_equal(h.seq_expected, 10);
	/* the hole alone */
	tj_wal_file(dir, 12, (uint64_t[]){ 10 }, (uint32_t[]){ 1 }, 1);
	assert_int_equal(walscan_find_hole(dir, 0, &tj_logger, &h), 1);
	assert_false(h.back);
	assert_int_equal(h.file, 11);
	assert_int_equal(h.seq_expected, 4);
	assert_int_equal(h.seq_found, 9);
	assert_int_equal(h.bytes, 2 * 27);
	snprintf(cmd, sizeof(cmd), "rm -f '%s'/*.log", dir);
	assert_int_equal(system(cmd), 0);
}

/* Flip a byte at ring offset off (after the 4 KiB header area). */
static void tj_damage(const char *dir, uint64_t off)
{
	char p[4200];
	unsigned char c;
	int fd;

	snprintf(p, sizeof(p), "%s/db/BRANCHFS-JOURNAL", dir);
	fd = open(p, O_RDWR);
	assert_true(fd >= 0);
	assert_int_equal(pread(fd, &c, 1, (off_t)(4096 + off)), 1);
	c ^= 0x5a;
	assert_int_equal(pwrite(fd, &c, 1, (off_t)(4096 + off)), 1);
	close(fd);
}

/* Size of one record of this test's batches in the journal. */
#define TJ_REC (40u + 12u + 16u + VLEN)

/* The journal file's bytes (malloc'd, *n of them). */
static unsigned char *tj_slurp(const char *path, size_t *n)
{
	struct stat st;
	unsigned char *buf;
	int fd = open(path, O_RDONLY);

	assert_true(fd >= 0);
	assert_int_equal(fstat(fd, &st), 0);
	buf = malloc((size_t)st.st_size);
	assert_non_null(buf);
	assert_int_equal(pread(fd, buf, (size_t)st.st_size, 0), st.st_size);
	close(fd);
	*n = (size_t)st.st_size;
	return buf;
}

/* A damaged record the database lacks, which later records say was
 * synced (batch 600 of 1000, synced every 50: records 601.. carry the
 * mark of the sync at 600): the store is not opened, with one message
 * naming the journal and the lsns, and the journal is left as it was.
 * Moved aside, the store opens as the database holds it.  (Before the
 * marks it opened with 1..599 and 600..1000 silently gone.) */
static void test_journal_synced_damage(void **state)
{
	char *dir = *state, p[4200], jp[4200], aside[4300];
	unsigned char *before, *after;
	size_t nb, na;
	struct kv *kv;

	setenv("BRANCHFS_JOURNAL_KIB", "65536", 1);
	tj_run_child(dir, 1, 1000, 50, 0);
	snprintf(p, sizeof(p), "%s/wal-at-open", dir);
	assert_true(twal_cut(dir, p) > 0);
	/* Record 600 (index 599 from the ring's start, which the open set
	 * to the lsn the fresh database had: 0). */
	tj_damage(dir, 599 * (uint64_t)TJ_REC + 60);
	snprintf(jp, sizeof(jp), "%s/db/BRANCHFS-JOURNAL", dir);
	before = tj_slurp(jp, &nb);
	tj_log.text[0] = 0;
	assert_int_equal(tj_open(dir, &kv), -EUCLEAN);
	assert_non_null(strstr(tj_log.text, jp));
	assert_non_null(strstr(tj_log.text, "from lsn 160532 to 160800"));
	assert_non_null(strstr(tj_log.text, "move it aside"));
	after = tj_slurp(jp, &na);
	assert_true(na == nb && memcmp(before, after, nb) == 0);
	free(before);
	free(after);
	snprintf(aside, sizeof(aside), "%s.aside", jp);
	assert_int_equal(rename(jp, aside), 0);
	assert_int_equal(tj_open(dir, &kv), 0);
	assert_true(tj_prefix(kv, 1, 1000, 0) < 600);
	kv_close(kv);
}

/* A crash image whose database holds batches 1..500 and whose journal
 * holds 1..1000, record 300 damaged after a later fsync synced it. */
static void tj_held_damage_image(const char *dir)
{
	char p[4200], cmd[8500];
	struct kv *kv;

	setenv("BRANCHFS_JOURNAL_KIB", "65536", 1);
	setenv("TJ_WAL_AT", "500", 1);
	tj_run_child(dir, 1, 1000, 50, 0);
	unsetenv("TJ_WAL_AT");
	snprintf(p, sizeof(p), "%s/wal-at-mark", dir);
	assert_true(twal_cut(dir, p) > 0);
	tj_damage(dir, 299 * (uint64_t)TJ_REC + 60);
	/* Without the journal the image holds 1..500: the cut is real. */
	snprintf(
		cmd, sizeof(cmd),
		"cp -a '%s' '%s.nojournal' && rm '%s.nojournal/db/BRANCHFS-JOURNAL'",
		dir, dir, dir);
	assert_int_equal(system(cmd), 0);
	snprintf(p, sizeof(p), "%s.nojournal", dir);
	assert_int_equal(tj_open(p, &kv), 0);
	assert_int_equal(tj_prefix(kv, 1, 1000, 0), 500);
	kv_close(kv);
}

/* The database holds batches 1..500 (its WAL cut back to where it was
 * then), the journal all 1000, with record 300 damaged: the replay steps
 * over it and gives back 501..1000 (before: it stopped at 300 and the
 * store came back with 1..500 only). */
static void test_journal_held_damage(void **state)
{
	char *dir = *state;
	struct kv *kv;

	tj_held_damage_image(dir);
	tj_log.text[0] = 0;
	assert_int_equal(tj_open(dir, &kv), 0);
	assert_int_equal(tj_prefix(kv, 1, 1000, 0), 1000);
	/* record 300 had been synced: damage that lost nothing, counted */
	assert_int_equal(kv->open_damage, 80400 - 80132);
	kv_close(kv);
	assert_non_null(strstr(tj_log.text, "from lsn 80132 to 80400"));
	/* the open started the journal afresh: the next one finds none */
	assert_int_equal(tj_open(dir, &kv), 0);
	assert_int_equal(kv->open_damage, 0);
	assert_int_equal(tj_prefix(kv, 1, 1000, 0), 1000);
	kv_close(kv);
}

/* A read-only open (branchd --check) of that image changes nothing on
 * disk: it finds the same damage every time (before, the open started the
 * journal afresh and a second check found none), reads the database as
 * it holds it, counts the journal's records it lacks without replaying
 * them, and refuses writes; the open that may write then replays them. */
static void test_journal_read_only_open(void **state)
{
	char *dir = *state, db[4200], cmd[8500];
	unsigned char k[16], v[VLEN];
	struct kv_batch b;
	struct kv *kv;
	int i;

	tj_held_damage_image(dir);
	snprintf(cmd, sizeof(cmd), "cp -a '%s' '%s.before'", dir, dir);
	assert_int_equal(system(cmd), 0);
	snprintf(db, sizeof(db), "%s/db", dir);
	for (i = 0; i < 2; i++) {
		tj_log.text[0] = 0;
		assert_int_equal(kv_rocksdb_open(db, KV_OPEN_READ_ONLY, 8u << 20,
						 0, &tj_logger, &kv),
				 0);
		assert_int_equal(kv->open_damage, 80400 - 80132);
		assert_non_null(strstr(tj_log.text, "from lsn 80132 to 80400"));
		assert_int_equal(kv->open_unapplied, 500 * (uint64_t)TJ_REC);
		assert_int_equal(tj_prefix(kv, 1, 1000, 0), 500);
		kv_batch_init(&b);
		tj_key(k, 2000);
		tj_val(v, 2000, 0);
		kv_batch_put(&b, KV_CF_INODE, k, sizeof(k), v, sizeof(v));
		assert_int_equal(kv_write(kv, &b, true), -EROFS);
		kv_batch_release(&b);
		assert_int_equal(kv_sync(kv), 0);
		kv_close(kv);
		snprintf(cmd, sizeof(cmd),
			 "diff -r --no-dereference '%s.before' '%s' >&2", dir,
			 dir);
		assert_int_equal(system(cmd), 0);
	}
	assert_int_equal(tj_open(dir, &kv), 0);
	assert_int_equal(kv->open_damage, 80400 - 80132);
	assert_int_equal(tj_prefix(kv, 1, 1000, 0), 1000);
	kv_close(kv);
}

/* After a torn tail, the next run's records overwrite the old ones one
 * for one; the old records after them line up with the chain but belong
 * to an earlier epoch, and must not be replayed. */
static void test_journal_epoch_rule(void **state)
{
	char *dir = *state, p[4200];
	struct kv *kv;
	uint64_t i;

	setenv("BRANCHFS_JOURNAL_KIB", "65536", 1);
	tj_run_child(dir, 1, 100, 100, 0);
	snprintf(p, sizeof(p), "%s/wal-at-open", dir);
	assert_true(twal_cut(dir, p) > 0);
	tj_damage(dir, 49 * (uint64_t)TJ_REC + 60); /* record 50 torn */
	/* Run 2 replays 1..49, starts a new epoch at record 50's place and
	 * writes 5 records of the same size (keys 1001..1005). */
	tj_run_child(dir, 1001, 5, 5, 1);
	snprintf(p, sizeof(p), "%s/wal-at-open", dir);
	assert_true(twal_cut(dir, p) > 0);
	assert_int_equal(tj_open(dir, &kv), 0);
	assert_int_equal(tj_prefix(kv, 1, 100, 0), 49);
	for (i = 1001; i <= 1005; i++)
		assert_int_equal(tj_has(kv, i, 1), 1);
	kv_close(kv);
}

/* The same, but run 2 closes cleanly right after its 5 records: its
 * checkpoint puts the journal's start exactly on the old record 55, which
 * is intact and has the lsn of that place.  Run 3's walk starts there and
 * must not take it (an earlier epoch: its batch was dropped as part of a
 * torn tail and never acknowledged after run 2 started).  Before, the walk
 * accepted any epoch for its first record and put 55..100 back. */
static void test_journal_epoch_at_start(void **state)
{
	char *dir = *state, p[4200];
	struct kv *kv;
	uint64_t i, n;

	setenv("BRANCHFS_JOURNAL_KIB", "65536", 1);
	tj_run_child(dir, 1, 100, 100, 0);
	snprintf(p, sizeof(p), "%s/wal-at-open", dir);
	assert_true(twal_cut(dir, p) > 0);
	tj_damage(dir, 49 * (uint64_t)TJ_REC + 60); /* record 50 torn */
	assert_int_equal(tj_open(dir, &kv), 0);
	assert_int_equal(tj_prefix(kv, 1, 100, 0), 49);
	for (i = 1001; i <= 1005; i++)
		assert_int_equal(tj_put(kv, i, 1), 0);
	kv_close(kv);
	assert_int_equal(tj_open(dir, &kv), 0);
	for (i = 50, n = 0; i <= 100; i++)
		n += tj_has(kv, i, 0) != 0;
	assert_int_equal(n, 0);
	assert_int_equal(tj_prefix(kv, 1, 100, 0), 49);
	for (i = 1001; i <= 1005; i++)
		assert_int_equal(tj_has(kv, i, 1), 1);
	kv_close(kv);
}

/* A 64 KiB ring wraps dozens of times; a crash in the middle loses no
 * synced batch (RocksDB's WAL, in the page cache, and the journal agree). */
static void test_journal_wraps(void **state)
{
	char *dir = *state;
	struct kv *kv;
	uint64_t i;

	setenv("BRANCHFS_JOURNAL_KIB", "64", 1);
	tj_run_child(dir, 1, 8000, 7, 0);
	assert_int_equal(tj_open(dir, &kv), 0);
	assert_true(tj_prefix(kv, 1, 8000, 0) >= tj_synced(dir));
	for (i = 8001; i <= 16000; i++) {
		assert_int_equal(tj_put(kv, i, 0), 0);
		if (i % 13 == 0)
			assert_int_equal(kv_sync(kv), 0);
	}
	kv_close(kv);
	assert_int_equal(tj_open(dir, &kv), 0);
	assert_true(tj_prefix(kv, 1, 16000, 0) == 16000);
	kv_close(kv);
}

/* Every kind of op comes back from the journal, in order. */
static void test_journal_every_op(void **state)
{
	char *dir = *state, p[4200];
	struct kv *kv;

	setenv("BRANCHFS_JOURNAL_KIB", "65536", 1);
	tj_run_mode(dir, "ops", NULL, NULL);
	snprintf(p, sizeof(p), "%s/wal-at-open", dir);
	assert_true(twal_cut(dir, p) > 100 * VLEN);
	assert_int_equal(tj_open(dir, &kv), 0);
	for (uint64_t i = 1; i <= 101; i++) {
		bool gone = i == 10 || i == 20 || (i >= 30 && i < 40);

		assert_int_equal(tj_has(kv, i, 0), gone ? 0 : 1);
	}
	kv_close(kv);
}

/* Both header slots damaged: refused, nothing silently dropped. */
static void test_journal_bad_header(void **state)
{
	char *dir = *state, p[4200];
	unsigned char junk[1024];
	struct kv *kv;
	int fd;

	setenv("BRANCHFS_JOURNAL_KIB", "1024", 1);
	assert_int_equal(tj_open(dir, &kv), 0);
	assert_int_equal(tj_put(kv, 1, 0), 0);
	kv_close(kv);
	snprintf(p, sizeof(p), "%s/db/BRANCHFS-JOURNAL", dir);
	fd = open(p, O_RDWR);
	assert_true(fd >= 0);
	memset(junk, 0xee, sizeof(junk));
	assert_int_equal(pwrite(fd, junk, sizeof(junk), 0),
			 (ssize_t)sizeof(junk));
	close(fd);
	assert_int_equal(tj_open(dir, &kv), -EUCLEAN);
}

/* ---- the journal alone: record i (from 1) of tjj_fill's journal starts
 * at lsn TJJ_AT(i) ---- */

#define TJJ_AT(i) (((uint64_t)(i) - 1) * TJ_REC)
#define TJJ_BIGV 60000u /* value of a tail batch of tjj_fill */
#define TJJ_BIGREC (40u + 12u + 16u + TJJ_BIGV)

struct tjj_got {
	uint64_t key[1100]; /* keys of the batches applied, in order */
	uint64_t end[1100]; /* and the end lsn each was applied with */
	size_t n;
};

static int tjj_apply(void *ctx, const struct kv_batch *b, uint64_t end)
{
	struct tjj_got *g = ctx;
	const unsigned char *k = kv_batch_key(b, &b->ops[0]);
	uint64_t i = 0;

	for (int x = 0; x < 8; x++)
		i = i << 8 | k[x];
	if (g->n < 1100) {
		g->key[g->n] = i;
		g->end[g->n] = end;
	}
	g->n++;
	return 0;
}

/* A new journal (dir/db/BRANCHFS-JOURNAL, 4 MiB ring) as a run leaves it
 * after a crash: batches 1..n (value VLEN), synced every sync_every, then
 * ntail batches of TJJ_BIGV bytes never synced (those that filled the 1 MiB
 * of pending records reached the file, the rest did not). */
static void tjj_fill(const char *dir, char *path, size_t psz, uint64_t n,
		     uint64_t sync_every, uint64_t ntail)
{
	static unsigned char big[TJJ_BIGV];
	unsigned char k[16], v[VLEN];
	struct tjj_got g = { .n = 0 };
	struct journal *j;
	struct kv_batch b;
	uint64_t i, end;

	snprintf(path, psz, "%s/db", dir);
	mkdir(path, 0700);
	snprintf(path, psz, "%s/db/BRANCHFS-JOURNAL", dir);
	assert_int_equal(journal_open(path, 4u << 20, &tj_logger, &j), 0);
	assert_int_equal(journal_replay(j, 0, tjj_apply, &g, &end), 0);
	assert_int_equal(g.n, 0);
	assert_int_equal(journal_restart(j, 0), 0);
	for (i = 1; i <= n + ntail; i++) {
		tj_key(k, i);
		tj_val(v, i, 0);
		kv_batch_init(&b);
		if (i <= n)
			kv_batch_put(&b, KV_CF_INODE, k, sizeof(k), v, sizeof(v));
		else
			kv_batch_put(&b, KV_CF_INODE, k, sizeof(k), big,
				     sizeof(big));
		assert_int_equal(journal_next_end(j, &b),
				 i <= n ? TJJ_AT(i + 1) :
					  TJJ_AT(n + 1) + (i - n) * TJJ_BIGREC);
		assert_int_equal(journal_append(j, &b), 0);
		kv_batch_release(&b);
		if (i <= n && i % sync_every == 0)
			assert_int_equal(journal_sync(j), 0);
	}
	journal_close(j); /* no sync: a crash */
}

/* Replay the journal at path for a database holding it up to applied;
 * the file is not changed (no restart). */
static uint64_t tjj_held; /* journal_damage_held() after tjj_replay */

static int tjj_replay(const char *path, uint64_t applied, struct tjj_got *g,
		      uint64_t *end)
{
	struct journal *j;
	int rc;

	memset(g, 0, sizeof(*g));
	assert_int_equal(journal_open(path, 4u << 20, &tj_logger, &j), 0);
	rc = journal_replay(j, applied, tjj_apply, g, end);
	tjj_held = journal_damage_held(j);
	journal_close(j);
	return rc;
}

/* Batches first..last were applied, in order, each with its end. */
static void tjj_check_got(const struct tjj_got *g, uint64_t first,
			  uint64_t last)
{
	assert_int_equal(g->n, last - first + 1);
	for (uint64_t i = first; i <= last; i++) {
		assert_int_equal(g->key[i - first], i);
		assert_int_equal(g->end[i - first], TJJ_AT(i + 1));
	}
}

/* Damage the database already holds costs nothing: record 40 of 100
 * damaged in its payload, then (a new journal) in its length, so that
 * the next record must be found by its magic and lsn; the database holds
 * 1..60: 61..100 are replayed.  (Before: the replay stopped at 40 and
 * gave back nothing.)  Record 40 had been synced (the sync after it is
 * in record 41's mark): the disk lost data it had flushed, which is
 * said and counted (branchd --check exits 3 for it; before, a warning
 * and exit 0). */
static void test_journal_damage_held(void **state)
{
	char *dir = *state, path[4200] = "";
	struct tjj_got g;
	uint64_t end;

	for (int hdr = 0; hdr < 2; hdr++) {
		unlink(path);
		tjj_fill(dir, path, sizeof(path), 100, 10, 0);
		tj_damage(dir, TJJ_AT(40) + (hdr ? 5 : 60));
		tj_log.text[0] = 0;
		assert_int_equal(tjj_replay(path, TJJ_AT(61), &g, &end), 0);
		tjj_check_got(&g, 61, 100);
		assert_int_equal(end, TJJ_AT(101));
		assert_non_null(strstr(tj_log.text, "from lsn 10452 to 10720"));
		assert_non_null(strstr(tj_log.text, "synced past them"));
		assert_int_equal(tjj_held, TJJ_AT(41) - TJJ_AT(40));
	}
}

/* Damage the database lacks, in a record later records say was synced
 * (record 40 of 100, synced every 10; the database holds 1..20): payload,
 * then (a new journal) length.  The replay fails with -EUCLEAN, applies
 * nothing, says which file and lsns, and leaves the file as it was.
 * (Before: it replayed 21..39 and returned 0, 40..100 silently gone.) */
static void test_journal_damage_synced(void **state)
{
	char *dir = *state, path[4200] = "";
	unsigned char *before, *after;
	size_t nb, na;
	struct tjj_got g;
	uint64_t end;

	for (int hdr = 0; hdr < 2; hdr++) {
		unlink(path);
		tjj_fill(dir, path, sizeof(path), 100, 10, 0);
		tj_damage(dir, TJJ_AT(40) + (hdr ? 5 : 60));
		before = tj_slurp(path, &nb);
		tj_log.text[0] = 0;
		assert_int_equal(tjj_replay(path, TJJ_AT(21), &g, &end),
				 -EUCLEAN);
		assert_int_equal(g.n, 0);
		assert_non_null(strstr(tj_log.text, path));
		assert_non_null(strstr(tj_log.text, "from lsn 10452 to 10720"));
		/* record 41 carries the mark of the sync after record 40 */
		assert_non_null(strstr(tj_log.text, "synced up to 10720"));
		after = tj_slurp(path, &na);
		assert_true(na == nb && memcmp(before, after, nb) == 0);
		free(before);
		free(after);
	}
}

/* A torn tail: the crash came while the last write, never synced, was
 * on its way, and kept later pages of it but not an earlier one (records
 * 100 + 4.. of the tail present, 100 + 3 damaged).  Their marks reach
 * only the last sync, before the damage: the replay gives back the
 * prefix up to the damage and returns 0, as before the marks. */
static void test_journal_torn_tail(void **state)
{
	char *dir = *state, path[4200];
	unsigned char *img;
	uint64_t end, bad = TJJ_AT(101) + 2 * (uint64_t)TJJ_BIGREC;
	struct tjj_got g;
	size_t n;

	tjj_fill(dir, path, sizeof(path), 100, 10, 20);
	tj_damage(dir, bad + 60);
	/* the tail's later records are in the file, intact */
	img = tj_slurp(path, &n);
	assert_memory_equal(img + 4096 + bad + 10 * TJJ_BIGREC, "BFRJ", 4);
	free(img);
	tj_log.text[0] = 0;
	assert_int_equal(tjj_replay(path, TJJ_AT(51), &g, &end), 0);
	assert_int_equal(g.n, 52); /* 51..100 and the tail's first two */
	assert_int_equal(g.key[0], 51);
	assert_int_equal(g.key[51], 102);
	assert_int_equal(end, bad);
	assert_null(strstr(tj_log.text, "damaged"));
}

/* Damage the database holds, in records never synced: the torn tail of
 * test_journal_torn_tail (tail record 3 damaged, later ones intact), but
 * the database holds up to tail record 7, as after a checkpoint (RocksDB's
 * WAL synced) that the crash kept while the journal's pages were not all
 * written.  No mark says the damaged record was synced: stepped over
 * without a warning, counted as no damage, the rest replayed.  (Before: a
 * warning that the journal was damaged.) */
static void test_journal_damage_held_unsynced(void **state)
{
	char *dir = *state, path[4200];
	uint64_t end, bad = TJJ_AT(101) + 2 * (uint64_t)TJJ_BIGREC;
	struct tjj_got g;

	tjj_fill(dir, path, sizeof(path), 100, 10, 20);
	tj_damage(dir, bad + 60);
	tj_log.text[0] = 0;
	assert_int_equal(tjj_replay(path, bad + 5 * (uint64_t)TJJ_BIGREC, &g,
				    &end),
			 0);
	assert_true(g.n >= 1);
	assert_int_equal(g.key[0], 108);
	assert_true(end > bad + 5 * (uint64_t)TJJ_BIGREC);
	assert_int_equal(tjj_held, 0);
	assert_null(strstr(tj_log.text, "damaged"));
}

/* A journal of a build before the durable marks (header bytes 28-39
 * zero): damage the database lacks ends the chain, as it always did. */
static void test_journal_no_marks(void **state)
{
	char *dir = *state, path[4200];
	unsigned char zero[12] = { 0 };
	struct tjj_got g;
	uint64_t end;
	int fd;

	tjj_fill(dir, path, sizeof(path), 100, 10, 0);
	fd = open(path, O_RDWR);
	assert_true(fd >= 0);
	for (uint64_t i = 1; i <= 100; i++)
		assert_int_equal(pwrite(fd, zero, sizeof(zero),
					(off_t)(4096 + TJJ_AT(i) + 28)),
				 (ssize_t)sizeof(zero));
	close(fd);
	tj_damage(dir, TJJ_AT(40) + 60);
	assert_int_equal(tjj_replay(path, TJJ_AT(21), &g, &end), 0);
	tjj_check_got(&g, 21, 39);
	assert_int_equal(end, TJJ_AT(40));
}

int main(int argc, char **argv)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_journal_power_cut, tj_setup, tj_teardown),
		cmocka_unit_test_setup_teardown(test_journal_synced_damage, tj_setup, tj_teardown),
		cmocka_unit_test_setup_teardown(test_journal_held_damage, tj_setup, tj_teardown),
		cmocka_unit_test_setup_teardown(test_journal_read_only_open, tj_setup, tj_teardown),
		cmocka_unit_test_setup_teardown(test_journal_epoch_rule, tj_setup, tj_teardown),
		cmocka_unit_test_setup_teardown(test_journal_epoch_at_start, tj_setup, tj_teardown),
		cmocka_unit_test_setup_teardown(test_journal_wraps, tj_setup, tj_teardown),
		cmocka_unit_test_setup_teardown(test_journal_every_op, tj_setup, tj_teardown),
		cmocka_unit_test_setup_teardown(test_journal_bad_header, tj_setup, tj_teardown),
		cmocka_unit_test_setup_teardown(test_journal_damage_held, tj_setup, tj_teardown),
		cmocka_unit_test_setup_teardown(test_journal_damage_held_unsynced, tj_setup, tj_teardown),
		cmocka_unit_test_setup_teardown(test_journal_damage_synced, tj_setup, tj_teardown),
		cmocka_unit_test_setup_teardown(test_journal_torn_tail, tj_setup, tj_teardown),
		cmocka_unit_test_setup_teardown(test_journal_no_marks, tj_setup, tj_teardown),
		cmocka_unit_test_setup_teardown(test_journal_wal_hole, tj_setup, tj_teardown),
		cmocka_unit_test_setup_teardown(test_journal_wal_hole_stale, tj_setup, tj_teardown),
		cmocka_unit_test_setup_teardown(test_journal_wal_hole_cut_crash, tj_setup, tj_teardown),
		cmocka_unit_test_setup_teardown(test_journal_wal_purge_cut, tj_setup, tj_teardown),
		cmocka_unit_test_setup_teardown(test_journal_wal_back, tj_setup, tj_teardown),
		cmocka_unit_test_setup_teardown(test_walscan_back, tj_setup, tj_teardown),
	};

	if (argc == 3 && strcmp(argv[1], "--child-hole") == 0)
		return tj_child_hole(argv[2], 1);
	if (argc == 4 && strcmp(argv[1], "--child-hole") == 0)
		return tj_child_hole(argv[2], atoi(argv[3]));
	if (argc == 3 && strcmp(argv[1], "--child-purge") == 0)
		return tj_child_purge(argv[2]);
	if (argc == 3 && strcmp(argv[1], "--child-ops") == 0)
		return tj_child_ops(argv[2]);
	if (argc == 7 && strcmp(argv[1], "--child") == 0)
		return tj_child(argv[2], strtoull(argv[3], NULL, 10),
				strtoull(argv[4], NULL, 10),
				strtoull(argv[5], NULL, 10),
				(unsigned)strtoul(argv[6], NULL, 10));
	return cmocka_run_group_tests(tests, NULL, NULL);
}
