/* SPDX-License-Identifier: MIT */
#include "api.h"

#include "build-config.h"

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
