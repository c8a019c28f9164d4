/* SPDX-License-Identifier: MIT */
/*
 * stress_store.c - concurrent stress test of the store, run under TSan.
 *
 * Threads, all on one real RocksDB store, for BRANCHFS_STRESS_SECS seconds
 * (default 20):
 *  - NWRITERS writers, each owning FILES_PER_WRITER files in branch
 *    "root": random unaligned writes, truncations, reads checked against
 *    the thread's own model, and as-of reads at seqs recorded earlier
 *    (exactly the state after that operation, because only the owner
 *    writes the file);
 *  - one brancher: creates branches of "root" at the head and (every
 *    third) at the seq just after a recent operation on an owned file,
 *    which must show that file exactly as it was then; deletes old ones;
 *    and checks that each new branch's copy of every owned file is one of
 *    the states the owner's history allows at the branch's fork seq,
 *    that it stays that way, and that writes into the branch are private;
 *    also creates and unlinks scratch files next to the owned ones and
 *    checks readdir still lists every owned file;
 *  - writers also share one "striped" file, each owning a 1000-byte
 *    stripe of each of its blocks (concurrent read-modify-writes of one
 *    block: a lost update shows), and call store_sync now and then;
 *  - NREADERS readers of a shared file written once before the start;
 *  - a branch reader reading from whatever branches exist while the
 *    brancher deletes them (-ENOENT is the only acceptable failure);
 *  - a GC thread running store_gc() every 300 ms with a 2 s retention
 *    window (as-of reads pick states from the last second);
 *  - NNS namespace threads racing create/unlink/rename/link among two
 *    shared directories; at the end every entry's inode exists with the
 *    right nlink and its content.  Threads that do not stop within 120 s
 *    of the end are reported as a deadlock.
 * At the end: every owned file against its model, before and after a
 * close and reopen; then the writers run 2 s more beside the read filters'
 * rebuild that the reopen starts, and every file is checked again.
 *
 * The fork check: each owner records, for its operation i, B_i =
 * store_seq_now() before it, A_i = store_seq_now() after it, and the hash
 * of the file after it (recorded before the call, A_i = infinity until it
 * returns).  The operation commits at some c_i with B_i < c_i <= A_i, and
 * c_i < c_{i+1}.  A branch forked at F shows state k with c_k <= F <
 * c_{k+1}; so k must satisfy B_k < F and A_{k+1} > F.
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

#define NWRITERS 3
#define FILES_PER_WRITER 2
#define NREADERS 1
#define FILE_MAX (64u * 1024u)
#define SHARED_SIZE (5u * STORE_BLOCK_SIZE + 123u)
#define MAX_LIVE_BRANCHES 6
#define STRIPE 1000u /* bytes of each block of "striped" a writer owns */
#define STRIPE_BLOCKS 3u
#define RETENTION_S 2u
#define NNS 2          /* namespace threads */
#define NS_NAMES 12
#define NTHREADS (NWRITERS + NREADERS + 3 + NNS)

struct stress_hist {
	uint64_t before, after; /* after == UINT64_MAX: in flight */
	int64_t after_ns;       /* wall clock when after was taken */
	uint64_t hash;
	uint32_t size;
};

struct stress_file {
	uint64_t ino;
	unsigned char data[FILE_MAX];
	uint32_t size;
	pthread_mutex_t lock; /* guards hist, nhist */
	struct stress_hist *hist;
	size_t nhist, cap;
};

struct stress {
	char dir[64];
	struct store *s;
	uint64_t br, root, shared, striped;
	uint64_t nsdir[2];
	uint64_t seed;
	atomic_bool stop;
	atomic_int failed;
	struct stress_file files[NWRITERS * FILES_PER_WRITER];
	unsigned char stripes[NWRITERS][STRIPE_BLOCKS * STRIPE];
	atomic_ulong nops, nbranches, nforkchecks, nasof, ngc, nsync, nns,
		npast;
	atomic_int done; /* threads that returned */
};

static struct stress st;

/* TSan hook (the name is TSan's): RocksDB is not built with TSan, so its
 * lock-free memtable synchronises through atomics TSan cannot see, while
 * its memcpy/memcmp calls are intercepted: every concurrent put and read
 * then shows up as a race inside librocksdb (and its block cache fills
 * blocks through the compression libraries it alone uses).  Ignore
 * interceptor calls made from those libraries; our own code stays fully
 * checked. */
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

static void stress_fail(const char *fmt, ...)
	__attribute__((format(printf, 1, 2)));

static void stress_fail(const char *fmt, ...)
{
	va_list ap;

	fprintf(stderr, "stress_store: FAIL (BRANCHFS_SEED=%" PRIu64 "): ",
		st.seed);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
	atomic_store(&st.failed, 1);
	atomic_store(&st.stop, true);
}

#define CHECK(cond, ...)                                                      \
	do {                                                                  \
		if (!(cond)) {                                                \
			stress_fail(__VA_ARGS__);                             \
			goto out;                                             \
		}                                                             \
	} while (0)

