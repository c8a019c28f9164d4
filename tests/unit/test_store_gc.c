/* SPDX-License-Identifier: MIT */
/*
 * test_store_gc.c - cmocka tests of the store's retention window and
 * garbage collection (store_gc, store_set_retention, store_oldest_time),
 * on real RocksDB through the public store API (and store_int.h's count
 * of deletions; one test wraps the KV in the fault KV).
 *
 * What is checked:
 *  - GC keeps every version a read point needs: branch heads, children's
 *    (and grandchildren's) fork points, branches made at a past seq, and
 *    every moment inside the retention window;
 *  - it drops versions shadowed outside the window (counted through
 *    store_gc_stats.keys_deleted, and on disk after a full compaction),
 *    blocks cut off by truncation, and every key of a deleted branch;
 *  - time travel below the horizon is -ERANGE (reads, forks, wall-clock
 *    lookups), the horizon survives a reopen, and store_oldest_time()
 *    names it;
 *  - every branch reads exactly the same tree before and after GC;
 *  - an unlinked inode's blocks are reclaimed unless the in_use callback
 *    says it is still open, and never while a child still links it;
 *  - one GC at a time (-EBUSY from inside the in_use callback);
 *  - a whole compaction that returned 0 having done nothing is not
 *    reported as done, and the next GC compacts (DROP-2 in store.c).
 *
 * The retention window is whole seconds (at least 1), so tests that need
 * versions to fall out of it set it to 1 s and sleep past it.
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

/* Let everything written so far fall out of a 1 s window. */
static void tgc_age_out(struct store *s)
{
	assert_int_equal(store_set_retention(s, 1), 0);
	tstore_sleep_ms(1300);
}

static struct store_gc_stats tgc_run_opts(struct store *s,
					  const struct store_gc_opts *o)
{
	struct store_gc_stats st;
	int rc;

	memset(&st, 0xa5, sizeof(st));
	rc = store_gc(s, o, &st);
	if (rc != 0)
		fail_msg("store_gc = %d", rc);
	assert_true(st.keys_deleted <= st.keys_scanned);
	assert_true(st.horizon_ns == store_oldest_time(s));
	return st;
}

static struct store_gc_stats tgc_run(struct store *s, bool compact)
{
	struct store_gc_opts o = { .full_compaction = compact };

	return tgc_run_opts(s, &o);
}

/* ---- a whole-tree fingerprint of one branch at one seq ---- */

struct tgc_buf {
	char *p;
	size_t len, cap;
};

static void tgc_buf_printf(struct tgc_buf *b, const char *fmt, ...)
{
	va_list ap;
	int n;

	for (;;) {
		va_start(ap, fmt);
		n = vsnprintf(b->p ? b->p + b->len : NULL,
			      b->p ? b->cap - b->len : 0, fmt, ap);
		va_end(ap);
		assert_true(n >= 0);
		if (b->p && b->len + (size_t)n < b->cap)
			break;
		b->cap = (b->cap + (size_t)n + 1) * 2;
		b->p = realloc(b->p, b->cap);
		assert_non_null(b->p);
	}
	b->len += (size_t)n;
}

static uint64_t tgc_fnv(uint64_t h, const unsigned char *p, size_t n)
{
	size_t i;

	for (i = 0; i < n; i++) {
		h ^= p[i];
		h *= 0x100000001b3ull;
	}
	return h;
}

static void tgc_walk(struct store *s, uint64_t br, uint64_t seq, uint64_t dir,
		     const char *path, struct tgc_buf *out)
{
	struct store_dirent *d = NULL;
	size_t n = 0, i;

	assert_int_equal(store_readdir(s, br, seq, dir, &d, &n), 0);
	for (i = 0; i < n; i++) {
		char sub[1024];
		struct store_attr a;

		snprintf(sub, sizeof(sub), "%s/%s", path, d[i].name);
		assert_int_equal(store_getattr(s, br, seq, d[i].ino, &a), 0);
		tgc_buf_printf(out, "%s ino=%llu mode=%o nlink=%u size=%llu",
			       sub, (unsigned long long)d[i].ino, a.mode,
			       a.nlink, (unsigned long long)a.size);
		if (S_ISREG(a.mode)) {
			unsigned char *buf = malloc(a.size + BS);
			ssize_t got;

			assert_non_null(buf);
			got = store_read(s, br, seq, d[i].ino, buf, a.size + BS,
					 0);
			assert_int_equal(got, (ssize_t)a.size);
			tgc_buf_printf(out, " data=%016llx",
				       (unsigned long long)tgc_fnv(
					       0xcbf29ce484222325ull, buf,
					       (size_t)a.size));
			free(buf);
		} else if (S_ISLNK(a.mode)) {
			char t[STORE_SYMLINK_MAX + 1];

			assert_true(store_readlink(s, br, seq, d[i].ino, t,
						   sizeof(t)) >= 0);
			tgc_buf_printf(out, " -> %s", t);
		}
		tgc_buf_printf(out, "\n");
		if (S_ISDIR(a.mode))
			tgc_walk(s, br, seq, d[i].ino, sub, out);
	}
	free(d);
}

