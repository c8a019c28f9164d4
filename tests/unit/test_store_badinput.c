/* SPDX-License-Identifier: MIT */
/*
 * test_store_badinput.c - cmocka tests feeding the store bad input: bad
 * names, unknown branches and inodes, seqs in the future or before a
 * branch existed, deleting a branch with children, duplicate names, and
 * store_open() on directories that are missing or are not stores.  Each
 * must fail with the documented errno and leave the store usable.
 *
 * Locking against a second handle or process is in test_store_persist.c.
 */
#include <dirent.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "store/compress.h"
#include "store/digest.h"
#include "store/kv.h"
#include "store/store_int.h"
#include "tests/unit/test_store_common.h"

struct tstore_badname {
	const char *name;
	int err;
};

static char tstore_name255[STORE_NAME_MAX + 1];
static char tstore_name256[STORE_NAME_MAX + 2];

static const struct tstore_badname *tstore_badnames(void)
{
	static struct tstore_badname t[8];

	memset(tstore_name255, 'n', STORE_NAME_MAX);
	memset(tstore_name256, 'n', STORE_NAME_MAX + 1);
	t[0] = (struct tstore_badname){ "", -EINVAL };
	t[1] = (struct tstore_badname){ ".", -EINVAL };
	t[2] = (struct tstore_badname){ "..", -EINVAL };
	t[3] = (struct tstore_badname){ "a/b", -EINVAL };
	t[4] = (struct tstore_badname){ "/", -EINVAL };
	t[5] = (struct tstore_badname){ "trailing/", -EINVAL };
	t[6] = (struct tstore_badname){ tstore_name256, -ENAMETOOLONG };
	t[7] = (struct tstore_badname){ NULL, 0 };
	return t;
}

static void test_store_badinput_name_check(void **state)
{
	const struct tstore_badname *t = tstore_badnames();

	(void)state;
	for (; t->name; t++)
		assert_int_equal(store_name_check(t->name), t->err);
	assert_int_equal(store_name_check(tstore_name255), 0);
	assert_int_equal(store_name_check("..."), 0);
	assert_int_equal(store_name_check(".hidden"), 0);
	assert_int_equal(store_name_check("a b\tc"), 0);
	assert_int_equal(store_name_check("\xc3\xa9t\xc3\xa9"), 0);
}

static void test_store_badinput_entry_names(void **state)
{
	struct tstore_fx *fx = *state;
	struct store *s = fx->s;
	const struct tstore_badname *t = tstore_badnames();
	struct store_attr a = tstore_attr(S_IFREG | 0644);
	uint64_t f, d, ino;

	f = tstore_mkfile(s, fx->br, fx->root, "f");
	d = tstore_mkdir(s, fx->br, fx->root, "d");
	for (; t->name; t++) {
		int rc;

		assert_int_equal(store_create(s, fx->br, fx->root, t->name, &a,
					      NULL, &ino, NULL),
				 t->err);
		assert_int_equal(store_link(s, fx->br, f, d, t->name, NULL),
				 t->err);
		assert_int_equal(store_rename(s, fx->br, fx->root, "f", d,
					      t->name, 0),
				 t->err);
		rc = store_lookup(s, fx->br, STORE_SEQ_LATEST, fx->root,
				  t->name, &ino);
		assert_true(rc == t->err || rc == -ENOENT);
		rc = store_unlink(s, fx->br, fx->root, t->name);
		assert_true(rc == t->err || rc == -ENOENT);
		rc = store_rmdir(s, fx->br, fx->root, t->name);
		assert_true(rc == t->err || rc == -ENOENT || rc == -EBUSY ||
			    rc == -ENOTEMPTY);
	}
	/* nothing changed */
	TSTORE_LS_EQ(s, fx->br, STORE_SEQ_LATEST, fx->root, "d,f");
	TSTORE_LS_EQ(s, fx->br, STORE_SEQ_LATEST, d, "");
	/* the longest name works */
	ino = tstore_mkfile(s, fx->br, d, tstore_name255);
	assert_int_equal(tstore_lookup(s, fx->br, d, tstore_name255), ino);
	/* type-less or symlink-without-target creates fail */
	a.mode = 0644;
	assert_int_equal(store_create(s, fx->br, fx->root, "notype", &a, NULL,
				      &ino, NULL),
			 -EINVAL);
	a.mode = S_IFLNK | 0777;
	assert_int_equal(store_create(s, fx->br, fx->root, "notarget", &a,
				      NULL, &ino, NULL),
			 -EINVAL);
	TSTORE_LS_EQ(s, fx->br, STORE_SEQ_LATEST, fx->root, "d,f");
}

