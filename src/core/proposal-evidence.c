/* SPDX-License-Identifier: MIT */
/*
 * The evidence of a proposal's validation: each validate step run in the preview (a command
 * in the application's sandbox, an HTTP request to the application, a query against a
 * database service), and the config diff against production. Production's steps decide;
 * the steps only the branch's config has run too and are reported apart.
 */
#include <errno.h>
#include <poll.h>
#include <sodium.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "config.h"
#include "environment.h"
#include "file-util.h"
#include "proposal.h"
#include "proposals.h"
#include "store.h"
#include "strbuf.h"
#include "strv.h"
#include "time-util.h"

#define OUTPUT_TAIL 4096
#define HTTP_MAX_RESPONSE (1u << 20)

int proposal_json_digest(json_t *j, char ret[static 65])
{
	char *s = json_dumps(j, JSON_COMPACT | JSON_SORT_KEYS);
	if (!s)
		return -ENOMEM;
	unsigned char h[crypto_hash_sha256_BYTES];
	crypto_hash_sha256(h, (const unsigned char *)s, strlen(s));
	free(s);
	sodium_bin2hex(ret, 65, h, sizeof(h));
	return 0;
}

static uint64_t now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

static json_t *tail_json(const char *data, size_t n)
{
	if (n > OUTPUT_TAIL) {
		data += n - OUTPUT_TAIL;
		n = OUTPUT_TAIL;
	}
	return ops_json_string_lossy(data, n);
}

/* One HTTP GET to the environment's application; the response in *ret (caller frees). */
static int http_get(Core *c, const char *env, const char *path, uint64_t timeout_sec, StrBuf *ret,
		    BbxError *err)
{
	int fd = -EBADF;
	int r = environment_connect_app(c, env, &fd, err);
	if (r < 0)
		return r;
	_cleanup_strbuf_ StrBuf req = STRBUF_INIT;
	r = strbuf_appendf(
		&req,
		"GET %s HTTP/1.1\r\nHost: localhost\r\nUser-Agent: branchbox-validate\r\n"
		"Connection: close\r\n\r\n",
		path);
	if (r < 0) {
		close(fd);
		return r;
	}
	uint64_t deadline = now_ms() + timeout_sec * 1000;
	size_t off = 0;
	while (off < req.len) {
		ssize_t k = write(fd, strbuf_str(&req) + off, req.len - off);
		if (k < 0 && errno == EINTR)
			continue;
		if (k <= 0) {
			r = bbx_error_set(err, -errno, BBX_FAILED, "sending the request: %m");
			close(fd);
			return r;
		}
		off += (size_t)k;
	}
	char buf[16384];
	for (;;) {
		uint64_t now = now_ms();
		if (now >= deadline) {
			close(fd);
			return bbx_error_set(err, -ETIMEDOUT, BBX_FAILED,
					     "no complete answer within %llu s",
					     (unsigned long long)timeout_sec);
		}
		struct pollfd p = { .fd = fd, .events = POLLIN };
		int k = poll(&p, 1, (int)(deadline - now));
		if (k < 0 && errno == EINTR)
			continue;
		if (k <= 0)
			continue;
		ssize_t n = read(fd, buf, sizeof(buf));
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			break;
		if (ret->len + (size_t)n > HTTP_MAX_RESPONSE)
			break;
		if (strbuf_append(ret, buf, (size_t)n) < 0) {
			close(fd);
			return -ENOMEM;
		}
	}
	close(fd);
	return 0;
}