/* Caller frees the result. */
static char *tgc_tree(struct store *s, uint64_t br, uint64_t seq)
{
	struct tgc_buf b = { 0 };

	tgc_buf_printf(&b, "branch %llu\n", (unsigned long long)br);
	tgc_walk(s, br, seq, tstore_root(s, br), "", &b);
	return b.p;
}

/* ---- read points ---- */

/* A child's fork point keeps the parent's versions that it reads, also
 * through a grandchild whose fork point is older than its parent's head,
 * and for a branch made at a past seq. */
static void test_store_gc_keeps_fork_points(void **state)
{
	struct tstore_fx *fx = *state;
	struct store *s = fx->s;
	uint64_t f, c1, c2, g, past, s2;
	int i;

	f = tstore_mkfile(s, fx->br, fx->root, "f");
	tstore_write_pat(s, fx->br, f, 1, 0, 4 * BS);
	c1 = tstore_branch(s, "c1", fx->br); /* sees 1 */
	tstore_write_pat(s, fx->br, f, 2, 0, 4 * BS);
	s2 = store_seq_now(s); /* state 2, no branch yet */
	tstore_write_pat(s, fx->br, f, 3, 0, 4 * BS);
	c2 = tstore_branch(s, "c2", fx->br);   /* sees 3 */
	g = tstore_branch(s, "g", c1);	       /* sees 1 through c1 */
	tstore_write_pat(s, c1, f, 4, BS, BS); /* c1 moves on, g does not */
	for (i = 5; i < 10; i++)
		tstore_write_pat(s, fx->br, f, (uint32_t)i, 0, 4 * BS);
	past = tstore_branch_at(s, "past", fx->br, s2); /* sees 2 */
	for (i = 10; i < 15; i++)
		tstore_write_pat(s, fx->br, f, (uint32_t)i, 0, 4 * BS);
	tstore_write_pat(s, c1, f, 15, 2 * BS, BS);

	tgc_age_out(s);
	{
		struct store_gc_stats st = tgc_run(s, true);

		/* root wrote states 1, 2, 3, 5..14 over 4 blocks; 1 (c1,
		 * g), 2 (past), 3 (c2) and 14 (head) are read points, so
		 * 9 x 4 block versions go, besides inode versions */
		assert_true(st.keys_deleted >= 36);
	}
	tstore_expect_pat(s, fx->br, f, 14, 0, 4 * BS);
	tstore_expect_pat(s, c1, f, 1, 0, BS);
	tstore_expect_pat(s, c1, f, 4, BS, BS);
	tstore_expect_pat(s, c1, f, 15, 2 * BS, BS);
	tstore_expect_pat(s, c1, f, 1, 3 * BS, BS);
	tstore_expect_pat(s, c2, f, 3, 0, 4 * BS);
	tstore_expect_pat(s, g, f, 1, 0, 4 * BS);
	tstore_expect_pat(s, past, f, 2, 0, 4 * BS);

	/* and once more after a reopen and a second GC */
	tstore_fx_reopen(fx);
	s = fx->s;
	tgc_run(s, true);
	tstore_expect_pat(s, fx->br, f, 14, 0, 4 * BS);
	tstore_expect_pat(s, g, f, 1, 0, 4 * BS);
	tstore_expect_pat(s, c2, f, 3, 0, 4 * BS);
	tstore_expect_pat(s, past, f, 2, 0, 4 * BS);
	tstore_expect_pat(s, c1, f, 4, BS, BS);
}

/* A reset moves the branch's fork point: the parent's versions that only
 * the old fork point read go at the next GC, also when the parent wrote
 * nothing since (they used to stay until a whole scan of the parent, such
 * as the first GC after a crash: a CI branch reset again and again beside
 * a busy main pinned one old version of every page main changed). */
static void test_store_gc_reset_frees_old_fork_point(void **state)
{
	struct tstore_fx *fx = *state;
	struct store *s = fx->s;
	struct store_gc_stats st;
	uint64_t f, c;

	f = tstore_mkfile(s, fx->br, fx->root, "f");
	tstore_write_pat(s, fx->br, f, 1, 0, 4 * BS);
	c = tstore_branch(s, "c", fx->br); /* reads state 1 */
	tstore_write_pat(s, fx->br, f, 2, 0, 4 * BS);
	tgc_age_out(s);
	st = tgc_run(s, false);
	tstore_expect_pat(s, c, f, 1, 0, 4 * BS);
	/* main is idle from here on; c now reads state 2 */
	assert_int_equal(store_branch_reset(s, c, NULL), 0);
	tstore_expect_pat(s, c, f, 2, 0, 4 * BS);
	tstore_sleep_ms(1300);
	st = tgc_run(s, false);
	/* state 1: 4 blocks and the inode version written with them */
	assert_true(st.keys_deleted >= 4);
	/* c's old fork point lay below the horizon: c and its parent are
	 * scanned whole */
	assert_int_equal(st.branches_scanned_whole, 2);
	tstore_expect_pat(s, fx->br, f, 2, 0, 4 * BS);
	tstore_expect_pat(s, c, f, 2, 0, 4 * BS);
	st = tgc_run(s, false);
	assert_int_equal(st.keys_deleted, 0);
}

