/* SPDX-License-Identifier: MIT */
/* ctlproto.c - shared control-protocol tables and the socket location. */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

#include "ctlproto.h"

static const struct {
	const char *code;
	int exit;
} bd_codes[] = {
	{ "usage", BD_EXIT_USAGE },
	{ "no_daemon", BD_EXIT_NO_DAEMON },
	{ "not_found", BD_EXIT_NOT_FOUND },
	{ "exists", BD_EXIT_EXISTS },
	{ "busy", BD_EXIT_BUSY },
	{ "has_children", BD_EXIT_HAS_CHILDREN },
	{ "out_of_range", BD_EXIT_OUT_OF_RANGE },
	{ "permission", BD_EXIT_PERMISSION },
	{ "invalid", BD_EXIT_INVALID },
};

const char *bd_code_of_errno(int err)
{
	switch (err) {
	case -ENOENT:
		return "not_found";
	case -EEXIST:
		return "exists";
	case -EBUSY:
		return "busy";
	case -ENOTEMPTY:
		return "has_children";
	case -ERANGE:
		return "out_of_range";
	case -EPERM:
	case -EACCES:
		return "permission";
	case -EINVAL:
	case -ENAMETOOLONG:
		return "invalid";
	default:
		return "error";
	}
}

int bd_exit_of_code(const char *code)
{
	size_t i;

	for (i = 0; i < sizeof(bd_codes) / sizeof(bd_codes[0]); i++) {
		if (code && strcmp(code, bd_codes[i].code) == 0)
			return bd_codes[i].exit;
	}
	return BD_EXIT_ERROR;
}

const char *bd_code_of_exit(int status)
{
	size_t i;

	for (i = 0; i < sizeof(bd_codes) / sizeof(bd_codes[0]); i++) {
		if (bd_codes[i].exit == status)
			return bd_codes[i].code;
	}
	return "error";
}

int bd_ctl_socket_path(const char *mountpoint, uid_t uid, char *out,
		       size_t outsz)
{
	uint64_t h = 0xcbf29ce484222325ull;
	const unsigned char *p;
	int n;

	for (p = (const unsigned char *)mountpoint; *p; p++) {
		h ^= *p;
		h *= 0x100000001b3ull;
	}
	if (uid == 0)
		n = snprintf(out, outsz, "/run/branchfs/ctl-%016llx.sock",
			     (unsigned long long)h);
	else
		n = snprintf(out, outsz, "/tmp/branchfs-%u/ctl-%016llx.sock",
			     (unsigned)uid, (unsigned long long)h);
	if (n < 0 || (size_t)n >= outsz)
		return -ENAMETOOLONG;
	return 0;
}

int bd_ctl_socket_dir_check(const char *sock_path, uid_t uid, char *why,
			    size_t whylen)
{
	char dir[4096];
	struct stat st;
	char *slash;

	snprintf(dir, sizeof(dir), "%s", sock_path);
	slash = strrchr(dir, '/');
	if (!slash)
		snprintf(dir, sizeof(dir), ".");
	else if (slash == dir)
		dir[1] = 0;
	else
		*slash = 0;
	if (lstat(dir, &st) != 0) {
		int e = errno;

		snprintf(why, whylen, "control socket directory '%s': %s", dir,
			 strerror(e));
		return -e;
	}
	if (!S_ISDIR(st.st_mode)) {
		snprintf(why, whylen,
			 "control socket directory '%s' is not a directory "
			 "(a symbolic link?)",
			 dir);
		return -ENOTDIR;
	}
	if (st.st_uid != uid && st.st_uid != 0) {
		snprintf(why, whylen,
			 "control socket directory '%s' belongs to uid %u, not "
			 "to uid %u%s: not trusted",
			 dir, (unsigned)st.st_uid, (unsigned)uid,
			 uid ? " or root" : "");
		return -EPERM;
	}
	if ((st.st_mode & (S_IWGRP | S_IWOTH)) && !(st.st_mode & S_ISVTX)) {
		snprintf(why, whylen,
			 "control socket directory '%s' is writable by other "
			 "users (mode %04o): not trusted",
			 dir, (unsigned)(st.st_mode & 07777));
		return -EPERM;
	}
	return 0;
}
