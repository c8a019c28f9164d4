/* SPDX-License-Identifier: MIT */
/*
 * fs.h - public API of the branchfs FUSE layer.
 *
 * struct fs serves one mount: the mount point is a synthetic directory
 * (the "branch root") whose entries are the store's branches, and each
 * branch directory is that branch's tree.  fs/ translates FUSE low-level
 * requests into store calls and keeps only what the kernel needs between
 * requests: open handle counts per branch, directory listing snapshots and
 * the kernel's lookup counts (for cache invalidation).  It makes no policy
 * decisions beyond the Postgres rules of DESIGN.md (distinct st_ino per
 * branch, no postmaster.pid in a new branch, busy branches) and the one
 * that follows from them for links (fs_link.c): a branch writes no file
 * of its parent's, so a tablespace or pg_wal link into the branch follows
 * the branch and one out of it refuses the branch.
 *
 * Threading: every function is thread-safe unless noted.  fs_run() runs the
 * multi-threaded FUSE loop in the calling thread.
 */
#ifndef BRANCHFS_FS_H
#define BRANCHFS_FS_H

#include <signal.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "store/store.h"

struct fs;

struct fs_config {
	/* Borrowed: must outlive the struct fs. */
	struct store *store;
	/* Parent of branches made by mkdir at the branch root.  Copied;
	 * NULL means "main". */
	const char *default_parent;
	/* Initial attributes of the branch root (kept in memory only). */
	uid_t root_uid;
	gid_t root_gid;
	mode_t root_mode; /* permission bits; 0 means 0755 */
	/* Trace every request (libfuse -d) and log at debug level. */
	bool debug;
	/* Log sink for fs/ messages (copied). */
	struct store_log log;
	/* Called once, from a FUSE worker thread, when the kernel's INIT
	 * request has been answered: the mount is live.  May be NULL. */
	void (*ready)(void *ctx);
	void *ready_ctx;
	/* Called by mkdir at the branch root right before a branch of
	 * parent's head is made (after the name was checked), from a FUSE
	 * worker thread with no fs or store lock held.  It may block: the
	 * mkdir waits for it, while other workers keep serving (branchd's
	 * pg_checkpoint policy checkpoints the parent's server here).
	 * parent is borrowed for the call.  May be NULL. */
	void (*before_branch)(void *ctx, const struct store_branch_info *parent,
			      const char *name);
	void *before_branch_ctx;
	/* Serve requests through FUSE over io_uring when the kernel offers
	 * it (Linux 6.14+ with the fuse module's enable_uring on); through
	 * /dev/fuse otherwise. */
	bool io_uring;
	/* For tests: fs_mount waits this long between its check of the
	 * mount point and the mount (0: no wait), to widen the window that
	 * a second daemon on the same mount point could race into. */
	unsigned mount_delay_ms;
};

/* The most file descriptors a mount with cfg may hold at once: one
 * /dev/fuse clone per FUSE worker thread and the session's, and with
 * io_uring one ring per entry (16 per possible CPU).  Open files of the
 * mount take none.  For the caller's budget of RLIMIT_NOFILE. */
unsigned fs_fds_max(const struct fs_config *cfg);

/* Allocate a filesystem over cfg->store.  cfg is copied.  -ENOMEM,
 * -EINVAL (no store).  On success *out is owned by the caller, freed with
 * fs_free(). */
int fs_new(const struct fs_config *cfg, struct fs **out);

/* 0 if mountpoint is an existing directory with nothing mounted on it.
 * Else -ENOENT, -ENOTDIR, -EBUSY (already a mount point) or another
 * negative errno, with a lowercase reason in why (may be NULL). */
int fs_check_mountpoint(const char *mountpoint, char *why, size_t whylen);

/* Mount at mountpoint (borrowed, copied) with default_permissions and,
 * if allow_other, allow_other.  Errors: -ENOENT/-ENOTDIR mount point
 * missing or not a directory, -EBUSY something is already mounted there,
 * -EIO libfuse failed (its reason is logged).  Call once. */
int fs_mount(struct fs *fs, const char *mountpoint, bool allow_other);

