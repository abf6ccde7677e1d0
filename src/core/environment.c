/* SPDX-License-Identifier: MIT */
#include "environment.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <glob.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <sodium.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "audit.h"
#include "budget.h"
#include "ceilings.h"
#include "config.h"
#include "environments.h"
#include "file-util.h"
#include "gitrepo.h"
#include "journal.h"
#include "netns-connect.h"
#include "parse.h"
#include "policy.h"
#include "sandbox-cgroup.h"
#include "service.h"
#include "storage.h"
#include "strbuf.h"
#include "strv.h"
#include "uids.h"

#define SERVICE_READY_TIMEOUT_MS (180 * 1000)
#define APP_HEALTHY_TIMEOUT_MS (90 * 1000)
#define STOP_GRACE_MS 15000
#define CONFIG_MAX_SIZE (1u << 20)
#define REAPER_INTERVAL_SEC 5
#define EXEC_LOCK_WAIT_MS 5000		/* how long exec waits for a lifecycle step to end */
#define CANCEL_WAIT_MS 5000		/* how long destroy/stop wait for cancelled commands */

/*
 * What runs of one environment, in memory.
 *
 * Lifetime: reference-counted. The runtime list holds one reference; runtime_find() and
 * runtime_get() return another, dropped with runtime_unref(). A removed runtime (destroyed,
 * or a create that failed) leaves the list but lives until its last user lets go.
 *
 * Locking, outermost first:
 *  - op_lock: one lifecycle operation (deploy, create, destroy, start, stop) at a time. It is
 *    never held while an agent's command runs: exec takes it only to build its sandbox.
 *  - lock: held briefly; guards what readers without op_lock look at (config, netns_fd,
 *    the process arrays). Writers hold op_lock too, so op_lock holders read freely.
 *  - E->pool_lock, then E->lock.
 * Cancelling: cancel_fd (an eventfd) is fired by destroy, stop and shutdown; every one-shot
 * and wait of the environment watches it. Agent commands in flight are counted in n_running
 * (under lock, signalled on run_done) so destroy and stop wait for them to be gone.
 */
typedef struct EnvRuntime {
	char *name;
	atomic_int refs;
	bool removed;			/* under E->lock: no longer in the list */
	pthread_mutex_t op_lock;	/* one lifecycle operation at a time */
	pthread_mutex_t lock;		/* short: config, netns_fd, process arrays, n_running */
	pthread_cond_t run_done;
	unsigned n_running;		/* agent commands running now */
	int cancel_fd;			/* eventfd: fired to abort every command and wait */
	ProjectConfig *config;		/* the branch's, narrowed by production's policy */
	ProjectConfig *policy;		/* a preview's: production's config (sanitize, validate) */
	char *policy_code_dir;		/* a preview's: production's checkout (sanitize commands) */
	atomic_bool ready;		/* exec, logs and the preview proxy answer only when set */
	char *commit;
	char *code_dir;			/* STATE/code/NAME/COMMIT */
	char *volume_path;
	int netns_fd;
	size_t n_services;
	ServiceRuntime *services;	/* parallel to config->services */
	char **service_data_host;
	char (*passwords)[33];
	EnvProc **service_procs;
	EnvProc **app_procs;		/* parallel to config->applications */
	bool preview;
	uid_t uid;			/* its services' uid; its applications' is uid + 1 (gids equal) */
	uid_t volume_uid;		/* the pair its volume's files are stored as (see pb_common) */
	uint64_t disk_pending;		/* admitted, its volume not bounded yet (see admit_and_insert) */
} EnvRuntime;

typedef struct Environments {
	Core *core;
	Pool *pool;
	pthread_mutex_t pool_lock;
	GitRepo *repo;
	pthread_mutex_t lock;		/* the runtime list */
	EnvRuntime **runtimes;
	size_t n_runtimes;
	pthread_t reaper;
	bool reaper_started;
	int reaper_wake[2];
	pthread_mutex_t jobs_lock;
	struct EnvJob *jobs;		/* background threads (restarts, expiries), joined at the end */
	atomic_bool shutting_down;
	char *state_dir;
	char *production;		/* production environment (= branch) name */
	char cgroup_prefix[16];		/* "d-" + 8 hex of the state dir: this daemon's cgroups */
	BudgetMeter *meter;
	pthread_mutex_t admit_lock;	/* counting previews and inserting one */
	uint64_t disk_pending;		/* what admitted previews may write before their quota is set */
} Environments;

static Environments *envs_of(Core *c)
{
	return core_environments(c);
}

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

/* ---- paths ---- */

static char *path_join(const char *a, const char *b, const char *c2)
{
	char *p = NULL;
	if (asprintf(&p, "%s/%s%s%s", a, b, c2 ? "/" : "", c2 ? c2 : "") < 0)
		return NULL;
	return p;
}

static void env_path(Environments *E, char *buf, size_t size, const char *kind, const char *name)
{
	snprintf(buf, size, "%s/%s/%s", E->state_dir, kind, name);
}

/* ---- runtime objects ---- */

/* Take the processes out (under lock, so readers never see one being freed), then end them. */
static void runtime_stop_processes(EnvRuntime *rt)
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

static void runtime_unref(EnvRuntime *rt)
{
	if (rt && atomic_fetch_sub(&rt->refs, 1) == 1)
		runtime_free(rt);
}

static void runtime_unrefp(EnvRuntime **rt)
{
	runtime_unref(*rt);
}
#define _cleanup_runtime_ _cleanup_(runtime_unrefp)

/* The runtime of name with a reference the caller drops, or NULL. */
static EnvRuntime *runtime_find(Environments *E, const char *name)
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
static int runtime_get(Environments *E, const char *name, EnvRuntime **ret, bool *ret_created)
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
static void runtime_remove(Environments *E, EnvRuntime *rt)
{
	bool found = false;
	pthread_mutex_lock(&E->lock);
	for (size_t i = 0; i < E->n_runtimes; i++)
		if (E->runtimes[i] == rt) {
			memmove(&E->runtimes[i], &E->runtimes[i + 1], (E->n_runtimes - i - 1) * sizeof(*E->runtimes));
			E->n_runtimes--;
			found = true;
			break;
		}
	rt->removed = true;
	pthread_mutex_unlock(&E->lock);
	if (found)
		runtime_unref(rt);
}

static bool runtime_removed(Environments *E, EnvRuntime *rt)
{
	pthread_mutex_lock(&E->lock);
	bool removed = rt->removed;
	pthread_mutex_unlock(&E->lock);
	return removed;
}

/* ---- cancelling ---- */

/* Abort every command and wait of rt now and until the next cancel_reset(). */
static void cancel_fire(EnvRuntime *rt)
{
	uint64_t one = 1;
	pthread_mutex_lock(&rt->lock);
	(void)!write(rt->cancel_fd, &one, sizeof(one));
	pthread_mutex_unlock(&rt->lock);
}

static bool cancel_fired(int fd)
{
	struct pollfd pfd = { .fd = fd, .events = POLLIN };
	return fd >= 0 && poll(&pfd, 1, 0) > 0 && (pfd.revents & POLLIN);
}

static bool cancelled(EnvRuntime *rt)
{
	return cancel_fired(rt->cancel_fd);
}

/* A fired cancel fd is replaced (under op_lock) when an operation brings processes up again:
 * commands that took the old one stay cancelled. */
static int cancel_reset(EnvRuntime *rt)
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
static bool runs_wait_gone(EnvRuntime *rt, int timeout_ms)
{
	struct timespec deadline;
	clock_gettime(CLOCK_REALTIME, &deadline);
	deadline.tv_sec += timeout_ms / 1000;
	deadline.tv_nsec += (long)(timeout_ms % 1000) * 1000000L;
	if (deadline.tv_nsec >= 1000000000L) {
		deadline.tv_sec++;
		deadline.tv_nsec -= 1000000000L;
	}
	pthread_mutex_lock(&rt->lock);
	while (rt->n_running > 0)
		if (pthread_cond_timedwait(&rt->run_done, &rt->lock, &deadline) == ETIMEDOUT)
			break;
	bool gone = rt->n_running == 0;
	pthread_mutex_unlock(&rt->lock);
	return gone;
}

/* ---- configuration at a commit ---- */

static int load_config_at(Environments *E, const char *commit, ProjectConfig **ret, BbxError *err)
{
	static const char *const files[] = { ".branchbox/config.yaml", ".upsun/config.yaml" };
	for (size_t i = 0; i < ELEMENTSOF(files); i++) {
		_cleanup_free_ char *data = NULL;
		size_t size = 0;
		int r = gitrepo_read_file(E->repo, commit, files[i], CONFIG_MAX_SIZE, &data, &size, NULL);
		if (r == -ENOENT)
			continue;
		if (r < 0)
			return bbx_error_set(err, r, BBX_INVALID, "reading %s at %.12s: %s", files[i], commit, strerror(-r));
		ConfigDiagnostics diag;
		config_diagnostics_init(&diag);
		r = config_parse_buffer(data, size, files[i], ret, &diag);
		if (r < 0) {
			_cleanup_strbuf_ StrBuf sb = STRBUF_INIT;
			(void)strbuf_appendf(&sb, "the project config at commit %.12s is invalid:", commit);
			for (size_t k = 0; k < diag.n_items && k < 10; k++) {
				_cleanup_free_ char *line = config_diagnostic_format(&diag.items[k]);
				(void)strbuf_appendf(&sb, "\n  %s", line ? line : "?");
			}
			config_diagnostics_done(&diag);
			return bbx_error_set(err, -EINVAL, BBX_INVALID, "%s", strbuf_str(&sb));
		}
		config_diagnostics_done(&diag);
		return 0;
	}
	return bbx_error_set(err, -ENOENT, BBX_INVALID,
			     "commit %.12s has no .branchbox/config.yaml or .upsun/config.yaml", commit);
}

