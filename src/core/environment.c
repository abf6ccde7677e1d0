/* SPDX-License-Identifier: MIT */
/* The operations on environments (environment.h). */
#include "environment.h"

#include "env-internal.h"
#include "time-util.h"

void environment_debug_stop_point(const char *op, const char *step)
{
#if BRANCHBOX_DEBUG_HOOKS /* -Ddebug_hooks=true: crash tests only, never a release */
	const char *want = getenv("BRANCHBOX_DEBUG_STOP_AT");
	char here[128];
	if (!want || !*want)
		return;
	snprintf(here, sizeof(here), "%s:%s", op, step);
	if (!strcmp(want, here))
		raise(SIGKILL);
#endif
}

/* ---- operations ---- */

/* The end of a successful deploy or create: the row says ready, with the config it runs
 * and this environment's own credentials (and the new commit, for a deploy). */
static int record_mark_ready(Environments *E, EnvRuntime *rt, const char *commit, BbxError *err)
{
	Store *s = core_store(E->core);
	_cleanup_free_ char *secrets = NULL, *cfg = NULL;
	json_t *cj = config_to_json(rt->config);
	cfg = cj ? json_dumps(cj, JSON_COMPACT | JSON_SORT_KEYS) : NULL;
	json_decref(cj);
	if (!cfg || secrets_to_json(rt, &secrets) < 0)
		return -ENOMEM;
	EnvRecord cur;
	int r = env_record_get(s, rt->name, &cur, err);
	if (r < 0)
		return r;
	if (commit) {
		free(cur.commit_id);
		cur.commit_id = strdup(commit);
	}
	cur.state = ENV_READY;
	free(cur.config_json);
	cur.config_json = TAKE_PTR(cfg);
	free(cur.secrets_json);
	cur.secrets_json = TAKE_PTR(secrets);
	free(cur.error);
	cur.error = NULL;
	cur.updated_at = store_now();
	r = cur.commit_id ? env_record_update(s, &cur, err) : -ENOMEM;
	env_record_done(&cur);
	return r;
}

