/* SPDX-License-Identifier: MIT */
/*
 * gitrepo against real repositories built with the git CLI in a temporary directory. The
 * fixture is a non-bare repository with main checked out, an uncommitted change and a staged
 * file, so the last test can prove that nothing here touched the working tree, index or HEAD.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <dirent.h>
#include <errno.h>
#include <limits.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "error.h"
#include "file-util.h"
#include "gitrepo.h"
#include "strbuf.h"

static char tmpdir[] = "/tmp/bbx-test-git-XXXXXX";
static char repo_path[512];
static char status_before[8192];
static char head_before[256];
static char index_before[128];
static GitRepo *repo;

/* Run a shell command inside the fixture repository; fails the test on a non-zero exit. */
_printf_(1, 2) static void sh(const char *fmt, ...)
{
	_cleanup_strbuf_ StrBuf cmd = STRBUF_INIT;
	va_list ap;

	assert_int_equal(strbuf_appendf(&cmd, "cd '%s' && ", repo_path), 0);
	va_start(ap, fmt);
	assert_int_equal(strbuf_vappendf(&cmd, fmt, ap), 0);
	va_end(ap);
	int rc = system(strbuf_str(&cmd));
	if (rc != 0)
		fail_msg("command failed (%d): %s", rc, strbuf_str(&cmd));
}

/* Run a command in the fixture and return its stdout with trailing newlines removed. */
_printf_(3, 4) static void capture(char *out, size_t size, const char *fmt, ...)
{
	_cleanup_strbuf_ StrBuf cmd = STRBUF_INIT;
	va_list ap;
	size_t n;
	FILE *f;

	assert_int_equal(strbuf_appendf(&cmd, "cd '%s' && ", repo_path), 0);
	va_start(ap, fmt);
	assert_int_equal(strbuf_vappendf(&cmd, fmt, ap), 0);
	va_end(ap);
	f = popen(strbuf_str(&cmd), "re");
	assert_non_null(f);
	n = fread(out, 1, size - 1, f);
	out[n] = '\0';
	assert_int_equal(pclose(f), 0);
	while (n > 0 && out[n - 1] == '\n')
		out[--n] = '\0';
}

static int group_setup(void **state)
{
	char home[PATH_MAX];

	if (!mkdtemp(tmpdir))
		return -1;
	snprintf(repo_path, sizeof(repo_path), "%s/work", tmpdir);
	snprintf(home, sizeof(home), "%s/home", tmpdir);
	if (mkdir(home, 0700) < 0 || mkdir(repo_path, 0755) < 0)
		return -1;
	/* Keep the host's git config out of the fixture. */
	setenv("HOME", home, 1);
	setenv("GIT_CONFIG_NOSYSTEM", "1", 1);
	setenv("GIT_AUTHOR_NAME", "Fixture Author", 1);
	setenv("GIT_AUTHOR_EMAIL", "author@example.invalid", 1);
	setenv("GIT_COMMITTER_NAME", "Fixture Author", 1);
	setenv("GIT_COMMITTER_EMAIL", "author@example.invalid", 1);

	sh("git init -q -b main . && mkdir -p dir/sub .branchbox && "
	   "printf 'line1\\nline2\\nline3\\nline4\\nline5\\n' > app.py && "
	   "printf 'README\\n' > README.md && "
	   "printf '#!/bin/sh\\necho run\\n' > run.sh && chmod 755 run.sh && "
	   "ln -s app.py link && printf 'deep\\n' > dir/sub/file.txt && "
	   "printf 'applications: {}\\n' > .branchbox/config.yaml && "
	   "git add -A && git commit -q -m 'initial commit' -m 'body text'");
	/* feature: one modified line and one new file on top of main. */
	sh("git checkout -q -b feature && sed -i 's/line2/line2 changed/' app.py && "
	   "printf 'new\\n' > new.txt && git add -A && git commit -q -m 'feature work'");
	/* side: diverges from main in another file (clean merge with feature). */
	sh("git checkout -q -b side main && printf 'README more\\n' >> README.md && "
	   "git commit -q -am 'side work'");
	/* clash: edits the same line as feature (conflicting merge). */
	sh("git checkout -q -b clash main && sed -i 's/line2/line2 clashing/' app.py && "
	   "git commit -q -am 'clash work'");
	/* withsub: a gitlink entry (submodule). */
	sh("git checkout -q -b withsub main && "
	   "git update-index --add --cacheinfo 160000,$(git rev-parse main),vendor/lib && "
	   "git commit -q -m 'add submodule'");
	/* unsafe: a tree with a '..' entry, built by plumbing as an attacker would. */
	sh("t=$(printf '100644 blob %%s\\t..\\n' $(git rev-parse main:README.md) | git mktree) && "
	   "c=$(git commit-tree -p main -m unsafe $t) && git branch unsafe $c");
	/* Back on main with user work in progress: one unstaged edit, one staged file. */
	sh("git checkout -q main && printf 'local edit\\n' >> README.md && "
	   "printf 'staged\\n' > staged.txt && git add staged.txt");

	capture(status_before, sizeof(status_before), "git status --porcelain");
	capture(head_before, sizeof(head_before), "git symbolic-ref HEAD && git rev-parse HEAD");
	capture(index_before, sizeof(index_before), "sha256sum .git/index");
	if (gitrepo_open(repo_path, &repo, NULL) < 0)
		return -1;
	return 0;
}

