/* SPDX-License-Identifier: MIT */
/*
 * store.h - public API of the branchfs versioned copy-on-write store.
 *
 * The store keeps branches, inodes, directory entries and 8 KiB file blocks
 * in one RocksDB instance.  Every change gets a sequence number (seq) from
 * one global, persisted, monotonically increasing counter, and every record
 * is stored as a new version under (branch, object, seq).  A read names a
 * branch and a seq and sees the newest version at or below that seq,
 * falling through to the parent branch (capped at the child's fork seq)
 * when the branch itself has no version.  Creating a branch writes one
 * small record, whatever the amount of data behind it.
 *
 * The store knows nothing of FUSE, Postgres, sockets or policy.
 *
 * Conventions for every function below:
 *  - Functions that can fail return 0 or a negative errno; byte counts are
 *    ssize_t.  Out-parameters are written only on success.
 *  - Every function is thread-safe.  Writers to different inodes do not
 *    wait on each other; writers to one inode are serialised.
 *  - Common errors, not repeated per function: -ENOMEM; -EIO on a backend
 *    failure or on a block whose hash does not match (logged with branch,
 *    inode and block); -ENOSPC when the store's filesystem is full, or
 *    nearly: writes, creates and branch creation are refused while less
 *    than a reserve (1/16 of the filesystem, 2 to 256 MiB) is left, so
 *    RocksDB never meets a full disk; removals and truncation still work
 *    so that space can be freed;
 *    -ENOENT for an unknown branch id.
 *  - Reads take (branch, seq).  seq == STORE_SEQ_LATEST reads the branch
 *    head, including every write that has returned.  Any other seq must be
 *    <= store_seq_now(); a larger one is -EINVAL.
 *  - Writes always go to the head of a branch.
 *  - Names are directory entry names: 1..255 bytes, no '/', no NUL, not
 *    "." or "..".  Bad names are -EINVAL, too long is -ENAMETOOLONG.
 *  - Nothing is fsynced on the write path.  store_sync() makes every write
 *    that returned before it was called durable.
 *
 * Identifier ranges (so that a caller can pack them into one 64-bit id,
 * with a few bits of its own: fs/ puts a 4-bit epoch between them):
 * branch ids are 1..STORE_BRANCH_ID_MAX (24 bits), inode numbers are
 * 1..STORE_INO_MAX (36 bits).  Neither is ever reused.
 */
#ifndef BRANCHFS_STORE_H
#define BRANCHFS_STORE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>
#include <time.h>

#define STORE_BLOCK_SIZE 8192u
#define STORE_NAME_MAX 255u
#define STORE_SYMLINK_MAX 4095u
#define STORE_SEQ_LATEST UINT64_MAX
#define STORE_BRANCH_ID_MAX ((UINT64_C(1) << 24) - 1)
/* The most ancestors a branch may have (parent, grandparent, ...). */
#define STORE_MAX_ANCESTRY 4095u
#define STORE_INO_MAX ((UINT64_C(1) << 36) - 1)
#define STORE_FORMAT_VERSION 2u

struct store;
struct kv;

enum store_log_level {
	STORE_LOG_ERR = 0,
	STORE_LOG_WARN = 1,
	STORE_LOG_INFO = 2,
	STORE_LOG_DEBUG = 3,
};

/* A log sink.  fn may be NULL (nothing is logged).  msg is borrowed for
 * the duration of the call and has no trailing newline.  fn is called
 * from any thread. */
struct store_log {
	void (*fn)(void *ctx, int level, const char *msg);
	void *ctx;
	int level; /* highest level passed to fn */
};

