/* SPDX-License-Identifier: MIT */
/*
 * fs_link.c - symbolic links into their own branch, and the tablespace
 * rule for new branches.
 *
 * Postgres makes a tablespace as a symlink pg_tblspc/OID -> LOCATION, an
 * absolute path.  With LOCATION inside the branch (/mnt/pg/main/ts), a
 * branch of main would inherit a link into main's tree, and its server
 * would write main's tablespace files under main's running server.  So:
 *
 *  - A symlink made in branch B whose target is an absolute path into the
 *    tree of B or of one of B's ancestors, spelled as the mount names them
 *    when the link is made ("MNT/NAME" or "MNT/NAME/..."), is stored
 *    relative to the branch root: the byte FS_LINK_OWN, then the rest of
 *    the path after MNT/NAME ("" or "/...").  Ancestors count because WAL
 *    replay on a new branch recreates a tablespace's link with the
 *    parent's LOCATION.
 *  - readlink and st_size render such a link as MNT/NAME/rest with the
 *    mount point and the name of the branch that reads it, at the time of
 *    the read: in pr-1, a branch of main, the link reads /mnt/pg/pr-1/ts;
 *    after `mv main prod`, main's reads /mnt/pg/prod/ts; a store mounted
 *    elsewhere follows the new mount point.  A branch rename therefore
 *    drops the kernel's cached targets of the branch's symlinks.
 *  - A target that itself begins with FS_LINK_OWN is stored with one more
 *    FS_LINK_OWN in front and reads back unchanged.  Every other target is
 *    stored as given.  (A link an older build stored whose target began
 *    with that byte now reads without it; no other target changes.)
 *  - fs_branch_check_fork() refuses (-EXDEV) to branch a parent whose
 *    pg_tblspc holds a link that leads out of the parent's tree, or whose
 *    pg_wal is such a link (initdb --waldir): an absolute path stored as
 *    given (another filesystem, another branch, a link into the branch
 *    made by an older build or through another spelling of the mount
 *    point) or a path that climbs above the branch root with "..".  The
 *    branch's server would share those files with the parent's.  In-place
 *    tablespaces and a pg_wal directory are part of the branch.
 *
 * Deliberately not done: following symlinks inside a target, or other
 * spellings of the mount point (a bind mount, a path through a symlink):
 * such a target is stored as given, and a tablespace that uses it is
 * refused at the next branch with a log line that says what to do.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "fs_int.h"

#define FS_LINK_OWN '\x01'

int fs_link_encode(struct fs *fs, uint64_t br, const char *target, char *out,
		   size_t outsz)
{
	struct store_branch_info *anc = NULL;
	size_t tl = strlen(target), ml, n = 0, i;
	const char *after;

	if (target[0] == FS_LINK_OWN) {
		if (tl + 1 > STORE_SYMLINK_MAX || tl + 2 > outsz)
			return -ENAMETOOLONG;
		out[0] = FS_LINK_OWN;
		memcpy(out + 1, target, tl + 1);
		return 0;
	}
	ml = fs->mountpoint ? strlen(fs->mountpoint) : 0;
	if (ml > 1 && strncmp(target, fs->mountpoint, ml) == 0 &&
	    target[ml] == '/' &&
	    store_branch_ancestry(fs->store, br, &anc, &n) == 0) {
		after = target + ml + 1;
		for (i = 0; i < n; i++) {
			size_t nl = strlen(anc[i].name);

			if (strncmp(after, anc[i].name, nl) != 0 ||
			    (after[nl] != '/' && after[nl] != 0))
				continue;
			after += nl;
			if (strlen(after) + 2 > outsz)
				break;
			out[0] = FS_LINK_OWN;
			memcpy(out + 1, after, strlen(after) + 1);
			free(anc);
			return 0;
		}
		free(anc);
	}
	if (tl + 1 > outsz)
		return -ENAMETOOLONG;
	memcpy(out, target, tl + 1);
	return 0;
}

ssize_t fs_link_render(struct fs *fs, uint64_t br, const char *stored,
		       char *out, size_t outsz)
{
	struct store_branch_info bi;
	int n, rc;

	if (stored[0] != FS_LINK_OWN || stored[1] == FS_LINK_OWN) {
		const char *t = stored[0] == FS_LINK_OWN ? stored + 1 : stored;
		size_t tl = strlen(t);

		if (tl + 1 > outsz)
			return -ENAMETOOLONG;
		memcpy(out, t, tl + 1);
		return (ssize_t)tl;
	}
	rc = store_branch_get(fs->store, br, &bi);
	if (rc)
		return rc;
	n = snprintf(out, outsz, "%s/%s%s",
		     fs->mountpoint ? fs->mountpoint : "", bi.name, stored + 1);
	if (n < 0 || (size_t)n >= outsz || (size_t)n > STORE_SYMLINK_MAX)
		return -ENAMETOOLONG;
	return n;
}

ssize_t fs_link_read(struct fs *fs, uint64_t br, uint64_t ino, char *out,
		     size_t outsz)
{
	char *stored;
	ssize_t n;

	stored = malloc(STORE_SYMLINK_MAX + 1);
	if (!stored)
		return -ENOMEM;
	n = store_readlink(fs->store, br, STORE_SEQ_LATEST, ino, stored,
			   STORE_SYMLINK_MAX + 1);
	if (n >= 0)
		n = fs_link_render(fs, br, stored, out, outsz);
	free(stored);
	return n;
}

void fs_link_attr(struct fs *fs, uint64_t nodeid, struct store_attr *a)
{
	char *buf;
	ssize_t n;

	if (!S_ISLNK(a->mode) || fs_branch_of(nodeid) == 0)
		return;
	buf = malloc(STORE_SYMLINK_MAX + 1);
	if (!buf)
		return; /* the stored length: only st_size is off */
	n = fs_link_read(fs, fs_branch_of(nodeid), fs_ino_of(nodeid), buf,
			 STORE_SYMLINK_MAX + 1);
	if (n >= 0)
		a->size = (uint64_t)n;
	free(buf);
}

