/* SPDX-License-Identifier: MIT */
/*
 * Fuzz the route table lookup with what a client controls: the method and the decoded
 * request path (libmicrohttpd hands the path over %-decoded and without its query, so
 * any byte but NUL can be in it, '?' included). Input: "METHOD\nPATH" (no newline: GET).
 *
 * The matcher is checked against a plain segment-by-segment reading of the same table:
 * a path matches a pattern when every literal segment is equal, every {param} is one
 * non-empty segment, and a final "*" takes the rest. So a matched route's parameters are
 * whole segments of the path (never cut short, never running into the next one), the
 * first row of the right method wins, 404 and 405 are told apart as the table says, and a
 * params buffer too small makes the lookup fail instead of writing past it.
 */
#include "fuzz.h"

#include <stdlib.h>
#include <string.h>

#include "api.h"

/* The reference reading of one pattern. params point into path; lens are their lengths. */
static bool reference_match(const char *pattern, const char *path, const char *params[],
			    size_t lens[], int *ret_n)
{
	const char *p = pattern, *s = path;
	int n = 0;

	for (;;) {
		size_t pn = strcspn(p, "/"), sn = strcspn(s, "/");
		if (pn == 1 && p[0] == '*' && !p[1]) {
			*ret_n = n;
			return true; /* the rest, whatever it is */
		}
		if (pn >= 2 && p[0] == '{' && p[pn - 1] == '}') {
			if (sn == 0 || n >= API_MAX_PARAMS)
				return false;
			params[n] = s;
			lens[n++] = sn;
		} else if (pn != sn || memcmp(p, s, pn) != 0)
			return false;
		p += pn;
		s += sn;
		if (!*p || !*s) {
			*ret_n = n;
			return !*p && !*s;
		}
		p++; /* both at '/' */
		s++;
	}
}

static void check(const char *method, const char *path, size_t bufsize)
{
	char *buf = malloc(bufsize ? bufsize : 1); /* exact size: ASan sees any overrun */
	const char *params[API_MAX_PARAMS] = { 0 };
	bool path_matched = true;

	if (!buf)
		return;
	const ApiRoute *got = api_route_match(method, path, buf, bufsize, params, &path_matched);

	const ApiRoute *want = NULL;
	const char *want_params[API_MAX_PARAMS] = { 0 };
	size_t want_lens[API_MAX_PARAMS] = { 0 };
	int want_n = 0;
	bool want_path_matched = false;
	for (size_t i = 0; i < api_n_routes; i++) {
		const char *tp[API_MAX_PARAMS];
		size_t tl[API_MAX_PARAMS];
		int tn = 0;
		if (!reference_match(api_routes[i].pattern, path, tp, tl, &tn))
			continue;
		want_path_matched = true;
		if (strcmp(api_routes[i].method, method))
			continue;
		want = &api_routes[i];
		memcpy(want_params, tp, sizeof(tp));
		memcpy(want_lens, tl, sizeof(tl));
		want_n = tn;
		break;
	}

	if (bufsize > strlen(path)) {
		/* Room for every parameter: the lookup and the reference agree exactly. */
		if (got != want || path_matched != want_path_matched)
			abort();
	} else if (got && got != want) {
		abort(); /* a short buffer may lose a match, never invent one */
	}
	if (got) {
		if (!path_matched || strcmp(got->method, method))
			abort();
		for (int i = 0; i < API_MAX_PARAMS; i++) {
			if (i >= want_n) {
				if (params[i])
					abort();
				continue;
			}
			if (!params[i] || strlen(params[i]) != want_lens[i] ||
			    memcmp(params[i], want_params[i], want_lens[i]) != 0)
				abort();
			if (params[i] < buf || params[i] + want_lens[i] >= buf + bufsize)
				abort(); /* pointers into the caller's buffer, NUL included */
		}
		if (got->env_param >= want_n)
			abort(); /* the row's environment parameter exists in its pattern */
	}
	free(buf);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const char *const methods[] = { "GET", "POST", "PUT", "PATCH", "DELETE" };

	if (size > API_MAX_URL + 64)
		return 0;
	char *in = malloc(size + 1);
	if (!in)
		return 0;
	memcpy(in, data, size);
	in[size] = '\0';

	const char *method = "GET", *path = in;
	char *nl = strchr(in, '\n');
	if (nl) {
		*nl = '\0';
		method = in;
		path = nl + 1;
	}
	size_t len = strlen(path);
	check(method, path, API_MAX_URL + 1 > len ? API_MAX_URL + 1 : len + 1);
	/* Tight buffers: the server's is always big enough, but the contract is bounds. */
	check(method, path, len);
	check(method, path, len / 2);
	/* Every method on the same path: 405 versus 404 must not depend on which was asked. */
	for (size_t i = 0; i < sizeof(methods) / sizeof(methods[0]); i++)
		check(methods[i], path, len + 1);
	free(in);
	return 0;
}
