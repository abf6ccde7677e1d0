/* SPDX-License-Identifier: MIT */
/*
 * PostgreSQL from the host's Debian packages (/usr/lib/postgresql/VERSION/bin).
 * Layout in the volume: services/NAME/data (PGDATA), services/NAME/run (unix socket, only
 * visible to sandboxes that bind the data dir: the service itself and the daemon's own
 * one-shots; the application connects over TCP with its password).
 * The application's role and database are both "main".
 */
#include "service.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "file-util.h"
#include "netns-connect.h"
#include "strbuf.h"
#include "strv.h"

#define PG_APP_ROLE "main"
#define PG_APP_DB "main"

static int pg_bin(const ServiceRuntime *s, const char *prog, char *buf, size_t size, BbxError *err)
{
	snprintf(buf, size, "/usr/lib/postgresql/%s/bin/%s", s->config->version, prog);
	if (access(buf, X_OK) < 0)
		return bbx_error_set(err, -ENOENT, BBX_INVALID,
				     "service %s: %s is not installed on this host",
				     s->config->name, buf);
	return 0;
}

/* The major version of a "15" or "15.4" string, 0 when it does not start with a number. */
static unsigned major_version(const char *v)
{
	unsigned n = 0;
	for (; v && *v >= '0' && *v <= '9' && n < 1000; v++)
		n = n * 10 + (unsigned)(*v - '0');
	return n;
}

