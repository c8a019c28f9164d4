/* SPDX-License-Identifier: MIT */
/*
 * fs_root.c - the synthetic branch root (FUSE_ROOT_ID): one directory per
 * branch of the store.
 *
 *   mkdir NAME   creates branch NAME from the default parent at its head
 *                (with what the kernel still held dirty of the parent's
 *                files: fs_branch_flush), without postmaster.pid,
 *                postmaster.opts nor a socket of the parent's server
 *                (fs_pg_drop_names, DESIGN rule 2);
 *                in a store with no branch at all it creates an empty
 *                branch whose root gets the mkdir mode and the caller's
 *                uid/gid.  The caller becomes the branch's owner_uid.
 *                Default parent missing while other branches exist: ENOENT.
 *   rmdir NAME   deletes the branch: EBUSY while a postmaster runs on it,
 *                files in it are open (rule 7) or it has child branches.
 *   rename       renames a branch, same busy rule; EXCHANGE is EINVAL and
 *                an existing target name is EEXIST.  Moving a branch into
 *                a branch, or anything out of a branch to the root, is
 *                EPERM (fs_ops.c), not EXDEV: on EXDEV mv(1) would copy
 *                and then delete the source file by file.
 *   anything else (files, symlinks, nodes, links) at the root: EPERM.
 *
 * The root's own attributes (mode, owner, times) live only in memory; they
 * start from fs_config.  Write permission on the root is checked by the
 * kernel (default_permissions).  The sticky bit (root_mode 1777: anyone
 * may create a branch, only its creator, the root's owner or root may
 * remove or rename it) is checked here against the branch's owner_uid.  It
 * is kept in memory but not reported in st_mode, because the kernel would
 * otherwise apply its own sticky rule against the owner of the branch's
 * root directory (often the Postgres user, not the branch's creator) and
 * refuse the creator.  Since chmod(1) cannot see it, a mode change keeps
 * it while group or others may write (fs_root_setattr).
 *
 * Branch ids are never reused, so a node id of a deleted branch can never
 * name a node of another branch: the store answers ENOENT for it.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "fs_int.h"

const char *const fs_pg_drop_names[] = { "postmaster.pid", "postmaster.opts",
					 ".s.PGSQL.*", NULL };

void fs_root_touch(struct fs *fs)
{
	struct timespec now = fs_now();

	pthread_mutex_lock(&fs->root_mu);
	fs->root_mtime = fs->root_ctime = now;
	pthread_mutex_unlock(&fs->root_mu);
}

void fs_root_stat(struct fs *fs, struct stat *st)
{
	/* Counted, not listed: the root is stat'ed often, and a listing
	 * of 3000 branches took 0.67 ms. */
	uint64_t n = store_branch_count(fs->store);

	memset(st, 0, sizeof(*st));
	st->st_ino = FUSE_ROOT_ID;
	st->st_nlink = 2 + n;
	st->st_blksize = 65536;
	pthread_mutex_lock(&fs->root_mu);
	/* S_ISVTX is enforced here (fs_root_sticky_check) and hidden from
	 * the kernel: see the top of this file. */
	st->st_mode = fs->root_mode & ~(mode_t)S_ISVTX;
	st->st_uid = fs->root_uid;
	st->st_gid = fs->root_gid;
	st->st_atim = fs->root_mtime;
	st->st_mtim = fs->root_mtime;
	st->st_ctim = fs->root_ctime;
	pthread_mutex_unlock(&fs->root_mu);
}

void fs_root_getattr(struct fs *fs, fuse_req_t req)
{
	struct stat st;

	fs_root_stat(fs, &st);
	fuse_reply_attr(req, &st, FS_ATTR_TIMEOUT);
}

