/* SPDX-License-Identifier: MIT */
/*
 * fs_uring.c - FUSE over io_uring: the kernel hands requests to branchd
 * through io_uring commands instead of read(2) and writev(2) on /dev/fuse
 * (Linux 6.14 and later, with the fuse module's enable_uring parameter
 * on).  libfuse 3.14 does not speak this protocol, so it is added under
 * libfuse through its custom I/O hooks, and libfuse keeps doing all it did:
 * decoding requests, the replies, the INIT negotiation, and the /dev/fuse
 * loop, which still carries FORGET and INTERRUPT (the kernel never sends
 * those through the ring) and everything before the ring is ready.
 *
 *  - The read hook is a plain read(2) that notes the kernel's INIT request:
 *    its unique id and whether the kernel offers FUSE_OVER_IO_URING.
 *  - The writev hook adds FUSE_OVER_IO_URING (and FUSE_INIT_EXT) to the
 *    reply to INIT once every ring entry is set up, and lets the entries
 *    register after the kernel took that reply.  A reply to the request
 *    the calling thread is serving from its ring entry (same unique) goes
 *    into that entry's buffers.  Anything else (notifications, replies to
 *    requests read from /dev/fuse) is written to /dev/fuse.
 *
 * The kernel's side (include/uapi/linux/fuse.h, fs/fuse/dev_uring.c): one
 * queue per possible CPU, and a request goes to the queue of the CPU its
 * sender runs on.  An entry is a header buffer (struct fs_uring_hdr: the
 * fuse_in_header or fuse_out_header, the opcode's first argument, and a
 * trailer with the payload size and the commit id) and a payload buffer
 * of at least the connection's largest request.  REGISTER hands an entry
 * to the kernel; its completion means a request is in the buffers.
 * COMMIT_AND_FETCH hands back the reply and waits for the next request in
 * one submission.  The kernel moves the connection to the ring once every
 * queue has an entry waiting.  With FUSE_OVER_IO_URING agreed it holds
 * new requests until then, or until a REGISTER fails (which turns the ring
 * off for the connection): so the flag is offered only after every
 * entry's io_uring, buffers and thread exist, and what is left to fail is
 * the REGISTER itself.
 *
 * Threads: one per entry, FS_URING_DEPTH entries per queue, each thread
 * with its own small io_uring.  They are not pinned to their queue's CPU
 * (which the kernel's design suggests): on a 2-CPU machine under pgbench
 * that cost 9% of the read-write rate, since a pinned thread cannot move
 * to the idle CPU.  Nor does the ring defer the kernel's task work to the
 * thread's wait (IORING_SETUP_DEFER_TASKRUN), which measured no better.
 * A request becomes one contiguous message for libfuse without copying
 * its payload: the header and first argument are copied into a gap left
 * just before the payload buffer.
 *
 * Invariants:
 *  UR-1 An entry's buffers are only touched by its own thread, and by the
 *       kernel only while the entry is registered (between a submission
 *       and its completion).
 *  UR-2 Every request taken from the ring gets exactly one commit: the
 *       reply libfuse wrote, or -EIO and a log line if it wrote none.
 *
 * XXX(globals): libfuse's writev hook gets no request, only the session's
 * userdata; the entry the calling thread is serving is in a thread-local
 * pointer (fs_uring_cur), set only around fuse_session_process_buf().
 */
#include <errno.h>
#include <fcntl.h>
#include <linux/fuse.h>
#include <liburing.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/uio.h>
#include <unistd.h>

#include "fs_int.h"

/* uapi of Linux 6.14 (fuse 7.42), which the build host's headers may
 * predate. */
#define FS_URING_OVER_IO_URING (UINT64_C(1) << 41)
#define FS_URING_INIT_EXT (1u << 30)
#define FS_URING_CMD_REGISTER 1u
#define FS_URING_CMD_COMMIT_AND_FETCH 2u

