/* SPDX-License-Identifier: MIT */
/*
 * pgckpt.c - the pg_checkpoint policy (see pgckpt.h for why).
 *
 * Who runs what:
 *   - bd_pgckpt_parent() runs in the daemon, on the thread of the mkdir or
 *     control request.  It reads the parent's postmaster.pid from the store
 *     (not through the mount: the kernel holds the branch root's lock for
 *     the whole mkdir, and a path walk through the root could wait on it),
 *     and the owner of its data directory (the branch root, or one below it:
 *     pgckpt_data_dir).
 *   - The connection runs in a helper process, this same program run again
 *     with BD_PGCKPT_HELPER_ARG (posix_spawn: safe from a threaded daemon,
 *     unlike fork followed by libpq).  Run by root, the helper becomes the
 *     data directory's owner first, so that peer authentication on the unix
 *     socket works as it does for the owner's own psql.  The daemon keeps
 *     its credentials.
 *   - The daemon waits for the helper's one line of output and its exit,
 *     at most timeout_ms, then kills it (SIGKILL) and goes on.  A helper
 *     that a SIGKILL does not end within a second is stuck in the kernel,
 *     most likely on that same lock of the branch root (a socket path that
 *     runs through the mount, such as a socket directory inside a branch
 *     whose dentry is not cached): it can only go once the mkdir is
 *     answered, so a thread of its own reaps it and the mkdir goes on.
 *
 * While the daemon waits, the parent's checkpointer writes and fsyncs
 * through the mount: other FUSE workers serve it, the waiting request holds
 * no fs or store lock.  When CHECKPOINT returns, every page it wrote and
 * the new pg_control are in the store (rule 3: its fsyncs were durable),
 * so the branch made next starts recovery at that checkpoint.
 *
 * postmaster.pid, as Postgres 10+ writes it: 1 pid, 2 data directory,
 * 3 start time, 4 port, 5 first unix socket directory (empty when unix
 * sockets are off; relative to the data directory when not absolute, as
 * with -k .), 6 first listen address ("*" for all), 7 shared memory
 * key, 8 status.  Lines 4-6 appear once the postmaster has opened its
 * sockets.
 *
 * The helper checks that the server it reached has the data directory of
 * line 2: a postmaster.pid written in another pid namespace (a container
 * using the branch) may name a pid that is alive here by chance, and a
 * port and socket directory of a different server.  Such a server is left
 * alone (FAILED, "not the server of").  A container's own server is found
 * by cfg.server_pid (a postgres process working in the branch).  When it
 * lives in another mount namespace, the paths in postmaster.pid are paths
 * of that namespace: a helper started by root enters it (setns, as
 * nsenter -m does) before it drops to the owner's uid; a daemon without
 * root reaches the socket directory through /proc/PID/root instead (which
 * an absolute symlink on the way, such as /var/run -> /run, defeats).  A
 * uid with no name where the helper runs connects as the user "postgres".
 *
 * Deliberately not done: starting or stopping servers, retries, and
 * passwords beyond libpq's own (PGPASSFILE, ~/.pgpass of the owner).
 * libpq is included by this file only (check-layers).
 */
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <libpq-fe.h>
#include <limits.h>
#include <poll.h>
#include <pthread.h>
#include <pwd.h>
#include <sched.h>
#include <signal.h>
#include <stdint.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/pidfd.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "ctl.h"
#include "pgckpt.h"

extern char **environ;

#define PGCKPT_DEFAULT_TIMEOUT_MS 10000u
#define PGCKPT_PIDFILE_MAX 4096
/* How long a helper may take to exit after its output ends or after
 * SIGKILL before it is handed to a reaper thread. */
#define PGCKPT_REAP_MS 1000.0
/* No wait status is negative: the helper was reaped by someone else
 * (ECHILD), its outcome unknown. */
#define PGCKPT_STATUS_LOST (-1)

/* Helper exit statuses. */
enum {
	PGCKPT_HELPER_DONE = 0,
	PGCKPT_HELPER_FAILED = 1,
	PGCKPT_HELPER_USAGE = 2,
	PGCKPT_HELPER_OTHER_SERVER = 3,
};