static uint64_t stress_rand(uint64_t *x)
{
	uint64_t z = (*x += 0x9E3779B97F4A7C15ull);

	z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
	z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
	return z ^ (z >> 31);
}

static uint32_t stress_below(uint64_t *x, uint32_t n)
{
	return n ? (uint32_t)(stress_rand(x) % n) : 0;
}

static uint64_t stress_hash(const unsigned char *p, size_t n)
{
	uint64_t h = 1469598103934665603ull ^ n;
	size_t i;

	for (i = 0; i < n; i++)
		h = (h ^ p[i]) * 1099511628211ull;
	return h;
}

static unsigned char stress_shared_byte(uint64_t off)
{
	return (unsigned char)((off * 2654435761u) >> 13) | 1;
}

static void stress_hist_push(struct stress_file *f, uint64_t before,
			     uint64_t hash, uint32_t size)
{
	pthread_mutex_lock(&f->lock);
	if (f->nhist == f->cap) {
		f->cap = f->cap ? f->cap * 2 : 1024;
		f->hist = realloc(f->hist, f->cap * sizeof(*f->hist));
		if (!f->hist)
			abort();
	}
	f->hist[f->nhist++] = (struct stress_hist){ .before = before,
						    .after = UINT64_MAX,
						    .hash = hash,
						    .size = size };
	pthread_mutex_unlock(&f->lock);
}

static int64_t stress_now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return (int64_t)ts.tv_sec * 1000000000ll + ts.tv_nsec;
}

static void stress_hist_done(struct stress_file *f, uint64_t after)
{
	pthread_mutex_lock(&f->lock);
	f->hist[f->nhist - 1].after = after;
	f->hist[f->nhist - 1].after_ns = stress_now_ns();
	pthread_mutex_unlock(&f->lock);
}

/* Does (size, hash) match a state of f allowed at fork seq F? */
static bool stress_hist_allows(struct stress_file *f, uint64_t F,
			       uint32_t size, uint64_t hash, size_t *ncand)
{
	bool ok = false;
	size_t k;

	*ncand = 0;
	pthread_mutex_lock(&f->lock);
	for (k = 0; k < f->nhist; k++) {
		const struct stress_hist *h = &f->hist[k];
		uint64_t next_after =
			k + 1 < f->nhist ? f->hist[k + 1].after : UINT64_MAX;

		if (k > 0 && h->before >= F)
			break;
		if (next_after <= F)
			continue;
		(*ncand)++;
		if (h->size == size && h->hash == hash) {
			ok = true;
			break;
		}
	}
	pthread_mutex_unlock(&f->lock);
	return ok;
}

/* ---- writers ---- */

