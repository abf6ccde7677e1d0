/* SPDX-License-Identifier: MIT */
/* branchbox propose, branchbox proposal: the agent workflow with a human gate. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "client.h"
#include "file-util.h"
#include "main.h"

#define PATCH_MAX ((size_t)16 << 20)

static const char *s(json_t *o, const char *key)
{
	const char *v = json_string_value(json_object_get(o, key));
	return v ? v : "";
}

static void print_summary(json_t *p)
{
	printf("%-12s %-10s %-28s %.12s..%.12s %s\n", s(p, "id"), s(p, "status"), s(p, "branch"),
	       s(p, "base"), s(p, "head"), s(p, "title"));
}

static void print_steps(const char *label, json_t *steps)
{
	size_t i;
	json_t *st;
	if (!json_array_size(steps))
		return;
	printf("%s:\n", label);
	json_array_foreach(steps, i, st)
	{
		bool ok = json_is_true(json_object_get(st, "passed"));
		printf("  %s %-14s %-7s exit %lld  %lld ms  %s\n", ok ? "PASS" : "FAIL",
		       s(st, "name"), s(st, "kind"),
		       (long long)json_integer_value(json_object_get(st, "exit_status")),
		       (long long)json_integer_value(json_object_get(st, "duration_ms")),
		       s(st, "command"));
		if (!ok && *s(st, "reason"))
			printf("       why: %s\n", s(st, "reason"));
		const char *tail = s(st, "output_tail");
		if (!ok && *tail) {
			size_t n = strlen(tail);
			const char *t = n > 400 ? tail + n - 400 : tail;
			printf("       output (tail): %s%s", t,
			       t[strlen(t) - 1] == '\n' ? "" : "\n");
		}
		printf("       output sha256 %.16s... (%lld bytes)\n", s(st, "output_sha256"),
		       (long long)json_integer_value(json_object_get(st, "output_bytes")));
	}
}

static void print_full(json_t *p)
{
	printf("proposal %s: %s\n", s(p, "id"), s(p, "status"));
	if (*s(p, "title"))
		printf("  title:     %s\n", s(p, "title"));
	printf("  step:      %s\n", s(p, "step"));
	printf("  branch:    %s\n  base:      %s\n  head:      %s\n  by:        %s\n",
	       s(p, "branch"), s(p, "base"), s(p, "head"), s(p, "created_by"));
	if (*s(p, "error"))
		printf("  error:     %s\n", s(p, "error"));
	json_t *ev = json_object_get(p, "evidence");
	if (json_is_object(ev)) {
		json_t *t = json_object_get(ev, "timings");
		printf("evidence %s (sha256 %s)\n", s(ev, "result"), s(ev, "digest"));
		printf("  timings: clone %lld ms, validate %lld ms, total %lld ms\n",
		       (long long)json_integer_value(json_object_get(t, "clone_ms")),
		       (long long)json_integer_value(json_object_get(t, "validate_ms")),
		       (long long)json_integer_value(json_object_get(t, "total_ms")));
		if (*s(ev, "clone_error"))
			printf("  clone failed: %s\n", s(ev, "clone_error"));
		print_steps("production's validate steps", json_object_get(ev, "steps"));
		print_steps("steps the branch adds (reported apart)",
			    json_object_get(ev, "branch_steps"));
		json_t *cd = json_object_get(ev, "config_diff");
		size_t i;
		json_t *ch;
		printf("config diff against production: %zu change(s)\n", json_array_size(cd));
		json_array_foreach(cd, i, ch)
		{
			printf("  %-8s %s%s%s\n", s(ch, "change"), s(ch, "path"),
			       json_is_true(json_object_get(ch, "governed"))
				       ? "  [production policy]"
				       : "",
			       json_is_true(json_object_get(ch, "widens")) ? "  [WIDENS]" : "");
		}
		json_t *code = json_object_get(ev, "code_diff");
		printf("code diff: %lld file(s), +%lld -%lld\n",
		       (long long)json_integer_value(json_object_get(code, "files_changed")),
		       (long long)json_integer_value(json_object_get(code, "additions")),
		       (long long)json_integer_value(json_object_get(code, "deletions")));
		json_array_foreach(json_object_get(code, "files"), i, ch)
			printf("  %s %s (+%lld -%lld)\n", s(ch, "status"), s(ch, "path"),
			       (long long)json_integer_value(json_object_get(ch, "additions")),
			       (long long)json_integer_value(json_object_get(ch, "deletions")));
		json_t *res = json_object_get(ev, "resources");
		printf("preview resources: cpu %.2f s, memory peak %lld bytes, disk %lld bytes\n",
		       json_number_value(json_object_get(res, "cpu_seconds")),
		       (long long)json_integer_value(json_object_get(res, "memory_peak_bytes")),
		       (long long)json_integer_value(json_object_get(res, "disk_bytes")));
	}
	json_t *rv = json_object_get(p, "review");
	if (json_is_object(rv))
		printf("review: %s by %s at %s%s%s\n", s(rv, "decision"), s(rv, "by"), s(rv, "at"),
		       *s(rv, "reason") ? ": " : "", s(rv, "reason"));
	json_t *m = json_object_get(p, "merge");
	if (json_is_object(m))
		printf("merge: %s to %s by %s at %s%s%s\n", s(m, "kind"), s(m, "commit"),
		       s(m, "by"), s(m, "at"), *s(m, "error") ? ": " : "", s(m, "error"));
}

static bool validating(json_t *p)
{
	const char *st = s(p, "status");
	return !strcmp(st, "submitted") || !strcmp(st, "cloning") || !strcmp(st, "validating");
}

/* Poll until the validation of id is over; *ret the last answer. */
static int wait_for(const char *state, const char *id, json_t **ret)
{
	char path[256];
	snprintf(path, sizeof(path), "/v1/proposals/%s", id);
	for (;;) {
		json_t *j = NULL;
		int r = cli_call("proposal", state, "GET", path, NULL, &j);
		if (r != EXIT_OK)
			return r;
		if (!validating(j)) {
			*ret = j;
			return EXIT_OK;
		}
		json_decref(j);
		struct timespec ts = { 0, 200 * 1000 * 1000 };
		nanosleep(&ts, NULL);
	}
}