struct bd_pgckpt {
	struct bd_pgckpt_config cfg; /* immutable after new */
	char exe[PATH_MAX];
};

const char *bd_pgckpt_outcome_name(enum bd_pgckpt_outcome o)
{
	switch (o) {
	case BD_PGCKPT_OFF:
		return "off";
	case BD_PGCKPT_NO_SERVER:
		return "no_server";
	case BD_PGCKPT_DONE:
		return "done";
	case BD_PGCKPT_FAILED:
		return "failed";
	case BD_PGCKPT_TIMEOUT:
		return "timeout";
	}
	return "unknown";
}

int bd_pgckpt_new(const struct bd_pgckpt_config *cfg, struct bd_pgckpt **out)
{
	struct bd_pgckpt *pc = calloc(1, sizeof(*pc));

	if (!pc)
		return -ENOMEM;
	pc->cfg = *cfg;
	if (!pc->cfg.timeout_ms)
		pc->cfg.timeout_ms = PGCKPT_DEFAULT_TIMEOUT_MS;
	snprintf(pc->exe, sizeof(pc->exe), "%s",
		 cfg->exe ? cfg->exe : "/proc/self/exe");
	pc->cfg.exe = pc->exe;
	*out = pc;
	return 0;
}

void bd_pgckpt_free(struct bd_pgckpt *pc)
{
	free(pc);
}

/* ------------------------------------------------------ postmaster.pid */

static void pgckpt_copy_line(char *dst, size_t dstsz, const char *src,
			     size_t len)
{
	if (len >= dstsz)
		len = dstsz - 1;
	memcpy(dst, src, len);
	dst[len] = 0;
}

/* A relative unix_socket_directories entry (-k . or -k run) is relative to
 * the data directory, where the postmaster works, and libpq would take it
 * for a host name: make it absolute with line 2.  An abstract socket
 * ('@name') and a data directory that is not absolute stay as they are. */
static void pgckpt_sockdir_abs(struct bd_pgckpt_pidfile *pf)
{
	char abs[sizeof(pf->host)];
	int k;

	if (pf->host[0] == '/' || pf->host[0] == '@' || pf->datadir[0] != '/')
		return;
	if (!strcmp(pf->host, "."))
		k = snprintf(abs, sizeof(abs), "%s", pf->datadir);
	else
		k = snprintf(abs, sizeof(abs), "%s/%s", pf->datadir, pf->host);
	if (k > 0 && (size_t)k < sizeof(abs))
		memcpy(pf->host, abs, (size_t)k + 1);
}

int bd_pgckpt_parse_pidfile(const char *text, size_t len,
			    struct bd_pgckpt_pidfile *out)
{
	const char *line[8] = { 0 };
	size_t llen[8] = { 0 };
	const char *p = text, *end = text + len;
	char pidbuf[24], *e;
	int n = 0;

	memset(out, 0, sizeof(*out));
	while (n < 8 && p < end) {
		const char *nl = memchr(p, '\n', (size_t)(end - p));
		size_t l = nl ? (size_t)(nl - p) : (size_t)(end - p);

		line[n] = p;
		llen[n] = l && p[l - 1] == '\r' ? l - 1 : l;
		n++;
		if (!nl)
			break;
		p = nl + 1;
	}
	if (n < 1 || llen[0] == 0 || llen[0] >= sizeof(pidbuf))
		return -EINVAL;
	pgckpt_copy_line(pidbuf, sizeof(pidbuf), line[0], llen[0]);
	if (pidbuf[0] < '1' || pidbuf[0] > '9')
		return -EINVAL;
	errno = 0;
	out->pid = strtol(pidbuf, &e, 10);
	if (errno || *e || e == pidbuf || out->pid <= 0 || out->pid > INT_MAX) {
		out->pid = 0;
		return -EINVAL;
	}
	if (n > 1)
		pgckpt_copy_line(out->datadir, sizeof(out->datadir), line[1],
				 llen[1]);
	if (n > 3)
		pgckpt_copy_line(out->port, sizeof(out->port), line[3],
				 llen[3]);
	if (n > 4 && llen[4]) {
		pgckpt_copy_line(out->host, sizeof(out->host), line[4],
				 llen[4]);
		pgckpt_sockdir_abs(out);
	} else if (n > 5 && llen[5]) {
		pgckpt_copy_line(out->host, sizeof(out->host), line[5],
				 llen[5]);
		if (!strcmp(out->host, "*") || !strcmp(out->host, "0.0.0.0") ||
		    !strcmp(out->host, "::"))
			snprintf(out->host, sizeof(out->host), "localhost");
	}
	if (n > 7)
		pgckpt_copy_line(out->status, sizeof(out->status), line[7],
				 llen[7]);
	return 0;
}

