/* SPDX-License-Identifier: MIT */
/*
 * powercut.c - an LD_PRELOAD library that records what a power cut would
 * leave of the files under one directory, so that a test can cut the power
 * of a process without a virtual machine or device-mapper.
 *
 * kill -9 of branchd proves nothing about fsync: the kernel still holds
 * every byte branchd wrote, synced or not, and writes it out later.  A power
 * cut keeps only what was synced.  This library keeps, beside the real
 * files, a shadow copy of each as of its last fsync; after the process is
 * killed, tests/powercut/powercut_image.py rebuilds the directory from the
 * shadows (plus, at random, some of the unsynced pages, as a disk may write
 * any of them before the power goes).
 *
 * Environment (read once, at the first intercepted call):
 *   POWERCUT_DIR     the directory whose files are tracked (the store; it
 *                    may not exist yet)
 *   POWERCUT_SHADOW  where the shadows go (a fresh directory per process;
 *                    the same file system or another, not under DIR)
 *   POWERCUT_LIE     a path: while it exists, fsync updates no shadow (a
 *                    disk whose cache flush lies), for proving that a test
 *                    catches lost writes
 * Without DIR and SHADOW, every call passes straight through.
 *
 * The model, per regular file under DIR (found by st_dev/st_ino and the
 * inode's generation, FS_IOC_GETVERSION; the path is only looked at the first
 * time an inode is written, and at creation):
 *  - The first write to a file that existed before this process wrote it
 *    copies the file to SHADOW/<ino> first: what was there is durable (the
 *    process opened a store left by a clean stop, a kill -9, or an earlier
 *    power cut's image).  The copy appears under that name only whole: a
 *    process killed while copying leaves no shadow, and the file as it was.
 *    A file created by this process starts with an empty shadow.
 *  - write, pwrite, writev, pwritev(2) and fallocate (except a pure
 *    KEEP_SIZE preallocation) mark their byte range dirty.  ftruncate needs
 *    no hook: the size is taken at sync time.
 *  - fsync and fdatasync copy the dirty ranges of that file into its shadow
 *    and set the shadow's size to the file's, then sync for real.  A process
 *    killed in the middle leaves a partly updated shadow: a legal outcome of
 *    a power cut during an fsync that never returned.
 *  - sync_file_range, sync and syncfs promise nothing here (the first never
 *    does; the others are not used by the store, and treating them as no-ops
 *    is the pessimistic choice).
 *  - Names (create, rename, unlink, mkdir) are taken as durable at once:
 *    the model tests the data path (RocksDB's WAL and SSTs, the fsync
 *    journal), not directory fsyncs.
 * Shadows are named SHADOW/<ino>.<generation>.  The generation tells apart
 * two files that had the same inode number one after the other: a file
 * created just after another was deleted often gets its number, and a
 * process killed between that creation and the reset of the shadow (the
 * creating thread may wait for the library's lock while another copies a
 * large file for its fsync) left the old file's shadow under the number;
 * the image then gave the new file the old one's synced content (seen in
 * tests/stress/powercut_store.py: a new RocksDB WAL file came back holding a
 * deleted one's batches, older than every live one, and RocksDB aborted on
 * it).  With the generation in the name, that shadow is not the new
 * file's: the new file, written by nobody yet, stays as it is (empty).  A
 * file system without generations (tmpfs) gives 0: as before.
 * Writes that bypass the PLT (glibc's own fwrite, used by RocksDB's LOG) are
 * not seen; such files keep whatever they hold.
 *
 * The library aborts with a message on any failure of its own: a test that
 * silently lost track of a write would prove nothing.
 */
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <linux/fs.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/uio.h>
#include <unistd.h>

enum pc_state { PC_UNKNOWN = 0, PC_OUTSIDE, PC_TRACKED };

struct pc_range {
	uint64_t lo, hi;
};