/* Inside the window every moment stays readable: GC deletes nothing that
 * a read at any recorded seq needs. */
static void test_store_gc_keeps_window(void **state)
{
	struct tstore_fx *fx = *state;
	struct store *s = fx->s;
	uint64_t f, seqs[12], fs;
	int64_t t_mid = 0, t_start = tstore_now_ns();
	int i;

	assert_int_equal(store_set_retention(s, 3600), 0);
	f = tstore_mkfile(s, fx->br, fx->root, "f");
	for (i = 0; i < 12; i++) {
		tstore_write_pat(s, fx->br, f, (uint32_t)i + 1, 0, 2 * BS);
		seqs[i] = store_seq_now(s);
		if (i == 5) {
			/* > the 10 ms resolution of the time index */
			tstore_sleep_ms(25);
			t_mid = tstore_now_ns();
			tstore_sleep_ms(25);
		}
	}
	{
		struct store_gc_stats st = tgc_run(s, true);

		assert_int_equal(st.keys_deleted, 0);
		/* the store is younger than the window: all of it counts */
		assert_true(st.horizon_ns <= t_start);
	}
	for (i = 0; i < 12; i++)
		tstore_expect_pat_at(s, fx->br, seqs[i], f, (uint32_t)i + 1, 0,
				     2 * BS);
	/* wall clock -> seq inside the window, and a branch from there */
	assert_int_equal(store_seq_at_time(s, t_mid, &fs), 0);
	assert_int_equal(fs, seqs[5]);
	tstore_expect_pat(s, tstore_branch_at(s, "mid", fx->br, fs), f, 6, 0,
			  2 * BS);
}

/* Shadowed versions outside the window go: counted, and gone from disk
 * after a full compaction; a second GC finds nothing more. */
static void test_store_gc_drops_shadowed(void **state)
{
	struct tstore_fx *fx = *state;
	struct store *s = fx->s;
	const size_t len = 2u << 20; /* 256 blocks, incompressible */
	uint64_t f, kept, after;
	struct store_gc_stats st;
	int i;

	assert_int_equal(store_set_retention(s, 3600), 0);
	f = tstore_mkfile(s, fx->br, fx->root, "big");
	for (i = 0; i < 8; i++)
		tstore_write_pat(s, fx->br, f, (uint32_t)i + 1, 0, len);
	/* inside the window: nothing goes, and the compaction puts all
	 * eight versions on disk */
	st = tgc_run(s, true);
	assert_int_equal(st.keys_deleted, 0);
	kept = st.disk_after;
	assert_true(kept >= 8 * len / 2);

	tgc_age_out(s);
	st = tgc_run(s, false);
	assert_true(st.keys_deleted >= 7 * (len / BS));
	assert_true(st.keys_deleted < 7 * (len / BS) + 32);
	/* the pattern compresses to about 2/3 */
	assert_true(st.bytes_deleted >= 7 * len / 2);
	st = tgc_run(s, true);
	assert_int_equal(st.keys_deleted, 0);
	after = st.disk_after;
	/* about one copy of the file is left (plus RocksDB's own files) */
	assert_true(after < 2 * len + (4u << 20));
	assert_true(after < kept / 2);
	tstore_expect_pat(s, fx->br, f, 8, 0, len);
	print_message(
		"    shadowed: 8 x %zu KiB: store %llu KiB in the window, %llu KiB after gc\n",
		len / 1024, (unsigned long long)(kept / 1024),
		(unsigned long long)(after / 1024));
}

/* Blocks cut off by truncation go once no read point needs them; a child
 * forked before the truncation keeps the ones it reads. */
static void test_store_gc_truncated_blocks(void **state)
{
	struct tstore_fx *fx = *state;
	struct store *s = fx->s;
	const size_t len = 64 * BS;
	uint64_t f, h, c;
	struct store_gc_stats st;

	h = tstore_mkfile(s, fx->br, fx->root, "held");
	tstore_write_pat(s, fx->br, h, 2, 0, len);
	c = tstore_branch(s, "before-trunc", fx->br); /* reads h, not f */
	f = tstore_mkfile(s, fx->br, fx->root, "f");
	tstore_write_pat(s, fx->br, f, 1, 0, len);
	tgc_age_out(s);
	tgc_run(s, false); /* whatever else was shadowed */

	tstore_truncate(s, fx->br, f, BS);
	tstore_truncate(s, fx->br, h, BS);
	tgc_age_out(s);
	st = tgc_run(s, true);
	/* 63 blocks cut off from f go; h's stay for the child */
	assert_true(st.keys_deleted >= 63);
	assert_true(st.keys_deleted < 63 + 16);
	assert_int_equal(tstore_size(s, fx->br, f), BS);
	tstore_expect_pat(s, fx->br, f, 1, 0, BS);
	/* extending again reads zeros, not the reclaimed data */
	tstore_truncate(s, fx->br, f, len);
	tstore_expect_zero(s, fx->br, f, BS, len - BS);
	/* the child still reads everything it forked with */
	tstore_expect_pat(s, c, h, 2, 0, len);
	assert_int_equal(tstore_lookup_rc(s, c, STORE_SEQ_LATEST, fx->root,
					  "f"),
			 -ENOENT);
	assert_int_equal(tstore_size(s, fx->br, h), BS);
	tstore_expect_pat(s, fx->br, h, 2, 0, BS);
	/* once the child is gone, h's cut-off blocks go too */
	assert_int_equal(store_branch_delete(s, c), 0);
	st = tgc_run(s, true);
	assert_true(st.keys_deleted >= 63);
}

