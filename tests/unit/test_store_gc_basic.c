/* SPDX-License-Identifier: MIT */
/*
 * test_store_gc.c - cmocka tests of retention and garbage collection on
 * real RocksDB: after store_gc() with a short retention window, every
 * branch head, every child's fork point (also of a branch made at a past
 * seq), and every file a child still links (though its parent unlinked it)
 * read exactly as before, also after a reopen; versions outside the window
 * are refused with -ERANGE; open unlinked files survive while in_use says
 * so; a reset branch does not get its old changes back.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "tests/unit/test_store_common.h"

#define BS STORE_BLOCK_SIZE

struct tstore_gc_tree {
	uint64_t f, g, d, x;
	uint64_t c1, g1, c2;
	uint64_t s_mid;
};

static void tstore_gc_build(struct tstore_fx *fx, struct tstore_gc_tree *t)
{
	struct store *s = fx->s;
	uint32_t i;

	t->f = tstore_mkfile(s, fx->br, fx->root, "f");
	tstore_write_pat(s, fx->br, t->f, 1, 0, 3 * BS);
	t->g = tstore_mkfile(s, fx->br, fx->root, "g");
	tstore_write_pat(s, fx->br, t->g, 2, 0, 2 * BS + 9);
	t->d = tstore_mkdir(s, fx->br, fx->root, "d");
	t->x = tstore_mkfile(s, fx->br, t->d, "x");
	tstore_write_pat(s, fx->br, t->x, 3, 0, 100);
	for (i = 10; i <= 20; i++)
		tstore_write_pat(s, fx->br, t->f, i, 0, BS);
	t->s_mid = store_seq_now(s);
	for (i = 21; i <= 25; i++)
		tstore_write_pat(s, fx->br, t->f, i, 0, BS);
	t->c1 = tstore_branch(s, "c1", fx->br);
	/* root moves on: overwrites, shrink, unlinks */
	for (i = 30; i <= 40; i++)
		tstore_write_pat(s, fx->br, t->f, i, 0, BS);
	tstore_truncate(s, fx->br, t->f, BS);
	assert_int_equal(store_unlink(s, fx->br, fx->root, "g"), 0);
	assert_int_equal(store_unlink(s, fx->br, t->d, "x"), 0);
	t->g1 = tstore_branch(s, "g1", t->c1);
	for (i = 50; i <= 55; i++)
		tstore_write_pat(s, t->c1, t->f, i, BS, BS);
	t->c2 = tstore_branch_at(s, "c2", fx->br, t->s_mid);
	/* a branch that comes and goes */
	{
		uint64_t del = tstore_branch(s, "del", fx->br);

		tstore_write_pat(s, del, t->f, 60, 0, 3 * BS);
		tstore_mkfile(s, del, fx->root, "delfile");
		assert_int_equal(store_branch_delete(s, del), 0);
	}
}

static void tstore_gc_verify(struct store *s, struct tstore_fx *fx,
			     const struct tstore_gc_tree *t)
{
	/* root head */
	TSTORE_LS_EQ(s, fx->br, STORE_SEQ_LATEST, fx->root, "d,f");
	TSTORE_LS_EQ(s, fx->br, STORE_SEQ_LATEST, t->d, "");
	assert_int_equal(tstore_size(s, fx->br, t->f), BS);
	tstore_expect_pat(s, fx->br, t->f, 40, 0, BS);
	/* c1: root at its fork, plus its own later writes */
	TSTORE_LS_EQ(s, t->c1, STORE_SEQ_LATEST, fx->root, "d,f,g");
	TSTORE_LS_EQ(s, t->c1, STORE_SEQ_LATEST, t->d, "x");
	assert_int_equal(tstore_size(s, t->c1, t->f), 3 * BS);
	tstore_expect_pat(s, t->c1, t->f, 25, 0, BS);
	tstore_expect_pat(s, t->c1, t->f, 55, BS, BS);
	tstore_expect_pat(s, t->c1, t->f, 1, 2 * BS, BS);
	tstore_expect_pat(s, t->c1, t->g, 2, 0, 2 * BS + 9);
	tstore_expect_pat(s, t->c1, t->x, 3, 0, 100);
	/* g1: c1 before c1's own writes */
	TSTORE_LS_EQ(s, t->g1, STORE_SEQ_LATEST, fx->root, "d,f,g");
	tstore_expect_pat(s, t->g1, t->f, 25, 0, BS);
	tstore_expect_pat(s, t->g1, t->f, 1, BS, 2 * BS);
	tstore_expect_pat(s, t->g1, t->g, 2, 0, 2 * BS + 9);
	/* c2: root at s_mid */
	TSTORE_LS_EQ(s, t->c2, STORE_SEQ_LATEST, fx->root, "d,f,g");
	tstore_expect_pat(s, t->c2, t->f, 20, 0, BS);
	tstore_expect_pat(s, t->c2, t->f, 1, BS, 2 * BS);
	tstore_expect_pat(s, t->c2, t->x, 3, 0, 100);
}