struct store_config {
	struct store_log log;
	/* Create the store if dir does not exist or is empty. */
	bool create;
	/* Open for reading only and change nothing on disk (branchd
	 * --check): the database is opened read-only, the fsync journal's
	 * records that the database lacks are counted, not replayed
	 * (store_check_report.journal_unapplied), the journal is not
	 * restarted, a store of an older format is read as it is, not
	 * upgraded, and the close writes nothing.  The store's lock is
	 * taken as for any open (-EBUSY while a daemon serves it).  Every
	 * call that writes fails with -EROFS.  Not with create or
	 * retention_s (-EINVAL); a store whose creation was cut short is
	 * -EUCLEAN. */
	bool read_only;
	/* Shared RocksDB block cache in bytes; 0 means 256 MiB. */
	size_t cache_bytes;
	/* The most table files of the database open at once (at least 20;
	 * past it the least recently used are closed and opened again when
	 * read); 0 keeps every one open, which suits a process without a
	 * tight limit on open files. */
	unsigned max_open_files;
	/* Test seam: if set, called once at open with the RocksDB backend;
	 * it may wrap it (e.g. fault injection) and return the wrapper in
	 * *out, which then owns inner.  Return 0 or a negative errno. */
	int (*kv_wrap)(void *ctx, struct kv *inner, struct kv **out);
	void *kv_wrap_ctx;
	/* Retention window in seconds: every moment inside it can be read
	 * and branched from; older versions that no branch needs are
	 * reclaimed by store_gc().  0 means the one last set (here or with
	 * store_set_retention, kept in the store), else 3600; another value
	 * is set as by store_set_retention. */
	uint64_t retention_s;
	/* Where drop_names (store_branch_create_args) apply: in the branch
	 * root and, when the root holds no entry named drop_marker, in the
	 * directories at most drop_depth levels below it that hold one (not
	 * below those; of a directory's first STORE_DROP_LIST names, at most
	 * STORE_DROP_SCAN subdirectories are looked into, and STORE_DROP_DIRS
	 * directories in all are kept).  NULL or depth 0: the root only.  drop_marker is copied
	 * at open; -EINVAL if it is not a valid name or drop_depth is above
	 * STORE_DROP_DEPTH_MAX. */
	const char *drop_marker;
	unsigned drop_depth;
};

#define STORE_DROP_DIRS 8
#define STORE_DROP_SCAN 16
#define STORE_DROP_LIST 64
#define STORE_DROP_DEPTH_MAX 3
/* Room for the path of a directory STORE_DROP_DEPTH_MAX levels down. */
#define STORE_DROP_PATH_MAX (STORE_DROP_DEPTH_MAX * (STORE_NAME_MAX + 1))

/* Inode attributes.  mode carries the S_IF* type bits. */
struct store_attr {
	uint32_t mode;
	uint32_t uid;
	uint32_t gid;
	uint32_t nlink;
	uint64_t rdev;
	uint64_t size;
	struct timespec atime;
	struct timespec mtime;
	struct timespec ctime;
};

/* Which fields store_setattr() changes. */
enum store_set_flags {
	STORE_SET_MODE = 1u << 0, /* permission bits only; type is kept */
	STORE_SET_UID = 1u << 1,
	STORE_SET_GID = 1u << 2,
	STORE_SET_SIZE = 1u << 3, /* truncate or extend */
	STORE_SET_ATIME = 1u << 4,
	STORE_SET_MTIME = 1u << 5,
	STORE_SET_CTIME = 1u << 6,
	/* With STORE_SET_SIZE: only ever extend (the size becomes the larger
	 * of the current one and attr->size, decided under the inode's lock,
	 * so a write that extends the file meanwhile is never cut off). */
	STORE_SET_GROW = 1u << 7,
};

enum store_rename_flags {
	STORE_RENAME_NOREPLACE = 1u << 0,
	STORE_RENAME_EXCHANGE = 1u << 1,
};

struct store_branch_info {
	uint64_t id;
	uint64_t parent_id; /* 0: no parent */
	uint64_t fork_seq;  /* parent's state seen by this branch */
	uint64_t root_ino;  /* root directory inode */
	int64_t ctime_ns;   /* creation time, ns since the epoch */
	int64_t fork_ns;    /* wall time of fork_seq (0: not known) */
	uint32_t owner_uid; /* recorded at creation, for policy above */
	uint32_t nchildren; /* live child branches */
	/* First seq of the branch's own past: where it was made or last
	 * reset (after a reset that other branches' writes raced, a few
	 * seqs past fork_seq + 1).  A branch of it as of an earlier seq is
	 * -ERANGE (store_branch_create). */
	uint64_t past_seq;
	char name[STORE_NAME_MAX + 1];
};