void fs_root_setattr(struct fs *fs, fuse_req_t req, const struct stat *attr,
		     int to_set)
{
	const struct fuse_ctx *ctx = fuse_req_ctx(req);
	struct timespec now = fs_now();
	struct stat st;
	int rc = 0;

	if (to_set & FUSE_SET_ATTR_SIZE) {
		fuse_reply_err(req, EISDIR);
		return;
	}
	pthread_mutex_lock(&fs->root_mu);
	/* The kernel checks these too; repeated so the rule holds even
	 * without default_permissions. */
	if ((to_set & (FUSE_SET_ATTR_UID | FUSE_SET_ATTR_GID)) &&
	    ctx->uid != 0) {
		if ((to_set & FUSE_SET_ATTR_UID) &&
		    attr->st_uid != fs->root_uid)
			rc = -EPERM;
		if ((to_set & FUSE_SET_ATTR_GID) && ctx->uid != fs->root_uid)
			rc = -EPERM;
	}
	if ((to_set & FUSE_SET_ATTR_MODE) && ctx->uid != 0 &&
	    ctx->uid != fs->root_uid)
		rc = -EPERM;
	if (rc)
		goto out_unlock;
	if (to_set & FUSE_SET_ATTR_MODE) {
		mode_t m = attr->st_mode & 07777;

		/* chmod(1) cannot see the sticky bit (hidden above), so a
		 * relative chmod of a sticky root (g-w, +x) sends a mode
		 * without it: it stays while group or others may still
		 * write, and goes with the last such write bit, where it
		 * has no effect. */
		if ((fs->root_mode & S_ISVTX) && (m & (S_IWGRP | S_IWOTH)))
			m |= S_ISVTX;
		fs->root_mode = S_IFDIR | m;
	}
	if (to_set & FUSE_SET_ATTR_UID)
		fs->root_uid = attr->st_uid;
	if (to_set & FUSE_SET_ATTR_GID)
		fs->root_gid = attr->st_gid;
	if (to_set & FUSE_SET_ATTR_MTIME_NOW)
		fs->root_mtime = now;
	else if (to_set & FUSE_SET_ATTR_MTIME)
		fs->root_mtime = attr->st_mtim;
	fs->root_ctime = (to_set & FUSE_SET_ATTR_CTIME) ? attr->st_ctim : now;
out_unlock:
	pthread_mutex_unlock(&fs->root_mu);
	if (rc) {
		fuse_reply_err(req, -rc);
		return;
	}
	fs_root_stat(fs, &st);
	fuse_reply_attr(req, &st, FS_ATTR_TIMEOUT);
}

int fs_root_entry(struct fs *fs, const struct store_branch_info *bi,
		  struct fuse_entry_param *e)
{
	struct store_attr a;
	int rc;

	rc = store_getattr(fs->store, bi->id, STORE_SEQ_LATEST, bi->root_ino,
			   &a);
	if (rc)
		return rc;
	/* A directory: generation 0 (fs_entry_fill). */
	fs_entry_fill(e, fs_nodeid(bi->id, bi->root_ino), 0, &a);
	return 0;
}

static void fs_root_send_entry(struct fs *fs, fuse_req_t req,
			       const struct fuse_entry_param *e)
{
	fs_node_ref(fs, e->ino, S_IFDIR, (uint32_t)e->generation, 0, 0);
	if (fuse_reply_entry(req, e) != 0)
		fs_node_unref(fs, e->ino, 1);
}

static void fs_root_reply_entry(struct fs *fs, fuse_req_t req,
				const struct store_branch_info *bi)
{
	struct fuse_entry_param e;
	int rc;

	rc = fs_root_entry(fs, bi, &e);
	if (rc) {
		fuse_reply_err(req, -rc);
		return;
	}
	fs_root_send_entry(fs, req, &e);
}

void fs_root_lookup(struct fs *fs, fuse_req_t req, const char *name)
{
	struct store_branch_info bi;
	int rc;

	/* A name longer than any branch's is ENAMETOOLONG, as a local disk
	 * answers it (for stat, rmdir, rename, open and a create at the
	 * root alike: the kernel looks the name up first); another name no
	 * branch can have is just not there. */
	if (strlen(name) > STORE_NAME_MAX)
		rc = -ENAMETOOLONG;
	else
		rc = store_branch_lookup(fs->store, name, &bi);
	if (rc == -EINVAL)
		rc = -ENOENT;
	if (rc) {
		fuse_reply_err(req, -rc);
		return;
	}
	fs_root_reply_entry(fs, req, &bi);
}

/* The tablespace rule (fs_link.c), logged: 0 or -EXDEV. */
static int fs_root_check_fork(struct fs *fs,
			      const struct store_branch_info *parent,
			      const char *name)
{
	char why[STORE_SYMLINK_MAX + 512];
	int rc;

	rc = fs_branch_check_fork(fs, parent, STORE_SEQ_LATEST, why,
				  sizeof(why));
	if (rc)
		FS_WARN(fs, "cannot create branch '%s' of '%s': %s", name,
			parent->name, why);
	return rc;
}

/* The tablespace rule once more, on the parent's tree exactly as the new
 * branch bi got it (its fork seq): a link made out of the tree after the
 * first check (while the checkpoint hook waited) is caught here, and the
 * branch, which nobody has seen yet, is dropped.  0 or -EXDEV. */
