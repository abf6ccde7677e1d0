/* SPDX-License-Identifier: MIT */
/* The handlers of the operations table (ops.c), one file per resource. Internal to core. */
#pragma once

#include "ops.h"

int op_environment_list(OpCall *call, json_t *in, json_t **out, BbxError *err);
int op_environment_get(OpCall *call, json_t *in, json_t **out, BbxError *err);
int op_environment_create(OpCall *call, json_t *in, json_t **out, BbxError *err);
int op_environment_destroy(OpCall *call, json_t *in, json_t **out, BbxError *err);
int op_environment_stop(OpCall *call, json_t *in, json_t **out, BbxError *err);
int op_environment_start(OpCall *call, json_t *in, json_t **out, BbxError *err);
int op_environment_exec(OpCall *call, json_t *in, json_t **out, BbxError *err);
int op_environment_logs(OpCall *call, json_t *in, json_t **out, BbxError *err);
int op_environment_budget(OpCall *call, json_t *in, json_t **out, BbxError *err);
int op_environment_deploy(OpCall *call, json_t *in, json_t **out, BbxError *err);
int op_token_create(OpCall *call, json_t *in, json_t **out, BbxError *err);
int op_token_list(OpCall *call, json_t *in, json_t **out, BbxError *err);
int op_token_revoke(OpCall *call, json_t *in, json_t **out, BbxError *err);
int op_audit_list(OpCall *call, json_t *in, json_t **out, BbxError *err);
int op_environment_audit(OpCall *call, json_t *in, json_t **out, BbxError *err);
int op_audit_checkpoint(OpCall *call, json_t *in, json_t **out, BbxError *err);
int op_audit_pubkey(OpCall *call, json_t *in, json_t **out, BbxError *err);
int op_audit_verify(OpCall *call, json_t *in, json_t **out, BbxError *err);
int op_environment_file_read(OpCall *call, json_t *in, json_t **out, BbxError *err);
int op_environment_file_list(OpCall *call, json_t *in, json_t **out, BbxError *err);
int op_environment_file_write(OpCall *call, json_t *in, json_t **out, BbxError *err);
int op_environment_diff(OpCall *call, json_t *in, json_t **out, BbxError *err);
int op_config_read(OpCall *call, json_t *in, json_t **out, BbxError *err);
int op_services_list(OpCall *call, json_t *in, json_t **out, BbxError *err);
int op_proposal_submit(OpCall *call, json_t *in, json_t **out, BbxError *err);
int op_proposal_list(OpCall *call, json_t *in, json_t **out, BbxError *err);
int op_proposal_get(OpCall *call, json_t *in, json_t **out, BbxError *err);
int op_proposal_diff(OpCall *call, json_t *in, json_t **out, BbxError *err);
int op_proposal_approve(OpCall *call, json_t *in, json_t **out, BbxError *err);
int op_proposal_reject(OpCall *call, json_t *in, json_t **out, BbxError *err);
int op_proposal_merge(OpCall *call, json_t *in, json_t **out, BbxError *err);
