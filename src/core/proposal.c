/* SPDX-License-Identifier: MIT */
/* The proposal workflow (proposal.h). */
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

static Proposals *props_of(Core *c)
{
	return c->proposals;
}

uint64_t prop_now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

static void iso_now(char buf[static 32])
{
	time_t t = time(NULL);
	struct tm tm;
	gmtime_r(&t, &tm);
	strftime(buf, 32, "%Y-%m-%dT%H:%M:%SZ", &tm);
}

static int not_ready(BbxError *err)
{
	return bbx_error_set(err, -EBUSY, BBX_UNAVAILABLE,
			     "proposals are not available: the daemon is starting or stopping");
}

void prop_set_str(char **field, const char *v)
{
	char *n = v ? strdup(v) : NULL;
	free(*field);
	*field = n;
}

/* ---- audit: every transition, with its commits and evidence digest ---- */

void prop_audit_transition(Core *c, const OpCall *call, const ProposalRecord *r, const char *detail)
{
	Principal system = { .kind = PRINCIPAL_ROOT };
	snprintf(system.name, sizeof(system.name), "system:proposals");
	char resource[96], reason[1024];
	snprintf(resource, sizeof(resource), "proposal:%s", r->id);
	snprintf(reason, sizeof(reason), "%s base=%s head=%s evidence=%s%s%s", r->state,
		 r->base_commit, r->head_commit, r->evidence_digest ? r->evidence_digest : "-",
		 detail ? ": " : "", detail ? detail : "");
	AuditRecord rec = {
		.request_id = call && call->request_id ? call->request_id : "proposals",
		.principal = call ? call->principal : &system,
		.interface = call && call->interface ? call->interface : "daemon",
		.action = "proposal.transition",
		.resource = resource,
		.decision = "allow",
		.reason = reason,
		.request_digest = call && call->request_digest ? call->request_digest : "",
		.outcome = r->state,
	};
	(void)audit_append(c, &rec, NULL, NULL);
}

/* ---- visibility ---- */

/* A proposal outside what the principal can see does not exist for it. */
static bool visible(Core *c, const Principal *p, const ProposalRecord *r)
{
	if (p->kind == PRINCIPAL_ROOT)
		return true;
	if (p->token_id[0] && r->token_id && !strcmp(p->token_id, r->token_id))
		return true;
	if (p->kind == PRINCIPAL_AGENT)
		return false;
	return policy_can_see_environment(c, p, r->source_branch) ||
	       (r->environment && policy_can_see_environment(c, p, r->environment));
}

/* Reading proposals takes one of the proposal verbs: the submitter's, a reviewer's or a
 * merger's. */
static int may_read(const Principal *p, BbxError *err)
{
	if (p->verbs & (VERB_PROPOSAL_SUBMIT | VERB_PROPOSAL_REVIEW | VERB_PROPOSAL_MERGE))
		return 0;
	return bbx_error_set(err, -EACCES, BBX_FORBIDDEN,
			     "this token may not read proposals (it needs proposal:submit, "
			     "proposal:review or proposal:merge)");
}

static int load_visible(OpCall *call, const char *id, ProposalRecord *ret, BbxError *err)
{
	BbxError ignored = BBX_ERROR_INIT;
	int rv = may_read(call->principal, err);
	if (rv < 0)
		return rv;
	int r = proposal_record_get(core_store(call->core), id, ret, &ignored);
	if (r == -ENOENT || (r >= 0 && !visible(call->core, call->principal, ret))) {
		if (r >= 0)
			proposal_record_done(ret);
		return bbx_error_set(err, -ENOENT, BBX_NOT_FOUND, "proposal '%s' not found", id);
	}
	if (r < 0)
		return bbx_error_set(err, r, BBX_INTERNAL, "%s", bbx_error_message(&ignored, r));
	return 0;
}

static json_t *parse_or_null(const char *s)
{
	json_t *j = s ? json_loads(s, 0, NULL) : NULL;
	return j ? j : json_null();
}

