/* SPDX-License-Identifier: MIT */
/*
 * store.c - the versioned copy-on-write store.
 *
 * On disk, STORE_DIR holds:
 *   BRANCHFS          marker file: "branchfs-store <format>\n", written first
 *   LOCK.branchfs     flock()ed exclusively while a handle is open
 *   db/               the RocksDB database (see kv.c for its families)
 *
 * Keys (all integers big-endian so that byte order is numeric order; "~seq"
 * is the bitwise inverse of the seq, so versions of one object sort newest
 * first and one Seek(prefix + ~S) lands on the newest version <= S):
 *   META   "F"                    format record "branchfs" + u32 version
 *   META   "S" / "N" / "C"        reserved seq / inode / branch-id high marks
 *   META   "B" id                 branch record
 *   META   "W" id                 bytes written in the branch (persisted at sync)
 *   META   "T" unix_ms            seq of the first write started in that ms
 *   META   "G"                    GC's set of objects, saved at a clean close
 *                                 (see store_gc_save), deleted at open
 *   META   "D" id                 a deleted branch whose keys GC has not
 *                                 dropped yet (see "deleted branches' keys")
 *   INODE  branch ino ~seq        attributes (+ symlink target)
 *   DIRENT branch dir name 0 ~seq ino + type, or empty value = tombstone
 *   BLOCK  branch ino blk ~seq    kind, digest, payload (kind ZERO = hole)
 * A block's digest is SHA-256 (16 bytes kept) of u64 ino, u64 blk, u8 kind
 * and then: for RAW the 8 KiB payload; for ZSTDC (format 2) the zstd frame
 * as stored, whose own content checksum covers the decoding; for ZSTD
 * (format 1, still read) the decoded 8 KiB.  Hashing the frame, a quarter
 * of the bytes on Postgres pages, lets a read reject a damaged block before
 * decoding it and about halves the CPU of decoding a block.
 * The NUL after the name keeps all versions of one name contiguous.
 *
 * Reads: a view is the branch's ancestry as levels (id, cap, floor).  Level
 * 0 is the branch with cap = the read seq; level i+1 is the parent of level
 * i with cap = min(cap_i, fork_seq_i).  A version is visible at a level if
 * floor <= seq <= cap (floor > 0 only after a reset).  The first level that
 * has a visible version decides, tombstones included.
 *
 * Invariants:
 *  INV-1 Seqs are handed out in increasing order; a version's key carries
 *        the seq of the batch that wrote it, and one logical operation is
 *        one RocksDB batch.
 *  INV-2 The watermark is the highest seq below which every handed-out seq
 *        has committed or failed.  Forks and as-of reads never go above it.
 *  INV-3 A regular file never has a visible non-zero block at or past
 *        ceil(size / BLOCK), and the bytes of its last block past size are
 *        zero.  Shrinking writes ZERO versions to keep this, so a later
 *        extension reads zeros even where an ancestor still has data.
 *  INV-4 Seq, inode and branch-id counters never hand out a value at or
 *        above their persisted high mark, so values are never reused after
 *        a crash.
 *  INV-5 A branch with live children is never deleted or reset, so every
 *        level of a live branch's view is a live branch.
 *  INV-7 A deleted branch's struct and filter are freed only under
 *        branches_lock held for writing while no view is active
 *        (active_views == 0): every view counts itself before it resolves
 *        a branch under the read lock and uncounts when released.
 *  INV-6 Before a batch that writes a version of inode X (its attributes,
 *        its blocks, or entries of directory X) in branch B commits, X is
 *        added to B's in-memory bloom filter (rebuilt after open from the
 *        inode, block and directory-entry keys).  A level whose filter lacks X is skipped without a
 *        RocksDB seek, which keeps reads through deep ancestry cheap.
 *        The rebuild is one seek per object, minutes for a large store,
 *        so it runs in a thread of its own after store_open returns; until
 *        it is done (filters_ready) views carry no filter and reads search
 *        every level.  Writes meanwhile add to the filters as always: the
 *        rebuild's iterators see what committed before they were made,
 *        the writes' own touches the rest.
 *  INV-8 The attribute cache's entry for (B, X), if any, holds what a head
 *        read of X's attributes through B's view returns (see "attribute
 *        cache" below for how writes, resets and deletes keep it so).
 *  INV-9 s->names holds exactly the live branches, each once, in the
 *        chain of its name's hash; nbranches counts them.
 *  TIME-1 Every committed seq has a time-index entry at most
 *        STORE_TIME_INDEX_MS before it whose seq is at or below its own,
 *        also when the commit that carried the entry failed (see
 *        store_time_settle).
 *
 * Locks, in the order they are taken:
 *   ns_lock[branch % N] > ino_lock stripes (in increasing stripe order) >
 *   branches_lock > ino.mu > seq_mu > gc_dirty[i].mu (a leaf: GC's set of
 *   written objects, see the gc section); acache_mu is a leaf too (the
 *   attribute cache: nothing is taken or called while it is held).
 *   sync_mu guards no data and is
 *   taken with none of the others held.  branches_lock is read-locked only
 *   briefly (to resolve a view) and its write holders take no ns or stripe
 *   lock, so resolving a view while holding stripes cannot deadlock.
 * Data writes take one ino stripe; namespace changes take their branch's
 * namespace lock and then the stripes of every inode they change, so
 * writers to different files do not wait on each other.
 *
 * Garbage collection (retention window, shadowed versions, unlinked inodes)
 * is the gc section near the end, with its own invariants GC-1 to GC-3;
 * deleted branches' keys are dropped by GC (see "deleted branches' keys").
 */
#include <assert.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <fnmatch.h>
#include <inttypes.h>
#include <limits.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <unistd.h>

#include "compress.h"
#include "digest.h"
#include "kv.h"
#include "store.h"
#include "store_int.h"

#define STORE_MARKER "BRANCHFS"
#define STORE_LOCKFILE "LOCK.branchfs"
#define STORE_RESERVE (UINT64_C(1) << 20)
#define STORE_INO_STRIPES 1024u
#define STORE_NS_STRIPES 64u
#define STORE_VIEW_INLINE 16u
#define STORE_MAX_DEPTH 4096u /* levels of a view: STORE_MAX_ANCESTRY + 1 */
_Static_assert(STORE_MAX_DEPTH == STORE_MAX_ANCESTRY + 1,
	       "store.h's STORE_MAX_ANCESTRY");
#define STORE_MAX_FILE_SIZE ((uint64_t)INT64_MAX)
/* zstd's first fast level: on pgbench's heap and WAL pages it compresses
 * 20-40% faster and decompresses 30-55% faster than level 1, for 12-18%
 * more stored bytes.  Any level decodes the same way: the format does not
 * depend on it. */
#define STORE_ZSTD_LEVEL (-1)
/* At most one time-index entry per this many ms: the resolution of
 * wall-clock time travel. */
#define STORE_TIME_INDEX_MS 10
/* A clock set back by more than this is logged (once until it is past
 * the time index's last entry again): see store_seq_begin. */
#define STORE_CLOCK_BACK_MS 1000
/* Incremental GC's set: stripes, and the most objects it remembers
 * (about 40 bytes each); past that, GC falls back to whole scans. */
#define STORE_GC_STRIPES 64u
#define STORE_GC_MAX_OBJS (UINT64_C(1) << 20)
/* Ranges of deleted ids whose range deletions are in place while their
 * keys wait for a rewrite (see DROP-1); past that many, a retry writes
 * its range deletions again. */
#define STORE_DROP_TOMBS 16
#define STORE_GC_TAKEN UINT64_MAX
#define STORE_GC_NOHEAP UINT32_MAX
/* branchctl gc compacts when the bytes deleted since the last compaction
 * reach 1/STORE_GC_COMPACT_DIV of the store (or a branch was deleted). */
#define STORE_GC_COMPACT_DIV 8u
/* ... but whole compactions take at most 1/STORE_GC_COMPACT_DUTY of the
 * time, and come at least STORE_GC_COMPACT_GAP_MS apart, unless half of
 * the store is to be reclaimed (a loop of `branchctl gc`, or a script
 * that runs it after every rmdir, must not rewrite the store each time). */
#define STORE_GC_COMPACT_DUTY 10
#define STORE_GC_COMPACT_GAP_MS 1000
/* GC writes its deletions in batches of this many keys (small: a batch
 * from GC's low-priority thread holds up the foreground's writes queued
 * behind it), and waits this long for a foreground sync (see
 * store_gc_horizon_durable). */
#define STORE_GC_BATCH 512u
#define STORE_GC_SYNC_WAIT_MS 50
#define STORE_TOUCH_BITS (1u << 19)
#define STORE_TOUCH_WORDS (STORE_TOUCH_BITS / 64u)
/* Attribute cache: direct-mapped slots (a power of two) and their locks. */
#define STORE_ACACHE_SLOTS 8192u
#define STORE_ACACHE_LOCKS 64u
/* Blocks one read looks up together (store_blocks_read). */
#define STORE_READ_BATCH 32u

enum store_block_kind {
	STORE_BLK_ZERO = 0,
	STORE_BLK_RAW = 1,
	STORE_BLK_ZSTD = 2,  /* format 1: digest of the decoded block */
	STORE_BLK_ZSTDC = 3, /* format 2: digest of the frame (checksummed) */
};

/* The oldest store format this build opens (and upgrades). */
#define STORE_FORMAT_OLDEST 1u

#define STORE_BLK_HDR (1u + DIGEST_LEN)
#define STORE_INODE_HDR 68u

/* A branch's figures as of one seq (USAGE-3). */
struct store_usage_at {
	uint64_t seq;
	uint64_t bytes;
	uint64_t files;
};

struct store_branch {
	uint64_t id;
	uint64_t parent_id;
	uint64_t fork_seq;
	uint64_t root_ino;
	int64_t ctime_ns;
	uint64_t create_seq;
	uint64_t floor;	 /* own versions below this are invisible (reset) */
	int64_t fork_ns; /* wall time of fork_seq; 0: not recorded (builds
			  * before it, which left zeros there, or a rename
			  * by one): the time index tells while it can */
	uint32_t owner_uid;
	uint32_t nchildren;
	bool deleted;
	char name[STORE_NAME_MAX + 1];
	_Atomic uint64_t written;
	_Atomic bool written_dirty;
	/* writes_done after this branch's latest unsynced commit (0: none
	 * since open); store_sync_branch() syncs only when writes_synced is
	 * below it. */
	_Atomic uint64_t sync_ticket;
	/* Commits that wrote this branch's keys, counted once they are
	 * visible (store_commit); with fork_seq and floor, what the cached
	 * usage below was computed at. */
	_Atomic uint64_t changes;
	/* store_branch_usage's last answer, valid while usage_at matches
	 * (changes, s->changes_multi, fork_seq, floor).  guarded by
	 * branches_lock (written with it held for writing) */
	struct store_usage usage;
	uint64_t usage_at[4];
	bool usage_ok;
	/* USAGE-1: the branch's figures read as of any seq in [span_lo,
	 * span_hi] are span_bytes and span_files, while its fork_seq and
	 * floor are span_fork and span_floor.  guarded by branches_lock
	 * (written with it held for writing) */
	uint64_t span_bytes, span_files, span_lo, span_hi, span_fork,
		span_floor;
	bool span_ok;
	/* USAGE-3: the branch's figures as of each seq of at[0..n_at)
	 * (sorted by seq), while its fork_seq and floor are at_fork and
	 * at_floor.  guarded by branches_lock (written with it held for
	 * writing) */
	struct store_usage_at *at;
	size_t n_at;
	uint64_t at_fork, at_floor;
	/* Bloom filter of the inodes this branch has versions of (INV-6). */
	_Atomic uint64_t *touched;
	/* Next live branch in its chain of s->names.  guarded by
	 * branches_lock */
	struct store_branch *name_next;
};

struct store_level {
	uint64_t id;
	uint64_t cap;
	uint64_t floor;
	const _Atomic uint64_t *touched; /* the branch's filter */
};

struct store_view {
	struct store *s; /* set while the view counts in active_views */
	struct store_branch *self; /* valid until the view is released */
	bool latest;	/* reads the head (seq == STORE_SEQ_LATEST) */
	uint64_t epoch; /* acache_epoch when the view was resolved */
	size_t n;
	struct store_level *lv;
	struct store_level inline_lv[STORE_VIEW_INLINE];
};

/* One attribute cache slot (see store_acache_get). */
struct store_acache_slot {
	uint64_t branch; /* 0: empty */
	uint64_t ino;
	uint64_t gen;	/* bumped by every invalidation of the slot */
	uint64_t epoch; /* acache_epoch the entry was made in */
	struct store_attr a;
};

/* One object of the incremental GC's set: an inode's attributes (blk 0),
 * a directory's entries (cf DIRENT, ino = the directory, blk 0) or one
 * block, in one branch.  pending: the oldest seq written to it that GC
 * has not examined; STORE_GC_TAKEN while a GC examines it.  hpos: its
 * place in the stripe's heap, STORE_GC_NOHEAP exactly while taken. */
struct store_gc_obj {
	uint64_t branch, ino, blk;
	uint64_t pending;
	uint32_t hpos;
	uint8_t cf;
	bool used;
};

/* A stripe of the set: a hash table of the objects, and a min-heap on
 * pending of the slots of the objects not taken, so that a GC takes what
 * fell out of the window in time proportional to that, not to the set
 * (a window of an hour holds every object written in that hour). */
struct store_gc_stripe {
	pthread_mutex_t mu;
	struct store_gc_obj *tab; /* guarded by mu; open addressing */
	uint32_t *heap;		  /* guarded by mu; slots in tab */
	size_t cap, n, nheap;	  /* guarded by mu; cap a power of 2 */
};

struct store_counter {
	pthread_mutex_t mu;
	uint64_t next; /* guarded by mu */
	uint64_t hi;   /* guarded by mu; persisted high mark */
	char key;      /* META key */
};

struct store {
	struct store_config cfg;
	char drop_marker[STORE_NAME_MAX + 1]; /* cfg.drop_marker's copy */
	struct kv *kv;
	char *dir;
	int lock_fd;

	pthread_rwlock_t branches_lock;
	struct store_branch **branches; /* by id; guarded by branches_lock */
	size_t branches_cap;		/* guarded by branches_lock */
	uint64_t next_branch_id;	/* guarded by branches_lock */
	uint64_t nbranches;		/* guarded by branches_lock */
	/* The live branches (INV-9), hashed by name and chained through
	 * name_next: name lookups, and the loops over every live branch,
	 * cost what the live branches do, not the highest id ever handed
	 * out, which sizes branches[] (ids are never reused).  names_cap is
	 * a power of two.  guarded by branches_lock */
	struct store_branch **names;
	size_t names_cap;
	_Atomic uint64_t branch_probes; /* see store_branch_probes */
	/* Deleted branches whose memory waits until no view can still point
	 * at them (INV-7). */
	uint64_t *grave;	 /* guarded by branches_lock */
	size_t ngrave, capgrave; /* guarded by branches_lock */
	atomic_long active_views;

	pthread_mutex_t ns_lock[STORE_NS_STRIPES];
	pthread_mutex_t ino_lock[STORE_INO_STRIPES];

	/* Seqs. */
	pthread_mutex_t seq_mu;
	pthread_cond_t seq_cv;
	uint64_t seq_last;   /* guarded by seq_mu: last handed out */
	uint64_t seq_hi;     /* guarded by seq_mu */
	uint64_t *inflight;  /* guarded by seq_mu */
	size_t ninflight;    /* guarded by seq_mu */
	size_t cap_inflight; /* guarded by seq_mu */
	_Atomic uint64_t watermark;
	int64_t last_time_ms; /* guarded by seq_mu */
	bool clock_back;      /* guarded by seq_mu: logged, not past it yet */
	/* A time-index entry (ms, seq) whose commit failed and whose own
	 * write failed too (TIME-1); 0 ms: none.  guarded by seq_mu */
	int64_t time_lost_ms;
	uint64_t time_lost_seq;
	int64_t created_ns;
	uint64_t open_damage;	 /* the backend's (kv.h), set at open */
	uint64_t open_unapplied; /* idem */
	uint64_t open_wal_hole;	 /* idem */

	/* Retention and GC. */
	_Atomic uint64_t retention_s;
	_Atomic int64_t horizon_ns;   /* oldest moment retained */
	_Atomic uint64_t horizon_seq; /* its seq; reads below are refused */
	_Atomic bool gc_running;

	/* The read filters' rebuild after open (INV-6). */
	pthread_t filters_thread;
	bool filters_started;
	_Atomic bool filters_ready;
	_Atomic bool filters_stop;     /* store_close: give up */
	_Atomic bool filters_done;     /* the rebuild ended, ready or not */
	_Atomic int64_t filters_ms;    /* how long the rebuild took */
	_Atomic uint64_t filters_objs; /* objects it has looked at */
	/* Deleted branches whose keys GC has not dropped yet, since
	 * dead_since_ns (CLOCK_MONOTONIC), and how many branches were
	 * deleted since the last GC took the count. */
	uint64_t *dead_ids;	/* guarded by branches_lock */
	size_t ndead, cap_dead; /* guarded by branches_lock */
	/* The ticket of the last delete's commit: a drop waits until a sync
	 * covers it (DROP-3). */
	uint64_t dead_ticket; /* guarded by branches_lock */
	/* Why the last drop left keys (store_drop_say): 0 it did not, 1 no
	 * room for the rewrite, 2 they were left after the compaction. */
	atomic_int drop_state;
	/* Ranges of ids [lo, hi) whose range deletions a drop wrote and
	 * whose keys are still there (DROP-1): a retry writes none again. */
	uint64_t drop_tombs[STORE_DROP_TOMBS][2]; /* guarded by branches_lock */
	size_t ndrop_tombs;			  /* guarded by branches_lock */
	int64_t dead_since_ns;			  /* guarded by branches_lock */
	uint64_t gc_deleted;			  /* guarded by branches_lock */
	/* Incremental GC (see the gc section): the objects with versions
	 * GC has not examined yet, filled on the write path; every branch
	 * is scanned whole only by the first GC after open, after the set
	 * overflowed, or when its read points changed otherwise (a reset,
	 * or a child deleted or reset whose fork point was below the
	 * horizon: store_gc_fork_gone). */
	struct store_gc_stripe gc_dirty[STORE_GC_STRIPES];
	atomic_size_t gc_dirty_n;   /* entries in all stripes */
	atomic_bool gc_dirty_lost;  /* a note was dropped: scan all */
	bool gc_primed;		    /* only touched by the one running GC */
	uint64_t gc_uncompacted;    /* idem: bytes deleted since compaction */
	int64_t gc_compact_end_ns;  /* idem: when the last one ended
				    * (CLOCK_MONOTONIC; 0: none yet) */
	int64_t gc_compact_cost_ns; /* idem: how long it took */
	/* Builds before the deleted-branch notes wrote a range deletion
	 * per family at every branch delete, which no compaction but one
	 * through the last level drops (see "Deleted branches"); a store
	 * they used gets one such compaction of the whole store from the
	 * next GC.  Set at open, cleared by the one running GC. */
	bool gc_legacy_drops;
	/* Commits whose branches store_commit could not all name (more than
	 * STORE_COMMIT_BRANCHES): they count as a change of every branch. */
	_Atomic uint64_t changes_multi;
	uint64_t gc_time_trimmed;      /* idem: time index trimmed below (ms) */
	uint64_t *gc_full_ids;	       /* guarded by branches_lock */
	size_t n_gc_full, cap_gc_full; /* guarded by branches_lock */
	bool gc_force_full;	       /* guarded by branches_lock */

	struct store_counter ino;

	/* Disk space reserve: writes that add data are refused with
	 * -ENOSPC while the filesystem has less than this left, so that
	 * RocksDB's WAL appends and flushes never hit a full disk. */
	uint64_t reserve_bytes;
	_Atomic int64_t space_checked_ns;
	atomic_bool space_low;
	atomic_bool space_near; /* under twice the reserve at the last check */
	_Atomic uint64_t space_inflight; /* bytes of store_write under way */
	atomic_uint bad_walks; /* paths looked up for bad-block log lines */

	/* Attributes of (branch, ino) as read at the branch head.  Slot i is
	 * guarded by acache_mu[i % STORE_ACACHE_LOCKS]; acache_epoch is
	 * bumped under branches_lock held for writing whenever a branch's
	 * ancestry changes (reset, delete), which invalidates every entry. */
	struct store_acache_slot *acache;
	pthread_mutex_t acache_mu[STORE_ACACHE_LOCKS];
	_Atomic uint64_t acache_epoch;
	atomic_ulong acache_hits, acache_misses;

	/* Group commit. */
	pthread_mutex_t sync_mu;
	_Atomic uint64_t writes_done;
	_Atomic uint64_t writes_synced; /* written under sync_mu */
	/* writes_done after the latest commit that touched more branches
	 * than store_commit tracks one by one: every branch waits for it. */
	_Atomic uint64_t multi_ticket;
};

/* ------------------------------------------------------------ helpers */

