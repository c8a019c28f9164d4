// SPDX-License-Identifier: MIT
/* fuzz_json.c - libFuzzer target: the control protocol's JSON reader must
 * accept or reject any bytes without crashing, and what it accepts must
 * survive a write-and-reparse round trip of its strings. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "branchd/json.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct json *j = NULL, *k = NULL;
	struct json_buf b;

	if (json_parse((const char *)data, size, &j) != 0)
		return 0;
	if (j->type == JSON_STR) {
		json_buf_init(&b);
		json_buf_str(&b, j->str);
		if (!b.err) {
			if (json_parse(b.p, b.len, &k) != 0 || k->type != JSON_STR ||
			    strcmp(k->str, j->str) != 0)
				abort();
		}
		json_free(k);
		json_buf_release(&b);
	}
	json_free(j);
	return 0;
}
