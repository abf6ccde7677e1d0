/* SPDX-License-Identifier: MIT */
#include "config.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/openat2.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "config-parse.h"
#include "config-yaml.h"
#include "file-util.h"
#include "macro.h"
#include "parse.h"

/* ---- top level ------------------------------------------------------------------------- */

static void parse_named(Ctx *x, const YamlNode *n, const char *path, bool services)
{
	ProjectConfig *c = x->c;
	size_t count;

	if (!cfg_want_mapping(x, n, path))
		return;
	count = n->n_children / 2;
	if (services) {
		c->services = calloc(count + 1, sizeof(ConfigService));
		if (!c->services) {
			x->r = -ENOMEM;
			return;
		}
	} else {
		c->applications = calloc(count + 1, sizeof(ConfigApplication));
		if (!c->applications) {
			x->r = -ENOMEM;
			return;
		}
	}
	for (size_t i = 0; i + 1 < n->n_children; i += 2) {
		if (services)
			cfg_parse_service(x, n->children[i], n->children[i + 1],
					  &c->services[c->n_services++]);
		else
			cfg_parse_application(x, n->children[i], n->children[i + 1],
					      &c->applications[c->n_applications++]);
	}
}

/* Relationships may name services defined after the application: checked once all are in. */
static void check_relationships(Ctx *x, const YamlNode *root)
{
	const YamlNode *apps = cfg_get(root, "applications");
	char path[PATH_MAX_LEN];

	if (!apps || apps->kind != YAML_MAPPING)
		return;
	for (size_t i = 0; i < x->c->n_applications; i++) {
		const ConfigApplication *app = &x->c->applications[i];
		const YamlNode *an = cfg_get(apps, app->name), *rels;
		if (!an || an->kind != YAML_MAPPING)
			continue;
		rels = cfg_get(an, "relationships");
		if (!rels || rels->kind != YAML_MAPPING)
			continue;
		for (size_t j = 0; j < app->n_relationships; j++) {
			const ConfigRelationship *rel = &app->relationships[j];
			const YamlNode *v, *k;
			if (!rel->service || config_find_service(x->c, rel->service))
				continue;
			k = cfg_get_key_node(rels, rel->name);
			v = cfg_get(rels, rel->name);
			snprintf(path, sizeof(path), "applications.%s.relationships.%s", app->name,
				 rel->name);
			cfg_err(x, v ? v : k, path, "service '%.64s' is not defined under services",
				rel->service);
		}
	}
}

static int config_build(Ctx *x, const YamlNode *root)
{
	static const char *const keys[] = { "applications", "services", "environments", "sanitize",
					    "validate",	    "egress",	"routes",	NULL };
	ProjectConfig *c = x->c;
	const YamlNode *v;

	c->production_branch = cfg_strdup(x, CONFIG_DEFAULT_PRODUCTION_BRANCH);
	c->preview_profile = (ConfigResources){ DEFAULT_PREVIEW_CPU, DEFAULT_PREVIEW_MEMORY };
	c->preview_ttl_sec = DEFAULT_PREVIEW_TTL;
	c->preview_budget = (ConfigBudget){ DEFAULT_BUDGET_CPU_SECONDS, DEFAULT_BUDGET_MEMORY,
					    DEFAULT_BUDGET_DISK, DEFAULT_BUDGET_WALL_TIME };
	if (!root || yaml_node_is_null(root)) {
		cfg_err(x, root, "applications", "missing required key (the file is empty)");
		return x->r;
	}
	if (!cfg_want_mapping(x, root, ""))
		return x->r;
	cfg_check_keys(x, root, "", keys);

	/* Services first so that steps can check the services they name. */
	if ((v = cfg_get(root, "services")))
		parse_named(x, v, "services", true);
	if ((v = cfg_get(root, "applications")))
		parse_named(x, v, "applications", false);
	else
		cfg_err(x, root, "applications", "missing required key");
	if (c->n_applications == 0 && v && v->kind == YAML_MAPPING)
		cfg_err(x, v, "applications", "at least one application is required");
	check_relationships(x, root);
	if ((v = cfg_get(root, "environments")))
		cfg_parse_environments(x, v);
	if ((v = cfg_get(root, "sanitize")))
		cfg_parse_steps(x, v, "sanitize", &c->sanitize, &c->n_sanitize, false);
	if ((v = cfg_get(root, "validate")))
		cfg_parse_steps(x, v, "validate", &c->validate, &c->n_validate, true);
	if ((v = cfg_get(root, "egress")))
		cfg_parse_egress_section(x, v);
	/* Checked and governed (config-policy.c), but nothing acts on them yet: say so. */
	if ((v = cfg_get_key_node(root, "egress")))
		cfg_note(
			x, v, "egress",
			"checked, but not enforced yet: environments have loopback only, no egress "
			"proxy runs");
	if ((v = cfg_get_key_node(root, "routes")))
		cfg_note(x, v, "routes",
			 "ignored: previews are reached through the branchbox preview proxy");
	return x->r;
}

