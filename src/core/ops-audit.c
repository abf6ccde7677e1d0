/* SPDX-License-Identifier: MIT */
/* The audit operations: read the ledger (all of it, or one environment's), sign a checkpoint,
 * verify the chain, the public key that checks checkpoints. */
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "audit.h"
#include "environment.h"
#include "ops-handlers.h"
#include "parse.h"
#include "policy.h"

#define AUDIT_DEFAULT_LIMIT 100

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

static int audit_list(OpCall *call, json_t *in, const char *resource, json_t **out, BbxError *err)
{
	json_t *jl = json_object_get(in, "limit");
	char since[40];
	json_t *arr = NULL;

	int r = parse_since(json_string_value(json_object_get(in, "since")), since, sizeof(since));
	if (r < 0)
		return bbx_error_set(err, -EINVAL, BBX_INVALID,
				     "input: 'since' must be an ISO 8601 UTC time "
				     "(2026-01-31T12:00:00) or a duration (15m)");
	r = audit_query(call->core, resource, r > 0 ? since : NULL,
			jl ? json_integer_value(jl) : AUDIT_DEFAULT_LIMIT, &arr, err);
	if (r < 0)
		return r;
	/* Records about environments the principal cannot see are left out, as the
	 * environments themselves are (so a page may hold fewer than limit records). */
	for (size_t i = json_array_size(arr); i-- > 0;) {
		const char *res =
			json_string_value(json_object_get(json_array_get(arr, i), "resource"));
		if (res && !strncmp(res, "environment:", 12) &&
		    !policy_can_see_environment(call->core, call->principal, res + 12))
			json_array_remove(arr, i);
	}
	*out = json_pack("{s:o}", "records", arr);
	return *out ? 0 : -ENOMEM;
}

int op_audit_list(OpCall *call, json_t *in, json_t **out, BbxError *err)
{
	const char *env = json_string_value(json_object_get(in, "env"));
	char resource[96];

	if (env) {
		if (!name_is_valid(env))
			return bbx_error_set(err, -EINVAL, BBX_INVALID,
					     "input: 'env' is not a valid environment name");
		snprintf(resource, sizeof(resource), "environment:%s", env);
	}
	return audit_list(call, in, env ? resource : NULL, out, err);
}

int op_environment_audit(OpCall *call, json_t *in, json_t **out, BbxError *err)
{
	char resource[96];
	snprintf(resource, sizeof(resource), "environment:%s",
		 json_string_value(json_object_get(in, "name")));
	return audit_list(call, in, resource, out, err);
}

int op_audit_checkpoint(OpCall *call, json_t *in, json_t **out, BbxError *err)
{
	AuditCheckpoint cp;
	int r = audit_checkpoint_create(call->core, &cp, err);
	if (r < 0)
		return r;
	*out = audit_checkpoint_to_json(&cp);
	return *out ? 0 : -ENOMEM;
}

int op_audit_pubkey(OpCall *call, json_t *in, json_t **out, BbxError *err)
{
	char hex[65];
	audit_public_key_hex(call->core, hex);
	*out = json_pack("{s:s,s:s}", "algorithm", "ed25519", "public_key", hex);
	return *out ? 0 : -ENOMEM;
}

int op_audit_verify(OpCall *call, json_t *in, json_t **out, BbxError *err)
{
	AuditVerifyResult res;
	char path[PATH_MAX];

	/* Records committed before this request are checked; this request's own comes after. */
	snprintf(path, sizeof(path), "%s/state.db", core_state_dir(call->core));
	BbxError verr = BBX_ERROR_INIT;
	int r = audit_verify_db(path, NULL, &res, &verr);
	if (r == -EBADMSG)
		*out = json_pack("{s:b,s:I,s:I,s:s}", "valid", 0, "size", (json_int_t)res.size,
				 "bad_seq", (json_int_t)res.bad_seq, "error",
				 bbx_error_message(&verr, r));
	else if (r < 0)
		return bbx_error_set(err, r, verr.kind, "%s", bbx_error_message(&verr, r));
	else
		*out = json_pack("{s:b,s:I,s:s}", "valid", 1, "size", (json_int_t)res.size,
				 "head_hash", res.head_hash);
	return *out ? 0 : -ENOMEM;
}
