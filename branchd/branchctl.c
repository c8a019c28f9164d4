/* SPDX-License-Identifier: MIT */
/*
 * branchctl.c - command-line client of a running branchd.
 *
 * Finds the daemon's control socket (--socket, else from --mount,
 * BRANCHFS_MOUNT, or the current directory's nearest enclosing mount; see
 * ctlproto.h for the socket's location), sends one JSON request and
 * prints the reply for people, or verbatim with --json.  The exit status
 * tells scripts what went wrong (enum bd_exit).
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <inttypes.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "ctlproto.h"
#include "json.h"

static bool bc_json_out;

/* A failure branchctl finds itself (its command line, finding or reaching
 * the daemon, its reply): the message on stderr, after "branchctl: ", and,
 * with --json, also one object on stdout shaped like the daemon's error
 * replies, {"ok":false,"error":CODE,"message":MSG}, so that a script that
 * reads --json gets exactly one JSON object from every run.  code is the
 * reply code of status (bd_code_of_exit), or a more precise one that
 * bd_exit_of_code maps to the same status.  Returns status. */
static int bc_fail(int status, const char *code, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

static int bc_fail(int status, const char *code, const char *fmt, ...)
{
	char *msg = NULL;
	va_list ap;
	int n;

	va_start(ap, fmt);
	n = vasprintf(&msg, fmt, ap);
	va_end(ap);
	if (n < 0)
		msg = NULL;
	fprintf(stderr, "branchctl: %s\n", msg ? msg : fmt);
	if (bc_json_out) {
		struct json_buf b;

		json_buf_init(&b);
		json_buf_raw(&b, "{\"ok\":false,\"error\":");
		json_buf_str(&b, code ? code : bd_code_of_exit(status));
		json_buf_raw(&b, ",\"message\":");
		json_buf_str(&b, msg ? msg : fmt);
		json_buf_raw(&b, "}");
		if (!b.err)
			printf("%s\n", b.p);
		json_buf_release(&b);
	}
	free(msg);
	return status;
}

static void bc_usage(FILE *f)
{
	fprintf(f,
		"usage: branchctl [--mount DIR | --socket PATH] [--json] [--timeout SECONDS]\n"
		"                 COMMAND [ARGS]\n"
		"\n"
		"commands:\n"
		"  create NAME [--from PARENT] [--at WHEN]   new branch (O(1))\n"
		"         [--no-checkpoint]                  do not CHECKPOINT the parent's\n"
		"                                            running server first\n"
		"  create NAME --empty                       new empty branch, owned by the\n"
		"                                            caller (initdb, pg_basebackup)\n"
		"  list [--tree]                             all branches\n"
		"  info NAME                                 one branch\n"
		"  delete NAME                               drop a branch\n"
		"  rename OLD NEW                            rename a branch\n"
		"  reset NAME [--no-checkpoint]              back to its parent's current state\n"
		"  default [NAME]                            show or set the default parent\n"
		"  status                                    store and daemon figures\n"
		"  gc                                        reclaim space now\n"
		"  retention [SECONDS]                       show or set the retention window\n"
		"\n"
		"--timeout SECONDS (at most 86400) gives up after that long in all:\n"
		"connecting, retries and the reply (exit 1; the command may still take\n"
		"effect); by default it waits.  --json prints one JSON object, also\n"
		"for a failure.  -h, --help: this help; -V, --version: the version.\n"
		"Short forms: -m (--mount), -S (--socket), -j (--json), and after the\n"
		"command -f (--from), -a (--at), -t (--tree), -n (--no-checkpoint),\n"
		"-e (--empty).\n"
		"\n"
		"A branch of a running cluster's current state (create without --at,\n"
		"reset) is made right after branchd has the parent's server run a\n"
		"CHECKPOINT (its pg_checkpoint option, on by default), so that the\n"
		"branch's crash recovery has almost no WAL to replay.  --no-checkpoint\n"
		"skips that; a failed checkpoint never fails the branch.\n"
		"\n"
		"WHEN: 'YYYY-MM-DD HH:MM:SS' (local time), ISO 8601 with a zone\n"
		"('2026-11-24T10:00:00Z', '...+01:00', '...+0100', or '...+01' as\n"
		"Postgres prints now()), a relative time ('-15min', '-2h', '-30s',\n"
		"'-1d'), 'now', or an exact sequence number 'seq:N'.\n"
		"\n"
		"An option that takes a value is given once.  A NAME that begins\n"
		"with '-' goes after '--' (branchctl delete -- -x).\n"
		"\n"
		"The daemon is found from --mount, $BRANCHFS_MOUNT, or the current\n"
		"directory.  Exit status: 0 ok, 2 usage, 3 daemon not running, 4 no such\n"
		"branch, 5 name taken, 6 in use, 7 has children, 8 time not retained,\n"
		"9 permission denied, 10 invalid argument, 1 other errors.\n");
}

/* -------------------------------------------------------- discovery */

static bool bc_is_socket(const char *p)
{
	struct stat st;

	return stat(p, &st) == 0 && S_ISSOCK(st.st_mode);
}

/* False when nothing listens on the socket at p: the file of a daemon
 * that was killed (SIGKILL leaves it) refuses every connection.  The
 * connect does not wait (a full backlog says EAGAIN: someone listens). */
static bool bc_socket_live(const char *p)
{
	struct sockaddr_un a = { .sun_family = AF_UNIX };
	int fd, rc, err;

	if (strlen(p) >= sizeof(a.sun_path))
		return true; /* the real connect says what is wrong */
	memcpy(a.sun_path, p, strlen(p) + 1);
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	if (fd < 0)
		return true;
	rc = connect(fd, (struct sockaddr *)&a, sizeof(a));
	err = errno;
	close(fd);
	return rc == 0 || (err != ECONNREFUSED && err != ENOENT);
}

/* Socket of a daemon mounted at mnt (absolute), if one exists.  With one
 * candidate, that one (whose connect says whether a daemon runs); with
 * more (a killed root daemon's file beside another uid's live daemon),
 * the first one a daemon listens on, else the first. */
static bool bc_socket_for(const char *mnt, char *out, size_t n)
{
	char cand[3][sizeof(((struct sockaddr_un *)0)->sun_path) + 64];
	struct statx stx;
	uid_t uids[3] = { 0, getuid(), 0 };
	int i, j, nu = 2, nc = 0;

	/* The owner as the kernel has it cached: a stat that asks the
	 * daemon waits for good on one that is stopped, before --timeout's
	 * clock even runs. */
	if (statx(AT_FDCWD, mnt, AT_STATX_DONT_SYNC, STATX_UID, &stx) == 0 &&
	    (stx.stx_mask & STATX_UID))
		uids[nu++] = stx.stx_uid;
	for (i = 0; i < nu; i++) {
		char why[512];
		bool dup = false;

		if (bd_ctl_socket_path(mnt, uids[i], out, n) != 0 ||
		    !bc_is_socket(out))
			continue;
		for (j = 0; j < nc && !dup; j++)
			dup = strcmp(cand[j], out) == 0;
		if (dup)
			continue;
		/* A socket another user could have put there is not the
		 * daemon's. */
		if (bd_ctl_socket_dir_check(out, uids[i], why, sizeof(why))) {
			fprintf(stderr, "branchctl: skipping %s: %s\n", out,
				why);
			continue;
		}
		snprintf(cand[nc++], sizeof(cand[0]), "%s", out);
	}
	if (nc == 0)
		return false;
	for (i = 0; nc > 1 && i < nc; i++) {
		if (bc_socket_live(cand[i]))
			break;
	}
	snprintf(out, n, "%s", cand[nc > 1 && i < nc ? i : 0]);
	return true;
}

/* Socket of the daemon whose mount holds path (absolute, resolved): the
 * one mounted at path or at the nearest directory above it. */
static bool bc_socket_above(char *path, char *out, size_t n)
{
	for (;;) {
		char *slash;

		if (bc_socket_for(path, out, n))
			return true;
		slash = strrchr(path, '/');
		if (!slash || slash == path)
			return strcmp(path, "/") != 0 &&
			       bc_socket_for("/", out, n);
		*slash = 0;
	}
}

/* The mount point in /proc/self/mountinfo that holds p (made absolute
 * from the current directory, without resolving links: the dead mount
 * cannot be resolved), or "MOUNTPOINT" when none is found, into out. */
static void bc_dead_mount_of(const char *p, char *out, size_t n)
{
	char abs[2 * PATH_MAX + 2], cwd[PATH_MAX], line[4 * PATH_MAX];
	char mp[PATH_MAX];
	const char *pwd = getenv("PWD");
	size_t best = 0;
	FILE *f;

	snprintf(out, n, "MOUNTPOINT");
	if (p[0] == '/')
		snprintf(abs, sizeof(abs), "%s", p);
	else if (getcwd(cwd, sizeof(cwd)))
		snprintf(abs, sizeof(abs), "%s/%s", cwd, p);
	else if (pwd && pwd[0] == '/')
		snprintf(abs, sizeof(abs), "%s/%s", pwd, p);
	else
		return;
	f = fopen("/proc/self/mountinfo", "re");
	if (!f)
		return;
	/* "ID PARENT MAJ:MIN ROOT MOUNTPOINT ...": the fifth field, with
	 * space, tab, newline and backslash as \ooo. */
	while (fgets(line, sizeof(line), f)) {
		char *t = line, *e;
		size_t len = 0;
		int i;

		for (i = 0; i < 4 && t; i++) {
			t = strchr(t, ' ');
			if (t)
				t++;
		}
		if (!t)
			continue;
		e = strchr(t, ' ');
		if (e)
			*e = 0;
		while (*t && len + 1 < sizeof(mp)) {
			if (t[0] == '\\' && t[1] >= '0' && t[1] <= '3' &&
			    t[2] >= '0' && t[2] <= '7' && t[3] >= '0' &&
			    t[3] <= '7') {
				mp[len++] =
					(char)((t[1] - '0') * 64 +
					       (t[2] - '0') * 8 + (t[3] - '0'));
				t += 4;
			} else {
				mp[len++] = *t++;
			}
		}
		mp[len] = 0;
		if (len > best && strncmp(abs, mp, len) == 0 &&
		    (abs[len] == 0 || abs[len] == '/') && strcmp(mp, "/")) {
			best = len;
			snprintf(out, n, "%s", mp);
		}
	}
	fclose(f);
}

/* The resolved path the daemon was looked for from (--mount,
 * BRANCHFS_MOUNT or the current directory), "" with --socket. */
static char bc_where[PATH_MAX];

/* Whether p is in a FUSE mount whose daemon died, asked only once no
 * daemon answered for it.  The mount point itself resolves without a
 * request to the daemon (its dentry is the mount's root), and the kernel
 * answers a stat from its attribute cache for a while after the daemon is
 * gone: a getattr that skips the cache fails with ENOTCONN.  Asked in a
 * child and given up after 1 s (not dead, then): a daemon that is alive
 * but stopped would hold the call for good, and --timeout promises to
 * give up. */
static bool bc_dead_mount(const char *p)
{
	struct statx stx;
	pid_t pid;
	int st, i;

	pid = fork();
	if (pid < 0)
		return false;
	if (pid == 0) {
		bool dead = statx(AT_FDCWD, p, AT_STATX_FORCE_SYNC,
				  STATX_BASIC_STATS, &stx) != 0 &&
			    errno == ENOTCONN;

		_exit(dead ? 1 : 0);
	}
	for (i = 0; i < 100; i++) {
		if (waitpid(pid, &st, WNOHANG) == pid)
			return WIFEXITED(st) && WEXITSTATUS(st) == 1;
		usleep(10 * 1000);
	}
	kill(pid, SIGKILL);
	waitpid(pid, &st, 0);
	return false;
}

/* Exit status 3 for bc_where in a dead mount, saying what removes it. */
static int bc_fail_dead(void)
{
	char dead[PATH_MAX];

	bc_dead_mount_of(bc_where, dead, sizeof(dead));
	return bc_fail(
		BD_EXIT_NO_DAEMON, NULL,
		"no branchd answers for '%s': the branchd that served its mount has died; 'fusermount3 -u %s' removes the dead mount, then start branchd again on its store",
		bc_where, dead);
}

/* The daemon's socket into out: 0, or the exit status after saying why
 * (BD_EXIT_NO_DAEMON, or BD_EXIT_PERMISSION when the caller may not look
 * at the path). */
static int bc_find_socket(const char *sock, const char *mount, char *out,
			  size_t n)
{
	char path[PATH_MAX];

	if (sock) {
		snprintf(out, n, "%s", sock);
		return 0;
	}
	if (!mount)
		mount = getenv("BRANCHFS_MOUNT");
	if (mount) {
		/* The branch root, or any path in it (a branch, say). */
		if (!realpath(mount, path)) {
			int err = errno;

			/* A branchd that died (SIGKILL, OOM) leaves its mount
			 * behind, and every path in it fails so. */
			if (err == ENOTCONN) {
				bc_dead_mount_of(mount, path, sizeof(path));
				return bc_fail(
					BD_EXIT_NO_DAEMON, NULL,
					"cannot resolve mount '%s': %s: the branchd that served it has died; 'fusermount3 -u %s' removes the dead mount, then start branchd again on its store",
					mount, strerror(err), path);
			}
			/* Not "no daemon" when the caller may not look. */
			return bc_fail(err == EACCES ? BD_EXIT_PERMISSION :
						       BD_EXIT_NO_DAEMON,
				       NULL, "cannot resolve mount '%s': %s",
				       mount, strerror(err));
		}
		snprintf(bc_where, sizeof(bc_where), "%s", path);
		if (bc_socket_above(path, out, n))
			return 0;
		if (bc_dead_mount(bc_where))
			return bc_fail_dead();
		return bc_fail(
			BD_EXIT_NO_DAEMON, NULL,
			"no branchd serves '%s' (is the daemon running?)",
			mount);
	}
	if (!getcwd(path, sizeof(path))) {
		int err = errno;

		if (err == ENOTCONN) {
			bc_dead_mount_of(".", path, sizeof(path));
			return bc_fail(
				BD_EXIT_NO_DAEMON, NULL,
				"cannot tell the current directory (%s): it is in the mount of a branchd that has died; 'fusermount3 -u %s' removes the dead mount, then start branchd again on its store",
				strerror(err), path);
		}
		return bc_fail(
			err == EACCES ? BD_EXIT_PERMISSION : BD_EXIT_NO_DAEMON,
			NULL,
			"cannot tell the current directory (%s); use --mount DIR or set BRANCHFS_MOUNT",
			strerror(err));
	}
	snprintf(bc_where, sizeof(bc_where), "%s", path);
	if (bc_socket_above(path, out, n))
		return 0;
	if (bc_dead_mount(bc_where))
		return bc_fail_dead();
	return bc_fail(
		BD_EXIT_NO_DAEMON, NULL,
		"no branchd found for the current directory; use --mount DIR or set BRANCHFS_MOUNT");
}

/* ---------------------------------------------------------- request */

/* --timeout: the longest wait for a reply, in seconds (0: no limit), and
 * when it ends (bc_now_s; 0: never): the whole wait, connecting and the
 * too-many retries included, not each attempt. */
static double bc_timeout_s;
static double bc_deadline;

static double bc_now_s(void);

/* connect(2) to a unix socket, given up at bc_deadline: a stopped or
 * wedged daemon's full listen queue would block it for good.  On a unix
 * socket a non-blocking connect either completes at once or fails with
 * EAGAIN while the queue is full.  0, -EAGAIN when the deadline passed
 * first (nothing was sent), or another negative errno. */
static int bc_connect(int fd, const struct sockaddr_un *sa)
{
	int fl, rc = 0;

	if (bc_deadline <= 0)
		return connect(fd, (const struct sockaddr *)sa, sizeof(*sa)) ?
			       -errno :
			       0;
	fl = fcntl(fd, F_GETFL);
	if (fl < 0 || fcntl(fd, F_SETFL, fl | O_NONBLOCK) < 0)
		return -errno;
	while (connect(fd, (const struct sockaddr *)sa, sizeof(*sa)) != 0) {
		struct timespec ts = { .tv_nsec = 10 * 1000000L };

		if (errno != EAGAIN && errno != EINTR) {
			rc = -errno;
			break;
		}
		if (bc_now_s() >= bc_deadline) {
			rc = -EAGAIN;
			break;
		}
		nanosleep(&ts, NULL);
	}
	if (rc == 0 && fcntl(fd, F_SETFL, fl) < 0)
		rc = -errno;
	return rc;
}

static int bc_call(const char *sockpath, const char *req, struct json **reply,
		   char **raw)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	char *buf = NULL;
	size_t len = 0, cap = 0;
	int fd, rc, send_err = 0;

	if (strlen(sockpath) >= sizeof(sa.sun_path))
		return -ENAMETOOLONG;
	strcpy(sa.sun_path, sockpath);
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -errno;
	rc = bc_connect(fd, &sa);
	if (rc) {
		close(fd);
		return rc;
	}
	/* A daemon that refuses the connection (too many open) writes one
	 * error line and closes: read it even if our request cannot go. */
	if (send(fd, req, strlen(req), MSG_NOSIGNAL) < 0 ||
	    send(fd, "\n", 1, MSG_NOSIGNAL) < 0)
		send_err = -errno;
	for (;;) {
		ssize_t r;

		if (len + 4096 > cap) {
			char *nb;

			cap = cap ? cap * 2 : 65536;
			nb = realloc(buf, cap);
			if (!nb) {
				rc = -ENOMEM;
				goto out;
			}
			buf = nb;
		}
		if (bc_deadline > 0) {
			struct pollfd pfd = { .fd = fd, .events = POLLIN };
			double left = bc_deadline - bc_now_s();
			int n = left > 0 ?
					poll(&pfd, 1, (int)(left * 1000) + 1) :
					0;

			if (n < 0 && errno == EINTR)
				continue;
			if (n == 0) {
				rc = -ETIMEDOUT;
				goto out;
			}
		}
		r = recv(fd, buf + len, cap - len - 1, 0);
		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0)
			break;
		len += (size_t)r;
		if (memchr(buf + len - r, '\n', (size_t)r))
			break;
	}
	if (!buf || len == 0 || buf[len - 1] != '\n') {
		/* Part of a reply, or the daemon closed the connection under
		 * our request: -EPROTO (stopping, most likely). */
		rc = -EPROTO;
		if (len == 0 && send_err && send_err != -EPIPE &&
		    send_err != -ECONNRESET)
			rc = send_err;
		goto out;
	}
	buf[--len] = 0;
	rc = json_parse(buf, len, reply);
	if (rc == 0) {
		*raw = buf;
		buf = NULL;
	}
