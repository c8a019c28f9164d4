/* SPDX-License-Identifier: MIT */
/*
 * test_store_gc_incr.c - cmocka tests of the incremental GC (store.c, gc
 * section, GC-1 to GC-3): after its first run, GC examines only the
 * objects written since, and still reclaims everything a whole scan would.
 * Real RocksDB through the public store API, plus the fault-injecting KV
 * wrapper for a GC that fails half-way.
 *
 * What is checked:
 *  - a GC after another one examines only the few keys written since
 *    (keys_scanned), not the whole store, and reclaims exactly the
 *    shadowed versions of what was written;
 *  - a hot object written on both sides of the window start: the versions
 *    inside the window stay readable as of their seqs, the older ones go,
 *    over several GCs;
 *  - the set of written objects lives in memory and is saved by a clean
 *    close ("G"): after a reopen the first GC is incremental and still
 *    reclaims what was written before the close;
 *  - a close saves no set unless a GC ended since open; without a usable
 *    saved set the first GC after open scans everything (conservatively)
 *    and reclaims what was written before the close: none was saved (a
 *    crash), or the saved set is stale (the store was written after the
 *    close that saved it, as an older build would), or it is damaged (the
 *    open still succeeds); the GC after that is incremental again;
 *  - a child made after the last GC's window start and deleted or reset
 *    inside the window costs its parent no whole scan, and the parent's
 *    versions only its fork point read still go;
 *  - after a GC failed half-way, the next one scans everything and still
 *    reclaims all of it, and the failed one left nothing taken out of the
 *    set for good (a clean close saves the set);
 *  - a GC whose read fails at any iterator movement returns the error,
 *    also where a seek after the failed one would have hidden it (as
 *    RocksDB's iterators do), and the data reads back as written.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "store/kv.h"
#include "tests/unit/test_store_common.h"

#define BS STORE_BLOCK_SIZE

/* Let everything written so far fall out of a 1 s window. */
static void tgi_age_out(struct store *s)
{
	assert_int_equal(store_set_retention(s, 1), 0);
	tstore_sleep_ms(1300);
}

static struct store_gc_stats tgi_run(struct store *s)
{
	struct store_gc_opts o = { .full_compaction = false };
	struct store_gc_stats st;
	int rc;

	memset(&st, 0xa5, sizeof(st));
	rc = store_gc(s, &o, &st);
	if (rc != 0)
		fail_msg("store_gc = %d", rc);
	assert_true(st.keys_deleted <= st.keys_scanned);
	return st;
}

/* A store with a big file (256 blocks) and 64 small files, each written
 * once, and one GC run over it: later GCs can be incremental. */
static uint64_t tgi_populate(struct tstore_fx *fx)
{
	uint64_t big;
	int i;

	big = tstore_mkfile(fx->s, fx->br, fx->root, "big");
	tstore_write_pat(fx->s, fx->br, big, 1, 0, 256 * BS);
	for (i = 0; i < 64; i++) {
		char name[32];
		uint64_t f;

		snprintf(name, sizeof(name), "small-%d", i);
		f = tstore_mkfile(fx->s, fx->br, fx->root, name);
		tstore_write_pat(fx->s, fx->br, f, (uint32_t)i + 100, 0, BS);
	}
	return big;
}

static void test_store_gc_incr_examines_only_written(void **state)
{
	struct tstore_fx *fx = *state;
	struct store *s = fx->s;
	struct store_gc_stats st;
	uint64_t big;
	int i;

	big = tgi_populate(fx);
	tgi_age_out(s);
	st = tgi_run(s); /* the first after open: a whole scan */
	assert_true(st.keys_scanned >= 256 + 64);

	/* five overwrites of blocks 10 and 11 of the big file */
	for (i = 0; i < 5; i++)
		tstore_write_pat(s, fx->br, big, (uint32_t)i + 2, 10 * BS,
				 2 * BS);
	tgi_age_out(s);
	st = tgi_run(s);
	/* 2 blocks x 5 shadowed versions, and 5 shadowed inode versions */
	assert_int_equal(st.keys_deleted, 2 * 5 + 5);
	/* a few keys per object written, not the 256 + 64 blocks */
	assert_true(st.keys_scanned < 64);
	tstore_expect_pat(s, fx->br, big, 1, 0, 10 * BS);
	tstore_expect_pat(s, fx->br, big, 6, 10 * BS, 2 * BS);
	tstore_expect_pat(s, fx->br, big, 1, 12 * BS, 244 * BS);

	/* nothing written since: nothing examined */
	tstore_sleep_ms(1100);
	st = tgi_run(s);
	assert_int_equal(st.keys_deleted, 0);
	assert_true(st.keys_scanned < 8);
}