struct store_branch_create_args {
	const char *name;
	/* Parent branch id, or 0 for an empty branch with a fresh root. */
	uint64_t parent_id;
	/* Parent state to fork: STORE_SEQ_LATEST for "now", else a seq
	 * <= store_seq_now().  Ignored without a parent. */
	uint64_t at_seq;
	uint32_t owner_uid;
	/* Root directory of an empty branch (ignored with a parent). */
	uint32_t root_mode; /* permission bits */
	uint32_t root_uid;
	uint32_t root_gid;
	/* NULL-terminated list of entry names the new branch does not
	 * carry over from its parent (may be NULL), in its root and in the
	 * directories store_config.drop_marker names (store_drop_dirs, as
	 * of the fork).  A name with '*', '?' or '[' is an fnmatch(3)
	 * pattern (flags 0), matched against the parent's entries there that
	 * start with the pattern's literal prefix (one seek per ancestry
	 * level).  Borrowed. */
	const char *const *drop_names;
	/* Return before the record is durable, like mkdir(2) on a local
	 * filesystem: it becomes durable with the next store_sync(), or
	 * store_sync_branch() of the new branch (an fsync of anything in
	 * it), which then covers the parent's writes before the fork too.
	 * A kill of the process loses nothing (the record is in the
	 * RocksDB WAL file); a power cut before any sync loses the branch
	 * and only it.  false: synced before return. */
	bool lazy;
};

struct store_dirent {
	uint64_t ino;
	uint32_t mode; /* S_IF* type bits only */
	char name[STORE_NAME_MAX + 1];
};

struct store_usage {
	uint64_t logical_bytes; /* sum of regular file sizes in the branch */
	uint64_t written_bytes; /* block bytes written since its fork */
	uint64_t files;		/* inodes reachable from the root */
};

struct store_stats {
	uint64_t disk_bytes;	  /* bytes the store occupies on disk */
	uint64_t fs_total_bytes;  /* size of the filesystem holding it */
	uint64_t fs_avail_bytes;  /* bytes still available there */
	uint64_t reserve_bytes;	  /* kept free: new data is refused below it */
	uint64_t seq;		  /* store_seq_now() */
	uint64_t next_ino;	  /* next inode number to be handed out */
	uint64_t branches;	  /* live branches */
	uint64_t deleted_pending; /* store_deleted_pending() */
	/* The read filters (rebuilt after open, in a thread of the store:
	 * until then reads search every ancestry level): ready, how many
	 * objects the rebuild has looked at, and how long it took. */
	bool filters_ready;
	uint64_t filters_objects;
	uint64_t filters_ms;
};

/* ---- lifecycle ---- */

/* Open the store in dir.  cfg is copied.  Errors: -ENOENT dir missing
 * and !cfg->create; -EBUSY the store is open in another process (or
 * handle); -EMEDIUMTYPE dir is not empty and not a branchfs store;
 * -EPROTONOSUPPORT the store's format version is unknown; -EUCLEAN the
 * store is damaged.  Each is logged with a one-line reason.  On success
 * *out is owned by the caller and released with store_close(). */
int store_open(const char *dir, const struct store_config *cfg,
	       struct store **out);
/* Wait until the read filters are rebuilt after open (store_stats'
 * filters_ready), at most timeout_ms.  0; -EIO: the rebuild failed (the
 * store reads without filters); -ETIMEDOUT: it is still running. */
int store_wait_filters(struct store *s, unsigned timeout_ms);

/* Make everything durable and release the store.  Returns the first error
 * met while syncing; the handle is freed in every case. */
int store_close(struct store *s);

/* Release the store like store_close(), without making anything durable,
 * and remove it: its database, marker and lock file, then its directory
 * unless keep_dir (an empty directory the store was made in), with the
 * store's lock held until the files are gone.  Only for a store this
 * process created and never served (a daemon whose mount failed).
 * Returns 0 or the first negative errno met (what could not be removed
 * stays); the handle is freed in every case. */