static int fs_root_recheck_fork(struct fs *fs,
				const struct store_branch_info *parent,
				const struct store_branch_info *bi)
{
	char why[STORE_SYMLINK_MAX + 512];
	int rc, drc;

	rc = fs_branch_check_fork(fs, parent, bi->fork_seq, why, sizeof(why));
	if (rc == 0)
		return 0;
	drc = store_branch_delete(fs->store, bi->id);
	FS_WARN(fs,
		"cannot create branch '%s' of '%s': %s (a link made while the "
		"branch was being made; %s)",
		bi->name, parent->name, why,
		drc ? "dropping the new branch failed" :
		      "the new branch is dropped");
	if (drc)
		FS_ERR(fs, "cannot drop the refused branch '%s': %s", bi->name,
		       strerror(-drc));
	return rc;
}

/* mkdir's reply for branch bi, which it has just made.  A delete through
 * the control socket may have removed it already (it can land between the
 * create and the read of the root's attributes): the mkdir has succeeded
 * all the same, as on ext4 when an rmdir follows a mkdir before it
 * returns, so it replies with the entry it made instead of the ENOENT of
 * that read.  The kernel keeps such an entry and its attributes for no
 * time (timeouts 0): the next use of the name asks again and finds it
 * gone.  Its attributes are those of a directory made by this call (mode
 * bits asked for, the caller's uid and gid, the branch's creation time);
 * the kernel only needs the type to be a directory. */
static void fs_root_reply_made(struct fs *fs, fuse_req_t req,
			       const struct store_branch_info *bi, mode_t mode)
{
	const struct fuse_ctx *ctx = fuse_req_ctx(req);
	struct store_branch_info now;
	struct fuse_entry_param e;
	struct store_attr a;
	int rc;

	rc = fs_root_entry(fs, bi, &e);
	if (rc == -ENOENT &&
	    store_branch_get(fs->store, bi->id, &now) == -ENOENT) {
		FS_INFO(fs,
			"branch '%s' (id %llu) was deleted before its "
			"mkdir replied",
			bi->name, (unsigned long long)bi->id);
		memset(&a, 0, sizeof(a));
		a.mode = S_IFDIR | (mode & 07777);
		a.uid = ctx->uid;
		a.gid = ctx->gid;
		a.nlink = 2;
		a.mtime.tv_sec = (time_t)(bi->ctime_ns / 1000000000);
		a.mtime.tv_nsec = (long)(bi->ctime_ns % 1000000000);
		a.atime = a.ctime = a.mtime;
		fs_entry_fill(&e, fs_nodeid(bi->id, bi->root_ino), 0, &a);
		e.attr_timeout = 0;
		e.entry_timeout = 0;
		rc = 0;
	}
	if (rc) {
		fuse_reply_err(req, -rc);
		return;
	}
	fs_root_send_entry(fs, req, &e);
}

/* The default parent's name into defname and its branch into *parent:
 * 0 or store_branch_lookup's errors.  A rename of the default parent
 * commits the new name in the store before it swaps fs->default_parent
 * (fs_branch_rename, under default_mu, with a sync in between): a mkdir
 * that read the old name in that window found no such branch and failed
 * with ENOENT, although the default follows the rename.  On ENOENT the
 * name is read and looked up again under default_mu, which no rename
 * holds then. */
static int fs_root_default_parent(struct fs *fs, char *defname, size_t len,
				  struct store_branch_info *parent)
{
	int rc;

	fs_get_default_parent(fs, defname, len);
	rc = store_branch_lookup(fs->store, defname, parent);
	if (rc != -ENOENT)
		return rc;
	pthread_mutex_lock(&fs->default_mu);
	fs_get_default_parent(fs, defname, len);
	rc = store_branch_lookup(fs->store, defname, parent);
	pthread_mutex_unlock(&fs->default_mu);
	return rc;
}

