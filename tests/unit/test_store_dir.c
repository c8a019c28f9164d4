/* SPDX-License-Identifier: MIT */
/*
 * test_store_dir.c - cmocka tests of the store's directory operations on
 * real RocksDB: create/lookup/readdir merged through branch ancestry with
 * tombstones, rename (within and across directories, replacing, NOREPLACE,
 * EXCHANGE), rmdir, hard links and link counts, symlinks, unlinked-but-open
 * inodes, and drop_names (names and patterns) at branch creation and reset.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "tests/unit/test_store_common.h"

static uint32_t tstore_nlink(struct store *s, uint64_t br, uint64_t ino)
{
	struct store_attr a;

	assert_int_equal(store_getattr(s, br, STORE_SEQ_LATEST, ino, &a), 0);
	return a.nlink;
}

static void test_store_dir_create_lookup_readdir(void **state)
{
	struct tstore_fx *fx = *state;
	struct store *s = fx->s;
	struct store_dirent *d = NULL;
	struct store_attr a = tstore_attr(S_IFREG | 0640), out;
	uint64_t f, sub, fifo, ino;
	size_t n = 0;

	TSTORE_LS_EQ(s, fx->br, STORE_SEQ_LATEST, fx->root, "");
	assert_int_equal(store_create(s, fx->br, fx->root, "file", &a, NULL, &f,
				      &out),
			 0);
	assert_int_equal(out.mode, S_IFREG | 0640);
	assert_int_equal(out.nlink, 1);
	assert_int_equal(out.size, 0);
	assert_int_equal(out.uid, a.uid);
	sub = tstore_mkdir(s, fx->br, fx->root, "sub");
	fifo = tstore_mknod(s, fx->br, fx->root, "fifo", S_IFIFO | 0600, NULL);
	tstore_mknod(s, fx->br, sub, "inner", S_IFREG | 0600, NULL);

	assert_int_equal(tstore_lookup(s, fx->br, fx->root, "file"), f);
	assert_int_equal(tstore_lookup(s, fx->br, fx->root, "sub"), sub);
	assert_int_equal(store_readdir(s, fx->br, STORE_SEQ_LATEST, fx->root,
				       &d, &n),
			 0);
	assert_int_equal(n, 3);
	assert_string_equal(d[0].name, "fifo");
	assert_int_equal(d[0].ino, fifo);
	assert_int_equal(d[0].mode, S_IFIFO);
	assert_string_equal(d[1].name, "file");
	assert_int_equal(d[1].ino, f);
	assert_int_equal(d[1].mode, S_IFREG);
	assert_string_equal(d[2].name, "sub");
	assert_int_equal(d[2].mode, S_IFDIR);
	free(d);
	TSTORE_LS_EQ(s, fx->br, STORE_SEQ_LATEST, sub, "inner");

	/* errors */
	assert_int_equal(store_create(s, fx->br, fx->root, "file", &a, NULL,
				      &ino, NULL),
			 -EEXIST);
	assert_int_equal(store_create(s, fx->br, fx->root, "sub", &a, NULL,
				      &ino, NULL),
			 -EEXIST);
	assert_int_equal(store_create(s, fx->br, f, "x", &a, NULL, &ino, NULL),
			 -ENOTDIR);
	assert_int_equal(store_lookup(s, fx->br, STORE_SEQ_LATEST, f, "x",
				      &ino),
			 -ENOTDIR);
	assert_int_equal(tstore_lookup_rc(s, fx->br, STORE_SEQ_LATEST,
					  fx->root, "nope"),
			 -ENOENT);
	{
		char buf[8];

		assert_int_equal(store_read(s, fx->br, STORE_SEQ_LATEST, sub,
					    buf, sizeof(buf), 0),
				 -EISDIR);
	}
	assert_int_equal(store_create(s, fx->br, 999999, "x", &a, NULL, &ino,
				      NULL),
			 -ENOENT);
	/* many entries come back sorted */
	{
		char name[32];
		int i;

		for (i = 99; i >= 0; i--) {
			snprintf(name, sizeof(name), "m%03d", i);
			tstore_mkfile(s, fx->br, sub, name);
		}
		assert_int_equal(store_readdir(s, fx->br, STORE_SEQ_LATEST, sub,
					       &d, &n),
				 0);
		assert_int_equal(n, 101);
		assert_string_equal(d[0].name, "inner");
		for (i = 0; i < 100; i++) {
			snprintf(name, sizeof(name), "m%03d", i);
			assert_string_equal(d[i + 1].name, name);
		}
		free(d);
	}
}

/* Entries merge through the ancestry; a tombstone hides an ancestor's
 * entry in the branch that wrote it (and its descendants) only. */
static void test_store_dir_merge_tombstones(void **state)
{
	struct tstore_fx *fx = *state;
	struct store *s = fx->s;
	uint64_t a, b, c, c1, g, b2, b3, s_before;

	a = tstore_mkfile(s, fx->br, fx->root, "a");
	b = tstore_mkfile(s, fx->br, fx->root, "b");
	c = tstore_mkfile(s, fx->br, fx->root, "c");
	(void)a;
	(void)c;
	tstore_write_pat(s, fx->br, b, 1, 0, 100);
	c1 = tstore_branch(s, "c1", fx->br);

	assert_int_equal(store_unlink(s, c1, fx->root, "b"), 0);
	tstore_mkfile(s, c1, fx->root, "d");
	TSTORE_LS_EQ(s, c1, STORE_SEQ_LATEST, fx->root, "a,c,d");
	TSTORE_LS_EQ(s, fx->br, STORE_SEQ_LATEST, fx->root, "a,b,c");
	assert_int_equal(tstore_lookup_rc(s, c1, STORE_SEQ_LATEST, fx->root,
					  "b"),
			 -ENOENT);
	assert_int_equal(tstore_nlink(s, fx->br, b), 1);
	tstore_expect_pat(s, fx->br, b, 1, 0, 100);

	s_before = store_seq_now(s);
	g = tstore_branch(s, "g", c1);
	assert_int_equal(store_unlink(s, g, fx->root, "a"), 0);
	b2 = tstore_mkfile(s, g, fx->root, "b"); /* same name, new inode */
	assert_int_not_equal(b2, b);
	assert_int_equal(tstore_size(s, g, b2), 0);
	TSTORE_LS_EQ(s, g, STORE_SEQ_LATEST, fx->root, "b,c,d");
	TSTORE_LS_EQ(s, c1, STORE_SEQ_LATEST, fx->root, "a,c,d");
	TSTORE_LS_EQ(s, fx->br, STORE_SEQ_LATEST, fx->root, "a,b,c");
	assert_int_equal(tstore_lookup(s, fx->br, fx->root, "b"), b);

	/* a tombstone followed by a re-create in the same branch */
	assert_int_equal(store_unlink(s, c1, fx->root, "c"), 0);
	b3 = tstore_mkfile(s, c1, fx->root, "c");
	assert_int_not_equal(b3, c);
	assert_int_equal(tstore_lookup(s, c1, fx->root, "c"), b3);
	assert_int_equal(tstore_lookup(s, g, fx->root, "c"), c);

	/* as-of listings */
	TSTORE_LS_EQ(s, c1, s_before, fx->root, "a,c,d");
	TSTORE_LS_EQ(s, fx->br, s_before, fx->root, "a,b,c");

	/* parent changes after the fork don't leak into children */
	assert_int_equal(store_unlink(s, fx->br, fx->root, "a"), 0);
	tstore_mkfile(s, fx->br, fx->root, "e");
	TSTORE_LS_EQ(s, c1, STORE_SEQ_LATEST, fx->root, "a,c,d");
	TSTORE_LS_EQ(s, fx->br, STORE_SEQ_LATEST, fx->root, "b,c,e");
}