int verb_propose(const CliArgs *a)
{
	const char *branch = cli_arg_value(a, "branch"), *patch = cli_arg_value(a, "patch");
	const char *title = cli_arg_value(a, "title"), *desc = cli_arg_value(a, "description");
	const char *key = cli_arg_value(a, "idempotency-key"), *state = a->state;
	bool wait = cli_arg_flag(a, "wait");

	if (!!branch == !!patch)
		return cli_usage_error("propose", "give exactly one of --branch and --patch");
	_cleanup_free_ char *text = NULL;
	if (patch) {
		size_t n = 0;
		int r = !strcmp(patch, "-") ? read_full_fd(STDIN_FILENO, PATCH_MAX, &text, &n)
					    : read_full_file(patch, PATCH_MAX, &text, &n);
		if (r < 0) {
			fprintf(stderr, "branchbox propose: %s: %s\n", patch, strerror(-r));
			return EXIT_FAILURE_;
		}
	}
	json_t *body = json_pack("{s:s?,s:s?,s:s?,s:s?,s:s?}", "branch", branch, "patch", text,
				 "title", title, "description", desc, "idempotency_key", key);
	json_t *j = NULL;
	int ret = cli_call("propose", state, "POST", "/v1/proposals", body, &j);
	json_decref(body);
	if (ret != EXIT_OK)
		return ret;
	if (wait) {
		json_t *w = NULL;
		ret = wait_for(state, s(j, "id"), &w);
		if (ret != EXIT_OK) {
			json_decref(j);
			return ret;
		}
		json_decref(j);
		j = w;
	}
	if (a->json)
		cli_print_json(j);
	else if (wait)
		print_full(j);
	else
		printf("proposal %s %s: branch %s, base %.12s, head %.12s\n", s(j, "id"),
		       s(j, "status"), s(j, "branch"), s(j, "base"), s(j, "head"));
	ret = wait && strcmp(s(j, "status"), "validated") ? EXIT_FAILURE_ : EXIT_OK;
	json_decref(j);
	return ret;
}

