/* SPDX-License-Identifier: MIT */
/*
 * journal.c - the fsync journal: a preallocated ring of write batches.
 * See journal.h for why it exists and how kv.c uses it.
 */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "journal.h"

#define JOURNAL_HDR_AREA 4096u
#define JOURNAL_SLOT 512u
#define JOURNAL_SLOT_LEN 56u /* bytes of a slot that are used */
#define JOURNAL_REC_HDR 40u
#define JOURNAL_REC_DURABLE 28u /* offset of the durable mark (journal.h) */
#define JOURNAL_REC_HCRC 36u	/* offset of the header CRC covering it */
#define JOURNAL_OP_HDR 12u
#define JOURNAL_REC_MAGIC 0x4a524642u /* "BFRJ" little-endian */
#define JOURNAL_PENDING_MAX (1u << 20)
#define JOURNAL_VERSION 1u
#define JOURNAL_SCAN_WIN (1u << 20) /* bytes read at a time by a scan */

static const char journal_magic[8] = "BFSJRNL1";

/* Header slot flags, in bytes 44-47 with a CRC-32C of bytes 0-47 at 48
 * (older builds wrote zeros there, read as no flags; they ignore both). */
enum journal_slot_flags {
	/* Written by journal_seal() (and for a new file): no record was
	 * appended at or after the slot's start. */
	JOURNAL_SLOT_SEALED = 1u << 0,
};

struct journal {
	int fd;
	char *path; /* for messages */
	struct store_log log;
	uint64_t ring;	    /* bytes of the ring, after the header area */
	pthread_mutex_t mu; /* guards everything below but synced */
	uint64_t start;	    /* durable checkpoint: oldest lsn still needed */
	uint64_t lsn;	    /* end of the last appended record */
	uint64_t written;   /* end of what reached the file */
	uint64_t ckpt_no;
	uint32_t epoch;
	bool sealed; /* the header read at open was sealed; set at open */
	unsigned char *pend; /* records [written, lsn) not in the file yet */
	size_t plen;
	size_t pcap;
	pthread_mutex_t sync_mu; /* serialises fdatasync and header writes */
	uint64_t synced;	 /* under sync_mu */
	/* synced, for appends to read without sync_mu: every record ending
	 * at or before it is durable.  Stored after the fdatasync. */
	_Atomic uint64_t durable;
	atomic_bool broken;
	uint64_t held_damage; /* set by journal_replay (journal.h) */
};

/* The header fields of a record that passed every check. */
struct journal_rec {
	uint64_t lsn;
	uint64_t durable; /* its durable mark; 0 if it has none */
	uint32_t len;	  /* payload bytes */
	uint32_t epoch;
	uint32_t nops;
};

#define journal_log(j, level, ...) kv_log_to(&(j)->log, level, __VA_ARGS__)

static void journal_put32(unsigned char *p, uint32_t v)
{
	for (int i = 0; i < 4; i++)
		p[i] = (unsigned char)(v >> (8 * i));
}

static void journal_put64(unsigned char *p, uint64_t v)
{
	for (int i = 0; i < 8; i++)
		p[i] = (unsigned char)(v >> (8 * i));
}

static uint32_t journal_get32(const unsigned char *p)
{
	uint32_t v = 0;

	for (int i = 3; i >= 0; i--)
		v = v << 8 | p[i];
	return v;
}

static uint64_t journal_get64(const unsigned char *p)
{
	uint64_t v = 0;

	for (int i = 7; i >= 0; i--)
		v = v << 8 | p[i];
	return v;
}

/* CRC-32C (Castagnoli), as RocksDB's WAL uses: enough to tell a torn or
 * stale record, and nearly free on CPUs with SSE4.2 (SHA-256 here doubled
 * the CPU cost of a block write, which is already hashed once). */
static uint32_t journal_crc_table[256];
static pthread_once_t journal_crc_once = PTHREAD_ONCE_INIT;
static bool journal_crc_hw;

static void journal_crc_init(void)
{
	for (uint32_t i = 0; i < 256; i++) {
		uint32_t c = i;

		for (int k = 0; k < 8; k++)
			c = c & 1 ? (c >> 1) ^ 0x82f63b78u : c >> 1;
		journal_crc_table[i] = c;
	}
#if defined(__x86_64__)
	journal_crc_hw = __builtin_cpu_supports("sse4.2");
#endif
}

