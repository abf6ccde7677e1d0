/* SPDX-License-Identifier: MIT */
/*
 * Why this is one file of about 1,700 lines: the plan (parent, may allocate), the child (only
 * raw syscalls between clone and exec) and the parent's side after the clone all work on one
 * SandboxPlan laid out here. The seam is the child ("The child" below): it belongs in a file
 * of its own, sandbox-child.c behind a sandbox-plan.h, so that "no malloc, no stdio" can be
 * checked mechanically. That move waits for the sandbox start-time work now in flight in this
 * file, so the two do not conflict.
 */
#include "sandbox.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <linux/capability.h>
#include <linux/landlock.h>
#include <linux/openat2.h>
#include <linux/sched.h>
#include <linux/seccomp.h>
#include <net/if.h>
#include <poll.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/sysmacros.h>
#include <sys/wait.h>
#include <unistd.h>

#include "build-config.h"
#include "file-util.h"
#include "macro.h"
#include "parse.h"
#include "sandbox-cgroup.h"
#include "sandbox-init.h"
#include "sandbox-seccomp-bpf.h"
#include "sandbox-seccomp.h"
#include "sandbox-stages.h"
#include "strbuf.h"

#ifndef LANDLOCK_ACCESS_FS_TRUNCATE
#define LANDLOCK_ACCESS_FS_TRUNCATE (1ULL << 14)
#endif

/*
 * Where the new root is assembled. Each sandbox mounts its own tmpfs here inside its private
 * mount namespace, so one empty host directory serves every sandbox at once.
 */
#define SANDBOX_ROOT "/run/branchbox/root"
#define DEFAULT_PATH "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

/* Fixed fd numbers in the child after the fd shuffle (see child_setup_fds). */
enum {
	FD_SYNC = SANDBOX_FD_SYNC, /* read end: "go", then HUP when the owner is gone */
	FD_ERR = SANDBOX_FD_ERR,   /* write end: a SandboxChildError on failure; EOF on exec */
	FD_NETNS = 5,		   /* the netns to join, when given */
	FD_INIT = 6,		   /* a detached bind mount of the init binary */
	FD_USERNS = 7,		   /* the user namespace idmapped binds take their map from */
	FD_FIRST_FREE = 8,	   /* binds by fd take FD_FIRST_FREE + k, in plan order */
};

/* Binds given as open fds (SandboxBind.source_fd) in one sandbox. */
#define SANDBOX_MAX_FD_BINDS 32
/* From the child's start to its exec: mounts, Landlock, seccomp. Far more than it takes; past
 * it something in the kernel or a bind source hangs, and the spawn fails instead of hanging. */
#define SANDBOX_SETUP_TIMEOUT_MS (60 * 1000)

/*
 * Why a raw clone and only syscalls in the child: the daemon calls sandbox_spawn() from many
 * threads. After fork/clone in a multi-threaded process only async-signal-safe work is
 * allowed (another thread may have held the malloc or stdio lock at that instant, and
 * glibc's setuid/setgroups wrappers signal every thread glibc believes exists). So the
 * parent precomputes everything into a Plan (paths, file contents, the BPF program, the
 * argv/envp and PATH candidates) and the child only walks it with direct syscalls: no
 * malloc, no stdio, no glibc set*id wrappers, no fork() (its atfork handlers take locks).
 *
 * Why the child then execs branchbox-init (sandbox-init.c) instead of being pid 1 itself: a
 * clone shares nothing with the daemon but holds a copy of all of its memory (the token key,
 * the audit signing key, other environments' credentials). The exec, the last step after
 * Landlock and seccomp, replaces that copy with a small static program; the command is
 * forked from it. The parent clones the init binary into a detached mount (FD_INIT) that
 * the child attaches read-only at SANDBOX_INIT_TARGET in the new root, so no host path is
 * visible inside and Landlock's "execute beneath /" rule covers it.
 */

typedef enum OpKind {
	OP_MKDIR,    /* path, mode */
	OP_SYMLINK,  /* data -> path */
	OP_FILE,     /* write data to path */
	OP_MKNOD,    /* character device dev at path */
	OP_MOUNT,    /* mount(source, path, fstype, flags, data) */
	OP_BIND,     /* bind source onto rel (resolved inside the new root), ro or rw */
	OP_MASK,     /* hide path: /dev/null over a file, empty tmpfs (mode 000) over a dir */
	OP_READONLY, /* bind path onto itself read-only */
} OpKind;

typedef struct Op {
	OpKind kind;
	const char *step; /* name used in error messages */
	char *path;	  /* absolute host path below SANDBOX_ROOT */
	char *rel;	  /* path relative to the new root (OP_BIND) */
	char *source;
	const char *fstype;
	unsigned long flags;
	char *data;
	size_t data_len;
	mode_t mode;
	dev_t dev;
	bool readonly;
	bool idmapped; /* OP_BIND: through the user namespace at FD_USERNS */
	bool source_is_dir;
	bool optional;	  /* skip when the path does not exist */
	bool source_init; /* OP_BIND: the source is FD_INIT, source names it in errors */
	int source_fd;	  /* OP_BIND by fd: a detached tree (owned), -1 for a bind by path */
	int child_fd;	  /* where child_setup_fds puts source_fd in the child */
} Op;

typedef struct LandlockPath {
	char *path;
	uint64_t access;
} LandlockPath;

typedef struct Plan {
	Op *ops;
	size_t n_ops, alloc_ops;
	LandlockPath *ll;
	size_t n_ll, alloc_ll;
	char *hostname;
	char *workdir;
	char **argv;
	char **envp;
	char **exec_candidates; /* NULL-terminated */
	char **init_argv;	/* branchbox-init's argv; borrows argv and exec_candidates */
	int init_fd;		/* detached mount of the init binary; FD_INIT in the child */
	struct sock_filter *bpf;
	size_t bpf_len;
	uid_t uid;
	gid_t gid;
	int cap_last;
	bool new_netns;
	bool pdeathsig;
	int stdio[3];
	int netns_fd;
	size_t n_fd_binds;
	int userns_fd; /* owned; -EBADF when no bind is idmapped */
	/* v1: the cgroup's "tasks" files, the child moves itself (sandbox_cgroup_open_tasks) */
	int cg_tasks[_SANDBOX_CG_MAX];
	size_t n_cg_tasks;
	struct rlimit
		nofile; /* never above the owner's own hard limit (raising needs a capability) */
	bool set_oom_score_adj;
	int oom_score_adj;
} Plan;

struct Sandbox {
	pid_t pid;
	int pidfd;
	int sync_fd; /* write end; closing it tells init its owner is gone */
	SandboxCgroup *cgroup;
	pthread_mutex_t lock; /* guards reaped/status and the cgroup removal */
	bool reaped;
	int status;
};

static atomic_uint spawn_counter;

void sandbox_spec_init(SandboxSpec *spec)
{
	*spec = (SandboxSpec){
		.netns_fd = -1,
		.stdin_fd = -1,
		.stdout_fd = -1,
		.stderr_fd = -1,
	};
}

/* ---- Plan building (parent, may allocate) ---- */

static void plan_done(Plan *p)
{
	for (size_t i = 0; i < p->n_ops; i++) {
		if (p->ops[i].kind == OP_BIND && p->ops[i].source_fd >= 0)
			close(p->ops[i].source_fd);
		free(p->ops[i].path);
		free(p->ops[i].rel);
		free(p->ops[i].source);
		free(p->ops[i].data);
	}
	free(p->ops);
	for (size_t i = 0; i < p->n_ll; i++)
		free(p->ll[i].path);
	free(p->ll);
	free(p->hostname);
	free(p->workdir);
	strv_free(p->argv);
	strv_free(p->envp);
	strv_free(p->exec_candidates);
	free(p->init_argv);
	safe_close(p->init_fd);
	free(p->bpf);
	p->userns_fd = safe_close(p->userns_fd);
	for (size_t i = 0; i < p->n_cg_tasks; i++)
		p->cg_tasks[i] = safe_close(p->cg_tasks[i]);
}

static Op *plan_add(Plan *p, OpKind kind, const char *step, const char *inside)
{
	if (p->n_ops == p->alloc_ops) {
		size_t n = p->alloc_ops ? p->alloc_ops * 2 : 64;
		Op *o = realloc(p->ops, n * sizeof(*o));
		if (!o)
			return NULL;
		p->ops = o;
		p->alloc_ops = n;
	}
	Op *op = &p->ops[p->n_ops];
	*op = (Op){ .kind = kind, .step = step, .source_fd = -1, .child_fd = -1 };
	if (asprintf(&op->path, SANDBOX_ROOT "%s", inside) < 0) {
		op->path = NULL;
		return NULL;
	}
	op->rel = strdup(inside[0] == '/' && inside[1] ? inside + 1 : ".");
	if (!op->rel) {
		free(op->path);
		return NULL;
	}
	p->n_ops++;
	return op;
}

static int plan_mkdir(Plan *p, const char *inside, mode_t mode)
{
	Op *op = plan_add(p, OP_MKDIR, "mkdir", inside);
	if (!op)
		return -ENOMEM;
	op->mode = mode;
	return 0;
}

static int plan_mount(Plan *p, const char *step, const char *source, const char *inside,
		      const char *fstype, unsigned long flags, const char *data)
{
	Op *op = plan_add(p, OP_MOUNT, step, inside);
	if (!op)
		return -ENOMEM;
	op->source = strdup(source);
	op->fstype = fstype;
	op->flags = flags;
	op->data = data ? strdup(data) : NULL;
	if (!op->source || (data && !op->data))
		return -ENOMEM;
	return 0;
}

static int plan_file(Plan *p, const char *inside, char *content /* takes */)
{
	if (!content)
		return -ENOMEM;
	Op *op = plan_add(p, OP_FILE, "write", inside);
	if (!op) {
		free(content);
		return -ENOMEM;
	}
	op->data = content;
	op->data_len = strlen(content);
	op->mode = 0644;
	return 0;
}

