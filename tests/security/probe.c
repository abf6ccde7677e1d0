/* SPDX-License-Identifier: MIT */
/*
 * Security probe: tries one attack and prints what happened, one "key value" line per
 * attempt, so tests/security/test_sandbox.py can compare a run inside the sandbox with the
 * positive control outside it. Values are "ok", an errno name ("EPERM"), "signal=N" or a number.
 *
 * Every probe is written so that its positive control (run as root on the host, inside
 * unshare --mount --pid --fork --mount-proc --net) changes nothing outside a scratch
 * directory: syscalls get invalid arguments (-1 everywhere) so they fail on validation
 * instead of acting, files are opened for writing but never written.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/sched.h>
#include <sched.h>
#include <signal.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/mount.h>
#include <sys/personality.h>
#include <sys/ptrace.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <sys/sysmacros.h>
#include <sys/syscall.h>
#include <sys/shm.h>
#include <sys/uio.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <termios.h>
#include <unistd.h>

static const char *err_name(int e)
{
	const char *n = strerrorname_np(e);
	return n ? n : "E?";
}

static void result(const char *key, long r)
{
	if (r < 0)
		printf("%s %s\n", key, err_name(errno));
	else
		printf("%s ok\n", key);
	fflush(stdout);
}

#define M1 ((long)-1)

/* Denied syscalls with arguments that make them fail harmlessly when they are allowed. */
static const struct {
	const char *name;
	long nr;
} denied[] = {
	{ "acct", SYS_acct },
	{ "add_key", SYS_add_key },
	{ "bpf", SYS_bpf },
	{ "chroot", SYS_chroot },
	{ "clock_adjtime", SYS_clock_adjtime },
	{ "clock_settime", SYS_clock_settime },
	{ "delete_module", SYS_delete_module },
	{ "finit_module", SYS_finit_module },
	{ "fsconfig", SYS_fsconfig },
	{ "fsmount", SYS_fsmount },
	{ "fsopen", SYS_fsopen },
	{ "fspick", SYS_fspick },
	{ "get_mempolicy", SYS_get_mempolicy },
	{ "init_module", SYS_init_module },
	{ "io_uring_enter", SYS_io_uring_enter },
	{ "io_uring_register", SYS_io_uring_register },
	{ "io_uring_setup", SYS_io_uring_setup },
	{ "ioperm", SYS_ioperm },
	{ "iopl", SYS_iopl },
	{ "kcmp", SYS_kcmp },
	{ "kexec_file_load", SYS_kexec_file_load },
	{ "kexec_load", SYS_kexec_load },
	{ "keyctl", SYS_keyctl },
	{ "mbind", SYS_mbind },
	{ "mount", SYS_mount },
	{ "mount_setattr", SYS_mount_setattr },
	{ "move_mount", SYS_move_mount },
	{ "move_pages", SYS_move_pages },
	{ "name_to_handle_at", SYS_name_to_handle_at },
	{ "open_by_handle_at", SYS_open_by_handle_at },
	{ "open_tree", SYS_open_tree },
	{ "perf_event_open", SYS_perf_event_open },
	{ "pidfd_getfd", SYS_pidfd_getfd },
	{ "pivot_root", SYS_pivot_root },
	{ "process_madvise", SYS_process_madvise },
	{ "process_vm_readv", SYS_process_vm_readv },
	{ "process_vm_writev", SYS_process_vm_writev },
	{ "ptrace", SYS_ptrace },
	{ "quotactl", SYS_quotactl },
	{ "quotactl_fd", SYS_quotactl_fd },
	{ "reboot", SYS_reboot },
	{ "request_key", SYS_request_key },
	{ "set_mempolicy", SYS_set_mempolicy },
	{ "setdomainname", SYS_setdomainname },
	{ "sethostname", SYS_sethostname },
	{ "setns", SYS_setns },
	{ "settimeofday", SYS_settimeofday },
	{ "swapoff", SYS_swapoff },
	{ "swapon", SYS_swapon },
	{ "syslog", SYS_syslog },
	{ "sysfs", SYS_sysfs },
	{ "umount2", SYS_umount2 },
	{ "unshare", SYS_unshare },
	{ "userfaultfd", SYS_userfaultfd },
	{ "ustat", SYS_ustat },
};