int environment_deploy(Core *c, json_t **ret_info, BbxError *err)
{
	Environments *E = envs_of(c);
	Store *s = core_store(c);
	const char *name = E->production;
	char commit[GITREPO_ID_SIZE];
	_cleanup_(config_freep) ProjectConfig *config = NULL;
	EnvRecord rec = { 0 };
	_cleanup_runtime_ EnvRuntime *rt = NULL;
	bool created_slot = false, first;
	/* Declared before the first goto: the destroying check jumps to out, where it is freed. */
	_cleanup_free_ char *payload = NULL;
	int64_t jid = 0;
	int r;

	r = gitrepo_resolve(E->repo, name, commit, err);
	if (r < 0) {
		bbx_error_prefix(err, "production branch '%s'", name);
		return r;
	}
	r = load_config_at(E, commit, &config, err);
	if (r < 0)
		return r;
	pthread_mutex_lock(&E->pool_lock);
	r = ensure_pool(E, err);
	pthread_mutex_unlock(&E->pool_lock);
	if (r < 0)
		return r;
	r = runtime_get(E, name, &rt, &created_slot);
	if (r < 0)
		return r;
	pthread_mutex_lock(&rt->op_lock);
	if (runtime_removed(E, rt)) {
		/* Destroyed between the lookup and the lock: nothing of it to deploy over. */
		pthread_mutex_unlock(&rt->op_lock);
		return bbx_error_set(err, -EBUSY, BBX_CONFLICT,
				     "environment '%s' was destroyed meanwhile; deploy again",
				     name);
	}
	first = env_record_get(s, name, &rec, NULL) == -ENOENT;
	if (!first && rec.state == ENV_DESTROYING) {
		r = bbx_error_set(err, -EBUSY, BBX_CONFLICT, "environment '%s' is being destroyed",
				  name);
		goto out;
	}

	(void)asprintf(&payload, "{\"commit\":\"%s\",\"first\":%s}", commit,
		       first ? "true" : "false");
	r = journal_begin(s, "environment.deploy", name, "intent", payload, &jid, err);
	if (r < 0)
		goto out;
	environment_debug_stop_point("deploy", "intent");
	r = cancel_reset(rt);
	if (r >= 0)
		r = ensure_dirs(E, name);
	if (r < 0) {
		bbx_error_set(err, r, BBX_INTERNAL, "state directories for %s: %s", name,
			      strerror(-r));
		goto fail;
	}
	if (first) {
		int64_t now = store_now();
		EnvRecord nr = { .name = (char *)name,
				 .kind = "production",
				 .branch = (char *)name,
				 .commit_id = commit,
				 .state = ENV_CREATING,
				 .volume = (char *)name,
				 .created_at = now,
				 .updated_at = now };
		r = env_record_insert(s, &nr, core_uid_range(c), err);
		if (r < 0)
			goto fail;
		(void)journal_step(s, jid, "volume", NULL);
		environment_debug_stop_point("deploy", "volume");
		r = E->backend->volume_create(E, name, err);
		if (r < 0)
			goto fail;
	} else {
		/* Redeploy: the applications restart on the new code; the data stays. */
		atomic_store(&rt->ready, false);
		runtime_stop_processes(rt);
	}
	r = runtime_setup(E, rt, TAKE_PTR(config), commit, false, err);
	if (r < 0)
		goto fail;
	r = secrets_load(rt, first ? NULL : rec.secrets_json);
	if (r < 0)
		goto fail;
	r = bring_up(E, rt, "deploy", BRING_UP_HOOKS, jid, err);
	if (r < 0)
		goto fail;

	r = record_mark_ready(E, rt, commit, err);
	if (r < 0)
		goto fail;
	(void)journal_finish(s, jid, "done", NULL);
	atomic_store(&rt->ready, true);
	r = ret_info ? record_info(E, name, ret_info, err) : 0;
	goto out;

fail:
	if (first) {
		BbxError ignored = BBX_ERROR_INIT;
		(void)teardown(E, name, rt, false, &ignored);
		(void)env_record_delete(s, name, NULL);
		(void)journal_finish(s, jid, "undone", NULL);
		runtime_remove(E, rt);
		pthread_mutex_unlock(&rt->op_lock);
		env_record_done(&rec);
		return r;
	}
	/* Cut short by shutdown: left as a crash leaves it (the journal entry stays open), so the
	 * next start brings the previous commit back instead of a failed production. */
	if (!atomic_load(&E->shutting_down)) {
		(void)env_record_set_state(s, name, ENV_FAILED,
					   err ? err->message : "deploy failed", NULL);
		(void)journal_finish(s, jid, "failed", NULL);
	}
out:
	pthread_mutex_unlock(&rt->op_lock);
	env_record_done(&rec);
	return r;
}

static VolumeFreeze *make_freeze(EnvRuntime *parent, VolumeFreeze *f);

/* Between two steps of a create: has its caller given up on it? Then -ECANCELED. */
static int create_step(const EnvCreateOptions *opts, BbxError *err)
{
	if (opts->cancel_fd > 0 && cancel_fired(opts->cancel_fd))
		return bbx_error_reset(err, -ECANCELED, BBX_CONFLICT,
				       "the creation of environment '%s' was cancelled by its "
				       "caller; nothing of it was kept",
				       opts->name);
	return 0;
}

