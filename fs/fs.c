/* SPDX-License-Identifier: MIT */
/*
 * fs.c - lifecycle of a branchfs mount: create, mount, run, unmount, free;
 * logging; the per-branch open-file table and the kernel lookup table.
 *
 * Lifecycle (each transition made by the daemon's main thread unless
 * noted):  NEW --fs_mount--> MOUNTED --fs_run--> SERVING --(kernel
 * unmount, or fs_request_unmount/fs_request_exit from another thread)-->
 * MOUNTED(loop done) --fs_unmount--> UNMOUNTED --fs_free.
 *
 * Shutdown on a signal must not lose data still in the kernel's page cache
 * (writeback_cache): fs_request_unmount() asks the kernel to unmount while
 * the loop still serves, so the kernel writes every dirty page back to us
 * before it tears the connection down and the loop sees ENODEV.
 *
 * Invariants:
 *  FS-1 A branch with FS_BR_CHANGING set gains no open file: fs_file_open
 *       waits until the flag is cleared.
 *  FS-2 br holds an entry only while count, flags, ops or draining is not
 *       0; its count is the sum of the counts in opens of the branch's
 *       node ids.
 *  FS-4 FS_BR_CHANGING and ops > 0 never hold at once: a change of a
 *       branch's tree (fs_branch_op_begin) never runs between a delete,
 *       rename or reset reading the branch and committing (the store
 *       builds a change on what it read, and would commit it over the
 *       reset tree).  While a hold waits (draining), no new op starts, so
 *       a stream of ops cannot keep a reset out forever.
 *  FS-3 nodes holds an entry only while the kernel's lookup count for it is
 *       believed > 0 (an entry may outlive the kernel's count if a reply
 *       failed; it is then only a wasted invalidation).
 *
 * XXX(globals): libfuse has one process-wide log hook without a context
 * pointer, so the sink installed by fs_set_lib_log() (written once, before
 * mounting) and the flag that libfuse logged an error are, with the
 * thread-local entry pointer of fs_uring.c (its own XXX explains it), the
 * only file-scope mutable variables of fs/.
 */
#include <assert.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <malloc.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <sys/sysmacros.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "fs_int.h"

extern char **environ;

/* The names of a branch's known directories before a reset
 * (fs_reset_prepare, fs_invalidate_tree). */
struct fs_old_name {
	uint64_t dir; /* node id */
	char *name;
};

struct fs_old_names {
	struct fs_old_names *next;
	uint64_t branch;
	uint32_t gen; /* fs_branch_gen when read */
	size_t n, cap;
	struct fs_old_name *v;
};

static void fs_old_names_free(struct fs_old_names *o);
static struct fs_old_names *fs_old_names_take(struct fs *fs,
					      uint64_t branch_id);

static struct store_log fs_lib_log;
/* Set when libfuse logged an error, so that fs_mount() does not add a
 * second line for the same failure. */
static atomic_bool fs_lib_err;

void fs_log(struct fs *fs, int level, const char *fmt, ...)
{
	char msg[1024];
	va_list ap;

	if (!fs->cfg.log.fn || level > fs->cfg.log.level)
		return;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	fs->cfg.log.fn(fs->cfg.log.ctx, level, msg);
}

static void fs_lib_log_fn(enum fuse_log_level level, const char *fmt,
			  va_list ap)
{
	char msg[1024];
	size_t len;
	int lv;

	if (level <= FUSE_LOG_ERR) {
		lv = STORE_LOG_ERR;
		atomic_store(&fs_lib_err, true);
	} else if (level == FUSE_LOG_WARNING)
		lv = STORE_LOG_WARN;
	else if (level < FUSE_LOG_DEBUG)
		lv = STORE_LOG_INFO;
	else
		lv = STORE_LOG_DEBUG;
	if (!fs_lib_log.fn || lv > fs_lib_log.level)
		return;
	vsnprintf(msg, sizeof(msg), fmt, ap);
	len = strlen(msg);
	while (len && (msg[len - 1] == '\n' || msg[len - 1] == ' '))
		msg[--len] = 0;
	if (len)
		fs_lib_log.fn(fs_lib_log.ctx, lv, msg);
}

void fs_set_lib_log(const struct store_log *log)
{
	fs_lib_log = *log;
	fuse_set_log_func(fs_lib_log_fn);
}

struct timespec fs_now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return ts;
}

/* The clock the kernel stamps a cached file's times with on write(2)
 * (current_time(): the coarse clock, at best the last tick).  A new
 * inode's times are the first the kernel caches for it; taken from the
 * fine clock, a write in the same tick (1-4 ms) gave the file an mtime
 * and ctime earlier than the ones it was created with, on every create
 * followed by a write. */
struct timespec fs_now_coarse(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME_COARSE, &ts);
	return ts;
}

unsigned fs_fds_max(const struct fs_config *cfg)
{
	/* The session's fd, a clone per worker (fs_run: clone_fd) and two
	 * the mount itself opens for a moment (fusermount3's socket pair). */
	return 1 + FS_MAX_THREADS + 2 +
	       (cfg && cfg->io_uring ? fs_uring_fds_max() : 0);
}

int fs_new(const struct fs_config *cfg, struct fs **out)
{
	struct fs *fs;

	if (!cfg || !cfg->store)
		return -EINVAL;
	fs = calloc(1, sizeof(*fs));
	if (!fs)
		return -ENOMEM;
	fs->cfg = *cfg;
	{
		/* The one given, else the one last set (kept in the store,
		 * also across renames), else main. */
		char kept[STORE_NAME_MAX + 1];
		const char *def = cfg->default_parent;

		if (!def &&
		    store_setting_get(cfg->store, "default_parent", kept,
				      sizeof(kept)) == 0 &&
		    store_name_check(kept) == 0)
			def = kept;
		fs->default_parent = strdup(def ? def : "main");
		if (!fs->default_parent) {
			free(fs);
			return -ENOMEM;
		}
		if (cfg->default_parent) {
			int prc = store_setting_put(cfg->store,
						    "default_parent",
						    cfg->default_parent);

			if (prc)
				FS_WARN(fs,
					"cannot keep default parent '%s' for the next mount: %s",
					cfg->default_parent, strerror(-prc));
		}
	}
	fs->cfg.default_parent = NULL; /* use fs->default_parent */
	if (cfg->debug && fs->cfg.log.level < STORE_LOG_DEBUG)
		fs->cfg.log.level = STORE_LOG_DEBUG;
	fs->store = cfg->store;
	fs->root_mode = S_IFDIR |
			(cfg->root_mode ? cfg->root_mode & 07777 : 0755);
	fs->root_uid = cfg->root_uid;
	fs->root_gid = cfg->root_gid;
	fs->root_mtime = fs->root_ctime = fs_now();
	pthread_mutex_init(&fs->root_mu, NULL);
	pthread_mutex_init(&fs->loop_mu, NULL);
	pthread_mutex_init(&fs->default_mu, NULL);
	pthread_mutex_init(&fs->br_mu, NULL);
	pthread_cond_init(&fs->br_cv, NULL);
	pthread_mutex_init(&fs->nodes_mu, NULL);
	fs_links_init(fs);
	atomic_init(&fs->ready_done, false);
	*out = fs;
	return 0;
}

/* Unescape a mountinfo path field in place (\040 and friends). */
static void fs_unescape(char *s)
{
	char *d = s;

	while (*s) {
		if (s[0] == '\\' && s[1] >= '0' && s[1] <= '7' && s[2] &&
		    s[3]) {
			*d++ = (char)(((s[1] - '0') << 6) |
				      ((s[2] - '0') << 3) | (s[3] - '0'));
			s += 4;
		} else {
			*d++ = *s++;
		}
	}
	*d = 0;
}

/* Find the last mount at path in /proc/self/mountinfo.  Returns 1 and
 * fills dev ("major:minor", may be NULL) if found, 0 if not, or a negative
 * errno. */
static int fs_mountinfo_find(const char *path, char *dev, size_t devlen)
{
	char line[8192];
	int found = 0;
	FILE *f = fopen("/proc/self/mountinfo", "re");

	if (!f)
		return -errno;
	while (fgets(line, sizeof(line), f)) {
		char majmin[64], mp[4096];

		if (sscanf(line, "%*s %*s %63s %*s %4095s", majmin, mp) != 2)
			continue;
		fs_unescape(mp);
		if (strcmp(mp, path) == 0) {
			found = 1;
			if (dev)
				snprintf(dev, devlen, "%s", majmin);
		}
	}
	fclose(f);
	return found;
}

/* Where our mount is now: the mount point of /proc/self/mountinfo's entry
 * with our mount's id (fs->mnt_id: it stays when a parent of the mount
 * point is renamed, and a bind mount of it elsewhere has another).
 * Returns 1 and fills path; 0 if there is none (detached by umount -l, or
 * unmounted); -EBUSY if something is mounted over it there (an unmount
 * at that path would take that one); or another negative errno.  Without
 * the id (not found at mount time): whether anything is mounted at
 * fs->mountpoint, as before. */
static int fs_mount_where(struct fs *fs, char *path, size_t len)
{
	char line[8192], majmin[64], root[4096], mp[4096];
	long id, parent;
	int found = 0;
	FILE *f;

	if (!fs->mnt_id) {
		found = fs_mountinfo_find(fs->mountpoint, NULL, 0);
		if (found > 0)
			snprintf(path, len, "%s", fs->mountpoint);
		return found;
	}
	f = fopen("/proc/self/mountinfo", "re");
	if (!f)
		return -errno;
	/* The id, the device and the root: once our mount is gone the
	 * kernel hands its id to the next mount made (the lowest free one),
	 * any mount of anyone.  Our device number stays ours while we serve
	 * (a bind mount of a branch holds it), and such a bind mount, which
	 * may get the id too, has a branch for its root. */
	while (!found && fgets(line, sizeof(line), f)) {
		if (sscanf(line, "%ld %ld %63s %4095s %4095s", &id, &parent,
			   majmin, root, mp) == 5 &&
		    id == fs->mnt_id && strcmp(majmin, fs->dev) == 0 &&
		    strcmp(root, "/") == 0) {
			fs_unescape(mp);
			snprintf(path, len, "%s", mp);
			found = 1;
		}
	}
	rewind(f);
	while (found == 1 && fgets(line, sizeof(line), f)) {
		if (sscanf(line, "%ld %ld %*s %*s %4095s", &id, &parent, mp) ==
			    3 &&
		    parent == fs->mnt_id) {
			fs_unescape(mp);
			if (strcmp(mp, path) == 0)
				found = -EBUSY;
		}
	}
	fclose(f);
	return found;
}

/* Our mount's id in /proc/self/mountinfo: that of the last entry at
 * path of device dev, or 0. */
static long fs_mount_id(const char *path, const char *dev)
{
	char line[8192], majmin[64], mp[4096];
	long id, found = 0;
	FILE *f = fopen("/proc/self/mountinfo", "re");

	if (!f)
		return 0;
	while (fgets(line, sizeof(line), f)) {
		if (sscanf(line, "%ld %*s %63s %*s %4095s", &id, majmin, mp) !=
		    3)
			continue;
		fs_unescape(mp);
		if (strcmp(mp, path) == 0 && strcmp(majmin, dev) == 0)
			found = id;
	}
	fclose(f);
	return found;
}

/* A FUSE mount whose daemon died (SIGKILL, a crash): every access fails
 * with ENOTCONN until it is unmounted. */
static void fs_dead_mount_why(const char *path, char *why, size_t whylen)
{
	snprintf(why, whylen,
		 "mount point '%s' is a dead FUSE mount (its daemon is gone): "
		 "'fusermount3 -u %s' removes it",
		 path, path);
}