/* Read the postmaster.pid in directory dir of the parent from the store
 * into buf.  Bytes read, 0 when there is none, or a negative errno. */
static ssize_t pgckpt_read_pidfile(struct bd_pgckpt *pc,
				   const struct store_branch_info *parent,
				   uint64_t dir, char *buf, size_t bufsz)
{
	uint64_t ino;
	int rc;

	rc = store_lookup(pc->cfg.store, parent->id, STORE_SEQ_LATEST, dir,
			  "postmaster.pid", &ino);
	if (rc == -ENOENT)
		return 0;
	if (rc)
		return rc;
	return store_read(pc->cfg.store, parent->id, STORE_SEQ_LATEST, ino, buf,
			  bufsz, 0);
}

/* The parent's data directory whose server is checkpointed: the branch
 * root, or of the data directories below it (store_drop_dirs: 15/main,
 * 18/docker of a branch mounted as /var/lib/postgresql) the first whose
 * postmaster.pid names a live pid, else the first that has one. */
static uint64_t pgckpt_data_dir(struct bd_pgckpt *pc,
				const struct store_branch_info *parent)
{
	uint64_t dirs[STORE_DROP_DIRS], first = 0;
	size_t n, i;
	char buf[32];

	if (store_drop_dirs(pc->cfg.store, parent->id, STORE_SEQ_LATEST,
			    parent->root_ino, dirs, &n) != 0 ||
	    n == 1)
		return parent->root_ino;
	for (i = 0; i < n; i++) {
		ssize_t k = pgckpt_read_pidfile(pc, parent, dirs[i], buf,
						sizeof(buf) - 1);
		long pid;

		if (k <= 0)
			continue;
		buf[k] = 0;
		pid = strtol(buf, NULL, 10);
		if (pid <= 0 || pid > INT_MAX)
			continue;
		if (!first)
			first = dirs[i];
		if (kill((pid_t)pid, 0) == 0 || errno == EPERM)
			return dirs[i];
	}
	return first ? first : parent->root_ino;
}

/* ------------------------------------------------------------ daemon */

static double pgckpt_now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6;
}

/* Start the helper with its stdout and stderr on a pipe.  0 with *child
 * and *rfd set, or a negative errno. */