#if defined(__x86_64__)
__attribute__((target("sse4.2"))) static uint32_t
journal_crc_sse42(uint32_t c, const unsigned char *p, size_t n)
{
	uint64_t c64 = c;

	for (; n >= 8; n -= 8, p += 8) {
		uint64_t w;

		memcpy(&w, p, 8);
		c64 = __builtin_ia32_crc32di(c64, w);
	}
	c = (uint32_t)c64;
	for (; n; n--, p++)
		c = __builtin_ia32_crc32qi(c, *p);
	return c;
}
#endif

uint32_t journal_crc32c(uint32_t crc, const void *buf, size_t n)
{
	const unsigned char *p = buf;
	uint32_t c = ~crc;

	pthread_once(&journal_crc_once, journal_crc_init);
#if defined(__x86_64__)
	if (journal_crc_hw)
		return ~journal_crc_sse42(c, p, n);
#endif
	for (; n; n--, p++)
		c = journal_crc_table[(c ^ *p) & 0xff] ^ (c >> 8);
	return ~c;
}

/* Full pwrite (write) or pread at a file offset. */
static int journal_io_all(int fd, bool write, void *buf, size_t len, off_t off)
{
	unsigned char *p = buf;

	while (len) {
		ssize_t n = write ? pwrite(fd, p, len, off) :
				    pread(fd, p, len, off);

		if (n < 0) {
			if (errno == EINTR)
				continue;
			return -errno;
		}
		if (n == 0)
			return -EIO; /* file shorter than its ring */
		p += n;
		len -= (size_t)n;
		off += n;
	}
	return 0;
}

/* Bytes [lsn, lsn + len) of the ring, wrapping at its end. */
static int journal_ring_io(struct journal *j, bool write, void *buf, size_t len,
			   uint64_t lsn)
{
	unsigned char *p = buf;

	while (len) {
		uint64_t pos = lsn % j->ring;
		size_t n = len;
		int rc;

		if (n > j->ring - pos)
			n = (size_t)(j->ring - pos);
		rc = journal_io_all(j->fd, write, p, n,
				    (off_t)(JOURNAL_HDR_AREA + pos));
		if (rc)
			return rc;
		p += n;
		len -= n;
		lsn += n;
	}
	return 0;
}

/* ------------------------------------------------------------ headers */

static void journal_slot_encode(unsigned char s[JOURNAL_SLOT_LEN],
				uint64_t ckpt_no, uint64_t start, uint64_t ring,
				uint32_t epoch, uint32_t flags)
{
	memset(s, 0, JOURNAL_SLOT_LEN);
	memcpy(s, journal_magic, 8);
	journal_put64(s + 8, ckpt_no);
	journal_put64(s + 16, start);
	journal_put64(s + 24, ring);
	journal_put32(s + 32, epoch);
	journal_put32(s + 36, JOURNAL_VERSION);
	journal_put32(s + 40, journal_crc32c(0, s, 40));
	journal_put32(s + 44, flags);
	journal_put32(s + 48, journal_crc32c(0, s, 48));
}

static bool journal_slot_decode(const unsigned char *s, uint64_t *ckpt_no,
				uint64_t *start, uint64_t *ring,
				uint32_t *epoch, uint32_t *flags)
{
	if (memcmp(s, journal_magic, 8) != 0 ||
	    journal_get32(s + 36) != JOURNAL_VERSION ||
	    journal_get32(s + 40) != journal_crc32c(0, s, 40))
		return false;
	*ckpt_no = journal_get64(s + 8);
	*start = journal_get64(s + 16);
	*ring = journal_get64(s + 24);
	*epoch = journal_get32(s + 32);
	*flags = journal_get32(s + 48) == journal_crc32c(0, s, 48) ?
			 journal_get32(s + 44) :
			 0;
	return true;
}

/* Write the next header slot (under mu: values consistent) and sync it.
 * Called with sync_mu held. */
static int journal_write_header(struct journal *j, uint64_t start,
				uint32_t epoch, uint32_t flags)
{
	unsigned char s[JOURNAL_SLOT_LEN];
	uint64_t no;
	int rc;

	pthread_mutex_lock(&j->mu);
	no = ++j->ckpt_no;
	pthread_mutex_unlock(&j->mu);
	journal_slot_encode(s, no, start, j->ring, epoch, flags);
	rc = journal_io_all(j->fd, true, s, sizeof(s),
			    (off_t)((no % 2) * JOURNAL_SLOT));
	if (rc == 0 && fdatasync(j->fd) != 0)
		rc = -errno;
	if (rc) {
		atomic_store(&j->broken, true);
		journal_log(j, STORE_LOG_ERR, "journal: header write: %s",
			    strerror(-rc));
	}
	return rc;
}