static int group_teardown(void **state)
{
	repo = gitrepo_free(repo);
	(void)rm_rf(tmpdir);
	return 0;
}

static void rev_parse(const char *what, char out[static GITREPO_ID_SIZE])
{
	char buf[128];

	capture(buf, sizeof(buf), "git rev-parse '%s'", what);
	assert_int_equal(strlen(buf), 40);
	memcpy(out, buf, GITREPO_ID_SIZE);
}

static void test_open(void **state)
{
	BbxError err = BBX_ERROR_INIT;
	_cleanup_(gitrepo_freep) GitRepo *r = NULL;
	char path[PATH_MAX];

	snprintf(path, sizeof(path), "%s/missing", tmpdir);
	assert_int_equal(gitrepo_open(path, &r, &err), -ENOENT);
	assert_non_null(strstr(err.message, path));

	err = (BbxError)BBX_ERROR_INIT;
	snprintf(path, sizeof(path), "%s/home", tmpdir);
	assert_int_equal(gitrepo_open(path, &r, &err), -ENOENT);
	assert_non_null(strstr(err.message, "not a git repository"));
	assert_non_null(strstr(err.message, path));

	/* A subdirectory of a work tree is not the repository: no upward search. */
	snprintf(path, sizeof(path), "%s/dir", repo_path);
	assert_int_equal(gitrepo_open(path, &r, NULL), -ENOENT);

	assert_false(gitrepo_is_bare(repo));
	assert_string_equal(gitrepo_path(repo), repo_path);

	/* A bare clone opens too and sees the same branches. */
	sh("git clone -q --bare . ../bare.git");
	snprintf(path, sizeof(path), "%s/bare.git", tmpdir);
	assert_int_equal(gitrepo_open(path, &r, &err), 0);
	assert_true(gitrepo_is_bare(r));
	char a[GITREPO_ID_SIZE], b[GITREPO_ID_SIZE];
	assert_int_equal(gitrepo_resolve(r, "feature", a, NULL), 0);
	rev_parse("feature", b);
	assert_string_equal(a, b);
}

static void test_branches(void **state)
{
	GitBranch *list = NULL;
	size_t n = 0;
	char id[GITREPO_ID_SIZE], want[GITREPO_ID_SIZE];
	bool seen_main = false, seen_feature = false;

	assert_int_equal(gitrepo_list_branches(repo, &list, &n, NULL), 0);
	assert_true(n >= 6);
	for (size_t i = 0; i < n; i++) {
		if (i > 0)
			assert_true(strcmp(list[i - 1].name, list[i].name) < 0);
		rev_parse(list[i].name, want);
		assert_string_equal(list[i].id, want);
		seen_main |= strcmp(list[i].name, "main") == 0;
		seen_feature |= strcmp(list[i].name, "feature") == 0;
	}
	assert_true(seen_main && seen_feature);
	gitrepo_branches_free(list, n);

	assert_int_equal(gitrepo_resolve(repo, "main", id, NULL), 0);
	rev_parse("main", want);
	assert_string_equal(id, want);
	/* A full id resolves to itself. */
	assert_int_equal(gitrepo_resolve(repo, want, id, NULL), 0);
	assert_string_equal(id, want);

	BbxError err = BBX_ERROR_INIT;
	assert_int_equal(gitrepo_resolve(repo, "nope", id, &err), -ENOENT);
	assert_non_null(strstr(err.message, "nope"));
	assert_string_equal(bbx_error_kind_name(err.kind), "not_found");
	/* Revision expressions are not accepted from callers. */
	assert_int_equal(gitrepo_resolve(repo, "main~1", id, NULL), -EINVAL);
	assert_int_equal(gitrepo_resolve(repo, "", id, NULL), -EINVAL);
	assert_int_equal(
		gitrepo_resolve(repo, "0123456789012345678901234567890123456789", id, NULL),
		-ENOENT);
	assert_true(gitrepo_branch_name_is_valid("agent/fix-1"));
	assert_false(gitrepo_branch_name_is_valid("bad..name"));
	assert_false(gitrepo_branch_name_is_valid("-x"));
	assert_false(gitrepo_branch_name_is_valid("a b"));
}

