/* SPDX-License-Identifier: MIT */
/*
 * GitRepo: the project's git repository, read and written through libgit2 without ever
 * touching the user's working tree, index or HEAD. Everything here works on objects and
 * refs only: checkouts go to a fresh directory of the caller's choosing, patches are applied
 * and merges computed in in-memory indexes, and branches move only by compare-and-swap.
 *
 * Commit arguments ("spec") are either a full 40-hex commit id or a local branch name
 * ("main", "agent/fix-1"); nothing else (no revision expressions: agents send these).
 * Ids are returned as 40-hex NUL-terminated strings in caller buffers of GITREPO_ID_SIZE.
 *
 * Ownership: gitrepo_open() returns a GitRepo the caller frees with gitrepo_free(). Result
 * structs (GitBranch arrays, GitCommitInfo, GitCheckoutResult, GitDiff, GitMergeResult) are
 * filled on success only, owned by the caller and released with their _free/_done function;
 * the one exception is gitrepo_merge(), which also fills ret->conflicts on -EEXIST.
 *
 * Errors: -errno, with err (optional) naming what was being done, the path/branch/commit
 * involved and libgit2's own message. Codes with a meaning callers act on:
 *   -ENOENT   repository, branch, commit or file not found
 *   -ESTALE   compare-and-swap lost: the branch moved (or exists / vanished)
 *   -EEXIST   a patch does not apply cleanly, or a merge conflicts (kind "conflict")
 *   -EFBIG    a size limit was hit
 *   -EINVAL   malformed input (bad spec, bad branch name, malformed patch, unsafe path)
 *
 * Thread-safety: libgit2 is initialised once per process (pthread_once) on the first
 * gitrepo_open(). A git_repository object must not be used by two threads at once, so each
 * GitRepo holds a mutex taken by every call: one GitRepo may be shared by threads (calls are
 * serialised), and threads that want parallelism open their own GitRepo on the same path.
 * Ref updates are safe across GitRepos and processes (libgit2 lock files + CAS).
 *
 * Host config isolation: the global, XDG and system git config files are not read, so the
 * daemon's behaviour does not depend on root's ~/.gitconfig; the repository's own config is.
 * Owner validation (safe.directory) is off: the daemon (root) is handed the repository
 * path explicitly by its administrator, and nothing here runs hooks or filters.
 *
 * Note: moving the branch that a non-bare repository has checked out (e.g. merging into
 * production's "main") leaves that working tree as it was, so `git status` there then shows
 * the difference, exactly as after a push to a checked-out branch.
 */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "beneath.h"
#include "error.h"
#include "strbuf.h"

#define GITREPO_ID_SIZE 41 /* 40 hex digits + NUL */
#define GITREPO_COMMITTER_NAME "branchbox"
#define GITREPO_COMMITTER_EMAIL "branchbox@branchbox.invalid"
#define GITREPO_PATCH_MAX ((size_t)16 << 20) /* largest patch text gitrepo_apply_patch takes */

typedef struct GitRepo GitRepo;

/* Open the repository at path (bare, a work tree's top directory or its .git directory).
 * Parent directories are not searched. */
int gitrepo_open(const char *path, GitRepo **ret, BbxError *err);
GitRepo *gitrepo_free(GitRepo *repo);
DEFINE_TRIVIAL_CLEANUP_FUNC(GitRepo *, gitrepo_free)
/* The path given to gitrepo_open() (owned by repo). */
const char *gitrepo_path(const GitRepo *repo);
bool gitrepo_is_bare(GitRepo *repo);

/* ---- branches and commits ---- */

typedef struct GitBranch {
	char *name;		  /* short name, e.g. "main" */
	char id[GITREPO_ID_SIZE]; /* commit the branch points at */
} GitBranch;

/* Local branches sorted by name. */
int gitrepo_list_branches(GitRepo *repo, GitBranch **ret, size_t *ret_n, BbxError *err);
void gitrepo_branches_free(GitBranch *branches, size_t n);

/* Resolve a spec (40-hex id or branch name) to a commit id; -ENOENT when absent. */
int gitrepo_resolve(GitRepo *repo, const char *spec, char ret_id[static GITREPO_ID_SIZE],
		    BbxError *err);
/* Whether name is acceptable as a branch name (git's ref-name rules under refs/heads/). */
bool gitrepo_branch_name_is_valid(const char *name);

typedef struct GitCommitInfo {
	char id[GITREPO_ID_SIZE];
	char *summary; /* first paragraph of the message, one line */
	char *message; /* whole message */
	char *author_name;
	char *author_email;
	int64_t author_time;  /* seconds since the epoch */
	int author_tz_offset; /* minutes east of UTC */
	size_t n_parents;
	char (*parents)[GITREPO_ID_SIZE];
} GitCommitInfo;

int gitrepo_commit_info(GitRepo *repo, const char *spec, GitCommitInfo *ret, BbxError *err);
void gitrepo_commit_info_done(GitCommitInfo *info);

/* Read the blob at path ("a/b/c", relative to the tree root) in commit spec. *ret is
 * NUL-terminated (the NUL is not counted in *ret_size). -ENOENT when the path is absent,
 * -EISDIR when it is a directory, -EFBIG when larger than max bytes. */
int gitrepo_read_file(GitRepo *repo, const char *spec, const char *path, size_t max, char **ret,
		      size_t *ret_size, BbxError *err);

/* ---- checkout into a directory ---- */

typedef struct GitCheckoutResult {
	char id[GITREPO_ID_SIZE]; /* commit checked out */
	size_t n_files;
	size_t n_symlinks;
	size_t n_dirs;
	char **skipped_submodules; /* strv (NULL-terminated, never NULL on success) */
} GitCheckoutResult;

