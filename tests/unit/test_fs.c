/* SPDX-License-Identifier: MIT */
/*
 * test_fs.c - fs/ helpers that need no mount: the hint a user gets when a
 * mount by a user other than root fails (fs_mount_hint), over a FUSE
 * device path and a fuse.conf written here; and the kernel lookup table's
 * generations across a reset (fs_node_ref, fs_file_open), over a store in
 * a temp dir; and the tablespace rule in data directories below a branch
 * root (fs_branch_check_fork).
 */
#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "fs/fs_int.h"
#include "test_store_common.h"

struct ctx {
	char dir[64];
	char dev[96];
	char conf[96];
};

static int setup(void **state)
{
	struct ctx *x = calloc(1, sizeof(*x));
	int fd;

	assert_non_null(x);
	snprintf(x->dir, sizeof(x->dir), "/tmp/bfs-fs-XXXXXX");
	assert_non_null(mkdtemp(x->dir));
	snprintf(x->dev, sizeof(x->dev), "%s/fuse", x->dir);
	snprintf(x->conf, sizeof(x->conf), "%s/fuse.conf", x->dir);
	fd = open(x->dev, O_CREAT | O_RDWR, 0666);
	assert_true(fd >= 0);
	close(fd);
	*state = x;
	return 0;
}

static int teardown(void **state)
{
	struct ctx *x = *state;

	unlink(x->dev);
	unlink(x->conf);
	rmdir(x->dir);
	free(x);
	return 0;
}

static void write_conf(const struct ctx *x, const char *text)
{
	FILE *f = fopen(x->conf, "w");

	assert_non_null(f);
	fputs(text, f);
	assert_int_equal(fclose(f), 0);
}

/* Root gets no hint about fusermount3's rules, which its mount does not
 * go through. */
static void test_hint_none_for_root(void **state)
{
	struct ctx *x = *state;
	char buf[512] = "";

	write_conf(x, "# user_allow_other\n");
	assert_false(fs_mount_hint(buf, sizeof(buf), 0, true, x->dev, x->conf));
	/* ... but a missing device is named, for root too */
	assert_true(fs_mount_hint(buf, sizeof(buf), 0, true, "/nonexistent",
				  x->conf));
	assert_non_null(strstr(buf, "/nonexistent is missing"));
	assert_non_null(strstr(buf, "--device /nonexistent"));
}

/* The stock Debian fuse.conf: the line is there, commented out. */
static void test_hint_allow_other_commented(void **state)
{
	struct ctx *x = *state;
	char buf[512] = "";

	write_conf(x, "# mount_max = 1000\n#user_allow_other\n"
		      "  # user_allow_other\n");
	assert_true(
		fs_mount_hint(buf, sizeof(buf), 999, true, x->dev, x->conf));
	assert_non_null(strstr(buf, "user_allow_other"));
	assert_non_null(strstr(buf, x->conf));
	assert_non_null(strstr(buf, "-o noallow_other"));
	assert_non_null(strstr(buf, "uid 999"));
	/* Without allow_other there is nothing to hint. */
	assert_false(
		fs_mount_hint(buf, sizeof(buf), 999, false, x->dev, x->conf));
}

static void test_hint_allow_other_missing_conf(void **state)
{
	struct ctx *x = *state;
	char buf[512] = "";

	assert_true(fs_mount_hint(buf, sizeof(buf), 1000, true, x->dev,
				  x->conf)); /* not written: no file */
	assert_non_null(strstr(buf, "user_allow_other"));
}

/* The option set (blanks and a CRLF around it are fusermount3's too):
 * no hint, since the cause is elsewhere. */
static void test_hint_allow_other_set(void **state)
{
	struct ctx *x = *state;
	char buf[512] = "";

	write_conf(x, "mount_max = 1000\n  user_allow_other \r\n");
	assert_false(
		fs_mount_hint(buf, sizeof(buf), 999, true, x->dev, x->conf));
	/* fusermount3 drops a comment after it. */
	write_conf(x, "user_allow_other\t# for branchfs\n");
	assert_false(
		fs_mount_hint(buf, sizeof(buf), 999, true, x->dev, x->conf));
	/* It does not read a last line without its newline, nor the rest of
	 * a line longer than its 255-byte buffer. */
	write_conf(x, "user_allow_other");
	assert_true(
		fs_mount_hint(buf, sizeof(buf), 999, true, x->dev, x->conf));
	{
		char conf[400];

		memset(conf, 'x', 255);
		snprintf(conf + 255, sizeof(conf) - 255, "user_allow_other\n");
		write_conf(x, conf);
		assert_true(fs_mount_hint(buf, sizeof(buf), 999, true, x->dev,
					  x->conf));
	}
	/* A longer word is not the option. */
	write_conf(x, "user_allow_others\nuser_allow_other_x\n");
	assert_true(
		fs_mount_hint(buf, sizeof(buf), 999, true, x->dev, x->conf));
}

