/* SPDX-License-Identifier: MIT */
/*
 * A sandbox's cgroups on v2 and on v1 hierarchies: made, limited, attached, frozen, killed
 * and removed (the walks over whole subtrees are sandbox-cgroup-tree.c).
 *
 * One file of about 800 lines: each operation has its v2 and v1 forms side by side, which is
 * what keeps them in step.
 */
#include "sandbox-cgroup.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <time.h>
#include <unistd.h>

#include "file-util.h"
#include "macro.h"
#include "parse.h"
#include "sandbox-cgroup-internal.h"
#include "strbuf.h"

#ifndef CGROUP2_SUPER_MAGIC
#define CGROUP2_SUPER_MAGIC 0x63677270
#endif

static const char *const v1_controllers[_SANDBOX_CG_MAX] = {
	[SANDBOX_CG_MEMORY] = "memory",	  [SANDBOX_CG_PIDS] = "pids",
	[SANDBOX_CG_CPU] = "cpu",	  [SANDBOX_CG_FREEZER] = "freezer",
	[SANDBOX_CG_CPUACCT] = "cpuacct",
};

/* The v1 hierarchies every cgroup has; the ones after them are optional. */
#define V1_REQUIRED (SANDBOX_CG_FREEZER + 1)

void sandbox_cgroup_closedirp(DIR **d)
{
	if (*d)
		closedir(*d);
}

static void nsleep(long ns)
{
	struct timespec ts = { .tv_sec = 0, .tv_nsec = ns };
	nanosleep(&ts, NULL);
}

static char *path_join(const char *a, const char *b)
{
	char *p = NULL;
	if (asprintf(&p, "%s/%s", a, b) < 0)
		return NULL;
	return p;
}

/*
 * Cgroup control files exist as soon as the directory does; O_CREAT is accepted by cgroupfs
 * for an existing file and lets unit tests run the same writes against a plain directory.
 */
static int cg_write(const char *dir, const char *file, const char *value)
{
	_cleanup_free_ char *p = path_join(dir, file);
	if (!p)
		return -ENOMEM;
	_cleanup_close_ int fd = open(p, O_WRONLY | O_CREAT | O_CLOEXEC | O_NOCTTY, 0644);
	if (fd < 0)
		return -errno;
	size_t n = strlen(value);
	ssize_t k = write(fd, value, n);
	if (k < 0)
		return -errno;
	return (size_t)k == n ? 0 : -EIO;
}

static bool file_exists(const char *dir, const char *file)
{
	_cleanup_free_ char *p = path_join(dir, file);
	return p && access(p, F_OK) == 0;
}

/* v1: cpuacct is a hierarchy of its own, not mounted with cpu (whose directory cpu_dir is). */
static bool v1_cpuacct_separate(const char *base, const char *cpu_dir)
{
	return file_exists(base, v1_controllers[SANDBOX_CG_CPUACCT]) &&
	       !file_exists(cpu_dir, "cpuacct.usage");
}

static bool controllers_have_all(const char *dir)
{
	_cleanup_free_ char *p = path_join(dir, "cgroup.controllers");
	_cleanup_free_ char *s = NULL;
	if (!p || read_full_file(p, 4096, &s, NULL) < 0)
		return false;
	static const char *const need[] = { "memory", "pids", "cpu" };
	for (size_t i = 0; i < ELEMENTSOF(need); i++) {
		bool found = false;
		size_t n = strlen(need[i]);
		for (const char *w = s; *w;) {
			size_t len = strcspn(w, " \n");
			if (len == n && !strncmp(w, need[i], n))
				found = true;
			w += len;
			w += strspn(w, " \n");
		}
		if (!found)
			return false;
	}
	return true;
}