static void test_commit_info(void **state)
{
	GitCommitInfo info = { 0 };
	char main_id[GITREPO_ID_SIZE];

	rev_parse("main", main_id);
	assert_int_equal(gitrepo_commit_info(repo, "feature", &info, NULL), 0);
	assert_string_equal(info.summary, "feature work");
	assert_string_equal(info.author_name, "Fixture Author");
	assert_string_equal(info.author_email, "author@example.invalid");
	assert_true(info.author_time > 1600000000);
	assert_int_equal(info.n_parents, 1);
	assert_string_equal(info.parents[0], main_id);
	gitrepo_commit_info_done(&info);

	assert_int_equal(gitrepo_commit_info(repo, "main", &info, NULL), 0);
	assert_string_equal(info.summary, "initial commit");
	assert_non_null(strstr(info.message, "body text"));
	assert_int_equal(info.n_parents, 0);
	gitrepo_commit_info_done(&info);
}

static void test_read_file(void **state)
{
	BbxError err = BBX_ERROR_INIT;
	_cleanup_free_ char *data = NULL;
	char *p = NULL;
	size_t size = 0;

	assert_int_equal(
		gitrepo_read_file(repo, "main", ".branchbox/config.yaml", 4096, &data, &size, NULL),
		0);
	assert_string_equal(data, "applications: {}\n");
	assert_int_equal(size, strlen("applications: {}\n"));

	assert_int_equal(gitrepo_read_file(repo, "main", "new.txt", 4096, &p, &size, &err),
			 -ENOENT);
	assert_non_null(strstr(err.message, "new.txt"));
	assert_int_equal(gitrepo_read_file(repo, "feature", "new.txt", 4096, &p, &size, NULL), 0);
	assert_string_equal(p, "new\n");
	free(p);
	assert_int_equal(gitrepo_read_file(repo, "main", "dir/sub", 4096, &p, &size, NULL),
			 -EISDIR);
	assert_int_equal(gitrepo_read_file(repo, "main", "dir/sub/file.txt", 3, &p, &size, NULL),
			 -EFBIG);
	assert_int_equal(gitrepo_read_file(repo, "main", "/etc/passwd", 4096, &p, &size, NULL),
			 -EINVAL);
	assert_int_equal(gitrepo_read_file(repo, "nope", "app.py", 4096, &p, &size, NULL), -ENOENT);
}

static void closedirp(DIR **d)
{
	if (*d)
		closedir(*d);
}

/* Names in dir that look like our staging directories. */
static int count_staging(const char *dir)
{
	_cleanup_(closedirp) DIR *d = opendir(dir);
	struct dirent *de;
	int n = 0;

	assert_non_null(d);
	while ((de = readdir(d)))
		if (strstr(de->d_name, ".staging-"))
			n++;
	return n;
}

static void test_checkout(void **state)
{
	GitCheckoutResult res = { 0 };
	BbxError err = BBX_ERROR_INIT;
	char target[512], p[PATH_MAX], link[PATH_MAX], want[GITREPO_ID_SIZE];
	_cleanup_free_ char *data = NULL;
	struct stat st;
	ssize_t n;

	snprintf(target, sizeof(target), "%s/co-main", tmpdir);
	assert_int_equal(gitrepo_checkout(repo, "main", target, &res, &err), 0);
	rev_parse("main", want);
	assert_string_equal(res.id, want);
	assert_int_equal(res.n_files, 5);
	assert_int_equal(res.n_symlinks, 1);
	assert_int_equal(res.n_dirs, 3);
	assert_null(res.skipped_submodules[0]);
	gitrepo_checkout_result_done(&res);

	snprintf(p, sizeof(p), "%s/run.sh", target);
	assert_int_equal(lstat(p, &st), 0);
	assert_int_equal(st.st_mode & 07777, 0755);
	snprintf(p, sizeof(p), "%s/app.py", target);
	assert_int_equal(lstat(p, &st), 0);
	assert_int_equal(st.st_mode & 07777, 0644);
	snprintf(p, sizeof(p), "%s/link", target);
	assert_int_equal(lstat(p, &st), 0);
	assert_true(S_ISLNK(st.st_mode));
	n = readlink(p, link, sizeof(link) - 1);
	assert_int_equal(n, 6);
	link[n] = '\0';
	assert_string_equal(link, "app.py");
	snprintf(p, sizeof(p), "%s/dir/sub/file.txt", target);
	assert_int_equal(read_full_file(p, 4096, &data, NULL), 0);
	assert_string_equal(data, "deep\n");
	snprintf(p, sizeof(p), "%s/.git", target);
	assert_int_equal(lstat(p, &st), -1);
	/* The user's uncommitted and staged work is not in a checkout of the commit. */
	snprintf(p, sizeof(p), "%s/staged.txt", target);
	assert_int_equal(lstat(p, &st), -1);

	/* The target must not exist already. */
	err = (BbxError)BBX_ERROR_INIT;
	assert_int_equal(gitrepo_checkout(repo, "feature", target, &res, &err), -EEXIST);
	assert_non_null(strstr(err.message, target));

	/* Submodules are skipped and reported. */
	snprintf(target, sizeof(target), "%s/co-sub", tmpdir);
	assert_int_equal(gitrepo_checkout(repo, "withsub", target, &res, NULL), 0);
	assert_string_equal(res.skipped_submodules[0], "vendor/lib");
	assert_null(res.skipped_submodules[1]);
	gitrepo_checkout_result_done(&res);
	snprintf(p, sizeof(p), "%s/vendor/lib", target);
	assert_int_equal(lstat(p, &st), -1);

	/* A tree with a ".." entry is refused, and nothing is left behind. */
	err = (BbxError)BBX_ERROR_INIT;
	snprintf(target, sizeof(target), "%s/co-unsafe", tmpdir);
	assert_int_equal(gitrepo_checkout(repo, "unsafe", target, &res, &err), -EINVAL);
	print_message("# %s\n", err.message);
	assert_non_null(strstr(err.message, "'..'"));
	assert_int_equal(lstat(target, &st), -1);
	assert_int_equal(count_staging(tmpdir), 0);
}

