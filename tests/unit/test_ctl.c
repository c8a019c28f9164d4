/* SPDX-License-Identifier: MIT */
/*
 * test_ctl.c - the control protocol without a mount: the JSON reader and
 * writer, and bd_ctl_handle() over a real store in a temporary directory,
 * with the filesystem hooks replaced by a recording fake.
 */
#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <sched.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <cmocka.h>

#include "branchd/ctl.h"
#include "branchd/ctlproto.h"
#include "branchd/json.h"

struct fake_fs {
	bool busy;           /* every branch reports busy */
	int releasing;       /* files closed, their RELEASE still coming */
	int changed;         /* changed hook calls */
	char last_old[256];
	char last_new[256];
	bool may_create;
	int remove_rc;       /* > 0: may_remove answers -remove_rc */
	int removes;         /* may_remove calls */
	uid_t remove_owner;  /* owner_uid of the last one */
	size_t remove_ngroups;
	char def[256];
	int holds;           /* begin_change - end_change */
	bool refuse_fork;    /* check_fork refuses every parent */
	int refuse_after;    /* > 0: it refuses every call after this many */
	bool long_why;       /* its reason quotes a 4000-byte link target */
	int fork_checks;     /* check_fork calls */
	uint64_t fork_seq;   /* seq of the last check_fork */
	/* check_fork of a given seq (not the head) first creates this many
	 * files in the root of branch write_branch, as writes of other
	 * branches land while a reset goes on (> 0; needs write_store) */
	int write_on_check;
	bool delete_on_check; /* ... or deletes branch write_branch */
	struct store *write_store;
	uint64_t write_branch, write_dir;
};

struct ctx {
	char dir[64];
	struct store *s;
	struct bd_ctl *c;
	struct fake_fs ff;
};

static int ff_busy(void *p, void *probe, uint64_t b, const char *n, char *why,
		   size_t w)
{
	struct fake_fs *f = p;

	(void)probe;
	(void)b;
	(void)n;
	if (f->releasing) {
		snprintf(why, w, "branch has %d open files", f->releasing);
		return -EBUSY;
	}
	if (!f->busy)
		return 0;
	snprintf(why, w, "postmaster (pid 42) is running");
	return -EBUSY;
}

/* As fs_branch_hold: waits (bounded) for files being released. */
static int ff_begin(void *p, uint64_t b, char *why, size_t w)
{
	struct fake_fs *f = p;
	int rc;

	f->releasing = 0;
	rc = ff_busy(p, NULL, b, NULL, why, w);

	if (rc == 0)
		f->holds++;
	return rc;
}

static void ff_end(void *p, uint64_t b)
{
	struct fake_fs *f = p;

	(void)b;
	f->holds--;
}

static void ff_changed(void *p, uint64_t b, const char *o, const char *n)
{
	struct fake_fs *f = p;

	(void)b;
	f->changed++;
	snprintf(f->last_old, sizeof(f->last_old), "%s", o ? o : "");
	snprintf(f->last_new, sizeof(f->last_new), "%s", n ? n : "");
}

static int ff_may_create(void *p, uid_t u, gid_t g, const gid_t *groups,
			 size_t ngroups)
{
	struct fake_fs *f = p;

	(void)g;
	(void)groups;
	(void)ngroups;
	return u == 0 || f->may_create ? 0 : -EACCES;
}

/* As fs_root_may_remove over a sticky root owned by root, unless told
 * otherwise (remove_rc). */
static int ff_may_remove(void *p, uid_t u, gid_t g, const gid_t *groups,
			 size_t ngroups, uid_t owner)
{
	struct fake_fs *f = p;

	(void)g;
	(void)groups;
	f->removes++;
	f->remove_owner = owner;
	f->remove_ngroups = ngroups;
	if (f->remove_rc > 0)
		return -f->remove_rc;
	if (f->remove_rc < 0)
		return 0;
	return u == 0 || u == owner ? 0 : -EPERM;
}

static void ff_get_default(void *p, char *buf, size_t n)
{
	struct fake_fs *f = p;

	snprintf(buf, n, "%s", f->def);
}

static int ff_set_default(void *p, const char *name)
{
	struct fake_fs *f = p;

	snprintf(f->def, sizeof(f->def), "%s", name);
	return 0;
}

static int ff_check_fork(void *p, const struct store_branch_info *parent,
			 uint64_t seq, char *why, size_t w)
{
	struct fake_fs *f = p;

	f->fork_checks++;
	f->fork_seq = seq;
	if (f->delete_on_check) {
		f->delete_on_check = false;
		assert_int_equal(store_branch_delete(f->write_store,
						     f->write_branch),
				 0);
	}
	if (seq != STORE_SEQ_LATEST && f->write_on_check > 0) {
		struct store_attr a = { .mode = S_IFREG | 0600 };
		char fname[32];
		uint64_t ino;
		int i;

		for (i = 0; i < f->write_on_check; i++) {
			snprintf(fname, sizeof(fname), "w%d-%d", f->fork_checks,
				 i);
			assert_int_equal(store_create(f->write_store,
						      f->write_branch,
						      f->write_dir, fname, &a,
						      NULL, &ino, NULL),
					 0);
		}
	}
	if (!f->refuse_fork &&
	    !(f->refuse_after > 0 && f->fork_checks > f->refuse_after))
		return 0;
	if (f->long_why) {
		char target[4001];

		memset(target, 'x', 4000);
		target[0] = '/';
		target[4000] = '\0';
		snprintf(why, w, "its link pg_tblspc/1 leads to '%s' (END)",
			 target);
		return -EXDEV;
	}
	snprintf(why, w, "its tablespace link pg_tblspc/1 of '%s' leads out",
		 parent->name);
	return -EXDEV;
}

static int setup(void **state)
{
	struct store_config scfg = { .create = true, .cache_bytes = 8u << 20 };
	struct bd_ctl_config cc = { 0 };
	struct ctx *x = calloc(1, sizeof(*x));
	char sd[128], sock[128];

	assert_non_null(x);
	strcpy(x->dir, "/tmp/test_ctl.XXXXXX");
	assert_non_null(mkdtemp(x->dir));
	snprintf(sd, sizeof(sd), "%s/store", x->dir);
	snprintf(sock, sizeof(sock), "%s/ctl.sock", x->dir);
	assert_int_equal(store_open(sd, &scfg, &x->s), 0);
	strcpy(x->ff.def, "main");
	cc.store = x->s;
	cc.socket_path = sock;
	cc.store_dir = sd;
	cc.mountpoint = "/mnt/test";
	cc.daemon_uid = 0;
	cc.hooks.ctx = &x->ff;
	cc.hooks.busy = ff_busy;
	cc.hooks.begin_change = ff_begin;
	cc.hooks.end_change = ff_end;
	cc.hooks.changed = ff_changed;
	cc.hooks.may_create = ff_may_create;
	cc.hooks.may_remove = ff_may_remove;
	cc.hooks.get_default = ff_get_default;
	cc.hooks.set_default = ff_set_default;
	cc.hooks.check_fork = ff_check_fork;
	assert_int_equal(bd_ctl_open(&cc, &x->c), 0);
	*state = x;
	return 0;
}

static int teardown(void **state)
{
	struct ctx *x = *state;
	char cmd[128];

	bd_ctl_close(x->c);
	assert_int_equal(store_close(x->s), 0);
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", x->dir);
	assert_int_equal(system(cmd), 0);
	free(x);
	return 0;
}

/* Send one request; returns the parsed reply (caller frees). */
static struct json *call(struct ctx *x, uid_t uid, const char *req)
{
	struct json *j = NULL;
	char *reply = NULL;