int sandbox_cgroup_detect(const char *root, SandboxCgroupMode *ret_mode, char **ret_base)
{
	struct statfs sfs;
	bool is_v2 = false;

	if (statfs(root, &sfs) < 0)
		return -errno;
	if ((unsigned long)sfs.f_type == CGROUP2_SUPER_MAGIC ||
	    file_exists(root, "cgroup.controllers"))
		is_v2 = true;
	if (is_v2) {
		char *b = strdup(root);
		if (!b)
			return -ENOMEM;
		*ret_mode = SANDBOX_CGROUP_V2;
		*ret_base = b;
		return 0;
	}
	_cleanup_free_ char *unified = path_join(root, "unified");
	if (!unified)
		return -ENOMEM;
	if (controllers_have_all(unified)) {
		*ret_mode = SANDBOX_CGROUP_V2;
		*ret_base = TAKE_PTR(unified);
		return 0;
	}
	for (size_t i = 0; i < V1_REQUIRED; i++)
		if (!file_exists(root, v1_controllers[i]))
			return -EOPNOTSUPP;
	char *b = strdup(root);
	if (!b)
		return -ENOMEM;
	*ret_mode = SANDBOX_CGROUP_V1;
	*ret_base = b;
	return 0;
}

SandboxCgroup *sandbox_cgroup_free(SandboxCgroup *cg)
{
	if (!cg)
		return NULL;
	for (size_t i = 0; i < _SANDBOX_CG_MAX; i++)
		free(cg->dir[i]);
	free(cg);
	return NULL;
}

int sandbox_cgroup_name_check(const char *name)
{
	_cleanup_free_ char *copy = strdup(name);
	if (!copy)
		return -ENOMEM;
	char *save = NULL;
	size_t levels = 0;
	for (char *c = strtok_r(copy, "/", &save); c; c = strtok_r(NULL, "/", &save)) {
		if (!name_is_valid(c))
			return -EINVAL;
		levels++;
	}
	if (levels == 0 || levels > CG_MAX_LEVELS || name[0] == '/' ||
	    name[strlen(name) - 1] == '/' || strstr(name, "//"))
		return -EINVAL;
	return 0;
}

/* v2: make memory, pids and cpu available to the children of dir. */
static int v2_enable(const char *dir, BbxError *err)
{
	/*
	 * Enable only what this level offers: a hierarchy without a controller can still hold
	 * sandboxes without that limit (asking for the limit then fails when it is written).
	 * A missing cgroup.controllers only happens in unit tests' plain directory trees.
	 */
	_cleanup_free_ char *p = path_join(dir, "cgroup.controllers");
	_cleanup_free_ char *avail = NULL;
	if (!p)
		return -ENOMEM;
	char want[64] = "";
	if (read_full_file(p, 4096, &avail, NULL) < 0)
		snprintf(want, sizeof(want), "+memory +pids +cpu");
	else {
		static const char *const names[] = { "memory", "pids", "cpu" };
		for (size_t i = 0; i < ELEMENTSOF(names); i++) {
			size_t n = strlen(names[i]);
			for (const char *w = avail; *w;) {
				size_t len = strcspn(w, " \n");
				if (len == n && !strncmp(w, names[i], n)) {
					size_t used = strlen(want);
					snprintf(want + used, sizeof(want) - used, "%s+%s",
						 used ? " " : "", names[i]);
				}
				w += len;
				w += strspn(w, " \n");
			}
		}
	}
	if (!want[0])
		return 0;
	int r = cg_write(dir, "cgroup.subtree_control", want);
	if (r < 0)
		return bbx_error_set(err, r, BBX_SETUP, "cgroup: %s/cgroup.subtree_control: %s",
				     dir, strerror(-r));
	return 0;
}

/*
 * mkdir every level of rel below base; on v2 each level that gets children enables the
 * controllers for them. The last level must be new (-EEXIST otherwise) unless exist_ok.
 */
static int mkdir_levels(const char *base, const char *rel, bool v2, bool exist_ok, char **ret,
			BbxError *err)
{
	_cleanup_strbuf_ StrBuf sb = STRBUF_INIT;
	_cleanup_free_ char *copy = strdup(rel);
	if (!copy || strbuf_puts(&sb, base) < 0)
		return -ENOMEM;
	char *save = NULL;
	char *c = strtok_r(copy, "/", &save);
	while (c) {
		char *next = strtok_r(NULL, "/", &save);
		if (v2) {
			int r = v2_enable(strbuf_str(&sb), err);
			if (r < 0)
				return r;
		}
		if (strbuf_putc(&sb, '/') < 0 || strbuf_puts(&sb, c) < 0)
			return -ENOMEM;
		if (mkdir(strbuf_str(&sb), 0755) < 0) {
			if (errno != EEXIST || (!next && !exist_ok))
				return bbx_error_set(
					err, -errno, errno == EEXIST ? BBX_CONFLICT : BBX_SETUP,
					"cgroup: %s: %s", strbuf_str(&sb), strerror(errno));
		}
		c = next;
	}
	*ret = strbuf_detach(&sb);
	return *ret ? 0 : -ENOMEM;
}

