/* SPDX-License-Identifier: MIT */
/*
 * test_store_common.h - fixtures and helpers shared by the store's cmocka
 * binaries (test_store*.c) and the store stress test.
 *
 * Every fixture works on a real RocksDB store in a fresh mkdtemp()
 * directory that its teardown removes.  Helpers assert through cmocka, so
 * include <cmocka.h> (with its prerequisites) before this header.
 *
 * Environment: BRANCHFS_TEST_LOG=N prints the store's log up to level N
 * on stderr.  Unset, nothing is logged, so that fault-injection tests stay
 * quiet; set it when chasing a failure.
 */
#ifndef BRANCHFS_TEST_STORE_COMMON_H
#define BRANCHFS_TEST_STORE_COMMON_H

#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "store/store.h"
#include "tests/fakes/kv_fault.h"

struct tstore_fx {
	char dir[64];
	struct store *s;
	struct kv_fault *fault; /* non-NULL: stores open through kv_fault */
	uint64_t br;            /* the fixture's root branch */
	uint64_t root;          /* its root directory inode */
};

static inline void tstore_log_fn(void *ctx, int level, const char *msg)
{
	(void)ctx;
	fprintf(stderr, "store[%d]: %s\n", level, msg);
}

static inline void tstore_config(struct store_config *cfg, bool create,
				 struct kv_fault *fault)
{
	const char *lv = getenv("BRANCHFS_TEST_LOG");

	memset(cfg, 0, sizeof(*cfg));
	cfg->create = create;
	cfg->cache_bytes = 8u << 20;
	if (lv && *lv) {
		cfg->log.fn = tstore_log_fn;
		cfg->log.level = atoi(lv);
	}
	if (fault) {
		cfg->kv_wrap = kv_fault_wrap;
		cfg->kv_wrap_ctx = fault;
	}
}

static inline int tstore_open_dir(const char *dir, bool create,
				  struct kv_fault *fault, struct store **out)
{
	struct store_config cfg;

	tstore_config(&cfg, create, fault);
	return store_open(dir, &cfg, out);
}

static inline int tstore_rmrf_cb(const char *p, const struct stat *st,
				 int flag, struct FTW *ftw)
{
	(void)st;
	(void)ftw;
	if (flag == FTW_DP || flag == FTW_D)
		rmdir(p);
	else
		unlink(p);
	return 0;
}

static inline void tstore_rmrf(const char *dir)
{
	nftw(dir, tstore_rmrf_cb, 16, FTW_DEPTH | FTW_PHYS);
}

static inline void tstore_mkdtemp(char *buf, size_t sz)
{
	const char *tmp = getenv("TMPDIR");

	snprintf(buf, sz, "%s/bfs-store-XXXXXX", tmp && *tmp ? tmp : "/tmp");
	if (!mkdtemp(buf)) {
		perror("mkdtemp");
		abort();
	}
}

static inline struct store_branch_create_args
tstore_args(const char *name, uint64_t parent, uint64_t at_seq)
{
	struct store_branch_create_args a;

	memset(&a, 0, sizeof(a));
	a.name = name;
	a.parent_id = parent;
	a.at_seq = at_seq;
	a.root_mode = 0755;
	a.root_uid = (uint32_t)getuid();
	a.root_gid = (uint32_t)getgid();
	a.owner_uid = (uint32_t)getuid();
	return a;
}

static inline uint64_t tstore_branch_at(struct store *s, const char *name,
					uint64_t parent, uint64_t at_seq)
{
	struct store_branch_create_args a = tstore_args(name, parent, at_seq);
	struct store_branch_info bi;
	int rc = store_branch_create(s, &a, &bi);

	if (rc != 0)
		fail_msg("store_branch_create('%s', parent %llu, at %llu) = %d",
			 name, (unsigned long long)parent,
			 (unsigned long long)at_seq, rc);
	assert_true(bi.id > 0);
	assert_string_equal(bi.name, name);
	assert_int_equal(bi.parent_id, parent);
	return bi.id;
}

