/* SPDX-License-Identifier: MIT */
/*
 * test_store_persist.c - cmocka tests of the store's durability and locking
 * across processes, on real RocksDB:
 *  - a child process that writes, calls store_sync() and _exit()s without
 *    store_close() loses nothing it synced;
 *  - a child killed with SIGKILL in the middle of a stream of writes leaves
 *    a prefix of its writes (each write all or nothing), including every
 *    synced one, and inode numbers and seqs keep increasing after reopen;
 *  - a store is locked: a second handle in this process, or a handle in
 *    another process, gets -EBUSY while the first is open.
 *
 * Children are forked and then re-execute this binary (/proc/self/exe) with
 * a --child-* argument: forking a process that has run RocksDB's
 * background threads and using RocksDB in the child without exec is not
 * safe (locks held by threads that do not exist in the child).
 */
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/wait.h>

#include <cmocka.h>

#include "tests/unit/test_store_common.h"

#define REC 1000u       /* bytes per record in the "log" file */
#define NSYNCED 300u    /* records written before store_sync */

/* ---- child side (runs in the re-executed binary) ---- */

static int tstore_child_open(const char *dir, struct store **s, uint64_t *br,
			     uint64_t *root)
{
	struct store_branch_info bi;
	int rc = tstore_open_dir(dir, false, NULL, s);

	if (rc)
		return rc;
	rc = store_branch_lookup(*s, "root", &bi);
	if (rc)
		return rc;
	*br = bi.id;
	*root = bi.root_ino;
	return 0;
}

static int tstore_child_create(struct store *s, uint64_t br, uint64_t dir,
			       const char *name, uint32_t mode, uint64_t *ino)
{
	struct store_attr a = tstore_attr(mode);

	return store_create(s, br, dir, name, &a, NULL, ino, NULL);
}

static int tstore_child_record(struct store *s, uint64_t br, uint64_t ino,
			       uint32_t k)
{
	unsigned char buf[REC];

	tstore_fill(buf, REC, k, (uint64_t)k * REC);
	return store_write(s, br, ino, buf, REC, (uint64_t)k * REC, NULL) ==
			       (ssize_t)REC ?
		       0 :
		       -EIO;
}

/* Write NSYNCED records and 20 files, sync, report "synced" on stdout;
 * then either _exit(0) at once (mode "exit") or keep writing records until
 * killed (mode "stream"). */
static int tstore_child_write(const char *dir, const char *mode)
{
	struct store *s;
	uint64_t br, root, log, d, ino;
	char name[32];
	uint32_t k;
	int rc, i;

	rc = tstore_child_open(dir, &s, &br, &root);
	if (rc)
		goto out;
	rc = tstore_child_create(s, br, root, "log", S_IFREG | 0644, &log);
	if (rc)
		goto out;
	rc = tstore_child_create(s, br, root, "d", S_IFDIR | 0755, &d);
	if (rc)
		goto out;
	for (i = 0; i < 20 && !rc; i++) {
		snprintf(name, sizeof(name), "f%02d", i);
		rc = tstore_child_create(s, br, d, name, S_IFREG | 0644, &ino);
		if (!rc)
			rc = store_write(s, br, ino, name, strlen(name), 0,
					 NULL) == (ssize_t)strlen(name) ?
				     0 :
				     -EIO;
	}
	for (k = 0; k < NSYNCED && !rc; k++)
		rc = tstore_child_record(s, br, log, k);
	if (!rc)
		rc = store_unlink(s, br, d, "f07");
	if (!rc)
		rc = store_sync(s);
	if (rc)
		goto out;
	printf("synced %llu\n", (unsigned long long)store_seq_now(s));
	fflush(stdout);
	if (strcmp(mode, "stream") == 0) {
		for (k = NSYNCED; k < 200000; k++)
			if (tstore_child_record(s, br, log, k))
				break;
	}
	_exit(0);
out:
	printf("error %d\n", rc);
	fflush(stdout);
	_exit(1);
}

static int tstore_child_lock(const char *dir)
{
	struct store *s = NULL;
	int rc = tstore_open_dir(dir, false, NULL, &s);

	printf("open %d\n", rc);
	fflush(stdout);
	_exit(0);
}

/* ---- parent side ---- */

struct tstore_child {
	pid_t pid;
	FILE *out;
};

static void tstore_spawn(struct tstore_child *c, const char *mode,
			 const char *dir, const char *arg)
{
	int p[2];

	assert_int_equal(pipe(p), 0);
	fflush(NULL);
	c->pid = fork();
	assert_true(c->pid >= 0);
	if (c->pid == 0) {
		dup2(p[1], 1);
		close(p[0]);
		close(p[1]);
		execl("/proc/self/exe", "test_store_persist", mode, dir, arg,
		      (char *)NULL);
		_exit(127);
	}
	close(p[1]);
	c->out = fdopen(p[0], "r");
	assert_non_null(c->out);
}

