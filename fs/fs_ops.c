/* SPDX-License-Identifier: MIT */
/*
 * fs_ops.c - FUSE low-level operations inside a branch, and the dispatch
 * of requests on the synthetic branch root to fs_root.c.
 *
 * Each handler decodes (branch, ino) from the node id, calls the store and
 * sends exactly one reply; store errors go to the kernel unchanged
 * (fuse_reply_err(req, -rc)).  Reads always see the branch head
 * (STORE_SEQ_LATEST).  Permission checks are the kernel's
 * (default_permissions); fs/ only decides the owner of new inodes (the
 * caller's uid and gid, or the parent's gid under a setgid directory).
 *
 * Deliberately not implemented, so that the kernel does the work: access
 * (default_permissions), getlk/setlk/flock (the kernel then keeps POSIX and
 * flock locks locally, which is right for one mount), xattrs,
 * copy_file_range and lseek (generic fallbacks).  flush is not implemented
 * either: with the writeback cache the kernel writes a file's dirty pages
 * back on close(2) before it would send FLUSH, and after the first ENOSYS
 * it stops sending FLUSH, which saves a round trip per close (Postgres'
 * crash recovery opens and closes every file of PGDATA twice).
 *
 * Directory listings are snapshots taken at opendir (stable offsets while
 * entries come and go), and again at a rewind (a readdir at offset 0 after
 * one was answered: rewinddir must show the directory as it is now; the
 * kernel serializes readdir on one open directory).  They include "." and ".."; ".." reports the mount
 * root's inode (1), since a directory's parent is not known from its node
 * id.  readdirplus returns full entries (counted as lookups) for every
 * other name that still leads to its node when the readdir is served, and
 * bare ones (no dentry) for names renamed or unlinked since the snapshot.
 *
 * Open files: open/create count the file against its node and branch
 * (fs_file_open) and release uncounts it; if the open reply fails (the
 * request was interrupted) the kernel will never send release, so the
 * count is undone at once.  opendir and releasedir do the same for a
 * directory of a branch (fs_dir_open), so that an open directory makes
 * its branch busy as an open file does (DESIGN rule 7).
 */
#include <errno.h>
#include <fcntl.h>
#include <linux/falloc.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/statvfs.h>

#include "fs_int.h"

#define FS_RENAME_NOREPLACE (1u << 0) /* RENAME_NOREPLACE */
#define FS_RENAME_EXCHANGE (1u << 1)  /* RENAME_EXCHANGE */
/* Reads of one lookup overtaken by resets before it gives up (ESTALE,
 * which the kernel's path walk retries once with a fresh lookup). */
#define FS_LOOKUP_TRIES 4

static struct fs *fs_of(fuse_req_t req)
{
	return fuse_req_userdata(req);
}

void fs_attr_to_stat(uint64_t nodeid, const struct store_attr *a,
		     struct stat *st)
{
	memset(st, 0, sizeof(*st));
	st->st_ino = fs_node_base(nodeid);
	st->st_mode = a->mode;
	st->st_nlink = a->nlink;
	st->st_uid = a->uid;
	st->st_gid = a->gid;
	st->st_rdev = a->rdev;
	st->st_size = (off_t)a->size;
	st->st_blksize = 65536;
	st->st_blocks = (blkcnt_t)((a->size + 511) / 512);
	st->st_atim = a->atime;
	st->st_mtim = a->mtime;
	st->st_ctim = a->ctime;
}

void fs_entry_fill(struct fuse_entry_param *e, uint64_t nodeid, uint32_t gen,
		   const struct store_attr *a)
{
	memset(e, 0, sizeof(*e));
	e->ino = nodeid;
	/* A directory keeps generation 0 across resets: the kernel's inode
	 * of one a process still holds (its working directory) stays usable
	 * and looks names up in the reset tree, while a new generation
	 * would make the kernel mark it bad (EIO).  Only a file's inode
	 * caches what a reset invalidates for good (size, pages). */
	e->generation = S_ISDIR(a->mode) ? 0 : gen;
	e->attr_timeout = FS_ATTR_TIMEOUT;
	e->entry_timeout = FS_ENTRY_TIMEOUT;
	fs_attr_to_stat(nodeid, a, &e->attr);
}

static void fs_dir_clear(struct fs_dir *d)
{
	size_t i;

	for (i = 0; i < d->n; i++)
		free(d->ents[i].name);
	free(d->ents);
	d->ents = NULL;
	d->n = 0;
	d->read = false;
}

void fs_dir_free(struct fs_dir *d)
{
	if (!d)
		return;
	fs_dir_clear(d);
	free(d);
}

/* Split a node id of a branch node.  -ENOENT for the root or garbage. */
static int fs_split(fuse_ino_t nodeid, uint64_t *br, uint64_t *ino)
{
	*br = fs_branch_of(nodeid);
	*ino = fs_ino_of(nodeid);
	if (*br == 0 || *br > STORE_BRANCH_ID_MAX || *ino == 0)
		return -ENOENT;
	return 0;
}

/* With the writeback cache the kernel keeps a file's size itself but
 * takes st_blocks from us, and we see its data only when it writes it
 * back: a file written and still open (by Postgres, say) read as a
 * non-zero size in 0 blocks, which GNU tar --sparse takes for a file
 * that is all hole: it archived zeros without reading the file.  An open
 * regular file therefore reports at least one block (an empty one too;
 * ext4 counts the blocks its unwritten data reserves).  After the last
 * close the kernel has written the data back and asks again (fuse_flush
 * drops its cached st_blocks). */
static void fs_blocks_of_open(struct fs *fs, uint64_t nodeid, struct stat *st)
{
	if (S_ISREG(st->st_mode) && st->st_blocks == 0 &&
	    fs_file_is_open(fs, nodeid))
		st->st_blocks = 1;
}

/* nodeid: the node's fs_nodeid() (fs_node_kid adds its epoch); gen:
 * fs_branch_gen() of its branch, read before a was.  0, or -ESTALE and no
 * reply when an entry of a newer generation went out already
 * (fs_node_kid, fs_node_ref): possible only without an op of the branch
 * held. */
