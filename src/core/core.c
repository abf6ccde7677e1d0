/* SPDX-License-Identifier: MIT */
#include "core.h"

#include <errno.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "audit.h"
#include "file-util.h"

struct Core {
	char *state_dir;
	char *repo_path;
	char *production_branch;
	Store *store;
	struct Environments *environments;
};

int core_new(const CoreOptions *opts, Core **ret, BbxError *err)
{
	struct stat st;
	int r;

	if (!opts->state_dir || !*opts->state_dir)
		return bbx_error_set(err, -EINVAL, "invalid", "no state directory given");
	if (!opts->repo_path || !*opts->repo_path)
		return bbx_error_set(err, -EINVAL, "invalid", "no repository given (--repo PATH)");
	if (stat(opts->repo_path, &st) < 0)
		return bbx_error_set(err, -errno, "invalid", "repository %s: %s", opts->repo_path,
				     strerror(errno));
	if (!S_ISDIR(st.st_mode))
		return bbx_error_set(err, -ENOTDIR, "invalid", "repository %s: not a directory",
				     opts->repo_path);

	_cleanup_(core_freep) Core *c = calloc(1, sizeof(*c));
	if (!c)
		return -ENOMEM;
	c->state_dir = realpath(opts->state_dir, NULL);
	if (!c->state_dir) {
		r = mkdir_p(opts->state_dir, 0700);
		if (r < 0)
			return bbx_error_set(err, r, "internal", "state directory %s: %s",
					     opts->state_dir, strerror(-r));
		c->state_dir = realpath(opts->state_dir, NULL);
		if (!c->state_dir)
			return bbx_error_set(err, -errno, "internal", "state directory %s: %s",
					     opts->state_dir, strerror(errno));
	}
	(void)chmod(c->state_dir, 0700);
	c->repo_path = realpath(opts->repo_path, NULL);
	c->production_branch = strdup(opts->production_branch ? opts->production_branch : "main");
	if (!c->repo_path || !c->production_branch)
		return -ENOMEM;

	r = store_open(c->state_dir, &c->store, err);
	if (r < 0)
		return r;
	r = audit_init(c, err);
	if (r < 0)
		return r;

	*ret = TAKE_PTR(c);
	return 0;
}

void core_free(Core *c)
{
	if (!c)
		return;
	store_free(c->store);
	free(c->production_branch);
	free(c->state_dir);
	free(c->repo_path);
	free(c);
}

const char *core_state_dir(Core *c)
{
	return c->state_dir;
}

const char *core_repo_path(Core *c)
{
	return c->repo_path;
}

Store *core_store(Core *c)
{
	return c->store;
}

const char *core_production_branch(Core *c)
{
	return c->production_branch;
}

struct Environments *core_environments(Core *c)
{
	return c->environments;
}

void core_set_environments(Core *c, struct Environments *e)
{
	c->environments = e;
}
