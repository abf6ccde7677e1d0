/* SPDX-License-Identifier: MIT */
/*
 * Why this is one file of about 1,200 lines: every part (checkout, diff, branch
 * compare-and-swap, apply, ancestry and merge) uses the GitRepo's repository under its one
 * lock and the small helpers at the top. The seams are the sections below; when the proposal
 * workflow built on diff/apply/merge has landed, they go to gitrepo-checkout.c and
 * gitrepo-merge.c behind a gitrepo-internal.h holding struct GitRepo.
 */
#include "gitrepo.h"

#include <fcntl.h>
#include <git2.h>
#include <limits.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

#include "file-util.h"
#include "strbuf.h"

/* A tree deeper than this is refused rather than recursed into (stack safety). */
#define CHECKOUT_MAX_DEPTH 128

struct GitRepo {
	git_repository *repo;
	char *path;
	pthread_mutex_t lock;
};

/* ---- small helpers ---- */

DEFINE_TRIVIAL_CLEANUP_FUNC(git_commit *, git_commit_free)
DEFINE_TRIVIAL_CLEANUP_FUNC(git_tree *, git_tree_free)
DEFINE_TRIVIAL_CLEANUP_FUNC(git_tree_entry *, git_tree_entry_free)
DEFINE_TRIVIAL_CLEANUP_FUNC(git_blob *, git_blob_free)
DEFINE_TRIVIAL_CLEANUP_FUNC(git_reference *, git_reference_free)
DEFINE_TRIVIAL_CLEANUP_FUNC(git_diff *, git_diff_free)
DEFINE_TRIVIAL_CLEANUP_FUNC(git_patch *, git_patch_free)
DEFINE_TRIVIAL_CLEANUP_FUNC(git_index *, git_index_free)
DEFINE_TRIVIAL_CLEANUP_FUNC(git_signature *, git_signature_free)
DEFINE_TRIVIAL_CLEANUP_FUNC(git_branch_iterator *, git_branch_iterator_free)
DEFINE_TRIVIAL_CLEANUP_FUNC(git_index_conflict_iterator *, git_index_conflict_iterator_free)

static void unlockp(pthread_mutex_t **m)
{
	if (*m)
		pthread_mutex_unlock(*m);
}

/* Take repo's lock for the rest of the calling scope. */
#define REPO_LOCK(r)                                                                               \
	_cleanup_(unlockp) pthread_mutex_t *_repo_lock_ = &(r)->lock;                              \
	pthread_mutex_lock(_repo_lock_)

static int git_code_to_errno(int gerr)
{
	switch (gerr) {
	case GIT_ENOTFOUND: return -ENOENT;
	case GIT_EEXISTS: return -EEXIST;
	case GIT_EMODIFIED: return -ESTALE;
	case GIT_ELOCKED: return -EBUSY;
	case GIT_EINVALIDSPEC:
	case GIT_EINVALID:
	case GIT_EAMBIGUOUS: return -EINVAL;
	case GIT_EBAREREPO: return -EISDIR;
	case GIT_EAPPLYFAIL:
	case GIT_ECONFLICT:
	case GIT_EMERGECONFLICT: return -EEXIST;
	default: return -EIO;
	}
}

static BbxErrorKind git_kind(int code)
{
	switch (code) {
	case -ENOENT: return BBX_NOT_FOUND;
	case -ESTALE:
	case -EEXIST: return BBX_CONFLICT;
	case -EINVAL: return BBX_INVALID;
	case -EFBIG: return BBX_TOO_LARGE;
	default: return BBX_INTERNAL;
	}
}

/* Record a libgit2 failure: "<what>: <libgit2 message>" and return its -errno. */
_printf_(3, 4) static int git_fail(BbxError *err, int gerr, const char *fmt, ...)
{
	const git_error *e = git_error_last();
	int code = gerr < 0 ? git_code_to_errno(gerr) : -EIO;
	char what[768];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(what, sizeof(what), fmt, ap);
	va_end(ap);
	return bbx_error_set(err, code, git_kind(code), "%s: %s", what,
			     e && e->message ? e->message : "unknown libgit2 error");
}

static void oid_hex(const git_oid *oid, char out[static GITREPO_ID_SIZE])
{
	git_oid_tostr(out, GITREPO_ID_SIZE, oid);
}

static bool is_full_hex(const char *s)
{
	size_t i;

	for (i = 0; s[i]; i++)
		if (!strchr("0123456789abcdefABCDEF", s[i]))
			return false;
	return i == 40;
}

bool gitrepo_branch_name_is_valid(const char *name)
{
	char ref[512];
	int valid = 0;

	if (!name || !*name || strlen(name) > 255 || name[0] == '-' || strcmp(name, "HEAD") == 0)
		return false;
	snprintf(ref, sizeof(ref), "refs/heads/%s", name);
	return git_reference_name_is_valid(&valid, ref) == 0 && valid;
}

/* Resolve spec to an oid without taking the lock (callers hold it). */
static int resolve_locked(GitRepo *r, const char *spec, git_oid *ret, BbxError *err)
{
	_cleanup_(git_reference_freep) git_reference *ref = NULL;
	_cleanup_(git_commit_freep) git_commit *commit = NULL;
	git_oid oid;
	int g;

	if (!spec || !*spec)
		return bbx_error_set(err, -EINVAL, BBX_INVALID, "empty commit or branch name");
	if (is_full_hex(spec)) {
		if (git_oid_fromstr(&oid, spec) < 0)
			return bbx_error_set(err, -EINVAL, BBX_INVALID, "invalid commit id '%s'",
					     spec);
	} else {
		if (!gitrepo_branch_name_is_valid(spec))
			return bbx_error_set(
				err, -EINVAL, BBX_INVALID,
				"'%s' is neither a 40-hex commit id nor a valid branch name", spec);
		g = git_branch_lookup(&ref, r->repo, spec, GIT_BRANCH_LOCAL);
		if (g == GIT_ENOTFOUND)
			return bbx_error_set(err, -ENOENT, BBX_NOT_FOUND,
					     "branch '%s' not found in %s", spec, r->path);
		if (g < 0)
			return git_fail(err, g, "looking up branch '%s' in %s", spec, r->path);
		_cleanup_(git_reference_freep) git_reference *resolved = NULL;
		g = git_reference_resolve(&resolved, ref);
		if (g < 0)
			return git_fail(err, g, "resolving branch '%s' in %s", spec, r->path);
		git_oid_cpy(&oid, git_reference_target(resolved));
	}
	g = git_commit_lookup(&commit, r->repo, &oid);
	if (g == GIT_ENOTFOUND)
		return bbx_error_set(err, -ENOENT, BBX_NOT_FOUND, "commit %s not found in %s", spec,
				     r->path);
	if (g < 0)
		return git_fail(err, g, "looking up commit %s in %s", spec, r->path);
	*ret = oid;
	return 0;
}