/* source_fd >= 0: bind what that fd refers to (source only names it in messages). */
static int plan_bind(Plan *p, const char *source, int source_fd, const char *inside, bool readonly,
		     bool optional, BbxError *err)
{
	struct stat st;
	if ((source_fd >= 0 ? fstat(source_fd, &st) : stat(source, &st)) < 0) {
		if (optional && errno == ENOENT)
			return 0;
		return bbx_error_set(err, -errno, BBX_SETUP, "bind: %s: %s", source,
				     strerror(errno));
	}
	if (source_fd >= 0 && p->n_fd_binds >= SANDBOX_MAX_FD_BINDS)
		return bbx_error_set(err, -E2BIG, BBX_INVALID, "bind: %s: more than %d binds by fd",
				     source, SANDBOX_MAX_FD_BINDS);
	Op *op = plan_add(p, OP_BIND, "bind", inside);
	if (!op)
		return -ENOMEM;
	op->source = strdup(source);
	if (!op->source)
		return -ENOMEM;
	op->readonly = readonly;
	op->source_is_dir = S_ISDIR(st.st_mode);
	op->source_fd = -1;
	op->child_fd = -1;
	if (source_fd >= 0) {
		/*
		 * A detached copy of the mount, made here: the child lives in a new mount
		 * namespace, where the caller's fd is not a mount it may clone, but a detached
		 * tree can be attached anywhere (once: one per spawn).
		 */
		op->source_fd = (int)syscall(SYS_open_tree, source_fd, "",
					     OPEN_TREE_CLONE | OPEN_TREE_CLOEXEC | AT_RECURSIVE |
						     AT_EMPTY_PATH);
		if (op->source_fd < 0)
			return bbx_error_set(err, -errno, BBX_SETUP, "bind: open_tree: %s: %s",
					     source, strerror(errno));
		op->child_fd = FD_FIRST_FREE + (int)p->n_fd_binds++;
	}
	return 0;
}

static int plan_landlock(Plan *p, const char *path, uint64_t access)
{
	if (p->n_ll == p->alloc_ll) {
		size_t n = p->alloc_ll ? p->alloc_ll * 2 : 16;
		LandlockPath *l = realloc(p->ll, n * sizeof(*l));
		if (!l)
			return -ENOMEM;
		p->ll = l;
		p->alloc_ll = n;
	}
	p->ll[p->n_ll].path = strdup(path);
	if (!p->ll[p->n_ll].path)
		return -ENOMEM;
	p->ll[p->n_ll].access = access;
	p->n_ll++;
	return 0;
}

static char *strdupf(const char *fmt, ...) _printf_(1, 2);
static char *strdupf(const char *fmt, ...)
{
	va_list ap;
	char *s = NULL;
	va_start(ap, fmt);
	if (vasprintf(&s, fmt, ap) < 0)
		s = NULL;
	va_end(ap);
	return s;
}

static char **strv_copy(char *const *l)
{
	size_t n = 0;
	while (l && l[n])
		n++;
	char **c = calloc(n + 1, sizeof(char *));
	if (!c)
		return NULL;
	for (size_t i = 0; i < n; i++) {
		c[i] = strdup(l[i]);
		if (!c[i]) {
			strv_free(c);
			return NULL;
		}
	}
	return c;
}

/* Host top-level entries the sandbox sees read-only: symlinks are recreated as symlinks. */
static int plan_host_dirs(Plan *p, BbxError *err)
{
	static const char *const dirs[] = { "/usr",   "/bin",	"/sbin",  "/lib",
					    "/lib32", "/lib64", "/libx32" };
	for (size_t i = 0; i < ELEMENTSOF(dirs); i++) {
		struct stat st;
		if (lstat(dirs[i], &st) < 0)
			continue;
		if (S_ISLNK(st.st_mode)) {
			char target[4096];
			ssize_t n = readlink(dirs[i], target, sizeof(target) - 1);
			if (n < 0)
				return bbx_error_set(err, -errno, BBX_SETUP, "readlink: %s: %s",
						     dirs[i], strerror(errno));
			target[n] = '\0';
			Op *op = plan_add(p, OP_SYMLINK, "symlink", dirs[i]);
			if (!op || !(op->data = strdup(target)))
				return -ENOMEM;
		} else if (S_ISDIR(st.st_mode)) {
			int r = plan_bind(p, dirs[i], -1, dirs[i], true, false, err);
			if (r < 0)
				return r;
		}
	}
	return 0;
}

static int plan_etc(Plan *p, const SandboxSpec *spec, BbxError *err)
{
	const char *user = p->uid == 65534 ? "nobody" : "sandbox";
	const char *group = p->gid == 65534 ? "nogroup" : "sandbox";
	int r;

	r = plan_mkdir(p, "/etc", 0755);
	if (r < 0)
		return r;
	r = plan_file(p, "/etc/passwd",
		      strdupf("root:x:0:0:root:/root:/usr/sbin/nologin\n"
			      "%s:x:%u:%u:%s:/tmp:/bin/sh\n",
			      user, (unsigned)p->uid, (unsigned)p->gid, user));
	if (r >= 0)
		r = plan_file(p, "/etc/group",
			      strdupf("root:x:0:\n%s:x:%u:\n", group, (unsigned)p->gid));
	if (r >= 0)
		r = plan_file(
			p, "/etc/hosts",
			strdupf("127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost "
				"ip6-loopback\n127.0.1.1\t%s\n%s%s",
				p->hostname, spec->hosts_extra ? spec->hosts_extra : "",
				spec->hosts_extra && spec->hosts_extra[0] &&
						spec->hosts_extra[strlen(spec->hosts_extra) - 1] !=
							'\n'
					? "\n"
					: ""));
	if (r >= 0)
		r = plan_file(p, "/etc/hostname", strdupf("%s\n", p->hostname));
	if (r >= 0)
		r = plan_file(p, "/etc/resolv.conf", strdup(""));
	if (r >= 0)
		r = plan_file(p, "/etc/nsswitch.conf",
			      strdup("passwd: files\ngroup: files\nshadow: files\n"
				     "hosts: files dns\nnetworks: files\nprotocols: files\n"
				     "services: files\nethers: files\nrpc: files\n"));
	if (r < 0)
		return r;
	/*
	 * Public, secret-free host files that programs need: the dynamic linker's cache (without
	 * it every exec searches the library path), Debian's alternatives symlinks (awk, editor,
	 * ...), TLS trust anchors for clients that go through the egress proxy, and the
	 * protocol/service tables used by getservbyname.
	 */
	r = plan_bind(p, "/etc/ld.so.cache", -1, "/etc/ld.so.cache", true, true, err);
	if (r >= 0)
		r = plan_bind(p, "/etc/alternatives", -1, "/etc/alternatives", true, true, err);
	if (r >= 0 && access("/etc/ssl/certs", F_OK) == 0) {
		r = plan_mkdir(p, "/etc/ssl", 0755);
		if (r >= 0)
			r = plan_bind(p, "/etc/ssl/certs", -1, "/etc/ssl/certs", true, true, err);
	}
	if (r >= 0)
		r = plan_bind(p, "/etc/services", -1, "/etc/services", true, true, err);
	if (r >= 0)
		r = plan_bind(p, "/etc/protocols", -1, "/etc/protocols", true, true, err);
	return r;
}

/* OCI runtime-spec defaults (runc/crun), plus a few newer entries. */
static const char *const masked_paths[] = {
	"/proc/acpi",
	"/proc/asound",
	"/proc/kcore",
	"/proc/keys",
	"/proc/latency_stats",
	"/proc/timer_list",
	"/proc/timer_stats",
	"/proc/sched_debug",
	"/proc/scsi",
	"/sys/firmware",
	"/sys/devices/virtual/powercap",
};
static const char *const readonly_paths[] = {
	"/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys", "/proc/sysrq-trigger",
};