static void test_store_badinput_branch_names(void **state)
{
	struct tstore_fx *fx = *state;
	struct store *s = fx->s;
	const struct tstore_badname *t = tstore_badnames();
	struct store_branch_info bi;
	size_t n = 0;
	struct store_branch_info *list = NULL;

	for (; t->name; t++) {
		struct store_branch_create_args a =
			tstore_args(t->name, fx->br, STORE_SEQ_LATEST);

		assert_int_equal(store_branch_create(s, &a, &bi), t->err);
		a.parent_id = 0;
		assert_int_equal(store_branch_create(s, &a, &bi), t->err);
		assert_int_equal(store_branch_rename(s, fx->br, t->name),
				 t->err);
	}
	assert_int_equal(store_branch_list(s, &list, &n), 0);
	assert_int_equal(n, 1);
	assert_string_equal(list[0].name, "root");
	free(list);
	tstore_branch(s, tstore_name255, fx->br);
	tstore_branch(s, "caf\xc3\xa9-\xe6\x97\xa5-\xf0\x9f\x98\x80", fx->br);
	tstore_branch(s, "nb\xc2\xa0sp", fx->br); /* U+00A0, right after C1 */
	tstore_branch(s, "nnb\xe2\x80\xafsp", fx->br); /* U+202F, after U+202E */
	/* branch names may not hold control characters (entry names may) */
	{
		static const char *const ctl[] = { "a\nb",
						   "\x01",
						   "tab\there",
						   "del\x7f",
						   /* C1: U+0080, U+0085, U+009B */
						   "\xc2\x80",
						   "nel\xc2\x85",
						   "\xc2\x9b" "31m",
						   /* bidi overrides, isolates and marks,
						    * line and paragraph separators */
						   "pr-\xe2\x80\xae" "1gnp.exe",
						   "\xe2\x81\xa6x",
						   "a\xe2\x80\x8f",
						   "\xd8\x9c",
						   "two\xe2\x80\xa8lines",
						   /* nor bytes that are not UTF-8 */
						   "bad\xff",
						   "\xc0\xaf",
						   "\xed\xa0\x80",
						   "\xe2\x82",
						   "\xf4\x90\x80\x80",
						   NULL };
		int i;

		for (i = 0; ctl[i]; i++) {
			struct store_branch_create_args a =
				tstore_args(ctl[i], fx->br, STORE_SEQ_LATEST);

			assert_int_equal(store_branch_create(s, &a, &bi),
					 -EINVAL);
			assert_int_equal(store_branch_rename(s, fx->br, ctl[i]),
					 -EINVAL);
		}
	}
}

