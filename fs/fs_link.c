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
 *    tablespaces and a pg_wal directory are part of the branch.  Both
 *    are read in each of the parent's data directories (store_drop_dirs:
 *    the root, or 15/main, 18/docker below it), and ".." climbs from
 *    where the link is (15/main/pg_wal -> ../../wal stays inside).
 *
 * Deliberately not done: following symlinks inside a target, or other
 * spellings of the mount point (a bind mount, a path through a symlink):
 * such a target is stored as given, and a tablespace that uses it is
 * refused at the next branch with a log line that says what to do.
 */
#include <errno.h>
#include <signal.h>
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

/* One link of a data directory's: path from the branch root (pg_wal,
 * 15/main/pg_tblspc/OID), the depth of the directory that holds it below
 * the root, its stored target, what it holds.  Nonzero ends the walk with
 * that value. */
typedef int (*fs_link_fn)(void *ctx, const char *path, int depth,
			  const char *stored, const char *what);

/* Room for a link's path: a data directory's, then pg_tblspc/NAME. */
#define FS_LINK_PATH_MAX (STORE_DROP_PATH_MAX + STORE_NAME_MAX + 16)

/* fn for the link ino of branch br, unless it is gone meanwhile or is
 * not a symlink. */
static int fs_data_link(struct fs *fs, uint64_t br, uint64_t seq, uint64_t ino,
			char *buf, const char *path, int depth,
			const char *what, fs_link_fn fn, void *ctx)
{
	ssize_t len = store_readlink(fs->store, br, seq, ino, buf,
				     STORE_SYMLINK_MAX + 1);

	if (len == -ENOENT || len == -EINVAL)
		return 0;
	if (len < 0)
		return (int)len;
	return fn(ctx, path, depth, buf, what);
}

/* fs_data_links in one data directory d. */
static int fs_data_dir_links(struct fs *fs, uint64_t br, uint64_t seq,
			     const struct store_drop_dir *d, char *buf,
			     fs_link_fn fn, void *ctx)
{
	struct store_dirent *ents = NULL;
	const char *sep = d->path[0] ? "/" : "";
	char path[FS_LINK_PATH_MAX];
	size_t n = 0, i;
	uint64_t ino;
	int rc;

	rc = store_lookup(fs->store, br, seq, d->ino, "pg_wal", &ino);
	if (rc == 0) {
		snprintf(path, sizeof(path), "%s%spg_wal", d->path, sep);
		rc = fs_data_link(fs, br, seq, ino, buf, path, (int)d->depth,
				  "WAL", fn, ctx);
	} else if (rc == -ENOENT || rc == -ENOTDIR) {
		rc = 0;
	}
	if (rc)
		return rc;
	rc = store_lookup(fs->store, br, seq, d->ino, "pg_tblspc", &ino);
	if (rc == 0)
		rc = store_readdir(fs->store, br, seq, ino, &ents, &n);
	if (rc == -ENOENT || rc == -ENOTDIR)
		return 0; /* not a data directory, or no tablespace */
	for (i = 0; rc == 0 && i < n; i++) {
		if (!S_ISLNK(ents[i].mode))
			continue;
		snprintf(path, sizeof(path), "%s%spg_tblspc/%s", d->path, sep,
			 ents[i].name);
		rc = fs_data_link(fs, br, seq, ents[i].ino, buf, path,
				  (int)d->depth + 1, "tablespace files", fn,
				  ctx);
	}
	free(ents);
	return rc;
}

/* Call fn for the links of branch br's data directories (as of seq) that
 * Postgres follows to files outside them: pg_wal (initdb --waldir) and
 * the tablespaces in pg_tblspc.  The data directories are those of
 * store_drop_dirs (the root, or up to FS_PG_DATA_DEPTH levels below it:
 * 15/main, 18/docker), so the cost is bounded as for the fork's drop.
 * 0, fn's nonzero value, or a negative errno when they cannot be read. */
