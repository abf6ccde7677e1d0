/* SPDX-License-Identifier: MIT */
/*
 * Multi round-trip requests (2026-07-28, SEP-2322): a request that needs the client's input
 * is answered with resultType "input_required", inputRequests and, when the server has
 * something to remember, a requestState; the client calls again with inputResponses and that
 * requestState. The state comes back from the client, so it is attacker input: it is sealed
 * here (HMAC-SHA-512-256, crypto_auth, under a key drawn at random per process, over the
 * purpose it was issued for, an expiry and the state) and bounded. A state that does not
 * verify is refused before anything reads it.
 *
 * Encoding: base64url(payload) "." base64url(mac), payload {"x": expiry, "s": state}, mac
 * over purpose, a NUL byte, and payload.
 */
#include <errno.h>
#include <pthread.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "mcp-tasks.h"
#include "mcp.h"

static unsigned char state_key[crypto_auth_KEYBYTES];
static bool key_ok;
static pthread_once_t key_once = PTHREAD_ONCE_INIT;

static void key_init(void)
{
	if (sodium_init() < 0)
		return;
	crypto_auth_keygen(state_key);
	key_ok = true;
}

static void mac(const char *purpose, const unsigned char *payload, size_t n,
		unsigned char out[crypto_auth_BYTES])
{
	crypto_auth_hmacsha512256_state st;
	unsigned char full[crypto_auth_hmacsha512256_BYTES];
	crypto_auth_hmacsha512256_init(&st, state_key, sizeof(state_key));
	crypto_auth_hmacsha512256_update(&st, (const unsigned char *)purpose, strlen(purpose) + 1);
	crypto_auth_hmacsha512256_update(&st, payload, n);
	crypto_auth_hmacsha512256_final(&st, full);
	memcpy(out, full, crypto_auth_BYTES);
	sodium_memzero(&st, sizeof(st));
}

char *mcp_state_seal(const char *purpose, json_t *state, int ttl_sec)
{
	pthread_once(&key_once, key_init);
	if (!key_ok || !purpose || !state)
		return NULL;
	json_t *p = json_pack("{s:I,s:O}", "x", (json_int_t)time(NULL) + ttl_sec, "s", state);
	char *payload = p ? json_dumps(p, JSON_COMPACT | JSON_SORT_KEYS) : NULL;
	json_decref(p);
	if (!payload)
		return NULL;
	size_t n = strlen(payload);
	size_t b64 = sodium_base64_ENCODED_LEN(n, sodium_base64_VARIANT_URLSAFE_NO_PADDING);
	size_t m64 = sodium_base64_ENCODED_LEN(crypto_auth_BYTES,
					       sodium_base64_VARIANT_URLSAFE_NO_PADDING);
	if (b64 + m64 > MCP_STATE_MAX) {
		free(payload);
		return NULL;
	}
	char *out = malloc(b64 + m64 + 1);
	if (out) {
		unsigned char tag[crypto_auth_BYTES];
		mac(purpose, (unsigned char *)payload, n, tag);
		sodium_bin2base64(out, b64, (unsigned char *)payload, n,
				  sodium_base64_VARIANT_URLSAFE_NO_PADDING);
		size_t len = strlen(out);
		out[len] = '.';
		sodium_bin2base64(out + len + 1, m64, tag, sizeof(tag),
				  sodium_base64_VARIANT_URLSAFE_NO_PADDING);
	}
	free(payload);
	return out;
}

/* Strict base64url (no padding) of all of in[0..n) into buf. */
static int b64_decode(const char *in, size_t n, unsigned char *buf, size_t size, size_t *ret_len)
{
	const char *end = NULL;
	if (sodium_base642bin(buf, size, in, n, NULL, ret_len, &end,
			      sodium_base64_VARIANT_URLSAFE_NO_PADDING) != 0 ||
	    end != in + n)
		return -EBADMSG;
	return 0;
}