static int plan_proc_sys_dev_tmp(Plan *p, uint64_t tmp_size)
{
	char opts[128];
	int r;

	r = plan_mkdir(p, "/proc", 0555);
	if (r >= 0)
		r = plan_mount(p, "mount proc", "proc", "/proc", "proc",
			       MS_NOSUID | MS_NODEV | MS_NOEXEC, NULL);
	if (r >= 0)
		r = plan_mkdir(p, "/sys", 0555);
	/* A fresh sysfs of the sandbox's own netns, read-only; sensitive parts masked below. */
	if (r >= 0)
		r = plan_mount(p, "mount sysfs", "sysfs", "/sys", "sysfs",
			       MS_RDONLY | MS_NOSUID | MS_NODEV | MS_NOEXEC, NULL);
	for (size_t i = 0; r >= 0 && i < ELEMENTSOF(masked_paths); i++) {
		Op *op = plan_add(p, OP_MASK, "mask", masked_paths[i]);
		if (!op)
			return -ENOMEM;
		op->optional = true;
	}
	for (size_t i = 0; r >= 0 && i < ELEMENTSOF(readonly_paths); i++) {
		Op *op = plan_add(p, OP_READONLY, "read-only", readonly_paths[i]);
		if (!op)
			return -ENOMEM;
		op->optional = true;
	}
	if (r < 0)
		return r;

	/* /dev: a small tmpfs with the usual character devices made directly (cheaper than binds).
	 */
	r = plan_mkdir(p, "/dev", 0755);
	if (r >= 0)
		r = plan_mount(p, "mount /dev", "tmpfs", "/dev", "tmpfs", MS_NOSUID | MS_NOEXEC,
			       "mode=0755,size=64k,nr_inodes=64");
	static const struct {
		const char *name;
		unsigned major, minor;
	} nodes[] = {
		{ "/dev/null", 1, 3 },	 { "/dev/zero", 1, 5 },	   { "/dev/full", 1, 7 },
		{ "/dev/random", 1, 8 }, { "/dev/urandom", 1, 9 }, { "/dev/tty", 5, 0 },
	};
	for (size_t i = 0; r >= 0 && i < ELEMENTSOF(nodes); i++) {
		Op *op = plan_add(p, OP_MKNOD, "mknod", nodes[i].name);
		if (!op)
			return -ENOMEM;
		op->mode = S_IFCHR | 0666;
		op->dev = makedev(nodes[i].major, nodes[i].minor);
	}
	static const struct {
		const char *link, *target;
	} links[] = {
		{ "/dev/fd", "/proc/self/fd" },	      { "/dev/stdin", "/proc/self/fd/0" },
		{ "/dev/stdout", "/proc/self/fd/1" }, { "/dev/stderr", "/proc/self/fd/2" },
		{ "/dev/ptmx", "pts/ptmx" },
	};
	for (size_t i = 0; r >= 0 && i < ELEMENTSOF(links); i++) {
		Op *op = plan_add(p, OP_SYMLINK, "symlink", links[i].link);
		if (!op || !(op->data = strdup(links[i].target)))
			return -ENOMEM;
	}
	if (r >= 0)
		r = plan_mkdir(p, "/dev/pts", 0755);
	if (r >= 0)
		r = plan_mount(p, "mount devpts", "devpts", "/dev/pts", "devpts",
			       MS_NOSUID | MS_NOEXEC, "newinstance,ptmxmode=0666,mode=0620");
	snprintf(opts, sizeof(opts), "mode=1777,size=%llu", (unsigned long long)tmp_size);
	if (r >= 0)
		r = plan_mkdir(p, "/dev/shm", 01777);
	if (r >= 0)
		r = plan_mount(p, "mount /dev/shm", "tmpfs", "/dev/shm", "tmpfs",
			       MS_NOSUID | MS_NODEV, opts);
	if (r >= 0)
		r = plan_mkdir(p, "/tmp", 01777);
	if (r >= 0)
		r = plan_mount(p, "mount /tmp", "tmpfs", "/tmp", "tmpfs", MS_NOSUID | MS_NODEV,
			       opts);
	return r;
}

typedef struct UserBind {
	const SandboxBind *bind;
	bool readonly;
} UserBind;

static int user_bind_cmp(const void *a, const void *b)
{
	const UserBind *x = a, *y = b;
	return strcmp(x->bind->target, y->bind->target);
}

static bool path_is_clean(const char *p)
{
	if (!p || p[0] != '/' || strlen(p) >= 400)
		return false;
	for (const char *c = p; *c; c++) {
		if (*c == ':' || *c == '\n')
			return false;
		if (c[0] == '/' && (c[1] == '/'))
			return false;
		if (c[0] == '/' && c[1] == '.' && (c[2] == '/' || c[2] == '\0'))
			return false;
		if (c[0] == '/' && c[1] == '.' && c[2] == '.' && (c[3] == '/' || c[3] == '\0'))
			return false;
	}
	return true;
}

static const char *const reserved_targets[] = { "/", "/proc", "/sys", "/dev", SANDBOX_INIT_TARGET };

static int plan_user_binds(Plan *p, const SandboxSpec *spec, BbxError *err)
{
	size_t n = spec->n_rw + spec->n_ro;
	if (n == 0)
		return 0;
	_cleanup_free_ UserBind *all = calloc(n, sizeof(UserBind));
	if (!all)
		return -ENOMEM;
	for (size_t i = 0; i < spec->n_ro; i++)
		all[i] = (UserBind){ &spec->ro[i], true };
	for (size_t i = 0; i < spec->n_rw; i++)
		all[spec->n_ro + i] = (UserBind){ &spec->rw[i], false };
	/* Sorted by target, so a bind nested in another one is mounted after its parent. */
	qsort(all, n, sizeof(UserBind), user_bind_cmp);
	for (size_t i = 0; i < n; i++) {
		const SandboxBind *b = all[i].bind;
		bool by_fd = b->source_fd > 0;
		if ((!by_fd && !path_is_clean(b->source)) || !path_is_clean(b->target))
			return bbx_error_set(err, -EINVAL, BBX_INVALID,
					     "bind: %s:%s: paths must be absolute and clean",
					     b->source ? b->source : "(null)",
					     b->target ? b->target : "(null)");
		for (size_t k = 0; k < ELEMENTSOF(reserved_targets); k++) {
			size_t len = strlen(reserved_targets[k]);
			if (!strcmp(b->target, reserved_targets[k]) ||
			    (len > 1 && !strncmp(b->target, reserved_targets[k], len) &&
			     b->target[len] == '/' && strcmp(reserved_targets[k], "/dev")))
				return bbx_error_set(err, -EINVAL, BBX_INVALID,
						     "bind: %s: target is reserved", b->target);
		}
		if (b->idmapped && spec->n_idmap == 0)
			return bbx_error_set(err, -EINVAL, BBX_INVALID,
					     "bind: %s: idmapped, but the spec has no idmap",
					     b->source ? b->source : "(fd)");
		int r = plan_bind(p, b->source ? b->source : "(fd)", by_fd ? b->source_fd : -1,
				  b->target, all[i].readonly, false, err);
		if (r < 0)
			return r;
		/* plan_bind added exactly one op: user binds are never optional. */
		p->ops[p->n_ops - 1].idmapped = b->idmapped;
		if (!all[i].readonly) {
			r = plan_landlock(p, b->target, UINT64_MAX);
			if (r < 0)
				return r;
		}
	}
	return 0;
}

/*
 * The user namespace idmapped binds take their mapping from. It only carries the map: a
 * child that does nothing but pause (only syscalls, see the top of this file) is cloned into
 * a new user namespace, its uid and gid maps are written from here, and the namespace is
 * kept as an fd before the child is killed. Nothing ever runs inside it.
 */
static int plan_userns(Plan *p, const SandboxSpec *spec, BbxError *err)
{
	char map[SANDBOX_IDMAP_MAX * 24 + 1];
	size_t len = 0;

	if (spec->n_idmap == 0 || spec->n_idmap > SANDBOX_IDMAP_MAX)
		return bbx_error_set(err, -EINVAL, BBX_INVALID, "idmap: %zu entries, want 1 to %d",
				     spec->n_idmap, SANDBOX_IDMAP_MAX);
	for (size_t i = 0; i < spec->n_idmap; i++) {
		const SandboxIdmap *m = &spec->idmap[i];
		/* Root is never translated, and -1 means "no change" to chown. */
		if (m->stored_id == 0 || m->id == 0 || m->stored_id == UINT32_MAX ||
		    m->id == UINT32_MAX)
			return bbx_error_set(err, -EINVAL, BBX_INVALID,
					     "idmap: %u -> %u: not mappable", m->stored_id, m->id);
		for (size_t k = 0; k < i; k++)
			if (spec->idmap[k].stored_id == m->stored_id || spec->idmap[k].id == m->id)
				return bbx_error_set(err, -EINVAL, BBX_INVALID,
						     "idmap: %u -> %u: overlaps %u -> %u",
						     m->stored_id, m->id, spec->idmap[k].stored_id,
						     spec->idmap[k].id);
		len += (size_t)snprintf(map + len, sizeof(map) - len, "%u %u 1\n", m->stored_id,
					m->id);
	}

	pid_t pid = (pid_t)syscall(SYS_clone, CLONE_NEWUSER | SIGCHLD, NULL, NULL, NULL, NULL);
	if (pid == 0) {
		(void)prctl(PR_SET_PDEATHSIG, SIGKILL, 0, 0, 0);
		for (;;)
			pause();
	}
	if (pid < 0)
		return bbx_error_set(err, -errno, BBX_SETUP, "idmap: clone: user namespace: %s",
				     strerror(errno));
	int r = 0;
	static const char *const files[] = { "uid_map", "gid_map" };
	char path[64];
	for (size_t i = 0; r >= 0 && i < ELEMENTSOF(files); i++) {
		snprintf(path, sizeof(path), "/proc/%d/%s", (int)pid, files[i]);
		_cleanup_close_ int fd = open(path, O_WRONLY | O_CLOEXEC);
		/* The kernel takes a map in one write only. */
		ssize_t k = fd < 0 ? -1 : write(fd, map, len);
		if (k != (ssize_t)len) {
			int e = k < 0 ? errno : EIO;
			r = bbx_error_set(err, -e, BBX_SETUP, "idmap: %s: %s", path, strerror(e));
		}
	}
	if (r >= 0) {
		snprintf(path, sizeof(path), "/proc/%d/ns/user", (int)pid);
		p->userns_fd = open(path, O_RDONLY | O_CLOEXEC);
		if (p->userns_fd < 0)
			r = bbx_error_set(err, -errno, BBX_SETUP, "idmap: %s: %s", path,
					  strerror(errno));
	}
	(void)kill(pid, SIGKILL);
	(void)RETRY_EINTR(waitpid(pid, NULL, 0));
	return r;
}