static int fs_reply_entry(struct fs *fs, fuse_req_t req, uint64_t nodeid,
			  uint32_t gen, const struct store_attr *a,
			  uint32_t mark)
{
	struct fuse_entry_param e;
	struct store_attr fixed = *a;

	nodeid = fs_node_kid(fs, fs_node_base(nodeid), a->mode, gen);
	if (!nodeid)
		return -ESTALE;
	fs_link_attr(fs, nodeid, &fixed);
	fs_entry_fill(&e, nodeid, gen, &fixed);
	fs_blocks_of_open(fs, nodeid, &e.attr);
	if (!fs_node_ref(fs, nodeid, a->mode, (uint32_t)e.generation,
			 fuse_req_ctx(req)->pid, mark))
		return -ESTALE;
	if (fuse_reply_entry(req, &e) != 0)
		fs_node_unref(fs, nodeid, 1);
	return 0;
}

/* fs_reply_entry for a request that holds an op of the branch, which no
 * reset can overtake. */
static void fs_reply_new_entry(struct fs *fs, fuse_req_t req, uint64_t nodeid,
			       const struct store_attr *a, uint64_t parent,
			       const char *name)
{
	int rc = fs_reply_entry(fs, req, nodeid,
				fs_branch_gen(fs, fs_branch_of(nodeid)), a,
				fs_node_wal_mark(fs, parent, name, a->mode));

	if (rc)
		fuse_reply_err(req, -rc);
}

static void fs_reply_attr(struct fs *fs, fuse_req_t req, uint64_t nodeid,
			  const struct store_attr *a)
{
	struct store_attr fixed = *a;
	struct stat st;

	fs_link_attr(fs, nodeid, &fixed);
	fs_attr_to_stat(nodeid, &fixed, &st);
	fs_blocks_of_open(fs, nodeid, &st);
	fuse_reply_attr(req, &st, FS_ATTR_TIMEOUT);
}

static void fs_op_init(void *userdata, struct fuse_conn_info *conn)
{
	struct fs *fs = userdata;
	unsigned want_on = FUSE_CAP_WRITEBACK_CACHE | FUSE_CAP_ATOMIC_O_TRUNC |
			   FUSE_CAP_ASYNC_READ | FUSE_CAP_PARALLEL_DIROPS |
			   FUSE_CAP_CACHE_SYMLINKS | FUSE_CAP_AUTO_INVAL_DATA |
			   FUSE_CAP_READDIRPLUS | FUSE_CAP_READDIRPLUS_AUTO |
			   FUSE_CAP_ASYNC_DIO;

	conn->want |= conn->capable & want_on;
	/* The kernel applies the umask, kills suid/sgid on write and keeps
	 * locks; no splice. */
	conn->want &=
		~(unsigned)(FUSE_CAP_DONT_MASK | FUSE_CAP_HANDLE_KILLPRIV |
			    FUSE_CAP_SPLICE_READ | FUSE_CAP_SPLICE_WRITE |
			    FUSE_CAP_SPLICE_MOVE | FUSE_CAP_POSIX_LOCKS |
			    FUSE_CAP_FLOCK_LOCKS | FUSE_CAP_POSIX_ACL |
			    FUSE_CAP_EXPORT_SUPPORT);
	conn->max_write = FS_MAX_WRITE;
	conn->max_readahead = FS_MAX_WRITE;
	conn->max_background = 64;
	conn->congestion_threshold = 48;
	conn->time_gran = 1;
	FS_INFO(fs, "fuse protocol %u.%u, want 0x%x of capable 0x%x",
		conn->proto_major, conn->proto_minor, conn->want,
		conn->capable);
	if (!(conn->capable & FUSE_CAP_WRITEBACK_CACHE))
		FS_WARN(fs, "the kernel has no writeback cache: slower writes");
	if (fs->cfg.ready && !atomic_exchange(&fs->ready_done, true))
		fs->cfg.ready(fs->cfg.ready_ctx);
}

static void fs_op_lookup(fuse_req_t req, fuse_ino_t parent, const char *name)
{
	struct fs *fs = fs_of(req);
	struct store_attr a;
	uint64_t br, dir, ino;
	uint32_t gen;
	int rc, tries;

	if (parent == FUSE_ROOT_ID) {
		fs_root_lookup(fs, req, name);
		return;
	}
	rc = fs_split(parent, &br, &dir);
	if (rc)
		goto out_err;
	/* Read again when a reset came between the generation and the reads
	 * of the entry, or when another lookup handed out the node after a
	 * reset that this one read before (fs_node_ref): its entry would be
	 * the old tree's, sent after the new one. */
	for (tries = 0;; tries++) {
		gen = fs_branch_gen(fs, br);
		rc = store_lookup(fs->store, br, STORE_SEQ_LATEST, dir, name,
				  &ino);
		if (rc == 0)
			rc = store_getattr(fs->store, br, STORE_SEQ_LATEST, ino,
					   &a);
		if (rc == 0 && fs_branch_gen(fs, br) != gen)
			rc = -ESTALE;
		if (rc == 0)
			rc = fs_reply_entry(
				fs, req, fs_nodeid(br, ino), gen, &a,
				fs_node_wal_mark(fs, parent, name, a.mode));
		if (rc != -ESTALE || tries == FS_LOOKUP_TRIES)
			break;
	}
	if (rc == 0)
		return;
out_err:
	fuse_reply_err(req, -rc);
}

static void fs_op_forget(fuse_req_t req, fuse_ino_t ino, uint64_t nlookup)
{
	fs_node_unref(fs_of(req), ino, nlookup);
	fuse_reply_none(req);
}

static void fs_op_forget_multi(fuse_req_t req, size_t count,
			       struct fuse_forget_data *forgets)
{
	struct fs *fs = fs_of(req);
	size_t i;

	for (i = 0; i < count; i++)
		fs_node_unref(fs, forgets[i].ino, forgets[i].nlookup);
	fuse_reply_none(req);
}

static void fs_op_getattr(fuse_req_t req, fuse_ino_t nodeid,
			  struct fuse_file_info *fi)
{
	struct fs *fs = fs_of(req);
	struct store_attr a;
	uint64_t br, ino;
	int rc;

	(void)fi;
	if (nodeid == FUSE_ROOT_ID) {
		fs_root_getattr(fs, req);
		return;
	}
	rc = fs_split(nodeid, &br, &ino);
	if (rc == 0)
		rc = store_getattr(fs->store, br, STORE_SEQ_LATEST, ino, &a);
	if (rc) {
		fuse_reply_err(req, -rc);
		return;
	}
	fs_reply_attr(fs, req, nodeid, &a);
}

