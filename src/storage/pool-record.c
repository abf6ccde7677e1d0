/* SPDX-License-Identifier: MIT */
/*
 * STATE/pool.json: one flat JSON object of strings, unsigned numbers and booleans. The
 * storage layer may use only libc and basic, so this is a small strict reader for exactly
 * that shape; anything else is an error naming the offset.
 */
#include "storage.h"

#include <ctype.h>
#include <string.h>

#include "parse.h"
#include "strbuf.h"

#define POOL_RECORD_VERSION 1

void pool_record_done(PoolRecord *r)
{
	free(r->reason);
	free(r->root);
	free(r->image);
	free(r->mountpoint);
	free(r->req_path);
	*r = (PoolRecord){};
}

typedef struct Reader {
	const char *s;
	size_t i;
	BbxError *err;
} Reader;

static int fail(Reader *rd, const char *what)
{
	return bbx_error_set(rd->err, -EINVAL, BBX_INVALID, "pool.json: %s at offset %zu", what,
			     rd->i);
}

static void skip_ws(Reader *rd)
{
	while (rd->s[rd->i] && isspace((unsigned char)rd->s[rd->i]))
		rd->i++;
}

static int read_string(Reader *rd, char **ret)
{
	_cleanup_strbuf_ StrBuf sb = STRBUF_INIT;
	if (rd->s[rd->i] != '"')
		return fail(rd, "expected a string");
	rd->i++;
	for (;;) {
		char c = rd->s[rd->i];
		if (!c || (unsigned char)c < 0x20)
			return fail(rd, "unterminated string");
		rd->i++;
		if (c == '"')
			break;
		if (c == '\\') {
			char e = rd->s[rd->i++];
			switch (e) {
			case '"':
			case '\\':
			case '/': c = e; break;
			case 'n': c = '\n'; break;
			case 't': c = '\t'; break;
			case 'r': c = '\r'; break;
			case 'b': c = '\b'; break;
			case 'f': c = '\f'; break;
			case 'u': {
				unsigned v = 0;
				for (int k = 0; k < 4; k++) {
					char h = rd->s[rd->i++];
					if (!isxdigit((unsigned char)h))
						return fail(rd, "bad \\u escape");
					v = v * 16 +
					    (isdigit((unsigned char)h)
						     ? (unsigned)(h - '0')
						     : (unsigned)(tolower((unsigned char)h) - 'a' +
								  10));
				}
				/* Paths and reasons we write are ASCII; refuse what we never write. */
				if (v == 0 || v > 0x7f)
					return fail(rd, "unsupported \\u escape");
				c = (char)v;
				break;
			}
			default: return fail(rd, "bad escape");
			}
		}
		if (strbuf_putc(&sb, c) < 0)
			return -ENOMEM;
	}
	*ret = strbuf_detach(&sb);
	return *ret ? 0 : -ENOMEM;
}

static int read_uint(Reader *rd, uint64_t *ret)
{
	size_t start = rd->i;
	while (isdigit((unsigned char)rd->s[rd->i]))
		rd->i++;
	if (rd->i == start || rd->i - start > 20)
		return fail(rd, "expected an unsigned number");
	char buf[24];
	memcpy(buf, rd->s + start, rd->i - start);
	buf[rd->i - start] = 0;
	if (parse_uint64(buf, ret) < 0)
		return fail(rd, "number out of range");
	return 0;
}

typedef enum ValueType { V_STRING, V_UINT, V_BOOL } ValueType;

typedef struct Value {
	ValueType type;
	char *str;
	uint64_t num;
	bool b;
} Value;

static int read_value(Reader *rd, Value *v)
{
	char c = rd->s[rd->i];
	if (c == '"') {
		v->type = V_STRING;
		return read_string(rd, &v->str);
	}
	if (isdigit((unsigned char)c)) {
		v->type = V_UINT;
		return read_uint(rd, &v->num);
	}
	if (!strncmp(rd->s + rd->i, "true", 4) || !strncmp(rd->s + rd->i, "false", 5)) {
		v->type = V_BOOL;
		v->b = c == 't';
		rd->i += v->b ? 4 : 5;
		return 0;
	}
	if (!strncmp(rd->s + rd->i, "null", 4)) {
		v->type = V_STRING;
		v->str = NULL;
		rd->i += 4;
		return 0;
	}
	return fail(rd, "expected a string, unsigned number or boolean");
}

static int take_string(Reader *rd, const char *key, Value *v, char **field)
{
	if (v->type != V_STRING)
		return bbx_error_set(rd->err, -EINVAL, BBX_INVALID,
				     "pool.json: '%s' must be a string", key);
	free(*field);
	*field = TAKE_PTR(v->str);
	return 0;
}

static int take_driver(Reader *rd, const char *key, Value *v, StorageDriverKind *field)
{
	if (v->type != V_STRING || !v->str || storage_driver_kind_from_string(v->str, field) < 0)
		return bbx_error_set(rd->err, -EINVAL, BBX_INVALID,
				     "pool.json: '%s' must be btrfs, reflink, copy or auto", key);
	return 0;
}

static int take_uint(Reader *rd, const char *key, Value *v, uint64_t *field)
{
	if (v->type != V_UINT)
		return bbx_error_set(rd->err, -EINVAL, BBX_INVALID,
				     "pool.json: '%s' must be an unsigned number", key);
	*field = v->num;
	return 0;
}