int store_close_remove(struct store *s, bool keep_dir);

/* Every write that returned before this call is durable when it returns.
 * Concurrent callers share one WAL sync where they can. */
int store_sync(struct store *s);

/* store_sync() for a file or directory of one branch: every write to that
 * branch that returned before this call is durable when it returns.  It
 * returns at once, without a WAL sync, when all of them already are, so
 * that an fsync in an idle branch does not wait for other branches'
 * writes (a branch's crash recovery fsyncs every file of PGDATA while its
 * parent keeps writing).  An unknown branch (0, the branch root) is
 * store_sync().  Errors as store_sync(). */
int store_sync_branch(struct store *s, uint64_t branch);

/* store_sync() if a write has returned since the last sync ended; else 0
 * at once, with no I/O.  For a periodic commit that bounds what a power cut
 * can take from writes nobody fsynced.  Errors as store_sync(). */
int store_sync_pending(struct store *s);

/* The highest seq at which every write that has returned is visible and no
 * write in flight is: the watermark after waiting for writes in flight. */
uint64_t store_seq_now(struct store *s);

/* The seq that reflects the store as it was at wall-clock time unix_ns,
 * to the time index's resolution: it holds every write begun in that ms
 * or before, and none begun 10 ms or more after it.  -EINVAL: in the
 * future; -ERANGE: before the oldest retained moment. */
int store_seq_at_time(struct store *s, int64_t unix_ns, uint64_t *seq);

/* Oldest wall-clock time (ns) that store_seq_at_time() accepts: the store's
 * creation, or the horizon of the last GC, whichever is later, rounded up
 * to a whole millisecond (so that it survives being printed with ms). */
int64_t store_oldest_time(struct store *s);

/* The oldest seq that reads and forks accept (the last GC's horizon, 0
 * before any): below it, every answer is -ERANGE. */
uint64_t store_oldest_seq(struct store *s);

int store_stats(struct store *s, struct store_stats *out);

/* Approximate wall-clock time (ns) at which seq was handed out, to the
 * resolution of the time index.  -ERANGE if older than the horizon. */
int store_time_of_seq(struct store *s, uint64_t seq, int64_t *unix_ns);

/* Small named values that the layers above keep with the store (the
 * default parent of mkdir, ...).  key: 1 to 64 bytes; val: at most
 * STORE_SETTING_MAX bytes, NUL-terminated.  Durable when put returns.
 * Errors: -EINVAL bad key or value, -ENOENT (get) never set, -ERANGE (get)
 * value longer than bufsz - 1, -ENOSPC, -EIO. */
#define STORE_SETTING_MAX 1024
int store_setting_put(struct store *s, const char *key, const char *val);
int store_setting_get(struct store *s, const char *key, char *buf,
		      size_t bufsz);

/* Change the retention window at run time (seconds, 1 to
 * STORE_RETENTION_MAX, else -EINVAL); it is kept in the store for the next
 * open (see store_config.retention_s).  Lengthening it cannot bring back
 * what a GC already reclaimed. */
#define STORE_RETENTION_MAX ((uint64_t)INT64_MAX / 1000000000u)
int store_set_retention(struct store *s, uint64_t seconds);
uint64_t store_get_retention(struct store *s);

struct store_gc_opts {
	/* Called for an unlinked inode before its blocks are reclaimed;
	 * return true while it is still open (its data is kept).  May be
	 * NULL.  Called from the GC thread without store locks held. */
	bool (*in_use)(void *ctx, uint64_t branch, uint64_t ino);
	void *ctx;
	/* Compact the whole database at the end (returns space at once;
	 * costs I/O) if a branch was deleted or the bytes deleted since the
	 * last compaction reach 1/8 of the store; otherwise, and without
	 * it, only deleted branches' ranges are.  Whole compactions take at
	 * most a tenth of the time: one that comes sooner than nine times
	 * the last one's duration (and at least 1 s) after it is deferred,
	 * unless half of the store is to be reclaimed. */
	bool full_compaction;
	/* Sleep this many microseconds after every 1024 keys examined, to
	 * leave I/O to the foreground.  0: no pause. */
	unsigned pause_us;
};