out:
	free(buf);
	close(fd);
	return rc;
}

static double bc_now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* bc_call, again while the daemon refuses the connection as one too many
 * (BD_CTL_TOO_MANY: the request was not read, so sending it again is
 * safe), for up to BC_TOO_MANY_WAIT_S (or until the --timeout deadline,
 * if sooner): parallel CI jobs of one uid wait
 * their turn instead of failing. */
#define BC_TOO_MANY_WAIT_S 30.0
static int bc_call_retry(const char *sockpath, const char *req,
			 struct json **reply, char **raw)
{
	double end = bc_now_s() + BC_TOO_MANY_WAIT_S;
	long pause_ms = 20;

	if (bc_deadline > 0 && bc_deadline < end)
		end = bc_deadline;
	for (;;) {
		const char *code;
		struct timespec ts;
		int rc = bc_call(sockpath, req, reply, raw);

		if (rc)
			return rc;
		code = json_get_str(*reply, "error");
		if (!code || strcmp(code, BD_CTL_TOO_MANY) != 0 ||
		    bc_now_s() + (double)pause_ms / 1e3 > end)
			return 0;
		json_free(*reply);
		free(*raw);
		*reply = NULL;
		*raw = NULL;
		ts.tv_sec = pause_ms / 1000;
		ts.tv_nsec = (pause_ms % 1000) * 1000000L;
		nanosleep(&ts, NULL);
		if (pause_ms < 500)
			pause_ms *= 2;
	}
}