static void test_store_badinput_unknown_ids(void **state)
{
	struct tstore_fx *fx = *state;
	struct store *s = fx->s;
	struct store_branch_create_args a =
		tstore_args("c", 4242, STORE_SEQ_LATEST);
	struct store_attr at = tstore_attr(S_IFREG | 0644);
	struct store_branch_info bi;
	struct store_dirent *d;
	struct store_usage u;
	const uint64_t nob = 4242, noino = 1ull << 30;
	char buf[16];
	uint64_t ino, f;
	size_t n;
	int rc;

	f = tstore_mkfile(s, fx->br, fx->root, "f");
	assert_int_equal(store_branch_create(s, &a, &bi), -ENOENT);
	assert_int_equal(store_branch_get(s, nob, &bi), -ENOENT);
	rc = store_branch_get(s, 0, &bi);
	assert_true(rc == -ENOENT || rc == -EINVAL);
	rc = store_branch_get(s, STORE_BRANCH_ID_MAX + 1, &bi);
	assert_true(rc == -ENOENT || rc == -EINVAL);
	assert_int_equal(store_branch_lookup(s, "nope", &bi), -ENOENT);
	assert_int_equal(store_branch_delete(s, nob), -ENOENT);
	assert_int_equal(store_branch_rename(s, nob, "x"), -ENOENT);
	assert_int_equal(store_branch_reset(s, nob, NULL), -ENOENT);
	{
		struct store_branch_info *anc = NULL;

		assert_int_equal(store_branch_ancestry(s, nob, &anc, &n),
				 -ENOENT);
		assert_null(anc);
	}
	assert_int_equal(store_branch_usage(s, nob, &u), -ENOENT);

	/* unknown branch in every inode/data call */
	assert_int_equal(store_create(s, nob, fx->root, "x", &at, NULL, &ino,
				      NULL),
			 -ENOENT);
	assert_int_equal(store_getattr(s, nob, STORE_SEQ_LATEST, fx->root, &at),
			 -ENOENT);
	assert_int_equal(store_lookup(s, nob, STORE_SEQ_LATEST, fx->root, "f",
				      &ino),
			 -ENOENT);
	assert_int_equal(store_readdir(s, nob, STORE_SEQ_LATEST, fx->root, &d,
				       &n),
			 -ENOENT);
	assert_int_equal(store_read(s, nob, STORE_SEQ_LATEST, f, buf, 4, 0),
			 -ENOENT);
	assert_int_equal(store_write(s, nob, f, "x", 1, 0, NULL), -ENOENT);
	assert_int_equal(store_unlink(s, nob, fx->root, "f"), -ENOENT);

	/* unknown inode in a known branch */
	assert_int_equal(store_getattr(s, fx->br, STORE_SEQ_LATEST, noino, &at),
			 -ENOENT);
	assert_int_equal(store_read(s, fx->br, STORE_SEQ_LATEST, noino, buf, 4,
				    0),
			 -ENOENT);
	assert_int_equal(store_write(s, fx->br, noino, "x", 1, 0, NULL),
			 -ENOENT);
	assert_int_equal(store_readdir(s, fx->br, STORE_SEQ_LATEST, noino, &d,
				       &n),
			 -ENOENT);
	assert_int_equal(store_link(s, fx->br, noino, fx->root, "l", NULL),
			 -ENOENT);
	assert_int_equal(store_setattr(s, fx->br, noino, &at, STORE_SET_MODE,
				       NULL),
			 -ENOENT);
	rc = store_getattr(s, fx->br, STORE_SEQ_LATEST, STORE_INO_MAX + 1, &at);
	assert_true(rc == -ENOENT || rc == -EINVAL);
	/* the write to an unknown inode created nothing */
	assert_int_equal(store_getattr(s, fx->br, STORE_SEQ_LATEST, noino, &at),
			 -ENOENT);
	TSTORE_LS_EQ(s, fx->br, STORE_SEQ_LATEST, fx->root, "f");
}

static void test_store_badinput_seqs(void **state)
{
	struct tstore_fx *fx = *state;
	struct store *s = fx->s;
	struct store_branch_create_args a;
	struct store_branch_info bi;
	struct store_attr at;
	struct store_dirent *d;
	uint64_t f, before, c, now, ino;
	char buf[8];
	size_t n;

	f = tstore_mkfile(s, fx->br, fx->root, "f");
	tstore_write_pat(s, fx->br, f, 1, 0, 10);
	before = store_seq_now(s);
	tstore_write_pat(s, fx->br, f, 2, 0, 10);
	c = tstore_branch(s, "c", fx->br);
	now = store_seq_now(s);

	/* future seqs */
	a = tstore_args("future", fx->br, now + 1);
	assert_int_equal(store_branch_create(s, &a, &bi), -EINVAL);
	a.at_seq = STORE_SEQ_LATEST - 1;
	assert_int_equal(store_branch_create(s, &a, &bi), -EINVAL);
	assert_int_equal(store_read(s, fx->br, now + 1, f, buf, 4, 0), -EINVAL);
	assert_int_equal(store_getattr(s, fx->br, now + 1, f, &at), -EINVAL);
	assert_int_equal(store_lookup(s, fx->br, now + 1, fx->root, "f", &ino),
			 -EINVAL);
	assert_int_equal(store_readdir(s, fx->br, now + 1, fx->root, &d, &n),
			 -EINVAL);
	/* a seq before the parent branch existed */
	a = tstore_args("tooold", c, before);
	assert_int_equal(store_branch_create(s, &a, &bi), -ERANGE);
	/* and none of them created anything */
	assert_int_equal(store_branch_lookup(s, "future", &bi), -ENOENT);
	assert_int_equal(store_branch_lookup(s, "tooold", &bi), -ENOENT);
	assert_int_equal(store_branch_get(s, c, &bi), 0);
	assert_int_equal(bi.nchildren, 0);
	/* the present and the parent's past are fine */
	tstore_branch_at(s, "ok1", c, store_seq_now(s));
	tstore_branch_at(s, "ok2", fx->br, before);
}

