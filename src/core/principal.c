/* SPDX-License-Identifier: MIT */
#include "principal.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "strbuf.h"

static const struct {
	uint32_t bit;
	const char *name;
} verb_names[] = {
	{ VERB_ENV_READ, "env:read" },
	{ VERB_ENV_CREATE, "env:create" },
	{ VERB_ENV_EXEC, "env:exec" },
	{ VERB_ENV_WRITE, "env:write" },
	{ VERB_ENV_DESTROY, "env:destroy" },
	{ VERB_PROPOSAL_SUBMIT, "proposal:submit" },
	{ VERB_PROPOSAL_REVIEW, "proposal:review" },
	{ VERB_PROPOSAL_MERGE, "proposal:merge" },
	{ VERB_AUDIT_READ, "audit:read" },
	{ VERB_TOKEN_ADMIN, "token:admin" },
};

void principal_done(Principal *p)
{
	for (size_t i = 0; i < PRINCIPAL_MAX_SCOPES && p->scopes[i]; i++)
		free(p->scopes[i]);
	memset(p, 0, sizeof(*p));
}

int principal_copy(Principal *dst, const Principal *src)
{
	*dst = *src;
	memset(dst->scopes, 0, sizeof(dst->scopes));
	for (size_t i = 0; i < PRINCIPAL_MAX_SCOPES && src->scopes[i]; i++)
		if (!(dst->scopes[i] = strdup(src->scopes[i]))) {
			principal_done(dst);
			return -ENOMEM;
		}
	return 0;
}

const char *principal_kind_to_string(PrincipalKind k)
{
	switch (k) {
	case PRINCIPAL_ROOT: return "root";
	case PRINCIPAL_HUMAN: return "human";
	case PRINCIPAL_AGENT: return "agent";
	default: return "anonymous";
	}
}

uint32_t verb_from_string(const char *s)
{
	for (size_t i = 0; i < ELEMENTSOF(verb_names); i++)
		if (!strcmp(s, verb_names[i].name))
			return verb_names[i].bit;
	return 0;
}

const char *verb_to_string(uint32_t verb)
{
	for (size_t i = 0; i < ELEMENTSOF(verb_names); i++)
		if (verb == verb_names[i].bit)
			return verb_names[i].name;
	return NULL;
}

int verbs_parse(const char *list, uint32_t *ret, const char **ret_bad)
{
	static __thread char bad[64];
	uint32_t bits = 0;
	const char *p = list;

	if (!list || !*list) {
		if (ret_bad)
			*ret_bad = "";
		return -EINVAL;
	}
	while (*p) {
		const char *e = strchr(p, ',');
		size_t n = e ? (size_t)(e - p) : strlen(p);
		char word[64];
		if (n == 0 || n >= sizeof(word)) {
			snprintf(bad, sizeof(bad), "%.*s", (int)(n < 60 ? n : 60), p);
			if (ret_bad)
				*ret_bad = bad;
			return -EINVAL;
		}
		memcpy(word, p, n);
		word[n] = '\0';
		uint32_t b = verb_from_string(word);
		if (!b) {
			snprintf(bad, sizeof(bad), "%s", word);
			if (ret_bad)
				*ret_bad = bad;
			return -EINVAL;
		}
		bits |= b;
		p += n;
		if (*p == ',')
			p++;
	}
	*ret = bits;
	return 0;
}

char *verbs_format(uint32_t verbs)
{
	StrBuf sb = STRBUF_INIT;
	for (size_t i = 0; i < ELEMENTSOF(verb_names); i++)
		if (verbs & verb_names[i].bit) {
			if (sb.len && strbuf_putc(&sb, ',') < 0)
				goto oom;
			if (strbuf_puts(&sb, verb_names[i].name) < 0)
				goto oom;
		}
	return strbuf_detach(&sb);
oom:
	strbuf_done(&sb);
	return NULL;
}
