/* SPDX-License-Identifier: MIT */
/*
 * kv_fault.h - a fault-injecting decorator for the KV seam (store/kv.h),
 * for tests only.
 *
 * The decorator owns the struct kv it wraps and forwards every method to it
 * through the kv_* wrappers.  A separate control object, struct kv_fault,
 * is created by the test, handed to store_open() as the kv_wrap context
 * (kv_fault_wrap is the kv_wrap callback), and outlives every store opened
 * with it, so a test can arm faults before, during and after an open.
 *
 * Controls:
 *  - kv_fault_arm(): fail the Nth call (1-based, counted from the arm) of
 *    any method in a mask with a chosen negative errno, once (transient)
 *    or for that call and every later one (persistent).  A failed write()
 *    or sync() does not reach the inner backend.  A failing iterator
 *    movement (seek, seek_for_prev, next, prev) leaves the iterator
 *    invalid with iter_status() returning the error, as RocksDB does,
 *    until the iterator is freed (or, with kv_fault_seek_resets(), until
 *    its next seek).  KV_FAULT_NOOP in place of the errno makes a
 *    compaction or a drop of files return 0 without doing anything.
 *  - kv_fault_corrupt(): flip one byte of every value returned by get()
 *    and iter_value() for the column families in a mask (in a private
 *    copy: the database itself is untouched).
 *
 * Thread safety: every function may be called from any thread while the
 * store runs; counters are atomic and the arm state is under a mutex.
 */
#ifndef BRANCHFS_TESTS_KV_FAULT_H
#define BRANCHFS_TESTS_KV_FAULT_H

#include <stdbool.h>
#include <stdint.h>

#include "store/kv.h"

enum kv_fault_method {
	KV_FAULT_GET = 1u << 0,
	KV_FAULT_WRITE = 1u << 1,
	KV_FAULT_SYNC = 1u << 2,
	KV_FAULT_ITER_NEW = 1u << 3,
	KV_FAULT_ITER_MOVE = 1u << 4, /* seek, seek_for_prev, next, prev */
	KV_FAULT_DISK_USAGE = 1u << 5,
	KV_FAULT_COMPACT = 1u << 6,
	KV_FAULT_DROP_FILES = 1u << 7,
	KV_FAULT_ALL = (1u << 8) - 1,
	KV_FAULT_READS = KV_FAULT_GET | KV_FAULT_ITER_NEW | KV_FAULT_ITER_MOVE,
};

struct kv_fault;

/* New control object, disarmed.  Owned by the caller: kv_fault_free(),
 * only after every store opened with it is closed. */
int kv_fault_new(struct kv_fault **out);
void kv_fault_free(struct kv_fault *f);

/* store_config.kv_wrap callback: ctx is the struct kv_fault.  The wrapper
 * returned in *out owns inner and closes it on close. */
int kv_fault_wrap(void *ctx, struct kv *inner, struct kv **out);

/* err for kv_fault_arm: the call returns 0 without reaching the inner
 * backend, as RocksDB's compaction (whose C API returns nothing) looks
 * when it failed or did nothing.  Only for KV_FAULT_COMPACT and
 * KV_FAULT_DROP_FILES. */
#define KV_FAULT_NOOP 1

/* Fail the nth call (nth >= 1) of a method in mask with err (< 0, or
 * KV_FAULT_NOOP).  Resets the fired counter. */
void kv_fault_arm(struct kv_fault *f, unsigned mask, unsigned long nth,
		  bool persistent, int err);
void kv_fault_disarm(struct kv_fault *f);

/* Calls that failed because of the fault since the last arm. */
unsigned long kv_fault_fired(struct kv_fault *f);

/* Calls of methods in mask since kv_fault_new (armed or not). */
unsigned long kv_fault_calls(struct kv_fault *f, unsigned mask);

/* Successful durability points since kv_fault_new: sync() calls and
 * write() calls with sync=true that reached the inner backend. */
unsigned long kv_fault_durable_points(struct kv_fault *f);

/* Corrupt values read from the column families in cf_mask (1u << cf), 0
 * to stop.  pos >= 0 flips the byte at that offset (clamped to the last
 * byte); pos < 0 counts from the end (-1 is the last byte). */
void kv_fault_corrupt(struct kv_fault *f, unsigned cf_mask, long pos);

/* Values corrupted since kv_fault_new. */
unsigned long kv_fault_corrupted(struct kv_fault *f);

/* Run fn(ctx) once, just before the nth (>= 1) movement, counted from
 * now, of an iterator on a column family in cf_mask (1u << cf) reaches the
 * inner backend: a test's way to slip an operation in between a reader's
 * iterator creation (its snapshot) and its read.  The hook is disarmed
 * before fn runs, so fn may use the store.  fn NULL disarms. */
void kv_fault_hook_iter_move(struct kv_fault *f, unsigned cf_mask,
			     unsigned long nth, void (*fn)(void *ctx),
			     void *ctx);

/* Times a hook ran since kv_fault_new. */
unsigned long kv_fault_hooks_run(struct kv_fault *f);

/* on: a seek (seek or seek_for_prev) on an iterator whose movement
 * failed starts afresh, as RocksDB's does: the injected error is gone,
 * and a caller that did not look at iter_status() before seeking again
 * never sees it.  Off (the default): the error stays until the iterator
 * is freed.  For iterators made after the call. */
void kv_fault_seek_resets(struct kv_fault *f, bool on);

#endif /* BRANCHFS_TESTS_KV_FAULT_H */
