/* SPDX-License-Identifier: MIT */
/*
 * json.c - recursive-descent JSON reader and an escaping writer.
 *
 * Deliberately small: no streaming, no comments, no duplicate-key checks
 * (the first key wins on lookup).  Nesting is capped at JSON_MAX_DEPTH so
 * a hostile request cannot exhaust the stack.
 */
#include <errno.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "json.h"

struct json_in {
	const char *p;
	const char *end;
};

static void json_ws(struct json_in *in)
{
	while (in->p < in->end && (*in->p == ' ' || *in->p == '\t' ||
				   *in->p == '\n' || *in->p == '\r'))
		in->p++;
}

static int json_value(struct json_in *in, int depth, struct json **out);

static int json_hex4(const char *p, unsigned *out)
{
	unsigned v = 0;
	int i;

	for (i = 0; i < 4; i++) {
		char c = p[i];

		v <<= 4;
		if (c >= '0' && c <= '9')
			v |= (unsigned)(c - '0');
		else if (c >= 'a' && c <= 'f')
			v |= (unsigned)(c - 'a' + 10);
		else if (c >= 'A' && c <= 'F')
			v |= (unsigned)(c - 'A' + 10);
		else
			return -EINVAL;
	}
	*out = v;
	return 0;
}

static size_t json_utf8(char *o, unsigned cp)
{
	if (cp < 0x80) {
		o[0] = (char)cp;
		return 1;
	}
	if (cp < 0x800) {
		o[0] = (char)(0xC0 | (cp >> 6));
		o[1] = (char)(0x80 | (cp & 0x3F));
		return 2;
	}
	if (cp < 0x10000) {
		o[0] = (char)(0xE0 | (cp >> 12));
		o[1] = (char)(0x80 | ((cp >> 6) & 0x3F));
		o[2] = (char)(0x80 | (cp & 0x3F));
		return 3;
	}
	o[0] = (char)(0xF0 | (cp >> 18));
	o[1] = (char)(0x80 | ((cp >> 12) & 0x3F));
	o[2] = (char)(0x80 | ((cp >> 6) & 0x3F));
	o[3] = (char)(0x80 | (cp & 0x3F));
	return 4;
}

static int json_string(struct json_in *in, char **out)
{
	const char *start;
	char *s, *o;

	if (in->p >= in->end || *in->p != '"')
		return -EINVAL;
	start = ++in->p;
	/* Escapes only shrink the text, so its length bounds the result. */
	while (in->p < in->end && *in->p != '"') {
		if (*in->p == '\\')
			in->p++;
		in->p++;
	}
	if (in->p >= in->end)
		return -EINVAL;
	s = malloc((size_t)(in->p - start) + 1);
	if (!s)
		return -ENOMEM;
	o = s;
	for (const char *q = start; q < in->p; q++) {
		unsigned char c = (unsigned char)*q;

		if (c < 0x20)
			goto err;
		if (c != '\\') {
			*o++ = (char)c;
			continue;
		}
		q++;
		switch (*q) {
		case '"':
			*o++ = '"';
			break;
		case '\\':
			*o++ = '\\';
			break;
		case '/':
			*o++ = '/';
			break;
		case 'b':
			*o++ = '\b';
			break;
		case 'f':
			*o++ = '\f';
			break;
		case 'n':
			*o++ = '\n';
			break;
		case 'r':
			*o++ = '\r';
			break;
		case 't':
			*o++ = '\t';
			break;
		case 'u': {
			unsigned cp, lo;

			if (in->p - q < 5 || json_hex4(q + 1, &cp))
				goto err;
			q += 4;
			if (cp >= 0xD800 && cp < 0xDC00) {
				if (in->p - q < 7 || q[1] != '\\' ||
				    q[2] != 'u' || json_hex4(q + 3, &lo) ||
				    lo < 0xDC00 || lo > 0xDFFF)
					goto err;
				q += 6;
				cp = 0x10000 + ((cp - 0xD800) << 10) +
				     (lo - 0xDC00);
			} else if (cp >= 0xDC00 && cp < 0xE000) {
				goto err;
			}
			if (cp == 0)
				goto err;
			o += json_utf8(o, cp);
			break;
		}
		default:
			goto err;
		}
	}
	*o = 0;
	in->p++;
	*out = s;
	return 0;
err:
	free(s);
	return -EINVAL;
}

static int json_push(struct json *j, struct json *v, char *key)
{
	if ((j->n & (j->n - 1)) == 0 || j->n == 0) {
		size_t ncap = j->n ? j->n * 2 : 4;
		struct json **ni = realloc(j->items, ncap * sizeof(*ni));

		if (!ni)
			return -ENOMEM;
		j->items = ni;
		if (j->type == JSON_OBJ) {
			char **nk = realloc(j->keys, ncap * sizeof(*nk));

			if (!nk)
				return -ENOMEM;
			j->keys = nk;
		}
	}
	j->items[j->n] = v;
	if (j->type == JSON_OBJ)
		j->keys[j->n] = key;
	j->n++;
	return 0;
}