static void store_log(struct store *s, int level, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

static void store_log(struct store *s, int level, const char *fmt, ...)
{
	char msg[1024];
	va_list ap;

	if (!s->cfg.log.fn || level > s->cfg.log.level)
		return;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	s->cfg.log.fn(s->cfg.log.ctx, level, msg);
}

#define LOG_ERR(s, ...) store_log((s), STORE_LOG_ERR, __VA_ARGS__)
#define LOG_WARN(s, ...) store_log((s), STORE_LOG_WARN, __VA_ARGS__)
#define LOG_INFO(s, ...) store_log((s), STORE_LOG_INFO, __VA_ARGS__)

static void store_put64(unsigned char *p, uint64_t v)
{
	int i;

	for (i = 7; i >= 0; i--) {
		p[i] = (unsigned char)v;
		v >>= 8;
	}
}

static uint64_t store_get64(const unsigned char *p)
{
	uint64_t v = 0;
	int i;

	for (i = 0; i < 8; i++)
		v = (v << 8) | p[i];
	return v;
}

static void store_put32(unsigned char *p, uint32_t v)
{
	p[0] = (unsigned char)(v >> 24);
	p[1] = (unsigned char)(v >> 16);
	p[2] = (unsigned char)(v >> 8);
	p[3] = (unsigned char)v;
}

static uint32_t store_get32(const unsigned char *p)
{
	return ((uint32_t)p[0] << 24) | ((uint32_t)p[1] << 16) |
	       ((uint32_t)p[2] << 8) | p[3];
}

static int64_t store_now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

/* For durations (never stepped by clock changes). */
static int64_t store_mono_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

static struct timespec store_now_ts(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return ts;
}

static uint64_t store_mix(uint64_t x)
{
	x ^= x >> 33;
	x *= 0xff51afd7ed558ccdull;
	x ^= x >> 33;
	x *= 0xc4ceb9fe1a85ec53ull;
	x ^= x >> 33;
	return x;
}

/* Filter keys: an inode (attributes, or entries of a directory), or one
 * block of an inode. */
static uint64_t store_fkey_ino(uint64_t ino)
{
	return store_mix(ino);
}

static uint64_t store_fkey_blk(uint64_t ino, uint64_t blk)
{
	return store_mix(ino ^ store_mix(blk + 0x9E3779B97F4A7C15ull));
}

static void store_touch(_Atomic uint64_t *f, uint64_t h)
{
	uint32_t a = (uint32_t)h % STORE_TOUCH_BITS;
	uint32_t b = (uint32_t)(h >> 32) % STORE_TOUCH_BITS;

	atomic_fetch_or(&f[a / 64], UINT64_C(1) << (a % 64));
	atomic_fetch_or(&f[b / 64], UINT64_C(1) << (b % 64));
}

static bool store_touched(const _Atomic uint64_t *f, uint64_t h)
{
	uint32_t a = (uint32_t)h % STORE_TOUCH_BITS;
	uint32_t b = (uint32_t)(h >> 32) % STORE_TOUCH_BITS;

	return (atomic_load_explicit(&f[a / 64], memory_order_acquire) >>
			(a % 64) &
		1) &&
	       (atomic_load_explicit(&f[b / 64], memory_order_acquire) >>
			(b % 64) &
		1);
}

/* Branch names are entry names that are also printable: no control
 * characters, which would garble listings and logs. */
/* Bytes of the well-formed UTF-8 sequence at p (1 to 4), or 0: no
 * overlong forms, surrogates or code points above U+10FFFF.  Its code
 * point goes to *cp. */
static size_t store_utf8_seq(const unsigned char *p, uint32_t *cp)
{
	size_t n, i;
	uint32_t c;

	*cp = p[0];
	if (p[0] < 0x80)
		return 1;
	if (p[0] >= 0xc2 && p[0] <= 0xdf)
		n = 2, c = p[0] & 0x1f;
	else if (p[0] >= 0xe0 && p[0] <= 0xef)
		n = 3, c = p[0] & 0x0f;
	else if (p[0] >= 0xf0 && p[0] <= 0xf4)
		n = 4, c = p[0] & 0x07;
	else
		return 0;
	for (i = 1; i < n; i++) {
		if ((p[i] & 0xc0) != 0x80)
			return 0;
		c = (c << 6) | (p[i] & 0x3f);
	}
	if ((n == 3 && (c < 0x800 || (c >= 0xd800 && c <= 0xdfff))) ||
	    (n == 4 && (c < 0x10000 || c > 0x10ffff)))
		return 0;
	*cp = c;
	return n;
}

/* The bidirectional formatting characters (U+061C, U+200E, U+200F,
 * U+202A to U+202E, U+2066 to U+2069) and the line and paragraph
 * separators (U+2028, U+2029): a name holding one is printed in another
 * order than its bytes ("Trojan Source"), or across lines. */
static bool store_cp_reorders(uint32_t c)
{
	return c == 0x061c || c == 0x200e || c == 0x200f ||
	       (c >= 0x2028 && c <= 0x202e) || (c >= 0x2066 && c <= 0x2069);
}

/* Branch names are also well-formed UTF-8 without control characters,
 * C0 (below U+0020), DEL or C1 (U+0080 to U+009F: U+009B is a terminal's
 * CSI), and without the characters that reorder or break a line: they are
 * printed in listings and logs and carried in JSON. */
int store_branch_name_check(const char *name)
{
	const unsigned char *p;
	int rc = store_name_check(name);
	uint32_t c;
	size_t n;

	if (rc)
		return rc;
	for (p = (const unsigned char *)name; *p; p += n) {
		n = store_utf8_seq(p, &c);
		if (!n || c < 0x20 || (c >= 0x7f && c <= 0x9f) ||
		    store_cp_reorders(c))
			return -EINVAL;
	}
	return 0;
}

int store_name_check(const char *name)
{
	size_t len;

	if (!name || !*name || strcmp(name, ".") == 0 ||
	    strcmp(name, "..") == 0 || strchr(name, '/'))
		return -EINVAL;
	len = strlen(name);
	if (len > STORE_NAME_MAX)
		return -ENAMETOOLONG;
	return 0;
}

/* ----------------------------------------------------- key encodings */

#define STORE_INODE_KLEN 24u
#define STORE_BLOCK_KLEN 32u
#define STORE_DIRENT_KMAX (16u + STORE_NAME_MAX + 1u + 8u)

static void store_key_inode(unsigned char *k, uint64_t br, uint64_t ino,
			    uint64_t seq)
{
	store_put64(k, br);
	store_put64(k + 8, ino);
	store_put64(k + 16, ~seq);
}

static void store_key_block(unsigned char *k, uint64_t br, uint64_t ino,
			    uint64_t blk, uint64_t seq)
{
	store_put64(k, br);
	store_put64(k + 8, ino);
	store_put64(k + 16, blk);
	store_put64(k + 24, ~seq);
}

/* Returns the key length. */
static size_t store_key_dirent(unsigned char *k, uint64_t br, uint64_t dir,
			       const char *name, uint64_t seq)
{
	size_t n = strlen(name);

	store_put64(k, br);
	store_put64(k + 8, dir);
	memcpy(k + 16, name, n);
	k[16 + n] = 0;
	store_put64(k + 17 + n, ~seq);
	return 25 + n;
}

/* Stamp the seq into every versioned key of a batch (their last 8 bytes),
 * so values can be prepared before a seq is handed out. */
static void store_batch_stamp(struct kv_batch *b, uint64_t seq)
{
	size_t i;

	for (i = 0; i < b->nops; i++) {
		struct kv_op *op = &b->ops[i];

		if (op->cf == KV_CF_META || op->type == KV_OP_DELETE_RANGE)
			continue;
		store_put64(b->buf + op->off + op->klen - 8, ~seq);
	}
}

/* --------------------------------------------------- inode encoding */

static size_t store_attr_encode(unsigned char *v, const struct store_attr *a,
				const char *target)
{
	size_t n = 0;

	store_put32(v + 0, a->mode);
	store_put32(v + 4, a->uid);
	store_put32(v + 8, a->gid);
	store_put32(v + 12, a->nlink);
	store_put64(v + 16, a->rdev);
	store_put64(v + 24, a->size);
	store_put64(v + 32, (uint64_t)a->atime.tv_sec);
	store_put32(v + 40, (uint32_t)a->atime.tv_nsec);
	store_put64(v + 44, (uint64_t)a->mtime.tv_sec);
	store_put32(v + 52, (uint32_t)a->mtime.tv_nsec);
	store_put64(v + 56, (uint64_t)a->ctime.tv_sec);
	store_put32(v + 64, (uint32_t)a->ctime.tv_nsec);
	if (target) {
		n = strlen(target);
		memcpy(v + STORE_INODE_HDR, target, n);
	}
	return STORE_INODE_HDR + n;
}

int store_attr_decode(const unsigned char *v, size_t len, struct store_attr *a)
{
	if (len < STORE_INODE_HDR)
		return -EIO;
	a->mode = store_get32(v + 0);
	a->uid = store_get32(v + 4);
	a->gid = store_get32(v + 8);
	a->nlink = store_get32(v + 12);
	a->rdev = store_get64(v + 16);
	a->size = store_get64(v + 24);
	a->atime.tv_sec = (time_t)store_get64(v + 32);
	a->atime.tv_nsec = store_get32(v + 40);
	a->mtime.tv_sec = (time_t)store_get64(v + 44);
	a->mtime.tv_nsec = store_get32(v + 52);
	a->ctime.tv_sec = (time_t)store_get64(v + 56);
	a->ctime.tv_nsec = store_get32(v + 64);
	return 0;
}

/* --------------------------------------------------- branch records */

#define STORE_BRREC_HDR 62u

static size_t store_brrec_encode(unsigned char *v, const struct store_branch *b)
{
	size_t n = strlen(b->name);

	store_put64(v + 0, b->parent_id);
	store_put64(v + 8, b->fork_seq);
	store_put64(v + 16, b->root_ino);
	store_put64(v + 24, (uint64_t)b->ctime_ns);
	store_put64(v + 32, b->create_seq);
	store_put64(v + 40, b->floor);
	store_put32(v + 48, b->owner_uid);
	store_put64(v + 52, (uint64_t)b->fork_ns);
	v[60] = (unsigned char)(n >> 8);
	v[61] = (unsigned char)n;
	memcpy(v + STORE_BRREC_HDR, b->name, n);
	return STORE_BRREC_HDR + n;
}

int store_brrec_decode(const unsigned char *v, size_t len,
		       struct store_branch *b)
{
	size_t n;

	if (len < STORE_BRREC_HDR)
		return -EUCLEAN;
	n = ((size_t)v[60] << 8) | v[61];
	if (n == 0 || n > STORE_NAME_MAX || len != STORE_BRREC_HDR + n)
		return -EUCLEAN;
	b->parent_id = store_get64(v + 0);
	b->fork_seq = store_get64(v + 8);
	b->root_ino = store_get64(v + 16);
	b->ctime_ns = (int64_t)store_get64(v + 24);
	b->create_seq = store_get64(v + 32);
	b->floor = store_get64(v + 40);
	b->owner_uid = store_get32(v + 48);
	b->fork_ns = (int64_t)store_get64(v + 52);
	memcpy(b->name, v + STORE_BRREC_HDR, n);
	b->name[n] = 0;
	return 0;
}

static void store_branch_info_fill(const struct store_branch *b,
				   struct store_branch_info *out)
{
	memset(out, 0, sizeof(*out));
	out->id = b->id;
	out->parent_id = b->parent_id;
	out->fork_seq = b->fork_seq;
	out->root_ino = b->root_ino;
	out->ctime_ns = b->ctime_ns;
	out->fork_ns = b->fork_ns;
	out->owner_uid = b->owner_uid;
	out->nchildren = b->nchildren;
	out->past_seq = b->create_seq > b->floor ? b->create_seq : b->floor;
	memcpy(out->name, b->name, sizeof(out->name));
}

/* ------------------------------------------------------------- space */

/* 0, or -ENOSPC while free space is below the reserve.  While more than
 * twice the reserve is free, statvfs runs at most every 50 ms and in
 * between the last answer stands.  Below that every call runs its own
 * statvfs and counts the bytes of writes under way (space_inflight, which
 * includes the caller's own): writes arriving through FUSE at memory
 * speed, several at once, went past the reserve between two checks, and
 * RocksDB then met the full disk itself and took no writes until its own
 * recovery, about 5 s after the space came back (see FULL DISK in
 * branchd(8)). */
static int store_space_ok(struct store *s)
{
	int64_t now = store_now_ns(), last = atomic_load(&s->space_checked_ns);
	bool near = atomic_load(&s->space_near);
	struct statvfs vfs;
	uint64_t avail, inflight;
	bool low;

	if (!near &&
	    (now - last <= 50000000 ||
	     !atomic_compare_exchange_strong(&s->space_checked_ns, &last, now)))
		return atomic_load(&s->space_low) ? -ENOSPC : 0;
	if (statvfs(s->dir, &vfs) != 0)
		return atomic_load(&s->space_low) ? -ENOSPC : 0;
	avail = (uint64_t)vfs.f_bavail * vfs.f_frsize;
	inflight = atomic_load(&s->space_inflight);
	/* Once refusing, 1 MiB more is needed to take writes again: writes
	 * of mixed sizes at the edge would otherwise flip it (and log) at
	 * every call. */
	low = avail < s->reserve_bytes + inflight +
			      (atomic_load(&s->space_low) ? (1u << 20) : 0);
	atomic_store(&s->space_near, avail / 2 < s->reserve_bytes);
	if (low != atomic_exchange(&s->space_low, low))
		store_log(
			s, low ? STORE_LOG_WARN : STORE_LOG_INFO,
			low ? "store '%s': %llu bytes left, at the reserve of %llu: refusing new data" :
			      "store '%s': %llu bytes free again (reserve %llu): writes resume",
			s->dir, (unsigned long long)avail,
			(unsigned long long)s->reserve_bytes);
	return low ? -ENOSPC : 0;
}

/* ---------------------------------------------------------- counters */

static int store_meta_put_u64(struct store *s, char key, uint64_t v, bool sync)
{
	struct kv_batch b;
	unsigned char val[8];
	int rc;

	store_put64(val, v);
	kv_batch_init(&b);
	kv_batch_put(&b, KV_CF_META, &key, 1, val, 8);
	rc = kv_write(s->kv, &b, sync);
	kv_batch_release(&b);
	return rc;
}

static int store_meta_get_u64(struct store *s, char key, uint64_t *v)
{
	unsigned char val[8];
	size_t vlen;
	bool found;
	int rc;

	rc = kv_get(s->kv, KV_CF_META, &key, 1, val, sizeof(val), &vlen,
		    &found);
	if (rc)
		return rc;
	if (!found || vlen != 8)
		return -EUCLEAN;
	*v = store_get64(val);
	return 0;
}

/* Hand out the next value of a persisted counter (INV-4).  The rare
 * synced write of a new high mark happens under the counter's own leaf
 * lock. */
static int store_counter_next(struct store *s, struct store_counter *c,
			      uint64_t max, uint64_t *out)
{
	int rc = 0;

	pthread_mutex_lock(&c->mu);
	if (c->next > max) {
		rc = -ENOSPC;
		goto out_unlock;
	}
	if (c->next >= c->hi) {
		rc = store_meta_put_u64(s, c->key, c->next + STORE_RESERVE,
					true);
		if (rc)
			goto out_unlock;
		c->hi = c->next + STORE_RESERVE;
	}
	*out = c->next++;
out_unlock:
	pthread_mutex_unlock(&c->mu);
	return rc;
}

/* --------------------------------------------------------------- seqs */

static void store_watermark_update(struct store *s)
{
	uint64_t w = s->seq_last;
	size_t i;

	for (i = 0; i < s->ninflight; i++) {
		if (s->inflight[i] - 1 < w)
			w = s->inflight[i] - 1;
	}
	atomic_store(&s->watermark, w);
	pthread_cond_broadcast(&s->seq_cv);
}

/* Hand out a seq and register it in flight.  *time_ms is set to the
 * wall-clock ms to index, or -1 if this ms is indexed already; *lost_ms
 * and *lost_seq to a time-index entry a failed commit left out, for this
 * one to carry (TIME-1), or 0. */
static int store_seq_begin(struct store *s, uint64_t *seq, int64_t *time_ms,
			   int64_t *lost_ms, uint64_t *lost_seq)
{
	int64_t ms, back_ms = 0, until_ms = 0;
	int rc = 0;

	pthread_mutex_lock(&s->seq_mu);
	if (s->seq_last + 1 >= s->seq_hi) {
		/* XXX: a synced write under seq_mu, once per 2^20 seqs. */
		rc = store_meta_put_u64(s, 'S', s->seq_last + 1 + STORE_RESERVE,
					true);
		if (rc)
			goto out_unlock;
		s->seq_hi = s->seq_last + 1 + STORE_RESERVE;
	}
	if (s->ninflight == s->cap_inflight) {
		size_t ncap = s->cap_inflight ? s->cap_inflight * 2 : 16;
		uint64_t *n = realloc(s->inflight, ncap * sizeof(*n));

		if (!n) {
			rc = -ENOMEM;
			goto out_unlock;
		}
		s->inflight = n;
		s->cap_inflight = ncap;
	}
	*seq = ++s->seq_last;
	s->inflight[s->ninflight++] = *seq;
	ms = store_now_ns() / 1000000;
	if (ms >= s->last_time_ms + STORE_TIME_INDEX_MS) {
		s->last_time_ms = ms;
		*time_ms = ms;
		s->clock_back = false;
	} else {
		*time_ms = -1;
		/* The clock was set back: until it passes the last entry
		 * again, writes get no entry and count as made then (TIME-1
		 * keeps the index from going back), so a branch of a moment
		 * in between holds none of them.  Said once per step. */
		if (ms + STORE_CLOCK_BACK_MS < s->last_time_ms &&
		    !s->clock_back) {
			s->clock_back = true;
			back_ms = s->last_time_ms - ms;
			until_ms = s->last_time_ms;
		}
	}
	*lost_ms = s->time_lost_ms;
	*lost_seq = s->time_lost_seq;
out_unlock:
	pthread_mutex_unlock(&s->seq_mu);
	if (back_ms) {
		time_t t = (time_t)(until_ms / 1000);
		struct tm tm;
		char buf[32] = "?";

		if (gmtime_r(&t, &tm))
			strftime(buf, sizeof(buf), "%Y-%m-%dT%H:%M:%S", &tm);
		LOG_WARN(
			s,
			"the system clock went back %" PRId64
			".%03d s: until it shows %s.%03dZ again, writes count as made at that time, and a branch as of a moment before it holds none of them",
			back_ms / 1000, (int)(back_ms % 1000), buf,
			(int)(until_ms % 1000));
	}
	return rc;
}

static void store_seq_end(struct store *s, uint64_t seq)
{
	size_t i;

	pthread_mutex_lock(&s->seq_mu);
	for (i = 0; i < s->ninflight; i++) {
		if (s->inflight[i] == seq) {
			s->inflight[i] = s->inflight[--s->ninflight];
			break;
		}
	}
	store_watermark_update(s);
	pthread_mutex_unlock(&s->seq_mu);
}

uint64_t store_seq_now(struct store *s)
{
	uint64_t target;

	pthread_mutex_lock(&s->seq_mu);
	target = s->seq_last;
	while (atomic_load(&s->watermark) < target)
		pthread_cond_wait(&s->seq_cv, &s->seq_mu);
	pthread_mutex_unlock(&s->seq_mu);
	return target;
}

/* ---------------------------------------------------- attribute cache */

/*
 * Every read and write of a file first needs the inode's attributes, which
 * would cost an iterator and a seek per ancestry level.  Head reads
 * (STORE_SEQ_LATEST) look them up here first; as-of reads never do.
 *
 * INV-8 A slot holding (B, X) holds the attributes that a head read of X
 * through B's view returns now.  Kept by three rules:
 *  - every batch that writes or deletes an inode version of (B, X) bumps
 *    the slot's gen and empties it, after the batch is applied
 *    (store_acache_note_batch, from store_do_commit);
 *  - a reader installs what it loaded only if the slot's gen is still the
 *    one it saw before it made its iterator, so a load that raced with a
 *    write is dropped (or emptied by the write's later bump);
 *  - a change of a branch's ancestry (reset, delete) bumps acache_epoch
 *    under branches_lock held for writing; views carry the epoch they were
 *    resolved in, and an entry or install from another epoch is a miss.
 * A writer holding X's stripe installs the attributes it has just
 * committed (store_acache_set): no other writer of X can run meanwhile.
 */
static struct store_acache_slot *store_acache_slot(struct store *s, uint64_t br,
						   uint64_t ino,
						   pthread_mutex_t **mu)
{
	uint64_t i = store_mix(ino ^ store_mix(br)) & (STORE_ACACHE_SLOTS - 1);

	*mu = &s->acache_mu[i % STORE_ACACHE_LOCKS];
	return &s->acache[i];
}

/* true and *a on a hit; on a miss *gen is the slot's gen for a later
 * store_acache_put. */
static bool store_acache_get(struct store *s, const struct store_view *v,
			     uint64_t ino, struct store_attr *a, uint64_t *gen)
{
	uint64_t br = v->lv[0].id;
	pthread_mutex_t *mu;
	struct store_acache_slot *e = store_acache_slot(s, br, ino, &mu);
	bool hit;

	pthread_mutex_lock(mu);
	hit = e->branch == br && e->ino == ino &&
	      e->epoch == atomic_load(&s->acache_epoch);
	if (hit)
		*a = e->a;
	*gen = e->gen;
	pthread_mutex_unlock(mu);
	atomic_fetch_add_explicit(hit ? &s->acache_hits : &s->acache_misses, 1,
				  memory_order_relaxed);
	return hit;
}

static void store_acache_put(struct store *s, const struct store_view *v,
			     uint64_t ino, const struct store_attr *a,
			     uint64_t gen)
{
	uint64_t br = v->lv[0].id;
	pthread_mutex_t *mu;
	struct store_acache_slot *e = store_acache_slot(s, br, ino, &mu);

	pthread_mutex_lock(mu);
	if (e->gen == gen && v->epoch == atomic_load(&s->acache_epoch)) {
		e->branch = br;
		e->ino = ino;
		e->epoch = v->epoch;
		e->a = *a;
	}
	pthread_mutex_unlock(mu);
}

/* a was just committed as X's attributes in the view's branch by a
 * caller holding X's stripe. */
static void store_acache_set(struct store *s, const struct store_view *v,
			     uint64_t ino, const struct store_attr *a)
{
	uint64_t br = v->lv[0].id;
	unsigned char rec[STORE_INODE_HDR];
	pthread_mutex_t *mu;
	struct store_acache_slot *e = store_acache_slot(s, br, ino, &mu);
	struct store_attr stored;

	/* Exactly what a load would decode from the record written. */
	store_attr_decode(rec, store_attr_encode(rec, a, NULL), &stored);
	pthread_mutex_lock(mu);
	e->gen++;
	if (v->latest && v->epoch == atomic_load(&s->acache_epoch)) {
		e->branch = br;
		e->ino = ino;
		e->epoch = v->epoch;
		e->a = stored;
	} else {
		e->branch = 0;
	}
	pthread_mutex_unlock(mu);
}

static void store_acache_drop(struct store *s, uint64_t br, uint64_t ino)
{
	pthread_mutex_t *mu;
	struct store_acache_slot *e = store_acache_slot(s, br, ino, &mu);

	pthread_mutex_lock(mu);
	e->gen++;
	if (e->branch == br && e->ino == ino)
		e->branch = 0;
	pthread_mutex_unlock(mu);
}

/* INV-8: after a batch is applied (or failed: then this is harmless). */
static void store_acache_note_batch(struct store *s, const struct kv_batch *b)
{
	size_t i;

	for (i = 0; i < b->nops; i++) {
		const struct kv_op *op = &b->ops[i];
		const unsigned char *k = kv_batch_key(b, op);

		if (op->cf != KV_CF_INODE)
			continue;
		if (op->type == KV_OP_DELETE_RANGE || op->klen < 16)
			atomic_fetch_add(&s->acache_epoch, 1);
		else
			store_acache_drop(s, store_get64(k),
					  store_get64(k + 8));
	}
}

void store_acache_stats(struct store *s, uint64_t *hits, uint64_t *misses)
{
	*hits = atomic_load(&s->acache_hits);
	*misses = atomic_load(&s->acache_misses);
}

/* ------------------------------------------- incremental GC's object set */

static uint64_t store_gc_hash(int cf, uint64_t br, uint64_t ino, uint64_t blk)
{
	return store_mix(store_mix(br * 0x9E3779B97F4A7C15ull ^ ino) ^
			 (blk * 0xC2B2AE3D27D4EB4Full + (uint64_t)cf));
}

static struct store_gc_stripe *store_gc_stripe_of(struct store *s, uint64_t h)
{
	return &s->gc_dirty[h >> 58 & (STORE_GC_STRIPES - 1)];
}

/* The slot of the object, or of the empty slot where it would go.
 * Called with st->mu held; st->cap > st->n. */
static struct store_gc_obj *store_gc_slot(struct store_gc_stripe *st,
					  uint64_t h, int cf, uint64_t br,
					  uint64_t ino, uint64_t blk)
{
	size_t i = (size_t)h & (st->cap - 1);

	for (;; i = (i + 1) & (st->cap - 1)) {
		struct store_gc_obj *o = &st->tab[i];

		if (!o->used || (o->branch == br && o->ino == ino &&
				 o->blk == blk && o->cf == cf))
			return o;
	}
}

/* The heap of a stripe (st->mu held): heap[0] is the slot of the object
 * with the lowest pending among those not taken. */
static void store_gc_heap_set(struct store_gc_stripe *st, size_t pos,
			      uint32_t slot)
{
	st->heap[pos] = slot;
	st->tab[slot].hpos = (uint32_t)pos;
}

static void store_gc_heap_up(struct store_gc_stripe *st, size_t pos)
{
	uint32_t slot = st->heap[pos];
	uint64_t p = st->tab[slot].pending;

	while (pos > 0) {
		size_t up = (pos - 1) / 2;

		if (st->tab[st->heap[up]].pending <= p)
			break;
		store_gc_heap_set(st, pos, st->heap[up]);
		pos = up;
	}
	store_gc_heap_set(st, pos, slot);
}

static void store_gc_heap_down(struct store_gc_stripe *st, size_t pos)
{
	uint32_t slot = st->heap[pos];
	uint64_t p = st->tab[slot].pending;

	for (;;) {
		size_t c = 2 * pos + 1;

		if (c >= st->nheap)
			break;
		if (c + 1 < st->nheap && st->tab[st->heap[c + 1]].pending <
						 st->tab[st->heap[c]].pending)
			c++;
		if (p <= st->tab[st->heap[c]].pending)
			break;
		store_gc_heap_set(st, pos, st->heap[c]);
		pos = c;
	}
	store_gc_heap_set(st, pos, slot);
}

static void store_gc_heap_push(struct store_gc_stripe *st, size_t slot)
{
	st->heap[st->nheap] = (uint32_t)slot;
	store_gc_heap_up(st, st->nheap++);
}

/* Take the heap's first object out of it (its slot is returned). */
static size_t store_gc_heap_pop(struct store_gc_stripe *st)
{
	uint32_t slot = st->heap[0];

	st->tab[slot].hpos = STORE_GC_NOHEAP;
	if (--st->nheap > 0) {
		store_gc_heap_set(st, 0, st->heap[st->nheap]);
		store_gc_heap_down(st, 0);
	}
	return slot;
}

/* Double a stripe's table, and build its heap anew.  Called with st->mu
 * held. */
static int store_gc_grow(struct store_gc_stripe *st)
{
	size_t ncap = st->cap ? st->cap * 2 : 64, i;
	struct store_gc_obj *old = st->tab, *nt;
	uint32_t *nh;

	if (ncap > STORE_GC_NOHEAP)
		return -ENOMEM;
	nt = calloc(ncap, sizeof(*nt));
	nh = malloc(ncap * sizeof(*nh));
	if (!nt || !nh) {
		free(nt);
		free(nh);
		return -ENOMEM;
	}
	st->tab = nt;
	st->cap = ncap;
	free(st->heap);
	st->heap = nh;
	st->nheap = 0;
	for (i = 0; old && i < ncap / 2; i++) {
		struct store_gc_obj *o = &old[i], *d;

		if (!o->used)
			continue;
		d = store_gc_slot(
			st, store_gc_hash(o->cf, o->branch, o->ino, o->blk),
			o->cf, o->branch, o->ino, o->blk);
		*d = *o;
		if (d->pending != STORE_GC_TAKEN)
			store_gc_heap_set(st, st->nheap++, (uint32_t)(d - nt));
	}
	for (i = st->nheap / 2; i-- > 0;)
		store_gc_heap_down(st, i);
	free(old);
	return 0;
}

/* Remember that GC must examine the object from seq on.  Never fails:
 * without memory (or past STORE_GC_MAX_OBJS) the next GC scans
 * everything instead. */
static void store_gc_note(struct store *s, int cf, uint64_t br, uint64_t ino,
			  uint64_t blk, uint64_t seq)
{
	uint64_t h = store_gc_hash(cf, br, ino, blk);
	struct store_gc_stripe *st = store_gc_stripe_of(s, h);
	struct store_gc_obj *o;

	pthread_mutex_lock(&st->mu);
	if ((st->n + 1) * 4 > st->cap * 3 && store_gc_grow(st)) {
		atomic_store(&s->gc_dirty_lost, true);
		goto out_unlock;
	}
	o = store_gc_slot(st, h, cf, br, ino, blk);
	if (o->used) {
		if (o->pending == STORE_GC_TAKEN) {
			o->pending = seq;
			store_gc_heap_push(st, (size_t)(o - st->tab));
		} else if (seq < o->pending) {
			o->pending = seq;
			store_gc_heap_up(st, o->hpos);
		}
		goto out_unlock;
	}
	if (atomic_load(&s->gc_dirty_n) >= STORE_GC_MAX_OBJS) {
		atomic_store(&s->gc_dirty_lost, true);
		goto out_unlock;
	}
	*o = (struct store_gc_obj){ .branch = br,
				    .ino = ino,
				    .blk = blk,
				    .pending = seq,
				    .cf = (uint8_t)cf,
				    .used = true };
	store_gc_heap_push(st, (size_t)(o - st->tab));
	st->n++;
	atomic_fetch_add(&s->gc_dirty_n, 1);
out_unlock:
	pthread_mutex_unlock(&st->mu);
}

/* Note every object a batch writes a version of, at the batch's seq
 * (before it commits: a failed batch leaves only a harmless note). */
static void store_gc_note_batch(struct store *s, const struct kv_batch *b,
				uint64_t seq)
{
	size_t i;

	for (i = 0; i < b->nops; i++) {
		const struct kv_op *op = &b->ops[i];
		const unsigned char *k = kv_batch_key(b, op);

		if (op->cf == KV_CF_META || op->type != KV_OP_PUT ||
		    op->klen < 24)
			continue;
		store_gc_note(s, op->cf, store_get64(k), store_get64(k + 8),
			      op->cf == KV_CF_BLOCK ? store_get64(k + 16) : 0,
			      seq);
	}
}

/* GC is done with a taken object: from now on it must be examined again
 * from seq next (0: no version above the window is left).  A note that
 * came in meanwhile wins; an object with nothing pending is forgotten. */
static void store_gc_settle(struct store *s, int cf, uint64_t br, uint64_t ino,
			    uint64_t blk, uint64_t next)
{
	uint64_t h = store_gc_hash(cf, br, ino, blk);
	struct store_gc_stripe *st = store_gc_stripe_of(s, h);
	struct store_gc_obj *o;
	size_t i, j;

	pthread_mutex_lock(&st->mu);
	if (!st->cap)
		goto out_unlock;
	o = store_gc_slot(st, h, cf, br, ino, blk);
	if (!o->used)
		goto out_unlock;
	if (o->pending != STORE_GC_TAKEN) {
		if (next && next < o->pending) {
			o->pending = next;
			store_gc_heap_up(st, o->hpos);
		}
		goto out_unlock;
	}
	if (next) {
		o->pending = next;
		store_gc_heap_push(st, (size_t)(o - st->tab));
		goto out_unlock;
	}
	/* Remove with backward shift (linear probing keeps no tombstones). */
	i = (size_t)(o - st->tab);
	j = i;
	for (;;) {
		size_t home;

		j = (j + 1) & (st->cap - 1);
		if (!st->tab[j].used)
			break;
		home = (size_t)store_gc_hash(st->tab[j].cf, st->tab[j].branch,
					     st->tab[j].ino, st->tab[j].blk) &
		       (st->cap - 1);
		/* Move j into the hole at i unless its home lies in (i, j]. */
		if (i <= j ? (home > i && home <= j) : (home > i || home <= j))
			continue;
		st->tab[i] = st->tab[j];
		if (st->tab[i].hpos != STORE_GC_NOHEAP)
			st->heap[st->tab[i].hpos] = (uint32_t)i;
		i = j;
	}
	st->tab[i].used = false;
	st->n--;
	atomic_fetch_sub(&s->gc_dirty_n, 1);
out_unlock:
	pthread_mutex_unlock(&st->mu);
}

/* Add the time-index entries of a commit to b: its own (ms >= 0) and the
 * one it carries for a failed commit (lost_ms > 0; TIME-1).  One key
 * takes the lower seq. */
static void store_batch_time(struct kv_batch *b, int64_t ms, uint64_t seq,
			     int64_t lost_ms, uint64_t lost_seq)
{
	unsigned char tkey[9], tval[8];

	if (lost_ms > 0) {
		tkey[0] = 'T';
		store_put64(tkey + 1, (uint64_t)lost_ms);
		store_put64(tval, lost_seq);
		kv_batch_put(b, KV_CF_META, tkey, sizeof(tkey), tval,
			     sizeof(tval));
	}
	if (ms >= 0 && ms != lost_ms) {
		tkey[0] = 'T';
		store_put64(tkey + 1, (uint64_t)ms);
		store_put64(tval, seq);
		kv_batch_put(b, KV_CF_META, tkey, sizeof(tkey), tval,
			     sizeof(tval));
	}
}

/*
 * TIME-1: every seq that commits has a time-index entry (ms, first seq)
 * at most STORE_TIME_INDEX_MS before it with a seq at or below its own;
 * else store_seq_at_time answers a moment before it with a state that has
 * it.  The entry of a slot is in the batch of the commit that opened it,
 * and the commits that came in the slot after it write none: when that
 * batch fails, its entry is written alone at once, before its seq ends
 * (store_seq_at_time waits for that), and if that fails too, kept for the
 * next commits to carry until one lands (or the close writes it).  Entries kept meanwhile merge
 * into one (the later ms, the lower seq), which answers the moments
 * between them with an earlier state, never a later one.
 */
static void store_time_settle(struct store *s, int rc, int64_t ms, uint64_t seq,
			      int64_t lost_ms, uint64_t lost_seq)
{
	struct kv_batch tb;

	if (rc == 0) {
		if (lost_ms <= 0)
			return;
		pthread_mutex_lock(&s->seq_mu);
		if (s->time_lost_ms == lost_ms && s->time_lost_seq == lost_seq)
			s->time_lost_ms = 0;
		pthread_mutex_unlock(&s->seq_mu);
		return;
	}
	/* Only one that opened a slot tries again at once (at most one write
	 * more per slot while writes fail); one that carried an entry only
	 * leaves it kept, for the next. */
	if (ms < 0)
		return;
	kv_batch_init(&tb);
	store_batch_time(&tb, ms, seq, lost_ms, lost_seq);
	rc = kv_write(s->kv, &tb, false);
	kv_batch_release(&tb);
	pthread_mutex_lock(&s->seq_mu);
	if (rc == 0) {
		if (s->time_lost_ms == lost_ms && s->time_lost_seq == lost_seq)
			s->time_lost_ms = 0;
	} else {
		int64_t k = ms > lost_ms ? ms : lost_ms;
		uint64_t v = lost_ms > 0 && (ms < 0 || lost_seq < seq) ?
				     lost_seq :
				     seq;

		if (s->time_lost_ms > 0) {
			if (s->time_lost_ms > k)
				k = s->time_lost_ms;
			if (s->time_lost_seq < v)
				v = s->time_lost_seq;
		}
		s->time_lost_ms = k;
		s->time_lost_seq = v;
	}
	pthread_mutex_unlock(&s->seq_mu);
}

/* The ms of the time index's last entry, or 0 if it has none. */
static int store_time_last(struct store *s, int64_t *ms)
{
	unsigned char key[9];
	struct kv_iter *it;
	int rc;

	*ms = 0;
	rc = kv_iter_new(s->kv, KV_CF_META, 0, &it);
	if (rc)
		return rc;
	key[0] = 'T';
	memset(key + 1, 0xff, 8);
	kv_iter_seek_for_prev(it, key, sizeof(key));
	if (kv_iter_valid(it)) {
		size_t klen;
		const unsigned char *k = kv_iter_key(it, &klen);

		if (klen == 9 && k[0] == 'T')
			*ms = (int64_t)store_get64(k + 1);
	}
	rc = kv_iter_status(it);
	kv_iter_free(it);
	return rc;
}

/* Apply one logical operation: stamp a fresh seq into its keys, index the
 * time, write the batch (INV-1).  *seq_out, if not NULL, gets the seq. */
static int store_do_commit(struct store *s, struct kv_batch *b, bool sync,
			   uint64_t *seq_out, uint64_t *ticket_out)
{
	uint64_t seq = 0, lost_seq = 0;
	int64_t ms = -1, lost_ms = 0;
	int rc;

	if (b->err)
		return b->err;
	rc = store_seq_begin(s, &seq, &ms, &lost_ms, &lost_seq);
	if (rc)
		return rc;
	store_batch_stamp(b, seq);
	store_gc_note_batch(s, b, seq);
	store_batch_time(b, ms, seq, lost_ms, lost_seq);
	rc = kv_write(s->kv, b, sync);
	store_acache_note_batch(s, b);
	store_time_settle(s, rc, ms, seq, lost_ms, lost_seq);
	store_seq_end(s, seq);
	if (rc == 0) {
		uint64_t t = atomic_fetch_add(&s->writes_done, 1) + 1;

		if (seq_out)
			*seq_out = seq;
		if (ticket_out)
			*ticket_out = t;
	}
	return rc;
}

/* *at = max(*at, t). */
static void store_ticket_raise(_Atomic uint64_t *at, uint64_t t)
{
	uint64_t cur = atomic_load(at);

	while (cur < t && !atomic_compare_exchange_weak(at, &cur, t))
		;
}

static struct store_branch *store_branch_by_id(struct store *s, uint64_t id);

#define STORE_COMMIT_BRANCHES 4

/* The branches one batch writes, for their sync tickets (store_commit). */
struct store_commit_set {
	struct store_branch *br[STORE_COMMIT_BRANCHES];
	size_t n;
	bool multi; /* more than STORE_COMMIT_BRANCHES, or an unknown id */
};

/* Called with branches_lock held. */
static void store_commit_set_note(struct store *s, struct store_commit_set *cs,
				  uint64_t id)
{
	size_t j;

	if (cs->multi || (cs->n && cs->br[cs->n - 1]->id == id))
		return;
	for (j = 0; j < cs->n; j++)
		if (cs->br[j]->id == id)
			return;
	if (cs->n == STORE_COMMIT_BRANCHES || id == 0 ||
	    id >= s->branches_cap || !s->branches[id])
		cs->multi = true;
	else
		cs->br[cs->n++] = s->branches[id];
}

/* FNV-1a of a branch name. */
static uint64_t store_name_hash(const char *name)
{
	uint64_t h = UINT64_C(0xcbf29ce484222325);

	for (; *name; name++)
		h = (h ^ (unsigned char)*name) * UINT64_C(0x100000001b3);
	return h;
}

/* Add live branch b to s->names (INV-9), doubling the table once it has
 * more branches than chains; without memory for that the chains grow
 * longer, which costs time only.  branches_lock held for writing. */
static void store_names_add(struct store *s, struct store_branch *b)
{
	size_t i, slot;

	if (s->nbranches >= s->names_cap) {
		size_t ncap = s->names_cap * 2;
		struct store_branch **nt = calloc(ncap, sizeof(*nt));

		if (nt) {
			for (i = 0; i < s->names_cap; i++) {
				struct store_branch *c = s->names[i], *next;

				for (; c; c = next) {
					next = c->name_next;
					slot = store_name_hash(c->name) &
					       (ncap - 1);
					c->name_next = nt[slot];
					nt[slot] = c;
				}
			}
			free(s->names);
			s->names = nt;
			s->names_cap = ncap;
		}
	}
	slot = store_name_hash(b->name) & (s->names_cap - 1);
	b->name_next = s->names[slot];
	s->names[slot] = b;
}

/* Take b out of s->names (before it is deleted or renamed).
 * branches_lock held for writing. */
static void store_names_remove(struct store *s, struct store_branch *b)
{
	struct store_branch **pp =
		&s->names[store_name_hash(b->name) & (s->names_cap - 1)];

	for (; *pp; pp = &(*pp)->name_next) {
		if (*pp == b) {
			*pp = b->name_next;
			b->name_next = NULL;
			return;
		}
	}
	assert(!"live branch missing from the name table");
}

uint64_t store_branch_probes(struct store *s)
{
	return atomic_load(&s->branch_probes);
}

/* Count a walk over every live branch (its chains and their entries) in
 * branch_probes.  branches_lock held. */
static void store_names_walked(struct store *s)
{
	atomic_fetch_add_explicit(&s->branch_probes,
				  s->names_cap + s->nbranches,
				  memory_order_relaxed);
}

static struct store_branch *store_branch_by_name(struct store *s,
						 const char *name)
{
	struct store_branch *b;
	uint64_t probes = 0;

	b = s->names[store_name_hash(name) & (s->names_cap - 1)];
	for (; b; b = b->name_next) {
		probes++;
		if (strcmp(b->name, name) == 0)
			break;
	}
	atomic_fetch_add_explicit(&s->branch_probes, probes,
				  memory_order_relaxed);
	return b;
}

/* INV-6: add every inode a batch writes a version of to its branch's
 * filter.  extra is a branch not yet in the table (being created).  If cs
 * is not NULL, the branches the batch writes are noted in it, in the same
 * pass. */
static void store_batch_touch(struct store *s, const struct kv_batch *b,
			      struct store_branch *extra,
			      struct store_commit_set *cs)
{
	size_t i;

	for (i = 0; i < b->nops; i++) {
		const struct kv_op *op = &b->ops[i];
		const unsigned char *k = kv_batch_key(b, op);
		struct store_branch *br;
		uint64_t id;

		if (op->cf == KV_CF_META || op->klen < 8)
			continue;
		id = store_get64(k);
		if (cs)
			store_commit_set_note(s, cs, id);
		if (op->type != KV_OP_PUT || op->klen < 16)
			continue;
		br = extra && extra->id == id ? extra :
						store_branch_by_id(s, id);
		if (!br || !br->touched)
			continue;
		if (op->cf == KV_CF_BLOCK && op->klen == STORE_BLOCK_KLEN)
			store_touch(br->touched,
				    store_fkey_blk(store_get64(k + 8),
						   store_get64(k + 16)));
		else
			store_touch(br->touched,
				    store_fkey_ino(store_get64(k + 8)));
	}
}

/*
 * An unsynced commit records its ticket on the branches it wrote (their
 * sync_ticket), so that a later fsync of a file of an idle branch need not
 * wait for a WAL sync of other branches' writes (store_sync_branch), and
 * every commit counts itself on them (changes, for store_branch_usage).
 * The pointers taken under branches_lock stay valid after it is dropped
 * because every caller holds a view across the commit, and a deleted
 * branch's struct is freed (store_grave_reap) only while no view is
 * active (a branch deleted meanwhile just gets a ticket and a count no
 * one reads).
 */
static int store_commit(struct store *s, struct kv_batch *b, bool sync,
			uint64_t *seq_out)
{
	struct store_commit_set cs = { .n = 0 };
	uint64_t ticket = 0;
	size_t i;
	int rc;

	assert(atomic_load(&s->active_views) > 0);
	pthread_rwlock_rdlock(&s->branches_lock);
	store_batch_touch(s, b, NULL, &cs);
	pthread_rwlock_unlock(&s->branches_lock);
	rc = store_do_commit(s, b, sync, seq_out, &ticket);
	if (rc == 0 && !sync) {
		if (cs.multi)
			store_ticket_raise(&s->multi_ticket, ticket);
		for (i = 0; i < cs.n; i++)
			store_ticket_raise(&cs.br[i]->sync_ticket, ticket);
	}
	/* After the commit: a usage walk that began before it cannot be
	 * stamped with the count that includes it. */
	if (rc == 0) {
		if (cs.multi)
			atomic_fetch_add(&s->changes_multi, 1);
		for (i = 0; i < cs.n; i++)
			atomic_fetch_add(&cs.br[i]->changes, 1);
	}
	return rc;
}

/* For callers holding branches_lock for writing: commits without a sync,
 * so that no reader of the branch table (every view: every read and write
 * of every branch) waits behind the journal's fdatasync.  The caller makes
 * the record durable with store_sync() once it has dropped the lock; every
 * later sync covers it anyway, as the journal and RocksDB keep commit
 * order.  *ticket_out (may be NULL) gets the commit's ticket. */
static int store_commit_locked(struct store *s, struct kv_batch *b,
			       struct store_branch *extra, uint64_t *seq_out,
			       uint64_t *ticket_out)
{
	store_batch_touch(s, b, extra, NULL);
	return store_do_commit(s, b, false, seq_out, ticket_out);
}

/* ------------------------------------------------------------- views */

static struct store_branch *store_branch_by_id(struct store *s, uint64_t id)
{
	if (id == 0 || id >= s->branches_cap || !s->branches[id] ||
	    s->branches[id]->deleted)
		return NULL;
	return s->branches[id];
}

static void store_view_release(struct store_view *v)
{
	if (v->lv && v->lv != v->inline_lv)
		free(v->lv);
	v->lv = NULL;
	if (v->s) {
		atomic_fetch_sub(&v->s->active_views, 1);
		v->s = NULL;
	}
}

/* The next GC scans branch id whole (its read points changed: GC-2).
 * Called with branches_lock held for writing.  Without memory, the next GC
 * scans everything. */
static void store_gc_mark_full(struct store *s, uint64_t id)
{
	if (s->n_gc_full == s->cap_gc_full) {
		size_t ncap = s->cap_gc_full ? s->cap_gc_full * 2 : 16;
		uint64_t *n = realloc(s->gc_full_ids, ncap * sizeof(*n));

		if (!n) {
			s->gc_force_full = true;
			return;
		}
		s->gc_full_ids = n;
		s->cap_gc_full = ncap;
	}
	s->gc_full_ids[s->n_gc_full++] = id;
}

/* The read point fork_seq of a child of parent_id is gone (the child was
 * deleted, or reset to a new fork point).  The parent's versions that
 * only it kept are those it read whose next version came after it.  If
 * fork_seq is at or above the horizon, the window start of every GC so
 * far, no GC has decided any of them: each was shadowed above that
 * window start, so its object is in GC's set with pending at or below the
 * shadowing version (GC-1), and the GC that takes it examines it without
 * this read point.  Only a fork point below the horizon may have kept a
 * version that GC decided and forgot, which only a whole scan of the
 * parent finds again (GC-2).  A child made and dropped inside the
 * retention window, as a CI job's is, costs its parent no whole scan.
 * Called with branches_lock held for writing: a GC sets the horizon under
 * it before it looks at the branches. */
static void store_gc_fork_gone(struct store *s, uint64_t parent_id,
			       uint64_t fork_seq)
{
	if (fork_seq < atomic_load(&s->horizon_seq))
		store_gc_mark_full(s, parent_id);
}

/* INV-7: free deleted branches once no view can point at them.  Called
 * with branches_lock held for writing. */
static void store_grave_reap(struct store *s)
{
	size_t i;

	if (s->ngrave == 0 || atomic_load(&s->active_views) != 0)
		return;
	for (i = 0; i < s->ngrave; i++) {
		struct store_branch *b = s->branches[s->grave[i]];

		if (b) {
			free((void *)b->touched);
			free(b->at);
			free(b);
			s->branches[s->grave[i]] = NULL;
		}
	}
	s->ngrave = 0;
}

/* Fill v's levels from branch b up to the root, reading b as of cap.
 * branches_lock must be held (either way); v->lv starts inline. */
static int store_view_build(struct store *s, struct store_branch *b,
			    uint64_t cap, struct store_view *v)
{
	struct store_branch *cur;
	size_t n = 0;

	for (cur = b; cur; cur = store_branch_by_id(s, cur->parent_id)) {
		if (n == STORE_MAX_DEPTH)
			return -ELOOP;
		if (n == STORE_VIEW_INLINE) {
			struct store_level *h =
				malloc(STORE_MAX_DEPTH * sizeof(*h));

			if (!h)
				return -ENOMEM;
			memcpy(h, v->inline_lv, sizeof(v->inline_lv));
			v->lv = h;
		}
		v->lv[n].id = cur->id;
		v->lv[n].cap = cap;
		v->lv[n].floor = cur->floor;
		v->lv[n].touched = atomic_load_explicit(&s->filters_ready,
							memory_order_acquire) ?
					   cur->touched :
					   NULL;
		n++;
		v->n = n;
		if (!cur->parent_id)
			break;
		if (cur->fork_seq < cap)
			cap = cur->fork_seq;
	}
	return 0;
}

/* Resolve a branch's ancestry as of seq (INV-5 keeps every level live). */
static int store_view_get(struct store *s, uint64_t branch, uint64_t seq,
			  struct store_view *v)
{
	struct store_branch *b;
	int rc = 0;

	v->lv = v->inline_lv;
	v->n = 0;
	v->s = NULL;
	if (seq != STORE_SEQ_LATEST && seq > atomic_load(&s->watermark))
		return -EINVAL;
	if (seq < atomic_load(&s->horizon_seq))
		return -ERANGE;
	atomic_fetch_add(&s->active_views, 1);
	v->s = s;
	pthread_rwlock_rdlock(&s->branches_lock);
	b = store_branch_by_id(s, branch);
	if (!b) {
		rc = -ENOENT;
		goto out_unlock;
	}
	v->self = b;
	v->latest = seq == STORE_SEQ_LATEST;
	v->epoch = atomic_load(&s->acache_epoch);
	rc = store_view_build(s, b, seq, v);
out_unlock:
	pthread_rwlock_unlock(&s->branches_lock);
	if (rc)
		store_view_release(v);
	return rc;
}

/*
 * Find the visible version of an object through the view.  key is a
 * scratch buffer holding the object part (after the 8-byte branch id) at
 * key + 8, olen bytes long; the branch and ~cap are filled in per level.
 * On success *found tells whether a version was found; *val and *vlen borrow
 * the iterator's value.
 */
static int store_find(struct kv_iter *it, const struct store_view *v,
		      unsigned char *key, size_t olen, uint64_t fkey,
		      const void **val, size_t *vlen, bool *found,
		      size_t *level)
{
	size_t i, klen = 8 + olen + 8, fklen;
	const unsigned char *fk;

	for (i = 0; i < v->n; i++) {
		uint64_t vseq;

		if (v->lv[i].touched && !store_touched(v->lv[i].touched, fkey))
			continue;
		store_put64(key, v->lv[i].id);
		store_put64(key + 8 + olen, ~v->lv[i].cap);
		kv_iter_seek(it, key, klen);
		if (!kv_iter_valid(it)) {
			int rc = kv_iter_status(it);

			if (rc)
				return rc;
			continue;
		}
		fk = kv_iter_key(it, &fklen);
		if (fklen != klen || memcmp(fk, key, 8 + olen) != 0)
			continue;
		vseq = ~store_get64(fk + 8 + olen);
		if (vseq < v->lv[i].floor)
			continue;
		*val = kv_iter_value(it, vlen);
		*found = true;
		if (level)
			*level = i;
		return 0;
	}
	*found = false;
	return 0;
}

/* Attributes of ino through the view.  -ENOENT if none. */
static int store_attr_find(struct kv_iter *it, const struct store_view *v,
			   uint64_t ino, struct store_attr *a, char *target,
			   size_t tsz)
{
	unsigned char key[STORE_INODE_KLEN];
	const void *val;
	size_t vlen;
	bool found;
	int rc;

	store_put64(key + 8, ino);
	rc = store_find(it, v, key, 8, store_fkey_ino(ino), &val, &vlen, &found,
			NULL);
	if (rc)
		return rc;
	if (!found)
		return -ENOENT;
	rc = store_attr_decode(val, vlen, a);
	if (rc)
		return rc;
	if (target && tsz) {
		size_t n = vlen - STORE_INODE_HDR;

		if (n >= tsz)
			n = tsz - 1;
		memcpy(target, (const unsigned char *)val + STORE_INODE_HDR, n);
		target[n] = 0;
	}
	return 0;
}

/* Attributes of ino through the view, from the cache (INV-8) when the
 * view reads the head and no symlink target is wanted. */
static int store_attr_load(struct store *s, const struct store_view *v,
			   uint64_t ino, struct store_attr *a, char *target,
			   size_t tsz)
{
	bool cached = v->latest && !(target && tsz);
	struct kv_iter *it;
	uint64_t gen = 0;
	int rc;

	if (cached && store_acache_get(s, v, ino, a, &gen))
		return 0;
	rc = kv_iter_new(s->kv, KV_CF_INODE, true, &it);
	if (rc)
		return rc;
	rc = store_attr_find(it, v, ino, a, target, tsz);
	kv_iter_free(it);
	if (rc == 0 && cached)
		store_acache_put(s, v, ino, a, gen);
	return rc;
}

static void store_batch_attr(struct kv_batch *b, uint64_t br, uint64_t ino,
			     const struct store_attr *a, const char *target)
{
	unsigned char key[STORE_INODE_KLEN];
	unsigned char val[STORE_INODE_HDR + STORE_SYMLINK_MAX + 1];
	size_t vlen;

	store_key_inode(key, br, ino, 0);
	vlen = store_attr_encode(val, a, target);
	kv_batch_put(b, KV_CF_INODE, key, sizeof(key), val, vlen);
}

static void store_batch_dirent(struct kv_batch *b, uint64_t br, uint64_t dir,
			       const char *name, uint64_t ino, uint32_t mode)
{
	unsigned char key[STORE_DIRENT_KMAX], val[12];
	size_t klen = store_key_dirent(key, br, dir, name, 0);

	if (ino) {
		store_put64(val, ino);
		store_put32(val + 8, mode & S_IFMT);
		kv_batch_put(b, KV_CF_DIRENT, key, klen, val, sizeof(val));
	} else {
		kv_batch_put(b, KV_CF_DIRENT, key, klen, NULL, 0);
	}
}

/* Look up name in dir.  -ENOENT if absent or a tombstone. */
static int store_dirent_find(struct store *s, const struct store_view *v,
			     uint64_t dir, const char *name, uint64_t *ino,
			     uint32_t *mode)
{
	unsigned char key[STORE_DIRENT_KMAX];
	struct kv_iter *it;
	const void *val;
	size_t vlen, n = strlen(name);
	bool found;
	int rc;

	store_put64(key + 8, dir);
	memcpy(key + 16, name, n);
	key[16 + n] = 0;
	rc = kv_iter_new(s->kv, KV_CF_DIRENT, true, &it);
	if (rc)
		return rc;
	rc = store_find(it, v, key, 8 + n + 1, store_fkey_ino(dir), &val, &vlen,
			&found, NULL);
	if (rc)
		goto out;
	if (!found || vlen == 0) {
		rc = -ENOENT;
		goto out;
	}
	if (vlen != 12) {
		rc = -EIO;
		goto out;
	}
	*ino = store_get64(val);
	if (mode)
		*mode = store_get32((const unsigned char *)val + 8);
out:
	kv_iter_free(it);
	return rc;
}

/* ------------------------------------------------------------ blocks */

static bool store_is_zero(const unsigned char *p, size_t n)
{
	static const unsigned char zero[256];

	while (n >= sizeof(zero)) {
		if (memcmp(p, zero, sizeof(zero)) != 0)
			return false;
		p += sizeof(zero);
		n -= sizeof(zero);
	}
	return memcmp(p, zero, n) == 0;
}

/* Append a block version (seq stamped at commit) to the batch. */
static int store_batch_block(struct kv_batch *b, uint64_t br, uint64_t ino,
			     uint64_t blk, const unsigned char *data)
{
	unsigned char key[STORE_BLOCK_KLEN];
	unsigned char val[STORE_BLK_HDR + 2 * STORE_BLOCK_SIZE];
	unsigned char hdr[17];
	ssize_t clen;
	int rc;

	store_key_block(key, br, ino, blk, 0);
	if (!data || store_is_zero(data, STORE_BLOCK_SIZE)) {
		val[0] = STORE_BLK_ZERO;
		kv_batch_put(b, KV_CF_BLOCK, key, sizeof(key), val, 1);
		return 0;
	}
	clen = compress_block(val + STORE_BLK_HDR, sizeof(val) - STORE_BLK_HDR,
			      data, STORE_BLOCK_SIZE, STORE_ZSTD_LEVEL);
	if (clen < 0 || (size_t)clen >= STORE_BLOCK_SIZE - 64) {
		val[0] = STORE_BLK_RAW;
		memcpy(val + STORE_BLK_HDR, data, STORE_BLOCK_SIZE);
		clen = STORE_BLOCK_SIZE;
	} else {
		val[0] = STORE_BLK_ZSTDC;
	}
	store_put64(hdr, ino);
	store_put64(hdr + 8, blk);
	hdr[16] = val[0];
	rc = digest_two(val + 1, hdr, sizeof(hdr), val + STORE_BLK_HDR,
			(size_t)clen);
	if (rc)
		return rc;
	kv_batch_put(b, KV_CF_BLOCK, key, sizeof(key), val,
		     STORE_BLK_HDR + (size_t)clen);
	return 0;
}

int store_block_decode(uint64_t ino, uint64_t blk, const unsigned char *val,
		       size_t vlen, unsigned char *out)
{
	unsigned char hdr[17], dg[DIGEST_LEN];
	const unsigned char *payload = val + STORE_BLK_HDR;
	size_t plen = vlen - STORE_BLK_HDR;

	if (vlen >= 1 && val[0] == STORE_BLK_ZERO) {
		if (vlen != 1)
			return -EIO;
		memset(out, 0, STORE_BLOCK_SIZE);
		return 0;
	}
	if (vlen < STORE_BLK_HDR)
		return -EIO;
	store_put64(hdr, ino);
	store_put64(hdr + 8, blk);
	hdr[16] = val[0];
	switch (val[0]) {
	case STORE_BLK_RAW:
		if (plen != STORE_BLOCK_SIZE)
			return -EIO;
		break;
	case STORE_BLK_ZSTDC:
		/* the frame is checked before it is decoded */
		if (plen == 0 ||
		    digest_two(dg, hdr, sizeof(hdr), payload, plen) ||
		    memcmp(dg, val + 1, DIGEST_LEN) != 0)
			return -EIO;
		return compress_unblock(out, STORE_BLOCK_SIZE, payload, plen) ?
			       -EIO :
			       0;
	case STORE_BLK_ZSTD:
		if (compress_unblock(out, STORE_BLOCK_SIZE, payload, plen))
			return -EIO;
		payload = out;
		break;
	default:
		return -EIO;
	}
	if (digest_two(dg, hdr, sizeof(hdr), payload, STORE_BLOCK_SIZE) ||
	    memcmp(dg, val + 1, DIGEST_LEN) != 0)
		return -EIO;
	if (payload != out)
		memcpy(out, payload, STORE_BLOCK_SIZE);
	return 0;
}

static void store_path_of(struct store *s, uint64_t branch, uint64_t root,
			  uint64_t ino, char *out, size_t outsz);

/* One log line per unreadable block, naming the branch and the file.  The
 * path costs a walk of the tree, so only the first 64 get one. */
static void store_log_bad_block(struct store *s, const struct store_view *v,
				size_t level, uint64_t ino, uint64_t blk,
				const char *why)
{
	struct store_branch_info bi, from;
	char path[1024] = "";

	if (store_branch_get(s, v->lv[0].id, &bi) != 0) {
		snprintf(bi.name, sizeof(bi.name), "#%" PRIu64, v->lv[0].id);
		bi.root_ino = 0;
	}
	if (store_branch_get(s, v->lv[level].id, &from) != 0)
		snprintf(from.name, sizeof(from.name), "#%" PRIu64,
			 v->lv[level].id);
	if (bi.root_ino && atomic_fetch_add(&s->bad_walks, 1) < 64)
		store_path_of(s, v->lv[0].id, bi.root_ino, ino, path,
			      sizeof(path));
	LOG_ERR(s,
		"cannot read branch '%s' file %s (inode %" PRIu64
		") block %" PRIu64 " (stored in branch '%s'): %s",
		bi.name, path[0] ? path : "(path unknown)", ino, blk, from.name,
		why);
}

/* Read block blk of ino through the view into out (BLOCK_SIZE bytes). */
static int store_block_read(struct store *s, struct kv_iter *it,
			    const struct store_view *v, uint64_t ino,
			    uint64_t blk, unsigned char *out)
{
	unsigned char key[STORE_BLOCK_KLEN];
	const void *vp;
	size_t vlen, level = 0;
	bool found;
	int rc;

	store_put64(key + 8, ino);
	store_put64(key + 16, blk);
	rc = store_find(it, v, key, 16, store_fkey_blk(ino, blk), &vp, &vlen,
			&found, &level);
	if (rc) {
		store_log_bad_block(s, v, 0, ino, blk, strerror(-rc));
		return rc;
	}
	if (!found) {
		memset(out, 0, STORE_BLOCK_SIZE);
		return 0;
	}
	rc = store_block_decode(ino, blk, vp, vlen, out);
	if (rc)
		store_log_bad_block(s, v, level, ino, blk,
				    "checksum or format mismatch");
	return rc;
}

/* --------------------------------------------------------- lock sets */

static unsigned store_stripe(uint64_t br, uint64_t ino)
{
	uint64_t h = (br * 0x9E3779B97F4A7C15ull) ^
		     (ino * 0xC2B2AE3D27D4EB4Full);

	h ^= h >> 29;
	return (unsigned)(h % STORE_INO_STRIPES);
}

struct store_lockset {
	unsigned idx[6];
	size_t n;
};

static void store_lockset_add(struct store_lockset *ls, uint64_t br,
			      uint64_t ino)
{
	unsigned x = store_stripe(br, ino);
	size_t i, j;

	if (!ino)
		return;
	for (i = 0; i < ls->n; i++) {
		if (ls->idx[i] == x)
			return;
		if (ls->idx[i] > x)
			break;
	}
	assert(ls->n < 6);
	for (j = ls->n; j > i; j--)
		ls->idx[j] = ls->idx[j - 1];
	ls->idx[i] = x;
	ls->n++;
}

static void store_lockset_lock(struct store *s, const struct store_lockset *ls)
{
	size_t i;

	for (i = 0; i < ls->n; i++)
		pthread_mutex_lock(&s->ino_lock[ls->idx[i]]);
}

static void store_lockset_unlock(struct store *s,
				 const struct store_lockset *ls)
{
	size_t i;

	for (i = ls->n; i > 0; i--)
		pthread_mutex_unlock(&s->ino_lock[ls->idx[i - 1]]);
}

static pthread_mutex_t *store_ns_lock(struct store *s, uint64_t br)
{
	return &s->ns_lock[br % STORE_NS_STRIPES];
}

/* --------------------------------------------------------- lifecycle */

static int store_load_dead(struct store *s);
static int store_legacy_check(struct store *s);

static int store_load_branches(struct store *s)
{
	struct kv_iter *it;
	unsigned char k = 'B';
	int rc;

	rc = kv_iter_new(s->kv, KV_CF_META, false, &it);
	if (rc)
		return rc;
	for (kv_iter_seek(it, &k, 1); kv_iter_valid(it); kv_iter_next(it)) {
		const unsigned char *key, *val;
		struct store_branch *b;
		size_t klen, vlen;
		uint64_t id;

		key = kv_iter_key(it, &klen);
		if (klen != 9 || key[0] != 'B')
			break;
		id = store_get64(key + 1);
		val = kv_iter_value(it, &vlen);
		if (id == 0 || id > STORE_BRANCH_ID_MAX) {
			rc = -EUCLEAN;
			goto out;
		}
		b = calloc(1, sizeof(*b));
		if (!b) {
			rc = -ENOMEM;
			goto out;
		}
		b->id = id;
		b->touched = calloc(STORE_TOUCH_WORDS, sizeof(*b->touched));
		rc = b->touched ? store_brrec_decode(val, vlen, b) : -ENOMEM;
		if (rc) {
			free((void *)b->touched);
			free(b);
			LOG_ERR(s,
				"store '%s': damaged record of branch %" PRIu64,
				s->dir, id);
			goto out;
		}
		if (id >= s->branches_cap) {
			size_t ncap = s->branches_cap ? s->branches_cap : 64;
			struct store_branch **nb;

			while (ncap <= id)
				ncap *= 2;
			nb = realloc(s->branches, ncap * sizeof(*nb));
			if (!nb) {
				free((void *)b->touched);
				free(b);
				rc = -ENOMEM;
				goto out;
			}
			memset(nb + s->branches_cap, 0,
			       (ncap - s->branches_cap) * sizeof(*nb));
			s->branches = nb;
			s->branches_cap = ncap;
		}
		s->branches[id] = b;
		store_names_add(s, b);
		s->nbranches++;
	}
	rc = kv_iter_status(it);
	if (rc)
		goto out;
	for (size_t i = 1; i < s->branches_cap; i++) {
		struct store_branch *b = s->branches[i], *p;
		unsigned char wk[9], wv[8];
		size_t vlen;
		bool found;

		if (!b)
			continue;
		if (b->parent_id) {
			p = store_branch_by_id(s, b->parent_id);
			if (!p) {
				LOG_ERR(s,
					"store '%s': branch '%s' has a missing parent",
					s->dir, b->name);
				rc = -EUCLEAN;
				goto out;
			}
			p->nchildren++;
		}
		wk[0] = 'W';
		store_put64(wk + 1, b->id);
		rc = kv_get(s->kv, KV_CF_META, wk, 9, wv, 8, &vlen, &found);
		if (rc)
			goto out;
		if (found && vlen == 8)
			atomic_store(&b->written, store_get64(wv));
	}
out:
	kv_iter_free(it);
	return rc;
}

/* Counts an object looked at; true once store_close wants the rebuild to
 * end. */
static bool store_filters_stopping(struct store *s)
{
	atomic_fetch_add_explicit(&s->filters_objs, 1, memory_order_relaxed);
	return atomic_load_explicit(&s->filters_stop, memory_order_relaxed);
}

/* Past every key of branch id (no branch now: deleted, its keys not yet
 * dropped): seek it to the first key of id + 1, k a buffer of at least 8
 * bytes.  false when id is the last one there can be. */
static bool store_iter_next_branch(struct kv_iter *it, unsigned char *k,
				   uint64_t id)
{
	if (id == UINT64_MAX)
		return false;
	store_put64(k, id + 1);
	kv_iter_seek(it, k, 8);
	return true;
}

/* INV-6 after open: one seek per object (inode, or block) with versions,
 * and one per deleted branch whose keys GC has not dropped yet (a range
 * deletion does not hide them from an iterator: kv.h). */
static int store_touch_rebuild_cf(struct store *s, enum kv_cf cf,
				  size_t klen_want)
{
	unsigned char k[24];
	struct kv_iter *it;
	size_t plen = klen_want - 8;
	int rc;

	rc = kv_iter_new(s->kv, cf, false, &it);
	if (rc)
		return rc;
	memset(k, 0, sizeof(k));
	for (kv_iter_seek(it, k, 0); kv_iter_valid(it);) {
		const unsigned char *key;
		struct store_branch *b;
		size_t klen, i;
		uint64_t id, ino;

		key = kv_iter_key(it, &klen);
		if (klen != klen_want)
			break;
		if (store_filters_stopping(s))
			break;
		id = store_get64(key);
		ino = store_get64(key + 8);
		/* Branches come and go meanwhile: a filter is freed only
		 * under the write lock (INV-7). */
		pthread_rwlock_rdlock(&s->branches_lock);
		b = store_branch_by_id(s, id);
		if (b && b->touched)
			store_touch(
				b->touched,
				cf == KV_CF_BLOCK ?
					store_fkey_blk(ino,
						       store_get64(key + 16)) :
					store_fkey_ino(ino));
		pthread_rwlock_unlock(&s->branches_lock);
		if (!b) {
			if (!store_iter_next_branch(it, k, id))
				break;
			continue;
		}
		/* Seek to the next object: the prefix plus one. */
		memcpy(k, key, plen);
		for (i = plen; i > 0; i--) {
			if (++k[i - 1] != 0)
				break;
		}
		if (i == 0)
			break;
		kv_iter_seek(it, k, plen);
	}
	rc = kv_iter_status(it);
	kv_iter_free(it);
	return rc;
}

/* Directory entries: one seek per (branch, directory), and one per
 * deleted branch.  Entries can be written without their directory's
 * attributes (the tombstones of drop_names at a fork or reset), so inode
 * keys alone do not tell. */
static int store_touch_rebuild_dirents(struct store *s)
{
	unsigned char k[16];
	struct kv_iter *it;
	int rc;

	rc = kv_iter_new(s->kv, KV_CF_DIRENT, false, &it);
	if (rc)
		return rc;
	memset(k, 0, sizeof(k));
	for (kv_iter_seek(it, k, 0); kv_iter_valid(it);) {
		const unsigned char *key;
		struct store_branch *b;
		size_t klen;
		uint64_t id, dir;

		key = kv_iter_key(it, &klen);
		if (klen < 16)
			break;
		if (store_filters_stopping(s))
			break;
		id = store_get64(key);
		dir = store_get64(key + 8);
		pthread_rwlock_rdlock(&s->branches_lock);
		b = store_branch_by_id(s, id);
		if (b && b->touched)
			store_touch(b->touched, store_fkey_ino(dir));
		pthread_rwlock_unlock(&s->branches_lock);
		if (!b) {
			if (!store_iter_next_branch(it, k, id))
				break;
			continue;
		}
		if (dir == UINT64_MAX)
			break;
		store_put64(k, id);
		store_put64(k + 8, dir + 1);
		kv_iter_seek(it, k, 16);
	}
	rc = kv_iter_status(it);
	kv_iter_free(it);
	return rc;
}

static int store_touch_rebuild(struct store *s)
{
	int rc = store_touch_rebuild_cf(s, KV_CF_INODE, STORE_INODE_KLEN);

	if (rc == 0)
		rc = store_touch_rebuild_cf(s, KV_CF_BLOCK, STORE_BLOCK_KLEN);
	if (rc == 0)
		rc = store_touch_rebuild_dirents(s);
	return rc;
}

static void store_filters_run(struct store *s)
{
	int64_t t0 = store_mono_ns();
	int rc = store_touch_rebuild(s);

	if (atomic_load(&s->filters_stop))
		return;
	if (rc == -EIO) {
		/* A damaged key range must not fail the store: without
		 * filters every read searches every level, and the damaged
		 * data itself reads as EIO.  The rebuild reads a key of every
		 * object, so it is where a table file damaged before the
		 * open (past what RocksDB's open reads) shows first. */
		LOG_WARN(
			s,
			"store '%s' holds data that cannot be read (a rocksdb line names the table file): reads of it fail with EIO, and reads search every ancestor (no read filters); unmount and run 'branchd --check %s' to list the damaged files, and restore them from a backup",
			s->dir, s->dir);
		return;
	}
	if (rc) {
		LOG_WARN(
			s,
			"store '%s': cannot rebuild read filters (%s); reads will search every ancestor",
			s->dir, strerror(-rc));
		return;
	}
	atomic_store(&s->filters_ms, (store_mono_ns() - t0) / 1000000);
	atomic_store_explicit(&s->filters_ready, true, memory_order_release);
	LOG_INFO(s,
		 "store '%s': read filters rebuilt from %" PRIu64
		 " objects in %.1f s",
		 s->dir, atomic_load(&s->filters_objs),
		 (double)atomic_load(&s->filters_ms) / 1e3);
}

static void *store_filters_main(void *arg)
{
	struct store *s = arg;

	store_filters_run(s);
	atomic_store(&s->filters_done, true);
	return NULL;
}

int store_wait_filters(struct store *s, unsigned timeout_ms)
{
	int64_t end = store_mono_ns() + (int64_t)timeout_ms * 1000000;

	while (!atomic_load(&s->filters_ready)) {
		struct timespec ts = { 0, 2000000 };

		if (atomic_load(&s->filters_done))
			return -EIO;
		if (store_mono_ns() >= end)
			return -ETIMEDOUT;
		nanosleep(&ts, NULL);
	}
	return 0;
}

/* Stop the rebuild (it ends at its next object) and wait for it. */
static void store_filters_join(struct store *s)
{
	if (!s->filters_started)
		return;
	atomic_store(&s->filters_stop, true);
	pthread_join(s->filters_thread, NULL);
	s->filters_started = false;
}

/* The format record META "F" of this build's format, into b. */
static void store_batch_format(struct kv_batch *b)
{
	unsigned char fval[12];

	memcpy(fval, "branchfs", 8);
	store_put32(fval + 8, STORE_FORMAT_VERSION);
	kv_batch_put(b, KV_CF_META, "F", 1, fval, sizeof(fval));
}

static int store_init_new(struct store *s)
{
	unsigned char tkey[9], tval[8];
	struct kv_batch b;
	int rc;

	kv_batch_init(&b);
	store_batch_format(&b);
	store_put64(tval, 1);
	kv_batch_put(&b, KV_CF_META, "S", 1, tval, 8);
	kv_batch_put(&b, KV_CF_META, "N", 1, tval, 8);
	kv_batch_put(&b, KV_CF_META, "C", 1, tval, 8);
	tkey[0] = 'T';
	store_put64(tkey + 1, (uint64_t)(store_now_ns() / 1000000));
	store_put64(tval, 1);
	kv_batch_put(&b, KV_CF_META, tkey, 9, tval, 8);
	/* Creation time: GC thins the time index, so it cannot tell. */
	store_put64(tval, (uint64_t)store_now_ns());
	kv_batch_put(&b, KV_CF_META, "K", 1, tval, 8);
	/* No earlier build's range deletion to compact away. */
	kv_batch_put(&b, KV_CF_META, "R", 1, "1", 1);
	rc = kv_write(s->kv, &b, true);
	kv_batch_release(&b);
	return rc;
}

static int store_dir_is_empty(const char *dir, bool *empty)
{
	struct dirent *de;
	DIR *d = opendir(dir);

	if (!d)
		return -errno;
	*empty = true;
	while ((de = readdir(d))) {
		if (strcmp(de->d_name, ".") && strcmp(de->d_name, "..") &&
		    strcmp(de->d_name, "lost+found")) {
			*empty = false;
			break;
		}
	}
	closedir(d);
	return 0;
}

static bool store_format_known(unsigned ver)
{
	return ver >= STORE_FORMAT_OLDEST && ver <= STORE_FORMAT_VERSION;
}

/* Reads the marker: *ver_out is its format version, and *is_new tells
 * whether the store's database was never completely created (marker
 * "branchfs-store N new"). */
static int store_marker_check(struct store *s, const char *path, bool *is_new,
			      unsigned *ver_out)
{
	char buf[64] = { 0 };
	unsigned ver;
	ssize_t n;
	int fd;

	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0) {
		int err = errno;

		LOG_ERR(s, "cannot open store '%s': cannot read '%s': %s",
			s->dir, path, strerror(err));
		return -err;
	}
	n = read(fd, buf, sizeof(buf) - 1);
	close(fd);
	if (n < 0 || sscanf(buf, "branchfs-store %u", &ver) != 1) {
		LOG_ERR(s, "'%s' is not a branchfs store (bad marker file)",
			s->dir);
		return -EMEDIUMTYPE;
	}
	if (!store_format_known(ver)) {
		LOG_ERR(s,
			"store '%s' has format version %u; this build knows versions %u to %u",
			s->dir, ver, STORE_FORMAT_OLDEST, STORE_FORMAT_VERSION);
		return -EPROTONOSUPPORT;
	}
	*is_new = strstr(buf, " new") != NULL;
	*ver_out = ver;
	return 0;
}

