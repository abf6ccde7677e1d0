/* SPDX-License-Identifier: MIT */
#include "ops.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "audit.h"
#include "environment.h"
#include "ops-handlers.h"
#include "policy.h"
#include "strbuf.h"
#include "token.h"

#define FILE_ROOT_SCHEMA                                                                           \
	" \"root\": {\"type\": \"string\", \"description\": \"code (default) or volume\"}"
#define ID_SCHEMA "\"id\": {\"type\": \"string\", \"description\": \"the proposal\"}"
#define IDEM_SCHEMA                                                                                \
	"\"idempotency_key\": {\"type\": \"string\", \"description\": \"a retry with the same "    \
	"key "                                                                                     \
	"returns the first outcome\"}"
#define NAME_SCHEMA "\"name\": {\"type\": \"string\", \"description\": \"the environment\"}"

/* clang-format off */
const Op ops_table[] = {
	{ "environment.list", VERB_ENV_READ, NULL, OP_READ_ONLY, 200,
	  "the environments this principal can see",
	  "{\"type\": \"object\", \"properties\": {}, \"additionalProperties\": false}",
	  op_environment_list },
	{ "environment.get", VERB_ENV_READ, "name", OP_READ_ONLY, 200,
	  "one environment: state, commit, processes, volume, budget",
	  "{\"type\": \"object\", \"properties\": {" NAME_SCHEMA "}, \"required\": [\"name\"],"
	  " \"additionalProperties\": false}",
	  op_environment_get },
	{ "environment.create", VERB_ENV_CREATE, "name", OP_INTENT | OP_ENV_NEW, 201,
	  "a preview: a copy-on-write clone of production (or of \"from\") running branch \"branch\"",
	  "{\"type\": \"object\", \"properties\": {" NAME_SCHEMA ","
	  " \"from\": {\"type\": \"string\", \"description\": \"the environment to clone (default production)\"},"
	  " \"branch\": {\"type\": \"string\", \"description\": \"the branch it runs (default its name)\"}},"
	  " \"required\": [\"name\"], \"additionalProperties\": false}",
	  op_environment_create },
	{ "environment.destroy", VERB_ENV_DESTROY, "name", OP_INTENT | OP_DESTRUCTIVE, 200,
	  "end an environment and remove everything of it: processes, data, code, logs",
	  "{\"type\": \"object\", \"properties\": {" NAME_SCHEMA "}, \"required\": [\"name\"],"
	  " \"additionalProperties\": false}",
	  op_environment_destroy },
	{ "environment.stop", VERB_ENV_WRITE, "name", OP_INTENT | OP_DESTRUCTIVE, 200,
	  "end an environment's processes (running commands included), keeping its data",
	  "{\"type\": \"object\", \"properties\": {" NAME_SCHEMA "}, \"required\": [\"name\"],"
	  " \"additionalProperties\": false}",
	  op_environment_stop },
	{ "environment.start", VERB_ENV_WRITE, "name", OP_INTENT, 200,
	  "start a stopped environment's processes again",
	  "{\"type\": \"object\", \"properties\": {" NAME_SCHEMA "}, \"required\": [\"name\"],"
	  " \"additionalProperties\": false}",
	  op_environment_start },
	{ "environment.exec", VERB_ENV_EXEC, "name", OP_INTENT, 200,
	  "run a command in an environment like its application runs: exit code, stdout and stderr",
	  "{\"type\": \"object\", \"properties\": {" NAME_SCHEMA ","
	  " \"command\": {\"type\": \"array\", \"items\": {\"type\": \"string\"}, \"minItems\": 1, \"maxItems\": 256,"
	  " \"description\": \"argv\"},"
	  " \"application\": {\"type\": \"string\", \"description\": \"default: the first application\"},"
	  " \"stdin\": {\"type\": \"string\"},"
	  " \"timeout\": {\"type\": \"integer\", \"minimum\": 1, \"maximum\": 3600, \"description\": \"seconds, default 600\"}},"
	  " \"required\": [\"name\", \"command\"], \"additionalProperties\": false}",
	  op_environment_exec },
	{ "environment.logs", VERB_ENV_READ, "name", OP_READ_ONLY, 200,
	  "the log of one of an environment's processes, from an offset",
	  "{\"type\": \"object\", \"properties\": {" NAME_SCHEMA ","
	  " \"process\": {\"type\": \"string\", \"description\": \"default: the first application\"},"
	  " \"offset\": {\"type\": \"integer\", \"description\": \"byte offset; negative: the last -offset bytes (default -65536)\"}},"
	  " \"required\": [\"name\"], \"additionalProperties\": false}",
	  op_environment_logs },
	{ "environment.budget", VERB_ENV_READ, "name", OP_READ_ONLY, 200,
	  "a preview's budget: limit, used, left and percent of each dimension",
	  "{\"type\": \"object\", \"properties\": {" NAME_SCHEMA "}, \"required\": [\"name\"],"
	  " \"additionalProperties\": false}",
	  op_environment_budget },
	{ "token.create", VERB_TOKEN_ADMIN, NULL, 0, 201,
	  "mint a token (shown once) within the creator's own verbs, scopes and budget",
	  "{\"type\": \"object\", \"properties\": {"
	  " \"kind\": {\"type\": \"string\", \"description\": \"agent or human\"},"
	  " \"name\": {\"type\": \"string\"},"
	  " \"scopes\": {\"type\": \"array\", \"items\": {\"type\": \"string\"}, \"minItems\": 1, \"maxItems\": 32,"
	  " \"description\": \"environment names or globs\"},"
	  " \"verbs\": {\"type\": \"array\", \"items\": {\"type\": \"string\"}, \"minItems\": 1, \"maxItems\": 32},"
	  " \"ttl_seconds\": {\"type\": \"integer\", \"minimum\": 0},"
	  " \"budget\": {\"type\": \"object\", \"description\": \"limits that narrow its previews' budgets\"}},"
	  " \"required\": [\"kind\", \"name\", \"scopes\", \"verbs\"], \"additionalProperties\": false}",
	  op_token_create },
	{ "token.list", VERB_TOKEN_ADMIN, NULL, OP_READ_ONLY, 200, "the tokens this principal may see",
	  "{\"type\": \"object\", \"properties\": {}, \"additionalProperties\": false}", op_token_list },
	{ "token.revoke", VERB_TOKEN_ADMIN, NULL, OP_DESTRUCTIVE, 200, "revoke a token at once",
	  "{\"type\": \"object\", \"properties\": {\"id\": {\"type\": \"string\"}}, \"required\": [\"id\"],"
	  " \"additionalProperties\": false}",
	  op_token_revoke },
	{ "audit.list", VERB_AUDIT_READ, NULL, OP_READ_ONLY, 200,
	  "audit records, newest first, about what this principal can see",
	  "{\"type\": \"object\", \"properties\": {"
	  " \"env\": {\"type\": \"string\", \"description\": \"only records about this environment\"},"
	  " \"since\": {\"type\": \"string\", \"description\": \"an ISO 8601 UTC time or a duration back from now\"},"
	  " \"limit\": {\"type\": \"integer\", \"minimum\": 1, \"maximum\": 1000}},"
	  " \"additionalProperties\": false}",
	  op_audit_list },
	{ "environment.audit", VERB_ENV_READ, "name", OP_READ_ONLY, 200, "the audit records about one environment",
	  "{\"type\": \"object\", \"properties\": {" NAME_SCHEMA ","
	  " \"since\": {\"type\": \"string\", \"description\": \"an ISO 8601 UTC time or a duration back from now\"},"
	  " \"limit\": {\"type\": \"integer\", \"minimum\": 1, \"maximum\": 1000}},"
	  " \"required\": [\"name\"], \"additionalProperties\": false}",
	  op_environment_audit },
	{ "audit.checkpoint", VERB_AUDIT_READ, NULL, 0, 200, "a signed checkpoint of the audit chain's head",
	  "{\"type\": \"object\", \"properties\": {}, \"additionalProperties\": false}", op_audit_checkpoint },
	{ "audit.pubkey", VERB_AUDIT_READ, NULL, OP_READ_ONLY, 200, "the public key that checks checkpoints",
	  "{\"type\": \"object\", \"properties\": {}, \"additionalProperties\": false}", op_audit_pubkey },
	{ "audit.verify", VERB_AUDIT_READ, NULL, OP_READ_ONLY, 200, "verify the whole audit chain",
	  "{\"type\": \"object\", \"properties\": {}, \"additionalProperties\": false}", op_audit_verify },
	{ "environment.deploy", VERB_ENV_WRITE, NULL, OP_INTENT | OP_ENV_NEW | OP_ENV_PRODUCTION, 200,
	  "deploy production from the head of the production branch",
	  "{\"type\": \"object\", \"properties\": {}, \"additionalProperties\": false}",
	  op_environment_deploy },
	{ "environment.file_read", VERB_ENV_READ, "name", OP_READ_ONLY, 200,
	  "read a file of an environment's code tree or volume mounts (at most 1 MiB a call)",
	  "{\"type\": \"object\", \"properties\": {" NAME_SCHEMA "," FILE_ROOT_SCHEMA ","
	  " \"path\": {\"type\": \"string\", \"description\": \"relative to the root; never through a symlink\"},"
	  " \"offset\": {\"type\": \"integer\", \"minimum\": 0, \"maximum\": 9007199254740991, \"description\": \"byte offset (default 0)\"},"
	  " \"limit\": {\"type\": \"integer\", \"minimum\": 1, \"maximum\": 1048576, \"description\": \"bytes at most (default 1048576)\"}},"
	  " \"required\": [\"name\", \"path\"], \"additionalProperties\": false}",
	  op_environment_file_read },
	{ "environment.file_list", VERB_ENV_READ, "name", OP_READ_ONLY, 200,
	  "list a directory of an environment's code tree or volume mounts",
	  "{\"type\": \"object\", \"properties\": {" NAME_SCHEMA "," FILE_ROOT_SCHEMA ","
	  " \"path\": {\"type\": \"string\", \"description\": \"relative to the root (default: the root)\"},"
	  " \"limit\": {\"type\": \"integer\", \"minimum\": 1, \"maximum\": 10000, \"description\": \"entries at most (default 1000)\"}},"
	  " \"required\": [\"name\"], \"additionalProperties\": false}",
	  op_environment_file_list },
	{ "environment.file_write", VERB_ENV_WRITE, "name", OP_INTENT | OP_DESTRUCTIVE, 200,
	  "create or replace a file of an environment's code tree or volume mounts (at most 1 MiB)",
	  "{\"type\": \"object\", \"properties\": {" NAME_SCHEMA "," FILE_ROOT_SCHEMA ","
	  " \"path\": {\"type\": \"string\", \"description\": \"relative to the root; never through a symlink\"},"
	  " \"content\": {\"type\": \"string\"},"
	  " \"encoding\": {\"type\": \"string\", \"description\": \"utf-8 (default) or base64\"},"
	  " \"mode\": {\"type\": \"integer\", \"minimum\": 0, \"maximum\": 511, \"description\": \"permission bits (default: the file's, or 0644)\"},"
	  " \"parents\": {\"type\": \"boolean\", \"description\": \"make missing directories (default true)\"}},"
	  " \"required\": [\"name\", \"path\", \"content\"], \"additionalProperties\": false}",
	  op_environment_file_write },
	{ "environment.diff", VERB_ENV_READ, "name", OP_READ_ONLY, 200,
	  "the code tree's changes against the commit it runs (or production's): files, line counts, patch",
	  "{\"type\": \"object\", \"properties\": {" NAME_SCHEMA ","
	  " \"against\": {\"type\": \"string\", \"description\": \"commit (default) or production\"},"
	  " \"max_patch\": {\"type\": \"integer\", \"minimum\": 0, \"maximum\": 8388608, \"description\": \"patch bytes at most (default 1048576)\"}},"
	  " \"required\": [\"name\"], \"additionalProperties\": false}",
	  op_environment_diff },
	{ "config.read", VERB_ENV_READ, "name", OP_READ_ONLY, 200,
	  "the project config an environment runs, as the daemon parsed it (no credentials)",
	  "{\"type\": \"object\", \"properties\": {" NAME_SCHEMA "}, \"required\": [\"name\"],"
	  " \"additionalProperties\": false}",
	  op_config_read },
	{ "services.list", VERB_ENV_READ, "name", OP_READ_ONLY, 200,
	  "an environment's services and applications: type, version, state (no credentials)",
	  "{\"type\": \"object\", \"properties\": {" NAME_SCHEMA "}, \"required\": [\"name\"],"
	  " \"additionalProperties\": false}",
	  op_services_list },
	{ "proposal.submit", VERB_PROPOSAL_SUBMIT, NULL, OP_INTENT, 201,
	  "propose a change to production: a branch, or a patch committed onto a new branch; "
	  "it is cloned, validated with production's checks and waits for a human's review",
	  "{\"type\": \"object\", \"properties\": {"
	  " \"branch\": {\"type\": \"string\", \"description\": \"the branch to propose (one of branch and patch)\"},"
	  " \"patch\": {\"type\": \"string\", \"description\": \"a unified diff against production's head\"},"
	  " \"title\": {\"type\": \"string\"},"
	  " \"description\": {\"type\": \"string\"},"
	  " " IDEM_SCHEMA "}, \"additionalProperties\": false}",
	  op_proposal_submit },
	{ "proposal.list", 0, NULL, OP_READ_ONLY, 200, "the proposals this principal can see, newest first",
	  "{\"type\": \"object\", \"properties\": {}, \"additionalProperties\": false}",
	  op_proposal_list },
	{ "proposal.get", 0, NULL, OP_READ_ONLY, 200,
	  "one proposal: status, the step it is at, its commits, evidence and review",
	  "{\"type\": \"object\", \"properties\": {" ID_SCHEMA "}, \"required\": [\"id\"],"
	  " \"additionalProperties\": false}",
	  op_proposal_get },
	{ "proposal.diff", 0, NULL, OP_READ_ONLY, 200, "a proposal's code change: files, lines and the patch",
	  "{\"type\": \"object\", \"properties\": {" ID_SCHEMA "}, \"required\": [\"id\"],"
	  " \"additionalProperties\": false}",
	  op_proposal_diff },
	{ "proposal.approve", VERB_PROPOSAL_REVIEW, NULL, 0, 200,
	  "approve a validated proposal: binds its base and head commits and its evidence digest",
	  "{\"type\": \"object\", \"properties\": {" ID_SCHEMA ", " IDEM_SCHEMA "},"
	  " \"required\": [\"id\"], \"additionalProperties\": false}",
	  op_proposal_approve },
	{ "proposal.reject", VERB_PROPOSAL_REVIEW, NULL, OP_DESTRUCTIVE, 200,
	  "reject a proposal, with a reason; its preview goes, its evidence stays",
	  "{\"type\": \"object\", \"properties\": {" ID_SCHEMA ","
	  " \"reason\": {\"type\": \"string\"}}, \"required\": [\"id\", \"reason\"],"
	  " \"additionalProperties\": false}",
	  op_proposal_reject },
	{ "proposal.merge", VERB_PROPOSAL_MERGE, NULL, OP_INTENT, 200,
	  "merge an approved proposal into production (compare-and-swap) and redeploy production",
	  "{\"type\": \"object\", \"properties\": {" ID_SCHEMA ", " IDEM_SCHEMA "},"
	  " \"required\": [\"id\"], \"additionalProperties\": false}",
	  op_proposal_merge },
};
/* clang-format on */