int fs_check_mountpoint(const char *mountpoint, char *why, size_t whylen)
{
	char buf[64];
	struct stat st;
	char *real;
	int rc;

	if (!why) {
		why = buf;
		whylen = sizeof(buf);
	}
	if (stat(mountpoint, &st) != 0) {
		rc = -errno;
		if (rc == -ENOTCONN)
			fs_dead_mount_why(mountpoint, why, whylen);
		else
			snprintf(why, whylen, "mount point '%s': %s",
				 mountpoint, strerror(-rc));
		return rc;
	}
	if (!S_ISDIR(st.st_mode)) {
		snprintf(why, whylen, "mount point '%s' is not a directory",
			 mountpoint);
		return -ENOTDIR;
	}
	real = realpath(mountpoint, NULL);
	if (!real) {
		rc = -errno;
		snprintf(why, whylen, "mount point '%s': %s", mountpoint,
			 strerror(-rc));
		return rc;
	}
	rc = fs_mountinfo_find(real, NULL, 0);
	if (rc == 0) {
		/* Mounting over files would hide them (and whatever wrote
		 * them would silently write into branchfs instead). */
		DIR *d = opendir(real);
		struct dirent *de;

		if (!d) {
			rc = -errno;
			snprintf(why, whylen, "mount point '%s': %s", real,
				 strerror(-rc));
		} else {
			while ((de = readdir(d))) {
				if (strcmp(de->d_name, ".") &&
				    strcmp(de->d_name, "..")) {
					snprintf(
						why, whylen,
						"mount point '%s' is not empty",
						real);
					rc = -ENOTEMPTY;
					break;
				}
			}
			closedir(d);
		}
	} else if (rc > 0) {
		struct statfs sf;

		/* The root's attributes may still be cached; a statfs always
		 * reaches the daemon. */
		if (statfs(real, &sf) != 0 && errno == ENOTCONN)
			fs_dead_mount_why(real, why, whylen);
		else
			snprintf(why, whylen,
				 "mount point '%s' is busy: something is "
				 "already mounted there",
				 real);
		rc = -EBUSY;
	} else if (rc < 0) {
		snprintf(why, whylen, "cannot read /proc/self/mountinfo: %s",
			 strerror(-rc));
	}
	free(real);
	return rc;
}

/* Write one knob of our mount's writeback device (root only). */
static void fs_bdi_set(struct fs *fs, const char *dev, const char *knob,
		       const char *val)
{
	char path[128];
	size_t len = strlen(val);
	int fd;

	snprintf(path, sizeof(path), "/sys/class/bdi/%s/%s", dev, knob);
	fd = open(path, O_WRONLY | O_CLOEXEC);
	if (fd < 0 || pwrite(fd, val, len, 0) != (ssize_t)len)
		FS_INFO(fs,
			"kernel writeback setting of the mount kept (%s: %s)",
			path, strerror(errno));
	else
		FS_DEBUG(fs, "%s set to %s", path, val);
	if (fd >= 0)
		close(fd);
}

/*
 * The kernel's readahead on our mount is also capped by the device's
 * read_ahead_kb (128 KiB by default, whatever max_readahead we ask for).
 * Raised to FS_MAX_WRITE, a sequential reader (the WAL replay of crash
 * recovery, a sequential scan, pg_dump, cp) gets 1 MiB READs: an eighth
 * of the round trips.  Random reads are unaffected: the kernel reads
 * ahead only once it has seen a sequential pattern.  Root only; without
 * it reads work as before.
 */
static void fs_bdi_readahead(struct fs *fs, const char *dev)
{
	char val[32];

	snprintf(val, sizeof(val), "%u", FS_MAX_WRITE / 1024u);
	fs_bdi_set(fs, dev, "read_ahead_kb", val);
}

/*
 * Keep the kernel's strict per-device dirty-page limit on our mount, and
 * lift its 1% cap.
 *
 * The kernel gives every FUSE mount a "strictlimit" writeback device: the
 * mount's dirty pages are held to the mount's own share of the dirty
 * budget, which follows its share of the machine's recent writeback, and
 * the mount's writeback starts at half of that share.  The share is capped
 * at 1% (max_ratio; about 47 MB with 23 GB of RAM).
 *
 *  - The limit is kept because of close(2).  With the writeback cache,
 *    every close of a file on a FUSE mount writes back all of the file's
 *    dirty pages, whoever dirtied them, and waits for them (the kernel's
 *    flush: no reply of ours changes it).  Postgres closes a relation file
 *    it opened only to evict a buffer at the end of the transaction, so
 *    every new connection's first transaction waited for the pages that
 *    the other backends had evicted to pgbench_accounts.  Without the
 *    limit (the machine's global limits, as on ext4) that was up to 380 MB
 *    and 0.4-0.9 s under pgbench at scale 50, for a CHECKPOINT by
 *    pg_checkpoint too; with it the mount kept 25-60 MB dirty under the
 *    same load and a new connection took 40-170 ms (ext4: 30-40 ms).
 *  - The cap is lifted (max_ratio 100), because crash recovery on a new
 *    branch dirties far more than 1% (every page it replays and evicts):
 *    775 MB of WAL took 8.4-8.9 s to recover with the cap, 4.5-5.7 s
 *    without it, and 4.1-5.0 s with no strict limit at all.
 *  - The price is throughput.  Pages are written back sooner, so a page
 *    dirtied again is written to us more often: under pgbench rw branchd
 *    spent 7-10% more CPU per transaction, and on one store with the knobs
 *    switched between runs rw gave 3705 tps against 3849 (mean of 10 runs
 *    each) and select-only 61086 against 66161 (7 runs; the cause of that
 *    one is not known: no backend was seen throttled).  A recovery while
 *    the parent runs pgbench shares the mount's limit with it, and both
 *    slow down (about 440 MB of WAL, no pg_checkpoint: 4.5-5.1 s against
 *    3.9-4.1 s, the parent at 3044-3225 tps against 3417-3517).  The
 *    latency of every new connection and of mkdir under load weighed
 *    more; root can still choose the global limits (man 8 branchd).
 *
 * Durability does not change: fsync still writes every dirty page back to
 * us first (rule 3).  The knobs (/sys/class/bdi/MAJ:MIN/strict_limit,
 * Linux 6.2+, and max_ratio) need root; without them the mount keeps the
 * kernel's settings.  The readahead is raised here too
 * (fs_bdi_readahead).
 */
static void fs_bdi_tune(struct fs *fs)
{
	char dev[64];

	if (fs_mountinfo_find(fs->mountpoint, dev, sizeof(dev)) <= 0)
		return;
	fs_bdi_readahead(fs, dev);
	fs_bdi_set(fs, dev, "max_ratio", "100");
	fs_bdi_set(fs, dev, "strict_limit", "1");
}

/* Two daemons given one mount point (with different stores) must not
 * both pass the check and stack two mounts: the check and the mount run
 * under an flock of the mount point's directory.  A second daemon that
 * opened the directory before the mount finds the lock taken; one that
 * opens it after gets the new mount's root, whose check fails. */