static void test_diff(void **state)
{
	GitDiff d = { 0 };
	bool seen_app = false, seen_new = false;

	assert_int_equal(gitrepo_diff(repo, "main", "feature", 1 << 20, &d, NULL), 0);
	assert_int_equal(d.n_files, 2);
	for (size_t i = 0; i < d.n_files; i++) {
		if (strcmp(d.files[i].path, "app.py") == 0) {
			seen_app = true;
			assert_int_equal(d.files[i].status, 'M');
			assert_int_equal(d.files[i].additions, 1);
			assert_int_equal(d.files[i].deletions, 1);
		} else if (strcmp(d.files[i].path, "new.txt") == 0) {
			seen_new = true;
			assert_int_equal(d.files[i].status, 'A');
			assert_int_equal(d.files[i].additions, 1);
			assert_int_equal(d.files[i].deletions, 0);
		}
	}
	assert_true(seen_app && seen_new);
	assert_int_equal(d.additions, 2);
	assert_int_equal(d.deletions, 1);
	assert_false(d.patch_truncated);
	assert_non_null(strstr(d.patch, "+line2 changed"));
	assert_non_null(strstr(d.patch, "diff --git a/new.txt b/new.txt"));
	assert_int_equal(strlen(d.patch), d.patch_size);
	gitrepo_diff_done(&d);

	/* Bounded: the file list stays complete, the patch text is cut. */
	assert_int_equal(gitrepo_diff(repo, "main", "feature", 10, &d, NULL), 0);
	assert_int_equal(d.n_files, 2);
	assert_true(d.patch_truncated);
	assert_true(d.patch_size <= 10);
	gitrepo_diff_done(&d);

	/* Deletion shows under the old path. */
	assert_int_equal(gitrepo_diff(repo, "feature", "main", 1 << 20, &d, NULL), 0);
	bool seen_del = false;
	for (size_t i = 0; i < d.n_files; i++)
		if (strcmp(d.files[i].path, "new.txt") == 0 && d.files[i].status == 'D')
			seen_del = true;
	assert_true(seen_del);
	gitrepo_diff_done(&d);
}

