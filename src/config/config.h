/* SPDX-License-Identifier: MIT */
/*
 * Project configuration: `.branchbox/config.yaml` (or an Upsun-style `.upsun/config.yaml`)
 * parsed with libfyaml into a ProjectConfig, validated strictly. Every problem is reported as
 * one ConfigDiagnostic "FILE:LINE:COL: key.path: message" with the position of the offending
 * node; parsing collects all of them (up to CONFIG_DIAG_MAX) instead of stopping at the first.
 *
 * Limits: input at most CONFIG_MAX_INPUT bytes of UTF-8, at most CONFIG_MAX_NODES YAML nodes
 * counted after alias expansion (so alias bombs fail fast), nesting at most 64 levels, one
 * YAML document per file. Anchors, aliases and "<<" merge keys work; top-level "x-*" keys are
 * ignored (a place for anchors). The schema is described in docs/config.md.
 *
 * Ownership: config_parse_buffer()/config_load_dir() hand a ProjectConfig to the caller, who
 * releases it with config_free(). Every string and array in it is owned by the ProjectConfig.
 * ConfigDiagnostics is caller-owned storage: config_diagnostics_init() before use,
 * config_diagnostics_done() after. config_to_json() returns a new reference.
 *
 * Errors: functions return 0 or a negative errno: -EINVAL when the configuration has errors
 * (the details are in the diagnostics), -ENOENT when a directory has no config file,
 * -ELOOP/-EXDEV/-EBADFD when the file is a symlink, leaves the directory or is not a regular
 * file, -EFBIG past the size limit, -ENOMEM. Every failure but -ENOMEM leaves at least one
 * error in the diagnostics when they were passed. Nothing here prints or exits.
 * Thread-safety: no global state; distinct objects may be used from distinct threads.
 */
#pragma once

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define CONFIG_MAX_INPUT (1024 * 1024)
#define CONFIG_MAX_NODES 10000
#define CONFIG_DIAG_MAX 50

/* ---- diagnostics ------------------------------------------------------------------------ */

typedef enum ConfigSeverity {
	CONFIG_SEVERITY_ERROR,
	CONFIG_SEVERITY_NOTE, /* informational (e.g. which of two config files was used) */
} ConfigSeverity;

typedef struct ConfigDiagnostic {
	ConfigSeverity severity;
	char *file;	 /* as given to the parser; never NULL */
	unsigned line;	 /* 1-based; 0 when the message is about the whole file */
	unsigned column; /* 1-based; 0 when unknown */
	char *path;	 /* dotted key path, e.g. "applications.web.type"; "" for the document */
	char *message;
} ConfigDiagnostic;

typedef struct ConfigDiagnostics {
	ConfigDiagnostic *items;
	size_t n_items;
	size_t n_errors;   /* items with CONFIG_SEVERITY_ERROR */
	size_t max_errors; /* 0 means CONFIG_DIAG_MAX */
	bool truncated;	   /* more errors were found than max_errors */
	char *file;	   /* the file last parsed (set by the parse functions); owned */
} ConfigDiagnostics;

void config_diagnostics_init(ConfigDiagnostics *diag);
void config_diagnostics_done(ConfigDiagnostics *diag);
/* Append one message. Returns 0, or -ENOMEM; past max_errors errors it sets truncated. */
int config_diagnostics_add(ConfigDiagnostics *diag, ConfigSeverity severity, const char *file,
			   unsigned line, unsigned column, const char *path, const char *fmt, ...)
	__attribute__((format(printf, 7, 8)));
/* "FILE:LINE:COL: path: message" (parts that are unknown are left out); caller frees. */
char *config_diagnostic_format(const ConfigDiagnostic *d);
/* {"file","line","column","path","message"} (+ "severity":"note" for notes). */
json_t *config_diagnostic_to_json(const ConfigDiagnostic *d);

/* ---- the configuration ------------------------------------------------------------------ */

typedef struct ConfigPosition {
	unsigned line, column; /* 1-based, 0 when synthesized from a default */
} ConfigPosition;

/* Which keys a file gave explicitly (the rest are defaults): a preview's config may only
 * narrow what production's config governs, and a default is not a request to widen. */