int environment_create(Core *c, const EnvCreateOptions *opts, json_t **ret_info, BbxError *err)
{
	Environments *E = envs_of(c);
	Store *s = core_store(c);
	const char *name = opts->name;
	const char *parent_name = opts->parent ? opts->parent : E->production;
	const char *branch = opts->branch ? opts->branch : name;
	char commit[GITREPO_ID_SIZE];
	_cleanup_(config_freep) ProjectConfig *config = NULL;
	_cleanup_(config_freep) ProjectConfig *policy = NULL;
	_cleanup_free_ char *policy_code = NULL;
	EnvRecord prec = { 0 };
	_cleanup_runtime_ EnvRuntime *rt = NULL;
	_cleanup_runtime_ EnvRuntime *parent = NULL;
	int64_t jid = 0;
	CancelRelay relay = { .started = false };
	int r;

	if (!name_is_valid(name))
		return bbx_error_set(err, -EINVAL, BBX_INVALID,
				     "environment name '%s' is not valid: use 1-63 of a-z, 0-9, "
				     "'-', '_', '.', starting with a letter or digit",
				     name);
	if (!strcmp(name, E->production))
		return bbx_error_set(
			err, -EEXIST, BBX_CONFLICT,
			"'%s' is the production environment; deploy it with 'branchbox deploy'",
			name);
	r = env_record_get(s, parent_name, &prec, NULL);
	if (r == -ENOENT)
		return bbx_error_set(err, -ENOENT, BBX_NOT_FOUND, "environment '%s' not found",
				     parent_name);
	if (r < 0)
		return r;
	if (prec.state != ENV_READY) {
		r = bbx_error_set(err, -EBUSY, BBX_CONFLICT,
				  "environment '%s' is %s, not ready to be cloned", parent_name,
				  env_state_to_string(prec.state));
		env_record_done(&prec);
		return r;
	}
	env_record_done(&prec);
	r = gitrepo_resolve(E->repo, branch, commit, err);
	if (r < 0) {
		if (r == -ENOENT)
			return bbx_error_reset(err, -ENOENT, BBX_INVALID,
					       "branch '%s' not found in the repository", branch);
		return r;
	}
	r = load_preview_config(E, commit, &config, &policy, &policy_code, err);
	if (r < 0)
		return r;

	parent = runtime_find(E, parent_name);
	if (!parent)
		return bbx_error_set(err, -EBUSY, BBX_CONFLICT, "environment '%s' is not running",
				     parent_name);
	bool created_slot = false;
	r = runtime_get(E, name, &rt, &created_slot);
	if (r < 0)
		return r;
	if (!created_slot)
		return bbx_error_set(err, -EEXIST, BBX_CONFLICT, "environment '%s' already exists",
				     name);
	pthread_mutex_lock(&rt->op_lock);

	int64_t now = store_now();
	uint64_t ttl = config->preview_ttl_sec;
	EnvRecord nr = { .name = (char *)name,
			 .kind = "preview",
			 .branch = (char *)branch,
			 .commit_id = commit,
			 .parent = (char *)parent_name,
			 .state = ENV_CREATING,
			 .volume = (char *)name,
			 .created_at = now,
			 .updated_at = now,
			 .expires_at = ttl ? now + (int64_t)ttl : 0,
			 .token_id = (char *)opts->token_id };
	r = admit_and_insert(E, rt, opts, config, &nr, err);
	if (r < 0) {
		runtime_remove(E, rt);
		pthread_mutex_unlock(&rt->op_lock);
		return r;
	}
	_cleanup_free_ char *payload = NULL;
	(void)asprintf(&payload, "{\"parent\":\"%s\",\"branch\":\"%s\",\"commit\":\"%s\"}",
		       parent_name, branch, commit);
	r = journal_begin(s, "environment.create", name, "intent", payload, &jid, err);
	if (r < 0)
		goto fail;
	environment_debug_stop_point("create", "intent");
	/* From here the caller's cancel fires the preview's own, which every step watches. */
	r = cancel_relay_start(rt, opts->cancel_fd, &relay);
	if (r < 0) {
		bbx_error_set(err, r, BBX_INTERNAL, "create %s: watching its caller's cancel: %s",
			      name, strerror(-r));
		goto fail;
	}
	r = ensure_dirs(E, name);
	if (r < 0) {
		bbx_error_set(err, r, BBX_INTERNAL, "state directories for %s: %s", name,
			      strerror(-r));
		goto fail;
	}
	r = create_step(opts, err);
	if (r < 0)
		goto fail;

	/* Snapshot the parent: quiesce its databases, then one atomic clone of its volume. */
	StageClock clock;
	stage_clock_start(&clock, "create-snapshot");
	pthread_mutex_lock(&parent->op_lock);
	if (runtime_removed(E, parent) || !atomic_load(&parent->ready)) {
		pthread_mutex_unlock(&parent->op_lock);
		r = bbx_error_set(err, -EBUSY, BBX_CONFLICT,
				  "environment '%s' stopped or was destroyed meanwhile",
				  parent_name);
		goto fail;
	}
	stage_clock_mark(&clock, "parent-lock");
	(void)quiesce_services(E, parent);
	stage_clock_mark(&clock, "quiesce");
	(void)journal_step(s, jid, "snapshot", NULL);
	environment_debug_stop_point("create", "snapshot");
	VolumeFreeze freeze;
	r = E->backend->volume_clone(E, parent_name, name, make_freeze(parent, &freeze), err);
	pthread_mutex_unlock(&parent->op_lock);
	if (r < 0)
		goto fail;
	stage_clock_mark(&clock, "snapshot");
	environment_debug_stop_point("create", "after-snapshot");
	r = create_step(opts, err);
	if (r < 0)
		goto fail;

	r = runtime_setup(E, rt, TAKE_PTR(config), commit, true, err);
	if (r < 0)
		goto fail;
	stage_clock_mark(&clock, "setup");
	rt->policy = TAKE_PTR(policy);
	rt->policy_code_dir = TAKE_PTR(policy_code);
	/* Its budget is fixed now, with the clone's size as the base its disk use counts from. */
	r = budget_assign(c, name, &rt->config->preview_budget, opts->token_id, err);
	if (r < 0)
		goto fail;
	/* Fresh credentials: nothing of the parent's secrets is valid here. */
	r = secrets_load(rt, NULL);
	if (r < 0)
		goto fail;
	stage_clock_mark(&clock, "budget+secrets");
	stage_clock_write(E, name, &clock);
	r = create_step(opts, err);
	if (r < 0)
		goto fail;
	r = bring_up(E, rt, "create", BRING_UP_CLONED | BRING_UP_HOOKS | BRING_UP_SANITIZE, jid,
		     err);
	admission_done(E, rt);
	cancel_relay_stop(&relay);
	/* A step the relay cut short failed on the preview's cancel: say why. */
	if (create_step(opts, err) < 0)
		r = -ECANCELED;
	if (r < 0)
		goto fail;

	r = record_mark_ready(E, rt, NULL, err);
	if (r < 0)
		goto fail;
	(void)journal_finish(s, jid, "done", NULL);
	/* Destroyed while it came up: the destroy that fired the cancel finishes the job. */
	if (!cancelled(rt))
		atomic_store(&rt->ready, true);
	pthread_mutex_unlock(&rt->op_lock);
	return ret_info ? record_info(E, name, ret_info, err) : 0;

fail:;
	/* Fail closed: nothing of a half-made preview stays, and nobody ever saw it ready. */
	BbxError ignored = BBX_ERROR_INIT;
	cancel_relay_stop(&relay);
	if (r != -ECANCELED && create_step(opts, err) < 0)
		r = -ECANCELED;
	admission_done(E, rt);
	(void)teardown(E, name, rt, false, &ignored);
	(void)env_record_delete(s, name, NULL);
	if (jid)
		(void)journal_finish(s, jid, "undone", NULL);
	runtime_remove(E, rt);
	pthread_mutex_unlock(&rt->op_lock);
	return r;
}