/* Entries (and threads) per queue.  Each takes one request at a time, so
 * this bounds the requests in service per CPU, as the /dev/fuse loop's
 * thread count does. */
#define FS_URING_DEPTH 16u
/* Room before the payload for the fuse_in_header and first argument. */
#define FS_URING_GAP 4096u
/* How often a waiting thread looks at the stop flag. */
#define FS_URING_WAIT_S 1

/* struct fuse_uring_req_header */
struct fs_uring_hdr {
	uint8_t in_out[128];
	uint8_t op_in[128];
	struct fs_uring_ent_in_out {
		uint64_t flags;
		uint64_t commit_id;
		uint32_t payload_sz;
		uint32_t padding;
		uint64_t reserved;
	} ent;
};

/* struct fuse_uring_cmd_req, in the command area of a 128-byte SQE */
struct fs_uring_cmd {
	uint64_t flags;
	uint64_t commit_id;
	uint16_t qid;
	uint8_t padding[6];
};

enum fs_uring_state {
	FS_URING_IDLE,	/* before INIT */
	FS_URING_SETUP, /* threads making their rings and buffers */
	FS_URING_GO,	/* INIT reply taken: register and serve */
	FS_URING_STOP,
};

struct fs_uring_ent {
	struct fs_uring *u;
	unsigned qid;
	pthread_t thread;
	bool started;
	struct io_uring ring;
	struct fs_uring_hdr *hdr; /* in map */
	uint8_t *payload;	  /* in map, FS_URING_GAP after its start */
	size_t payload_len;
	void *map;
	size_t map_len;
	struct iovec iov[2];
	/* The request being served (UR-2). */
	uint64_t unique;
	uint64_t commit_id;
	bool replied;
	uint64_t served; /* requests taken from the ring */
};

struct fs_uring {
	struct fs *fs;
	int fd; /* the session's /dev/fuse */
	unsigned nq, n;
	struct fs_uring_ent *ents;

	pthread_mutex_t mu;
	pthread_cond_t cv;
	enum fs_uring_state state; /* guarded by mu */
	unsigned n_ok, n_failed;   /* guarded by mu: setup results */

	/* Set by the read hook, read by the writev hook of the same INIT
	 * request (libfuse serves INIT before any other request). */
	_Atomic uint64_t init_unique;
	atomic_bool offered;
};

static __thread struct fs_uring_ent *fs_uring_cur;

/* Number of possible CPUs as the kernel counts queues: the highest index
 * in /sys/devices/system/cpu/possible, plus one. */
