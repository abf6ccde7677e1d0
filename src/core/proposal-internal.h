/* SPDX-License-Identifier: MIT */
/*
 * What the proposal workflow's files share: proposal.c (submit, reading, review, merge,
 * recovery, the job threads) and proposal-validate.c (the validation: clone, run production's
 * checks, record the evidence).
 */
#pragma once

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include <jansson.h>

#include "core.h"
#include "gitrepo.h"
#include "jobs.h"
#include "ops.h"
#include "proposals.h"

#define DIFF_MAX_PATCH ((size_t)4 << 20)
#define MAX_VALIDATE_ATTEMPTS 2
#define TITLE_MAX 200
#define DESCRIPTION_MAX 10000
#define PRODUCTION_WAIT_MS (300 * 1000) /* production restarting after a daemon start */

typedef struct PropJob {
	struct Proposals *P;
	char id[40];
	int attempt;
	bool merge; /* the recovery of an interrupted merge */
	char *payload;
	int64_t journal_id;
} PropJob;

typedef struct Proposals {
	Core *core;
	GitRepo *repo;
	JobSet jobs;		    /* validations and merge recoveries */
	pthread_mutex_t merge_lock; /* one merge (or merge recovery) at a time */
} Proposals;

uint64_t prop_now_ms(void);
void prop_set_str(char **field, const char *v);
/* The audit record of a transition of r (call NULL: the daemon's own), with its commits and
 * evidence digest. */
void prop_audit_transition(Core *c, const OpCall *call, const ProposalRecord *r,
			   const char *detail);

/* proposal-validate.c */
void prop_destroy_preview(Core *c, const char *name);
/* The end of a validation: state, evidence and its digest, in one row update. */
int prop_finish_validation(Core *c, ProposalRecord *rec, json_t *evidence, bool passed,
			   const char *error);
/* The commit the preview runs: what production would run once merged. */
const char *prop_validated_commit(const ProposalRecord *r);
/* Run (or, after a crash, rerun) the validation of proposal id: a job thread's body. */
void prop_validate_run(Proposals *P, const char *id, int attempt);