static void test_apply_patch(void **state)
{
	GitDiff d = { 0 };
	BbxError err = BBX_ERROR_INIT;
	char id[GITREPO_ID_SIZE], want[GITREPO_ID_SIZE], main_id[GITREPO_ID_SIZE];
	char tree[128], want_tree[128], author[256];
	GitCommitInfo info = { 0 };

	rev_parse("main", main_id);
	assert_int_equal(gitrepo_diff(repo, "main", "feature", 1 << 20, &d, NULL), 0);
	GitApplyRequest req = {
		.base = "main",
		.patch = d.patch,
		.patch_size = d.patch_size,
		.author = "agent:fixer <agent@branchbox.invalid>",
		.message = "apply the feature as a patch\n",
		.branch = "agent/applied",
	};
	assert_int_equal(gitrepo_apply_patch(repo, &req, id, &err), 0);
	rev_parse("agent/applied", want);
	assert_string_equal(id, want);
	capture(tree, sizeof(tree), "git rev-parse %s^{tree}", id);
	capture(want_tree, sizeof(want_tree), "git rev-parse feature^{tree}");
	assert_string_equal(tree, want_tree);
	capture(author, sizeof(author), "git log -1 --format='%%an <%%ae>|%%cn' %s", id);
	assert_string_equal(author, "agent:fixer <agent@branchbox.invalid>|branchbox");
	assert_int_equal(gitrepo_commit_info(repo, id, &info, NULL), 0);
	assert_int_equal(info.n_parents, 1);
	assert_string_equal(info.parents[0], main_id);
	gitrepo_commit_info_done(&info);

	/* The branch is now past main: applying again on main is a stale CAS. */
	err = (BbxError)BBX_ERROR_INIT;
	assert_int_equal(gitrepo_apply_patch(repo, &req, id, &err), -ESTALE);
	assert_non_null(strstr(err.message, "agent/applied"));

	/* Applying it on top of the branch fails cleanly: the hunk is already there. */
	err = (BbxError)BBX_ERROR_INIT;
	req.base = "agent/applied";
	assert_int_equal(gitrepo_apply_patch(repo, &req, id, &err), -EEXIST);
	assert_string_equal(bbx_error_kind_name(err.kind), "conflict");
	assert_non_null(strstr(err.message, "app.py") ?: strstr(err.message, "new.txt"));
	rev_parse("agent/applied", id);
	assert_string_equal(id, want);
	gitrepo_diff_done(&d);

	/* A hunk whose context is not in the file names the file. */
	static const char bad[] = "diff --git a/app.py b/app.py\n"
				  "--- a/app.py\n"
				  "+++ b/app.py\n"
				  "@@ -1,3 +1,3 @@\n"
				  " line1\n"
				  "-no such line\n"
				  "+replacement\n"
				  " line3\n";
	err = (BbxError)BBX_ERROR_INIT;
	req = (GitApplyRequest){ .base = "main",
				 .patch = bad,
				 .patch_size = strlen(bad),
				 .author = "a <a@b>",
				 .message = "m" };
	assert_int_equal(gitrepo_apply_patch(repo, &req, id, &err), -EEXIST);
	print_message("# %s\n", err.message);
	assert_non_null(strstr(err.message, "app.py"));

	/* Malformed text and empty patches are refused as invalid. */
	err = (BbxError)BBX_ERROR_INIT;
	req.patch = "diff --git a/x b/x\n@@ garbage\n";
	req.patch_size = strlen(req.patch);
	assert_int_equal(gitrepo_apply_patch(repo, &req, id, &err), -EINVAL);
	print_message("# %s\n", err.message);
	req.patch = "just some words\n";
	req.patch_size = strlen(req.patch);
	assert_int_equal(gitrepo_apply_patch(repo, &req, id, NULL), -EINVAL);

	/* Paths escaping the tree are refused before anything is written. */
	static const char escape[] = "diff --git a/../evil b/../evil\n"
				     "new file mode 100644\n"
				     "--- /dev/null\n"
				     "+++ b/../evil\n"
				     "@@ -0,0 +1 @@\n"
				     "+pwned\n";
	err = (BbxError)BBX_ERROR_INIT;
	req.patch = escape;
	req.patch_size = strlen(escape);
	assert_int_equal(gitrepo_apply_patch(repo, &req, id, &err), -EINVAL);
	print_message("# %s\n", err.message);

	/* A bad author is refused. */
	static const char good[] = "diff --git a/README.md b/README.md\n"
				   "--- a/README.md\n"
				   "+++ b/README.md\n"
				   "@@ -1 +1 @@\n"
				   "-README\n"
				   "+README v2\n";
	req = (GitApplyRequest){ .base = "main",
				 .patch = good,
				 .patch_size = strlen(good),
				 .author = "no email",
				 .message = "m" };
	assert_int_equal(gitrepo_apply_patch(repo, &req, id, NULL), -EINVAL);
	/* Without a branch, only the commit is made. */
	req.author = "agent:x <agent@branchbox.invalid>";
	assert_int_equal(gitrepo_apply_patch(repo, &req, id, NULL), 0);
	_cleanup_free_ char *data = NULL;
	assert_int_equal(gitrepo_read_file(repo, id, "README.md", 100, &data, NULL, NULL), 0);
	assert_string_equal(data, "README v2\n");
}

