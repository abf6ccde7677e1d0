/* SPDX-License-Identifier: MIT */
/*
 * Internal to src/config: a small YAML tree built from libfyaml's event stream, with the
 * 1-based position of every node. Built from events rather than fy_document so that aliases
 * stay shared (an alias is the anchored node itself, never a copy) and the expanded size is
 * counted as the tree grows: an alias bomb is refused before anything is expanded.
 *
 * Ownership: the YamlDocument owns every node (nodes[]); children arrays only point into it,
 * so one node may be reachable several times through aliases.
 */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "config.h"

/* Deeper documents are refused: nothing in the schema nests beyond a few levels, and
 * consumers of the tree (configuration -> JSON) recurse. */
#define YAML_MAX_DEPTH 64

typedef enum YamlKind {
	YAML_SCALAR,
	YAML_SEQUENCE,
	YAML_MAPPING,
} YamlKind;

typedef struct YamlNode YamlNode;
struct YamlNode {
	YamlKind kind;
	unsigned line, column;
	char *text; /* scalar: NUL-terminated content */
	size_t len;
	bool plain;	     /* scalar written without quotes: may be null, a bool or a number */
	YamlNode **children; /* mapping: key0, value0, key1, value1, ...; not owned */
	size_t n_children;
	size_t alloc;
	uint64_t weight; /* nodes in this subtree once aliases are expanded */
	bool open;	 /* still being built: an alias to it would be a cycle */
	char *anchor;
};

typedef struct YamlDocument {
	YamlNode *root;
	YamlNode **nodes;
	size_t n_nodes;
	size_t alloc;
} YamlDocument;

/*
 * Parse data into *ret. Syntax errors, duplicate keys, non-scalar keys, unknown anchors, more
 * than one document and alias expansion past CONFIG_MAX_NODES are added to diag (at their
 * position) and make it return -EINVAL. An empty document gives a NULL root.
 */
int yaml_document_parse(const char *data, size_t size, const char *file, YamlDocument **ret,
			ConfigDiagnostics *diag);
void yaml_document_free(YamlDocument *doc);
static inline void yaml_document_freep(YamlDocument **d)
{
	if (*d)
		yaml_document_free(*d);
}

static inline bool yaml_node_is_null(const YamlNode *n)
{
	return !n || (n->kind == YAML_SCALAR && n->plain &&
		      (n->len == 0 || !strcmp(n->text, "~") || !strcmp(n->text, "null") ||
		       !strcmp(n->text, "Null") || !strcmp(n->text, "NULL")));
}
const char *yaml_kind_to_string(const YamlNode *n);
/* True when s[0..len) is valid UTF-8 without NUL bytes. */
bool config_utf8_valid(const char *s, size_t len);
/* Length of the valid UTF-8 sequence at p (at most n bytes available), 0 when invalid. */
size_t config_utf8_seq(const unsigned char *p, size_t n);