/* What a user whose mount would fail should do, for the causes libfuse's
 * own messages do not explain (branchd asks before it makes a store):
 * for any user, dev (the FUSE device, "/dev/fuse") missing, or no way to
 * CAP_SYS_ADMIN (not in the effective set, and not to be had through the
 * setuid fusermount3: outside the bounding set, or no_new_privs set);
 * for a user other than root, dev not readable and writable by the
 * caller, or allow_other without an uncommented "user_allow_other" line
 * in conf ("/etc/fuse.conf").  Writes one lowercase sentence to buf and
 * returns true, or returns false (no hint). */
bool fs_mount_hint(char *buf, size_t bufsz, uid_t euid, bool allow_other,
		   const char *dev, const char *conf);

/* The signal fs_request_exit() sends the thread in fs_run() to wake it.
 * fs_run() installs a handler for it that does nothing (without
 * SA_RESTART: a call it interrupts fails with EINTR) and unblocks it in
 * its own thread and its workers, so it no longer ends the process. */
#define FS_WAKE_SIGNAL SIGUSR2

/* Serve requests with a multi-threaded loop until the filesystem is
 * unmounted (fusermount3 -u, umount, fs_request_unmount()) or
 * fs_request_exit() is called.  Returns 0 or a negative errno. */
int fs_run(struct fs *fs);

/* Ask the kernel to unmount, letting the running loop write back every
 * dirty page first; fs_run() then returns.  The mount is looked up by its
 * device, where it is now (a parent of the mount point may have been
 * renamed).  If the mount is in use (an open file, a working directory: a
 * Postgres server on a branch) it is left in place, as umount(8) leaves
 * it, and served on: -EBUSY, logged with what to do.  (A lazy detach
 * would keep open files working but break every absolute path into the
 * mount: Postgres opens global/pg_control by one at each checkpoint, and
 * PANICs.)  -EBUSY too, logged, if the mount was detached (umount -l)
 * but is still in use: the loop ends when it is let go.  Any other
 * failure (fusermount3 missing, or refusing) is logged with its reason
 * (fusermount3's own line) and returned as a negative errno other than
 * -EBUSY: trying again would fail again.  Async-signal-unsafe; call from
 * an ordinary thread. */
int fs_request_unmount(struct fs *fs);

/* Make fs_run() return soon without waiting for the kernel (data still
 * in the kernel's page cache may be lost): the connection is aborted
 * where that is possible (fs.c: fs_abort_conn) and fs_run()'s thread is
 * woken with FS_WAKE_SIGNAL.  Thread-safe; may take up to 0.2 s. */
void fs_request_exit(struct fs *fs);

/* Detach the mount if it is still there at its mount point, closing the
 * connection (a request still waiting on it, e.g. an unmount's syncfs in
 * another thread, then fails).  Logs an error if the mount is left
 * there, dead.  Idempotent.  Call after fs_run() returned. */
void fs_unmount(struct fs *fs);

/* Free everything; unmounts first if needed.  NULL is a no-op.  The store
 * is not closed. */
void fs_free(struct fs *fs);

/* Control plane support.  A branch change made behind the kernel's back
 * (delete, reset, rename through branchctl) goes:
 *   fs_branch_begin_change() -> store_branch_*() -> fs_branch_end_change()
 *   -> fs_invalidate_branch().
 * begin_change fails with -EBUSY when a postmaster runs on the branch (a
 * live pid in its postmaster.pid working in the branch, or any postgres
 * process working there: fs.c), files in it are open, another branch's
 * running server keeps its WAL or a tablespace there, or it or a
 * directory of it is mounted elsewhere (a bind mount, in any mount
 * namespace whose processes /proc shows us), and then writes
 * a lowercase reason (no final period) into why (may be NULL); it fails
 * with -ENOMEM (-EMFILE, -ENFILE), and a reason, when it could not look
 * at every process (fail closed: never changed unchecked).  It waits
 * (up to 1.5 s) for open files to close and for changes of the
 * branch's tree already in flight (create, link, unlink, rename, setattr)
 * to finish; new changes wait meanwhile.  On success new opens and
 * changes in the branch wait until end_change. */
int fs_branch_begin_change(struct fs *fs, uint64_t branch_id, char *why,
			   size_t whylen);
void fs_branch_end_change(struct fs *fs, uint64_t branch_id);

