/* SPDX-License-Identifier: MIT */
/*
 * kv.c - the KV seam: backend-independent write batches, the kv_* wrappers,
 * and the RocksDB backend (the only file that includes <rocksdb/c.h>).
 *
 * RocksDB layout: one database, four column families (kv.h enum kv_cf):
 * "default" for meta, "inode", "dirent", "block".  Every versioned key ends
 * with an 8-byte inverted seq, so the prefix extractor of every family is
 * "the key without its last 8 bytes": one prefix per object (inode, entry,
 * block), and the prefix bloom filters (in SST files and in the memtable)
 * let a lookup skip, in one probe, an ancestor branch that holds no version
 * of the object.  That keeps reads through deep ancestry chains cheap.
 *
 * Block values are already zstd-compressed by the store, so the block
 * family is stored without RocksDB compression; the small families use
 * RocksDB's default.
 *
 * What it deliberately does not do: interpret keys or values, or fsync on
 * write (sync=false writes reach the OS only; kv_sync syncs the WAL).
 */
#include <assert.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <stdatomic.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <time.h>
#include <unistd.h>

#include <rocksdb/c.h>

#include "journal.h"
#include "walscan.h"
#include "kv.h"

/* ---------------------------------------------------------------- batch */

void kv_batch_init(struct kv_batch *b)
{
	memset(b, 0, sizeof(*b));
}

void kv_batch_release(struct kv_batch *b)
{
	free(b->ops);
	free(b->buf);
	kv_batch_init(b);
}

void kv_batch_clear(struct kv_batch *b)
{
	b->nops = 0;
	b->len = 0;
	b->err = 0;
}

static void kv_batch_append(struct kv_batch *b, enum kv_op_type type,
			    enum kv_cf cf, const void *k, size_t klen,
			    const void *v, size_t vlen)
{
	struct kv_op *op;

	if (b->err)
		return;
	if (b->nops == b->cap_ops) {
		size_t ncap = b->cap_ops ? b->cap_ops * 2 : 16;
		struct kv_op *nops = realloc(b->ops, ncap * sizeof(*nops));

		if (!nops)
			goto err_nomem;
		b->ops = nops;
		b->cap_ops = ncap;
	}
	if (b->len + klen + vlen > b->cap) {
		size_t ncap = b->cap ? b->cap : 4096;
		unsigned char *nbuf;

		while (ncap < b->len + klen + vlen)
			ncap *= 2;
		nbuf = realloc(b->buf, ncap);
		if (!nbuf)
			goto err_nomem;
		b->buf = nbuf;
		b->cap = ncap;
	}
	op = &b->ops[b->nops++];
	op->type = type;
	op->cf = cf;
	op->klen = klen;
	op->vlen = vlen;
	op->off = b->len;
	memcpy(b->buf + b->len, k, klen);
	if (vlen)
		memcpy(b->buf + b->len + klen, v, vlen);
	b->len += klen + vlen;
	return;
err_nomem:
	b->err = -ENOMEM;
}

void kv_batch_put(struct kv_batch *b, enum kv_cf cf, const void *key,
		  size_t klen, const void *val, size_t vlen)
{
	kv_batch_append(b, KV_OP_PUT, cf, key, klen, val, vlen);
}

void kv_batch_delete(struct kv_batch *b, enum kv_cf cf, const void *key,
		     size_t klen)
{
	kv_batch_append(b, KV_OP_DELETE, cf, key, klen, NULL, 0);
}

void kv_batch_single_delete(struct kv_batch *b, enum kv_cf cf, const void *key,
			    size_t klen)
{
	kv_batch_append(b, KV_OP_SINGLE_DELETE, cf, key, klen, NULL, 0);
}

void kv_batch_delete_range(struct kv_batch *b, enum kv_cf cf, const void *begin,
			   size_t blen, const void *end, size_t elen)
{
	kv_batch_append(b, KV_OP_DELETE_RANGE, cf, begin, blen, end, elen);
}

/* ------------------------------------------------------------- wrappers */

int kv_get(struct kv *kv, enum kv_cf cf, const void *key, size_t klen,
	   void *buf, size_t bufsz, size_t *vlen, bool *found)
{
	assert(cf < KV_CF_COUNT && key && vlen && found);
	return kv->ops->get(kv, cf, key, klen, buf, bufsz, vlen, found);
}

int kv_write(struct kv *kv, const struct kv_batch *b, bool sync)
{
	if (b->err)
		return b->err;
	if (b->nops == 0 && !sync)
		return 0;
	return kv->ops->write(kv, b, sync);
}

int kv_sync(struct kv *kv)
{
	return kv->ops->sync(kv);
}

int kv_iter_new(struct kv *kv, enum kv_cf cf, unsigned flags,
		struct kv_iter **out)
{
	assert(cf < KV_CF_COUNT && out);
	return kv->ops->iter_new(kv, cf, flags, out);
}

void kv_iter_free(struct kv_iter *it)
{
	if (it)
		it->kv->ops->iter_free(it);
}

void kv_iter_seek(struct kv_iter *it, const void *key, size_t klen)
{
	it->kv->ops->iter_seek(it, key, klen);
}

void kv_iter_seek_for_prev(struct kv_iter *it, const void *key, size_t klen)
{
	it->kv->ops->iter_seek_for_prev(it, key, klen);
}

void kv_iter_next(struct kv_iter *it)
{
	it->kv->ops->iter_next(it);
}

void kv_iter_prev(struct kv_iter *it)
{
	it->kv->ops->iter_prev(it);
}

bool kv_iter_valid(struct kv_iter *it)
{
	return it->kv->ops->iter_valid(it);
}

const void *kv_iter_key(struct kv_iter *it, size_t *klen)
{
	return it->kv->ops->iter_key(it, klen);
}

const void *kv_iter_value(struct kv_iter *it, size_t *vlen)
{
	return it->kv->ops->iter_value(it, vlen);
}

int kv_iter_status(struct kv_iter *it)
{
	return it->kv->ops->iter_status(it);
}

int kv_disk_usage(struct kv *kv, uint64_t *bytes)
{
	return kv->ops->disk_usage(kv, bytes);
}

int kv_drop_files(struct kv *kv, enum kv_cf cf, const void *begin, size_t blen,
		  const void *end, size_t elen)
{
	return kv->ops->drop_files(kv, cf, begin, blen, end, elen);
}

int kv_compact(struct kv *kv, enum kv_cf cf, const void *begin, size_t blen,
	       const void *end, size_t elen, bool bottom)
{
	return kv->ops->compact(kv, cf, begin, blen, end, elen, bottom);
}

int kv_rewrite_bytes(struct kv *kv, enum kv_cf cf, const void *begin,
		     size_t blen, const void *end, size_t elen, uint64_t *bytes)
{
	assert(begin && end && bytes);
	return kv->ops->rewrite_bytes(kv, cf, begin, blen, end, elen, bytes);
}

int kv_count_deletions(struct kv *kv, enum kv_cf cf, uint64_t *n)
{
	return kv->ops->count_deletions(kv, cf, n);
}

void kv_close(struct kv *kv)
{
	if (kv)
		kv->ops->close(kv);
}

/* -------------------------------------------------------------- rocksdb */

struct kv_rocks {
	struct kv kv; /* first */
	rocksdb_t *db;
	rocksdb_options_t *opts;
	rocksdb_options_t *cf_opts[KV_CF_COUNT];
	rocksdb_block_based_table_options_t *table_opts[KV_CF_COUNT];
	rocksdb_column_family_handle_t *cf[KV_CF_COUNT];
	rocksdb_cache_t *cache;
	rocksdb_writeoptions_t *wopts;
	rocksdb_writeoptions_t *wopts_sync;
	rocksdb_readoptions_t *ropts;
	char *path;
	size_t wbuf_block; /* memtable sizes, scaled to the filesystem */
	size_t wbuf_small;
	uint64_t wal_max;      /* max_total_wal_size, idem */
	size_t test_sst_bytes; /* BRANCHFS_TEST_SST_KIB, or 0 */
	bool read_only;	       /* KV_OPEN_READ_ONLY: set at open */
	/* Set when a write failed (a full disk): RocksDB then refuses to
	 * sync its WAL and (with assertions on) aborts if asked to, so no
	 * sync is attempted until a write succeeds again. */
	atomic_bool write_failed;
	/* RocksDB stopped on a background error (said once in the log). */
	atomic_bool stopped_said;
	/* Number of the WAL file a write failed to append to (a full disk),
	 * 0 if none: see kv_rocks_wal_ok. */
	_Atomic uint64_t wal_bad;
	atomic_bool wal_bad_said;
	/* The write floor (kv_rocks_room_ok): bytes, 0 for none. */
	uint64_t floor;
	_Atomic int64_t room_checked_ns;
	atomic_bool room_near; /* near the floor or the pause at the last check */
	atomic_bool room_said;
	/* Automatic compactions are off while less than twice flush_room is
	 * free (kv_rocks_pause_compactions).  pause_mu is taken with order_mu
	 * held (kv_rocks_write), never the other way round. */
	pthread_mutex_t pause_mu;
	bool paused; /* guarded by pause_mu */
	/* The fsync journal (journal.h); NULL when it could not be made
	 * (then fsync syncs RocksDB's WAL, as before it existed). */
	struct journal *jnl;
	pthread_mutex_t order_mu; /* one order for RocksDB and the journal */
	pthread_mutex_t ckpt_mu;  /* one checkpoint at a time */
};