static int pgckpt_spawn(struct bd_pgckpt *pc, char *const argv[], pid_t *child,
			int *rfd)
{
	posix_spawn_file_actions_t fa;
	posix_spawnattr_t at;
	sigset_t none, dfl;
	int fds[2], rc;

	if (pipe2(fds, O_CLOEXEC) != 0)
		return -errno;
	rc = posix_spawn_file_actions_init(&fa);
	if (rc)
		goto err_pipe;
	rc = posix_spawnattr_init(&at);
	if (rc)
		goto err_fa;
	/* The daemon blocks its signals in every thread and ignores SIGPIPE;
	 * the helper starts with no signal blocked and every disposition at
	 * its default, whatever the daemon changes later (SIGKILL and SIGSTOP
	 * in the full set are passed over by posix_spawn). */
	sigemptyset(&none);
	sigfillset(&dfl);
	rc = posix_spawnattr_setsigmask(&at, &none);
	if (!rc)
		rc = posix_spawnattr_setsigdefault(&at, &dfl);
	/* Its own process group: a ^C meant for a foreground branchd does
	 * not reach it, the daemon's timeout ends it. */
	if (!rc)
		rc = posix_spawnattr_setpgroup(&at, 0);
	if (!rc)
		rc = posix_spawnattr_setflags(
			&at, POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF |
				     POSIX_SPAWN_SETPGROUP);
	if (!rc)
		rc = posix_spawn_file_actions_addopen(&fa, 0, "/dev/null",
						      O_RDONLY, 0);
	if (!rc)
		rc = posix_spawn_file_actions_adddup2(&fa, fds[1], 1);
	if (!rc)
		rc = posix_spawn_file_actions_adddup2(&fa, fds[1], 2);
	/* Nothing else of the daemon's (/dev/fuse, the store's files, the
	 * control socket) reaches the helper. */
	if (!rc)
		rc = posix_spawn_file_actions_addclosefrom_np(&fa, 3);
	if (!rc)
		rc = posix_spawn(child, pc->cfg.exe, &fa, &at, argv, environ);
	posix_spawnattr_destroy(&at);
	posix_spawn_file_actions_destroy(&fa);
	if (rc)
		goto err_pipe;
	close(fds[1]);
	*rfd = fds[0];
	return 0;
err_fa:
	posix_spawn_file_actions_destroy(&fa);
err_pipe:
	close(fds[0]);
	close(fds[1]);
	return -rc;
}

/* Read the helper's output until EOF or the deadline (monotonic ms).
 * true when EOF came in time; false at the deadline or when the pipe
 * fails, so that the caller kills the helper instead of waiting on it
 * without a bound. */
static bool pgckpt_collect(int rfd, double deadline, char *buf, size_t bufsz)
{
	size_t used = 0;

	buf[0] = 0;
	for (;;) {
		struct pollfd p = { .fd = rfd, .events = POLLIN };
		double left = deadline - pgckpt_now_ms();
		char tmp[256];
		ssize_t r;
		int n;

		if (left <= 0)
			return false;
		n = poll(&p, 1, (int)(left + 1));
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return false;
		r = read(rfd, tmp, sizeof(tmp));
		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0)
			return false;
		if (r == 0)
			break;
		if (used + 1 < bufsz) {
			size_t k = (size_t)r < bufsz - 1 - used ?
					   (size_t)r :
					   bufsz - 1 - used;

			memcpy(buf + used, tmp, k);
			used += k;
			buf[used] = 0;
		}
	}
	buf[used] = 0;
	return true;
}

/* The helper's output as one line: newlines to spaces, no trailing
 * blanks. */
static void pgckpt_one_line(char *s)
{
	size_t n;

	for (char *c = s; *c; c++)
		if (*c == '\n' || *c == '\r' || *c == '\t')
			*c = ' ';
	for (n = strlen(s); n && s[n - 1] == ' '; n--)
		s[n - 1] = 0;
}

/* Wait up to ms for child to exit: true once it is reaped (or there is
 * nothing left to wait for: *status is then PGCKPT_STATUS_LOST, never read
 * as a success), false if it is still there. */
static bool pgckpt_reap(pid_t child, int *status, double ms)
{
	double end = pgckpt_now_ms() + ms;
	/* A pidfd turns readable when the child exits: the wait ends then,
	 * not at the next tick of a polling loop (this is on mkdir's path). */
	int pfd = pidfd_open(child, 0);
	bool done = false;

	for (;;) {
		pid_t r = waitpid(child, status, WNOHANG);
		double left = end - pgckpt_now_ms();

		if (r == child) {
			done = true;
			break;
		}
		if (r < 0 && errno != EINTR) {
			*status = PGCKPT_STATUS_LOST;
			done = true;
			break;
		}
		if (left <= 0)
			break;
		if (pfd >= 0) {
			struct pollfd p = { .fd = pfd, .events = POLLIN };

			poll(&p, 1, (int)left + 1);
		} else {
			struct timespec ts = { 0, 1000 * 1000 };

			nanosleep(&ts, NULL);
		}
	}
	if (pfd >= 0)
		close(pfd);
	return done;
}