static void test_store_gc_incr_hot_object_across_window(void **state)
{
	struct tstore_fx *fx = *state;
	struct store *s = fx->s;
	struct store_gc_stats st;
	uint64_t f, seqs[10];
	int i;

	f = tstore_mkfile(s, fx->br, fx->root, "hot");
	tstore_write_pat(s, fx->br, f, 1, 0, BS);
	tgi_age_out(s);
	tgi_run(s);

	/* v1..v5, then the window start moves past them, then v6..v10 */
	assert_int_equal(store_set_retention(s, 2), 0);
	for (i = 0; i < 5; i++) {
		tstore_write_pat(s, fx->br, f, (uint32_t)i + 10, 0, BS);
		seqs[i] = store_seq_now(s);
	}
	tstore_sleep_ms(2300);
	for (i = 5; i < 10; i++) {
		tstore_write_pat(s, fx->br, f, (uint32_t)i + 10, 0, BS);
		seqs[i] = store_seq_now(s);
	}
	st = tgi_run(s);
	/* the first write of the file and v1..v4 go (v5 is what the window
	 * start reads), for the block and the inode */
	assert_int_equal(st.keys_deleted, 2 * 5);
	for (i = 5; i < 10; i++)
		tstore_expect_pat_at(s, fx->br, seqs[i], f, (uint32_t)i + 10, 0,
				     BS);
	/* the window moves past v6..v10: v5..v9 go, v10 is the head */
	tstore_sleep_ms(2300);
	st = tgi_run(s);
	assert_int_equal(st.keys_deleted, 2 * 5);
	assert_true(st.keys_scanned < 32);
	tstore_expect_pat(s, fx->br, f, 19, 0, BS);
	st = tgi_run(s);
	assert_int_equal(st.keys_deleted, 0);
}

/* Overwrite the first 32 blocks of big 4 times (4 x 32 block versions and
 * 4 inode versions shadowed once the window passes). */
static void tgi_churn(struct store *s, uint64_t br, uint64_t big, uint32_t seed)
{
	int i;

	for (i = 0; i < 4; i++)
		tstore_write_pat(s, br, big, seed + (uint32_t)i, 0, 32 * BS);
}

/* Populate, let a GC run past it, then churn with seed: GC's set now
 * holds exactly what the churn wrote.  Returns big. */
static uint64_t tgi_written_after_gc(struct tstore_fx *fx, uint32_t seed)
{
	uint64_t big = tgi_populate(fx);

	tgi_age_out(fx->s);
	tgi_run(fx->s);
	tgi_churn(fx->s, fx->br, big, seed);
	return big;
}

/* The first GC after a reopen scanned everything (want_full) or only
 * what was written; either way it reclaims the 4 x 32 + 4 versions the
 * churn with seed shadowed, and the GC after it is incremental. */
