/* SPDX-License-Identifier: MIT */
/*
 * control.h - branchd's control plane around a mounted filesystem: the
 * control socket (ctl.c) wired to fs/, and the background GC policy.
 */
#ifndef BRANCHFS_CONTROL_H
#define BRANCHFS_CONTROL_H

#include <stdint.h>

#include "fs/fs.h"
#include "pgckpt.h"
#include "store/store.h"

struct bd_control;

struct bd_control_config {
	struct store *store;	  /* borrowed */
	struct fs *fs;		  /* borrowed */
	const char *store_dir;	  /* absolute; copied */
	const char *mountpoint;	  /* absolute; copied */
	const char *socket_path;  /* NULL: derived (ctlproto.h) */
	uint64_t gc_interval_s;	  /* 0: no background GC */
	uint64_t commit_s;	  /* 0: no periodic commit */
	struct bd_pgckpt *pgckpt; /* borrowed; NULL: no pg_checkpoint */
	struct store_log log;
};

/* Start serving the control socket, the GC, commit and idle threads (the
 * idle one gives freed memory back once writes stop).  Errors are logged
 * with a one-line reason; -EADDRINUSE when another daemon serves the same
 * mount point. */
int bd_control_start(const struct bd_control_config *cfg,
		     struct bd_control **out);
/* Stop them and free; NULL is a no-op. */
void bd_control_stop(struct bd_control *c);
#endif