static int plan_exec(Plan *p, const SandboxSpec *spec, BbxError *err)
{
	if (!spec->argv || !spec->argv[0] || !spec->argv[0][0])
		return bbx_error_set(err, -EINVAL, BBX_INVALID, "no command given");
	p->argv = strv_copy(spec->argv);
	if (!p->argv)
		return -ENOMEM;
	if (spec->env)
		p->envp = strv_copy(spec->env);
	else {
		char *const defaults[] = { "PATH=" DEFAULT_PATH, "HOME=/tmp", NULL };
		p->envp = strv_copy(defaults);
	}
	if (!p->envp)
		return -ENOMEM;

	const char *cmd = spec->argv[0];
	if (strchr(cmd, '/')) {
		char *const one[] = { (char *)cmd, NULL };
		p->exec_candidates = strv_copy(one);
		return p->exec_candidates ? 0 : -ENOMEM;
	}
	/* execvp semantics, resolved in the parent from the sandbox's PATH. */
	const char *path = DEFAULT_PATH;
	for (char **e = p->envp; *e; e++)
		if (!strncmp(*e, "PATH=", 5))
			path = *e + 5;
	size_t n = 1;
	for (const char *c = path; *c; c++)
		n += *c == ':';
	p->exec_candidates = calloc(n + 1, sizeof(char *));
	if (!p->exec_candidates)
		return -ENOMEM;
	size_t k = 0;
	for (const char *c = path;;) {
		size_t len = strcspn(c, ":");
		if (len > 0 && c[0] == '/') {
			p->exec_candidates[k] = strdupf("%.*s/%s", (int)len, c, cmd);
			if (!p->exec_candidates[k++])
				return -ENOMEM;
		}
		if (!c[len])
			break;
		c += len + 1;
	}
	if (k == 0)
		return bbx_error_set(err, -ENOENT, BBX_NOT_FOUND, "exec: %s: %s", cmd,
				     strerror(ENOENT));
	return 0;
}

static int read_cap_last(void)
{
	_cleanup_free_ char *s = NULL;
	uint32_t v;
	if (read_full_file("/proc/sys/kernel/cap_last_cap", 64, &s, NULL) < 0)
		return 63;
	s[strcspn(s, "\n")] = '\0';
	if (parse_uint32(s, &v) < 0 || v > 63)
		return 63;
	return (int)v;
}

/*
 * The filter is the same for every sandbox and was compiled from sandbox-seccomp.c with
 * libseccomp at build time (sandbox-seccomp-bpf.h): building it here cost ~1.3 ms per spawn.
 */
static int plan_seccomp(Plan *p)
{
	p->bpf = malloc(sizeof(sandbox_seccomp_prebuilt));
	if (!p->bpf)
		return -ENOMEM;
	memcpy(p->bpf, sandbox_seccomp_prebuilt, sizeof(sandbox_seccomp_prebuilt));
	p->bpf_len = ELEMENTSOF(sandbox_seccomp_prebuilt);
	return 0;
}

/*
 * The init binary that becomes the sandbox's pid 1. A binary inside this build tree uses the
 * init built next to it, so tests and a development daemon never pick up an installed one of
 * another version; anything else uses the installed one (libexecdir).
 */
static int sandbox_init_path(char **ret)
{
	char exe[PATH_MAX];
	ssize_t n = readlink("/proc/self/exe", exe, sizeof(exe) - 1);
	if (n < 0)
		return -errno;
	exe[n] = '\0';
	_cleanup_free_ char *build_root = realpath(BRANCHBOX_BUILD_ROOT, NULL);
	size_t len = build_root ? strlen(build_root) : 0;
	const char *path = len && !strncmp(exe, build_root, len) && exe[len] == '/'
				   ? BRANCHBOX_INIT_BUILT
				   : BRANCHBOX_INIT_INSTALLED;
	*ret = strdup(path);
	return *ret ? 0 : -ENOMEM;
}

/*
 * Open the init binary now (the child binds it into the new root from a mount fd) and build
 * its argv: "branchbox-init" ["--pdeathsig"] CANDIDATE... "--" ARGV... (sandbox-init.h).
 */
static int plan_init(Plan *p, BbxError *err)
{
	_cleanup_free_ char *path = NULL;
	int r = sandbox_init_path(&path);
	if (r < 0)
		return r == -ENOMEM ? r
				    : bbx_error_set(err, r, BBX_SETUP, "init: /proc/self/exe: %s",
						    strerror(-r));
	_cleanup_close_ int fd = open(path, O_PATH | O_CLOEXEC);
	if (fd < 0)
		return bbx_error_set(err, -errno, BBX_SETUP, "init: %s: %s", path, strerror(errno));
	struct stat st;
	if (fstat(fd, &st) < 0)
		return bbx_error_set(err, -errno, BBX_SETUP, "init: %s: %s", path, strerror(errno));
	if (!S_ISREG(st.st_mode) || !(st.st_mode & S_IXOTH))
		return bbx_error_set(err, -EACCES, BBX_SETUP,
				     "init: %s: not a regular file executable by all", path);
	/*
	 * A detached bind mount of the file, made here: the child cannot clone a mount of the
	 * namespace it left, but it can attach a detached one into its own.
	 */
	p->init_fd = (int)syscall(SYS_open_tree, fd, "",
				  OPEN_TREE_CLONE | OPEN_TREE_CLOEXEC | AT_EMPTY_PATH);
	if (p->init_fd < 0)
		return bbx_error_set(err, -errno, BBX_SETUP, "init: open_tree: %s: %s", path,
				     strerror(errno));

	size_t n_cand = 0, n_argv = 0;
	while (p->exec_candidates[n_cand])
		n_cand++;
	while (p->argv[n_argv])
		n_argv++;
	p->init_argv = calloc(n_cand + n_argv + 4, sizeof(char *));
	if (!p->init_argv)
		return -ENOMEM;
	size_t k = 0;
	p->init_argv[k++] = (char *)SANDBOX_INIT_NAME;
	if (p->pdeathsig)
		p->init_argv[k++] = (char *)SANDBOX_INIT_OPT_PDEATHSIG;
	for (size_t i = 0; i < n_cand; i++)
		p->init_argv[k++] = p->exec_candidates[i];
	p->init_argv[k++] = (char *)"--";
	for (size_t i = 0; i < n_argv; i++)
		p->init_argv[k++] = p->argv[i];
	p->init_argv[k] = NULL;

	/* Last of all binds: nothing the spec asks for can cover it (the target is reserved). */
	Op *op = plan_add(p, OP_BIND, "bind init", SANDBOX_INIT_TARGET);
	if (!op)
		return -ENOMEM;
	op->source = TAKE_PTR(path);
	op->source_init = true;
	op->readonly = true;
	return 0;
}

#define LL_READ                                                                                    \
	(LANDLOCK_ACCESS_FS_EXECUTE | LANDLOCK_ACCESS_FS_READ_FILE | LANDLOCK_ACCESS_FS_READ_DIR)
#define LL_FILE_RW                                                                                 \
	(LANDLOCK_ACCESS_FS_READ_FILE | LANDLOCK_ACCESS_FS_WRITE_FILE | LANDLOCK_ACCESS_FS_TRUNCATE)

static int plan_build(Plan *p, const SandboxSpec *spec, BbxError *err)
{
	int r;

	p->uid = spec->uid ? spec->uid : 65534;
	p->gid = spec->gid ? spec->gid : p->uid;
	p->cap_last = read_cap_last();
	struct rlimit own;
	if (getrlimit(RLIMIT_NOFILE, &own) < 0)
		return bbx_error_set(err, -errno, BBX_SETUP, "getrlimit: RLIMIT_NOFILE: %m");
	p->nofile.rlim_max =
		own.rlim_max < SANDBOX_NOFILE_HARD ? own.rlim_max : SANDBOX_NOFILE_HARD;
	p->nofile.rlim_cur =
		p->nofile.rlim_max < SANDBOX_NOFILE_SOFT ? p->nofile.rlim_max : SANDBOX_NOFILE_SOFT;
	p->new_netns = spec->netns_fd < 0;
	p->pdeathsig = !spec->no_pdeathsig;
	if (spec->set_oom_score_adj && (spec->oom_score_adj < -1000 || spec->oom_score_adj > 1000))
		return bbx_error_set(err, -EINVAL, BBX_INVALID,
				     "oom_score_adj %d is outside -1000..1000",
				     spec->oom_score_adj);
	p->set_oom_score_adj = spec->set_oom_score_adj;
	p->oom_score_adj = spec->oom_score_adj;
	p->netns_fd = spec->netns_fd;
	p->stdio[0] = spec->stdin_fd;
	p->stdio[1] = spec->stdout_fd;
	p->stdio[2] = spec->stderr_fd;
	p->hostname = strdup(spec->hostname ? spec->hostname : "sandbox");
	p->workdir = strdup(spec->workdir ? spec->workdir : "/");
	if (!p->hostname || !p->workdir)
		return -ENOMEM;
	if (strlen(p->hostname) > 63 || strchr(p->hostname, '\n') || strchr(p->hostname, '/'))
		return bbx_error_set(err, -EINVAL, BBX_INVALID, "hostname '%s' is not valid",
				     p->hostname);
	if (p->workdir[0] != '/')
		return bbx_error_set(err, -EINVAL, BBX_INVALID, "workdir %s: must be absolute",
				     p->workdir);
	if (spec->hosts_extra && strlen(spec->hosts_extra) > 65536)
		return bbx_error_set(err, -E2BIG, BBX_INVALID, "hosts: extra lines too long");

	r = plan_exec(p, spec, err);
	if (r < 0)
		return r;
	r = plan_host_dirs(p, err);
	if (r >= 0)
		r = plan_etc(p, spec, err);
	if (r >= 0)
		r = plan_proc_sys_dev_tmp(p, spec->tmp_size ? spec->tmp_size : 256ULL << 20);
	if (r >= 0)
		r = plan_user_binds(p, spec, err);
	for (size_t i = 0; r >= 0 && p->userns_fd < 0 && i < p->n_ops; i++)
		if (p->ops[i].idmapped)
			r = plan_userns(p, spec, err);
	if (r >= 0)
		r = plan_init(p, err);
	if (r < 0)
		return r;

	/* Landlock: reads and exec everywhere; writes only to these. */
	r = plan_landlock(p, "/", LL_READ);
	if (r >= 0)
		r = plan_landlock(p, "/tmp", UINT64_MAX);
	if (r >= 0)
		r = plan_landlock(p, "/dev/shm", UINT64_MAX);
	if (r >= 0)
		r = plan_landlock(p, "/dev/pts", LL_FILE_RW);
	static const char *const devs[] = { "/dev/null",   "/dev/zero",	   "/dev/full",
					    "/dev/random", "/dev/urandom", "/dev/tty" };
	for (size_t i = 0; r >= 0 && i < ELEMENTSOF(devs); i++)
		r = plan_landlock(p, devs[i], LL_FILE_RW);
	if (r < 0)
		return r;

	return plan_seccomp(p);
}

