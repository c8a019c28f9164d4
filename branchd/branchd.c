/* SPDX-License-Identifier: MIT */
/*
 * branchd.c - the branchfs daemon: option parsing, store and mount
 * lifecycle, daemonizing, signals and log routing.
 *
 *   branchd [-f] [-o OPTIONS] STORE_DIR MOUNTPOINT
 *
 * Order of events (each failure is one line on stderr and a nonzero exit):
 *   1. parse options; check the mount point (exists, a directory, nothing
 *      mounted there) before touching the store;
 *   2. without -f, fork: the parent waits on a pipe and exits 0 only once
 *      the child reports the mount live, else with the child's status.  The
 *      fork happens before the store is opened because RocksDB starts
 *      threads, and threads do not survive fork();
 *   3. block SIGINT/SIGTERM/SIGHUP in every thread (a signal thread takes
 *      them with sigwait), open or create the store, mount;
 *   4. when the kernel's INIT request is answered (fs ready callback) the
 *      daemon writes its pid file, tells the parent, detaches stdio and
 *      logs to syslog from then on;
 *   5. SIGINT/SIGTERM/SIGHUP unmounts through the kernel while the loop
 *      still serves, so every dirty page reaches the store; if the mount
 *      is in use it stays, served as before (the next signal tries
 *      again); if it fails for another reason (a user's fusermount3
 *      refusing it) the daemon says why and stops anyway, with status 1;
 *      a signal while an unmount is still writing back aborts the
 *      connection.  fusermount3 -u / umount end the loop the same way;
 *   6. store_close() makes everything durable; the pid file is removed.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <libgen.h>
#include <limits.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/socket.h>
#include <sys/types.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <syslog.h>
#include <unistd.h>

#include "control.h"
#include "ctl.h"
#include "fs/fs.h"
#include "ctlproto.h"
#include "mem.h"
#include "pgckpt.h"
#include "store/store.h"

#ifndef BRANCHFS_VERSION
#define BRANCHFS_VERSION "unknown"
#endif

#define BD_EXIT_USAGE 2

enum {
	BD_UNMOUNT_IDLE,    /* none yet, or the last found the mount in use */
	BD_UNMOUNT_RUNNING, /* writing back and unmounting */
	BD_UNMOUNT_DONE,    /* unmounted, or the connection aborted */
};

struct bd {
	/* options */
	bool foreground;
	bool debug;
	bool allow_other;
	bool io_uring;
	bool pg_checkpoint;
	unsigned pg_checkpoint_timeout_ms;
	char *default_parent;
	char *pidfile;
	char *socket_path;
	char *store_dir;
	char *mountpoint;
	mode_t root_mode;
	uid_t root_uid;
	gid_t root_gid;
	size_t cache_bytes;
	uint64_t retention_s;
	uint64_t gc_interval_s;
	uint64_t commit_s;

	/* runtime */
	atomic_bool use_syslog;
	atomic_bool ready;
	int ready_fd; /* write end of the pipe to the waiting parent, or -1 */
	struct store *store;
	struct fs *fs;
	struct bd_control *control;
	struct bd_pgckpt *pgckpt;
	pthread_t sig_thread;
	atomic_bool sig_done;
	/* BD_UNMOUNT_*: the signal thread starts an unmount only from IDLE */
	atomic_int unmount_state;
	/* an unmount failed for a reason other than the mount in use */
	atomic_bool unmount_failed;
	bool pidfile_written;
};

static void bd_log_fn(void *ctx, int level, const char *msg)
{
	struct bd *bd = ctx;
	static const int prio[] = { LOG_ERR, LOG_WARNING, LOG_INFO, LOG_DEBUG };

	if (level < 0)
		level = 0;
	if (level > STORE_LOG_DEBUG)
		level = STORE_LOG_DEBUG;
	/* Before the mount is live, a daemon reports problems on stderr
	 * (the user is waiting on it) and chatter to syslog. */
	if (atomic_load(&bd->use_syslog) ||
	    (!bd->foreground && level > STORE_LOG_WARN))
		syslog(prio[level], "%s", msg);
	else
		fprintf(stderr, "branchd: %s\n", msg);
}

