/* SPDX-License-Identifier: MIT */
/*
 * /v1/environments and /v1/deploy. Authorization of the {name} in the path has already
 * happened in the dispatcher; an environment the principal cannot see never reaches these
 * handlers, and a missing one is answered with the same api_reply_not_found().
 */
#include "api.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "environment.h"
#include "parse.h"
#include "policy.h"
#include "strv.h"

static int reply_env_error(ApiRequest *req, ApiResponse *resp, const char *name, int r, BbxError *err)
{
	if (r == -ENOENT && !strcmp(err->kind, "not_found"))
		return api_reply_not_found(resp, "environment", name);
	return api_reply_bbx_error(resp, r, err);
}

int route_environments_list(ApiRequest *req, ApiResponse *resp)
{
	BbxError err = BBX_ERROR_INIT;
	json_t *list = NULL;
	int r = environment_list(req->core, req->principal, &list, &err);
	if (r < 0)
		return api_reply_bbx_error(resp, r, &err);
	return api_reply_json(resp, 200, json_pack("{s:o}", "environments", list));
}

int route_environment_get(ApiRequest *req, ApiResponse *resp)
{
	BbxError err = BBX_ERROR_INIT;
	json_t *info = NULL;
	int r = environment_info(req->core, req->params[0], &info, &err);
	if (r < 0)
		return reply_env_error(req, resp, req->params[0], r, &err);
	return api_reply_json(resp, 200, info);
}

static int check_keys(json_t *body, const char *const *allowed, ApiResponse *resp)
{
	const char *key;
	json_t *v;
	json_object_foreach(body, key, v) {
		bool ok = false;
		for (const char *const *a = allowed; *a; a++)
			ok |= !strcmp(*a, key);
		if (!ok)
			return api_reply_error(resp, 400, "invalid", "request body: unknown field '%s'", key), -EINVAL;
	}
	return 0;
}

static int optional_string(json_t *body, const char *key, const char **ret, ApiResponse *resp)
{
	json_t *v = json_object_get(body, key);
	*ret = NULL;
	if (!v || json_is_null(v))
		return 0;
	if (!json_is_string(v))
		return api_reply_error(resp, 400, "invalid", "request body: '%s' must be a string", key), -EINVAL;
	*ret = json_string_value(v);
	return 0;
}

int route_environment_create(ApiRequest *req, ApiResponse *resp)
{
	static const char *const keys[] = { "name", "from", "branch", NULL };
	BbxError err = BBX_ERROR_INIT;
	json_t *body = NULL, *info = NULL;
	const char *name, *from, *branch;
	int r;

	if (api_request_json(req, resp, &body) < 0)
		return 0;
	if (check_keys(body, keys, resp) < 0 || optional_string(body, "name", &name, resp) < 0 ||
	    optional_string(body, "from", &from, resp) < 0 || optional_string(body, "branch", &branch, resp) < 0)
		goto out;
	if (!name) {
		api_reply_error(resp, 400, "invalid", "request body: 'name' is required");
		goto out;
	}
	snprintf(req->resource, sizeof(req->resource), "environment:%s", name);
	/* The new name must be in the token's scope; a parent it cannot see does not exist.
	 * Without "from" the parent is production, which agents may clone but never see. */
	if (policy_authorize(req->core, req->principal, VERB_ENV_CREATE, name) != POLICY_ALLOW) {
		api_reply_error(resp, 403, "forbidden", "this token may not create environment '%s'", name);
		goto out;
	}
	if (from && policy_authorize(req->core, req->principal, VERB_ENV_READ, from) == POLICY_INVISIBLE) {
		api_reply_not_found(resp, "environment", from);
		goto out;
	}
	if (api_request_intent(req, resp) < 0)
		goto out;
	EnvCreateOptions o = { .name = name, .parent = from, .branch = branch, .created_by = req->principal->name,
			       .token_id = req->principal->token_id[0] ? req->principal->token_id : NULL };
	r = environment_create(req->core, &o, &info, &err);
	if (r < 0) {
		if (r == -ENOENT && !strcmp(err.kind, "not_found"))
			api_reply_not_found(resp, "environment", from ? from : "");
		else
			api_reply_bbx_error(resp, r, &err);
		goto out;
	}
	api_reply_json(resp, 201, info);
out:
	json_decref(body);
	return 0;
}

int route_environment_delete(ApiRequest *req, ApiResponse *resp)
{
	BbxError err = BBX_ERROR_INIT;
	if (api_request_intent(req, resp) < 0)
		return 0;
	int r = environment_destroy(req->core, req->params[0], &err);
	if (r < 0)
		return reply_env_error(req, resp, req->params[0], r, &err);
	return api_reply_json(resp, 200, json_pack("{s:s,s:b}", "name", req->params[0], "destroyed", 1));
}

