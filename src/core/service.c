/* SPDX-License-Identifier: MIT */
#include "service.h"

#include <errno.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "macro.h"

/* One line per type, indexed by kind like config_service_types[]. */
static const ServiceType *const service_types[] = {
	[CONFIG_SERVICE_POSTGRESQL] = &service_postgresql,
	[CONFIG_SERVICE_REDIS] = &service_redis,
};

_Static_assert(ELEMENTSOF(service_types) == _CONFIG_SERVICE_KIND_MAX,
	       "one ServiceType in service_types[] per ConfigServiceKind");

const ServiceType *service_type_for(ConfigServiceKind kind)
{
	if ((unsigned)kind >= ELEMENTSOF(service_types))
		return NULL;
	return service_types[kind];
}

int service_types_check(BbxError *err)
{
	for (size_t k = 0; k < _CONFIG_SERVICE_KIND_MAX; k++) {
		const ServiceType *t = service_types[k];
		const ConfigServiceType *c = config_service_type((ConfigServiceKind)k);
		if (!t || !c)
			return bbx_error_set(
				err, -EINVAL, BBX_INTERNAL, "service kind %zu: %s has no row", k,
				!t ? "core's service_types[]" : "config_service_types[]");
		if (t->kind != (ConfigServiceKind)k || c->kind != (ConfigServiceKind)k)
			return bbx_error_set(
				err, -EINVAL, BBX_INTERNAL,
				"service kind %zu: a row of another kind stands at its "
				"index",
				k);
		if (!t->name || strcmp(t->name, c->name) != 0)
			return bbx_error_set(err, -EINVAL, BBX_INTERNAL,
					     "service kind %zu: core calls it %s, config %s", k,
					     t->name ? t->name : "(null)", c->name);
		if (!!t->sql_command != c->sql)
			return bbx_error_set(err, -EINVAL, BBX_INTERNAL,
					     "service type %s: config says it %s SQL, core's type "
					     "%s a sql_command",
					     c->name, c->sql ? "takes" : "takes no",
					     t->sql_command ? "has" : "has no");
		if (!t->prepare || !t->start_command || !t->probe || !t->relationship || !t->url)
			return bbx_error_set(err, -EINVAL, BBX_INTERNAL,
					     "service type %s: a required hook is missing",
					     c->name);
	}
	return 0;
}

void service_path_variable(const ServiceRuntime *s, char *buf, size_t size)
{
	const ServiceType *t = service_type_for(s->config->kind);
	char path[512];

	if (t && t->path)
		t->path(s, path, sizeof(path));
	else
		snprintf(path, sizeof(path), "%s", SERVICE_DEFAULT_PATH);
	snprintf(buf, size, "PATH=%s", path);
}

void service_command_done(ServiceCommand *c)
{
	strv_free(c->argv);
	free(c->stdin_data);
	memset(c, 0, sizeof(*c));
}

int service_generate_password(char ret[33])
{
	unsigned char b[16];
	if (sodium_init() < 0)
		return -EIO;
	randombytes_buf(b, sizeof(b));
	sodium_bin2hex(ret, 33, b, sizeof(b));
	sodium_memzero(b, sizeof(b));
	return 0;
}