const size_t ops_n = ELEMENTSOF(ops_table);

const Op *ops_find(const char *name)
{
	for (size_t i = 0; name && i < ops_n; i++)
		if (!strcmp(ops_table[i].name, name))
			return &ops_table[i];
	return NULL;
}

const char *ops_environment(Core *c, const Op *op, json_t *in)
{
	if (op->flags & OP_ENV_PRODUCTION)
		return core_production_branch(c);
	if (!op->env_arg)
		return NULL;
	return json_string_value(json_object_get(in, op->env_arg));
}

/* ---- input schemas ---- */

static int check_value(const char *key, json_t *prop, json_t *v, BbxError *err)
{
	const char *type = json_string_value(json_object_get(prop, "type"));
	if (!type)
		return 0;
	if (!strcmp(type, "string") && !json_is_string(v))
		return bbx_error_set(err, -EINVAL, BBX_INVALID, "input: '%s' must be a string",
				     key);
	if (!strcmp(type, "object") && !json_is_object(v))
		return bbx_error_set(err, -EINVAL, BBX_INVALID, "input: '%s' must be an object",
				     key);
	if (!strcmp(type, "boolean") && !json_is_boolean(v))
		return bbx_error_set(err, -EINVAL, BBX_INVALID, "input: '%s' must be true or false",
				     key);
	if (!strcmp(type, "integer")) {
		json_t *min = json_object_get(prop, "minimum"),
		       *max = json_object_get(prop, "maximum");
		if (!json_is_integer(v) ||
		    (min && json_integer_value(v) < json_integer_value(min)) ||
		    (max && json_integer_value(v) > json_integer_value(max))) {
			if (min && max)
				return bbx_error_set(
					err, -EINVAL, BBX_INVALID,
					"input: '%s' must be an integer between %lld and %lld", key,
					(long long)json_integer_value(min),
					(long long)json_integer_value(max));
			return bbx_error_set(err, -EINVAL, BBX_INVALID,
					     "input: '%s' must be an integer", key);
		}
	}
	if (!strcmp(type, "array")) {
		json_t *min = json_object_get(prop, "minItems"),
		       *max = json_object_get(prop, "maxItems");
		size_t n = json_array_size(v);
		if (!json_is_array(v) || (min && n < (size_t)json_integer_value(min)) ||
		    (max && n > (size_t)json_integer_value(max)))
			return bbx_error_set(err, -EINVAL, BBX_INVALID,
					     "input: '%s' must be an array of %lld to %lld strings",
					     key, (long long)(min ? json_integer_value(min) : 0),
					     (long long)(max ? json_integer_value(max) : 1 << 20));
		size_t i;
		json_t *item;
		json_array_foreach(v, i, item) if (!json_is_string(item)) return bbx_error_set(
			err, -EINVAL, BBX_INVALID, "input: %s[%zu] must be a string", key, i);
	}
	return 0;
}