static int probe_syscalls(void)
{
	for (size_t i = 0; i < sizeof(denied) / sizeof(denied[0]); i++) {
		errno = 0;
		long r = syscall(denied[i].nr, M1, M1, M1, M1, M1, M1);
		result(denied[i].name, r);
	}
	errno = 0;
	result("clone3", syscall(SYS_clone3, M1, M1));
	return 0;
}

/*
 * Syscalls on neither list of the filter: it answers ENOSYS, as a kernel without them would,
 * so libc falls back. migrate_pages is old and in every NUMA kernel (Docker does not allow
 * it either); open_tree_attr (467, Linux 6.15) and lsm_list_modules (461, Linux 6.8) are
 * newer than the libseccomp the filter is built with; 1000 is no syscall at all.
 */
static int probe_unlisted(void)
{
	static const struct {
		const char *name;
		long nr;
	} unlisted[] = {
		{ "migrate_pages", SYS_migrate_pages },
		{ "open_tree_attr", 467 },
		{ "lsm_list_modules", 461 },
		{ "nr_1000", 1000 },
	};
	for (size_t i = 0; i < sizeof(unlisted) / sizeof(unlisted[0]); i++) {
		errno = 0;
		long r = syscall(unlisted[i].nr, M1, M1, M1, M1, M1, M1);
		result(unlisted[i].name, r);
	}
	return 0;
}

/* modify_ldt: Docker allows it on x86; the filter denies it. Reading the LDT changes nothing. */
static int probe_ldt(void)
{
#if defined(__x86_64__)
	char ldt[16];
	errno = 0;
	result("modify_ldt", syscall(SYS_modify_ldt, 0, ldt, sizeof(ldt)));
#endif
	return 0;
}

static int probe_clone_ns(void)
{
	static const struct {
		const char *name;
		unsigned long flag;
	} flags[] = {
		{ "clone_newns", CLONE_NEWNS },		{ "clone_newuser", CLONE_NEWUSER },
		{ "clone_newpid", CLONE_NEWPID },	{ "clone_newnet", CLONE_NEWNET },
		{ "clone_newuts", CLONE_NEWUTS },	{ "clone_newipc", CLONE_NEWIPC },
		{ "clone_newcgroup", CLONE_NEWCGROUP },
	};
	for (size_t i = 0; i < sizeof(flags) / sizeof(flags[0]); i++) {
		long pid = syscall(SYS_clone, flags[i].flag | SIGCHLD, NULL, NULL, NULL, NULL);
		if (pid == 0)
			_exit(0);
		if (pid > 0)
			waitpid((pid_t)pid, NULL, 0);
		result(flags[i].name, pid);
	}
	errno = 0;
	result("unshare_user", unshare(CLONE_NEWUSER));
	return 0;
}

static int probe_int80(void)
{
#if defined(__x86_64__)
	pid_t pid = fork();
	if (pid == 0) {
		long ret;
		/* i386 getpid */
		__asm__ volatile("int $0x80" : "=a"(ret) : "a"(20L) : "memory");
		if (ret < 0) {
			printf("int80 %s\n", err_name((int)-ret));
		} else
			printf("int80 ok\n");
		fflush(stdout);
		_exit(0);
	}
	int status;
	waitpid(pid, &status, 0);
	if (WIFSIGNALED(status))
		printf("int80 signal=%d\n", WTERMSIG(status));
	/* x32 getpid: the x86_64 number with __X32_SYSCALL_BIT. */
	errno = 0;
	result("x32", syscall(0x40000000L | 39));
#endif
	return 0;
}

static int probe_tiocsti(void)
{
	int m = posix_openpt(O_RDWR | O_NOCTTY | O_CLOEXEC);
	if (m < 0 || grantpt(m) < 0 || unlockpt(m) < 0) {
		result("openpt", -1);
		return 0;
	}
	int s = open(ptsname(m), O_RDWR | O_NOCTTY | O_CLOEXEC);
	if (s < 0) {
		result("openpt", -1);
		return 0;
	}
	char c = 'x';
	errno = 0;
	/* The kernel truncates the request to 32 bits; a 64-bit compare would miss this one. */
	result("tiocsti_high_bits", syscall(SYS_ioctl, s, 0x100000000UL | TIOCSTI, &c));
	errno = 0;
	result("tiocsti", ioctl(s, TIOCSTI, &c));
	errno = 0;
	result("tioclinux", ioctl(s, TIOCLINUX, &c));
	return 0;
}