static int checkout_code(Environments *E, const char *name, const char *commit, uid_t owner,
			 char **ret_dir, BbxError *err);

/*
 * A preview's config: the branch's, checked against and narrowed by the config of the
 * commit production runs (DESIGN.md 2a). Production's config comes back too, for what it
 * alone governs (sanitize, validate), with the checkout of that commit.
 */
static int load_preview_config(Environments *E, const char *commit, ProjectConfig **ret_config,
			       ProjectConfig **ret_policy, char **ret_policy_code, BbxError *err)
{
	_cleanup_(config_freep) ProjectConfig *config = NULL, *policy = NULL;
	_cleanup_free_ char *code = NULL;
	EnvRecord prod;
	int r = env_record_get(core_store(E->core), E->production, &prod, NULL);
	if (r < 0)
		return bbx_error_set(err, -ENOENT, BBX_CONFLICT,
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
		(void)strbuf_appendf(&sb, "the config at commit %.12s widens what production's config allows:",
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

static int ensure_pool(Environments *E, BbxError *err);

/* ---- secrets ---- */

static int secrets_to_json(EnvRuntime *rt, char **ret)
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
static int secrets_load(EnvRuntime *rt, const char *json)
{
	json_t *o = json ? json_loads(json, 0, NULL) : NULL;
	for (size_t i = 0; i < rt->n_services; i++) {
		const char *pw = o ? json_string_value(json_object_get(o, rt->config->services[i].name)) : NULL;
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
		return bbx_error_set(err, -EINVAL, BBX_INTERNAL, "environment '%s' has no usable uids (%u, %u)",
				     rt->name, uid, volume_uid);
	rt->uid = uid;
	rt->volume_uid = volume_uid;
	return 0;
}

static int runtime_setup_locked(Environments *E, EnvRuntime *rt, ProjectConfig *config, const char *commit,
				bool preview, BbxError *err)
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
	if (!rt->services || !rt->service_data_host || !rt->passwords || !rt->service_procs || !rt->app_procs)
		return -ENOMEM;

	/* Ports: each type's default, shifted when two services of a type share the netns. */
	for (size_t i = 0; i < config->n_services; i++) {
		const ConfigService *cs = &config->services[i];
		const ServiceType *t = service_type_for(cs->kind);
		if (!t)
			return bbx_error_set(err, -EOPNOTSUPP, BBX_INVALID, "service %s: type %s is not supported",
					     cs->name, cs->type);
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
		snprintf(rt->services[i].data_path, sizeof(rt->services[i].data_path), "/srv/%s", cs->name);
	}
	return 0;
}

/* Take config (owned from here on) as what rt runs: paths, uids, services, empty process slots.
 * The caller holds op_lock and has stopped rt's processes. */
static int runtime_setup(Environments *E, EnvRuntime *rt, ProjectConfig *config, const char *commit,
			 bool preview, BbxError *err)
{
	pthread_mutex_lock(&rt->lock);
	int r = runtime_setup_locked(E, rt, config, commit, preview, err);
	pthread_mutex_unlock(&rt->lock);
	return r;
}

static const ServiceRuntime *runtime_service(EnvRuntime *rt, const char *name, size_t *ret_index)
{
	for (size_t i = 0; i < rt->n_services; i++)
		if (!strcmp(rt->config->services[i].name, name)) {
			if (ret_index)
				*ret_index = i;
			return &rt->services[i];
		}
	return NULL;
}

/* "127.0.0.1 rel1 rel2 service1 ..." so relationship names resolve on the env's loopback. */
static char *hosts_extra(EnvRuntime *rt)
{
	StrBuf sb = STRBUF_INIT;
	(void)strbuf_puts(&sb, "127.0.0.1");
	for (size_t i = 0; i < rt->n_services; i++)
		(void)strbuf_appendf(&sb, " %s", rt->config->services[i].name);
	for (size_t a = 0; a < rt->config->n_applications; a++)
		for (size_t k = 0; k < rt->config->applications[a].n_relationships; k++)
			(void)strbuf_appendf(&sb, " %s", rt->config->applications[a].relationships[k].name);
	(void)strbuf_putc(&sb, '\n');
	return strbuf_detach(&sb);
}

static void upper_name(const char *s, char *buf, size_t size)
{
	size_t i = 0;
	for (; s[i] && i + 1 < size; i++)
		buf[i] = s[i] == '-' || s[i] == '.' ? '_' : (char)((s[i] >= 'a' && s[i] <= 'z') ? s[i] - 32 : s[i]);
	buf[i] = '\0';
}

/* The variables an application (and its hooks, and `env exec`) gets. */
static int app_environment(EnvRuntime *rt, const ConfigApplication *app, char ***ret)
{
	_cleanup_strv_free_ char **v = NULL;
	char upper[80];
	bool have_db = false, have_redis = false;
	int r = 0;

	json_t *rels = json_object();
	if (!rels)
		return -ENOMEM;
	r |= strv_push(&v, "PATH=/usr/local/bin:/usr/bin:/bin");
	r |= strv_push(&v, "HOME=/tmp");
	r |= strv_push(&v, "LANG=C.UTF-8");
	r |= strv_pushf(&v, "PORT=%u", app->web_port);
	r |= strv_pushf(&v, "PLATFORM_APPLICATION_NAME=%s", app->name);
	r |= strv_pushf(&v, "PLATFORM_ENVIRONMENT=%s", rt->name);
	r |= strv_pushf(&v, "PLATFORM_ENVIRONMENT_TYPE=%s", rt->preview ? "development" : "production");
	r |= strv_pushf(&v, "BRANCHBOX_ENVIRONMENT=%s", rt->name);
	r |= strv_pushf(&v, "BRANCHBOX_COMMIT=%s", rt->commit);
	for (size_t k = 0; k < app->n_relationships; k++) {
		const ConfigRelationship *rel = &app->relationships[k];
		const ServiceRuntime *s = runtime_service(rt, rel->service, NULL);
		if (!s)
			continue;
		const ServiceType *t = service_type_for(s->config->kind);
		json_t *d = t->relationship(s, rel->name);
		if (!d) {
			json_decref(rels);
			return -ENOMEM;
		}
		upper_name(rel->name, upper, sizeof(upper));
		const char *keys[][2] = { { "URL", "url" }, { "HOST", "host" }, { "USERNAME", "username" },
					  { "PASSWORD", "password" }, { "PATH", "path" }, { "SCHEME", "scheme" } };
		for (size_t q = 0; q < ELEMENTSOF(keys); q++) {
			const char *val = json_string_value(json_object_get(d, keys[q][1]));
			if (val)
				r |= strv_pushf(&v, "%s_%s=%s", upper, keys[q][0], val);
		}
		r |= strv_pushf(&v, "%s_PORT=%u", upper, s->port);
		const char *url = json_string_value(json_object_get(d, "url"));
		if (s->config->kind == CONFIG_SERVICE_POSTGRESQL && !have_db && url) {
			r |= strv_pushf(&v, "DATABASE_URL=%s", url);
			have_db = true;
		}
		if (s->config->kind == CONFIG_SERVICE_REDIS && !have_redis && url) {
			r |= strv_pushf(&v, "REDIS_URL=%s", url);
			have_redis = true;
		}
		json_t *arr = json_array();
		json_array_append_new(arr, d);
		json_object_set_new(rels, rel->name, arr);
	}
	_cleanup_free_ char *rels_s = json_dumps(rels, JSON_COMPACT | JSON_SORT_KEYS);
	json_decref(rels);
	if (!rels_s)
		return -ENOMEM;
	size_t blen = sodium_base64_ENCODED_LEN(strlen(rels_s), sodium_base64_VARIANT_ORIGINAL);
	_cleanup_free_ char *b64 = malloc(blen);
	if (!b64)
		return -ENOMEM;
	sodium_bin2base64(b64, blen, (const unsigned char *)rels_s, strlen(rels_s), sodium_base64_VARIANT_ORIGINAL);
	r |= strv_pushf(&v, "PLATFORM_RELATIONSHIPS=%s", b64);
	for (size_t k = 0; k < app->n_env; k++)
		r |= strv_pushf(&v, "%s=%s", app->env[k].name, app->env[k].value);
	if (r)
		return -ENOMEM;
	*ret = TAKE_PTR(v);
	return 0;
}

/* The build hook's variables: the app's own, none that lead to a service. */
static int build_environment(EnvRuntime *rt, const ConfigApplication *app, char ***ret)
{
	_cleanup_strv_free_ char **v = NULL;
	int r = 0;
	r |= strv_push(&v, "PATH=/usr/local/bin:/usr/bin:/bin");
	r |= strv_push(&v, "HOME=/tmp");
	r |= strv_push(&v, "LANG=C.UTF-8");
	r |= strv_pushf(&v, "PLATFORM_APPLICATION_NAME=%s", app->name);
	r |= strv_pushf(&v, "PLATFORM_ENVIRONMENT=%s", rt->name);
	r |= strv_pushf(&v, "PLATFORM_ENVIRONMENT_TYPE=%s", rt->preview ? "development" : "production");
	r |= strv_pushf(&v, "BRANCHBOX_ENVIRONMENT=%s", rt->name);
	r |= strv_pushf(&v, "BRANCHBOX_COMMIT=%s", rt->commit);
	for (size_t k = 0; k < app->n_env; k++)
		r |= strv_pushf(&v, "%s=%s", app->env[k].name, app->env[k].value);
	if (r)
		return -ENOMEM;
	*ret = TAKE_PTR(v);
	return 0;
}

/* ---- processes ---- */

typedef struct ProcBuild {
	EnvProcSpec spec;
	SandboxBind rw[16];
	SandboxBind ro[4];
	char *strings[40];
	size_t n_strings;
	int fds[20];			/* bind sources, resolved beneath their roots */
	size_t n_fds;
	char **envp;
	char *hosts;
	char cgroup[128];
	char log[4096];
} ProcBuild;

static void proc_build_done(ProcBuild *b)
{
	for (size_t i = 0; i < b->n_fds; i++)
		safe_close(b->fds[i]);
	for (size_t i = 0; i < b->n_strings; i++)
		free(b->strings[i]);
	strv_free(b->envp);
	free(b->hosts);
	memset(b, 0, sizeof(*b));
}

static const char *pb_keep(ProcBuild *b, char *s)
{
	if (!s || b->n_strings >= ELEMENTSOF(b->strings)) {
		free(s);
		return NULL;
	}
	b->strings[b->n_strings++] = s;
	return s;
}

static bool volume_idmapped(const EnvRuntime *rt)
{
	return rt->volume_uid != rt->uid;
}

static int pb_keep_fd(ProcBuild *b, int fd)
{
	if (fd < 0)
		return fd;
	if (b->n_fds >= ELEMENTSOF(b->fds)) {
		safe_close(fd);
		return -E2BIG;
	}
	b->fds[b->n_fds++] = fd;
	return fd;
}

/* A directory the daemon owns (volume, scratch dir), opened without following anything. */
static int open_trusted_dir(const char *path)
{
	int fd = open(path, O_PATH | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	return fd < 0 ? -errno : fd;
}

static void pb_common(Environments *E, EnvRuntime *rt, ProcBuild *b, const char *what, uid_t uid)
{
	unsigned char rnd[4];
	char hex[9];
	memset(b, 0, sizeof(*b));
	b->spec.name = what;
	/* One cgroup per environment, one per process below it; the random part keeps
	 * names unique across daemon restarts that left a cgroup behind. */
	randombytes_buf(rnd, sizeof(rnd));
	sodium_bin2hex(hex, sizeof(hex), rnd, sizeof(rnd));
	snprintf(b->cgroup, sizeof(b->cgroup), "%s/env-%s/%s-%s", E->cgroup_prefix, rt->name, what, hex);
	b->spec.cgroup_name = b->cgroup;
	b->spec.uid = uid;
	b->spec.gid = uid;
	if (volume_idmapped(rt)) {
		/* A preview's volume is a snapshot stored as its parent's pair: the kernel shows
		 * it (and stores what we write) as this environment's own, no file is chowned. */
		b->spec.idmap[0] = (SandboxIdmap){ .stored_id = rt->volume_uid, .id = rt->uid };
		b->spec.idmap[1] = (SandboxIdmap){ .stored_id = rt->volume_uid + 1, .id = rt->uid + 1 };
		b->spec.n_idmap = 2;
	}
	b->spec.hostname = rt->name;
	b->spec.netns_fd = rt->netns_fd;
	b->spec.rw = b->rw;
	b->spec.ro = b->ro;
	b->hosts = hosts_extra(rt);
	b->spec.hosts_extra = b->hosts;
	snprintf(b->log, sizeof(b->log), "%s/logs/%s/%s.log", E->state_dir, rt->name, what);
	b->spec.log_path = b->log;
}

/* A service process or one-shot next to a service: its data dir is /srv/NAME. */
static int pb_service(Environments *E, EnvRuntime *rt, size_t idx, ProcBuild *b, const char *what,
		      BbxError *err)
{
	const ServiceRuntime *s = &rt->services[idx];
	pb_common(E, rt, b, what, rt->uid);
	/* The data dir is written by the service: bound by an fd resolved beneath the volume. */
	_cleanup_close_ int vol = open_trusted_dir(rt->volume_path);
	char rel[300];
	snprintf(rel, sizeof(rel), "services/%s", s->config->name);
	int fd = vol < 0 ? vol : pb_keep_fd(b, open_dir_beneath(vol, rel, 0));
	if (fd < 0)
		return bbx_error_set(err, fd, BBX_INTERNAL, "service %s: data directory %s: %s",
				     s->config->name, s->data_host, strerror(-fd));
	b->rw[0] = (SandboxBind){ .source = s->data_host, .target = s->data_path, .source_fd = fd,
				  .idmapped = volume_idmapped(rt) };
	b->spec.n_rw = 1;
	b->spec.workdir = s->data_path;
	b->envp = strv_new("PATH=/usr/lib/postgresql/bin:/usr/local/bin:/usr/bin:/bin", "HOME=/tmp",
			   "LANG=C.UTF-8", NULL);
	b->spec.envp = b->envp;
	CeilingLimits l;
	ceilings_service(s->config, &l);
	b->spec.memory_max = l.memory_bytes;
	b->spec.cpu_millis = l.cpu_millis;
	b->spec.pids_max = l.pids;
	return 0;
}

static const ConfigApplication *find_app(EnvRuntime *rt, const char *name, size_t *ret_idx)
{
	for (size_t i = 0; i < rt->config->n_applications; i++)
		if (!name || !strcmp(rt->config->applications[i].name, name)) {
			if (ret_idx)
				*ret_idx = i;
			return &rt->config->applications[i];
		}
	return NULL;
}

/* How an application-side process is built. */
typedef enum AppProcFlags {
	APP_PROC_CODE_WRITABLE = 1 << 0, /* the build hook: /app writable */
	/*
	 * The build hook (as on Upsun): no services, no relationship variables, no data mounts,
	 * and a network namespace of its own, so branch code never meets data before deploy.
	 */
	APP_PROC_BUILD = 1 << 1,
} AppProcFlags;

/*
 * The directory an application's mount binds, resolved beneath the daemon's own directory
 * for its kind (the volume, or the environment's scratch dir) and never through a symlink,
 * created when missing and owned by the application's uid. Returns an O_PATH fd.
 */
static int open_mount_source(Environments *E, EnvRuntime *rt, const ConfigApplication *app,
			     const ConfigMount *mt, BbxError *err)
{
	char base[4096], rel[1024];
	if (mt->source == CONFIG_MOUNT_TMP) {
		env_path(E, base, sizeof(base), "tmp", rt->name);
		snprintf(rel, sizeof(rel), "%s/%s", app->name, mt->source_path);
	} else {
		snprintf(base, sizeof(base), "%s", rt->volume_path);
		snprintf(rel, sizeof(rel), "mounts/%s/%s", app->name, mt->source_path);
	}
	_cleanup_close_ int root = open_trusted_dir(base);
	int fd = root < 0 ? root : open_dir_beneath(root, rel, 0755);
	/* tmp is this environment's own; the volume keeps the owner it is stored as. */
	uid_t owner = mt->source == CONFIG_MOUNT_TMP ? rt->uid + 1 : rt->volume_uid + 1;
	if (fd >= 0 && fchownat(fd, "", owner, owner, AT_EMPTY_PATH) < 0) {
		int r = -errno;
		safe_close(fd);
		fd = r;
	}
	if (fd < 0)
		return bbx_error_set(err, fd, BBX_INVALID,
				     "applications.%s.mounts.%s: source %s/%s: %s%s", app->name, mt->path,
				     base, rel, strerror(-fd),
				     fd == -ELOOP || fd == -ENOTDIR || fd == -EXDEV
					     ? " (a symlink or non-directory in the way is never followed)"
					     : "");
	return fd;
}

/*
 * An application process, hook or exec: code_dir (a checkout) at /app, read-only except for
 * the build hook, its mounts writable, the app's variables. The code tree came from the
 * branch and went through its build hook: the source root and every mount point are
 * resolved beneath it without following symlinks, and bound by fd.
 */
static int pb_app(Environments *E, EnvRuntime *rt, const ConfigApplication *app, const char *code_dir,
		  ProcBuild *b, const char *what, unsigned flags, BbxError *err)
{
	pb_common(E, rt, b, what, rt->uid + 1);
	_cleanup_close_ int code = open_trusted_dir(code_dir);
	int src = code < 0 ? code : pb_keep_fd(b, open_dir_beneath(code, app->source_root, 0));
	if (src < 0)
		return bbx_error_set(err, src, BBX_INVALID,
				     "applications.%s.source.root: '%s' %s", app->name, app->source_root,
				     src == -ELOOP || src == -EXDEV
					     ? "is a symbolic link or resolves through one; it is never followed"
				     : src == -ENOTDIR ? "is not a directory"
				     : src == -ENOENT  ? "does not exist in the branch"
						       : strerror(-src));
	const char *src_name = pb_keep(b, path_join(code_dir, app->source_root, NULL));
	if (!src_name)
		return -ENOMEM;
	size_t nrw = 0;
	if (flags & APP_PROC_CODE_WRITABLE)
		b->rw[nrw++] = (SandboxBind){ .source = src_name, .target = "/app", .source_fd = src };
	else {
		b->ro[0] = (SandboxBind){ .source = src_name, .target = "/app", .source_fd = src };
		b->spec.n_ro = 1;
	}
	for (size_t m = 0; !(flags & APP_PROC_BUILD) && m < app->n_mounts; m++) {
		const ConfigMount *mt = &app->mounts[m];
		if (nrw >= ELEMENTSOF(b->rw))
			return bbx_error_set(err, -E2BIG, BBX_INVALID, "applications.%s.mounts: at most %zu",
					     app->name, ELEMENTSOF(b->rw) - 1);
		const char *target = pb_keep(b, path_join("/app", mt->path + 1, NULL));
		if (!target)
			return -ENOMEM;
		/* The mount point must exist in the (read-only) code tree. */
		int r = mkdir_beneath(src, mt->path + 1, 0755);
		if (r < 0)
			return bbx_error_set(err, r, BBX_INVALID,
					     "applications.%s.mounts.%s: cannot make the mount point in the code tree: %s%s",
					     app->name, mt->path, strerror(-r),
					     r == -ELOOP ? " (a symlink in the way is never followed)" : "");
		int fd = pb_keep_fd(b, open_mount_source(E, rt, app, mt, err));
		if (fd < 0)
			return fd;
		b->rw[nrw++] = (SandboxBind){ .source = target, .target = target, .source_fd = fd,
					      .idmapped = mt->source != CONFIG_MOUNT_TMP && volume_idmapped(rt) };
	}
	b->spec.n_rw = nrw;
	b->spec.workdir = "/app";
	int r = (flags & APP_PROC_BUILD) ? build_environment(rt, app, &b->envp) : app_environment(rt, app, &b->envp);
	if (r < 0)
		return r;
	b->spec.envp = b->envp;
	if (flags & APP_PROC_BUILD)
		b->spec.netns_fd = -1;
	CeilingLimits l;
	ceilings_application(rt->config, app, rt->preview, &l);
	b->spec.memory_max = l.memory_bytes;
	b->spec.cpu_millis = l.cpu_millis;
	b->spec.pids_max = l.pids;
	return 0;
}

/* A one-shot of the current operation on rt (whose op_lock the caller holds): killed at its
 * deadline, or when rt is destroyed, stopped or the daemon shuts down. */
static int run_oneshot(EnvRuntime *rt, ProcBuild *b, char **argv, const char *stdin_data, uint64_t timeout_sec,
		       OneshotResult *res, BbxError *err)
{
	EnvOneshotOptions o;
	envproc_oneshot_options_init(&o);
	o.stdin_data = stdin_data;
	o.stdin_len = stdin_data ? strlen(stdin_data) : 0;
	o.timeout_ms = timeout_sec * 1000;
	o.cancel_fd = rt->cancel_fd;
	b->spec.argv = argv;
	return envproc_run_oneshot_with(&b->spec, &o, res, err);
}

/* Append a one-shot's output to the environment's deploy log, so failures can be read. */
static void append_step_log(Environments *E, EnvRuntime *rt, const char *step, const OneshotResult *res)
{
	char path[4096];
	snprintf(path, sizeof(path), "%s/logs/%s/deploy.log", E->state_dir, rt->name);
	_cleanup_close_ int fd = open(path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC | O_NOFOLLOW, 0600);
	if (fd < 0)
		return;
	char head[256];
	int n = snprintf(head, sizeof(head), "[branchbox] %s: exit %d, %llu ms\n", step, res->exit_status,
			 (unsigned long long)res->duration_ms);
	(void)write_all(fd, head, (size_t)n);
	if (res->output_len)
		(void)write_all(fd, res->output, res->output_len);
}

static int fail_with_output(BbxError *err, const char *what, const OneshotResult *res)
{
	const char *out = res->output ? res->output : "";
	size_t n = strlen(out);
	const char *tail = n > 600 ? out + n - 600 : out;
	if (res->timed_out)
		return bbx_error_set(err, -ETIMEDOUT, BBX_FAILED, "%s timed out after %llu s; all its processes were killed%s%s",
				     what, (unsigned long long)(res->duration_ms / 1000), *tail ? ":\n" : "", tail);
	return bbx_error_set(err, -EIO, BBX_FAILED, "%s failed with exit status %d%s%s", what,
			     res->exit_status, *tail ? ":\n" : "", tail);
}

static int service_init(Environments *E, EnvRuntime *rt, size_t i, BbxError *err)
{
	const ServiceRuntime *s = &rt->services[i];
	const ServiceType *t = service_type_for(s->config->kind);
	ServiceCommand cmd = { 0 };
	int r;

	/* Beneath the volume, never through a symlink, chowned through the fd. */
	char rel[300];
	snprintf(rel, sizeof(rel), "services/%s", s->config->name);
	_cleanup_close_ int vol = open_trusted_dir(rt->volume_path);
	_cleanup_close_ int dir = vol < 0 ? vol : open_dir_beneath(vol, rel, 0700);
	if (dir < 0 || fchownat(dir, "", s->owner_uid, s->owner_gid, AT_EMPTY_PATH) < 0)
		return bbx_error_set(err, dir < 0 ? dir : -errno, BBX_INTERNAL, "service %s: cannot create %s: %s",
				     s->config->name, s->data_host, strerror(dir < 0 ? -dir : errno));
	r = t->prepare(s, true, false, err);
	if (r < 0)
		return r;
	r = t->init_command(s, &cmd, err);
	if (r < 0)
		return r;
	if (cmd.argv) {
		ProcBuild b;
		OneshotResult res;
		char what[96];
		snprintf(what, sizeof(what), "%s-init", s->config->name);
		r = pb_service(E, rt, i, &b, what, err);
		if (r >= 0)
			r = run_oneshot(rt, &b, cmd.argv, cmd.stdin_data, 300, &res, err);
		proc_build_done(&b);
		if (r >= 0) {
			append_step_log(E, rt, what, &res);
			if (res.exit_status != 0)
				r = fail_with_output(err, what, &res);
			oneshot_result_done(&res);
		}
	}
	service_command_done(&cmd);
	return r;
}

static int services_start(Environments *E, EnvRuntime *rt, bool cloned, BbxError *err)
{
	for (size_t i = 0; i < rt->n_services; i++) {
		const ServiceRuntime *s = &rt->services[i];
		const ServiceType *t = service_type_for(s->config->kind);
		ServiceCommand cmd = { 0 };
		ProcBuild b;
		int r;

		if (rt->service_procs[i])
			continue;
		r = t->prepare(s, false, cloned, err);
		if (r >= 0)
			r = t->start_command(s, &cmd, err);
		if (r < 0) {
			service_command_done(&cmd);
			return r;
		}
		r = pb_service(E, rt, i, &b, s->config->name, err);
		b.spec.argv = cmd.argv;
		EnvProc *proc = NULL;
		if (r >= 0)
			r = envproc_start(&b.spec, &proc, err);
		if (r >= 0) {
			pthread_mutex_lock(&rt->lock);
			rt->service_procs[i] = proc;
			pthread_mutex_unlock(&rt->lock);
		}
		proc_build_done(&b);
		service_command_done(&cmd);
		if (r < 0)
			return r;
	}
	return 0;
}

static uint64_t mono_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

/* Sleep ms, or less when rt is cancelled: then an error saying so. */
static int wait_or_cancel(EnvRuntime *rt, unsigned ms, BbxError *err)
{
	struct pollfd pfd = { .fd = rt->cancel_fd, .events = POLLIN };
	if (poll(&pfd, 1, (int)ms) > 0 && (pfd.revents & POLLIN))
		return bbx_error_set(err, -ECANCELED, BBX_CONFLICT, "environment '%s' was stopped or destroyed meanwhile",
				     rt->name);
	return 0;
}

static int services_wait_ready(EnvRuntime *rt, BbxError *err)
{
	uint64_t deadline = mono_ms() + SERVICE_READY_TIMEOUT_MS;
	for (size_t i = 0; i < rt->n_services; i++) {
		const ServiceRuntime *s = &rt->services[i];
		const ServiceType *t = service_type_for(s->config->kind);
		unsigned delay = 10;
		for (;;) {
			int r = t->probe(s, rt->netns_fd, err);
			if (r == 0)
				break;
			if (r != -EAGAIN)
				return r;
			EnvProcState st = envproc_state(rt->service_procs[i]);
			if (st == ENVPROC_FAILED)
				return bbx_error_set(err, -EIO, BBX_FAILED, "service %s failed to start (see 'branchbox env logs %s %s')",
						     s->config->name, rt->name, s->config->name);
			if (mono_ms() > deadline)
				return bbx_error_set(err, -ETIMEDOUT, BBX_FAILED, "service %s did not accept connections within %d s",
						     s->config->name, SERVICE_READY_TIMEOUT_MS / 1000);
			r = wait_or_cancel(rt, delay, err);
			if (r < 0)
				return r;
			if (delay < 100)
				delay *= 2;
		}
	}
	return 0;
}

/* Run a service one-shot (credentials, SQL) and return its result. */
static int service_oneshot(Environments *E, EnvRuntime *rt, size_t i, ServiceCommand *cmd,
			   const char *what, uint64_t timeout, OneshotResult *res, BbxError *err)
{
	ProcBuild b;
	int r = pb_service(E, rt, i, &b, what, err);
	if (r >= 0)
		r = run_oneshot(rt, &b, cmd->argv, cmd->stdin_data, timeout, res, err);
	proc_build_done(&b);
	if (r >= 0)
		append_step_log(E, rt, what, res);
	return r;
}

static int services_rotate_credentials(Environments *E, EnvRuntime *rt, BbxError *err)
{
	for (size_t i = 0; i < rt->n_services; i++) {
		const ServiceType *t = service_type_for(rt->services[i].config->kind);
		ServiceCommand cmd = { 0 };
		OneshotResult res;
		char what[96];
		int r;

		if (!t->credentials_command)
			continue;
		r = t->credentials_command(&rt->services[i], &cmd, err);
		if (r >= 0) {
			snprintf(what, sizeof(what), "%s-credentials", rt->services[i].config->name);
			r = service_oneshot(E, rt, i, &cmd, what, 120, &res, err);
			if (r >= 0) {
				if (res.exit_status != 0)
					r = fail_with_output(err, what, &res);
				oneshot_result_done(&res);
			}
		}
		service_command_done(&cmd);
		if (r < 0)
			return r;
	}
	return 0;
}

static int run_hook(Environments *E, EnvRuntime *rt, const ConfigApplication *app, const char *hook,
		    const char *script, BbxError *err)
{
	ProcBuild b;
	OneshotResult res;
	char what[96];
	int r;

	if (!script || !*script)
		return 0;
	snprintf(what, sizeof(what), "%s-%s", app->name, hook);
	bool build = !strcmp(hook, "build");
	r = pb_app(E, rt, app, rt->code_dir, &b, what, build ? APP_PROC_CODE_WRITABLE | APP_PROC_BUILD : 0, err);
	if (r >= 0) {
		_cleanup_strv_free_ char **argv = strv_new("/bin/sh", "-e", "-c", script, NULL);
		r = argv ? run_oneshot(rt, &b, argv, NULL, core_hook_timeout(E->core), &res, err) : -ENOMEM;
		if (r >= 0) {
			append_step_log(E, rt, what, &res);
			if (res.exit_status != 0) {
				char label[128];
				snprintf(label, sizeof(label), "hook %s of application %s", hook, app->name);
				r = fail_with_output(err, label, &res);
			}
			oneshot_result_done(&res);
		}
	}
	proc_build_done(&b);
	return r;
}

static int apps_start(Environments *E, EnvRuntime *rt, BbxError *err)
{
	for (size_t i = 0; i < rt->config->n_applications; i++) {
		const ConfigApplication *app = &rt->config->applications[i];
		ProcBuild b;
		int r;

		if (!app->has_web || rt->app_procs[i])
			continue;
		r = pb_app(E, rt, app, rt->code_dir, &b, app->name, 0, err);
		if (r < 0) {
			proc_build_done(&b);
			bbx_error_prefix(err, "application %s: preparing its sandbox", app->name);
			return r;
		}
		_cleanup_strv_free_ char **argv = strv_new("/bin/sh", "-c", app->web_start, NULL);
		b.spec.argv = argv;
		EnvProc *proc = NULL;
		r = argv ? envproc_start(&b.spec, &proc, err) : -ENOMEM;
		if (r >= 0) {
			pthread_mutex_lock(&rt->lock);
			rt->app_procs[i] = proc;
			pthread_mutex_unlock(&rt->lock);
		}
		proc_build_done(&b);
		if (r < 0)
			return r;
	}
	return 0;
}

static int apps_wait_healthy(EnvRuntime *rt, BbxError *err)
{
	uint64_t deadline = mono_ms() + APP_HEALTHY_TIMEOUT_MS;
	for (size_t i = 0; i < rt->config->n_applications; i++) {
		const ConfigApplication *app = &rt->config->applications[i];
		int status = 0;
		unsigned delay = 20;
		if (!app->has_web)
			continue;
		for (;;) {
			int r = netns_http_get(rt->netns_fd, app->web_port, app->web_healthcheck, 5000, &status, NULL, 0, NULL);
			if (r >= 0 && status >= 200 && status < 400)
				break;
			if (envproc_state(rt->app_procs[i]) == ENVPROC_FAILED)
				return bbx_error_set(err, -EIO, BBX_FAILED, "application %s keeps exiting (see 'branchbox env logs %s %s')",
						     app->name, rt->name, app->name);
			if (mono_ms() > deadline) {
				if (r >= 0)
					return bbx_error_set(err, -ETIMEDOUT, BBX_FAILED, "application %s answered %s with HTTP %d, not healthy within %d s",
							     app->name, app->web_healthcheck, status, APP_HEALTHY_TIMEOUT_MS / 1000);
				return bbx_error_set(err, -ETIMEDOUT, BBX_FAILED, "application %s did not answer on port %u within %d s (see 'branchbox env logs %s %s')",
						     app->name, app->web_port, APP_HEALTHY_TIMEOUT_MS / 1000, rt->name, app->name);
			}
			r = wait_or_cancel(rt, delay, err);
			if (r < 0)
				return r;
			if (delay < 100)
				delay *= 2;
		}
	}
	return 0;
}

/* ---- sanitize ---- */

/*
 * Production's sanitize steps, never the branch's (DESIGN.md 2a). A command step runs
 * production's code (the checkout of the commit production runs) against the preview's
 * services: nothing of the branch has run yet.
 */
static int run_sanitize(Environments *E, EnvRuntime *rt, BbxError *err)
{
	const ProjectConfig *policy = rt->policy;
	if (!policy || !rt->policy_code_dir)
		return bbx_error_set(err, -EINVAL, BBX_INTERNAL, "no production config to sanitize %s with", rt->name);
	for (size_t k = 0; k < policy->n_sanitize; k++) {
		const ConfigStep *step = &policy->sanitize[k];
		OneshotResult res;
		char what[128];
		int r;

		snprintf(what, sizeof(what), "sanitize-%zu", k + 1);
		if (step->kind == CONFIG_STEP_SQL) {
			size_t idx = 0;
			const ServiceRuntime *s = runtime_service(rt, step->service, &idx);
			const ServiceType *t = s ? service_type_for(s->config->kind) : NULL;
			if (!t || !t->sql_command)
				return bbx_error_set(err, -EINVAL, BBX_FAILED, "sanitize step %s: service %s takes no SQL",
						     step->name, step->service);
			ServiceCommand cmd = { 0 };
			r = t->sql_command(s, step->sql, &cmd, err);
			if (r >= 0)
				r = service_oneshot(E, rt, idx, &cmd, what, step->timeout_sec, &res, err);
			service_command_done(&cmd);
		} else if (step->kind == CONFIG_STEP_COMMAND) {
			ProcBuild b;
			const ConfigApplication *app = policy->n_applications ? &policy->applications[0] : NULL;
			if (!app)
				return bbx_error_set(err, -EINVAL, BBX_FAILED, "sanitize step %s: no application to run it in", step->name);
			r = pb_app(E, rt, app, rt->policy_code_dir, &b, what, 0, err);
			if (r >= 0) {
				_cleanup_strv_free_ char **argv = strv_new("/bin/sh", "-e", "-c", step->command, NULL);
				r = argv ? run_oneshot(rt, &b, argv, NULL, step->timeout_sec, &res, err) : -ENOMEM;
				if (r >= 0)
					append_step_log(E, rt, what, &res);
			}
			proc_build_done(&b);
		} else
			return bbx_error_set(err, -EINVAL, BBX_FAILED, "sanitize step %s: only sql and command steps can sanitize", step->name);
		if (r < 0) {
			bbx_error_prefix(err, "sanitize step %s", step->name);
			return r;
		}
		if (res.exit_status != 0) {
			char label[160];
			snprintf(label, sizeof(label), "sanitize step %s", step->name);
			r = fail_with_output(err, label, &res);
			oneshot_result_done(&res);
			return r;
		}
		oneshot_result_done(&res);
	}
	return 0;
}

/* ---- building blocks of the operations ---- */

static int ensure_dirs(Environments *E, const char *name)
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
		return bbx_error_set(err, r, BBX_INTERNAL, "preparing checkout %s: %s", dir, strerror(-r));
	}
	if (ret_dir)
		*ret_dir = TAKE_PTR(dir);
	return 0;
}

static int network_up(Environments *E, EnvRuntime *rt, BbxError *err)
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

#define CGROUP_ROOT "/sys/fs/cgroup"

static void cgroup_remove_name(const char *name)
{
	(void)sandbox_cgroup_remove_name(CGROUP_ROOT, name, NULL);
}

/* Kill and remove an environment's cgroups: each process's, then the environment's.
 * Only below this daemon's own prefix: other daemons on the host keep theirs. */
static void cgroups_remove_env(Environments *E, const char *env)
{
	static const char *const bases[] = { CGROUP_ROOT "/*/branchbox", CGROUP_ROOT "/branchbox" };
	char pattern[512], name[256];
	for (size_t b = 0; b < ELEMENTSOF(bases); b++) {
		glob_t g;
		snprintf(pattern, sizeof(pattern), "%s/%s/env-%s/*", bases[b], E->cgroup_prefix, env);
		if (glob(pattern, GLOB_ONLYDIR | GLOB_NOSORT, NULL, &g) != 0)
			continue;
		for (size_t i = 0; i < g.gl_pathc; i++) {
			const char *child = strrchr(g.gl_pathv[i], '/') + 1;
			snprintf(name, sizeof(name), "%s/env-%s/%s", E->cgroup_prefix, env, child);
			if (name_is_valid(child))
				cgroup_remove_name(name);
		}
		globfree(&g);
	}
	snprintf(name, sizeof(name), "%s/env-%s", E->cgroup_prefix, env);
	cgroup_remove_name(name);
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
	*ret = (EnvMeasure){ .cpu_usec = u.cpu_usec, .memory_peak = u.memory_peak,
			     .memory_current = u.memory_current, .disk_bytes = UINT64_MAX,
			     .disk_quota = UINT64_MAX };
	if (!with_disk)
		return;
	VolumeInfo vi;
	pthread_mutex_lock(&E->pool_lock);
	if (E->pool && pool_volume_exists(E->pool, name) > 0 && pool_volume_usage(E->pool, name, &vi, NULL) >= 0) {
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
static char **cgroup_env_names(Environments *E)
{
	char patterns[2][256];
	snprintf(patterns[0], sizeof(patterns[0]), CGROUP_ROOT "/*/branchbox/%s/env-*", E->cgroup_prefix);
	snprintf(patterns[1], sizeof(patterns[1]), CGROUP_ROOT "/branchbox/%s/env-*", E->cgroup_prefix);
	char **names = NULL;
	for (size_t p = 0; p < ELEMENTSOF(patterns); p++) {
		glob_t g;
		if (glob(patterns[p], GLOB_ONLYDIR | GLOB_NOSORT, NULL, &g) != 0)
			continue;
		for (size_t i = 0; i < g.gl_pathc; i++) {
			const char *n = strrchr(g.gl_pathv[i], '/') + 5;
			bool seen = false;
			for (size_t k = 0; names && names[k]; k++)
				seen |= !strcmp(names[k], n);
			if (!seen && name_is_valid(n))
				(void)strv_push(&names, n);
		}
		globfree(&g);
	}
	return names;
}

/* Undo everything an environment has on the host: processes, netns, code, logs, volume.
 * Tolerates any half-built state (used by destroy, failed creates and crash recovery). */
static int teardown(Environments *E, const char *name, EnvRuntime *rt, bool sync, BbxError *err)
{
	char path[4096];
	int r, ret = 0;

	if (rt) {
		runtime_stop_processes(rt);
		pthread_mutex_lock(&rt->lock);
		rt->netns_fd = safe_close(rt->netns_fd);
		pthread_mutex_unlock(&rt->lock);
	}
	cgroups_remove_env(E, name);
	env_path(E, path, sizeof(path), "run/netns", name);
	r = sandbox_netns_remove(path, NULL);
	if (r < 0 && r != -ENOENT && ret == 0)
		ret = bbx_error_set(err, r, BBX_INTERNAL, "removing network namespace %s: %s", path, strerror(-r));
	pthread_mutex_lock(&E->pool_lock);
	r = E->pool ? pool_volume_exists(E->pool, name) : 0;
	if (r > 0) {
		r = pool_volume_destroy(E->pool, name, sync, err);
		if (r < 0 && ret == 0)
			ret = r;
	}
	pthread_mutex_unlock(&E->pool_lock);
	static const char *const kinds[] = { "code", "tmp", "logs" };
	for (size_t i = 0; i < ELEMENTSOF(kinds); i++) {
		env_path(E, path, sizeof(path), kinds[i], name);
		r = rm_rf(path);
		if (r < 0 && ret == 0)
			ret = bbx_error_set(err, r, BBX_INTERNAL, "removing %s: %s", path, strerror(-r));
	}
	/* Nothing stored as its uids is left: the store releases them with its row, unless a
	 * clone's volume still holds them. */
	if (ret == 0)
		(void)uid_allocation_files_gone(core_store(E->core), name, NULL);
	return ret;
}

static int checkpoint_services(Environments *E, EnvRuntime *parent)
{
	/* A CHECKPOINT on the source just before the snapshot leaves the clone almost no WAL
	 * to replay, which is what makes a preview of a busy database fast. */
	for (size_t i = 0; i < parent->n_services; i++) {
		const ServiceType *t = service_type_for(parent->services[i].config->kind);
		if (!t->sql_command || !parent->service_procs[i])
			continue;
		ServiceCommand cmd = { 0 };
		OneshotResult res;
		if (t->sql_command(&parent->services[i], "CHECKPOINT;", &cmd, NULL) >= 0 &&
		    service_oneshot(E, parent, i, &cmd, "checkpoint", 120, &res, NULL) >= 0)
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
	SandboxCgroupLimits l = { .memory_max = sum.memory_bytes, .pids_max = sum.pids, .cpu_millis = sum.cpu_millis };
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
		return bbx_error_set(err, r, e.kind, "environment %s: bounding its volume: %s", rt->name,
				     bbx_error_message(&e, r));
	return 0;
}

/*
 * Admit one more preview and insert its row under one lock, so two creates cannot both take
 * the last place. What it may write counts as promised from here until its volume carries its
 * quota (admission_done), when the pool's own accounting takes over.
 */
static int admit_and_insert(Environments *E, EnvRuntime *rt, const EnvCreateOptions *opts,
			    const ProjectConfig *config, EnvRecord *nr, BbxError *err)
{
	Core *c = E->core;
	PreviewAdmission a = { .max_previews = core_max_previews(c), .token_id = opts->token_id,
			       .principal = opts->created_by, .max_per_token = core_max_previews_per_token(c),
			       .disk_bytes = ceilings_preview_disk(config), .reserve = *core_pool_reserve(c) };
	PoolInfo info;
	PoolCommitment pc;
	pthread_mutex_lock(&E->admit_lock);
	int r = env_record_count_previews(core_store(c), opts->token_id, &a.previews, &a.token_previews, err);
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
		a.promised_bytes = pc.promised_bytes + E->disk_pending < pc.promised_bytes ? UINT64_MAX
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

static void admission_done(Environments *E, EnvRuntime *rt)
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
	json_object_set_new(o, "memory_bytes", sum.memory_bytes ? json_integer((json_int_t)sum.memory_bytes) : json_null());
	json_object_set_new(o, "pids", sum.pids ? json_integer((json_int_t)sum.pids) : json_null());
	json_object_set_new(o, "cpu", sum.cpu_millis ? json_real(sum.cpu_millis / 1000.0) : json_null());
	if (rt->preview) {
		uint64_t disk = ceilings_preview_disk(rt->config);
		json_object_set_new(o, "disk_bytes", disk ? json_integer((json_int_t)disk) : json_null());
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
		json_object_set_new(ceilings, "disk_not_enforced", json_string(info.no_quota_reason));
	else if (vi->quota_bytes == STORAGE_UNKNOWN)
		json_object_set_new(ceilings, "disk_not_enforced", json_string("the volume has no quota yet"));
}

static json_t *runtime_processes_json_locked(EnvRuntime *rt)
{
	json_t *a = json_array();
	if (!rt || !rt->config)
		return a;
	for (size_t i = 0; i < rt->n_services; i++) {
		EnvProc *p = rt->service_procs ? rt->service_procs[i] : NULL;
		json_array_append_new(a, json_pack("{s:s,s:s,s:s,s:i,s:i,s:i}", "name", rt->config->services[i].name,
						   "kind", "service", "state", p ? envproc_state_to_string(envproc_state(p)) : "stopped",
						   "pid", p ? (int)envproc_pid(p) : 0, "restarts", p ? (int)envproc_restarts(p) : 0,
						   "port", (int)rt->services[i].port));
	}
	for (size_t i = 0; i < rt->config->n_applications; i++) {
		EnvProc *p = rt->app_procs ? rt->app_procs[i] : NULL;
		json_array_append_new(a, json_pack("{s:s,s:s,s:s,s:i,s:i,s:i}", "name", rt->config->applications[i].name,
						   "kind", "application", "state", p ? envproc_state_to_string(envproc_state(p)) : "stopped",
						   "pid", p ? (int)envproc_pid(p) : 0, "restarts", p ? (int)envproc_restarts(p) : 0,
						   "port", (int)rt->config->applications[i].web_port));
	}
	return a;
}

static json_t *record_json(Environments *E, const EnvRecord *r)
{
	json_t *o = json_pack("{s:s,s:s,s:s,s:s?,s:s?,s:s,s:I,s:I}", "name", r->name, "kind", r->kind,
			      "branch", r->branch, "commit", r->commit_id, "parent", r->parent, "state", env_state_to_string(r->state),
			      "created_at", (json_int_t)r->created_at, "updated_at", (json_int_t)r->updated_at);
	if (!o)
		return NULL;
	json_object_set_new(o, "expires_at", r->expires_at ? json_integer(r->expires_at) : json_null());
	if (r->error)
		json_object_set_new(o, "error", json_string(r->error));
	char preview[160];
	snprintf(preview, sizeof(preview), "/preview/%s/", r->name);
	json_object_set_new(o, "preview_path", json_string(preview));
	return o;
}

static int record_info(Environments *E, const char *name, json_t **ret, BbxError *err)
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
	if (E->pool && pool_volume_exists(E->pool, name) > 0 && pool_volume_usage(E->pool, name, &vi, NULL) >= 0) {
		json_t *v = json_object();
		if (vi.exclusive_bytes != STORAGE_UNKNOWN)
			json_object_set_new(v, "exclusive_bytes", json_integer((json_int_t)vi.exclusive_bytes));
		if (vi.shared_bytes != STORAGE_UNKNOWN)
			json_object_set_new(v, "shared_bytes", json_integer((json_int_t)vi.shared_bytes));
		json_object_set_new(v, "quota_bytes", vi.quota_bytes != STORAGE_UNKNOWN ? json_integer((json_int_t)vi.quota_bytes) : json_null());
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

/* Start services (initialising those whose data dir is new), hooks, apps. */
static int bring_up(Environments *E, EnvRuntime *rt, const char *op, bool cloned, bool run_hooks,
		    bool sanitize, int64_t journal_id, BbxError *err)
{
	Store *s = core_store(E->core);
	int r;
	bool fresh[64] = { false };

	if (rt->n_services > ELEMENTSOF(fresh))
		return bbx_error_set(err, -E2BIG, BBX_INVALID, "too many services (at most %zu)", ELEMENTSOF(fresh));
	r = apply_ceilings(E, rt, err);
	if (r < 0)
		return r;
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
	r = network_up(E, rt, err);
	if (r < 0)
		return r;
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
	if (r >= 0)
		r = services_wait_ready(rt, err);
	if (r >= 0 && cloned)
		/* New credentials before anything else touches the clone. */
		r = services_rotate_credentials(E, rt, err);
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
	}
	if (build.started)
		pthread_join(build.thread, NULL);
	if (r < 0)
		return r;
	if (run_hooks && build.r < 0)
		return bbx_error_set(err, build.r, bbx_error_isset(&build.err) ? build.err.kind : BBX_FAILED, "%s",
				     bbx_error_message(&build.err, build.r));
	if (run_hooks)
		for (size_t a = 0; a < rt->config->n_applications; a++) {
			const ConfigApplication *app = &rt->config->applications[a];
			r = run_hook(E, rt, app, "deploy", app->hook_deploy, err);
			if (r < 0)
				return r;
		}
	if (journal_id)
		(void)journal_step(s, journal_id, "app", NULL);
	environment_debug_stop_point(op, "app");
	r = apps_start(E, rt, err);
	if (r >= 0)
		r = apps_wait_healthy(rt, err);
	if (r < 0)
		return r;
	if (run_hooks)
		for (size_t a = 0; a < rt->config->n_applications; a++) {
			const ConfigApplication *app = &rt->config->applications[a];
			r = run_hook(E, rt, app, "post_deploy", app->hook_post_deploy, err);
			if (r < 0)
				return r;
		}
	(void)fresh;
	return 0;
}

static int ensure_pool(Environments *E, BbxError *err)
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
	ProjectConfig *config = NULL;
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
	if (r < 0) {
		config_free(config);
		return r;
	}
	r = runtime_get(E, name, &rt, &created_slot);
	if (r < 0) {
		config_free(config);
		return r;
	}
	pthread_mutex_lock(&rt->op_lock);
	if (runtime_removed(E, rt)) {
		/* Destroyed between the lookup and the lock: nothing of it to deploy over. */
		pthread_mutex_unlock(&rt->op_lock);
		config_free(config);
		return bbx_error_set(err, -EBUSY, BBX_CONFLICT, "environment '%s' was destroyed meanwhile; deploy again", name);
	}
	first = env_record_get(s, name, &rec, NULL) == -ENOENT;
	if (!first && rec.state == ENV_DESTROYING) {
		r = bbx_error_set(err, -EBUSY, BBX_CONFLICT, "environment '%s' is being destroyed", name);
		config_free(config);
		goto out;
	}

	(void)asprintf(&payload, "{\"commit\":\"%s\",\"first\":%s}", commit, first ? "true" : "false");
	r = journal_begin(s, "environment.deploy", name, "intent", payload, &jid, err);
	if (r < 0) {
		config_free(config);
		goto out;
	}
	environment_debug_stop_point("deploy", "intent");
	r = cancel_reset(rt);
	if (r >= 0)
		r = ensure_dirs(E, name);
	if (r < 0) {
		config_free(config);
		bbx_error_set(err, r, BBX_INTERNAL, "state directories for %s: %s", name, strerror(-r));
		goto fail;
	}
	if (first) {
		int64_t now = store_now();
		EnvRecord nr = { .name = (char *)name, .kind = "production", .branch = (char *)name,
				 .commit_id = commit, .state = ENV_CREATING, .volume = (char *)name,
				 .created_at = now, .updated_at = now };
		r = env_record_insert(s, &nr, core_uid_range(c), err);
		if (r < 0) {
			config_free(config);
			goto fail;
		}
		(void)journal_step(s, jid, "volume", NULL);
		environment_debug_stop_point("deploy", "volume");
		pthread_mutex_lock(&E->pool_lock);
		r = pool_volume_exists(E->pool, name) > 0 ? 0 : pool_volume_create(E->pool, name, err);
		pthread_mutex_unlock(&E->pool_lock);
		if (r < 0) {
			config_free(config);
			goto fail;
		}
	} else {
		/* Redeploy: the applications restart on the new code; the data stays. */
		atomic_store(&rt->ready, false);
		runtime_stop_processes(rt);
	}
	r = runtime_setup(E, rt, config, commit, false, err);
	if (r < 0)
		goto fail;
	r = secrets_load(rt, first ? NULL : rec.secrets_json);
	if (r < 0)
		goto fail;
	r = bring_up(E, rt, "deploy", false, true, false, jid, err);
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
		(void)env_record_set_state(s, name, ENV_FAILED, err ? err->message : "deploy failed", NULL);
		(void)journal_finish(s, jid, "failed", NULL);
	}
out:
	pthread_mutex_unlock(&rt->op_lock);
	env_record_done(&rec);
	return r;
}

static VolumeFreeze *make_freeze(EnvRuntime *parent, VolumeFreeze *f);

int environment_create(Core *c, const EnvCreateOptions *opts, json_t **ret_info, BbxError *err)
{
	Environments *E = envs_of(c);
	Store *s = core_store(c);
	const char *name = opts->name;
	const char *parent_name = opts->parent ? opts->parent : E->production;
	const char *branch = opts->branch ? opts->branch : name;
	char commit[GITREPO_ID_SIZE];
	ProjectConfig *config = NULL;
	_cleanup_(config_freep) ProjectConfig *policy = NULL;
	_cleanup_free_ char *policy_code = NULL;
	EnvRecord prec = { 0 };
	_cleanup_runtime_ EnvRuntime *rt = NULL;
	_cleanup_runtime_ EnvRuntime *parent = NULL;
	int64_t jid = 0;
	int r;

	if (!name_is_valid(name))
		return bbx_error_set(err, -EINVAL, BBX_INVALID,
				     "environment name '%s' is not valid: use 1-63 of a-z, 0-9, '-', '_', '.', starting with a letter or digit",
				     name);
	if (!strcmp(name, E->production))
		return bbx_error_set(err, -EEXIST, BBX_CONFLICT, "'%s' is the production environment; deploy it with 'branchbox deploy'", name);
	r = env_record_get(s, parent_name, &prec, NULL);
	if (r == -ENOENT)
		return bbx_error_set(err, -ENOENT, BBX_NOT_FOUND, "environment '%s' not found", parent_name);
	if (r < 0)
		return r;
	if (prec.state != ENV_READY) {
		r = bbx_error_set(err, -EBUSY, BBX_CONFLICT, "environment '%s' is %s, not ready to be cloned", parent_name,
				  env_state_to_string(prec.state));
		env_record_done(&prec);
		return r;
	}
	env_record_done(&prec);
	r = gitrepo_resolve(E->repo, branch, commit, err);
	if (r < 0) {
		if (r == -ENOENT)
			return bbx_error_reset(err, -ENOENT, BBX_INVALID, "branch '%s' not found in the repository", branch);
		return r;
	}
	r = load_preview_config(E, commit, &config, &policy, &policy_code, err);
	if (r < 0)
		return r;

	parent = runtime_find(E, parent_name);
	if (!parent) {
		config_free(config);
		return bbx_error_set(err, -EBUSY, BBX_CONFLICT, "environment '%s' is not running", parent_name);
	}
	bool created_slot = false;
	r = runtime_get(E, name, &rt, &created_slot);
	if (r < 0) {
		config_free(config);
		return r;
	}
	if (!created_slot) {
		config_free(config);
		return bbx_error_set(err, -EEXIST, BBX_CONFLICT, "environment '%s' already exists", name);
	}
	pthread_mutex_lock(&rt->op_lock);

	int64_t now = store_now();
	uint64_t ttl = config->preview_ttl_sec;
	EnvRecord nr = { .name = (char *)name, .kind = "preview", .branch = (char *)branch, .commit_id = commit,
			 .parent = (char *)parent_name, .state = ENV_CREATING, .volume = (char *)name,
			 .created_at = now, .updated_at = now, .expires_at = ttl ? now + (int64_t)ttl : 0,
			 .token_id = (char *)opts->token_id };
	r = admit_and_insert(E, rt, opts, config, &nr, err);
	if (r < 0) {
		config_free(config);
		runtime_remove(E, rt);
		pthread_mutex_unlock(&rt->op_lock);
		return r;
	}
	_cleanup_free_ char *payload = NULL;
	(void)asprintf(&payload, "{\"parent\":\"%s\",\"branch\":\"%s\",\"commit\":\"%s\"}", parent_name, branch, commit);
	r = journal_begin(s, "environment.create", name, "intent", payload, &jid, err);
	if (r < 0) {
		config_free(config);
		goto fail;
	}
	environment_debug_stop_point("create", "intent");
	r = ensure_dirs(E, name);
	if (r < 0) {
		config_free(config);
		bbx_error_set(err, r, BBX_INTERNAL, "state directories for %s: %s", name, strerror(-r));
		goto fail;
	}

	/* Snapshot the parent: quiesce its databases, then one atomic clone of its volume. */
	pthread_mutex_lock(&parent->op_lock);
	if (runtime_removed(E, parent) || !atomic_load(&parent->ready)) {
		pthread_mutex_unlock(&parent->op_lock);
		config_free(config);
		r = bbx_error_set(err, -EBUSY, BBX_CONFLICT, "environment '%s' stopped or was destroyed meanwhile", parent_name);
		goto fail;
	}
	(void)checkpoint_services(E, parent);
	(void)journal_step(s, jid, "snapshot", NULL);
	environment_debug_stop_point("create", "snapshot");
	VolumeFreeze freeze;
	pthread_mutex_lock(&E->pool_lock);
	r = pool_volume_snapshot(E->pool, parent_name, name, make_freeze(parent, &freeze), err);
	pthread_mutex_unlock(&E->pool_lock);
	pthread_mutex_unlock(&parent->op_lock);
	if (r < 0) {
		config_free(config);
		goto fail;
	}
	environment_debug_stop_point("create", "after-snapshot");

	r = runtime_setup(E, rt, config, commit, true, err);
	if (r < 0)
		goto fail;
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
	r = bring_up(E, rt, "create", true, true, true, jid, err);
	admission_done(E, rt);
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
			       ? bbx_error_set(err, -EBUSY, BBX_CONFLICT, "environment '%s' changed meanwhile; destroy it again", name)
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
static int start_recorded(Environments *E, EnvRuntime *rt, const EnvRecord *rec, BbxError *err)
{
	ProjectConfig *config = NULL, *policy = NULL;
	bool preview = !strcmp(rec->kind, "preview");
	/* A preview starts again within what production's config allows now. */
	int r = preview ? load_preview_config(E, rec->commit_id, &config, &policy, NULL, err)
			: load_config_at(E, rec->commit_id, &config, err);
	if (r < 0)
		return r;
	atomic_store(&rt->ready, false);
	r = cancel_reset(rt);
	if (r < 0) {
		config_free(config);
		config_free(policy);
		return bbx_error_set(err, r, BBX_INTERNAL, "environment %s: %s", rec->name, strerror(-r));
	}
	r = runtime_setup(E, rt, config, rec->commit_id, preview, err);
	config_free(rt->policy);
	rt->policy = policy;
	if (r >= 0)
		r = secrets_load(rt, rec->secrets_json);
	if (r >= 0)
		r = ensure_dirs(E, rec->name);
	if (r >= 0)
		r = bring_up(E, rt, "start", false, false, false, 0, err);
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
		r = bbx_error_set(err, -EBUSY, BBX_CONFLICT, "environment '%s' is %s", name, env_state_to_string(rec.state));
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
			return bbx_error_set(err, -ENOENT, BBX_NOT_FOUND, "environment '%s' was destroyed meanwhile", name);
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
	struct timespec deadline;
	clock_gettime(CLOCK_REALTIME, &deadline);
	deadline.tv_sec += ms / 1000;
	deadline.tv_nsec += (long)(ms % 1000) * 1000000L;
	if (deadline.tv_nsec >= 1000000000L) {
		deadline.tv_sec++;
		deadline.tv_nsec -= 1000000000L;
	}
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
		return bbx_error_set(err, -EBUSY, BBX_CONFLICT, "environment '%s' is busy with another operation; try again",
				     opts->name);
	/* Stopped, destroyed or redeployed while this waited for the lock. */
	if (!atomic_load(&rt->ready) || !rt->config || rt->netns_fd < 0) {
		pthread_mutex_unlock(&rt->op_lock);
		return not_ready(err, opts->name);
	}
	const ConfigApplication *app = find_app(rt, opts->application, NULL);
	if (!app) {
		pthread_mutex_unlock(&rt->op_lock);
		return bbx_error_set(err, -ENOENT, BBX_INVALID, "environment '%s' has no application '%s'", opts->name,
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
	r = envproc_run_oneshot_with(&b.spec, &o, ret, err);
	if (r == -ECANCELED)
		r = bbx_error_reset(err, -ECANCELED, BBX_CONFLICT,
				    "environment '%s' was stopped or destroyed while the command ran; its processes were killed",
				    opts->name);
	proc_build_done(&b);

	pthread_mutex_lock(&rt->lock);
	rt->n_running--;
	pthread_cond_broadcast(&rt->run_done);
	pthread_mutex_unlock(&rt->lock);
	return r;
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
				snprintf(first_app, sizeof(first_app), "%s", rt->config->applications[0].name);
			pthread_mutex_unlock(&rt->lock);
		}
		process = first_app;
	}
	if (!name_is_valid(process))
		return bbx_error_set(err, -EINVAL, BBX_INVALID, "process name '%s' is not valid", process);
	snprintf(path, sizeof(path), "%s/logs/%s/%s.log", E->state_dir, name, process);
	_cleanup_close_ int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
	if (fd < 0) {
		if (errno == ENOENT)
			return bbx_error_set(err, -ENOENT, BBX_INVALID, "environment '%s' has no log for process '%s'", name, process);
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
		return bbx_error_set(err, -ENOENT, BBX_UNAVAILABLE, "environment '%s' has no web application", name);
	if (netns < 0)
		return bbx_error_set(err, -errno, BBX_INTERNAL, "environment '%s': %m", name);
	int fd = netns_connect(netns, port, 10000, err);
	if (fd < 0)
		return fd;
	*ret_fd = fd;
	return 0;
}

/* ---- background jobs ---- */

/* A thread the daemon started for one environment (a restart, an expiry); joined when it is
 * done (by the reaper) or at shutdown, never detached. */
typedef struct EnvJob {
	struct EnvJob *next;
	Environments *E;
	pthread_t thread;
	atomic_bool done;
	char name[64];
	EnvRecord rec;			/* a restart's record */
	void (*run)(struct EnvJob *job);
} EnvJob;

static void *job_main(void *userdata)
{
	EnvJob *job = userdata;
	job->run(job);
	atomic_store(&job->done, true);
	return NULL;
}

static void job_free(EnvJob *job)
{
	env_record_done(&job->rec);
	free(job);
}

/* Start run(job) on a thread of its own unless a job for the same environment is still
 * running; takes job either way. */
static int job_start(Environments *E, EnvJob *job)
{
	pthread_mutex_lock(&E->jobs_lock);
	for (EnvJob *j = E->jobs; j; j = j->next)
		if (!strcmp(j->name, job->name) && !atomic_load(&j->done)) {
			pthread_mutex_unlock(&E->jobs_lock);
			job_free(job);
			return -EALREADY;
		}
	job->E = E;
	atomic_init(&job->done, false);
	int r = -pthread_create(&job->thread, NULL, job_main, job);
	if (r < 0) {
		pthread_mutex_unlock(&E->jobs_lock);
		job_free(job);
		return r;
	}
	job->next = E->jobs;
	E->jobs = job;
	pthread_mutex_unlock(&E->jobs_lock);
	return 0;
}

/* Join the jobs that are done (all of them when all, waiting for each). */
static void jobs_join(Environments *E, bool all)
{
	EnvJob *finished = NULL;
	pthread_mutex_lock(&E->jobs_lock);
	for (EnvJob **pp = &E->jobs; *pp;) {
		EnvJob *j = *pp;
		if (all || atomic_load(&j->done)) {
			*pp = j->next;
			j->next = finished;
			finished = j;
		} else
			pp = &j->next;
	}
	pthread_mutex_unlock(&E->jobs_lock);
	while (finished) {
		EnvJob *j = finished;
		finished = j->next;
		pthread_join(j->thread, NULL);
		job_free(j);
	}
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
	AuditRecord rec = { .request_id = "reaper", .principal = &system, .interface = "daemon",
			    .action = "environment.expire", .resource = resource, .decision = "allow",
			    .reason = r < 0 ? bbx_error_message(&e, r) : "ttl expired",
			    .request_digest = digest, .outcome = r < 0 ? "failed" : "destroyed" };
	(void)audit_append(c, &rec, NULL, NULL);
}

static void expire_job(EnvJob *job)
{
	expire_one(job->E->core, job->name);
}

/* Previews whose TTL has passed (a list the caller frees with strv_free). */
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
		    v[i].state != ENV_DESTROYING)
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
		jobs_join(E, false);
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
		EnvRecord rec;
		bool exists = env_record_get(s, j->target, &rec, NULL) >= 0;
		bool half_made = exists && rec.state == ENV_CREATING;
		if (exists)
			env_record_done(&rec);
		BbxError ignored = BBX_ERROR_INIT;
		if (!strcmp(j->kind, "environment.destroy") || half_made ||
		    (!exists && (!strcmp(j->kind, "environment.create") || !strcmp(j->kind, "environment.deploy")))) {
			/* Never finished creating (nobody saw it ready), or was being destroyed:
			 * either way it goes, completely. */
			(void)teardown(E, j->target, NULL, false, &ignored);
			(void)env_record_delete(s, j->target, NULL);
			(void)journal_finish(s, j->id, !strcmp(j->kind, "environment.destroy") ? "done" : "undone", NULL);
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
				(void)pool_volume_destroy(E->pool, vv[i].name, false, NULL);
		volume_info_list_free(vv, vn);
	}
	/* Cgroups: every environment's processes died with the previous daemon, so the
	 * cgroups left are empty husks (or orphans to kill). */
	char **cg = cgroup_env_names(E);
	for (size_t i = 0; cg && cg[i]; i++)
		cgroups_remove_env(E, cg[i]);
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
				(void)sandbox_netns_remove(p, NULL);
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
		(void)env_record_set_state(core_store(E->core), job->rec.name, r >= 0 ? ENV_READY : ENV_FAILED,
					   r >= 0 ? NULL : bbx_error_message(&err, r), NULL);
}

int environments_init(Core *c, BbxError *err)
{
	Environments *E = calloc(1, sizeof(*E));
	int r;

	if (!E)
		return -ENOMEM;
	E->core = c;
	pthread_mutex_init(&E->lock, NULL);
	pthread_mutex_init(&E->pool_lock, NULL);
	pthread_mutex_init(&E->jobs_lock, NULL);
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
	/* Several daemons (state dirs) may share a host: each keeps its cgroups apart. */
	unsigned char h[crypto_hash_sha256_BYTES];
	crypto_hash_sha256(h, (const unsigned char *)E->state_dir, strlen(E->state_dir));
	snprintf(E->cgroup_prefix, sizeof(E->cgroup_prefix), "d-%02x%02x%02x%02x", h[0], h[1], h[2], h[3]);

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

	if (pipe2(E->reaper_wake, O_CLOEXEC) == 0 && pthread_create(&E->reaper, NULL, reaper_main, E) == 0)
		E->reaper_started = true;
	return budget_meter_start(c, &E->meter);
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
	budget_meter_stop(TAKE_PTR(E->meter));
	if (E->reaper_started) {
		(void)!write(E->reaper_wake[1], "x", 1);
		pthread_join(E->reaper, NULL);
	}
	safe_close(E->reaper_wake[0]);
	safe_close(E->reaper_wake[1]);
	/* Restarts and expiries were cancelled above: they end soon. */
	jobs_join(E, true);
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
	pthread_mutex_destroy(&E->jobs_lock);
	core_set_environments(c, NULL);
	free(E);
}
