/* SPDX-License-Identifier: MIT */
/*
 * test_store_model.c - randomized model-based test of the store on real
 * RocksDB.
 *
 * A seeded random sequence of operations (writes at random, unaligned
 * offsets and lengths within and across blocks, all-zero writes, reads,
 * truncations, create, unlink, rename with and without NOREPLACE/EXCHANGE,
 * link, branch create at the head or at a recorded past seq, branch delete
 * and reset, as-of reads at recorded seqs, readdir, close/reopen, and GC
 * with a 3 s retention window) runs over
 * up to MODEL_MAX_BRANCHES live branches, and every read is checked against
 * an in-memory reference model:
 *  - per branch, a list of entries (dir, name) -> ino and, per live ino, an
 *    immutable refcounted content blob (so copying a branch's state, for a
 *    new branch or a past-seq snapshot, is cheap);
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

#include "tests/unit/test_store_common.h"

#define BS STORE_BLOCK_SIZE
#define MODEL_MAX_BRANCHES 40
#define MODEL_MAX_ENTS 20
#define MODEL_NSNAP 3
#define MODEL_FILE_MAX (64u * 1024u)
#define MODEL_NAMES 12
#define MODEL_DEFAULT_SEED 20261124u
#define MODEL_DEFAULT_OPS 100000u
#define MODEL_TRAIL 24
#define MODEL_RETENTION_S 3
#define MODEL_GC_EVERY 2000

/* ---- model ---- */

struct model_blob {
	int ref;
	uint32_t len;
	unsigned char data[];
};

struct model_ent {
	int dir; /* 0: root, 1: "sub" */
	int name;
	uint64_t ino;
};

struct model_file {
	uint64_t ino;
	struct model_blob *b;
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
	uint64_t seed, rng;
	unsigned long nops, op;
	uint64_t dirs[2];
	struct model_branch br[MODEL_MAX_BRANCHES];
	int nlive;
	unsigned long branch_counter;
	char trail[MODEL_TRAIL][160];
	unsigned long ntrail;
	unsigned char *buf, *buf2;
	struct model_blob *empty;
	unsigned long stats[16];
	uint64_t gc_deleted;
};

static uint64_t model_rand(struct model *m)
{
	uint64_t z = (m->rng += 0x9E3779B97F4A7C15ull);

	z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
	z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
	return z ^ (z >> 31);
}

static uint32_t model_below(struct model *m, uint32_t n)
{
	return n ? (uint32_t)(model_rand(m) % n) : 0;
}

