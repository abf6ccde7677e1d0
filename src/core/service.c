/* SPDX-License-Identifier: MIT */
#include "service.h"

#include <sodium.h>
#include <stdlib.h>
#include <string.h>

#include "macro.h"

static const ServiceType *const service_types[] = {
	&service_postgresql,
	&service_redis,
};

const ServiceType *service_type_for(ConfigServiceKind kind)
{
	for (size_t i = 0; i < ELEMENTSOF(service_types); i++)
		if (service_types[i]->kind == kind)
			return service_types[i];
	return NULL;
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