	assert_int_equal(bd_ctl_handle(x->c, req, strlen(req), uid, uid, &reply),
			 0);
	assert_non_null(reply);
	assert_null(strchr(reply, '\n'));
	assert_int_equal(json_parse(reply, strlen(reply), &j), 0);
	free(reply);
	return j;
}

/* The exit status a request would give branchctl (0 for ok). */
static int status_of(struct ctx *x, uid_t uid, const char *req)
{
	struct json *j = call(x, uid, req);
	bool ok = false;
	int st;

	assert_true(json_get_bool(j, "ok", &ok));
	if (!ok)
		assert_non_null(json_get_str(j, "message"));
	st = ok ? 0 : bd_exit_of_code(json_get_str(j, "error"));
	json_free(j);
	return st;
}

static void test_ctl_json_roundtrip(void **state)
{
	const char *text = "{\"a\":[1,-2,3.5e2,\"x\\u00e9\\n\\ud83d\\ude00\"],"
			   "\"b\":{\"c\":true,\"d\":null},\"e\":\"\"}";
	struct json *j = NULL, *k = NULL;
	const struct json *a;
	struct json_buf b;
	int64_t v;

	(void)state;
	assert_int_equal(json_parse(text, strlen(text), &j), 0);
	a = json_get(j, "a");
	assert_non_null(a);
	assert_int_equal(a->type, JSON_ARR);
	assert_int_equal(a->n, 4);
	assert_true(a->items[1]->is_int);
	assert_int_equal(a->items[1]->i, -2);
	assert_false(a->items[2]->is_int);
	assert_true(a->items[2]->num == 350.0);
	assert_string_equal(a->items[3]->str, "x\xc3\xa9\n\xf0\x9f\x98\x80");
	assert_false(json_get_int(j, "e", &v));
	json_buf_init(&b);
	json_buf_str(&b, a->items[3]->str);
	assert_int_equal(json_parse(b.p, b.len, &k), 0);
	assert_string_equal(k->str, a->items[3]->str);
	json_buf_release(&b);
	json_free(k);
	json_free(j);
}

/* Bytes that are not well-formed UTF-8 go out as U+FFFD, so that a strict
 * parser takes the reply; well-formed sequences go out as they are. */
static void test_ctl_json_bad_utf8_replaced(void **state)
{
	static const struct {
		const char *in, *out;
	} cases[] = {
		{ "bad\xff", "bad\xef\xbf\xbd" },
		{ "\xc0\xafx", "\xef\xbf\xbd\xef\xbf\xbdx" }, /* overlong */
		{ "\xed\xa0\x80", "\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd" },
		{ "\xe2\x82", "\xef\xbf\xbd\xef\xbf\xbd" }, /* cut short */
		{ "\xf4\x90\x80\x80", "\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd" },
		{ "caf\xc3\xa9 \xe6\x97\xa5 \xf0\x9f\x98\x80",
		  "caf\xc3\xa9 \xe6\x97\xa5 \xf0\x9f\x98\x80" },
	};
	size_t i;

	(void)state;
	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct json_buf b;
		struct json *k = NULL;

		json_buf_init(&b);
		json_buf_str(&b, cases[i].in);
		assert_int_equal(json_parse(b.p, b.len, &k), 0);
		assert_string_equal(k->str, cases[i].out);
		json_buf_release(&b);
		json_free(k);
	}
	/* requests (raw_bytes) carry a name as given, which the daemon's
	 * parser takes back unchanged: a branch of an older store whose name
	 * is not UTF-8 can still be named */
	{
		struct json_buf b;
		struct json *k = NULL;

		json_buf_init(&b);
		b.raw_bytes = true;
		json_buf_str(&b, "old\xff\xc0name");
		assert_int_equal(json_parse(b.p, b.len, &k), 0);
		assert_string_equal(k->str, "old\xff\xc0name");
		json_buf_release(&b);
		json_free(k);
	}
}

static void test_ctl_json_rejects_malformed(void **state)
{
	const char *bad[] = {
		"", "{", "}", "{\"a\"}", "{\"a\":}", "[1,]", "[1 2]", "\"\\x\"",
		"\"\\u12\"", "\"\\ud800\"", "\"\\u0000\"", "tru", "nul", "01x",
		"{\"a\":1} x", "\"a\nb\"", "1e999999999999999999999",
	};
	char deep[64];
	struct json *j;
	size_t i;

	(void)state;
	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		j = NULL;
		if (json_parse(bad[i], strlen(bad[i]), &j) == 0) {
			/* The huge exponent parses as a number (inf); all
			 * others must be refused. */
			assert_string_equal(bad[i], "1e999999999999999999999");
			json_free(j);
		}
	}
	memset(deep, '[', sizeof(deep));
	assert_int_equal(json_parse(deep, sizeof(deep), &j), -EINVAL);
	assert_int_equal(json_parse("{\"a\":\0}", 7, &j), -EINVAL);
}

static void test_ctl_malformed_requests_get_error_replies(void **state)
{
	struct ctx *x = *state;

	assert_int_equal(status_of(x, 0, "not json"), BD_EXIT_INVALID);
	assert_int_equal(status_of(x, 0, "[]"), BD_EXIT_INVALID);
	assert_int_equal(status_of(x, 0, "{}"), BD_EXIT_INVALID);
	assert_int_equal(status_of(x, 0, "{\"cmd\":\"explode\"}"),
			 BD_EXIT_INVALID);
	assert_int_equal(status_of(x, 0, "{\"cmd\":42}"), BD_EXIT_INVALID);
	assert_int_equal(status_of(x, 0, "{\"cmd\":\"info\"}"), BD_EXIT_INVALID);
	assert_int_equal(status_of(x, 0, "{\"cmd\":\"status\"}"), 0);
	/* A field of the wrong type is refused, not taken as absent (a
	 * branch of now instead of the moment asked for). */
	static const char *const wrong_type[] = {
		"{\"cmd\":\"create\",\"name\":\"a\",\"at_seq\":\"5\"}",
		"{\"cmd\":\"create\",\"name\":\"a\",\"at_ns\":1e400}",
		"{\"cmd\":\"create\",\"name\":\"a\",\"at_ns\":1.5}",
		"{\"cmd\":\"create\",\"name\":\"a\",\"at_seq\":null}",
		"{\"cmd\":\"create\",\"name\":\"a\",\"empty\":\"yes\"}",
		"{\"cmd\":\"create\",\"name\":\"a\",\"checkpoint\":0}",
		"{\"cmd\":\"create\",\"name\":\"a\",\"from\":[\"main\"]}",
		"{\"cmd\":\"retention\",\"seconds\":\"60\"}",
	};
	size_t i;

	assert_int_equal(status_of(x, 0, "{\"cmd\":\"create\",\"name\":\"main\"}"), 0);
	for (i = 0; i < sizeof(wrong_type) / sizeof(wrong_type[0]); i++)
		assert_int_equal(status_of(x, 0, wrong_type[i]), BD_EXIT_INVALID);
	/* and none of them made the branch */
	assert_int_equal(status_of(x, 0, "{\"cmd\":\"info\",\"name\":\"a\"}"),
			 BD_EXIT_NOT_FOUND);
	/* A field given twice is refused, not the first (or last) taken:
	 * as branchctl refuses an option given twice. */
	{
		static const char *const twice[] = {
			"{\"cmd\":\"create\",\"name\":\"a\",\"from\":\"main\",\"from\":\"b\"}",
			"{\"cmd\":\"create\",\"name\":\"a\",\"name\":\"b\"}",
			"{\"cmd\":\"create\",\"name\":\"a\",\"at_seq\":1,\"at_seq\":2}",
			"{\"cmd\":\"create\",\"cmd\":\"delete\",\"name\":\"main\"}",
			"{\"cmd\":\"rename\",\"name\":\"main\",\"new_name\":\"a\",\"new_name\":\"b\"}",
		};
		struct json *j;

		for (i = 0; i < sizeof(twice) / sizeof(twice[0]); i++) {
			j = call(x, 0, twice[i]);
			assert_int_equal(
				bd_exit_of_code(json_get_str(j, "error")),
				BD_EXIT_INVALID);
			assert_non_null(strstr(json_get_str(j, "message"),
					       "given twice"));
			json_free(j);
		}
		assert_int_equal(status_of(x, 0, "{\"cmd\":\"info\",\"name\":\"a\"}"),
				 BD_EXIT_NOT_FOUND);
		assert_int_equal(status_of(x, 0, "{\"cmd\":\"info\",\"name\":\"main\"}"),
				 0);
		/* Unknown keys are ignored, twice or not. */
		assert_int_equal(status_of(x, 0, "{\"cmd\":\"status\",\"x\":1,\"x\":2}"),
				 0);
	}
}

