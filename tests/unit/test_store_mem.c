/* SPDX-License-Identifier: MIT */
/*
 * test_store_mem.c - cmocka test that the store's memory stays bounded in
 * a long-running process: creating and deleting branches over and over
 * (ephemeral CI branches) must not keep memory per deleted branch, and
 * threads that come and go (libfuse starts and stops worker threads as
 * load changes) must not leave per-thread state behind.  Nor may time:
 * branch ids are never reused, so a lookup of a branch by name, a sync
 * and a listing must cost what the live branches do, not what every
 * branch ever made does (counted by store_branch_probes, not timed).
 *
 * Measured as resident set growth, so ASan's quarantine (which holds freed
 * memory) is kept small for this binary.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>
#include <pthread.h>

#include "store/store_int.h"
#include "tests/unit/test_store_common.h"

/* ASan hook (the name is ASan's): freed memory must really go back. */
const char *__asan_default_options(void);
const char *__asan_default_options(void)
{
	return "quarantine_size_mb=0:thread_local_quarantine_size_kb=0";
}

static long tstore_rss_kb(void)
{
	FILE *f = fopen("/proc/self/status", "r");
	char line[256];
	long kb = -1;

	assert_non_null(f);
	while (fgets(line, sizeof(line), f))
		if (strncmp(line, "VmRSS:", 6) == 0)
			kb = atol(line + 6);
	fclose(f);
	return kb;
}

static void tstore_churn(struct tstore_fx *fx, uint64_t f, int from, int n)
{
	char name[32];
	int i;

	for (i = from; i < from + n; i++) {
		uint64_t c;

		snprintf(name, sizeof(name), "eph%d", i);
		c = tstore_branch(fx->s, name, fx->br);
		tstore_write_pat(fx->s, c, f, (uint32_t)i,
				 (uint64_t)i * STORE_BLOCK_SIZE, 1);
		assert_int_equal(store_branch_delete(fx->s, c), 0);
	}
}

static void test_store_mem_branch_churn_bounded(void **state)
{
	struct tstore_fx *fx = *state;
	enum { WARM = 100, N = 1000 };
	long before, after;
	uint64_t f;

	f = tstore_mkfile(fx->s, fx->br, fx->root, "f");
	tstore_churn(fx, f, 0, WARM); /* caches, arenas, memtable warm up */
	before = tstore_rss_kb();
	tstore_churn(fx, f, WARM, N);
	after = tstore_rss_kb();
	fprintf(stderr, "  %d branches created and deleted: rss %+ld KiB\n", N,
		after - before);
	/* 64 KiB per deleted branch would be 62 MiB here; the block cache
	 * (8 MiB in the fixture) and memtables may grow a little */
	if (after - before > 24 * 1024)
		fail_msg("resident memory grew by %ld KiB over %d created and deleted branches (%ld bytes each)",
			 after - before, N, (after - before) * 1024 / N);
}

/* A store that made and deleted many branches (CI's ephemeral ones) and
 * has a few live: name lookups (hits, misses, after a rename and after a
 * reopen), store_sync and store_branch_list look at a few branch slots
 * per live branch, where they used to scan every id ever handed out (a
 * store that had made 300,000 branches spent 0.3 ms of each fsync so,
 * and 50 ms in each `ls -l` of the mount with 500 live). */
