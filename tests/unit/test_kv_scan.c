/* SPDX-License-Identifier: MIT */
/*
 * test_kv_scan.c - cmocka tests, on real RocksDB (store/kv.c), that a read
 * which cannot open a table file fails instead of coming back short.
 *
 * The fixture builds one column family of many small table files in one
 * level (BRANCHFS_TEST_SST_KIB, as t59 does, and a compaction), opens the
 * database again with a small max_open_files so that most of the files
 * are not open, and takes one of those away (renamed) that is not the
 * first of the level: a scan from the start reaches it by stepping from
 * the file before it, which is where RocksDB 7.8 lost the error (kv.c,
 * kv_rocks_iter_new).  Then:
 *  - a scan with each kind of iterator the store makes reads the keys up
 *    to that file and then fails with -EIO: it does not end as if the
 *    keys had run out;
 *  - a point read of a key in that file fails with -EIO;
 *  - with the file back, the same scans read every key (the count above
 *    is a real shortfall, not a miscount);
 *  - the store's check (branchd --check) of a file whose blocks lie in
 *    such files, one taken away the same way, reports the damage, and
 *    with the file back checks every block clean;
 *  - two table files taken away while the database is closed: its open
 *    fails in one line naming both, missing, and to put them back;
 *  - three table files damaged in their footers, among them those the
 *    open reads: the open fails in one line naming all three, damaged;
 *  - a table file with a data block damaged before the store's open: the
 *    store opens, says that data cannot be read and to run branchd
 *    --check, reads of it are EIO or right (never zeros), and the check
 *    reports it.
 */
#include <dirent.h>
#include <errno.h>
#include <limits.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "store/kv.h"
#include "tests/unit/test_logbuf.h"
#include "tests/unit/test_store_common.h"

#define TS_N 3000u	/* keys */
#define TS_VLEN 200u	/* value bytes, incompressible */
#define TS_SST_KIB "64" /* table file size, KiB */
#define TS_MAX_FILES 64u

struct ts_fx {
	char dir[128];
	char db[160];
	struct kv *kv;
	struct store *s; /* test_kv_scan_store_check_reports_missing_table */
	uint64_t victim; /* number of the table file taken away */
	char victim_path[200];
	bool away;
};

static void ts_key(unsigned char k[16], uint64_t i)
{
	for (int b = 0; b < 8; b++) {
		k[7 - b] = (unsigned char)(i >> (8 * b));
		k[15 - b] = 0;
	}
}

static uint64_t ts_key_index(const unsigned char *k)
{
	uint64_t i = 0;

	for (int b = 0; b < 8; b++)
		i = i << 8 | k[b];
	return i;
}

static void ts_val(unsigned char v[TS_VLEN], uint64_t i)
{
	uint64_t x = i * 0x9e3779b97f4a7c15u + 1;

	for (unsigned b = 0; b < TS_VLEN; b++) {
		x ^= x << 13;
		x ^= x >> 7;
		x ^= x << 17;
		v[b] = (unsigned char)x;
	}
}

static int ts_open(struct ts_fx *fx, bool create)
{
	/* RocksDB keeps at most 20 - 10 table files open: most of the
	 * level's files are not open after the reopen. */
	return kv_rocksdb_open(fx->db, create, 8u << 20, 20, NULL, &fx->kv);
}

/* Numbers of the table files in the database directory, ascending. */
static size_t ts_tables(const char *db, uint64_t *nums)
{
	struct dirent *de;
	size_t n = 0, i, j;
	DIR *d = opendir(db);

	assert_non_null(d);
	while ((de = readdir(d))) {
		size_t len = strlen(de->d_name);

		if (len > 4 && strcmp(de->d_name + len - 4, ".sst") == 0) {
			assert_true(n < TS_MAX_FILES);
			nums[n++] = strtoull(de->d_name, NULL, 10);
		}
	}
	closedir(d);
	for (i = 1; i < n; i++)
		for (j = i; j > 0 && nums[j - 1] > nums[j]; j--) {
			uint64_t t = nums[j];

			nums[j] = nums[j - 1];
			nums[j - 1] = t;
		}
	return n;
}