static int store_marker_write(const char *dir, const char *path, bool is_new);

/* Bring a store of an older format to this one before anything is written
 * in the new format: the format record first (synced), then the marker.
 * From the record on, older builds refuse the store; a crash before the
 * marker is rewritten leaves one this build accepts and rewrites at the
 * next open.  Format 1 differs only in how ZSTD blocks are hashed, and
 * its blocks are still read as they are. */
static int store_format_upgrade(struct store *s, const char *dir, unsigned from)
{
	char path[PATH_MAX];
	struct kv_batch b;
	int rc;

	kv_batch_init(&b);
	store_batch_format(&b);
	rc = kv_write(s->kv, &b, true);
	kv_batch_release(&b);
	if (rc == 0) {
		snprintf(path, sizeof(path), "%s/%s", dir, STORE_MARKER);
		rc = store_marker_write(dir, path, false);
	}
	if (rc) {
		LOG_ERR(s, "cannot upgrade store '%s' from format %u to %u: %s",
			dir, from, STORE_FORMAT_VERSION, strerror(-rc));
		return rc;
	}
	if (from < STORE_FORMAT_VERSION)
		LOG_INFO(
			s,
			"upgraded store '%s' from format %u to %u: builds older than this one can no longer open it",
			dir, from, STORE_FORMAT_VERSION);
	return 0;
}

/* Write the marker atomically (temp file, fsync, rename, fsync of the
 * directory).  is_new marks a store whose database is being created. */
static int store_marker_write(const char *dir, const char *path, bool is_new)
{
	char buf[64], tmp[PATH_MAX];
	int fd, n, rc = 0;

	if (snprintf(tmp, sizeof(tmp), "%s.tmp", path) >= (int)sizeof(tmp))
		return -ENAMETOOLONG;
	fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	if (fd < 0)
		return -errno;
	n = snprintf(buf, sizeof(buf), "branchfs-store %u%s\n",
		     STORE_FORMAT_VERSION, is_new ? " new" : "");
	errno = 0;
	if (write(fd, buf, (size_t)n) != n || fsync(fd) != 0)
		rc = errno ? -errno : -EIO;
	close(fd);
	if (rc == 0 && rename(tmp, path) != 0)
		rc = -errno;
	if (rc == 0) {
		fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
		if (fd >= 0) {
			if (fsync(fd) != 0)
				rc = -errno;
			close(fd);
		}
	}
	if (rc)
		unlink(tmp);
	return rc;
}

static void store_free(struct store *s)
{
	size_t i;

	for (i = 0; i < s->branches_cap; i++) {
		if (s->branches[i]) {
			free((void *)s->branches[i]->touched);
			free(s->branches[i]->at);
		}
		free(s->branches[i]);
	}
	free(s->branches);
	free(s->names);
	free(s->inflight);
	free(s->dead_ids);
	free(s->gc_full_ids);
	for (i = 0; i < STORE_GC_STRIPES; i++) {
		free(s->gc_dirty[i].tab);
		free(s->gc_dirty[i].heap);
		pthread_mutex_destroy(&s->gc_dirty[i].mu);
	}
	free(s->grave);
	if (s->lock_fd >= 0)
		close(s->lock_fd);
	pthread_rwlock_destroy(&s->branches_lock);
	for (i = 0; i < STORE_NS_STRIPES; i++)
		pthread_mutex_destroy(&s->ns_lock[i]);
	for (i = 0; i < STORE_INO_STRIPES; i++)
		pthread_mutex_destroy(&s->ino_lock[i]);
	pthread_mutex_destroy(&s->seq_mu);
	pthread_cond_destroy(&s->seq_cv);
	pthread_mutex_destroy(&s->ino.mu);
	pthread_mutex_destroy(&s->sync_mu);
	for (i = 0; i < STORE_ACACHE_LOCKS; i++)
		pthread_mutex_destroy(&s->acache_mu[i]);
	free(s->acache);
	free(s->dir);
	free(s);
}

static void store_gc_restore(struct store *s, uint64_t mark);

int store_open(const char *dir, const struct store_config *cfg,
	       struct store **out)
{
	char path[PATH_MAX];
	struct store *s;
	struct stat st;
	bool empty = false, fresh = false, is_new = false, made_dir = false;
	unsigned marker_ver = STORE_FORMAT_VERSION;
	unsigned char fval[12];
	size_t vlen;
	bool found;
	uint64_t v, s_mark;
	struct kv *inner;
	int rc;
	size_t i;

	/* Before anything is written (store_set_retention's range). */
	if (cfg->retention_s > STORE_RETENTION_MAX)
		return -EINVAL;
	if (cfg->read_only && (cfg->create || cfg->retention_s))
		return -EINVAL;
	s = calloc(1, sizeof(*s));
	if (!s)
		return -ENOMEM;
	s->cfg = *cfg;
	s->cfg.drop_marker = NULL;
	if (cfg->drop_marker && cfg->drop_depth) {
		if (store_name_check(cfg->drop_marker) ||
		    cfg->drop_depth > STORE_DROP_DEPTH_MAX) {
			free(s);
			return -EINVAL;
		}
		strcpy(s->drop_marker, cfg->drop_marker);
	} else {
		s->cfg.drop_depth = 0;
	}
	s->lock_fd = -1;
	pthread_rwlock_init(&s->branches_lock, NULL);
	for (i = 0; i < STORE_NS_STRIPES; i++)
		pthread_mutex_init(&s->ns_lock[i], NULL);
	for (i = 0; i < STORE_INO_STRIPES; i++)
		pthread_mutex_init(&s->ino_lock[i], NULL);
	pthread_mutex_init(&s->seq_mu, NULL);
	pthread_cond_init(&s->seq_cv, NULL);
	pthread_mutex_init(&s->ino.mu, NULL);
	pthread_mutex_init(&s->sync_mu, NULL);
	for (i = 0; i < STORE_ACACHE_LOCKS; i++)
		pthread_mutex_init(&s->acache_mu[i], NULL);
	for (i = 0; i < STORE_GC_STRIPES; i++)
		pthread_mutex_init(&s->gc_dirty[i].mu, NULL);
	s->ino.key = 'N';
	s->dir = strdup(dir);
	s->acache = calloc(STORE_ACACHE_SLOTS, sizeof(*s->acache));
	s->names_cap = 64;
	s->names = calloc(s->names_cap, sizeof(*s->names));
	if (!s->dir || !s->acache || !s->names) {
		rc = -ENOMEM;
		goto err_free;
	}

	if (stat(dir, &st) != 0) {
		if (errno != ENOENT || !cfg->create) {
			rc = -errno;
			LOG_ERR(s, "cannot open store '%s': %s", dir,
				strerror(errno));
			goto err_free;
		}
		if (mkdir(dir, 0700) == 0) {
			made_dir = true;
		} else if (errno != EEXIST) {
			rc = -errno;
			LOG_ERR(s, "cannot create store '%s': %s", dir,
				strerror(errno));
			goto err_free;
		}
	} else if (!S_ISDIR(st.st_mode)) {
		LOG_ERR(s, "'%s' is not a directory", dir);
		rc = -ENOTDIR;
		goto err_free;
	}

	snprintf(path, sizeof(path), "%s/%s", dir, STORE_MARKER);
	if (access(path, F_OK) == 0) {
		rc = store_marker_check(s, path, &is_new, &marker_ver);
		if (rc)
			goto err_free;
	} else if (errno != ENOENT) {
		/* A store this user may not enter (another user's 0700
		 * directory): say so, rather than take it for a new one. */
		rc = -errno;
		LOG_ERR(s, "cannot open store '%s': %s", dir, strerror(-rc));
		goto err_free;
	} else {
		is_new = true;
		rc = store_dir_is_empty(dir, &empty);
		if (rc) {
			LOG_ERR(s, "cannot open store '%s': %s", dir,
				strerror(-rc));
			goto err_free;
		}
		if (!empty) {
			struct stat cst;

			snprintf(path, sizeof(path), "%s/db/CURRENT", dir);
			if (stat(path, &cst) == 0) {
				/* A database is there: a store that lost its
				 * marker, not a stranger's directory. */
				LOG_ERR(s,
					"store '%s' is damaged: its marker file %s is missing (writing \"branchfs-store %u\" into it may bring the store back)",
					dir, STORE_MARKER,
					STORE_FORMAT_VERSION);
				rc = -EUCLEAN;
				goto err_free;
			}
			LOG_ERR(s,
				"'%s' is not a branchfs store (not empty, no %s file)",
				dir, STORE_MARKER);
			rc = -EMEDIUMTYPE;
			goto err_free;
		}
		if (!cfg->create) {
			LOG_ERR(s, "'%s' is not a branchfs store", dir);
			rc = -ENOENT;
			goto err_free;
		}
		rc = store_marker_write(dir, path, true);
		if (rc) {
			LOG_ERR(s, "cannot create store '%s': %s", dir,
				strerror(-rc));
			/* Leave no half-made store behind: the directory
			 * this call made is empty again. */
			if (made_dir)
				rmdir(dir);
			goto err_free;
		}
	}

	if (is_new && cfg->read_only) {
		LOG_ERR(s,
			"store '%s' was never completely created (its creation was cut short): nothing to read; opening it read-write creates it",
			dir);
		rc = -EUCLEAN;
		goto err_free;
	}
	snprintf(path, sizeof(path), "%s/%s", dir, STORE_LOCKFILE);
	/* Read only: a lock file on a read-only filesystem is locked too. */
	s->lock_fd = cfg->read_only ? open(path, O_RDONLY | O_CLOEXEC) : -1;
	if (s->lock_fd < 0)
		s->lock_fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
	if (s->lock_fd < 0) {
		rc = -errno;
		LOG_ERR(s, "cannot open lock file '%s': %s", path,
			strerror(errno));
		goto err_free;
	}
	if (flock(s->lock_fd, LOCK_EX | LOCK_NB) != 0) {
		rc = errno == EWOULDBLOCK ? -EBUSY : -errno;
		LOG_ERR(s, "store '%s' is in use by another process", dir);
		goto err_free;
	}

	{
		struct statvfs vfs;
		uint64_t total = 0;

		if (statvfs(dir, &vfs) == 0)
			total = (uint64_t)vfs.f_blocks * vfs.f_frsize;
		/* 1/16 of the filesystem, at least 2 MiB, at most 256 MiB. */
		s->reserve_bytes = total / 16;
		if (s->reserve_bytes < (2u << 20))
			s->reserve_bytes = 2u << 20;
		if (s->reserve_bytes > (256u << 20))
			s->reserve_bytes = 256u << 20;
	}
	{
		/* The database may be created only in a new store: the marker
		 * and lock file alone (a creation cut short counts as new).
		 * An existing store without db/ lost its data; one without
		 * db/CURRENT (which names the newest MANIFEST) may be brought
		 * back by hand. */
		static const char *const need[][2] = {
			{ "db", "its database directory '%s' is missing" },
			{ "db/CURRENT",
			  "'%s' is missing (it names the database's newest MANIFEST file in the same directory; writing that name into it may bring the store back)" },
		};
		struct stat dst;
		char why[512];

		for (i = 0; i < 2 && !is_new; i++) {
			snprintf(path, sizeof(path), "%s/%s", dir, need[i][0]);
			if (stat(path, &dst) == 0)
				continue;
			snprintf(why, sizeof(why), need[i][1], path);
			LOG_ERR(s, "store '%s' is damaged: %s", dir, why);
			rc = -EUCLEAN;
			goto err_free;
		}
	}
	snprintf(path, sizeof(path), "%s/db", dir);
	/* Only a new store's database may be created: in an existing one,
	 * RocksDB's create_if_missing would meet a lost CURRENT file with a
	 * new, empty database, and the next open would delete the old one's
	 * files as obsolete. */
	rc = kv_rocksdb_open(path,
			     cfg->read_only ? KV_OPEN_READ_ONLY :
			     is_new	    ? KV_OPEN_CREATE :
					      0,
			     cfg->cache_bytes ? cfg->cache_bytes : (256u << 20),
			     cfg->max_open_files, &cfg->log, &inner);
	/* kv.c logged why, naming the damaged file: one line. */
	if (rc)
		goto err_free;
	s->kv = inner;
	s->open_damage = inner->open_damage;
	s->open_unapplied = inner->open_unapplied;
	s->open_wal_hole = inner->open_wal_hole;
	/* Room for RocksDB to flush its memtables once writes are refused:
	 * a flush that meets a full disk stops RocksDB until it is opened
	 * again (on a 64 MiB filesystem the 1/16 reserve was 4 MiB, below
	 * the 10 MiB the memtables can hold). */
	if (inner->flush_room > s->reserve_bytes)
		s->reserve_bytes = inner->flush_room;
	if (cfg->kv_wrap) {
		rc = cfg->kv_wrap(cfg->kv_wrap_ctx, inner, &s->kv);
		if (rc) {
			kv_close(inner);
			s->kv = NULL;
			goto err_free;
		}
	}

