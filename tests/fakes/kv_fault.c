/* SPDX-License-Identifier: MIT */
/*
 * kv_fault.c - fault-injecting KV decorator (see kv_fault.h).
 *
 * Structure: struct kv_fault is the test's control object; struct
 * kv_fault_kv is the decorator the store sees, pointing at the control and
 * owning the inner backend; struct kv_fault_iter wraps an inner iterator
 * and carries its own sticky error and a buffer for corrupted values.
 *
 * Invariants:
 *  INV-1 a call that fails by injection never reaches the inner backend
 *        (write, sync, get, iter_new, disk_usage, compact, drop_files),
 *        so a failed write leaves the database exactly as before; nor
 *        does a KV_FAULT_NOOP call, which returns 0.
 *  INV-2 once a wrapped iterator has failed, it stays invalid and its
 *        status is the injected error until it is freed, or, in
 *        seek-resets mode, until its next seek.
 *
 * What it does not do: corrupt the database on disk, or delay calls.
 */
#include <assert.h>
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tests/fakes/kv_fault.h"

#define KV_FAULT_NMETHODS 8

struct kv_fault {
	pthread_mutex_t lock;
	/* guarded by lock */
	unsigned mask;
	unsigned long nth;
	unsigned long seen;
	bool persistent;
	int err;
	/* atomics */
	atomic_ulong fired;
	atomic_ulong corrupted;
	atomic_uint corrupt_cfs;
	atomic_long corrupt_pos;
	atomic_ulong calls[KV_FAULT_NMETHODS];
	atomic_ulong durable;
	/* guarded by lock: the iterator-movement hook */
	unsigned hook_cfs;
	unsigned long hook_nth, hook_seen;
	void (*hook_fn)(void *ctx);
	void *hook_ctx;
	atomic_ulong hooks_run;
	atomic_bool seek_resets;
};

struct kv_fault_kv {
	struct kv kv; /* first */
	struct kv *inner;
	struct kv_fault *f;
};

struct kv_fault_iter {
	struct kv_iter it; /* first */
	struct kv_iter *inner;
	enum kv_cf cf;
	int err;
	bool seek_resets; /* kv_fault_seek_resets() when it was made */
	unsigned char *vbuf;
	size_t vcap;
};

int kv_fault_new(struct kv_fault **out)
{
	struct kv_fault *f = calloc(1, sizeof(*f));

	if (!f)
		return -ENOMEM;
	pthread_mutex_init(&f->lock, NULL);
	*out = f;
	return 0;
}

void kv_fault_free(struct kv_fault *f)
{
	if (!f)
		return;
	pthread_mutex_destroy(&f->lock);
	free(f);
}

void kv_fault_arm(struct kv_fault *f, unsigned mask, unsigned long nth,
		  bool persistent, int err)
{
	pthread_mutex_lock(&f->lock);
	f->mask = mask;
	f->nth = nth ? nth : 1;
	f->seen = 0;
	f->persistent = persistent;
	assert(err != KV_FAULT_NOOP ||
	       !(mask & ~(unsigned)(KV_FAULT_COMPACT | KV_FAULT_DROP_FILES)));
	f->err = err < 0 || err == KV_FAULT_NOOP ? err : -EIO;
	atomic_store(&f->fired, 0);
	pthread_mutex_unlock(&f->lock);
}

void kv_fault_disarm(struct kv_fault *f)
{
	pthread_mutex_lock(&f->lock);
	f->mask = 0;
	pthread_mutex_unlock(&f->lock);
}

unsigned long kv_fault_fired(struct kv_fault *f)
{
	return atomic_load(&f->fired);
}

unsigned long kv_fault_durable_points(struct kv_fault *f)
{
	return atomic_load(&f->durable);
}

unsigned long kv_fault_calls(struct kv_fault *f, unsigned mask)
{
	unsigned long n = 0;
	int i;

	for (i = 0; i < KV_FAULT_NMETHODS; i++)
		if (mask & (1u << i))
			n += atomic_load(&f->calls[i]);
	return n;
}

void kv_fault_corrupt(struct kv_fault *f, unsigned cf_mask, long pos)
{
	atomic_store(&f->corrupt_pos, pos);
	atomic_store(&f->corrupt_cfs, cf_mask);
}

unsigned long kv_fault_corrupted(struct kv_fault *f)
{
	return atomic_load(&f->corrupted);
}