#define CONFIG_SET_CPU (1u << 0)
#define CONFIG_SET_MEMORY (1u << 1)
#define CONFIG_SET_DISK (1u << 2)
#define CONFIG_SET_TTL (1u << 3)
#define CONFIG_SET_CPU_SECONDS (1u << 4)
#define CONFIG_SET_WALL_TIME (1u << 5)

typedef struct ConfigResources {
	uint32_t cpu_millis; /* 0.5 CPU -> 500 */
	uint64_t memory_bytes;
	unsigned set; /* CONFIG_SET_CPU | CONFIG_SET_MEMORY */
} ConfigResources;

typedef struct ConfigRelationship {
	char *name;
	char *service;	/* a key of ProjectConfig.services */
	char *endpoint; /* NULL when the value named only the service */
} ConfigRelationship;

typedef enum ConfigMountSource {
	CONFIG_MOUNT_LOCAL,
	CONFIG_MOUNT_STORAGE,
	CONFIG_MOUNT_TMP,
} ConfigMountSource;

typedef struct ConfigMount {
	char *path; /* absolute path inside the application, e.g. "/uploads" */
	ConfigMountSource source;
	char *source_path; /* defaults to path without its leading '/' */
} ConfigMount;

typedef struct ConfigVariable {
	char *name;
	char *value; /* scalars are kept as their text: 1 -> "1", true -> "true" */
} ConfigVariable;

typedef struct ConfigApplication {
	char *name;
	char *source_root;     /* relative, normalized; "." by default */
	char *type;	       /* "python:3.11" */
	char *runtime;	       /* "python" */
	char *runtime_version; /* "3.11" */
	ConfigPosition type_pos;
	bool has_web;
	char *web_start;       /* required when has_web */
	uint16_t web_port;     /* the PORT given to the app; CONFIG_DEFAULT_WEB_PORT by default */
	char *web_healthcheck; /* "/" by default */
	char *hook_build, *hook_deploy, *hook_post_deploy; /* NULL when absent */
	ConfigRelationship *relationships;
	size_t n_relationships;
	ConfigMount *mounts;
	size_t n_mounts;
	ConfigVariable *env;
	size_t n_env;
	ConfigResources resources;
} ConfigApplication;

/* Adding a service type: a value here, a row in config_service_types[]
 * (config-service-types.c) and its ServiceType in src/core (service-TYPE.c, service.c). */
typedef enum ConfigServiceKind {
	CONFIG_SERVICE_POSTGRESQL,
	CONFIG_SERVICE_REDIS,
	_CONFIG_SERVICE_KIND_MAX,
} ConfigServiceKind;

/* What config knows of a service type: data only. How it runs is core's ServiceType, whose
 * table test-service checks against this one (same kinds, same names, SQL alike). */
typedef struct ConfigServiceType {
	ConfigServiceKind kind;
	const char *name;	     /* "postgresql", the part of `type` before the colon */
	const char *example_version; /* for messages: "15" */
	bool sql;		     /* sanitize and validate steps may send it SQL */
} ConfigServiceType;

/* Indexed by kind, _CONFIG_SERVICE_KIND_MAX rows. */
extern const ConfigServiceType config_service_types[];
/* NULL for _CONFIG_SERVICE_KIND_MAX (a type that did not parse). */
const ConfigServiceType *config_service_type(ConfigServiceKind kind);

typedef struct ConfigService {
	char *name;
	char *type; /* "postgresql:15" */
	ConfigServiceKind kind;
	char *version; /* "15" */
	uint64_t disk_bytes;
	bool disk_set;
	ConfigResources resources;
	json_t *configuration; /* a JSON object (empty when absent); owned */
} ConfigService;

typedef enum ConfigStepKind {
	CONFIG_STEP_COMMAND,
	CONFIG_STEP_HTTP,
	CONFIG_STEP_SQL,
} ConfigStepKind;

/* One sanitize or validate step. Fields that do not apply to its kind are NULL/0. */
typedef struct ConfigStep {
	ConfigStepKind kind;
	char *name;		/* optional in the file; "sanitize-N"/"validate-N" by default */
	uint64_t timeout_sec;	/* CONFIG_DEFAULT_STEP_TIMEOUT by default */
	char *command;		/* COMMAND */
	char *service;		/* COMMAND (optional: run next to that service), SQL (required) */
	char *sql;		/* SQL: the statement (sanitize) or query (validate) */
	char *http_path;	/* HTTP */
	unsigned expect_status; /* HTTP, 200 by default */
	char *expect_body_contains; /* HTTP, optional */
	bool has_expect_rows;	    /* SQL validate: expect_rows given */
	uint64_t expect_rows;
	char *expect_value; /* SQL validate: optional */
} ConfigStep;

