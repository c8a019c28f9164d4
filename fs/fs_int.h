/* SPDX-License-Identifier: MIT */
/*
 * fs_int.h - private declarations of the FUSE layer, shared only by the
 * .c files of fs/.
 *
 * Node ids: nodeid = (branch_id << 40) | (epoch << 36) | ino.  The st_ino
 * we report is the node id without its epoch, fs_nodeid(branch_id, ino)
 * (DESIGN rule 1: distinct identity per branch).  The epoch (4 bits) is 0
 * for directories and, for the other nodes of a branch, counts the resets
 * of the branch this mount has seen (fs_node_kid), so that the kernel
 * never takes a file of the reset tree for its inode from before the
 * reset: the two are different kernel inodes, and the old one, which
 * caches the old size and pages, is refused at OPEN (ESTALE, which the
 * kernel's retry looks up afresh) instead of being marked bad under a
 * process that opened it (EIO).  FUSE_ROOT_ID (1) is the synthetic branch
 * root; branch ids start at 1, so no branch node can be 1.  Everything a
 * request needs is decoded from the node id, so forget does no more than
 * keep the lookup table (fs->nodes) for invalidation.  Branch and inode
 * ids are never reused, so a node id the kernel still holds after its
 * branch was deleted or reset can only meet ENOENT from the store, or the
 * reset tree's same file, never another file.
 *
 * Lock order (all leaves; none is held across a store call or a reply):
 *   root_mu, br_mu, nodes_mu are independent and never nested.  br_mu
 *   also guards fs->opens.  The one exception: default_mu, taken by
 *   fs_do_set_default and fs_branch_rename (fs_ctl.c), is held across their
 *   store write (the setting with the lookup of its branch, or a rename
 *   that carries it) and takes root_mu
 *   inside (default_mu -> root_mu); only a mkdir whose default parent was
 *   not found waits for it (fs_root_default_parent, which looks the
 *   branch table up under it).
 */
#ifndef BRANCHFS_FS_INT_H
#define BRANCHFS_FS_INT_H

#define FUSE_USE_VERSION 312

#include <fuse_lowlevel.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>

#include "fs.h"

#define FS_BRANCH_SHIFT 40
#define FS_INO_BITS 36
#define FS_INO_MASK ((UINT64_C(1) << FS_INO_BITS) - 1)
#define FS_EPOCH_BITS 4
#define FS_EPOCH_MAX ((1u << FS_EPOCH_BITS) - 1)
#define FS_EPOCH_MASK ((UINT64_C(1) << FS_BRANCH_SHIFT) - 1 - FS_INO_MASK)
_Static_assert(STORE_INO_MAX <= FS_INO_MASK, "inode numbers fit the node id");
_Static_assert(FS_INO_BITS + FS_EPOCH_BITS == FS_BRANCH_SHIFT,
	       "the epoch fills the bits between inode and branch");
#define FS_ENTRY_TIMEOUT 1.0
#define FS_ATTR_TIMEOUT 1.0
#define FS_MAX_WRITE (1u << 20)
#define FS_MAX_THREADS 64u
/* A node map of at least this many buckets (16,384 to 65,536 entries)
 * that halves hands the memory freed back to the kernel (fs_node_unref). */
#define FS_NODES_TRIM_BUCKETS 65536u
/* How long rmdir/rename of a busy branch waits for FUSE_RELEASE requests
 * still in flight from files that were just closed (the kernel sends
 * release asynchronously after close(2)). */
#define FS_BUSY_WAIT_MS 1500
/* How long an OPEN refused as stale keeps its branch from changing for
 * the kernel's retry of it (fs_file_open), and how many such retries may
 * be on their way at once (more are refused as before: the retry may
 * then meet another reset). */
#define FS_RETRY_MS 500
#define FS_RETRIES_MAX 32u

/* A small chained hash map from u64 keys, used for per-branch state and
 * for the kernel's lookup counts. */
struct fs_map_ent {
	uint64_t key;
	uint64_t count;
	uint32_t flags;
	/* One map holds one kind of entry: the fields of the other kind
	 * share their bytes (an entry of the node map, one per inode the
	 * kernel caches, stays at 40 bytes). */
	union {
		struct {		   /* per-branch (fs->br) */
			uint32_t ops;	   /* metadata changes in flight */
			uint32_t draining; /* holds waiting for it to quiesce */
		};
		struct { /* nodes (fs->nodes) */
			/* generation last handed to the kernel */
			uint32_t gen;
			/* the thread whose OPEN of the node was last
			 * refused with ESTALE (fs_file_open), or 0 */
			int32_t refused;
		};
		/* epochs (fs->epochs): count is the newest generation of
		 * files of the branch handed out, epoch its epoch */
		struct {
			uint32_t prev_gen; /* the one before it, or 0 */
			uint8_t epoch, prev_epoch;
		};
	};
	struct fs_map_ent *next;
};