static void test_store_badinput_branch_tree(void **state)
{
	struct tstore_fx *fx = *state;
	struct store *s = fx->s;
	struct store_branch_create_args a;
	struct store_branch_info bi;
	uint64_t c, g, r2;

	c = tstore_branch(s, "c", fx->br);
	g = tstore_branch(s, "g", c);
	assert_int_equal(store_branch_delete(s, fx->br), -ENOTEMPTY);
	assert_int_equal(store_branch_delete(s, c), -ENOTEMPTY);
	a = tstore_args("c", fx->br, STORE_SEQ_LATEST);
	assert_int_equal(store_branch_create(s, &a, &bi), -EEXIST);
	a = tstore_args("g", 0, STORE_SEQ_LATEST);
	assert_int_equal(store_branch_create(s, &a, &bi), -EEXIST);
	assert_int_equal(store_branch_rename(s, c, "g"), -EEXIST);
	/* renaming to its own name is harmless */
	{
		int rc = store_branch_rename(s, c, "c");

		assert_true(rc == 0 || rc == -EEXIST);
	}
	/* a second root branch is its own tree */
	r2 = tstore_branch(s, "r2", 0);
	assert_int_equal(store_branch_get(s, r2, &bi), 0);
	assert_int_equal(bi.parent_id, 0);
	assert_int_not_equal(bi.root_ino, 0);
	TSTORE_LS_EQ(s, r2, STORE_SEQ_LATEST, bi.root_ino, "");
	assert_int_equal(store_branch_delete(s, g), 0);
	assert_int_equal(store_branch_delete(s, g), -ENOENT);
	assert_int_equal(store_branch_delete(s, c), 0);
	assert_int_equal(store_branch_delete(s, fx->br), 0);
	assert_int_equal(store_branch_get(s, r2, &bi), 0);
}

/* ---- store_open on bad directories (no fixture store) ---- */

static void test_store_badinput_open_missing_dir(void **state)
{
	char dir[64], path[128];
	struct store *s = NULL;

	(void)state;
	tstore_mkdtemp(dir, sizeof(dir));
	snprintf(path, sizeof(path), "%s/missing", dir);
	assert_int_equal(tstore_open_dir(path, false, NULL, &s), -ENOENT);
	assert_null(s);
	/* with create it is made */
	assert_int_equal(tstore_open_dir(path, true, NULL, &s), 0);
	assert_non_null(s);
	tstore_branch(s, "main", 0);
	assert_int_equal(store_close(s), 0);
	s = NULL;
	assert_int_equal(tstore_open_dir(path, false, NULL, &s), 0);
	{
		struct store_branch_info bi;

		assert_int_equal(store_branch_lookup(s, "main", &bi), 0);
	}
	assert_int_equal(store_close(s), 0);
	tstore_rmrf(dir);
}

static void test_store_badinput_open_not_a_store(void **state)
{
	char dir[64], path[160];
	unsigned char junk[4096];
	struct store *s = NULL;
	int i, fd;

	(void)state;
	tstore_mkdtemp(dir, sizeof(dir));
	for (i = 0; i < 3; i++) {
		snprintf(path, sizeof(path), "%s/junk%d", dir, i);
		fd = open(path, O_CREAT | O_WRONLY, 0644);
		assert_true(fd >= 0);
		tstore_fill(junk, sizeof(junk), (uint32_t)i, 0);
		assert_int_equal(write(fd, junk, sizeof(junk)), sizeof(junk));
		close(fd);
	}
	snprintf(path, sizeof(path), "%s/CURRENT", dir); /* looks like rocksdb */
	fd = open(path, O_CREAT | O_WRONLY, 0644);
	assert_true(fd >= 0);
	assert_int_equal(write(fd, "garbage\n", 8), 8);
	close(fd);
	snprintf(path, sizeof(path), "%s/subdir", dir);
	assert_int_equal(mkdir(path, 0755), 0);

	assert_int_equal(tstore_open_dir(dir, false, NULL, &s), -EMEDIUMTYPE);
	assert_null(s);
	assert_int_equal(tstore_open_dir(dir, true, NULL, &s), -EMEDIUMTYPE);
	assert_null(s);
	/* nothing was added to or removed from the directory */
	{
		int count = 0;
		char cmd[128];
		FILE *p;

		snprintf(cmd, sizeof(cmd), "ls -A '%s' | wc -l", dir);
		p = popen(cmd, "r");
		assert_non_null(p);
		assert_int_equal(fscanf(p, "%d", &count), 1);
		pclose(p);
		assert_int_equal(count, 5);
	}
	tstore_rmrf(dir);
}

