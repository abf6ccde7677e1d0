/* SPDX-License-Identifier: MIT */
/* The runtime of one environment: its lifetime, references, cancelling, setup from a config. */
#include "env-internal.h"
#include "time-util.h"

/* ---- paths ---- */

char *path_join(const char *a, const char *b, const char *c2)
{
	char *p = NULL;
	if (asprintf(&p, "%s/%s%s%s", a, b, c2 ? "/" : "", c2 ? c2 : "") < 0)
		return NULL;
	return p;
}

void env_path(Environments *E, char *buf, size_t size, const char *kind, const char *name)
{
	snprintf(buf, size, "%s/%s/%s", E->state_dir, kind, name);
}

/* ---- runtime objects ---- */

/* Take the processes out (under lock, so readers never see one being freed), then end them. */
void runtime_stop_processes(EnvRuntime *rt)
{
	size_t na = 0, ns = 0;
	EnvProc **apps = NULL, **svcs = NULL;

	pthread_mutex_lock(&rt->lock);
	na = rt->config && rt->app_procs ? rt->config->n_applications : 0;
	ns = rt->service_procs ? rt->n_services : 0;
	apps = na ? calloc(na, sizeof(*apps)) : NULL;
	svcs = ns ? calloc(ns, sizeof(*svcs)) : NULL;
	for (size_t i = 0; apps && i < na; i++) {
		apps[i] = rt->app_procs[i];
		rt->app_procs[i] = NULL;
	}
	for (size_t i = 0; svcs && i < ns; i++) {
		svcs[i] = rt->service_procs[i];
		rt->service_procs[i] = NULL;
	}
	pthread_mutex_unlock(&rt->lock);
	if ((na && !apps) || (ns && !svcs)) {
		/* No memory to take them out: end them in place, still under op_lock. */
		free(apps);
		free(svcs);
		for (size_t i = 0; i < na; i++)
			if (rt->app_procs[i])
				envproc_stop(rt->app_procs[i], STOP_GRACE_MS);
		for (size_t i = 0; i < ns; i++)
			if (rt->service_procs[i])
				envproc_stop(rt->service_procs[i], STOP_GRACE_MS);
		return;
	}
	/* Applications first: they use the services. */
	for (size_t i = 0; i < na; i++)
		if (apps[i]) {
			envproc_stop(apps[i], STOP_GRACE_MS);
			envproc_free(apps[i]);
		}
	for (size_t i = 0; i < ns; i++)
		if (svcs[i]) {
			envproc_stop(svcs[i], STOP_GRACE_MS);
			envproc_free(svcs[i]);
		}
	free(apps);
	free(svcs);
}

static void runtime_free(EnvRuntime *rt)
{
	if (!rt)
		return;
	runtime_stop_processes(rt);
	for (size_t i = 0; rt->config && rt->app_procs && i < rt->config->n_applications; i++)
		envproc_free(rt->app_procs[i]);
	for (size_t i = 0; rt->service_procs && i < rt->n_services; i++)
		envproc_free(rt->service_procs[i]);
	safe_close(rt->netns_fd);
	safe_close(rt->cancel_fd);
	config_free(rt->config);
	config_free(rt->policy);
	free(rt->policy_code_dir);
	for (size_t i = 0; i < rt->n_services; i++)
		free(rt->service_data_host ? rt->service_data_host[i] : NULL);
	free(rt->service_data_host);
	free(rt->services);
	free(rt->passwords);
	free(rt->service_procs);
	free(rt->app_procs);
	free(rt->commit);
	free(rt->code_dir);
	free(rt->volume_path);
	pthread_cond_destroy(&rt->run_done);
	pthread_mutex_destroy(&rt->lock);
	pthread_mutex_destroy(&rt->op_lock);
	free(rt->name);
	free(rt);
}

static EnvRuntime *runtime_ref(EnvRuntime *rt)
{
	if (rt)
		atomic_fetch_add(&rt->refs, 1);
	return rt;
}

void runtime_unref(EnvRuntime *rt)
{
	if (rt && atomic_fetch_sub(&rt->refs, 1) == 1)
		runtime_free(rt);
}

