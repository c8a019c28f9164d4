/* SPDX-License-Identifier: MIT */
/*
 * powercut_store.c - a store-level workload for power-cut loops
 * (tests/stress/powercut_store.py drives it; not part of make check).
 *
 *   powercut_store run DIR LOG SEED
 *	open (create) the store in DIR and loop forever over random
 *	operations: file creates, writes, truncates and unlinks in branch
 *	roots, syncs, branch create (synced or lazy), delete, rename and
 *	reset, GC, drops of deleted branches, settings.  Before each one a
 *	line "B n OP ARGS" and after it "A n RC" go to LOG (O_APPEND, outside
 *	the store: a kill keeps them).  Exits 3 on an unexpected error.
 *   powercut_store check DIR
 *	open the store read-only (nothing replayed or written, as branchd
 *	--check) and run store_check: exit 4 on a problem or journal damage.
 *   powercut_store dump DIR OUT
 *	open the store (replaying its journal), run store_check (exit 4 on a
 *	problem or journal damage), and write its state to OUT: the settings this tool sets,
 *	then per branch (by name) its parent's name and each file of its
 *	root with its size and CRC-32.
 *
 * The driver runs under build/powercut.so: a power cut keeps of the store
 * only what was synced (plus random unsynced sectors).
 */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "store/store.h"

#define PS_FILES 4
#define PS_MAXLEN (40u * 1024)
#define PS_MAXBR 12

static int ps_log_fd = -1;
static unsigned long long ps_n;

static void ps_logf(const char *fmt, ...)
{
	char buf[1024];
	va_list ap;
	int n;

	va_start(ap, fmt);
	n = vsnprintf(buf, sizeof(buf), fmt, ap);
	va_end(ap);
	if (write(ps_log_fd, buf, (size_t)n) != n)
		_exit(5);
}

static void ps_slog(void *ctx, int level, const char *msg)
{
	(void)ctx;
	fprintf(stderr, "store[%d]: %s\n", level, msg);
}

static int ps_open(const char *dir, bool create, bool ro, struct store **s)
{
	struct store_config cfg;

	memset(&cfg, 0, sizeof(cfg));
	cfg.create = create;
	cfg.read_only = ro;
	cfg.cache_bytes = 8u << 20;
	cfg.log.fn = ps_slog;
	cfg.log.level = STORE_LOG_WARN;
	cfg.retention_s = ro ? 0 : 1;
	return store_open(dir, &cfg, s);
}

static unsigned char ps_byte(uint32_t pat, uint64_t off)
{
	uint64_t x = off * 0x9E3779B97F4A7C15ull + pat * 0xBF58476D1CE4E5B9ull;

	x ^= x >> 29;
	return (unsigned char)(x | 1);
}

static void ps_fail(const char *what, long rc)
{
	ps_logf("X %llu %s %ld\n", ps_n, what, rc);
	fprintf(stderr, "powercut_store: %s: %ld (%s)\n", what, rc,
		strerror((int)-rc));
	exit(3);
}

static struct store_attr ps_attr(void)
{
	struct store_attr a;

	memset(&a, 0, sizeof(a));
	a.mode = S_IFREG | 0644;
	a.uid = (uint32_t)getuid();
	a.gid = (uint32_t)getgid();
	clock_gettime(CLOCK_REALTIME, &a.mtime);
	a.atime = a.ctime = a.mtime;
	return a;
}

/* PS_GC_THREAD=1: GC and drops of deleted branches run all the time in a
 * thread of their own, racing the operations (they change no state the
 * model sees, so the log's order still holds). */
static void *ps_gc_main(void *arg)
{
	struct store *s = arg;
	unsigned n = 0;

	for (;;) {
		struct store_gc_opts o;
		struct store_gc_stats st;
		size_t dropped;
		int rc;

		memset(&o, 0, sizeof(o));
		o.full_compaction = ++n % 4 == 0;
		rc = n % 2 ? store_gc(s, &o, &st) :
			     store_drop_deleted(s, &dropped);
		if (rc && rc != -EBUSY)
			ps_fail("gc thread", rc);
		usleep(2000);
	}
	return NULL;
}

