/* SPDX-License-Identifier: MIT */
/*
 * test_store_drop.c - cmocka tests of what happens to a deleted branch's
 * keys: store_branch_delete leaves them, unreachable and without a range
 * deletion (which would slow every read that misses until compacted
 * away); GC (store_gc, store_drop_deleted) drops them with a range
 * deletion and a compaction through the last level.  On real RocksDB.
 *
 * What is checked:
 *  - right after the deletes no deletion is in the data families (their
 *    memtables flushed first), and the deleted branches' keys are still
 *    there; after the drop they are gone, and so is every deletion, for
 *    branches with keys of their own and without;
 *  - the same after store_gc, with and without a whole compaction (a
 *    whole compaction leaves the last level as it is);
 *  - live branches around and between the deleted ones read the same;
 *  - deleted ids with no live branch between them make one range (one
 *    compaction per family with keys there), a live branch splits them,
 *    and branches that never wrote cost no compaction at all;
 *  - the notes survive a close (the "D" keys) and are gone after a drop;
 *  - a drop whose compaction fails keeps its notes for the next one, also
 *    inside store_gc, which goes on and reports none dropped; so does one
 *    whose compaction returns 0 but leaves the keys (DROP-1 in store.c),
 *    and its retries add no range deletion;
 *  - GC's whole-compaction trigger still counts a delete that a drop has
 *    already handled;
 *  - a store in which an earlier build deleted branches (a range deletion
 *    per family at each delete, no note) gets one compaction of the whole
 *    store through the last level from the next on-demand GC (not from
 *    the background one), which leaves neither deletion nor key of those
 *    branches, and none after that; a store without such deletes gets
 *    none; a failed one is tried again, and so is one that returned 0
 *    but left the deletions (DROP-2 in store.c);
 *  - the read filters' rebuild at open passes over a deleted branch's
 *    keys in one seek per family.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "tests/fakes/kv_fault.h"
#include "tests/unit/test_store_common.h"
#include "store/kv.h"
#include "store/store_int.h"

#define BS STORE_BLOCK_SIZE

static uint64_t tdrop_deletions(struct store *s)
{
	uint64_t n = UINT64_MAX;

	assert_int_equal(store_data_deletions(s, &n), 0);
	return n;
}

static size_t tdrop_pending(struct store *s)
{
	int64_t since = -1;
	size_t n = store_deleted_pending(s, &since);

	if (n)
		assert_true(since > 0);
	else
		assert_true(since == 0);
	return n;
}

/* n branches of the fixture's root; the odd ones (or all, or none) write
 * a file first.  Their ids go to ids[0..n) when ids is not NULL. */
static void tdrop_churn(struct tstore_fx *fx, const char *prefix, int n,
			int writers, uint64_t *ids)
{
	char name[32];
	int i;

	for (i = 0; i < n; i++) {
		uint64_t c;

		snprintf(name, sizeof(name), "%s%d", prefix, i);
		c = tstore_branch(fx->s, name, fx->br);
		if (writers > 1 || (writers == 1 && i % 2))
			tstore_write_pat(fx->s, c,
					 tstore_mkfile(fx->s, c,
						       tstore_root(fx->s, c),
						       "x"),
					 (uint32_t)i, 0, 3 * BS);
		if (ids)
			ids[i] = c;
		assert_int_equal(store_branch_delete(fx->s, c), 0);
	}
}

static uint64_t tdrop_keys(struct store *s, uint64_t id)
{
	uint64_t n = UINT64_MAX;

	assert_int_equal(store_branch_keys(s, id, &n), 0);
	return n;
}