static void *pgckpt_reaper_main(void *arg)
{
	pid_t child = (pid_t)(intptr_t)arg;
	int status;

	while (waitpid(child, &status, 0) < 0 && errno == EINTR)
		;
	return NULL;
}

/* child got SIGKILL and is still there: reap it on a detached thread (see
 * the top of the file), or here if no thread can be started. */
static void pgckpt_reap_later(pid_t child, int *status)
{
	pthread_attr_t attr;
	pthread_t t;
	int rc;

	pthread_attr_init(&attr);
	pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
	rc = pthread_create(&t, &attr, pgckpt_reaper_main,
			    (void *)(intptr_t)child);
	pthread_attr_destroy(&attr);
	if (rc != 0)
		while (waitpid(child, status, 0) < 0 && errno == EINTR)
			;
}

/* mntns: a pid whose mount namespace the helper enters first, or 0. */
static void pgckpt_run(struct bd_pgckpt *pc, const struct bd_pgckpt_pidfile *pf,
		       const struct store_attr *owner, long mntns,
		       struct bd_pgckpt_result *res)
{
	char uid[16], gid[16], tmo[16], ns[24], out[sizeof(res->why)] = "";
	char *argv[] = { "branchd",
			 BD_PGCKPT_HELPER_ARG,
			 uid,
			 gid,
			 (char *)pf->host,
			 (char *)pf->port,
			 (char *)pf->datadir,
			 tmo,
			 ns,
			 NULL };
	double t0 = pgckpt_now_ms();
	bool in_time;
	pid_t child;
	int rc, rfd = -1, status = 0;

	snprintf(uid, sizeof(uid), "%u", (unsigned)owner->uid);
	snprintf(gid, sizeof(gid), "%u", (unsigned)owner->gid);
	snprintf(ns, sizeof(ns), "%ld", mntns);
	/* libpq gives up later than the daemon does: the timeout is ours. */
	snprintf(tmo, sizeof(tmo), "%u", (pc->cfg.timeout_ms + 999) / 1000 + 2);
	rc = pgckpt_spawn(pc, argv, &child, &rfd);
	if (rc) {
		res->outcome = BD_PGCKPT_FAILED;
		snprintf(res->why, sizeof(res->why),
			 "cannot start the checkpoint helper '%s': %s",
			 pc->cfg.exe, strerror(-rc));
		return;
	}
	in_time =
		pgckpt_collect(rfd, t0 + pc->cfg.timeout_ms, out, sizeof(out));
	close(rfd);
	if (in_time && !pgckpt_reap(child, &status, PGCKPT_REAP_MS)) {
		/* Its output ended but it did not exit: as late as a timeout. */
		in_time = false;
	}
	if (!in_time) {
		kill(child, SIGKILL);
		if (!pgckpt_reap(child, &status, PGCKPT_REAP_MS))
			pgckpt_reap_later(child, &status);
	}
	res->ms = pgckpt_now_ms() - t0;
	pgckpt_one_line(out);
	if (!in_time) {
		res->outcome = BD_PGCKPT_TIMEOUT;
		snprintf(res->why, sizeof(res->why),
			 "no answer from the server within %u ms",
			 pc->cfg.timeout_ms);
	} else if (status == PGCKPT_STATUS_LOST) {
		res->outcome = BD_PGCKPT_FAILED;
		snprintf(res->why, sizeof(res->why),
			 "the checkpoint helper's exit status was lost "
			 "(is SIGCHLD ignored?)");
	} else if (WIFEXITED(status) &&
		   WEXITSTATUS(status) == PGCKPT_HELPER_DONE) {
		res->outcome = BD_PGCKPT_DONE;
	} else {
		char how[64];

		res->outcome = BD_PGCKPT_FAILED;
		if (WIFSIGNALED(status))
			snprintf(how, sizeof(how), "died of signal %d (%s)",
				 WTERMSIG(status), strsignal(WTERMSIG(status)));
		else
			snprintf(how, sizeof(how), "exited with status %d",
				 WIFEXITED(status) ? WEXITSTATUS(status) : -1);
		/* "ok" is what it prints once CHECKPOINT returned: then its
		 * failure came after (a crash in its exit, say), and the
		 * line alone would read as the reason. */
		if (out[0] && strcmp(out, "ok") != 0)
			snprintf(res->why, sizeof(res->why), "%s", out);
		else if (out[0])
			snprintf(res->why, sizeof(res->why),
				 "the checkpoint helper said 'ok' but then %s",
				 how);
		else
			snprintf(res->why, sizeof(res->why),
				 "the checkpoint helper %s", how);
	}
}

