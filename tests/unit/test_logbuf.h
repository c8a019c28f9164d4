/* SPDX-License-Identifier: MIT */
/*
 * test_logbuf.h - a store_log sink for cmocka tests that keeps what is
 * logged, so that a test can look for a message (test_kv_scan.c,
 * test_kv_journal.c).
 */
#ifndef BRANCHFS_TEST_LOGBUF_H
#define BRANCHFS_TEST_LOGBUF_H

#include <stdio.h>
#include <string.h>

#include "store/store.h"

/* Messages logged, one a line (the latest cut off when full); a test
 * empties it (text[0] = 0) before what it checks. */
struct tlog_buf {
	char text[16384];
};

/* store_log's fn; ctx is a struct tlog_buf. */
static inline void tlog_buf_fn(void *ctx, int level, const char *msg)
{
	struct tlog_buf *lb = ctx;
	size_t n = strlen(lb->text);

	(void)level;
	snprintf(lb->text + n, sizeof(lb->text) - n, "%s\n", msg);
}

#endif /* BRANCHFS_TEST_LOGBUF_H */