static void test_drop_leaves_no_range_deletions(void **state)
{
	struct tstore_fx *fx = *state;
	struct store *s = fx->s;
	uint64_t base, keep, kf, ids[40];
	size_t dropped = 0;
	int i;

	base = tstore_mkfile(s, fx->br, fx->root, "base");
	tstore_write_pat(s, fx->br, base, 1, 0, 16 * BS);
	tdrop_churn(fx, "a", 20, 1, ids);
	keep = tstore_branch(s, "keep", fx->br);
	kf = tstore_mkfile(s, keep, tstore_root(s, keep), "k");
	tstore_write_pat(s, keep, kf, 7, 0, 4 * BS);
	tdrop_churn(fx, "b", 20, 1, ids + 20);
	assert_int_equal(tdrop_pending(s), 40);
	/* no range deletion yet: reads that miss pay nothing for them */
	assert_int_equal(tdrop_deletions(s), 0);
	assert_true(tdrop_keys(s, ids[1]) > 0);
	assert_int_equal(tdrop_keys(s, ids[0]), 0);

	assert_int_equal(store_drop_deleted(s, &dropped), 0);
	assert_int_equal(dropped, 40);
	assert_int_equal(tdrop_pending(s), 0);
	assert_int_equal(tdrop_deletions(s), 0);
	for (i = 0; i < 40; i++)
		assert_int_equal(tdrop_keys(s, ids[i]), 0);
	assert_true(tdrop_keys(s, keep) > 0);
	tstore_expect_pat(s, fx->br, base, 1, 0, 16 * BS);
	tstore_expect_pat(s, keep, kf, 7, 0, 4 * BS);
	tstore_expect_pat(s, keep, tstore_lookup(s, keep, tstore_root(s, keep),
						 "base"),
			  1, 0, 16 * BS);
	/* nothing left to do */
	assert_int_equal(store_drop_deleted(s, &dropped), 0);
	assert_int_equal(dropped, 0);
}

static void tdrop_gc(struct tstore_fx *fx, bool full)
{
	struct store_gc_opts o = { .full_compaction = full };
	struct store_gc_stats st;
	uint64_t base, ids[30];
	int i;

	base = tstore_mkfile(fx->s, fx->br, fx->root, "base");
	tstore_write_pat(fx->s, fx->br, base, 1, 0, 16 * BS);
	tdrop_churn(fx, "a", 30, 1, ids);
	assert_int_equal(store_gc(fx->s, &o, &st), 0);
	assert_int_equal(st.compacted, full);
	assert_int_equal(tdrop_pending(fx->s), 0);
	assert_int_equal(tdrop_deletions(fx->s), 0);
	for (i = 0; i < 30; i++)
		assert_int_equal(tdrop_keys(fx->s, ids[i]), 0);
	tstore_expect_pat(fx->s, fx->br, base, 1, 0, 16 * BS);
}

static void test_drop_by_gc(void **state)
{
	tdrop_gc(*state, false);
}

static void test_drop_by_gc_after_whole_compaction(void **state)
{
	tdrop_gc(*state, true);
}

static void test_drop_one_range_per_gap(void **state)
{
	struct tstore_fx *fx = *state;
	struct store *s = fx->s;
	unsigned long c0;
	uint64_t keep;

	tdrop_churn(fx, "a", 5, 2, NULL);
	keep = tstore_branch(s, "keep", fx->br);
	tdrop_churn(fx, "b", 3, 2, NULL);
	c0 = kv_fault_calls(fx->fault, KV_FAULT_COMPACT);
	assert_int_equal(store_drop_deleted(s, NULL), 0);
	/* two ranges (a0-a4, b0-b2), three families with keys each */
	assert_int_equal(kv_fault_calls(fx->fault, KV_FAULT_COMPACT) - c0, 6);

	/* once keep is gone too, its id joins the ranges around it */
	assert_int_equal(store_branch_delete(s, keep), 0);
	tdrop_churn(fx, "c", 4, 2, NULL);
	c0 = kv_fault_calls(fx->fault, KV_FAULT_COMPACT);
	assert_int_equal(store_drop_deleted(s, NULL), 0);
	assert_int_equal(kv_fault_calls(fx->fault, KV_FAULT_COMPACT) - c0, 3);
	assert_int_equal(tdrop_deletions(s), 0);

	/* branches that never wrote: no compaction at all */
	tdrop_churn(fx, "d", 10, 0, NULL);
	c0 = kv_fault_calls(fx->fault, KV_FAULT_COMPACT);
	assert_int_equal(store_drop_deleted(s, NULL), 0);
	assert_int_equal(kv_fault_calls(fx->fault, KV_FAULT_COMPACT) - c0, 0);
	assert_int_equal(tdrop_pending(s), 0);
}

