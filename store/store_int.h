/* SPDX-License-Identifier: MIT */
/*
 * store_int.h - store internals exposed to the store's own tests and fuzz
 * targets only: the decoders of stored records, which must reject any
 * input without crashing.
 */
#ifndef BRANCHFS_STORE_INT_H
#define BRANCHFS_STORE_INT_H

#include <stddef.h>
#include <stdint.h>

#include "store.h"

struct store_branch;

/* Inode attribute record -> attr.  -EIO if too short. */
int store_attr_decode(const unsigned char *v, size_t len, struct store_attr *a);
/* Branch record -> fields of b (name, parent, fork seq ...).  -EUCLEAN if
 * malformed. */
int store_brrec_decode(const unsigned char *v, size_t len,
		       struct store_branch *b);
/* Block value of (ino, blk) -> out[STORE_BLOCK_SIZE], verifying kind,
 * length, decompression and digest.  -EIO on any mismatch. */
int store_block_decode(uint64_t ino, uint64_t blk, const unsigned char *val,
		       size_t vlen, unsigned char *out);
/* Hits and misses of the attribute cache since open (INV-8 in store.c),
 * so tests can check that their reads went through it. */
void store_acache_stats(struct store *s, uint64_t *hits, uint64_t *misses);
/* Deletions (point and range) held in the files of the inode, entry and
 * block families, after a flush of their memtables: what GC's and
 * store_drop_deleted's compactions leave. */
int store_data_deletions(struct store *s, uint64_t *n);
/* Keys of branch id (live or deleted) in the inode, entry and block
 * families, also those a range deletion hides until a compaction. */
int store_branch_keys(struct store *s, uint64_t id, uint64_t *n);
/* Branch slots looked at since open by name lookups (records compared)
 * and by the walks over every live branch (store_sync's counters,
 * store_branch_list, GC's snapshot), so that tests can bound what they
 * cost (INV-9 in store.c). */
uint64_t store_branch_probes(struct store *s);
/* Size of struct store_branch, for callers of store_brrec_decode. */
size_t store_branch_struct_size(void);
#endif
