/* SPDX-License-Identifier: MIT */
/*
 * The route table: every REST endpoint with the verb it needs and the path parameter
 * that names its environment, so authorization and audit happen in one place
 * (server.c) and no handler can forget them.
 */
#include "api.h"

#include <string.h>

/* clang-format off */
const ApiRoute api_routes[] = {
	{ "GET", "/healthz", "health", 0, -1, ROUTE_PUBLIC, route_healthz },
	{ "GET", "/v1/version", "version.get", 0, -1, 0, route_version },
	/* Rows of the operations table: verb and environment parameter repeat the row's, for the
	 * check made from the headers alone (test-api holds them equal). */
	{ "POST", "/v1/deploy", "environment.deploy", 0, -1, ROUTE_INTENT, route_op }, /* production: ops_run */
	{ "GET", "/v1/environments", "environment.list", VERB_ENV_READ, -1, 0, route_op },
	{ "POST", "/v1/environments", "environment.create", VERB_ENV_CREATE, -1, ROUTE_INTENT, route_op },
	{ "GET", "/v1/environments/{name}", "environment.get", VERB_ENV_READ, 0, 0, route_op },
	{ "DELETE", "/v1/environments/{name}", "environment.destroy", VERB_ENV_DESTROY, 0, ROUTE_INTENT, route_op },
	{ "POST", "/v1/environments/{name}/stop", "environment.stop", VERB_ENV_WRITE, 0, ROUTE_INTENT, route_op },
	{ "POST", "/v1/environments/{name}/start", "environment.start", VERB_ENV_WRITE, 0, ROUTE_INTENT, route_op },
	{ "POST", "/v1/environments/{name}/exec", "environment.exec", VERB_ENV_EXEC, 0, ROUTE_INTENT, route_op },
	{ "GET", "/v1/environments/{name}/logs", "environment.logs", VERB_ENV_READ, 0, 0, route_op },
	{ "GET", "/v1/environments/{name}/budget", "environment.budget", VERB_ENV_READ, 0, 0, route_op },
	{ "GET", "/v1/environments/{name}/files", "environment.file_list", VERB_ENV_READ, 0, 0, route_op },
	{ "GET", "/v1/environments/{name}/file", "environment.file_read", VERB_ENV_READ, 0, 0, route_op },
	{ "PUT", "/v1/environments/{name}/file", "environment.file_write", VERB_ENV_WRITE, 0, ROUTE_INTENT, route_op },
	{ "GET", "/v1/environments/{name}/diff", "environment.diff", VERB_ENV_READ, 0, 0, route_op },
	{ "GET", "/v1/environments/{name}/config", "config.read", VERB_ENV_READ, 0, 0, route_op },
	{ "GET", "/v1/environments/{name}/services", "services.list", VERB_ENV_READ, 0, 0, route_op },
	/* REST only: a byte stream, not an operation. */
	{ "GET", "/preview/{name}/*", "preview.proxy", VERB_ENV_READ, 0, 0, route_preview_proxy },
	{ "POST", "/preview/{name}/*", "preview.proxy", VERB_ENV_READ, 0, 0, route_preview_proxy },
	{ "PUT", "/preview/{name}/*", "preview.proxy", VERB_ENV_READ, 0, 0, route_preview_proxy },
	{ "PATCH", "/preview/{name}/*", "preview.proxy", VERB_ENV_READ, 0, 0, route_preview_proxy },
	{ "DELETE", "/preview/{name}/*", "preview.proxy", VERB_ENV_READ, 0, 0, route_preview_proxy },
	{ "GET", "/v1/routes", "routes.list", 0, -1, ROUTE_ROOT_ONLY, route_routes_list },
	{ "POST", "/v1/tokens", "token.create", VERB_TOKEN_ADMIN, -1, 0, route_op },
	{ "GET", "/v1/tokens", "token.list", VERB_TOKEN_ADMIN, -1, 0, route_op },
	{ "DELETE", "/v1/tokens/{id}", "token.revoke", VERB_TOKEN_ADMIN, -1, 0, route_op },
	{ "GET", "/v1/audit", "audit.list", VERB_AUDIT_READ, -1, 0, route_op },
	{ "POST", "/v1/audit/checkpoint", "audit.checkpoint", VERB_AUDIT_READ, -1, 0, route_op },
	{ "GET", "/v1/audit/pubkey", "audit.pubkey", VERB_AUDIT_READ, -1, 0, route_op },
	{ "GET", "/v1/audit/verify", "audit.verify", VERB_AUDIT_READ, -1, 0, route_op },
	{ "GET", "/v1/environments/{name}/audit", "environment.audit", VERB_ENV_READ, 0, 0, route_op },
	{ "POST", "/v1/proposals", "proposal.submit", VERB_PROPOSAL_SUBMIT, -1, ROUTE_INTENT, route_op },
	{ "GET", "/v1/proposals", "proposal.list", 0, -1, 0, route_op },
	{ "GET", "/v1/proposals/{id}", "proposal.get", 0, -1, 0, route_op },
	{ "GET", "/v1/proposals/{id}/diff", "proposal.diff", 0, -1, 0, route_op },
	{ "POST", "/v1/proposals/{id}/approve", "proposal.approve", VERB_PROPOSAL_REVIEW, -1, 0, route_op },
	{ "POST", "/v1/proposals/{id}/reject", "proposal.reject", VERB_PROPOSAL_REVIEW, -1, 0, route_op },
	{ "POST", "/v1/proposals/{id}/merge", "proposal.merge", VERB_PROPOSAL_MERGE, -1, ROUTE_INTENT, route_op },
	/* MCP: each tool call is an operation run (and recorded) by ops_run(). */
	{ "POST", "/mcp", "mcp", 0, -1, 0, route_mcp },
	{ "GET", "/mcp", "mcp", 0, -1, 0, route_mcp },
	{ "DELETE", "/mcp", "mcp", 0, -1, 0, route_mcp },
};
/* clang-format on */