static int lookup_commit_locked(GitRepo *r, const char *spec, git_commit **ret, BbxError *err)
{
	git_oid oid;
	int k, g;

	k = resolve_locked(r, spec, &oid, err);
	if (k < 0)
		return k;
	g = git_commit_lookup(ret, r->repo, &oid);
	if (g < 0)
		return git_fail(err, g, "looking up commit %s in %s", spec, r->path);
	return 0;
}

/* Parse "Name <email>" into a signature stamped now. */
static int signature_parse(const char *who, git_signature **ret, BbxError *err)
{
	_cleanup_free_ char *name = NULL, *email = NULL;
	const char *lt, *gt;
	size_t n;
	int g;

	if (!who)
		return bbx_error_set(err, -EINVAL, BBX_INVALID, "missing author");
	lt = strrchr(who, '<');
	gt = strrchr(who, '>');
	if (!lt || !gt || gt < lt || gt[1] != '\0')
		return bbx_error_set(err, -EINVAL, BBX_INVALID,
				     "author '%s' is not of the form 'Name <email>'", who);
	n = (size_t)(lt - who);
	while (n > 0 && who[n - 1] == ' ')
		n--;
	if (n == 0 || gt == lt + 1)
		return bbx_error_set(err, -EINVAL, BBX_INVALID, "author '%s' lacks a name or email",
				     who);
	name = strndup(who, n);
	email = strndup(lt + 1, (size_t)(gt - lt - 1));
	if (!name || !email)
		return -ENOMEM;
	g = git_signature_now(ret, name, email);
	if (g < 0)
		return git_fail(err, g, "invalid author '%s'", who);
	return 0;
}

static int commit_create(GitRepo *r, const char *author, const char *message,
			 const git_oid *tree_id, size_t n_parents, const git_commit **parents,
			 git_oid *ret, BbxError *err)
{
	_cleanup_(git_signature_freep) git_signature *sig = NULL, *committer = NULL;
	_cleanup_(git_tree_freep) git_tree *tree = NULL;
	int k, g;

	k = signature_parse(author, &sig, err);
	if (k < 0)
		return k;
	g = git_signature_now(&committer, GITREPO_COMMITTER_NAME, GITREPO_COMMITTER_EMAIL);
	if (g < 0)
		return git_fail(err, g, "creating committer signature");
	g = git_tree_lookup(&tree, r->repo, tree_id);
	if (g < 0)
		return git_fail(err, g, "looking up new tree in %s", r->path);
	g = git_commit_create(ret, r->repo, NULL, sig, committer, NULL, message, tree, n_parents,
			      parents);
	if (g < 0)
		return git_fail(err, g, "creating commit in %s", r->path);
	return 0;
}

/* ---- open/free ---- */

static pthread_once_t lib_once = PTHREAD_ONCE_INIT;
static int lib_init_result;

static void lib_init(void)
{
	static const int levels[] = { GIT_CONFIG_LEVEL_SYSTEM, GIT_CONFIG_LEVEL_XDG,
				      GIT_CONFIG_LEVEL_GLOBAL, GIT_CONFIG_LEVEL_PROGRAMDATA };

	lib_init_result = git_libgit2_init();
	if (lib_init_result < 0)
		return;
	for (size_t i = 0; i < ELEMENTSOF(levels); i++)
		if (git_libgit2_opts(GIT_OPT_SET_SEARCH_PATH, levels[i], "") < 0)
			lib_init_result = -1;
	if (git_libgit2_opts(GIT_OPT_SET_OWNER_VALIDATION, 0) < 0)
		lib_init_result = -1;
}

int gitrepo_open(const char *path, GitRepo **ret, BbxError *err)
{
	_cleanup_(gitrepo_freep) GitRepo *r = NULL;
	struct stat st;
	int g;

	pthread_once(&lib_once, lib_init);
	if (lib_init_result < 0)
		return git_fail(err, lib_init_result, "initialising libgit2");
	if (!path || !*path)
		return bbx_error_set(err, -EINVAL, BBX_INVALID, "empty repository path");
	if (stat(path, &st) < 0)
		return bbx_error_set(err, negative_errno(), BBX_NOT_FOUND, "repository %s: %s",
				     path, strerror(errno));
	if (!S_ISDIR(st.st_mode))
		return bbx_error_set(err, -ENOTDIR, BBX_INVALID, "repository %s is not a directory",
				     path);

	r = calloc(1, sizeof(*r));
	if (!r)
		return -ENOMEM;
	pthread_mutex_init(&r->lock, NULL);
	r->path = strdup(path);
	if (!r->path)
		return -ENOMEM;
	g = git_repository_open_ext(&r->repo, path, GIT_REPOSITORY_OPEN_NO_SEARCH, NULL);
	if (g == GIT_ENOTFOUND)
		return bbx_error_set(err, -ENOENT, BBX_NOT_FOUND, "%s is not a git repository",
				     path);
	if (g < 0)
		return git_fail(err, g, "opening git repository %s", path);
	*ret = TAKE_PTR(r);
	return 0;
}

GitRepo *gitrepo_free(GitRepo *r)
{
	if (!r)
		return NULL;
	git_repository_free(r->repo);
	pthread_mutex_destroy(&r->lock);
	free(r->path);
	free(r);
	return NULL;
}

const char *gitrepo_path(const GitRepo *r)
{
	return r->path;
}

bool gitrepo_is_bare(GitRepo *r)
{
	REPO_LOCK(r);
	return git_repository_is_bare(r->repo);
}

/* ---- branches and commits ---- */

void gitrepo_branches_free(GitBranch *b, size_t n)
{
	for (size_t i = 0; b && i < n; i++)
		free(b[i].name);
	free(b);
}

static int branch_cmp(const void *a, const void *b)
{
	return strcmp(((const GitBranch *)a)->name, ((const GitBranch *)b)->name);
}

