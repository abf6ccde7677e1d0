/* SPDX-License-Identifier: MIT */
#include "api.h"

#include "build-config.h"
#include "policy.h"

int route_healthz(ApiRequest *req, ApiResponse *resp)
{
	return api_reply_json(resp, 200, json_pack("{s:s}", "status", "ok"));
}

int route_version(ApiRequest *req, ApiResponse *resp)
{
	return api_reply_json(resp, 200,
			      json_pack("{s:s,s:i,s:s,s:s}", "version", BRANCHBOX_VERSION, "api", 1,
					"principal", req->principal->name, "kind",
					principal_kind_to_string(req->principal->kind)));
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

static ApiHandler mcp_handler;

void api_set_mcp_handler(ApiHandler handler)
{
	mcp_handler = handler;
}

int route_mcp(ApiRequest *req, ApiResponse *resp)
{
	if (!mcp_handler)
		return api_reply_error(resp, 404, "not_found", "no MCP server here");
	return mcp_handler(req, resp);
}
