/* SPDX-License-Identifier: MIT */
#include "config-yaml.h"

#include <errno.h>
#include <libfyaml.h>
#include <stdlib.h>
#include <string.h>

#include "macro.h"

typedef struct Anchor {
	char *name;
	YamlNode *node;
} Anchor;

typedef struct Builder {
	YamlDocument *doc;
	const char *file;
	ConfigDiagnostics *diag;
	YamlNode **stack;
	size_t depth, stack_alloc;
	Anchor *anchors;
	size_t n_anchors, anchors_alloc;
	uint64_t expanded; /* nodes in the tree so far, aliases counted at their full size */
	int r;		   /* first hard failure (-ENOMEM) */
	bool stop;	   /* an error after which the rest of the stream is not read */
	bool failed;	   /* some error was reported */
} Builder;

const char *yaml_kind_to_string(const YamlNode *n)
{
	if (!n || yaml_node_is_null(n))
		return "null";
	switch (n->kind) {
	case YAML_SCALAR: return "a scalar";
	case YAML_SEQUENCE: return "a sequence";
	case YAML_MAPPING: return "a mapping";
	}
	return "?";
}

static int grow(void **p, size_t *alloc, size_t need, size_t elem)
{
	size_t n;
	void *q;

	if (need <= *alloc)
		return 0;
	n = *alloc ? *alloc * 2 : 8;
	if (n < need)
		n = need;
	q = reallocarray(*p, n, elem);
	if (!q)
		return -ENOMEM;
	*p = q;
	*alloc = n;
	return 0;
}

static void builder_error(Builder *b, unsigned line, unsigned column, const char *fmt, ...)
	_printf_(4, 5);
static void builder_error(Builder *b, unsigned line, unsigned column, const char *fmt, ...)
{
	char msg[512];
	va_list ap;

	b->failed = true;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	if (config_diagnostics_add(b->diag, CONFIG_SEVERITY_ERROR, b->file, line, column, "", "%s",
				   msg) < 0)
		b->r = -ENOMEM;
}

static YamlNode *node_new(Builder *b, YamlKind kind, const struct fy_mark *m)
{
	YamlNode *n;

	if (grow((void **)&b->doc->nodes, &b->doc->alloc, b->doc->n_nodes + 1, sizeof(YamlNode *)) <
	    0)
		return NULL;
	n = calloc(1, sizeof(*n));
	if (!n)
		return NULL;
	n->kind = kind;
	n->weight = 1;
	if (m) {
		n->line = (unsigned)m->line + 1;
		n->column = (unsigned)m->column + 1;
	}
	b->doc->nodes[b->doc->n_nodes++] = n;
	return n;
}

/* Attach n (a new node, or the target of an alias) to the open collection or as the root. */
static int attach(Builder *b, YamlNode *n, unsigned line, unsigned column)
{
	YamlNode *parent;

	if (b->depth == 0) {
		b->doc->root = n;
		return 0;
	}
	parent = b->stack[b->depth - 1];
	if (n->line == 0 && parent->n_children > 0) {
		/* A null without a token: point at the key it belongs to. */
		n->line = parent->children[parent->n_children - 1]->line;
		n->column = parent->children[parent->n_children - 1]->column;
	}
	if (parent->kind == YAML_MAPPING && parent->n_children % 2 == 0) {
		if (n->kind != YAML_SCALAR)
			builder_error(b, line, column, "mapping keys must be scalars, not %s",
				      yaml_kind_to_string(n));
		else
			for (size_t i = 0; i < parent->n_children; i += 2) {
				YamlNode *k = parent->children[i];
				if (k->kind == YAML_SCALAR && k->len == n->len &&
				    !memcmp(k->text, n->text, n->len)) {
					builder_error(
						b, line, column,
						"duplicate key '%.200s' (first defined at line %u)",
						n->text, k->line);
					break;
				}
			}
	}
	if (grow((void **)&parent->children, &parent->alloc, parent->n_children + 1,
		 sizeof(YamlNode *)) < 0)
		return -ENOMEM;
	parent->children[parent->n_children++] = n;
	return 0;
}