static int write_limits(SandboxCgroup *cg, const SandboxCgroupLimits *l, BbxError *err)
{
	char buf[64];
	int r = 0;
	const char *dir = NULL, *file = NULL;

#define W(d, f, v)                                                                                 \
	do {                                                                                       \
		dir = (d);                                                                         \
		file = (f);                                                                        \
		r = cg_write(dir, file, (v));                                                      \
		if (r < 0)                                                                         \
			goto fail;                                                                 \
	} while (0)

	if (cg->mode == SANDBOX_CGROUP_V2) {
		const char *d = cg->dir[0];
		if (l->memory_max) {
			snprintf(buf, sizeof(buf), "%llu", (unsigned long long)l->memory_max);
			W(d, "memory.max", buf);
			/* Swap would let a balloon outgrow the limit; only set when swap exists. */
			if (file_exists(d, "memory.swap.max"))
				W(d, "memory.swap.max", "0");
		}
		if (l->pids_max) {
			snprintf(buf, sizeof(buf), "%llu", (unsigned long long)l->pids_max);
			W(d, "pids.max", buf);
		}
		if (l->cpu_millis) {
			snprintf(buf, sizeof(buf), "%llu 100000",
				 (unsigned long long)l->cpu_millis * 100);
			W(d, "cpu.max", buf);
		}
		return 0;
	}
	if (l->memory_max) {
		const char *d = cg->dir[SANDBOX_CG_MEMORY];
		bool memsw = file_exists(d, "memory.memsw.limit_in_bytes");
		snprintf(buf, sizeof(buf), "%llu", (unsigned long long)l->memory_max);
		/*
		 * memsw must be >= limit_in_bytes, so it is written second; raising the limit
		 * of an existing cgroup above its memsw is refused (EINVAL): memsw first then.
		 */
		dir = d;
		file = "memory.limit_in_bytes";
		r = cg_write(d, file, buf);
		if (r == -EINVAL && memsw) {
			W(d, "memory.memsw.limit_in_bytes", buf);
			W(d, "memory.limit_in_bytes", buf);
		} else if (r < 0)
			goto fail;
		if (memsw)
			W(d, "memory.memsw.limit_in_bytes", buf);
	}
	if (l->pids_max) {
		snprintf(buf, sizeof(buf), "%llu", (unsigned long long)l->pids_max);
		W(cg->dir[SANDBOX_CG_PIDS], "pids.max", buf);
	}
	if (l->cpu_millis) {
		W(cg->dir[SANDBOX_CG_CPU], "cpu.cfs_period_us", "100000");
		snprintf(buf, sizeof(buf), "%llu", (unsigned long long)l->cpu_millis * 100);
		W(cg->dir[SANDBOX_CG_CPU], "cpu.cfs_quota_us", buf);
	}
	return 0;
#undef W
fail:
	return bbx_error_set(err, r, BBX_SETUP, "cgroup limits: %s/%s: %s", dir, file,
			     strerror(-r));
}

/* The start of making or opening a cgroup: its name checked, root's hierarchy found. */
static int name_and_hierarchy(const char *root, const char *name, SandboxCgroupMode *ret_mode,
			      char **ret_base, BbxError *err)
{
	*ret_mode = SANDBOX_CGROUP_V2; /* defined on every path, for the analyzer's sake */
	int r = sandbox_cgroup_name_check(name);
	if (r < 0)
		return bbx_error_set(err, r, BBX_INVALID, "cgroup name '%s' is not valid", name);
	r = sandbox_cgroup_detect(root, ret_mode, ret_base);
	if (r < 0)
		return bbx_error_set(err, r, BBX_SETUP,
				     "cgroup: %s: no usable cgroup hierarchy: %s", root,
				     strerror(-r));
	return 0;
}

/*
 * A process's cgroup (made new; removed again when anything fails) or an environment's parent
 * (made when missing, its limits rewritten when it exists, left in place on failure: it may
 * hold children).
 */