static void test_store_dir_rename_within_and_across(void **state)
{
	struct tstore_fx *fx = *state;
	struct store *s = fx->s;
	uint64_t f, d1, d2, sub, inner, s0;

	d1 = tstore_mkdir(s, fx->br, fx->root, "d1");
	d2 = tstore_mkdir(s, fx->br, fx->root, "d2");
	f = tstore_mkfile(s, fx->br, d1, "f");
	tstore_write_pat(s, fx->br, f, 1, 0, 1000);
	sub = tstore_mkdir(s, fx->br, d1, "sub");
	inner = tstore_mkfile(s, fx->br, sub, "inner");
	s0 = store_seq_now(s);

	/* within a directory */
	assert_int_equal(store_rename(s, fx->br, d1, "f", d1, "g", 0), 0);
	TSTORE_LS_EQ(s, fx->br, STORE_SEQ_LATEST, d1, "g,sub");
	assert_int_equal(tstore_lookup(s, fx->br, d1, "g"), f);
	tstore_expect_pat(s, fx->br, f, 1, 0, 1000);

	/* across directories, a file and a directory with children */
	assert_int_equal(store_rename(s, fx->br, d1, "g", d2, "h", 0), 0);
	assert_int_equal(store_rename(s, fx->br, d1, "sub", d2, "sub2", 0), 0);
	TSTORE_LS_EQ(s, fx->br, STORE_SEQ_LATEST, d1, "");
	TSTORE_LS_EQ(s, fx->br, STORE_SEQ_LATEST, d2, "h,sub2");
	assert_int_equal(tstore_lookup(s, fx->br, d2, "sub2"), sub);
	assert_int_equal(tstore_lookup(s, fx->br, sub, "inner"), inner);
	/* the old tree as of s0 */
	TSTORE_LS_EQ(s, fx->br, s0, d1, "f,sub");
	TSTORE_LS_EQ(s, fx->br, s0, d2, "");

	/* missing source */
	assert_int_equal(store_rename(s, fx->br, d1, "nope", d2, "x", 0),
			 -ENOENT);
	/* d1 is empty now: rmdir works */
	assert_int_equal(store_rmdir(s, fx->br, fx->root, "d1"), 0);
	TSTORE_LS_EQ(s, fx->br, STORE_SEQ_LATEST, fx->root, "d2");
}

static void test_store_dir_rename_replace(void **state)
{
	struct tstore_fx *fx = *state;
	struct store *s = fx->s;
	uint64_t a, b, c, dd, de, e1;
	struct store_attr at;
	int rc;

	a = tstore_mkfile(s, fx->br, fx->root, "a");
	b = tstore_mkfile(s, fx->br, fx->root, "b");
	tstore_write_pat(s, fx->br, a, 1, 0, 100);
	tstore_write_pat(s, fx->br, b, 2, 0, 200);
	c = tstore_branch(s, "c", fx->br);

	/* in the child: a replaces b */
	assert_int_equal(store_rename(s, c, fx->root, "a", fx->root, "b", 0), 0);
	TSTORE_LS_EQ(s, c, STORE_SEQ_LATEST, fx->root, "b");
	assert_int_equal(tstore_lookup(s, c, fx->root, "b"), a);
	assert_int_equal(tstore_size(s, c, a), 100);
	rc = store_getattr(s, c, STORE_SEQ_LATEST, b, &at);
	assert_true(rc == -ENOENT || (rc == 0 && at.nlink == 0));
	/* the parent still has both */
	TSTORE_LS_EQ(s, fx->br, STORE_SEQ_LATEST, fx->root, "a,b");
	assert_int_equal(tstore_lookup(s, fx->br, fx->root, "b"), b);
	assert_int_equal(tstore_nlink(s, fx->br, b), 1);
	tstore_expect_pat(s, fx->br, b, 2, 0, 200);

	/* directories: over an empty one ok, over a non-empty one not */
	dd = tstore_mkdir(s, fx->br, fx->root, "dd");
	de = tstore_mkdir(s, fx->br, fx->root, "de");
	e1 = tstore_mkfile(s, fx->br, de, "e1");
	(void)e1;
	assert_int_equal(store_rename(s, fx->br, fx->root, "dd", fx->root,
				      "de", 0),
			 -ENOTEMPTY);
	assert_int_equal(store_rename(s, fx->br, fx->root, "a", fx->root, "de",
				      0),
			 -EISDIR);
	assert_int_equal(store_rename(s, fx->br, fx->root, "dd", fx->root, "a",
				      0),
			 -ENOTDIR);
	assert_int_equal(store_rename(s, fx->br, fx->root, "de", fx->root,
				      "dd", 0),
			 0);
	assert_int_equal(tstore_lookup(s, fx->br, fx->root, "dd"), de);
	TSTORE_LS_EQ(s, fx->br, STORE_SEQ_LATEST, fx->root, "a,b,dd");
	TSTORE_LS_EQ(s, fx->br, STORE_SEQ_LATEST, de, "e1");
	(void)dd;

	/* NOREPLACE */
	assert_int_equal(store_rename(s, fx->br, fx->root, "a", fx->root, "b",
				      STORE_RENAME_NOREPLACE),
			 -EEXIST);
	assert_int_equal(tstore_lookup(s, fx->br, fx->root, "a"), a);
	assert_int_equal(tstore_lookup(s, fx->br, fx->root, "b"), b);
	assert_int_equal(store_rename(s, fx->br, fx->root, "a", fx->root, "z",
				      STORE_RENAME_NOREPLACE),
			 0);
	assert_int_equal(tstore_lookup(s, fx->br, fx->root, "z"), a);

	/* a rename onto another link of the same inode does nothing */
	{
		assert_int_equal(store_link(s, fx->br, a, fx->root, "z2", NULL),
				 0);
		assert_int_equal(store_rename(s, fx->br, fx->root, "z",
					      fx->root, "z2", 0),
				 0);
		assert_int_equal(tstore_lookup(s, fx->br, fx->root, "z"), a);
		assert_int_equal(tstore_lookup(s, fx->br, fx->root, "z2"), a);
		assert_int_equal(tstore_nlink(s, fx->br, a), 2);
	}
}