struct fs_map {
	struct fs_map_ent **b;
	size_t nb; /* power of two, or 0 before the first insert */
	size_t n;
};

enum fs_branch_flags {
	FS_BR_CHANGING = 1u << 0, /* a delete/rename/reset is in progress */
};

/* fs->nodes entries' flags. */
enum fs_node_flags {
	FS_NODE_LINK = 1u << 0, /* a symlink (its target names its branch) */
	/* An entry with a newer generation went out while the kernel may
	 * still hold its inode from before a reset: the next OPEN gets
	 * ESTALE (fs_file_open). */
	FS_NODE_REGEN = 1u << 1,
	/* The thread of the last refused OPEN (refused) has looked the node
	 * up since: its next OPEN is the kernel's retry (fs_file_open). */
	FS_NODE_RETRY = 1u << 2,
	FS_NODE_DIR = 1u << 3, /* a directory (fs_invalidate_tree) */
	/* A directory named FS_PG_WAL_DIR, and a regular file looked up,
	 * made or renamed in one or named as a WAL segment, wherever it is
	 * (initdb --waldir: pg_wal a link to another directory; the
	 * segments there are made as xlogtemp.PID and renamed): its OPENs
	 * for writing are direct I/O (fs_op_open, fs_node_wal_mark). */
	FS_NODE_WAL_DIR = 1u << 4,
	FS_NODE_WAL = 1u << 5,
};

/* fi->fh of an OPEN of a FS_NODE_WAL file for writing, in direct I/O. */
#define FS_FH_WAL_DIRECT 1u

struct fs {
	struct fs_config cfg;
	struct store *store;
	struct fuse_session *se;
	struct fs_uring *uring; /* NULL unless cfg.io_uring */
	char *mountpoint;
	/* Set by fs_mount, cleared by fs_unmount (main thread); read by the
	 * unmount, exit and invalidation paths from other threads. */
	atomic_bool mounted;
	/* The mount's "major:minor" and id in /proc/self/mountinfo, set by
	 * fs_mount (empty and 0 if it was not found): the id is how the
	 * unmount finds our mount after a parent of the mount point was
	 * renamed, and tells it from another mounted at the same path after
	 * ours was detached (umount -l); dev names its fusectl directory. */
	char dev[32];
	long mnt_id;
	/* fs_run's thread while its loop runs (loop_running), woken by
	 * fs_request_exit; both guarded by loop_mu. */
	pthread_mutex_t loop_mu;
	pthread_t loop_thread;
	bool loop_running;
	bool allow_other;
	atomic_bool ready_done;

	pthread_mutex_t root_mu;
	mode_t root_mode;	    /* guarded by root_mu; S_IFDIR | bits */
	uid_t root_uid;		    /* guarded by root_mu */
	gid_t root_gid;		    /* guarded by root_mu */
	struct timespec root_mtime; /* guarded by root_mu */
	struct timespec root_ctime; /* guarded by root_mu */
	char *default_parent;	    /* guarded by root_mu */
	/* Serializes changes of default_parent with their store write
	 * (a synced write: not under root_mu, which mkdir takes). */
	pthread_mutex_t default_mu;

	/* Per-branch state: count = open files, flags = enum
	 * fs_branch_flags, ops and draining (fs_branch_op_begin).  Entries
	 * with all of them 0 are removed. */
	pthread_mutex_t br_mu;
	pthread_cond_t br_cv; /* signalled on any br change */
	struct fs_map br;     /* guarded by br_mu */
	/* Open file handles by node id without its epoch (fs_node_base;
	 * count), for fs_inode_in_use. */
	struct fs_map opens; /* guarded by br_mu */
	/* OPENs refused as stale (fs_file_open) whose retry is on its way:
	 * each still counts as an open file of its node (in br and opens),
	 * so that no reset comes between the refusal and the retry, until
	 * the same thread opens a file of the branch again or its time is
	 * up. */
	struct fs_retry {
		pid_t tid;
		uint64_t base;	       /* fs_node_base of the refused node */
		struct timespec until; /* CLOCK_REALTIME, as br_cv's waits */
	} retries[FS_RETRIES_MAX];     /* guarded by br_mu */
	size_t nretries;	       /* guarded by br_mu */

