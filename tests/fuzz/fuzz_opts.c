// SPDX-License-Identifier: MIT
/* fuzz_opts.c - libFuzzer target: branchd's -o option parser must take or
 * refuse any option string with a one-line error, never crash.  The parser
 * is static in branchd.c, so this target includes that file whole, with its
 * main() renamed. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#define main branchd_main
#include "branchd/branchd.c"
#undef main

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct bd bd;
	char *s;

	if (size > 4096)
		return 0;
	s = strndup((const char *)data, size);
	if (!s)
		return 0;
	memset(&bd, 0, sizeof(bd));
	bd_parse_opts(&bd, s);
	free(bd.default_parent);
	free(bd.pidfile);
	free(bd.socket_path);
	free(s);
	return 0;
}