	rc = kv_get(s->kv, KV_CF_META, "F", 1, fval, sizeof(fval), &vlen,
		    &found);
	if (rc)
		goto err_close;
	if (!found) {
		if (!is_new) {
			LOG_ERR(s,
				"store '%s' is damaged (its format record is missing)",
				dir);
			rc = -EUCLEAN;
			goto err_close;
		}
		rc = store_init_new(s);
		if (rc)
			goto err_close;
		fresh = true;
	}
	if (is_new) {
		snprintf(path, sizeof(path), "%s/%s", dir, STORE_MARKER);
		rc = store_marker_write(dir, path, false);
		if (rc) {
			LOG_ERR(s, "cannot finish creating store '%s': %s", dir,
				strerror(-rc));
			goto err_close;
		}
	} else if (vlen != 12 || memcmp(fval, "branchfs", 8) != 0) {
		LOG_ERR(s, "store '%s' is damaged (bad format record)", dir);
		rc = -EUCLEAN;
		goto err_close;
	} else if (!store_format_known(store_get32(fval + 8))) {
		LOG_ERR(s,
			"store '%s' has format version %u; this build knows versions %u to %u",
			dir, store_get32(fval + 8), STORE_FORMAT_OLDEST,
			STORE_FORMAT_VERSION);
		rc = -EPROTONOSUPPORT;
		goto err_close;
	} else if (!cfg->read_only &&
		   (store_get32(fval + 8) < STORE_FORMAT_VERSION ||
		    marker_ver < STORE_FORMAT_VERSION)) {
		rc = store_format_upgrade(s, dir, store_get32(fval + 8));
		if (rc)
			goto err_close;
	}

	rc = store_meta_get_u64(s, 'S', &v);
	if (rc)
		goto err_damaged;
	s->seq_last = v; /* every seq used so far is below the mark */
	s->seq_hi = v;
	s_mark = v;
	atomic_store(&s->watermark, v);
	rc = store_meta_get_u64(s, 'N', &v);
	if (rc)
		goto err_damaged;
	s->ino.next = v;
	s->ino.hi = v;
	rc = store_meta_get_u64(s, 'C', &v);
	if (rc)
		goto err_damaged;
	s->next_branch_id = v;
	rc = store_load_branches(s);
	if (rc)
		goto err_damaged;
	rc = store_load_dead(s);
	if (rc)
		goto err_close;
	rc = store_legacy_check(s);
	if (rc)
		goto err_close;
	{
		unsigned char hv[16];
		bool hfound;

		rc = kv_get(s->kv, KV_CF_META, "H", 1, hv, sizeof(hv), &vlen,
			    &hfound);
		if (rc)
			goto err_close;
		if (hfound && vlen == 16) {
			atomic_store(&s->horizon_ns, (int64_t)store_get64(hv));
			atomic_store(&s->horizon_seq, store_get64(hv + 8));
		}
	}
	/* TIME-1: the time index goes on from its last entry, as if the
	 * store had stayed open: a commit in the same slot writes none,
	 * where it would have overwritten that entry with its own, higher
	 * seq (after a restart within the ms, or a clock set back). */
	rc = store_time_last(s, &s->last_time_ms);
	if (rc)
		goto err_close;
	/* The window last set, unless the caller sets one. */
	{
		char rv[24], *end;
		unsigned long long kept = 0;

		int grc = store_setting_get(s, "retention", rv, sizeof(rv));

		if (grc == 0) {
			errno = 0;
			kept = strtoull(rv, &end, 10);
			if (errno || *end || kept == 0 ||
			    kept > STORE_RETENTION_MAX)
				kept = 0;
		}
		if ((grc && grc != -ENOENT) || (grc == 0 && !kept))
			LOG_WARN(
				s,
				"store '%s': cannot read the retention window it keeps (%s); using %s",
				dir, grc ? strerror(-grc) : "malformed",
				cfg->retention_s ? "the one given" : "3600 s");
		atomic_store(&s->retention_s, kept ? kept : 3600);
		if (cfg->retention_s && cfg->retention_s != kept) {
			rc = store_set_retention(s, cfg->retention_s);
			if (rc == -EINVAL)
				goto err_close;
			if (rc) {
				LOG_WARN(
					s,
					"store '%s': cannot keep the retention window of %" PRIu64
					" s for the next open: %s",
					dir, cfg->retention_s, strerror(-rc));
				atomic_store(&s->retention_s, cfg->retention_s);
			}
		}
	}
	{
		struct kv_iter *it;
		unsigned char tk = 'T';

		rc = kv_iter_new(s->kv, KV_CF_META, false, &it);
		if (rc)
			goto err_close;
		kv_iter_seek(it, &tk, 1);
		s->created_ns = store_now_ns();
		if (store_meta_get_u64(s, 'K', &v) == 0)
			s->created_ns = (int64_t)v;
		else if (kv_iter_valid(it)) {
			const unsigned char *k = kv_iter_key(it, &vlen);

			if (vlen == 9 && k[0] == 'T')
				s->created_ns =
					(int64_t)store_get64(k + 1) * 1000000;
		}
		kv_iter_free(it);
	}
	if (!fresh && !cfg->read_only)
		store_gc_restore(s, s_mark);
	LOG_INFO(s, "%s store '%s': %" PRIu64 " branches, seq %" PRIu64,
		 fresh ? "created" : "opened", dir, s->nbranches, s->seq_last);
	if (fresh) {
		atomic_store(&s->filters_ready, true); /* nothing to rebuild */
	} else if (pthread_create(&s->filters_thread, NULL, store_filters_main,
				  s) == 0) {
		s->filters_started = true;
	} else {
		store_filters_main(s);
	}
	*out = s;
	return 0;

err_damaged:
	if (rc == -EUCLEAN)
		LOG_ERR(s,
			"store '%s' is damaged (missing or bad meta records)",
			dir);
err_close:
	kv_close(s->kv);
err_free:
	store_free(s);
	return rc;
}

/* Persist the per-branch written counters that changed (into batch b).
 * Every store_sync runs this: it walks the live branches (INV-9), not
 * branches[], whose size follows the highest id ever handed out (a
 * store that had made 300,000 branches spent 0.3 ms of each fsync here
 * with 500 of them live). */
static void store_batch_counters(struct store *s, struct kv_batch *b)
{
	struct store_branch *br;
	size_t i;

	pthread_rwlock_rdlock(&s->branches_lock);
	store_names_walked(s);
	for (i = 0; i < s->names_cap; i++) {
		for (br = s->names[i]; br; br = br->name_next) {
			unsigned char k[9], v[8];

			if (!atomic_exchange(&br->written_dirty, false))
				continue;
			k[0] = 'W';
			store_put64(k + 1, br->id);
			store_put64(v, atomic_load(&br->written));
			kv_batch_put(b, KV_CF_META, k, 9, v, 8);
		}
	}
	pthread_rwlock_unlock(&s->branches_lock);
}

/* A batch of counters (store_batch_counters) that failed: its branches
 * are dirty again, so that the next sync or the close writes them; the
 * dirty flags went when it was filled. */
static void store_batch_counters_failed(struct store *s,
					const struct kv_batch *b)
{
	size_t i;

	pthread_rwlock_rdlock(&s->branches_lock);
	for (i = 0; i < b->nops; i++) {
		const unsigned char *k = kv_batch_key(b, &b->ops[i]);
		struct store_branch *br;

		if (b->ops[i].klen != 9 || k[0] != 'W')
			continue;
		br = store_branch_by_id(s, store_get64(k + 1));
		if (br)
			atomic_store(&br->written_dirty, true);
	}
	pthread_rwlock_unlock(&s->branches_lock);
}

int store_sync(struct store *s)
{
	uint64_t ticket = atomic_load(&s->writes_done), target;
	struct kv_batch b;
	int rc = 0;

	/* Group commit: whoever holds sync_mu syncs for every write done
	 * before it started; later callers whose writes it covered return
	 * without syncing again.  sync_mu guards no data. */
	pthread_mutex_lock(&s->sync_mu);
	if (s->writes_synced >= ticket && ticket != 0)
		goto out_unlock;
	target = atomic_load(&s->writes_done);
	kv_batch_init(&b);
	store_batch_counters(s, &b);
	if (b.nops)
		rc = kv_write(s->kv, &b, true);
	else
		rc = kv_sync(s->kv);
	if (rc && b.nops)
		store_batch_counters_failed(s, &b);
	kv_batch_release(&b);
	if (rc == 0)
		s->writes_synced = target;
out_unlock:
	pthread_mutex_unlock(&s->sync_mu);
	return rc;
}

int store_sync_branch(struct store *s, uint64_t branch)
{
	uint64_t need = UINT64_MAX, multi;

	pthread_rwlock_rdlock(&s->branches_lock);
	if (branch && branch < s->branches_cap && s->branches[branch])
		need = atomic_load(&s->branches[branch]->sync_ticket);
	pthread_rwlock_unlock(&s->branches_lock);
	multi = atomic_load(&s->multi_ticket);
	if (multi > need)
		need = multi;
	/* Every write that returned got its ticket before it returned, so
	 * all of this branch's are covered once writes_synced reaches it. */
	if (need != UINT64_MAX && atomic_load(&s->writes_synced) >= need)
		return 0;
	return store_sync(s);
}

int store_sync_pending(struct store *s)
{
	if (atomic_load(&s->writes_synced) >= atomic_load(&s->writes_done))
		return 0;
	return store_sync(s);
}

/* ---- GC's set across a clean close (GC-2) ----
 *
 * The set lives in memory, so the first GC after open would have to scan
 * the whole store, reading every block of it.  A clean close saves the
 * set instead, in META "G", in the same synced batch as the last
 * counters, and the next open takes it back and deletes the record:
 *   "BGC1", u64 "S" mark at close, u64 count, then per object
 *   u8 cf, u64 branch, u64 ino, u64 blk, u64 pending.
 * It is saved only when it is complete: a GC has ended well since open
 * (gc_primed), no note was lost, and no whole scan is owed.  It is taken
 * back only if the seq mark "S" is the one it was saved with: any write
 * after that close (by an older build, say) reserves seqs first and moves
 * the mark, and the set would then miss that write's objects.  Deleting
 * it at open needs no sync: a crash that loses the delete loses every
 * later write too, and the store is then as the close left it. */
#define STORE_GC_SAVE_MAGIC "BGC1"
#define STORE_GC_SAVE_HDR 20u
#define STORE_GC_SAVE_ENT 33u
#define STORE_GC_SAVE_MAX (16u << 20)

static void store_gc_save(struct store *s, struct kv_batch *b)
{
	size_t n, cap, len, i, j, k = 0;
	unsigned char *v, *p;
	uint64_t mark;
	bool owed;

	if (atomic_load(&s->gc_running) || !s->gc_primed ||
	    atomic_load(&s->gc_dirty_lost))
		return;
	pthread_rwlock_rdlock(&s->branches_lock);
	owed = s->gc_force_full || s->n_gc_full > 0;
	pthread_rwlock_unlock(&s->branches_lock);
	n = atomic_load(&s->gc_dirty_n);
	if (owed ||
	    n > (STORE_GC_SAVE_MAX - STORE_GC_SAVE_HDR) / STORE_GC_SAVE_ENT)
		return;
	cap = n;
	len = STORE_GC_SAVE_HDR + cap * STORE_GC_SAVE_ENT;
	v = malloc(len);
	if (!v)
		return; /* the next open scans everything */
	pthread_mutex_lock(&s->seq_mu);
	mark = s->seq_hi;
	pthread_mutex_unlock(&s->seq_mu);
	memcpy(v, STORE_GC_SAVE_MAGIC, 4);
	store_put64(v + 4, mark);
	p = v + STORE_GC_SAVE_HDR;
	for (i = 0; i < STORE_GC_STRIPES; i++) {
		struct store_gc_stripe *st = &s->gc_dirty[i];

		pthread_mutex_lock(&st->mu);
		for (j = 0; j < st->cap; j++) {
			const struct store_gc_obj *o = &st->tab[j];

			if (!o->used)
				continue;
			if (k == cap || o->pending == STORE_GC_TAKEN) {
				k = SIZE_MAX;
				break;
			}
			p[0] = o->cf;
			store_put64(p + 1, o->branch);
			store_put64(p + 9, o->ino);
			store_put64(p + 17, o->blk);
			store_put64(p + 25, o->pending);
			p += STORE_GC_SAVE_ENT;
			k++;
		}
		pthread_mutex_unlock(&st->mu);
		if (k == SIZE_MAX)
			break;
	}
	if (k != SIZE_MAX) {
		store_put64(v + 12, k);
		kv_batch_put(b, KV_CF_META, "G", 1, v,
			     STORE_GC_SAVE_HDR + k * STORE_GC_SAVE_ENT);
	}
	free(v);
}

/* At open: take back the set a clean close saved, if it still applies
 * (then the first GC need not scan everything), and delete the record.
 * Never fails the open: the record only saves work, and without it the
 * first GC scans everything.  A delete that fails (a full disk) leaves a
 * record that the next write's seq reservation makes stale. */
static void store_gc_restore(struct store *s, uint64_t mark)
{
	unsigned char hdr[STORE_GC_SAVE_HDR], *v = NULL;
	size_t vlen, len, n, i;
	struct kv_batch b;
	bool found;
	int rc;

	rc = kv_get(s->kv, KV_CF_META, "G", 1, hdr, sizeof(hdr), &vlen, &found);
	if (rc) {
		LOG_WARN(
			s,
			"cannot read the saved GC set (%s); the first GC scans everything",
			strerror(-rc));
		return;
	}
	if (!found)
		return;
	if (vlen < STORE_GC_SAVE_HDR ||
	    memcmp(hdr, STORE_GC_SAVE_MAGIC, 4) != 0 ||
	    (vlen - STORE_GC_SAVE_HDR) % STORE_GC_SAVE_ENT != 0 ||
	    store_get64(hdr + 12) !=
		    (vlen - STORE_GC_SAVE_HDR) / STORE_GC_SAVE_ENT) {
		LOG_WARN(s, "ignoring a damaged saved GC set (%zu bytes)",
			 vlen);
		goto out_delete;
	}
	if (store_get64(hdr + 4) != mark) {
		LOG_INFO(
			s,
			"saved GC set is stale; the first GC scans everything");
		goto out_delete;
	}
	n = (vlen - STORE_GC_SAVE_HDR) / STORE_GC_SAVE_ENT;
	v = malloc(vlen);
	if (!v)
		goto out_delete;
	rc = kv_get(s->kv, KV_CF_META, "G", 1, v, vlen, &len, &found);
	if (rc || !found || len != vlen)
		goto out_delete;
	for (i = 0; i < n; i++) {
		const unsigned char *p =
			v + STORE_GC_SAVE_HDR + i * STORE_GC_SAVE_ENT;

		if (p[0] >= KV_CF_COUNT || p[0] == KV_CF_META)
			break;
		store_gc_note(s, p[0], store_get64(p + 1), store_get64(p + 9),
			      store_get64(p + 17), store_get64(p + 25));
	}
	if (i == n && !atomic_load(&s->gc_dirty_lost)) {
		s->gc_primed = true;
		LOG_INFO(s, "took back GC's set of %zu objects", n);
	} else {
		atomic_store(&s->gc_dirty_lost, true);
	}
out_delete:
	free(v);
	kv_batch_init(&b);
	kv_batch_delete(&b, KV_CF_META, "G", 1);
	rc = kv_write(s->kv, &b, false);
	kv_batch_release(&b);
	if (rc)
		LOG_WARN(s, "cannot delete the saved GC set (%s)",
			 strerror(-rc));
}

/* The database's files first and the marker last: cut short, what is
 * left is refused as a damaged store, not taken for an empty new one.
 * The lock file goes last, while the caller still holds its flock: a
 * daemon that opens the store meanwhile is refused as "in use" (one that
 * locks the unlinked file after we close it finds no marker, or no
 * database, and is refused too). */
static int store_remove_files(const char *dir, bool keep_dir)
{
	static const char *const top[] = { STORE_MARKER, STORE_LOCKFILE };
	char path[PATH_MAX];
	struct dirent *de;
	size_t i;
	int rc = 0;
	DIR *d;

	if (snprintf(path, sizeof(path), "%s/db", dir) >= (int)sizeof(path))
		return -ENAMETOOLONG;
	d = opendir(path);
	if (d) {
		while ((de = readdir(d))) {
			if (strcmp(de->d_name, ".") == 0 ||
			    strcmp(de->d_name, "..") == 0)
				continue;
			if (unlinkat(dirfd(d), de->d_name, 0) != 0 && !rc)
				rc = -errno;
		}
		closedir(d);
		if (rmdir(path) != 0 && !rc)
			rc = -errno;
	} else if (errno != ENOENT) {
		rc = -errno;
	}
	for (i = 0; i < sizeof(top) / sizeof(top[0]) && !rc; i++) {
		snprintf(path, sizeof(path), "%s/%s", dir, top[i]);
		if (unlink(path) != 0 && errno != ENOENT)
			rc = -errno;
	}
	if (!rc && !keep_dir && rmdir(dir) != 0)
		rc = -errno;
	return rc;
}

int store_close_remove(struct store *s, bool keep_dir)
{
	char *dir;
	int rc, lock_fd;

	if (!s)
		return 0;
	store_filters_join(s);
	kv_close(s->kv);
	dir = s->dir;
	s->dir = NULL;
	lock_fd = s->lock_fd;
	s->lock_fd = -1;
	store_free(s);
	rc = dir ? store_remove_files(dir, keep_dir) : -ENOMEM;
	if (lock_fd >= 0)
		close(lock_fd);
	free(dir);
	return rc;
}

int store_close(struct store *s)
{
	struct kv_batch b;
	int rc;

	if (!s)
		return 0;
	store_filters_join(s);
	kv_batch_init(&b);
	rc = 0;
	if (!s->cfg.read_only) {
		store_batch_counters(s, &b);
		store_gc_save(s, &b);
		/* TIME-1: an entry still owed to the time index */
		if (s->time_lost_ms > 0)
			store_batch_time(&b, -1, 0, s->time_lost_ms,
					 s->time_lost_seq);
		rc = kv_write(s->kv, &b, true);
	}
	kv_batch_release(&b);
	kv_close(s->kv);
	store_free(s);
	return rc;
}

int store_seq_at_time(struct store *s, int64_t unix_ns, uint64_t *seq)
{
	unsigned char key[9];
	struct kv_iter *it;
	int64_t now = store_now_ns();
	uint64_t result, now_seq;
	size_t klen, vlen;
	int rc;

	if (unix_ns > now)
		return -EINVAL;
	if (unix_ns < store_oldest_time(s))
		return -ERANGE;
	/* First: the commits in flight settle their index entries (TIME-1)
	 * before they end. */
	now_seq = store_seq_now(s);
	rc = kv_iter_new(s->kv, KV_CF_META, false, &it);
	if (rc)
		return rc;
	/* The first ms indexed after unix_ns: every seq below its first seq
	 * was handed out at or before unix_ns, or less than
	 * STORE_TIME_INDEX_MS after it (TIME-1). */
	key[0] = 'T';
	store_put64(key + 1, (uint64_t)(unix_ns / 1000000) + 1);
	kv_iter_seek(it, key, sizeof(key));
	if (kv_iter_valid(it)) {
		const unsigned char *k = kv_iter_key(it, &klen);
		const unsigned char *v = kv_iter_value(it, &vlen);

		if (klen == 9 && k[0] == 'T' && vlen == 8) {
			result = store_get64(v) - 1;
			goto found;
		}
	}
	rc = kv_iter_status(it);
	if (rc)
		goto out;
	result = UINT64_MAX;
found:
	*seq = result < now_seq ? result : now_seq;
out:
	kv_iter_free(it);
	return rc;
}

int64_t store_oldest_time(struct store *s)
{
	int64_t h = atomic_load(&s->horizon_ns);

	if (h < s->created_ns)
		h = s->created_ns;
	/* Rounded up to a whole ms: the time is shown with ms (branchctl
	 * status, its messages), and a user who gives it back to --at must
	 * not be refused for the ns the display cut off. */
	return (h + 999999) / 1000000 * 1000000;
}

uint64_t store_oldest_seq(struct store *s)
{
	return atomic_load(&s->horizon_seq);
}

int store_stats(struct store *s, struct store_stats *out)
{
	struct statvfs vfs;
	int rc;

	memset(out, 0, sizeof(*out));
	rc = kv_disk_usage(s->kv, &out->disk_bytes);
	if (rc)
		return rc;
	if (statvfs(s->dir, &vfs) != 0)
		return -errno;
	out->fs_total_bytes = (uint64_t)vfs.f_blocks * vfs.f_frsize;
	out->fs_avail_bytes = (uint64_t)vfs.f_bavail * vfs.f_frsize;
	out->reserve_bytes = s->reserve_bytes;
	out->seq = store_seq_now(s);
	pthread_mutex_lock(&s->ino.mu);
	out->next_ino = s->ino.next;
	pthread_mutex_unlock(&s->ino.mu);
	pthread_rwlock_rdlock(&s->branches_lock);
	out->branches = s->nbranches;
	out->deleted_pending = s->ndead;
	pthread_rwlock_unlock(&s->branches_lock);
	out->filters_ready = atomic_load(&s->filters_ready);
	out->filters_objects = atomic_load(&s->filters_objs);
	out->filters_ms = (uint64_t)atomic_load(&s->filters_ms);
	return 0;
}

/* ---------------------------------------------------------- branches */

static int store_branch_put(struct kv_batch *b, const struct store_branch *br)
{
	unsigned char k[9], v[STORE_BRREC_HDR + STORE_NAME_MAX];
	size_t vlen = store_brrec_encode(v, br);

	k[0] = 'B';
	store_put64(k + 1, br->id);
	kv_batch_put(b, KV_CF_META, k, 9, v, vlen);
	return b->err;
}

static int store_readdir_view(struct store *s, const struct store_view *v,
			      uint64_t dir, const char *prefix, size_t max,
			      struct store_dirent **out, size_t *n);

/* Tombstone the root entry name of view v in branch br (whose root is
 * root_ino), and count the link it held; a missing name is no error. */
static int store_batch_drop_one(struct store *s, struct kv_batch *b,
				const struct store_view *v, uint64_t br,
				uint64_t root_ino, const char *name)
{
	struct store_attr a;
	uint64_t ino;
	uint32_t mode;
	int rc;

	rc = store_dirent_find(s, v, root_ino, name, &ino, &mode);
	if (rc == -ENOENT)
		return 0;
	if (rc)
		return rc;
	store_batch_dirent(b, br, root_ino, name, 0, 0);
	rc = store_attr_load(s, v, ino, &a, NULL, 0);
	if (rc == 0 && !S_ISDIR(a.mode) && a.nlink > 0) {
		char target[STORE_SYMLINK_MAX + 1];

		if (S_ISLNK(a.mode))
			store_attr_load(s, v, ino, &a, target, sizeof(target));
		a.nlink--;
		store_batch_attr(b, br, ino, &a,
				 S_ISLNK(a.mode) ? target : NULL);
	}
	return 0;
}

static bool store_is_pattern(const char *name)
{
	return strpbrk(name, "*?[") != NULL;
}

/* dst = dir/name, or name when dir is the root's "". */
static void store_drop_path(char dst[STORE_DROP_PATH_MAX], const char *dir,
			    const char *name)
{
	snprintf(dst, STORE_DROP_PATH_MAX, "%s%s%s", dir, *dir ? "/" : "",
		 name);
}

/* The directories of view v that drop_names apply in (store_drop_dirs):
 * root, then the directories at most cfg.drop_depth levels below it that
 * hold an entry named drop_marker, when root holds none.  Of each
 * directory the first STORE_DROP_LIST names are listed (a root of many
 * files stays cheap to fork), and at most STORE_DROP_SCAN directories of
 * a level are looked into, in the order of names; out keeps at most
 * STORE_DROP_DIRS.  named (NULL: not wanted) gets the same directories
 * with their depth and path (store_drop_dirs_named). */
static int store_drop_dirs_view(struct store *s, const struct store_view *v,
				uint64_t root, uint64_t out[STORE_DROP_DIRS],
				size_t *n, struct store_drop_dir *named)
{
	uint64_t level[STORE_DROP_SCAN], next[STORE_DROP_SCAN], ino;
	/* the paths of level[] and next[], kept when named is wanted: two
	 * halves of paths, swapped at each level */
	char(*paths)[STORE_DROP_PATH_MAX] = NULL;
	char(*lpath)[STORE_DROP_PATH_MAX] = NULL, (*npath)[STORE_DROP_PATH_MAX];
	size_t nl = 1, nn, i, j;
	unsigned d;
	int rc;

	out[0] = root;
	*n = 1;
	if (named) {
		named[0].ino = root;
		named[0].depth = 0;
		named[0].path[0] = 0;
	}
	if (!s->cfg.drop_depth)
		return 0;
	rc = store_dirent_find(s, v, root, s->drop_marker, &ino, NULL);
	if (rc != -ENOENT)
		return rc; /* 0: the root is marked, and only it counts */
	if (named) {
		paths = malloc(2 * STORE_DROP_SCAN * sizeof(*paths));
		if (!paths)
			return -ENOMEM;
		paths[0][0] = 0;
	}
	lpath = paths;
	npath = paths ? paths + STORE_DROP_SCAN : NULL;
	level[0] = root;
	rc = 0;
	for (d = 1; d <= s->cfg.drop_depth && nl && !rc; d++) {
		nn = 0;
		for (i = 0; i < nl && !rc; i++) {
			struct store_dirent *e = NULL;
			size_t ne = 0, looked = 0;

			rc = store_readdir_view(s, v, level[i], "",
						STORE_DROP_LIST, &e, &ne);
			if (rc)
				break;
			for (j = 0; j < ne && looked < STORE_DROP_SCAN; j++) {
				if (!S_ISDIR(e[j].mode))
					continue;
				looked++;
				rc = store_dirent_find(s, v, e[j].ino,
						       s->drop_marker, &ino,
						       NULL);
				if (rc == 0 && *n < STORE_DROP_DIRS) {
					if (named) {
						named[*n].ino = e[j].ino;
						named[*n].depth = d;
						store_drop_path(named[*n].path,
								lpath[i],
								e[j].name);
					}
					out[(*n)++] = e[j].ino;
				} else if (rc == -ENOENT &&
					   d < s->cfg.drop_depth &&
					   nn < STORE_DROP_SCAN) {
					if (npath)
						store_drop_path(npath[nn],
								lpath[i],
								e[j].name);
					next[nn++] = e[j].ino;
				} else if (rc && rc != -ENOENT) {
					break;
				}
				rc = 0;
			}
			free(e);
		}
		memcpy(level, next, nn * sizeof(next[0]));
		if (lpath) {
			char(*t)[STORE_DROP_PATH_MAX] = lpath;

			lpath = npath;
			npath = t;
		}
		nl = nn;
	}
	free(paths);
	return rc;
}

/* store_drop_dirs_view in a view of its own of branch as of seq. */
static int store_drop_dirs_at(struct store *s, uint64_t branch, uint64_t seq,
			      uint64_t root, uint64_t out[STORE_DROP_DIRS],
			      size_t *n, struct store_drop_dir *named)
{
	struct store_view v;
	int rc;

	rc = store_view_get(s, branch, seq, &v);
	if (rc)
		return rc;
	rc = store_drop_dirs_view(s, &v, root, out, n, named);
	store_view_release(&v);
	return rc;
}

int store_drop_dirs(struct store *s, uint64_t branch, uint64_t seq,
		    uint64_t root, uint64_t out[STORE_DROP_DIRS], size_t *n)
{
	return store_drop_dirs_at(s, branch, seq, root, out, n, NULL);
}

int store_drop_dirs_named(struct store *s, uint64_t branch, uint64_t seq,
			  uint64_t root,
			  struct store_drop_dir out[STORE_DROP_DIRS], size_t *n)
{
	uint64_t dirs[STORE_DROP_DIRS];

	return store_drop_dirs_at(s, branch, seq, root, dirs, n, out);
}

/* Add tombstones for drop_names found in directory dir of view v, written
 * into branch br.  A plain name is one lookup; a name
 * with a wildcard is an fnmatch(3) pattern, matched against the root's
 * entries that start with its literal prefix (".s.PGSQL." of ".s.PGSQL.*":
 * one seek, however many entries the root has).  A name both plain and
 * matched is dropped once. */
static int store_batch_drop_in(struct store *s, struct kv_batch *b,
			       const struct store_view *v, uint64_t br,
			       uint64_t root_ino, const char *const *drop_names)
{
	const char *const *np, *const *pp;
	int rc;

	for (np = drop_names; np && *np; np++) {
		if (store_is_pattern(*np) || store_name_check(*np))
			continue;
		rc = store_batch_drop_one(s, b, v, br, root_ino, *np);
		if (rc)
			return rc;
	}
	for (pp = drop_names; pp && *pp; pp++) {
		char prefix[STORE_NAME_MAX + 1];
		struct store_dirent *d = NULL;
		size_t n = 0, i, plen;

		if (!store_is_pattern(*pp))
			continue;
		plen = strcspn(*pp, "*?[\\");
		if (plen > STORE_NAME_MAX)
			continue;
		memcpy(prefix, *pp, plen);
		prefix[plen] = 0;
		rc = store_readdir_view(s, v, root_ino, prefix, SIZE_MAX, &d,
					&n);
		for (i = 0; i < n && !rc; i++) {
			bool done = false;

			if (fnmatch(*pp, d[i].name, 0) != 0)
				continue;
			/* by a plain name, or by an earlier pattern */
			for (np = drop_names; np != pp && !done; np++)
				done = store_is_pattern(*np) ?
					       fnmatch(*np, d[i].name, 0) == 0 :
					       strcmp(*np, d[i].name) == 0;
			for (np = pp + 1; *np && !done; np++)
				done = !store_is_pattern(*np) &&
				       strcmp(*np, d[i].name) == 0;
			if (!done)
				rc = store_batch_drop_one(s, b, v, br, root_ino,
							  d[i].name);
		}
		free(d);
		if (rc)
			return rc;
	}
	return 0;
}

/* Add tombstones for drop_names in every directory of v that they apply
 * in (store_drop_dirs_view), written into branch br whose root is
 * root_ino. */
static int store_batch_drop_names(struct store *s, struct kv_batch *b,
				  const struct store_view *v, uint64_t br,
				  uint64_t root_ino,
				  const char *const *drop_names)
{
	uint64_t dirs[STORE_DROP_DIRS];
	size_t n, i;
	int rc;

	if (!drop_names || !drop_names[0])
		return 0;
	rc = store_drop_dirs_view(s, v, root_ino, dirs, &n, NULL);
	for (i = 0; i < n && !rc; i++)
		rc = store_batch_drop_in(s, b, v, br, dirs[i], drop_names);
	return rc;
}

static int store_branches_grow(struct store *s, uint64_t id)
{
	size_t ncap;
	struct store_branch **nb;

	if (id < s->branches_cap)
		return 0;
	ncap = s->branches_cap ? s->branches_cap : 64;
	while (ncap <= id)
		ncap *= 2;
	nb = realloc(s->branches, ncap * sizeof(*nb));
	if (!nb)
		return -ENOMEM;
	memset(nb + s->branches_cap, 0, (ncap - s->branches_cap) * sizeof(*nb));
	s->branches = nb;
	s->branches_cap = ncap;
	return 0;
}

int store_branch_create(struct store *s,
			const struct store_branch_create_args *args,
			struct store_branch_info *out)
{
	struct store_branch *nb = NULL, *parent = NULL;
	struct store_view pv = { 0 };
	struct kv_batch b;
	unsigned char ck = 'C', cv[8];
	uint64_t at = 0, seq, ticket = 0;
	int64_t at_ns = 0;
	bool synced = false;
	int rc;

	rc = store_branch_name_check(args->name);
	if (rc)
		return rc;
	rc = store_space_ok(s);
	if (rc)
		return rc;
	nb = calloc(1, sizeof(*nb));
	if (!nb)
		return -ENOMEM;
	nb->touched = calloc(STORE_TOUCH_WORDS, sizeof(*nb->touched));
	if (!nb->touched) {
		free(nb);
		return -ENOMEM;
	}
	/* The wall time of a past fork point, while the time index has it
	 * (it reads the store: before the lock). */
	if (args->parent_id && args->at_seq != STORE_SEQ_LATEST &&
	    store_time_of_seq(s, args->at_seq, &at_ns) != 0)
		at_ns = 0;
	kv_batch_init(&b);
	pthread_rwlock_wrlock(&s->branches_lock);
	if (store_branch_by_name(s, args->name)) {
		rc = -EEXIST;
		goto out_unlock;
	}
	if (s->next_branch_id > STORE_BRANCH_ID_MAX) {
		rc = -EMLINK;
		goto out_unlock;
	}
	rc = store_branches_grow(s, s->next_branch_id);
	if (rc)
		goto out_unlock;
	if (args->parent_id) {
		parent = store_branch_by_id(s, args->parent_id);
		if (!parent) {
			rc = -ENOENT;
			goto out_unlock;
		}
	}
	nb->id = s->next_branch_id;
	snprintf(nb->name, sizeof(nb->name), "%s", args->name);
	nb->owner_uid = args->owner_uid;
	nb->ctime_ns = store_now_ns();
	if (parent) {
		if (args->at_seq == STORE_SEQ_LATEST) {
			at = store_seq_now(s);
		} else {
			at = args->at_seq;
			if (at > atomic_load(&s->watermark)) {
				rc = -EINVAL;
				goto out_unlock;
			}
			if (at < parent->create_seq || at < parent->floor ||
			    at < atomic_load(&s->horizon_seq)) {
				rc = -ERANGE;
				goto out_unlock;
			}
		}
		nb->parent_id = parent->id;
		nb->fork_seq = at;
		nb->fork_ns = args->at_seq == STORE_SEQ_LATEST ? nb->ctime_ns :
								 at_ns;
		nb->root_ino = parent->root_ino;
		/* The view of the parent at the fork point, for drop_names
		 * (branches_lock is held: no store_view_get). */
		pv.lv = pv.inline_lv;
		rc = store_view_build(s, parent, at, &pv);
		if (rc)
			goto out_unlock;
		/* The new branch's view is one level more than its parent's,
		 * and a view of more than STORE_MAX_DEPTH levels is -ELOOP:
		 * such a branch could be made, but nothing in it read. */
		if (pv.n >= STORE_MAX_DEPTH) {
			rc = -EMLINK;
			goto out_unlock;
		}
		/* A past moment must be one at which the parent was: a branch
		 * made empty records seq 1 as its create_seq (a lower bound:
		 * its commit comes later), so a fork of it before it was made
		 * passes the test above and would have no root directory. */
		if (args->at_seq != STORE_SEQ_LATEST) {
			struct store_attr ra;

			rc = store_attr_load(s, &pv, parent->root_ino, &ra,
					     NULL, 0);
			if (rc == -ENOENT)
				rc = -ERANGE;
			if (rc)
				goto out_unlock;
		}
		rc = store_batch_drop_names(s, &b, &pv, nb->id, nb->root_ino,
					    args->drop_names);
		if (rc)
			goto out_unlock;
	} else {
		struct store_attr ra;
		struct timespec now = store_now_ts();

		rc = store_counter_next(s, &s->ino, STORE_INO_MAX,
					&nb->root_ino);
		if (rc)
			goto out_unlock;
		memset(&ra, 0, sizeof(ra));
		ra.mode = S_IFDIR | (args->root_mode & 07777);
		ra.uid = args->root_uid;
		ra.gid = args->root_gid;
		ra.nlink = 2;
		ra.atime = ra.mtime = ra.ctime = now;
		store_batch_attr(&b, nb->id, nb->root_ino, &ra, NULL);
	}
	/* create_seq is a lower bound of the commit seq (which is handed out
	 * only inside store_commit, after the record is encoded): no write
	 * of this branch has a seq below it. */
	nb->create_seq = (parent ? at : 0) + 1;
	rc = store_branch_put(&b, nb);
	if (rc)
		goto out_unlock;
	store_put64(cv, nb->id + 1);
	kv_batch_put(&b, KV_CF_META, &ck, 1, cv, 8);
	/* Synced after the unlock unless lazy; either way the new branch's
	 * ticket makes its first fsync sync this record (and all before it:
	 * the fork's data) if nothing else has. */
	rc = store_commit_locked(s, &b, nb, &seq, &ticket);
	if (rc)
		goto out_unlock;
	atomic_store(&nb->sync_ticket, ticket);
	synced = !args->lazy;
	s->branches[nb->id] = nb;
	store_names_add(s, nb);
	s->next_branch_id++;
	s->nbranches++;
	if (parent)
		parent->nchildren++;
	if (out)
		store_branch_info_fill(nb, out);
	nb = NULL;
out_unlock:
	pthread_rwlock_unlock(&s->branches_lock);
	store_view_release(&pv);
	kv_batch_release(&b);
	if (nb)
		free((void *)nb->touched);
	free(nb);
	if (synced)
		rc = store_sync(s);
	return rc;
}

