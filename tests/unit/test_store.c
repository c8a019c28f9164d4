/* SPDX-License-Identifier: MIT */
/*
 * test_store.c - cmocka tests of the store's core behaviour on real RocksDB:
 * isolation between branches (parent/child both ways, siblings,
 * grandchildren, deep chains), time travel (as-of reads, branches at a past
 * seq, wall-clock to seq), file data edge cases (truncation across branch
 * boundaries, partial-block writes, parallel writers of one file, holes,
 * offsets past 4 GiB), branch management, and close/reopen persistence.
 *
 * Directory operations live in test_store_dir.c, bad input in
 * test_store_badinput.c, crash persistence and locking across processes in
 * test_store_persist.c, fault injection in test_store_fault.c, and the
 * randomized model check in test_store_model.c.
 */
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "tests/unit/test_store_common.h"

#define BS STORE_BLOCK_SIZE

/* ---- isolation ---- */

static void test_store_isolation_parent_child(void **state)
{
	struct tstore_fx *fx = *state;
	struct store *s = fx->s;
	uint64_t f, c, g, h;

	f = tstore_mkfile(s, fx->br, fx->root, "f");
	tstore_write_pat(s, fx->br, f, 1, 0, 3 * BS);
	c = tstore_branch(s, "child", fx->br);

	/* child sees the parent's state at fork */
	assert_int_equal(tstore_lookup(s, c, fx->root, "f"), f);
	tstore_expect_pat(s, c, f, 1, 0, 3 * BS);

	/* child -> parent: a write in the child is invisible in the parent */
	tstore_write_pat(s, c, f, 2, BS + 17, 100);
	tstore_expect_pat(s, fx->br, f, 1, 0, 3 * BS);
	tstore_expect_pat(s, c, f, 1, 0, BS + 17);
	tstore_expect_pat(s, c, f, 2, BS + 17, 100);
	tstore_expect_pat(s, c, f, 1, BS + 117, 2 * BS - 117);

	/* parent -> child */
	tstore_write_pat(s, fx->br, f, 3, 0, 10);
	tstore_write_pat(s, fx->br, f, 3, 3 * BS, BS); /* extends */
	assert_int_equal(tstore_size(s, fx->br, f), 4 * BS);
	assert_int_equal(tstore_size(s, c, f), 3 * BS);
	tstore_expect_pat(s, c, f, 1, 0, 10);

	/* new files on each side stay on that side */
	g = tstore_mkfile(s, c, fx->root, "only-child");
	h = tstore_mkfile(s, fx->br, fx->root, "only-parent");
	assert_int_not_equal(g, h);
	assert_int_equal(tstore_lookup_rc(s, fx->br, STORE_SEQ_LATEST,
					  fx->root, "only-child"),
			 -ENOENT);
	assert_int_equal(tstore_lookup_rc(s, c, STORE_SEQ_LATEST, fx->root,
					  "only-parent"),
			 -ENOENT);
	TSTORE_LS_EQ(s, fx->br, STORE_SEQ_LATEST, fx->root, "f,only-parent");
	TSTORE_LS_EQ(s, c, STORE_SEQ_LATEST, fx->root, "f,only-child");

	/* attributes are isolated too */
	{
		struct store_attr a = tstore_attr(0), got;

		a.mode = 0600;
		assert_int_equal(store_setattr(s, c, f, &a, STORE_SET_MODE,
					       NULL),
				 0);
		assert_int_equal(store_getattr(s, c, STORE_SEQ_LATEST, f, &got),
				 0);
		assert_int_equal(got.mode, S_IFREG | 0600);
		assert_int_equal(store_getattr(s, fx->br, STORE_SEQ_LATEST, f,
					       &got),
				 0);
		assert_int_equal(got.mode, S_IFREG | 0644);
	}
}

static void test_store_isolation_siblings(void **state)
{
	struct tstore_fx *fx = *state;
	struct store *s = fx->s;
	uint64_t f, a, b, fa, fb;

	f = tstore_mkfile(s, fx->br, fx->root, "f");
	tstore_write_pat(s, fx->br, f, 1, 0, 2 * BS);
	a = tstore_branch(s, "a", fx->br);
	b = tstore_branch(s, "b", fx->br);
	assert_int_not_equal(a, b);

	tstore_write_pat(s, a, f, 10, 0, BS);
	tstore_write_pat(s, b, f, 20, BS, BS);
	tstore_expect_pat(s, a, f, 10, 0, BS);
	tstore_expect_pat(s, a, f, 1, BS, BS);
	tstore_expect_pat(s, b, f, 1, 0, BS);
	tstore_expect_pat(s, b, f, 20, BS, BS);
	tstore_expect_pat(s, fx->br, f, 1, 0, 2 * BS);

	/* same new name in both siblings: different inodes, contents */
	fa = tstore_mkfile(s, a, fx->root, "new");
	fb = tstore_mkfile(s, b, fx->root, "new");
	assert_int_not_equal(fa, fb);
	tstore_write_pat(s, a, fa, 30, 0, 500);
	tstore_write_pat(s, b, fb, 40, 0, 700);
	assert_int_equal(tstore_lookup(s, a, fx->root, "new"), fa);
	assert_int_equal(tstore_lookup(s, b, fx->root, "new"), fb);
	assert_int_equal(tstore_size(s, a, fa), 500);
	assert_int_equal(tstore_size(s, b, fb), 700);
	tstore_expect_pat(s, a, fa, 30, 0, 500);
	tstore_expect_pat(s, b, fb, 40, 0, 700);
	/* an inode created in a sibling does not exist in the other */
	{
		struct store_attr at;

		assert_int_equal(store_getattr(s, a, STORE_SEQ_LATEST, fb, &at),
				 -ENOENT);
		assert_int_equal(store_getattr(s, fx->br, STORE_SEQ_LATEST, fa,
					       &at),
				 -ENOENT);
	}

	/* unlink in one sibling only */
	assert_int_equal(store_unlink(s, a, fx->root, "f"), 0);
	assert_int_equal(tstore_lookup(s, b, fx->root, "f"), f);
	assert_int_equal(tstore_lookup(s, fx->br, fx->root, "f"), f);
	TSTORE_LS_EQ(s, a, STORE_SEQ_LATEST, fx->root, "new");
	TSTORE_LS_EQ(s, b, STORE_SEQ_LATEST, fx->root, "f,new");
}

static void test_store_isolation_grandchildren(void **state)
{
	struct tstore_fx *fx = *state;
	struct store *s = fx->s;
	uint64_t f, c, g1, g2;

	f = tstore_mkfile(s, fx->br, fx->root, "f");
	tstore_write_pat(s, fx->br, f, 1, 0, 4 * BS);
	c = tstore_branch(s, "c", fx->br);
	tstore_write_pat(s, c, f, 2, BS, BS);
	g1 = tstore_branch(s, "g1", c);
	tstore_write_pat(s, c, f, 3, 2 * BS, BS); /* after g1 forked */
	g2 = tstore_branch(s, "g2", c);
	tstore_write_pat(s, g1, f, 4, 3 * BS, BS);
	tstore_write_pat(s, fx->br, f, 5, 0, BS); /* root, after everything */

	/* root */
	tstore_expect_pat(s, fx->br, f, 5, 0, BS);
	tstore_expect_pat(s, fx->br, f, 1, BS, 3 * BS);
	/* c: own writes, root's state at fork */
	tstore_expect_pat(s, c, f, 1, 0, BS);
	tstore_expect_pat(s, c, f, 2, BS, BS);
	tstore_expect_pat(s, c, f, 3, 2 * BS, BS);
	tstore_expect_pat(s, c, f, 1, 3 * BS, BS);
	/* g1: c before its later write, plus its own */
	tstore_expect_pat(s, g1, f, 1, 0, BS);
	tstore_expect_pat(s, g1, f, 2, BS, BS);
	tstore_expect_pat(s, g1, f, 1, 2 * BS, BS);
	tstore_expect_pat(s, g1, f, 4, 3 * BS, BS);
	/* g2: c including the later write, not g1's */
	tstore_expect_pat(s, g2, f, 1, 0, BS);
	tstore_expect_pat(s, g2, f, 2, BS, BS);
	tstore_expect_pat(s, g2, f, 3, 2 * BS, BS);
	tstore_expect_pat(s, g2, f, 1, 3 * BS, BS);

	/* ancestry and child counts */
	{
		struct store_branch_info *anc = NULL, bi;
		size_t n = 0;

		assert_int_equal(store_branch_ancestry(s, g2, &anc, &n), 0);
		assert_int_equal(n, 3);
		assert_int_equal(anc[0].id, g2);
		assert_int_equal(anc[1].id, c);
		assert_int_equal(anc[2].id, fx->br);
		free(anc);
		assert_int_equal(store_branch_get(s, c, &bi), 0);
		assert_int_equal(bi.nchildren, 2);
		assert_int_equal(store_branch_get(s, fx->br, &bi), 0);
		assert_int_equal(bi.nchildren, 1);
	}
}

/* A chain of the most ancestors a branch may have: the deepest branch
 * reads and writes, and a child of it is refused (-EMLINK).  It used to
 * be made, one level too deep, and every read of it failed (-ELOOP). */
static void test_store_branch_depth_limit(void **state)
{
	struct tstore_fx *fx = *state;
	struct store *s = fx->s;
	struct store_branch_create_args a;
	struct store_branch_info bi, *anc = NULL;
	struct store_attr at;
	uint64_t prev = fx->br, f, ino;
	char name[32];
	size_t n = 0;
	unsigned i;
	int rc;

	f = tstore_mkfile(s, fx->br, fx->root, "f");
	tstore_write_pat(s, fx->br, f, 7, 0, BS);
	for (i = 1; i <= STORE_MAX_ANCESTRY + 1; i++) {
		snprintf(name, sizeof(name), "d%u", i);
		a = tstore_args(name, prev, STORE_SEQ_LATEST);
		a.lazy = true;
		rc = store_branch_create(s, &a, &bi);
		if (i <= STORE_MAX_ANCESTRY) {
			if (rc)
				fail_msg("branch %u levels down: %d", i, rc);
			prev = bi.id;
			continue;
		}
		if (rc == 0) {
			rc = store_getattr(s, bi.id, STORE_SEQ_LATEST,
					   fx->root, &at);
			fail_msg("a branch with %u ancestors was made; a read of its root gives %d",
				 i, rc);
		}
		assert_int_equal(rc, -EMLINK);
	}
	assert_int_equal(store_branch_lookup(s, name, &bi), -ENOENT);
	/* the deepest branch works: reads through every level, writes */
	assert_int_equal(store_getattr(s, prev, STORE_SEQ_LATEST, fx->root,
				       &at),
			 0);
	tstore_expect_pat(s, prev, f, 7, 0, BS);
	assert_int_equal(tstore_lookup_rc(s, prev, STORE_SEQ_LATEST, fx->root,
					  "none"),
			 -ENOENT);
	ino = tstore_mkfile(s, prev, fx->root, "deep");
	tstore_write_pat(s, prev, ino, 8, 0, BS);
	tstore_expect_pat(s, prev, ino, 8, 0, BS);
	assert_int_equal(store_branch_ancestry(s, prev, &anc, &n), 0);
	assert_int_equal(n, STORE_MAX_ANCESTRY + 1);
	free(anc);
}