static int step_http(Core *c, const char *env, const ConfigStep *st, json_t *o, bool *passed)
{
	BbxError e = BBX_ERROR_INIT;
	_cleanup_strbuf_ StrBuf resp = STRBUF_INIT;
	uint64_t t0 = now_ms();
	int r = http_get(c, env, st->http_path, st->timeout_sec ? st->timeout_sec : 60, &resp, &e);
	json_object_set_new(o, "duration_ms", json_integer((json_int_t)(now_ms() - t0)));
	if (r == -ENOMEM)
		return r;
	char digest[65];
	unsigned char h[crypto_hash_sha256_BYTES];
	crypto_hash_sha256(h, (const unsigned char *)strbuf_str(&resp), resp.len);
	sodium_bin2hex(digest, sizeof(digest), h, sizeof(h));
	unsigned status = 0;
	const char *data = strbuf_str(&resp);
	if (r >= 0 && resp.len > 12 && !strncmp(data, "HTTP/1.", 7))
		status = (unsigned)strtoul(data + 9, NULL, 10);
	const char *body = r >= 0 ? memmem(data, resp.len, "\r\n\r\n", 4) : NULL;
	size_t body_len = body ? resp.len - (size_t)(body + 4 - data) : 0;
	body = body ? body + 4 : "";
	bool ok = r >= 0 && status == st->expect_status;
	const char *why = NULL;
	char whybuf[256];
	if (r < 0)
		why = bbx_error_message(&e, r);
	else if (!status)
		why = "the application sent no HTTP answer";
	else if (status != st->expect_status) {
		snprintf(whybuf, sizeof(whybuf), "status %u, expected %u", status,
			 st->expect_status);
		why = whybuf;
	}
	if (ok && st->expect_body_contains &&
	    !memmem(body, body_len, st->expect_body_contains, strlen(st->expect_body_contains))) {
		ok = false;
		snprintf(whybuf, sizeof(whybuf), "the body does not contain '%.64s'",
			 st->expect_body_contains);
		why = whybuf;
	}
	json_object_set_new(o, "exit_status", json_integer(ok ? 0 : 1));
	json_object_set_new(o, "http_status", json_integer(status));
	json_object_set_new(o, "output_tail", tail_json(body, body_len));
	json_object_set_new(o, "output_sha256", json_string(digest));
	json_object_set_new(o, "output_bytes", json_integer((json_int_t)resp.len));
	if (why)
		json_object_set_new(o, "reason", json_string(why));
	*passed = ok;
	return 0;
}

static size_t count_lines(const char *s, size_t n)
{
	size_t lines = 0;
	bool in_line = false;
	for (size_t i = 0; i < n; i++) {
		if (s[i] == '\n') {
			lines += in_line;
			in_line = false;
		} else
			in_line = true;
	}
	return lines + in_line;
}

static void put_result(json_t *o, const OneshotResult *res)
{
	json_object_set_new(o, "exit_status", json_integer(res->exit_status));
	json_object_set_new(o, "duration_ms", json_integer((json_int_t)res->duration_ms));
	json_object_set_new(o, "output_tail", tail_json(res->output, res->output_len));
	json_object_set_new(o, "output_sha256", json_string(res->output_sha256));
	json_object_set_new(o, "output_bytes", json_integer((json_int_t)res->output_total));
	if (res->timed_out)
		json_object_set_new(o, "timed_out", json_true());
}

/* Run one step; fills o (its evidence) and *passed. Only -ENOMEM and a shutdown fail. */
static int run_step(Core *c, const char *env, const ConfigStep *st, json_t *o, bool *passed)
{
	BbxError e = BBX_ERROR_INIT;
	OneshotResult res = { 0 };
	uint64_t timeout = st->timeout_sec ? st->timeout_sec : CONFIG_DEFAULT_STEP_TIMEOUT;
	int r;
	*passed = false;

	switch (st->kind) {
	case CONFIG_STEP_HTTP: {
		char what[2200];
		snprintf(what, sizeof(what), "GET %s (expect %u%s%s)", st->http_path,
			 st->expect_status, st->expect_body_contains ? ", body contains " : "",
			 st->expect_body_contains ? st->expect_body_contains : "");
		json_object_set_new(o, "kind", json_string("http"));
		json_object_set_new(o, "command", json_string(what));
		return step_http(c, env, st, o, passed);
	}
	case CONFIG_STEP_SQL: {
		json_object_set_new(o, "kind", json_string("sql"));
		json_object_set_new(o, "command", json_string(st->sql));
		json_object_set_new(o, "service", json_string(st->service));
		uint64_t t0 = now_ms();
		r = environment_sql(c, env, st->service, st->sql, timeout, &res, &e);
		if (r < 0) {
			json_object_set_new(o, "duration_ms",
					    json_integer((json_int_t)(now_ms() - t0)));
			break;
		}
		put_result(o, &res);
		bool ok = res.exit_status == 0;
		char why[160] = "";
		size_t rows = count_lines(res.output, res.output_len);
		if (!ok)
			snprintf(why, sizeof(why), "the query failed (exit status %d)",
				 res.exit_status);
		else if (st->has_expect_rows && rows != st->expect_rows) {
			ok = false;
			snprintf(why, sizeof(why), "%zu rows, expected %llu", rows,
				 (unsigned long long)st->expect_rows);
		} else if (st->expect_value) {
			size_t n = res.output_len;
			while (n && (res.output[n - 1] == '\n' || res.output[n - 1] == ' '))
				n--;
			if (n != strlen(st->expect_value) ||
			    memcmp(res.output, st->expect_value, n)) {
				ok = false;
				snprintf(why, sizeof(why), "the value is not '%.64s'",
					 st->expect_value);
			}
		}
		if (why[0])
			json_object_set_new(o, "reason", json_string(why));
		json_object_set_new(o, "rows", json_integer((json_int_t)rows));
		*passed = ok;
		oneshot_result_done(&res);
		return 0;
	}
	case CONFIG_STEP_COMMAND:
	default: {
		json_object_set_new(o, "kind", json_string("command"));
		json_object_set_new(o, "command", json_string(st->command));
		_cleanup_strv_free_ char **argv = strv_new("/bin/sh", "-c", st->command, NULL);
		if (!argv)
			return -ENOMEM;
		EnvExecOptions x = { .name = env, .argv = argv, .timeout_sec = timeout };
		uint64_t t0 = now_ms();
		r = environment_exec(c, &x, &res, &e);
		if (r < 0) {
			json_object_set_new(o, "duration_ms",
					    json_integer((json_int_t)(now_ms() - t0)));
			break;
		}
		put_result(o, &res);
		*passed = res.exit_status == 0 && !res.timed_out;
		if (!*passed)
			json_object_set_new(
				o, "reason",
				json_string(res.timed_out ? "timed out" : "non-zero exit status"));
		oneshot_result_done(&res);
		return 0;
	}
	}
	/* The step could not run at all: a failure of the step, unless the daemon stops. */
	if (environments_shutting_down(c))
		return bbx_error_set(NULL, -ECANCELED, BBX_CONFLICT, "shutting down");
	json_object_set_new(o, "exit_status", json_integer(-1));
	json_object_set_new(o, "reason", json_string(bbx_error_message(&e, r)));
	return 0;
}