/* A path naming a regular file is not a store either. */
static void test_store_badinput_open_path_is_file(void **state)
{
	char dir[64], path[128];
	struct store *s = NULL;
	int fd, rc;

	(void)state;
	tstore_mkdtemp(dir, sizeof(dir));
	snprintf(path, sizeof(path), "%s/file", dir);
	fd = open(path, O_CREAT | O_WRONLY, 0644);
	assert_true(fd >= 0);
	close(fd);
	rc = tstore_open_dir(path, true, NULL, &s);
	assert_true(rc == -ENOTDIR || rc == -EMEDIUMTYPE || rc == -EEXIST);
	assert_null(s);
	tstore_rmrf(dir);
}

static void tstore_write_file(const char *path, const char *text)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0644);

	assert_true(fd >= 0);
	assert_int_equal(write(fd, text, strlen(text)), (ssize_t)strlen(text));
	close(fd);
}

/* A store from a newer (or unknown) format is refused, not misread; a
 * damaged marker is not a store. */
static void test_store_badinput_open_format_version(void **state)
{
	struct tstore_fx *fx = *state;
	char path[160];
	struct store *s = NULL;

	assert_int_equal(store_close(fx->s), 0);
	fx->s = NULL;
	snprintf(path, sizeof(path), "%s/BRANCHFS", fx->dir);
	tstore_write_file(path, "branchfs-store 99\n");
	assert_int_equal(tstore_open_dir(fx->dir, true, NULL, &s),
			 -EPROTONOSUPPORT);
	assert_null(s);
	tstore_write_file(path, "something else\n");
	assert_int_equal(tstore_open_dir(fx->dir, true, NULL, &s),
			 -EMEDIUMTYPE);
	tstore_write_file(path, "branchfs-store 0\n");
	assert_int_equal(tstore_open_dir(fx->dir, true, NULL, &s),
			 -EPROTONOSUPPORT);
	tstore_write_file(path, "branchfs-store 2\n");
	assert_int_equal(tstore_fx_open(fx), 0);
	assert_int_equal(tstore_root(fx->s, fx->br), fx->root);
}

static uint64_t tb_get64(const unsigned char *p)
{
	uint64_t v = 0;
	int i;

	for (i = 0; i < 8; i++)
		v = v << 8 | p[i];
	return v;
}

/* Compressible text, different in every block. */
static void tb_fill_text(unsigned char *buf, size_t len, unsigned tag)
{
	size_t n = 0;

	while (n < len) {
		char line[64];
		int k = snprintf(line, sizeof(line),
				 "tuple %u/%zu padding     \n", tag, n / 8192);
		size_t c = (size_t)k < len - n ? (size_t)k : len - n;

		memcpy(buf + n, line, c);
		n += c;
	}
}

/* What a store of format 1 holds: every compressed block rewritten as
 * kind 2 (digest of the decoded block), the format record and the marker
 * at 1.  Every data block found must be of the given kind.  Returns how
 * many blocks it rewrote. */