/* Meta key holding the journal lsn the database holds up to (journal.h). */
#define KV_JOURNAL_KEY "J"
/* Default ring size; BRANCHFS_JOURNAL_KIB overrides it (tests use a small
 * ring to exercise wrapping). */
#define KV_JOURNAL_BYTES (16u << 20)
/* Free space an open needs.  RocksDB's open writes files before it can
 * fail cleanly: a new info LOG (its header alone, the options, is about
 * 45 KiB, written whatever the log level), an OPTIONS file and a new
 * MANIFEST.  On a full disk the failed LOG write made the next log line
 * trip an assertion in Debian's librocksdb (built with them on): branchd
 * and branchd --check died with SIGABRT instead of saying why. */
#define KV_OPEN_ROOM (1u << 20)
/* Free space below which nothing is written (kv_rocks_room_ok).
 * BRANCHFS_WRITE_FLOOR_KIB overrides it: tests set 0 to let a write meet
 * the full disk in RocksDB's WAL. */
#define KV_WRITE_FLOOR (1u << 20)
/* What RocksDB may still write on the filesystem statvfs describes: root
 * may use the blocks ext4 (and others) reserve for it, f_bfree, and any
 * other user only f_bavail.  Used for the open check, so that root can
 * open a store whose filesystem users filled (and delete branches to make
 * room); the store's own reserve (store.c) counts f_bavail for everyone,
 * so new data never eats into root's blocks and RocksDB's flushes have
 * them as extra room. */
static uint64_t kv_fs_avail(const struct statvfs *vfs)
{
	return (uint64_t)(geteuid() == 0 ? vfs->f_bfree : vfs->f_bavail) *
	       vfs->f_frsize;
}

static int kv_rocks_sync(struct kv *kv);

static void kv_put_be64(unsigned char *p, uint64_t v)
{
	for (int i = 7; i >= 0; i--) {
		p[i] = (unsigned char)v;
		v >>= 8;
	}
}

static uint64_t kv_get_be64(const unsigned char *p)
{
	uint64_t v = 0;

	for (int i = 0; i < 8; i++)
		v = v << 8 | p[i];
	return v;
}

struct kv_rocks_iter {
	struct kv_iter it; /* first */
	rocksdb_iterator_t *ri;
	rocksdb_readoptions_t *ropts;
};

static const char *const kv_cf_names[KV_CF_COUNT] = {
	"default",
	"inode",
	"dirent",
	"block",
};

void kv_log_to(const struct store_log *log, int level, const char *fmt, ...)
{
	char msg[1024];
	va_list ap;

	if (!log->fn || level > log->level)
		return;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	log->fn(log->ctx, level, msg);
}

#define kv_log(kv, level, ...) kv_log_to(&(kv)->log, level, __VA_ARGS__)

/* Turn a RocksDB error string into an errno, log it once and free it.
 * kv is a struct kv_rocks. */
static int kv_rocks_err(struct kv *kv, const char *what, char *err)
{
	int rc = -EIO;

	if (strstr(err, "No space left") || strstr(err, "NoSpace"))
		rc = -ENOSPC;
	else if (strstr(err, "Corruption"))
		rc = -EUCLEAN;
	else if (strstr(err, "lock") || strstr(err, "Resource temporarily"))
		rc = -EBUSY;
	kv_log(kv, STORE_LOG_ERR, "rocksdb: %s: %s", what, err);
	/* "Result incomplete" carries the background error (a flush or
	 * compaction that failed, typically on a full disk) after which
	 * RocksDB takes no writes.  RocksDB 7.8's C API cannot resume it
	 * (DB::Resume); its own recovery from a full disk (SstFileManager)
	 * tries every 5 s, a fixed interval, and does not always succeed. */
	if (strncmp(err, "Result incomplete", 17) == 0 &&
	    !atomic_exchange(&((struct kv_rocks *)kv)->stopped_said, true))
		kv_log(kv, STORE_LOG_ERR,
		       "rocksdb stopped taking writes after that background error; it tries to recover every 5 s once there is room, and if writes still fail after that, unmount and mount the store again (every acknowledged write is kept)");
	rocksdb_free(err);
	return rc;
}

/* Prefix extractor: everything but the trailing 8-byte inverted seq. */
static char *kv_prefix_transform(void *state, const char *key, size_t len,
				 size_t *dst_len)
{
	(void)state;
	*dst_len = len - 8;
	return (char *)key;
}

static void kv_prefix_destroy(void *state)
{
	(void)state;
}

static unsigned char kv_prefix_in_domain(void *state, const char *key,
					 size_t len)
{
	(void)state;
	(void)key;
	return len >= 8;
}

static unsigned char kv_prefix_in_range(void *state, const char *key,
					size_t len)
{
	(void)state;
	(void)key;
	(void)len;
	return 0;
}

static const char *kv_prefix_name(void *state)
{
	(void)state;
	return "branchfs.seq_suffix.v1";
}

static int kv_rocks_get(struct kv *kv, enum kv_cf cf, const void *key,
			size_t klen, void *buf, size_t bufsz, size_t *vlen,
			bool *found)
{
	struct kv_rocks *r = (struct kv_rocks *)kv;
	rocksdb_pinnableslice_t *ps;
	char *err = NULL;
	const char *v;
	size_t len;

	ps = rocksdb_get_pinned_cf(r->db, r->ropts, r->cf[cf], key, klen, &err);
	if (err) {
		int rc = kv_rocks_err(kv, "get", err);

		/* A damaged record read at run time is an I/O error. */
		return rc == -EUCLEAN || rc == -EBUSY ? -EIO : rc;
	}
	if (!ps) {
		*found = false;
		*vlen = 0;
		return 0;
	}
	v = rocksdb_pinnableslice_value(ps, &len);
	if (buf && bufsz)
		memcpy(buf, v, len < bufsz ? len : bufsz);
	*vlen = len;
	*found = true;
	rocksdb_pinnableslice_destroy(ps);
	return 0;
}

/* The RocksDB batch of b; with end != 0 it also records, atomically, that
 * the database now holds the journal up to end (meta key "J"). */
static rocksdb_writebatch_t *
kv_rocks_batch(struct kv_rocks *r, const struct kv_batch *b, uint64_t end)
{
	rocksdb_writebatch_t *wb = rocksdb_writebatch_create();
	size_t i;

	if (!wb)
		return NULL;
	for (i = 0; i < b->nops; i++) {
		const struct kv_op *op = &b->ops[i];
		const char *k = (const char *)kv_batch_key(b, op);
		const char *v = (const char *)kv_batch_val(b, op);

		switch (op->type) {
		case KV_OP_PUT:
			rocksdb_writebatch_put_cf(wb, r->cf[op->cf], k,
						  op->klen, v, op->vlen);
			break;
		case KV_OP_DELETE:
			rocksdb_writebatch_delete_cf(wb, r->cf[op->cf], k,
						     op->klen);
			break;
		case KV_OP_SINGLE_DELETE:
			rocksdb_writebatch_singledelete_cf(wb, r->cf[op->cf], k,
							   op->klen);
			break;
		case KV_OP_DELETE_RANGE:
			rocksdb_writebatch_delete_range_cf(
				wb, r->cf[op->cf], k, op->klen, v, op->vlen);
			break;
		}
	}
	if (end) {
		unsigned char ev[8];

		kv_put_be64(ev, end);
		rocksdb_writebatch_put_cf(wb, r->cf[KV_CF_META], KV_JOURNAL_KEY,
					  1, (const char *)ev, sizeof(ev));
	}
	return wb;
}

/* The number of the WAL file err says an append failed on ("While
 * appending to file: <dir>/000123.log"), or 0. */
static uint64_t kv_rocks_err_wal(const char *err)
{
	const char *p = strstr(err, "While appending to file: "), *base;
	char *end;
	uint64_t n;

	if (!p)
		return 0;
	p += strlen("While appending to file: ");
	base = strrchr(p, '/');
	base = base ? base + 1 : p;
	n = strtoull(base, &end, 10);
	return end != base && strncmp(end, ".log", 4) == 0 ? n : 0;
}