/* The device comes first: allow_other does not matter if the device is
 * missing.  (The test runs as root, for whom access() passes on any mode:
 * an unreadable device is t50's.) */
static void test_hint_device(void **state)
{
	struct ctx *x = *state;
	char buf[512] = "", missing[128];

	snprintf(missing, sizeof(missing), "%s/nofuse", x->dir);
	write_conf(x, "user_allow_other\n");
	assert_true(
		fs_mount_hint(buf, sizeof(buf), 999, false, missing, x->conf));
	assert_non_null(strstr(buf, missing));
	assert_non_null(strstr(buf, "is missing"));
	assert_non_null(strstr(buf, "modprobe fuse"));
	/* A tiny buffer truncates, never overflows. */
	assert_true(fs_mount_hint(buf, 8, 999, true, missing, x->conf));
	assert_int_equal(strlen(buf), 7);
}

struct gen_ctx {
	char dir[64];
	struct store *s;
	struct fs *fs;
	uint64_t x;	/* branch x, a branch of p */
	uint64_t node;	/* a file's node id in x */
	uint32_t older; /* x's generation before its reset */
	uint32_t newer; /* and after */
};

static int gen_setup(void **state)
{
	struct gen_ctx *g = calloc(1, sizeof(*g));
	struct store_branch_create_args a = { 0 };
	struct store_branch_info p, x;
	struct fs_config cfg = { 0 };

	assert_non_null(g);
	snprintf(g->dir, sizeof(g->dir), "/tmp/bfs-fsgen-XXXXXX");
	assert_non_null(mkdtemp(g->dir));
	assert_int_equal(tstore_open_dir(g->dir, true, NULL, &g->s), 0);
	a.name = "p";
	assert_int_equal(store_branch_create(g->s, &a, &p), 0);
	a.name = "x";
	a.parent_id = p.id;
	a.at_seq = STORE_SEQ_LATEST;
	assert_int_equal(store_branch_create(g->s, &a, &x), 0);
	cfg.store = g->s;
	assert_int_equal(fs_new(&cfg, &g->fs), 0);
	g->x = x.id;
	g->node = fs_nodeid(x.id, 77);
	g->older = fs_branch_gen(g->fs, x.id);
	assert_int_equal(store_branch_reset(g->s, x.id, NULL), 0);
	g->newer = fs_branch_gen(g->fs, x.id);
	assert_int_not_equal(g->older, g->newer);
	*state = g;
	return 0;
}

static int gen_teardown(void **state)
{
	struct gen_ctx *g = *state;

	fs_free(g->fs);
	assert_int_equal(store_close(g->s), 0);
	tstore_rmrf(g->dir);
	free(g);
	return 0;
}

/* A lookup that read the branch before its reset replies after one that
 * read it after: the table keeps the newer generation, so an OPEN of the
 * file (from the inode the newer entry made) is let through.  (The older
 * one used to overwrite it, and that OPEN got ESTALE.) */
static void test_fs_gen_older_entry_after_newer(void **state)
{
	struct gen_ctx *g = *state;

	fs_node_ref(g->fs, g->node, S_IFREG, g->newer, 0, 0);
	fs_node_ref(g->fs, g->node, S_IFREG, g->older, 0, 0);
	assert_int_equal(fs_file_open(g->fs, g->node, 1234), 0);
	fs_file_close(g->fs, g->node);
}

/* The kernel's inode from before the reset (its last entry carried the
 * older generation) is still refused, once. */
static void test_fs_gen_old_inode_refused(void **state)
{
	struct gen_ctx *g = *state;

	fs_node_ref(g->fs, g->node, S_IFREG, g->older, 0, 0);
	assert_int_equal(fs_file_open(g->fs, g->node, 1234), -ESTALE);
}