static void *stress_writer(void *arg)
{
	int w = (int)(intptr_t)arg;
	uint64_t rng = st.seed * 1000003u + (uint64_t)w;
	unsigned char *buf = malloc(FILE_MAX + 4096);
	unsigned char *stripe = st.stripes[w];
	struct store *s = st.s;

	if (!buf)
		abort();
	while (!atomic_load(&st.stop)) {
		struct stress_file *f =
			&st.files[w * FILES_PER_WRITER +
				  (int)stress_below(&rng, FILES_PER_WRITER)];
		uint32_t r = stress_below(&rng, 100);
		uint32_t off, len, i;
		uint64_t before;
		ssize_t n;

		if (r < 45) { /* write */
			off = stress_below(&rng, FILE_MAX);
			len = 1 + stress_below(&rng, r < 20 ? 300 : 3 * STORE_BLOCK_SIZE);
			if (len > FILE_MAX - off)
				len = FILE_MAX - off;
			for (i = 0; i < len; i++)
				buf[i] = (unsigned char)stress_rand(&rng);
			memcpy(f->data + off, buf, len);
			if (off + len > f->size)
				f->size = off + len;
			before = store_seq_now(s);
			stress_hist_push(f, before,
					 stress_hash(f->data, f->size), f->size);
			n = store_write(s, st.br, f->ino, buf, len, off, NULL);
			CHECK(n == (ssize_t)len, "writer %d: write = %zd", w, n);
			stress_hist_done(f, store_seq_now(s));
		} else if (r < 55) { /* truncate */
			struct store_attr a;
			uint32_t size = stress_below(&rng, FILE_MAX + 1);
			int rc;

			if (size < f->size)
				memset(f->data + size, 0, f->size - size);
			f->size = size;
			memset(&a, 0, sizeof(a));
			a.size = size;
			before = store_seq_now(s);
			stress_hist_push(f, before,
					 stress_hash(f->data, f->size), f->size);
			rc = store_setattr(s, st.br, f->ino, &a, STORE_SET_SIZE,
					   NULL);
			CHECK(rc == 0, "writer %d: truncate = %d", w, rc);
			stress_hist_done(f, store_seq_now(s));
		} else if (r < 80) { /* read */
			uint32_t want;

			off = stress_below(&rng, f->size + 100);
			len = 1 + stress_below(&rng, 3 * STORE_BLOCK_SIZE);
			n = store_read(s, st.br, STORE_SEQ_LATEST, f->ino, buf,
				       len, off);
			want = off >= f->size ? 0 :
						(f->size - off < len ? f->size - off : len);
			CHECK(n == (ssize_t)want,
			      "writer %d: read ino %" PRIu64 " off %u len %u = %zd, want %u",
			      w, f->ino, off, len, n, want);
			CHECK(memcmp(buf, f->data + off, want) == 0,
			      "writer %d: read ino %" PRIu64 " off %u len %u: wrong data",
			      w, f->ino, off, len);
		} else if (r < 87) { /* as-of read of a past state */
			struct stress_hist h;
			size_t k;

			/* a state recorded in the last second: inside the
			 * retention window whatever the GC thread does */
			int64_t recent = stress_now_ns() - 1000000000ll;
			size_t lo;

			pthread_mutex_lock(&f->lock);
			for (lo = f->nhist - 1;
			     lo > 0 && f->hist[lo - 1].after_ns >= recent; lo--)
				;
			k = f->nhist - 1 > lo ?
				    lo + stress_below(&rng, (uint32_t)(f->nhist - 1 - lo)) :
				    f->nhist - 1;
			h = f->hist[k];
			pthread_mutex_unlock(&f->lock);
			if (h.after_ns < recent)
				continue;
			n = store_read(s, st.br, h.after, f->ino, buf,
				       FILE_MAX + 100, 0);
			CHECK(n == (ssize_t)h.size,
			      "writer %d: as-of read ino %" PRIu64 " at %" PRIu64 " = %zd, want %u",
			      w, f->ino, h.after, n, h.size);
			CHECK(stress_hash(buf, h.size) == h.hash,
			      "writer %d: as-of read ino %" PRIu64 " at %" PRIu64 ": wrong data",
			      w, f->ino, h.after);
			atomic_fetch_add(&st.nasof, 1);
		} else if (r < 97) { /* my stripes of the striped file */
			static const uint32_t nb = STRIPE_BLOCKS;
			uint32_t blk = stress_below(&rng, nb);
			uint64_t base = (uint64_t)blk * STORE_BLOCK_SIZE +
					(uint64_t)w * STRIPE;
			unsigned char *mine = stripe + blk * STRIPE;

			off = stress_below(&rng, STRIPE);
			len = 1 + stress_below(&rng, STRIPE - off);
			for (i = 0; i < len; i++)
				buf[i] = (unsigned char)stress_rand(&rng);
			n = store_write(s, st.br, st.striped, buf, len,
					base + off, NULL);
			CHECK(n == (ssize_t)len, "writer %d: striped write = %zd",
			      w, n);
			memcpy(mine + off, buf, len);
			n = store_read(s, st.br, STORE_SEQ_LATEST, st.striped,
				       buf, STRIPE, base);
			CHECK(n == (ssize_t)STRIPE,
			      "writer %d: striped read = %zd", w, n);
			CHECK(memcmp(buf, mine, STRIPE) == 0,
			      "writer %d: my stripe of block %u lost an update",
			      w, blk);
			if (stress_below(&rng, 20) == 0) {
				int rc = store_sync(s);

				CHECK(rc == 0, "writer %d: sync = %d", w, rc);
				atomic_fetch_add(&st.nsync, 1);
			}
		} else { /* shared file */
			off = stress_below(&rng, SHARED_SIZE);
			len = 1 + stress_below(&rng, 2 * STORE_BLOCK_SIZE);
			if (len > SHARED_SIZE - off)
				len = SHARED_SIZE - off;
			n = store_read(s, st.br, STORE_SEQ_LATEST, st.shared,
				       buf, len, off);
			CHECK(n == (ssize_t)len, "writer %d: shared read = %zd",
			      w, n);
			for (i = 0; i < len; i++)
				CHECK(buf[i] == stress_shared_byte(off + i),
				      "writer %d: shared byte %u wrong", w,
				      off + i);
		}
		atomic_fetch_add(&st.nops, 1);
	}
out:
	free(buf);
	atomic_fetch_add(&st.done, 1);
	return NULL;
}

/* ---- shared readers ---- */

static void *stress_reader(void *arg)
{
	uint64_t rng = st.seed * 7919u + (uint64_t)(intptr_t)arg;
	unsigned char *buf = malloc(SHARED_SIZE);

	if (!buf)
		abort();
	while (!atomic_load(&st.stop)) {
		uint32_t off = stress_below(&rng, SHARED_SIZE), i;
		uint32_t len = 1 + stress_below(&rng, SHARED_SIZE - off);
		ssize_t n = store_read(st.s, st.br, STORE_SEQ_LATEST, st.shared,
				       buf, len, off);
		struct store_attr a;
		int rc;

		CHECK(n == (ssize_t)len, "reader: shared read = %zd", n);
		for (i = 0; i < len; i++)
			CHECK(buf[i] == stress_shared_byte(off + i),
			      "reader: shared byte %u wrong", off + i);
		rc = store_getattr(st.s, st.br, STORE_SEQ_LATEST, st.shared, &a);
		CHECK(rc == 0 && a.size == SHARED_SIZE,
		      "reader: getattr = %d size %" PRIu64, rc, a.size);
		atomic_fetch_add(&st.nops, 1);
	}
out:
	free(buf);
	atomic_fetch_add(&st.done, 1);
	return NULL;
}