	/* Kernel lookup counts by node id (root excluded). */
	pthread_mutex_t nodes_mu;
	struct fs_map nodes; /* guarded by nodes_mu */
	/* Each branch's epoch of file node ids (fs_node_kid), one entry per
	 * branch whose files were handed out. */
	struct fs_map epochs; /* guarded by nodes_mu */
	/* open_by_handle_at was refused (no CAP_DAC_READ_SEARCH): logged
	 * once, and fs_branch_flush does nothing after (fs.c). */
	atomic_bool flush_denied;
	/* Names read by fs_reset_prepare for fs_invalidate_tree, one list
	 * per branch being reset. */
	struct fs_old_names *old_names; /* guarded by nodes_mu */

	/* fs_branch_linked_busy's cache of each branch's links stored as
	 * absolute paths, with the store stamp they were read at
	 * (fs_link.c). */
	struct fs_links_cache {
		pthread_mutex_t mu;
		uint64_t pass; /* guarded by mu, as the rest */
		struct fs_links_ent **b;
		size_t nb; /* power of two, or 0 */
		size_t n;
	} links;
};

/* A node the kernel holds and the generation it was handed out with
 * (fs_branch_flush). */
struct fs_node_gen {
	uint64_t nodeid;
	uint32_t gen;
};

/* Directory handle: a snapshot of the listing taken at opendir, so that
 * readdir offsets stay stable.  Entry i is at offset i + 1. */
struct fs_dir {
	size_t n;
	/* A readdir was answered since the listing was taken: one at
	 * offset 0 is then a rewind, and takes a new listing. */
	bool read;
	/* The directory's mtime and ctime, read just before the listing
	 * (stamped): while they are unchanged, every entry still leads to
	 * its node, and readdirplus need not look each one up again. */
	bool stamped;
	struct timespec mtime, ctime;
	struct fs_dir_ent {
		uint64_t nodeid;
		uint32_t mode; /* S_IF* type bits */
		char *name;
	} * ents;
};

/* ---- fs_map.c ---- */
struct fs_map_ent *fs_map_find(struct fs_map *m, uint64_t key);
/* Find or add (count 0, flags 0).  NULL on -ENOMEM. */
struct fs_map_ent *fs_map_get(struct fs_map *m, uint64_t key);
/* Remove key if present.  True if the table shrank with it (its bucket
 * array halved). */
bool fs_map_del(struct fs_map *m, uint64_t key);
void fs_map_release(struct fs_map *m);