int ops_check_input(const Op *op, json_t *in, BbxError *err)
{
	json_error_t je;
	json_t *schema = json_loads(op->input_schema, 0, &je);
	if (!schema)
		return bbx_error_set(err, -EINVAL, BBX_INTERNAL, "%s: input schema: %s", op->name,
				     je.text);
	json_t *props = json_object_get(schema, "properties");
	int r = 0;
	if (!json_is_object(in))
		r = bbx_error_set(err, -EINVAL, BBX_INVALID, "input: must be a JSON object");
	const char *key;
	json_t *v;
	if (r == 0)
		json_object_foreach(in, key, v)
		{
			json_t *prop = json_object_get(props, key);
			if (!prop) {
				r = bbx_error_set(err, -EINVAL, BBX_INVALID,
						  "input: unknown field '%s'", key);
				break;
			}
			if (json_is_null(v))
				continue; /* the same as absent */
			r = check_value(key, prop, v, err);
			if (r < 0)
				break;
		}
	size_t i;
	json_t *req;
	if (r == 0)
		json_array_foreach(json_object_get(schema, "required"), i, req)
		{
			json_t *have = json_object_get(in, json_string_value(req));
			if (!have || json_is_null(have)) {
				r = bbx_error_set(err, -EINVAL, BBX_INVALID,
						  "input: '%s' is required",
						  json_string_value(req));
				break;
			}
		}
	json_decref(schema);
	return r;
}

