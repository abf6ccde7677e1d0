/* SPDX-License-Identifier: MIT */
#include "ceilings.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "parse.h"

static uint64_t add_sat(uint64_t a, uint64_t b)
{
	return a + b < a ? UINT64_MAX : a + b;
}

/* Sum of limits where 0 (unbounded) absorbs: the sum of something unbounded is unbounded. */
static void limits_add(CeilingLimits *sum, const CeilingLimits *l, bool *unbounded)
{
	unbounded[0] |= l->memory_bytes == 0;
	unbounded[1] |= l->pids == 0;
	unbounded[2] |= l->cpu_millis == 0;
	sum->memory_bytes = add_sat(sum->memory_bytes, l->memory_bytes);
	sum->pids = add_sat(sum->pids, l->pids);
	uint64_t cpu = (uint64_t)sum->cpu_millis + l->cpu_millis;
	sum->cpu_millis = cpu > UINT32_MAX ? UINT32_MAX : (uint32_t)cpu;
}

static void limits_max(CeilingLimits *m, const CeilingLimits *l)
{
	if (l->memory_bytes > m->memory_bytes)
		m->memory_bytes = l->memory_bytes;
	if (l->pids > m->pids)
		m->pids = l->pids;
	if (l->cpu_millis > m->cpu_millis)
		m->cpu_millis = l->cpu_millis;
}

void ceilings_service(const ConfigService *s, CeilingLimits *ret)
{
	*ret = (CeilingLimits){ .memory_bytes = s->resources.memory_bytes,
				.pids = CEILING_SERVICE_PIDS,
				.cpu_millis = s->resources.cpu_millis };
}

void ceilings_application(const ProjectConfig *c, const ConfigApplication *app, bool preview,
			  CeilingLimits *ret)
{
	/* A preview's processes get the preview profile (already within production's). */
	const ConfigResources *res = preview ? &c->preview_profile : &app->resources;
	*ret = (CeilingLimits){ .memory_bytes = res->memory_bytes,
				.pids = CEILING_APP_PIDS,
				.cpu_millis = res->cpu_millis };
}

void ceilings_environment(const ProjectConfig *c, bool preview, CeilingLimits *ret)
{
	CeilingLimits sum = { 0 }, one, app_shot = { 0 }, service_shot = { 0 };
	bool unbounded[3] = { false, false, false };

	for (size_t i = 0; i < c->n_services; i++) {
		ceilings_service(&c->services[i], &one);
		limits_add(&sum, &one, unbounded);
		limits_max(&service_shot, &one);
	}
	for (size_t i = 0; i < c->n_applications; i++) {
		ceilings_application(c, &c->applications[i], preview, &one);
		if (c->applications[i].has_web)
			limits_add(&sum, &one, unbounded);
		limits_max(&app_shot, &one);
		/* A one-shot of an unbounded application is unbounded too. */
		unbounded[0] |= one.memory_bytes == 0;
		unbounded[2] |= one.cpu_millis == 0;
	}
	bool none[3] = { false, false, false };
	limits_add(&sum, &app_shot, none);
	limits_add(&sum, &service_shot, none);
	if (unbounded[0])
		sum.memory_bytes = 0;
	if (unbounded[1])
		sum.pids = 0;
	if (unbounded[2])
		sum.cpu_millis = 0;
	*ret = sum;
}

uint64_t ceilings_preview_disk(const ProjectConfig *c)
{
	uint64_t sum = 0;
	for (size_t i = 0; i < c->n_services; i++)
		sum = add_sat(sum, c->services[i].disk_bytes);
	return c->n_services ? sum : c->preview_budget.disk_bytes;
}

int pool_reserve_parse(const char *s, PoolReserve *ret)
{
	size_t n = s ? strlen(s) : 0;
	if (n == 0)
		return -EINVAL;
	if (s[n - 1] == '%') {
		char num[8];
		uint32_t pct;
		if (n - 1 == 0 || n - 1 >= sizeof(num))
			return -EINVAL;
		memcpy(num, s, n - 1);
		num[n - 1] = '\0';
		if (parse_uint32(num, &pct) < 0 || pct > 90)
			return -EINVAL;
		*ret = pct ? (PoolReserve){ .percent = pct } : (PoolReserve){ 0 };
		return 0;
	}
	uint64_t bytes;
	if (!strcmp(s, "0"))
		bytes = 0;
	else if (parse_size(s, &bytes) < 0)
		return -EINVAL;
	*ret = (PoolReserve){ .bytes = bytes };
	return 0;
}

uint64_t pool_reserve_bytes(const PoolReserve *r, uint64_t pool_size)
{
	if (r->percent)
		return pool_size / 100 * r->percent + pool_size % 100 * r->percent / 100;
	return r->bytes;
}

const char *pool_reserve_format(const PoolReserve *r, char *buf, size_t size)
{
	if (r->percent)
		snprintf(buf, size, "%u%%", r->percent);
	else
		format_size(r->bytes, buf, size);
	return buf;
}

int ceilings_admit_preview(const PreviewAdmission *a, BbxError *err)
{
	if (a->max_previews && a->previews >= a->max_previews)
		return bbx_error_set(err, -EDQUOT, BBX_LIMIT_REACHED,
				     "%zu previews exist, the most this daemon allows (serve "
				     "--max-previews %zu): destroy one first",
				     a->previews, a->max_previews);
	if (a->token_id && a->max_per_token && a->token_previews >= a->max_per_token)
		return bbx_error_set(err, -EDQUOT, BBX_LIMIT_REACHED,
				     "token %s (%s) has %zu previews, the most one token may have "
				     "(serve --max-previews-per-token %zu): destroy one first",
				     a->token_id, a->principal ? a->principal : "?",
				     a->token_previews, a->max_per_token);
	uint64_t reserve = pool_reserve_bytes(&a->reserve, a->pool_size);
	uint64_t needed = add_sat(add_sat(a->promised_bytes, a->disk_bytes), reserve);
	if (needed > a->pool_free) {
		char r1[32], r2[32], f[32], p[32], d[32];
		return bbx_error_set(
			err, -EDQUOT, BBX_LIMIT_REACHED,
			"the pool keeps %s free for production (serve --pool-reserve "
			"%s): it has %s free, previews may still write %s, and this one "
			"may write %s%s",
			format_size(reserve, r1, sizeof(r1)),
			pool_reserve_format(&a->reserve, r2, sizeof(r2)),
			format_size(a->pool_free, f, sizeof(f)),
			format_size(a->promised_bytes, p, sizeof(p)),
			format_size(a->disk_bytes, d, sizeof(d)),
			a->disk_enforced ? "" : " (not enforced by this pool's driver)");
	}
	return 0;
}
