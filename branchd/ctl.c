/* SPDX-License-Identifier: MIT */
/*
 * ctl.c - the control socket of branchd.
 *
 * One listening thread accepts connections; each connection gets its own
 * detached thread that reads request lines and writes one reply per line.
 * A connection that sends more than BD_CTL_MAX_LINE bytes without a newline
 * gets an error reply and is closed; idle connections, and peers that stop
 * reading their replies, time out after 60 s.  At most BD_CTL_MAX_CONN
 * connections are served at once, and at most BD_CTL_MAX_PER_UID of them
 * for one uid other than root and the daemon's own, so that one local user
 * holding idle connections cannot lock everyone else out; a connection
 * over either limit gets an error reply (BD_CTL_TOO_MANY, before its
 * request is read: branchctl waits and tries again) and is closed.
 * Nothing a client sends can stop the daemon.
 *
 * Authorization (peer credentials from SO_PEERCRED):
 *  - create: the same rule as mkdir in the branch root (hooks.may_create);
 *  - delete, rename, reset: the same rule as rmdir and mv in the branch
 *    root (hooks.may_remove): write and search permission on it and, when
 *    it is sticky, the branch's owner (the uid that created it), the
 *    root's owner or root;
 *  - default (set), retention, gc: root or the daemon's own uid;
 *  - list, info, status, default (get): anyone who can reach the socket.
 *
 * Lifecycle: OPEN (serving) -> CLOSING (stop flag set, listener shut down)
 * -> closed once every connection thread has finished (nconn == 0).
 *
 * One socket path, one daemon: the daemon holds an flock on PATH.lock for
 * as long as it serves PATH, taken before it looks at PATH.  A second
 * daemon given the same path (socket=, two stores) gets EADDRINUSE even
 * when both start at once, and so cannot unlink the first one's socket
 * between its liveness check and its bind; a daemon removes PATH only
 * while it holds the lock, so never another daemon's socket.
 *
 * The lock file goes when the daemon stops (it used to stay, one per
 * socket path ever used, in /run/branchfs or /tmp/branchfs-UID), without
 * reopening that race, by two rules:
 *  CTL-1 a daemon unlinks PATH.lock only while it holds the flock on the
 *        inode linked there (bd_ctl_unlock: unlink, then close);
 *  CTL-2 a daemon that got the flock checks that the inode it locked is
 *        still the one linked at PATH.lock, else it closes it and tries
 *        again (bd_ctl_lock).
 * A second daemon may open the file just before the first unlinks it and
 * lock it once the first has closed it: by CTL-2 it finds the name gone
 * (or another inode there) and starts over instead of serving on a lock
 * that no later daemon can see.  Its inode number cannot have been
 * reused meanwhile, as it holds the inode open.  So the daemon that
 * serves PATH holds the flock on the inode linked at PATH.lock, and by
 * CTL-1 only it can unlink that name.  (A daemon of an older build takes
 * the lock without the CTL-2 check; one started in that window, during
 * an upgrade, could serve beside a new one.)  A daemon killed with
 * SIGKILL leaves the file, unlocked, for the next one.
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <poll.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "ctl.h"
#include "ctlproto.h"
#include "json.h"
#include "mem.h"

#define BD_CTL_MAX_PER_UID 16

struct bd_ctl {
	struct bd_ctl_config cfg;
	char *socket_path;
	char *store_dir;
	char *mountpoint;
	int lfd;
	int lock_fd; /* flock on socket_path + ".lock" while serving */
	bool locked; /* lock_fd holds the flock (CTL-1, CTL-2) */
	int stop_pipe[2];
	pthread_t thread;
	pthread_mutex_t mu;
	pthread_cond_t cv;
	int nconn;			  /* guarded by mu */
	int conn_fds[BD_CTL_MAX_CONN];	  /* guarded by mu; -1 when free */
	uid_t conn_uids[BD_CTL_MAX_CONN]; /* guarded by mu; peer of conn_fds[i] */
	int64_t started_ns;
};

struct bd_ctl_conn {
	struct bd_ctl *c;
	int fd;
	struct ucred cred; /* SO_PEERCRED, read at accept */
};

void bd_log(const struct store_log *log, int level, const char *fmt, ...)
{
	char msg[1024];
	va_list ap;

	if (!log->fn || level > log->level)
		return;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	log->fn(log->ctx, level, msg);
}

static int64_t bd_now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

static void bd_fmt_time(int64_t ns, char *buf, size_t n)
/* n must be at least 64 */
{
	int64_t sec = ns / 1000000000, ms = (ns % 1000000000) / 1000000;
	time_t t;
	struct tm tm;

	if (ms < 0) {
		sec -= 1;
		ms += 1000;
	}
	t = (time_t)sec;
	gmtime_r(&t, &tm);
	if (n < 64)
		return;
	snprintf(buf, n, "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ",
		 tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour,
		 tm.tm_min, tm.tm_sec, (int)ms);
}

/* Run the calling thread at the lowest CPU and I/O priority, so that GC
 * takes what Postgres leaves (Linux: nice and ioprio are per thread). */
void bd_thread_background(void)
{
	pid_t tid = (pid_t)syscall(SYS_gettid);

	setpriority(PRIO_PROCESS, (id_t)tid, 19);
	/* IOPRIO_CLASS_IDLE (3) << IOPRIO_CLASS_SHIFT (13); IOPRIO_WHO_PROCESS */
	syscall(SYS_ioprio_set, 1, tid, 3 << 13);
}

/* ---------------------------------------------------------- replies */

/* Room for a reason a branch is busy, whole: it may quote a mount point
 * or a link's target (up to 4 KiB) and two branch names (255 bytes each):
 * cut at 255 bytes, a container's mount point lost its end. */
#define BD_WHY_MAX (STORE_SYMLINK_MAX + 1024)