static int freeze_parent(void *userdata)
{
	EnvRuntime *p = userdata;
	for (size_t i = 0; i < p->n_services; i++)
		if (p->service_procs[i])
			(void)envproc_freeze(p->service_procs[i], true, NULL);
	for (size_t i = 0; i < p->config->n_applications; i++)
		if (p->app_procs[i])
			(void)envproc_freeze(p->app_procs[i], true, NULL);
	return 0;
}

static int thaw_parent(void *userdata)
{
	EnvRuntime *p = userdata;
	for (size_t i = 0; i < p->n_services; i++)
		if (p->service_procs[i])
			(void)envproc_freeze(p->service_procs[i], false, NULL);
	for (size_t i = 0; i < p->config->n_applications; i++)
		if (p->app_procs[i])
			(void)envproc_freeze(p->app_procs[i], false, NULL);
	return 0;
}

static VolumeFreeze *make_freeze(EnvRuntime *parent, VolumeFreeze *f)
{
	*f = (VolumeFreeze){ .freeze = freeze_parent, .thaw = thaw_parent, .userdata = parent };
	return f;
}

/*
 * Stop whatever runs in rt on behalf of anyone: nothing is ready any more, every command and
 * wait is cancelled (their process trees killed), and the caller then takes op_lock, which no
 * agent command holds while it runs.
 */
static void runtime_interrupt(EnvRuntime *rt)
{
	atomic_store(&rt->ready, false);
	cancel_fire(rt);
}