int route_environment_stop(ApiRequest *req, ApiResponse *resp)
{
	BbxError err = BBX_ERROR_INIT;
	if (api_request_intent(req, resp) < 0)
		return 0;
	int r = environment_stop(req->core, req->params[0], &err);
	if (r < 0)
		return reply_env_error(req, resp, req->params[0], r, &err);
	return route_environment_get(req, resp);
}

int route_environment_start(ApiRequest *req, ApiResponse *resp)
{
	BbxError err = BBX_ERROR_INIT;
	if (api_request_intent(req, resp) < 0)
		return 0;
	int r = environment_start(req->core, req->params[0], &err);
	if (r < 0)
		return reply_env_error(req, resp, req->params[0], r, &err);
	return route_environment_get(req, resp);
}

int route_environment_exec(ApiRequest *req, ApiResponse *resp)
{
	static const char *const keys[] = { "command", "application", "stdin", "timeout", NULL };
	BbxError err = BBX_ERROR_INIT;
	json_t *body = NULL, *cmd;
	char **argv = NULL;
	const char *app, *in;
	OneshotResult res = { 0 };
	int r;

	if (api_request_json(req, resp, &body) < 0)
		return 0;
	if (check_keys(body, keys, resp) < 0 || optional_string(body, "application", &app, resp) < 0 ||
	    optional_string(body, "stdin", &in, resp) < 0)
		goto out;
	cmd = json_object_get(body, "command");
	if (!json_is_array(cmd) || json_array_size(cmd) == 0 || json_array_size(cmd) > 256) {
		api_reply_error(resp, 400, "invalid", "request body: 'command' must be a non-empty array of strings (argv)");
		goto out;
	}
	size_t i;
	json_t *v;
	json_array_foreach(cmd, i, v) {
		if (!json_is_string(v) || strv_push(&argv, json_string_value(v)) < 0) {
			api_reply_error(resp, 400, "invalid", "request body: command[%zu] must be a string", i);
			goto out;
		}
	}
	json_t *t = json_object_get(body, "timeout");
	json_int_t timeout = 600;
	if (t && (!json_is_integer(t) || (timeout = json_integer_value(t)) < 1 || timeout > 3600)) {
		api_reply_error(resp, 400, "invalid", "request body: 'timeout' must be seconds between 1 and 3600");
		goto out;
	}
	if (api_request_intent(req, resp) < 0)
		goto out;
	EnvExecOptions o = { .name = req->params[0], .application = app, .argv = argv, .stdin_data = in,
			     .timeout_sec = (uint64_t)timeout };
	r = environment_exec(req->core, &o, &res, &err);
	if (r < 0) {
		reply_env_error(req, resp, req->params[0], r, &err);
		goto out;
	}
	api_reply_json(resp, 200,
		       json_pack("{s:i,s:o,s:s,s:I,s:b,s:b,s:I}", "exit_code", res.exit_status, "output",
				 api_json_string_lossy(res.output, res.output_len), "output_sha256", res.output_sha256,
				 "output_bytes", (json_int_t)res.output_total, "output_truncated",
				 res.output_total > res.output_len, "timed_out", res.timed_out, "duration_ms",
				 (json_int_t)res.duration_ms));
out:
	oneshot_result_done(&res);
	strv_free(argv);
	json_decref(body);
	return 0;
}

int route_environment_logs(ApiRequest *req, ApiResponse *resp)
{
	BbxError err = BBX_ERROR_INIT;
	const char *process = api_request_query(req, "process");
	const char *off_s = api_request_query(req, "offset");
	int64_t offset = -65536;
	char *text = NULL;
	int64_t next = 0;

	if (off_s && parse_int64(off_s, &offset) < 0)
		return api_reply_error(resp, 400, "invalid", "query: 'offset' must be an integer");
	int r = environment_logs(req->core, req->params[0], process && *process ? process : NULL, offset, 1u << 20,
				 &text, &next, &err);
	if (r < 0)
		return reply_env_error(req, resp, req->params[0], r, &err);
	api_reply_json(resp, 200, json_pack("{s:o,s:I}", "text", api_json_string_lossy(text, strlen(text)),
					    "next_offset", (json_int_t)next));
	free(text);
	return 0;
}

int route_deploy(ApiRequest *req, ApiResponse *resp)
{
	BbxError err = BBX_ERROR_INIT;
	json_t *info = NULL;
	const char *prod = core_production_branch(req->core);

	snprintf(req->resource, sizeof(req->resource), "environment:%s", prod);
	PolicyDecision d = policy_authorize(req->core, req->principal, VERB_ENV_WRITE, prod);
	if (d == POLICY_INVISIBLE)
		return api_reply_not_found(resp, "environment", prod);
	if (d == POLICY_FORBIDDEN)
		return api_reply_error(resp, 403, "forbidden", "this token may not env:write");
	if (api_request_intent(req, resp) < 0)
		return 0;
	int r = environment_deploy(req->core, &info, &err);
	if (r < 0)
		return api_reply_bbx_error(resp, r, &err);
	return api_reply_json(resp, 200, info);
}
