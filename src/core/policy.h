/* SPDX-License-Identifier: MIT */
/*
 * Policy: who a request is (authentication) and what it may see and do (authorization).
 *
 * The rule that shapes every answer: a resource outside a principal's scope does not
 * exist for it. policy_authorize() says POLICY_INVISIBLE for it, and the edge answers
 * exactly as it does for a name that was never there. POLICY_FORBIDDEN (403) is only for
 * a verb on a resource the principal can already see.
 * Thread-safe.
 */
#pragma once

#include <stdbool.h>
#include <sys/types.h>

#include "core.h"
#include "principal.h"

typedef enum PolicyDecision {
	POLICY_ALLOW = 0,
	POLICY_INVISIBLE, /* answer as not found */
	POLICY_FORBIDDEN, /* answer 403 */
} PolicyDecision;

typedef enum RequestOrigin {
	ORIGIN_UNIX_SOCKET, /* peer credentials are known */
	ORIGIN_TCP,
} RequestOrigin;

/*
 * Authenticate from the bearer token (may be NULL) and the transport. With no token,
 * uid 0 on the unix socket is PRINCIPAL_ROOT; anything else without a valid token fails
 * with -EACCES and a reason for the audit record (never for the client).
 */
int policy_authenticate(Core *c, RequestOrigin origin, uid_t peer_uid, const char *bearer,
			Principal *ret, BbxError *err);

/* May the principal use verb on the environment named env (NULL: not environment-bound)? */
PolicyDecision policy_authorize(Core *c, const Principal *p, uint32_t verb, const char *env);

/* Can the principal see the environment at all (for filtering lists)? */
bool policy_can_see_environment(Core *c, const Principal *p, const char *env);
