/* SPDX-License-Identifier: MIT */
/*
 * The proposal operations (proposal.h). Submit, approve and merge take an idempotency key:
 * the outcome of the first request with a key is recorded, and a retry with the same key
 * (by the same principal) gets that outcome back without acting again.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "ops-handlers.h"
#include "proposal.h"
#include "proposals.h"

static const char *str(json_t *in, const char *key)
{
	return json_string_value(json_object_get(in, key));
}

static const char *principal_key(const Principal *p)
{
	return p->token_id[0] ? p->token_id : "root";
}

/* The request's fingerprint: its input without the key. */
static int request_fingerprint(json_t *in, char ret[static 65])
{
	json_t *copy = json_deep_copy(in);
	if (!copy)
		return -ENOMEM;
	json_object_del(copy, "idempotency_key");
	int r = proposal_json_digest(copy, ret);
	json_decref(copy);
	return r;
}

/* 1 with *out set when the key was seen (its recorded outcome), 0 when not. */
static int idem_lookup(OpCall *call, const char *action, json_t *in, json_t **out, BbxError *err)
{
	const char *key = str(in, "idempotency_key");
	if (!key)
		return 0;
	if (!*key || strlen(key) > 200)
		return bbx_error_set(err, -EINVAL, BBX_INVALID,
				     "input: 'idempotency_key' must be 1 to 200 characters");
	char fp[65];
	_cleanup_free_ char *seen_fp = NULL, *resp = NULL;
	int r = request_fingerprint(in, fp);
	if (r < 0)
		return r;
	r = idempotency_get(core_store(call->core), principal_key(call->principal), action, key,
			    &seen_fp, &resp, err);
	if (r == -ENOENT)
		return 0;
	if (r < 0)
		return r;
	if (strcmp(seen_fp, fp))
		return bbx_error_set(err, -EEXIST, BBX_CONFLICT,
				     "idempotency_key '%s' was used for a different request", key);
	*out = json_loads(resp, 0, NULL);
	if (!*out)
		return -ENOMEM;
	json_object_set_new(*out, "replayed", json_true());
	return 1;
}

static void idem_record(OpCall *call, const char *action, json_t *in, json_t *out)
{
	const char *key = str(in, "idempotency_key");
	char fp[65];
	if (!key || !out || request_fingerprint(in, fp) < 0)
		return;
	_cleanup_free_ char *resp = json_dumps(out, JSON_COMPACT | JSON_SORT_KEYS);
	if (resp)
		(void)idempotency_put(core_store(call->core), principal_key(call->principal),
				      action, key, fp, resp, NULL);
}

int op_proposal_submit(OpCall *call, json_t *in, json_t **out, BbxError *err)
{
	int r = idem_lookup(call, "proposal.submit", in, out, err);
	if (r != 0)
		return r < 0 ? r : 0;
	ProposalSubmitOptions o = { .branch = str(in, "branch"),
				    .patch = str(in, "patch"),
				    .title = str(in, "title"),
				    .description = str(in, "description") };
	r = proposal_submit(call, &o, out, err);
	if (r >= 0)
		idem_record(call, "proposal.submit", in, *out);
	return r;
}

int op_proposal_list(OpCall *call, json_t *in, json_t **out, BbxError *err)
{
	return proposal_list(call, out, err);
}

int op_proposal_get(OpCall *call, json_t *in, json_t **out, BbxError *err)
{
	return proposal_get(call, str(in, "id"), out, err);
}

int op_proposal_diff(OpCall *call, json_t *in, json_t **out, BbxError *err)
{
	return proposal_diff(call, str(in, "id"), out, err);
}

int op_proposal_approve(OpCall *call, json_t *in, json_t **out, BbxError *err)
{
	int r = idem_lookup(call, "proposal.approve", in, out, err);
	if (r != 0)
		return r < 0 ? r : 0;
	r = proposal_approve(call, str(in, "id"), out, err);
	if (r >= 0)
		idem_record(call, "proposal.approve", in, *out);
	return r;
}

int op_proposal_reject(OpCall *call, json_t *in, json_t **out, BbxError *err)
{
	return proposal_reject(call, str(in, "id"), str(in, "reason"), out, err);
}

int op_proposal_merge(OpCall *call, json_t *in, json_t **out, BbxError *err)
{
	int r = idem_lookup(call, "proposal.merge", in, out, err);
	if (r != 0)
		return r < 0 ? r : 0;
	r = proposal_merge(call, str(in, "id"), out, err);
	if (r >= 0)
		idem_record(call, "proposal.merge", in, *out);
	return r;
}