static void fs_op_setattr(fuse_req_t req, fuse_ino_t nodeid, struct stat *attr,
			  int to_set, struct fuse_file_info *fi)
{
	struct fs *fs = fs_of(req);
	struct timespec now = fs_now();
	struct store_attr sa, out;
	unsigned mask = 0;
	uint64_t br, ino;
	int rc;

	(void)fi;
	if (nodeid == FUSE_ROOT_ID) {
		fs_root_setattr(fs, req, attr, to_set);
		return;
	}
	rc = fs_split(nodeid, &br, &ino);
	if (rc)
		goto out_err;
	rc = fs_branch_op_begin_node(fs, nodeid);
	if (rc)
		goto out_err;
	memset(&sa, 0, sizeof(sa));
	if (to_set & FUSE_SET_ATTR_MODE) {
		mask |= STORE_SET_MODE;
		sa.mode = attr->st_mode;
	}
	if (to_set & FUSE_SET_ATTR_UID) {
		mask |= STORE_SET_UID;
		sa.uid = attr->st_uid;
	}
	if (to_set & FUSE_SET_ATTR_GID) {
		mask |= STORE_SET_GID;
		sa.gid = attr->st_gid;
	}
	if (to_set & FUSE_SET_ATTR_SIZE) {
		if (attr->st_size < 0) {
			rc = -EINVAL;
			goto out_end;
		}
		mask |= STORE_SET_SIZE | STORE_SET_MTIME;
		sa.size = (uint64_t)attr->st_size;
		sa.mtime = now;
	}
	if (to_set & FUSE_SET_ATTR_ATIME_NOW) {
		mask |= STORE_SET_ATIME;
		sa.atime = now;
	} else if (to_set & FUSE_SET_ATTR_ATIME) {
		mask |= STORE_SET_ATIME;
		sa.atime = attr->st_atim;
	}
	if (to_set & FUSE_SET_ATTR_MTIME_NOW) {
		mask |= STORE_SET_MTIME;
		sa.mtime = now;
	} else if (to_set & FUSE_SET_ATTR_MTIME) {
		mask |= STORE_SET_MTIME;
		sa.mtime = attr->st_mtim;
	}
	mask |= STORE_SET_CTIME;
	sa.ctime = (to_set & FUSE_SET_ATTR_CTIME) ? attr->st_ctim : now;
	rc = store_setattr(fs->store, br, ino, &sa, mask, &out);
	if (rc)
		goto out_end;
	fs_reply_attr(fs, req, nodeid, &out);
	fs_branch_op_end(fs, br);
	return;
out_end:
	fs_branch_op_end(fs, br);
out_err:
	fuse_reply_err(req, -rc);
}

static void fs_op_readlink(fuse_req_t req, fuse_ino_t nodeid)
{
	struct fs *fs = fs_of(req);
	char *buf = NULL;
	uint64_t br, ino;
	ssize_t n;
	int rc;

	rc = fs_split(nodeid, &br, &ino);
	if (rc)
		goto out_err;
	buf = malloc(STORE_SYMLINK_MAX + 1);
	if (!buf) {
		rc = -ENOMEM;
		goto out_err;
	}
	n = fs_link_read(fs, br, ino, buf, STORE_SYMLINK_MAX + 1);
	if (n < 0) {
		rc = (int)n;
		goto out_err;
	}
	fuse_reply_readlink(req, buf);
	free(buf);
	return;
out_err:
	free(buf);
	fuse_reply_err(req, -rc);
}

/* Create an inode owned by the caller (gid from a setgid parent).  On 0
 * the branch's op is still held (fs_branch_op_begin): the caller replies,
 * then calls fs_branch_op_end(fs, fs_branch_of(*nodeid)). */
static int fs_do_create(struct fs *fs, fuse_req_t req, fuse_ino_t parent,
			const char *name, mode_t mode, dev_t rdev,
			const char *target, uint64_t *nodeid,
			struct store_attr *out)
{
	const struct fuse_ctx *ctx = fuse_req_ctx(req);
	struct store_attr a, pa;
	uint64_t br, dir, ino;
	int rc;

	if (parent == FUSE_ROOT_ID)
		return -EPERM; /* only branches (directories) live there */
	rc = fs_split(parent, &br, &dir);
	if (rc)
		return rc;
	rc = fs_branch_op_begin(fs, br);
	if (rc)
		return rc;
	rc = store_getattr(fs->store, br, STORE_SEQ_LATEST, dir, &pa);
	if (rc)
		goto out_end;
	memset(&a, 0, sizeof(a));
	a.mode = mode;
	a.uid = ctx->uid;
	a.gid = ctx->gid;
	if (pa.mode & S_ISGID) {
		a.gid = pa.gid;
		if (S_ISDIR(mode))
			a.mode |= S_ISGID;
	}
	a.rdev = rdev;
	a.atime = a.mtime = a.ctime = fs_now_coarse();
	rc = store_create(fs->store, br, dir, name, &a, target, &ino, out);
	if (rc)
		goto out_end;
	*nodeid = fs_nodeid(br, ino);
	return 0;
out_end:
	fs_branch_op_end(fs, br);
	return rc;
}

static void fs_op_mknod(fuse_req_t req, fuse_ino_t parent, const char *name,
			mode_t mode, dev_t rdev)
{
	struct fs *fs = fs_of(req);
	struct store_attr a;
	uint64_t nodeid;
	int rc;

	if (!(mode & S_IFMT))
		mode |= S_IFREG;
	if (S_ISDIR(mode) || S_ISLNK(mode)) {
		rc = -EINVAL;
		goto out_err;
	}
	rc = fs_do_create(fs, req, parent, name, mode, rdev, NULL, &nodeid, &a);
	if (rc)
		goto out_err;
	fs_reply_new_entry(fs, req, nodeid, &a, parent, name);
	fs_branch_op_end(fs, fs_branch_of(nodeid));
	return;
out_err:
	fuse_reply_err(req, -rc);
}

static void fs_op_mkdir(fuse_req_t req, fuse_ino_t parent, const char *name,
			mode_t mode)
{
	struct fs *fs = fs_of(req);
	struct store_attr a;
	uint64_t nodeid;
	int rc;

	if (parent == FUSE_ROOT_ID) {
		fs_root_mkdir(fs, req, name, mode & 07777);
		return;
	}
	rc = fs_do_create(fs, req, parent, name, S_IFDIR | (mode & 07777), 0,
			  NULL, &nodeid, &a);
	if (rc) {
		fuse_reply_err(req, -rc);
		return;
	}
	fs_reply_new_entry(fs, req, nodeid, &a, parent, name);
	fs_branch_op_end(fs, fs_branch_of(nodeid));
}