/* ---- fs.c ---- */
void fs_log(struct fs *fs, int level, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
#define FS_ERR(fs, ...) fs_log((fs), STORE_LOG_ERR, __VA_ARGS__)
#define FS_WARN(fs, ...) fs_log((fs), STORE_LOG_WARN, __VA_ARGS__)
#define FS_INFO(fs, ...) fs_log((fs), STORE_LOG_INFO, __VA_ARGS__)
#define FS_DEBUG(fs, ...)                                           \
	do {                                                        \
		if ((fs)->cfg.log.level >= STORE_LOG_DEBUG)         \
			fs_log((fs), STORE_LOG_DEBUG, __VA_ARGS__); \
	} while (0)

/* The generation of the files of a branch (fuse_entry_param.generation;
 * directories have 0, see fs_entry_fill): the low 32 bits of its fork
 * seq, new at every reset (the kernel keeps a 32-bit i_generation).  Read
 * it before the store reads of the entry it goes with, or hold an op of
 * the branch (fs_branch_op_begin).  0 for a branch that is gone. */
uint32_t fs_branch_gen(struct fs *fs, uint64_t br);
/* The node id the kernel gets for node nodeid (fs_nodeid form, no epoch)
 * of type mode handed out with generation gen (fs_branch_gen, read before
 * the store reads of the entry): nodeid itself for a directory, else with
 * the epoch of gen in it (a new one for a generation newer than any of the
 * branch handed out, FS_EPOCH_MAX + 1 resets before epochs repeat).  0
 * when gen is older than the two newest handed out (the entry was read
 * before two resets: read it again, or send none). */
uint64_t fs_node_kid(struct fs *fs, uint64_t nodeid, mode_t mode, uint32_t gen);
/* Forget the epochs of a deleted branch br (its ids are never used
 * again). */
void fs_epoch_drop(struct fs *fs, uint64_t br);
/* Count one kernel lookup of nodeid, handed out with generation gen;
 * mode: its type (S_IF* bits); tid: the thread of a LOOKUP request (0 for other
 * replies), for fs_file_open's retry rule.  false, and nothing counted,
 * when an entry with a newer generation of the node went out already (gen
 * was read before a reset that another request saw): the caller must not
 * send this entry (read it again, or send none). */
bool fs_node_ref(struct fs *fs, uint64_t nodeid, mode_t mode, uint32_t gen,
		 pid_t tid, uint32_t mark);
/* The FS_NODE_WAL_DIR or FS_NODE_WAL flag (fs_node_ref's mark) of the
 * entry name of type mode in directory parent, or 0. */
uint32_t fs_node_wal_mark(struct fs *fs, uint64_t parent, const char *name,
			  mode_t mode);
/* Add flag (enum fs_node_flags) to the entries the kernel holds of
 * nodeid's file, in every epoch (fs_op_rename's WAL mark). */
void fs_node_mark(struct fs *fs, uint64_t nodeid, uint32_t flag);
/* true when nodeid's entry has flag (enum fs_node_flags). */
bool fs_node_has(struct fs *fs, uint64_t nodeid, uint32_t flag);
/* Drop the kernel's cached attributes and pages (a symlink's target) of
 * every node of branch_id it knows whose lookup entry has all of flags
 * (enum fs_node_flags; 0: every node); *count is how many.  Takes no lock
 * of a directory, so a request (a rename of the branch) may call it
 * before it replies.  0, or the first error of a notification; -ENOMEM
 * after invalidating the nodes collected so far. */
int fs_invalidate_nodes(struct fs *fs, uint64_t branch_id, uint32_t flags,
			size_t *count);
void fs_node_unref(struct fs *fs, uint64_t nodeid, uint64_t n);
/* Count an open file (against its node and its branch); waits while a
 * change of the branch is underway.  0, -ENOMEM, or -ESTALE if the
 * kernel's inode of nodeid is from before a reset of the branch (its last
 * entry carried an older generation): the kernel then looks the path up
 * again (LOOKUP_REVAL), gets the new node id (epoch) and generation, and
 * opens a new inode instead of one whose cached size and pages are the
 * old tree's.  A refused OPEN of thread tid stays counted until tid opens
 * a file of the branch again (its retry) or FS_RETRY_MS pass, so that no
 * second reset makes the retry fail too. */
int fs_file_open(struct fs *fs, uint64_t nodeid, pid_t tid);
/* Count an open directory of a branch (opendir, or open(2) of one), as an
 * open file: a delete, rename or reset of the branch waits for it to be
 * closed (fs_file_close) or fails as busy (DESIGN rule 7).  A working
 * directory is no open file, as on ext4.  0 or -ENOMEM. */
int fs_dir_open(struct fs *fs, uint64_t nodeid);
void fs_file_close(struct fs *fs, uint64_t nodeid);
/* Whether nodeid has an open file (counted by fs_file_open). */
bool fs_file_is_open(struct fs *fs, uint64_t nodeid);
/* Bracket a change of a branch's tree that needs no open file (create,
 * mkdir, link, unlink, rmdir, rename, setattr, O_TRUNC): a delete, rename
 * or reset of the branch waits for it, and it waits for them (FS-4).
 * 0 or -ENOMEM; fs_branch_op_end only after 0. */
int fs_branch_op_begin(struct fs *fs, uint64_t br);
/* fs_branch_op_begin for a change of node nodeid, which does not wait for
 * a delete, rename or reset that waits for open files while nodeid is an
 * open file (the kernel writes times back at close(2) with SETATTR). */
int fs_branch_op_begin_node(struct fs *fs, uint64_t nodeid);
void fs_branch_op_end(struct fs *fs, uint64_t br);

/* ---- fs_uring.c: FUSE over io_uring, under libfuse ---- */
struct fs_uring;
/* State for the transport over the session's /dev/fuse fd; install
 * fs_uring_io with fuse_session_custom_io() before the loop runs.
 * -ENOMEM. */
int fs_uring_new(struct fs *fs, int fd, struct fs_uring **out);
/* Join the ring's threads, once the connection is gone (they stop on its
 * end, or within a second of this call).  Logs how many requests the ring
 * served.  Idempotent. */
void fs_uring_stop(struct fs_uring *u);
void fs_uring_free(struct fs_uring *u);
/* The rings (one file descriptor each) fs_uring_new sets up. */
unsigned fs_uring_fds_max(void);
extern const struct fuse_custom_io fs_uring_io;

/* ---- fs_ops.c ---- */
extern const struct fuse_lowlevel_ops fs_ops;

static inline uint64_t fs_branch_of(fuse_ino_t nodeid)
{
	return (uint64_t)nodeid >> FS_BRANCH_SHIFT;
}

/* nodeid without its epoch: the st_ino, and the key of fs->opens. */
static inline uint64_t fs_node_base(fuse_ino_t nodeid)
{
	return (uint64_t)nodeid & ~FS_EPOCH_MASK;
}

static inline uint64_t fs_ino_of(fuse_ino_t nodeid)
{
	return (uint64_t)nodeid & FS_INO_MASK;
}

/* ---- fs_root.c: operations on the synthetic branch root ---- */
void fs_root_stat(struct fs *fs, struct stat *st);
void fs_root_getattr(struct fs *fs, fuse_req_t req);
void fs_root_setattr(struct fs *fs, fuse_req_t req, const struct stat *attr,
		     int to_set);
void fs_root_lookup(struct fs *fs, fuse_req_t req, const char *name);
void fs_root_mkdir(struct fs *fs, fuse_req_t req, const char *name,
		   mode_t mode);
void fs_root_rmdir(struct fs *fs, fuse_req_t req, const char *name);
void fs_root_rename(struct fs *fs, fuse_req_t req, const char *name,
		    const char *newname, unsigned int flags);
int fs_root_list(struct fs *fs, struct fs_dir *d);
/* Sticky root: 0 if uid may remove or rename a branch created by
 * owner_uid (root, the root's owner or the creator; anyone while the
 * root is not sticky), else -EPERM.  Write permission on the root is the
 * kernel's to check (fs_root_may_remove for the control socket). */
int fs_root_sticky_check(struct fs *fs, uid_t uid, uid_t owner_uid);
/* The branch root's entry (for lookup and readdirplus). */
int fs_root_entry(struct fs *fs, const struct store_branch_info *bi,
		  struct fuse_entry_param *e);
void fs_root_touch(struct fs *fs);
/* One look at the processes for rule 7 (fs_probe_new, fs.c): the
 * Postgres processes and where they work, the mounts of our directories
 * made elsewhere, and, read at their first use, the branch list and the
 * links of every branch into the mount (fs_link.c). */
struct fs_probe_pg {
	long pid;
	dev_t dev; /* of its working directory */
	uint64_t ino;
};

struct fs_probe_mnt {
	uint64_t branch;
	long pid;    /* a process of its mount namespace; 0: ours */
	char *where; /* the mount point as that process sees it */
};

struct fs_probe_link {
	size_t branch; /* whose link: index in all */
	char *path;    /* where it is in that branch (pg_wal, pg_tblspc/N) */
	char *stored;  /* its target, MNT/... */
	const char *what;
};

/* The branch's data directories (fs_data_dirs) as the kernel reports
 * them: our mount's st_dev and their node ids (rule 1). */
struct fs_where {
	bool known; /* false: the mount point is not our root (mounted over) */
	dev_t dev;
	size_t n;
	uint64_t ino[STORE_DROP_DIRS];
};

struct fs_probe {
	bool mounts;	       /* the mounts were looked for */
	struct fs_where where; /* our mount point (no directories) */
	struct fs_probe_pg *pg;
	size_t npg, pgcap;
	struct fs_probe_mnt *mnt;
	size_t nmnt, mntcap;
	/* fs_probe_branches' */
	struct store_branch_info *all;
	size_t nall;
	int list_rc;
	bool listed;
	/* fs_branch_linked_busy's */
	struct fs_probe_link *links;
	size_t nlinks, linkscap;
	int links_rc;
	bool linked;
};

/* 0: no postmaster runs on the branch, no file in it is open, and it is
 * now held (FS_BR_CHANGING: call fs_branch_end_change).  -EBUSY with a
 * reason in why otherwise, or -ENOMEM (-EMFILE, -ENFILE) with why when it
 * could not be told (fs_probe_for).  Defined in fs.c. */
int fs_branch_quiesce(struct fs *fs, const struct store_branch_info *bi,
		      char *why, size_t whylen);
/* Rule 7 apart from open files, against one look at the processes (p):
 * no server runs on the branch (fs_branch_server_in), none keeps its WAL
 * or a tablespace in it (fs_branch_linked_busy), and no directory of it
 * is mounted elsewhere.  0, or -EBUSY or -ENOMEM with why set.  Defined
 * in fs.c, as the rest of the probe's functions. */
int fs_branch_check(struct fs *fs, const struct store_branch_info *bi,
		    struct fs_probe *p, char *why, size_t whylen);
/* fs_probe_new (mounts false: the Postgres processes only, and
 * fs_branch_check does not look for mounts), with why set on failure ("cannot tell whether branch
 * 'NAME' is in use: ..."). */
int fs_probe_for(struct fs *fs, const struct store_branch_info *bi, bool mounts,
		 struct fs_probe **out, char *why, size_t whylen);
/* The branch list (store_branch_list), read once per probe at the first
 * call: 0 and *all (n of them, borrowed from p), or the list's error. */
int fs_probe_branches(struct fs *fs, struct fs_probe *p,
		      const struct store_branch_info **all, size_t *n);
/* v (n used of *cap elements of size bytes) with room for one more: v,
 * a larger copy (*cap updated), or NULL when out of memory (v kept). */
void *fs_probe_grow(void *v, size_t *cap, size_t n, size_t size);
/* fs_branch_server over the Postgres processes p saw. */
long fs_branch_server_in(struct fs *fs, const struct store_branch_info *bi,
			 long pid, const struct fs_probe *p);
/* -EBUSY with why when the live server of another branch keeps its WAL
 * or a tablespace in branch bi (its pg_wal or a pg_tblspc link, in any of
 * its data directories, stored as an absolute path into MNT/NAME: initdb
 * --waldir, CREATE TABLESPACE):
 * Postgres holds no file open there while idle, so the open-file rule
 * alone let such a branch go.  0 otherwise (branches whose links cannot
 * be read are logged and not counted), -ENOMEM.  Defined in fs_link.c. */
int fs_branch_linked_busy(struct fs *fs, const struct store_branch_info *bi,
			  struct fs_probe *p, char *why, size_t whylen);
/* The pid on the first line of the branch's postmaster.pid, or 0. */
pid_t fs_postmaster_pid(struct fs *fs, const struct store_branch_info *bi);
size_t fs_data_dirs(struct fs *fs, const struct store_branch_info *bi,
		    uint64_t dirs[STORE_DROP_DIRS]);
/* Set up and free fs->links. */
void fs_links_init(struct fs *fs);
void fs_links_release(struct fs *fs);

/* ---- fs_link.c: symlinks into their own branch ---- */
/* The form in which a symlink made in branch br with this target is
 * stored, into out (outsz bytes).  0 or -ENAMETOOLONG. */
int fs_link_encode(struct fs *fs, uint64_t br, const char *target, char *out,
		   size_t outsz);
/* A stored target as branch br reads it, into out; its length, or
 * -ENAMETOOLONG, -ENOENT (branch gone). */
ssize_t fs_link_render(struct fs *fs, uint64_t br, const char *stored,
		       char *out, size_t outsz);
/* The target of symlink ino of branch br as the branch reads it (the
 * store's errors, as for store_readlink, and fs_link_render's). */
ssize_t fs_link_read(struct fs *fs, uint64_t br, uint64_t ino, char *out,
		     size_t outsz);
/* A symlink's st_size is the length of the target as read: fix a->size
 * (a no-op for other types). */
void fs_link_attr(struct fs *fs, uint64_t nodeid, struct store_attr *a);

/* ---- helpers shared by fs_ops.c and fs_root.c ---- */
void fs_attr_to_stat(uint64_t nodeid, const struct store_attr *a,
		     struct stat *st);
/* gen: fs_branch_gen() of nodeid's branch (0 for a directory). */
void fs_entry_fill(struct fuse_entry_param *e, uint64_t nodeid, uint32_t gen,
		   const struct store_attr *a);
struct timespec fs_now(void);
/* The kernel's own clock for times it sets (see fs.c): a new inode's. */
struct timespec fs_now_coarse(void);
void fs_dir_free(struct fs_dir *d);

#endif /* BRANCHFS_FS_INT_H */
