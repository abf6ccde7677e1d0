/* SPDX-License-Identifier: MIT */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdatomic.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "error.h"
#include "file-util.h"
#include "jobs.h"
#include "parse.h"
#include "strbuf.h"

static void test_strbuf(void **state)
{
	_cleanup_strbuf_ StrBuf sb = STRBUF_INIT;

	assert_string_equal(strbuf_str(&sb), "");
	assert_int_equal(strbuf_puts(&sb, "abc"), 0);
	assert_int_equal(strbuf_appendf(&sb, "-%d-%s", 42, "x"), 0);
	assert_string_equal(strbuf_str(&sb), "abc-42-x");
	for (int i = 0; i < 1000; i++)
		assert_int_equal(strbuf_puts(&sb, "0123456789"), 0);
	assert_int_equal(sb.len, 8 + 10000);
	strbuf_reset(&sb);
	assert_int_equal(strbuf_put_json_escaped(&sb, "a\"b\\c\n\x01"), 0);
	assert_string_equal(strbuf_str(&sb), "a\\\"b\\\\c\\n\\u0001");
	char *s = strbuf_detach(&sb);
	assert_non_null(s);
	assert_null(sb.buf);
	free(s);
}

static void test_parse_size(void **state)
{
	uint64_t v;
	assert_int_equal(parse_size("512", &v), 0);
	assert_int_equal(v, 512);
	assert_int_equal(parse_size("64G", &v), 0);
	assert_int_equal(v, 64ULL << 30);
	assert_int_equal(parse_size("100Mi", &v), 0);
	assert_int_equal(v, 100ULL << 20);
	assert_int_equal(parse_size("1GiB", &v), 0);
	assert_int_equal(v, 1ULL << 30);
	assert_int_equal(parse_size("", &v), -EINVAL);
	assert_int_equal(parse_size("G", &v), -EINVAL);
	assert_int_equal(parse_size("1X", &v), -EINVAL);
	assert_int_equal(parse_size("-1", &v), -EINVAL);
	assert_int_equal(parse_size("99999999999T", &v), -ERANGE);
}

static void test_parse_duration(void **state)
{
	uint64_t v;
	assert_int_equal(parse_duration("30", &v), 0);
	assert_int_equal(v, 30);
	assert_int_equal(parse_duration("1h30m", &v), 0);
	assert_int_equal(v, 5400);
	assert_int_equal(parse_duration("7d", &v), 0);
	assert_int_equal(v, 7 * 86400);
	assert_int_equal(parse_duration("30m1h", &v), -EINVAL);
	assert_int_equal(parse_duration("1h30", &v), -EINVAL);
	assert_int_equal(parse_duration("h", &v), -EINVAL);
	assert_int_equal(parse_duration("", &v), -EINVAL);
	char buf[32];
	assert_string_equal(format_duration(5400, buf, sizeof(buf)), "1h30m");
	assert_string_equal(format_duration(0, buf, sizeof(buf)), "0s");
}

static void test_parse_cpu(void **state)
{
	uint32_t m;
	assert_int_equal(parse_cpu("0.5", &m), 0);
	assert_int_equal(m, 500);
	assert_int_equal(parse_cpu("2", &m), 0);
	assert_int_equal(m, 2000);
	assert_int_equal(parse_cpu("0.0001", &m), -EINVAL);
	assert_int_equal(parse_cpu("0", &m), -ERANGE);
	assert_int_equal(parse_cpu(".5", &m), -EINVAL);
}

static void test_names_and_globs(void **state)
{
	assert_true(name_is_valid("main"));
	assert_true(name_is_valid("feature-1.x_y"));
	assert_false(name_is_valid(""));
	assert_false(name_is_valid("../etc"));
	assert_false(name_is_valid("a/b"));
	assert_false(name_is_valid("-x"));
	assert_false(name_is_valid("Upper"));
	assert_true(glob_match("agent-*", "agent-42"));
	assert_true(glob_match("*", "x"));
	assert_true(glob_match("a?c", "abc"));
	assert_false(glob_match("agent-*", "main"));
	assert_false(glob_match("a*b", "ac"));
}

static void test_error(void **state)
{
	BbxError err = BBX_ERROR_INIT;
	assert_int_equal(bbx_error_set(&err, -ENOENT, BBX_NOT_FOUND, "no %s", "x"), -ENOENT);
	assert_int_equal(bbx_error_set(&err, -EINVAL, BBX_INVALID, "later"), -EINVAL);
	assert_string_equal(err.message, "no x");
	bbx_error_prefix(&err, "env %s", "e1");
	assert_string_equal(err.message, "env e1: no x");
	assert_string_equal(bbx_error_kind_name(err.kind), "not_found");
	assert_int_equal(bbx_error_set(NULL, -EIO, BBX_INTERNAL, "ignored"), -EIO);
	for (int k = 0; k < _BBX_KIND_MAX; k++) {
		assert_non_null(bbx_error_kind_name((BbxErrorKind)k));
		assert_true(bbx_error_kind_http_status((BbxErrorKind)k) >= 400);
	}
	assert_int_equal(bbx_error_kind_http_status(BBX_NOT_FOUND), 404);
	assert_int_equal(bbx_error_kind_jsonrpc_code(BBX_INVALID), -32602);
}

