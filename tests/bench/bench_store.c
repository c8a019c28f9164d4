/* SPDX-License-Identifier: MIT */
/*
 * bench_store.c - micro-benchmarks of the branchfs store (store/store.h),
 * printed side by side with a plain ext4 file where a peer makes sense.
 *
 * What it measures, in one run, in a fresh temporary directory that is
 * removed at the end (also after a failed API call or SIGINT/SIGTERM):
 *
 *  1. Branch creation time against the amount of data in the parent:
 *     N children of a parent holding nothing, ~1 GiB and ~BENCH_BIG_GIB
 *     GiB (default 10) of incompressible written blocks.  "create" is
 *     store_branch_create() alone, "create+sync" adds the store_sync()
 *     that makes the new branch durable.  The reference cost of one WAL
 *     sync is measured as the median fdatasync() of a small append on the
 *     same filesystem.  Target: create < 1 ms, create+sync < 1 ms + one
 *     sync, and no growth with the parent's size.
 *  2. 8 KiB sequential write, sequential read, random write and random
 *     read on a 1 GiB file (BENCH_IO_MIB), in the store and, as the
 *     peer, on a plain ext4 file with pwrite/pread.  Neither side syncs;
 *     the ext4 file is in the page cache (warm), as the store's SST files
 *     are.  Sequential reads check a per-block stamp, so both sides must
 *     really return the data written.
 *  3. Random 8 KiB reads in a branch at ancestry depth 0, 1, 32 and 128:
 *     the data lives in the root of a chain of branches and each level
 *     writes a few blocks of its own.  Rounds are interleaved and the
 *     median round is kept.  Target: depth32 / depth1 >= 0.8.
 *  4. Store bytes added per branch: store_stats() disk_bytes (st_blocks of
 *     the store's files) of a small store after close and reopen (RocksDB
 *     flushes the recovered WAL into an SST then), then again after N
 *     creations + store_sync() + close + reopen, divided by N.  Both
 *     states are "reopened" because RocksDB preallocates its WAL, which
 *     hides growth until a flush; the after-sync delta is printed too.  A
 *     separate small store, so that compactions of the big one do not
 *     blur the figure; RocksDB's LOG and MANIFEST growth is included.
 *     Target: < 4 KiB per branch.
 *  5. Branch operations beside I/O on another branch: a second thread
 *     writes 8 KiB blocks to a file of branch "io" (no sync) and times
 *     each write, first alone and then while the main thread renames
 *     another branch back and forth (each rename synced before it
 *     returns).  The writer's median, 99th percentile and maximum are
 *     printed for both phases, with the renames' own times: a branch
 *     operation must not stall other branches for its sync.
 *
 *  6. Reads that miss beside deleted branches: in a fresh small store,
 *     the median store_lookup() of a missing name in main (2000 lookups)
 *     when the store is new (reopened, so its keys are in files), right
 *     after N branches of main were made and deleted (every other one
 *     wrote a block first), after a close and reopen, and after
 *     store_drop_deleted() (what GC does with them), with the deletes'
 *     and the drop's own times.  Builds that dropped a deleted branch's
 *     keys with a range deletion at once made such lookups 16x slower
 *     after 200 deletes and 36x once the deletions were in files (see
 *     tests/bench/HISTORY.md).  Target: every row within 1.5x of the new
 *     store.

 * Written data comes from a xorshift64* pool, so zstd cannot shrink it,
 * with every 8 KiB block stamped with a unique counter (no two blocks are
 * equal).  Times come from CLOCK_MONOTONIC.  MB is 10^6 bytes.
 *
 * Environment: BENCH_QUICK=1 (everything small, a smoke run of a few
 * seconds), BENCH_BIG_GIB (default 10), BENCH_IO_MIB (default 1024),
 * BENCH_TMPDIR (default $TMPDIR or /tmp).  The final summary prints each
 * target with PASS or MISS; it is informational and the exit status is 0
 * unless a store call or a system call fails.
 *
 * Not measured here: FUSE overhead and Postgres (see pg_bench.sh).
 */
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <pthread.h>
#include <inttypes.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "store/store.h"

#define BENCH_BS ((uint64_t)STORE_BLOCK_SIZE)
#define BENCH_MIB (UINT64_C(1) << 20)
#define BENCH_GIB (UINT64_C(1) << 30)
#define BENCH_FILL_CHUNK (1024 * 1024)
#define BENCH_DEPTH_WRITES 4 /* blocks each chain level writes */
#define BENCH_DEPTH_ROUNDS 3

struct bench_cfg {
	bool quick;
	uint64_t small_bytes;   /* the "1 GiB" parent */
	uint64_t big_bytes;     /* the "10 GiB" parent */
	uint64_t io_bytes;      /* file size of the 8 KiB I/O test */
	unsigned ncreate;       /* creations per parent size */
	unsigned depth_max;     /* length of the ancestry chain */
	unsigned depth_reads;   /* random reads per depth and round */
	unsigned per_branch_n;  /* creations for the bytes-per-branch figure */
	size_t pool_bytes;      /* random data pool */
};

struct bench_lat {
	double med_us;
	double max_us;
};

struct bench_rate {
	double secs;
	uint64_t ops;
	uint64_t bytes;
};

/* One run's state.  Only section 5 runs a second thread (a writer that
 * shares the store and reads the pool); the signal handler only reads
 * tmpdir. */
struct bench {
	struct bench_cfg cfg;
	char tmpdir[4096];
	struct store *s;
	uint8_t *pool;
	uint64_t stamp; /* next block stamp */
	uint64_t next_name;
};

static char bench_tmpdir_for_signal[4096];

static int bench_rm_cb(const char *path, const struct stat *sb, int type,
		       struct FTW *ftw)
{
	(void)sb;
	(void)ftw;
	if (type == FTW_DP)
		rmdir(path);
	else
		unlink(path);
	return 0; /* best effort: keep walking */
}