static size_t tb_make_format1(struct tstore_fx *fx, bool damage_one,
			      unsigned kind)
{
	unsigned char fval[12] = "branchfs", out[8192], dg[DIGEST_LEN];
	unsigned char val[1 + DIGEST_LEN + 16384], hdr[17];
	char db[4200], path[4200];
	struct kv_batch b;
	struct kv_iter *it;
	struct kv *kv;
	size_t n = 0;

	snprintf(db, sizeof(db), "%s/db", fx->dir);
	assert_int_equal(kv_rocksdb_open(db, false, 8u << 20, 0, NULL, &kv), 0);
	kv_batch_init(&b);
	assert_int_equal(kv_iter_new(kv, KV_CF_BLOCK, KV_ITER_SCAN, &it), 0);
	for (kv_iter_seek(it, "", 0); kv_iter_valid(it); kv_iter_next(it)) {
		size_t klen, vlen;
		const unsigned char *k = kv_iter_key(it, &klen);
		const unsigned char *v = kv_iter_value(it, &vlen);
		uint64_t ino = tb_get64(k + 8), blk = tb_get64(k + 16);
		ssize_t clen;

		if (vlen == 1)
			continue; /* a hole */
		assert_int_equal(v[0], kind);
		assert_int_equal(store_block_decode(ino, blk, v, vlen, out), 0);
		clen = compress_block(val + 1 + DIGEST_LEN, 16384, out, 8192,
				      -1);
		assert_true(clen > 0);
		val[0] = 2;
		memcpy(hdr, k + 8, 16);
		hdr[16] = 2;
		assert_int_equal(digest_two(dg, hdr, 17, out, 8192), 0);
		memcpy(val + 1, dg, DIGEST_LEN);
		if (damage_one && n == 0)
			val[1 + DIGEST_LEN + (size_t)clen / 2] ^= 0x10;
		kv_batch_put(&b, KV_CF_BLOCK, k, klen, val,
			     1 + DIGEST_LEN + (size_t)clen);
		n++;
	}
	assert_int_equal(kv_iter_status(it), 0);
	kv_iter_free(it);
	fval[8] = fval[9] = fval[10] = 0;
	fval[11] = 1;
	kv_batch_put(&b, KV_CF_META, "F", 1, fval, sizeof(fval));
	assert_int_equal(kv_write(kv, &b, true), 0);
	kv_batch_release(&b);
	kv_close(kv);
	snprintf(path, sizeof(path), "%s/BRANCHFS", fx->dir);
	tstore_write_file(path, "branchfs-store 1\n");
	return n;
}

static unsigned tb_format_record(struct tstore_fx *fx)
{
	unsigned char fval[12];
	char db[4200];
	struct kv *kv;
	size_t vlen;
	bool found;

	snprintf(db, sizeof(db), "%s/db", fx->dir);
	assert_int_equal(kv_rocksdb_open(db, false, 8u << 20, 0, NULL, &kv), 0);
	assert_int_equal(kv_get(kv, KV_CF_META, "F", 1, fval, sizeof(fval),
				&vlen, &found),
			 0);
	kv_close(kv);
	assert_true(found);
	assert_int_equal(vlen, 12);
	return (unsigned)fval[8] << 24 | (unsigned)fval[9] << 16 |
	       (unsigned)fval[10] << 8 | fval[11];
}

/* A store of format 1 (compressed blocks hashed decoded) opens: its
 * blocks read back as written, a damaged one still reads as EIO, and the
 * open moves the format record and the marker to 2, so that an older
 * build refuses the store once it holds blocks of the new kind. */
static void test_store_badinput_open_format1_upgrade(void **state)
{
	struct tstore_fx *fx = *state;
	static unsigned char data[6 * 8192], got[8192];
	char path[4200], marker[64] = { 0 };
	uint64_t f, g;
	ssize_t n;
	int fd;

	tb_fill_text(data, sizeof(data), 1);
	f = tstore_mkfile(fx->s, fx->br, fx->root, "old");
	tstore_write(fx->s, fx->br, f, data, sizeof(data), 0);
	g = tstore_mkfile(fx->s, fx->br, fx->root, "other");
	tstore_write(fx->s, fx->br, g, data, 8192, 0);
	assert_int_equal(store_close(fx->s), 0);
	fx->s = NULL;
	assert_int_equal(tb_format_record(fx), 2);
	/* this build writes kind 3 */
	assert_int_equal(tb_make_format1(fx, false, 3), 7);
	assert_int_equal(tb_format_record(fx), 1);

	assert_int_equal(tstore_fx_open(fx), 0);
	tstore_expect(fx->s, fx->br, f, data, sizeof(data), 0);
	tstore_expect(fx->s, fx->br, g, data, 8192, 0);
	assert_int_equal(store_close(fx->s), 0);
	fx->s = NULL;
	assert_int_equal(tb_format_record(fx), 2);
	snprintf(path, sizeof(path), "%s/BRANCHFS", fx->dir);
	fd = open(path, O_RDONLY);
	assert_true(fd >= 0);
	assert_true(read(fd, marker, sizeof(marker) - 1) > 0);
	close(fd);
	assert_string_equal(marker, "branchfs-store 2\n");

	/* a damaged block of the old kind (the first in key order: f's
	 * block 0) is an I/O error, not garbage */
	assert_int_equal(tb_make_format1(fx, true, 2), 7);
	assert_int_equal(tstore_fx_open(fx), 0);
	n = store_read(fx->s, fx->br, STORE_SEQ_LATEST, f, got, 8192, 0);
	assert_int_equal(n, -EIO);
	tstore_expect(fx->s, fx->br, f, data + 8192, sizeof(data) - 8192, 8192);
	tstore_expect(fx->s, fx->br, g, data, 8192, 0);
}

