/* SPDX-License-Identifier: MIT */
/*
 * The local backend: volumes in this host's storage pool (under E->pool_lock), a network
 * namespace per environment bound at STATE/run/netns/NAME, processes in the sandbox with a
 * cgroup each below the environment's, connections made from a thread inside the
 * namespace (netns-connect.c). Thin wrappers: the work is done where it always was.
 */
#include "backend.h"

#include "env-internal.h"

static int local_volume_create(Environments *E, const char *name, BbxError *err)
{
	pthread_mutex_lock(&E->pool_lock);
	int r = pool_volume_exists(E->pool, name) > 0 ? 0 : pool_volume_create(E->pool, name, err);
	pthread_mutex_unlock(&E->pool_lock);
	return r;
}

static int local_volume_clone(Environments *E, const char *parent, const char *name,
			      const VolumeFreeze *freeze, BbxError *err)
{
	pthread_mutex_lock(&E->pool_lock);
	int r = pool_volume_snapshot(E->pool, parent, name, freeze, err);
	pthread_mutex_unlock(&E->pool_lock);
	return r;
}

static int local_volume_destroy(Environments *E, const char *name, bool sync, BbxError *err)
{
	pthread_mutex_lock(&E->pool_lock);
	int r = E->pool ? pool_volume_exists(E->pool, name) : 0;
	if (r > 0)
		r = pool_volume_destroy(E->pool, name, sync, err);
	pthread_mutex_unlock(&E->pool_lock);
	return r < 0 ? r : 0;
}

static int local_network_up(Environments *E, EnvRuntime *rt, BbxError *err)
{
	char path[4096];
	if (rt->netns_fd >= 0)
		return 0;
	env_path(E, path, sizeof(path), "run/netns", rt->name);
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0) {
		char dir[4096];
		snprintf(dir, sizeof(dir), "%s/run/netns", E->state_dir);
		int r = mkdir_p(dir, 0700);
		if (r < 0)
			return bbx_error_set(err, r, BBX_INTERNAL, "%s: %s", dir, strerror(-r));
		r = sandbox_netns_create(path, err);
		if (r < 0)
			return r;
		fd = open(path, O_RDONLY | O_CLOEXEC);
		if (fd < 0)
			return bbx_error_set(err, -errno, BBX_INTERNAL, "%s: %m", path);
	}
	pthread_mutex_lock(&rt->lock);
	rt->netns_fd = fd;
	pthread_mutex_unlock(&rt->lock);
	return 0;
}

static int local_network_remove(Environments *E, const char *name, BbxError *err)
{
	char path[4096];
	env_path(E, path, sizeof(path), "run/netns", name);
	int r = sandbox_netns_remove(path, NULL);
	if (r < 0 && r != -ENOENT)
		return bbx_error_set(err, r, BBX_INTERNAL, "removing network namespace %s: %s",
				     path, strerror(-r));
	return r;
}

const Backend backend_local = {
	.name = "local",
	.volume_create = local_volume_create,
	.volume_clone = local_volume_clone,
	.volume_destroy = local_volume_destroy,
	.network_up = local_network_up,
	.network_remove = local_network_remove,
	.connect = netns_connect,
	.http_get = netns_http_get,
	.process_start = envproc_start,
	.process_run = envproc_run_oneshot_with,
	.processes_remove = cgroups_remove_env,
};