struct pc_file {
	struct pc_file *next;
	ino_t ino;
	unsigned gen; /* the inode's generation: which file had the number */
	enum pc_state state;
	struct pc_range *r; /* dirty ranges, sorted, disjoint */
	size_t nr, cap;
};

#define PC_BUCKETS 4096

static struct {
	pthread_once_t once;
	pthread_mutex_t mu;
	bool on;
	const char *lie;
	dev_t dev;
	char dir[PATH_MAX];
	size_t dirlen;
	char shadow[PATH_MAX - 32];
	struct pc_file *tab[PC_BUCKETS];
	int (*open)(const char *, int, ...);
	int (*openat)(int, const char *, int, ...);
	ssize_t (*write)(int, const void *, size_t);
	ssize_t (*pwrite)(int, const void *, size_t, off_t);
	ssize_t (*writev)(int, const struct iovec *, int);
	ssize_t (*pwritev)(int, const struct iovec *, int, off_t);
	ssize_t (*pwritev2)(int, const struct iovec *, int, off_t, int);
	int (*fallocate)(int, int, off_t, off_t);
	int (*fsync)(int);
	int (*fdatasync)(int);
} pc = { .once = PTHREAD_ONCE_INIT, .mu = PTHREAD_MUTEX_INITIALIZER };

__attribute__((noreturn, format(printf, 1, 2))) static void
pc_die(const char *fmt, ...)
{
	char buf[1024];
	va_list ap;
	int n;

	va_start(ap, fmt);
	n = vsnprintf(buf, sizeof(buf) - 1, fmt, ap);
	va_end(ap);
	if (n < 0)
		n = 0;
	if ((size_t)n > sizeof(buf) - 2)
		n = (int)sizeof(buf) - 2;
	buf[n++] = '\n';
	if (pc.write)
		(void)!pc.write(2, "powercut: ", 10),
			(void)!pc.write(2, buf, (size_t)n);
	abort();
}

static void *pc_sym(const char *name)
{
	void *p = dlsym(RTLD_NEXT, name);

	if (!p)
		pc_die("dlsym(%s): %s", name, dlerror());
	return p;
}

static void pc_init(void)
{
	const char *d = getenv("POWERCUT_DIR"), *s = getenv("POWERCUT_SHADOW");
	struct stat st;

	pc.open = pc_sym("open");
	pc.openat = pc_sym("openat");
	pc.write = pc_sym("write");
	pc.pwrite = pc_sym("pwrite");
	pc.writev = pc_sym("writev");
	pc.pwritev = pc_sym("pwritev");
	pc.pwritev2 = pc_sym("pwritev2");
	pc.fallocate = pc_sym("fallocate");
	pc.fsync = pc_sym("fsync");
	pc.fdatasync = pc_sym("fdatasync");
	if (!d || !*d || !s || !*s)
		return;
	/* A DIR that does not exist yet (a new store, which branchd makes
	 * after its first calls) is its parent's real path plus its name. */
	if (!realpath(d, pc.dir)) {
		char parent[PATH_MAX], real[PATH_MAX];
		const char *slash = strrchr(d, '/');

		if (errno != ENOENT || !slash || !slash[1] ||
		    (size_t)(slash - d) >= sizeof(parent))
			pc_die("POWERCUT_DIR '%s': %s", d, strerror(errno));
		memcpy(parent, d, (size_t)(slash - d));
		parent[slash - d] = 0;
		if (!realpath(parent[0] ? parent : "/", real))
			pc_die("POWERCUT_DIR '%s': %s", d, strerror(errno));
		if (snprintf(pc.dir, sizeof(pc.dir), "%s/%s",
			     strcmp(real, "/") ? real : "",
			     slash + 1) >= (int)sizeof(pc.dir))
			pc_die("POWERCUT_DIR too long");
		if (stat(real, &st) != 0)
			pc_die("stat '%s': %s", real, strerror(errno));
	} else if (stat(pc.dir, &st) != 0) {
		pc_die("stat '%s': %s", pc.dir, strerror(errno));
	}
	pc.dev = st.st_dev;
	pc.dirlen = strlen(pc.dir);
	if (snprintf(pc.shadow, sizeof(pc.shadow), "%s", s) >=
	    (int)sizeof(pc.shadow))
		pc_die("POWERCUT_SHADOW too long");
	if (mkdir(pc.shadow, 0700) != 0 && errno != EEXIST)
		pc_die("mkdir '%s': %s", pc.shadow, strerror(errno));
	pc.lie = getenv("POWERCUT_LIE");
	pc.on = true;
}