/* A store whose database went missing (a volume mounted wrongly, a
 * deleted db/) must be reported as damaged, not silently recreated empty:
 * that would lose every branch without a word. */
static void test_store_badinput_open_missing_db(void **state)
{
	struct tstore_fx *fx = *state;
	char path[160];
	struct store *s = NULL;
	int rc;

	tstore_mkfile(fx->s, fx->br, fx->root, "precious");
	assert_int_equal(store_close(fx->s), 0);
	fx->s = NULL;
	snprintf(path, sizeof(path), "%s/db", fx->dir);
	tstore_rmrf(path);
	rc = tstore_open_dir(fx->dir, false, NULL, &s);
	if (rc == 0) {
		store_close(s);
		fail_msg("store with its database removed opened (create=false); want -EUCLEAN");
	}
	assert_int_equal(rc, -EUCLEAN);
	rc = tstore_open_dir(fx->dir, true, NULL, &s);
	if (rc == 0) {
		struct store_branch_info *list = NULL;
		size_t n = 0;

		store_branch_list(s, &list, &n);
		free(list);
		store_close(s);
		fail_msg("store with its database removed opened as a store with %zu branches; want -EUCLEAN",
			 n);
	}
	assert_int_equal(rc, -EUCLEAN);
}

/* The manifest named by a RocksDB database's CURRENT file, into name. */
static void tbad_manifest(const char *db, char *name, size_t sz)
{
	struct dirent *de;
	DIR *d = opendir(db);

	assert_non_null(d);
	name[0] = 0;
	while ((de = readdir(d)) != NULL)
		if (strncmp(de->d_name, "MANIFEST-", 9) == 0 &&
		    strlen(de->d_name) < sz)
			strcpy(name, de->d_name);
	closedir(d);
	assert_true(name[0] != 0);
}

/* A store whose database lost its CURRENT file (the small file naming the
 * manifest) is damaged, and opening it must not make it worse: an open
 * that created a database there (create_if_missing) wrote a new CURRENT
 * naming an empty one, and the next open deleted every file of the old
 * one as obsolete.  Put back by hand, CURRENT brings everything back. */
static void test_store_badinput_open_missing_current(void **state)
{
	struct tstore_fx *fx = *state;
	char db[160], path[200], man[64];
	struct store *s = NULL;
	uint64_t f;
	FILE *fp;
	int i, rc;

	f = tstore_mkfile(fx->s, fx->br, fx->root, "precious");
	tstore_write_pat(fx->s, fx->br, f, 5, 0, 6 * 8192);
	assert_int_equal(store_close(fx->s), 0);
	fx->s = NULL;
	snprintf(db, sizeof(db), "%s/db", fx->dir);
	tbad_manifest(db, man, sizeof(man));
	snprintf(path, sizeof(path), "%s/CURRENT", db);
	assert_int_equal(unlink(path), 0);
	for (i = 0; i < 3; i++) {
		rc = tstore_open_dir(fx->dir, i == 2, NULL, &s);
		if (rc == 0) {
			store_close(s);
			fail_msg("store without db/CURRENT opened (attempt %d); want -EUCLEAN",
				 i);
		}
		assert_int_equal(rc, -EUCLEAN);
	}
	fp = fopen(path, "w");
	assert_non_null(fp);
	fprintf(fp, "%s\n", man);
	assert_int_equal(fclose(fp), 0);
	assert_int_equal(tstore_fx_open(fx), 0);
	tstore_expect_pat(fx->s, fx->br,
			  tstore_lookup(fx->s, fx->br, fx->root, "precious"), 5,
			  0, 6 * 8192);
}

