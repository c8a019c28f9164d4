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
 *    inside store_gc, which goes on and reports none dropped;
 *  - GC's whole-compaction trigger still counts a delete that a drop has
 *    already handled.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "tests/fakes/kv_fault.h"
#include "tests/unit/test_store_common.h"
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

int main(void)
{
	setenv("BRANCHFS_JOURNAL_KIB", "1024", 1);
	const struct CMUnitTest tests[] = {
#define T(fn) cmocka_unit_test_setup_teardown(fn, tstore_fx_setup, tstore_fx_teardown)
#define F(fn)                                                                  \
	cmocka_unit_test_setup_teardown(fn, tstore_fx_setup_fault,             \
					tstore_fx_teardown)
		T(test_drop_leaves_no_range_deletions),
		T(test_drop_by_gc),
		T(test_drop_by_gc_after_whole_compaction),
		F(test_drop_one_range_per_gap),
		T(test_drop_notes_survive_close),
		F(test_drop_failure_keeps_notes),
		F(test_drop_gc_failure_keeps_notes),
		T(test_drop_gc_still_counts_the_delete),
#undef F
#undef T
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
