/* SPDX-License-Identifier: MIT */
/*
 * Fuzz the reader of STATE/pool.json, a small hand-written JSON subset (the storage layer
 * links no JSON library). Any input gives a record or -EINVAL/-EPROTO with a message, and
 * a record read is written back losslessly: format, parse and format again gives the
 * same record and the same text.
 */
#include "fuzz.h"

#include <errno.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "storage.h"

static bool same_string(const char *a, const char *b)
{
	return (!a && !b) || (a && b && strcmp(a, b) == 0);
}

static bool same_record(const PoolRecord *a, const PoolRecord *b)
{
	return a->driver == b->driver && a->req_driver == b->req_driver && a->quotas == b->quotas &&
	       a->size == b->size && a->req_size == b->req_size &&
	       same_string(a->reason, b->reason) && same_string(a->root, b->root) &&
	       same_string(a->image, b->image) && same_string(a->mountpoint, b->mountpoint) &&
	       same_string(a->req_path, b->req_path);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	PoolRecord rec = {}, again = {};
	BbxError err = BBX_ERROR_INIT;
	_cleanup_free_ char *json = NULL, *text = NULL, *text2 = NULL;
	int r;

	if (size > 65536)
		return 0;
	/* The daemon reads the file into a NUL-terminated buffer. */
	json = malloc(size + 1);
	if (!json)
		return 0;
	memcpy(json, data, size);
	json[size] = '\0';

	r = pool_record_parse(json, &rec, &err);
	if (r < 0) {
		if ((r != -EINVAL && r != -EPROTO && r != -ENOMEM) || !err.message[0])
			abort();
		return 0;
	}
	if (rec.driver == STORAGE_DRIVER_AUTO || !rec.root || !rec.root[0])
		abort(); /* what the pool needs is always there */
	if (pool_record_format(&rec, &text) < 0)
		abort();
	if (pool_record_parse(text, &again, NULL) < 0 || !same_record(&rec, &again))
		abort();
	if (pool_record_format(&again, &text2) < 0 || strcmp(text, text2) != 0)
		abort();
	pool_record_done(&again);
	pool_record_done(&rec);
	return 0;
}