static int cmp_diagnostic(const void *a, const void *b)
{
	const ConfigDiagnostic *x = a, *y = b;

	if (x->line != y->line)
		return x->line < y->line ? -1 : 1;
	if (x->column != y->column)
		return x->column < y->column ? -1 : 1;
	return 0;
}

int config_parse_buffer(const char *data, size_t size, const char *filename, ProjectConfig **ret,
			ConfigDiagnostics *diag)
{
	_cleanup_(yaml_document_freep) YamlDocument *doc = NULL;
	_cleanup_(config_freep) ProjectConfig *c = NULL;
	ConfigDiagnostics local;
	Ctx x;
	size_t before, first;
	int r;

	if (!filename)
		filename = ".branchbox/config.yaml";
	if (!diag) {
		config_diagnostics_init(&local);
		r = config_parse_buffer(data, size, filename, ret, &local);
		config_diagnostics_done(&local);
		return r;
	}
	free(diag->file);
	diag->file = strdup(filename);
	if (!diag->file)
		return -ENOMEM;
	before = diag->n_errors;
	first = diag->n_items;
	if (size > CONFIG_MAX_INPUT) {
		r = config_diagnostics_add(diag, CONFIG_SEVERITY_ERROR, filename, 0, 0, "",
					   "file too large: %zu bytes, the limit is %d bytes", size,
					   CONFIG_MAX_INPUT);
		return r < 0 ? r : -EFBIG;
	}
	r = yaml_document_parse(data, size, filename, &doc, diag);
	if (r < 0)
		return r;

	c = calloc(1, sizeof(*c));
	if (!c)
		return -ENOMEM;
	c->file = strdup(filename);
	if (!c->file)
		return -ENOMEM;
	x = (Ctx){ .file = filename, .diag = diag, .c = c };
	r = config_build(&x, doc->root);
	if (r < 0)
		return r;
	/* Report in file order, whatever order the sections were checked in. */
	if (diag->n_items > first)
		qsort(diag->items + first, diag->n_items - first, sizeof(ConfigDiagnostic),
		      cmp_diagnostic);
	if (x.errors > 0 || diag->n_errors > before)
		return -EINVAL;
	*ret = TAKE_PTR(c);
	return 0;
}

/*
 * Open dir/rel for reading without leaving dir: the project tree may be written by an agent,
 * and a config.yaml that is a symlink to /etc/shadow must not be read (its lines would come
 * back quoted in error messages). -ENOENT when absent, -ELOOP for a symlink on the way,
 * -EBADFD when it is not a regular file.
 */
