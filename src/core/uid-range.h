/* SPDX-License-Identifier: MIT */
/*
 * The daemon's uid range (`serve --uid-range`), from which every environment gets uids of
 * its own (store/uids.h). Checked against the host's users, groups and delegated sub-ids,
 * and claimed host-wide while the daemon runs, so neither a host account nor another daemon
 * ever holds one of its uids.
 *
 * Errors: -errno with the reason in the optional BbxError. Thread-safety: no shared state.
 */
#pragma once

#include "error.h"
#include "uids.h"

/* 0x70000000 + 64 Ki: above every range systemd, useradd and the sub-id defaults hand out,
 * below 2^31; 32768 environments. */
#define UID_RANGE_DEFAULT_FIRST 1879048192u
#define UID_RANGE_DEFAULT_LAST 1879113727u
#define UID_RANGE_DEFAULT "1879048192-1879113727"
/* Below are the 16-bit ids (system, users, nobody); above, ids some tools take as negative. */
#define UID_RANGE_MIN 65536u
#define UID_RANGE_MAX 2147483647u
#define UID_RANGE_REGISTRY "/run/branchbox/uid-ranges"

/* "FIRST-LAST", both included, within UID_RANGE_MIN..UID_RANGE_MAX, at least one pair. */
int uid_range_parse(const char *s, UidRange *ret, BbxError *err);

/*
 * -EEXIST when an id of range is a user (etc_dir/passwd) or group (group) of the host, or
 * delegated to one (subuid, subgid); the message names the file and the entry. Missing files
 * hold nothing. etc_dir NULL: /etc.
 */
int uid_range_check_host(const UidRange *range, const char *etc_dir, BbxError *err);

/*
 * Claim range for the daemon of state_dir until *ret_fd is closed (an flock'ed entry in
 * registry, NULL: UID_RANGE_REGISTRY). -EBUSY when a running daemon holds an overlapping
 * range; entries of daemons that are gone are removed.
 */
int uid_range_claim(const UidRange *range, const char *state_dir, const char *registry, int *ret_fd,
		    BbxError *err);