static void tgi_after_reopen(struct tstore_fx *fx, uint64_t big, uint32_t seed,
			     bool want_full)
{
	struct store_gc_stats st;

	tgi_age_out(fx->s);
	st = tgi_run(fx->s);
	if (want_full)
		assert_true(st.keys_scanned >= 256 + 64);
	else
		assert_true(st.keys_scanned < 4 * 32 * 3);
	assert_int_equal(st.keys_deleted, 4 * 32 + 4);
	tstore_expect_pat(fx->s, fx->br, big, seed + 3, 0, 32 * BS);
	tstore_expect_pat(fx->s, fx->br, big, 1, 32 * BS, 224 * BS);

	tgi_churn(fx->s, fx->br, big, seed + 10);
	tgi_age_out(fx->s);
	st = tgi_run(fx->s);
	assert_int_equal(st.keys_deleted, 4 * 32 + 4);
	assert_true(st.keys_scanned < 4 * 32 * 3);
	tstore_expect_pat(fx->s, fx->br, big, seed + 13, 0, 32 * BS);
	tstore_expect_pat(fx->s, fx->br, big, 1, 32 * BS, 224 * BS);
}

/* Written after a GC, then closed cleanly and reopened: the saved set
 * knows about the writes, and twice over (a reopen with no GC between
 * saves the set it took back). */
static void test_store_gc_incr_reopen_keeps_set(void **state)
{
	struct tstore_fx *fx = *state;
	uint64_t big;

	big = tgi_written_after_gc(fx, 30);
	tstore_fx_reopen(fx);
	tstore_fx_reopen(fx);
	tgi_after_reopen(fx, big, 30, false);
}

/* The raw META "G" record, with the store closed: TGI_G_GET reads it into
 * *g (NULL if there is none), TGI_G_PUT writes *g back, TGI_G_DEL deletes
 * it (as a crash would leave the store: nothing saved). */
enum tgi_g_op { TGI_G_GET, TGI_G_PUT, TGI_G_DEL };

static void tgi_raw_g(struct tstore_fx *fx, enum tgi_g_op op,
		      unsigned char **g, size_t *len)
{
	char db[4200];
	struct kv_batch b;
	struct kv *kv;
	bool found;
	size_t n;

	snprintf(db, sizeof(db), "%s/db", fx->dir);
	assert_int_equal(kv_rocksdb_open(db, false, 8u << 20, 0, NULL, &kv), 0);
	kv_batch_init(&b);
	if (op == TGI_G_GET) {
		*g = NULL;
		assert_int_equal(kv_get(kv, KV_CF_META, "G", 1, NULL, 0, len,
					&found),
				 0);
		if (found) {
			assert_true(*len >= 20);
			*g = malloc(*len);
			assert_non_null(*g);
			assert_int_equal(kv_get(kv, KV_CF_META, "G", 1, *g,
						*len, &n, &found),
					 0);
			assert_int_equal(n, *len);
		}
	} else {
		if (op == TGI_G_PUT)
			kv_batch_put(&b, KV_CF_META, "G", 1, *g, *len);
		else
			kv_batch_delete(&b, KV_CF_META, "G", 1);
		assert_int_equal(kv_write(kv, &b, true), 0);
	}
	kv_batch_release(&b);
	kv_close(kv);
}

static void tgi_close(struct tstore_fx *fx)
{
	assert_int_equal(store_close(fx->s), 0);
	fx->s = NULL;
}

/* No GC ended between open and close: the set never knew what was there
 * before the open, so nothing is saved.  And with no saved set (a crash
 * leaves none) the first GC scans everything. */
static void test_store_gc_incr_reopen_without_set(void **state)
{
	struct tstore_fx *fx = *state;
	unsigned char *g;
	size_t glen = 0;
	uint64_t big;

	big = tgi_populate(fx);
	tgi_close(fx);
	tgi_raw_g(fx, TGI_G_GET, &g, &glen);
	assert_null(g);
	assert_int_equal(tstore_fx_open(fx), 0);
	tgi_age_out(fx->s);
	tgi_run(fx->s);
	tgi_churn(fx->s, fx->br, big, 30);
	tgi_close(fx);
	tgi_raw_g(fx, TGI_G_GET, &g, &glen);
	assert_non_null(g); /* saved: a GC had ended */
	free(g);
	tgi_raw_g(fx, TGI_G_DEL, &g, &glen);
	assert_int_equal(tstore_fx_open(fx), 0);
	tgi_after_reopen(fx, big, 30, true);
}