/* Count a call of method m; return 0 or the error to inject. */
static int kv_fault_check(struct kv_fault *f, unsigned m)
{
	int rc = 0;
	int i;

	for (i = 0; i < KV_FAULT_NMETHODS; i++)
		if (m == (1u << i))
			atomic_fetch_add(&f->calls[i], 1);
	pthread_mutex_lock(&f->lock);
	if (f->mask & m) {
		f->seen++;
		if (f->seen == f->nth || (f->persistent && f->seen > f->nth))
			rc = f->err;
	}
	pthread_mutex_unlock(&f->lock);
	if (rc)
		atomic_fetch_add(&f->fired, 1);
	return rc;
}

/* Flip one byte of a value of length vlen of which have bytes are in buf. */
static void kv_fault_flip(struct kv_fault *f, enum kv_cf cf,
			  unsigned char *buf, size_t have, size_t vlen)
{
	long pos;
	size_t at;

	if (!(atomic_load(&f->corrupt_cfs) & (1u << cf)) || vlen == 0)
		return;
	pos = atomic_load(&f->corrupt_pos);
	if (pos >= 0)
		at = (size_t)pos < vlen ? (size_t)pos : vlen - 1;
	else
		at = (size_t)(-pos) <= vlen ? vlen - (size_t)(-pos) : 0;
	if (at >= have)
		return;
	buf[at] ^= 0x5a;
	atomic_fetch_add(&f->corrupted, 1);
}

static struct kv_fault_kv *kv_fault_kv_of(struct kv *kv)
{
	return (struct kv_fault_kv *)kv;
}

static int kv_fault_get(struct kv *kv, enum kv_cf cf, const void *key,
			size_t klen, void *buf, size_t bufsz, size_t *vlen,
			bool *found)
{
	struct kv_fault_kv *w = kv_fault_kv_of(kv);
	int rc = kv_fault_check(w->f, KV_FAULT_GET);

	if (rc)
		return rc;
	rc = kv_get(w->inner, cf, key, klen, buf, bufsz, vlen, found);
	if (rc == 0 && *found && buf)
		kv_fault_flip(w->f, cf, buf, *vlen < bufsz ? *vlen : bufsz,
			      *vlen);
	return rc;
}

/* GC-3: a version is written once.  A batch that puts one key of the
 * block family twice (its ops share one seq) breaks the SingleDelete GC
 * gives it later: refused with -EPROTO and a message, failing the test. */
static const struct kv_batch *kv_fault_sort_batch;

static int kv_fault_key_cmp(const void *x, const void *y)
{
	const struct kv_op *a = *(const struct kv_op *const *)x;
	const struct kv_op *c = *(const struct kv_op *const *)y;
	size_t n = a->klen < c->klen ? a->klen : c->klen;
	int r = memcmp(kv_batch_key(kv_fault_sort_batch, a),
		       kv_batch_key(kv_fault_sort_batch, c), n);

	return r ? r : (a->klen > c->klen) - (a->klen < c->klen);
}

static int kv_fault_dup_blocks(const struct kv_batch *b)
{
	static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
	const struct kv_op **v;
	size_t i, n = 0;
	int rc = 0;

	v = malloc((b->nops ? b->nops : 1) * sizeof(*v));
	if (!v)
		return 0; /* the check only */
	for (i = 0; i < b->nops; i++) {
		if (b->ops[i].type == KV_OP_PUT && b->ops[i].cf == KV_CF_BLOCK)
			v[n++] = &b->ops[i];
	}
	pthread_mutex_lock(&mu);
	kv_fault_sort_batch = b;
	qsort(v, n, sizeof(*v), kv_fault_key_cmp);
	for (i = 1; i < n && rc == 0; i++) {
		if (kv_fault_key_cmp(&v[i - 1], &v[i]) == 0) {
			fprintf(stderr,
				"kv_fault: a batch puts one block key twice\n");
			rc = -EPROTO;
		}
	}
	pthread_mutex_unlock(&mu);
	free(v);
	return rc;
}

static int kv_fault_write(struct kv *kv, const struct kv_batch *b, bool sync)
{
	struct kv_fault_kv *w = kv_fault_kv_of(kv);
	int rc = kv_fault_check(w->f, KV_FAULT_WRITE);

	if (rc)
		return rc;
	rc = kv_fault_dup_blocks(b);
	if (rc)
		return rc;
	rc = kv_write(w->inner, b, sync);
	if (rc == 0 && sync)
		atomic_fetch_add(&w->f->durable, 1);
	return rc;
}

static int kv_fault_sync(struct kv *kv)
{
	struct kv_fault_kv *w = kv_fault_kv_of(kv);
	int rc = kv_fault_check(w->f, KV_FAULT_SYNC);

	if (rc)
		return rc;
	rc = kv_sync(w->inner);
	if (rc == 0)
		atomic_fetch_add(&w->f->durable, 1);
	return rc;
}