static void bench_rm_tree(const char *dir)
{
	if (dir[0] != '\0')
		nftw(dir, bench_rm_cb, 32, FTW_DEPTH | FTW_PHYS);
}

static void bench_on_signal(int sig)
{
	/* Best effort: the process is going away anyway. */
	bench_rm_tree(bench_tmpdir_for_signal);
	signal(sig, SIG_DFL);
	raise(sig);
}

static void bench_die(struct bench *b, const char *what, int rc)
{
	fprintf(stderr, "bench_store: %s failed: %s\n", what, strerror(-rc));
	if (b->s != NULL)
		store_close(b->s);
	b->s = NULL;
	bench_rm_tree(b->tmpdir);
	exit(1);
}

#define BENCH_CHECK(b, call)                                                   \
	do {                                                                   \
		int rc_ = (int)(call);                                         \
		if (rc_ < 0)                                                   \
			bench_die((b), #call, rc_);                            \
	} while (0)

static void bench_log(void *ctx, int level, const char *msg)
{
	(void)ctx;
	fprintf(stderr, "store[%d]: %s\n", level, msg);
}

static uint64_t bench_now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static uint64_t bench_rand(uint64_t *st)
{
	uint64_t x = *st;

	x ^= x >> 12;
	x ^= x << 25;
	x ^= x >> 27;
	*st = x;
	return x * UINT64_C(0x2545F4914F6CDD1D);
}

static uint64_t bench_env_u64(const char *name, uint64_t dflt)
{
	const char *v = getenv(name);
	char *end;
	unsigned long long x;

	if (v == NULL || *v == '\0')
		return dflt;
	errno = 0;
	x = strtoull(v, &end, 10);
	if (errno != 0 || *end != '\0' || x == 0) {
		fprintf(stderr, "bench_store: ignoring bad %s='%s'\n", name, v);
		return dflt;
	}
	return x;
}

static void bench_cfg_init(struct bench_cfg *c)
{
	const char *q = getenv("BENCH_QUICK");

	c->quick = q != NULL && strcmp(q, "1") == 0;
	if (c->quick) {
		c->small_bytes = 16 * BENCH_MIB;
		c->big_bytes = 64 * BENCH_MIB;
		c->io_bytes = 32 * BENCH_MIB;
		c->ncreate = 20;
		c->depth_max = 128;
		c->depth_reads = 3000;
		c->per_branch_n = 200;
		c->pool_bytes = 4 * BENCH_MIB;
	} else {
		c->small_bytes = BENCH_GIB;
		c->big_bytes = bench_env_u64("BENCH_BIG_GIB", 10) * BENCH_GIB;
		c->io_bytes = bench_env_u64("BENCH_IO_MIB", 1024) * BENCH_MIB;
		c->ncreate = 50;
		c->depth_max = 128;
		c->depth_reads = 50000;
		c->per_branch_n = 1000;
		c->pool_bytes = 64 * BENCH_MIB;
	}
	if (c->big_bytes < c->small_bytes)
		c->big_bytes = c->small_bytes;
}

/* Copy len bytes (a multiple of the block size) of pool data into buf,
 * stamping each block with the next counter value. */
static void bench_fill(struct bench *b, uint8_t *buf, size_t len,
		       uint64_t pick)
{
	size_t nslices = b->cfg.pool_bytes / BENCH_BS;

	for (size_t off = 0; off < len; off += BENCH_BS) {
		size_t slice = (size_t)((pick + off / BENCH_BS) % nslices);

		memcpy(buf + off, b->pool + slice * BENCH_BS, BENCH_BS);
		memcpy(buf + off, &b->stamp, sizeof(b->stamp));
		b->stamp++;
	}
}

static int bench_cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;

	return x < y ? -1 : x > y;
}

static struct bench_lat bench_lat_of(uint64_t *ns, unsigned n)
{
	struct bench_lat l;

	qsort(ns, n, sizeof(*ns), bench_cmp_u64);
	l.med_us = (n % 2 ? (double)ns[n / 2]
			  : ((double)ns[n / 2 - 1] + (double)ns[n / 2]) / 2) /
		   1e3;
	l.max_us = (double)ns[n - 1] / 1e3;
	return l;
}

static double bench_mbps(const struct bench_rate *r)
{
	return r->secs > 0 ? (double)r->bytes / 1e6 / r->secs : 0;
}

static double bench_opsps(const struct bench_rate *r)
{
	return r->secs > 0 ? (double)r->ops / r->secs : 0;
}

static void bench_fmt_size(char *buf, size_t sz, uint64_t bytes)
{
	if (bytes >= BENCH_GIB && bytes % BENCH_GIB == 0)
		snprintf(buf, sz, "%" PRIu64 " GiB", bytes / BENCH_GIB);
	else
		snprintf(buf, sz, "%" PRIu64 " MiB", bytes / BENCH_MIB);
}

static void bench_open_store(struct bench *b, const char *dir,
			     struct store **out)
{
	struct store_config cfg = {
		.log = { .fn = bench_log, .ctx = NULL, .level = STORE_LOG_WARN },
		.create = true,
	};

	BENCH_CHECK(b, store_open(dir, &cfg, out));
}

static uint64_t bench_branch(struct bench *b, struct store *s,
			     const char *name, uint64_t parent,
			     struct store_branch_info *info_out)
{
	struct store_branch_create_args a = {
		.name = name,
		.parent_id = parent,
		.at_seq = STORE_SEQ_LATEST,
		.owner_uid = getuid(),
		.root_mode = 0755,
		.root_uid = getuid(),
		.root_gid = getgid(),
	};
	struct store_branch_info info;

	BENCH_CHECK(b, store_branch_create(s, &a, &info));
	if (info_out != NULL)
		*info_out = info;
	return info.id;
}