static json_t *step_config_json(const ConfigStep *st)
{
	json_t *j = json_pack("{s:i,s:s?,s:s?,s:s?,s:s?,s:i,s:s?,s:b,s:I,s:s?,s:I}", "kind",
			      (int)st->kind, "command", st->command, "service", st->service, "sql",
			      st->sql, "path", st->http_path, "status", (int)st->expect_status,
			      "contains", st->expect_body_contains, "has_rows", st->has_expect_rows,
			      "rows", (json_int_t)st->expect_rows, "value", st->expect_value,
			      "timeout", (json_int_t)st->timeout_sec);
	return j;
}

/* Whether production has a step exactly like st (same name and the same check). */
static bool production_has(const ProjectConfig *prod, const ConfigStep *st)
{
	json_t *a = step_config_json(st);
	bool found = false;
	for (size_t i = 0; a && !found && i < prod->n_validate; i++) {
		json_t *b = step_config_json(&prod->validate[i]);
		found = b && json_equal(a, b) && st->name && prod->validate[i].name &&
			!strcmp(st->name, prod->validate[i].name);
		json_decref(b);
	}
	json_decref(a);
	return found;
}

int proposal_validate_steps(Core *c, const char *preview, const ProjectConfig *production,
			    const ProjectConfig *branch, const char *proposal_id,
			    json_t **ret_steps, json_t **ret_branch_steps, bool *ret_passed,
			    BbxError *err)
{
	json_t *steps = json_array(), *bsteps = json_array();
	bool all = true;
	size_t total = production->n_validate;
	for (size_t i = 0; branch && i < branch->n_validate; i++)
		total += !production_has(production, &branch->validate[i]);
	size_t done = 0;
	int r = 0;
	for (int pass = 0; pass < 2 && r >= 0; pass++) {
		const ProjectConfig *cfg = pass == 0 ? production : branch;
		for (size_t i = 0; cfg && i < cfg->n_validate && r >= 0; i++) {
			const ConfigStep *st = &cfg->validate[i];
			if (pass == 1 && production_has(production, st))
				continue;
			char progress[256];
			snprintf(progress, sizeof(progress), "validating: %s step %zu/%zu: %s",
				 pass == 0 ? "production" : "branch", done + 1, total,
				 st->name ? st->name : "?");
			(void)proposal_record_set_step(core_store(c), proposal_id, progress, NULL);
			json_t *o = json_pack("{s:s,s:s}", "name", st->name ? st->name : "",
					      "source", pass == 0 ? "production" : "branch");
			bool ok = false;
			r = o ? run_step(c, preview, st, o, &ok) : -ENOMEM;
			if (r < 0) {
				json_decref(o);
				break;
			}
			json_object_set_new(o, "passed", json_boolean(ok));
			all = all && ok;
			json_array_append_new(pass == 0 ? steps : bsteps, o);
			done++;
		}
	}
	if (r < 0) {
		json_decref(steps);
		json_decref(bsteps);
		return r == -ECANCELED ? bbx_error_set(err, r, BBX_CONFLICT, "shutting down") : r;
	}
	*ret_steps = steps;
	*ret_branch_steps = bsteps;
	*ret_passed = all;
	return 0;
}