static int json_number(struct json_in *in, struct json *j)
{
	const char *s = in->p;
	char buf[64];
	size_t n;
	bool frac = false;

	if (in->p < in->end && *in->p == '-')
		in->p++;
	if (in->p >= in->end || *in->p < '0' || *in->p > '9')
		return -EINVAL;
	while (in->p < in->end &&
	       ((*in->p >= '0' && *in->p <= '9') || *in->p == '.' ||
		*in->p == 'e' || *in->p == 'E' || *in->p == '+' ||
		*in->p == '-')) {
		if (*in->p == '.' || *in->p == 'e' || *in->p == 'E')
			frac = true;
		in->p++;
	}
	n = (size_t)(in->p - s);
	if (n >= sizeof(buf))
		return -EINVAL;
	memcpy(buf, s, n);
	buf[n] = 0;
	j->type = JSON_NUM;
	if (!frac) {
		char *end;

		errno = 0;
		j->i = strtoll(buf, &end, 10);
		if (errno || *end)
			return -EINVAL;
		j->is_int = true;
		j->num = (double)j->i;
	} else {
		char *end;

		j->num = strtod(buf, &end);
		if (*end)
			return -EINVAL;
	}
	return 0;
}

static int json_value(struct json_in *in, int depth, struct json **out)
{
	struct json *j;
	int rc = 0;

	if (depth > JSON_MAX_DEPTH)
		return -EINVAL;
	json_ws(in);
	if (in->p >= in->end)
		return -EINVAL;
	j = calloc(1, sizeof(*j));
	if (!j)
		return -ENOMEM;
	switch (*in->p) {
	case '{':
		j->type = JSON_OBJ;
		in->p++;
		json_ws(in);
		if (in->p < in->end && *in->p == '}') {
			in->p++;
			break;
		}
		for (;;) {
			struct json *v;
			char *key;

			json_ws(in);
			rc = json_string(in, &key);
			if (rc)
				goto err;
			json_ws(in);
			if (in->p >= in->end || *in->p != ':') {
				free(key);
				rc = -EINVAL;
				goto err;
			}
			in->p++;
			rc = json_value(in, depth + 1, &v);
			if (rc) {
				free(key);
				goto err;
			}
			rc = json_push(j, v, key);
			if (rc) {
				free(key);
				json_free(v);
				goto err;
			}
			json_ws(in);
			if (in->p < in->end && *in->p == ',') {
				in->p++;
				continue;
			}
			if (in->p < in->end && *in->p == '}') {
				in->p++;
				break;
			}
			rc = -EINVAL;
			goto err;
		}
		break;
	case '[':
		j->type = JSON_ARR;
		in->p++;
		json_ws(in);
		if (in->p < in->end && *in->p == ']') {
			in->p++;
			break;
		}
		for (;;) {
			struct json *v;

			rc = json_value(in, depth + 1, &v);
			if (rc)
				goto err;
			rc = json_push(j, v, NULL);
			if (rc) {
				json_free(v);
				goto err;
			}
			json_ws(in);
			if (in->p < in->end && *in->p == ',') {
				in->p++;
				continue;
			}
			if (in->p < in->end && *in->p == ']') {
				in->p++;
				break;
			}
			rc = -EINVAL;
			goto err;
		}
		break;
	case '"':
		j->type = JSON_STR;
		rc = json_string(in, &j->str);
		if (rc)
			goto err;
		break;
	case 't':
		if (in->end - in->p < 4 || memcmp(in->p, "true", 4))
			goto err_inval;
		in->p += 4;
		j->type = JSON_BOOL;
		j->b = true;
		break;
	case 'f':
		if (in->end - in->p < 5 || memcmp(in->p, "false", 5))
			goto err_inval;
		in->p += 5;
		j->type = JSON_BOOL;
		break;
	case 'n':
		if (in->end - in->p < 4 || memcmp(in->p, "null", 4))
			goto err_inval;
		in->p += 4;
		j->type = JSON_NULL;
		break;
	default:
		rc = json_number(in, j);
		if (rc)
			goto err;
	}
	*out = j;
	return 0;
err_inval:
	rc = -EINVAL;
err:
	json_free(j);
	return rc;
}

int json_parse(const char *text, size_t len, struct json **out)
{
	struct json_in in = { text, text + len };
	struct json *j;
	int rc;

	if (memchr(text, 0, len))
		return -EINVAL;
	rc = json_value(&in, 0, &j);
	if (rc)
		return rc;
	json_ws(&in);
	if (in.p != in.end) {
		json_free(j);
		return -EINVAL;
	}
	*out = j;
	return 0;
}

void json_free(struct json *j)
{
	size_t i;

	if (!j)
		return;
	for (i = 0; i < j->n; i++) {
		json_free(j->items[i]);
		if (j->keys)
			free(j->keys[i]);
	}
	free(j->items);
	free(j->keys);
	free(j->str);
	free(j);
}