static void bd_reply_err(struct json_buf *out, int err, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

static void bd_reply_err(struct json_buf *out, int err, const char *fmt, ...)
{
	char small[768], *msg = small;
	va_list ap;
	int n;

	/* Whole, however long (a reason may quote a 4 KiB link target). */
	va_start(ap, fmt);
	n = vsnprintf(small, sizeof(small), fmt, ap);
	va_end(ap);
	if (n >= (int)sizeof(small)) {
		msg = malloc((size_t)n + 1);
		if (msg) {
			va_start(ap, fmt);
			vsnprintf(msg, (size_t)n + 1, fmt, ap);
			va_end(ap);
		} else {
			msg = small; /* cut, rather than nothing */
		}
	}
	out->len = 0;
	json_buf_raw(out, "{\"ok\":false,\"error\":");
	json_buf_str(out, bd_code_of_errno(err));
	json_buf_raw(out, ",\"message\":");
	json_buf_str(out, n < 0 ? "(cannot format the message)" : msg);
	json_buf_raw(out, "}");
	if (msg != small)
		free(msg);
}

/* parent: the parent's name as of the same snapshot as bi (list), or
 * NULL to look it up now.  With usage, u is the branch's usage, or NULL
 * when it could not be read: the fields are then null, never left out
 * (a script reads every branch's logical_bytes).  probe: the busy hook's
 * look at the processes (list), or NULL.  in_use is whether a delete
 * would be refused as busy, by the same rules; also when that cannot be
 * told (out of memory), as a delete is then refused too. */
static void bd_put_branch(struct bd_ctl *c, struct json_buf *out,
			  const struct store_branch_info *bi, bool usage,
			  const struct store_usage *u, const char *parent,
			  void *probe)
{
	struct store_branch_info pi;
	char tbuf[64], why[BD_WHY_MAX];
	int64_t fork_ns;
	int rc = 0;

	json_buf_raw(out, "{\"name\":");
	json_buf_str(out, bi->name);
	json_buf_printf(out, ",\"id\":%" PRIu64 ",\"parent\":", bi->id);
	if (bi->parent_id && parent)
		json_buf_str(out, parent);
	else if (bi->parent_id &&
		 store_branch_get(c->cfg.store, bi->parent_id, &pi) == 0)
		json_buf_str(out, pi.name);
	else
		json_buf_raw(out, "null");
	json_buf_printf(out, ",\"fork_seq\":%" PRIu64, bi->fork_seq);
	/* Recorded at the fork (or reset); else, for a branch made by an
	 * older build, the time index while it still holds the seq. */
	fork_ns = bi->fork_ns;
	if (bi->parent_id &&
	    (fork_ns > 0 ||
	     store_time_of_seq(c->cfg.store, bi->fork_seq, &fork_ns) == 0)) {
		bd_fmt_time(fork_ns, tbuf, sizeof(tbuf));
		json_buf_raw(out, ",\"fork_time\":");
		json_buf_str(out, tbuf);
	} else {
		json_buf_raw(out, ",\"fork_time\":null");
	}
	bd_fmt_time(bi->ctime_ns, tbuf, sizeof(tbuf));
	json_buf_raw(out, ",\"created\":");
	json_buf_str(out, tbuf);
	json_buf_printf(out, ",\"owner_uid\":%u,\"children\":%u", bi->owner_uid,
			bi->nchildren);
	if (usage && u)
		json_buf_printf(out,
				",\"logical_bytes\":%" PRIu64
				",\"written_bytes\":%" PRIu64
				",\"files\":%" PRIu64,
				u->logical_bytes, u->written_bytes, u->files);
	else if (usage)
		json_buf_raw(out, ",\"logical_bytes\":null,"
				  "\"written_bytes\":null,\"files\":null");
	why[0] = 0;
	if (c->cfg.hooks.busy)
		rc = c->cfg.hooks.busy(c->cfg.hooks.ctx, probe, bi->id,
				       bi->name, why, sizeof(why));
	if (rc && rc != -ENOENT) {
		json_buf_raw(out, ",\"in_use\":true,\"in_use_reason\":");
		json_buf_str(out, why[0] ? why : strerror(-rc));
	} else {
		json_buf_raw(out, ",\"in_use\":false,\"in_use_reason\":null");
	}
	json_buf_raw(out, "}");
}

/* ------------------------------------------------------- handlers */

/* A branch name as the store takes it; replies with the rule if not
 * (before anything else: the store's -EINVAL for a bad name would
 * otherwise read as a bad seq). */
static int bd_name_ok(struct json_buf *out, const char *name)
{
	static const char rule[] =
		"use 1 to 255 bytes of UTF-8 without '/', control characters or bidirectional formatting characters, not '.' or '..'";
	int rc = store_branch_name_check(name);
	char *shown;

	if (!rc)
		return 0;
	/* The name is quoted when it is wrong only by what prints: a '/'
	 * (a tab-completed "pr-1/"), '', '.' or '..'.  One with a control
	 * or formatting character is not echoed to a terminal. */
	shown = rc == -EINVAL ? strdup(name) : NULL;
	if (shown) {
		char *p;

		for (p = shown; *p; p++)
			if (*p == '/')
				*p = '_';
		if (*shown && strcmp(name, ".") && strcmp(name, "..") &&
		    store_branch_name_check(shown)) {
			free(shown);
			shown = NULL;
		}
	}
	if (shown)
		bd_reply_err(out, rc, "invalid branch name '%s': %s", name,
			     rule);
	else if (rc == -ENAMETOOLONG)
		bd_reply_err(out, rc, "invalid branch name of %zu bytes: %s",
			     strlen(name), rule);
	else
		bd_reply_err(out, rc, "invalid branch name: %s", rule);
	free(shown);
	return rc;
}

static int bd_lookup(struct bd_ctl *c, struct json_buf *out, const char *name,
		     struct store_branch_info *bi)
{
	int rc;

	if (!name) {
		bd_reply_err(out, -EINVAL, "missing branch name");
		return -EINVAL;
	}
	rc = store_branch_lookup(c->cfg.store, name, bi);
	if (rc == -ENOENT && store_branch_name_check(name))
		/* A name no branch can have ('', 'a/b', '..'): a script's
		 * bug, not a branch already gone (exit 10, not 4).  Looked
		 * up first: a store may hold a name an older build took. */
		return bd_name_ok(out, name);
	if (rc)
		bd_reply_err(out, rc, "no such branch '%s'", name);
	return rc;
}

/* The caller of a delete, rename or reset. */
struct bd_caller {
	uid_t uid;
	gid_t gid;
	const gid_t *groups; /* borrowed */
	size_t ngroups;
};

/* Whether the caller may delete, rename or reset bi: what rmdir and mv
 * in the branch root allow it (hooks.may_remove), so that the two ways
 * agree. */
static int bd_may_modify(struct bd_ctl *c, struct json_buf *out,
			 const struct store_branch_info *bi,
			 const struct bd_caller *who, const char *what)
{
	int rc;

	if (c->cfg.hooks.may_remove)
		rc = c->cfg.hooks.may_remove(c->cfg.hooks.ctx, who->uid,
					     who->gid, who->groups,
					     who->ngroups, bi->owner_uid);
	else
		rc = who->uid == 0 || who->uid == bi->owner_uid ? 0 : -EPERM;
	if (rc == -EACCES)
		bd_reply_err(
			out, rc,
			"cannot %s branch '%s': uid %u has no write permission on the branch root (the branch is owned by uid %u)",
			what, bi->name, (unsigned)who->uid, bi->owner_uid);
	else if (rc)
		bd_reply_err(
			out, rc,
			"cannot %s branch '%s': owned by uid %u, not uid %u%s",
			what, bi->name, bi->owner_uid, (unsigned)who->uid,
			c->cfg.hooks.may_remove ?
				" (the branch root is sticky: only the owner, the root's owner or root may)" :
				"");
	return rc;
}

static void bd_end_change(struct bd_ctl *c, uint64_t id)
{
	if (c->cfg.hooks.end_change)
		c->cfg.hooks.end_change(c->cfg.hooks.ctx, id);
}

/* Hold the branch for a change (begin_change); on success the caller
 * must call bd_end_change.  A refusal is logged too, as rmdir's and mv's
 * are: the caller's output may be gone (a CI job's log). */
static int bd_not_busy(struct bd_ctl *c, struct json_buf *out,
		       const struct store_branch_info *bi, const char *what)
{
	char why[BD_WHY_MAX] = "";
	int rc = 0;

	if (c->cfg.hooks.begin_change)
		rc = c->cfg.hooks.begin_change(c->cfg.hooks.ctx, bi->id, why,
					       sizeof(why));
	/* Deleted since the lookup (a racing rmdir or delete): no such
	 * branch, not a busy one (exit 6 said "no branch with id N"). */
	if (rc == -ENOENT) {
		bd_reply_err(out, -ENOENT,
			     "cannot %s branch '%s': it was renamed or "
			     "deleted meanwhile",
			     what, bi->name);
		return -ENOENT;
	}
	/* Busy, or it could not be told (-ENOMEM: exit 1, not "in use"). */
	if (rc) {
		if (rc != -EBUSY && !why[0])
			snprintf(why, sizeof(why), "%s", strerror(-rc));
		bd_log(&c->cfg.log, STORE_LOG_WARN,
		       "ctl: cannot %s branch '%s': %s", what, bi->name,
		       why[0] ? why : "it is in use");
		bd_reply_err(out, rc, "cannot %s branch '%s': %s", what,
			     bi->name, why[0] ? why : "it is in use");
		return rc;
	}
	/* begin_change may have waited: the name must still be this branch
	 * (a mv or rmdir through the mount may have run meanwhile). */
	{
		struct store_branch_info now;

		if (store_branch_lookup(c->cfg.store, bi->name, &now) != 0 ||
		    now.id != bi->id) {
			bd_end_change(c, bi->id);
			bd_reply_err(out, -ENOENT,
				     "cannot %s branch '%s': it was renamed or "
				     "deleted meanwhile",
				     what, bi->name);
			return -ENOENT;
		}
	}
	return 0;
}

/* The tablespace rule before a branch of parent as of seq is made (or a
 * branch reset to it): 0, or the reply's error and -EXDEV.  With made (a
 * branch just created), the rule is applied to the parent's tree exactly
 * as made got it (its fork seq), which catches a link made out of the
 * tree after the first check (while the checkpoint ran); made, which
 * nobody has used yet, is then dropped. */
static int bd_check_fork(struct bd_ctl *c, struct json_buf *out,
			 const struct store_branch_info *parent, uint64_t seq,
			 const char *verb, const char *name,
			 const struct store_branch_info *made)
{
	char why[STORE_SYMLINK_MAX + 512];
	int rc, drc = 0;

	if (!c->cfg.hooks.check_fork)
		return 0;
	rc = c->cfg.hooks.check_fork(c->cfg.hooks.ctx, parent,
				     made ? made->fork_seq : seq, why,
				     sizeof(why));
	if (rc == 0)
		return 0;
	if (made) {
		drc = store_branch_delete(c->cfg.store, made->id);
		if (drc)
			bd_log(&c->cfg.log, STORE_LOG_ERR,
			       "ctl: cannot drop the refused branch '%s': %s",
			       made->name, strerror(-drc));
		else if (c->cfg.hooks.changed)
			c->cfg.hooks.changed(c->cfg.hooks.ctx, made->id,
					     made->name, NULL);
	}
	bd_log(&c->cfg.log, STORE_LOG_WARN,
	       "ctl: cannot %s branch '%s' of '%s': %s%s", verb, name,
	       parent->name, why,
	       !made ? "" :
	       drc   ? " (a link made while the branch was being made; "
		       "dropping the new branch failed)" :
		       " (a link made while the branch was being made; the "
		       "new branch is dropped)");
	bd_reply_err(out, rc, "cannot %s branch '%s' of '%s': %s", verb, name,
		     parent->name, why);
	return rc;
}

/* The pg_checkpoint policy before a branch of parent's head is made,
 * unless the request says "checkpoint": false. */
static void bd_before_fork(struct bd_ctl *c, const struct json *req,
			   const struct store_branch_info *parent,
			   const char *verb, const char *name,
			   struct bd_pgckpt_result *res)
{
	bool want = true;
	char what[STORE_NAME_MAX + 32];

	memset(res, 0, sizeof(*res));
	res->outcome = BD_PGCKPT_OFF;
	json_get_bool(req, "checkpoint", &want);
	if (!want || !c->cfg.hooks.before_fork)
		return;
	snprintf(what, sizeof(what), "%s branch '%s'", verb, name);
	c->cfg.hooks.before_fork(c->cfg.hooks.ctx, parent, what, res);
}

/* ,"checkpoint":{...} of a create or reset reply. */
static void bd_put_checkpoint(struct json_buf *out,
			      const struct bd_pgckpt_result *res)
{
	json_buf_raw(out, ",\"checkpoint\":{\"outcome\":");
	json_buf_str(out, bd_pgckpt_outcome_name(res->outcome));
	if (res->pid)
		json_buf_printf(out, ",\"pid\":%ld", res->pid);
	if (res->outcome == BD_PGCKPT_DONE ||
	    res->outcome == BD_PGCKPT_FAILED ||
	    res->outcome == BD_PGCKPT_TIMEOUT)
		json_buf_printf(out, ",\"ms\":%.0f", res->ms);
	if (res->why[0]) {
		json_buf_raw(out, ",\"reason\":");
		json_buf_str(out, res->why);
	}
	json_buf_raw(out, "}");
}

static int bd_is_admin(struct bd_ctl *c, struct json_buf *out, uid_t uid,
		       const char *what)
{
	if (uid == 0 || uid == c->cfg.daemon_uid)
		return 0;
	bd_reply_err(out, -EPERM, "cannot %s: only root or uid %u may", what,
		     (unsigned)c->cfg.daemon_uid);
	return -EPERM;
}

/* Why the store refused a past moment of parent (-ERANGE): it lies
 * before the parent's own past, which begins where it was made or last
 * reset, or before the oldest moment the store retains.  at_ns: the time
 * asked for, or -1 when a seq was. */
static void bd_reply_not_retained(struct bd_ctl *c, struct json_buf *out,
				  const char *name,
				  const struct store_branch_info *parent,
				  uint64_t seq, int64_t at_ns)
{
	struct store_branch_info cur;
	char when[128], tbuf[64], obuf[64];

	if (at_ns >= 0) {
		bd_fmt_time(at_ns, tbuf, sizeof(tbuf));
		snprintf(when, sizeof(when), "at %s (seq %" PRIu64 ")", tbuf,
			 seq);
	} else {
		snprintf(when, sizeof(when), "at seq %" PRIu64, seq);
	}
	/* The parent as it is now: a reset meanwhile moved its fork point. */
	if (store_branch_get(c->cfg.store, parent->id, &cur) != 0)
		cur = *parent;
	if (cur.parent_id && seq < cur.past_seq) {
		int64_t fns = cur.fork_ns;

		if (fns > 0 ||
		    store_time_of_seq(c->cfg.store, cur.fork_seq, &fns) == 0)
			bd_fmt_time(fns, tbuf, sizeof(tbuf));
		else
			snprintf(tbuf, sizeof(tbuf), "time no longer known");
		bd_reply_err(
			out, -ERANGE,
			"cannot create branch '%s' %s: branch '%s' has no past before seq %" PRIu64
			" (%s), where it was made or last reset (a reset drops a branch's own past; a branch made again under a deleted one's name has none before it was made)",
			name, when, cur.name, cur.past_seq, tbuf);
		return;
	}
	bd_fmt_time(store_oldest_time(c->cfg.store), obuf, sizeof(obuf));
	if (!cur.parent_id && seq >= store_oldest_seq(c->cfg.store)) {
		bd_fmt_time(cur.ctime_ns, tbuf, sizeof(tbuf));
		bd_reply_err(
			out, -ERANGE,
			"cannot create branch '%s' %s: branch '%s' was made later, at %s",
			name, when, cur.name, tbuf);
		return;
	}
	bd_reply_err(
		out, -ERANGE,
		"cannot create branch '%s' %s: the store retains nothing older than %s (retention %" PRIu64
		" s: branchctl retention)",
		name, when, obuf, store_get_retention(c->cfg.store));
}

static void bd_cmd_create(struct bd_ctl *c, const struct json *req,
			  struct json_buf *out, uid_t uid, gid_t gid,
			  const gid_t *groups, size_t ngroups)
{
	struct store_branch_create_args args = { 0 };
	struct store_branch_info pi, bi;
	struct bd_pgckpt_result ckpt = { .outcome = BD_PGCKPT_OFF };
	const char *name = json_get_str(req, "name");
	const char *from = json_get_str(req, "from");
	char defname[STORE_NAME_MAX + 1] = "main";
	int64_t at_ns = 0, at_seq = 0;
	bool has_ns = json_get_int(req, "at_ns", &at_ns);
	bool has_seq = json_get_int(req, "at_seq", &at_seq);
	bool empty = false;
	size_t nbr = 0;
	int rc;

	json_get_bool(req, "empty", &empty);
	if (!name) {
		bd_reply_err(out, -EINVAL, "missing branch name");
		return;
	}
	if (bd_name_ok(out, name))
		return;
	if (empty && (from || has_seq || has_ns)) {
		bd_reply_err(
			out, -EINVAL,
			"cannot create branch '%s': an empty branch has no "
			"parent and no moment (--empty goes without "
			"--from and --at)",
			name);
		return;
	}
	rc = c->cfg.hooks.may_create ?
		     c->cfg.hooks.may_create(c->cfg.hooks.ctx, uid, gid, groups,
					     ngroups) :
		     0;
	if (rc) {
		bd_reply_err(
			out, -EACCES,
			"cannot create branch '%s': uid %u may not create branches in the branch root",
			name, (unsigned)uid);
		return;
	}
	/* A taken name fails first, as mkdir(2) says EEXIST first: before
	 * the parent and the moment (a job that makes "b --at T" again once
	 * T has left the window is told that b exists, not exit 8), and
	 * before the checkpoint, not after. */
	if (store_branch_lookup(c->cfg.store, name, &bi) == 0) {
		bd_reply_err(out, -EEXIST,
			     "cannot create branch '%s': name taken", name);
		return;
	}
	if (!from && !empty) {
		struct store_branch_info *all = NULL;

		if (c->cfg.hooks.get_default)
			c->cfg.hooks.get_default(c->cfg.hooks.ctx, defname,
						 sizeof(defname));
		from = defname;
		rc = store_branch_list(c->cfg.store, &all, &nbr);
		free(all);
		if (rc) {
			bd_reply_err(out, rc, "cannot list branches");
			return;
		}
	}
	args.name = name;
	args.owner_uid = uid;
	args.drop_names = c->cfg.drop_names;
	if (empty ||
	    (nbr == 0 && !json_get_str(req, "from") && !has_seq && !has_ns)) {
		/* Asked for, or an empty store's first branch: an empty
		 * directory, owned by the caller, for initdb, pg_basebackup
		 * or a restore.  Not with a moment: that asks for the
		 * default parent as it was, and there is none. */
		args.root_mode = 0700;
		args.root_uid = uid;
		args.root_gid = gid;
	} else {
		rc = store_branch_lookup(c->cfg.store, from, &pi);
		if (rc == -ENOENT && store_branch_name_check(from)) {
			bd_name_ok(out, from);
			return;
		}
		if (rc) {
			bd_reply_err(
				out, rc,
				"cannot create branch '%s': no such parent branch '%s'",
				name, from);
			return;
		}
		args.parent_id = pi.id;
		args.at_seq = STORE_SEQ_LATEST;
		if (has_seq && has_ns) {
			bd_reply_err(out, -EINVAL,
				     "give either a time or a seq, not both");
			return;
		}
		if (has_seq) {
			if (at_seq < 0) {
				bd_reply_err(out, -EINVAL, "bad seq %" PRId64,
					     at_seq);
				return;
			}
			args.at_seq = (uint64_t)at_seq;
		} else if (has_ns) {
			uint64_t seq;
			char tbuf[64], obuf[64];

			rc = store_seq_at_time(c->cfg.store, at_ns, &seq);
			if (rc) {
				bd_fmt_time(at_ns, tbuf, sizeof(tbuf));
				bd_fmt_time(store_oldest_time(c->cfg.store),
					    obuf, sizeof(obuf));
				if (rc == -ERANGE)
					bd_reply_err(
						out, rc,
						"cannot create branch '%s' at %s: the store retains nothing older than %s",
						name, tbuf, obuf);
				else if (rc == -EINVAL)
					bd_reply_err(
						out, rc,
						"cannot create branch '%s' at %s: that moment is in the future",
						name, tbuf);
				else
					bd_reply_err(
						out, rc,
						"cannot create branch '%s' at %s: cannot read the store's time index: %s",
						name, tbuf, strerror(-rc));
				return;
			}
			args.at_seq = seq;
		}
	}
	if (args.parent_id &&
	    bd_check_fork(c, out, &pi, args.at_seq, "create", name, NULL))
		return;
	if (args.parent_id && args.at_seq == STORE_SEQ_LATEST) {
		bd_before_fork(c, req, &pi, "creating", name, &ckpt);
		if (c->cfg.hooks.flush)
			c->cfg.hooks.flush(c->cfg.hooks.ctx, &pi);
	}
	rc = store_branch_create(c->cfg.store, &args, &bi);
	if (rc && rc != -EEXIST &&
	    store_branch_lookup(c->cfg.store, name, &bi) == 0) {
		/* Made, but the sync after it failed. */
		bd_log(&c->cfg.log, STORE_LOG_ERR,
		       "ctl: created branch '%s', but could not sync the store: %s",
		       name, strerror(-rc));
		if (c->cfg.hooks.changed)
			c->cfg.hooks.changed(c->cfg.hooks.ctx, bi.id, NULL,
					     bi.name);
	}
	if (rc) {
		if (rc == -EEXIST)
			bd_reply_err(out, rc,
				     "cannot create branch '%s': name taken",
				     name);
		else if (rc == -ENOENT && args.parent_id &&
			 store_branch_get(c->cfg.store, args.parent_id, &bi) ==
				 -ENOENT)
			bd_reply_err(
				out, rc,
				"cannot create branch '%s': no such parent branch '%s' (deleted meanwhile)",
				name, pi.name);
		else if (rc == -ERANGE)
			bd_reply_not_retained(c, out, name, &pi, args.at_seq,
					      has_ns ? at_ns : -1);
		else if (rc == -EINVAL)
			bd_reply_err(
				out, rc,
				"cannot create branch '%s': seq %" PRIu64
				" is in the future (the store is at seq %" PRIu64
				")",
				name, args.at_seq, store_seq_now(c->cfg.store));
		else if (rc == -EMLINK)
			bd_reply_err(
				out, rc,
				"cannot create branch '%s': too many branches (a branch has at most %u ancestors, and a store makes at most %" PRIu64
				" branches in its life)",
				name, STORE_MAX_ANCESTRY, STORE_BRANCH_ID_MAX);
		else
			bd_reply_err(out, rc, "cannot create branch '%s': %s",
				     name, strerror(-rc));
		return;
	}
	/* A past moment was checked exactly before; the head may have
	 * changed while the checkpoint ran. */
	if (args.parent_id && args.at_seq == STORE_SEQ_LATEST &&
	    bd_check_fork(c, out, &pi, args.at_seq, "create", name, &bi))
		return;
	bd_log(&c->cfg.log, STORE_LOG_INFO,
	       "ctl: uid %u created branch '%s' from '%s' at seq %" PRIu64,
	       (unsigned)uid, bi.name, args.parent_id ? from : "-",
	       bi.fork_seq);
	if (c->cfg.hooks.changed)
		c->cfg.hooks.changed(c->cfg.hooks.ctx, bi.id, NULL, bi.name);
	json_buf_raw(out, "{\"ok\":true,\"branch\":");
	bd_put_branch(c, out, &bi, false, NULL, NULL, NULL);
	bd_put_checkpoint(out, &ckpt);
	json_buf_raw(out, "}");
}

static int bd_info_id_cmp(const void *a, const void *b)
{
	uint64_t x = (*(const struct store_branch_info *const *)a)->id;
	uint64_t y = (*(const struct store_branch_info *const *)b)->id;

	return (x > y) - (x < y);
}

/* Each branch's parent is named as of the listing's snapshot: looked up
 * while the reply was written, a parent renamed meanwhile was listed
 * under its old name and named by its children under the new one, and
 * list --tree left that whole subtree out.  The usage of each is read
 * after the snapshot, and a branch deleted meanwhile (its usage -ENOENT)
 * is left out, with the branches of the snapshot below it: a branch is
 * deleted only once its children are, so they are gone too.  It was
 * listed without its usage fields. */
enum { BD_LIST_UNKNOWN, BD_LIST_LIVE, BD_LIST_GONE };

struct bd_list_ent {
	struct store_usage u;
	int urc;
	int state;
	size_t parent; /* index of the parent in the snapshot, or n */
};

static void bd_cmd_list(struct bd_ctl *c, struct json_buf *out)
{
	struct store_branch_info *all = NULL, **byid = NULL, key, *kp = &key;
	struct store_branch_info **hit;
	struct bd_list_ent *e = NULL;
	size_t n = 0, i, j;
	void *probe = NULL;
	bool first = true;
	int rc;

	rc = store_branch_list(c->cfg.store, &all, &n);
	if (rc) {
		bd_reply_err(out, rc, "cannot list branches: %s",
			     strerror(-rc));
		return;
	}
	if (n) {
		byid = malloc(n * sizeof(*byid));
		e = calloc(n, sizeof(*e));
		if (!byid || !e) {
			free(byid);
			free(e);
			free(all);
			bd_reply_err(out, -ENOMEM, "cannot list branches: %s",
				     strerror(ENOMEM));
			return;
		}
		for (i = 0; i < n; i++)
			byid[i] = &all[i];
		qsort(byid, n, sizeof(*byid), bd_info_id_cmp);
	}
	for (i = 0; i < n; i++) {
		key.id = all[i].parent_id;
		hit = key.id ? bsearch(&kp, byid, n, sizeof(*byid),
				       bd_info_id_cmp) :
			       NULL;
		e[i].parent = hit ? (size_t)(*hit - all) : n;
		e[i].urc = store_branch_usage(c->cfg.store, all[i].id, &e[i].u);
		if (e[i].urc == -ENOENT)
			e[i].state = BD_LIST_GONE;
	}
	/* Gone when an ancestor in the snapshot is: walk up to a known
	 * state, then mark the way (each branch is walked over once). */
	for (i = 0; i < n; i++) {
		int st;

		for (j = i; j < n && e[j].state == BD_LIST_UNKNOWN;)
			j = e[j].parent;
		st = j < n ? e[j].state : BD_LIST_LIVE;
		for (j = i; j < n && e[j].state == BD_LIST_UNKNOWN;) {
			e[j].state = st;
			j = e[j].parent;
		}
	}
	/* One look at the processes for every branch's in_use (a server,
	 * a mount elsewhere), not one per branch.  Without it, each branch
	 * looks for itself. */
	if (c->cfg.hooks.probe_new && c->cfg.hooks.probe_free &&
	    c->cfg.hooks.probe_new(c->cfg.hooks.ctx, &probe) != 0)
		probe = NULL;
	json_buf_raw(out, "{\"ok\":true,\"branches\":[");
	for (i = 0; i < n; i++) {
		if (e[i].state == BD_LIST_GONE)
			continue;
		if (!first)
			json_buf_raw(out, ",");
		first = false;
		bd_put_branch(c, out, &all[i], true,
			      e[i].urc == 0 ? &e[i].u : NULL,
			      e[i].parent < n ? all[e[i].parent].name : NULL,
			      probe);
	}
	json_buf_raw(out, "]}");
	if (probe)
		c->cfg.hooks.probe_free(c->cfg.hooks.ctx, probe);
	free(e);
	free(byid);
	free(all);
}

static void bd_cmd_info(struct bd_ctl *c, const struct json *req,
			struct json_buf *out)
{
	struct store_branch_info bi;
	struct store_usage u;
	bool have;

	if (bd_lookup(c, out, json_get_str(req, "name"), &bi))
		return;
	have = store_branch_usage(c->cfg.store, bi.id, &u) == 0;
	json_buf_raw(out, "{\"ok\":true,\"branch\":");
	bd_put_branch(c, out, &bi, true, have ? &u : NULL, NULL, NULL);
	json_buf_raw(out, "}");
}

static void bd_cmd_delete(struct bd_ctl *c, const struct json *req,
			  struct json_buf *out, const struct bd_caller *who)
{
	struct store_branch_info bi, pi;
	int rc;

	if (bd_lookup(c, out, json_get_str(req, "name"), &bi) ||
	    bd_may_modify(c, out, &bi, who, "delete") ||
	    bd_not_busy(c, out, &bi, "delete"))
		return;
	if (bi.nchildren) {
		bd_end_change(c, bi.id);
		bd_reply_err(
			out, -ENOTEMPTY,
			"cannot delete branch '%s': it has %u child branch%s",
			bi.name, bi.nchildren, bi.nchildren == 1 ? "" : "es");
		return;
	}
	rc = store_branch_delete(c->cfg.store, bi.id);
	bd_end_change(c, bi.id);
	if (rc && store_branch_get(c->cfg.store, bi.id, &pi) == -ENOENT) {
		/* Made, but the sync after it failed. */
		bd_log(&c->cfg.log, STORE_LOG_ERR,
		       "ctl: deleted branch '%s', but could not sync the store: %s",
		       bi.name, strerror(-rc));
		if (c->cfg.hooks.changed)
			c->cfg.hooks.changed(c->cfg.hooks.ctx, bi.id, bi.name,
					     NULL);
	}
	if (rc) {
		bd_reply_err(out, rc, "cannot delete branch '%s': %s", bi.name,
			     rc == -ENOTEMPTY ? "it has child branches" :
						strerror(-rc));
		return;
	}
	if (c->cfg.hooks.changed)
		c->cfg.hooks.changed(c->cfg.hooks.ctx, bi.id, bi.name, NULL);
	bd_log(&c->cfg.log, STORE_LOG_INFO, "ctl: uid %u deleted branch '%s'",
	       (unsigned)who->uid, bi.name);
	json_buf_raw(out, "{\"ok\":true}");
}

static void bd_cmd_rename(struct bd_ctl *c, const struct json *req,
			  struct json_buf *out, const struct bd_caller *who)
{
	const char *nn = json_get_str(req, "new_name");
	struct store_branch_info bi, now;
	int rc;

	if (bd_lookup(c, out, json_get_str(req, "name"), &bi))
		return;
	/* The new name first: a bad one is refused at once, not after
	 * waiting for the branch to be idle (or with EBUSY). */
	if (!nn) {
		bd_reply_err(out, -EINVAL, "missing new name");
		return;
	}
	if (bd_name_ok(out, nn) || bd_may_modify(c, out, &bi, who, "rename") ||
	    bd_not_busy(c, out, &bi, "rename"))
		return;
	rc = c->cfg.hooks.rename ?
		     c->cfg.hooks.rename(c->cfg.hooks.ctx, bi.id, bi.name, nn) :
		     store_branch_rename(c->cfg.store, bi.id, nn);
	bd_end_change(c, bi.id);
	if (rc && store_branch_lookup(c->cfg.store, nn, &now) == 0 &&
	    now.id == bi.id) {
		/* Made, but the sync after it failed. */
		bd_log(&c->cfg.log, STORE_LOG_ERR,
		       "ctl: renamed branch '%s' to '%s', but could not sync the store: %s",
		       bi.name, nn, strerror(-rc));
		if (c->cfg.hooks.changed)
			c->cfg.hooks.changed(c->cfg.hooks.ctx, bi.id, bi.name,
					     nn);
	}
	if (rc) {
		if (rc == -EEXIST)
			bd_reply_err(
				out, rc,
				"cannot rename branch '%s' to '%s': name taken",
				bi.name, nn);
		else
			bd_reply_err(out, rc, "cannot rename branch '%s': %s",
				     bi.name,
				     rc == -EINVAL ? "invalid new name" :
						     strerror(-rc));
		return;
	}
	if (c->cfg.hooks.changed)
		c->cfg.hooks.changed(c->cfg.hooks.ctx, bi.id, bi.name, nn);
	json_buf_raw(out, "{\"ok\":true}");
}

static void bd_cmd_reset(struct bd_ctl *c, const struct json *req,
			 struct json_buf *out, const struct bd_caller *who)
{
	struct bd_pgckpt_result ckpt = { .outcome = BD_PGCKPT_OFF };
	struct store_branch_info bi, pi;
	uint64_t at = STORE_SEQ_LATEST;
	int rc;

	if (bd_lookup(c, out, json_get_str(req, "name"), &bi) ||
	    bd_may_modify(c, out, &bi, who, "reset"))
		return;
	/* A busy branch is refused before the parent is checkpointed: held
	 * and let go at once (bd_not_busy below holds it for the reset
	 * itself).  Not the busy probe: the hold waits, as delete's and
	 * rename's do, for a file whose close(2) has returned but whose
	 * RELEASE, which the kernel sends after it, has not reached us yet;
	 * the probe counted it open and refused about one reset in 30 right
	 * after "echo x > FILE". */
	if (bd_not_busy(c, out, &bi, "reset"))
		return;
	bd_end_change(c, bi.id);
	if (bi.parent_id &&
	    store_branch_get(c->cfg.store, bi.parent_id, &pi) == 0) {
		if (bd_check_fork(c, out, &pi, STORE_SEQ_LATEST, "reset",
				  bi.name, NULL))
			return;
		bd_before_fork(c, req, &pi, "resetting", bi.name, &ckpt);
		if (c->cfg.hooks.flush)
			c->cfg.hooks.flush(c->cfg.hooks.ctx, &pi);
	}
	if (bd_not_busy(c, out, &bi, "reset"))
		return;
	/* Once more, with the branch held (after the checkpoint's wait and
	 * the hold's): a reset cannot be undone as a new branch can, so the
	 * rule is applied to the parent as of one seq, and the branch is
	 * reset to exactly that state (before, it was reset to the state
	 * after the check, and a link made in between went uncaught). */
	if (bi.parent_id &&
	    store_branch_get(c->cfg.store, bi.parent_id, &pi) == 0) {
		at = store_seq_now(c->cfg.store);
		if (bd_check_fork(c, out, &pi, at, "reset", bi.name, NULL)) {
			bd_end_change(c, bi.id);
			return;
		}
	}
	if (c->cfg.hooks.prepare_reset)
		c->cfg.hooks.prepare_reset(c->cfg.hooks.ctx, bi.id);
	rc = store_branch_reset_at(c->cfg.store, bi.id, at, c->cfg.drop_names);
	bd_end_change(c, bi.id);
	if (rc && rc != -EINVAL && rc != -ENOTEMPTY && rc != -ENOENT &&
	    c->cfg.hooks.changed)
		/* Perhaps made, with the sync after it failed: the kernel's
		 * caches of the branch go either way. */
		c->cfg.hooks.changed(c->cfg.hooks.ctx, bi.id, bi.name, bi.name);
	if (rc) {
		bd_reply_err(out, rc, "cannot reset branch '%s': %s", bi.name,
			     rc == -EINVAL    ? "it has no parent" :
			     rc == -ENOTEMPTY ? "it has child branches" :
						strerror(-rc));
		return;
	}
	if (c->cfg.hooks.changed)
		c->cfg.hooks.changed(c->cfg.hooks.ctx, bi.id, bi.name, bi.name);
	bd_log(&c->cfg.log, STORE_LOG_INFO, "ctl: uid %u reset branch '%s'",
	       (unsigned)who->uid, bi.name);
	json_buf_raw(out, "{\"ok\":true");
	bd_put_checkpoint(out, &ckpt);
	json_buf_raw(out, "}");
}

static void bd_cmd_default(struct bd_ctl *c, const struct json *req,
			   struct json_buf *out, uid_t uid)
{
	const char *name = json_get_str(req, "name");
	char cur[STORE_NAME_MAX + 1] = "main";
	struct store_branch_info di;
	bool exists;
	int rc;

	if (name) {
		if (bd_is_admin(c, out, uid, "set the default parent"))
			return;
		struct store_branch_info bi;

		if (bd_name_ok(out, name))
			return;
		rc = store_branch_lookup(c->cfg.store, name, &bi);
		if (rc == 0)
			bd_log(&c->cfg.log, STORE_LOG_INFO,
			       "ctl: uid %u sets the default parent to '%s'",
			       (unsigned)uid, name);
		/* Checked again by the hook, under the lock a rename takes
		 * (fs_set_default_parent): a rename of the branch landing
		 * here left the default naming no branch. */
		if (rc == 0 && c->cfg.hooks.set_default)
			rc = c->cfg.hooks.set_default(c->cfg.hooks.ctx, name);
		if (rc == -ENOENT) {
			bd_reply_err(
				out, rc,
				"cannot set default parent to '%s': no such branch",
				name);
			return;
		}
		if (rc) {
			bd_reply_err(out, rc,
				     "cannot set default parent to '%s'", name);
			return;
		}
	}
	if (c->cfg.hooks.get_default)
		c->cfg.hooks.get_default(c->cfg.hooks.ctx, cur, sizeof(cur));
	json_buf_raw(out, "{\"ok\":true,\"default\":");
	json_buf_str(out, cur);
	/* The default may name no branch (it was deleted): mkdir then fails
	 * with ENOENT, which the caller had better hear from here. */
	exists = store_branch_lookup(c->cfg.store, cur, &di) == 0;
	json_buf_printf(out, ",\"exists\":%s}", exists ? "true" : "false");
}

static void bd_cmd_status(struct bd_ctl *c, struct json_buf *out)
{
	struct store_stats st;
	struct bd_mem_usage mem;
	char tbuf[64];
	int rc;

	rc = store_stats(c->cfg.store, &st);
	if (rc) {
		bd_reply_err(out, rc, "cannot read store figures: %s",
			     strerror(-rc));
		return;
	}
	json_buf_raw(out, "{\"ok\":true,\"store\":");
	json_buf_str(out, c->store_dir);
	json_buf_raw(out, ",\"mountpoint\":");
	json_buf_str(out, c->mountpoint);
	json_buf_raw(out, ",\"socket\":");
	json_buf_str(out, c->socket_path);
	bd_fmt_time(store_oldest_time(c->cfg.store), tbuf, sizeof(tbuf));
	json_buf_printf(
		out,
		",\"disk_bytes\":%" PRIu64 ",\"fs_avail_bytes\":%" PRIu64
		",\"branches\":%" PRIu64 ",\"deleted_pending\":%" PRIu64
		",\"seq\":%" PRIu64 ",\"read_filters_ready\":%s"
		",\"read_filters_objects\":%" PRIu64 ",\"retention_s\":%" PRIu64
		",\"oldest\":\"%s\""
		",\"uptime_s\":%" PRId64 ",\"version\":\"%s\"",
		st.disk_bytes, st.fs_avail_bytes, st.branches,
		st.deleted_pending, st.seq, st.filters_ready ? "true" : "false",
		st.filters_objects, store_get_retention(c->cfg.store), tbuf,
		(bd_now_ns() - c->started_ns) / 1000000000, BRANCHFS_VERSION);
	/* The daemon's memory (branchd(8) MEMORY); left out if /proc is
	 * not mounted. */
	if (bd_mem_usage(&mem) == 0) {
		json_buf_printf(out, ",\"rss_bytes\":%" PRIu64, mem.rss_bytes);
		if (mem.heap_known)
			json_buf_printf(out, ",\"heap_bytes\":%" PRIu64,
					mem.heap_bytes);
	}
	json_buf_raw(out, "}");
}

static void bd_cmd_gc(struct bd_ctl *c, struct json_buf *out, uid_t uid)
{
	struct store_gc_opts o = { .full_compaction = true };
	struct store_gc_stats st;
	int rc;

	if (bd_is_admin(c, out, uid, "run gc"))
		return;
	o.in_use = c->cfg.hooks.in_use;
	o.ctx = c->cfg.hooks.ctx;
	/* This connection's thread ends with the connection. */
	bd_thread_background();
	/* One collection runs at a time: wait for one that is running (the
	 * background one, paced at idle priority, can take minutes over a
	 * large store), then run this one, so that what the caller asked to
	 * be reclaimed now is, instead of failing with exit 6. */
	while ((rc = store_gc(c->cfg.store, &o, &st)) == -EBUSY)
		usleep(20000);
	if (rc) {
		bd_reply_err(out, rc, "gc failed: %s", strerror(-rc));
		return;
	}
	json_buf_printf(
		out,
		"{\"ok\":true,\"space_low\":%s,\"keys_scanned\":%" PRIu64
		",\"keys_deleted\":%" PRIu64 ",\"bytes_deleted\":%" PRIu64
		",\"inodes_reclaimed\":%" PRIu64
		",\"branches_dropped\":%" PRIu64
		",\"branches_pending\":%" PRIu64 ",\"drop_no_room\":%s"
		",\"branches_scanned_whole\":%" PRIu64
		",\"disk_before\":%" PRIu64 ",\"disk_after\":%" PRIu64
		",\"compacted\":%s,\"compaction_deferred\":%s"
		",\"compaction_no_room\":%s}",
		st.space_low ? "true" : "false", st.keys_scanned,
		st.keys_deleted, st.bytes_deleted, st.inodes_reclaimed,
		st.branches_dropped, st.branches_pending,
		st.drop_no_room ? "true" : "false", st.branches_scanned_whole,
		st.disk_before, st.disk_after, st.compacted ? "true" : "false",
		st.compaction_deferred ? "true" : "false",
		st.compaction_no_room ? "true" : "false");
}

static void bd_cmd_retention(struct bd_ctl *c, const struct json *req,
			     struct json_buf *out, uid_t uid)
{
	int64_t secs;

	if (json_get_int(req, "seconds", &secs)) {
		if (bd_is_admin(c, out, uid, "change the retention window"))
			return;
		int rc = secs <= 0 ? -EINVAL :
				     store_set_retention(c->cfg.store,
							 (uint64_t)secs);

		if (rc == -EINVAL) {
			bd_reply_err(out, -EINVAL,
				     "bad retention %" PRId64
				     " s: the store takes 1 to %" PRIu64 " s",
				     secs, STORE_RETENTION_MAX);
			return;
		}
		if (rc) {
			bd_reply_err(out, rc,
				     "cannot set the retention window: %s",
				     strerror(-rc));
			return;
		}
	}
	json_buf_printf(out, "{\"ok\":true,\"retention_s\":%" PRIu64 "}",
			store_get_retention(c->cfg.store));
}

int bd_ctl_handle(struct bd_ctl *c, const char *line, size_t len, uid_t uid,
		  gid_t gid, char **reply)
{
	return bd_ctl_handle_groups(c, line, len, uid, gid, NULL, 0, reply);
}

/* The type every request field must have where it is present: the
 * commands read them with json_get_*, which take a value of another type
 * for an absent one (a raw client's "at_seq":"5" would make a branch of
 * now).  Each field comes once: json_get takes the first of two, which a
 * client that meant the last ("from" twice) would not expect.  NULL, or
 * the message of the first field of a wrong type or given twice. */
static const char *bd_bad_field(const struct json *req)
{
	static const struct {
		const char *key;
		int type; /* enum json_type; JSON_NUM: an integer */
		const char *what;
		const char *twice;
	} fields[] = {
		{ "cmd", JSON_STR, "\"cmd\" must be a string",
		  "\"cmd\" given twice" },
		{ "name", JSON_STR, "\"name\" must be a string",
		  "\"name\" given twice" },
		{ "from", JSON_STR, "\"from\" must be a string",
		  "\"from\" given twice" },
		{ "new_name", JSON_STR, "\"new_name\" must be a string",
		  "\"new_name\" given twice" },
		{ "at_ns", JSON_NUM, "\"at_ns\" must be an integer",
		  "\"at_ns\" given twice" },
		{ "at_seq", JSON_NUM, "\"at_seq\" must be an integer",
		  "\"at_seq\" given twice" },
		{ "seconds", JSON_NUM, "\"seconds\" must be an integer",
		  "\"seconds\" given twice" },
		{ "empty", JSON_BOOL, "\"empty\" must be true or false",
		  "\"empty\" given twice" },
		{ "checkpoint", JSON_BOOL,
		  "\"checkpoint\" must be true or false",
		  "\"checkpoint\" given twice" },
	};
	size_t i, k;

	for (i = 0; i < sizeof(fields) / sizeof(fields[0]); i++) {
		const struct json *v = json_get(req, fields[i].key);
		size_t seen = 0;

		if (v && ((int)v->type != fields[i].type ||
			  (v->type == JSON_NUM && !v->is_int)))
			return fields[i].what;
		/* The known fields only: n * 9 comparisons, bounded by
		 * the line's length whatever the keys. */
		for (k = 0; v && k < req->n; k++)
			seen += strcmp(req->keys[k], fields[i].key) == 0;
		if (seen > 1)
			return fields[i].twice;
	}
	return NULL;
}

int bd_ctl_handle_groups(struct bd_ctl *c, const char *line, size_t len,
			 uid_t uid, gid_t gid, const gid_t *groups,
			 size_t ngroups, char **reply)
{
	struct bd_caller who = { uid, gid, groups, ngroups };
	struct json_buf out;
	struct json *req = NULL;
	const char *cmd, *bad;
	int rc;

	json_buf_init(&out);
	rc = json_parse(line, len, &req);
	if (rc || req->type != JSON_OBJ) {
		bd_reply_err(&out, -EINVAL,
			     "malformed request: expected one JSON object");
		goto out;
	}
	cmd = json_get_str(req, "cmd");
	bad = bd_bad_field(req);
	if (bad)
		bd_reply_err(&out, -EINVAL, "malformed request: %s", bad);
	else if (!cmd)
		bd_reply_err(&out, -EINVAL, "request has no \"cmd\"");
	else if (strcmp(cmd, "create") == 0)
		bd_cmd_create(c, req, &out, uid, gid, groups, ngroups);
	else if (strcmp(cmd, "list") == 0)
		bd_cmd_list(c, &out);
	else if (strcmp(cmd, "info") == 0)
		bd_cmd_info(c, req, &out);
	else if (strcmp(cmd, "delete") == 0)
		bd_cmd_delete(c, req, &out, &who);
	else if (strcmp(cmd, "rename") == 0)
		bd_cmd_rename(c, req, &out, &who);
	else if (strcmp(cmd, "reset") == 0)
		bd_cmd_reset(c, req, &out, &who);
	else if (strcmp(cmd, "default") == 0)
		bd_cmd_default(c, req, &out, uid);
	else if (strcmp(cmd, "status") == 0)
		bd_cmd_status(c, &out);
	else if (strcmp(cmd, "gc") == 0)
		bd_cmd_gc(c, &out, uid);
	else if (strcmp(cmd, "retention") == 0)
		bd_cmd_retention(c, req, &out, uid);
	else
		bd_reply_err(&out, -EINVAL, "unknown command '%.64s'", cmd);
out:
	json_free(req);
	if (out.err) {
		json_buf_release(&out);
		return -ENOMEM;
	}
	*reply = out.p;
	return 0;
}

/* ------------------------------------------------------- transport */

static int bd_write_all(int fd, const char *p, size_t n)
{
	while (n) {
		ssize_t w = send(fd, p, n, MSG_NOSIGNAL);

		if (w < 0) {
			if (errno == EINTR)
				continue;
			return -errno;
		}
		p += w;
		n -= (size_t)w;
	}
	return 0;
}

/* The peer's supplementary groups (malloc'd; none if the kernel has no
 * SO_PEERGROUPS).  0 or -ENOMEM. */
static int bd_peer_groups(int fd, gid_t **out, size_t *n)
{
	socklen_t len = 32 * sizeof(gid_t);

	*out = NULL;
	*n = 0;
	for (int tries = 0; tries < 4; tries++) {
		gid_t *g = malloc(len ? len : sizeof(gid_t));

		if (!g)
			return -ENOMEM;
		if (getsockopt(fd, SOL_SOCKET, SO_PEERGROUPS, g, &len) == 0) {
			*out = g;
			*n = len / sizeof(gid_t);
			return 0;
		}
		free(g);
		if (errno != ERANGE)
			return 0;
		/* len now holds the size needed */
	}
	return 0;
}

static void *bd_ctl_conn_main(void *arg)
{
	struct bd_ctl_conn *conn = arg;
	struct bd_ctl *c = conn->c;
	const struct ucred cred = conn->cred;
	struct timeval tv = { .tv_sec = 60 };
	char *buf = malloc(BD_CTL_MAX_LINE + 1);
	gid_t *groups = NULL;
	size_t len = 0, ngroups = 0;

	if (!buf)
		goto out;
	setsockopt(conn->fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	/* A peer that never reads its replies does not hold the thread (and
	 * one of the connection slots) forever either. */
	setsockopt(conn->fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
	if (bd_peer_groups(conn->fd, &groups, &ngroups) != 0)
		goto out;
	for (;;) {
		char *nl;
		ssize_t r;

		nl = memchr(buf, '\n', len);
		if (!nl) {
			if (len >= BD_CTL_MAX_LINE) {
				static const char msg[] =
					"{\"ok\":false,\"error\":\"invalid\",\"message\":\"request too long\"}\n";

				bd_write_all(conn->fd, msg, sizeof(msg) - 1);
				goto out;
			}
			r = recv(conn->fd, buf + len, BD_CTL_MAX_LINE - len, 0);
			if (r < 0 && errno == EINTR)
				continue;
			if (r <= 0)
				goto out;
			len += (size_t)r;
			continue;
		}
		{
			size_t llen = (size_t)(nl - buf);
			char *reply = NULL;
			int rc;

			rc = bd_ctl_handle_groups(c, buf, llen, cred.uid,
						  cred.gid, groups, ngroups,
						  &reply);
			if (rc == 0) {
				rc = bd_write_all(conn->fd, reply,
						  strlen(reply));
				if (rc == 0)
					rc = bd_write_all(conn->fd, "\n", 1);
			}
			free(reply);
			if (rc)
				goto out;
			memmove(buf, nl + 1, len - llen - 1);
			len -= llen + 1;
		}
	}
out:
	free(buf);
	free(groups);
	pthread_mutex_lock(&c->mu);
	for (int i = 0; i < BD_CTL_MAX_CONN; i++) {
		if (c->conn_fds[i] == conn->fd)
			c->conn_fds[i] = -1;
	}
	close(conn->fd);
	free(conn);
	c->nconn--;
	pthread_cond_broadcast(&c->cv);
	pthread_mutex_unlock(&c->mu);
	return NULL;
}

/* Refuse a connection over a limit: one error reply, never blocking the
 * accept thread, then close. */
static void bd_ctl_refuse(int fd, const char *fmt, ...)
{
	char msg[256], line[384];
	va_list ap;
	int n;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	n = snprintf(line, sizeof(line),
		     "{\"ok\":false,\"error\":\"" BD_CTL_TOO_MANY
		     "\",\"message\":\"%s\"}\n",
		     msg);
	if (n > 0 && (size_t)n < sizeof(line) &&
	    send(fd, line, (size_t)n, MSG_DONTWAIT | MSG_NOSIGNAL) < 0) {
		/* the peer is gone or not reading: nothing more to tell */
	}
	/* Closing with its request unread would make the peer's read fail
	 * (ECONNRESET) before it sees the line: drain what came, a bounded
	 * amount (a peer that keeps sending cannot hold the accept thread). */
	shutdown(fd, SHUT_WR);
	for (int i = 0; i < 16; i++)
		if (recv(fd, line, sizeof(line), MSG_DONTWAIT) <= 0)
			break;
	close(fd);
}

/* Take a connection slot for fd (peer uid) under mu: 0, or -EAGAIN with
 * every slot taken, or -EUSERS with uid at its own limit. */
static int bd_ctl_take_slot(struct bd_ctl *c, int fd, uid_t uid)
{
	int mine = 0, free_i = -1;

	if (c->nconn >= BD_CTL_MAX_CONN)
		return -EAGAIN;
	for (int i = 0; i < BD_CTL_MAX_CONN; i++) {
		if (c->conn_fds[i] < 0) {
			if (free_i < 0)
				free_i = i;
		} else if (c->conn_uids[i] == uid) {
			mine++;
		}
	}
	if (free_i < 0)
		return -EAGAIN;
	if (uid != 0 && uid != c->cfg.daemon_uid && mine >= BD_CTL_MAX_PER_UID)
		return -EUSERS;
	c->nconn++;
	c->conn_fds[free_i] = fd;
	c->conn_uids[free_i] = uid;
	return 0;
}

static void *bd_ctl_main(void *arg)
{
	struct bd_ctl *c = arg;

	for (;;) {
		struct pollfd pfd[2] = {
			{ .fd = c->lfd, .events = POLLIN },
			{ .fd = c->stop_pipe[0], .events = POLLIN },
		};
		struct bd_ctl_conn *conn;
		struct ucred cred = { 0 };
		socklen_t clen = sizeof(cred);
		pthread_attr_t attr;
		pthread_t t;
		int fd, rc;

		if (poll(pfd, 2, -1) < 0) {
			if (errno == EINTR)
				continue;
			break;
		}
		if (pfd[1].revents)
			break;
		if (!(pfd[0].revents & POLLIN))
			continue;
		fd = accept4(c->lfd, NULL, NULL, SOCK_CLOEXEC);
		if (fd < 0) {
			/* Out of descriptors: the connection stays queued and
			 * poll would return at once; do not spin on it. */
			if (errno == EMFILE || errno == ENFILE ||
			    errno == ENOBUFS || errno == ENOMEM)
				poll(&pfd[1], 1, 100);
			continue;
		}
		if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &clen) !=
		    0) {
			close(fd);
			continue;
		}
		conn = malloc(sizeof(*conn));
		if (!conn) {
			close(fd);
			continue;
		}
		conn->c = c;
		conn->fd = fd;
		conn->cred = cred;
		pthread_mutex_lock(&c->mu);
		rc = bd_ctl_take_slot(c, fd, cred.uid);
		pthread_mutex_unlock(&c->mu);
		if (rc) {
			free(conn);
			if (rc == -EUSERS)
				bd_ctl_refuse(
					fd,
					"uid %u has %d control connections "
					"open already (at most %d at once)",
					(unsigned)cred.uid, BD_CTL_MAX_PER_UID,
					BD_CTL_MAX_PER_UID);
			else
				bd_ctl_refuse(fd,
					      "the daemon serves %d control "
					      "connections already; try again",
					      BD_CTL_MAX_CONN);
			continue;
		}
		pthread_attr_init(&attr);
		pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
		if (pthread_create(&t, &attr, bd_ctl_conn_main, conn) != 0) {
			pthread_mutex_lock(&c->mu);
			for (int i = 0; i < BD_CTL_MAX_CONN; i++)
				if (c->conn_fds[i] == fd)
					c->conn_fds[i] = -1;
			c->nconn--;
			pthread_mutex_unlock(&c->mu);
			close(fd);
			free(conn);
		}
		pthread_attr_destroy(&attr);
	}
	return NULL;
}

static int bd_mkdir_parent(const char *path)
{
	char dir[sizeof(((struct sockaddr_un *)0)->sun_path)];
	char *slash;

	snprintf(dir, sizeof(dir), "%s", path);
	slash = strrchr(dir, '/');
	if (!slash || slash == dir)
		return 0;
	*slash = 0;
	if (mkdir(dir, 0755) != 0 && errno != EEXIST)
		return -errno;
	return 0;
}

/* Take the socket path's lock (see the top of the file): -EADDRINUSE
 * while another daemon holds it. */
static int bd_ctl_lock(struct bd_ctl *c)
{
	char path[sizeof(((struct sockaddr_un *)0)->sun_path) + 8];

	struct stat fst, pst;
	int i, rc;

	snprintf(path, sizeof(path), "%s.lock", c->socket_path);
	/* Each retry means a daemon unlinked the file between our open and
	 * our flock: it had stopped, so a few tries are plenty. */
	for (i = 0; i < 100; i++) {
		c->lock_fd = open(
			path, O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600);
		if (c->lock_fd < 0) {
			rc = -errno;
			bd_log(&c->cfg.log, STORE_LOG_ERR,
			       "cannot open the control socket's lock file "
			       "'%s': %s",
			       path, strerror(-rc));
			return rc;
		}
		if (flock(c->lock_fd, LOCK_EX | LOCK_NB) != 0)
			return errno == EWOULDBLOCK ? -EADDRINUSE : -errno;
		/* CTL-2 */
		if (fstat(c->lock_fd, &fst) == 0 && lstat(path, &pst) == 0 &&
		    fst.st_dev == pst.st_dev && fst.st_ino == pst.st_ino) {
			c->locked = true;
			return 0;
		}
		close(c->lock_fd);
		c->lock_fd = -1;
	}
	bd_log(&c->cfg.log, STORE_LOG_ERR,
	       "the control socket's lock file '%s' keeps being replaced",
	       path);
	return -EADDRINUSE;
}

/* Drop the socket path's lock, removing its file first (CTL-1). */
static void bd_ctl_unlock(struct bd_ctl *c)
{
	char path[sizeof(((struct sockaddr_un *)0)->sun_path) + 8];

	if (c->locked) {
		snprintf(path, sizeof(path), "%s.lock", c->socket_path);
		unlink(path);
		c->locked = false;
	}
	if (c->lock_fd >= 0)
		close(c->lock_fd);
	c->lock_fd = -1;
}

int bd_ctl_open(const struct bd_ctl_config *cfg, struct bd_ctl **out)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	struct bd_ctl *c;
	int rc, fd;

	if (strlen(cfg->socket_path) >= sizeof(sa.sun_path))
		return -ENAMETOOLONG;
	c = calloc(1, sizeof(*c));
	if (!c)
		return -ENOMEM;
	c->cfg = *cfg;
	c->lfd = -1;
	c->lock_fd = -1;
	c->stop_pipe[0] = c->stop_pipe[1] = -1;
	pthread_mutex_init(&c->mu, NULL);
	pthread_cond_init(&c->cv, NULL);
	for (int i = 0; i < BD_CTL_MAX_CONN; i++)
		c->conn_fds[i] = -1;
	c->socket_path = strdup(cfg->socket_path);
	c->store_dir = strdup(cfg->store_dir ? cfg->store_dir : "");
	c->mountpoint = strdup(cfg->mountpoint ? cfg->mountpoint : "");
	c->started_ns = bd_now_ns();
	if (!c->socket_path || !c->store_dir || !c->mountpoint) {
		rc = -ENOMEM;
		goto err_free;
	}
	strcpy(sa.sun_path, c->socket_path);
	rc = bd_mkdir_parent(c->socket_path);
	if (rc)
		goto err_free;
	{
		char why[512];

		rc = bd_ctl_socket_dir_check(c->socket_path, geteuid(), why,
					     sizeof(why));
		if (rc) {
			bd_log(&cfg->log, STORE_LOG_ERR, "%s", why);
			goto err_free;
		}
	}
	rc = bd_ctl_lock(c);
	if (rc)
		goto err_free;
	/* A socket left by a crashed daemon is replaced; one that answers
	 * belongs to a live daemon. */
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd >= 0) {
		if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) == 0) {
			close(fd);
			rc = -EADDRINUSE;
			goto err_free;
		}
		close(fd);
	}
	unlink(c->socket_path);
	c->lfd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (c->lfd < 0) {
		rc = -errno;
		goto err_free;
	}
	if (bind(c->lfd, (struct sockaddr *)&sa, sizeof(sa)) != 0 ||
	    chmod(c->socket_path, 0666) != 0 || listen(c->lfd, 16) != 0) {
		rc = -errno;
		goto err_free;
	}
	if (pipe2(c->stop_pipe, O_CLOEXEC) != 0) {
		rc = -errno;
		goto err_unlink;
	}
	rc = -pthread_create(&c->thread, NULL, bd_ctl_main, c);
	if (rc)
		goto err_unlink;
	*out = c;
	return 0;