/* The target is stored as fs_link_encode() says (fs_link.c: a link into
 * the branch's own tree follows the branch). */
static void fs_op_symlink(fuse_req_t req, const char *link, fuse_ino_t parent,
			  const char *name)
{
	struct fs *fs = fs_of(req);
	struct store_attr a;
	uint64_t nodeid;
	char *stored;
	int rc;

	stored = malloc(STORE_SYMLINK_MAX + 2);
	if (!stored) {
		rc = -ENOMEM;
		goto out_err;
	}
	if (parent == FUSE_ROOT_ID)
		rc = -EPERM;
	else
		rc = fs_link_encode(fs, fs_branch_of(parent), link, stored,
				    STORE_SYMLINK_MAX + 2);
	if (rc == 0)
		rc = fs_do_create(fs, req, parent, name, S_IFLNK | 0777, 0,
				  stored, &nodeid, &a);
	free(stored);
	if (rc)
		goto out_err;
	fs_reply_new_entry(fs, req, nodeid, &a, parent, name);
	fs_branch_op_end(fs, fs_branch_of(nodeid));
	return;
out_err:
	fuse_reply_err(req, -rc);
}

static void fs_op_unlink(fuse_req_t req, fuse_ino_t parent, const char *name)
{
	struct fs *fs = fs_of(req);
	uint64_t br, dir;
	int rc;

	if (parent == FUSE_ROOT_ID) {
		fuse_reply_err(req, EISDIR); /* every entry is a branch */
		return;
	}
	rc = fs_split(parent, &br, &dir);
	if (rc == 0)
		rc = fs_branch_op_begin(fs, br);
	if (rc == 0) {
		rc = store_unlink(fs->store, br, dir, name);
		fuse_reply_err(req, -rc);
		fs_branch_op_end(fs, br);
		return;
	}
	fuse_reply_err(req, -rc);
}

static void fs_op_rmdir(fuse_req_t req, fuse_ino_t parent, const char *name)
{
	struct fs *fs = fs_of(req);
	uint64_t br, dir;
	int rc;

	if (parent == FUSE_ROOT_ID) {
		fs_root_rmdir(fs, req, name);
		return;
	}
	rc = fs_split(parent, &br, &dir);
	if (rc == 0)
		rc = fs_branch_op_begin(fs, br);
	if (rc == 0) {
		rc = store_rmdir(fs->store, br, dir, name);
		fuse_reply_err(req, -rc);
		fs_branch_op_end(fs, br);
		return;
	}
	fuse_reply_err(req, -rc);
}

/* After a rename in branch br: a regular file that its new name makes a
 * WAL file (fs_node_wal_mark) and its old one did not gets the mark on
 * the node the kernel keeps for it.  Postgres makes each new segment as
 * xlogtemp.PID, renames it and opens it by the new name at once, through
 * the dentry the rename moved: no LOOKUP comes to mark it.  In pg_wal the
 * file had the mark since its CREATE; in the directory an initdb --waldir
 * link leads to, this is where it gets it.  A mark missed costs only
 * speed (cached writes), so an error here is not the rename's. */
static void fs_rename_wal_mark(struct fs *fs, uint64_t br, uint64_t parent,
			       const char *name, uint64_t newparent,
			       const char *newname)
{
	uint64_t ndir = fs_ino_of(newparent), ino;
	struct store_attr a;

	if (!fs_node_wal_mark(fs, newparent, newname, S_IFREG) ||
	    fs_node_wal_mark(fs, parent, name, S_IFREG))
		return;
	if (store_lookup(fs->store, br, STORE_SEQ_LATEST, ndir, newname,
			 &ino) == 0 &&
	    store_getattr(fs->store, br, STORE_SEQ_LATEST, ino, &a) == 0 &&
	    S_ISREG(a.mode))
		fs_node_mark(fs, fs_nodeid(br, ino), FS_NODE_WAL);
}

static void fs_op_rename(fuse_req_t req, fuse_ino_t parent, const char *name,
			 fuse_ino_t newparent, const char *newname,
			 unsigned int flags)
{
	struct fs *fs = fs_of(req);
	uint64_t br, dir, nbr, ndir;
	unsigned sflags = 0;
	int rc;

	if (flags & ~(FS_RENAME_NOREPLACE | FS_RENAME_EXCHANGE)) {
		rc = -EINVAL;
		goto out;
	}
	if (parent == FUSE_ROOT_ID && newparent == FUSE_ROOT_ID) {
		fs_root_rename(fs, req, name, newname, flags);
		return;
	}
	/* Not EXDEV: mv(1) would then copy a branch into another file by
	 * file and delete the source's files (see fs_root.c). */
	if (parent == FUSE_ROOT_ID || newparent == FUSE_ROOT_ID) {
		rc = -EPERM;
		goto out;
	}
	rc = fs_split(parent, &br, &dir);
	if (rc == 0)
		rc = fs_split(newparent, &nbr, &ndir);
	if (rc)
		goto out;
	if (br != nbr) {
		rc = -EXDEV;
		goto out;
	}
	if (flags & FS_RENAME_NOREPLACE)
		sflags |= STORE_RENAME_NOREPLACE;
	if (flags & FS_RENAME_EXCHANGE)
		sflags |= STORE_RENAME_EXCHANGE;
	rc = fs_branch_op_begin(fs, br);
	if (rc)
		goto out;
	rc = store_rename(fs->store, br, dir, name, ndir, newname, sflags);
	/* marked before the reply: the caller's next OPEN may come at once,
	 * on another thread */
	if (rc == 0)
		fs_rename_wal_mark(fs, br, parent, name, newparent, newname);
	fuse_reply_err(req, -rc);
	fs_branch_op_end(fs, br);
	return;
out:
	fuse_reply_err(req, -rc);
}