static int tstore_reap(struct tstore_child *c)
{
	int st = 0;

	fclose(c->out);
	assert_int_equal(waitpid(c->pid, &st, 0), c->pid);
	return st;
}

static void tstore_check_synced(struct store *s, uint64_t br, uint64_t root,
				uint32_t nrec)
{
	uint64_t log, d;
	char name[32];
	uint32_t k;
	int i;

	log = tstore_lookup(s, br, root, "log");
	d = tstore_lookup(s, br, root, "d");
	assert_true(tstore_size(s, br, log) >= (uint64_t)nrec * REC);
	for (k = 0; k < nrec; k++)
		tstore_expect_pat(s, br, log, k, (uint64_t)k * REC, REC);
	for (i = 0; i < 20; i++) {
		snprintf(name, sizeof(name), "f%02d", i);
		if (i == 7) {
			assert_int_equal(tstore_lookup_rc(s, br,
							  STORE_SEQ_LATEST, d,
							  name),
					 -ENOENT);
			continue;
		}
		tstore_expect(s, br, tstore_lookup(s, br, d, name), name,
			      strlen(name), 0);
	}
}

static void test_store_persist_child_sync_exit(void **state)
{
	struct tstore_fx *fx = *state;
	struct tstore_child c;
	unsigned long long seq = 0;
	char line[64] = "";
	int st;

	assert_int_equal(store_close(fx->s), 0);
	fx->s = NULL;
	tstore_spawn(&c, "--child-write", fx->dir, "exit");
	assert_non_null(fgets(line, sizeof(line), c.out));
	st = tstore_reap(&c);
	if (sscanf(line, "synced %llu", &seq) != 1)
		fail_msg("child said '%s'", line);
	assert_true(WIFEXITED(st) && WEXITSTATUS(st) == 0);

	assert_int_equal(tstore_fx_open(fx), 0);
	assert_true(store_seq_now(fx->s) >= seq);
	tstore_check_synced(fx->s, fx->br, fx->root, NSYNCED);
	assert_int_equal(tstore_size(fx->s, fx->br,
				     tstore_lookup(fx->s, fx->br, fx->root,
						   "log")),
			 (uint64_t)NSYNCED * REC);
	/* the seq the child reported still reads the same state */
	{
		uint64_t log = tstore_lookup(fx->s, fx->br, fx->root, "log");

		tstore_write_pat(fx->s, fx->br, log, 77, 0, 10);
		tstore_expect_pat_at(fx->s, fx->br, seq, log, 0, 0, REC);
	}
}

static void test_store_persist_child_killed_keeps_prefix(void **state)
{
	struct tstore_fx *fx = *state;
	struct store_dirent *d = NULL;
	struct tstore_child c;
	unsigned long long seq = 0;
	uint64_t log, size, k, n_new;
	char line[64] = "";
	size_t n, i, j;

	assert_int_equal(store_close(fx->s), 0);
	fx->s = NULL;
	tstore_spawn(&c, "--child-write", fx->dir, "stream");
	assert_non_null(fgets(line, sizeof(line), c.out));
	if (sscanf(line, "synced %llu", &seq) != 1) {
		kill(c.pid, SIGKILL);
		tstore_reap(&c);
		fail_msg("child said '%s'", line);
	}
	tstore_sleep_ms(300);
	assert_int_equal(kill(c.pid, SIGKILL), 0);
	{
		int st = tstore_reap(&c);

		assert_true(WIFSIGNALED(st) && WTERMSIG(st) == SIGKILL);
	}

	assert_int_equal(tstore_fx_open(fx), 0);
	assert_true(store_seq_now(fx->s) >= seq);
	tstore_check_synced(fx->s, fx->br, fx->root, NSYNCED);
	log = tstore_lookup(fx->s, fx->br, fx->root, "log");
	size = tstore_size(fx->s, fx->br, log);
	/* each record write is atomic: the size is a whole record count and
	 * every record below it is intact */
	assert_int_equal(size % REC, 0);
	assert_true(size / REC >= NSYNCED);
	for (k = 0; k < size / REC; k++)
		tstore_expect_pat(fx->s, fx->br, log, (uint32_t)k, k * REC, REC);
	fprintf(stderr, "  killed child left %llu records (%u synced)\n",
		(unsigned long long)(size / REC), NSYNCED);

	/* counters survived: a new file gets a fresh inode, new writes a
	 * fresh seq */
	n_new = tstore_mkfile(fx->s, fx->br, fx->root, "new");
	tstore_write_pat(fx->s, fx->br, n_new, 5, 0, 10);
	assert_true(store_seq_now(fx->s) > seq);
	assert_int_equal(store_readdir(fx->s, fx->br, STORE_SEQ_LATEST,
				       tstore_lookup(fx->s, fx->br, fx->root,
						     "d"),
				       &d, &n),
			 0);
	for (i = 0; i < n; i++) {
		assert_int_not_equal(d[i].ino, n_new);
		assert_int_not_equal(d[i].ino, log);
		for (j = i + 1; j < n; j++)
			assert_int_not_equal(d[i].ino, d[j].ino);
	}
	free(d);
	/* and the log is still writable where the child stopped */
	tstore_write_pat(fx->s, fx->br, log, 9, size, 10);
	tstore_expect_pat(fx->s, fx->br, log, 9, size, 10);
}