static void test_store_mem_branch_churn_lookups_bounded(void **state)
{
	struct tstore_fx *fx = *state;
	enum { CHURN = 1500, LIVE = 40, ROUNDS = 20 };
	struct store_branch_info bi, *all;
	uint64_t ids[LIVE], p0, used, f;
	char name[32], other[32];
	size_t n, calls = 0;
	int i, r;

	f = tstore_mkfile(fx->s, fx->br, fx->root, "f");
	for (i = 0; i < CHURN; i++) {
		struct store_branch_create_args a;

		snprintf(name, sizeof(name), "ci-%d", i);
		a = tstore_args(name, fx->br, STORE_SEQ_LATEST);
		a.lazy = true;
		assert_int_equal(store_branch_create(fx->s, &a, &bi), 0);
		assert_int_equal(store_branch_delete(fx->s, bi.id), 0);
	}
	for (i = 0; i < LIVE; i++) {
		snprintf(name, sizeof(name), "live-%d", i);
		ids[i] = tstore_branch(fx->s, name, fx->br);
	}
	for (r = 0; r < 2; r++) {
		p0 = store_branch_probes(fx->s);
		for (i = 0; i < ROUNDS * LIVE; i++) {
			snprintf(name, sizeof(name), "live-%d", i % LIVE);
			assert_int_equal(store_branch_lookup(fx->s, name, &bi),
					 0);
			assert_int_equal(bi.id, ids[i % LIVE]);
			snprintf(name, sizeof(name), "ci-%d", i % CHURN);
			assert_int_equal(store_branch_lookup(fx->s, name, &bi),
					 -ENOENT);
			calls += 2;
		}
		for (i = 0; i < ROUNDS; i++) {
			tstore_write_pat(fx->s, ids[i % LIVE], f,
					 (uint32_t)i, 0, 1);
			assert_int_equal(store_sync(fx->s), 0);
			assert_int_equal(store_branch_list(fx->s, &all, &n), 0);
			assert_int_equal(n, LIVE + 1);
			free(all);
		}
		used = store_branch_probes(fx->s) - p0;
		fprintf(stderr,
			"  %s: %d live of %d made: %zu name lookups, %d syncs and listings: %llu branch slots looked at\n",
			r ? "reopened" : "open", LIVE + 1, CHURN + LIVE + 1,
			calls, 2 * ROUNDS, (unsigned long long)used);
		/* A lookup compares a name or two; a walk looks at each live
		 * branch and each chain about once. */
		if (used > 4 * calls + 2 * ROUNDS * 4 * (LIVE + 1))
			fail_msg("%llu branch slots looked at for %zu lookups and %d walks of %d live branches: a scan of the %d ids made?",
				 (unsigned long long)used, calls, 2 * ROUNDS,
				 LIVE + 1, CHURN + LIVE + 1);
		calls = 0;
		/* Renamed: found by its new name only; then all of it again
		 * on a reopened store (the table is rebuilt at open). */
		assert_int_equal(store_branch_rename(fx->s, ids[0], "renamed"),
				 0);
		assert_int_equal(store_branch_lookup(fx->s, "live-0", &bi),
				 -ENOENT);
		assert_int_equal(store_branch_lookup(fx->s, "renamed", &bi), 0);
		assert_int_equal(bi.id, ids[0]);
		assert_int_equal(store_branch_rename(fx->s, ids[0], "live-0"),
				 0);
		snprintf(other, sizeof(other), "live-%d", LIVE - 1);
		assert_int_equal(store_branch_rename(fx->s, ids[1], other),
				 -EEXIST);
		assert_int_equal(store_close(fx->s), 0);
		assert_int_equal(tstore_open_dir(fx->dir, false, NULL, &fx->s),
				 0);
	}
}

struct tstore_mem_thread {
	struct tstore_fx *fx;
	uint64_t ino;
	int i;
	int rc;
};

/* One short-lived worker: a compressible write and a read back. */
static void *tstore_mem_worker(void *arg)
{
	struct tstore_mem_thread *t = arg;
	unsigned char buf[STORE_BLOCK_SIZE], back[STORE_BLOCK_SIZE];
	size_t i;

	for (i = 0; i < sizeof(buf); i++)
		buf[i] = (unsigned char)('a' + (i / 64 + (size_t)t->i) % 26);
	t->rc = 0;
	if (store_write(t->fx->s, t->fx->br, t->ino, buf, sizeof(buf),
			(uint64_t)(t->i % 16) * sizeof(buf),
			NULL) != (ssize_t)sizeof(buf) ||
	    store_read(t->fx->s, t->fx->br, STORE_SEQ_LATEST, t->ino, back,
		       sizeof(back), (uint64_t)(t->i % 16) * sizeof(buf)) !=
		    (ssize_t)sizeof(back) ||
	    memcmp(buf, back, sizeof(buf)) != 0)
		t->rc = -1;
	return NULL;
}

static void tstore_mem_threads(struct tstore_fx *fx, uint64_t ino, int from,
			       int n)
{
	int i;

	for (i = from; i < from + n; i++) {
		struct tstore_mem_thread t = { fx, ino, i, 0 };
		pthread_t th;

		assert_int_equal(pthread_create(&th, NULL, tstore_mem_worker,
						&t),
				 0);
		assert_int_equal(pthread_join(th, NULL), 0);
		assert_int_equal(t.rc, 0);
	}
}

static void test_store_mem_thread_churn_bounded(void **state)
{
	struct tstore_fx *fx = *state;
	enum { WARM = 20, N = 300 };
	long before, after;
	uint64_t f;

	f = tstore_mkfile(fx->s, fx->br, fx->root, "f");
	tstore_mem_threads(fx, f, 0, WARM);
	before = tstore_rss_kb();
	tstore_mem_threads(fx, f, WARM, N);
	after = tstore_rss_kb();
	fprintf(stderr, "  %d threads came and went: rss %+ld KiB\n", N,
		after - before);
	/* per-thread compression contexts left behind would be ~100 KiB
	 * each: 30 MiB here */
	if (after - before > 8 * 1024)
		fail_msg("resident memory grew by %ld KiB over %d short-lived threads (%ld bytes each)",
			 after - before, N, (after - before) * 1024 / N);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(
			test_store_mem_branch_churn_bounded, tstore_fx_setup,
			tstore_fx_teardown),
		cmocka_unit_test_setup_teardown(
			test_store_mem_thread_churn_bounded, tstore_fx_setup,
			tstore_fx_teardown),
		cmocka_unit_test_setup_teardown(
			test_store_mem_branch_churn_lookups_bounded,
			tstore_fx_setup, tstore_fx_teardown),
	};

	return cmocka_run_group_tests_name("store_mem", tests, NULL, NULL);
}