/* ------------------------------------------------------------ records */

static size_t journal_rec_size(const struct kv_batch *b)
{
	size_t n = JOURNAL_REC_HDR, i;

	for (i = 0; i < b->nops; i++)
		n += JOURNAL_OP_HDR + b->ops[i].klen + b->ops[i].vlen;
	return n;
}

/* Serialise b as a record at lsn into out (journal_rec_size(b) bytes),
 * with durable as its durable mark. */
static void journal_rec_encode(struct journal *j, unsigned char *out,
			       const struct kv_batch *b, uint64_t lsn,
			       uint64_t durable, size_t size)
{
	unsigned char *p = out + JOURNAL_REC_HDR;
	size_t i;

	for (i = 0; i < b->nops; i++) {
		const struct kv_op *op = &b->ops[i];

		p[0] = (unsigned char)op->type;
		p[1] = (unsigned char)op->cf;
		p[2] = p[3] = 0;
		journal_put32(p + 4, (uint32_t)op->klen);
		journal_put32(p + 8, (uint32_t)op->vlen);
		memcpy(p + JOURNAL_OP_HDR, kv_batch_key(b, op),
		       op->klen + op->vlen);
		p += JOURNAL_OP_HDR + op->klen + op->vlen;
	}
	journal_put32(out, JOURNAL_REC_MAGIC);
	journal_put32(out + 4, (uint32_t)(size - JOURNAL_REC_HDR));
	journal_put64(out + 8, lsn);
	journal_put32(out + 16, j->epoch);
	journal_put32(out + 20, (uint32_t)b->nops);
	journal_put32(out + 24, journal_crc32c(journal_crc32c(0, out, 24),
					       out + JOURNAL_REC_HDR,
					       size - JOURNAL_REC_HDR));
	/* The mark has its own CRC, outside the record's: a build that
	 * does not know it still reads the record. */
	journal_put64(out + JOURNAL_REC_DURABLE, durable);
	journal_put32(out + JOURNAL_REC_HCRC,
		      journal_crc32c(0, out, JOURNAL_REC_HCRC));
}

/* Rebuild the batch of a verified payload; false if it is malformed. */
static bool journal_rec_decode(const unsigned char *p, size_t len,
			       uint32_t nops, struct kv_batch *b)
{
	const unsigned char *end = p + len;
	uint32_t i;

	for (i = 0; i < nops; i++) {
		uint32_t klen, vlen;

		if ((size_t)(end - p) < JOURNAL_OP_HDR)
			return false;
		klen = journal_get32(p + 4);
		vlen = journal_get32(p + 8);
		if (p[1] >= KV_CF_COUNT ||
		    (size_t)(end - p) - JOURNAL_OP_HDR < (size_t)klen + vlen)
			return false;
		switch (p[0]) {
		case KV_OP_PUT:
			kv_batch_put(b, p[1], p + JOURNAL_OP_HDR, klen,
				     p + JOURNAL_OP_HDR + klen, vlen);
			break;
		case KV_OP_DELETE:
			kv_batch_delete(b, p[1], p + JOURNAL_OP_HDR, klen);
			break;
		case KV_OP_SINGLE_DELETE:
			kv_batch_single_delete(b, p[1], p + JOURNAL_OP_HDR,
					       klen);
			break;
		case KV_OP_DELETE_RANGE:
			kv_batch_delete_range(b, p[1], p + JOURNAL_OP_HDR, klen,
					      p + JOURNAL_OP_HDR + klen, vlen);
			break;
		default:
			return false;
		}
		p += JOURNAL_OP_HDR + klen + vlen;
	}
	return p == end && b->err == 0;
}

/* ------------------------------------------------------------ open */

