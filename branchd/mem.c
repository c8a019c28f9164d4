/* SPDX-License-Identifier: MIT */
/*
 * mem.c - branchd's own memory figures (see mem.h).
 *
 * Read from outside the allocator: the resident set from /proc/self/statm
 * and what malloc has handed out from glibc's mallinfo2(), which sums
 * every arena.  Other C libraries report the resident set only.
 */
#include <errno.h>
#include <fcntl.h>
#include <malloc.h>
#include <stdio.h>
#include <unistd.h>

#include "mem.h"

/* The resident set, from /proc/self/statm: 0 or -errno. */
static int bd_mem_rss(uint64_t *out)
{
	unsigned long long size, resident;
	char buf[128];
	ssize_t n;
	long page = sysconf(_SC_PAGESIZE);
	int fd, rc = 0;

	fd = open("/proc/self/statm", O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	n = read(fd, buf, sizeof(buf) - 1);
	if (n < 0)
		rc = -errno;
	close(fd);
	if (rc)
		return rc;
	buf[n] = 0;
	if (sscanf(buf, "%llu %llu", &size, &resident) != 2 || page <= 0)
		return -EIO;
	*out = (uint64_t)resident * (uint64_t)page;
	return 0;
}

int bd_mem_usage(struct bd_mem_usage *out)
{
	int rc = bd_mem_rss(&out->rss_bytes);

	if (rc)
		return rc;
	out->heap_bytes = 0;
	out->heap_known = false;
#if defined(__GLIBC__) && (__GLIBC__ > 2 || __GLIBC_MINOR__ >= 33)
	{
		struct mallinfo2 mi = mallinfo2();

		out->heap_bytes = (uint64_t)mi.uordblks + (uint64_t)mi.hblkhd;
		out->heap_known = true;
	}
#endif
	return 0;
}