typedef struct ConfigEgressRule {
	char *host;    /* DNS name or IP literal (IPv6 without brackets) */
	uint16_t port; /* 0: any port */
} ConfigEgressRule;

typedef struct ConfigBudget {
	uint64_t cpu_seconds;
	uint64_t memory_bytes;
	uint64_t disk_bytes;
	uint64_t wall_time_sec;
	unsigned set; /* CONFIG_SET_CPU_SECONDS | _MEMORY | _DISK | _WALL_TIME */
} ConfigBudget;

typedef struct ProjectConfig {
	char *file; /* the file name it was parsed from */
	ConfigApplication *applications;
	size_t n_applications;
	ConfigService *services;
	size_t n_services;
	char *production_branch;
	ConfigResources preview_profile;
	uint64_t preview_ttl_sec;
	bool preview_ttl_set;
	ConfigBudget preview_budget;
	ConfigStep *sanitize;
	size_t n_sanitize;
	ConfigStep *validate;
	size_t n_validate;
	ConfigEgressRule *egress;
	size_t n_egress;
} ProjectConfig;

#define CONFIG_DEFAULT_WEB_PORT 8000
#define CONFIG_DEFAULT_STEP_TIMEOUT 300
#define CONFIG_DEFAULT_PRODUCTION_BRANCH "main"

/*
 * Parse a config from memory. filename is used in messages and for ProjectConfig.file (e.g.
 * ".branchbox/config.yaml" read at a git commit). On error, *ret is untouched and diag holds
 * every problem found. diag may be NULL. data need not be NUL-terminated.
 */
int config_parse_buffer(const char *data, size_t size, const char *filename, ProjectConfig **ret,
			ConfigDiagnostics *diag);
/*
 * Find and parse dir/.branchbox/config.yaml, or dir/.upsun/config.yaml. When both exist the
 * .branchbox one wins and a note says so. The chosen path ("DIR/.branchbox/config.yaml") is
 * ProjectConfig.file and diag->file (also on a parse error). -ENOENT when neither exists.
 */
int config_load_dir(const char *dir, ProjectConfig **ret, ConfigDiagnostics *diag);
void config_free(ProjectConfig *c);
static inline void config_freep(ProjectConfig **c)
{
	if (*c)
		config_free(*c);
}

/* Normalized JSON: every default filled in, sizes in bytes, durations in seconds, cpu as a
 * number of CPUs. NULL on -ENOMEM. */
json_t *config_to_json(const ProjectConfig *c);

const ConfigApplication *config_find_application(const ProjectConfig *c, const char *name);
const ConfigService *config_find_service(const ProjectConfig *c, const char *name);
const char *config_service_kind_to_string(ConfigServiceKind k);
const char *config_mount_source_to_string(ConfigMountSource s);

/*
 * Production's config governs a preview (DESIGN.md 2a). Check the preview's config against
 * production's and narrow it in place: a governed value the preview's config sets above
 * production's (preview profile, TTL, budget, service resources and disk, egress rules, mount
 * source kinds) is an error in diag naming the key and both values; a governed value the
 * preview's config leaves to its default is lowered to production's when the default is
 * higher. sanitize and validate are not read from a preview's config at all: the caller takes
 * them from production's. Returns 0, -EPERM when something widens (details in diag),
 * -ENOMEM.
 */
int config_apply_production_policy(const ProjectConfig *production, ProjectConfig *preview,
				   ConfigDiagnostics *diag);

/*
 * Check that each application's runtime is installed under root ("/" normally; tests pass a
 * fake tree): python:3.11 needs ROOT/usr/bin/python3.11, and so on. Each missing runtime adds
 * an error to diag naming what the host does have. Returns 0 when all are there, -ENOENT when
 * one is missing, -ENOMEM.
 */
int config_check_runtimes(const ProjectConfig *c, const char *root, ConfigDiagnostics *diag);
