/* SPDX-License-Identifier: MIT */
/* compress.h - zstd block compression (private to store/).  <zstd.h> is
 * confined to compress.c.  Thread-safe: contexts are per thread. */
#ifndef BRANCHFS_COMPRESS_H
#define BRANCHFS_COMPRESS_H
#include <stddef.h>
#include <sys/types.h>

/* Upper bound of compress_block() output for len input bytes. */
size_t compress_bound(size_t len);
/* Compress src into dst (capacity dstcap) as one zstd frame with a content
 * checksum.  Returns the compressed length, or -EIO (logged by the
 * caller). */
ssize_t compress_block(void *dst, size_t dstcap, const void *src, size_t len,
		       int level);
/* Decompress exactly dstlen bytes into dst.  -EIO if src is not a valid
 * frame, fails its content checksum or does not decode to dstlen bytes. */
int compress_unblock(void *dst, size_t dstlen, const void *src, size_t len);
#endif