int environment_destroy(Core *c, const char *name, BbxError *err)
{
	Environments *E = envs_of(c);
	Store *s = core_store(c);
	EnvRecord rec;
	int64_t jid = 0;
	int r;

	r = env_record_get(s, name, &rec, err);
	if (r < 0)
		return r;
	/* Tearing down the last preview: wait for the space to be really free again. */
	bool sync = !strcmp(rec.kind, "preview");
	env_record_done(&rec);
	if (sync) {
		EnvRecord *v = NULL;
		size_t n = 0, previews = 0;
		if (env_record_list(s, &v, &n, NULL) >= 0)
			for (size_t i = 0; i < n; i++)
				previews += !strcmp(v[i].kind, "preview");
		env_records_free(v, n);
		sync = previews <= 1;
	}
	_cleanup_runtime_ EnvRuntime *rt = NULL;
	r = runtime_get(E, name, &rt, NULL);
	if (r < 0)
		return r;
	runtime_interrupt(rt);
	pthread_mutex_lock(&rt->op_lock);
	if (runtime_removed(E, rt)) {
		/* A create this cancelled (or another destroy) took it down meanwhile. */
		pthread_mutex_unlock(&rt->op_lock);
		return env_record_exists(s, name) > 0
			       ? bbx_error_set(
					 err, -EBUSY, BBX_CONFLICT,
					 "environment '%s' changed meanwhile; destroy it again",
					 name)
			       : 0;
	}
	/* Commands cancelled above end within moments; teardown kills whatever is left. */
	(void)runs_wait_gone(rt, CANCEL_WAIT_MS);
	r = journal_begin(s, "environment.destroy", name, "intent", NULL, &jid, err);
	if (r < 0) {
		pthread_mutex_unlock(&rt->op_lock);
		return r;
	}
	(void)env_record_set_state(s, name, ENV_DESTROYING, NULL, NULL);
	environment_debug_stop_point("destroy", "intent");
	(void)journal_step(s, jid, "teardown", NULL);
	r = teardown(E, name, rt, sync, err);
	environment_debug_stop_point("destroy", "teardown");
	if (r >= 0)
		r = env_record_delete(s, name, err);
	(void)journal_finish(s, jid, r >= 0 ? "done" : "failed", NULL);
	if (r >= 0)
		runtime_remove(E, rt);
	pthread_mutex_unlock(&rt->op_lock);
	return r;
}

/* Bring a recorded environment's processes up again (after stop or a daemon restart). */
int start_recorded(Environments *E, EnvRuntime *rt, const EnvRecord *rec, BbxError *err)
{
	_cleanup_(config_freep) ProjectConfig *config = NULL, *policy = NULL;
	bool preview = !strcmp(rec->kind, "preview");
	/* A preview starts again within what production's config allows now. */
	int r = preview ? load_preview_config(E, rec->commit_id, &config, &policy, NULL, err)
			: load_config_at(E, rec->commit_id, &config, err);
	if (r < 0)
		return r;
	atomic_store(&rt->ready, false);
	r = cancel_reset(rt);
	if (r < 0)
		return bbx_error_set(err, r, BBX_INTERNAL, "environment %s: %s", rec->name,
				     strerror(-r));
	r = runtime_setup(E, rt, TAKE_PTR(config), rec->commit_id, preview, err);
	config_free(rt->policy);
	rt->policy = TAKE_PTR(policy);
	if (r >= 0)
		r = secrets_load(rt, rec->secrets_json);
	if (r >= 0)
		r = ensure_dirs(E, rec->name);
	if (r >= 0)
		r = bring_up(E, rt, "start", 0, 0, err);
	if (r >= 0 && !cancelled(rt))
		atomic_store(&rt->ready, true);
	return r;
}

int environment_stop(Core *c, const char *name, BbxError *err)
{
	Environments *E = envs_of(c);
	EnvRecord rec;
	int r = env_record_get(core_store(c), name, &rec, err);
	if (r < 0)
		return r;
	env_record_done(&rec);
	_cleanup_runtime_ EnvRuntime *rt = runtime_find(E, name);
	if (rt) {
		runtime_interrupt(rt);
		pthread_mutex_lock(&rt->op_lock);
		(void)runs_wait_gone(rt, CANCEL_WAIT_MS);
		runtime_stop_processes(rt);
		pthread_mutex_unlock(&rt->op_lock);
	}
	return env_record_set_state(core_store(c), name, ENV_STOPPED, NULL, err);
}