static int fs_data_links(struct fs *fs, uint64_t br, uint64_t seq,
			 uint64_t root_ino, fs_link_fn fn, void *ctx)
{
	struct store_drop_dir *dirs;
	size_t n = 0, i;
	char *buf;
	int rc;

	dirs = malloc(STORE_DROP_DIRS * sizeof(*dirs));
	buf = malloc(STORE_SYMLINK_MAX + 1);
	if (!dirs || !buf) {
		rc = -ENOMEM;
		goto out;
	}
	rc = store_drop_dirs_named(fs->store, br, seq, root_ino, dirs, &n);
	if (rc == -ENOENT) {
		/* gone meanwhile: the root alone */
		dirs[0].ino = root_ino;
		dirs[0].depth = 0;
		dirs[0].path[0] = 0;
		n = 1;
		rc = 0;
	}
	for (i = 0; rc == 0 && i < n; i++)
		rc = fs_data_dir_links(fs, br, seq, &dirs[i], buf, fn, ctx);
out:
	free(buf);
	free(dirs);
	return rc;
}

struct fs_fork_check {
	struct fs *fs;
	const struct store_branch_info *parent;
	char *why;
	size_t whylen;
};

/* A link out of the parent's tree: -EXDEV and why. */
static int fs_fork_link(void *ctx, const char *path, int depth,
			const char *stored, const char *what)
{
	struct fs_fork_check *c = ctx;

	if (!fs_link_leaves(stored, depth))
		return 0;
	snprintf(
		c->why, c->whylen,
		"its link %s leads out of the branch, to '%s': a branch's "
		"server would write the same %s as the server of '%s' (keep "
		"them inside the branch, linked through the mount: '%s/%s/...')",
		path, stored[0] == FS_LINK_OWN ? stored + 1 : stored, what,
		c->parent->name, c->fs->mountpoint ? c->fs->mountpoint : "MNT",
		c->parent->name);
	return -EXDEV;
}

int fs_branch_check_fork(struct fs *fs, const struct store_branch_info *parent,
			 uint64_t seq, char *why, size_t whylen)
{
	struct fs_fork_check c = { fs, parent, why, whylen };
	int rc;

	rc = fs_data_links(fs, parent->id, seq, parent->root_ino, fs_fork_link,
			   &c);
	if (rc && rc != -EXDEV) {
		FS_WARN(fs,
			"cannot read the links of branch '%s' (%s); branching "
			"it anyway",
			parent->name, strerror(-rc));
		rc = 0;
	}
	return rc;
}

/* ---- the links cache ----
 *
 * fs_branch_linked_busy() asks every other branch for its pg_wal and
 * pg_tblspc links, three store reads or more per branch: 23 ms per rmdir
 * with 1000 branches.  What a branch reads at its head changes only with
 * its own writes and a reset (store_branch_stamp), so each branch's links
 * that could lead into another branch (those stored as absolute paths) are
 * kept with the stamp taken before they were read, and read again only
 * when the stamp has moved: an idle branch costs a hash lookup.  Entries
 * are looked at and replaced under links.mu only (never used outside it);
 * the reads run without it.  A check that went through the whole branch
 * list drops the entries of branches it did not meet (deleted ones). */

struct fs_links_ent {
	uint64_t id;
	struct store_stamp stamp;
	uint64_t pass; /* the last check that met the branch */
	struct fs_links_ent *next;
	size_t n;
	struct fs_abs_link {
		const char *path;
		const char *stored;
		const char *what;
	} link[]; /* then the strings */
};

/* fs_links_collect's list of a branch's absolute links, as read. */
struct fs_links_read {
	struct fs_abs_link *link;
	size_t n, cap, bytes;
	bool nomem;
};

void fs_links_init(struct fs *fs)
{
	memset(&fs->links, 0, sizeof(fs->links));
	pthread_mutex_init(&fs->links.mu, NULL);
}