static int ps_run(const char *dir, const char *logp, unsigned seed)
{
	struct store *s;
	struct store_branch_info *bl, bi;
	unsigned char *buf = malloc(PS_MAXLEN);
	size_t nb;
	int rc;

	srandom(seed);
	ps_log_fd = open(logp, O_WRONLY | O_CREAT | O_APPEND, 0644);
	if (ps_log_fd < 0 || !buf)
		return 2;
	rc = ps_open(dir, true, false, &s);
	if (rc)
		ps_fail("open", rc);
	if (store_branch_lookup(s, "main", &bi) == -ENOENT) {
		struct store_branch_create_args a;

		memset(&a, 0, sizeof(a));
		a.name = "main";
		a.root_mode = 0755;
		ps_logf("B %llu BC main -\n", ++ps_n);
		rc = store_branch_create(s, &a, &bi);
		ps_logf("A %llu %d\n", ps_n, rc);
		if (rc)
			ps_fail("create main", rc);
	}
	if (getenv("PS_GC_THREAD")) {
		pthread_t t;

		pthread_create(&t, NULL, ps_gc_main, s);
	}
	for (;;) {
		int op = (int)(random() % 100);
		struct store_branch_info *b;
		char fname[16], nname[32];
		uint64_t ino;

		rc = store_branch_list(s, &bl, &nb);
		if (rc)
			ps_fail("list", rc);
		b = &bl[random() % nb];
		snprintf(fname, sizeof(fname), "f%ld", random() % PS_FILES);
		snprintf(nname, sizeof(nname), "b%ld", random() % 40);
		ps_n++;
		if (op < 45) { /* write */
			uint32_t pat = (uint32_t)random();
			uint64_t off = (uint64_t)(random() % (PS_MAXLEN - 1));
			size_t len = 1 + (size_t)(random() % (PS_MAXLEN - off));
			struct store_attr a = ps_attr();

			rc = store_lookup(s, b->id, STORE_SEQ_LATEST,
					  b->root_ino, fname, &ino);
			if (rc == -ENOENT) {
				ps_logf("B %llu CR %s %s\n", ps_n, b->name,
					fname);
				rc = store_create(s, b->id, b->root_ino, fname,
						  &a, NULL, &ino, NULL);
				ps_logf("A %llu %d\n", ps_n, rc);
				if (rc)
					ps_fail("create", rc);
				ps_n++;
			} else if (rc) {
				ps_fail("lookup", rc);
			}
			for (size_t i = 0; i < len; i++)
				buf[i] = ps_byte(pat, (off + i) % 8191);
			ps_logf("B %llu W %s %s %llu %zu %u\n", ps_n, b->name,
				fname, (unsigned long long)off, len, pat);
			rc = (int)store_write(s, b->id, ino, buf, len, off,
					      NULL);
			ps_logf("A %llu %d\n", ps_n, rc == (int)len ? 0 : rc);
			if (rc != (int)len)
				ps_fail("write", rc);
		} else if (op < 52) { /* truncate */
			struct store_attr a;

			memset(&a, 0, sizeof(a));
			a.size = (uint64_t)(random() % PS_MAXLEN);
			rc = store_lookup(s, b->id, STORE_SEQ_LATEST,
					  b->root_ino, fname, &ino);
			if (rc == 0) {
				ps_logf("B %llu T %s %s %llu\n", ps_n, b->name,
					fname, (unsigned long long)a.size);
				rc = store_setattr(s, b->id, ino, &a,
						   STORE_SET_SIZE, NULL);
				ps_logf("A %llu %d\n", ps_n, rc);
				if (rc)
					ps_fail("truncate", rc);
			}
		} else if (op < 56) { /* unlink */
			rc = store_lookup(s, b->id, STORE_SEQ_LATEST,
					  b->root_ino, fname, &ino);
			if (rc == 0) {
				ps_logf("B %llu U %s %s\n", ps_n, b->name,
					fname);
				rc = store_unlink(s, b->id, b->root_ino, fname);
				ps_logf("A %llu %d\n", ps_n, rc);
				if (rc)
					ps_fail("unlink", rc);
			}
		} else if (op < 64) { /* sync */
			bool all = random() % 2;

			ps_logf("B %llu S %s\n", ps_n, all ? "-" : b->name);
			rc = all ? store_sync(s) : store_sync_branch(s, b->id);
			ps_logf("A %llu %d\n", ps_n, rc);
			if (rc)
				ps_fail("sync", rc);
		} else if (op < 72) { /* branch create */
			struct store_branch_create_args a;

			memset(&a, 0, sizeof(a));
			a.name = nname;
			a.parent_id = b->id;
			a.at_seq = STORE_SEQ_LATEST;
			a.lazy = random() % 4 == 0;
			if (nb < PS_MAXBR &&
			    store_branch_lookup(s, nname, &bi) == -ENOENT) {
				ps_logf("B %llu BC%s %s %s\n", ps_n,
					a.lazy ? "L" : "", nname, b->name);
				rc = store_branch_create(s, &a, &bi);
				ps_logf("A %llu %d\n", ps_n, rc);
				if (rc)
					ps_fail("branch create", rc);
			}
		} else if (op < 79) { /* branch delete */
			if (b->nchildren == 0 && strcmp(b->name, "main")) {
				ps_logf("B %llu BD %s\n", ps_n, b->name);
				rc = store_branch_delete(s, b->id);
				ps_logf("A %llu %d\n", ps_n, rc);
				if (rc)
					ps_fail("branch delete", rc);
			}
		} else if (op < 84) { /* branch rename */
			if (strcmp(b->name, "main") &&
			    store_branch_lookup(s, nname, &bi) == -ENOENT) {
				ps_logf("B %llu BR %s %s\n", ps_n, b->name,
					nname);
				rc = store_branch_rename(s, b->id, nname);
				ps_logf("A %llu %d\n", ps_n, rc);
				if (rc)
					ps_fail("branch rename", rc);
			}
		} else if (op < 90) { /* branch reset */
			if (b->parent_id && b->nchildren == 0) {
				ps_logf("B %llu BX %s\n", ps_n, b->name);
				rc = store_branch_reset(s, b->id, NULL);
				ps_logf("A %llu %d\n", ps_n, rc);
				if (rc)
					ps_fail("branch reset", rc);
			}
		} else if (op < 94) { /* gc */
			struct store_gc_opts o;
			struct store_gc_stats st;

			memset(&o, 0, sizeof(o));
			o.full_compaction = random() % 3 == 0;
			ps_logf("B %llu G\n", ps_n);
			rc = store_gc(s, &o, &st);
			ps_logf("A %llu %d\n", ps_n, rc);
			if (rc && rc != -EBUSY)
				ps_fail("gc", rc);
		} else if (op < 97) { /* drop deleted */
			size_t dropped;

			ps_logf("B %llu DD\n", ps_n);
			rc = store_drop_deleted(s, &dropped);
			ps_logf("A %llu %d\n", ps_n, rc);
			if (rc)
				ps_fail("drop deleted", rc);
		} else { /* setting */
			char key[16], val[32];

			snprintf(key, sizeof(key), "ps.k%ld", random() % 3);
			snprintf(val, sizeof(val), "v%ld", random());
			ps_logf("B %llu P %s %s\n", ps_n, key, val);
			rc = store_setting_put(s, key, val);
			ps_logf("A %llu %d\n", ps_n, rc);
			if (rc)
				ps_fail("setting", rc);
		}
		free(bl);
	}
}

