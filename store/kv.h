/* SPDX-License-Identifier: MIT */
/*
 * kv.h - the key-value seam under the store (private to store/, and to the
 * test fakes that wrap it).
 *
 * One ordered key-value database with a few column families.  Keys compare
 * bytewise.  Two implementations exist today: RocksDB (kv_rocksdb_open, in
 * kv.c) and the fault-injecting wrapper in tests/fakes.
 *
 * Contract shared by every method:
 *  - Methods return 0 or a negative errno (-EIO for backend failures,
 *    -ENOSPC when the disk is full, -ENOMEM); the backend logs its own
 *    error text once.  "Not found" is not an error: get() reports it with
 *    *found = false.
 *  - All methods are thread-safe, except that one iterator is used by one
 *    thread at a time.
 *  - A batch is built by the caller with kv_batch_* (backend-independent)
 *    and applied atomically by write(): all of it or none of it.
 *  - write() with sync=false reaches the OS but not the disk; sync()
 *    makes every write that returned before it durable.
 *
 * Nobody calls ops directly outside kv.c: use the kv_* wrappers.
 */
#ifndef BRANCHFS_KV_H
#define BRANCHFS_KV_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "store.h"

enum kv_cf {
	KV_CF_META = 0,	  /* store meta, branch records, time index */
	KV_CF_INODE = 1,  /* inode versions */
	KV_CF_DIRENT = 2, /* directory entry versions */
	KV_CF_BLOCK = 3,  /* file block versions */
	KV_CF_COUNT = 4,
};

enum kv_op_type {
	KV_OP_PUT = 1,
	KV_OP_DELETE = 2,
	KV_OP_DELETE_RANGE = 3,
	/* Delete a key that was Put exactly once and never overwritten
	 * (RocksDB SingleDelete): the tombstone and the value vanish together
	 * as soon as a compaction meets both, at any level. */
	KV_OP_SINGLE_DELETE = 4,
};

struct kv_op {
	enum kv_op_type type;
	enum kv_cf cf;
	size_t klen;
	size_t vlen; /* value, or end key for DELETE_RANGE */
	/* key bytes then value bytes follow in the batch buffer */
	size_t off;
};

/* A write batch.  Embedded by the caller: kv_batch_init / kv_batch_release. */
struct kv_batch {
	struct kv_op *ops;
	size_t nops;
	size_t cap_ops;
	unsigned char *buf;
	size_t len;
	size_t cap;
	int err; /* sticky -ENOMEM from a failed append */
};

struct kv_iter;

/* kv_iter_new flags; `true` (1) is KV_ITER_PREFIX. */
enum kv_iter_flags {
	KV_ITER_PREFIX = 1u << 0,
	KV_ITER_SCAN = 1u << 1,
	KV_ITER_SEQ = 1u << 2,
};

