/* SPDX-License-Identifier: MIT */
/*
 * What an environment takes from the host: the config and checkout at a commit, directories,
 * the network namespace, cgroups, teardown, ceilings and admission, and bringing an
 * environment up from its data.
 */
#include "env-internal.h"

/* ---- configuration at a commit ---- */

int load_config_at(Environments *E, const char *commit, ProjectConfig **ret, BbxError *err)
{
	static const char *const files[] = { ".branchbox/config.yaml", ".upsun/config.yaml" };
	for (size_t i = 0; i < ELEMENTSOF(files); i++) {
		_cleanup_free_ char *data = NULL;
		size_t size = 0;
		int r = gitrepo_read_file(E->repo, commit, files[i], CONFIG_MAX_SIZE, &data, &size,
					  NULL);
		if (r == -ENOENT)
			continue;
		if (r < 0)
			return bbx_error_set(err, r, BBX_INVALID, "reading %s at %.12s: %s",
					     files[i], commit, strerror(-r));
		ConfigDiagnostics diag;
		config_diagnostics_init(&diag);
		r = config_parse_buffer(data, size, files[i], ret, &diag);
		if (r < 0) {
			_cleanup_strbuf_ StrBuf sb = STRBUF_INIT;
			(void)strbuf_appendf(
				&sb, "the project config at commit %.12s is invalid:", commit);
			for (size_t k = 0; k < diag.n_items && k < 10; k++) {
				_cleanup_free_ char *line =
					config_diagnostic_format(&diag.items[k]);
				(void)strbuf_appendf(&sb, "\n  %s", line ? line : "?");
			}
			config_diagnostics_done(&diag);
			return bbx_error_set(err, -EINVAL, BBX_INVALID, "%s", strbuf_str(&sb));
		}
		config_diagnostics_done(&diag);
		return 0;
	}
	return bbx_error_set(err, -ENOENT, BBX_INVALID,
			     "commit %.12s has no .branchbox/config.yaml or .upsun/config.yaml",
			     commit);
}

static int checkout_code(Environments *E, const char *name, const char *commit, uid_t owner,
			 char **ret_dir, BbxError *err);

/*
 * A preview's config: the branch's, checked against and narrowed by the config of the
 * commit production runs (DESIGN.md 2a). Production's config comes back too, for what it
 * alone governs (sanitize, validate), with the checkout of that commit.
 */
int load_preview_config(Environments *E, const char *commit, ProjectConfig **ret_config,
			ProjectConfig **ret_policy, char **ret_policy_code, BbxError *err)
{
	_cleanup_(config_freep) ProjectConfig *config = NULL, *policy = NULL;
	_cleanup_free_ char *code = NULL;
	EnvRecord prod;
	int r = env_record_get(core_store(E->core), E->production, &prod, NULL);
	if (r < 0)
		return bbx_error_set(
			err, -ENOENT, BBX_CONFLICT,
			"production ('%s') is not deployed: its config governs every preview",
			E->production);
	r = load_config_at(E, prod.commit_id, &policy, err);
	if (r >= 0 && ret_policy_code)
		r = checkout_code(E, E->production, prod.commit_id, prod.uid + 1, &code, err);
	env_record_done(&prod);
	if (r < 0) {
		bbx_error_prefix(err, "production's config");
		return r;
	}
	r = load_config_at(E, commit, &config, err);
	if (r < 0)
		return r;
	ConfigDiagnostics diag;
	config_diagnostics_init(&diag);
	r = config_apply_production_policy(policy, config, &diag);
	if (r < 0) {
		_cleanup_strbuf_ StrBuf sb = STRBUF_INIT;
		(void)strbuf_appendf(
			&sb, "the config at commit %.12s widens what production's config allows:",
			commit);
		for (size_t k = 0; k < diag.n_items && k < 10; k++) {
			_cleanup_free_ char *line = config_diagnostic_format(&diag.items[k]);
			(void)strbuf_appendf(&sb, "\n  %s", line ? line : "?");
		}
		config_diagnostics_done(&diag);
		return bbx_error_set(err, r, BBX_INVALID, "%s", strbuf_str(&sb));
	}
	config_diagnostics_done(&diag);
	*ret_config = TAKE_PTR(config);
	*ret_policy = TAKE_PTR(policy);
	if (ret_policy_code)
		*ret_policy_code = TAKE_PTR(code);
	return 0;
}