/* A chain root -> b1 -> ... -> b10: at level i, write block i of a shared
 * file, create file "l<i>" and unlink "u<i>" (created in root).  Level j
 * must see exactly the levels <= j. */
static void test_store_isolation_deep_chain(void **state)
{
	struct tstore_fx *fx = *state;
	struct store *s = fx->s;
	enum { DEPTH = 10 };
	uint64_t br[DEPTH + 1], f;
	char name[32];
	int i, j;

	f = tstore_mkfile(s, fx->br, fx->root, "shared");
	for (i = 0; i <= DEPTH; i++) {
		snprintf(name, sizeof(name), "u%d", i);
		tstore_mkfile(s, fx->br, fx->root, name);
	}
	br[0] = fx->br;
	for (i = 0; i <= DEPTH; i++) {
		if (i > 0) {
			snprintf(name, sizeof(name), "b%d", i);
			br[i] = tstore_branch(s, name, br[i - 1]);
		}
		tstore_write_pat(s, br[i], f, 100 + i, (uint64_t)i * BS, BS);
		snprintf(name, sizeof(name), "l%d", i);
		tstore_mkfile(s, br[i], fx->root, name);
		snprintf(name, sizeof(name), "u%d", i);
		assert_int_equal(store_unlink(s, br[i], fx->root, name), 0);
	}
	/* a later write at each level, after every descendant forked */
	for (i = 0; i <= DEPTH; i++)
		tstore_write_pat(s, br[i], f, 200 + i, (uint64_t)i * BS, 1);

	for (j = 0; j <= DEPTH; j++) {
		assert_int_equal(tstore_size(s, br[j], f),
				 (uint64_t)(j + 1) * BS);
		for (i = 0; i <= DEPTH; i++) {
			int rc;

			snprintf(name, sizeof(name), "l%d", i);
			rc = tstore_lookup_rc(s, br[j], STORE_SEQ_LATEST,
					      fx->root, name);
			assert_int_equal(rc, i <= j ? 0 : -ENOENT);
			snprintf(name, sizeof(name), "u%d", i);
			rc = tstore_lookup_rc(s, br[j], STORE_SEQ_LATEST,
					      fx->root, name);
			assert_int_equal(rc, i <= j ? -ENOENT : 0);
			if (i > j)
				continue;
			if (i == j) {
				tstore_expect_pat(s, br[j], f, 200 + i,
						  (uint64_t)i * BS, 1);
				tstore_expect_pat(s, br[j], f, 100 + i,
						  (uint64_t)i * BS + 1, BS - 1);
			} else {
				tstore_expect_pat(s, br[j], f, 100 + i,
						  (uint64_t)i * BS, BS);
			}
		}
	}
	/* the deepest branch's ancestry is the whole chain */
	{
		struct store_branch_info *anc = NULL;
		size_t n = 0;

		assert_int_equal(store_branch_ancestry(s, br[DEPTH], &anc, &n),
				 0);
		assert_int_equal(n, DEPTH + 1);
		for (i = 0; i <= DEPTH; i++)
			assert_int_equal(anc[i].id, br[DEPTH - i]);
		free(anc);
	}
}

/* ---- time travel ---- */

static void test_store_time_travel_overwrites(void **state)
{
	struct tstore_fx *fx = *state;
	struct store *s = fx->s;
	enum { N = 60 };
	uint64_t seq[N], f, prev = 0;
	const uint64_t off = 3 * BS - 100; /* straddles blocks 2 and 3 */
	int i;

	f = tstore_mkfile(s, fx->br, fx->root, "f");
	for (i = 0; i < N; i++) {
		/* every 10th write also extends the file */
		tstore_write_pat(s, fx->br, f, 1000 + i, off, 300);
		if (i % 10 == 9)
			tstore_write_pat(s, fx->br, f, 5000 + i,
					 4 * BS + (uint64_t)i * 100, 10);
		seq[i] = store_seq_now(s);
		assert_true(seq[i] > prev);
		prev = seq[i];
	}
	for (i = 0; i < N; i++) {
		uint64_t want_size = off + 300;
		int k;

		tstore_expect_pat_at(s, fx->br, seq[i], f, 1000 + i, off, 300);
		for (k = 9; k <= i; k += 10)
			want_size = 4 * BS + (uint64_t)k * 100 + 10;
		assert_int_equal(tstore_size_at(s, fx->br, seq[i], f),
				 want_size);
		if (i >= 9) {
			int last = ((i + 1) / 10) * 10 - 1;

			tstore_expect_pat_at(s, fx->br, seq[i], f, 5000 + last,
					     4 * BS + (uint64_t)last * 100, 10);
		}
	}
	/* the head is the last write */
	tstore_expect_pat(s, fx->br, f, 1000 + N - 1, off, 300);
	/* a seq in the future is refused */
	{
		unsigned char b[4];

		assert_int_equal(store_read(s, fx->br, store_seq_now(s) + 1000,
					    f, b, sizeof(b), 0),
				 -EINVAL);
	}
}

/* A branch made at a past seq sees exactly that past. */
static void test_store_time_travel_branch_at_seq(void **state)
{
	struct tstore_fx *fx = *state;
	struct store *s = fx->s;
	uint64_t a, d, x, b, s1, c, y;
	struct store_attr at;

	a = tstore_mkfile(s, fx->br, fx->root, "a");
	tstore_write_pat(s, fx->br, a, 1, 0, 2 * BS + 5);
	d = tstore_mkdir(s, fx->br, fx->root, "d");
	x = tstore_mkfile(s, fx->br, d, "x");
	tstore_write_pat(s, fx->br, x, 2, 0, 10);
	s1 = store_seq_now(s);

	/* change everything after s1 */
	tstore_write_pat(s, fx->br, a, 3, BS, 4 * BS);
	tstore_truncate(s, fx->br, x, 3);
	assert_int_equal(store_unlink(s, fx->br, d, "x"), 0);
	b = tstore_mkfile(s, fx->br, fx->root, "b");
	y = tstore_mkfile(s, fx->br, d, "y");
	assert_int_equal(store_rename(s, fx->br, fx->root, "a", d, "a2", 0),
			 0);
	(void)b;
	(void)y;

	c = tstore_branch_at(s, "past", fx->br, s1);
	{
		struct store_branch_info bi;

		assert_int_equal(store_branch_get(s, c, &bi), 0);
		assert_int_equal(bi.fork_seq, s1);
	}
	TSTORE_LS_EQ(s, c, STORE_SEQ_LATEST, fx->root, "a,d");
	TSTORE_LS_EQ(s, c, STORE_SEQ_LATEST, d, "x");
	assert_int_equal(tstore_lookup(s, c, fx->root, "a"), a);
	assert_int_equal(tstore_lookup(s, c, d, "x"), x);
	assert_int_equal(tstore_size(s, c, a), 2 * BS + 5);
	assert_int_equal(tstore_size(s, c, x), 10);
	tstore_expect_pat(s, c, a, 1, 0, 2 * BS + 5);
	tstore_expect_pat(s, c, x, 2, 0, 10);
	assert_int_equal(store_getattr(s, c, STORE_SEQ_LATEST, x, &at), 0);
	assert_int_equal(at.nlink, 1);

	/* the parent's head is the present */
	TSTORE_LS_EQ(s, fx->br, STORE_SEQ_LATEST, fx->root, "b,d");
	TSTORE_LS_EQ(s, fx->br, STORE_SEQ_LATEST, d, "a2,y");
	/* and as-of reads of the parent at s1 agree with the branch */
	TSTORE_LS_EQ(s, fx->br, s1, fx->root, "a,d");
	TSTORE_LS_EQ(s, fx->br, s1, d, "x");
	tstore_expect_pat_at(s, fx->br, s1, a, 1, 0, 2 * BS + 5);

	/* the past branch is writable and independent */
	tstore_write_pat(s, c, a, 9, 0, 10);
	tstore_expect_pat(s, fx->br, a, 1, 0, 10);
	tstore_expect_pat_at(s, fx->br, s1, a, 1, 0, 10);

	/* at_seq in the future is refused */
	{
		struct store_branch_create_args args =
			tstore_args("future", fx->br, store_seq_now(s) + 100);
		struct store_branch_info bi;

		assert_int_equal(store_branch_create(s, &args, &bi), -EINVAL);
	}
}

/* A moment before the parent existed is -ERANGE: for a child (its fork
 * point), and for a branch made empty beside others, whose record's
 * lower bound of its creation (seq 1) used to let a branch of it at an
 * earlier seq through, without even a root directory. */
static void test_store_time_travel_before_parent(void **state)
{
	struct tstore_fx *fx = *state;
	struct store_branch_create_args args;
	struct store_branch_info bi;
	struct store_attr at;
	uint64_t f, kid, fresh, s0, s1;
	int pass;

	f = tstore_mkfile(fx->s, fx->br, fx->root, "f");
	tstore_write_pat(fx->s, fx->br, f, 1, 0, 100);
	s0 = store_seq_now(fx->s);
	kid = tstore_branch(fx->s, "kid", fx->br);
	args = tstore_args("fresh", 0, 0);
	assert_int_equal(store_branch_create(fx->s, &args, &bi), 0);
	fresh = bi.id;
	tstore_mkfile(fx->s, fresh, bi.root_ino, "g");
	s1 = store_seq_now(fx->s);
	for (pass = 0; pass < 2; pass++) {
		struct store *s = fx->s;

		args = tstore_args("x", kid, s0);
		assert_int_equal(store_branch_create(s, &args, &bi), -ERANGE);
		args = tstore_args("x", fresh, s0);
		assert_int_equal(store_branch_create(s, &args, &bi), -ERANGE);
		assert_int_equal(store_branch_lookup(s, "x", &bi), -ENOENT);
		/* from its creation on, it can be branched */
		args = tstore_args(pass ? "y2" : "y", fresh, s1);
		assert_int_equal(store_branch_create(s, &args, &bi), 0);
		assert_int_equal(store_getattr(s, bi.id, STORE_SEQ_LATEST,
					       bi.root_ino, &at),
				 0);
		assert_true(S_ISDIR(at.mode));
		TSTORE_LS_EQ(s, bi.id, STORE_SEQ_LATEST, bi.root_ino, "g");
		tstore_fx_reopen(fx);
	}
}