static inline uint64_t tstore_branch(struct store *s, const char *name,
				     uint64_t parent)
{
	return tstore_branch_at(s, name, parent, STORE_SEQ_LATEST);
}

static inline uint64_t tstore_root(struct store *s, uint64_t br)
{
	struct store_branch_info bi;

	assert_int_equal(store_branch_get(s, br, &bi), 0);
	assert_true(bi.root_ino > 0);
	return bi.root_ino;
}

static inline struct store_attr tstore_attr(uint32_t mode)
{
	struct store_attr a;

	memset(&a, 0, sizeof(a));
	a.mode = mode;
	a.uid = (uint32_t)getuid();
	a.gid = (uint32_t)getgid();
	clock_gettime(CLOCK_REALTIME, &a.mtime);
	a.atime = a.ctime = a.mtime;
	return a;
}

static inline uint64_t tstore_mknod(struct store *s, uint64_t br,
				    uint64_t dir, const char *name,
				    uint32_t mode, const char *target)
{
	struct store_attr a = tstore_attr(mode);
	uint64_t ino = 0;
	int rc = store_create(s, br, dir, name, &a, target, &ino, NULL);

	if (rc != 0)
		fail_msg("store_create(br %llu, dir %llu, '%s') = %d",
			 (unsigned long long)br, (unsigned long long)dir, name,
			 rc);
	assert_true(ino > 0);
	return ino;
}

static inline uint64_t tstore_mkfile(struct store *s, uint64_t br,
				     uint64_t dir, const char *name)
{
	return tstore_mknod(s, br, dir, name, S_IFREG | 0644, NULL);
}

static inline uint64_t tstore_mkdir(struct store *s, uint64_t br,
				    uint64_t dir, const char *name)
{
	return tstore_mknod(s, br, dir, name, S_IFDIR | 0755, NULL);
}

/* Deterministic content: byte at file offset off for seed. */
static inline unsigned char tstore_byte(uint32_t seed, uint64_t off)
{
	uint64_t x = off * 0x9E3779B97F4A7C15ull + seed * 0xBF58476D1CE4E5B9ull;

	x ^= x >> 29;
	return (unsigned char)(x | 1); /* never zero: tells data from holes */
}

static inline void tstore_fill(unsigned char *buf, size_t len, uint32_t seed,
			       uint64_t off)
{
	size_t i;

	for (i = 0; i < len; i++)
		buf[i] = tstore_byte(seed, off + i);
}

static inline void tstore_write(struct store *s, uint64_t br, uint64_t ino,
				const void *buf, size_t len, uint64_t off)
{
	ssize_t n = store_write(s, br, ino, buf, len, off, NULL);

	if (n != (ssize_t)len)
		fail_msg("store_write(br %llu, ino %llu, len %zu, off %llu) = %zd",
			 (unsigned long long)br, (unsigned long long)ino, len,
			 (unsigned long long)off, n);
}

/* Write seed's pattern over [off, off+len). */
static inline void tstore_write_pat(struct store *s, uint64_t br,
				    uint64_t ino, uint32_t seed, uint64_t off,
				    size_t len)
{
	unsigned char *buf = malloc(len ? len : 1);

	assert_non_null(buf);
	tstore_fill(buf, len, seed, off);
	tstore_write(s, br, ino, buf, len, off);
	free(buf);
}

static inline size_t tstore_first_diff(const unsigned char *a,
				       const unsigned char *b, size_t n)
{
	size_t i;

	for (i = 0; i < n; i++)
		if (a[i] != b[i])
			return i;
	return n;
}

