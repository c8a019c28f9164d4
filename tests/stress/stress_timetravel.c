/* SPDX-License-Identifier: MIT */
/*
 * stress_timetravel.c - time travel at the edge of the retention window
 * while GC runs, under TSan.
 *
 * One store with a retention window of 1 or 2 s (a thread switches it back
 * and forth, so the window also shrinks under running creates), for
 * BRANCHFS_STRESS_SECS seconds (default 8):
 *  - writers, each owning one file of one branch ("main": f0 and f1;
 *    "mid", a child of main made before they start: its own copy of f0),
 *    change it as fast as they can: writes of a run of blocks (one
 *    commit), truncations, a new inode renamed over it (the old one
 *    unlinked, so its blocks become GC's "dead inode" case), and an
 *    unlink followed by a create of the name;
 *  - a GC thread calls store_gc back to back (now and then with a whole
 *    compaction, which also drops deleted branches' keys), and a second
 *    one stands for `branchctl gc` beside the background run (-EBUSY is
 *    the only failure it may see);
 *  - branchers make branches of main and of mid at moments near the
 *    oldest one the window still holds: a wall-clock time a little before
 *    or after now - retention (store_seq_at_time, as `--at WHEN` does),
 *    a seq a little below or above the seq of store_oldest_time(), and the
 *    seqs at which recorded operations began and ended.  Each is either
 *    refused with -ERANGE or must show, for every file, exactly one
 *    state its owner's history allows at the fork seq: never blocks of two
 *    states (what GC taking a needed version would show: an older or a
 *    newer version through the hole, or zeros), never garbage.  For a
 *    wall-clock time T it must hold every operation that returned before
 *    T and none that began 10 ms (the time index's resolution) after it.
 *    Branches are kept a while and checked again after later GCs, which
 *    must not change what they show, then deleted.
 * At the end every kept branch is checked again, the store is closed,
 * reopened and checked once more, and store_check reads every version.
 *
 * The state check: a writer records, for its operation i, B_i =
 * store_seq_now() before it and A_i after it (A_i = UINT64_MAX while it
 * runs), and the file's state after it (size and which write each block
 * holds).  The operation commits its visible change at some c_i with
 * B_i < c_i <= A_i.  At fork seq F the file shows state k with
 * c_k <= F < c_(k+1): k is the last i with A_i <= F, or k+1 when
 * B_(k+1) < F.
 *
 * Exit status 0 on success; on failure a message with the seed and 1.
 * BRANCHFS_SEED=N picks the seed.
 */
#include <errno.h>
#include <ftw.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "store/store.h"

#define BS STORE_BLOCK_SIZE
#define NBLK 6u		/* blocks per file at most */
#define MAX_OPS 200000u /* per history */
#define NHIST 3		/* main:f0, main:f1, mid:f0 */
#define NBRANCHERS 2
#define MAX_KEPT 6  /* time-travel branches kept per brancher */
#define INDEX_MS 10 /* the time index's resolution */

enum { H_MAIN_F0, H_MAIN_F1, H_MID_F0 };

struct tt_op {
	uint64_t before;	/* B_i */
	_Atomic uint64_t after; /* A_i, UINT64_MAX while running */
	int64_t before_ns, after_ns;
	bool exists;
	uint32_t size;
	uint32_t seed[NBLK]; /* 0: zeros */
};

struct tt_hist {
	uint64_t br, dir;
	const char *name;
	struct tt_op *ops;
	_Atomic size_t n; /* published ops */
};

struct tt_kept {
	uint64_t id, parent, fork;
	size_t state[NHIST]; /* what it showed first, per file */
	char name[32];
};

struct tt {
	char dir[64];
	struct store *s;
	uint64_t seed;
	uint64_t main_br, mid_br, mid_fork;
	struct tt_hist h[NHIST];
	_Atomic uint32_t next_seed;
	atomic_bool stop, failed;
	atomic_ulong nops, ngc, ngc_busy, ncreated, nrefused_time,
		nrefused_create, nchecks, nretention;
	atomic_int name_seq;
};

static struct tt t;