/* ---- horizon ---- */

static void test_store_gc_time_travel_below_horizon(void **state)
{
	struct tstore_fx *fx = *state;
	struct store *s = fx->s;
	struct store_branch_create_args a;
	struct store_branch_info bi;
	uint64_t f, s1, s_now, seq;
	int64_t t1, oldest, ns;
	char buf[BS];

	f = tstore_mkfile(s, fx->br, fx->root, "f");
	tstore_write_pat(s, fx->br, f, 1, 0, BS);
	s1 = store_seq_now(s);
	tstore_sleep_ms(25); /* > the 10 ms resolution of the time index */
	t1 = tstore_now_ns();
	tstore_sleep_ms(25);
	tstore_write_pat(s, fx->br, f, 2, 0, BS); /* s1 is shadowed */
	assert_int_equal(store_seq_at_time(s, t1, &seq), 0);
	assert_int_equal(seq, s1);
	assert_true(store_oldest_time(s) <= t1);

	tgc_age_out(s);
	tstore_write_pat(s, fx->br, f, 3, 0, BS);
	s_now = store_seq_now(s);
	tgc_run(s, false);
	oldest = store_oldest_time(s);
	assert_true(oldest > t1);
	assert_true(oldest <= tstore_now_ns() - 1000000000ll);

	/* reads, forks and time lookups below the horizon are refused */
	assert_int_equal(store_read(s, fx->br, s1, f, buf, BS, 0), -ERANGE);
	assert_int_equal(store_getattr(s, fx->br, s1, f,
				       &(struct store_attr){ 0 }),
			 -ERANGE);
	a = tstore_args("too-old", fx->br, s1);
	assert_int_equal(store_branch_create(s, &a, &bi), -ERANGE);
	assert_int_equal(store_seq_at_time(s, t1, &seq), -ERANGE);
	assert_int_equal(store_seq_at_time(s, oldest - 1000000, &seq), -ERANGE);
	assert_int_equal(store_time_of_seq(s, s1, &ns), -ERANGE);
	assert_int_equal(store_branch_lookup(s, "too-old", &bi), -ENOENT);

	/* the oldest moment itself and everything after still work, also
	 * as shown with ms (branchctl status): a user gives it back */
	assert_int_equal(store_seq_at_time(s, oldest / 1000000 * 1000000, &seq),
			 0);
	assert_int_equal(store_seq_at_time(s, oldest, &seq), 0);
	tstore_expect_pat_at(s, fx->br, seq, f, 2, 0, BS);
	tstore_expect_pat_at(s, fx->br, s_now, f, 3, 0, BS);
	a = tstore_args("oldest", fx->br, seq);
	assert_int_equal(store_branch_create(s, &a, &bi), 0);
	tstore_expect_pat(s, bi.id, f, 2, 0, BS);

	/* lengthening the window does not bring anything back */
	assert_int_equal(store_set_retention(s, 3600), 0);
	assert_int_equal(store_get_retention(s), 3600);
	assert_int_equal(store_read(s, fx->br, s1, f, buf, BS, 0), -ERANGE);
	tgc_run(s, false);
	assert_int_equal(store_oldest_time(s), oldest);

	/* the horizon is durable */
	tstore_fx_reopen(fx);
	s = fx->s;
	assert_int_equal(store_oldest_time(s), oldest);
	assert_int_equal(store_read(s, fx->br, s1, f, buf, BS, 0), -ERANGE);
	assert_int_equal(store_seq_at_time(s, t1, &seq), -ERANGE);
	tstore_expect_pat_at(s, fx->br, s_now, f, 3, 0, BS);
}

static void test_store_gc_retention_args(void **state)
{
	struct tstore_fx *fx = *state;
	struct store *s = fx->s;

	assert_int_equal(store_get_retention(s), 3600); /* the default */
	assert_int_equal(store_set_retention(s, 0), -EINVAL);
	assert_int_equal(store_set_retention(s, UINT64_MAX), -EINVAL);
	assert_int_equal(store_get_retention(s), 3600);
	assert_int_equal(store_set_retention(s, 7), 0);
	assert_int_equal(store_get_retention(s), 7);
}

/* ---- content is unchanged ---- */