void runtime_unrefp(EnvRuntime **rt)
{
	runtime_unref(*rt);
}

/* The runtime of name with a reference the caller drops, or NULL. */
EnvRuntime *runtime_find(Environments *E, const char *name)
{
	EnvRuntime *rt = NULL;
	pthread_mutex_lock(&E->lock);
	for (size_t i = 0; i < E->n_runtimes; i++)
		if (!strcmp(E->runtimes[i]->name, name))
			rt = runtime_ref(E->runtimes[i]);
	pthread_mutex_unlock(&E->lock);
	return rt;
}

/* Find or create the runtime slot for name, with a reference the caller drops;
 * *ret_created tells which. */
int runtime_get(Environments *E, const char *name, EnvRuntime **ret, bool *ret_created)
{
	pthread_mutex_lock(&E->lock);
	for (size_t i = 0; i < E->n_runtimes; i++)
		if (!strcmp(E->runtimes[i]->name, name)) {
			*ret = runtime_ref(E->runtimes[i]);
			if (ret_created)
				*ret_created = false;
			pthread_mutex_unlock(&E->lock);
			return 0;
		}
	EnvRuntime *rt = calloc(1, sizeof(*rt));
	EnvRuntime **v = rt ? realloc(E->runtimes, (E->n_runtimes + 1) * sizeof(*v)) : NULL;
	if (v)
		E->runtimes = v;
	int cfd = v ? eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK) : -1;
	if (!v || cfd < 0 || !(rt->name = strdup(name))) {
		pthread_mutex_unlock(&E->lock);
		if (cfd >= 0)
			close(cfd);
		if (rt)
			free(rt->name);
		free(rt);
		return -ENOMEM;
	}
	pthread_mutex_init(&rt->op_lock, NULL);
	pthread_mutex_init(&rt->lock, NULL);
	pthread_cond_init(&rt->run_done, NULL);
	rt->cancel_fd = cfd;
	rt->netns_fd = -EBADF;
	atomic_init(&rt->refs, 2); /* the list's and the caller's */
	E->runtimes[E->n_runtimes++] = rt;
	*ret = rt;
	if (ret_created)
		*ret_created = true;
	pthread_mutex_unlock(&E->lock);
	return 0;
}

/* Take rt out of the list and drop the list's reference (the caller still holds its own). */
void runtime_remove(Environments *E, EnvRuntime *rt)
{
	bool found = false;
	pthread_mutex_lock(&E->lock);
	for (size_t i = 0; i < E->n_runtimes; i++)
		if (E->runtimes[i] == rt) {
			memmove(&E->runtimes[i], &E->runtimes[i + 1],
				(E->n_runtimes - i - 1) * sizeof(*E->runtimes));
			E->n_runtimes--;
			found = true;
			break;
		}
	rt->removed = true;
	pthread_mutex_unlock(&E->lock);
	if (found)
		runtime_unref(rt);
}

bool runtime_removed(Environments *E, EnvRuntime *rt)
{
	pthread_mutex_lock(&E->lock);
	bool removed = rt->removed;
	pthread_mutex_unlock(&E->lock);
	return removed;
}

/* ---- cancelling ---- */

/* Abort every command and wait of rt now and until the next cancel_reset(). */
void cancel_fire(EnvRuntime *rt)
{
	uint64_t one = 1;
	pthread_mutex_lock(&rt->lock);
	(void)!write(rt->cancel_fd, &one, sizeof(one));
	pthread_mutex_unlock(&rt->lock);
}

bool cancel_fired(int fd)
{
	struct pollfd pfd = { .fd = fd, .events = POLLIN };
	return fd >= 0 && poll(&pfd, 1, 0) > 0 && (pfd.revents & POLLIN);
}

bool cancelled(EnvRuntime *rt)
{
	return cancel_fired(rt->cancel_fd);
}