void fs_links_release(struct fs *fs)
{
	size_t i;

	for (i = 0; i < fs->links.nb; i++) {
		struct fs_links_ent *e = fs->links.b[i], *next;

		for (; e; e = next) {
			next = e->next;
			free(e);
		}
	}
	free(fs->links.b);
	pthread_mutex_destroy(&fs->links.mu);
}

static size_t fs_links_hash(uint64_t id, size_t nb)
{
	id ^= id >> 29;
	id *= UINT64_C(0xbf58476d1ce4e5b9);
	id ^= id >> 32;
	return (size_t)id & (nb - 1);
}

/* links.mu held.  The entry of branch id, or NULL. */
static struct fs_links_ent **fs_links_slot(struct fs *fs, uint64_t id)
{
	struct fs_links_ent **pp;

	if (!fs->links.nb)
		return NULL;
	for (pp = &fs->links.b[fs_links_hash(id, fs->links.nb)]; *pp;
	     pp = &(*pp)->next) {
		if ((*pp)->id == id)
			return pp;
	}
	return NULL;
}

/* links.mu held.  Put e in place of branch e->id's entry; false (e not
 * taken) when the table cannot grow. */
static bool fs_links_put(struct fs *fs, struct fs_links_ent *e)
{
	struct fs_links_ent **pp = fs_links_slot(fs, e->id);
	size_t h, i;

	if (pp) {
		struct fs_links_ent *old = *pp;

		e->next = old->next;
		*pp = e;
		free(old);
		return true;
	}
	if (fs->links.n >= fs->links.nb) {
		size_t nb = fs->links.nb ? fs->links.nb * 2 : 64;
		struct fs_links_ent **b = calloc(nb, sizeof(*b));

		if (!b && !fs->links.nb)
			return false;
		for (i = 0; b && i < fs->links.nb; i++) {
			struct fs_links_ent *x = fs->links.b[i], *next;

			for (; x; x = next) {
				next = x->next;
				h = fs_links_hash(x->id, nb);
				x->next = b[h];
				b[h] = x;
			}
		}
		if (b) {
			free(fs->links.b);
			fs->links.b = b;
			fs->links.nb = nb;
		}
	}
	h = fs_links_hash(e->id, fs->links.nb);
	e->next = fs->links.b[h];
	fs->links.b[h] = e;
	fs->links.n++;
	return true;
}

/* links.mu held.  Drop the entries no check met since pass. */
static void fs_links_sweep(struct fs *fs, uint64_t pass)
{
	size_t i;

	for (i = 0; i < fs->links.nb; i++) {
		struct fs_links_ent **pp = &fs->links.b[i];

		while (*pp) {
			struct fs_links_ent *e = *pp;

			if (e->pass >= pass) {
				pp = &e->next;
				continue;
			}
			*pp = e->next;
			free(e);
			fs->links.n--;
		}
	}
}

/* fs_link_fn keeping the links stored as absolute paths (the only ones
 * fs_into_link can match). */
static int fs_links_collect(void *ctx, const char *path, int depth,
			    const char *stored, const char *what)
{
	struct fs_links_read *r = ctx;

	(void)depth;
	if (stored[0] == FS_LINK_OWN)
		return 0;
	if (r->n == r->cap) {
		size_t cap = r->cap ? r->cap * 2 : 4;
		struct fs_abs_link *l = realloc(r->link, cap * sizeof(*l));

		if (!l) {
			r->nomem = true;
			return -ENOMEM;
		}
		r->link = l;
		r->cap = cap;
	}
	r->link[r->n].path = strdup(path);
	r->link[r->n].stored = strdup(stored);
	r->link[r->n].what = what;
	if (!r->link[r->n].path || !r->link[r->n].stored) {
		free((char *)r->link[r->n].path);
		free((char *)r->link[r->n].stored);
		r->nomem = true;
		return -ENOMEM;
	}
	r->bytes += strlen(path) + strlen(stored) + 2;
	r->n++;
	return 0;
}

