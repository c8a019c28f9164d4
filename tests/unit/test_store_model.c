/* SPDX-License-Identifier: MIT */
/*
 * test_store_model.c - randomized model-based test of the store on real
 * RocksDB.
 *
 * A seeded random sequence of operations (writes at random, unaligned
 * offsets and lengths within and across blocks, all-zero writes, reads,
 * truncations, create, mkdir, unlink, rmdir, rename of files and
 * directories with and without NOREPLACE/EXCHANGE (never a directory into
 * its own subtree: the caller prevents that), link, rm -r of a directory,
 * branch create at the head or at a recorded past seq (sometimes with
 * drop_names), branch delete and reset (also with drop_names), as-of reads at recorded seqs, readdir, close/reopen, and GC with a
 * 3 s retention window) runs over up to MODEL_MAX_BRANCHES live branches,
 * and every read is checked against an in-memory reference model:
 *  - per branch, a list of entries (dir, name) -> (ino, is a directory)
 *    and, per live file, an immutable refcounted content blob (so copying
 *    a branch's state, for a new branch or a past-seq snapshot, is cheap);
 *  - a few snapshots per branch (seq, copy of the state) for as-of reads
 *    and branches made in the past.
 * Files stay small (<= 64 KiB) so the model is cheap.  After each GC,
 * snapshots that may have left the retention window are forgotten; every
 * other state must read exactly as the model says.
 *
 * Environment: BRANCHFS_SEED=N picks the seed (default fixed),
 * BRANCHFS_OPS=N the number of operations (default 100000).  A failure
 * prints the seed, the operation number and the last operations.
 */
#include <inttypes.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "tests/unit/test_model_util.h"
#include "tests/unit/test_store_common.h"

#define BS STORE_BLOCK_SIZE
#define MODEL_MAX_BRANCHES 40
#define MODEL_MAX_ENTS 32
#define MODEL_MAX_DIRS 6 /* besides the root */
#define MODEL_NSNAP 3
#define MODEL_FILE_MAX (64u * 1024u)
#define MODEL_NAMES 12
#define MODEL_DEFAULT_SEED 20261124u
#define MODEL_DEFAULT_OPS 100000u
#define MODEL_RETENTION_S 3
#define MODEL_GC_EVERY 2000

/* ---- model ---- */

struct model_ent {
	uint64_t dir; /* inode of the directory holding it */
	int name;     /* "n<name>" */
	uint64_t ino;
	bool isdir;
};

struct model_file {
	uint64_t ino;
	struct tm_blob *b;
};

struct model_state {
	struct model_ent ents[MODEL_MAX_ENTS];
	int nents;
	struct model_file files[MODEL_MAX_ENTS];
	int nfiles;
};

struct model_snap {
	uint64_t seq;
	int64_t ts_ns; /* wall clock when seq was taken */
	unsigned long epoch; /* GCs done before it was taken */
	struct model_state st;
};

struct model_branch {
	bool live;
	uint64_t id;
	int parent; /* index, -1 for the first branch */
	int nchildren;
	char name[16];
	struct model_state st;
	struct model_snap snaps[MODEL_NSNAP];
	int nsnaps;
};

struct model {
	struct tstore_fx *fx;
	struct tm_run run; /* seed, generator, op, trail */
	uint64_t root;
	struct model_branch br[MODEL_MAX_BRANCHES];
	int nlive;
	unsigned long branch_counter;
	unsigned char *buf, *buf2;
	struct tm_blob *empty;
	unsigned long stats[16];
	uint64_t gc_deleted;
	unsigned long ndropped; /* entries removed by drop_names */
};