int gitrepo_list_branches(GitRepo *r, GitBranch **ret, size_t *ret_n, BbxError *err)
{
	_cleanup_(git_branch_iterator_freep) git_branch_iterator *it = NULL;
	GitBranch *list = NULL;
	size_t n = 0;
	int g, k = 0;

	REPO_LOCK(r);
	g = git_branch_iterator_new(&it, r->repo, GIT_BRANCH_LOCAL);
	if (g < 0)
		return git_fail(err, g, "listing branches of %s", r->path);
	for (;;) {
		_cleanup_(git_reference_freep) git_reference *ref = NULL, *resolved = NULL;
		git_branch_t type;
		const char *name;

		g = git_branch_next(&ref, &type, it);
		if (g == GIT_ITEROVER)
			break;
		if (g < 0) {
			k = git_fail(err, g, "listing branches of %s", r->path);
			goto fail;
		}
		g = git_branch_name(&name, ref);
		if (g < 0) {
			k = git_fail(err, g, "reading a branch name in %s", r->path);
			goto fail;
		}
		/* A dangling symbolic branch has no commit: leave it out rather than fail. */
		if (git_reference_resolve(&resolved, ref) < 0)
			continue;
		GitBranch *nl = reallocarray(list, n + 1, sizeof(*list));
		if (!nl) {
			k = -ENOMEM;
			goto fail;
		}
		list = nl;
		list[n].name = strdup(name);
		if (!list[n].name) {
			k = -ENOMEM;
			goto fail;
		}
		oid_hex(git_reference_target(resolved), list[n].id);
		n++;
	}
	if (n > 0)
		qsort(list, n, sizeof(*list), branch_cmp);
	*ret = list;
	*ret_n = n;
	return 0;
fail:
	gitrepo_branches_free(list, n);
	return k;
}

int gitrepo_resolve(GitRepo *r, const char *spec, char ret_id[static GITREPO_ID_SIZE],
		    BbxError *err)
{
	git_oid oid;
	int k;

	REPO_LOCK(r);
	k = resolve_locked(r, spec, &oid, err);
	if (k < 0)
		return k;
	oid_hex(&oid, ret_id);
	return 0;
}

void gitrepo_commit_info_done(GitCommitInfo *c)
{
	if (!c)
		return;
	free(c->summary);
	free(c->message);
	free(c->author_name);
	free(c->author_email);
	free(c->parents);
	*c = (GitCommitInfo){ 0 };
}

int gitrepo_commit_info(GitRepo *r, const char *spec, GitCommitInfo *ret, BbxError *err)
{
	_cleanup_(git_commit_freep) git_commit *c = NULL;
	_cleanup_(gitrepo_commit_info_done) GitCommitInfo info = { 0 };
	const git_signature *a;
	const char *s;
	int k;

	REPO_LOCK(r);
	k = lookup_commit_locked(r, spec, &c, err);
	if (k < 0)
		return k;
	oid_hex(git_commit_id(c), info.id);
	s = git_commit_summary(c);
	info.summary = strdup(s ? s : "");
	s = git_commit_message(c);
	info.message = strdup(s ? s : "");
	a = git_commit_author(c);
	info.author_name = strdup(a->name ? a->name : "");
	info.author_email = strdup(a->email ? a->email : "");
	info.author_time = a->when.time;
	info.author_tz_offset = a->when.offset;
	info.n_parents = git_commit_parentcount(c);
	info.parents = calloc(info.n_parents ? info.n_parents : 1, sizeof(*info.parents));
	if (!info.summary || !info.message || !info.author_name || !info.author_email ||
	    !info.parents)
		return -ENOMEM;
	for (size_t i = 0; i < info.n_parents; i++)
		oid_hex(git_commit_parent_id(c, (unsigned)i), info.parents[i]);
	*ret = info;
	info = (GitCommitInfo){ 0 };
	return 0;
}

int gitrepo_read_file(GitRepo *r, const char *spec, const char *path, size_t max, char **ret,
		      size_t *ret_size, BbxError *err)
{
	_cleanup_(git_commit_freep) git_commit *c = NULL;
	_cleanup_(git_tree_freep) git_tree *tree = NULL;
	_cleanup_(git_tree_entry_freep) git_tree_entry *entry = NULL;
	_cleanup_(git_blob_freep) git_blob *blob = NULL;
	char *buf;
	size_t size;
	int k, g;

	if (!path || !*path || path[0] == '/')
		return bbx_error_set(err, -EINVAL, BBX_INVALID, "invalid path '%s'",
				     path ? path : "");
	REPO_LOCK(r);
	k = lookup_commit_locked(r, spec, &c, err);
	if (k < 0)
		return k;
	g = git_commit_tree(&tree, c);
	if (g < 0)
		return git_fail(err, g, "reading the tree of %s", spec);
	g = git_tree_entry_bypath(&entry, tree, path);
	if (g == GIT_ENOTFOUND)
		return bbx_error_set(err, -ENOENT, BBX_NOT_FOUND, "%s: no such file at %s", path,
				     spec);
	if (g < 0)
		return git_fail(err, g, "looking up %s at %s", path, spec);
	if (git_tree_entry_type(entry) == GIT_OBJECT_TREE)
		return bbx_error_set(err, -EISDIR, BBX_INVALID, "%s is a directory at %s", path,
				     spec);
	if (git_tree_entry_type(entry) != GIT_OBJECT_BLOB)
		return bbx_error_set(err, -ENOENT, BBX_NOT_FOUND,
				     "%s is not a file at %s (submodule)", path, spec);
	/* A branch's symlink is never followed, not even inside the object database. */
	if (git_tree_entry_filemode(entry) == GIT_FILEMODE_LINK)
		return bbx_error_set(err, -ELOOP, BBX_INVALID,
				     "%s is a symbolic link at %s; it must be a regular file", path,
				     spec);
	g = git_blob_lookup(&blob, r->repo, git_tree_entry_id(entry));
	if (g < 0)
		return git_fail(err, g, "reading %s at %s", path, spec);
	if ((uint64_t)git_blob_rawsize(blob) > max)
		return bbx_error_set(err, -EFBIG, BBX_TOO_LARGE,
				     "%s at %s is %lld bytes, more than the limit of %zu", path,
				     spec, (long long)git_blob_rawsize(blob), max);
	size = (size_t)git_blob_rawsize(blob);
	buf = malloc(size + 1);
	if (!buf)
		return -ENOMEM;
	memcpy(buf, git_blob_rawcontent(blob), size);
	buf[size] = '\0';
	*ret = buf;
	if (ret_size)
		*ret_size = size;
	return 0;
}

/* ---- checkout ---- */

typedef struct CheckoutCtx {
	GitRepo *r;
	GitCheckoutResult *res;
	size_t n_skipped;
	StrBuf path; /* path of the entry being written, for messages */
	BbxError *err;
} CheckoutCtx;

static bool entry_name_is_safe(const char *name)
{
	return *name && !strchr(name, '/') && strcmp(name, ".") != 0 && strcmp(name, "..") != 0 &&
	       strcasecmp(name, ".git") != 0;
}

