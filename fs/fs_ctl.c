/* SPDX-License-Identifier: MIT */
/*
 * fs_ctl.c - what the control plane asks of a mounted filesystem: whether
 * a branch is busy, whether a user may create branches in the branch root,
 * the default parent, and whether a branch has open files (for GC).
 *
 * The default parent string is swapped under root_mu and an old one is
 * never freed before fs_free (fs_root_mkdir reads it without the lock); a
 * change of default parent is rare, so the few bytes kept are bounded.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fs_int.h"

int fs_branch_busy(struct fs *fs, uint64_t branch_id, char *why,
		   size_t whylen)
{
	int rc = fs_branch_begin_change(fs, branch_id, why, whylen);

	if (rc == 0)
		fs_branch_end_change(fs, branch_id);
	return rc;
}

bool fs_branch_has_open(struct fs *fs, uint64_t branch_id)
{
	struct fs_map_ent *e;
	bool open;

	pthread_mutex_lock(&fs->br_mu);
	e = fs_map_find(&fs->br, branch_id);
	open = e && e->count > 0;
	pthread_mutex_unlock(&fs->br_mu);
	return open;
}

int fs_root_may_create(struct fs *fs, uid_t uid, gid_t gid)
{
	mode_t mode;
	uid_t ruid;
	gid_t rgid;
	unsigned bits;

	if (uid == 0)
		return 0;
	pthread_mutex_lock(&fs->root_mu);
	mode = fs->root_mode;
	ruid = fs->root_uid;
	rgid = fs->root_gid;
	pthread_mutex_unlock(&fs->root_mu);
	if (uid == ruid)
		bits = (mode >> 6) & 7;
	else if (gid == rgid)
		bits = (mode >> 3) & 7;
	else
		bits = mode & 7;
	return (bits & 3) == 3 ? 0 : -EACCES;
}

void fs_get_default_parent(struct fs *fs, char *buf, size_t bufsz)
{
	pthread_mutex_lock(&fs->root_mu);
	snprintf(buf, bufsz, "%s", fs->default_parent);
	pthread_mutex_unlock(&fs->root_mu);
}

int fs_set_default_parent(struct fs *fs, const char *name)
{
	char *n = strdup(name);

	if (!n)
		return -ENOMEM;
	pthread_mutex_lock(&fs->root_mu);
	/* XXX: the old string is leaked on purpose (see top of file). */
	fs->default_parent = n;
	pthread_mutex_unlock(&fs->root_mu);
	return 0;
}
