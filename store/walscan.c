/* SPDX-License-Identifier: MIT */
/*
 * walscan.c - find and cut a hole in RocksDB's WAL (see walscan.h).
 *
 * The format read here is RocksDB's log format (db/log_format.h in its
 * sources): the file is a sequence of 32 KiB blocks; a physical record is
 * a 7-byte header (masked CRC-32C of the type byte and the payload: 4,
 * payload length: 2, type: 1) and its payload, never crossing a block; a
 * block's last 6 bytes or fewer are padding.  A logical record is one
 * FULL record, or FIRST, MIDDLE..., LAST.  Each logical record of a WAL is
 * a write batch, which begins with its sequence number (8 bytes) and its
 * count of entries (4, both little-endian); it uses count sequence
 * numbers.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "journal.h"
#include "walscan.h"

#define WALSCAN_BLOCK 32768u
#define WALSCAN_HDR 7u
#define WALSCAN_RHDR 11u /* a recyclable record's: + its file's number */
#define WALSCAN_BATCH_HDR 12u
#define WALSCAN_ASIDE "BRANCHFS-WAL-HOLE"

enum walscan_type {
	WALSCAN_ZERO = 0,
	WALSCAN_FULL = 1,
	WALSCAN_FIRST = 2,
	WALSCAN_MIDDLE = 3,
	WALSCAN_LAST = 4,
	WALSCAN_RFULL = 5, /* recyclable FULL ... LAST: 5..8 */
	WALSCAN_RLAST = 8,
};

/* log NULL: quiet. */
#define walscan_log(log, level, ...)                        \
	do {                                                \
		if (log)                                    \
			kv_log_to(log, level, __VA_ARGS__); \
	} while (0)

/* What the scan knows so far, across files. */
struct walscan_state {
	const char *dir;
	const struct store_log *log;
	uint64_t next_seq;  /* where the next batch should start */
	uint64_t last_seq;  /* the sequence of the batch before */
	uint64_t last_file; /* and its file */
	bool have_seq;
	bool found; /* a hole, in *hole; the scan goes on for a step back */
	bool back;  /* a step back, in back: the scan stops */
	struct walscan_hole *hole;
	struct walscan_hole back_at;
};

/* The current file's logical record being assembled. */
struct walscan_rec {
	bool open;	/* inside FIRST ... LAST */
	uint64_t start; /* offset of its first physical record */
	unsigned char batch[WALSCAN_BATCH_HDR];
	size_t have; /* bytes of batch filled */
};

static uint64_t walscan_get(const unsigned char *p, int n)
{
	uint64_t v = 0;

	for (int i = n - 1; i >= 0; i--)
		v = v << 8 | p[i];
	return v;
}

static int walscan_cmp(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;

	return x < y ? -1 : x > y;
}

/* The numbers of dir's WAL files (NNNNNN.log), ascending, into *out
 * (owned by the caller, free()).  0, -EIO or -ENOMEM. */
static int walscan_list(const char *dir, const struct store_log *log,
			uint64_t **out, size_t *n)
{
	uint64_t *v = NULL, *nv;
	size_t len = 0, cap = 0;
	struct dirent *de;
	DIR *d = opendir(dir);

	if (!d && errno == ENOENT) {
		*out = NULL; /* a database not made yet */
		*n = 0;
		return 0;
	}
	if (!d) {
		walscan_log(log, STORE_LOG_WARN,
			    "wal scan: cannot read '%s': %s", dir,
			    strerror(errno));
		return -EIO;
	}
	while ((de = readdir(d))) {
		const char *s = de->d_name;
		char *end;
		uint64_t num;

		if (*s < '0' || *s > '9')
			continue;
		num = strtoull(s, &end, 10);
		if (strcmp(end, ".log") != 0)
			continue;
		if (len == cap) {
			cap = cap ? 2 * cap : 16;
			nv = realloc(v, cap * sizeof(*v));
			if (!nv) {
				free(v);
				closedir(d);
				return -ENOMEM;
			}
			v = nv;
		}
		v[len++] = num;
	}
	closedir(d);
	if (len)
		qsort(v, len, sizeof(*v), walscan_cmp);
	*out = v;
	*n = len;
	return 0;
}

