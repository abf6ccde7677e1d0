/* SPDX-License-Identifier: MIT */
/*
 * Fuzz the CLI's reader of the daemon's HTTP answers (status line, headers, a body by
 * Content-Length, chunked or up to EOF). The input is the byte stream the server sends,
 * read from a memfd.
 *
 * Asserted on success: the status is a real HTTP status, the body is NUL-terminated and
 * no longer than the input (a plain body is a piece of the input as it is), and streaming
 * the body to a callback gives exactly what collecting it gives. On failure: one of the
 * documented errors, with a message.
 */
#include "fuzz.h"

#include <errno.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/mman.h>
#include <unistd.h>

#include "http-client.h"
#include "strbuf.h"

static int collect(const char *data, size_t n, void *userdata)
{
	return strbuf_append(userdata, data, n);
}

/* Whether "chunked" occurs anywhere, in any case (the input may hold NUL bytes). */
static bool may_be_chunked(const uint8_t *data, size_t size)
{
	for (size_t i = 0; i + 7 <= size; i++)
		if (strncasecmp((const char *)data + i, "chunked", 7) == 0)
			return true;
	return false;
}

static int read_from(const uint8_t *data, size_t size, HttpBodyCallback cb, void *userdata,
		     HttpResponse *ret, BbxError *err)
{
	_cleanup_close_ int fd = memfd_create("http-response", MFD_CLOEXEC);
	if (fd < 0 || (size && write(fd, data, size) != (ssize_t)size) ||
	    lseek(fd, 0, SEEK_SET) != 0)
		abort(); /* the harness itself failed */
	return http_response_read(fd, cb, userdata, ret, err);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	HttpResponse whole = {}, streamed = {};
	_cleanup_strbuf_ StrBuf sb = STRBUF_INIT;
	BbxError err = BBX_ERROR_INIT, err2 = BBX_ERROR_INIT;

	if (size > 1 << 20)
		return 0;
	int r = read_from(data, size, NULL, NULL, &whole, &err);
	int r2 = read_from(data, size, collect, &sb, &streamed, &err2);
	if (r != r2)
		abort();
	if (r < 0) {
		if (r != -EPROTO && r != -EPIPE && r != -EMSGSIZE && r != -EFBIG && r != -ENOMEM)
			abort();
		if (!err.message[0] || whole.body || whole.content_type)
			abort();
		return 0;
	}
	if (whole.status < 100 || whole.status > 599)
		abort();
	if (!whole.body || whole.body[whole.body_len] != '\0' || whole.body_len > size)
		abort();
	if (whole.body_len && !memmem(data, size, whole.body, whole.body_len) &&
	    !may_be_chunked(data, size))
		abort();
	/* The callback saw the same bytes, the response the same head. */
	if (sb.len != whole.body_len || (sb.len && memcmp(sb.buf, whole.body, sb.len)) ||
	    streamed.body_len != 0 || streamed.status != whole.status ||
	    !!streamed.content_type != !!whole.content_type ||
	    (whole.content_type && strcmp(streamed.content_type, whole.content_type)))
		abort();
	http_response_done(&whole);
	http_response_done(&streamed);
	return 0;
}
