/* SPDX-License-Identifier: MIT */
/*
 * Redis from the host's Debian package. Layout in the volume: services/NAME/redis.conf
 * (rewritten at every start, with this environment's password) and services/NAME/data
 * (append-only file, so a snapshot is a consistent prefix of the writes).
 */
#include "service.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "file-util.h"
#include "netns-connect.h"
#include "strbuf.h"
#include "strv.h"

static int redis_prepare(const ServiceRuntime *s, bool fresh, bool cloned, BbxError *err)
{
	_cleanup_strbuf_ StrBuf conf = STRBUF_INIT;
	int r;

	/* services/NAME is the service's own: no path below it is followed (see pg_prepare). */
	if (mkdir(s->data_host, 0700) < 0 && errno != EEXIST)
		return bbx_error_set(err, -errno, BBX_INTERNAL, "service %s: %s: %m",
				     s->config->name, s->data_host);
	_cleanup_close_ int base =
		open(s->data_host, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	if (base < 0 || fchown(base, s->owner_uid, s->owner_gid) < 0)
		return bbx_error_set(err, -errno, BBX_INTERNAL, "service %s: %s: %m",
				     s->config->name, s->data_host);
	r = mkdir_owned_at(base, "data", 0700, s->owner_uid, s->owner_gid);
	if (r < 0)
		return bbx_error_set(err, r, BBX_INTERNAL, "service %s: %s/data: %s",
				     s->config->name, s->data_host, strerror(-r));
	r = strbuf_appendf(&conf,
			   "# Written by branchbox at every start; do not edit.\n"
			   "bind 127.0.0.1\n"
			   "port %u\n"
			   "protected-mode yes\n"
			   "daemonize no\n"
			   "supervised no\n"
			   "logfile \"\"\n"
			   "dir %s/data\n"
			   "save \"\"\n"
			   "appendonly yes\n"
			   "appendfsync everysec\n"
			   "requirepass %s\n"
			   "maxmemory-policy noeviction\n"
			   "rename-command SHUTDOWN \"\"\n"
			   "rename-command REPLICAOF \"\"\n"
			   "rename-command SLAVEOF \"\"\n"
			   "rename-command DEBUG \"\"\n"
			   "rename-command MODULE \"\"\n",
			   s->port, s->data_path, s->password);
	if (r < 0)
		return r;
	r = write_file_atomic_at(base, "redis.conf", conf.buf, conf.len, 0600, s->owner_uid,
				 s->owner_gid);
	if (r < 0)
		return bbx_error_set(err, r, BBX_INTERNAL, "service %s: writing %s/redis.conf: %s",
				     s->config->name, s->data_host, strerror(-r));
	return 0;
}

static int redis_init_command(const ServiceRuntime *s, ServiceCommand *ret, BbxError *err)
{
	ret->argv = NULL;
	return 0;
}

static int redis_start_command(const ServiceRuntime *s, ServiceCommand *ret, BbxError *err)
{
	char conf[200];
	if (access("/usr/bin/redis-server", X_OK) < 0)
		return bbx_error_set(
			err, -ENOENT, BBX_INVALID,
			"service %s: /usr/bin/redis-server is not installed on this host",
			s->config->name);
	snprintf(conf, sizeof(conf), "%s/redis.conf", s->data_path);
	ret->argv = strv_new("/usr/bin/redis-server", conf, NULL);
	return ret->argv ? 0 : -ENOMEM;
}

/* PING: +PONG, or -NOAUTH (a live server that wants the password) mean ready;
 * -LOADING means it is still reading its data. */
static int redis_probe(const ServiceRuntime *s, int netns_fd, BbxError *err)
{
	static const char ping[] = "*1\r\n$4\r\nPING\r\n";
	char resp[256];
	ssize_t k = netns_exchange(netns_fd, s->port, ping, sizeof(ping) - 1, resp,
				   sizeof(resp) - 1, 2000, NULL);
	if (k <= 0)
		return -EAGAIN;
	resp[k] = '\0';
	if (!strncmp(resp, "+PONG", 5) || !strncmp(resp, "-NOAUTH", 7))
		return 0;
	return -EAGAIN;
}

static int redis_url(const ServiceRuntime *s, const char *host, char **ret)
{
	if (asprintf(ret, "redis://:%s@%s:%u", s->password, host, s->port) < 0) {
		*ret = NULL;
		return -ENOMEM;
	}
	return 0;
}

static json_t *redis_relationship(const ServiceRuntime *s, const char *rel)
{
	_cleanup_free_ char *url = NULL;
	if (redis_url(s, rel, &url) < 0)
		return NULL;
	return json_pack("{s:s,s:s,s:i,s:s,s:s,s:s,s:s,s:s}", "service", s->config->name, "host",
			 rel, "port", (int)s->port, "scheme", "redis", "password", s->password,
			 "type", s->config->type, "rel", "redis", "url", url);
}

const ServiceType service_redis = {
	.kind = CONFIG_SERVICE_REDIS,
	.name = "redis",
	.default_port = 6379,
	.stop_signal = SIGTERM,
	.prepare = redis_prepare,
	.init_command = redis_init_command,
	.start_command = redis_start_command,
	.probe = redis_probe,
	.credentials_command = NULL, /* the password is in redis.conf, rewritten before start */
	.sql_command = NULL,
	.relationship = redis_relationship,
	.url = redis_url,
	.url_variable = "REDIS_URL",
	.quiesce = NULL, /* the append-only file makes any snapshot a consistent prefix */
	.path = NULL,
};
