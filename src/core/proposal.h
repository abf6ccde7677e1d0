/* SPDX-License-Identifier: MIT */
/*
 * Proposals: the agent workflow with a human gate (DESIGN.md section 2). An agent submits a
 * branch or a patch; branchbox clones production into a fresh preview, runs the head there
 * and checks it with production's validate steps, recording evidence; a human approves the
 * exact (base, head, evidence) triple; the merge is a compare-and-swap of production's branch
 * followed by a redeploy of production, and the preview goes.
 *
 * States: submitted -> cloning -> validating -> validated | failed; validated -> approved |
 * rejected | stale; approved -> merged | rejected | stale (| failed when the redeploy failed
 * and production was rolled back). Every transition is an audit record naming the commits and
 * the evidence digest. Validation and merge are journaled: a daemon killed during either
 * ends, at its next start, with the proposal in one of those states and production's branch at
 * the base or at the approved merge, never anything else.
 *
 * Thread-safety: all functions are thread-safe. Results are JSON objects the caller owns.
 */
#pragma once

#include <jansson.h>

#include "core.h"
#include "error.h"
#include "ops.h"
#include "principal.h"

/* Recover what a crash interrupted and start the module; after environments_init(). */
int proposals_init(Core *c, BbxError *err);
/* Join the background validations (after environments_quiesce(), which cancels their
 * commands); an interrupted one is left for the next start. */
void proposals_shutdown(Core *c);

typedef struct ProposalSubmitOptions {
	const char *branch; /* exactly one of branch and patch */
	const char *patch;
	const char *title;
	const char *description;
} ProposalSubmitOptions;

int proposal_submit(OpCall *call, const ProposalSubmitOptions *o, json_t **ret, BbxError *err);
int proposal_list(OpCall *call, json_t **ret, BbxError *err);
/* status, step, commits, evidence and review; "proposal 'ID' not found" when invisible */
int proposal_get(OpCall *call, const char *id, json_t **ret, BbxError *err);
int proposal_diff(OpCall *call, const char *id, json_t **ret, BbxError *err);
int proposal_approve(OpCall *call, const char *id, json_t **ret, BbxError *err);
int proposal_reject(OpCall *call, const char *id, const char *reason, json_t **ret, BbxError *err);
int proposal_merge(OpCall *call, const char *id, json_t **ret, BbxError *err);

/* proposal-evidence.c: run production's (and the branch's own) validate steps in the preview
 * and gather the evidence object (without its digest). *ret_passed: every step passed. */
struct ProjectConfig;
int proposal_validate_steps(Core *c, const char *preview, const struct ProjectConfig *production,
			    const struct ProjectConfig *branch, const char *proposal_id,
			    json_t **ret_steps, json_t **ret_branch_steps, bool *ret_passed,
			    BbxError *err);
/* The config diff against production: [{path, change, governed, widens}] */
json_t *proposal_config_diff(const struct ProjectConfig *production,
			     const struct ProjectConfig *branch);
/* Hex SHA-256 of the canonical JSON (sorted keys, compact) of j. */
int proposal_json_digest(json_t *j, char ret[static 65]);