/* Whether this process has table file num of db open. */
static bool ts_table_open(const char *db, uint64_t num)
{
	char want[PATH_MAX + 32], link[PATH_MAX + 1], p[300], real[PATH_MAX];
	struct dirent *de;
	bool open = false;
	DIR *d;

	assert_non_null(realpath(db, real));
	snprintf(want, sizeof(want), "%s/%06llu.sst", real,
		 (unsigned long long)num);
	d = opendir("/proc/self/fd");
	assert_non_null(d);
	while (!open && (de = readdir(d))) {
		ssize_t n;

		snprintf(p, sizeof(p), "/proc/self/fd/%s", de->d_name);
		n = readlink(p, link, sizeof(link) - 1);
		if (n <= 0)
			continue;
		link[n] = 0;
		open = strcmp(link, want) == 0;
	}
	closedir(d);
	return open;
}

/* Scan the family from its first key with an iterator made with flags:
 * the keys read (checked to be 0, 1, 2 ... in order) and the status. */
static int ts_scan(struct kv *kv, unsigned flags, uint64_t *count)
{
	unsigned char zero[16] = { 0 };
	struct kv_iter *it;
	int rc;

	*count = 0;
	assert_int_equal(kv_iter_new(kv, KV_CF_INODE, flags, &it), 0);
	for (kv_iter_seek(it, zero, sizeof(zero)); kv_iter_valid(it);
	     kv_iter_next(it)) {
		unsigned char want[TS_VLEN];
		const unsigned char *k, *v;
		size_t klen, vlen;

		k = kv_iter_key(it, &klen);
		v = kv_iter_value(it, &vlen);
		assert_int_equal(klen, 16);
		assert_int_equal(ts_key_index(k), *count);
		ts_val(want, *count);
		assert_int_equal(vlen, TS_VLEN);
		assert_memory_equal(v, want, TS_VLEN);
		(*count)++;
	}
	rc = kv_iter_status(it);
	kv_iter_free(it);
	return rc;
}

static int ts_setup(void **state)
{
	uint64_t before[TS_MAX_FILES], after[TS_MAX_FILES], out[TS_MAX_FILES];
	unsigned char k[16], v[TS_VLEN];
	struct ts_fx *fx = calloc(1, sizeof(*fx));
	size_t nb, na, nout = 0, i, j;
	const char *tmp = getenv("TMPDIR");
	struct kv_batch b;
	uint64_t n;

	assert_non_null(fx);
	snprintf(fx->dir, sizeof(fx->dir), "%s/bfs-kvscan-XXXXXX",
		 tmp && *tmp ? tmp : "/var/tmp");
	assert_non_null(mkdtemp(fx->dir));
	snprintf(fx->db, sizeof(fx->db), "%s/db", fx->dir);
	*state = fx;
	setenv("BRANCHFS_TEST_SST_KIB", TS_SST_KIB, 1);
	assert_int_equal(ts_open(fx, true), 0);
	kv_batch_init(&b);
	for (n = 0; n < TS_N; n++) {
		ts_key(k, n);
		ts_val(v, n);
		kv_batch_put(&b, KV_CF_INODE, k, sizeof(k), v, sizeof(v));
		if (b.nops == 100 || n + 1 == TS_N) {
			assert_int_equal(kv_write(fx->kv, &b, false), 0);
			kv_batch_clear(&b);
		}
	}
	kv_batch_release(&b);
	/* Into one level of files made in key order: the compaction's
	 * output files are numbered in the order of their keys. */
	nb = ts_tables(fx->db, before);
	assert_int_equal(
		kv_compact(fx->kv, KV_CF_INODE, NULL, 0, NULL, 0, true), 0);
	na = ts_tables(fx->db, after);
	for (i = 0; i < na; i++) {
		for (j = 0; j < nb && before[j] != after[i]; j++)
			;
		if (j == nb)
			out[nout++] = after[i];
	}
	if (nout < 4)
		fail_msg("the compaction made %zu table files, want 4 or more",
			 nout);
	kv_close(fx->kv);
	fx->kv = NULL;
	assert_int_equal(ts_open(fx, false), 0);
	unsetenv("BRANCHFS_TEST_SST_KIB");
	/* The last file of the level that the reopen left closed. */
	for (i = nout - 1; i > 0 && ts_table_open(fx->db, out[i]); i--)
		;
	if (i == 0)
		fail_msg("every table file but the first is open");
	fx->victim = out[i];
	snprintf(fx->victim_path, sizeof(fx->victim_path), "%s/%06llu.sst",
		 fx->db, (unsigned long long)fx->victim);
	return 0;
}

