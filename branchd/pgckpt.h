/* SPDX-License-Identifier: MIT */
/*
 * pgckpt.h - branchd's pg_checkpoint policy: CHECKPOINT the Postgres server
 * running on a parent branch just before a branch of its current state is
 * made.
 *
 * A branch of a running cluster is a crash image (DESIGN rule 4): the
 * server started on it replays all WAL written since the parent's last
 * checkpoint before it accepts connections, which under load is hundreds
 * of MB and seconds.  A CHECKPOINT on the parent right before the snapshot
 * leaves almost nothing to replay, at the price of the checkpoint's time in
 * the mkdir (or create, or reset) itself.  The branch is still a plain
 * crash image of one instant; the policy only moves that instant to just
 * after a checkpoint.  A failed or timed-out checkpoint never fails the
 * branch: it is made anyway, and needs the longer recovery.
 */
#ifndef BRANCHFS_PGCKPT_H
#define BRANCHFS_PGCKPT_H

#include <stdbool.h>
#include <stddef.h>

#include "store/store.h"

struct bd_pgckpt;

struct bd_pgckpt_config {
	struct store *store; /* borrowed; outlives the bd_pgckpt */
	bool enabled;	     /* the policy is on (-o pg_checkpoint) */
	unsigned timeout_ms; /* whole helper run; 0 means 10000 */
	/* Program that runs the helper (bd_pgckpt_helper_main) when given
	 * BD_PGCKPT_HELPER_ARG first; NULL means "/proc/self/exe".  Copied. */
	const char *exe;
	struct store_log log;
	/* The pid, as seen here, of the server running on branch b, whose
	 * postmaster.pid names pid (fs_branch_server): > 0 found, 0 none, -1
	 * cannot tell.  With it, a server in a container (a pid and a socket
	 * directory of other namespaces in its postmaster.pid) is reached
	 * through /proc/PID/root.  NULL: the postmaster.pid is taken as is. */
	long (*server_pid)(void *ctx, const struct store_branch_info *b,
			   long pid);
	void *server_pid_ctx;
};

#define BD_PGCKPT_HELPER_ARG "--pg-checkpoint-helper"

enum bd_pgckpt_outcome {
	BD_PGCKPT_OFF = 0,   /* policy off, or the caller asked for none */
	BD_PGCKPT_NO_SERVER, /* no live postmaster on the parent */
	BD_PGCKPT_DONE,	     /* CHECKPOINT returned on the parent's server */
	BD_PGCKPT_FAILED,    /* a server runs, the checkpoint failed: why */
	BD_PGCKPT_TIMEOUT,   /* no answer within timeout_ms */
};

struct bd_pgckpt_result {
	enum bd_pgckpt_outcome outcome;
	long pid;      /* postmaster pid, 0 if none */
	double ms;     /* wall time spent, connect + CHECKPOINT */
	char why[400]; /* FAILED/TIMEOUT/NO_SERVER: lowercase reason */
};

/* "off", "no_server", "done", "failed", "timeout". */
const char *bd_pgckpt_outcome_name(enum bd_pgckpt_outcome o);

/* cfg is copied.  -ENOMEM.  *out owned by the caller, bd_pgckpt_free(). */
int bd_pgckpt_new(const struct bd_pgckpt_config *cfg, struct bd_pgckpt **out);
/* NULL is a no-op. */
void bd_pgckpt_free(struct bd_pgckpt *pc);

/*
 * Apply the policy to parent (borrowed) before a branch of its head is
 * made; what ("creating branch 'pr-1'", borrowed) goes into the log line.
 * Reads the parent's postmaster.pid from the store; when its pid is alive,
 * runs the helper as the owner of the parent's root directory and waits
 * for it at most timeout_ms.  Never fails: *res says what happened, and
 * FAILED and TIMEOUT are logged as warnings, DONE at info level.
 * Thread-safe; blocks; call with no lock held.  pc may be NULL (OFF).
 */
void bd_pgckpt_parent(struct bd_pgckpt *pc,
		      const struct store_branch_info *parent, const char *what,
		      struct bd_pgckpt_result *res);

/* What a postmaster.pid says (Postgres 10+ layout). */
struct bd_pgckpt_pidfile {
	long pid;	    /* line 1 */
	char datadir[1024]; /* line 2 */
	char port[16];	    /* line 4, "" until the sockets are open */
	char host[1024];    /* line 5 (socket directory; a relative one
				  * made absolute with line 2) or else line 6
				  * (listen address; "*" and any-address as
				  * "localhost"); "" if neither */
	char status[16];    /* line 8: "ready", "starting", ... or "" */
};

/* Parse the text of a postmaster.pid (len bytes, need not be
 * NUL-terminated).  0, or -EINVAL when line 1 is not a positive pid. */
int bd_pgckpt_parse_pidfile(const char *text, size_t len,
			    struct bd_pgckpt_pidfile *out);

/*
 * The helper process: argv is { prog, BD_PGCKPT_HELPER_ARG, UID, GID,
 * HOST, PORT, DATADIR, TIMEOUT_S }.  Becomes UID/GID when run by root,
 * connects with libpq (libpq's environment applies; database PGDATABASE,
 * else "postgres", else "template1"), checks that the server's
 * data_directory is DATADIR, and runs CHECKPOINT.  Prints one line (the
 * reason, on failure) on stdout.  Exit status 0 done, 1 failed, 3 the
 * server reached is not the one of DATADIR, 2 usage.
 */
int bd_pgckpt_helper_main(int argc, char **argv);

#endif /* BRANCHFS_PGCKPT_H */