/* ------------------------------------------------ deleted branches' keys
 *
 * store_branch_delete only deletes the branch's record (and notes the id,
 * below): no reader ever asks for a deleted branch's keys again (its
 * children are gone, INV-5, and ids are never reused), so they can wait
 * for GC.  An earlier build dropped them at delete time with one
 * DeleteRange per family, and those range deletions cost every read that
 * misses until a compaction took them out: RocksDB 7.8 sorts the
 * memtable's range deletions again for every new iterator, and a seek
 * that finds no key of its object (a lookup of a missing name, a level of
 * a view without the block) steps over every range deletion in the files
 * between it and the next live key.  With 2000 branches made and deleted
 * by mkdir and rmdir, a missing name took 0.4 ms to look up through the
 * mount instead of 20 us (1 ms once the deletions were in files) and
 * mkdir 4.6 ms; and since a compaction drops a range deletion only where
 * it writes the last level, which neither RocksDB's own compactions nor
 * a plain manual one redo, the range deletions of a branch without keys
 * of its own stayed in the files for good.  Compacting them away soon
 * after each delete, in the background, cost 17% of pgbench's TPS on
 * main beside a branch deleted every 0.7 s (each compaction pulled the
 * memtable and level 0, full of main's writes, down with it).
 *
 * So a deleted branch stays noted (META "D" id, written in the delete's
 * batch, and dead_ids in memory) until GC (store_gc, or
 * store_drop_deleted) drops its keys: one DeleteRange per family that
 * holds keys in the range, and a compaction of that range through the
 * last level (kv_compact with bottom), which removes the keys and the
 * range deletion together.  Until then iterators still show the keys
 * (they ignore range deletions, kv.h: RocksDB 7.8's lose read errors
 * where they apply them), as they do between the delete and the drop:
 * reads are of live branches' keys, and the one scan across branches,
 * the read filters' rebuild at open, skips ids that are no branch.
 * Deleted ids with no live branch between them make one range (every id
 * between them is a deleted branch's or never had keys: ids only grow),
 * so a burst of deletes costs a few compactions, and branches that never
 * wrote cost none.
 *
 * DROP-1: the note goes only once an iterator (which also shows the keys
 * a range deletion hides, kv.c) finds no key in the range.  RocksDB's C
 * API returns nothing from a compaction: one that failed on a full disk,
 * or that RocksDB skipped after a background error, looked like success,
 * the note went, and no GC looked at the range again (branchctl gc at a
 * full disk freed nothing of a 24 MiB branch in 3 of 13 runs, and the
 * space never came back).  A range whose rewrite (the table files it
 * shares with live branches, kv_rewrite_bytes) needs more than is free
 * above the reserve is not compacted at all: the compaction would fail
 * and stop RocksDB's writes until its recovery; its files that hold
 * nothing else still go (kv_drop_files), and the next GC with room does
 * the rest.  A retry writes no second range deletion over a range whose
 * first one is in place (drop_tombs, in memory: after a restart one more
 * is written); one per retry would pile up while a full disk lasts.
 *
 * A store that the earlier build deleted branches in keeps their range
 * deletions, which no note names.  Every store this build creates or
 * cleans carries META "R"; a store without it, with an id below the next
 * one that is neither a branch nor noted (store_legacy_check, at open),
 * gets one compaction of the whole store through the last level from its
 * next GC (store_legacy_drop), which drops them all.
 *
 * DROP-3: keys go only once the deletes of their branches are durable.
 * A delete is committed under branches_lock and synced after it is
 * dropped; a GC that took the note in between (or after that sync failed)
 * dropped the branch's table files, which RocksDB's manifest makes
 * durable at once, while the delete itself was still only in the unsynced
 * WAL and journal: a power cut brought the branch back without its data.
 * So a drop first syncs, unless a sync already covered the last delete
 * (dead_ticket): at most one sync per drop, and none in the usual case.
 *
 * DROP-2: the same holds for GC's compactions of the whole store, whose
 * work no key range shows: "R" is written only once the data families'
 * table files hold no deletion at all (a compaction through the last
 * level drops every one: nothing else writes deletions there while GC
 * runs), and GC's whole compaction counts as done only if it left fewer
 * deletions than it found (or found none).  A compaction that RocksDB
 * skipped (after a background error) returned 0 like one that ran: "R"
 * went in and the earlier build's range deletions stayed for good, and
 * GC reported "compacted" and waited for another 1/8 of the store to be
 * deleted before it tried again.
 */

static int store_u64_cmp(const void *a, const void *b);

/* Note a deleted branch for store_drop_deleted.  branches_lock held for
 * writing.  Without memory the note is lost until the next open, which
 * finds the branch's "D" key. */
static void store_dead_note(struct store *s, uint64_t id)
{
	if (s->ndead == s->cap_dead) {
		size_t ncap = s->cap_dead ? s->cap_dead * 2 : 16;
		uint64_t *nd = realloc(s->dead_ids, ncap * sizeof(*nd));

		if (!nd)
			return;
		s->dead_ids = nd;
		s->cap_dead = ncap;
	}
	if (s->ndead == 0)
		s->dead_since_ns = store_mono_ns();
	s->dead_ids[s->ndead++] = id;
}

/* Give ids back to the noted ones (a drop that failed). */
static void store_dead_return(struct store *s, const uint64_t *ids, size_t n)
{
	size_t i;

	pthread_rwlock_wrlock(&s->branches_lock);
	for (i = 0; i < n; i++)
		store_dead_note(s, ids[i]);
	pthread_rwlock_unlock(&s->branches_lock);
}

/* Take the noted ids (caller frees *ids). */
static void store_dead_take(struct store *s, uint64_t **ids, size_t *n)
{
	pthread_rwlock_wrlock(&s->branches_lock);
	*ids = s->dead_ids;
	*n = s->ndead;
	s->dead_ids = NULL;
	s->ndead = s->cap_dead = 0;
	pthread_rwlock_unlock(&s->branches_lock);
}

/* Does cf hold a key of a branch id in [lo, hi), also one that a range
 * deletion hides until a compaction removes both? */
static int store_range_has(struct store *s, int cf, const unsigned char *lo,
			   const unsigned char *hi, bool *has)
{
	struct kv_iter *it;
	int rc;

	rc = kv_iter_new(s->kv, cf, 0, &it);
	if (rc)
		return rc;
	kv_iter_seek(it, lo, 8);
	*has = false;
	if (kv_iter_valid(it)) {
		size_t klen;
		const unsigned char *k = kv_iter_key(it, &klen);

		*has = klen >= 8 && memcmp(k, hi, 8) < 0;
	}
	rc = kv_iter_status(it);
	kv_iter_free(it);
	return rc;
}

/* What store_drop_ranges left: ids[0..kept) still have keys in the store
 * and stay noted (the caller gives them back); no_room: their rewrite
 * was not tried, it needs about need bytes and above (free above the
 * reserve) were free; else the compaction left them (crc its error, 0 if
 * none was seen). */
struct store_drop_left {
	size_t kept;
	bool no_room;
	uint64_t need, above;
	int crc;
};

/* Room above the reserve to rewrite need bytes?  *above: what is free
 * above the reserve (0 below it). */
static bool store_drop_room(struct store *s, uint64_t need, uint64_t *above)
{
	struct statvfs vfs;
	uint64_t avail;

	*above = 0;
	atomic_store(&s->space_checked_ns, 0);
	if (store_space_ok(s) != 0)
		return false;
	if (statvfs(s->dir, &vfs) != 0)
		return true; /* cannot tell: as before the estimate */
	avail = (uint64_t)vfs.f_bavail * vfs.f_frsize;
	*above = avail > s->reserve_bytes ? avail - s->reserve_bytes : 0;
	return *above >= need;
}

/* Did a drop write range deletions over ids [lo, hi) whose keys are still
 * there?  (Their keys are hidden: a range deletion over them again would
 * only slow reads until the rewrite.)  branches_lock held. */
static bool store_drop_tomb_has(struct store *s, uint64_t lo, uint64_t hi)
{
	size_t i;

	for (i = 0; i < s->ndrop_tombs; i++)
		if (s->drop_tombs[i][0] <= lo && hi <= s->drop_tombs[i][1])
			return true;
	return false;
}

/* Note (add) or forget (!add) the range deletions over ids [lo, hi), and
 * forget every noted range inside it.  branches_lock held for writing.
 * Without room, the next retry writes them again. */
static void store_drop_tomb_note(struct store *s, uint64_t lo, uint64_t hi,
				 bool add)
{
	size_t i = 0;

	while (i < s->ndrop_tombs)
		if (lo <= s->drop_tombs[i][0] && s->drop_tombs[i][1] <= hi)
			memcpy(s->drop_tombs[i],
			       s->drop_tombs[--s->ndrop_tombs],
			       sizeof(s->drop_tombs[i]));
		else
			i++;
	if (add && s->ndrop_tombs < STORE_DROP_TOMBS) {
		s->drop_tombs[s->ndrop_tombs][0] = lo;
		s->drop_tombs[s->ndrop_tombs++][1] = hi;
	}
}

/* Drop the keys of the deleted branches ids[0..n) (sorted here): a range
 * deletion per range and family with keys there (unless an earlier try
 * left them in place), the table files that hold nothing else, then a
 * compaction of the range through the last level if there is room for
 * what it rewrites; then forget the "D" keys of the ranges that hold no
 * key any more (DROP-1).  0 with *left filled, or an error before
 * anything could be told (then every id stays). */
static int store_drop_ranges(struct store *s, uint64_t *ids, size_t n,
			     struct store_drop_left *left)
{
	enum { NCF = KV_CF_COUNT - KV_CF_INODE };
	struct store_drop_range {
		unsigned char lo[8], hi[8];
		size_t first, count; /* ids[first..first+count) */
		bool used[NCF];
		bool tomb; /* range deletions in place from an earlier try */
		bool left;
	} * r;
	size_t i, j, k, nr = 0, nleft = 0;
	struct kv_batch b;
	bool any = false, todo = false;
	uint64_t need;
	int rc = 0, cf;

	memset(left, 0, sizeof(*left));
	left->kept = n;
	if (n == 0)
		return 0;
	/* DROP-3 */
	pthread_rwlock_rdlock(&s->branches_lock);
	need = s->dead_ticket;
	pthread_rwlock_unlock(&s->branches_lock);
	if (atomic_load(&s->writes_synced) < need) {
		rc = store_sync(s);
		if (rc)
			return rc;
	}
	r = calloc(n, sizeof(*r));
	if (!r)
		return -ENOMEM;
	qsort(ids, n, sizeof(*ids), store_u64_cmp);
	pthread_rwlock_rdlock(&s->branches_lock);
	for (i = 0; i < n; i = j) {
		uint64_t end = ids[i];

		/* extend over the next ids while no live branch lies between */
		for (j = i + 1; j < n; j++) {
			uint64_t id;

			for (id = end + 1; id < ids[j]; id++)
				if (store_branch_by_id(s, id))
					break;
			if (id < ids[j])
				break;
			end = ids[j];
		}
		store_put64(r[nr].lo, ids[i]);
		store_put64(r[nr].hi, end + 1);
		r[nr].first = i;
		r[nr].count = j - i;
		r[nr++].tomb = store_drop_tomb_has(s, ids[i], end + 1);
	}
	pthread_rwlock_unlock(&s->branches_lock);
	kv_batch_init(&b);
	for (i = 0; i < nr && rc == 0; i++)
		for (cf = KV_CF_INODE; cf < KV_CF_COUNT && rc == 0; cf++) {
			bool *u = &r[i].used[cf - KV_CF_INODE];

			rc = store_range_has(s, cf, r[i].lo, r[i].hi, u);
			if (rc == 0 && *u && !r[i].tomb) {
				kv_batch_delete_range(&b, cf, r[i].lo, 8,
						      r[i].hi, 8);
				any = true;
			}
			todo = todo || *u;
		}
	if (rc == 0 && any)
		rc = kv_write(s->kv, &b, false);
	kv_batch_release(&b);
	/* First the files that hold nothing else: they go without a
	 * rewrite, which on a full disk is the only way space comes back. */
	for (i = 0; i < nr && rc == 0; i++)
		for (cf = KV_CF_INODE; cf < KV_CF_COUNT && rc == 0; cf++)
			if (r[i].used[cf - KV_CF_INODE])
				rc = kv_drop_files(s->kv, cf, r[i].lo, 8,
						   r[i].hi, 8);
	/* The compaction rewrites the files the ranges share with live
	 * branches, and needs room for them: without it, it fails on the
	 * full disk (and RocksDB stops taking writes until its recovery),
	 * which RocksDB's C API does not even report.  Not below the
	 * reserve either.  The notes stay, and a later GC does it. */
	for (i = 0; i < nr && rc == 0 && todo; i++)
		for (cf = KV_CF_INODE; cf < KV_CF_COUNT && rc == 0; cf++) {
			uint64_t nb = 0;

			if (r[i].used[cf - KV_CF_INODE])
				rc = kv_rewrite_bytes(s->kv, cf, r[i].lo, 8,
						      r[i].hi, 8, &nb);
			left->need += nb;
		}
	if (rc == 0 && todo && !store_drop_room(s, left->need, &left->above))
		left->no_room = true;
	for (i = 0;
	     i < nr && rc == 0 && todo && !left->no_room && left->crc == 0; i++)
		for (cf = KV_CF_INODE; cf < KV_CF_COUNT && left->crc == 0; cf++)
			if (r[i].used[cf - KV_CF_INODE])
				left->crc = kv_compact(s->kv, cf, r[i].lo, 8,
						       r[i].hi, 8, true);
	/* DROP-1: a note goes only once its range holds no key, not even a
	 * hidden one: the compaction returned nothing to say it did its
	 * work (RocksDB skips it after a background error), and without
	 * the note no GC would look at the range again. */
	for (i = 0; i < nr && rc == 0; i++)
		for (cf = KV_CF_INODE; cf < KV_CF_COUNT && rc == 0; cf++) {
			bool has = false;

			if (!r[i].used[cf - KV_CF_INODE] || r[i].left)
				continue;
			rc = store_range_has(s, cf, r[i].lo, r[i].hi, &has);
			r[i].left = has;
		}
	if (rc) {
		free(r);
		return rc;
	}
	pthread_rwlock_wrlock(&s->branches_lock);
	for (i = 0; i < nr; i++)
		store_drop_tomb_note(s, ids[r[i].first],
				     ids[r[i].first + r[i].count - 1] + 1,
				     r[i].left);
	pthread_rwlock_unlock(&s->branches_lock);
	/* Not synced: a "D" key that comes back after a crash only costs
	 * one more look at an empty range. */
	kv_batch_init(&b);
	for (i = 0; i < nr; i++) {
		unsigned char key[9];

		if (r[i].left)
			continue;
		for (j = r[i].first; j < r[i].first + r[i].count; j++) {
			key[0] = 'D';
			store_put64(key + 1, ids[j]);
			kv_batch_delete(&b, KV_CF_META, key, 9);
		}
	}
	if (b.nops)
		rc = kv_write(s->kv, &b, false);
	kv_batch_release(&b);
	if (rc)
		LOG_WARN(s,
			 "could not forget %zu deleted branches' notes (they "
			 "are looked at again later): %s",
			 n, strerror(-rc));
	/* the ranges left first, in order (never past where they were) */
	for (i = 0; i < nr; i++)
		if (r[i].left)
			for (k = 0; k < r[i].count; k++)
				ids[nleft++] = ids[r[i].first + k];
	left->kept = nleft;
	free(r);
	return 0;
}

int store_data_deletions(struct store *s, uint64_t *n)
{
	int cf, rc = 0;

	*n = 0;
	for (cf = KV_CF_INODE; cf < KV_CF_COUNT && rc == 0; cf++) {
		uint64_t k = 0;

		rc = kv_count_deletions(s->kv, cf, &k);
		*n += k;
	}
	return rc;
}

int store_branch_keys(struct store *s, uint64_t id, uint64_t *n)
{
	unsigned char lo[8];
	int cf, rc = 0;

	store_put64(lo, id);
	*n = 0;
	for (cf = KV_CF_INODE; cf < KV_CF_COUNT && rc == 0; cf++) {
		struct kv_iter *it;

		rc = kv_iter_new(s->kv, cf, 0, &it);
		if (rc)
			break;
		for (kv_iter_seek(it, lo, 8); kv_iter_valid(it);
		     kv_iter_next(it)) {
			size_t klen;
			const unsigned char *k = kv_iter_key(it, &klen);

			if (klen < 8 || memcmp(k, lo, 8) != 0)
				break;
			(*n)++;
		}
		rc = kv_iter_status(it);
		kv_iter_free(it);
	}
	return rc;
}

size_t store_deleted_pending(struct store *s, int64_t *since_ns)
{
	size_t n;

	pthread_rwlock_rdlock(&s->branches_lock);
	n = s->ndead;
	if (since_ns)
		*since_ns = n ? s->dead_since_ns : 0;
	pthread_rwlock_unlock(&s->branches_lock);
	return n;
}

/* Say once why deleted branches' keys stay, and once that they went. */
static void store_drop_say(struct store *s, const struct store_drop_left *l)
{
	int state = l->kept == 0 ? 0 : l->no_room ? 1 : 2;

	if (atomic_exchange(&s->drop_state, state) == state)
		return;
	if (state == 0)
		LOG_INFO(s, "gc: the data of the deleted branches that waited "
			    "is dropped");
	else if (state == 1)
		LOG_WARN(
			s,
			"gc: the data of %zu deleted branches stays for now: dropping it rewrites about %" PRIu64
			" MiB of table files it shares with live branches, and %" PRIu64
			" MiB are free above the store's reserve; a later gc drops it once there is room (delete other branches or grow the filesystem)",
			l->kept, (l->need + (1u << 20) - 1) >> 20,
			l->above >> 20);
	else
		LOG_WARN(
			s,
			"gc: %zu deleted branches still have keys in the store after the compaction that was to drop them (%s): they stay noted and the next gc tries again",
			l->kept,
			l->crc ?
				strerror(-l->crc) :
				"RocksDB reported no error: it skips compactions after a background error, until its recovery");
}

int store_drop_deleted(struct store *s, size_t *dropped)
{
	struct store_drop_left l;
	uint64_t *ids;
	size_t n;
	int rc;

	store_dead_take(s, &ids, &n);
	rc = store_drop_ranges(s, ids, n, &l);
	if (rc == 0 && n)
		store_drop_say(s, &l);
	if (rc == 0 && l.kept)
		rc = l.no_room ? -ENOSPC : l.crc;
	store_dead_return(s, ids, l.kept);
	free(ids);
	if (dropped)
		*dropped = n - l.kept;
	return rc;
}

/* At open: the deleted branches whose keys no GC dropped before the store
 * closed (or crashed). */
static int store_load_dead(struct store *s)
{
	struct kv_iter *it;
	unsigned char k = 'D';
	int rc;

	rc = kv_iter_new(s->kv, KV_CF_META, false, &it);
	if (rc)
		return rc;
	for (kv_iter_seek(it, &k, 1); kv_iter_valid(it); kv_iter_next(it)) {
		const unsigned char *key;
		size_t klen;
		uint64_t id;

		key = kv_iter_key(it, &klen);
		if (klen != 9 || key[0] != 'D')
			break;
		id = store_get64(key + 1);
		if (id && !store_branch_by_id(s, id))
			store_dead_note(s, id);
	}
	rc = kv_iter_status(it);
	kv_iter_free(it);
	return rc;
}

/* Write META "R" (see store_legacy_check), synced: once the notes of
 * this build's dropped branches are gone, an open without it would take
 * them for an earlier build's deletes and compact the store once more. */
static int store_legacy_done(struct store *s)
{
	struct kv_batch b;
	int rc;

	kv_batch_init(&b);
	kv_batch_put(&b, KV_CF_META, "R", 1, "1", 1);
	rc = kv_write(s->kv, &b, true);
	kv_batch_release(&b);
	return rc;
}

/* META "R" says that no earlier build's range deletion of a deleted
 * branch is left: a new store never had one, and a store that had them
 * gets it after the compaction that dropped them.  Without it, an id
 * below the next one that is neither a branch nor noted as deleted was
 * deleted by such a build (ids are never skipped: the branch record and
 * the next id are written in one batch).  At open, before any delete. */
static int store_legacy_check(struct store *s)
{
	unsigned char v[8];
	uint64_t used;
	size_t vlen;
	bool found;
	int rc;

	rc = kv_get(s->kv, KV_CF_META, "R", 1, v, sizeof(v), &vlen, &found);
	if (rc || found)
		return rc;
	used = s->next_branch_id - 1;
	if (used <= s->nbranches + s->ndead && s->cfg.read_only)
		return 0; /* the next open that may write marks it */
	if (used <= s->nbranches + s->ndead) {
		/* Best effort: without it the next open looks again. */
		rc = store_legacy_done(s);
		if (rc)
			LOG_WARN(
				s,
				"store '%s': cannot mark it free of earlier builds' range deletions: %s",
				s->dir, strerror(-rc));
		return 0;
	}
	/* Builds of 2026-12-05 also count here: they noted deletes, but
	 * forgot the note once GC had dropped the branch.  So the whole
	 * compaction is left to the on-demand GC, not sprung on a store in
	 * the background. */
	s->gc_legacy_drops = true;
	LOG_INFO(
		s,
		"store '%s': %" PRIu64
		" branches were deleted by an earlier build, which may have left range deletions that slow lookups; 'branchctl gc' compacts the whole store once to drop them",
		s->dir, used - s->nbranches - s->ndead);
	return 0;
}

/* Compact the data families whole through the last level, which drops
 * every range deletion with what it covers, then write META "R".  Run
 * by GC, once, for a store that earlier builds deleted branches in. */
static int store_legacy_drop(struct store *s)
{
	uint64_t left = 0;
	int cf, rc = 0;

	LOG_INFO(
		s,
		"gc: compacting the whole store once, through its last level, to drop the range deletions of branches that earlier builds deleted");
	for (cf = KV_CF_INODE; cf < KV_CF_COUNT && rc == 0; cf++)
		rc = kv_compact(s->kv, cf, NULL, 0, NULL, 0, true);
	/* DROP-2: "R" only once no deletion is left in the files. */
	if (rc == 0)
		rc = store_data_deletions(s, &left);
	if (rc == 0 && left) {
		LOG_WARN(
			s,
			"gc: the compaction to drop earlier builds' range deletions left %" PRIu64
			" deletions in the store (RocksDB reported no error: it skips compactions after a background error, until its recovery); the next on-demand gc tries again",
			left);
		return -EAGAIN;
	}
	if (rc == 0)
		rc = store_legacy_done(s);
	if (rc) {
		LOG_WARN(
			s,
			"gc: could not compact away earlier builds' range deletions: %s (the next gc tries again)",
			strerror(-rc));
		return rc;
	}
	s->gc_legacy_drops = false;
	return 0;
}

int store_branch_delete(struct store *s, uint64_t id)
{
	struct store_branch *br;
	struct kv_batch b;
	unsigned char k[9], when[8];
	uint64_t ticket = 0;
	bool synced = false;
	int rc;

	kv_batch_init(&b);
	pthread_rwlock_wrlock(&s->branches_lock);
	br = store_branch_by_id(s, id);
	if (!br) {
		rc = -ENOENT;
		goto out_unlock;
	}
	if (br->nchildren) {
		rc = -ENOTEMPTY;
		goto out_unlock;
	}
	k[0] = 'B';
	store_put64(k + 1, id);
	kv_batch_delete(&b, KV_CF_META, k, 9);
	k[0] = 'W';
	kv_batch_delete(&b, KV_CF_META, k, 9);
	k[0] = 'D';
	store_put64(when, (uint64_t)store_now_ns());
	kv_batch_put(&b, KV_CF_META, k, 9, when, 8);
	rc = store_commit_locked(s, &b, NULL, NULL, &ticket);
	if (rc)
		goto out_unlock;
	synced = true;
	store_names_remove(s, br);
	s->dead_ticket = ticket; /* tickets grow: commits here are serial */
	br->deleted = true;
	atomic_fetch_add(&s->acache_epoch, 1); /* INV-8 */
	s->nbranches--;
	s->gc_deleted++;
	/* Without memory for the note, the "D" key brings it back at the
	 * next open. */
	store_dead_note(s, id);
	if (s->ngrave == s->capgrave) {
		size_t ncap = s->capgrave ? s->capgrave * 2 : 16;
		uint64_t *ng = realloc(s->grave, ncap * sizeof(*ng));

		if (ng) {
			s->grave = ng;
			s->capgrave = ncap;
		}
	}
	/* Without room in the grave the branch stays until close. */
	if (br->parent_id && s->branches[br->parent_id]) {
		s->branches[br->parent_id]->nchildren--;
		store_gc_fork_gone(s, br->parent_id, br->fork_seq);
	}
	if (s->ngrave < s->capgrave)
		s->grave[s->ngrave++] = id;
	store_grave_reap(s); /* br may be freed from here on */
out_unlock:
	pthread_rwlock_unlock(&s->branches_lock);
	kv_batch_release(&b);
	if (synced)
		rc = store_sync(s);
	return rc;
}

static int store_setting_key(const char *key, unsigned char *k, size_t *klen);

int store_branch_rename(struct store *s, uint64_t id, const char *new_name)
{
	return store_branch_rename_set(s, id, new_name, NULL);
}

int store_branch_rename_set(struct store *s, uint64_t id, const char *new_name,
			    const char *setting)
{
	struct store_branch *br, *other, tmp;
	unsigned char sk[65];
	size_t sklen = 0;
	struct kv_batch b;
	bool synced = false;
	int rc;

	rc = store_branch_name_check(new_name);
	if (rc)
		return rc;
	if (setting) {
		rc = store_setting_key(setting, sk, &sklen);
		if (rc)
			return rc;
	}
	kv_batch_init(&b);
	pthread_rwlock_wrlock(&s->branches_lock);
	br = store_branch_by_id(s, id);
	if (!br) {
		rc = -ENOENT;
		goto out_unlock;
	}
	other = store_branch_by_name(s, new_name);
	if (other == br)
		goto out_unlock;
	if (other) {
		rc = -EEXIST;
		goto out_unlock;
	}
	memcpy(&tmp, br, sizeof(tmp));
	snprintf(tmp.name, sizeof(tmp.name), "%s", new_name);
	store_branch_put(&b, &tmp);
	/* One batch: no crash leaves the setting naming the old name. */
	if (setting)
		kv_batch_put(&b, KV_CF_META, sk, sklen, new_name,
			     strlen(new_name));
	rc = store_commit_locked(s, &b, NULL, NULL, NULL);
	if (rc)
		goto out_unlock;
	store_names_remove(s, br);
	snprintf(br->name, sizeof(br->name), "%s", new_name);
	store_names_add(s, br);
	synced = true;
out_unlock:
	pthread_rwlock_unlock(&s->branches_lock);
	kv_batch_release(&b);
	if (synced)
		rc = store_sync(s);
	return rc;
}

int store_branch_reset(struct store *s, uint64_t id,
		       const char *const *drop_names)
{
	return store_branch_reset_at(s, id, STORE_SEQ_LATEST, drop_names);
}

int store_branch_reset_at(struct store *s, uint64_t id, uint64_t at_seq,
			  const char *const *drop_names)
{
	struct store_branch *br, *parent, tmp;
	struct store_view pv = { 0 };
	struct kv_batch b;
	uint64_t at, now, seq, old_fork;
	bool synced = false;
	int rc;

	kv_batch_init(&b);
	pthread_rwlock_wrlock(&s->branches_lock);
	br = store_branch_by_id(s, id);
	if (!br) {
		rc = -ENOENT;
		goto out_unlock;
	}
	if (!br->parent_id) {
		rc = -EINVAL;
		goto out_unlock;
	}
	if (br->nchildren) {
		rc = -ENOTEMPTY;
		goto out_unlock;
	}
	parent = store_branch_by_id(s, br->parent_id);
	now = store_seq_now(s);
	if (at_seq == STORE_SEQ_LATEST) {
		at = now;
	} else {
		/* As store_branch_create's past fork point. */
		at = at_seq;
		if (at > atomic_load(&s->watermark)) {
			rc = -EINVAL;
			goto out_unlock;
		}
		if (!parent || at < parent->create_seq || at < parent->floor ||
		    at < atomic_load(&s->horizon_seq)) {
			rc = -ERANGE;
			goto out_unlock;
		}
	}
	memcpy(&tmp, br, sizeof(tmp));
	tmp.fork_seq = at;
	tmp.fork_ns = store_now_ns();
	/* Own versions at or above the reset's own seq stay visible; the
	 * reset's commit seq is at least now + 1 (now >= at). */
	tmp.floor = now + 1;
	pv.lv = pv.inline_lv;
	rc = store_view_build(s, parent, at, &pv);
	if (rc)
		goto out_unlock;
	rc = store_batch_drop_names(s, &b, &pv, id, br->root_ino, drop_names);
	if (rc)
		goto out_unlock;
	store_branch_put(&b, &tmp);
	rc = store_commit_locked(s, &b, NULL, &seq, NULL);
	if (rc)
		goto out_unlock;
	synced = true;
	/* Versions written before the reset all have seq <= now (writes in
	 * flight at the reset are the caller's race to avoid), and the
	 * reset's own tombstones have seq > now. */
	old_fork = br->fork_seq;
	br->fork_seq = tmp.fork_seq;
	br->fork_ns = tmp.fork_ns;
	br->floor = tmp.floor;
	atomic_fetch_add(&s->acache_epoch, 1); /* INV-8 */
	/* GC-2: the branch's own versions below the floor, and the
	 * parent's versions that only the old fork point read. */
	store_gc_mark_full(s, id);
	store_gc_fork_gone(s, br->parent_id, old_fork);
	atomic_store(&br->written, 0);
	atomic_store(&br->written_dirty, true);
out_unlock:
	pthread_rwlock_unlock(&s->branches_lock);
	store_view_release(&pv);
	kv_batch_release(&b);
	if (synced)
		rc = store_sync(s);
	return rc;
}

int store_branch_get(struct store *s, uint64_t id,
		     struct store_branch_info *out)
{
	struct store_branch *b;
	int rc = 0;

	pthread_rwlock_rdlock(&s->branches_lock);
	b = store_branch_by_id(s, id);
	if (b)
		store_branch_info_fill(b, out);
	else
		rc = -ENOENT;
	pthread_rwlock_unlock(&s->branches_lock);
	return rc;
}

int store_branch_lookup(struct store *s, const char *name,
			struct store_branch_info *out)
{
	struct store_branch *b;
	int rc = 0;

	if (!name)
		return -EINVAL;
	pthread_rwlock_rdlock(&s->branches_lock);
	b = store_branch_by_name(s, name);
	if (b)
		store_branch_info_fill(b, out);
	else
		rc = -ENOENT;
	pthread_rwlock_unlock(&s->branches_lock);
	return rc;
}

static int store_info_cmp(const void *a, const void *b)
{
	return strcmp(((const struct store_branch_info *)a)->name,
		      ((const struct store_branch_info *)b)->name);
}

uint64_t store_branch_count(struct store *s)
{
	uint64_t n;

	pthread_rwlock_rdlock(&s->branches_lock);
	n = s->nbranches;
	pthread_rwlock_unlock(&s->branches_lock);
	return n;
}

int store_branch_list(struct store *s, struct store_branch_info **out,
		      size_t *n)
{
	struct store_branch_info *arr = NULL;
	struct store_branch *b;
	size_t i, k = 0;
	int rc = 0;

	pthread_rwlock_rdlock(&s->branches_lock);
	if (s->nbranches) {
		arr = calloc(s->nbranches, sizeof(*arr));
		if (!arr) {
			rc = -ENOMEM;
			goto out_unlock;
		}
	}
	store_names_walked(s);
	for (i = 0; i < s->names_cap; i++)
		for (b = s->names[i]; b; b = b->name_next)
			store_branch_info_fill(b, &arr[k++]);
out_unlock:
	pthread_rwlock_unlock(&s->branches_lock);
	if (rc)
		return rc;
	if (k)
		qsort(arr, k, sizeof(*arr), store_info_cmp);
	*out = arr;
	*n = k;
	return 0;
}

int store_branch_ancestry(struct store *s, uint64_t id,
			  struct store_branch_info **out, size_t *n)
{
	struct store_branch_info *arr = NULL, *na;
	struct store_branch *b;
	size_t k = 0, cap = 0;
	int rc = 0;

	pthread_rwlock_rdlock(&s->branches_lock);
	b = store_branch_by_id(s, id);
	if (!b) {
		rc = -ENOENT;
		goto out_unlock;
	}
	for (; b;
	     b = b->parent_id ? store_branch_by_id(s, b->parent_id) : NULL) {
		if (k == cap) {
			cap = cap ? cap * 2 : 8;
			na = realloc(arr, cap * sizeof(*arr));
			if (!na) {
				rc = -ENOMEM;
				goto out_unlock;
			}
			arr = na;
		}
		store_branch_info_fill(b, &arr[k++]);
	}
out_unlock:
	pthread_rwlock_unlock(&s->branches_lock);
	if (rc) {
		free(arr);
		return rc;
	}
	*out = arr;
	*n = k;
	return 0;
}

/* ----------------------------------------------------- directories */

struct store_dentry_tmp {
	struct store_dirent d;
	size_t level;
	bool tomb;
};

static int store_dentry_cmp(const void *a, const void *b)
{
	const struct store_dentry_tmp *x = a, *y = b;
	int c = strcmp(x->d.name, y->d.name);

	if (c)
		return c;
	return x->level < y->level ? -1 : x->level > y->level;
}

/* store_readdir over a view the caller holds (a fork builds one under
 * branches_lock, where store_view_get cannot be called), of the entries
 * whose names start with prefix ("" for all).  With max below SIZE_MAX,
 * each ancestry level reads at most max names, and the listing is cut
 * after the least last name of the levels so cut: the first entries of
 * the full listing, in name order (at most max of each level, fewer when
 * tombstones hide some). */
static int store_readdir_view(struct store *s, const struct store_view *v,
			      uint64_t dir, const char *prefix, size_t max,
			      struct store_dirent **out, size_t *n)
{
	size_t plen = strlen(prefix);
	struct store_dentry_tmp *tmp = NULL, *nt;
	struct store_dirent *res = NULL;
	struct store_attr da;
	struct kv_iter *it = NULL;
	size_t ntmp = 0, cap = 0, i, k = 0;
	char cutoff[STORE_NAME_MAX + 2];
	bool cut = false;
	int rc;