int environment_start(Core *c, const char *name, BbxError *err)
{
	Environments *E = envs_of(c);
	EnvRecord rec;
	_cleanup_runtime_ EnvRuntime *rt = NULL;
	/* A preview that used up its budget stays stopped. */
	int r = budget_refuse_start(c, name, err);
	if (r < 0)
		return r;
	r = env_record_get(core_store(c), name, &rec, err);
	if (r < 0)
		return r;
	if (rec.state != ENV_STOPPED && rec.state != ENV_FAILED && rec.state != ENV_READY) {
		r = bbx_error_set(err, -EBUSY, BBX_CONFLICT, "environment '%s' is %s", name,
				  env_state_to_string(rec.state));
		env_record_done(&rec);
		return r;
	}
	r = runtime_get(E, name, &rt, NULL);
	if (r >= 0) {
		pthread_mutex_lock(&rt->op_lock);
		bool gone = runtime_removed(E, rt);
		if (!gone) {
			runtime_stop_processes(rt);
			r = start_recorded(E, rt, &rec, err);
		}
		pthread_mutex_unlock(&rt->op_lock);
		if (gone) {
			env_record_done(&rec);
			return bbx_error_set(err, -ENOENT, BBX_NOT_FOUND,
					     "environment '%s' was destroyed meanwhile", name);
		}
	}
	if (r >= 0 || !atomic_load(&E->shutting_down))
		(void)env_record_set_state(core_store(c), name, r >= 0 ? ENV_READY : ENV_FAILED,
					   r >= 0 ? NULL : bbx_error_message(err, r), NULL);
	env_record_done(&rec);
	return r;
}

/* The one answer exec, logs, file access and the preview proxy give until an environment is
 * ready: a preview's data is not masked before then. */
static int not_ready(BbxError *err, const char *name)
{
	return bbx_error_set(err, -EBUSY, BBX_CONFLICT, "environment '%s' is not ready", name);
}

bool environment_exists(Core *c, const char *name)
{
	return env_record_exists(core_store(c), name) > 0;
}

int environment_info(Core *c, const char *name, json_t **ret, BbxError *err)
{
	return record_info(envs_of(c), name, ret, err);
}

int environment_list(Core *c, const Principal *p, json_t **ret, BbxError *err)
{
	Environments *E = envs_of(c);
	EnvRecord *v = NULL;
	size_t n = 0;
	int r = env_record_list(core_store(c), &v, &n, err);
	if (r < 0)
		return r;
	json_t *a = json_array();
	for (size_t i = 0; a && i < n; i++) {
		if (p && !policy_can_see_environment(c, p, v[i].name))
			continue;
		json_t *o = record_json(E, &v[i]);
		if (o)
			json_array_append_new(a, o);
	}
	env_records_free(v, n);
	if (!a)
		return -ENOMEM;
	*ret = a;
	return 0;
}

/* Wait for op_lock at most ms; false when a lifecycle step holds it longer. */
static bool op_lock_timed(EnvRuntime *rt, int ms)
{
	struct timespec deadline = realtime_after_ms((unsigned)ms);
	return pthread_mutex_timedlock(&rt->op_lock, &deadline) == 0;
}

/*
 * Its sandbox is built under op_lock (so no lifecycle step changes the environment halfway
 * through), from copies and its own fds; then the lock is let go and the command runs
 * watching a duplicate of the environment's cancel fd: destroy, stop and shutdown kill it
 * without waiting for it, and nothing it does can hold them up.
 */
