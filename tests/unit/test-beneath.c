/* SPDX-License-Identifier: MIT */
/* The resolver of agent-writable trees (src/basic/beneath.c): every way out is refused. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#include "beneath.h"
#include "file-util.h"

typedef struct Fixture {
	char dir[64]; /* scratch: dir/root is the tree, dir/outside a host file */
	char outside[96];
	int root;
} Fixture;

static void put(const char *path, const char *s)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	assert_true(fd >= 0);
	assert_int_equal(write_all(fd, s, strlen(s)), 0);
	close(fd);
}

static int setup(void **state)
{
	Fixture *f = calloc(1, sizeof(*f));
	char p[160];
	snprintf(f->dir, sizeof(f->dir), "/tmp/bbx-beneath-XXXXXX");
	assert_non_null(mkdtemp(f->dir));
	snprintf(f->outside, sizeof(f->outside), "%s/outside", f->dir);
	put(f->outside, "host secret\n");
	snprintf(p, sizeof(p), "%s/root", f->dir);
	assert_int_equal(mkdir(p, 0755), 0);
	snprintf(p, sizeof(p), "%s/root/sub", f->dir);
	assert_int_equal(mkdir(p, 0755), 0);
	snprintf(p, sizeof(p), "%s/root/file", f->dir);
	put(p, "inside\n");
	snprintf(p, sizeof(p), "%s/root/sub/deep", f->dir);
	put(p, "deep\n");
	snprintf(p, sizeof(p), "%s/root/to-outside", f->dir);
	assert_int_equal(symlink(f->outside, p), 0);
	snprintf(p, sizeof(p), "%s/root/to-file", f->dir);
	assert_int_equal(symlink("file", p), 0);
	snprintf(p, sizeof(p), "%s/root/to-dir", f->dir);
	assert_int_equal(symlink(f->dir, p), 0);
	snprintf(p, sizeof(p), "%s/root/to-sub", f->dir);
	assert_int_equal(symlink("sub", p), 0);
	snprintf(p, sizeof(p), "%s/root/fifo", f->dir);
	assert_int_equal(mkfifo(p, 0644), 0);
	snprintf(p, sizeof(p), "%s/root/hardlink", f->dir);
	assert_int_equal(link(f->outside, p), 0);
	snprintf(p, sizeof(p), "%s/root", f->dir);
	f->root = open(p, O_PATH | O_DIRECTORY | O_CLOEXEC);
	assert_true(f->root >= 0);
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	Fixture *f = *state;
	close(f->root);
	assert_int_equal(rm_rf(f->dir), 0);
	free(f);
	return 0;
}

static void outside_unchanged(Fixture *f)
{
	char *s = NULL;
	size_t n;
	assert_int_equal(read_full_file(f->outside, 1024, &s, &n), 0);
	assert_string_equal(s, "host secret\n");
	free(s);
}

static void test_path_check(void **state)
{
	static const struct {
		const char *p;
		size_t n; /* 0: strlen */
		bool ok;
	} cases[] = {
		{ "file", 0, true },
		{ "a/b/c", 0, true },
		{ ".hidden", 0, true },
		{ "a..b", 0, true },
		{ "", 0, false },
		{ ".", 0, false },
		{ "/etc/passwd", 0, false },
		{ "..", 0, false },
		{ "../x", 0, false },
		{ "a/../b", 0, false },
		{ "a/..", 0, false },
		{ "a//b", 0, false },
		{ "a/", 0, false },
		{ "./a", 0, false },
		{ "a/./b", 0, false },
		{ "a\0b", 3, false },
		{ "file\0/../../x", 13, false },
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		const char *why = NULL;
		size_t n = cases[i].n ? cases[i].n : strlen(cases[i].p);
		int r = beneath_path_check(cases[i].p, n, false, &why);
		if (cases[i].ok)
			assert_int_equal(r, 0);
		else {
			assert_int_equal(r, -EINVAL);
			assert_non_null(why);
		}
	}
	assert_int_equal(beneath_path_check("", 0, true, NULL), 0);
	assert_int_equal(beneath_path_check(".", 1, true, NULL), 0);
	char longp[BENEATH_PATH_MAX + 2];
	memset(longp, 'a', sizeof(longp) - 1);
	longp[sizeof(longp) - 1] = '\0';
	assert_int_equal(beneath_path_check(longp, strlen(longp), false, NULL), -EINVAL);
	char longc[300];
	memset(longc, 'b', sizeof(longc) - 1);
	longc[sizeof(longc) - 1] = '\0';
	assert_int_equal(beneath_path_check(longc, strlen(longc), false, NULL), -EINVAL);
}