static void test_drop_notes_survive_close(void **state)
{
	struct tstore_fx *fx = *state;
	size_t dropped = 0;
	uint64_t ids[3];

	tdrop_churn(fx, "a", 3, 2, ids);
	tstore_fx_reopen(fx);
	assert_int_equal(tdrop_pending(fx->s), 3);
	assert_true(tdrop_keys(fx->s, ids[2]) > 0);
	assert_int_equal(store_drop_deleted(fx->s, &dropped), 0);
	assert_int_equal(dropped, 3);
	assert_int_equal(tdrop_keys(fx->s, ids[2]), 0);
	assert_int_equal(tdrop_deletions(fx->s), 0);
	tstore_fx_reopen(fx);
	assert_int_equal(tdrop_pending(fx->s), 0);
}

static void test_drop_failure_keeps_notes(void **state)
{
	struct tstore_fx *fx = *state;
	size_t dropped = 99;

	tdrop_churn(fx, "a", 4, 2, NULL);
	kv_fault_arm(fx->fault, KV_FAULT_COMPACT, 2, false, -EIO);
	assert_int_equal(store_drop_deleted(fx->s, &dropped), -EIO);
	assert_int_equal(dropped, 0);
	assert_int_equal(tdrop_pending(fx->s), 4);
	kv_fault_disarm(fx->fault);
	assert_int_equal(store_drop_deleted(fx->s, &dropped), 0);
	assert_int_equal(dropped, 4);
	assert_int_equal(tdrop_pending(fx->s), 0);
	assert_int_equal(tdrop_deletions(fx->s), 0);
}

static void test_drop_gc_failure_keeps_notes(void **state)
{
	struct tstore_fx *fx = *state;
	struct store_gc_opts o = { .full_compaction = false };
	struct store_gc_stats st;
	uint64_t ids[4];
	int i;

	tdrop_churn(fx, "a", 4, 2, ids);
	kv_fault_arm(fx->fault, KV_FAULT_COMPACT, 1, false, -EIO);
	/* GC itself goes on; the deleted branches wait for the next one */
	assert_int_equal(store_gc(fx->s, &o, &st), 0);
	assert_int_equal(kv_fault_fired(fx->fault), 1);
	assert_int_equal(st.branches_dropped, 0);
	assert_int_equal(tdrop_pending(fx->s), 4);
	kv_fault_disarm(fx->fault);
	assert_int_equal(store_gc(fx->s, &o, &st), 0);
	assert_int_equal(st.branches_dropped, 4);
	assert_int_equal(tdrop_pending(fx->s), 0);
	assert_int_equal(tdrop_deletions(fx->s), 0);
	for (i = 0; i < 4; i++)
		assert_int_equal(tdrop_keys(fx->s, ids[i]), 0);
}

/* A compaction that returns 0 but leaves the keys, as RocksDB's does when
 * it fails on a full disk or skips the work after a background error (its
 * C API returns nothing): the notes stay, GC says the branches wait, a
 * retry writes no second range deletion, and once compactions work the
 * next GC drops them.  (The build before DROP-1 forgot the notes at the
 * first try: dropped 4, none pending, and the keys stayed for good.) */