/* ---- authorization and audit ---- */

int ops_authorize(Core *c, const Principal *p, const Op *op, const char *env,
		  const char **ret_reason, BbxError *err)
{
	const char *reason_unused;
	const char **reason = ret_reason ? ret_reason : &reason_unused;
	*reason = NULL;
	if ((op->flags & OP_ROOT_ONLY) && p->kind != PRINCIPAL_ROOT)
		return bbx_error_set(err, -EACCES, BBX_FORBIDDEN,
				     "only the local administrator may do this");
	PolicyDecision d = policy_authorize(c, p, op->verb, env);
	/* One answer for "absent" and "not yours", and 403 only for a verb on one the principal
	 * can see. */
	if (d != POLICY_INVISIBLE && env && !(op->flags & OP_ENV_NEW) &&
	    !environment_exists(c, env)) {
		*reason = "no such environment";
		return bbx_error_set(err, -ENOENT, BBX_NOT_FOUND, "environment '%s' not found",
				     env);
	}
	if (d == POLICY_INVISIBLE) {
		*reason = "out of scope";
		return bbx_error_set(err, -ENOENT, BBX_NOT_FOUND, "environment '%s' not found",
				     env ? env : "");
	}
	if (d == POLICY_FORBIDDEN) {
		*reason = "verb not granted";
		if (op->flags & OP_ENV_NEW && env)
			return bbx_error_set(err, -EACCES, BBX_FORBIDDEN,
					     "this token may not %s environment '%s'",
					     verb_to_string(op->verb) ? verb_to_string(op->verb)
								      : op->name,
					     env);
		return bbx_error_set(err, -EACCES, BBX_FORBIDDEN, "this token may not %s",
				     verb_to_string(op->verb) ? verb_to_string(op->verb)
							      : op->name);
	}
	return 0;
}

