/* SPDX-License-Identifier: MIT */
/*
 * Proposal rows (the propose, validate, review, merge workflow; core/proposal.h) and the
 * recorded outcomes of idempotent requests. ProposalRecord strings are owned by the record
 * (proposal_record_done()). Each call takes the store lock.
 */
#pragma once

#include <stddef.h>
#include <stdint.h>

#include "store.h"

typedef struct ProposalRecord {
	char *id;
	char *kind;	     /* "branch" or "patch" */
	char *environment;   /* its preview's name */
	char *source_branch; /* the branch it proposes */
	char *base_commit;   /* production's commit it is based on */
	char *head_commit;   /* the commit validated (and, approved, merged) */
	char *state; /* submitted cloning validating validated failed approved rejected merged
		      * stale */
	char *step;  /* what it is doing now, or did last */
	char *title;
	char *description;
	char *evidence_json;
	char *evidence_digest;
	char *review_json; /* {decision, by, token_id, base, head, evidence_digest, at, reason} */
	char *merge_json;  /* {kind, commit, by, at} */
	char *error;
	char *created_by;
	char *token_id; /* the submitting token; NULL for the local administrator */
	int64_t created_at;
	int64_t updated_at;
	/* When head is not a descendant of base: the merge of head into base that was validated
	 * (the merge commit made at merge time has the same tree); NULL for a fast-forward. */
	char *validate_commit;
} ProposalRecord;

void proposal_record_done(ProposalRecord *r);
void proposal_records_free(ProposalRecord *v, size_t n);

/* -EEXIST when the id exists. */
int proposal_record_insert(Store *s, const ProposalRecord *r, BbxError *err);
/* -ENOENT (kind "not_found", "proposal 'ID' not found") when absent. */
int proposal_record_get(Store *s, const char *id, ProposalRecord *ret, BbxError *err);
/* Newest first. */
int proposal_record_list(Store *s, ProposalRecord **ret, size_t *ret_n, BbxError *err);
/*
 * Write every mutable column of r (matched by id) when the row's state is still
 * expect_state (NULL: any): a compare-and-swap of the state machine. -ESTALE (kind
 * "conflict") when the state was no longer expect_state.
 */
int proposal_record_update(Store *s, const ProposalRecord *r, const char *expect_state,
			   BbxError *err);
/* Progress: only the step column (and updated_at). */
int proposal_record_set_step(Store *s, const char *id, const char *step, BbxError *err);

/*
 * The recorded outcome of (principal, action, key): *ret_request_digest and *ret_response
 * (caller frees). -ENOENT when none.
 */
int idempotency_get(Store *s, const char *principal, const char *action, const char *key,
		    char **ret_request_digest, char **ret_response, BbxError *err);
/* Record an outcome; an existing one for the same triple is kept (first wins). */
int idempotency_put(Store *s, const char *principal, const char *action, const char *key,
		    const char *request_digest, const char *response, BbxError *err);
