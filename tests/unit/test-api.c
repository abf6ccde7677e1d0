/* SPDX-License-Identifier: MIT */
/* The API's pure parsers: the client's response reader. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "http-client.h"

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

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_http_response),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
