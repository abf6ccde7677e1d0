/* SPDX-License-Identifier: MIT */
/*
 * What the environment operations need from the machine, behind one interface: an
 * environment's volume (fresh, or cloned from a snapshot of another's), its network, a
 * process started in a sandbox inside that network (long-running, or a one-shot whose
 * output is captured), a connection into that network, and the teardown of each.
 *
 * The operations (environment.c, env-host.c, env-proc.c, env-recovery.c) call only these
 * for those things; backend-local.c is this host's implementation (a storage pool of btrfs
 * subvolumes or reflink trees, network namespaces, the sandbox and cgroup v2). A second
 * backend, e.g. Kubernetes (DESIGN.md section 10: a namespace per environment with a
 * default-deny NetworkPolicy and a ResourceQuota, PVCs cloned from CSI VolumeSnapshots, pods
 * for processes), is a new backend-NAME.c filling the same struct, chosen in
 * environments_init(); nothing in the operations changes.
 *
 * Handles are the local ones for now: a network is an fd (rt->netns_fd) and a process an
 * EnvProc. A remote backend would carry its own handle behind the same calls.
 * Every hook is called without the environment's short lock held (op_lock may be held);
 * the implementation takes what locks of its own it needs (the local one, E->pool_lock).
 */
#pragma once

#include <stdbool.h>
#include <stdint.h>

#include "envproc.h"
#include "error.h"
#include "storage.h"

typedef struct Environments Environments;
typedef struct EnvRuntime EnvRuntime;

typedef struct Backend {
	const char *name; /* "local" */

	/* The environment's volume, empty, unless it exists already (a retried deploy). */
	int (*volume_create)(Environments *E, const char *name, BbxError *err);
	/* name's volume as a snapshot of parent's; freeze (may be NULL) pauses the writers
	 * around the snapshot. */
	int (*volume_clone)(Environments *E, const char *parent, const char *name,
			    const VolumeFreeze *freeze, BbxError *err);
	/* Remove name's volume; 0 when there is none. sync: wait until the space is free. */
	int (*volume_destroy)(Environments *E, const char *name, bool sync, BbxError *err);

	/* rt's network, made when missing; sets rt->netns_fd (under rt->lock). */
	int (*network_up)(Environments *E, EnvRuntime *rt, BbxError *err);
	/* Remove name's network; 0 or -ENOENT when there is none. */
	int (*network_remove)(Environments *E, const char *name, BbxError *err);
	/* A connected stream to port inside the network net (an fd from network_up). */
	int (*connect)(int net, uint16_t port, int timeout_ms, BbxError *err);
	/* GET path from port inside net (health checks). */
	int (*http_get)(int net, uint16_t port, const char *path, int timeout_ms, int *ret_status,
			char *body, size_t body_size, BbxError *err);

	/* A long-running process in a sandbox, as spec says (its network is spec's netns). */
	int (*process_start)(const EnvProcSpec *spec, EnvProc **ret, BbxError *err);
	/* A one-shot: run to its end (or timeout, or cancel_fd) and capture its output. */
	int (*process_run)(const EnvProcSpec *spec, const EnvOneshotOptions *opts,
			   OneshotResult *ret, BbxError *err);
	/* Kill whatever still runs of name's processes and remove their groups. */
	void (*processes_remove)(Environments *E, const char *name);
} Backend;

extern const Backend backend_local;
