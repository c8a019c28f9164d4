/* SPDX-License-Identifier: MIT */
/*
 * fs_ctl.c - what the control plane asks of a mounted filesystem: whether
 * a branch is busy, whether a user may create branches in the branch root
 * or remove and rename them there, the default parent, and whether a
 * branch or an inode has open files (for GC of unlinked inodes).
 *
 * The default parent string is swapped under root_mu; readers
 * (fs_root_mkdir) copy it under the lock, so the old one is freed at once.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "fs_int.h"

int fs_branch_busy(struct fs *fs, struct fs_probe *p, uint64_t branch_id,
		   char *why, size_t whylen)
{
	struct store_branch_info bi;
	struct fs_probe *own = NULL;
	struct fs_map_ent *e;
	uint64_t n = 0;
	int rc;

	rc = store_branch_get(fs->store, branch_id, &bi);
	if (rc)
		return rc;
	if (!p) {
		rc = fs_probe_for(fs, &bi, true, &own, why, whylen);
		if (rc)
			return rc;
		p = own;
	}
	/* The rules of a delete (fs_branch_quiesce): a listing that said
	 * "not in use" of a branch a delete then refused misled scripts. */
	rc = fs_branch_check(fs, &bi, p, why, whylen);
	fs_probe_free(own);
	if (rc)
		return rc;
	pthread_mutex_lock(&fs->br_mu);
	e = fs_map_find(&fs->br, branch_id);
	if (e)
		n = e->count;
	pthread_mutex_unlock(&fs->br_mu);
	if (n) {
		if (why)
			snprintf(why, whylen,
				 "branch '%s' has %llu open file%s", bi.name,
				 (unsigned long long)n, n == 1 ? "" : "s");
		return -EBUSY;
	}
	return 0;
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

int fs_root_may_create(struct fs *fs, uid_t uid, gid_t gid, const gid_t *groups,
		       size_t ngroups)
{
	bool in_group;
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
	in_group = gid == rgid;
	for (size_t i = 0; !in_group && i < ngroups; i++)
		in_group = groups[i] == rgid;
	if (uid == ruid)
		bits = (mode >> 6) & 7;
	else if (in_group)
		bits = (mode >> 3) & 7;
	else
		bits = mode & 7;
	return (bits & 3) == 3 ? 0 : -EACCES;
}

int fs_root_may_remove(struct fs *fs, uid_t uid, gid_t gid, const gid_t *groups,
		       size_t ngroups, uid_t owner_uid)
{
	int rc = fs_root_may_create(fs, uid, gid, groups, ngroups);

	return rc ? rc : fs_root_sticky_check(fs, uid, owner_uid);
}

/* Open, or still known to the kernel: an unlinked file it has not
 * forgotten is held by something (an O_PATH descriptor, a working
 * directory) that can open it again through /proc, and reads its data. */
bool fs_inode_in_use(struct fs *fs, uint64_t branch_id, uint64_t ino)
{
	uint64_t id = fs_nodeid(branch_id, ino);
	bool used;

	pthread_mutex_lock(&fs->br_mu);
	used = fs_map_find(&fs->opens, id) != NULL;
	pthread_mutex_unlock(&fs->br_mu);
	if (!used) {
		pthread_mutex_lock(&fs->nodes_mu);
		used = fs_map_find(&fs->nodes, id) != NULL;
		pthread_mutex_unlock(&fs->nodes_mu);
	}
	return used;
}

void fs_get_default_parent(struct fs *fs, char *buf, size_t bufsz)
{
	pthread_mutex_lock(&fs->root_mu);
	snprintf(buf, bufsz, "%s", fs->default_parent);
	pthread_mutex_unlock(&fs->root_mu);
}

/* Make name the default parent, in memory and in the store.  Under
 * default_mu: put and swap are one step (fs_branch_rename's too), and so
 * is the check that a branch has the name: a rename of it (which takes
 * default_mu) comes before, and the name is refused, or after, and the
 * default follows it.  Checked by the caller only, a rename between the
 * check and the put left the default naming no branch. */
static int fs_do_set_default(struct fs *fs, const char *name)
{
	struct store_branch_info bi;
	char *copy, *old = NULL;
	int rc;

	rc = store_name_check(name);
	if (rc)
		return rc;
	copy = strdup(name);
	if (!copy)
		return -ENOMEM;
	pthread_mutex_lock(&fs->default_mu);
	rc = store_branch_lookup(fs->store, name, &bi);
	if (rc)
		goto out_unlock;
	/* Kept in the store for the next mount. */
	rc = store_setting_put(fs->store, "default_parent", name);
	if (rc) {
		FS_WARN(fs,
			"cannot keep '%s' as the default parent for the next mount: %s",
			name, strerror(-rc));
		goto out_unlock;
	}
	pthread_mutex_lock(&fs->root_mu);
	old = fs->default_parent;
	fs->default_parent = copy;
	copy = NULL;
	pthread_mutex_unlock(&fs->root_mu);
out_unlock:
	pthread_mutex_unlock(&fs->default_mu);
	free(copy);
	free(old);
	return rc;
}

int fs_branch_rename(struct fs *fs, uint64_t id, const char *old_name,
		     const char *new_name)
{
	struct store_branch_info now;
	char *copy, *old = NULL;
	bool follow;
	int rc;

	copy = strdup(new_name);
	if (!copy)
		return -ENOMEM;
	/* The rename and the kept default move in one store batch: renamed
	 * by one write and followed by a second, a crash between them left
	 * the store's default naming a branch that was gone, and every
	 * mkdir after the restart failed with ENOENT.  default_mu keeps a
	 * concurrent fs_set_default_parent out of the test and the swap. */
	pthread_mutex_lock(&fs->default_mu);
	pthread_mutex_lock(&fs->root_mu);
	follow = strcmp(fs->default_parent, old_name) == 0;
	pthread_mutex_unlock(&fs->root_mu);
	rc = store_branch_rename_set(fs->store, id, new_name,
				     follow ? "default_parent" : NULL);
	/* Made even when the sync after it failed. */
	if (follow &&
	    (rc == 0 || (store_branch_lookup(fs->store, new_name, &now) == 0 &&
			 now.id == id))) {
		pthread_mutex_lock(&fs->root_mu);
		old = fs->default_parent;
		fs->default_parent = copy;
		copy = NULL;
		pthread_mutex_unlock(&fs->root_mu);
	}
	pthread_mutex_unlock(&fs->default_mu);
	if (old)
		FS_INFO(fs, "default parent follows its rename to '%s'",
			new_name);
	free(copy);
	free(old);
	return rc;
}

int fs_set_default_parent(struct fs *fs, const char *name)
{
	int rc = fs_do_set_default(fs, name);

	if (rc == 0)
		FS_INFO(fs, "default parent is now '%s'", name);
	return rc;
}