/* A saved set, then an open, writes and a clean close (which saves a
 * newer set): putting the old record back in its place, as an older
 * build that knows nothing of it would leave the store after writing,
 * must not make the next GC trust it. */
static void test_store_gc_incr_reopen_stale_set(void **state)
{
	struct tstore_fx *fx = *state;
	unsigned char *g, *g2;
	size_t glen = 0, g2len = 0;
	uint64_t big;

	big = tgi_populate(fx);
	tgi_age_out(fx->s);
	tgi_run(fx->s);
	tgi_close(fx);
	tgi_raw_g(fx, TGI_G_GET, &g, &glen);
	assert_non_null(g);
	assert_int_equal(tstore_fx_open(fx), 0);
	/* an incremental GC would find these only through the set */
	tgi_churn(fx->s, fx->br, big, 30);
	tgi_close(fx);
	tgi_raw_g(fx, TGI_G_GET, &g2, &g2len);
	assert_non_null(g2);
	assert_true(g2len > glen); /* the newer set holds the churn */
	free(g2);
	tgi_raw_g(fx, TGI_G_PUT, &g, &glen);
	free(g);
	assert_int_equal(tstore_fx_open(fx), 0);
	tgi_after_reopen(fx, big, 30, true);
}

/* A damaged record (garbage in META "G") does not stop the open, and is
 * not trusted: the first GC scans everything. */
static void test_store_gc_incr_reopen_damaged_set(void **state)
{
	struct tstore_fx *fx = *state;
	unsigned char junk[53], *g;
	size_t jlen = sizeof(junk), glen = 0;
	uint64_t big;

	big = tgi_written_after_gc(fx, 30);
	tgi_close(fx);
	memset(junk, 0x5a, sizeof(junk));
	g = junk;
	tgi_raw_g(fx, TGI_G_PUT, &g, &jlen);
	assert_int_equal(tstore_fx_open(fx), 0);
	tgi_after_reopen(fx, big, 30, true);
	tgi_close(fx);
	tgi_raw_g(fx, TGI_G_GET, &g, &glen); /* the GCs saved a new set */
	assert_non_null(g);
	assert_true(memcmp(g, "BGC1", 4) == 0);
	free(g);
	assert_int_equal(tstore_fx_open(fx), 0);
}

static void test_store_gc_incr_after_failed_gc(void **state)
{
	struct tstore_fx *fx = *state;
	struct store_gc_opts o = { .full_compaction = false };
	struct store_gc_stats st;
	unsigned char *g;
	size_t glen = 0;
	uint64_t big;

	big = tgi_written_after_gc(fx, 50);
	tgi_age_out(fx->s);
	/* the GC fails on the 3rd iterator movement: after it took the
	 * objects out of the set */
	kv_fault_arm(fx->fault, KV_FAULT_ITER_MOVE, 3, false, -EIO);
	assert_int_equal(store_gc(fx->s, &o, &st), -EIO);
	assert_int_equal(kv_fault_fired(fx->fault), 1);
	kv_fault_disarm(fx->fault);
	st = tgi_run(fx->s);
	assert_true(st.keys_scanned >= 256 + 64);
	assert_int_equal(st.keys_deleted, 4 * 32 + 4);
	tstore_expect_pat(fx->s, fx->br, big, 53, 0, 32 * BS);
	tstore_expect_pat(fx->s, fx->br, big, 1, 32 * BS, 224 * BS);
	/* the failed GC put back what it had taken: nothing in the set is
	 * left taken, so a clean close saves it */
	tgi_close(fx);
	tgi_raw_g(fx, TGI_G_GET, &g, &glen);
	assert_non_null(g);
	free(g);
	assert_int_equal(tstore_fx_open(fx), 0);
}

/* A GC whose first write (the horizon's) fails, as on a full disk: the
 * whole scan owed to a parent whose child went with its fork point below
 * the horizon stays owed.  It was taken and then dropped with the error,
 * so no later GC, nor one after a clean close (which saved the set as
 * complete), reclaimed the versions only that fork point had kept. */
