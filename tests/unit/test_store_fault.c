/* SPDX-License-Identifier: MIT */
/*
 * test_store_fault.c - cmocka tests of the store's error paths, driven by
 * the fault-injecting KV wrapper (tests/fakes/kv_fault.c) over real
 * RocksDB:
 *  - a failing write batch makes store_write/store_create/
 *    store_branch_create return the injected errno and leaves the previous
 *    state intact, also after a reopen;
 *  - sweeps: for each mutating operation, fail its 1st, 2nd, ... KV call
 *    in turn; the operation either fails with the injected errno and
 *    changes nothing, or succeeds with the full effect, and it can be
 *    redone afterwards (no in-memory state is left half-updated);
 *  - failing gets and iterators surface as errors, never as wrong data;
 *  - a corrupted block value (a flipped byte in what the KV returns) reads
 *    as -EIO.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "tests/unit/test_store_common.h"

#define BS STORE_BLOCK_SIZE
#define SWEEP_MAX 400

/* ---- state fingerprints ---- */

struct tstore_fp {
	char *buf;
	size_t len, cap;
};

static void tstore_fp_add(struct tstore_fp *fp, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

static void tstore_fp_add(struct tstore_fp *fp, const char *fmt, ...)
{
	va_list ap;
	int n;

	for (;;) {
		va_start(ap, fmt);
		n = vsnprintf(fp->buf + fp->len, fp->cap - fp->len, fmt, ap);
		va_end(ap);
		assert_true(n >= 0);
		if ((size_t)n < fp->cap - fp->len)
			break;
		fp->cap = fp->cap * 2 + (size_t)n + 64;
		fp->buf = realloc(fp->buf, fp->cap);
		assert_non_null(fp->buf);
	}
	fp->len += (size_t)n;
}

static uint64_t tstore_hash(const unsigned char *p, size_t n)
{
	uint64_t h = 1469598103934665603ull;
	size_t i;

	for (i = 0; i < n; i++)
		h = (h ^ p[i]) * 1099511628211ull;
	return h;
}

/* Inode numbers of the baseline; others (new inodes, whose numbers differ
 * from run to run) print as '*'. */
static const uint64_t *tstore_fp_known;
static size_t tstore_fp_nknown;

static void tstore_fp_ino(struct tstore_fp *fp, uint64_t ino)
{
	size_t i;

	for (i = 0; i < tstore_fp_nknown; i++) {
		if (tstore_fp_known[i] == ino) {
			tstore_fp_add(fp, "%llu", (unsigned long long)ino);
			return;
		}
	}
	tstore_fp_add(fp, "*");
}

/* Attributes and content of one inode (content only for small files). */
static void tstore_fp_inode(struct store *s, uint64_t br, uint64_t ino,
			    struct tstore_fp *fp)
{
	struct store_attr a;
	int rc = store_getattr(s, br, STORE_SEQ_LATEST, ino, &a);

	tstore_fp_add(fp, "[");
	tstore_fp_ino(fp, ino);
	if (rc) {
		tstore_fp_add(fp, ":%d]", rc);
		return;
	}
	tstore_fp_add(fp, ":%o:n%u:s%llu:u%u", a.mode, a.nlink,
		      (unsigned long long)a.size, a.uid);
	if (S_ISREG(a.mode) && a.size <= 64 * BS) {
		unsigned char *buf = malloc(a.size + 1);
		ssize_t n;

		assert_non_null(buf);
		n = store_read(s, br, STORE_SEQ_LATEST, ino, buf, a.size, 0);
		assert_int_equal(n, (ssize_t)a.size);
		tstore_fp_add(fp, ":h%016llx",
			      (unsigned long long)tstore_hash(buf, a.size));
		free(buf);
	} else if (S_ISLNK(a.mode)) {
		char t[256];

		assert_true(store_readlink(s, br, STORE_SEQ_LATEST, ino, t,
					   sizeof(t)) >= 0);
		tstore_fp_add(fp, ":->%s", t);
	}
	tstore_fp_add(fp, "]");
}

static void tstore_fp_dir(struct store *s, uint64_t br, uint64_t dir,
			  int depth, struct tstore_fp *fp)
{
	struct store_dirent *d = NULL;
	size_t n = 0, i;

	assert_int_equal(store_readdir(s, br, STORE_SEQ_LATEST, dir, &d, &n),
			 0);
	tstore_fp_add(fp, "{");
	for (i = 0; i < n; i++) {
		tstore_fp_add(fp, "%s=", d[i].name);
		tstore_fp_inode(s, br, d[i].ino, fp);
		if (S_ISDIR(d[i].mode) && depth < 4)
			tstore_fp_dir(s, br, d[i].ino, depth + 1, fp);
	}
	tstore_fp_add(fp, "}");
	free(d);
}

/* The whole tree of br plus the given inodes by number (unlinked inodes
 * stay readable).  Caller frees the result. */
static char *tstore_fingerprint(struct store *s, uint64_t br, uint64_t root,
				const uint64_t *inos, size_t ninos)
{
	struct tstore_fp fp = { NULL, 0, 0 };
	size_t i;

	fp.cap = 1024;
	fp.buf = malloc(fp.cap);
	assert_non_null(fp.buf);
	fp.buf[0] = '\0';
	tstore_fp_dir(s, br, root, 0, &fp);
	for (i = 0; i < ninos; i++)
		tstore_fp_inode(s, br, inos[i], &fp);
	return fp.buf;
}

/* ---- the baseline tree used by the sweeps ---- */

struct tstore_base {
	uint64_t f, g, d, x, e, l;
	uint64_t inos[6];
};

static void tstore_base_make(struct tstore_fx *fx, struct tstore_base *b)
{
	struct store *s = fx->s;

	b->f = tstore_mkfile(s, fx->br, fx->root, "f");
	tstore_write_pat(s, fx->br, b->f, 1, 0, 3 * BS);
	b->g = tstore_mkfile(s, fx->br, fx->root, "g");
	tstore_write_pat(s, fx->br, b->g, 2, 0, 100);
	b->d = tstore_mkdir(s, fx->br, fx->root, "d");
	b->x = tstore_mkfile(s, fx->br, b->d, "x");
	tstore_write_pat(s, fx->br, b->x, 3, 0, BS + 1);
	b->e = tstore_mkdir(s, fx->br, fx->root, "e");
	b->l = tstore_mknod(s, fx->br, fx->root, "l", S_IFLNK | 0777, "f");
	b->inos[0] = b->f;
	b->inos[1] = b->g;
	b->inos[2] = b->d;
	b->inos[3] = b->x;
	b->inos[4] = b->e;
	b->inos[5] = b->l;
}

typedef int tstore_fop_fn(struct store *s, uint64_t br, uint64_t root,
			  const struct tstore_base *b);

static int tstore_op_write_rmw(struct store *s, uint64_t br, uint64_t root,
			       const struct tstore_base *b)
{
	unsigned char buf[100];
	ssize_t n;

	(void)root;
	tstore_fill(buf, sizeof(buf), 50, BS + 50);
	n = store_write(s, br, b->f, buf, sizeof(buf), BS + 50, NULL);
	return n < 0 ? (int)n : 0;
}

static int tstore_op_write_extend(struct store *s, uint64_t br, uint64_t root,
				  const struct tstore_base *b)
{
	unsigned char buf[5000];
	ssize_t n;

	(void)root;
	tstore_fill(buf, sizeof(buf), 51, 4 * BS - 10);
	n = store_write(s, br, b->g, buf, sizeof(buf), 4 * BS - 10, NULL);
	return n < 0 ? (int)n : 0;
}

static int tstore_op_truncate(struct store *s, uint64_t br, uint64_t size,
			      uint64_t ino)
{
	struct store_attr a;

	memset(&a, 0, sizeof(a));
	a.size = size;
	return store_setattr(s, br, ino, &a, STORE_SET_SIZE, NULL);
}

static int tstore_op_shrink(struct store *s, uint64_t br, uint64_t root,
			    const struct tstore_base *b)
{
	(void)root;
	return tstore_op_truncate(s, br, BS + 7, b->f);
}

static int tstore_op_grow(struct store *s, uint64_t br, uint64_t root,
			  const struct tstore_base *b)
{
	(void)root;
	return tstore_op_truncate(s, br, 3 * BS + 3, b->g);
}

static int tstore_op_create(struct store *s, uint64_t br, uint64_t root,
			    const struct tstore_base *b)
{
	struct store_attr a = tstore_attr(S_IFREG | 0600);
	uint64_t ino;

	(void)root;
	a.mtime.tv_sec = a.atime.tv_sec = a.ctime.tv_sec = 1000;
	a.mtime.tv_nsec = a.atime.tv_nsec = a.ctime.tv_nsec = 0;
	return store_create(s, br, b->d, "new", &a, NULL, &ino, NULL);
}

static int tstore_op_mkdir(struct store *s, uint64_t br, uint64_t root,
			   const struct tstore_base *b)
{
	struct store_attr a = tstore_attr(S_IFDIR | 0700);
	uint64_t ino;

	(void)b;
	return store_create(s, br, root, "nd", &a, NULL, &ino, NULL);
}

static int tstore_op_symlink(struct store *s, uint64_t br, uint64_t root,
			     const struct tstore_base *b)
{
	struct store_attr a = tstore_attr(S_IFLNK | 0777);
	uint64_t ino;

	(void)b;
	return store_create(s, br, root, "sl", &a, "d/x", &ino, NULL);
}

static int tstore_op_unlink(struct store *s, uint64_t br, uint64_t root,
			    const struct tstore_base *b)
{
	(void)root;
	return store_unlink(s, br, b->d, "x");
}

static int tstore_op_rmdir(struct store *s, uint64_t br, uint64_t root,
			   const struct tstore_base *b)
{
	(void)b;
	return store_rmdir(s, br, root, "e");
}

static int tstore_op_rename_replace(struct store *s, uint64_t br,
				    uint64_t root, const struct tstore_base *b)
{
	return store_rename(s, br, root, "g", b->d, "x", 0);
}

static int tstore_op_rename_exchange(struct store *s, uint64_t br,
				     uint64_t root, const struct tstore_base *b)
{
	(void)b;
	return store_rename(s, br, root, "f", root, "d",
			    STORE_RENAME_EXCHANGE);
}

static int tstore_op_rename_dir(struct store *s, uint64_t br, uint64_t root,
				const struct tstore_base *b)
{
	return store_rename(s, br, root, "e", b->d, "e2", 0);
}

static int tstore_op_link(struct store *s, uint64_t br, uint64_t root,
			  const struct tstore_base *b)
{
	(void)root;
	return store_link(s, br, b->f, b->d, "fl", NULL);
}

static int tstore_op_chmod(struct store *s, uint64_t br, uint64_t root,
			   const struct tstore_base *b)
{
	struct store_attr a;

	(void)root;
	memset(&a, 0, sizeof(a));
	a.mode = 0601;
	a.uid = 4321;
	return store_setattr(s, br, b->x, &a, STORE_SET_MODE | STORE_SET_UID,
			     NULL);
}

struct tstore_fop {
	const char *name;
	tstore_fop_fn *fn;
};

static const struct tstore_fop tstore_fops[] = {
	{ "write_rmw", tstore_op_write_rmw },
	{ "write_extend", tstore_op_write_extend },
	{ "truncate_shrink", tstore_op_shrink },
	{ "truncate_grow", tstore_op_grow },
	{ "create", tstore_op_create },
	{ "mkdir", tstore_op_mkdir },
	{ "symlink", tstore_op_symlink },
	{ "unlink", tstore_op_unlink },
	{ "rmdir", tstore_op_rmdir },
	{ "rename_replace", tstore_op_rename_replace },
	{ "rename_exchange", tstore_op_rename_exchange },
	{ "rename_dir", tstore_op_rename_dir },
	{ "link", tstore_op_link },
	{ "chmod", tstore_op_chmod },
};

/* For each operation and n = 1, 2, ...: in a fresh child of the baseline,
 * fail the nth KV call in mask; check all-or-nothing and that the
 * operation can be redone. */
static void tstore_sweep(struct tstore_fx *fx, unsigned mask, bool persistent)
{
	struct store *s = fx->s;
	struct tstore_base b;
	char *fp_old, *fp_new, name[64];
	size_t i;
	int bno = 0;

	tstore_base_make(fx, &b);
	tstore_fp_known = b.inos;
	tstore_fp_nknown = 6;
	fp_old = tstore_fingerprint(s, fx->br, fx->root, b.inos, 6);
	for (i = 0; i < sizeof(tstore_fops) / sizeof(tstore_fops[0]); i++) {
		const struct tstore_fop *op = &tstore_fops[i];
		uint64_t ref, br;
		unsigned long n;
		int rc;

		snprintf(name, sizeof(name), "ref-%s", op->name);
		ref = tstore_branch(s, name, fx->br);
		rc = op->fn(s, ref, fx->root, &b);
		if (rc != 0)
			fail_msg("%s without a fault = %d", op->name, rc);
		fp_new = tstore_fingerprint(s, ref, fx->root, b.inos, 6);
		assert_string_not_equal(fp_new, fp_old);
		assert_int_equal(store_branch_delete(s, ref), 0);

		for (n = 1; n <= SWEEP_MAX; n++) {
			unsigned long fired;
			char *fp;

			snprintf(name, sizeof(name), "it%d", bno++);
			br = tstore_branch(s, name, fx->br);
			kv_fault_arm(fx->fault, mask, n, persistent, -EIO);
			rc = op->fn(s, br, fx->root, &b);
			fired = kv_fault_fired(fx->fault);
			kv_fault_disarm(fx->fault);
			fp = tstore_fingerprint(s, br, fx->root, b.inos, 6);
			if (!fired) {
				if (rc != 0 || strcmp(fp, fp_new) != 0)
					fail_msg("%s, no fault at n=%lu: rc %d\n"
						 "  got  %s\n  want %s",
						 op->name, n, rc, fp, fp_new);
			} else if (rc == 0) {
				if (strcmp(fp, fp_new) != 0)
					fail_msg("%s, fault at call %lu, rc 0 but state is not the new one\n"
						 "  got  %s\n  want %s",
						 op->name, n, fp, fp_new);
			} else {
				if (rc != -EIO)
					fail_msg("%s, fault at call %lu: rc %d, want %d",
						 op->name, n, rc, -EIO);
				if (strcmp(fp, fp_old) != 0)
					fail_msg("%s, fault at call %lu failed (rc %d) but changed the state\n"
						 "  got  %s\n  want %s",
						 op->name, n, rc, fp, fp_old);
				/* redo without a fault: full effect */
				rc = op->fn(s, br, fx->root, &b);
				free(fp);
				fp = tstore_fingerprint(s, br, fx->root, b.inos,
							6);
				if (rc != 0 || strcmp(fp, fp_new) != 0)
					fail_msg("%s, redo after fault at call %lu: rc %d\n"
						 "  got  %s\n  want %s",
						 op->name, n, rc, fp, fp_new);
			}
			free(fp);
			assert_int_equal(store_branch_delete(s, br), 0);
			if (!fired)
				break;
		}
		if (n > SWEEP_MAX)
			fail_msg("%s: still failing after %d calls", op->name,
				 SWEEP_MAX);
		fprintf(stderr, "  %s: faults at calls 1..%lu\n", op->name,
			n - 1);
		free(fp_new);
	}
	/* the baseline itself was never touched */
	fp_new = tstore_fingerprint(s, fx->br, fx->root, b.inos, 6);
	assert_string_equal(fp_new, fp_old);
	free(fp_new);
	free(fp_old);
}

static void test_store_fault_sweep_any_call_transient(void **state)
{
	tstore_sweep(*state, KV_FAULT_ALL, false);
}

static void test_store_fault_sweep_any_call_persistent(void **state)
{
	tstore_sweep(*state, KV_FAULT_ALL, true);
}

/* ---- the three named write paths, with a precise errno ---- */

static void test_store_fault_write_batch_write(void **state)
{
	struct tstore_fx *fx = *state;
	struct store *s = fx->s;
	unsigned char buf[3 * BS];
	uint64_t f, seq;

	f = tstore_mkfile(s, fx->br, fx->root, "f");
	tstore_write_pat(s, fx->br, f, 1, 0, 2 * BS);
	seq = store_seq_now(s);

	tstore_fill(buf, sizeof(buf), 2, BS / 2);
	kv_fault_arm(fx->fault, KV_FAULT_WRITE, 1, true, -ENOSPC);
	assert_int_equal(store_write(s, fx->br, f, buf, sizeof(buf), BS / 2,
				     NULL),
			 -ENOSPC);
	assert_int_equal(store_write(s, fx->br, f, buf, 10, 0, NULL), -ENOSPC);
	assert_true(kv_fault_fired(fx->fault) >= 2);
	/* reads still work while writes fail, and see the old state */
	tstore_expect_pat(s, fx->br, f, 1, 0, 2 * BS);
	kv_fault_disarm(fx->fault);
	assert_int_equal(tstore_size(s, fx->br, f), 2 * BS);
	tstore_expect_pat(s, fx->br, f, 1, 0, 2 * BS);
	/* a failed write may burn a seq, but must not stall the watermark
	 * or become visible */
	assert_true(store_seq_now(s) >= seq);
	tstore_expect_pat_at(s, fx->br, store_seq_now(s), f, 1, 0, 2 * BS);

	kv_fault_arm(fx->fault, KV_FAULT_WRITE, 1, false, -EIO);
	assert_int_equal(store_write(s, fx->br, f, buf, sizeof(buf), BS / 2,
				     NULL),
			 -EIO);
	/* transient: the next write goes through */
	tstore_write(s, fx->br, f, buf, sizeof(buf), BS / 2);
	kv_fault_disarm(fx->fault);
	tstore_expect_pat(s, fx->br, f, 1, 0, BS / 2);
	tstore_expect(s, fx->br, f, buf, sizeof(buf), BS / 2);
	assert_int_equal(tstore_size(s, fx->br, f), 3 * BS + BS / 2);

	tstore_fx_reopen(fx);
	tstore_expect_pat(fx->s, fx->br, f, 1, 0, BS / 2);
	tstore_expect(fx->s, fx->br, f, buf, sizeof(buf), BS / 2);
	tstore_expect_pat_at(fx->s, fx->br, seq, f, 1, 0, 2 * BS);
}

static void test_store_fault_write_batch_create(void **state)
{
	struct tstore_fx *fx = *state;
	struct store *s = fx->s;
	struct store_attr a = tstore_attr(S_IFREG | 0644);
	uint64_t ino = 0, ino2;

	tstore_mkfile(s, fx->br, fx->root, "a");
	kv_fault_arm(fx->fault, KV_FAULT_WRITE, 1, true, -ENOSPC);
	assert_int_equal(store_create(s, fx->br, fx->root, "b", &a, NULL, &ino,
				      NULL),
			 -ENOSPC);
	assert_int_equal(ino, 0);
	a.mode = S_IFDIR | 0755;
	assert_int_equal(store_create(s, fx->br, fx->root, "dir", &a, NULL,
				      &ino, NULL),
			 -ENOSPC);
	kv_fault_disarm(fx->fault);
	TSTORE_LS_EQ(s, fx->br, STORE_SEQ_LATEST, fx->root, "a");
	assert_int_equal(tstore_lookup_rc(s, fx->br, STORE_SEQ_LATEST,
					  fx->root, "b"),
			 -ENOENT);
	/* the names are free again */
	ino2 = tstore_mkfile(s, fx->br, fx->root, "b");
	tstore_mkdir(s, fx->br, fx->root, "dir");
	tstore_write_pat(s, fx->br, ino2, 1, 0, 10);
	tstore_fx_reopen(fx);
	TSTORE_LS_EQ(fx->s, fx->br, STORE_SEQ_LATEST, fx->root, "a,b,dir");
	tstore_expect_pat(fx->s, fx->br, ino2, 1, 0, 10);
}

static void test_store_fault_write_batch_branch_create(void **state)
{
	struct tstore_fx *fx = *state;
	struct store *s = fx->s;
	struct store_branch_create_args a =
		tstore_args("c", fx->br, STORE_SEQ_LATEST);
	struct store_branch_info bi, *list;
	size_t n;
	uint64_t c;

	kv_fault_arm(fx->fault, KV_FAULT_WRITE, 1, true, -EIO);
	assert_int_equal(store_branch_create(s, &a, &bi), -EIO);
	a.parent_id = 0;
	assert_int_equal(store_branch_create(s, &a, &bi), -EIO);
	kv_fault_disarm(fx->fault);
	assert_int_equal(store_branch_lookup(s, "c", &bi), -ENOENT);
	assert_int_equal(store_branch_get(s, fx->br, &bi), 0);
	assert_int_equal(bi.nchildren, 0);
	assert_int_equal(store_branch_list(s, &list, &n), 0);
	assert_int_equal(n, 1);
	free(list);
	/* the failed create left no phantom child behind */
	c = tstore_branch(s, "c", fx->br);
	assert_int_equal(store_branch_get(s, fx->br, &bi), 0);
	assert_int_equal(bi.nchildren, 1);
	assert_int_equal(store_branch_delete(s, c), 0);
	assert_int_equal(store_branch_get(s, fx->br, &bi), 0);
	assert_int_equal(bi.nchildren, 0);
	tstore_fx_reopen(fx);
	assert_int_equal(store_branch_list(fx->s, &list, &n), 0);
	assert_int_equal(n, 1);
	assert_string_equal(list[0].name, "root");
	free(list);
}

/* Branch operations under a failing write: nothing changes. */
static void test_store_fault_branch_ops(void **state)
{
	struct tstore_fx *fx = *state;
	struct store *s = fx->s;
	struct store_branch_info bi;
	uint64_t c, g, f;

	f = tstore_mkfile(s, fx->br, fx->root, "f");
	tstore_write_pat(s, fx->br, f, 1, 0, 100);
	c = tstore_branch(s, "c", fx->br);
	g = tstore_branch(s, "g", c);
	tstore_write_pat(s, g, f, 2, 0, 100);

	kv_fault_arm(fx->fault, KV_FAULT_WRITE, 1, true, -EIO);
	assert_int_equal(store_branch_delete(s, g), -EIO);
	assert_int_equal(store_branch_rename(s, g, "g2"), -EIO);
	assert_int_equal(store_branch_reset(s, g, NULL), -EIO);
	kv_fault_disarm(fx->fault);
	assert_int_equal(store_branch_lookup(s, "g", &bi), 0);
	assert_int_equal(bi.id, g);
	assert_int_equal(store_branch_lookup(s, "g2", &bi), -ENOENT);
	assert_int_equal(store_branch_get(s, c, &bi), 0);
	assert_int_equal(bi.nchildren, 1);
	tstore_expect_pat(s, g, f, 2, 0, 100);
	assert_int_equal(store_branch_delete(s, c), -ENOTEMPTY);
	assert_int_equal(store_branch_delete(s, g), 0);
	assert_int_equal(store_branch_delete(s, c), 0);
}

static void test_store_fault_sync(void **state)
{
	struct tstore_fx *fx = *state;
	uint64_t f;

	f = tstore_mkfile(fx->s, fx->br, fx->root, "f");
	tstore_write_pat(fx->s, fx->br, f, 1, 0, 100);
	kv_fault_arm(fx->fault, KV_FAULT_SYNC | KV_FAULT_WRITE, 1, true, -EIO);
	assert_int_equal(store_sync(fx->s), -EIO);
	kv_fault_disarm(fx->fault);
	assert_int_equal(store_sync(fx->s), 0);
	tstore_expect_pat(fx->s, fx->br, f, 1, 0, 100);
}

/* A sync whose write of the branches' written counters failed leaves
 * them to the next sync or the close (they had been marked clean when the
 * batch was filled, and were never written: written_bytes read 0 after a
 * reopen). */
static void test_store_fault_sync_keeps_counters(void **state)
{
	struct tstore_fx *fx = *state;
	struct store_usage u;
	uint64_t c, f;

	c = tstore_branch(fx->s, "c", fx->br);
	f = tstore_mkfile(fx->s, c, fx->root, "f");
	tstore_write_pat(fx->s, c, f, 1, 0, 100);
	kv_fault_arm(fx->fault, KV_FAULT_WRITE, 1, false, -EIO);
	assert_int_equal(store_sync(fx->s), -EIO);
	assert_int_equal(kv_fault_fired(fx->fault), 1);
	kv_fault_disarm(fx->fault);
	assert_int_equal(store_sync(fx->s), 0);
	tstore_fx_reopen(fx);
	assert_int_equal(store_branch_usage(fx->s, c, &u), 0);
	assert_int_equal(u.written_bytes, 100);
}

/* ---- read faults: error, never garbage ---- */

/* A read failing anywhere in store_branch_usage (the scan of each level's
 * inodes, a read through the levels below) is its error or changes
 * nothing, and keeps no wrong figures: the next call gives the right
 * ones.  Each read is failed on a fresh open, with nothing kept yet. */
static void test_store_fault_usage_reads(void **state)
{
	struct tstore_fx *fx = *state;
	struct store_usage want, u;
	uint64_t c, g, f, h;
	unsigned long n, fired = 0;
	int rc;

	f = tstore_mkfile(fx->s, fx->br, fx->root, "f");
	tstore_write_pat(fx->s, fx->br, f, 1, 0, 3 * BS);
	h = tstore_mkfile(fx->s, fx->br, fx->root, "h");
	tstore_write_pat(fx->s, fx->br, h, 2, 0, 10);
	c = tstore_branch(fx->s, "c", fx->br);
	tstore_write_pat(fx->s, c, f, 3, 0, 5 * BS);
	assert_int_equal(store_unlink(fx->s, c, fx->root, "h"), 0);
	g = tstore_branch(fx->s, "g", c);
	(void)tstore_mkfile(fx->s, g, fx->root, "n");
	tstore_write_pat(fx->s, fx->br, f, 4, 0, 9 * BS);
	assert_int_equal(store_branch_usage(fx->s, g, &want), 0);
	assert_int_equal(want.logical_bytes, 5 * BS);
	assert_int_equal(want.files, 3);
	for (n = 1;; n++) {
		tstore_fx_reopen(fx);
		kv_fault_arm(fx->fault, KV_FAULT_READS, n, false, -EIO);
		rc = store_branch_usage(fx->s, g, &u);
		if (kv_fault_fired(fx->fault) == 0) {
			kv_fault_disarm(fx->fault);
			break;
		}
		kv_fault_disarm(fx->fault);
		fired++;
		if (rc == 0) {
			assert_int_equal(u.logical_bytes, want.logical_bytes);
			assert_int_equal(u.files, want.files);
		} else {
			assert_int_equal(rc, -EIO);
		}
		assert_int_equal(store_branch_usage(fx->s, g, &u), 0);
		assert_int_equal(u.logical_bytes, want.logical_bytes);
		assert_int_equal(u.files, want.files);
		assert_int_equal(store_branch_usage(fx->s, c, &u), 0);
		assert_int_equal(u.logical_bytes, 5 * BS);
		assert_int_equal(store_branch_usage(fx->s, fx->br, &u), 0);
		assert_int_equal(u.logical_bytes, 9 * BS + 10);
	}
	assert_int_equal(rc, 0);
	assert_int_equal(u.logical_bytes, want.logical_bytes);
	assert_true(fired >= 5);
}

struct tstore_rview {
	unsigned char data[3 * BS];
	struct store_attr attr;
	char ls[256];
	char link[64];
	uint64_t lookup;
};

static int tstore_rview_get(struct store *s, uint64_t br, uint64_t seq,
			    uint64_t root, const struct tstore_base *b,
			    struct tstore_rview *v, int which)
{
	struct store_dirent *d = NULL;
	size_t n = 0, i, len = 0;
	ssize_t r;
	int rc;

	switch (which) {
	case 0:
		r = store_read(s, br, seq, b->f, v->data, sizeof(v->data), 0);
		if (r < 0)
			return (int)r;
		return r == (ssize_t)sizeof(v->data) ? 0 : -ERANGE;
	case 1:
		return store_getattr(s, br, seq, b->x, &v->attr);
	case 2:
		return store_lookup(s, br, seq, b->d, "x", &v->lookup);
	case 3:
		rc = store_readdir(s, br, seq, root, &d, &n);
		if (rc)
			return rc;
		v->ls[0] = '\0';
		for (i = 0; i < n; i++)
			len += (size_t)snprintf(v->ls + len,
						sizeof(v->ls) - len, "%s,",
						d[i].name);
		free(d);
		return 0;
	default:
		r = store_readlink(s, br, seq, b->l, v->link, sizeof(v->link));
		return r < 0 ? (int)r : 0;
	}
}

static void tstore_read_sweep(struct tstore_fx *fx, bool persistent)
{
	struct store *s = fx->s;
	static struct tstore_rview want, got;
	struct tstore_base b;
	uint64_t c, g, seq;
	int which;

	tstore_base_make(fx, &b);
	seq = store_seq_now(s);
	c = tstore_branch(s, "c", fx->br);
	tstore_write_pat(s, c, b.f, 7, BS, 10);
	g = tstore_branch(s, "g", c);
	tstore_write_pat(s, g, b.f, 8, 2 * BS, 10);
	tstore_write_pat(s, fx->br, b.f, 9, 0, 3 * BS); /* after the forks */

	for (which = 0; which < 5; which++) {
		int at;

		for (at = 0; at < 2; at++) {
			uint64_t rseq = at ? seq : STORE_SEQ_LATEST;
			uint64_t rbr = at ? fx->br : g;
			unsigned long n;

			memset(&want, 0, sizeof(want));
			assert_int_equal(tstore_rview_get(s, rbr, rseq,
							  fx->root, &b, &want,
							  which),
					 0);
			for (n = 1; n <= SWEEP_MAX; n++) {
				int rc;

				memset(&got, 0, sizeof(got));
				kv_fault_arm(fx->fault, KV_FAULT_READS, n,
					     persistent, -EIO);
				rc = tstore_rview_get(s, rbr, rseq, fx->root,
						      &b, &got, which);
				kv_fault_disarm(fx->fault);
				if (rc == 0) {
					if (memcmp(&got, &want,
						   sizeof(got)) != 0)
						fail_msg("read kind %d (as-of %d) with a fault at read call %lu returned wrong data",
							 which, at, n);
				} else if (rc != -EIO) {
					fail_msg("read kind %d (as-of %d), fault at call %lu: rc %d, want %d",
						 which, at, n, rc, -EIO);
				}
				if (!kv_fault_fired(fx->fault))
					break;
			}
			assert_true(n <= SWEEP_MAX);
		}
	}
}

static void test_store_fault_read_sweep_transient(void **state)
{
	tstore_read_sweep(*state, false);
}

static void test_store_fault_read_sweep_persistent(void **state)
{
	tstore_read_sweep(*state, true);
}

/* A failing iterator or get in a fresh store (no caches warmed). */
static void test_store_fault_reads_after_reopen(void **state)
{
	struct tstore_fx *fx = *state;
	struct store_dirent *d = NULL;
	struct store_attr a;
	unsigned char buf[BS];
	uint64_t f, ino;
	size_t n = 0;

	f = tstore_mkfile(fx->s, fx->br, fx->root, "f");
	tstore_write_pat(fx->s, fx->br, f, 1, 0, BS);
	tstore_fx_reopen(fx);
	kv_fault_arm(fx->fault, KV_FAULT_READS, 1, true, -EIO);
	assert_int_equal(store_read(fx->s, fx->br, STORE_SEQ_LATEST, f, buf,
				    sizeof(buf), 0),
			 -EIO);
	assert_int_equal(store_readdir(fx->s, fx->br, STORE_SEQ_LATEST,
				       fx->root, &d, &n),
			 -EIO);
	assert_null(d);
	assert_int_equal(store_lookup(fx->s, fx->br, STORE_SEQ_LATEST,
				      fx->root, "f", &ino),
			 -EIO);
	assert_int_equal(store_getattr(fx->s, fx->br, STORE_SEQ_LATEST, f, &a),
			 -EIO);
	assert_true(kv_fault_fired(fx->fault) > 0);
	kv_fault_disarm(fx->fault);
	tstore_expect_pat(fx->s, fx->br, f, 1, 0, BS);
}

/* ---- corruption ---- */

static void test_store_corrupt_block_read_eio(void **state)
{
	struct tstore_fx *fx = *state;
	static const long pos[] = { 0, 1, 7, 40, 200, -1, -2, -9 };
	unsigned char buf[3 * BS];
	uint64_t f, c;
	size_t i;

	f = tstore_mkfile(fx->s, fx->br, fx->root, "f");
	tstore_write_pat(fx->s, fx->br, f, 1, 0, 3 * BS);
	c = tstore_branch(fx->s, "c", fx->br);
	tstore_write_pat(fx->s, c, f, 2, BS, 10);

	for (i = 0; i < sizeof(pos) / sizeof(pos[0]); i++) {
		unsigned long before;
		ssize_t n;

		tstore_fx_reopen(fx); /* no cached blocks */
		before = kv_fault_corrupted(fx->fault);
		kv_fault_corrupt(fx->fault, 1u << KV_CF_BLOCK, pos[i]);
		n = store_read(fx->s, fx->br, STORE_SEQ_LATEST, f, buf, BS, 0);
		if (n != -EIO)
			fail_msg("corrupt byte %ld of a block: read = %zd, want %d",
				 pos[i], n, -EIO);
		/* through the ancestry: block 0 comes from the parent */
		n = store_read(fx->s, c, STORE_SEQ_LATEST, f, buf, BS, 0);
		assert_int_equal(n, -EIO);
		/* the child's own block */
		n = store_read(fx->s, c, STORE_SEQ_LATEST, f, buf, BS, BS);
		assert_int_equal(n, -EIO);
		/* a partial write must read-modify-write: it may not
		 * silently build on a corrupt block */
		n = store_write(fx->s, c, f, "zz", 2, 2 * BS + 5, NULL);
		assert_true(n == -EIO || n == 2);
		assert_true(kv_fault_corrupted(fx->fault) > before);
		kv_fault_corrupt(fx->fault, 0, 0);
		tstore_expect_pat(fx->s, fx->br, f, 1, 0, 3 * BS);
		tstore_expect_pat(fx->s, c, f, 2, BS, 10);
		if (n == 2) {
			tstore_expect_pat(fx->s, c, f, 1, 2 * BS, 5);
			tstore_expect(fx->s, c, f, "zz", 2, 2 * BS + 5);
		}
	}
}

/* ---- open and close under faults ---- */

static int tstore_wrap_fail(void *ctx, struct kv *inner, struct kv **out)
{
	(void)ctx;
	(void)inner;
	(void)out;
	return -ENOMEM;
}

/* A kv_wrap that fails makes store_open fail with its error, leaks
 * nothing (LeakSanitizer checks the inner backend) and leaves the store
 * unlocked. */
static void test_store_fault_open_wrap_fails(void **state)
{
	struct tstore_fx *fx = *state;
	struct store_config cfg;
	struct store *s = NULL;
	uint64_t f;

	f = tstore_mkfile(fx->s, fx->br, fx->root, "f");
	tstore_write_pat(fx->s, fx->br, f, 1, 0, 100);
	assert_int_equal(store_close(fx->s), 0);
	fx->s = NULL;
	tstore_config(&cfg, false, NULL);
	cfg.kv_wrap = tstore_wrap_fail;
	assert_int_equal(store_open(fx->dir, &cfg, &s), -ENOMEM);
	assert_null(s);
	assert_int_equal(tstore_fx_open(fx), 0);
	tstore_expect_pat(fx->s, fx->br, f, 1, 0, 100);
}

/* Fail the 1st, 2nd, ... KV call of store_open: it fails with the error
 * (and releases its lock) or opens a correct store. */
static void test_store_fault_open_sweep(void **state)
{
	struct tstore_fx *fx = *state;
	uint64_t f, c;
	unsigned long n;

	f = tstore_mkfile(fx->s, fx->br, fx->root, "f");
	tstore_write_pat(fx->s, fx->br, f, 1, 0, 3 * BS);
	c = tstore_branch(fx->s, "c", fx->br);
	tstore_write_pat(fx->s, c, f, 2, BS, 10);
	assert_int_equal(store_close(fx->s), 0);
	fx->s = NULL;
	for (n = 1; n <= SWEEP_MAX; n++) {
		unsigned long fired;
		int rc;

		kv_fault_arm(fx->fault, KV_FAULT_ALL, n, true, -EIO);
		rc = tstore_open_dir(fx->dir, false, fx->fault, &fx->s);
		fired = kv_fault_fired(fx->fault);
		kv_fault_disarm(fx->fault);
		if (rc == 0) {
			/* opened: fully usable and right */
			tstore_expect_pat(fx->s, fx->br, f, 1, 0, BS);
			tstore_expect_pat(fx->s, c, f, 2, BS, 10);
			assert_int_equal(store_close(fx->s), 0);
			fx->s = NULL;
			if (!fired)
				break;
			continue;
		}
		assert_null(fx->s);
		if (!fired)
			fail_msg("open failed (%d) without a fault", rc);
		if (rc != -EIO && rc != -EUCLEAN)
			fail_msg("open with a fault at call %lu = %d", n, rc);
	}
	fprintf(stderr, "  open: faults at calls 1..%lu\n", n - 1);
	assert_true(n <= SWEEP_MAX);
	assert_int_equal(tstore_fx_open(fx), 0);
	tstore_expect_pat(fx->s, fx->br, f, 1, 0, 3 * BS);
	tstore_expect_pat(fx->s, c, f, 2, BS, 10);
}

/* A close whose final sync fails reports it, frees the handle, and the
 * data that reached the database is still there after a reopen. */
static void test_store_fault_close_sync_fails(void **state)
{
	struct tstore_fx *fx = *state;
	uint64_t f;
	int rc;

	f = tstore_mkfile(fx->s, fx->br, fx->root, "f");
	tstore_write_pat(fx->s, fx->br, f, 1, 0, 100);
	kv_fault_arm(fx->fault, KV_FAULT_SYNC | KV_FAULT_WRITE, 1, true, -EIO);
	rc = store_close(fx->s);
	fx->s = NULL;
	kv_fault_disarm(fx->fault);
	assert_true(rc == -EIO || rc == 0);
	assert_int_equal(tstore_fx_open(fx), 0);
	tstore_expect_pat(fx->s, fx->br, f, 1, 0, 100);
}

struct tstore_problems {
	int n;
	bool named; /* some message names the damaged file's path */
};

static void tstore_problem(void *ctx, const char *msg)
{
	struct tstore_problems *p = ctx;

	p->n++;
	p->named |= strstr(msg, "dir/f") != NULL;
}

/* store_check finds nothing in a sound store and every block a corrupting
 * backend hands it, naming the file. */
static void test_store_corrupt_check_reports(void **state)
{
	struct tstore_fx *fx = *state;
	struct store_check_report rep;
	struct tstore_problems pr = { 0 };
	uint64_t d, f, c;

	d = tstore_mkdir(fx->s, fx->br, fx->root, "dir");
	f = tstore_mkfile(fx->s, fx->br, d, "f");
	tstore_write_pat(fx->s, fx->br, f, 1, 0, 3 * BS);
	c = tstore_branch(fx->s, "c", fx->br);
	tstore_write_pat(fx->s, c, f, 2, BS, 10);
	tstore_fx_reopen(fx);

	memset(&rep, 0, sizeof(rep));
	assert_int_equal(store_check(fx->s, tstore_problem, &pr, &rep), 0);
	assert_int_equal(pr.n, 0);
	assert_int_equal(rep.bad_blocks, 0);
	assert_int_equal(rep.bad_records, 0);
	assert_int_equal(rep.branches, 2);
	assert_true(rep.blocks >= 4);
	assert_true(rep.records >= 4);

	kv_fault_corrupt(fx->fault, 1u << KV_CF_BLOCK, 100);
	memset(&rep, 0, sizeof(rep));
	assert_int_equal(store_check(fx->s, tstore_problem, &pr, &rep), 0);
	kv_fault_corrupt(fx->fault, 0, 0);
	assert_true(rep.blocks >= 4);
	if (rep.bad_blocks != rep.blocks)
		fail_msg("store_check: %llu of %llu corrupted blocks reported",
			 (unsigned long long)rep.bad_blocks,
			 (unsigned long long)rep.blocks);
	assert_true(pr.n >= (int)rep.bad_blocks);
	assert_true(pr.named);
	/* the data itself was never touched */
	tstore_expect_pat(fx->s, fx->br, f, 1, 0, 3 * BS);
	tstore_expect_pat(fx->s, c, f, 2, BS, 10);
}

/* store_sync really reaches the disk layer: after a write, it makes a
 * durable point in the KV (a WAL sync) before it returns; with nothing
 * new written it need not. */
static void test_store_fault_sync_is_durable_point(void **state)
{
	struct tstore_fx *fx = *state;
	unsigned long before;
	uint64_t f;

	f = tstore_mkfile(fx->s, fx->br, fx->root, "f");
	tstore_write_pat(fx->s, fx->br, f, 1, 0, 100);
	before = kv_fault_durable_points(fx->fault);
	assert_int_equal(store_sync(fx->s), 0);
	assert_true(kv_fault_durable_points(fx->fault) > before);
	tstore_write_pat(fx->s, fx->br, f, 2, 0, 100);
	before = kv_fault_durable_points(fx->fault);
	assert_int_equal(store_sync(fx->s), 0);
	assert_true(kv_fault_durable_points(fx->fault) > before);
	/* and store_close makes one too */
	tstore_write_pat(fx->s, fx->br, f, 3, 0, 100);
	before = kv_fault_durable_points(fx->fault);
	assert_int_equal(store_close(fx->s), 0);
	fx->s = NULL;
	assert_true(kv_fault_durable_points(fx->fault) > before);
	assert_int_equal(tstore_fx_open(fx), 0);
	tstore_expect_pat(fx->s, fx->br, f, 3, 0, 100);
}

/* store_sync_branch syncs for the branch's own unsynced writes only: a
 * branch whose writes are all durable returns without a WAL sync while
 * another branch keeps writing; the root (0) and an unknown branch always
 * sync; what it promises survives a reopen. */
static void test_store_fault_sync_branch_skips_idle_branch(void **state)
{
	struct tstore_fx *fx = *state;
	unsigned long before;
	uint64_t f, g, child, cf;

	f = tstore_mkfile(fx->s, fx->br, fx->root, "f");
	tstore_write_pat(fx->s, fx->br, f, 1, 0, 3 * 8192);
	child = tstore_branch(fx->s, "child", fx->br);
	cf = tstore_lookup(fx->s, child, tstore_root(fx->s, child), "f");
	/* a new branch has written nothing: its fsync is free */
	before = kv_fault_durable_points(fx->fault);
	assert_int_equal(store_sync_branch(fx->s, child), 0);
	assert_int_equal(kv_fault_durable_points(fx->fault), before);
	/* the parent's new writes are not the child's to wait for */
	tstore_write_pat(fx->s, fx->br, f, 2, 0, 100);
	assert_int_equal(store_sync_branch(fx->s, child), 0);
	assert_int_equal(kv_fault_durable_points(fx->fault), before);
	/* but the parent's own fsync syncs them */
	assert_int_equal(store_sync_branch(fx->s, fx->br), 0);
	assert_true(kv_fault_durable_points(fx->fault) > before);
	/* a write in the child makes the child's fsync sync, once */
	tstore_write_pat(fx->s, child, cf, 3, 8192, 100);
	before = kv_fault_durable_points(fx->fault);
	assert_int_equal(store_sync_branch(fx->s, child), 0);
	assert_true(kv_fault_durable_points(fx->fault) > before);
	before = kv_fault_durable_points(fx->fault);
	assert_int_equal(store_sync_branch(fx->s, child), 0);
	assert_int_equal(kv_fault_durable_points(fx->fault), before);
	/* metadata counts too: a new file in the child */
	g = tstore_mkfile(fx->s, child, tstore_root(fx->s, child), "g");
	assert_int_equal(store_sync_branch(fx->s, child), 0);
	assert_true(kv_fault_durable_points(fx->fault) > before);
	/* a write covered by another branch's sync needs none of its own */
	tstore_write_pat(fx->s, child, g, 4, 0, 100);
	tstore_write_pat(fx->s, fx->br, f, 5, 0, 100);
	assert_int_equal(store_sync(fx->s), 0);
	before = kv_fault_durable_points(fx->fault);
	assert_int_equal(store_sync_branch(fx->s, child), 0);
	assert_int_equal(kv_fault_durable_points(fx->fault), before);
	/* the branch root and unknown branches: store_sync */
	tstore_write_pat(fx->s, fx->br, f, 6, 0, 100);
	assert_int_equal(store_sync_branch(fx->s, 0), 0);
	assert_true(kv_fault_durable_points(fx->fault) > before);
	tstore_write_pat(fx->s, fx->br, f, 7, 0, 100);
	before = kv_fault_durable_points(fx->fault);
	assert_int_equal(store_sync_branch(fx->s, 999999), 0);
	assert_true(kv_fault_durable_points(fx->fault) > before);
	/* a failing sync is reported, not skipped */
	tstore_write_pat(fx->s, child, g, 8, 0, 100);
	kv_fault_arm(fx->fault, KV_FAULT_SYNC | KV_FAULT_WRITE, 1, false, -EIO);
	assert_int_equal(store_sync_branch(fx->s, child), -EIO);
	kv_fault_disarm(fx->fault);
	assert_int_equal(store_sync_branch(fx->s, child), 0);
	tstore_fx_reopen(fx);
	tstore_expect_pat(fx->s, child, g, 8, 0, 100);
	tstore_expect_pat(fx->s, fx->br, f, 7, 0, 100);
}

/* store_sync_pending (branchd's periodic commit): a durable point when
 * anything returned since the last sync (data, a lazy branch creation, a
 * delete), none when nothing did, so an idle daemon does no I/O; a failure
 * is reported and the next call tries again. */
static void test_store_fault_sync_pending(void **state)
{
	struct tstore_fx *fx = *state;
	struct store_branch_create_args a = {
		.name = "lazy",
		.at_seq = STORE_SEQ_LATEST,
		.lazy = true,
	};
	struct store_branch_info bi;
	unsigned long before;
	uint64_t f;

	f = tstore_mkfile(fx->s, fx->br, fx->root, "f");
	tstore_write_pat(fx->s, fx->br, f, 1, 0, 100);
	before = kv_fault_durable_points(fx->fault);
	assert_int_equal(store_sync_pending(fx->s), 0);
	assert_true(kv_fault_durable_points(fx->fault) > before);
	/* nothing new: no I/O, however often it is called */
	before = kv_fault_durable_points(fx->fault);
	for (int i = 0; i < 3; i++)
		assert_int_equal(store_sync_pending(fx->s), 0);
	assert_int_equal(kv_fault_durable_points(fx->fault), before);
	/* an fsync in between leaves nothing pending either */
	tstore_write_pat(fx->s, fx->br, f, 2, 0, 100);
	assert_int_equal(store_sync_branch(fx->s, fx->br), 0);
	before = kv_fault_durable_points(fx->fault);
	assert_int_equal(store_sync_pending(fx->s), 0);
	assert_int_equal(kv_fault_durable_points(fx->fault), before);
	/* a lazy branch creation is pending until a sync */
	a.parent_id = fx->br;
	assert_int_equal(store_branch_create(fx->s, &a, &bi), 0);
	assert_int_equal(store_sync_pending(fx->s), 0);
	assert_true(kv_fault_durable_points(fx->fault) > before);
	/* a failing sync is reported, and the writes stay pending */
	tstore_write_pat(fx->s, fx->br, f, 3, 0, 100);
	kv_fault_arm(fx->fault, KV_FAULT_SYNC | KV_FAULT_WRITE, 1, false, -EIO);
	assert_int_equal(store_sync_pending(fx->s), -EIO);
	kv_fault_disarm(fx->fault);
	before = kv_fault_durable_points(fx->fault);
	assert_int_equal(store_sync_pending(fx->s), 0);
	assert_true(kv_fault_durable_points(fx->fault) > before);
	tstore_fx_reopen(fx);
	tstore_expect_pat(fx->s, fx->br, f, 3, 0, 100);
	assert_int_equal(store_branch_lookup(fx->s, "lazy", &bi), 0);
}

/* A lazy branch creation (mkdir(2)) makes no durable point of its own;
 * the new branch's first fsync does, and that one covers the parent's
 * unsynced writes it was forked from (any later sync covers it); the
 * branch and that data survive a reopen.  A create without lazy syncs before it returns. */
static void test_store_fault_lazy_branch_create(void **state)
{
	struct tstore_fx *fx = *state;
	struct store_branch_create_args a;
	struct store_branch_info bi, bi2;
	unsigned long before;
	uint64_t f, cf;

	f = tstore_mkfile(fx->s, fx->br, fx->root, "f");
	tstore_write_pat(fx->s, fx->br, f, 1, 0, 3 * 8192);
	before = kv_fault_durable_points(fx->fault);
	memset(&a, 0, sizeof(a));
	a.name = "lazy";
	a.parent_id = fx->br;
	a.at_seq = STORE_SEQ_LATEST;
	a.lazy = true;
	assert_int_equal(store_branch_create(fx->s, &a, &bi), 0);
	assert_int_equal(kv_fault_durable_points(fx->fault), before);
	/* the child has written nothing, yet its fsync syncs, once */
	assert_int_equal(store_sync_branch(fx->s, bi.id), 0);
	assert_true(kv_fault_durable_points(fx->fault) > before);
	before = kv_fault_durable_points(fx->fault);
	assert_int_equal(store_sync_branch(fx->s, bi.id), 0);
	assert_int_equal(kv_fault_durable_points(fx->fault), before);
	/* a sync made for someone else after the create covers it */
	a.name = "lazy2";
	assert_int_equal(store_branch_create(fx->s, &a, &bi2), 0);
	tstore_write_pat(fx->s, fx->br, f, 2, 0, 100);
	assert_int_equal(store_sync_branch(fx->s, fx->br), 0);
	before = kv_fault_durable_points(fx->fault);
	assert_int_equal(store_sync_branch(fx->s, bi2.id), 0);
	assert_int_equal(kv_fault_durable_points(fx->fault), before);
	/* the default is synced before return */
	a.name = "eager";
	a.lazy = false;
	assert_int_equal(store_branch_create(fx->s, &a, NULL), 0);
	assert_true(kv_fault_durable_points(fx->fault) > before);
	tstore_fx_reopen(fx);
	assert_int_equal(store_branch_lookup(fx->s, "lazy", &bi), 0);
	cf = tstore_lookup(fx->s, bi.id, tstore_root(fx->s, bi.id), "f");
	tstore_expect_pat(fx->s, bi.id, cf, 1, 0, 3 * 8192);
	assert_int_equal(store_branch_lookup(fx->s, "eager", &bi), 0);
	assert_int_equal(store_branch_lookup(fx->s, "lazy2", &bi), 0);
}

/* The branches as the store shows them (name, parent's name, children)
 * and the first byte of "f" in each: what a branch operation changes. */
static char *tstore_branches_fp(struct store *s, uint64_t f)
{
	struct store_branch_info *list;
	struct tstore_fp fp = { 0 };
	size_t n, i, j;

	assert_int_equal(store_branch_list(s, &list, &n), 0);
	tstore_fp_add(&fp, "%zu:", n);
	for (i = 0; i < n; i++) {
		const char *pname = "-";
		unsigned char c = 0;
		ssize_t r;

		for (j = 0; j < n; j++)
			if (list[j].id == list[i].parent_id)
				pname = list[j].name;
		r = store_read(s, list[i].id, STORE_SEQ_LATEST, f, &c, 1, 0);
		tstore_fp_add(&fp, " %s<%s/%u/%zd:%02x", list[i].name, pname,
			      list[i].nchildren, r, c);
	}
	free(list);
	return fp.buf;
}

static int tstore_bop_create(struct store *s, uint64_t c)
{
	struct store_branch_create_args a =
		tstore_args("new", c, STORE_SEQ_LATEST);

	return store_branch_create(s, &a, NULL);
}

static int tstore_bop_delete(struct store *s, uint64_t c)
{
	return store_branch_delete(s, c);
}

static int tstore_bop_rename(struct store *s, uint64_t c)
{
	return store_branch_rename(s, c, "c2");
}

static int tstore_bop_reset(struct store *s, uint64_t c)
{
	return store_branch_reset(s, c, NULL);
}

/* Back to the base state: root with "f" (pattern 1) and its child "c"
 * with its own "f" (pattern 2); returns c. */
static uint64_t tstore_bop_base(struct tstore_fx *fx, uint64_t f)
{
	static const char *const names[] = { "new", "c2", "c" };
	struct store_branch_info bi;
	uint64_t c;
	size_t i;

	for (i = 0; i < 3; i++)
		if (store_branch_lookup(fx->s, names[i], &bi) == 0)
			assert_int_equal(store_branch_delete(fx->s, bi.id), 0);
	c = tstore_branch(fx->s, "c", fx->br);
	tstore_write_pat(fx->s, c, f, 2, 0, 100);
	assert_int_equal(store_sync(fx->s), 0);
	return c;
}

/* Branch operations (create, delete, rename, reset) with their nth KV
 * write or sync failing, n = 1, 2, ...: 0 means the whole change; -EIO
 * means either nothing (the commit failed) or the whole change (the sync
 * after it failed: made, maybe not durable); and whatever happened, a
 * reopen shows exactly what the store showed, so memory and database
 * never disagree. */
static void test_store_fault_branch_ops_sync_sweep(void **state)
{
	static const struct {
		const char *name;
		int (*fn)(struct store *s, uint64_t c);
	} ops[] = {
		{ "create", tstore_bop_create },
		{ "delete", tstore_bop_delete },
		{ "rename", tstore_bop_rename },
		{ "reset", tstore_bop_reset },
	};
	struct tstore_fx *fx = *state;
	uint64_t f = tstore_mkfile(fx->s, fx->br, fx->root, "f");
	size_t i;

	tstore_write_pat(fx->s, fx->br, f, 1, 0, 100);
	for (i = 0; i < sizeof(ops) / sizeof(ops[0]); i++) {
		char *fp_old, *fp_new, *fp, *fp2;
		unsigned long n, fired, made = 0;
		uint64_t c;
		int rc;

		c = tstore_bop_base(fx, f);
		fp_old = tstore_branches_fp(fx->s, f);
		assert_int_equal(ops[i].fn(fx->s, c), 0);
		fp_new = tstore_branches_fp(fx->s, f);
		assert_string_not_equal(fp_new, fp_old);
		for (n = 1; n <= SWEEP_MAX; n++) {
			c = tstore_bop_base(fx, f);
			fp = tstore_branches_fp(fx->s, f);
			assert_string_equal(fp, fp_old);
			free(fp);
			kv_fault_arm(fx->fault, KV_FAULT_WRITE | KV_FAULT_SYNC,
				     n, false, -EIO);
			rc = ops[i].fn(fx->s, c);
			fired = kv_fault_fired(fx->fault);
			kv_fault_disarm(fx->fault);
			fp = tstore_branches_fp(fx->s, f);
			if (!fired || rc == 0) {
				if (rc != 0 || strcmp(fp, fp_new) != 0)
					fail_msg("%s, fault at call %lu (%s): rc %d\n"
						 "  got  %s\n  want %s",
						 ops[i].name, n,
						 fired ? "fired" : "not fired",
						 rc, fp, fp_new);
			} else if (rc != -EIO) {
				fail_msg("%s, fault at call %lu: rc %d, want %d",
					 ops[i].name, n, rc, -EIO);
			} else if (strcmp(fp, fp_new) == 0) {
				made++;
			} else if (strcmp(fp, fp_old) != 0) {
				fail_msg("%s, fault at call %lu failed but left a half change\n"
					 "  got  %s\n  old  %s\n  new  %s",
					 ops[i].name, n, fp, fp_old, fp_new);
			}
			tstore_fx_reopen(fx);
			fp2 = tstore_branches_fp(fx->s, f);
			if (strcmp(fp2, fp) != 0)
				fail_msg("%s, fault at call %lu (rc %d): after a reopen\n"
					 "  got  %s\n  want %s",
					 ops[i].name, n, rc, fp2, fp);
			free(fp2);
			free(fp);
			if (!fired)
				break;
		}
		assert_true(n <= SWEEP_MAX);
		fprintf(stderr, "  %s: faults at calls 1..%lu, %lu of them after the commit\n",
			ops[i].name, n - 1, made);
		/* the sync after the commit is one of the calls swept */
		assert_true(made > 0);
		free(fp_old);
		free(fp_new);
	}
}

#define T(f) cmocka_unit_test_setup_teardown(f, tstore_fx_setup_fault, \
					     tstore_fx_teardown)

int main(void)
{
	const struct CMUnitTest tests[] = {
		T(test_store_fault_write_batch_write),
		T(test_store_fault_write_batch_create),
		T(test_store_fault_write_batch_branch_create),
		T(test_store_fault_branch_ops),
		T(test_store_fault_sync),
		T(test_store_fault_sync_keeps_counters),
		T(test_store_fault_usage_reads),
		T(test_store_fault_sync_is_durable_point),
		T(test_store_fault_sync_branch_skips_idle_branch),
		T(test_store_fault_sync_pending),
		T(test_store_fault_lazy_branch_create),
		T(test_store_fault_branch_ops_sync_sweep),
		T(test_store_fault_reads_after_reopen),
		T(test_store_fault_read_sweep_transient),
		T(test_store_fault_read_sweep_persistent),
		T(test_store_fault_sweep_any_call_transient),
		T(test_store_fault_sweep_any_call_persistent),
		T(test_store_corrupt_block_read_eio),
		T(test_store_corrupt_check_reports),
		T(test_store_fault_open_wrap_fails),
		T(test_store_fault_open_sweep),
		T(test_store_fault_close_sync_fails),
	};

	return cmocka_run_group_tests_name("store_fault", tests, NULL, NULL);
}