static bool pc_enabled(void)
{
	pthread_once(&pc.once, pc_init);
	return pc.on;
}

static struct pc_file *pc_file_get(ino_t ino)
{
	struct pc_file **b = &pc.tab[ino % PC_BUCKETS], *f;

	for (f = *b; f; f = f->next)
		if (f->ino == ino)
			return f;
	f = calloc(1, sizeof(*f));
	if (!f)
		pc_die("out of memory");
	f->ino = ino;
	f->next = *b;
	*b = f;
	return f;
}

static void pc_shadow_path(const struct pc_file *f, char *buf, size_t sz)
{
	if (snprintf(buf, sz, "%s/%ju.%u", pc.shadow, (uintmax_t)f->ino,
		     f->gen) >= (int)sz)
		pc_die("shadow path too long");
}

/* The generation of the inode open on fd, 0 where the file system has none
 * (the ioctl's argument is an int, whatever its name says). */
static unsigned pc_gen(int fd)
{
	int g = 0;

	if (ioctl(fd, FS_IOC_GETVERSION, &g) != 0)
		return 0;
	return (unsigned)g;
}

/* Is the file open on fd under DIR?  Judged by its current path. */
static bool pc_fd_inside(int fd)
{
	char link[64], path[PATH_MAX];
	ssize_t n;

	snprintf(link, sizeof(link), "/proc/self/fd/%d", fd);
	n = readlink(link, path, sizeof(path) - 1);
	if (n < 0)
		return false;
	path[n] = 0;
	return (size_t)n > pc.dirlen && memcmp(path, pc.dir, pc.dirlen) == 0 &&
	       path[pc.dirlen] == '/';
}

static int pc_reopen_ro(int fd)
{
	char link[64];
	int rfd;

	snprintf(link, sizeof(link), "/proc/self/fd/%d", fd);
	rfd = pc.open(link, O_RDONLY | O_CLOEXEC);
	if (rfd < 0)
		pc_die("reopen %s: %s", link, strerror(errno));
	return rfd;
}

static void pc_copy(int from, int to, uint64_t lo, uint64_t hi)
{
	char buf[65536];

	while (lo < hi) {
		size_t want = hi - lo < sizeof(buf) ? (size_t)(hi - lo) :
						      sizeof(buf);
		ssize_t n = pread(from, buf, want, (off_t)lo);

		if (n < 0)
			pc_die("pread: %s", strerror(errno));
		if (n == 0)
			return; /* past the end: the size is set apart */
		if (pc.pwrite(to, buf, (size_t)n, (off_t)lo) != n)
			pc_die("shadow pwrite: %s", strerror(errno));
		lo += (uint64_t)n;
	}
}

/* The file on fd is durable as it is now: the shadow starts from it.  The
 * copy is made under another name and renamed into place: a process killed
 * (or dying here) in the middle of copying a large file leaves no shadow,
 * so the image keeps the file as it was, where a partial copy would have
 * been taken for its synced content and cut the file short. */