void fs_root_mkdir(struct fs *fs, fuse_req_t req, const char *name, mode_t mode)
{
	const struct fuse_ctx *ctx = fuse_req_ctx(req);
	struct store_branch_create_args args;
	struct store_branch_info parent, bi;
	char defname[STORE_NAME_MAX + 1];
	int rc;

	memset(&args, 0, sizeof(args));
	args.name = name;
	args.owner_uid = ctx->uid;
	/* mkdir(2) promises durability only after an fsync (of the branch
	 * root, of the mount root, or of anything in the branch). */
	args.lazy = true;
	rc = fs_root_default_parent(fs, defname, sizeof(defname), &parent);
	if (rc == 0 && fs->cfg.before_branch) {
		struct store_branch_info taken;

		/* The hook may take long: refuse a bad or taken name before
		 * it runs, not after. */
		rc = store_branch_name_check(name);
		if (rc == 0 &&
		    store_branch_lookup(fs->store, name, &taken) == 0)
			rc = -EEXIST;
		if (rc)
			goto out_err;
	}
	/* Before the hook, which need not checkpoint a parent that cannot
	 * be branched; fs_root_recheck_fork has the last word. */
	if (rc == 0) {
		rc = fs_root_check_fork(fs, &parent, name);
		if (rc)
			goto out_err;
	}
	if (rc == 0 && fs->cfg.before_branch) {
		fs->cfg.before_branch(fs->cfg.before_branch_ctx, &parent, name);
		/* The parent may have changed (or gone) meanwhile; by id: a
		 * rename meanwhile leaves it the branch just checkpointed. */
		rc = store_branch_get(fs->store, parent.id, &parent);
	}
	if (rc == 0) {
		/* After the checkpoint, whose fsyncs wrote back most of it:
		 * the child gets what the kernel still holds dirty too. */
		fs_branch_flush(fs, parent.id);
		args.parent_id = parent.id;
		args.at_seq = STORE_SEQ_LATEST;
		args.drop_names = fs_pg_drop_names;
	} else if (rc == -ENOENT) {
		struct store_branch_info *list = NULL;
		size_t n = 0;

		rc = store_branch_list(fs->store, &list, &n);
		free(list);
		if (rc)
			goto out_err;
		if (n) {
			FS_WARN(fs,
				"cannot create branch '%s': default parent "
				"'%s' does not exist",
				name, defname);
			rc = -ENOENT;
			goto out_err;
		}
		args.parent_id = 0;
		args.root_mode = mode & 07777;
		args.root_uid = ctx->uid;
		args.root_gid = ctx->gid;
	} else {
		goto out_err;
	}
	rc = store_branch_create(fs->store, &args, &bi);
	if (rc == 0 && args.parent_id)
		rc = fs_root_recheck_fork(fs, &parent, &bi);
	if (rc)
		goto out_err;
	FS_INFO(fs, "created branch '%s' (id %llu) from '%s' for uid %u", name,
		(unsigned long long)bi.id, args.parent_id ? defname : "(empty)",
		(unsigned)ctx->uid);
	fs_root_touch(fs);
	fs_root_reply_made(fs, req, &bi, mode);
	return;
out_err:
	fuse_reply_err(req, -rc);
}

int fs_root_sticky_check(struct fs *fs, uid_t uid, uid_t owner_uid)
{
	int rc = 0;

	pthread_mutex_lock(&fs->root_mu);
	if ((fs->root_mode & S_ISVTX) && uid != 0 && uid != fs->root_uid &&
	    uid != owner_uid)
		rc = -EPERM;
	pthread_mutex_unlock(&fs->root_mu);
	return rc;
}

/* After fs_branch_quiesce, which may wait: name must still be branch id
 * (a control-socket rename or delete may have run meanwhile), else the
 * operation would act on whatever the branch is called now. */
static int fs_root_still_named(struct fs *fs, const char *name, uint64_t id)
{
	struct store_branch_info now;
	int rc = store_branch_lookup(fs->store, name, &now);

	if (rc == 0 && now.id != id)
		rc = -ENOENT;
	return rc;
}

void fs_root_rmdir(struct fs *fs, fuse_req_t req, const char *name)
{
	const struct fuse_ctx *ctx = fuse_req_ctx(req);
	struct store_branch_info bi;
	char why[STORE_SYMLINK_MAX + 1024]; /* a mount point, a link */
	bool tried;
	int rc;

	rc = store_branch_lookup(fs->store, name, &bi);
	if (rc)
		goto out;
	rc = fs_root_sticky_check(fs, ctx->uid, bi.owner_uid);
	if (rc)
		goto out;
	if (bi.nchildren) {
		FS_WARN(fs,
			"cannot delete branch '%s': it has %u child "
			"branch(es)",
			name, (unsigned)bi.nchildren);
		rc = -EBUSY;
		goto out;
	}
	why[0] = 0;
	rc = fs_branch_quiesce(fs, &bi, why, sizeof(why));
	if (rc) {
		/* Busy, or it could not be told (-ENOMEM: refused too). */
		if (why[0])
			FS_WARN(fs, "cannot delete branch '%s': %s", name, why);
		goto out;
	}
	rc = fs_root_still_named(fs, name, bi.id);
	tried = rc == 0;
	if (tried)
		rc = store_branch_delete(fs->store, bi.id);
	fs_branch_end_change(fs, bi.id);
	if (rc == -ENOTEMPTY) {
		FS_WARN(fs,
			"cannot delete branch '%s': it has child "
			"branches",
			name);
		rc = -EBUSY;
	}
	if (rc == 0) {
		FS_INFO(fs, "deleted branch '%s' (id %llu)", name,
			(unsigned long long)bi.id);
		fs_epoch_drop(fs, bi.id);
		fs_root_touch(fs);
	} else if (tried &&
		   store_branch_get(fs->store, bi.id, &bi) == -ENOENT) {
		/* Made, but the sync after it failed. */
		FS_ERR(fs,
		       "deleted branch '%s', but could not sync the store: %s",
		       name, strerror(-rc));
		fs_root_touch(fs);
	}
out:
	fuse_reply_err(req, -rc);
}

