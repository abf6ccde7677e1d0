/* SPDX-License-Identifier: MIT */
/*
 * The environment operations. Input is checked against the row's schema and the principal is
 * authorized for the environment the row names before these run (ops_run()); what is left
 * here is what only the operation knows (the parent a create clones, for one).
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "budget.h"
#include "environment.h"
#include "ops-handlers.h"
#include "policy.h"
#include "strv.h"

static const char *str(json_t *in, const char *key)
{
	return json_string_value(json_object_get(in, key));
}

int op_environment_list(OpCall *call, json_t *in, json_t **out, BbxError *err)
{
	json_t *list = NULL;
	int r = environment_list(call->core, call->principal, &list, err);
	if (r < 0)
		return r;
	*out = json_pack("{s:o}", "environments", list);
	return *out ? 0 : -ENOMEM;
}

int op_environment_get(OpCall *call, json_t *in, json_t **out, BbxError *err)
{
	return environment_info(call->core, str(in, "name"), out, err);
}

int op_environment_create(OpCall *call, json_t *in, json_t **out, BbxError *err)
{
	const char *from = str(in, "from");
	/* A parent it cannot see does not exist. Without "from" the parent is production,
	 * which agents may clone but never see. */
	if (from &&
	    policy_authorize(call->core, call->principal, VERB_ENV_READ, from) == POLICY_INVISIBLE)
		return bbx_error_set(err, -ENOENT, BBX_NOT_FOUND, "environment '%s' not found",
				     from);
	const Principal *p = call->principal;
	EnvCreateOptions o = { .name = str(in, "name"),
			       .parent = from,
			       .branch = str(in, "branch"),
			       .created_by = p->name,
			       .token_id = p->token_id[0] ? p->token_id : NULL,
			       .cancel_fd = call->cancel_fd };
	return environment_create(call->core, &o, out, err);
}

int op_environment_destroy(OpCall *call, json_t *in, json_t **out, BbxError *err)
{
	const char *name = str(in, "name");
	int r = environment_destroy(call->core, name, err);
	if (r < 0)
		return r;
	*out = json_pack("{s:s,s:b}", "name", name, "destroyed", 1);
	return *out ? 0 : -ENOMEM;
}

int op_environment_stop(OpCall *call, json_t *in, json_t **out, BbxError *err)
{
	int r = environment_stop(call->core, str(in, "name"), err);
	return r < 0 ? r : environment_info(call->core, str(in, "name"), out, err);
}

int op_environment_start(OpCall *call, json_t *in, json_t **out, BbxError *err)
{
	int r = environment_start(call->core, str(in, "name"), err);
	return r < 0 ? r : environment_info(call->core, str(in, "name"), out, err);
}

int op_environment_exec(OpCall *call, json_t *in, json_t **out, BbxError *err)
{
	_cleanup_strv_free_ char **argv = NULL;
	size_t i;
	json_t *v;
	json_array_foreach(json_object_get(in, "command"), i,
			   v) if (strv_push(&argv, json_string_value(v)) < 0) return -ENOMEM;
	json_t *t = json_object_get(in, "timeout");
	EnvExecOptions o = { .name = str(in, "name"),
			     .application = str(in, "application"),
			     .argv = argv,
			     .stdin_data = str(in, "stdin"),
			     .timeout_sec = t ? (uint64_t)json_integer_value(t) : 600,
			     .cancel_fd = call->cancel_fd };
	OneshotResult res = { 0 };
	int r = environment_exec(call->core, &o, &res, err);
	if (r < 0)
		return r;
	/* Each stream apart (bounded, the tail kept), and both together as before. */
	*out = json_pack("{s:i,s:o,s:b,s:o,s:b,s:o,s:s,s:I,s:b,s:b,s:I}", "exit_code",
			 res.exit_status, "stdout",
			 ops_json_string_lossy(res.stdout_tail, res.stdout_len), "stdout_truncated",
			 res.stdout_total > res.stdout_len, "stderr",
			 ops_json_string_lossy(res.stderr_tail, res.stderr_len), "stderr_truncated",
			 res.stderr_total > res.stderr_len, "output",
			 ops_json_string_lossy(res.output, res.output_len), "output_sha256",
			 res.output_sha256, "output_bytes", (json_int_t)res.output_total,
			 "output_truncated", res.output_total > res.output_len, "timed_out",
			 res.timed_out, "duration_ms", (json_int_t)res.duration_ms);
	oneshot_result_done(&res);
	return *out ? 0 : -ENOMEM;
}

int op_environment_logs(OpCall *call, json_t *in, json_t **out, BbxError *err)
{
	const char *process = str(in, "process");
	json_t *off = json_object_get(in, "offset");
	char *text = NULL;
	int64_t next = 0;
	int r = environment_logs(call->core, str(in, "name"), process && *process ? process : NULL,
				 off ? json_integer_value(off) : -65536, 1u << 20, &text, &next,
				 err);
	if (r < 0)
		return r;
	*out = json_pack("{s:o,s:I}", "text", ops_json_string_lossy(text, strlen(text)),
			 "next_offset", (json_int_t)next);
	free(text);
	return *out ? 0 : -ENOMEM;
}

int op_environment_budget(OpCall *call, json_t *in, json_t **out, BbxError *err)
{
	const char *name = str(in, "name");
	json_t *budget = NULL;
	int r = budget_info(call->core, name, &budget, err);
	if (r == -ENOENT && environment_exists(call->core, name))
		return bbx_error_reset(err, -EBUSY, BBX_CONFLICT,
				       "environment '%s' has no budget: budgets are a preview's",
				       name);
	if (r < 0)
		return r;
	*out = json_pack("{s:s,s:o}", "name", name, "budget", budget);
	return *out ? 0 : -ENOMEM;
}

int op_environment_deploy(OpCall *call, json_t *in, json_t **out, BbxError *err)
{
	return environment_deploy(call->core, out, err);
}
