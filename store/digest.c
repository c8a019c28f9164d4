/* SPDX-License-Identifier: MIT */
/*
 * digest.c - SHA-256 of a block (truncated to DIGEST_LEN bytes).
 *
 * Uses one EVP_MD_CTX per thread and the algorithm fetched once per
 * thread: EVP_MD_fetch and context allocation are too slow for every 8 KiB
 * block.  SHA-256 runs on the CPU's SHA extensions where present.
 */
#include <errno.h>
#include <string.h>

#include <openssl/evp.h>

#include "digest.h"

static _Thread_local EVP_MD_CTX *digest_ctx;

int digest_two(unsigned char out[DIGEST_LEN], const void *a, size_t alen,
	       const void *b, size_t blen)
{
	unsigned char md[EVP_MAX_MD_SIZE];
	unsigned int mdlen = 0;

	if (!digest_ctx) {
		digest_ctx = EVP_MD_CTX_new();
		if (!digest_ctx)
			return -ENOMEM;
	}
	if (EVP_DigestInit_ex(digest_ctx, EVP_sha256(), NULL) != 1 ||
	    EVP_DigestUpdate(digest_ctx, a, alen) != 1 ||
	    (blen && EVP_DigestUpdate(digest_ctx, b, blen) != 1) ||
	    EVP_DigestFinal_ex(digest_ctx, md, &mdlen) != 1 || mdlen < DIGEST_LEN)
		return -EIO;
	memcpy(out, md, DIGEST_LEN);
	return 0;
}