/* ---- brancher ---- */

static void *stress_brancher(void *arg)
{
	uint64_t rng = st.seed * 31337u;
	uint64_t live[MAX_LIVE_BRANCHES];
	unsigned char *buf = malloc(FILE_MAX + 4096);
	int nlive = 0, k = 0, rc, i;
	struct store *s = st.s;

	(void)arg;
	if (!buf)
		abort();
	while (!atomic_load(&st.stop)) {
		struct store_branch_create_args a;
		struct store_branch_info bi;
		uint64_t hashes[NWRITERS * FILES_PER_WRITER];
		struct stress_hist past;
		int past_file;
		uint32_t sizes[NWRITERS * FILES_PER_WRITER];
		char name[32];
		ssize_t n;

		if (nlive == MAX_LIVE_BRANCHES) {
			rc = store_branch_delete(s, live[0]);
			CHECK(rc == 0, "brancher: delete = %d", rc);
			memmove(live, live + 1, sizeof(live[0]) * --nlive);
		}
		snprintf(name, sizeof(name), "s%d", k++);
		memset(&a, 0, sizeof(a));
		a.name = name;
		a.parent_id = st.br;
		a.at_seq = STORE_SEQ_LATEST;
		past_file = -1;
		if (k % 3 == 0) {
			/* in the past: just after a recent operation on an
			 * owned file (inside the retention window, racing the
			 * GC's horizon) */
			struct stress_file *pf;
			int64_t recent = stress_now_ns() - 1000000000ll;

			past_file = (int)stress_below(
				&rng, NWRITERS * FILES_PER_WRITER);
			pf = &st.files[past_file];
			pthread_mutex_lock(&pf->lock);
			if (pf->nhist >= 2 &&
			    pf->hist[pf->nhist - 2].after_ns >= recent) {
				past = pf->hist[pf->nhist - 2];
				a.at_seq = past.after;
			} else {
				past_file = -1;
			}
			pthread_mutex_unlock(&pf->lock);
		}
		rc = store_branch_create(s, &a, &bi);
		CHECK(rc == 0, "brancher: create %s at %" PRIu64 " = %d", name,
		      a.at_seq, rc);
		live[nlive++] = bi.id;
		atomic_fetch_add(&st.nbranches, 1);
		if (past_file >= 0) {
			/* exactly the state after that operation */
			CHECK(bi.fork_seq == past.after,
			      "brancher: %s fork seq %" PRIu64 ", asked %" PRIu64,
			      name, bi.fork_seq, past.after);
			n = store_read(s, bi.id, STORE_SEQ_LATEST,
				       st.files[past_file].ino, buf,
				       FILE_MAX + 100, 0);
			CHECK(n == (ssize_t)past.size &&
				      stress_hash(buf, past.size) == past.hash,
			      "brancher: %s made at %" PRIu64 " does not show ino %" PRIu64 " as it was then (read %zd, want %u bytes)",
			      name, past.after, st.files[past_file].ino, n,
			      past.size);
			atomic_fetch_add(&st.npast, 1);
		}

		/* each owned file shows an allowed state at the fork seq */
		for (i = 0; i < NWRITERS * FILES_PER_WRITER; i++) {
			struct stress_file *f = &st.files[i];
			size_t ncand;

			n = store_read(s, bi.id, STORE_SEQ_LATEST, f->ino, buf,
				       FILE_MAX + 100, 0);
			CHECK(n >= 0, "brancher: read in %s = %zd", name, n);
			sizes[i] = (uint32_t)n;
			hashes[i] = stress_hash(buf, (size_t)n);
			CHECK(stress_hist_allows(f, bi.fork_seq, sizes[i],
						 hashes[i], &ncand),
			      "brancher: ino %" PRIu64 " in %s (fork seq %" PRIu64 ", size %u) matches none of %zu allowed states",
			      f->ino, name, bi.fork_seq, sizes[i], ncand);
			atomic_fetch_add(&st.nforkchecks, 1);
		}
		/* private writes in the branch; the shared file as well */
		n = store_write(s, bi.id, st.files[0].ino, "branchwrite", 11,
				stress_below(&rng, FILE_MAX), NULL);
		CHECK(n == 11, "brancher: write in %s = %zd", name, n);
		n = store_write(s, bi.id, st.shared, "x", 1,
				stress_below(&rng, SHARED_SIZE), NULL);
		CHECK(n == 1, "brancher: shared write in %s = %zd", name, n);
		/* scratch files next to the owned ones */
		{
			struct store_attr at;
			uint64_t ino;

			memset(&at, 0, sizeof(at));
			at.mode = S_IFREG | 0644;
			snprintf(name, sizeof(name), "tmp%d", k);
			rc = store_create(s, st.br, st.root, name, &at, NULL,
					  &ino, NULL);
			CHECK(rc == 0, "brancher: create %s = %d", name, rc);
			n = store_write(s, st.br, ino, buf, 100, 0, NULL);
			CHECK(n == 100, "brancher: scratch write = %zd", n);
			if (k % 2) {
				rc = store_unlink(s, st.br, st.root, name);
				CHECK(rc == 0, "brancher: unlink = %d", rc);
			}
		}
		{
			struct store_dirent *d = NULL;
			size_t nd = 0, j;
			int found = 0;

			rc = store_readdir(s, st.br, STORE_SEQ_LATEST, st.root,
					   &d, &nd);
			CHECK(rc == 0, "brancher: readdir = %d", rc);
			for (j = 0; j < nd; j++)
				for (i = 0; i < NWRITERS * FILES_PER_WRITER; i++)
					found += d[j].ino == st.files[i].ino;
			free(d);
			CHECK(found == NWRITERS * FILES_PER_WRITER,
			      "brancher: readdir shows %d owned files", found);
		}
		/* the branch did not move since its checks above */
		{
			for (i = 1; i < NWRITERS * FILES_PER_WRITER; i++) {
				n = store_read(s, bi.id, STORE_SEQ_LATEST,
					       st.files[i].ino, buf,
					       FILE_MAX + 100, 0);
				CHECK(n == (ssize_t)sizes[i] &&
					      stress_hash(buf, (size_t)n) ==
						      hashes[i],
				      "brancher: ino %" PRIu64 " changed in branch %" PRIu64,
				      st.files[i].ino, bi.id);
			}
		}
	}
out:
	free(buf);
	atomic_fetch_add(&st.done, 1);
	return NULL;
}

