/* SPDX-License-Identifier: MIT */
#include "storage-driver.h"

#include <dirent.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>

#include "file-util.h"
#include "strbuf.h"

extern char **environ;

#define STAGING_SUFFIX_LEN 6

const char *storage_driver_kind_to_string(StorageDriverKind k)
{
	switch (k) {
	case STORAGE_DRIVER_BTRFS: return "btrfs";
	case STORAGE_DRIVER_REFLINK: return "reflink";
	case STORAGE_DRIVER_COPY: return "copy";
	default: return "auto";
	}
}

int storage_driver_kind_from_string(const char *s, StorageDriverKind *ret)
{
	static const StorageDriverKind kinds[] = { STORAGE_DRIVER_AUTO, STORAGE_DRIVER_BTRFS,
						   STORAGE_DRIVER_REFLINK, STORAGE_DRIVER_COPY };
	if (!s)
		return -EINVAL;
	for (size_t i = 0; i < ELEMENTSOF(kinds); i++)
		if (!strcmp(s, storage_driver_kind_to_string(kinds[i]))) {
			*ret = kinds[i];
			return 0;
		}
	return -EINVAL;
}

const StorageDriver *storage_driver_get(StorageDriverKind k)
{
	switch (k) {
	case STORAGE_DRIVER_BTRFS: return &storage_driver_btrfs;
	case STORAGE_DRIVER_REFLINK: return &storage_driver_reflink;
	case STORAGE_DRIVER_COPY: return &storage_driver_copy;
	default: return NULL;
	}
}

int storage_staging_name(const char *prefix, const char *name, char **ret)
{
	static const char alphabet[] = "abcdefghijklmnopqrstuvwxyz0123456789";
	unsigned char rnd[STAGING_SUFFIX_LEN];
	char suffix[STAGING_SUFFIX_LEN + 1];
	_cleanup_strbuf_ StrBuf sb = STRBUF_INIT;

	if (getrandom(rnd, sizeof(rnd), 0) != (ssize_t)sizeof(rnd))
		return negative_errno();
	for (size_t i = 0; i < STAGING_SUFFIX_LEN; i++)
		suffix[i] = alphabet[rnd[i] % (sizeof(alphabet) - 1)];
	suffix[STAGING_SUFFIX_LEN] = 0;
	if (strbuf_appendf(&sb, ".%s-%s-%s", prefix, name, suffix) < 0)
		return -ENOMEM;
	*ret = strbuf_detach(&sb);
	return *ret ? 0 : -ENOMEM;
}

bool storage_is_staging_name(const char *entry)
{
	return !strncmp(entry, ".staging-", 9) || !strncmp(entry, ".trash-", 7);
}

void storage_debug_stop(const char *point)
{
#if BRANCHBOX_DEBUG_HOOKS /* -Ddebug_hooks=true: crash tests only, never a release */
	const char *want = getenv("BRANCHBOX_DEBUG_STOP_AT");
	if (want && !strcmp(want, point))
		kill(getpid(), SIGKILL);
#endif
}

static int cmp_str(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

int storage_list_dir(int root_fd, char ***ret, BbxError *err)
{
	int fd = openat(root_fd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd < 0) {
		int r = negative_errno();
		return bbx_error_set(err, r, BBX_INTERNAL, "cannot open pool root: %s",
				     strerror(-r));
	}
	DIR *d = fdopendir(fd);
	if (!d) {
		int r = negative_errno();
		safe_close(fd);
		return bbx_error_set(err, r, BBX_INTERNAL, "cannot read pool root: %s",
				     strerror(-r));
	}
	char **l = calloc(1, sizeof(char *));
	size_t n = 0;
	int r = l ? 0 : -ENOMEM;
	struct dirent *de;
	while (r >= 0 && (de = readdir(d))) {
		if (de->d_name[0] == '.')
			continue; /* ".", "..", staging and trash entries */
		char **nl = reallocarray(l, n + 2, sizeof(char *));
		if (!nl) {
			r = -ENOMEM;
			break;
		}
		l = nl;
		l[n] = strdup(de->d_name);
		if (!l[n]) {
			r = -ENOMEM;
			break;
		}
		l[++n] = NULL;
	}
	closedir(d);
	if (r < 0) {
		strv_free(l);
		return bbx_error_set(err, r, BBX_INTERNAL, "out of memory listing volumes");
	}
	qsort(l, n, sizeof(char *), cmp_str);
	*ret = l;
	return 0;
}

int storage_run(char *const argv[], char **ret_output)
{
	int pipefd[2];
	if (pipe2(pipefd, O_CLOEXEC) < 0)
		return negative_errno();
	posix_spawn_file_actions_t fa;
	posix_spawn_file_actions_init(&fa);
	posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0);
	posix_spawn_file_actions_adddup2(&fa, pipefd[1], 1);
	posix_spawn_file_actions_adddup2(&fa, pipefd[1], 2);
	pid_t pid;
	int r = posix_spawnp(&pid, argv[0], &fa, NULL, argv, environ);
	posix_spawn_file_actions_destroy(&fa);
	safe_close(pipefd[1]);
	if (r != 0) {
		safe_close(pipefd[0]);
		return -r;
	}
	_cleanup_free_ char *out = NULL;
	size_t sz = 0;
	(void)read_full_fd(pipefd[0], 64 * 1024, &out, &sz);
	safe_close(pipefd[0]);
	int status;
	if (RETRY_EINTR(waitpid(pid, &status, 0)) < 0)
		return negative_errno();
	if (ret_output)
		*ret_output = TAKE_PTR(out);
	if (!WIFEXITED(status))
		return -ECHILD;
	return WEXITSTATUS(status) == 0 ? 0 : -EIO;
}

