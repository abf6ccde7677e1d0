/* SPDX-License-Identifier: MIT */
/*
 * The processes of an environment as the sandbox sees them: what a service, an application or
 * a hook runs with (binds, uids, app and build variables in the Upsun style), one-shots, hooks,
 * services started and waited for, sanitize.
 *
 * One file of about 850 lines: every part builds the same EnvProcSpec from an EnvRuntime
 * (binds, uids, variables) and waits with the same cancellable wait_until(); the seam, if it
 * grows, is hooks and sanitize (the one-shots) apart from long-running services and apps.
 */
#include "env-internal.h"
#include "time-util.h"

/* ---- app and build variables ---- */

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
			(void)strbuf_appendf(&sb, " %s",
					     rt->config->applications[a].relationships[k].name);
	(void)strbuf_putc(&sb, '\n');
	return strbuf_detach(&sb);
}

static void upper_name(const char *s, char *buf, size_t size)
{
	size_t i = 0;
	for (; s[i] && i + 1 < size; i++)
		buf[i] = s[i] == '-' || s[i] == '.'
				 ? '_'
				 : (char)((s[i] >= 'a' && s[i] <= 'z') ? s[i] - 32 : s[i]);
	buf[i] = '\0';
}

/* What every process of an application gets, its build hook included. */
static int common_variables(EnvRuntime *rt, const ConfigApplication *app, char ***v)
{
	int r = 0;
	r |= strv_push(v, "PATH=/usr/local/bin:/usr/bin:/bin");
	r |= strv_push(v, "HOME=/tmp");
	r |= strv_push(v, "LANG=C.UTF-8");
	r |= strv_pushf(v, "PLATFORM_APPLICATION_NAME=%s", app->name);
	r |= strv_pushf(v, "PLATFORM_ENVIRONMENT=%s", rt->name);
	r |= strv_pushf(v, "PLATFORM_ENVIRONMENT_TYPE=%s",
			rt->preview ? "development" : "production");
	r |= strv_pushf(v, "BRANCHBOX_ENVIRONMENT=%s", rt->name);
	r |= strv_pushf(v, "BRANCHBOX_COMMIT=%s", rt->commit);
	return r;
}

