/* SPDX-License-Identifier: MIT */
/*
 * test_store_nospace.c - cmocka test of the store on a full filesystem: a
 * real, small tmpfs mounted for the test (so this binary needs root, as
 * `make check` has).  Filling it must make writes fail with -ENOSPC (not
 * -EIO, not a crash), keep everything written before readable, and once
 * space is freed the store must take writes again, at the latest after a
 * reopen, with nothing lost.
 *
 * A compaction on a full disk: RocksDB's C API returns nothing from it, so
 * kv_compact must tell one that failed (-EIO, from RocksDB's count of
 * background errors); the keys it was to drop stay, and once there is room
 * again a compaction drops them.
 *
 * GC at a full disk: a deleted branch whose table files it shares with a
 * live branch cannot be dropped without a rewrite the disk has no room
 * for; GC must not try it (it would fail, and RocksDB would stop taking
 * writes), must keep the branch noted and say so, and the first GC once
 * there is room must drop it and shrink the store (DROP-1 in store.c).
 *
 * A cut of RocksDB's WAL at a hole (store/walscan.h) on a full disk: the
 * copy of what it cuts meets ENOSPC, first as a short write; the cut must
 * go on without the copy (it is for inspection only) rather than refuse
 * the open.
 *
 * The store runs in a child process (this binary re-executed with
 * --child, --kv-child or --gc-child), so that a crash in it is reported
 * as a failure and the parent still unmounts the tmpfs.
 */
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/mount.h>
#include <sys/statvfs.h>
#include <sys/wait.h>

#include <cmocka.h>

#include "tests/unit/test_store_common.h"
#include "store/kv.h"
#include "store/store_int.h"
#include "store/walscan.h"
#include "tests/unit/test_logbuf.h"

#define BS STORE_BLOCK_SIZE
#define CHUNK (16 * BS)

/* ---- child: the store on the small filesystem ---- */

#define NCHECK(cond, ...)                                                     \
	do {                                                                  \
		if (!(cond)) {                                                \
			fprintf(stderr, "  child: " __VA_ARGS__);             \
			fputc('\n', stderr);                                  \
			_exit(1);                                             \
		}                                                             \
	} while (0)

static int tstore_ns_create(struct store *s, uint64_t br, uint64_t dir,
			    const char *name, uint64_t *ino)
{
	struct store_attr a = tstore_attr(S_IFREG | 0644);

	return store_create(s, br, dir, name, &a, NULL, ino, NULL);
}

static bool tstore_ns_same(struct store *s, uint64_t br, uint64_t ino,
			   uint32_t seed, uint64_t off, size_t len,
			   unsigned char *buf, unsigned char *want)
{
	tstore_fill(want, len, seed, off);
	return store_read(s, br, STORE_SEQ_LATEST, ino, buf, len, off) ==
		       (ssize_t)len &&
	       memcmp(buf, want, len) == 0;
}