/* ---- building blocks of the operations ---- */

int ensure_dirs(Environments *E, const char *name)
{
	static const char *const kinds[] = { "code", "logs", "tmp" };
	char buf[4096];
	for (size_t i = 0; i < ELEMENTSOF(kinds); i++) {
		env_path(E, buf, sizeof(buf), kinds[i], name);
		int r = mkdir_p(buf, 0711);
		if (r < 0)
			return r;
	}
	return 0;
}

/* The checkout of commit for environment name: STATE/code/NAME/COMMIT, made once, owned by
 * owner (the environment's application uid). */
static int checkout_code(Environments *E, const char *name, const char *commit, uid_t owner,
			 char **ret_dir, BbxError *err)
{
	char base[4096];
	struct stat st;
	env_path(E, base, sizeof(base), "code", name);
	_cleanup_free_ char *dir = path_join(base, commit, NULL);
	if (!dir)
		return -ENOMEM;
	if (lstat(dir, &st) == 0) {
		/* this commit is already checked out (checkouts are atomic) */
		if (ret_dir)
			*ret_dir = TAKE_PTR(dir);
		return 0;
	}
	int r = mkdir_p(base, 0711);
	if (r < 0)
		return bbx_error_set(err, r, BBX_INTERNAL, "%s: %s", base, strerror(-r));
	GitCheckoutResult res;
	char staging[4096];
	snprintf(staging, sizeof(staging), "%s.staging", dir);
	(void)rm_rf(staging);
	r = gitrepo_checkout(E->repo, commit, staging, &res, err);
	if (r < 0)
		return r;
	gitrepo_checkout_result_done(&res);
	/* A fresh checkout (never data): the build hook, running as the application's uid,
	 * may write into it (compiled files, assets); afterwards the apps get it read-only.
	 * chown_tree: a symlink of the branch is changed itself, never what it points to. */
	r = chown_tree(staging, owner, owner);
	if (r >= 0 && rename(staging, dir) < 0)
		r = -errno;
	if (r < 0) {
		(void)rm_rf(staging);
		return bbx_error_set(err, r, BBX_INTERNAL, "preparing checkout %s: %s", dir,
				     strerror(-r));
	}
	if (ret_dir)
		*ret_dir = TAKE_PTR(dir);
	return 0;
}

#define CGROUP_ROOT "/sys/fs/cgroup"

/* Kill and remove an environment's cgroups: each process's, then the environment's.
 * Only below this daemon's own prefix: other daemons on the host keep theirs. */
void cgroups_remove_env(Environments *E, const char *env)
{
	char name[256];
	snprintf(name, sizeof(name), "%s/env-%s", E->cgroup_prefix, env);
	(void)sandbox_cgroup_remove_tree(CGROUP_ROOT, name, NULL, NULL);
}

void environment_measure(Core *c, const char *name, bool with_disk, EnvMeasure *ret)
{
	Environments *E = envs_of(c);
	SandboxCgroup *cg = NULL;
	SandboxCgroupUsage u = { UINT64_MAX, UINT64_MAX, UINT64_MAX };
	char cgname[256];

	snprintf(cgname, sizeof(cgname), "%s/env-%s", E->cgroup_prefix, name);
	if (sandbox_cgroup_open(CGROUP_ROOT, cgname, &cg, NULL) >= 0) {
		sandbox_cgroup_usage(cg, &u);
		sandbox_cgroup_free(cg);
	}
	*ret = (EnvMeasure){ .cpu_usec = u.cpu_usec,
			     .memory_peak = u.memory_peak,
			     .memory_current = u.memory_current,
			     .disk_bytes = UINT64_MAX,
			     .disk_quota = UINT64_MAX };
	if (!with_disk)
		return;
	VolumeInfo vi;
	pthread_mutex_lock(&E->pool_lock);
	if (E->pool && pool_volume_exists(E->pool, name) > 0 &&
	    pool_volume_usage(E->pool, name, &vi, NULL) >= 0) {
		ret->disk_bytes = vi.exclusive_bytes;
		ret->disk_quota = vi.quota_bytes == STORAGE_UNKNOWN ? UINT64_MAX : vi.quota_bytes;
		free(vi.name);
		free(vi.path);
	}
	pthread_mutex_unlock(&E->pool_lock);
}