/* One entry, its strings inside it, from what fs_links_collect read. */
static struct fs_links_ent *fs_links_ent_new(uint64_t id,
					     const struct store_stamp *st,
					     const struct fs_links_read *r)
{
	struct fs_links_ent *e =
		malloc(sizeof(*e) + r->n * sizeof(e->link[0]) + r->bytes);
	char *p;
	size_t i;

	if (!e)
		return NULL;
	e->id = id;
	e->stamp = *st;
	e->pass = 0;
	e->next = NULL;
	e->n = r->n;
	p = (char *)&e->link[r->n];
	for (i = 0; i < r->n; i++) {
		size_t lp = strlen(r->link[i].path) + 1;
		size_t ls = strlen(r->link[i].stored) + 1;

		e->link[i].path = memcpy(p, r->link[i].path, lp);
		p += lp;
		e->link[i].stored = memcpy(p, r->link[i].stored, ls);
		p += ls;
		e->link[i].what = r->link[i].what;
	}
	return e;
}

static void fs_links_read_free(struct fs_links_read *r)
{
	size_t i;

	for (i = 0; i < r->n; i++) {
		free((char *)r->link[i].path);
		free((char *)r->link[i].stored);
	}
	free(r->link);
}

/* Copy into p the links l (n of them, of branch all[bidx]) that lead
 * into the mount: stored as absolute paths starting with mnt ("MNT/").
 * 0 or -ENOMEM. */
static int fs_links_keep(struct fs_probe *p, size_t bidx,
			 const struct fs_abs_link *l, size_t n, const char *mnt,
			 size_t mlen)
{
	struct fs_probe_link *k;
	size_t i;

	for (i = 0; i < n; i++) {
		if (strncmp(l[i].stored, mnt, mlen) != 0)
			continue;
		k = fs_probe_grow(p->links, &p->linkscap, p->nlinks,
				  sizeof(*k));
		if (!k)
			return -ENOMEM;
		p->links = k;
		k = &p->links[p->nlinks];
		k->branch = bidx;
		k->what = l[i].what;
		k->path = strdup(l[i].path);
		k->stored = strdup(l[i].stored);
		if (!k->path || !k->stored) {
			free(k->path);
			free(k->stored);
			return -ENOMEM;
		}
		p->nlinks++;
	}
	return 0;
}

/* The links of branch all[bidx] (b) that lead into the mount, into p
 * (fs_links_keep): from the cache while b's stamp has not moved, else
 * read and cached.  0, or a negative errno when they cannot be read. */
static int fs_links_of(struct fs *fs, const struct store_branch_info *b,
		       size_t bidx, uint64_t pass, struct fs_probe *p,
		       const char *mnt, size_t mlen)
{
	struct fs_links_read r = { 0 };
	struct fs_links_ent **pp, *e;
	struct store_stamp st;
	int rc;

	rc = store_branch_stamp(fs->store, b->id, &st);
	if (rc)
		return rc == -ENOENT ? 0 : rc; /* deleted meanwhile */
	pthread_mutex_lock(&fs->links.mu);
	pp = fs_links_slot(fs, b->id);
	if (pp && !memcmp(&(*pp)->stamp, &st, sizeof(st))) {
		if ((*pp)->pass < pass)
			(*pp)->pass = pass;
		rc = fs_links_keep(p, bidx, (*pp)->link, (*pp)->n, mnt, mlen);
		pthread_mutex_unlock(&fs->links.mu);
		return rc;
	}
	pthread_mutex_unlock(&fs->links.mu);
	rc = fs_data_links(fs, b->id, STORE_SEQ_LATEST, b->root_ino,
			   fs_links_collect, &r);
	if (rc == 0 && (e = fs_links_ent_new(b->id, &st, &r)) != NULL) {
		e->pass = pass;
		pthread_mutex_lock(&fs->links.mu);
		if (!fs_links_put(fs, e))
			free(e);
		pthread_mutex_unlock(&fs->links.mu);
	}
	if (rc == 0)
		rc = fs_links_keep(p, bidx, r.link, r.n, mnt, mlen);
	fs_links_read_free(&r);
	return r.nomem ? -ENOMEM : rc;
}