/* Only "reject" declares --reason and only approve/merge --idempotency-key. */
static const char *opt(const CliArgs *a, const char *name)
{
	for (const CliOption *o = a->command->options; o && o->name; o++)
		if (!strcmp(o->name, name))
			return cli_arg_value(a, name);
	return NULL;
}

/* proposal list|show|wait|diff|approve|reject|merge */
int verb_proposal(const CliArgs *a)
{
	const char *sub = cli_command_word(a->command), *state = a->state;
	const char *id = a->n_args > 0 ? a->args[0] : NULL;
	const char *reason = opt(a, "reason"), *key = opt(a, "idempotency-key");
	bool json = a->json;
	bool list = !strcmp(sub, "list");
	_cleanup_free_ char *eid = id ? cli_escape_segment(id) : NULL;
	char path[512];
	const char *method = "POST";
	json_t *body = NULL, *j = NULL;
	int ret;

	if (list) {
		ret = cli_call("proposal", state, "GET", "/v1/proposals", NULL, &j);
		if (ret != EXIT_OK)
			return ret;
		if (json)
			cli_print_json(j);
		else {
			size_t i;
			json_t *p;
			json_array_foreach(json_object_get(j, "proposals"), i, p) print_summary(p);
		}
		json_decref(j);
		return EXIT_OK;
	}
	if (!strcmp(sub, "wait")) {
		ret = wait_for(state, id, &j);
		if (ret != EXIT_OK)
			return ret;
		if (json)
			cli_print_json(j);
		else
			print_full(j);
		ret = strcmp(s(j, "status"), "validated") ? EXIT_FAILURE_ : EXIT_OK;
		json_decref(j);
		return ret;
	}
	if (!strcmp(sub, "show") || !strcmp(sub, "diff")) {
		snprintf(path, sizeof(path), "/v1/proposals/%s%s", eid ? eid : "",
			 !strcmp(sub, "diff") ? "/diff" : "");
		method = "GET";
	} else if (!strcmp(sub, "approve") || !strcmp(sub, "merge")) {
		snprintf(path, sizeof(path), "/v1/proposals/%s/%s", eid ? eid : "", sub);
		body = json_pack("{s:s?}", "idempotency_key", key);
	} else if (!strcmp(sub, "reject")) {
		if (!reason)
			return cli_usage_error("proposal", "reject needs --reason R");
		snprintf(path, sizeof(path), "/v1/proposals/%s/reject", eid ? eid : "");
		body = json_pack("{s:s}", "reason", reason);
	} else
		return cli_usage_error(
			"proposal",
			"unknown subcommand '%s' (list, show, wait, diff, approve, reject, merge)",
			sub);
	ret = cli_call("proposal", state, method, path, body, &j);
	json_decref(body);
	if (ret != EXIT_OK)
		return ret;
	if (json)
		cli_print_json(j);
	else if (!strcmp(sub, "show"))
		print_full(j);
	else if (!strcmp(sub, "diff")) {
		fputs(s(j, "patch"), stdout);
		if (json_is_true(json_object_get(j, "patch_truncated")))
			printf("(patch truncated; %lld files, +%lld -%lld)\n",
			       (long long)json_array_size(json_object_get(j, "files")),
			       (long long)json_integer_value(json_object_get(j, "additions")),
			       (long long)json_integer_value(json_object_get(j, "deletions")));
	} else {
		json_t *m = json_object_get(j, "merge");
		printf("proposal %s %s%s%s%s%s%s\n", s(j, "id"), s(j, "status"),
		       json_is_object(m) ? ": " : "", json_is_object(m) ? s(m, "kind") : "",
		       json_is_object(m) ? " to " : "", json_is_object(m) ? s(m, "commit") : "",
		       json_is_true(json_object_get(j, "replayed")) ? " (recorded outcome)" : "");
	}
	json_decref(j);
	return EXIT_OK;
}