static void test_read(void **state)
{
	Fixture *f = *state;
	BeneathRead rd;
	assert_int_equal(beneath_read(f->root, "file", 0, 1024, &rd), 0);
	assert_string_equal(rd.data, "inside\n");
	assert_false(rd.truncated);
	beneath_read_done(&rd);
	assert_int_equal(beneath_read(f->root, "sub/deep", 1, 2, &rd), 0);
	assert_int_equal(rd.n, 2);
	assert_memory_equal(rd.data, "ee", 2);
	assert_true(rd.truncated);
	assert_int_equal(rd.size, 5);
	beneath_read_done(&rd);

	/* Every way out, and every non-file, refused without reading anything. */
	assert_int_equal(beneath_read(f->root, "to-outside", 0, 1024, &rd), -ELOOP);
	assert_int_equal(beneath_read(f->root, "to-file", 0, 1024, &rd), -ELOOP);
	assert_int_equal(beneath_read(f->root, "to-dir/outside", 0, 1024, &rd), -ELOOP);
	assert_int_equal(beneath_read(f->root, "to-sub/deep", 0, 1024, &rd), -ELOOP);
	assert_int_equal(beneath_read(f->root, "../outside", 0, 1024, &rd), -EXDEV);
	assert_int_equal(beneath_read(f->root, "sub/../../outside", 0, 1024, &rd), -EXDEV);
	assert_int_equal(beneath_read(f->root, f->outside, 0, 1024, &rd), -EXDEV);
	assert_int_equal(beneath_read(f->root, "fifo", 0, 1024, &rd), -ESPIPE);
	assert_int_equal(beneath_read(f->root, "hardlink", 0, 1024, &rd), -EMLINK);
	assert_int_equal(beneath_read(f->root, "sub", 0, 1024, &rd), -EISDIR);
	assert_int_equal(beneath_read(f->root, "file/x", 0, 1024, &rd), -ENOTDIR);
	assert_int_equal(beneath_read(f->root, "missing", 0, 1024, &rd), -ENOENT);
	assert_int_equal(beneath_read(f->root, "/proc/self/root/etc/passwd", 0, 1024, &rd), -EXDEV);
	/* A device node, where this host lets root make one. */
	char p[160];
	snprintf(p, sizeof(p), "%s/root/null", f->dir);
	if (mknod(p, S_IFCHR | 0666, makedev(1, 3)) == 0) {
		assert_int_equal(beneath_read(f->root, "null", 0, 1024, &rd), -ESPIPE);
		unlink(p);
	}
	outside_unchanged(f);
}

static void test_list(void **state)
{
	Fixture *f = *state;
	BeneathEntry *v = NULL;
	size_t n = 0;
	bool trunc = true;
	assert_int_equal(beneath_list(f->root, "", 100, &v, &n, &trunc), 0);
	assert_false(trunc);
	assert_int_equal(n, 8);
	assert_string_equal(v[0].name, "fifo");
	assert_string_equal(v[0].type, "fifo");
	assert_string_equal(v[1].name, "file");
	assert_string_equal(v[1].type, "file");
	assert_int_equal(v[1].size, 7);
	assert_string_equal(v[3].name, "sub");
	assert_string_equal(v[3].type, "directory");
	assert_string_equal(v[5].name, "to-file");
	assert_string_equal(v[5].type, "symlink");
	beneath_entries_free(v, n);
	assert_int_equal(beneath_list(f->root, ".", 2, &v, &n, &trunc), 0);
	assert_int_equal(n, 2);
	assert_true(trunc);
	beneath_entries_free(v, n);
	assert_int_equal(beneath_list(f->root, "to-dir", 100, &v, &n, &trunc), -ELOOP);
	assert_int_equal(beneath_list(f->root, "to-sub", 100, &v, &n, &trunc), -ELOOP);
	assert_int_equal(beneath_list(f->root, "..", 100, &v, &n, &trunc), -EXDEV);
	assert_int_equal(beneath_list(f->root, "file", 100, &v, &n, &trunc), -ENOTDIR);
}

