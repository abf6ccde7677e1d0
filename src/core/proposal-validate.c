/* SPDX-License-Identifier: MIT */
/* The validation of a proposal: clone production, run its checks, record the evidence. */
#include "proposal.h"

#include <errno.h>
#include <pthread.h>
#include <sodium.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "audit.h"
#include "config.h"
#include "core-internal.h"
#include "environment.h"
#include "environments.h"
#include "gitrepo.h"
#include "journal.h"
#include "policy.h"
#include "proposals.h"
#include "proposal-internal.h"
#include "strbuf.h"

/* ---- validation: clone, run, check, record ---- */

void prop_destroy_preview(Core *c, const char *name)
{
	if (name && environment_exists(c, name)) {
		BbxError ignored = BBX_ERROR_INIT;
		(void)environment_destroy(c, name, &ignored);
	}
}

/* The end of a validation: state, evidence and its digest, in one row update. */
int prop_finish_validation(Core *c, ProposalRecord *rec, json_t *evidence, bool passed,
			   const char *error)
{
	char digest[65] = "";
	if (evidence) {
		json_object_set_new(evidence, "result", json_string(passed ? "passed" : "failed"));
		(void)proposal_json_digest(evidence, digest);
		json_object_set_new(evidence, "digest", json_string(digest));
		char *s = json_dumps(evidence, JSON_COMPACT | JSON_SORT_KEYS);
		free(rec->evidence_json);
		rec->evidence_json = s;
		prop_set_str(&rec->evidence_digest, digest);
	}
	/* A failed proposal's preview goes before anyone sees it failed. */
	if (!passed)
		prop_destroy_preview(c, rec->environment);
	char *expect = rec->state;
	rec->state = strdup(passed ? "validated" : "failed");
	prop_set_str(&rec->step, passed ? "validated: waiting for review" : "failed");
	prop_set_str(&rec->error, error);
	int r = proposal_record_update(core_store(c), rec, expect, NULL);
	free(expect);
	if (passed && r < 0) /* rejected meanwhile */
		prop_destroy_preview(c, rec->environment);
	if (r >= 0)
		prop_audit_transition(c, NULL, rec, error);
	return r;
}

/* The commit the preview runs: what production would run once merged. */
const char *prop_validated_commit(const ProposalRecord *r)
{
	return r->validate_commit ? r->validate_commit : r->head_commit;
}

static bool cut_short(Core *c)
{
	return environments_shutting_down(c);
}