static int record(OpCall *call, const Op *op, const char *env, const char *decision,
		  const char *reason, const char *outcome, BbxError *err)
{
	char resource[160];
	if (env)
		snprintf(resource, sizeof(resource), "environment:%s", env);
	else
		snprintf(resource, sizeof(resource), "%s",
			 call->resource ? call->resource : op->name);
	AuditRecord rec = {
		.request_id = call->request_id,
		.principal = call->principal,
		.interface = call->interface,
		.action = op->name,
		.resource = resource,
		.decision = decision,
		.reason = reason && reason[0] ? reason : NULL,
		.request_digest = call->request_digest,
		.outcome = outcome,
	};
	return audit_append(call->core, &rec, NULL, err);
}

void ops_audit_record(const OpCall *call, const Op *op, const char *resource, const char *outcome,
		      AuditRecord *ret)
{
	*ret = (AuditRecord){
		.request_id = call->request_id,
		.principal = call->principal,
		.interface = call->interface,
		.action = op->name,
		.resource = resource,
		.decision = "allow",
		.request_digest = call->request_digest,
		.outcome = outcome,
	};
}

static int audit_unavailable(BbxError *err)
{
	return bbx_error_reset(
		err, -EIO, BBX_AUDIT_UNAVAILABLE,
		"the request could not be recorded in the audit log, so it was not performed");
}

