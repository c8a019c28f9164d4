/* SPDX-License-Identifier: MIT */
/*
 * test_store_gc_model.c - hostile model test of garbage collection and
 * time travel, on real RocksDB and a clock of the test's own.
 *
 * The store's CLOCK_REALTIME is the model's (the binary is linked with
 * -Wl,--wrap=clock_gettime): time stands still during an operation and
 * moves only between them, by 0 to 40 ms (sometimes seconds), so that
 * every commit of an operation carries the same, known wall time, and
 * the retention window (2 s at first) slides over hundreds of operations whatever
 * the speed of the machine.  A seed reproduces the operations exactly
 * (and the whole run without GC's thread, below).
 *
 * Random operations on up to GM_BRANCHES live branches: file create,
 * write (unaligned, across blocks, all-zero), truncate up and down, punch,
 * hard link, rename (over an existing file, or a link of the same one),
 * unlink (sometimes of a file kept open, which GC's in_use callback
 * reports, then written and closed); branch create at the head, at a
 * past seq and at a past time (store_seq_at_time), delete, reset,
 * rename; GC (sometimes with a full compaction, sometimes failing half-way
 * through an injected KV error); a retention window made shorter or
 * longer (1 to 3 s); a foreground write that fails; close and
 * reopen (sometimes with a close whose last write fails, as a crash
 * leaves it: no saved GC set).  Meanwhile a thread of the test runs GC
 * over and over, racing every operation (writes, branch create, delete,
 * reset); it pauses only for the checks, injected faults and reopens.
 * The model remembers every state of every branch (seq it became visible
 * at, wall time, content), and after each GC (and at random):
 *  - every branch reads, at every seq from the store's oldest (the GC
 *    horizon) on, exactly what the model says it held then, and a read
 *    below the horizon is refused;
 *  - every moment of the retention window (and its very edge) is
 *    accepted by store_seq_at_time, whose seq includes every operation
 *    made at or before that ms and none made 10 ms (the index's
 *    resolution) or more after it; the branches read there as the model
 *    says;
 *  - branches made at a past seq or time read as their parent did then;
 *  - files unlinked while open read as the model says, by number.
 *
 * Environment: BRANCHFS_SEED=N picks the seed (default fixed),
 * BRANCHFS_OPS=N the number of operations (default 600),
 * BRANCHFS_GC_THREAD=0 no GC thread (the run is then exactly the same for
 * a seed; with the thread, what GC has taken when differs).  A failure
 * prints the seed, the operation and the last operations.
 */
#include <inttypes.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "tests/unit/test_logbuf.h"
#include "tests/unit/test_model_util.h"
#include "tests/unit/test_store_common.h"

#define BS STORE_BLOCK_SIZE
#define GM_NAMES 6
#define GM_BRANCHES 10
#define GM_FILE_MAX (4u * BS + 1000u)
#define GM_RET_S 2   /* at first; then 1 to GM_RET_MAX */
#define GM_RET_MAX 3
#define GM_DEFAULT_SEED 20261207u
#define GM_DEFAULT_OPS 600u
#define GM_ORPHANS 8
#define NS_MS INT64_C(1000000)
#define NS_S INT64_C(1000000000)

/* ---- the clock ---- */

static _Atomic int64_t gm_fake_ns; /* 0: the real clock */

int __real_clock_gettime(clockid_t clk, struct timespec *ts);
int __wrap_clock_gettime(clockid_t clk, struct timespec *ts);

int __wrap_clock_gettime(clockid_t clk, struct timespec *ts)
{
	int64_t f = atomic_load(&gm_fake_ns);

	if (clk != CLOCK_REALTIME || f == 0)
		return __real_clock_gettime(clk, ts);
	ts->tv_sec = (time_t)(f / NS_S);
	ts->tv_nsec = (long)(f % NS_S);
	return 0;
}

/* ---- model ---- */

/* What one branch holds: files named f0..f5 in its root. */
struct gm_state {
	int ref;
	uint64_t ino[GM_NAMES]; /* 0: no such name */
	struct tm_blob *b[GM_NAMES];
};

struct gm_hist {
	uint64_t before; /* the operation's commits are above it */
	uint64_t seq;	 /* visible from this seq on */
	int64_t t;    /* wall time of the operation */
	struct gm_state *st;
};

struct gm_branch {
	bool live;
	uint64_t id;
	int parent;
	int nchildren;
	char name[24];
	struct gm_hist *h; /* oldest first; h[0]: made or reset */
	size_t nh, caph;
};

/* A file unlinked while open: readable by number at its branch's head
 * (GC's in_use says it is open) until closed. */
struct gm_orphan {
	int br; /* index */
	uint64_t ino;
	struct tm_blob *b;
};

/* Every operation that committed something: seqs (before, after]. */
struct gm_op {
	uint64_t before, after;
	int64_t t;
};

struct gm {
	struct tstore_fx *fx;
	struct tm_run run; /* seed, generator, op, trail */
	uint64_t root;
	struct gm_branch br[GM_BRANCHES];
	int nlive;
	unsigned long counter;
	struct gm_op *ops;
	size_t nlog, caplog;
	unsigned char *buf;
	unsigned long stats[24];
	struct gm_orphan orph[GM_ORPHANS]; /* guarded by orph_mu */
	int norph;			   /* guarded by orph_mu */
	pthread_mutex_t orph_mu;
	/* GC in a thread of its own, racing the operations: it holds
	 * gc_lock for reading while it runs; checks, and operations that
	 * arm faults or reopen, hold it for writing. */
	pthread_rwlock_t gc_lock;
	pthread_t gc_thread;
	bool bg;
	atomic_bool bg_stop;
	atomic_int bg_err;
	atomic_ulong bg_runs;
	/* Retention now, and the latest window start any GC could have
	 * taken with an earlier one (the time it was changed less it). */
	uint64_t ret_s;
	int64_t hz_bound;
};

enum {
	ST_WRITE,
	ST_TRUNC,
	ST_PUNCH,
	ST_CREATE,
	ST_UNLINK,
	ST_RENAME,
	ST_BR_LATEST,
	ST_BR_SEQ,
	ST_BR_TIME,
	ST_BR_DELETE,
	ST_BR_RESET,
	ST_BR_RENAME,
	ST_GC,
	ST_GC_FAIL,
	ST_WRITE_FAIL,
	ST_REOPEN,
	ST_CRASH_REOPEN,
	ST_SEQ_CHECKS,
	ST_TIME_CHECKS,
	ST_GC_DELETED,
	ST_ORPHAN,
	ST_ORPHAN_WRITE,
	ST_LINK,
	ST_RETENTION,
};