/* Only the temp dir. */
static int ts_setup_dir(void **state)
{
	struct ts_fx *fx = calloc(1, sizeof(*fx));
	const char *tmp = getenv("TMPDIR");

	assert_non_null(fx);
	snprintf(fx->dir, sizeof(fx->dir), "%s/bfs-kvscan-XXXXXX",
		 tmp && *tmp ? tmp : "/var/tmp");
	assert_non_null(mkdtemp(fx->dir));
	*state = fx;
	return 0;
}

static void ts_take_away(struct ts_fx *fx)
{
	char to[220];

	snprintf(to, sizeof(to), "%s.away", fx->victim_path);
	assert_int_equal(rename(fx->victim_path, to), 0);
	fx->away = true;
}

static void ts_put_back(struct ts_fx *fx)
{
	char from[220];

	snprintf(from, sizeof(from), "%s.away", fx->victim_path);
	assert_int_equal(rename(from, fx->victim_path), 0);
	fx->away = false;
}

static int ts_teardown(void **state)
{
	struct ts_fx *fx = *state;
	char cmd[160];

	if (fx->away)
		ts_put_back(fx);
	kv_close(fx->kv);
	if (fx->s)
		store_close(fx->s);
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", fx->dir);
	if (system(cmd) != 0)
		fprintf(stderr, "could not remove %s\n", fx->dir);
	free(fx);
	return 0;
}

/* Every kind of iterator the store makes (kv.h enum kv_iter_flags, less
 * KV_ITER_PREFIX, whose seeks promise only the sought prefix). */
static const unsigned ts_flags[] = { 0, KV_ITER_SCAN, KV_ITER_SEQ };

static void test_kv_scan_missing_table_fails_scan(void **state)
{
	struct ts_fx *fx = *state;
	uint64_t count;
	size_t i;
	int rc;

	ts_take_away(fx);
	for (i = 0; i < sizeof(ts_flags) / sizeof(ts_flags[0]); i++) {
		rc = ts_scan(fx->kv, ts_flags[i], &count);
		fprintf(stderr,
			"table file %06llu away, iterator flags %u: %llu of %u keys, status %d\n",
			(unsigned long long)fx->victim, ts_flags[i],
			(unsigned long long)count, TS_N, rc);
		assert_true(count > 0 && count < TS_N);
		assert_int_equal(rc, -EIO);
	}
	ts_put_back(fx);
	for (i = 0; i < sizeof(ts_flags) / sizeof(ts_flags[0]); i++) {
		assert_int_equal(ts_scan(fx->kv, ts_flags[i], &count), 0);
		assert_int_equal(count, TS_N);
	}
}

static void test_kv_scan_missing_table_fails_get(void **state)
{
	struct ts_fx *fx = *state;
	unsigned char k[16], v[TS_VLEN];
	uint64_t count;
	size_t vlen;
	bool found;

	ts_take_away(fx);
	/* The scan stops where the missing file's keys start. */
	(void)ts_scan(fx->kv, 0, &count);
	assert_true(count > 0 && count < TS_N);
	ts_key(k, count);
	assert_int_equal(kv_get(fx->kv, KV_CF_INODE, k, sizeof(k), v, sizeof(v),
				&vlen, &found),
			 -EIO);
	/* A key in a file that is there still reads. */
	ts_key(k, 0);
	assert_int_equal(kv_get(fx->kv, KV_CF_INODE, k, sizeof(k), v, sizeof(v),
				&vlen, &found),
			 0);
	assert_true(found);
	ts_put_back(fx);
	ts_key(k, count);
	assert_int_equal(kv_get(fx->kv, KV_CF_INODE, k, sizeof(k), v, sizeof(v),
				&vlen, &found),
			 0);
	assert_true(found);
}

static void ts_check_problem(void *ctx, const char *msg)
{
	fprintf(stderr, "check: %s\n", msg);
	(*(unsigned *)ctx)++;
}

/* A store in fx->dir/store (cfg made for it, create set, with
 * max_open_files) whose branch "root" (*bi) holds the 2 MiB file "data" of
 * pattern 1, closed again; cfg's create is then cleared and fx->db names
 * the store's database.  The file's inode. */
static uint64_t ts_make_store(struct ts_fx *fx, struct store_config *cfg,
			      unsigned max_open_files,
			      struct store_branch_info *bi)
{
	struct store_branch_create_args a;
	uint64_t f;