/* ---- The child: only direct syscalls from here to exec (see the comment at the top). ---- */

static size_t cstr_len(const char *s)
{
	size_t n = 0;
	while (s && s[n])
		n++;
	return n;
}

static void cstr_copy(char *dst, size_t size, const char *src)
{
	size_t i = 0;
	for (; src && src[i] && i + 1 < size; i++)
		dst[i] = src[i];
	dst[i] = '\0';
}

_noreturn_ static void child_fail(const char *step, const char *path, int error, int exit_code)
{
	SandboxChildError ce = { .error = error, .exit_code = exit_code };
	cstr_copy(ce.step, sizeof(ce.step), step);
	cstr_copy(ce.path, sizeof(ce.path), path);
	(void)!write(FD_ERR, &ce, sizeof(ce));
	_exit(exit_code);
}

#define FAIL(step, path) child_fail((step), (path), errno, 125)

static long sys_openat2(int dirfd, const char *path, int flags, uint64_t resolve)
{
	struct open_how how = { .flags = (uint64_t)flags, .resolve = resolve };
	return syscall(SYS_openat2, dirfd, path, &how, sizeof(how));
}

/*
 * mkdir -p of rel inside the new root (dirfd), every level resolved with RESOLVE_IN_ROOT so a
 * symlink planted in a writable bind cannot steer a mount point outside the new root.
 * With leaf_file, the last component is created as an empty file (a mount point for a file).
 */
static int child_mkdir_in_root(int rootfd, const char *rel, bool leaf_file)
{
	char buf[512];
	size_t n = cstr_len(rel);
	if (n >= sizeof(buf))
		return -ENAMETOOLONG;
	cstr_copy(buf, sizeof(buf), rel);
	for (size_t i = 0; i <= n; i++) {
		if (buf[i] != '/' && buf[i] != '\0')
			continue;
		char saved = buf[i];
		buf[i] = '\0';
		/* Split buf into parent dir and leaf name. */
		char *slash = NULL;
		for (size_t k = 0; k < i; k++)
			if (buf[k] == '/')
				slash = &buf[k];
		int parent;
		const char *leaf;
		if (slash) {
			*slash = '\0';
			parent = (int)sys_openat2(rootfd, buf, O_PATH | O_DIRECTORY | O_CLOEXEC,
						  RESOLVE_IN_ROOT | RESOLVE_NO_MAGICLINKS);
			*slash = '/';
			leaf = slash + 1;
		} else {
			parent = (int)sys_openat2(rootfd, ".", O_PATH | O_DIRECTORY | O_CLOEXEC, 0);
			leaf = buf;
		}
		if (parent < 0)
			return -errno;
		int r = 0;
		if (saved == '\0' && leaf_file) {
			int fd = openat(parent, leaf, O_WRONLY | O_CREAT | O_NOFOLLOW | O_CLOEXEC,
					0644);
			if (fd < 0 && errno != EEXIST)
				r = -errno;
			if (fd >= 0)
				close(fd);
		} else if (mkdirat(parent, leaf, 0755) < 0 && errno != EEXIST)
			r = -errno;
		close(parent);
		if (r < 0)
			return r;
		buf[i] = saved;
	}
	return 0;
}

static void child_bind(int rootfd, const Op *op)
{
	/*
	 * The init, and binds by fd, were cloned into detached mounts by the parent (a copy of
	 * what the caller resolved and checked, not whatever a path names now): only moved here.
	 */
	int tree = op->source_init ? FD_INIT
		   : op->child_fd >= 0
			   ? op->child_fd
			   : (int)syscall(SYS_open_tree, AT_FDCWD, op->source,
					  OPEN_TREE_CLONE | OPEN_TREE_CLOEXEC | AT_RECURSIVE);
	if (tree < 0)
		FAIL("bind: open_tree", op->source);
	/* An idmap can only be set on a mount not attached yet, like this clone. */
	struct mount_attr attr = {
		.attr_set = MOUNT_ATTR_NOSUID | MOUNT_ATTR_NODEV |
			    (op->readonly ? MOUNT_ATTR_RDONLY : 0) |
			    (op->idmapped ? MOUNT_ATTR_IDMAP : 0),
		.userns_fd = op->idmapped ? FD_USERNS : 0,
	};
	if (syscall(SYS_mount_setattr, tree, "", AT_EMPTY_PATH | AT_RECURSIVE, &attr,
		    sizeof(attr)) < 0)
		FAIL(op->idmapped ? "bind: idmapped mount" : "bind: mount_setattr", op->source);
	int r = child_mkdir_in_root(rootfd, op->rel, !op->source_is_dir);
	if (r < 0)
		child_fail("bind: mkdir", op->path, -r, 125);
	int target = (int)sys_openat2(rootfd, op->rel, O_PATH | O_CLOEXEC,
				      RESOLVE_IN_ROOT | RESOLVE_NO_MAGICLINKS);
	if (target < 0)
		FAIL("bind: open target", op->path);
	if (syscall(SYS_move_mount, tree, "", target, "",
		    MOVE_MOUNT_F_EMPTY_PATH | MOVE_MOUNT_T_EMPTY_PATH) < 0)
		FAIL("bind: move_mount", op->path);
	close(target);
	if (!op->source_init)
		close(tree);
}

static void child_run_op(int rootfd, const Op *op)
{
	struct stat st;
	int fd;

	switch (op->kind) {
	case OP_MKDIR:
		if (mkdir(op->path, op->mode) < 0 && errno != EEXIST)
			FAIL(op->step, op->path);
		/* mkdir applies the umask; the sticky /tmp mode must be exact. */
		if (chmod(op->path, op->mode) < 0)
			FAIL("chmod", op->path);
		break;
	case OP_SYMLINK:
		if (symlink(op->data, op->path) < 0)
			FAIL(op->step, op->path);
		break;
	case OP_FILE:
		fd = open(op->path, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, op->mode);
		if (fd < 0)
			FAIL(op->step, op->path);
		for (size_t off = 0; off < op->data_len;) {
			ssize_t k = write(fd, op->data + off, op->data_len - off);
			if (k < 0 && errno == EINTR)
				continue;
			if (k <= 0)
				FAIL(op->step, op->path);
			off += (size_t)k;
		}
		close(fd);
		break;
	case OP_MKNOD:
		if (mknod(op->path, op->mode, op->dev) < 0)
			FAIL(op->step, op->path);
		if (chmod(op->path, op->mode & 07777) < 0)
			FAIL("chmod", op->path);
		break;
	case OP_MOUNT:
		if (mount(op->source, op->path, op->fstype, op->flags, op->data) < 0)
			FAIL(op->step, op->path);
		break;
	case OP_BIND: child_bind(rootfd, op); break;
	case OP_MASK:
		if (lstat(op->path, &st) < 0) {
			if (errno == ENOENT && op->optional)
				break;
			FAIL(op->step, op->path);
		}
		if (S_ISDIR(st.st_mode)) {
			if (mount("tmpfs", op->path, "tmpfs",
				  MS_RDONLY | MS_NOSUID | MS_NODEV | MS_NOEXEC,
				  "mode=000,size=4k") < 0)
				FAIL(op->step, op->path);
		} else if (mount("/dev/null", op->path, NULL, MS_BIND, NULL) < 0)
			FAIL(op->step, op->path);
		break;
	case OP_READONLY: {
		if (lstat(op->path, &st) < 0) {
			if (errno == ENOENT && op->optional)
				break;
			FAIL(op->step, op->path);
		}
		if (mount(op->path, op->path, NULL, MS_BIND | MS_REC, NULL) < 0)
			FAIL(op->step, op->path);
		struct mount_attr attr = { .attr_set = MOUNT_ATTR_RDONLY | MOUNT_ATTR_NOSUID |
						       MOUNT_ATTR_NODEV | MOUNT_ATTR_NOEXEC };
		if (syscall(SYS_mount_setattr, AT_FDCWD, op->path, AT_RECURSIVE, &attr,
			    sizeof(attr)) < 0)
			FAIL(op->step, op->path);
		break;
	}
	}
}

static void child_loopback_up(void)
{
	int s = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	if (s < 0)
		FAIL("loopback", "lo");
	struct ifreq ifr = { 0 };
	ifr.ifr_name[0] = 'l';
	ifr.ifr_name[1] = 'o';
	if (ioctl(s, SIOCGIFFLAGS, &ifr) < 0)
		FAIL("loopback", "lo");
	ifr.ifr_flags |= IFF_UP | IFF_RUNNING;
	if (ioctl(s, SIOCSIFFLAGS, &ifr) < 0)
		FAIL("loopback", "lo");
	close(s);
}

/*
 * Put the fds the child needs at fixed numbers and close everything else (including fds of
 * other sandboxes that concurrent spawns in other threads had open at clone time).
 */