static void model_trail(struct model *m, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

static void model_trail(struct model *m, const char *fmt, ...)
{
	char *t = m->trail[m->ntrail++ % MODEL_TRAIL];
	va_list ap;
	int n;

	n = snprintf(t, 160, "#%lu ", m->op);
	va_start(ap, fmt);
	vsnprintf(t + n, 160 - (size_t)n, fmt, ap);
	va_end(ap);
}

static void model_fail(struct model *m, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

static void model_fail(struct model *m, const char *fmt, ...)
{
	char msg[512];
	unsigned long i, from;
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	fprintf(stderr, "model: last operations:\n");
	from = m->ntrail > MODEL_TRAIL ? m->ntrail - MODEL_TRAIL : 0;
	for (i = from; i < m->ntrail; i++)
		fprintf(stderr, "  %s\n", m->trail[i % MODEL_TRAIL]);
	fail_msg("model: %s\n  at op %lu; reproduce with BRANCHFS_SEED=%" PRIu64
		 " BRANCHFS_OPS=%lu",
		 msg, m->op, m->seed, m->nops);
}

#define MCHECK(m, cond, ...)                                                  \
	do {                                                                  \
		if (!(cond))                                                  \
			model_fail((m), __VA_ARGS__);                         \
	} while (0)

static struct model_blob *model_blob_new(uint32_t len)
{
	struct model_blob *b = calloc(1, sizeof(*b) + len + 1);

	assert_non_null(b);
	b->ref = 1;
	b->len = len;
	return b;
}

static struct model_blob *model_blob_get(struct model_blob *b)
{
	b->ref++;
	return b;
}

static void model_blob_put(struct model_blob *b)
{
	if (b && --b->ref == 0)
		free(b);
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
		model_blob_put(st->files[i].b);
	st->nfiles = 0;
	st->nents = 0;
}

static int model_find_ent(const struct model_state *st, int dir, int name)
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

/* Drop entry i; forget the file if that was its last name. */
static void model_drop_ent(struct model_state *st, int i)
{
	uint64_t ino = st->ents[i].ino;

	st->ents[i] = st->ents[--st->nents];
	if (model_nlink(st, ino) == 0) {
		struct model_file *f = model_find_file(st, ino);

		assert_non_null(f);
		model_blob_put(f->b);
		*f = st->files[--st->nfiles];
	}
}

static void model_name(int name, char *buf)
{
	snprintf(buf, 16, "f%d", name);
}

/* ---- checks against the store ---- */

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

static void model_check_dirs(struct model *m, uint64_t br, uint64_t seq,
			     struct model_state *st)
{
	struct store *s = m->fx->s;
	int dir;

	for (dir = 0; dir < 2; dir++) {
		struct store_dirent *d = NULL;
		size_t n = 0, i;
		int want = 0, rc, k;

		rc = store_readdir(s, br, seq, m->dirs[dir], &d, &n);
		MCHECK(m, rc == 0, "readdir(br %" PRIu64 ", seq %" PRIu64 ", dir %d) = %d",
		       br, seq, dir, rc);
		for (k = 0; k < st->nents; k++)
			want += st->ents[k].dir == dir;
		/* root also holds "sub" */
		if (dir == 0)
			want++;
		MCHECK(m, n == (size_t)want,
		       "readdir(br %" PRIu64 ", seq %" PRIu64 ", dir %d): %zu entries, model %d",
		       br, seq, dir, n, want);
		for (i = 0; i < n; i++) {
			int name;

			MCHECK(m, i == 0 || strcmp(d[i - 1].name, d[i].name) < 0,
			       "readdir not sorted: '%s' then '%s'",
			       d[i - 1].name, d[i].name);
			if (dir == 0 && strcmp(d[i].name, "sub") == 0) {
				MCHECK(m, d[i].ino == m->dirs[1],
				       "sub has ino %" PRIu64, d[i].ino);
				continue;
			}
			MCHECK(m, sscanf(d[i].name, "f%d", &name) == 1,
			       "unexpected entry '%s'", d[i].name);
			k = model_find_ent(st, dir, name);
			MCHECK(m, k >= 0,
			       "br %" PRIu64 " seq %" PRIu64 ": entry '%s' in dir %d not in model",
			       br, seq, d[i].name, dir);
			MCHECK(m, st->ents[k].ino == d[i].ino,
			       "entry '%s': ino %" PRIu64 ", model %" PRIu64,
			       d[i].name, d[i].ino, st->ents[k].ino);
			MCHECK(m, d[i].mode == S_IFREG,
			       "entry '%s' mode %o", d[i].name, d[i].mode);
		}
		free(d);
	}
}

/* Everything in one branch (or snapshot). */
static void model_check_all(struct model *m, uint64_t br, uint64_t seq,
			    struct model_state *st)
{
	struct store *s = m->fx->s;
	int i;

	model_check_dirs(m, br, seq, st);
	for (i = 0; i < st->nents; i++) {
		char name[16];
		uint64_t ino = 0;
		int rc;

		model_name(st->ents[i].name, name);
		rc = store_lookup(s, br, seq, m->dirs[st->ents[i].dir], name,
				  &ino);
		MCHECK(m, rc == 0 && ino == st->ents[i].ino,
		       "lookup(br %" PRIu64 ", seq %" PRIu64 ", '%s') = %d ino %" PRIu64 ", model %" PRIu64,
		       br, seq, name, rc, ino, st->ents[i].ino);
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
	int k = (int)model_below(m, (uint32_t)m->nlive), i;

	for (i = 0; i < MODEL_MAX_BRANCHES; i++)
		if (m->br[i].live && k-- == 0)
			return i;
	abort();
}

static void model_gen_data(struct model *m, unsigned char *p, uint32_t len)
{
	uint32_t i = 0, kind = model_below(m, 20);

	if (kind == 0) { /* all zeros */
		memset(p, 0, len);
		return;
	}
	while (i < len) {
		uint32_t run = 1 + model_below(m, kind < 10 ? 64 : 4);
		unsigned char v = (unsigned char)model_rand(m);

		if (run > len - i)
			run = len - i;
		memset(p + i, v, run);
		i += run;
	}
}

static uint32_t model_gen_len(struct model *m, uint32_t max)
{
	uint32_t r = model_below(m, 10), len;

	if (r < 4)
		len = 1 + model_below(m, 600);
	else if (r < 8)
		len = 1 + model_below(m, 9000);
	else
		len = 1 + model_below(m, 3 * BS);
	return len > max ? max : len;
}

static void model_op_write(struct model *m, struct model_branch *b)
{
	struct model_file *f;
	struct model_blob *nb;
	uint32_t off, len, end;
	ssize_t n;

	if (!b->st.nfiles)
		return;
	f = &b->st.files[model_below(m, (uint32_t)b->st.nfiles)];
	off = model_below(m, MODEL_FILE_MAX);
	if (model_below(m, 3) == 0)
		off -= off % BS;
	len = model_gen_len(m, MODEL_FILE_MAX - off);
	model_gen_data(m, m->buf2, len);
	model_trail(m, "write br %s ino %" PRIu64 " off %u len %u (size %u)",
		    b->name, f->ino, off, len, f->b->len);
	n = store_write(m->fx->s, b->id, f->ino, m->buf2, len, off, NULL);
	MCHECK(m, n == (ssize_t)len, "write = %zd, want %u", n, len);
	end = off + len > f->b->len ? off + len : f->b->len;
	nb = model_blob_new(end);
	memcpy(nb->data, f->b->data, f->b->len);
	memcpy(nb->data + off, m->buf2, len);
	model_blob_put(f->b);
	f->b = nb;
	m->stats[0]++;
}

static void model_op_read(struct model *m, struct model_branch *b)
{
	struct model_file *f;
	uint32_t off, len;

	if (!b->st.nfiles)
		return;
	f = &b->st.files[model_below(m, (uint32_t)b->st.nfiles)];
	off = model_below(m, f->b->len + 200);
	if (model_below(m, 3) == 0)
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
	struct model_blob *nb;
	uint32_t size;
	int rc;

	if (!b->st.nfiles)
		return;
	f = &b->st.files[model_below(m, (uint32_t)b->st.nfiles)];
	size = model_below(m, MODEL_FILE_MAX + 1);
	if (model_below(m, 3) == 0)
		size -= size % BS;
	else if (model_below(m, 4) == 0)
		size = 0;
	model_trail(m, "truncate br %s ino %" PRIu64 " %u -> %u", b->name,
		    f->ino, f->b->len, size);
	memset(&a, 0, sizeof(a));
	a.size = size;
	rc = store_setattr(m->fx->s, b->id, f->ino, &a, STORE_SET_SIZE, NULL);
	MCHECK(m, rc == 0, "truncate = %d", rc);
	nb = model_blob_new(size);
	memcpy(nb->data, f->b->data, size < f->b->len ? size : f->b->len);
	model_blob_put(f->b);
	f->b = nb;
	m->stats[2]++;
}

static void model_op_create(struct model *m, struct model_branch *b)
{
	struct store_attr a = tstore_attr(S_IFREG | 0644);
	int dir = (int)model_below(m, 2), name = (int)model_below(m, MODEL_NAMES);
	int k = model_find_ent(&b->st, dir, name), rc;
	char nm[16];
	uint64_t ino = 0;

	model_name(name, nm);
	if (k < 0 && b->st.nents == MODEL_MAX_ENTS)
		return;
	model_trail(m, "create br %s dir %d '%s'%s", b->name, dir, nm,
		    k >= 0 ? " (exists)" : "");
	rc = store_create(m->fx->s, b->id, m->dirs[dir], nm, &a, NULL, &ino,
			  NULL);
	if (k >= 0) {
		MCHECK(m, rc == -EEXIST, "create of existing '%s' = %d", nm,
		       rc);
		return;
	}
	MCHECK(m, rc == 0 && ino > 0, "create '%s' = %d", nm, rc);
	MCHECK(m, model_find_file(&b->st, ino) == NULL,
	       "create returned ino %" PRIu64 " already live", ino);
	b->st.ents[b->st.nents++] = (struct model_ent){ dir, name, ino };
	b->st.files[b->st.nfiles].ino = ino;
	b->st.files[b->st.nfiles++].b = model_blob_get(m->empty);
	m->stats[3]++;
}

static void model_op_unlink(struct model *m, struct model_branch *b)
{
	int dir = (int)model_below(m, 2), name = (int)model_below(m, MODEL_NAMES);
	int k = model_find_ent(&b->st, dir, name), rc;
	char nm[16];

	model_name(name, nm);
	model_trail(m, "unlink br %s dir %d '%s'%s", b->name, dir, nm,
		    k < 0 ? " (absent)" : "");
	rc = store_unlink(m->fx->s, b->id, m->dirs[dir], nm);
	if (k < 0) {
		MCHECK(m, rc == -ENOENT, "unlink of absent '%s' = %d", nm, rc);
		return;
	}
	MCHECK(m, rc == 0, "unlink '%s' = %d", nm, rc);
	model_drop_ent(&b->st, k);
	m->stats[4]++;
}

static void model_op_rename(struct model *m, struct model_branch *b)
{
	int sdir, sname, ddir, dname, ks, kd, rc;
	unsigned flags = 0, r = model_below(m, 6);
	char sn[16], dn[16];

	if (!b->st.nents)
		return;
	ks = (int)model_below(m, (uint32_t)b->st.nents);
	sdir = b->st.ents[ks].dir;
	sname = b->st.ents[ks].name;
	ddir = (int)model_below(m, 2);
	dname = (int)model_below(m, MODEL_NAMES);
	if (ddir == sdir && dname == sname)
		return;
	kd = model_find_ent(&b->st, ddir, dname);
	if (r == 0)
		flags = STORE_RENAME_NOREPLACE;
	else if (r == 1)
		flags = STORE_RENAME_EXCHANGE;
	model_name(sname, sn);
	model_name(dname, dn);
	model_trail(m, "rename br %s %d/%s (ino %" PRIu64 ") -> %d/%s (ino %" PRIu64 ") flags %u",
		    b->name, sdir, sn, b->st.ents[ks].ino, ddir, dn,
		    kd >= 0 ? b->st.ents[kd].ino : 0, flags);
	rc = store_rename(m->fx->s, b->id, m->dirs[sdir], sn, m->dirs[ddir], dn,
			  flags);
	if (flags == STORE_RENAME_EXCHANGE) {
		uint64_t t;

		if (kd < 0) {
			MCHECK(m, rc == -ENOENT, "exchange with absent = %d",
			       rc);
			return;
		}
		MCHECK(m, rc == 0, "exchange = %d", rc);
		t = b->st.ents[ks].ino;
		b->st.ents[ks].ino = b->st.ents[kd].ino;
		b->st.ents[kd].ino = t;
		return;
	}
	if (kd >= 0 && flags == STORE_RENAME_NOREPLACE) {
		/* onto another link of the same inode, "does nothing" (0)
		 * and -EEXIST (what Linux returns) are both no-ops */
		MCHECK(m, rc == -EEXIST ||
				  (rc == 0 && b->st.ents[kd].ino ==
						      b->st.ents[ks].ino),
		       "rename noreplace onto existing = %d", rc);
		return;
	}
	MCHECK(m, rc == 0, "rename = %d", rc);
	if (kd >= 0 && b->st.ents[kd].ino == b->st.ents[ks].ino)
		return; /* links to one inode: nothing happens */
	if (kd >= 0) {
		uint64_t replaced = b->st.ents[kd].ino;
		struct model_file *f;

		b->st.ents[kd].ino = b->st.ents[ks].ino;
		b->st.ents[ks] = b->st.ents[--b->st.nents];
		/* the replaced inode lost a link; gone if it was the last */
		if (model_nlink(&b->st, replaced) == 0) {
			f = model_find_file(&b->st, replaced);
			assert_non_null(f);
			model_blob_put(f->b);
			*f = b->st.files[--b->st.nfiles];
		}
	} else {
		b->st.ents[ks].dir = ddir;
		b->st.ents[ks].name = dname;
	}
	m->stats[5]++;
}

static void model_op_link(struct model *m, struct model_branch *b)
{
	int ks, ddir, dname, kd, rc;
	struct store_attr a;
	char dn[16];

	if (!b->st.nents || b->st.nents == MODEL_MAX_ENTS)
		return;
	ks = (int)model_below(m, (uint32_t)b->st.nents);
	ddir = (int)model_below(m, 2);
	dname = (int)model_below(m, MODEL_NAMES);
	kd = model_find_ent(&b->st, ddir, dname);
	model_name(dname, dn);
	model_trail(m, "link br %s ino %" PRIu64 " -> %d/%s%s", b->name,
		    b->st.ents[ks].ino, ddir, dn, kd >= 0 ? " (exists)" : "");
	rc = store_link(m->fx->s, b->id, b->st.ents[ks].ino, m->dirs[ddir], dn,
			&a);
	if (kd >= 0) {
		MCHECK(m, rc == -EEXIST, "link onto existing = %d", rc);
		return;
	}
	MCHECK(m, rc == 0, "link = %d", rc);
	b->st.ents[b->st.nents++] =
		(struct model_ent){ ddir, dname, b->st.ents[ks].ino };
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

static void model_op_branch_create(struct model *m, struct model_branch *p)
{
	struct store_branch_create_args a;
	struct store_branch_info bi;
	struct model_branch *c;
	struct model_snap *snap = NULL;
	int slot = model_free_slot(m), rc;

	if (slot < 0)
		return;
	c = &m->br[slot];
	snprintf(c->name, sizeof(c->name), "b%lu", ++m->branch_counter);
	a = tstore_args(c->name, p->id, STORE_SEQ_LATEST);
	if (p->nsnaps && model_below(m, 3) == 0) {
		snap = &p->snaps[model_below(m, (uint32_t)p->nsnaps)];
		a.at_seq = snap->seq;
	}
	model_trail(m, "branch create %s from %s at %" PRIu64, c->name, p->name,
		    a.at_seq);
	rc = store_branch_create(m->fx->s, &a, &bi);
	MCHECK(m, rc == 0, "branch create %s = %d", c->name, rc);
	MCHECK(m, bi.root_ino == m->dirs[0], "new branch root %" PRIu64,
	       bi.root_ino);
	c->live = true;
	c->id = bi.id;
	c->parent = (int)(p - m->br);
	c->nchildren = 0;
	c->nsnaps = 0;
	model_state_copy(&c->st, snap ? &snap->st : &p->st);
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
	int rc;

	if (b->parent < 0 || b->nchildren)
		return;
	model_trail(m, "branch reset %s to %s", b->name,
		    m->br[b->parent].name);
	rc = store_branch_reset(m->fx->s, b->id, NULL);
	MCHECK(m, rc == 0, "branch reset = %d", rc);
	model_state_release(&b->st);
	model_state_copy(&b->st, &m->br[b->parent].st);
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
		sn = &b->snaps[model_below(m, MODEL_NSNAP)];
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
	sn = &b->snaps[model_below(m, (uint32_t)b->nsnaps)];
	if (model_below(m, 4) == 0 || !sn->st.nfiles) {
		model_trail(m, "as-of dirs %s at %" PRIu64, b->name, sn->seq);
		model_check_dirs(m, b->id, sn->seq, &sn->st);
	} else {
		struct model_file *f =
			&sn->st.files[model_below(m, (uint32_t)sn->st.nfiles)];
		uint32_t off = model_below(m, f->b->len + 100);
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

	opts.full_compaction = m->stats[12] % 2 == 1;
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

static void model_op_reopen(struct model *m)
{
	model_trail(m, "close and reopen");
	tstore_fx_reopen(m->fx);
	m->stats[11]++;
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

static unsigned long model_env(const char *name, unsigned long def)
{
	const char *v = getenv(name);

	return v && *v ? strtoul(v, NULL, 0) : def;
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
	m->seed = model_env("BRANCHFS_SEED", MODEL_DEFAULT_SEED);
	m->nops = model_env("BRANCHFS_OPS", MODEL_DEFAULT_OPS);
	m->rng = m->seed;
	m->buf = malloc(MODEL_FILE_MAX + 4096);
	m->buf2 = malloc(MODEL_FILE_MAX + 4096);
	m->empty = model_blob_new(0);
	assert_non_null(m->buf);
	assert_non_null(m->buf2);
	fprintf(stderr, "  model: BRANCHFS_SEED=%" PRIu64 " BRANCHFS_OPS=%lu\n",
		m->seed, m->nops);

	/* the fixture's "root" branch is the model's ancestor of all */
	b0 = &m->br[0];
	b0->live = true;
	b0->id = m->fx->br;
	b0->parent = -1;
	snprintf(b0->name, sizeof(b0->name), "root");
	m->nlive = 1;
	m->dirs[0] = m->fx->root;
	m->dirs[1] = tstore_mkdir(m->fx->s, b0->id, m->fx->root, "sub");
	assert_int_equal(store_set_retention(m->fx->s, MODEL_RETENTION_S), 0);

	reopen_every = m->nops / 4 ? m->nops / 4 : 1;
	for (m->op = 1; m->op <= m->nops; m->op++) {
		struct model_branch *b = &m->br[model_pick_branch(m)];
		uint32_t r = model_below(m, 1000);

		if (r < 250)
			model_op_write(m, b);
		else if (r < 480)
			model_op_read(m, b);
		else if (r < 550)
			model_op_truncate(m, b);
		else if (r < 640)
			model_op_create(m, b);
		else if (r < 690)
			model_op_unlink(m, b);
		else if (r < 760)
			model_op_rename(m, b);
		else if (r < 790)
			model_op_link(m, b);
		else if (r < 830) {
			model_trail(m, "readdir %s", b->name);
			model_check_dirs(m, b->id, STORE_SEQ_LATEST, &b->st);
		} else if (r < 860)
			model_op_branch_create(m, b);
		else if (r < 880)
			model_op_branch_delete(m, b);
		else if (r < 885)
			model_op_branch_reset(m, b);
		else if (r < 910)
			model_op_snapshot(m, b);
		else
			model_op_asof(m, b);
		if (m->op % reopen_every == 0 && m->op < m->nops)
			model_op_reopen(m);
		if (m->op % MODEL_GC_EVERY == 0)
			model_op_gc(m);
		if (m->op % 5000 == 0) {
			if (!b->live) /* this op deleted it */
				b = &m->br[model_pick_branch(m)];
			model_trail(m, "full check of %s", b->name);
			model_check_all(m, b->id, STORE_SEQ_LATEST, &b->st);
			model_check_branch_list(m);
		}
	}

	/* final: every branch and every snapshot, completely */
	m->op = m->nops + 1;
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
		"  model: %lu writes, %lu reads, %lu truncates, %lu creates, %lu unlinks, %lu renames, %lu links, %lu branches, %lu deletes, %lu resets, %lu as-of, %lu reopens, %lu gcs (%" PRIu64 " keys deleted); %d live branches\n",
		m->stats[0], m->stats[1], m->stats[2], m->stats[3],
		m->stats[4], m->stats[5], m->stats[6], m->stats[7],
		m->stats[8], m->stats[9], m->stats[10], m->stats[11],
		m->stats[12], m->gc_deleted, m->nlive);
	for (i = 0; i < MODEL_MAX_BRANCHES; i++)
		if (m->br[i].live)
			model_branch_free(&m->br[i]);
	model_blob_put(m->empty);
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
