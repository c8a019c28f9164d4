// SPDX-License-Identifier: MIT
/* fuzz_ctl.c - libFuzzer target: any request line, from any uid, gets one
 * well-formed reply from the control plane over a real store, and never
 * stops it.  The store lives in a temporary directory for the whole run. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "branchd/ctl.h"
#include "branchd/json.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerInitialize(int *argc, char ***argv);

static struct store *fz_store;
static struct bd_ctl *fz_ctl;
static char fz_dir[] = "/tmp/branchfs-fuzz-ctl-XXXXXX";

static void fz_cleanup(void)
{
	char cmd[128];

	bd_ctl_close(fz_ctl);
	store_close(fz_store);
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", fz_dir);
	if (system(cmd) != 0)
		fprintf(stderr, "fuzz_ctl: cannot remove %s\n", fz_dir);
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	struct store_config scfg = { .create = true, .cache_bytes = 8u << 20 };
	struct bd_ctl_config ccfg = { 0 };
	char store_dir[128], sock[160];

	(void)argc;
	(void)argv;
	if (!mkdtemp(fz_dir))
		abort();
	snprintf(store_dir, sizeof(store_dir), "%s/store", fz_dir);
	snprintf(sock, sizeof(sock), "%s/ctl.sock", fz_dir);
	if (store_open(store_dir, &scfg, &fz_store))
		abort();
	ccfg.store = fz_store;
	ccfg.socket_path = sock;
	ccfg.store_dir = store_dir;
	ccfg.mountpoint = "/nonexistent";
	if (bd_ctl_open(&ccfg, &fz_ctl))
		abort();
	atexit(fz_cleanup);
	return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct json *j = NULL;
	char *reply = NULL;
	uid_t uid = size ? (data[0] & 1 ? 1000 : 0) : 0;
	bool ok;

	if (size > 4096)
		return 0;
	if (bd_ctl_handle(fz_ctl, (const char *)data, size, uid, uid, &reply))
		return 0;
	if (json_parse(reply, strlen(reply), &j) != 0 ||
	    !json_get_bool(j, "ok", &ok))
		abort();
	json_free(j);
	free(reply);
	return 0;
}