struct store_gc_stats {
	uint64_t keys_scanned;
	uint64_t keys_deleted;
	uint64_t bytes_deleted;	   /* key + value bytes of deleted versions */
	uint64_t inodes_reclaimed; /* unlinked inodes whose blocks went */
	uint64_t branches_dropped; /* deleted branches whose keys went */
	/* Deleted branches whose keys this run left in the store: they stay
	 * noted and the next run tries again.  drop_no_room: because the
	 * compaction that drops them would rewrite more of the table files
	 * they share with live branches than is free above the reserve
	 * (else it ran and left them, or failed; the log says which). */
	uint64_t branches_pending;
	bool drop_no_room;
	/* Live branches whose keys the run read whole instead of only what
	 * was written since the last run (every one when it scanned the
	 * whole store; see "GC-2" in store.c for when else). */
	uint64_t branches_scanned_whole;
	uint64_t disk_before;
	uint64_t disk_after;
	int64_t horizon_ns; /* oldest moment still retained */
	/* The whole store was compacted (full_compaction asked for it and
	 * it was worth it); compaction_deferred: it would have been, but
	 * the last one was too recent (see store_gc_opts.full_compaction). */
	bool compacted;
	bool compaction_deferred;
	/* It would have been, but the filesystem has no room for the
	 * rewrite (the live data, about disk_before less what was deleted
	 * since the last one, above the reserve): a compaction that runs
	 * out of space stops RocksDB's writes until the store is opened
	 * again. */
	bool compaction_no_room;
	/* After the run the filesystem is still below the store's reserve
	 * (new data refused): versions deleted inside branches free space
	 * only as RocksDB rewrites its files, which needs room; a deleted
	 * branch's files go whole.  Logged when the run deleted anything. */
	bool space_low;
};

/* Reclaim versions that no read point needs: a branch head, a child's
 * fork point, or any moment inside the retention window.  Safe to run
 * while the store is in use; one GC runs at a time (-EBUSY otherwise). */
int store_gc(struct store *s, const struct store_gc_opts *opts,
	     struct store_gc_stats *out);

/* 0 if name is a valid branch or entry name; else -EINVAL/-ENAMETOOLONG */
int store_name_check(const char *name);

/* 0 if name is a valid branch name: an entry name that is also
 * well-formed UTF-8 without control characters (C0, DEL, C1); else
 * -EINVAL/-ENAMETOOLONG.  Branches are created and renamed only to such
 * names; lookups take any name (a store may hold a name an older build
 * allowed). */
int store_branch_name_check(const char *name);

struct store_check_report {
	uint64_t branches;
	uint64_t records; /* inode and entry versions checked */
	uint64_t blocks;  /* block versions checked */
	uint64_t bad_records;
	uint64_t bad_blocks;
	/* Bytes of damage the store's open found that lost nothing: synced
	 * records of the fsync journal that the database held, stepped over
	 * (the disk lost or changed data it had flushed).  An open that is
	 * not read_only starts the journal afresh: the next open finds none;
	 * a read_only one leaves it, and finds it again. */
	uint64_t journal_damaged;
	/* read_only: bytes of fsync journal records, checksums good, that
	 * the database lacks and the next open that is not read_only
	 * replays into it (after a crash); their blocks were not checked. */
	uint64_t journal_unapplied;
	/* read_only: bytes of RocksDB's WAL after a hole a power cut left in
	 * it (later batches kept, earlier ones lost): the check saw a
	 * database that may lack synced writes and hold later ones; the next
	 * open that is not read_only cuts the WAL there and replays the
	 * journal. */
	uint64_t wal_hole;
};

/* Read and verify every version of every live branch: block digests and
 * decompression, record shapes.  Each problem is reported through
 * problem(ctx, msg) with the branch, the file's path at the branch head
 * (when it still has one), the inode, block and seq.  Returns 0 (problems
 * are counted in out, not errors) or a negative errno when the check
 * itself could not run. */