/* Whether RocksDB may be written to.  A write that fails to append to the
 * WAL leaves that file's writer with an error, and RocksDB 7.8 switches to
 * a new WAL only when its recovery from the full disk (every 5 s, by
 * itself) finds a memtable to flush; if it found none, the next write
 * appends to the failed writer, and Debian's librocksdb (built with
 * assertions on) aborts the daemon there (a release build fails every
 * write).  So after such a failure nothing is written until a WAL file
 * newer than the failed one exists: the recovery switched.  The check
 * reads the database directory, and only in that state. */
static bool kv_rocks_wal_ok(struct kv_rocks *r)
{
	uint64_t bad = atomic_load(&r->wal_bad), n;
	struct dirent *de;
	bool newer = false;
	char *end;
	DIR *d;

	if (bad == 0)
		return true;
	d = opendir(r->path);
	if (!d)
		return false;
	while (!newer && (de = readdir(d))) {
		n = strtoull(de->d_name, &end, 10);
		newer = end != de->d_name && strcmp(end, ".log") == 0 &&
			n > bad;
	}
	closedir(d);
	if (!newer) {
		if (!atomic_exchange(&r->wal_bad_said, true))
			kv_log(&r->kv, STORE_LOG_ERR,
			       "rocksdb: a write to its log file %06llu failed on the full disk: writes are refused until RocksDB moves to a new log file, which it does when its own recovery (tried every 5 s once there is room) finds data to flush; if writes still fail then, unmount and mount the store again (every acknowledged write is kept)",
			       (unsigned long long)bad);
		return false;
	}
	if (atomic_compare_exchange_strong(&r->wal_bad, &bad, 0)) {
		atomic_store(&r->wal_bad_said, false);
		kv_log(&r->kv, STORE_LOG_INFO,
		       "rocksdb moved past its failed log file %06llu: writes resume",
		       (unsigned long long)bad);
	}
	return true;
}

/* Turn RocksDB's automatic compactions off (pause) or back on.  A
 * compaction writes its output before it deletes its input, so it needs
 * about as much room as what it rewrites: on a 64 MiB filesystem one took
 * 20 MiB at once, through the store's whole reserve (which only has room
 * for the flushes), and the next flush or WAL append met the full disk
 * and stopped RocksDB until its own recovery, about 5 s after the space
 * came back.  So compactions do not start while less than twice
 * flush_room is free, and start again above three times (a running one
 * goes on).  Their files wait in level 0: at most what fits in that room,
 * a few memtables, well under RocksDB's slowdown trigger.  Setting the
 * option writes a small OPTIONS file; a failure is logged and changes
 * nothing else. */
static void kv_rocks_pause_compactions(struct kv_rocks *r, uint64_t avail)
{
	static const char *const key[] = { "disable_auto_compactions" };
	const char *val[1];
	bool pause;
	char *err = NULL;
	int cf;

	pthread_mutex_lock(&r->pause_mu);
	pause = r->paused ? avail < 3 * r->kv.flush_room :
			    avail < 2 * r->kv.flush_room;
	if (pause == r->paused)
		goto out_unlock;
	r->paused = pause;
	val[0] = pause ? "true" : "false";
	for (cf = 0; cf < KV_CF_COUNT && !err; cf++)
		rocksdb_set_options_cf(r->db, r->cf[cf], 1, key, val, &err);
	if (err) {
		kv_log(&r->kv, STORE_LOG_WARN,
		       "rocksdb: cannot turn compactions %s: %s",
		       pause ? "off" : "on", err);
		rocksdb_free(err);
	} else {
		kv_log(&r->kv, STORE_LOG_INFO,
		       "rocksdb: %llu KiB free: compactions %s",
		       (unsigned long long)(avail >> 10),
		       pause ? "wait until there is room" : "resume");
	}
out_unlock:
	pthread_mutex_unlock(&r->pause_mu);
}

/* Whether the filesystem has the write floor free (counted as
 * kv_fs_avail).  Below it nothing is written, not even a delete, which
 * needs room in the WAL like any write: on a disk filled to the last byte
 * by another program, deleting a file or a branch to make room met ENOSPC
 * in the WAL append and left RocksDB with a failed WAL file
 * (kv_rocks_wal_ok), so that it took writes only after a remount; now it
 * is a plain ENOSPC.  The same statvfs pauses compactions.  It runs at
 * most every 50 ms while 16 floors and four times flush_room are free,
 * and at every write below that. */