static int journal_create(const char *path, uint64_t ring)
{
	char tmp[4200];
	unsigned char *zero, s[JOURNAL_SLOT_LEN];
	uint64_t off, total = JOURNAL_HDR_AREA + ring;
	int fd, rc = 0;

	snprintf(tmp, sizeof(tmp), "%s.new", path);
	unlink(tmp);
	fd = open(tmp, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
	if (fd < 0)
		return -errno;
	zero = calloc(1, 1u << 20);
	if (!zero) {
		rc = -ENOMEM;
		goto out;
	}
	/* Zeros written, not fallocated: unwritten extents would turn every
	 * first overwrite into a metadata change again. */
	for (off = 0; off < total && rc == 0; off += 1u << 20) {
		size_t n = total - off < (1u << 20) ? total - off : 1u << 20;

		rc = journal_io_all(fd, true, zero, n, (off_t)off);
	}
	free(zero);
	if (rc)
		goto out;
	journal_slot_encode(s, 1, 0, ring, 0, JOURNAL_SLOT_SEALED);
	rc = journal_io_all(fd, true, s, sizeof(s), JOURNAL_SLOT);
	if (rc == 0 && fsync(fd) != 0)
		rc = -errno;
	if (rc == 0 && rename(tmp, path) != 0)
		rc = -errno;
	if (rc == 0) {
		/* The rename itself must survive a crash. */
		char dir[4200], *slash;
		int dfd;

		snprintf(dir, sizeof(dir), "%s", path);
		slash = strrchr(dir, '/');
		if (slash)
			*slash = 0;
		dfd = open(slash ? dir : ".",
			   O_RDONLY | O_DIRECTORY | O_CLOEXEC);
		if (dfd >= 0) {
			if (fsync(dfd) != 0)
				rc = -errno;
			close(dfd);
		}
	}
out:
	close(fd);
	if (rc)
		unlink(tmp);
	return rc;
}

/* ring_bytes 0: read only (journal_open_read). */
static int journal_do_open(const char *path, uint64_t ring_bytes,
			   const struct store_log *log, struct journal **out)
{
	unsigned char slots[2 * JOURNAL_SLOT];
	struct journal *j;
	struct stat st;
	uint64_t best = 0;
	int rc, i;

	j = calloc(1, sizeof(*j));
	if (!j)
		return -ENOMEM;
	if (log)
		j->log = *log;
	pthread_mutex_init(&j->mu, NULL);
	pthread_mutex_init(&j->sync_mu, NULL);
	j->path = strdup(path);
	if (!j->path) {
		rc = -ENOMEM;
		j->fd = -1;
		goto err;
	}
	j->fd = open(path, (ring_bytes ? O_RDWR : O_RDONLY) | O_CLOEXEC);
	if (j->fd < 0 && errno == ENOENT && ring_bytes) {
		rc = journal_create(path, ring_bytes);
		if (rc)
			goto err;
		j->fd = open(path, O_RDWR | O_CLOEXEC);
	}
	if (j->fd < 0) {
		rc = -errno;
		goto err;
	}
	rc = journal_io_all(j->fd, false, slots, sizeof(slots), 0);
	if (rc)
		goto err_corrupt;
	for (i = 0; i < 2; i++) {
		uint64_t no, start, ring;
		uint32_t epoch, flags;

		if (!journal_slot_decode(slots + i * JOURNAL_SLOT, &no, &start,
					 &ring, &epoch, &flags) ||
		    no < best)
			continue;
		best = no;
		j->ckpt_no = no;
		j->start = start;
		j->ring = ring;
		j->epoch = epoch;
		j->sealed = flags & JOURNAL_SLOT_SEALED;
	}
	if (best == 0 || j->ring < (64u << 10) || fstat(j->fd, &st) != 0 ||
	    (uint64_t)st.st_size < JOURNAL_HDR_AREA + j->ring)
		goto err_corrupt;
	j->lsn = j->written = j->synced = j->start;
	atomic_store(&j->durable, j->start);
	*out = j;
	return 0;
err_corrupt:
	journal_log(
		j, STORE_LOG_ERR,
		"the store's fsync journal '%s' is damaged (no valid header, or shorter than its ring): not opened, since it may hold synced writes the database lacks; move the file aside to open the store without them",
		path);
	rc = -EUCLEAN;
err:
	if (j->fd >= 0)
		close(j->fd);
	pthread_mutex_destroy(&j->mu);
	pthread_mutex_destroy(&j->sync_mu);
	free(j->path);
	free(j);
	return rc;
}

int journal_open(const char *path, uint64_t ring_bytes,
		 const struct store_log *log, struct journal **out)
{
	ring_bytes = (ring_bytes + 4095) & ~(uint64_t)4095;
	if (ring_bytes < (64u << 10))
		ring_bytes = 64u << 10;
	return journal_do_open(path, ring_bytes, log, out);
}

int journal_open_read(const char *path, const struct store_log *log,
		      struct journal **out)
{
	return journal_do_open(path, 0, log, out);
}

bool journal_sealed(const struct journal *j)
{
	return j->sealed;
}

/* ------------------------------------------------------------ replay */

/* Read and check the record at lsn: magic, lsn, the header's epoch,
 * length, end at most limit, CRC.  Its payload goes to *buf
 * (grown as needed, *cap bytes; freed by the caller).  0 valid, -EBADMSG
 * not a valid record there (a read error included: a bad sector is
 * damage like any other), -ENOMEM. */
static int journal_rec_check(struct journal *j, uint64_t lsn, uint64_t limit,
			     unsigned char **buf, size_t *cap,
			     struct journal_rec *rec)
{
	unsigned char hdr[JOURNAL_REC_HDR];

	if (lsn + JOURNAL_REC_HDR > limit ||
	    journal_ring_io(j, false, hdr, sizeof(hdr), lsn) != 0)
		return -EBADMSG;
	rec->lsn = lsn;
	rec->len = journal_get32(hdr + 4);
	rec->epoch = journal_get32(hdr + 16);
	rec->nops = journal_get32(hdr + 20);
	if (journal_get32(hdr) != JOURNAL_REC_MAGIC ||
	    journal_get64(hdr + 8) != lsn || rec->epoch != j->epoch ||
	    (uint64_t)rec->len + JOURNAL_REC_HDR > j->ring / 2 ||
	    lsn + JOURNAL_REC_HDR + rec->len > limit)
		return -EBADMSG;
	if (rec->len > *cap || !*buf) {
		unsigned char *np = realloc(*buf, rec->len ? rec->len : 1);

		if (!np)
			return -ENOMEM;
		*buf = np;
		*cap = rec->len ? rec->len : 1;
	}
	if (journal_ring_io(j, false, *buf, rec->len, lsn + JOURNAL_REC_HDR) !=
		    0 ||
	    journal_get32(hdr + 24) !=
		    journal_crc32c(journal_crc32c(0, hdr, 24), *buf, rec->len))
		return -EBADMSG;
	/* A mark is believed only with its CRC (an older build wrote zeros
	 * there) and only if it is no later than the record itself. */
	rec->durable = 0;
	if (journal_get32(hdr + JOURNAL_REC_HCRC) ==
		    journal_crc32c(0, hdr, JOURNAL_REC_HCRC) &&
	    journal_get64(hdr + JOURNAL_REC_DURABLE) <= lsn)
		rec->durable = journal_get64(hdr + JOURNAL_REC_DURABLE);
	return 0;
}

/* Ring bytes [lsn, lsn + n) into buf; what cannot be read (a bad
 * sector) reads as zeros, which hold no record magic. */
static void journal_read_window(struct journal *j, unsigned char *buf, size_t n,
				uint64_t lsn)
{
	size_t done = 0;

	if (journal_ring_io(j, false, buf, n, lsn) == 0)
		return;
	while (done < n) {
		size_t k = 4096 - (size_t)((lsn + done) % 4096);

		if (k > n - done)
			k = n - done;
		if (journal_ring_io(j, false, buf + done, k, lsn + done) != 0)
			memset(buf + done, 0, k);
		done += k;
	}
}

/* The first valid record of the journal's current epoch that starts in
 * [from, limit): records locate themselves (magic, lsn == position, CRC),
 * so one can be found after damage whose length is unknown.  The record
 * at from itself is tried first, so that following an intact chain costs
 * no scan.  0 found (*rec, payload in *buf), -ENOENT none, -ENOMEM. */
static int journal_find(struct journal *j, uint64_t from, uint64_t limit,
			unsigned char **buf, size_t *cap,
			struct journal_rec *rec)
{
	unsigned char magic[4], *win, *p;
	uint64_t base;
	int rc;

	rc = journal_rec_check(j, from, limit, buf, cap, rec);
	if (rc != -EBADMSG)
		return rc;
	win = malloc(JOURNAL_SCAN_WIN + JOURNAL_REC_HDR);
	if (!win)
		return -ENOMEM;
	journal_put32(magic, JOURNAL_REC_MAGIC);
	rc = -ENOENT;
	for (base = from + 1; base + JOURNAL_REC_HDR <= limit && rc == -ENOENT;
	     base += JOURNAL_SCAN_WIN) {
		/* A window overlaps the next by a header, so that a header
		 * across the seam is seen whole. */
		size_t n = limit - base < JOURNAL_SCAN_WIN + JOURNAL_REC_HDR ?
				   (size_t)(limit - base) :
				   JOURNAL_SCAN_WIN + JOURNAL_REC_HDR;

		journal_read_window(j, win, n, base);
		for (p = win; rc == -ENOENT &&
			      (p = memmem(p, n - (size_t)(p - win), magic, 4));
		     p++) {
			size_t off = (size_t)(p - win);

			if (off >= JOURNAL_SCAN_WIN ||
			    off + JOURNAL_REC_HDR > n)
				break;
			if (journal_get64(p + 8) != base + off ||
			    journal_get32(p + 16) != j->epoch)
				continue;
			rc = journal_rec_check(j, base + off, limit, buf, cap,
					       rec);
			if (rc == -EBADMSG)
				rc = -ENOENT;
		}
	}
	free(win);
	return rc;
}

/* Rebuild the batch of a checked record (payload in buf) into b, which
 * the caller released or initialised.  -EBADMSG if it is malformed. */
static int journal_rec_batch(const unsigned char *buf,
			     const struct journal_rec *rec, struct kv_batch *b)
{
	kv_batch_init(b);
	if (journal_rec_decode(buf, rec->len, rec->nops, b))
		return 0;
	kv_batch_release(b);
	return -EBADMSG;
}

/*
 * Replay runs in two passes, so that a journal that must be refused is
 * refused before anything is applied.  The first walks the chain from
 * start and decides where it ends:
 *  - At a record that fails a check (pos), the next valid record (R, found
 *    by journal_find) is looked for.  If R starts at or before applied_end,
 *    the database holds everything before R: the damage is stepped over
 *    and the walk goes on at R (a damaged record the database already
 *    holds costs nothing).  If R or a later valid record carries a durable
 *    mark past the first such gap, the records there had been synced: the
 *    disk lost or changed data it had flushed, which is said (a warning)
 *    and counted (journal_damage_held); without such a mark it may be
 *    the torn end of writes never synced, which RocksDB's WAL synced
 *    before a crash (a checkpoint), and is said only at INFO.
 *  - Otherwise the chain ends at pos.  Batches from L = max(pos,
 *    applied_end) on are missing from both; that is a torn tail (never
 *    synced: a crash in a multi-page write may leave later pages and not
 *    earlier ones) unless a valid record after the gap carries a durable
 *    mark past L, which proves the record at L was synced (its fsync
 *    returned 0) before that record was written: then the replay fails
 *    with -EUCLEAN and a message.  Records without a mark (an older
 *    build's) prove nothing: the old behaviour.
 * The second pass applies the records from the first ending past
 * applied_end to the chain's end: all after the last stepped-over damage,
 * hence contiguous.
 */
int journal_replay(struct journal *j, uint64_t applied_end,
		   int (*apply)(void *ctx, const struct kv_batch *b,
				uint64_t end),
		   void *ctx, uint64_t *end)
{
	unsigned char *buf = NULL;
	uint64_t pos = j->start, limit = j->start + j->ring, from = 0;
	uint64_t lost, gap_end;
	struct journal_rec rec;
	struct kv_batch b;
	size_t cap = 0, nrec = 0, napplied = 0;
	bool have_from = false, held = false, held_synced = false;
	uint64_t held_lo = 0, held_hi = 0; /* the first gap stepped over */
	int rc;

	if (applied_end < j->start) {
		journal_log(
			j, STORE_LOG_ERR,
			"journal: the database holds writes up to %llu but the journal was checkpointed at %llu: the database lost synced data",
			(unsigned long long)applied_end,
			(unsigned long long)j->start);
		return -EUCLEAN;
	}
	for (;;) {
		rc = journal_rec_check(j, pos, limit, &buf, &cap, &rec);
		if (rc == 0) {
			rc = journal_rec_batch(buf, &rec, &b);
			if (rc == 0)
				kv_batch_release(&b);
		}
		if (rc == 0) {
			nrec++;
			if (held && rec.durable > held_lo)
				held_synced = true;
			if (!have_from &&
			    pos + JOURNAL_REC_HDR + rec.len > applied_end) {
				from = pos;
				have_from = true;
			}
			pos += JOURNAL_REC_HDR + rec.len;
			continue;
		}
		if (rc != -EBADMSG)
			goto out;
		/* Sealed: nothing was appended after start, no scan. */
		rc = j->sealed ?
			     -ENOENT :
			     journal_find(j, pos + 1, limit, &buf, &cap, &rec);
		if (rc == -ENOMEM)
			goto out;
		if (rc == 0 && rec.lsn <= applied_end) {
			journal_log(
				j, STORE_LOG_INFO,
				"journal '%s': records from lsn %llu to %llu cannot be read; the database holds them, so the replay goes on after them",
				j->path, (unsigned long long)pos,
				(unsigned long long)rec.lsn);
			if (!held) {
				held = true;
				held_lo = pos;
				held_hi = rec.lsn;
			}
			pos = rec.lsn;
			continue;
		}
		break;
	}
	/* rc == 0: rec is the first valid record after the gap at pos. */
	lost = pos > applied_end ? pos : applied_end;
	gap_end = rc == 0 ? rec.lsn : limit;
	while (rc == 0) {
		if (rec.durable > lost) {
			journal_log(
				j, STORE_LOG_ERR,
				"the store's fsync journal '%s' is damaged: records from lsn %llu to %llu cannot be read, but the record at lsn %llu says the journal was synced up to %llu, so fsynced writes are missing from the database (it holds up to lsn %llu): not opened; keep a copy of the file for inspection and move it aside to open the store without the journal's writes",
				j->path, (unsigned long long)lost,
				(unsigned long long)gap_end,
				(unsigned long long)rec.lsn,
				(unsigned long long)rec.durable,
				(unsigned long long)applied_end);
			rc = -EUCLEAN;
			goto out;
		}
		if (held && rec.durable > held_lo)
			held_synced = true;
		rc = journal_find(j, rec.lsn + JOURNAL_REC_HDR + rec.len, limit,
				  &buf, &cap, &rec);
	}
	if (rc == -ENOMEM)
		goto out;
	rc = 0;
	if (held_synced) {
		journal_log(
			j, STORE_LOG_WARN,
			"the store's fsync journal '%s' is damaged: records from lsn %llu to %llu cannot be read though the journal had been synced past them (the disk lost or changed data it had flushed: check it); the database holds them, so no write is lost and the replay went on after them",
			j->path, (unsigned long long)held_lo,
			(unsigned long long)held_hi);
		j->held_damage = held_hi - held_lo;
	}
	for (uint64_t at = from; have_from && at < pos && rc == 0;) {
		rc = journal_rec_check(j, at, limit, &buf, &cap, &rec);
		if (rc == 0)
			rc = journal_rec_batch(buf, &rec, &b);
		if (rc == -EBADMSG) {
			/* The first pass read it whole: an I/O error. */
			journal_log(
				j, STORE_LOG_ERR,
				"journal '%s': record at lsn %llu unreadable on the second pass",
				j->path, (unsigned long long)at);
			rc = -EIO;
		}
		if (rc)
			break;
		at += JOURNAL_REC_HDR + rec.len;
		rc = apply(ctx, &b, at);
		kv_batch_release(&b);
		napplied++;
	}
	if (napplied)
		journal_log(
			j, STORE_LOG_INFO,
			"journal: replayed %zu of %zu records the database had lost",
			napplied, nrec);
	*end = pos;
out:
	free(buf);
	return rc;
}

int journal_restart(struct journal *j, uint64_t lsn)
{
	uint32_t epoch;
	int rc;

	pthread_mutex_lock(&j->sync_mu);
	pthread_mutex_lock(&j->mu);
	epoch = ++j->epoch;
	j->plen = 0;
	pthread_mutex_unlock(&j->mu);
	rc = journal_write_header(j, lsn, epoch, 0);
	if (rc == 0) {
		pthread_mutex_lock(&j->mu);
		j->start = j->lsn = j->written = lsn;
		pthread_mutex_unlock(&j->mu);
		j->synced = lsn;
		atomic_store(&j->durable, lsn);
	}
	pthread_mutex_unlock(&j->sync_mu);
	return rc;
}

uint64_t journal_damage_held(const struct journal *j)
{
	return j->held_damage;
}

/* ------------------------------------------------------------ run time */

uint64_t journal_next_end(struct journal *j, const struct kv_batch *b)
{
	size_t size = journal_rec_size(b);
	uint64_t end;

	if (size > j->ring / 2)
		return 0;
	pthread_mutex_lock(&j->mu);
	end = j->lsn + size;
	pthread_mutex_unlock(&j->mu);
	return end;
}

uint64_t journal_lsn(struct journal *j)
{
	uint64_t lsn;

	pthread_mutex_lock(&j->mu);
	lsn = j->lsn;
	pthread_mutex_unlock(&j->mu);
	return lsn;
}

/* Move pending records into the file (page cache).  Under mu. */
static int journal_do_write_pending(struct journal *j)
{
	int rc;

	if (j->plen == 0)
		return 0;
	rc = journal_ring_io(j, true, j->pend, j->plen, j->written);
	if (rc) {
		atomic_store(&j->broken, true);
		journal_log(j, STORE_LOG_ERR, "journal: write: %s",
			    strerror(-rc));
		return rc;
	}
	j->written = j->lsn;
	j->plen = 0;
	return 0;
}

int journal_append(struct journal *j, const struct kv_batch *b)
{
	size_t size = journal_rec_size(b);
	int rc = 0;

	if (atomic_load(&j->broken))
		return -EIO;
	pthread_mutex_lock(&j->mu);
	if (j->lsn + size - j->start > j->ring) {
		rc = -EAGAIN;
		goto out;
	}
	if (j->plen + size > j->pcap) {
		size_t ncap = j->pcap ? j->pcap : 64u << 10;
		unsigned char *np;

		while (ncap < j->plen + size)
			ncap *= 2;
		np = realloc(j->pend, ncap);
		if (!np) {
			/* The batch is already in the database: without its
			 * record the journal has a hole, so it is retired. */
			atomic_store(&j->broken, true);
			rc = -ENOMEM;
			goto out;
		}
		j->pend = np;
		j->pcap = ncap;
	}
	journal_rec_encode(
		j, j->pend + j->plen, b, j->lsn,
		atomic_load_explicit(&j->durable, memory_order_acquire), size);
	j->plen += size;
	j->lsn += size;
	if (j->plen >= JOURNAL_PENDING_MAX)
		rc = journal_do_write_pending(j);
out:
	pthread_mutex_unlock(&j->mu);
	return rc;
}

int journal_sync(struct journal *j)
{
	uint64_t target, upto;
	int rc = 0;

	if (atomic_load(&j->broken))
		return -EIO;
	target = journal_lsn(j);
	pthread_mutex_lock(&j->sync_mu);
	if (j->synced >= target)
		goto out;
	pthread_mutex_lock(&j->mu);
	rc = journal_do_write_pending(j);
	upto = j->written;
	pthread_mutex_unlock(&j->mu);
	if (rc)
		goto out;
	if (fdatasync(j->fd) != 0) {
		rc = -errno;
		atomic_store(&j->broken, true);
		journal_log(j, STORE_LOG_ERR, "journal: fdatasync: %s",
			    strerror(-rc));
		goto out;
	}
	j->synced = upto;
	atomic_store_explicit(&j->durable, upto, memory_order_release);
out:
	pthread_mutex_unlock(&j->sync_mu);
	return rc;
}

int journal_checkpoint(struct journal *j, uint64_t lsn)
{
	uint32_t epoch;
	int rc = 0;

	if (atomic_load(&j->broken))
		return -EIO;
	pthread_mutex_lock(&j->sync_mu);
	pthread_mutex_lock(&j->mu);
	epoch = j->epoch;
	if (lsn <= j->start || lsn > j->lsn) {
		pthread_mutex_unlock(&j->mu);
		goto out;
	}
	pthread_mutex_unlock(&j->mu);
	/* The ring before lsn is reused only once the header saying so is
	 * durable: until then a replay starts at the old start and must find
	 * the records there intact. */
	rc = journal_write_header(j, lsn, epoch, 0);
	if (rc == 0) {
		pthread_mutex_lock(&j->mu);
		j->start = lsn;
		pthread_mutex_unlock(&j->mu);
	}
out:
	pthread_mutex_unlock(&j->sync_mu);
	return rc;
}

int journal_seal(struct journal *j)
{
	uint64_t lsn;
	uint32_t epoch;
	int rc;

	if (atomic_load(&j->broken))
		return -EIO;
	pthread_mutex_lock(&j->sync_mu);
	pthread_mutex_lock(&j->mu);
	epoch = j->epoch;
	lsn = j->lsn;
	pthread_mutex_unlock(&j->mu);
	rc = journal_write_header(j, lsn, epoch, JOURNAL_SLOT_SEALED);
	if (rc == 0) {
		pthread_mutex_lock(&j->mu);
		j->start = lsn;
		pthread_mutex_unlock(&j->mu);
	}
	pthread_mutex_unlock(&j->sync_mu);
	return rc;
}

bool journal_wants_checkpoint(struct journal *j)
{
	bool want;

	pthread_mutex_lock(&j->mu);
	want = j->lsn - j->start > j->ring / 2;
	pthread_mutex_unlock(&j->mu);
	return want;
}

void journal_retire(struct journal *j)
{
	atomic_store(&j->broken, true);
}

bool journal_broken(struct journal *j)
{
	return atomic_load(&j->broken);
}

void journal_close(struct journal *j)
{
	if (!j)
		return;
	close(j->fd);
	pthread_mutex_destroy(&j->mu);
	pthread_mutex_destroy(&j->sync_mu);
	free(j->pend);
	free(j->path);
	free(j);
}