static void test_store_dir_rename_exchange(void **state)
{
	struct tstore_fx *fx = *state;
	struct store *s = fx->s;
	uint64_t f, d, d2, x, c;

	f = tstore_mkfile(s, fx->br, fx->root, "f");
	d = tstore_mkdir(s, fx->br, fx->root, "d");
	d2 = tstore_mkdir(s, fx->br, fx->root, "d2");
	x = tstore_mkfile(s, fx->br, d, "x");
	c = tstore_branch(s, "c", fx->br);

	/* swap a file and a directory across directories, in the child */
	assert_int_equal(store_rename(s, c, fx->root, "f", d2, "y",
				      STORE_RENAME_EXCHANGE),
			 -ENOENT);
	assert_int_equal(store_rename(s, c, fx->root, "f", d, "x",
				      STORE_RENAME_EXCHANGE),
			 0);
	assert_int_equal(tstore_lookup(s, c, fx->root, "f"), x);
	assert_int_equal(tstore_lookup(s, c, d, "x"), f);
	assert_int_equal(store_rename(s, c, fx->root, "d", fx->root, "f",
				      STORE_RENAME_EXCHANGE),
			 0);
	assert_int_equal(tstore_lookup(s, c, fx->root, "f"), d);
	assert_int_equal(tstore_lookup(s, c, fx->root, "d"), x);
	assert_int_equal(tstore_lookup(s, c, d, "x"), f);
	TSTORE_LS_EQ(s, c, STORE_SEQ_LATEST, fx->root, "d,d2,f");
	/* parent untouched */
	assert_int_equal(tstore_lookup(s, fx->br, fx->root, "f"), f);
	assert_int_equal(tstore_lookup(s, fx->br, fx->root, "d"), d);
	assert_int_equal(tstore_lookup(s, fx->br, d, "x"), x);
	/* NOREPLACE|EXCHANGE together is invalid */
	assert_int_equal(store_rename(s, c, fx->root, "f", fx->root, "d",
				      STORE_RENAME_EXCHANGE |
					      STORE_RENAME_NOREPLACE),
			 -EINVAL);
}

static void test_store_dir_rmdir(void **state)
{
	struct tstore_fx *fx = *state;
	struct store *s = fx->s;
	uint64_t d, e, c;

	d = tstore_mkdir(s, fx->br, fx->root, "d");
	tstore_mkfile(s, fx->br, d, "x");
	e = tstore_mkdir(s, fx->br, d, "e");
	(void)e;
	assert_int_equal(store_rmdir(s, fx->br, fx->root, "d"), -ENOTEMPTY);
	assert_int_equal(store_rmdir(s, fx->br, d, "x"), -ENOTDIR);
	assert_int_equal(store_unlink(s, fx->br, fx->root, "d"), -EISDIR);
	assert_int_equal(store_rmdir(s, fx->br, fx->root, "nope"), -ENOENT);

	/* in a child, the inherited entries keep d non-empty */
	c = tstore_branch(s, "c", fx->br);
	assert_int_equal(store_rmdir(s, c, fx->root, "d"), -ENOTEMPTY);
	assert_int_equal(store_unlink(s, c, d, "x"), 0);
	assert_int_equal(store_rmdir(s, c, fx->root, "d"), -ENOTEMPTY);
	assert_int_equal(store_rmdir(s, c, d, "e"), 0);
	assert_int_equal(store_rmdir(s, c, fx->root, "d"), 0);
	TSTORE_LS_EQ(s, c, STORE_SEQ_LATEST, fx->root, "");
	assert_int_equal(tstore_lookup_rc(s, c, STORE_SEQ_LATEST, fx->root,
					  "d"),
			 -ENOENT);
	/* creating in a removed directory fails */
	{
		struct store_attr a = tstore_attr(S_IFREG | 0644);
		uint64_t ino;

		assert_int_equal(store_create(s, c, d, "y", &a, NULL, &ino,
					      NULL),
				 -ENOENT);
	}
	/* the parent still has it all */
	TSTORE_LS_EQ(s, fx->br, STORE_SEQ_LATEST, fx->root, "d");
	TSTORE_LS_EQ(s, fx->br, STORE_SEQ_LATEST, d, "e,x");
}

static void test_store_dir_link_nlink(void **state)
{
	struct tstore_fx *fx = *state;
	struct store *s = fx->s;
	struct store_attr out;
	uint64_t f, d, c;

	f = tstore_mkfile(s, fx->br, fx->root, "f");
	d = tstore_mkdir(s, fx->br, fx->root, "d");
	assert_int_equal(store_link(s, fx->br, f, d, "g", &out), 0);
	assert_int_equal(out.nlink, 2);
	assert_int_equal(tstore_lookup(s, fx->br, d, "g"), f);
	tstore_write_pat(s, fx->br, tstore_lookup(s, fx->br, d, "g"), 1, 0,
			 50);
	tstore_expect_pat(s, fx->br, tstore_lookup(s, fx->br, fx->root, "f"),
			  1, 0, 50);
	assert_int_equal(store_link(s, fx->br, f, d, "g", NULL), -EEXIST);
	assert_int_equal(store_link(s, fx->br, d, fx->root, "dl", NULL),
			 -EPERM);

	c = tstore_branch(s, "c", fx->br);
	assert_int_equal(store_link(s, c, f, fx->root, "h", NULL), 0);
	assert_int_equal(tstore_nlink(s, c, f), 3);
	assert_int_equal(tstore_nlink(s, fx->br, f), 2);
	assert_int_equal(store_unlink(s, c, fx->root, "f"), 0);
	assert_int_equal(store_unlink(s, c, d, "g"), 0);
	assert_int_equal(tstore_nlink(s, c, f), 1);
	tstore_expect_pat(s, c, tstore_lookup(s, c, fx->root, "h"), 1, 0, 50);
	assert_int_equal(tstore_nlink(s, fx->br, f), 2);
	TSTORE_LS_EQ(s, fx->br, STORE_SEQ_LATEST, d, "g");

	assert_int_equal(store_unlink(s, fx->br, fx->root, "f"), 0);
	assert_int_equal(tstore_nlink(s, fx->br, f), 1);
	tstore_expect_pat(s, fx->br, f, 1, 0, 50);
}

