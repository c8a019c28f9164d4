/* SPDX-License-Identifier: MIT */
/*
 * test_store_acache.c - INV-8 of store.c: the attribute cache that head
 * reads and writes use must never answer with attributes a fresh lookup
 * would not give: after a write, a setattr, a reset, a branch delete or
 * rename, and never for an as-of read.  Each test first makes sure the
 * entry it then expects to be replaced was really cached (the hit counter
 * moves), so a test cannot pass by missing the cache.
 */
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "store/store_int.h"
#include "test_store_common.h"

static uint64_t acache_hits(struct store *s)
{
	uint64_t hits, misses;

	store_acache_stats(s, &hits, &misses);
	return hits;
}

static uint64_t size_at(struct store *s, uint64_t br, uint64_t seq,
			uint64_t ino)
{
	struct store_attr a;

	assert_int_equal(store_getattr(s, br, seq, ino, &a), 0);
	return a.size;
}

/* getattr twice: the second one must come from the cache. */
static uint64_t size_cached(struct store *s, uint64_t br, uint64_t ino)
{
	uint64_t h = acache_hits(s), sz = size_at(s, br, STORE_SEQ_LATEST, ino);

	assert_int_equal(size_at(s, br, STORE_SEQ_LATEST, ino), sz);
	assert_true(acache_hits(s) > h);
	return sz;
}

static void test_store_acache_read_after_write(void **state)
{
	struct tstore_fx *fx = *state;
	uint64_t f = tstore_mkfile(fx->s, fx->br, fx->root, "f");
	uint64_t h;

	tstore_write_pat(fx->s, fx->br, f, 1, 0, 100);
	assert_int_equal(size_cached(fx->s, fx->br, f), 100);
	/* Each extension must show at once, in getattr and in read. */
	tstore_write_pat(fx->s, fx->br, f, 2, 100, 3 * STORE_BLOCK_SIZE);
	h = acache_hits(fx->s);
	assert_int_equal(size_at(fx->s, fx->br, STORE_SEQ_LATEST, f),
			 100 + 3 * STORE_BLOCK_SIZE);
	assert_true(acache_hits(fx->s) > h); /* the writer installed it */
	tstore_expect_pat(fx->s, fx->br, f, 1, 0, 100);
	tstore_expect_pat(fx->s, fx->br, f, 2, 100, 3 * STORE_BLOCK_SIZE);
}

static void test_store_acache_setattr(void **state)
{
	struct tstore_fx *fx = *state;
	uint64_t f = tstore_mkfile(fx->s, fx->br, fx->root, "f");
	struct store_attr a, out;

	tstore_write_pat(fx->s, fx->br, f, 1, 0, 5000);
	assert_int_equal(size_cached(fx->s, fx->br, f), 5000);
	memset(&a, 0, sizeof(a));
	a.size = 10;
	a.mode = 0600;
	assert_int_equal(store_setattr(fx->s, fx->br, f, &a,
				       STORE_SET_SIZE | STORE_SET_MODE, &out),
			 0);
	assert_int_equal(store_getattr(fx->s, fx->br, STORE_SEQ_LATEST, f, &a),
			 0);
	assert_int_equal(a.size, 10);
	assert_int_equal(a.mode, S_IFREG | 0600);
	tstore_expect_pat(fx->s, fx->br, f, 1, 0, 10);
	/* A write after the shrink reads zeros past the old end (INV-3),
	 * which needs the new size, not the cached 5000. */
	tstore_write_pat(fx->s, fx->br, f, 3, 20, 10);
	assert_int_equal(size_at(fx->s, fx->br, STORE_SEQ_LATEST, f), 30);
	tstore_expect_zero(fx->s, fx->br, f, 10, 10);
}