int storage_freeze(const VolumeFreeze *f, const char *what, BbxError *err)
{
	if (!f || !f->freeze)
		return 0;
	int r = f->freeze(f->userdata);
	if (r < 0)
		return bbx_error_set(err, r, BBX_INTERNAL,
				     "%s: cannot freeze the source's writers: %s", what,
				     strerror(-r));
	return 0;
}

int storage_thaw(const VolumeFreeze *f, const char *what, BbxError *err)
{
	if (!f || !f->thaw)
		return 0;
	int r = f->thaw(f->userdata);
	if (r < 0)
		return bbx_error_set(err, r, BBX_INTERNAL,
				     "%s: cannot thaw the source's writers: %s", what,
				     strerror(-r));
	return 0;
}

static bool ends_with(const char *s, const char *suffix)
{
	size_t a = strlen(s), b = strlen(suffix);
	return a >= b && !strcmp(s + a - b, suffix);
}

/* Is the group of this freezer file frozen now? v1 reads freezer.state, v2 cgroup.events. */
static int freezer_is_frozen(const char *file)
{
	_cleanup_free_ char *content = NULL;
	int r;

	if (ends_with(file, "freezer.state")) {
		r = read_full_file(file, 4096, &content, NULL);
		if (r < 0)
			return r;
		return !strncmp(content, "FROZEN", 6);
	}
	/* v2: ".../cgroup.freeze" -> ".../cgroup.events" has "frozen 1" */
	_cleanup_strbuf_ StrBuf sb = STRBUF_INIT;
	if (strbuf_append(&sb, file, strlen(file) - strlen("cgroup.freeze")) < 0 ||
	    strbuf_puts(&sb, "cgroup.events") < 0)
		return -ENOMEM;
	r = read_full_file(strbuf_str(&sb), 4096, &content, NULL);
	if (r < 0)
		return r;
	return strstr(content, "frozen 1") != NULL;
}

static int freezer_write(const char *file, bool freeze)
{
	if (ends_with(file, "freezer.state"))
		return write_string_file(file, freeze ? "FROZEN" : "THAWED");
	if (ends_with(file, "cgroup.freeze"))
		return write_string_file(file, freeze ? "1" : "0");
	return -EINVAL;
}

int storage_freezer_files_freeze(void *userdata)
{
	char **files = userdata;
	int r;

	for (char **f = files; f && *f; f++) {
		r = freezer_write(*f, true);
		if (r < 0) {
			(void)storage_freezer_files_thaw(userdata);
			return r;
		}
	}
	/* Freezing is asynchronous in both versions: wait until the kernel says so. */
	for (int tries = 0; tries < 1000; tries++) {
		bool all = true;
		for (char **f = files; f && *f; f++) {
			r = freezer_is_frozen(*f);
			if (r < 0) {
				(void)storage_freezer_files_thaw(userdata);
				return r;
			}
			if (!r)
				all = false;
		}
		if (all)
			return 0;
		/* v1 only retries tasks it missed (forked meanwhile, or busy in the kernel)
		 * when FROZEN is written again. */
		for (char **f = files; tries % 10 == 9 && f && *f; f++)
			if (ends_with(*f, "freezer.state"))
				(void)freezer_write(*f, true);
		(void)nanosleep(&(struct timespec){ 0, 10 * 1000 * 1000 }, NULL);
	}
	(void)storage_freezer_files_thaw(userdata);
	return -ETIMEDOUT;
}

int storage_freezer_files_thaw(void *userdata)
{
	int r = 0;
	for (char **f = userdata; f && *f; f++) {
		int q = freezer_write(*f, false);
		if (q < 0 && r == 0)
			r = q;
	}
	return r;
}