static void test_ctl_create_list_info_rename_delete(void **state)
{
	struct ctx *x = *state;
	const struct json *arr, *b;
	struct json *j;

	/* The first branch of an empty store is empty. */
	assert_int_equal(status_of(x, 0, "{\"cmd\":\"create\",\"name\":\"main\"}"), 0);
	assert_int_equal(status_of(x, 0, "{\"cmd\":\"create\",\"name\":\"pr-1\"}"), 0);
	assert_int_equal(status_of(x, 0, "{\"cmd\":\"create\",\"name\":\"pr-1\"}"),
			 BD_EXIT_EXISTS);
	assert_int_equal(status_of(x, 0, "{\"cmd\":\"create\",\"name\":\"pr-2\",\"from\":\"nope\"}"),
			 BD_EXIT_NOT_FOUND);
	j = call(x, 0, "{\"cmd\":\"list\"}");
	arr = json_get(j, "branches");
	assert_non_null(arr);
	assert_int_equal(arr->n, 2);
	b = arr->items[1];
	assert_string_equal(json_get_str(b, "name"), "pr-1");
	assert_string_equal(json_get_str(b, "parent"), "main");
	assert_non_null(json_get_str(b, "created"));
	json_free(j);

	assert_int_equal(status_of(x, 0, "{\"cmd\":\"rename\",\"name\":\"pr-1\",\"new_name\":\"main\"}"),
			 BD_EXIT_EXISTS);
	assert_int_equal(status_of(x, 0, "{\"cmd\":\"rename\",\"name\":\"pr-1\",\"new_name\":\"pr-9\"}"), 0);
	assert_string_equal(x->ff.last_old, "pr-1");
	assert_string_equal(x->ff.last_new, "pr-9");
	assert_int_equal(status_of(x, 0, "{\"cmd\":\"info\",\"name\":\"pr-1\"}"),
			 BD_EXIT_NOT_FOUND);
	assert_int_equal(status_of(x, 0, "{\"cmd\":\"delete\",\"name\":\"main\"}"),
			 BD_EXIT_HAS_CHILDREN);
	assert_int_equal(status_of(x, 0, "{\"cmd\":\"delete\",\"name\":\"pr-9\"}"), 0);
	assert_int_equal(x->ff.holds, 0);
	assert_int_equal(status_of(x, 0, "{\"cmd\":\"delete\",\"name\":\"main\"}"), 0);
}

/* A name no branch can have, given to a command that looks a branch up
 * (info, delete, rename, reset, create --from), is invalid (exit 10) as
 * it is for create, not "no such branch" (exit 4): a script that treats 4
 * from delete as "already gone" must not take an empty variable for
 * success.  A branch that exists is still found. */
static void test_ctl_lookup_of_bad_name_is_invalid(void **state)
{
	static const char *const reqs[] = {
		"{\"cmd\":\"info\",\"name\":\"\"}",
		"{\"cmd\":\"info\",\"name\":\"a/b\"}",
		"{\"cmd\":\"delete\",\"name\":\"\"}",
		"{\"cmd\":\"delete\",\"name\":\".\"}",
		"{\"cmd\":\"reset\",\"name\":\"..\"}",
		"{\"cmd\":\"rename\",\"name\":\"\",\"new_name\":\"x\"}",
		"{\"cmd\":\"create\",\"name\":\"x\",\"from\":\"\"}",
		"{\"cmd\":\"create\",\"name\":\"x\",\"from\":\"a/b\"}",
	};
	struct ctx *x = *state;
	size_t i;

	assert_int_equal(status_of(x, 0, "{\"cmd\":\"create\",\"name\":\"main\"}"), 0);
	for (i = 0; i < sizeof(reqs) / sizeof(reqs[0]); i++) {
		struct json *j = call(x, 0, reqs[i]);

		assert_int_equal(bd_exit_of_code(json_get_str(j, "error")),
				 BD_EXIT_INVALID);
		assert_non_null(strstr(json_get_str(j, "message"),
				       "invalid branch name"));
		json_free(j);
	}
	assert_int_equal(status_of(x, 0, "{\"cmd\":\"info\",\"name\":\"nosuch\"}"),
			 BD_EXIT_NOT_FOUND);
	assert_int_equal(status_of(x, 0, "{\"cmd\":\"info\",\"name\":\"main\"}"), 0);
}

/* default says whether a branch has the default parent's name: one
 * deleted after it was set leaves mkdir failing with ENOENT. */
static void test_ctl_default_says_if_gone(void **state)
{
	struct ctx *x = *state;
	struct json *j;
	bool exists = false;

	assert_int_equal(status_of(x, 0, "{\"cmd\":\"create\",\"name\":\"main\"}"), 0);
	assert_int_equal(status_of(x, 0, "{\"cmd\":\"create\",\"name\":\"d2\",\"from\":\"main\"}"), 0);
	j = call(x, 0, "{\"cmd\":\"default\",\"name\":\"d2\"}");
	assert_true(json_get_bool(j, "exists", &exists));
	assert_true(exists);
	json_free(j);
	assert_int_equal(status_of(x, 0, "{\"cmd\":\"delete\",\"name\":\"d2\"}"), 0);
	j = call(x, 0, "{\"cmd\":\"default\"}");
	assert_string_equal(json_get_str(j, "default"), "d2");
	assert_true(json_get_bool(j, "exists", &exists));
	assert_false(exists);
	json_free(j);
}

/* branchctl --json reports a failure of its own with the code of its exit
 * status: each code maps back to the status it came from. */
static void test_ctl_code_of_exit_roundtrip(void **state)
{
	int st;

	(void)state;
	for (st = BD_EXIT_ERROR; st <= BD_EXIT_INVALID; st++)
		assert_int_equal(bd_exit_of_code(bd_code_of_exit(st)), st);
	assert_string_equal(bd_code_of_exit(BD_EXIT_USAGE), "usage");
	assert_string_equal(bd_code_of_exit(BD_EXIT_NO_DAEMON), "no_daemon");
	assert_string_equal(bd_code_of_exit(BD_EXIT_ERROR), "error");
	assert_string_equal(bd_code_of_exit(99), "error");
}