/* Does process pid live in another mount namespace than the daemon?
 * false when it cannot be told. */
static bool pgckpt_other_mntns(long pid)
{
	struct stat self, other;
	char path[64];

	snprintf(path, sizeof(path), "/proc/%ld/ns/mnt", pid);
	if (stat("/proc/self/ns/mnt", &self) != 0 || stat(path, &other) != 0)
		return false;
	return self.st_dev != other.st_dev || self.st_ino != other.st_ino;
}

/* The effective uid of process pid (the owner of /proc/PID), or -1. */
static long pgckpt_uid_of(long pid)
{
	char path[64];
	struct stat st;

	snprintf(path, sizeof(path), "/proc/%ld", pid);
	return stat(path, &st) == 0 ? (long)st.st_uid : -1;
}

void bd_pgckpt_parent(struct bd_pgckpt *pc,
		      const struct store_branch_info *parent, const char *what,
		      struct bd_pgckpt_result *res)
{
	struct bd_pgckpt_pidfile pf;
	struct store_attr owner;
	bool other_ns = false;
	long hp = -1, mntns = 0;
	uint64_t dir;
	char *text;
	ssize_t n;
	int rc;

	memset(res, 0, sizeof(*res));
	res->outcome = BD_PGCKPT_OFF;
	if (!pc || !pc->cfg.enabled)
		return;
	res->outcome = BD_PGCKPT_NO_SERVER;
	text = malloc(PGCKPT_PIDFILE_MAX);
	if (!text) {
		res->outcome = BD_PGCKPT_FAILED;
		snprintf(res->why, sizeof(res->why), "out of memory");
		goto out_log;
	}
	dir = pgckpt_data_dir(pc, parent);
	n = pgckpt_read_pidfile(pc, parent, dir, text, PGCKPT_PIDFILE_MAX);
	if (n < 0) {
		res->outcome = BD_PGCKPT_FAILED;
		snprintf(res->why, sizeof(res->why),
			 "cannot read its postmaster.pid: %s",
			 strerror((int)-n));
		goto out_free;
	}
	if (n == 0 || bd_pgckpt_parse_pidfile(text, (size_t)n, &pf) != 0) {
		snprintf(res->why, sizeof(res->why),
			 n ? "its postmaster.pid names no pid" :
			     "no postmaster.pid");
		goto out_free;
	}
	res->pid = pf.pid;
	if (pc->cfg.server_pid)
		hp = pc->cfg.server_pid(pc->cfg.server_pid_ctx, parent, pf.pid);
	if (hp > 0) {
		res->pid = hp;
		other_ns = pgckpt_other_mntns(hp);
	}
	if (hp == 0) {
		/* No postgres process works in the branch: the pid is a
		 * left-over (a crash, a reboot) that may name some other
		 * process now, and whatever listens where the file says is
		 * not this branch's server. */
		snprintf(res->why, sizeof(res->why),
			 "no server runs in it (the pid %ld in its "
			 "postmaster.pid is not one)",
			 pf.pid);
		goto out_free;
	}
	if (hp < 0 && kill((pid_t)pf.pid, 0) != 0 && errno == ESRCH) {
		snprintf(res->why, sizeof(res->why),
			 "the pid %ld in its postmaster.pid is not running",
			 pf.pid);
		goto out_free;
	}
	res->outcome = BD_PGCKPT_FAILED;
	if (!pf.port[0]) {
		snprintf(res->why, sizeof(res->why),
			 "the server is still starting: its postmaster.pid "
			 "names no port yet");
		goto out_free;
	}
	if (!pf.host[0]) {
		snprintf(res->why, sizeof(res->why),
			 "the server listens on no unix socket and no TCP "
			 "address");
		goto out_free;
	}
	rc = store_getattr(pc->cfg.store, parent->id, STORE_SEQ_LATEST, dir,
			   &owner);
	if (rc) {
		snprintf(res->why, sizeof(res->why),
			 "cannot read the owner of its data directory: %s",
			 strerror(-rc));
		goto out_free;
	}
	if (other_ns && geteuid() == 0 && owner.uid != 0 &&
	    pgckpt_uid_of(hp) == (long)owner.uid) {
		/* A container: its socket directory is a path of its own
		 * mount namespace, which the helper enters.  Only that of
		 * a process of the data directory's owner (Postgres runs as
		 * its data directory's owner), whose uid the helper takes
		 * before it reads anything there. */
		mntns = hp;
	} else if (other_ns && pf.host[0] == '/') {
		char via[sizeof(pf.host)];
		int k = snprintf(via, sizeof(via), "/proc/%ld/root%s", hp,
				 pf.host);

		if (k > 0 && (size_t)k < sizeof(via))
			memcpy(pf.host, via, (size_t)k + 1);
	}
	pgckpt_run(pc, &pf, &owner, mntns, res);
out_free:
	free(text);
out_log:
	if (res->outcome == BD_PGCKPT_DONE)
		bd_log(&pc->cfg.log, STORE_LOG_INFO,
		       "pg_checkpoint: checkpointed the server on '%s' (pid "
		       "%ld%s) before %s in %.0f ms",
		       parent->name, res->pid,
		       other_ns ? ", in another mount namespace" : "", what,
		       res->ms);
	else if (res->outcome == BD_PGCKPT_FAILED ||
		 res->outcome == BD_PGCKPT_TIMEOUT)
		bd_log(&pc->cfg.log, STORE_LOG_WARN,
		       "pg_checkpoint: cannot checkpoint the server on '%s' "
		       "(pid %ld) before %s: %s; the new branch replays all "
		       "WAL since the last checkpoint when it starts",
		       parent->name, res->pid, what, res->why);
}