static void test_drop_compaction_that_did_nothing(void **state)
{
	struct tstore_fx *fx = *state;
	struct store_gc_opts o = { .full_compaction = false };
	struct store_gc_stats st;
	size_t dropped = 99;
	uint64_t ids[4];
	int i;

	tdrop_churn(fx, "a", 4, 2, ids);
	/* their keys in table files, not in the memtable (whose flush
	 * would drop what a range deletion beside them covers) */
	assert_int_equal(tdrop_deletions(fx->s), 0);
	kv_fault_arm(fx->fault, KV_FAULT_COMPACT | KV_FAULT_DROP_FILES, 1, true,
		     KV_FAULT_NOOP);
	assert_int_equal(store_drop_deleted(fx->s, &dropped), 0);
	assert_true(kv_fault_fired(fx->fault) >= 3);
	assert_int_equal(dropped, 0);
	assert_int_equal(tdrop_pending(fx->s), 4);
	for (i = 0; i < 4; i++)
		assert_true(tdrop_keys(fx->s, ids[i]) > 0);
	/* one range deletion per family (flushed: a flush keeps one of
	 * equal ones in the memtable, but not of those in other files) */
	assert_int_equal(tdrop_deletions(fx->s), 3);
	assert_int_equal(store_gc(fx->s, &o, &st), 0);
	assert_int_equal(st.branches_dropped, 0);
	assert_int_equal(st.branches_pending, 4);
	assert_false(st.drop_no_room);
	assert_int_equal(tdrop_pending(fx->s), 4);
	/* the retry wrote none */
	assert_int_equal(tdrop_deletions(fx->s), 3);
	assert_true(tdrop_keys(fx->s, ids[1]) > 0);

	kv_fault_disarm(fx->fault);
	assert_int_equal(store_gc(fx->s, &o, &st), 0);
	assert_int_equal(st.branches_dropped, 4);
	assert_int_equal(st.branches_pending, 0);
	assert_int_equal(tdrop_pending(fx->s), 0);
	assert_int_equal(tdrop_deletions(fx->s), 0);
	for (i = 0; i < 4; i++)
		assert_int_equal(tdrop_keys(fx->s, ids[i]), 0);
	/* and the notes are gone on disk too */
	tstore_fx_reopen(fx);
	assert_int_equal(tdrop_pending(fx->s), 0);
}

static void test_drop_gc_still_counts_the_delete(void **state)
{
	struct tstore_fx *fx = *state;
	struct store_gc_opts o = { .full_compaction = true };
	struct store_gc_stats st;

	tdrop_churn(fx, "a", 1, 2, NULL);
	assert_int_equal(store_drop_deleted(fx->s, NULL), 0);
	assert_int_equal(tdrop_pending(fx->s), 0);
	assert_int_equal(store_gc(fx->s, &o, &st), 0);
	assert_true(st.compacted);
}

static void tdrop_put64(unsigned char *p, uint64_t v)
{
	int i;

	for (i = 7; i >= 0; i--, v >>= 8)
		p[i] = (unsigned char)v;
}

/* What a build before the deleted-branch notes did to delete branches
 * ids[0..n): the branch record out and a range deletion per data family,
 * with no note; such a build never wrote META "R" either.  On the closed
 * store's database, which is then opened again. */
static void tdrop_legacy_delete(struct tstore_fx *fx, const uint64_t *ids,
				int n)
{
	unsigned char k[9], lo[8], hi[8];
	struct store_config cfg;
	struct kv_batch b;
	struct kv *kv;
	char path[128];
	int i, cf;

	assert_int_equal(store_close(fx->s), 0);
	fx->s = NULL;
	tstore_config(&cfg, false, NULL);
	snprintf(path, sizeof(path), "%s/db", fx->dir);
	assert_int_equal(
		kv_rocksdb_open(path, false, 8u << 20, 0, &cfg.log, &kv), 0);
	kv_batch_init(&b);
	kv_batch_delete(&b, KV_CF_META, "R", 1);
	for (i = 0; i < n; i++) {
		tdrop_put64(k + 1, ids[i]);
		k[0] = 'B';
		kv_batch_delete(&b, KV_CF_META, k, 9);
		k[0] = 'W';
		kv_batch_delete(&b, KV_CF_META, k, 9);
		tdrop_put64(lo, ids[i]);
		tdrop_put64(hi, ids[i] + 1);
		for (cf = KV_CF_INODE; cf < KV_CF_COUNT; cf++)
			kv_batch_delete_range(&b, cf, lo, 8, hi, 8);
	}
	assert_int_equal(kv_write(kv, &b, true), 0);
	kv_batch_release(&b);
	kv_close(kv);
	assert_int_equal(tstore_fx_open(fx), 0);
}

/* n branches of the fixture's root, kept; every other one writes. */
static void tdrop_make(struct tstore_fx *fx, const char *prefix, int n,
		       uint64_t *ids)
{
	char name[32];
	int i;

	for (i = 0; i < n; i++) {
		snprintf(name, sizeof(name), "%s%d", prefix, i);
		ids[i] = tstore_branch(fx->s, name, fx->br);
		if (i % 2)
			tstore_write_pat(
				fx->s, ids[i],
				tstore_mkfile(fx->s, ids[i],
					      tstore_root(fx->s, ids[i]), "x"),
				(uint32_t)i, 0, 3 * BS);
	}
}