/* ---- namespace churn ----
 * NNS threads create, unlink, rename (plain, NOREPLACE, EXCHANGE) and link
 * files among two shared directories of "root" at random.  Races make
 * -ENOENT and -EEXIST expected; anything else is a failure.  At the end
 * the namespace must be consistent (stress_ns_verify). */

static void *stress_ns(void *arg)
{
	uint64_t rng = st.seed * 7777u + (uint64_t)(intptr_t)arg;
	struct store *s = st.s;

	while (!atomic_load(&st.stop)) {
		int d1 = (int)stress_below(&rng, 2), d2 = (int)stress_below(&rng, 2);
		char n1[16], n2[16];
		uint32_t r = stress_below(&rng, 100);
		uint64_t ino = 0;
		int rc;

		snprintf(n1, sizeof(n1), "n%u", stress_below(&rng, NS_NAMES));
		snprintf(n2, sizeof(n2), "n%u", stress_below(&rng, NS_NAMES));
		if (r < 25) {
			struct store_attr at;

			memset(&at, 0, sizeof(at));
			at.mode = S_IFREG | 0644;
			rc = store_create(s, st.br, st.nsdir[d1], n1, &at, NULL,
					  &ino, NULL);
			if (rc == 0) {
				ssize_t n = store_write(s, st.br, ino, n1,
							strlen(n1), 0, NULL);

				CHECK(n == (ssize_t)strlen(n1),
				      "ns: write to new file = %zd", n);
			}
		} else if (r < 45) {
			rc = store_unlink(s, st.br, st.nsdir[d1], n1);
		} else if (r < 85) {
			unsigned flags = r < 55 ? STORE_RENAME_NOREPLACE :
					 r < 62 ? STORE_RENAME_EXCHANGE : 0;

			if (d1 == d2 && strcmp(n1, n2) == 0)
				continue;
			rc = store_rename(s, st.br, st.nsdir[d1], n1,
					  st.nsdir[d2], n2, flags);
		} else if (r < 93) {
			rc = store_lookup(s, st.br, STORE_SEQ_LATEST,
					  st.nsdir[d1], n1, &ino);
			if (rc == 0)
				rc = store_link(s, st.br, ino, st.nsdir[d2], n2,
						NULL);
		} else {
			struct store_dirent *d = NULL;
			size_t n = 0, i;

			rc = store_readdir(s, st.br, STORE_SEQ_LATEST,
					   st.nsdir[d1], &d, &n);
			for (i = 1; rc == 0 && i < n; i++)
				CHECK(strcmp(d[i - 1].name, d[i].name) < 0,
				      "ns: readdir unsorted or duplicate '%s'",
				      d[i].name);
			free(d);
		}
		CHECK(rc == 0 || rc == -ENOENT || rc == -EEXIST,
		      "ns: op %u on %d/%s %d/%s = %d", r, d1, n1, d2, n2, rc);
		atomic_fetch_add(&st.nns, 1);
	}
out:
	atomic_fetch_add(&st.done, 1);
	return NULL;
}

/* Every entry names a live file whose nlink counts its entries, and whose
 * content is the name it was created under (writes never get lost in
 * renames).  Returns 1 on failure. */