static void pc_shadow_baseline(int fd, const struct pc_file *f, bool empty)
{
	char sp[PATH_MAX], tmp[PATH_MAX + 8];
	struct stat st;
	int sfd, rfd;

	pc_shadow_path(f, sp, sizeof(sp));
	snprintf(tmp, sizeof(tmp), "%s.tmp", sp);
	sfd = pc.open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	if (sfd < 0)
		pc_die("create shadow '%s': %s", tmp, strerror(errno));
	if (!empty) {
		rfd = pc_reopen_ro(fd);
		if (fstat(rfd, &st) != 0)
			pc_die("fstat: %s", strerror(errno));
		pc_copy(rfd, sfd, 0, (uint64_t)st.st_size);
		if (ftruncate(sfd, st.st_size) != 0)
			pc_die("shadow ftruncate: %s", strerror(errno));
		close(rfd);
	}
	close(sfd);
	if (rename(tmp, sp) != 0)
		pc_die("rename shadow '%s': %s", tmp, strerror(errno));
}

/* The tracked file behind fd, or NULL; called with pc.mu held. */
static struct pc_file *pc_lookup(int fd)
{
	struct pc_file *f;
	struct stat st;
	unsigned gen;

	if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode) || st.st_dev != pc.dev)
		return NULL;
	gen = pc_gen(fd);
	f = pc_file_get(st.st_ino);
	if (f->gen != gen) {
		/* another file than the one known under this number, which
		 * this process did not create: decided afresh */
		f->gen = gen;
		f->state = PC_UNKNOWN;
		f->nr = 0;
	}
	if (f->state == PC_UNKNOWN) {
		if (pc_fd_inside(fd)) {
			pc_shadow_baseline(fd, f, false);
			f->state = PC_TRACKED;
		} else {
			f->state = PC_OUTSIDE;
		}
	}
	return f->state == PC_TRACKED ? f : NULL;
}

static void pc_mark(struct pc_file *f, uint64_t lo, uint64_t hi)
{
	size_t i, j;

	if (lo >= hi)
		return;
	/* merge with every range it touches */
	for (i = 0; i < f->nr && f->r[i].hi < lo; i++)
		;
	for (j = i; j < f->nr && f->r[j].lo <= hi; j++) {
		if (f->r[j].lo < lo)
			lo = f->r[j].lo;
		if (f->r[j].hi > hi)
			hi = f->r[j].hi;
	}
	if (j == i) { /* insert at i */
		if (f->nr == f->cap) {
			size_t cap = f->cap ? f->cap * 2 : 8;
			struct pc_range *r = realloc(f->r, cap * sizeof(*r));

			if (!r)
				pc_die("out of memory");
			f->r = r;
			f->cap = cap;
		}
		memmove(f->r + i + 1, f->r + i, (f->nr - i) * sizeof(*f->r));
		f->nr++;
	} else if (j > i + 1) { /* ranges i..j-1 become one */
		memmove(f->r + i + 1, f->r + j, (f->nr - j) * sizeof(*f->r));
		f->nr -= j - i - 1;
	}
	f->r[i].lo = lo;
	f->r[i].hi = hi;
}

/* Record that [off, off+n) of fd's file changed; off < 0: the write ended
 * at the file offset.  n <= 0 (a failed or empty write) records nothing.
 * Keeps errno, so that wrappers return the real call's. */
static void pc_note(int fd, off_t off, ssize_t n)
{
	int saved = errno;
	struct pc_file *f;

	if (n <= 0)
		return;
	pthread_mutex_lock(&pc.mu);
	f = pc_lookup(fd);
	if (f) {
		if (off < 0) {
			off_t end = lseek(fd, 0, SEEK_CUR);

			if (end < 0)
				pc_die("lseek: %s", strerror(errno));
			off = end - n;
		}
		pc_mark(f, (uint64_t)off, (uint64_t)off + (uint64_t)n);
	}
	pthread_mutex_unlock(&pc.mu);
	errno = saved;
}

/* Before a write: make sure an existing file's shadow is taken from its
 * content before the write changes it. */
static void pc_before(int fd)
{
	pthread_mutex_lock(&pc.mu);
	(void)pc_lookup(fd);
	pthread_mutex_unlock(&pc.mu);
}