static void fs_op_link(fuse_req_t req, fuse_ino_t nodeid, fuse_ino_t newparent,
		       const char *newname)
{
	struct fs *fs = fs_of(req);
	struct store_attr a;
	uint64_t br, ino, nbr, ndir;
	int rc;

	if (newparent == FUSE_ROOT_ID) {
		rc = -EPERM;
		goto out_err;
	}
	if (nodeid == FUSE_ROOT_ID) {
		rc = -EPERM;
		goto out_err;
	}
	rc = fs_split(nodeid, &br, &ino);
	if (rc == 0)
		rc = fs_split(newparent, &nbr, &ndir);
	if (rc)
		goto out_err;
	if (br != nbr) {
		rc = -EXDEV;
		goto out_err;
	}
	rc = fs_branch_op_begin(fs, br);
	if (rc)
		goto out_err;
	rc = store_link(fs->store, br, ino, ndir, newname, &a);
	if (rc == 0)
		fs_reply_new_entry(fs, req, nodeid, &a, newparent, newname);
	else
		fuse_reply_err(req, -rc);
	fs_branch_op_end(fs, br);
	return;
out_err:
	fuse_reply_err(req, -rc);
}

/* Truncate on open (FUSE_CAP_ATOMIC_O_TRUNC).  The kernel leaves the
 * whole truncate to OPEN here, including what it would otherwise do itself
 * (no HANDLE_KILLPRIV): a caller other than root loses the file's set-user-
 * ID bit, and its set-group-ID bit when group execute is set, also when
 * the file is empty already, as on a local disk. */
static int fs_trunc_zero(struct fs *fs, fuse_req_t req, uint64_t br,
			 uint64_t ino, const struct store_attr *a)
{
	const struct fuse_ctx *ctx = fuse_req_ctx(req);
	uint32_t kill = 0, mask = 0;
	struct store_attr sa;

	if (ctx->uid != 0) {
		if (a->mode & S_ISUID)
			kill |= S_ISUID;
		if ((a->mode & (S_ISGID | S_IXGRP)) == (S_ISGID | S_IXGRP))
			kill |= S_ISGID;
	}
	if (!a->size && !kill)
		return 0;
	memset(&sa, 0, sizeof(sa));
	sa.mtime = sa.ctime = fs_now();
	if (a->size)
		mask |= STORE_SET_SIZE | STORE_SET_MTIME | STORE_SET_CTIME;
	if (kill) {
		sa.mode = a->mode & ~kill;
		mask |= STORE_SET_MODE | STORE_SET_CTIME;
	}
	return store_setattr(fs->store, br, ino, &sa, mask, NULL);
}

/* How the kernel caches an open file.  Files are cached (the writeback
 * cache), but a WAL segment (FS_NODE_WAL) opened for writing is direct
 * I/O: a commit's write(2) goes out as a WRITE of its own, at once.  With
 * the cache it went out at fdatasync, as a writeback WRITE queued behind
 * all others in the kernel's one line of them: behind a checkpoint's
 * writeback of thousands of data pages, a commit waited 0.2-0.5 s.  Reads
 * of WAL (recovery, walsenders) stay cached, with readahead: the cache is
 * dropped at each such open (no keep_cache) and the range of each direct
 * write after it (fs_op_write), so that no reader sees pages older than a
 * write that has returned. */
static void fs_open_mode(struct fs *fs, uint64_t nodeid,
			 struct fuse_file_info *fi)
{
	bool wal = fs_node_has(fs, nodeid, FS_NODE_WAL);

	fi->fh = 0;
	fi->keep_cache = !wal;
	fi->direct_io = 0;
	if (wal && (fi->flags & O_ACCMODE) != O_RDONLY) {
		fi->fh = FS_FH_WAL_DIRECT;
		fi->direct_io = 1;
	}
}

static void fs_op_open(fuse_req_t req, fuse_ino_t nodeid,
		       struct fuse_file_info *fi)
{
	struct fs *fs = fs_of(req);
	struct store_attr a;
	uint64_t br, ino;
	int rc;

	rc = fs_split(nodeid, &br, &ino);
	if (rc)
		goto out_err;
	rc = fs_file_open(fs, nodeid, fuse_req_ctx(req)->pid);
	if (rc)
		goto out_err;
	rc = store_getattr(fs->store, br, STORE_SEQ_LATEST, ino, &a);
	if (rc == 0 && S_ISDIR(a.mode))
		rc = -EISDIR;
	if (rc == 0 && (fi->flags & O_TRUNC) && S_ISREG(a.mode))
		rc = fs_trunc_zero(fs, req, br, ino, &a);
	if (rc)
		goto err_close;
	fs_open_mode(fs, nodeid, fi);
	if (fuse_reply_open(req, fi) != 0)
		fs_file_close(fs, nodeid);
	return;
err_close:
	fs_file_close(fs, nodeid);
out_err:
	fuse_reply_err(req, -rc);
}

static void fs_op_create(fuse_req_t req, fuse_ino_t parent, const char *name,
			 mode_t mode, struct fuse_file_info *fi)
{
	struct fs *fs = fs_of(req);
	struct fuse_entry_param e;
	struct store_attr a;
	uint64_t nodeid, br;
	uint32_t gen;
	int rc;

	if (parent == FUSE_ROOT_ID) {
		rc = -EPERM;
		goto out_err;
	}
	rc = fs_do_create(fs, req, parent, name, S_IFREG | (mode & 07777), 0,
			  NULL, &nodeid, &a);
	if (rc)
		goto out_err;
	/* No reset overtakes the op we hold: the generation is the
	 * branch's, and its epoch known (fs_node_kid is not 0). */
	br = fs_branch_of(nodeid);
	gen = fs_branch_gen(fs, br);
	nodeid = fs_node_kid(fs, nodeid, S_IFREG, gen);
	/* Cannot wait: no change of the branch starts while we hold an op. */
	rc = nodeid ? fs_file_open(fs, nodeid, fuse_req_ctx(req)->pid) :
		      -ESTALE;
	if (rc) {
		fs_branch_op_end(fs, br);
		goto out_err;
	}
	fs_entry_fill(&e, nodeid, gen, &a);
	fs_blocks_of_open(fs, nodeid, &e.attr);
	fs_node_ref(fs, nodeid, S_IFREG, (uint32_t)e.generation, 0,
		    fs_node_wal_mark(fs, parent, name, S_IFREG));
	fs_open_mode(fs, nodeid, fi);
	if (fuse_reply_create(req, &e, fi) != 0) {
		fs_node_unref(fs, nodeid, 1);
		fs_file_close(fs, nodeid);
	}
	fs_branch_op_end(fs, fs_branch_of(nodeid));
	return;
out_err:
	fuse_reply_err(req, -rc);
}