static void test_store_gc_incr_failed_horizon_keeps_owed_scan(void **state)
{
	struct tstore_fx *fx = *state;
	struct store_gc_opts o = { .full_compaction = false };
	struct store_gc_stats st;
	uint64_t big, c;

	big = tgi_populate(fx);
	tgi_age_out(fx->s);
	tgi_run(fx->s);
	assert_int_equal(store_set_retention(fx->s, 3600), 0);
	c = tstore_branch(fx->s, "c", fx->br);
	tstore_write_pat(fx->s, fx->br, big, 2, 0, 4 * BS);
	tgi_age_out(fx->s);
	/* the horizon passes c's fork point, which keeps state 1 */
	st = tgi_run(fx->s);
	assert_int_equal(st.keys_deleted, 0);
	assert_int_equal(store_branch_delete(fx->s, c), 0);
	kv_fault_arm(fx->fault, KV_FAULT_WRITE, 1, false, -ENOSPC);
	assert_int_equal(store_gc(fx->s, &o, &st), -ENOSPC);
	assert_int_equal(kv_fault_fired(fx->fault), 1);
	kv_fault_disarm(fx->fault);
	st = tgi_run(fx->s);
	/* the 4 blocks of state 1 and their inode version */
	assert_int_equal(st.keys_deleted, 5);
	assert_int_equal(st.branches_scanned_whole, 1);
	tstore_expect_pat(fx->s, fx->br, big, 2, 0, 4 * BS);
	tstore_expect_pat(fx->s, fx->br, big, 1, 4 * BS, 252 * BS);
}

/* A child that wrote some blocks of a file its parent holds truncates it,
 * or punches them: each block is cut by one version, however many levels
 * of the view hold it (GC-3; the fault fixture refuses a batch that puts
 * a block key twice).  Both used to put the blocks both levels hold
 * twice.  No old data comes back when the file grows again, and a GC
 * afterwards keeps every branch reading what it wrote. */
static void test_store_gc_incr_cut_blocks_of_two_levels(void **state)
{
	struct tstore_fx *fx = *state;
	struct store *s = fx->s;
	uint64_t big, c, d;

	big = tstore_mkfile(s, fx->br, fx->root, "big");
	tstore_write_pat(s, fx->br, big, 1, 0, 4 * BS);
	c = tstore_branch(s, "c", fx->br);
	d = tstore_branch(s, "d", fx->br);
	tstore_write_pat(s, c, big, 2, 0, 2 * BS);
	tstore_write_pat(s, d, big, 3, 0, 2 * BS);
	tstore_truncate(s, c, big, 0);
	tstore_truncate(s, c, big, 4 * BS);
	tstore_expect_zero(s, c, big, 0, 4 * BS);
	assert_int_equal(store_punch(s, d, big, 0, 3 * BS, NULL), 0);
	tstore_expect_zero(s, d, big, 0, 3 * BS);
	tstore_expect_pat(s, d, big, 1, 3 * BS, BS);
	tgi_age_out(s);
	tgi_run(s);
	tstore_expect_zero(s, c, big, 0, 4 * BS);
	tstore_expect_zero(s, d, big, 0, 3 * BS);
	tstore_expect_pat(s, d, big, 1, 3 * BS, BS);
	tstore_expect_pat(s, fx->br, big, 1, 0, 4 * BS);
}

static void tgi_expect_written(struct tstore_fx *fx, uint64_t big,
			       uint32_t seed)
{
	int i;

	tstore_expect_pat(fx->s, fx->br, big, seed + 3, 0, 32 * BS);
	tstore_expect_pat(fx->s, fx->br, big, 1, 32 * BS, 224 * BS);
	for (i = 0; i < 64; i++) {
		char name[32];

		snprintf(name, sizeof(name), "small-%d", i);
		tstore_expect_pat(fx->s, fx->br,
				  tstore_lookup(fx->s, fx->br, fx->root, name),
				  (uint32_t)i + 100, 0, BS);
	}
}

