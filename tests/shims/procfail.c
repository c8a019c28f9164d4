/* SPDX-License-Identifier: MIT */
/*
 * procfail.c - an LD_PRELOAD library that makes branchd's look at other
 * processes' mounts fail as it does out of memory, so that a test can
 * check that a delete, rename or reset is then refused (fail closed)
 * instead of let through unchecked, and that list says it cannot tell.
 *
 * While the file named by PROCFAIL_FLAG exists, fopen of
 * /proc/PID/mountinfo (a numeric PID: the look at every mount namespace,
 * not /proc/self/mountinfo, which the daemon reads to find its own mount)
 * fails with ENOMEM, as glibc's fopen does when it cannot allocate its
 * FILE.  Every other call passes straight through.  The flag is looked at
 * at each such call, so a test switches the failure on and off while the
 * daemon runs.
 *
 * t04 runs branchd under it.
 */
#include <dlfcn.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static int pf_fails(const char *path)
{
	const char *flag = getenv("PROCFAIL_FLAG"), *p;

	if (!flag || !flag[0] || strncmp(path, "/proc/", 6) != 0)
		return 0;
	p = path + 6;
	if (*p < '0' || *p > '9')
		return 0;
	while (*p >= '0' && *p <= '9')
		p++;
	return strcmp(p, "/mountinfo") == 0 && access(flag, F_OK) == 0;
}

typedef FILE *(*pf_fopen_fn)(const char *, const char *);

/* fopen or fopen64 (name), failing as pf_fails says, else the next one
 * (looked up in *next at the first call). */
static FILE *pf_open(const char *path, const char *mode, pf_fopen_fn *next,
		     const char *name)
{
	if (pf_fails(path)) {
		errno = ENOMEM;
		return NULL;
	}
	if (!*next)
		*next = (pf_fopen_fn)dlsym(RTLD_NEXT, name);
	return (*next)(path, mode);
}

FILE *fopen64(const char *path, const char *mode)
{
	static pf_fopen_fn next;

	return pf_open(path, mode, &next, "fopen64");
}

FILE *fopen(const char *path, const char *mode)
{
	static pf_fopen_fn next;

	return pf_open(path, mode, &next, "fopen");
}