/* Write the tree of commit spec to target_dir, which must not exist yet. Files get 0644 or
 * 0755 (git's executable bit), symlinks are written as symlinks (never followed), submodules
 * are skipped and listed. Entries named "", ".", "..", ".git" or containing '/' are refused
 * (-EINVAL). Atomic: the tree is written into a staging directory next to target_dir which
 * is then renamed into place, so target_dir either does not exist or is complete; on
 * failure the staging directory is removed. */
int gitrepo_checkout(GitRepo *repo, const char *spec, const char *target_dir,
		     GitCheckoutResult *ret, BbxError *err);
void gitrepo_checkout_result_done(GitCheckoutResult *res);

/* ---- diff ---- */

typedef struct GitDiffFile {
	char *path;	/* new path (old path for deletions) */
	char *old_path; /* differs from path only for renames */
	char status;	/* 'A'dded 'D'eleted 'M'odified 'R'enamed 'T'ype change */
	bool binary;
	size_t additions;
	size_t deletions;
} GitDiffFile;

typedef struct GitDiff {
	GitDiffFile *files;
	size_t n_files;
	size_t additions; /* totals over all files */
	size_t deletions;
	char *patch; /* unified patch text, NUL-terminated, at most max bytes */
	size_t patch_size;
	bool patch_truncated; /* the patch was cut at a file boundary to fit max */
} GitDiff;

/* Changes from commit `from` to commit `to` (renames detected). The patch text keeps whole
 * files only: the first file that does not fit ends it and sets patch_truncated; the file
 * list and counts are always complete. */
int gitrepo_diff(GitRepo *repo, const char *from, const char *to, size_t max_patch, GitDiff *ret,
		 BbxError *err);
void gitrepo_diff_done(GitDiff *diff);

/*
 * Changes from commit `from` to the files of a work tree (beneath_collect(): regular files and
 * symlinks, already read by the caller, sorted by path), like gitrepo_diff() without rename
 * detection. A file left unread (too large) counts as changed, binary, when its size differs
 * from the committed blob's, else as unchanged. Mode changes are not reported.
 */
int gitrepo_diff_worktree(GitRepo *repo, const char *from, const BeneathFile *files, size_t n,
			  size_t max_patch, GitDiff *ret, BbxError *err);

/* ---- writing: commits and branches ---- */

/* Move branch from expected_id to new_id atomically. expected_id NULL means "create": the
 * branch must not exist. -ESTALE (kind "conflict") when the branch is not where the caller
 * expected (moved, exists, or vanished). new_id must name an existing commit. */
int gitrepo_branch_cas(GitRepo *repo, const char *branch, const char *expected_id,
		       const char *new_id, const char *log_message, BbxError *err);

typedef struct GitApplyRequest {
	const char *base;  /* spec of the commit the patch applies to */
	const char *patch; /* unified diff text (git diff or diff -u with a/ b/) */
	size_t patch_size;
	const char *author;  /* "Name <email>", e.g. "agent:x <agent@branchbox.invalid>" */
	const char *message; /* commit message */
	const char *branch;  /* optional: branch to move to the new commit; it must
			      * either not exist or point at base (CAS, -ESTALE) */
} GitApplyRequest;

/* Apply req->patch to the tree of req->base and commit the result with base as parent.
 * -EINVAL for a malformed or empty patch or one touching an unsafe path, -EEXIST when a
 * hunk does not apply (the message names the file). */
int gitrepo_apply_patch(GitRepo *repo, const GitApplyRequest *req,
			char ret_id[static GITREPO_ID_SIZE], BbxError *err);

/* Pure helpers of gitrepo_apply_patch() (gitpatch.c), exposed for tests and fuzzing. */
/* Whether the text has a "diff --git" line, so libgit2 parses it as it is. */
bool gitrepo_patch_is_git_style(const char *patch, size_t n);
/* Append the git form of plain `diff -u`/`diff -ruN` text to out. -EINVAL (err says what
 * is malformed, and where), -ENOMEM; out may hold part of the result on failure. */
int gitrepo_patch_to_git(const char *patch, size_t n, StrBuf *out, BbxError *err);

/* *ret = whether commit `ancestor` is reachable from `descendant` (true when equal). */
int gitrepo_is_ancestor(GitRepo *repo, const char *ancestor, const char *descendant, bool *ret,
			BbxError *err);

typedef enum GitMergeKind {
	GITREPO_MERGE_UP_TO_DATE,   /* head is already contained in base: id = base */
	GITREPO_MERGE_FAST_FORWARD, /* base is an ancestor of head: id = head */
	GITREPO_MERGE_COMMIT,	    /* a new merge commit with parents (base, head) */
} GitMergeKind;

typedef struct GitMergeResult {
	GitMergeKind kind;
	char id[GITREPO_ID_SIZE]; /* the commit base's branch should move to */
	char **conflicts;	  /* on -EEXIST: conflicting paths (strv), else NULL */
} GitMergeResult;

/* Merge head into base without moving any branch: the caller moves base's branch to
 * ret->id with gitrepo_branch_cas(). author ("Name <email>") and message are used for a
 * merge commit (message NULL: "Merge <head> into <base>"). Conflicts: -EEXIST, the message
 * lists the paths and ret->conflicts holds them. */
int gitrepo_merge(GitRepo *repo, const char *base, const char *head, const char *author,
		  const char *message, GitMergeResult *ret, BbxError *err);
void gitrepo_merge_result_done(GitMergeResult *res);