/* `diff -ruN` and `diff -u` output (no "diff --git" lines) applies as well. */
static void test_apply_plain_diff(void **state)
{
	static const char ruN[] = "diff -ruN a/app.py b/app.py\n"
				  "--- a/app.py\t2026-01-01 10:00:00.000000000 +0000\n"
				  "+++ b/app.py\t2026-01-01 10:00:01.000000000 +0000\n"
				  "@@ -1,3 +1,3 @@\n"
				  " line1\n"
				  "-line2\n"
				  "+line2 plain\n"
				  " line3\n"
				  "diff -ruN a/docs/new.md b/docs/new.md\n"
				  "--- a/docs/new.md\t1970-01-01 00:00:00.000000000 +0000\n"
				  "+++ b/docs/new.md\t2026-01-01 10:00:01.000000000 +0000\n"
				  "@@ -0,0 +1,2 @@\n"
				  "+-- a line that looks like a header\n"
				  "+second\n"
				  "Only in b: something\n"
				  "diff -ruN a/run.sh b/run.sh\n"
				  "--- a/run.sh\t2026-01-01 10:00:00.000000000 +0000\n"
				  "+++ b/run.sh\t1970-01-01 00:00:00.000000000 +0000\n"
				  "@@ -1,2 +0,0 @@\n"
				  "-#!/bin/sh\n"
				  "-echo run\n";
	static const char devnull[] = "--- /dev/null\n"
				      "+++ b/notes.txt\n"
				      "@@ -0,0 +1 @@\n"
				      "+note\n"
				      "\\ No newline at end of file\n"
				      "--- README.md.orig\n"
				      "+++ README.md\n"
				      "@@ -1 +1 @@\n"
				      "-README\n"
				      "+README plain\n";
	static const char cut[] = "--- a/app.py\n+++ b/app.py\n@@ -1,3 +1,3 @@\n line1\n";
	GitApplyRequest req = { .base = "main",
				.patch = ruN,
				.patch_size = strlen(ruN),
				.author = "agent:x <agent@branchbox.invalid>",
				.message = "plain" };
	BbxError err = BBX_ERROR_INIT;
	char id[GITREPO_ID_SIZE], files[1024];
	_cleanup_free_ char *app = NULL, *doc = NULL, *note = NULL, *readme = NULL;
	char *p = NULL;

	assert_int_equal(gitrepo_apply_patch(repo, &req, id, &err), 0);
	assert_int_equal(gitrepo_read_file(repo, id, "app.py", 100, &app, NULL, NULL), 0);
	assert_string_equal(app, "line1\nline2 plain\nline3\nline4\nline5\n");
	assert_int_equal(gitrepo_read_file(repo, id, "docs/new.md", 100, &doc, NULL, NULL), 0);
	assert_string_equal(doc, "-- a line that looks like a header\nsecond\n");
	assert_int_equal(gitrepo_read_file(repo, id, "run.sh", 100, &p, NULL, NULL), -ENOENT);
	capture(files, sizeof(files), "git ls-tree -r --name-only %s | tr '\\n' ' '", id);
	assert_string_equal(files, ".branchbox/config.yaml README.md app.py dir/sub/file.txt "
				   "docs/new.md link ");

	req.patch = devnull;
	req.patch_size = strlen(devnull);
	assert_int_equal(gitrepo_apply_patch(repo, &req, id, NULL), 0);
	assert_int_equal(gitrepo_read_file(repo, id, "notes.txt", 100, &note, NULL, NULL), 0);
	assert_string_equal(note, "note");
	assert_int_equal(gitrepo_read_file(repo, id, "README.md", 100, &readme, NULL, NULL), 0);
	assert_string_equal(readme, "README plain\n");

	err = (BbxError)BBX_ERROR_INIT;
	req.patch = cut;
	req.patch_size = strlen(cut);
	assert_int_equal(gitrepo_apply_patch(repo, &req, id, &err), -EINVAL);
	assert_non_null(strstr(err.message, "app.py"));
}

/* The converter alone: what it writes it reads back unchanged, and a header without a path
 * is refused. These cases came from fuzzing (tests/fuzz/corpus/gitpatch/regress-*). */
static void test_patch_to_git(void **state)
{
	static const char plain[] = "--- a/x.c\t2026-01-01\n+++ b/x.c\n@@ -1,2 +1,2 @@\n"
				    "-old\n+new\n\n--- /dev/null\n+++ b/n\n@@ -0,0 +1 @@\n+n\n";
	static const char notahunk[] = "--- a/x\n+++ b/x\nnote: +0,0 @@\n";
	static const char nopath[] = "--- \n+++ \n@@ -1 +1 @@\n-a\n+b\n";
	static const char nul[] = "--- a\n+++  \0\n@@ -1 +1 @@\n-a\n+b\n";
	_cleanup_strbuf_ StrBuf out = STRBUF_INIT;
	_cleanup_strbuf_ StrBuf again = STRBUF_INIT;
	BbxError err = BBX_ERROR_INIT;

	assert_false(gitrepo_patch_is_git_style(plain, strlen(plain)));
	assert_int_equal(gitrepo_patch_to_git(plain, strlen(plain), &out, NULL), 0);
	assert_string_equal(strbuf_str(&out), "diff --git a/x.c b/x.c\n--- a/x.c\n+++ b/x.c\n"
					      "@@ -1,2 +1,2 @@\n-old\n+new\n \n"
					      "diff --git a/n b/n\nnew file mode 100644\n"
					      "--- /dev/null\n+++ b/n\n@@ -0,0 +1 @@\n+n\n");
	assert_true(gitrepo_patch_is_git_style(out.buf, out.len));
	assert_int_equal(gitrepo_patch_to_git(out.buf, out.len, &again, NULL), 0);
	assert_string_equal(strbuf_str(&again), strbuf_str(&out));

	/* A line after a header that only looks like the end of a hunk header is no deletion. */
	strbuf_reset(&again);
	assert_int_equal(gitrepo_patch_to_git(notahunk, strlen(notahunk), &again, NULL), 0);
	assert_string_equal(strbuf_str(&again), "diff --git a/x b/x\n--- a/x\n+++ b/x\n");

	assert_int_equal(gitrepo_patch_to_git(nopath, strlen(nopath), &again, &err), -EINVAL);
	assert_non_null(strstr(err.message, "without a path"));
	err = (BbxError)BBX_ERROR_INIT;
	assert_int_equal(gitrepo_patch_to_git(nul, sizeof(nul) - 1, &again, &err), -EINVAL);
	assert_non_null(strstr(err.message, "without a path"));
}

