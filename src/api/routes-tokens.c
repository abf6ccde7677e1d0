/* SPDX-License-Identifier: MIT */
/* /v1/tokens: mint (shown once), list, revoke. The audit record commits with the row. */
#include "api.h"

#include <errno.h>
#include <sodium.h>
#include <string.h>

#include "audit.h"
#include "token.h"

static void audit_template(ApiRequest *req, AuditRecord *a, const char *action, const char *outcome)
{
	*a = (AuditRecord){
		.request_id = req->request_id,
		.principal = req->principal,
		.interface = req->interface,
		.action = action,
		.resource = req->resource[0] ? req->resource : NULL,
		.decision = "allow",
		.request_digest = req->request_digest,
		.outcome = outcome,
	};
}

int route_token_create(ApiRequest *req, ApiResponse *resp)
{
	json_t *body = NULL;
	const char *scopes[PRINCIPAL_MAX_SCOPES + 1] = {0};
	BbxError err = BBX_ERROR_INIT;
	int r;

	if (api_request_json(req, resp, &body) < 0)
		return 0;
	json_t *kind = json_object_get(body, "kind"), *name = json_object_get(body, "name");
	json_t *js = json_object_get(body, "scopes"), *jv = json_object_get(body, "verbs");
	json_t *ttl = json_object_get(body, "ttl_seconds");
	const char *key;
	json_t *v;
	size_t i;

	json_object_foreach(body, key, v) if (strcmp(key, "kind") && strcmp(key, "name") &&
					      strcmp(key, "scopes") && strcmp(key, "verbs") &&
					      strcmp(key, "ttl_seconds") && strcmp(key, "budget"))
	{
		api_reply_error(resp, 400, "invalid", "request body: unknown field '%.64s'", key);
		goto out;
	}
	if (!json_is_string(kind) || (strcmp(json_string_value(kind), "agent") &&
				      strcmp(json_string_value(kind), "human"))) {
		api_reply_error(resp, 400, "invalid", "kind: must be \"agent\" or \"human\"");
		goto out;
	}
	if (!json_is_string(name)) {
		api_reply_error(resp, 400, "invalid", "name: a string is required");
		goto out;
	}
	if (!json_is_array(js) || json_array_size(js) == 0 ||
	    json_array_size(js) > PRINCIPAL_MAX_SCOPES) {
		api_reply_error(resp, 400, "invalid",
				"scopes: an array of 1 to %d environment names or globs",
				PRINCIPAL_MAX_SCOPES);
		goto out;
	}
	json_array_foreach(js, i, v)
	{
		if (!json_is_string(v)) {
			api_reply_error(resp, 400, "invalid", "scopes[%zu]: must be a string", i);
			goto out;
		}
		scopes[i] = json_string_value(v);
	}
	if (!json_is_array(jv) || json_array_size(jv) == 0) {
		api_reply_error(resp, 400, "invalid", "verbs: a non-empty array of verbs");
		goto out;
	}
	uint32_t verbs = 0;
	json_array_foreach(jv, i, v)
	{
		uint32_t b = json_is_string(v) ? verb_from_string(json_string_value(v)) : 0;
		if (!b) {
			api_reply_error(resp, 400, "invalid", "verbs[%zu]: unknown verb '%.64s'", i,
					json_is_string(v) ? json_string_value(v) : "?");
			goto out;
		}
		verbs |= b;
	}
	if (ttl && !json_is_null(ttl) && (!json_is_integer(ttl) || json_integer_value(ttl) < 0)) {
		api_reply_error(resp, 400, "invalid", "ttl_seconds: a non-negative integer");
		goto out;
	}
	Budget budget = { 0 };
	json_t *jb = json_object_get(body, "budget");
	if (jb && !json_is_null(jb) && budget_limits_from_json(jb, "budget", &budget, &err) < 0) {
		api_reply_error(resp, 400, "invalid", "%s", bbx_error_message(&err, -EINVAL));
		goto out;
	}
	TokenSpec spec = {
		.kind = !strcmp(json_string_value(kind), "agent") ? PRINCIPAL_AGENT
								  : PRINCIPAL_HUMAN,
		.name = json_string_value(name),
		.scopes = scopes,
		.verbs = verbs,
		.ttl_seconds = json_is_integer(ttl) ? json_integer_value(ttl) : 0,
		.budget = budget,
	};
	AuditRecord a;
	audit_template(req, &a, "token.create", "201");
	char *token = NULL;
	json_t *info = NULL;
	r = token_create(req->core, req->principal, &spec, &a, &token, &info, &err);
	if (r < 0) {
		api_reply_bbx_error(resp, r, &err);
		goto out;
	}
	req->audited = true;
	json_object_set_new(info, "token", json_string(token));
	sodium_memzero(token, strlen(token));
	free(token);
	api_reply_json(resp, 201, info);
out:
	json_decref(body);
	return 0;
}

int route_token_list(ApiRequest *req, ApiResponse *resp)
{
	BbxError err = BBX_ERROR_INIT;
	json_t *arr = NULL;
	int r = token_list(req->core, req->principal, &arr, &err);
	if (r < 0)
		return api_reply_bbx_error(resp, r, &err);
	return api_reply_json(resp, 200, json_pack("{s:o}", "tokens", arr));
}

int route_token_revoke(ApiRequest *req, ApiResponse *resp)
{
	BbxError err = BBX_ERROR_INIT;
	const char *id = req->params[0];
	AuditRecord a;
	char resource[96];

	snprintf(resource, sizeof(resource), "token:%.64s", id);
	snprintf(req->resource, sizeof(req->resource), "%s", resource);
	audit_template(req, &a, "token.revoke", "200");
	int r = token_revoke(req->core, req->principal, id, &a, &err);
	if (r == -ENOENT)
		return api_reply_not_found(resp, "token", id);
	if (r < 0)
		return api_reply_bbx_error(resp, r, &err);
	req->audited = true;
	return api_reply_json(resp, 200, json_pack("{s:s,s:b}", "id", id, "revoked", 1));
}