static void test_store_acache_as_of_reads_bypass(void **state)
{
	struct tstore_fx *fx = *state;
	uint64_t f = tstore_mkfile(fx->s, fx->br, fx->root, "f");
	uint64_t seq1, seq2;

	tstore_write_pat(fx->s, fx->br, f, 1, 0, 100);
	seq1 = store_seq_now(fx->s);
	tstore_write_pat(fx->s, fx->br, f, 2, 100, 100);
	seq2 = store_seq_now(fx->s);
	assert_int_equal(size_cached(fx->s, fx->br, f), 200);
	assert_int_equal(size_at(fx->s, fx->br, seq1, f), 100);
	assert_int_equal(size_at(fx->s, fx->br, seq2, f), 200);
	tstore_expect_pat_at(fx->s, fx->br, seq1, f, 1, 0, 100);
	/* An as-of read past the old end is cut at the old size. */
	{
		unsigned char buf[300];

		assert_int_equal(store_read(fx->s, fx->br, seq1, f, buf,
					    sizeof(buf), 0),
				 100);
	}
	/* ... and it installs nothing a head read would then see. */
	assert_int_equal(size_cached(fx->s, fx->br, f), 200);
}

static void test_store_acache_reset(void **state)
{
	struct tstore_fx *fx = *state;
	uint64_t f = tstore_mkfile(fx->s, fx->br, fx->root, "f");
	uint64_t child;

	tstore_write_pat(fx->s, fx->br, f, 1, 0, 100);
	child = tstore_branch(fx->s, "child", fx->br);
	tstore_write_pat(fx->s, child, f, 2, 0, 3 * STORE_BLOCK_SIZE);
	assert_int_equal(size_cached(fx->s, child, f), 3 * STORE_BLOCK_SIZE);
	/* The parent moves on; the reset must show its new state. */
	tstore_write_pat(fx->s, fx->br, f, 3, 100, 50);
	assert_int_equal(store_branch_reset(fx->s, child, NULL), 0);
	assert_int_equal(size_cached(fx->s, child, f), 150);
	tstore_expect_pat(fx->s, child, f, 1, 0, 100);
	tstore_expect_pat(fx->s, child, f, 3, 100, 50);
	/* The parent's own entry is untouched by the child's reset. */
	assert_int_equal(size_cached(fx->s, fx->br, f), 150);
}

static void test_store_acache_branch_delete_and_rename(void **state)
{
	struct tstore_fx *fx = *state;
	uint64_t f = tstore_mkfile(fx->s, fx->br, fx->root, "f");
	uint64_t c1, c2;
	struct store_attr a;

	tstore_write_pat(fx->s, fx->br, f, 1, 0, 100);
	c1 = tstore_branch(fx->s, "c", fx->br);
	tstore_write_pat(fx->s, c1, f, 2, 0, 777);
	assert_int_equal(size_cached(fx->s, c1, f), 777);
	assert_int_equal(store_branch_rename(fx->s, c1, "c-renamed"), 0);
	assert_int_equal(size_cached(fx->s, c1, f), 777);
	assert_int_equal(store_branch_delete(fx->s, c1), 0);
	assert_int_equal(store_getattr(fx->s, c1, STORE_SEQ_LATEST, f, &a),
			 -ENOENT);
	/* A new branch of the same name is a new id and sees the parent. */
	c2 = tstore_branch(fx->s, "c-renamed", fx->br);
	assert_true(c2 != c1);
	assert_int_equal(size_cached(fx->s, c2, f), 100);
	tstore_expect_pat(fx->s, c2, f, 1, 0, 100);
}

static void test_store_acache_child_and_parent_apart(void **state)
{
	struct tstore_fx *fx = *state;
	uint64_t f = tstore_mkfile(fx->s, fx->br, fx->root, "f");
	uint64_t child;

	tstore_write_pat(fx->s, fx->br, f, 1, 0, 100);
	child = tstore_branch(fx->s, "child", fx->br);
	assert_int_equal(size_cached(fx->s, child, f), 100);
	assert_int_equal(size_cached(fx->s, fx->br, f), 100);
	tstore_write_pat(fx->s, fx->br, f, 2, 100, 100);
	assert_int_equal(size_cached(fx->s, child, f), 100);
	assert_int_equal(size_cached(fx->s, fx->br, f), 200);
	tstore_write_pat(fx->s, child, f, 3, 0, 300);
	assert_int_equal(size_cached(fx->s, child, f), 300);
	assert_int_equal(size_cached(fx->s, fx->br, f), 200);
	tstore_expect_pat(fx->s, fx->br, f, 2, 100, 100);
	tstore_expect_pat(fx->s, child, f, 3, 0, 300);
}