/* ------------------------------------------------------------ helper */

/* libpq's message as one line. */
static void pgckpt_say(const char *what, const char *msg)
{
	char m[512];

	snprintf(m, sizeof(m), "%s", msg ? msg : "unknown error");
	pgckpt_one_line(m);
	printf("%s: %s\n", what, m);
}

/* No statement_timeout (a server's, a role's or PGOPTIONS'): under load a
 * CHECKPOINT may take longer than a timeout meant for queries, and the
 * daemon bounds the helper anyway (pg_checkpoint_timeout). */
static PGconn *pgckpt_connect(const char *host, const char *port,
			      const char *user, const char *dbname,
			      const char *tmo)
{
	const char *keys[8], *vals[8];
	int n = 0;

	keys[n] = "host", vals[n++] = host;
	keys[n] = "port", vals[n++] = port;
	keys[n] = "connect_timeout", vals[n++] = tmo;
	keys[n] = "application_name", vals[n++] = "branchd pg_checkpoint";
	keys[n] = "options", vals[n++] = "-c statement_timeout=0";
	if (user)
		keys[n] = "user", vals[n++] = user;
	if (dbname)
		keys[n] = "dbname", vals[n++] = dbname;
	keys[n] = NULL, vals[n] = NULL;
	return PQconnectdbParams(keys, vals, 0);
}