static int cgroup_make(const char *root, const char *name, const SandboxCgroupLimits *limits,
		       bool parent, SandboxCgroup **ret, BbxError *err)
{
	_cleanup_(sandbox_cgroup_freep) SandboxCgroup *cg = NULL;
	_cleanup_free_ char *base = NULL;
	_cleanup_free_ char *rel = NULL;
	SandboxCgroupMode mode;
	int r;

	r = name_and_hierarchy(root, name, &mode, &base, err);
	if (r < 0)
		return r;
	if (asprintf(&rel, CG_PARENT "/%s", name) < 0)
		return -ENOMEM;
	cg = calloc(1, sizeof(*cg));
	if (!cg)
		return -ENOMEM;
	cg->mode = mode;
	if (mode == SANDBOX_CGROUP_V2) {
		r = mkdir_levels(base, rel, true, parent, &cg->dir[0], err);
		if (r < 0)
			return r;
		cg->n_dir = 1;
		/*
		 * A parent's children get the controllers. v2 allows that only while it holds no
		 * process itself, which is why a parent never gets one attached.
		 */
		if (parent && (r = v2_enable(cg->dir[0], err)) < 0)
			return r;
	} else
		for (size_t i = 0; i < _SANDBOX_CG_MAX; i++) {
			/* cpuacct only where it is a hierarchy of its own. */
			if (i >= V1_REQUIRED && !v1_cpuacct_separate(base, cg->dir[SANDBOX_CG_CPU]))
				break;
			_cleanup_free_ char *hier = path_join(base, v1_controllers[i]);
			if (!hier)
				return -ENOMEM;
			r = mkdir_levels(hier, rel, false, parent, &cg->dir[i], err);
			if (r < 0)
				goto fail;
			cg->n_dir = i + 1;
		}
	r = write_limits(cg, limits, err);
	if (r < 0)
		goto fail;
	*ret = TAKE_PTR(cg);
	return 0;
fail:
	if (!parent)
		sandbox_cgroup_remove(cg, NULL);
	return r;
}

int sandbox_cgroup_create(const char *root, const char *name, const SandboxCgroupLimits *limits,
			  SandboxCgroup **ret, BbxError *err)
{
	return cgroup_make(root, name, limits, false, ret, err);
}

int sandbox_cgroup_create_parent(const char *root, const char *name,
				 const SandboxCgroupLimits *limits, SandboxCgroup **ret,
				 BbxError *err)
{
	return cgroup_make(root, name, limits, true, ret, err);
}

int sandbox_cgroup_open(const char *root, const char *name, SandboxCgroup **ret, BbxError *err)
{
	_cleanup_(sandbox_cgroup_freep) SandboxCgroup *cg = NULL;
	_cleanup_free_ char *base = NULL;
	SandboxCgroupMode mode;
	int r = name_and_hierarchy(root, name, &mode, &base, err);
	if (r < 0)
		return r;
	cg = calloc(1, sizeof(*cg));
	if (!cg)
		return -ENOMEM;
	cg->mode = mode;
	size_t n = mode == SANDBOX_CGROUP_V2 ? 1 : _SANDBOX_CG_MAX;
	for (size_t i = 0; i < n; i++) {
		if (mode == SANDBOX_CGROUP_V2)
			r = asprintf(&cg->dir[i], "%s/" CG_PARENT "/%s", base, name);
		else
			r = asprintf(&cg->dir[i], "%s/%s/" CG_PARENT "/%s", base, v1_controllers[i],
				     name);
		if (r < 0) {
			cg->dir[i] = NULL;
			return -ENOMEM;
		}
		struct stat st;
		if (i >= V1_REQUIRED && stat(cg->dir[i], &st) < 0) {
			/* Optional, or made before this hierarchy was used. */
			cg->dir[i] = mfree(cg->dir[i]);
			break;
		}
		cg->n_dir = i + 1;
		if (stat(cg->dir[i], &st) < 0)
			return bbx_error_set(err, -errno,
					     errno == ENOENT ? BBX_NOT_FOUND : BBX_SETUP,
					     "cgroup: %s: %s", cg->dir[i], strerror(errno));
	}
	*ret = TAKE_PTR(cg);
	return 0;
}