struct kv_ops {
	/* Point read.  Copies at most bufsz bytes of the value into buf and
	 * sets *vlen to the full value length and *found.  buf may be NULL
	 * when bufsz is 0. */
	int (*get)(struct kv *kv, enum kv_cf cf, const void *key, size_t klen,
		   void *buf, size_t bufsz, size_t *vlen, bool *found);
	/* Apply a batch atomically; sync=true also makes it durable. */
	int (*write)(struct kv *kv, const struct kv_batch *b, bool sync);
	/* Make every write that returned so far durable. */
	int (*sync)(struct kv *kv);
	/* New iterator on cf.  flags (enum kv_iter_flags): KV_ITER_PREFIX
	 * allows the backend to use prefix bloom filters: only keys sharing
	 * the sought key's prefix (all but the last 8 bytes) are guaranteed
	 * to be found after a seek; without it the iterator is total-order.
	 * KV_ITER_SCAN marks a long background scan (GC, check): it reads
	 * ahead and does not fill the block cache that foreground reads use.
	 * KV_ITER_SEQ marks a foreground read of many consecutive keys: it
	 * reads ahead in large requests but fills the block cache as usual.
	 * Every iterator shows the keys that a range deletion covers until
	 * a compaction removes them (RocksDB's loses read errors when it
	 * hides them: kv.c); get() does not find them.
	 * Owned by the caller, freed with iter_free. */
	int (*iter_new)(struct kv *kv, enum kv_cf cf, unsigned flags,
			struct kv_iter **out);
	void (*iter_free)(struct kv_iter *it);
	void (*iter_seek)(struct kv_iter *it, const void *key, size_t klen);
	void (*iter_seek_for_prev)(struct kv_iter *it, const void *key,
				   size_t klen);
	void (*iter_next)(struct kv_iter *it);
	void (*iter_prev)(struct kv_iter *it);
	bool (*iter_valid)(struct kv_iter *it);
	/* Borrowed until the iterator moves or is freed. */
	const void *(*iter_key)(struct kv_iter *it, size_t *klen);
	const void *(*iter_value)(struct kv_iter *it, size_t *vlen);
	/* 0, or the error that made the iterator invalid. */
	int (*iter_status)(struct kv_iter *it);
	/* Bytes the database occupies on disk (files in its directory). */
	int (*disk_usage)(struct kv *kv, uint64_t *bytes);
	/* Compact [begin, end) of cf (NULL for unbounded).  bottom: also
	 * rewrite the last level's files in the range, which is what drops
	 * range deletions and the keys they cover for good (a compaction
	 * without it leaves the last level as it is); other compactions go
	 * on meanwhile.  -EIO when the backend saw a background error while
	 * it ran (RocksDB's compaction itself says nothing: a full disk is
	 * the usual cause).  0 does not prove that the range was rewritten:
	 * a caller that needs it gone looks (an iterator, which shows
	 * what range deletions hide). */
	int (*compact)(struct kv *kv, enum kv_cf cf, const void *begin,
		       size_t blen, const void *end, size_t elen, bool bottom);
	/* Delete cf's table files that hold keys of [begin, end) only (both
	 * bounds given): their space comes back without a rewrite, which a
	 * compaction needs room for.  Only for a range whose keys are all
	 * deleted already (a range deletion): a backend without files may
	 * do nothing. */
	int (*drop_files)(struct kv *kv, enum kv_cf cf, const void *begin,
			  size_t blen, const void *end, size_t elen);
	/* About the bytes a compaction of [begin, end) of cf writes (both
	 * bounds given), if every key in the range is deleted: what lies
	 * outside the range in the table files that hold keys of both (files
	 * wholly inside it go by drop_files, or yield nothing).  An estimate
	 * from the files' key ranges and index blocks.  0 for a backend
	 * without files. */
	int (*rewrite_bytes)(struct kv *kv, enum kv_cf cf, const void *begin,
			     size_t blen, const void *end, size_t elen,
			     uint64_t *bytes);
	/* Flush cf's memtable, then count the deletions (point and range)
	 * its files hold: how GC tells that a compaction of the whole store
	 * did its work (DROP-2 in store.c), and for tests. */
	int (*count_deletions)(struct kv *kv, enum kv_cf cf, uint64_t *n);
	/* Release everything; pending writes are flushed, not lost. */
	void (*close)(struct kv *kv);
};

/* Every backend's handle starts with this. */
struct kv {
	const struct kv_ops *ops;
	struct store_log log;
	/* Disk bytes the backend may need to write out what it holds in
	 * memory (RocksDB: every memtable, twice over for the immutable ones
	 * waiting to flush); 0 when it holds nothing.  Set at open. */
	uint64_t flush_room;
	/* Bytes of damage found at open that lost nothing: synced records
	 * of RocksDB's fsync journal that the database held (journal.h,
	 * journal_damage_held).  Set at open. */
	uint64_t open_damage;
	/* Bytes of the fsync journal's records that the database lacks and
	 * an open would replay into it, which a KV_OPEN_READ_ONLY open
	 * leaves where they are (their checksums are good).  Set at open. */
	uint64_t open_unapplied;
	/* Bytes of RocksDB's WAL after a hole a power cut left in it, which
	 * a KV_OPEN_READ_ONLY open found and left (walscan.h); any other
	 * open cuts the WAL there.  Set at open. */
	uint64_t open_wal_hole;
};

/* Iterators record their kv so the wrappers can dispatch. */
struct kv_iter {
	struct kv *kv;
};