/* One GC: in the background (on_demand false) or by branchctl gc. */
static void tdrop_gc_once(struct store *s, bool on_demand, bool compacted)
{
	struct store_gc_opts o = { .full_compaction = on_demand };
	struct store_gc_stats st;

	assert_int_equal(store_gc(s, &o, &st), 0);
	assert_int_equal(st.compacted, compacted);
}

static void test_drop_legacy_range_deletions(void **state)
{
	struct tstore_fx *fx = *state;
	uint64_t base, keep, kf, ids[20];
	int i;

	base = tstore_mkfile(fx->s, fx->br, fx->root, "base");
	tstore_write_pat(fx->s, fx->br, base, 1, 0, 16 * BS);
	tdrop_make(fx, "a", 10, ids);
	keep = tstore_branch(fx->s, "keep", fx->br);
	kf = tstore_mkfile(fx->s, keep, tstore_root(fx->s, keep), "k");
	tstore_write_pat(fx->s, keep, kf, 7, 0, 4 * BS);
	tdrop_make(fx, "b", 10, ids + 10);
	tdrop_legacy_delete(fx, ids, 20);
	/* no note: nothing for the drop, and the deletions stay */
	assert_int_equal(tdrop_pending(fx->s), 0);
	assert_true(tdrop_deletions(fx->s) >= 20 * 3);
	assert_int_equal(tstore_lookup_rc(fx->s, fx->br, STORE_SEQ_LATEST,
					  fx->root, "nope"),
			 -ENOENT);

	/* not in the background (a store of 2026-12-05's builds looks the
	 * same, without such deletions) ... */
	tdrop_gc_once(fx->s, false, false);
	assert_true(tdrop_deletions(fx->s) >= 20 * 3);
	/* ... but in the next on-demand GC */
	tdrop_gc_once(fx->s, true, true);
	assert_int_equal(tdrop_deletions(fx->s), 0);
	for (i = 0; i < 20; i++)
		assert_int_equal(tdrop_keys(fx->s, ids[i]), 0);
	assert_true(tdrop_keys(fx->s, keep) > 0);
	tstore_expect_pat(fx->s, fx->br, base, 1, 0, 16 * BS);
	tstore_expect_pat(fx->s, keep, kf, 7, 0, 4 * BS);
	tdrop_gc_once(fx->s, true, false);
	/* and never again, also after a reopen */
	tstore_fx_reopen(fx);
	tdrop_gc_once(fx->s, true, false);
	tstore_expect_pat(fx->s, keep, kf, 7, 0, 4 * BS);
}

static uint64_t tdrop_filter_objects(struct tstore_fx *fx)
{
	struct store_stats st;

	tstore_fx_reopen(fx);
	tstore_wait_filters(fx->s);
	assert_int_equal(store_stats(fx->s, &st), 0);
	return st.filters_objects;
}

/* The read filters' rebuild at open passes over a deleted branch's keys
 * (there until GC drops them; after a drop that failed half-way, also
 * those under its range deletions, which iterators show: kv.h) in one
 * seek per family, not one per object. */
static void test_drop_filters_skip_deleted_branch(void **state)
{
	struct tstore_fx *fx = *state;
	uint64_t before, c;
	int i;

	before = tdrop_filter_objects(fx);
	c = tstore_branch(fx->s, "gone", fx->br);
	for (i = 0; i < 50; i++) {
		char name[32];

		snprintf(name, sizeof(name), "f%d", i);
		tstore_write_pat(fx->s, c,
				 tstore_mkfile(fx->s, c, tstore_root(fx->s, c),
					       name),
				 (uint32_t)i, 0, 2 * BS);
	}
	assert_int_equal(store_branch_delete(fx->s, c), 0);
	assert_true(tdrop_keys(fx->s, c) >= 50 + 2 * 50);
	/* inodes, entries, blocks: one look each */
	assert_int_equal(tdrop_filter_objects(fx), before + 3);
}