int sandbox_cgroup_attach(const SandboxCgroup *cg, pid_t pid, BbxError *err)
{
	char buf[32];
	snprintf(buf, sizeof(buf), "%d", (int)pid);
	for (size_t i = 0; i < cg->n_dir; i++) {
		int r = cg_write(cg->dir[i], "cgroup.procs", buf);
		if (r < 0)
			return bbx_error_set(err, r, BBX_SETUP,
					     "cgroup attach: %s/cgroup.procs: %s", cg->dir[i],
					     strerror(-r));
	}
	return 0;
}

int sandbox_cgroup_open_tasks(const SandboxCgroup *cg, int fds[_SANDBOX_CG_MAX], BbxError *err)
{
	if (cg->mode != SANDBOX_CGROUP_V1)
		return -EOPNOTSUPP;
	for (size_t i = 0; i < cg->n_dir; i++) {
		_cleanup_free_ char *p = path_join(cg->dir[i], "tasks");
		/* O_CREAT: see cg_write(). */
		fds[i] = p ? open(p, O_WRONLY | O_CREAT | O_CLOEXEC | O_NOCTTY, 0644) : -1;
		if (fds[i] < 0) {
			int r = bbx_error_set(err, p ? -errno : -ENOMEM, BBX_SETUP,
					      "cgroup: %s/tasks: %s", cg->dir[i],
					      strerror(p ? errno : ENOMEM));
			for (size_t k = 0; k < i; k++)
				fds[k] = safe_close(fds[k]);
			return r;
		}
	}
	return 0;
}

static const char *freezer_dir(const SandboxCgroup *cg)
{
	return cg->mode == SANDBOX_CGROUP_V2 ? cg->dir[0] : cg->dir[SANDBOX_CG_FREEZER];
}

int sandbox_cgroup_set_cpu(const SandboxCgroup *cg, uint32_t cpu_millis, BbxError *err)
{
	char buf[64];
	const char *dir = cg->mode == SANDBOX_CGROUP_V2 ? cg->dir[0] : cg->dir[SANDBOX_CG_CPU];
	const char *file = cg->mode == SANDBOX_CGROUP_V2 ? "cpu.max" : "cpu.cfs_quota_us";
	int r;

	/* v2 "QUOTA PERIOD" or "max PERIOD"; v1 the quota alone, -1 for none. */
	if (cpu_millis)
		snprintf(buf, sizeof(buf), "%llu%s", (unsigned long long)cpu_millis * 100,
			 cg->mode == SANDBOX_CGROUP_V2 ? " 100000" : "");
	else
		snprintf(buf, sizeof(buf), "%s",
			 cg->mode == SANDBOX_CGROUP_V2 ? "max 100000" : "-1");
	r = cg->mode == SANDBOX_CGROUP_V2 ? 0 : cg_write(dir, "cpu.cfs_period_us", "100000");
	if (r >= 0)
		r = cg_write(dir, file, buf);
	if (r < 0)
		return bbx_error_set(err, r, BBX_SETUP, "cgroup cpu: %s/%s: %s", dir, file,
				     strerror(-r));
	return 0;
}

int sandbox_cgroup_freeze(const SandboxCgroup *cg, bool frozen, BbxError *err)
{
	const char *dir = freezer_dir(cg);
	const char *file = cg->mode == SANDBOX_CGROUP_V2 ? "cgroup.freeze" : "freezer.state";
	const char *value = cg->mode == SANDBOX_CGROUP_V2 ? (frozen ? "1" : "0")
							  : (frozen ? "FROZEN" : "THAWED");
	int r = cg_write(dir, file, value);
	if (r < 0)
		return bbx_error_set(err, r, BBX_SETUP, "cgroup freeze: %s/%s: %s", dir, file,
				     strerror(-r));
	if (!frozen || cg->mode == SANDBOX_CGROUP_V2)
		return 0;
	/* v1 freezing is asynchronous: FREEZING until every task stopped. */
	_cleanup_free_ char *p = path_join(dir, "freezer.state");
	if (!p)
		return -ENOMEM;
	for (int i = 0; i < 2000; i++) {
		_cleanup_free_ char *s = NULL;
		r = read_full_file(p, 64, &s, NULL);
		if (r < 0)
			return bbx_error_set(err, r, BBX_SETUP, "cgroup freeze: %s: %s", p,
					     strerror(-r));
		if (!strncmp(s, "FROZEN", 6))
			return 0;
		nsleep(1000 * 1000);
	}
	return bbx_error_set(err, -ETIMEDOUT, BBX_SETUP, "cgroup freeze: %s: still freezing", p);
}