/* A failure at the 1st, 2nd ... iterator movement of a GC, until one
 * runs through: the first after the churn is incremental, the ones after
 * a failed one scan everything, and each ends in the object pass.  A
 * seek after a failed movement starts afresh, as in RocksDB: GC's
 * seek_for_prev of an object's next version lost its error that way (the
 * seek after it read on), and GC reported success. */
static void test_store_gc_incr_read_fault_sweep(void **state)
{
	struct tstore_fx *fx = *state;
	struct store_gc_opts o = { .full_compaction = false };
	struct store_gc_stats st;
	unsigned long n, failed = 0;
	uint64_t big;
	int rc;

	kv_fault_seek_resets(fx->fault, true);
	big = tgi_written_after_gc(fx, 50);
	tgi_age_out(fx->s);
	for (n = 1;; n++) {
		kv_fault_arm(fx->fault, KV_FAULT_ITER_MOVE, n, false, -EIO);
		rc = store_gc(fx->s, &o, &st);
		if (kv_fault_fired(fx->fault) == 0) {
			assert_int_equal(rc, 0);
			break;
		}
		if (rc != -EIO)
			fail_msg("the GC whose iterator movement %lu failed returned %d",
				 n, rc);
		failed++;
		if (n % 128 == 0)
			tgi_expect_written(fx, big, 50);
	}
	kv_fault_disarm(fx->fault);
	fprintf(stderr, "%lu GCs failed, at movements 1 to %lu: -EIO each\n",
		failed, n - 1);
	assert_true(failed > 256 + 64);
	tgi_expect_written(fx, big, 50);
	/* the GC that ran through reclaimed the churn's versions */
	st = tgi_run(fx->s);
	assert_int_equal(st.keys_deleted, 0);
}

/* A child made after the last GC's window start and deleted (or reset)
 * before the window passes its fork point: no GC has decided a version
 * of the parent because of it, so the GC after costs the parent no whole
 * scan (it used to scan all of it: a CI job's branch of a large main made
 * every GC read all of main), and still reclaims the parent's versions
 * that only the child's fork point read. */
static void tgi_child_gone_inside_window(struct tstore_fx *fx, bool reset)
{
	struct store *s = fx->s;
	struct store_gc_stats st;
	uint64_t big, c;

	big = tgi_populate(fx);
	tgi_age_out(s);
	st = tgi_run(s); /* a whole scan; the horizon passes the populate */
	assert_int_equal(st.branches_scanned_whole, 1);
	assert_int_equal(store_set_retention(s, 3600), 0);
	c = tstore_branch(s, "c", fx->br); /* reads state 1 */
	tstore_write_pat(s, fx->br, big, 2, 0, 4 * BS);
	if (reset) {
		uint64_t own = tstore_mkfile(s, c, fx->root, "own");

		tstore_write_pat(s, c, own, 3, 0, BS);
	}
	/* inside the window: nothing is decided, nothing goes */
	st = tgi_run(s);
	assert_int_equal(st.keys_deleted, 0);
	tstore_expect_pat(s, c, big, 1, 0, 4 * BS);
	if (reset) {
		assert_int_equal(store_branch_reset(s, c, NULL), 0);
		tstore_expect_pat(s, c, big, 2, 0, 4 * BS);
	} else {
		assert_int_equal(store_branch_delete(s, c), 0);
	}
	tgi_age_out(s);
	st = tgi_run(s);
	/* the 4 blocks of state 1 and the inode version written with them
	 * (and a reset child's own file) go: exactly what a whole scan of
	 * the parent deletes here (5 and 10 keys, checked by making
	 * store_gc_fork_gone always mark the parent) ... */
	assert_int_equal(st.keys_deleted, reset ? 10 : 5);
	/* ... found without a whole scan of the parent's 256 + 64 blocks */
	if (st.keys_scanned >= 64)
		fail_msg("GC after the child went scanned %llu keys",
			 (unsigned long long)st.keys_scanned);
	/* a reset child's own versions are still scanned whole */
	assert_int_equal(st.branches_scanned_whole, reset ? 1 : 0);
	tstore_expect_pat(s, fx->br, big, 2, 0, 4 * BS);
	tstore_expect_pat(s, fx->br, big, 1, 4 * BS, 252 * BS);
	if (reset)
		tstore_expect_pat(s, c, big, 2, 0, 4 * BS);
	st = tgi_run(s);
	assert_int_equal(st.keys_deleted, 0);
}

