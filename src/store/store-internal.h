/* SPDX-License-Identifier: MIT */
#pragma once

#include "store.h"
#include "uids.h"

extern const char *const store_migrations[];
extern const int store_n_migrations;

/* With the lock held, inside a transaction (uids.c). */
int uid_allocate_locked(Store *s, const char *name, const UidRange *range, uint32_t *ret,
			BbxError *err);
int uid_allocation_sweep_locked(Store *s, BbxError *err);