static void fs_op_read(fuse_req_t req, fuse_ino_t nodeid, size_t size,
		       off_t off, struct fuse_file_info *fi)
{
	struct fs *fs = fs_of(req);
	uint64_t br, ino;
	ssize_t n;
	char *buf;
	int rc;

	(void)fi;
	rc = fs_split(nodeid, &br, &ino);
	if (rc)
		goto out_err;
	if (off < 0) {
		rc = -EINVAL;
		goto out_err;
	}
	buf = malloc(size ? size : 1);
	if (!buf) {
		rc = -ENOMEM;
		goto out_err;
	}
	n = store_read(fs->store, br, STORE_SEQ_LATEST, ino, buf, size,
		       (uint64_t)off);
	if (n < 0) {
		free(buf);
		rc = (int)n;
		goto out_err;
	}
	fuse_reply_buf(req, buf, (size_t)n);
	free(buf);
	return;
out_err:
	fuse_reply_err(req, -rc);
}

static void fs_op_write(fuse_req_t req, fuse_ino_t nodeid, const char *buf,
			size_t size, off_t off, struct fuse_file_info *fi)
{
	struct fs *fs = fs_of(req);
	struct timespec now = fs_now();
	uint64_t br, ino;
	ssize_t n;
	int rc;

	rc = fs_split(nodeid, &br, &ino);
	if (rc)
		goto out_err;
	if (off < 0) {
		rc = -EINVAL;
		goto out_err;
	}
	n = store_write(fs->store, br, ino, buf, size, (uint64_t)off, &now);
	if (n < 0) {
		rc = (int)n;
		goto out_err;
	}
	/* Before the reply: a reader's cached pages of the range are older
	 * than this write (fs_open_mode).  A read in flight holds its pages
	 * locked, and the kernel drops them once it is done.  Never for a
	 * writeback of cached pages (a WAL file written through the cache
	 * before it was known as one): those pages wait for this reply, and
	 * dropping them would wait for their writeback. */
	if (fi->fh == FS_FH_WAL_DIRECT && !fi->writepage && n > 0)
		fuse_lowlevel_notify_inval_inode(fs->se, nodeid, off, n);
	/* Rule 3 for a writer that opened with O_DSYNC or O_SYNC (Postgres'
	 * wal_sync_method open_datasync or open_sync): its write is durable
	 * when it returns.  For a cached file the kernel follows such a write
	 * with an FSYNC; for a direct I/O one (a WAL file) it sends none, and
	 * only the write's flags say so. */
	if (fi->fh == FS_FH_WAL_DIRECT && !fi->writepage && n > 0 &&
	    (fi->flags & O_DSYNC)) {
		rc = store_sync_branch(fs->store, br);
		if (rc)
			goto out_err;
	}
	fuse_reply_write(req, (size_t)n);
	return;
out_err:
	fuse_reply_err(req, -rc);
}

static void fs_op_release(fuse_req_t req, fuse_ino_t nodeid,
			  struct fuse_file_info *fi)
{
	(void)fi;
	if (nodeid != FUSE_ROOT_ID)
		fs_file_close(fs_of(req), nodeid);
	fuse_reply_err(req, 0);
}

/* Rule 3: fsync means durable.  store_sync_branch makes every returned
 * write to the node's branch durable (group commit), which covers this file
 * or directory; in a branch with nothing unsynced it costs no WAL sync. */
static void fs_op_fsync(fuse_req_t req, fuse_ino_t nodeid, int datasync,
			struct fuse_file_info *fi)
{
	uint64_t branch = nodeid == FUSE_ROOT_ID ? 0 : fs_branch_of(nodeid);

	(void)datasync;
	(void)fi;
	fuse_reply_err(req, -store_sync_branch(fs_of(req)->store, branch));
}

static int fs_dir_add(struct fs_dir *d, size_t *cap, uint64_t nodeid,
		      uint32_t mode, const char *name)
{
	if (d->n == *cap) {
		size_t nc = *cap ? *cap * 2 : 16;
		struct fs_dir_ent *p = realloc(d->ents, nc * sizeof(*p));

		if (!p)
			return -ENOMEM;
		d->ents = p;
		*cap = nc;
	}
	d->ents[d->n].name = strdup(name);
	if (!d->ents[d->n].name)
		return -ENOMEM;
	d->ents[d->n].nodeid = nodeid;
	d->ents[d->n].mode = mode & S_IFMT;
	d->n++;
	return 0;
}

/* The listing of directory nodeid as it is now, into the empty d. */
static int fs_dir_fill(struct fs *fs, fuse_ino_t nodeid, struct fs_dir *d)
{
	struct store_dirent *ents = NULL;
	struct store_attr a = { 0 };
	size_t n = 0, cap = 0, i;
	uint64_t br, ino;
	int rc;

	if (nodeid == FUSE_ROOT_ID)
		return fs_root_list(fs, d);
	rc = fs_split(nodeid, &br, &ino);
	if (rc)
		return rc;
	d->stamped = store_getattr(fs->store, br, STORE_SEQ_LATEST, ino, &a) ==
		     0;
	d->mtime = a.mtime;
	d->ctime = a.ctime;
	rc = store_readdir(fs->store, br, STORE_SEQ_LATEST, ino, &ents, &n);
	if (rc)
		return rc;
	rc = fs_dir_add(d, &cap, nodeid, S_IFDIR, ".");
	if (rc == 0)
		rc = fs_dir_add(d, &cap, FUSE_ROOT_ID, S_IFDIR, "..");
	for (i = 0; rc == 0 && i < n; i++)
		rc = fs_dir_add(d, &cap, fs_nodeid(br, ents[i].ino),
				ents[i].mode, ents[i].name);
	free(ents);
	return rc;
}

static void fs_op_opendir(fuse_req_t req, fuse_ino_t nodeid,
			  struct fuse_file_info *fi)
{
	struct fs *fs = fs_of(req);
	bool counted = nodeid != FUSE_ROOT_ID;
	struct fs_dir *d;
	int rc;