static void pc_sync(int fd)
{
	char sp[PATH_MAX];
	struct pc_file *f;
	struct stat st;
	int rfd, sfd;

	pthread_mutex_lock(&pc.mu);
	f = pc_lookup(fd);
	if (f && !(pc.lie && access(pc.lie, F_OK) == 0)) {
		if (fstat(fd, &st) != 0)
			pc_die("fstat: %s", strerror(errno));
		pc_shadow_path(f, sp, sizeof(sp));
		sfd = pc.open(sp, O_WRONLY | O_CLOEXEC);
		if (sfd < 0)
			pc_die("open shadow '%s': %s", sp, strerror(errno));
		rfd = pc_reopen_ro(fd);
		for (size_t i = 0; i < f->nr; i++)
			pc_copy(rfd, sfd, f->r[i].lo, f->r[i].hi);
		if (ftruncate(sfd, st.st_size) != 0)
			pc_die("shadow ftruncate: %s", strerror(errno));
		close(rfd);
		close(sfd);
		f->nr = 0;
	}
	pthread_mutex_unlock(&pc.mu);
}

/* After an open that may have created the file: a file this process
 * created starts with an empty shadow; any open re-decides whether the
 * inode (perhaps reused) is inside DIR. */
static void pc_opened(int fd, bool created)
{
	struct pc_file *f;
	struct stat st;
	unsigned gen;

	if (fd < 0 || fstat(fd, &st) != 0 || !S_ISREG(st.st_mode) ||
	    st.st_dev != pc.dev)
		return;
	gen = pc_gen(fd);
	pthread_mutex_lock(&pc.mu);
	f = pc_file_get(st.st_ino);
	if (created || f->gen != gen) {
		f->gen = gen;
		f->nr = 0;
		f->state = PC_UNKNOWN;
	}
	if (created) {
		if (pc_fd_inside(fd)) {
			pc_shadow_baseline(fd, f, true);
			f->state = PC_TRACKED;
		} else {
			f->state = PC_OUTSIDE;
		}
	} else if (f->state == PC_OUTSIDE) {
		f->state = PC_UNKNOWN; /* decided again at its first write */
	}
	pthread_mutex_unlock(&pc.mu);
}

static bool pc_exists(int dirfd, const char *path)
{
	struct stat st;

	return fstatat(dirfd, path, &st, 0) == 0;
}

/* open(2) goes on as open, not openat: a ThreadSanitizer build of branchd
 * (make sanitizer-drive) learns of the files it opens through its open
 * interceptor, and GCC 12's has none for openat; without it TSan missed the
 * order the kernel gives to requests read from /dev/fuse and reported a
 * race between every two FUSE requests on one handle (t20). */
static int pc_real_openat(int dirfd, const char *path, int flags, mode_t mode)
{
	return dirfd == AT_FDCWD ? pc.open(path, flags, mode) :
				   pc.openat(dirfd, path, flags, mode);
}

static int pc_do_openat(int dirfd, const char *path, int flags, mode_t mode)
{
	bool existed = false;
	int fd;

	if (!pc_enabled())
		return pc_real_openat(dirfd, path, flags, mode);
	if (flags & O_CREAT)
		existed = pc_exists(dirfd, path);
	fd = pc_real_openat(dirfd, path, flags, mode);
	if (fd >= 0 && (flags & O_ACCMODE) != O_RDONLY) {
		int saved = errno;

		pc_opened(fd, (flags & O_CREAT) && !existed);
		errno = saved;
	}
	return fd;
}

static mode_t pc_mode_arg(int flags, va_list ap)
{
	/* O_TMPFILE includes O_DIRECTORY: only all of its bits mean it */
	bool has = (flags & O_CREAT) || (flags & O_TMPFILE) == O_TMPFILE;

	return has ? (mode_t)va_arg(ap, int) : 0;
}

int open(const char *path, int flags, ...)
{
	va_list ap;
	mode_t m;

	va_start(ap, flags);
	m = pc_mode_arg(flags, ap);
	va_end(ap);
	pthread_once(&pc.once, pc_init);
	return pc_do_openat(AT_FDCWD, path, flags, m);
}