static void test_store_time_travel_seq_at_time(void **state)
{
	struct tstore_fx *fx = *state;
	struct store *s = fx->s;
	uint64_t f, sa, sb, sq;
	int64_t t;

	f = tstore_mkfile(s, fx->br, fx->root, "f");
	tstore_write_pat(s, fx->br, f, 1, 0, 100);
	sa = store_seq_now(s);
	tstore_sleep_ms(1100);
	t = tstore_now_ns();
	tstore_sleep_ms(1100);
	tstore_write_pat(s, fx->br, f, 2, 0, 100);
	sb = store_seq_now(s);

	assert_int_equal(store_seq_at_time(s, t, &sq), 0);
	assert_true(sq >= sa);
	assert_true(sq < sb);
	tstore_expect_pat_at(s, fx->br, sq, f, 1, 0, 100);
	tstore_expect_pat_at(s, fx->br, sb, f, 2, 0, 100);

	/* a moment after the second write maps to a seq that shows it */
	tstore_sleep_ms(1100);
	assert_int_equal(store_seq_at_time(s, tstore_now_ns(), &sq), 0);
	assert_true(sq >= sb);
	tstore_expect_pat_at(s, fx->br, sq, f, 2, 0, 100);

	assert_true(store_oldest_time(s) <= t);
	assert_int_equal(store_seq_at_time(s, tstore_now_ns() +
						      3600ll * 1000000000ll,
					   &sq),
			 -EINVAL);
	assert_int_equal(store_seq_at_time(s, 1, &sq), -ERANGE);

	/* a branch at that moment sees the first content */
	assert_int_equal(store_seq_at_time(s, t, &sq), 0);
	{
		uint64_t c = tstore_branch_at(s, "then", fx->br, sq);

		tstore_expect_pat(s, c, f, 1, 0, 100);
	}
}

/* ---- file data ---- */

static void test_store_truncate_child_then_extend_zeros(void **state)
{
	struct tstore_fx *fx = *state;
	struct store *s = fx->s;
	uint64_t f, c;

	f = tstore_mkfile(s, fx->br, fx->root, "f");
	tstore_write_pat(s, fx->br, f, 1, 0, 4 * BS);
	c = tstore_branch(s, "c", fx->br);

	tstore_truncate(s, c, f, 100);
	assert_int_equal(tstore_size(s, c, f), 100);
	tstore_truncate(s, c, f, 4 * BS);
	assert_int_equal(tstore_size(s, c, f), 4 * BS);
	tstore_expect_pat(s, c, f, 1, 0, 100);
	tstore_expect_zero(s, c, f, 100, 4 * BS - 100);
	/* the parent keeps everything */
	tstore_expect_pat(s, fx->br, f, 1, 0, 4 * BS);

	/* shrink to zero, then extend by writing past the old end */
	tstore_truncate(s, c, f, 0);
	tstore_write_pat(s, c, f, 7, 5 * BS + 3, 10);
	assert_int_equal(tstore_size(s, c, f), 5 * BS + 13);
	tstore_expect_zero(s, c, f, 0, 5 * BS + 3);
	tstore_expect_pat(s, c, f, 7, 5 * BS + 3, 10);

	/* a grandchild of the truncated child also reads zeros */
	{
		uint64_t g = tstore_branch(s, "g", c);

		tstore_expect_zero(s, g, f, 0, 5 * BS + 3);
		tstore_truncate(s, g, f, 8 * BS);
		tstore_expect_zero(s, g, f, 5 * BS + 13, 3 * BS - 13);
	}
	tstore_expect_pat(s, fx->br, f, 1, 0, 4 * BS);
}

static void test_store_truncate_unaligned_then_extend(void **state)
{
	struct tstore_fx *fx = *state;
	struct store *s = fx->s;
	uint64_t f, c;

	f = tstore_mkfile(s, fx->br, fx->root, "f");
	tstore_write_pat(s, fx->br, f, 1, 0, 3 * BS);
	/* same branch: cut in the middle of block 1, extend with truncate */
	tstore_truncate(s, fx->br, f, BS + 1000);
	tstore_truncate(s, fx->br, f, 3 * BS);
	tstore_expect_pat(s, fx->br, f, 1, 0, BS + 1000);
	tstore_expect_zero(s, fx->br, f, BS + 1000, 2 * BS - 1000);

	/* across a branch: parent rewrites, child cuts mid-block, extends
	 * with a write inside the same block */
	tstore_write_pat(s, fx->br, f, 2, 0, 3 * BS);
	c = tstore_branch(s, "c", fx->br);
	tstore_truncate(s, c, f, 2 * BS + 10);
	tstore_write_pat(s, c, f, 3, 2 * BS + 4000, 20);
	tstore_expect_pat(s, c, f, 2, 0, 2 * BS + 10);
	tstore_expect_zero(s, c, f, 2 * BS + 10, 3990);
	tstore_expect_pat(s, c, f, 3, 2 * BS + 4000, 20);
	assert_int_equal(tstore_size(s, c, f), 2 * BS + 4020);
	tstore_expect_pat(s, fx->br, f, 2, 0, 3 * BS);

	/* truncate to the same size is a no-op for the data */
	tstore_truncate(s, c, f, 2 * BS + 4020);
	tstore_expect_pat(s, c, f, 3, 2 * BS + 4000, 20);
}

/* Unaligned, overlapping writes (read-modify-write of partial blocks),
 * checked against an in-memory copy; then the same in a child, whose
 * partial writes must keep the parent's bytes around them. */
static void test_store_partial_block_writes(void **state)
{
	struct tstore_fx *fx = *state;
	struct store *s = fx->s;
	enum { SZ = 6 * BS };
	static unsigned char model[SZ], pmodel[SZ], buf[SZ];
	uint64_t f, c, size = 0, psize;
	uint32_t rs = 12345;
	int i;

	memset(model, 0, sizeof(model));
	f = tstore_mkfile(s, fx->br, fx->root, "f");
	for (i = 0; i < 200; i++) {
		size_t off, len;

		rs = rs * 1103515245u + 12345u;
		off = (rs >> 8) % (SZ - 1);
		rs = rs * 1103515245u + 12345u;
		len = 1 + (rs >> 8) % (i % 3 ? 300 : 3 * BS);
		if (off + len > SZ)
			len = SZ - off;
		tstore_fill(buf, len, (uint32_t)i, off);
		tstore_write(s, fx->br, f, buf, len, off);
		memcpy(model + off, buf, len);
		if (off + len > size)
			size = off + len;
	}
	assert_int_equal(tstore_size(s, fx->br, f), size);
	tstore_expect(s, fx->br, f, model, size, 0);

	memcpy(pmodel, model, sizeof(model));
	psize = size;
	c = tstore_branch(s, "c", fx->br);
	for (i = 0; i < 100; i++) {
		size_t off, len;

		rs = rs * 1103515245u + 12345u;
		off = (rs >> 8) % (SZ - 1);
		len = 1 + (rs >> 3) % 50;
		if (off + len > SZ)
			len = SZ - off;
		tstore_fill(buf, len, 1000u + (uint32_t)i, off);
		tstore_write(s, c, f, buf, len, off);
		memcpy(model + off, buf, len);
		if (off + len > size)
			size = off + len;
	}
	tstore_expect(s, c, f, model, size, 0);
	tstore_expect(s, fx->br, f, pmodel, psize, 0);
	/* reads at unaligned offsets and lengths */
	for (i = 0; i < 50; i++) {
		size_t off = ((size_t)i * 7919) % size;
		size_t len = 1 + ((size_t)i * 104729) % (2 * BS);

		if (off + len > size)
			len = size - off;
		tstore_expect(s, c, f, model + off, len, off);
	}
}

/* Writers of one file in parallel, each to its own byte range; the
 * ranges meet inside blocks, so that a whole block one writer compresses
 * outside the inode's lock sits next to blocks two writers share (merged
 * under it).  Every byte must be its writer's, and the size the end. */
struct tstore_par_writer {
	struct store *s;
	uint64_t br, ino, lo, hi;
	uint32_t seed;
};

static void *tstore_par_write(void *arg)
{
	struct tstore_par_writer *w = arg;
	static const size_t steps[] = { 3 * BS + 123, BS, 5 * BS + 4001, 77 };
	unsigned char *buf = malloc(8 * BS);
	uint64_t off = w->lo;
	size_t i = 0;

	if (!buf)
		return (void *)1;
	while (off < w->hi) {
		size_t len = steps[i++ % 4];
		ssize_t n;

		if (len > w->hi - off)
			len = (size_t)(w->hi - off);
		tstore_fill(buf, len, w->seed, off);
		n = store_write(w->s, w->br, w->ino, buf, len, off, NULL);
		if (n != (ssize_t)len) {
			free(buf);
			return (void *)1;
		}
		off += len;
	}
	free(buf);
	return NULL;
}

static void test_store_parallel_writes_one_file(void **state)
{
	struct tstore_fx *fx = *state;
	enum { NW = 4 };
	struct tstore_par_writer w[NW];
	pthread_t th[NW];
	uint64_t f, bound[NW + 1];
	int i, round;

	f = tstore_mkfile(fx->s, fx->br, fx->root, "f");
	for (i = 0; i <= NW; i++)
		bound[i] = (uint64_t)i * 40 * BS + (i % NW ? 1000u * i : 0);
	for (round = 0; round < 3; round++) {
		for (i = 0; i < NW; i++) {
			w[i] = (struct tstore_par_writer){
				.s = fx->s,
				.br = fx->br,
				.ino = f,
				.lo = bound[i],
				.hi = bound[i + 1],
				.seed = (uint32_t)(round * 10 + i + 1),
			};
			assert_int_equal(pthread_create(&th[i], NULL,
							tstore_par_write,
							&w[i]),
					 0);
		}
		for (i = 0; i < NW; i++) {
			void *ret;

			assert_int_equal(pthread_join(th[i], &ret), 0);
			assert_null(ret);
		}
		assert_int_equal(tstore_size(fx->s, fx->br, f), bound[NW]);
		for (i = 0; i < NW; i++)
			tstore_expect_pat(fx->s, fx->br, f, w[i].seed, bound[i],
					  bound[i + 1] - bound[i]);
	}
}