static void test_ctl_bad_names_are_invalid(void **state)
{
	struct ctx *x = *state;
	char req[512], longname[300];

	assert_int_equal(status_of(x, 0, "{\"cmd\":\"create\",\"name\":\"\"}"),
			 BD_EXIT_INVALID);
	assert_int_equal(status_of(x, 0, "{\"cmd\":\"create\",\"name\":\"..\"}"),
			 BD_EXIT_INVALID);
	assert_int_equal(status_of(x, 0, "{\"cmd\":\"create\",\"name\":\"a/b\"}"),
			 BD_EXIT_INVALID);
	assert_int_equal(status_of(x, 0, "{\"cmd\":\"create\",\"name\":\"a\\tb\"}"),
			 BD_EXIT_INVALID);
	memset(longname, 'n', 256);
	longname[256] = 0;
	snprintf(req, sizeof(req), "{\"cmd\":\"create\",\"name\":\"%s\"}",
		 longname);
	assert_int_equal(status_of(x, 0, req), BD_EXIT_INVALID);
	/* C1 controls (U+009B is a terminal's CSI), and bytes that are not
	 * UTF-8, which the store refuses too: the reply says the name is the
	 * trouble (it used to say that seq 2^64-1 was in the future). */
	{
		static const char *const bad[] = {
			"{\"cmd\":\"create\",\"name\":\"a\\u009b31m\"}",
			"{\"cmd\":\"create\",\"name\":\"\\u0085\"}",
			"{\"cmd\":\"create\",\"name\":\"bad\xff\"}",
			"{\"cmd\":\"create\",\"name\":\"bad\xc3\"}",
			"{\"cmd\":\"rename\",\"name\":\"main\",\"new_name\":\"\\u009b\"}",
			/* U+202E RIGHT-TO-LEFT OVERRIDE, U+2069 */
			"{\"cmd\":\"create\",\"name\":\"pr-\\u202egnp\"}",
			"{\"cmd\":\"create\",\"name\":\"x\\u2069\"}",
		};
		size_t i;

		assert_int_equal(status_of(x, 0, "{\"cmd\":\"create\",\"name\":\"main\"}"), 0);
		for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
			struct json *j = call(x, 0, bad[i]);

			assert_int_equal(
				bd_exit_of_code(json_get_str(j, "error")),
				BD_EXIT_INVALID);
			assert_non_null(strstr(json_get_str(j, "message"),
					       "invalid branch name"));
			json_free(j);
		}
		/* U+00A0, the first code point after C1, is a name. */
		assert_int_equal(status_of(x, 0, "{\"cmd\":\"create\",\"name\":\"nb\\u00a0sp\"}"),
				 0);
	}
}

static void test_ctl_busy_and_permissions(void **state)
{
	struct ctx *x = *state;

	assert_int_equal(status_of(x, 0, "{\"cmd\":\"create\",\"name\":\"main\"}"), 0);
	/* uid 1000 may not create unless the root allows it. */
	assert_int_equal(status_of(x, 1000, "{\"cmd\":\"create\",\"name\":\"u\"}"),
			 BD_EXIT_PERMISSION);
	x->ff.may_create = true;
	assert_int_equal(status_of(x, 1000, "{\"cmd\":\"create\",\"name\":\"u\"}"), 0);
	/* Owners and root may change a branch; others may not. */
	assert_int_equal(status_of(x, 1001, "{\"cmd\":\"delete\",\"name\":\"u\"}"),
			 BD_EXIT_PERMISSION);
	assert_int_equal(status_of(x, 1000, "{\"cmd\":\"reset\",\"name\":\"u\"}"), 0);
	x->ff.busy = true;
	assert_int_equal(status_of(x, 1000, "{\"cmd\":\"delete\",\"name\":\"u\"}"),
			 BD_EXIT_BUSY);
	assert_int_equal(status_of(x, 0, "{\"cmd\":\"rename\",\"name\":\"u\",\"new_name\":\"v\"}"),
			 BD_EXIT_BUSY);
	assert_int_equal(status_of(x, 1000, "{\"cmd\":\"reset\",\"name\":\"u\"}"),
			 BD_EXIT_BUSY);
	x->ff.busy = false;
	/* A file whose close(2) returned but whose RELEASE has not arrived
	 * (the kernel sends it afterwards): reset waits for it as delete
	 * and rename do (its busy probe refused it). */
	x->ff.releasing = 1;
	assert_int_equal(status_of(x, 1000, "{\"cmd\":\"reset\",\"name\":\"u\"}"), 0);
	assert_int_equal(x->ff.holds, 0);
	x->ff.releasing = 1;
	assert_int_equal(status_of(x, 0, "{\"cmd\":\"rename\",\"name\":\"u\",\"new_name\":\"v\"}"),
			 0);
	x->ff.releasing = 1;
	assert_int_equal(status_of(x, 0, "{\"cmd\":\"rename\",\"name\":\"v\",\"new_name\":\"u\"}"),
			 0);
	x->ff.releasing = 1;
	assert_int_equal(status_of(x, 1000, "{\"cmd\":\"delete\",\"name\":\"u\"}"), 0);
	assert_int_equal(x->ff.holds, 0);
	/* Store-wide settings are root's. */
	assert_int_equal(status_of(x, 1000, "{\"cmd\":\"gc\"}"), BD_EXIT_PERMISSION);
	assert_int_equal(status_of(x, 1000, "{\"cmd\":\"retention\",\"seconds\":60}"),
			 BD_EXIT_PERMISSION);
	assert_int_equal(status_of(x, 0, "{\"cmd\":\"retention\",\"seconds\":60}"), 0);
	assert_int_equal(store_get_retention(x->s), 60);
	assert_int_equal(status_of(x, 1000, "{\"cmd\":\"default\",\"name\":\"x\"}"),
			 BD_EXIT_PERMISSION);
	assert_int_equal(status_of(x, 0, "{\"cmd\":\"default\",\"name\":\"x\"}"),
			 BD_EXIT_NOT_FOUND);
	assert_string_equal(x->ff.def, "main");
	assert_int_equal(status_of(x, 0, "{\"cmd\":\"create\",\"name\":\"x\"}"), 0);
	assert_int_equal(status_of(x, 0, "{\"cmd\":\"default\",\"name\":\"x\"}"), 0);
	assert_string_equal(x->ff.def, "x");
}

/* delete, rename and reset ask the filesystem's rule for rmdir and mv in
 * the branch root (may_remove), with the branch's creator and the
 * caller's groups, and take its answer: a non-owner where the root is not
 * sticky may, an owner without write permission on the root may not. */
static void test_ctl_changes_follow_may_remove(void **state)
{
	struct ctx *x = *state;
	static const gid_t groups[] = { 60200, 60201 };
	static const char *const reqs[] = {
		"{\"cmd\":\"rename\",\"name\":\"u\",\"new_name\":\"v\"}",
		"{\"cmd\":\"reset\",\"name\":\"u\"}",
		"{\"cmd\":\"delete\",\"name\":\"u\"}",
	};
	struct json *j;
	char *reply = NULL;
	size_t i;

	assert_int_equal(status_of(x, 0, "{\"cmd\":\"create\",\"name\":\"main\"}"), 0);
	x->ff.may_create = true;
	for (i = 0; i < 3; i++) {
		/* The owner, refused (no write permission on the root). */
		assert_int_equal(status_of(x, 1000, "{\"cmd\":\"create\",\"name\":\"u\"}"),
				 i == 0 ? 0 : BD_EXIT_EXISTS);
		x->ff.remove_rc = EACCES;
		x->ff.removes = 0;
		j = call(x, 1000, reqs[i]);
		assert_int_equal(bd_exit_of_code(json_get_str(j, "error")),
				 BD_EXIT_PERMISSION);
		assert_non_null(strstr(json_get_str(j, "message"),
				       "no write permission"));
		json_free(j);
		assert_int_equal(x->ff.removes, 1);
		assert_int_equal(x->ff.remove_owner, 1000);
		assert_int_equal(x->ff.holds, 0);
		/* Another uid, allowed (a root that is not sticky), with its
		 * groups passed on. */
		x->ff.remove_rc = -1;
		assert_int_equal(bd_ctl_handle_groups(x->c, reqs[i],
						      strlen(reqs[i]), 1001,
						      1001, groups, 2, &reply),
				 0);
		assert_non_null(strstr(reply, "\"ok\":true"));
		free(reply);
		reply = NULL;
		assert_int_equal(x->ff.remove_ngroups, 2);
		assert_int_equal(x->ff.remove_owner, 1000);
		x->ff.remove_rc = 0;
		if (i == 0) /* renamed: back to u */
			assert_int_equal(status_of(x, 0, "{\"cmd\":\"rename\",\"name\":\"v\",\"new_name\":\"u\"}"),
					 0);
	}
	assert_int_equal(status_of(x, 0, "{\"cmd\":\"info\",\"name\":\"u\"}"),
			 BD_EXIT_NOT_FOUND);
}

