/* SPDX-License-Identifier: MIT */
/*
 * test_store_mem.c - cmocka test that the store's memory stays bounded in
 * a long-running process: creating and deleting branches over and over
 * (ephemeral CI branches) must not keep memory per deleted branch.
 *
 * Measured as resident set growth, so ASan's quarantine (which holds freed
 * memory) is kept small for this binary.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

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

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(
			test_store_mem_branch_churn_bounded, tstore_fx_setup,
			tstore_fx_teardown),
	};

	return cmocka_run_group_tests_name("store_mem", tests, NULL, NULL);
}
