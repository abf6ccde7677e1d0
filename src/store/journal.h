/* SPDX-License-Identifier: MIT */
/*
 * The operation journal: an intent row is committed before a multi-step operation has any
 * side effect, its step is advanced as the operation goes, and it ends 'done' or 'undone'.
 * On start the daemon reads the rows still 'pending' and finishes or undoes each.
 * Thread-safety: each call takes the store lock.
 */
#pragma once

#include <stdint.h>

#include "store.h"

typedef struct JournalEntry {
	int64_t id;
	char *kind;   /* e.g. "environment.create" */
	char *target; /* e.g. the environment name */
	char *step;   /* the last step recorded before a side effect */
	char *state;  /* pending, done, undone, failed */
	char *payload_json;
	int64_t created_at;
	int64_t updated_at;
} JournalEntry;

void journal_entry_done(JournalEntry *e);
/* Free an array of n entries returned by journal_list_pending(). */
void journal_entries_free(JournalEntry *e, size_t n);

int journal_begin(Store *s, const char *kind, const char *target, const char *step,
		  const char *payload_json, int64_t *ret_id, BbxError *err);
/* Record that the operation is about to perform the side effect named step. */
int journal_step(Store *s, int64_t id, const char *step, BbxError *err);
/* End the operation: state is "done", "undone" or "failed". */
int journal_finish(Store *s, int64_t id, const char *state, BbxError *err);
int journal_list_pending(Store *s, JournalEntry **ret, size_t *ret_n, BbxError *err);
