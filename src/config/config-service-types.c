/* SPDX-License-Identifier: MIT */
/*
 * The service types a config may name, as data: the parser matches `type: NAME:VERSION`
 * against these names and checks sql steps against `sql`. A new type is one row here, its
 * enum value in config.h, and its ServiceType in src/core.
 */
#include "config.h"

#include "macro.h"

/* clang-format off */
const ConfigServiceType config_service_types[] = {
	[CONFIG_SERVICE_POSTGRESQL] = { CONFIG_SERVICE_POSTGRESQL, "postgresql", "15", true },
	[CONFIG_SERVICE_REDIS]      = { CONFIG_SERVICE_REDIS,      "redis",      "7",  false },
};
/* clang-format on */

_Static_assert(ELEMENTSOF(config_service_types) == _CONFIG_SERVICE_KIND_MAX,
	       "one row in config_service_types[] per ConfigServiceKind");

const ConfigServiceType *config_service_type(ConfigServiceKind kind)
{
	if ((unsigned)kind >= _CONFIG_SERVICE_KIND_MAX || !config_service_types[kind].name)
		return NULL;
	return &config_service_types[kind];
}

const char *config_service_kind_to_string(ConfigServiceKind k)
{
	const ConfigServiceType *t = config_service_type(k);
	return t ? t->name : "unknown";
}
