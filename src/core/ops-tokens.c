/* SPDX-License-Identifier: MIT */
/*
 * The token operations: mint (the secret is shown once), list, revoke. Each change commits
 * with its audit record in one transaction (token.c), so the handler writes the outcome
 * record itself (call->audited).
 */
#include <errno.h>
#include <sodium.h>
#include <stdlib.h>
#include <string.h>

#include "audit.h"
#include "budget.h"
#include "ops-handlers.h"
#include "token.h"

int op_token_create(OpCall *call, json_t *in, json_t **out, BbxError *err)
{
	const char *scopes[PRINCIPAL_MAX_SCOPES + 1] = { 0 };
	const char *kind = json_string_value(json_object_get(in, "kind"));
	uint32_t verbs = 0;
	size_t i;
	json_t *v;

	if (strcmp(kind, "agent") && strcmp(kind, "human"))
		return bbx_error_set(err, -EINVAL, BBX_INVALID,
				     "input: 'kind' must be \"agent\" or \"human\"");
	json_array_foreach(json_object_get(in, "scopes"), i, v) scopes[i] = json_string_value(v);
	json_array_foreach(json_object_get(in, "verbs"), i, v)
	{
		uint32_t b = verb_from_string(json_string_value(v));
		if (!b)
			return bbx_error_set(err, -EINVAL, BBX_INVALID,
					     "input: verbs[%zu]: unknown verb '%.64s'", i,
					     json_string_value(v));
		verbs |= b;
	}
	Budget budget = { 0 };
	json_t *jb = json_object_get(in, "budget");
	if (jb && !json_is_null(jb) && budget_limits_from_json(jb, "budget", &budget, err) < 0)
		return bbx_error_reset(err, -EINVAL, BBX_INVALID, "input: %s",
				       bbx_error_message(err, -EINVAL));
	json_t *ttl = json_object_get(in, "ttl_seconds");
	TokenSpec spec = {
		.kind = !strcmp(kind, "agent") ? PRINCIPAL_AGENT : PRINCIPAL_HUMAN,
		.name = json_string_value(json_object_get(in, "name")),
		.scopes = scopes,
		.verbs = verbs,
		.ttl_seconds = json_is_integer(ttl) ? json_integer_value(ttl) : 0,
		.budget = budget,
	};
	AuditRecord a;
	char outcome[8];
	snprintf(outcome, sizeof(outcome), "%u", ops_find("token.create")->success_status);
	ops_audit_record(call, ops_find("token.create"), call->resource, outcome, &a);
	char *token = NULL;
	json_t *info = NULL;
	int r = token_create(call->core, call->principal, &spec, &a, &token, &info, err);
	if (r < 0)
		return r;
	call->audited = true;
	json_object_set_new(info, "token", json_string(token));
	sodium_memzero(token, strlen(token));
	free(token);
	*out = info;
	return 0;
}

int op_token_list(OpCall *call, json_t *in, json_t **out, BbxError *err)
{
	json_t *arr = NULL;
	int r = token_list(call->core, call->principal, &arr, err);
	if (r < 0)
		return r;
	*out = json_pack("{s:o}", "tokens", arr);
	return *out ? 0 : -ENOMEM;
}

int op_token_revoke(OpCall *call, json_t *in, json_t **out, BbxError *err)
{
	const char *id = json_string_value(json_object_get(in, "id"));
	char resource[96];
	AuditRecord a;
	snprintf(resource, sizeof(resource), "token:%.64s", id);
	ops_audit_record(call, ops_find("token.revoke"), resource, "200", &a);
	int r = token_revoke(call->core, call->principal, id, &a, err);
	if (r == -ENOENT)
		return bbx_error_reset(err, -ENOENT, BBX_NOT_FOUND, "token '%s' not found", id);
	if (r < 0)
		return r;
	call->audited = true;
	*out = json_pack("{s:s,s:b}", "id", id, "revoked", 1);
	return *out ? 0 : -ENOMEM;
}