static json_t *record_json(const ProposalRecord *r, bool full)
{
	json_t *o = json_pack(
		"{s:s,s:s?,s:s,s:s?,s:s,s:s?,s:s,s:s,s:s?,s:s?,s:s?,s:s,s:I,s:I,s:s?}", "id", r->id,
		"kind", r->kind, "status", r->state, "step", r->step, "branch", r->source_branch,
		"preview", r->environment, "base", r->base_commit, "head", r->head_commit, "title",
		r->title, "description", r->description, "error", r->error, "created_by",
		r->created_by, "created_at", (json_int_t)r->created_at, "updated_at",
		(json_int_t)r->updated_at, "evidence_digest", r->evidence_digest);
	if (!o)
		return NULL;
	json_t *ev = parse_or_null(r->evidence_json);
	if (full)
		json_object_set(o, "evidence", ev);
	else if (json_is_object(ev))
		json_object_set(o, "result", json_object_get(ev, "result"));
	json_decref(ev);
	if (r->validate_commit)
		json_object_set_new(o, "validated_commit", json_string(r->validate_commit));
	json_object_set_new(o, "review", parse_or_null(r->review_json));
	json_object_set_new(o, "merge", parse_or_null(r->merge_json));
	return o;
}

/* ---- jobs ---- */

static void merge_recover(Proposals *P, PropJob *job);

static void job_run(void *userdata)
{
	PropJob *job = userdata;
	if (job->merge)
		merge_recover(job->P, job);
	else
		prop_validate_run(job->P, job->id, job->attempt);
}

static void job_free(void *userdata)
{
	PropJob *job = userdata;
	free(job->payload);
	free(job);
}

/* Run job on a thread of its own (joined when done, or at shutdown); takes job. */
static int job_start(Proposals *P, PropJob *job)
{
	jobs_reap(&P->jobs, false);
	job->P = P;
	return jobs_start(&P->jobs, NULL, job_run, job, job_free);
}

static int start_validation(Proposals *P, const char *id, int attempt)
{
	PropJob *job = calloc(1, sizeof(*job));
	if (!job)
		return -ENOMEM;
	snprintf(job->id, sizeof(job->id), "%s", id);
	job->attempt = attempt;
	return job_start(P, job);
}

/* ---- submit ---- */

static void new_id(char buf[static 16])
{
	unsigned char b[4];
	randombytes_buf(b, sizeof(b));
	snprintf(buf, 16, "p-%02x%02x%02x%02x", b[0], b[1], b[2], b[3]);
}

