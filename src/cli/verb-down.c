/* SPDX-License-Identifier: MIT */
/*
 * branchbox down: take a stopped daemon's state dir off the host (cgroups, network
 * namespaces, the pool's mount and loop device), keeping its data. Local and root-only.
 */
#include "client.h"
#include "main.h"

#include <getopt.h>
#include <jansson.h>
#include <stdio.h>
#include <string.h>

#include "down.h"
#include "error.h"

static void down_help(void)
{
	printf("Usage: branchbox down [--state DIR] [--json]\n"
	       "\n"
	       "Remove from the host what a stopped daemon's state dir still holds there: kill\n"
	       "what is left in its cgroups and remove them, remove its environments' network\n"
	       "namespaces (STATE/run/netns), unmount the pool (STATE/pool/mnt) and detach its\n"
	       "loop device, and unmount anything else mounted under the state dir. Another\n"
	       "daemon's cgroups and mounts are never touched.\n"
	       "\n"
	       "Data stays on disk (the pool image, pool.json, the database): 'branchbox serve'\n"
	       "starts again on the same state dir. Refused while a daemon serves it (holds\n"
	       "STATE/daemon.lock): stop the daemon first. Running it again removes nothing and\n"
	       "succeeds.\n"
	       "\n"
	       "Options:\n"
	       "  --state DIR   state directory (default $BRANCHBOX_STATE or /var/lib/branchbox)\n"
	       "  --json        print what was removed as JSON\n");
}

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

int verb_down(int argc, char **argv)
{
	static const struct option options[] = {
		{ "state", required_argument, NULL, 's' },
		{ "json", no_argument, NULL, 'j' },
		{ "help", no_argument, NULL, 'h' },
		{},
	};
	const char *state = NULL;
	bool json = false;
	int c;

	optind = 1;
	while ((c = getopt_long(argc, argv, "h", options, NULL)) >= 0) {
		switch (c) {
		case 's': state = optarg; break;
		case 'j': json = true; break;
		case 'h': down_help(); return EXIT_OK;
		default: return cli_usage_error("down", "bad option");
		}
	}
	if (optind < argc)
		return cli_usage_error("down", "unexpected argument '%s'", argv[optind]);
	if (cli_require_root("down") < 0)
		return EXIT_FAILURE_;
	state = cli_state_dir(state);

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
