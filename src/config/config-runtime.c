/* SPDX-License-Identifier: MIT */
#include "config.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "macro.h"
#include "strbuf.h"

extern char **environ;

#define ASK_VERSION_TIMEOUT_MS 5000

/*
 * Where each runtime's versions live on a Debian host. Versioned binaries (python3.11,
 * php8.2, ruby3.1) sit in a directory as PREFIX+VERSION; Go toolchains are directories
 * go-VERSION; Node.js has one unversioned binary that is asked for its version.
 */
typedef enum RuntimeLayout {
	LAYOUT_VERSIONED_FILE,
	LAYOUT_VERSIONED_DIR,
	LAYOUT_ASK_BINARY,
} RuntimeLayout;

static const struct {
	const char *runtime;
	RuntimeLayout layout;
	const char *dir;    /* relative to root */
	const char *prefix; /* file or directory name before the version */
	const char *inside; /* for LAYOUT_VERSIONED_DIR: the binary inside it */
} runtime_table[] = {
	{ "python", LAYOUT_VERSIONED_FILE, "usr/bin", "python", NULL },
	{ "php", LAYOUT_VERSIONED_FILE, "usr/bin", "php", NULL },
	{ "ruby", LAYOUT_VERSIONED_FILE, "usr/bin", "ruby", NULL },
	{ "golang", LAYOUT_VERSIONED_DIR, "usr/lib", "go-", "bin/go" },
	{ "nodejs", LAYOUT_ASK_BINARY, "usr/bin", "node", NULL },
};

static bool is_version(const char *s)
{
	return s[0] >= '0' && s[0] <= '9' && strspn(s, "0123456789.") == strlen(s);
}

static bool executable(const char *path)
{
	struct stat st;
	return stat(path, &st) == 0 && S_ISREG(st.st_mode) && (st.st_mode & 0111);
}