/* An unlinked inode stays readable and writable by number. */
static void test_store_dir_unlinked_inode_usable(void **state)
{
	struct tstore_fx *fx = *state;
	struct store *s = fx->s;
	struct store_attr a;
	uint64_t f;

	f = tstore_mkfile(s, fx->br, fx->root, "f");
	tstore_write_pat(s, fx->br, f, 1, 0, 3 * STORE_BLOCK_SIZE);
	assert_int_equal(store_unlink(s, fx->br, fx->root, "f"), 0);
	assert_int_equal(store_getattr(s, fx->br, STORE_SEQ_LATEST, f, &a), 0);
	assert_int_equal(a.nlink, 0);
	tstore_expect_pat(s, fx->br, f, 1, 0, 3 * STORE_BLOCK_SIZE);
	tstore_write_pat(s, fx->br, f, 2, 10, 10);
	tstore_expect_pat(s, fx->br, f, 2, 10, 10);
	TSTORE_LS_EQ(s, fx->br, STORE_SEQ_LATEST, fx->root, "");
}

static void test_store_dir_symlink(void **state)
{
	struct tstore_fx *fx = *state;
	struct store *s = fx->s;
	static char longt[STORE_SYMLINK_MAX + 2];
	struct store_attr a = tstore_attr(S_IFLNK | 0777), got;
	char buf[16];
	uint64_t l, f, ino;

	l = tstore_mknod(s, fx->br, fx->root, "l", S_IFLNK | 0777,
			 "/some/where/far/away");
	f = tstore_mkfile(s, fx->br, fx->root, "f");
	assert_int_equal(store_getattr(s, fx->br, STORE_SEQ_LATEST, l, &got),
			 0);
	assert_true(S_ISLNK(got.mode));
	assert_int_equal(got.size, 20);
	assert_int_equal(store_readlink(s, fx->br, STORE_SEQ_LATEST, l, buf,
					sizeof(buf)),
			 20);
	assert_string_equal(buf, "/some/where/far");
	assert_int_equal(store_readlink(s, fx->br, STORE_SEQ_LATEST, f, buf,
					sizeof(buf)),
			 -EINVAL);
	memset(longt, 'x', STORE_SYMLINK_MAX + 1);
	assert_int_equal(store_create(s, fx->br, fx->root, "long", &a, longt,
				      &ino, NULL),
			 -ENAMETOOLONG);
	longt[STORE_SYMLINK_MAX] = '\0';
	assert_int_equal(store_create(s, fx->br, fx->root, "long", &a, longt,
				      &ino, NULL),
			 0);
	{
		static char back[STORE_SYMLINK_MAX + 1];

		assert_int_equal(store_readlink(s, fx->br, STORE_SEQ_LATEST,
						ino, back, sizeof(back)),
				 STORE_SYMLINK_MAX);
		assert_string_equal(back, longt);
	}
	/* inherited by a child */
	{
		uint64_t c = tstore_branch(s, "c", fx->br);
		char t[64];

		assert_int_equal(store_readlink(s, c, STORE_SEQ_LATEST, l, t,
						sizeof(t)),
				 20);
		assert_string_equal(t, "/some/where/far/away");
	}
}

static void test_store_dir_drop_names(void **state)
{
	struct tstore_fx *fx = *state;
	struct store *s = fx->s;
	static const char *const drop[] = { "postmaster.pid",
					    "postmaster.opts", "absent",
					    NULL };
	struct store_branch_create_args a;
	struct store_branch_info bi;
	uint64_t pid, base, sub;

	pid = tstore_mkfile(s, fx->br, fx->root, "postmaster.pid");
	tstore_write_pat(s, fx->br, pid, 1, 0, 100);
	tstore_mkfile(s, fx->br, fx->root, "postmaster.opts");
	base = tstore_mkdir(s, fx->br, fx->root, "base");
	/* only root-directory entries are dropped */
	sub = tstore_mkfile(s, fx->br, base, "postmaster.pid");
	(void)sub;

	a = tstore_args("c", fx->br, STORE_SEQ_LATEST);
	a.drop_names = drop;
	assert_int_equal(store_branch_create(s, &a, &bi), 0);
	TSTORE_LS_EQ(s, bi.id, STORE_SEQ_LATEST, fx->root, "base");
	TSTORE_LS_EQ(s, bi.id, STORE_SEQ_LATEST, base, "postmaster.pid");
	assert_int_equal(tstore_lookup_rc(s, bi.id, STORE_SEQ_LATEST, fx->root,
					  "postmaster.pid"),
			 -ENOENT);
	TSTORE_LS_EQ(s, fx->br, STORE_SEQ_LATEST, fx->root,
		     "base,postmaster.opts,postmaster.pid");
	tstore_expect_pat(s, fx->br, pid, 1, 0, 100);
	/* the child can make its own */
	tstore_mkfile(s, bi.id, fx->root, "postmaster.pid");
	TSTORE_LS_EQ(s, bi.id, STORE_SEQ_LATEST, fx->root,
		     "base,postmaster.pid");
	/* a grandchild without drop_names inherits the child's view */
	{
		uint64_t g = tstore_branch(s, "g", bi.id);

		TSTORE_LS_EQ(s, g, STORE_SEQ_LATEST, fx->root,
			     "base,postmaster.pid");
		assert_int_not_equal(tstore_lookup(s, g, fx->root,
						   "postmaster.pid"),
				     pid);
	}
}