static void test_store_holes_read_zero(void **state)
{
	struct tstore_fx *fx = *state;
	struct store *s = fx->s;
	unsigned char b[64];
	uint64_t f;

	f = tstore_mkfile(s, fx->br, fx->root, "f");
	assert_int_equal(tstore_size(s, fx->br, f), 0);
	assert_int_equal(store_read(s, fx->br, STORE_SEQ_LATEST, f, b,
				    sizeof(b), 0),
			 0);
	tstore_write_pat(s, fx->br, f, 1, 10 * BS + 5, 20);
	assert_int_equal(tstore_size(s, fx->br, f), 10 * BS + 25);
	tstore_expect_zero(s, fx->br, f, 0, 10 * BS + 5);
	tstore_expect_pat(s, fx->br, f, 1, 10 * BS + 5, 20);
	/* short read at the end, nothing past it */
	assert_int_equal(store_read(s, fx->br, STORE_SEQ_LATEST, f, b,
				    sizeof(b), 10 * BS + 20),
			 5);
	assert_int_equal(store_read(s, fx->br, STORE_SEQ_LATEST, f, b,
				    sizeof(b), 10 * BS + 25),
			 0);
	assert_int_equal(store_read(s, fx->br, STORE_SEQ_LATEST, f, b,
				    sizeof(b), 1ull << 40),
			 0);
	/* extending with truncate makes a hole too */
	tstore_truncate(s, fx->br, f, 20 * BS);
	tstore_expect_zero(s, fx->br, f, 10 * BS + 25, 10 * BS - 25);
	/* writing zeros reads back zeros (an all-zero block is not special) */
	{
		static unsigned char z[2 * BS];

		tstore_write_pat(s, fx->br, f, 2, 0, 2 * BS);
		tstore_write(s, fx->br, f, z, sizeof(z), 0);
		tstore_expect_zero(s, fx->br, f, 0, 2 * BS);
		/* in a child, zeros over the parent's data stay zeros */
		tstore_write_pat(s, fx->br, f, 3, 0, 2 * BS);
		{
			uint64_t c = tstore_branch(s, "c", fx->br);

			tstore_write(s, c, f, z, sizeof(z), 0);
			tstore_expect_zero(s, c, f, 0, 2 * BS);
			tstore_expect_pat(s, fx->br, f, 3, 0, 2 * BS);
		}
	}
}

/* store_punch over ranges that touch at most two blocks: up to two blocks
 * less 2 bytes long, across one boundary (it once wrote them with one
 * store_write from its one-block buffer of zeros, so the bytes past the
 * first block came from whatever memory followed it), and the ranges
 * around them, in a file and over data a child inherits. */
static void test_store_punch_partial_blocks(void **state)
{
	struct tstore_fx *fx = *state;
	struct store *s = fx->s;
	static const struct {
		uint64_t off, end;
	} r[] = {
		{ 3 * BS + 1, 5 * BS - 1 },  /* longest across one boundary */
		{ 3 * BS + 100, 4 * BS + 7000 },
		{ 3 * BS + 5, 3 * BS + 900 }, /* inside one block */
		{ 4 * BS, 4 * BS + 10 },      /* at a block's start */
		{ 3 * BS + 10, 4 * BS },      /* up to a boundary */
		{ 3 * BS + 10, 4 * BS + 1 },  /* one byte past it */
		{ 3 * BS + 1, 6 * BS - 1 },   /* a whole block in between */
	};
	const size_t len = 8 * BS;
	size_t i;

	for (i = 0; i < sizeof(r) / sizeof(r[0]); i++) {
		char name[16];
		uint64_t f, c;

		snprintf(name, sizeof(name), "p%zu", i);
		f = tstore_mkfile(s, fx->br, fx->root, name);
		tstore_write_pat(s, fx->br, f, 7, 0, len);
		assert_int_equal(store_punch(s, fx->br, f, r[i].off, r[i].end,
					     NULL),
				 0);
		tstore_expect_pat(s, fx->br, f, 7, 0, r[i].off);
		tstore_expect_zero(s, fx->br, f, r[i].off, r[i].end - r[i].off);
		tstore_expect_pat(s, fx->br, f, 7, r[i].end, len - r[i].end);
		assert_int_equal(tstore_size(s, fx->br, f), len);

		snprintf(name, sizeof(name), "c%zu", i);
		tstore_write_pat(s, fx->br, f, 8, 0, len);
		c = tstore_branch(s, name, fx->br);
		assert_int_equal(store_punch(s, c, f, r[i].off, r[i].end, NULL),
				 0);
		tstore_expect_pat(s, c, f, 8, 0, r[i].off);
		tstore_expect_zero(s, c, f, r[i].off, r[i].end - r[i].off);
		tstore_expect_pat(s, c, f, 8, r[i].end, len - r[i].end);
		tstore_expect_pat(s, fx->br, f, 8, 0, len);
	}
}

static void test_store_large_offset(void **state)
{
	struct tstore_fx *fx = *state;
	struct store *s = fx->s;
	const uint64_t off = (5ull << 30) + 123;
	unsigned char b[16];
	uint64_t f, c;

	f = tstore_mkfile(s, fx->br, fx->root, "big");
	tstore_write_pat(s, fx->br, f, 1, off, 3 * BS);
	assert_int_equal(tstore_size(s, fx->br, f), off + 3 * BS);
	tstore_expect_pat(s, fx->br, f, 1, off, 3 * BS);
	/* holes around 4 GiB (32-bit wrap of a block index would alias) */
	tstore_expect_zero(s, fx->br, f, (4ull << 30) - 100, 200);
	tstore_expect_zero(s, fx->br, f, 123, 3 * BS);
	tstore_expect_zero(s, fx->br, f, off - 1000, 1000);
	/* a second write at the same offset mod 4 GiB must not alias */
	tstore_write_pat(s, fx->br, f, 2, off - (4ull << 30), 100);
	tstore_expect_pat(s, fx->br, f, 1, off, 3 * BS);
	tstore_expect_pat(s, fx->br, f, 2, off - (4ull << 30), 100);

	c = tstore_branch(s, "c", fx->br);
	tstore_truncate(s, c, f, off + 10);
	tstore_truncate(s, c, f, off + 3 * BS);
	tstore_expect_pat(s, c, f, 1, off, 10);
	tstore_expect_zero(s, c, f, off + 10, 3 * BS - 10);
	tstore_expect_pat(s, fx->br, f, 1, off, 3 * BS);

	/* the largest offset */
	assert_int_equal(store_write(s, fx->br, f, b, sizeof(b),
				     (uint64_t)INT64_MAX, NULL),
			 -EFBIG);
	assert_int_equal(tstore_size(s, fx->br, f), off + 3 * BS);
}

static void test_store_write_sets_mtime(void **state)
{
	struct tstore_fx *fx = *state;
	struct store *s = fx->s;
	struct timespec ts = { 1700000000, 123456789 };
	struct store_attr a;
	uint64_t f;

	f = tstore_mkfile(s, fx->br, fx->root, "f");
	assert_int_equal(store_write(s, fx->br, f, "abc", 3, 0, &ts), 3);
	assert_int_equal(store_getattr(s, fx->br, STORE_SEQ_LATEST, f, &a), 0);
	assert_int_equal(a.mtime.tv_sec, ts.tv_sec);
	assert_int_equal(a.mtime.tv_nsec, ts.tv_nsec);
	assert_int_equal(a.size, 3);
}

/* ---- branch management ---- */

static void test_store_branch_delete_rename_list(void **state)
{
	struct tstore_fx *fx = *state;
	struct store *s = fx->s;
	struct store_branch_info bi, *list = NULL;
	uint64_t c, g, c2, f;
	size_t n = 0;

	f = tstore_mkfile(s, fx->br, fx->root, "f");
	tstore_write_pat(s, fx->br, f, 1, 0, 100);
	c = tstore_branch(s, "zeta", fx->br);
	g = tstore_branch(s, "alpha", c);
	tstore_write_pat(s, g, f, 2, 0, 100);

	assert_int_equal(store_branch_list(s, &list, &n), 0);
	assert_int_equal(n, 3);
	assert_string_equal(list[0].name, "alpha");
	assert_string_equal(list[1].name, "root");
	assert_string_equal(list[2].name, "zeta");
	free(list);

	assert_int_equal(store_branch_delete(s, c), -ENOTEMPTY);
	assert_int_equal(store_branch_delete(s, g), 0);
	assert_int_equal(store_branch_get(s, g, &bi), -ENOENT);
	assert_int_equal(store_branch_lookup(s, "alpha", &bi), -ENOENT);
	{
		unsigned char b[4];

		assert_int_equal(store_read(s, g, STORE_SEQ_LATEST, f, b, 4, 0),
				 -ENOENT);
	}
	assert_int_equal(store_branch_get(s, c, &bi), 0);
	assert_int_equal(bi.nchildren, 0);
	assert_int_equal(store_branch_delete(s, c), 0);

	/* names are reusable, ids are not */
	c2 = tstore_branch(s, "zeta", fx->br);
	assert_int_not_equal(c2, c);
	assert_int_not_equal(c2, g);
	tstore_expect_pat(s, c2, f, 1, 0, 100);

	assert_int_equal(store_branch_rename(s, c2, "omega"), 0);
	assert_int_equal(store_branch_lookup(s, "omega", &bi), 0);
	assert_int_equal(bi.id, c2);
	assert_int_equal(store_branch_lookup(s, "zeta", &bi), -ENOENT);
	assert_int_equal(store_branch_rename(s, c2, "root"), -EEXIST);
	assert_int_equal(store_branch_rename(s, c2, "a/b"), -EINVAL);
	tstore_expect_pat(s, c2, f, 1, 0, 100);
}

/* store_branch_rename_set: the branch and the setting change in one
 * batch, so a failed write changes neither, and both survive a reopen. */
static void test_store_branch_rename_set(void **state)
{
	struct tstore_fx *fx = *state;
	struct store_branch_info bi;
	char v[64];
	uint64_t c;

	c = tstore_branch(fx->s, "a", fx->br);
	assert_int_equal(store_setting_put(fx->s, "follow", "a"), 0);
	kv_fault_arm(fx->fault, KV_FAULT_WRITE, 1, false, -EIO);
	assert_int_equal(store_branch_rename_set(fx->s, c, "b", "follow"),
			 -EIO);
	assert_int_equal(store_branch_lookup(fx->s, "a", &bi), 0);
	assert_int_equal(store_setting_get(fx->s, "follow", v, sizeof(v)), 0);
	assert_string_equal(v, "a");
	assert_int_equal(store_branch_rename_set(fx->s, c, "b", "follow"), 0);
	assert_int_equal(store_branch_rename_set(fx->s, c, "c", NULL), 0);
	assert_int_equal(store_branch_rename_set(fx->s, c, "d", ""), -EINVAL);
	tstore_fx_reopen(fx);
	assert_int_equal(store_branch_lookup(fx->s, "c", &bi), 0);
	assert_int_equal(bi.id, c);
	assert_int_equal(store_setting_get(fx->s, "follow", v, sizeof(v)), 0);
	assert_string_equal(v, "b");
}