static void child_setup_fds(const Plan *p, int sync_fd, int err_fd)
{
	enum { N_FIXED = FD_FIRST_FREE, N_MAX = N_FIXED + SANDBOX_MAX_FD_BINDS };
	int src[N_MAX] = { p->stdio[0] >= 0 ? p->stdio[0] : 0,
			   p->stdio[1] >= 0 ? p->stdio[1] : 1,
			   p->stdio[2] >= 0 ? p->stdio[2] : 2,
			   sync_fd,
			   err_fd,
			   p->netns_fd,
			   p->init_fd,
			   p->userns_fd };
	int dst[N_MAX] = { 0, 1, 2, FD_SYNC, FD_ERR, FD_NETNS, FD_INIT, FD_USERNS };
	int high[N_MAX];
	int n = N_FIXED;
	for (size_t i = 0; i < p->n_ops; i++)
		if (p->ops[i].kind == OP_BIND && p->ops[i].child_fd >= 0 && n < N_MAX) {
			src[n] = p->ops[i].source_fd;
			dst[n++] = p->ops[i].child_fd;
		}
	int floor_fd = 0;
	for (int i = 0; i < n; i++)
		if (src[i] >= floor_fd)
			floor_fd = src[i] + 1;
	if (floor_fd < FD_FIRST_FREE + SANDBOX_MAX_FD_BINDS)
		floor_fd = FD_FIRST_FREE + SANDBOX_MAX_FD_BINDS;
	for (int i = 0; i < n; i++) {
		high[i] = -1;
		if (src[i] < 0)
			continue;
		high[i] = fcntl(src[i], F_DUPFD_CLOEXEC, floor_fd);
		if (high[i] < 0 && errno == EBADF && i < 3) {
			/* The owner runs with this stdio fd closed: give the command /dev/null. */
			int null_fd = open("/dev/null", O_RDWR | O_CLOEXEC);
			if (null_fd >= 0) {
				high[i] = fcntl(null_fd, F_DUPFD_CLOEXEC, floor_fd);
				close(null_fd);
			}
		}
		if (high[i] < 0) {
			/* FD_ERR is not in place yet: nothing can be reported, only the exit code.
			 */
			_exit(125);
		}
	}
	for (int i = 0; i < n; i++) {
		if (high[i] < 0)
			continue;
		if (dup3(high[i], dst[i], i < 3 ? 0 : O_CLOEXEC) < 0)
			_exit(125);
	}
	if (p->netns_fd < 0)
		close(FD_NETNS);
	if (p->userns_fd < 0)
		close(FD_USERNS);
	if (close_range(FD_FIRST_FREE + (unsigned)p->n_fd_binds, ~0U, 0) < 0)
		_exit(125);
}

/*
 * Resource limits the kernel keeps per process, set before the exec so the command and
 * everything it forks inherit them (lowered limits cannot be raised again without
 * CAP_SYS_RESOURCE, which the sandbox never has). No core dumps: one would write the
 * process's memory (its credentials, its data) to wherever core_pattern points, possibly
 * outside the sandbox. Open files are bounded; the soft limit is what most programs expect,
 * the hard one leaves room for those that raise their own (redis asks for maxclients + 32).
 * The number of processes is bounded by the cgroup's pids.max, not RLIMIT_NPROC, which counts
 * per uid across the host. File size is bounded by the volume's quota and the tmpfs sizes.
 */
static void child_rlimits(const Plan *p)
{
	struct rlimit core = { 0, 0 };
	if (setrlimit(RLIMIT_CORE, &core) < 0)
		FAIL("setrlimit", "RLIMIT_CORE");
	if (setrlimit(RLIMIT_NOFILE, &p->nofile) < 0)
		FAIL("setrlimit", "RLIMIT_NOFILE");
}

static void child_drop_privileges(const Plan *p)
{
	if (setsid() < 0)
		FAIL("setsid", "");
	for (int cap = 0; cap <= p->cap_last; cap++)
		if (prctl(PR_CAPBSET_DROP, cap, 0, 0, 0) < 0 && errno != EINVAL)
			FAIL("capability bounding set", "");
	/* Raw syscalls: glibc's wrappers would try to signal threads that exist only in the parent.
	 */
	if (syscall(SYS_setgroups, 0, NULL) < 0)
		FAIL("setgroups", "");
	if (syscall(SYS_setresgid, p->gid, p->gid, p->gid) < 0)
		FAIL("setresgid", "");
	if (syscall(SYS_setresuid, p->uid, p->uid, p->uid) < 0)
		FAIL("setresuid", "");
	struct __user_cap_header_struct hdr = { .version = _LINUX_CAPABILITY_VERSION_3, .pid = 0 };
	struct __user_cap_data_struct data[2] = { { 0 } };
	if (syscall(SYS_capset, &hdr, data) < 0)
		FAIL("capset", "");
	if (prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0) < 0)
		FAIL("ambient capabilities", "");
	/* Changing credentials clears the parent-death signal, so it is set after them. */
	if (p->pdeathsig && prctl(PR_SET_PDEATHSIG, SIGKILL, 0, 0, 0) < 0)
		FAIL("pdeathsig", "");
	/* The parent may have died before that: its sync pipe end is then closed. */
	struct pollfd pfd = { .fd = FD_SYNC, .events = POLLIN };
	if (poll(&pfd, 1, 0) > 0 && (pfd.revents & (POLLHUP | POLLERR)))
		_exit(125);
	if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) < 0)
		FAIL("no_new_privs", "");
}

static void child_landlock(const Plan *p, int *ret_ruleset)
{
	struct landlock_ruleset_attr attr = {
		.handled_access_fs = LANDLOCK_ACCESS_FS_EXECUTE | LANDLOCK_ACCESS_FS_WRITE_FILE |
				     LANDLOCK_ACCESS_FS_READ_FILE | LANDLOCK_ACCESS_FS_READ_DIR |
				     LANDLOCK_ACCESS_FS_REMOVE_DIR |
				     LANDLOCK_ACCESS_FS_REMOVE_FILE | LANDLOCK_ACCESS_FS_MAKE_CHAR |
				     LANDLOCK_ACCESS_FS_MAKE_DIR | LANDLOCK_ACCESS_FS_MAKE_REG |
				     LANDLOCK_ACCESS_FS_MAKE_SOCK | LANDLOCK_ACCESS_FS_MAKE_FIFO |
				     LANDLOCK_ACCESS_FS_MAKE_BLOCK | LANDLOCK_ACCESS_FS_MAKE_SYM |
				     LANDLOCK_ACCESS_FS_REFER | LANDLOCK_ACCESS_FS_TRUNCATE,
	};
	int rs = (int)syscall(SYS_landlock_create_ruleset, &attr, sizeof(attr), 0);
	if (rs < 0)
		FAIL("landlock: create ruleset", "");
	for (size_t i = 0; i < p->n_ll; i++) {
		int fd = open(p->ll[i].path, O_PATH | O_CLOEXEC);
		if (fd < 0)
			FAIL("landlock: open", p->ll[i].path);
		struct stat st;
		if (fstat(fd, &st) < 0)
			FAIL("landlock: stat", p->ll[i].path);
		uint64_t access = p->ll[i].access & attr.handled_access_fs;
		/* Rules on a non-directory may only hold file rights. */
		if (!S_ISDIR(st.st_mode))
			access &= LANDLOCK_ACCESS_FS_EXECUTE | LL_FILE_RW;
		struct landlock_path_beneath_attr pb = { .allowed_access = access,
							 .parent_fd = fd };
		if (syscall(SYS_landlock_add_rule, rs, LANDLOCK_RULE_PATH_BENEATH, &pb, 0) < 0)
			FAIL("landlock: add rule", p->ll[i].path);
		close(fd);
	}
	*ret_ruleset = rs;
}

static int status_to_exit(int status)
{
	if (WIFEXITED(status))
		return WEXITSTATUS(status);
	if (WIFSIGNALED(status))
		return 128 + WTERMSIG(status);
	return 125;
}