static int kv_fault_iter_new(struct kv *kv, enum kv_cf cf, unsigned prefix_mode,
			     struct kv_iter **out)
{
	struct kv_fault_kv *w = kv_fault_kv_of(kv);
	struct kv_fault_iter *it;
	int rc = kv_fault_check(w->f, KV_FAULT_ITER_NEW);

	if (rc)
		return rc;
	it = calloc(1, sizeof(*it));
	if (!it)
		return -ENOMEM;
	rc = kv_iter_new(w->inner, cf, prefix_mode, &it->inner);
	if (rc) {
		free(it);
		return rc;
	}
	it->it.kv = kv;
	it->cf = cf;
	it->seek_resets = atomic_load(&w->f->seek_resets);
	*out = &it->it;
	return 0;
}

static struct kv_fault_iter *kv_fault_iter_of(struct kv_iter *it)
{
	return (struct kv_fault_iter *)it;
}

static void kv_fault_iter_free(struct kv_iter *kit)
{
	struct kv_fault_iter *it = kv_fault_iter_of(kit);

	kv_iter_free(it->inner);
	free(it->vbuf);
	free(it);
}

void kv_fault_hook_iter_move(struct kv_fault *f, unsigned cf_mask,
			     unsigned long nth, void (*fn)(void *ctx),
			     void *ctx)
{
	pthread_mutex_lock(&f->lock);
	f->hook_cfs = fn ? cf_mask : 0;
	f->hook_nth = nth ? nth : 1;
	f->hook_seen = 0;
	f->hook_fn = fn;
	f->hook_ctx = ctx;
	pthread_mutex_unlock(&f->lock);
}

unsigned long kv_fault_hooks_run(struct kv_fault *f)
{
	return atomic_load(&f->hooks_run);
}

void kv_fault_seek_resets(struct kv_fault *f, bool on)
{
	atomic_store(&f->seek_resets, on);
}

/* Run the movement hook if this movement is the one it waits for. */
static void kv_fault_iter_hook(struct kv_fault *f, enum kv_cf cf)
{
	void (*fn)(void *ctx) = NULL;
	void *ctx = NULL;

	pthread_mutex_lock(&f->lock);
	if ((f->hook_cfs & (1u << cf)) && ++f->hook_seen == f->hook_nth) {
		fn = f->hook_fn;
		ctx = f->hook_ctx;
		f->hook_cfs = 0;
		f->hook_fn = NULL;
	}
	pthread_mutex_unlock(&f->lock);
	if (fn) {
		fn(ctx);
		atomic_fetch_add(&f->hooks_run, 1);
	}
}

/* Inject on a movement; true if the iterator is (now) failed. */
static bool kv_fault_iter_failed(struct kv_fault_iter *it)
{
	struct kv_fault_kv *w = kv_fault_kv_of(it->it.kv);
	int rc = kv_fault_check(w->f, KV_FAULT_ITER_MOVE);

	if (rc && !it->err)
		it->err = rc;
	if (!it->err)
		kv_fault_iter_hook(w->f, it->cf);
	return it->err != 0;
}

static void kv_fault_iter_seek(struct kv_iter *kit, const void *key,
			       size_t klen)
{
	struct kv_fault_iter *it = kv_fault_iter_of(kit);

	if (it->seek_resets)
		it->err = 0;
	if (!kv_fault_iter_failed(it))
		kv_iter_seek(it->inner, key, klen);
}

static void kv_fault_iter_seek_for_prev(struct kv_iter *kit, const void *key,
					size_t klen)
{
	struct kv_fault_iter *it = kv_fault_iter_of(kit);

	if (it->seek_resets)
		it->err = 0;
	if (!kv_fault_iter_failed(it))
		kv_iter_seek_for_prev(it->inner, key, klen);
}

static void kv_fault_iter_next(struct kv_iter *kit)
{
	struct kv_fault_iter *it = kv_fault_iter_of(kit);

	if (!kv_fault_iter_failed(it))
		kv_iter_next(it->inner);
}

static void kv_fault_iter_prev(struct kv_iter *kit)
{
	struct kv_fault_iter *it = kv_fault_iter_of(kit);

	if (!kv_fault_iter_failed(it))
		kv_iter_prev(it->inner);
}

static bool kv_fault_iter_valid(struct kv_iter *kit)
{
	struct kv_fault_iter *it = kv_fault_iter_of(kit);

	return !it->err && kv_iter_valid(it->inner);
}

