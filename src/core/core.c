/* SPDX-License-Identifier: MIT */
#include "core.h"

#include <errno.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "audit.h"
#include "core-internal.h"
#include "file-util.h"
#include "parse.h"
#include "service.h"
#include "uid-range.h"

int core_new(const CoreOptions *opts, Core **ret, BbxError *err)
{
	struct stat st;
	int r;

	if (!opts->state_dir || !*opts->state_dir)
		return bbx_error_set(err, -EINVAL, BBX_INVALID, "no state directory given");
	if (!opts->repo_path || !*opts->repo_path)
		return bbx_error_set(err, -EINVAL, BBX_INVALID,
				     "no repository given (--repo PATH)");
	if (stat(opts->repo_path, &st) < 0)
		return bbx_error_set(err, -errno, BBX_INVALID, "repository %s: %s", opts->repo_path,
				     strerror(errno));
	if (!S_ISDIR(st.st_mode))
		return bbx_error_set(err, -ENOTDIR, BBX_INVALID, "repository %s: not a directory",
				     opts->repo_path);
	/* A service type added to config and not to core (or the reverse) stops here, not at
	 * the first environment that names it. */
	r = service_types_check(err);
	if (r < 0)
		return r;

	_cleanup_(core_freep) Core *c = calloc(1, sizeof(*c));
	if (!c)
		return -ENOMEM;
	c->state_dir = realpath(opts->state_dir, NULL);
	if (!c->state_dir) {
		r = mkdir_p(opts->state_dir, 0700);
		if (r < 0)
			return bbx_error_set(err, r, BBX_INTERNAL, "state directory %s: %s",
					     opts->state_dir, strerror(-r));
		c->state_dir = realpath(opts->state_dir, NULL);
		if (!c->state_dir)
			return bbx_error_set(err, -errno, BBX_INTERNAL, "state directory %s: %s",
					     opts->state_dir, strerror(errno));
	}
	(void)chmod(c->state_dir, 0700);
	c->repo_path = realpath(opts->repo_path, NULL);
	if (!c->repo_path)
		return -ENOMEM;

	r = store_open(c->state_dir, &c->store, err);
	if (r < 0)
		return r;
	r = audit_init(c, err);
	if (r < 0)
		return r;

	c->production_branch =
		strdup(opts->production_branch && *opts->production_branch ? opts->production_branch
									   : "main");
	if (!c->production_branch)
		return -ENOMEM;
	if (!name_is_valid(c->production_branch))
		return bbx_error_set(err, -EINVAL, BBX_INVALID,
				     "production branch '%s': not a valid environment name",
				     c->production_branch);
	c->hook_timeout_sec = opts->hook_timeout_sec ? opts->hook_timeout_sec : 30 * 60;
	c->agent_token_max_ttl = opts->agent_token_max_ttl > 0 ? opts->agent_token_max_ttl
							       : TOKEN_DEFAULT_AGENT_MAX_TTL;
	c->uid_range = opts->uid_range.first || opts->uid_range.last
			       ? opts->uid_range
			       : (UidRange){ UID_RANGE_DEFAULT_FIRST, UID_RANGE_DEFAULT_LAST };
	if (c->uid_range.first < UID_RANGE_MIN || c->uid_range.last > UID_RANGE_MAX ||
	    c->uid_range.last <= c->uid_range.first)
		return bbx_error_set(err, -ERANGE, BBX_INVALID, "uid range %u-%u is not usable",
				     c->uid_range.first, c->uid_range.last);

	c->max_previews = opts->max_previews ? opts->max_previews : CEILING_DEFAULT_MAX_PREVIEWS;
	c->max_previews_per_token = opts->max_previews_per_token
					    ? opts->max_previews_per_token
					    : CEILING_DEFAULT_MAX_PREVIEWS_PER_TOKEN;
	c->pool_reserve = opts->pool_reserve
				  ? *opts->pool_reserve
				  : (PoolReserve){ .percent = CEILING_DEFAULT_RESERVE_PERCENT };

	/* Keys are created at first start and never leave the state dir. */
	r = core_load_or_create_key(c->state_dir, "token.key", c->token_key, sizeof(c->token_key),
				    NULL, err);
	if (r < 0)
		return r;
	uint8_t seed[crypto_sign_SEEDBYTES];
	r = core_load_or_create_key(c->state_dir, "audit-ed25519.key", seed, sizeof(seed), NULL,
				    err);
	if (r < 0)
		return r;
	crypto_sign_seed_keypair(c->audit_pk, c->audit_sk, seed);
	sodium_memzero(seed, sizeof(seed));

	r = token_cache_new(&c->token_cache);
	if (r < 0)
		return r;
	r = audit_start(c, err);
	if (r < 0)
		return r;

	*ret = TAKE_PTR(c);
	return 0;
}

void core_free(Core *c)
{
	if (!c)
		return;
	audit_stop(c);
	token_cache_free(c->token_cache);
	sodium_memzero(c->token_key, sizeof(c->token_key));
	sodium_memzero(c->audit_sk, sizeof(c->audit_sk));
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

uint64_t core_hook_timeout(Core *c)
{
	return c->hook_timeout_sec;
}

int64_t core_agent_token_max_ttl(Core *c)
{
	return c->agent_token_max_ttl;
}

const UidRange *core_uid_range(Core *c)
{
	return &c->uid_range;
}

size_t core_max_previews(Core *c)
{
	return c->max_previews;
}

size_t core_max_previews_per_token(Core *c)
{
	return c->max_previews_per_token;
}

const PoolReserve *core_pool_reserve(Core *c)
{
	return &c->pool_reserve;
}