_noreturn_ static void child_main(const Plan *p, int sync_fd, int err_fd)
{
	char c;
	int landlock_fd = -1;
	int attach_error = 0;

	sandbox_stage(SANDBOX_STAGE_CHILD);
	/* v1: into the cgroup first of all, by "0" (this thread; see sandbox_cgroup_open_tasks). */
	for (size_t i = 0; i < p->n_cg_tasks && !attach_error; i++)
		if (write(p->cg_tasks[i], "0", 1) != 1)
			attach_error = errno ? errno : EIO;
	child_setup_fds(p, sync_fd, err_fd);
	if (attach_error)
		child_fail("cgroup attach", "tasks", attach_error, 125);
	/* The raw syscall: a sanitizer's prctl wrapper takes a lock that another thread of the
	 * parent may have held when it cloned, and this child has only the one thread. */
	(void)syscall(SYS_prctl, PR_SET_NAME, "sandbox-setup", 0, 0, 0);
	/*
	 * Still the host's /proc; inherited by init and everything it starts. A hint to the OOM
	 * killer, not isolation: lowering it needs CAP_SYS_RESOURCE, which a daemon in a
	 * container may lack, so a refused write leaves the caller's value.
	 */
	if (p->set_oom_score_adj) {
		char v[16];
		int n = snprintf(v, sizeof(v), "%d", p->oom_score_adj);
		int fd = open("/proc/self/oom_score_adj", O_WRONLY | O_CLOEXEC);
		if (fd >= 0) {
			(void)!write(fd, v, (size_t)n);
			close(fd);
		}
	}
	if (!p->new_netns) {
		if (setns(FD_NETNS, CLONE_NEWNET) < 0)
			FAIL("setns", "network namespace");
		close(FD_NETNS);
	} else
		child_loopback_up();
	if (sethostname(p->hostname, cstr_len(p->hostname)) < 0)
		FAIL("sethostname", p->hostname);
	sandbox_stage(SANDBOX_STAGE_NS);

	/* Nothing mounted from here on may propagate back to the host. */
	if (mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL) < 0)
		FAIL("make mounts private", "/");
	if (mount("tmpfs", SANDBOX_ROOT, "tmpfs", MS_NOSUID | MS_NODEV, "mode=0755,size=4m") < 0)
		FAIL("mount root tmpfs", SANDBOX_ROOT);
	int rootfd = open(SANDBOX_ROOT, O_PATH | O_DIRECTORY | O_CLOEXEC);
	if (rootfd < 0)
		FAIL("open", SANDBOX_ROOT);
	for (size_t i = 0; i < p->n_ops; i++)
		child_run_op(rootfd, &p->ops[i]);
	close(FD_INIT);
	if (p->userns_fd >= 0)
		close(FD_USERNS);
	/* Bound; no fd to a host directory may reach the command (/proc/1/fd would lead out). */
	if (p->n_fd_binds &&
	    close_range(FD_FIRST_FREE, FD_FIRST_FREE + (unsigned)p->n_fd_binds - 1, 0) < 0)
		FAIL("close_range", "");
	sandbox_stage(SANDBOX_STAGE_ROOTFS);
	struct mount_attr ro = { .attr_set = MOUNT_ATTR_RDONLY };
	if (syscall(SYS_mount_setattr, rootfd, "", AT_EMPTY_PATH, &ro, sizeof(ro)) < 0)
		FAIL("remount root read-only", SANDBOX_ROOT);

	/* pivot_root(".", ".") stacks the old root on top of the new one; detach it at once. */
	if (fchdir(rootfd) < 0)
		FAIL("chdir", SANDBOX_ROOT);
	if (syscall(SYS_pivot_root, ".", ".") < 0)
		FAIL("pivot_root", SANDBOX_ROOT);
	if (umount2(".", MNT_DETACH) < 0)
		FAIL("detach old root", "/");
	close(rootfd);
	if (chdir("/") < 0)
		FAIL("chdir", "/");
	if (chdir(p->workdir) < 0)
		FAIL("chdir", p->workdir);
	sandbox_stage(SANDBOX_STAGE_PIVOT);

	/* Paths are the in-sandbox ones now; restrict_self needs no_new_privs, set below. */
	child_landlock(p, &landlock_fd);
	sandbox_stage(SANDBOX_STAGE_LANDLOCK);
	/*
	 * Wait until the parent has put us into the cgroup (EOF: the parent gave up); it did
	 * that while we built the root. Nothing of the command has run yet: every process of
	 * the sandbox is born inside the cgroup and its limits.
	 */
	if (RETRY_EINTR(read(FD_SYNC, &c, 1)) != 1)
		_exit(125);
	sandbox_stage(SANDBOX_STAGE_GO);
	/* After the move, so the cgroup namespace's root is the sandbox's own cgroup. */
	if (unshare(CLONE_NEWCGROUP) < 0)
		FAIL("unshare", "cgroup namespace");
	child_rlimits(p);
	child_drop_privileges(p);
	if (syscall(SYS_landlock_restrict_self, landlock_fd, 0) < 0)
		FAIL("landlock: restrict_self", "");
	close(landlock_fd);
	struct sock_fprog prog = { .len = (unsigned short)p->bpf_len, .filter = p->bpf };
	if (syscall(SYS_seccomp, SECCOMP_SET_MODE_FILTER, 0, &prog) < 0)
		FAIL("seccomp", "");
	sandbox_stage(SANDBOX_STAGE_CONFINE);

	/* Block what init will read from its signalfd: pending signals survive the exec. */
	sigset_t mask;
	sandbox_init_sigmask(&mask);
	if (sigprocmask(SIG_SETMASK, &mask, NULL) < 0)
		FAIL("sigprocmask", "");
	/* The protocol fds cross the exec; every other fd is CLOEXEC or closed already. */
	if (fcntl(FD_SYNC, F_SETFD, 0) < 0 || fcntl(FD_ERR, F_SETFD, 0) < 0)
		FAIL("fcntl", "");
	/* Last step: a fresh image, nothing of the owner's memory survives it. */
	execve(SANDBOX_INIT_TARGET, p->init_argv, p->envp);
	FAIL("exec", SANDBOX_INIT_TARGET);
}

/* ---- Parent side ---- */

int sandbox_landlock_abi(void)
{
	long abi = syscall(SYS_landlock_create_ruleset, NULL, 0, LANDLOCK_CREATE_RULESET_VERSION);
	return abi < 0 ? 0 : (int)abi;
}

static Sandbox *sandbox_new(void)
{
	Sandbox *sb = calloc(1, sizeof(*sb));
	if (!sb)
		return NULL;
	sb->pid = -1;
	sb->pidfd = -EBADF;
	sb->sync_fd = -EBADF;
	pthread_mutex_init(&sb->lock, NULL);
	return sb;
}

pid_t sandbox_pid(const Sandbox *sb)
{
	return sb->pid;
}

int sandbox_pidfd(const Sandbox *sb)
{
	return sb->pidfd;
}

static int sandbox_reap(Sandbox *sb, BbxError *err)
{
	int r = 0;

	/* waitpid runs unlocked, so a concurrent sandbox_kill() is never stuck behind it. */
	pthread_mutex_lock(&sb->lock);
	bool need_wait = !sb->reaped && sb->pid > 0;
	pthread_mutex_unlock(&sb->lock);
	if (need_wait) {
		int status;
		pid_t k = RETRY_EINTR(waitpid(sb->pid, &status, __WALL));
		pthread_mutex_lock(&sb->lock);
		if (k == sb->pid) {
			sandbox_stage(SANDBOX_STAGE_EXITED);
			sb->reaped = true;
			sb->status = status_to_exit(status);
			/* The pid may be reused from now on: signals go nowhere. */
			sb->pidfd = safe_close(sb->pidfd);
		} else if (!sb->reaped)
			r = bbx_error_set(err, -errno, BBX_INTERNAL, "wait: %d: %s", (int)sb->pid,
					  strerror(errno));
		pthread_mutex_unlock(&sb->lock);
	}
	pthread_mutex_lock(&sb->lock);
	if (sb->reaped && sb->cgroup) {
		int k = sandbox_cgroup_remove(sb->cgroup, err);
		sandbox_stage(SANDBOX_STAGE_REMOVED);
		if (k >= 0)
			sb->cgroup = sandbox_cgroup_free(sb->cgroup);
		else if (r >= 0)
			r = k;
	}
	if (sb->reaped)
		sb->sync_fd = safe_close(sb->sync_fd);
	pthread_mutex_unlock(&sb->lock);
	return r;
}

int sandbox_kill(Sandbox *sb, int sig)
{
	int r = 0;
	pthread_mutex_lock(&sb->lock);
	if (sb->reaped || sb->pidfd < 0)
		r = -ESRCH;
	else {
		if (sig == SIGKILL && sb->cgroup)
			(void)sandbox_cgroup_kill(sb->cgroup);
		if (syscall(SYS_pidfd_send_signal, sb->pidfd, sig, NULL, 0) < 0)
			r = -errno;
	}
	pthread_mutex_unlock(&sb->lock);
	return r;
}

int sandbox_freeze(Sandbox *sb, bool frozen, BbxError *err)
{
	pthread_mutex_lock(&sb->lock);
	int r = sb->cgroup ? sandbox_cgroup_freeze(sb->cgroup, frozen, err)
			   : bbx_error_set(err, -ESRCH, BBX_NOT_FOUND, "sandbox has ended");
	pthread_mutex_unlock(&sb->lock);
	return r;
}

int sandbox_set_cpu(Sandbox *sb, uint32_t cpu_millis, BbxError *err)
{
	pthread_mutex_lock(&sb->lock);
	int r = sb->cgroup ? sandbox_cgroup_set_cpu(sb->cgroup, cpu_millis, err)
			   : bbx_error_set(err, -ESRCH, BBX_NOT_FOUND, "sandbox has ended");
	pthread_mutex_unlock(&sb->lock);
	return r;
}

int sandbox_wait(Sandbox *sb, int *ret_status, BbxError *err)
{
	int r = sandbox_reap(sb, err);
	if (r < 0)
		return r;
	if (ret_status)
		*ret_status = sb->status;
	return 0;
}

Sandbox *sandbox_free(Sandbox *sb)
{
	if (!sb)
		return NULL;
	if (sb->pid > 0 && !sb->reaped) {
		(void)sandbox_kill(sb, SIGKILL);
		(void)sandbox_reap(sb, NULL);
	}
	if (sb->cgroup) {
		(void)sandbox_cgroup_remove(sb->cgroup, NULL);
		sandbox_cgroup_free(sb->cgroup);
	}
	safe_close(sb->pidfd);
	safe_close(sb->sync_fd);
	pthread_mutex_destroy(&sb->lock);
	free(sb);
	return NULL;
}

static BbxErrorKind kind_for_exit(int exit_code)
{
	return exit_code == 127 ? BBX_NOT_FOUND : exit_code == 126 ? BBX_CANNOT_EXECUTE : BBX_SETUP;
}