/* kv_rocksdb_open flags; `true` (1) is KV_OPEN_CREATE. */
enum kv_open_flags {
	/* Create the database if it is missing. */
	KV_OPEN_CREATE = 1u << 0,
	/* Change nothing on disk: RocksDB opened read-only (its WAL read
	 * into memory, no LOCK taken, no new MANIFEST, WAL or LOG), the
	 * fsync journal read but neither replayed into the database
	 * (open_unapplied counts what it would give) nor restarted.
	 * write, compact, drop_files and count_deletions fail with -EROFS;
	 * sync does nothing.  Not with KV_OPEN_CREATE. */
	KV_OPEN_READ_ONLY = 1u << 1,
};

/* Open RocksDB in path; flags: enum kv_open_flags.  max_open_files:
 * the most table files kept open at once (RocksDB raises it to 20), the
 * least recently used closed past it; 0 keeps every one open.  Errors:
 * -EBUSY locked by another process, -EUCLEAN corrupt, -EINVAL bad flags,
 * -EIO other failures. */
int kv_rocksdb_open(const char *path, unsigned flags, size_t cache_bytes,
		    unsigned max_open_files, const struct store_log *log,
		    struct kv **out);

/* ---- wrappers (assert preconditions, single place for hooks) ---- */
int kv_get(struct kv *kv, enum kv_cf cf, const void *key, size_t klen,
	   void *buf, size_t bufsz, size_t *vlen, bool *found);
int kv_write(struct kv *kv, const struct kv_batch *b, bool sync);
int kv_sync(struct kv *kv);
int kv_iter_new(struct kv *kv, enum kv_cf cf, unsigned flags,
		struct kv_iter **out);
void kv_iter_free(struct kv_iter *it);
void kv_iter_seek(struct kv_iter *it, const void *key, size_t klen);
void kv_iter_seek_for_prev(struct kv_iter *it, const void *key, size_t klen);
void kv_iter_next(struct kv_iter *it);
void kv_iter_prev(struct kv_iter *it);
bool kv_iter_valid(struct kv_iter *it);
const void *kv_iter_key(struct kv_iter *it, size_t *klen);
const void *kv_iter_value(struct kv_iter *it, size_t *vlen);
int kv_iter_status(struct kv_iter *it);
int kv_disk_usage(struct kv *kv, uint64_t *bytes);
int kv_drop_files(struct kv *kv, enum kv_cf cf, const void *begin, size_t blen,
		  const void *end, size_t elen);
int kv_compact(struct kv *kv, enum kv_cf cf, const void *begin, size_t blen,
	       const void *end, size_t elen, bool bottom);
int kv_rewrite_bytes(struct kv *kv, enum kv_cf cf, const void *begin,
		     size_t blen, const void *end, size_t elen,
		     uint64_t *bytes);
int kv_count_deletions(struct kv *kv, enum kv_cf cf, uint64_t *n);
void kv_close(struct kv *kv);

/* Log through a store_log (nothing if it has no fn or level is above its
 * level).  For the backend and its journal. */
void kv_log_to(const struct store_log *log, int level, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

/* ---- batches ---- */
void kv_batch_init(struct kv_batch *b);
void kv_batch_release(struct kv_batch *b);
void kv_batch_clear(struct kv_batch *b);
void kv_batch_put(struct kv_batch *b, enum kv_cf cf, const void *key,
		  size_t klen, const void *val, size_t vlen);
void kv_batch_delete(struct kv_batch *b, enum kv_cf cf, const void *key,
		     size_t klen);
/* Only for keys written once (see KV_OP_SINGLE_DELETE). */
void kv_batch_single_delete(struct kv_batch *b, enum kv_cf cf, const void *key,
			    size_t klen);
void kv_batch_delete_range(struct kv_batch *b, enum kv_cf cf, const void *begin,
			   size_t blen, const void *end, size_t elen);
/* Accessors for backends. */
static inline const unsigned char *kv_batch_key(const struct kv_batch *b,
						const struct kv_op *op)
{
	return b->buf + op->off;
}

static inline const unsigned char *kv_batch_val(const struct kv_batch *b,
						const struct kv_op *op)
{
	return b->buf + op->off + op->klen;
}

#endif /* BRANCHFS_KV_H */
