/* SPDX-License-Identifier: MIT */
#include "policy.h"

#include <errno.h>
#include <string.h>

#include "parse.h"
#include "token.h"

int policy_authenticate(Core *c, RequestOrigin origin, uid_t peer_uid, const char *bearer,
			Principal *ret, BbxError *err)
{
	memset(ret, 0, sizeof(*ret));

	if (!bearer || !*bearer) {
		if (origin == ORIGIN_UNIX_SOCKET && peer_uid == 0) {
			ret->kind = PRINCIPAL_ROOT;
			snprintf(ret->name, sizeof(ret->name), "root");
			ret->verbs = VERB_ALL;
			return 0;
		}
		return bbx_error_set(err, -EACCES, BBX_UNAUTHORIZED, "no credentials");
	}
	/* A token on the unix socket means that token, never root. */
	return token_authenticate(c, bearer, ret, err);
}

static bool scope_matches(const Principal *p, const char *env)
{
	for (size_t i = 0; i < PRINCIPAL_MAX_SCOPES && p->scopes[i]; i++)
		if (glob_match(p->scopes[i], env))
			return true;
	return false;
}

bool policy_can_see_environment(Core *c, const Principal *p, const char *env)
{
	if (p->kind == PRINCIPAL_ROOT)
		return true;
	if (p->kind == PRINCIPAL_ANONYMOUS)
		return false;
	/* Whatever its scope says (a token minted before a config change, a row edited by
	 * hand), an agent never sees production. */
	if (p->kind == PRINCIPAL_AGENT && !strcmp(env, core_production_branch(c)))
		return false;
	return scope_matches(p, env);
}

PolicyDecision policy_authorize(Core *c, const Principal *p, uint32_t verb, const char *env)
{
	if (env && !policy_can_see_environment(c, p, env))
		return POLICY_INVISIBLE;
	if (verb && !(p->verbs & verb))
		return POLICY_FORBIDDEN;
	/* Whatever its row says, an agent never reviews, merges, reads the audit log or mints
	 * tokens (token.c refuses to mint such an agent token in the first place). */
	if (p->kind == PRINCIPAL_AGENT && (verb & (VERB_PROPOSAL_REVIEW | VERB_PROPOSAL_MERGE |
						   VERB_AUDIT_READ | VERB_TOKEN_ADMIN)))
		return POLICY_FORBIDDEN;
	return POLICY_ALLOW;
}