static int fs_mount_lock(struct fs *fs, const char *mountpoint, int *fd)
{
	*fd = open(mountpoint, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (*fd < 0)
		return 0; /* fs_check_mountpoint says why */
	if (flock(*fd, LOCK_EX | LOCK_NB) == 0 || errno != EWOULDBLOCK)
		return 0; /* a filesystem without flock: no lock, as before */
	FS_ERR(fs, "mount point '%s' is being mounted by another process",
	       mountpoint);
	close(*fd);
	*fd = -1;
	return -EBUSY;
}

/* true if conf has a line that is "user_allow_other", as fusermount3
 * reads it: lines of at most 255 bytes ended by a newline (of a longer
 * one, and of a last one without its newline, it reads nothing), a '#'
 * and what follows dropped, blanks around it allowed. */
static bool fs_conf_allows_other(const char *conf)
{
	char line[256];
	bool found = false, whole = true;
	FILE *f = fopen(conf, "re");

	if (!f)
		return false;
	while (!found && fgets(line, sizeof(line), f)) {
		size_t n = strlen(line);
		bool ends = n > 0 && line[n - 1] == '\n';
		char *p;

		if (whole && ends) {
			line[strcspn(line, "#")] = 0;
			p = line + strspn(line, " \t\r\n\v\f");
			n = strlen(p);
			while (n > 0 && strchr(" \t\r\n\v\f", p[n - 1]))
				n--;
			found = n == 16 && !strncmp(p, "user_allow_other", 16);
		}
		whole = ends;
	}
	fclose(f);
	return found;
}

/* CAP_SYS_ADMIN's bit in /proc/self/status's masks (linux/capability.h) */
#define FS_CAP_SYS_ADMIN 21

/* Whether this process can mount: with CAP_SYS_ADMIN in its effective
 * set, or through the setuid fusermount3 libfuse falls back to, which
 * gets it only if the bounding set keeps it and no_new_privs is off.  If
 * not, *why says which.  true if /proc/self/status cannot be read. */
static bool fs_may_mount(const char **why)
{
	unsigned long long eff = ~0ull, bnd = ~0ull;
	char line[256];
	FILE *f = fopen("/proc/self/status", "re");

	if (!f)
		return true;
	while (fgets(line, sizeof(line), f)) {
		sscanf(line, "CapEff: %llx", &eff);
		sscanf(line, "CapBnd: %llx", &bnd);
	}
	fclose(f);
	if (eff & (1ull << FS_CAP_SYS_ADMIN))
		return true;
	if (!(bnd & (1ull << FS_CAP_SYS_ADMIN))) {
		*why = "it is not in the capability bounding set (a container "
		       "without --cap-add SYS_ADMIN, or a service's "
		       "CapabilityBoundingSet=)";
		return false;
	}
	if (prctl(PR_GET_NO_NEW_PRIVS, 0, 0, 0, 0) == 1) {
		*why = "no_new_privs is set, so the setuid fusermount3 cannot "
		       "get it (a service's NoNewPrivileges=, or a sandboxing "
		       "option that implies it)";
		return false;
	}
	return true;
}

bool fs_mount_hint(char *buf, size_t bufsz, uid_t euid, bool allow_other,
		   const char *dev, const char *conf)
{
	const char *why = "";

	if (access(dev, F_OK) != 0 && errno == ENOENT) {
		snprintf(buf, bufsz,
			 "the FUSE device %s is missing: load the fuse module "
			 "(modprobe fuse), or in a container pass it in "
			 "(--device %s)",
			 dev, dev);
		return true;
	}
	if (!fs_may_mount(&why)) {
		snprintf(buf, bufsz,
			 "mounting needs CAP_SYS_ADMIN, which this process "
			 "cannot get: %s",
			 why);
		return true;
	}
	if (euid == 0)
		return false;
	if (access(dev, R_OK | W_OK) != 0) {
		snprintf(buf, bufsz,
			 "a mount by a user other than root needs %s readable "
			 "and writable by uid %u (%s); it is mode 0666 on most "
			 "systems",
			 dev, (unsigned)euid, strerror(errno));
		return true;
	}
	if (allow_other && !fs_conf_allows_other(conf)) {
		snprintf(
			buf, bufsz,
			"allow_other (the default) needs a 'user_allow_other' "
			"line in %s for a mount by a user other than root: add "
			"it, or mount with -o noallow_other (then only uid %u "
			"can use the mount)",
			conf, (unsigned)euid);
		return true;
	}
	return false;
}

int fs_mount(struct fs *fs, const char *mountpoint, bool allow_other)
{
	char opts[256], why[PATH_MAX + 64];
	char *argv[5];
	int argc = 0, rc, lockfd;
	struct fuse_args args;
	char *real;

	if (fs->se)
		return -EINVAL;
	rc = fs_mount_lock(fs, mountpoint, &lockfd);
	if (rc)
		return rc;
	rc = fs_check_mountpoint(mountpoint, why, sizeof(why));
	if (rc) {
		FS_ERR(fs, "%s", why);
		goto out_unlock;
	}
	if (fs->cfg.mount_delay_ms)
		usleep(fs->cfg.mount_delay_ms * 1000u);
	real = realpath(mountpoint, NULL);
	if (!real) {
		rc = -errno;
		goto out_unlock;
	}
	fs->mountpoint = real;
	fs->allow_other = allow_other;
	snprintf(opts, sizeof(opts),
		 "default_permissions,fsname=branchfs,subtype=branchfs%s",
		 allow_other ? ",allow_other" : "");
	argv[argc++] = "branchd";
	argv[argc++] = "-o";
	argv[argc++] = opts;
	if (fs->cfg.debug)
		argv[argc++] = "-d";
	argv[argc] = NULL;
	args = (struct fuse_args)FUSE_ARGS_INIT(argc, argv);
	atomic_store(&fs_lib_err, false);
	fs->se = fuse_session_new(&args, &fs_ops, sizeof(fs_ops), fs);
	/* The parse may have copied argv (args.allocated): ours to free. */
	fuse_opt_free_args(&args);
	if (!fs->se) {
		if (!atomic_load(&fs_lib_err))
			FS_ERR(fs, "cannot create the fuse session");
		rc = -EIO;
		goto err_clear;
	}
	if (fuse_session_mount(fs->se, real) != 0) {
		if (!atomic_load(&fs_lib_err))
			FS_ERR(fs, "cannot mount on '%s'", real);
		if (fs_mount_hint(why, sizeof(why), geteuid(), allow_other,
				  "/dev/fuse", "/etc/fuse.conf"))
			FS_ERR(fs, "%s", why);
		fuse_session_destroy(fs->se);
		fs->se = NULL;
		rc = -EIO;
		goto err_clear;
	}
	fs->mounted = true;
	if (fs_mountinfo_find(real, fs->dev, sizeof(fs->dev)) <= 0)
		fs->dev[0] = 0;
	fs->mnt_id = fs->dev[0] ? fs_mount_id(real, fs->dev) : 0;
	FS_INFO(fs, "mounted on '%s'", real);
	if (fs->cfg.io_uring) {
		int fd = fuse_session_fd(fs->se);

		rc = fs_uring_new(fs, fd, &fs->uring);
		if (!rc && fuse_session_custom_io(fs->se, &fs_uring_io, fd)) {
			fs_uring_free(fs->uring);
			fs->uring = NULL;
			rc = -EINVAL;
		}
		if (rc)
			FS_WARN(fs,
				"no FUSE over io_uring (%s): requests go "
				"through /dev/fuse",
				strerror(-rc));
	}
	fs_bdi_tune(fs);
	rc = 0;
	goto out_unlock;

err_clear:
	fs->mountpoint = NULL;
	free(real);
out_unlock:
	if (lockfd >= 0)
		close(lockfd);
	return rc;
}

/* The wake signal's handler: nothing to do, its delivery is the point. */
static void fs_wake_handler(int sig)
{
	(void)sig;
}

int fs_run(struct fs *fs)
{
	struct fuse_loop_config *lc;
	struct sigaction sa;
	sigset_t set;
	int rc;

	if (!fs->se)
		return -EINVAL;
	lc = fuse_loop_cfg_create();
	if (!lc)
		return -ENOMEM;
	fuse_loop_cfg_set_clone_fd(lc, 1);
	/* Idle workers never exit (idle limit = thread limit): no thread
	 * churn under bursty load, and per-thread state below us (the
	 * store's zstd and digest contexts) is not lost with each exit. */
	fuse_loop_cfg_set_max_threads(lc, FS_MAX_THREADS);
	fuse_loop_cfg_set_idle_threads(lc, FS_MAX_THREADS);
	/* fs_request_exit wakes this thread with FS_WAKE_SIGNAL: its
	 * sem_wait() in the loop fails with EINTR (no SA_RESTART, which
	 * would restart it), and the loop sees the session exited.  Sent
	 * to this thread only; the workers inherit the unblocked mask, where
	 * the signal, sent from outside, at worst makes a read of the device
	 * fail with EINTR, which libfuse retries. */
	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = fs_wake_handler;
	sa.sa_flags = 0;
	sigemptyset(&sa.sa_mask);
	sigaction(FS_WAKE_SIGNAL, &sa, NULL);
	sigemptyset(&set);
	sigaddset(&set, FS_WAKE_SIGNAL);
	pthread_sigmask(SIG_UNBLOCK, &set, NULL);
	pthread_mutex_lock(&fs->loop_mu);
	fs->loop_thread = pthread_self();
	fs->loop_running = true;
	pthread_mutex_unlock(&fs->loop_mu);
	rc = fuse_session_loop_mt(fs->se, lc);
	pthread_mutex_lock(&fs->loop_mu);
	fs->loop_running = false;
	pthread_mutex_unlock(&fs->loop_mu);
	fuse_loop_cfg_destroy(lc);
	fs_uring_stop(fs->uring);
	return rc < 0 ? rc : 0;
}

/* What fusermount3 prints when the mount is in use (strerror(EBUSY); it
 * sets no locale). */
#define FS_FUSERMOUNT_BUSY "Device or resource busy"

/* Run "fusermount3 -u path" (unprivileged unmount).  0 if it unmounted,
 * -EBUSY if it said the mount is in use and it is still there; else a
 * negative errno and fusermount3's own line (or why it could not run) in
 * why: a failure for another reason (fusermount3 missing, or refusing
 * the path) would come again at every try. */
static int fs_fusermount(struct fs *fs, const char *path, char *why,
			 size_t whylen)
{
	char *argv[] = { "fusermount3", "-u", (char *)path, NULL };
	posix_spawn_file_actions_t fa;
	char out[512], where[PATH_MAX];
	size_t len = 0;
	ssize_t n;
	int pfd[2], st, rc;
	pid_t pid;

	if (pipe2(pfd, O_CLOEXEC) != 0) {
		rc = -errno;
		snprintf(why, whylen, "pipe: %s", strerror(-rc));
		return rc;
	}
	posix_spawn_file_actions_init(&fa);
	posix_spawn_file_actions_adddup2(&fa, pfd[1], STDERR_FILENO);
	rc = posix_spawnp(&pid, "fusermount3", &fa, NULL, argv, environ);
	posix_spawn_file_actions_destroy(&fa);
	close(pfd[1]);
	if (rc) {
		close(pfd[0]);
		snprintf(why, whylen, "cannot run fusermount3: %s",
			 strerror(rc));
		return -rc;
	}
	while (len < sizeof(out) - 1) {
		n = read(pfd[0], out + len, sizeof(out) - 1 - len);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			break;
		len += (size_t)n;
	}
	close(pfd[0]);
	out[len] = 0;
	out[strcspn(out, "\n")] = 0;
	while (waitpid(pid, &st, 0) < 0) {
		if (errno != EINTR) {
			rc = -errno;
			snprintf(why, whylen, "waitpid: %s", strerror(-rc));
			return rc;
		}
	}
	if (WIFEXITED(st) && WEXITSTATUS(st) == 0)
		return 0;
	if (strstr(out, FS_FUSERMOUNT_BUSY) &&
	    fs_mount_where(fs, where, sizeof(where)) > 0)
		return -EBUSY;
	if (out[0])
		snprintf(why, whylen, "%s", out);
	else if (WIFEXITED(st))
		snprintf(why, whylen, "fusermount3 -u exited with status %d",
			 WEXITSTATUS(st));
	else
		snprintf(why, whylen, "fusermount3 -u died of signal %d",
			 WTERMSIG(st));
	return -EPERM;
}

/* After our mount is gone the loop ends once the kernel lets go of the
 * filesystem, at once unless another mount holds it: a branch bound
 * elsewhere (mount --bind, a container's data directory, maybe in another
 * mount namespace, which our mountinfo does not show).  Then we serve on,
 * and a later signal must not abort that mount's connection: -EBUSY, as
 * for a mount detached with umount -l. */
static int fs_unmounted_wait(struct fs *fs, const char *where)
{
	struct timespec ts = { 0, 20 * 1000 * 1000 };
	bool running = true;
	int i;

	for (i = 0; i < 150 && running; i++) {
		pthread_mutex_lock(&fs->loop_mu);
		running = fs->loop_running;
		pthread_mutex_unlock(&fs->loop_mu);
		if (running)
			nanosleep(&ts, NULL);
	}
	if (!running)
		return 0;
	FS_WARN(fs,
		"'%s' is unmounted, but a branch of it is still mounted "
		"elsewhere (a bind mount, a container's data directory): "
		"serving it until that is unmounted",
		where);
	return -EBUSY;
}

/* The open files of branch_id (not directories) as the kernel knows
 * them: node id, with its epoch, and generation, into *out (owned by the
 * caller, freed with free()).  0 or -ENOMEM. */
static int fs_open_files_of(struct fs *fs, uint64_t branch_id,
			    struct fs_node_gen **out, size_t *count)
{
	struct fs_node_gen *v = NULL;
	uint64_t *base = NULL;
	size_t n = 0, nb = 0, cap = 0, i;
	uint32_t gen;
	unsigned ep;
	int rc = 0;

	*out = NULL;
	*count = 0;
	pthread_mutex_lock(&fs->br_mu);
	for (i = 0; i < fs->opens.nb; i++) {
		struct fs_map_ent *e;

		for (e = fs->opens.b[i]; e; e = e->next) {
			if (fs_branch_of(e->key) != branch_id)
				continue;
			if (nb == cap) {
				size_t nc = cap ? cap * 2 : 64;
				uint64_t *p = realloc(base, nc * sizeof(*p));

				if (!p) {
					rc = -ENOMEM;
					goto out_unlock_br;
				}
				base = p;
				cap = nc;
			}
			base[nb++] = e->key;
		}
	}
out_unlock_br:
	pthread_mutex_unlock(&fs->br_mu);
	if (rc || nb == 0)
		goto out_free;
	/* Only inodes of the branch's current tree: one from before a
	 * reset has no dirty page (a reset waits for open files to be
	 * closed), and an OPEN of it, or the first OPEN after a new
	 * generation of its node id went out (FS_NODE_REGEN), is refused
	 * and counted against the branch for the kernel's retry
	 * (fs_file_open). */
	gen = fs_branch_gen(fs, branch_id);
	/* A node has two epochs at most in the kernel (before and after a
	 * reset): room for both. */
	v = calloc(2 * nb, sizeof(*v));
	if (!v) {
		rc = -ENOMEM;
		goto out_free;
	}
	pthread_mutex_lock(&fs->nodes_mu);
	for (i = 0; i < nb; i++) {
		for (ep = 0; ep <= FS_EPOCH_MAX && n < 2 * nb; ep++) {
			uint64_t key = base[i] | ((uint64_t)ep << FS_INO_BITS);
			struct fs_map_ent *e = fs_map_find(&fs->nodes, key);

			if (!e || e->gen != gen ||
			    (e->flags & (FS_NODE_DIR | FS_NODE_LINK |
					 FS_NODE_WAL | FS_NODE_REGEN)))
				continue;
			v[n].nodeid = key;
			v[n].gen = e->gen;
			n++;
		}
	}
	pthread_mutex_unlock(&fs->nodes_mu);
	*out = v;
	*count = n;
out_free:
	free(base);
	return rc;
}

/* The kernel's dirty pages (the writeback cache) of the files of branch
 * branch_id are written back to the store before a branch of its head is
 * made, as btrfs writes a subvolume's dirty pages before a snapshot: the
 * child is to hold everything a process had written when the mkdir began
 * (a file written and still open, a page stored through a shared mapping;
 * before, those writes were missing from the child, which had the file at
 * its old size, or empty).
 *
 * A file has dirty pages only while it is open or mapped (close(2) and
 * the last release write them back), so each open file of the branch is
 * opened here by its handle (open_by_handle_at: the kernel finds its
 * inode by node id, as it is cached while open) and closed again: the
 * close writes the file's dirty pages back and waits until we have served
 * those WRITEs (fuse_flush).  syncfs(2) is no such barrier: it starts the
 * writeback of a FUSE mount but does not wait for it (Linux 6.18 skips
 * mappings without data integrity, as FUSE's, in wait_sb_inodes), and a
 * branch made right after it still lacked the pages now and then (1 in 20
 * to 11 in 20).  Opening by handle needs CAP_DAC_READ_SEARCH: a daemon
 * without it writes nothing back (as before) and says so once.
 *
 * The mount's root is opened for the handles, not a directory below it:
 * a mkdir holds the root's lock, and a lookup in it would wait for that
 * mkdir.  The OPENs, WRITEs and RELEASEs this causes are served by the
 * other workers, as the parent's fsyncs of a pg_checkpoint are. */
int fs_branch_flush(struct fs *fs, uint64_t branch_id)
{
	struct {
		struct file_handle fh;
		uint32_t raw[3];
	} h;
	struct fs_node_gen *v = NULL;
	char where[PATH_MAX], dev[32];
	size_t n = 0, i, done = 0;
	struct stat st;
	int rc, mfd, fd;

	if (!fs->mountpoint || !atomic_load(&fs->mounted) ||
	    !fs_branch_has_open(fs, branch_id) ||
	    atomic_load(&fs->flush_denied))
		return 0;
	rc = fs_mount_where(fs, where, sizeof(where));
	if (rc != 1)
		return rc < 0 && rc != -EBUSY ? rc : 0;
	rc = fs_open_files_of(fs, branch_id, &v, &n);
	if (n == 0)
		goto out_free;
	mfd = open(where, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (mfd < 0) {
		rc = -errno;
		goto out_log;
	}
	/* Not another filesystem mounted over ours meanwhile. */
	snprintf(dev, sizeof(dev), "?");
	if (fstat(mfd, &st) == 0)
		snprintf(dev, sizeof(dev), "%u:%u", major(st.st_dev),
			 minor(st.st_dev));
	for (i = 0; fs->dev[0] && strcmp(dev, fs->dev) == 0 && i < n; i++) {
		/* The kernel's FUSE handle: node id (high, low), generation
		 * (fuse_encode_fh), of type FILEID_INO64_GEN. */
		h.fh.handle_bytes = sizeof(h.raw);
		h.fh.handle_type = 0x81;
		h.raw[0] = (uint32_t)(v[i].nodeid >> 32);
		h.raw[1] = (uint32_t)v[i].nodeid;
		h.raw[2] = v[i].gen;
		/* O_NONBLOCK: nothing here may wait for a writer or reader. */
		fd = open_by_handle_at(mfd, &h.fh,
				       O_RDONLY | O_NONBLOCK | O_CLOEXEC);
		if (fd < 0) {
			/* Closed, forgotten or no longer a file of it
			 * meanwhile (ESTALE), or no privilege (EPERM). */
			if (errno == EPERM && !rc)
				rc = -EPERM;
			continue;
		}
		if (close(fd) != 0 && errno != EINTR && !rc)
			rc = -errno;
		done++;
	}
	close(mfd);
	if (rc == -EPERM) {
		atomic_store(&fs->flush_denied, true);
		FS_WARN(fs,
			"cannot open files by handle (no CAP_DAC_READ_SEARCH): "
			"a new branch lacks what the kernel still caches of its "
			"parent's open files (close, fsync or msync them before "
			"branching)");
		rc = 0;
	}
	FS_DEBUG(fs, "wrote back %zu of %zu open files of branch %llu: %d",
		 done, n, (unsigned long long)branch_id, rc);
out_log:
	if (rc)
		FS_WARN(fs,
			"cannot write the kernel's cached pages of branch %llu "
			"back before branching it: %s: the new branch lacks "
			"writes not yet written back",
			(unsigned long long)branch_id, strerror(-rc));
out_free:
	free(v);
	return rc;
}

int fs_request_unmount(struct fs *fs)
{
	char where[PATH_MAX], why[PATH_MAX + 256];
	int rc, fd;

	if (!fs->mountpoint || !atomic_load(&fs->mounted))
		return 0;
	rc = fs_mount_where(fs, where, sizeof(where));
	if (rc == -EBUSY) {
		FS_WARN(fs,
			"something is mounted over '%s': not unmounted, still "
			"serving; unmount that first and signal again",
			where);
		return rc;
	}
	if (rc < 0) {
		FS_ERR(fs, "cannot unmount '%s': cannot read mountinfo: %s",
		       fs->mountpoint, strerror(-rc));
		return rc;
	}
	if (rc == 0) {
		/* Detached (umount -l) with files still open in it, or
		 * unmounted a moment ago: the loop ends once the kernel lets
		 * go of the mount.  Ending it now would fail every open
		 * file, and unmounting at the path would unmount whatever is
		 * mounted there now. */
		FS_WARN(fs,
			"'%s' is no longer mounted (detached, or unmounted by "
			"someone else) but still in use: serving what is open "
			"in it until it is closed",
			fs->mountpoint);
		return -EBUSY;
	}
	if (strcmp(where, fs->mountpoint) != 0)
		FS_INFO(fs, "'%s' is now at '%s': unmounting it there",
			fs->mountpoint, where);
	/* Write dirty pages back while we still serve, whatever happens to
	 * the unmount below. */
	fd = open(where, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd >= 0) {
		if (syncfs(fd) != 0)
			FS_WARN(fs, "syncfs '%s': %s", where, strerror(errno));
		close(fd);
	}
	why[0] = 0;
	if (umount2(where, UMOUNT_NOFOLLOW) == 0)
		return fs_unmounted_wait(fs, where);
	rc = -errno;
	if (rc == -EPERM) {
		rc = fs_fusermount(fs, where, why, sizeof(why));
		if (rc == 0)
			return fs_unmounted_wait(fs, where);
	}
	if (rc == -EBUSY)
		FS_WARN(fs,
			"'%s' is in use: not unmounted, still serving; stop "
			"what uses it (the Postgres servers on its branches, "
			"shells in it) and signal again, or 'fusermount3 -u "
			"-z' to detach it",
			where);
	else if (rc)
		FS_ERR(fs, "cannot unmount '%s': %s", where,
		       why[0] ? why : strerror(-rc));
	return rc;
}

/* Abort the connection: every request waiting on us and every later one
 * fails with ENOTCONN, and the workers' reads end.  Through the fuse
 * control filesystem when it is mounted (it is not in most containers);
 * else, as root, umount2(MNT_FORCE), which aborts a FUSE connection first
 * (and unmounts it if nothing uses it).  A user other than root without
 * the control filesystem has no way: the connection ends when fs_unmount
 * closes the device. */
static void fs_abort_conn(struct fs *fs)
{
	char path[128], where[PATH_MAX];
	unsigned maj, min;
	int fd;

	if (sscanf(fs->dev, "%u:%u", &maj, &min) != 2)
		return;
	snprintf(path, sizeof(path), "/sys/fs/fuse/connections/%u/abort", min);
	fd = open(path, O_WRONLY | O_CLOEXEC);
	if (fd >= 0) {
		if (write(fd, "1", 1) == 1) {
			close(fd);
			return;
		}
		FS_WARN(fs, "cannot abort '%s': %s", path, strerror(errno));
		close(fd);
	}
	if (geteuid() == 0 && fs_mount_where(fs, where, sizeof(where)) == 1 &&
	    umount2(where, MNT_FORCE | UMOUNT_NOFOLLOW) != 0 && errno != EBUSY)
		FS_WARN(fs, "cannot abort the connection of '%s': %s", where,
			strerror(errno));
}

void fs_request_exit(struct fs *fs)
{
	struct timespec ts = { 0, 10 * 1000 * 1000 };
	bool running;
	int i;

	if (!fs->se)
		return;
	fuse_session_exit(fs->se);
	fs_abort_conn(fs);
	/* The loop's thread waits on a semaphore that only a worker ending
	 * posts, and a worker ends only after its next request: wake the
	 * thread, which then sees the session exited.  Again a few times, in
	 * case the first signal came between its check and its wait. */
	for (i = 0; i < 20; i++) {
		pthread_mutex_lock(&fs->loop_mu);
		running = fs->loop_running;
		if (running)
			pthread_kill(fs->loop_thread, FS_WAKE_SIGNAL);
		pthread_mutex_unlock(&fs->loop_mu);
		if (!running)
			break;
		nanosleep(&ts, NULL);
	}
}

void fs_unmount(struct fs *fs)
{
	char where[PATH_MAX];

	if (fs->se && atomic_load(&fs->mounted)) {
		/* After a lazy detach or an external umount the path is no
		 * longer ours; libfuse would complain about it on stderr, or
		 * unmount what is mounted there now.  fuse_session_destroy()
		 * still closes the device. */
		if (fs_mount_where(fs, where, sizeof(where)) > 0 &&
		    strcmp(where, fs->mountpoint) == 0) {
			fuse_session_unmount(fs->se);
			if (fs_mount_where(fs, where, sizeof(where)) > 0)
				FS_ERR(fs,
				       "'%s' is left mounted without a daemon: "
				       "'fusermount3 -u %s' removes it",
				       where, where);
		}
		atomic_store(&fs->mounted, false);
		FS_INFO(fs, "unmounted '%s'", fs->mountpoint);
	}
}

void fs_free(struct fs *fs)
{
	if (!fs)
		return;
	fs_unmount(fs);
	fs_uring_stop(fs->uring);
	if (fs->se)
		fuse_session_destroy(fs->se);
	fs_uring_free(fs->uring);
	fs_map_release(&fs->br);
	fs_map_release(&fs->opens);
	fs_map_release(&fs->nodes);
	fs_map_release(&fs->epochs);
	fs_old_names_free(fs->old_names);
	fs->old_names = NULL;
	pthread_mutex_destroy(&fs->root_mu);
	pthread_mutex_destroy(&fs->loop_mu);
	pthread_mutex_destroy(&fs->default_mu);
	pthread_mutex_destroy(&fs->br_mu);
	pthread_cond_destroy(&fs->br_cv);
	pthread_mutex_destroy(&fs->nodes_mu);
	fs_links_release(fs);
	free(fs->mountpoint);
	free(fs->default_parent);
	free(fs);
}

/* ---- kernel lookup counts ---- */

uint32_t fs_branch_gen(struct fs *fs, uint64_t br)
{
	struct store_branch_info bi;

	if (store_branch_get(fs->store, br, &bi) != 0)
		return 0;
	return (uint32_t)bi.fork_seq;
}

/* Is generation a older than b?  Generations are the low 32 bits of fork
 * seqs, which only grow: compared modulo 2^32, as the kernel's jiffies.
 * 0 (a directory's) is never older nor newer. */
static bool fs_gen_older(uint32_t a, uint32_t b)
{
	return a && b && (int32_t)(a - b) < 0;
}

/* Epochs are given out per branch in the order its generations are first
 * seen here: read before a reset commits, a generation goes with the
 * tree it was read with (fs_branch_gen), so one epoch never names two
 * trees unless FS_EPOCH_MAX + 1 resets went by (the generation rules of
 * fs_node_ref and fs_node_stale then still keep the kernel's inodes apart,
 * as before epochs, at the cost of an ESTALE or EIO in a narrow window).
 * The previous generation keeps its epoch: a lookup that read the branch
 * just before a reset hands out the old tree's node under the old id. */
uint64_t fs_node_kid(struct fs *fs, uint64_t nodeid, mode_t mode, uint32_t gen)
{
	struct fs_map_ent *e;
	uint64_t epoch = 0;
	bool ok = true;

	if (S_ISDIR(mode) || gen == 0)
		return nodeid;
	pthread_mutex_lock(&fs->nodes_mu);
	e = fs_map_get(&fs->epochs, fs_branch_of(nodeid));
	if (!e) {
		/* -ENOMEM: epoch 0, as before epochs (see above). */
	} else if (e->count == 0 || e->count == gen) {
		e->count = gen;
		epoch = e->epoch;
	} else if (e->prev_gen == gen) {
		epoch = e->prev_epoch;
	} else if (fs_gen_older((uint32_t)e->count, gen)) {
		e->prev_gen = (uint32_t)e->count;
		e->prev_epoch = e->epoch;
		e->count = gen;
		e->epoch = (uint8_t)((e->epoch + 1) & FS_EPOCH_MAX);
		epoch = e->epoch;
	} else {
		ok = false;
	}
	pthread_mutex_unlock(&fs->nodes_mu);
	return ok ? nodeid | (epoch << FS_INO_BITS) : 0;
}

void fs_epoch_drop(struct fs *fs, uint64_t br)
{
	pthread_mutex_lock(&fs->nodes_mu);
	fs_map_del(&fs->epochs, br);
	pthread_mutex_unlock(&fs->nodes_mu);
}

bool fs_node_ref(struct fs *fs, uint64_t nodeid, mode_t mode, uint32_t gen,
		 pid_t tid, uint32_t mark)
{
	struct fs_map_ent *e;
	bool ok = true;

	if (nodeid == FUSE_ROOT_ID)
		return true;
	pthread_mutex_lock(&fs->nodes_mu);
	e = fs_map_get(&fs->nodes, nodeid);
	if (e && e->count && fs_gen_older(gen, e->gen)) {
		/* A lookup that read the branch before a reset, overtaken by
		 * one after it: its entry would hand the kernel an inode of
		 * the old tree after the new one (and make the new one bad),
		 * while the table said the kernel had the new one, so that
		 * fs_file_open let the old inode's OPENs through. */
		ok = false;
	} else if (e) {
		if (e->count && e->gen != gen)
			e->flags |= FS_NODE_REGEN;
		e->count++;
		e->gen = gen;
		if (S_ISLNK(mode))
			e->flags |= FS_NODE_LINK;
		if (S_ISDIR(mode))
			e->flags |= FS_NODE_DIR;
		e->flags |= mark;
		if (tid > 0 && e->refused == (int32_t)tid)
			e->flags |= FS_NODE_RETRY;
	}
	pthread_mutex_unlock(&fs->nodes_mu);
	return ok;
}

bool fs_node_has(struct fs *fs, uint64_t nodeid, uint32_t flag)
{
	struct fs_map_ent *e;
	bool has;

	pthread_mutex_lock(&fs->nodes_mu);
	e = fs_map_find(&fs->nodes, nodeid);
	has = e && (e->flags & flag);
	pthread_mutex_unlock(&fs->nodes_mu);
	return has;
}

/* A WAL segment's name as Postgres makes it (IsXLogFileName): 24
 * upper-case hex digits, timeline, log and segment. */
static bool fs_wal_segment_name(const char *name)
{
	return strlen(name) == 24 && strspn(name, "0123456789ABCDEF") == 24;
}

uint32_t fs_node_wal_mark(struct fs *fs, uint64_t parent, const char *name,
			  mode_t mode)
{
	if (S_ISDIR(mode))
		return strcmp(name, FS_PG_WAL_DIR) == 0 ? FS_NODE_WAL_DIR : 0;
	if (S_ISREG(mode) && (fs_wal_segment_name(name) ||
			      fs_node_has(fs, parent, FS_NODE_WAL_DIR)))
		return FS_NODE_WAL;
	return 0;
}

void fs_node_mark(struct fs *fs, uint64_t nodeid, uint32_t flag)
{
	uint64_t base = fs_node_base(nodeid);
	struct fs_map_ent *e;
	unsigned ep;

	pthread_mutex_lock(&fs->nodes_mu);
	for (ep = 0; ep <= FS_EPOCH_MAX; ep++) {
		e = fs_map_find(&fs->nodes,
				base | ((uint64_t)ep << FS_INO_BITS));
		if (e)
			e->flags |= flag;
	}
	pthread_mutex_unlock(&fs->nodes_mu);
}

void fs_node_unref(struct fs *fs, uint64_t nodeid, uint64_t n)
{
	struct fs_map_ent *e;
	size_t nb = 0;
	bool shrank = false;

	pthread_mutex_lock(&fs->nodes_mu);
	e = fs_map_find(&fs->nodes, nodeid);
	if (e) {
		nb = fs->nodes.nb;
		if (e->count <= n)
			shrank = fs_map_del(&fs->nodes, nodeid);
		else
			e->count -= n;
	}
	pthread_mutex_unlock(&fs->nodes_mu);
	/* The kernel forgot many inodes (memory pressure, drop_caches, the
	 * end of a walk): their entries, 48 bytes each, went back to the
	 * free lists of the threads' malloc arenas, where glibc keeps them
	 * (about 70 MB after a walk of a million files).  Hand whole free
	 * pages back to the kernel, once per halving of a large table: at
	 * most once per FS_NODES_TRIM_BUCKETS / 4 forgets, and some ms. */
	if (shrank && nb >= FS_NODES_TRIM_BUCKETS) {
		struct timespec t0, t1;

		clock_gettime(CLOCK_MONOTONIC, &t0);
		malloc_trim(0);
		clock_gettime(CLOCK_MONOTONIC, &t1);
		FS_DEBUG(
			fs,
			"node map down to %zu buckets: malloc_trim took %ld us",
			nb / 2,
			(long)((t1.tv_sec - t0.tv_sec) * 1000000 +
			       (t1.tv_nsec - t0.tv_nsec) / 1000));
	}
}

/* ---- per-branch open files and changes ---- */

static bool fs_br_idle(const struct fs_map_ent *e)
{
	return !e->count && !e->flags && !e->ops && !e->draining;
}

#ifdef FS_CHECK_INVARIANTS
/* FS-2, checked under br_mu: every br entry is live, and its count is the
 * sum of the open counts of its branch's nodes.  O(open files): built only
 * with -DFS_CHECK_INVARIANTS (debug builds, stress runs). */
static void fs_check_invariants(struct fs *fs)
{
	size_t i, j;

	for (i = 0; i < fs->br.nb; i++) {
		struct fs_map_ent *e;

		for (e = fs->br.b[i]; e; e = e->next) {
			uint64_t sum = 0;

			assert(!fs_br_idle(e));
			assert(!(e->ops && (e->flags & FS_BR_CHANGING)));
			for (j = 0; j < fs->opens.nb; j++) {
				struct fs_map_ent *o;

				for (o = fs->opens.b[j]; o; o = o->next) {
					assert(o->count > 0);
					if (fs_branch_of(o->key) == e->key)
						sum += o->count;
				}
			}
			assert(sum == e->count);
		}
	}
}
#else
static inline void fs_check_invariants(struct fs *fs)
{
	(void)fs;
}
#endif

/* May the kernel's inode of nodeid be from before a reset of its branch?
 * Asked with the file counted open, so that no reset can start meanwhile
 * (a hold waits for open files).  Yes while the last entry of the node
 * carried an older generation.  Yes, once, for the first OPEN after an
 * entry with the new generation went out for a node the kernel knew
 * (FS_NODE_REGEN): until the kernel has taken that entry in (and made its
 * old inode bad), an OPEN sent from the old inode by another process, its
 * path looked up before the reset, is not told apart from one of the new
 * inode.  Once an OPEN of the new inode has come, the old one is bad and
 * takes no writes.  A refused OPEN costs its opener one fresh lookup
 * (the kernel retries an ESTALE open once, with LOOKUP_REVAL); an open
 * that raced the reset itself may see ESTALE, never the old file size.
 *
 * The retry's own OPEN is let through the FS_NODE_REGEN rule: an OPEN
 * refused for its older generation has its retry's LOOKUP set the flag (it
 * hands out the new generation for a node the kernel knows), and a second
 * ESTALE reached the caller (the kernel retries once).  tid, the thread of
 * the request, tells the retry apart: once the thread refused last for
 * this node has looked it up (FS_NODE_RETRY, set by fs_node_ref: the
 * kernel's LOOKUP_REVAL of the retry), its next OPEN comes after that
 * LOOKUP's reply, which made the old inode bad (or found the new one), so
 * it is not from the old inode.  A retry without a LOOKUP (the path ends
 * in a magic link such as /proc/PID/fd/N) is refused as before.  tid 0
 * (unknown, another pid namespace) never matches. */
static bool fs_node_stale(struct fs *fs, uint64_t nodeid, pid_t tid)
{
	uint32_t gen = fs_branch_gen(fs, fs_branch_of(nodeid));
	struct fs_map_ent *e;
	bool stale = false;

	pthread_mutex_lock(&fs->nodes_mu);
	e = fs_map_find(&fs->nodes, nodeid);
	if (e && e->gen != gen) {
		stale = true;
	} else if (e && (e->flags & FS_NODE_REGEN)) {
		stale = tid <= 0 || e->refused != (int32_t)tid ||
			!(e->flags & FS_NODE_RETRY);
		e->flags &= ~(uint32_t)FS_NODE_REGEN;
	}
	if (e) {
		e->refused = stale ? (int32_t)tid : 0;
		e->flags &= ~(uint32_t)FS_NODE_RETRY;
	}
	pthread_mutex_unlock(&fs->nodes_mu);
	return stale;
}

static void fs_do_file_close(struct fs *fs, uint64_t base);
static void fs_retries_expire(struct fs *fs, struct timespec *next);
static void fs_file_refused(struct fs *fs, uint64_t nodeid, pid_t tid);

/* Count an open of nodeid (fs_file_open without the stale check); tid
 * 0: claims no retry. */
static int fs_do_open(struct fs *fs, uint64_t nodeid, pid_t tid)
{
	uint64_t br = fs_branch_of(nodeid), base = fs_node_base(nodeid);
	struct fs_map_ent *e, *o;
	int rc = 0;
	size_t i;

	pthread_mutex_lock(&fs->br_mu);
	fs_check_invariants(fs);
	for (;;) {
		e = fs_map_find(&fs->br, br);
		if (!e || !(e->flags & FS_BR_CHANGING))
			break;
		pthread_cond_wait(&fs->br_cv, &fs->br_mu);
	}
	/* The retry of an OPEN this thread had refused (fs_file_refused):
	 * its count gives way to this one, under the same lock, so that no
	 * change of the branch comes between. */
	fs_retries_expire(fs, NULL);
	for (i = 0; tid > 0 && i < fs->nretries; i++) {
		if (fs->retries[i].tid == tid &&
		    fs_branch_of(fs->retries[i].base) == br) {
			fs_do_file_close(fs, fs->retries[i].base);
			fs->retries[i] = fs->retries[--fs->nretries];
			break;
		}
	}
	e = fs_map_find(&fs->br, br);
	if (!e)
		e = fs_map_get(&fs->br, br);
	o = e ? fs_map_get(&fs->opens, base) : NULL;
	if (e && o) {
		e->count++;
		o->count++;
	} else {
		if (e && fs_br_idle(e))
			fs_map_del(&fs->br, br);
		rc = -ENOMEM;
	}
	fs_check_invariants(fs);
	pthread_mutex_unlock(&fs->br_mu);
	return rc;
}

int fs_file_open(struct fs *fs, uint64_t nodeid, pid_t tid)
{
	int rc = fs_do_open(fs, nodeid, tid);

	if (rc == 0 && fs_node_stale(fs, nodeid, tid)) {
		fs_file_refused(fs, nodeid, tid);
		rc = -ESTALE;
	}
	return rc;
}

/* A directory keeps its node id and generation across resets (see
 * fs_entry_fill): nothing of it is stale. */
int fs_dir_open(struct fs *fs, uint64_t nodeid)
{
	return fs_do_open(fs, nodeid, 0);
}

bool fs_file_is_open(struct fs *fs, uint64_t nodeid)
{
	bool open;

	pthread_mutex_lock(&fs->br_mu);
	open = fs_map_find(&fs->opens, fs_node_base(nodeid)) != NULL;
	pthread_mutex_unlock(&fs->br_mu);
	return open;
}

/* Uncount one open of base (an fs_node_base), under br_mu. */
static void fs_do_file_close(struct fs *fs, uint64_t base)
{
	uint64_t br = fs_branch_of(base);
	struct fs_map_ent *e;

	e = fs_map_find(&fs->opens, base);
	if (e && e->count) {
		if (!--e->count)
			fs_map_del(&fs->opens, base);
	}
	e = fs_map_find(&fs->br, br);
	if (e && e->count) {
		e->count--;
		if (fs_br_idle(e))
			fs_map_del(&fs->br, br);
		pthread_cond_broadcast(&fs->br_cv);
	}
}

void fs_file_close(struct fs *fs, uint64_t nodeid)
{
	pthread_mutex_lock(&fs->br_mu);
	fs_check_invariants(fs);
	fs_do_file_close(fs, fs_node_base(nodeid));
	fs_check_invariants(fs);
	pthread_mutex_unlock(&fs->br_mu);
}

static bool fs_ts_before(const struct timespec *a, const struct timespec *b)
{
	return a->tv_sec < b->tv_sec ||
	       (a->tv_sec == b->tv_sec && a->tv_nsec < b->tv_nsec);
}

/* Uncount the retries (fs->retries) whose time is up, under br_mu; *next
 * (if not NULL) is lowered to the earliest time of those left. */
static void fs_retries_expire(struct fs *fs, struct timespec *next)
{
	struct timespec now;
	size_t i = 0;

	if (!fs->nretries)
		return;
	clock_gettime(CLOCK_REALTIME, &now);
	while (i < fs->nretries) {
		struct fs_retry *r = &fs->retries[i];

		if (!fs_ts_before(&now, &r->until)) {
			fs_do_file_close(fs, r->base);
			*r = fs->retries[--fs->nretries];
			continue;
		}
		if (next && fs_ts_before(&r->until, next))
			*next = r->until;
		i++;
	}
}

/* An OPEN of nodeid by thread tid was refused as stale: keep it counted
 * for the kernel's retry (FS_RETRY_MS), or uncount it. */
static void fs_file_refused(struct fs *fs, uint64_t nodeid, pid_t tid)
{
	uint64_t base = fs_node_base(nodeid);

	pthread_mutex_lock(&fs->br_mu);
	fs_check_invariants(fs);
	fs_retries_expire(fs, NULL);
	if (tid > 0 && fs->nretries < FS_RETRIES_MAX) {
		struct fs_retry *r = &fs->retries[fs->nretries++];

		r->tid = tid;
		r->base = base;
		clock_gettime(CLOCK_REALTIME, &r->until);
		r->until.tv_nsec += FS_RETRY_MS * 1000000L;
		while (r->until.tv_nsec >= 1000000000L) {
			r->until.tv_sec++;
			r->until.tv_nsec -= 1000000000L;
		}
	} else {
		fs_do_file_close(fs, base);
	}
	fs_check_invariants(fs);
	pthread_mutex_unlock(&fs->br_mu);
}

/* A change of an open file (the kernel's SETATTR of the times or size
 * when it writes the file back at close(2), ftruncate) does not wait for a
 * hold that is draining: the hold waits for that file to be closed, so
 * the two would wait for each other until the hold gave up (busy, after
 * FS_BUSY_WAIT_MS).  No hold can complete while the file is open (FS-1),
 * so FS-4 stands. */
int fs_branch_op_begin_node(struct fs *fs, uint64_t nodeid)
{
	uint64_t br = fs_branch_of(nodeid), base = fs_node_base(nodeid);
	struct fs_map_ent *e;
	int rc = 0;

	pthread_mutex_lock(&fs->br_mu);
	fs_check_invariants(fs);
	for (;;) {
		e = fs_map_find(&fs->br, br);
		if (!e || (!(e->flags & FS_BR_CHANGING) &&
			   (!e->draining || (fs_ino_of(nodeid) &&
					     fs_map_find(&fs->opens, base)))))
			break;
		pthread_cond_wait(&fs->br_cv, &fs->br_mu);
	}
	if (!e)
		e = fs_map_get(&fs->br, br);
	if (e)
		e->ops++;
	else
		rc = -ENOMEM;
	fs_check_invariants(fs);
	pthread_mutex_unlock(&fs->br_mu);
	return rc;
}

int fs_branch_op_begin(struct fs *fs, uint64_t br)
{
	return fs_branch_op_begin_node(fs, fs_nodeid(br, 0));
}

void fs_branch_op_end(struct fs *fs, uint64_t br)
{
	struct fs_map_ent *e;

	pthread_mutex_lock(&fs->br_mu);
	fs_check_invariants(fs);
	e = fs_map_find(&fs->br, br);
	if (e && e->ops) {
		/* Only a hold waits for ops to drain (FS-4). */
		if (!--e->ops && e->draining)
			pthread_cond_broadcast(&fs->br_cv);
		if (fs_br_idle(e))
			fs_map_del(&fs->br, br);
	}
	fs_check_invariants(fs);
	pthread_mutex_unlock(&fs->br_mu);
}

/* Wait (bounded) until the branch has no open file, no op in flight and
 * no other change underway, then mark it changing (INV FS-1, FS-4). */
static int fs_branch_hold(struct fs *fs, const struct store_branch_info *bi,
			  char *why, size_t whylen)
{
	struct fs_map_ent *e;
	struct timespec dl;
	uint64_t open_files = 0, ops = 0;
	int rc = 0;

	clock_gettime(CLOCK_REALTIME, &dl);
	dl.tv_sec += FS_BUSY_WAIT_MS / 1000;
	dl.tv_nsec += (long)(FS_BUSY_WAIT_MS % 1000) * 1000000L;
	if (dl.tv_nsec >= 1000000000L) {
		dl.tv_sec++;
		dl.tv_nsec -= 1000000000L;
	}
	pthread_mutex_lock(&fs->br_mu);
	fs_check_invariants(fs);
	/* Announce the wait, so that no new op starts meanwhile (FS-4). */
	e = fs_map_get(&fs->br, bi->id);
	if (!e) {
		rc = -ENOMEM;
		goto out_unlock;
	}
	e->draining++;
	for (;;) {
		/* Wake when a retry's time is up (fs_file_refused): it is
		 * counted as an open file until then. */
		struct timespec wake = dl;

		fs_retries_expire(fs, &wake);
		if (!e->count && !e->ops && !(e->flags & FS_BR_CHANGING))
			break;
		if (pthread_cond_timedwait(&fs->br_cv, &fs->br_mu, &wake) ==
			    ETIMEDOUT &&
		    !fs_ts_before(&wake, &dl) &&
		    (e->count || e->ops || (e->flags & FS_BR_CHANGING))) {
			open_files = e->count;
			ops = e->ops;
			rc = -EBUSY;
			break;
		}
	}
	/* The entry cannot go while draining > 0. */
	e->draining--;
	if (rc == 0)
		e->flags |= FS_BR_CHANGING;
	else if (fs_br_idle(e))
		fs_map_del(&fs->br, bi->id);
	/* Ops that waited for this hold go on (or wait for the change). */
	pthread_cond_broadcast(&fs->br_cv);
out_unlock:
	fs_check_invariants(fs);
	pthread_mutex_unlock(&fs->br_mu);
	if (rc == -EBUSY && why) {
		if (open_files)
			/* The kernel sends a close's RELEASE later, queued
			 * behind writeback under load: until then the file
			 * counts as open. */
			snprintf(why, whylen,
				 "branch '%s' has %llu open file%s (a file "
				 "closed moments ago counts until the kernel "
				 "releases it)",
				 bi->name, (unsigned long long)open_files,
				 open_files == 1 ? "" : "s");
		else if (ops)
			snprintf(why, whylen,
				 "branch '%s' has %llu changes in progress",
				 bi->name, (unsigned long long)ops);
		else
			snprintf(
				why, whylen,
				"branch '%s' is being changed by another request",
				bi->name);
	}
	return rc;
}

/* The branch's data directories, where its postmaster.pid may be: the
 * directories that a fork drops it in (store_drop_dirs: the branch root,
 * or the directories below it holding PG_VERSION, as a branch used as
 * /var/lib/postgresql holds 15/main or 18/docker).  At least the root. */
size_t fs_data_dirs(struct fs *fs, const struct store_branch_info *bi,
		    uint64_t dirs[STORE_DROP_DIRS])
{
	size_t n;

	if (store_drop_dirs(fs->store, bi->id, STORE_SEQ_LATEST, bi->root_ino,
			    dirs, &n) != 0) {
		dirs[0] = bi->root_ino;
		n = 1;
	}
	return n;
}

/* The pid on the first line of postmaster.pid in directory dir of branch;
 * 0 if there is none. */
static pid_t fs_pidfile_pid(struct fs *fs, uint64_t branch, uint64_t dir)
{
	char buf[32];
	uint64_t ino;
	ssize_t n;
	long pid;

	if (store_lookup(fs->store, branch, STORE_SEQ_LATEST, dir,
			 "postmaster.pid", &ino) != 0)
		return 0;
	n = store_read(fs->store, branch, STORE_SEQ_LATEST, ino, buf,
		       sizeof(buf) - 1, 0);
	if (n <= 0)
		return 0;
	buf[n] = 0;
	pid = strtol(buf, NULL, 10);
	return pid > 0 && pid <= INT_MAX ? (pid_t)pid : 0;
}

/* The pid on the first line of the branch's postmaster.pid (of its first
 * data directory whose pid is alive, else of the first that has one); 0
 * if there is none. */
pid_t fs_postmaster_pid(struct fs *fs, const struct store_branch_info *bi)
{
	uint64_t dirs[STORE_DROP_DIRS];
	size_t n = fs_data_dirs(fs, bi, dirs), i;
	pid_t first = 0, pid;

	for (i = 0; i < n; i++) {
		pid = fs_pidfile_pid(fs, bi->id, dirs[i]);
		if (pid <= 0)
			continue;
		if (n == 1 || kill(pid, 0) == 0 || errno == EPERM)
			return pid;
		if (!first)
			first = pid;
	}
	return first;
}

/* st_dev and st_ino of path from the kernel's caches: AT_STATX_DONT_SYNC
 * keeps FUSE from asking its server (this daemon, or a hung one elsewhere). */
static int fs_statx_cached(const char *path, dev_t *dev, uint64_t *ino)
{
	struct statx sx;

	if (statx(AT_FDCWD, path, AT_STATX_DONT_SYNC, STATX_INO | STATX_TYPE,
		  &sx) != 0)
		return -errno;
	*dev = makedev(sx.stx_dev_major, sx.stx_dev_minor);
	*ino = sx.stx_ino;
	return 0;
}

/* Our mount's st_dev into w (w->known), and the branch's data
 * directories with dirs_too (store reads: else w->n is 0). */
static void fs_where_of(struct fs *fs, const struct store_branch_info *bi,
			bool dirs_too, struct fs_where *w)
{
	uint64_t mino, dirs[STORE_DROP_DIRS];
	size_t i;

	w->known = fs->mountpoint &&
		   fs_statx_cached(fs->mountpoint, &w->dev, &mino) == 0 &&
		   mino == FUSE_ROOT_ID;
	w->n = 0;
	if (!dirs_too)
		return;
	w->n = fs_data_dirs(fs, bi, dirs);
	for (i = 0; i < w->n; i++)
		w->ino[i] = fs_nodeid(bi->id, dirs[i]);
}

/* Is process pid's working directory a data directory of the branch (w)?
 * 1 yes, 0 no (or no such process), -1 cannot tell (another user's
 * process, seen by a daemon without root, or w unknown). */
static int fs_cwd_is(const struct fs_where *w, long pid)
{
	char path[64];
	uint64_t ino;
	dev_t dev;
	int rc;

	if (!w->known)
		return -1;
	snprintf(path, sizeof(path), "/proc/%ld/cwd", pid);
	rc = fs_statx_cached(path, &dev, &ino);
	if (rc == -ENOENT || rc == -ESRCH)
		return 0;
	if (rc)
		return -1;
	if (dev != w->dev)
		return 0;
	for (size_t i = 0; i < w->n; i++)
		if (ino == w->ino[i])
			return 1;
	return 0;
}

/* Process pid's name (its comm, with the newline) into comm: 0, or a
 * negative errno if it cannot be read (-ENOENT: no such process). */
static int fs_comm_of(long pid, char *comm, size_t len)
{
	char path[64];
	ssize_t n;
	int fd, rc;

	snprintf(path, sizeof(path), "/proc/%ld/comm", pid);
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	n = read(fd, comm, len - 1);
	rc = n < 0 ? -errno : n == 0 ? -ENOENT : 0;
	close(fd);
	if (rc)
		return rc;
	comm[n] = 0;
	return 0;
}

/* Is comm (as fs_comm_of reads it) the name of a Postgres server process:
 * "postgres", or "postmaster" when started through the old link? */
static bool fs_comm_is_postgres(const char *comm)
{
	return strcmp(comm, "postgres\n") == 0 ||
	       strcmp(comm, "postmaster\n") == 0;
}

/* true when process pid's name is known and is not a server's. */
static bool fs_comm_not_postgres(long pid)
{
	char comm[32];

	return fs_comm_of(pid, comm, sizeof(comm)) == 0 &&
	       !fs_comm_is_postgres(comm);
}

/* ---- one look at the processes (rule 7) ----
 *
 * Whether a branch is in use by something this daemon serves no request
 * for, read from /proc in one pass (fs_probe_new): the Postgres processes
 * (fs_comm_is_postgres: a postmaster and every child of it) and the
 * directory each works in, as postmasters chdir to their data directory,
 * seen here also when it runs in a container, whose postmaster.pid names
 * a pid of another namespace; and the mounts of this filesystem's
 * directories made elsewhere (mount --bind, a container's data
 * directory), in this or any other mount namespace.  Each namespace's
 * mountinfo is read once, through the first process found in it; an
 * entry of our device is looked at through that process's root, from the
 * kernel's cache (AT_STATX_DONT_SYNC: no request to us), and its st_ino
 * (rule 1) carries the branch.  Not by the entry's root path: that reads
 * "/NAME//deleted" once a branchctl rename has invalidated the kernel's
 * entry, and may name a branch made since under the old name.
 *
 * A process gone meanwhile, or one a daemon without root may not look
 * at (it sees only the namespaces and working directories of its own
 * user's processes), is passed over.  Out of memory or of file
 * descriptors (fs_probe_short) fails the whole look: a delete, rename or
 * reset is then refused (fail closed) rather than let through unchecked.
 * A delete, rename or reset looks once before waiting for open files and
 * once with the branch held; list looks once for all its branches. */
/* The mount namespace of process pid (or "self") as the inode number in
 * the text of its /proc link ("mnt:[4026531841]"): a readlink costs half
 * a stat, which follows the link.  0 and *id, or a negative errno. */
static int fs_mntns_of(const char *pid, uint64_t *id)
{
	char path[64], buf[64];
	ssize_t n;

	snprintf(path, sizeof(path), "/proc/%s/ns/mnt", pid);
	n = readlink(path, buf, sizeof(buf) - 1);
	if (n < 0)
		return -errno;
	buf[n] = 0;
	return sscanf(buf, "mnt:[%" SCNu64 "]", id) == 1 ? 0 : -EINVAL;
}

/* Out of memory or of file descriptors: a look at the processes that
 * meets one cannot be finished, and says nothing of them. */
static bool fs_probe_short(int rc)
{
	return rc == -ENOMEM || rc == -EMFILE || rc == -ENFILE;
}

void *fs_probe_grow(void *v, size_t *cap, size_t n, size_t size)
{
	size_t c = *cap ? 2 * *cap : 16;
	void *w;

	if (n < *cap)
		return v;
	w = realloc(v, c * size);
	if (w)
		*cap = c;
	return w;
}

/* The mounts of our device (maj:min) in the mount namespace of process
 * pid, from its mountinfo, into p; ours: that namespace is ours.  0, or
 * fs_probe_short's errors. */
static int fs_probe_mounts(struct fs *fs, struct fs_probe *p, long pid,
			   bool ours, unsigned maj, unsigned min, char **line,
			   size_t *linecap)
{
	char path[PATH_MAX + 64];
	ssize_t got;
	int rc = 0;
	FILE *f;

	snprintf(path, sizeof(path), "/proc/%ld/mountinfo", pid);
	f = fopen(path, "re");
	if (!f)
		return fs_probe_short(-errno) ? -errno : 0;
	for (;;) {
		char majmin[64], root[PATH_MAX], mp[PATH_MAX];
		struct fs_probe_mnt *m;
		struct statx sx;

		errno = 0;
		got = getline(line, linecap, f);
		if (got <= 0) {
			if (got < 0 && errno == ENOMEM)
				rc = -ENOMEM;
			break;
		}
		if (sscanf(*line, "%*s %*s %63s %4095s %4095s", majmin, root,
			   mp) != 3 ||
		    strcmp(majmin, fs->dev) != 0 || strcmp(root, "/") == 0)
			continue;
		fs_unescape(mp);
		snprintf(path, sizeof(path), "/proc/%ld/root%s", pid, mp);
		if (statx(AT_FDCWD, path, AT_STATX_DONT_SYNC | AT_NO_AUTOMOUNT,
			  STATX_INO, &sx) != 0) {
			if (fs_probe_short(-errno)) {
				rc = -errno;
				break;
			}
			continue;
		}
		if (sx.stx_dev_major != maj || sx.stx_dev_minor != min)
			continue;
		m = fs_probe_grow(p->mnt, &p->mntcap, p->nmnt, sizeof(*m));
		if (!m) {
			rc = -ENOMEM;
			break;
		}
		p->mnt = m;
		m = &p->mnt[p->nmnt];
		m->where = strdup(mp);
		if (!m->where) {
			rc = -ENOMEM;
			break;
		}
		m->branch = sx.stx_ino >> FS_BRANCH_SHIFT;
		m->pid = ours ? 0 : pid;
		p->nmnt++;
	}
	fclose(f);
	return rc;
}

/* Process pid into p: where it works if it is a Postgres process, and
 * the mounts of its namespace if it is the first of that namespace met
 * (seen, *nseen of *cap; self: our namespace; mounts false: not looked
 * for).  0, or fs_probe_short's errors. */
static int fs_probe_process(struct fs *fs, struct fs_probe *p, const char *name,
			    long pid, uint64_t **seen, size_t *nseen,
			    size_t *cap, uint64_t self, unsigned maj,
			    unsigned min, char **line, size_t *linecap)
{
	char comm[32], path[64];
	struct fs_probe_pg *pg;
	uint64_t ino, ns, *sv;
	size_t i;
	dev_t dev;
	int rc;

	rc = fs_comm_of(pid, comm, sizeof(comm));
	if (rc == 0 && fs_comm_is_postgres(comm)) {
		snprintf(path, sizeof(path), "/proc/%ld/cwd", pid);
		rc = fs_statx_cached(path, &dev, &ino);
		if (rc == 0) {
			pg = fs_probe_grow(p->pg, &p->pgcap, p->npg,
					   sizeof(*pg));
			if (!pg)
				return -ENOMEM;
			p->pg = pg;
			p->pg[p->npg++] = (struct fs_probe_pg){ pid, dev, ino };
		}
	}
	if (fs_probe_short(rc))
		return rc;
	if (!p->mounts)
		return 0;
	rc = fs_mntns_of(name, &ns);
	if (rc)
		return fs_probe_short(rc) ? rc : 0;
	for (i = 0; i < *nseen; i++)
		if ((*seen)[i] == ns)
			return 0;
	sv = fs_probe_grow(*seen, cap, *nseen, sizeof(*sv));
	if (!sv)
		return -ENOMEM;
	*seen = sv;
	sv[(*nseen)++] = ns;
	return fs_probe_mounts(fs, p, pid, ns == self, maj, min, line, linecap);
}

/* One pass over /proc into p (p->mounts false: the Postgres processes
 * only).  0 (also when /proc cannot be read at all: nothing is seen, as
 * for a process we may not look at), or fs_probe_short's errors and a
 * failed readdir. */
static int fs_probe_scan(struct fs *fs, struct fs_probe *p)
{
	size_t nseen = 0, cap = 0, linecap = 0;
	unsigned maj = 0, min = 0;
	uint64_t *seen = NULL, self = 0;
	struct dirent *de;
	char *line = NULL;
	int rc = 0;
	DIR *d;

	p->mounts = p->mounts && sscanf(fs->dev, "%u:%u", &maj, &min) == 2 &&
		    fs_mntns_of("self", &self) == 0;
	d = opendir("/proc");
	if (!d)
		return fs_probe_short(-errno) ? -errno : 0;
	for (;;) {
		char *end;
		long pid;

		errno = 0;
		de = readdir(d);
		if (!de) {
			rc = -errno;
			break;
		}
		pid = strtol(de->d_name, &end, 10);
		if (*end || pid <= 0)
			continue;
		rc = fs_probe_process(fs, p, de->d_name, pid, &seen, &nseen,
				      &cap, self, maj, min, &line, &linecap);
		if (rc)
			break;
	}
	closedir(d);
	free(line);
	free(seen);
	return rc;
}

static int fs_probe_make(struct fs *fs, bool mounts, struct fs_probe **out)
{
	struct fs_probe *p = calloc(1, sizeof(*p));
	int rc;

	if (!p)
		return -ENOMEM;
	p->mounts = mounts;
	fs_where_of(fs, NULL, false, &p->where);
	rc = fs_probe_scan(fs, p);
	if (rc) {
		fs_probe_free(p);
		return rc;
	}
	*out = p;
	return 0;
}

int fs_probe_new(struct fs *fs, struct fs_probe **out)
{
	return fs_probe_make(fs, true, out);
}

void fs_probe_free(struct fs_probe *p)
{
	size_t i;

	if (!p)
		return;
	for (i = 0; i < p->nmnt; i++)
		free(p->mnt[i].where);
	free(p->mnt);
	free(p->pg);
	for (i = 0; i < p->nlinks; i++) {
		free(p->links[i].path);
		free(p->links[i].stored);
	}
	free(p->links);
	free(p->all);
	free(p);
}

int fs_probe_for(struct fs *fs, const struct store_branch_info *bi, bool mounts,
		 struct fs_probe **out, char *why, size_t whylen)
{
	int rc = fs_probe_make(fs, mounts, out);

	if (rc && why)
		snprintf(why, whylen,
			 "cannot tell whether branch '%s' is in use: %s while "
			 "looking at the processes",
			 bi->name,
			 rc == -ENOMEM ? "out of memory" : strerror(-rc));
	return rc;
}

int fs_probe_branches(struct fs *fs, struct fs_probe *p,
		      const struct store_branch_info **all, size_t *n)
{
	if (!p->listed) {
		p->list_rc = store_branch_list(fs->store, &p->all, &p->nall);
		p->listed = true;
	}
	*all = p->all;
	*n = p->nall;
	return p->list_rc;
}

/* Whether a Postgres process of p works in branch_id (a directory of it
 * on our mount, dev). */
static bool fs_probe_pg_in(const struct fs_probe *p, dev_t dev,
			   uint64_t branch_id)
{
	size_t i;

	for (i = 0; i < p->npg; i++)
		if (p->pg[i].dev == dev &&
		    p->pg[i].ino >> FS_BRANCH_SHIFT == branch_id)
			return true;
	return false;
}

/* A Postgres process of p working in a data directory of the branch (w).
 * Its pid, or 0. */
static long fs_postgres_in(const struct fs_where *w, const struct fs_probe *p)
{
	size_t i, j;

	if (!w->known)
		return 0;
	for (i = 0; i < p->npg; i++) {
		if (p->pg[i].dev != w->dev)
			continue;
		for (j = 0; j < w->n; j++)
			if (p->pg[i].ino == w->ino[j])
				return p->pg[i].pid;
	}
	return 0;
}

/* A mount of p made elsewhere whose root is a directory of branch_id, or
 * NULL. */
static const struct fs_probe_mnt *fs_branch_bound(const struct fs_probe *p,
						  uint64_t branch_id)
{
	size_t i;

	for (i = 0; i < p->nmnt; i++)
		if (p->mnt[i].branch == branch_id)
			return &p->mnt[i];
	return NULL;
}

/* Rule 7's "a postmaster runs on it" (fs_branch_server_in).  A live pid
 * in the branch's postmaster.pid counts only if its working directory is
 * the branch (or cannot be read and no postgres process is seen there): a
 * pid left by a server that was killed, or written in a container, often
 * names an unrelated live process here (pid 1).  Any Postgres process
 * working in the branch counts too, and is the one named.  0, or -EBUSY
 * with why set (or fs_branch_linked_busy's errors). */
static int fs_branch_no_postmaster(struct fs *fs,
				   const struct store_branch_info *bi,
				   struct fs_probe *p, char *why, size_t whylen)
{
	pid_t pid = fs_postmaster_pid(fs, bi);
	long srv = fs_branch_server_in(fs, bi, pid, p);

	if (srv < 0) {
		/* Where the mount point cannot be read, a live pid counts. */
		srv = 0;
		if (pid > 0 && (kill(pid, 0) == 0 || errno == EPERM))
			srv = pid;
	}
	if (srv == 0)
		return fs_branch_linked_busy(fs, bi, p, why, whylen);
	if (why && srv == pid)
		snprintf(why, whylen,
			 "postmaster (pid %d) is running on branch '%s'",
			 (int)pid, bi->name);
	else if (why)
		snprintf(why, whylen,
			 "a postgres process (pid %ld) is running in branch "
			 "'%s'",
			 srv, bi->name);
	return -EBUSY;
}

long fs_branch_server_in(struct fs *fs, const struct store_branch_info *bi,
			 long pid, const struct fs_probe *p)
{
	bool live = pid > 0 && (kill((pid_t)pid, 0) == 0 || errno == EPERM);
	struct fs_where w;
	long found;
	int at = 0;

	/* The mount point as the probe saw it, and the data directories
	 * (store reads) only when a process may work in one: listing 200
	 * branches read them twice per branch. */
	w.known = p->where.known;
	w.dev = p->where.dev;
	w.n = 0;
	if (!w.known)
		return -1;
	if (live || fs_probe_pg_in(p, w.dev, bi->id))
		fs_where_of(fs, bi, true, &w);
	if (live)
		at = fs_cwd_is(&w, pid);
	if (at == 1)
		return pid;
	/* A pid whose directory cannot be read (pid 1 of some hosts) is the
	 * server only if no postgres process is seen working there and its
	 * name could be a server's. */
	found = fs_postgres_in(&w, p);
	if (found)
		return found;
	return at == -1 && !fs_comm_not_postgres(pid) ? pid : 0;
}

long fs_branch_server(struct fs *fs, const struct store_branch_info *bi,
		      long pid)
{
	struct fs_probe *p;
	struct fs_where w;
	long srv;

	/* The usual case, a live postmaster in its data directory, without
	 * a look at every process (the pg_checkpoint policy asks at each
	 * mkdir of a branch of a running cluster). */
	if (pid > 0 && (kill((pid_t)pid, 0) == 0 || errno == EPERM)) {
		fs_where_of(fs, bi, true, &w);
		if (w.known && fs_cwd_is(&w, pid) == 1)
			return pid;
	}
	if (fs_probe_make(fs, false, &p))
		return -1;
	srv = fs_branch_server_in(fs, bi, pid, p);
	fs_probe_free(p);
	return srv;
}

/* Rule 7 for a branch mounted elsewhere (fs_branch_bound): 0, or -EBUSY
 * with why set. */
static int fs_branch_not_bound(const struct store_branch_info *bi,
			       const struct fs_probe *p, char *why,
			       size_t whylen)
{
	const struct fs_probe_mnt *m = fs_branch_bound(p, bi->id);

	if (!m)
		return 0;
	if (why && m->pid)
		snprintf(why, whylen,
			 "branch '%s' is mounted at '%s' in the mount "
			 "namespace of pid %ld (a container's data "
			 "directory?): unmount it first",
			 bi->name, m->where, m->pid);
	else if (why)
		snprintf(why, whylen,
			 "branch '%s' is mounted at '%s' (a bind mount): "
			 "unmount it first",
			 bi->name, m->where);
	return -EBUSY;
}

int fs_branch_check(struct fs *fs, const struct store_branch_info *bi,
		    struct fs_probe *p, char *why, size_t whylen)
{
	int rc = fs_branch_no_postmaster(fs, bi, p, why, whylen);

	if (rc || !p->mounts)
		return rc;
	return fs_branch_not_bound(bi, p, why, whylen);
}

/* fs_branch_check with a look at the processes of its own (mounts:
 * also at the mounts). */
static int fs_branch_check_now(struct fs *fs,
			       const struct store_branch_info *bi, bool mounts,
			       char *why, size_t whylen)
{
	struct fs_probe *p;
	int rc;

	rc = fs_probe_for(fs, bi, mounts, &p, why, whylen);
	if (rc)
		return rc;
	rc = fs_branch_check(fs, bi, p, why, whylen);
	fs_probe_free(p);
	return rc;
}

int fs_branch_quiesce(struct fs *fs, const struct store_branch_info *bi,
		      char *why, size_t whylen)
{
	int rc;

	/* A branch with a server on it is refused before the wait for its
	 * files (a look at the Postgres processes only). */
	rc = fs_branch_check_now(fs, bi, false, why, whylen);
	if (rc)
		return rc;
	rc = fs_branch_hold(fs, bi, why, whylen);
	if (rc)
		return rc;
	/* Checked again with the branch held, as a postmaster may have
	 * started while we waited for files to close, and for mounts made
	 * elsewhere: one pass over /proc for both (it was one for each). */
	rc = fs_branch_check_now(fs, bi, true, why, whylen);
	if (rc)
		fs_branch_end_change(fs, bi->id);
	return rc;
}

int fs_branch_begin_change(struct fs *fs, uint64_t branch_id, char *why,
			   size_t whylen)
{
	struct store_branch_info bi;
	int rc;

	rc = store_branch_get(fs->store, branch_id, &bi);
	if (rc) {
		if (why)
			snprintf(why, whylen, "no branch with id %llu",
				 (unsigned long long)branch_id);
		return rc;
	}
	return fs_branch_quiesce(fs, &bi, why, whylen);
}

void fs_branch_end_change(struct fs *fs, uint64_t branch_id)
{
	struct fs_map_ent *e;

	pthread_mutex_lock(&fs->br_mu);
	fs_check_invariants(fs);
	e = fs_map_find(&fs->br, branch_id);
	if (e) {
		e->flags &= ~(uint32_t)FS_BR_CHANGING;
		if (fs_br_idle(e))
			fs_map_del(&fs->br, branch_id);
	}
	pthread_cond_broadcast(&fs->br_cv);
	fs_check_invariants(fs);
	pthread_mutex_unlock(&fs->br_mu);
}

/* ---- invalidation ---- */

int fs_invalidate_branch(struct fs *fs, uint64_t branch_id,
			 const char *old_name)
{
	struct store_branch_info bi;
	size_t n = 0;
	int rc = 0, r;

	r = store_branch_get(fs->store, branch_id, &bi);
	if (r == -ENOENT) {
		/* deleted */
		fs_epoch_drop(fs, branch_id);
		fs_old_names_free(fs_old_names_take(fs, branch_id));
	} else if (r == 0 && !old_name)
		old_name = bi.name;
	if (!fs->se || !fs->mounted)
		return 0;
	if (old_name) {
		r = fuse_lowlevel_notify_inval_entry(
			fs->se, FUSE_ROOT_ID, old_name, strlen(old_name));
		if (r && r != -ENOENT)
			rc = r;
	}
	fs_root_touch(fs);
	r = fuse_lowlevel_notify_inval_inode(fs->se, FUSE_ROOT_ID, 0, 0);
	if (r && r != -ENOENT && !rc)
		rc = r;
	r = fs_invalidate_nodes(fs, branch_id, 0, &n);
	if (r && !rc)
		rc = r;
	FS_DEBUG(fs, "invalidated branch %llu ('%s', %zu nodes): %d",
		 (unsigned long long)branch_id, old_name ? old_name : "?", n,
		 rc);
	return rc;
}

/* The node ids of branch_id the kernel knows whose entries have all of
 * flags, into *out (owned by the caller, freed with free()).  0, or
 * -ENOMEM with those collected so far. */
static int fs_nodes_of(struct fs *fs, uint64_t branch_id, uint32_t flags,
		       uint64_t **out, size_t *count)
{
	uint64_t *ids = NULL;
	size_t n = 0, cap = 0, i;
	int rc = 0;

	pthread_mutex_lock(&fs->nodes_mu);
	for (i = 0; i < fs->nodes.nb; i++) {
		struct fs_map_ent *e;

		for (e = fs->nodes.b[i]; e; e = e->next) {
			if (fs_branch_of(e->key) != branch_id ||
			    (e->flags & flags) != flags)
				continue;
			if (n == cap) {
				size_t nc = cap ? cap * 2 : 64;
				uint64_t *p = realloc(ids, nc * sizeof(*p));

				if (!p) {
					rc = -ENOMEM;
					goto out_unlock;
				}
				ids = p;
				cap = nc;
			}
			ids[n++] = e->key;
		}
	}
out_unlock:
	pthread_mutex_unlock(&fs->nodes_mu);
	*out = ids;
	*count = n;
	return rc;
}

int fs_invalidate_nodes(struct fs *fs, uint64_t branch_id, uint32_t flags,
			size_t *count)
{
	uint64_t *ids = NULL;
	size_t n = 0, i;
	int rc, r;

	*count = 0;
	if (!fs->se || !fs->mounted)
		return 0;
	rc = fs_nodes_of(fs, branch_id, flags, &ids, &n);
	for (i = 0; i < n; i++) {
		r = fuse_lowlevel_notify_inval_inode(fs->se, ids[i], 0, 0);
		if (r && r != -ENOENT && !rc)
			rc = r;
	}
	free(ids);
	*count = n;
	return rc;
}

/* Free a chain of lists (linked by next). */
static void fs_old_names_free(struct fs_old_names *o)
{
	while (o) {
		struct fs_old_names *next = o->next;
		size_t i;

		for (i = 0; i < o->n; i++)
			free(o->v[i].name);
		free(o->v);
		free(o);
		o = next;
	}
}

/* Unlink every list of the branch from fs->old_names (there is more than
 * one only after an ENOMEM in fs_reset_prepare): a chain owned by the
 * caller (freed with fs_old_names_free), or NULL. */
static struct fs_old_names *fs_old_names_take(struct fs *fs, uint64_t branch_id)
{
	struct fs_old_names **pp, *o, *taken = NULL;

	pthread_mutex_lock(&fs->nodes_mu);
	for (pp = &fs->old_names; *pp;) {
		o = *pp;
		if (o->branch != branch_id) {
			pp = &o->next;
			continue;
		}
		*pp = o->next;
		o->next = taken;
		taken = o;
	}
	pthread_mutex_unlock(&fs->nodes_mu);
	return taken;
}

static int fs_old_names_add(struct fs_old_names *o, uint64_t dir,
			    const char *name)
{
	if (o->n == o->cap) {
		size_t nc = o->cap ? o->cap * 2 : 64;
		struct fs_old_name *p = realloc(o->v, nc * sizeof(*p));

		if (!p)
			return -ENOMEM;
		o->v = p;
		o->cap = nc;
	}
	o->v[o->n].name = strdup(name);
	if (!o->v[o->n].name)
		return -ENOMEM;
	o->v[o->n++].dir = dir;
	return 0;
}

int fs_reset_prepare(struct fs *fs, uint64_t branch_id)
{
	struct fs_old_names *o, *prev, *next, *keep = NULL;
	uint64_t *dirs = NULL;
	size_t ndirs = 0, i, j;
	int rc;

	if (!fs->se || !fs->mounted)
		return 0;
	o = calloc(1, sizeof(*o));
	if (!o)
		return -ENOMEM;
	o->branch = branch_id;
	o->gen = fs_branch_gen(fs, branch_id);
	rc = fs_nodes_of(fs, branch_id, FS_NODE_DIR, &dirs, &ndirs);
	for (i = 0; rc == 0 && i < ndirs; i++) {
		struct store_dirent *ents = NULL;
		size_t n = 0;

		if (store_readdir(fs->store, branch_id, STORE_SEQ_LATEST,
				  fs_ino_of(dirs[i]), &ents, &n) != 0)
			continue; /* a directory of an older tree */
		for (j = 0; rc == 0 && j < n; j++)
			rc = fs_old_names_add(o, dirs[i], ents[j].name);
		free(ents);
	}
	free(dirs);
	/* With -ENOMEM, the names read so far are kept.  A list left by a
	 * reset that went through but whose fs_invalidate_tree has not run
	 * yet (this reset came between its end_change and its invalidation:
	 * the branch has another generation now) is kept too: merged into
	 * the new one, or, when memory runs out, kept whole beside it.  One
	 * left by a reset that failed (the same generation) is replaced. */
	prev = fs_old_names_take(fs, branch_id);
	for (; prev; prev = next) {
		next = prev->next;
		prev->next = NULL;
		for (i = 0; rc == 0 && prev->gen != o->gen && i < prev->n; i++)
			rc = fs_old_names_add(o, prev->v[i].dir,
					      prev->v[i].name);
		if (rc == 0 || prev->gen == o->gen) {
			fs_old_names_free(prev);
		} else {
			prev->next = keep;
			keep = prev;
		}
	}
	pthread_mutex_lock(&fs->nodes_mu);
	o->next = fs->old_names;
	fs->old_names = o;
	while (keep) {
		next = keep->next;
		keep->next = fs->old_names;
		fs->old_names = keep;
		keep = next;
	}
	pthread_mutex_unlock(&fs->nodes_mu);
	return rc;
}

int fs_invalidate_tree(struct fs *fs, uint64_t branch_id)
{
	struct fs_old_names *old, *p;
	uint64_t *dirs = NULL;
	size_t ndirs = 0, names = 0, onames = 0, i, j;
	int rc, r;

	if (!fs->se || !fs->mounted)
		return 0;
	rc = fs_nodes_of(fs, branch_id, FS_NODE_DIR, &dirs, &ndirs);
	for (i = 0; i < ndirs; i++) {
		struct store_dirent *ents = NULL;
		size_t n = 0;

		/* A directory of the old tree only: its names lead nowhere
		 * now (ENOENT), whatever the kernel holds. */
		r = store_readdir(fs->store, branch_id, STORE_SEQ_LATEST,
				  fs_ino_of(dirs[i]), &ents, &n);
		if (r && r != -ENOENT && r != -ENOTDIR && !rc)
			rc = r;
		for (j = 0; j < n; j++) {
			r = fuse_lowlevel_notify_inval_entry(
				fs->se, dirs[i], ents[j].name,
				strlen(ents[j].name));
			if (r && r != -ENOENT && !rc)
				rc = r;
		}
		names += n;
		free(ents);
	}
	free(dirs);
	/* The names before the reset (fs_reset_prepare): one in use while
	 * the kernel dropped the rest would lead on to its inode.  Many are
	 * the reset tree's too: the second drop of a name costs little. */
	old = fs_old_names_take(fs, branch_id);
	for (p = old; p; p = p->next) {
		for (i = 0; i < p->n; i++) {
			r = fuse_lowlevel_notify_inval_entry(
				fs->se, p->v[i].dir, p->v[i].name,
				strlen(p->v[i].name));
			if (r && r != -ENOENT && !rc)
				rc = r;
		}
		onames += p->n;
	}
	FS_DEBUG(
		fs,
		"invalidated %zu names (and %zu from before the reset) in %zu directories of branch %llu: %d",
		names, onames, ndirs, (unsigned long long)branch_id, rc);
	fs_old_names_free(old);
	return rc;
}
