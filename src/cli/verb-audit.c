/* SPDX-License-Identifier: MIT */
/* branchbox audit: read the ledger, export signed checkpoints, verify the chain offline. */
#include <errno.h>
#include <libgen.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "audit.h"
#include "client.h"
#include "file-util.h"
#include "log.h"
#include "main.h"
#include "strbuf.h"

int verb_audit_log(const CliArgs *a)
{
	const char *env = cli_arg_value(a, "env"), *since = cli_arg_value(a, "since");
	const char *limit = cli_arg_value(a, "limit");

	StrBuf path = STRBUF_INIT;
	char sep = '?';
	const char *keys[] = { "env", "since", "limit" }, *vals[] = { env, since, limit };
	strbuf_puts(&path, "/v1/audit");
	for (size_t i = 0; i < ELEMENTSOF(keys); i++) {
		if (!vals[i])
			continue;
		_cleanup_free_ char *v = cli_escape_segment(vals[i]);
		if (!v || strbuf_appendf(&path, "%c%s=%s", sep, keys[i], v) < 0) {
			strbuf_done(&path);
			return EXIT_FAILURE_;
		}
		sep = '&';
	}
	json_t *j = NULL;
	int ret = cli_call(a->command->path, a->state, "GET", strbuf_str(&path), NULL, &j);
	strbuf_done(&path);
	if (ret != EXIT_OK)
		return ret;
	if (a->json)
		cli_print_json(j);
	else {
		size_t i;
		json_t *r;
		json_array_foreach(json_object_get(j, "records"), i, r)
		{
			const char *reason = json_string_value(json_object_get(r, "reason"));
			printf("%lld %s %s/%s %s %s %s %s%s%s\n",
			       (long long)json_integer_value(json_object_get(r, "seq")),
			       json_string_value(json_object_get(r, "time")),
			       json_string_value(json_object_get(r, "interface")),
			       json_string_value(json_object_get(r, "principal")),
			       json_string_value(json_object_get(r, "action")),
			       json_string_value(json_object_get(r, "resource")) ?: "-",
			       json_string_value(json_object_get(r, "decision")),
			       json_string_value(json_object_get(r, "outcome")), reason ? " " : "",
			       reason ? reason : "");
		}
	}
	json_decref(j);
	return EXIT_OK;
}

int verb_audit_checkpoint(const CliArgs *a)
{
	const char *out = cli_arg_value(a, "out");
	json_t *j = NULL;
	int ret = cli_call(a->command->path, a->state, "POST", "/v1/audit/checkpoint", NULL, &j);
	if (ret != EXIT_OK)
		return ret;
	if (!out) {
		cli_print_json(j);
		json_decref(j);
		return EXIT_OK;
	}
	_cleanup_free_ char *text = json_dumps(j, JSON_INDENT(2) | JSON_PRESERVE_ORDER);
	json_decref(j);
	if (!text)
		return EXIT_FAILURE_;
	size_t n = strlen(text);
	text[n] = '\0';
	int r = write_file_atomic(out, text, n, 0644);
	if (r < 0) {
		log_error("%s: %s: %s", a->command->path, out, strerror(-r));
		return EXIT_FAILURE_;
	}
	fprintf(stderr, "checkpoint written to %s\n", out);
	return EXIT_OK;
}

int verb_audit_pubkey(const CliArgs *a)
{
	json_t *j = NULL;
	int ret = cli_call(a->command->path, a->state, "GET", "/v1/audit/pubkey", NULL, &j);
	if (ret != EXIT_OK)
		return ret;
	if (a->json)
		cli_print_json(j);
	else
		printf("%s\n", json_string_value(json_object_get(j, "public_key")));
	json_decref(j);
	return EXIT_OK;
}

int verb_audit_verify(const CliArgs *a)
{
	const char *cpfile = cli_arg_value(a, "checkpoint"), *db = cli_arg_value(a, "db");
	const char *pubkey = cli_arg_value(a, "pubkey");
	BbxError err = BBX_ERROR_INIT;
	char dbpath[PATH_MAX], keyhex[65];
	AuditCheckpoint cp;
	int r;

	if (db)
		snprintf(dbpath, sizeof(dbpath), "%s", db);
	else
		snprintf(dbpath, sizeof(dbpath), "%s/state.db", cli_state_dir(a->state));
	if (access(dbpath, R_OK) < 0) {
		log_error("audit: %s: %s", dbpath, strerror(errno));
		return EXIT_FAILURE_;
	}

	if (cpfile) {
		json_error_t jerr;
		json_t *j = json_load_file(cpfile, JSON_REJECT_DUPLICATES, &jerr);
		if (!j) {
			log_error("audit: %s:%d: %s", cpfile, jerr.line, jerr.text);
			return EXIT_FAILURE_;
		}
		r = audit_checkpoint_from_json(j, &cp, &err);
		json_decref(j);
		if (r < 0) {
			log_error("audit: %s: %s", cpfile, bbx_error_message(&err, r));
			return EXIT_FAILURE_;
		}
		if (!pubkey) {
			char dir[PATH_MAX];
			snprintf(dir, sizeof(dir), "%s", dbpath);
			BbxError kerr = BBX_ERROR_INIT;
			if (audit_public_key_from_state(dirname(dir), keyhex, &kerr) >= 0)
				pubkey = keyhex;
			else
				fprintf(stderr,
					"note: no signing key next to %s; trusting the key named "
					"in "
					"the checkpoint (pass --pubkey to pin it)\n",
					dbpath);
		}
		r = audit_checkpoint_check_signature(&cp, pubkey, &err);
		if (r < 0) {
			log_error("audit: %s: %s", cpfile, bbx_error_message(&err, r));
			return EXIT_FAILURE_;
		}
	}

	AuditVerifyResult res;
	r = audit_verify_db(dbpath, cpfile ? &cp : NULL, &res, &err);
	if (r < 0) {
		log_error("audit: %s: %s", dbpath, bbx_error_message(&err, r));
		return EXIT_FAILURE_;
	}
	if (a->json) {
		json_t *o = json_pack("{s:b,s:I,s:s}", "valid", 1, "records", (json_int_t)res.size,
				      "head", res.head_hash);
		if (o && cpfile)
			json_object_set_new(o, "checkpoint",
					    json_pack("{s:I,s:s,s:s}", "records",
						      (json_int_t)cp.size, "key_id", cp.key_id,
						      "time", cp.time));
		if (!o)
			return EXIT_FAILURE_;
		cli_print_json(o);
		json_decref(o);
		return EXIT_OK;
	}
	printf("audit chain valid: %lld records, head %s\n", (long long)res.size, res.head_hash);
	if (cpfile)
		printf("checkpoint valid: %lld records signed by key %s at %s\n",
		       (long long)cp.size, cp.key_id, cp.time);
	return EXIT_OK;
}
