/* SPDX-License-Identifier: MIT */
/* The daemon's uid range: parsing, the check against host accounts, the host-wide claim. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "file-util.h"
#include "macro.h"
#include "uid-range.h"

static char dir[64];

static int setup(void **state)
{
	snprintf(dir, sizeof(dir), "/tmp/bbx-uidrange-XXXXXX");
	return mkdtemp(dir) ? 0 : -1;
}

static int teardown(void **state)
{
	return rm_rf(dir);
}

static void test_parse(void **state)
{
	UidRange r;
	assert_int_equal(uid_range_parse("200000-299999", &r, NULL), 0);
	assert_int_equal(r.first, 200000);
	assert_int_equal(r.last, 299999);
	assert_int_equal(uid_range_parse(UID_RANGE_DEFAULT, &r, NULL), 0);
	assert_int_equal(r.first, UID_RANGE_DEFAULT_FIRST);
	assert_int_equal(r.last, UID_RANGE_DEFAULT_LAST);
	static const char *const bad[] = { "",
					   "200000",
					   "-5",
					   "abc-def",
					   "200000-",
					   "1000-2000",
					   "65536-65536",
					   "300000-200000",
					   "70000-2147483648",
					   "200000-299999-1",
					   " 200000-299999",
					   "99999999999999999-1" };
	for (size_t i = 0; i < ELEMENTSOF(bad); i++) {
		BbxError err = BBX_ERROR_INIT;
		assert_true(uid_range_parse(bad[i], &r, &err) < 0);
		assert_non_null(strstr(err.message, "uid range"));
	}
}

static void put(const char *name, const char *text)
{
	char path[128];
	snprintf(path, sizeof(path), "%s/%s", dir, name);
	assert_int_equal(write_file_atomic(path, text, strlen(text), 0644), 0);
}

static void test_check_host(void **state)
{
	UidRange r = { 300000, 399999 };
	/* No files: nothing is held. */
	assert_int_equal(uid_range_check_host(&r, dir, NULL), 0);

	put("passwd",
	    "# users\nroot:x:0:0:root:/root:/bin/sh\n\nsvc:x:350000:100:svc:/:/bin/false\n");
	put("group", "root:x:0:\n");
	put("subuid", "alice:100000:65536\nbob:165536:65536\n");
	BbxError err = BBX_ERROR_INIT;
	assert_int_equal(uid_range_check_host(&r, dir, &err), -EEXIST);
	assert_non_null(strstr(err.message, "/passwd line 4 ('svc') has id 350000"));

	r = (UidRange){ 200000, 299999 };
	BbxError err2 = BBX_ERROR_INIT;
	assert_int_equal(uid_range_check_host(&r, dir, &err2), -EEXIST);
	assert_non_null(strstr(err2.message, "/subuid line 2 ('bob') delegates ids 165536-231071"));

	/* Just past bob's last delegated id, and below svc: free. */
	r = (UidRange){ 231072, 349999 };
	assert_int_equal(uid_range_check_host(&r, dir, NULL), 0);
	put("group", "late:x:231072:\n");
	BbxError err3 = BBX_ERROR_INIT;
	assert_int_equal(uid_range_check_host(&r, dir, &err3), -EEXIST);
	assert_non_null(strstr(err3.message, "/group line 1 ('late') has id 231072"));
}

static void test_claim(void **state)
{
	char registry[96];
	snprintf(registry, sizeof(registry), "%s/registry", dir);
	UidRange a = { 300000, 300099 }, b = { 300050, 300199 }, c = { 300100, 300199 };
	int fa = -EBADF, fb = -EBADF, fc = -EBADF;

	assert_int_equal(uid_range_claim(&a, "/srv/state-a", registry, &fa, NULL), 0);
	/* An overlapping range of another daemon is refused, naming the holder. */
	BbxError err = BBX_ERROR_INIT;
	assert_int_equal(uid_range_claim(&b, "/srv/state-b", registry, &fb, &err), -EBUSY);
	assert_non_null(
		strstr(err.message, "300000-300099 of the running daemon with state /srv/state-a"));
	assert_int_equal(fb, -EBADF);
	/* A disjoint one is not. */
	assert_int_equal(uid_range_claim(&c, "/srv/state-c", registry, &fc, NULL), 0);
	/* A daemon that is gone holds nothing: its entry is dropped. */
	fa = safe_close(fa);
	fc = safe_close(fc);
	assert_int_equal(uid_range_claim(&b, "/srv/state-b", registry, &fb, NULL), 0);
	/* The same daemon restarting replaces its own entry. */
	fb = safe_close(fb);
	assert_int_equal(uid_range_claim(&a, "/srv/state-b", registry, &fb, NULL), 0);
	BbxError err2 = BBX_ERROR_INIT;
	assert_int_equal(uid_range_claim(&a, "/srv/state-a", registry, &fa, &err2), -EBUSY);
	assert_non_null(strstr(err2.message, "/srv/state-b"));
	safe_close(fb);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_parse),
		cmocka_unit_test_setup_teardown(test_check_host, setup, teardown),
		cmocka_unit_test_setup_teardown(test_claim, setup, teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