static int tstore_ns_child(const char *dir, const char *filler)
{
	unsigned char *buf = malloc(CHUNK), *want = malloc(CHUNK);
	struct store_branch_create_args a;
	struct store_branch_info bi;
	uint64_t keep, big, off = 0, size, br;
	struct store *s;
	ssize_t n = 0;
	int rc, i;

	NCHECK(buf && want, "no memory");
	rc = tstore_open_dir(dir, true, NULL, &s);
	NCHECK(rc == 0, "store_open = %d", rc);
	a = tstore_args("root", 0, STORE_SEQ_LATEST);
	rc = store_branch_create(s, &a, &bi);
	NCHECK(rc == 0, "branch create = %d", rc);
	br = bi.id;
	rc = tstore_ns_create(s, br, bi.root_ino, "keep", &keep);
	NCHECK(rc == 0, "create = %d", rc);
	tstore_fill(buf, 5 * BS + 3, 1, 0);
	n = store_write(s, br, keep, buf, 5 * BS + 3, 0, NULL);
	NCHECK(n == 5 * BS + 3, "write = %zd", n);
	rc = tstore_ns_create(s, br, bi.root_ino, "big", &big);
	NCHECK(rc == 0, "create = %d", rc);
	NCHECK(store_sync(s) == 0, "sync failed");

	/* incompressible data until the filesystem is full */
	for (i = 0; i < 4096; i++) {
		tstore_fill(buf, CHUNK, 1000 + (uint32_t)i, off);
		n = store_write(s, br, big, buf, CHUNK, off, NULL);
		if (n < 0)
			break;
		NCHECK(n == CHUNK, "short write %zd", n);
		off += CHUNK;
		if (i % 16 == 15) {
			rc = store_sync(s);
			if (rc < 0) {
				n = rc;
				break;
			}
		}
	}
	fprintf(stderr, "  child: filesystem full after %llu KiB: %zd\n",
		(unsigned long long)(off / 1024), n);
	NCHECK(n == -ENOSPC, "writing into a full filesystem gave %zd, want %d",
	       n, -ENOSPC);
	NCHECK(tstore_ns_same(s, br, keep, 1, 0, 5 * BS + 3, buf, want),
	       "data written before the filesystem filled up reads wrong");

	/* give space back: writes work again (after a reopen at worst) */
	NCHECK(unlink(filler) == 0, "unlink filler: %s", strerror(errno));
	n = store_write(s, br, keep, "after", 5, 0, NULL);
	if (n != 5) {
		fprintf(stderr,
			"  child: write after freeing space = %zd; reopening\n",
			n);
		store_close(s);
		rc = tstore_open_dir(dir, false, NULL, &s);
		NCHECK(rc == 0, "reopen after freeing space = %d", rc);
		n = store_write(s, br, keep, "after", 5, 0, NULL);
		NCHECK(n == 5, "after freeing space and a reopen, write = %zd",
		       n);
	}
	NCHECK(store_read(s, br, STORE_SEQ_LATEST, keep, buf, 5, 0) == 5 &&
		       memcmp(buf, "after", 5) == 0,
	       "the write after freeing space reads wrong");
	NCHECK(tstore_ns_same(s, br, keep, 1, 5, 5 * BS - 2, buf, want),
	       "old data lost after the filesystem filled up");
	{
		struct store_attr at;

		NCHECK(store_getattr(s, br, STORE_SEQ_LATEST, big, &at) == 0,
		       "getattr big");
		size = at.size;
	}
	for (off = 0; off + CHUNK <= size; off += CHUNK)
		NCHECK(tstore_ns_same(s, br, big, 1000 + (uint32_t)(off / CHUNK),
				      off, CHUNK, buf, want),
		       "chunk at %llu lost", (unsigned long long)off);
	NCHECK(store_close(s) == 0, "close failed");
	free(buf);
	free(want);
	_exit(0);
}

/* ---- the small filesystem's free space ---- */

/* Bytes free on dir's filesystem for an ordinary user. */
static uint64_t tstore_ns_avail(const char *dir)
{
	struct statvfs vfs;

	if (statvfs(dir, &vfs) != 0)
		return 0;
	return (uint64_t)vfs.f_bavail * vfs.f_frsize;
}

/* Wait until the free space on dir's filesystem stayed the same for a
 * second (at most 10 s): RocksDB's compactions of what was written have
 * ended. */
static void tstore_ns_settle(const char *dir)
{
	uint64_t last = 0, now;
	int i, same = 0;

	for (i = 0; i < 50 && same < 5; i++) {
		now = tstore_ns_avail(dir);
		same = now == last ? same + 1 : 0;
		last = now;
		tstore_sleep_ms(200);
	}
}

/* Fill dir's filesystem with the file path until keep bytes are free
 * (or none, if something else took them meanwhile). */
static int tstore_ns_fill_to(const char *dir, const char *path, uint64_t keep)
{
	static char buf[1 << 20];
	uint64_t avail = tstore_ns_avail(dir), want;
	int fd;

	if (avail <= keep)
		return 0;
	want = avail - keep;
	fd = open(path, O_CREAT | O_WRONLY | O_TRUNC, 0644);
	if (fd < 0)
		return -errno;
	memset(buf, 0x5a, sizeof(buf));
	while (want) {
		size_t n = want < sizeof(buf) ? want : sizeof(buf);

		if (write(fd, buf, n) != (ssize_t)n) {
			if (errno == ENOSPC)
				break;
			close(fd);
			return -errno;
		}
		want -= n;
	}
	close(fd);
	return 0;
}

