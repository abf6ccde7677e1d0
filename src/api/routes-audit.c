/* SPDX-License-Identifier: MIT */
/* /v1/audit: read the ledger, sign a checkpoint, verify the chain; and the route table. */
#include "api.h"

#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "audit.h"
#include "environment.h"
#include "parse.h"
#include "policy.h"

#define AUDIT_DEFAULT_LIMIT 100
#define AUDIT_MAX_LIMIT 1000

/* "since": an ISO 8601 UTC time prefix ("2026-11-26T18:00"), or a duration back from now. */
static int parse_since(const char *s, char *buf, size_t size)
{
	uint64_t secs;

	if (!s)
		return 0;
	if (parse_duration(s, &secs) == 0) {
		time_t t = time(NULL) - (time_t)(secs > (uint64_t)INT32_MAX ? INT32_MAX : secs);
		struct tm tm;
		gmtime_r(&t, &tm);
		strftime(buf, size, "%Y-%m-%dT%H:%M:%S", &tm);
		return 1;
	}
	size_t n = strlen(s);
	if (n < 4 || n >= size)
		return -EINVAL;
	for (size_t i = 0; i < n; i++)
		if (!strchr("0123456789-:T.Z", s[i]))
			return -EINVAL;
	snprintf(buf, size, "%s", s);
	return 1;
}

static int audit_list(ApiRequest *req, ApiResponse *resp, const char *resource)
{
	BbxError err = BBX_ERROR_INIT;
	const char *limit_s = api_request_query(req, "limit");
	const char *since_s = api_request_query(req, "since");
	char since[40];
	uint64_t limit = AUDIT_DEFAULT_LIMIT;
	json_t *arr = NULL;
	int r;

	if (limit_s && (parse_uint64(limit_s, &limit) < 0 || limit == 0 || limit > AUDIT_MAX_LIMIT))
		return api_reply_error(resp, 400, "invalid", "limit: an integer from 1 to %d",
				       AUDIT_MAX_LIMIT);
	r = parse_since(since_s, since, sizeof(since));
	if (r < 0)
		return api_reply_error(
			resp, 400, "invalid",
			"since: an ISO 8601 UTC time (2026-01-31T12:00:00) or a duration (15m)");
	r = audit_query(req->core, resource, r > 0 ? since : NULL, (int64_t)limit, &arr, &err);
	if (r < 0)
		return api_reply_bbx_error(resp, r, &err);
	/* Records about environments the principal cannot see are left out, as the
	 * environments themselves are (so a page may hold fewer than limit records). */
	for (size_t i = json_array_size(arr); i-- > 0;) {
		const char *res =
			json_string_value(json_object_get(json_array_get(arr, i), "resource"));
		if (res && !strncmp(res, "environment:", 12) &&
		    !policy_can_see_environment(req->core, req->principal, res + 12))
			json_array_remove(arr, i);
	}
	return api_reply_json(resp, 200, json_pack("{s:o}", "records", arr));
}

int route_audit_list(ApiRequest *req, ApiResponse *resp)
{
	const char *env = api_request_query(req, "env");
	char resource[96];

	if (env) {
		if (!name_is_valid(env))
			return api_reply_error(resp, 400, "invalid",
					       "env: not a valid environment name");
		snprintf(resource, sizeof(resource), "environment:%s", env);
	}
	return audit_list(req, resp, env ? resource : NULL);
}

int route_environment_audit(ApiRequest *req, ApiResponse *resp)
{
	const char *env = req->params[0];
	char resource[96];

	/* The same answer the dispatcher gives for an environment out of scope. Production
	 * exists once deployed, as its row says; before that the dispatcher answers 404 first. */
	if (!name_is_valid(env) || !environment_exists(req->core, env))
		return api_reply_not_found(resp, "environment", env);
	snprintf(resource, sizeof(resource), "environment:%s", env);
	return audit_list(req, resp, resource);
}

int route_audit_checkpoint(ApiRequest *req, ApiResponse *resp)
{
	BbxError err = BBX_ERROR_INIT;
	AuditCheckpoint cp;
	int r = audit_checkpoint_create(req->core, &cp, &err);
	if (r < 0)
		return api_reply_bbx_error(resp, r, &err);
	return api_reply_json(resp, 200, audit_checkpoint_to_json(&cp));
}

int route_audit_pubkey(ApiRequest *req, ApiResponse *resp)
{
	char hex[65];
	audit_public_key_hex(req->core, hex);
	return api_reply_json(resp, 200,
			      json_pack("{s:s,s:s}", "algorithm", "ed25519", "public_key", hex));
}

int route_audit_verify(ApiRequest *req, ApiResponse *resp)
{
	BbxError err = BBX_ERROR_INIT;
	AuditVerifyResult res;
	char path[PATH_MAX];

	/* Records committed before this request are checked; this request's own comes after. */
	snprintf(path, sizeof(path), "%s/state.db", core_state_dir(req->core));
	int r = audit_verify_db(path, NULL, &res, &err);
	if (r == -EBADMSG)
		return api_reply_json(resp, 200,
				      json_pack("{s:b,s:I,s:I,s:s}", "valid", 0, "size",
						(json_int_t)res.size, "bad_seq",
						(json_int_t)res.bad_seq, "error",
						bbx_error_message(&err, r)));
	if (r < 0)
		return api_reply_bbx_error(resp, r, &err);
	return api_reply_json(resp, 200,
			      json_pack("{s:b,s:I,s:s}", "valid", 1, "size", (json_int_t)res.size,
					"head_hash", res.head_hash));
}

int route_routes_list(ApiRequest *req, ApiResponse *resp)
{
	json_t *arr = json_array();
	for (size_t i = 0; i < api_n_routes; i++) {
		const ApiRoute *r = &api_routes[i];
		const char *verb = r->verb ? verb_to_string(r->verb) : NULL;
		json_array_append_new(
			arr, json_pack("{s:s,s:s,s:s,s:o,s:i,s:b,s:b}", "method", r->method,
				       "pattern", r->pattern, "action", r->action, "verb",
				       verb ? json_string(verb) : json_null(), "env_param",
				       r->env_param, "public", !!(r->flags & ROUTE_PUBLIC),
				       "root_only", !!(r->flags & ROUTE_ROOT_ONLY)));
	}
	return api_reply_json(resp, 200, json_pack("{s:o}", "routes", arr));
}