/* Read [off, off+len) at seq and compare with expect (len bytes expected). */
static inline void tstore_expect_at(struct store *s, uint64_t br,
				    uint64_t seq, uint64_t ino,
				    const void *expect, size_t len,
				    uint64_t off)
{
	unsigned char *buf = malloc(len + 16);
	ssize_t n;
	size_t d;

	assert_non_null(buf);
	n = store_read(s, br, seq, ino, buf, len, off);
	if (n != (ssize_t)len)
		fail_msg("store_read(br %llu, seq %llu, ino %llu, len %zu, off %llu) = %zd",
			 (unsigned long long)br, (unsigned long long)seq,
			 (unsigned long long)ino, len, (unsigned long long)off,
			 n);
	d = tstore_first_diff(buf, expect, len);
	if (d != len)
		fail_msg("br %llu seq %llu ino %llu: byte at %llu is 0x%02x, want 0x%02x",
			 (unsigned long long)br, (unsigned long long)seq,
			 (unsigned long long)ino,
			 (unsigned long long)(off + d), buf[d],
			 ((const unsigned char *)expect)[d]);
	free(buf);
}

static inline void tstore_expect(struct store *s, uint64_t br, uint64_t ino,
				 const void *expect, size_t len, uint64_t off)
{
	tstore_expect_at(s, br, STORE_SEQ_LATEST, ino, expect, len, off);
}

/* Expect seed's pattern over [off, off+len). */
static inline void tstore_expect_pat_at(struct store *s, uint64_t br,
					uint64_t seq, uint64_t ino,
					uint32_t seed, uint64_t off,
					size_t len)
{
	unsigned char *buf = malloc(len ? len : 1);

	assert_non_null(buf);
	tstore_fill(buf, len, seed, off);
	tstore_expect_at(s, br, seq, ino, buf, len, off);
	free(buf);
}

static inline void tstore_expect_pat(struct store *s, uint64_t br,
				     uint64_t ino, uint32_t seed,
				     uint64_t off, size_t len)
{
	tstore_expect_pat_at(s, br, STORE_SEQ_LATEST, ino, seed, off, len);
}

static inline void tstore_expect_zero(struct store *s, uint64_t br,
				      uint64_t ino, uint64_t off, size_t len)
{
	unsigned char *z = calloc(1, len ? len : 1);

	assert_non_null(z);
	tstore_expect_at(s, br, STORE_SEQ_LATEST, ino, z, len, off);
	free(z);
}

static inline uint64_t tstore_size_at(struct store *s, uint64_t br,
				      uint64_t seq, uint64_t ino)
{
	struct store_attr a;
	int rc = store_getattr(s, br, seq, ino, &a);

	if (rc != 0)
		fail_msg("store_getattr(br %llu, seq %llu, ino %llu) = %d",
			 (unsigned long long)br, (unsigned long long)seq,
			 (unsigned long long)ino, rc);
	return a.size;
}

static inline uint64_t tstore_size(struct store *s, uint64_t br, uint64_t ino)
{
	return tstore_size_at(s, br, STORE_SEQ_LATEST, ino);
}

static inline void tstore_truncate(struct store *s, uint64_t br, uint64_t ino,
				   uint64_t size)
{
	struct store_attr a;
	int rc;

	memset(&a, 0, sizeof(a));
	a.size = size;
	rc = store_setattr(s, br, ino, &a, STORE_SET_SIZE, NULL);
	if (rc != 0)
		fail_msg("truncate(br %llu, ino %llu, %llu) = %d",
			 (unsigned long long)br, (unsigned long long)ino,
			 (unsigned long long)size, rc);
}

static inline uint64_t tstore_lookup(struct store *s, uint64_t br,
				     uint64_t dir, const char *name)
{
	uint64_t ino = 0;
	int rc = store_lookup(s, br, STORE_SEQ_LATEST, dir, name, &ino);

	if (rc != 0)
		fail_msg("store_lookup(br %llu, dir %llu, '%s') = %d",
			 (unsigned long long)br, (unsigned long long)dir, name,
			 rc);
	return ino;
}

static inline int tstore_lookup_rc(struct store *s, uint64_t br,
				   uint64_t seq, uint64_t dir,
				   const char *name)
{
	uint64_t ino;

	return store_lookup(s, br, seq, dir, name, &ino);
}