static void tgc_populate(struct store *s, uint64_t br, uint64_t root,
			 uint32_t seed)
{
	uint64_t d, f, g;
	int i;

	d = tstore_mkdir(s, br, root, "dir");
	f = tstore_mkfile(s, br, d, "data");
	for (i = 0; i < 6; i++)
		tstore_write_pat(s, br, f, seed + (uint32_t)i,
				 (uint64_t)i * 3000, 5 * BS);
	g = tstore_mkfile(s, br, root, "sparse");
	tstore_write_pat(s, br, g, seed, 100 * BS + 5, 77);
	tstore_truncate(s, br, g, 300 * BS);
	tstore_mknod(s, br, d, "link", S_IFLNK | 0777, "../sparse");
	f = tstore_mkfile(s, br, root, "gone");
	tstore_write_pat(s, br, f, seed, 0, 3 * BS);
	assert_int_equal(store_unlink(s, br, root, "gone"), 0);
	assert_int_equal(store_link(s, br, g, d, "hard", NULL), 0);
}

static void test_store_gc_branches_read_same(void **state)
{
	struct tstore_fx *fx = *state;
	struct store *s = fx->s;
	uint64_t br[5], f;
	char *before[5], *after;
	size_t nb = 0, i;

	br[nb++] = fx->br;
	tgc_populate(s, fx->br, fx->root, 10);
	br[nb++] = tstore_branch(s, "a", fx->br);
	tgc_populate(s, fx->br, tstore_mkdir(s, fx->br, fx->root, "more"), 20);
	br[nb++] = tstore_branch(s, "b", fx->br);
	tgc_populate(s, br[1], tstore_mkdir(s, br[1], fx->root, "a-only"), 30);
	br[nb++] = tstore_branch(s, "a-child", br[1]);
	f = tstore_lookup(s, br[1], tstore_lookup(s, br[1], fx->root, "dir"),
			  "data");
	tstore_write_pat(s, br[1], f, 99, 7, 3 * BS);
	tstore_truncate(s, br[1], f, 2 * BS);
	br[nb++] = tstore_branch(s, "doomed", br[3]);
	tgc_populate(s, br[4], tstore_mkdir(s, br[4], fx->root, "d"), 40);
	assert_int_equal(store_branch_delete(s, br[4]), 0);
	nb--;
	tstore_write_pat(s, fx->br, f, 50, 0, 20 * BS);
	assert_int_equal(store_unlink(s, br[2], fx->root, "sparse"), 0);

	for (i = 0; i < nb; i++)
		before[i] = tgc_tree(s, br[i], STORE_SEQ_LATEST);
	tgc_age_out(s);
	{
		struct store_gc_stats st = tgc_run(s, true);

		assert_true(st.keys_deleted > 0);
	}
	for (i = 0; i < nb; i++) {
		after = tgc_tree(s, br[i], STORE_SEQ_LATEST);
		assert_string_equal(after, before[i]);
		free(after);
	}
	tstore_fx_reopen(fx);
	s = fx->s;
	tgc_run(s, true);
	for (i = 0; i < nb; i++) {
		after = tgc_tree(s, br[i], STORE_SEQ_LATEST);
		assert_string_equal(after, before[i]);
		free(after);
		free(before[i]);
	}
	{
		struct store_check_report rep;

		assert_int_equal(store_check(s, NULL, NULL, &rep), 0);
		assert_int_equal(rep.bad_records, 0);
		assert_int_equal(rep.bad_blocks, 0);
		assert_int_equal(rep.branches, nb);
	}
}

/* Every key of a deleted branch goes; the disk comes back. */
static void test_store_gc_deleted_branch(void **state)
{
	struct tstore_fx *fx = *state;
	struct store *s = fx->s;
	const size_t len = 4u << 20;
	uint64_t c, f, base, full, after;

	f = tstore_mkfile(s, fx->br, fx->root, "shared");
	tstore_write_pat(s, fx->br, f, 1, 0, 64 * BS);
	tgc_age_out(s);
	base = tgc_run(s, true).disk_after;

	c = tstore_branch(s, "tmp", fx->br);
	f = tstore_mkfile(s, c, fx->root, "private");
	tstore_write_pat(s, c, f, 2, 0, len);
	tstore_write_pat(s, c, tstore_lookup(s, c, fx->root, "shared"), 3, 0,
			 64 * BS);
	full = tgc_run(s, true).disk_after;
	assert_true(full > base + len / 2);
	assert_int_equal(store_branch_delete(s, c), 0);
	after = tgc_run(s, true).disk_after;
	print_message(
		"    deleted branch: %llu KiB before, %llu KiB with it, %llu KiB after gc\n",
		(unsigned long long)(base / 1024),
		(unsigned long long)(full / 1024),
		(unsigned long long)(after / 1024));
	assert_true(after < base + len / 4);
	tstore_expect_pat(s, fx->br,
			  tstore_lookup(s, fx->br, fx->root, "shared"), 1, 0,
			  64 * BS);
	assert_int_equal(store_branch_lookup(s, "tmp",
					     &(struct store_branch_info){ 0 }),
			 -ENOENT);
}