/* Before a branch of branch_id's head is made (mkdir does it itself;
 * the control plane's create and reset call it after the pg_checkpoint
 * policy): write back what the kernel holds dirty of the branch's files
 * (the writeback cache: files written and still open, shared mappings),
 * so that the new branch has every write that returned before.  Each open
 * file of the branch is opened by handle and closed, which waits for its
 * write-back; nothing when no file of it is open.  Needs
 * CAP_DAC_READ_SEARCH (without it: logged once, nothing written back).
 * 0, or a negative errno, logged (the branch may then be made without
 * those writes, as a power cut would leave it).  Call with no fs request
 * of this mount waiting on the caller other than a mkdir at the branch
 * root. */
int fs_branch_flush(struct fs *fs, uint64_t branch_id);

/* Drop the kernel's cached entry for the branch (under old_name, the name
 * it had before the change; NULL means its current name), the branch
 * root's attributes and the attributes and page cache of every node of the
 * branch the kernel knows.  Call with no fs request of this mount waiting
 * on the caller.  Returns 0 or a negative errno (-ENOENT is not returned
 * for nodes the kernel has already forgotten). */
int fs_invalidate_branch(struct fs *fs, uint64_t branch_id,
			 const char *old_name);

/* After a reset, drop the kernel's entries for every name in every
 * directory of the branch it knows, so that a path walk after the reset
 * looks each name up again instead of going on with a dentry, and the
 * inode behind it, from before the reset: one held by a process (an
 * O_PATH descriptor, a stat in flight) keeps its dentry past the
 * invalidation of the branch's own entry, and an open through it met
 * ESTALE, or EIO once another lookup had made its inode bad.  Reads each
 * such directory's listing at the branch head.  Same call rules and
 * returns as fs_invalidate_branch. */
int fs_invalidate_tree(struct fs *fs, uint64_t branch_id);

/* Before a reset, with the branch held (fs_branch_begin_change): read the
 * names in every directory of the branch the kernel knows, as they are
 * before the reset, for the next fs_invalidate_tree of the branch to drop
 * too.  A name of the old tree only (a hard link or a rename made in the
 * branch) whose dentry was in use while the reset's invalidation ran (an
 * O_PATH descriptor, a call in flight) was not dropped, and stat(2)
 * through it found the file, in the reset tree under another name, for up
 * to the entry timeout.  0, or -ENOMEM (then only the reset tree's names
 * are dropped).  Names kept for a reset that did not happen are replaced
 * by the next call for the branch, dropped when it is deleted, and freed
 * by fs_free. */
int fs_reset_prepare(struct fs *fs, uint64_t branch_id);

/* The tablespace rule (fs_link.c): 0 if a branch of parent as of seq
 * (STORE_SEQ_LATEST: its head) may be made; -EXDEV, with a lowercase
 * reason in why, when a link in the parent's pg_tblspc, or its pg_wal
 * link, leads out of its tree, so that the branch's server would write
 * the parent's tablespace files or WAL (read in each of its data
 * directories: the root, or those below it that store_drop_dirs finds).  A parent that cannot be read is
 * logged and allowed.  mkdir at the branch root applies it itself; the
 * control plane calls it before create and reset.  Both apply it again
 * to a new branch (seq: its fork seq) and drop the branch when a link
 * made meanwhile leads out. */
int fs_branch_check_fork(struct fs *fs, const struct store_branch_info *parent,
			 uint64_t seq, char *why, size_t whylen);

/* The pid, as seen here, of a process of the server running on branch bi
 * (its postmaster.pid names pid): pid itself when its working directory
 * is the branch root, else any postgres process working there, such as
 * the postmaster of a container that writes a pid of its own namespace,
 * else pid if its working directory cannot be read; 0 when none runs
 * there; -1 when it cannot tell (the mount point cannot be read). */
long fs_branch_server(struct fs *fs, const struct store_branch_info *bi,
		      long pid);

/* Root entries a new or reset branch does not carry over from its parent
 * (DESIGN rule 2, store_branch_create_args.drop_names): postmaster.pid
 * and postmaster.opts, and the sockets and socket lock files of a server
 * whose unix_socket_directories is its data directory (.s.PGSQL.PORT and
 * .s.PGSQL.PORT.lock): the lock names the parent's live postmaster, and a
 * server on the branch with the same port refused to start. */
extern const char *const fs_pg_drop_names[];
/* Where those names are dropped, and where rule 7 and the pg_checkpoint
 * policy look for postmaster.pid (store_config.drop_marker and
 * drop_depth): the branch root, or when it is no data directory, the data
 * directories (holding PG_VERSION) at most two levels below it, as in a
 * branch mounted as /var/lib/postgresql (15/main of Debian's layout,
 * 18/docker of the official Postgres 18+ images). */
