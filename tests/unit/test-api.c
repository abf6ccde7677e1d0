/* SPDX-License-Identifier: MIT */
/* The API's pure parsers: route lookup, preview Host rewrite, the client's response reader. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "api.h"
#include "http-client.h"
#include "ops.h"

static const ApiRoute *match(const char *method, const char *path, char *buf, size_t size,
			     const char *params[API_MAX_PARAMS])
{
	bool path_matched = false;
	return api_route_match(method, path, buf, size, params, &path_matched);
}

static void test_route_match(void **state)
{
	char buf[API_MAX_URL + 1];
	const char *params[API_MAX_PARAMS] = { 0 };
	const ApiRoute *r;

	r = match("POST", "/v1/environments/web-1/stop", buf, sizeof(buf), params);
	assert_non_null(r);
	assert_string_equal(r->action, "environment.stop");
	assert_string_equal(params[0], "web-1");

	/* The path comes %-decoded and without its query: "%3F" is part of the name. Cutting
	 * the name at '?' made DELETE /v1/environments/web%3Fx destroy "web". */
	r = match("DELETE", "/v1/environments/web?x", buf, sizeof(buf), params);
	assert_non_null(r);
	assert_string_equal(r->action, "environment.destroy");
	assert_string_equal(params[0], "web?x");
	r = match("POST", "/v1/environments/web?/stop", buf, sizeof(buf), params);
	assert_non_null(r);
	assert_string_equal(r->action, "environment.stop");
	assert_string_equal(params[0], "web?");
	assert_null(match("GET", "/v1/tokens?", buf, sizeof(buf), params));

	r = match("GET", "/preview/web/", buf, sizeof(buf), params);
	assert_non_null(r);
	assert_string_equal(params[0], "web");
	assert_null(match("GET", "/preview/web", buf, sizeof(buf), params));
	/* A parameter that does not fit the buffer is no match, not an overrun. */
	assert_null(match("GET", "/v1/environments/web", buf, 3, params));
}

static void test_preview_host(void **state)
{
	static const char domain[] = "preview.example.com";
	char buf[64];

	assert_int_equal(api_preview_host_rewrite(domain, "web.preview.example.com:8080", "/a?b",
						  buf, sizeof(buf)),
			 1);
	assert_string_equal(buf, "/preview/web/a?b");
	assert_int_equal(
		api_preview_host_rewrite(domain, "a.b.preview.example.com", "*", buf, sizeof(buf)),
		1);
	assert_string_equal(buf, "/preview/a.b/");
	/* Host names are case-insensitive, and may end in the root's '.'. */
	assert_int_equal(
		api_preview_host_rewrite(domain, "Web.Preview.Example.COM.", "/", buf, sizeof(buf)),
		1);
	assert_string_equal(buf, "/preview/web/");

	/* Not under the domain: left to the API. */
	assert_int_equal(
		api_preview_host_rewrite(domain, "preview.example.com", "/v1/x", buf, sizeof(buf)),
		0);
	assert_int_equal(
		api_preview_host_rewrite(domain, "webpreview.example.com", "/", buf, sizeof(buf)),
		0);
	assert_int_equal(
		api_preview_host_rewrite(NULL, "web.preview.example.com", "/", buf, sizeof(buf)),
		0);

	/* Under the domain but no preview to go to: refused, never routed to the API, and
	 * nothing left in buf (a truncated rewrite used to reach the handler and the audit
	 * record while the request had been routed by its original path). */
	memset(buf, 'x', sizeof(buf));
	assert_int_equal(
		api_preview_host_rewrite(domain, "-x.preview.example.com", "/", buf, sizeof(buf)),
		-EINVAL);
	assert_string_equal(buf, "");
	assert_int_equal(
		api_preview_host_rewrite(domain, ".preview.example.com", "/", buf, sizeof(buf)),
		0); /* no label at all: the bare domain with a dot, not a preview */
	memset(buf, 'x', sizeof(buf));
	assert_int_equal(api_preview_host_rewrite(
				 domain, "web.preview.example.com",
				 "/v1/environments/web/a-path-that-does-not-fit-in-64-bytes", buf,
				 sizeof(buf)),
			 -ENAMETOOLONG);
	assert_string_equal(buf, "");
}

static int read_response(const char *text, HttpResponse *ret)
{
	int fd = memfd_create("response", MFD_CLOEXEC);
	assert_true(fd >= 0);
	assert_int_equal(write(fd, text, strlen(text)), (ssize_t)strlen(text));
	assert_int_equal(lseek(fd, 0, SEEK_SET), 0);
	int r = http_response_read(fd, NULL, NULL, ret, NULL);
	close(fd);
	return r;
}