int environment_kill_processes(Core *c, const char *name)
{
	Environments *E = envs_of(c);
	SandboxCgroup *cg = NULL;
	char cgname[256];

	snprintf(cgname, sizeof(cgname), "%s/env-%s", E->cgroup_prefix, name);
	int r = sandbox_cgroup_open(CGROUP_ROOT, cgname, &cg, NULL);
	if (r < 0)
		return r == -ENOENT ? 0 : r;
	r = sandbox_cgroup_kill_tree(cg);
	sandbox_cgroup_free(cg);
	return r;
}

/* Names of this daemon's environments that have a cgroup (for orphan removal). */
char **cgroup_env_names(Environments *E)
{
	_cleanup_strv_free_ char **children = NULL;
	char **names = NULL;
	if (sandbox_cgroup_list_children(CGROUP_ROOT, E->cgroup_prefix, &children) < 0)
		return NULL;
	for (size_t i = 0; children && children[i]; i++) {
		const char *n = children[i];
		if (!strncmp(n, "env-", 4) && name_is_valid(n + 4))
			(void)strv_push(&names, n + 4);
	}
	return names;
}

/* Undo everything an environment has on the host: processes, netns, code, logs, volume.
 * Tolerates any half-built state (used by destroy, failed creates and crash recovery). */
int teardown(Environments *E, const char *name, EnvRuntime *rt, bool sync, BbxError *err)
{
	char path[4096];
	int r, ret = 0;

	if (rt) {
		runtime_stop_processes(rt);
		pthread_mutex_lock(&rt->lock);
		rt->netns_fd = safe_close(rt->netns_fd);
		pthread_mutex_unlock(&rt->lock);
	}
	E->backend->processes_remove(E, name);
	r = E->backend->network_remove(E, name, ret == 0 ? err : NULL);
	if (r < 0 && r != -ENOENT && ret == 0)
		ret = r;
	r = E->backend->volume_destroy(E, name, sync, ret == 0 ? err : NULL);
	if (r < 0 && ret == 0)
		ret = r;
	static const char *const kinds[] = { "code", "tmp", "logs" };
	for (size_t i = 0; i < ELEMENTSOF(kinds); i++) {
		env_path(E, path, sizeof(path), kinds[i], name);
		r = rm_rf(path);
		if (r < 0 && ret == 0)
			ret = bbx_error_set(err, r, BBX_INTERNAL, "removing %s: %s", path,
					    strerror(-r));
	}
	/* Nothing stored as its uids is left: the store releases them with its row, unless a
	 * clone's volume still holds them. */
	if (ret == 0)
		(void)uid_allocation_files_gone(core_store(E->core), name, NULL);
	return ret;
}

int quiesce_services(Environments *E, EnvRuntime *parent)
{
	/* Each running service's type gets its say before the snapshot (PostgreSQL
	 * checkpoints); best effort, the snapshot is consistent without it. */
	for (size_t i = 0; i < parent->n_services; i++) {
		const ServiceType *t = service_type_for(parent->services[i].config->kind);
		if (!t->quiesce || !parent->service_procs[i])
			continue;
		ServiceCommand cmd = { 0 };
		OneshotResult res;
		if (t->quiesce(&parent->services[i], &cmd, NULL) >= 0 && cmd.argv &&
		    service_oneshot(E, parent, i, &cmd, "quiesce", 120, &res, NULL) >= 0)
			oneshot_result_done(&res);
		service_command_done(&cmd);
	}
	return 0;
}

/* ---- ceilings ---- */

/*
 * Bound the environment as a whole before any of its processes starts: its cgroup carries
 * the sum of its processes' limits, a preview's volume what it may write beyond its clone.
 * A pool that cannot bound a volume (reflink, copy, btrfs without quotas) says so in `pool
 * info` and the environment's info; any other failure fails the operation.
 */
