/* SPDX-License-Identifier: MIT */
/*
 * test_store_filter.c - INV-6 of store.c: the per-branch filters that let
 * reads skip ancestry levels must cover every version a branch holds, also
 * after the store is reopened (they are rebuilt from the keys, in a thread
 * of the store after store_open returns: each test reads both before the
 * rebuild is done, without filters, and after, with them).  The
 * entries that drop_names removes at a fork or a reset are written
 * without their directory's attributes, the case that once resurrected a
 * parent's postmaster.pid in a child after a remount.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "test_store_common.h"

static const char *const drop[] = { "postmaster.pid", "postmaster.opts",
				     NULL };

static void test_store_filter_dropped_entry_survives_reopen(void **state)
{
	struct tstore_fx *fx = *state;
	struct store_branch_create_args a;
	struct store_branch_info bi;
	uint64_t pid, keep;

	pid = tstore_mkfile(fx->s, fx->br, fx->root, "postmaster.pid");
	keep = tstore_mkfile(fx->s, fx->br, fx->root, "PG_VERSION");
	tstore_write_pat(fx->s, fx->br, pid, 1, 0, 100);
	tstore_write_pat(fx->s, fx->br, keep, 2, 0, 100);
	a = tstore_args("child", fx->br, STORE_SEQ_LATEST);
	a.drop_names = drop;
	assert_int_equal(store_branch_create(fx->s, &a, &bi), 0);
	assert_int_equal(tstore_lookup_rc(fx->s, bi.id, STORE_SEQ_LATEST,
					  fx->root, "postmaster.pid"),
			 -ENOENT);

	tstore_fx_reopen(fx);
	for (int pass = 0; pass < 2; pass++) {
		if (pass)
			tstore_wait_filters(fx->s);
		assert_int_equal(tstore_lookup_rc(fx->s, bi.id,
						  STORE_SEQ_LATEST, fx->root,
						  "postmaster.pid"),
				 -ENOENT);
		TSTORE_LS_EQ(fx->s, bi.id, STORE_SEQ_LATEST, fx->root,
			     "PG_VERSION");
		assert_int_equal(tstore_lookup(fx->s, bi.id, fx->root,
					       "PG_VERSION"),
				 keep);
		/* The parent keeps its lock file. */
		assert_int_equal(tstore_lookup(fx->s, fx->br, fx->root,
					       "postmaster.pid"),
				 pid);
		tstore_expect_pat(fx->s, bi.id, keep, 2, 0, 100);
	}
}

static void test_store_filter_reset_drop_survives_reopen(void **state)
{
	struct tstore_fx *fx = *state;
	uint64_t child, pid;

	child = tstore_branch(fx->s, "child", fx->br);
	pid = tstore_mkfile(fx->s, fx->br, fx->root, "postmaster.pid");
	assert_true(pid > 0);
	assert_int_equal(store_branch_reset(fx->s, child, drop), 0);
	assert_int_equal(tstore_lookup_rc(fx->s, child, STORE_SEQ_LATEST,
					  fx->root, "postmaster.pid"),
			 -ENOENT);
	tstore_fx_reopen(fx);
	assert_int_equal(tstore_lookup_rc(fx->s, child, STORE_SEQ_LATEST,
					  fx->root, "postmaster.pid"),
			 -ENOENT);
	tstore_wait_filters(fx->s);
	assert_int_equal(tstore_lookup_rc(fx->s, child, STORE_SEQ_LATEST,
					  fx->root, "postmaster.pid"),
			 -ENOENT);
}

static void test_store_filter_every_level_found_after_reopen(void **state)
{
	struct tstore_fx *fx = *state;
	uint64_t br = fx->br, f, ids[12];
	int i;

	f = tstore_mkfile(fx->s, fx->br, fx->root, "f");
	tstore_write_pat(fx->s, fx->br, f, 100, 0, 12 * STORE_BLOCK_SIZE);
	/* Each level overwrites one block and unlinks nothing. */
	for (i = 0; i < 12; i++) {
		char name[16];

		snprintf(name, sizeof(name), "l%d", i);
		br = tstore_branch(fx->s, name, br);
		ids[i] = br;
		tstore_write_pat(fx->s, br, f, (uint32_t)i, (uint64_t)i *
							    STORE_BLOCK_SIZE,
				 STORE_BLOCK_SIZE);
	}
	tstore_fx_reopen(fx);
	for (i = 0; i < 24; i++) {
		int j;

		/* The second pass reads through the rebuilt filters. */
		if (i == 12)
			tstore_wait_filters(fx->s);

		for (j = 0; j < 12; j++) {
			uint32_t want = j <= i % 12 ? (uint32_t)j : 100;

			if (j <= i % 12)
				tstore_expect_pat(fx->s, ids[i % 12], f, want,
						  (uint64_t)j * STORE_BLOCK_SIZE,
						  STORE_BLOCK_SIZE);
		}
	}
}

/* A close while the rebuild runs stops it (ASan: nothing touches a
 * freed filter), and writes made while it runs are found through the
 * filters it leaves. */
static void test_store_filter_rebuild_runs_beside_writes(void **state)
{
	struct tstore_fx *fx = *state;
	struct store_stats st;
	uint64_t child, f, g;
	int i;

	f = tstore_mkfile(fx->s, fx->br, fx->root, "f");
	for (i = 0; i < 64; i++)
		tstore_write_pat(fx->s, fx->br, f, (uint32_t)i,
				 (uint64_t)i * 64 * STORE_BLOCK_SIZE,
				 64 * STORE_BLOCK_SIZE);
	child = tstore_branch(fx->s, "child", fx->br);
	tstore_fx_reopen(fx);
	tstore_fx_reopen(fx); /* closed at once, most likely mid-rebuild */
	/* Written in the child while the rebuild may still run. */
	g = tstore_mkfile(fx->s, child, fx->root, "g");
	tstore_write_pat(fx->s, child, g, 7, 0, 3 * STORE_BLOCK_SIZE);
	tstore_write_pat(fx->s, child, f, 9, 5 * STORE_BLOCK_SIZE,
			 STORE_BLOCK_SIZE);
	tstore_wait_filters(fx->s);
	assert_int_equal(store_stats(fx->s, &st), 0);
	assert_true(st.filters_ready);
	assert_true(st.filters_objects >= 64 * 64);
	tstore_expect_pat(fx->s, child, g, 7, 0, 3 * STORE_BLOCK_SIZE);
	tstore_expect_pat(fx->s, child, f, 9, 5 * STORE_BLOCK_SIZE,
			  STORE_BLOCK_SIZE);
	tstore_expect_pat(fx->s, child, f, 0, 0, 5 * STORE_BLOCK_SIZE);
	tstore_expect_pat(fx->s, child, f, 63, 63 * 64 * STORE_BLOCK_SIZE,
			  64 * STORE_BLOCK_SIZE);
	assert_int_equal(tstore_lookup(fx->s, child, fx->root, "g"), g);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(
			test_store_filter_dropped_entry_survives_reopen,
			tstore_fx_setup, tstore_fx_teardown),
		cmocka_unit_test_setup_teardown(
			test_store_filter_reset_drop_survives_reopen,
			tstore_fx_setup, tstore_fx_teardown),
		cmocka_unit_test_setup_teardown(
			test_store_filter_every_level_found_after_reopen,
			tstore_fx_setup, tstore_fx_teardown),
		cmocka_unit_test_setup_teardown(
			test_store_filter_rebuild_runs_beside_writes,
			tstore_fx_setup, tstore_fx_teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