static int stress_ns_verify(const char *when)
{
	struct { uint64_t ino; uint32_t links; } seen[2 * NS_NAMES];
	size_t nseen = 0, i, j;
	int d, bad = 0;

	for (d = 0; d < 2; d++) {
		struct store_dirent *de = NULL;
		size_t n = 0;
		int rc = store_readdir(st.s, st.br, STORE_SEQ_LATEST,
				       st.nsdir[d], &de, &n);

		if (rc) {
			fprintf(stderr, "stress_store: FAIL: %s: ns readdir = %d\n",
				when, rc);
			return 1;
		}
		for (i = 0; i < n; i++) {
			for (j = 0; j < nseen && seen[j].ino != de[i].ino; j++)
				;
			if (j == nseen) {
				seen[nseen].ino = de[i].ino;
				seen[nseen++].links = 0;
			}
			seen[j].links++;
		}
		free(de);
	}
	for (j = 0; j < nseen; j++) {
		struct store_attr a;
		char buf[16];
		ssize_t n;
		int rc = store_getattr(st.s, st.br, STORE_SEQ_LATEST,
				       seen[j].ino, &a);

		if (rc || a.nlink != seen[j].links) {
			fprintf(stderr,
				"stress_store: FAIL (BRANCHFS_SEED=%" PRIu64 "): %s: ns ino %" PRIu64 ": getattr %d, nlink %u, %u entries\n",
				st.seed, when, seen[j].ino, rc, rc ? 0 : a.nlink,
				seen[j].links);
			bad = 1;
			continue;
		}
		n = store_read(st.s, st.br, STORE_SEQ_LATEST, seen[j].ino, buf,
			       sizeof(buf) - 1, 0);
		if (n < 2 || buf[0] != 'n') {
			fprintf(stderr,
				"stress_store: FAIL (BRANCHFS_SEED=%" PRIu64 "): %s: ns ino %" PRIu64 " content (%zd bytes) lost\n",
				st.seed, when, seen[j].ino, n);
			bad = 1;
		}
	}
	fprintf(stderr, "stress_store: %s: namespace holds %zu files\n", when,
		nseen);
	return bad;
}

/* ---- branch reader ----
 * Reads from whatever branches exist, racing the brancher's deletes: a
 * branch that goes away mid-read gives -ENOENT, never a crash or garbage
 * sizes. */

static void *stress_branch_reader(void *arg)
{
	uint64_t rng = st.seed * 4243u;
	unsigned char *buf = malloc(FILE_MAX + 4096);

	(void)arg;
	if (!buf)
		abort();
	while (!atomic_load(&st.stop)) {
		struct store_branch_info *list = NULL;
		struct store_dirent *d = NULL;
		size_t n = 0, nd = 0;
		uint64_t id;
		ssize_t r;
		int rc, i;

		rc = store_branch_list(st.s, &list, &n);
		CHECK(rc == 0 && n > 0, "branch reader: list = %d", rc);
		id = list[stress_below(&rng, (uint32_t)n)].id;
		free(list);
		for (i = 0; i < NWRITERS * FILES_PER_WRITER; i++) {
			r = store_read(st.s, id, STORE_SEQ_LATEST,
				       st.files[i].ino, buf, FILE_MAX + 100, 0);
			/* the brancher's private writes may extend a file
			 * a little past FILE_MAX in its branches */
			CHECK(r == -ENOENT ||
				      (r >= 0 && r <= (ssize_t)FILE_MAX + 100),
			      "branch reader: read in %" PRIu64 " = %zd", id, r);
		}
		rc = store_readdir(st.s, id, STORE_SEQ_LATEST, st.root, &d, &nd);
		CHECK(rc == 0 || rc == -ENOENT,
		      "branch reader: readdir in %" PRIu64 " = %d", id, rc);
		free(d);
		atomic_fetch_add(&st.nops, 1);
	}
out:
	free(buf);
	atomic_fetch_add(&st.done, 1);
	return NULL;
}

/* ---- garbage collector ---- */

static void *stress_nothing(void *arg)
{
	atomic_fetch_add(&st.done, 1);
	return arg;
}

static void *stress_gc(void *arg)
{
	unsigned k = 0;

	(void)arg;
	while (!atomic_load(&st.stop)) {
		struct store_gc_opts opts = { 0 };
		struct timespec ts = { 0, 300000000L };
		int rc;

		opts.full_compaction = (k++ % 4) == 3;
		rc = store_gc(st.s, &opts, NULL);
		CHECK(rc == 0, "gc = %d", rc);
		atomic_fetch_add(&st.ngc, 1);
		nanosleep(&ts, NULL);
	}
out:
	atomic_fetch_add(&st.done, 1);
	return NULL;
}