static void test_store_acache_unlink_and_link(void **state)
{
	struct tstore_fx *fx = *state;
	uint64_t f = tstore_mkfile(fx->s, fx->br, fx->root, "f");
	struct store_attr a;

	assert_int_equal(store_getattr(fx->s, fx->br, STORE_SEQ_LATEST, f, &a),
			 0);
	assert_int_equal(store_getattr(fx->s, fx->br, STORE_SEQ_LATEST, f, &a),
			 0);
	assert_int_equal(a.nlink, 1);
	assert_int_equal(store_link(fx->s, fx->br, f, fx->root, "g", NULL), 0);
	assert_int_equal(store_getattr(fx->s, fx->br, STORE_SEQ_LATEST, f, &a),
			 0);
	assert_int_equal(a.nlink, 2);
	assert_int_equal(store_unlink(fx->s, fx->br, fx->root, "f"), 0);
	assert_int_equal(store_getattr(fx->s, fx->br, STORE_SEQ_LATEST, f, &a),
			 0);
	assert_int_equal(a.nlink, 1);
}

/* A writer extends a file while readers fetch its attributes: a reader
 * whose lookup raced with a write must not leave the older size cached
 * behind it, so once the writer is done every reader sees the end. */
struct acache_race {
	struct store *s;
	uint64_t br, ino;
	atomic_bool stop;
};

static void *acache_race_reader(void *arg)
{
	struct acache_race *r = arg;
	unsigned char buf[64];
	struct store_attr a;

	while (!atomic_load(&r->stop)) {
		if (store_getattr(r->s, r->br, STORE_SEQ_LATEST, r->ino, &a))
			return (void *)1;
		if (a.size % 2 == 0 &&
		    store_read(r->s, r->br, STORE_SEQ_LATEST, r->ino, buf,
			       sizeof(buf), 0) < 0)
			return (void *)1;
	}
	return NULL;
}

/* The size a head getattr returns, or UINT64_MAX on an error (no cmocka
 * assertion while the readers run: a failure must not leave them behind). */
static uint64_t size_or_max(struct store *s, uint64_t br, uint64_t ino)
{
	struct store_attr a;

	return store_getattr(s, br, STORE_SEQ_LATEST, ino, &a) ? UINT64_MAX :
								 a.size;
}

static void test_store_acache_racing_readers(void **state)
{
	struct tstore_fx *fx = *state;
	struct acache_race r = { .s = fx->s, .br = fx->br };
	uint64_t i, n = 3000, bad_at = 0, bad_size = 0;
	unsigned char byte = 7;
	pthread_t th[2];
	void *res[2];
	int t;

	r.ino = tstore_mkfile(fx->s, fx->br, fx->root, "f");
	atomic_init(&r.stop, false);
	for (t = 0; t < 2; t++)
		assert_int_equal(pthread_create(&th[t], NULL,
						acache_race_reader, &r),
				 0);
	for (i = 0; i < n && !bad_at; i++) {
		if (store_write(fx->s, fx->br, r.ino, &byte, 1, i, NULL) != 1 ||
		    (bad_size = size_or_max(fx->s, fx->br, r.ino)) != i + 1)
			bad_at = i + 1;
	}
	/* setattr, unlike write, leaves the slot empty after its commit,
	 * so readers miss and load while the next one commits. */
	for (i = n; i < 2 * n && !bad_at; i++) {
		struct store_attr a = { .size = i + 1 };

		if (store_setattr(fx->s, fx->br, r.ino, &a, STORE_SET_SIZE,
				  NULL) != 0 ||
		    (bad_size = size_or_max(fx->s, fx->br, r.ino)) != i + 1)
			bad_at = i + 1;
	}
	atomic_store(&r.stop, true);
	for (t = 0; t < 2; t++)
		assert_int_equal(pthread_join(th[t], &res[t]), 0);
	if (bad_at)
		fail_msg("after operation %llu the size read is %llu",
			 (unsigned long long)bad_at,
			 (unsigned long long)bad_size);
	assert_null(res[0]);
	assert_null(res[1]);
	assert_int_equal(size_cached(fx->s, fx->br, r.ino), 2 * n);
}

