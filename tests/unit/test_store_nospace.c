/* SPDX-License-Identifier: MIT */
/*
 * test_store_nospace.c - cmocka test of the store on a full filesystem: a
 * real, small tmpfs mounted for the test (so this binary needs root, as
 * `make check` has).  Filling it must make writes fail with -ENOSPC (not
 * -EIO, not a crash), keep everything written before readable, and once
 * space is freed the store must take writes again, at the latest after a
 * reopen, with nothing lost.
 *
 * The store runs in a child process (this binary re-executed with
 * --child), so that a crash in it is reported as a failure and the parent
 * still unmounts the tmpfs.
 */
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/mount.h>
#include <sys/wait.h>

#include <cmocka.h>

#include "tests/unit/test_store_common.h"

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

/* ---- parent: mount, run the child, unmount ---- */

struct tstore_nospace {
	char mnt[48];
	char dir[64];
	char filler[64];
};

static int tstore_nospace_setup(void **state)
{
	struct tstore_nospace *t = calloc(1, sizeof(*t));
	static char buf[1 << 20];
	int fd, i;

	if (!t)
		return -1;
	tstore_mkdtemp(t->mnt, sizeof(t->mnt));
	if (mount("tmpfs", t->mnt, "tmpfs", 0, "size=24m") != 0) {
		fprintf(stderr,
			"test_store_nospace: cannot mount a tmpfs on %s: %s (run as root)\n",
			t->mnt, strerror(errno));
		rmdir(t->mnt);
		free(t);
		return -1;
	}
	snprintf(t->dir, sizeof(t->dir), "%s/store", t->mnt);
	snprintf(t->filler, sizeof(t->filler), "%s/filler", t->mnt);
	/* 6 MiB to give back later */
	fd = open(t->filler, O_CREAT | O_WRONLY, 0644);
	memset(buf, 0x55, sizeof(buf));
	for (i = 0; fd >= 0 && i < 6; i++)
		if (write(fd, buf, sizeof(buf)) != (ssize_t)sizeof(buf))
			break;
	if (fd >= 0)
		close(fd);
	*state = t;
	return 0;
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

static void test_store_nospace_write_fails_cleanly(void **state)
{
	struct tstore_nospace *t = *state;
	pid_t pid;
	int st = 0;

	fflush(NULL);
	pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		execl("/proc/self/exe", "test_store_nospace", "--child", t->dir,
		      t->filler, (char *)NULL);
		_exit(127);
	}
	assert_int_equal(waitpid(pid, &st, 0), pid);
	if (WIFSIGNALED(st))
		fail_msg("the store process died of signal %d (%s) on a full filesystem",
			 WTERMSIG(st), strsignal(WTERMSIG(st)));
	assert_true(WIFEXITED(st));
	assert_int_equal(WEXITSTATUS(st), 0);
}

int main(int argc, char **argv)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(
			test_store_nospace_write_fails_cleanly,
			tstore_nospace_setup, tstore_nospace_teardown),
	};

	if (argc == 4 && strcmp(argv[1], "--child") == 0)
		return tstore_ns_child(argv[2], argv[3]);
	return cmocka_run_group_tests_name("store_nospace", tests, NULL, NULL);
}