static void test_http_response(void **state)
{
	HttpResponse resp;

	assert_int_equal(read_response("HTTP/1.1 201 Created\r\nContent-Type: application/json\r\n"
				       "Content-Length: 2\r\n\r\n{}trailing",
				       &resp),
			 0);
	assert_int_equal(resp.status, 201);
	assert_string_equal(resp.content_type, "application/json");
	assert_string_equal(resp.body, "{}");
	http_response_done(&resp);

	assert_int_equal(read_response("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
				       "3\r\nabc\r\n2;x\r\nde\r\n0\r\n\r\n",
				       &resp),
			 0);
	assert_string_equal(resp.body, "abcde");
	http_response_done(&resp);

	assert_int_equal(read_response("HTTP/1.0 404\n\nnot found", &resp), 0);
	assert_int_equal(resp.status, 404);
	assert_string_equal(resp.body, "not found");
	http_response_done(&resp);

	/* sscanf("%d") took these as statuses -200, 0 and 2^31 wrapped. */
	assert_int_equal(read_response("HTTP/1.1 -200 OK\r\n\r\n", &resp), -EPROTO);
	assert_int_equal(read_response("HTTP/1.1 000 Zero\r\n\r\n", &resp), -EPROTO);
	assert_int_equal(read_response("HTTP/1.1 2147483648 Big\r\n\r\n", &resp), -EPROTO);
	assert_int_equal(read_response("HTTP/1.1 2000\r\n\r\n", &resp), -EPROTO);
	assert_int_equal(read_response("HTTP/1.1 200 OK\r\nContent-Length: 9\r\n\r\nshort", &resp),
			 -EPIPE);
}

/*
 * Every route onto the operations table names a row, asks for the row's verb when it can
 * check it from the headers, and its environment parameter is the row's environment input;
 * every row is reachable over REST.
 */
static void test_routes_match_operations(void **state)
{
	for (size_t i = 0; i < api_n_routes; i++) {
		const ApiRoute *rt = &api_routes[i];
		if (rt->handler != route_op)
			continue;
		const Op *op = ops_find(rt->action);
		assert_non_null(op);
		if (rt->env_param >= 0) {
			assert_non_null(op->env_arg);
			assert_non_null(strstr(rt->pattern, "{name}"));
			assert_string_equal(op->env_arg, "name");
		}
		/* The environment of a row it cannot see from the path is authorized by ops_run()
		 * alone: production (deploy) or a name in the body (create). */
		if (!(op->flags & OP_ENV_PRODUCTION))
			assert_int_equal(rt->verb, op->verb);
		else
			assert_int_equal(rt->verb, 0);
		assert_int_equal(!!(rt->flags & ROUTE_INTENT), !!(op->flags & OP_INTENT));
	}
	for (size_t k = 0; k < ops_n; k++) {
		bool routed = false;
		for (size_t i = 0; i < api_n_routes; i++)
			routed |= api_routes[i].handler == route_op &&
				  !strcmp(api_routes[i].action, ops_table[k].name);
		assert_true(routed);
		/* Each schema parses and declares its environment input. */
		json_t *schema = json_loads(ops_table[k].input_schema, 0, NULL);
		assert_non_null(schema);
		if (ops_table[k].env_arg)
			assert_non_null(json_object_get(json_object_get(schema, "properties"),
							ops_table[k].env_arg));
		json_decref(schema);
	}
}

static void check_input(const char *op_name, const char *json, int want, const char *message)
{
	BbxError err = BBX_ERROR_INIT;
	json_t *in = json_loads(json, 0, NULL);
	assert_non_null(in);
	assert_int_equal(ops_check_input(ops_find(op_name), in, &err), want);
	if (message)
		assert_string_equal(err.message, message);
	json_decref(in);
}

static void test_operation_inputs(void **state)
{
	check_input("environment.exec",
		    "{\"name\": \"pr-1\", \"command\": [\"true\"], \"timeout\": 5}", 0, NULL);
	check_input("environment.exec", "{\"name\": \"pr-1\"}", -EINVAL,
		    "input: 'command' is required");
	check_input("environment.exec", "{\"name\": \"pr-1\", \"command\": []}", -EINVAL,
		    "input: 'command' must be an array of 1 to 256 strings");
	check_input("environment.exec", "{\"name\": \"pr-1\", \"command\": [\"a\", 1]}", -EINVAL,
		    "input: command[1] must be a string");
	check_input("environment.exec",
		    "{\"name\": \"pr-1\", \"command\": [\"a\"], \"timeout\": 0}", -EINVAL,
		    "input: 'timeout' must be an integer between 1 and 3600");
	check_input("environment.exec",
		    "{\"name\": \"pr-1\", \"command\": [\"a\"], \"timeout\": \"5\"}", -EINVAL,
		    "input: 'timeout' must be an integer between 1 and 3600");
	check_input("environment.create", "{\"name\": \"pr-1\", \"extra\": 1}", -EINVAL,
		    "input: unknown field 'extra'");
	check_input("environment.create", "{\"name\": 7}", -EINVAL,
		    "input: 'name' must be a string");
	check_input("environment.create", "{\"name\": \"pr-1\", \"from\": null}", 0, NULL);
	check_input("environment.list", "[]", -EINVAL, "input: must be a JSON object");
	check_input("environment.logs", "{\"name\": \"x\", \"offset\": -100}", 0, NULL);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_route_match),
		cmocka_unit_test(test_preview_host),
		cmocka_unit_test(test_http_response),
		cmocka_unit_test(test_routes_match_operations),
		cmocka_unit_test(test_operation_inputs),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