int sandbox_spawn(const SandboxSpec *spec, Sandbox **ret, BbxError *err)
{
	_cleanup_(plan_done) Plan plan = { .init_fd = -EBADF, .userns_fd = -EBADF };
	_cleanup_(sandbox_freep) Sandbox *sb = NULL;
	int r;

	if (spec->uid == 0 && spec->gid != 0)
		return bbx_error_set(err, -EINVAL, BBX_INVALID, "gid without a uid");
	if (geteuid() != 0)
		return bbx_error_set(err, -EPERM, BBX_SETUP,
				     "sandbox: needs root to create namespaces");
	int abi = sandbox_landlock_abi();
	if (abi < SANDBOX_LANDLOCK_ABI_MIN)
		return bbx_error_set(
			err, -EOPNOTSUPP, BBX_UNSUPPORTED,
			"landlock: kernel ABI %d, at least %d is required (refusing to run "
			"without it)",
			abi, SANDBOX_LANDLOCK_ABI_MIN);
	r = plan_build(&plan, spec, err);
	if (r < 0)
		return r == -ENOMEM ? bbx_error_set(err, r, BBX_INTERNAL, "out of memory") : r;
	r = mkdir_p(SANDBOX_ROOT, 0700);
	if (r < 0)
		return bbx_error_set(err, r, BBX_SETUP, "mkdir: %s: %s", SANDBOX_ROOT,
				     strerror(-r));
	sandbox_stage(SANDBOX_STAGE_PLAN);

	sb = sandbox_new();
	if (!sb)
		return -ENOMEM;
	SandboxCgroupLimits limits = {
		.memory_max = spec->memory_max,
		.pids_max = spec->pids_max,
		.cpu_millis = spec->cpu_millis,
	};
	char namebuf[64];
	const char *name = spec->cgroup_name;
	if (!name) {
		snprintf(namebuf, sizeof(namebuf), "sb-%d-%u", (int)getpid(),
			 atomic_fetch_add(&spawn_counter, 1));
		name = namebuf;
	}
	if (spec->no_cgroup && (limits.memory_max || limits.pids_max || limits.cpu_millis))
		return bbx_error_set(err, -EINVAL, BBX_INVALID,
				     "a sandbox without a cgroup cannot have limits");
	if (!spec->no_cgroup) {
		r = sandbox_cgroup_create(spec->cgroup_root ? spec->cgroup_root : "/sys/fs/cgroup",
					  name, &limits, &sb->cgroup, err);
		if (r < 0)
			return r;
		r = sandbox_cgroup_open_tasks(sb->cgroup, plan.cg_tasks, err);
		if (r >= 0)
			plan.n_cg_tasks = sb->cgroup->n_dir;
		else if (r != -EOPNOTSUPP)
			return r;
	}
	sandbox_stage(SANDBOX_STAGE_CGROUP);

	int sync_pipe[2], err_pipe[2];
	if (pipe2(sync_pipe, O_CLOEXEC) < 0)
		return bbx_error_set(err, -errno, BBX_SETUP, "pipe: %s", strerror(errno));
	if (pipe2(err_pipe, O_CLOEXEC) < 0) {
		r = -errno;
		close(sync_pipe[0]);
		close(sync_pipe[1]);
		return bbx_error_set(err, r, BBX_SETUP, "pipe: %s", strerror(-r));
	}
	_cleanup_close_ int sync_r = sync_pipe[0];
	_cleanup_close_ int err_r = err_pipe[0];
	_cleanup_close_ int err_w = err_pipe[1];
	sb->sync_fd = sync_pipe[1];

	unsigned long flags = CLONE_NEWNS | CLONE_NEWPID | CLONE_NEWIPC | CLONE_NEWUTS |
			      CLONE_PIDFD | (plan.new_netns ? CLONE_NEWNET : 0) | SIGCHLD;
	int pidfd = -1;
	pid_t pid = (pid_t)syscall(SYS_clone, flags, NULL, &pidfd, NULL, NULL);
	if (pid < 0)
		return bbx_error_set(err, -errno, BBX_SETUP, "clone: namespaces: %s",
				     strerror(errno));
	if (pid == 0)
		child_main(&plan, sync_r, err_w);

	sandbox_stage(SANDBOX_STAGE_CLONE);
	sb->pid = pid;
	sb->pidfd = pidfd;
	sync_r = safe_close(sync_r);
	err_w = safe_close(err_w);

	/*
	 * v2: move the child now, while it builds its root; it waits for "g" before its command
	 * can run. v1: it moved itself.
	 */
	r = plan.n_cg_tasks || !sb->cgroup ? 0 : sandbox_cgroup_attach(sb->cgroup, pid, err);
	if (r < 0)
		return r; /* sandbox_free kills and reaps the child */
	if (RETRY_EINTR(write(sb->sync_fd, "g", 1)) != 1)
		return bbx_error_set(err, -errno, BBX_SETUP, "sync: %s", strerror(errno));
	sandbox_stage(SANDBOX_STAGE_ATTACH);
	if (spec->prune_stale_cgroups && sb->cgroup)
		(void)sandbox_cgroup_prune_stale(spec->cgroup_root ? spec->cgroup_root
								   : "/sys/fs/cgroup");

	struct pollfd pfd = { .fd = err_r, .events = POLLIN };
	int k = RETRY_EINTR(poll(&pfd, 1, SANDBOX_SETUP_TIMEOUT_MS));
	if (k == 0)
		return bbx_error_set(
			err, -ETIMEDOUT, BBX_SETUP, "setup: the sandbox was not ready within %d s",
			SANDBOX_SETUP_TIMEOUT_MS / 1000); /* sandbox_free kills and reaps it */
	SandboxChildError ce;
	ssize_t n = RETRY_EINTR(read(err_r, &ce, sizeof(ce)));
	if (n == (ssize_t)sizeof(ce)) {
		ce.step[sizeof(ce.step) - 1] = '\0';
		ce.path[sizeof(ce.path) - 1] = '\0';
		(void)sandbox_reap(sb, NULL);
		if (ce.path[0])
			return bbx_error_set(err, -ce.error, kind_for_exit(ce.exit_code),
					     "%s: %s: %s", ce.step, ce.path, strerror(ce.error));
		return bbx_error_set(err, -ce.error, kind_for_exit(ce.exit_code), "%s: %s", ce.step,
				     strerror(ce.error));
	}
	if (n != 0) {
		/* The child died before exec without a message (killed, or fd setup failed). */
		int status = 0;
		(void)sandbox_reap(sb, NULL);
		status = sb->status;
		return bbx_error_set(err, -EIO, BBX_SETUP, "setup: child ended early (status %d)",
				     status);
	}
	/* EOF without a record: the command was executed (or init died before that). */
	sandbox_stage(SANDBOX_STAGE_EXECED);
	*ret = TAKE_PTR(sb);
	return 0;
}

/* ---- Command line binds ---- */

int sandbox_bind_parse(const char *s, SandboxBind *ret, char **ret_storage, BbxError *err)
{
	if (!s || !*s)
		return bbx_error_set(err, -EINVAL, BBX_INVALID, "empty bind");
	_cleanup_free_ char *copy = NULL;
	const char *colon = strchr(s, ':');
	if (colon) {
		size_t n = strlen(s);
		copy = malloc(n + 1);
		if (!copy)
			return -ENOMEM;
		memcpy(copy, s, n + 1);
		copy[colon - s] = '\0';
	} else {
		copy = strdup(s);
		if (!copy)
			return -ENOMEM;
	}
	const char *source = copy;
	const char *target = colon ? copy + (colon - s) + 1 : copy;
	if (!path_is_clean(source) || !path_is_clean(target) || (colon && strchr(target, ':')))
		return bbx_error_set(
			err, -EINVAL, BBX_INVALID,
			"bind '%s': want HOSTPATH[:PATH], absolute, without '..', '.', "
			"'//' or ':'",
			s);
	*ret = (SandboxBind){ .source = source, .target = target };
	*ret_storage = TAKE_PTR(copy);
	return 0;
}

/* ---- Persistent network namespaces ---- */

int sandbox_netns_create(const char *path, BbxError *err)
{
	_cleanup_close_ int fd = open(path, O_RDONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0444);
	if (fd < 0)
		return bbx_error_set(err, -errno, errno == EEXIST ? BBX_CONFLICT : BBX_SETUP,
				     "netns: %s: %s", path, strerror(errno));
	fd = safe_close(fd);

	int p[2];
	if (pipe2(p, O_CLOEXEC) < 0)
		return bbx_error_set(err, -errno, BBX_SETUP, "netns: pipe: %s", strerror(errno));
	pid_t pid = (pid_t)syscall(SYS_clone, CLONE_NEWNET | SIGCHLD, NULL, NULL, NULL, NULL);
	if (pid == 0) {
		/*
		 * Only syscalls: see the comment at the top of this file. The child reports, then
		 * waits to be killed once the parent has bound its namespace; it never waits on a
		 * pipe EOF, which a concurrent spawn holding a copy of the pipe could delay.
		 */
		int e = 0;
		(void)prctl(PR_SET_PDEATHSIG, SIGKILL, 0, 0, 0);
		int s = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
		struct ifreq ifr = { 0 };
		ifr.ifr_name[0] = 'l';
		ifr.ifr_name[1] = 'o';
		if (s < 0 || ioctl(s, SIOCGIFFLAGS, &ifr) < 0)
			e = errno;
		ifr.ifr_flags |= IFF_UP | IFF_RUNNING;
		if (!e && ioctl(s, SIOCSIFFLAGS, &ifr) < 0)
			e = errno;
		(void)!write(p[1], &e, sizeof(e));
		for (;;)
			pause();
	}
	int saved = errno;
	close(p[1]);
	int r = 0, e = 0;
	if (pid < 0)
		r = bbx_error_set(err, -saved, BBX_SETUP, "netns: clone: %s", strerror(saved));
	else if (RETRY_EINTR(read(p[0], &e, sizeof(e))) != (ssize_t)sizeof(e))
		r = bbx_error_set(err, -EIO, BBX_SETUP, "netns: %s: child failed", path);
	else if (e)
		r = bbx_error_set(err, -e, BBX_SETUP, "netns: loopback: lo: %s", strerror(e));
	else {
		char src[64];
		snprintf(src, sizeof(src), "/proc/%d/ns/net", (int)pid);
		if (mount(src, path, NULL, MS_BIND, NULL) < 0)
			r = bbx_error_set(err, -errno, BBX_SETUP, "netns: bind %s: %s", path,
					  strerror(errno));
	}
	close(p[0]);
	if (pid > 0) {
		(void)kill(pid, SIGKILL);
		(void)RETRY_EINTR(waitpid(pid, NULL, 0));
	}
	if (r < 0)
		(void)unlink(path);
	return r;
}

int sandbox_netns_remove(const char *path, BbxError *err)
{
	if (umount2(path, MNT_DETACH) < 0 && errno != EINVAL && errno != ENOENT)
		return bbx_error_set(err, -errno, BBX_SETUP, "netns: umount %s: %s", path,
				     strerror(errno));
	if (unlink(path) < 0 && errno != ENOENT)
		return bbx_error_set(err, -errno, BBX_SETUP, "netns: unlink %s: %s", path,
				     strerror(errno));
	return 0;
}
