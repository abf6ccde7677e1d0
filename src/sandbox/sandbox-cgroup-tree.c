/* SPDX-License-Identifier: MIT */
/*
 * Whole subtrees of cgroups: what is below a daemon's prefix or an environment's cgroup, found
 * in every hierarchy under the root, and taken down deepest first (see sandbox-cgroup.h).
 */
#include "sandbox-cgroup.h"

#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "macro.h"
#include "parse.h"
#include "sandbox-cgroup-internal.h"
#include "strv.h"

static bool is_dir(const char *p)
{
	struct stat st;
	return stat(p, &st) == 0 && S_ISDIR(st.st_mode);
}

/*
 * Every "branchbox" parent under root: root/branchbox and each root/HIERARCHY/branchbox.
 * Each hierarchy is looked in, not only those of the detected mode, so that a directory in
 * one this file does not manage (a v1 controller left from another boot's layout) is found.
 */
static int branchbox_parents(const char *root, char ***ret)
{
	_cleanup_strv_free_ char **dirs = NULL;
	_cleanup_free_ char *top = NULL;
	if (asprintf(&top, "%s/" CG_PARENT, root) < 0)
		return -ENOMEM;
	if (is_dir(top) && strv_push(&dirs, top) < 0)
		return -ENOMEM;
	_cleanup_(sandbox_cgroup_closedirp) DIR *d = opendir(root);
	if (!d && errno != ENOENT)
		return negative_errno();
	for (struct dirent *de; d && (de = readdir(d));) {
		if (de->d_name[0] == '.')
			continue;
		_cleanup_free_ char *p = NULL;
		if (asprintf(&p, "%s/%s/" CG_PARENT, root, de->d_name) < 0)
			return -ENOMEM;
		if (is_dir(p) && !strv_contains(dirs, p) && strv_push(&dirs, p) < 0)
			return -ENOMEM;
	}
	*ret = TAKE_PTR(dirs);
	return 0;
}

/* dir (the directory of cgroup name, level levels deep) and every cgroup directory below it,
 * added to *names once, unless dir does not exist. */
static int collect_tree(const char *dir, const char *name, size_t level, char ***names)
{
	if (level > CG_MAX_LEVELS)
		return 0;
	_cleanup_(sandbox_cgroup_closedirp) DIR *d = opendir(dir);
	if (!d)
		return errno == ENOENT ? 0 : negative_errno();
	for (struct dirent *de; (de = readdir(d));) {
		if (de->d_type != DT_DIR || !name_is_valid(de->d_name))
			continue;
		_cleanup_free_ char *sub_dir = NULL, *sub_name = NULL;
		if (asprintf(&sub_dir, "%s/%s", dir, de->d_name) < 0 ||
		    asprintf(&sub_name, "%s/%s", name, de->d_name) < 0)
			return -ENOMEM;
		int r = collect_tree(sub_dir, sub_name, level + 1, names);
		if (r < 0)
			return r;
	}
	if (!strv_contains(*names, name) && strv_push(names, name) < 0)
		return -ENOMEM;
	return 0;
}

/* The directory names of dir's child cgroups, added to *names once, unless dir does not
 * exist. */
static int collect_children(const char *dir, const char *name, char ***names)
{
	_cleanup_(sandbox_cgroup_closedirp) DIR *d = opendir(dir);
	if (!d)
		return errno == ENOENT ? 0 : negative_errno();
	for (struct dirent *de; (de = readdir(d));)
		if (de->d_type == DT_DIR && name_is_valid(de->d_name) &&
		    !strv_contains(*names, de->d_name) && strv_push(names, de->d_name) < 0)
			return -ENOMEM;
	return 0;
}

static int collect_subtree(const char *dir, const char *name, char ***names)
{
	size_t levels = 1;
	for (const char *c = name; *c; c++)
		levels += *c == '/';
	return collect_tree(dir, name, levels, names);
}

/* collect(PARENT/name, name, names) for every branchbox parent under root, after checking
 * name: the one walk over the hierarchies that listing children and subtrees share. */
static int collect_in_parents(const char *root, const char *name,
			      int (*collect)(const char *dir, const char *name, char ***names),
			      char ***ret_names)
{
	_cleanup_strv_free_ char **parents = NULL, **names = NULL;
	int r = sandbox_cgroup_name_check(name);
	if (r < 0)
		return r;
	r = branchbox_parents(root, &parents);
	if (r < 0)
		return r;
	for (size_t i = 0; parents && parents[i]; i++) {
		_cleanup_free_ char *dir = NULL;
		if (asprintf(&dir, "%s/%s", parents[i], name) < 0)
			return -ENOMEM;
		r = collect(dir, name, &names);
		if (r < 0)
			return r;
	}
	*ret_names = TAKE_PTR(names);
	return 0;
}

int sandbox_cgroup_list_children(const char *root, const char *parent, char ***ret_names)
{
	return collect_in_parents(root, parent, collect_children, ret_names);
}

int sandbox_cgroup_list_tree(const char *root, const char *name, char ***ret_names)
{
	int r = collect_in_parents(root, name, collect_subtree, ret_names);
	if (r >= 0)
		strv_sort_deepest_first(*ret_names);
	return r;
}

int sandbox_cgroup_remove_tree(const char *root, const char *name, char ***ret_removed,
			       BbxError *err)
{
	_cleanup_strv_free_ char **names = NULL, **parents = NULL;
	int r = sandbox_cgroup_list_tree(root, name, &names);
	if (r < 0)
		return bbx_error_set(err, r, r == -EINVAL ? BBX_INVALID : BBX_INTERNAL,
				     "listing the cgroups branchbox/%s: %s", name, strerror(-r));
	int first = 0;
	for (size_t i = 0; names && names[i]; i++) {
		/* Kills what is left in it first. */
		BbxError e = BBX_ERROR_INIT;
		r = sandbox_cgroup_remove_name(root, names[i], &e);
		if (r < 0) {
			if (first >= 0)
				first = bbx_error_set(err, r, e.kind,
						      "removing cgroup branchbox/%s: %s", names[i],
						      bbx_error_message(&e, r));
			continue;
		}
		if (ret_removed && strv_push(ret_removed, names[i]) < 0)
			return bbx_error_set(err, -ENOMEM, BBX_INTERNAL, "out of memory");
	}
	if (first < 0)
		return first;
	/* A hierarchy sandbox_cgroup_remove_name() does not manage keeps its directory: say so
	 * rather than report the cgroup gone. */
	r = branchbox_parents(root, &parents);
	if (r < 0)
		return bbx_error_set(err, r, BBX_INTERNAL,
				     "listing the cgroup hierarchies of %s: %s", root,
				     strerror(-r));
	for (size_t i = 0; parents && parents[i]; i++) {
		_cleanup_free_ char *dir = NULL;
		if (asprintf(&dir, "%s/%s", parents[i], name) < 0)
			return bbx_error_set(err, -ENOMEM, BBX_INTERNAL, "out of memory");
		if (is_dir(dir))
			return bbx_error_set(err, -EBUSY, BBX_CONFLICT, "cgroup %s is left", dir);
	}
	return 0;
}