int environment_exec(Core *c, const EnvExecOptions *opts, OneshotResult *ret, BbxError *err)
{
	Environments *E = envs_of(c);
	EnvRecord rec;
	int r = env_record_get(core_store(c), opts->name, &rec, err);
	if (r < 0)
		return r;
	bool ready = rec.state == ENV_READY;
	env_record_done(&rec);
	_cleanup_runtime_ EnvRuntime *rt = runtime_find(E, opts->name);
	if (!ready || !rt || !atomic_load(&rt->ready) || atomic_load(&E->shutting_down))
		return not_ready(err, opts->name);
	if (!opts->argv || !opts->argv[0])
		return bbx_error_set(err, -EINVAL, BBX_INVALID, "no command given");

	if (!op_lock_timed(rt, EXEC_LOCK_WAIT_MS))
		return bbx_error_set(err, -EBUSY, BBX_CONFLICT,
				     "environment '%s' is busy with another operation; try again",
				     opts->name);
	/* Stopped, destroyed or redeployed while this waited for the lock. */
	if (!atomic_load(&rt->ready) || !rt->config || rt->netns_fd < 0) {
		pthread_mutex_unlock(&rt->op_lock);
		return not_ready(err, opts->name);
	}
	const ConfigApplication *app = find_app(rt, opts->application, NULL);
	if (!app) {
		pthread_mutex_unlock(&rt->op_lock);
		return bbx_error_set(err, -ENOENT, BBX_INVALID,
				     "environment '%s' has no application '%s'", opts->name,
				     opts->application ? opts->application : "");
	}
	ProcBuild b;
	_cleanup_close_ int cancel = -EBADF;
	r = pb_app(E, rt, app, rt->code_dir, &b, "exec", 0, err);
	if (r >= 0) {
		/* Its own fds: the environment's may be closed by a teardown while it runs. */
		b.spec.netns_fd = pb_keep_fd(&b, fcntl(rt->netns_fd, F_DUPFD_CLOEXEC, 3));
		cancel = fcntl(rt->cancel_fd, F_DUPFD_CLOEXEC, 3);
		if (b.spec.netns_fd < 0 || cancel < 0)
			r = bbx_error_set(err, -errno, BBX_INTERNAL, "exec in %s: %m", opts->name);
	}
	if (r >= 0) {
		pthread_mutex_lock(&rt->lock);
		rt->n_running++;
		pthread_mutex_unlock(&rt->lock);
	}
	pthread_mutex_unlock(&rt->op_lock);
	if (r < 0) {
		proc_build_done(&b);
		return r;
	}

	b.spec.log_path = NULL;
	b.spec.argv = opts->argv;
	EnvOneshotOptions o;
	envproc_oneshot_options_init(&o);
	o.stdin_data = opts->stdin_data;
	o.stdin_len = opts->stdin_data ? strlen(opts->stdin_data) : 0;
	o.timeout_ms = (opts->timeout_sec ? opts->timeout_sec : 600) * 1000;
	o.cancel_fd = cancel;
	o.call_cancel_fd = opts->cancel_fd > 0 ? opts->cancel_fd : -EBADF;
	o.separate_streams = true;
	uint64_t start = now_monotonic_ms();
	r = E->backend->process_run(&b.spec, &o, ret, err);
	if (r == -ECANCELED && o.call_cancel_fd >= 0 && cancel_fired(o.call_cancel_fd))
		r = bbx_error_reset(err, -ECANCELED, BBX_CONFLICT,
				    "the command in environment '%s' was cancelled by its caller "
				    "after %llu ms; its processes were killed",
				    opts->name, (unsigned long long)(now_monotonic_ms() - start));
	else if (r == -ECANCELED)
		r = bbx_error_reset(err, -ECANCELED, BBX_CONFLICT,
				    "environment '%s' was stopped or destroyed while the command "
				    "ran; its processes were killed",
				    opts->name);
	proc_build_done(&b);

	pthread_mutex_lock(&rt->lock);
	rt->n_running--;
	pthread_cond_broadcast(&rt->run_done);
	pthread_mutex_unlock(&rt->lock);
	return r;
}

int environment_sql(Core *c, const char *name, const char *service, const char *sql,
		    uint64_t timeout_sec, OneshotResult *ret, BbxError *err)
{
	Environments *E = envs_of(c);
	_cleanup_runtime_ EnvRuntime *rt = runtime_find(E, name);
	if (!rt || !atomic_load(&rt->ready) || atomic_load(&E->shutting_down))
		return not_ready(err, name);
	if (!op_lock_timed(rt, EXEC_LOCK_WAIT_MS))
		return bbx_error_set(err, -EBUSY, BBX_CONFLICT,
				     "environment '%s' is busy with another operation; try again",
				     name);
	int r = atomic_load(&rt->ready) && rt->config
			? run_service_sql(E, rt, service, sql, "validate-sql",
					  timeout_sec ? timeout_sec : 300, ret, err)
			: not_ready(err, name);
	pthread_mutex_unlock(&rt->op_lock);
	return r;
}