	snprintf(fx->db, sizeof(fx->db), "%s/store", fx->dir);
	tstore_config(cfg, true, NULL);
	cfg->max_open_files = max_open_files;
	assert_int_equal(store_open(fx->db, cfg, &fx->s), 0);
	a = tstore_args("root", 0, STORE_SEQ_LATEST);
	assert_int_equal(store_branch_create(fx->s, &a, bi), 0);
	f = tstore_mkfile(fx->s, bi->id, bi->root_ino, "data");
	tstore_write_pat(fx->s, bi->id, f, 1, 0, 2u << 20);
	assert_int_equal(store_close(fx->s), 0);
	fx->s = NULL;
	cfg->create = false;
	snprintf(fx->db, sizeof(fx->db), "%s/store/db", fx->dir);
	return f;
}

/* The store's check (branchd --check) over the same kind of damage: a
 * file's blocks in 64 KiB table files of one level, one of them that the
 * store's open left closed taken away.  It reports damage. */
static void test_kv_scan_store_check_reports_missing_table(void **state)
{
	struct ts_fx *fx = *state;
	uint64_t before[TS_MAX_FILES], after[TS_MAX_FILES], out[TS_MAX_FILES];
	struct store_check_report rep;
	struct store_branch_info bi;
	struct store_config cfg;
	size_t nb, na, nout = 0, i, j;
	unsigned problems = 0;

	ts_make_store(fx, &cfg, 20, &bi);
	/* the block family into one level, as in ts_setup */
	setenv("BRANCHFS_TEST_SST_KIB", TS_SST_KIB, 1);
	assert_int_equal(ts_open(fx, false), 0);
	nb = ts_tables(fx->db, before);
	assert_int_equal(
		kv_compact(fx->kv, KV_CF_BLOCK, NULL, 0, NULL, 0, true), 0);
	na = ts_tables(fx->db, after);
	for (i = 0; i < na; i++) {
		for (j = 0; j < nb && before[j] != after[i]; j++)
			;
		if (j == nb)
			out[nout++] = after[i];
	}
	kv_close(fx->kv);
	fx->kv = NULL;
	if (nout < 4)
		fail_msg("the compaction made %zu table files, want 4 or more",
			 nout);
	snprintf(fx->db, sizeof(fx->db), "%s/store", fx->dir);
	assert_int_equal(store_open(fx->db, &cfg, &fx->s), 0);
	unsetenv("BRANCHFS_TEST_SST_KIB");
	tstore_wait_filters(fx->s);
	snprintf(fx->db, sizeof(fx->db), "%s/store/db", fx->dir);
	for (i = nout - 1; i > 0 && ts_table_open(fx->db, out[i]); i--)
		;
	if (i == 0)
		fail_msg("every table file but the first is open");
	fx->victim = out[i];
	snprintf(fx->victim_path, sizeof(fx->victim_path), "%s/%06llu.sst",
		 fx->db, (unsigned long long)fx->victim);
	ts_take_away(fx);
	assert_int_equal(store_check(fx->s, ts_check_problem, &problems, &rep),
			 0);
	fprintf(stderr,
		"table file %06llu away: check read %llu blocks, %llu bad, %u problems said\n",
		(unsigned long long)fx->victim, (unsigned long long)rep.blocks,
		(unsigned long long)rep.bad_blocks, problems);
	assert_true(rep.bad_blocks > 0);
	assert_true(problems > 0);
	ts_put_back(fx);
	problems = 0;
	assert_int_equal(store_check(fx->s, ts_check_problem, &problems, &rep),
			 0);
	assert_int_equal(rep.bad_blocks, 0);
	assert_int_equal(problems, 0);
	assert_int_equal(rep.blocks, (2u << 20) / STORE_BLOCK_SIZE);
	assert_int_equal(store_close(fx->s), 0);
	fx->s = NULL;
}

static struct tlog_buf ts_log; /* test_logbuf.h */

/* The database's open is refused as damaged (-EUCLEAN) in one line: one
 * line break, at the end of what it logged (in ts_log). */
static void ts_open_refused(struct ts_fx *fx)
{
	struct store_log log = { tlog_buf_fn, &ts_log, STORE_LOG_WARN };

	ts_log.text[0] = 0;
	assert_int_equal(kv_rocksdb_open(fx->db, false, 8u << 20, 20, &log,
					 &fx->kv),
			 -EUCLEAN);
	fprintf(stderr, "%s", ts_log.text);
	assert_ptr_equal(strchr(ts_log.text, '\n'),
			 ts_log.text + strlen(ts_log.text) - 1);
}