/* true when path, read from a directory depth levels below the branch
 * root, climbs above the root through "..". */
static bool fs_link_climbs(const char *path, int depth)
{
	const char *p = path;

	while (*p) {
		const char *e = strchr(p, '/');
		size_t len = e ? (size_t)(e - p) : strlen(p);

		if (len == 2 && p[0] == '.' && p[1] == '.') {
			if (--depth < 0)
				return true;
		} else if (len && !(len == 1 && p[0] == '.')) {
			depth++;
		}
		p += len;
		if (*p == '/')
			p++;
	}
	return false;
}

/* true when a link stored in a directory depth levels below its branch's
 * root leads out of the branch's tree. */
static bool fs_link_leaves(const char *stored, int depth)
{
	if (stored[0] == FS_LINK_OWN && stored[1] != FS_LINK_OWN)
		return fs_link_climbs(stored + 1, 0);
	if (stored[0] == FS_LINK_OWN)
		stored++;
	return stored[0] == '/' || fs_link_climbs(stored, depth);
}

/* If entry ino of the parent (path, depth levels below its root) is a
 * symlink out of the parent's tree: -EXDEV and why.  0 if not; another
 * negative errno when it cannot be read. */
static int fs_link_check(struct fs *fs, const struct store_branch_info *parent,
			 uint64_t seq, uint64_t ino, const char *path,
			 int depth, const char *what, char *buf, char *why,
			 size_t whylen)
{
	ssize_t len;

	len = store_readlink(fs->store, parent->id, seq, ino, buf,
			     STORE_SYMLINK_MAX + 1);
	if (len == -ENOENT || len == -EINVAL)
		return 0; /* gone meanwhile, or not a symlink */
	if (len < 0)
		return (int)len;
	if (!fs_link_leaves(buf, depth))
		return 0;
	snprintf(
		why, whylen,
		"its link %s leads out of the branch, to '%s': a branch's "
		"server would write the same %s as the server of '%s' (keep "
		"them inside the branch, linked through the mount: '%s/%s/...')",
		path, buf[0] == FS_LINK_OWN ? buf + 1 : buf, what, parent->name,
		fs->mountpoint ? fs->mountpoint : "MNT", parent->name);
	return -EXDEV;
}

int fs_branch_check_fork(struct fs *fs, const struct store_branch_info *parent,
			 uint64_t seq, char *why, size_t whylen)
{
	struct store_dirent *ents = NULL;
	char path[STORE_NAME_MAX + 16];
	size_t n = 0, i;
	uint64_t ino;
	char *buf;
	int rc;

	buf = malloc(STORE_SYMLINK_MAX + 1);
	if (!buf) {
		rc = -ENOMEM;
		goto out;
	}
	/* initdb --waldir makes pg_wal a link. */
	rc = store_lookup(fs->store, parent->id, seq, parent->root_ino,
			  "pg_wal", &ino);
	if (rc == 0)
		rc = fs_link_check(fs, parent, seq, ino, "pg_wal", 0, "WAL",
				   buf, why, whylen);
	else if (rc == -ENOENT || rc == -ENOTDIR)
		rc = 0;
	if (rc)
		goto out;
	rc = store_lookup(fs->store, parent->id, seq, parent->root_ino,
			  "pg_tblspc", &ino);
	if (rc == 0)
		rc = store_readdir(fs->store, parent->id, seq, ino, &ents, &n);
	if (rc == -ENOENT || rc == -ENOTDIR) {
		rc = 0; /* not a data directory, or no tablespace */
		goto out;
	}
	for (i = 0; rc == 0 && i < n; i++) {
		if (!S_ISLNK(ents[i].mode))
			continue;
		snprintf(path, sizeof(path), "pg_tblspc/%s", ents[i].name);
		rc = fs_link_check(fs, parent, seq, ents[i].ino, path, 1,
				   "tablespace files", buf, why, whylen);
	}
out:
	if (rc && rc != -EXDEV) {
		FS_WARN(fs,
			"cannot read the links of branch '%s' (%s); branching "
			"it anyway",
			parent->name, strerror(-rc));
		rc = 0;
	}
	free(buf);
	free(ents);
	return rc;
}
