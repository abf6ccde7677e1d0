/* SPDX-License-Identifier: MIT */
/*
 * Fuzz ingress by name: the Host header a browser sends to NAME.<preview domain> is
 * rewritten into the path of NAME's preview proxy. Input: "HOST\nURL\nDOMAIN" (URL is the
 * decoded request path; DOMAIN defaults to preview.example.com).
 *
 * Asserted: a rewrite names exactly the environment in the Host (the labels before the
 * domain, lower-cased, which must be a valid environment name), the rest of the path is
 * the request's own, no control character comes from the Host, and the route table then
 * sends the rewritten path to the preview proxy with that same name. A Host under the
 * preview domain is rewritten or refused, never handed to the API's own routes, and
 * nothing is left in the caller's buffer when there was no rewrite.
 */
#include "fuzz.h"

#include <ctype.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "api.h"
#include "parse.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size > 2 * API_MAX_URL)
		return 0;
	char *in = malloc(size + 1);
	if (!in)
		return 0;
	memcpy(in, data, size);
	in[size] = '\0';

	char *parts[3] = { in, NULL, NULL };
	for (int i = 1; i < 3; i++) {
		char *nl = parts[i - 1] ? strchr(parts[i - 1], '\n') : NULL;
		if (!nl)
			break;
		*nl = '\0';
		parts[i] = nl + 1;
	}
	const char *host = parts[0], *url = parts[1] ? parts[1] : "/";
	const char *domain = parts[2] && *parts[2] ? parts[2] : "preview.example.com";

	char *buf = malloc(API_MAX_URL + 1);
	if (!buf) {
		free(in);
		return 0;
	}
	memset(buf, 'x', API_MAX_URL + 1); /* whatever was there before */
	int r = api_preview_host_rewrite(domain, host, url, buf, API_MAX_URL + 1);

	/* What the Host names: "NAME.<domain>", before any ":port", one final '.' aside. */
	size_t hn = strcspn(host, ":"), dn = strlen(domain);
	if (hn && host[hn - 1] == '.')
		hn--;
	bool under_domain = hn > dn + 1 && host[hn - dn - 1] == '.' &&
			    strncasecmp(host + hn - dn, domain, dn) == 0;
	size_t nn = under_domain ? hn - dn - 1 : 0;
	char name[2 * API_MAX_URL + 1];
	for (size_t i = 0; i < nn; i++)
		name[i] = (char)tolower((unsigned char)host[i]);
	name[nn] = '\0';
	const char *rest = url[0] == '/' ? url : "/";

	if (r != 1 && buf[0])
		abort(); /* no half-written path for the server to pick up */
	if (r == 0 && under_domain)
		abort(); /* a preview Host never reaches the API's own routes */
	if (r < 0 && (!under_domain || (r != -EINVAL && r != -ENAMETOOLONG)))
		abort();
	if (r == -EINVAL && name_is_valid(name))
		abort();
	if (r == -ENAMETOOLONG && (!name_is_valid(name) || 9 + nn + strlen(rest) <= API_MAX_URL))
		abort();
	if (r != 1) {
		free(buf);
		free(in);
		return 0;
	}
	if (!under_domain || !name_is_valid(name))
		abort();
	if (strncmp(buf, "/preview/", 9) != 0 || strlen(buf) != 9 + nn + strlen(rest) ||
	    memcmp(buf + 9, name, nn) != 0 || strcmp(buf + 9 + nn, rest) != 0)
		abort();
	for (size_t i = 0; i < 9 + nn; i++)
		if ((unsigned char)buf[i] < 0x20 || buf[i] == 0x7f)
			abort();

	/* The route table agrees on the name. */
	char pathbuf[API_MAX_URL + 1];
	const char *params[API_MAX_PARAMS] = { 0 };
	bool path_matched = false;
	const ApiRoute *route =
		api_route_match("GET", buf, pathbuf, sizeof(pathbuf), params, &path_matched);
	if (!route || strcmp(route->action, "preview.proxy") != 0 || !params[0] ||
	    strcmp(params[route->env_param], name) != 0)
		abort();
	free(buf);
	free(in);
	return 0;
}