int proposal_submit(OpCall *call, const ProposalSubmitOptions *o, json_t **ret, BbxError *err)
{
	Core *c = call->core;
	Proposals *P = props_of(c);
	const Principal *p = call->principal;
	const char *prod = core_production_branch(c);
	char base[GITREPO_ID_SIZE], head[GITREPO_ID_SIZE], id[16], branch[128];
	int r;

	if (!P)
		return not_ready(err);
	if (!!o->branch == !!o->patch)
		return bbx_error_set(err, -EINVAL, BBX_INVALID,
				     "input: give exactly one of 'branch' and 'patch'");
	if (o->title && strlen(o->title) > TITLE_MAX)
		return bbx_error_set(err, -EINVAL, BBX_INVALID,
				     "input: 'title' is longer than %d bytes", TITLE_MAX);
	if (o->description && strlen(o->description) > DESCRIPTION_MAX)
		return bbx_error_set(err, -EINVAL, BBX_INVALID,
				     "input: 'description' is longer than %d bytes",
				     DESCRIPTION_MAX);
	if (o->patch && strlen(o->patch) > GITREPO_PATCH_MAX)
		return bbx_error_set(err, -EFBIG, BBX_INVALID,
				     "input: 'patch' is larger than %zu bytes", GITREPO_PATCH_MAX);
	EnvRecord prec;
	r = env_record_get(core_store(c), prod, &prec, NULL);
	if (r < 0)
		return bbx_error_set(err, -EBUSY, BBX_CONFLICT,
				     "production ('%s') is not deployed: there is nothing to "
				     "propose a change to",
				     prod);
	env_record_done(&prec);
	r = gitrepo_resolve(P->repo, prod, base, err);
	if (r < 0)
		return r;
	new_id(id);
	if (o->branch) {
		if (!gitrepo_branch_name_is_valid(o->branch))
			return bbx_error_set(err, -EINVAL, BBX_INVALID,
					     "branch: '%s' is not a valid branch name", o->branch);
		if (!strcmp(o->branch, prod))
			return bbx_error_set(err, -EPERM, BBX_FORBIDDEN,
					     "branch: '%s' is the production branch; propose a "
					     "change on another branch",
					     o->branch);
		BbxError ignored = BBX_ERROR_INIT;
		/* A branch outside the token's scope does not exist for it. */
		if (!policy_can_see_environment(c, p, o->branch) ||
		    gitrepo_resolve(P->repo, o->branch, head, &ignored) < 0)
			return bbx_error_set(err, -ENOENT, BBX_NOT_FOUND,
					     "branch: '%s' not found in the repository", o->branch);
		snprintf(branch, sizeof(branch), "%s", o->branch);
		if (!strcmp(head, base))
			return bbx_error_set(err, -EINVAL, BBX_INVALID,
					     "branch: '%s' is at production's commit: nothing to "
					     "propose",
					     o->branch);
	} else {
		snprintf(branch, sizeof(branch), "proposal/%s", id);
		char author[200], message[1200];
		snprintf(author, sizeof(author), "%s:%s <%s@branchbox.invalid>",
			 principal_kind_to_string(p->kind), p->name,
			 principal_kind_to_string(p->kind));
		snprintf(message, sizeof(message), "%s\n\nProposal: %s\n",
			 o->title && *o->title ? o->title : "Proposed change", id);
		GitApplyRequest req = { .base = base,
					.patch = o->patch,
					.patch_size = strlen(o->patch),
					.author = author,
					.message = message,
					.branch = branch };
		r = gitrepo_apply_patch(P->repo, &req, head, err);
		if (r < 0) {
			bbx_error_prefix(err, "patch");
			return r;
		}
	}
	/* What production would run after the merge is what gets validated: the head itself for
	 * a fast-forward, otherwise the merge of head into base (a conflict is refused now). */
	char merged[GITREPO_ID_SIZE] = "";
	bool ff = false;
	r = gitrepo_is_ancestor(P->repo, base, head, &ff, err);
	if (r < 0)
		return r;
	if (!ff) {
		GitMergeResult mr;
		char author[160], message[200];
		snprintf(author, sizeof(author), "%s <%s>", GITREPO_COMMITTER_NAME,
			 GITREPO_COMMITTER_EMAIL);
		snprintf(message, sizeof(message), "Validation merge of proposal %s\n", id);
		r = gitrepo_merge(P->repo, base, head, author, message, &mr, err);
		if (r == -EEXIST) {
			bbx_error_prefix(err,
					 "branch '%s' conflicts with production ('%s'); rebase it "
					 "and propose again",
					 branch, core_production_branch(c));
			gitrepo_merge_result_done(&mr);
			return r;
		}
		if (r < 0)
			return r;
		if (mr.kind == GITREPO_MERGE_COMMIT)
			snprintf(merged, sizeof(merged), "%s", mr.id);
		gitrepo_merge_result_done(&mr);
		if (!merged[0])
			return bbx_error_set(
				err, -EINVAL, BBX_INVALID,
				"branch '%s' is already part of production: nothing to "
				"propose",
				branch);
	}
	int64_t now = store_now();
	ProposalRecord rec = { .validate_commit = merged[0] ? merged : NULL,
			       .id = id,
			       .kind = o->branch ? "branch" : "patch",
			       .environment = id,
			       .source_branch = branch,
			       .base_commit = base,
			       .head_commit = head,
			       .state = "submitted",
			       .step = "queued for validation",
			       .title = (char *)o->title,
			       .description = (char *)o->description,
			       .created_by = (char *)p->name,
			       .token_id = p->token_id[0] ? (char *)p->token_id : NULL,
			       .created_at = now,
			       .updated_at = now };
	r = proposal_record_insert(core_store(c), &rec, err);
	if (r < 0)
		return r;
	prop_audit_transition(c, call, &rec, o->title);
	r = start_validation(P, id, 1);
	if (r < 0)
		return bbx_error_set(err, r, BBX_INTERNAL, "starting the validation: %s",
				     strerror(-r));
	*ret = json_pack("{s:s,s:s,s:s,s:s,s:s,s:s}", "id", id, "status", "submitted", "branch",
			 branch, "base", base, "head", head, "preview", id);
	return *ret ? 0 : -ENOMEM;
}

/* ---- reading ---- */

int proposal_list(OpCall *call, json_t **ret, BbxError *err)
{
	ProposalRecord *v = NULL;
	size_t n = 0;
	int r = may_read(call->principal, err);
	if (r < 0)
		return r;
	r = proposal_record_list(core_store(call->core), &v, &n, err);
	if (r < 0)
		return r;
	json_t *list = json_array();
	for (size_t i = 0; i < n; i++)
		if (visible(call->core, call->principal, &v[i]))
			json_array_append_new(list, record_json(&v[i], false));
	proposal_records_free(v, n);
	*ret = json_pack("{s:o}", "proposals", list);
	return *ret ? 0 : -ENOMEM;
}