static int stress_rm_cb(const char *p, const struct stat *sb, int flag,
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

static int stress_verify_all(const char *when)
{
	unsigned char *buf = malloc(FILE_MAX + 4096);
	int i, bad = 0;

	if (!buf)
		abort();
	for (i = 0; i < NWRITERS * FILES_PER_WRITER; i++) {
		struct stress_file *f = &st.files[i];
		ssize_t n = store_read(st.s, st.br, STORE_SEQ_LATEST, f->ino,
				       buf, FILE_MAX + 100, 0);

		if (n != (ssize_t)f->size ||
		    memcmp(buf, f->data, f->size) != 0) {
			fprintf(stderr,
				"stress_store: FAIL (BRANCHFS_SEED=%" PRIu64 "): %s: ino %" PRIu64 " read %zd, model %u bytes%s\n",
				st.seed, when, f->ino, n, f->size,
				n == (ssize_t)f->size ? " (content differs)" : "");
			bad = 1;
		}
	}
	for (i = 0; i < NWRITERS; i++) {
		uint32_t blk;

		for (blk = 0; blk < STRIPE_BLOCKS; blk++) {
			uint64_t base = (uint64_t)blk * STORE_BLOCK_SIZE +
					(uint64_t)i * STRIPE;
			ssize_t n = store_read(st.s, st.br, STORE_SEQ_LATEST,
					       st.striped, buf, STRIPE, base);

			if (n != (ssize_t)STRIPE ||
			    memcmp(buf, st.stripes[i] + blk * STRIPE, STRIPE)) {
				fprintf(stderr,
					"stress_store: FAIL (BRANCHFS_SEED=%" PRIu64 "): %s: stripe of writer %d in block %u wrong\n",
					st.seed, when, i, blk);
				bad = 1;
			}
		}
	}
	free(buf);
	return bad;
}

int main(void)
{
	pthread_t wt[NWRITERS], rt[NREADERS], nt[NNS], bt, gt, brt;
	struct store_config cfg;
	struct store_branch_create_args a;
	struct store_branch_info bi;
	const char *v;
	unsigned secs;
	int rc, i, bad = 0;
	unsigned char *shared;

	v = getenv("BRANCHFS_SEED");
	st.seed = v && *v ? strtoull(v, NULL, 0) : 424242;
	v = getenv("BRANCHFS_STRESS_SECS");
	secs = v && *v ? (unsigned)atoi(v) : 20;
	snprintf(st.dir, sizeof(st.dir), "%s/bfs-stress-XXXXXX",
		 getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp");
	if (!mkdtemp(st.dir)) {
		perror("mkdtemp");
		return 1;
	}
	memset(&cfg, 0, sizeof(cfg));
	cfg.create = true;
	cfg.cache_bytes = 16u << 20;
	rc = store_open(st.dir, &cfg, &st.s);
	if (rc) {
		fprintf(stderr, "stress_store: store_open = %d\n", rc);
		bad = 1;
		goto out_rm;
	}
	memset(&a, 0, sizeof(a));
	a.name = "root";
	a.root_mode = 0755;
	rc = store_branch_create(st.s, &a, &bi);
	if (rc) {
		fprintf(stderr, "stress_store: branch create = %d\n", rc);
		bad = 1;
		goto out_close;
	}
	st.br = bi.id;
	st.root = bi.root_ino;
	for (i = 0; i < NWRITERS * FILES_PER_WRITER; i++) {
		struct store_attr at;
		char name[32];

		memset(&at, 0, sizeof(at));
		at.mode = S_IFREG | 0644;
		snprintf(name, sizeof(name), "owned%d", i);
		pthread_mutex_init(&st.files[i].lock, NULL);
		rc = store_create(st.s, st.br, st.root, name, &at, NULL,
				  &st.files[i].ino, NULL);
		if (rc) {
			fprintf(stderr, "stress_store: create = %d\n", rc);
			bad = 1;
			goto out_close;
		}
		/* state 0: empty, since before any fork */
		stress_hist_push(&st.files[i], 0, stress_hash(NULL, 0), 0);
		stress_hist_done(&st.files[i], store_seq_now(st.s));
	}
	{
		struct store_attr at;

		memset(&at, 0, sizeof(at));
		at.mode = S_IFREG | 0644;
		rc = store_create(st.s, st.br, st.root, "shared", &at, NULL,
				  &st.shared, NULL);
		shared = malloc(SHARED_SIZE);
		if (rc || !shared) {
			fprintf(stderr, "stress_store: create shared = %d\n",
				rc);
			bad = 1;
			free(shared);
			goto out_close;
		}
		for (i = 0; i < (int)SHARED_SIZE; i++)
			shared[i] = stress_shared_byte((uint64_t)i);
		if (store_write(st.s, st.br, st.shared, shared, SHARED_SIZE, 0,
				NULL) != (ssize_t)SHARED_SIZE) {
			fprintf(stderr, "stress_store: shared write failed\n");
			bad = 1;
			free(shared);
			goto out_close;
		}
		free(shared);
		rc = store_create(st.s, st.br, st.root, "striped", &at, NULL,
				  &st.striped, NULL);
		if (rc == 0) {
			struct store_attr sa;

			memset(&sa, 0, sizeof(sa));
			sa.size = STRIPE_BLOCKS * STORE_BLOCK_SIZE;
			rc = store_setattr(st.s, st.br, st.striped, &sa,
					   STORE_SET_SIZE, NULL);
		}
		if (rc == 0)
			rc = store_set_retention(st.s, RETENTION_S);
		at.mode = S_IFDIR | 0755;
		if (rc == 0)
			rc = store_create(st.s, st.br, st.root, "nsA", &at,
					  NULL, &st.nsdir[0], NULL);
		if (rc == 0)
			rc = store_create(st.s, st.br, st.root, "nsB", &at,
					  NULL, &st.nsdir[1], NULL);
		if (rc) {
			fprintf(stderr, "stress_store: striped/retention = %d\n",
				rc);
			bad = 1;
			goto out_close;
		}
	}

	fprintf(stderr, "stress_store: seed %" PRIu64 ", %u s, %d writers, %d readers, %d namespace, 1 brancher, 1 gc\n",
		st.seed, secs, NWRITERS, NREADERS, NNS);
	for (i = 0; i < NWRITERS; i++)
		pthread_create(&wt[i], NULL, stress_writer, (void *)(intptr_t)i);
	for (i = 0; i < NREADERS; i++)
		pthread_create(&rt[i], NULL, stress_reader, (void *)(intptr_t)i);
	for (i = 0; i < NNS; i++)
		pthread_create(&nt[i], NULL, stress_ns, (void *)(intptr_t)i);
	pthread_create(&bt, NULL, stress_brancher, NULL);
	pthread_create(&brt, NULL, stress_branch_reader, NULL);
	v = getenv("BRANCHFS_STRESS_GC");
	if (!v || atoi(v) != 0)
		pthread_create(&gt, NULL, stress_gc, NULL);
	else
		pthread_create(&gt, NULL, stress_nothing, NULL);
	for (i = 0; i < (int)secs * 10 && !atomic_load(&st.stop); i++) {
		struct timespec ts = { 0, 100000000L };

		nanosleep(&ts, NULL);
	}
	atomic_store(&st.stop, true);
	/* a deadlock shows as threads that never return */
	for (i = 0; i < 1200 && atomic_load(&st.done) < NTHREADS; i++) {
		struct timespec ts = { 0, 100000000L };

		nanosleep(&ts, NULL);
	}
	if (atomic_load(&st.done) < NTHREADS) {
		fprintf(stderr,
			"stress_store: FAIL (BRANCHFS_SEED=%" PRIu64 "): %d of %d threads still running 120 s after stop: deadlock?\n",
			st.seed, NTHREADS - atomic_load(&st.done), NTHREADS);
		_exit(2);
	}
	for (i = 0; i < NNS; i++)
		pthread_join(nt[i], NULL);
	for (i = 0; i < NWRITERS; i++)
		pthread_join(wt[i], NULL);
	for (i = 0; i < NREADERS; i++)
		pthread_join(rt[i], NULL);
	pthread_join(bt, NULL);
	pthread_join(brt, NULL);
	pthread_join(gt, NULL);
	bad |= atomic_load(&st.failed);

	bad |= stress_verify_all("at the end");
	bad |= stress_ns_verify("at the end");
	rc = store_close(st.s);
	st.s = NULL;
	if (rc) {
		fprintf(stderr, "stress_store: close = %d\n", rc);
		bad = 1;
	}
	cfg.create = false;
	rc = store_open(st.dir, &cfg, &st.s);
	if (rc) {
		fprintf(stderr, "stress_store: reopen = %d\n", rc);
		bad = 1;
		goto out_rm;
	}
	bad |= stress_verify_all("after reopen");
	bad |= stress_ns_verify("after reopen");
	/* The writers once more, for 2 s from the reopen: beside
	 * the read filters' rebuild, which runs in a thread of the store
	 * after store_open (INV-6); what they wrote must read back through
	 * the rebuilt filters. */
	atomic_store(&st.stop, false);
	for (i = 0; i < NWRITERS; i++)
		pthread_create(&wt[i], NULL, stress_writer, (void *)(intptr_t)i);
	{
		struct timespec ts = { 2, 0 };

		nanosleep(&ts, NULL);
	}
	atomic_store(&st.stop, true);
	for (i = 0; i < NWRITERS; i++)
		pthread_join(wt[i], NULL);
	bad |= atomic_load(&st.failed);
	if (store_wait_filters(st.s, 120000) != 0) {
		fprintf(stderr, "stress_store: the read filters were not rebuilt\n");
		bad = 1;
	}
	bad |= stress_verify_all("after writes beside the filters' rebuild");
	fprintf(stderr,
		"stress_store: %lu ops, %lu namespace ops, %lu branches (%lu in the past), %lu fork checks, %lu as-of reads, %lu syncs, %lu gcs: %s\n",
		atomic_load(&st.nops), atomic_load(&st.nns),
		atomic_load(&st.nbranches), atomic_load(&st.npast),
		atomic_load(&st.nforkchecks), atomic_load(&st.nasof),
		atomic_load(&st.nsync), atomic_load(&st.ngc),
		bad ? "FAIL" : "ok");
out_close:
	if (st.s)
		store_close(st.s);
out_rm:
	nftw(st.dir, stress_rm_cb, 16, FTW_DEPTH | FTW_PHYS);
	for (i = 0; i < NWRITERS * FILES_PER_WRITER; i++)
		free(st.files[i].hist);
	return bad ? 1 : 0;
}