static void test_store_branch_reset(void **state)
{
	struct tstore_fx *fx = *state;
	struct store *s = fx->s;
	struct store_branch_info bi;
	uint64_t f, c, n;

	f = tstore_mkfile(s, fx->br, fx->root, "f");
	tstore_write_pat(s, fx->br, f, 1, 0, 100);
	c = tstore_branch(s, "c", fx->br);
	tstore_write_pat(s, c, f, 2, 0, 50);
	n = tstore_mkfile(s, c, fx->root, "new");
	(void)n;
	tstore_write_pat(s, fx->br, f, 3, 50, 100);

	assert_int_equal(store_branch_reset(s, c, NULL), 0);
	assert_int_equal(store_branch_get(s, c, &bi), 0);
	assert_int_equal(bi.id, c);
	assert_string_equal(bi.name, "c");
	TSTORE_LS_EQ(s, c, STORE_SEQ_LATEST, fx->root, "f");
	assert_int_equal(tstore_size(s, c, f), 150);
	tstore_expect_pat(s, c, f, 1, 0, 50);
	tstore_expect_pat(s, c, f, 3, 50, 100);
	/* writable again after the reset, isolated as before */
	tstore_write_pat(s, c, f, 4, 0, 10);
	tstore_expect_pat(s, fx->br, f, 1, 0, 10);
	assert_int_equal(store_branch_reset(s, fx->br, NULL), -EINVAL);
	tstore_branch(s, "cc", c);
	assert_int_equal(store_branch_reset(s, c, NULL), -ENOTEMPTY);
}

/* store_branch_reset_at: the branch reads its parent exactly as of the
 * seq given (not its writes after), its own writes before the reset stay
 * gone, and a seq above now is -EINVAL. */
static void test_store_branch_reset_at(void **state)
{
	struct tstore_fx *fx = *state;
	struct store *s = fx->s;
	uint64_t f, c, at;

	f = tstore_mkfile(s, fx->br, fx->root, "f");
	tstore_write_pat(s, fx->br, f, 1, 0, 100);
	c = tstore_branch(s, "c", fx->br);
	tstore_write_pat(s, c, f, 2, 0, 50);
	tstore_write_pat(s, fx->br, f, 3, 0, 20);
	at = store_seq_now(s);
	tstore_write_pat(s, fx->br, f, 5, 0, 100);
	tstore_mkfile(s, fx->br, fx->root, "later");

	assert_int_equal(store_branch_reset_at(s, c, store_seq_now(s) + 1000,
					       NULL),
			 -EINVAL);
	tstore_expect_pat(s, c, f, 2, 0, 50);
	assert_int_equal(store_branch_reset_at(s, c, at, NULL), 0);
	TSTORE_LS_EQ(s, c, STORE_SEQ_LATEST, fx->root, "f");
	tstore_expect_pat(s, c, f, 3, 0, 20);
	tstore_expect_pat(s, c, f, 1, 20, 80);
	tstore_write_pat(s, c, f, 4, 0, 10);
	tstore_expect_pat(s, c, f, 4, 0, 10);
	tstore_expect_pat(s, fx->br, f, 5, 0, 100);
}

/* ---- persistence ---- */

static void test_store_persist_close_reopen(void **state)
{
	struct tstore_fx *fx = *state;
	uint64_t f, d, x, c, s1, seq_before, l;
	struct store_branch_info bi;
	char target[64];

	f = tstore_mkfile(fx->s, fx->br, fx->root, "f");
	tstore_write_pat(fx->s, fx->br, f, 1, 0, 3 * BS + 7);
	s1 = store_seq_now(fx->s);
	tstore_write_pat(fx->s, fx->br, f, 2, BS, 10);
	d = tstore_mkdir(fx->s, fx->br, fx->root, "d");
	x = tstore_mkfile(fx->s, fx->br, d, "x");
	tstore_write_pat(fx->s, fx->br, x, 3, (5ull << 30) + 123, 50);
	l = tstore_mknod(fx->s, fx->br, d, "lnk", S_IFLNK | 0777, "../f");
	c = tstore_branch(fx->s, "c", fx->br);
	tstore_write_pat(fx->s, c, f, 4, 0, 5);
	assert_int_equal(store_unlink(fx->s, c, d, "x"), 0);
	seq_before = store_seq_now(fx->s);

	tstore_fx_reopen(fx);

	assert_true(store_seq_now(fx->s) >= seq_before);
	assert_int_equal(store_branch_lookup(fx->s, "c", &bi), 0);
	assert_int_equal(bi.id, c);
	assert_int_equal(bi.parent_id, fx->br);
	assert_int_equal(tstore_root(fx->s, fx->br), fx->root);
	TSTORE_LS_EQ(fx->s, fx->br, STORE_SEQ_LATEST, fx->root, "d,f");
	TSTORE_LS_EQ(fx->s, fx->br, STORE_SEQ_LATEST, d, "lnk,x");
	TSTORE_LS_EQ(fx->s, c, STORE_SEQ_LATEST, d, "lnk");
	tstore_expect_pat(fx->s, fx->br, f, 1, 0, BS);
	tstore_expect_pat(fx->s, fx->br, f, 2, BS, 10);
	tstore_expect_pat(fx->s, fx->br, f, 1, BS + 10, 2 * BS - 3);
	tstore_expect_pat_at(fx->s, fx->br, s1, f, 1, 0, 3 * BS + 7);
	tstore_expect_pat(fx->s, c, f, 4, 0, 5);
	tstore_expect_pat(fx->s, fx->br, x, 3, (5ull << 30) + 123, 50);
	assert_int_equal(tstore_size(fx->s, fx->br, x), (5ull << 30) + 173);
	assert_int_equal(store_readlink(fx->s, fx->br, STORE_SEQ_LATEST, l,
					target, sizeof(target)),
			 4);
	assert_string_equal(target, "../f");

	/* new seqs and inode numbers continue after the old ones */
	{
		uint64_t n = tstore_mkfile(fx->s, fx->br, fx->root, "after");

		assert_true(n > f && n > d && n > x && n > l);
		tstore_write_pat(fx->s, fx->br, f, 5, 0, 10);
		assert_true(store_seq_now(fx->s) > seq_before);
		tstore_expect_pat_at(fx->s, fx->br, s1, f, 1, 0, 10);
		tstore_expect_pat_at(fx->s, fx->br, seq_before, f, 2, BS, 10);
	}
	/* and a second reopen still agrees */
	tstore_fx_reopen(fx);
	tstore_expect_pat(fx->s, fx->br, f, 5, 0, 10);
	tstore_expect_pat(fx->s, c, f, 4, 0, 5);
}

/* Deeper than the store's inline view (16 levels): 40 levels, each writing
 * its own block; as-of reads through the whole chain. */
static void test_store_isolation_chain_depth_40(void **state)
{
	struct tstore_fx *fx = *state;
	struct store *s = fx->s;
	enum { DEPTH = 40 };
	uint64_t br[DEPTH + 1], seq[DEPTH + 1], f;
	char name[32];
	int i, j;

	f = tstore_mkfile(s, fx->br, fx->root, "f");
	br[0] = fx->br;
	for (i = 0; i <= DEPTH; i++) {
		if (i > 0) {
			snprintf(name, sizeof(name), "d%d", i);
			br[i] = tstore_branch(s, name, br[i - 1]);
		}
		tstore_write_pat(s, br[i], f, 300 + (uint32_t)i,
				 (uint64_t)i * BS + 7, 100);
		seq[i] = store_seq_now(s);
	}
	for (j = 0; j <= DEPTH; j += (j < 15 ? 5 : 1)) {
		for (i = 0; i <= DEPTH; i++) {
			if (i <= j)
				tstore_expect_pat(s, br[j], f, 300 + (uint32_t)i,
						  (uint64_t)i * BS + 7, 100);
			else if (j == DEPTH)
				break;
		}
		assert_int_equal(tstore_size(s, br[j], f),
				 (uint64_t)j * BS + 107);
	}
	/* the deepest branch as of each level's write */
	for (i = 0; i <= DEPTH; i += 3)
		assert_int_equal(tstore_size_at(s, br[DEPTH], seq[i], f),
				 (uint64_t)i * BS + 107);
	{
		struct store_branch_info *anc = NULL;
		size_t n = 0;

		assert_int_equal(store_branch_ancestry(s, br[DEPTH], &anc, &n),
				 0);
		assert_int_equal(n, DEPTH + 1);
		assert_int_equal(anc[DEPTH].id, fx->br);
		free(anc);
	}
	/* the whole chain survives a reopen */
	tstore_fx_reopen(fx);
	tstore_expect_pat(fx->s, br[DEPTH], f, 300, 7, 100);
	tstore_expect_pat(fx->s, br[DEPTH], f, 300 + DEPTH,
			  (uint64_t)DEPTH * BS + 7, 100);
}

static void test_store_write_read_edges(void **state)
{
	struct tstore_fx *fx = *state;
	struct store *s = fx->s;
	struct store_attr a;
	unsigned char b[8];
	uint64_t f;

	f = tstore_mkfile(s, fx->br, fx->root, "f");
	assert_int_equal(store_write(s, fx->br, f, b, 0, 1000, NULL), 0);
	assert_int_equal(tstore_size(s, fx->br, f), 0);
	tstore_write_pat(s, fx->br, f, 1, 0, 100);
	assert_int_equal(store_read(s, fx->br, STORE_SEQ_LATEST, f, b, 0, 0),
			 0);
	/* off + len past 2^63 - 1 */
	assert_int_equal(store_write(s, fx->br, f, b, sizeof(b),
				     (uint64_t)INT64_MAX - 4, NULL),
			 -EFBIG);
	assert_int_equal(store_write(s, fx->br, f, b, sizeof(b), UINT64_MAX - 2,
				     NULL),
			 -EFBIG);
	memset(&a, 0, sizeof(a));
	a.size = (uint64_t)INT64_MAX + 1;
	assert_int_equal(store_setattr(s, fx->br, f, &a, STORE_SET_SIZE, NULL),
			 -EFBIG);
	assert_int_equal(tstore_size(s, fx->br, f), 100);
	/* STORE_SET_GROW never shrinks, and extends like STORE_SET_SIZE */
	a.size = 40;
	assert_int_equal(store_setattr(s, fx->br, f, &a,
				       STORE_SET_SIZE | STORE_SET_GROW, NULL),
			 0);
	assert_int_equal(tstore_size(s, fx->br, f), 100);
	tstore_expect_pat(s, fx->br, f, 1, 0, 100);
	a.size = 300;
	assert_int_equal(store_setattr(s, fx->br, f, &a,
				       STORE_SET_SIZE | STORE_SET_GROW, NULL),
			 0);
	assert_int_equal(tstore_size(s, fx->br, f), 300);
	a.size = 100;
	assert_int_equal(store_setattr(s, fx->br, f, &a, STORE_SET_SIZE, NULL),
			 0);
	assert_int_equal(tstore_size(s, fx->br, f), 100);
	/* a read right at the last byte, and one huge length */
	{
		unsigned char *big = malloc(1u << 20);

		assert_non_null(big);
		assert_int_equal(store_read(s, fx->br, STORE_SEQ_LATEST, f, big,
					    1u << 20, 99),
				 1);
		assert_int_equal(big[0], tstore_byte(1, 99));
		free(big);
	}
	/* writes with the very last byte as the end */
	tstore_write_pat(s, fx->br, f, 2, (uint64_t)INT64_MAX - 10, 10);
	assert_int_equal(tstore_size(s, fx->br, f), (uint64_t)INT64_MAX);
	tstore_expect_pat(s, fx->br, f, 2, (uint64_t)INT64_MAX - 10, 10);
	tstore_expect_pat(s, fx->br, f, 1, 0, 100);
	tstore_truncate(s, fx->br, f, 50);
	tstore_expect_pat(s, fx->br, f, 1, 0, 50);
}