/* ---- config diff ---- */

/* Keys production's config governs (docs/config.md): a change the branch makes to one of
 * them becomes production's policy once merged. */
static bool governed(const char *path)
{
	static const char *const prefixes[] = { "sanitize", "validate", "egress", "environments",
						NULL };
	for (size_t i = 0; prefixes[i]; i++) {
		size_t n = strlen(prefixes[i]);
		if (!strncmp(path, prefixes[i], n) &&
		    (path[n] == '\0' || path[n] == '.' || path[n] == '['))
			return true;
	}
	if (!strncmp(path, "services.", 9) && (strstr(path, ".resources") || strstr(path, ".disk")))
		return true;
	if (!strncmp(path, "applications.", 13) &&
	    (strstr(path, ".mounts") || strstr(path, ".resources")))
		return true;
	return false;
}

static bool widens(const char *path, const char *change, json_t *from, json_t *to)
{
	if (!governed(path))
		return false;
	if (json_is_number(from) && json_is_number(to))
		return json_number_value(to) > json_number_value(from);
	/* A check or a mask less, a destination more. */
	if (!strncmp(path, "sanitize", 8) || !strncmp(path, "validate", 8))
		return strcmp(change, "added") != 0;
	if (!strncmp(path, "egress", 6))
		return strcmp(change, "removed") != 0;
	return strcmp(change, "removed") != 0 || strstr(path, ".mounts");
}

static void add_change(json_t *out, const char *path, const char *change, json_t *from, json_t *to)
{
	json_t *o = json_pack("{s:s,s:s,s:b,s:b}", "path", path, "change", change, "governed",
			      governed(path), "widens", widens(path, change, from, to));
	if (!o)
		return;
	if (from)
		json_object_set(o, "production", from);
	if (to)
		json_object_set(o, "branch", to);
	json_array_append_new(out, o);
}

static void diff_value(json_t *out, const char *path, json_t *a, json_t *b, int depth)
{
	if (json_equal(a, b))
		return;
	char sub[512];
	if (json_is_object(a) && json_is_object(b) && depth < 8) {
		const char *k;
		json_t *v;
		json_object_foreach(a, k, v)
		{
			snprintf(sub, sizeof(sub), "%s%s%s", path, *path ? "." : "", k);
			json_t *w = json_object_get(b, k);
			if (!w)
				add_change(out, sub, "removed", v, NULL);
			else
				diff_value(out, sub, v, w, depth + 1);
		}
		json_object_foreach(b, k, v) if (!json_object_get(a, k))
		{
			snprintf(sub, sizeof(sub), "%s%s%s", path, *path ? "." : "", k);
			add_change(out, sub, "added", NULL, v);
		}
		return;
	}
	if (json_is_array(a) && json_is_array(b)) {
		/* Elements by value: what production has that the branch lacks, and the
		 * reverse (a step or rule moved in the list is no change). */
		size_t i, j;
		json_t *v, *w;
		json_array_foreach(a, i, v)
		{
			bool found = false;
			json_array_foreach(b, j, w) found = found || json_equal(v, w);
			if (!found) {
				snprintf(sub, sizeof(sub), "%s[%zu]", path, i);
				add_change(out, sub, "removed", v, NULL);
			}
		}
		json_array_foreach(b, j, w)
		{
			bool found = false;
			json_array_foreach(a, i, v) found = found || json_equal(v, w);
			if (!found) {
				snprintf(sub, sizeof(sub), "%s[%zu]", path, j);
				add_change(out, sub, "added", NULL, w);
			}
		}
		return;
	}
	add_change(out, path, "changed", a, b);
}

json_t *proposal_config_diff(const ProjectConfig *production, const ProjectConfig *branch)
{
	json_t *a = config_to_json(production), *b = config_to_json(branch);
	json_t *out = json_array();
	if (a && b && out) {
		/* Where the file lives is no change of what it says. */
		json_object_del(a, "file");
		json_object_del(b, "file");
		diff_value(out, "", a, b, 0);
	}
	json_decref(a);
	json_decref(b);
	return out;
}