static int record_anchor(Builder *b, struct fy_token *t, YamlNode *n)
{
	const char *s;
	size_t len;

	if (!t)
		return 0;
	s = fy_token_get_text(t, &len);
	if (!s)
		return -ENOMEM;
	if (grow((void **)&b->anchors, &b->anchors_alloc, b->n_anchors + 1, sizeof(Anchor)) < 0)
		return -ENOMEM;
	n->anchor = strndup(s, len);
	if (!n->anchor)
		return -ENOMEM;
	/* A later anchor with the same name shadows the earlier one, as YAML says. */
	b->anchors[b->n_anchors++] = (Anchor){ .name = n->anchor, .node = n };
	return 0;
}

static void count(Builder *b, uint64_t w, unsigned line, unsigned column)
{
	if (b->expanded > CONFIG_MAX_NODES)
		return;
	b->expanded += w;
	if (b->expanded > CONFIG_MAX_NODES)
		builder_error(
			b, line, column,
			"document too large: more than %d YAML nodes once aliases are expanded",
			CONFIG_MAX_NODES);
}

static bool mapping_has_key(const YamlNode *map, const YamlNode *key)
{
	if (key->kind != YAML_SCALAR)
		return false; /* already reported by attach() */
	for (size_t i = 0; i + 1 < map->n_children; i += 2)
		if (map->children[i]->kind == YAML_SCALAR && map->children[i]->len == key->len &&
		    !memcmp(map->children[i]->text, key->text, key->len))
			return true;
	return false;
}

/*
 * YAML merge keys ("<<: *defaults" or "<<: [*a, *b]"), which Upsun configs use to share
 * settings: keys written in the mapping win, then earlier merged mappings win over later ones.
 * The merged pairs are shared, like any alias, and were counted when the alias was read.
 */
static int apply_merges(Builder *b, YamlNode *map)
{
	for (size_t i = 0; i + 1 < map->n_children;) {
		YamlNode *k = map->children[i], *v = map->children[i + 1];
		YamlNode *const *srcs;
		size_t n_srcs;

		if (k->kind != YAML_SCALAR || !k->plain || strcmp(k->text, "<<")) {
			i += 2;
			continue;
		}
		memmove(&map->children[i], &map->children[i + 2],
			(map->n_children - i - 2) * sizeof(YamlNode *));
		map->n_children -= 2;
		srcs = v->kind == YAML_SEQUENCE ? v->children : &v;
		n_srcs = v->kind == YAML_SEQUENCE ? v->n_children : 1;
		for (size_t s = 0; s < n_srcs; s++) {
			const YamlNode *src = srcs[s];
			if (src->kind != YAML_MAPPING) {
				builder_error(
					b, src->line, src->column,
					"merge key '<<' needs a mapping or a list of mappings, "
					"not %s",
					yaml_kind_to_string(src));
				continue;
			}
			for (size_t j = 0; j + 1 < src->n_children; j += 2) {
				if (mapping_has_key(map, src->children[j]))
					continue;
				if (grow((void **)&map->children, &map->alloc, map->n_children + 2,
					 sizeof(YamlNode *)) < 0)
					return -ENOMEM;
				map->children[map->n_children++] = src->children[j];
				map->children[map->n_children++] = src->children[j + 1];
			}
		}
	}
	return 0;
}