static int probe_sockets(void)
{
	static const struct {
		const char *name;
		int family, type;
	} f[] = {
		{ "af_unix", AF_UNIX, SOCK_STREAM },   { "af_inet", AF_INET, SOCK_STREAM },
		{ "af_inet6", AF_INET6, SOCK_STREAM }, { "af_netlink", AF_NETLINK, SOCK_RAW },
		{ "af_packet", AF_PACKET, SOCK_RAW },  { "af_vsock", AF_VSOCK, SOCK_STREAM },
		{ "af_alg", AF_ALG, SOCK_SEQPACKET },
	};
	for (size_t i = 0; i < sizeof(f) / sizeof(f[0]); i++) {
		errno = 0;
		int s = socket(f[i].family, f[i].type | SOCK_CLOEXEC, 0);
		result(f[i].name, s);
		if (s >= 0)
			close(s);
	}
	errno = 0;
	result("af_unix_high_bits", syscall(SYS_socket, 0x100000000L | AF_UNIX, SOCK_STREAM, 0));
	return 0;
}

static int probe_personality(void)
{
	errno = 0;
	result("read_implies_exec", syscall(SYS_personality, READ_IMPLIES_EXEC));
	errno = 0;
	result("per_linux", syscall(SYS_personality, PER_LINUX));
	return 0;
}

static int probe_status(void)
{
	FILE *f = fopen("/proc/self/status", "re");
	char line[256];
	if (!f)
		return 1;
	while (fgets(line, sizeof(line), f)) {
		static const char *const keys[] = { "CapInh:",	"CapPrm:", "CapEff:",
						    "CapBnd:",	"CapAmb:", "NoNewPrivs:",
						    "Seccomp:", "Uid:",	   "Gid:" };
		for (size_t i = 0; i < sizeof(keys) / sizeof(keys[0]); i++)
			if (!strncmp(line, keys[i], strlen(keys[i])))
				fputs(line, stdout);
	}
	fclose(f);
	return 0;
}

static int probe_write(const char *path)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
	result("create", fd);
	if (fd >= 0) {
		close(fd);
		unlink(path);
	}
	return 0;
}

/* Open for writing without writing: proves the access without changing anything. */
static int probe_openw(const char *path)
{
	int fd = open(path, O_WRONLY | O_CLOEXEC);
	result("openw", fd);
	if (fd >= 0)
		close(fd);
	return 0;
}

static int probe_read(const char *path)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0) {
		result("read", -1);
		return 0;
	}
	char buf[4096];
	ssize_t n = read(fd, buf, sizeof(buf));
	if (n < 0 && errno == EISDIR) {
		close(fd);
		DIR *d = opendir(path);
		if (!d) {
			result("read", -1);
			return 0;
		}
		long count = 0;
		struct dirent *de;
		while ((de = readdir(d)))
			if (strcmp(de->d_name, ".") && strcmp(de->d_name, ".."))
				count++;
		closedir(d);
		printf("entries %ld\n", count);
		return 0;
	}
	if (n < 0)
		result("read", -1);
	else
		printf("bytes %zd\n", n);
	close(fd);
	return 0;
}

/*
 * What is at path, without opening it: "type reg|dir|chr|other", "rdev MAJOR:MINOR" for a
 * device, "mode" (octal permission bits) and "fs 0xMAGIC" (statfs). Tells a masked path
 * (/dev/null, an empty tmpfs) from the real procfs or sysfs entry.
 */
static int probe_stat(const char *path)
{
	struct stat st;
	struct statfs sfs;
	errno = 0;
	if (stat(path, &st) < 0) {
		result("stat", -1);
		return 0;
	}
	const char *type = "other";
	if (S_ISREG(st.st_mode))
		type = "reg";
	else if (S_ISDIR(st.st_mode))
		type = "dir";
	else if (S_ISCHR(st.st_mode))
		type = "chr";
	printf("type %s\n", type);
	if (S_ISCHR(st.st_mode))
		printf("rdev %u:%u\n", major(st.st_rdev), minor(st.st_rdev));
	printf("mode %o\n", (unsigned)(st.st_mode & 07777));
	if (statfs(path, &sfs) == 0)
		printf("fs 0x%lx\n", (unsigned long)sfs.f_type);
	return 0;
}