/* Whole compactions are rationed: one asked for right after another is
 * deferred (only the deleted branch's own range is compacted: what
 * RocksDB's WAL still holds of it comes back when the WAL rotates), and
 * once the gap has passed they run again and give the space back. */
static void test_store_gc_compaction_duty(void **state)
{
	struct tstore_fx *fx = *state;
	struct store *s = fx->s;
	const size_t len = 1u << 20;
	struct store_gc_stats st;
	struct timespec t0, t1;
	uint64_t c, base, full;
	char name[16];
	int i;

	tstore_write_pat(s, fx->br, tstore_mkfile(s, fx->br, fx->root, "base"),
			 1, 0, 8 * len);
	tgc_age_out(s);
	c = tstore_branch(s, "a", fx->br);
	tstore_write_pat(s, c, tstore_mkfile(s, c, fx->root, "x"), 2, 0, len);
	assert_int_equal(store_branch_delete(s, c), 0);
	st = tgc_run(s, true);
	assert_true(st.compacted);
	assert_false(st.compaction_deferred);
	base = st.disk_after;
	clock_gettime(CLOCK_MONOTONIC, &t0);

	/* right after it (well within the 1 s minimum gap) */
	c = tstore_branch(s, "b", fx->br);
	tstore_write_pat(s, c, tstore_mkfile(s, c, fx->root, "x"), 3, 0, len);
	full = tgc_run(s, false).disk_after;
	assert_true(full > base + len / 2);
	assert_int_equal(store_branch_delete(s, c), 0);
	clock_gettime(CLOCK_MONOTONIC, &t1);
	st = tgc_run(s, true);
	print_message(
		"    deferred compaction %lld ms after the last one: %llu KiB, %llu KiB with the branch, %llu KiB after gc\n",
		(long long)((t1.tv_sec - t0.tv_sec) * 1000 +
			    (t1.tv_nsec - t0.tv_nsec) / 1000000),
		(unsigned long long)(base / 1024),
		(unsigned long long)(full / 1024),
		(unsigned long long)(st.disk_after / 1024));
	assert_false(st.compacted);
	assert_true(st.compaction_deferred);

	/* the gap is at least 1 s, and nine times the last compaction */
	tstore_sleep_ms(1100);
	for (i = 0; i < 300; i++) {
		snprintf(name, sizeof(name), "c%d", i);
		c = tstore_branch(s, name, fx->br);
		assert_int_equal(store_branch_delete(s, c), 0);
		st = tgc_run(s, true);
		if (!st.compaction_deferred)
			break;
		tstore_sleep_ms(100);
	}
	assert_true(st.compacted);
	/* and the deleted branches' space is back */
	assert_true(st.disk_after < base + len / 4);
	tstore_expect_pat(s, fx->br, tstore_lookup(s, fx->br, fx->root, "base"),
			  1, 0, 8 * len);
}

/* DROP-2: a whole compaction that did nothing and said so by nothing
 * (RocksDB skips a compaction after a background error, and its C API
 * returns as if it ran: the fault KV's no-op) is not reported as done,
 * and what GC deleted stays counted, so that the next GC compacts and
 * the space comes back.  (Before: "compacted", and the next on-demand GC
 * saw nothing worth a compaction until another 1/8 of the store was
 * deleted.) */
static void test_store_gc_compaction_that_did_nothing(void **state)
{
	struct tstore_fx *fx = *state;
	struct store *s = fx->s;
	const size_t len = 4u << 20;
	struct store_gc_stats st;
	uint64_t f, n, garbage;
	int i;

	f = tstore_mkfile(s, fx->br, fx->root, "f");
	tstore_write_pat(s, fx->br, f, 1, 0, len);
	/* the first versions in table files, or the flush of the memtable
	 * would drop them with GC's deletions and leave nothing to compact */
	assert_int_equal(store_data_deletions(s, &n), 0);
	tstore_write_pat(s, fx->br, f, 2, 0, len);
	tgc_age_out(s);
	kv_fault_arm(fx->fault, KV_FAULT_COMPACT, 1, true, KV_FAULT_NOOP);
	st = tgc_run(s, true);
	assert_true(kv_fault_fired(fx->fault) >= 1);
	assert_true(st.keys_deleted >= len / BS);
	assert_false(st.compacted);
	garbage = st.disk_after;
	kv_fault_disarm(fx->fault);
	/* past the gap between two (at least 1 s, and nine times the last
	 * one's duration, which a loaded machine may stretch) */
	for (i = 0; i < 100; i++) {
		tstore_sleep_ms(i ? 100 : 1100);
		st = tgc_run(s, true);
		if (!st.compaction_deferred)
			break;
	}
	print_message(
		"    disk %llu KiB after the compaction that did nothing, %llu KiB after the next gc\n",
		(unsigned long long)(garbage >> 10),
		(unsigned long long)(st.disk_after >> 10));
	assert_true(st.compacted);
	assert_true(st.disk_after + len / 2 < garbage);
	assert_int_equal(store_data_deletions(s, &n), 0);
	assert_int_equal(n, 0);
	tstore_expect_pat(s, fx->br, f, 2, 0, len);
}

