/* SPDX-License-Identifier: MIT */
/*
 * Services of an environment (PostgreSQL, Redis, ...). Each type is one file
 * (service-<type>.c) filling a ServiceType; the environment code only talks to this
 * interface. Adding a type (mysql, memcached, ...) is: its ConfigServiceKind and data row in
 * src/config (config.h, config-service-types.c), a new service-<type>.c here, and its line
 * in service_types[] (service.c). service_types_check() (run by core_new and test-service)
 * says when the two tables disagree.
 *
 * A service's data lives in the environment's volume at VOLUME/services/NAME, seen inside
 * its sandbox at /srv/NAME; it runs as its environment's own service uid inside the
 * environment's network namespace on 127.0.0.1:port, reachable by the application under its
 * relationship names. Host-side files in data_host are written as owner_uid, the owner the
 * volume stores them as (for a preview its parent's, seen by the service as its own
 * through an idmapped bind).
 * Pure description plus small host-side file preparation: spawning is done by the caller.
 */
#pragma once

#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include "config.h"
#include "error.h"

typedef struct ServiceRuntime {
	const ConfigService *config; /* borrowed */
	const char *data_host;	     /* host path of VOLUME/services/NAME */
	uid_t owner_uid;	     /* what data_host's files are stored as (never 0) */
	gid_t owner_gid;
	char data_path[128]; /* "/srv/NAME" inside the sandbox */
	uint16_t port;
	const char *password; /* the application's credential for this environment */
} ServiceRuntime;

typedef struct ServiceCommand {
	char **argv;	  /* owned strv */
	char *stdin_data; /* owned, may be NULL */
} ServiceCommand;

void service_command_done(ServiceCommand *c);

typedef struct ServiceType {
	ConfigServiceKind kind;
	const char *name; /* "postgresql" */
	uint16_t default_port;
	int stop_signal; /* the signal for a fast, clean shutdown */
	/* Host side, before anything runs: config files in data_host. cloned: after a snapshot
	 * (drop replication/archiving, stale pid files). Called before every start. */
	int (*prepare)(const ServiceRuntime *s, bool fresh, bool cloned, BbxError *err);
	/* One-shot that initialises a fresh data directory; argv NULL when nothing to do. */
	int (*init_command)(const ServiceRuntime *s, ServiceCommand *ret, BbxError *err);
	int (*start_command)(const ServiceRuntime *s, ServiceCommand *ret, BbxError *err);
	/* 0 when the service accepts connections, -EAGAIN when not yet, else failure. */
	int (*probe)(const ServiceRuntime *s, int netns_fd, BbxError *err);
	/* One-shot run after a clone's first start to replace the credentials (may be NULL). */
	int (*credentials_command)(const ServiceRuntime *s, ServiceCommand *ret, BbxError *err);
	/* One-shot running sql (sanitize/validate); NULL for services without SQL. */
	int (*sql_command)(const ServiceRuntime *s, const char *sql, ServiceCommand *ret,
			   BbxError *err);
	/* Upsun-style relationship description (host is the relationship name). */
	json_t *(*relationship)(const ServiceRuntime *s, const char *rel_name);
	/* The application's connection URL with host as the host name, malloc'ed into *ret. */
	int (*url)(const ServiceRuntime *s, const char *host, char **ret);
	/* The variable the first relationship to this type sets to its url (DATABASE_URL), or
	 * NULL for none. */
	const char *url_variable;
	/* One-shot run next to the running service just before its volume is snapshotted, so
	 * the clone starts with little to recover (PostgreSQL's CHECKPOINT). argv NULL or the
	 * hook NULL: nothing to do. Best effort: a failure does not stop the snapshot. */
	int (*quiesce)(const ServiceRuntime *s, ServiceCommand *ret, BbxError *err);
	/* PATH for the service's processes (its binaries first); NULL: the default PATH. */
	void (*path)(const ServiceRuntime *s, char *buf, size_t size);
} ServiceType;

/* The PATH a service's process gets when its type names none. */
#define SERVICE_DEFAULT_PATH "/usr/local/bin:/usr/bin:/bin"

/* NULL for a kind without a type (never after service_types_check() passed). */
const ServiceType *service_type_for(ConfigServiceKind kind);
/* Core's types and config's rows agree: one per kind, same name, SQL alike. -EINVAL and a
 * message naming the first difference otherwise. */
int service_types_check(BbxError *err);
/* PATH=... for a service's processes into buf. */
void service_path_variable(const ServiceRuntime *s, char *buf, size_t size);
/* Random credential: 32 hex chars from libsodium. */
int service_generate_password(char ret[33]);

extern const ServiceType service_postgresql;
extern const ServiceType service_redis;