static void test_write(void **state)
{
	Fixture *f = *state;
	BeneathWrite w = { .data = "new\n", .n = 4, .uid = 12345, .gid = 12346, .parents = true };
	bool created = false;
	char p[160];
	struct stat st;

	/* The tree is its owner's; a directory of someone else's is not written into. */
	snprintf(p, sizeof(p), "%s/root/rootowned", f->dir);
	assert_int_equal(mkdir(p, 0777), 0);
	snprintf(p, sizeof(p), "%s/root", f->dir);
	assert_int_equal(beneath_write(f->root, "file", &w, NULL), -EACCES);
	assert_int_equal(chown(p, 12345, 12345), 0);
	snprintf(p, sizeof(p), "%s/root/sub", f->dir);
	assert_int_equal(chown(p, 12345, 12345), 0);
	assert_int_equal(beneath_write(f->root, "rootowned/x", &w, NULL), -EACCES);

	assert_int_equal(beneath_write(f->root, "file", &w, &created), 0);
	assert_false(created);
	snprintf(p, sizeof(p), "%s/root/file", f->dir);
	assert_int_equal(lstat(p, &st), 0);
	assert_int_equal(st.st_uid, 12345);
	assert_int_equal(st.st_gid, 12346);
	assert_int_equal(st.st_mode & 0777, 0644);
	assert_int_equal(beneath_write(f->root, "new/dir/made", &w, &created), 0);
	assert_true(created);
	snprintf(p, sizeof(p), "%s/root/new/dir", f->dir);
	assert_int_equal(lstat(p, &st), 0);
	assert_true(S_ISDIR(st.st_mode));
	assert_int_equal(st.st_uid, 12345);
	w.parents = false;
	assert_int_equal(beneath_write(f->root, "other/made", &w, &created), -ENOENT);

	/* As the owner, the kernel's checks apply too: a directory of its own it made
	 * read-only is not written into (root alone would). */
	snprintf(p, sizeof(p), "%s/root/readonly", f->dir);
	assert_int_equal(mkdir(p, 0555), 0);
	assert_int_equal(chown(p, 12345, 12345), 0);
	assert_int_equal(beneath_write_as_owner(f->root, "readonly/x", &w, &created), -EACCES);
	assert_int_equal(beneath_write(f->root, "readonly/x", &w, &created), 0);
	created = false;
	assert_int_equal(beneath_write_as_owner(f->root, "new/as-owner", &w, &created), 0);
	assert_true(created);
	snprintf(p, sizeof(p), "%s/root/new/as-owner", f->dir);
	assert_int_equal(lstat(p, &st), 0);
	assert_int_equal(st.st_uid, 12345);
	assert_int_equal(st.st_gid, 12346);
	assert_int_equal(beneath_write_as_owner(f->root, "to-outside", &w, NULL), -ELOOP);
	assert_int_equal(beneath_write_as_owner(f->root, "../outside", &w, NULL), -EXDEV);
	w.uid = 0;
	assert_int_equal(beneath_write_as_owner(f->root, "new/root", &w, NULL), -EPERM);
	w.uid = 12345;

	/* Hostile targets: nothing outside changes, nothing is written through a link. */
	assert_int_equal(beneath_write(f->root, "to-outside", &w, NULL), -ELOOP);
	assert_int_equal(beneath_write(f->root, "to-dir/outside", &w, NULL), -ELOOP);
	assert_int_equal(beneath_write(f->root, "to-sub/x", &w, NULL), -ELOOP);
	w.parents = true;
	assert_int_equal(beneath_write(f->root, "to-dir/new/x", &w, NULL), -ELOOP);
	assert_int_equal(beneath_write(f->root, "../outside", &w, NULL), -EXDEV);
	assert_int_equal(beneath_write(f->root, "fifo", &w, NULL), -ESPIPE);
	assert_int_equal(beneath_write(f->root, "hardlink", &w, NULL), -EMLINK);
	assert_int_equal(beneath_write(f->root, "sub", &w, NULL), -EISDIR);
	outside_unchanged(f);
	/* No temp file is left behind by a refusal. */
	BeneathEntry *v = NULL;
	size_t n = 0;
	assert_int_equal(beneath_list(f->root, "", 100, &v, &n, NULL), 0);
	for (size_t i = 0; i < n; i++)
		assert_null(strstr(v[i].name, ".bbx-write-"));
	beneath_entries_free(v, n);
}

static void test_collect(void **state)
{
	Fixture *f = *state;
	BeneathFile *v = NULL;
	size_t n = 0;
	assert_int_equal(beneath_collect(f->root, 100, 1 << 20, 1 << 20, &v, &n), 0);
	/* file, hardlink (unread), sub/deep and the four links; the FIFO is not content. */
	assert_int_equal(n, 7);
	assert_string_equal(v[0].path, "file");
	assert_string_equal(v[1].path, "hardlink");
	assert_true(v[1].unread);
	assert_null(v[1].data);
	assert_string_equal(v[2].path, "sub/deep");
	assert_string_equal(v[2].data, "deep\n");
	assert_string_equal(v[4].path, "to-file");
	assert_true(v[4].symlink);
	assert_string_equal(v[4].data, "file");
	beneath_files_free(v, n);
	assert_int_equal(beneath_collect(f->root, 3, 1 << 20, 1 << 20, &v, &n), -EFBIG);
	/* Bounded in all: past max_total, files are left unread (compared by size). */
	assert_int_equal(beneath_collect(f->root, 100, 1 << 20, 7, &v, &n), 0);
	assert_string_equal(v[0].data, "inside\n");
	assert_true(v[2].unread);
	assert_null(v[2].data);
	beneath_files_free(v, n);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_path_check),
		cmocka_unit_test_setup_teardown(test_read, setup, teardown),
		cmocka_unit_test_setup_teardown(test_list, setup, teardown),
		cmocka_unit_test_setup_teardown(test_write, setup, teardown),
		cmocka_unit_test_setup_teardown(test_collect, setup, teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