int proposal_get(OpCall *call, const char *id, json_t **ret, BbxError *err)
{
	ProposalRecord rec;
	int r = load_visible(call, id, &rec, err);
	if (r < 0)
		return r;
	*ret = record_json(&rec, true);
	proposal_record_done(&rec);
	return *ret ? 0 : -ENOMEM;
}

int proposal_diff(OpCall *call, const char *id, json_t **ret, BbxError *err)
{
	Proposals *P = props_of(call->core);
	ProposalRecord rec;
	if (!P)
		return not_ready(err);
	int r = load_visible(call, id, &rec, err);
	if (r < 0)
		return r;
	GitDiff d;
	r = gitrepo_diff(P->repo, rec.base_commit, prop_validated_commit(&rec), DIFF_MAX_PATCH, &d,
			 err);
	if (r >= 0) {
		json_t *files = json_array();
		for (size_t i = 0; i < d.n_files; i++)
			json_array_append_new(
				files, json_pack("{s:s,s:s#,s:I,s:I,s:b}", "path", d.files[i].path,
						 "status", &d.files[i].status, (int)1, "additions",
						 (json_int_t)d.files[i].additions, "deletions",
						 (json_int_t)d.files[i].deletions, "binary",
						 d.files[i].binary));
		*ret = json_pack("{s:s,s:s,s:s,s:o,s:I,s:I,s:o,s:b}", "id", rec.id, "base",
				 rec.base_commit, "head", rec.head_commit, "files", files,
				 "additions", (json_int_t)d.additions, "deletions",
				 (json_int_t)d.deletions, "patch",
				 ops_json_string_lossy(d.patch ? d.patch : "", d.patch_size),
				 "patch_truncated", d.patch_truncated);
		gitrepo_diff_done(&d);
		if (!*ret)
			r = -ENOMEM;
	}
	proposal_record_done(&rec);
	return r;
}

/* ---- review ---- */

/* Mark rec stale (the commits it was validated or approved on moved) and take its preview
 * down; returns the refusal. */
static int go_stale(OpCall *call, ProposalRecord *rec, const char *why, BbxError *err)
{
	char *expect = rec->state;
	rec->state = strdup("stale");
	prop_set_str(&rec->step, "stale");
	prop_set_str(&rec->error, why);
	if (proposal_record_update(core_store(call->core), rec, expect, NULL) >= 0) {
		prop_audit_transition(call->core, call, rec, why);
		prop_destroy_preview(call->core, rec->environment);
	}
	free(expect);
	return bbx_error_set(err, -ESTALE, BBX_CONFLICT, "%s", why);
}

/* Whether production and the proposal's branch are still where rec says; refuses (and marks
 * the proposal stale) when not. */
static int check_commits(OpCall *call, Proposals *P, ProposalRecord *rec, BbxError *err)
{
	char now_head[GITREPO_ID_SIZE], now_base[GITREPO_ID_SIZE], why[512];
	BbxError ignored = BBX_ERROR_INIT;
	if (gitrepo_resolve(P->repo, rec->source_branch, now_head, &ignored) < 0)
		snprintf(now_head, sizeof(now_head), "(deleted)");
	if (strcmp(now_head, rec->head_commit)) {
		snprintf(why, sizeof(why),
			 "proposal %s: branch '%s' moved after validation (now %.12s, validated "
			 "%.12s): a new commit needs a new proposal, validation and approval",
			 rec->id, rec->source_branch, now_head, rec->head_commit);
		return go_stale(call, rec, why, err);
	}
	int r = gitrepo_resolve(P->repo, core_production_branch(call->core), now_base, err);
	if (r < 0)
		return r;
	if (strcmp(now_base, rec->base_commit)) {
		snprintf(
			why, sizeof(why),
			"proposal %s: production ('%s') moved past the proposal's base (now "
			"%.12s, base %.12s): submit it again to validate it on production as it is",
			rec->id, core_production_branch(call->core), now_base, rec->base_commit);
		return go_stale(call, rec, why, err);
	}
	return 0;
}