/* Read the pids of cgroup.procs; returns how many were signalled, or -errno. */
static int kill_procs(const char *dir)
{
	_cleanup_free_ char *p = path_join(dir, "cgroup.procs");
	_cleanup_free_ char *s = NULL;
	if (!p)
		return -ENOMEM;
	int r = read_full_file(p, 1 << 20, &s, NULL);
	if (r < 0)
		return r;
	int n = 0;
	for (char *line = s; *line;) {
		char *end = strchr(line, '\n');
		if (end)
			*end = '\0';
		uint32_t pid;
		if (parse_uint32(line, &pid) >= 0 && pid > 1) {
			(void)kill((pid_t)pid, SIGKILL);
			n++;
		}
		if (!end)
			break;
		line = end + 1;
	}
	return n;
}

int sandbox_cgroup_kill(const SandboxCgroup *cg)
{
	if (cg->mode == SANDBOX_CGROUP_V2) {
		if (file_exists(cg->dir[0], "cgroup.kill"))
			return cg_write(cg->dir[0], "cgroup.kill", "1");
		int r = sandbox_cgroup_freeze(cg, true, NULL);
		for (int i = 0; i < 100 && kill_procs(cg->dir[0]) > 0; i++)
			;
		if (r >= 0)
			(void)sandbox_cgroup_freeze(cg, false, NULL);
		return 0;
	}
	/*
	 * v1 has no cgroup.kill: freeze so nothing forks between reading the list and the
	 * signal, kill every listed pid (SIGKILL is delivered to frozen tasks on thaw), thaw.
	 */
	int fr = sandbox_cgroup_freeze(cg, true, NULL);
	int r = 0;
	for (int i = 0; i < 100; i++) {
		r = kill_procs(cg->dir[SANDBOX_CG_FREEZER]);
		if (r <= 0)
			break;
		if (fr >= 0)
			break;
	}
	if (fr >= 0)
		(void)sandbox_cgroup_freeze(cg, false, NULL);
	return r < 0 ? r : 0;
}

bool sandbox_cgroup_is_empty(const SandboxCgroup *cg)
{
	for (size_t i = 0; i < cg->n_dir; i++) {
		_cleanup_free_ char *p = path_join(cg->dir[i], "cgroup.procs");
		_cleanup_free_ char *s = NULL;
		if (p && read_full_file(p, 1 << 20, &s, NULL) >= 0 && s[0])
			return false;
	}
	return true;
}

/*
 * Stale "sb-<pid>-<n>" names in scan_dir; each is removed from every directory in dirs[] (the
 * same name in each hierarchy). Returns how many names were removed at least somewhere.
 */
static int prune_dir(const char *scan_dir, char *const *dirs, size_t n_dirs)
{
	_cleanup_(sandbox_cgroup_closedirp) DIR *d = opendir(scan_dir);
	int n = 0;
	if (!d)
		return 0;
	struct dirent *de;
	while ((de = readdir(d))) {
		int pid;
		unsigned seq;
		char tail;
		/* Cheap test first: the parent holds many other cgroups (environments'). */
		if (de->d_name[0] != 's' || de->d_name[1] != 'b' || de->d_name[2] != '-' ||
		    de->d_type != DT_DIR ||
		    sscanf(de->d_name, "sb-%d-%u%c", &pid, &seq, &tail) != 2 || pid <= 0)
			continue;
		if (kill(pid, 0) == 0 || errno != ESRCH)
			continue;
		bool removed = false;
		for (size_t i = 0; i < n_dirs; i++) {
			_cleanup_free_ char *p = path_join(dirs[i], de->d_name);
			if (p && rmdir(p) == 0)
				removed = true;
		}
		n += removed;
	}
	return n;
}