int bd_pgckpt_helper_main(int argc, char **argv)
{
	const char *host, *port, *datadir, *tmo, *dd, *user = NULL;
	unsigned long uid, gid;
	long mntns;
	PGresult *res = NULL;
	PGconn *conn;
	char *e1, *e2;
	int rc = PGCKPT_HELPER_FAILED;

	if (argc != 9) {
		printf("usage: branchd %s UID GID HOST PORT DATADIR "
		       "TIMEOUT_S MNTNS_PID\n",
		       BD_PGCKPT_HELPER_ARG);
		return PGCKPT_HELPER_USAGE;
	}
	errno = 0;
	uid = strtoul(argv[2], &e1, 10);
	gid = strtoul(argv[3], &e2, 10);
	if (errno || *e1 || *e2 || uid > UINT_MAX || gid > UINT_MAX) {
		printf("bad uid or gid\n");
		return PGCKPT_HELPER_USAGE;
	}
	mntns = strtol(argv[8], &e1, 10);
	if (errno || *e1 || mntns < 0 || (mntns > 0 && uid == 0)) {
		/* never root inside another mount namespace */
		printf("bad mount namespace pid\n");
		return PGCKPT_HELPER_USAGE;
	}
	host = argv[4];
	port = argv[5];
	datadir = argv[6];
	tmo = argv[7];
	if (mntns > 0) {
		char path[64];
		int fd;

		/* The server's paths are those of its mount namespace (a
		 * container's): enter it while still root. */
		snprintf(path, sizeof(path), "/proc/%ld/ns/mnt", mntns);
		fd = open(path, O_RDONLY | O_CLOEXEC);
		if (fd < 0 || setns(fd, CLONE_NEWNS) != 0) {
			printf("cannot enter the mount namespace of pid %ld "
			       "(a container's server): %s\n",
			       mntns, strerror(errno));
			if (fd >= 0)
				close(fd);
			return PGCKPT_HELPER_FAILED;
		}
		close(fd);
	}
	if (geteuid() == 0 && uid != 0 &&
	    (setgroups(0, NULL) != 0 || setgid((gid_t)gid) != 0 ||
	     setuid((uid_t)uid) != 0)) {
		printf("cannot become uid %lu, the owner of the data "
		       "directory: %s\n",
		       uid, strerror(errno));
		return PGCKPT_HELPER_FAILED;
	}
	/* libpq looks for ~/.pgpass of the uid it runs as. */
	unsetenv("HOME");
	/* A uid with no name here (the postgres user of a container): libpq
	 * could not name the user, so ask for the usual superuser. */
	if (!getenv("PGUSER") && !getpwuid(geteuid()))
		user = "postgres";
	conn = pgckpt_connect(host, port, user,
			      getenv("PGDATABASE") ? NULL : "postgres", tmo);
	if (conn && PQstatus(conn) != CONNECTION_OK && !getenv("PGDATABASE") &&
	    strstr(PQerrorMessage(conn), "\"postgres\" does not exist")) {
		PQfinish(conn);
		conn = pgckpt_connect(host, port, user, "template1", tmo);
	}
	if (!conn) {
		printf("out of memory\n");
		return PGCKPT_HELPER_FAILED;
	}
	if (PQstatus(conn) != CONNECTION_OK) {
		pgckpt_say("cannot connect", PQerrorMessage(conn));
		goto out;
	}
	res = PQexec(conn, "SELECT current_setting('data_directory')");
	if (PQresultStatus(res) != PGRES_TUPLES_OK || PQntuples(res) != 1) {
		pgckpt_say("cannot read the server's data_directory",
			   PQerrorMessage(conn));
		goto out;
	}
	dd = PQgetvalue(res, 0, 0);
	if (strcmp(dd, datadir) != 0) {
		printf("the server on %s port %s is not the server of this "
		       "branch: it serves '%s', the branch's postmaster.pid "
		       "names '%s'\n",
		       host, port, dd, datadir);
		rc = PGCKPT_HELPER_OTHER_SERVER;
		goto out;
	}
	PQclear(res);
	res = PQexec(conn, "CHECKPOINT");
	if (PQresultStatus(res) != PGRES_COMMAND_OK) {
		pgckpt_say("CHECKPOINT failed", PQerrorMessage(conn));
		goto out;
	}
	printf("ok\n");
	rc = PGCKPT_HELPER_DONE;
out:
	PQclear(res);
	PQfinish(conn);
	fflush(stdout);
	return rc;
}
