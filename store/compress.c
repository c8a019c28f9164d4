/* SPDX-License-Identifier: MIT */
/*
 * compress.c - zstd compression of 8 KiB blocks.
 *
 * One ZSTD_CCtx/ZSTD_DCtx per thread (thread-local, created on first use):
 * context creation is costly and the FUSE loop is multi-threaded.  Contexts
 * are never freed before thread exit; FUSE worker threads are few.
 */
#include <errno.h>
#include <zstd.h>

#include "compress.h"

static _Thread_local ZSTD_CCtx *compress_cctx;
static _Thread_local ZSTD_DCtx *compress_dctx;

size_t compress_bound(size_t len)
{
	return ZSTD_compressBound(len);
}

ssize_t compress_block(void *dst, size_t dstcap, const void *src, size_t len,
		       int level)
{
	size_t rc;

	if (!compress_cctx) {
		compress_cctx = ZSTD_createCCtx();
		if (!compress_cctx)
			return -ENOMEM;
	}
	rc = ZSTD_compressCCtx(compress_cctx, dst, dstcap, src, len, level);
	if (ZSTD_isError(rc))
		return -EIO;
	return (ssize_t)rc;
}

int compress_unblock(void *dst, size_t dstlen, const void *src, size_t len)
{
	size_t rc;

	if (!compress_dctx) {
		compress_dctx = ZSTD_createDCtx();
		if (!compress_dctx)
			return -ENOMEM;
	}
	rc = ZSTD_decompressDCtx(compress_dctx, dst, dstlen, src, len);
	if (ZSTD_isError(rc) || rc != dstlen)
		return -EIO;
	return 0;
}