const size_t api_n_routes = ELEMENTSOF(api_routes);

/*
 * Match one pattern against a path; copies segments into buf, pointing params into it.
 * The path is libmicrohttpd's: %-decoded and without the query, so a '?' in it was sent
 * as %3F and belongs to the segment it is in (it never ends one).
 */
static bool pattern_match(const char *pattern, const char *path, char *buf, size_t bufsize,
			  const char *params[API_MAX_PARAMS])
{
	size_t used = 0;
	int np = 0;
	const char *p = pattern, *s = path;

	while (*p && *s) {
		if (p[0] == '*' && p[1] == '\0')
			return true;
		if (*p == '{') {
			const char *pe = strchr(p, '}');
			const char *se = s;
			while (*se && *se != '/')
				se++;
			size_t n = (size_t)(se - s);
			if (!pe || n == 0 || np >= API_MAX_PARAMS || used + n + 1 > bufsize)
				return false;
			memcpy(buf + used, s, n);
			buf[used + n] = '\0';
			params[np++] = buf + used;
			used += n + 1;
			p = pe + 1;
			s = se;
			continue;
		}
		if (*p != *s)
			return false;
		p++;
		s++;
	}
	if (p[0] == '*' && p[1] == '\0')
		return true;
	return *p == '\0' && *s == '\0';
}

const ApiRoute *api_route_match(const char *method, const char *path, char *buf, size_t bufsize,
				const char *params[API_MAX_PARAMS], bool *ret_path_matched)
{
	*ret_path_matched = false;
	for (size_t i = 0; i < api_n_routes; i++) {
		const char *tmp[API_MAX_PARAMS] = { 0 };
		if (!pattern_match(api_routes[i].pattern, path, buf, bufsize, tmp))
			continue;
		*ret_path_matched = true;
		if (strcmp(api_routes[i].method, method))
			continue;
		memcpy(params, tmp, sizeof(tmp));
		return &api_routes[i];
	}
	return NULL;
}