/* readdir names joined by ',' into buf, e.g. "a,b,c". */
static inline void tstore_ls_at(struct store *s, uint64_t br, uint64_t seq,
				uint64_t dir, char *buf, size_t bufsz)
{
	struct store_dirent *d = NULL;
	size_t n = 0, i, len = 0;
	int rc = store_readdir(s, br, seq, dir, &d, &n);

	if (rc != 0)
		fail_msg("store_readdir(br %llu, seq %llu, dir %llu) = %d",
			 (unsigned long long)br, (unsigned long long)seq,
			 (unsigned long long)dir, rc);
	buf[0] = '\0';
	for (i = 0; i < n; i++) {
		int w = snprintf(buf + len, bufsz - len, "%s%s", i ? "," : "",
				 d[i].name);

		assert_true(w > 0 && (size_t)w < bufsz - len);
		len += (size_t)w;
	}
	free(d);
}

#define TSTORE_LS_EQ(s, br, seq, dir, want)                                   \
	do {                                                                  \
		char tstore_ls_buf_[8192];                                    \
		tstore_ls_at((s), (br), (seq), (dir), tstore_ls_buf_,         \
			     sizeof(tstore_ls_buf_));                         \
		assert_string_equal(tstore_ls_buf_, (want));                  \
	} while (0)

/* ---- fixtures ---- */

static inline int tstore_fx_open(struct tstore_fx *fx)
{
	int rc = tstore_open_dir(fx->dir, true, fx->fault, &fx->s);

	if (rc != 0)
		fprintf(stderr, "store_open(%s) = %d\n", fx->dir, rc);
	/* With faults counted or injected, no call of the rebuild thread
	 * may come between the test's own (it fails or ends either way). */
	if (rc == 0 && fx->fault)
		(void)store_wait_filters(fx->s, 60000);
	return rc;
}

/* The read filters rebuilt after open (within 60 s). */
static inline void tstore_wait_filters(struct store *s)
{
	assert_int_equal(store_wait_filters(s, 60000), 0);
}

/* Close and reopen the fixture's store (same directory). */
static inline void tstore_fx_reopen(struct tstore_fx *fx)
{
	assert_int_equal(store_close(fx->s), 0);
	fx->s = NULL;
	assert_int_equal(tstore_fx_open(fx), 0);
}

static inline int tstore_fx_setup_common(void **state, bool fault)
{
	struct tstore_fx *fx = calloc(1, sizeof(*fx));
	struct store_branch_create_args a;
	struct store_branch_info bi;
	int rc;

	if (!fx)
		return -1;
	tstore_mkdtemp(fx->dir, sizeof(fx->dir));
	if (fault && kv_fault_new(&fx->fault) != 0)
		goto err;
	if (tstore_fx_open(fx) != 0)
		goto err;
	a = tstore_args("root", 0, STORE_SEQ_LATEST);
	rc = store_branch_create(fx->s, &a, &bi);
	if (rc != 0) {
		fprintf(stderr, "store_branch_create(root) = %d\n", rc);
		goto err;
	}
	fx->br = bi.id;
	fx->root = bi.root_ino;
	*state = fx;
	return 0;
err:
	if (fx->s)
		store_close(fx->s);
	kv_fault_free(fx->fault);
	tstore_rmrf(fx->dir);
	free(fx);
	return -1;
}

static inline int tstore_fx_setup(void **state)
{
	return tstore_fx_setup_common(state, false);
}

static inline int tstore_fx_setup_fault(void **state)
{
	return tstore_fx_setup_common(state, true);
}

static inline int tstore_fx_teardown(void **state)
{
	struct tstore_fx *fx = *state;

	if (!fx)
		return 0;
	if (fx->fault)
		kv_fault_disarm(fx->fault);
	if (fx->s)
		store_close(fx->s);
	kv_fault_free(fx->fault);
	tstore_rmrf(fx->dir);
	free(fx);
	*state = NULL;
	return 0;
}

static inline void tstore_sleep_ms(long ms)
{
	struct timespec ts = { ms / 1000, (ms % 1000) * 1000000L };

	nanosleep(&ts, NULL);
}

static inline int64_t tstore_now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return (int64_t)ts.tv_sec * 1000000000ll + ts.tv_nsec;
}

#endif /* BRANCHFS_TEST_STORE_COMMON_H */