static int cmp_str(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

/* The names in root/dir that look like PREFIX+VERSION, sorted and comma-separated. */
static int list_found(const char *root, const char *dir, const char *prefix, StrBuf *out)
{
	_cleanup_free_ char *path = NULL;
	char **names = NULL;
	size_t n = 0;
	DIR *d;
	struct dirent *de;
	int r = 0;

	if (asprintf(&path, "%s/%s", root, dir) < 0) {
		path = NULL;
		return -ENOMEM;
	}
	d = opendir(path);
	if (!d)
		return 0;
	while ((de = readdir(d))) {
		size_t plen = strlen(prefix);
		char **nn;
		/* Only full versions: "python3" is an alias of one of the "python3.N". */
		if (strncmp(de->d_name, prefix, plen) || !is_version(de->d_name + plen) ||
		    !strchr(de->d_name + plen, '.'))
			continue;
		nn = reallocarray(names, n + 1, sizeof(char *));
		if (!nn) {
			r = -ENOMEM;
			break;
		}
		names = nn;
		names[n] = strdup(de->d_name);
		if (!names[n]) {
			r = -ENOMEM;
			break;
		}
		n++;
	}
	closedir(d);
	if (r >= 0 && n > 0)
		qsort(names, n, sizeof(char *), cmp_str);
	for (size_t i = 0; i < n; i++) {
		if (r >= 0)
			r = strbuf_appendf(out, "%s%s", out->len ? ", " : "", names[i]);
		free(names[i]);
	}
	free(names);
	return r;
}

/* Run "binary --version" and return its first line (e.g. "v20.11.1"); "" when it fails. */
static int ask_version(const char *binary, char *buf, size_t size)
{
	int fds[2];
	posix_spawn_file_actions_t fa;
	pid_t pid;
	char *argv[] = { (char *)binary, (char *)"--version", NULL };
	size_t n = 0;
	int r, status;

	buf[0] = '\0';
	if (pipe2(fds, O_CLOEXEC) < 0)
		return negative_errno();
	posix_spawn_file_actions_init(&fa);
	posix_spawn_file_actions_adddup2(&fa, fds[1], STDOUT_FILENO);
	posix_spawn_file_actions_addopen(&fa, STDIN_FILENO, "/dev/null", O_RDONLY, 0);
	posix_spawn_file_actions_addopen(&fa, STDERR_FILENO, "/dev/null", O_WRONLY, 0);
	r = posix_spawn(&pid, binary, &fa, NULL, argv, environ);
	posix_spawn_file_actions_destroy(&fa);
	safe_close(fds[1]);
	if (r != 0) {
		safe_close(fds[0]);
		return 0;
	}
	while (n + 1 < size) {
		/* A runtime that does not answer within seconds counts as not installed. */
		struct pollfd pfd = { .fd = fds[0], .events = POLLIN };
		if (RETRY_EINTR(poll(&pfd, 1, ASK_VERSION_TIMEOUT_MS)) <= 0)
			break;
		ssize_t k = RETRY_EINTR(read(fds[0], buf + n, size - 1 - n));
		if (k <= 0)
			break;
		n += (size_t)k;
	}
	buf[n] = '\0';
	safe_close(fds[0]);
	/* Reap it even if it keeps running with its stdout closed. */
	if (RETRY_EINTR(waitpid(pid, &status, WNOHANG)) == 0) {
		kill(pid, SIGKILL);
		RETRY_EINTR(waitpid(pid, &status, 0));
	}
	buf[strcspn(buf, "\r\n")] = '\0';
	return 0;
}

/* "20" matches "v20.11.1", "20.11" too, "2" does not. */
static bool version_matches(const char *want, const char *have)
{
	size_t n = strlen(want);
	if (have[0] == 'v')
		have++;
	return !strncmp(have, want, n) && (have[n] == '\0' || have[n] == '.');
}

int config_check_runtimes(const ProjectConfig *c, const char *root, ConfigDiagnostics *diag)
{
	int ret = 0;

	if (!root || !*root)
		root = "/";
	for (size_t i = 0; i < c->n_applications; i++) {
		const ConfigApplication *app = &c->applications[i];
		_cleanup_strbuf_ StrBuf found = STRBUF_INIT;
		_cleanup_free_ char *want = NULL;
		char path[320], version[128];
		bool ok = false;
		size_t t;
		int r = 0;

		if (!app->runtime || !app->runtime_version)
			continue;
		for (t = 0; t < ELEMENTSOF(runtime_table); t++)
			if (!strcmp(runtime_table[t].runtime, app->runtime))
				break;
		if (t == ELEMENTSOF(runtime_table))
			continue; /* the parser already refused it */

		switch (runtime_table[t].layout) {
		case LAYOUT_VERSIONED_FILE:
		case LAYOUT_VERSIONED_DIR: {
			/* DIR/PREFIXVERSION, or DIR/PREFIXVERSION/INSIDE */
			bool in_dir = runtime_table[t].layout == LAYOUT_VERSIONED_DIR;
			r = asprintf(&want, "%s/%s/%s%s%s%s", root, runtime_table[t].dir,
				     runtime_table[t].prefix, app->runtime_version,
				     in_dir ? "/" : "", in_dir ? runtime_table[t].inside : "");
			if (r < 0) {
				want = NULL; /* undefined after a failed asprintf */
				break;
			}
			ok = executable(want);
			if (!ok)
				r = list_found(root, runtime_table[t].dir, runtime_table[t].prefix,
					       &found);
			break;
		}
		case LAYOUT_ASK_BINARY:
			snprintf(path, sizeof(path), "%s/%s/%s", root, runtime_table[t].dir,
				 runtime_table[t].prefix);
			if (!executable(path))
				break;
			r = ask_version(path, version, sizeof(version));
			if (r < 0)
				break;
			ok = version_matches(app->runtime_version, version);
			if (!ok && version[0])
				r = strbuf_appendf(&found, "%s %s", app->runtime, version);
			break;
		}
		if (r < 0)
			return -ENOMEM;
		if (ok)
			continue;
		ret = -ENOENT;
		snprintf(path, sizeof(path), "applications.%s.type", app->name);
		r = config_diagnostics_add(diag, CONFIG_SEVERITY_ERROR, c->file, app->type_pos.line,
					   app->type_pos.column, path,
					   "runtime %s is not installed on this host (found %s)",
					   app->type, found.len ? strbuf_str(&found) : "none");
		if (r < 0)
			return r;
	}
	return ret;
}
