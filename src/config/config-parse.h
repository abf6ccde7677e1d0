/* SPDX-License-Identifier: MIT */
/*
 * Internal to src/config: what the section parsers share. A Ctx collects the diagnostics of
 * one parse; the cfg_want_* accessors each report their own error (naming the key's path,
 * line and column) and return false on a bad value, so a parser reads a key in one line and
 * goes on to find every other error in the same file.
 *
 *  - config-parse.c: diagnostics, key paths and typed accessors;
 *  - config-applications.c: the applications section;
 *  - config-services.c: the services section (types from config-service-types.c);
 *  - config-environments.c: environments, sanitize/validate steps, egress;
 *  - config.c: the top level, loading a directory, lifetime and lookups.
 */
#pragma once

#include <jansson.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "config-yaml.h"
#include "config.h"
#include "macro.h"

/* Defaults: a preview gets less than an application in production by default. */
#define DEFAULT_APP_CPU 1000
#define DEFAULT_APP_MEMORY (512ULL << 20)
#define DEFAULT_SERVICE_CPU 500
#define DEFAULT_SERVICE_MEMORY (256ULL << 20)
#define DEFAULT_SERVICE_DISK (1ULL << 30)
#define DEFAULT_PREVIEW_CPU 500
#define DEFAULT_PREVIEW_MEMORY (256ULL << 20)
#define DEFAULT_PREVIEW_TTL (24 * 3600)
#define DEFAULT_BUDGET_CPU_SECONDS 3600
#define DEFAULT_BUDGET_MEMORY (1ULL << 30)
#define DEFAULT_BUDGET_DISK (2ULL << 30)
#define DEFAULT_BUDGET_WALL_TIME (24 * 3600)

#define PATH_MAX_LEN 256

typedef struct Ctx {
	const char *file;
	ConfigDiagnostics *diag;
	ProjectConfig *c;
	size_t errors;
	int r; /* -ENOMEM, sticky */
} Ctx;

/* Diagnostics at n (NULL: no position) for the key path. */
void cfg_err(Ctx *x, const YamlNode *n, const char *path, const char *fmt, ...) _printf_(4, 5);
void cfg_note(Ctx *x, const YamlNode *n, const char *path, const char *fmt, ...) _printf_(4, 5);
/* "parent.key" and "parent[i]" into buf (PATH_MAX_LEN bytes); returns buf. */
const char *cfg_join(char *buf, const char *parent, const char *key);
const char *cfg_join_index(char *buf, const char *parent, size_t i);
/* strdup that records -ENOMEM in x. */
char *cfg_strdup(Ctx *x, const char *s);

bool cfg_want_mapping(Ctx *x, const YamlNode *n, const char *path);
bool cfg_want_sequence(Ctx *x, const YamlNode *n, const char *path);
bool cfg_want_string(Ctx *x, const YamlNode *n, const char *path, char **ret);
bool cfg_want_scalar(Ctx *x, const YamlNode *n, const char *path);
bool cfg_want_uint(Ctx *x, const YamlNode *n, const char *path, uint64_t min, uint64_t max,
		   uint64_t *ret);
bool cfg_want_size(Ctx *x, const YamlNode *n, const char *path, uint64_t *ret);
bool cfg_want_duration(Ctx *x, const YamlNode *n, const char *path, uint64_t *ret);
bool cfg_want_cpu(Ctx *x, const YamlNode *n, const char *path, uint32_t *ret);
/* An error for each key of map not in allowed (NULL-terminated). */
void cfg_check_keys(Ctx *x, const YamlNode *map, const char *path, const char *const *allowed);
/* The value (or the key node) of key in map, NULL when absent. */
const YamlNode *cfg_get(const YamlNode *map, const char *key);
const YamlNode *cfg_get_key_node(const YamlNode *map, const char *key);
bool cfg_relative_path_ok(const char *s);
char *cfg_normalize_relative(Ctx *x, const char *s);
bool cfg_url_path_ok(const char *s);
void cfg_parse_resources(Ctx *x, const YamlNode *n, const char *path, ConfigResources *res);
/* The start of a named entry (an application, a service): the name k checked, the value n a
 * mapping with only keys (NULL-terminated). False when there is nothing more to read. */
bool cfg_named_mapping(Ctx *x, const YamlNode *k, const YamlNode *n, const char *path,
		       const char *what, const char *const *keys);

/* The sections. */
void cfg_parse_application(Ctx *x, const YamlNode *k, const YamlNode *n, ConfigApplication *app);
void cfg_parse_service(Ctx *x, const YamlNode *k, const YamlNode *n, ConfigService *svc);
void cfg_parse_environments(Ctx *x, const YamlNode *n);
void cfg_parse_steps(Ctx *x, const YamlNode *n, const char *path, ConfigStep **ret, size_t *ret_n,
		     bool validate);
void cfg_parse_egress_section(Ctx *x, const YamlNode *n);

/* A YAML mapping/sequence/scalar as JSON (service configuration). NULL on -ENOMEM. */
json_t *cfg_yaml_to_json(const YamlNode *n, unsigned depth);
/* "postgresql or redis": the service types config accepts (sql_only: those taking SQL). */
const char *cfg_service_type_names(char *buf, size_t size, bool sql_only);
/* v names a service defined under services that takes SQL; an error at path otherwise. */
void cfg_check_sql_service(Ctx *x, const YamlNode *v, const char *path);
