/* SPDX-License-Identifier: MIT */
/*
 * control.c - glue between the control socket and the filesystem, and the
 * background GC policy.
 *
 * The GC thread runs store_gc() every gc_interval_s seconds at idle CPU and
 * I/O priority, with a pause after every 1024 keys it examines, so that
 * foreground I/O keeps the disk.  Each run examines only what was written
 * since the previous one (store.c, GC-1); only the first run after start
 * scans the whole store.  An unlinked inode counts as in use while a file
 * handle on it is open (fs counts open handles per node).
 * On-demand GC (branchctl gc) also compacts the store when enough was
 * deleted to be worth it (store_gc_opts.full_compaction).
 *
 * The commit thread makes every write durable at most commit_s seconds
 * after it returned (store_sync_pending, which does nothing when nothing
 * was written), as ext4 commits its journal every 5 s: a file written and
 * never fsynced, a branch made by mkdir, or the data sync(1) pushed out of
 * the kernel (FUSE passes syncfs to no daemon) then survives a power cut
 * after at most that long.  fsync stays what makes a write durable at once.
 *
 * The idle thread gives freed memory back to the kernel (mem.c) once
 * writes stop: it looks at the store's seq every BD_IDLE_TICK_S seconds,
 * and the first look that finds it where the previous one did, after it
 * moved, trims (once per quiet spell: a daemon that serves nothing costs
 * nothing).  It also trims after every background GC pass, under load
 * too (GC's set of objects is freed in a thread that then sleeps for
 * minutes).  The trim runs there and not in the GC thread because it
 * holds each malloc arena's lock while it walks it: at GC's idle CPU
 * priority, under load, FUSE workers allocating from that arena would
 * wait for a thread that hardly gets the CPU.
 */
#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "control.h"
#include "ctl.h"
#include "ctlproto.h"
#include "mem.h"

/* How often the idle thread looks whether writes stopped. */
#define BD_IDLE_TICK_S 5

struct bd_control {
	struct bd_control_config cfg;
	struct bd_ctl *ctl;
	pthread_t gc_thread;
	bool gc_started;
	pthread_t commit_thread;
	bool commit_started;
	pthread_t idle_thread;
	bool idle_started;
	atomic_bool trim_due; /* a GC pass ended since the last trim */
	pthread_mutex_t mu;
	pthread_cond_t cv;
	bool stop; /* guarded by mu */
};

static int bd_hook_busy(void *ctx, void *probe, uint64_t branch,
			const char *name, char *why, size_t whysz)
{
	struct bd_control *c = ctx;

	(void)name;
	return fs_branch_busy(c->cfg.fs, probe, branch, why, whysz);
}

static int bd_hook_probe_new(void *ctx, void **probe)
{
	struct bd_control *c = ctx;
	struct fs_probe *p;
	int rc;

	rc = fs_probe_new(c->cfg.fs, &p);
	if (rc == 0)
		*probe = p;
	return rc;
}

static void bd_hook_probe_free(void *ctx, void *probe)
{
	(void)ctx;
	fs_probe_free(probe);
}

static int bd_hook_begin(void *ctx, uint64_t branch, char *why, size_t whysz)
{
	struct bd_control *c = ctx;

	return fs_branch_begin_change(c->cfg.fs, branch, why, whysz);
}

static void bd_hook_end(void *ctx, uint64_t branch)
{
	struct bd_control *c = ctx;

	fs_branch_end_change(c->cfg.fs, branch);
}

static void bd_hook_changed(void *ctx, uint64_t branch, const char *old_name,
			    const char *new_name)
{
	struct bd_control *c = ctx;

	if (old_name)
		fs_invalidate_branch(c->cfg.fs, branch, old_name);
	else if (new_name)
		fs_invalidate_branch(c->cfg.fs, branch, new_name);
	/* A reset: the same name, another tree. */
	if (old_name && new_name && strcmp(old_name, new_name) == 0)
		fs_invalidate_tree(c->cfg.fs, branch);
}

static void bd_hook_prepare_reset(void *ctx, uint64_t branch)
{
	struct bd_control *c = ctx;

	fs_reset_prepare(c->cfg.fs, branch);
}

static int bd_hook_rename(void *ctx, uint64_t branch, const char *old_name,
			  const char *new_name)
{
	struct bd_control *c = ctx;

	return fs_branch_rename(c->cfg.fs, branch, old_name, new_name);
}