/* ------------------------------------------------------------- time */

/* The zone after an ISO 8601 time: Z (or z, as RFC 3339 allows), or
 * +hh:mm, +hhmm or +hh (and -), the last the form Postgres prints a
 * timestamptz in ("2026-11-24 10:00:00.123456+00", "...-08"): its offset
 * east of UTC in seconds into *off.  0 or -EINVAL. */
static int bc_parse_zone(const char *z, int *off)
{
	size_t n = strlen(z);
	int hh, mm = 0;

	if ((z[0] == 'Z' || z[0] == 'z') && n == 1) {
		*off = 0;
		return 0;
	}
	if ((z[0] != '+' && z[0] != '-') || strspn(z + 1, "0123456789") < 2)
		return -EINVAL;
	hh = (z[1] - '0') * 10 + (z[2] - '0');
	if (n == 6 && z[3] == ':' && strspn(z + 4, "0123456789") == 2)
		mm = (z[4] - '0') * 10 + (z[5] - '0');
	else if (n == 5 && strspn(z + 1, "0123456789") == 4)
		mm = (z[3] - '0') * 10 + (z[4] - '0');
	else if (n != 3)
		return -EINVAL;
	if (hh > 23 || mm > 59)
		return -EINVAL;
	*off = (z[0] == '+' ? 1 : -1) * (hh * 3600 + mm * 60);
	return 0;
}

/* mktime(3) of a local wall-clock time, refusing one that the zone's
 * daylight-saving change skips or repeats: mktime would quietly take it
 * an hour off, or pick one of the two, and a branch of the wrong moment
 * is made without a word.  Each reading (standard time, daylight time)
 * counts if mktime keeps the clock fields as given.  0, or -EINVAL with
 * *why set. */
static int bc_local_time(const struct tm *in, time_t *out, const char **why)
{
	time_t t[2];
	int i, n = 0;

	for (i = 0; i < 2; i++) {
		struct tm x = *in;
		time_t v;

		x.tm_isdst = i;
		v = mktime(&x);
		if (v == (time_t)-1 || x.tm_isdst != i ||
		    x.tm_hour != in->tm_hour || x.tm_min != in->tm_min ||
		    x.tm_mday != in->tm_mday)
			continue;
		if (n == 0 || t[0] != v)
			t[n++] = v;
	}
	if (n == 0) {
		*why = "that local time does not exist (a daylight-saving "
		       "change skips it); give a zone, such as +01:00 or Z";
		return -EINVAL;
	}
	if (n == 2) {
		*why = "that local time happens twice (a daylight-saving "
		       "change repeats it); give a zone, such as +01:00 or Z";
		return -EINVAL;
	}
	*out = t[0];
	return 0;
}

