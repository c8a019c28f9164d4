/* SPDX-License-Identifier: MIT */
/*
 * compress.c - zstd compression of 8 KiB blocks.
 *
 * Every frame carries zstd's content checksum (a 32-bit XXH64 of the
 * decoded bytes, checked by the decoder): the store's SHA-256 digest
 * covers the stored frame, and the checksum that the frame decodes to
 * what was compressed.  Frames without one (written before store format
 * 2) still decode.
 *
 * One ZSTD_CCtx/ZSTD_DCtx per thread, created on first use: context
 * creation is costly and the FUSE loop is multi-threaded.  They hang off a
 * pthread key whose destructor frees them when the thread exits, since
 * libfuse starts and stops worker threads as load comes and goes.
 */
#include <errno.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdlib.h>
#include <zstd.h>

#include "compress.h"

struct compress_ctx {
	ZSTD_CCtx *c;
	ZSTD_DCtx *d;
	int level;    /* the level c is set to, if c_ready */
	bool c_ready; /* c's parameters are set */
};

static pthread_key_t compress_key;
static pthread_once_t compress_once = PTHREAD_ONCE_INIT;

static void compress_ctx_free(void *p)
{
	struct compress_ctx *x = p;

	ZSTD_freeCCtx(x->c);
	ZSTD_freeDCtx(x->d);
	free(x);
}

static void compress_key_init(void)
{
	pthread_key_create(&compress_key, compress_ctx_free);
}

static struct compress_ctx *compress_ctx_get(void)
{
	struct compress_ctx *x;

	pthread_once(&compress_once, compress_key_init);
	x = pthread_getspecific(compress_key);
	if (x)
		return x;
	x = calloc(1, sizeof(*x));
	if (!x)
		return NULL;
	if (pthread_setspecific(compress_key, x) != 0) {
		free(x);
		return NULL;
	}
	return x;
}

size_t compress_bound(size_t len)
{
	return ZSTD_compressBound(len);
}

ssize_t compress_block(void *dst, size_t dstcap, const void *src, size_t len,
		       int level)
{
	struct compress_ctx *x = compress_ctx_get();
	size_t rc;

	if (!x)
		return -ENOMEM;
	if (!x->c) {
		x->c = ZSTD_createCCtx();
		if (!x->c)
			return -ENOMEM;
	}
	/* Parameters stick to the context: set them once per level. */
	if (!x->c_ready || x->level != level) {
		if (ZSTD_isError(ZSTD_CCtx_setParameter(
			    x->c, ZSTD_c_compressionLevel, level)) ||
		    ZSTD_isError(ZSTD_CCtx_setParameter(
			    x->c, ZSTD_c_checksumFlag, 1)))
			return -EIO;
		x->level = level;
		x->c_ready = true;
	}
	rc = ZSTD_compress2(x->c, dst, dstcap, src, len);
	if (ZSTD_isError(rc))
		return -EIO;
	return (ssize_t)rc;
}

int compress_unblock(void *dst, size_t dstlen, const void *src, size_t len)
{
	struct compress_ctx *x = compress_ctx_get();
	size_t rc;

	if (!x)
		return -ENOMEM;
	if (!x->d) {
		x->d = ZSTD_createDCtx();
		if (!x->d)
			return -ENOMEM;
	}
	rc = ZSTD_decompressDCtx(x->d, dst, dstlen, src, len);
	if (ZSTD_isError(rc) || rc != dstlen)
		return -EIO;
	return 0;
}