static int bd_hook_may_create(void *ctx, uid_t uid, gid_t gid,
			      const gid_t *groups, size_t ngroups)
{
	struct bd_control *c = ctx;

	return fs_root_may_create(c->cfg.fs, uid, gid, groups, ngroups);
}

static int bd_hook_may_remove(void *ctx, uid_t uid, gid_t gid,
			      const gid_t *groups, size_t ngroups,
			      uid_t owner_uid)
{
	struct bd_control *c = ctx;

	return fs_root_may_remove(c->cfg.fs, uid, gid, groups, ngroups,
				  owner_uid);
}

static void bd_hook_get_default(void *ctx, char *buf, size_t bufsz)
{
	struct bd_control *c = ctx;

	fs_get_default_parent(c->cfg.fs, buf, bufsz);
}

static int bd_hook_set_default(void *ctx, const char *name)
{
	struct bd_control *c = ctx;

	return fs_set_default_parent(c->cfg.fs, name);
}

static bool bd_hook_in_use(void *ctx, uint64_t branch, uint64_t ino)
{
	struct bd_control *c = ctx;

	return fs_inode_in_use(c->cfg.fs, branch, ino);
}

static void bd_hook_before_fork(void *ctx,
				const struct store_branch_info *parent,
				const char *what, struct bd_pgckpt_result *res)
{
	struct bd_control *c = ctx;

	bd_pgckpt_parent(c->cfg.pgckpt, parent, what, res);
}

static void bd_hook_flush(void *ctx, const struct store_branch_info *parent)
{
	struct bd_control *c = ctx;

	fs_branch_flush(c->cfg.fs, parent->id);
}

static int bd_hook_check_fork(void *ctx, const struct store_branch_info *parent,
			      uint64_t seq, char *why, size_t whysz)
{
	struct bd_control *c = ctx;

	return fs_branch_check_fork(c->cfg.fs, parent, seq, why, whysz);
}

/* Sleep secs seconds, or less if the control is stopping; false once it
 * is.  The condition variable runs on CLOCK_MONOTONIC, so that setting the
 * wall clock neither stalls nor hurries the background threads. */
static bool bd_control_wait(struct bd_control *c, uint64_t secs)
{
	struct timespec until;
	bool go;

	clock_gettime(CLOCK_MONOTONIC, &until);
	until.tv_sec += (time_t)secs;
	pthread_mutex_lock(&c->mu);
	while (!c->stop && pthread_cond_timedwait(&c->cv, &c->mu, &until) == 0)
		;
	go = !c->stop;
	pthread_mutex_unlock(&c->mu);
	return go;
}

static void *bd_gc_main(void *arg)
{
	struct bd_control *c = arg;

	bd_thread_background();
	while (bd_control_wait(c, c->cfg.gc_interval_s)) {
		struct store_gc_opts o = {
			.in_use = bd_hook_in_use,
			.ctx = c,
			.pause_us = 1000,
		};
		struct store_gc_stats st;
		int rc;

		rc = store_gc(c->cfg.store, &o, &st);
		if (rc && rc != -EBUSY)
			bd_log(&c->cfg.log, STORE_LOG_WARN,
			       "background gc failed: %s", strerror(-rc));
		if (rc != -EBUSY)
			atomic_store(&c->trim_due, true);
	}
	return NULL;
}

static void *bd_idle_main(void *arg)
{
	struct bd_control *c = arg;
	uint64_t seen = 0, trimmed = 0, seq;
	bool gc;

	while (bd_control_wait(c, BD_IDLE_TICK_S)) {
		seq = store_seq_now(c->cfg.store);
		gc = atomic_exchange(&c->trim_due, false);
		if (seq == seen && seq != trimmed) {
			bd_mem_trim(&c->cfg.log, "idle");
			trimmed = seq;
		} else if (gc) {
			bd_mem_trim(&c->cfg.log, "after gc");
		}
		seen = seq;
	}
	return NULL;
}

static void *bd_commit_main(void *arg)
{
	struct bd_control *c = arg;
	bool failing = false;

	while (bd_control_wait(c, c->cfg.commit_s)) {
		int rc = store_sync_pending(c->cfg.store);

		/* one line when commits start failing, one when they recover */
		if (rc && !failing)
			bd_log(&c->cfg.log, STORE_LOG_WARN,
			       "periodic commit failed: %s (retried every %" PRIu64
			       " s; fsync reports the error too)",
			       strerror(-rc), c->cfg.commit_s);
		else if (!rc && failing)
			bd_log(&c->cfg.log, STORE_LOG_INFO,
			       "periodic commit works again");
		failing = rc != 0;
	}
	return NULL;
}