static uint64_t bench_new_file(struct bench *b, struct store *s,
			       uint64_t branch, uint64_t dir, const char *name)
{
	struct store_attr a;
	uint64_t ino;

	memset(&a, 0, sizeof(a));
	a.mode = S_IFREG | 0644;
	a.uid = getuid();
	a.gid = getgid();
	clock_gettime(CLOCK_REALTIME, &a.mtime);
	a.atime = a.ctime = a.mtime;
	BENCH_CHECK(b, store_create(s, branch, dir, name, &a, NULL, &ino, NULL));
	return ino;
}

/* Write bytes of stamped pool data to (branch, ino) from offset 0 in
 * 1 MiB calls; returns the seconds it took. */
static double bench_fill_file(struct bench *b, uint64_t branch, uint64_t ino,
			      uint64_t start, uint64_t bytes)
{
	uint8_t *buf = malloc(BENCH_FILL_CHUNK);
	uint64_t t0 = bench_now_ns();

	if (buf == NULL)
		bench_die(b, "malloc", -ENOMEM);
	for (uint64_t off = 0; off < bytes; off += BENCH_FILL_CHUNK) {
		size_t len = bytes - off < BENCH_FILL_CHUNK
				     ? (size_t)(bytes - off)
				     : BENCH_FILL_CHUNK;

		bench_fill(b, buf, len, off / BENCH_BS);
		BENCH_CHECK(b, store_write(b->s, branch, ino, buf, len,
					   start + off, NULL));
	}
	BENCH_CHECK(b, store_sync(b->s));
	free(buf);
	return (double)(bench_now_ns() - t0) / 1e9;
}

/* ---- 1. branch creation against parent size ---- */

struct bench_create_row {
	uint64_t parent_bytes;
	double fill_secs; /* time to write the data that was added */
	struct bench_lat create;
	struct bench_lat create_sync;
};

static void bench_create_row(struct bench *b, uint64_t parent,
			     struct bench_create_row *row)
{
	unsigned n = b->cfg.ncreate;
	uint64_t *c = calloc(n, sizeof(*c)), *cs = calloc(n, sizeof(*cs));
	char name[64];

	if (c == NULL || cs == NULL)
		bench_die(b, "calloc", -ENOMEM);
	for (unsigned i = 0; i < n; i++) {
		uint64_t t0, t1, t2;

		snprintf(name, sizeof(name), "c%06" PRIu64, b->next_name++);
		t0 = bench_now_ns();
		bench_branch(b, b->s, name, parent, NULL);
		t1 = bench_now_ns();
		BENCH_CHECK(b, store_sync(b->s));
		t2 = bench_now_ns();
		c[i] = t1 - t0;
		cs[i] = t2 - t0;
	}
	row->create = bench_lat_of(c, n);
	row->create_sync = bench_lat_of(cs, n);
	free(c);
	free(cs);
}

/* Median fdatasync() of a 128-byte append: what one WAL sync costs here. */
static struct bench_lat bench_fsync_ref(struct bench *b)
{
	char path[4200];
	char rec[128];
	uint64_t ns[50];
	int fd;

	snprintf(path, sizeof(path), "%s/fsync_ref", b->tmpdir);
	fd = open(path, O_WRONLY | O_CREAT | O_APPEND, 0644);
	if (fd < 0)
		bench_die(b, "open fsync_ref", -errno);
	memset(rec, 'w', sizeof(rec));
	for (unsigned i = 0; i < 50; i++) {
		uint64_t t0 = bench_now_ns();

		if (write(fd, rec, sizeof(rec)) != (ssize_t)sizeof(rec) ||
		    fdatasync(fd) < 0)
			bench_die(b, "write+fdatasync fsync_ref", -errno);
		ns[i] = bench_now_ns() - t0;
	}
	close(fd);
	unlink(path);
	return bench_lat_of(ns, 50);
}

/* ---- 2. 8 KiB I/O, store and ext4 ---- */

enum bench_io_kind {
	BENCH_SEQ_WRITE,
	BENCH_SEQ_READ,
	BENCH_RAND_WRITE,
	BENCH_RAND_READ,
	BENCH_IO_KINDS,
};

/* ---- 5. branch operations beside I/O on another branch ---- */

struct bench_stall {
	struct bench *b;
	uint64_t branch, ino, nblocks;
	_Atomic bool stop;
	uint64_t *ns; /* per write, up to cap */
	unsigned n, cap;
	int rc;
};

static void *bench_stall_writer(void *arg)
{
	struct bench_stall *w = arg;
	uint8_t *buf = malloc(BENCH_BS);
	uint64_t rng = 99;

	if (buf == NULL) {
		w->rc = -ENOMEM;
		return NULL;
	}
	memcpy(buf, w->b->pool, BENCH_BS);
	while (!atomic_load(&w->stop) && w->n < w->cap) {
		uint64_t blk = bench_rand(&rng) % w->nblocks, t0 = bench_now_ns();
		ssize_t r = store_write(w->b->s, w->branch, w->ino, buf,
					BENCH_BS, blk * BENCH_BS, NULL);

		if (r < 0) {
			w->rc = (int)r;
			break;
		}
		w->ns[w->n++] = bench_now_ns() - t0;
	}
	free(buf);
	return NULL;
}

struct bench_stall_row {
	struct bench_lat lat;
	double p99_us;
	unsigned n;
};

static struct bench_stall_row bench_stall_row_of(uint64_t *ns, unsigned n)
{
	struct bench_stall_row r;

	r.n = n;
	r.lat = bench_lat_of(ns, n); /* sorts */
	r.p99_us = (double)ns[(size_t)n * 99 / 100] / 1e3;
	return r;
}

