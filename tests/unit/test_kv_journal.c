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
 *  - a damaged record ends the replay there: a prefix again;
 *  - after a torn tail and a restart, records of the earlier run left
 *    further in the ring are not taken as a continuation (the epoch rule),
 *    even when they line up exactly with the new records;
 *  - a small ring wraps many times, with and without a crash;
 *  - every kind of op (put, delete, single delete, delete range) is
 *    replayed, in order;
 *  - a journal whose headers are both damaged is refused (-EUCLEAN).
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

#include "store/kv.h"

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

static int tj_open(const char *dir, struct kv **kv)
{
	char db[4096];

	snprintf(db, sizeof(db), "%s/db", dir);
	return kv_rocksdb_open(db, true, 8u << 20, 0, NULL, kv);
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

/* Sizes of RocksDB's WAL files (*.log) in dir/db, as "name size" lines. */
static void tj_record_wal(const char *dir, const char *out)
{
	char db[4096], p[8192];
	struct dirent *de;
	FILE *f;
	DIR *d;

	snprintf(db, sizeof(db), "%s/db", dir);
	f = fopen(out, "w");
	d = opendir(db);
	if (!f || !d)
		abort();
	while ((de = readdir(d))) {
		struct stat st;
		size_t n = strlen(de->d_name);

		if (n < 4 || strcmp(de->d_name + n - 4, ".log") != 0)
			continue;
		snprintf(p, sizeof(p), "%s/%s", db, de->d_name);
		if (stat(p, &st) == 0)
			fprintf(f, "%s %lld\n", de->d_name,
				(long long)st.st_size);
	}
	closedir(d);
	fclose(f);
}

/* The power cut: every WAL file back to its recorded size (0 if it did
 * not exist then).  Returns the bytes cut. */
static long long tj_cut_wal(const char *dir, const char *rec)
{
	char db[4096], p[8192], name[256];
	long long size, cut = 0;
	struct dirent *de;
	DIR *d;

	snprintf(db, sizeof(db), "%s/db", dir);
	d = opendir(db);
	assert_non_null(d);
	while ((de = readdir(d))) {
		size_t n = strlen(de->d_name);
		long long keep = 0;
		struct stat st;
		FILE *f;

		if (n < 4 || strcmp(de->d_name + n - 4, ".log") != 0)
			continue;
		f = fopen(rec, "r");
		assert_non_null(f);
		while (fscanf(f, "%255s %lld", name, &size) == 2) {
			if (strcmp(name, de->d_name) == 0)
				keep = size;
		}
		fclose(f);
		snprintf(p, sizeof(p), "%s/%s", db, de->d_name);
		assert_int_equal(stat(p, &st), 0);
		if (st.st_size > keep) {
			cut += st.st_size - keep;
			assert_int_equal(truncate(p, keep), 0);
		}
	}
	closedir(d);
	return cut;
}

/* ---- child: open, record the WAL sizes, write n batches from first,
 * kv_sync every sync_every, note the last synced index, _exit ---- */
static int tj_child(const char *dir, uint64_t first, uint64_t n,
		    uint64_t sync_every, unsigned gen)
{
	char p[4096];
	struct kv *kv;
	uint64_t i;
	FILE *f;

	if (tj_open(dir, &kv) != 0)
		return 2;
	snprintf(p, sizeof(p), "%s/wal-at-open", dir);
	tj_record_wal(dir, p);
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
	tj_record_wal(dir, p);
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

	snprintf(cmd, sizeof(cmd), "rm -rf '%s' '%s.nojournal'", d, d);
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
	assert_true(tj_cut_wal(dir, p) > 3000 * VLEN);
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

/* A damaged record ends the chain: what comes back is a prefix. */
static void test_journal_torn_record(void **state)
{
	char *dir = *state, p[4200];
	struct kv *kv;
	uint64_t len;

	setenv("BRANCHFS_JOURNAL_KIB", "65536", 1);
	tj_run_child(dir, 1, 1000, 50, 0);
	snprintf(p, sizeof(p), "%s/wal-at-open", dir);
	assert_true(tj_cut_wal(dir, p) > 0);
	/* Record 600 (index 599 from the ring's start, which the open set
	 * to the lsn the fresh database had: 0). */
	tj_damage(dir, 599 * (uint64_t)TJ_REC + 60);
	assert_int_equal(tj_open(dir, &kv), 0);
	len = tj_prefix(kv, 1, 1000, 0);
	assert_int_equal(len, 599);
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
	assert_true(tj_cut_wal(dir, p) > 0);
	tj_damage(dir, 49 * (uint64_t)TJ_REC + 60); /* record 50 torn */
	/* Run 2 replays 1..49, starts a new epoch at record 50's place and
	 * writes 5 records of the same size (keys 1001..1005). */
	tj_run_child(dir, 1001, 5, 5, 1);
	snprintf(p, sizeof(p), "%s/wal-at-open", dir);
	assert_true(tj_cut_wal(dir, p) > 0);
	assert_int_equal(tj_open(dir, &kv), 0);
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
	int status;
	pid_t pid;

	setenv("BRANCHFS_JOURNAL_KIB", "65536", 1);
	pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		execl("/proc/self/exe", "test_kv_journal", "--child-ops", dir,
		      (char *)NULL);
		_exit(127);
	}
	assert_int_equal(waitpid(pid, &status, 0), pid);
	assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 0);
	snprintf(p, sizeof(p), "%s/wal-at-open", dir);
	assert_true(tj_cut_wal(dir, p) > 100 * VLEN);
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

int main(int argc, char **argv)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_journal_power_cut, tj_setup, tj_teardown),
		cmocka_unit_test_setup_teardown(test_journal_torn_record, tj_setup, tj_teardown),
		cmocka_unit_test_setup_teardown(test_journal_epoch_rule, tj_setup, tj_teardown),
		cmocka_unit_test_setup_teardown(test_journal_wraps, tj_setup, tj_teardown),
		cmocka_unit_test_setup_teardown(test_journal_every_op, tj_setup, tj_teardown),
		cmocka_unit_test_setup_teardown(test_journal_bad_header, tj_setup, tj_teardown),
	};

	if (argc == 3 && strcmp(argv[1], "--child-ops") == 0)
		return tj_child_ops(argv[2]);
	if (argc == 7 && strcmp(argv[1], "--child") == 0)
		return tj_child(argv[2], strtoull(argv[3], NULL, 10),
				strtoull(argv[4], NULL, 10),
				strtoull(argv[5], NULL, 10),
				(unsigned)strtoul(argv[6], NULL, 10));
	return cmocka_run_group_tests(tests, NULL, NULL);
}
