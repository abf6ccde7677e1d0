/* SPDX-License-Identifier: MIT */
/*
 * branchbox pool init|info|destroy: set up, describe and remove the volume pool. Local and
 * root-only; every subcommand holds the pool lock so it serializes with the daemon.
 */
#include "client.h"
#include "main.h"

#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "error.h"
#include "parse.h"
#include "storage.h"
#include "strbuf.h"

int cli_require_root(const char *verb)
{
	if (geteuid() != 0) {
		fprintf(stderr, "branchbox %s: must run as root (it manages mounts and volumes)\n",
			verb);
		return -EPERM;
	}
	return 0;
}

static int fail(const char *what, const BbxError *err, int r)
{
	fprintf(stderr, "branchbox %s: %s\n", what, bbx_error_message(err, r));
	return EXIT_FAILURE_;
}

static int pool_do_init(const char *state, const PoolOptions *o, bool json)
{
	BbxError err = BBX_ERROR_INIT;
	_cleanup_close_ int lock = -EBADF;
	int r = pool_lock(state, &lock, &err);
	if (r < 0)
		return fail("pool init", &err, r);
	bool already = false;
	r = pool_init(state, o, &already, &err);
	if (r < 0)
		return fail("pool init", &err, r);
	_cleanup_pool_ Pool *p = NULL;
	r = pool_open(state, &p, &err);
	if (r < 0)
		return fail("pool init", &err, r);
	PoolInfo info;
	r = pool_info(p, &info, &err);
	if (r < 0)
		return fail("pool init", &err, r);
	if (json) {
		json_t *j = json_pack("{s:b,s:s,s:s,s:s,s:s}", "created", !already, "state", state,
				      "driver", storage_driver_kind_to_string(info.driver),
				      "reason", info.reason, "root", info.root);
		if (!j)
			return EXIT_FAILURE_;
		cli_print_json(j);
		json_decref(j);
		return EXIT_OK;
	}
	printf("%s pool %s: driver %s (%s), volumes in %s\n", already ? "existing" : "created",
	       state, storage_driver_kind_to_string(info.driver), info.reason, info.root);
	return EXIT_OK;
}

static void json_str(StrBuf *sb, const char *key, const char *v, bool comma)
{
	(void)strbuf_appendf(sb, "\"%s\":", key);
	if (!v)
		(void)strbuf_puts(sb, "null");
	else {
		(void)strbuf_putc(sb, '"');
		(void)strbuf_put_json_escaped(sb, v);
		(void)strbuf_putc(sb, '"');
	}
	if (comma)
		(void)strbuf_putc(sb, ',');
}

static int pool_do_info(const char *state, bool json)
{
	BbxError err = BBX_ERROR_INIT;
	_cleanup_close_ int lock = -EBADF;
	int r = pool_lock(state, &lock, &err);
	if (r < 0)
		return fail("pool info", &err, r);
	_cleanup_pool_ Pool *p = NULL;
	r = pool_open(state, &p, &err);
	if (r < 0)
		return fail("pool info", &err, r);
	PoolInfo info;
	r = pool_info(p, &info, &err);
	if (r < 0)
		return fail("pool info", &err, r);
	if (json) {
		_cleanup_strbuf_ StrBuf sb = STRBUF_INIT;
		(void)strbuf_putc(&sb, '{');
		json_str(&sb, "driver", storage_driver_kind_to_string(info.driver), true);
		json_str(&sb, "reason", info.reason, true);
		json_str(&sb, "root", info.root, true);
		json_str(&sb, "image", info.image, true);
		json_str(&sb, "mount_source", info.mount_source, true);
		json_str(&sb, "fstype", info.fstype, true);
		json_str(&sb, "status", pool_status(p), true);
		json_str(&sb, "quota_not_enforced", info.no_quota_reason, true);
		(void)strbuf_appendf(
			&sb,
			"\"quotas\":%s,\"quota_enforced\":%s,\"size_bytes\":%llu,"
			"\"free_bytes\":%llu}",
			info.quotas ? "true" : "false", info.quota_enforced ? "true" : "false",
			(unsigned long long)info.size_bytes, (unsigned long long)info.free_bytes);
		printf("%s\n", strbuf_str(&sb));
		return EXIT_OK;
	}
	char a[32], b[32];
	printf("driver:       %s\n"
	       "reason:       %s\n"
	       "root:         %s\n"
	       "image:        %s\n"
	       "mount source: %s (%s)\n"
	       "quotas:       %s\n"
	       "volume quota: %s%s\n"
	       "size:         %s\n"
	       "free:         %s\n"
	       "status:       %s\n",
	       storage_driver_kind_to_string(info.driver), info.reason, info.root,
	       info.image ? info.image : "-", info.mount_source ? info.mount_source : "?",
	       info.fstype ? info.fstype : "?", info.quotas ? "on" : "off",
	       info.quota_enforced ? "enforced (btrfs qgroup limits)" : "NOT ENFORCED: ",
	       info.quota_enforced ? "" : info.no_quota_reason,
	       format_size(info.size_bytes, a, sizeof(a)),
	       format_size(info.free_bytes, b, sizeof(b)), pool_status(p));
	return EXIT_OK;
}

static int pool_do_destroy(const char *state, bool force)
{
	BbxError err = BBX_ERROR_INIT;
	_cleanup_close_ int lock = -EBADF;
	int r = pool_lock(state, &lock, &err);
	if (r < 0)
		return fail("pool destroy", &err, r);
	_cleanup_pool_ Pool *p = NULL;
	r = pool_open(state, &p, &err);
	if (r < 0)
		return fail("pool destroy", &err, r);
	r = pool_destroy(p, force, &err);
	if (r < 0)
		return fail("pool destroy", &err, r);
	printf("destroyed pool %s\n", state);
	return EXIT_OK;
}

/* Root, and the state dir; NULL (after saying why) when not root. */
static const char *pool_state(const CliArgs *a)
{
	if (cli_require_root(a->command->path) < 0)
		return NULL;
	return cli_state_dir(a->state);
}

int verb_pool_init(const CliArgs *a)
{
	PoolOptions o = { .driver = STORAGE_DRIVER_AUTO, .path = cli_arg_value(a, "path") };
	const char *driver = cli_arg_value(a, "driver"), *size = cli_arg_value(a, "size");

	if (driver && storage_driver_kind_from_string(driver, &o.driver) < 0)
		return cli_usage_error(a->command->path, "--driver: unknown driver '%s'", driver);
	if (size && (parse_size(size, &o.size) < 0 || o.size == 0))
		return cli_usage_error(a->command->path, "--size: invalid size '%s'", size);
	const char *state = pool_state(a);
	return state ? pool_do_init(state, &o, a->json) : EXIT_FAILURE_;
}

int verb_pool_info(const CliArgs *a)
{
	const char *state = pool_state(a);
	return state ? pool_do_info(state, a->json) : EXIT_FAILURE_;
}

int verb_pool_destroy(const CliArgs *a)
{
	const char *state = pool_state(a);
	return state ? pool_do_destroy(state, cli_arg_flag(a, "force")) : EXIT_FAILURE_;
}