static void test_branch_cas(void **state)
{
	BbxError err = BBX_ERROR_INIT;
	char main_id[GITREPO_ID_SIZE], feat[GITREPO_ID_SIZE], side[GITREPO_ID_SIZE];
	char now[GITREPO_ID_SIZE];

	rev_parse("main", main_id);
	rev_parse("feature", feat);
	rev_parse("side", side);

	/* Create. */
	assert_int_equal(gitrepo_branch_cas(repo, "cas/one", NULL, main_id, "test", NULL), 0);
	rev_parse("cas/one", now);
	assert_string_equal(now, main_id);
	/* Creating again: it exists. */
	assert_int_equal(gitrepo_branch_cas(repo, "cas/one", NULL, feat, "test", &err), -ESTALE);
	assert_non_null(strstr(err.message, "cas/one"));
	/* Move with the right expectation. */
	assert_int_equal(gitrepo_branch_cas(repo, "cas/one", main_id, feat, NULL, NULL), 0);
	rev_parse("cas/one", now);
	assert_string_equal(now, feat);
	/* Someone else moves it behind our back: our CAS with the old value fails. */
	sh("git update-ref refs/heads/cas/one %s", side);
	err = (BbxError)BBX_ERROR_INIT;
	assert_int_equal(gitrepo_branch_cas(repo, "cas/one", feat, main_id, NULL, &err), -ESTALE);
	assert_string_equal(bbx_error_kind_name(err.kind), "conflict");
	assert_non_null(strstr(err.message, side));
	rev_parse("cas/one", now);
	assert_string_equal(now, side);
	/* Expecting a branch that does not exist. */
	assert_int_equal(gitrepo_branch_cas(repo, "cas/none", main_id, feat, NULL, NULL), -ESTALE);
	/* Bad inputs. */
	assert_int_equal(gitrepo_branch_cas(repo, "bad..name", NULL, feat, NULL, NULL), -EINVAL);
	assert_int_equal(gitrepo_branch_cas(repo, "cas/two", NULL, "main", NULL, NULL), -EINVAL);
	assert_int_equal(gitrepo_branch_cas(repo, "cas/two", NULL,
					    "0123456789012345678901234567890123456789", NULL, NULL),
			 -ENOENT);
}