int proposal_approve(OpCall *call, const char *id, json_t **ret, BbxError *err)
{
	Proposals *P = props_of(call->core);
	const Principal *p = call->principal;
	ProposalRecord rec;
	if (!P)
		return not_ready(err);
	if (p->kind == PRINCIPAL_AGENT)
		return bbx_error_set(err, -EACCES, BBX_FORBIDDEN,
				     "agents can never review proposals");
	int r = load_visible(call, id, &rec, err);
	if (r < 0)
		return r;
	if (strcmp(rec.state, "validated")) {
		r = bbx_error_set(err, -EBUSY, BBX_CONFLICT,
				  "proposal %s is %s: only a validated proposal can be approved",
				  id, rec.state);
		goto out;
	}
	r = check_commits(call, P, &rec, err);
	if (r < 0)
		goto out;
	char at[32];
	iso_now(at);
	json_t *review = json_pack("{s:s,s:s,s:s,s:s?,s:s,s:s,s:s,s:s}", "decision", "approved",
				   "by", p->name, "kind", principal_kind_to_string(p->kind),
				   "token_id", p->token_id[0] ? p->token_id : NULL, "base",
				   rec.base_commit, "head", rec.head_commit, "evidence_digest",
				   rec.evidence_digest ? rec.evidence_digest : "", "at", at);
	free(rec.review_json);
	rec.review_json = json_dumps(review, JSON_COMPACT | JSON_SORT_KEYS);
	json_decref(review);
	free(rec.state);
	rec.state = strdup("approved");
	prop_set_str(&rec.step, "approved: waiting for merge");
	r = proposal_record_update(core_store(call->core), &rec, "validated", err);
	if (r < 0)
		goto out;
	prop_audit_transition(call->core, call, &rec, p->name);
	*ret = record_json(&rec, false);
	r = *ret ? 0 : -ENOMEM;
out:
	proposal_record_done(&rec);
	return r;
}

int proposal_reject(OpCall *call, const char *id, const char *reason, json_t **ret, BbxError *err)
{
	const Principal *p = call->principal;
	ProposalRecord rec;
	if (p->kind == PRINCIPAL_AGENT)
		return bbx_error_set(err, -EACCES, BBX_FORBIDDEN,
				     "agents can never review proposals");
	if (!reason || !*reason)
		return bbx_error_set(err, -EINVAL, BBX_INVALID, "input: 'reason' is required");
	Proposals *P = props_of(call->core);
	if (!P)
		return not_ready(err);
	/* Never while a merge of it is under way: read its state once that is over. */
	pthread_mutex_lock(&P->merge_lock);
	int r = load_visible(call, id, &rec, err);
	if (r < 0) {
		pthread_mutex_unlock(&P->merge_lock);
		return r;
	}
	if (strcmp(rec.state, "validated") && strcmp(rec.state, "approved") &&
	    strcmp(rec.state, "failed")) {
		r = bbx_error_set(err, -EBUSY, BBX_CONFLICT,
				  "proposal %s is %s: only a validated, approved or failed "
				  "proposal can be rejected",
				  id, rec.state);
		goto out;
	}
	char at[32];
	iso_now(at);
	json_t *review = json_pack("{s:s,s:s,s:s,s:s?,s:s,s:s}", "decision", "rejected", "by",
				   p->name, "kind", principal_kind_to_string(p->kind), "token_id",
				   p->token_id[0] ? p->token_id : NULL, "reason", reason, "at", at);
	free(rec.review_json);
	rec.review_json = json_dumps(review, JSON_COMPACT | JSON_SORT_KEYS);
	json_decref(review);
	char *expect = rec.state;
	rec.state = strdup("rejected");
	prop_set_str(&rec.step, "rejected");
	r = proposal_record_update(core_store(call->core), &rec, expect, err);
	free(expect);
	if (r < 0)
		goto out;
	prop_audit_transition(call->core, call, &rec, reason);
	prop_destroy_preview(call->core, rec.environment);
	*ret = record_json(&rec, false);
	r = *ret ? 0 : -ENOMEM;
out:
	pthread_mutex_unlock(&P->merge_lock);
	proposal_record_done(&rec);
	return r;
}

/* ---- merge ---- */

/* After the compare-and-swap: redeploy production on the merged commit. When the redeploy
 * fails, production's branch goes back to base and production is redeployed as it was:
 * production's branch is base or target, never anything else. */
