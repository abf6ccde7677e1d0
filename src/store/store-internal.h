/* SPDX-License-Identifier: MIT */
#pragma once

#include "store.h"

extern const char *const store_migrations[];
extern const int store_n_migrations;
