/* SPDX-License-Identifier: MIT */
/*
 * ctl.h - branchd's control socket: serves the JSON-lines protocol of
 * ctlproto.h to branchctl, with peer credentials (SO_PEERCRED) deciding
 * what each caller may do.
 */
#ifndef BRANCHFS_CTL_H
#define BRANCHFS_CTL_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include "pgckpt.h"
#include "store/store.h"

struct bd_ctl;

/* Connections served at once (more wait in the listen queue). */
#define BD_CTL_MAX_CONN 64
/* The most file descriptors the control socket holds: its connections,
 * the listening socket and the lock file beside it. */
#define BD_CTL_FDS_MAX (BD_CTL_MAX_CONN + 2)

/* What the control plane needs from the mounted filesystem.  Every hook
 * may be called from any connection thread at any time. */
struct bd_ctl_hooks {
	void *ctx;
	/* Whether begin_change would refuse the branch as busy, without
	 * waiting: 0, -EBUSY with a human reason in why (a running
	 * postmaster, open files, a mount elsewhere), or another negative
	 * errno with a reason in why when it cannot tell (out of memory: a
	 * change would be refused too); -ENOENT, the branch is gone.  A
	 * probe for listings: changes nothing.  probe: from probe_new, or
	 * NULL (busy looks for itself). */
	int (*busy)(void *ctx, void *probe, uint64_t branch, const char *name,
		    char *why, size_t whysz);
	/* One look at what busy needs to know of the whole system (every
	 * process), for busy over many branches: 0 and *probe, freed with
	 * probe_free, or a negative errno.  May be NULL. */
	int (*probe_new)(void *ctx, void **probe);
	void (*probe_free)(void *ctx, void *probe);
	/* Before a delete, rename or reset: 0 and the branch is held (new
	 * opens wait) until end_change, or -EBUSY with a reason in why. */
	int (*begin_change)(void *ctx, uint64_t branch, char *why,
			    size_t whysz);
	void (*end_change)(void *ctx, uint64_t branch);
	/* Rename a branch (store_branch_rename's errors), the default parent
	 * following it in the same store batch.  NULL: store_branch_rename. */
	int (*rename)(void *ctx, uint64_t branch, const char *old_name,
		      const char *new_name);
	/* A branch was deleted (new_name NULL), renamed or reset behind the
	 * kernel: drop its cached entries and data. */
	void (*changed)(void *ctx, uint64_t branch, const char *old_name,
			const char *new_name);
	/* Just before a reset, with the branch held: note what the kernel
	 * may cache of the tree being replaced, for changed to drop.  May be
	 * NULL. */
	void (*prepare_reset)(void *ctx, uint64_t branch);
	/* 0 if uid, with primary group gid and the ngroups supplementary
	 * groups, may create a branch in the branch root (write and search
	 * permission on it), else -EACCES. */
	int (*may_create)(void *ctx, uid_t uid, gid_t gid, const gid_t *groups,
			  size_t ngroups);
	/* 0 if uid (gid, groups as above) may delete, rename or reset a
	 * branch created by owner_uid: the rule of rmdir(2) and rename(2) in
	 * the branch root (write and search permission on it, else -EACCES;
	 * when it is sticky, root, its owner or the creator, else -EPERM).
	 * May be NULL: then the creator or root. */
	int (*may_remove)(void *ctx, uid_t uid, gid_t gid, const gid_t *groups,
			  size_t ngroups, uid_t owner_uid);
	/* Copy the default parent's name into buf. */
	void (*get_default)(void *ctx, char *buf, size_t bufsz);
	int (*set_default)(void *ctx, const char *name);
	/* Before a branch of parent's head is made (create without a time,
	 * reset): branchd's pg_checkpoint policy.  Blocks up to the policy's
	 * timeout; fills *res (BD_PGCKPT_OFF when it did nothing).  what is
	 * for the log ("creating branch 'x'").  May be NULL. */
	void (*before_fork)(void *ctx, const struct store_branch_info *parent,
			    const char *what, struct bd_pgckpt_result *res);
	/* Before a branch of parent's head is made (create without a time,
	 * reset), after before_fork, also with the checkpoint off: write
	 * back what the kernel holds dirty of parent's files
	 * (fs_branch_flush).  May be NULL. */
	void (*flush)(void *ctx, const struct store_branch_info *parent);
	/* Whether a branch of parent as of seq (STORE_SEQ_LATEST: its
	 * head) may be made (create, reset): 0, or -EXDEV with a lowercase
	 * reason in why (fs_branch_check_fork: the tablespace rule).  May
	 * be NULL. */
	int (*check_fork)(void *ctx, const struct store_branch_info *parent,
			  uint64_t seq, char *why, size_t whysz);
	/* For GC: true while an unlinked inode is still open. */
	bool (*in_use)(void *ctx, uint64_t branch, uint64_t ino);
};

struct bd_ctl_config {
	struct store *store;	       /* borrowed; outlives the bd_ctl */
	const char *socket_path;       /* copied */
	const char *store_dir;	       /* copied, for status */
	const char *mountpoint;	       /* copied, for status */
	uid_t daemon_uid;	       /* may change store-wide settings */
	const char *const *drop_names; /* borrowed; for reset */
	struct bd_ctl_hooks hooks;
	struct store_log log;
};

/* Bind and listen on cfg->socket_path (its directory is created, a stale
 * socket replaced), then serve in a background thread.  -EADDRINUSE if a
 * live daemon already answers there. */
int bd_ctl_open(const struct bd_ctl_config *cfg, struct bd_ctl **out);

/* Stop serving, wait for open connections to finish, remove the socket. */
void bd_ctl_close(struct bd_ctl *c);

/* Format and send one line to log if its level lets it through.  Shared
 * by branchd's control-plane modules. */
void bd_log(const struct store_log *log, int level, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

/* Lower the calling thread to idle CPU and I/O priority (GC work). */
void bd_thread_background(void);

/* Handle one request line from a peer with the given credentials; the
 * reply (one line, no newline) is written to *reply, owned by the caller
 * and freed with free().  Exposed for tests and fuzzing. */
int bd_ctl_handle(struct bd_ctl *c, const char *line, size_t len, uid_t uid,
		  gid_t gid, char **reply);

/* The same with the peer's supplementary groups (SO_PEERGROUPS), which
 * create's permission check takes into account as mkdir(2) does. */
int bd_ctl_handle_groups(struct bd_ctl *c, const char *line, size_t len,
			 uid_t uid, gid_t gid, const gid_t *groups,
			 size_t ngroups, char **reply);
#endif
