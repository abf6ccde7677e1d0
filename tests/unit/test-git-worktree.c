/* SPDX-License-Identifier: MIT */
/*
 * gitrepo_diff_worktree() on a checkout read through fds (beneath_collect()). Apart from
 * test-git because openat2, which the reading uses, is a system call valgrind does not know.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "beneath.h"
#include "file-util.h"
#include "gitrepo.h"

static char tmpdir[] = "/tmp/bbx-test-gitwt-XXXXXX";
static GitRepo *repo;

static int group_setup(void **state)
{
	char cmd[1024];
	if (!mkdtemp(tmpdir))
		return -1;
	setenv("HOME", tmpdir, 1);
	setenv("GIT_CONFIG_NOSYSTEM", "1", 1);
	setenv("GIT_AUTHOR_NAME", "Fixture Author", 1);
	setenv("GIT_AUTHOR_EMAIL", "author@example.invalid", 1);
	setenv("GIT_COMMITTER_NAME", "Fixture Author", 1);
	setenv("GIT_COMMITTER_EMAIL", "author@example.invalid", 1);
	snprintf(cmd, sizeof(cmd),
		 "cd '%s' && mkdir work && cd work && git init -q -b main . && "
		 "printf 'line1\\nline2\\nline3\\nline4\\nline5\\n' > app.py && "
		 "printf 'README\\n' > README.md && printf '#!/bin/sh\\necho run\\n' > run.sh && "
		 "chmod 755 run.sh && ln -s app.py link && mkdir -p dir/sub && "
		 "printf 'deep\\n' > dir/sub/file.txt && git add -A && git commit -q -m initial",
		 tmpdir);
	if (system(cmd) != 0)
		return -1;
	snprintf(cmd, sizeof(cmd), "%s/work", tmpdir);
	return gitrepo_open(cmd, &repo, NULL) < 0 ? -1 : 0;
}

static int group_teardown(void **state)
{
	repo = gitrepo_free(repo);
	(void)rm_rf(tmpdir);
	return 0;
}

static GitDiffFile *find_file(GitDiff *d, const char *path)
{
	for (size_t i = 0; i < d->n_files; i++)
		if (!strcmp(d->files[i].path, path))
			return &d->files[i];
	return NULL;
}

/* A checkout compared with its commit, read through fds (beneath_collect()). */
static void diff_tree(const char *dir, size_t max_file, GitDiff *d)
{
	BeneathFile *files = NULL;
	size_t n = 0;
	int fd = open(dir, O_PATH | O_DIRECTORY | O_CLOEXEC);
	assert_true(fd >= 0);
	assert_int_equal(beneath_collect(fd, 1000, max_file, 1 << 20, &files, &n), 0);
	close(fd);
	assert_int_equal(gitrepo_diff_worktree(repo, "main", files, n, 1 << 20, d, NULL), 0);
	beneath_files_free(files, n);
}

static void test_diff_worktree(void **state)
{
	char target[512], p[PATH_MAX];
	GitCheckoutResult res = { 0 };
	GitDiff d = { 0 };

	snprintf(target, sizeof(target), "%s/co-worktree", tmpdir);
	assert_int_equal(gitrepo_checkout(repo, "main", target, &res, NULL), 0);
	gitrepo_checkout_result_done(&res);
	/* Control: the checkout as it came has no changes. */
	diff_tree(target, 1 << 20, &d);
	assert_int_equal(d.n_files, 0);
	assert_string_equal(d.patch, "");
	gitrepo_diff_done(&d);

	snprintf(p, sizeof(p),
		 "cd '%s' && sed -i 's/line3/line3 edited/' app.py && rm README.md && "
		 "printf 'a\\nb\\n' > new.txt && ln -sfn run.sh link && mkfifo pipe && "
		 "mkdir .git && printf x > .git/ignored",
		 target);
	assert_int_equal(system(p), 0);
	diff_tree(target, 1 << 20, &d);
	assert_int_equal(d.n_files, 4);
	GitDiffFile *f = find_file(&d, "app.py");
	assert_non_null(f);
	assert_int_equal(f->status, 'M');
	assert_int_equal(f->additions, 1);
	assert_int_equal(f->deletions, 1);
	f = find_file(&d, "README.md");
	assert_non_null(f);
	assert_int_equal(f->status, 'D');
	f = find_file(&d, "new.txt");
	assert_non_null(f);
	assert_int_equal(f->status, 'A');
	assert_int_equal(f->additions, 2);
	f = find_file(&d, "link");
	assert_non_null(f);
	assert_int_equal(f->status, 'M');
	assert_non_null(strstr(d.patch, "+line3 edited"));
	assert_non_null(strstr(d.patch, "+run.sh"));
	assert_null(strstr(d.patch, "ignored"));
	gitrepo_diff_done(&d);

	/* Files too large to read count as changed when their size differs. */
	diff_tree(target, 4, &d);
	f = find_file(&d, "app.py");
	assert_non_null(f);
	assert_true(f->binary);
	gitrepo_diff_done(&d);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_diff_worktree),
	};
	return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