/* The tablespace rule (check_fork) is asked before create, with or
 * without a time, and before reset; a refusal names the reason, makes
 * nothing and changes nothing. */
static void test_ctl_check_fork_refuses_create_and_reset(void **state)
{
	struct ctx *x = *state;
	struct store_branch_info bi;
	const char *msg;
	char req[128];
	struct json *j;
	bool ok = true;
	uint64_t seq;
	int changed, checks;

	/* An empty store's first branch has no parent to check. */
	assert_int_equal(status_of(x, 0, "{\"cmd\":\"create\",\"name\":\"main\"}"), 0);
	assert_int_equal(x->ff.fork_checks, 0);
	assert_int_equal(status_of(x, 0, "{\"cmd\":\"create\",\"name\":\"pr-1\"}"), 0);
	/* before (the head) and after (the tree pr-1 got) */
	assert_int_equal(x->ff.fork_checks, 2);
	assert_int_equal(store_branch_lookup(x->s, "pr-1", &bi), 0);
	assert_true(x->ff.fork_seq == bi.fork_seq);

	x->ff.refuse_fork = true;
	/* a taken name is the first thing a create reports */
	j = call(x, 0, "{\"cmd\":\"create\",\"name\":\"pr-1\"}");
	assert_string_equal(json_get_str(j, "message"),
			    "cannot create branch 'pr-1': name taken");
	json_free(j);
	changed = x->ff.changed;
	j = call(x, 0, "{\"cmd\":\"create\",\"name\":\"pr-2\"}");
	assert_true(json_get_bool(j, "ok", &ok));
	assert_false(ok);
	msg = json_get_str(j, "message");
	assert_non_null(msg);
	assert_non_null(strstr(msg, "cannot create branch 'pr-2' of 'main': "
				    "its tablespace link"));
	json_free(j);
	assert_int_equal(store_branch_lookup(x->s, "pr-2", &bi), -ENOENT);

	seq = store_seq_now(x->s);
	snprintf(req, sizeof(req),
		 "{\"cmd\":\"create\",\"name\":\"pr-3\",\"at_seq\":%llu}",
		 (unsigned long long)seq);
	assert_int_equal(status_of(x, 0, req), BD_EXIT_ERROR);
	assert_true(x->ff.fork_seq == seq);
	assert_int_equal(store_branch_lookup(x->s, "pr-3", &bi), -ENOENT);

	j = call(x, 0, "{\"cmd\":\"reset\",\"name\":\"pr-1\"}");
	assert_true(json_get_bool(j, "ok", &ok));
	assert_false(ok);
	assert_non_null(strstr(json_get_str(j, "message"),
			       "cannot reset branch 'pr-1' of 'main'"));
	json_free(j);
	assert_int_equal(x->ff.changed, changed);
	assert_int_equal(x->ff.holds, 0);
	assert_int_equal(x->ff.fork_checks, 5);

	x->ff.refuse_fork = false;
	assert_int_equal(status_of(x, 0, "{\"cmd\":\"create\",\"name\":\"pr-2\"}"), 0);
	assert_int_equal(status_of(x, 0, "{\"cmd\":\"reset\",\"name\":\"pr-1\"}"), 0);
	/* the last check, with pr-1 held, was of the very state pr-1 was
	 * reset to (the build before checked the head, then reset to a
	 * later one) */
	assert_int_equal(store_branch_lookup(x->s, "pr-1", &bi), 0);
	assert_true(x->ff.fork_seq == bi.fork_seq);
	/* a past moment cannot change: checked once, at that seq */
	checks = x->ff.fork_checks;
	assert_int_equal(status_of(x, 0, req), 0);
	assert_int_equal(x->ff.fork_checks, checks + 1);
	assert_true(x->ff.fork_seq == seq);
}

/* A link made out of the tree after the first check (while the parent
 * was checkpointed) is caught by the check of the tree the new branch got:
 * the create fails with the reason and the branch is gone again. */
static void test_ctl_check_fork_after_create_drops_branch(void **state)
{
	struct ctx *x = *state;
	struct store_branch_info bi;
	const char *msg;
	struct json *j;
	uint64_t seq;

	assert_int_equal(status_of(x, 0, "{\"cmd\":\"create\",\"name\":\"main\"}"), 0);
	x->ff.refuse_after = 1;
	seq = store_seq_now(x->s);
	j = call(x, 0, "{\"cmd\":\"create\",\"name\":\"pr-1\"}");
	assert_string_equal(json_get_str(j, "error"), "error");
	msg = json_get_str(j, "message");
	assert_non_null(msg);
	assert_non_null(strstr(msg, "cannot create branch 'pr-1' of 'main': "
				    "its tablespace link"));
	json_free(j);
	assert_int_equal(x->ff.fork_checks, 2);
	assert_true(x->ff.fork_seq != STORE_SEQ_LATEST);
	assert_true(x->ff.fork_seq >= seq);
	assert_int_equal(store_branch_lookup(x->s, "pr-1", &bi), -ENOENT);
	assert_string_equal(x->ff.last_old, "pr-1");
	assert_string_equal(x->ff.last_new, "");
	/* the name is free again */
	x->ff.refuse_after = 0;
	assert_int_equal(status_of(x, 0, "{\"cmd\":\"create\",\"name\":\"pr-1\"}"), 0);
	assert_int_equal(store_branch_lookup(x->s, "pr-1", &bi), 0);
}

/* A reply's message is never cut: a reason quoting a 4000-byte link
 * target comes back whole. */
static void test_ctl_long_reason_whole(void **state)
{
	struct ctx *x = *state;
	const char *msg;
	struct json *j;

	assert_int_equal(status_of(x, 0, "{\"cmd\":\"create\",\"name\":\"main\"}"), 0);
	x->ff.refuse_fork = true;
	x->ff.long_why = true;
	j = call(x, 0, "{\"cmd\":\"create\",\"name\":\"pr-1\"}");
	msg = json_get_str(j, "message");
	assert_non_null(msg);
	assert_true(strlen(msg) > 4000);
	assert_non_null(strstr(msg, "cannot create branch 'pr-1' of 'main': "));
	assert_non_null(strstr(msg, "xxx' (END)"));
	json_free(j);
}

/* create with "empty": a branch with no parent and an empty root owned by
 * the caller, also when the store has branches; not with a parent or a
 * moment. */