static int apply(Reader *rd, PoolRecord *rec, const char *key, Value *v, bool *saw_driver)
{
	if (!strcmp(key, "version")) {
		uint64_t ver = 0;
		int r = take_uint(rd, key, v, &ver);
		if (r < 0)
			return r;
		if (ver != POOL_RECORD_VERSION)
			return bbx_error_set(rd->err, -EPROTO, BBX_INVALID,
					     "pool.json: unsupported version %llu",
					     (unsigned long long)ver);
		return 0;
	}
	if (!strcmp(key, "driver")) {
		*saw_driver = true;
		return take_driver(rd, key, v, &rec->driver);
	}
	if (!strcmp(key, "req_driver"))
		return take_driver(rd, key, v, &rec->req_driver);
	if (!strcmp(key, "reason"))
		return take_string(rd, key, v, &rec->reason);
	if (!strcmp(key, "root"))
		return take_string(rd, key, v, &rec->root);
	if (!strcmp(key, "image"))
		return take_string(rd, key, v, &rec->image);
	if (!strcmp(key, "mountpoint"))
		return take_string(rd, key, v, &rec->mountpoint);
	if (!strcmp(key, "req_path"))
		return take_string(rd, key, v, &rec->req_path);
	if (!strcmp(key, "size"))
		return take_uint(rd, key, v, &rec->size);
	if (!strcmp(key, "req_size"))
		return take_uint(rd, key, v, &rec->req_size);
	if (!strcmp(key, "quotas")) {
		if (v->type != V_BOOL)
			return bbx_error_set(rd->err, -EINVAL, BBX_INVALID,
					     "pool.json: 'quotas' must be true or false");
		rec->quotas = v->b;
		return 0;
	}
	return 0; /* unknown keys from newer versions are ignored */
}

int pool_record_parse(const char *json, PoolRecord *ret, BbxError *err)
{
	Reader rd = { .s = json, .i = 0, .err = err };
	PoolRecord rec = {};
	bool saw_driver = false;
	int r;

	skip_ws(&rd);
	if (json[rd.i] != '{')
		return fail(&rd, "expected '{'");
	rd.i++;
	skip_ws(&rd);
	if (json[rd.i] == '}')
		rd.i++;
	else
		for (;;) {
			_cleanup_free_ char *key = NULL;
			skip_ws(&rd);
			r = read_string(&rd, &key);
			if (r < 0)
				goto fail;
			skip_ws(&rd);
			if (json[rd.i] != ':') {
				r = fail(&rd, "expected ':'");
				goto fail;
			}
			rd.i++;
			skip_ws(&rd);
			Value v = {};
			r = read_value(&rd, &v);
			if (r >= 0)
				r = apply(&rd, &rec, key, &v, &saw_driver);
			free(v.str);
			if (r < 0)
				goto fail;
			skip_ws(&rd);
			if (json[rd.i] == ',') {
				rd.i++;
				continue;
			}
			if (json[rd.i] == '}') {
				rd.i++;
				break;
			}
			r = fail(&rd, "expected ',' or '}'");
			goto fail;
		}
	skip_ws(&rd);
	if (json[rd.i]) {
		r = fail(&rd, "trailing data");
		goto fail;
	}
	if (!saw_driver || rec.driver == STORAGE_DRIVER_AUTO || !rec.root || !*rec.root) {
		r = bbx_error_set(err, -EINVAL, BBX_INVALID,
				  "pool.json: 'driver' and 'root' are required");
		goto fail;
	}
	*ret = rec;
	return 0;
fail:
	pool_record_done(&rec);
	return r;
}

static int put_string(StrBuf *sb, const char *key, const char *value, bool comma)
{
	int r = strbuf_appendf(sb, "\t\"%s\": ", key);
	if (r < 0)
		return r;
	if (!value)
		r = strbuf_puts(sb, "null");
	else if ((r = strbuf_putc(sb, '"')) >= 0 && (r = strbuf_put_json_escaped(sb, value)) >= 0)
		r = strbuf_putc(sb, '"');
	if (r < 0)
		return r;
	return strbuf_puts(sb, comma ? ",\n" : "\n");
}

int pool_record_format(const PoolRecord *rec, char **ret)
{
	_cleanup_strbuf_ StrBuf sb = STRBUF_INIT;
	int r;

	if ((r = strbuf_appendf(&sb, "{\n\t\"version\": %d,\n", POOL_RECORD_VERSION)) < 0 ||
	    (r = put_string(&sb, "driver", storage_driver_kind_to_string(rec->driver), true)) < 0 ||
	    (r = put_string(&sb, "reason", rec->reason, true)) < 0 ||
	    (r = put_string(&sb, "root", rec->root, true)) < 0 ||
	    (r = put_string(&sb, "image", rec->image, true)) < 0 ||
	    (r = put_string(&sb, "mountpoint", rec->mountpoint, true)) < 0 ||
	    (r = strbuf_appendf(&sb, "\t\"quotas\": %s,\n\t\"size\": %llu,\n",
				rec->quotas ? "true" : "false", (unsigned long long)rec->size)) <
		    0 ||
	    (r = put_string(&sb, "req_driver", storage_driver_kind_to_string(rec->req_driver),
			    true)) < 0 ||
	    (r = strbuf_appendf(&sb, "\t\"req_size\": %llu,\n",
				(unsigned long long)rec->req_size)) < 0 ||
	    (r = put_string(&sb, "req_path", rec->req_path, false)) < 0 ||
	    (r = strbuf_puts(&sb, "}\n")) < 0)
		return r;
	*ret = strbuf_detach(&sb);
	return *ret ? 0 : -ENOMEM;
}
