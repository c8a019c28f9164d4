/* SPDX-License-Identifier: MIT */
/*
 * mem.h - branchd's own memory: how much it holds (branchctl status).
 */
#ifndef BRANCHFS_MEM_H
#define BRANCHFS_MEM_H

#include <stdbool.h>
#include <stdint.h>

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
 * be read.  mallinfo2 walks every arena's free lists under its lock, in
 * time proportional to the free chunks there: not for hot paths.
 * Thread-safe. */
int bd_mem_usage(struct bd_mem_usage *out);
#endif