/* A whole batch was read, the first of its file or not: check that it
 * follows on.  true: a step back (the scan stops). */
static bool walscan_batch(struct walscan_state *st, uint64_t file,
			  const struct walscan_rec *rec, uint64_t file_size,
			  bool first)
{
	uint64_t seq = walscan_get(rec->batch, 8);
	uint64_t count = walscan_get(rec->batch + 8, 4);

	if (st->have_seq && seq > st->next_seq && !st->found) {
		st->hole->file = file;
		st->hole->offset = rec->start;
		st->hole->seq_expected = st->next_seq;
		st->hole->seq_found = seq;
		st->hole->bytes = file_size - rec->start;
		st->hole->back = false;
		st->found = true;
	}
	/* An earlier sequence.  RocksDB 7.8 writes one in a single case: a
	 * write whose WAL append failed after its whole record reached the
	 * file (the writeback that wal_bytes_per_sync asks for failing) took
	 * no sequence (LastSequence moves only on success), the file takes
	 * no more records (its writer keeps the error), and the next write,
	 * in the next file, once RocksDB resumed, starts at the failed one's
	 * sequence: the first batch of a file, at the sequence of the batch
	 * before it.  That one is RocksDB's and left to it.  Any other step
	 * back is not a WAL RocksDB wrote, nor what a power cut leaves of one
	 * (a damaged record ends a file for the scan as for RocksDB, which
	 * does not read on past it either): older batches after newer ones,
	 * which RocksDB would replay over them (and Debian's librocksdb,
	 * built with assertions, aborts on in MemTable::Add: a batch older
	 * than the memtable's first, or a key and sequence it holds). */
	if (st->have_seq && seq < st->next_seq &&
	    !(first && seq == st->last_seq)) {
		st->back_at.file = file;
		st->back_at.offset = rec->start;
		st->back_at.seq_expected = st->next_seq;
		st->back_at.seq_found = seq;
		st->back_at.bytes = file_size - rec->start;
		st->back_at.back = true;
		st->back_at.prev_file = st->last_file;
		st->back = true;
		return true;
	}
	st->next_seq = seq + count;
	st->last_seq = seq;
	st->last_file = file;
	st->have_seq = true;
	return false;
}

/* Add a physical record's payload to rec; the batch header is all we
 * keep. */
static void walscan_take(struct walscan_rec *rec, const unsigned char *p,
			 size_t len)
{
	size_t n = WALSCAN_BATCH_HDR - rec->have;

	if (n > len)
		n = len;
	memcpy(rec->batch + rec->have, p, n);
	rec->have += n;
}

/* Read one WAL file as RocksDB's reader would, until its end or its
 * first bad record (where RocksDB's recovery stops reading it).  0 (the
 * hole, if found, is in st), -ENOTSUP, -EIO. */