static bool kv_rocks_room_ok(struct kv_rocks *r)
{
	int64_t now, last = atomic_load(&r->room_checked_ns);
	struct statvfs vfs;
	struct timespec ts;
	uint64_t avail;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	now = (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
	if (!atomic_load(&r->room_near) && now - last < 50000000)
		return true;
	if (statvfs(r->path, &vfs) != 0)
		return true;
	avail = kv_fs_avail(&vfs);
	atomic_store(&r->room_checked_ns, now);
	atomic_store(&r->room_near,
		     avail / 16 < r->floor || avail / 4 < r->kv.flush_room);
	kv_rocks_pause_compactions(r, avail);
	if (avail >= r->floor || r->floor == 0) {
		if (atomic_exchange(&r->room_said, false))
			kv_log(&r->kv, STORE_LOG_INFO,
			       "rocksdb: %llu KiB free again: writes and deletes resume",
			       (unsigned long long)(avail >> 10));
		return true;
	}
	if (!atomic_exchange(&r->room_said, true))
		kv_log(&r->kv, STORE_LOG_WARN,
		       "rocksdb: %llu KiB free on the store's filesystem, under the %llu KiB a write to RocksDB's log needs: every write, deletes too, fails with ENOSPC until there is room",
		       (unsigned long long)(avail >> 10),
		       (unsigned long long)(r->floor >> 10));
	return false;
}

static int kv_rocks_apply(struct kv_rocks *r, rocksdb_writebatch_t *wb,
			  bool sync)
{
	char *err = NULL;
	uint64_t wal;

	if (!kv_rocks_wal_ok(r) || !kv_rocks_room_ok(r)) {
		rocksdb_writebatch_destroy(wb);
		return -ENOSPC;
	}
	rocksdb_write(r->db, sync ? r->wopts_sync : r->wopts, wb, &err);
	rocksdb_writebatch_destroy(wb);
	if (err) {
		atomic_store(&r->write_failed, true);
		wal = kv_rocks_err_wal(err);
		if (wal) {
			uint64_t none = 0;

			atomic_compare_exchange_strong(&r->wal_bad, &none, wal);
		}
		return kv_rocks_err(&r->kv, "write", err);
	}
	atomic_store(&r->write_failed, false);
	return 0;
}

/* Make RocksDB's WAL durable up to every write applied so far, then tell
 * the journal so.  Called with order_mu held (lsn is then exact) or not
 * (lsn read first: everything before it was applied). */
static int kv_rocks_checkpoint(struct kv_rocks *r, uint64_t lsn)
{
	char *err = NULL;

	if (atomic_load(&r->write_failed))
		return -EIO;
	rocksdb_flush_wal(r->db, 1, &err);
	if (err)
		return kv_rocks_err(&r->kv, "sync wal", err);
	return journal_checkpoint(r->jnl, lsn);
}

static int kv_rocks_write(struct kv *kv, const struct kv_batch *b, bool sync)
{
	struct kv_rocks *r = (struct kv_rocks *)kv;
	rocksdb_writebatch_t *wb;
	uint64_t end;
	int rc;

	if (r->read_only)
		return -EROFS;
	if (!r->jnl || journal_broken(r->jnl)) {
		wb = kv_rocks_batch(r, b, 0);
		return wb ? kv_rocks_apply(r, wb, sync) : -ENOMEM;
	}
	/* One order for RocksDB and the journal: both then hold prefixes
	 * of the same sequence of batches after a crash. */
	pthread_mutex_lock(&r->order_mu);
	end = journal_next_end(r->jnl, b);
	if (end == 0) {
		/* Too big for the ring: durable in RocksDB itself, and the
		 * journal's mark stays where it is. */
		end = journal_lsn(r->jnl);
		wb = kv_rocks_batch(r, b, end);
		rc = wb ? kv_rocks_apply(r, wb, true) : -ENOMEM;
		if (rc == 0)
			rc = journal_checkpoint(r->jnl, end);
		pthread_mutex_unlock(&r->order_mu);
		return rc;
	}
	wb = kv_rocks_batch(r, b, end);
	rc = wb ? kv_rocks_apply(r, wb, false) : -ENOMEM;
	if (rc == 0) {
		rc = journal_append(r->jnl, b);
		if (rc == -EAGAIN) {
			/* Ring full: RocksDB's WAL takes over what it holds. */
			rc = kv_rocks_checkpoint(r, journal_lsn(r->jnl));
			if (rc == 0)
				rc = journal_append(r->jnl, b);
		}
		if (rc) {
			/* The batch is in RocksDB but not in the ring: a
			 * journal with that hole could replay later records
			 * past it, so it is retired and syncs go to RocksDB's
			 * WAL from now on (a failed checkpoint does not mark
			 * it broken by itself). */
			journal_retire(r->jnl);
			kv_log(kv, STORE_LOG_WARN,
			       "journal retired (%s): fsync now syncs RocksDB's WAL",
			       strerror(-rc));
			rc = 0;
		}
	}
	pthread_mutex_unlock(&r->order_mu);
	if (rc == 0 && sync)
		rc = kv_rocks_sync(kv);
	return rc;
}

static int kv_rocks_sync(struct kv *kv)
{
	struct kv_rocks *r = (struct kv_rocks *)kv;
	char *err = NULL;
	int rc;

	if (r->read_only)
		return 0; /* nothing was written */
	if (atomic_load(&r->write_failed))
		return -EIO;
	if (r->jnl && !journal_broken(r->jnl)) {
		rc = journal_sync(r->jnl);
		if (rc == 0 && journal_wants_checkpoint(r->jnl) &&
		    pthread_mutex_trylock(&r->ckpt_mu) == 0) {
			uint64_t lsn;

			pthread_mutex_lock(&r->order_mu);
			lsn = journal_lsn(r->jnl);
			pthread_mutex_unlock(&r->order_mu);
			/* A failed checkpoint loses nothing: the records
			 * stay in the ring until one succeeds. */
			kv_rocks_checkpoint(r, lsn);
			pthread_mutex_unlock(&r->ckpt_mu);
		}
		if (rc == 0 || !journal_broken(r->jnl))
			return rc;
	}
	rocksdb_flush_wal(r->db, 1, &err);
	if (err)
		return kv_rocks_err(kv, "sync wal", err);
	return 0;
}

/*
 * Iterators ignore range deletions: the keys a DeleteRange covers stay
 * visible to them until a compaction drops them (get() still hides them).
 * RocksDB 7.8's merging iterator loses read errors when it applies range
 * deletions, which every iterator does unless told not to:
 *  - at each step of a level (1 and below) from one table file to the
 *    next it stops on a file-boundary marker, and when the next file
 *    cannot be opened or its first block read there (EIO, EMFILE, a
 *    missing file), it drops that level without keeping its error;
 *  - a reseek past a range deletion's end sets its status back to OK,
 *    losing an error recorded earlier in the same move.
 * A scan then ends early, or skips a level's keys, with an OK status:
 * the store took "no more keys" for true (with a table file of 64 KiB
 * gone, scans of 3000 keys read 2149 and said OK: test_kv_scan.c).
 * RocksDB 8.6.3 fixed it (its pull requests 11782 and 11786).  Without
 * range deletions the merging iterator keeps every level's error.  The
 * store range-deletes only the keys of branches that no longer exist,
 * which no read of a live branch reaches and which its scans skip, as
 * they do between a branch's delete and GC's drop of its keys.
 */
static int kv_rocks_iter_new(struct kv *kv, enum kv_cf cf, unsigned flags,
			     struct kv_iter **out)
{
	struct kv_rocks *r = (struct kv_rocks *)kv;
	struct kv_rocks_iter *it = calloc(1, sizeof(*it));

	if (!it)
		return -ENOMEM;
	it->ropts = rocksdb_readoptions_create();
	rocksdb_readoptions_set_total_order_seek(it->ropts,
						 !(flags & KV_ITER_PREFIX));
	rocksdb_readoptions_set_verify_checksums(it->ropts, 1);
	rocksdb_readoptions_set_ignore_range_deletions(it->ropts, 1);
	if (flags & KV_ITER_SCAN) {
		rocksdb_readoptions_set_fill_cache(it->ropts, 0);
		rocksdb_readoptions_set_readahead_size(it->ropts, 2u << 20);
	} else if (flags & KV_ITER_SEQ) {
		/* 256 KiB: a 128 KiB FUSE read of pgbench data is ~15%
		 * faster from a cold disk than with RocksDB's own readahead
		 * (which starts at 8 KiB for every new iterator); 1 MiB
		 * was slower, copying more than one read needs. */
		rocksdb_readoptions_set_readahead_size(it->ropts, 256u << 10);
	}
	it->ri = rocksdb_create_iterator_cf(r->db, it->ropts, r->cf[cf]);
	if (!it->ri) {
		rocksdb_readoptions_destroy(it->ropts);
		free(it);
		return -ENOMEM;
	}
	it->it.kv = kv;
	*out = &it->it;
	return 0;
}

static void kv_rocks_iter_free(struct kv_iter *kit)
{
	struct kv_rocks_iter *it = (struct kv_rocks_iter *)kit;

	rocksdb_iter_destroy(it->ri);
	rocksdb_readoptions_destroy(it->ropts);
	free(it);
}

static void kv_rocks_iter_seek(struct kv_iter *kit, const void *key,
			       size_t klen)
{
	rocksdb_iter_seek(((struct kv_rocks_iter *)kit)->ri, key, klen);
}

static void kv_rocks_iter_seek_for_prev(struct kv_iter *kit, const void *key,
					size_t klen)
{
	rocksdb_iter_seek_for_prev(((struct kv_rocks_iter *)kit)->ri, key,
				   klen);
}

static void kv_rocks_iter_next(struct kv_iter *kit)
{
	rocksdb_iter_next(((struct kv_rocks_iter *)kit)->ri);
}

static void kv_rocks_iter_prev(struct kv_iter *kit)
{
	rocksdb_iter_prev(((struct kv_rocks_iter *)kit)->ri);
}

static bool kv_rocks_iter_valid(struct kv_iter *kit)
{
	return rocksdb_iter_valid(((struct kv_rocks_iter *)kit)->ri);
}

static const void *kv_rocks_iter_key(struct kv_iter *kit, size_t *klen)
{
	return rocksdb_iter_key(((struct kv_rocks_iter *)kit)->ri, klen);
}

static const void *kv_rocks_iter_value(struct kv_iter *kit, size_t *vlen)
{
	return rocksdb_iter_value(((struct kv_rocks_iter *)kit)->ri, vlen);
}

static int kv_rocks_iter_status(struct kv_iter *kit)
{
	char *err = NULL;

	rocksdb_iter_get_error(((struct kv_rocks_iter *)kit)->ri, &err);
	if (err) {
		int rc = kv_rocks_err(kit->kv, "iterator", err);

		return rc == -EUCLEAN || rc == -EBUSY ? -EIO : rc;
	}
	return 0;
}

static _Thread_local uint64_t kv_du_total;

static int kv_du_visit(const char *path, const struct stat *st, int flag,
		       struct FTW *ftw)
{
	(void)path;
	(void)ftw;
	if (flag == FTW_F)
		kv_du_total += (uint64_t)st->st_blocks * 512u;
	return 0;
}

static int kv_rocks_disk_usage(struct kv *kv, uint64_t *bytes)
{
	struct kv_rocks *r = (struct kv_rocks *)kv;

	kv_du_total = 0;
	if (nftw(r->path, kv_du_visit, 16, FTW_PHYS) != 0)
		return -errno;
	*bytes = kv_du_total;
	return 0;
}

/* RocksDB's BottommostLevelCompaction::kForceOptimized: the last level's
 * files in the range are rewritten too, but not the files this same
 * compaction just wrote there. */
#define KV_ROCKS_BOTTOM_FORCE_OPTIMIZED 3

/* RocksDB's count of failed flushes and compactions since open (a
 * manual compaction that fails counts like any other); 0 if it cannot
 * say. */
static uint64_t kv_rocks_bg_errors(struct kv_rocks *r)
{
	uint64_t n = 0;

	if (rocksdb_property_int(r->db, "rocksdb.background-errors", &n) != 0)
		return 0;
	return n;
}

static int kv_rocks_compact(struct kv *kv, enum kv_cf cf, const void *begin,
			    size_t blen, const void *end, size_t elen,
			    bool bottom)
{
	struct kv_rocks *r = (struct kv_rocks *)kv;
	rocksdb_compactoptions_t *o = NULL;
	uint64_t errs, now;
	struct statvfs vfs;

	if (r->read_only)
		return -EROFS;
	errs = kv_rocks_bg_errors(r);
	if (bottom) {
		o = rocksdb_compactoptions_create();
		if (!o)
			return -ENOMEM;
		rocksdb_compactoptions_set_bottommost_level_compaction(
			o, KV_ROCKS_BOTTOM_FORCE_OPTIMIZED);
		/* RocksDB's own compactions of the load go on meanwhile. */
		rocksdb_compactoptions_set_exclusive_manual_compaction(o, 0);
		rocksdb_compact_range_cf_opt(r->db, r->cf[cf], o, begin, blen,
					     end, elen);
		rocksdb_compactoptions_destroy(o);
	} else {
		rocksdb_compact_range_cf(r->db, r->cf[cf], begin, blen, end,
					 elen);
	}
	/* The C API returns nothing: a compaction that failed (its output
	 * met a full disk) shows only in the count of background errors.  A
	 * flush that failed meanwhile counts too; the caller looks at what
	 * is left and tries again later.  A compaction that RocksDB refused
	 * to start (it stopped on an earlier background error) counts
	 * nothing: only the caller's look tells. */
	now = kv_rocks_bg_errors(r);
	if (now <= errs)
		return 0;
	if (statvfs(r->path, &vfs) != 0)
		memset(&vfs, 0, sizeof(vfs));
	kv_log(kv, STORE_LOG_WARN,
	       "rocksdb: a compaction of the %s family failed: %llu background error(s) while it ran (RocksDB does not say which; a full disk is the usual cause: %llu KiB free)",
	       kv_cf_names[cf], (unsigned long long)(now - errs),
	       (unsigned long long)(kv_fs_avail(&vfs) >> 10));
	return -EIO;
}

static int kv_rocks_drop_files(struct kv *kv, enum kv_cf cf, const void *begin,
			       size_t blen, const void *end, size_t elen)
{
	struct kv_rocks *r = (struct kv_rocks *)kv;
	char *err = NULL;

	if (r->read_only)
		return -EROFS;
	if (!begin || !end)
		return -EINVAL;
	rocksdb_delete_file_in_range_cf(r->db, r->cf[cf], begin, blen, end,
					elen, &err);
	if (err) {
		kv_log(kv, STORE_LOG_WARN, "rocksdb: delete files in range: %s",
		       err);
		rocksdb_free(err);
		return -EIO;
	}
	return 0;
}

/* Bytewise order of a and b, as RocksDB's default comparator. */
static int kv_key_cmp(const void *a, size_t alen, const void *b, size_t blen)
{
	int c = memcmp(a, b, alen < blen ? alen : blen);

	if (c)
		return c;
	return alen < blen ? -1 : alen > blen;
}

static int kv_rocks_rewrite_bytes(struct kv *kv, enum kv_cf cf,
				  const void *begin, size_t blen,
				  const void *end, size_t elen, uint64_t *bytes)
{
	struct kv_rocks *r = (struct kv_rocks *)kv;
	const rocksdb_livefiles_t *lf;
	uint64_t shared = 0, inside = 0, in_range = 0, own;
	const char *b = begin, *e = end;
	char *err = NULL;
	int i, nf;

	lf = rocksdb_livefiles(r->db);
	if (!lf)
		return -ENOMEM;
	nf = rocksdb_livefiles_count(lf);
	for (i = 0; i < nf; i++) {
		const char *lo, *hi;
		size_t lolen, hilen;

		if (strcmp(rocksdb_livefiles_column_family_name(lf, i),
			   kv_cf_names[cf]) != 0)
			continue;
		lo = rocksdb_livefiles_smallestkey(lf, i, &lolen);
		hi = rocksdb_livefiles_largestkey(lf, i, &hilen);
		if (kv_key_cmp(hi, hilen, begin, blen) < 0 ||
		    kv_key_cmp(lo, lolen, end, elen) >= 0)
			continue; /* [lo, hi] misses [begin, end) */
		if (kv_key_cmp(lo, lolen, begin, blen) >= 0 &&
		    kv_key_cmp(hi, hilen, end, elen) < 0)
			inside += rocksdb_livefiles_size(lf, i);
		else
			shared += rocksdb_livefiles_size(lf, i);
	}
	rocksdb_livefiles_destroy(lf);
	*bytes = 0;
	if (shared == 0)
		return 0;
	/* The range's own bytes in the shared files: the range's size in
	 * all files less the files wholly inside it. */
	rocksdb_approximate_sizes_cf(r->db, r->cf[cf], 1, &b, &blen, &e, &elen,
				     &in_range, &err);
	if (err)
		return kv_rocks_err(kv, "approximate sizes", err);
	own = in_range > inside ? in_range - inside : 0;
	*bytes = shared > own ? shared - own : 0;
	return 0;
}

static int kv_rocks_count_deletions(struct kv *kv, enum kv_cf cf, uint64_t *n)
{
	struct kv_rocks *r = (struct kv_rocks *)kv;
	const rocksdb_livefiles_t *lf;
	rocksdb_flushoptions_t *fo;
	char *err = NULL;
	int i, nf;

	if (r->read_only)
		return -EROFS;
	fo = rocksdb_flushoptions_create();
	if (!fo)
		return -ENOMEM;
	rocksdb_flushoptions_set_wait(fo, 1);
	rocksdb_flush_cf(r->db, fo, r->cf[cf], &err);
	rocksdb_flushoptions_destroy(fo);
	if (err)
		return kv_rocks_err(kv, "flush", err);
	lf = rocksdb_livefiles(r->db);
	if (!lf)
		return -ENOMEM;
	*n = 0;
	nf = rocksdb_livefiles_count(lf);
	for (i = 0; i < nf; i++)
		if (strcmp(rocksdb_livefiles_column_family_name(lf, i),
			   kv_cf_names[cf]) == 0)
			*n += rocksdb_livefiles_deletions(lf, i);
	rocksdb_livefiles_destroy(lf);
	return 0;
}

/* statvfs of the directory that will hold path (path may not exist). */
static int kv_parent_statvfs(const char *path, struct statvfs *vfs)
{
	char dir[4096];
	char *slash;

	snprintf(dir, sizeof(dir), "%s", path);
	slash = strrchr(dir, '/');
	if (slash && slash != dir)
		*slash = 0;
	return statvfs(dir, vfs);
}

static void kv_rocks_free(struct kv_rocks *r)
{
	int i;

	for (i = 0; i < KV_CF_COUNT; i++) {
		if (r->cf[i])
			rocksdb_column_family_handle_destroy(r->cf[i]);
	}
	if (r->db)
		rocksdb_close(r->db);
	for (i = 0; i < KV_CF_COUNT; i++) {
		if (r->cf_opts[i])
			rocksdb_options_destroy(r->cf_opts[i]);
		if (r->table_opts[i])
			rocksdb_block_based_options_destroy(r->table_opts[i]);
	}
	if (r->opts)
		rocksdb_options_destroy(r->opts);
	if (r->cache)
		rocksdb_cache_destroy(r->cache);
	if (r->wopts)
		rocksdb_writeoptions_destroy(r->wopts);
	if (r->wopts_sync)
		rocksdb_writeoptions_destroy(r->wopts_sync);
	if (r->ropts)
		rocksdb_readoptions_destroy(r->ropts);
	journal_close(r->jnl);
	pthread_mutex_destroy(&r->order_mu);
	pthread_mutex_destroy(&r->ckpt_mu);
	pthread_mutex_destroy(&r->pause_mu);
	free(r->path);
	free(r);
}

static void kv_rocks_close(struct kv *kv)
{
	struct kv_rocks *r = (struct kv_rocks *)kv;
	char *err = NULL;

	if (!r->read_only && !atomic_load(&r->write_failed)) {
		rocksdb_flush_wal(r->db, 1, &err);
		if (err)
			kv_rocks_err(kv, "sync wal at close", err);
		else if (r->jnl && !journal_broken(r->jnl))
			/* Everything is in RocksDB's WAL: the next open has
			 * nothing to replay, nor any need to look for it. */
			journal_seal(r->jnl);
	}
	kv_rocks_free(r);
}

static const struct kv_ops kv_rocks_ops = {
	.get = kv_rocks_get,
	.write = kv_rocks_write,
	.sync = kv_rocks_sync,
	.iter_new = kv_rocks_iter_new,
	.iter_free = kv_rocks_iter_free,
	.iter_seek = kv_rocks_iter_seek,
	.iter_seek_for_prev = kv_rocks_iter_seek_for_prev,
	.iter_next = kv_rocks_iter_next,
	.iter_prev = kv_rocks_iter_prev,
	.iter_valid = kv_rocks_iter_valid,
	.iter_key = kv_rocks_iter_key,
	.iter_value = kv_rocks_iter_value,
	.iter_status = kv_rocks_iter_status,
	.disk_usage = kv_rocks_disk_usage,
	.compact = kv_rocks_compact,
	.drop_files = kv_rocks_drop_files,
	.rewrite_bytes = kv_rocks_rewrite_bytes,
	.count_deletions = kv_rocks_count_deletions,
	.close = kv_rocks_close,
};

static rocksdb_options_t *kv_rocks_cf_options(struct kv_rocks *r, int cf)
{
	rocksdb_options_t *o = rocksdb_options_create();
	rocksdb_block_based_table_options_t *t =
		rocksdb_block_based_options_create();

	r->table_opts[cf] = t;
	rocksdb_block_based_options_set_block_cache(t, r->cache);
	rocksdb_block_based_options_set_filter_policy(
		t, rocksdb_filterpolicy_create_bloom_full(10));
	rocksdb_block_based_options_set_cache_index_and_filter_blocks(t, 1);
	rocksdb_block_based_options_set_pin_l0_filter_and_index_blocks_in_cache(
		t, 1);
	if (cf != KV_CF_META) {
		/* Blooms on the prefix (object without seq) only: a full key
		 * carries a seq nobody knows in advance. */
		rocksdb_block_based_options_set_whole_key_filtering(t, 0);
		rocksdb_options_set_prefix_extractor(
			o, rocksdb_slicetransform_create(
				   NULL, kv_prefix_destroy, kv_prefix_transform,
				   kv_prefix_in_domain, kv_prefix_in_range,
				   kv_prefix_name));
		rocksdb_options_set_memtable_prefix_bloom_size_ratio(o, 0.1);
	}
	rocksdb_options_set_block_based_table_factory(o, t);
	rocksdb_options_set_write_buffer_size(
		o, cf == KV_CF_BLOCK ? r->wbuf_block : r->wbuf_small);
	if (cf == KV_CF_BLOCK)
		rocksdb_options_set_compression(o, rocksdb_no_compression);
	if (r->test_sst_bytes) {
		rocksdb_options_set_write_buffer_size(o, r->test_sst_bytes);
		rocksdb_options_set_target_file_size_base(o, r->test_sst_bytes);
	}
	r->cf_opts[cf] = o;
	return o;
}

/* The table file numbers err names ("/000123.sst", or ".ldb", the other
 * name RocksDB tries when the first is missing), at most max of them,
 * each once; their count. */
static size_t kv_err_tables(const char *err, uint64_t *nums, size_t max)
{
	static const char *const ext[] = { ".sst", ".ldb" };
	size_t n = 0, e, i;

	for (e = 0; e < 2; e++) {
		for (const char *p = strstr(err, ext[e]); p && n < max;
		     p = strstr(p + 4, ext[e])) {
			const char *d = p;
			uint64_t num;

			while (d > err && d[-1] >= '0' && d[-1] <= '9')
				d--;
			if (d == p || (d > err && d[-1] != '/'))
				continue;
			num = strtoull(d, NULL, 10);
			for (i = 0; i < n && nums[i] != num; i++)
				;
			if (i == n)
				nums[n++] = num;
		}
	}
	return n;
}

/* The most table files the refusal of a damaged database names, the rest
 * counted ("and N more"). */
#define KV_DAMAGED_NAMED 10

/* Whether the table file at path ends as a block-based table does: at
 * least a footer's 53 bytes, the last 8 its magic number (little-endian;
 * the legacy one too).  true when it cannot be read: RocksDB names such a
 * file itself. */
static bool kv_table_end_ok(const char *path)
{
	unsigned char b[8];
	struct stat st;
	uint64_t m = 0;
	bool ok = true;
	int fd = open(path, O_RDONLY | O_CLOEXEC), i;

	if (fd < 0)
		return true;
	if (fstat(fd, &st) != 0) {
		ok = true;
	} else if (st.st_size < 53) {
		ok = false;
	} else if (pread(fd, b, 8, st.st_size - 8) == 8) {
		for (i = 7; i >= 0; i--)
			m = m << 8 | b[i];
		ok = m == 0x88e241b785f4cff7ull || m == 0xdb4775248b80fb57ull;
	}
	close(fd);
	return ok;
}

static int kv_u64_cmp(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;

	return x < y ? -1 : x > y;
}

/* RocksDB's open stops at the first table file it cannot open (it opens
 * up to 16 at open, and checks the others' sizes only once those opened):
 * add to *nums (n of them, room for *cap, grown) the other table files of
 * the directory whose end is not a table's.  A cheap look, on the refusal
 * only: one read of 8 bytes per file.  (A file that is no longer live,
 * such as a compaction's output cut short by a crash, would be named
 * too; only in a store refused for a damaged file already.)  Returns the
 * new count. */
static size_t kv_damaged_tables(const char *path, uint64_t **nums, size_t n,
				size_t *cap)
{
	char p[4200];
	struct dirent *de;
	DIR *d = opendir(path);
	size_t i;

	if (!d)
		return n;
	while ((de = readdir(d))) {
		size_t len = strlen(de->d_name);
		uint64_t num;
		char *end;

		if (len <= 4 || strcmp(de->d_name + len - 4, ".sst") != 0)
			continue;
		num = strtoull(de->d_name, &end, 10);
		if (end != de->d_name + len - 4)
			continue;
		for (i = 0; i < n && (*nums)[i] != num; i++)
			;
		snprintf(p, sizeof(p), "%s/%s", path, de->d_name);
		if (i < n || kv_table_end_ok(p))
			continue;
		if (n == *cap) {
			uint64_t *g = realloc(*nums, 2 * *cap * sizeof(**nums));

			if (!g)
				break;
			*nums = g;
			*cap *= 2;
		}
		(*nums)[n++] = num;
	}
	closedir(d);
	return n;
}

/*
 * One line for a database RocksDB refuses to open as corrupt.  Most often
 * a table file is missing, cut short or damaged where the open reads it
 * (its footer, index or properties): RocksDB's checks at open (paranoid
 * checks: every table file's size against the MANIFEST, and the files it
 * opens there) name it, but in a text of several lines, sometimes under
 * its other name (.ldb) or as if the MANIFEST were at fault.  So the line
 * names the table files, says which are missing, and what to do: put a
 * moved file back, else restore the store from a backup.  (RocksDB's own
 * repair would drop the file's keys: the store would serve its files with
 * holes, so it is not offered.)  Damage found later, in a block a read
 * needs, is an EIO of that read, logged with the file (kv_rocks_err).
 */
static void kv_rocks_open_damaged(struct kv_rocks *r, char *err)
{
	char files[640] = "", why[768], *w, p[4200];
	const char *todo;
	/* every table name in err, at most one per 4 bytes of it */
	size_t cap = strlen(err) / 4 + 16, n = 0, i, len = 0, j;
	uint64_t *nums = malloc(cap * sizeof(*nums));
	bool missing = false, damaged = false;

	if (nums) {
		n = kv_err_tables(err, nums, cap);
		/* Only beside a table file RocksDB named: damage elsewhere
		 * (its MANIFEST) says nothing about the tables. */
		if (n)
			n = kv_damaged_tables(r->path, &nums, n, &cap);
		qsort(nums, n, sizeof(*nums), kv_u64_cmp);
	}

	/* RocksDB's text on one line, without its "Corruption: " prefixes
	 * and the MANIFEST it was reading. */
	for (w = err; strncmp(w, "Corruption: ", 12) == 0;)
		w += 12;
	for (j = 0; *w && j + 3 < sizeof(why); w++) {
		if (*w != '\n')
			why[j++] = *w;
		else if (w[1])
			j += (size_t)snprintf(why + j, 3, "; ");
	}
	why[j] = 0;
	w = strstr(why, " in file ");
	if (w && strstr(w, "MANIFEST-"))
		*w = 0;
	for (i = 0; i < n; i++) {
		struct stat st;
		bool gone;

		snprintf(p, sizeof(p), "%s/%06llu.sst", r->path,
			 (unsigned long long)nums[i]);
		gone = stat(p, &st) != 0 && errno == ENOENT;
		missing = missing || gone;
		damaged = damaged || !gone;
		if (i < KV_DAMAGED_NAMED && len < sizeof(files))
			len += (size_t)snprintf(files + len,
						sizeof(files) - len,
						"%s%06llu.sst (%s)",
						i ? ", " : "",
						(unsigned long long)nums[i],
						gone ? "missing" : "damaged");
	}
	if (n > KV_DAMAGED_NAMED && len < sizeof(files))
		snprintf(files + len, sizeof(files) - len, " and %zu more",
			 n - KV_DAMAGED_NAMED);
	free(nums);
	if (n == 0)
		todo = "restore the store from a backup";
	else if (!damaged)
		todo = n > 1 ? "put them back if they were moved or renamed, else restore the store from a backup" :
			       "put it back if it was moved or renamed, else restore the store from a backup";
	else if (!missing)
		todo = n > 1 ? "keep a copy of them for inspection and restore the store from a backup" :
			       "keep a copy of it for inspection and restore the store from a backup";
	else
		todo = "put the missing files back if they were moved or renamed, and restore the store from a backup (keep a copy of the damaged ones for inspection)";
	kv_log(&r->kv, STORE_LOG_ERR,
	       "the store's database '%s' is damaged%s%s%s: not opened, as its data would be incomplete; %s (RocksDB: %s)",
	       r->path, n ? ": table file" : "",
	       n > 1 ? "s " :
	       n     ? " " :
		       "",
	       files, todo, why);
	rocksdb_free(err);
}

/* Replay callback: a journal record the database lost. */
static int kv_rocks_replay_apply(void *ctx, const struct kv_batch *b,
				 uint64_t end)
{
	struct kv_rocks *r = ctx;
	rocksdb_writebatch_t *wb = kv_rocks_batch(r, b, end);

	return wb ? kv_rocks_apply(r, wb, false) : -ENOMEM;
}

/* Replay callback of a read-only open: a record the database lost is
 * only counted (kv.h open_unapplied). */
static int kv_rocks_replay_count(void *ctx, const struct kv_batch *b,
				 uint64_t end)
{
	struct kv_rocks *r = ctx;

	(void)b;
	r->kv.open_unapplied = end;
	return 0;
}

/* Before RocksDB reads its WAL: after a run that did not close cleanly
 * (the journal's header is not sealed, or there is no journal), look for
 * a hole a power cut left in the WAL and cut it there (walscan.h), so that
 * RocksDB recovers a prefix of the batches and the journal's replay the
 * rest.  A read-only open only counts it (kv.h open_wal_hole).  0, or the
 * cut's error: the store is not opened with later writes and without
 * earlier ones. */
/* RocksDB's min_log_number_to_keep (its MANIFEST's): the first WAL file
 * its recovery reads, older ones being obsolete.  A read-only open (it
 * changes nothing) reads it.  0 and *first, or -EIO when the open fails
 * (the open that follows reports why) or RocksDB does not say (logged). */
static int kv_rocks_first_wal(struct kv_rocks *r,
			      const rocksdb_options_t *const *cfo,
			      uint64_t *first)
{
	rocksdb_column_family_handle_t *cf[KV_CF_COUNT] = { 0 };
	char *err = NULL, *v;
	rocksdb_t *db;
	int i, rc = 0;

	db = rocksdb_open_for_read_only_column_families(
		r->opts, r->path, KV_CF_COUNT, kv_cf_names, cfo, cf, 0, &err);
	if (err) {
		rocksdb_free(err);
		return -EIO;
	}
	v = rocksdb_property_value(db, "rocksdb.min-log-number-to-keep");
	if (v)
		*first = strtoull(v, NULL, 10);
	else
		rc = -EIO;
	free(v);
	for (i = 0; i < KV_CF_COUNT; i++)
		rocksdb_column_family_handle_destroy(cf[i]);
	rocksdb_close(db);
	if (rc)
		kv_log(&r->kv, STORE_LOG_WARN,
		       "rocksdb does not say which log files it reads: its log not checked for a hole");
	return rc;
}

/* A step back in the WAL (walscan.h): older batches after newer ones,
 * which RocksDB would replay over them, or abort on.  Logged; -EUCLEAN. */
static int kv_rocks_wal_back(struct kv_rocks *r, const struct walscan_hole *h)
{
	kv_log(&r->kv, STORE_LOG_ERR,
	       "rocksdb's log '%s' steps back: %06llu.log at %llu holds the batch of sequence %llu after batches up to %llu (%06llu.log), which rocksdb never writes and a power cut does not leave (a damaged file, or another's content): not opened, as rocksdb would replay older writes over newer ones (or abort); keep a copy and move the file that does not belong out of the directory",
	       r->path, (unsigned long long)h->file,
	       (unsigned long long)h->offset, (unsigned long long)h->seq_found,
	       (unsigned long long)h->seq_expected - 1,
	       (unsigned long long)h->prev_file);
	return -EUCLEAN;
}

/* Before RocksDB reads its WAL: after a run that did not close cleanly
 * (the journal's header is not sealed, or there is no journal), look for
 * a hole a power cut left in the WAL and cut it there (walscan.h), so that
 * RocksDB recovers a prefix of the batches and the journal's replay the
 * rest.  A read-only open only counts it (kv.h open_wal_hole).  A step
 * back in the WAL refuses the store, read-only or not.  0, or the cut's
 * error (the store is not opened with later writes and without earlier
 * ones), or -EUCLEAN for a step back. */
static int kv_rocks_wal_hole(struct kv_rocks *r,
			     const rocksdb_options_t *const *cfo)
{
	struct walscan_hole hole;
	struct journal *j;
	char path[4200];
	uint64_t first = 0;
	bool sealed = false;
	int rc;

	snprintf(path, sizeof(path), "%s/BRANCHFS-JOURNAL", r->path);
	/* Quietly: the journal's own open below says what is wrong with it. */
	if (journal_open_read(path, NULL, &j) == 0) {
		sealed = journal_sealed(j);
		journal_close(j);
	}
	if (sealed)
		return 0; /* a clean close synced the whole WAL */
	/* Every WAL file first, quietly: without a gap there is no hole.  A
	 * gap may follow an obsolete file, which RocksDB does not read: the
	 * files it reads are then scanned again, and only those. */
	rc = walscan_find_hole(r->path, 0, NULL, &hole);
	/* Before the read-only open that follows a hole, which would replay
	 * it too. */
	if (rc == 1 && hole.back)
		return kv_rocks_wal_back(r, &hole);
	if (rc == 1 && kv_rocks_first_wal(r, cfo, &first) == 0)
		rc = walscan_find_hole(r->path, first, &r->kv.log, &hole);
	else if (rc == 1)
		rc = 0; /* unknown which files RocksDB reads: logged */
	else if (rc < 0 && rc != -ENOMEM) /* say why, once */
		rc = walscan_find_hole(r->path, 0, &r->kv.log, &hole);
	if (rc == -ENOMEM)
		return rc;
	if (rc <= 0)
		return 0; /* none, or unreadable: logged, RocksDB decides */
	if (hole.back)
		return kv_rocks_wal_back(r, &hole);
	if (r->read_only) {
		kv_log(&r->kv, STORE_LOG_WARN,
		       "rocksdb's log lost the batches of sequences %llu to %llu, which a power cut did not write to disk, but kept later ones (%llu bytes from %06llu.log at %llu): this read-only view of the database may lack synced writes and hold later ones; the next open that is not read-only cuts the log there and replays the fsync journal",
		       (unsigned long long)hole.seq_expected,
		       (unsigned long long)hole.seq_found - 1,
		       (unsigned long long)hole.bytes,
		       (unsigned long long)hole.file,
		       (unsigned long long)hole.offset);
		r->kv.open_wal_hole = hole.bytes;
		return 0;
	}
	return walscan_cut(r->path, &hole, &r->kv.log);
}

/* Open the journal, give the database back what it lost (records past
 * its "J" mark), make that durable and start a new epoch.  A journal that
 * cannot be created (a full or read-only disk) is done without; one that
 * exists but is damaged is an error: it may hold synced writes.  Read
 * only: the same checks of the journal, and nothing written (the journal
 * is closed again: nothing may be appended). */
static int kv_rocks_journal_open(struct kv_rocks *r, uint64_t ring)
{
	unsigned char jv[8];
	char path[4200], *err = NULL;
	uint64_t applied = 0, end = 0;
	size_t vlen;
	bool found;
	int rc;

	rc = kv_rocks_get(&r->kv, KV_CF_META, KV_JOURNAL_KEY, 1, jv, sizeof(jv),
			  &vlen, &found);
	if (rc)
		return rc;
	if (found && vlen == 8)
		applied = kv_get_be64(jv);
	snprintf(path, sizeof(path), "%s/BRANCHFS-JOURNAL", r->path);
	if (r->read_only)
		rc = journal_open_read(path, &r->kv.log, &r->jnl);
	else
		rc = journal_open(path, ring, &r->kv.log, &r->jnl);
	if (rc == -EUCLEAN || rc == -ENOMEM)
		return rc;
	if (rc == -ENOENT && r->read_only) {
		r->jnl = NULL; /* none: an open makes one, nothing to replay */
		return 0;
	}
	if (rc) {
		kv_log(&r->kv, STORE_LOG_WARN,
		       "journal '%s' unavailable (%s): fsync syncs RocksDB's WAL instead",
		       path, strerror(-rc));
		r->jnl = NULL;
		return 0;
	}
	rc = journal_replay(r->jnl, applied,
			    r->read_only ? kv_rocks_replay_count :
					   kv_rocks_replay_apply,
			    r, &end);
	if (rc)
		return rc;
	r->kv.open_damage = journal_damage_held(r->jnl);
	if (r->read_only) {
		if (r->kv.open_unapplied)
			r->kv.open_unapplied -= applied;
		journal_close(r->jnl);
		r->jnl = NULL;
		return 0;
	}
	rocksdb_flush_wal(r->db, 1, &err);
	if (err)
		return kv_rocks_err(&r->kv, "sync wal after journal replay",
				    err);
	return journal_restart(r->jnl, end > applied ? end : applied);
}

int kv_rocksdb_open(const char *path, unsigned flags, size_t cache_bytes,
		    unsigned max_open_files, const struct store_log *log,
		    struct kv **out)
{
	bool create = flags & KV_OPEN_CREATE;
	const rocksdb_options_t *cfo[KV_CF_COUNT];
	uint64_t journal_bytes = KV_JOURNAL_BYTES;
	struct kv_rocks *r;
	const char *env;
	char *err = NULL;
	int rc, i;

	if (create && (flags & KV_OPEN_READ_ONLY))
		return -EINVAL;
	r = calloc(1, sizeof(*r));
	if (!r)
		return -ENOMEM;
	r->read_only = flags & KV_OPEN_READ_ONLY;
	pthread_mutex_init(&r->order_mu, NULL);
	pthread_mutex_init(&r->ckpt_mu, NULL);
	pthread_mutex_init(&r->pause_mu, NULL);
	r->kv.ops = &kv_rocks_ops;
	if (log)
		r->kv.log = *log;
	r->path = strdup(path);
	if (!r->path) {
		rc = -ENOMEM;
		goto err_free;
	}
	{
		/* Memtables in proportion to the filesystem: on a small one,
		 * a flush must still find room. */
		struct statvfs vfs;
		uint64_t total = 0, avail;

		if (statvfs(path, &vfs) == 0 ||
		    (create && kv_parent_statvfs(path, &vfs) == 0)) {
			total = (uint64_t)vfs.f_blocks * vfs.f_frsize;
			avail = kv_fs_avail(&vfs);
			/* A read-only open writes nothing. */
			if (avail < KV_OPEN_ROOM && !r->read_only) {
				kv_log(&r->kv, STORE_LOG_ERR,
				       "cannot open the database in '%s': its filesystem has %llu KiB free, and opening it needs %u KiB: make room first",
				       path, (unsigned long long)(avail >> 10),
				       KV_OPEN_ROOM >> 10);
				rc = -ENOSPC;
				goto err_free;
			}
		}
		r->wbuf_block = 64u << 20;
		r->wbuf_small = 16u << 20;
		if (total && total / 32 < r->wbuf_block)
			r->wbuf_block = total / 32 < (2u << 20) ? 2u << 20 :
								  total / 32;
		if (total && total / 128 < r->wbuf_small)
			r->wbuf_small = total / 128 < (1u << 20) ? 1u << 20 :
								   total / 128;
		/* A WAL file goes only once every family with writes in it
		 * has flushed, and the META family, which gets a few small
		 * writes all the time, flushes only when RocksDB's WAL total
		 * reaches this: on a 64 MB filesystem, with 256 MiB, a third
		 * of it was WAL files kept for META's sake when the disk ran
		 * full. */
		/* Two memtables per family can wait to be flushed (RocksDB's
		 * default max_write_buffer_number), BLOCK and three small. */
		r->kv.flush_room =
			2 * ((uint64_t)r->wbuf_block +
			     (KV_CF_COUNT - 1) * (uint64_t)r->wbuf_small);
		r->wal_max = 256u << 20;
		if (total && total / 16 < r->wal_max)
			r->wal_max = total / 16 < 2 * r->wbuf_block ?
					     2 * r->wbuf_block :
					     total / 16;
		journal_bytes = KV_JOURNAL_BYTES;
		if (total && total / 64 < journal_bytes)
			journal_bytes = total / 64 < (1u << 20) ? 1u << 20 :
								  total / 64;
		r->floor = KV_WRITE_FLOOR;
		env = getenv("BRANCHFS_WRITE_FLOOR_KIB");
		if (env && *env)
			r->floor = strtoull(env, NULL, 10) << 10;
		env = getenv("BRANCHFS_JOURNAL_KIB");
		if (env && strtoull(env, NULL, 10) > 0)
			journal_bytes = strtoull(env, NULL, 10) << 10;
		/* Test seam: memtables and table files of this size, so
		 * that a test makes a store of many table files from little
		 * data (t59).  Not for production: small files make
		 * compactions and reads slower. */
		env = getenv("BRANCHFS_TEST_SST_KIB");
		if (env && strtoull(env, NULL, 10) > 0)
			r->test_sst_bytes = strtoull(env, NULL, 10) << 10;
	}
	r->cache = rocksdb_cache_create_lru(cache_bytes);
	r->opts = rocksdb_options_create();
	{
		/* No WAL preallocation: it would count as store bytes on
		 * disk and hide real growth.  (Recycled WAL files would make
		 * fdatasync cheaper, but RocksDB 7.8 turns recycling off with
		 * point-in-time WAL recovery, which crash safety needs.) */
		rocksdb_options_t *base = rocksdb_options_create();

		rocksdb_get_options_from_string(base, "allow_fallocate=false",
						r->opts, &err);
		rocksdb_options_destroy(base);
		if (err) {
			kv_log(&r->kv, STORE_LOG_WARN,
			       "rocksdb: ignoring tuning options: %s", err);
			rocksdb_free(err);
			err = NULL;
		}
	}
	rocksdb_options_set_create_if_missing(r->opts, create);
	rocksdb_options_set_create_missing_column_families(r->opts, 1);
	rocksdb_options_increase_parallelism(r->opts, 2);
	rocksdb_options_set_max_background_jobs(r->opts, 2);
	rocksdb_options_set_bytes_per_sync(r->opts, 1u << 20);
	/* RocksDB's WAL is synced only at journal checkpoints; writing it
	 * back as it grows keeps those short. */
	rocksdb_options_set_wal_bytes_per_sync(r->opts, 1u << 20);
	rocksdb_options_set_keep_log_file_num(r->opts, 3);
	/* RocksDB's own info LOG lives in the store directory; on a full
	 * disk a failed LOG write makes the next log line trip an assertion
	 * in Debian's librocksdb (built with them on).  Only fatal messages
	 * are logged, and our own layer logs every error it returns. */
	rocksdb_options_set_info_log_level(r->opts, 4 /* FATAL_LEVEL */);
	rocksdb_options_set_max_log_file_size(r->opts, 1u << 20);
	rocksdb_options_set_max_total_wal_size(r->opts, r->wal_max);
	rocksdb_options_set_paranoid_checks(r->opts, 1);
	/* By default every table file stays open (-1: no table cache to
	 * look in on a read).  Under a limit on open files, a store of
	 * more table files than it allows failed to open, or once it grew
	 * there, RocksDB failed a flush or a read with "Too many open
	 * files" and took no more writes: the caller's budget caps them. */
	rocksdb_options_set_max_open_files(
		r->opts, max_open_files ? (int)max_open_files : -1);
	for (i = 0; i < KV_CF_COUNT; i++)
		cfo[i] = kv_rocks_cf_options(r, i);
	rc = kv_rocks_wal_hole(r, cfo);
	if (rc)
		goto err_free;
	if (r->read_only)
		r->db = rocksdb_open_for_read_only_column_families(
			r->opts, path, KV_CF_COUNT, kv_cf_names, cfo, r->cf, 0,
			&err);
	else
		r->db = rocksdb_open_column_families(r->opts, path, KV_CF_COUNT,
						     kv_cf_names, cfo, r->cf,
						     &err);
	if (err && strstr(err, "Corruption")) {
		kv_rocks_open_damaged(r, err);
		rc = -EUCLEAN;
		goto err_free;
	}
	if (err) {
		const char *what = "open";

		if (strstr(err, "While lock file"))
			/* Not another daemon: that one holds the store's own
			 * lock, taken first.  A RocksDB tool (ldb), say. */
			what = "the store's database is in use by another "
			       "process (it holds db/LOCK): open";
		rc = kv_rocks_err(&r->kv, what, err);
		goto err_free;
	}
	r->wopts = rocksdb_writeoptions_create();
	r->wopts_sync = rocksdb_writeoptions_create();
	rocksdb_writeoptions_set_sync(r->wopts_sync, 1);
	r->ropts = rocksdb_readoptions_create();
	rocksdb_readoptions_set_verify_checksums(r->ropts, 1);
	rc = kv_rocks_journal_open(r, journal_bytes);
	if (rc) {
		kv_rocks_free(r); /* the database is open: close it too */
		return rc;
	}
	*out = &r->kv;
	return 0;
err_free:
	memset(r->cf, 0, sizeof(r->cf));
	r->db = NULL;
	kv_rocks_free(r);
	return rc;
}