static int merge_deploy(Core *c, Proposals *P, ProposalRecord *rec, const char *target,
			const char *kind, const char *by, int64_t jid, const OpCall *call,
			BbxError *err)
{
	Store *s = core_store(c);
	(void)journal_step(s, jid, "deploy", NULL);
	environment_debug_stop_point("merge", "deploy");
	uint64_t t0 = prop_now_ms();
	int r = environment_deploy(c, NULL, err);
	char at[32];
	iso_now(at);
	json_t *m = json_pack("{s:s,s:s,s:s,s:s,s:I}", "kind", kind, "commit", target, "by", by,
			      "at", at, "deploy_ms", (json_int_t)(prop_now_ms() - t0));
	if (r < 0) {
		if (environments_shutting_down(c))
			return r; /* the next start finishes it */
		char why[1024];
		snprintf(why, sizeof(why),
			 "production's redeploy failed, so the merge was undone: %s",
			 bbx_error_message(err, r));
		BbxError e2 = BBX_ERROR_INIT;
		if (gitrepo_branch_cas(P->repo, core_production_branch(c), target, rec->base_commit,
				       "branchbox: undo a merge whose deploy failed", &e2) >= 0)
			(void)environment_deploy(c, NULL, &e2);
		json_object_set_new(m, "error", json_string(why));
		json_object_set_new(m, "rolled_back_to", json_string(rec->base_commit));
		free(rec->merge_json);
		rec->merge_json = json_dumps(m, JSON_COMPACT | JSON_SORT_KEYS);
		json_decref(m);
		free(rec->state);
		rec->state = strdup("failed");
		prop_set_str(&rec->step,
			     "failed: production's redeploy failed; production was rolled back");
		prop_set_str(&rec->error, why);
		prop_destroy_preview(c, rec->environment);
		(void)proposal_record_update(s, rec, "approved", NULL);
		(void)journal_finish(s, jid, "undone", NULL);
		prop_audit_transition(c, call, rec, why);
		return bbx_error_reset(err, -EIO, BBX_FAILED, "%s", why);
	}
	/* The preview goes first: a merged proposal has nothing left running. */
	prop_destroy_preview(c, rec->environment);
	free(rec->merge_json);
	rec->merge_json = json_dumps(m, JSON_COMPACT | JSON_SORT_KEYS);
	json_decref(m);
	free(rec->state);
	rec->state = strdup("merged");
	prop_set_str(&rec->step, "merged and deployed");
	prop_set_str(&rec->error, NULL);
	r = proposal_record_update(s, rec, "approved", err);
	(void)journal_finish(s, jid, r >= 0 ? "done" : "failed", NULL);
	if (r < 0)
		return r;
	char detail[160];
	snprintf(detail, sizeof(detail), "%s to %s", kind, target);
	prop_audit_transition(c, call, rec, detail);
	return 0;
}