static int apply_ceilings(Environments *E, EnvRuntime *rt, BbxError *err)
{
	CeilingLimits sum;
	ceilings_environment(rt->config, rt->preview, &sum);
	SandboxCgroupLimits l = { .memory_max = sum.memory_bytes,
				  .pids_max = sum.pids,
				  .cpu_millis = sum.cpu_millis };
	char name[128];
	snprintf(name, sizeof(name), "%s/env-%s", E->cgroup_prefix, rt->name);
	SandboxCgroup *cg = NULL;
	int r = sandbox_cgroup_create_parent(CGROUP_ROOT, name, &l, &cg, err);
	sandbox_cgroup_free(cg);
	if (r < 0) {
		bbx_error_prefix(err, "environment %s: bounding its cgroup", rt->name);
		return r;
	}
	if (!rt->preview)
		return 0;
	uint64_t disk = ceilings_preview_disk(rt->config);
	BbxError e = BBX_ERROR_INIT;
	pthread_mutex_lock(&E->pool_lock);
	r = pool_volume_set_quota(E->pool, rt->name, disk ? disk : STORAGE_UNKNOWN, &e);
	pthread_mutex_unlock(&E->pool_lock);
	if (r < 0 && r != -EOPNOTSUPP)
		return bbx_error_set(err, r, e.kind, "environment %s: bounding its volume: %s",
				     rt->name, bbx_error_message(&e, r));
	return 0;
}

/*
 * Admit one more preview and insert its row under one lock, so two creates cannot both take
 * the last place. What it may write counts as promised from here until its volume carries its
 * quota (admission_done), when the pool's own accounting takes over.
 */
int admit_and_insert(Environments *E, EnvRuntime *rt, const EnvCreateOptions *opts,
		     const ProjectConfig *config, EnvRecord *nr, BbxError *err)
{
	Core *c = E->core;
	PreviewAdmission a = { .max_previews = core_max_previews(c),
			       .token_id = opts->token_id,
			       .principal = opts->created_by,
			       .max_per_token = core_max_previews_per_token(c),
			       .disk_bytes = ceilings_preview_disk(config),
			       .reserve = *core_pool_reserve(c) };
	PoolInfo info;
	PoolCommitment pc;
	pthread_mutex_lock(&E->admit_lock);
	int r = env_record_count_previews(core_store(c), opts->token_id, &a.previews,
					  &a.token_previews, err);
	if (r >= 0) {
		pthread_mutex_lock(&E->pool_lock);
		r = ensure_pool(E, err);
		if (r >= 0)
			r = pool_info(E->pool, &info, err);
		if (r >= 0)
			r = pool_commitment(E->pool, &pc, err);
		pthread_mutex_unlock(&E->pool_lock);
	}
	if (r >= 0) {
		a.disk_enforced = info.quota_enforced;
		a.pool_size = pc.size_bytes;
		a.pool_free = pc.free_bytes;
		a.promised_bytes = pc.promised_bytes + E->disk_pending < pc.promised_bytes
					   ? UINT64_MAX
					   : pc.promised_bytes + E->disk_pending;
		r = ceilings_admit_preview(&a, err);
		if (r < 0)
			bbx_error_prefix(err, "preview '%s' refused", nr->name);
	}
	if (r >= 0)
		r = env_record_insert(core_store(c), nr, core_uid_range(c), err);
	if (r >= 0) {
		rt->disk_pending = a.disk_bytes;
		E->disk_pending += a.disk_bytes;
	}
	pthread_mutex_unlock(&E->admit_lock);
	return r;
}

void admission_done(Environments *E, EnvRuntime *rt)
{
	pthread_mutex_lock(&E->admit_lock);
	E->disk_pending -= rt->disk_pending;
	rt->disk_pending = 0;
	pthread_mutex_unlock(&E->admit_lock);
}

/* What bounds the environment, for its info (rt->lock held). */
static json_t *ceilings_json_locked(EnvRuntime *rt)
{
	CeilingLimits sum;
	if (!rt || !rt->config)
		return NULL;
	ceilings_environment(rt->config, rt->preview, &sum);
	json_t *o = json_object();
	if (!o)
		return NULL;
	json_object_set_new(o, "memory_bytes",
			    sum.memory_bytes ? json_integer((json_int_t)sum.memory_bytes)
					     : json_null());
	json_object_set_new(o, "pids", sum.pids ? json_integer((json_int_t)sum.pids) : json_null());
	json_object_set_new(o, "cpu",
			    sum.cpu_millis ? json_real(sum.cpu_millis / 1000.0) : json_null());
	if (rt->preview) {
		uint64_t disk = ceilings_preview_disk(rt->config);
		json_object_set_new(o, "disk_bytes",
				    disk ? json_integer((json_int_t)disk) : json_null());
	}
	return o;
}

