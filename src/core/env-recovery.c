/* SPDX-License-Identifier: MIT */
/* Background jobs, expiry, crash recovery, and the start and end of it all. */
#include "down.h"
#include "env-internal.h"
#include "proposal.h"

/* ---- background jobs ---- */

/* A thread the daemon started for one environment (a restart, an expiry), in E->jobs: one at
 * a time per environment, joined when it is done (by the reaper) or at shutdown. */
typedef struct EnvJob {
	Environments *E;
	char name[64];
	EnvRecord rec; /* a restart's record */
	void (*run)(struct EnvJob *job);
} EnvJob;

static void job_run(void *userdata)
{
	EnvJob *job = userdata;
	job->run(job);
}

static void job_free(void *userdata)
{
	EnvJob *job = userdata;
	env_record_done(&job->rec);
	free(job);
}

/* Start run(job) unless a job for the same environment is still running; takes job. */
static int job_start(Environments *E, EnvJob *job)
{
	job->E = E;
	return jobs_start(&E->jobs, job->name, job_run, job, job_free);
}

/* ---- expiry ---- */

static void expire_one(Core *c, const char *name)
{
	BbxError e = BBX_ERROR_INIT;
	int r = environment_destroy(c, name, &e);
	Principal system = { .kind = PRINCIPAL_ROOT };
	snprintf(system.name, sizeof(system.name), "system:reaper");
	char resource[160], digest[65] = "";
	snprintf(resource, sizeof(resource), "environment:%s", name);
	AuditRecord rec = { .request_id = "reaper",
			    .principal = &system,
			    .interface = "daemon",
			    .action = "environment.expire",
			    .resource = resource,
			    .decision = "allow",
			    .reason = r < 0 ? bbx_error_message(&e, r) : "ttl expired",
			    .request_digest = digest,
			    .outcome = r < 0 ? "failed" : "destroyed" };
	(void)audit_append(c, &rec, NULL, NULL);
}

static void expire_job(EnvJob *job)
{
	expire_one(job->E->core, job->name);
}

/* Previews whose TTL has passed (a list the caller frees with strv_free). One still being
 * created is left to finish first: expiring it mid-create failed the create with "stopped or
 * destroyed meanwhile" whenever creating took longer than a short TTL, and a create the
 * daemon died in is finished or undone by recovery, not by expiry. */
static int expired_names(Core *c, char ***ret, BbxError *err)
{
	EnvRecord *v = NULL;
	size_t n = 0;
	char **names = NULL;
	int64_t now = store_now();
	int r = env_record_list(core_store(c), &v, &n, err);
	if (r < 0)
		return r;
	for (size_t i = 0; i < n; i++)
		if (!strcmp(v[i].kind, "preview") && v[i].expires_at && v[i].expires_at <= now &&
		    v[i].state != ENV_DESTROYING && v[i].state != ENV_CREATING)
			if (strv_push(&names, v[i].name) < 0) {
				env_records_free(v, n);
				strv_free(names);
				return -ENOMEM;
			}
	env_records_free(v, n);
	*ret = names;
	return 0;
}

int environments_reap_expired(Core *c, BbxError *err)
{
	_cleanup_strv_free_ char **names = NULL;
	int r = expired_names(c, &names, err);
	if (r < 0)
		return r;
	int reaped = 0;
	for (size_t i = 0; names && names[i]; i++) {
		expire_one(c, names[i]);
		reaped += !environment_exists(c, names[i]);
	}
	return reaped;
}

/* Each expiry runs on a thread of its own: one preview slow to tear down never holds up
 * another's. */
static void *reaper_main(void *userdata)
{
	Environments *E = userdata;
	for (;;) {
		struct pollfd pfd = { .fd = E->reaper_wake[0], .events = POLLIN };
		int k = poll(&pfd, 1, REAPER_INTERVAL_SEC * 1000);
		if (k > 0)
			break;
		jobs_reap(&E->jobs, false);
		_cleanup_strv_free_ char **names = NULL;
		if (expired_names(E->core, &names, NULL) < 0)
			continue;
		for (size_t i = 0; names && names[i]; i++) {
			EnvJob *job = calloc(1, sizeof(*job));
			if (!job)
				break;
			snprintf(job->name, sizeof(job->name), "%s", names[i]);
			job->run = expire_job;
			(void)job_start(E, job);
		}
	}
	return NULL;
}

/* ---- crash recovery ---- */

static bool has_record(EnvRecord *v, size_t n, const char *name)
{
	for (size_t i = 0; i < n; i++)
		if (!strcmp(v[i].name, name))
			return true;
	return false;
}

/* Whether anything of environment name may be left on the host (errors count as yes). */
static bool env_files_left(Environments *E, const char *name)
{
	static const char *const kinds[] = { "code", "tmp", "logs" };
	char path[4096];
	for (size_t i = 0; i < ELEMENTSOF(kinds); i++) {
		env_path(E, path, sizeof(path), kinds[i], name);
		if (access(path, F_OK) == 0 || errno != ENOENT)
			return true;
	}
	return E->pool && pool_volume_exists(E->pool, name) != 0;
}