static void gm_trail(struct gm *m, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

static void gm_trail(struct gm *m, const char *fmt, ...)
{
	char prefix[64];
	va_list ap;

	snprintf(prefix, sizeof(prefix),
		 "#%lu t=%" PRId64 ".%03" PRId64 " ", m->run.op,
		 atomic_load(&gm_fake_ns) / NS_S,
		 atomic_load(&gm_fake_ns) / NS_MS % 1000);
	va_start(ap, fmt);
	tm_vtrail(tm_trail_line(&m->run), prefix, fmt, ap);
	va_end(ap);
}

#define gm_fail(m, ...) tm_fail(&(m)->run, "gc model", __VA_ARGS__)

#define GCHECK(m, cond, ...)                                                  \
	do {                                                                  \
		if (!(cond))                                                  \
			gm_fail((m), __VA_ARGS__);                            \
	} while (0)

static struct gm_state *gm_state_copy(const struct gm_state *src)
{
	struct gm_state *st = calloc(1, sizeof(*st));
	int i;

	assert_non_null(st);
	st->ref = 1;
	for (i = 0; src && i < GM_NAMES; i++) {
		st->ino[i] = src->ino[i];
		st->b[i] = src->b[i];
		if (st->b[i])
			st->b[i]->ref++;
	}
	return st;
}

static void gm_state_put(struct gm_state *st)
{
	int i;

	if (!st || --st->ref > 0)
		return;
	for (i = 0; i < GM_NAMES; i++)
		tm_blob_put(st->b[i]);
	free(st);
}

/* How many names of st hold ino. */
static int gm_nlink(const struct gm_state *st, uint64_t ino)
{
	int k, n = 0;

	for (k = 0; k < GM_NAMES; k++)
		n += st->ino[k] == ino;
	return n;
}

/* File ino of st now holds nb (owned), under each of its names. */
static void gm_set_blob(struct gm_state *st, uint64_t ino, struct tm_blob *nb)
{
	int k, n = 0;

	for (k = 0; k < GM_NAMES; k++) {
		if (st->ino[k] != ino)
			continue;
		tm_blob_put(st->b[k]);
		st->b[k] = nb;
		if (n++)
			nb->ref++;
	}
	if (!n)
		tm_blob_put(nb);
}

static struct gm_state *gm_head(const struct gm_branch *b)
{
	return b->h[b->nh - 1].st;
}

/* The state of b at seq (NULL: before b was made or reset). */
static struct gm_state *gm_state_at(const struct gm_branch *b, uint64_t seq)
{
	size_t i;

	for (i = b->nh; i-- > 0;)
		if (b->h[i].seq <= seq)
			return b->h[i].st;
	return NULL;
}

static void gm_hist_push(struct gm_branch *b, uint64_t before, uint64_t seq,
			 int64_t t, struct gm_state *st)
{
	if (b->nh == b->caph) {
		b->caph = b->caph ? b->caph * 2 : 16;
		b->h = realloc(b->h, b->caph * sizeof(*b->h));
		assert_non_null(b->h);
	}
	b->h[b->nh++] = (struct gm_hist){
		.before = before, .seq = seq, .t = t, .st = st
	};
}

static void gm_hist_clear(struct gm_branch *b)
{
	while (b->nh)
		gm_state_put(b->h[--b->nh].st);
}

static int64_t gm_now(void)
{
	return atomic_load(&gm_fake_ns);
}

/* Record an operation that committed: seqs (before, now]. */
static uint64_t gm_log(struct gm *m, uint64_t before)
{
	uint64_t after = store_seq_now(m->fx->s);

	GCHECK(m, after > before, "operation committed nothing: seq %" PRIu64,
	       after);
	if (m->nlog == m->caplog) {
		m->caplog = m->caplog ? m->caplog * 2 : 256;
		m->ops = realloc(m->ops, m->caplog * sizeof(*m->ops));
		assert_non_null(m->ops);
	}
	m->ops[m->nlog++] =
		(struct gm_op){ .before = before, .after = after, .t = gm_now() };
	return after;
}

/* b's new state st (owned), made by the operation since before. */
static void gm_change(struct gm *m, struct gm_branch *b, uint64_t before,
		      struct gm_state *st)
{
	gm_hist_push(b, before, gm_log(m, before), gm_now(), st);
}

/* ---- GC's thread ---- */

static void gm_excl(struct gm *m)
{
	if (m->bg)
		pthread_rwlock_wrlock(&m->gc_lock);
}

static void gm_unexcl(struct gm *m)
{
	if (m->bg)
		pthread_rwlock_unlock(&m->gc_lock);
}

static bool gm_in_use(void *ctx, uint64_t branch, uint64_t ino);

static void *gm_bg_gc(void *arg)
{
	struct gm *m = arg;
	unsigned long n = 0;

	while (!atomic_load(&m->bg_stop)) {
		struct store_gc_opts o = { .in_use = gm_in_use,
					   .ctx = m,
					   .full_compaction = ++n % 16 == 0 };
		int rc;

		pthread_rwlock_rdlock(&m->gc_lock);
		rc = store_gc(m->fx->s, &o, NULL);
		pthread_rwlock_unlock(&m->gc_lock);
		if (rc)
			atomic_store(&m->bg_err, rc);
		atomic_fetch_add(&m->bg_runs, 1);
		usleep(1000 + (useconds_t)(n % 4) * 1000);
	}
	return NULL;
}

/* ---- open files ---- */

static bool gm_in_use(void *ctx, uint64_t branch, uint64_t ino)
{
	struct gm *m = ctx;
	bool found = false;
	int i;

	pthread_mutex_lock(&m->orph_mu);
	for (i = 0; i < m->norph && !found; i++)
		found = m->br[m->orph[i].br].id == branch &&
			m->orph[i].ino == ino;
	pthread_mutex_unlock(&m->orph_mu);
	return found;
}

/* The file st->ino[i] of b is kept open as it loses its name (1 in 3). */
static void gm_orphan_add(struct gm *m, struct gm_branch *b,
			  const struct gm_state *st, int i)
{
	if (m->norph == GM_ORPHANS || tm_below(&m->run, 3))
		return;
	pthread_mutex_lock(&m->orph_mu);
	m->orph[m->norph].br = (int)(b - m->br);
	m->orph[m->norph].ino = st->ino[i];
	m->orph[m->norph].b = st->b[i];
	st->b[i]->ref++;
	m->norph++;
	pthread_mutex_unlock(&m->orph_mu);
	m->stats[ST_ORPHAN]++;
}

static void gm_orphan_close(struct gm *m, int k)
{
	pthread_mutex_lock(&m->orph_mu);
	tm_blob_put(m->orph[k].b);
	m->orph[k] = m->orph[--m->norph];
	pthread_mutex_unlock(&m->orph_mu);
}

/* Close every open file of branch index br (-1: all). */
static void gm_orphan_close_all(struct gm *m, int br)
{
	int k;

	for (k = 0; k < m->norph;)
		if (br < 0 || m->orph[k].br == br)
			gm_orphan_close(m, k);
		else
			k++;
}

/* ---- checks ---- */

static void gm_name(int i, char *buf)
{
	snprintf(buf, 8, "f%d", i);
}

/* Branch b of the model reads as st at seq. */
static void gm_check_state(struct gm *m, const struct gm_branch *b,
			   uint64_t seq, const struct gm_state *st,
			   const char *what)
{
	struct store *s = m->fx->s;
	struct store_dirent *d = NULL;
	size_t nd = 0, k;
	int i, want = 0, rc;

	rc = store_readdir(s, b->id, seq, m->root, &d, &nd);
	GCHECK(m, rc == 0, "%s: readdir(%s, seq %" PRIu64 ") = %d", what,
	       b->name, seq, rc);
	for (i = 0; i < GM_NAMES; i++)
		want += st->ino[i] != 0;
	GCHECK(m, nd == (size_t)want,
	       "%s: %s at seq %" PRIu64 " has %zu entries, model %d", what,
	       b->name, seq, nd, want);
	for (k = 0; k < nd; k++) {
		int n = -1;

		GCHECK(m, sscanf(d[k].name, "f%d", &n) == 1 && n >= 0 &&
				  n < GM_NAMES && st->ino[n] == d[k].ino,
		       "%s: %s at seq %" PRIu64 ": entry '%s' ino %" PRIu64
		       " not in the model",
		       what, b->name, seq, d[k].name, d[k].ino);
	}
	free(d);
	for (i = 0; i < GM_NAMES; i++) {
		const struct tm_blob *f = st->b[i];
		struct store_attr a;
		char name[8];
		uint64_t ino = 0;
		ssize_t n;

		gm_name(i, name);
		rc = store_lookup(s, b->id, seq, m->root, name, &ino);
		if (!st->ino[i]) {
			GCHECK(m, rc == -ENOENT,
			       "%s: lookup(%s, seq %" PRIu64 ", %s) = %d, model: absent",
			       what, b->name, seq, name, rc);
			continue;
		}
		GCHECK(m, rc == 0 && ino == st->ino[i],
		       "%s: lookup(%s, seq %" PRIu64 ", %s) = %d ino %" PRIu64
		       ", model %" PRIu64,
		       what, b->name, seq, name, rc, ino, st->ino[i]);
		rc = store_getattr(s, b->id, seq, ino, &a);
		GCHECK(m,
		       rc == 0 && a.size == f->len &&
			       a.nlink == (uint32_t)gm_nlink(st, ino),
		       "%s: getattr(%s, seq %" PRIu64 ", %s) = %d size %" PRIu64
		       " nlink %u, model size %u nlink %d",
		       what, b->name, seq, name, rc, rc ? 0 : a.size,
		       rc ? 0 : a.nlink, f->len, gm_nlink(st, ino));
		n = store_read(s, b->id, seq, ino, m->buf, GM_FILE_MAX + BS, 0);
		GCHECK(m, n == (ssize_t)f->len,
		       "%s: read(%s, seq %" PRIu64 ", %s) = %zd, model %u", what,
		       b->name, seq, name, n, f->len);
		if (memcmp(m->buf, f->data, f->len) != 0) {
			size_t x = tstore_first_diff(m->buf, f->data, f->len);

			gm_fail(m,
				"%s: %s at seq %" PRIu64 ", %s ino %" PRIu64
				": byte %zu is 0x%02x, model 0x%02x",
				what, b->name, seq, name, ino, x, m->buf[x],
				f->data[x]);
		}
	}
}

/* Drop the history no read can reach any more: entries followed by one
 * at or below the horizon. */
static void gm_prune(struct gm *m, uint64_t oldest)
{
	int i;

	for (i = 0; i < GM_BRANCHES; i++) {
		struct gm_branch *b = &m->br[i];
		size_t k = 0, j;

		if (!b->live)
			continue;
		while (k + 1 < b->nh && b->h[k + 1].seq <= oldest)
			k++;
		for (j = 0; j < k; j++)
			gm_state_put(b->h[j].st);
		memmove(b->h, b->h + k, (b->nh - k) * sizeof(*b->h));
		b->nh -= k;
	}
}

/* Every branch at every seq where its state changed, from the horizon on
 * (and at the horizon itself, and just before each change): what GC may
 * not take. */
static void gm_check_seqs(struct gm *m, const char *what)
{
	uint64_t oldest = store_oldest_seq(m->fx->s);
	int i;

	m->stats[ST_SEQ_CHECKS]++;
	/* below the horizon a read is refused, never answered from what GC
	 * left */
	if (oldest > 1) {
		struct store_attr a;
		int rc = store_getattr(m->fx->s, m->br[0].id, oldest - 1,
				       m->root, &a);

		GCHECK(m, rc == -ERANGE,
		       "%s: getattr at seq %" PRIu64 ", below the horizon = %d",
		       what, oldest - 1, rc);
	}
	for (i = 0; i < GM_BRANCHES; i++) {
		const struct gm_branch *b = &m->br[i];
		size_t k;

		if (!b->live)
			continue;
		for (k = 0; k < b->nh; k++) {
			uint64_t lo = b->h[k].seq, hi;

			hi = k + 1 < b->nh ? b->h[k + 1].before :
					     store_seq_now(m->fx->s);
			if (hi < oldest)
				continue;
			if (lo < oldest)
				lo = oldest;
			gm_check_state(m, b, lo, b->h[k].st, what);
			if (hi != lo)
				gm_check_state(m, b, hi, b->h[k].st, what);
		}
		gm_check_state(m, b, STORE_SEQ_LATEST, gm_head(b), what);
	}
	for (i = 0; i < m->norph; i++) {
		const struct gm_orphan *o = &m->orph[i];
		const struct gm_branch *b = &m->br[o->br];
		struct store_attr a;
		ssize_t n;
		int rc;

		rc = store_getattr(m->fx->s, b->id, STORE_SEQ_LATEST, o->ino,
				   &a);
		GCHECK(m, rc == 0 && a.nlink == 0 && a.size == o->b->len,
		       "%s: open unlinked ino %" PRIu64 " of %s: getattr = %d nlink %u size %" PRIu64
		       ", model size %u",
		       what, o->ino, b->name, rc, rc ? 0 : a.nlink,
		       rc ? 0 : a.size, o->b->len);
		n = store_read(m->fx->s, b->id, STORE_SEQ_LATEST, o->ino,
			       m->buf, GM_FILE_MAX + BS, 0);
		GCHECK(m,
		       n == (ssize_t)o->b->len &&
			       memcmp(m->buf, o->b->data, o->b->len) == 0,
		       "%s: open unlinked ino %" PRIu64 " of %s reads %zd bytes, not as the model (%u)",
		       what, o->ino, b->name, n, o->b->len);
	}
}

/* The seq store_seq_at_time gives for t must include every operation made
 * at or before t's ms and none made 10 ms or more after it. */
static void gm_check_time_seq(struct gm *m, int64_t t, uint64_t seq)
{
	int64_t tms = t / NS_MS;
	size_t i;

	for (i = 0; i < m->nlog; i++) {
		const struct gm_op *o = &m->ops[i];

		if (o->t / NS_MS <= tms)
			GCHECK(m, seq >= o->after,
			       "seq_at_time(%" PRId64 ".%03" PRId64 ") = %" PRIu64
			       ": misses the operation at %" PRId64 ".%03" PRId64
			       " (seqs %" PRIu64 "..%" PRIu64 ")",
			       t / NS_S, t / NS_MS % 1000, seq, o->t / NS_S,
			       o->t / NS_MS % 1000, o->before + 1, o->after);
		else if (o->t / NS_MS >= tms + 10)
			GCHECK(m, seq <= o->before,
			       "seq_at_time(%" PRId64 ".%03" PRId64 ") = %" PRIu64
			       ": includes the operation at %" PRId64
			       ".%03" PRId64 " (seqs %" PRIu64 "..%" PRIu64 ")",
			       t / NS_S, t / NS_MS % 1000, seq, o->t / NS_S,
			       o->t / NS_MS % 1000, o->before + 1, o->after);
	}
}

/* The oldest moment the store must still serve: the window's start now,
 * or a later one that a GC took with a shorter retention before (a longer
 * one cannot bring back what went), rounded up to the ms
 * store_oldest_time shows. */
static int64_t gm_window_lo(const struct gm *m)
{
	int64_t lo = gm_now() - (int64_t)m->ret_s * NS_S;

	if (lo < m->hz_bound)
		lo = m->hz_bound;
	return (lo + NS_MS - 1) / NS_MS * NS_MS;
}

/* Moments inside the window: accepted, and every branch reads there as
 * the model says. */
static void gm_check_times(struct gm *m, int n)
{
	int64_t now = gm_now(), lo = gm_window_lo(m), t;
	int j, i;

	GCHECK(m, store_oldest_time(m->fx->s) <= lo,
	       "oldest time %" PRId64 " is inside the window (from %" PRId64
	       ")",
	       store_oldest_time(m->fx->s), lo);
	m->stats[ST_TIME_CHECKS]++;
	for (j = 0; j < n; j++) {
		uint64_t seq = 0;
		int rc;

		t = j == 0 ? lo : lo + (int64_t)(tm_rand(&m->run) % (uint64_t)(now - lo + 1));
		rc = store_seq_at_time(m->fx->s, t, &seq);
		GCHECK(m, rc == 0,
		       "seq_at_time(%" PRId64 ".%03" PRId64
		       ") inside the window = %d",
		       t / NS_S, t / NS_MS % 1000, rc);
		gm_check_time_seq(m, t, seq);
		for (i = 0; i < GM_BRANCHES; i++) {
			const struct gm_branch *b = &m->br[i];
			const struct gm_state *st;

			if (!b->live)
				continue;
			st = gm_state_at(b, seq);
			if (st)
				gm_check_state(m, b, seq, st, "moment");
		}
	}
}

/* ---- file operations ---- */

static int gm_pick_file(struct gm *m, const struct gm_state *st)
{
	int i, n = 0, k;

	for (i = 0; i < GM_NAMES; i++)
		n += st->ino[i] != 0;
	if (!n)
		return -1;
	k = (int)tm_below(&m->run, (uint32_t)n);
	for (i = 0; i < GM_NAMES; i++)
		if (st->ino[i] && k-- == 0)
			return i;
	return -1;
}

static void gm_op_create(struct gm *m, struct gm_branch *b)
{
	struct store_attr a = tstore_attr(S_IFREG | 0644);
	int i = (int)tm_below(&m->run, GM_NAMES), rc;
	uint64_t before, ino = 0;
	struct gm_state *st;
	char name[8];

	if (gm_head(b)->ino[i])
		return;
	gm_name(i, name);
	gm_trail(m, "create %s/%s", b->name, name);
	before = store_seq_now(m->fx->s);
	rc = store_create(m->fx->s, b->id, m->root, name, &a, NULL, &ino, NULL);
	GCHECK(m, rc == 0, "create %s in %s = %d", name, b->name, rc);
	st = gm_state_copy(gm_head(b));
	st->ino[i] = ino;
	st->b[i] = tm_blob_new(0);
	gm_change(m, b, before, st);
	m->stats[ST_CREATE]++;
}

static void gm_fill(struct gm *m, unsigned char *p, uint32_t len)
{
	uint32_t i, k = tm_below(&m->run, 4);
	uint64_t x = tm_rand(&m->run);

	for (i = 0; i < len; i++) {
		if (k == 0)
			p[i] = 0;
		else if (k == 1)
			p[i] = (unsigned char)(x + i / 512);
		else
			p[i] = (unsigned char)((x >> (i % 7 * 8)) + i * 31);
	}
}

static void gm_op_write(struct gm *m, struct gm_branch *b, bool fail)
{
	struct gm_state *st;
	struct tm_blob *nb;
	uint32_t off, len, cur;
	uint64_t before;
	ssize_t n;
	int i = gm_pick_file(m, gm_head(b));

	if (i < 0)
		return;
	cur = gm_head(b)->b[i]->len;
	if (tm_below(&m->run, 3) == 0) {
		off = tm_below(&m->run, 4) * BS;
		len = BS;
	} else {
		off = tm_below(&m->run, cur + BS);
		len = 1 + tm_below(&m->run, 2 * BS + 100);
	}
	if (off >= GM_FILE_MAX)
		off = GM_FILE_MAX - 1;
	if (len > GM_FILE_MAX - off)
		len = GM_FILE_MAX - off;
	gm_fill(m, m->buf, len);
	gm_trail(m, "write%s %s/f%d off %u len %u", fail ? " (failing)" : "",
		 b->name, i, off, len);
	before = store_seq_now(m->fx->s);
	if (fail) {
		gm_excl(m);
		kv_fault_arm(m->fx->fault, KV_FAULT_WRITE, 1, false,
			     tm_below(&m->run, 2) ? -ENOSPC : -EIO);
	}
	n = store_write(m->fx->s, b->id, gm_head(b)->ino[i], m->buf, len, off,
			NULL);
	if (fail) {
		kv_fault_disarm(m->fx->fault);
		gm_unexcl(m);
		GCHECK(m, n < 0, "failing write = %zd", n);
		m->stats[ST_WRITE_FAIL]++;
		return;
	}
	GCHECK(m, n == (ssize_t)len, "write = %zd", n);
	nb = tm_blob_new(off + len > cur ? off + len : cur);
	memcpy(nb->data, gm_head(b)->b[i]->data, cur);
	memcpy(nb->data + off, m->buf, len);
	st = gm_state_copy(gm_head(b));
	gm_set_blob(st, st->ino[i], nb);
	gm_change(m, b, before, st);
	m->stats[ST_WRITE]++;
}

static void gm_op_truncate(struct gm *m, struct gm_branch *b)
{
	struct store_attr a;
	struct gm_state *st;
	struct tm_blob *nb;
	uint32_t len, cur;
	uint64_t before;
	int i = gm_pick_file(m, gm_head(b)), rc;

	if (i < 0)
		return;
	cur = gm_head(b)->b[i]->len;
	len = tm_below(&m->run, 2) ? tm_below(&m->run, cur + 1) : tm_below(&m->run, GM_FILE_MAX);
	memset(&a, 0, sizeof(a));
	a.size = len;
	gm_trail(m, "truncate %s/f%d %u -> %u", b->name, i, cur, len);
	before = store_seq_now(m->fx->s);
	rc = store_setattr(m->fx->s, b->id, gm_head(b)->ino[i], &a,
			   STORE_SET_SIZE, NULL);
	GCHECK(m, rc == 0, "truncate = %d", rc);
	nb = tm_blob_new(len);
	memcpy(nb->data, gm_head(b)->b[i]->data, len < cur ? len : cur);
	st = gm_state_copy(gm_head(b));
	gm_set_blob(st, st->ino[i], nb);
	gm_change(m, b, before, st);
	m->stats[ST_TRUNC]++;
}

static void gm_op_punch(struct gm *m, struct gm_branch *b)
{
	struct gm_state *st;
	struct tm_blob *nb;
	uint32_t off, end, cur;
	uint64_t before;
	int i = gm_pick_file(m, gm_head(b)), rc;

	if (i < 0)
		return;
	cur = gm_head(b)->b[i]->len;
	off = tm_below(&m->run, cur + 100);
	end = off + 1 + tm_below(&m->run, 3 * BS);
	gm_trail(m, "punch %s/f%d [%u, %u) size %u", b->name, i, off, end, cur);
	before = store_seq_now(m->fx->s);
	rc = store_punch(m->fx->s, b->id, gm_head(b)->ino[i], off, end, NULL);
	GCHECK(m, rc == 0, "punch = %d", rc);
	nb = tm_blob_new(cur);
	memcpy(nb->data, gm_head(b)->b[i]->data, cur);
	if (off < cur)
		memset(nb->data + off, 0, (end < cur ? end : cur) - off);
	st = gm_state_copy(gm_head(b));
	gm_set_blob(st, st->ino[i], nb);
	gm_change(m, b, before, st);
	m->stats[ST_PUNCH]++;
}

static void gm_op_unlink(struct gm *m, struct gm_branch *b)
{
	struct gm_state *st;
	uint64_t before;
	char name[8];
	int i = gm_pick_file(m, gm_head(b)), rc;

	if (i < 0)
		return;
	gm_name(i, name);
	gm_trail(m, "unlink %s/%s", b->name, name);
	before = store_seq_now(m->fx->s);
	rc = store_unlink(m->fx->s, b->id, m->root, name);
	GCHECK(m, rc == 0, "unlink = %d", rc);
	if (gm_nlink(gm_head(b), gm_head(b)->ino[i]) == 1)
		gm_orphan_add(m, b, gm_head(b), i);
	st = gm_state_copy(gm_head(b));
	tm_blob_put(st->b[i]);
	st->b[i] = NULL;
	st->ino[i] = 0;
	gm_change(m, b, before, st);
	m->stats[ST_UNLINK]++;
}

static void gm_op_rename(struct gm *m, struct gm_branch *b)
{
	struct gm_state *st;
	uint64_t before;
	char from[8], to[8];
	int i = gm_pick_file(m, gm_head(b)), j = (int)tm_below(&m->run, GM_NAMES);
	int rc;

	if (i < 0 || i == j)
		return;
	gm_name(i, from);
	gm_name(j, to);
	if (gm_head(b)->ino[j] == gm_head(b)->ino[i]) {
		/* onto a link of the same file: nothing happens */
		gm_trail(m, "rename %s/%s -> %s (same file)", b->name, from,
			 to);
		rc = store_rename(m->fx->s, b->id, m->root, from, m->root, to,
				  0);
		GCHECK(m, rc == 0, "rename onto a link of the same file = %d",
		       rc);
		return;
	}
	gm_trail(m, "rename %s/%s -> %s%s", b->name, from, to,
		 gm_head(b)->ino[j] ? " (replacing)" : "");
	before = store_seq_now(m->fx->s);
	rc = store_rename(m->fx->s, b->id, m->root, from, m->root, to, 0);
	GCHECK(m, rc == 0, "rename = %d", rc);
	if (gm_head(b)->ino[j] &&
	    gm_nlink(gm_head(b), gm_head(b)->ino[j]) == 1)
		gm_orphan_add(m, b, gm_head(b), j);
	st = gm_state_copy(gm_head(b));
	tm_blob_put(st->b[j]);
	st->b[j] = st->b[i];
	st->ino[j] = st->ino[i];
	st->b[i] = NULL;
	st->ino[i] = 0;
	gm_change(m, b, before, st);
	m->stats[ST_RENAME]++;
}

/* A second name for a file. */
static void gm_op_link(struct gm *m, struct gm_branch *b)
{
	struct gm_state *st;
	uint64_t before;
	char name[8];
	int i = gm_pick_file(m, gm_head(b)), j = (int)tm_below(&m->run, GM_NAMES);
	int rc;

	if (i < 0 || gm_head(b)->ino[j])
		return;
	gm_name(j, name);
	gm_trail(m, "link %s/f%d as %s", b->name, i, name);
	before = store_seq_now(m->fx->s);
	rc = store_link(m->fx->s, b->id, gm_head(b)->ino[i], m->root, name,
			NULL);
	GCHECK(m, rc == 0, "link = %d", rc);
	st = gm_state_copy(gm_head(b));
	st->ino[j] = st->ino[i];
	st->b[j] = st->b[i];
	st->b[j]->ref++;
	gm_change(m, b, before, st);
	m->stats[ST_LINK]++;
}

/* Write to an open unlinked file, or close it. */
static void gm_op_orphan(struct gm *m)
{
	struct gm_orphan *o;
	struct tm_blob *nb;
	uint32_t off, len;
	ssize_t n;
	int k;

	if (!m->norph)
		return;
	k = (int)tm_below(&m->run, (uint32_t)m->norph);
	o = &m->orph[k];
	if (tm_below(&m->run, 3) == 0) {
		gm_trail(m, "close open unlinked ino %" PRIu64 " of %s", o->ino,
			 m->br[o->br].name);
		gm_orphan_close(m, k);
		return;
	}
	off = tm_below(&m->run, o->b->len + BS);
	if (off >= GM_FILE_MAX)
		off = GM_FILE_MAX - 1;
	len = 1 + tm_below(&m->run, BS + 100);
	if (len > GM_FILE_MAX - off)
		len = GM_FILE_MAX - off;
	gm_fill(m, m->buf, len);
	gm_trail(m, "write open unlinked ino %" PRIu64 " of %s off %u len %u",
		 o->ino, m->br[o->br].name, off, len);
	n = store_write(m->fx->s, m->br[o->br].id, o->ino, m->buf, len, off,
			NULL);
	GCHECK(m, n == (ssize_t)len, "write of an open unlinked file = %zd",
	       n);
	nb = tm_blob_new(off + len > o->b->len ? off + len : o->b->len);
	memcpy(nb->data, o->b->data, o->b->len);
	memcpy(nb->data + off, m->buf, len);
	pthread_mutex_lock(&m->orph_mu);
	tm_blob_put(o->b);
	o->b = nb;
	pthread_mutex_unlock(&m->orph_mu);
	m->stats[ST_ORPHAN_WRITE]++;
}

/* ---- branch operations ---- */

static int gm_pick_branch(struct gm *m)
{
	int k = (int)tm_below(&m->run, (uint32_t)m->nlive), i;

	for (i = 0; i < GM_BRANCHES; i++)
		if (m->br[i].live && k-- == 0)
			return i;
	return 0;
}

static void gm_op_branch_create(struct gm *m, struct gm_branch *p, int how)
{
	struct store_branch_create_args a;
	struct store_branch_info bi;
	const struct gm_state *from;
	struct gm_branch *c = NULL;
	uint64_t before, lo, now, at = STORE_SEQ_LATEST;
	int64_t t = 0;
	int i, rc;

	for (i = 0; i < GM_BRANCHES && !c; i++)
		if (!m->br[i].live)
			c = &m->br[i];
	if (!c)
		return;
	snprintf(c->name, sizeof(c->name), "b%lu", ++m->counter);
	now = store_seq_now(m->fx->s);
	lo = store_oldest_seq(m->fx->s);
	if (lo < p->h[0].seq)
		lo = p->h[0].seq;
	if (how == 1) {
		/* a past seq, often the oldest one the store keeps */
		at = tm_below(&m->run, 3) == 0 ? lo : lo + tm_rand(&m->run) % (now - lo + 1);
	} else if (how == 2) {
		/* a past time: from the window's edge (or p's making) on */
		int64_t tlo = gm_window_lo(m);

		if (tlo < p->h[0].t)
			tlo = p->h[0].t;
		t = tm_below(&m->run, 3) == 0 ?
			    tlo :
			    tlo + (int64_t)(tm_rand(&m->run) %
					    (uint64_t)(gm_now() - tlo + 1));
		rc = store_seq_at_time(m->fx->s, t, &at);
		if (rc == -ERANGE && m->bg && store_oldest_time(m->fx->s) > t)
			return; /* GC's thread moved the window meanwhile */
		GCHECK(m, rc == 0,
		       "seq_at_time(%" PRId64 ".%03" PRId64
		       ") for a branch of %s = %d",
		       t / NS_S, t / NS_MS % 1000, p->name, rc);
		gm_check_time_seq(m, t, at);
	}
	from = at == STORE_SEQ_LATEST ? gm_head(p) : gm_state_at(p, at);
	if (!from) {
		/* p was made within 10 ms after t: a seq before it */
		return;
	}
	gm_trail(m, "branch %s from %s at %s %" PRIu64 " (t %" PRId64 ".%03" PRId64 ")",
		 c->name, p->name, how == 0 ? "head" : how == 1 ? "seq" : "time",
		 at, t / NS_S, t / NS_MS % 1000);
	a = tstore_args(c->name, p->id, at);
	a.lazy = tm_below(&m->run, 2);
	before = store_seq_now(m->fx->s);
	rc = store_branch_create(m->fx->s, &a, &bi);
	if (rc == -ERANGE && m->bg && at != STORE_SEQ_LATEST &&
	    store_oldest_seq(m->fx->s) > at)
		return; /* GC's thread moved the window meanwhile */
	GCHECK(m, rc == 0, "branch create %s from %s at %" PRIu64 " = %d",
	       c->name, p->name, at, rc);
	c->live = true;
	c->id = bi.id;
	c->parent = (int)(p - m->br);
	c->nchildren = 0;
	p->nchildren++;
	m->nlive++;
	((struct gm_state *)from)->ref++;
	gm_change(m, c, before, (struct gm_state *)from);
	gm_check_state(m, c, STORE_SEQ_LATEST, from, "new branch");
	m->stats[ST_BR_LATEST + how]++;
}

static void gm_op_branch_delete(struct gm *m, struct gm_branch *b)
{
	uint64_t before;
	int rc;

	if (b->parent < 0 || b->nchildren)
		return;
	gm_trail(m, "branch delete %s", b->name);
	gm_orphan_close_all(m, (int)(b - m->br));
	before = store_seq_now(m->fx->s);
	rc = store_branch_delete(m->fx->s, b->id);
	GCHECK(m, rc == 0, "branch delete %s = %d", b->name, rc);
	gm_log(m, before);
	m->br[b->parent].nchildren--;
	gm_hist_clear(b);
	b->live = false;
	m->nlive--;
	m->stats[ST_BR_DELETE]++;
}

static void gm_op_branch_reset(struct gm *m, struct gm_branch *b)
{
	uint64_t before;
	int rc;

	if (b->parent < 0 || b->nchildren)
		return;
	gm_trail(m, "branch reset %s to %s", b->name, m->br[b->parent].name);
	gm_orphan_close_all(m, (int)(b - m->br));
	before = store_seq_now(m->fx->s);
	rc = store_branch_reset(m->fx->s, b->id, NULL);
	GCHECK(m, rc == 0, "branch reset %s = %d", b->name, rc);
	/* its past before the reset is not its history any more */
	gm_hist_clear(b);
	gm_head(&m->br[b->parent])->ref++;
	gm_change(m, b, before, gm_head(&m->br[b->parent]));
	m->stats[ST_BR_RESET]++;
}

static void gm_op_branch_rename(struct gm *m, struct gm_branch *b)
{
	struct store_branch_info bi;
	uint64_t before;
	int rc;

	gm_trail(m, "branch rename %s -> r%lu", b->name, m->counter + 1);
	snprintf(b->name, sizeof(b->name), "r%lu", ++m->counter);
	before = store_seq_now(m->fx->s);
	rc = store_branch_rename(m->fx->s, b->id, b->name);
	GCHECK(m, rc == 0, "branch rename = %d", rc);
	gm_log(m, before);
	rc = store_branch_lookup(m->fx->s, b->name, &bi);
	GCHECK(m, rc == 0 && bi.id == b->id, "renamed branch lookup = %d", rc);
	m->stats[ST_BR_RENAME]++;
}

/* ---- GC, reopen ---- */

/* A new retention window, shorter or longer. */
static void gm_op_retention(struct gm *m)
{
	uint64_t r = 1 + tm_below(&m->run, GM_RET_MAX);
	int64_t end = gm_now() - (int64_t)m->ret_s * NS_S;
	int rc;

	gm_trail(m, "retention %" PRIu64 " s -> %" PRIu64 " s", m->ret_s, r);
	if (end > m->hz_bound)
		m->hz_bound = end;
	rc = store_set_retention(m->fx->s, r);
	GCHECK(m, rc == 0, "store_set_retention = %d", rc);
	m->ret_s = r;
	m->stats[ST_RETENTION]++;
}

static void gm_op_gc(struct gm *m, bool fail)
{
	struct store_gc_opts opts = { 0 };
	struct store_gc_stats gs;
	unsigned long nth = 1 + tm_below(&m->run, 12);
	unsigned mask = tm_below(&m->run, 2) ? KV_FAULT_WRITE : KV_FAULT_ITER_MOVE;
	int rc;

	opts.full_compaction = tm_below(&m->run, 8) == 0;
	opts.in_use = gm_in_use;
	opts.ctx = m;
	gm_excl(m);
	gm_trail(m, "gc%s%s", opts.full_compaction ? " (compaction)" : "",
		 fail ? " (failing)" : "");
	memset(&gs, 0, sizeof(gs));
	if (fail)
		kv_fault_arm(m->fx->fault, mask, nth, false, -EIO);
	rc = store_gc(m->fx->s, &opts, &gs);
	if (fail) {
		kv_fault_disarm(m->fx->fault);
		m->stats[ST_GC_FAIL] += rc != 0;
	} else {
		GCHECK(m, rc == 0, "store_gc = %d", rc);
	}
	m->stats[ST_GC]++;
	m->stats[ST_GC_DELETED] += gs.keys_deleted;
	gm_check_seqs(m, fail ? "after a failed gc" : "after gc");
	gm_check_times(m, 6);
	gm_prune(m, store_oldest_seq(m->fx->s));
	gm_unexcl(m);
}

static void gm_op_reopen(struct gm *m, bool crash)
{
	int rc;

	gm_trail(m, "close and reopen%s", crash ? " (close's write fails)" : "");
	gm_excl(m);
	gm_orphan_close_all(m, -1); /* a restart closes every file */
	if (crash)
		kv_fault_arm(m->fx->fault, KV_FAULT_WRITE, 1, true, -EIO);
	rc = store_close(m->fx->s);
	kv_fault_disarm(m->fx->fault);
	GCHECK(m, crash ? rc != 0 : rc == 0, "store_close = %d", rc);
	m->fx->s = NULL;
	assert_int_equal(tstore_fx_open(m->fx), 0);
	m->stats[crash ? ST_CRASH_REOPEN : ST_REOPEN]++;
	gm_check_seqs(m, "after reopen");
	gm_unexcl(m);
}

static void gm_advance(struct gm *m)
{
	uint32_t r = tm_below(&m->run, 100);
	int64_t d;

	if (r < 30)
		d = 0; /* same ms */
	else if (r < 60)
		d = tm_below(&m->run, 3 * NS_MS); /* sub-ms, or the next ms */
	else if (r < 97)
		d = tm_below(&m->run, 40 * NS_MS);
	else
		d = tm_below(&m->run, 3000 * NS_MS); /* a pause */
	atomic_fetch_add(&gm_fake_ns, d);
}

static void test_store_gc_model(void **state)
{
	static struct gm mm;
	struct gm *m = &mm;
	struct gm_branch *b0;
	unsigned long gc_at;
	int i;

	memset(m, 0, sizeof(*m));
	m->fx = *state;
	tm_run_start(&m->run, GM_DEFAULT_SEED, GM_DEFAULT_OPS);
	m->buf = malloc(GM_FILE_MAX + BS + 16);
	assert_non_null(m->buf);
	fprintf(stderr, "  gc model: BRANCHFS_SEED=%" PRIu64 " BRANCHFS_OPS=%lu\n",
		m->run.seed, m->run.nops);

	/* the model's clock starts a window after the real one (the store's
	 * making), on a whole ms */
	atomic_store(&gm_fake_ns,
		     (tstore_now_ns() / NS_MS + (GM_RET_MAX + 1) * 1000) * NS_MS);
	assert_int_equal(store_set_retention(m->fx->s, GM_RET_S), 0);
	m->ret_s = GM_RET_S;
	b0 = &m->br[0];
	b0->live = true;
	b0->id = m->fx->br;
	b0->parent = -1;
	snprintf(b0->name, sizeof(b0->name), "root");
	m->nlive = 1;
	m->root = m->fx->root;
	gm_hist_push(b0, 0, store_seq_now(m->fx->s), gm_now(),
		     gm_state_copy(NULL));
	pthread_mutex_init(&m->orph_mu, NULL);
	pthread_rwlock_init(&m->gc_lock, NULL);
	m->bg = tm_env("BRANCHFS_GC_THREAD", 1) != 0;
	if (m->bg)
		assert_int_equal(pthread_create(&m->gc_thread, NULL, gm_bg_gc, m),
				 0);

	gc_at = 20 + tm_below(&m->run, 80);
	for (m->run.op = 1; m->run.op <= m->run.nops; m->run.op++) {
		struct gm_branch *b = &m->br[gm_pick_branch(m)];
		uint32_t r = tm_below(&m->run, 1000);

		gm_advance(m);
		if (r < 260)
			gm_op_write(m, b, false);
		else if (r < 320)
			gm_op_truncate(m, b);
		else if (r < 380)
			gm_op_punch(m, b);
		else if (r < 480)
			gm_op_create(m, b);
		else if (r < 530)
			gm_op_unlink(m, b);
		else if (r < 560)
			gm_op_rename(m, b);
		else if (r < 590)
			gm_op_link(m, b);
		else if (r < 640)
			gm_op_branch_create(m, b, 0);
		else if (r < 690)
			gm_op_branch_create(m, b, 1);
		else if (r < 740)
			gm_op_branch_create(m, b, 2);
		else if (r < 800)
			gm_op_branch_delete(m, b);
		else if (r < 830)
			gm_op_branch_reset(m, b);
		else if (r < 845)
			gm_op_branch_rename(m, b);
		else if (r < 855)
			gm_op_write(m, b, true);
		else if (r < 870)
			gm_op_gc(m, true);
		else if (r < 874)
			gm_op_reopen(m, tm_below(&m->run, 2));
		else if (r < 880) {
			gm_trail(m, "check of the seqs");
			gm_excl(m);
			gm_check_seqs(m, "check");
			gm_unexcl(m);
		} else if (r < 890) {
			gm_trail(m, "check of moments");
			gm_excl(m);
			gm_check_times(m, 2);
			gm_unexcl(m);
		} else if (r < 910) {
			gm_op_orphan(m);
		} else if (r < 915) {
			gm_op_retention(m);
		} else {
			gm_trail(m, "check of %s", b->name);
			gm_check_state(m, b, STORE_SEQ_LATEST, gm_head(b),
				       "head");
		}
		if (m->run.op == gc_at) {
			gm_op_gc(m, false);
			gc_at = m->run.op + 20 + tm_below(&m->run, 80);
		}
	}
	m->run.op = m->run.nops + 1;
	if (m->bg) {
		atomic_store(&m->bg_stop, true);
		pthread_join(m->gc_thread, NULL);
		m->bg = false;
		GCHECK(m, atomic_load(&m->bg_err) == 0,
		       "store_gc in GC's thread = %d", atomic_load(&m->bg_err));
	}
	gm_op_gc(m, false);
	gm_orphan_close_all(m, -1);
	fprintf(stderr,
		"  gc model: %lu writes (%lu failed), %lu truncates, %lu punches, %lu creates, %lu unlinks, %lu renames, %lu links; branches: %lu at the head, %lu at a seq, %lu at a time, %lu deletes, %lu resets, %lu renames; %lu gcs (%lu failed, %lu keys deleted), %lu reopens (+%lu after a failed close); %lu seq checks, %lu moment checks; %lu files unlinked while open (%lu writes to them); %lu gcs in GC's thread; %lu retention changes; %d live branches, %" PRId64 " s of model time\n",
		m->stats[ST_WRITE], m->stats[ST_WRITE_FAIL], m->stats[ST_TRUNC],
		m->stats[ST_PUNCH], m->stats[ST_CREATE], m->stats[ST_UNLINK],
		m->stats[ST_RENAME], m->stats[ST_LINK], m->stats[ST_BR_LATEST],
		m->stats[ST_BR_SEQ], m->stats[ST_BR_TIME],
		m->stats[ST_BR_DELETE], m->stats[ST_BR_RESET],
		m->stats[ST_BR_RENAME], m->stats[ST_GC], m->stats[ST_GC_FAIL],
		m->stats[ST_GC_DELETED], m->stats[ST_REOPEN],
		m->stats[ST_CRASH_REOPEN], m->stats[ST_SEQ_CHECKS],
		m->stats[ST_TIME_CHECKS], m->stats[ST_ORPHAN],
		m->stats[ST_ORPHAN_WRITE], atomic_load(&m->bg_runs), m->stats[ST_RETENTION], m->nlive,
		(gm_now() - m->ops[0].t) / NS_S);
	for (i = 0; i < GM_BRANCHES; i++) {
		gm_hist_clear(&m->br[i]);
		free(m->br[i].h);
	}
	free(m->ops);
	free(m->buf);
	atomic_store(&gm_fake_ns, 0);
}

/* The time index answers moment t with a seq before seq 'has' (which
 * holds a write made 'ms' ms after t), where file ino is still empty. */
static void gm_expect_before(struct tstore_fx *fx, int64_t t, uint64_t has,
			     uint64_t ino, int ms)
{
	uint64_t seq = 0;

	assert_int_equal(store_seq_at_time(fx->s, t, &seq), 0);
	if (seq >= has)
		fail_msg("the moment %d ms before a write answers seq %" PRIu64
			 ", which has it (seq %" PRIu64 ")",
			 ms, seq, has);
	assert_int_equal(tstore_size_at(fx->s, fx->br, seq, ino), 0);
}

/* A commit that opens a slot of the time index carries its entry; when it
 * fails, the commits after it in the slot (which write none) must not
 * leave the moments before it answered with a state that has them. */
static void test_store_gc_model_time_entry_lost(void **state)
{
	struct tstore_fx *fx = *state;
	unsigned char data[100];
	uint64_t ino, s_b, s_c, seq = 0;
	int64_t t0 = (tstore_now_ns() / NS_MS + 10000) * NS_MS;
	ssize_t n;

	memset(data, 0x5a, sizeof(data));
	atomic_store(&gm_fake_ns, t0);
	assert_int_equal(store_set_retention(fx->s, 3600), 0);
	ino = tstore_mkfile(fx->s, fx->br, fx->root, "f");
	/* 1 s later a write fails, with the slot's entry in its batch */
	atomic_store(&gm_fake_ns, t0 + 1000 * NS_MS);
	kv_fault_arm(fx->fault, KV_FAULT_WRITE, 1, false, -EIO);
	n = store_write(fx->s, fx->br, ino, data, sizeof(data), 0, NULL);
	kv_fault_disarm(fx->fault);
	assert_true(n < 0);
	/* 2 ms later, in the same slot, one lands */
	atomic_store(&gm_fake_ns, t0 + 1002 * NS_MS);
	tstore_write(fx->s, fx->br, ino, data, sizeof(data), 0);
	s_b = store_seq_now(fx->s);
	/* and 50 ms later another, which opens a slot of its own */
	atomic_store(&gm_fake_ns, t0 + 1052 * NS_MS);
	tstore_write(fx->s, fx->br, ino, data, sizeof(data), 100);
	s_c = store_seq_now(fx->s);
	assert_true(s_c > s_b);
	/* half a second before the failed write: neither write */
	gm_expect_before(fx, t0 + 500 * NS_MS, s_b, ino, 502);
	/* the ms of the write that landed: it, not the next one */
	assert_int_equal(store_seq_at_time(fx->s, t0 + 1002 * NS_MS, &seq), 0);
	assert_true(seq >= s_b && seq < s_c);
	/* the same after a reopen */
	tstore_fx_reopen(fx);
	assert_int_equal(store_seq_at_time(fx->s, t0 + 500 * NS_MS, &seq), 0);
	assert_true(seq < s_b);
	atomic_store(&gm_fake_ns, 0);
}

/* As test_store_gc_model_time_entry_lost, when the entry's own write
 * fails too: the next commit carries it. */
static void test_store_gc_model_time_entry_kept(void **state)
{
	struct tstore_fx *fx = *state;
	unsigned char data[100];
	uint64_t ino, s_b, seq = 0;
	int64_t t0 = (tstore_now_ns() / NS_MS + 10000) * NS_MS;
	ssize_t n;

	memset(data, 0x5a, sizeof(data));
	atomic_store(&gm_fake_ns, t0);
	ino = tstore_mkfile(fx->s, fx->br, fx->root, "f");
	atomic_store(&gm_fake_ns, t0 + 1000 * NS_MS);
	kv_fault_arm(fx->fault, KV_FAULT_WRITE, 1, true, -EIO);
	n = store_write(fx->s, fx->br, ino, data, sizeof(data), 0, NULL);
	assert_true(kv_fault_fired(fx->fault) >= 2); /* and the entry's */
	kv_fault_disarm(fx->fault);
	assert_true(n < 0);
	atomic_store(&gm_fake_ns, t0 + 1002 * NS_MS);
	tstore_write(fx->s, fx->br, ino, data, sizeof(data), 0);
	s_b = store_seq_now(fx->s);
	atomic_store(&gm_fake_ns, t0 + 1052 * NS_MS);
	tstore_write(fx->s, fx->br, ino, data, sizeof(data), 100);
	gm_expect_before(fx, t0 + 500 * NS_MS, s_b, ino, 502);
	assert_int_equal(store_seq_at_time(fx->s, t0 + 1002 * NS_MS, &seq), 0);
	assert_true(seq >= s_b);
	atomic_store(&gm_fake_ns, 0);
}

/* The first commit after a reopen in the ms of the time index's last entry
 * must not overwrite it with its own seq (a seq after the reopen, higher
 * than every one before it). */
static void test_store_gc_model_time_reopen(void **state)
{
	struct tstore_fx *fx = *state;
	unsigned char data[100];
	uint64_t ino, s_a;
	int64_t t0 = (tstore_now_ns() / NS_MS + 10000) * NS_MS;

	memset(data, 0x5a, sizeof(data));
	atomic_store(&gm_fake_ns, t0);
	ino = tstore_mkfile(fx->s, fx->br, fx->root, "f");
	atomic_store(&gm_fake_ns, t0 + 100 * NS_MS);
	tstore_write(fx->s, fx->br, ino, data, sizeof(data), 0);
	s_a = store_seq_now(fx->s);
	tstore_fx_reopen(fx);
	tstore_write(fx->s, fx->br, ino, data, sizeof(data), 100);
	assert_true(store_seq_now(fx->s) > s_a);
	/* 50 ms before the write before the reopen: not even that one */
	gm_expect_before(fx, t0 + 50 * NS_MS, s_a, ino, 50);
	atomic_store(&gm_fake_ns, 0);
}

/* A clock set back (an NTP step) is logged, once per step: until it
 * passes the time index's last entry again, writes count as made then,
 * and a branch of a moment in between holds none of them (branchctl(1)).
 * Nothing said it: such a branch of "now" was the store from before the
 * step, exit 0. */
static void test_store_gc_model_clock_back_logged(void **state)
{
	struct tstore_fx *fx = *state;
	struct store_config cfg;
	static struct tlog_buf lb; /* the store may log after a failure */
	unsigned char data[100];
	uint64_t ino, s_a, seq = 0;
	int64_t t0 = (tstore_now_ns() / NS_MS + 10000) * NS_MS;

	memset(data, 0x5a, sizeof(data));
	lb.text[0] = 0;
	assert_int_equal(store_close(fx->s), 0);
	tstore_config(&cfg, false, NULL);
	cfg.log.fn = tlog_buf_fn;
	cfg.log.ctx = &lb;
	cfg.log.level = STORE_LOG_WARN;
	assert_int_equal(store_open(fx->dir, &cfg, &fx->s), 0);
	atomic_store(&gm_fake_ns, t0);
	ino = tstore_mkfile(fx->s, fx->br, fx->root, "f");
	/* the clock 2 min ahead, then back (0.5 s is not said) */
	atomic_store(&gm_fake_ns, t0 + 120 * NS_S);
	tstore_write(fx->s, fx->br, ino, data, sizeof(data), 0);
	atomic_store(&gm_fake_ns, t0 + 120 * NS_S - 500 * NS_MS);
	tstore_write(fx->s, fx->br, ino, data, sizeof(data), 0);
	assert_null(strstr(lb.text, "clock went back"));
	atomic_store(&gm_fake_ns, t0 + 1 * NS_S);
	tstore_write(fx->s, fx->br, ino, data, sizeof(data), 100);
	s_a = store_seq_now(fx->s);
	assert_non_null(strstr(lb.text, "the system clock went back 119.000 s"));
	/* once per step */
	lb.text[0] = 0;
	atomic_store(&gm_fake_ns, t0 + 2 * NS_S);
	tstore_write(fx->s, fx->br, ino, data, sizeof(data), 200);
	assert_null(strstr(lb.text, "clock went back"));
	/* what it says: a moment after the write, before the clock is
	 * back where it was, does not have it */
	assert_int_equal(store_seq_at_time(fx->s, t0 + 2 * NS_S, &seq), 0);
	assert_true(seq < s_a);
	/* past the last entry again, then back again: said again */
	atomic_store(&gm_fake_ns, t0 + 121 * NS_S);
	tstore_write(fx->s, fx->br, ino, data, sizeof(data), 300);
	atomic_store(&gm_fake_ns, t0 + 60 * NS_S);
	tstore_write(fx->s, fx->br, ino, data, sizeof(data), 400);
	assert_non_null(strstr(lb.text, "the system clock went back 61.000 s"));
	atomic_store(&gm_fake_ns, 0);
	assert_int_equal(store_close(fx->s), 0);
	fx->s = NULL;
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(
			test_store_gc_model_time_entry_lost,
			tstore_fx_setup_fault, tstore_fx_teardown),
		cmocka_unit_test_setup_teardown(
			test_store_gc_model_time_entry_kept,
			tstore_fx_setup_fault, tstore_fx_teardown),
		cmocka_unit_test_setup_teardown(test_store_gc_model_time_reopen,
						tstore_fx_setup,
						tstore_fx_teardown),
		cmocka_unit_test_setup_teardown(
			test_store_gc_model_clock_back_logged, tstore_fx_setup,
			tstore_fx_teardown),
		cmocka_unit_test_setup_teardown(test_store_gc_model,
						tstore_fx_setup_fault,
						tstore_fx_teardown),
	};

	return cmocka_run_group_tests_name("store_gc_model", tests, NULL,
					   NULL);
}