static void test_drop_no_legacy_no_compaction(void **state)
{
	struct tstore_fx *fx = *state;
	uint64_t ids[4];

	/* a store of an earlier build that never deleted a branch */
	tdrop_make(fx, "b", 2, ids);
	tdrop_legacy_delete(fx, ids, 0);
	tdrop_gc_once(fx->s, true, false);
	tstore_fx_reopen(fx);
	tdrop_gc_once(fx->s, true, false);
	/* this build's deletes, noted, dropped and forgotten */
	tdrop_churn(fx, "a", 4, 2, ids);
	tstore_fx_reopen(fx);
	tdrop_gc_once(fx->s, true, false);
	assert_int_equal(tdrop_deletions(fx->s), 0);
	tstore_fx_reopen(fx);
	tdrop_gc_once(fx->s, true, false);
}

static void test_drop_legacy_failure_retried(void **state)
{
	struct tstore_fx *fx = *state;
	uint64_t ids[4];

	tdrop_make(fx, "a", 4, ids);
	tdrop_legacy_delete(fx, ids, 4);
	assert_true(tdrop_deletions(fx->s) > 0);
	kv_fault_arm(fx->fault, KV_FAULT_COMPACT, 1, false, -EIO);
	tdrop_gc_once(fx->s, true, false);
	assert_int_equal(kv_fault_fired(fx->fault), 1);
	kv_fault_disarm(fx->fault);
	assert_true(tdrop_deletions(fx->s) > 0);
	tdrop_gc_once(fx->s, true, true);
	assert_int_equal(tdrop_deletions(fx->s), 0);
	assert_int_equal(tdrop_keys(fx->s, ids[1]), 0);
}

/* DROP-2: the compaction for an earlier build's range deletions did
 * nothing, as RocksDB's does after a background error (its C API returns
 * as if it ran: the fault KV's no-op): not done, META "R" not written, and
 * the next on-demand GC, also after a reopen, compacts again and leaves
 * neither deletion nor key.  (Before: "R" went in at the first try and no
 * GC compacted again: the deletions stayed for good.) */
static void test_drop_legacy_compaction_that_did_nothing(void **state)
{
	struct tstore_fx *fx = *state;
	uint64_t ids[4], n;

	tdrop_make(fx, "a", 4, ids);
	tdrop_legacy_delete(fx, ids, 4);
	n = tdrop_deletions(fx->s);
	assert_true(n > 0);
	kv_fault_arm(fx->fault, KV_FAULT_COMPACT, 1, true, KV_FAULT_NOOP);
	tdrop_gc_once(fx->s, true, false);
	assert_true(kv_fault_fired(fx->fault) >= 3);
	kv_fault_disarm(fx->fault);
	assert_int_equal(tdrop_deletions(fx->s), n);
	tstore_fx_reopen(fx);
	tdrop_gc_once(fx->s, true, true);
	assert_int_equal(tdrop_deletions(fx->s), 0);
	assert_int_equal(tdrop_keys(fx->s, ids[1]), 0);
	tdrop_gc_once(fx->s, true, false);
}

int main(void)
{
	setenv("BRANCHFS_JOURNAL_KIB", "1024", 1);
	const struct CMUnitTest tests[] = {
#define T(fn) \
	cmocka_unit_test_setup_teardown(fn, tstore_fx_setup, tstore_fx_teardown)
#define F(fn)                                                      \
	cmocka_unit_test_setup_teardown(fn, tstore_fx_setup_fault, \
					tstore_fx_teardown)
		T(test_drop_leaves_no_range_deletions),
		T(test_drop_by_gc),
		T(test_drop_by_gc_after_whole_compaction),
		F(test_drop_one_range_per_gap),
		T(test_drop_notes_survive_close),
		F(test_drop_failure_keeps_notes),
		F(test_drop_gc_failure_keeps_notes),
		F(test_drop_compaction_that_did_nothing),
		T(test_drop_gc_still_counts_the_delete),
		T(test_drop_legacy_range_deletions),
		T(test_drop_filters_skip_deleted_branch),
		T(test_drop_no_legacy_no_compaction),
		F(test_drop_legacy_failure_retried),
		F(test_drop_legacy_compaction_that_did_nothing),
#undef F
#undef T
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