/* Two table files of the level taken away while the database is closed
 * (not among the few its open reads, so that RocksDB's check of every
 * file's size against the MANIFEST finds them, and names both, in a text
 * of several lines): the open fails with -EUCLEAN and one line that names
 * both, says they are missing, and to put them back (before: RocksDB's
 * text with a line break per file, no way out).  Put back, it opens. */
static void test_kv_scan_open_names_missing_tables(void **state)
{
	struct ts_fx *fx = *state;
	uint64_t nums[TS_MAX_FILES], other;
	char want[64], from[220], to[230];
	size_t n, i;

	/* another file the open left closed, as the victim (ts_setup) */
	n = ts_tables(fx->db, nums);
	for (i = n; i > 0; i--)
		if (nums[i - 1] != fx->victim &&
		    !ts_table_open(fx->db, nums[i - 1]))
			break;
	if (i == 0)
		fail_msg("no second table file that the open left closed");
	other = nums[i - 1];
	kv_close(fx->kv);
	fx->kv = NULL;
	ts_take_away(fx);
	snprintf(from, sizeof(from), "%s/%06llu.sst", fx->db,
		 (unsigned long long)other);
	snprintf(to, sizeof(to), "%s.away", from);
	assert_int_equal(rename(from, to), 0);
	ts_open_refused(fx);
	snprintf(want, sizeof(want), "%06llu.sst (missing)",
		 (unsigned long long)fx->victim);
	assert_non_null(strstr(ts_log.text, want));
	snprintf(want, sizeof(want), "%06llu.sst (missing)",
		 (unsigned long long)other);
	assert_non_null(strstr(ts_log.text, want));
	assert_non_null(strstr(ts_log.text, "put them back"));
	assert_int_equal(rename(to, from), 0);
	ts_put_back(fx);
	assert_int_equal(ts_open(fx, false), 0);
}

/* Flip every bit of the byte at off (fseek's whence) of the file. */
static void ts_flip(const char *path, long off, int whence)
{
	FILE *fp = fopen(path, "r+b");
	int c;

	assert_non_null(fp);
	assert_int_equal(fseek(fp, off, whence), 0);
	c = fgetc(fp);
	assert_true(c >= 0);
	assert_int_equal(fseek(fp, off, whence), 0);
	assert_int_equal(fputc(c ^ 0xff, fp), c ^ 0xff);
	assert_int_equal(fclose(fp), 0);
}

/* Flip the last byte (in the footer's magic number) of table file num. */
static void ts_flip_end(const char *db, uint64_t num)
{
	char path[300];

	snprintf(path, sizeof(path), "%s/%06llu.sst", db,
		 (unsigned long long)num);
	ts_flip(path, -1, SEEK_END);
}

/* Three table files damaged in their footers while the database is
 * closed, among them those its open reads (which stop it at the first it
 * cannot open): the open fails with -EUCLEAN and one line that names all
 * three as damaged (before: only the first RocksDB met).  Repaired, it
 * opens. */
static void test_kv_scan_open_names_damaged_tables(void **state)
{
	struct ts_fx *fx = *state;
	uint64_t nums[TS_MAX_FILES], bad[3];
	size_t n, i, nbad = 0;
	char want[64];
	const char *p;

	n = ts_tables(fx->db, nums);
	for (i = 0; i < n && nbad < 2; i++)
		if (ts_table_open(fx->db, nums[i]))
			bad[nbad++] = nums[i];
	assert_true(nbad > 0); /* the open reads at least one */
	for (i = n; i > 0 && nbad < 3; i--)
		if (!ts_table_open(fx->db, nums[i - 1]))
			bad[nbad++] = nums[i - 1];
	assert_int_equal(nbad, 3);
	kv_close(fx->kv);
	fx->kv = NULL;
	for (i = 0; i < nbad; i++)
		ts_flip_end(fx->db, bad[i]);
	ts_open_refused(fx);
	for (i = 0; i < nbad; i++) {
		snprintf(want, sizeof(want), "%06llu.sst (damaged)",
			 (unsigned long long)bad[i]);
		assert_non_null(strstr(ts_log.text, want));
	}
	for (i = 0, p = ts_log.text; (p = strstr(p, ".sst (")); p++)
		i++;
	assert_int_equal(i, nbad);
	assert_non_null(strstr(ts_log.text, "keep a copy of them"));
	for (i = 0; i < nbad; i++)
		ts_flip_end(fx->db, bad[i]);
	assert_int_equal(ts_open(fx, false), 0);
}

