/* SPDX-License-Identifier: MIT */
/*
 * ctlproto.h - what branchd and branchctl agree on: the socket's location,
 * the error codes of the control protocol and the exit status of each.
 *
 * Protocol: a client connects to the daemon's unix stream socket and sends
 * requests, one JSON object per line ({"cmd": "...", ...}); each gets one
 * reply line: {"ok": true, ...} or {"ok": false, "error": CODE,
 * "message": TEXT}.  Lines are at most BD_CTL_MAX_LINE bytes.  A known
 * field of the wrong type, or given twice, makes the request malformed
 * ("invalid"); unknown fields are ignored.
 *
 * Socket: /run/branchfs/ctl-<h>.sock for a daemon run by root, else
 * /tmp/branchfs-<uid>/ctl-<h>.sock, where <h> is the 64-bit FNV-1a hash,
 * in hex, of the mount point's absolute path.
 */
#ifndef BRANCHFS_CTLPROTO_H
#define BRANCHFS_CTLPROTO_H

#include <stddef.h>
#include <sys/types.h>

#define BD_CTL_MAX_LINE 65536
/* The "error" code of a connection refused because the daemon, or the
 * caller's uid, has as many control connections open as it serves at
 * once.  The request was not read: branchctl retries it. */
#define BD_CTL_TOO_MANY "too_many"

/* Error codes, as they appear in replies, and branchctl's exit status. */
enum bd_exit {
	BD_EXIT_OK = 0,
	BD_EXIT_ERROR = 1,	  /* anything else */
	BD_EXIT_USAGE = 2,	  /* "usage": bad command line (branchctl's) */
	BD_EXIT_NO_DAEMON = 3,	  /* "no_daemon": nothing listens */
	BD_EXIT_NOT_FOUND = 4,	  /* "not_found": no such branch */
	BD_EXIT_EXISTS = 5,	  /* "exists": name taken */
	BD_EXIT_BUSY = 6,	  /* "busy": in use */
	BD_EXIT_HAS_CHILDREN = 7, /* "has_children" */
	BD_EXIT_OUT_OF_RANGE = 8, /* "out_of_range": time not retained */
	BD_EXIT_PERMISSION = 9,	  /* "permission" */
	BD_EXIT_INVALID = 10,	  /* "invalid": bad name or argument */
};

/* The reply code for a negative errno from the store or a policy check. */
const char *bd_code_of_errno(int err);
/* The exit status for a reply code (unknown codes: BD_EXIT_ERROR). */
int bd_exit_of_code(const char *code);
/* The reply code for an exit status, as branchctl --json reports a
 * failure of its own ("usage", "no_daemon", ...; "error" for
 * BD_EXIT_ERROR and unknown ones): bd_exit_of_code gives status back. */
const char *bd_code_of_exit(int status);

/* Socket path of the daemon serving mountpoint (an absolute path) when
 * run by uid.  Returns 0 or -ENAMETOOLONG. */
int bd_ctl_socket_path(const char *mountpoint, uid_t uid, char *out,
		       size_t outsz);

/* May the control socket at sock_path be trusted as uid's?  Its directory
 * must be a real directory (not a symlink) owned by uid or root, and not
 * writable by others unless sticky (as /tmp): otherwise another user could
 * put a socket of theirs there (or swap ours).  0, or -EPERM / -ENOTDIR /
 * an errno of lstat with why set (one line). */
int bd_ctl_socket_dir_check(const char *sock_path, uid_t uid, char *why,
			    size_t whylen);
#endif
