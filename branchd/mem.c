/* SPDX-License-Identifier: MIT */
/*
 * mem.c - branchd's own memory figures, and giving freed memory back
 * (see mem.h).
 *
 * Read from outside the allocator: the resident set from /proc/self/statm
 * and what malloc has handed out from glibc's mallinfo2(), which sums
 * every arena.  Other C libraries report the resident set only.
 *
 * Why branchd gives memory back itself: glibc gives a thread that finds
 * its arena busy an arena of its own (up to 8 per CPU) and keeps what is
 * freed into an arena for that arena's next allocations.  By itself it
 * hands memory back only for blocks it mmapped, and from the top of an
 * arena once more than the trim threshold is free there; both thresholds
 * start at 128 KiB and follow the largest mmapped block freed (up to 32
 * and 64 MiB), so once RocksDB has freed a memtable, memtables and the
 * 1 MiB buffers of large reads come from the arenas and stay there.  After
 * 4 writers wrote 64 MiB each, branchd held 200 MiB beyond what it used,
 * and still did 12 s later.  Two measures (control.c, branchd.c):
 *  - malloc_trim() once writes stop and after GC: every whole free page
 *    in every arena's free lists goes back (madvise MADV_DONTNEED: the
 *    range stays malloc's, and reusing a page costs a fault), but not
 *    the free room at the top of an arena other than the main one, which
 *    stays up to the trim threshold: with glibc's 16 arenas (2 CPUs),
 *    108 MiB were still held;
 *  - so at most BD_MEM_ARENAS arenas: 29 MiB held.
 */
#include <errno.h>
#include <fcntl.h>
#include <malloc.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "ctl.h"
#include "mem.h"

#define BD_MEM_TRIM_INFO (32u << 20)
/* bd_mem_init: 2 to 4 left 23-29 MiB held after a burst of writes where
 * glibc's own 16 (8 per CPU, on 2 CPUs) left 108 MiB. */
#define BD_MEM_ARENAS 4

#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
/* The sanitizer runtime's (GCC 12 ships no header declaring it). */
size_t __sanitizer_get_current_allocated_bytes(void);
#endif

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
#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
	/* A sanitizer build (make san-bins): its allocator replaces
	 * malloc, and mallinfo2() reports zeros there. */
	out->heap_bytes = __sanitizer_get_current_allocated_bytes();
	out->heap_known = true;
#elif defined(__GLIBC__) && (__GLIBC__ > 2 || __GLIBC_MINOR__ >= 33)
	{
		struct mallinfo2 mi = mallinfo2();

		out->heap_bytes = (uint64_t)mi.uordblks + (uint64_t)mi.hblkhd;
		out->heap_known = true;
	}
#endif
	return 0;
}

void bd_mem_trim(const struct store_log *log, const char *why)
{
	uint64_t before, after;
	struct timespec t0, t1;
	bool known;
	long us;

	known = bd_mem_rss(&before) == 0;
	clock_gettime(CLOCK_MONOTONIC, &t0);
	malloc_trim(0);
	clock_gettime(CLOCK_MONOTONIC, &t1);
	us = (long)((t1.tv_sec - t0.tv_sec) * 1000000 +
		    (t1.tv_nsec - t0.tv_nsec) / 1000);
	if (!known || bd_mem_rss(&after) != 0)
		return;
	if (after > before)
		after = before;
	bd_log(log,
	       before - after >= BD_MEM_TRIM_INFO ? STORE_LOG_INFO :
						    STORE_LOG_DEBUG,
	       "%s: gave %llu MiB of freed memory back to the kernel in %ld ms (resident now %llu MiB)",
	       why, (unsigned long long)((before - after) >> 20), us / 1000,
	       (unsigned long long)(after >> 20));
}

int bd_mem_init(void)
{
	const char *t = getenv("GLIBC_TUNABLES");

	if (getenv("MALLOC_ARENA_MAX") ||
	    (t && strstr(t, "glibc.malloc.arena_max=")))
		return 0;
	return mallopt(M_ARENA_MAX, BD_MEM_ARENAS) == 1 ? BD_MEM_ARENAS : 0;
}