int store_check(struct store *s, void (*problem)(void *ctx, const char *msg),
		void *ctx, struct store_check_report *out);

/* ---- branches ---- */

/* Creates (unless lazy), deletes, renames and resets are durable when they
 * return 0.  Their record is committed under the branch table's lock and
 * synced after it is dropped, so reads and writes of other branches never
 * wait for the sync.  A failure before the commit changes nothing; a
 * failing sync after it (-EIO) leaves the change made, in memory and in
 * the database alike, but perhaps not durable, as a failed fsync does. */

/* Create a branch.  O(1): writes one record (synced unless args->lazy).
 * Branch names follow the entry name rules and may not contain control
 * characters.  Errors: -EEXIST name taken; -EINVAL/-ENAMETOOLONG bad name
 * or at_seq in the future; -ENOENT unknown parent; -ERANGE at_seq older
 * than the parent's oldest retained state or older than the parent itself;
 * -EMLINK too many branches (ids are never reused: STORE_BRANCH_ID_MAX
 * in a store's life), or the parent has STORE_MAX_ANCESTRY ancestors
 * (its child would have one more than a branch may have). */
int store_branch_create(struct store *s,
			const struct store_branch_create_args *args,
			struct store_branch_info *out);

/* Delete a branch: its record at once; its data at the next store_gc (or
 * store_drop_deleted).  -ENOTEMPTY: it has child branches. */
int store_branch_delete(struct store *s, uint64_t id);

/* Deleted branches whose keys GC has not dropped yet (they take space,
 * nothing else).  *since_ns (CLOCK_MONOTONIC, may be NULL): when the
 * oldest of them was deleted (0 if none). */
size_t store_deleted_pending(struct store *s, int64_t *since_ns);

/* Drop the deleted branches' keys now, as store_gc does: a sync first if
 * a delete is not durable yet (a drop is durable at once), then a range
 * deletion and a compaction (a flush of the memtables and a rewrite of
 * the files that overlap the range) per range of deleted ids and family
 * with keys there, if the filesystem has room for it above the reserve.
 * *dropped (may be NULL): how many branches' keys are gone; the others
 * stay noted (store_deleted_pending) for the next drop.  0 also when a
 * compaction left keys without an error; -ENOSPC no room for a rewrite, -EIO a
 * compaction failed (what went without them is dropped all the same);
 * -EIO, -ENOMEM, -ENOSPC from the backend before that leave every one
 * noted. */
int store_drop_deleted(struct store *s, size_t *dropped);

/* -EEXIST new name taken (by another branch); -EINVAL bad name. */
int store_branch_rename(struct store *s, uint64_t id, const char *new_name);
/* store_branch_rename that also sets the setting (store_setting_put) named
 * setting to new_name, in the same atomic batch (setting NULL: none): a
 * setting that names the branch, such as the default parent, then never
 * names a branch that is gone, whenever a crash comes.  Same errors, and
 * -EINVAL for a bad setting key. */
int store_branch_rename_set(struct store *s, uint64_t id, const char *new_name,
			    const char *setting);

/* Point a branch at its parent's current state again, dropping its own
 * changes, in O(1).  Same id, name and inode numbers; reads of the branch
 * as of a seq before the reset no longer see its old changes.  drop_names
 * as in store_branch_create_args.  -EINVAL: the branch has no parent;
 * -ENOTEMPTY: it has children. */
int store_branch_reset(struct store *s, uint64_t id,
		       const char *const *drop_names);
/* store_branch_reset to the parent's state as of at_seq (STORE_SEQ_LATEST:
 * now), so that a caller can check that state first and reset to exactly
 * what it checked.  Also -EINVAL: at_seq above store_seq_now(); -ERANGE:
 * a moment the parent was not at, or that garbage collection has passed. */
int store_branch_reset_at(struct store *s, uint64_t id, uint64_t at_seq,
			  const char *const *drop_names);