static void test_store_gc_keeps_heads_and_fork_points(void **state)
{
	struct tstore_fx *fx = *state;
	struct store_gc_opts opts = { .full_compaction = true };
	struct store_gc_stats st;
	struct tstore_gc_tree t;
	uint64_t old_seq, sq;
	int64_t before_gc;

	tstore_gc_build(fx, &t);
	tstore_gc_verify(fx->s, fx, &t);
	old_seq = t.s_mid;

	assert_int_equal(store_set_retention(fx->s, 1), 0);
	assert_int_equal(store_get_retention(fx->s), 1);
	tstore_sleep_ms(1500);
	before_gc = tstore_now_ns();
	memset(&st, 0, sizeof(st));
	assert_int_equal(store_gc(fx->s, &opts, &st), 0);
	fprintf(stderr, "  gc: scanned %llu, deleted %llu keys\n",
		(unsigned long long)st.keys_scanned,
		(unsigned long long)st.keys_deleted);
	assert_true(st.keys_scanned > 0);
	assert_true(st.keys_deleted > 0); /* shadowed overwrites of f */
	assert_true(st.horizon_ns > 0);
	assert_true(st.horizon_ns <= before_gc - 1000000000ll + 100000000ll);
	assert_true(store_oldest_time(fx->s) >= st.horizon_ns);

	tstore_gc_verify(fx->s, fx, &t);
	/* the past outside the window is refused, not wrong */
	{
		struct store_branch_create_args a =
			tstore_args("old", fx->br, old_seq);
		struct store_branch_info bi;
		unsigned char b[16];

		assert_int_equal(store_branch_create(fx->s, &a, &bi), -ERANGE);
		assert_int_equal(store_read(fx->s, fx->br, old_seq, t.f, b,
					    sizeof(b), 0),
				 -ERANGE);
		assert_int_equal(store_seq_at_time(fx->s, st.horizon_ns -
								 1000000000ll,
						   &sq),
				 -ERANGE);
	}
	/* a second GC is harmless */
	assert_int_equal(store_gc(fx->s, NULL, NULL), 0);
	tstore_gc_verify(fx->s, fx, &t);
	tstore_fx_reopen(fx);
	tstore_gc_verify(fx->s, fx, &t);
	/* the store keeps working: new forks, writes */
	{
		uint64_t c3 = tstore_branch(fx->s, "c3", t.c1);

		tstore_write_pat(fx->s, c3, t.f, 70, 0, 10);
		tstore_expect_pat(fx->s, c3, t.f, 25, 10, BS - 10);
		tstore_expect_pat(fx->s, t.c1, t.f, 25, 0, BS);
	}
}

/* Moments inside the window stay readable and branchable after a GC. */
static void test_store_gc_keeps_window(void **state)
{
	struct tstore_fx *fx = *state;
	struct store *s = fx->s;
	uint64_t f, seq[5], c;
	int i;

	f = tstore_mkfile(s, fx->br, fx->root, "f");
	assert_int_equal(store_set_retention(s, 3), 0);
	for (i = 0; i < 5; i++) {
		tstore_write_pat(s, fx->br, f, 100 + (uint32_t)i, 0, BS + 1);
		seq[i] = store_seq_now(s);
		if (i == 0)
			tstore_sleep_ms(3500); /* seq[0] leaves the window */
	}
	assert_int_equal(store_gc(s, NULL, NULL), 0);
	for (i = 1; i < 5; i++)
		tstore_expect_pat_at(s, fx->br, seq[i], f, 100 + (uint32_t)i, 0,
				     BS + 1);
	/* seq[0] is the state at the horizon: still the newest version at or
	 * below it, so it may be kept; anything it returns must be right */
	{
		unsigned char b[BS];
		ssize_t n = store_read(s, fx->br, seq[0], f, b, sizeof(b), 0);

		assert_true(n == -ERANGE || n == (ssize_t)sizeof(b));
		if (n > 0)
			tstore_expect_pat_at(s, fx->br, seq[0], f, 100, 0, BS);
	}
	c = tstore_branch_at(s, "mid", fx->br, seq[2]);
	tstore_expect_pat(s, c, f, 102, 0, BS + 1);
}