static int pg_prepare(const ServiceRuntime *s, bool fresh, bool cloned, BbxError *err)
{
	_cleanup_strbuf_ StrBuf conf = STRBUF_INIT;
	int r;

	if (fresh)
		return 0; /* initdb makes the directory */

	/* services/NAME and everything below it belong to the service's uid: every host-side
	 * access goes through directory fds without following symlinks, so a compromised
	 * service cannot point the daemon's writes outside its volume. */
	_cleanup_close_ int base =
		open(s->data_host, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	if (base < 0)
		return bbx_error_set(err, -errno, BBX_INTERNAL, "service %s: %s: %m",
				     s->config->name, s->data_host);
	_cleanup_close_ int data = open_dir_at_nofollow(base, "data");
	if (data < 0)
		return bbx_error_set(err, data, BBX_INTERNAL, "service %s: %s/data: %s",
				     s->config->name, s->data_host, strerror(-data));
	if (cloned) {
		/* A snapshot of a running cluster: its pid file and any standby or archiving
		 * setup belong to the source; the clone is a separate, stand-alone cluster. */
		static const char *const stale[] = { "postmaster.pid", "standby.signal",
						     "recovery.signal" };
		for (size_t i = 0; i < ELEMENTSOF(stale); i++)
			(void)unlinkat(data, stale[i], 0);
	}
	r = strbuf_appendf(&conf,
			   "# Written by branchbox at every start; do not edit.\n"
			   "listen_addresses = '127.0.0.1'\n"
			   "port = %u\n"
			   "unix_socket_directories = '%s/run'\n"
			   "max_connections = 30\n"
			   "shared_buffers = 16MB\n"
			   "dynamic_shared_memory_type = posix\n"
			   "logging_collector = off\n"
			   "log_destination = 'stderr'\n"
			   "archive_mode = off\n"
			   "archive_command = ''\n"
			   "restore_command = ''\n"
			   "primary_conninfo = ''\n"
			   "primary_slot_name = ''\n"
			   "hot_standby = off\n",
			   s->port, s->data_path);
	/*
	 * A clone starts with crash recovery, which first fsyncs every file of the data dir one
	 * by one: ~1.7 s at 2 GiB here, the one stage of a preview's start that grew with its
	 * data. syncfs (PostgreSQL 14+) makes the same guarantee with one call per filesystem.
	 */
	if (r >= 0 && major_version(s->config->version) >= 14)
		r = strbuf_appendf(&conf, "recovery_init_sync_method = syncfs\n");
	if (r < 0)
		return r;
	r = write_file_atomic_at(data, "branchbox.conf", conf.buf, conf.len, 0600, s->owner_uid,
				 s->owner_gid);
	if (r < 0)
		return bbx_error_set(err, r, BBX_INTERNAL,
				     "service %s: writing %s/data/branchbox.conf: %s",
				     s->config->name, s->data_host, strerror(-r));
	r = mkdir_owned_at(base, "run", 0700, s->owner_uid, s->owner_gid);
	if (r < 0)
		return bbx_error_set(err, r, BBX_INTERNAL, "service %s: %s/run: %s",
				     s->config->name, s->data_host, strerror(-r));
	return 0;
}

static int pg_init_command(const ServiceRuntime *s, ServiceCommand *ret, BbxError *err)
{
	char initdb[256], postgres[256];
	int r;

	if ((r = pg_bin(s, "initdb", initdb, sizeof(initdb), err)) < 0 ||
	    (r = pg_bin(s, "postgres", postgres, sizeof(postgres), err)) < 0)
		return r;

	/* initdb, then create the application's role and database in single-user mode, so no
	 * server listens before the credentials exist. */
	_cleanup_strbuf_ StrBuf script = STRBUF_INIT;
	r = strbuf_appendf(
		&script,
		"set -e\n"
		"%s -D %s/data -U postgres --auth-local=trust --auth-host=scram-sha-256 "
		"-E UTF8 --locale=C.UTF-8 --no-instructions >/dev/null\n"
		"echo \"include_if_exists = 'branchbox.conf'\" >> %s/data/postgresql.conf\n"
		"%s --single -D %s/data -c listen_addresses='' postgres >/dev/null <<'EOF'\n"
		"CREATE ROLE " PG_APP_ROLE " LOGIN PASSWORD '%s'\n"
		"CREATE DATABASE " PG_APP_DB " OWNER " PG_APP_ROLE "\n"
		"EOF\n",
		initdb, s->data_path, s->data_path, postgres, s->data_path, s->password);
	if (r < 0)
		return r;
	ret->argv = strv_new("/bin/sh", "-c", script.buf, NULL);
	return ret->argv ? 0 : -ENOMEM;
}

static int pg_start_command(const ServiceRuntime *s, ServiceCommand *ret, BbxError *err)
{
	char postgres[256], data[200];
	int r = pg_bin(s, "postgres", postgres, sizeof(postgres), err);
	if (r < 0)
		return r;
	snprintf(data, sizeof(data), "%s/data", s->data_path);
	ret->argv = strv_new(postgres, "-D", data, NULL);
	return ret->argv ? 0 : -ENOMEM;
}

/* Send a startup message: an authentication request ('R') means the server takes
 * connections; an error with SQLSTATE 57P03 means it is still starting or recovering. */
static int pg_probe(const ServiceRuntime *s, int netns_fd, BbxError *err)
{
	unsigned char msg[128];
	static const char params[] = "user\0postgres\0database\0postgres\0";
	size_t n = 8 + sizeof(params); /* sizeof includes the final terminator */
	char resp[512];

	msg[0] = (unsigned char)(n >> 24);
	msg[1] = (unsigned char)(n >> 16);
	msg[2] = (unsigned char)(n >> 8);
	msg[3] = (unsigned char)n;
	msg[4] = 0x00;
	msg[5] = 0x03;
	msg[6] = 0x00;
	msg[7] = 0x00; /* protocol 3.0 */
	memcpy(msg + 8, params, sizeof(params));

	ssize_t k = netns_exchange(netns_fd, s->port, msg, n, resp, sizeof(resp) - 1, 2000, NULL);
	if (k <= 0)
		return -EAGAIN;
	if (resp[0] == 'R')
		return 0;
	resp[k] = '\0';
	for (ssize_t i = 0; i + 5 < k; i++)
		if (resp[i] == 'C' && !memcmp(resp + i + 1, "57P03", 5))
			return -EAGAIN;
	/* Any other answer is still a server that is up (e.g. too many connections). */
	return resp[0] == 'E' ? 0
			      : bbx_error_set(err, -EPROTO, BBX_INTERNAL,
					      "service %s: unexpected answer to a startup message",
					      s->config->name);
}

static int psql_command(const ServiceRuntime *s, const char *db, const char *sql, bool tuples,
			ServiceCommand *ret, BbxError *err)
{
	char psql[256], host[200], port[8];
	int r = pg_bin(s, "psql", psql, sizeof(psql), err);
	if (r < 0)
		return r;
	/* Over the unix socket in the data dir, as the superuser (local trust): only sandboxes
	 * that bind this data dir can reach that socket. */
	snprintf(host, sizeof(host), "%s/run", s->data_path);
	snprintf(port, sizeof(port), "%u", s->port);
	ret->argv = strv_new(psql, "-X", "-q", "-v", "ON_ERROR_STOP=1", "-h", host, "-p", port,
			     "-U", "postgres", "-d", db, "-f", "-", NULL);
	if (!ret->argv)
		return -ENOMEM;
	if (tuples && (strv_push(&ret->argv, "-A") < 0 || strv_push(&ret->argv, "-t") < 0))
		return -ENOMEM;
	ret->stdin_data = strdup(sql);
	return ret->stdin_data ? 0 : -ENOMEM;
}

static int pg_credentials_command(const ServiceRuntime *s, ServiceCommand *ret, BbxError *err)
{
	char sql[256];
	snprintf(sql, sizeof(sql), "ALTER ROLE " PG_APP_ROLE " PASSWORD '%s';\n", s->password);
	return psql_command(s, "postgres", sql, false, ret, err);
}

static int pg_sql_command(const ServiceRuntime *s, const char *sql, ServiceCommand *ret,
			  BbxError *err)
{
	return psql_command(s, PG_APP_DB, sql, true, ret, err);
}

static int pg_url(const ServiceRuntime *s, const char *host, char **ret)
{
	if (asprintf(ret, "postgresql://%s:%s@%s:%u/%s", PG_APP_ROLE, s->password, host, s->port,
		     PG_APP_DB) < 0) {
		*ret = NULL;
		return -ENOMEM;
	}
	return 0;
}

static json_t *pg_relationship(const ServiceRuntime *s, const char *rel)
{
	_cleanup_free_ char *url = NULL;
	if (pg_url(s, rel, &url) < 0)
		return NULL;
	return json_pack("{s:s,s:s,s:i,s:s,s:s,s:s,s:s,s:s,s:s,s:s}", "service", s->config->name,
			 "host", rel, "port", (int)s->port, "scheme", "pgsql", "username",
			 PG_APP_ROLE, "password", s->password, "path", PG_APP_DB, "type",
			 s->config->type, "rel", "postgresql", "url", url);
}

/* A CHECKPOINT just before the snapshot leaves the clone almost no WAL to replay, which is
 * what makes a preview of a busy database fast. */
static int pg_quiesce(const ServiceRuntime *s, ServiceCommand *ret, BbxError *err)
{
	return pg_sql_command(s, "CHECKPOINT;", ret, err);
}

/* The version's own binaries first, for hooks and one-shots that call pg_dump and friends. */
static void pg_path(const ServiceRuntime *s, char *buf, size_t size)
{
	snprintf(buf, size, "/usr/lib/postgresql/%s/bin:%s", s->config->version,
		 SERVICE_DEFAULT_PATH);
}

const ServiceType service_postgresql = {
	.kind = CONFIG_SERVICE_POSTGRESQL,
	.name = "postgresql",
	.default_port = 5432,
	.stop_signal = SIGINT, /* "fast" shutdown: roll back clients, checkpoint, exit */
	.prepare = pg_prepare,
	.init_command = pg_init_command,
	.start_command = pg_start_command,
	.probe = pg_probe,
	.credentials_command = pg_credentials_command,
	.sql_command = pg_sql_command,
	.relationship = pg_relationship,
	.url = pg_url,
	.url_variable = "DATABASE_URL",
	.quiesce = pg_quiesce,
	.path = pg_path,
};