/* The links of every branch of p's list that lead into the mount, read
 * once per probe, so that a listing's check of each branch reads each
 * branch's links once, not once per branch: 0, -ENOMEM, or the list's
 * error (logged; no branch is then counted as keeping files in
 * another). */
static int fs_links_gather(struct fs *fs, struct fs_probe *p)
{
	const struct store_branch_info *all;
	size_t n = 0, i, mlen;
	uint64_t pass;
	char *mnt;
	int rc;

	if (p->linked)
		return p->links_rc;
	p->linked = true;
	if (asprintf(&mnt, "%s/", fs->mountpoint) < 0) {
		p->links_rc = -ENOMEM;
		return -ENOMEM;
	}
	mlen = strlen(mnt);
	pthread_mutex_lock(&fs->links.mu);
	pass = ++fs->links.pass;
	pthread_mutex_unlock(&fs->links.mu);
	rc = fs_probe_branches(fs, p, &all, &n);
	if (rc && rc != -ENOMEM)
		FS_WARN(fs,
			"cannot list branches to see whose server keeps files in "
			"another branch (%s); not counted",
			strerror(-rc));
	for (i = 0; rc == 0 && i < n; i++) {
		int lrc = fs_links_of(fs, &all[i], i, pass, p, mnt, mlen);

		/* Out of memory is not a verdict: the change is refused
		 * (-ENOMEM, as the header says) rather than let through. */
		if (lrc == -ENOMEM)
			rc = -ENOMEM;
		else if (lrc < 0)
			FS_WARN(fs,
				"cannot read the links of branch '%s' (%s); "
				"not counted as keeping files in another branch",
				all[i].name, strerror(-lrc));
	}
	/* The whole list was met: forget the branches that are gone. */
	if (rc == 0) {
		pthread_mutex_lock(&fs->links.mu);
		fs_links_sweep(fs, pass);
		pthread_mutex_unlock(&fs->links.mu);
	}
	free(mnt);
	p->links_rc = rc;
	return rc;
}

int fs_branch_linked_busy(struct fs *fs, const struct store_branch_info *bi,
			  struct fs_probe *p, char *why, size_t whylen)
{
	const struct store_branch_info *all, *b;
	size_t n = 0, i, plen;
	char *prefix = NULL;
	int rc;

	if (!fs->mountpoint)
		return 0;
	rc = fs_links_gather(fs, p);
	if (rc == 0 && p->nlinks &&
	    asprintf(&prefix, "%s/%s", fs->mountpoint, bi->name) < 0)
		rc = -ENOMEM;
	if (rc == -ENOMEM) {
		if (why)
			snprintf(why, whylen,
				 "out of memory while looking for servers that "
				 "keep files in branch '%s'",
				 bi->name);
		return -ENOMEM;
	}
	if (rc || !p->nlinks)
		return 0;
	fs_probe_branches(fs, p, &all, &n);
	plen = strlen(prefix);
	for (i = 0; rc == 0 && i < p->nlinks; i++) {
		const struct fs_probe_link *l = &p->links[i];
		pid_t pid;
		long srv;

		b = &all[l->branch];
		if (b->id == bi->id || strncmp(l->stored, prefix, plen) ||
		    (l->stored[plen] != '/' && l->stored[plen] != 0))
			continue;
		pid = fs_postmaster_pid(fs, b);
		srv = fs_branch_server_in(fs, b, pid, p);
		/* Where the mount point cannot be read, a live pid counts
		 * (as in fs_branch_no_postmaster). */
		if (srv < 0)
			srv = pid > 0 && (kill(pid, 0) == 0 || errno == EPERM) ?
				      pid :
				      0;
		if (srv == 0)
			continue;
		if (why)
			snprintf(why, whylen,
				 "the server of branch '%s' (pid %ld) keeps "
				 "its %s in it (%s -> %s)",
				 b->name, srv, l->what, l->path, l->stored);
		rc = -EBUSY;
	}
	free(prefix);
	return rc;
}