static void test_merge(void **state)
{
	GitMergeResult res = { 0 };
	BbxError err = BBX_ERROR_INIT;
	char feat[GITREPO_ID_SIZE], main_id[GITREPO_ID_SIZE];
	bool anc;

	rev_parse("feature", feat);
	rev_parse("main", main_id);

	assert_int_equal(gitrepo_is_ancestor(repo, "main", "feature", &anc, NULL), 0);
	assert_true(anc);
	assert_int_equal(gitrepo_is_ancestor(repo, "feature", "main", &anc, NULL), 0);
	assert_false(anc);
	assert_int_equal(gitrepo_is_ancestor(repo, "main", "main", &anc, NULL), 0);
	assert_true(anc);
	assert_int_equal(gitrepo_is_ancestor(repo, "side", "feature", &anc, NULL), 0);
	assert_false(anc);

	/* Fast-forward. */
	assert_int_equal(gitrepo_merge(repo, "main", "feature", "r <r@x>", NULL, &res, NULL), 0);
	assert_int_equal(res.kind, GITREPO_MERGE_FAST_FORWARD);
	assert_string_equal(res.id, feat);
	gitrepo_merge_result_done(&res);

	/* Already contained. */
	assert_int_equal(gitrepo_merge(repo, "feature", "main", "r <r@x>", NULL, &res, NULL), 0);
	assert_int_equal(res.kind, GITREPO_MERGE_UP_TO_DATE);
	assert_string_equal(res.id, feat);
	gitrepo_merge_result_done(&res);

	/* A real merge commit: both sides' changes, two parents, no branch moved. */
	char side_before[GITREPO_ID_SIZE], side_after[GITREPO_ID_SIZE];
	rev_parse("side", side_before);
	assert_int_equal(gitrepo_merge(repo, "side", "feature", "reviewer <rev@example.invalid>",
				       NULL, &res, NULL),
			 0);
	assert_int_equal(res.kind, GITREPO_MERGE_COMMIT);
	rev_parse("side", side_after);
	assert_string_equal(side_before, side_after);
	GitCommitInfo info = { 0 };
	assert_int_equal(gitrepo_commit_info(repo, res.id, &info, NULL), 0);
	assert_int_equal(info.n_parents, 2);
	assert_string_equal(info.parents[0], side_before);
	assert_string_equal(info.parents[1], feat);
	assert_string_equal(info.author_name, "reviewer");
	assert_string_equal(info.summary, "Merge feature into side");
	gitrepo_commit_info_done(&info);
	_cleanup_free_ char *readme = NULL, *app = NULL, *nw = NULL;
	assert_int_equal(gitrepo_read_file(repo, res.id, "README.md", 100, &readme, NULL, NULL), 0);
	assert_string_equal(readme, "README\nREADME more\n");
	assert_int_equal(gitrepo_read_file(repo, res.id, "app.py", 100, &app, NULL, NULL), 0);
	assert_non_null(strstr(app, "line2 changed"));
	assert_int_equal(gitrepo_read_file(repo, res.id, "new.txt", 100, &nw, NULL, NULL), 0);
	/* The caller then moves the base branch by CAS. */
	assert_int_equal(gitrepo_branch_cas(repo, "side", side_before, res.id, "merge", NULL), 0);
	gitrepo_merge_result_done(&res);

	/* Conflict: the paths are reported and nothing is created. */
	char clash_before[GITREPO_ID_SIZE], clash_after[GITREPO_ID_SIZE];
	rev_parse("clash", clash_before);
	assert_int_equal(gitrepo_merge(repo, "clash", "feature", "r <r@x>", "msg", &res, &err),
			 -EEXIST);
	assert_string_equal(bbx_error_kind_name(err.kind), "conflict");
	assert_non_null(strstr(err.message, "app.py"));
	print_message("# %s\n", err.message);
	assert_non_null(res.conflicts);
	assert_string_equal(res.conflicts[0], "app.py");
	assert_null(res.conflicts[1]);
	gitrepo_merge_result_done(&res);
	rev_parse("clash", clash_after);
	assert_string_equal(clash_before, clash_after);
}

static void *reader_thread(void *arg)
{
	GitRepo *r = arg, *own = NULL;
	intptr_t failures = 0;

	/* A NULL argument: this thread opens its own GitRepo on the same path. */
	if (!r) {
		if (gitrepo_open(repo_path, &own, NULL) < 0)
			return (void *)(intptr_t)1000;
		r = own;
	}
	for (int i = 0; i < 100; i++) {
		char id[GITREPO_ID_SIZE];
		char *data = NULL;
		GitDiff d = { 0 };

		failures += gitrepo_resolve(r, "feature", id, NULL) < 0;
		failures += gitrepo_read_file(r, id, "new.txt", 100, &data, NULL, NULL) < 0 ||
			    strcmp(data, "new\n") != 0;
		free(data);
		failures += gitrepo_diff(r, "main", id, 1 << 16, &d, NULL) < 0 || d.n_files != 2;
		gitrepo_diff_done(&d);
	}
	gitrepo_free(own);
	return (void *)failures;
}

/* One GitRepo shared by threads (its lock serialises them) next to threads with their own. */
static void test_threads(void **state)
{
	pthread_t t[6];

	for (size_t i = 0; i < ELEMENTSOF(t); i++)
		assert_int_equal(pthread_create(&t[i], NULL, reader_thread, i < 4 ? repo : NULL),
				 0);
	for (size_t i = 0; i < ELEMENTSOF(t); i++) {
		void *failures;
		assert_int_equal(pthread_join(t[i], &failures), 0);
		assert_int_equal((intptr_t)failures, 0);
	}
}

/* Runs last: every test above worked on the repository the user has checked out. */
static void test_worktree_untouched(void **state)
{
	char status[8192], head[256], index[128];

	capture(status, sizeof(status), "git status --porcelain");
	capture(head, sizeof(head), "git symbolic-ref HEAD && git rev-parse HEAD");
	capture(index, sizeof(index), "sha256sum .git/index");
	assert_string_equal(status, status_before);
	assert_string_equal(head, head_before);
	assert_string_equal(index, index_before);
	assert_non_null(strstr(status, " M README.md"));
	assert_non_null(strstr(status, "A  staged.txt"));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_open),
		cmocka_unit_test(test_branches),
		cmocka_unit_test(test_commit_info),
		cmocka_unit_test(test_read_file),
		cmocka_unit_test(test_checkout),
		cmocka_unit_test(test_diff),
		cmocka_unit_test(test_apply_patch),
		cmocka_unit_test(test_apply_plain_diff),
		cmocka_unit_test(test_patch_to_git),
		cmocka_unit_test(test_branch_cas),
		cmocka_unit_test(test_merge),
		cmocka_unit_test(test_threads),
		cmocka_unit_test(test_worktree_untouched),
	};
	return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
