/* SPDX-License-Identifier: MIT */
/* An environment's trees, diff, config and services as its file operations see them. */
#include "env-files.h"

#include "beneath.h"
#include "env-internal.h"
#include "ops.h"

#define DIFF_MAX_FILES 20000
#define DIFF_MAX_FILE_SIZE (1u << 20)
#define DIFF_MAX_TOTAL (64u << 20) /* read in all: the rest is compared by size */

static const char *const tree_names[_ENV_TREE_MAX] = {
	[ENV_TREE_CODE] = "code",
	[ENV_TREE_VOLUME] = "volume",
};

EnvTree env_tree_from_string(const char *s)
{
	for (int i = 0; s && i < _ENV_TREE_MAX; i++)
		if (!strcmp(tree_names[i], s))
			return (EnvTree)i;
	return _ENV_TREE_INVALID;
}

const char *env_tree_to_string(EnvTree t)
{
	return t >= 0 && t < _ENV_TREE_MAX ? tree_names[t] : NULL;
}

/* The answer exec and logs give too (environment.c): nothing before the data is masked. */
static int not_ready(BbxError *err, const char *name)
{
	return bbx_error_set(err, -EBUSY, BBX_CONFLICT, "environment '%s' is not ready", name);
}

/* rt of a ready environment, with a reference the caller drops. */
static int ready_runtime(Environments *E, const char *name, EnvRuntime **ret, BbxError *err)
{
	EnvRecord rec;
	int r = env_record_get(core_store(E->core), name, &rec, err);
	if (r < 0)
		return r;
	bool ready = rec.state == ENV_READY;
	env_record_done(&rec);
	EnvRuntime *rt = runtime_find(E, name);
	if (!ready || !rt || !atomic_load(&rt->ready) || atomic_load(&E->shutting_down)) {
		runtime_unref(rt);
		return not_ready(err, name);
	}
	*ret = rt;
	return 0;
}