static void model_trail(struct model *m, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

static void model_trail(struct model *m, const char *fmt, ...)
{
	char prefix[32];
	va_list ap;

	snprintf(prefix, sizeof(prefix), "#%lu ", m->run.op);
	va_start(ap, fmt);
	tm_vtrail(tm_trail_line(&m->run), prefix, fmt, ap);
	va_end(ap);
}

#define model_fail(m, ...) tm_fail(&(m)->run, "model", __VA_ARGS__)

#define MCHECK(m, cond, ...)                                                  \
	do {                                                                  \
		if (!(cond))                                                  \
			model_fail((m), __VA_ARGS__);                         \
	} while (0)

static struct tm_blob *model_blob_get(struct tm_blob *b)
{
	b->ref++;
	return b;
}

static void model_state_copy(struct model_state *dst,
			     const struct model_state *src)
{
	int i;

	*dst = *src;
	for (i = 0; i < dst->nfiles; i++)
		model_blob_get(dst->files[i].b);
}

static void model_state_release(struct model_state *st)
{
	int i;

	for (i = 0; i < st->nfiles; i++)
		tm_blob_put(st->files[i].b);
	st->nfiles = 0;
	st->nents = 0;
}

static int model_find_ent(const struct model_state *st, uint64_t dir,
			  int name)
{
	int i;

	for (i = 0; i < st->nents; i++)
		if (st->ents[i].dir == dir && st->ents[i].name == name)
			return i;
	return -1;
}

static struct model_file *model_find_file(struct model_state *st,
					  uint64_t ino)
{
	int i;

	for (i = 0; i < st->nfiles; i++)
		if (st->files[i].ino == ino)
			return &st->files[i];
	return NULL;
}

static int model_nlink(const struct model_state *st, uint64_t ino)
{
	int i, n = 0;

	for (i = 0; i < st->nents; i++)
		n += st->ents[i].ino == ino;
	return n;
}

static int model_ndirs(const struct model_state *st)
{
	int i, n = 0;

	for (i = 0; i < st->nents; i++)
		n += st->ents[i].isdir;
	return n;
}

/* The entry naming directory dir (-1 for the root). */
static int model_dir_ent(const struct model_state *st, uint64_t root,
			 uint64_t dir)
{
	int i;

	if (dir == root)
		return -1;
	for (i = 0; i < st->nents; i++)
		if (st->ents[i].isdir && st->ents[i].ino == dir)
			return i;
	abort();
}

/* Is directory x top itself or inside top's subtree? */
static bool model_in_subtree(const struct model_state *st, uint64_t root,
			     uint64_t top, uint64_t x)
{
	for (;;) {
		if (x == top)
			return true;
		if (x == root)
			return false;
		x = st->ents[model_dir_ent(st, root, x)].dir;
	}
}

static bool model_dir_empty(const struct model_state *st, uint64_t dir)
{
	int i;

	for (i = 0; i < st->nents; i++)
		if (st->ents[i].dir == dir)
			return false;
	return true;
}

/* Drop entry i; forget the file if that was its last name.  A directory
 * entry must name an empty directory. */
static void model_drop_ent(struct model_state *st, int i)
{
	uint64_t ino = st->ents[i].ino;
	bool isdir = st->ents[i].isdir;

	st->ents[i] = st->ents[--st->nents];
	if (!isdir && model_nlink(st, ino) == 0) {
		struct model_file *f = model_find_file(st, ino);

		assert_non_null(f);
		tm_blob_put(f->b);
		*f = st->files[--st->nfiles];
	}
}

static void model_name(int name, char *buf)
{
	snprintf(buf, 16, "n%d", name);
}

static void model_check_file(struct model *m, uint64_t br, uint64_t seq,
			     struct model_file *f, uint32_t off, uint32_t len)
{
	struct store *s = m->fx->s;
	struct store_attr a;
	uint32_t want;
	ssize_t n;
	int rc;

	rc = store_getattr(s, br, seq, f->ino, &a);
	MCHECK(m, rc == 0, "getattr(br %" PRIu64 ", seq %" PRIu64 ", ino %" PRIu64 ") = %d",
	       br, seq, f->ino, rc);
	MCHECK(m, a.size == f->b->len,
	       "size of ino %" PRIu64 " in br %" PRIu64 " seq %" PRIu64 " is %" PRIu64 ", model %u",
	       f->ino, br, seq, a.size, f->b->len);
	MCHECK(m, S_ISREG(a.mode), "ino %" PRIu64 " mode %o", f->ino, a.mode);
	n = store_read(s, br, seq, f->ino, m->buf, len, off);
	want = off >= f->b->len ? 0 :
				  (f->b->len - off < len ? f->b->len - off : len);
	MCHECK(m, n == (ssize_t)want,
	       "read(br %" PRIu64 ", seq %" PRIu64 ", ino %" PRIu64 ", off %u, len %u) = %zd, model %u",
	       br, seq, f->ino, off, len, n, want);
	if (want && memcmp(m->buf, f->b->data + off, want) != 0) {
		size_t d = tstore_first_diff(m->buf, f->b->data + off, want);

		model_fail(m,
			   "read(br %" PRIu64 ", seq %" PRIu64 ", ino %" PRIu64 ", off %u, len %u): byte %zu is 0x%02x, model 0x%02x",
			   br, seq, f->ino, off, len, off + d, m->buf[d],
			   f->b->data[off + d]);
	}
}

static void model_check_dir(struct model *m, uint64_t br, uint64_t seq,
			    struct model_state *st, uint64_t dir)
{
	struct store *s = m->fx->s;
	struct store_dirent *d = NULL;
	size_t n = 0, i;
	int want = 0, rc, k;

	rc = store_readdir(s, br, seq, dir, &d, &n);
	MCHECK(m, rc == 0, "readdir(br %" PRIu64 ", seq %" PRIu64 ", dir %" PRIu64 ") = %d",
	       br, seq, dir, rc);
	for (k = 0; k < st->nents; k++)
		want += st->ents[k].dir == dir;
	MCHECK(m, n == (size_t)want,
	       "readdir(br %" PRIu64 ", seq %" PRIu64 ", dir %" PRIu64 "): %zu entries, model %d",
	       br, seq, dir, n, want);
	for (i = 0; i < n; i++) {
		int name;

		MCHECK(m, i == 0 || strcmp(d[i - 1].name, d[i].name) < 0,
		       "readdir not sorted: '%s' then '%s'", d[i - 1].name,
		       d[i].name);
		MCHECK(m, sscanf(d[i].name, "n%d", &name) == 1,
		       "unexpected entry '%s'", d[i].name);
		k = model_find_ent(st, dir, name);
		MCHECK(m, k >= 0,
		       "br %" PRIu64 " seq %" PRIu64 ": entry '%s' in dir %" PRIu64 " not in model",
		       br, seq, d[i].name, dir);
		MCHECK(m, st->ents[k].ino == d[i].ino,
		       "entry '%s': ino %" PRIu64 ", model %" PRIu64, d[i].name,
		       d[i].ino, st->ents[k].ino);
		MCHECK(m, d[i].mode == (st->ents[k].isdir ? S_IFDIR : S_IFREG),
		       "entry '%s' mode %o", d[i].name, d[i].mode);
	}
	free(d);
}

/* Every directory of the tree. */
static void model_check_dirs(struct model *m, uint64_t br, uint64_t seq,
			     struct model_state *st)
{
	int i;

	model_check_dir(m, br, seq, st, m->root);
	for (i = 0; i < st->nents; i++)
		if (st->ents[i].isdir)
			model_check_dir(m, br, seq, st, st->ents[i].ino);
}

/* Everything in one branch (or snapshot). */
static void model_check_all(struct model *m, uint64_t br, uint64_t seq,
			    struct model_state *st)
{
	struct store *s = m->fx->s;
	int i;

	model_check_dirs(m, br, seq, st);
	/* every name the model says is absent is absent (lookups go through
	 * the read filters, readdir may not) */
	for (i = -1; i < st->nents; i++) {
		uint64_t dir = i < 0 ? m->root : st->ents[i].ino, ino;
		char name[16];
		int nm, rc;

		if (i >= 0 && !st->ents[i].isdir)
			continue;
		for (nm = 0; nm < MODEL_NAMES; nm++) {
			if (model_find_ent(st, dir, nm) >= 0)
				continue;
			model_name(nm, name);
			rc = store_lookup(s, br, seq, dir, name, &ino);
			MCHECK(m, rc == -ENOENT,
			       "lookup(br %" PRIu64 ", seq %" PRIu64 ", dir %" PRIu64 ", '%s') = %d, model: absent",
			       br, seq, dir, name, rc);
		}
	}
	for (i = 0; i < st->nents; i++) {
		char name[16];
		uint64_t ino = 0;
		int rc;

		model_name(st->ents[i].name, name);
		rc = store_lookup(s, br, seq, st->ents[i].dir, name, &ino);
		MCHECK(m, rc == 0 && ino == st->ents[i].ino,
		       "lookup(br %" PRIu64 ", seq %" PRIu64 ", '%s') = %d ino %" PRIu64 ", model %" PRIu64,
		       br, seq, name, rc, ino, st->ents[i].ino);
		if (st->ents[i].isdir) {
			struct store_attr a;

			rc = store_getattr(s, br, seq, ino, &a);
			MCHECK(m, rc == 0 && S_ISDIR(a.mode),
			       "getattr of dir '%s' = %d mode %o", name, rc,
			       rc ? 0 : a.mode);
		}
	}
	for (i = 0; i < st->nfiles; i++) {
		struct store_attr a;

		model_check_file(m, br, seq, &st->files[i], 0,
				 MODEL_FILE_MAX + 100);
		assert_int_equal(store_getattr(s, br, seq, st->files[i].ino,
					       &a),
				 0);
		MCHECK(m, a.nlink == (uint32_t)model_nlink(st, st->files[i].ino),
		       "nlink of ino %" PRIu64 " in br %" PRIu64 " = %u, model %d",
		       st->files[i].ino, br, a.nlink,
		       model_nlink(st, st->files[i].ino));
	}
}

/* ---- operations ---- */

static int model_pick_branch(struct model *m)
{
	int k = (int)tm_below(&m->run, (uint32_t)m->nlive), i;

	for (i = 0; i < MODEL_MAX_BRANCHES; i++)
		if (m->br[i].live && k-- == 0)
			return i;
	abort();
}

static void model_gen_data(struct model *m, unsigned char *p, uint32_t len)
{
	uint32_t i = 0, kind = tm_below(&m->run, 20);

	if (kind == 0) { /* all zeros */
		memset(p, 0, len);
		return;
	}
	while (i < len) {
		uint32_t run = 1 + tm_below(&m->run, kind < 10 ? 64 : 4);
		unsigned char v = (unsigned char)tm_rand(&m->run);

		if (run > len - i)
			run = len - i;
		memset(p + i, v, run);
		i += run;
	}
}

static uint32_t model_gen_len(struct model *m, uint32_t max)
{
	uint32_t r = tm_below(&m->run, 10), len;

	if (r < 4)
		len = 1 + tm_below(&m->run, 600);
	else if (r < 8)
		len = 1 + tm_below(&m->run, 9000);
	else
		len = 1 + tm_below(&m->run, 3 * BS);
	return len > max ? max : len;
}

static void model_op_write(struct model *m, struct model_branch *b)
{
	struct model_file *f;
	struct tm_blob *nb;
	uint32_t off, len, end;
	ssize_t n;

	if (!b->st.nfiles)
		return;
	f = &b->st.files[tm_below(&m->run, (uint32_t)b->st.nfiles)];
	off = tm_below(&m->run, MODEL_FILE_MAX);
	if (tm_below(&m->run, 3) == 0)
		off -= off % BS;
	len = model_gen_len(m, MODEL_FILE_MAX - off);
	model_gen_data(m, m->buf2, len);
	model_trail(m, "write br %s ino %" PRIu64 " off %u len %u (size %u)",
		    b->name, f->ino, off, len, f->b->len);
	n = store_write(m->fx->s, b->id, f->ino, m->buf2, len, off, NULL);
	MCHECK(m, n == (ssize_t)len, "write = %zd, want %u", n, len);
	end = off + len > f->b->len ? off + len : f->b->len;
	nb = tm_blob_new(end);
	memcpy(nb->data, f->b->data, f->b->len);
	memcpy(nb->data + off, m->buf2, len);
	tm_blob_put(f->b);
	f->b = nb;
	m->stats[0]++;
}

static void model_op_read(struct model *m, struct model_branch *b)
{
	struct model_file *f;
	uint32_t off, len;

	if (!b->st.nfiles)
		return;
	f = &b->st.files[tm_below(&m->run, (uint32_t)b->st.nfiles)];
	off = tm_below(&m->run, f->b->len + 200);
	if (tm_below(&m->run, 3) == 0)
		off -= off % BS;
	len = model_gen_len(m, MODEL_FILE_MAX + 1000);
	model_trail(m, "read br %s ino %" PRIu64 " off %u len %u", b->name,
		    f->ino, off, len);
	model_check_file(m, b->id, STORE_SEQ_LATEST, f, off, len);
	m->stats[1]++;
}

static void model_op_truncate(struct model *m, struct model_branch *b)
{
	struct store_attr a;
	struct model_file *f;
	struct tm_blob *nb;
	uint32_t size;
	int rc;

	if (!b->st.nfiles)
		return;
	f = &b->st.files[tm_below(&m->run, (uint32_t)b->st.nfiles)];
	size = tm_below(&m->run, MODEL_FILE_MAX + 1);
	if (tm_below(&m->run, 3) == 0)
		size -= size % BS;
	else if (tm_below(&m->run, 4) == 0)
		size = 0;
	model_trail(m, "truncate br %s ino %" PRIu64 " %u -> %u", b->name,
		    f->ino, f->b->len, size);
	memset(&a, 0, sizeof(a));
	a.size = size;
	rc = store_setattr(m->fx->s, b->id, f->ino, &a, STORE_SET_SIZE, NULL);
	MCHECK(m, rc == 0, "truncate = %d", rc);
	nb = tm_blob_new(size);
	memcpy(nb->data, f->b->data, size < f->b->len ? size : f->b->len);
	tm_blob_put(f->b);
	f->b = nb;
	m->stats[2]++;
}

/* A directory of the branch's tree: the root or one made by mkdir. */
static uint64_t model_pick_dir(struct model *m, struct model_state *st)
{
	int k = (int)tm_below(&m->run, (uint32_t)model_ndirs(st) + 1), i;

	if (k == 0)
		return m->root;
	for (i = 0; i < st->nents; i++)
		if (st->ents[i].isdir && --k == 0)
			return st->ents[i].ino;
	abort();
}

static void model_op_create(struct model *m, struct model_branch *b,
			    bool isdir)
{
	struct store_attr a = tstore_attr(isdir ? S_IFDIR | 0755 :
						  S_IFREG | 0644);
	uint64_t dir = model_pick_dir(m, &b->st), ino = 0;
	int name = (int)tm_below(&m->run, MODEL_NAMES);
	int k = model_find_ent(&b->st, dir, name), rc;
	char nm[16];

	model_name(name, nm);
	if (k < 0 && b->st.nents == MODEL_MAX_ENTS)
		return;
	if (isdir && k < 0 && model_ndirs(&b->st) == MODEL_MAX_DIRS)
		return;
	model_trail(m, "%s br %s dir %" PRIu64 " '%s'%s",
		    isdir ? "mkdir" : "create", b->name, dir, nm,
		    k >= 0 ? " (exists)" : "");
	rc = store_create(m->fx->s, b->id, dir, nm, &a, NULL, &ino, NULL);
	if (k >= 0) {
		MCHECK(m, rc == -EEXIST, "create of existing '%s' = %d", nm,
		       rc);
		return;
	}
	MCHECK(m, rc == 0 && ino > 0, "create '%s' = %d", nm, rc);
	MCHECK(m, model_nlink(&b->st, ino) == 0,
	       "create returned ino %" PRIu64 " already live", ino);
	b->st.ents[b->st.nents++] =
		(struct model_ent){ .dir = dir, .name = name, .ino = ino,
				    .isdir = isdir };
	if (!isdir) {
		b->st.files[b->st.nfiles].ino = ino;
		b->st.files[b->st.nfiles++].b = model_blob_get(m->empty);
	}
	m->stats[isdir ? 13 : 3]++;
}

static void model_op_unlink(struct model *m, struct model_branch *b,
			    bool rmdir)
{
	uint64_t dir = model_pick_dir(m, &b->st);
	int name = (int)tm_below(&m->run, MODEL_NAMES);
	int k = model_find_ent(&b->st, dir, name), rc, want;
	char nm[16];

	model_name(name, nm);
	if (k < 0)
		want = -ENOENT;
	else if (!rmdir)
		want = b->st.ents[k].isdir ? -EISDIR : 0;
	else if (!b->st.ents[k].isdir)
		want = -ENOTDIR;
	else
		want = model_dir_empty(&b->st, b->st.ents[k].ino) ? 0 :
								     -ENOTEMPTY;
	model_trail(m, "%s br %s dir %" PRIu64 " '%s' (want %d)",
		    rmdir ? "rmdir" : "unlink", b->name, dir, nm, want);
	rc = rmdir ? store_rmdir(m->fx->s, b->id, dir, nm) :
		     store_unlink(m->fx->s, b->id, dir, nm);
	MCHECK(m, rc == want, "%s '%s' = %d, want %d",
	       rmdir ? "rmdir" : "unlink", nm, rc, want);
	if (rc == 0) {
		model_drop_ent(&b->st, k);
		m->stats[rmdir ? 14 : 4]++;
	}
}

/* rm -r: empty a directory depth first, then remove it. */
static void model_rmtree(struct model *m, struct model_branch *b, int k)
{
	uint64_t dir = b->st.ents[k].ino, parent = b->st.ents[k].dir;
	int name = b->st.ents[k].name, i, rc;
	char nm[16];

	for (i = 0; i < b->st.nents;) {
		if (b->st.ents[i].dir != dir) {
			i++;
			continue;
		}
		if (b->st.ents[i].isdir) {
			model_rmtree(m, b, i);
		} else {
			model_name(b->st.ents[i].name, nm);
			rc = store_unlink(m->fx->s, b->id, dir, nm);
			MCHECK(m, rc == 0, "rm -r: unlink '%s' = %d", nm, rc);
			model_drop_ent(&b->st, i);
		}
		i = 0; /* entries moved: rescan */
	}
	model_name(name, nm);
	rc = store_rmdir(m->fx->s, b->id, parent, nm);
	MCHECK(m, rc == 0, "rm -r: rmdir '%s' = %d", nm, rc);
	k = model_find_ent(&b->st, parent, name);
	assert_true(k >= 0);
	model_drop_ent(&b->st, k);
	m->stats[14]++;
}

static void model_op_rmtree(struct model *m, struct model_branch *b)
{
	int n = model_ndirs(&b->st), k, i;

	if (!n)
		return;
	k = (int)tm_below(&m->run, (uint32_t)n);
	for (i = 0; i < b->st.nents; i++)
		if (b->st.ents[i].isdir && k-- == 0)
			break;
	model_trail(m, "rm -r br %s dir ino %" PRIu64, b->name,
		    b->st.ents[i].ino);
	model_rmtree(m, b, i);
}

static void model_op_rename(struct model *m, struct model_branch *b)
{
	struct model_state *st = &b->st;
	int ks, kd, dname, rc, want;
	unsigned flags = 0, r = tm_below(&m->run, 6);
	uint64_t sdir, ddir;
	struct model_ent *se, *de;
	char sn[16], dn[16];

	if (!st->nents)
		return;
	ks = (int)tm_below(&m->run, (uint32_t)st->nents);
	se = &st->ents[ks];
	sdir = se->dir;
	ddir = model_pick_dir(m, st);
	dname = (int)tm_below(&m->run, MODEL_NAMES);
	if (ddir == sdir && dname == se->name)
		return;
	/* the caller prevents moving a directory into its own subtree */
	if (se->isdir && model_in_subtree(st, m->root, se->ino, ddir))
		return;
	kd = model_find_ent(st, ddir, dname);
	de = kd >= 0 ? &st->ents[kd] : NULL;
	if (r == 0)
		flags = STORE_RENAME_NOREPLACE;
	else if (r == 1)
		flags = STORE_RENAME_EXCHANGE;
	if (flags == STORE_RENAME_EXCHANGE && de && de->isdir &&
	    model_in_subtree(st, m->root, de->ino, sdir))
		return;

	if (flags == STORE_RENAME_EXCHANGE)
		want = de ? 0 : -ENOENT;
	else if (!de)
		want = 0;
	else if (flags == STORE_RENAME_NOREPLACE)
		want = -EEXIST;
	else if (de->ino == se->ino)
		want = 0;
	else if (!se->isdir && de->isdir)
		want = -EISDIR;
	else if (se->isdir && !de->isdir)
		want = -ENOTDIR;
	else if (de->isdir && !model_dir_empty(st, de->ino))
		want = -ENOTEMPTY;
	else
		want = 0;
	model_name(se->name, sn);
	model_name(dname, dn);
	model_trail(m, "rename br %s %" PRIu64 "/%s (ino %" PRIu64 "%s) -> %" PRIu64 "/%s (ino %" PRIu64 "%s) flags %u, want %d",
		    b->name, sdir, sn, se->ino, se->isdir ? " dir" : "", ddir,
		    dn, de ? de->ino : 0, de && de->isdir ? " dir" : "", flags,
		    want);
	rc = store_rename(m->fx->s, b->id, sdir, sn, ddir, dn, flags);
	/* NOREPLACE onto another link of the same inode: "does nothing"
	 * (0) and -EEXIST (what Linux returns) are both no-ops */
	if (flags == STORE_RENAME_NOREPLACE && de && de->ino == se->ino &&
	    rc == 0)
		return;
	MCHECK(m, rc == want, "rename = %d, want %d", rc, want);
	if (rc)
		return;
	if (flags == STORE_RENAME_EXCHANGE) {
		struct model_ent t = *se;

		se->ino = de->ino;
		se->isdir = de->isdir;
		de->ino = t.ino;
		de->isdir = t.isdir;
		m->stats[5]++;
		return;
	}
	if (de && de->ino == se->ino)
		return; /* links to one inode: nothing happens */
	if (de) {
		/* the target goes: a file loses a link, an empty dir goes */
		struct model_ent moved = *se;

		model_drop_ent(st, kd);
		ks = model_find_ent(st, moved.dir, moved.name);
		assert_true(ks >= 0);
		se = &st->ents[ks];
	}
	se->dir = ddir;
	se->name = dname;
	m->stats[se->isdir ? 15 : 5]++;
}

static void model_op_link(struct model *m, struct model_branch *b)
{
	int ks, dname, kd, rc, want;
	struct store_attr a;
	uint64_t ddir;
	char dn[16];

	if (!b->st.nents || b->st.nents == MODEL_MAX_ENTS)
		return;
	ks = (int)tm_below(&m->run, (uint32_t)b->st.nents);
	ddir = model_pick_dir(m, &b->st);
	dname = (int)tm_below(&m->run, MODEL_NAMES);
	kd = model_find_ent(&b->st, ddir, dname);
	want = b->st.ents[ks].isdir ? -EPERM : kd >= 0 ? -EEXIST : 0;
	model_name(dname, dn);
	model_trail(m, "link br %s ino %" PRIu64 " -> %" PRIu64 "/%s (want %d)",
		    b->name, b->st.ents[ks].ino, ddir, dn, want);
	rc = store_link(m->fx->s, b->id, b->st.ents[ks].ino, ddir, dn, &a);
	/* a directory that is also the target: either error will do */
	if (want == -EPERM && kd >= 0 && rc == -EEXIST)
		return;
	MCHECK(m, rc == want, "link = %d, want %d", rc, want);
	if (rc)
		return;
	b->st.ents[b->st.nents++] = (struct model_ent){
		.dir = ddir, .name = dname, .ino = b->st.ents[ks].ino
	};
	MCHECK(m, a.nlink == (uint32_t)model_nlink(&b->st, b->st.ents[ks].ino),
	       "link: nlink %u, model %d", a.nlink,
	       model_nlink(&b->st, b->st.ents[ks].ino));
	m->stats[6]++;
}

static int model_free_slot(struct model *m)
{
	int i;

	for (i = 0; i < MODEL_MAX_BRANCHES; i++)
		if (!m->br[i].live)
			return i;
	return -1;
}

/* ---- drop_names ---- */

/* Is directory dir inside the subtree of directory top (or top itself)? */
static bool model_under(const struct model_state *st, uint64_t root,
			uint64_t top, uint64_t dir)
{
	return model_in_subtree(st, root, top, dir);
}

/* Can root entry k be dropped without leaving a file linked from outside
 * what is dropped (the store writes tombstones for dropped names; it does
 * not adjust link counts of files that stay reachable)? */
static bool model_droppable(const struct model_state *st, uint64_t root,
			    int k)
{
	const struct model_ent *e = &st->ents[k];
	int i, j;

	if (!e->isdir)
		return model_nlink(st, e->ino) == 1;
	for (i = 0; i < st->nents; i++) {
		if (st->ents[i].isdir ||
		    !model_under(st, root, e->ino, st->ents[i].dir))
			continue;
		for (j = 0; j < st->nents; j++)
			if (st->ents[j].ino == st->ents[i].ino &&
			    !model_under(st, root, e->ino, st->ents[j].dir))
				return false;
	}
	return true;
}

/* Forget entry (dir, name) and everything under it. */
static void model_forget(struct model_state *st, uint64_t dir, int name)
{
	int k = model_find_ent(st, dir, name), i;
	uint64_t ino;

	if (k < 0)
		return;
	if (st->ents[k].isdir) {
		ino = st->ents[k].ino;
		for (i = 0; i < st->nents; i++) {
			if (st->ents[i].dir == ino) {
				model_forget(st, ino, st->ents[i].name);
				i = -1; /* entries moved: rescan */
			}
		}
		k = model_find_ent(st, dir, name);
	}
	model_drop_ent(st, k);
}

/* Pick up to two droppable root-directory names (or absent ones) of st;
 * fill names[] (NULL-terminated, storage in buf) and return how many. */
static int model_pick_drops(struct model *m, const struct model_state *st,
			    const char **names, char buf[][16], int *which)
{
	int n = 0, want = 1 + (int)tm_below(&m->run, 2), tries;

	for (tries = 0; tries < 6 && n < want; tries++) {
		int name = (int)tm_below(&m->run, MODEL_NAMES);
		int k = model_find_ent(st, m->root, name), j;

		if (k >= 0 && !model_droppable(st, m->root, k))
			continue;
		for (j = 0; j < n && which[j] != name; j++)
			;
		if (j < n)
			continue;
		which[n] = name;
		model_name(name, buf[n]);
		names[n] = buf[n];
		n++;
	}
	names[n] = NULL;
	return n;
}

static void model_apply_drops(struct model *m, struct model_state *st,
			      const int *which, int n)
{
	int i;

	for (i = 0; i < n; i++) {
		m->ndropped += model_find_ent(st, m->root, which[i]) >= 0;
		model_forget(st, m->root, which[i]);
	}
}

static void model_op_branch_create(struct model *m, struct model_branch *p)
{
	struct store_branch_create_args a;
	struct store_branch_info bi;
	struct model_branch *c;
	struct model_snap *snap = NULL;
	int slot = model_free_slot(m), rc, ndrop = 0, which[3];
	const char *drops[3] = { NULL };
	char dropbuf[3][16];

	if (slot < 0)
		return;
	c = &m->br[slot];
	snprintf(c->name, sizeof(c->name), "b%lu", ++m->branch_counter);
	a = tstore_args(c->name, p->id, STORE_SEQ_LATEST);
	if (p->nsnaps && tm_below(&m->run, 3) == 0) {
		snap = &p->snaps[tm_below(&m->run, (uint32_t)p->nsnaps)];
		a.at_seq = snap->seq;
	}
	if (tm_below(&m->run, 4) == 0) {
		ndrop = model_pick_drops(m, snap ? &snap->st : &p->st, drops,
					 dropbuf, which);
		a.drop_names = drops;
	}
	model_trail(m, "branch create %s from %s at %" PRIu64 " dropping %d: %s %s",
		    c->name, p->name, a.at_seq, ndrop,
		    ndrop > 0 ? drops[0] : "", ndrop > 1 ? drops[1] : "");
	rc = store_branch_create(m->fx->s, &a, &bi);
	MCHECK(m, rc == 0, "branch create %s = %d", c->name, rc);
	MCHECK(m, bi.root_ino == m->root, "new branch root %" PRIu64,
	       bi.root_ino);
	c->live = true;
	c->id = bi.id;
	c->parent = (int)(p - m->br);
	c->nchildren = 0;
	c->nsnaps = 0;
	model_state_copy(&c->st, snap ? &snap->st : &p->st);
	model_apply_drops(m, &c->st, which, ndrop);
	p->nchildren++;
	m->nlive++;
	m->stats[7]++;
}

static void model_branch_free(struct model_branch *b)
{
	int i;

	model_state_release(&b->st);
	for (i = 0; i < b->nsnaps; i++)
		model_state_release(&b->snaps[i].st);
	b->nsnaps = 0;
	b->live = false;
}

static void model_op_branch_delete(struct model *m, struct model_branch *b)
{
	int rc;

	if (m->nlive <= 1)
		return;
	model_trail(m, "branch delete %s (%d children)", b->name,
		    b->nchildren);
	rc = store_branch_delete(m->fx->s, b->id);
	if (b->nchildren) {
		MCHECK(m, rc == -ENOTEMPTY, "delete with children = %d", rc);
		return;
	}
	MCHECK(m, rc == 0, "branch delete = %d", rc);
	if (b->parent >= 0)
		m->br[b->parent].nchildren--;
	model_branch_free(b);
	m->nlive--;
	m->stats[8]++;
}

static void model_op_branch_reset(struct model *m, struct model_branch *b)
{
	int rc, ndrop = 0, which[3];
	const char *drops[3] = { NULL };
	char dropbuf[3][16];

	if (b->parent < 0 || b->nchildren)
		return;
	if (tm_below(&m->run, 2) == 0)
		ndrop = model_pick_drops(m, &m->br[b->parent].st, drops,
					 dropbuf, which);
	model_trail(m, "branch reset %s to %s dropping %d: %s %s", b->name,
		    m->br[b->parent].name, ndrop, ndrop > 0 ? drops[0] : "",
		    ndrop > 1 ? drops[1] : "");
	rc = store_branch_reset(m->fx->s, b->id, ndrop ? drops : NULL);
	MCHECK(m, rc == 0, "branch reset = %d", rc);
	model_state_release(&b->st);
	model_state_copy(&b->st, &m->br[b->parent].st);
	model_apply_drops(m, &b->st, which, ndrop);
	/* the branch's past before the reset is not its history any more */
	while (b->nsnaps)
		model_state_release(&b->snaps[--b->nsnaps].st);
	m->stats[9]++;
}

static void model_op_snapshot(struct model *m, struct model_branch *b)
{
	struct model_snap *sn;

	if (b->nsnaps < MODEL_NSNAP) {
		sn = &b->snaps[b->nsnaps++];
	} else {
		sn = &b->snaps[tm_below(&m->run, MODEL_NSNAP)];
		model_state_release(&sn->st);
	}
	sn->seq = store_seq_now(m->fx->s);
	sn->ts_ns = tstore_now_ns();
	sn->epoch = m->stats[12];
	model_state_copy(&sn->st, &b->st);
	model_trail(m, "snapshot %s at %" PRIu64, b->name, sn->seq);
}

static void model_op_asof(struct model *m, struct model_branch *b)
{
	struct model_snap *sn;

	if (!b->nsnaps)
		return;
	sn = &b->snaps[tm_below(&m->run, (uint32_t)b->nsnaps)];
	if (tm_below(&m->run, 4) == 0 || !sn->st.nfiles) {
		model_trail(m, "as-of dirs %s at %" PRIu64, b->name, sn->seq);
		model_check_dirs(m, b->id, sn->seq, &sn->st);
	} else {
		struct model_file *f =
			&sn->st.files[tm_below(&m->run, (uint32_t)sn->st.nfiles)];
		uint32_t off = tm_below(&m->run, f->b->len + 100);
		uint32_t len = model_gen_len(m, MODEL_FILE_MAX);

		model_trail(m, "as-of read %s at %" PRIu64 " ino %" PRIu64 " off %u len %u",
			    b->name, sn->seq, f->ino, off, len);
		model_check_file(m, b->id, sn->seq, f, off, len);
	}
	m->stats[10]++;
}

/* GC with a short retention window; then forget the snapshots taken
 * before the previous GC, so that the operation sequence does not depend
 * on timing (a seed reproduces it).  A snapshot kept must be inside the
 * window with a margin well above the time index's resolution; on a
 * machine so slow that one is not, it is dropped too (with a note). */
static void model_op_gc(struct model *m)
{
	struct store_gc_opts opts = { 0 };
	struct store_gc_stats gs;
	int64_t cutoff;
	int rc, i, k;

	opts.full_compaction = m->stats[12] % 10 == 9;
	model_trail(m, "gc (full compaction %d)", opts.full_compaction);
	memset(&gs, 0, sizeof(gs));
	rc = store_gc(m->fx->s, &opts, &gs);
	MCHECK(m, rc == 0, "store_gc = %d", rc);
	m->gc_deleted += gs.keys_deleted;
	cutoff = tstore_now_ns() -
		 (int64_t)MODEL_RETENTION_S * 1000000000ll + 250000000ll;
	for (i = 0; i < MODEL_MAX_BRANCHES; i++) {
		struct model_branch *b = &m->br[i];

		if (!b->live)
			continue;
		for (k = 0; k < b->nsnaps;) {
			bool old = b->snaps[k].epoch < m->stats[12];

			if (!old && b->snaps[k].ts_ns < cutoff) {
				fprintf(stderr,
					"  model: slow machine: snapshot of %s older than the window, dropped (the op sequence now depends on timing)\n",
					b->name);
				old = true;
			}
			if (old) {
				model_state_release(&b->snaps[k].st);
				b->snaps[k] = b->snaps[--b->nsnaps];
			} else {
				k++;
			}
		}
	}
	m->stats[12]++;
}

static void model_check_branch_list(struct model *m)
{
	struct store_branch_info *list = NULL;
	size_t n = 0, i;
	int j;

	assert_int_equal(store_branch_list(m->fx->s, &list, &n), 0);
	MCHECK(m, n == (size_t)m->nlive, "%zu branches, model %d", n,
	       m->nlive);
	for (j = 0; j < MODEL_MAX_BRANCHES; j++) {
		bool found = false;

		if (!m->br[j].live)
			continue;
		for (i = 0; i < n; i++) {
			if (list[i].id != m->br[j].id)
				continue;
			found = true;
			MCHECK(m, strcmp(list[i].name, m->br[j].name) == 0,
			       "branch %" PRIu64 " named '%s', model '%s'",
			       list[i].id, list[i].name, m->br[j].name);
			MCHECK(m, list[i].nchildren == (uint32_t)m->br[j].nchildren,
			       "branch %s has %u children, model %d",
			       m->br[j].name, list[i].nchildren,
			       m->br[j].nchildren);
		}
		MCHECK(m, found, "branch %s missing from list", m->br[j].name);
	}
	free(list);
}

/* Close and reopen, then check every branch at once: state rebuilt at
 * open (branch table, read filters, counters) must match what was
 * there. */
static void model_op_reopen(struct model *m)
{
	int i;

	model_trail(m, "close and reopen");
	tstore_fx_reopen(m->fx);
	model_check_branch_list(m);
	for (i = 0; i < MODEL_MAX_BRANCHES; i++) {
		if (!m->br[i].live)
			continue;
		model_trail(m, "check of %s after reopen", m->br[i].name);
		model_check_all(m, m->br[i].id, STORE_SEQ_LATEST,
				&m->br[i].st);
	}
	m->stats[11]++;
}


static void test_store_model_random_ops(void **state)
{
	static struct model mm;
	struct model *m = &mm;
	struct model_branch *b0;
	unsigned long reopen_every;
	int i;

	memset(m, 0, sizeof(*m));
	m->fx = *state;
	tm_run_start(&m->run, MODEL_DEFAULT_SEED, MODEL_DEFAULT_OPS);
	m->buf = malloc(MODEL_FILE_MAX + 4096);
	m->buf2 = malloc(MODEL_FILE_MAX + 4096);
	m->empty = tm_blob_new(0);
	assert_non_null(m->buf);
	assert_non_null(m->buf2);
	fprintf(stderr, "  model: BRANCHFS_SEED=%" PRIu64 " BRANCHFS_OPS=%lu\n",
		m->run.seed, m->run.nops);

	/* the fixture's "root" branch is the model's ancestor of all */
	b0 = &m->br[0];
	b0->live = true;
	b0->id = m->fx->br;
	b0->parent = -1;
	snprintf(b0->name, sizeof(b0->name), "root");
	m->nlive = 1;
	m->root = m->fx->root;
	assert_int_equal(store_set_retention(m->fx->s, MODEL_RETENTION_S), 0);

	reopen_every = m->run.nops / 10 ? m->run.nops / 10 : 1;
	for (m->run.op = 1; m->run.op <= m->run.nops; m->run.op++) {
		struct model_branch *b = &m->br[model_pick_branch(m)];
		uint32_t r = tm_below(&m->run, 1000);

		if (r < 250)
			model_op_write(m, b);
		else if (r < 480)
			model_op_read(m, b);
		else if (r < 550)
			model_op_truncate(m, b);
		else if (r < 640)
			model_op_create(m, b, false);
		else if (r < 690)
			model_op_unlink(m, b, false);
		else if (r < 760)
			model_op_rename(m, b);
		else if (r < 790)
			model_op_link(m, b);
		else if (r < 805) {
			model_trail(m, "readdir %s", b->name);
			model_check_dirs(m, b->id, STORE_SEQ_LATEST, &b->st);
		} else if (r < 820)
			model_op_create(m, b, true);
		else if (r < 825)
			model_op_unlink(m, b, true);
		else if (r < 830)
			model_op_rmtree(m, b);
		else if (r < 860)
			model_op_branch_create(m, b);
		else if (r < 880)
			model_op_branch_delete(m, b);
		else if (r < 885)
			model_op_branch_reset(m, b);
		else if (r < 910)
			model_op_snapshot(m, b);
		else
			model_op_asof(m, b);
		if (m->run.op % reopen_every == 0 && m->run.op < m->run.nops)
			model_op_reopen(m);
		if (m->run.op % MODEL_GC_EVERY == 0)
			model_op_gc(m);
		if (m->run.op % 5000 == 0) {
			if (!b->live) /* this op deleted it */
				b = &m->br[model_pick_branch(m)];
			model_trail(m, "full check of %s", b->name);
			model_check_all(m, b->id, STORE_SEQ_LATEST, &b->st);
			model_check_branch_list(m);
		}
	}

	/* final: every branch and every snapshot, completely */
	m->run.op = m->run.nops + 1;
	model_check_branch_list(m);
	for (i = 0; i < MODEL_MAX_BRANCHES; i++) {
		int k;

		if (!m->br[i].live)
			continue;
		model_trail(m, "final check of %s", m->br[i].name);
		model_check_all(m, m->br[i].id, STORE_SEQ_LATEST, &m->br[i].st);
		for (k = 0; k < m->br[i].nsnaps; k++) {
			model_trail(m, "final check of %s at %" PRIu64,
				    m->br[i].name, m->br[i].snaps[k].seq);
			model_check_all(m, m->br[i].id, m->br[i].snaps[k].seq,
					&m->br[i].snaps[k].st);
		}
	}
	fprintf(stderr,
		"  model: %lu writes, %lu reads, %lu truncates, %lu creates, %lu unlinks, %lu renames, %lu links, %lu branches, %lu deletes, %lu resets, %lu as-of, %lu reopens, %lu gcs (%" PRIu64 " keys deleted), %lu mkdirs, %lu rmdirs (incl. rm -r), %lu directory renames, %lu entries dropped at fork or reset; %d live branches\n",
		m->stats[0], m->stats[1], m->stats[2], m->stats[3],
		m->stats[4], m->stats[5], m->stats[6], m->stats[7],
		m->stats[8], m->stats[9], m->stats[10], m->stats[11],
		m->stats[12], m->gc_deleted, m->stats[13], m->stats[14],
		m->stats[15], m->ndropped, m->nlive);
	for (i = 0; i < MODEL_MAX_BRANCHES; i++)
		if (m->br[i].live)
			model_branch_free(&m->br[i]);
	tm_blob_put(m->empty);
	free(m->buf);
	free(m->buf2);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_store_model_random_ops,
						tstore_fx_setup,
						tstore_fx_teardown),
	};

	return cmocka_run_group_tests_name("store_model", tests, NULL, NULL);
}
