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
 *  - one brancher: creates branches of "root" at the head, deletes old
 *    ones, and checks that each new branch's copy of every owned file is
 *    one of the states the owner's history allows at the branch's fork
 *    seq, that it stays that way, and that writes into the branch are
 *    private; also creates and unlinks scratch files next to the owned
 *    ones and checks readdir still lists every owned file;
 *  - NREADERS readers of a shared file written once before the start.
 * At the end: every owned file against its model, before and after a
 * close and reopen.
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

struct stress_hist {
	uint64_t before, after; /* after == UINT64_MAX: in flight */
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
	uint64_t br, root, shared;
	uint64_t seed;
	atomic_bool stop;
	atomic_int failed;
	struct stress_file files[NWRITERS * FILES_PER_WRITER];
	atomic_ulong nops, nbranches, nforkchecks, nasof;
};

static struct stress st;

/* TSan hook (the name is TSan's): RocksDB is not built with TSan, so its
 * lock-free memtable synchronises through atomics TSan cannot see, while
 * its memcpy/memcmp calls are intercepted: every concurrent put and read
 * then shows up as a race inside librocksdb.  Ignore interceptor calls made
 * from RocksDB itself; our own code stays fully checked. */
const char *__tsan_default_suppressions(void);
const char *__tsan_default_suppressions(void)
{
	return "called_from_lib:librocksdb.so\n"
	       "called_from_lib:libstdc++.so\n";
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
	f->hist[f->nhist++] = (struct stress_hist){ before, UINT64_MAX, hash,
						    size };
	pthread_mutex_unlock(&f->lock);
}

static void stress_hist_done(struct stress_file *f, uint64_t after)
{
	pthread_mutex_lock(&f->lock);
	f->hist[f->nhist - 1].after = after;
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
		} else if (r < 90) { /* read */
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
		} else if (r < 97) { /* as-of read of a past state */
			struct stress_hist h;
			size_t k;

			pthread_mutex_lock(&f->lock);
			k = f->nhist > 1 ? stress_below(&rng, (uint32_t)f->nhist - 1) : 0;
			h = f->hist[k];
			pthread_mutex_unlock(&f->lock);
			n = store_read(s, st.br, h.after, f->ino, buf,
				       FILE_MAX + 100, 0);
			CHECK(n == (ssize_t)h.size,
			      "writer %d: as-of read ino %" PRIu64 " at %" PRIu64 " = %zd, want %u",
			      w, f->ino, h.after, n, h.size);
			CHECK(stress_hash(buf, h.size) == h.hash,
			      "writer %d: as-of read ino %" PRIu64 " at %" PRIu64 ": wrong data",
			      w, f->ino, h.after);
			atomic_fetch_add(&st.nasof, 1);
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
		rc = store_branch_create(s, &a, &bi);
		CHECK(rc == 0, "brancher: create %s = %d", name, rc);
		live[nlive++] = bi.id;
		atomic_fetch_add(&st.nbranches, 1);

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
	free(buf);
	return bad;
}

int main(void)
{
	pthread_t wt[NWRITERS], rt[NREADERS], bt;
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
	}

	fprintf(stderr, "stress_store: seed %" PRIu64 ", %u s, %d writers, %d readers, 1 brancher\n",
		st.seed, secs, NWRITERS, NREADERS);
	for (i = 0; i < NWRITERS; i++)
		pthread_create(&wt[i], NULL, stress_writer, (void *)(intptr_t)i);
	for (i = 0; i < NREADERS; i++)
		pthread_create(&rt[i], NULL, stress_reader, (void *)(intptr_t)i);
	pthread_create(&bt, NULL, stress_brancher, NULL);
	for (i = 0; i < (int)secs * 10 && !atomic_load(&st.stop); i++) {
		struct timespec ts = { 0, 100000000L };

		nanosleep(&ts, NULL);
	}
	atomic_store(&st.stop, true);
	for (i = 0; i < NWRITERS; i++)
		pthread_join(wt[i], NULL);
	for (i = 0; i < NREADERS; i++)
		pthread_join(rt[i], NULL);
	pthread_join(bt, NULL);
	bad |= atomic_load(&st.failed);

	bad |= stress_verify_all("at the end");
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
	fprintf(stderr,
		"stress_store: %lu ops, %lu branches, %lu fork checks, %lu as-of reads: %s\n",
		atomic_load(&st.nops), atomic_load(&st.nbranches),
		atomic_load(&st.nforkchecks), atomic_load(&st.nasof),
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