static void test_files(void **state)
{
	char dir[] = "/tmp/bbx-test-XXXXXX";
	assert_non_null(mkdtemp(dir));
	char path[256], sub[256];
	snprintf(path, sizeof(path), "%s/f", dir);
	snprintf(sub, sizeof(sub), "%s/a/b/c", dir);
	assert_int_equal(write_file_atomic(path, "hello", 5, 0600), 0);
	char *data = NULL;
	size_t n;
	assert_int_equal(read_full_file(path, 100, &data, &n), 0);
	assert_int_equal(n, 5);
	assert_string_equal(data, "hello");
	free(data);
	assert_int_equal(read_full_file(path, 3, &data, &n), -EFBIG);
	assert_int_equal(mkdir_p(sub, 0700), 0);
	assert_int_equal(mkdir_p(sub, 0700), 0);
	assert_int_equal(rm_rf(dir), 0);
	assert_int_equal(rm_rf(dir), 0);
}

static void test_nofollow_writes(void **state)
{
	char dir[] = "/tmp/bbx-test-XXXXXX", outside[] = "/tmp/bbx-out-XXXXXX";
	char p[512];
	assert_non_null(mkdtemp(dir));
	assert_non_null(mkdtemp(outside));
	int dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	assert_true(dfd >= 0);

	/* A plain nested path is made. */
	assert_int_equal(mkdir_beneath(dfd, "a/b/c", 0755), 0);
	snprintf(p, sizeof(p), "%s/a/b/c", dir);
	struct stat st;
	assert_int_equal(stat(p, &st), 0);
	/* A symlink on the way, or "..", is refused and nothing is made outside. */
	snprintf(p, sizeof(p), "%s/evil", dir);
	assert_int_equal(symlink(outside, p), 0);
	assert_int_equal(mkdir_beneath(dfd, "evil/x", 0755), -ELOOP);
	snprintf(p, sizeof(p), "%s/x", outside);
	assert_int_equal(stat(p, &st), -1);
	assert_int_equal(mkdir_beneath(dfd, "a/../../x", 0755), -EINVAL);

	/* write_file_atomic_at replaces a symlinked name instead of writing through it. */
	snprintf(p, sizeof(p), "%s/target", outside);
	char lnk[512];
	snprintf(lnk, sizeof(lnk), "%s/conf", dir);
	assert_int_equal(symlink(p, lnk), 0);
	assert_int_equal(write_file_atomic_at(dfd, "conf", "x=1\n", 4, 0600, getuid(), getgid()),
			 0);
	assert_int_equal(stat(p, &st), -1);
	assert_int_equal(lstat(lnk, &st), 0);
	assert_true(S_ISREG(st.st_mode));
	/* open_dir_at_nofollow refuses a symlink to a directory. */
	assert_true(open_dir_at_nofollow(dfd, "evil") < 0);

	close(dfd);
	assert_int_equal(rm_rf(dir), 0);
	assert_int_equal(rm_rf(outside), 0);
}

typedef struct Gate {
	int fds[2]; /* the job waits for a byte on fds[0] */
	atomic_int ran, freed;
} Gate;

static void gate_run(void *userdata)
{
	Gate *g = userdata;
	char c;
	(void)!read(g->fds[0], &c, 1);
	atomic_fetch_add(&g->ran, 1);
}

static void gate_free(void *userdata)
{
	Gate *g = userdata;
	atomic_fetch_add(&g->freed, 1);
}

/* A key refuses a second job while the first runs; reaping joins only finished jobs unless
 * asked for all; every userdata is released exactly once. */
static void test_jobs(void **state)
{
	JobSet set;
	Gate g = { 0 };
	assert_int_equal(pipe(g.fds), 0);
	jobs_init(&set);
	assert_int_equal(jobs_start(&set, "a", gate_run, &g, gate_free), 0);
	assert_int_equal(jobs_start(&set, "a", gate_run, &g, gate_free), -EALREADY);
	assert_int_equal(atomic_load(&g.freed), 1); /* the refused one's, at once */
	assert_int_equal(jobs_start(&set, "b", gate_run, &g, gate_free), 0);
	assert_int_equal(jobs_start(&set, NULL, gate_run, &g, gate_free), 0);
	jobs_reap(&set, false); /* none is done: nothing joined, nothing freed */
	assert_int_equal(atomic_load(&g.freed), 1);
	assert_int_equal(write(g.fds[1], "x", 1), 1);
	while (atomic_load(&g.ran) < 1)
		usleep(1000);
	usleep(20000);
	jobs_reap(&set, false);
	assert_int_equal(atomic_load(&g.freed), 2);
	/* One of them ended: whichever it was, its key is free again or it had none. */
	assert_int_equal(write(g.fds[1], "xx", 2), 2);
	jobs_done(&set); /* joins the rest */
	assert_int_equal(atomic_load(&g.ran), 3);
	assert_int_equal(atomic_load(&g.freed), 4);
	close(g.fds[0]);
	close(g.fds[1]);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_strbuf),
		cmocka_unit_test(test_parse_size),
		cmocka_unit_test(test_parse_duration),
		cmocka_unit_test(test_parse_cpu),
		cmocka_unit_test(test_names_and_globs),
		cmocka_unit_test(test_error),
		cmocka_unit_test(test_files),
		cmocka_unit_test(test_nofollow_writes),
		cmocka_unit_test(test_jobs),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