/* Finish or undo what a crash interrupted, then remove what no environment owns. */
static int reconcile(Environments *E, BbxError *err)
{
	Store *s = core_store(E->core);
	JournalEntry *jv = NULL;
	size_t jn = 0;
	int r = journal_list_pending(s, &jv, &jn, err);
	if (r < 0)
		return r;
	for (size_t i = 0; i < jn; i++) {
		JournalEntry *j = &jv[i];
		/* A proposal's own steps: proposals_init() recovers them. */
		if (!strncmp(j->kind, "proposal.", 9))
			continue;
		EnvRecord rec;
		bool exists = env_record_get(s, j->target, &rec, NULL) >= 0;
		bool half_made = exists && rec.state == ENV_CREATING;
		if (exists)
			env_record_done(&rec);
		BbxError ignored = BBX_ERROR_INIT;
		if (!strcmp(j->kind, "environment.destroy") || half_made ||
		    (!exists && (!strcmp(j->kind, "environment.create") ||
				 !strcmp(j->kind, "environment.deploy")))) {
			/* Never finished creating (nobody saw it ready), or was being destroyed:
			 * either way it goes, completely. */
			(void)teardown(E, j->target, NULL, false, &ignored);
			(void)env_record_delete(s, j->target, NULL);
			(void)journal_finish(
				s, j->id,
				!strcmp(j->kind, "environment.destroy") ? "done" : "undone", NULL);
		} else {
			/* An interrupted redeploy: the record still names the previous commit,
			 * which is what starts again below. */
			(void)env_record_set_state(s, j->target, ENV_READY, NULL, NULL);
			(void)journal_finish(s, j->id, "failed", NULL);
		}
	}
	journal_entries_free(jv, jn);

	EnvRecord *ev = NULL;
	size_t en = 0;
	r = env_record_list(s, &ev, &en, err);
	if (r < 0)
		return r;
	/* Orphaned volumes. */
	VolumeInfo *vv = NULL;
	size_t vn = 0;
	if (E->pool && pool_volume_list(E->pool, &vv, &vn, NULL) >= 0) {
		for (size_t i = 0; i < vn; i++)
			if (!has_record(ev, en, vv[i].name))
				(void)E->backend->volume_destroy(E, vv[i].name, false, NULL);
		volume_info_list_free(vv, vn);
	}
	/* Cgroups: every environment's processes died with the previous daemon, so the
	 * cgroups left are empty husks (or orphans to kill). */
	char **cg = cgroup_env_names(E);
	for (size_t i = 0; cg && cg[i]; i++)
		E->backend->processes_remove(E, cg[i]);
	strv_free(cg);
	/* Orphaned namespaces, checkouts, logs and scratch dirs. */
	static const char *const kinds[] = { "run/netns", "code", "tmp", "logs" };
	for (size_t k = 0; k < ELEMENTSOF(kinds); k++) {
		char dir[4096];
		snprintf(dir, sizeof(dir), "%s/%s", E->state_dir, kinds[k]);
		DIR *d = opendir(dir);
		if (!d)
			continue;
		struct dirent *de;
		while ((de = readdir(d))) {
			if (de->d_name[0] == '.' || has_record(ev, en, de->d_name))
				continue;
			char p[4096];
			snprintf(p, sizeof(p), "%s/%s", dir, de->d_name);
			if (k == 0)
				(void)E->backend->network_remove(E, de->d_name, NULL);
			else
				(void)rm_rf(p);
		}
		closedir(d);
	}
	env_records_free(ev, en);
	/* Uids whose environment has no row any more (a crash after its teardown, or a
	 * teardown that failed): released once nothing of it is left on the host. */
	char **held = NULL;
	if (uid_allocation_orphans(s, &held, NULL) >= 0) {
		for (size_t i = 0; held && held[i]; i++)
			if (!env_files_left(E, held[i]))
				(void)uid_allocation_files_gone(s, held[i], NULL);
		strv_free(held);
		(void)uid_allocation_sweep(s, NULL);
	}
	return 0;
}

static void restart_job(EnvJob *job)
{
	Environments *E = job->E;
	_cleanup_runtime_ EnvRuntime *rt = NULL;
	BbxError err = BBX_ERROR_INIT;
	int r = runtime_get(E, job->rec.name, &rt, NULL);
	if (r >= 0) {
		pthread_mutex_lock(&rt->op_lock);
		r = runtime_removed(E, rt) ? -ENOENT : start_recorded(E, rt, &job->rec, &err);
		pthread_mutex_unlock(&rt->op_lock);
	}
	/* Cut short by shutdown: still "starting", so the next start restarts it. */
	if ((r != -ENOENT || !rt) && !atomic_load(&E->shutting_down))
		(void)env_record_set_state(core_store(E->core), job->rec.name,
					   r >= 0 ? ENV_READY : ENV_FAILED,
					   r >= 0 ? NULL : bbx_error_message(&err, r), NULL);
}