	d = calloc(1, sizeof(*d));
	if (!d) {
		rc = -ENOMEM;
		goto out_err;
	}
	/* Counted before the listing is read: a reset waits for it, or it
	 * waits for the reset (FS-1). */
	rc = counted ? fs_dir_open(fs, nodeid) : 0;
	if (rc) {
		counted = false;
		goto out_err;
	}
	rc = fs_dir_fill(fs, nodeid, d);
	if (rc)
		goto out_err;
	fi->fh = (uint64_t)(uintptr_t)d;
	fi->keep_cache = 0;
	fi->cache_readdir = 0;
	if (fuse_reply_open(req, fi) != 0) {
		fs_dir_free(d);
		if (counted)
			fs_file_close(fs, nodeid);
	}
	return;
out_err:
	fs_dir_free(d);
	if (counted)
		fs_file_close(fs, nodeid);
	fuse_reply_err(req, -rc);
}

/* Does name still lead to de's node in directory nodeid?  The listing is
 * a snapshot (of opendir or of a rewind); readdirplus hands the kernel a
 * dentry for each entry it fills in, and one for a name renamed or
 * unlinked since would stay in its cache (the file found under its old
 * name, a directory in two places).  Asked while the kernel holds the
 * directory's lock for this readdir, so no rename in it can come between
 * this answer and the dentry. */
static bool fs_dir_ent_current(struct fs *fs, fuse_ino_t nodeid,
			       const struct fs_dir_ent *de)
{
	struct store_branch_info bi;
	uint64_t br, dir, ino;

	if (nodeid == FUSE_ROOT_ID)
		return store_branch_lookup(fs->store, de->name, &bi) == 0 &&
		       fs_nodeid(bi.id, bi.root_ino) == de->nodeid;
	if (fs_split(nodeid, &br, &dir))
		return false;
	return store_lookup(fs->store, br, STORE_SEQ_LATEST, dir, de->name,
			    &ino) == 0 &&
	       fs_nodeid(br, ino) == de->nodeid;
}

/* The directory's mtime and ctime are what they were when its listing was
 * taken: no entry was added, removed or renamed since (each of which sets
 * both), so every entry of the listing still leads to its node. */
static bool fs_dir_unchanged(struct fs *fs, fuse_ino_t nodeid,
			     const struct fs_dir *d)
{
	struct store_attr a;
	uint64_t br, dir;

	return d->stamped && fs_split(nodeid, &br, &dir) == 0 &&
	       store_getattr(fs->store, br, STORE_SEQ_LATEST, dir, &a) == 0 &&
	       a.mtime.tv_sec == d->mtime.tv_sec &&
	       a.mtime.tv_nsec == d->mtime.tv_nsec &&
	       a.ctime.tv_sec == d->ctime.tv_sec &&
	       a.ctime.tv_nsec == d->ctime.tv_nsec;
}

/* "." and ".." carry no attributes in readdirplus (entry ino 0: the
 * kernel creates no dentry for them), nor does an entry whose name no
 * longer leads to its node (fs_dir_ent_current). */
static void fs_do_readdir(fuse_req_t req, fuse_ino_t nodeid, size_t size,
			  off_t off, struct fuse_file_info *fi, bool plus)
{
	struct fs *fs = fs_of(req);
	struct fs_dir *d = (struct fs_dir *)(uintptr_t)fi->fh;
	size_t pos = 0, i;
	uint32_t dir_gen = 0;
	bool recheck = true;
	char *buf;

	if (!d) {
		fuse_reply_err(req, EBADF);
		return;
	}
	if (off < 0) {
		fuse_reply_err(req, EINVAL);
		return;
	}
	if (off == 0 && d->read) {
		struct fs_dir fresh = { 0 };
		int rc = fs_dir_fill(fs, nodeid, &fresh);

		if (rc) {
			fs_dir_clear(&fresh);
			fuse_reply_err(req, -rc);
			return;
		}
		fs_dir_clear(d);
		*d = fresh;
	}
	d->read = true;
	buf = malloc(size ? size : 1);
	if (!buf) {
		fuse_reply_err(req, ENOMEM);
		return;
	}
	if (plus && nodeid != FUSE_ROOT_ID) {
		/* Read before the store reads of the entries (see
		 * fs_branch_gen), and one for all: they are of one branch. */
		dir_gen = fs_branch_gen(fs, fs_branch_of(nodeid));
		recheck = !fs_dir_unchanged(fs, nodeid, d);
	}
	for (i = (size_t)off; i < d->n; i++) {
		const struct fs_dir_ent *de = &d->ents[i];
		bool dot = strcmp(de->name, ".") == 0 ||
			   strcmp(de->name, "..") == 0;
		uint64_t ino = de->nodeid;
		size_t len;

		if (plus) {
			struct fuse_entry_param e;
			struct store_attr a;
			uint64_t kid = 0;
			uint32_t gen = 0;
			bool got = false;

			memset(&e, 0, sizeof(e));
			/* Before the store reads of the entry (see
			 * fs_branch_gen); a branch's, at the root. */
			gen = dir_gen;
			if (!dot && nodeid == FUSE_ROOT_ID &&
			    fs_branch_of(de->nodeid) != 0)
				gen = fs_branch_gen(fs,
						    fs_branch_of(de->nodeid));
			if (!dot && fs_branch_of(de->nodeid) != 0 &&
			    (!recheck || fs_dir_ent_current(fs, nodeid, de)) &&
			    store_getattr(fs->store, fs_branch_of(de->nodeid),
					  STORE_SEQ_LATEST,
					  fs_ino_of(de->nodeid), &a) == 0 &&
			    (kid = fs_node_kid(fs, de->nodeid, a.mode, gen))) {
				fs_link_attr(fs, kid, &a);
				fs_entry_fill(&e, kid, gen, &a);
				fs_blocks_of_open(fs, kid, &e.attr);
				got = true;
			} else {
				e.attr.st_ino = ino;
				e.attr.st_mode = de->mode;
			}
			len = fuse_add_direntry_plus(req, buf + pos, size - pos,
						     de->name, &e,
						     (off_t)(i + 1));
			if (len > size - pos)
				break;
			if (got &&
			    !fs_node_ref(fs, kid, e.attr.st_mode,
					 (uint32_t)e.generation, 0,
					 fs_node_wal_mark(fs, nodeid, de->name,
							  e.attr.st_mode))) {
				/* Overtaken by a reset: a bare entry (no
				 * dentry), of the same size, in its place. */
				mode_t type = e.attr.st_mode & S_IFMT;

				memset(&e, 0, sizeof(e));
				e.attr.st_ino = ino;
				e.attr.st_mode = type;
				fuse_add_direntry_plus(req, buf + pos,
						       size - pos, de->name, &e,
						       (off_t)(i + 1));
			}
		} else {
			struct stat st;

			memset(&st, 0, sizeof(st));
			st.st_ino = ino;
			st.st_mode = de->mode;
			len = fuse_add_direntry(req, buf + pos, size - pos,
						de->name, &st, (off_t)(i + 1));
			if (len > size - pos)
				break;
		}
		pos += len;
	}
	fuse_reply_buf(req, buf, pos);
	free(buf);
}