/* ---- child: kv_compact on a full disk ---- */

#define KV_VLEN (64u << 10)

static void tstore_ns_key(unsigned char k[24], uint64_t id, uint64_t i)
{
	int b;

	for (b = 0; b < 8; b++) {
		k[7 - b] = (unsigned char)(id >> (8 * b));
		k[15 - b] = (unsigned char)(i >> (8 * b));
		k[23 - b] = 0;
	}
}

/* Does the block family hold a key of id, also one a range deletion
 * hides? */
static bool tstore_ns_kv_has(struct kv *kv, uint64_t id)
{
	unsigned char lo[24];
	struct kv_iter *it;
	bool has = false;

	tstore_ns_key(lo, id, 0);
	NCHECK(kv_iter_new(kv, KV_CF_BLOCK, 0, &it) == 0, "iter");
	kv_iter_seek(it, lo, 8);
	if (kv_iter_valid(it)) {
		size_t klen;
		const unsigned char *k = kv_iter_key(it, &klen);

		has = klen >= 8 && memcmp(k, lo, 8) == 0;
	}
	NCHECK(kv_iter_status(it) == 0, "iter status");
	kv_iter_free(it);
	return has;
}

/* Keys of ids 1 (16 MiB) and 2 (8 MiB) in the same table files, a range
 * deletion of id 2, and the filesystem filled to 4 MiB free: the
 * compaction that would drop id 2's keys rewrites id 1's 16 MiB, fails,
 * and kv_compact says so (RocksDB's C API does not); the keys stay.  With
 * room again a compaction drops them (once RocksDB has recovered). */
static int tstore_ns_kv_child(const char *dir, const char *filler)
{
	unsigned char *v = malloc(KV_VLEN), k[24], lo[8], hi[8];
	struct kv_batch b;
	char path[128];
	struct kv *kv;
	uint64_t i, n = 0;
	int rc = 0, tries;

	NCHECK(v, "no memory");
	NCHECK(mkdir(dir, 0755) == 0, "mkdir %s", dir);
	snprintf(path, sizeof(path), "%s/db", dir);
	NCHECK(kv_rocksdb_open(path, true, 8u << 20, 0, NULL, &kv) == 0,
	       "open");
	for (i = 0; i < 256; i++) {
		kv_batch_init(&b);
		tstore_fill(v, KV_VLEN, 3, i * KV_VLEN);
		tstore_ns_key(k, 1, i);
		kv_batch_put(&b, KV_CF_BLOCK, k, 24, v, KV_VLEN);
		if (i % 2 == 0) {
			tstore_fill(v, KV_VLEN, 4, i * KV_VLEN);
			tstore_ns_key(k, 2, i);
			kv_batch_put(&b, KV_CF_BLOCK, k, 24, v, KV_VLEN);
		}
		NCHECK(kv_write(kv, &b, false) == 0, "put %llu",
		       (unsigned long long)i);
		kv_batch_release(&b);
	}
	NCHECK(kv_count_deletions(kv, KV_CF_BLOCK, &n) == 0, "flush");
	tstore_ns_key(k, 2, 0);
	memcpy(lo, k, 8);
	tstore_ns_key(k, 3, 0);
	memcpy(hi, k, 8);
	kv_batch_init(&b);
	kv_batch_delete_range(&b, KV_CF_BLOCK, lo, 8, hi, 8);
	NCHECK(kv_write(kv, &b, false) == 0, "delete range");
	kv_batch_release(&b);
	tstore_ns_settle(dir);
	NCHECK(tstore_ns_fill_to(dir, filler, 4u << 20) == 0, "fill");

	rc = kv_compact(kv, KV_CF_BLOCK, lo, 8, hi, 8, true);
	fprintf(stderr,
		"  child: compaction at %llu KiB free = %d, keys left: %d\n",
		(unsigned long long)(tstore_ns_avail(dir) >> 10), rc,
		tstore_ns_kv_has(kv, 2));
	NCHECK(tstore_ns_kv_has(kv, 2),
	       "the compaction dropped the keys on the full disk: the test proves nothing");
	NCHECK(rc == -EIO,
	       "a compaction that failed on the full disk returned %d", rc);

	NCHECK(unlink(filler) == 0, "unlink filler: %s", strerror(errno));
	for (tries = 0; tries < 60 && tstore_ns_kv_has(kv, 2); tries++) {
		rc = kv_compact(kv, KV_CF_BLOCK, lo, 8, hi, 8, true);
		if (tstore_ns_kv_has(kv, 2))
			tstore_sleep_ms(500);
	}
	fprintf(stderr,
		"  child: with room, compaction %d after %d tries, keys left: %d\n",
		rc, tries + 1, tstore_ns_kv_has(kv, 2));
	NCHECK(!tstore_ns_kv_has(kv, 2),
	       "30 s after the space came back, a compaction still leaves the keys");
	NCHECK(rc == 0, "the compaction that dropped the keys returned %d", rc);
	kv_close(kv);
	free(v);
	_exit(0);
}