/* WAL segments: a directory named pg_wal is marked, a regular file looked
 * up or made in it is marked (its OPENs for writing are direct I/O), and
 * so is a regular file named as a segment wherever it is (initdb --waldir:
 * pg_wal a link to a directory of another name); nothing else: not
 * another file elsewhere, not a directory or symlink in pg_wal
 * (archive_status), not a file named pg_wal, not a name that only looks
 * like a segment's.  fs_node_mark adds the mark to a node the kernel has
 * (a rename to a segment's name), in each of its epochs. */
static void test_fs_wal_mark(void **state)
{
	struct gen_ctx *g = *state;
	uint64_t data = fs_nodeid(g->x, 10), wal = fs_nodeid(g->x, 11);
	uint64_t seg = fs_nodeid(g->x, 12), other = fs_nodeid(g->x, 13);
	uint64_t other1 = other | (UINT64_C(1) << FS_INO_BITS);

	assert_int_equal(fs_node_wal_mark(g->fs, data, "pg_wal", S_IFDIR),
			 FS_NODE_WAL_DIR);
	assert_int_equal(fs_node_wal_mark(g->fs, data, "pg_wal", S_IFREG), 0);
	assert_int_equal(fs_node_wal_mark(g->fs, data, "base", S_IFDIR), 0);
	/* its parent not known (or not pg_wal) yet: nothing, but for a
	 * segment's name */
	assert_int_equal(fs_node_wal_mark(g->fs, wal, "xlogtemp.123", S_IFREG),
			 0);
	assert_int_equal(fs_node_wal_mark(g->fs, data,
					  "000000010000000000000001", S_IFREG),
			 FS_NODE_WAL);
	assert_int_equal(fs_node_wal_mark(g->fs, data,
					  "00000001000000000000000A", S_IFREG),
			 FS_NODE_WAL);
	assert_int_equal(fs_node_wal_mark(g->fs, data,
					  "00000001000000000000000a", S_IFREG),
			 0);
	assert_int_equal(fs_node_wal_mark(g->fs, data,
					  "00000001000000000000001", S_IFREG),
			 0);
	assert_int_equal(fs_node_wal_mark(g->fs, data,
					  "0000000100000000000000011", S_IFREG),
			 0);
	assert_int_equal(fs_node_wal_mark(g->fs, data,
					  "000000010000000000000001.partial",
					  S_IFREG),
			 0);
	assert_int_equal(fs_node_wal_mark(g->fs, data,
					  "000000010000000000000001", S_IFDIR),
			 0);
	assert_true(
		fs_node_ref(g->fs, wal, S_IFDIR, g->newer, 0, FS_NODE_WAL_DIR));
	assert_true(fs_node_has(g->fs, wal, FS_NODE_WAL_DIR));
	assert_int_equal(fs_node_wal_mark(g->fs, wal,
					  "000000010000000000000001", S_IFREG),
			 FS_NODE_WAL);
	assert_int_equal(
		fs_node_wal_mark(g->fs, wal, "archive_status", S_IFDIR), 0);
	assert_int_equal(fs_node_wal_mark(g->fs, wal, "x", S_IFLNK), 0);
	assert_true(fs_node_ref(g->fs, seg, S_IFREG, g->newer, 0, FS_NODE_WAL));
	assert_true(fs_node_ref(g->fs, other, S_IFREG, g->newer, 0, 0));
	assert_true(fs_node_has(g->fs, seg, FS_NODE_WAL));
	assert_false(fs_node_has(g->fs, other, FS_NODE_WAL));
	assert_false(fs_node_has(g->fs, data, FS_NODE_WAL_DIR));
	/* a rename gave other a segment's name: marked in each epoch the
	 * kernel holds it in, by its id without one */
	assert_true(fs_node_ref(g->fs, other1, S_IFREG, g->newer, 0, 0));
	fs_node_mark(g->fs, fs_node_base(other1), FS_NODE_WAL);
	assert_true(fs_node_has(g->fs, other, FS_NODE_WAL));
	assert_true(fs_node_has(g->fs, other1, FS_NODE_WAL));
	fs_node_unref(g->fs, seg, 1);
	fs_node_unref(g->fs, other, 1);
	fs_node_unref(g->fs, other1, 1);
	fs_node_unref(g->fs, wal, 1);
	/* forgotten: the mark goes with the entry, and a mark finds none */
	assert_false(fs_node_has(g->fs, seg, FS_NODE_WAL));
	fs_node_mark(g->fs, other, FS_NODE_WAL);
	assert_false(fs_node_has(g->fs, other, FS_NODE_WAL));
}