int ops_run(OpCall *call, const Op *op, json_t *in, json_t **out, BbxError *err)
{
	const char *reason = NULL;
	char outcome[8];
	*out = NULL;

	int r = ops_check_input(op, in, err);
	/* A name that is not a string was refused above; production for deploy. */
	const char *env = r < 0 ? NULL : ops_environment(call->core, op, in);
	if (r >= 0 && call->principal_kept)
		r = token_principal_live(call->core, call->principal, err);
	if (r >= 0)
		r = ops_authorize(call->core, call->principal, op, env, &reason, err);
	if (r < 0) {
		snprintf(outcome, sizeof(outcome), "%u",
			 bbx_error_kind_http_status(bbx_error_kind(err, r)));
		if (record(call, op, env, r == -ENOENT || r == -EACCES ? "deny" : "allow",
			   reason ? reason : bbx_error_message(err, r), outcome, NULL) < 0)
			return audit_unavailable(err);
		return r;
	}
	if (op->flags & OP_INTENT) {
		if (record(call, op, env, "allow", NULL, AUDIT_OUTCOME_INTENT, NULL) < 0)
			return audit_unavailable(err);
		call->intent_recorded = true;
	}
	r = op->handler(call, in, out, err);
	if (r < 0) {
		json_decref(*out);
		*out = NULL;
	}
	if (r >= 0 && call->audited)
		return r;
	BbxErrorKind k = bbx_error_kind(err, r);
	snprintf(outcome, sizeof(outcome), "%u",
		 r < 0 ? bbx_error_kind_http_status(k) : op->success_status);
	bool denied = r < 0 && (k == BBX_FORBIDDEN || k == BBX_UNAUTHORIZED);
	if (record(call, op, env, denied ? "deny" : "allow",
		   r < 0 ? bbx_error_message(err, r) : NULL, outcome, NULL) < 0) {
		json_decref(*out);
		*out = NULL;
		return audit_unavailable(err);
	}
	return r;
}

json_t *ops_json_string_lossy(const char *data, size_t n)
{
	StrBuf sb = STRBUF_INIT;
	const unsigned char *p = (const unsigned char *)data;
	size_t i = 0;

	while (i < n) {
		unsigned char ch = p[i];
		size_t len = ch < 0x80	       ? 1
			     : (ch >> 5) == 6  ? 2
			     : (ch >> 4) == 14 ? 3
			     : (ch >> 3) == 30 ? 4
					       : 0;
		bool ok = len > 0 && i + len <= n && ch != 0;
		for (size_t k = 1; ok && k < len; k++)
			ok = (p[i + k] & 0xC0) == 0x80;
		if (ok && len > 1) {
			/* reject overlong forms and surrogates the way jansson does */
			json_t *probe = json_stringn((const char *)p + i, len);
			ok = probe != NULL;
			json_decref(probe);
		}
		if (ok) {
			(void)strbuf_append(&sb, p + i, len);
			i += len;
		} else {
			(void)strbuf_puts(&sb, "\xEF\xBF\xBD");
			i++;
		}
	}
	json_t *j = json_stringn(strbuf_str(&sb), sb.len);
	strbuf_done(&sb);
	return j;
}