/* The race above, made to happen every time: a setattr slips in between a
 * reader's cache miss (and its iterator's snapshot) and the reader's load
 * of the older attributes.  The reader's put of what it loaded must be
 * refused (the slot's generation moved), or the older size would stay
 * cached and every later getattr would return it. */
struct acache_slip {
	struct store *s;
	uint64_t br, ino, size;
	int rc;
};

static void acache_slip_setattr(void *ctx)
{
	struct acache_slip *sl = ctx;
	struct store_attr a = { .size = sl->size };

	sl->rc = store_setattr(sl->s, sl->br, sl->ino, &a, STORE_SET_SIZE,
			       NULL);
}

static void test_store_acache_write_between_miss_and_load(void **state)
{
	struct tstore_fx *fx = *state;
	struct acache_slip sl = { .s = fx->s, .br = fx->br };
	struct store_attr a = { .size = 100 };
	uint64_t round;

	sl.ino = tstore_mkfile(fx->s, fx->br, fx->root, "f");
	for (round = 1; round <= 3; round++) {
		/* setattr leaves the slot empty: the next getattr misses */
		a.size = 100 * round;
		assert_int_equal(store_setattr(fx->s, fx->br, sl.ino, &a,
					       STORE_SET_SIZE, NULL),
				 0);
		sl.size = 100 * round + 1;
		sl.rc = -1;
		kv_fault_hook_iter_move(fx->fault, 1u << KV_CF_INODE, 1,
					acache_slip_setattr, &sl);
		/* this reader loads from before the slipped-in setattr */
		assert_int_equal(size_at(fx->s, fx->br, STORE_SEQ_LATEST,
					 sl.ino),
				 100 * round);
		assert_int_equal(kv_fault_hooks_run(fx->fault), round);
		assert_int_equal(sl.rc, 0);
		/* and must not have cached it */
		assert_int_equal(size_cached(fx->s, fx->br, sl.ino),
				 100 * round + 1);
	}
}

/* Big reads: more blocks than one lookup batch, unaligned at both ends,
 * with blocks from two ancestry levels and holes. */
static void test_store_acache_large_unaligned_read(void **state)
{
	struct tstore_fx *fx = *state;
	uint64_t f = tstore_mkfile(fx->s, fx->br, fx->root, "f");
	size_t len = 70 * STORE_BLOCK_SIZE + 333;
	unsigned char *want = malloc(len);
	uint64_t child, off = 5 * STORE_BLOCK_SIZE + 17, b;

	assert_non_null(want);
	tstore_write_pat(fx->s, fx->br, f, 1, 0, 100 * STORE_BLOCK_SIZE);
	child = tstore_branch(fx->s, "child", fx->br);
	for (b = 0; b < 100; b += 3)
		tstore_write_pat(fx->s, child, f, 2, b * STORE_BLOCK_SIZE,
				 STORE_BLOCK_SIZE);
	for (b = 0; b < 100; b += 7) {
		unsigned char z[STORE_BLOCK_SIZE] = { 0 };

		tstore_write(fx->s, child, f, z, sizeof(z),
			     b * STORE_BLOCK_SIZE);
	}
	for (b = 0; b < len; b++) {
		uint64_t pos = off + b, blk = pos / STORE_BLOCK_SIZE;

		want[b] = blk % 7 == 0 ? 0 :
			  blk % 3 == 0 ? tstore_byte(2, pos) :
					 tstore_byte(1, pos);
	}
	tstore_expect(fx->s, child, f, want, len, off);
	tstore_expect_pat(fx->s, fx->br, f, 1, off, len);
	free(want);
}

#define T(f) \
	cmocka_unit_test_setup_teardown(f, tstore_fx_setup, tstore_fx_teardown)

int main(void)
{
	const struct CMUnitTest tests[] = {
		T(test_store_acache_read_after_write),
		T(test_store_acache_setattr),
		T(test_store_acache_as_of_reads_bypass),
		T(test_store_acache_reset),
		T(test_store_acache_branch_delete_and_rename),
		T(test_store_acache_child_and_parent_apart),
		T(test_store_acache_unlink_and_link),
		T(test_store_acache_racing_readers),
		T(test_store_acache_large_unaligned_read),
		cmocka_unit_test_setup_teardown(
			test_store_acache_write_between_miss_and_load,
			tstore_fx_setup_fault, tstore_fx_teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