	rc = store_attr_load(s, v, dir, &da, NULL, 0);
	if (rc)
		goto out;
	if (!S_ISDIR(da.mode)) {
		rc = -ENOTDIR;
		goto out;
	}
	rc = kv_iter_new(s->kv, KV_CF_DIRENT, false, &it);
	if (rc)
		goto out;
	if (plen > STORE_NAME_MAX) {
		rc = -EINVAL;
		goto out;
	}
	for (i = 0; i < v->n; i++) {
		unsigned char start[16 + STORE_NAME_MAX];
		char last[STORE_NAME_MAX + 2] = { 0 };
		bool have_last = false;
		size_t names = 0;

		store_put64(start, v->lv[i].id);
		store_put64(start + 8, dir);
		memcpy(start + 16, prefix, plen);
		for (kv_iter_seek(it, start, 16 + plen); kv_iter_valid(it);
		     kv_iter_next(it)) {
			const unsigned char *key, *val;
			size_t klen, vlen, nlen;
			uint64_t vseq;

			key = kv_iter_key(it, &klen);
			if (klen < 16 + 2 + 8 || memcmp(key, start, 16) != 0)
				break;
			nlen = klen - 16 - 1 - 8;
			/* names with the prefix are contiguous */
			if (nlen < plen || memcmp(key + 16, prefix, plen) != 0)
				break;
			if (nlen > STORE_NAME_MAX) {
				rc = -EIO;
				goto out;
			}
			/* Versions of one name are contiguous, newest
			 * first: the first visible one decides. */
			if (have_last && strlen(last) == nlen &&
			    memcmp(last, key + 16, nlen) == 0)
				continue;
			vseq = ~store_get64(key + klen - 8);
			if (vseq > v->lv[i].cap || vseq < v->lv[i].floor)
				continue;
			if (names == max) {
				/* this level is whole up to last */
				if (!cut || strcmp(last, cutoff) < 0)
					memcpy(cutoff, last, sizeof(cutoff));
				cut = true;
				break;
			}
			names++;
			memcpy(last, key + 16, nlen);
			last[nlen] = 0;
			have_last = true;
			if (ntmp == cap) {
				cap = cap ? cap * 2 : 64;
				nt = realloc(tmp, cap * sizeof(*tmp));
				if (!nt) {
					rc = -ENOMEM;
					goto out;
				}
				tmp = nt;
			}
			val = kv_iter_value(it, &vlen);
			memset(&tmp[ntmp], 0, sizeof(tmp[ntmp]));
			memcpy(tmp[ntmp].d.name, last, nlen + 1);
			tmp[ntmp].level = i;
			tmp[ntmp].tomb = vlen == 0;
			if (vlen == 12) {
				tmp[ntmp].d.ino = store_get64(val);
				tmp[ntmp].d.mode = store_get32(val + 8);
			} else if (vlen != 0) {
				rc = -EIO;
				goto out;
			}
			ntmp++;
		}
		rc = kv_iter_status(it);
		if (rc)
			goto out;
	}
	if (ntmp)
		qsort(tmp, ntmp, sizeof(*tmp), store_dentry_cmp);
	if (ntmp) {
		res = malloc(ntmp * sizeof(*res));
		if (!res) {
			rc = -ENOMEM;
			goto out;
		}
	}
	for (i = 0; i < ntmp; i++) {
		if (cut && strcmp(tmp[i].d.name, cutoff) > 0)
			break;
		if (i > 0 && strcmp(tmp[i].d.name, tmp[i - 1].d.name) == 0)
			continue;
		if (!tmp[i].tomb)
			res[k++] = tmp[i].d;
	}
	if (k == 0) {
		free(res);
		res = NULL;
	}
	*out = res;
	*n = k;
	res = NULL;
out:
	free(res);
	free(tmp);
	kv_iter_free(it);
	return rc;
}

int store_readdir(struct store *s, uint64_t branch, uint64_t seq, uint64_t dir,
		  struct store_dirent **out, size_t *n)
{
	struct store_view v;
	int rc;

	rc = store_view_get(s, branch, seq, &v);
	if (rc)
		return rc;
	rc = store_readdir_view(s, &v, dir, "", SIZE_MAX, out, n);
	store_view_release(&v);
	return rc;
}

static int store_dir_nonempty(struct store *s, uint64_t branch, uint64_t dir,
			      bool *nonempty)
{
	struct store_dirent *d;
	size_t n;
	int rc = store_readdir(s, branch, STORE_SEQ_LATEST, dir, &d, &n);

	if (rc)
		return rc;
	*nonempty = n > 0;
	free(d);
	return 0;
}

int store_lookup(struct store *s, uint64_t branch, uint64_t seq, uint64_t dir,
		 const char *name, uint64_t *ino)
{
	struct store_view v;
	struct store_attr da;
	int rc;

	rc = store_name_check(name);
	if (rc)
		return rc;
	rc = store_view_get(s, branch, seq, &v);
	if (rc)
		return rc;
	rc = store_attr_load(s, &v, dir, &da, NULL, 0);
	if (rc)
		goto out;
	if (!S_ISDIR(da.mode)) {
		rc = -ENOTDIR;
		goto out;
	}
	rc = store_dirent_find(s, &v, dir, name, ino, NULL);
out:
	store_view_release(&v);
	return rc;
}

int store_getattr(struct store *s, uint64_t branch, uint64_t seq, uint64_t ino,
		  struct store_attr *out)
{
	struct store_view v;
	int rc;

	rc = store_view_get(s, branch, seq, &v);
	if (rc)
		return rc;
	rc = store_attr_load(s, &v, ino, out, NULL, 0);
	store_view_release(&v);
	return rc;
}

ssize_t store_readlink(struct store *s, uint64_t branch, uint64_t seq,
		       uint64_t ino, char *buf, size_t bufsz)
{
	char target[STORE_SYMLINK_MAX + 1];
	struct store_view v;
	struct store_attr a;
	size_t len;
	int rc;

	rc = store_view_get(s, branch, seq, &v);
	if (rc)
		return rc;
	rc = store_attr_load(s, &v, ino, &a, target, sizeof(target));
	store_view_release(&v);
	if (rc)
		return rc;
	if (!S_ISLNK(a.mode))
		return -EINVAL;
	len = strlen(target);
	if (bufsz) {
		size_t c = len < bufsz - 1 ? len : bufsz - 1;

		memcpy(buf, target, c);
		buf[c] = 0;
	}
	return (ssize_t)len;
}

int store_create(struct store *s, uint64_t branch, uint64_t dir,
		 const char *name, const struct store_attr *attr,
		 const char *target, uint64_t *ino_out,
		 struct store_attr *attr_out)
{
	struct store_lockset ls = { .n = 0 };
	struct store_attr da, na;
	struct store_view v;
	struct kv_batch b;
	pthread_mutex_t *ns;
	uint64_t ino, existing;
	uint32_t type = attr->mode & S_IFMT;
	int rc;

	rc = store_name_check(name);
	if (rc)
		return rc;
	switch (type) {
	case S_IFREG:
	case S_IFDIR:
	case S_IFIFO:
	case S_IFSOCK:
	case S_IFCHR:
	case S_IFBLK:
		if (target)
			return -EINVAL;
		break;
	case S_IFLNK:
		if (!target || !*target)
			return -EINVAL;
		if (strlen(target) > STORE_SYMLINK_MAX)
			return -ENAMETOOLONG;
		break;
	default:
		return -EINVAL;
	}
	rc = store_space_ok(s);
	if (rc)
		return rc;
	rc = store_view_get(s, branch, STORE_SEQ_LATEST, &v);
	if (rc)
		return rc;
	kv_batch_init(&b);
	ns = store_ns_lock(s, branch);
	pthread_mutex_lock(ns);
	store_lockset_add(&ls, branch, dir);
	store_lockset_lock(s, &ls);
	rc = store_attr_load(s, &v, dir, &da, NULL, 0);
	if (rc)
		goto out_unlock;
	if (!S_ISDIR(da.mode)) {
		rc = -ENOTDIR;
		goto out_unlock;
	}
	if (da.nlink == 0) {
		rc = -ENOENT;
		goto out_unlock;
	}
	rc = store_dirent_find(s, &v, dir, name, &existing, NULL);
	if (rc == 0) {
		rc = -EEXIST;
		goto out_unlock;
	}
	if (rc != -ENOENT)
		goto out_unlock;
	rc = store_counter_next(s, &s->ino, STORE_INO_MAX, &ino);
	if (rc)
		goto out_unlock;
	na = *attr;
	na.nlink = type == S_IFDIR ? 2 : 1;
	na.size = type == S_IFLNK ? strlen(target) : 0;
	store_batch_attr(&b, branch, ino, &na, target);
	store_batch_dirent(&b, branch, dir, name, ino, na.mode);
	if (type == S_IFDIR)
		da.nlink++;
	da.mtime = da.ctime = na.ctime;
	store_batch_attr(&b, branch, dir, &da, NULL);
	rc = store_commit(s, &b, false, NULL);
	if (rc)
		goto out_unlock;
	*ino_out = ino;
	if (attr_out)
		*attr_out = na;
out_unlock:
	store_lockset_unlock(s, &ls);
	pthread_mutex_unlock(ns);
	kv_batch_release(&b);
	store_view_release(&v);
	return rc;
}

/* Load attributes and, for a symlink, its target (so a rewrite keeps it). */
struct store_inode_tmp {
	uint64_t ino;
	struct store_attr a;
	char target[STORE_SYMLINK_MAX + 1];
	bool dirty;
};

static int store_inode_tmp_load(struct store *s, const struct store_view *v,
				struct store_inode_tmp *t, uint64_t ino)
{
	t->ino = ino;
	t->dirty = false;
	t->target[0] = 0;
	return store_attr_load(s, v, ino, &t->a, t->target, sizeof(t->target));
}

static void store_inode_tmp_put(struct kv_batch *b, uint64_t br,
				const struct store_inode_tmp *t)
{
	store_batch_attr(b, br, t->ino, &t->a,
			 S_ISLNK(t->a.mode) ? t->target : NULL);
}

static int store_do_remove(struct store *s, uint64_t branch, uint64_t dir,
			   const char *name, bool want_dir)
{
	struct store_lockset ls = { .n = 0 };
	struct store_inode_tmp *d = NULL, *c = NULL;
	struct store_view v;
	struct kv_batch b;
	pthread_mutex_t *ns;
	struct timespec now = store_now_ts();
	uint64_t ino;
	uint32_t mode;
	int rc;

	rc = store_name_check(name);
	if (rc)
		return rc;
	rc = store_view_get(s, branch, STORE_SEQ_LATEST, &v);
	if (rc)
		return rc;
	d = malloc(sizeof(*d));
	c = malloc(sizeof(*c));
	kv_batch_init(&b);
	ns = store_ns_lock(s, branch);
	pthread_mutex_lock(ns);
	if (!d || !c) {
		rc = -ENOMEM;
		goto out_unlock_ns;
	}
	rc = store_dirent_find(s, &v, dir, name, &ino, &mode);
	if (rc)
		goto out_unlock_ns;
	store_lockset_add(&ls, branch, dir);
	store_lockset_add(&ls, branch, ino);
	store_lockset_lock(s, &ls);
	rc = store_inode_tmp_load(s, &v, d, dir);
	if (rc)
		goto out_unlock;
	if (!S_ISDIR(d->a.mode)) {
		rc = -ENOTDIR;
		goto out_unlock;
	}
	rc = store_inode_tmp_load(s, &v, c, ino);
	if (rc)
		goto out_unlock;
	if (want_dir) {
		bool nonempty;

		if (!S_ISDIR(c->a.mode)) {
			rc = -ENOTDIR;
			goto out_unlock;
		}
		rc = store_dir_nonempty(s, branch, ino, &nonempty);
		if (rc)
			goto out_unlock;
		if (nonempty) {
			rc = -ENOTEMPTY;
			goto out_unlock;
		}
		c->a.nlink = 0;
		if (d->a.nlink > 2)
			d->a.nlink--;
	} else {
		if (S_ISDIR(c->a.mode)) {
			rc = -EISDIR;
			goto out_unlock;
		}
		if (c->a.nlink > 0)
			c->a.nlink--;
	}
	c->a.ctime = now;
	d->a.mtime = d->a.ctime = now;
	store_batch_dirent(&b, branch, dir, name, 0, 0);
	store_inode_tmp_put(&b, branch, c);
	store_inode_tmp_put(&b, branch, d);
	rc = store_commit(s, &b, false, NULL);
out_unlock:
	store_lockset_unlock(s, &ls);
out_unlock_ns:
	pthread_mutex_unlock(ns);
	kv_batch_release(&b);
	store_view_release(&v);
	free(d);
	free(c);
	return rc;
}

int store_unlink(struct store *s, uint64_t branch, uint64_t dir,
		 const char *name)
{
	return store_do_remove(s, branch, dir, name, false);
}

int store_rmdir(struct store *s, uint64_t branch, uint64_t dir,
		const char *name)
{
	return store_do_remove(s, branch, dir, name, true);
}

int store_link(struct store *s, uint64_t branch, uint64_t ino, uint64_t newdir,
	       const char *newname, struct store_attr *out)
{
	struct store_lockset ls = { .n = 0 };
	struct store_inode_tmp *d = NULL, *c = NULL;
	struct store_view v;
	struct kv_batch b;
	pthread_mutex_t *ns;
	struct timespec now = store_now_ts();
	uint64_t existing;
	int rc;

	rc = store_name_check(newname);
	if (rc)
		return rc;
	rc = store_view_get(s, branch, STORE_SEQ_LATEST, &v);
	if (rc)
		return rc;
	d = malloc(sizeof(*d));
	c = malloc(sizeof(*c));
	kv_batch_init(&b);
	ns = store_ns_lock(s, branch);
	pthread_mutex_lock(ns);
	store_lockset_add(&ls, branch, newdir);
	store_lockset_add(&ls, branch, ino);
	store_lockset_lock(s, &ls);
	if (!d || !c) {
		rc = -ENOMEM;
		goto out_unlock;
	}
	rc = store_inode_tmp_load(s, &v, c, ino);
	if (rc)
		goto out_unlock;
	if (S_ISDIR(c->a.mode)) {
		rc = -EPERM;
		goto out_unlock;
	}
	rc = store_inode_tmp_load(s, &v, d, newdir);
	if (rc)
		goto out_unlock;
	if (!S_ISDIR(d->a.mode)) {
		rc = -ENOTDIR;
		goto out_unlock;
	}
	if (d->a.nlink == 0) {
		rc = -ENOENT;
		goto out_unlock;
	}
	rc = store_dirent_find(s, &v, newdir, newname, &existing, NULL);
	if (rc == 0) {
		rc = -EEXIST;
		goto out_unlock;
	}
	if (rc != -ENOENT)
		goto out_unlock;
	if (c->a.nlink >= UINT32_MAX - 1) {
		rc = -EMLINK;
		goto out_unlock;
	}
	c->a.nlink++;
	c->a.ctime = now;
	d->a.mtime = d->a.ctime = now;
	store_batch_dirent(&b, branch, newdir, newname, ino, c->a.mode);
	store_inode_tmp_put(&b, branch, c);
	store_inode_tmp_put(&b, branch, d);
	rc = store_commit(s, &b, false, NULL);
	if (rc == 0 && out)
		*out = c->a;
out_unlock:
	store_lockset_unlock(s, &ls);
	pthread_mutex_unlock(ns);
	kv_batch_release(&b);
	store_view_release(&v);
	free(d);
	free(c);
	return rc;
}

/* Find the loaded copy of ino among t[0..n), or NULL. */
static struct store_inode_tmp *store_tmp_of(struct store_inode_tmp *t, size_t n,
					    uint64_t ino)
{
	size_t i;

	for (i = 0; i < n; i++) {
		if (t[i].ino == ino)
			return &t[i];
	}
	return NULL;
}

int store_rename(struct store *s, uint64_t branch, uint64_t olddir,
		 const char *oldname, uint64_t newdir, const char *newname,
		 unsigned flags)
{
	struct store_lockset ls = { .n = 0 };
	struct store_inode_tmp *t = NULL, *od, *nd, *src, *dst = NULL;
	struct store_view v;
	struct kv_batch b;
	pthread_mutex_t *ns;
	struct timespec now = store_now_ts();
	uint64_t sino, dino = 0, want[4];
	uint32_t smode, dmode = 0;
	size_t nt = 0, i;
	int rc;

	if ((flags & ~(STORE_RENAME_NOREPLACE | STORE_RENAME_EXCHANGE)) ||
	    ((flags & STORE_RENAME_NOREPLACE) &&
	     (flags & STORE_RENAME_EXCHANGE)))
		return -EINVAL;
	rc = store_name_check(oldname);
	if (rc == 0)
		rc = store_name_check(newname);
	if (rc)
		return rc;
	rc = store_view_get(s, branch, STORE_SEQ_LATEST, &v);
	if (rc)
		return rc;
	t = calloc(4, sizeof(*t));
	kv_batch_init(&b);
	ns = store_ns_lock(s, branch);
	pthread_mutex_lock(ns);
	if (!t) {
		rc = -ENOMEM;
		goto out_unlock_ns;
	}
	rc = store_dirent_find(s, &v, olddir, oldname, &sino, &smode);
	if (rc)
		goto out_unlock_ns;
	rc = store_dirent_find(s, &v, newdir, newname, &dino, &dmode);
	if (rc == -ENOENT)
		dino = 0;
	else if (rc)
		goto out_unlock_ns;
	rc = 0;
	if (dino && (flags & STORE_RENAME_NOREPLACE)) {
		rc = -EEXIST;
		goto out_unlock_ns;
	}
	if (dino == sino)
		goto out_unlock_ns; /* same inode: nothing to do */
	if (!dino && (flags & STORE_RENAME_EXCHANGE)) {
		rc = -ENOENT;
		goto out_unlock_ns;
	}
	want[0] = olddir;
	want[1] = newdir;
	want[2] = sino;
	want[3] = dino;
	for (i = 0; i < 4; i++)
		store_lockset_add(&ls, branch, want[i]);
	store_lockset_lock(s, &ls);
	for (i = 0; i < 4; i++) {
		if (!want[i] || store_tmp_of(t, nt, want[i]))
			continue;
		rc = store_inode_tmp_load(s, &v, &t[nt], want[i]);
		if (rc)
			goto out_unlock;
		nt++;
	}
	od = store_tmp_of(t, nt, olddir);
	nd = store_tmp_of(t, nt, newdir);
	src = store_tmp_of(t, nt, sino);
	if (dino)
		dst = store_tmp_of(t, nt, dino);
	if (!S_ISDIR(od->a.mode) || !S_ISDIR(nd->a.mode)) {
		rc = -ENOTDIR;
		goto out_unlock;
	}
	if (nd->a.nlink == 0) {
		rc = -ENOENT;
		goto out_unlock;
	}
	if (flags & STORE_RENAME_EXCHANGE) {
		store_batch_dirent(&b, branch, newdir, newname, sino,
				   src->a.mode);
		store_batch_dirent(&b, branch, olddir, oldname, dino,
				   dst->a.mode);
		if (olddir != newdir &&
		    S_ISDIR(src->a.mode) != S_ISDIR(dst->a.mode)) {
			if (S_ISDIR(src->a.mode)) {
				od->a.nlink--;
				nd->a.nlink++;
			} else {
				nd->a.nlink--;
				od->a.nlink++;
			}
		}
		dst->a.ctime = now;
		dst->dirty = true;
	} else {
		if (dst) {
			if (S_ISDIR(src->a.mode)) {
				bool nonempty;

				if (!S_ISDIR(dst->a.mode)) {
					rc = -ENOTDIR;
					goto out_unlock;
				}
				rc = store_dir_nonempty(s, branch, dino,
							&nonempty);
				if (rc)
					goto out_unlock;
				if (nonempty) {
					rc = -ENOTEMPTY;
					goto out_unlock;
				}
				dst->a.nlink = 0;
				nd->a.nlink--;
			} else {
				if (S_ISDIR(dst->a.mode)) {
					rc = -EISDIR;
					goto out_unlock;
				}
				if (dst->a.nlink)
					dst->a.nlink--;
			}
			dst->a.ctime = now;
			dst->dirty = true;
		}
		store_batch_dirent(&b, branch, newdir, newname, sino,
				   src->a.mode);
		store_batch_dirent(&b, branch, olddir, oldname, 0, 0);
		if (S_ISDIR(src->a.mode) && olddir != newdir) {
			od->a.nlink--;
			nd->a.nlink++;
		}
	}
	src->a.ctime = now;
	src->dirty = true;
	od->a.mtime = od->a.ctime = now;
	nd->a.mtime = nd->a.ctime = now;
	od->dirty = nd->dirty = true;
	for (i = 0; i < nt; i++) {
		if (t[i].dirty)
			store_inode_tmp_put(&b, branch, &t[i]);
	}
	rc = store_commit(s, &b, false, NULL);
out_unlock:
	store_lockset_unlock(s, &ls);
out_unlock_ns:
	pthread_mutex_unlock(ns);
	kv_batch_release(&b);
	store_view_release(&v);
	free(t);
	return rc;
}

/* ---------------------------------------------------------- file data */

/* Add ZERO versions for every block in [first, end) that any level of the
 * view may hold, keeping INV-3 after a shrink. */
static int store_batch_cut(struct store *s, struct kv_batch *b,
			   const struct store_view *v, uint64_t ino,
			   uint64_t first, uint64_t end)
{
	unsigned char key[STORE_BLOCK_KLEN], zero = STORE_BLK_ZERO;
	uint64_t *blks = NULL, *nb;
	size_t nblks = 0, cap = 0, i;
	struct kv_iter *it;
	int rc;

	if (first >= end)
		return 0;
	rc = kv_iter_new(s->kv, KV_CF_BLOCK, false, &it);
	if (rc)
		return rc;
	for (i = 0; i < v->n; i++) {
		unsigned char start[24];

		store_put64(start, v->lv[i].id);
		store_put64(start + 8, ino);
		store_put64(start + 16, first);
		for (kv_iter_seek(it, start, 24); kv_iter_valid(it);
		     kv_iter_next(it)) {
			const unsigned char *k;
			size_t klen;
			uint64_t blk;

			k = kv_iter_key(it, &klen);
			if (klen != STORE_BLOCK_KLEN || memcmp(k, start, 16))
				break;
			blk = store_get64(k + 16);
			if (blk >= end)
				break;
			if (nblks && blks[nblks - 1] == blk)
				continue;
			if (nblks == cap) {
				cap = cap ? cap * 2 : 64;
				nb = realloc(blks, cap * sizeof(*nb));
				if (!nb) {
					rc = -ENOMEM;
					goto out;
				}
				blks = nb;
			}
			blks[nblks++] = blk;
		}
		rc = kv_iter_status(it);
		if (rc)
			goto out;
	}
	/* A block that more than one level holds is listed once per level:
	 * one version each (GC-3: its SingleDelete needs a single Put). */
	if (v->n > 1 && nblks > 1) {
		size_t k = 1;

		qsort(blks, nblks, sizeof(*blks), store_u64_cmp);
		for (i = 1; i < nblks; i++) {
			if (blks[i] != blks[k - 1])
				blks[k++] = blks[i];
		}
		nblks = k;
	}
	for (i = 0; i < nblks; i++) {
		store_key_block(key, v->lv[0].id, ino, blks[i], 0);
		kv_batch_put(b, KV_CF_BLOCK, key, sizeof(key), &zero, 1);
	}
out:
	free(blks);
	kv_iter_free(it);
	return rc;
}

static uint64_t store_div_up(uint64_t x)
{
	return x / STORE_BLOCK_SIZE + (x % STORE_BLOCK_SIZE != 0);
}

int store_setattr(struct store *s, uint64_t branch, uint64_t ino,
		  const struct store_attr *attr, unsigned mask,
		  struct store_attr *out)
{
	struct store_lockset ls = { .n = 0 };
	struct store_inode_tmp *t;
	unsigned char *blk = NULL;
	struct store_view v;
	struct kv_batch b;
	int rc;

	rc = store_view_get(s, branch, STORE_SEQ_LATEST, &v);
	if (rc)
		return rc;
	t = malloc(sizeof(*t));
	kv_batch_init(&b);
	store_lockset_add(&ls, branch, ino);
	store_lockset_lock(s, &ls);
	if (!t) {
		rc = -ENOMEM;
		goto out_unlock;
	}
	rc = store_inode_tmp_load(s, &v, t, ino);
	if (rc)
		goto out_unlock;
	if (mask & STORE_SET_SIZE) {
		uint64_t old = t->a.size, nsz = attr->size;

		if ((mask & STORE_SET_GROW) && nsz < old)
			nsz = old;
		if (S_ISDIR(t->a.mode)) {
			rc = -EISDIR;
			goto out_unlock;
		}
		if (!S_ISREG(t->a.mode)) {
			rc = -EINVAL;
			goto out_unlock;
		}
		if (nsz > STORE_MAX_FILE_SIZE) {
			rc = -EFBIG;
			goto out_unlock;
		}
		if (nsz < old) {
			struct kv_iter *it;

			if (nsz % STORE_BLOCK_SIZE) {
				uint64_t bn = nsz / STORE_BLOCK_SIZE;
				size_t keep = nsz % STORE_BLOCK_SIZE;

				blk = malloc(STORE_BLOCK_SIZE);
				if (!blk) {
					rc = -ENOMEM;
					goto out_unlock;
				}
				rc = kv_iter_new(s->kv, KV_CF_BLOCK, true, &it);
				if (rc)
					goto out_unlock;
				rc = store_block_read(s, it, &v, ino, bn, blk);
				kv_iter_free(it);
				if (rc)
					goto out_unlock;
				memset(blk + keep, 0, STORE_BLOCK_SIZE - keep);
				rc = store_batch_block(&b, branch, ino, bn,
						       blk);
				if (rc)
					goto out_unlock;
			}
			rc = store_batch_cut(s, &b, &v, ino, store_div_up(nsz),
					     store_div_up(old));
			if (rc)
				goto out_unlock;
		}
		t->a.size = nsz;
	}
	if (mask & STORE_SET_MODE)
		t->a.mode = (t->a.mode & S_IFMT) | (attr->mode & 07777);
	if (mask & STORE_SET_UID)
		t->a.uid = attr->uid;
	if (mask & STORE_SET_GID)
		t->a.gid = attr->gid;
	if (mask & STORE_SET_ATIME)
		t->a.atime = attr->atime;
	if (mask & STORE_SET_MTIME)
		t->a.mtime = attr->mtime;
	if (mask & STORE_SET_CTIME)
		t->a.ctime = attr->ctime;
	store_inode_tmp_put(&b, branch, t);
	rc = store_commit(s, &b, false, NULL);
	if (rc == 0 && out)
		*out = t->a;
out_unlock:
	store_lockset_unlock(s, &ls);
	kv_batch_release(&b);
	store_view_release(&v);
	free(blk);
	free(t);
	return rc;
}

/* A read at least this long is taken as sequential (see store_read). */
#define STORE_SEQ_READ (128u << 10)

ssize_t store_read(struct store *s, uint64_t branch, uint64_t seq, uint64_t ino,
		   void *buf, size_t len, uint64_t off)
{
	unsigned char *tmp = NULL, *dst = buf;
	struct kv_iter *it = NULL;
	struct store_view v;
	struct store_attr a;
	size_t done = 0;
	int rc;

	rc = store_view_get(s, branch, seq, &v);
	if (rc)
		return rc;
	rc = store_attr_load(s, &v, ino, &a, NULL, 0);
	if (rc)
		goto out;
	if (S_ISDIR(a.mode)) {
		rc = -EISDIR;
		goto out;
	}
	if (!S_ISREG(a.mode)) {
		rc = -EINVAL;
		goto out;
	}
	if (off >= a.size || len == 0)
		goto out;
	if (len > a.size - off)
		len = (size_t)(a.size - off);
	/* The kernel sends reads this large only once its own readahead
	 * has seen a sequential pattern: read the store ahead too, in large
	 * requests, instead of one small read per block. */
	rc = kv_iter_new(s->kv, KV_CF_BLOCK,
			 KV_ITER_PREFIX |
				 (len >= STORE_SEQ_READ ? KV_ITER_SEQ : 0),
			 &it);
	if (rc)
		goto out;
	while (done < len) {
		uint64_t pos = off + done;
		uint64_t bn = pos / STORE_BLOCK_SIZE;
		size_t boff = pos % STORE_BLOCK_SIZE;
		size_t n = STORE_BLOCK_SIZE - boff;

		if (n > len - done)
			n = len - done;
		if (boff == 0 && n == STORE_BLOCK_SIZE) {
			rc = store_block_read(s, it, &v, ino, bn, dst + done);
		} else {
			if (!tmp) {
				tmp = malloc(STORE_BLOCK_SIZE);
				if (!tmp) {
					rc = -ENOMEM;
					goto out;
				}
			}
			rc = store_block_read(s, it, &v, ino, bn, tmp);
			if (rc == 0)
				memcpy(dst + done, tmp + boff, n);
		}
		if (rc)
			goto out;
		done += n;
	}
out:
	kv_iter_free(it);
	free(tmp);
	store_view_release(&v);
	return rc ? rc : (ssize_t)done;
}

ssize_t store_write(struct store *s, uint64_t branch, uint64_t ino,
		    const void *buf, size_t len, uint64_t off,
		    const struct timespec *mtime)
{
	struct store_lockset ls = { .n = 0 };
	const unsigned char *src = buf;
	unsigned char *tmp = NULL;
	struct kv_iter *it = NULL;
	struct store_view v;
	struct store_attr a;
	struct kv_batch b;
	size_t done = 0;
	int rc;

	if (len == 0)
		return 0;
	if (off > STORE_MAX_FILE_SIZE || len > STORE_MAX_FILE_SIZE - off)
		return -EFBIG;
	atomic_fetch_add(&s->space_inflight, len);
	rc = store_space_ok(s);
	if (rc == 0)
		rc = store_view_get(s, branch, STORE_SEQ_LATEST, &v);
	if (rc) {
		atomic_fetch_sub(&s->space_inflight, len);
		return rc;
	}
	kv_batch_init(&b);
	/* Whole blocks do not depend on what the file holds: compress and
	 * hash them before taking the inode's lock, so that writes to one
	 * file (a checkpoint's writeback of it) do that work in parallel. */
	for (done = 0; done < len;) {
		uint64_t pos = off + done;
		size_t n = STORE_BLOCK_SIZE - pos % STORE_BLOCK_SIZE;

		if (n > len - done)
			n = len - done;
		if (n == STORE_BLOCK_SIZE) {
			rc = store_batch_block(&b, branch, ino,
					       pos / STORE_BLOCK_SIZE,
					       src + done);
			if (rc)
				goto out;
		}
		done += n;
	}
	store_lockset_add(&ls, branch, ino);
	store_lockset_lock(s, &ls);
	rc = store_attr_load(s, &v, ino, &a, NULL, 0);
	if (rc)
		goto out_unlock;
	if (S_ISDIR(a.mode)) {
		rc = -EISDIR;
		goto out_unlock;
	}
	if (!S_ISREG(a.mode)) {
		rc = -EINVAL;
		goto out_unlock;
	}
	/* Then the partial blocks (at most the first and the last), which
	 * merge with what the file holds. */
	for (done = 0; done < len;) {
		uint64_t pos = off + done;
		uint64_t bn = pos / STORE_BLOCK_SIZE;
		size_t boff = pos % STORE_BLOCK_SIZE;
		size_t n = STORE_BLOCK_SIZE - boff;

		if (n > len - done)
			n = len - done;
		if (n < STORE_BLOCK_SIZE) {
			if (!tmp) {
				tmp = malloc(STORE_BLOCK_SIZE);
				if (!tmp) {
					rc = -ENOMEM;
					goto out_unlock;
				}
				rc = kv_iter_new(s->kv, KV_CF_BLOCK, true, &it);
				if (rc)
					goto out_unlock;
			}
			/* Past EOF the block is zero by INV-3. */
			if (bn * STORE_BLOCK_SIZE >= a.size)
				memset(tmp, 0, STORE_BLOCK_SIZE);
			else
				rc = store_block_read(s, it, &v, ino, bn, tmp);
			if (rc)
				goto out_unlock;
			memcpy(tmp + boff, src + done, n);
			rc = store_batch_block(&b, branch, ino, bn, tmp);
			if (rc)
				goto out_unlock;
		}
		done += n;
	}
	if (off + len > a.size)
		a.size = off + len;
	if (mtime)
		a.mtime = a.ctime = *mtime;
	store_batch_attr(&b, branch, ino, &a, NULL);
	rc = store_commit(s, &b, false, NULL);
	if (rc == 0) {
		store_acache_set(s, &v, ino, &a);
		atomic_fetch_add(&v.self->written, len);
		atomic_store(&v.self->written_dirty, true);
	}
out_unlock:
	store_lockset_unlock(s, &ls);
out:
	kv_iter_free(it);
	kv_batch_release(&b);
	free(tmp);
	store_view_release(&v);
	atomic_fetch_sub(&s->space_inflight, len);
	return rc ? rc : (ssize_t)len;
}

/* Zero [from, to) of block bn (to at most its end) into batch b, merged
 * with what the block holds.  Under the inode's lock. */
static int store_batch_zero_part(struct store *s, struct kv_batch *b,
				 const struct store_view *v, struct kv_iter *it,
				 uint64_t branch, uint64_t ino, uint64_t from,
				 uint64_t to, unsigned char *tmp)
{
	uint64_t bn = from / STORE_BLOCK_SIZE;
	int rc;

	rc = store_block_read(s, it, v, ino, bn, tmp);
	if (rc)
		return rc;
	memset(tmp + from % STORE_BLOCK_SIZE, 0, (size_t)(to - from));
	return store_batch_block(b, branch, ino, bn, tmp);
}

int store_punch(struct store *s, uint64_t branch, uint64_t ino, uint64_t off,
		uint64_t end, const struct timespec *mtime)
{
	return store_zero_range(s, branch, ino, off, end, false, mtime);
}

int store_zero_range(struct store *s, uint64_t branch, uint64_t ino,
		     uint64_t off, uint64_t end, bool grow,
		     const struct timespec *mtime)
{
	struct store_lockset ls = { .n = 0 };
	unsigned char *tmp = NULL;
	struct kv_iter *it = NULL;
	uint64_t first, last, zend;
	struct store_view v;
	struct store_attr a;
	struct kv_batch b;
	int rc;

	if (end > STORE_MAX_FILE_SIZE)
		return -EFBIG;
	if (off >= end)
		return 0;
	rc = store_view_get(s, branch, STORE_SEQ_LATEST, &v);
	if (rc)
		return rc;
	kv_batch_init(&b);
	store_lockset_add(&ls, branch, ino);
	store_lockset_lock(s, &ls);
	rc = store_attr_load(s, &v, ino, &a, NULL, 0);
	if (rc == 0 && !S_ISREG(a.mode))
		rc = S_ISDIR(a.mode) ? -EISDIR : -EINVAL;
	if (rc)
		goto out;
	/* One batch, one commit: a branch made meanwhile sees all of the
	 * hole or none of it (it once took up to three commits, the partial
	 * blocks at either end each written as a store_write).  Past the
	 * size every byte is zero already (INV-3), and the size stays. */
	zend = end < a.size ? end : a.size;
	if (off < zend) {
		uint64_t hb = off / STORE_BLOCK_SIZE,
			 tb = zend / STORE_BLOCK_SIZE;

		first = store_div_up(off);
		last = tb;
		if (off % STORE_BLOCK_SIZE || zend % STORE_BLOCK_SIZE) {
			tmp = malloc(STORE_BLOCK_SIZE);
			rc = tmp ? kv_iter_new(s->kv, KV_CF_BLOCK, true, &it) :
				   -ENOMEM;
			if (rc)
				goto out;
		}
		if (off % STORE_BLOCK_SIZE) {
			uint64_t hend = (hb + 1) * STORE_BLOCK_SIZE;

			rc = store_batch_zero_part(s, &b, &v, it, branch, ino,
						   off,
						   zend < hend ? zend : hend,
						   tmp);
			if (rc)
				goto out;
		}
		if (zend % STORE_BLOCK_SIZE && tb * STORE_BLOCK_SIZE >= off &&
		    (tb != hb || off % STORE_BLOCK_SIZE == 0)) {
			rc = store_batch_zero_part(s, &b, &v, it, branch, ino,
						   tb * STORE_BLOCK_SIZE, zend,
						   tmp);
			if (rc)
				goto out;
		}
		if (first < last) {
			rc = store_batch_cut(s, &b, &v, ino, first, last);
			if (rc)
				goto out;
		}
	}
	if (grow && end > a.size)
		a.size = end;
	if (mtime)
		a.mtime = a.ctime = *mtime;
	store_batch_attr(&b, branch, ino, &a, NULL);
	rc = store_commit(s, &b, false, NULL);
	if (rc == 0)
		store_acache_set(s, &v, ino, &a);
out:
	store_lockset_unlock(s, &ls);
	kv_iter_free(it);
	free(tmp);
	kv_batch_release(&b);
	store_view_release(&v);
	return rc;
}

