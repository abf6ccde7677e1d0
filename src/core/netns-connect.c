/* SPDX-License-Identifier: MIT */
#include "netns-connect.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <sched.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "file-util.h"
#include "macro.h"

typedef struct ConnectJob {
	int netns_fd;
	uint16_t port;
	int timeout_ms;
	int result; /* fd or -errno */
	const char *step;
} ConnectJob;

static void *connect_thread(void *p)
{
	ConnectJob *j = p;
	struct sockaddr_in sa = { .sin_family = AF_INET, .sin_port = htons(j->port) };

	if (setns(j->netns_fd, CLONE_NEWNET) < 0) {
		j->result = -errno;
		j->step = "join network namespace";
		return NULL;
	}
	sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	if (fd < 0) {
		j->result = -errno;
		j->step = "socket";
		return NULL;
	}
	if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
		if (errno != EINPROGRESS) {
			j->result = -errno;
			j->step = "connect";
			close(fd);
			return NULL;
		}
		struct pollfd pfd = { .fd = fd, .events = POLLOUT };
		int k = poll(&pfd, 1, j->timeout_ms);
		int soerr = 0;
		socklen_t len = sizeof(soerr);
		if (k <= 0)
			soerr = k == 0 ? ETIMEDOUT : errno;
		else if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &soerr, &len) < 0)
			soerr = errno;
		if (soerr) {
			j->result = -soerr;
			j->step = "connect";
			close(fd);
			return NULL;
		}
	}
	/* Back to blocking: callers use poll-free reads with SO_RCVTIMEO. */
	int fl = fcntl(fd, F_GETFL);
	(void)fcntl(fd, F_SETFL, fl & ~O_NONBLOCK);
	j->result = fd;
	return NULL;
}

int netns_connect(int netns_fd, uint16_t port, int timeout_ms, BbxError *err)
{
	ConnectJob j = {
		.netns_fd = netns_fd, .port = port, .timeout_ms = timeout_ms, .result = -EIO
	};
	pthread_t t;

	/* A fresh thread, because setns() would otherwise move a daemon worker for good. */
	int r = pthread_create(&t, NULL, connect_thread, &j);
	if (r != 0)
		return bbx_error_set(err, -r, BBX_INTERNAL,
				     "netns connect: cannot start thread: %s", strerror(r));
	pthread_join(t, NULL);
	if (j.result < 0)
		return bbx_error_set(err, j.result, BBX_UNAVAILABLE,
				     "%s to 127.0.0.1:%u in the environment: %s",
				     j.step ? j.step : "connect", port, strerror(-j.result));
	if (timeout_ms > 0) {
		struct timeval tv = { .tv_sec = timeout_ms / 1000,
				      .tv_usec = (timeout_ms % 1000) * 1000 };
		setsockopt(j.result, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
		setsockopt(j.result, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
	}
	return j.result;
}

ssize_t netns_exchange(int netns_fd, uint16_t port, const void *req, size_t req_len, void *resp,
		       size_t resp_size, int timeout_ms, BbxError *err)
{
	_cleanup_close_ int fd = netns_connect(netns_fd, port, timeout_ms, err);
	if (fd < 0)
		return fd;
	if (req && req_len) {
		int r = write_all(fd, req, req_len);
		if (r < 0)
			return bbx_error_set(err, r, BBX_UNAVAILABLE, "send to port %u: %s", port,
					     strerror(-r));
	}
	ssize_t n;
	do
		n = read(fd, resp, resp_size);
	while (n < 0 && errno == EINTR);
	if (n < 0)
		return bbx_error_set(err, -errno, BBX_UNAVAILABLE, "read from port %u: %s", port,
				     strerror(errno));
	return n;
}

int netns_http_get(int netns_fd, uint16_t port, const char *path, int timeout_ms, int *ret_status,
		   char *body, size_t body_size, BbxError *err)
{
	char req[1200], buf[8192];
	size_t got = 0;
	int n = snprintf(
		req, sizeof(req),
		"GET %s HTTP/1.0\r\nHost: localhost\r\nUser-Agent: branchbox-health\r\n\r\n", path);
	if (n < 0 || (size_t)n >= sizeof(req))
		return bbx_error_set(err, -EINVAL, BBX_INVALID, "health check path too long");

	_cleanup_close_ int fd = netns_connect(netns_fd, port, timeout_ms, err);
	if (fd < 0)
		return fd;
	int r = write_all(fd, req, (size_t)n);
	if (r < 0)
		return bbx_error_set(err, r, BBX_UNAVAILABLE, "send to port %u: %s", port,
				     strerror(-r));
	while (got < sizeof(buf) - 1) {
		ssize_t k = read(fd, buf + got, sizeof(buf) - 1 - got);
		if (k < 0 && errno == EINTR)
			continue;
		if (k < 0)
			return bbx_error_set(err, -errno, BBX_UNAVAILABLE, "read from port %u: %s",
					     port, strerror(errno));
		if (k == 0)
			break;
		got += (size_t)k;
	}
	buf[got] = '\0';
	int major, minor, status;
	if (sscanf(buf, "HTTP/%d.%d %d", &major, &minor, &status) != 3)
		return bbx_error_set(err, -EPROTO, BBX_UNAVAILABLE, "port %u did not answer HTTP",
				     port);
	*ret_status = status;
	if (body && body_size) {
		const char *b = strstr(buf, "\r\n\r\n");
		snprintf(body, body_size, "%s", b ? b + 4 : "");
	}
	return 0;
}