void prop_validate_run(Proposals *P, const char *id, int attempt)
{
	Core *c = P->core;
	Store *s = core_store(c);
	ProposalRecord rec;
	BbxError err = BBX_ERROR_INIT;
	int64_t jid = 0;
	json_t *evidence = NULL;
	_cleanup_(config_freep) ProjectConfig *prod_cfg = NULL, *branch_cfg = NULL;

	if (proposal_record_get(s, id, &rec, NULL) < 0)
		return;
	char payload[64];
	snprintf(payload, sizeof(payload), "{\"attempt\":%d}", attempt);
	if (journal_begin(s, "proposal.validate", id, "intent", payload, &jid, NULL) < 0) {
		proposal_record_done(&rec);
		return;
	}
	uint64_t t_start = prop_now_ms();
	/* cloning: a fresh preview of production, at exactly the head commit */
	char *expect = rec.state;
	rec.state = strdup("cloning");
	prop_set_str(&rec.step, "cloning production into a preview");
	int r = proposal_record_update(s, &rec, expect, NULL);
	free(expect);
	if (r < 0)
		goto out_done;			  /* rejected meanwhile */
	prop_destroy_preview(c, rec.environment); /* what an interrupted attempt left */
	/* Production comes back by itself after a daemon start: clone it once it is up. */
	for (uint64_t until = prop_now_ms() + PRODUCTION_WAIT_MS; prop_now_ms() < until;) {
		EnvRecord pr;
		if (env_record_get(s, core_production_branch(c), &pr, NULL) < 0)
			break;
		bool starting = pr.state == ENV_STARTING || pr.state == ENV_CREATING;
		env_record_done(&pr);
		if (!starting)
			break;
		if (cut_short(c))
			goto out_left;
		struct timespec ts = { 0, 200 * 1000 * 1000 };
		nanosleep(&ts, NULL);
	}
	(void)journal_step(s, jid, "clone", NULL);
	environment_debug_stop_point("proposal-validate", "clone");

	evidence = json_pack("{s:s,s:s,s:s,s:i}", "base", rec.base_commit, "head", rec.head_commit,
			     "branch", rec.source_branch, "attempt", attempt);
	EnvRecord prod;
	r = env_record_get(s, core_production_branch(c), &prod, &err);
	if (r >= 0) {
		json_object_set_new(evidence, "production_commit", json_string(prod.commit_id));
		r = environment_config_at(c, prod.commit_id, &prod_cfg, &err);
		env_record_done(&prod);
	}
	if (r >= 0)
		r = environment_config_at(c, prop_validated_commit(&rec), &branch_cfg, &err);
	if (rec.validate_commit)
		json_object_set_new(evidence, "validated_commit", json_string(rec.validate_commit));
	uint64_t t0 = prop_now_ms();
	json_t *info = NULL;
	if (r >= 0) {
		EnvCreateOptions o = { .name = rec.environment,
				       .branch = prop_validated_commit(&rec),
				       .created_by = rec.created_by,
				       .token_id = rec.token_id };
		r = environment_create(c, &o, &info, &err);
		json_decref(info);
	}
	json_t *timings = json_object();
	json_object_set_new(timings, "clone_ms", json_integer((json_int_t)(prop_now_ms() - t0)));
	json_object_set_new(evidence, "timings", timings);
	if (r < 0) {
		if (cut_short(c))
			goto out_left; /* the next start validates again */
		json_object_set_new(evidence, "clone_error",
				    json_string(bbx_error_message(&err, r)));
		(void)prop_finish_validation(c, &rec, evidence, false, bbx_error_message(&err, r));
		goto out_done;
	}

	/* validating: production's steps decide, the branch's own run too */
	expect = rec.state;
	rec.state = strdup("validating");
	prop_set_str(&rec.step, "validating");
	r = proposal_record_update(s, &rec, expect, NULL);
	free(expect);
	if (r < 0) {
		prop_destroy_preview(c, rec.environment);
		goto out_done;
	}
	(void)journal_step(s, jid, "steps", NULL);
	environment_debug_stop_point("proposal-validate", "steps");
	t0 = prop_now_ms();
	json_t *steps = NULL, *bsteps = NULL;
	bool passed = false;
	r = proposal_validate_steps(c, rec.environment, prod_cfg, branch_cfg, rec.id, &steps,
				    &bsteps, &passed, &err);
	if (r < 0) {
		if (cut_short(c))
			goto out_left;
		prop_destroy_preview(c, rec.environment);
		(void)prop_finish_validation(c, &rec, evidence, false, bbx_error_message(&err, r));
		goto out_done;
	}
	json_object_set_new(timings, "validate_ms", json_integer((json_int_t)(prop_now_ms() - t0)));
	json_object_set_new(evidence, "steps", steps);
	json_object_set_new(evidence, "branch_steps", bsteps);
	json_object_set_new(evidence, "config_diff", proposal_config_diff(prod_cfg, branch_cfg));
	if (prod_cfg->n_validate == 0) {
		passed = false;
		json_object_set_new(evidence, "note",
				    json_string("production's config has no validate steps: "
						"nothing proves this change"));
	}

	GitDiff d;
	if (gitrepo_diff(P->repo, rec.base_commit, prop_validated_commit(&rec), 0, &d, NULL) >= 0) {
		json_t *files = json_array();
		for (size_t i = 0; i < d.n_files; i++)
			json_array_append_new(
				files, json_pack("{s:s,s:s#,s:I,s:I,s:b}", "path", d.files[i].path,
						 "status", &d.files[i].status, (int)1, "additions",
						 (json_int_t)d.files[i].additions, "deletions",
						 (json_int_t)d.files[i].deletions, "binary",
						 d.files[i].binary));
		json_object_set_new(evidence, "code_diff",
				    json_pack("{s:I,s:I,s:I,s:o}", "files_changed",
					      (json_int_t)d.n_files, "additions",
					      (json_int_t)d.additions, "deletions",
					      (json_int_t)d.deletions, "files", files));
		gitrepo_diff_done(&d);
	}
	EnvMeasure m;
	environment_measure(c, rec.environment, true, &m);
	json_t *res = json_object();
	if (m.cpu_usec != UINT64_MAX)
		json_object_set_new(res, "cpu_seconds", json_real((double)m.cpu_usec / 1e6));
	if (m.memory_peak != UINT64_MAX)
		json_object_set_new(res, "memory_peak_bytes",
				    json_integer((json_int_t)m.memory_peak));
	if (m.memory_current != UINT64_MAX)
		json_object_set_new(res, "memory_current_bytes",
				    json_integer((json_int_t)m.memory_current));
	if (m.disk_bytes != UINT64_MAX)
		json_object_set_new(res, "disk_bytes", json_integer((json_int_t)m.disk_bytes));
	json_object_set_new(evidence, "resources", res);
	json_object_set_new(timings, "total_ms",
			    json_integer((json_int_t)(prop_now_ms() - t_start)));

	char why[256] = "";
	if (!passed) {
		size_t i;
		json_t *st;
		json_array_foreach(
			json_object_get(evidence, "steps"), i,
			st) if (!json_is_true(json_object_get(st, "passed"))) if (!why[0])
			snprintf(why, sizeof(why), "production step '%s' failed: %s",
				 json_string_value(json_object_get(st, "name")),
				 json_string_value(json_object_get(st, "reason"))
					 ? json_string_value(json_object_get(st, "reason"))
					 : "failed");
		json_array_foreach(
			json_object_get(evidence, "branch_steps"), i,
			st) if (!json_is_true(json_object_get(st, "passed"))) if (!why[0])
			snprintf(why, sizeof(why), "branch step '%s' failed",
				 json_string_value(json_object_get(st, "name")));
		if (!why[0])
			snprintf(why, sizeof(why), "production's config has no validate steps");
	}
	(void)prop_finish_validation(c, &rec, evidence, passed, why[0] ? why : NULL);
out_done:
	(void)journal_finish(s, jid, "done", NULL);
out_left:
	json_decref(evidence);
	proposal_record_done(&rec);
}
