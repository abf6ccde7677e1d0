/* SPDX-License-Identifier: MIT */
/*
 * REST onto the operations table: a route's {params}, the query arguments its row declares and
 * the JSON body become the row's input; ops_run() authorizes, records and runs it; the error
 * kind decides the status. The dispatcher has already refused, from the headers alone, a path
 * naming an environment the principal may not see.
 */
#include "api.h"

#include <errno.h>
#include <string.h>

#include "ops.h"
#include "parse.h"

/* Add each {param} of pattern (in order, values from req->params) to in. */
static int add_path_params(ApiRequest *req, json_t *in, ApiResponse *resp)
{
	int i = 0;
	for (const char *p = req->pattern; p && (p = strchr(p, '{')); i++) {
		const char *e = strchr(p, '}');
		if (!e || i >= API_MAX_PARAMS || !req->params[i])
			break;
		char key[32];
		snprintf(key, sizeof(key), "%.*s", (int)(e - p - 1), p + 1);
		json_t *given = json_object_get(in, key);
		if (given &&
		    !(json_is_string(given) && !strcmp(json_string_value(given), req->params[i])))
			return api_reply_error(resp, 400, "invalid",
					       "request body: '%s' is given by the path", key),
			       -EINVAL;
		json_object_set_new(in, key, json_string(req->params[i]));
		p = e;
	}
	return 0;
}

/* Query arguments the row's schema declares, typed as it says. */
static int add_query(ApiRequest *req, const Op *op, json_t *in, ApiResponse *resp)
{
	json_t *schema = json_loads(op->input_schema, 0, NULL);
	const char *key;
	json_t *prop;
	int r = 0;
	json_object_foreach(json_object_get(schema, "properties"), key, prop)
	{
		const char *v = api_request_query(req, key);
		if (!v || json_object_get(in, key))
			continue;
		const char *type = json_string_value(json_object_get(prop, "type"));
		int64_t n;
		if (type && !strcmp(type, "integer")) {
			if (parse_int64(v, &n) < 0) {
				api_reply_error(resp, 400, "invalid",
						"query: '%s' must be an integer", key);
				r = -EINVAL;
				break;
			}
			json_object_set_new(in, key, json_integer(n));
		} else if (type && !strcmp(type, "string"))
			json_object_set_new(in, key, json_string(v));
	}
	json_decref(schema);
	return r;
}

int route_op(ApiRequest *req, ApiResponse *resp)
{
	const Op *op = ops_find(req->action);
	BbxError err = BBX_ERROR_INIT;
	json_t *in = NULL, *out = NULL;

	if (!op)
		return api_reply_error(resp, 500, "internal", "route %s has no operation",
				       req->action);
	if (req->body_len > 0) {
		if (api_request_json(req, resp, &in) < 0)
			return 0;
	} else
		in = json_object();
	if (!in)
		return -ENOMEM;
	if (add_path_params(req, in, resp) < 0 || add_query(req, op, in, resp) < 0) {
		json_decref(in);
		return 0;
	}
	OpCall call = { .core = req->core,
			.principal = req->principal,
			.interface = req->interface,
			.request_id = req->request_id,
			.request_digest = req->request_digest,
			.resource = req->path };
	int r = ops_run(&call, op, in, &out, &err);
	/* ops_run() wrote the records (intent, outcome or denial). */
	req->audited = true;
	req->intent_recorded = call.intent_recorded;
	json_decref(in);
	if (r < 0)
		return api_reply_bbx_error(resp, r, &err);
	return api_reply_json(resp, op->success_status, out);
}