/* A preview's disk allowance that nothing enforces says so (E->pool_lock held). */
static void ceilings_disk_note(Environments *E, json_t *ceilings, const VolumeInfo *vi)
{
	PoolInfo info;
	if (!ceilings || !json_object_get(ceilings, "disk_bytes"))
		return;
	if (E->pool && pool_info(E->pool, &info, NULL) >= 0 && !info.quota_enforced)
		json_object_set_new(ceilings, "disk_not_enforced",
				    json_string(info.no_quota_reason));
	else if (vi->quota_bytes == STORAGE_UNKNOWN)
		json_object_set_new(ceilings, "disk_not_enforced",
				    json_string("the volume has no quota yet"));
}

static json_t *runtime_processes_json_locked(EnvRuntime *rt)
{
	json_t *a = json_array();
	if (!rt || !rt->config)
		return a;
	for (size_t i = 0; i < rt->n_services; i++) {
		EnvProc *p = rt->service_procs ? rt->service_procs[i] : NULL;
		json_array_append_new(
			a, json_pack("{s:s,s:s,s:s,s:i,s:i,s:i}", "name",
				     rt->config->services[i].name, "kind", "service", "state",
				     p ? envproc_state_to_string(envproc_state(p)) : "stopped",
				     "pid", p ? (int)envproc_pid(p) : 0, "restarts",
				     p ? (int)envproc_restarts(p) : 0, "port",
				     (int)rt->services[i].port));
	}
	for (size_t i = 0; i < rt->config->n_applications; i++) {
		EnvProc *p = rt->app_procs ? rt->app_procs[i] : NULL;
		json_array_append_new(
			a,
			json_pack("{s:s,s:s,s:s,s:i,s:i,s:i}", "name",
				  rt->config->applications[i].name, "kind", "application", "state",
				  p ? envproc_state_to_string(envproc_state(p)) : "stopped", "pid",
				  p ? (int)envproc_pid(p) : 0, "restarts",
				  p ? (int)envproc_restarts(p) : 0, "port",
				  (int)rt->config->applications[i].web_port));
	}
	return a;
}

json_t *record_json(Environments *E, const EnvRecord *r)
{
	json_t *o = json_pack("{s:s,s:s,s:s,s:s?,s:s?,s:s,s:I,s:I}", "name", r->name, "kind",
			      r->kind, "branch", r->branch, "commit", r->commit_id, "parent",
			      r->parent, "state", env_state_to_string(r->state), "created_at",
			      (json_int_t)r->created_at, "updated_at", (json_int_t)r->updated_at);
	if (!o)
		return NULL;
	json_object_set_new(o, "expires_at",
			    r->expires_at ? json_integer(r->expires_at) : json_null());
	if (r->error)
		json_object_set_new(o, "error", json_string(r->error));
	char preview[160];
	snprintf(preview, sizeof(preview), "/preview/%s/", r->name);
	json_object_set_new(o, "preview_path", json_string(preview));
	return o;
}

int record_info(Environments *E, const char *name, json_t **ret, BbxError *err)
{
	EnvRecord rec;
	int r = env_record_get(core_store(E->core), name, &rec, err);
	if (r < 0)
		return r;
	json_t *o = record_json(E, &rec);
	env_record_done(&rec);
	if (!o)
		return -ENOMEM;
	_cleanup_runtime_ EnvRuntime *rt = runtime_find(E, name);
	if (rt)
		pthread_mutex_lock(&rt->lock);
	json_object_set_new(o, "processes", runtime_processes_json_locked(rt));
	json_t *ceilings = ceilings_json_locked(rt);
	if (rt)
		pthread_mutex_unlock(&rt->lock);
	json_t *budget = NULL;
	if (budget_info(E->core, name, &budget, NULL) >= 0)
		json_object_set_new(o, "budget", budget);
	pthread_mutex_lock(&E->pool_lock);
	VolumeInfo vi;
	if (E->pool && pool_volume_exists(E->pool, name) > 0 &&
	    pool_volume_usage(E->pool, name, &vi, NULL) >= 0) {
		json_t *v = json_object();
		if (vi.exclusive_bytes != STORAGE_UNKNOWN)
			json_object_set_new(v, "exclusive_bytes",
					    json_integer((json_int_t)vi.exclusive_bytes));
		if (vi.shared_bytes != STORAGE_UNKNOWN)
			json_object_set_new(v, "shared_bytes",
					    json_integer((json_int_t)vi.shared_bytes));
		json_object_set_new(v, "quota_bytes",
				    vi.quota_bytes != STORAGE_UNKNOWN
					    ? json_integer((json_int_t)vi.quota_bytes)
					    : json_null());
		json_object_set_new(o, "volume", v);
		ceilings_disk_note(E, ceilings, &vi);
		free(vi.name);
		free(vi.path);
	}
	pthread_mutex_unlock(&E->pool_lock);
	if (ceilings)
		json_object_set_new(o, "ceilings", ceilings);
	*ret = o;
	return 0;
}