static void fs_op_readdir(fuse_req_t req, fuse_ino_t nodeid, size_t size,
			  off_t off, struct fuse_file_info *fi)
{
	fs_do_readdir(req, nodeid, size, off, fi, false);
}

static void fs_op_readdirplus(fuse_req_t req, fuse_ino_t nodeid, size_t size,
			      off_t off, struct fuse_file_info *fi)
{
	fs_do_readdir(req, nodeid, size, off, fi, true);
}

static void fs_op_releasedir(fuse_req_t req, fuse_ino_t nodeid,
			     struct fuse_file_info *fi)
{
	fs_dir_free((struct fs_dir *)(uintptr_t)fi->fh);
	if (nodeid != FUSE_ROOT_ID)
		fs_file_close(fs_of(req), nodeid);
	fuse_reply_err(req, 0);
}

static void fs_op_statfs(fuse_req_t req, fuse_ino_t nodeid)
{
	struct fs *fs = fs_of(req);
	struct store_stats ss;
	struct statvfs sv;
	int rc;

	(void)nodeid;
	rc = store_stats(fs->store, &ss);
	if (rc) {
		fuse_reply_err(req, -rc);
		return;
	}
	memset(&sv, 0, sizeof(sv));
	sv.f_bsize = STORE_BLOCK_SIZE;
	sv.f_frsize = STORE_BLOCK_SIZE;
	/* Used = what the store occupies; free = what it may still take
	 * (the host filesystem's free space less the store's reserve). */
	{
		uint64_t avail = ss.fs_avail_bytes > ss.reserve_bytes ?
					 ss.fs_avail_bytes - ss.reserve_bytes :
					 0;

		sv.f_blocks = (ss.disk_bytes + avail) / STORE_BLOCK_SIZE;
		sv.f_bfree = avail / STORE_BLOCK_SIZE;
		sv.f_bavail = sv.f_bfree;
	}
	sv.f_files = STORE_INO_MAX;
	sv.f_ffree = ss.next_ino < STORE_INO_MAX ? STORE_INO_MAX - ss.next_ino :
						   0;
	sv.f_favail = sv.f_ffree;
	sv.f_namemax = STORE_NAME_MAX;
	fuse_reply_statfs(req, &sv);
}

static void fs_op_fallocate(fuse_req_t req, fuse_ino_t nodeid, int mode,
			    off_t off, off_t len, struct fuse_file_info *fi)
{
	struct fs *fs = fs_of(req);
	struct store_attr a, sa;
	uint64_t br, ino, end;
	int rc;

	(void)fi;
	rc = fs_split(nodeid, &br, &ino);
	if (rc)
		goto out;
	if (off < 0 || len <= 0 || (uint64_t)off + (uint64_t)len > INT64_MAX) {
		rc = -EINVAL;
		goto out;
	}
	end = (uint64_t)off + (uint64_t)len;
	if (mode != 0 && mode != FALLOC_FL_KEEP_SIZE &&
	    mode != (FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE) &&
	    mode != FALLOC_FL_ZERO_RANGE &&
	    mode != (FALLOC_FL_ZERO_RANGE | FALLOC_FL_KEEP_SIZE)) {
		rc = -EOPNOTSUPP;
		goto out;
	}
	rc = store_getattr(fs->store, br, STORE_SEQ_LATEST, ino, &a);
	if (rc)
		goto out;
	if (!S_ISREG(a.mode)) {
		rc = S_ISDIR(a.mode) ? -EISDIR : -ENODEV;
		goto out;
	}
	if (mode == 0 && end > a.size) {
		/* Grow only: with the writeback cache, the kernel may write
		 * back pages past end between our getattr and this setattr. */
		memset(&sa, 0, sizeof(sa));
		sa.size = end;
		sa.mtime = sa.ctime = fs_now();
		rc = store_setattr(fs->store, br, ino, &sa,
				   STORE_SET_SIZE | STORE_SET_GROW |
					   STORE_SET_MTIME | STORE_SET_CTIME,
				   NULL);
	} else if (mode & (FALLOC_FL_PUNCH_HOLE | FALLOC_FL_ZERO_RANGE)) {
		/* Zeros read back the same either way (no block is stored
		 * for them); ZERO_RANGE without KEEP_SIZE also grows the
		 * file to end, as mode 0, in the same commit. */
		bool grow = !(mode & FALLOC_FL_KEEP_SIZE);
		struct timespec now = fs_now();

		if ((uint64_t)off < a.size || (grow && end > a.size))
			rc = store_zero_range(fs->store, br, ino, (uint64_t)off,
					      end, grow, &now);
	}
out:
	fuse_reply_err(req, -rc);
}

const struct fuse_lowlevel_ops fs_ops = {
	.init = fs_op_init,
	.lookup = fs_op_lookup,
	.forget = fs_op_forget,
	.forget_multi = fs_op_forget_multi,
	.getattr = fs_op_getattr,
	.setattr = fs_op_setattr,
	.readlink = fs_op_readlink,
	.mknod = fs_op_mknod,
	.mkdir = fs_op_mkdir,
	.unlink = fs_op_unlink,
	.rmdir = fs_op_rmdir,
	.symlink = fs_op_symlink,
	.rename = fs_op_rename,
	.link = fs_op_link,
	.open = fs_op_open,
	.create = fs_op_create,
	.read = fs_op_read,
	.write = fs_op_write,
	.release = fs_op_release,
	.fsync = fs_op_fsync,
	.opendir = fs_op_opendir,
	.readdir = fs_op_readdir,
	.readdirplus = fs_op_readdirplus,
	.releasedir = fs_op_releasedir,
	.fsyncdir = fs_op_fsync,
	.statfs = fs_op_statfs,
	.fallocate = fs_op_fallocate,
};