static int on_event(Builder *b, struct fy_event *e)
{
	const struct fy_mark *m = fy_event_start_mark(e);
	unsigned line = m ? (unsigned)m->line + 1 : 0, column = m ? (unsigned)m->column + 1 : 0;
	YamlNode *n;
	int r;

	switch (e->type) {
	case FYET_SCALAR: {
		size_t len = 0;
		const char *s = e->scalar.value ? fy_token_get_text(e->scalar.value, &len) : "";
		if (!s)
			return -ENOMEM;
		n = node_new(b, YAML_SCALAR, m);
		if (!n)
			return -ENOMEM;
		/* libfyaml marks a quoted scalar at its content: point at the opening quote. */
		if ((fy_event_get_node_style(e) == FYNS_SINGLE_QUOTED ||
		     fy_event_get_node_style(e) == FYNS_DOUBLE_QUOTED) &&
		    n->column > 1)
			column = --n->column;
		n->text = strndup(s, len);
		if (!n->text)
			return -ENOMEM;
		/* A "\0" escape makes the content shorter than len as a C string: it is refused
		 * below, but until then every comparison must see the string strndup() kept. */
		n->len = strlen(n->text);
		if (!config_utf8_valid(s, len))
			builder_error(b, line, column,
				      "invalid UTF-8 or NUL character in a string");
		/* An empty value ("key:" or "{key: }") has no token: it is a plain null. */
		n->plain = !e->scalar.value || fy_event_get_node_style(e) == FYNS_PLAIN;
		r = record_anchor(b, e->scalar.anchor, n);
		if (r < 0)
			return r;
		count(b, 1, line, column);
		return attach(b, n, line, column);
	}
	case FYET_ALIAS: {
		size_t len = 0;
		/* Likewise an alias is marked after its '*'. */
		if (column > 1)
			column--;
		const char *s = fy_token_get_text(e->alias.anchor, &len);
		YamlNode *target = NULL;
		if (!s)
			return -ENOMEM;
		for (size_t i = b->n_anchors; i > 0; i--)
			if (strlen(b->anchors[i - 1].name) == len &&
			    !memcmp(b->anchors[i - 1].name, s, len)) {
				target = b->anchors[i - 1].node;
				break;
			}
		if (!target) {
			builder_error(b, line, column, "unknown alias '*%.*s'", (int)len, s);
			return 0;
		}
		if (target->open) {
			builder_error(b, line, column,
				      "alias '*%.*s' refers to a node that contains it", (int)len,
				      s);
			return 0;
		}
		count(b, target->weight, line, column);
		return attach(b, target, line, column);
	}
	case FYET_SEQUENCE_START:
	case FYET_MAPPING_START:
		if (b->depth >= YAML_MAX_DEPTH) {
			builder_error(b, line, column, "nesting deeper than %d levels",
				      YAML_MAX_DEPTH);
			b->stop = true;
			return 0;
		}
		n = node_new(b, e->type == FYET_MAPPING_START ? YAML_MAPPING : YAML_SEQUENCE, m);
		if (!n)
			return -ENOMEM;
		n->open = true;
		r = record_anchor(b,
				  e->type == FYET_MAPPING_START ? e->mapping_start.anchor
								: e->sequence_start.anchor,
				  n);
		if (r < 0)
			return r;
		count(b, 1, line, column);
		r = attach(b, n, line, column);
		if (r < 0)
			return r;
		if (grow((void **)&b->stack, &b->stack_alloc, b->depth + 1, sizeof(YamlNode *)) < 0)
			return -ENOMEM;
		b->stack[b->depth++] = n;
		return 0;
	case FYET_SEQUENCE_END:
	case FYET_MAPPING_END:
		if (b->depth == 0)
			return 0;
		n = b->stack[--b->depth];
		n->open = false;
		if (n->kind == YAML_MAPPING) {
			r = apply_merges(b, n);
			if (r < 0)
				return r;
		}
		for (size_t i = 0; i < n->n_children; i++)
			if (__builtin_add_overflow(n->weight, n->children[i]->weight, &n->weight))
				n->weight = UINT64_MAX;
		return 0;
	default: return 0;
	}
}

/*
 * YAML here is UTF-8 only. Checked before libfyaml sees the input: besides giving a precise
 * position, it keeps bytes away that libfyaml 0.7.12 does not survive (a directive line with
 * an invalid UTF-8 byte, "%\xff", makes fy_parser_parse() loop forever).
 */
static bool check_encoding(Builder *b, const char *data, size_t size)
{
	const unsigned char *p = (const unsigned char *)data;
	unsigned line = 1, column = 1;

	for (size_t i = 0; i < size;) {
		size_t k = p[i] ? config_utf8_seq(p + i, size - i) : 0;
		if (k == 0) {
			if (p[i] == 0)
				builder_error(b, line, column, "NUL byte in the file");
			else
				builder_error(b, line, column,
					      "invalid UTF-8 (byte 0x%02x): the file must be UTF-8",
					      p[i]);
			return false;
		}
		if (p[i] == '\n') {
			line++;
			column = 1;
		} else
			column++;
		i += k;
	}
	return true;
}