err_unlink:
	unlink(c->socket_path);
err_free:
	if (c->lfd >= 0)
		close(c->lfd);
	bd_ctl_unlock(c);
	if (c->stop_pipe[0] >= 0) {
		close(c->stop_pipe[0]);
		close(c->stop_pipe[1]);
	}
	free(c->socket_path);
	free(c->store_dir);
	free(c->mountpoint);
	free(c);
	return rc;
}

void bd_ctl_close(struct bd_ctl *c)
{
	if (!c)
		return;
	if (write(c->stop_pipe[1], "x", 1) < 0)
		bd_log(&c->cfg.log, STORE_LOG_WARN, "ctl: cannot signal stop");
	pthread_join(c->thread, NULL);
	close(c->lfd);
	unlink(c->socket_path);
	pthread_mutex_lock(&c->mu);
	/* Wake connection threads blocked in recv. */
	for (int i = 0; i < BD_CTL_MAX_CONN; i++) {
		if (c->conn_fds[i] >= 0)
			shutdown(c->conn_fds[i], SHUT_RDWR);
	}
	while (c->nconn > 0)
		pthread_cond_wait(&c->cv, &c->mu);
	pthread_mutex_unlock(&c->mu);
	close(c->stop_pipe[0]);
	close(c->stop_pipe[1]);
	bd_ctl_unlock(c); /* after the unlink above */
	pthread_mutex_destroy(&c->mu);
	pthread_cond_destroy(&c->cv);
	free(c->socket_path);
	free(c->store_dir);
	free(c->mountpoint);
	free(c);
}