/* ---- unlinked inodes ---- */

struct tgc_inuse {
	uint64_t branch, ino; /* report this one as open */
	bool open;
	int calls, calls_match;
	struct store *s;
	int nested_rc;
};

static bool tgc_in_use(void *ctx, uint64_t branch, uint64_t ino)
{
	struct tgc_inuse *u = ctx;

	u->calls++;
	if (branch == u->branch && ino == u->ino) {
		u->calls_match++;
		return u->open;
	}
	return false;
}

static void test_store_gc_unlinked_inode(void **state)
{
	struct tstore_fx *fx = *state;
	struct store *s = fx->s;
	const size_t len = 128 * BS;
	struct tgc_inuse u = { .open = true };
	struct store_gc_opts o = { .in_use = tgc_in_use, .ctx = &u };
	struct store_gc_stats st;
	uint64_t f, keep;

	f = tstore_mkfile(s, fx->br, fx->root, "tmpfile");
	keep = tstore_mkfile(s, fx->br, fx->root, "keep");
	tstore_write_pat(s, fx->br, f, 7, 0, len);
	tstore_write_pat(s, fx->br, keep, 8, 0, 4 * BS);
	assert_int_equal(store_unlink(s, fx->br, fx->root, "tmpfile"), 0);
	u.branch = fx->br;
	u.ino = f;
	tgc_age_out(s);

	/* open: its data stays readable by inode number */
	st = tgc_run_opts(s, &o);
	assert_true(u.calls_match >= 1);
	assert_int_equal(st.inodes_reclaimed, 0);
	assert_true(st.keys_deleted < 16);
	tstore_expect_pat(s, fx->br, f, 7, 0, len);

	/* closed: its blocks go */
	u.open = false;
	u.calls_match = 0;
	o.full_compaction = true;
	st = tgc_run_opts(s, &o);
	assert_true(u.calls_match >= 1);
	assert_int_equal(st.inodes_reclaimed, 1);
	assert_true(st.keys_deleted >= len / BS);
	assert_true(st.bytes_deleted >= len / 2);
	tstore_expect_pat(s, fx->br, keep, 8, 0, 4 * BS);
	assert_int_equal(tstore_lookup_rc(s, fx->br, STORE_SEQ_LATEST, fx->root,
					  "tmpfile"),
			 -ENOENT);

	/* nothing left to do for it */
	u.calls_match = 0;
	st = tgc_run_opts(s, &o);
	assert_int_equal(st.inodes_reclaimed, 0);
	assert_int_equal(st.keys_deleted, 0);
}

/* An inode unlinked in a child only: the parent keeps reading it, and
 * a later child of the parent still links it. */
static void test_store_gc_unlinked_in_child_only(void **state)
{
	struct tstore_fx *fx = *state;
	struct store *s = fx->s;
	struct tgc_inuse u = { .open = false };
	struct store_gc_opts o = { .in_use = tgc_in_use,
				   .ctx = &u,
				   .full_compaction = true };
	uint64_t g, c;

	g = tstore_mkfile(s, fx->br, fx->root, "g");
	tstore_write_pat(s, fx->br, g, 4, 0, 32 * BS);
	c = tstore_branch(s, "child", fx->br);
	assert_int_equal(store_unlink(s, c, fx->root, "g"), 0);
	tgc_age_out(s);
	tgc_run_opts(s, &o);
	tgc_run_opts(s, &o);
	tstore_expect_pat(s, fx->br, g, 4, 0, 32 * BS);
	assert_int_equal(tstore_lookup_rc(s, c, STORE_SEQ_LATEST, fx->root,
					  "g"),
			 -ENOENT);
	c = tstore_branch(s, "child2", fx->br);
	assert_int_equal(tstore_lookup(s, c, fx->root, "g"), g);
	tstore_expect_pat(s, c, g, 4, 0, 32 * BS);
}

/* The case that matters: parent unlinks a file, a child forked before
 * still has it linked; reclaiming the parent's unlinked inode must not
 * take the child's data. */
static void test_store_gc_unlinked_child_still_links(void **state)
{
	struct tstore_fx *fx = *state;
	struct store *s = fx->s;
	struct tgc_inuse u = { .open = false };
	struct store_gc_opts o = { .in_use = tgc_in_use,
				   .ctx = &u,
				   .full_compaction = true };
	uint64_t f, c, g;

	f = tstore_mkfile(s, fx->br, fx->root, "f");
	tstore_write_pat(s, fx->br, f, 3, 0, 32 * BS);
	c = tstore_branch(s, "child", fx->br);
	g = tstore_branch(s, "grandchild", c);
	assert_int_equal(store_unlink(s, fx->br, fx->root, "f"), 0);
	assert_int_equal(store_unlink(s, c, fx->root, "f"), 0);
	tgc_age_out(s);
	tgc_run_opts(s, &o);
	tgc_run_opts(s, &o);
	assert_int_equal(tstore_lookup(s, g, fx->root, "f"), f);
	tstore_expect_pat(s, g, f, 3, 0, 32 * BS);
	assert_int_equal(tstore_lookup_rc(s, c, STORE_SEQ_LATEST, fx->root,
					  "f"),
			 -ENOENT);
}