static void test_store_dir_setattr(void **state)
{
	struct tstore_fx *fx = *state;
	struct store *s = fx->s;
	struct store_attr a = tstore_attr(0), out;
	uint64_t f, d;

	f = tstore_mkfile(s, fx->br, fx->root, "f");
	d = tstore_mkdir(s, fx->br, fx->root, "d");
	a.mode = 07777 | S_IFDIR; /* the type bits must be ignored */
	a.uid = 999;
	a.gid = 998;
	a.mtime.tv_sec = 12345;
	a.mtime.tv_nsec = 678;
	assert_int_equal(store_setattr(s, fx->br, f, &a,
				       STORE_SET_MODE | STORE_SET_UID |
					       STORE_SET_GID | STORE_SET_MTIME,
				       &out),
			 0);
	assert_int_equal(out.mode, S_IFREG | 07777);
	assert_int_equal(out.uid, 999);
	assert_int_equal(out.gid, 998);
	assert_int_equal(out.mtime.tv_sec, 12345);
	assert_int_equal(out.mtime.tv_nsec, 678);
	assert_int_equal(store_getattr(s, fx->br, STORE_SEQ_LATEST, f, &out),
			 0);
	assert_int_equal(out.uid, 999);
	a.size = 10;
	assert_int_equal(store_setattr(s, fx->br, d, &a, STORE_SET_SIZE, NULL),
			 -EISDIR);
	{
		uint64_t l = tstore_mknod(s, fx->br, fx->root, "l",
					  S_IFLNK | 0777, "x");

		assert_int_equal(store_setattr(s, fx->br, l, &a,
					       STORE_SET_SIZE, NULL),
				 -EINVAL);
	}
}

/* Names that are prefixes of each other, or differ only in high or control
 * bytes: each is its own entry, a tombstone of one hides no other, and
 * readdir sorts bytewise. */
static void test_store_dir_prefix_and_byte_names(void **state)
{
	struct tstore_fx *fx = *state;
	struct store *s = fx->s;
	static const char *const names[] = { "a", "ab", "a\x01", "a\xff",
					     "\xff", "\x01", "A", "a b",
					     "abc", NULL };
	struct store_dirent *d = NULL;
	uint64_t inos[16], c;
	size_t n = 0, i;

	for (i = 0; names[i]; i++)
		inos[i] = tstore_mkfile(s, fx->br, fx->root, names[i]);
	for (i = 0; names[i]; i++)
		assert_int_equal(tstore_lookup(s, fx->br, fx->root, names[i]),
				 inos[i]);
	c = tstore_branch(s, "c", fx->br);
	assert_int_equal(store_unlink(s, c, fx->root, "a"), 0);
	assert_int_equal(store_unlink(s, c, fx->root, "a\xff"), 0);
	assert_int_equal(store_rename(s, c, fx->root, "ab", fx->root, "abcd",
				      0),
			 0);
	assert_int_equal(store_readdir(s, c, STORE_SEQ_LATEST, fx->root, &d,
				       &n),
			 0);
	assert_int_equal(n, 7);
	for (i = 1; i < n; i++)
		assert_true(strcmp(d[i - 1].name, d[i].name) < 0);
	assert_string_equal(d[0].name, "\x01");
	assert_string_equal(d[n - 1].name, "\xff");
	free(d);
	assert_int_equal(tstore_lookup_rc(s, c, STORE_SEQ_LATEST, fx->root,
					  "a"),
			 -ENOENT);
	assert_int_equal(tstore_lookup(s, c, fx->root, "a\x01"), inos[2]);
	assert_int_equal(tstore_lookup(s, c, fx->root, "abc"), inos[8]);
	assert_int_equal(tstore_lookup(s, c, fx->root, "abcd"), inos[1]);
	assert_int_equal(tstore_lookup_rc(s, c, STORE_SEQ_LATEST, fx->root,
					  "ab"),
			 -ENOENT);
	/* the parent has all of them still */
	assert_int_equal(store_readdir(s, fx->br, STORE_SEQ_LATEST, fx->root,
				       &d, &n),
			 0);
	assert_int_equal(n, 9);
	free(d);
}

/* A big directory merged across three levels with tombstones. */
static void test_store_dir_large_merged(void **state)
{
	struct tstore_fx *fx = *state;
	struct store *s = fx->s;
	enum { N = 1500 };
	struct store_dirent *d = NULL;
	uint64_t dir, c, g;
	char name[32];
	size_t n = 0, i, want;
	int k;

	dir = tstore_mkdir(s, fx->br, fx->root, "big");
	for (k = 0; k < N; k++) {
		snprintf(name, sizeof(name), "e%05d", k);
		tstore_mkfile(s, fx->br, dir, name);
	}
	c = tstore_branch(s, "c", fx->br);
	for (k = 0; k < N; k += 3) {
		snprintf(name, sizeof(name), "e%05d", k);
		assert_int_equal(store_unlink(s, c, dir, name), 0);
	}
	for (k = N; k < N + 200; k++) {
		snprintf(name, sizeof(name), "e%05d", k);
		tstore_mkfile(s, c, dir, name);
	}
	g = tstore_branch(s, "g", c);
	for (k = 1; k < N; k += 3) {
		snprintf(name, sizeof(name), "e%05d", k);
		assert_int_equal(store_unlink(s, g, dir, name), 0);
	}
	for (k = 0; k < N; k += 3) { /* re-create what c removed */
		snprintf(name, sizeof(name), "e%05d", k);
		tstore_mkfile(s, g, dir, name);
	}
	/* parent in the meantime */
	for (k = N + 1000; k < N + 1100; k++) {
		snprintf(name, sizeof(name), "e%05d", k);
		tstore_mkfile(s, fx->br, dir, name);
	}
	assert_int_equal(store_readdir(s, g, STORE_SEQ_LATEST, dir, &d, &n), 0);
	want = N - (N + 1) / 3 + 200; /* N minus every k%3==1, plus 200 */
	assert_int_equal(n, want);
	for (i = 0; i < n; i++) {
		int kk = atoi(d[i].name + 1);

		assert_true(kk % 3 != 1 || kk >= N);
		assert_true(kk < N + 200);
		if (i)
			assert_true(strcmp(d[i - 1].name, d[i].name) < 0);
	}
	free(d);
	assert_int_equal(store_readdir(s, c, STORE_SEQ_LATEST, dir, &d, &n), 0);
	assert_int_equal(n, N - (N + 2) / 3 + 200);
	free(d);
	assert_int_equal(store_readdir(s, fx->br, STORE_SEQ_LATEST, dir, &d,
				       &n),
			 0);
	assert_int_equal(n, N + 100);
	free(d);
	/* rmdir needs every inherited entry gone */
	assert_int_equal(store_rmdir(s, g, fx->root, "big"), -ENOTEMPTY);
}