/* CRC-32 (zlib's, as Python's zlib.crc32) of a file's content. */
static uint32_t ps_crc32(const unsigned char *p, size_t n)
{
	uint32_t c = 0xffffffffu;

	while (n--) {
		c ^= *p++;
		for (int k = 0; k < 8; k++)
			c = c & 1 ? (c >> 1) ^ 0xedb88320u : c >> 1;
	}
	return ~c;
}

static int ps_cmp_name(const void *a, const void *b)
{
	return strcmp(((const struct store_branch_info *)a)->name,
		      ((const struct store_branch_info *)b)->name);
}

static int ps_dump(const char *dir, const char *outp)
{
	struct store *s;
	struct store_branch_info *bl;
	struct store_check_report rep;
	unsigned char *buf = malloc(PS_MAXLEN + 8192);
	size_t nb;
	FILE *out;
	int rc;

	rc = ps_open(dir, false, !outp, &s);
	if (rc) {
		fprintf(stderr, "powercut_store: open: %d\n", rc);
		return 2;
	}
	memset(&rep, 0, sizeof(rep));
	rc = store_check(s, NULL, NULL, &rep);
	if (rc || rep.bad_blocks || rep.bad_records || rep.journal_damaged) {
		fprintf(stderr,
			"powercut_store: check: rc %d bad %llu/%llu journal damaged %llu\n",
			rc, (unsigned long long)rep.bad_records,
			(unsigned long long)rep.bad_blocks,
			(unsigned long long)rep.journal_damaged);
		return 4;
	}
	if (!outp) /* check: read only, as branchd --check */
		return store_close(s) ? 2 : 0;
	out = fopen(outp, "w");
	if (!out || !buf)
		return 2;
	for (int k = 0; k < 3; k++) {
		char key[16], val[64];

		snprintf(key, sizeof(key), "ps.k%d", k);
		rc = store_setting_get(s, key, val, sizeof(val));
		fprintf(out, "setting %s %s\n", key, rc == 0 ? val : "-");
	}
	rc = store_branch_list(s, &bl, &nb);
	if (rc)
		return 2;
	qsort(bl, nb, sizeof(*bl), ps_cmp_name);
	for (size_t i = 0; i < nb; i++) {
		struct store_branch_info p;
		struct store_dirent *de;
		size_t nd;

		if (bl[i].parent_id)
			rc = store_branch_get(s, bl[i].parent_id, &p);
		fprintf(out, "branch %s %s\n", bl[i].name,
			bl[i].parent_id ? (rc ? "?" : p.name) : "-");
		rc = store_readdir(s, bl[i].id, STORE_SEQ_LATEST,
				   bl[i].root_ino, &de, &nd);
		if (rc) {
			fprintf(stderr, "powercut_store: readdir: %d\n", rc);
			return 2;
		}
		for (size_t k = 0; k < nd; k++) {
			struct store_attr a;
			ssize_t n;

			rc = store_getattr(s, bl[i].id, STORE_SEQ_LATEST,
					   de[k].ino, &a);
			if (rc || a.size > PS_MAXLEN) {
				fprintf(stderr,
					"powercut_store: getattr %s/%s: %d size %llu\n",
					bl[i].name, de[k].name, rc,
					(unsigned long long)a.size);
				return 2;
			}
			n = store_read(s, bl[i].id, STORE_SEQ_LATEST, de[k].ino,
				       buf, PS_MAXLEN + 8192, 0);
			if (n != (ssize_t)a.size) {
				fprintf(stderr,
					"powercut_store: read %s/%s: %zd\n",
					bl[i].name, de[k].name, n);
				return 2;
			}
			fprintf(out, "file %s %zd %08x\n", de[k].name, n,
				ps_crc32(buf, (size_t)n));
		}
		free(de);
	}
	free(bl);
	fclose(out);
	rc = store_close(s);
	if (rc) {
		fprintf(stderr, "powercut_store: close: %d\n", rc);
		return 2;
	}
	return 0;
}

/* PS_KILL_US=n: SIGKILL this process n microseconds after start (a cut
 * inside the open's journal replay and restart, which take milliseconds). */
static void *ps_killer(void *arg)
{
	usleep((useconds_t)(uintptr_t)arg);
	kill(getpid(), SIGKILL);
	return NULL;
}

int main(int argc, char **argv)
{
	const char *k = getenv("PS_KILL_US");
	pthread_t t;

	if (k && *k)
		pthread_create(&t, NULL, ps_killer,
			       (void *)(uintptr_t)strtoul(k, NULL, 10));
	if (argc == 5 && strcmp(argv[1], "run") == 0)
		return ps_run(argv[2], argv[3], (unsigned)atoi(argv[4]));
	if (argc == 4 && strcmp(argv[1], "dump") == 0)
		return ps_dump(argv[2], argv[3]);
	if (argc == 3 && strcmp(argv[1], "check") == 0)
		return ps_dump(argv[2], NULL);
	fprintf(stderr,
		"usage: powercut_store run DIR LOG SEED | dump DIR OUT | check DIR\n");
	return 1;
}