static const void *kv_fault_iter_key(struct kv_iter *kit, size_t *klen)
{
	return kv_iter_key(kv_fault_iter_of(kit)->inner, klen);
}

static const void *kv_fault_iter_value(struct kv_iter *kit, size_t *vlen)
{
	struct kv_fault_iter *it = kv_fault_iter_of(kit);
	struct kv_fault_kv *w = kv_fault_kv_of(kit->kv);
	const void *v = kv_iter_value(it->inner, vlen);

	if (!v || !(atomic_load(&w->f->corrupt_cfs) & (1u << it->cf)) ||
	    *vlen == 0)
		return v;
	if (*vlen > it->vcap) {
		unsigned char *nb = realloc(it->vbuf, *vlen);

		if (!nb)
			return v; /* cannot corrupt: hand back the original */
		it->vbuf = nb;
		it->vcap = *vlen;
	}
	memcpy(it->vbuf, v, *vlen);
	kv_fault_flip(w->f, it->cf, it->vbuf, *vlen, *vlen);
	return it->vbuf;
}

static int kv_fault_iter_status(struct kv_iter *kit)
{
	struct kv_fault_iter *it = kv_fault_iter_of(kit);

	if (it->err)
		return it->err;
	return kv_iter_status(it->inner);
}

static int kv_fault_disk_usage(struct kv *kv, uint64_t *bytes)
{
	struct kv_fault_kv *w = kv_fault_kv_of(kv);
	int rc = kv_fault_check(w->f, KV_FAULT_DISK_USAGE);

	if (rc)
		return rc;
	return kv_disk_usage(w->inner, bytes);
}

static int kv_fault_compact(struct kv *kv, enum kv_cf cf, const void *begin,
			    size_t blen, const void *end, size_t elen,
			    bool bottom)
{
	struct kv_fault_kv *w = kv_fault_kv_of(kv);
	int rc = kv_fault_check(w->f, KV_FAULT_COMPACT);

	if (rc)
		return rc == KV_FAULT_NOOP ? 0 : rc;
	return kv_compact(w->inner, cf, begin, blen, end, elen, bottom);
}

static int kv_fault_drop_files(struct kv *kv, enum kv_cf cf, const void *begin,
			       size_t blen, const void *end, size_t elen)
{
	struct kv_fault_kv *w = kv_fault_kv_of(kv);
	int rc = kv_fault_check(w->f, KV_FAULT_DROP_FILES);

	if (rc)
		return rc == KV_FAULT_NOOP ? 0 : rc;
	return kv_drop_files(w->inner, cf, begin, blen, end, elen);
}

static int kv_fault_rewrite_bytes(struct kv *kv, enum kv_cf cf,
				  const void *begin, size_t blen,
				  const void *end, size_t elen, uint64_t *bytes)
{
	return kv_rewrite_bytes(kv_fault_kv_of(kv)->inner, cf, begin, blen, end,
				elen, bytes);
}

static int kv_fault_count_deletions(struct kv *kv, enum kv_cf cf, uint64_t *n)
{
	return kv_count_deletions(kv_fault_kv_of(kv)->inner, cf, n);
}

static void kv_fault_close(struct kv *kv)
{
	struct kv_fault_kv *w = kv_fault_kv_of(kv);

	kv_close(w->inner);
	free(w);
}

static const struct kv_ops kv_fault_ops = {
	.get = kv_fault_get,
	.write = kv_fault_write,
	.sync = kv_fault_sync,
	.iter_new = kv_fault_iter_new,
	.iter_free = kv_fault_iter_free,
	.iter_seek = kv_fault_iter_seek,
	.iter_seek_for_prev = kv_fault_iter_seek_for_prev,
	.iter_next = kv_fault_iter_next,
	.iter_prev = kv_fault_iter_prev,
	.iter_valid = kv_fault_iter_valid,
	.iter_key = kv_fault_iter_key,
	.iter_value = kv_fault_iter_value,
	.iter_status = kv_fault_iter_status,
	.disk_usage = kv_fault_disk_usage,
	.compact = kv_fault_compact,
	.drop_files = kv_fault_drop_files,
	.rewrite_bytes = kv_fault_rewrite_bytes,
	.count_deletions = kv_fault_count_deletions,
	.close = kv_fault_close,
};

int kv_fault_wrap(void *ctx, struct kv *inner, struct kv **out)
{
	struct kv_fault_kv *w = calloc(1, sizeof(*w));

	if (!w)
		return -ENOMEM;
	w->kv.ops = &kv_fault_ops;
	w->kv.log = inner->log;
	w->inner = inner;
	w->f = ctx;
	*out = &w->kv;
	return 0;
}
