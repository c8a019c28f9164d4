/* SPDX-License-Identifier: MIT */
/*
 * test_walcut.h - a power cut of RocksDB's WAL for the unit tests that
 * need one (test_kv_journal.c, test_store_persist.c): record the sizes of
 * the WAL files (*.log) of dir/db at a moment a child process has made
 * durable, and later cut every WAL file back to its recorded size (a file
 * made after it to nothing), as a power cut would leave what was never
 * synced.
 */
#ifndef BRANCHFS_TEST_WALCUT_H
#define BRANCHFS_TEST_WALCUT_H

#include <dirent.h>
#include <stdbool.h>
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static inline bool twal_is_log(const char *name)
{
	size_t n = strlen(name);

	return n >= 4 && strcmp(name + n - 4, ".log") == 0;
}

/* The sizes of dir/db's WAL files into the file out, as "name size"
 * lines.  0 or -EIO. */
static inline int twal_record(const char *dir, const char *out)
{
	char db[4096], p[8192];
	struct dirent *de;
	FILE *f;
	DIR *d;

	snprintf(db, sizeof(db), "%s/db", dir);
	f = fopen(out, "w");
	d = opendir(db);
	if (!f || !d) {
		if (f)
			fclose(f);
		if (d)
			closedir(d);
		return -EIO;
	}
	while ((de = readdir(d))) {
		struct stat st;

		if (!twal_is_log(de->d_name))
			continue;
		snprintf(p, sizeof(p), "%s/%s", db, de->d_name);
		if (stat(p, &st) == 0)
			fprintf(f, "%s %lld\n", de->d_name,
				(long long)st.st_size);
	}
	closedir(d);
	return fclose(f) == 0 ? 0 : -EIO;
}

/* Every WAL file of dir/db back to the size rec gives (0 if it has none).
 * Returns the bytes cut. */
static inline long long twal_cut(const char *dir, const char *rec)
{
	char db[4096], p[8192], name[256];
	long long size, cut = 0;
	struct dirent *de;
	DIR *d;

	snprintf(db, sizeof(db), "%s/db", dir);
	d = opendir(db);
	assert_non_null(d);
	while ((de = readdir(d))) {
		long long keep = 0;
		struct stat st;
		FILE *f;

		if (!twal_is_log(de->d_name))
			continue;
		f = fopen(rec, "r");
		assert_non_null(f);
		while (fscanf(f, "%255s %lld", name, &size) == 2)
			if (strcmp(name, de->d_name) == 0)
				keep = size;
		fclose(f);
		snprintf(p, sizeof(p), "%s/%s", db, de->d_name);
		assert_int_equal(stat(p, &st), 0);
		if (st.st_size > keep) {
			cut += st.st_size - keep;
			assert_int_equal(truncate(p, keep), 0);
		}
	}
	closedir(d);
	return cut;
}

/* Only the WAL files rec names back to their recorded size; files made
 * after it are left whole, as a power cut may keep a newer file's
 * records and lose an older one's.  Returns the bytes cut. */
static inline long long twal_cut_listed(const char *dir, const char *rec)
{
	char p[8192], name[256];
	long long size, cut = 0;
	struct stat st;
	FILE *f = fopen(rec, "r");

	assert_non_null(f);
	while (fscanf(f, "%255s %lld", name, &size) == 2) {
		snprintf(p, sizeof(p), "%s/db/%s", dir, name);
		if (stat(p, &st) == 0 && st.st_size > size) {
			cut += st.st_size - size;
			assert_int_equal(truncate(p, size), 0);
		}
	}
	fclose(f);
	return cut;
}

/* The highest number of dir/db's WAL files, 0 if none. */
static inline unsigned long long twal_newest(const char *dir)
{
	char db[4096];
	unsigned long long n, max = 0;
	struct dirent *de;
	DIR *d;

	snprintf(db, sizeof(db), "%s/db", dir);
	d = opendir(db);
	if (!d)
		return 0;
	while ((de = readdir(d)))
		if (twal_is_log(de->d_name) &&
		    sscanf(de->d_name, "%llu", &n) == 1 && n > max)
			max = n;
	closedir(d);
	return max;
}

#endif /* BRANCHFS_TEST_WALCUT_H */