/* One phase: the writer runs for ms milliseconds; with nrename > 0 the
 * main thread renames branch id back and forth that many times meanwhile
 * (their times into ren_ns) and the phase lasts until they are done. */
static struct bench_stall_row bench_stall_phase(struct bench *b,
						struct bench_stall *w,
						unsigned ms, uint64_t id,
						unsigned nrename,
						uint64_t *ren_ns)
{
	pthread_t th;

	w->n = 0;
	w->rc = 0;
	atomic_store(&w->stop, false);
	if (pthread_create(&th, NULL, bench_stall_writer, w) != 0)
		bench_die(b, "pthread_create", -EAGAIN);
	if (nrename == 0) {
		struct timespec ts = { ms / 1000, (long)(ms % 1000) * 1000000 };

		nanosleep(&ts, NULL);
	}
	for (unsigned i = 0; i < nrename; i++) {
		uint64_t t0 = bench_now_ns();

		BENCH_CHECK(b, store_branch_rename(b->s, id,
						   i % 2 ? "stall-a" : "stall-b"));
		ren_ns[i] = bench_now_ns() - t0;
	}
	atomic_store(&w->stop, true);
	pthread_join(th, NULL);
	if (w->rc)
		bench_die(b, "store_write (writer thread)", w->rc);
	if (w->n == 0)
		bench_die(b, "writer thread wrote nothing", -EIO);
	return bench_stall_row_of(w->ns, w->n);
}

/* The 1-minute load average, to tell a reader how busy the machine was. */
static double bench_loadavg(void)
{
	double l = -1;
	FILE *f = fopen("/proc/loadavg", "r");

	if (f != NULL) {
		if (fscanf(f, "%lf", &l) != 1)
			l = -1;
		fclose(f);
	}
	return l;
}

static const char *const bench_io_names[BENCH_IO_KINDS] = {
	"seq write", "seq read", "rand write", "rand read",
};

/* The target of an I/O pass: a store file or an ext4 fd. */
struct bench_io_target {
	struct store *s;
	uint64_t branch;
	uint64_t ino;
	int fd; /* >= 0: ext4 */
};

static ssize_t bench_io_write(const struct bench_io_target *t,
			      const void *buf, uint64_t off)
{
	if (t->fd >= 0)
		return pwrite(t->fd, buf, BENCH_BS, (off_t)off) < 0 ? -errno
								     : (ssize_t)BENCH_BS;
	return store_write(t->s, t->branch, t->ino, buf, BENCH_BS, off, NULL);
}

static ssize_t bench_io_read(const struct bench_io_target *t, void *buf,
			     uint64_t off)
{
	if (t->fd >= 0) {
		ssize_t n = pread(t->fd, buf, BENCH_BS, (off_t)off);

		return n < 0 ? -errno : n;
	}
	return store_read(t->s, t->branch, STORE_SEQ_LATEST, t->ino, buf,
			  BENCH_BS, off);
}

/* Random ops count as many 8 KiB operations as the file has blocks. */
static void bench_io_pass(struct bench *b, const struct bench_io_target *t,
			  enum bench_io_kind kind, uint64_t stamp_base,
			  struct bench_rate *out)
{
	uint64_t nblocks = b->cfg.io_bytes / BENCH_BS;
	uint64_t rng = UINT64_C(0x9E3779B97F4A7C15) ^ (uint64_t)kind;
	uint8_t *buf = aligned_alloc(4096, BENCH_BS);
	uint64_t t0;
	const char *what = t->fd >= 0 ? "ext4 I/O" : "store I/O";

	if (buf == NULL)
		bench_die(b, "aligned_alloc", -ENOMEM);
	t0 = bench_now_ns();
	for (uint64_t i = 0; i < nblocks; i++) {
		uint64_t blk = i;
		ssize_t n;

		if (kind == BENCH_RAND_WRITE || kind == BENCH_RAND_READ)
			blk = bench_rand(&rng) % nblocks;
		if (kind == BENCH_SEQ_WRITE || kind == BENCH_RAND_WRITE) {
			bench_fill(b, buf, BENCH_BS, blk);
			n = bench_io_write(t, buf, blk * BENCH_BS);
		} else {
			n = bench_io_read(t, buf, blk * BENCH_BS);
		}
		if (n < 0)
			bench_die(b, what, (int)n);
		if (n != (ssize_t)BENCH_BS)
			bench_die(b, "short 8 KiB I/O", -EIO);
		if (kind == BENCH_SEQ_READ) {
			uint64_t st;

			memcpy(&st, buf, sizeof(st));
			if (st != stamp_base + i) {
				fprintf(stderr,
					"bench_store: %s: block %" PRIu64
					" has stamp %" PRIu64 ", wrote %" PRIu64 "\n",
					what, i, st, stamp_base + i);
				bench_die(b, "data check", -EIO);
			}
		}
	}
	out->secs = (double)(bench_now_ns() - t0) / 1e9;
	out->ops = nblocks;
	out->bytes = nblocks * BENCH_BS;
	free(buf);
}

static void bench_io_all(struct bench *b, const struct bench_io_target *t,
			 struct bench_rate res[BENCH_IO_KINDS])
{
	uint64_t base = b->stamp;

	for (int k = 0; k < BENCH_IO_KINDS; k++)
		bench_io_pass(b, t, (enum bench_io_kind)k, base, &res[k]);
}

/* ---- 3. ancestry depth ---- */