static int walscan_file(struct walscan_state *st, uint64_t num)
{
	unsigned char *blk = NULL;
	struct walscan_rec rec = { 0 };
	char path[4200];
	struct stat sb;
	uint64_t off;
	bool first = true;
	int fd, rc = 0;

	snprintf(path, sizeof(path), "%s/%06llu.log", st->dir,
		 (unsigned long long)num);
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0 || fstat(fd, &sb) != 0) {
		walscan_log(st->log, STORE_LOG_WARN,
			    "wal scan: cannot read '%s': %s", path,
			    strerror(errno));
		rc = -EIO;
		goto out;
	}
	blk = malloc(WALSCAN_BLOCK);
	if (!blk) {
		rc = -ENOMEM;
		goto out;
	}
	for (off = 0; off < (uint64_t)sb.st_size; off += WALSCAN_BLOCK) {
		uint64_t want = (uint64_t)sb.st_size - off;
		size_t blen = want < WALSCAN_BLOCK ? want : WALSCAN_BLOCK;
		size_t pos = 0;

		if (pread(fd, blk, blen, (off_t)off) != (ssize_t)blen) {
			walscan_log(st->log, STORE_LOG_WARN,
				    "wal scan: cannot read '%s' at %llu", path,
				    (unsigned long long)off);
			rc = -EIO;
			goto out;
		}
		while (blen - pos >= WALSCAN_HDR) {
			const unsigned char *h = blk + pos;
			uint32_t len = (uint32_t)walscan_get(h + 4, 2);
			unsigned type = h[6];
			uint32_t hs = WALSCAN_HDR, crc, want_crc;

			/* In RocksDB's reader's order: a header of a
			 * recyclable type is longer and names its file; one
			 * naming another file (stale bytes) is the end of
			 * this one, where RocksDB goes on with the next file
			 * without a word.  Then the length, a zero header,
			 * the CRC; only a record whose CRC holds is looked
			 * at for its type. */
			if (type >= WALSCAN_RFULL && type <= WALSCAN_RLAST) {
				hs = WALSCAN_RHDR;
				if (blen - pos < hs)
					break; /* a block's trailer to RocksDB */
				if (walscan_get(h + 7, 4) != (uint32_t)num)
					goto out;
			}
			if (hs + len > blen - pos)
				goto out; /* bad length: RocksDB stops */
			if (type == WALSCAN_ZERO && len == 0) {
				if (rec.open)
					goto out;
				break; /* the rest of the block is skipped */
			}
			crc = journal_crc32c(0, h + 6, (size_t)len + hs - 6);
			want_crc = (uint32_t)walscan_get(h, 4) - 0xa282ead8u;
			want_crc = want_crc >> 17 | want_crc << 15;
			if (crc != want_crc)
				goto out; /* damaged: RocksDB stops */
			if (type > WALSCAN_LAST) {
				walscan_log(
					st->log, STORE_LOG_WARN,
					"wal scan: '%s' has a record of type %u at %llu, which this build does not read: not checked for a hole",
					path, type,
					(unsigned long long)(off + pos));
				rc = -ENOTSUP;
				goto out;
			}
			if (type == WALSCAN_FULL || type == WALSCAN_FIRST) {
				if (rec.open)
					goto out; /* a record without its end */
				rec.open = true;
				rec.start = off + pos;
				rec.have = 0;
			} else if (!rec.open) {
				goto out; /* no start: RocksDB stops */
			}
			walscan_take(&rec, h + WALSCAN_HDR, len);
			pos += WALSCAN_HDR + len;
			if (type == WALSCAN_FULL || type == WALSCAN_LAST) {
				rec.open = false;
				if (rec.have < WALSCAN_BATCH_HDR)
					goto out; /* too small for a batch */
				if (walscan_batch(st, num, &rec,
						  (uint64_t)sb.st_size, first))
					goto out;
				first = false;
			}
		}
	}
out:
	free(blk);
	if (fd >= 0)
		close(fd);
	return rc;
}

int walscan_find_hole(const char *dir, uint64_t first_file,
		      const struct store_log *log, struct walscan_hole *hole)
{
	struct walscan_state st = { .dir = dir, .log = log, .hole = hole };
	uint64_t *files = NULL;
	size_t n, i, j;
	int rc;

	hole->back = false;
	rc = walscan_list(dir, log, &files, &n);
	for (i = 0; rc == 0 && i < n && !st.back; i++)
		if (files[i] >= first_file)
			rc = walscan_file(&st, files[i]);
	if (st.back) {
		*hole = st.back_at;
		free(files);
		return rc ? rc : 1;
	}
	/* Past a hole, the scan read on only to find a step back: an error
	 * there does not hide the hole. */
	if (st.found)
		rc = 0;
	if (rc == 0 && st.found) {
		/* Add the later files' bytes. */
		for (j = 0; j < n; j++) {
			char path[4200];
			struct stat sb;

			snprintf(path, sizeof(path), "%s/%06llu.log", dir,
				 (unsigned long long)files[j]);
			if (files[j] > hole->file && stat(path, &sb) == 0)
				hole->bytes += (uint64_t)sb.st_size;
		}
	}
	free(files);
	return rc ? rc : st.found;
}

static int walscan_fsync_path(const char *path, int flags)
{
	int fd = open(path, flags | O_CLOEXEC), rc = 0;

	if (fd < 0)
		return -errno;
	if (fsync(fd) != 0)
		rc = -errno;
	close(fd);
	return rc;
}