int proposal_merge(OpCall *call, const char *id, json_t **ret, BbxError *err)
{
	Core *c = call->core;
	Proposals *P = props_of(c);
	const Principal *p = call->principal;
	ProposalRecord rec;
	if (!P)
		return not_ready(err);
	if (p->kind == PRINCIPAL_AGENT)
		return bbx_error_set(err, -EACCES, BBX_FORBIDDEN, "agents can never merge");
	int r = load_visible(call, id, &rec, err);
	if (r < 0)
		return r;
	pthread_mutex_lock(&P->merge_lock);
	/* Another merge may have finished meanwhile: read the row again under the lock. */
	proposal_record_done(&rec);
	r = load_visible(call, id, &rec, err);
	if (r < 0) {
		pthread_mutex_unlock(&P->merge_lock);
		return r;
	}
	if (strcmp(rec.state, "approved")) {
		r = bbx_error_set(err, -EBUSY, BBX_CONFLICT,
				  "proposal %s is %s: only an approved proposal can be merged", id,
				  rec.state);
		goto out;
	}
	/* The approval binds base, head and evidence: all three must still be what it saw. */
	json_t *review = parse_or_null(rec.review_json);
	const char *ah = json_string_value(json_object_get(review, "head"));
	const char *ab = json_string_value(json_object_get(review, "base"));
	const char *ad = json_string_value(json_object_get(review, "evidence_digest"));
	bool bound = ah && ab && ad && !strcmp(ah, rec.head_commit) &&
		     !strcmp(ab, rec.base_commit) && rec.evidence_digest &&
		     !strcmp(ad, rec.evidence_digest);
	char approver[80];
	snprintf(approver, sizeof(approver), "%s",
		 json_string_value(json_object_get(review, "by"))
			 ? json_string_value(json_object_get(review, "by"))
			 : "?");
	json_decref(review);
	if (!bound) {
		r = go_stale(call, &rec,
			     "the approval does not match the proposal's commits and evidence",
			     err);
		goto out;
	}
	r = check_commits(call, P, &rec, err);
	if (r < 0)
		goto out;

	char author[160], message[1024];
	snprintf(author, sizeof(author), "%s <%s>", GITREPO_COMMITTER_NAME,
		 GITREPO_COMMITTER_EMAIL);
	snprintf(message, sizeof(message),
		 "Merge proposal %s: %s\n\nProposal: %s\nApproved-by: %s\nEvidence: sha256:%s\n",
		 rec.id, rec.title && *rec.title ? rec.title : rec.source_branch, rec.id, approver,
		 rec.evidence_digest);
	GitMergeResult mr;
	r = gitrepo_merge(P->repo, rec.base_commit, rec.head_commit, author, message, &mr, err);
	if (r == -EEXIST) {
		bbx_error_prefix(err,
				 "proposal %s cannot be merged: it conflicts with production; "
				 "rebase the branch and propose again",
				 rec.id);
		gitrepo_merge_result_done(&mr);
		goto out;
	}
	if (r < 0)
		goto out;
	const char *kind = mr.kind == GITREPO_MERGE_FAST_FORWARD ? "fast-forward"
			   : mr.kind == GITREPO_MERGE_COMMIT	 ? "merge-commit"
								 : "up-to-date";
	char target[GITREPO_ID_SIZE];
	snprintf(target, sizeof(target), "%s", mr.id);
	gitrepo_merge_result_done(&mr);
	/* Production gets exactly the tree that was validated. */
	GitDiff same;
	r = gitrepo_diff(P->repo, prop_validated_commit(&rec), target, 0, &same, err);
	if (r < 0)
		goto out;
	size_t differ = same.n_files;
	gitrepo_diff_done(&same);
	if (differ) {
		r = bbx_error_set(err, -ESTALE, BBX_CONFLICT,
				  "proposal %s: the merge differs from what was validated (%zu "
				  "files); submit it again",
				  rec.id, differ);
		goto out;
	}

	char payload[512];
	snprintf(
		payload, sizeof(payload),
		"{\"base\":\"%s\",\"head\":\"%s\",\"target\":\"%s\",\"kind\":\"%s\",\"by\":\"%s\"}",
		rec.base_commit, rec.head_commit, target, kind, approver);
	int64_t jid = 0;
	Store *s = core_store(c);
	r = journal_begin(s, "proposal.merge", rec.id, "intent", payload, &jid, err);
	if (r < 0)
		goto out;
	(void)proposal_record_set_step(s, rec.id, "merging", NULL);
	environment_debug_stop_point("merge", "cas");
	char logmsg[160];
	snprintf(logmsg, sizeof(logmsg), "branchbox: merge proposal %s", rec.id);
	r = gitrepo_branch_cas(P->repo, core_production_branch(c), rec.base_commit, target, logmsg,
			       err);
	if (r < 0) {
		(void)journal_finish(s, jid, "undone", NULL);
		if (r == -ESTALE) {
			char why[256];
			snprintf(why, sizeof(why),
				 "proposal %s: production moved while it was being merged", rec.id);
			r = go_stale(call, &rec, why, err);
		}
		goto out;
	}
	r = merge_deploy(c, P, &rec, target, kind, p->name, jid, call, err);
	if (r >= 0) {
		*ret = record_json(&rec, false);
		r = *ret ? 0 : -ENOMEM;
	}
out:
	pthread_mutex_unlock(&P->merge_lock);
	proposal_record_done(&rec);
	return r;
}

/* ---- recovery ---- */