/* Each generation of a branch's files has its own node ids (its epoch),
 * one st_ino: the kernel never takes a file of the reset tree for its
 * inode from before the reset.  The previous generation keeps its epoch
 * (a lookup that read before the reset); an older one gets none;
 * directories keep one node id across resets. */
static void test_fs_gen_epochs(void **state)
{
	struct gen_ctx *g = *state;
	uint64_t kold = fs_node_kid(g->fs, g->node, S_IFREG, g->older);
	uint64_t knew = fs_node_kid(g->fs, g->node, S_IFREG, g->newer);
	uint64_t kfirst = fs_node_kid(g->fs, g->node, S_IFREG, g->older - 1);

	assert_int_not_equal(kold, knew);
	assert_int_equal(fs_node_base(kold), g->node);
	assert_int_equal(fs_node_base(knew), g->node);
	assert_int_equal(fs_branch_of(knew), g->x);
	assert_int_equal(fs_ino_of(knew), 77);
	assert_int_equal(fs_node_kid(g->fs, g->node, S_IFREG, g->older), kold);
	assert_int_equal(kfirst, 0);
	assert_int_equal(fs_node_kid(g->fs, g->node, S_IFDIR, g->newer),
			 g->node);
	/* A deleted branch's entry goes (one per branch, not kept for
	 * every branch a long-lived mount saw): the next generation seen
	 * starts again at epoch 0. */
	fs_epoch_drop(g->fs, g->x);
	assert_int_equal(fs_node_kid(g->fs, g->node, S_IFREG, g->newer),
			 g->node);
}

/* An OPEN refused as stale keeps the branch from changing (counted open)
 * for the kernel's retry, so that no second reset comes before it: the
 * retry's OPEN by the same thread takes its place, and a change waits for
 * a retry that does not come (FS_RETRY_MS), then goes on (not busy). */
static void test_fs_gen_refused_open_held_for_retry(void **state)
{
	struct gen_ctx *g = *state;
	uint64_t kold = fs_node_kid(g->fs, g->node, S_IFREG, g->older);
	uint64_t knew = fs_node_kid(g->fs, g->node, S_IFREG, g->newer);
	struct timespec t0, t1;
	long ms;

	fs_node_ref(g->fs, kold, S_IFREG, g->older, 0, 0);
	assert_int_equal(fs_file_open(g->fs, kold, 1234), -ESTALE);
	assert_true(fs_file_is_open(g->fs, g->node));
	fs_node_ref(g->fs, knew, S_IFREG, g->newer, 1234, 0);
	assert_int_equal(fs_file_open(g->fs, knew, 1234), 0);
	fs_file_close(g->fs, knew);
	assert_false(fs_file_is_open(g->fs, g->node));

	assert_int_equal(fs_file_open(g->fs, kold, 5678), -ESTALE);
	clock_gettime(CLOCK_MONOTONIC, &t0);
	assert_int_equal(fs_branch_begin_change(g->fs, g->x, NULL, 0), 0);
	clock_gettime(CLOCK_MONOTONIC, &t1);
	fs_branch_end_change(g->fs, g->x);
	ms = (t1.tv_sec - t0.tv_sec) * 1000 +
	     (t1.tv_nsec - t0.tv_nsec) / 1000000;
	assert_true(ms >= FS_RETRY_MS - 100);
	assert_false(fs_file_is_open(g->fs, g->node));
}

/* fs_branch_check_fork of branch br gives want, and a reason with why_has. */
static void fs_link_expect(struct fs *fs, struct store *s, uint64_t br,
			   int want, const char *why_has)
{
	struct store_branch_info bi;
	char why[STORE_SYMLINK_MAX + 2048] = "";

	assert_int_equal(store_branch_get(s, br, &bi), 0);
	assert_int_equal(fs_branch_check_fork(fs, &bi, STORE_SEQ_LATEST, why,
					      sizeof(why)),
			 want);
	if (why_has && !strstr(why, why_has))
		fail_msg("why '%s' lacks '%s'", why, why_has);
}

/* A symlink name -> target in directory dir, the rule's verdict on it, and
 * the link removed again. */
static void fs_link_case(struct fs *fs, struct store *s, uint64_t br,
			 uint64_t dir, const char *name, const char *target,
			 int want, const char *why_has)
{
	tstore_mknod(s, br, dir, name, S_IFLNK | 0777, target);
	fs_link_expect(fs, s, br, want, why_has);
	assert_int_equal(store_unlink(s, br, dir, name), 0);
}