static int bc_parse_when(const char *s, struct json_buf *req, const char **why)
{
	struct tm tm;
	int64_t ns;
	double frac = 0;
	char *end;

	if (strncmp(s, "seq:", 4) == 0) {
		unsigned long long v;

		/* Digits only: strtoull would take "-1" as 2^64 - 1. */
		if (s[4] < '0' || s[4] > '9')
			return -EINVAL;
		errno = 0;
		v = strtoull(s + 4, &end, 10);
		if (errno || *end || v > INT64_MAX)
			return -EINVAL;
		json_buf_printf(req, ",\"at_seq\":%llu", v);
		return 0;
	}
	if (strcmp(s, "now") == 0) {
		struct timespec ts;

		clock_gettime(CLOCK_REALTIME, &ts);
		json_buf_printf(req, ",\"at_ns\":%" PRId64,
				(int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec);
		return 0;
	}
	if (s[0] == '-') {
		double v, mult;
		struct timespec ts;

		/* Digits and at most one point: no nan, inf or exponents. */
		if (strspn(s + 1, "0123456789.") == 0)
			return -EINVAL;
		v = strtod(s + 1, &end);
		if (end == s + 1 || v < 0 || v > 1e10 ||
		    strspn(s + 1, "0123456789.") != (size_t)(end - s - 1))
			return -EINVAL;
		if (!strcmp(end, "s") || !strcmp(end, "sec") ||
		    !strcmp(end, "secs"))
			mult = 1;
		else if (!strcmp(end, "m") || !strcmp(end, "min") ||
			 !strcmp(end, "mins"))
			mult = 60;
		else if (!strcmp(end, "h") || !strcmp(end, "hour") ||
			 !strcmp(end, "hours"))
			mult = 3600;
		else if (!strcmp(end, "d") || !strcmp(end, "day") ||
			 !strcmp(end, "days"))
			mult = 86400;
		else
			return -EINVAL;
		/* At most 100 years back: the nanoseconds stay in range. */
		if (v * mult > 100.0 * 366 * 86400)
			return -EINVAL;
		clock_gettime(CLOCK_REALTIME, &ts);
		ns = (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec -
		     (int64_t)(v * mult * 1e9);
		json_buf_printf(req, ",\"at_ns\":%" PRId64, ns);
		return 0;
	}
	memset(&tm, 0, sizeof(tm));
	end = strptime(s, "%Y-%m-%d", &tm);
	if (!end || (*end != ' ' && *end != 'T'))
		return -EINVAL;
	end = strptime(end + 1, "%H:%M:%S", &tm);
	if (!end)
		return -EINVAL;
	/* The daemon takes ns since 1970 in 64 bits (1677-09-21 to
	 * 2262-04-11): a year outside 1678..2261 (whatever its zone) would
	 * wrap, and 584 years before a past moment wrapped to that moment
	 * and made a branch of it. */
	if (tm.tm_year < 1678 - 1900 || tm.tm_year > 2261 - 1900) {
		*why = "the year must be 1678 to 2261";
		return -EINVAL;
	}
	{
		/* strptime takes any day 1-31 in any month: no 2026-02-30. */
		struct tm chk = tm;

		if (timegm(&chk) == (time_t)-1 || chk.tm_mday != tm.tm_mday ||
		    chk.tm_mon != tm.tm_mon)
			return -EINVAL;
	}
	if (*end == '.') {
		size_t nd = strspn(end + 1, "0123456789");

		if (nd == 0 || nd > 9)
			return -EINVAL;
		frac = strtod(end, NULL);
		end += 1 + nd;
	}
	if (*end == 0) {
		time_t t;
		int rc = bc_local_time(&tm, &t, why);

		if (rc)
			return rc;
		ns = (int64_t)t * 1000000000;
	} else {
		int off;
		time_t t;

		if (bc_parse_zone(end, &off))
			return -EINVAL;
		t = timegm(&tm);
		ns = ((int64_t)t - off) * 1000000000;
	}
	ns += (int64_t)(frac * 1e9);
	json_buf_printf(req, ",\"at_ns\":%" PRId64, ns);
	return 0;
}

/* ----------------------------------------------------------- output */

static void bc_human_bytes(uint64_t b, char *out, size_t n)
{
	const char *u[] = { "B", "KiB", "MiB", "GiB", "TiB" };
	double v = (double)b;
	int i = 0;

	while (v >= 1024 && i < 4) {
		v /= 1024;
		i++;
	}
	if (i == 0)
		snprintf(out, n, "%" PRIu64 " B", b);
	else
		snprintf(out, n, "%.1f %s", v, u[i]);
}

/* A string from the daemon, fit for a terminal: control characters are
 * shown as \xNN, and C1 ones (U+0080 to U+009F, 0xc2 0x80 to 0xc2 0x9f
 * in UTF-8; U+009B is a CSI to some terminals) as \uNNNN.  Returns one
 * of a few rotating static buffers. */
static const char *bc_s(const struct json *o, const char *k)
{
	static char bufs[4][1024];
	static int next;
	const unsigned char *v = (const unsigned char *)json_get_str(o, k);
	char *out = bufs[next++ % 4];
	size_t n = 0;

	if (!v)
		return "-";
	for (; *v && n + 7 < sizeof(bufs[0]); v++) {
		if (*v < 0x20 || *v == 0x7f) {
			n += (size_t)snprintf(out + n, 5, "\\x%02x", *v);
		} else if (v[0] == 0xc2 && v[1] >= 0x80 && v[1] <= 0x9f) {
			n += (size_t)snprintf(out + n, 7, "\\u%04x", v[1]);
			v++;
		} else {
			out[n++] = (char)*v;
		}
	}
	out[n] = 0;
	return out;
}

/* A branch name from the daemon, as bc_s shows it, for the columns of
 * list and --tree and the lines of info: as it is when it is one plain
 * word, else in single quotes as a shell would take it ('sp ace',
 * 'it'\''s', '', and '-', which stands for "no parent" there), so that
 * a name with spaces cannot pass for two columns and a blank one is
 * seen.  NULL (no parent) is "-".  Returns one of a few rotating static
 * buffers. */
static const char *bc_q(const struct json *o, const char *k)
{
	static const char plain[] = "abcdefghijklmnopqrstuvwxyz"
				    "ABCDEFGHIJKLMNOPQRSTUVWXYZ"
				    "0123456789._+@%:=,^-";
	static char bufs[4][4 * 1024 + 8];
	static int next;
	const char *s, *p;
	char *out;
	bool quote;
	size_t n = 0;

	if (!json_get_str(o, k))
		return "-";
	s = bc_s(o, k);
	quote = !*s || strcmp(s, "-") == 0;
	for (p = s; *p && !quote; p++)
		quote = (unsigned char)*p < 0x80 && !strchr(plain, *p);
	if (!quote)
		return s;
	out = bufs[next++ % 4];
	out[n++] = '\'';
	for (p = s; *p; p++) {
		if (*p == '\'') {
			memcpy(out + n, "'\\''", 4);
			n += 4;
		} else {
			out[n++] = *p;
		}
	}
	out[n++] = '\'';
	out[n] = 0;
	return out;
}

static int64_t bc_i(const struct json *o, const char *k)
{
	int64_t v = 0;

	json_get_int(o, k, &v);
	return v;
}

static void bc_print_info(const struct json *b)
{
	char lb[32], wb[32];
	bool in_use = false;

	json_get_bool(b, "in_use", &in_use);
	bc_human_bytes((uint64_t)bc_i(b, "logical_bytes"), lb, sizeof(lb));
	bc_human_bytes((uint64_t)bc_i(b, "written_bytes"), wb, sizeof(wb));
	printf("name:          %s\n", bc_q(b, "name"));
	printf("parent:        %s\n", bc_q(b, "parent"));
	printf("fork point:    seq %" PRId64 ", %s\n", bc_i(b, "fork_seq"),
	       bc_s(b, "fork_time"));
	printf("created:       %s\n", bc_s(b, "created"));
	printf("owner uid:     %" PRId64 "\n", bc_i(b, "owner_uid"));
	printf("children:      %" PRId64 "\n", bc_i(b, "children"));
	printf("logical size:  %s\n", lb);
	printf("written since fork: %s\n", wb);
	printf("in use:        %s%s%s\n", in_use ? "yes" : "no",
	       in_use ? " - " : "", in_use ? bc_s(b, "in_use_reason") : "");
}

/* The tree of a listing: each branch's children in list order, as
 * indices into the array (BC_NONE ends a chain).  Built once, in
 * O(n log n): printing used to look through the whole list for the
 * children of every branch, O(n^2) (0.2 s for 2000 branches, and a
 * minute for 30,000). */
#define BC_NONE SIZE_MAX
struct bc_tree {
	const struct json *arr;
	size_t *first, *last, *next;	/* first/last child, next sibling */
	size_t roots_first, roots_last; /* branches with no parent */
};

static const struct json *bc_tree_arr; /* for bc_name_cmp (qsort) */

static const char *bc_name_of(const struct json *arr, size_t i)
{
	const char *n = json_get_str(arr->items[i], "name");

	return n ? n : "";
}

static int bc_name_cmp(const void *a, const void *b)
{
	size_t x = *(const size_t *)a, y = *(const size_t *)b;
	int c = strcmp(bc_name_of(bc_tree_arr, x), bc_name_of(bc_tree_arr, y));

	return c ? c : (x > y) - (x < y);
}

/* Index of the first branch named name in byname (sorted), or BC_NONE. */
static size_t bc_find(const struct json *arr, const size_t *byname, size_t n,
		      const char *name)
{
	size_t lo = 0, hi = n;

	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;

		if (strcmp(bc_name_of(arr, byname[mid]), name) < 0)
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo < n && strcmp(bc_name_of(arr, byname[lo]), name) == 0 ?
		       byname[lo] :
		       BC_NONE;
}

/* -1 without memory.  A branch whose parent is not in the list is left
 * out, as a branch under no root. */
static int bc_tree_build(struct bc_tree *t, const struct json *arr)
{
	size_t n = arr->n, i, *byname;

	memset(t, 0, sizeof(*t));
	t->arr = arr;
	t->roots_first = t->roots_last = BC_NONE;
	t->first = malloc((n + 1) * sizeof(size_t));
	t->last = malloc((n + 1) * sizeof(size_t));
	t->next = malloc((n + 1) * sizeof(size_t));
	byname = malloc((n + 1) * sizeof(size_t));
	if (!t->first || !t->last || !t->next || !byname) {
		free(byname);
		return -1;
	}
	for (i = 0; i < n; i++) {
		t->first[i] = t->last[i] = t->next[i] = BC_NONE;
		byname[i] = i;
	}
	bc_tree_arr = arr;
	qsort(byname, n, sizeof(size_t), bc_name_cmp);
	for (i = 0; i < n; i++) {
		const char *p = json_get_str(arr->items[i], "parent");
		size_t j = p ? bc_find(arr, byname, n, p) : n, *first, *last;

		if (j == BC_NONE)
			continue;
		first = j == n ? &t->roots_first : &t->first[j];
		last = j == n ? &t->roots_last : &t->last[j];
		if (*first == BC_NONE)
			*first = i;
		else
			t->next[*last] = i;
		*last = i;
	}
	free(byname);
	return 0;
}

static void bc_tree_free(struct bc_tree *t)
{
	free(t->first);
	free(t->last);
	free(t->next);
}

/* The branches of the chain from c, each under prefix, with tree lines
 * (top: none): "├─ " before all but the last child and "└─ " before the
 * last, "│  " below the ones with later siblings.  depth: how many
 * levels are above; a tree of n branches is at most n deep. */
static void bc_print_tree(const struct bc_tree *t, size_t c, bool top,
			  const char *prefix, size_t depth)
{
	if (depth > t->arr->n)
		return;
	for (; c != BC_NONE; c = t->next[c]) {
		const struct json *b = t->arr->items[c];
		bool in_use = false, last = t->next[c] == BC_NONE;
		size_t plen = strlen(prefix);
		char *sub;

		json_get_bool(b, "in_use", &in_use);
		printf("%s%s%s  (seq %" PRId64 ", owner %" PRId64 "%s)\n",
		       prefix, top ? "" : (last ? "└─ " : "├─ "),
		       bc_q(b, "name"), bc_i(b, "fork_seq"),
		       bc_i(b, "owner_uid"), in_use ? ", in use" : "");
		sub = malloc(plen + 8);
		if (!sub)
			continue;
		snprintf(sub, plen + 8, "%s%s", prefix,
			 top ? "" : (last ? "   " : "│  "));
		bc_print_tree(t, t->first[c], false, sub, depth + 1);
		free(sub);
	}
}

/* Characters (UTF-8 code points) of s: its width in a terminal for all
 * but wide scripts. */
static size_t bc_width(const char *s)
{
	size_t n = 0;

	for (; *s; s++)
		n += ((unsigned char)*s & 0xc0) != 0x80;
	return n;
}

/* s, then spaces up to width characters. */
static void bc_put_padded(const char *s, size_t width)
{
	size_t w = bc_width(s);

	fputs(s, stdout);
	for (; w < width; w++)
		putchar(' ');
}

static void bc_print_list(const struct json *reply, bool tree)
{
	const struct json *arr = json_get(reply, "branches");
	size_t i, wn = 24, wp = 16;

	if (!arr || arr->type != JSON_ARR)
		return;
	if (tree) {
		struct bc_tree t;

		if (bc_tree_build(&t, arr) == 0)
			bc_print_tree(&t, t.roots_first, true, "", 0);
		else
			fprintf(stderr, "branchctl: out of memory\n");
		bc_tree_free(&t);
		return;
	}
	/* Columns as wide as the longest name (names are UTF-8). */
	for (i = 0; i < arr->n; i++) {
		size_t w = bc_width(bc_q(arr->items[i], "name"));

		if (w > wn)
			wn = w;
		w = bc_width(bc_q(arr->items[i], "parent"));
		if (w > wp)
			wp = w;
	}
	bc_put_padded("NAME", wn);
	putchar(' ');
	bc_put_padded("PARENT", wp);
	printf(" %10s %-24s %-24s %6s %10s %10s %s\n", "FORK_SEQ", "FORK_TIME",
	       "CREATED", "OWNER", "LOGICAL", "WRITTEN", "IN_USE");
	for (i = 0; i < arr->n; i++) {
		const struct json *b = arr->items[i];
		char lb[32], wb[32];
		bool in_use = false;

		json_get_bool(b, "in_use", &in_use);
		bc_human_bytes((uint64_t)bc_i(b, "logical_bytes"), lb,
			       sizeof(lb));
		bc_human_bytes((uint64_t)bc_i(b, "written_bytes"), wb,
			       sizeof(wb));
		bc_put_padded(bc_q(b, "name"), wn);
		putchar(' ');
		bc_put_padded(bc_q(b, "parent"), wp);
		printf(" %10" PRId64 " %-24s %-24s %6" PRId64 " %10s %10s %s\n",
		       bc_i(b, "fork_seq"), bc_s(b, "fork_time"),
		       bc_s(b, "created"), bc_i(b, "owner_uid"), lb, wb,
		       in_use ? "yes" : "no");
	}
}

/* What the daemon's pg_checkpoint policy did before a create or reset
 * (nothing is printed when it was off or no server ran). */
static void bc_print_checkpoint(const struct json *reply, const char *parent)
{
	const struct json *ck = json_get(reply, "checkpoint");
	const char *o = json_get_str(ck, "outcome");
	char on[320] = "";

	if (!o)
		return;
	if (parent)
		snprintf(on, sizeof(on), " on '%s'", parent);
	if (!strcmp(o, "done"))
		printf("checkpointed the server%s (pid %" PRId64
		       ") first, in %" PRId64 " ms\n",
		       on, bc_i(ck, "pid"), bc_i(ck, "ms"));
	else if (!strcmp(o, "failed") || !strcmp(o, "timeout"))
		printf("no checkpoint of the server%s (pid %" PRId64
		       "): %s; the branch replays all WAL since its last "
		       "checkpoint when it starts\n",
		       on, bc_i(ck, "pid"), bc_s(ck, "reason"));
}

/* ------------------------------------------------------------- main */

static int bc_parse_timeout(const char *s)
{
	char *end;
	double v;

	errno = 0;
	v = strtod(s, &end);
	if (errno || end == s || *end || !(v > 0) || v > 86400)
		return bc_fail(
			BD_EXIT_USAGE, NULL,
			"bad --timeout '%s' (seconds, more than 0, at most 86400)",
			s);
	bc_timeout_s = v;
	return 0;
}

/* One line for a command line getopt refused (opterr is off): the
 * option's text and what is wrong with it.  After the command, an
 * unknown option may be a branch name that begins with '-' ("create
 * -x"): the line says how to give one. */
static int bc_bad_option(int c, char **argv, bool after_cmd)
{
	const char *arg = optind > 0 ? argv[optind - 1] : "?";
	const char *hint = after_cmd ? "; a name that begins with '-' goes "
				       "after '--'" :
				       "";

	if (c == ':')
		return bc_fail(
			BD_EXIT_USAGE, NULL,
			"option '%s' needs a value (see branchctl --help)",
			arg);
	if (optopt && optopt < 0x80 && strncmp(arg, "--", 2) != 0)
		return bc_fail(BD_EXIT_USAGE, NULL,
			       "unknown option '-%c' (see branchctl --help%s)",
			       optopt, hint);
	return bc_fail(BD_EXIT_USAGE, NULL,
		       "unknown option '%s' (see branchctl --help%s)", arg,
		       hint);
}

/* An option that takes a value, given once: a second one would silently
 * win (a script that appends "--from x" to a command line that already
 * has one would branch the wrong parent).  0 or BD_EXIT_USAGE. */
static int bc_set_once(const char **slot, const char *name, const char *val)
{
	if (*slot)
		return bc_fail(BD_EXIT_USAGE, NULL,
			       "--%s given twice ('%s' and '%s'); give it once",
			       name, *slot, val);
	*slot = val;
	return 0;
}

/* The options before the command, and the command's own (which may come
 * before or after its names). */
#define BC_GLOBAL_OPTS "+:m:S:jhV"
#define BC_CMD_OPTS ":jhVf:a:tne"

/* Whether the command line asks for --json, wherever it is: the parse
 * proper stops at the first thing wrong, which may come before it, and a
 * script given --json must get its failure as JSON too.  Walks a copy of
 * the line the way main does and resets getopt.  A copy, because getopt
 * permutes what it walks, and not always into a line that main's walk
 * reads the same way: after an option missing its value at the end
 * ("create b1 zz --from") the names are moved behind it, and main then
 * took "b1" for --from's value and made zz from b1. */
static bool bc_scan_json(int argc, char **orig, const struct option *opts)
{
	char **copy = malloc(((size_t)argc + 1) * sizeof(*copy)), **argv = copy;
	bool json = false;
	int c;

	if (!copy)
		return false;
	memcpy(copy, orig, ((size_t)argc + 1) * sizeof(*copy));
	optind = 0;
	while ((c = getopt_long(argc, argv, BC_GLOBAL_OPTS, opts, NULL)) != -1)
		json |= c == 'j';
	if (optind < argc) {
		argc -= optind;
		argv += optind;
		optind = 0;
		while ((c = getopt_long(argc, argv, BC_CMD_OPTS, opts, NULL)) !=
		       -1)
			json |= c == 'j';
	}
	optind = 0;
	free(copy);
	return json;
}

/* --version: text, or with --json one object. */
static int bc_version(void)
{
	if (bc_json_out)
		printf("{\"ok\":true,\"version\":\"%s\"}\n", BRANCHFS_VERSION);
	else
		printf("branchctl %s\n", BRANCHFS_VERSION);
	return BD_EXIT_OK;
}

/* Standard output, written in full: a full disk or a closed pipe under
 * "branchctl --json list > file" must not pass for success with the
 * output lost.  status, or BD_EXIT_ERROR when it was 0 and the output did
 * not get out (the command itself was carried out). */
static int bc_flush_out(int status)
{
	int err = 0;

	if (fflush(stdout) != 0 || ferror(stdout))
		err = errno ? errno : EIO;
	if (!err)
		return status;
	fprintf(stderr, "branchctl: cannot write to standard output: %s%s\n",
		strerror(err),
		status == BD_EXIT_OK ? " (the command itself was carried out)" :
				       "");
	return status == BD_EXIT_OK ? BD_EXIT_ERROR : status;
}

int main(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "mount", required_argument, NULL, 'm' },
		{ "socket", required_argument, NULL, 'S' },
		{ "json", no_argument, NULL, 'j' },
		{ "help", no_argument, NULL, 'h' },
		{ "version", no_argument, NULL, 'V' },
		{ "from", required_argument, NULL, 'f' },
		{ "at", required_argument, NULL, 'a' },
		{ "tree", no_argument, NULL, 't' },
		{ "no-checkpoint", no_argument, NULL, 'n' },
		{ "empty", no_argument, NULL, 'e' },
		{ "timeout", required_argument, NULL, 'T' },
		{ NULL, 0, NULL, 0 },
	};
	const char *mount = NULL, *sock = NULL, *from = NULL, *at = NULL;
	const char *timeout = NULL, *why = NULL;
	char sockpath[PATH_MAX], *raw = NULL;
	struct json *reply = NULL;
	struct json_buf req;
	bool tree = false, ok = false, nockpt = false, empty = false;
	const char *cmd;
	int c, li, rc, nargs, status = BD_EXIT_OK;
	char **args;

	opterr = 0;
	bc_json_out = bc_scan_json(argc, argv, opts);
	while ((c = getopt_long(argc, argv, BC_GLOBAL_OPTS, opts, &li)) != -1) {
		switch (c) {
		case 'T':
			if ((rc = bc_set_once(&timeout, "timeout", optarg)) ||
			    (rc = bc_parse_timeout(optarg)))
				return rc;
			break;
		case 'm':
			if ((rc = bc_set_once(&mount, "mount", optarg)))
				return rc;
			break;
		case 'S':
			if ((rc = bc_set_once(&sock, "socket", optarg)))
				return rc;
			break;
		case 'j':
			break;
		case 'h':
			bc_usage(stdout);
			return bc_flush_out(BD_EXIT_OK);
		case 'V':
			return bc_flush_out(bc_version());
		case 'f':
		case 'a':
		case 't':
		case 'n':
		case 'e':
			/* Only long options reach here: li is theirs. */
			return bc_fail(
				BD_EXIT_USAGE, NULL,
				"option '--%s' goes after the command (see branchctl --help)",
				opts[li].name);
		default:
			return bc_bad_option(c, argv, false);
		}
	}
	if (optind >= argc)
		return bc_fail(BD_EXIT_USAGE, NULL,
			       "no command given (see branchctl --help)");
	cmd = argv[optind];
	/* Command options may follow the command, before or after names:
	 * rescan from the command on (optind = 0 reinitialises getopt). */
	argc -= optind;
	argv += optind;
	optind = 0;
	while ((c = getopt_long(argc, argv, BC_CMD_OPTS, opts, NULL)) != -1) {
		switch (c) {
		case 'j':
			break;
		case 'h':
			bc_usage(stdout);
			return bc_flush_out(BD_EXIT_OK);
		case 'f':
			if ((rc = bc_set_once(&from, "from", optarg)))
				return rc;
			break;
		case 'a':
			if ((rc = bc_set_once(&at, "at", optarg)))
				return rc;
			break;
		case 't':
			tree = true;
			break;
		case 'n':
			nockpt = true;
			break;
		case 'e':
			empty = true;
			break;
		case 'm':
			if ((rc = bc_set_once(&mount, "mount", optarg)))
				return rc;
			break;
		case 'S':
			if ((rc = bc_set_once(&sock, "socket", optarg)))
				return rc;
			break;
		case 'T':
			if ((rc = bc_set_once(&timeout, "timeout", optarg)) ||
			    (rc = bc_parse_timeout(optarg)))
				return rc;
			break;
		case 'V':
			return bc_flush_out(bc_version());
		default:
			return bc_bad_option(c, argv, true);
		}
	}
	args = argv + optind;
	nargs = argc - optind;
	/* An option the command does not take is refused, not ignored: a
	 * "reset x --from y" would otherwise reset x to its own parent. */
	if ((from || at) && strcmp(cmd, "create") != 0)
		return bc_fail(BD_EXIT_USAGE, NULL,
			       "--%s goes with create only",
			       from ? "from" : "at");
	if (tree && strcmp(cmd, "list") != 0)
		return bc_fail(BD_EXIT_USAGE, NULL,
			       "--tree goes with list only");
	if (nockpt && strcmp(cmd, "create") != 0 && strcmp(cmd, "reset") != 0)
		return bc_fail(BD_EXIT_USAGE, NULL,
			       "--no-checkpoint goes with create and reset");
	if (empty && (strcmp(cmd, "create") != 0 || from || at))
		return bc_fail(
			BD_EXIT_USAGE, NULL,
			"--empty goes with create, without --from and --at");

	json_buf_init(&req);
	req.raw_bytes = true; /* names as given, see json_buf */
	json_buf_raw(&req, "{\"cmd\":");
	json_buf_str(&req, cmd);
#define NEED(n)                                                              \
	do {                                                                 \
		if (nargs != (n)) {                                          \
			json_buf_release(&req);                              \
			return bc_fail(BD_EXIT_USAGE, NULL,                  \
				       "'%s' takes %d argument%s", cmd, (n), \
				       (n) == 1 ? "" : "s");                 \
		}                                                            \
	} while (0)
	if (!strcmp(cmd, "create")) {
		NEED(1);
		json_buf_raw(&req, ",\"name\":");
		json_buf_str(&req, args[0]);
		if (empty)
			json_buf_raw(&req, ",\"empty\":true");
		if (from) {
			json_buf_raw(&req, ",\"from\":");
			json_buf_str(&req, from);
		}
		if (at && bc_parse_when(at, &req, &why)) {
			json_buf_release(&req);
			if (why)
				return bc_fail(BD_EXIT_USAGE, NULL,
					       "cannot use time '%s': %s", at,
					       why);
			return bc_fail(BD_EXIT_USAGE, NULL,
				       "cannot understand time '%s'", at);
		}
	} else if (!strcmp(cmd, "info") || !strcmp(cmd, "delete") ||
		   !strcmp(cmd, "reset")) {
		NEED(1);
		json_buf_raw(&req, ",\"name\":");
		json_buf_str(&req, args[0]);
	} else if (!strcmp(cmd, "rename")) {
		NEED(2);
		json_buf_raw(&req, ",\"name\":");
		json_buf_str(&req, args[0]);
		json_buf_raw(&req, ",\"new_name\":");
		json_buf_str(&req, args[1]);
	} else if (!strcmp(cmd, "default")) {
		if (nargs > 1)
			NEED(1);
		if (nargs == 1) {
			json_buf_raw(&req, ",\"name\":");
			json_buf_str(&req, args[0]);
		}
	} else if (!strcmp(cmd, "retention")) {
		if (nargs > 1)
			NEED(1);
		if (nargs == 1) {
			char *end;
			long long v;

			errno = 0;
			v = strtoll(args[0], &end, 10);
			if (errno || *end || end == args[0] || v <= 0) {
				json_buf_release(&req);
				return bc_fail(BD_EXIT_USAGE, NULL,
					       "bad retention '%s' (seconds)",
					       args[0]);
			}
			json_buf_printf(&req, ",\"seconds\":%lld", v);
		}
	} else if (!strcmp(cmd, "list") || !strcmp(cmd, "status") ||
		   !strcmp(cmd, "gc")) {
		NEED(0);
	} else {
		json_buf_release(&req);
		return bc_fail(BD_EXIT_USAGE, NULL,
			       "unknown command '%s' (see branchctl --help)",
			       cmd);
	}
	if (nockpt)
		json_buf_raw(&req, ",\"checkpoint\":false");
	json_buf_raw(&req, "}");
	if (req.err) {
		json_buf_release(&req);
		return bc_fail(BD_EXIT_ERROR, NULL,
			       "cannot build the request: %s",
			       strerror(ENOMEM));
	}

	rc = bc_find_socket(sock, mount, sockpath, sizeof(sockpath));
	if (rc) {
		json_buf_release(&req);
		return rc;
	}
	if (bc_timeout_s > 0)
		bc_deadline = bc_now_s() + bc_timeout_s;
	rc = bc_call_retry(sockpath, req.p, &reply, &raw);
	json_buf_release(&req);
	if ((rc == -ECONNREFUSED || rc == -ENOENT) && bc_where[0] &&
	    bc_dead_mount(bc_where))
		return bc_fail_dead();
	if (rc == -ECONNREFUSED || rc == -ENOENT)
		return bc_fail(BD_EXIT_NO_DAEMON, NULL,
			       "branchd is not running (no answer on %s)",
			       sockpath);
	if (rc == -ETIMEDOUT)
		/* The daemon may still carry the command out. */
		return bc_fail(
			BD_EXIT_ERROR, "timeout",
			"no reply from branchd at %s within %g s (the command may still take effect)",
			sockpath, bc_timeout_s);
	if (rc == -EAGAIN)
		return bc_fail(
			BD_EXIT_ERROR, "timeout",
			"branchd at %s took no connection within %g s (stopped, or too busy?); the command was not sent",
			sockpath, bc_timeout_s);
	if (rc == -EPROTO)
		/* Closed before its reply ended: stopping, most likely. */
		return bc_fail(
			BD_EXIT_ERROR, "no_reply",
			"branchd at %s closed the connection without a complete reply (stopping?); the command may or may not have taken effect",
			sockpath);
	if (rc)
		return bc_fail(rc == -EACCES ? BD_EXIT_PERMISSION :
					       BD_EXIT_ERROR,
			       NULL, "cannot talk to branchd at %s: %s",
			       sockpath, strerror(-rc));
	json_get_bool(reply, "ok", &ok);
	/* A daemon ignores request fields it does not know: one built before
	 * --empty makes a branch of the default parent instead. */
	if (ok && empty && json_get_str(json_get(reply, "branch"), "parent")) {
		status = bc_fail(
			BD_EXIT_ERROR, NULL,
			"branchd made '%s' a branch of '%s', not an empty branch: it is older than this branchctl and does not know --empty (restart branchd from the new build; 'branchctl delete %s' removes the branch)",
			args[0],
			json_get_str(json_get(reply, "branch"), "parent"),
			args[0]);
		goto out;
	}
	if (bc_json_out)
		printf("%s\n", raw);
	if (!ok) {
		const char *code = json_get_str(reply, "error");

		fprintf(stderr, "branchctl: %s\n", bc_s(reply, "message"));
		status = bd_exit_of_code(code);
		goto out;
	}
	if (bc_json_out)
		goto out;
	if (!strcmp(cmd, "create")) {
		const struct json *b = json_get(reply, "branch");

		printf("created branch '%s' from %s at seq %" PRId64 "%s%s\n",
		       bc_s(b, "name"),
		       json_get_str(b, "parent") ? bc_s(b, "parent") :
						   "nothing (empty)",
		       bc_i(b, "fork_seq"),
		       json_get_str(b, "fork_time") ? ", " : "",
		       json_get_str(b, "fork_time") ? bc_s(b, "fork_time") :
						      "");
		bc_print_checkpoint(reply, json_get_str(b, "parent"));
	} else if (!strcmp(cmd, "list")) {
		bc_print_list(reply, tree);
	} else if (!strcmp(cmd, "info")) {
		bc_print_info(json_get(reply, "branch"));
	} else if (!strcmp(cmd, "delete")) {
		printf("deleted branch '%s'\n", args[0]);
	} else if (!strcmp(cmd, "rename")) {
		printf("renamed branch '%s' to '%s'\n", args[0], args[1]);
	} else if (!strcmp(cmd, "reset")) {
		printf("reset branch '%s' to its parent's current state\n",
		       args[0]);
		bc_print_checkpoint(reply, NULL);
	} else if (!strcmp(cmd, "default")) {
		bool exists = true;

		json_get_bool(reply, "exists", &exists);
		printf("%s%s\n", bc_s(reply, "default"),
		       exists ? "" :
				" (no branch has this name now: mkdir in the "
				"branch root fails with ENOENT while other "
				"branches exist)");
	} else if (!strcmp(cmd, "retention")) {
		printf("%" PRId64 " s\n", bc_i(reply, "retention_s"));
	} else if (!strcmp(cmd, "gc")) {
		char a[32], b[32], d[32];
		bool deferred = false, low = false;

		bc_human_bytes((uint64_t)bc_i(reply, "disk_before"), a,
			       sizeof(a));
		bc_human_bytes((uint64_t)bc_i(reply, "disk_after"), b,
			       sizeof(b));
		bc_human_bytes((uint64_t)bc_i(reply, "bytes_deleted"), d,
			       sizeof(d));
		json_get_bool(reply, "compaction_deferred", &deferred);
		printf("gc: deleted %" PRId64 " of %" PRId64
		       " versions (%s), reclaimed %" PRId64
		       " unlinked files and %" PRId64
		       " deleted branches; store on disk %s -> %s%s\n",
		       bc_i(reply, "keys_deleted"), bc_i(reply, "keys_scanned"),
		       d, bc_i(reply, "inodes_reclaimed"),
		       bc_i(reply, "branches_dropped"), a, b,
		       deferred ? " (compaction deferred: the last one was "
				  "too recent; the space comes back later)" :
				  "");
		if (bc_i(reply, "branches_pending")) {
			bool no_room = false;

			json_get_bool(reply, "drop_no_room", &no_room);
			if (no_room)
				printf("gc: the data of %" PRId64
				       " deleted branches stays for now: "
				       "dropping it rewrites table files it "
				       "shares with live branches, and the "
				       "filesystem has no room for that above "
				       "the store's reserve; a later gc (the "
				       "background one too) drops it once "
				       "there is room\n",
				       bc_i(reply, "branches_pending"));
			else
				printf("gc: the data of %" PRId64
				       " deleted branches is still in the "
				       "store: the compaction to drop it "
				       "failed or did not run (branchd's log "
				       "says why); the next gc tries again\n",
				       bc_i(reply, "branches_pending"));
		}
		json_get_bool(reply, "space_low", &low);
		if (low)
			printf("gc: the filesystem is still below the store's "
			       "reserve, so writes stay refused: versions "
			       "deleted inside branches free space only as "
			       "the store rewrites its files, which needs "
			       "room; delete a branch (its files go whole) or "
			       "grow the filesystem\n");
	} else if (!strcmp(cmd, "status")) {
		char a[32], f[32];
		bool fready = true;
		int64_t rss, heap;

		bc_human_bytes((uint64_t)bc_i(reply, "disk_bytes"), a,
			       sizeof(a));
		bc_human_bytes((uint64_t)bc_i(reply, "fs_avail_bytes"), f,
			       sizeof(f));
		printf("store:      %s\n", bc_s(reply, "store"));
		printf("mount:      %s\n", bc_s(reply, "mountpoint"));
		printf("socket:     %s\n", bc_s(reply, "socket"));
		printf("disk:       %s used, %s available\n", a, f);
		printf("branches:   %" PRId64 "\n", bc_i(reply, "branches"));
		if (bc_i(reply, "deleted_pending"))
			printf("deleted:    %" PRId64
			       " branch(es) whose data the next gc "
			       "reclaims\n",
			       bc_i(reply, "deleted_pending"));
		printf("seq:        %" PRId64 "\n", bc_i(reply, "seq"));
		json_get_bool(reply, "read_filters_ready", &fready);
		if (!fready)
			printf("filters:    rebuilding after the mount (%" PRId64
			       " objects so far); reads through ancestors "
			       "are slower until then\n",
			       bc_i(reply, "read_filters_objects"));
		printf("retention:  %" PRId64 " s (oldest moment %s)\n",
		       bc_i(reply, "retention_s"), bc_s(reply, "oldest"));
		printf("uptime:     %" PRId64 " s\n", bc_i(reply, "uptime_s"));
		if (json_get_int(reply, "rss_bytes", &rss)) {
			bc_human_bytes((uint64_t)rss, a, sizeof(a));
			if (json_get_int(reply, "heap_bytes", &heap)) {
				bc_human_bytes((uint64_t)heap, f, sizeof(f));
				printf("memory:     %s resident, %s in use "
				       "(malloc)\n",
				       a, f);
			} else {
				printf("memory:     %s resident\n", a);
			}
		}
		printf("version:    %s\n", bc_s(reply, "version"));
	}
out:
	json_free(reply);
	free(raw);
	return bc_flush_out(status);
}
