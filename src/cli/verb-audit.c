/* SPDX-License-Identifier: MIT */
/* branchbox audit: read the ledger, export signed checkpoints, verify the chain offline. */
#include <errno.h>
#include <getopt.h>
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

static const char *leading_state;

static void audit_help(void)
{
	printf("Usage: branchbox audit log [--env NAME] [--since TIME] [--limit N] [--json]\n"
	       "       branchbox audit checkpoint [--out FILE]\n"
	       "       branchbox audit pubkey\n"
	       "       branchbox audit verify [--checkpoint FILE] [--db PATH] [--pubkey HEX]\n"
	       "       (each also takes --state DIR)\n"
	       "\n"
	       "  log          records, oldest first (needs audit:read); --since takes an ISO "
	       "time\n"
	       "               (2026-01-31T12:00) or a duration back from now (15m); --limit <= "
	       "1000\n"
	       "  checkpoint   a checkpoint {size, head hash, time, key id, public key, Ed25519\n"
	       "               signature} signed by the daemon; keep it somewhere else\n"
	       "  pubkey       the daemon's Ed25519 public key (hex)\n"
	       "  verify       check the whole chain of the database (default STATE/state.db; "
	       "works\n"
	       "               without a daemon, needs read access to the state dir) and, given a\n"
	       "               checkpoint kept elsewhere, that nothing up to it was rewritten,\n"
	       "               deleted, reordered or truncated. The signing key must be --pubkey, "
	       "or\n"
	       "               the one in the database's state dir when readable.\n"
	       "               Exit 0 when valid, 1 naming the first bad record.\n");
}

static int audit_log(int argc, char **argv)
{
	static const struct option options[] = { { "env", required_argument, NULL, 'e' },
						 { "since", required_argument, NULL, 'S' },
						 { "limit", required_argument, NULL, 'n' },
						 { "json", no_argument, NULL, 'j' },
						 { "state", required_argument, NULL, 's' },
						 {} };
	const char *env = NULL, *since = NULL, *limit = NULL, *state = leading_state;
	bool json = false;
	int c;

	optind = 1;
	while ((c = getopt_long(argc, argv, "e:S:n:js:", options, NULL)) >= 0) {
		switch (c) {
		case 'e': env = optarg; break;
		case 'S': since = optarg; break;
		case 'n': limit = optarg; break;
		case 'j': json = true; break;
		case 's': state = optarg; break;
		default: return cli_usage_error("audit", "bad option");
		}
	}
	if (optind < argc)
		return cli_usage_error("audit", "unexpected argument '%s'", argv[optind]);

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
	int ret = cli_call("audit", state, "GET", strbuf_str(&path), NULL, &j);
	strbuf_done(&path);
	if (ret != EXIT_OK)
		return ret;
	if (json)
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

static int audit_checkpoint(int argc, char **argv)
{
	static const struct option options[] = { { "out", required_argument, NULL, 'o' },
						 { "state", required_argument, NULL, 's' },
						 {} };
	const char *out = NULL, *state = leading_state;
	int c;

	optind = 1;
	while ((c = getopt_long(argc, argv, "o:s:", options, NULL)) >= 0) {
		switch (c) {
		case 'o': out = optarg; break;
		case 's': state = optarg; break;
		default: return cli_usage_error("audit", "bad option");
		}
	}
	if (optind < argc)
		return cli_usage_error("audit", "unexpected argument '%s'", argv[optind]);
	json_t *j = NULL;
	int ret = cli_call("audit", state, "POST", "/v1/audit/checkpoint", NULL, &j);
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
		log_error("audit: %s: %s", out, strerror(-r));
		return EXIT_FAILURE_;
	}
	fprintf(stderr, "checkpoint written to %s\n", out);
	return EXIT_OK;
}

static int audit_pubkey(int argc, char **argv)
{
	const char *state = leading_state;
	if (argc >= 3 && !strcmp(argv[1], "--state"))
		state = argv[2];
	json_t *j = NULL;
	int ret = cli_call("audit", state, "GET", "/v1/audit/pubkey", NULL, &j);
	if (ret != EXIT_OK)
		return ret;
	printf("%s\n", json_string_value(json_object_get(j, "public_key")));
	json_decref(j);
	return EXIT_OK;
}

static int audit_verify(int argc, char **argv)
{
	static const struct option options[] = { { "checkpoint", required_argument, NULL, 'c' },
						 { "db", required_argument, NULL, 'd' },
						 { "pubkey", required_argument, NULL, 'p' },
						 { "state", required_argument, NULL, 's' },
						 {} };
	const char *cpfile = NULL, *db = NULL, *pubkey = NULL, *state = leading_state;
	BbxError err = BBX_ERROR_INIT;
	char dbpath[PATH_MAX], keyhex[65];
	AuditCheckpoint cp;
	int c, r;

	optind = 1;
	while ((c = getopt_long(argc, argv, "c:d:p:s:", options, NULL)) >= 0) {
		switch (c) {
		case 'c': cpfile = optarg; break;
		case 'd': db = optarg; break;
		case 'p': pubkey = optarg; break;
		case 's': state = optarg; break;
		default: return cli_usage_error("audit", "bad option");
		}
	}
	if (optind < argc)
		return cli_usage_error("audit", "unexpected argument '%s'", argv[optind]);
	if (db)
		snprintf(dbpath, sizeof(dbpath), "%s", db);
	else
		snprintf(dbpath, sizeof(dbpath), "%s/state.db", cli_state_dir(state));
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
	printf("audit chain valid: %lld records, head %s\n", (long long)res.size, res.head_hash);
	if (cpfile)
		printf("checkpoint valid: %lld records signed by key %s at %s\n",
		       (long long)cp.size, cp.key_id, cp.time);
	return EXIT_OK;
}

int verb_audit(int argc, char **argv)
{
	leading_state = cli_take_leading_state(&argc, argv);
	if (argc < 2 || cli_wants_help(argc, argv)) {
		audit_help();
		return argc < 2 ? EXIT_USAGE : EXIT_OK;
	}
	if (!strcmp(argv[1], "log"))
		return audit_log(argc - 1, argv + 1);
	if (!strcmp(argv[1], "checkpoint"))
		return audit_checkpoint(argc - 1, argv + 1);
	if (!strcmp(argv[1], "pubkey"))
		return audit_pubkey(argc - 1, argv + 1);
	if (!strcmp(argv[1], "verify"))
		return audit_verify(argc - 1, argv + 1);
	return cli_usage_error("audit", "unknown subcommand '%s' (log, checkpoint, pubkey, verify)",
			       argv[1]);
}