static unsigned fs_uring_ncpu(void)
{
	char buf[256], *p;
	unsigned long hi = 0, v;
	ssize_t n;
	int fd;

	fd = open("/sys/devices/system/cpu/possible", O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		goto fallback;
	n = read(fd, buf, sizeof(buf) - 1);
	close(fd);
	if (n <= 0)
		goto fallback;
	buf[n] = '\0';
	for (p = buf; *p;) {
		char *end;

		v = strtoul(p, &end, 10);
		if (end == p)
			break;
		if (v > hi)
			hi = v;
		p = end;
		while (*p == '-' || *p == ',' || *p == '\n')
			p++;
	}
	if (hi < 4096)
		return (unsigned)hi + 1;
fallback:
	n = sysconf(_SC_NPROCESSORS_CONF);
	return n > 0 ? (unsigned)n : 1;
}

unsigned fs_uring_fds_max(void)
{
	return fs_uring_ncpu() * FS_URING_DEPTH;
}

int fs_uring_new(struct fs *fs, int fd, struct fs_uring **out)
{
	struct fs_uring *u;
	unsigned i;

	u = calloc(1, sizeof(*u));
	if (!u)
		return -ENOMEM;
	u->fs = fs;
	u->fd = fd;
	u->nq = fs_uring_ncpu();
	u->n = u->nq * FS_URING_DEPTH;
	u->ents = calloc(u->n, sizeof(*u->ents));
	if (!u->ents) {
		free(u);
		return -ENOMEM;
	}
	for (i = 0; i < u->n; i++) {
		u->ents[i].u = u;
		u->ents[i].qid = i % u->nq;
	}
	pthread_mutex_init(&u->mu, NULL);
	pthread_cond_init(&u->cv, NULL);
	*out = u;
	return 0;
}

/* Queue a command for the entry (submitted by fs_uring_wait).  The ring
 * has room for it: each entry has at most one command in flight. */
static int fs_uring_prep(struct fs_uring_ent *e, uint32_t cmd_op,
			 uint64_t commit_id)
{
	struct io_uring_sqe *sqe = io_uring_get_sqe(&e->ring);
	/* A 128-byte SQE: the command area runs past struct io_uring_sqe. */
	uint8_t *raw = (uint8_t *)(void *)sqe;
	struct fs_uring_cmd c = { .commit_id = commit_id,
				  .qid = (uint16_t)e->qid };

	if (!sqe)
		return -EBUSY;
	memset(raw, 0, 2 * sizeof(*sqe));
	memcpy(raw + offsetof(struct io_uring_sqe, cmd), &c, sizeof(c));
	sqe->opcode = IORING_OP_URING_CMD;
	sqe->fd = e->u->fd;
	sqe->cmd_op = cmd_op;
	sqe->addr = (uint64_t)(uintptr_t)e->iov;
	sqe->len = 2;
	return 0;
}

/* Make the entry's io_uring and buffers. */
static int fs_uring_ent_setup(struct fs_uring_ent *e, size_t payload_len)
{
	struct io_uring_params p = { 0 };
	long pg = sysconf(_SC_PAGESIZE);
	int rc;

	p.flags = IORING_SETUP_SQE128 | IORING_SETUP_COOP_TASKRUN;
	rc = io_uring_queue_init_params(4, &e->ring, &p);
	if (rc)
		return rc;
	e->payload_len = payload_len;
	e->map_len = (size_t)pg + FS_URING_GAP + payload_len;
	e->map = mmap(NULL, e->map_len, PROT_READ | PROT_WRITE,
		      MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (e->map == MAP_FAILED) {
		rc = -errno;
		e->map = NULL;
		io_uring_queue_exit(&e->ring);
		return rc;
	}
	e->hdr = e->map;
	e->payload = (uint8_t *)e->map + pg + FS_URING_GAP;
	e->iov[0] = (struct iovec){ e->hdr, sizeof(*e->hdr) };
	e->iov[1] = (struct iovec){ e->payload, payload_len };
	return 0;
}

static void fs_uring_ent_release(struct fs_uring_ent *e)
{
	if (!e->map)
		return;
	io_uring_queue_exit(&e->ring);
	munmap(e->map, e->map_len);
	e->map = NULL;
}

/* Turn the request in the entry's buffers into one message and let
 * libfuse serve it; leaves the reply in the buffers (UR-2). */
static void fs_uring_serve(struct fs_uring_ent *e)
{
	struct fs *fs = e->u->fs;
	struct fuse_in_header in;
	struct fuse_out_header oh;
	uint32_t psz = e->hdr->ent.payload_sz;
	size_t oplen = 0;
	uint8_t *msg;

	memcpy(&in, e->hdr->in_out, sizeof(in));
	e->commit_id = e->hdr->ent.commit_id;
	e->unique = in.unique;
	e->replied = false;
	if (in.len < sizeof(in) + (size_t)psz || psz > e->payload_len ||
	    (oplen = in.len - sizeof(in) - psz) > sizeof(e->hdr->op_in)) {
		FS_ERR(fs,
		       "io_uring: malformed request (opcode %u, length %u, "
		       "payload %u)",
		       in.opcode, in.len, psz);
		goto out_noreply;
	}
	msg = e->payload - sizeof(in) - oplen;
	memcpy(msg, &in, sizeof(in));
	memcpy(msg + sizeof(in), e->hdr->op_in, oplen);
	fs_uring_cur = e;
	fuse_session_process_buf(fs->se, &(struct fuse_buf){
						 .size = in.len,
						 .mem = msg,
					 });
	fs_uring_cur = NULL;
	if (e->replied)
		return;
	/* A forget has no reply by design (the kernel sends the ones it
	 * forces, after a failed readdirplus entry, through the ring). */
	if (in.opcode != FUSE_FORGET && in.opcode != FUSE_BATCH_FORGET)
		FS_ERR(fs, "io_uring: no reply to request %llu (opcode %u)",
		       (unsigned long long)in.unique, in.opcode);
out_noreply:
	oh = (struct fuse_out_header){ .len = sizeof(oh),
				       .error = -EIO,
				       .unique = e->unique };
	memcpy(e->hdr->in_out, &oh, sizeof(oh));
	e->hdr->ent.payload_sz = 0;
	e->replied = true;
}

static bool fs_uring_stopping(struct fs_uring *u)
{
	bool stop;

	pthread_mutex_lock(&u->mu);
	stop = u->state == FS_URING_STOP;
	pthread_mutex_unlock(&u->mu);
	return stop;
}

/* Submit what is queued and wait for the entry's completion.  Returns
 * its result (>= 0: a request is in the buffers), or -ESHUTDOWN when
 * asked to stop. */
static int fs_uring_wait(struct fs_uring_ent *e)
{
	struct __kernel_timespec ts = { .tv_sec = FS_URING_WAIT_S };
	struct io_uring_cqe *cqe;
	int rc;

	for (;;) {
		cqe = NULL;
		rc = io_uring_submit_and_wait_timeout(&e->ring, &cqe, 1, &ts,
						      NULL);
		if (rc >= 0 && cqe)
			break;
		if (rc < 0 && rc != -ETIME && rc != -EINTR)
			return rc;
		if (fs_uring_stopping(e->u))
			return -ESHUTDOWN;
	}
	rc = cqe->res;
	io_uring_cqe_seen(&e->ring, cqe);
	return rc;
}

static void *fs_uring_main(void *arg)
{
	struct fs_uring_ent *e = arg;
	struct fs_uring *u = e->u;
	struct fs *fs = u->fs;
	bool go;
	int rc;

	rc = fs_uring_ent_setup(e, e->payload_len);
	pthread_mutex_lock(&u->mu);
	if (rc)
		u->n_failed++;
	else
		u->n_ok++;
	pthread_cond_broadcast(&u->cv);
	while (u->state == FS_URING_SETUP)
		pthread_cond_wait(&u->cv, &u->mu);
	go = u->state == FS_URING_GO && rc == 0;
	pthread_mutex_unlock(&u->mu);
	if (rc) {
		FS_WARN(fs, "io_uring: cannot set up entry of queue %u: %s",
			e->qid, strerror(-rc));
		return NULL;
	}
	if (!go)
		goto out;

	rc = fs_uring_prep(e, FS_URING_CMD_REGISTER, 0);
	if (!rc)
		rc = fs_uring_wait(e);
	if (rc < 0)
		goto out_rc;
	for (;;) {
		e->served++;
		fs_uring_serve(e);
		rc = fs_uring_prep(e, FS_URING_CMD_COMMIT_AND_FETCH,
				   e->commit_id);
		if (!rc)
			rc = fs_uring_wait(e);
		if (rc < 0)
			break;
	}
out_rc:
	/* The connection's end completes every entry with ENOTCONN (or
	 * ECANCELED); anything else is worth a line. */
	if (rc != -ENOTCONN && rc != -ECANCELED && rc != -ESHUTDOWN &&
	    rc != -ENODEV)
		FS_WARN(fs, "io_uring: entry of queue %u stops: %s", e->qid,
			strerror(-rc));
out:
	fs_uring_ent_release(e);
	return NULL;
}

/* Start every entry's thread and wait until each has its ring and
 * buffers.  true if all have them. */
static bool fs_uring_setup(struct fs_uring *u, size_t payload_len)
{
	unsigned i;
	bool ok;

	pthread_mutex_lock(&u->mu);
	u->state = FS_URING_SETUP;
	pthread_mutex_unlock(&u->mu);
	for (i = 0; i < u->n; i++) {
		u->ents[i].payload_len = payload_len;
		if (pthread_create(&u->ents[i].thread, NULL, fs_uring_main,
				   &u->ents[i]) != 0)
			break;
		u->ents[i].started = true;
	}
	pthread_mutex_lock(&u->mu);
	u->n_failed += u->n - i;
	while (u->n_ok + u->n_failed < u->n)
		pthread_cond_wait(&u->cv, &u->mu);
	ok = u->n_failed == 0;
	if (!ok) {
		u->state = FS_URING_STOP;
		pthread_cond_broadcast(&u->cv);
	}
	pthread_mutex_unlock(&u->mu);
	return ok;
}

static void fs_uring_set_state(struct fs_uring *u, enum fs_uring_state s)
{
	pthread_mutex_lock(&u->mu);
	if (u->state != FS_URING_STOP)
		u->state = s;
	pthread_cond_broadcast(&u->cv);
	pthread_mutex_unlock(&u->mu);
}

void fs_uring_stop(struct fs_uring *u)
{
	uint64_t served = 0;
	bool any = false;
	unsigned i;

	if (!u)
		return;
	fs_uring_set_state(u, FS_URING_STOP);
	for (i = 0; i < u->n; i++) {
		if (!u->ents[i].started)
			continue;
		pthread_join(u->ents[i].thread, NULL);
		u->ents[i].started = false;
		served += u->ents[i].served;
		any = true;
	}
	if (any)
		FS_INFO(u->fs,
			"io_uring: %llu requests served through the ring",
			(unsigned long long)served);
}

void fs_uring_free(struct fs_uring *u)
{
	if (!u)
		return;
	fs_uring_stop(u);
	pthread_cond_destroy(&u->cv);
	pthread_mutex_destroy(&u->mu);
	free(u->ents);
	free(u);
}

/* ---- libfuse's custom I/O hooks ---- */

static ssize_t fs_uring_io_read(int fd, void *buf, size_t len, void *userdata)
{
	struct fs *fs = userdata;
	struct fs_uring *u = fs->uring;
	const struct fuse_in_header *in = buf;
	const struct fuse_init_in *ii;
	ssize_t n;
	bool offered;

	n = read(fd, buf, len);
	if (n < (ssize_t)sizeof(*in) || in->opcode != FUSE_INIT)
		return n;
	ii = (const void *)(in + 1);
	offered = (size_t)n >= sizeof(*in) + sizeof(*ii) &&
		  (ii->flags & FS_URING_INIT_EXT) &&
		  (((uint64_t)ii->flags2 << 32) & FS_URING_OVER_IO_URING);
	atomic_store(&u->offered, offered);
	atomic_store(&u->init_unique, in->unique);
	if (!offered)
		FS_INFO(fs,
			"the kernel does not offer FUSE over io_uring (Linux "
			"6.14 or later, with "
			"/sys/module/fuse/parameters/enable_uring set to Y): "
			"requests go through /dev/fuse");
	return n;
}

/* Copy libfuse's reply into the entry's buffers (UR-2). */
static ssize_t fs_uring_reply(struct fs_uring_ent *e, const struct iovec *iov,
			      int count)
{
	uint8_t *hdr = e->hdr->in_out;
	size_t hlen = 0, plen = 0, total = 0;
	int i;

	for (i = 0; i < count; i++) {
		const uint8_t *p = iov[i].iov_base;
		size_t len = iov[i].iov_len, take;

		total += len;
		take = sizeof(struct fuse_out_header) - hlen;
		if (take > len)
			take = len;
		memcpy(hdr + hlen, p, take);
		hlen += take;
		p += take;
		len -= take;
		if (len > e->payload_len - plen) {
			FS_ERR(e->u->fs,
			       "io_uring: reply of %zu bytes is larger than "
			       "the payload buffer",
			       total);
			return -EINVAL;
		}
		memmove(e->payload + plen, p, len);
		plen += len;
	}
	if (hlen < sizeof(struct fuse_out_header))
		return -EINVAL;
	e->hdr->ent.payload_sz = (uint32_t)plen;
	e->replied = true;
	return (ssize_t)total;
}

/* The reply to INIT, with FUSE_OVER_IO_URING added when the ring is set
 * up; once the kernel has taken it, the entries register. */
static ssize_t fs_uring_init_reply(struct fs_uring *u, int fd,
				   struct iovec *iov, int count)
{
	struct fuse_init_out io;
	struct iovec v[2];
	size_t payload;
	long pg = sysconf(_SC_PAGESIZE);
	ssize_t n;

	if (count != 2 ||
	    iov[1].iov_len < offsetof(struct fuse_init_out, flags2) +
				     sizeof(io.flags2) ||
	    iov[1].iov_len > sizeof(io)) {
		FS_WARN(u->fs, "io_uring: unexpected INIT reply layout: "
			       "requests go through /dev/fuse");
		return writev(fd, iov, count);
	}
	memset(&io, 0, sizeof(io));
	memcpy(&io, iov[1].iov_base, iov[1].iov_len);
	payload = io.max_write;
	if ((size_t)io.max_pages * (size_t)pg > payload)
		payload = (size_t)io.max_pages * (size_t)pg;
	if (payload < 8192)
		payload = 8192;
	if (!fs_uring_setup(u, payload)) {
		FS_WARN(u->fs, "io_uring: setup failed: requests go through "
			       "/dev/fuse");
		return writev(fd, iov, count);
	}
	io.flags |= FS_URING_INIT_EXT;
	io.flags2 |= (uint32_t)(FS_URING_OVER_IO_URING >> 32);
	v[0] = iov[0];
	v[1] = (struct iovec){ &io, iov[1].iov_len };
	n = writev(fd, v, 2);
	fs_uring_set_state(u, n < 0 ? FS_URING_STOP : FS_URING_GO);
	if (n >= 0)
		FS_INFO(u->fs,
			"FUSE over io_uring: %u queues of %u entries, "
			"%zu-byte payloads",
			u->nq, FS_URING_DEPTH, payload);
	return n;
}

static ssize_t fs_uring_io_writev(int fd, struct iovec *iov, int count,
				  void *userdata)
{
	struct fs *fs = userdata;
	struct fs_uring *u = fs->uring;
	struct fs_uring_ent *e = fs_uring_cur;
	const struct fuse_out_header *oh = iov[0].iov_base;
	uint64_t init;

	if (iov[0].iov_len < sizeof(*oh))
		return writev(fd, iov, count);
	if (e && !e->replied && oh->unique == e->unique) {
		/* libfuse takes -1 and errno as a failed send, as writev
		 * reports one; any other value counts as sent. */
		ssize_t n = fs_uring_reply(e, iov, count);

		if (n < 0) {
			errno = (int)-n;
			return -1;
		}
		return n;
	}
	init = atomic_load(&u->init_unique);
	if (init && oh->unique == init &&
	    atomic_compare_exchange_strong(&u->init_unique, &init, 0) &&
	    oh->error == 0 && atomic_load(&u->offered))
		return fs_uring_init_reply(u, fd, iov, count);
	return writev(fd, iov, count);
}

const struct fuse_custom_io fs_uring_io = {
	.read = fs_uring_io_read,
	.writev = fs_uring_io_writev,
};
