/* SPDX-License-Identifier: MIT */
/*
 * An environment's files, code diff, config and services. The trees are the agent's to write,
 * so every path is resolved beneath the tree's fd (src/basic/beneath.h) and never followed
 * through a link; what comes back is bounded (FILES_MAX_BYTES a call, FILES_MAX_ENTRIES a
 * listing). Authorization and invisibility were done by ops_run() before these run.
 */
#include <errno.h>
#include <sodium.h>
#include <stdlib.h>
#include <string.h>
#include <sys/statvfs.h>
#include <unistd.h>

#include "beneath.h"
#include "env-files.h"
#include "ops-handlers.h"

#define FILES_MAX_BYTES (1u << 20)
#define FILES_MAX_ENTRIES 10000
#define FILES_DEFAULT_ENTRIES 1000
#define DIFF_DEFAULT_PATCH (1u << 20)

static const char *str(json_t *in, const char *key)
{
	return json_string_value(json_object_get(in, key));
}

static int64_t integer(json_t *in, const char *key, int64_t dflt)
{
	json_t *v = json_object_get(in, key);
	return json_is_integer(v) ? json_integer_value(v) : dflt;
}

/* The checked path of in (allow_root: absent or "" names the tree's root). */
static int input_path(json_t *in, bool allow_root, const char **ret, BbxError *err)
{
	json_t *v = json_object_get(in, "path");
	const char *p = json_string_value(v), *why = NULL;
	if (!p && allow_root)
		p = "";
	size_t n = v ? json_string_length(v) : strlen(p);
	if (beneath_path_check(p, n, allow_root, &why) < 0)
		return bbx_error_set(err, -EINVAL, BBX_INVALID, "input: 'path' %s", why);
	*ret = p;
	return 0;
}

static int input_tree(json_t *in, EnvTree *ret, BbxError *err)
{
	const char *s = str(in, "root");
	EnvTree t = s ? env_tree_from_string(s) : ENV_TREE_CODE;
	if (t < 0)
		return bbx_error_set(err, -EINVAL, BBX_INVALID,
				     "input: 'root' must be \"code\" or \"volume\"");
	*ret = t;
	return 0;
}

/* What a failure of beneath_*() on path means to the caller. */
static int path_error(BbxError *err, int r, EnvTree t, const char *path)
{
	const char *tree = env_tree_to_string(t);
	switch (r) {
	case -ELOOP:
		return bbx_error_set(err, r, BBX_INVALID,
				     "'%s' in the %s tree is a symbolic link or resolves through "
				     "one; links are never followed",
				     path, tree);
	case -EXDEV:
		return bbx_error_set(err, r, BBX_INVALID, "'%s' leaves the %s tree", path, tree);
	case -ENOENT:
		return bbx_error_set(err, r, BBX_INVALID, "'%s' does not exist in the %s tree",
				     path, tree);
	case -ENOTDIR:
		return bbx_error_set(err, r, BBX_INVALID,
				     "'%s' in the %s tree: a component on the way is not a "
				     "directory",
				     path, tree);
	case -EISDIR:
		return bbx_error_set(err, r, BBX_INVALID, "'%s' in the %s tree is a directory",
				     path, tree);
	case -ESPIPE:
		return bbx_error_set(err, r, BBX_INVALID,
				     "'%s' in the %s tree is not a regular file (a FIFO, socket or "
				     "device is never opened)",
				     path, tree);
	case -EMLINK:
		return bbx_error_set(err, r, BBX_INVALID,
				     "'%s' in the %s tree has more than one hard link; such a "
				     "file is neither read nor written",
				     path, tree);
	case -ESTALE:
		return bbx_error_set(err, r, BBX_CONFLICT,
				     "'%s' in the %s tree changed while it was opened; try again",
				     path, tree);
	case -EACCES:
		return bbx_error_set(err, r, BBX_FORBIDDEN,
				     "'%s' in the %s tree: its applications could not write there "
				     "(a directory not the environment's own, or read-only)",
				     path, tree);
	case -ENAMETOOLONG:
	case -EINVAL: return bbx_error_set(err, r, BBX_INVALID, "'%s' is not a valid path", path);
	case -ENOSPC:
	case -EDQUOT:
		return bbx_error_set(err, r, BBX_LIMIT_REACHED,
				     "'%s': the %s tree has no space left", path, tree);
	default:
		return bbx_error_set(err, r, BBX_INTERNAL, "'%s' in the %s tree: %s", path, tree,
				     strerror(-r));
	}
}

