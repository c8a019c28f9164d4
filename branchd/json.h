/* SPDX-License-Identifier: MIT */
/*
 * json.h - the small JSON reader and writer of the control protocol.
 *
 * Reads one complete JSON text into a tree (objects, arrays, strings,
 * numbers, true/false/null); strings must be valid UTF-8 without NUL.
 * Depth and size are bounded so hostile input cannot exhaust the daemon.
 * Writes through a growing buffer with proper string escaping.
 */
#ifndef BRANCHFS_JSON_H
#define BRANCHFS_JSON_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

enum json_type {
	JSON_NULL,
	JSON_BOOL,
	JSON_NUM,
	JSON_STR,
	JSON_ARR,
	JSON_OBJ,
};

struct json {
	enum json_type type;
	bool b;
	bool is_int; /* number written without fraction or exponent */
	int64_t i;   /* valid when is_int */
	double num;
	char *str;	     /* JSON_STR: NUL-terminated, owned */
	struct json **items; /* JSON_ARR and JSON_OBJ values, owned */
	char **keys;	     /* JSON_OBJ keys, owned */
	size_t n;
};

#define JSON_MAX_DEPTH 16

/* Parse text[0..len).  On success *out is owned by the caller, freed with
 * json_free().  -EINVAL on malformed input, -ENOMEM. */
int json_parse(const char *text, size_t len, struct json **out);
void json_free(struct json *j);

/* Borrowed lookups (valid while the tree lives); NULL when absent or of
 * another type. */
const struct json *json_get(const struct json *obj, const char *key);
const char *json_get_str(const struct json *obj, const char *key);
/* true and *out set when key holds an integer. */
bool json_get_int(const struct json *obj, const char *key, int64_t *out);
/* true and *out set when key holds a boolean. */
bool json_get_bool(const struct json *obj, const char *key, bool *out);

/* Output buffer.  Embedded: json_buf_init / json_buf_release.  A failed
 * allocation sets err and later appends do nothing. */
struct json_buf {
	char *p;
	size_t len;
	size_t cap;
	int err;
	/* json_buf_str copies bytes that are not UTF-8 as they are instead
	 * of writing U+FFFD: for requests naming a branch made before names
	 * had to be UTF-8 (the daemon's parser takes them). */
	bool raw_bytes;
};

void json_buf_init(struct json_buf *b);
void json_buf_release(struct json_buf *b);
void json_buf_raw(struct json_buf *b, const char *s);
void json_buf_printf(struct json_buf *b, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));
/* Append s as a quoted, escaped JSON string. */
void json_buf_str(struct json_buf *b, const char *s);

#endif