/* ---- child: a deleted branch's drop at a full disk ---- */

#define GC_CHUNK (128u << 10)

static ssize_t tstore_ns_write_chunk(struct store *s, uint64_t br, uint64_t ino,
				     uint32_t seed, uint64_t off,
				     unsigned char *buf)
{
	tstore_fill(buf, GC_CHUNK, seed, off);
	return store_write(s, br, ino, buf, GC_CHUNK, off, NULL);
}

/* main writes 32 MiB, other (its child) 8 MiB in between, so that every
 * table file of the block family holds keys of both; other is deleted and
 * the filesystem (80 MiB) filled to 2 MiB above the store's reserve.  GC
 * then has no room for the compaction that drops other's keys (it would
 * rewrite main's 32 MiB, more than the filesystem has free even without
 * the filler): the note stays, and RocksDB keeps taking writes.  Once the
 * filler is gone and the filesystem grown to 200 MiB, the next GC drops
 * them and the store shrinks. */
static int tstore_ns_gc_child(const char *dir, const char *filler)
{
	unsigned char *buf = malloc(GC_CHUNK);
	struct store_gc_opts o = { .full_compaction = true };
	struct store_branch_create_args a;
	struct store_branch_info bi;
	struct store_gc_stats st;
	struct store_stats ss;
	struct store *s_ns;
	uint64_t main_br, other, mf, of, keys = 0, before, after = 0;
	uint32_t i;
	ssize_t n;
	int rc;

	NCHECK(buf, "no memory");
	rc = tstore_open_dir(dir, true, NULL, &s_ns);
	NCHECK(rc == 0, "store_open = %d", rc);
	a = tstore_args("main", 0, STORE_SEQ_LATEST);
	NCHECK(store_branch_create(s_ns, &a, &bi) == 0, "create main");
	main_br = bi.id;
	NCHECK(tstore_ns_create(s_ns, main_br, bi.root_ino, "m", &mf) == 0,
	       "create m");
	a = tstore_args("other", main_br, STORE_SEQ_LATEST);
	NCHECK(store_branch_create(s_ns, &a, &bi) == 0, "create other");
	other = bi.id;
	NCHECK(tstore_ns_create(s_ns, other, bi.root_ino, "o", &of) == 0,
	       "create o");
	for (i = 0; i < 256; i++) {
		n = tstore_ns_write_chunk(s_ns, main_br, mf, 7,
					  (uint64_t)i * GC_CHUNK, buf);
		NCHECK(n == GC_CHUNK, "write main = %zd", n);
		if (i % 4)
			continue;
		n = tstore_ns_write_chunk(s_ns, other, of, 9,
					  (uint64_t)(i / 4) * GC_CHUNK, buf);
		NCHECK(n == GC_CHUNK, "write other = %zd", n);
	}
	NCHECK(store_sync(s_ns) == 0, "sync");
	/* into table files (a flush of the data families) */
	NCHECK(store_data_deletions(s_ns, &keys) == 0, "flush");
	NCHECK(store_branch_delete(s_ns, other) == 0, "delete other");
	tstore_ns_settle(dir);
	NCHECK(store_stats(s_ns, &ss) == 0, "stats");
	fprintf(stderr,
		"  child: store %llu KiB, reserve %llu KiB, %llu KiB free\n",
		(unsigned long long)(ss.disk_bytes >> 10),
		(unsigned long long)(ss.reserve_bytes >> 10),
		(unsigned long long)(ss.fs_avail_bytes >> 10));
	rc = tstore_ns_fill_to(dir, filler, ss.reserve_bytes + (2u << 20));
	NCHECK(rc == 0, "fill: %d", rc);

	rc = store_gc(s_ns, &o, &st);
	NCHECK(rc == 0, "gc at the full disk = %d", rc);
	NCHECK(store_branch_keys(s_ns, other, &keys) == 0, "keys");
	fprintf(stderr,
		"  child: gc at %llu KiB free: dropped %llu, pending %llu (no room: %d), keys of the deleted branch left: %llu\n",
		(unsigned long long)(tstore_ns_avail(dir) >> 10),
		(unsigned long long)st.branches_dropped,
		(unsigned long long)st.branches_pending, st.drop_no_room,
		(unsigned long long)keys);
	NCHECK(keys > 0, "the deleted branch's keys went without a rewrite: "
			 "the test proves nothing");
	NCHECK(store_deleted_pending(s_ns, NULL) == 1,
	       "the deleted branch is no longer noted while its %llu keys are still in the store",
	       (unsigned long long)keys);
	NCHECK(st.branches_dropped == 0 && st.branches_pending == 1 &&
		       st.drop_no_room,
	       "gc reported %llu dropped, %llu pending, no room %d",
	       (unsigned long long)st.branches_dropped,
	       (unsigned long long)st.branches_pending, st.drop_no_room);
	/* no compaction met the full disk: RocksDB takes writes */
	n = store_write(s_ns, main_br, mf, "x", 1, 0, NULL);
	NCHECK(n == 1, "a write after gc at the full disk = %zd", n);
	NCHECK(store_sync(s_ns) == 0, "sync after gc at the full disk");
	before = st.disk_after;

	/* room again: the next GC (the background kind) drops it */
	NCHECK(unlink(filler) == 0, "unlink filler: %s", strerror(errno));
	{
		char mnt[64];

		snprintf(mnt, sizeof(mnt), "%s", filler);
		*strrchr(mnt, '/') = 0;
		NCHECK(mount("tmpfs", mnt, "tmpfs", MS_REMOUNT, "size=200m") ==
			       0,
		       "grow the tmpfs: %s", strerror(errno));
	}
	o.full_compaction = false;
	rc = store_gc(s_ns, &o, &st);
	NCHECK(rc == 0, "gc with room = %d", rc);
	NCHECK(store_branch_keys(s_ns, other, &keys) == 0, "keys");
	NCHECK(st.branches_dropped == 1 && st.branches_pending == 0 &&
		       keys == 0 && store_deleted_pending(s_ns, NULL) == 0,
	       "gc with room: dropped %llu, pending %llu, %llu keys left",
	       (unsigned long long)st.branches_dropped,
	       (unsigned long long)st.branches_pending,
	       (unsigned long long)keys);
	/* RocksDB deletes the compaction's input files just after it */
	for (i = 0; i < 100; i++) {
		NCHECK(store_stats(s_ns, &ss) == 0, "stats");
		after = ss.disk_bytes;
		if (after + (4u << 20) <= before)
			break;
		tstore_sleep_ms(100);
	}
	fprintf(stderr, "  child: store %llu -> %llu KiB after the drop\n",
		(unsigned long long)(before >> 10),
		(unsigned long long)(after >> 10));
	NCHECK(after + (4u << 20) <= before,
	       "the store did not shrink by half the deleted branch's 8 MiB: %llu -> %llu KiB",
	       (unsigned long long)(before >> 10),
	       (unsigned long long)(after >> 10));
	NCHECK(store_read(s_ns, main_br, STORE_SEQ_LATEST, mf, buf, GC_CHUNK,
			  GC_CHUNK) == GC_CHUNK,
	       "read main");
	{
		unsigned char *want = malloc(GC_CHUNK);

		NCHECK(want, "no memory");
		tstore_fill(want, GC_CHUNK, 7, GC_CHUNK);
		NCHECK(memcmp(buf, want, GC_CHUNK) == 0,
		       "main's data reads wrong after the drop");
		free(want);
	}
	NCHECK(store_close(s_ns) == 0, "close failed");
	free(buf);
	_exit(0);
}