/* data as a JSON string when it is UTF-8 without NULs, else base64; *n may shrink by the
 * bytes of a character cut at the end of a truncated read (the next read starts there). */
static json_t *content_json(const char *data, size_t *n, bool truncated, const char **ret_enc)
{
	if (!memchr(data, '\0', *n))
		for (size_t cut = 0; cut <= (truncated ? 3u : 0u) && cut <= *n; cut++) {
			json_t *s = json_stringn(data, *n - cut);
			if (s) {
				*n -= cut;
				*ret_enc = "utf-8";
				return s;
			}
		}
	size_t len = sodium_base64_encoded_len(*n, sodium_base64_VARIANT_ORIGINAL);
	char *b = malloc(len);
	if (!b)
		return NULL;
	sodium_bin2base64(b, len, (const unsigned char *)data, *n, sodium_base64_VARIANT_ORIGINAL);
	json_t *s = json_string(b);
	free(b);
	*ret_enc = "base64";
	return s;
}

/* What every file operation's input names: the environment, the path and its tree. */
typedef struct FileInput {
	const char *name, *path;
	EnvTree tree;
} FileInput;

static int file_input(json_t *in, bool dir, FileInput *f, BbxError *err)
{
	f->name = str(in, "name");
	f->tree = ENV_TREE_CODE;
	int r = input_path(in, dir, &f->path, err);
	return r < 0 ? r : input_tree(in, &f->tree, err);
}

int op_environment_file_read(OpCall *call, json_t *in, json_t **out, BbxError *err)
{
	FileInput f;
	int r = file_input(in, false, &f, err);
	if (r < 0)
		return r;
	const char *name = f.name, *path = f.path;
	EnvTree t = f.tree;
	int64_t offset = integer(in, "offset", 0), limit = integer(in, "limit", FILES_MAX_BYTES);
	_cleanup_close_ int root = -EBADF;
	uid_t owner;
	r = environment_tree_open(call->core, name, t, &root, &owner, err);
	if (r < 0)
		return r;
	BeneathRead rd;
	r = beneath_read(root, path, (uint64_t)offset, (size_t)limit, &rd);
	if (r < 0)
		return path_error(err, r, t, path);
	const char *enc = NULL;
	size_t n = rd.n;
	uint64_t size = rd.size;
	json_t *content = content_json(rd.data, &n, rd.truncated, &enc);
	beneath_read_done(&rd);
	if (!content)
		return -ENOMEM;
	*out = json_pack("{s:s,s:s,s:s,s:I,s:I,s:I,s:b,s:s,s:o}", "name", name, "root",
			 env_tree_to_string(t), "path", path, "size", (json_int_t)size, "offset",
			 (json_int_t)offset, "bytes", (json_int_t)n, "truncated",
			 (uint64_t)offset + n < size, "encoding", enc, "content", content);
	return *out ? 0 : -ENOMEM;
}

int op_environment_file_list(OpCall *call, json_t *in, json_t **out, BbxError *err)
{
	FileInput f;
	int r = file_input(in, true, &f, err);
	if (r < 0)
		return r;
	const char *name = f.name, *path = f.path;
	EnvTree t = f.tree;
	size_t max = (size_t)integer(in, "limit", FILES_DEFAULT_ENTRIES);
	_cleanup_close_ int root = -EBADF;
	uid_t owner;
	r = environment_tree_open(call->core, name, t, &root, &owner, err);
	if (r < 0)
		return r;
	BeneathEntry *v = NULL;
	size_t n = 0;
	bool truncated = false;
	r = beneath_list(root, path, max, &v, &n, &truncated);
	if (r < 0)
		return path_error(err, r, t, path[0] ? path : ".");
	json_t *a = json_array();
	for (size_t i = 0; a && i < n; i++)
		json_array_append_new(a, json_pack("{s:s,s:s,s:I,s:I}", "name", v[i].name, "type",
						   v[i].type, "size", (json_int_t)v[i].size, "mode",
						   (json_int_t)v[i].mode));
	beneath_entries_free(v, n);
	if (!a)
		return -ENOMEM;
	*out = json_pack("{s:s,s:s,s:s,s:o,s:b}", "name", name, "root", env_tree_to_string(t),
			 "path", path, "entries", a, "truncated", truncated);
	return *out ? 0 : -ENOMEM;
}