/* ---- bringing an environment up from its data ---- */

typedef struct BuildJob {
	Environments *E;
	EnvRuntime *rt;
	pthread_t thread;
	bool started;
	int r;
	BbxError err;
} BuildJob;

static void *build_main(void *userdata)
{
	BuildJob *j = userdata;
	j->r = 0;
	for (size_t a = 0; j->r >= 0 && a < j->rt->config->n_applications; a++) {
		const ConfigApplication *app = &j->rt->config->applications[a];
		j->r = run_hook(j->E, j->rt, app, "build", app->hook_build, &j->err);
	}
	return NULL;
}

static int start_apps(Environments *E, EnvRuntime *rt, unsigned flags, int64_t journal_id,
		      const char *op, BbxError *err)
{
	if (journal_id)
		(void)journal_step(core_store(E->core), journal_id, "app", NULL);
	environment_debug_stop_point(op, "app");
	return apps_start(E, rt, flags, err);
}

/* An application that gave up while the deploy hook ran (say, on a schema the hook creates)
 * gets one fresh start now that the hook is done. */
static int restart_failed_apps(Environments *E, EnvRuntime *rt, unsigned flags, BbxError *err)
{
	bool any = false;
	for (size_t i = 0; i < rt->config->n_applications; i++) {
		pthread_mutex_lock(&rt->lock);
		EnvProc *p = rt->app_procs[i];
		bool failed = p && envproc_state(p) == ENVPROC_FAILED;
		if (failed)
			rt->app_procs[i] = NULL;
		pthread_mutex_unlock(&rt->lock);
		if (failed) {
			envproc_stop(p, STOP_GRACE_MS);
			envproc_free(p);
			any = true;
		}
	}
	return any ? apps_start(E, rt, flags, err) : 0;
}