static void *cancel_relay_run(void *userdata)
{
	CancelRelay *cr = userdata;
	struct pollfd pfd[2] = { { .fd = cr->call_fd, .events = POLLIN },
				 { .fd = cr->stop_fd, .events = POLLIN } };
	for (;;) {
		int k = poll(pfd, 2, -1);
		if (k < 0 && errno == EINTR)
			continue;
		if (k > 0 && pfd[0].revents && !pfd[1].revents)
			cancel_fire(cr->rt);
		return NULL;
	}
}

int cancel_relay_start(EnvRuntime *rt, int call_fd, CancelRelay *ret)
{
	*ret = (CancelRelay){ .call_fd = call_fd, .stop_fd = -EBADF, .rt = rt };
	if (call_fd <= 0)
		return 0;
	ret->stop_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	if (ret->stop_fd < 0)
		return -errno;
	int r = pthread_create(&ret->thread, NULL, cancel_relay_run, ret);
	if (r != 0) {
		ret->stop_fd = safe_close(ret->stop_fd);
		return -r;
	}
	ret->started = true;
	return 0;
}

void cancel_relay_stop(CancelRelay *cr)
{
	if (!cr->started)
		return;
	uint64_t one = 1;
	(void)!write(cr->stop_fd, &one, sizeof(one));
	pthread_join(cr->thread, NULL);
	cr->stop_fd = safe_close(cr->stop_fd);
	cr->started = false;
}

/* A fired cancel fd is replaced (under op_lock) when an operation brings processes up again:
 * commands that took the old one stay cancelled. */
int cancel_reset(EnvRuntime *rt)
{
	if (!cancelled(rt))
		return 0;
	int fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	if (fd < 0)
		return -errno;
	pthread_mutex_lock(&rt->lock);
	safe_close(rt->cancel_fd);
	rt->cancel_fd = fd;
	pthread_mutex_unlock(&rt->lock);
	return 0;
}

/* Wait (bounded) until no agent command of rt runs; true when none does. */
bool runs_wait_gone(EnvRuntime *rt, int timeout_ms)
{
	struct timespec deadline = realtime_after_ms((unsigned)timeout_ms);
	pthread_mutex_lock(&rt->lock);
	while (rt->n_running > 0)
		if (pthread_cond_timedwait(&rt->run_done, &rt->lock, &deadline) == ETIMEDOUT)
			break;
	bool gone = rt->n_running == 0;
	pthread_mutex_unlock(&rt->lock);
	return gone;
}

/* ---- secrets ---- */

int secrets_to_json(EnvRuntime *rt, char **ret)
{
	json_t *o = json_object();
	if (!o)
		return -ENOMEM;
	for (size_t i = 0; i < rt->n_services; i++)
		json_object_set_new(o, rt->config->services[i].name, json_string(rt->passwords[i]));
	*ret = json_dumps(o, JSON_COMPACT | JSON_SORT_KEYS);
	json_decref(o);
	return *ret ? 0 : -ENOMEM;
}

/* Load passwords from the record; services without one get a fresh password. */
int secrets_load(EnvRuntime *rt, const char *json)
{
	json_t *o = json ? json_loads(json, 0, NULL) : NULL;
	for (size_t i = 0; i < rt->n_services; i++) {
		const char *pw =
			o ? json_string_value(json_object_get(o, rt->config->services[i].name))
			  : NULL;
		if (pw && strlen(pw) == 32)
			memcpy(rt->passwords[i], pw, 33);
		else if (service_generate_password(rt->passwords[i]) < 0) {
			json_decref(o);
			return -EIO;
		}
	}
	json_decref(o);
	return 0;
}

/* ---- runtime setup from config ---- */