static int checkout_blob(CheckoutCtx *ctx, int dirfd, const git_tree_entry *e, git_filemode_t mode)
{
	_cleanup_(git_blob_freep) git_blob *blob = NULL;
	_cleanup_close_ int fd = -EBADF;
	const char *name = git_tree_entry_name(e);
	const void *data;
	size_t size;
	int g, k;

	g = git_blob_lookup(&blob, ctx->r->repo, git_tree_entry_id(e));
	if (g < 0)
		return git_fail(ctx->err, g, "reading %s", strbuf_str(&ctx->path));
	data = git_blob_rawcontent(blob);
	size = (size_t)git_blob_rawsize(blob);

	if (mode == GIT_FILEMODE_LINK) {
		_cleanup_free_ char *target = NULL;

		if (size == 0 || size >= PATH_MAX || memchr(data, '\0', size))
			return bbx_error_set(ctx->err, -EINVAL, BBX_INVALID,
					     "symlink %s has an invalid target",
					     strbuf_str(&ctx->path));
		target = strndup(data, size);
		if (!target)
			return -ENOMEM;
		if (symlinkat(target, dirfd, name) < 0)
			return bbx_error_set(ctx->err, negative_errno(), BBX_INTERNAL,
					     "creating symlink %s: %s", strbuf_str(&ctx->path),
					     strerror(errno));
		ctx->res->n_symlinks++;
		return 0;
	}

	mode_t perm = mode == GIT_FILEMODE_BLOB_EXECUTABLE ? 0755 : 0644;
	fd = openat(dirfd, name, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, perm);
	if (fd < 0)
		return bbx_error_set(ctx->err, negative_errno(), BBX_INTERNAL, "creating %s: %s",
				     strbuf_str(&ctx->path), strerror(errno));
	k = write_all(fd, data, size);
	if (k < 0)
		return bbx_error_set(ctx->err, k, BBX_INTERNAL, "writing %s: %s",
				     strbuf_str(&ctx->path), strerror(-k));
	/* The umask must not decide the mode git recorded. */
	if (fchmod(fd, perm) < 0)
		return bbx_error_set(ctx->err, negative_errno(), BBX_INTERNAL, "chmod %s: %s",
				     strbuf_str(&ctx->path), strerror(errno));
	ctx->res->n_files++;
	return 0;
}