/* Copy path's bytes from off on into the new file to, durably. */
static int walscan_copy_tail(const char *path, uint64_t off, const char *to)
{
	unsigned char buf[65536];
	int in, out, rc = 0;
	ssize_t got;

	in = open(path, O_RDONLY | O_CLOEXEC);
	if (in < 0)
		return -errno;
	out = open(to, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	if (out < 0) {
		rc = -errno;
		close(in);
		return rc;
	}
	/* A write short of room returns what fit; only the next one says
	 * ENOSPC (errno is not set by the short one). */
	while (rc == 0 && (got = pread(in, buf, sizeof(buf), (off_t)off)) > 0) {
		ssize_t done = 0, n;

		while (rc == 0 && done < got) {
			n = write(out, buf + done, (size_t)(got - done));
			if (n < 0)
				rc = -errno;
			else
				done += n;
		}
		off += (uint64_t)got;
	}
	if (got < 0 && rc == 0)
		rc = -errno;
	if (rc == 0 && fsync(out) != 0)
		rc = -errno;
	close(out);
	close(in);
	return rc;
}

int walscan_cut(const char *dir, const struct walscan_hole *hole,
		const struct store_log *log)
{
	char aside[4200], from[4200], to[4400];
	uint64_t *files = NULL;
	size_t n, i, moved = 0;
	const char *what;
	int rc;

	snprintf(aside, sizeof(aside), "%s/" WALSCAN_ASIDE, dir);
	snprintf(from, sizeof(from), "%s/%06llu.log", dir,
		 (unsigned long long)hole->file);
	snprintf(to, sizeof(to), "%s/%06llu.log.tail", aside,
		 (unsigned long long)hole->file);
	what = "make the directory";
	rc = mkdir(aside, 0700) == 0 || errno == EEXIST ? 0 : -errno;
	if (rc == 0) {
		what = "copy the cut tail";
		rc = walscan_copy_tail(from, hole->offset, to);
		if (rc == -ENOSPC || rc == -EDQUOT) {
			/* The copy is for inspection only: what is cut was
			 * never needed (walscan.h). */
			unlink(to);
			walscan_log(
				log, STORE_LOG_WARN,
				"no room to keep a copy of the %llu bytes of %06llu.log cut at a hole in rocksdb's log: cut without it",
				(unsigned long long)hole->bytes,
				(unsigned long long)hole->file);
			rc = 0;
		}
	}
	if (rc == 0) {
		what = "list the log files";
		rc = walscan_list(dir, log, &files, &n);
	}
	for (i = 0; rc == 0 && i < n; i++) {
		char f[4200], t[4400];

		if (files[i] <= hole->file)
			continue;
		snprintf(f, sizeof(f), "%s/%06llu.log", dir,
			 (unsigned long long)files[i]);
		snprintf(t, sizeof(t), "%s/%06llu.log", aside,
			 (unsigned long long)files[i]);
		what = "move a later log file";
		rc = rename(f, t) == 0 ? 0 : -errno;
		moved += rc == 0;
	}
	free(files);
	if (rc == 0) {
		what = "sync the directories";
		rc = walscan_fsync_path(aside, O_RDONLY | O_DIRECTORY);
		if (rc == 0)
			rc = walscan_fsync_path(dir, O_RDONLY | O_DIRECTORY);
	}
	if (rc == 0) {
		what = "truncate the log file";
		rc = truncate(from, (off_t)hole->offset) == 0 ? 0 : -errno;
		if (rc == 0)
			rc = walscan_fsync_path(from, O_WRONLY);
	}
	if (rc) {
		walscan_log(
			log, STORE_LOG_ERR,
			"rocksdb's log has a hole (a power cut kept later records of it and lost earlier ones) and it cannot be cut there: %s: %s; not opened, as the database would hold writes without earlier ones; open it again once that is fixed",
			what, strerror(-rc));
		return rc;
	}
	walscan_log(
		log, STORE_LOG_WARN,
		"rocksdb's log lost the batches of sequences %llu to %llu, which a power cut did not write to disk, but kept later ones: cut before them (%06llu.log at %llu); %llu bytes, the rest of that file and %zu later file%s, kept in '%s'; the fsync journal gives back every synced write after the cut",
		(unsigned long long)hole->seq_expected,
		(unsigned long long)hole->seq_found - 1,
		(unsigned long long)hole->file,
		(unsigned long long)hole->offset,
		(unsigned long long)hole->bytes, moved, moved == 1 ? "" : "s",
		aside);
	return 0;
}