static void test_store_persist_lock_same_process(void **state)
{
	struct tstore_fx *fx = *state;
	struct store *s2 = NULL;
	uint64_t f;

	assert_int_equal(tstore_open_dir(fx->dir, false, NULL, &s2), -EBUSY);
	assert_null(s2);
	assert_int_equal(tstore_open_dir(fx->dir, true, NULL, &s2), -EBUSY);
	assert_null(s2);
	/* the first handle is unharmed */
	f = tstore_mkfile(fx->s, fx->br, fx->root, "f");
	tstore_write_pat(fx->s, fx->br, f, 1, 0, 100);
	tstore_expect_pat(fx->s, fx->br, f, 1, 0, 100);
	/* after closing it, a new handle opens */
	assert_int_equal(store_close(fx->s), 0);
	fx->s = NULL;
	assert_int_equal(tstore_open_dir(fx->dir, false, NULL, &fx->s), 0);
	tstore_expect_pat(fx->s, fx->br, f, 1, 0, 100);
}

static void test_store_persist_lock_other_process(void **state)
{
	struct tstore_fx *fx = *state;
	struct tstore_child c;
	char line[64] = "";
	int rc = 1, st;
	uint64_t f;

	tstore_spawn(&c, "--child-lock", fx->dir, "");
	assert_non_null(fgets(line, sizeof(line), c.out));
	st = tstore_reap(&c);
	assert_true(WIFEXITED(st) && WEXITSTATUS(st) == 0);
	assert_int_equal(sscanf(line, "open %d", &rc), 1);
	assert_int_equal(rc, -EBUSY);
	f = tstore_mkfile(fx->s, fx->br, fx->root, "f");
	tstore_write_pat(fx->s, fx->br, f, 1, 0, 100);

	/* once we close, the other process gets in */
	assert_int_equal(store_close(fx->s), 0);
	fx->s = NULL;
	tstore_spawn(&c, "--child-lock", fx->dir, "");
	assert_non_null(fgets(line, sizeof(line), c.out));
	tstore_reap(&c);
	assert_int_equal(sscanf(line, "open %d", &rc), 1);
	assert_int_equal(rc, 0);
	/* that child _exit()ed with the store open: the lock went with it */
	assert_int_equal(tstore_fx_open(fx), 0);
	tstore_expect_pat(fx->s, fx->br, f, 1, 0, 100);
}

/* A process forked and exec()ed while the store is open (branchd starts
 * Postgres) must not inherit the store's locks. */
static void test_store_persist_lock_not_inherited_by_exec(void **state)
{
	struct tstore_fx *fx = *state;
	pid_t pid;
	int st = 0;

	fflush(NULL);
	pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		execl("/bin/sleep", "sleep", "3", (char *)NULL);
		_exit(127);
	}
	tstore_sleep_ms(200); /* let it exec */
	assert_int_equal(store_close(fx->s), 0);
	fx->s = NULL;
	assert_int_equal(tstore_fx_open(fx), 0);
	kill(pid, SIGKILL);
	assert_int_equal(waitpid(pid, &st, 0), pid);
}

#define T(f) cmocka_unit_test_setup_teardown(f, tstore_fx_setup, \
					     tstore_fx_teardown)

int main(int argc, char **argv)
{
	const struct CMUnitTest tests[] = {
		T(test_store_persist_child_sync_exit),
		T(test_store_persist_child_killed_keeps_prefix),
		T(test_store_persist_lock_same_process),
		T(test_store_persist_lock_other_process),
		T(test_store_persist_lock_not_inherited_by_exec),
	};

	if (argc >= 3 && strcmp(argv[1], "--child-write") == 0)
		return tstore_child_write(argv[2], argc >= 4 ? argv[3] : "exit");
	if (argc >= 3 && strcmp(argv[1], "--child-lock") == 0)
		return tstore_child_lock(argv[2]);
	return cmocka_run_group_tests_name("store_persist", tests, NULL, NULL);
}
