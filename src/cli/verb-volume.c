/* SPDX-License-Identifier: MIT */
/*
 * branchbox volume create|snapshot|destroy|list|usage: admin verbs over the pool. Local
 * and root-only; they call the storage library directly under the pool lock, so they
 * serialize with the daemon.
 */
#include "client.h"
#include "main.h"

#include <stdio.h>
#include <string.h>

#include "error.h"
#include "parse.h"
#include "storage.h"
#include "strbuf.h"

#define MAX_FREEZE_FILES 64

static int fail(const char *sub, const BbxError *err, int r)
{
	fprintf(stderr, "branchbox volume %s: %s\n", sub, bbx_error_message(err, r));
	return EXIT_FAILURE_;
}

static void put_bytes_json(StrBuf *sb, const char *key, uint64_t v)
{
	if (v == STORAGE_UNKNOWN)
		(void)strbuf_appendf(sb, "\"%s\":null", key);
	else
		(void)strbuf_appendf(sb, "\"%s\":%llu", key, (unsigned long long)v);
}

static void put_volume_json(StrBuf *sb, const VolumeInfo *v)
{
	(void)strbuf_puts(sb, "{\"name\":\"");
	(void)strbuf_put_json_escaped(sb, v->name);
	(void)strbuf_puts(sb, "\",\"path\":\"");
	(void)strbuf_put_json_escaped(sb, v->path);
	(void)strbuf_puts(sb, "\",");
	put_bytes_json(sb, "exclusive_bytes", v->exclusive_bytes);
	(void)strbuf_putc(sb, ',');
	put_bytes_json(sb, "shared_bytes", v->shared_bytes);
	(void)strbuf_putc(sb, ',');
	put_bytes_json(sb, "quota_bytes", v->quota_bytes);
	(void)strbuf_putc(sb, '}');
}

static const char *bytes_text(uint64_t v, char *buf, size_t size)
{
	if (v == STORAGE_UNKNOWN)
		return "-";
	return format_size(v, buf, size);
}

/* A new volume's path, alone on its line or as {name, path}. */
static int print_path(Pool *p, const char *name, bool json)
{
	_cleanup_free_ char *path = pool_volume_path(p, name);
	if (!json) {
		printf("%s\n", path ? path : name);
		return EXIT_OK;
	}
	if (!path)
		return EXIT_FAILURE_;
	_cleanup_strbuf_ StrBuf sb = STRBUF_INIT;
	(void)strbuf_puts(&sb, "{\"name\":\"");
	(void)strbuf_put_json_escaped(&sb, name);
	(void)strbuf_puts(&sb, "\",\"path\":\"");
	(void)strbuf_put_json_escaped(&sb, path);
	(void)strbuf_puts(&sb, "\"}");
	printf("%s\n", strbuf_str(&sb));
	return EXIT_OK;
}

static void print_volume(const VolumeInfo *v)
{
	char a[32], b[32], q[32];
	printf("%-24s %10s %10s %10s  %s\n", v->name, bytes_text(v->exclusive_bytes, a, sizeof(a)),
	       bytes_text(v->shared_bytes, b, sizeof(b)), bytes_text(v->quota_bytes, q, sizeof(q)),
	       v->path);
}

/* Every volume command: its arguments are counted by its row. */
int verb_volume(const CliArgs *a)
{
	const char *sub = cli_command_word(a->command), *state, *f;
	char *const *args = a->args;
	char *freeze_files[MAX_FREEZE_FILES + 1] = {};
	size_t n_freeze = 0;
	bool sync = false, json = a->json;

	if (!strcmp(sub, "snapshot"))
		for (size_t i = 0; (f = cli_arg_next(a, "freeze-file", &i));) {
			if (n_freeze >= MAX_FREEZE_FILES)
				return cli_usage_error(a->command->path, "too many --freeze-file");
			freeze_files[n_freeze++] = (char *)f;
		}
	if (!strcmp(sub, "destroy"))
		sync = cli_arg_flag(a, "sync");
	uint64_t quota = STORAGE_UNKNOWN;
	if (!strcmp(sub, "quota") && strcmp(args[1], "none") &&
	    (parse_size(args[1], &quota) < 0 || quota == 0 || quota == STORAGE_UNKNOWN))
		return cli_usage_error(a->command->path, "%s: expected a size like 512M, or none",
				       args[1]);
	if (cli_require_root(a->command->path) < 0)
		return EXIT_FAILURE_;
	state = cli_state_dir(a->state);

	BbxError err = BBX_ERROR_INIT;
	_cleanup_close_ int lock = -EBADF;
	int r = pool_lock(state, &lock, &err);
	if (r < 0)
		return fail(sub, &err, r);
	_cleanup_pool_ Pool *p = NULL;
	r = pool_open(state, &p, &err);
	if (r < 0)
		return fail(sub, &err, r);

	if (!strcmp(sub, "create")) {
		r = pool_volume_create(p, args[0], &err);
		if (r < 0)
			return fail(sub, &err, r);
		return print_path(p, args[0], json);
	}
	if (!strcmp(sub, "snapshot")) {
		VolumeFreeze fz = { storage_freezer_files_freeze, storage_freezer_files_thaw,
				    freeze_files };
		r = pool_volume_snapshot(p, args[0], args[1], n_freeze ? &fz : NULL, &err);
		if (r < 0)
			return fail(sub, &err, r);
		return print_path(p, args[1], json);
	}
	if (!strcmp(sub, "destroy")) {
		r = pool_volume_destroy(p, args[0], sync, &err);
		if (r < 0)
			return fail(sub, &err, r);
		return EXIT_OK;
	}
	if (!strcmp(sub, "quota")) {
		r = pool_volume_set_quota(p, args[0], quota, &err);
		if (r < 0)
			return fail(sub, &err, r);
		return EXIT_OK;
	}
	if (!strcmp(sub, "usage")) {
		VolumeInfo v;
		r = pool_volume_usage(p, args[0], &v, &err);
		if (r < 0)
			return fail(sub, &err, r);
		if (json) {
			_cleanup_strbuf_ StrBuf sb = STRBUF_INIT;
			put_volume_json(&sb, &v);
			printf("%s\n", strbuf_str(&sb));
		} else
			print_volume(&v);
		free(v.name);
		free(v.path);
		return EXIT_OK;
	}
	VolumeInfo *l = NULL;
	size_t n = 0;
	r = pool_volume_list(p, &l, &n, &err);
	if (r < 0)
		return fail(sub, &err, r);
	if (json) {
		_cleanup_strbuf_ StrBuf sb = STRBUF_INIT;
		(void)strbuf_putc(&sb, '[');
		for (size_t i = 0; i < n; i++) {
			if (i)
				(void)strbuf_putc(&sb, ',');
			put_volume_json(&sb, &l[i]);
		}
		(void)strbuf_putc(&sb, ']');
		printf("%s\n", strbuf_str(&sb));
	} else {
		printf("%-24s %10s %10s %10s  %s\n", "NAME", "EXCLUSIVE", "SHARED", "QUOTA",
		       "PATH");
		for (size_t i = 0; i < n; i++)
			print_volume(&l[i]);
	}
	volume_info_list_free(l, n);
	return EXIT_OK;
}