static int probe_fds(void)
{
	DIR *d = opendir("/proc/self/fd");
	if (!d)
		return 1;
	int self = dirfd(d);
	struct dirent *de;
	printf("fds");
	while ((de = readdir(d))) {
		if (de->d_name[0] == '.')
			continue;
		int fd = (int)strtol(de->d_name, NULL, 10);
		if (fd == self)
			continue;
		printf(" %d", fd);
	}
	printf("\n");
	closedir(d);
	return 0;
}

static int probe_mount(const char *dir)
{
	errno = 0;
	int r = mount("tmpfs", dir, "tmpfs", 0, "size=4k");
	result("mount", r);
	if (r == 0)
		umount2(dir, MNT_DETACH);
	return 0;
}

static int probe_ptrace(void)
{
	pid_t pid = fork();
	if (pid == 0) {
		for (;;)
			pause();
	}
	errno = 0;
	long r = ptrace(PTRACE_ATTACH, pid, NULL, NULL);
	result("ptrace_attach", r);
	if (r == 0) {
		waitpid(pid, NULL, __WALL);
		ptrace(PTRACE_DETACH, pid, NULL, NULL);
	}
	char buf[8], src[8] = "secret";
	struct iovec l = { buf, sizeof(buf) }, rv = { src, sizeof(src) };
	errno = 0;
	result("process_vm_readv", process_vm_readv(pid, &l, 1, &rv, 1, 0));
	kill(pid, SIGKILL);
	waitpid(pid, NULL, 0);
	return 0;
}

/* Pids visible in /proc and their command lines, one per line. */
static int probe_pids(void)
{
	DIR *d = opendir("/proc");
	struct dirent *de;
	if (!d)
		return 1;
	while ((de = readdir(d))) {
		if (de->d_name[0] < '0' || de->d_name[0] > '9')
			continue;
		char p[300], cmd[256] = "";
		snprintf(p, sizeof(p), "/proc/%s/cmdline", de->d_name);
		FILE *f = fopen(p, "re");
		if (f) {
			size_t n = fread(cmd, 1, sizeof(cmd) - 1, f);
			for (size_t i = 0; i < n; i++)
				if (cmd[i] == '\0')
					cmd[i] = ' ';
			cmd[n] = '\0';
			fclose(f);
		}
		printf("pid %s %s\n", de->d_name, cmd);
	}
	closedir(d);
	return 0;
}

static int probe_netdev(void)
{
	FILE *f = fopen("/proc/net/dev", "re");
	char line[512];
	if (!f)
		return 1;
	while (fgets(line, sizeof(line), f)) {
		char *colon = strchr(line, ':');
		if (!colon)
			continue;
		*colon = '\0';
		char *name = line + strspn(line, " ");
		printf("iface %s\n", name);
	}
	fclose(f);
	return 0;
}

/* Fork up to max sleeping children; print how many succeeded; then kill them. */
static int probe_forkbomb(long max)
{
	pid_t *pids = calloc((size_t)max, sizeof(pid_t));
	long n = 0;
	int last = 0;
	for (; n < max; n++) {
		pid_t pid = fork();
		if (pid == 0) {
			for (;;)
				pause();
		}
		if (pid < 0) {
			last = errno;
			break;
		}
		pids[n] = pid;
	}
	printf("forked %ld\n", n);
	printf("stopped %s\n", n < max ? err_name(last) : "no");
	fflush(stdout);
	for (long i = 0; i < n; i++)
		kill(pids[i], SIGKILL);
	for (long i = 0; i < n; i++)
		waitpid(pids[i], NULL, 0);
	free(pids);
	return 0;
}