int mcp_state_open(const char *purpose, const char *sealed, json_t **ret_state)
{
	unsigned char payload[MCP_STATE_MAX], tag[crypto_auth_BYTES];
	size_t n = 0, tag_len = 0;
	*ret_state = NULL;
	pthread_once(&key_once, key_init);
	if (!key_ok || !purpose || !sealed)
		return -EBADMSG;
	size_t len = strnlen(sealed, MCP_STATE_MAX + 1);
	if (len > MCP_STATE_MAX)
		return -E2BIG;
	const char *dot = memchr(sealed, '.', len);
	if (!dot || b64_decode(sealed, (size_t)(dot - sealed), payload, sizeof(payload), &n) < 0 ||
	    b64_decode(dot + 1, len - (size_t)(dot + 1 - sealed), tag, sizeof(tag), &tag_len) < 0 ||
	    tag_len != sizeof(tag))
		return -EBADMSG;
	unsigned char want[crypto_auth_BYTES];
	mac(purpose, payload, n, want);
	if (sodium_memcmp(want, tag, sizeof(tag)) != 0)
		return -EBADMSG;
	/* Ours from here on: the payload is what mcp_state_seal() wrote. */
	json_t *p = json_loadb((const char *)payload, n, 0, NULL);
	json_t *x = json_object_get(p, "x");
	if (!json_is_integer(x) || !json_object_get(p, "s")) {
		json_decref(p);
		return -EBADMSG;
	}
	if (json_integer_value(x) < (json_int_t)time(NULL)) {
		json_decref(p);
		return -ETIME;
	}
	*ret_state = json_incref(json_object_get(p, "s"));
	json_decref(p);
	return 0;
}

json_t *mcp_mrtr_check(json_t *id, json_t *params, const char *purpose, json_t **ret_state)
{
	json_t *responses = json_object_get(params, "inputResponses");
	json_t *state = json_object_get(params, "requestState");
	if (ret_state)
		*ret_state = NULL;
	if (responses) {
		const char *k;
		json_t *v;
		if (!json_is_object(responses))
			return mcp_error(id, MCP_INVALID_PARAMS,
					 "Invalid params: 'inputResponses' must be an object",
					 NULL);
		json_object_foreach(responses, k, v)
		{
			if (!json_is_object(v))
				return mcp_error(id, MCP_INVALID_PARAMS,
						 "Invalid params: each 'inputResponses' entry must "
						 "be an object (the client's result)",
						 NULL);
		}
	}
	if (!state)
		return NULL;
	if (!json_is_string(state))
		return mcp_error(id, MCP_INVALID_PARAMS,
				 "Invalid params: 'requestState' must be a string", NULL);
	json_t *s = NULL;
	int r = mcp_state_open(purpose, json_string_value(state), &s);
	if (r == -ETIME)
		return mcp_error(id, MCP_INVALID_PARAMS,
				 "Invalid params: 'requestState' expired: call again without it",
				 NULL);
	if (r == -E2BIG)
		return mcp_error(id, MCP_INVALID_PARAMS,
				 "Invalid params: 'requestState' is too long", NULL);
	if (r < 0)
		return mcp_error(id, MCP_INVALID_PARAMS,
				 "Invalid params: 'requestState' failed its integrity check (not "
				 "issued by this server for this request)",
				 NULL);
	if (ret_state)
		*ret_state = s;
	else
		json_decref(s);
	return NULL;
}

json_t *mcp_mrtr_result(json_t *requests, json_t *state, const char *purpose)
{
	json_t *res = json_pack("{s:s,s:o}", "resultType", "input_required", "inputRequests",
				requests ? requests : json_object());
	if (res && state) {
		char *sealed = mcp_state_seal(purpose, state, MCP_STATE_TTL_SEC);
		if (sealed)
			json_object_set_new(res, "requestState", json_string(sealed));
		free(sealed);
	}
	json_decref(state);
	return res;
}

static const char *capability_for(const char *method)
{
	if (!method)
		return NULL;
	if (!strcmp(method, "elicitation/create"))
		return "elicitation";
	if (!strcmp(method, "sampling/createMessage"))
		return "sampling";
	if (!strcmp(method, "roots/list"))
		return "roots";
	return NULL;
}

bool mcp_client_can(json_t *params, const char *method)
{
	json_t *caps = json_object_get(json_object_get(params, "_meta"), MCP_META_CAPS);
	const char *c = capability_for(method);
	return c && json_is_object(json_object_get(caps, c));
}

size_t mcp_mrtr_filter(json_t *params, json_t *requests)
{
	const char *k;
	json_t *v;
	void *tmp;
	json_object_foreach_safe(requests, tmp, k, v)
	{
		if (!mcp_client_can(params, json_string_value(json_object_get(v, "method"))))
			json_object_del(requests, k);
	}
	return json_object_size(requests);
}

json_t *mcp_input_response(json_t *params, const char *key)
{
	json_t *r = json_object_get(json_object_get(params, "inputResponses"), key);
	return json_is_object(r) ? r : NULL;
}