static int open_beneath(int dirfd, const char *rel)
{
	struct open_how how = {
		.flags = O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK,
		.resolve = RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS | RESOLVE_NO_MAGICLINKS,
	};
	_cleanup_close_ int fd = -EBADF;
	struct stat st;

	fd = (int)syscall(SYS_openat2, dirfd, rel, &how, sizeof(how));
	if (fd < 0 && errno == ENOSYS) {
		/* No openat2 (valgrind, kernels before 5.6): rel is "DIR/FILE", so refusing a
		 * symlink at each of its two components is the same guarantee. */
		_cleanup_free_ char *first = strndup(rel, strcspn(rel, "/"));
		_cleanup_close_ int sub = -EBADF;
		if (!first)
			return -ENOMEM;
		sub = openat(dirfd, first, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
		if (sub < 0) {
			struct stat lst;
			if (errno == ENOTDIR &&
			    fstatat(dirfd, first, &lst, AT_SYMLINK_NOFOLLOW) == 0 &&
			    S_ISLNK(lst.st_mode))
				return -ELOOP;
			return negative_errno();
		}
		fd = openat(sub, rel + strlen(first) + 1, how.flags | O_NOFOLLOW);
	}
	if (fd < 0)
		return negative_errno();
	if (fstat(fd, &st) < 0)
		return negative_errno();
	if (!S_ISREG(st.st_mode))
		return -EBADFD;
	return TAKE_FD(fd);
}

static int load_error(ConfigDiagnostics *diag, const char *file, int code, const char *fmt, ...)
	_printf_(4, 5);
static int load_error(ConfigDiagnostics *diag, const char *file, int code, const char *fmt, ...)
{
	char msg[512];
	va_list ap;
	int r;

	if (!diag)
		return code;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	free(diag->file);
	diag->file = strdup(file);
	if (!diag->file)
		return -ENOMEM;
	r = config_diagnostics_add(diag, CONFIG_SEVERITY_ERROR, file, 0, 0, "", "%s", msg);
	return r < 0 ? r : code;
}

static const char *open_error(int r)
{
	switch (r) {
	case -ELOOP: return "refusing to follow a symlink";
	case -EXDEV: return "refusing a path that leaves the project directory";
	case -EBADFD: return "not a regular file";
	default: return strerror(-r);
	}
}

int config_load_dir(const char *dir, ProjectConfig **ret, ConfigDiagnostics *diag)
{
	_cleanup_free_ char *bbx = NULL, *upsun = NULL, *data = NULL;
	_cleanup_close_ int dfd = -EBADF, fd_bbx = -EBADF, fd_upsun = -EBADF;
	const char *chosen;
	size_t size = 0;
	int r, fd;

	if (asprintf(&bbx, "%s/.branchbox/config.yaml", dir) < 0) {
		bbx = NULL;
		return -ENOMEM;
	}
	if (asprintf(&upsun, "%s/.upsun/config.yaml", dir) < 0) {
		upsun = NULL;
		return -ENOMEM;
	}
	dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (dfd < 0) {
		r = negative_errno();
		return load_error(diag, bbx, r, "cannot open project directory %s: %s", dir,
				  strerror(-r));
	}
	fd_bbx = open_beneath(dfd, ".branchbox/config.yaml");
	fd_upsun = open_beneath(dfd, ".upsun/config.yaml");
	if (fd_bbx == -ENOENT && fd_upsun == -ENOENT)
		return load_error(diag, bbx, -ENOENT,
				  "no config file: neither .branchbox/config.yaml nor "
				  ".upsun/config.yaml exists in %s",
				  dir);
	/* Anything at .branchbox/config.yaml, even unreadable, wins: never fall back silently. */
	if (fd_bbx != -ENOENT) {
		chosen = bbx;
		fd = fd_bbx;
	} else {
		chosen = upsun;
		fd = fd_upsun;
	}
	if (fd < 0)
		return load_error(diag, chosen, fd, "%s", open_error(fd));
	if (fd_bbx >= 0 && fd_upsun != -ENOENT && diag) {
		r = config_diagnostics_add(diag, CONFIG_SEVERITY_NOTE, bbx, 0, 0, "",
					   "both .branchbox/config.yaml and .upsun/config.yaml "
					   "exist; using .branchbox/config.yaml");
		if (r < 0)
			return r;
	}
	r = read_full_fd(fd, CONFIG_MAX_INPUT, &data, &size);
	if (r == -EFBIG)
		return load_error(diag, chosen, -EFBIG, "file too large: the limit is %d bytes",
				  CONFIG_MAX_INPUT);
	if (r < 0)
		return load_error(diag, chosen, r, "cannot read: %s", strerror(-r));
	return config_parse_buffer(data, size, chosen, ret, diag);
}

/* ---- lifetime and lookups -------------------------------------------------------------- */

static void step_done(ConfigStep *st)
{
	free(st->name);
	free(st->command);
	free(st->service);
	free(st->sql);
	free(st->http_path);
	free(st->expect_body_contains);
	free(st->expect_value);
}

void config_free(ProjectConfig *c)
{
	if (!c)
		return;
	for (size_t i = 0; i < c->n_applications; i++) {
		ConfigApplication *a = &c->applications[i];
		free(a->name);
		free(a->source_root);
		free(a->type);
		free(a->runtime);
		free(a->runtime_version);
		free(a->web_start);
		free(a->web_healthcheck);
		free(a->hook_build);
		free(a->hook_deploy);
		free(a->hook_post_deploy);
		for (size_t j = 0; j < a->n_relationships; j++) {
			free(a->relationships[j].name);
			free(a->relationships[j].service);
			free(a->relationships[j].endpoint);
		}
		free(a->relationships);
		for (size_t j = 0; j < a->n_mounts; j++) {
			free(a->mounts[j].path);
			free(a->mounts[j].source_path);
		}
		free(a->mounts);
		for (size_t j = 0; j < a->n_env; j++) {
			free(a->env[j].name);
			free(a->env[j].value);
		}
		free(a->env);
	}
	free(c->applications);
	for (size_t i = 0; i < c->n_services; i++) {
		free(c->services[i].name);
		free(c->services[i].type);
		free(c->services[i].version);
		json_decref(c->services[i].configuration);
	}
	free(c->services);
	for (size_t i = 0; i < c->n_sanitize; i++)
		step_done(&c->sanitize[i]);
	free(c->sanitize);
	for (size_t i = 0; i < c->n_validate; i++)
		step_done(&c->validate[i]);
	free(c->validate);
	for (size_t i = 0; i < c->n_egress; i++)
		free(c->egress[i].host);
	free(c->egress);
	free(c->production_branch);
	free(c->file);
	free(c);
}

const ConfigApplication *config_find_application(const ProjectConfig *c, const char *name)
{
	for (size_t i = 0; c && name && i < c->n_applications; i++)
		if (c->applications[i].name && !strcmp(c->applications[i].name, name))
			return &c->applications[i];
	return NULL;
}

const ConfigService *config_find_service(const ProjectConfig *c, const char *name)
{
	for (size_t i = 0; c && name && i < c->n_services; i++)
		if (c->services[i].name && !strcmp(c->services[i].name, name))
			return &c->services[i];
	return NULL;
}

const char *config_mount_source_to_string(ConfigMountSource s)
{
	switch (s) {
	case CONFIG_MOUNT_LOCAL: return "local";
	case CONFIG_MOUNT_STORAGE: return "storage";
	case CONFIG_MOUNT_TMP: return "tmp";
	}
	return "unknown";
}