/* Allocate and touch mb MiB, printing progress; the OOM killer ends it under a limit. */
static int probe_balloon(long mb)
{
	for (long i = 0; i < mb; i++) {
		char *p = mmap(NULL, 1 << 20, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS,
			       -1, 0);
		if (p == MAP_FAILED) {
			result("mmap", -1);
			return 1;
		}
		memset(p, 0x5a, 1 << 20);
	}
	printf("allocated %ld\n", mb);
	return 0;
}

/* Abstract unix socket: listen on "@name" for a while, or try to connect to it. */
static int probe_abstract(const char *name, bool listen_mode, long seconds)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	size_t n = strlen(name);
	if (n + 1 >= sizeof(sa.sun_path))
		return 2;
	memcpy(sa.sun_path + 1, name, n);
	socklen_t len = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + 1 + n);
	int s = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (s < 0) {
		result("socket", -1);
		return 0;
	}
	if (listen_mode) {
		int r = bind(s, (struct sockaddr *)&sa, len);
		if (r == 0)
			r = listen(s, 4);
		result("listen", r);
		sleep((unsigned)seconds);
	} else {
		errno = 0;
		result("connect", connect(s, (struct sockaddr *)&sa, len));
	}
	close(s);
	return 0;
}

/* SysV shared memory: create a segment with key, or look for it. */
static int probe_sysv(long key, bool create, long seconds)
{
	errno = 0;
	int id = shmget((key_t)key, 4096, create ? IPC_CREAT | IPC_EXCL | 0666 : 0);
	result(create ? "shm_create" : "shm_find", id);
	if (create && id >= 0) {
		sleep((unsigned)seconds);
		shmctl(id, IPC_RMID, NULL);
	}
	return 0;
}

int main(int argc, char **argv)
{
	if (argc < 2) {
		fprintf(stderr, "usage: probe NAME [ARG]\n");
		return 2;
	}
	const char *name = argv[1];
	const char *arg = argc > 2 ? argv[2] : NULL;
	if (!strcmp(name, "syscalls"))
		return probe_syscalls();
	if (!strcmp(name, "unlisted"))
		return probe_unlisted();
	if (!strcmp(name, "ldt"))
		return probe_ldt();
	if (!strcmp(name, "clone-ns"))
		return probe_clone_ns();
	if (!strcmp(name, "int80"))
		return probe_int80();
	if (!strcmp(name, "tiocsti"))
		return probe_tiocsti();
	if (!strcmp(name, "sockets"))
		return probe_sockets();
	if (!strcmp(name, "personality"))
		return probe_personality();
	if (!strcmp(name, "status"))
		return probe_status();
	if (!strcmp(name, "write") && arg)
		return probe_write(arg);
	if (!strcmp(name, "openw") && arg)
		return probe_openw(arg);
	if (!strcmp(name, "read") && arg)
		return probe_read(arg);
	if (!strcmp(name, "stat") && arg)
		return probe_stat(arg);
	if (!strcmp(name, "fds"))
		return probe_fds();
	if (!strcmp(name, "mount") && arg)
		return probe_mount(arg);
	if (!strcmp(name, "ptrace"))
		return probe_ptrace();
	if (!strcmp(name, "pids"))
		return probe_pids();
	if (!strcmp(name, "netdev"))
		return probe_netdev();
	if (!strcmp(name, "forkbomb") && arg)
		return probe_forkbomb(strtol(arg, NULL, 10));
	if (!strcmp(name, "balloon") && arg)
		return probe_balloon(strtol(arg, NULL, 10));
	if (!strcmp(name, "abstract-listen") && arg)
		return probe_abstract(arg, true, argc > 3 ? strtol(argv[3], NULL, 10) : 5);
	if (!strcmp(name, "abstract-connect") && arg)
		return probe_abstract(arg, false, 0);
	if (!strcmp(name, "shm-create") && arg)
		return probe_sysv(strtol(arg, NULL, 10), true,
				  argc > 3 ? strtol(argv[3], NULL, 10) : 5);
	if (!strcmp(name, "shm-find") && arg)
		return probe_sysv(strtol(arg, NULL, 10), false, 0);
	if (!strcmp(name, "sleep") && arg) {
		sleep((unsigned)strtol(arg, NULL, 10));
		return 0;
	}
	fprintf(stderr, "probe: unknown probe '%s'\n", name);
	return 2;
}