/* Operations on the wrong kind of inode. */
static void test_store_badinput_wrong_types(void **state)
{
	struct tstore_fx *fx = *state;
	struct store *s = fx->s;
	struct store_dirent *d = NULL;
	uint64_t f, dir, l, ino;
	char buf[16];
	size_t n = 0;

	f = tstore_mkfile(s, fx->br, fx->root, "f");
	dir = tstore_mkdir(s, fx->br, fx->root, "d");
	l = tstore_mknod(s, fx->br, fx->root, "l", S_IFLNK | 0777, "f");
	assert_int_equal(store_write(s, fx->br, dir, "x", 1, 0, NULL), -EISDIR);
	assert_int_equal(store_write(s, fx->br, l, "x", 1, 0, NULL), -EINVAL);
	{
		/* whole blocks too (prepared before the type is known) */
		static unsigned char blocks[2 * STORE_BLOCK_SIZE];

		assert_int_equal(store_write(s, fx->br, dir, blocks,
					     sizeof(blocks), 0, NULL),
				 -EISDIR);
		assert_int_equal(store_write(s, fx->br, l, blocks,
					     sizeof(blocks), STORE_BLOCK_SIZE,
					     NULL),
				 -EINVAL);
		assert_int_equal(store_readlink(s, fx->br, STORE_SEQ_LATEST, l,
						buf, sizeof(buf)),
				 1);
		assert_memory_equal(buf, "f", 1);
	}
	assert_int_equal(store_read(s, fx->br, STORE_SEQ_LATEST, dir, buf, 4,
				    0),
			 -EISDIR);
	assert_int_equal(store_readlink(s, fx->br, STORE_SEQ_LATEST, dir, buf,
					sizeof(buf)),
			 -EINVAL);
	assert_int_equal(store_readdir(s, fx->br, STORE_SEQ_LATEST, f, &d, &n),
			 -ENOTDIR);
	assert_null(d);
	assert_int_equal(store_link(s, fx->br, f, f, "x", NULL), -ENOTDIR);
	assert_int_equal(store_rename(s, fx->br, fx->root, "f", f, "x", 0),
			 -ENOTDIR);
	/* a file as the directory of unlink/rmdir/rename's source: rename(2)
	 * says ENOTDIR; today the store says ENOENT (FUSE never sends it, so
	 * both are accepted) */
	{
		int rc = store_unlink(s, fx->br, f, "x");

		assert_true(rc == -ENOTDIR || rc == -ENOENT);
		rc = store_rmdir(s, fx->br, f, "x");
		assert_true(rc == -ENOTDIR || rc == -ENOENT);
		rc = store_rename(s, fx->br, f, "x", fx->root, "y", 0);
		assert_true(rc == -ENOTDIR || rc == -ENOENT);
	}
	assert_int_equal(store_lookup(s, fx->br, STORE_SEQ_LATEST, l, "x",
				      &ino),
			 -ENOTDIR);
	TSTORE_LS_EQ(s, fx->br, STORE_SEQ_LATEST, fx->root, "d,f,l");
	assert_int_equal(tstore_size(s, fx->br, f), 0);
}

#define T(f) cmocka_unit_test_setup_teardown(f, tstore_fx_setup, \
					     tstore_fx_teardown)

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_store_badinput_name_check),
		T(test_store_badinput_entry_names),
		T(test_store_badinput_branch_names),
		T(test_store_badinput_unknown_ids),
		T(test_store_badinput_seqs),
		T(test_store_badinput_branch_tree),
		T(test_store_badinput_wrong_types),
		cmocka_unit_test(test_store_badinput_open_missing_dir),
		cmocka_unit_test(test_store_badinput_open_not_a_store),
		cmocka_unit_test(test_store_badinput_open_path_is_file),
		T(test_store_badinput_open_format_version),
		T(test_store_badinput_open_format1_upgrade),
		T(test_store_badinput_open_missing_db),
		T(test_store_badinput_open_missing_current),
	};

	return cmocka_run_group_tests_name("store_badinput", tests, NULL, NULL);
}