/* The variables an application (and its hooks, and `env exec`) gets. */
static int app_environment(EnvRuntime *rt, const ConfigApplication *app, char ***ret)
{
	_cleanup_strv_free_ char **v = NULL;
	char upper[80];
	bool have_url[_CONFIG_SERVICE_KIND_MAX] = { false };
	int r = 0;

	json_t *rels = json_object();
	if (!rels)
		return -ENOMEM;
	r |= common_variables(rt, app, &v);
	r |= strv_pushf(&v, "PORT=%u", app->web_port);
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
		const char *keys[][2] = { { "URL", "url" },	      { "HOST", "host" },
					  { "USERNAME", "username" }, { "PASSWORD", "password" },
					  { "PATH", "path" },	      { "SCHEME", "scheme" } };
		for (size_t q = 0; q < ELEMENTSOF(keys); q++) {
			const char *val = json_string_value(json_object_get(d, keys[q][1]));
			if (val)
				r |= strv_pushf(&v, "%s_%s=%s", upper, keys[q][0], val);
		}
		r |= strv_pushf(&v, "%s_PORT=%u", upper, s->port);
		/* The first relationship to a type sets its variable (DATABASE_URL, ...). */
		if (t->url_variable && !have_url[s->config->kind]) {
			_cleanup_free_ char *url = NULL;
			if (t->url(s, rel->name, &url) < 0) {
				json_decref(d);
				json_decref(rels);
				return -ENOMEM;
			}
			r |= strv_pushf(&v, "%s=%s", t->url_variable, url);
			have_url[s->config->kind] = true;
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
	sodium_bin2base64(b64, blen, (const unsigned char *)rels_s, strlen(rels_s),
			  sodium_base64_VARIANT_ORIGINAL);
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
	r |= common_variables(rt, app, &v);
	for (size_t k = 0; k < app->n_env; k++)
		r |= strv_pushf(&v, "%s=%s", app->env[k].name, app->env[k].value);
	if (r)
		return -ENOMEM;
	*ret = TAKE_PTR(v);
	return 0;
}

/* ---- processes ---- */

void proc_build_done(ProcBuild *b)
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

int pb_keep_fd(ProcBuild *b, int fd)
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
	snprintf(b->cgroup, sizeof(b->cgroup), "%s/env-%s/%s-%s", E->cgroup_prefix, rt->name, what,
		 hex);
	b->spec.cgroup_name = b->cgroup;
	b->spec.oom_score_adj = rt->preview ? PREVIEW_OOM_SCORE_ADJ : 0;
	b->spec.uid = uid;
	b->spec.gid = uid;
	if (volume_idmapped(rt)) {
		/* A preview's volume is a snapshot stored as its parent's pair: the kernel shows
		 * it (and stores what we write) as this environment's own, no file is chowned. */
		b->spec.idmap[0] = (SandboxIdmap){ .stored_id = rt->volume_uid, .id = rt->uid };
		b->spec.idmap[1] =
			(SandboxIdmap){ .stored_id = rt->volume_uid + 1, .id = rt->uid + 1 };
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
	b->rw[0] = (SandboxBind){ .source = s->data_host,
				  .target = s->data_path,
				  .source_fd = fd,
				  .idmapped = volume_idmapped(rt) };
	b->spec.n_rw = 1;
	b->spec.workdir = s->data_path;
	char path[600];
	service_path_variable(s, path, sizeof(path));
	b->envp = strv_new(path, "HOME=/tmp", "LANG=C.UTF-8", NULL);
	b->spec.envp = b->envp;
	CeilingLimits l;
	ceilings_service(s->config, &l);
	b->spec.memory_max = l.memory_bytes;
	b->spec.cpu_millis = l.cpu_millis;
	b->spec.pids_max = l.pids;
	return 0;
}

const ConfigApplication *find_app(EnvRuntime *rt, const char *name, size_t *ret_idx)
{
	for (size_t i = 0; i < rt->config->n_applications; i++)
		if (!name || !strcmp(rt->config->applications[i].name, name)) {
			if (ret_idx)
				*ret_idx = i;
			return &rt->config->applications[i];
		}
	return NULL;
}

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
		return bbx_error_set(
			err, fd, BBX_INVALID, "applications.%s.mounts.%s: source %s/%s: %s%s",
			app->name, mt->path, base, rel, strerror(-fd),
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
int pb_app(Environments *E, EnvRuntime *rt, const ConfigApplication *app, const char *code_dir,
	   ProcBuild *b, const char *what, unsigned flags, BbxError *err)
{
	pb_common(E, rt, b, what, rt->uid + 1);
	_cleanup_close_ int code = open_trusted_dir(code_dir);
	int src = code < 0 ? code : pb_keep_fd(b, open_dir_beneath(code, app->source_root, 0));
	if (src < 0)
		return bbx_error_set(
			err, src, BBX_INVALID, "applications.%s.source.root: '%s' %s", app->name,
			app->source_root,
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
		b->rw[nrw++] =
			(SandboxBind){ .source = src_name, .target = "/app", .source_fd = src };
	else {
		b->ro[0] = (SandboxBind){ .source = src_name, .target = "/app", .source_fd = src };
		b->spec.n_ro = 1;
	}
	for (size_t m = 0; !(flags & APP_PROC_BUILD) && m < app->n_mounts; m++) {
		const ConfigMount *mt = &app->mounts[m];
		if (nrw >= ELEMENTSOF(b->rw))
			return bbx_error_set(err, -E2BIG, BBX_INVALID,
					     "applications.%s.mounts: at most %zu", app->name,
					     ELEMENTSOF(b->rw) - 1);
		const char *target = pb_keep(b, path_join("/app", mt->path + 1, NULL));
		if (!target)
			return -ENOMEM;
		/* The mount point must exist in the (read-only) code tree. */
		int r = mkdir_beneath(src, mt->path + 1, 0755);
		if (r < 0)
			return bbx_error_set(
				err, r, BBX_INVALID,
				"applications.%s.mounts.%s: cannot make the mount point in the "
				"code tree: %s%s",
				app->name, mt->path, strerror(-r),
				r == -ELOOP ? " (a symlink in the way is never followed)" : "");
		int fd = pb_keep_fd(b, open_mount_source(E, rt, app, mt, err));
		if (fd < 0)
			return fd;
		b->rw[nrw++] = (SandboxBind){ .source = target,
					      .target = target,
					      .source_fd = fd,
					      .idmapped = mt->source != CONFIG_MOUNT_TMP &&
							  volume_idmapped(rt) };
	}
	b->spec.n_rw = nrw;
	b->spec.workdir = "/app";
	int r = (flags & APP_PROC_BUILD) ? build_environment(rt, app, &b->envp)
					 : app_environment(rt, app, &b->envp);
	if (r < 0)
		return r;
	b->spec.envp = b->envp;
	if (flags & APP_PROC_BUILD)
		b->spec.netns_fd = -1;
	CeilingLimits l;
	ceilings_application(rt->config, app, rt->preview, &l);
	b->spec.memory_max = l.memory_bytes;
	b->spec.cpu_millis = (flags & APP_PROC_BOOST) ? 0 : l.cpu_millis;
	b->spec.pids_max = l.pids;
	return 0;
}

/* A one-shot of the current operation on rt (whose op_lock the caller holds): killed at its
 * deadline, or when rt is destroyed, stopped or the daemon shuts down. */
static int run_oneshot_boosted(Environments *E, EnvRuntime *rt, ProcBuild *b, char **argv,
			       const char *stdin_data, uint64_t timeout_sec, uint64_t boost_until,
			       OneshotResult *res, BbxError *err)
{
	EnvOneshotOptions o;
	envproc_oneshot_options_init(&o);
	o.boost_until_ms = boost_until;
	o.stdin_data = stdin_data;
	o.stdin_len = stdin_data ? strlen(stdin_data) : 0;
	o.timeout_ms = timeout_sec * 1000;
	o.cancel_fd = rt->cancel_fd;
	b->spec.argv = argv;
	return E->backend->process_run(&b->spec, &o, res, err);
}

static int run_oneshot(Environments *E, EnvRuntime *rt, ProcBuild *b, char **argv,
		       const char *stdin_data, uint64_t timeout_sec, OneshotResult *res,
		       BbxError *err)
{
	return run_oneshot_boosted(E, rt, b, argv, stdin_data, timeout_sec, 0, res, err);
}

/* Append a one-shot's output to the environment's deploy log, so failures can be read. */
static void append_step_log(Environments *E, EnvRuntime *rt, const char *step,
			    const OneshotResult *res)
{
	char path[4096];
	snprintf(path, sizeof(path), "%s/logs/%s/deploy.log", E->state_dir, rt->name);
	_cleanup_close_ int fd =
		open(path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC | O_NOFOLLOW, 0600);
	if (fd < 0)
		return;
	char head[256];
	int n = snprintf(head, sizeof(head), "[branchbox] %s: exit %d, %llu ms\n", step,
			 res->exit_status, (unsigned long long)res->duration_ms);
	(void)write_all(fd, head, (size_t)n);
	if (res->output_len)
		(void)write_all(fd, res->output, res->output_len);
}

static uint64_t now_us(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000 + (uint64_t)ts.tv_nsec / 1000;
}

void stage_clock_start(StageClock *c, const char *op)
{
	c->start_us = c->last_us = now_us();
	int n = snprintf(c->line, sizeof(c->line), "[branchbox] stages %s:", op);
	c->len = n > 0 && (size_t)n < sizeof(c->line) ? (size_t)n : 0;
}

void stage_clock_mark(StageClock *c, const char *stage)
{
	uint64_t t = now_us();
	int n = snprintf(c->line + c->len, sizeof(c->line) - c->len, " %s=%.1f", stage,
			 (double)(t - c->last_us) / 1000.0);
	if (n > 0 && c->len + (size_t)n < sizeof(c->line))
		c->len += (size_t)n;
	c->last_us = t;
}

void stage_clock_write(Environments *E, const char *env, StageClock *c)
{
	char path[4096];
	int n = snprintf(c->line + c->len, sizeof(c->line) - c->len, " total=%.1f\n",
			 (double)(now_us() - c->start_us) / 1000.0);
	if (n <= 0 || c->len + (size_t)n >= sizeof(c->line))
		return;
	snprintf(path, sizeof(path), "%s/logs/%s/deploy.log", E->state_dir, env);
	_cleanup_close_ int fd =
		open(path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC | O_NOFOLLOW, 0600);
	if (fd >= 0)
		(void)write_all(fd, c->line, c->len + (size_t)n);
}

static int fail_with_output(BbxError *err, const char *what, const OneshotResult *res)
{
	const char *out = res->output ? res->output : "";
	size_t n = strlen(out);
	const char *tail = n > 600 ? out + n - 600 : out;
	if (res->timed_out)
		return bbx_error_set(err, -ETIMEDOUT, BBX_FAILED,
				     "%s timed out after %llu s; all its processes were killed%s%s",
				     what, (unsigned long long)(res->duration_ms / 1000),
				     *tail ? ":\n" : "", tail);
	return bbx_error_set(err, -EIO, BBX_FAILED, "%s failed with exit status %d%s%s", what,
			     res->exit_status, *tail ? ":\n" : "", tail);
}

int service_init(Environments *E, EnvRuntime *rt, size_t i, BbxError *err)
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
		return bbx_error_set(err, dir < 0 ? dir : -errno, BBX_INTERNAL,
				     "service %s: cannot create %s: %s", s->config->name,
				     s->data_host, strerror(dir < 0 ? -dir : errno));
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
			r = run_oneshot(E, rt, &b, cmd.argv, cmd.stdin_data, 300, &res, err);
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

int services_start(Environments *E, EnvRuntime *rt, bool cloned, BbxError *err)
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
			r = E->backend->process_start(&b.spec, &proc, err);
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

/*
 * Readiness and health polls back off from 5 ms to this: a probe is one local connection (no
 * process), so a short interval costs little, and with the earlier 100 ms cap every service
 * and app became ready 50 ms later than it was on average, on every create and start.
 */
#define READY_POLL_MAX_MS 20

/* Sleep ms, or less when rt is cancelled: then an error saying so. */
static int wait_or_cancel(EnvRuntime *rt, unsigned ms, BbxError *err)
{
	struct pollfd pfd = { .fd = rt->cancel_fd, .events = POLLIN };
	if (poll(&pfd, 1, (int)ms) > 0 && (pfd.revents & POLLIN))
		return bbx_error_set(err, -ECANCELED, BBX_CONFLICT,
				     "environment '%s' was stopped or destroyed meanwhile",
				     rt->name);
	return 0;
}

typedef enum WaitEnd {
	WAIT_READY,
	WAIT_PROC_FAILED, /* the process being waited for keeps exiting */
	WAIT_TIMED_OUT,
} WaitEnd;

/*
 * Call try_once until it returns anything but -EAGAIN (0: ready, another -errno: that error,
 * err set by it). Between tries, proc failing or the deadline passing ends the wait with
 * that WaitEnd, for the caller to say what did not come up; rt being cancelled ends it with
 * -ECANCELED. Pauses start at delay ms and double up to 100 ms.
 */
static int wait_until(EnvRuntime *rt, EnvProc *proc, uint64_t deadline, unsigned delay,
		      int (*try_once)(const void *what, int netns_fd, void *state, BbxError *err),
		      const void *what, void *state, BbxError *err)
{
	for (;;) {
		int r = try_once(what, rt->netns_fd, state, err);
		if (r != -EAGAIN)
			return r < 0 ? r : WAIT_READY;
		if (envproc_state(proc) == ENVPROC_FAILED)
			return WAIT_PROC_FAILED;
		if (now_monotonic_ms() > deadline)
			return WAIT_TIMED_OUT;
		r = wait_or_cancel(rt, delay, err);
		if (r < 0)
			return r;
		if (delay < READY_POLL_MAX_MS)
			delay *= 2;
	}
}

static int service_try(const void *what, int netns_fd, void *state, BbxError *err)
{
	const ServiceRuntime *s = what;
	return service_type_for(s->config->kind)->probe(s, netns_fd, err);
}

int services_wait_ready(EnvRuntime *rt, BbxError *err)
{
	uint64_t deadline = now_monotonic_ms() + SERVICE_READY_TIMEOUT_MS;
	for (size_t i = 0; i < rt->n_services; i++) {
		const ServiceRuntime *s = &rt->services[i];
		int r = wait_until(rt, rt->service_procs[i], deadline, 5, service_try, s, NULL,
				   err);
		if (r == WAIT_PROC_FAILED)
			return bbx_error_set(err, -EIO, BBX_FAILED,
					     "service %s failed to start (see 'branchbox env logs "
					     "%s %s')",
					     s->config->name, rt->name, s->config->name);
		if (r == WAIT_TIMED_OUT)
			return bbx_error_set(err, -ETIMEDOUT, BBX_FAILED,
					     "service %s did not accept connections within %d s",
					     s->config->name, SERVICE_READY_TIMEOUT_MS / 1000);
		if (r < 0)
			return r;
	}
	return 0;
}

/* Run a service one-shot (credentials, SQL) and return its result. */
int service_oneshot(Environments *E, EnvRuntime *rt, size_t i, ServiceCommand *cmd,
		    const char *what, uint64_t timeout, OneshotResult *res, BbxError *err)
{
	ProcBuild b;
	int r = pb_service(E, rt, i, &b, what, err);
	if (r >= 0)
		r = run_oneshot(E, rt, &b, cmd->argv, cmd->stdin_data, timeout, res, err);
	proc_build_done(&b);
	if (r >= 0)
		append_step_log(E, rt, what, res);
	return r;
}

int services_rotate_credentials(Environments *E, EnvRuntime *rt, BbxError *err)
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
			snprintf(what, sizeof(what), "%s-credentials",
				 rt->services[i].config->name);
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

int run_hook(Environments *E, EnvRuntime *rt, const ConfigApplication *app, const char *hook,
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
	r = pb_app(E, rt, app, rt->code_dir, &b, what,
		   build ? APP_PROC_CODE_WRITABLE | APP_PROC_BUILD : 0, err);
	if (r >= 0) {
		_cleanup_strv_free_ char **argv = strv_new("/bin/sh", "-e", "-c", script, NULL);
		/* A preview's deploy hook shares its applications' start-up boost (bring_up()). */
		uint64_t boost = !strcmp(hook, "deploy") ? rt->boost_until_ms : 0;
		r = argv ? run_oneshot_boosted(E, rt, &b, argv, NULL, core_hook_timeout(E->core),
					       boost, &res, err)
			 : -ENOMEM;
		if (r >= 0) {
			append_step_log(E, rt, what, &res);
			if (res.exit_status != 0) {
				char label[128];
				snprintf(label, sizeof(label), "hook %s of application %s", hook,
					 app->name);
				r = fail_with_output(err, label, &res);
			}
			oneshot_result_done(&res);
		}
	}
	proc_build_done(&b);
	return r;
}

int apps_start(Environments *E, EnvRuntime *rt, unsigned flags, BbxError *err)
{
	if (flags & APP_PROC_BOOST)
		rt->boost_until_ms = now_monotonic_ms() + APP_BOOST_WINDOW_MS;
	for (size_t i = 0; i < rt->config->n_applications; i++) {
		const ConfigApplication *app = &rt->config->applications[i];
		ProcBuild b;
		int r;

		if (!app->has_web || rt->app_procs[i])
			continue;
		r = pb_app(E, rt, app, rt->code_dir, &b, app->name, flags & APP_PROC_BOOST, err);
		if (r < 0) {
			proc_build_done(&b);
			bbx_error_prefix(err, "application %s: preparing its sandbox", app->name);
			return r;
		}
		_cleanup_strv_free_ char **argv = strv_new("/bin/sh", "-c", app->web_start, NULL);
		b.spec.argv = argv;
		EnvProc *proc = NULL;
		r = argv ? E->backend->process_start(&b.spec, &proc, err) : -ENOMEM;
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

/*
 * Give every started application its own CPU share (the profile's), ending the start-up boost
 * (APP_PROC_BOOST). A share that cannot be set fails the bring-up: an application must not
 * keep running above its profile.
 */
int apps_end_boost(EnvRuntime *rt, BbxError *err)
{
	if (!rt->boost_until_ms)
		return 0;
	for (size_t i = 0; i < rt->config->n_applications; i++) {
		const ConfigApplication *app = &rt->config->applications[i];
		CeilingLimits l;
		if (!rt->app_procs[i])
			continue;
		ceilings_application(rt->config, app, rt->preview, &l);
		int r = envproc_set_cpu(rt->app_procs[i], l.cpu_millis, err);
		if (r < 0 && r != -ESRCH) {
			bbx_error_prefix(err, "application %s: setting its CPU share", app->name);
			return r;
		}
	}
	rt->boost_until_ms = 0;
	return 0;
}

/* Take the applications out (under lock, as runtime_stop_processes() does) and end them. */
void apps_stop(EnvRuntime *rt)
{
	for (size_t i = 0; i < rt->config->n_applications; i++) {
		pthread_mutex_lock(&rt->lock);
		EnvProc *p = rt->app_procs[i];
		rt->app_procs[i] = NULL;
		pthread_mutex_unlock(&rt->lock);
		if (p) {
			envproc_stop(p, STOP_GRACE_MS);
			envproc_free(p);
		}
	}
	rt->boost_until_ms = 0;
}

typedef struct HealthTry {
	const Backend *backend;
	EnvRuntime *rt;
	int r;	    /* the last check's: >= 0 when the application answered */
	int status; /* its HTTP status then */
} HealthTry;

static int app_try(const void *what, int netns_fd, void *state, BbxError *err)
{
	const ConfigApplication *app = what;
	HealthTry *h = state;
	if (h->rt->boost_until_ms && now_monotonic_ms() > h->rt->boost_until_ms) {
		int r = apps_end_boost(h->rt, err);
		if (r < 0)
			return r;
	}
	h->r = h->backend->http_get(netns_fd, app->web_port, app->web_healthcheck, 5000, &h->status,
				    NULL, 0, NULL);
	return h->r >= 0 && h->status >= 200 && h->status < 400 ? 0 : -EAGAIN;
}

int apps_wait_healthy(Environments *E, EnvRuntime *rt, BbxError *err)
{
	uint64_t deadline = now_monotonic_ms() + APP_HEALTHY_TIMEOUT_MS;
	for (size_t i = 0; i < rt->config->n_applications; i++) {
		const ConfigApplication *app = &rt->config->applications[i];
		HealthTry h = { .backend = E->backend, .rt = rt };
		if (!app->has_web)
			continue;
		int r = wait_until(rt, rt->app_procs[i], deadline, 5, app_try, app, &h, err);
		if (r == WAIT_PROC_FAILED)
			return bbx_error_set(
				err, -EIO, BBX_FAILED,
				"application %s keeps exiting (see 'branchbox env logs "
				"%s %s')",
				app->name, rt->name, app->name);
		if (r == WAIT_TIMED_OUT && h.r >= 0)
			return bbx_error_set(err, -ETIMEDOUT, BBX_FAILED,
					     "application %s answered %s with HTTP %d, not healthy "
					     "within %d s",
					     app->name, app->web_healthcheck, h.status,
					     APP_HEALTHY_TIMEOUT_MS / 1000);
		if (r == WAIT_TIMED_OUT)
			return bbx_error_set(err, -ETIMEDOUT, BBX_FAILED,
					     "application %s did not answer on port %u within %d s "
					     "(see 'branchbox env logs %s %s')",
					     app->name, app->web_port,
					     APP_HEALTHY_TIMEOUT_MS / 1000, rt->name, app->name);
		if (r < 0)
			return r;
	}
	return 0;
}

/* A query against one of rt's SQL services, as its superuser, in the service's sandbox. */
int run_service_sql(Environments *E, EnvRuntime *rt, const char *service, const char *sql,
		    const char *what, uint64_t timeout, OneshotResult *res, BbxError *err)
{
	size_t idx = 0;
	const ServiceRuntime *s = runtime_service(rt, service, &idx);
	const ServiceType *t = s ? service_type_for(s->config->kind) : NULL;
	if (!s)
		return bbx_error_set(err, -ENOENT, BBX_INVALID,
				     "environment '%s' has no service '%s'", rt->name, service);
	if (!t || !t->sql_command)
		return bbx_error_set(err, -EINVAL, BBX_INVALID, "service %s takes no SQL", service);
	ServiceCommand cmd = { 0 };
	int r = t->sql_command(s, sql, &cmd, err);
	if (r >= 0)
		r = service_oneshot(E, rt, idx, &cmd, what, timeout, res, err);
	service_command_done(&cmd);
	return r;
}

/* ---- sanitize ---- */

/*
 * Production's sanitize steps, never the branch's (DESIGN.md 2a). A command step runs
 * production's code (the checkout of the commit production runs) against the preview's
 * services: nothing of the branch has run yet.
 */
int run_sanitize(Environments *E, EnvRuntime *rt, BbxError *err)
{
	const ProjectConfig *policy = rt->policy;
	if (!policy || !rt->policy_code_dir)
		return bbx_error_set(err, -EINVAL, BBX_INTERNAL,
				     "no production config to sanitize %s with", rt->name);
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
				return bbx_error_set(err, -EINVAL, BBX_FAILED,
						     "sanitize step %s: service %s takes no SQL",
						     step->name, step->service);
			ServiceCommand cmd = { 0 };
			r = t->sql_command(s, step->sql, &cmd, err);
			if (r >= 0)
				r = service_oneshot(E, rt, idx, &cmd, what, step->timeout_sec, &res,
						    err);
			service_command_done(&cmd);
		} else if (step->kind == CONFIG_STEP_COMMAND) {
			ProcBuild b;
			const ConfigApplication *app =
				policy->n_applications ? &policy->applications[0] : NULL;
			if (!app)
				return bbx_error_set(
					err, -EINVAL, BBX_FAILED,
					"sanitize step %s: no application to run it in",
					step->name);
			r = pb_app(E, rt, app, rt->policy_code_dir, &b, what, 0, err);
			if (r >= 0) {
				_cleanup_strv_free_ char **argv =
					strv_new("/bin/sh", "-e", "-c", step->command, NULL);
				r = argv ? run_oneshot(E, rt, &b, argv, NULL, step->timeout_sec,
						       &res, err)
					 : -ENOMEM;
				if (r >= 0)
					append_step_log(E, rt, what, &res);
			}
			proc_build_done(&b);
		} else
			return bbx_error_set(
				err, -EINVAL, BBX_FAILED,
				"sanitize step %s: only sql and command steps can sanitize",
				step->name);
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