/* ---- parent: mount, run the child, unmount ---- */

struct tstore_nospace {
	char mnt[48];
	char dir[64];
	char filler[64];
};

/* A tmpfs of size, with a filler file of filler_mib MiB on it. */
static int tstore_nospace_setup_size(void **state, const char *size,
				     int filler_mib)
{
	struct tstore_nospace *t = calloc(1, sizeof(*t));
	static char buf[1 << 20];
	char opts[32];
	int fd, i;

	if (!t)
		return -1;
	tstore_mkdtemp(t->mnt, sizeof(t->mnt));
	snprintf(opts, sizeof(opts), "size=%s", size);
	if (mount("tmpfs", t->mnt, "tmpfs", 0, opts) != 0) {
		fprintf(stderr,
			"test_store_nospace: cannot mount a tmpfs on %s: %s (run as root)\n",
			t->mnt, strerror(errno));
		rmdir(t->mnt);
		free(t);
		return -1;
	}
	snprintf(t->dir, sizeof(t->dir), "%s/store", t->mnt);
	snprintf(t->filler, sizeof(t->filler), "%s/filler", t->mnt);
	fd = filler_mib ? open(t->filler, O_CREAT | O_WRONLY, 0644) : -1;
	memset(buf, 0x55, sizeof(buf));
	for (i = 0; fd >= 0 && i < filler_mib; i++)
		if (write(fd, buf, sizeof(buf)) != (ssize_t)sizeof(buf))
			break;
	if (fd >= 0)
		close(fd);
	*state = t;
	return 0;
}