static struct bench_rate bench_depth_pass(struct bench *b, uint64_t branch,
					  uint64_t ino, uint64_t nblocks,
					  uint8_t *buf)
{
	struct bench_rate r;
	uint64_t rng = UINT64_C(0xD1B54A32D192ED03);
	uint64_t t0 = bench_now_ns();

	for (unsigned i = 0; i < b->cfg.depth_reads; i++) {
		uint64_t blk = bench_rand(&rng) % nblocks;
		ssize_t n = store_read(b->s, branch, STORE_SEQ_LATEST, ino, buf,
				       BENCH_BS, blk * BENCH_BS);

		if (n < 0)
			bench_die(b, "store_read (depth)", (int)n);
		if (n != (ssize_t)BENCH_BS)
			bench_die(b, "short store_read (depth)", -EIO);
	}
	r.secs = (double)(bench_now_ns() - t0) / 1e9;
	r.ops = b->cfg.depth_reads;
	r.bytes = r.ops * BENCH_BS;
	return r;
}

static int bench_cmp_rate(const void *a, const void *b)
{
	double x = ((const struct bench_rate *)a)->secs;
	double y = ((const struct bench_rate *)b)->secs;

	return x < y ? -1 : x > y;
}

/* ---- 4. bytes per branch ---- */

struct bench_per_branch {
	unsigned n;
	uint64_t before, after_sync, after_reopen;
	double per_sync, per_reopen; /* bytes per branch */
	/* per_reopen is the figure: after_sync still holds the preallocated
	 * WAL of the "before" state's first write. */
};

static void bench_bytes_per_branch(struct bench *b, struct bench_per_branch *r)
{
	char dir[4200], name[64];
	struct store *s;
	struct store_stats st;
	struct store_branch_info main_info;
	uint64_t ino;
	struct store *saved = b->s;

	snprintf(dir, sizeof(dir), "%s/store_small", b->tmpdir);
	bench_open_store(b, dir, &s);
	b->s = s; /* so that bench_die closes it */
	bench_branch(b, s, "main", 0, &main_info);
	ino = bench_new_file(b, s, main_info.id, main_info.root_ino, "data");
	bench_fill_file(b, main_info.id, ino, 0, 8 * BENCH_MIB);
	/* Settle first: RocksDB preallocates the WAL (st_blocks jump by the
	 * memtable size at the first write), so compare two reopened states,
	 * in which the WAL has been flushed into SST files. */
	b->s = NULL;
	BENCH_CHECK(b, store_close(s));
	bench_open_store(b, dir, &s);
	b->s = s;
	BENCH_CHECK(b, store_stats(s, &st));
	r->n = b->cfg.per_branch_n;
	r->before = st.disk_bytes;
	for (unsigned i = 0; i < r->n; i++) {
		snprintf(name, sizeof(name), "p%06u", i);
		bench_branch(b, s, name, main_info.id, NULL);
	}
	BENCH_CHECK(b, store_sync(s));
	BENCH_CHECK(b, store_stats(s, &st));
	r->after_sync = st.disk_bytes;
	b->s = NULL;
	BENCH_CHECK(b, store_close(s));
	bench_open_store(b, dir, &s);
	b->s = s;
	BENCH_CHECK(b, store_stats(s, &st));
	r->after_reopen = st.disk_bytes;
	b->s = NULL;
	BENCH_CHECK(b, store_close(s));
	b->s = saved;
	r->per_sync = ((double)r->after_sync - (double)r->before) / r->n;
	r->per_reopen = ((double)r->after_reopen - (double)r->before) / r->n;
}

struct bench_deleted {
	unsigned n;
	double fresh_us, deleted_us, reopened_us, dropped_us;
	double delete_med_us, drop_ms;
};

/* Median us of 2000 lookups of missing names in (branch, dir). */
static double bench_miss_us(struct bench *b, struct store *s, uint64_t branch,
			    uint64_t dir)
{
	enum { N = 2000 };
	static uint64_t ns[N];
	char name[64];
	uint64_t ino;

	for (unsigned i = 0; i < N; i++) {
		uint64_t t0;
		int rc;

		snprintf(name, sizeof(name), "missing-%u", i);
		t0 = bench_now_ns();
		rc = store_lookup(s, branch, STORE_SEQ_LATEST, dir, name, &ino);
		ns[i] = bench_now_ns() - t0;
		if (rc != -ENOENT)
			bench_die(b, "store_lookup of a missing name",
				  rc ? rc : -EEXIST);
	}
	return bench_lat_of(ns, N).med_us;
}

static void bench_deleted_branches(struct bench *b, struct bench_deleted *r)
{
	char dir[4200], name[64];
	struct store *s, *saved = b->s;
	struct store_branch_info main_info, mi;
	uint64_t *del_ns, t0;
	uint8_t blk[BENCH_BS];
	size_t dropped;

	r->n = b->cfg.quick ? 200 : 2000;
	del_ns = calloc(r->n, sizeof(*del_ns));
	if (del_ns == NULL)
		bench_die(b, "calloc", -ENOMEM);
	snprintf(dir, sizeof(dir), "%s/store_deleted", b->tmpdir);
	bench_open_store(b, dir, &s);
	b->s = s; /* so that bench_die closes it */
	bench_branch(b, s, "main", 0, &main_info);
	for (unsigned i = 0; i < 50; i++) {
		snprintf(name, sizeof(name), "file-%u", i);
		bench_new_file(b, s, main_info.id, main_info.root_ino, name);
	}
	/* reopened, so that main's keys are in files as after the drop */
	b->s = NULL;
	BENCH_CHECK(b, store_close(s));
	bench_open_store(b, dir, &s);
	b->s = s;
	r->fresh_us = bench_miss_us(b, s, main_info.id, main_info.root_ino);
	for (unsigned i = 0; i < r->n; i++) {
		struct store_branch_info ci;
		uint64_t id;

		snprintf(name, sizeof(name), "pr-%06u", i);
		id = bench_branch(b, s, name, main_info.id, &ci);
		if (i % 2) {
			uint64_t ino = bench_new_file(b, s, id, ci.root_ino,
						      "own");

			bench_fill(b, blk, BENCH_BS, i);
			BENCH_CHECK(b, store_write(s, id, ino, blk, BENCH_BS, 0,
						   NULL));
		}
		t0 = bench_now_ns();
		BENCH_CHECK(b, store_branch_delete(s, id));
		del_ns[i] = bench_now_ns() - t0;
	}
	r->delete_med_us = bench_lat_of(del_ns, r->n).med_us;
	free(del_ns);
	r->deleted_us = bench_miss_us(b, s, main_info.id, main_info.root_ino);
	b->s = NULL;
	BENCH_CHECK(b, store_close(s));
	bench_open_store(b, dir, &s);
	b->s = s;
	BENCH_CHECK(b, store_branch_lookup(s, "main", &mi));
	r->reopened_us = bench_miss_us(b, s, mi.id, mi.root_ino);
	t0 = bench_now_ns();
	BENCH_CHECK(b, store_drop_deleted(s, &dropped));
	r->drop_ms = (double)(bench_now_ns() - t0) / 1e6;
	if (dropped != r->n)
		bench_die(b, "store_drop_deleted covered too few", -EIO);
	r->dropped_us = bench_miss_us(b, s, mi.id, mi.root_ino);
	b->s = NULL;
	BENCH_CHECK(b, store_close(s));
	b->s = saved;
}

