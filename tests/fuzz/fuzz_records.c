// SPDX-License-Identifier: MIT
/* fuzz_records.c - libFuzzer target: the decoders of stored records (inode
 * attributes, branch records, block values) must reject damaged bytes with
 * an error, never crash or read out of bounds. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "store/store_int.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static unsigned char out[STORE_BLOCK_SIZE];
	struct store_attr a;
	void *b;

	if (size < 1)
		return 0;
	switch (data[0] % 3) {
	case 0:
		store_attr_decode(data + 1, size - 1, &a);
		break;
	case 1:
		b = calloc(1, store_branch_struct_size());
		if (b)
			store_brrec_decode(data + 1, size - 1, b);
		free(b);
		break;
	default:
		store_block_decode(7, 3, data + 1, size - 1, out);
		break;
	}
	return 0;
}