static void test_store_branch_reset_drop_names_and_past(void **state)
{
	struct tstore_fx *fx = *state;
	struct store *s = fx->s;
	static const char *const drop[] = { "postmaster.pid", NULL };
	uint64_t f, c, pid, s1;

	f = tstore_mkfile(s, fx->br, fx->root, "f");
	tstore_write_pat(s, fx->br, f, 1, 0, 100);
	c = tstore_branch(s, "c", fx->br);
	tstore_write_pat(s, c, f, 2, 0, 100);
	s1 = store_seq_now(s);
	pid = tstore_mkfile(s, fx->br, fx->root, "postmaster.pid");
	(void)pid;
	assert_int_equal(store_branch_reset(s, c, drop), 0);
	TSTORE_LS_EQ(s, c, STORE_SEQ_LATEST, fx->root, "f");
	TSTORE_LS_EQ(s, fx->br, STORE_SEQ_LATEST, fx->root, "f,postmaster.pid");
	tstore_expect_pat(s, c, f, 1, 0, 100);
	/* as of before the reset, the branch's old changes are gone too */
	{
		unsigned char b[100];
		ssize_t n = store_read(s, c, s1, f, b, sizeof(b), 0);

		assert_int_equal(n, 100);
		tstore_expect_pat_at(s, c, s1, f, 1, 0, 100);
	}
	tstore_fx_reopen(fx);
	TSTORE_LS_EQ(fx->s, c, STORE_SEQ_LATEST, fx->root, "f");
	tstore_expect_pat(fx->s, c, f, 1, 0, 100);
}

/* The tree the usage tests start from: f (3 blocks and 5 bytes), d/g
 * (10 bytes at 1000), g2 a hard link of g, d/l a symbolic link to f. */
static void tusage_tree(struct store *s, uint64_t br, uint64_t root,
			uint64_t *f, uint64_t *d, uint64_t *g)
{
	*f = tstore_mkfile(s, br, root, "f");
	tstore_write_pat(s, br, *f, 1, 0, 3 * BS + 5);
	*d = tstore_mkdir(s, br, root, "d");
	*g = tstore_mkfile(s, br, *d, "g");
	tstore_write_pat(s, br, *g, 2, 1000, 10);
	assert_int_equal(store_link(s, br, *g, root, "g2", NULL), 0);
	(void)tstore_mknod(s, br, *d, "l", S_IFLNK | 0777, "f");
}

static void test_store_usage_and_stats(void **state)
{
	struct tstore_fx *fx = *state;
	struct store *s = fx->s;
	struct store_usage u;
	struct store_stats st;
	uint64_t f, g, d, c;

	tusage_tree(s, fx->br, fx->root, &f, &d, &g);

	assert_int_equal(store_branch_usage(s, fx->br, &u), 0);
	/* f + g once (hard link), sizes of regular files only */
	assert_int_equal(u.logical_bytes, 3 * BS + 5 + 1010);
	/* root, f, d, g, l */
	assert_int_equal(u.files, 5);

	c = tstore_branch(s, "c", fx->br);
	assert_int_equal(store_branch_usage(s, c, &u), 0);
	assert_int_equal(u.written_bytes, 0);
	tstore_write_pat(s, c, f, 3, 0, 100);
	assert_int_equal(store_unlink(s, c, d, "g"), 0);
	assert_int_equal(store_branch_usage(s, c, &u), 0);
	assert_int_equal(u.written_bytes, 100);
	assert_int_equal(u.logical_bytes, 3 * BS + 5 + 1010);
	assert_int_equal(store_unlink(s, c, fx->root, "g2"), 0);
	assert_int_equal(store_branch_usage(s, c, &u), 0);
	assert_int_equal(u.logical_bytes, 3 * BS + 5);
	assert_int_equal(u.files, 4);

	assert_int_equal(store_stats(s, &st), 0);
	assert_int_equal(st.branches, 2);
	assert_int_equal(st.seq, store_seq_now(s));
	assert_true(st.next_ino > g);
	assert_true(st.disk_bytes > 0);
	assert_true(st.fs_total_bytes >= st.fs_avail_bytes);
	assert_true(st.fs_avail_bytes > 0);
	assert_int_equal(store_branch_count(s), 2);
	assert_int_equal(store_branch_delete(s, tstore_branch(s, "gone",
							      fx->br)),
			 0);
	assert_int_equal(store_branch_count(s), 2);
	/* written_bytes survives a reopen */
	tstore_fx_reopen(fx);
	assert_int_equal(store_branch_usage(fx->s, c, &u), 0);
	assert_int_equal(u.written_bytes, 100);
}

/* A walk whose branch nothing wrote since is served without reading the
 * store; every change of the branch (write, unlink, rename, mkdir,
 * truncate, reset) is seen; a change of its parent after the fork is
 * not, and costs the child no new walk. */
static void tusage(struct tstore_fx *fx, uint64_t br, uint64_t bytes,
		   uint64_t files, bool cached)
{
	unsigned long c0 = kv_fault_calls(fx->fault, KV_FAULT_READS);
	struct store_usage u;

	assert_int_equal(store_branch_usage(fx->s, br, &u), 0);
	assert_int_equal(u.logical_bytes, bytes);
	assert_int_equal(u.files, files);
	if (cached)
		assert_int_equal(kv_fault_calls(fx->fault, KV_FAULT_READS), c0);
	else
		assert_true(kv_fault_calls(fx->fault, KV_FAULT_READS) > c0);
}

static void test_store_usage_cached_until_changed(void **state)
{
	struct tstore_fx *fx = *state;
	struct store *s = fx->s;
	uint64_t f, c, d, g;

	f = tstore_mkfile(s, fx->br, fx->root, "f");
	tstore_write_pat(s, fx->br, f, 1, 0, 2 * BS);
	c = tstore_branch(s, "c", fx->br);
	tusage(fx, c, 2 * BS, 2, false);
	tusage(fx, c, 2 * BS, 2, true);
	/* the parent writes after the fork: the child sees none of it */
	tstore_write_pat(s, fx->br, f, 2, 0, 5 * BS);
	tusage(fx, c, 2 * BS, 2, true);
	tusage(fx, fx->br, 5 * BS, 2, false);
	/* each change of the child is seen */
	tstore_write_pat(s, c, f, 3, 0, 3 * BS);
	tusage(fx, c, 3 * BS, 2, false);
	tusage(fx, c, 3 * BS, 2, true);
	d = tstore_mkdir(s, c, tstore_root(s, c), "d");
	tusage(fx, c, 3 * BS, 3, false);
	g = tstore_mkfile(s, c, d, "g");
	tstore_write_pat(s, c, g, 4, 0, 100);
	tusage(fx, c, 3 * BS + 100, 4, false);
	tstore_truncate(s, c, g, 10);
	tusage(fx, c, 3 * BS + 10, 4, false);
	assert_int_equal(store_rename(s, c, d, "g", tstore_root(s, c), "g",
				      0),
			 0);
	tusage(fx, c, 3 * BS + 10, 4, false);
	assert_int_equal(store_unlink(s, c, tstore_root(s, c), "g"), 0);
	tusage(fx, c, 3 * BS, 3, false);
	tusage(fx, c, 3 * BS, 3, true);
	/* a reset brings the parent's head back */
	assert_int_equal(store_branch_reset(s, c, NULL), 0);
	tusage(fx, c, 5 * BS, 2, false);
	tusage(fx, c, 5 * BS, 2, true);
}

/* What a walk of the branch's tree from its root finds (files reachable,
 * each once; sizes of the regular ones): what store_branch_usage gave when
 * it walked the tree, read here through the public API only. */
static void tusage_walk(struct store *s, uint64_t br, uint64_t *bytes,
			uint64_t *files)
{
	uint64_t stack[256], seen[4096];
	size_t nstack = 0, nseen = 0, i, j;

	*bytes = 0;
	*files = 1;
	stack[nstack++] = tstore_root(s, br);
	while (nstack) {
		uint64_t dir = stack[--nstack];
		struct store_dirent *d = NULL;
		size_t n = 0;

		assert_int_equal(store_readdir(s, br, STORE_SEQ_LATEST, dir, &d,
					       &n),
				 0);
		for (i = 0; i < n; i++) {
			struct store_attr a;
			bool dup = false;

			if (S_ISDIR(d[i].mode)) {
				assert_true(nstack < 256);
				stack[nstack++] = d[i].ino;
				(*files)++;
				continue;
			}
			for (j = 0; j < nseen && !dup; j++)
				dup = seen[j] == d[i].ino;
			if (dup)
				continue;
			assert_true(nseen < 4096);
			seen[nseen++] = d[i].ino;
			(*files)++;
			assert_int_equal(store_getattr(s, br, STORE_SEQ_LATEST,
						       d[i].ino, &a),
					 0);
			if (S_ISREG(a.mode))
				*bytes += a.size;
		}
		free(d);
	}
}

/* store_branch_usage of every live branch is what a walk finds. */
static void tusage_all_walk(struct store *s, const char *when)
{
	struct store_branch_info *all = NULL;
	size_t n = 0, i;

	assert_int_equal(store_branch_list(s, &all, &n), 0);
	for (i = 0; i < n; i++) {
		struct store_usage u;
		uint64_t bytes, files;

		tusage_walk(s, all[i].id, &bytes, &files);
		assert_int_equal(store_branch_usage(s, all[i].id, &u), 0);
		if (u.logical_bytes != bytes || u.files != files)
			fail_msg("%s: branch '%s': usage %llu bytes, %llu files; a walk finds %llu bytes, %llu files",
				 when, all[i].name,
				 (unsigned long long)u.logical_bytes,
				 (unsigned long long)u.files,
				 (unsigned long long)bytes,
				 (unsigned long long)files);
	}
	free(all);
}