static bool tstore_gc_in_use_yes(void *ctx, uint64_t branch, uint64_t ino)
{
	const uint64_t *want = ctx;

	(void)branch;
	return ino == *want;
}

static void test_store_gc_unlinked_open_file(void **state)
{
	struct tstore_fx *fx = *state;
	struct store *s = fx->s;
	struct store_gc_opts opts = { 0 };
	struct store_gc_stats st;
	uint64_t u, v;

	u = tstore_mkfile(s, fx->br, fx->root, "u");
	tstore_write_pat(s, fx->br, u, 1, 0, 4 * BS);
	v = tstore_mkfile(s, fx->br, fx->root, "v");
	tstore_write_pat(s, fx->br, v, 2, 0, 4 * BS);
	assert_int_equal(store_unlink(s, fx->br, fx->root, "u"), 0);
	assert_int_equal(store_unlink(s, fx->br, fx->root, "v"), 0);
	assert_int_equal(store_set_retention(s, 1), 0);
	tstore_sleep_ms(1300);
	opts.in_use = tstore_gc_in_use_yes;
	opts.ctx = &u;
	memset(&st, 0, sizeof(st));
	assert_int_equal(store_gc(s, &opts, &st), 0);
	assert_true(st.inodes_reclaimed >= 1); /* v */
	/* u is open: still readable and writable by number */
	tstore_expect_pat(s, fx->br, u, 1, 0, 4 * BS);
	tstore_write_pat(s, fx->br, u, 3, BS, 10);
	tstore_expect_pat(s, fx->br, u, 3, BS, 10);
	TSTORE_LS_EQ(s, fx->br, STORE_SEQ_LATEST, fx->root, "");
	/* the head is unaffected otherwise */
	{
		uint64_t w = tstore_mkfile(s, fx->br, fx->root, "w");

		assert_true(w != u && w != v);
	}
}

static void test_store_gc_after_reset(void **state)
{
	struct tstore_fx *fx = *state;
	struct store *s = fx->s;
	uint64_t f, c;

	f = tstore_mkfile(s, fx->br, fx->root, "f");
	tstore_write_pat(s, fx->br, f, 1, 0, 2 * BS);
	c = tstore_branch(s, "c", fx->br);
	tstore_write_pat(s, c, f, 2, 0, 2 * BS);
	tstore_mkfile(s, c, fx->root, "cfile");
	assert_int_equal(store_branch_reset(s, c, NULL), 0);
	tstore_write_pat(s, fx->br, f, 3, BS, 10); /* after the reset */
	assert_int_equal(store_set_retention(s, 1), 0);
	tstore_sleep_ms(1300);
	assert_int_equal(store_gc(s, NULL, NULL), 0);
	TSTORE_LS_EQ(s, c, STORE_SEQ_LATEST, fx->root, "f");
	tstore_expect_pat(s, c, f, 1, 0, 2 * BS);
	tstore_fx_reopen(fx);
	TSTORE_LS_EQ(fx->s, c, STORE_SEQ_LATEST, fx->root, "f");
	tstore_expect_pat(fx->s, c, f, 1, 0, 2 * BS);
	tstore_expect_pat(fx->s, fx->br, f, 3, BS, 10);
}

static void test_store_gc_one_at_a_time_and_bad_retention(void **state)
{
	struct tstore_fx *fx = *state;

	assert_int_equal(store_set_retention(fx->s, 0), -EINVAL);
	assert_int_equal(store_get_retention(fx->s), 3600);
	assert_int_equal(store_gc(fx->s, NULL, NULL), 0);
}

#define T(f) cmocka_unit_test_setup_teardown(f, tstore_fx_setup, \
					     tstore_fx_teardown)

int main(void)
{
	const struct CMUnitTest tests[] = {
		T(test_store_gc_keeps_heads_and_fork_points),
		T(test_store_gc_keeps_window),
		T(test_store_gc_unlinked_open_file),
		T(test_store_gc_after_reset),
		T(test_store_gc_one_at_a_time_and_bad_retention),
	};

	return cmocka_run_group_tests_name("store_gc", tests, NULL, NULL);
}