/* The directories of branch as of seq that drop_names apply in
 * (store_config.drop_marker): root first, then the marked directories
 * below it, *n of them (at most STORE_DROP_DIRS).  Cost: one lookup when
 * the root is marked; else a listing of the first STORE_DROP_LIST names
 * of the root and of at most STORE_DROP_SCAN subdirectories per level.  -ENOENT: unknown branch or
 * root; -EIO. */
int store_drop_dirs(struct store *s, uint64_t branch, uint64_t seq,
		    uint64_t root, uint64_t out[STORE_DROP_DIRS], size_t *n);

/* A directory of store_drop_dirs_named. */
struct store_drop_dir {
	uint64_t ino;
	unsigned depth; /* levels below the root: 0 for the root */
	char path[STORE_DROP_PATH_MAX]; /* from the root: "", "15/main" */
};

/* store_drop_dirs, with each directory's depth and path (for the rules
 * that climb with ".." or name what they found).  Same cost, and one
 * allocation when the root is not marked; the same errors and -ENOMEM. */
int store_drop_dirs_named(struct store *s, uint64_t branch, uint64_t seq,
			  uint64_t root,
			  struct store_drop_dir out[STORE_DROP_DIRS],
			  size_t *n);

int store_branch_get(struct store *s, uint64_t id,
		     struct store_branch_info *out);
int store_branch_lookup(struct store *s, const char *name,
			struct store_branch_info *out);

/* How many live branches there are (O(1)). */
uint64_t store_branch_count(struct store *s);

/* All live branches, sorted by name.  *out is owned by the caller and
 * freed with free(); *n may be 0 (then *out is NULL). */
int store_branch_list(struct store *s, struct store_branch_info **out,
		      size_t *n);

/* The branch itself first, then its parent, up to the root.  *out is
 * owned by the caller, freed with free(). */
int store_branch_ancestry(struct store *s, uint64_t id,
			  struct store_branch_info **out, size_t *n);

/* Walks the branch's tree at its head. */
int store_branch_usage(struct store *s, uint64_t id, struct store_usage *out);

/* What branch id reads at its head (STORE_SEQ_LATEST) changes only with a
 * commit that writes its keys, a reset, or its delete; its stamp changes
 * with each of them.  Take the stamp before a read: while a stamp taken
 * later is equal, that read still gives the same answer.  0, -ENOENT. */
struct store_stamp {
	uint64_t v[4];
};
int store_branch_stamp(struct store *s, uint64_t id, struct store_stamp *out);

/* ---- inodes and directories ---- */

/* Create an inode and its entry name in dir, atomically.  attr->mode gives
 * the type (S_IFREG, S_IFDIR, S_IFLNK, S_IFIFO, S_IFSOCK, S_IFCHR,
 * S_IFBLK) and permissions; uid, gid, rdev and the times are taken from
 * attr; nlink and size are set by the store.  target is the symlink target
 * (required for S_IFLNK, else NULL).  On success *ino and, if attr_out is
 * not NULL, the stored attributes are set.  Errors: -EEXIST name exists;
 * -ENOTDIR dir is not a directory; -ENOENT dir unknown or unlinked;
 * -ENAMETOOLONG name or target too long; -ENOSPC no inode numbers left. */
int store_create(struct store *s, uint64_t branch, uint64_t dir,
		 const char *name, const struct store_attr *attr,
		 const char *target, uint64_t *ino,
		 struct store_attr *attr_out);

/* -ENOENT: no such inode in this branch at seq. */
int store_getattr(struct store *s, uint64_t branch, uint64_t seq, uint64_t ino,
		  struct store_attr *out);

/* Change the fields named in mask (enum store_set_flags).  STORE_SET_SIZE
 * on a non-regular file is -EINVAL (-EISDIR for a directory).  Shrinking
 * discards the data past the new size: a later extension reads zeros
 * there, also where an ancestor still holds data.  On success, if out is
 * not NULL, it receives the new attributes. */
int store_setattr(struct store *s, uint64_t branch, uint64_t ino,
		  const struct store_attr *attr, unsigned mask,
		  struct store_attr *out);