/* Its own uids, from its row; a row from before per-environment uids gets its pair now. */
static int runtime_load_uids(Environments *E, EnvRuntime *rt, BbxError *err)
{
	Store *s = core_store(E->core);
	EnvRecord rec;
	int r = env_record_get(s, rt->name, &rec, err);
	if (r < 0)
		return r;
	uint32_t uid = rec.uid, volume_uid = rec.volume_uid;
	env_record_done(&rec);
	if (uid == 0) {
		r = env_record_assign_uid(s, rt->name, core_uid_range(E->core), &uid, err);
		if (r < 0)
			return r;
	}
	/* Never root, never a pair cut off at the end of the id space. */
	if (uid == 0 || volume_uid == 0 || uid >= UINT32_MAX - 1 || volume_uid >= UINT32_MAX - 1)
		return bbx_error_set(err, -EINVAL, BBX_INTERNAL,
				     "environment '%s' has no usable uids (%u, %u)", rt->name, uid,
				     volume_uid);
	rt->uid = uid;
	rt->volume_uid = volume_uid;
	return 0;
}

static int runtime_setup_locked(Environments *E, EnvRuntime *rt, ProjectConfig *config,
				const char *commit, bool preview, BbxError *err)
{
	char buf[4096];

	config_free(rt->config);
	rt->config = config;
	free(rt->commit);
	rt->commit = strdup(commit);
	rt->preview = preview;
	free(rt->volume_path);
	pthread_mutex_lock(&E->pool_lock);
	int r = ensure_pool(E, err);
	rt->volume_path = r >= 0 ? pool_volume_path(E->pool, rt->name) : NULL;
	pthread_mutex_unlock(&E->pool_lock);
	if (r < 0)
		return r;
	env_path(E, buf, sizeof(buf), "code", rt->name);
	free(rt->code_dir);
	rt->code_dir = path_join(buf, commit, NULL);
	if (!rt->commit || !rt->volume_path || !rt->code_dir)
		return -ENOMEM;
	r = runtime_load_uids(E, rt, err);
	if (r < 0)
		return r;

	for (size_t i = 0; i < rt->n_services; i++)
		free(rt->service_data_host[i]);
	free(rt->service_data_host);
	free(rt->services);
	free(rt->passwords);
	free(rt->service_procs);
	free(rt->app_procs);
	rt->n_services = config->n_services;
	rt->services = calloc(config->n_services + 1, sizeof(*rt->services));
	rt->service_data_host = calloc(config->n_services + 1, sizeof(char *));
	rt->passwords = calloc(config->n_services + 1, sizeof(*rt->passwords));
	rt->service_procs = calloc(config->n_services + 1, sizeof(EnvProc *));
	rt->app_procs = calloc(config->n_applications + 1, sizeof(EnvProc *));
	if (!rt->services || !rt->service_data_host || !rt->passwords || !rt->service_procs ||
	    !rt->app_procs)
		return -ENOMEM;

	/* Ports: each type's default, shifted when two services of a type share the netns. */
	for (size_t i = 0; i < config->n_services; i++) {
		const ConfigService *cs = &config->services[i];
		const ServiceType *t = service_type_for(cs->kind);
		if (!t)
			return bbx_error_set(err, -EOPNOTSUPP, BBX_INVALID,
					     "service %s: type %s is not supported", cs->name,
					     cs->type);
		unsigned same = 0;
		for (size_t k = 0; k < i; k++)
			if (config->services[k].kind == cs->kind)
				same++;
		rt->service_data_host[i] = path_join(rt->volume_path, "services", cs->name);
		if (!rt->service_data_host[i])
			return -ENOMEM;
		rt->services[i] = (ServiceRuntime){
			.config = cs,
			.data_host = rt->service_data_host[i],
			.owner_uid = rt->volume_uid,
			.owner_gid = rt->volume_uid,
			.port = (uint16_t)(t->default_port + same),
			.password = rt->passwords[i],
		};
		snprintf(rt->services[i].data_path, sizeof(rt->services[i].data_path), "/srv/%s",
			 cs->name);
	}
	return 0;
}

/* Take config (owned from here on, on failure too) as what rt runs: paths, uids, services,
 * empty process slots. The caller holds op_lock and has stopped rt's processes. */
int runtime_setup(Environments *E, EnvRuntime *rt, ProjectConfig *config, const char *commit,
		  bool preview, BbxError *err)
{
	pthread_mutex_lock(&rt->lock);
	int r = runtime_setup_locked(E, rt, config, commit, preview, err);
	pthread_mutex_unlock(&rt->lock);
	return r;
}
