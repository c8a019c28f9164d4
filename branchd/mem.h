/* SPDX-License-Identifier: MIT */
/*
 * mem.h - branchd's own memory: how much it holds (branchctl status) and
 * handing what malloc keeps after frees back to the kernel.
 */
#ifndef BRANCHFS_MEM_H
#define BRANCHFS_MEM_H

#include <stdbool.h>
#include <stdint.h>

#include "store/store.h"

struct bd_mem_usage {
	uint64_t rss_bytes; /* resident, code and libraries included */
	/* Allocated through malloc and not freed yet (glibc's mallinfo2:
	 * uordblks + hblkhd); what RSS holds beyond it and the code is
	 * freed memory that malloc keeps in its arenas.  Valid only when
	 * heap_known (glibc 2.33 and later). */
	uint64_t heap_bytes;
	bool heap_known;
};

/* The daemon's figures now: 0, or -errno when /proc/self/statm cannot
 * be read.  mallinfo2 walks every arena's free lists under its lock:
 * about a millisecond for hundreds of MB of fragments; not for hot
 * paths.  Thread-safe. */
int bd_mem_usage(struct bd_mem_usage *out);

/* Hand the free pages that malloc keeps inside its arenas back to the
 * kernel (glibc's malloc_trim; nothing elsewhere), and log what that gave
 * back and took, naming the occasion (why): at INFO from 32 MiB on, else
 * at DEBUG.  Takes each arena's lock in turn for as long as it walks that
 * arena's free lists (some ms for hundreds of MB).  Thread-safe. */
void bd_mem_trim(const struct store_log *log, const char *why);

/* Cap malloc's arenas at BD_MEM_ARENAS (glibc's M_ARENA_MAX), unless the
 * environment sets a cap (MALLOC_ARENA_MAX, or glibc.malloc.arena_max in
 * GLIBC_TUNABLES).  Call before the process starts its second thread:
 * a thread keeps the arena it has.  Returns the cap set, or 0 when none
 * was. */
int bd_mem_init(void);
#endif