/* Emptiness for rename over a directory merges the ancestry too. */
static void test_store_dir_rename_over_dir_emptied_in_child(void **state)
{
	struct tstore_fx *fx = *state;
	struct store *s = fx->s;
	uint64_t d1, d2, c;

	d1 = tstore_mkdir(s, fx->br, fx->root, "d1");
	d2 = tstore_mkdir(s, fx->br, fx->root, "d2");
	tstore_mkfile(s, fx->br, d1, "x");
	tstore_mkfile(s, fx->br, d2, "y");
	c = tstore_branch(s, "c", fx->br);
	assert_int_equal(store_rename(s, c, fx->root, "d1", fx->root, "d2", 0),
			 -ENOTEMPTY);
	assert_int_equal(store_unlink(s, c, d2, "y"), 0);
	assert_int_equal(store_rename(s, c, fx->root, "d1", fx->root, "d2", 0),
			 0);
	TSTORE_LS_EQ(s, c, STORE_SEQ_LATEST, fx->root, "d2");
	assert_int_equal(tstore_lookup(s, c, fx->root, "d2"), d1);
	TSTORE_LS_EQ(s, c, STORE_SEQ_LATEST, d1, "x");
	/* parent untouched, still refuses */
	assert_int_equal(store_rename(s, fx->br, fx->root, "d1", fx->root, "d2",
				      0),
			 -ENOTEMPTY);
	TSTORE_LS_EQ(s, fx->br, STORE_SEQ_LATEST, fx->root, "d1,d2");
	TSTORE_LS_EQ(s, fx->br, STORE_SEQ_LATEST, d2, "y");
}

/* drop_names may name a directory: the child does not see it and can make
 * its own. */
static void test_store_dir_drop_names_directory(void **state)
{
	struct tstore_fx *fx = *state;
	struct store *s = fx->s;
	static const char *const drop[] = { "tmpdir", NULL };
	struct store_branch_create_args a;
	struct store_branch_info bi;
	uint64_t d, nd;

	d = tstore_mkdir(s, fx->br, fx->root, "tmpdir");
	tstore_mkfile(s, fx->br, d, "inside");
	tstore_mkfile(s, fx->br, fx->root, "keep");
	a = tstore_args("c", fx->br, STORE_SEQ_LATEST);
	a.drop_names = drop;
	assert_int_equal(store_branch_create(s, &a, &bi), 0);
	TSTORE_LS_EQ(s, bi.id, STORE_SEQ_LATEST, fx->root, "keep");
	nd = tstore_mkdir(s, bi.id, fx->root, "tmpdir");
	assert_int_not_equal(nd, d);
	TSTORE_LS_EQ(s, bi.id, STORE_SEQ_LATEST, nd, "");
	TSTORE_LS_EQ(s, fx->br, STORE_SEQ_LATEST, d, "inside");
	/* drop_names are ignored for a branch without a parent */
	a = tstore_args("fresh", 0, STORE_SEQ_LATEST);
	a.drop_names = drop;
	assert_int_equal(store_branch_create(s, &a, &bi), 0);
	TSTORE_LS_EQ(s, bi.id, STORE_SEQ_LATEST, bi.root_ino, "");
}

/* drop_names may hold fnmatch(3) patterns, matched against the parent's
 * root only (the sockets and socket lock files of a server whose
 * unix_socket_directories is its data directory), at a fork and at a
 * reset; a plain name that a pattern also matches is dropped once. */
static void test_store_dir_drop_patterns(void **state)
{
	struct tstore_fx *fx = *state;
	struct store *s = fx->s;
	static const char *const drop[] = { "postmaster.pid", ".s.PGSQL.5432",
					    ".s.PGSQL.*", NULL };
	struct store_attr sa = tstore_attr(S_IFSOCK | 0777), out;
	struct store_branch_create_args a;
	struct store_branch_info bi;
	uint64_t sock, lock, base;

	assert_int_equal(store_create(s, fx->br, fx->root, ".s.PGSQL.5432", &sa,
				      NULL, &sock, &out),
			 0);
	lock = tstore_mkfile(s, fx->br, fx->root, ".s.PGSQL.5432.lock");
	tstore_mkfile(s, fx->br, fx->root, ".s.PGSQL.6000.lock");
	tstore_mkfile(s, fx->br, fx->root, "postmaster.pid");
	tstore_mkfile(s, fx->br, fx->root, "s.PGSQL.1");
	base = tstore_mkdir(s, fx->br, fx->root, "base");
	tstore_mkfile(s, fx->br, base, ".s.PGSQL.7");

	a = tstore_args("c", fx->br, STORE_SEQ_LATEST);
	a.drop_names = drop;
	assert_int_equal(store_branch_create(s, &a, &bi), 0);
	TSTORE_LS_EQ(s, bi.id, STORE_SEQ_LATEST, fx->root, "base,s.PGSQL.1");
	TSTORE_LS_EQ(s, bi.id, STORE_SEQ_LATEST, base, ".s.PGSQL.7");
	TSTORE_LS_EQ(s, fx->br, STORE_SEQ_LATEST, fx->root,
		     ".s.PGSQL.5432,.s.PGSQL.5432.lock,.s.PGSQL.6000.lock,"
		     "base,postmaster.pid,s.PGSQL.1");
	/* the branch counts the parent's link gone once, the parent keeps it */
	assert_int_equal(tstore_nlink(s, bi.id, sock), 0);
	assert_int_equal(tstore_nlink(s, bi.id, lock), 0);
	assert_int_equal(tstore_nlink(s, fx->br, sock), 1);
	/* the branch's own server makes its own */
	tstore_mkfile(s, bi.id, fx->root, ".s.PGSQL.5432.lock");
	TSTORE_LS_EQ(s, bi.id, STORE_SEQ_LATEST, fx->root,
		     ".s.PGSQL.5432.lock,base,s.PGSQL.1");
	/* entries at two levels of the ancestry, and many others beside them */
	{
		struct store_branch_info gi;
		char name[32];
		int i;

		for (i = 0; i < 300; i++) {
			snprintf(name, sizeof(name), ".s.PGSQM.%d", i);
			tstore_mkfile(s, bi.id, fx->root, name);
		}
		a = tstore_args("g", bi.id, STORE_SEQ_LATEST);
		a.drop_names = drop;
		assert_int_equal(store_branch_create(s, &a, &gi), 0);
		assert_int_equal(tstore_lookup_rc(s, gi.id, STORE_SEQ_LATEST,
						  fx->root, ".s.PGSQL.5432.lock"),
				 -ENOENT);
		assert_int_equal(tstore_lookup_rc(s, gi.id, STORE_SEQ_LATEST,
						  fx->root, ".s.PGSQM.299"),
				 0);
		assert_int_equal(tstore_lookup_rc(s, gi.id, STORE_SEQ_LATEST,
						  fx->root, "s.PGSQL.1"),
				 0);
		assert_int_equal(store_branch_delete(s, gi.id), 0);
		for (i = 0; i < 300; i++) {
			snprintf(name, sizeof(name), ".s.PGSQM.%d", i);
			assert_int_equal(store_unlink(s, bi.id, fx->root, name),
					 0);
		}
	}
	/* a reset drops them again, from the parent's current state */
	tstore_mkfile(s, fx->br, fx->root, ".s.PGSQL.7000.lock");
	assert_int_equal(store_branch_reset(s, bi.id, drop), 0);
	TSTORE_LS_EQ(s, bi.id, STORE_SEQ_LATEST, fx->root, "base,s.PGSQL.1");
	/* without drop_names a child keeps every entry */
	assert_int_equal(store_branch_reset(s, bi.id, NULL), 0);
	TSTORE_LS_EQ(s, bi.id, STORE_SEQ_LATEST, fx->root,
		     ".s.PGSQL.5432,.s.PGSQL.5432.lock,.s.PGSQL.6000.lock,"
		     ".s.PGSQL.7000.lock,base,postmaster.pid,s.PGSQL.1");
}