void fs_root_rename(struct fs *fs, fuse_req_t req, const char *name,
		    const char *newname, unsigned int flags)
{
	const struct fuse_ctx *ctx = fuse_req_ctx(req);
	struct store_branch_info bi, other;
	char why[STORE_SYMLINK_MAX + 1024]; /* a mount point, a link */
	bool tried;
	int rc;

	if (flags & (1u << 1)) { /* RENAME_EXCHANGE */
		rc = -EINVAL;
		goto out;
	}
	rc = store_branch_lookup(fs->store, name, &bi);
	if (rc)
		goto out;
	/* A bad new name is refused at once, also while the branch is busy
	 * (EINVAL, not EBUSY after waiting for it to be idle). */
	rc = store_branch_name_check(newname);
	if (rc)
		goto out;
	rc = store_branch_lookup(fs->store, newname, &other);
	if (rc == 0) {
		rc = other.id == bi.id ? 0 : -EEXIST;
		goto out;
	}
	if (rc != -ENOENT)
		goto out;
	rc = fs_root_sticky_check(fs, ctx->uid, bi.owner_uid);
	if (rc)
		goto out;
	why[0] = 0;
	rc = fs_branch_quiesce(fs, &bi, why, sizeof(why));
	if (rc) {
		/* Busy, or it could not be told (-ENOMEM: refused too). */
		if (why[0])
			FS_WARN(fs, "cannot rename branch '%s': %s", name, why);
		goto out;
	}
	rc = fs_root_still_named(fs, name, bi.id);
	tried = rc == 0;
	if (tried)
		rc = fs_branch_rename(fs, bi.id, name, newname);
	fs_branch_end_change(fs, bi.id);
	if (rc && tried &&
	    store_branch_lookup(fs->store, newname, &other) == 0 &&
	    other.id == bi.id)
		/* Made, but the sync after it failed. */
		FS_ERR(fs,
		       "renamed branch '%s' to '%s', but could not sync the store: %s",
		       name, newname, strerror(-rc));
	else if (rc == 0)
		FS_INFO(fs, "renamed branch '%s' to '%s'", name, newname);
	else
		goto out;
	{
		/* The branch's symlinks into itself name it (fs_link.c): the
		 * kernel must not keep their old targets.  Before the reply,
		 * so that rename(2) returns with them gone. */
		size_t nlinks;
		int r = fs_invalidate_nodes(fs, bi.id, FS_NODE_LINK, &nlinks);

		if (r)
			FS_WARN(fs,
				"renamed branch '%s' to '%s', but could not drop "
				"the cached targets of its %zu symlinks: %s",
				name, newname, nlinks, strerror(-r));
	}
	fs_root_touch(fs);
out:
	fuse_reply_err(req, -rc);
}

int fs_root_list(struct fs *fs, struct fs_dir *d)
{
	struct store_branch_info *list = NULL;
	size_t n = 0, i;
	int rc;

	rc = store_branch_list(fs->store, &list, &n);
	if (rc)
		return rc;
	d->ents = calloc(n + 2, sizeof(*d->ents));
	if (!d->ents) {
		rc = -ENOMEM;
		goto out_free;
	}
	d->ents[0].name = strdup(".");
	d->ents[1].name = strdup("..");
	d->ents[0].nodeid = d->ents[1].nodeid = FUSE_ROOT_ID;
	d->ents[0].mode = d->ents[1].mode = S_IFDIR;
	d->n = 2;
	for (i = 0; i < n; i++) {
		struct fs_dir_ent *de = &d->ents[d->n];

		de->name = strdup(list[i].name);
		if (!de->name)
			break;
		de->nodeid = fs_nodeid(list[i].id, list[i].root_ino);
		de->mode = S_IFDIR;
		d->n++;
	}
	if (!d->ents[0].name || !d->ents[1].name || i < n)
		rc = -ENOMEM;
out_free:
	free(list);
	return rc;
}
