/* SPDX-License-Identifier: MIT */
/*
 * Production's config governs a preview (DESIGN.md section 2a): the branch may change code-level
 * keys and narrow policy, never widen it. docs/config.md has the table of who governs each key.
 */
#include "config.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "macro.h"
#include "parse.h"

typedef struct PolicyCtx {
	const ProjectConfig *prod;
	ProjectConfig *branch;
	ConfigDiagnostics *diag;
	int r;
} PolicyCtx;

static void refuse(PolicyCtx *x, const char *path, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

static void refuse(PolicyCtx *x, const char *path, const char *fmt, ...)
{
	char msg[512];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	if (x->r == 0)
		x->r = -EPERM;
	if (x->diag && config_diagnostics_add(x->diag, CONFIG_SEVERITY_ERROR, x->branch->file, 0, 0,
					      path, "%s", msg) < 0)
		x->r = -ENOMEM;
}

typedef enum Unit { UNIT_BYTES, UNIT_SECONDS, UNIT_CPU } Unit;

static const char *format_value(uint64_t v, Unit u, char *buf, size_t size)
{
	switch (u) {
	case UNIT_BYTES: return format_size(v, buf, size);
	case UNIT_SECONDS: return format_duration(v, buf, size);
	case UNIT_CPU: {
		/* millicpu as the config writes it: 500 -> "0.5 CPU", 2000 -> "2 CPU" */
		char frac[8] = "";
		if (v % 1000) {
			snprintf(frac, sizeof(frac), ".%03llu", (unsigned long long)(v % 1000));
			for (size_t n = strlen(frac); n > 1 && frac[n - 1] == '0'; n--)
				frac[n - 1] = '\0';
		}
		snprintf(buf, size, "%llu%s CPU", (unsigned long long)(v / 1000), frac);
		return buf;
	}
	}
	return "?";
}

/*
 * One governed number: a value the branch set above the ceiling is refused; one it left to
 * the default takes the ceiling's value when the default is above it (a default is not a
 * request to widen).
 */
static void limit_u64(PolicyCtx *x, const char *path, uint64_t *value, bool explicit,
		      uint64_t ceiling, Unit u)
{
	char a[64], b[64];

	if (*value <= ceiling)
		return;
	if (!explicit) {
		*value = ceiling;
		return;
	}
	refuse(x, path,
	       "the branch asks for %s, more than production's config allows (%s); a preview may "
	       "only narrow what production's config sets",
	       format_value(*value, u, a, sizeof(a)), format_value(ceiling, u, b, sizeof(b)));
}

static void limit_u32(PolicyCtx *x, const char *path, uint32_t *value, bool explicit,
		      uint32_t ceiling, Unit u)
{
	uint64_t v = *value;
	limit_u64(x, path, &v, explicit, ceiling, u);
	*value = (uint32_t)v;
}

static void limit_resources(PolicyCtx *x, const char *path, ConfigResources *res,
			    const ConfigResources *ceiling)
{
	char sub[256];

	snprintf(sub, sizeof(sub), "%s.cpu", path);
	limit_u32(x, sub, &res->cpu_millis, res->set & CONFIG_SET_CPU, ceiling->cpu_millis,
		  UNIT_CPU);
	snprintf(sub, sizeof(sub), "%s.memory", path);
	limit_u64(x, sub, &res->memory_bytes, res->set & CONFIG_SET_MEMORY, ceiling->memory_bytes,
		  UNIT_BYTES);
}

static void check_preview(PolicyCtx *x)
{
	const ProjectConfig *p = x->prod;
	ProjectConfig *c = x->branch;
	const ConfigBudget *pb = &p->preview_budget;
	ConfigBudget *b = &c->preview_budget;

	limit_resources(x, "environments.preview.profile", &c->preview_profile,
			&p->preview_profile);
	limit_u64(x, "environments.preview.ttl", &c->preview_ttl_sec, c->preview_ttl_set,
		  p->preview_ttl_sec, UNIT_SECONDS);
	limit_u64(x, "environments.preview.budget.cpu_seconds", &b->cpu_seconds,
		  b->set & CONFIG_SET_CPU_SECONDS, pb->cpu_seconds, UNIT_SECONDS);
	limit_u64(x, "environments.preview.budget.memory", &b->memory_bytes,
		  b->set & CONFIG_SET_MEMORY, pb->memory_bytes, UNIT_BYTES);
	limit_u64(x, "environments.preview.budget.disk", &b->disk_bytes, b->set & CONFIG_SET_DISK,
		  pb->disk_bytes, UNIT_BYTES);
	limit_u64(x, "environments.preview.budget.wall_time", &b->wall_time_sec,
		  b->set & CONFIG_SET_WALL_TIME, pb->wall_time_sec, UNIT_SECONDS);
}

/*
 * A service production has keeps production's resources and disk as its ceiling; a service
 * only the branch has is bounded by the largest production gives any service (by the preview
 * profile and the budget's disk when production has none).
 */
static void check_services(PolicyCtx *x)
{
	const ProjectConfig *p = x->prod;
	ConfigResources largest = { 0 };
	uint64_t largest_disk = 0;
	char path[256];

	for (size_t i = 0; i < p->n_services; i++) {
		const ConfigService *s = &p->services[i];
		if (s->resources.cpu_millis > largest.cpu_millis)
			largest.cpu_millis = s->resources.cpu_millis;
		if (s->resources.memory_bytes > largest.memory_bytes)
			largest.memory_bytes = s->resources.memory_bytes;
		if (s->disk_bytes > largest_disk)
			largest_disk = s->disk_bytes;
	}
	if (!p->n_services) {
		largest = p->preview_profile;
		largest_disk = p->preview_budget.disk_bytes;
	}
	for (size_t i = 0; i < x->branch->n_services; i++) {
		ConfigService *s = &x->branch->services[i];
		const ConfigService *ps = config_find_service(p, s->name);
		snprintf(path, sizeof(path), "services.%s.resources", s->name);
		limit_resources(x, path, &s->resources, ps ? &ps->resources : &largest);
		snprintf(path, sizeof(path), "services.%s.disk", s->name);
		limit_u64(x, path, &s->disk_bytes, s->disk_set, ps ? ps->disk_bytes : largest_disk,
			  UNIT_BYTES);
	}
}

/* Mount sources: only the kinds production's config uses (tmp is always allowed). */
static void check_mounts(PolicyCtx *x)
{
	bool allowed[3] = { [CONFIG_MOUNT_TMP] = true };
	char path[256];

	for (size_t a = 0; a < x->prod->n_applications; a++)
		for (size_t m = 0; m < x->prod->applications[a].n_mounts; m++)
			allowed[x->prod->applications[a].mounts[m].source] = true;
	for (size_t a = 0; a < x->branch->n_applications; a++) {
		const ConfigApplication *app = &x->branch->applications[a];
		for (size_t m = 0; m < app->n_mounts; m++) {
			const ConfigMount *mt = &app->mounts[m];
			if (allowed[mt->source])
				continue;
			snprintf(path, sizeof(path), "applications.%s.mounts.%s.source", app->name,
				 mt->path);
			refuse(x, path,
			       "'%s' mounts are not used by production's config, so a preview may "
			       "not add one",
			       config_mount_source_to_string(mt->source));
		}
	}
}

/* Egress: every rule of the branch must be one production's config allows. */
static void check_egress(PolicyCtx *x)
{
	char path[64];

	for (size_t i = 0; i < x->branch->n_egress; i++) {
		const ConfigEgressRule *e = &x->branch->egress[i];
		bool ok = false;
		for (size_t k = 0; !ok && k < x->prod->n_egress; k++) {
			const ConfigEgressRule *pe = &x->prod->egress[k];
			ok = !strcasecmp(pe->host, e->host) &&
			     (pe->port == 0 || pe->port == e->port);
		}
		if (ok)
			continue;
		snprintf(path, sizeof(path), "egress.allow[%zu]", i);
		if (e->port)
			refuse(x, path, "%s port %u is not allowed by production's config", e->host,
			       (unsigned)e->port);
		else
			refuse(x, path, "%s (any port) is not allowed by production's config",
			       e->host);
	}
}

int config_apply_production_policy(const ProjectConfig *production, ProjectConfig *preview,
				   ConfigDiagnostics *diag)
{
	PolicyCtx x = { .prod = production, .branch = preview, .diag = diag };

	if (!production || !preview)
		return -EINVAL;
	check_preview(&x);
	check_services(&x);
	check_mounts(&x);
	check_egress(&x);
	return x.r;
}
