/* SPDX-License-Identifier: MIT */
/*
 * branchbox down: take a stopped daemon's state dir off the host (cgroups, network
 * namespaces, the pool's mount and loop device), keeping its data. Local and root-only.
 */
#include "client.h"
#include "main.h"

#include <jansson.h>
#include <stdio.h>
#include <string.h>

#include "down.h"
#include "error.h"

static json_t *strv_json(char **l)
{
	json_t *a = json_array();
	for (size_t i = 0; a && l && l[i]; i++)
		json_array_append_new(a, json_string(l[i]));
	return a;
}

static int print_json(const StateDownReport *rep, const char *state, const BbxError *err, int r)
{
	json_t *o = json_object();
	if (!o)
		return EXIT_FAILURE_;
	json_object_set_new(o, "state", json_string(rep->state_dir ? rep->state_dir : state));
	json_object_set_new(o, "ok", json_boolean(r >= 0));
	if (r < 0)
		json_object_set_new(o, "error", json_string(bbx_error_message(err, r)));
	json_object_set_new(o, "cgroups", strv_json(rep->cgroups));
	json_object_set_new(o, "netns", strv_json(rep->netns));
	json_object_set_new(o, "pool_mount",
			    rep->pool_mount ? json_string(rep->pool_mount) : json_null());
	json_object_set_new(o, "loop_devices", strv_json(rep->loop_devices));
	json_object_set_new(o, "mounts", strv_json(rep->mounts));
	json_object_set_new(o, "removed_nothing", json_boolean(state_down_report_empty(rep)));
	json_dumpf(o, stdout, JSON_INDENT(2) | JSON_PRESERVE_ORDER);
	putchar('\n');
	json_decref(o);
	return r < 0 ? EXIT_FAILURE_ : EXIT_OK;
}

static void print_list(const char *what, char **l)
{
	for (size_t i = 0; l && l[i]; i++)
		printf("%s %s\n", what, l[i]);
}

int verb_down(const CliArgs *a)
{
	const char *state;
	bool json = a->json;

	if (cli_require_root("down") < 0)
		return EXIT_FAILURE_;
	state = cli_state_dir(a->state);

	BbxError err = BBX_ERROR_INIT;
	StateDownReport rep;
	int r = state_down(state, &rep, &err);
	if (json) {
		int ret = print_json(&rep, state, &err, r);
		state_down_report_done(&rep);
		return ret;
	}
	for (size_t i = 0; rep.cgroups && rep.cgroups[i]; i++)
		printf("removed cgroup branchbox/%s\n", rep.cgroups[i]);
	print_list("removed network namespace", rep.netns);
	if (rep.pool_mount)
		printf("unmounted pool %s\n", rep.pool_mount);
	print_list("detached loop device", rep.loop_devices);
	print_list("unmounted", rep.mounts);
	if (r < 0) {
		fprintf(stderr, "branchbox down: %s\n", bbx_error_message(&err, r));
		state_down_report_done(&rep);
		return EXIT_FAILURE_;
	}
	if (state_down_report_empty(&rep))
		printf("nothing left on the host for %s\n", rep.state_dir);
	else
		printf("%s is down; its data stays (branchbox serve starts it again)\n",
		       rep.state_dir);
	state_down_report_done(&rep);
	return EXIT_OK;
}