/* 6 MiB to give back later */
static int tstore_nospace_setup(void **state)
{
	return tstore_nospace_setup_size(state, "24m", 6);
}

static int tstore_nospace_setup_kv(void **state)
{
	return tstore_nospace_setup_size(state, "64m", 0);
}

static int tstore_nospace_setup_walcut(void **state)
{
	return tstore_nospace_setup_size(state, "4m", 0);
}

static int tstore_nospace_setup_gc(void **state)
{
	return tstore_nospace_setup_size(state, "80m", 0);
}

static int tstore_nospace_teardown(void **state)
{
	struct tstore_nospace *t = *state;

	if (!t)
		return 0;
	if (umount2(t->mnt, 0) != 0)
		umount2(t->mnt, MNT_DETACH);
	rmdir(t->mnt);
	free(t);
	return 0;
}

/* Run this binary with mode, dir and filler in a child; it must exit 0. */
static void tstore_nospace_run(struct tstore_nospace *t, const char *mode)
{
	pid_t pid;
	int st = 0;

	fflush(NULL);
	pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		execl("/proc/self/exe", "test_store_nospace", mode, t->dir,
		      t->filler, (char *)NULL);
		_exit(127);
	}
	assert_int_equal(waitpid(pid, &st, 0), pid);
	if (WIFSIGNALED(st))
		fail_msg(
			"the store process died of signal %d (%s) on a full filesystem",
			WTERMSIG(st), strsignal(WTERMSIG(st)));
	assert_true(WIFEXITED(st));
	assert_int_equal(WEXITSTATUS(st), 0);
}

static void test_store_nospace_write_fails_cleanly(void **state)
{
	tstore_nospace_run(*state, "--child");
}

static void test_store_nospace_compact_failure_seen(void **state)
{
	tstore_nospace_run(*state, "--kv-child");
}

