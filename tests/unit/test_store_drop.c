/* SPDX-License-Identifier: MIT */
/*
 * test_store_drop.c - cmocka tests of what happens to a deleted branch's
 * keys after store_branch_delete: its range deletions are compacted away
 * through the last level (store_drop_deleted, and every store_gc), on real
 * RocksDB.
 *
 * What is checked:
 *  - after the drop no deletion is left in the data families' files
 *    (store_data_deletions flushes the memtables first, so none can hide
 *    there either), for branches with keys of their own and without;
 *  - the same after store_gc, with and without a whole compaction (a
 *    whole compaction leaves the last level as it is);
 *  - live branches around and between the deleted ones read the same;
 *  - deleted ids with no live branch between them make one range (one
 *    compaction per family), a live branch splits them;
 *  - the notes survive a close (the "D" keys) and are gone after a drop;
 *  - a drop whose compaction fails keeps its notes for the next one;
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

/* n branches of the fixture's root; the odd ones write a file first. */
static void tdrop_make_and_delete(struct tstore_fx *fx, const char *prefix,
				  int n)
{
	char name[32];
	int i;

	for (i = 0; i < n; i++) {
		uint64_t c;

		snprintf(name, sizeof(name), "%s%d", prefix, i);
		c = tstore_branch(fx->s, name, fx->br);
		if (i % 2)
			tstore_write_pat(fx->s, c,
					 tstore_mkfile(fx->s, c,
						       tstore_root(fx->s, c),
						       "x"),
					 (uint32_t)i, 0, 3 * BS);
		assert_int_equal(store_branch_delete(fx->s, c), 0);
	}
}

static void test_drop_leaves_no_range_deletions(void **state)
{
	struct tstore_fx *fx = *state;
	struct store *s = fx->s;
	uint64_t base, keep, kf;
	size_t dropped = 0;

	base = tstore_mkfile(s, fx->br, fx->root, "base");
	tstore_write_pat(s, fx->br, base, 1, 0, 16 * BS);
	tdrop_make_and_delete(fx, "a", 20);
	keep = tstore_branch(s, "keep", fx->br);
	kf = tstore_mkfile(s, keep, tstore_root(s, keep), "k");
	tstore_write_pat(s, keep, kf, 7, 0, 4 * BS);
	tdrop_make_and_delete(fx, "b", 20);
	assert_int_equal(tdrop_pending(s), 40);
	/* each delete left a range deletion per family */
	assert_true(tdrop_deletions(s) >= 40);

	assert_int_equal(store_drop_deleted(s, &dropped), 0);
	assert_int_equal(dropped, 40);
	assert_int_equal(tdrop_pending(s), 0);
	assert_int_equal(tdrop_deletions(s), 0);
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
	uint64_t base;

	base = tstore_mkfile(fx->s, fx->br, fx->root, "base");
	tstore_write_pat(fx->s, fx->br, base, 1, 0, 16 * BS);
	tdrop_make_and_delete(fx, "a", 30);
	assert_int_equal(store_gc(fx->s, &o, &st), 0);
	assert_int_equal(st.compacted, full);
	assert_int_equal(tdrop_pending(fx->s), 0);
	assert_int_equal(tdrop_deletions(fx->s), 0);
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

	tdrop_make_and_delete(fx, "a", 5);
	keep = tstore_branch(s, "keep", fx->br);
	tdrop_make_and_delete(fx, "b", 3);
	c0 = kv_fault_calls(fx->fault, KV_FAULT_COMPACT);
	assert_int_equal(store_drop_deleted(s, NULL), 0);
	/* two ranges (a0-a4, b0-b2), three families each */
	assert_int_equal(kv_fault_calls(fx->fault, KV_FAULT_COMPACT) - c0, 6);

	/* once keep is gone too, its id joins the ranges around it */
	assert_int_equal(store_branch_delete(s, keep), 0);
	tdrop_make_and_delete(fx, "c", 4);
	c0 = kv_fault_calls(fx->fault, KV_FAULT_COMPACT);
	assert_int_equal(store_drop_deleted(s, NULL), 0);
	assert_int_equal(kv_fault_calls(fx->fault, KV_FAULT_COMPACT) - c0, 3);
	assert_int_equal(tdrop_deletions(s), 0);
}

static void test_drop_notes_survive_close(void **state)
{
	struct tstore_fx *fx = *state;
	size_t dropped = 0;

	tdrop_make_and_delete(fx, "a", 3);
	tstore_fx_reopen(fx);
	assert_int_equal(tdrop_pending(fx->s), 3);
	assert_int_equal(store_drop_deleted(fx->s, &dropped), 0);
	assert_int_equal(dropped, 3);
	assert_int_equal(tdrop_deletions(fx->s), 0);
	tstore_fx_reopen(fx);
	assert_int_equal(tdrop_pending(fx->s), 0);
}

static void test_drop_failure_keeps_notes(void **state)
{
	struct tstore_fx *fx = *state;
	size_t dropped = 99;

	tdrop_make_and_delete(fx, "a", 4);
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

static void test_drop_gc_still_counts_the_delete(void **state)
{
	struct tstore_fx *fx = *state;
	struct store_gc_opts o = { .full_compaction = true };
	struct store_gc_stats st;

	tdrop_make_and_delete(fx, "a", 1);
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
		T(test_drop_gc_still_counts_the_delete),
#undef F
#undef T
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