/* With store_config.drop_marker, drop_names apply in the root and, when the
 * root holds no marker, in the marked directories up to drop_depth below it
 * (a branch used as /var/lib/postgresql: 15/main, 18/docker), never below a
 * marked directory, never in unmarked ones. */
static void test_store_dir_drop_data_dirs(void **state)
{
	struct tstore_fx *fx = *state;
	static const char *const drop[] = { "postmaster.pid", ".s.PGSQL.*",
					    NULL };
	struct store_branch_create_args a;
	struct store_branch_info bi;
	struct store_config cfg;
	uint64_t v15, main15, v18, docker, other, deep, dirs[STORE_DROP_DIRS];
	uint64_t d3, base, one, pdir;
	struct store *s;
	size_t n;

	/* a marker that is no valid name, or a depth too deep: EINVAL */
	tstore_config(&cfg, true, NULL);
	cfg.drop_marker = "a/b";
	cfg.drop_depth = 2;
	assert_int_equal(store_close(fx->s), 0);
	fx->s = NULL;
	assert_int_equal(store_open(fx->dir, &cfg, &s), -EINVAL);
	cfg.drop_marker = "PG_VERSION";
	cfg.drop_depth = STORE_DROP_DEPTH_MAX + 1;
	assert_int_equal(store_open(fx->dir, &cfg, &s), -EINVAL);
	cfg.drop_depth = 2;
	assert_int_equal(store_open(fx->dir, &cfg, &fx->s), 0);
	s = fx->s;

	tstore_mkfile(s, fx->br, fx->root, "postmaster.pid");
	v15 = tstore_mkdir(s, fx->br, fx->root, "15");
	main15 = tstore_mkdir(s, fx->br, v15, "main");
	tstore_mkfile(s, fx->br, main15, "PG_VERSION");
	tstore_mkfile(s, fx->br, main15, "postmaster.pid");
	tstore_mkfile(s, fx->br, main15, ".s.PGSQL.5432.lock");
	v18 = tstore_mkdir(s, fx->br, fx->root, "18");
	docker = tstore_mkdir(s, fx->br, v18, "docker");
	tstore_mkfile(s, fx->br, docker, "PG_VERSION");
	tstore_mkfile(s, fx->br, docker, "postmaster.pid");
	/* below a marked directory: not looked into */
	base = tstore_mkdir(s, fx->br, docker, "base");
	one = tstore_mkdir(s, fx->br, base, "1");
	tstore_mkfile(s, fx->br, one, "PG_VERSION");
	tstore_mkfile(s, fx->br, one, "postmaster.pid");
	/* unmarked, and marked but three levels down: kept */
	other = tstore_mkdir(s, fx->br, fx->root, "other");
	tstore_mkfile(s, fx->br, other, "postmaster.pid");
	deep = tstore_mkdir(s, fx->br, other, "x");
	d3 = tstore_mkdir(s, fx->br, deep, "y");
	tstore_mkfile(s, fx->br, d3, "PG_VERSION");
	tstore_mkfile(s, fx->br, d3, "postmaster.pid");
	/* a plain file named like a directory level is no directory */
	tstore_mkfile(s, fx->br, fx->root, "notes");

	assert_int_equal(store_drop_dirs(s, fx->br, STORE_SEQ_LATEST, fx->root,
					 dirs, &n),
			 0);
	assert_int_equal(n, 3);
	assert_int_equal(dirs[0], fx->root);
	assert_int_equal(dirs[1], main15);
	assert_int_equal(dirs[2], docker);
	/* the same, with depth and path (the tablespace rule's ".." and
	 * its messages) */
	{
		struct store_drop_dir *nd = calloc(STORE_DROP_DIRS,
						   sizeof(*nd));
		size_t nn;

		assert_non_null(nd);
		assert_int_equal(store_drop_dirs_named(s, fx->br,
						       STORE_SEQ_LATEST,
						       fx->root, nd, &nn),
				 0);
		assert_int_equal(nn, 3);
		assert_int_equal(nd[0].ino, fx->root);
		assert_int_equal(nd[0].depth, 0);
		assert_string_equal(nd[0].path, "");
		assert_int_equal(nd[1].ino, main15);
		assert_int_equal(nd[1].depth, 2);
		assert_string_equal(nd[1].path, "15/main");
		assert_int_equal(nd[2].ino, docker);
		assert_int_equal(nd[2].depth, 2);
		assert_string_equal(nd[2].path, "18/docker");
		free(nd);
	}

	a = tstore_args("c", fx->br, STORE_SEQ_LATEST);
	a.drop_names = drop;
	assert_int_equal(store_branch_create(s, &a, &bi), 0);
	TSTORE_LS_EQ(s, bi.id, STORE_SEQ_LATEST, fx->root,
		     "15,18,notes,other");
	TSTORE_LS_EQ(s, bi.id, STORE_SEQ_LATEST, main15, "PG_VERSION");
	TSTORE_LS_EQ(s, bi.id, STORE_SEQ_LATEST, docker, "PG_VERSION,base");
	TSTORE_LS_EQ(s, bi.id, STORE_SEQ_LATEST, one,
		     "PG_VERSION,postmaster.pid");
	TSTORE_LS_EQ(s, bi.id, STORE_SEQ_LATEST, other, "postmaster.pid,x");
	TSTORE_LS_EQ(s, bi.id, STORE_SEQ_LATEST, d3,
		     "PG_VERSION,postmaster.pid");
	/* the parent keeps its own */
	TSTORE_LS_EQ(s, fx->br, STORE_SEQ_LATEST, main15,
		     ".s.PGSQL.5432.lock,PG_VERSION,postmaster.pid");

	/* a reset drops them again, from the parent's current state */
	tstore_mkfile(s, bi.id, main15, "postmaster.pid");
	assert_int_equal(store_branch_reset(s, bi.id, drop), 0);
	TSTORE_LS_EQ(s, bi.id, STORE_SEQ_LATEST, main15, "PG_VERSION");
	TSTORE_LS_EQ(s, bi.id, STORE_SEQ_LATEST, docker, "PG_VERSION,base");

	/* a marked root is the only data directory */
	tstore_mkfile(s, fx->br, fx->root, "PG_VERSION");
	assert_int_equal(store_drop_dirs(s, fx->br, STORE_SEQ_LATEST, fx->root,
					 dirs, &n),
			 0);
	assert_int_equal(n, 1);
	a = tstore_args("d", fx->br, STORE_SEQ_LATEST);
	a.drop_names = drop;
	assert_int_equal(store_branch_create(s, &a, &bi), 0);
	TSTORE_LS_EQ(s, bi.id, STORE_SEQ_LATEST, fx->root,
		     "15,18,PG_VERSION,notes,other");
	TSTORE_LS_EQ(s, bi.id, STORE_SEQ_LATEST, main15,
		     ".s.PGSQL.5432.lock,PG_VERSION,postmaster.pid");

	/* more than STORE_DROP_SCAN subdirectories: the first ones only */
	assert_int_equal(store_unlink(s, fx->br, fx->root, "PG_VERSION"), 0);
	pdir = tstore_mkdir(s, fx->br, fx->root, "many");
	for (int i = 0; i < (int)STORE_DROP_SCAN + 4; i++) {
		char name[16];
		uint64_t d;

		snprintf(name, sizeof(name), "d%02d", i);
		d = tstore_mkdir(s, fx->br, pdir, name);
		tstore_mkfile(s, fx->br, d, "PG_VERSION");
	}
	assert_int_equal(store_drop_dirs(s, fx->br, STORE_SEQ_LATEST, fx->root,
					 dirs, &n),
			 0);
	assert_int_equal(n, STORE_DROP_DIRS);
	assert_int_equal(dirs[1], main15);
	assert_int_equal(dirs[2], docker);

	/* Of a directory only the first STORE_DROP_LIST names are looked at,
	 * in name order (here of two ancestry levels, the root's names 15 and
	 * 18 from the parent): a root of many files forks in constant
	 * time. */
	{
		uint64_t late, early, g;
		char name[16];

		late = tstore_mkdir(s, bi.id, fx->root, "zdata");
		tstore_mkfile(s, bi.id, late, "PG_VERSION");
		tstore_mkfile(s, bi.id, late, "postmaster.pid");
		assert_int_equal(store_unlink(s, bi.id, fx->root, "PG_VERSION"),
				 0);
		for (int i = 0; i < (int)STORE_DROP_LIST; i++) {
			snprintf(name, sizeof(name), "a%03d", i);
			tstore_mkfile(s, bi.id, fx->root, name);
		}
		assert_int_equal(store_drop_dirs(s, bi.id, STORE_SEQ_LATEST,
						 fx->root, dirs, &n),
				 0);
		for (size_t j = 0; j < n; j++)
			assert_int_not_equal(dirs[j], late);
		/* a marked directory named before them is found */
		early = tstore_mkdir(s, bi.id, fx->root, "0data");
		tstore_mkfile(s, bi.id, early, "PG_VERSION");
		tstore_mkfile(s, bi.id, early, "postmaster.pid");
		assert_int_equal(store_drop_dirs(s, bi.id, STORE_SEQ_LATEST,
						 fx->root, dirs, &n),
				 0);
		assert_int_equal(n, 4); /* and 15/main, 18/docker */
		assert_int_equal(dirs[1], early);
		{
			struct store_drop_dir *nd =
				calloc(STORE_DROP_DIRS, sizeof(*nd));
			size_t nn;

			assert_non_null(nd);
			assert_int_equal(store_drop_dirs_named(s, bi.id,
							       STORE_SEQ_LATEST,
							       fx->root, nd,
							       &nn),
					 0);
			assert_int_equal(nn, 4);
			assert_int_equal(nd[1].ino, early);
			assert_int_equal(nd[1].depth, 1);
			assert_string_equal(nd[1].path, "0data");
			assert_string_equal(nd[2].path, "15/main");
			free(nd);
		}
		g = bi.id; /* the grandchild forks from it */
		a = tstore_args("g3", g, STORE_SEQ_LATEST);
		a.drop_names = drop;
		assert_int_equal(store_branch_create(s, &a, &bi), 0);
		TSTORE_LS_EQ(s, bi.id, STORE_SEQ_LATEST, early, "PG_VERSION");
		TSTORE_LS_EQ(s, bi.id, STORE_SEQ_LATEST, late,
			     "PG_VERSION,postmaster.pid");
	}
}

#define T(f) cmocka_unit_test_setup_teardown(f, tstore_fx_setup, \
					     tstore_fx_teardown)

int main(void)
{
	const struct CMUnitTest tests[] = {
		T(test_store_dir_create_lookup_readdir),
		T(test_store_dir_merge_tombstones),
		T(test_store_dir_rename_within_and_across),
		T(test_store_dir_rename_replace),
		T(test_store_dir_rename_exchange),
		T(test_store_dir_rmdir),
		T(test_store_dir_link_nlink),
		T(test_store_dir_unlinked_inode_usable),
		T(test_store_dir_symlink),
		T(test_store_dir_drop_names),
		T(test_store_dir_drop_patterns),
		T(test_store_dir_setattr),
		T(test_store_dir_prefix_and_byte_names),
		T(test_store_dir_large_merged),
		T(test_store_dir_rename_over_dir_emptied_in_child),
		T(test_store_dir_drop_names_directory),
		T(test_store_dir_drop_data_dirs),
	};

	return cmocka_run_group_tests_name("store_dir", tests, NULL, NULL);
}