/* ------------------------------------------------------------- usage */

/*
 * Usage without a walk.  A tree walk (a readdir of every directory and a
 * getattr of every file) cost 2.6 ms for a fresh PGDATA, so 5 s for the
 * first branchctl list after a mount with 2000 branches.  Instead:
 *
 * USAGE-2: an inode is reachable from its branch's root exactly when its
 *          visible attributes have nlink > 0 (every operation that adds or
 *          drops a name, or drops a directory, changes nlink in the same
 *          batch; an open unlinked file has nlink 0 and no name).  So
 *          files is the number of visible inodes with nlink > 0 (each
 *          hard-linked file once) and logical_bytes the sum of the sizes
 *          of the regular ones among them.  One exception: a fork that
 *          drops a name (drop_names) that is a directory drops the entry
 *          only (store_batch_drop_one), so that directory's tree stays
 *          counted, as it stays stored; drop_names are Postgres' files.
 *
 * By USAGE-2 the figures of a view are a sum over the inodes it sees, and
 * a level of a view sees its own version of an inode in place of the one
 * the levels below give it.  So the figures of levels k..n-1 are those of
 * levels k+1..n-1 plus, for each inode with a version visible at level k,
 * what that version counts minus what the levels below count for it: one
 * seek per inode the branch itself wrote and one read through the levels
 * below for each, not a walk of the whole tree.
 *
 * The levels below a branch are its parent as of its fork_seq, history
 * that does not change while the branch lives (INV-5; GC keeps what any
 * read point reads).  A branch's figures at its head are kept with the
 * range of seqs they hold for (USAGE-1): from its newest visible version
 * up to the watermark, so children forked later from an idle parent find
 * them.  A parent read at a fork point that nothing kept is counted in
 * one pass as of every live child's fork point at once (a difference
 * array over the sorted fork points: each version counts for the fork
 * points it is the newest at), and kept for each of them (USAGE-3): a
 * busy parent, whose children each see a different tree, is scanned
 * once for all of them too.  Nothing is persisted: after a mount the
 * first list scans each parent once and each branch's own inodes.
 */

static int store_u64_cmp(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;

	return x < y ? -1 : x > y;
}

/* The stamp a usage walk of br is valid at.  branches_lock held. */
static void store_usage_stamp(struct store *s, const struct store_branch *br,
			      uint64_t at[4])
{
	at[0] = atomic_load(&br->changes);
	at[1] = atomic_load(&s->changes_multi);
	at[2] = br->fork_seq;
	at[3] = br->floor;
}

int store_branch_stamp(struct store *s, uint64_t id, struct store_stamp *out)
{
	struct store_branch *br;

	pthread_rwlock_rdlock(&s->branches_lock);
	br = store_branch_by_id(s, id);
	if (br)
		store_usage_stamp(s, br, out->v);
	pthread_rwlock_unlock(&s->branches_lock);
	return br ? 0 : -ENOENT;
}

/* Figures of one level of a view (store_usage_head).  The sums are
 * modular: a level may count less than the levels below it. */
struct store_usage_sum {
	uint64_t bytes;
	uint64_t files;
	uint64_t lo; /* the level looks the same as of any seq in [lo, hi] */
	uint64_t hi;
};

static void store_usage_count(struct store_usage_sum *u,
			      const struct store_attr *a, bool add)
{
	uint64_t bytes = S_ISREG(a->mode) ? a->size : 0;

	if (a->nlink == 0)
		return;
	u->files += add ? 1 : (uint64_t)-1;
	u->bytes += add ? bytes : (uint64_t)0 - bytes;
}

/* Add to *u what the head of v's branch (level 0, read at
 * STORE_SEQ_LATEST) counts beyond the levels below it, and set [u->lo,
 * u->hi] to the seqs it looks the same at: from its newest version (or
 * its floor) to wm, the watermark taken before the scan (every seq up to
 * it was committed, so the scan saw every version up to it); empty (lo
 * above hi) if a version above wm was seen. */
/* Where a walk over level id's inode keys stands: 1 and *fk at one of
 * them, 0 past them (or at the end), or the iterator's error; -EIO a key
 * of the level of another size. */
static int store_usage_key(struct kv_iter *it, uint64_t id,
			   const unsigned char **fk)
{
	size_t fklen;

	if (!kv_iter_valid(it))
		return kv_iter_status(it);
	*fk = kv_iter_key(it, &fklen);
	if (fklen < 8 || store_get64(*fk) != id)
		return 0;
	return fklen == STORE_INODE_KLEN ? 1 : -EIO;
}

/* 1 and *fk when it is at a version of inode ino of level id, 0 when not
 * (or at the end), or the iterator's error. */
static int store_usage_ino(struct kv_iter *it, uint64_t id, uint64_t ino,
			   const unsigned char **fk)
{
	size_t fklen;

	if (!kv_iter_valid(it))
		return kv_iter_status(it);
	*fk = kv_iter_key(it, &fklen);
	return fklen == STORE_INODE_KLEN && store_get64(*fk) == id &&
	       store_get64(*fk + 8) == ino;
}

/* The first of the n ascending caps at or above seq (n if none). */
static size_t store_caps_first(const uint64_t *caps, size_t n, uint64_t seq)
{
	size_t a = 0, b = n;

	while (a < b) {
		size_t mid = a + (b - a) / 2;

		if (caps[mid] < seq)
			a = mid + 1;
		else
			b = mid;
	}
	return a;
}

/* Put it at the version of inode ino of level id at or below seq (the
 * key order: newest first), or past it. */
static void store_usage_seek(struct kv_iter *it, uint64_t id, uint64_t ino,
			     uint64_t seq)
{
	unsigned char key[STORE_INODE_KLEN];

	store_key_inode(key, id, ino, seq);
	kv_iter_seek(it, key, sizeof(key));
}

/* The usage scans' iterators over the inode keys: *it for the level's
 * own, and *bit (prefix bloom, point lookups) for the levels below it
 * when there are any.  0, or kv_iter_new's error (the caller frees both,
 * NULL or not). */
static int store_usage_iters(struct store *s, bool below, struct kv_iter **it,
			     struct kv_iter **bit)
{
	int rc = kv_iter_new(s->kv, KV_CF_INODE, 0, it);

	if (rc == 0 && below)
		rc = kv_iter_new(s->kv, KV_CF_INODE, KV_ITER_PREFIX, bit);
	return rc;
}

static int store_usage_head(struct store *s, const struct store_view *v,
			    uint64_t wm, struct store_usage_sum *u)
{
	const struct store_level *lv = &v->lv[0];
	struct store_view below = { .n = v->n - 1, .lv = v->lv + 1 };
	struct kv_iter *it = NULL, *bit = NULL;
	uint64_t ino = 0;
	int rc;

	assert(lv->cap == STORE_SEQ_LATEST);
	/* at or above the floor, and past the fork: below it the levels
	 * below would be read at another seq */
	u->lo = lv->floor;
	if (below.n && below.lv[0].cap + 1 > u->lo)
		u->lo = below.lv[0].cap + 1;
	u->hi = wm;
	rc = store_usage_iters(s, below.n > 0, &it, &bit);
	if (rc)
		goto out;
	store_usage_seek(it, lv->id, ino, STORE_SEQ_LATEST);
	for (;;) {
		const unsigned char *fk = NULL, *val;
		struct store_attr a;
		size_t vlen;
		uint64_t seq;

		rc = store_usage_key(it, lv->id, &fk);
		if (rc <= 0)
			break;
		rc = 0;
		/* the newest version of the next inode that has one */
		ino = store_get64(fk + 8);
		seq = ~store_get64(fk + 16);
		if (seq >= lv->floor) {
			val = kv_iter_value(it, &vlen);
			rc = store_attr_decode(val, vlen, &a);
			if (rc)
				break;
			if (seq > u->lo)
				u->lo = seq;
			store_usage_count(u, &a, true);
			if (below.n) {
				rc = store_attr_find(bit, &below, ino, &a, NULL,
						     0);
				if (rc == 0)
					store_usage_count(u, &a, false);
				else if (rc != -ENOENT)
					break;
				rc = 0;
			}
		}
		if (ino == UINT64_MAX)
			break;
		store_usage_seek(it, lv->id, ino + 1, STORE_SEQ_LATEST);
	}
out:
	kv_iter_free(bit);
	kv_iter_free(it);
	return rc;
}

/* Keep level k's figures (USAGE-1).  branches_lock held for writing. */
static void store_usage_keep(struct store *s, const struct store_view *v,
			     size_t k, const struct store_usage_sum *u)
{
	struct store_branch *br = store_branch_by_id(s, v->lv[k].id);

	/* Reset meanwhile (only level 0 can be: the others have children):
	 * the floor moved. */
	if (!br || br->floor != v->lv[k].floor || u->lo > u->hi)
		return;
	br->span_bytes = u->bytes;
	br->span_files = u->files;
	br->span_lo = u->lo;
	br->span_hi = u->hi;
	br->span_fork = br->fork_seq;
	br->span_floor = br->floor;
	br->span_ok = true;
}

/* The figures of levels k.. of v, if kept.  branches_lock held. */
static bool store_usage_kept(struct store *s, const struct store_view *v,
			     size_t k, struct store_usage_sum *u)
{
	struct store_branch *br = store_branch_by_id(s, v->lv[k].id);
	uint64_t cap = v->lv[k].cap;

	size_t lo = 0, hi;

	if (!br || br->floor != v->lv[k].floor)
		return false;
	if (br->span_ok && br->span_fork == br->fork_seq &&
	    br->span_floor == br->floor && cap >= br->span_lo &&
	    cap <= br->span_hi) {
		u->bytes = br->span_bytes;
		u->files = br->span_files;
		return true;
	}
	if (br->at_fork != br->fork_seq || br->at_floor != br->floor)
		return false;
	hi = br->n_at;
	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;

		if (br->at[mid].seq < cap)
			lo = mid + 1;
		else
			hi = mid;
	}
	if (lo == br->n_at || br->at[lo].seq != cap)
		return false;
	u->bytes = br->at[lo].bytes;
	u->files = br->at[lo].files;
	return true;
}

/* The seqs a level of a view is read at by the branch's live children
 * (their fork_seqs), and cap, sorted, each once, into *out (owned by the
 * caller, freed with free()).  branches_lock held. */
static int store_usage_caps(struct store *s, uint64_t id, uint64_t cap,
			    uint64_t **out, size_t *n)
{
	struct store_branch *b;
	uint64_t *caps;
	size_t i, k = 0, m = 1;

	store_names_walked(s);
	for (i = 0; i < s->names_cap; i++)
		for (b = s->names[i]; b; b = b->name_next)
			m += b->parent_id == id;
	caps = malloc(m * sizeof(*caps));
	if (!caps)
		return -ENOMEM;
	caps[k++] = cap;
	for (i = 0; i < s->names_cap; i++)
		for (b = s->names[i]; b; b = b->name_next)
			if (b->parent_id == id && k < m)
				caps[k++] = b->fork_seq;
	qsort(caps, k, sizeof(*caps), store_u64_cmp);
	for (i = 1, m = 1; i < k; i++)
		if (caps[i] != caps[m - 1])
			caps[m++] = caps[i];
	*out = caps;
	*n = m;
	return 0;
}

/* Versions of one inode between two of the seqs stepped over before a
 * seek to the next seq instead. */
#define STORE_USAGE_STEPS 8

/* What level k of v (not the head) counts beyond the levels below it, as
 * of each seq caps[0..m) (sorted, each at or above the level's floor and
 * at most the watermark), added to sum[0..m).  One pass over the level's
 * inodes: each of their versions counts for the seqs at which it is the
 * newest (a difference array over the caps), so a parent read by a
 * thousand children at a thousand fork points is scanned once. */
static int store_usage_multi(struct store *s, const struct store_view *v,
			     size_t k, const uint64_t *caps, size_t m,
			     struct store_usage_at *sum)
{
	const struct store_level *lv = &v->lv[k];
	struct store_view below = { .n = v->n - k - 1, .lv = v->lv + k + 1 };
	struct store_usage_sum *d;
	struct kv_iter *it = NULL, *bit = NULL;
	uint64_t ino = 0, top = caps[m - 1], rb = 0, rf = 0;
	size_t j;
	int rc;

	d = calloc(m + 1, sizeof(*d));
	if (!d)
		return -ENOMEM;
	rc = store_usage_iters(s, below.n > 0, &it, &bit);
	if (rc)
		goto out;
	store_usage_seek(it, lv->id, ino, top);
	for (;;) {
		const unsigned char *fk = NULL, *val;
		struct store_usage_sum under = { 0 };
		bool under_read = false;
		size_t vlen, hi = m - 1;

		rc = store_usage_key(it, lv->id, &fk);
		if (rc <= 0)
			break;
		rc = 0;
		if (store_get64(fk + 8) != ino) {
			/* The next inode's newest version: seek to its
			 * newest at or below the highest seq. */
			ino = store_get64(fk + 8);
			store_usage_seek(it, lv->id, ino, top);
			continue;
		}
		/* At ino's newest version at or below caps[hi]. */
		for (;;) {
			struct store_attr a;
			struct store_usage_sum c = { 0 };
			uint64_t seq = ~store_get64(fk + 16);
			size_t lo, steps = 0;

			if (seq < lv->floor)
				break;
			/* the seqs it is the newest version at: caps[lo..hi] */
			lo = store_caps_first(caps, hi + 1, seq);
			if (lo <= hi) {
				val = kv_iter_value(it, &vlen);
				rc = store_attr_decode(val, vlen, &a);
				if (rc)
					goto out;
				store_usage_count(&c, &a, true);
				if (below.n && !under_read) {
					rc = store_attr_find(bit, &below, ino,
							     &a, NULL, 0);
					if (rc == 0)
						store_usage_count(&under, &a,
								  true);
					else if (rc != -ENOENT)
						goto out;
					rc = 0;
					under_read = true;
				}
				d[lo].bytes += c.bytes - under.bytes;
				d[lo].files += c.files - under.files;
				d[hi + 1].bytes -= c.bytes - under.bytes;
				d[hi + 1].files -= c.files - under.files;
			}
			if (lo == 0)
				break;
			hi = lo - 1;
			/* to the newest version at or below caps[hi] */
			do {
				kv_iter_next(it);
				rc = store_usage_ino(it, lv->id, ino, &fk);
			} while (rc == 1 && ~store_get64(fk + 16) > caps[hi] &&
				 ++steps < STORE_USAGE_STEPS);
			if (rc == 1 && ~store_get64(fk + 16) > caps[hi]) {
				store_usage_seek(it, lv->id, ino, caps[hi]);
				rc = store_usage_ino(it, lv->id, ino, &fk);
			}
			if (rc < 0)
				goto out;
			if (rc == 0)
				break;
			rc = 0;
		}
		if (ino == UINT64_MAX)
			break;
		ino++;
		store_usage_seek(it, lv->id, ino, top);
	}
	if (rc)
		goto out;
	for (j = 0; j < m; j++) {
		rb += d[j].bytes;
		rf += d[j].files;
		sum[j].bytes += rb;
		sum[j].files += rf;
	}
out:
	kv_iter_free(bit);
	kv_iter_free(it);
	free(d);
	return rc;
}

/* The figures of levels k.. of v (k > 0: a parent read at its children's
 * fork points), given *sum, those of the levels below: computed as of
 * every live child's fork_seq at once and kept (USAGE-3). */
static int store_usage_many(struct store *s, const struct store_view *v,
			    size_t k, struct store_usage_sum *sum)
{
	struct store_usage_at *at;
	struct store_branch *br;
	uint64_t *caps = NULL;
	size_t m = 0, j;
	int rc;

	pthread_rwlock_rdlock(&s->branches_lock);
	rc = store_usage_caps(s, v->lv[k].id, v->lv[k].cap, &caps, &m);
	pthread_rwlock_unlock(&s->branches_lock);
	if (rc)
		return rc;
	at = calloc(m, sizeof(*at));
	if (!at) {
		free(caps);
		return -ENOMEM;
	}
	for (j = 0; j < m; j++) {
		at[j].seq = caps[j];
		at[j].bytes = sum->bytes;
		at[j].files = sum->files;
	}
	rc = store_usage_multi(s, v, k, caps, m, at);
	free(caps);
	if (rc) {
		free(at);
		return rc;
	}
	for (j = 0; j < m && at[j].seq != v->lv[k].cap; j++)
		;
	assert(j < m);
	sum->bytes = at[j].bytes;
	sum->files = at[j].files;
	pthread_rwlock_wrlock(&s->branches_lock);
	br = store_branch_by_id(s, v->lv[k].id);
	/* a branch with children is never reset (INV-5): checked anyway */
	if (br && br->floor == v->lv[k].floor) {
		free(br->at);
		br->at = at;
		br->n_at = m;
		br->at_fork = br->fork_seq;
		br->at_floor = br->floor;
		at = NULL;
	}
	pthread_rwlock_unlock(&s->branches_lock);
	free(at);
	return 0;
}

int store_branch_usage(struct store *s, uint64_t id, struct store_usage *out)
{
	struct store_usage_sum sum = { 0 }, lvl;
	struct store_branch *br;
	struct store_usage u = { 0 };
	struct store_view v;
	uint64_t at[4], at2[4], wm;
	size_t k, from;
	bool hit = false;
	int rc;

	pthread_rwlock_rdlock(&s->branches_lock);
	br = store_branch_by_id(s, id);
	if (br) {
		store_usage_stamp(s, br, at);
		if (br->usage_ok && memcmp(at, br->usage_at, sizeof(at)) == 0) {
			*out = br->usage;
			out->written_bytes = atomic_load(&br->written);
			hit = true;
		}
	}
	pthread_rwlock_unlock(&s->branches_lock);
	if (hit)
		return 0;
	if (!br)
		return -ENOENT;
	/* Before the view and the scans' iterators: every seq up to wm is
	 * in what they read. */
	wm = atomic_load(&s->watermark);
	rc = store_view_get(s, id, STORE_SEQ_LATEST, &v);
	if (rc)
		return rc;
	from = v.n;
	pthread_rwlock_rdlock(&s->branches_lock);
	for (k = 1; k < v.n; k++) {
		if (store_usage_kept(s, &v, k, &sum)) {
			from = k;
			break;
		}
	}
	pthread_rwlock_unlock(&s->branches_lock);
	for (k = from; k-- > 0;) {
		if (k > 0) {
			rc = store_usage_many(s, &v, k, &sum);
			if (rc)
				goto out;
			continue;
		}
		lvl = sum;
		rc = store_usage_head(s, &v, wm, &lvl);
		if (rc)
			goto out;
		sum.bytes = lvl.bytes;
		sum.files = lvl.files;
		pthread_rwlock_wrlock(&s->branches_lock);
		store_usage_keep(s, &v, k, &lvl);
		pthread_rwlock_unlock(&s->branches_lock);
	}
	u.logical_bytes = sum.bytes;
	u.files = sum.files;
	pthread_rwlock_wrlock(&s->branches_lock);
	br = store_branch_by_id(s, id);
	if (br) {
		u.written_bytes = atomic_load(&br->written);
		/* Nothing committed to it (or reset it) during the scan. */
		store_usage_stamp(s, br, at2);
		if (memcmp(at, at2, sizeof(at)) == 0) {
			br->usage = u;
			memcpy(br->usage_at, at, sizeof(at));
			br->usage_ok = true;
		}
	}
	pthread_rwlock_unlock(&s->branches_lock);
	*out = u;
out:
	store_view_release(&v);
	return rc;
}

/* ---------------------------------------------------------------- gc */

/* META "P" key: a setting of the layers above. */
static int store_setting_key(const char *key, unsigned char *k, size_t *klen)
{
	size_t n = key ? strlen(key) : 0;

	if (n == 0 || n > 64)
		return -EINVAL;
	k[0] = 'P';
	memcpy(k + 1, key, n);
	*klen = n + 1;
	return 0;
}

int store_setting_put(struct store *s, const char *key, const char *val)
{
	unsigned char k[65];
	struct kv_batch b;
	size_t klen, vlen = val ? strlen(val) : SIZE_MAX;
	int rc;

	rc = store_setting_key(key, k, &klen);
	if (rc)
		return rc;
	if (vlen > STORE_SETTING_MAX)
		return -EINVAL;
	kv_batch_init(&b);
	kv_batch_put(&b, KV_CF_META, k, klen, val, vlen);
	rc = kv_write(s->kv, &b, true);
	kv_batch_release(&b);
	return rc;
}

int store_setting_get(struct store *s, const char *key, char *buf, size_t bufsz)
{
	unsigned char k[65];
	char v[STORE_SETTING_MAX];
	size_t klen, vlen;
	bool found;
	int rc;

	rc = store_setting_key(key, k, &klen);
	if (rc)
		return rc;
	rc = kv_get(s->kv, KV_CF_META, k, klen, v, sizeof(v), &vlen, &found);
	if (rc)
		return rc;
	if (!found)
		return -ENOENT;
	if (vlen >= bufsz || vlen > sizeof(v))
		return -ERANGE;
	memcpy(buf, v, vlen);
	buf[vlen] = 0;
	return 0;
}

int store_set_retention(struct store *s, uint64_t seconds)
{
	char v[24];
	int rc;

	if (seconds == 0 || seconds > STORE_RETENTION_MAX)
		return -EINVAL;
	snprintf(v, sizeof(v), "%" PRIu64, seconds);
	rc = store_setting_put(s, "retention", v);
	if (rc)
		return rc;
	atomic_store(&s->retention_s, seconds);
	return 0;
}

uint64_t store_get_retention(struct store *s)
{
	return atomic_load(&s->retention_s);
}

/* Read points of one branch's own versions besides its head and the
 * window: the caps its descendants read it at. */
struct store_gc_branch {
	uint64_t id;
	uint64_t floor;
	uint64_t *caps; /* sorted ascending */
	size_t ncaps, capcap;
	uint64_t *dead; /* unlinked, unopened inodes: blocks reclaimable */
	size_t ndead, capdead;
};

static int store_u64_push(uint64_t **arr, size_t *n, size_t *cap, uint64_t v)
{
	if (*n == *cap) {
		size_t ncap = *cap ? *cap * 2 : 16;
		uint64_t *na = realloc(*arr, ncap * sizeof(*na));

		if (!na)
			return -ENOMEM;
		*arr = na;
		*cap = ncap;
	}
	(*arr)[(*n)++] = v;
	return 0;
}

static bool store_u64_find(const uint64_t *arr, size_t n, uint64_t v)
{
	size_t lo = 0, hi = n;

	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;

		if (arr[mid] == v)
			return true;
		if (arr[mid] < v)
			lo = mid + 1;
		else
			hi = mid;
	}
	return false;
}

/* Is any cap r with lo <= r < hi? */
static bool store_caps_hit(const uint64_t *caps, size_t n, uint64_t lo,
			   uint64_t hi)
{
	size_t a = store_caps_first(caps, n, lo);

	return a < n && caps[a] < hi;
}

static int store_gc_branch_cmp(const void *a, const void *b)
{
	uint64_t x = ((const struct store_gc_branch *)a)->id;
	uint64_t y = ((const struct store_gc_branch *)b)->id;

	return x < y ? -1 : x > y;
}

/* Snapshot every live branch and the caps its descendants read it at. */
static int store_gc_snapshot(struct store *s, struct store_gc_branch **out,
			     size_t *nout)
{
	struct store_gc_branch *gb = NULL;
	struct store_branch *b, *c, *a;
	size_t n = 0, i, *slot = NULL;
	int rc = 0;

	pthread_rwlock_rdlock(&s->branches_lock);
	gb = calloc(s->nbranches ? s->nbranches : 1, sizeof(*gb));
	slot = calloc(s->branches_cap ? s->branches_cap : 1, sizeof(*slot));
	if (!gb || !slot) {
		rc = -ENOMEM;
		goto out_unlock;
	}
	store_names_walked(s);
	for (i = 0; i < s->names_cap; i++) {
		for (b = s->names[i]; b; b = b->name_next) {
			gb[n].id = b->id;
			gb[n].floor = b->floor;
			n++;
		}
	}
	/* In id order: store_gc_branch_of searches it. */
	qsort(gb, n, sizeof(*gb), store_gc_branch_cmp);
	for (i = 0; i < n; i++)
		slot[gb[i].id] = i;
	for (i = 0; i < s->names_cap; i++) {
		for (c = s->names[i]; c; c = c->name_next) {
			uint64_t cap = c->fork_seq;

			for (a = c->parent_id ?
					 store_branch_by_id(s, c->parent_id) :
					 NULL;
			     a;
			     a = a->parent_id ?
					 store_branch_by_id(s, a->parent_id) :
					 NULL) {
				struct store_gc_branch *g = &gb[slot[a->id]];

				rc = store_u64_push(&g->caps, &g->ncaps,
						    &g->capcap, cap);
				if (rc)
					goto out_unlock;
				if (a->fork_seq < cap)
					cap = a->fork_seq;
			}
		}
	}
out_unlock:
	pthread_rwlock_unlock(&s->branches_lock);
	free(slot);
	if (rc) {
		for (i = 0; i < n; i++)
			free(gb[i].caps);
		free(gb);
		return rc;
	}
	for (i = 0; i < n; i++) {
		if (gb[i].ncaps)
			qsort(gb[i].caps, gb[i].ncaps, sizeof(uint64_t),
			      store_u64_cmp);
	}
	*out = gb;
	*nout = n;
	return 0;
}

/*
 * Incremental GC.  A version becomes reclaimable when the version that
 * shadows it (the next newer one of the same object) falls out of the
 * window; so a GC with window start w need examine only the objects
 * written at a seq in (the previous GC's w, w], and in each only the
 * versions around those writes.  The write path notes every object it
 * writes, with the seq, in s->gc_dirty (object -> "pending": the oldest
 * seq not yet examined).  A GC takes the objects with pending <= w,
 * examines them (an inode or a block: one seek to the newest version <= w,
 * then older ones while they were shadowed at or after pending; a
 * directory: all of its entries' versions), and sets pending to the
 * object's oldest version above w, or forgets the object if it has none.
 *
 * GC-1 After a GC with window start w, every version of a live branch
 *      whose next newer version is at or below w has been decided
 *      (deleted, or kept for a read point), and every object with a
 *      version above w is in the set with pending at or below its oldest
 *      such version.
 * GC-2 Whole scans of a branch restore GC-1 where the set cannot: the
 *      first GC after open (the set lives in memory only), after a note
 *      was lost (no memory, or more than STORE_GC_MAX_OBJS objects), after
 *      a GC failed half-way, for a branch that was reset (its own versions
 *      below the floor), and for the parent of a child deleted or reset
 *      whose fork point was below the horizon (store_gc_fork_gone: one at
 *      or above it kept nothing GC has decided).  They note every object
 *      with versions above w.
 * GC-3 Deciding is monotone (a kept version stays kept when versions
 *      between it and its newer neighbour go), so examining an object
 *      twice is harmless, but each key is deleted at most once (versions
 *      are written once, and deleted with SingleDelete, which requires
 *      it): the whole scans' deletions are written before the object pass
 *      opens its iterators, and within a pass each key is visited once.
 * The set decides only what is examined, never what is kept: a lost or
 * stale note can only delay reclamation.
 */
struct store_gc_run {
	struct store *s;
	const struct store_gc_opts *opts;
	struct store_gc_stats *st;
	struct kv_batch b;
	uint64_t w;	    /* window start seq */
	uint64_t last_dead; /* last inode counted in inodes_reclaimed */
	uint64_t paced;	    /* keys_scanned at the last pause */
	uint64_t h_ticket;  /* writes_done after the horizon's write; 0:
			     * known durable */
	size_t set_n;	    /* objects in GC's set when the pass began */
	size_t taken;	    /* ... of which the pass took */
	int64_t take_ns;    /* time taking them (stripe locks held) */
};

/* The horizon must be durable before GC deletes anything below it, or a
 * crash could bring back moments whose versions are gone.  GC does not
 * sync itself when it can help it: a sync issued from its low-priority
 * thread would hold up the foreground's writes behind it.  It waits (up
 * to STORE_GC_SYNC_WAIT_MS) for a foreground group commit to cover its
 * write of the horizon, and syncs only if none comes (an idle store). */
static int store_gc_horizon_durable(struct store_gc_run *r)
{
	int i;

	if (!r->h_ticket)
		return 0;
	for (i = 0; i < STORE_GC_SYNC_WAIT_MS &&
		    atomic_load(&r->s->writes_synced) < r->h_ticket;
	     i++)
		usleep(1000);
	if (atomic_load(&r->s->writes_synced) < r->h_ticket) {
		int rc = store_sync(r->s);

		if (rc)
			return rc;
	}
	r->h_ticket = 0;
	return 0;
}

static void store_gc_pace(struct store_gc_run *r)
{
	if (r->opts->pause_us && r->st->keys_scanned - r->paced >= 1024) {
		r->paced = r->st->keys_scanned;
		usleep(r->opts->pause_us);
	}
}

static int store_gc_flush(struct store_gc_run *r, bool force)
{
	int rc;

	if (r->b.nops == 0 || (!force && r->b.nops < STORE_GC_BATCH))
		return 0;
	rc = store_gc_horizon_durable(r);
	if (rc)
		return rc;
	/* Not through store_acache_note_batch: GC deletes only versions no
	 * head read returns (shadowed ones, and the inodes and blocks of
	 * unlinked files), so no cache entry holds them (INV-8).  A GC
	 * that deleted a head version would have to note its batch. */
	rc = kv_write(r->s->kv, &r->b, false);
	kv_batch_clear(&r->b);
	return rc;
}

/* Versions are written once (their seq is in the key), so SingleDelete
 * applies: compactions drop it and the value together at any level,
 * where a Delete tombstone would sink to the bottom level first. */
static int store_gc_delete(struct store_gc_run *r, enum kv_cf cf,
			   const unsigned char *k, size_t klen, size_t vlen)
{
	kv_batch_single_delete(&r->b, cf, k, klen);
	r->st->keys_deleted++;
	r->st->bytes_deleted += klen + vlen;
	return store_gc_flush(r, false);
}

/*
 * Versions of one object in one branch, newest first: seqs[0..n).  Mark
 * keep[i].  seqs[0] is the head or the newest version at or below w, and
 * is kept; an older one is kept if a read point falls in [its seq, the
 * next newer seq): a moment inside the window (>= w) or a descendant's
 * cap.  Versions below the floor are never visible again.
 */
static void store_gc_decide(const struct store_gc_branch *g, uint64_t w,
			    const uint64_t *seqs, size_t n, bool *keep)
{
	size_t i;

	for (i = 0; i < n; i++) {
		if (seqs[i] < g->floor)
			keep[i] = false;
		else if (i == 0)
			keep[i] = true;
		else
			keep[i] = seqs[i - 1] > w ||
				  store_caps_hit(g->caps, g->ncaps, seqs[i],
						 seqs[i - 1]);
	}
}

struct store_gc_group {
	unsigned char prefix[STORE_DIRENT_KMAX];
	size_t plen;
	unsigned char (*keys)[STORE_DIRENT_KMAX];
	size_t *vlens;
	uint64_t *seqs;
	bool *keep;
	bool *linked; /* inode versions: nlink > 0 */
	size_t n, cap;
};

static int store_gc_group_add(struct store_gc_group *g, const unsigned char *k,
			      size_t klen, const unsigned char *v, size_t vlen)
{
	if (g->n == g->cap) {
		size_t ncap = g->cap ? g->cap * 2 : 8;
		void *nk = realloc(g->keys, ncap * sizeof(*g->keys));

		if (!nk)
			return -ENOMEM;
		g->keys = nk;
		nk = realloc(g->vlens, ncap * sizeof(*g->vlens));
		if (!nk)
			return -ENOMEM;
		g->vlens = nk;
		nk = realloc(g->seqs, ncap * sizeof(*g->seqs));
		if (!nk)
			return -ENOMEM;
		g->seqs = nk;
		nk = realloc(g->keep, ncap * sizeof(*g->keep));
		if (!nk)
			return -ENOMEM;
		g->keep = nk;
		nk = realloc(g->linked, ncap * sizeof(*g->linked));
		if (!nk)
			return -ENOMEM;
		g->linked = nk;
		g->cap = ncap;
	}
	memcpy(g->keys[g->n], k, klen);
	g->vlens[g->n] = vlen;
	g->seqs[g->n] = ~store_get64(k + klen - 8);
	g->linked[g->n] = vlen >= STORE_INODE_HDR && store_get32(v + 12) > 0;
	g->n++;
	return 0;
}

static void store_gc_group_free(struct store_gc_group *g)
{
	free(g->keys);
	free(g->vlens);
	free(g->seqs);
	free(g->keep);
	free(g->linked);
}

/* Delete the versions of g not marked keep (all of them if all). */
static int store_gc_group_drop(struct store_gc_run *r, enum kv_cf cf,
			       const struct store_gc_group *g, bool all)
{
	size_t i;
	int rc;

	for (i = 0; i < g->n; i++) {
		if (g->keep[i] && !all)
			continue;
		rc = store_gc_delete(r, cf, g->keys[i], g->plen + 8,
				     g->vlens[i]);
		if (rc)
			return rc;
	}
	return 0;
}

/* Decide and delete one whole group's versions (every version of one
 * object), find unlinked inodes, and note the object if it has versions
 * above the window (GC-2). */
static int store_gc_group_done(struct store_gc_run *r,
			       struct store_gc_branch *gb, enum kv_cf cf,
			       struct store_gc_group *g)
{
	uint64_t ino = store_get64(g->prefix + 8);
	bool dead_ino = false;
	size_t i;
	int rc;

	if (g->n == 0)
		return 0;
	if (cf == KV_CF_BLOCK && store_u64_find(gb->dead, gb->ndead, ino))
		dead_ino = true;
	store_gc_decide(gb, r->w, g->seqs, g->n, g->keep);
	if (g->seqs[0] > r->w) {
		for (i = 0; i + 1 < g->n && g->seqs[i + 1] > r->w; i++)
			;
		store_gc_note(r->s, cf, gb->id, ino,
			      cf == KV_CF_BLOCK ? store_get64(g->prefix + 16) :
						  0,
			      g->seqs[i]);
	}
	if (cf == KV_CF_INODE && g->seqs[0] >= gb->floor && !g->linked[0] &&
	    g->seqs[0] <= r->w) {
		bool any_linked = false;

		for (i = 0; i < g->n; i++)
			any_linked |= g->keep[i] && g->linked[i];
		if (!any_linked) {
			if (!r->opts->in_use ||
			    !r->opts->in_use(r->opts->ctx, gb->id, ino)) {
				rc = store_u64_push(&gb->dead, &gb->ndead,
						    &gb->capdead, ino);
				if (rc)
					return rc;
			} else {
				/* Still open: look again next time. */
				store_gc_note(r->s, cf, gb->id, ino, 0, r->w);
			}
		}
	}
	rc = store_gc_group_drop(r, cf, g, dead_ino);
	if (rc)
		return rc;
	/* Count an unlinked inode once, when its blocks actually go. */
	if (dead_ino && r->last_dead != ino) {
		r->last_dead = ino;
		r->st->inodes_reclaimed++;
	}
	g->n = 0;
	return 0;
}

/* Scan the keys of cf that start with start[0..slen): the whole branch
 * (8 bytes) or one inode or directory of it (16 bytes).  it must be a
 * total-order iterator. */