int environment_config_at(Core *c, const char *commit, ProjectConfig **ret, BbxError *err)
{
	return load_config_at(envs_of(c), commit, ret, err);
}

bool environments_shutting_down(Core *c)
{
	Environments *E = envs_of(c);
	return !E || atomic_load(&E->shutting_down);
}

int environment_logs(Core *c, const char *name, const char *process, int64_t offset, size_t max,
		     char **ret_text, int64_t *ret_next, BbxError *err)
{
	Environments *E = envs_of(c);
	EnvRecord rec;
	char path[4096];
	int r = env_record_get(core_store(c), name, &rec, err);
	if (r < 0)
		return r;
	bool hidden = !strcmp(rec.kind, "preview") &&
		      (rec.state == ENV_CREATING || rec.state == ENV_DESTROYING);
	env_record_done(&rec);
	if (hidden)
		return not_ready(err, name);
	char first_app[128] = "deploy";
	if (!process) {
		_cleanup_runtime_ EnvRuntime *rt = runtime_find(E, name);
		if (rt) {
			pthread_mutex_lock(&rt->lock);
			if (rt->config && rt->config->n_applications)
				snprintf(first_app, sizeof(first_app), "%s",
					 rt->config->applications[0].name);
			pthread_mutex_unlock(&rt->lock);
		}
		process = first_app;
	}
	if (!name_is_valid(process))
		return bbx_error_set(err, -EINVAL, BBX_INVALID, "process name '%s' is not valid",
				     process);
	snprintf(path, sizeof(path), "%s/logs/%s/%s.log", E->state_dir, name, process);
	_cleanup_close_ int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
	if (fd < 0) {
		if (errno == ENOENT)
			return bbx_error_set(err, -ENOENT, BBX_INVALID,
					     "environment '%s' has no log for process '%s'", name,
					     process);
		return bbx_error_set(err, -errno, BBX_INTERNAL, "%s: %m", path);
	}
	struct stat st;
	if (fstat(fd, &st) < 0)
		return -errno;
	int64_t size = st.st_size, start;
	if (offset < 0)
		start = size + offset > 0 ? size + offset : 0;
	else
		start = offset > size ? 0 : offset; /* the file rotated: start over */
	if ((uint64_t)(size - start) > max)
		start = size - (int64_t)max;
	size_t n = (size_t)(size - start);
	char *buf = malloc(n + 1);
	if (!buf)
		return -ENOMEM;
	ssize_t k = pread(fd, buf, n, start);
	if (k < 0) {
		free(buf);
		return -errno;
	}
	buf[k] = '\0';
	*ret_text = buf;
	*ret_next = start + k;
	return 0;
}

int environment_connect_app(Core *c, const char *name, int *ret_fd, BbxError *err)
{
	Environments *E = envs_of(c);
	_cleanup_runtime_ EnvRuntime *rt = runtime_find(E, name);
	if (!rt)
		return not_ready(err, name);
	/* What to connect to, copied under the short lock; the connect itself holds nothing. */
	pthread_mutex_lock(&rt->lock);
	bool up = rt->netns_fd >= 0 && rt->config && atomic_load(&rt->ready);
	const ConfigApplication *app = up ? find_app(rt, NULL, NULL) : NULL;
	bool web = app && app->has_web;
	uint16_t port = web ? app->web_port : 0;
	_cleanup_close_ int netns = up && web ? fcntl(rt->netns_fd, F_DUPFD_CLOEXEC, 3) : -EBADF;
	pthread_mutex_unlock(&rt->lock);
	if (!up)
		return not_ready(err, name);
	if (!web)
		return bbx_error_set(err, -ENOENT, BBX_UNAVAILABLE,
				     "environment '%s' has no web application", name);
	if (netns < 0)
		return bbx_error_set(err, -errno, BBX_INTERNAL, "environment '%s': %m", name);
	int fd = E->backend->connect(netns, port, 10000, err);
	if (fd < 0)
		return fd;
	*ret_fd = fd;
	return 0;
}