/* A table file damaged before the store is opened, in a data block (what
 * the open does not read: a missing or short file, or a damaged footer,
 * is refused by the open itself, t55): the store opens, but the read
 * filters' rebuild meets the damage and says, after RocksDB's line that
 * names the file, that data cannot be read and to run branchd --check
 * (before: "cannot rebuild read filters (Input/output error)", nothing
 * about damage); every read of the file fails with -EIO or reads its
 * bytes, never other bytes or zeros; and the check reports it. */
static void test_kv_scan_store_table_damaged_before_open(void **state)
{
	struct ts_fx *fx = *state;
	uint64_t nums[TS_MAX_FILES], biggest = 0;
	struct store_check_report rep;
	struct store_branch_info bi;
	struct store_config cfg;
	unsigned char *buf, *want;
	size_t n, i, off, nbad = 0;
	unsigned problems = 0;
	char path[300];
	struct stat st;
	off_t size = 0;
	uint64_t f;

	f = ts_make_store(fx, &cfg, 0, &bi);
	/* the blocks into a table file */
	assert_int_equal(ts_open(fx, false), 0);
	assert_int_equal(
		kv_compact(fx->kv, KV_CF_BLOCK, NULL, 0, NULL, 0, true), 0);
	kv_close(fx->kv);
	fx->kv = NULL;
	n = ts_tables(fx->db, nums);
	for (i = 0; i < n; i++) {
		snprintf(path, sizeof(path), "%s/%06llu.sst", fx->db,
			 (unsigned long long)nums[i]);
		assert_int_equal(stat(path, &st), 0);
		if (st.st_size > size) {
			size = st.st_size;
			biggest = nums[i];
		}
	}
	assert_true(size > (1 << 20));
	snprintf(path, sizeof(path), "%s/%06llu.sst", fx->db,
		 (unsigned long long)biggest);
	ts_flip(path, size / 2, SEEK_SET);

	snprintf(fx->db, sizeof(fx->db), "%s/store", fx->dir);
	cfg.log.fn = tlog_buf_fn;
	cfg.log.ctx = &ts_log;
	cfg.log.level = STORE_LOG_WARN;
	ts_log.text[0] = 0;
	assert_int_equal(store_open(fx->db, &cfg, &fx->s), 0);
	assert_int_equal(store_wait_filters(fx->s, 60000), -EIO);
	fprintf(stderr, "%s", ts_log.text);
	assert_non_null(strstr(ts_log.text, path));
	assert_non_null(strstr(ts_log.text, "cannot be read"));
	assert_non_null(strstr(ts_log.text, "branchd --check"));
	/* reads: the right bytes or EIO, block by block */
	buf = malloc(STORE_BLOCK_SIZE);
	want = malloc(STORE_BLOCK_SIZE);
	assert_non_null(buf);
	assert_non_null(want);
	for (off = 0; off < (2u << 20); off += STORE_BLOCK_SIZE) {
		ssize_t got = store_read(fx->s, bi.id, STORE_SEQ_LATEST, f, buf,
					 STORE_BLOCK_SIZE, off);

		if (got == -EIO) {
			nbad++;
			continue;
		}
		assert_int_equal(got, STORE_BLOCK_SIZE);
		tstore_fill(want, STORE_BLOCK_SIZE, 1, off);
		assert_memory_equal(buf, want, STORE_BLOCK_SIZE);
	}
	free(buf);
	free(want);
	assert_true(nbad > 0);
	assert_int_equal(store_check(fx->s, ts_check_problem, &problems, &rep),
			 0);
	assert_true(rep.bad_blocks > 0);
	assert_true(problems > 0);
	assert_int_equal(store_close(fx->s), 0);
	fx->s = NULL;
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(
			test_kv_scan_missing_table_fails_scan, ts_setup,
			ts_teardown),
		cmocka_unit_test_setup_teardown(
			test_kv_scan_missing_table_fails_get, ts_setup,
			ts_teardown),
		cmocka_unit_test_setup_teardown(
			test_kv_scan_store_check_reports_missing_table,
			ts_setup_dir, ts_teardown),
		cmocka_unit_test_setup_teardown(
			test_kv_scan_open_names_missing_tables, ts_setup,
			ts_teardown),
		cmocka_unit_test_setup_teardown(
			test_kv_scan_open_names_damaged_tables, ts_setup,
			ts_teardown),
		cmocka_unit_test_setup_teardown(
			test_kv_scan_store_table_damaged_before_open,
			ts_setup_dir, ts_teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