static void test_store_nospace_gc_keeps_what_it_cannot_drop(void **state)
{
	tstore_nospace_run(*state, "--gc-child");
}

/* A file of n KiB at dir/name. */
static void tstore_ns_file(const char *dir, const char *name, int kib)
{
	static char buf[1024];
	char p[128];
	int fd;

	snprintf(p, sizeof(p), "%s/%s", dir, name);
	fd = open(p, O_CREAT | O_WRONLY | O_TRUNC, 0600);
	assert_true(fd >= 0);
	memset(buf, 0x42, sizeof(buf));
	for (int i = 0; i < kib; i++)
		assert_int_equal(write(fd, buf, sizeof(buf)), sizeof(buf));
	close(fd);
}

/* The WAL cut on a full disk: 16 KiB free, a tail of 1 MiB to copy.  The
 * copy's first write is short (16 KiB of 64), its next one fails with
 * ENOSPC; the cut goes on without the copy, moves the later file aside
 * and truncates. */
static void test_store_nospace_wal_cut_full(void **state)
{
	struct tstore_nospace *t = *state;
	static struct tlog_buf lb;
	const struct store_log log = { tlog_buf_fn, &lb, STORE_LOG_WARN };
	struct walscan_hole hole = { .file = 7, .offset = 4096,
				     .seq_expected = 100, .seq_found = 201 };
	static char buf[1 << 16];
	char p[160];
	struct stat st;
	int fd, rc;

	assert_int_equal(mkdir(t->dir, 0700), 0);
	tstore_ns_file(t->dir, "000007.log", 1028);
	tstore_ns_file(t->dir, "000009.log", 64);
	hole.bytes = 1024 * 1024 + 64 * 1024;
	fd = open(t->filler, O_CREAT | O_WRONLY, 0644);
	assert_true(fd >= 0);
	while (write(fd, buf, sizeof(buf)) > 0)
		;
	assert_int_equal(ftruncate(fd, lseek(fd, 0, SEEK_END) - 16384), 0);
	close(fd);

	lb.text[0] = 0;
	errno = 0; /* no stale ENOSPC for a short write to be taken for */
	rc = walscan_cut(t->dir, &hole, &log);
	if (rc)
		fail_msg("walscan_cut: %d (%s): %s", rc, strerror(-rc), lb.text);
	assert_non_null(strstr(lb.text, "no room to keep a copy"));
	snprintf(p, sizeof(p), "%s/000007.log", t->dir);
	assert_int_equal(stat(p, &st), 0);
	assert_int_equal(st.st_size, 4096);
	snprintf(p, sizeof(p), "%s/BRANCHFS-WAL-HOLE/000009.log", t->dir);
	assert_int_equal(stat(p, &st), 0);
	snprintf(p, sizeof(p), "%s/BRANCHFS-WAL-HOLE/000007.log.tail", t->dir);
	assert_int_equal(stat(p, &st), -1);
}

int main(int argc, char **argv)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(
			test_store_nospace_write_fails_cleanly,
			tstore_nospace_setup, tstore_nospace_teardown),
		cmocka_unit_test_setup_teardown(
			test_store_nospace_compact_failure_seen,
			tstore_nospace_setup_kv, tstore_nospace_teardown),
		cmocka_unit_test_setup_teardown(
			test_store_nospace_gc_keeps_what_it_cannot_drop,
			tstore_nospace_setup_gc, tstore_nospace_teardown),
		cmocka_unit_test_setup_teardown(test_store_nospace_wal_cut_full,
						tstore_nospace_setup_walcut,
						tstore_nospace_teardown),
	};

	if (argc == 4 && strcmp(argv[1], "--child") == 0)
		return tstore_ns_child(argv[2], argv[3]);
	if (argc == 4 && strcmp(argv[1], "--kv-child") == 0)
		return tstore_ns_kv_child(argv[2], argv[3]);
	if (argc == 4 && strcmp(argv[1], "--gc-child") == 0)
		return tstore_ns_gc_child(argv[2], argv[3]);
	return cmocka_run_group_tests_name("store_nospace", tests, NULL, NULL);
}