static void diag_discard(struct fy_diag *diag, void *user, const char *buf, size_t len)
{
}

static void fy_diagp(struct fy_diag **d)
{
	if (*d)
		fy_diag_destroy(*d);
}

static void fy_parserp(struct fy_parser **p)
{
	if (*p)
		fy_parser_destroy(*p);
}

int yaml_document_parse(const char *data, size_t size, const char *file, YamlDocument **ret,
			ConfigDiagnostics *diag)
{
	_cleanup_(fy_diagp) struct fy_diag *fyd = NULL;
	_cleanup_(fy_parserp) struct fy_parser *fyp = NULL;
	_cleanup_(yaml_document_freep) YamlDocument *doc = NULL;
	struct fy_diag_cfg dcfg;
	struct fy_event *e;
	unsigned n_docs = 0;
	bool stream_end = false, stopped = false, second_doc = false;
	Builder b = { .file = file, .diag = diag };
	int r = 0;

	doc = calloc(1, sizeof(*doc));
	if (!doc)
		return -ENOMEM;
	b.doc = doc;

	if (!check_encoding(&b, data, size))
		return b.r < 0 ? b.r : -EINVAL;

	fy_diag_cfg_default(&dcfg);
	dcfg.fp = NULL;
	dcfg.output_fn = diag_discard;
	dcfg.colorize = false;
	fyd = fy_diag_create(&dcfg);
	if (!fyd)
		return -ENOMEM;
	fy_diag_set_collect_errors(fyd, true);

	struct fy_parse_cfg cfg = {
		.flags = FYPCF_QUIET | FYPCF_DEFAULT_VERSION_1_2 | FYPCF_JSON_NONE |
			 FYPCF_DISABLE_MMAP_OPT,
		.diag = fyd,
	};
	fyp = fy_parser_create(&cfg);
	if (!fyp)
		return -ENOMEM;
	if (fy_parser_set_string(fyp, data, size) < 0)
		return -ENOMEM;

	while ((e = fy_parser_parse(fyp))) {
		const struct fy_mark *m = fy_event_start_mark(e);
		if (e->type == FYET_DOCUMENT_START && ++n_docs > 1)
			second_doc = true;
		if (second_doc && (m || e->type == FYET_STREAM_END)) {
			/* An implicit document start has no position: use its first node's. */
			builder_error(&b, m ? (unsigned)m->line + 1 : 0,
				      m ? (unsigned)m->column + 1 : 0,
				      "only one YAML document is allowed in a config file");
			fy_parser_event_free(fyp, e);
			stopped = true;
			break;
		}
		if (e->type == FYET_STREAM_END)
			stream_end = true;
		r = on_event(&b, e);
		fy_parser_event_free(fyp, e);
		if (r < 0 || b.r < 0 || b.stop || b.expanded > CONFIG_MAX_NODES) {
			stopped = true;
			break;
		}
	}
	if (!stopped && (!stream_end || fy_parser_get_stream_error(fyp))) {
		void *it = NULL;
		struct fy_diag_error *de;
		bool any = false;
		while ((de = fy_diag_errors_iterate(fyd, &it))) {
			if (de->type < FYET_ERROR)
				continue;
			builder_error(&b, de->line > 0 ? (unsigned)de->line : 0,
				      de->column > 0 ? (unsigned)de->column : 0,
				      "YAML syntax error: %s", de->msg ? de->msg : "invalid YAML");
			any = true;
		}
		if (!any)
			builder_error(&b, 0, 0, "YAML syntax error");
	}

	free(b.stack);
	free(b.anchors);
	if (r < 0)
		return r;
	if (b.r < 0)
		return b.r;
	if (b.failed)
		return -EINVAL;
	*ret = TAKE_PTR(doc);
	return 0;
}

void yaml_document_free(YamlDocument *doc)
{
	if (!doc)
		return;
	for (size_t i = 0; i < doc->n_nodes; i++) {
		free(doc->nodes[i]->text);
		free(doc->nodes[i]->children);
		free(doc->nodes[i]->anchor);
		free(doc->nodes[i]);
	}
	free(doc->nodes);
	free(doc);
}