static void bd_errf(struct bd *bd, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

static void bd_errf(struct bd *bd, const char *fmt, ...)
{
	char msg[1024];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	bd_log_fn(bd, STORE_LOG_ERR, msg);
}

/* Open /dev/null on whichever of fds 0, 1 and 2 is closed (a daemon
 * started with them closed: `branchd ... <&- >&- 2>&-`, some service
 * managers).  Otherwise the first files opened get those numbers: the
 * store's lock file and RocksDB's files did, so that messages meant for
 * stderr went into them, and the dup2() of /dev/null over 0-2 once the
 * mount was live closed the store's lock file (its flock gone while the
 * daemon ran) and RocksDB's LOG. */
static void bd_stdio_open(void)
{
	int fd;

	do {
		fd = open("/dev/null", O_RDWR);
	} while (fd >= 0 && fd <= STDERR_FILENO);
	if (fd > STDERR_FILENO)
		close(fd);
}

/* Lift the soft limit on open files to the hard one.  RocksDB keeps every
 * table file of the store open (about 20 per GiB stored), and each FUSE
 * worker (up to 64) and control connection (up to 64) takes one more: at
 * the usual soft limit of 1024 a store of some 45 GiB ran out, and from
 * the first table or WAL file RocksDB could not open, every write failed
 * with EIO until a remount, and branchctl got no answer.  Nothing here
 * uses select(2), so a large limit is safe.  Returns the soft limit that
 * holds afterwards. */
static rlim_t bd_raise_nofile(void)
{
	struct rlimit rl;

	if (getrlimit(RLIMIT_NOFILE, &rl) != 0)
		return 1024;
	if (rl.rlim_cur < rl.rlim_max) {
		/* An unlimited hard limit is above the kernel's ceiling
		 * (fs.nr_open) and fails: getrlimit says what holds. */
		rl.rlim_cur = rl.rlim_max;
		(void)setrlimit(RLIMIT_NOFILE, &rl);
		if (getrlimit(RLIMIT_NOFILE, &rl) != 0)
			return 1024;
	}
	return rl.rlim_cur;
}

/* Descriptors branchd's own code may hold besides FUSE's and the control
 * socket's: standard streams, syslog, the pidfile and store lock, the
 * fsync journal, RocksDB's directories and WAL files beyond the 10 it
 * counts in max_open_files, the pg_checkpoint helper's pipes and the
 * reads of /proc behind a busy check. */
#define BD_FD_OTHER 32u
/* Table files RocksDB holds open past max_open_files: those in use are
 * not closed (the inputs of its two background compactions, up to 25
 * files each, and the files under live iterators). */
#define BD_FD_TABLES_IN_USE 64u
/* The fewest table files worth running with (RocksDB keeps 10 of its
 * max_open_files for its other files, and takes no less than 20). */
#define BD_FD_MIN_TABLES 64u

/* RocksDB's max_open_files for avail descriptors (at least 20). */
static unsigned bd_fd_tables(rlim_t avail)
{
	if (avail < 20)
		return 20;
	return avail > (1u << 30) ? 1u << 30 : (unsigned)avail;
}

/* Split the limit on open files: what FUSE, the control socket and the
 * rest may hold at most is set aside, and RocksDB keeps at most the
 * remainder open (*tables), closing the least recently read table file
 * past it instead of failing with "Too many open files".  -1 after one
 * line on stderr when the limit leaves too few. */
static int bd_fd_budget(const struct bd *bd, rlim_t limit, unsigned *tables)
{
	struct fs_config fcfg = { .io_uring = bd->io_uring };
	unsigned reserve = fs_fds_max(&fcfg) + BD_CTL_FDS_MAX + BD_FD_OTHER +
			   BD_FD_TABLES_IN_USE;
	struct rlimit rl;

	if (limit < (rlim_t)reserve + BD_FD_MIN_TABLES) {
		if (getrlimit(RLIMIT_NOFILE, &rl) != 0)
			rl.rlim_max = limit;
		fprintf(stderr,
			"branchd: the limit on open files is %llu (hard limit %llu), below the %u branchd needs (%u for FUSE, the control socket and its own files, %u for the store's table files): raise it (ulimit -n, LimitNOFILE= in a systemd unit, --ulimit nofile= of docker run)\n",
			(unsigned long long)limit,
			(unsigned long long)rl.rlim_max,
			reserve + BD_FD_MIN_TABLES, reserve, BD_FD_MIN_TABLES);
		return -1;
	}
	*tables = bd_fd_tables(limit - reserve);
	return 0;
}

static void bd_usage(FILE *f)
{
	fprintf(f,
		"usage: branchd [-f] [-o OPTIONS] STORE_DIR MOUNTPOINT\n"
		"\n"
		"Serve the branchfs store in STORE_DIR (created if missing) at\n"
		"MOUNTPOINT: each directory there is a copy-on-write branch.\n"
		"\n"
		"  -f, --foreground   stay in the foreground, log to stderr\n"
		"  -d                 same as -o debug\n"
		"  -o OPT[,OPT...]    options:\n"
		"       default_parent=NAME  parent of branches made by mkdir (the\n"
		"                            store's, else main)\n"
		"       debug                trace every request\n"
		"       allow_other          let other users in (default)\n"
		"       noallow_other        only the mounting user\n"
		"       io_uring             FUSE over io_uring when the kernel\n"
		"                            offers it (Linux 6.14+, fuse module's\n"
		"                            enable_uring=Y)\n"
		"       noio_uring           always /dev/fuse (default)\n"
		"       pg_checkpoint        before a branch of a running cluster\n"
		"                            is made, CHECKPOINT its server, so\n"
		"                            the branch starts with almost no WAL\n"
		"                            to replay (default)\n"
		"       nopg_checkpoint      branch without asking the server\n"
		"       pg_checkpoint_timeout=SECONDS  longest wait for that\n"
		"                            checkpoint; the branch is made anyway\n"
		"                            after it (10)\n"
		"       default_permissions  kernel permission checks (always on)\n"
		"       pidfile=PATH         write the daemon's pid to PATH\n"
		"       root_mode=OCTAL      mode of the branch root (0755)\n"
		"       root_uid=N, root_gid=N  owner of the branch root\n"
		"       cache_mb=N           RocksDB block cache in MiB (256)\n"
		"       retention=SECONDS    time-travel window (the store's, else\n"
		"                            3600)\n"
		"       gc_interval=SECONDS  background GC period, 0 = off (300)\n"
		"       commit=SECONDS       make every write durable at most this\n"
		"                            long after it, fsync or not; 0 = off (5)\n"
		"       socket=PATH          control socket (default: derived from\n"
		"                            MOUNTPOINT, where branchctl looks)\n"
		"  --check STORE_DIR  verify every block and record of a store that\n"
		"                     is not mounted, changing nothing; exit 0 if\n"
		"                     clean, 1 if damaged, 3 if damage was found\n"
		"                     that lost no data\n"
		"  -h, --help         this help\n"
		"  -V, --version      print the version\n");
}

static int bd_parse_num(const char *s, int base, unsigned long max,
			unsigned long *out)
{
	char *end;
	unsigned long v;

	if (!*s)
		return -EINVAL;
	errno = 0;
	v = strtoul(s, &end, base);
	if (errno || *end || v > max || *s == '-')
		return -EINVAL;
	*out = v;
	return 0;
}

/* An absolute version of path (which may not exist yet); malloc'd. */
static char *bd_abspath(const char *path)
{
	char cwd[PATH_MAX], *out;
	size_t len;

	if (path[0] == '/')
		return strdup(path);
	if (!getcwd(cwd, sizeof(cwd)))
		return NULL;
	len = strlen(cwd) + strlen(path) + 2;
	out = malloc(len);
	if (out)
		snprintf(out, len, "%s/%s", cwd, path);
	return out;
}

/* One -o item.  Returns 0 or -EINVAL after printing the reason. */
static int bd_parse_opt(struct bd *bd, char *opt)
{
	char *val = strchr(opt, '=');
	unsigned long v;

	if (val)
		*val++ = 0;
#define BD_FLAG(name) (strcmp(opt, name) == 0 && !val)
#define BD_VALUE(name) (strcmp(opt, name) == 0 && val)
	if (BD_FLAG("debug")) {
		bd->debug = true;
	} else if (BD_FLAG("allow_other")) {
		bd->allow_other = true;
	} else if (BD_FLAG("noallow_other")) {
		bd->allow_other = false;
	} else if (BD_FLAG("io_uring")) {
		bd->io_uring = true;
	} else if (BD_FLAG("noio_uring")) {
		bd->io_uring = false;
	} else if (BD_FLAG("pg_checkpoint")) {
		bd->pg_checkpoint = true;
	} else if (BD_FLAG("nopg_checkpoint")) {
		bd->pg_checkpoint = false;
	} else if (BD_VALUE("pg_checkpoint_timeout")) {
		if (bd_parse_num(val, 10, 3600, &v) || v == 0) {
			bd_errf(bd,
				"bad pg_checkpoint_timeout '%s' (seconds, 1 to "
				"3600)",
				val);
			return -EINVAL;
		}
		bd->pg_checkpoint_timeout_ms = (unsigned)v * 1000u;
	} else if (BD_FLAG("default_permissions")) {
		/* always on */
	} else if (BD_VALUE("default_parent")) {
		if (store_name_check(val) != 0) {
			bd_errf(bd, "bad branch name '%s' in default_parent",
				val);
			return -EINVAL;
		}
		free(bd->default_parent);
		bd->default_parent = strdup(val);
	} else if (BD_VALUE("pidfile")) {
		/* Absolute now: daemon mode changes to / before writing it. */
		if (!*val) {
			bd_errf(bd, "option pidfile= needs a PATH");
			return -EINVAL;
		}
		free(bd->pidfile);
		bd->pidfile = bd_abspath(val);
		if (!bd->pidfile) {
			bd_errf(bd, "cannot resolve '%s': %s", val,
				strerror(errno));
			return -EINVAL;
		}
	} else if (BD_VALUE("root_mode")) {
		if (bd_parse_num(val, 8, 07777, &v)) {
			bd_errf(bd, "bad root_mode '%s'", val);
			return -EINVAL;
		}
		bd->root_mode = (mode_t)v;
	} else if (BD_VALUE("root_uid")) {
		if (bd_parse_num(val, 10, UINT32_MAX - 1, &v)) {
			bd_errf(bd, "bad root_uid '%s'", val);
			return -EINVAL;
		}
		bd->root_uid = (uid_t)v;
	} else if (BD_VALUE("root_gid")) {
		if (bd_parse_num(val, 10, UINT32_MAX - 1, &v)) {
			bd_errf(bd, "bad root_gid '%s'", val);
			return -EINVAL;
		}
		bd->root_gid = (gid_t)v;
	} else if (BD_VALUE("socket")) {
		if (!*val) {
			bd_errf(bd, "option socket= needs a PATH");
			return -EINVAL;
		}
		free(bd->socket_path);
		bd->socket_path = bd_abspath(val);
		if (!bd->socket_path) {
			bd_errf(bd, "cannot resolve '%s': %s", val,
				strerror(errno));
			return -EINVAL;
		}
	} else if (BD_VALUE("retention")) {
		if (bd_parse_num(val, 10, 100u * 365 * 86400, &v) || v == 0) {
			bd_errf(bd,
				"bad retention '%s' (seconds, 1 to 3153600000, "
				"100 years)",
				val);
			return -EINVAL;
		}
		bd->retention_s = v;
	} else if (BD_VALUE("gc_interval")) {
		if (bd_parse_num(val, 10, 365u * 86400, &v)) {
			bd_errf(bd,
				"bad gc_interval '%s' (seconds, 0 = off, at "
				"most 31536000)",
				val);
			return -EINVAL;
		}
		bd->gc_interval_s = v;
	} else if (BD_VALUE("commit")) {
		if (bd_parse_num(val, 10, 86400, &v)) {
			bd_errf(bd,
				"bad commit '%s' (seconds, 0 = off, at most "
				"86400)",
				val);
			return -EINVAL;
		}
		bd->commit_s = v;
	} else if (BD_VALUE("cache_mb")) {
		if (bd_parse_num(val, 10, 1u << 20, &v) || v == 0) {
			bd_errf(bd, "bad cache_mb '%s' (MiB, 1 to 1048576)",
				val);
			return -EINVAL;
		}
		bd->cache_bytes = (size_t)v << 20;
	} else {
		if (val)
			val[-1] = '=';
		bd_errf(bd, "unknown option '%s' (see branchd --help)", opt);
		return -EINVAL;
	}
#undef BD_FLAG
#undef BD_VALUE
	return 0;
}

static int bd_parse_opts(struct bd *bd, const char *list)
{
	char *copy = strdup(list), *save = NULL, *opt;
	int rc = 0;

	if (!copy)
		return -ENOMEM;
	for (opt = strtok_r(copy, ",", &save); opt && !rc;
	     opt = strtok_r(NULL, ",", &save))
		rc = bd_parse_opt(bd, opt);
	free(copy);
	return rc;
}

static int bd_write_pidfile(struct bd *bd)
{
	char buf[32];
	int fd, len;

	if (!bd->pidfile)
		return 0;
	fd = open(bd->pidfile, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	if (fd < 0) {
		bd_errf(bd, "cannot write pid file '%s': %s", bd->pidfile,
			strerror(errno));
		return -errno;
	}
	len = snprintf(buf, sizeof(buf), "%d\n", (int)getpid());
	if (write(fd, buf, (size_t)len) != len) {
		bd_errf(bd, "cannot write pid file '%s': %s", bd->pidfile,
			strerror(errno));
		close(fd);
		return -EIO;
	}
	close(fd);
	bd->pidfile_written = true;
	return 0;
}

/* fs before_branch callback: mkdir of a branch of parent's head. */
static void bd_before_branch(void *ctx, const struct store_branch_info *parent,
			     const char *name)
{
	struct bd *bd = ctx;
	struct bd_pgckpt_result res;
	char what[STORE_NAME_MAX + 32];

	snprintf(what, sizeof(what), "mkdir of branch '%s'", name);
	bd_pgckpt_parent(bd->pgckpt, parent, what, &res);
}

/* pg_checkpoint's server_pid: where the parent's server runs, seen from
 * here (bd->fs is set before the mount, and so before any branch). */
static long bd_server_pid(void *ctx, const struct store_branch_info *b,
			  long pid)
{
	struct bd *bd = ctx;

	return bd->fs ? fs_branch_server(bd->fs, b, pid) : -1;
}

/* fs ready callback: the kernel's INIT is answered, the mount is live. */
static void bd_ready(void *ctx)
{
	struct bd *bd = ctx;
	int fd;

	atomic_store(&bd->ready, true);
	if (bd->ready_fd < 0)
		return;
	if (write(bd->ready_fd, "", 1) != 1)
		syslog(LOG_WARNING, "cannot notify the parent: %m");
	close(bd->ready_fd);
	bd->ready_fd = -1;
	atomic_store(&bd->use_syslog, true);
	fd = open("/dev/null", O_RDWR | O_CLOEXEC);
	if (fd >= 0) {
		dup2(fd, STDIN_FILENO);
		dup2(fd, STDOUT_FILENO);
		dup2(fd, STDERR_FILENO);
		if (fd > STDERR_FILENO)
			close(fd);
	}
}

/* The graceful unmount runs in its own thread: syncfs and umount can block
 * for as long as the kernel writes back, and the signal thread must stay
 * free to take a second signal (abort).  A mount in use is left alone and
 * served on (fs_request_unmount says so); any other failure aborts. */
static void *bd_unmount_thread(void *arg)
{
	struct bd *bd = arg;
	int rc = fs_request_unmount(bd->fs);

	if (rc == -EBUSY) {
		/* fs_request_unmount logged why (on stderr with -f). */
		atomic_store(&bd->unmount_state, BD_UNMOUNT_IDLE);
		return NULL;
	}
	if (rc != 0) {
		/* Logged with its reason; another try would fail the same
		 * way (a user's unmount goes through fusermount3, which may
		 * refuse it for good).  Stop anyway: the dirty pages were
		 * written back before the unmount was tried. */
		atomic_store(&bd->unmount_failed, true);
		fs_request_exit(bd->fs);
	}
	atomic_store(&bd->unmount_state, BD_UNMOUNT_DONE);
	return NULL;
}

static void *bd_signal_thread(void *arg)
{
	struct bd *bd = arg;
	pthread_t unmounter;
	bool unmounting = false;
	sigset_t set;
	int sig, idle = BD_UNMOUNT_IDLE;

	sigemptyset(&set);
	sigaddset(&set, SIGINT);
	sigaddset(&set, SIGTERM);
	sigaddset(&set, SIGHUP);
	sigaddset(&set, SIGUSR1);
	for (;;) {
		if (sigwait(&set, &sig) != 0)
			continue;
		if (atomic_load(&bd->sig_done))
			break;
		if (sig == SIGUSR1)
			continue;
		if (atomic_compare_exchange_strong(&bd->unmount_state, &idle,
						   BD_UNMOUNT_RUNNING)) {
			syslog(LOG_INFO, "signal %d: unmounting", sig);
			if (bd->foreground)
				fprintf(stderr, "branchd: %s: unmounting\n",
					strsignal(sig));
			/* The one before found the mount in use and ended. */
			if (unmounting)
				pthread_join(unmounter, NULL);
			unmounting = pthread_create(&unmounter, NULL,
						    bd_unmount_thread, bd) == 0;
			if (!unmounting)
				fs_request_exit(bd->fs);
		} else {
			idle = BD_UNMOUNT_IDLE;
			syslog(LOG_INFO, "signal %d again: aborting", sig);
			if (bd->foreground)
				fprintf(stderr,
					"branchd: %s again: aborting the "
					"connection\n",
					strsignal(sig));
			fs_request_exit(bd->fs);
		}
	}
	/* The loop has ended, so the unmount cannot block any more. */
	if (unmounting)
		pthread_join(unmounter, NULL);
	return NULL;
}

/* Fork; the parent waits until the child reports the mount live (exit 0)
 * or dies (exit with its status).  Returns in the child only. */
/* Whether syslog(3) reaches anything: glibc connects to /dev/log, as a
 * datagram socket, else as a stream one, and drops every line when
 * neither works (no LOG_CONS here).  A container or a minimal system
 * often has no syslog daemon: the daemon's log, which the EBUSY and
 * EXDEV of the mount point and many other refusals point to, would be
 * lost without a word. */
static bool bd_syslog_reachable(void)
{
	struct sockaddr_un a = { .sun_family = AF_UNIX,
				 .sun_path = "/dev/log" };
	static const int types[] = { SOCK_DGRAM, SOCK_STREAM };
	bool ok = false;
	size_t i;

	for (i = 0; i < sizeof(types) / sizeof(types[0]) && !ok; i++) {
		int fd = socket(AF_UNIX, types[i] | SOCK_CLOEXEC, 0);

		if (fd < 0)
			return true; /* cannot tell: say nothing */
		ok = connect(fd, (struct sockaddr *)&a, sizeof(a)) == 0;
		close(fd);
	}
	return ok;
}

static volatile sig_atomic_t bd_parent_sig;

static void bd_parent_on_signal(int sig)
{
	bd_parent_sig = sig;
}

/* The waiting parent passes SIGINT, SIGTERM and SIGHUP on to the daemon
 * (in a session of its own, a signal to the caller's process group never
 * reaches it), then waits for it to stop: `timeout 30 branchd ...` or a
 * Ctrl-C that gives up on a start left a daemon that mounted anyway.  The
 * daemon takes such a signal once its mount is live and unmounts it. */
static int bd_parent_forward(pid_t child)
{
	int sig = bd_parent_sig;

	if (sig) {
		bd_parent_sig = 0;
		kill(child, sig);
	}
	return sig;
}

static void bd_daemonize(struct bd *bd)
{
	static const int sigs[] = { SIGINT, SIGTERM, SIGHUP };
	int pfd[2], st, fwd = 0, sig;
	struct sigaction sa;
	sigset_t set;
	pid_t pid;
	char c;
	ssize_t n;
	size_t i;

	if (pipe2(pfd, O_CLOEXEC) != 0) {
		bd_errf(bd, "pipe: %s", strerror(errno));
		exit(1);
	}
	pid = fork();
	if (pid < 0) {
		bd_errf(bd, "fork: %s", strerror(errno));
		exit(1);
	}
	if (pid > 0) {
		close(pfd[1]);
		memset(&sa, 0, sizeof(sa));
		sa.sa_handler = bd_parent_on_signal; /* no SA_RESTART */
		sigemptyset(&sa.sa_mask);
		sigemptyset(&set);
		for (i = 0; i < sizeof(sigs) / sizeof(sigs[0]); i++) {
			sigaction(sigs[i], &sa, NULL);
			sigaddset(&set, sigs[i]);
		}
		sigprocmask(SIG_UNBLOCK, &set, NULL);
		do {
			n = read(pfd[0], &c, 1);
			if ((sig = bd_parent_forward(pid)))
				fwd = sig;
		} while (n < 0 && errno == EINTR);
		if (n == 1 && !fwd) {
			if (!bd_syslog_reachable())
				fprintf(stderr,
					"branchd: mounted, but nothing listens on /dev/log: the daemon's log is lost (run it with -f to log to standard error)\n");
			_exit(0);
		}
		while (waitpid(pid, &st, 0) < 0 && errno == EINTR)
			if ((sig = bd_parent_forward(pid)))
				fwd = sig;
		if (fwd) {
			fprintf(stderr,
				"branchd: %s while starting: passed on to the daemon, which has stopped\n",
				strsignal(fwd));
			_exit(128 + fwd);
		}
		if (WIFEXITED(st) && WEXITSTATUS(st) != 0)
			_exit(WEXITSTATUS(st));
		_exit(1);
	}
	close(pfd[0]);
	bd->ready_fd = pfd[1];
	setsid();
	if (chdir("/") != 0)
		bd_errf(bd, "chdir /: %s", strerror(errno));
}

static void bd_check_problem(void *ctx, const char *msg)
{
	unsigned long *n = ctx;

	(*n)++;
	fprintf(stderr, "branchd: %s\n", msg);
}

static void bd_check_log(void *ctx, int level, const char *msg)
{
	(void)ctx;
	if (level <= STORE_LOG_WARN)
		fprintf(stderr, "branchd: %s\n", msg);
}

/* Whether path is a directory holding nothing. */
static bool bd_dir_is_empty(const char *path)
{
	struct dirent *de;
	bool empty = true;
	DIR *d = opendir(path);

	if (!d)
		return false;
	while (empty && (de = readdir(d)))
		empty = strcmp(de->d_name, ".") == 0 ||
			strcmp(de->d_name, "..") == 0;
	closedir(d);
	return empty;
}

/* 0 if the directory of path exists (levels 1) or its parent does
 * (levels 2: the socket's own directory is made when it is bound). */
static int bd_dir_of_exists(const char *path, int levels)
{
	char *copy = strdup(path), *d;
	struct stat st;
	int rc = -ENOENT, i;

	if (!copy)
		return -ENOMEM;
	d = copy;
	for (i = 0; i < levels && rc != 0; i++) {
		d = dirname(d);
		if (stat(d, &st) == 0 && S_ISDIR(st.st_mode))
			rc = 0;
	}
	free(copy);
	return rc;
}

/* true if another daemon holds the lock of the control socket at path
 * (ctl.c takes it only once the store is open and mounted).  A lock file
 * that is missing or that we may not open says nothing: ctl.c decides. */
static bool bd_socket_served(const char *path)
{
	char lock[PATH_MAX];
	bool held;
	int fd;

	if (snprintf(lock, sizeof(lock), "%s.lock", path) >= (int)sizeof(lock))
		return false;
	fd = open(lock, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
	if (fd < 0)
		return false;
	held = flock(fd, LOCK_EX | LOCK_NB) != 0 && errno == EWOULDBLOCK;
	close(fd); /* drops the lock if we took it */
	return held;
}

/* 0 if we may write the pid file at path (its directory exists): the
 * file, or a new one in its directory; else -1 with errno set. */
static int bd_pidfile_check(const char *path)
{
	char *copy;
	struct stat st;
	int rc;

	if (stat(path, &st) == 0) {
		if (S_ISDIR(st.st_mode)) {
			errno = EISDIR;
			return -1;
		}
		return faccessat(AT_FDCWD, path, W_OK, AT_EACCESS);
	}
	copy = strdup(path);
	if (!copy)
		return -1;
	rc = faccessat(AT_FDCWD, dirname(copy), W_OK | X_OK, AT_EACCESS);
	free(copy);
	return rc;
}

static int bd_precheck(struct bd *bd)
{
	char *store = realpath(bd->store_dir, NULL);
	char why[PATH_MAX + 128];
	size_t ml = strlen(bd->mountpoint);

	if (bd->pidfile && bd_dir_of_exists(bd->pidfile, 1) != 0) {
		fprintf(stderr,
			"branchd: cannot write pid file '%s': its directory does not exist\n",
			bd->pidfile);
		free(store);
		return -1;
	}
	if (bd->pidfile && bd_pidfile_check(bd->pidfile) != 0) {
		fprintf(stderr, "branchd: cannot write pid file '%s': %s\n",
			bd->pidfile, strerror(errno));
		free(store);
		return -1;
	}
	if (bd_dir_of_exists(bd->socket_path, 2) != 0) {
		fprintf(stderr,
			"branchd: cannot make control socket '%s': its directory does not exist\n",
			bd->socket_path);
		free(store);
		return -1;
	}
	/* libfuse opens /dev/fuse as the caller before anything else (also
	 * before it would call fusermount3): without access it cannot mount;
	 * and fusermount3 refuses allow_other to a user unless
	 * /etc/fuse.conf allows it. */
	if (fs_mount_hint(why, sizeof(why), geteuid(), bd->allow_other,
			  "/dev/fuse", "/etc/fuse.conf")) {
		fprintf(stderr, "branchd: %s\n", why);
		free(store);
		return -1;
	}
	if (bd_socket_served(bd->socket_path)) {
		fprintf(stderr,
			"branchd: control socket '%s' is served by another daemon\n",
			bd->socket_path);
		free(store);
		return -1;
	}
	/* A mount point inside the store's directory: a backup or a removal
	 * of the store would go on through the mount into every branch. */
	if (store) {
		size_t sl = strlen(store);

		if (strncmp(bd->mountpoint, store, sl) == 0 &&
		    bd->mountpoint[sl] == '/') {
			fprintf(stderr,
				"branchd: mount point '%s' is inside the store '%s': choose one outside it\n",
				bd->mountpoint, store);
			free(store);
			return -1;
		}
	}
	/* A store dir that does not exist yet: its parent's real path. */
	if (!store) {
		char *copy = strdup(bd->store_dir), *parent;

		if (copy) {
			parent = realpath(dirname(copy), NULL);
			store = parent;
			free(copy);
		}
	}
	if (store &&
	    (strcmp(store, bd->mountpoint) == 0 ||
	     (strncmp(store, bd->mountpoint, ml) == 0 && store[ml] == '/'))) {
		fprintf(stderr,
			"branchd: store '%s' is inside the mount point '%s'\n",
			bd->store_dir, bd->mountpoint);
		free(store);
		return -1;
	}
	free(store);
	return 0;
}

/* branchd --check STORE_DIR: 0 clean; 1 damaged (data unreadable) or
 * cannot be opened; BD_CHECK_NOLOSS damage found that lost no data (the
 * journal's synced records that the database held: a disk that lost data
 * it had flushed).  Like fsck's "errors corrected", but 1 kept its old
 * meaning.  The store is opened read-only: the check changes nothing on
 * disk (like fsck -n), so a second check reports the same; the daemon's
 * next open steps over such journal damage and starts the journal afresh,
 * and only then does a check find it gone. */
#define BD_CHECK_NOLOSS 3

static int bd_check_store(const char *dir, rlim_t nofile)
{
	/* No FUSE, no control socket: the table files may take all but a
	 * few. */
	struct store_config cfg = {
		.log = { bd_check_log, NULL, STORE_LOG_WARN },
		.read_only = true,
		.max_open_files = bd_fd_tables(
			nofile > BD_FD_OTHER + BD_FD_TABLES_IN_USE ?
				nofile - BD_FD_OTHER - BD_FD_TABLES_IN_USE :
				BD_FD_MIN_TABLES),
	};
	struct store_check_report r;
	struct store *s;
	unsigned long problems = 0;
	int rc;

	/* Below it RocksDB met "Too many open files" while the check and
	 * the rebuild of the read filters read, and RocksDB 7.8's iterators
	 * can then end early without an error: the check said clean having
	 * skipped blocks. */
	if (nofile < BD_FD_OTHER + BD_FD_TABLES_IN_USE + BD_FD_MIN_TABLES) {
		fprintf(stderr,
			"branchd: cannot check store '%s': the limit on open files is %llu, below the %u a check needs: raise it (ulimit -n)\n",
			dir, (unsigned long long)nofile,
			BD_FD_OTHER + BD_FD_TABLES_IN_USE + BD_FD_MIN_TABLES);
		return 1;
	}
	rc = store_open(dir, &cfg, &s);
	if (rc) {
		/* store_open logged its one-line reason (as for the daemon). */
		if (rc == -ENOMEM)
			fprintf(stderr,
				"branchd: cannot check store '%s': %s\n", dir,
				strerror(-rc));
		return 1;
	}
	rc = store_check(s, bd_check_problem, &problems, &r);
	store_close(s);
	if (rc) {
		fprintf(stderr, "branchd: check of '%s' failed: %s\n", dir,
			strerror(-rc));
		return 1;
	}
	printf("%s: %llu branches, %llu records, %llu blocks checked; "
	       "%llu damaged records, %llu damaged blocks",
	       dir, (unsigned long long)r.branches,
	       (unsigned long long)r.records, (unsigned long long)r.blocks,
	       (unsigned long long)r.bad_records,
	       (unsigned long long)r.bad_blocks);
	if (r.journal_damaged)
		printf("; %llu bytes of synced fsync journal records damaged, "
		       "which the database held (no write lost; check the "
		       "disk)",
		       (unsigned long long)r.journal_damaged);
	if (r.journal_unapplied)
		printf("; %llu bytes of fsync journal records not yet in the "
		       "database, checked by their checksums only (the "
		       "daemon's next open applies them)",
		       (unsigned long long)r.journal_unapplied);
	if (r.wal_hole)
		printf("; RocksDB's log has a hole a power cut left (later "
		       "records kept, earlier ones lost; %llu bytes after it), "
		       "so what was checked may lack synced writes and hold "
		       "later ones (the daemon's next open cuts the log there "
		       "and replays the fsync journal)",
		       (unsigned long long)r.wal_hole);
	printf("\n");
	if (r.bad_records || r.bad_blocks)
		return 1;
	return r.journal_damaged ? BD_CHECK_NOLOSS : 0;
}

/* One line for a command line getopt refused (opterr is off): getopt's own
 * message and a second line used to say it in two, against the one line
 * that every other refusal of a start gives. */
static void bd_bad_option(int c, char **argv)
{
	const char *arg = optind > 0 ? argv[optind - 1] : "?";

	if (c == ':')
		fprintf(stderr,
			"branchd: option '%s' needs a value (see branchd "
			"--help)\n",
			arg);
	else if (strncmp(arg, "--", 2) == 0 && optopt && strchr(arg, '='))
		fprintf(stderr,
			"branchd: option '%.*s' takes no value (see branchd "
			"--help)\n",
			(int)(strchr(arg, '=') - arg), arg);
	else if (strncmp(arg, "--", 2) == 0 || !optopt || optopt >= 0x80)
		fprintf(stderr,
			"branchd: unknown option '%s' (see branchd --help)\n",
			arg);
	else
		fprintf(stderr,
			"branchd: unknown option '-%c' (see branchd --help)\n",
			optopt);
}

int main(int argc, char **argv)
{
	static const struct option longopts[] = {
		{ "foreground", no_argument, NULL, 'f' },
		{ "help", no_argument, NULL, 'h' },
		{ "version", no_argument, NULL, 'V' },
		{ "check", no_argument, NULL, 'C' },
		{ NULL, 0, NULL, 0 },
	};
	struct store_config scfg;
	struct fs_config fcfg;
	struct store_log log;
	struct bd bd;
	sigset_t set;
	char why[PATH_MAX + 128];
	int opt, rc, status = 1;
	bool check = false, store_new = false, store_dir_kept = false;
	unsigned tables = 0;
	rlim_t nofile;

	/* The pg_checkpoint helper: this program run again by the daemon
	 * (pgckpt.c), before anything else. */
	if (argc > 1 && strcmp(argv[1], BD_PGCKPT_HELPER_ARG) == 0)
		return bd_pgckpt_helper_main(argc, argv);

	bd_stdio_open();
	nofile = bd_raise_nofile();
	memset(&bd, 0, sizeof(bd));
	bd.allow_other = true;
	bd.pg_checkpoint = true;
	bd.pg_checkpoint_timeout_ms = 10000;
	bd.root_mode = 0755;
	bd.root_uid = getuid();
	bd.root_gid = getgid();
	bd.ready_fd = -1;
	bd.retention_s = 0; /* the store's: the one last set, else 3600 */
	bd.gc_interval_s = 300;
	bd.commit_s = 5;
	atomic_init(&bd.use_syslog, false);
	atomic_init(&bd.ready, false);
	atomic_init(&bd.sig_done, false);
	atomic_init(&bd.unmount_state, BD_UNMOUNT_IDLE);
	atomic_init(&bd.unmount_failed, false);

	opterr = 0;
	while ((opt = getopt_long(argc, argv, ":fdho:V", longopts, NULL)) !=
	       -1) {
		switch (opt) {
		case 'f':
			bd.foreground = true;
			break;
		case 'd':
			bd.debug = true;
			break;
		case 'o':
			if (bd_parse_opts(&bd, optarg) != 0) {
				status = BD_EXIT_USAGE;
				goto out_args;
			}
			break;
		case 'h':
			bd_usage(stdout);
			status = 0;
			goto out_args;
		case 'V':
			printf("branchd %s\n", BRANCHFS_VERSION);
			status = 0;
			goto out_args;
		case 'C':
			check = true;
			break;
		default:
			bd_bad_option(opt, argv);
			status = BD_EXIT_USAGE;
			goto out_args;
		}
	}
	if (check) {
		if (argc - optind != 1) {
			fprintf(stderr, "branchd: --check takes STORE_DIR\n");
			status = BD_EXIT_USAGE;
			goto out_args;
		}
		status = bd_check_store(argv[optind], nofile);
		goto out_args;
	}
	if (argc - optind != 2) {
		fprintf(stderr, "branchd: expected STORE_DIR and MOUNTPOINT "
				"(see branchd --help)\n");
		status = BD_EXIT_USAGE;
		goto out_args;
	}
	if (bd_fd_budget(&bd, nofile, &tables) != 0) {
		status = 1;
		goto out_args;
	}
	openlog("branchd", LOG_PID, LOG_DAEMON);
	bd.store_dir = bd_abspath(argv[optind]);
	bd.mountpoint = bd_abspath(argv[optind + 1]);
	if (!bd.store_dir || !bd.mountpoint) {
		fprintf(stderr, "branchd: %s\n", strerror(errno));
		status = 1;
		goto out_args;
	}
	rc = fs_check_mountpoint(bd.mountpoint, why, sizeof(why));
	if (rc) {
		fprintf(stderr, "branchd: %s\n", why);
		status = 1;
		goto out_args;
	}
	{
		/* branchctl derives the socket from the resolved path. */
		char *real = realpath(bd.mountpoint, NULL);

		if (real) {
			free(bd.mountpoint);
			bd.mountpoint = real;
		}
	}
	{
		/* The control socket's path is settled here, once (control.c
		 * takes it as given), and a directory another user controls
		 * is refused before anything is opened (one that does not
		 * exist yet is made ours when the socket is bound). */
		char sock[256];

		if (!bd.socket_path) {
			if (bd_ctl_socket_path(bd.mountpoint, getuid(), sock,
					       sizeof(sock)) != 0) {
				fprintf(stderr,
					"branchd: mount point path too long for "
					"a control socket path: use -o "
					"socket=PATH\n");
				status = 1;
				goto out_args;
			}
			bd.socket_path = strdup(sock);
			if (!bd.socket_path) {
				fprintf(stderr, "branchd: %s\n",
					strerror(errno));
				status = 1;
				goto out_args;
			}
		}
		rc = bd_ctl_socket_dir_check(bd.socket_path, geteuid(), why,
					     sizeof(why));
		if (rc && rc != -ENOENT) {
			fprintf(stderr, "branchd: %s\n", why);
			status = 1;
			goto out_args;
		}
	}
	/* What would fail only after the store was opened (and, if new,
	 * created) is refused before: a new store left behind by a daemon
	 * that never ran is a surprise. */
	if (bd_precheck(&bd) != 0)
		goto out_args;

	if (!bd.foreground)
		bd_daemonize(&bd);

	/* Before any thread exists: a thread keeps the arena it has. */
	bd_mem_init();
	/* Before any thread exists, so that every thread inherits it. */
	sigemptyset(&set);
	sigaddset(&set, SIGINT);
	sigaddset(&set, SIGTERM);
	sigaddset(&set, SIGHUP);
	sigaddset(&set, SIGUSR1);
	pthread_sigmask(SIG_BLOCK, &set, NULL);
	signal(SIGPIPE, SIG_IGN);

	log.fn = bd_log_fn;
	log.ctx = &bd;
	log.level = bd.debug ? STORE_LOG_DEBUG : STORE_LOG_INFO;
	fs_set_lib_log(&log);

	memset(&scfg, 0, sizeof(scfg));
	scfg.log = log;
	scfg.log.level = STORE_LOG_INFO;
	scfg.create = true;
	scfg.cache_bytes = bd.cache_bytes;
	scfg.max_open_files = tables;
	scfg.retention_s = bd.retention_s;
	scfg.drop_marker = FS_PG_DATA_MARKER;
	scfg.drop_depth = FS_PG_DATA_DEPTH;
	{
		struct stat sst;

		/* store_open makes a store where there is none: in a new
		 * directory, or in an empty one, which is kept if the mount
		 * then fails. */
		if (lstat(bd.store_dir, &sst) != 0)
			store_new = errno == ENOENT;
		else if (S_ISDIR(sst.st_mode) && bd_dir_is_empty(bd.store_dir))
			store_new = store_dir_kept = true;
	}
	rc = store_open(bd.store_dir, &scfg, &bd.store);
	if (rc) {
		/* store_open logged its one-line reason. */
		if (rc == -ENOMEM)
			bd_errf(&bd, "cannot open store '%s': %s", bd.store_dir,
				strerror(-rc));
		goto out;
	}
	{
		char m[160];

		snprintf(
			m, sizeof(m),
			"limit on open files %llu: at most %u of the store's table files open",
			(unsigned long long)nofile, tables);
		bd_log_fn(&bd, STORE_LOG_INFO, m);
	}

	{
		struct bd_pgckpt_config pcfg = {
			.store = bd.store,
			.enabled = bd.pg_checkpoint,
			.timeout_ms = bd.pg_checkpoint_timeout_ms,
			.log = log,
			.server_pid = bd_server_pid,
			.server_pid_ctx = &bd,
		};

		rc = bd_pgckpt_new(&pcfg, &bd.pgckpt);
		if (rc) {
			bd_errf(&bd, "cannot set up pg_checkpoint: %s",
				strerror(-rc));
			goto out_close;
		}
	}
	memset(&fcfg, 0, sizeof(fcfg));
	fcfg.store = bd.store;
	fcfg.default_parent = bd.default_parent;
	fcfg.root_uid = bd.root_uid;
	fcfg.root_gid = bd.root_gid;
	fcfg.root_mode = bd.root_mode;
	fcfg.debug = bd.debug;
	fcfg.io_uring = bd.io_uring;
	fcfg.log = log;
	fcfg.ready = bd_ready;
	fcfg.ready_ctx = &bd;
	fcfg.before_branch = bd_before_branch;
	fcfg.before_branch_ctx = &bd;
	{
		/* Tests only (t50): widen the window between the mount
		 * point's check and the mount. */
		const char *d = getenv("BRANCHD_TEST_MOUNT_DELAY_MS");

		if (d)
			fcfg.mount_delay_ms = (unsigned)strtoul(d, NULL, 10);
	}
	rc = fs_new(&fcfg, &bd.fs);
	if (rc) {
		bd_errf(&bd, "cannot set up the filesystem: %s", strerror(-rc));
		goto out_close;
	}
	rc = fs_mount(bd.fs, bd.mountpoint, bd.allow_other);
	if (rc)
		goto out_free; /* fs_mount logged why */
	/* Once the mount is ours: a daemon that loses the race for the
	 * mount point to another one must not replace, then remove, the
	 * winner's pid file.  Before the parent hears the mount is live
	 * (the kernel's INIT is answered in fs_run). */
	if (bd_write_pidfile(&bd) != 0) {
		rc = -EIO;
		goto out_unmount;
	}
	{
		struct bd_control_config ccfg = {
			.store = bd.store,
			.fs = bd.fs,
			.store_dir = bd.store_dir,
			.mountpoint = bd.mountpoint,
			.socket_path = bd.socket_path,
			.gc_interval_s = bd.gc_interval_s,
			.commit_s = bd.commit_s,
			.pgckpt = bd.pgckpt,
			.log = log,
		};

		rc = bd_control_start(&ccfg, &bd.control);
		if (rc)
			goto out_unmount; /* logged */
	}
	rc = pthread_create(&bd.sig_thread, NULL, bd_signal_thread, &bd);
	if (rc) {
		bd_errf(&bd, "cannot start the signal thread: %s",
			strerror(rc));
		goto out_unmount;
	}
	rc = fs_run(bd.fs);
	if (rc)
		bd_errf(&bd, "fuse loop failed: %s", strerror(-rc));
	/* Close the connection before waiting for the signal thread: an
	 * unmount it started may still wait on the kernel (a syncfs) for
	 * replies that no worker will send any more.  The control plane
	 * stops first: its requests notify the kernel through the
	 * connection, and a notify racing the close could write into
	 * whatever file next took the descriptor's number. */
	bd_control_stop(bd.control);
	bd.control = NULL;
	fs_unmount(bd.fs);
	atomic_store(&bd.sig_done, true);
	pthread_kill(bd.sig_thread, SIGUSR1);
	pthread_join(bd.sig_thread, NULL);
	if (!rc && atomic_load(&bd.ready) && !atomic_load(&bd.unmount_failed))
		status = 0;
out_unmount:
	bd_control_stop(bd.control);
	bd.control = NULL;
	fs_unmount(bd.fs);
out_free:
	fs_free(bd.fs);
out_close:
	bd_pgckpt_free(bd.pgckpt);
	/* A store this run made for a mount that never went live (one that
	 * failed in a way not checked before) is not left behind. */
	if (store_new && !atomic_load(&bd.ready)) {
		rc = store_close_remove(bd.store, store_dir_kept);
		if (rc)
			bd_errf(&bd, "cannot remove the new store '%s': %s",
				bd.store_dir, strerror(-rc));
	} else {
		rc = store_close(bd.store);
		if (rc) {
			bd_errf(&bd, "closing the store failed: %s",
				strerror(-rc));
			status = 1;
		}
	}
out:
	if (bd.pidfile_written)
		unlink(bd.pidfile);
	if (bd.ready_fd >= 0)
		close(bd.ready_fd);
	syslog(LOG_INFO, "exiting with status %d", status);
out_args:
	/* Every way out, refusals of bad arguments too: LeakSanitizer
	 * (make sanitizer-drive SAN=asan) reported these. */
	free(bd.store_dir);
	free(bd.mountpoint);
	free(bd.default_parent);
	free(bd.pidfile);
	free(bd.socket_path);
	return status;
}
