/* SPDX-License-Identifier: MIT */
/* digest.h - block hashes (private to store/).  <openssl/evp.h> is confined
 * to digest.c.  SHA-256, truncated to DIGEST_LEN bytes.  Thread-safe. */
#ifndef BRANCHFS_DIGEST_H
#define BRANCHFS_DIGEST_H
#include <stddef.h>

#define DIGEST_LEN 16u

/* Hash the concatenation of two buffers (a header and a payload) into
 * out[DIGEST_LEN].  Returns 0 or -EIO. */
int digest_two(unsigned char out[DIGEST_LEN], const void *a, size_t alen,
	       const void *b, size_t blen);
#endif
