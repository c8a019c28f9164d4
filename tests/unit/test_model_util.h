/* SPDX-License-Identifier: MIT */
/*
 * test_model_util.h - what the store's model tests share
 * (test_store_model.c, test_store_gc_model.c): a seeded generator, the
 * trail of the last operations a failure prints with the seed that
 * reproduces it, and reference-counted byte strings for file contents.
 */
#ifndef BRANCHFS_TEST_MODEL_UTIL_H
#define BRANCHFS_TEST_MODEL_UTIL_H

#include <inttypes.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

#define TM_TRAIL 64
#define TM_TRAIL_LEN 200

/* The run a model test is: its seed and generator, the operation it is
 * at, and the last TM_TRAIL operations' lines. */
struct tm_run {
	uint64_t seed, rng;
	unsigned long nops, op;
	char trail[TM_TRAIL][TM_TRAIL_LEN];
	unsigned long ntrail;
};

/* splitmix64 */
static inline uint64_t tm_rand(struct tm_run *r)
{
	uint64_t z = (r->rng += 0x9E3779B97F4A7C15ull);

	z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
	z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
	return z ^ (z >> 31);
}

static inline uint32_t tm_below(struct tm_run *r, uint32_t n)
{
	return n ? (uint32_t)(tm_rand(r) % n) : 0;
}

/* The next trail line, to be filled in by the caller (TM_TRAIL_LEN). */
static inline char *tm_trail_line(struct tm_run *r)
{
	return r->trail[r->ntrail++ % TM_TRAIL];
}

static inline void tm_vtrail(char *t, const char *prefix, const char *fmt,
			     va_list ap)
{
	int n = snprintf(t, TM_TRAIL_LEN, "%s", prefix);

	if (n < 0 || n >= TM_TRAIL_LEN)
		n = 0;
	vsnprintf(t + n, TM_TRAIL_LEN - (size_t)n, fmt, ap);
}

/* Fail the test: the trail, the message, and how to reproduce the run. */
static void tm_fail(const struct tm_run *r, const char *what, const char *fmt,
		    ...) __attribute__((format(printf, 3, 4), unused));

static void tm_fail(const struct tm_run *r, const char *what, const char *fmt,
		    ...)
{
	char msg[600];
	unsigned long i, from;
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	fprintf(stderr, "%s: last operations:\n", what);
	from = r->ntrail > TM_TRAIL ? r->ntrail - TM_TRAIL : 0;
	for (i = from; i < r->ntrail; i++)
		fprintf(stderr, "  %s\n", r->trail[i % TM_TRAIL]);
	fail_msg("%s: %s\n  at op %lu; reproduce with BRANCHFS_SEED=%" PRIu64
		 " BRANCHFS_OPS=%lu",
		 what, msg, r->op, r->seed, r->nops);
}

static inline unsigned long tm_env(const char *name, unsigned long def)
{
	const char *v = getenv(name);

	return v && *v ? strtoul(v, NULL, 0) : def;
}

/* The run's seed and length, from BRANCHFS_SEED and BRANCHFS_OPS, else
 * the defaults. */
static inline void tm_run_start(struct tm_run *r, uint64_t def_seed,
				unsigned long def_ops)
{
	r->seed = tm_env("BRANCHFS_SEED", def_seed);
	r->nops = tm_env("BRANCHFS_OPS", def_ops);
	r->rng = r->seed;
}

/* A file's contents, shared between states by reference. */
struct tm_blob {
	int ref;
	uint32_t len;
	unsigned char data[];
};

static inline struct tm_blob *tm_blob_new(uint32_t len)
{
	struct tm_blob *b = calloc(1, sizeof(*b) + len + 1);

	assert_non_null(b);
	b->ref = 1;
	b->len = len;
	return b;
}

static inline void tm_blob_put(struct tm_blob *b)
{
	if (b && --b->ref == 0)
		free(b);
}

#endif /* BRANCHFS_TEST_MODEL_UTIL_H */
