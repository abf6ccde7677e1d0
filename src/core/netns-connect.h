/* SPDX-License-Identifier: MIT */
/*
 * Reaching into an environment's network namespace from the daemon: a TCP socket is
 * created by a short-lived thread that has joined the namespace (setns affects only the
 * calling thread, and a socket stays in the namespace it was created in), so the daemon
 * itself never moves and an environment's ports are never bound on the host.
 * Thread-safe.
 */
#pragma once

#include <stddef.h>
#include <stdint.h>

#include "error.h"

/* Connect to 127.0.0.1:port inside the netns; returns a connected O_CLOEXEC fd or -errno. */
int netns_connect(int netns_fd, uint16_t port, int timeout_ms, BbxError *err);

/*
 * Connect, send req (may be NULL), read at most resp_size bytes of the first answer.
 * Returns the number of bytes read (0 when the peer closed), or -errno.
 */
ssize_t netns_exchange(int netns_fd, uint16_t port, const void *req, size_t req_len, void *resp,
		       size_t resp_size, int timeout_ms, BbxError *err);

/* GET path over HTTP/1.0 inside the netns; *ret_status the status code. */
int netns_http_get(int netns_fd, uint16_t port, const char *path, int timeout_ms, int *ret_status,
		   char *body, size_t body_size, BbxError *err);