/* ---- one at a time ---- */

static bool tgc_in_use_nested(void *ctx, uint64_t branch, uint64_t ino)
{
	struct tgc_inuse *u = ctx;
	struct store_gc_stats st;

	(void)branch;
	(void)ino;
	u->calls++;
	u->nested_rc = store_gc(u->s, NULL, &st);
	return true;
}

static void test_store_gc_one_at_a_time(void **state)
{
	struct tstore_fx *fx = *state;
	struct store *s = fx->s;
	struct tgc_inuse u = { .s = s, .nested_rc = 1 };
	struct store_gc_opts o = { .in_use = tgc_in_use_nested, .ctx = &u };

	tstore_mkfile(s, fx->br, fx->root, "f");
	assert_int_equal(store_unlink(s, fx->br, fx->root, "f"), 0);
	tgc_age_out(s);
	tgc_run_opts(s, &o);
	assert_true(u.calls >= 1);
	assert_int_equal(u.nested_rc, -EBUSY);
	/* and free again afterwards */
	tgc_run(s, false);
}

/* A branch's fork time is recorded with it: after GC has thinned the time
 * index past its fork point (which then no longer maps to a time), after a
 * reopen, and for a branch made at a past seq too; a reset records the new
 * one. */
static void test_store_gc_fork_time_kept(void **state)
{
	struct tstore_fx *fx = *state;
	struct store_branch_info bi, pi;
	int64_t t0 = tstore_now_ns(), at_ns = 0, tmp;
	uint64_t f, c, p, seq;

	f = tstore_mkfile(fx->s, fx->br, fx->root, "f");
	tstore_write_pat(fx->s, fx->br, f, 1, 0, BS);
	seq = store_seq_now(fx->s);
	assert_int_equal(store_time_of_seq(fx->s, seq, &at_ns), 0);
	tstore_sleep_ms(50);
	c = tstore_branch(fx->s, "c", fx->br);
	p = tstore_branch_at(fx->s, "p", fx->br, seq);
	tstore_write_pat(fx->s, fx->br, f, 2, 0, BS);
	assert_int_equal(store_branch_get(fx->s, c, &bi), 0);
	assert_true(bi.fork_ns >= t0 && bi.fork_ns == bi.ctime_ns);
	assert_int_equal(store_branch_get(fx->s, p, &pi), 0);
	assert_true(pi.fork_ns == at_ns && pi.fork_ns < pi.ctime_ns);
	tgc_age_out(fx->s);
	tgc_run(fx->s, true);
	/* the time index no longer knows the fork point ... */
	assert_int_not_equal(store_time_of_seq(fx->s, bi.fork_seq, &tmp), 0);
	/* ... the branch records do */
	tstore_fx_reopen(fx);
	assert_int_equal(store_branch_get(fx->s, c, &bi), 0);
	assert_true(bi.fork_ns >= t0 && bi.fork_ns == bi.ctime_ns);
	assert_int_equal(store_branch_get(fx->s, p, &pi), 0);
	assert_int_equal(pi.fork_ns, at_ns);
	assert_int_equal(store_branch_reset(fx->s, c, NULL), 0);
	assert_int_equal(store_branch_get(fx->s, c, &bi), 0);
	assert_true(bi.fork_ns > pi.ctime_ns);
}

int main(void)
{
	/* These stores hold a few MiB: a small fsync journal keeps its fixed
	 * size from hiding what GC gives back in the disk figures. */
	setenv("BRANCHFS_JOURNAL_KIB", "1024", 1);
	const struct CMUnitTest tests[] = {
#define T(fn) \
	cmocka_unit_test_setup_teardown(fn, tstore_fx_setup, tstore_fx_teardown)
		T(test_store_gc_retention_args),
		T(test_store_gc_keeps_fork_points),
		T(test_store_gc_reset_frees_old_fork_point),
		T(test_store_gc_keeps_window),
		T(test_store_gc_drops_shadowed),
		T(test_store_gc_truncated_blocks),
		T(test_store_gc_time_travel_below_horizon),
		T(test_store_gc_branches_read_same),
		T(test_store_gc_deleted_branch),
		T(test_store_gc_compaction_duty),
		cmocka_unit_test_setup_teardown(
			test_store_gc_compaction_that_did_nothing,
			tstore_fx_setup_fault, tstore_fx_teardown),
		T(test_store_gc_unlinked_inode),
		T(test_store_gc_unlinked_in_child_only),
		T(test_store_gc_unlinked_child_still_links),
		T(test_store_gc_one_at_a_time),
		T(test_store_gc_fork_time_kept),
#undef T
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
