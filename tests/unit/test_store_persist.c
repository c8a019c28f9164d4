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
 *    another process, gets -EBUSY while the first is open;
 *  - settings (store_setting_put/get) and the retention window set at run
 *    time are there after a reopen; a window given at open wins and is
 *    kept in turn;
 *  - a deleted branch's table files are dropped only once its delete is
 *    durable: a branch delete whose sync failed, then a drop, then a power
 *    cut (RocksDB's WAL cut back to what the child's open had made
 *    durable, the journal as its fdatasyncs left it) leave the branch
 *    either gone or whole, never there without its data.
 *
 * Children are forked and then re-execute this binary (/proc/self/exe) with
 * a --child-* argument: forking a process that has run RocksDB's
 * background threads and using RocksDB in the child without exec is not
 * safe (locks held by threads that do not exist in the child).
 */
#include <dirent.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <pthread.h>
#include <stdatomic.h>
#include <sys/wait.h>

#include <cmocka.h>

#include "tests/unit/test_store_common.h"
#include "tests/unit/test_walcut.h"
#include "store/store_int.h"

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

static int tstore_child_record_seed(struct store *s, uint64_t br,
				    uint64_t ino, uint32_t seed, uint32_t k)
{
	unsigned char buf[REC];

	tstore_fill(buf, REC, seed, (uint64_t)k * REC);
	return store_write(s, br, ino, buf, REC, (uint64_t)k * REC, NULL) ==
			       (ssize_t)REC ?
		       0 :
		       -EIO;
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
		for (k = NSYNCED; k < 200000; k++) {
			if (tstore_child_record(s, br, log, k))
				break;
			/* a fork now and then, racing the kill */
			if (k % 50 == 0) {
				struct store_branch_create_args ba;
				struct store_branch_info bi;

				snprintf(name, sizeof(name), "k%u", k);
				ba = tstore_args(name, br, STORE_SEQ_LATEST);
				if (store_branch_create(s, &ba, &bi))
					break;
			}
		}
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

/* Multi-threaded: NMT writers append records to their own files; a sync
 * thread reads the writers' completed counts, calls store_sync() and then
 * reports the counts: every write that returned before the sync began must
 * survive the SIGKILL that follows at some point. */
#define NMT 3

struct tstore_mt {
	struct store *s;
	uint64_t br, ino[NMT];
	_Atomic unsigned long done[NMT];
};

struct tstore_mt_arg {
	struct tstore_mt *mt;
	int i;
};

static void *tstore_mt_writer(void *arg)
{
	struct tstore_mt_arg *a = arg;
	struct tstore_mt *mt = a->mt;
	uint32_t k;

	for (k = 0; k < 200000; k++) {
		if (tstore_child_record_seed(mt->s, mt->br, mt->ino[a->i],
					     k + 1000000u * (uint32_t)a->i, k))
			break;
		atomic_store(&mt->done[a->i], k + 1);
	}
	return NULL;
}

static int tstore_child_mt(const char *dir)
{
	static struct tstore_mt mt;
	struct tstore_mt_arg args[NMT];
	pthread_t t[NMT];
	uint64_t root;
	char name[16];
	int rc, i;

	rc = tstore_child_open(dir, &mt.s, &mt.br, &root);
	for (i = 0; i < NMT && !rc; i++) {
		snprintf(name, sizeof(name), "mt%d", i);
		rc = tstore_child_create(mt.s, mt.br, root, name,
					 S_IFREG | 0644, &mt.ino[i]);
	}
	if (!rc)
		rc = store_sync(mt.s);
	if (rc) {
		printf("error %d\n", rc);
		fflush(stdout);
		_exit(1);
	}
	for (i = 0; i < NMT; i++) {
		args[i].mt = &mt;
		args[i].i = i;
		pthread_create(&t[i], NULL, tstore_mt_writer, &args[i]);
	}
	for (;;) {
		unsigned long c[NMT];

		for (i = 0; i < NMT; i++)
			c[i] = atomic_load(&mt.done[i]);
		rc = store_sync(mt.s);
		if (rc) {
			printf("error %d\n", rc);
			fflush(stdout);
			_exit(1);
		}
		printf("synced %lu %lu %lu\n", c[0], c[1], c[2]);
		fflush(stdout);
		usleep(20000);
	}
}

/* Sizes of RocksDB's WAL files (*.log) in dir/db, as "name size" lines
 * in dir/wal-sizes. */
static int tstore_child_record_wal(const char *dir)
{
	char p[4096];

	snprintf(p, sizeof(p), "%s/wal-sizes", dir);
	return twal_record(dir, p);
}

/* Open the store (through a fault wrapper), note what its WAL holds, then
 * delete branch "victim" with its sync failing (-EIO: the delete is made
 * but not durable) and drop the deleted branches' keys with every
 * compaction failing (a cut before the compaction's flush could make the
 * WAL durable).  Reports "delete RC drop RC keys BEFORE AFTER", _exit. */
static int tstore_child_drop(const char *dir)
{
	struct store_branch_info bi;
	struct kv_fault *f = NULL;
	struct store *s = NULL;
	uint64_t before = 0, after = 0;
	size_t dropped = 0;
	int rc, rd = 1, rx = 1;

	rc = kv_fault_new(&f);
	if (!rc)
		rc = tstore_open_dir(dir, false, f, &s);
	if (!rc)
		rc = tstore_child_record_wal(dir);
	if (!rc)
		rc = store_branch_lookup(s, "victim", &bi);
	if (!rc)
		rc = store_branch_keys(s, bi.id, &before);
	if (rc) {
		printf("error %d\n", rc);
		fflush(stdout);
		_exit(1);
	}
	kv_fault_arm(f, KV_FAULT_SYNC, 1, false, -EIO);
	rd = store_branch_delete(s, bi.id);
	kv_fault_arm(f, KV_FAULT_COMPACT, 1, true, -EIO);
	rx = store_drop_deleted(s, &dropped);
	rc = store_branch_keys(s, bi.id, &after);
	printf("delete %d drop %d keys %llu %llu\n", rd, rx,
	       (unsigned long long)before,
	       (unsigned long long)(rc ? UINT64_MAX : after));
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
	/* every fork that survived is a crash image: the records before it,
	 * whole, and none after */
	{
		struct store_branch_info *list = NULL;
		size_t nb = 0, bi;
		int forks = 0;

		assert_int_equal(store_branch_list(fx->s, &list, &nb), 0);
		for (bi = 0; bi < nb; bi++) {
			unsigned kk;
			uint64_t fsize;

			if (sscanf(list[bi].name, "k%u", &kk) != 1)
				continue;
			forks++;
			assert_int_equal(list[bi].parent_id, fx->br);
			fsize = tstore_size(fx->s, list[bi].id, log);
			if (fsize != (uint64_t)(kk + 1) * REC)
				fail_msg("fork %s: log has %llu bytes, want %llu",
					 list[bi].name,
					 (unsigned long long)fsize,
					 (unsigned long long)(kk + 1) * REC);
			tstore_expect_pat(fx->s, list[bi].id, log, kk,
					  (uint64_t)kk * REC, REC);
			assert_true((uint64_t)(kk + 1) * REC <= size);
		}
		free(list);
		fprintf(stderr, "  %d forks survived the kill\n", forks);
		assert_true(forks > 0);
	}

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

static void test_store_persist_killed_mt_synced_writes(void **state)
{
	struct tstore_fx *fx = *state;
	struct tstore_child c;
	unsigned long last[NMT] = { 0 }, got[NMT];
	char line[128];
	int nlines = 0, i;

	assert_int_equal(store_close(fx->s), 0);
	fx->s = NULL;
	tstore_spawn(&c, "--child-mt", fx->dir, "");
	while (fgets(line, sizeof(line), c.out)) {
		if (sscanf(line, "synced %lu %lu %lu", &got[0], &got[1],
			   &got[2]) != 3) {
			kill(c.pid, SIGKILL);
			tstore_reap(&c);
			fail_msg("child said '%s'", line);
		}
		memcpy(last, got, sizeof(last));
		if (++nlines == 15)
			break;
	}
	assert_int_equal(kill(c.pid, SIGKILL), 0);
	/* a report that made it into the pipe before the kill counts too */
	while (fgets(line, sizeof(line), c.out))
		if (sscanf(line, "synced %lu %lu %lu", &got[0], &got[1],
			   &got[2]) == 3)
			memcpy(last, got, sizeof(last));
	tstore_reap(&c);

	assert_int_equal(tstore_fx_open(fx), 0);
	for (i = 0; i < NMT; i++) {
		char name[16];
		uint64_t ino, size, k;

		snprintf(name, sizeof(name), "mt%d", i);
		ino = tstore_lookup(fx->s, fx->br, fx->root, name);
		size = tstore_size(fx->s, fx->br, ino);
		assert_int_equal(size % REC, 0);
		if (size / REC < last[i])
			fail_msg("%s: %llu records after the kill, but %lu had returned before a store_sync that completed",
				 name, (unsigned long long)(size / REC),
				 last[i]);
		for (k = 0; k < size / REC; k++)
			tstore_expect_pat(fx->s, fx->br, ino,
					  (uint32_t)k + 1000000u * (uint32_t)i,
					  k * REC, REC);
		fprintf(stderr, "  %s: %llu records, %lu synced\n", name,
			(unsigned long long)(size / REC), last[i]);
	}
}

static void test_store_persist_settings(void **state)
{
	struct tstore_fx *fx = *state;
	char buf[64], big[STORE_SETTING_MAX + 2];

	assert_int_equal(store_setting_get(fx->s, "default_parent", buf,
					   sizeof(buf)),
			 -ENOENT);
	assert_int_equal(store_setting_put(fx->s, "default_parent", "trunk"),
			 0);
	assert_int_equal(store_setting_put(fx->s, "other", ""), 0);
	assert_int_equal(store_setting_put(fx->s, "", "x"), -EINVAL);
	memset(big, 'x', sizeof(big) - 1);
	big[sizeof(big) - 1] = 0;
	assert_int_equal(store_setting_put(fx->s, "big", big), -EINVAL);
	tstore_fx_reopen(fx);
	assert_int_equal(store_setting_get(fx->s, "default_parent", buf,
					   sizeof(buf)),
			 0);
	assert_string_equal(buf, "trunk");
	assert_int_equal(store_setting_get(fx->s, "default_parent", buf, 5),
			 -ERANGE);
	assert_int_equal(store_setting_get(fx->s, "other", buf, sizeof(buf)),
			 0);
	assert_string_equal(buf, "");
}

static void test_store_persist_retention(void **state)
{
	struct tstore_fx *fx = *state;
	struct store_config cfg;

	/* a new store: the default */
	assert_int_equal(store_get_retention(fx->s), 3600);
	assert_int_equal(store_set_retention(fx->s, 604800), 0);
	tstore_fx_reopen(fx);
	assert_int_equal(store_get_retention(fx->s), 604800);
	/* one given at open wins, and is the one kept from then on */
	assert_int_equal(store_close(fx->s), 0);
	fx->s = NULL;
	tstore_config(&cfg, false, NULL);
	cfg.retention_s = 120;
	assert_int_equal(store_open(fx->dir, &cfg, &fx->s), 0);
	assert_int_equal(store_get_retention(fx->s), 120);
	tstore_fx_reopen(fx);
	assert_int_equal(store_get_retention(fx->s), 120);
	assert_int_equal(store_set_retention(fx->s, 0), -EINVAL);
	assert_int_equal(store_get_retention(fx->s), 120);
}

/* A deleted branch's keys go only once its delete is durable.  Its delete
 * is committed, then synced; a GC (or store_drop_deleted) meanwhile, or
 * after that sync failed, took the note and dropped the branch's table
 * files, which RocksDB's manifest makes durable at once: a power cut then
 * lost the delete and kept the drop, and the branch came back without its
 * data (its file read as zeros).  Here the delete's sync fails (it returns
 * -EIO, made but perhaps not durable) and the drop follows. */
static void test_store_persist_drop_after_durable_delete(void **state)
{
	struct tstore_fx *fx = *state;
	struct store_gc_opts o = { .full_compaction = true };
	struct store_check_report rep;
	struct store_branch_info bi;
	struct store_gc_stats st;
	struct tstore_child c;
	unsigned long long before = 0, after = 0;
	uint64_t victim, decoy, ino;
	char line[128] = "";
	int rd = 0, rx = 0, rc;

	victim = tstore_branch(fx->s, "victim", fx->br);
	ino = tstore_mkfile(fx->s, victim, fx->root, "f");
	tstore_write_pat(fx->s, victim, ino, 7, 0, 4 * STORE_BLOCK_SIZE);
	/* A whole compaction (a branch was deleted) puts every key in the
	 * last level: the victim's blocks get a table file of their own. */
	decoy = tstore_branch(fx->s, "decoy", fx->br);
	assert_int_equal(store_branch_delete(fx->s, decoy), 0);
	assert_int_equal(store_gc(fx->s, &o, &st), 0);
	assert_int_equal(store_close(fx->s), 0);
	fx->s = NULL;

	tstore_spawn(&c, "--child-drop", fx->dir, "");
	assert_non_null(fgets(line, sizeof(line), c.out));
	rc = tstore_reap(&c);
	if (sscanf(line, "delete %d drop %d keys %llu %llu", &rd, &rx, &before,
		   &after) != 4)
		fail_msg("child said '%s'", line);
	assert_true(WIFEXITED(rc) && WEXITSTATUS(rc) == 0);
	assert_int_equal(rd, -EIO);
	/* the drop took the victim's table files: the case is real */
	assert_true(before > 0);
	assert_true(after < before);
	{
		char rec[4096];

		snprintf(rec, sizeof(rec), "%s/wal-sizes", fx->dir);
		twal_cut(fx->dir, rec);
	}

	assert_int_equal(tstore_fx_open(fx), 0);
	rc = store_branch_lookup(fx->s, "victim", &bi);
	if (rc == 0) {
		/* the delete did not survive: then neither did the drop */
		tstore_expect_pat(fx->s, bi.id,
				  tstore_lookup(fx->s, bi.id, fx->root, "f"), 7,
				  0, 4 * STORE_BLOCK_SIZE);
	} else {
		assert_int_equal(rc, -ENOENT);
	}
	memset(&rep, 0, sizeof(rep));
	assert_int_equal(store_check(fx->s, NULL, NULL, &rep), 0);
	assert_int_equal(rep.bad_records + rep.bad_blocks, 0);
}

/* store_close_remove (for a store a daemon made for a mount that then
 * failed) leaves nothing of the store, its directory included unless
 * asked to keep it, and a store can be made there again. */
static void test_store_persist_close_remove(void **state)
{
	struct tstore_fx *fx = *state;
	struct store *s2 = NULL;
	struct stat st;

	assert_int_equal(store_close_remove(fx->s, false), 0);
	fx->s = NULL;
	assert_int_equal(stat(fx->dir, &st), -1);
	assert_int_equal(errno, ENOENT);
	assert_int_equal(tstore_open_dir(fx->dir, true, NULL, &s2), 0);
	/* made in a directory that was there: that stays, empty */
	assert_int_equal(store_close_remove(s2, true), 0);
	assert_int_equal(stat(fx->dir, &st), 0);
	assert_int_equal(rmdir(fx->dir), 0);
	assert_int_equal(tstore_open_dir(fx->dir, true, NULL, &s2), 0);
	assert_int_equal(store_close(s2), 0);
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
		T(test_store_persist_killed_mt_synced_writes),
		T(test_store_persist_settings),
		T(test_store_persist_retention),
		T(test_store_persist_close_remove),
		T(test_store_persist_drop_after_durable_delete),
	};

	if (argc >= 3 && strcmp(argv[1], "--child-write") == 0)
		return tstore_child_write(argv[2], argc >= 4 ? argv[3] : "exit");
	if (argc >= 3 && strcmp(argv[1], "--child-mt") == 0)
		return tstore_child_mt(argv[2]);
	if (argc >= 3 && strcmp(argv[1], "--child-lock") == 0)
		return tstore_child_lock(argv[2]);
	if (argc >= 3 && strcmp(argv[1], "--child-drop") == 0)
		return tstore_child_drop(argv[2]);
	return cmocka_run_group_tests_name("store_persist", tests, NULL, NULL);
}