static void merge_recover(Proposals *P, PropJob *job)
{
	Core *c = P->core;
	Store *s = core_store(c);
	ProposalRecord rec;
	BbxError err = BBX_ERROR_INIT;
	json_t *pl = json_loads(job->payload ? job->payload : "{}", 0, NULL);
	const char *base = json_string_value(json_object_get(pl, "base"));
	const char *target = json_string_value(json_object_get(pl, "target"));
	const char *kind = json_string_value(json_object_get(pl, "kind"));
	const char *by = json_string_value(json_object_get(pl, "by"));
	char now[GITREPO_ID_SIZE];

	pthread_mutex_lock(&P->merge_lock);
	if (!base || !target || proposal_record_get(s, job->id, &rec, NULL) < 0) {
		(void)journal_finish(s, job->journal_id, "failed", NULL);
		goto out;
	}
	if (gitrepo_resolve(P->repo, core_production_branch(c), now, &err) < 0) {
		(void)journal_finish(s, job->journal_id, "failed", NULL);
		proposal_record_done(&rec);
		goto out;
	}
	if (strcmp(rec.state, "approved")) {
		/* It ended (merged, or failed and rolled back) before the journal did. */
		(void)journal_finish(s, job->journal_id, "done", NULL);
	} else if (!strcmp(now, target)) {
		/* The swap happened: production must run the merge. */
		(void)merge_deploy(c, P, &rec, target, kind ? kind : "fast-forward", by ? by : "?",
				   job->journal_id, NULL, &err);
	} else {
		/* The swap never happened (or something else moved production): the proposal
		 * is as it was before the merge was asked for. */
		(void)journal_finish(s, job->journal_id, "undone", NULL);
		(void)proposal_record_set_step(s, rec.id,
					       "approved: the merge was interrupted; "
					       "merge again",
					       NULL);
	}
	proposal_record_done(&rec);
out:
	pthread_mutex_unlock(&P->merge_lock);
	json_decref(pl);
}

static int recover(Proposals *P, BbxError *err)
{
	Core *c = P->core;
	Store *s = core_store(c);
	JournalEntry *jv = NULL;
	size_t jn = 0;
	int r = journal_list_pending(s, &jv, &jn, err);
	if (r < 0)
		return r;
	for (size_t i = 0; i < jn; i++) {
		JournalEntry *j = &jv[i];
		if (!strcmp(j->kind, "proposal.validate")) {
			/* Validated again from the start below. */
			(void)journal_finish(s, j->id, "undone", NULL);
			json_t *pl = json_loads(j->payload_json ? j->payload_json : "{}", 0, NULL);
			int attempt = (int)json_integer_value(json_object_get(pl, "attempt"));
			json_decref(pl);
			ProposalRecord rec;
			if (proposal_record_get(s, j->target, &rec, NULL) >= 0) {
				if (attempt >= MAX_VALIDATE_ATTEMPTS &&
				    (!strcmp(rec.state, "cloning") ||
				     !strcmp(rec.state, "validating"))) {
					(void)prop_finish_validation(
						c, &rec, NULL, false,
						"validation was interrupted by "
						"daemon restarts; submit again");
				}
				proposal_record_done(&rec);
			}
		} else if (!strcmp(j->kind, "proposal.merge")) {
			PropJob *job = calloc(1, sizeof(*job));
			if (!job)
				continue;
			snprintf(job->id, sizeof(job->id), "%s", j->target);
			job->merge = true;
			job->journal_id = j->id;
			job->payload = j->payload_json ? strdup(j->payload_json) : NULL;
			(void)job_start(P, job);
		}
	}
	/* Whatever was on its way to validated starts again. */
	ProposalRecord *v = NULL;
	size_t n = 0;
	r = proposal_record_list(s, &v, &n, err);
	if (r >= 0)
		for (size_t i = 0; i < n; i++) {
			if (strcmp(v[i].state, "submitted") && strcmp(v[i].state, "cloning") &&
			    strcmp(v[i].state, "validating"))
				continue;
			int attempt = 1;
			for (size_t k = 0; k < jn; k++)
				if (!strcmp(jv[k].kind, "proposal.validate") &&
				    !strcmp(jv[k].target, v[i].id))
					attempt = 2;
			(void)start_validation(P, v[i].id, attempt);
		}
	proposal_records_free(v, n);
	journal_entries_free(jv, jn);
	return r < 0 ? r : 0;
}

int proposals_init(Core *c, BbxError *err)
{
	Proposals *P = calloc(1, sizeof(*P));
	if (!P)
		return -ENOMEM;
	P->core = c;
	jobs_init(&P->jobs);
	pthread_mutex_init(&P->merge_lock, NULL);
	int r = gitrepo_open(core_repo_path(c), &P->repo, err);
	if (r < 0) {
		free(P);
		return r;
	}
	c->proposals = P;
	return recover(P, err);
}

void proposals_shutdown(Core *c)
{
	Proposals *P = props_of(c);
	if (!P)
		return;
	jobs_reap(&P->jobs, true);
	c->proposals = NULL;
	gitrepo_free(P->repo);
	jobs_done(&P->jobs);
	pthread_mutex_destroy(&P->merge_lock);
	free(P);
}