/* The figures without a walk (USAGE-2 in store.c) are a walk's, through
 * every change of the namespace and of sizes, in children, grandchildren
 * and children of a past moment, with the parent writing between forks,
 * after a reset, a fork that drops names, and a reopen. */
static void test_store_usage_is_the_walk(void **state)
{
	struct tstore_fx *fx = *state;
	struct store *s = fx->s;
	static const char *const drop[] = { "postmaster.pid", NULL };
	struct store_branch_create_args a;
	struct store_branch_info bi;
	uint64_t f, d, e, g, h, c1, c2, c3, r, past, x, y;
	int i;

	tusage_tree(s, fx->br, fx->root, &f, &d, &g);
	e = tstore_mkdir(s, fx->br, d, "e");
	h = tstore_mkfile(s, fx->br, e, "h");
	tstore_write_pat(s, fx->br, h, 3, 0, 77);
	(void)tstore_mkfile(s, fx->br, fx->root, "postmaster.pid");
	tusage_all_walk(s, "root alone");
	past = store_seq_now(s);

	c1 = tstore_branch(s, "c1", fx->br);
	tusage_all_walk(s, "fresh child");
	/* the parent changes after the fork */
	tstore_write_pat(s, fx->br, f, 4, 0, 9 * BS);
	(void)tstore_mkfile(s, fx->br, d, "n");
	assert_int_equal(store_unlink(s, fx->br, fx->root, "g2"), 0);
	tusage_all_walk(s, "parent changed");

	/* the child changes its copy */
	tstore_truncate(s, c1, f, 10);
	assert_int_equal(store_unlink(s, c1, fx->root, "g2"), 0);
	assert_int_equal(store_unlink(s, c1, e, "h"), 0);
	assert_int_equal(store_rmdir(s, c1, d, "e"), 0);
	x = tstore_mkfile(s, c1, fx->root, "x");
	tstore_write_pat(s, c1, x, 5, 0, 2 * BS);
	assert_int_equal(store_rename(s, c1, fx->root, "x", fx->root, "f", 0),
			 0);
	(void)tstore_mkdir(s, c1, fx->root, "new");
	assert_int_equal(store_rename(s, c1, fx->root, "new", d, "moved", 0),
			 0);
	(void)tstore_mkdir(s, c1, fx->root, "d2");
	assert_int_equal(store_rename(s, c1, d, "moved", fx->root, "d2",
				      STORE_RENAME_EXCHANGE),
			 0);
	assert_int_equal(store_rename(s, c1, fx->root, "d2", d, "moved", 0),
			 0);
	assert_int_equal(store_link(s, c1, g, d, "g3", NULL), 0);
	tusage_all_walk(s, "child changed");

	/* a grandchild, and its parent writing after it */
	c2 = tstore_branch(s, "c2", c1);
	tstore_write_pat(s, c1, g, 6, 0, 5 * BS);
	y = tstore_mkfile(s, c2, d, "y");
	tstore_write_pat(s, c2, y, 7, 0, 123);
	assert_int_equal(store_unlink(s, c2, d, "g"), 0);
	tusage_all_walk(s, "grandchild");

	/* a child of a past moment of the root, and siblings forked while
	 * the root keeps writing one file (more versions past one fork than
	 * the scan steps over) */
	(void)tstore_branch_at(s, "past", fx->br, past);
	for (i = 0; i < 12; i++) {
		char name[16];

		snprintf(name, sizeof(name), "sib%d", i);
		if (i % 3 == 0)
			(void)tstore_branch(s, name, fx->br);
		tstore_write_pat(s, fx->br, f, 10 + (uint32_t)i,
				 9 * BS + (uint64_t)i * 100, 100);
	}
	tusage_all_walk(s, "siblings");
	/* more versions between two forks than the scan steps over */
	(void)tstore_branch(s, "far0", fx->br);
	for (i = 0; i < 20; i++)
		tstore_write_pat(s, fx->br, f, 30 + (uint32_t)i,
				 10 * BS + (uint64_t)i * 10, 10);
	(void)tstore_branch(s, "far1", fx->br);
	tstore_write_pat(s, fx->br, f, 60, 11 * BS, 10);
	tstore_fx_reopen(fx);
	s = fx->s;
	tusage_all_walk(s, "far siblings");

	/* a fork that drops a name, and a reset */
	a = tstore_args("dropped", fx->br, STORE_SEQ_LATEST);
	a.drop_names = drop;
	assert_int_equal(store_branch_create(s, &a, &bi), 0);
	c3 = tstore_branch(s, "c3", fx->br);
	(void)tstore_mkfile(s, c3, fx->root, "z");
	tusage_all_walk(s, "dropped");
	assert_int_equal(store_branch_reset(s, c3, drop), 0);
	tusage_all_walk(s, "reset");

	/* an empty branch beside them */
	r = tstore_branch(s, "r", 0);
	(void)tstore_mkfile(s, r, tstore_root(s, r), "only");
	tusage_all_walk(s, "empty branch");

	tstore_fx_reopen(fx);
	tusage_all_walk(fx->s, "reopened");
	tstore_write_pat(fx->s, c1, g, 8, 0, 7 * BS);
	tstore_write_pat(fx->s, fx->br, f, 9, 0, 1);
	tusage_all_walk(fx->s, "reopened and written");
}

/* base/f0..f199 of 100 bytes each in branch br; returns f199's inode. */
static uint64_t tusage_base(struct store *s, uint64_t br, uint64_t root)
{
	uint64_t d = tstore_mkdir(s, br, root, "base"), f = 0;

	for (int i = 0; i < 200; i++) {
		char name[16];

		snprintf(name, sizeof(name), "f%d", i);
		f = tstore_mkfile(s, br, d, name);
		tstore_write_pat(s, br, f, (uint32_t)i, 0, 100);
	}
	return f;
}

/* After a reopen, the figures of the 30 children kids of tusage_base's
 * parent: its 200 files of 100 bytes (and, hot, child i's i + 1 bytes of
 * one more file written before its fork), files in all, read with fewer
 * than 2,000 KV reads (the parent's inodes once, not once per child). */
static void tusage_kids_read_once(struct tstore_fx *fx, const uint64_t *kids,
				  bool hot, uint64_t files, const char *what)
{
	struct store_usage u;
	unsigned long c0, reads;
	int i;

	tstore_fx_reopen(fx);
	c0 = kv_fault_calls(fx->fault, KV_FAULT_READS);
	for (i = 0; i < 30; i++) {
		assert_int_equal(store_branch_usage(fx->s, kids[i], &u), 0);
		assert_int_equal(u.logical_bytes,
				 200 * 100 + (hot ? (uint64_t)i + 1 : 0));
		assert_int_equal(u.files, files);
	}
	reads = kv_fault_calls(fx->fault, KV_FAULT_READS) - c0;
	print_message("usage of 30 children of %s: %lu reads\n", what, reads);
	assert_true(reads < 2000);
}

/* A child its parent's tree is not walked for: after a reopen, the
 * figures of 30 children of a parent of 200 files read the parent's
 * inodes once, not once per child (a walk of each read about 2 KV
 * objects per file: some 12,000 reads). */
static void test_store_usage_children_read_parent_once(void **state)
{
	struct tstore_fx *fx = *state;
	struct store *s = fx->s;
	uint64_t kids[30], f;
	unsigned long c0, reads;
	struct store_usage u;
	int i;

	f = tusage_base(s, fx->br, fx->root);
	for (i = 0; i < 30; i++) {
		char name[16];

		snprintf(name, sizeof(name), "k%d", i);
		kids[i] = tstore_branch(s, name, fx->br);
	}
	tusage_kids_read_once(fx, kids, false, 202, "a 200-file parent");
	s = fx->s;
	/* a write to one child: only its own inodes are read again */
	tstore_write_pat(s, kids[7], f, 99, 0, 1000);
	c0 = kv_fault_calls(fx->fault, KV_FAULT_READS);
	assert_int_equal(store_branch_usage(s, kids[7], &u), 0);
	assert_int_equal(u.logical_bytes, 199 * 100 + 1000);
	reads = kv_fault_calls(fx->fault, KV_FAULT_READS) - c0;
	print_message("usage after one write: %lu reads\n", reads);
	assert_true(reads < 50);
}

/* The same for children forked from a busy parent, one that writes
 * between every two forks: each child reads the parent at a different
 * tree, and still the parent's inodes are read once for all of them
 * (scanned once per child: 6,474 reads; walked: 18,420). */
static void test_store_usage_busy_parent_read_once(void **state)
{
	struct tstore_fx *fx = *state;
	struct store *s = fx->s;
	uint64_t kids[30], hot;
	int i;

	tusage_base(s, fx->br, fx->root);
	hot = tstore_mkfile(s, fx->br, fx->root, "hot");
	for (i = 0; i < 30; i++) {
		char name[16];

		tstore_write_pat(s, fx->br, hot, (uint32_t)i, 0,
				 (uint64_t)i + 1);
		snprintf(name, sizeof(name), "k%d", i);
		kids[i] = tstore_branch(s, name, fx->br);
	}
	tusage_kids_read_once(fx, kids, true, 203, "a busy 200-file parent");
}

struct tusage_churn {
	struct store *s;
	uint64_t br, parent, root;
	_Atomic int done;
	int rc;
};

/* Namespace and size changes in c->br, writes to c->parent and new
 * children of it, while the test reads the figures. */
static void *tusage_churn_run(void *arg)
{
	struct tusage_churn *c = arg;
	static unsigned char buf[3 * BS];
	uint64_t inos[200], pf = 0;
	char name[32];
	int i, rc = 0;

	memset(buf, 7, sizeof(buf));
	for (i = 0; i < 200 && !rc; i++) {
		struct store_attr a = tstore_attr(S_IFREG | 0644);
		ssize_t w;

		snprintf(name, sizeof(name), "w%d", i);
		rc = store_create(c->s, c->br, c->root, name, &a, NULL,
				  &inos[i], NULL);
		if (rc)
			break;
		w = store_write(c->s, c->br, inos[i], buf,
				(size_t)(i * 37) % sizeof(buf), 0, NULL);
		if (w < 0)
			rc = (int)w;
		if (!rc && i % 3 == 2) {
			snprintf(name, sizeof(name), "w%d", i - 2);
			rc = store_unlink(c->s, c->br, c->root, name);
		}
		if (!rc && i % 5 == 4) {
			snprintf(name, sizeof(name), "w%d", i);
			rc = store_link(c->s, c->br, inos[i], c->root, "l",
					NULL);
			if (rc == -EEXIST)
				rc = store_unlink(c->s, c->br, c->root, "l");
		}
		if (!rc && !pf)
			rc = store_create(c->s, c->parent, c->root, "pf", &a,
					  NULL, &pf, NULL);
		if (!rc) {
			w = store_write(c->s, c->parent, pf, buf, 10,
					(uint64_t)i * 10, NULL);
			rc = w < 0 ? (int)w : 0;
		}
		if (!rc && i % 20 == 0) {
			struct store_branch_create_args ba;
			struct store_branch_info bi;

			snprintf(name, sizeof(name), "ch%d", i);
			ba = tstore_args(name, c->parent, STORE_SEQ_LATEST);
			rc = store_branch_create(c->s, &ba, &bi);
		}
	}
	c->rc = rc;
	atomic_store(&c->done, 1);
	return NULL;
}