/* Copy the symlink target into buf (NUL-terminated, truncated to bufsz-1)
 * and return its full length.  -EINVAL: not a symlink. */
ssize_t store_readlink(struct store *s, uint64_t branch, uint64_t seq,
		       uint64_t ino, char *buf, size_t bufsz);

/* -ENOENT no such entry; -ENOTDIR dir is not a directory. */
int store_lookup(struct store *s, uint64_t branch, uint64_t seq, uint64_t dir,
		 const char *name, uint64_t *ino);

/* All entries of dir (without "." and ".."), sorted by name, as merged
 * through the ancestry.  *out is owned by the caller, freed with free();
 * *n may be 0 (then *out is NULL). */
int store_readdir(struct store *s, uint64_t branch, uint64_t seq, uint64_t dir,
		  struct store_dirent **out, size_t *n);

/* New hard link newname in newdir to ino (not a directory: -EPERM).
 * -EEXIST newname exists. */
int store_link(struct store *s, uint64_t branch, uint64_t ino, uint64_t newdir,
	       const char *newname, struct store_attr *out);

/* Remove a non-directory entry (-EISDIR for a directory) and drop the
 * inode's link count.  The inode stays readable and writable by number
 * (open files) until the store reclaims it. */
int store_unlink(struct store *s, uint64_t branch, uint64_t dir,
		 const char *name);

/* Remove an empty directory.  -ENOTEMPTY, -ENOTDIR. */
int store_rmdir(struct store *s, uint64_t branch, uint64_t dir,
		const char *name);

/* Rename atomically, replacing an existing target as rename(2) does
 * (-EISDIR, -ENOTDIR, -ENOTEMPTY for mismatched or non-empty targets).
 * flags: enum store_rename_flags (-EEXIST with NOREPLACE).  Renaming an
 * entry onto a link to the same inode succeeds and does nothing.  The
 * caller prevents moving a directory into its own subtree (the kernel
 * does this for a mounted filesystem). */
int store_rename(struct store *s, uint64_t branch, uint64_t olddir,
		 const char *oldname, uint64_t newdir, const char *newname,
		 unsigned flags);

/* ---- file data ---- */

/* Read up to len bytes at off.  Returns the bytes read: short at end of
 * file, 0 past it.  Holes read as zeros.  -EISDIR on a directory. */
ssize_t store_read(struct store *s, uint64_t branch, uint64_t seq, uint64_t ino,
		   void *buf, size_t len, uint64_t off);

/* Zero [off, end) of regular file ino (a hole: fallocate PUNCH_HOLE,
 * ZERO_RANGE); the size stays, and past it nothing is written.  Whole
 * blocks get a ZERO version only where some level of the branch holds
 * data, so the cost follows the data, not the length (a hole over a sparse
 * terabyte writes nothing); the partial blocks at either end are merged
 * with what they hold.  One commit: a branch made meanwhile sees all of it
 * or none.  Sets mtime and ctime to *mtime if not NULL.  0, -EISDIR,
 * -EINVAL (not a regular file), -EFBIG past 2^63 - 1. */
int store_punch(struct store *s, uint64_t branch, uint64_t ino, uint64_t off,
		uint64_t end, const struct timespec *mtime);

/* store_punch, and with grow also the size raised to end if it is less
 * (fallocate ZERO_RANGE without KEEP_SIZE), in the same commit: a branch
 * made meanwhile never sees the zeros without the new size. */
int store_zero_range(struct store *s, uint64_t branch, uint64_t ino,
		     uint64_t off, uint64_t end, bool grow,
		     const struct timespec *mtime);

/* Write len bytes at off, extending the file if needed.  Returns len.
 * If mtime is not NULL the inode's mtime and ctime are set to it.
 * -EFBIG past the largest supported offset (2^63 - 1). */
ssize_t store_write(struct store *s, uint64_t branch, uint64_t ino,
		    const void *buf, size_t len, uint64_t off,
		    const struct timespec *mtime);

#endif /* BRANCHFS_STORE_H */