/* See stress_store.c: RocksDB is not built with TSan. */
const char *__tsan_default_suppressions(void);
const char *__tsan_default_suppressions(void)
{
	return "called_from_lib:librocksdb.so\n"
	       "called_from_lib:libstdc++.so\n"
	       "called_from_lib:libsnappy.so\n"
	       "called_from_lib:liblz4.so\n"
	       "called_from_lib:libz.so\n"
	       "called_from_lib:libbz2.so\n";
}

static void tt_fail(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

static void tt_fail(const char *fmt, ...)
{
	va_list ap;

	fprintf(stderr, "stress_timetravel: FAIL (BRANCHFS_SEED=%" PRIu64 "): ",
		t.seed);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
	atomic_store(&t.failed, true);
	atomic_store(&t.stop, true);
}

static int64_t tt_now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

static uint64_t tt_rand(uint64_t *x)
{
	*x ^= *x << 13;
	*x ^= *x >> 7;
	*x ^= *x << 17;
	return *x;
}

/* Block blk written with seed: the seed, the block number, then bytes
 * that depend on both and are never zero. */
static void tt_block(unsigned char *p, uint32_t seed, uint32_t blk)
{
	uint64_t x = seed * 0x9E3779B97F4A7C15ull + blk + 1;
	size_t i;

	memcpy(p, &seed, 4);
	memcpy(p + 4, &blk, 4);
	for (i = 8; i < BS; i++) {
		x = x * 6364136223846793005ull + 1442695040888963407ull;
		p[i] = (unsigned char)((x >> 33) | 1);
	}
}

/* The seed block blk of buf holds, or UINT32_MAX if it is neither zeros
 * nor a whole block written with one seed. */
static uint32_t tt_block_seed(const unsigned char *p, uint32_t blk)
{
	static _Thread_local unsigned char want[BS];
	uint32_t seed, b;
	size_t i;

	memcpy(&seed, p, 4);
	memcpy(&b, p + 4, 4);
	if (seed == 0) {
		for (i = 0; i < BS; i++)
			if (p[i])
				return UINT32_MAX;
		return 0;
	}
	if (b != blk)
		return UINT32_MAX;
	tt_block(want, seed, blk);
	return memcmp(want, p, BS) == 0 ? seed : UINT32_MAX;
}

/* ---- writers ---- */

static struct tt_op *tt_begin(struct tt_hist *h)
{
	size_t n = atomic_load(&h->n);
	struct tt_op *op;

	if (n == MAX_OPS)
		return NULL;
	op = &h->ops[n];
	*op = h->ops[n - 1];
	atomic_store(&op->after, UINT64_MAX);
	op->after_ns = INT64_MAX;
	op->before = store_seq_now(t.s);
	op->before_ns = tt_now_ns();
	return op;
}

static void tt_publish(struct tt_hist *h)
{
	atomic_fetch_add(&h->n, 1);
}

static void tt_end(struct tt_op *op)
{
	op->after_ns = tt_now_ns();
	atomic_store(&op->after, store_seq_now(t.s));
	atomic_fetch_add(&t.nops, 1);
}

static int tt_write_blocks(uint64_t br, uint64_t ino, uint32_t lo, uint32_t hi,
			   uint32_t seed)
{
	static _Thread_local unsigned char buf[NBLK * BS];
	uint32_t b;
	ssize_t n;

	for (b = lo; b < hi; b++)
		tt_block(buf + (size_t)(b - lo) * BS, seed, b);
	n = store_write(t.s, br, ino, buf, (size_t)(hi - lo) * BS,
			(uint64_t)lo * BS, NULL);
	return n == (ssize_t)((hi - lo) * BS) ? 0 : (n < 0 ? (int)n : -EIO);
}

static int tt_mkfile(struct tt_hist *h, const char *name, uint64_t *ino)
{
	struct store_attr a;

	memset(&a, 0, sizeof(a));
	a.mode = S_IFREG | 0644;
	return store_create(t.s, h->br, h->dir, name, &a, NULL, ino, NULL);
}

static void *tt_writer(void *arg)
{
	struct tt_hist *h = arg;
	uint64_t rnd = t.seed * 31 + (uint64_t)(h - t.h) + 1;
	char tmpname[32];

	snprintf(tmpname, sizeof(tmpname), "%s.tmp", h->name);
	while (!atomic_load(&t.stop)) {
		struct tt_op *op = tt_begin(h);
		unsigned kind = (unsigned)(tt_rand(&rnd) % 100);
		uint64_t ino = 0;
		uint32_t b;
		int rc = 0;

		if (!op)
			break;
		if (kind < 70 || !op->exists) {
			uint32_t lo = (uint32_t)(tt_rand(&rnd) % NBLK);
			uint32_t hi = lo + 1 +
				      (uint32_t)(tt_rand(&rnd) % (NBLK - lo));
			uint32_t seed = atomic_fetch_add(&t.next_seed, 1);

			if (!op->exists) {
				/* After an unlink: create the name again
				 * (empty: a state of its own), then write. */
				rc = tt_mkfile(h, h->name, &ino);
				if (rc)
					goto fail;
				op->exists = true;
				op->size = 0;
				memset(op->seed, 0, sizeof(op->seed));
				tt_publish(h);
				tt_end(op);
				op = tt_begin(h);
				if (!op)
					break;
			}
			rc = store_lookup(t.s, h->br, STORE_SEQ_LATEST, h->dir,
					  h->name, &ino);
			if (rc)
				goto fail;
			for (b = lo; b < hi; b++)
				op->seed[b] = seed;
			if (op->size < hi * BS)
				op->size = hi * BS;
			tt_publish(h);
			rc = tt_write_blocks(h->br, ino, lo, hi, seed);
		} else if (kind < 80) {
			struct store_attr a;
			uint32_t nb = (uint32_t)(tt_rand(&rnd) % (NBLK + 1));

			rc = store_lookup(t.s, h->br, STORE_SEQ_LATEST, h->dir,
					  h->name, &ino);
			if (rc)
				goto fail;
			for (b = nb; b < NBLK; b++)
				op->seed[b] = 0;
			op->size = nb * BS;
			tt_publish(h);
			memset(&a, 0, sizeof(a));
			a.size = (uint64_t)nb * BS;
			rc = store_setattr(t.s, h->br, ino, &a, STORE_SET_SIZE,
					   NULL);
		} else if (kind < 93) {
			/* A new inode, filled, renamed over the name: the old
			 * one is unlinked (GC's dead inode). */
			uint32_t seed = atomic_fetch_add(&t.next_seed, 1);
			uint32_t nb = 1 + (uint32_t)(tt_rand(&rnd) % NBLK);

			rc = tt_mkfile(h, tmpname, &ino);
			if (rc == 0)
				rc = tt_write_blocks(h->br, ino, 0, nb, seed);
			if (rc)
				goto fail;
			op->before = store_seq_now(t.s);
			op->before_ns = tt_now_ns();
			memset(op->seed, 0, sizeof(op->seed));
			for (b = 0; b < nb; b++)
				op->seed[b] = seed;
			op->size = nb * BS;
			tt_publish(h);
			rc = store_rename(t.s, h->br, h->dir, tmpname, h->dir,
					  h->name, 0);
		} else {
			op->exists = false;
			op->size = 0;
			memset(op->seed, 0, sizeof(op->seed));
			tt_publish(h);
			rc = store_unlink(t.s, h->br, h->dir, h->name);
		}
	fail:
		if (rc) {
			tt_fail("writer of %s: operation %u: %s", h->name, kind,
				strerror(-rc));
			break;
		}
		tt_end(op);
	}
	return NULL;
}

/* ---- GC and the window ---- */

static void *tt_gc(void *arg)
{
	uint64_t rnd = t.seed * 7 + (uintptr_t)arg;
	bool ondemand = arg != NULL;

	while (!atomic_load(&t.stop)) {
		struct store_gc_opts o = { .full_compaction =
						   tt_rand(&rnd) % 8 == 0 };
		struct store_gc_stats gs;
		int rc = store_gc(t.s, &o, &gs);

		if (rc == -EBUSY) {
			atomic_fetch_add(&t.ngc_busy, 1);
		} else if (rc) {
			tt_fail("store_gc = %s", strerror(-rc));
			break;
		} else {
			atomic_fetch_add(&t.ngc, 1);
		}
		usleep((useconds_t)(ondemand ? 20000 + tt_rand(&rnd) % 40000 :
					       tt_rand(&rnd) % 5000));
	}
	return NULL;
}

static void *tt_retention(void *arg)
{
	uint64_t r = 1;

	(void)arg;
	while (!atomic_load(&t.stop)) {
		int i;

		for (i = 0; i < 70 && !atomic_load(&t.stop); i++)
			usleep(10000);
		r = r == 1 ? 2 : 1;
		if (store_set_retention(t.s, r) != 0) {
			tt_fail("store_set_retention(%" PRIu64 ") failed", r);
			break;
		}
		atomic_fetch_add(&t.nretention, 1);
	}
	return NULL;
}

/* ---- checks ---- */

/* The states of h allowed at fork seq f: [*lo, *hi]. */
static void tt_allowed(struct tt_hist *h, uint64_t f, size_t *lo, size_t *hi)
{
	size_t n = atomic_load(&h->n), k;

	for (k = n; k-- > 0;) {
		if (atomic_load(&h->ops[k].after) <= f)
			break;
	}
	if (k == SIZE_MAX) /* before ops[0]: not asked for; fails below */
		k = 0;
	*lo = k;
	*hi = k + 1 < n && h->ops[k + 1].before < f ? k + 1 : k;
}

/* What a branch shows for one file: its state index in h, or SIZE_MAX
 * (with a message) when it is none of the allowed ones. */
static size_t tt_check_file(uint64_t br, uint64_t root, struct tt_hist *h,
			    uint64_t f, const char *what)
{
	static _Thread_local unsigned char buf[NBLK * BS + BS];
	struct store_attr a;
	uint32_t seed[NBLK] = { 0 };
	uint64_t ino;
	size_t lo, hi, k;
	bool exists;
	ssize_t got = 0;
	uint32_t b;
	int rc;

	rc = store_lookup(t.s, br, STORE_SEQ_LATEST, root, h->name, &ino);
	if (rc && rc != -ENOENT) {
		tt_fail("%s: lookup %s: %s", what, h->name, strerror(-rc));
		return SIZE_MAX;
	}
	exists = rc == 0;
	memset(&a, 0, sizeof(a));
	if (exists) {
		rc = store_getattr(t.s, br, STORE_SEQ_LATEST, ino, &a);
		if (rc == 0) {
			got = store_read(t.s, br, STORE_SEQ_LATEST, ino, buf,
					 sizeof(buf), 0);
			if (got < 0)
				rc = (int)got;
		}
		if (rc) {
			tt_fail("%s: read %s: %s", what, h->name,
				strerror(-rc));
			return SIZE_MAX;
		}
		if ((uint64_t)got != a.size || a.size % BS ||
		    a.size > NBLK * BS) {
			tt_fail("%s: %s: size %" PRIu64 ", read %zd", what,
				h->name, (uint64_t)a.size, got);
			return SIZE_MAX;
		}
		for (b = 0; b < a.size / BS; b++)
			seed[b] = tt_block_seed(buf + (size_t)b * BS, b);
	}
	tt_allowed(h, f, &lo, &hi);
	for (k = lo; k <= hi; k++) {
		const struct tt_op *op = &h->ops[k];

		if (op->exists == exists && (!exists || op->size == a.size) &&
		    memcmp(op->seed, seed, sizeof(seed)) == 0)
			return k;
	}
	{
		char line[512];
		size_t len = 0;

		for (k = lo; k <= hi && len < sizeof(line); k++) {
			const struct tt_op *op = &h->ops[k];

			len += (size_t)snprintf(line + len, sizeof(line) - len,
						" [%zu: B %" PRIu64
						" A %" PRIu64 " %s size %u:",
						k, op->before,
						atomic_load(&op->after),
						op->exists ? "file" : "none",
						op->size);
			for (b = 0; b < NBLK && len < sizeof(line); b++)
				len += (size_t)snprintf(line + len,
							sizeof(line) - len,
							" %u", op->seed[b]);
			if (len < sizeof(line))
				len += (size_t)snprintf(
					line + len, sizeof(line) - len, "]");
		}
		fprintf(stderr,
			"stress_timetravel: %s: %s at fork seq %" PRIu64
			": shows %s size %" PRIu64 ":",
			what, h->name, f, exists ? "file" : "none",
			(uint64_t)a.size);
		for (b = 0; b < NBLK; b++)
			fprintf(stderr, " %d", (int)seed[b]);
		fprintf(stderr, "; allowed:%s\n", line);
	}
	tt_fail("%s: %s is none of the states its history allows at seq %" PRIu64
		" (a mix of versions, or garbage: -1)",
		what, h->name, f);
	return SIZE_MAX;
}

/* Check every file of branch br (a fork of parent at f); fill state[]. */
static bool tt_check_branch(uint64_t br, uint64_t parent, uint64_t f,
			    size_t *state, const char *what)
{
	struct store_branch_info bi;
	int i;

	if (store_branch_get(t.s, br, &bi) != 0) {
		tt_fail("%s: branch %" PRIu64 " gone", what, br);
		return false;
	}
	for (i = 0; i < NHIST; i++) {
		struct tt_hist *h = &t.h[i];
		uint64_t at = f;

		if (parent == t.main_br && i == H_MID_F0)
			continue;
		if (parent == t.mid_br && i == H_MAIN_F0)
			continue;
		/* mid never writes f1: it reads main's as of its fork */
		if (parent == t.mid_br && i == H_MAIN_F1 && at > t.mid_fork)
			at = t.mid_fork;
		state[i] = tt_check_file(br, bi.root_ino, h, at, what);
		if (state[i] == SIZE_MAX)
			return false;
	}
	atomic_fetch_add(&t.nchecks, 1);
	return true;
}

/* Wall-clock time T resolved to fork seq f: every operation of the
 * parent's own files that returned before T is in, none that began a
 * time-index step after T. */
static void tt_check_time(uint64_t parent, int64_t when, const size_t *state)
{
	int64_t late = (when / 1000000 + INDEX_MS) * 1000000;
	int i;

	for (i = 0; i < NHIST; i++) {
		struct tt_hist *h = &t.h[i];
		size_t n = atomic_load(&h->n), k;

		if ((parent == t.main_br) != (i != H_MID_F0))
			continue;
		for (k = 0; k < n; k++) {
			const struct tt_op *op = &h->ops[k];
			bool done = atomic_load(&op->after) != UINT64_MAX;

			if (done && op->after_ns <= when && state[i] < k)
				tt_fail("%s: fork at time %" PRId64
					" misses operation %zu, which ended at %" PRId64,
					h->name, when, k, op->after_ns);
			if (op->before_ns >= late && state[i] >= k)
				tt_fail("%s: fork at time %" PRId64
					" holds operation %zu, which began at %" PRId64,
					h->name, when, k, op->before_ns);
			if (op->before_ns >= late)
				break;
		}
	}
}

static void tt_kept_check(struct tt_kept *kp, const char *when)
{
	size_t now[NHIST];
	char what[96];
	int i;

	snprintf(what, sizeof(what), "%s (%s)", kp->name, when);
	if (!tt_check_branch(kp->id, kp->parent, kp->fork, now, what))
		return;
	for (i = 0; i < NHIST; i++) {
		if ((kp->parent == t.main_br && i == H_MID_F0) ||
		    (kp->parent == t.mid_br && i == H_MAIN_F0))
			continue;
		if (now[i] != kp->state[i])
			tt_fail("%s: %s showed state %zu, now %zu", what,
				t.h[i].name, kp->state[i], now[i]);
	}
}

struct tt_brancher {
	int idx;
	struct tt_kept kept[MAX_KEPT];
	size_t nkept;
};

static void *tt_brancher(void *arg)
{
	struct tt_brancher *me = arg;
	uint64_t rnd = t.seed * 131 + (uint64_t)me->idx + 7;

	while (!atomic_load(&t.stop)) {
		struct store_branch_create_args a;
		struct store_branch_info bi;
		struct tt_kept kp;
		uint64_t parent = tt_rand(&rnd) % 3 == 0 ? t.mid_br : t.main_br;
		uint64_t f = 0;
		int64_t when = 0;
		unsigned mode = (unsigned)(tt_rand(&rnd) % 4);
		size_t i;
		int rc;

		if (mode <= 1) {
			/* a wall-clock time around the window's edge */
			int64_t edge =
				tt_now_ns() -
				(int64_t)store_get_retention(t.s) * 1000000000;

			when = edge + (int64_t)(tt_rand(&rnd) % 80000000) -
			       30000000;
			rc = store_seq_at_time(t.s, when, &f);
		} else if (mode == 2) {
			/* a seq around the oldest one retained */
			rc = store_seq_at_time(t.s, store_oldest_time(t.s), &f);
			if (rc == 0) {
				int d = (int)(tt_rand(&rnd) % 9) - 4;

				f = d < 0 && f < (uint64_t)-d ? 0 : f + d;
			}
		} else {
			/* where an operation began or ended, near the edge */
			struct tt_hist *h =
				&t.h[parent == t.mid_br ? H_MID_F0 : H_MAIN_F0];
			int64_t edge =
				tt_now_ns() -
				(int64_t)store_get_retention(t.s) * 1000000000 +
				20000000;
			size_t n = atomic_load(&h->n), k;

			for (k = n; k-- > 1;)
				if (h->ops[k].before_ns < edge)
					break;
			f = tt_rand(&rnd) % 2 ? h->ops[k].before :
						atomic_load(&h->ops[k].after);
			rc = f == UINT64_MAX ? -EAGAIN : 0;
		}
		if (rc == -ERANGE) {
			atomic_fetch_add(&t.nrefused_time, 1);
			usleep(1000);
			continue;
		}
		if (rc == -EAGAIN)
			continue;
		if (rc) {
			tt_fail("store_seq_at_time: %s", strerror(-rc));
			break;
		}
		memset(&a, 0, sizeof(a));
		snprintf(kp.name, sizeof(kp.name), "tt%d-%d", me->idx,
			 atomic_fetch_add(&t.name_seq, 1));
		a.name = kp.name;
		a.parent_id = parent;
		a.at_seq = f;
		rc = store_branch_create(t.s, &a, &bi);
		if (rc == -ERANGE) {
			atomic_fetch_add(&t.nrefused_create, 1);
			usleep(1000);
			continue;
		}
		if (rc) {
			tt_fail("create %s at seq %" PRIu64 ": %s", kp.name, f,
				strerror(-rc));
			break;
		}
		atomic_fetch_add(&t.ncreated, 1);
		if (bi.fork_seq != f) {
			tt_fail("%s: fork seq %" PRIu64 ", asked %" PRIu64,
				kp.name, bi.fork_seq, f);
			break;
		}
		kp.id = bi.id;
		kp.parent = parent;
		kp.fork = f;
		if (!tt_check_branch(kp.id, parent, f, kp.state, kp.name))
			break;
		if (when)
			tt_check_time(parent, when, kp.state);
		/* the kept ones, after whatever GC did since */
		for (i = 0; i < me->nkept; i++)
			tt_kept_check(&me->kept[i], "again");
		if (me->nkept == MAX_KEPT) {
			rc = store_branch_delete(t.s, me->kept[0].id);
			if (rc) {
				tt_fail("delete %s: %s", me->kept[0].name,
					strerror(-rc));
				break;
			}
			memmove(me->kept, me->kept + 1,
				(MAX_KEPT - 1) * sizeof(*me->kept));
			me->nkept--;
		}
		me->kept[me->nkept++] = kp;
		usleep((useconds_t)(tt_rand(&rnd) % 20000));
	}
	return NULL;
}

/* ---- setup ---- */

static int tt_rmrf_cb(const char *p, const struct stat *sb, int flag,
		      struct FTW *ftw)
{
	(void)sb;
	(void)ftw;
	if (flag == FTW_DP || flag == FTW_D)
		rmdir(p);
	else
		unlink(p);
	return 0;
}

static void tt_problem(void *ctx, const char *msg)
{
	(void)ctx;
	fprintf(stderr, "stress_timetravel: store_check: %s\n", msg);
}

static int tt_setup(void)
{
	struct store_branch_create_args a;
	struct store_branch_info bi;
	uint64_t ino;
	int i, rc;

	memset(&a, 0, sizeof(a));
	a.name = "main";
	a.root_mode = 0755;
	rc = store_branch_create(t.s, &a, &bi);
	if (rc)
		return rc;
	t.main_br = bi.id;
	t.h[H_MAIN_F0] = (struct tt_hist){ .br = bi.id,
					   .dir = bi.root_ino,
					   .name = "f0" };
	t.h[H_MAIN_F1] = (struct tt_hist){ .br = bi.id,
					   .dir = bi.root_ino,
					   .name = "f1" };
	atomic_store(&t.next_seed, 1);
	for (i = 0; i < NHIST; i++) {
		t.h[i].ops = calloc(MAX_OPS, sizeof(struct tt_op));
		if (!t.h[i].ops)
			return -ENOMEM;
	}
	for (i = H_MAIN_F0; i <= H_MAIN_F1; i++) {
		struct tt_hist *h = &t.h[i];
		struct tt_op *op = &h->ops[0];
		uint32_t seed = atomic_fetch_add(&t.next_seed, 1), b;

		rc = tt_mkfile(h, h->name, &ino);
		if (rc == 0)
			rc = tt_write_blocks(h->br, ino, 0, NBLK, seed);
		if (rc)
			return rc;
		op->exists = true;
		op->size = NBLK * BS;
		for (b = 0; b < NBLK; b++)
			op->seed[b] = seed;
		op->after_ns = tt_now_ns();
		atomic_store(&op->after, store_seq_now(t.s));
		atomic_store(&h->n, 1);
	}
	a.name = "mid";
	a.parent_id = t.main_br;
	a.at_seq = STORE_SEQ_LATEST;
	rc = store_branch_create(t.s, &a, &bi);
	if (rc)
		return rc;
	t.mid_br = bi.id;
	t.mid_fork = bi.fork_seq;
	t.h[H_MID_F0] = (struct tt_hist){ .br = bi.id,
					  .dir = bi.root_ino,
					  .name = "f0",
					  .ops = t.h[H_MID_F0].ops };
	t.h[H_MID_F0].ops[0] = t.h[H_MAIN_F0].ops[0];
	atomic_store(&t.h[H_MID_F0].ops[0].after, store_seq_now(t.s));
	atomic_store(&t.h[H_MID_F0].n, 1);
	return store_set_retention(t.s, 1);
}

int main(void)
{
	pthread_t wt[NHIST], gt[2], rt, bt[NBRANCHERS];
	static struct tt_brancher br[NBRANCHERS];
	struct store_check_report rep;
	struct store_config cfg;
	const char *v;
	unsigned secs, i;
	int rc, j;

	v = getenv("BRANCHFS_SEED");
	t.seed = v && *v ? strtoull(v, NULL, 0) : 2411;
	if (t.seed == 0)
		t.seed = 1;
	v = getenv("BRANCHFS_STRESS_SECS");
	secs = v && *v ? (unsigned)atoi(v) : 8;
	snprintf(t.dir, sizeof(t.dir), "%s/bfs-tt-XXXXXX",
		 getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp");
	if (!mkdtemp(t.dir)) {
		perror("mkdtemp");
		return 1;
	}
	memset(&cfg, 0, sizeof(cfg));
	cfg.create = true;
	cfg.cache_bytes = 16u << 20;
	rc = store_open(t.dir, &cfg, &t.s);
	if (rc == 0)
		rc = tt_setup();
	if (rc) {
		fprintf(stderr, "stress_timetravel: setup: %s\n",
			strerror(-rc));
		if (t.s)
			store_close(t.s);
		nftw(t.dir, tt_rmrf_cb, 16, FTW_DEPTH | FTW_PHYS);
		return 1;
	}
	for (j = 0; j < NHIST; j++)
		pthread_create(&wt[j], NULL, tt_writer, &t.h[j]);
	pthread_create(&gt[0], NULL, tt_gc, NULL);
	pthread_create(&gt[1], NULL, tt_gc, (void *)1);
	/* Branchers ask for moments a window back: let one pass first. */
	for (i = 0; i < 25 && !atomic_load(&t.stop); i++)
		usleep(100000);
	pthread_create(&rt, NULL, tt_retention, NULL);
	for (j = 0; j < NBRANCHERS; j++) {
		br[j].idx = j;
		pthread_create(&bt[j], NULL, tt_brancher, &br[j]);
	}
	for (i = 0; i < secs * 10 && !atomic_load(&t.stop); i++)
		usleep(100000);
	atomic_store(&t.stop, true);
	for (j = 0; j < NBRANCHERS; j++)
		pthread_join(bt[j], NULL);
	pthread_join(rt, NULL);
	pthread_join(gt[0], NULL);
	pthread_join(gt[1], NULL);
	for (j = 0; j < NHIST; j++)
		pthread_join(wt[j], NULL);

	if (!atomic_load(&t.failed)) {
		/* A last GC with a window past everything but the heads. */
		store_set_retention(t.s, 1);
		usleep(1100000);
		if (store_gc(t.s, NULL, NULL) != 0)
			tt_fail("last store_gc failed");
		for (j = 0; j < NBRANCHERS; j++)
			for (i = 0; i < br[j].nkept; i++)
				tt_kept_check(&br[j].kept[i], "at the end");
	}
	rc = store_close(t.s);
	t.s = NULL;
	if (rc)
		tt_fail("store_close = %s", strerror(-rc));
	cfg.create = false;
	if (!atomic_load(&t.failed)) {
		rc = store_open(t.dir, &cfg, &t.s);
		if (rc) {
			tt_fail("reopen = %s", strerror(-rc));
		} else {
			for (j = 0; j < NBRANCHERS; j++)
				for (i = 0; i < br[j].nkept; i++)
					tt_kept_check(&br[j].kept[i],
						      "after a reopen");
			memset(&rep, 0, sizeof(rep));
			rc = store_check(t.s, tt_problem, NULL, &rep);
			if (rc || rep.bad_blocks || rep.bad_records)
				tt_fail("store_check: %d, %" PRIu64
					" bad blocks, %" PRIu64 " bad records",
					rc, rep.bad_blocks, rep.bad_records);
			store_close(t.s);
		}
	}
	nftw(t.dir, tt_rmrf_cb, 16, FTW_DEPTH | FTW_PHYS);
	for (j = 0; j < NHIST; j++)
		free(t.h[j].ops);
	printf("stress_timetravel: %lu operations, %lu GCs (%lu busy), %lu "
	       "retention changes; %lu branches made at the window's edge, "
	       "%lu refused by the time lookup, %lu by the create; %lu "
	       "branch checks: %s\n",
	       atomic_load(&t.nops), atomic_load(&t.ngc),
	       atomic_load(&t.ngc_busy), atomic_load(&t.nretention),
	       atomic_load(&t.ncreated), atomic_load(&t.nrefused_time),
	       atomic_load(&t.nrefused_create), atomic_load(&t.nchecks),
	       atomic_load(&t.failed) ? "FAILED" : "ok");
	if (!atomic_load(&t.failed) &&
	    (atomic_load(&t.ncreated) < 10 ||
	     atomic_load(&t.nrefused_time) + atomic_load(&t.nrefused_create) ==
		     0)) {
		fprintf(stderr, "stress_timetravel: too few branches made or "
				"refused to have tested the edge\n");
		return 1;
	}
	return atomic_load(&t.failed) ? 1 : 0;
}