static void test_ctl_create_empty(void **state)
{
	struct ctx *x = *state;
	struct store_attr a = { .mode = S_IFREG | 0600 }, got;
	struct store_branch_info bi;
	struct store_dirent *ents = NULL;
	size_t n = 7;
	uint64_t ino;
	struct json *j;

	assert_int_equal(status_of(x, 0, "{\"cmd\":\"create\",\"name\":\"main\"}"), 0);
	assert_int_equal(store_branch_lookup(x->s, "main", &bi), 0);
	assert_int_equal(store_create(x->s, bi.id, bi.root_ino, "PG_VERSION", &a,
				      NULL, &ino, &got),
			 0);
	x->ff.may_create = true;
	j = call(x, 1000, "{\"cmd\":\"create\",\"name\":\"fresh\",\"empty\":true}");
	assert_string_equal(json_get_str(json_get(j, "branch"), "name"), "fresh");
	assert_null(json_get_str(json_get(j, "branch"), "parent"));
	json_free(j);
	assert_int_equal(store_branch_lookup(x->s, "fresh", &bi), 0);
	assert_true(bi.parent_id == 0);
	assert_int_equal(bi.owner_uid, 1000);
	assert_int_equal(store_readdir(x->s, bi.id, STORE_SEQ_LATEST, bi.root_ino,
				       &ents, &n),
			 0);
	assert_int_equal(n, 0);
	free(ents);
	assert_int_equal(store_getattr(x->s, bi.id, STORE_SEQ_LATEST, bi.root_ino,
				       &got),
			 0);
	assert_int_equal(got.uid, 1000);
	assert_int_equal(got.mode, S_IFDIR | 0700);
	/* main keeps its file; an empty branch has nothing to reset to */
	assert_int_equal(store_branch_lookup(x->s, "main", &bi), 0);
	assert_int_equal(store_lookup(x->s, bi.id, STORE_SEQ_LATEST, bi.root_ino,
				      "PG_VERSION", &ino),
			 0);
	assert_int_equal(status_of(x, 1000, "{\"cmd\":\"reset\",\"name\":\"fresh\"}"),
			 BD_EXIT_INVALID);
	assert_int_equal(status_of(x, 0, "{\"cmd\":\"create\",\"name\":\"e2\",\"empty\":true,\"from\":\"main\"}"),
			 BD_EXIT_INVALID);
	assert_int_equal(status_of(x, 0, "{\"cmd\":\"create\",\"name\":\"e2\",\"empty\":true,\"at_seq\":1}"),
			 BD_EXIT_INVALID);
	assert_int_equal(store_branch_lookup(x->s, "e2", &bi), -ENOENT);
	assert_int_equal(status_of(x, 0, "{\"cmd\":\"create\",\"name\":\"fresh\",\"empty\":true}"),
			 BD_EXIT_EXISTS);
}

static void test_ctl_time_outside_retention_names_oldest(void **state)
{
	struct ctx *x = *state;
	struct json *j;

	assert_int_equal(status_of(x, 0, "{\"cmd\":\"create\",\"name\":\"main\"}"), 0);
	j = call(x, 0, "{\"cmd\":\"create\",\"name\":\"old\",\"at_ns\":946684800000000000}");
	assert_string_equal(json_get_str(j, "error"), "out_of_range");
	assert_non_null(strstr(json_get_str(j, "message"), "retains nothing older than"));
	json_free(j);
	assert_int_equal(status_of(x, 0, "{\"cmd\":\"create\",\"name\":\"f\",\"at_seq\":999999999}"),
			 BD_EXIT_INVALID);
	assert_int_equal(status_of(x, 0, "{\"cmd\":\"create\",\"name\":\"f\",\"at_ns\":4000000000000000000}"),
			 BD_EXIT_INVALID);
}

/* A taken name is exit 5 whatever moment or parent comes with it: a job
 * that makes "before-migration --at T" again after T left the window (or
 * with a parent gone) is told the branch exists, not that T is not
 * retained (exit 8) or in the future (10), or that there is no parent (4). */
static void test_ctl_taken_name_first(void **state)
{
	struct ctx *x = *state;
	struct store_branch_info bi;
	char req[256];

	assert_int_equal(status_of(x, 0, "{\"cmd\":\"create\",\"name\":\"main\"}"), 0);
	assert_int_equal(status_of(x, 0, "{\"cmd\":\"create\",\"name\":\"kid\",\"from\":\"main\"}"), 0);
	assert_int_equal(store_branch_lookup(x->s, "kid", &bi), 0);
	assert_int_equal(status_of(x, 0, "{\"cmd\":\"create\",\"name\":\"kid\",\"from\":\"main\",\"at_ns\":946684800000000000}"),
			 BD_EXIT_EXISTS);
	assert_int_equal(status_of(x, 0, "{\"cmd\":\"create\",\"name\":\"kid\",\"at_ns\":4000000000000000000}"),
			 BD_EXIT_EXISTS);
	assert_int_equal(status_of(x, 0, "{\"cmd\":\"create\",\"name\":\"kid\",\"at_seq\":999999999}"),
			 BD_EXIT_EXISTS);
	assert_int_equal(status_of(x, 0, "{\"cmd\":\"create\",\"name\":\"kid\",\"from\":\"gone\",\"at_seq\":1}"),
			 BD_EXIT_EXISTS);
	snprintf(req, sizeof(req),
		 "{\"cmd\":\"create\",\"name\":\"main\",\"from\":\"kid\",\"at_seq\":%" PRIu64 "}",
		 bi.fork_seq);
	assert_int_equal(status_of(x, 0, req), BD_EXIT_EXISTS);
	/* a free name still gets the moment's own refusal */
	assert_int_equal(status_of(x, 0, "{\"cmd\":\"create\",\"name\":\"new\",\"from\":\"main\",\"at_ns\":946684800000000000}"),
			 BD_EXIT_OUT_OF_RANGE);
	assert_int_equal(status_of(x, 0, "{\"cmd\":\"create\",\"name\":\"new\",\"from\":\"gone\"}"),
			 BD_EXIT_NOT_FOUND);
}

/* A parent deleted while a branch of it is being made (between the
 * lookup of its name and the create): exit 4 naming the parent, as when
 * it was gone before (it said "No such file or directory"). */
static void test_ctl_parent_deleted_meanwhile(void **state)
{
	struct ctx *x = *state;
	struct store_branch_info bi;
	struct json *j;

	assert_int_equal(status_of(x, 0, "{\"cmd\":\"create\",\"name\":\"main\"}"), 0);
	assert_int_equal(status_of(x, 0, "{\"cmd\":\"create\",\"name\":\"p\",\"from\":\"main\"}"), 0);
	assert_int_equal(store_branch_lookup(x->s, "p", &bi), 0);
	x->ff.delete_on_check = true;
	x->ff.write_store = x->s;
	x->ff.write_branch = bi.id;
	j = call(x, 0, "{\"cmd\":\"create\",\"name\":\"c\",\"from\":\"p\"}");
	assert_false(x->ff.delete_on_check);
	assert_string_equal(json_get_str(j, "error"), "not_found");
	assert_non_null(strstr(json_get_str(j, "message"),
			       "cannot create branch 'c': no such parent branch 'p'"));
	json_free(j);
	assert_int_not_equal(store_branch_lookup(x->s, "c", &bi), 0);
}

/* A retention the store does not take names the range it takes (it said
 * only "bad retention 9223372037 s"), and changes nothing. */