int bd_control_start(const struct bd_control_config *cfg,
		     struct bd_control **out)
{
	struct bd_ctl_config cc = { 0 };
	struct bd_control *c;
	char sock[256];
	int rc;

	c = calloc(1, sizeof(*c));
	if (!c)
		return -ENOMEM;
	c->cfg = *cfg;
	atomic_init(&c->trim_due, false);
	pthread_mutex_init(&c->mu, NULL);
	{
		pthread_condattr_t ca;

		pthread_condattr_init(&ca);
		pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
		pthread_cond_init(&c->cv, &ca);
		pthread_condattr_destroy(&ca);
	}
	if (cfg->socket_path)
		snprintf(sock, sizeof(sock), "%s", cfg->socket_path);
	else if (bd_ctl_socket_path(cfg->mountpoint, getuid(), sock,
				    sizeof(sock)))
		sock[0] = 0;
	cc.store = cfg->store;
	cc.socket_path = sock;
	cc.store_dir = cfg->store_dir;
	cc.mountpoint = cfg->mountpoint;
	cc.daemon_uid = getuid();
	cc.drop_names = fs_pg_drop_names;
	cc.log = cfg->log;
	cc.hooks.ctx = c;
	cc.hooks.busy = bd_hook_busy;
	cc.hooks.probe_new = bd_hook_probe_new;
	cc.hooks.probe_free = bd_hook_probe_free;
	cc.hooks.begin_change = bd_hook_begin;
	cc.hooks.end_change = bd_hook_end;
	cc.hooks.rename = bd_hook_rename;
	cc.hooks.changed = bd_hook_changed;
	cc.hooks.prepare_reset = bd_hook_prepare_reset;
	cc.hooks.may_create = bd_hook_may_create;
	cc.hooks.may_remove = bd_hook_may_remove;
	cc.hooks.get_default = bd_hook_get_default;
	cc.hooks.set_default = bd_hook_set_default;
	cc.hooks.in_use = bd_hook_in_use;
	cc.hooks.before_fork = bd_hook_before_fork;
	cc.hooks.flush = bd_hook_flush;
	cc.hooks.check_fork = bd_hook_check_fork;
	rc = bd_ctl_open(&cc, &c->ctl);
	if (rc) {
		bd_log(&c->cfg.log, STORE_LOG_ERR,
		       rc == -EADDRINUSE ?
			       "control socket '%s' is served by another daemon" :
			       "cannot serve control socket '%s': %s",
		       sock, strerror(-rc));
		goto err_free;
	}
	if (cfg->gc_interval_s) {
		rc = -pthread_create(&c->gc_thread, NULL, bd_gc_main, c);
		if (rc)
			goto err_close;
		c->gc_started = true;
	}
	if (cfg->commit_s) {
		rc = -pthread_create(&c->commit_thread, NULL, bd_commit_main,
				     c);
		if (rc)
			goto err_stop;
		c->commit_started = true;
	}
	rc = -pthread_create(&c->idle_thread, NULL, bd_idle_main, c);
	if (rc)
		goto err_stop;
	c->idle_started = true;
	bd_log(&c->cfg.log, STORE_LOG_INFO, "control socket %s", sock);
	*out = c;
	return 0;
err_stop:
	pthread_mutex_lock(&c->mu);
	c->stop = true;
	pthread_cond_broadcast(&c->cv);
	pthread_mutex_unlock(&c->mu);
	if (c->gc_started)
		pthread_join(c->gc_thread, NULL);
	if (c->commit_started)
		pthread_join(c->commit_thread, NULL);
err_close:
	bd_ctl_close(c->ctl);
err_free:
	pthread_mutex_destroy(&c->mu);
	pthread_cond_destroy(&c->cv);
	free(c);
	return rc;
}

void bd_control_stop(struct bd_control *c)
{
	if (!c)
		return;
	pthread_mutex_lock(&c->mu);
	c->stop = true;
	pthread_cond_broadcast(&c->cv);
	pthread_mutex_unlock(&c->mu);
	if (c->gc_started)
		pthread_join(c->gc_thread, NULL);
	if (c->commit_started)
		pthread_join(c->commit_thread, NULL);
	if (c->idle_started)
		pthread_join(c->idle_thread, NULL);
	bd_ctl_close(c->ctl);
	pthread_mutex_destroy(&c->mu);
	pthread_cond_destroy(&c->cv);
	free(c);
}