/* Start services (initialising those whose data dir is new), hooks, apps. */
int bring_up(Environments *E, EnvRuntime *rt, const char *op, BringUpFlags flags,
	     int64_t journal_id, BbxError *err)
{
	bool cloned = flags & BRING_UP_CLONED, run_hooks = flags & BRING_UP_HOOKS,
	     sanitize = flags & BRING_UP_SANITIZE;
	Store *s = core_store(E->core);
	int r;
	bool fresh[64] = { false };
	StageClock clock;
	stage_clock_start(&clock, op);

	if (rt->n_services > ELEMENTSOF(fresh))
		return bbx_error_set(err, -E2BIG, BBX_INVALID, "too many services (at most %zu)",
				     ELEMENTSOF(fresh));
	r = apply_ceilings(E, rt, err);
	if (r < 0)
		return r;
	stage_clock_mark(&clock, "ceilings");
	for (size_t i = 0; i < rt->n_services; i++) {
		struct stat st;
		if (stat(rt->services[i].data_host, &st) < 0) {
			if (journal_id)
				(void)journal_step(s, journal_id, "services-init", NULL);
			environment_debug_stop_point(op, "services-init");
			r = service_init(E, rt, i, err);
			if (r < 0)
				return r;
			fresh[i] = true;
		}
	}
	if (journal_id)
		(void)journal_step(s, journal_id, "checkout", NULL);
	environment_debug_stop_point(op, "checkout");
	r = checkout_code(E, rt->name, rt->commit, rt->uid + 1, NULL, err);
	if (r < 0)
		return r;
	/* Refuse a source.root that is or passes through a symlink before anything runs. */
	for (size_t a = 0; a < rt->config->n_applications; a++) {
		ProcBuild b;
		r = pb_app(E, rt, &rt->config->applications[a], rt->code_dir, &b, "check",
			   APP_PROC_BUILD, err);
		proc_build_done(&b);
		if (r < 0)
			return r;
	}
	stage_clock_mark(&clock, "services-init+checkout");
	r = E->backend->network_up(E, rt, err);
	if (r < 0)
		return r;
	stage_clock_mark(&clock, "network");
	/* The build needs no service (as on Upsun): it runs while the services start. */
	BuildJob build = { .E = E, .rt = rt, .err = BBX_ERROR_INIT };
	if (run_hooks) {
		if (journal_id)
			(void)journal_step(s, journal_id, "build", NULL);
		environment_debug_stop_point(op, "build");
		if (pthread_create(&build.thread, NULL, build_main, &build) == 0)
			build.started = true;
		else
			build_main(&build);
	}
	if (journal_id)
		(void)journal_step(s, journal_id, "services", NULL);
	environment_debug_stop_point(op, "services");
	r = services_start(E, rt, cloned, err);
	stage_clock_mark(&clock, "services-start");
	if (r >= 0)
		r = services_wait_ready(rt, err);
	stage_clock_mark(&clock, "services-ready");
	if (r >= 0 && cloned) {
		/* New credentials before anything else touches the clone. */
		r = services_rotate_credentials(E, rt, err);
		stage_clock_mark(&clock, "credentials");
	}
	if (r >= 0 && sanitize) {
		if (journal_id)
			(void)journal_step(s, journal_id, "sanitize", NULL);
		environment_debug_stop_point(op, "sanitize");
		r = run_sanitize(E, rt, err);
		if (r < 0) {
			bbx_error_prefix(err, "sanitize failed, so the environment was removed");
			if (err)
				err->kind = BBX_SANITIZE_FAILED;
		}
		stage_clock_mark(&clock, "sanitize");
	}
	if (build.started)
		pthread_join(build.thread, NULL);
	stage_clock_mark(&clock, "build-wait");
	if (r < 0)
		return r;
	if (run_hooks && build.r < 0)
		return bbx_error_set(err, build.r,
				     bbx_error_isset(&build.err) ? build.err.kind : BBX_FAILED,
				     "%s", bbx_error_message(&build.err, build.r));
	/*
	 * A preview's applications start while its deploy hook runs, as on Upsun (production runs
	 * the hook first); either way an application counts as healthy only from an answer after
	 * the hook ended. A preview's applications and its deploy hook start boosted
	 * (APP_PROC_BOOST): the whole environment's CPU ceiling rather than the profile's share,
	 * until the applications' first healthy answer or APP_BOOST_WINDOW_MS (the hook: until
	 * the window ends, or it does).
	 */
	unsigned app_flags = rt->preview ? APP_PROC_BOOST : 0;
	if (rt->preview) {
		r = start_apps(E, rt, app_flags, journal_id, op, err);
		stage_clock_mark(&clock, "app-start");
	}
	if (r >= 0 && run_hooks)
		for (size_t a = 0; r >= 0 && a < rt->config->n_applications; a++) {
			const ConfigApplication *app = &rt->config->applications[a];
			r = run_hook(E, rt, app, "deploy", app->hook_deploy, err);
		}
	stage_clock_mark(&clock, "deploy-hooks");
	if (r >= 0 && rt->preview)
		r = restart_failed_apps(E, rt, app_flags, err);
	else if (r >= 0) {
		r = start_apps(E, rt, app_flags, journal_id, op, err);
		stage_clock_mark(&clock, "app-start");
	}
	if (r >= 0)
		r = apps_wait_healthy(E, rt, err);
	if (r >= 0)
		r = apps_end_boost(rt, err);
	stage_clock_mark(&clock, "app-healthy");
	if (r < 0) {
		/* No application of a preview's failed bring-up keeps running, boosted or not. */
		if (rt->preview)
			apps_stop(rt);
		return r;
	}
	if (run_hooks)
		for (size_t a = 0; a < rt->config->n_applications; a++) {
			const ConfigApplication *app = &rt->config->applications[a];
			r = run_hook(E, rt, app, "post_deploy", app->hook_post_deploy, err);
			if (r < 0)
				return r;
		}
	stage_clock_mark(&clock, "post-deploy-hooks");
	stage_clock_write(E, rt->name, &clock);
	(void)fresh;
	return 0;
}

int ensure_pool(Environments *E, BbxError *err)
{
	if (E->pool)
		return 0;
	char path[4096];
	struct stat st;
	snprintf(path, sizeof(path), "%s/pool.json", E->state_dir);
	if (stat(path, &st) < 0) {
		PoolOptions o = { .driver = STORAGE_DRIVER_AUTO };
		bool already = false;
		int r = pool_init(E->state_dir, &o, &already, err);
		if (r < 0) {
			bbx_error_prefix(err, "creating the volume pool");
			return r;
		}
	}
	return pool_open(E->state_dir, &E->pool, err);
}