static void test_store_gc_incr_child_deleted_inside_window(void **state)
{
	tgi_child_gone_inside_window(*state, false);
}

static void test_store_gc_incr_child_reset_inside_window(void **state)
{
	tgi_child_gone_inside_window(*state, true);
}

/* The same with what only the child's fork point kept being an unlinked
 * file and a truncated tail of the parent: once the child is gone, the
 * next GC reclaims the file (inode and blocks) and the cut-off blocks
 * without a whole scan of the parent, exactly as a whole scan does (the
 * counts checked by making store_gc_fork_gone always mark the parent). */
static void test_store_gc_incr_child_deleted_after_unlink(void **state)
{
	struct tstore_fx *fx = *state;
	struct store *s = fx->s;
	struct store_gc_stats st;
	uint64_t big, c;

	big = tgi_populate(fx);
	tgi_age_out(s);
	tgi_run(s);
	assert_int_equal(store_set_retention(s, 3600), 0);
	c = tstore_branch(s, "c", fx->br);
	assert_int_equal(store_unlink(s, fx->br, fx->root, "small-5"), 0);
	tstore_truncate(s, fx->br, big, 128 * BS);
	st = tgi_run(s);
	assert_int_equal(st.keys_deleted, 0);
	tstore_expect_pat(s, c, big, 1, 0, 256 * BS);
	assert_int_equal(store_branch_delete(s, c), 0);
	tgi_age_out(s);
	st = tgi_run(s);
	/* (the 128 cut-off blocks are examined one by one: keys_scanned is
	 * no measure here) */
	assert_int_equal(st.branches_scanned_whole, 0);
	assert_int_equal(st.inodes_reclaimed, 1);
	/* 128 cut-off blocks, small-5's block, inode versions: 133, as a
	 * whole scan (which reads 911 keys here) deletes */
	assert_int_equal(st.keys_deleted, 133);
	assert_int_equal(tstore_lookup_rc(s, fx->br, STORE_SEQ_LATEST,
					  fx->root, "small-5"),
			 -ENOENT);
	assert_int_equal(tstore_size(s, fx->br, big), 128 * BS);
	tstore_expect_pat(s, fx->br, big, 1, 0, 128 * BS);
	st = tgi_run(s);
	assert_int_equal(st.keys_deleted, 0);
}

#define T(f) \
	cmocka_unit_test_setup_teardown(f, tstore_fx_setup, tstore_fx_teardown)

int main(void)
{
	const struct CMUnitTest tests[] = {
		T(test_store_gc_incr_examines_only_written),
		T(test_store_gc_incr_hot_object_across_window),
		T(test_store_gc_incr_child_deleted_inside_window),
		T(test_store_gc_incr_child_reset_inside_window),
		T(test_store_gc_incr_child_deleted_after_unlink),
		T(test_store_gc_incr_reopen_keeps_set),
		T(test_store_gc_incr_reopen_without_set),
		T(test_store_gc_incr_reopen_stale_set),
		T(test_store_gc_incr_reopen_damaged_set),
		cmocka_unit_test_setup_teardown(
			test_store_gc_incr_after_failed_gc,
			tstore_fx_setup_fault, tstore_fx_teardown),
		cmocka_unit_test_setup_teardown(
			test_store_gc_incr_cut_blocks_of_two_levels,
			tstore_fx_setup_fault, tstore_fx_teardown),
		cmocka_unit_test_setup_teardown(
			test_store_gc_incr_failed_horizon_keeps_owed_scan,
			tstore_fx_setup_fault, tstore_fx_teardown),
		cmocka_unit_test_setup_teardown(
			test_store_gc_incr_read_fault_sweep,
			tstore_fx_setup_fault, tstore_fx_teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