static int checkout_tree_at(CheckoutCtx *ctx, int dirfd, const git_tree *tree, unsigned depth)
{
	size_t n = git_tree_entrycount(tree);
	int k, g;

	if (depth > CHECKOUT_MAX_DEPTH)
		return bbx_error_set(ctx->err, -EINVAL, BBX_INVALID,
				     "%s: tree nested deeper than %d levels",
				     strbuf_str(&ctx->path), CHECKOUT_MAX_DEPTH);
	for (size_t i = 0; i < n; i++) {
		const git_tree_entry *e = git_tree_entry_byindex(tree, i);
		const char *name = git_tree_entry_name(e);
		git_filemode_t mode = git_tree_entry_filemode(e);
		size_t saved = ctx->path.len;

		if ((saved > 0 && strbuf_putc(&ctx->path, '/') < 0) ||
		    strbuf_puts(&ctx->path, name) < 0)
			return -ENOMEM;
		if (!entry_name_is_safe(name))
			return bbx_error_set(ctx->err, -EINVAL, BBX_INVALID,
					     "refusing unsafe tree entry '%s'",
					     strbuf_str(&ctx->path));

		switch (mode) {
		case GIT_FILEMODE_TREE: {
			_cleanup_(git_tree_freep) git_tree *sub = NULL;
			_cleanup_close_ int subfd = -EBADF;

			g = git_tree_lookup(&sub, ctx->r->repo, git_tree_entry_id(e));
			if (g < 0)
				return git_fail(ctx->err, g, "reading directory %s",
						strbuf_str(&ctx->path));
			if (mkdirat(dirfd, name, 0755) < 0)
				return bbx_error_set(ctx->err, negative_errno(), BBX_INTERNAL,
						     "creating directory %s: %s",
						     strbuf_str(&ctx->path), strerror(errno));
			subfd = openat(dirfd, name,
				       O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
			if (subfd < 0)
				return bbx_error_set(ctx->err, negative_errno(), BBX_INTERNAL,
						     "opening directory %s: %s",
						     strbuf_str(&ctx->path), strerror(errno));
			if (fchmod(subfd, 0755) < 0)
				return bbx_error_set(ctx->err, negative_errno(), BBX_INTERNAL,
						     "chmod %s: %s", strbuf_str(&ctx->path),
						     strerror(errno));
			ctx->res->n_dirs++;
			k = checkout_tree_at(ctx, subfd, sub, depth + 1);
			if (k < 0)
				return k;
			break;
		}
		case GIT_FILEMODE_BLOB:
		case GIT_FILEMODE_BLOB_EXECUTABLE:
		case GIT_FILEMODE_LINK:
			k = checkout_blob(ctx, dirfd, e, mode);
			if (k < 0)
				return k;
			break;
		case GIT_FILEMODE_COMMIT: {
			char **nl = reallocarray(ctx->res->skipped_submodules, ctx->n_skipped + 2,
						 sizeof(char *));
			if (!nl)
				return -ENOMEM;
			ctx->res->skipped_submodules = nl;
			nl[ctx->n_skipped] = strdup(strbuf_str(&ctx->path));
			if (!nl[ctx->n_skipped])
				return -ENOMEM;
			nl[++ctx->n_skipped] = NULL;
			break;
		}
		default:
			return bbx_error_set(ctx->err, -EINVAL, BBX_INVALID,
					     "%s has unknown file mode %o", strbuf_str(&ctx->path),
					     (unsigned)mode);
		}
		ctx->path.len = saved;
		if (ctx->path.buf)
			ctx->path.buf[saved] = '\0';
	}
	return 0;
}

void gitrepo_checkout_result_done(GitCheckoutResult *res)
{
	if (!res)
		return;
	strv_free(res->skipped_submodules);
	*res = (GitCheckoutResult){ 0 };
}

int gitrepo_checkout(GitRepo *r, const char *spec, const char *target_dir, GitCheckoutResult *ret,
		     BbxError *err)
{
	_cleanup_(git_commit_freep) git_commit *c = NULL;
	_cleanup_(git_tree_freep) git_tree *tree = NULL;
	_cleanup_(gitrepo_checkout_result_done) GitCheckoutResult res = { 0 };
	_cleanup_strbuf_ StrBuf staging = STRBUF_INIT;
	_cleanup_close_ int fd = -EBADF;
	CheckoutCtx ctx = { .r = r, .res = &res, .err = err, .path = STRBUF_INIT };
	const char *slash;
	struct stat st;
	int k, g;

	if (!target_dir || !*target_dir)
		return bbx_error_set(err, -EINVAL, BBX_INVALID, "empty checkout directory");
	if (lstat(target_dir, &st) == 0)
		return bbx_error_set(err, -EEXIST, BBX_CONFLICT,
				     "checkout directory %s already exists", target_dir);

	REPO_LOCK(r);
	k = lookup_commit_locked(r, spec, &c, err);
	if (k < 0)
		return k;
	g = git_commit_tree(&tree, c);
	if (g < 0)
		return git_fail(err, g, "reading the tree of %s", spec);
	oid_hex(git_commit_id(c), res.id);
	res.skipped_submodules = calloc(1, sizeof(char *));
	if (!res.skipped_submodules)
		return -ENOMEM;

	/* The staging directory sits next to the target so the final rename stays on one
	 * file system and is atomic. */
	slash = strrchr(target_dir, '/');
	if (slash && slash[1] == '\0')
		return bbx_error_set(err, -EINVAL, BBX_INVALID,
				     "checkout directory %s ends with '/'", target_dir);
	if (slash)
		k = strbuf_appendf(&staging, "%.*s/.%s.staging-XXXXXX", (int)(slash - target_dir),
				   target_dir, slash + 1);
	else
		k = strbuf_appendf(&staging, ".%s.staging-XXXXXX", target_dir);
	if (k < 0)
		return k;
	if (!mkdtemp(staging.buf))
		return bbx_error_set(err, negative_errno(), BBX_INTERNAL,
				     "creating staging directory for %s: %s", target_dir,
				     strerror(errno));
	fd = open(staging.buf, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	if (fd < 0) {
		k = bbx_error_set(err, negative_errno(), BBX_INTERNAL, "opening %s: %s",
				  staging.buf, strerror(errno));
		goto fail;
	}
	if (fchmod(fd, 0755) < 0) {
		k = bbx_error_set(err, negative_errno(), BBX_INTERNAL, "chmod %s: %s", staging.buf,
				  strerror(errno));
		goto fail;
	}
	k = checkout_tree_at(&ctx, fd, tree, 0);
	if (k < 0) {
		bbx_error_prefix(err, "checking out %s into %s", spec, target_dir);
		goto fail;
	}
	if (renameat2(AT_FDCWD, staging.buf, AT_FDCWD, target_dir, RENAME_NOREPLACE) < 0) {
		k = bbx_error_set(err, negative_errno(),
				  errno == EEXIST ? BBX_CONFLICT : BBX_INTERNAL,
				  "moving checkout into %s: %s", target_dir, strerror(errno));
		goto fail;
	}
	strbuf_done(&ctx.path);
	*ret = res;
	res = (GitCheckoutResult){ 0 };
	return 0;
fail:
	strbuf_done(&ctx.path);
	(void)rm_rf(staging.buf);
	return k;
}

/* ---- diff ---- */

void gitrepo_diff_done(GitDiff *d)
{
	if (!d)
		return;
	for (size_t i = 0; d->files && i < d->n_files; i++) {
		free(d->files[i].path);
		free(d->files[i].old_path);
	}
	free(d->files);
	free(d->patch);
	*d = (GitDiff){ 0 };
}

static char delta_status_char(git_delta_t s)
{
	switch (s) {
	case GIT_DELTA_ADDED: return 'A';
	case GIT_DELTA_DELETED: return 'D';
	case GIT_DELTA_RENAMED: return 'R';
	case GIT_DELTA_TYPECHANGE: return 'T';
	case GIT_DELTA_COPIED: return 'C';
	default: return 'M';
	}
}

int gitrepo_diff(GitRepo *r, const char *from, const char *to, size_t max_patch, GitDiff *ret,
		 BbxError *err)
{
	_cleanup_(git_commit_freep) git_commit *ca = NULL, *cb = NULL;
	_cleanup_(git_tree_freep) git_tree *ta = NULL, *tb = NULL;
	_cleanup_(git_diff_freep) git_diff *diff = NULL;
	_cleanup_(gitrepo_diff_done) GitDiff out = { 0 };
	_cleanup_strbuf_ StrBuf patch = STRBUF_INIT;
	git_diff_find_options find = GIT_DIFF_FIND_OPTIONS_INIT;
	size_t n;
	int k, g;

	REPO_LOCK(r);
	k = lookup_commit_locked(r, from, &ca, err);
	if (k < 0)
		return k;
	k = lookup_commit_locked(r, to, &cb, err);
	if (k < 0)
		return k;
	if ((g = git_commit_tree(&ta, ca)) < 0 || (g = git_commit_tree(&tb, cb)) < 0)
		return git_fail(err, g, "reading trees of %s and %s", from, to);
	g = git_diff_tree_to_tree(&diff, r->repo, ta, tb, NULL);
	if (g < 0)
		return git_fail(err, g, "diffing %s..%s", from, to);
	find.flags = GIT_DIFF_FIND_RENAMES;
	g = git_diff_find_similar(diff, &find);
	if (g < 0)
		return git_fail(err, g, "finding renames in %s..%s", from, to);

	n = git_diff_num_deltas(diff);
	out.files = calloc(n ? n : 1, sizeof(*out.files));
	if (!out.files)
		return -ENOMEM;
	for (size_t i = 0; i < n; i++) {
		_cleanup_(git_patch_freep) git_patch *p = NULL;
		git_buf text = GIT_BUF_INIT;
		const git_diff_delta *d = git_diff_get_delta(diff, i);
		GitDiffFile *f = &out.files[out.n_files];
		size_t adds = 0, dels = 0;
		const char *path;

		g = git_patch_from_diff(&p, diff, i);
		if (g < 0)
			return git_fail(err, g, "diffing %s", d->new_file.path);
		path = d->status == GIT_DELTA_DELETED ? d->old_file.path : d->new_file.path;
		f->path = strdup(path);
		f->old_path = strdup(d->old_file.path);
		if (!f->path || !f->old_path) {
			free(f->path);
			free(f->old_path);
			return -ENOMEM;
		}
		out.n_files++;
		f->status = delta_status_char(d->status);
		f->binary = d->flags & GIT_DIFF_FLAG_BINARY;
		if (p) {
			g = git_patch_line_stats(NULL, &adds, &dels, p);
			if (g < 0)
				return git_fail(err, g, "counting lines of %s", path);
		}
		f->additions = adds;
		f->deletions = dels;
		out.additions += adds;
		out.deletions += dels;

		if (out.patch_truncated || !p)
			continue;
		g = git_patch_to_buf(&text, p);
		if (g < 0)
			return git_fail(err, g, "formatting the patch of %s", path);
		if (patch.len + text.size > max_patch) {
			out.patch_truncated = true;
		} else if (strbuf_append(&patch, text.ptr, text.size) < 0) {
			git_buf_dispose(&text);
			return -ENOMEM;
		}
		git_buf_dispose(&text);
	}
	out.patch_size = patch.len;
	out.patch = strbuf_detach(&patch);
	if (!out.patch)
		return -ENOMEM;
	*ret = out;
	out = (GitDiff){ 0 };
	return 0;
}

/* The blobs of a tree (files and symlinks), with their paths, for gitrepo_diff_worktree(). */
typedef struct TreeBlob {
	char *path;
	git_oid id;
	bool symlink;
} TreeBlob;

typedef struct TreeBlobs {
	TreeBlob *v;
	size_t n, cap;
} TreeBlobs;

static void tree_blobs_done(TreeBlobs *b)
{
	for (size_t i = 0; i < b->n; i++)
		free(b->v[i].path);
	free(b->v);
}

static int tree_blob_cb(const char *root, const git_tree_entry *e, void *payload)
{
	TreeBlobs *b = payload;
	git_filemode_t m = git_tree_entry_filemode(e);
	if (git_tree_entry_type(e) != GIT_OBJECT_BLOB)
		return 0;
	if (b->n == b->cap) {
		size_t ncap = b->cap ? b->cap * 2 : 64;
		TreeBlob *nv = realloc(b->v, ncap * sizeof(*nv));
		if (!nv)
			return -1;
		b->v = nv;
		b->cap = ncap;
	}
	TreeBlob *t = &b->v[b->n];
	if (asprintf(&t->path, "%s%s", root, git_tree_entry_name(e)) < 0)
		return -1;
	git_oid_cpy(&t->id, git_tree_entry_id(e));
	t->symlink = m == GIT_FILEMODE_LINK;
	b->n++;
	return 0;
}

static int tree_blob_cmp(const void *a, const void *b)
{
	return strcmp(((const TreeBlob *)a)->path, ((const TreeBlob *)b)->path);
}

/* One changed file: its entry in out and its patch text (when it fits). */
static int worktree_file_locked(GitRepo *r, const TreeBlob *old, const BeneathFile *new,
				size_t max_patch, GitDiff *out, StrBuf *patch, BbxError *err)
{
	_cleanup_(git_blob_freep) git_blob *blob = NULL;
	_cleanup_(git_patch_freep) git_patch *p = NULL;
	const char *path = new ? new->path : old->path;
	const void *od = NULL, *nd = NULL;
	size_t on = 0, nn = 0;
	int g;

	if (old) {
		g = git_blob_lookup(&blob, r->repo, &old->id);
		if (g < 0)
			return git_fail(err, g, "reading %s", old->path);
		od = git_blob_rawcontent(blob);
		on = (size_t)git_blob_rawsize(blob);
	}
	if (new &&new->unread && old &&on == new->size)
		return 0; /* too large to read: the same size is taken as unchanged */
	GitDiffFile *f = &out->files[out->n_files];
	*f = (GitDiffFile){ .path = strdup(path), .old_path = strdup(path) };
	if (!f->path || !f->old_path) {
		free(f->path);
		free(f->old_path);
		return -ENOMEM;
	}
	out->n_files++;
	f->status = !old ? 'A' : !new ? 'D' : old->symlink != new->symlink ? 'T' : 'M';
	if (new &&new->unread) {
		f->binary = true;
		return 0;
	}
	if (new) {
		nd = new->data;
		nn = new->size;
	}
	g = git_patch_from_buffers(&p, od, on, old ? path : NULL, nd, nn, new ? path : NULL, NULL);
	if (g < 0)
		return git_fail(err, g, "diffing %s", path);
	const git_diff_delta *d = git_patch_get_delta(p);
	f->binary = d && (d->flags & GIT_DIFF_FLAG_BINARY);
	g = git_patch_line_stats(NULL, &f->additions, &f->deletions, p);
	if (g < 0)
		return git_fail(err, g, "counting lines of %s", path);
	out->additions += f->additions;
	out->deletions += f->deletions;
	if (out->patch_truncated)
		return 0;
	git_buf text = GIT_BUF_INIT;
	g = git_patch_to_buf(&text, p);
	if (g < 0)
		return git_fail(err, g, "formatting the patch of %s", path);
	int k = 0;
	if (patch->len + text.size > max_patch)
		out->patch_truncated = true;
	else
		k = strbuf_append(patch, text.ptr, text.size);
	git_buf_dispose(&text);
	return k;
}

int gitrepo_diff_worktree(GitRepo *r, const char *from, const BeneathFile *files, size_t n,
			  size_t max_patch, GitDiff *ret, BbxError *err)
{
	_cleanup_(git_commit_freep) git_commit *ca = NULL;
	_cleanup_(git_tree_freep) git_tree *ta = NULL;
	_cleanup_(gitrepo_diff_done) GitDiff out = { 0 };
	_cleanup_strbuf_ StrBuf patch = STRBUF_INIT;
	TreeBlobs tb = { 0 };
	int k, g;

	REPO_LOCK(r);
	k = lookup_commit_locked(r, from, &ca, err);
	if (k < 0)
		return k;
	if ((g = git_commit_tree(&ta, ca)) < 0)
		return git_fail(err, g, "reading the tree of %s", from);
	g = git_tree_walk(ta, GIT_TREEWALK_PRE, tree_blob_cb, &tb);
	if (g < 0) {
		tree_blobs_done(&tb);
		return g == GIT_EUSER || g == -1 ? -ENOMEM : git_fail(err, g, "walking %s", from);
	}
	if (tb.n)
		qsort(tb.v, tb.n, sizeof(*tb.v), tree_blob_cmp);
	out.files = calloc(tb.n + n + 1, sizeof(*out.files));
	if (!out.files) {
		tree_blobs_done(&tb);
		return -ENOMEM;
	}
	size_t i = 0, j = 0;
	while (k >= 0 && (i < tb.n || j < n)) {
		int c = i >= tb.n ? 1 : j >= n ? -1 : strcmp(tb.v[i].path, files[j].path);
		if (c < 0)
			k = worktree_file_locked(r, &tb.v[i++], NULL, max_patch, &out, &patch, err);
		else if (c > 0)
			k = worktree_file_locked(r, NULL, &files[j++], max_patch, &out, &patch,
						 err);
		else {
			const TreeBlob *o = &tb.v[i++];
			const BeneathFile *f = &files[j++];
			git_oid id;
			if (!f->unread && o->symlink == f->symlink &&
			    git_odb_hash(&id, f->data, f->size, GIT_OBJECT_BLOB) == 0 &&
			    git_oid_equal(&id, &o->id))
				continue;
			k = worktree_file_locked(r, o, f, max_patch, &out, &patch, err);
		}
	}
	tree_blobs_done(&tb);
	if (k < 0)
		return k;
	out.patch_size = patch.len;
	out.patch = strbuf_detach(&patch);
	if (!out.patch)
		return -ENOMEM;
	*ret = out;
	out = (GitDiff){ 0 };
	return 0;
}

/* ---- branch CAS ---- */

static int branch_cas_locked(GitRepo *r, const char *branch, const git_oid *expected,
			     const git_oid *new_id, const char *log_message, BbxError *err)
{
	_cleanup_(git_reference_freep) git_reference *ref = NULL;
	_cleanup_(git_commit_freep) git_commit *c = NULL;
	char refname[512], want[GITREPO_ID_SIZE] = "", now[GITREPO_ID_SIZE] = "(none)";
	int g;

	if (!gitrepo_branch_name_is_valid(branch))
		return bbx_error_set(err, -EINVAL, BBX_INVALID, "invalid branch name '%s'",
				     branch ? branch : "");
	g = git_commit_lookup(&c, r->repo, new_id);
	if (g < 0) {
		oid_hex(new_id, want);
		return git_fail(err, g, "moving branch '%s' to %s", branch, want);
	}
	snprintf(refname, sizeof(refname), "refs/heads/%s", branch);
	if (expected)
		g = git_reference_create_matching(&ref, r->repo, refname, new_id, 1, expected,
						  log_message);
	else
		g = git_reference_create(&ref, r->repo, refname, new_id, 0, log_message);
	if (g == 0)
		return 0;
	if (g != GIT_EMODIFIED && g != GIT_EEXISTS && g != GIT_ENOTFOUND)
		return git_fail(err, g, "moving branch '%s' in %s", branch, r->path);

	/* Say where the branch actually is, so the caller can tell "moved" from "gone". */
	{
		_cleanup_(git_reference_freep) git_reference *cur = NULL, *res = NULL;
		if (git_reference_lookup(&cur, r->repo, refname) == 0 &&
		    git_reference_resolve(&res, cur) == 0)
			oid_hex(git_reference_target(res), now);
	}
	if (!expected)
		return bbx_error_set(err, -ESTALE, BBX_CONFLICT,
				     "branch '%s' already exists (at %s)", branch, now);
	oid_hex(expected, want);
	return bbx_error_set(err, -ESTALE, BBX_CONFLICT, "branch '%s' moved: expected %s, found %s",
			     branch, want, now);
}

static int parse_id(const char *hex, git_oid *ret, BbxError *err)
{
	if (!hex || !is_full_hex(hex) || git_oid_fromstr(ret, hex) < 0)
		return bbx_error_set(err, -EINVAL, BBX_INVALID, "'%s' is not a 40-hex commit id",
				     hex ? hex : "");
	return 0;
}

int gitrepo_branch_cas(GitRepo *r, const char *branch, const char *expected_id, const char *new_id,
		       const char *log_message, BbxError *err)
{
	git_oid exp, nid;
	int k;

	if (expected_id && (k = parse_id(expected_id, &exp, err)) < 0)
		return k;
	if ((k = parse_id(new_id, &nid, err)) < 0)
		return k;
	REPO_LOCK(r);
	return branch_cas_locked(r, branch, expected_id ? &exp : NULL, &nid,
				 log_message ? log_message : "branchbox: update", err);
}

/* ---- apply ---- */

typedef struct ApplyCtx {
	char path[PATH_MAX]; /* file the last delta callback was about */
	bool unsafe;
} ApplyCtx;

static bool patch_path_is_safe(const char *p)
{
	if (!p)
		return true;
	if (!*p || p[0] == '/')
		return false;
	for (const char *s = p; *s;) {
		size_t n = strcspn(s, "/");
		if (n == 0 || (n == 1 && s[0] == '.') || (n == 2 && s[0] == '.' && s[1] == '.') ||
		    (n == 4 && strncasecmp(s, ".git", 4) == 0))
			return false;
		s += n;
		if (*s == '/')
			s++;
	}
	return true;
}

static int apply_delta_cb(const git_diff_delta *d, void *payload)
{
	ApplyCtx *ctx = payload;
	const char *p = d->new_file.path ? d->new_file.path : d->old_file.path;

	snprintf(ctx->path, sizeof(ctx->path), "%s", p ? p : "?");
	if (!patch_path_is_safe(d->new_file.path) || !patch_path_is_safe(d->old_file.path)) {
		ctx->unsafe = true;
		return -1;
	}
	return 0;
}

int gitrepo_apply_patch(GitRepo *r, const GitApplyRequest *req, char ret_id[static GITREPO_ID_SIZE],
			BbxError *err)
{
	_cleanup_(git_commit_freep) git_commit *base = NULL;
	_cleanup_(git_tree_freep) git_tree *tree = NULL;
	_cleanup_(git_diff_freep) git_diff *diff = NULL;
	_cleanup_(git_index_freep) git_index *index = NULL;
	_cleanup_strbuf_ StrBuf converted = STRBUF_INIT;
	git_apply_options opts = GIT_APPLY_OPTIONS_INIT;
	ApplyCtx ctx = { .path = "" };
	const char *patch;
	size_t patch_size;
	git_oid tree_id, new_id;
	int k, g;

	if (!req || !req->patch || !req->message)
		return bbx_error_set(err, -EINVAL, BBX_INVALID, "incomplete patch request");
	if (req->patch_size > GITREPO_PATCH_MAX)
		return bbx_error_set(err, -EFBIG, BBX_TOO_LARGE,
				     "patch of %zu bytes exceeds the limit of %zu", req->patch_size,
				     GITREPO_PATCH_MAX);
	if (req->branch && !gitrepo_branch_name_is_valid(req->branch))
		return bbx_error_set(err, -EINVAL, BBX_INVALID, "invalid branch name '%s'",
				     req->branch);

	REPO_LOCK(r);
	k = lookup_commit_locked(r, req->base, &base, err);
	if (k < 0)
		return k;
	patch = req->patch;
	patch_size = req->patch_size;
	if (!gitrepo_patch_is_git_style(patch, patch_size)) {
		k = gitrepo_patch_to_git(patch, patch_size, &converted, err);
		if (k < 0)
			return k;
		patch = strbuf_str(&converted);
		patch_size = converted.len;
	}
	g = git_diff_from_buffer(&diff, patch, patch_size);
	if (g < 0)
		return bbx_error_set(err, -EINVAL, BBX_INVALID, "malformed patch: %s",
				     git_error_last() ? git_error_last()->message : "parse error");
	if (git_diff_num_deltas(diff) == 0)
		return bbx_error_set(err, -EINVAL, BBX_INVALID, "patch contains no changes");
	g = git_commit_tree(&tree, base);
	if (g < 0)
		return git_fail(err, g, "reading the tree of %s", req->base);

	opts.delta_cb = apply_delta_cb;
	opts.payload = &ctx;
	g = git_apply_to_tree(&index, r->repo, tree, diff, &opts);
	if (ctx.unsafe)
		return bbx_error_set(err, -EINVAL, BBX_INVALID, "patch touches unsafe path '%s'",
				     ctx.path);
	if (g < 0) {
		const git_error *e = git_error_last();
		return bbx_error_set(err,
				     g == GIT_EAPPLYFAIL || g == GIT_ENOTFOUND || g == GIT_EEXISTS
					     ? -EEXIST
					     : git_code_to_errno(g),
				     BBX_CONFLICT, "patch does not apply to %s at %s: %s",
				     ctx.path[0] ? ctx.path : "(unknown file)", req->base,
				     e && e->message ? e->message : "apply failed");
	}
	g = git_index_write_tree_to(&tree_id, index, r->repo);
	if (g < 0)
		return git_fail(err, g, "writing the patched tree to %s", r->path);
	const git_commit *parents[] = { base };
	k = commit_create(r, req->author, req->message, &tree_id, 1, parents, &new_id, err);
	if (k < 0)
		return k;

	if (req->branch) {
		_cleanup_(git_reference_freep) git_reference *ref = NULL;
		const git_oid *expected = NULL;

		g = git_branch_lookup(&ref, r->repo, req->branch, GIT_BRANCH_LOCAL);
		if (g == 0) {
			_cleanup_(git_reference_freep) git_reference *res = NULL;
			char have[GITREPO_ID_SIZE], want[GITREPO_ID_SIZE];

			g = git_reference_resolve(&res, ref);
			if (g < 0)
				return git_fail(err, g, "resolving branch '%s'", req->branch);
			if (!git_oid_equal(git_reference_target(res), git_commit_id(base))) {
				oid_hex(git_reference_target(res), have);
				oid_hex(git_commit_id(base), want);
				return bbx_error_set(
					err, -ESTALE, BBX_CONFLICT,
					"branch '%s' is at %s, not at the patch's base %s",
					req->branch, have, want);
			}
			expected = git_commit_id(base);
		} else if (g != GIT_ENOTFOUND) {
			return git_fail(err, g, "looking up branch '%s'", req->branch);
		}
		k = branch_cas_locked(r, req->branch, expected, &new_id, "branchbox: apply patch",
				      err);
		if (k < 0)
			return k;
	}
	oid_hex(&new_id, ret_id);
	return 0;
}

/* ---- ancestry and merge ---- */

static int is_ancestor_locked(GitRepo *r, const git_oid *anc, const git_oid *desc, bool *ret,
			      BbxError *err)
{
	int g;

	if (git_oid_equal(anc, desc)) {
		*ret = true;
		return 0;
	}
	g = git_graph_descendant_of(r->repo, desc, anc);
	if (g < 0)
		return git_fail(err, g, "walking history in %s", r->path);
	*ret = g == 1;
	return 0;
}

int gitrepo_is_ancestor(GitRepo *r, const char *ancestor, const char *descendant, bool *ret,
			BbxError *err)
{
	git_oid a, d;
	int k;

	REPO_LOCK(r);
	if ((k = resolve_locked(r, ancestor, &a, err)) < 0 ||
	    (k = resolve_locked(r, descendant, &d, err)) < 0)
		return k;
	return is_ancestor_locked(r, &a, &d, ret, err);
}

void gitrepo_merge_result_done(GitMergeResult *res)
{
	if (!res)
		return;
	strv_free(res->conflicts);
	*res = (GitMergeResult){ 0 };
}

static int collect_conflicts(git_index *index, char ***ret, StrBuf *msg)
{
	_cleanup_(git_index_conflict_iterator_freep) git_index_conflict_iterator *it = NULL;
	_cleanup_strv_free_ char **l = NULL;
	const git_index_entry *anc, *ours, *theirs;
	size_t n = 0;

	if (git_index_conflict_iterator_new(&it, index) < 0)
		return -EIO;
	l = calloc(1, sizeof(char *));
	if (!l)
		return -ENOMEM;
	while (git_index_conflict_next(&anc, &ours, &theirs, it) == 0) {
		const char *p = ours ? ours->path : theirs ? theirs->path : anc ? anc->path : "?";
		char **nl = reallocarray(l, n + 2, sizeof(char *));
		if (!nl)
			return -ENOMEM;
		l = nl;
		l[n] = strdup(p);
		if (!l[n])
			return -ENOMEM;
		l[++n] = NULL;
		if (strbuf_appendf(msg, "%s%s", n > 1 ? ", " : "", p) < 0)
			return -ENOMEM;
	}
	*ret = TAKE_PTR(l);
	return 0;
}

int gitrepo_merge(GitRepo *r, const char *base, const char *head, const char *author,
		  const char *message, GitMergeResult *ret, BbxError *err)
{
	_cleanup_(git_commit_freep) git_commit *cb = NULL, *ch = NULL;
	_cleanup_(git_index_freep) git_index *index = NULL;
	_cleanup_strbuf_ StrBuf msg = STRBUF_INIT;
	git_merge_options opts = GIT_MERGE_OPTIONS_INIT;
	GitMergeResult res = { 0 };
	git_oid tree_id, new_id;
	bool anc = false;
	int k, g;

	REPO_LOCK(r);
	if ((k = lookup_commit_locked(r, base, &cb, err)) < 0 ||
	    (k = lookup_commit_locked(r, head, &ch, err)) < 0)
		return k;

	k = is_ancestor_locked(r, git_commit_id(ch), git_commit_id(cb), &anc, err);
	if (k < 0)
		return k;
	if (anc) {
		res.kind = GITREPO_MERGE_UP_TO_DATE;
		oid_hex(git_commit_id(cb), res.id);
		*ret = res;
		return 0;
	}
	k = is_ancestor_locked(r, git_commit_id(cb), git_commit_id(ch), &anc, err);
	if (k < 0)
		return k;
	if (anc) {
		res.kind = GITREPO_MERGE_FAST_FORWARD;
		oid_hex(git_commit_id(ch), res.id);
		*ret = res;
		return 0;
	}

	g = git_merge_commits(&index, r->repo, cb, ch, &opts);
	if (g < 0)
		return git_fail(err, g, "merging %s into %s", head, base);
	if (git_index_has_conflicts(index)) {
		*ret = (GitMergeResult){ 0 };
		k = collect_conflicts(index, &ret->conflicts, &msg);
		if (k < 0)
			return k;
		return bbx_error_set(err, -EEXIST, BBX_CONFLICT,
				     "merging %s into %s conflicts in: %s", head, base,
				     strbuf_str(&msg));
	}
	g = git_index_write_tree_to(&tree_id, index, r->repo);
	if (g < 0)
		return git_fail(err, g, "writing the merged tree to %s", r->path);
	if (!message) {
		if (strbuf_appendf(&msg, "Merge %s into %s\n", head, base) < 0)
			return -ENOMEM;
		message = strbuf_str(&msg);
	}
	const git_commit *parents[] = { cb, ch };
	k = commit_create(r, author, message, &tree_id, 2, parents, &new_id, err);
	if (k < 0)
		return k;
	res.kind = GITREPO_MERGE_COMMIT;
	oid_hex(&new_id, res.id);
	*ret = res;
	return 0;
}