static void bench_target(const char *target, bool ok, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

static void bench_target(const char *target, bool ok, const char *fmt, ...)
{
	char measured[128];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(measured, sizeof(measured), fmt, ap);
	va_end(ap);
	printf("%-52s %-26s %s\n", target, measured, ok ? "PASS" : "MISS");
}

int main(void)
{
	struct bench bb, *b = &bb;
	struct bench_create_row rows[3];
	struct bench_lat fsync_ref;
	struct bench_rate st_io[BENCH_IO_KINDS], fs_io[BENCH_IO_KINDS];
	static const unsigned depths[] = { 0, 1, 32, 128 };
	enum { NDEPTH = sizeof(depths) / sizeof(depths[0]) };
	struct bench_rate depth_res[NDEPTH][BENCH_DEPTH_ROUNDS];
	struct bench_rate depth_med[NDEPTH];
	struct bench_per_branch pb;
	struct bench_stall_row alone, busy, ren;
	unsigned nren = 0;
	double deleted_ratio = 0;
	struct store_branch_info main_info, io_info;
	uint64_t main_ino1, main_ino2, io_ino, depth_ids[NDEPTH];
	struct bench_io_target tgt;
	char path[4200], sz[32];
	const char *base;
	uint64_t rng = 42, t_start = bench_now_ns();
	int fd;
	uint8_t *buf;

	memset(b, 0, sizeof(*b));
	bench_cfg_init(&b->cfg);
	setvbuf(stdout, NULL, _IOLBF, 0);

	base = getenv("BENCH_TMPDIR");
	if (base == NULL || *base == '\0')
		base = getenv("TMPDIR");
	if (base == NULL || *base == '\0')
		base = "/tmp";
	snprintf(b->tmpdir, sizeof(b->tmpdir), "%s/bench_store.XXXXXX", base);
	if (mkdtemp(b->tmpdir) == NULL) {
		fprintf(stderr, "bench_store: mkdtemp %s: %s\n", b->tmpdir,
			strerror(errno));
		return 1;
	}
	memcpy(bench_tmpdir_for_signal, b->tmpdir, sizeof(b->tmpdir));
	signal(SIGINT, bench_on_signal);
	signal(SIGTERM, bench_on_signal);

	b->pool = malloc(b->cfg.pool_bytes);
	if (b->pool == NULL)
		bench_die(b, "malloc pool", -ENOMEM);
	for (size_t i = 0; i < b->cfg.pool_bytes / 8; i++) {
		uint64_t x = bench_rand(&rng);

		memcpy(b->pool + i * 8, &x, 8);
	}

	printf("bench_store: %s mode, temp dir %s (removed at exit)\n",
	       b->cfg.quick ? "QUICK (smoke sizes, figures not meaningful)"
			    : "full",
	       b->tmpdir);
	printf("MB = 10^6 bytes; data is xorshift64* output (incompressible), "
	       "one unique stamp per 8 KiB block\n");
	printf("%ld CPUs online, load average (1 min) at start %.2f\n\n",
	       sysconf(_SC_NPROCESSORS_ONLN), bench_loadavg());

	snprintf(path, sizeof(path), "%s/store", b->tmpdir);
	bench_open_store(b, path, &b->s);

	/* ---- 1. branch creation ---- */
	fsync_ref = bench_fsync_ref(b);
	bench_branch(b, b->s, "main", 0, &main_info);
	rows[0].parent_bytes = 0;
	rows[0].fill_secs = 0;
	bench_create_row(b, main_info.id, &rows[0]);

	main_ino1 = bench_new_file(b, b->s, main_info.id, main_info.root_ino,
				   "fill1");
	rows[1].parent_bytes = b->cfg.small_bytes;
	rows[1].fill_secs =
		bench_fill_file(b, main_info.id, main_ino1, 0, b->cfg.small_bytes);
	bench_create_row(b, main_info.id, &rows[1]);

	main_ino2 = bench_new_file(b, b->s, main_info.id, main_info.root_ino,
				   "fill2");
	rows[2].parent_bytes = b->cfg.big_bytes;
	rows[2].fill_secs =
		bench_fill_file(b, main_info.id, main_ino2, 0,
				b->cfg.big_bytes - b->cfg.small_bytes);
	bench_create_row(b, main_info.id, &rows[2]);
	(void)main_ino2;

	printf("== 1. branch creation (%u children per row, parent = 'main') ==\n",
	       b->cfg.ncreate);
	printf("one WAL-sync reference: fdatasync of a 128 B append on the same "
	       "fs: median %.0f us, max %.0f us\n",
	       fsync_ref.med_us, fsync_ref.max_us);
	printf("%-16s %14s %14s %18s %18s %22s\n", "parent data",
	       "create med us", "create max us", "create+sync med us",
	       "create+sync max us", "fill (write+sync)");
	for (int i = 0; i < 3; i++) {
		char fill[64] = "-";

		bench_fmt_size(sz, sizeof(sz), rows[i].parent_bytes);
		if (i == 0)
			snprintf(sz, sizeof(sz), "empty");
		if (rows[i].fill_secs > 0) {
			uint64_t added = rows[i].parent_bytes -
					 (i == 2 ? rows[1].parent_bytes : 0);

			snprintf(fill, sizeof(fill), "%.1f s, %.0f MB/s",
				 rows[i].fill_secs,
				 (double)added / 1e6 / rows[i].fill_secs);
		}
		printf("%-16s %14.1f %14.1f %18.1f %18.1f %22s\n", sz,
		       rows[i].create.med_us, rows[i].create.max_us,
		       rows[i].create_sync.med_us, rows[i].create_sync.max_us,
		       fill);
	}
	printf("\n");

	/* ---- 2. 8 KiB I/O ---- */
	bench_branch(b, b->s, "io", 0, &io_info);
	io_ino = bench_new_file(b, b->s, io_info.id, io_info.root_ino, "io");
	tgt = (struct bench_io_target){ .s = b->s, .branch = io_info.id,
					.ino = io_ino, .fd = -1 };
	bench_io_all(b, &tgt, st_io);
	BENCH_CHECK(b, store_sync(b->s));

	snprintf(path, sizeof(path), "%s/ext4_io", b->tmpdir);
	fd = open(path, O_RDWR | O_CREAT | O_TRUNC, 0644);
	if (fd < 0)
		bench_die(b, "open ext4 file", -errno);
	tgt = (struct bench_io_target){ .fd = fd };
	bench_io_all(b, &tgt, fs_io);
	close(fd);
	unlink(path);

	bench_fmt_size(sz, sizeof(sz), b->cfg.io_bytes);
	printf("== 2. 8 KiB I/O on a %s file, single thread, no fsync on either "
	       "side ==\n", sz);
	printf("peer: plain file on the temp dir's fs (ext4 here) via "
	       "pwrite/pread, page cache warm; store: store_write/store_read\n");
	printf("%-11s %12s %12s %12s %12s %9s\n", "pattern", "store MB/s",
	       "store ops/s", "ext4 MB/s", "ext4 ops/s", "store/ext4");
	for (int k = 0; k < BENCH_IO_KINDS; k++)
		printf("%-11s %12.1f %12.0f %12.1f %12.0f %8.2fx\n",
		       bench_io_names[k], bench_mbps(&st_io[k]),
		       bench_opsps(&st_io[k]), bench_mbps(&fs_io[k]),
		       bench_opsps(&fs_io[k]),
		       bench_mbps(&fs_io[k]) > 0
			       ? bench_mbps(&st_io[k]) / bench_mbps(&fs_io[k])
			       : 0);
	printf("\n");

	/* ---- 3. ancestry depth: chain io <- d001 <- ... <- dNNN ---- */
	buf = malloc(BENCH_DEPTH_WRITES * BENCH_BS);
	if (buf == NULL)
		bench_die(b, "malloc", -ENOMEM);
	{
		uint64_t prev = io_info.id, nblocks = b->cfg.io_bytes / BENCH_BS;
		uint64_t wrng = 7;

		depth_ids[0] = io_info.id;
		for (unsigned d = 1; d <= b->cfg.depth_max; d++) {
			char name[32];

			snprintf(name, sizeof(name), "d%03u", d);
			prev = bench_branch(b, b->s, name, prev, NULL);
			for (int w = 0; w < BENCH_DEPTH_WRITES; w++) {
				uint64_t blk = bench_rand(&wrng) % nblocks;

				bench_fill(b, buf, BENCH_BS, blk);
				BENCH_CHECK(b, store_write(b->s, prev, io_ino, buf,
							   BENCH_BS,
							   blk * BENCH_BS, NULL));
			}
			for (int i = 1; i < NDEPTH; i++)
				if (depths[i] == d)
					depth_ids[i] = prev;
		}
		BENCH_CHECK(b, store_sync(b->s));
		/* one warm-up pass per depth, then interleaved rounds */
		for (int i = 0; i < NDEPTH; i++)
			bench_depth_pass(b, depth_ids[i], io_ino, nblocks, buf);
		for (int r = 0; r < BENCH_DEPTH_ROUNDS; r++)
			for (int i = 0; i < NDEPTH; i++)
				depth_res[i][r] = bench_depth_pass(
					b, depth_ids[i], io_ino, nblocks, buf);
		for (int i = 0; i < NDEPTH; i++) {
			qsort(depth_res[i], BENCH_DEPTH_ROUNDS,
			      sizeof(depth_res[i][0]), bench_cmp_rate);
			depth_med[i] = depth_res[i][BENCH_DEPTH_ROUNDS / 2];
		}
	}
	free(buf);
	printf("== 3. random 8 KiB reads vs ancestry depth (%u reads x %d rounds, "
	       "median round; data in the root, %d blocks written per level) ==\n",
	       b->cfg.depth_reads, BENCH_DEPTH_ROUNDS, BENCH_DEPTH_WRITES);
	printf("%-6s %12s %12s %14s\n", "depth", "MB/s", "ops/s", "vs depth 1");
	for (int i = 0; i < NDEPTH; i++)
		printf("%-6u %12.1f %12.0f %13.2fx\n", depths[i],
		       bench_mbps(&depth_med[i]), bench_opsps(&depth_med[i]),
		       bench_opsps(&depth_med[i]) / bench_opsps(&depth_med[1]));
	printf("\n");

	/* ---- 5. branch operations beside I/O on another branch ---- */
	{
		struct bench_stall w = { .b = b, .branch = io_info.id,
					 .ino = io_ino,
					 .nblocks = b->cfg.io_bytes / BENCH_BS };
		uint64_t *ren_ns, id;

		nren = b->cfg.quick ? 50 : 400;
		ren_ns = calloc(nren, sizeof(*ren_ns));
		w.cap = 4000000;
		w.ns = calloc(w.cap, sizeof(*w.ns));
		if (ren_ns == NULL || w.ns == NULL)
			bench_die(b, "calloc", -ENOMEM);
		id = bench_branch(b, b->s, "stall-a", main_info.id, NULL);
		alone = bench_stall_phase(b, &w, b->cfg.quick ? 300 : 2000, id, 0,
					  NULL);
		busy = bench_stall_phase(b, &w, 0, id, nren, ren_ns);
		ren = bench_stall_row_of(ren_ns, nren);
		free(ren_ns);
		free(w.ns);
	}

	{
		struct store *s = b->s;

		b->s = NULL;
		BENCH_CHECK(b, store_close(s));
	}

	/* ---- 4. bytes per branch ---- */
	bench_bytes_per_branch(b, &pb);
	printf("== 4. store bytes added per branch (fresh small store, %u "
	       "creations) ==\n", pb.n);
	printf("disk_bytes before %" PRIu64 ", after creations+sync %" PRIu64
	       ", after close+reopen %" PRIu64 "\n",
	       pb.before, pb.after_sync, pb.after_reopen);
	printf("per branch: %.0f B after reopen (the figure); %.0f B after sync "
	       "(WAL preallocation blurs it)\n\n",
	       pb.per_reopen, pb.per_sync);

	printf("== 5. 8 KiB writes to branch 'io' (another thread), alone "
	       "and beside %u synced renames of another branch ==\n",
	       nren);
	printf("%-34s %9s %10s %10s %10s\n", "", "ops", "median us", "p99 us",
	       "max us");
	printf("%-34s %9u %10.1f %10.1f %10.1f\n", "writes, alone", alone.n,
	       alone.lat.med_us, alone.p99_us, alone.lat.max_us);
	printf("%-34s %9u %10.1f %10.1f %10.1f\n", "writes, beside the renames",
	       busy.n, busy.lat.med_us, busy.p99_us, busy.lat.max_us);
	printf("%-34s %9u %10.1f %10.1f %10.1f\n", "renames (each synced)",
	       ren.n, ren.lat.med_us, ren.p99_us, ren.lat.max_us);
	printf("\n");

	/* ---- 6. reads that miss beside deleted branches ---- */
	{
		struct bench_deleted del;

		bench_deleted_branches(b, &del);
		printf("== 6. lookups of a missing name in main (median of "
		       "2000) beside %u deleted branches ==\n",
		       del.n);
		printf("%-58s %10.1f us\n", "new store (reopened: keys in files)",
		       del.fresh_us);
		printf("%-58s %10.1f us\n", "right after the deletes",
		       del.deleted_us);
		printf("%-58s %10.1f us\n", "after close+reopen",
		       del.reopened_us);
		printf("%-58s %10.1f us\n",
		       "after store_drop_deleted (as GC drops them)",
		       del.dropped_us);
		printf("delete median %.1f us; the drop took %.1f ms\n\n",
		       del.delete_med_us, del.drop_ms);
		deleted_ratio = del.deleted_us;
		if (del.reopened_us > deleted_ratio)
			deleted_ratio = del.reopened_us;
		if (del.dropped_us > deleted_ratio)
			deleted_ratio = del.dropped_us;
		deleted_ratio /= del.fresh_us;
	}

	/* ---- summary ---- */
	{
		double base_us = rows[0].create.med_us;
		double worst_c = 0, worst_cs = 0;
		double ratio = bench_opsps(&depth_med[2]) /
			       bench_opsps(&depth_med[1]);
		double per = pb.per_reopen;
		bool flat = rows[2].create.med_us <=
			    (2 * base_us > base_us + 100 ? 2 * base_us
							 : base_us + 100);

		for (int i = 0; i < 3; i++) {
			if (rows[i].create.med_us > worst_c)
				worst_c = rows[i].create.med_us;
			if (rows[i].create_sync.med_us > worst_cs)
				worst_cs = rows[i].create_sync.med_us;
		}
		bench_fmt_size(sz, sizeof(sz), rows[2].parent_bytes);
		printf("== summary (%s; informational, exit status 0) ==\n",
		       b->cfg.quick ? "QUICK mode" : "full mode");
		printf("%-52s %-26s %s\n", "target", "measured", "result");
		bench_target("create median < 1 ms at every parent size",
			     worst_c < 1000, "worst %.1f us", worst_c);
		bench_target("create+sync median < 1 ms + one fdatasync",
			     worst_cs < 1000 + fsync_ref.med_us,
			     "worst %.1f us (sync %.0f)", worst_cs,
			     fsync_ref.med_us);
		snprintf(path, sizeof(path),
			 "create does not grow: %s <= max(2x,+100us) empty", sz);
		bench_target(path, flat, "%.1f vs %.1f us",
			     rows[2].create.med_us, base_us);
		bench_target("rand read ops/s depth32/depth1 >= 0.80",
			     ratio >= 0.8, "%.2f", ratio);
		bench_target("store bytes per branch < 4096", per < 4096,
			     "%.0f B", per);
		bench_target("missing-name lookup beside deletes <= 1.5x",
			     deleted_ratio <= 1.5, "worst %.2fx", deleted_ratio);
		printf("total run time %.1f s, load average (1 min) at end "
		       "%.2f\n",
		       (double)(bench_now_ns() - t_start) / 1e9, bench_loadavg());
	}

	free(b->pool);
	bench_rm_tree(b->tmpdir);
	return 0;
}