static void test_ctl_bad_retention_names_range(void **state)
{
	struct ctx *x = *state;
	struct json *j;

	assert_int_equal(status_of(x, 0, "{\"cmd\":\"retention\",\"seconds\":600}"), 0);
	j = call(x, 0, "{\"cmd\":\"retention\",\"seconds\":9223372037}");
	assert_string_equal(json_get_str(j, "error"), "invalid");
	assert_non_null(strstr(json_get_str(j, "message"),
			       "bad retention 9223372037 s: the store takes 1 to 9223372036 s"));
	json_free(j);
	j = call(x, 0, "{\"cmd\":\"retention\",\"seconds\":0}");
	assert_string_equal(json_get_str(j, "error"), "invalid");
	assert_non_null(strstr(json_get_str(j, "message"), "1 to 9223372036 s"));
	json_free(j);
	assert_int_equal(store_get_retention(x->s), 600);
	assert_int_equal(status_of(x, 0, "{\"cmd\":\"retention\",\"seconds\":9223372036}"), 0);
	assert_int_equal(store_get_retention(x->s), 9223372036ull);
}

/* A past moment refused for the parent's own past says so, and when: a
 * moment before the parent's last reset, before it was made (a child, a
 * branch made empty); one older than the window names the oldest moment.
 * (Each used to get "older than parent 'P' or than the oldest moment the
 * store retains (T)", T often long before the moment asked for.) */
static void test_ctl_past_refused_says_why(void **state)
{
	struct ctx *x = *state;
	char req[256];
	uint64_t s0, s1;
	struct json *j;

	assert_int_equal(status_of(x, 0, "{\"cmd\":\"create\",\"name\":\"main\"}"), 0);
	assert_int_equal(status_of(x, 0, "{\"cmd\":\"create\",\"name\":\"kid\",\"from\":\"main\"}"), 0);
	s0 = store_seq_now(x->s);
	assert_int_equal(status_of(x, 0, "{\"cmd\":\"reset\",\"name\":\"kid\"}"), 0);
	snprintf(req, sizeof(req),
		 "{\"cmd\":\"create\",\"name\":\"x\",\"from\":\"kid\",\"at_seq\":%" PRIu64 "}",
		 s0);
	j = call(x, 0, req);
	assert_string_equal(json_get_str(j, "error"), "out_of_range");
	assert_non_null(strstr(json_get_str(j, "message"),
			       "branch 'kid' has no past before seq"));
	assert_non_null(strstr(json_get_str(j, "message"), "last reset"));
	json_free(j);
	x->ff.may_create = true;
	assert_int_equal(status_of(x, 0, "{\"cmd\":\"create\",\"name\":\"fresh\",\"empty\":true}"), 0);
	snprintf(req, sizeof(req),
		 "{\"cmd\":\"create\",\"name\":\"x\",\"from\":\"fresh\",\"at_seq\":%" PRIu64 "}",
		 s0);
	j = call(x, 0, req);
	assert_string_equal(json_get_str(j, "error"), "out_of_range");
	assert_non_null(strstr(json_get_str(j, "message"),
			       "branch 'fresh' was made later, at"));
	json_free(j);
	/* past the window */
	s1 = store_seq_now(x->s);
	assert_int_equal(status_of(x, 0, "{\"cmd\":\"create\",\"name\":\"later\",\"from\":\"main\"}"), 0);
	assert_int_equal(store_set_retention(x->s, 1), 0);
	usleep(1200000);
	assert_int_equal(store_gc(x->s, NULL, NULL), 0);
	snprintf(req, sizeof(req),
		 "{\"cmd\":\"create\",\"name\":\"x\",\"from\":\"main\",\"at_seq\":%" PRIu64 "}",
		 s1);
	j = call(x, 0, req);
	assert_string_equal(json_get_str(j, "error"), "out_of_range");
	assert_non_null(strstr(json_get_str(j, "message"),
			       "the store retains nothing older than"));
	json_free(j);
}

/* A reset that other branches' writes race: the branch is reset to the
 * parent as of the seq it checked (its fork seq), and its own past begins
 * after the seq the store had reached when the reset committed, a few
 * writes later.  A moment in between is refused (exit 8) as before the
 * reset, and the message names where the past begins (it said "the store
 * retains nothing older than T", T before the moment asked for). */
static void test_ctl_past_refused_after_racing_reset(void **state)
{
	struct ctx *x = *state;
	struct store_branch_info mi, ki;
	char req[256], want[128];
	uint64_t s;
	struct json *j;

	assert_int_equal(status_of(x, 0, "{\"cmd\":\"create\",\"name\":\"main\"}"), 0);
	assert_int_equal(status_of(x, 0, "{\"cmd\":\"create\",\"name\":\"kid\",\"from\":\"main\"}"), 0);
	assert_int_equal(store_branch_lookup(x->s, "main", &mi), 0);
	x->ff.write_on_check = 3;
	x->ff.write_store = x->s;
	x->ff.write_branch = mi.id;
	x->ff.write_dir = mi.root_ino;
	assert_int_equal(status_of(x, 0, "{\"cmd\":\"reset\",\"name\":\"kid\"}"), 0);
	x->ff.write_on_check = 0;
	assert_int_equal(store_branch_lookup(x->s, "kid", &ki), 0);
	/* the writes came after the fork seq, before the reset's commit */
	assert_true(store_seq_now(x->s) >= ki.fork_seq + 4);
	for (s = ki.fork_seq + 1; s <= store_seq_now(x->s); s++) {
		snprintf(req, sizeof(req),
			 "{\"cmd\":\"create\",\"name\":\"x\",\"from\":\"kid\",\"at_seq\":%" PRIu64 "}",
			 s);
		j = call(x, 0, req);
		if (json_get_str(j, "error") == NULL) {
			json_free(j);
			break;
		}
		assert_string_equal(json_get_str(j, "error"), "out_of_range");
		assert_null(strstr(json_get_str(j, "message"),
				   "retains nothing older"));
		assert_non_null(strstr(json_get_str(j, "message"),
				       "branch 'kid' has no past before seq"));
		json_free(j);
	}
	/* made at the first seq of its past, which the message named */
	assert_true(s > ki.fork_seq + 1);
	assert_true(s <= store_seq_now(x->s));
	snprintf(req, sizeof(req),
		 "{\"cmd\":\"create\",\"name\":\"y\",\"from\":\"kid\",\"at_seq\":%" PRIu64 "}",
		 s - 1);
	j = call(x, 0, req);
	snprintf(want, sizeof(want), "has no past before seq %" PRIu64 " ", s);
	assert_non_null(strstr(json_get_str(j, "message"), want));
	json_free(j);
}

/* A collection running (the background one) while `branchctl gc` comes:
 * gc waits for it and then runs, rather than failing with "a gc is
 * already running" (exit 6). */
struct slow_gc {
	struct store *s;
	atomic_int inside;
	int rc;
};

static bool slow_in_use(void *ctx, uint64_t branch, uint64_t ino)
{
	struct slow_gc *g = ctx;

	(void)branch;
	(void)ino;
	if (atomic_exchange(&g->inside, 1) == 0)
		usleep(400000);
	return false;
}

static void *slow_gc_main(void *arg)
{
	struct slow_gc *g = arg;
	struct store_gc_opts o = { .in_use = slow_in_use, .ctx = g };

	g->rc = store_gc(g->s, &o, NULL);
	return NULL;
}

