/* SPDX-License-Identifier: MIT */
/*
 * logdelay.c - an LD_PRELOAD library that holds up the thread writing a
 * chosen log line, so that a test can widen a race window that a daemon's
 * log line sits in without a delay compiled into the daemon.
 *
 * branchd logs in the foreground with fprintf(stderr, ...).  This library
 * wraps fprintf and __fprintf_chk: a line written to stderr whose text
 * contains LOGDELAY_MATCH is written, then the calling thread sleeps
 * LOGDELAY_US microseconds before it returns to the daemon.  Every other
 * call passes straight through.  The environment is read once, at the
 * first call.
 *
 * t63 uses it for mkdir's "created branch" line, which branchd writes
 * between the store's create of a branch and mkdir's reply: a delete over
 * the control socket landing there is the race that t63 runs, and on this
 * machine a plain loop met it about once a minute.
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <pthread.h>

static pthread_once_t ld_once = PTHREAD_ONCE_INIT;
static const char *ld_match;
static long ld_us;

static void ld_init(void)
{
	const char *us = getenv("LOGDELAY_US");

	ld_match = getenv("LOGDELAY_MATCH");
	if (ld_match && !ld_match[0])
		ld_match = NULL;
	ld_us = us ? strtol(us, NULL, 10) : 0;
	if (ld_us < 0 || ld_us > 10000000)
		ld_us = 0;
}

/* Format into a buffer, write it, and sleep if it matches: the text is
 * looked at whole, whatever part of it the format or the arguments held. */
static int ld_vfprintf(FILE *f, const char *fmt, va_list ap)
{
	char buf[4096];
	struct timespec ts;
	int n;

	pthread_once(&ld_once, ld_init);
	if (f != stderr || !ld_match || ld_us == 0)
		return vfprintf(f, fmt, ap);
	n = vsnprintf(buf, sizeof(buf), fmt, ap);
	if (n < 0)
		return n;
	if (fputs(buf, f) == EOF)
		return -1;
	if (strstr(buf, ld_match)) {
		fflush(f);
		ts.tv_sec = ld_us / 1000000;
		ts.tv_nsec = (ld_us % 1000000) * 1000;
		nanosleep(&ts, NULL);
	}
	return n;
}

int fprintf(FILE *f, const char *fmt, ...)
{
	va_list ap;
	int n;

	va_start(ap, fmt);
	n = ld_vfprintf(f, fmt, ap);
	va_end(ap);
	return n;
}

int __fprintf_chk(FILE *f, int flag, const char *fmt, ...)
{
	va_list ap;
	int n;

	(void)flag;
	va_start(ap, fmt);
	n = ld_vfprintf(f, fmt, ap);
	va_end(ap);
	return n;
}