const struct json *json_get(const struct json *obj, const char *key)
{
	size_t i;

	if (!obj || obj->type != JSON_OBJ)
		return NULL;
	for (i = 0; i < obj->n; i++) {
		if (strcmp(obj->keys[i], key) == 0)
			return obj->items[i];
	}
	return NULL;
}

const char *json_get_str(const struct json *obj, const char *key)
{
	const struct json *v = json_get(obj, key);

	return v && v->type == JSON_STR ? v->str : NULL;
}

bool json_get_int(const struct json *obj, const char *key, int64_t *out)
{
	const struct json *v = json_get(obj, key);

	if (!v || v->type != JSON_NUM || !v->is_int)
		return false;
	*out = v->i;
	return true;
}

bool json_get_bool(const struct json *obj, const char *key, bool *out)
{
	const struct json *v = json_get(obj, key);

	if (!v || v->type != JSON_BOOL)
		return false;
	*out = v->b;
	return true;
}

void json_buf_init(struct json_buf *b)
{
	memset(b, 0, sizeof(*b));
}

void json_buf_release(struct json_buf *b)
{
	free(b->p);
	json_buf_init(b);
}

static void json_buf_add(struct json_buf *b, const char *s, size_t n)
{
	if (b->err)
		return;
	if (b->len + n + 1 > b->cap) {
		size_t ncap = b->cap ? b->cap : 256;
		char *np;

		while (ncap < b->len + n + 1)
			ncap *= 2;
		np = realloc(b->p, ncap);
		if (!np) {
			b->err = -ENOMEM;
			return;
		}
		b->p = np;
		b->cap = ncap;
	}
	memcpy(b->p + b->len, s, n);
	b->len += n;
	b->p[b->len] = 0;
}

void json_buf_raw(struct json_buf *b, const char *s)
{
	json_buf_add(b, s, strlen(s));
}

void json_buf_printf(struct json_buf *b, const char *fmt, ...)
{
	char tmp[512];
	va_list ap;
	int n;

	va_start(ap, fmt);
	n = vsnprintf(tmp, sizeof(tmp), fmt, ap);
	va_end(ap);
	if (n < 0) {
		b->err = -EINVAL;
		return;
	}
	if ((size_t)n < sizeof(tmp)) {
		json_buf_add(b, tmp, (size_t)n);
		return;
	}
	{
		char *big = malloc((size_t)n + 1);

		if (!big) {
			b->err = -ENOMEM;
			return;
		}
		va_start(ap, fmt);
		vsnprintf(big, (size_t)n + 1, fmt, ap);
		va_end(ap);
		json_buf_add(b, big, (size_t)n);
		free(big);
	}
}

/* Bytes of the well-formed UTF-8 sequence at p (2 to 4; p[0] >= 0x80),
 * or 0: no overlong forms, surrogates or code points above U+10FFFF. */
static size_t json_utf8_seq(const unsigned char *p)
{
	size_t n, i;
	uint32_t c;

	if (p[0] >= 0xc2 && p[0] <= 0xdf)
		n = 2, c = p[0] & 0x1f;
	else if (p[0] >= 0xe0 && p[0] <= 0xef)
		n = 3, c = p[0] & 0x0f;
	else if (p[0] >= 0xf0 && p[0] <= 0xf4)
		n = 4, c = p[0] & 0x07;
	else
		return 0;
	for (i = 1; i < n; i++) {
		if ((p[i] & 0xc0) != 0x80)
			return 0;
		c = (c << 6) | (p[i] & 0x3f);
	}
	if ((n == 3 && (c < 0x800 || (c >= 0xd800 && c <= 0xdfff))) ||
	    (n == 4 && (c < 0x10000 || c > 0x10ffff)))
		return 0;
	return n;
}

/* A byte that is not part of well-formed UTF-8 (a name made before branch
 * names had to be, a path in a reason) becomes U+FFFD: JSON text is
 * Unicode, and strict parsers reject the whole reply otherwise. */
void json_buf_str(struct json_buf *b, const char *s)
{
	const unsigned char *p;

	json_buf_add(b, "\"", 1);
	for (p = (const unsigned char *)s; *p; p++) {
		char esc[8];
		size_t n;

		if (*p >= 0x80 && !b->raw_bytes) {
			n = json_utf8_seq(p);
			if (n) {
				json_buf_add(b, (const char *)p, n);
				p += n - 1;
			} else {
				json_buf_add(b, "\\ufffd", 6);
			}
			continue;
		}

		switch (*p) {
		case '"':
			json_buf_add(b, "\\\"", 2);
			break;
		case '\\':
			json_buf_add(b, "\\\\", 2);
			break;
		case '\n':
			json_buf_add(b, "\\n", 2);
			break;
		case '\r':
			json_buf_add(b, "\\r", 2);
			break;
		case '\t':
			json_buf_add(b, "\\t", 2);
			break;
		default:
			if (*p < 0x20 || *p == 0x7f) {
				snprintf(esc, sizeof(esc), "\\u%04x", *p);
				json_buf_add(b, esc, 6);
			} else {
				json_buf_add(b, (const char *)p, 1);
			}
		}
	}
	json_buf_add(b, "\"", 1);
}