int sandbox_cgroup_prune_stale(const char *root)
{
	SandboxCgroupMode mode;
	_cleanup_free_ char *base = NULL;
	char *dirs[_SANDBOX_CG_MAX] = { NULL };
	size_t n_dirs = 0;
	int n = 0;
	if (sandbox_cgroup_detect(root, &mode, &base) < 0)
		return 0;
	if (mode == SANDBOX_CGROUP_V2) {
		_cleanup_free_ char *p = path_join(base, CG_PARENT);
		return p ? prune_dir(p, &p, 1) : -ENOMEM;
	}
	for (size_t i = 0; i < _SANDBOX_CG_MAX; i++) {
		if (asprintf(&dirs[n_dirs], "%s/%s/" CG_PARENT, base, v1_controllers[i]) < 0) {
			n = -ENOMEM;
			goto out;
		}
		if (access(dirs[n_dirs], F_OK) == 0)
			n_dirs++;
		else
			dirs[n_dirs] = mfree(dirs[n_dirs]);
	}
	/*
	 * A cgroup is made in hierarchy order and removed in the same order, so what a killed
	 * owner leaves is a run that includes the first hierarchy (killed while making it) or
	 * the last (killed while removing it): reading those two directories finds every
	 * leftover; the others hold the same names. Each readdir is of every environment's
	 * cgroup too, so reading two instead of five matters.
	 */
	if (n_dirs > 0)
		n += prune_dir(dirs[0], dirs, n_dirs);
	if (n_dirs > 1) {
		int k = prune_dir(dirs[n_dirs - 1], dirs, n_dirs);
		n = k < 0 ? k : n + k;
	}
out:
	for (size_t i = 0; i < n_dirs; i++)
		free(dirs[i]);
	return n;
}

int sandbox_cgroup_remove(const SandboxCgroup *cg, BbxError *err)
{
	int ret = 0;
	for (size_t i = 0; i < cg->n_dir; i++) {
		int r = -EBUSY;
		/* Tasks killed a moment ago may still be exiting: retry for up to ~2 s. */
		for (int attempt = 0; attempt < 400; attempt++) {
			if (rmdir(cg->dir[i]) >= 0 || errno == ENOENT) {
				r = 0;
				break;
			}
			r = -errno;
			if (r != -EBUSY)
				break;
			if (attempt % 20 == 0)
				(void)sandbox_cgroup_kill(cg);
			nsleep(5 * 1000 * 1000);
		}
		if (r == -ENOTEMPTY || r == -ENOTDIR) {
			/* Not a cgroupfs (unit tests): the control files are ordinary files. */
			(void)rm_rf(cg->dir[i]);
			r = access(cg->dir[i], F_OK) < 0 ? 0 : r;
		}
		if (r < 0 && ret == 0)
			ret = bbx_error_set(err, r, BBX_SETUP, "cgroup remove: %s: %s", cg->dir[i],
					    strerror(-r));
	}
	return ret;
}

int sandbox_cgroup_remove_name(const char *root, const char *name, BbxError *err)
{
	_cleanup_(sandbox_cgroup_freep) SandboxCgroup *cg = NULL;
	_cleanup_free_ char *base = NULL;
	SandboxCgroupMode mode;
	int r = sandbox_cgroup_name_check(name);
	if (r < 0)
		return bbx_error_set(err, r, BBX_INVALID, "cgroup name '%s' is not valid", name);
	/* Absent, or in some hierarchies only: the rmdirs below find out. */
	if (sandbox_cgroup_open(root, name, &cg, NULL) >= 0)
		r = sandbox_cgroup_remove(cg, err);
	if (sandbox_cgroup_detect(root, &mode, &base) < 0)
		return r;
	size_t n = mode == SANDBOX_CGROUP_V2 ? 1 : _SANDBOX_CG_MAX;
	for (size_t i = 0; i < n; i++) {
		_cleanup_free_ char *p = NULL;
		if ((mode == SANDBOX_CGROUP_V2 ? asprintf(&p, "%s/" CG_PARENT "/%s", base, name)
					       : asprintf(&p, "%s/%s/" CG_PARENT "/%s", base,
							  v1_controllers[i], name)) < 0)
			return -ENOMEM;
		if (rmdir(p) < 0 && errno != ENOENT && r == 0)
			r = bbx_error_set(err, -errno, BBX_SETUP, "cgroup remove: %s: %s", p,
					  strerror(errno));
	}
	return r;
}