#define FS_PG_DATA_MARKER "PG_VERSION"
#define FS_PG_DATA_DEPTH 2
/* The directory of a data directory's WAL segments.  Its files are opened
 * for writing in direct I/O (fs_op_open): a commit's write goes to the
 * daemon at write(2), instead of waiting at fdatasync behind the
 * writeback of the data files, which the kernel queues in one line. */
#define FS_PG_WAL_DIR "pg_wal"

/* ---- for the control plane (fs_ctl.c) ---- */

/* One look at every process, for rule 7 over many branches (a listing):
 * the Postgres processes and where they work, and the mounts of the
 * filesystem's directories made elsewhere, read in one pass over /proc.
 * 0 and *out (owned by the caller, freed with fs_probe_free; it holds
 * what /proc showed at the call), or -ENOMEM (-EMFILE, -ENFILE): out of
 * memory or file descriptors before every process was looked at. */
struct fs_probe;
int fs_probe_new(struct fs *fs, struct fs_probe **out);
void fs_probe_free(struct fs_probe *p); /* NULL is a no-op */

/* Whether a delete, rename or reset of the branch would be refused as
 * busy (fs_branch_begin_change's rules, without waiting for open files
 * to close), as a probe that changes and waits for nothing: 0, -EBUSY
 * with a reason in why (a running postmaster, a server keeping its WAL
 * or a tablespace there, a mount elsewhere, open files), -ENOENT unknown
 * branch, or -ENOMEM (-EMFILE, -ENFILE) with a reason in why when it
 * cannot tell (a delete would be refused too).  p: from fs_probe_new
 * (borrowed), or NULL to look at the processes for this call. */
int fs_branch_busy(struct fs *fs, struct fs_probe *p, uint64_t branch_id,
		   char *why, size_t whylen);
/* true while any file of the branch is open. */
bool fs_branch_has_open(struct fs *fs, uint64_t branch_id);
/* true while a file handle on inode ino of the branch is open (for GC of
 * unlinked inodes: store_gc_opts.in_use). */
bool fs_inode_in_use(struct fs *fs, uint64_t branch_id, uint64_t ino);
/* 0 if uid, with primary group gid and the ngroups supplementary groups,
 * may create entries in the branch root (write and search permission by
 * its mode and owner, as the kernel decides for mkdir), else -EACCES. */
int fs_root_may_create(struct fs *fs, uid_t uid, gid_t gid, const gid_t *groups,
		       size_t ngroups);
/* 0 if uid (gid, groups as above) may remove or rename a branch created
 * by owner_uid, by the rule rmdir(2) and rename(2) follow in the branch
 * root: write and search permission on it (else -EACCES) and, when it is
 * sticky, being root, the root's owner or the branch's creator (else
 * -EPERM).  The control socket's delete, rename and reset use it, so that
 * they allow exactly what rmdir and mv allow. */
int fs_root_may_remove(struct fs *fs, uid_t uid, gid_t gid, const gid_t *groups,
		       size_t ngroups, uid_t owner_uid);
/* The parent of branches made by mkdir.  set: -EINVAL/-ENAMETOOLONG bad
 * name, -ENOENT no branch has it (checked under the lock that
 * fs_branch_rename holds, so that a rename racing it leaves the default
 * as one of the two orders would; a delete may still leave the default
 * naming no branch, as a later delete does), -ENOMEM, or the store's
 * errors. */
void fs_get_default_parent(struct fs *fs, char *buf, size_t bufsz);
int fs_set_default_parent(struct fs *fs, const char *name);
/* Rename branch id from old_name to new_name (store_branch_rename's
 * errors); if it is the default parent, the default follows it, in memory
 * and, in the same store batch as the rename, in the store. */
int fs_branch_rename(struct fs *fs, uint64_t id, const char *old_name,
		     const char *new_name);

/* Route libfuse's own messages to log (copied).  libfuse has one global
 * log hook, so this is process-wide; call it before fs_mount(). */
void fs_set_lib_log(const struct store_log *log);

/* The node id (and st_ino) fs reports for inode ino of a branch. */
static inline uint64_t fs_nodeid(uint64_t branch_id, uint64_t ino)
{
	return (branch_id << 40) | ino;
}

#endif /* BRANCHFS_FS_H */