int op_environment_file_write(OpCall *call, json_t *in, json_t **out, BbxError *err)
{
	const char *enc = str(in, "encoding");
	FileInput f;
	int r = file_input(in, false, &f, err);
	if (r < 0)
		return r;
	const char *name = f.name, *path = f.path;
	EnvTree t = f.tree;
	/* Production runs what its branch holds, deployed; its checkout is also what previews'
	 * sanitize commands run from. Nothing is written into it behind that. */
	if (!strcmp(name, core_production_branch(call->core)))
		return bbx_error_set(err, -EPERM, BBX_FORBIDDEN,
				     "environment '%s' is production: its files change only by a "
				     "deploy of its branch",
				     name);
	json_t *cv = json_object_get(in, "content");
	const char *content = json_string_value(cv);
	size_t clen = json_string_length(cv);
	_cleanup_free_ unsigned char *bin = NULL;
	const void *data = content;
	size_t n = clen;
	if (enc && !strcmp(enc, "base64")) {
		bin = malloc(clen / 4 * 3 + 3);
		if (!bin)
			return -ENOMEM;
		if (sodium_base642bin(bin, clen / 4 * 3 + 3, content, clen, " \r\n", &n, NULL,
				      sodium_base64_VARIANT_ORIGINAL) < 0)
			return bbx_error_set(err, -EINVAL, BBX_INVALID,
					     "input: 'content' is not valid base64");
		data = bin;
	} else if (enc && strcmp(enc, "utf-8"))
		return bbx_error_set(err, -EINVAL, BBX_INVALID,
				     "input: 'encoding' must be \"utf-8\" or \"base64\"");
	if (n > FILES_MAX_BYTES)
		return bbx_error_set(err, -EFBIG, BBX_TOO_LARGE,
				     "input: 'content' is %zu bytes; at most %u are written a call",
				     n, FILES_MAX_BYTES);
	_cleanup_close_ int root = -EBADF;
	uid_t owner;
	r = environment_tree_open(call->core, name, t, &root, &owner, err);
	if (r < 0)
		return r;
	/* The code tree has no quota of its own (the volume has): never fill the file system
	 * the daemon's state lives on. */
	struct statvfs sv;
	if (fstatvfs(root, &sv) == 0 &&
	    (uint64_t)sv.f_bavail * sv.f_frsize < n + (uint64_t)sv.f_blocks * sv.f_frsize / 20)
		return bbx_error_set(err, -ENOSPC, BBX_LIMIT_REACHED,
				     "environment '%s': the file system of its %s tree has less "
				     "than 5%% free; nothing was written",
				     name, env_tree_to_string(t));
	json_t *p = json_object_get(in, "parents");
	BeneathWrite w = {
		.data = data,
		.n = n,
		.mode = (mode_t)integer(in, "mode", 0),
		.uid = owner,
		.gid = owner,
		.parents = p ? json_is_true(p) : true,
	};
	bool created = false;
	r = beneath_write_as_owner(root, path, &w, &created);
	if (r < 0)
		return path_error(err, r, t, path);
	*out = json_pack("{s:s,s:s,s:s,s:I,s:b}", "name", name, "root", env_tree_to_string(t),
			 "path", path, "bytes", (json_int_t)n, "created", created);
	return *out ? 0 : -ENOMEM;
}

int op_environment_diff(OpCall *call, json_t *in, json_t **out, BbxError *err)
{
	const char *against = str(in, "against");
	if (against && strcmp(against, "commit") && strcmp(against, "production"))
		return bbx_error_set(err, -EINVAL, BBX_INVALID,
				     "input: 'against' must be \"commit\" or \"production\"");
	return environment_code_diff(
		call->core, str(in, "name"), against && !strcmp(against, "production"),
		(size_t)integer(in, "max_patch", DIFF_DEFAULT_PATCH), out, err);
}

int op_config_read(OpCall *call, json_t *in, json_t **out, BbxError *err)
{
	json_t *cfg = NULL;
	int r = environment_config_json(call->core, str(in, "name"), &cfg, err);
	if (r < 0)
		return r;
	*out = json_pack("{s:s,s:o}", "name", str(in, "name"), "config", cfg);
	return *out ? 0 : -ENOMEM;
}

int op_services_list(OpCall *call, json_t *in, json_t **out, BbxError *err)
{
	return environment_services_json(call->core, str(in, "name"), out, err);
}