/* Figures read while a branch, its parent and the parent's new children
 * change are never kept past the change: once the changes stop, every
 * branch's figures are a walk's. */
static void test_store_usage_while_changing(void **state)
{
	struct tstore_fx *fx = *state;
	struct tusage_churn c = { .s = fx->s, .parent = fx->br,
				  .root = fx->root };
	struct store_branch_info *all = NULL;
	struct store_usage u;
	pthread_t th;
	size_t n, i;
	int rounds = 0;

	(void)tstore_mkfile(fx->s, fx->br, fx->root, "base");
	c.br = tstore_branch(fx->s, "c", fx->br);
	assert_int_equal(pthread_create(&th, NULL, tusage_churn_run, &c), 0);
	while (!atomic_load(&c.done)) {
		assert_int_equal(store_branch_list(fx->s, &all, &n), 0);
		for (i = 0; i < n; i++)
			assert_int_equal(store_branch_usage(fx->s, all[i].id,
							    &u),
					 0);
		free(all);
		rounds++;
	}
	assert_int_equal(pthread_join(th, NULL), 0);
	assert_int_equal(c.rc, 0);
	print_message("%d rounds of usage while changing\n", rounds);
	tusage_all_walk(fx->s, "after the changes");
}

/* store_branch_stamp: moves with the branch's own writes and a reset,
 * not with another branch's writes or a new child. */
static void test_store_branch_stamp(void **state)
{
	struct tstore_fx *fx = *state;
	struct store *s = fx->s;
	struct store_stamp a, b;
	uint64_t f, c, c2;

	f = tstore_mkfile(s, fx->br, fx->root, "f");
	c = tstore_branch(s, "c", fx->br);
	assert_int_equal(store_branch_stamp(s, c, &a), 0);
	tstore_write_pat(s, fx->br, f, 1, 0, BS);
	c2 = tstore_branch(s, "c2", c);
	assert_int_equal(store_branch_stamp(s, c, &b), 0);
	assert_memory_equal(&a, &b, sizeof(a));
	tstore_write_pat(s, c, f, 2, 0, 10);
	assert_int_equal(store_branch_stamp(s, c, &b), 0);
	assert_memory_not_equal(&a, &b, sizeof(a));
	a = b;
	(void)tstore_mkfile(s, c, tstore_root(s, c), "g");
	assert_int_equal(store_branch_stamp(s, c, &b), 0);
	assert_memory_not_equal(&a, &b, sizeof(a));
	assert_int_equal(store_branch_delete(s, c2), 0);
	assert_int_equal(store_branch_stamp(s, c, &a), 0);
	assert_int_equal(store_branch_reset(s, c, NULL), 0);
	assert_int_equal(store_branch_stamp(s, c, &b), 0);
	assert_memory_not_equal(&a, &b, sizeof(a));
	assert_int_equal(store_branch_stamp(s, 999999, &b), -ENOENT);
}

static void test_store_time_of_seq(void **state)
{
	struct tstore_fx *fx = *state;
	struct store *s = fx->s;
	int64_t t0, t1, got;
	uint64_t f, sq;

	f = tstore_mkfile(s, fx->br, fx->root, "f");
	t0 = tstore_now_ns();
	tstore_write_pat(s, fx->br, f, 1, 0, 10);
	t1 = tstore_now_ns();
	sq = store_seq_now(s);
	assert_int_equal(store_time_of_seq(s, sq, &got), 0);
	/* to the index's resolution (10 ms) */
	assert_true(got >= t0 - 20000000ll);
	assert_true(got <= t1 + 20000000ll);
}

/* A punch is one commit, also with partial blocks at both ends: a branch
 * made meanwhile sees all of the hole or none of it, and a failed write
 * changes nothing.  It once wrote each partial block as a store_write of
 * its own, then the whole blocks: the second write failing left the head
 * zeroed and the rest as it was. */
static void test_store_punch_one_commit(void **state)
{
	struct tstore_fx *fx = *state;
	struct store *s = fx->s;
	const size_t len = 8 * BS;
	uint64_t f;

	f = tstore_mkfile(s, fx->br, fx->root, "f");
	tstore_write_pat(s, fx->br, f, 7, 0, len);
	/* the first write fails: nothing changes */
	kv_fault_arm(fx->fault, KV_FAULT_WRITE, 1, false, -EIO);
	assert_int_equal(store_punch(s, fx->br, f, BS + 1, 5 * BS - 1, NULL),
			 -EIO);
	assert_int_equal(kv_fault_fired(fx->fault), 1);
	kv_fault_disarm(fx->fault);
	tstore_expect_pat(s, fx->br, f, 7, 0, len);
	/* a second write would fail: there is none */
	kv_fault_arm(fx->fault, KV_FAULT_WRITE, 2, false, -EIO);
	assert_int_equal(store_punch(s, fx->br, f, BS + 1, 5 * BS - 1, NULL),
			 0);
	assert_int_equal(kv_fault_fired(fx->fault), 0);
	kv_fault_disarm(fx->fault);
	tstore_expect_pat(s, fx->br, f, 7, 0, BS + 1);
	tstore_expect_zero(s, fx->br, f, BS + 1, 4 * BS - 2);
	tstore_expect_pat(s, fx->br, f, 7, 5 * BS - 1, 3 * BS + 1);
	/* past the size nothing is written and the size stays */
	assert_int_equal(store_punch(s, fx->br, f, len - 10, len + 3 * BS,
				     NULL),
			 0);
	assert_int_equal(tstore_size(s, fx->br, f), len);
	tstore_expect_zero(s, fx->br, f, len - 10, 10);
	/* ZERO_RANGE without KEEP_SIZE: the zeros and the new size in one
	 * commit (fs_op_fallocate once grew the file with a setattr of its
	 * own after the punch); a failed write changes neither */
	tstore_write_pat(s, fx->br, f, 9, 0, len);
	kv_fault_arm(fx->fault, KV_FAULT_WRITE, 1, false, -EIO);
	assert_int_equal(store_zero_range(s, fx->br, f, len - BS - 5,
					  len + 2 * BS + 3, true, NULL),
			 -EIO);
	kv_fault_disarm(fx->fault);
	assert_int_equal(tstore_size(s, fx->br, f), len);
	tstore_expect_pat(s, fx->br, f, 9, 0, len);
	kv_fault_arm(fx->fault, KV_FAULT_WRITE, 2, false, -EIO);
	assert_int_equal(store_zero_range(s, fx->br, f, len - BS - 5,
					  len + 2 * BS + 3, true, NULL),
			 0);
	assert_int_equal(kv_fault_fired(fx->fault), 0);
	kv_fault_disarm(fx->fault);
	assert_int_equal(tstore_size(s, fx->br, f), len + 2 * BS + 3);
	tstore_expect_pat(s, fx->br, f, 9, 0, len - BS - 5);
	tstore_expect_zero(s, fx->br, f, len - BS - 5, 3 * BS + 8);
	/* a range wholly past the size only grows the file; one that ends
	 * before it never shrinks it */
	assert_int_equal(store_zero_range(s, fx->br, f, len + 4 * BS,
					  len + 5 * BS, true, NULL),
			 0);
	assert_int_equal(tstore_size(s, fx->br, f), len + 5 * BS);
	tstore_expect_zero(s, fx->br, f, len - BS - 5, 6 * BS + 5);
	assert_int_equal(store_zero_range(s, fx->br, f, 0, 10, true, NULL), 0);
	assert_int_equal(tstore_size(s, fx->br, f), len + 5 * BS);
	tstore_expect_zero(s, fx->br, f, 0, 10);
	tstore_expect_pat(s, fx->br, f, 9, 10, len - BS - 15);
}

#define T(f) cmocka_unit_test_setup_teardown(f, tstore_fx_setup, \
					     tstore_fx_teardown)

int main(void)
{
	const struct CMUnitTest tests[] = {
		T(test_store_isolation_parent_child),
		T(test_store_isolation_siblings),
		T(test_store_isolation_grandchildren),
		T(test_store_isolation_deep_chain),
		T(test_store_branch_depth_limit),
		T(test_store_time_travel_overwrites),
		T(test_store_time_travel_branch_at_seq),
		T(test_store_time_travel_seq_at_time),
		T(test_store_time_travel_before_parent),
		T(test_store_truncate_child_then_extend_zeros),
		T(test_store_truncate_unaligned_then_extend),
		T(test_store_partial_block_writes),
		T(test_store_holes_read_zero),
		T(test_store_punch_partial_blocks),
		cmocka_unit_test_setup_teardown(test_store_punch_one_commit,
						tstore_fx_setup_fault,
						tstore_fx_teardown),
		T(test_store_large_offset),
		T(test_store_write_sets_mtime),
		T(test_store_branch_delete_rename_list),
		cmocka_unit_test_setup_teardown(test_store_branch_rename_set,
						tstore_fx_setup_fault,
						tstore_fx_teardown),
		T(test_store_branch_reset),
		T(test_store_branch_reset_at),
		T(test_store_persist_close_reopen),
		T(test_store_isolation_chain_depth_40),
		T(test_store_write_read_edges),
		T(test_store_branch_reset_drop_names_and_past),
		T(test_store_usage_and_stats),
		cmocka_unit_test_setup_teardown(
			test_store_usage_cached_until_changed,
			tstore_fx_setup_fault, tstore_fx_teardown),
		T(test_store_usage_is_the_walk),
		cmocka_unit_test_setup_teardown(
			test_store_usage_children_read_parent_once,
			tstore_fx_setup_fault, tstore_fx_teardown),
		cmocka_unit_test_setup_teardown(
			test_store_usage_busy_parent_read_once,
			tstore_fx_setup_fault, tstore_fx_teardown),
		T(test_store_usage_while_changing),
		T(test_store_branch_stamp),
		T(test_store_time_of_seq),
		T(test_store_parallel_writes_one_file),
	};

	return cmocka_run_group_tests_name("store", tests, NULL, NULL);
}