/* The tablespace rule (fs_branch_check_fork) reads the links of each data
 * directory below the root, as in a branch used as /var/lib/postgresql
 * (15/main), and ".." climbs from where the link is: 15/main/pg_wal ->
 * ../../wal stays in the branch, ../../../x leaves it; a tablespace's
 * 15/main/pg_tblspc/OID is one level deeper.  (The rule read the root
 * only, and let a branch of each of these parents be made.) */
static void test_fs_link_nested_data_dir(void **state)
{
	struct store_config scfg;
	struct fs_config cfg = { 0 };
	uint64_t br, root, v15, m, ts, d18, dk;
	struct store *s;
	struct fs *fs;
	char dir[128];

	(void)state;
	tstore_mkdtemp(dir, sizeof(dir));
	tstore_config(&scfg, true, NULL);
	scfg.drop_marker = FS_PG_DATA_MARKER;
	scfg.drop_depth = FS_PG_DATA_DEPTH;
	assert_int_equal(store_open(dir, &scfg, &s), 0);
	cfg.store = s;
	assert_int_equal(fs_new(&cfg, &fs), 0);
	br = tstore_branch(s, "main", 0);
	root = tstore_root(s, br);
	v15 = tstore_mkdir(s, br, root, "15");
	m = tstore_mkdir(s, br, v15, "main");
	tstore_mkfile(s, br, m, "PG_VERSION");
	ts = tstore_mkdir(s, br, m, "pg_tblspc");
	fs_link_expect(fs, s, br, 0, NULL);

	fs_link_case(fs, s, br, m, "pg_wal", "../../wal", 0, NULL);
	fs_link_case(fs, s, br, m, "pg_wal", "../../../x", -EXDEV,
		     "its link 15/main/pg_wal leads out of the branch, to "
		     "'../../../x'");
	fs_link_case(fs, s, br, m, "pg_wal", "/var/tmp/wal", -EXDEV,
		     "15/main/pg_wal");
	fs_link_expect(fs, s, br, 0, NULL);

	fs_link_case(fs, s, br, ts, "16384", "../../../ts", 0, NULL);
	fs_link_case(fs, s, br, ts, "16384", "../../../../ts", -EXDEV,
		     "its link 15/main/pg_tblspc/16384 leads out");
	fs_link_expect(fs, s, br, 0, NULL);

	/* a second data directory (18/docker) is read too */
	d18 = tstore_mkdir(s, br, root, "18");
	dk = tstore_mkdir(s, br, d18, "docker");
	tstore_mkfile(s, br, dk, "PG_VERSION");
	ts = tstore_mkdir(s, br, dk, "pg_tblspc");
	tstore_mknod(s, br, ts, "16385", S_IFLNK | 0777, "/var/tmp/ts");
	fs_link_expect(fs, s, br, -EXDEV,
		       "its link 18/docker/pg_tblspc/16385 leads out of the "
		       "branch, to '/var/tmp/ts'");

	/* a marked root is the only data directory, as before */
	tstore_mkfile(s, br, root, "PG_VERSION");
	fs_link_expect(fs, s, br, 0, NULL);
	tstore_mknod(s, br, root, "pg_wal", S_IFLNK | 0777, "../wal");
	fs_link_expect(fs, s, br, -EXDEV, "its link pg_wal leads out");

	fs_free(fs);
	assert_int_equal(store_close(s), 0);
	tstore_rmrf(dir);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_hint_none_for_root, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_hint_allow_other_commented,
						setup, teardown),
		cmocka_unit_test_setup_teardown(
			test_hint_allow_other_missing_conf, setup, teardown),
		cmocka_unit_test_setup_teardown(test_hint_allow_other_set,
						setup, teardown),
		cmocka_unit_test_setup_teardown(test_hint_device, setup,
						teardown),
		cmocka_unit_test_setup_teardown(
			test_fs_gen_older_entry_after_newer, gen_setup,
			gen_teardown),
		cmocka_unit_test_setup_teardown(test_fs_wal_mark, gen_setup,
						gen_teardown),
		cmocka_unit_test_setup_teardown(test_fs_gen_old_inode_refused,
						gen_setup, gen_teardown),
		cmocka_unit_test_setup_teardown(test_fs_gen_epochs, gen_setup,
						gen_teardown),
		cmocka_unit_test_setup_teardown(
			test_fs_gen_refused_open_held_for_retry, gen_setup,
			gen_teardown),
		cmocka_unit_test(test_fs_link_nested_data_dir),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