int open64(const char *path, int flags, ...) __attribute__((alias("open")));

int openat(int dirfd, const char *path, int flags, ...)
{
	va_list ap;
	mode_t m;

	va_start(ap, flags);
	m = pc_mode_arg(flags, ap);
	va_end(ap);
	pthread_once(&pc.once, pc_init);
	return pc_do_openat(dirfd, path, flags, m);
}

int openat64(int dirfd, const char *path, int flags, ...)
	__attribute__((alias("openat")));

int __open_2(const char *path, int flags)
{
	pthread_once(&pc.once, pc_init);
	return pc_do_openat(AT_FDCWD, path, flags, 0);
}

int __open64_2(const char *path, int flags) __attribute__((alias("__open_2")));

int __openat_2(int dirfd, const char *path, int flags)
{
	pthread_once(&pc.once, pc_init);
	return pc_do_openat(dirfd, path, flags, 0);
}

int __openat64_2(int dirfd, const char *path, int flags)
	__attribute__((alias("__openat_2")));

int creat(const char *path, mode_t mode)
{
	pthread_once(&pc.once, pc_init);
	return pc_do_openat(AT_FDCWD, path, O_WRONLY | O_CREAT | O_TRUNC, mode);
}

int creat64(const char *path, mode_t mode) __attribute__((alias("creat")));

/* The body of each write wrapper: real_call is the call of the real
 * function, off the offset it writes at (-1: at the file offset). */
#define PC_WRITE(fd, off, real_call)      \
	do {                              \
		ssize_t rc_;              \
                                          \
		if (!pc_enabled())        \
			return real_call; \
		pc_before(fd);            \
		rc_ = real_call;          \
		pc_note(fd, off, rc_);    \
		return rc_;               \
	} while (0)

ssize_t write(int fd, const void *buf, size_t n)
{
	PC_WRITE(fd, -1, pc.write(fd, buf, n));
}

ssize_t pwrite(int fd, const void *buf, size_t n, off_t off)
{
	PC_WRITE(fd, off, pc.pwrite(fd, buf, n, off));
}

ssize_t pwrite64(int fd, const void *buf, size_t n, off_t off)
	__attribute__((alias("pwrite")));

ssize_t writev(int fd, const struct iovec *iov, int cnt)
{
	PC_WRITE(fd, -1, pc.writev(fd, iov, cnt));
}

ssize_t pwritev(int fd, const struct iovec *iov, int cnt, off_t off)
{
	PC_WRITE(fd, off, pc.pwritev(fd, iov, cnt, off));
}

ssize_t pwritev64(int fd, const struct iovec *iov, int cnt, off_t off)
	__attribute__((alias("pwritev")));

/* off -1: at (and moving) the file offset, as PC_WRITE takes it */
ssize_t pwritev2(int fd, const struct iovec *iov, int cnt, off_t off, int fl)
{
	PC_WRITE(fd, off, pc.pwritev2(fd, iov, cnt, off, fl));
}

ssize_t pwritev64v2(int fd, const struct iovec *iov, int cnt, off_t off, int fl)
	__attribute__((alias("pwritev2")));

int fallocate(int fd, int mode, off_t off, off_t len)
{
	int rc;

	if (!pc_enabled())
		return pc.fallocate(fd, mode, off, len);
	pc_before(fd);
	rc = pc.fallocate(fd, mode, off, len);
	/* a pure preallocation changes no byte a reader sees */
	if (rc == 0 && mode != FALLOC_FL_KEEP_SIZE)
		pc_note(fd, off, (ssize_t)len);
	return rc;
}

int fallocate64(int fd, int mode, off_t off, off_t len)
	__attribute__((alias("fallocate")));

int fsync(int fd)
{
	if (pc_enabled())
		pc_sync(fd);
	return pc.fsync(fd);
}

int fdatasync(int fd)
{
	if (pc_enabled())
		pc_sync(fd);
	return pc.fdatasync(fd);
}