int environment_tree_open(Core *c, const char *name, EnvTree tree, int *ret_fd, uid_t *ret_uid,
			  BbxError *err)
{
	Environments *E = envs_of(c);
	_cleanup_runtime_ EnvRuntime *rt = NULL;
	int r = ready_runtime(E, name, &rt, err);
	if (r < 0)
		return r;
	int fd = -EBADF;
	uid_t uid = 0;
	/* The roots are the daemon's own directories (STATE/code/NAME/COMMIT, the pool's volume):
	 * opened without following a link, and everything below them through openat2. */
	pthread_mutex_lock(&rt->lock);
	bool up = atomic_load(&rt->ready) && rt->code_dir && rt->volume_path;
	if (up && tree == ENV_TREE_CODE) {
		fd = open(rt->code_dir, O_PATH | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
		fd = fd < 0 ? -errno : fd;
		uid = rt->uid + 1;
	} else if (up) {
		_cleanup_close_ int vol =
			open(rt->volume_path, O_PATH | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
		/* Not services/: a data service's files hold what sanitize masked (old row
		 * versions, WAL) and are its own, never the agent's. */
		fd = vol < 0 ? -errno : beneath_open(vol, "mounts", O_PATH | O_DIRECTORY);
		uid = rt->volume_uid + 1;
	}
	pthread_mutex_unlock(&rt->lock);
	if (!up)
		return not_ready(err, name);
	if (fd == -ENOENT && tree == ENV_TREE_VOLUME)
		return bbx_error_set(err, -ENOENT, BBX_INVALID,
				     "environment '%s' has no application mounts in its volume",
				     name);
	if (fd < 0)
		return bbx_error_set(err, fd, BBX_INTERNAL, "environment '%s': opening its %s: %s",
				     name, tree_names[tree], strerror(-fd));
	*ret_fd = fd;
	*ret_uid = uid;
	return 0;
}

static json_t *diff_json(const char *base, const GitDiff *d)
{
	json_t *files = json_array();
	for (size_t i = 0; files && i < d->n_files; i++) {
		const GitDiffFile *f = &d->files[i];
		char st[2] = { f->status, 0 };
		json_array_append_new(files, json_pack("{s:s,s:s,s:b,s:I,s:I}", "path", f->path,
						       "status", st, "binary", f->binary,
						       "additions", (json_int_t)f->additions,
						       "deletions", (json_int_t)f->deletions));
	}
	if (!files)
		return NULL;
	return json_pack("{s:s,s:o,s:I,s:I,s:o,s:b}", "base", base, "files", files, "additions",
			 (json_int_t)d->additions, "deletions", (json_int_t)d->deletions, "patch",
			 ops_json_string_lossy(d->patch, d->patch_size), "patch_truncated",
			 d->patch_truncated);
}

int environment_code_diff(Core *c, const char *name, bool against_production, size_t max_patch,
			  json_t **ret, BbxError *err)
{
	Environments *E = envs_of(c);
	char base[GITREPO_ID_SIZE] = "";
	_cleanup_close_ int root = -EBADF;
	uid_t uid_unused;
	int r = environment_tree_open(c, name, ENV_TREE_CODE, &root, &uid_unused, err);
	if (r < 0)
		return r;
	if (against_production) {
		EnvRecord prod;
		r = env_record_get(core_store(c), E->production, &prod, NULL);
		if (r >= 0 && prod.commit_id)
			snprintf(base, sizeof(base), "%s", prod.commit_id);
		if (r >= 0)
			env_record_done(&prod);
		if (!base[0])
			return bbx_error_set(err, -ENOENT, BBX_CONFLICT,
					     "production has no deployed commit to compare with");
	} else {
		_cleanup_runtime_ EnvRuntime *rt = runtime_find(E, name);
		if (rt) {
			pthread_mutex_lock(&rt->lock);
			if (rt->commit)
				snprintf(base, sizeof(base), "%s", rt->commit);
			pthread_mutex_unlock(&rt->lock);
		}
		if (!base[0])
			return not_ready(err, name);
	}
	BeneathFile *files = NULL;
	size_t n = 0;
	r = beneath_collect(root, DIFF_MAX_FILES, DIFF_MAX_FILE_SIZE, DIFF_MAX_TOTAL, &files, &n);
	if (r == -EFBIG)
		return bbx_error_set(err, r, BBX_TOO_LARGE,
				     "environment '%s': its code tree has more than %u files or "
				     "is nested deeper than 64 directories",
				     name, DIFF_MAX_FILES);
	if (r < 0)
		return bbx_error_set(err, r, BBX_INTERNAL, "environment '%s': reading its code: %s",
				     name, strerror(-r));
	GitDiff d = { 0 };
	r = gitrepo_diff_worktree(E->repo, base, files, n, max_patch, &d, err);
	beneath_files_free(files, n);
	if (r < 0)
		return r;
	*ret = diff_json(base, &d);
	gitrepo_diff_done(&d);
	return *ret ? 0 : -ENOMEM;
}

int environment_config_json(Core *c, const char *name, json_t **ret, BbxError *err)
{
	EnvRecord rec;
	int r = env_record_get(core_store(c), name, &rec, err);
	if (r < 0)
		return r;
	/* The normalized config the row keeps (config_to_json()): credentials are generated
	 * apart (secrets_json) and never part of it. */
	json_t *cfg = rec.config_json ? json_loads(rec.config_json, 0, NULL) : NULL;
	bool had = rec.config_json != NULL;
	env_record_done(&rec);
	if (!had)
		return not_ready(err, name);
	if (!cfg)
		return bbx_error_set(err, -EINVAL, BBX_INTERNAL,
				     "environment '%s': its recorded config is not valid JSON",
				     name);
	*ret = cfg;
	return 0;
}

/* From the recorded config when nothing of it runs (stopped, or not started since the daemon
 * started): every process stopped. */
static void services_from_record(const char *config_json, json_t *svcs, json_t *apps)
{
	json_t *cfg = config_json ? json_loads(config_json, 0, NULL) : NULL;
	const char *key;
	json_t *v;
	json_object_foreach(json_object_get(cfg, "services"), key, v) json_array_append_new(
		svcs, json_pack("{s:s,s:s?,s:s?,s:s?,s:s}", "name", key, "type",
				json_string_value(json_object_get(v, "kind")), "version",
				json_string_value(json_object_get(v, "version")), "image",
				json_string_value(json_object_get(v, "type")), "state", "stopped"));
	json_object_foreach(json_object_get(cfg, "applications"), key, v) json_array_append_new(
		apps, json_pack("{s:s,s:s?,s:s}", "name", key, "type",
				json_string_value(json_object_get(v, "type")), "state", "stopped"));
	json_decref(cfg);
}

int environment_services_json(Core *c, const char *name, json_t **ret, BbxError *err)
{
	Environments *E = envs_of(c);
	EnvRecord rec;
	int r = env_record_get(core_store(c), name, &rec, err);
	if (r < 0)
		return r;
	_cleanup_runtime_ EnvRuntime *rt = runtime_find(E, name);
	json_t *svcs = json_array(), *apps = json_array();
	if (!svcs || !apps) {
		json_decref(svcs);
		json_decref(apps);
		env_record_done(&rec);
		return -ENOMEM;
	}
	if (rt)
		pthread_mutex_lock(&rt->lock);
	if (!rt || !rt->config)
		services_from_record(rec.config_json, svcs, apps);
	env_record_done(&rec);
	/* Names, types, states and ports: never a password (those live in secrets_json and in
	 * the sandboxes' variables only). */
	for (size_t i = 0; rt && rt->config && i < rt->n_services; i++) {
		const ConfigService *cs = &rt->config->services[i];
		EnvProc *p = rt->service_procs ? rt->service_procs[i] : NULL;
		json_array_append_new(
			svcs, json_pack("{s:s,s:s,s:s?,s:s,s:s,s:i}", "name", cs->name, "type",
					config_service_kind_to_string(cs->kind), "version",
					cs->version, "image", cs->type, "state",
					p ? envproc_state_to_string(envproc_state(p)) : "stopped",
					"port", (int)rt->services[i].port));
	}
	for (size_t i = 0; rt && rt->config && i < rt->config->n_applications; i++) {
		const ConfigApplication *a = &rt->config->applications[i];
		EnvProc *p = rt->app_procs ? rt->app_procs[i] : NULL;
		json_t *o =
			json_pack("{s:s,s:s,s:s,s:b}", "name", a->name, "type", a->type, "state",
				  p ? envproc_state_to_string(envproc_state(p)) : "stopped", "web",
				  a->has_web);
		if (!o)
			continue;
		if (a->has_web)
			json_object_set_new(o, "port", json_integer(a->web_port));
		json_t *rel = json_object();
		for (size_t k = 0; rel && k < a->n_relationships; k++)
			json_object_set_new(rel, a->relationships[k].name,
					    json_string(a->relationships[k].service));
		json_object_set_new(o, "relationships", rel ? rel : json_null());
		json_array_append_new(apps, o);
	}
	if (rt)
		pthread_mutex_unlock(&rt->lock);
	*ret = json_pack("{s:s,s:o,s:o}", "name", name, "services", svcs, "applications", apps);
	return *ret ? 0 : -ENOMEM;
}