static void test_ctl_gc_waits_for_running_gc(void **state)
{
	struct ctx *x = *state;
	struct store_attr a = { .mode = S_IFREG | 0600 };
	struct store_branch_info bi;
	struct slow_gc g = { .s = x->s };
	pthread_t t;
	uint64_t ino;
	int i, st;

	assert_int_equal(status_of(x, 0, "{\"cmd\":\"create\",\"name\":\"main\"}"), 0);
	assert_int_equal(store_branch_lookup(x->s, "main", &bi), 0);
	assert_int_equal(store_create(x->s, bi.id, bi.root_ino, "f", &a, NULL,
				      &ino, NULL),
			 0);
	assert_int_equal(store_unlink(x->s, bi.id, bi.root_ino, "f"), 0);
	assert_int_equal(store_set_retention(x->s, 1), 0);
	usleep(1200000);
	assert_int_equal(pthread_create(&t, NULL, slow_gc_main, &g), 0);
	for (i = 0; i < 500 && !atomic_load(&g.inside); i++)
		usleep(10000);
	st = atomic_load(&g.inside) ? status_of(x, 0, "{\"cmd\":\"gc\"}") : -1;
	pthread_join(t, NULL); /* before any assertion leaves */
	assert_int_equal(g.rc, 0);
	assert_int_equal(st, 0);
}

/* One socket path, one daemon: a second control socket on the path of a
 * serving one is refused with EADDRINUSE and leaves the first one's
 * socket in place, also when the path does not answer (its file removed,
 * as between a racing daemon's check and bind: the path's lock decides,
 * not the file); once the first closes, the path is free again. */
static void test_ctl_one_daemon_per_socket(void **state)
{
	struct ctx *x = *state;
	struct bd_ctl_config cc = { 0 };
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	struct bd_ctl *c2 = NULL;
	struct stat st;
	char sock[128];
	int fd;

	snprintf(sock, sizeof(sock), "%s/ctl.sock", x->dir);
	cc.store = x->s;
	cc.socket_path = sock;
	cc.store_dir = "/nonexistent/other-store";
	cc.mountpoint = "/mnt/other";
	assert_int_equal(bd_ctl_open(&cc, &c2), -EADDRINUSE);
	assert_null(c2);
	/* the first daemon's socket still answers */
	assert_int_equal(stat(sock, &st), 0);
	assert_true(S_ISSOCK(st.st_mode));
	assert_true(strlen(sock) < sizeof(sa.sun_path));
	memcpy(sa.sun_path, sock, strlen(sock) + 1);
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	assert_true(fd >= 0);
	assert_int_equal(connect(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
	close(fd);
	assert_int_equal(unlink(sock), 0);
	assert_int_equal(bd_ctl_open(&cc, &c2), -EADDRINUSE);
	assert_null(c2);
	assert_int_equal(stat(sock, &st), -1);
	bd_ctl_close(x->c);
	x->c = NULL;
	assert_int_equal(stat(sock, &st), -1);
	assert_int_equal(bd_ctl_open(&cc, &c2), 0);
	x->c = c2; /* teardown closes it */
	assert_int_equal(stat(sock, &st), 0);
	assert_true(S_ISSOCK(st.st_mode));
}

/* The socket path's lock file goes with the daemon that held it (CTL-1):
 * they piled up in /run/branchfs, one per socket path ever used. */
static void test_ctl_lock_file_removed_on_close(void **state)
{
	struct ctx *x = *state;
	struct stat st;
	char lock[160];

	snprintf(lock, sizeof(lock), "%s/ctl.sock.lock", x->dir);
	assert_int_equal(stat(lock, &st), 0);
	bd_ctl_close(x->c);
	x->c = NULL;
	assert_int_equal(stat(lock, &st), -1);
	assert_int_equal(errno, ENOENT);
}

struct lock_race {
	struct bd_ctl_config cc;
	atomic_int serving; /* threads between a successful open and close */
	atomic_int most;    /* the highest serving seen */
	atomic_int opened;
};

static void *lock_race_main(void *arg)
{
	struct lock_race *r = arg;
	struct bd_ctl *c;
	int i, n;

	for (i = 0; i < 300; i++) {
		if (bd_ctl_open(&r->cc, &c) != 0)
			continue;
		n = atomic_fetch_add(&r->serving, 1) + 1;
		if (n > atomic_load(&r->most))
			atomic_store(&r->most, n);
		atomic_fetch_add(&r->opened, 1);
		sched_yield();
		atomic_fetch_sub(&r->serving, 1);
		bd_ctl_close(c);
	}
	return NULL;
}

/* Removing the lock file does not let two daemons serve one path at once
 * (CTL-2): three threads open and close control sockets on one path as
 * fast as they can; never more than one holds it. */
static void test_ctl_lock_race_one_at_a_time(void **state)
{
	struct ctx *x = *state;
	struct lock_race r = { 0 };
	pthread_t t[3];
	char sock[160];
	int i;

	snprintf(sock, sizeof(sock), "%s/race.sock", x->dir);
	r.cc.store = x->s;
	r.cc.socket_path = sock;
	r.cc.store_dir = "/nonexistent/race-store";
	r.cc.mountpoint = "/mnt/race";
	for (i = 0; i < 3; i++)
		assert_int_equal(
			pthread_create(&t[i], NULL, lock_race_main, &r), 0);
	for (i = 0; i < 3; i++)
		pthread_join(t[i], NULL);
	assert_true(atomic_load(&r.opened) > 0);
	assert_int_equal(atomic_load(&r.most), 1);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_ctl_json_roundtrip),
		cmocka_unit_test(test_ctl_json_bad_utf8_replaced),
		cmocka_unit_test(test_ctl_json_rejects_malformed),
		cmocka_unit_test_setup_teardown(
			test_ctl_malformed_requests_get_error_replies, setup,
			teardown),
		cmocka_unit_test_setup_teardown(
			test_ctl_create_list_info_rename_delete, setup, teardown),
		cmocka_unit_test(test_ctl_code_of_exit_roundtrip),
		cmocka_unit_test_setup_teardown(test_ctl_default_says_if_gone,
						setup, teardown),
		cmocka_unit_test_setup_teardown(
			test_ctl_lookup_of_bad_name_is_invalid, setup, teardown),
		cmocka_unit_test_setup_teardown(test_ctl_bad_names_are_invalid,
						setup, teardown),
		cmocka_unit_test_setup_teardown(test_ctl_changes_follow_may_remove,
						setup, teardown),
		cmocka_unit_test_setup_teardown(test_ctl_busy_and_permissions,
						setup, teardown),
		cmocka_unit_test_setup_teardown(
			test_ctl_time_outside_retention_names_oldest, setup,
			teardown),
		cmocka_unit_test_setup_teardown(test_ctl_taken_name_first, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_ctl_parent_deleted_meanwhile,
						setup, teardown),
		cmocka_unit_test_setup_teardown(test_ctl_bad_retention_names_range,
						setup, teardown),
		cmocka_unit_test_setup_teardown(test_ctl_past_refused_after_racing_reset,
						setup, teardown),
		cmocka_unit_test_setup_teardown(test_ctl_past_refused_says_why,
						setup, teardown),
		cmocka_unit_test_setup_teardown(test_ctl_gc_waits_for_running_gc,
						setup, teardown),
		cmocka_unit_test_setup_teardown(test_ctl_one_daemon_per_socket,
						setup, teardown),
		cmocka_unit_test_setup_teardown(
			test_ctl_lock_file_removed_on_close, setup, teardown),
		cmocka_unit_test_setup_teardown(
			test_ctl_lock_race_one_at_a_time, setup, teardown),
		cmocka_unit_test_setup_teardown(
			test_ctl_check_fork_refuses_create_and_reset, setup,
			teardown),
		cmocka_unit_test_setup_teardown(
			test_ctl_check_fork_after_create_drops_branch, setup,
			teardown),
		cmocka_unit_test_setup_teardown(test_ctl_create_empty, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_ctl_long_reason_whole, setup,
						teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