int environments_init(Core *c, BbxError *err)
{
	Environments *E = calloc(1, sizeof(*E));
	int r;

	if (!E)
		return -ENOMEM;
	E->core = c;
	E->backend = &backend_local;
	pthread_mutex_init(&E->lock, NULL);
	pthread_mutex_init(&E->pool_lock, NULL);
	jobs_init(&E->jobs);
	pthread_mutex_init(&E->admit_lock, NULL);
	E->reaper_wake[0] = E->reaper_wake[1] = -EBADF;
	E->state_dir = strdup(core_state_dir(c));
	E->production = strdup(core_production_branch(c));
	if (!E->state_dir || !E->production) {
		free(E->state_dir);
		free(E->production);
		free(E);
		return -ENOMEM;
	}
	core_set_environments(c, E);
	/* Several daemons (state dirs) may share a host: each keeps its cgroups apart (and
	 * `branchbox down` finds them by the same prefix). */
	(void)state_cgroup_prefix(E->state_dir, E->cgroup_prefix, sizeof(E->cgroup_prefix));

	r = gitrepo_open(core_repo_path(c), &E->repo, err);
	if (r < 0)
		return r;
	char path[4096];
	struct stat st;
	snprintf(path, sizeof(path), "%s/pool.json", E->state_dir);
	if (stat(path, &st) == 0) {
		r = pool_open(E->state_dir, &E->pool, err);
		if (r < 0)
			return r;
	}
	r = reconcile(E, err);
	if (r < 0)
		return r;

	/* Restart what was running when the daemon stopped, in the background. */
	EnvRecord *v = NULL;
	size_t n = 0;
	r = env_record_list(core_store(c), &v, &n, err);
	if (r < 0)
		return r;
	for (size_t i = 0; i < n; i++) {
		if (v[i].state != ENV_READY && v[i].state != ENV_STARTING)
			continue;
		/* "starting" until its services answer and its apps are healthy again. */
		(void)env_record_set_state(core_store(c), v[i].name, ENV_STARTING, NULL, NULL);
		EnvJob *job = calloc(1, sizeof(*job));
		if (!job)
			continue;
		snprintf(job->name, sizeof(job->name), "%s", v[i].name);
		job->rec = v[i];
		memset(&v[i], 0, sizeof(v[i]));
		job->run = restart_job;
		(void)job_start(E, job);
	}
	env_records_free(v, n);

	if (pipe2(E->reaper_wake, O_CLOEXEC) == 0 &&
	    pthread_create(&E->reaper, NULL, reaper_main, E) == 0)
		E->reaper_started = true;
	r = budget_meter_start(c, &E->meter);
	if (r < 0)
		return r;
	/* Proposals validate and merge through environments: they start (and recover) last. */
	return proposals_init(c, err);
}

void environments_quiesce(Core *c)
{
	Environments *E = envs_of(c);
	if (!E)
		return;
	atomic_store(&E->shutting_down, true);
	pthread_mutex_lock(&E->lock);
	for (size_t i = 0; i < E->n_runtimes; i++)
		cancel_fire(E->runtimes[i]);
	pthread_mutex_unlock(&E->lock);
}

void environments_shutdown(Core *c)
{
	Environments *E = envs_of(c);
	if (!E)
		return;
	environments_quiesce(c);
	proposals_shutdown(c);
	budget_meter_stop(TAKE_PTR(E->meter));
	if (E->reaper_started) {
		(void)!write(E->reaper_wake[1], "x", 1);
		pthread_join(E->reaper, NULL);
	}
	safe_close(E->reaper_wake[0]);
	safe_close(E->reaper_wake[1]);
	/* Restarts and expiries were cancelled above: they end soon. */
	jobs_reap(&E->jobs, true);
	pthread_mutex_lock(&E->lock);
	EnvRuntime **v = E->runtimes;
	size_t n = E->n_runtimes;
	E->runtimes = NULL;
	E->n_runtimes = 0;
	for (size_t i = 0; i < n; i++)
		v[i]->removed = true;
	pthread_mutex_unlock(&E->lock);
	for (size_t i = 0; i < n; i++) {
		pthread_mutex_lock(&v[i]->op_lock);
		(void)runs_wait_gone(v[i], CANCEL_WAIT_MS);
		runtime_stop_processes(v[i]);
		pthread_mutex_unlock(&v[i]->op_lock);
		runtime_unref(v[i]);
	}
	free(v);
	gitrepo_free(E->repo);
	pool_free(E->pool);
	free(E->state_dir);
	free(E->production);
	jobs_done(&E->jobs);
	core_set_environments(c, NULL);
	free(E);
}
