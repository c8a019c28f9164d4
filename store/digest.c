/* SPDX-License-Identifier: MIT */
/*
 * digest.c - SHA-256 of a block (truncated to DIGEST_LEN bytes).
 *
 * Uses one EVP_MD_CTX per thread: context allocation is too slow for every
 * 8 KiB block.  It hangs off a pthread key whose destructor frees it when
 * the thread exits (libfuse starts and stops worker threads).  SHA-256 runs
 * on the CPU's SHA extensions where present.
 */
#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/evp.h>

#include "digest.h"

static pthread_key_t digest_key;
static pthread_once_t digest_once = PTHREAD_ONCE_INIT;

struct digest_tls {
	EVP_MD_CTX *ctx;
	EVP_MD *md; /* fetched once: EVP_sha256() fetches on every init */
};

static void digest_ctx_free(void *p)
{
	struct digest_tls *t = p;

	EVP_MD_CTX_free(t->ctx);
	EVP_MD_free(t->md);
	free(t);
}

static void digest_key_init(void)
{
	pthread_key_create(&digest_key, digest_ctx_free);
}

int digest_two(unsigned char out[DIGEST_LEN], const void *a, size_t alen,
	       const void *b, size_t blen)
{
	unsigned char md[EVP_MAX_MD_SIZE];
	unsigned int mdlen = 0;

	struct digest_tls *t;
	EVP_MD_CTX *digest_ctx;

	pthread_once(&digest_once, digest_key_init);
	t = pthread_getspecific(digest_key);
	if (!t) {
		t = calloc(1, sizeof(*t));
		if (!t)
			return -ENOMEM;
		t->ctx = EVP_MD_CTX_new();
		t->md = EVP_MD_fetch(NULL, "SHA256", NULL);
		if (!t->ctx || !t->md ||
		    pthread_setspecific(digest_key, t) != 0) {
			digest_ctx_free(t);
			return -ENOMEM;
		}
	}
	digest_ctx = t->ctx;
	if (EVP_DigestInit_ex(digest_ctx, t->md, NULL) != 1 ||
	    EVP_DigestUpdate(digest_ctx, a, alen) != 1 ||
	    (blen && EVP_DigestUpdate(digest_ctx, b, blen) != 1) ||
	    EVP_DigestFinal_ex(digest_ctx, md, &mdlen) != 1 ||
	    mdlen < DIGEST_LEN)
		return -EIO;
	memcpy(out, md, DIGEST_LEN);
	return 0;
}