static int store_gc_scan_from(struct store_gc_run *r,
			      struct store_gc_branch *gb, enum kv_cf cf,
			      struct kv_iter *it, const unsigned char *start,
			      size_t slen)
{
	struct store_gc_group g = { .n = 0 };
	int rc;

	for (kv_iter_seek(it, start, slen); kv_iter_valid(it);
	     kv_iter_next(it)) {
		const unsigned char *k, *v;
		size_t klen, vlen;

		k = kv_iter_key(it, &klen);
		if (klen < 8 + 8 || memcmp(k, start, slen) != 0)
			break;
		if (klen > STORE_DIRENT_KMAX) {
			rc = -EIO;
			goto out;
		}
		v = kv_iter_value(it, &vlen);
		r->st->keys_scanned++;
		if (g.n &&
		    (g.plen != klen - 8 || memcmp(g.prefix, k, g.plen))) {
			rc = store_gc_group_done(r, gb, cf, &g);
			if (rc)
				goto out;
		}
		if (g.n == 0) {
			g.plen = klen - 8;
			memcpy(g.prefix, k, g.plen);
		}
		rc = store_gc_group_add(&g, k, klen, v, vlen);
		if (rc)
			goto out;
		store_gc_pace(r);
	}
	rc = kv_iter_status(it);
	if (rc == 0)
		rc = store_gc_group_done(r, gb, cf, &g);
out:
	store_gc_group_free(&g);
	return rc;
}

/* Whole scan of one branch's keys in cf (GC-2). */
static int store_gc_scan(struct store_gc_run *r, struct store_gc_branch *gb,
			 enum kv_cf cf)
{
	unsigned char start[8];
	struct kv_iter *it;
	int rc;

	rc = kv_iter_new(r->s->kv, cf, KV_ITER_SCAN, &it);
	if (rc)
		return rc;
	store_put64(start, gb->id);
	rc = store_gc_scan_from(r, gb, cf, it, start, 8);
	kv_iter_free(it);
	return rc;
}

/* ---- the object pass ---- */

struct store_gc_todo {
	uint64_t branch, ino, blk, pending;
	int cf;
};

static int store_gc_todo_cmp(const void *a, const void *b)
{
	const struct store_gc_todo *x = a, *y = b;

	if (x->branch != y->branch)
		return x->branch < y->branch ? -1 : 1;
	if (x->cf != y->cf)
		return x->cf < y->cf ? -1 : 1;
	if (x->ino != y->ino)
		return x->ino < y->ino ? -1 : 1;
	if (x->blk != y->blk)
		return x->blk < y->blk ? -1 : 1;
	return 0;
}

/* Take every object with pending <= w out of the set (marked taken),
 * sorted in key order: from the top of each stripe's heap, so the cost is
 * what is taken, not the size of the set.  *out is freed by the caller. */
static int store_gc_take(struct store *s, uint64_t w,
			 struct store_gc_todo **out, size_t *nout)
{
	struct store_gc_todo *td = NULL;
	size_t n = 0, cap = 0, i;
	int rc = 0;

	for (i = 0; i < STORE_GC_STRIPES && rc == 0; i++) {
		struct store_gc_stripe *st = &s->gc_dirty[i];

		pthread_mutex_lock(&st->mu);
		while (st->nheap > 0 && st->tab[st->heap[0]].pending <= w) {
			struct store_gc_obj *o;

			if (n == cap) {
				size_t ncap = cap ? cap * 2 : 256;
				struct store_gc_todo *nt =
					realloc(td, ncap * sizeof(*nt));

				if (!nt) {
					rc = -ENOMEM;
					break;
				}
				td = nt;
				cap = ncap;
			}
			o = &st->tab[store_gc_heap_pop(st)];
			td[n++] = (struct store_gc_todo){ .branch = o->branch,
							  .ino = o->ino,
							  .blk = o->blk,
							  .pending = o->pending,
							  .cf = o->cf };
			o->pending = STORE_GC_TAKEN;
		}
		pthread_mutex_unlock(&st->mu);
	}
	if (n > 1)
		qsort(td, n, sizeof(*td), store_gc_todo_cmp);
	*out = td;
	*nout = n;
	return rc;
}

/* Examine one inode or block object (key prefix pfx, plen bytes) whose
 * versions were examined up to, not including, the one that shadows at
 * seq pending: decide the newest version at or below w and the older ones
 * shadowed at or after pending.  *next gets the object's oldest version
 * above w (0: none).  *whole is set instead for an inode whose head is
 * unlinked and out of the window: the caller examines all its versions. */
static int store_gc_obj(struct store_gc_run *r, struct store_gc_branch *gb,
			enum kv_cf cf, struct kv_iter *it,
			struct store_gc_group *g, uint64_t pending,
			uint64_t *next, bool *whole)
{
	unsigned char key[STORE_BLOCK_KLEN];
	const unsigned char *k, *v;
	size_t plen = g->plen, klen, vlen;
	int rc;

	*next = 0;
	*whole = false;
	g->n = 0;
	memcpy(key, g->prefix, plen);
	store_put64(key + plen, ~(r->w + 1));
	kv_iter_seek_for_prev(it, key, plen + 8);
	r->st->keys_scanned++;
	if (kv_iter_valid(it)) {
		k = kv_iter_key(it, &klen);
		if (klen == plen + 8 && memcmp(k, g->prefix, plen) == 0)
			*next = ~store_get64(k + plen);
	} else {
		/* Now: the seek below starts afresh, and RocksDB's status
		 * with it. */
		rc = kv_iter_status(it);
		if (rc)
			return rc;
	}
	store_put64(key + plen, ~r->w);
	for (kv_iter_seek(it, key, plen + 8); kv_iter_valid(it);
	     kv_iter_next(it)) {
		k = kv_iter_key(it, &klen);
		if (klen != plen + 8 || memcmp(k, g->prefix, plen) != 0)
			break;
		v = kv_iter_value(it, &vlen);
		r->st->keys_scanned++;
		rc = store_gc_group_add(g, k, klen, v, vlen);
		if (rc)
			return rc;
		/* Older versions were decided by an earlier GC (GC-1).  Stop
		 * before stepping on: the iterator would walk over every
		 * version an earlier GC deleted (their tombstones stay until
		 * a compaction), and a hot page has thousands. */
		if (g->seqs[g->n - 1] < pending)
			break;
	}
	rc = kv_iter_status(it);
	if (rc || g->n == 0)
		return rc;
	if (cf == KV_CF_INODE && *next == 0 && !g->linked[0] &&
	    g->seqs[0] >= gb->floor) {
		*whole = true;
		return 0;
	}
	store_gc_decide(gb, r->w, g->seqs, g->n, g->keep);
	return store_gc_group_drop(r, cf, g, false);
}

static struct store_gc_branch *store_gc_branch_of(struct store_gc_branch *gb,
						  size_t n, uint64_t id)
{
	size_t lo = 0, hi = n;

	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;

		if (gb[mid].id == id)
			return &gb[mid];
		if (gb[mid].id < id)
			lo = mid + 1;
		else
			hi = mid;
	}
	return NULL;
}

struct store_gc_iters {
	struct kv_iter *obj[KV_CF_COUNT]; /* prefix seeks (INODE, BLOCK) */
	struct kv_iter *all[KV_CF_COUNT]; /* total order */
};

static int store_gc_iter(struct store_gc_run *r, struct kv_iter **slot,
			 enum kv_cf cf, unsigned flags)
{
	if (*slot)
		return 0;
	return kv_iter_new(r->s->kv, cf, flags, slot);
}

/* The blocks of the unlinked inodes found in gb (all of their versions). */
static int store_gc_dead_blocks(struct store_gc_run *r,
				struct store_gc_branch *gb,
				struct store_gc_iters *its)
{
	unsigned char start[16];
	size_t i;
	int rc;

	if (gb->ndead == 0)
		return 0;
	qsort(gb->dead, gb->ndead, sizeof(uint64_t), store_u64_cmp);
	rc = store_gc_iter(r, &its->all[KV_CF_BLOCK], KV_CF_BLOCK,
			   KV_ITER_SCAN);
	for (i = 0; rc == 0 && i < gb->ndead; i++) {
		store_put64(start, gb->id);
		store_put64(start + 8, gb->dead[i]);
		rc = store_gc_scan_from(r, gb, KV_CF_BLOCK,
					its->all[KV_CF_BLOCK], start, 16);
	}
	return rc;
}

/* Examine the objects of td[0..n), all of branch gb (NULL: deleted), in
 * key order: inodes first (they find the unlinked ones), then
 * directories, the unlinked inodes' blocks, and the other blocks. */
static int store_gc_objects(struct store_gc_run *r, struct store_gc_branch *gb,
			    const struct store_gc_todo *td, size_t n,
			    struct store_gc_iters *its)
{
	struct store_gc_group g = { .n = 0 };
	bool dead_done = false;
	size_t i;
	int rc = 0;

	if (gb)
		gb->ndead = 0;
	for (i = 0; i < n && rc == 0; i++) {
		const struct store_gc_todo *t = &td[i];
		unsigned char start[16];
		uint64_t next = 0;
		bool whole = false;

		if (!gb)
			goto settle;
		if (t->cf == KV_CF_BLOCK && !dead_done) {
			rc = store_gc_dead_blocks(r, gb, its);
			dead_done = true;
			if (rc)
				break;
		}
		store_put64(start, gb->id);
		store_put64(start + 8, t->ino);
		if (t->cf == KV_CF_DIRENT) {
			rc = store_gc_iter(r, &its->all[t->cf], t->cf, 0);
			if (rc == 0)
				rc = store_gc_scan_from(r, gb, t->cf,
							its->all[t->cf], start,
							16);
			goto settle;
		}
		if (t->cf == KV_CF_BLOCK &&
		    store_u64_find(gb->dead, gb->ndead, t->ino))
			goto settle;
		rc = store_gc_iter(r, &its->obj[t->cf], t->cf, KV_ITER_PREFIX);
		if (rc)
			break;
		memcpy(g.prefix, start, 16);
		store_put64(g.prefix + 16, t->blk);
		g.plen = t->cf == KV_CF_BLOCK ? 24 : 16;
		rc = store_gc_obj(r, gb, t->cf, its->obj[t->cf], &g, t->pending,
				  &next, &whole);
		if (rc == 0 && whole) {
			rc = store_gc_iter(r, &its->all[t->cf], t->cf, 0);
			if (rc == 0)
				rc = store_gc_scan_from(r, gb, t->cf,
							its->all[t->cf], start,
							16);
		}
	settle:
		if (rc == 0)
			store_gc_settle(r->s, t->cf, t->branch, t->ino, t->blk,
					next);
		store_gc_pace(r);
	}
	if (rc == 0 && gb && !dead_done)
		rc = store_gc_dead_blocks(r, gb, its);
	store_gc_group_free(&g);
	return rc;
}

/* The object pass over every object taken from the set (GC-1). */
static int store_gc_incremental(struct store_gc_run *r,
				struct store_gc_branch *gb, size_t ngb)
{
	struct store_gc_iters its = { { NULL } };
	struct store_gc_todo *td = NULL;
	size_t ntd = 0, a, b;
	int rc, cf;

	r->set_n = atomic_load(&r->s->gc_dirty_n);
	r->take_ns = store_mono_ns();
	rc = store_gc_take(r->s, r->w, &td, &ntd);
	r->take_ns = store_mono_ns() - r->take_ns;
	r->taken = ntd;
	for (a = 0; rc == 0 && a < ntd; a = b) {
		for (b = a + 1; b < ntd && td[b].branch == td[a].branch; b++)
			;
		rc = store_gc_objects(r,
				      store_gc_branch_of(gb, ngb, td[a].branch),
				      td + a, b - a, &its);
	}
	/* A failed pass puts back what it took, as it was (an object done
	 * already is only examined again): none stays taken for good. */
	for (a = 0; rc && a < ntd; a++)
		store_gc_settle(r->s, td[a].cf, td[a].branch, td[a].ino,
				td[a].blk, td[a].pending);
	for (cf = 0; cf < KV_CF_COUNT; cf++) {
		if (its.obj[cf])
			kv_iter_free(its.obj[cf]);
		if (its.all[cf])
			kv_iter_free(its.all[cf]);
	}
	free(td);
	return rc;
}

/* The seq of the store as it was at unix_ns (no range checks). */
static int store_gc_seq_at(struct store *s, int64_t unix_ns, uint64_t *seq)
{
	unsigned char key[9];
	struct kv_iter *it;
	size_t klen, vlen;
	int rc;

	*seq = store_seq_now(s); /* first: see store_seq_at_time */
	rc = kv_iter_new(s->kv, KV_CF_META, false, &it);
	if (rc)
		return rc;
	key[0] = 'T';
	store_put64(key + 1, (uint64_t)(unix_ns / 1000000) + 1);
	kv_iter_seek(it, key, sizeof(key));
	if (kv_iter_valid(it)) {
		const unsigned char *k = kv_iter_key(it, &klen);
		const unsigned char *v = kv_iter_value(it, &vlen);

		if (klen == 9 && k[0] == 'T' && vlen == 8 &&
		    store_get64(v) - 1 < *seq)
			*seq = store_get64(v) - 1;
	}
	rc = kv_iter_status(it);
	kv_iter_free(it);
	return rc;
}

/* Drop time-index entries before the horizon: no lookup needs them.  Point
 * deletes from where the previous GC stopped, not a DeleteRange: every
 * iterator on the META family would rebuild the fragment list of all the
 * range tombstones in its memtable, and GC may run many times a second. */
static int store_gc_time_index(struct store_gc_run *r, int64_t horizon_ns)
{
	uint64_t hi = (uint64_t)(horizon_ns / 1000000);
	unsigned char key[9];
	struct kv_iter *it;
	int rc;

	rc = kv_iter_new(r->s->kv, KV_CF_META, 0, &it);
	if (rc)
		return rc;
	key[0] = 'T';
	store_put64(key + 1, r->s->gc_time_trimmed);
	for (kv_iter_seek(it, key, sizeof(key)); kv_iter_valid(it);
	     kv_iter_next(it)) {
		const unsigned char *k;
		size_t klen;

		k = kv_iter_key(it, &klen);
		if (klen != 9 || k[0] != 'T' || store_get64(k + 1) >= hi)
			break;
		kv_batch_delete(&r->b, KV_CF_META, k, klen);
		rc = store_gc_flush(r, false);
		if (rc)
			goto out;
	}
	rc = kv_iter_status(it);
	if (rc == 0)
		rc = store_gc_flush(r, true);
	if (rc == 0)
		r->s->gc_time_trimmed = hi;
out:
	kv_iter_free(it);
	return rc;
}

int store_gc(struct store *s, const struct store_gc_opts *opts,
	     struct store_gc_stats *out)
{
	static const struct store_gc_opts defaults = { .in_use = NULL };
	struct store_gc_branch *gb = NULL;
	struct store_gc_stats st = { 0 };
	struct store_gc_run r = { .s = s };
	uint64_t *dead = NULL, *full_ids = NULL, w, ndeleted = 0;
	bool force_full = false, compact, legacy = false;
	size_t ngb = 0, ndead = 0, nfull = 0, i;
	int64_t now = store_now_ns(), hns, tcomp, tend; /* tcomp: monotonic */
	const char *why_full = NULL;
	unsigned char hv[16];
	int rc, cf;

	if (atomic_exchange(&s->gc_running, true))
		return -EBUSY;
	r.opts = opts ? opts : &defaults;
	r.st = &st;
	kv_batch_init(&r.b);
	rc = kv_disk_usage(s->kv, &st.disk_before);
	if (rc)
		goto out;

	/* Move the horizon first (durably, and under branches_lock so no
	 * fork below it slips in), then snapshot the read points. */
	hns = now - (int64_t)(atomic_load(&s->retention_s) * 1000000000ull);
	if (hns < atomic_load(&s->horizon_ns))
		hns = atomic_load(&s->horizon_ns);
	rc = store_gc_seq_at(s, hns, &w);
	if (rc)
		goto out;
	if (w < atomic_load(&s->horizon_seq))
		w = atomic_load(&s->horizon_seq);
	store_put64(hv, (uint64_t)hns);
	store_put64(hv + 8, w);
	pthread_rwlock_wrlock(&s->branches_lock);
	store_grave_reap(s);
	kv_batch_put(&r.b, KV_CF_META, "H", 1, hv, 16);
	rc = kv_write(s->kv, &r.b, false);
	kv_batch_clear(&r.b);
	if (rc) {
		/* Nothing is taken: the whole scans owed (a parent whose
		 * child went, a reset branch) stay owed to the next GC.  A
		 * full disk fails this write first, and GC is then run to
		 * make room. */
		pthread_rwlock_unlock(&s->branches_lock);
		goto out;
	}
	r.h_ticket = atomic_fetch_add(&s->writes_done, 1) + 1;
	atomic_store(&s->horizon_ns, hns);
	atomic_store(&s->horizon_seq, w);
	dead = s->dead_ids;
	ndead = s->ndead;
	s->dead_ids = NULL;
	s->ndead = s->cap_dead = 0;
	ndeleted = s->gc_deleted;
	s->gc_deleted = 0;
	full_ids = s->gc_full_ids;
	nfull = s->n_gc_full;
	force_full = s->gc_force_full;
	s->gc_force_full = false;
	s->gc_full_ids = NULL;
	s->n_gc_full = s->cap_gc_full = 0;
	pthread_rwlock_unlock(&s->branches_lock);
	r.w = w;
	st.horizon_ns = store_oldest_time(s);
	/* GC-2: scan everything if the set may miss something. */
	if (force_full)
		why_full = "no memory to list the branches to scan";
	if (!s->gc_primed)
		why_full = "the first since open, or the last one failed";
	if (atomic_exchange(&s->gc_dirty_lost, false))
		why_full =
			atomic_load(&s->gc_dirty_n) >= STORE_GC_MAX_OBJS ?
				"more objects were written inside the retention window than GC's set holds" :
				"GC's set ran out of memory";
	if (why_full)
		force_full = true;
	/* Until this GC ends well, the next one must scan everything. */
	s->gc_primed = false;

	rc = store_gc_snapshot(s, &gb, &ngb);
	if (rc)
		goto out;
	for (i = 0; i < ngb; i++) {
		size_t k;
		bool full = force_full;

		for (k = 0; k < nfull && !full; k++)
			full = full_ids[k] == gb[i].id;
		if (!full)
			continue;
		st.branches_scanned_whole++;
		/* INODE first: it finds the dead inodes whose blocks go. */
		for (cf = KV_CF_INODE; cf < KV_CF_COUNT; cf++) {
			if (cf == KV_CF_BLOCK && gb[i].ndead)
				qsort(gb[i].dead, gb[i].ndead, sizeof(uint64_t),
				      store_u64_cmp);
			rc = store_gc_scan(&r, &gb[i], cf);
			if (rc)
				goto out;
		}
	}
	/* GC-3: the whole scans' deletions land before the object pass. */
	rc = store_gc_flush(&r, true);
	if (rc)
		goto out;
	rc = store_gc_incremental(&r, gb, ngb);
	if (rc)
		goto out;
	rc = store_gc_time_index(&r, hns);
	if (rc)
		goto out;
	rc = store_gc_flush(&r, true);
	if (rc)
		goto out;
	/* Compaction returns the space of what was deleted; it rewrites
	 * the store, so the on-demand GC does it only when that is worth
	 * it: a deleted branch, or deletions since the last compaction of
	 * at least 1/STORE_GC_COMPACT_DIV of the store. */
	s->gc_uncompacted += st.bytes_deleted;
	tcomp = store_mono_ns();
	/* Once, on demand (see store_legacy_check): in place of the whole
	 * compaction below, which it does as well; if it fails, that one
	 * still runs when it is due, and the next on-demand GC tries again. */
	if (r.opts->full_compaction && s->gc_legacy_drops &&
	    store_legacy_drop(s) == 0) {
		st.compacted = true;
		s->gc_uncompacted = 0;
		s->gc_compact_end_ns = store_mono_ns();
		s->gc_compact_cost_ns = s->gc_compact_end_ns - tcomp;
		legacy = true;
	}
	compact = r.opts->full_compaction && !legacy &&
		  (ndeleted ||
		   s->gc_uncompacted * STORE_GC_COMPACT_DIV >= st.disk_before);
	if (compact && s->gc_compact_end_ns &&
	    s->gc_uncompacted * 2 < st.disk_before) {
		int64_t gap =
			(STORE_GC_COMPACT_DUTY - 1) * s->gc_compact_cost_ns;

		if (gap < STORE_GC_COMPACT_GAP_MS * INT64_C(1000000))
			gap = STORE_GC_COMPACT_GAP_MS * INT64_C(1000000);
		if (tcomp - s->gc_compact_end_ns < gap) {
			compact = false;
			st.compaction_deferred = true;
		}
	}
	if (compact) {
		struct statvfs vfs;
		uint64_t live = st.disk_before > s->gc_uncompacted ?
					st.disk_before - s->gc_uncompacted :
					0;

		if (statvfs(s->dir, &vfs) == 0 &&
		    (uint64_t)vfs.f_bavail * vfs.f_frsize <
			    live + s->reserve_bytes) {
			compact = false;
			st.compaction_no_room = true;
			LOG_INFO(
				s,
				"gc: no whole compaction: it rewrites about "
				"%" PRIu64 " MiB, and %" PRIu64
				" MiB are free above the reserve",
				live >> 20,
				((uint64_t)vfs.f_bavail * vfs.f_frsize >
						 s->reserve_bytes ?
					 (uint64_t)vfs.f_bavail * vfs.f_frsize -
						 s->reserve_bytes :
					 0) >>
					20);
		}
	}
	if (compact) {
		uint64_t before = 0, after = 0;
		int crc = store_data_deletions(s, &before);

		for (cf = 0; cf < KV_CF_COUNT && crc == 0; cf++)
			crc = kv_compact(s->kv, cf, NULL, 0, NULL, 0, false);
		if (crc == 0)
			crc = store_data_deletions(s, &after);
		/* DROP-2: done only if it dropped deletions (if it found
		 * any).  Else what GC deleted stays counted, and the next
		 * GC that the duty cycle above lets compact tries again. */
		if (crc == 0 && before && after >= before)
			LOG_WARN(
				s,
				"gc: the whole compaction left the %" PRIu64
				" deletions it found in the store (RocksDB reported no error: it skips compactions after a background error, until its recovery); the next gc tries again",
				before);
		else if (crc)
			LOG_WARN(
				s,
				"gc: the whole compaction failed: %s (the next gc tries again)",
				strerror(-crc));
		else
			s->gc_uncompacted = 0;
		st.compacted = crc == 0 && (!before || after < before);
		s->gc_compact_end_ns = store_mono_ns();
		s->gc_compact_cost_ns = s->gc_compact_end_ns - tcomp;
	}
	/* Even after a whole compaction: it leaves the last level as it is. */
	if (ndead) {
		struct store_drop_left l;
		int drc = store_drop_ranges(s, dead, ndead, &l);

		if (drc == 0) {
			store_drop_say(s, &l);
			st.branches_dropped = ndead - l.kept;
			st.drop_no_room = l.no_room && l.kept;
			ndead = l.kept;
		} else {
			LOG_WARN(s,
				 "gc: could not drop the data of %zu deleted "
				 "branches: %s (the next gc tries again)",
				 ndead, strerror(-drc));
		}
		st.branches_pending = ndead;
	}
	rc = kv_disk_usage(s->kv, &st.disk_after);
	if (rc)
		goto out;
	atomic_store(&s->space_checked_ns, 0); /* a fresh look */
	st.space_low = store_space_ok(s) != 0;
	if (st.space_low && (st.keys_deleted || st.branches_dropped))
		LOG_WARN(
			s,
			"gc: the store's filesystem is still below its reserve "
			"of %" PRIu64
			" bytes: versions deleted inside branches "
			"free space only as the store rewrites its files, which "
			"needs room; delete a branch or grow the filesystem",
			s->reserve_bytes);
	s->gc_primed = true;
	tend = store_now_ns();
	LOG_INFO(s,
		 "gc: scanned %" PRIu64 " keys, deleted %" PRIu64 " (%" PRIu64
		 " bytes), reclaimed %" PRIu64 " inodes and %" PRIu64
		 " deleted branches (%" PRIu64
		 " more wait for the next gc); disk %" PRIu64 " -> %" PRIu64
		 " bytes; took %zu of %zu written objects in %" PRId64
		 " us; scanned %" PRIu64 " branches whole; %" PRId64
		 " ms%s%s%s%s",
		 st.keys_scanned, st.keys_deleted, st.bytes_deleted,
		 st.inodes_reclaimed, st.branches_dropped, st.branches_pending,
		 st.disk_before, st.disk_after, r.taken, r.set_n,
		 r.take_ns / 1000, st.branches_scanned_whole,
		 (tend - now) / 1000000, force_full ? " (whole scan: " : "",
		 force_full ? why_full : "", force_full ? ")" : "",
		 st.compacted ?
			 " (compacted)" :
		 st.compaction_deferred ?
			 " (compaction deferred: the last one was too recent)" :
			 "");
	if (st.compacted)
		LOG_INFO(s, "gc: compaction took %" PRId64 " ms",
			 s->gc_compact_cost_ns / 1000000);
	if (out)
		*out = st;
out:
	if (gb) {
		for (i = 0; i < ngb; i++) {
			free(gb[i].caps);
			free(gb[i].dead);
		}
		free(gb);
	}
	/* What this GC did not drop stays noted for the next drop. */
	if (ndead)
		store_dead_return(s, dead, ndead);
	if (rc && ndeleted) {
		pthread_rwlock_wrlock(&s->branches_lock);
		s->gc_deleted += ndeleted;
		pthread_rwlock_unlock(&s->branches_lock);
	}
	free(dead);
	free(full_ids);
	kv_batch_release(&r.b);
	atomic_store(&s->gc_running, false);
	return rc;
}

/* ------------------------------------------------------- seq -> time */

int store_time_of_seq(struct store *s, uint64_t seq, int64_t *unix_ns)
{
	int64_t lo = store_oldest_time(s) / 1000000,
		hi = store_now_ns() / 1000000;
	int rc;

	if (seq < atomic_load(&s->horizon_seq))
		return -ERANGE;
	/* Binary search for the first ms whose state includes seq. */
	while (lo < hi) {
		int64_t mid = lo + (hi - lo) / 2;
		uint64_t at;

		rc = store_gc_seq_at(s, mid * 1000000 + 999999, &at);
		if (rc)
			return rc;
		if (at >= seq)
			hi = mid;
		else
			lo = mid + 1;
	}
	*unix_ns = lo * 1000000;
	return 0;
}

/* ------------------------------------------------------------ check */

/* Path of ino at the head of branch (depth-first walk), or "" if it has
 * none.  Slow; for error reports only. */
static void store_path_of(struct store *s, uint64_t branch, uint64_t root,
			  uint64_t ino, char *out, size_t outsz)
{
	struct {
		uint64_t dir;
		char path[1024];
	} * stack;
	size_t n = 0, cap = 256;

	out[0] = 0;
	if (ino == root) {
		snprintf(out, outsz, "/");
		return;
	}
	stack = malloc(cap * sizeof(*stack));
	if (!stack)
		return;
	stack[n].dir = root;
	stack[n].path[0] = 0;
	n++;
	while (n) {
		struct store_dirent *d;
		size_t nd, i;
		char base[1024];

		n--;
		snprintf(base, sizeof(base), "%s", stack[n].path);
		if (store_readdir(s, branch, STORE_SEQ_LATEST, stack[n].dir, &d,
				  &nd))
			continue;
		for (i = 0; i < nd; i++) {
			if (d[i].ino == ino) {
				if (snprintf(out, outsz, "%s/%s", base,
					     d[i].name) >= (int)outsz)
					out[0] = 0;
				free(d);
				free(stack);
				return;
			}
			if (S_ISDIR(d[i].mode) && n < cap &&
			    snprintf(stack[n].path, sizeof(stack[n].path),
				     "%s/%s", base,
				     d[i].name) < (int)sizeof(stack[n].path)) {
				stack[n].dir = d[i].ino;
				n++;
			}
		}
		free(d);
	}
	free(stack);
}

static void store_check_say(void (*problem)(void *, const char *), void *ctx,
			    const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

static void store_check_say(void (*problem)(void *, const char *), void *ctx,
			    const char *fmt, ...)
{
	char msg[1536];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	if (problem)
		problem(ctx, msg);
}

/* A key of branch id in family cf at object (ino, blk) (blk: block
 * family only), into k; its length. */
static size_t store_check_key(enum kv_cf cf, uint64_t id, uint64_t ino,
			      uint64_t blk, unsigned char *k)
{
	store_put64(k, id);
	store_put64(k + 8, ino);
	if (cf != KV_CF_BLOCK)
		return 16;
	store_put64(k + 16, blk);
	return 24;
}

/* 1: a seek to k lands on a readable key of branch id; 0: on none (the
 * branch's keys end before); -1: it cannot be read. */
static int store_check_try(struct store *s, enum kv_cf cf, uint64_t id,
			   const unsigned char *k, size_t klen)
{
	struct kv_iter *it;
	int res = -1;

	if (kv_iter_new(s->kv, cf, KV_ITER_SCAN, &it) != 0)
		return -1;
	kv_iter_seek(it, k, klen);
	if (kv_iter_valid(it)) {
		size_t len;
		const unsigned char *key = kv_iter_key(it, &len);

		res = len >= 8 && store_get64(key) == id ? 1 : 0;
	} else if (kv_iter_status(it) == 0) {
		res = 0;
	}
	kv_iter_free(it);
	return res;
}

/*
 * After a table block that RocksDB cannot read, the first position after
 * (*ino, *blk) from which branch id's keys in cf read again: block
 * numbers 1, 2, 4 ... past *blk in the same file (block family), then
 * inode numbers 1, 2, 4 ... past *ino; then the smallest readable step
 * between the last two tried, by bisection, so that little sound data
 * goes unchecked.  0 with from/fromlen set to resume at, and (*ino, *blk)
 * to that position; -ENOENT when nothing of the branch is readable after.
 */
static int store_check_skip(struct store *s, enum kv_cf cf, uint64_t id,
			    uint64_t *ino, uint64_t *blk, unsigned char *from,
			    size_t *fromlen)
{
	int dim, j;

	for (dim = cf == KV_CF_BLOCK ? 0 : 1; dim < 2; dim++) {
		uint64_t base = dim == 0 ? *blk : *ino, lo = 0, hi = 0;
		unsigned char k[24];
		size_t klen;
		int res = -1;

		/* The first step (1, 2, 4 ...) that is not unreadable. */
		for (j = 0; j < 63; j++) {
			uint64_t step = UINT64_C(1) << j;

			if (base + step < base)
				break;
			klen = dim == 0 ? store_check_key(cf, id, *ino,
							  base + step, k) :
					  store_check_key(cf, id, base + step,
							  0, k);
			res = store_check_try(s, cf, id, k, klen);
			if (res >= 0) {
				hi = step;
				break;
			}
			lo = step;
		}
		if (res < 0)
			continue; /* nothing readable in this dimension */
		/* The smallest such step above lo: readable keys between the
		 * damage and the one found first are checked too. */
		while (hi - lo > 1) {
			uint64_t mid = lo + (hi - lo) / 2;
			int r;

			klen = dim == 0 ? store_check_key(cf, id, *ino,
							  base + mid, k) :
					  store_check_key(cf, id, base + mid, 0,
							  k);
			r = store_check_try(s, cf, id, k, klen);
			if (r >= 0) {
				hi = mid;
				res = r;
			} else {
				lo = mid;
			}
		}
		/* 0: no key of the branch at or after it, in any inode */
		if (res == 0)
			return -ENOENT;
		if (dim == 0) {
			*blk = base + hi;
		} else {
			*ino = base + hi;
			*blk = 0;
		}
		*fromlen = store_check_key(cf, id, *ino, *blk, from);
		return 0;
	}
	return -ENOENT;
}

static int store_check_branch(struct store *s,
			      const struct store_branch_info *bi,
			      void (*problem)(void *, const char *), void *ctx,
			      struct store_check_report *r)
{
	unsigned char *blk = malloc(STORE_BLOCK_SIZE);
	struct kv_iter *it = NULL;
	unsigned char start[8];
	int rc = 0, cf;

	if (!blk)
		return -ENOMEM;
	store_put64(start, bi->id);
	for (cf = KV_CF_INODE; cf < KV_CF_COUNT; cf++) {
		uint64_t last_ino = 0, last_blk = 0;
		unsigned char from[24];
		size_t fromlen = 8;

		memcpy(from, start, 8);
	scan:
		rc = kv_iter_new(s->kv, cf, KV_ITER_SCAN, &it);
		if (rc)
			goto out;
		for (kv_iter_seek(it, from, fromlen); kv_iter_valid(it);
		     kv_iter_next(it)) {
			const unsigned char *k, *v;
			size_t klen, vlen;
			bool bad = false;
			uint64_t ino, seq;
			char path[1024], what[96];

			k = kv_iter_key(it, &klen);
			if (klen < 16 || memcmp(k, start, 8))
				break;
			last_ino = store_get64(k + 8);
			last_blk = 0;
			if (cf == KV_CF_BLOCK && klen == STORE_BLOCK_KLEN)
				last_blk = store_get64(k + 16);
			v = kv_iter_value(it, &vlen);
			ino = store_get64(k + 8);
			seq = ~store_get64(k + klen - 8);
			what[0] = 0;
			if (cf == KV_CF_BLOCK) {
				uint64_t bn = store_get64(k + 16);

				r->blocks++;
				snprintf(what, sizeof(what), " block %" PRIu64,
					 bn);
				bad = klen != STORE_BLOCK_KLEN ||
				      store_block_decode(ino, bn, v, vlen,
							 blk) != 0;
				if (bad)
					r->bad_blocks++;
			} else {
				r->records++;
				if (cf == KV_CF_INODE)
					bad = klen != STORE_INODE_KLEN ||
					      vlen < STORE_INODE_HDR;
				else
					bad = !(vlen == 0 || vlen == 12) ||
					      klen < 16 + 2 + 8 ||
					      k[klen - 9] != 0;
				if (bad)
					r->bad_records++;
			}
			if (!bad)
				continue;
			store_path_of(s, bi->id, bi->root_ino, ino, path,
				      sizeof(path));
			store_check_say(problem, ctx,
					"branch '%s': %s of inode %" PRIu64
					"%s%s%s%s (seq %" PRIu64 ") is damaged",
					bi->name,
					cf == KV_CF_BLOCK ? "data" :
					cf == KV_CF_INODE ? "attributes" :
							    "a directory entry",
					ino, path[0] ? " (" : "", path,
					path[0] ? ")" : "", what, seq);
		}
		rc = kv_iter_status(it);
		kv_iter_free(it);
		it = NULL;
		if (rc) {
			/* RocksDB itself cannot read on (a damaged table
			 * block): report where, then check the next kind of
			 * record rather than give up. */
			char path[1024], what[64] = "";

			store_path_of(s, bi->id, bi->root_ino, last_ino, path,
				      sizeof(path));
			if (cf == KV_CF_BLOCK)
				snprintf(what, sizeof(what), " block %" PRIu64,
					 last_blk);
			store_check_say(
				problem, ctx,
				"branch '%s': %s stored after inode %" PRIu64
				"%s%s%s%s cannot be read: %s",
				bi->name,
				cf == KV_CF_BLOCK ? "file data" :
				cf == KV_CF_INODE ? "attributes" :
						    "directory entries",
				last_ino, path[0] ? " (" : "", path,
				path[0] ? ")" : "", what, strerror(-rc));
			if (cf == KV_CF_BLOCK)
				r->bad_blocks++;
			else
				r->bad_records++;
			rc = 0;
			/* Check on from the first readable key after it, so
			 * that damage further on is reported too. */
			if (store_check_skip(s, cf, bi->id, &last_ino,
					     &last_blk, from, &fromlen) == 0)
				goto scan;
		}
	}
out:
	free(blk);
	kv_iter_free(it);
	return rc;
}

int store_check(struct store *s, void (*problem)(void *ctx, const char *msg),
		void *ctx, struct store_check_report *out)
{
	struct store_check_report r = { 0 };
	struct store_branch_info *all = NULL;
	size_t n = 0, i;
	int rc;

	rc = store_branch_list(s, &all, &n);
	if (rc)
		return rc;
	for (i = 0; i < n; i++) {
		r.branches++;
		rc = store_check_branch(s, &all[i], problem, ctx, &r);
		if (rc) {
			store_check_say(problem, ctx,
					"branch '%s': cannot be read: %s",
					all[i].name, strerror(-rc));
			r.bad_records++;
		}
	}
	free(all);
	r.journal_damaged = s->open_damage;
	r.journal_unapplied = s->open_unapplied;
	r.wal_hole = s->open_wal_hole;
	*out = r;
	return 0;
}

size_t store_branch_struct_size(void)
{
	return sizeof(struct store_branch);
}