/* One number from a control file: the whole file, or the value after "key " on its line. */
static uint64_t read_counter(const char *dir, const char *file, const char *key)
{
	_cleanup_free_ char *p = dir ? path_join(dir, file) : NULL;
	_cleanup_free_ char *s = NULL;
	if (!p || read_full_file(p, 64 * 1024, &s, NULL) < 0)
		return UINT64_MAX;
	const char *v = s;
	if (key) {
		size_t n = strlen(key);
		v = NULL;
		for (const char *line = s; *line;) {
			if (!strncmp(line, key, n) && line[n] == ' ') {
				v = line + n + 1;
				break;
			}
			const char *nl = strchr(line, '\n');
			if (!nl)
				break;
			line = nl + 1;
		}
		if (!v)
			return UINT64_MAX;
	}
	char num[32];
	size_t len = strcspn(v, " \n");
	uint64_t value;
	if (len == 0 || len >= sizeof(num))
		return UINT64_MAX;
	memcpy(num, v, len);
	num[len] = '\0';
	return parse_uint64(num, &value) < 0 ? UINT64_MAX : value;
}

void sandbox_cgroup_usage(const SandboxCgroup *cg, SandboxCgroupUsage *ret)
{
	*ret = (SandboxCgroupUsage){ UINT64_MAX, UINT64_MAX, UINT64_MAX };
	if (cg->mode == SANDBOX_CGROUP_V2) {
		/* A removed child's usage stays counted in its parent's cpu.stat (checked on 6.x). */
		ret->cpu_usec = read_counter(cg->dir[0], "cpu.stat", "usage_usec");
		ret->memory_current = read_counter(cg->dir[0], "memory.current", NULL);
		ret->memory_peak = read_counter(cg->dir[0], "memory.peak", NULL);
		return;
	}
	/* cpuacct charges every ancestor as it goes, so removed children stay counted too. */
	uint64_t ns = read_counter(cg->dir[SANDBOX_CG_CPU], "cpuacct.usage", NULL);
	if (ns == UINT64_MAX && cg->n_dir > SANDBOX_CG_CPUACCT)
		ns = read_counter(cg->dir[SANDBOX_CG_CPUACCT], "cpuacct.usage", NULL);
	ret->cpu_usec = ns == UINT64_MAX ? UINT64_MAX : ns / 1000;
	ret->memory_current =
		read_counter(cg->dir[SANDBOX_CG_MEMORY], "memory.usage_in_bytes", NULL);
	ret->memory_peak =
		read_counter(cg->dir[SANDBOX_CG_MEMORY], "memory.max_usage_in_bytes", NULL);
}

/* Whether dir or any cgroup below it lists a process (> 0); with kill, SIGKILL every one
 * and return how many were signalled. */
static int procs_below(const char *dir, bool kill, unsigned depth)
{
	int n = 0;
	if (kill)
		n = kill_procs(dir);
	else {
		_cleanup_free_ char *p = path_join(dir, "cgroup.procs");
		_cleanup_free_ char *list = NULL;
		if (p && read_full_file(p, 1 << 20, &list, NULL) >= 0 && list[0])
			return 1;
	}
	if (n < 0)
		n = 0;
	if (depth >= 8)
		return n;
	_cleanup_(sandbox_cgroup_closedirp) DIR *d = opendir(dir);
	if (!d)
		return n;
	struct dirent *de;
	while ((de = readdir(d))) {
		if (de->d_type != DT_DIR || de->d_name[0] == '.')
			continue;
		_cleanup_free_ char *p = path_join(dir, de->d_name);
		if (p)
			n += procs_below(p, kill, depth + 1);
	}
	return n;
}

int sandbox_cgroup_kill_tree(const SandboxCgroup *cg)
{
	/* v2's cgroup.kill takes the whole subtree at once. */
	if (cg->mode == SANDBOX_CGROUP_V2 && file_exists(cg->dir[0], "cgroup.kill"))
		return cg_write(cg->dir[0], "cgroup.kill", "1");
	/* Frozen (a freezer freezes every level below too), nothing forks in between; the
	 * signals are delivered on thaw. */
	const char *dir = freezer_dir(cg);
	if (procs_below(dir, false, 0) == 0)
		return 0;
	int fr = sandbox_cgroup_freeze(cg, true, NULL);
	for (int i = 0; i < 100 && procs_below(dir, true, 0) > 0 && fr < 0; i++)
		;
	if (fr >= 0)
		(void)sandbox_cgroup_freeze(cg, false, NULL);
	return 0;
}
