/* SPDX-License-Identifier: MIT */
/*
 * state_down(): remove what a stopped daemon's state dir holds on the host (see down.h).
 * It works from the state dir's layout alone (daemon.lock, run/netns, pool.json, the cgroup
 * prefix), so it needs no daemon, no database and no repository.
 */
#include "down.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <unistd.h>

#include "file-util.h"
#include "macro.h"
#include "parse.h"
#include "sandbox-cgroup.h"
#include "sandbox.h"
#include "storage.h"
#include "strbuf.h"
#include "strv.h"

#define CGROUP_ROOT "/sys/fs/cgroup"

static void closedirp(DIR **d)
{
	if (*d)
		closedir(*d);
}

void state_down_report_done(StateDownReport *r)
{
	if (!r)
		return;
	free(r->state_dir);
	strv_free(r->cgroups);
	strv_free(r->netns);
	free(r->pool_mount);
	strv_free(r->loop_devices);
	strv_free(r->mounts);
	*r = (StateDownReport){};
}

bool state_down_report_empty(const StateDownReport *r)
{
	return !r->cgroups && !r->netns && !r->pool_mount && !r->loop_devices && !r->mounts;
}

int state_cgroup_prefix(const char *state_dir, char *buf, size_t size)
{
	unsigned char h[crypto_hash_sha256_BYTES];
	if (size < 11)
		return -ENOBUFS;
	crypto_hash_sha256(h, (const unsigned char *)state_dir, strlen(state_dir));
	snprintf(buf, size, "d-%02x%02x%02x%02x", h[0], h[1], h[2], h[3]);
	return 0;
}

/* Keep the first error: later steps still run, so one failure does not leave the rest. */
static int keep_first(int r, int first)
{
	return first < 0 ? first : r;
}

/* ---- the daemon lock ---- */

static int take_daemon_lock(const char *state, int *ret_fd, BbxError *err)
{
	_cleanup_strbuf_ StrBuf p = STRBUF_INIT;
	if (strbuf_appendf(&p, "%s/daemon.lock", state) < 0)
		return bbx_error_set(err, -ENOMEM, BBX_INTERNAL, "out of memory");
	_cleanup_close_ int fd =
		open(strbuf_str(&p), O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600);
	if (fd < 0) {
		int r = negative_errno();
		return bbx_error_set(err, r, BBX_INTERNAL, "cannot open %s: %s", strbuf_str(&p),
				     strerror(-r));
	}
	if (flock(fd, LOCK_EX | LOCK_NB) < 0) {
		int r = negative_errno();
		if (r != -EWOULDBLOCK)
			return bbx_error_set(err, r, BBX_INTERNAL, "cannot lock %s: %s",
					     strbuf_str(&p), strerror(-r));
		char pid[32] = "";
		ssize_t n = pread(fd, pid, sizeof(pid) - 1, 0);
		if (n > 0)
			pid[strcspn(pid, "\n")] = 0;
		return bbx_error_set(err, -EBUSY, BBX_CONFLICT,
				     "a daemon%s%s is serving %s (it holds %s): stop it first",
				     n > 0 && *pid ? " with pid " : "", n > 0 ? pid : "", state,
				     strbuf_str(&p));
	}
	*ret_fd = TAKE_FD(fd);
	return 0;
}

/* ---- cgroups ---- */

/* Kill what is left in the state dir's cgroups (in every hierarchy) and remove them. */
static int remove_cgroups(const char *state, StateDownReport *rep, BbxError *err)
{
	char prefix[16];
	int r = state_cgroup_prefix(state, prefix, sizeof(prefix));
	if (r < 0)
		return bbx_error_set(err, r, BBX_INTERNAL, "cgroup prefix of %s", state);
	return sandbox_cgroup_remove_tree(CGROUP_ROOT, prefix, &rep->cgroups, err);
}

/* ---- network namespaces ---- */

static int remove_netns(const char *state, StateDownReport *rep, BbxError *err)
{
	_cleanup_free_ char *dir = NULL;
	if (asprintf(&dir, "%s/run/netns", state) < 0)
		return bbx_error_set(err, -ENOMEM, BBX_INTERNAL, "out of memory");
	_cleanup_(closedirp) DIR *d = opendir(dir);
	if (!d) {
		if (errno == ENOENT)
			return 0;
		int r = negative_errno();
		return bbx_error_set(err, r, BBX_INTERNAL, "cannot open %s: %s", dir, strerror(-r));
	}
	int first = 0;
	for (struct dirent *de; (de = readdir(d));) {
		if (!strcmp(de->d_name, ".") || !strcmp(de->d_name, ".."))
			continue;
		_cleanup_free_ char *path = NULL;
		if (asprintf(&path, "%s/%s", dir, de->d_name) < 0)
			return bbx_error_set(err, -ENOMEM, BBX_INTERNAL, "out of memory");
		BbxError e = BBX_ERROR_INIT;
		int r = sandbox_netns_remove(path, &e);
		if (r < 0) {
			if (first >= 0)
				first = bbx_error_set(err, r, e.kind, "%s",
						      bbx_error_message(&e, r));
			continue;
		}
		if (strv_push(&rep->netns, path) < 0)
			return bbx_error_set(err, -ENOMEM, BBX_INTERNAL, "out of memory");
	}
	return first;
}

/* ---- the pool ---- */

static int take_pool_down(const char *state, StateDownReport *rep, BbxError *err)
{
	_cleanup_close_ int lock = -EBADF;
	int r = pool_lock(state, &lock, err);
	if (r < 0)
		return r;
	return pool_unmount(state, &rep->pool_mount, &rep->loop_devices, err);
}

/* ---- whatever else is mounted under the state dir ---- */

/* mountinfo escapes space, tab, newline and backslash as \ooo. */
static void unescape_octal(char *s)
{
	char *w = s;
	for (const char *r = s; *r;) {
		if (r[0] == '\\' && r[1] >= '0' && r[1] <= '3' && r[2] >= '0' && r[2] <= '7' &&
		    r[3] >= '0' && r[3] <= '7') {
			*w++ = (char)(((r[1] - '0') << 6) | ((r[2] - '0') << 3) | (r[3] - '0'));
			r += 4;
		} else
			*w++ = *r++;
	}
	*w = 0;
}

/* Mount points below state, deepest first. */
static int mounts_under(const char *state, char ***ret)
{
	_cleanup_fclose_ FILE *f = fopen("/proc/self/mountinfo", "re");
	if (!f)
		return negative_errno();
	_cleanup_strv_free_ char **l = NULL;
	size_t len = strlen(state);
	char line[8192];
	while (fgets(line, sizeof(line), f)) {
		/* id parent major:minor root mountpoint ... */
		char *save = NULL, *field = strtok_r(line, " \n", &save);
		for (int i = 0; i < 4 && field; i++)
			field = strtok_r(NULL, " \n", &save);
		if (!field)
			continue;
		unescape_octal(field);
		/* Strictly below: a state dir that is itself a mount point is the host's. */
		if (strncmp(field, state, len) || field[len] != '/')
			continue;
		if (!strv_contains(l, field) && strv_push(&l, field) < 0)
			return -ENOMEM;
	}
	strv_sort_deepest_first(l);
	*ret = TAKE_PTR(l);
	return 0;
}

static int remove_other_mounts(const char *state, StateDownReport *rep, BbxError *err)
{
	/* Stacked mounts show one at a time: a few passes. */
	for (int pass = 0; pass < 8; pass++) {
		_cleanup_strv_free_ char **l = NULL;
		int r = mounts_under(state, &l);
		if (r < 0)
			return bbx_error_set(err, r, BBX_INTERNAL,
					     "cannot read /proc/self/mountinfo: %s", strerror(-r));
		if (!l)
			return 0;
		for (size_t i = 0; l[i]; i++) {
			if (umount2(l[i], MNT_DETACH | UMOUNT_NOFOLLOW) < 0) {
				r = negative_errno();
				return bbx_error_set(err, r, BBX_INTERNAL, "cannot unmount %s: %s",
						     l[i], strerror(-r));
			}
			if (!strv_contains(rep->mounts, l[i]) && strv_push(&rep->mounts, l[i]) < 0)
				return bbx_error_set(err, -ENOMEM, BBX_INTERNAL, "out of memory");
		}
	}
	return bbx_error_set(err, -EBUSY, BBX_CONFLICT, "mounts under %s keep coming back", state);
}

int state_down(const char *state_dir, StateDownReport *ret, BbxError *err)
{
	*ret = (StateDownReport){};
	_cleanup_free_ char *state = realpath(state_dir, NULL);
	if (!state) {
		int r = negative_errno();
		return bbx_error_set(err, r, r == -ENOENT ? BBX_NOT_FOUND : BBX_INVALID,
				     "state dir %s: %s", state_dir, strerror(-r));
	}
	struct stat st;
	if (stat(state, &st) < 0 || !S_ISDIR(st.st_mode))
		return bbx_error_set(err, -ENOTDIR, BBX_INVALID, "state dir %s is not a directory",
				     state_dir);
	_cleanup_close_ int lock = -EBADF;
	int r = take_daemon_lock(state, &lock, err);
	if (r < 0)
		return r;
	ret->state_dir = strdup(state);
	if (!ret->state_dir)
		return bbx_error_set(err, -ENOMEM, BBX_INTERNAL, "out of memory");

	/* Processes first: they hold the namespaces and the pool's files open. */
	int first = remove_cgroups(state, ret, err);
	r = remove_netns(state, ret, first < 0 ? NULL : err);
	first = keep_first(r, first);
	r = take_pool_down(state, ret, first < 0 ? NULL : err);
	first = keep_first(r, first);
	r = remove_other_mounts(state, ret, first < 0 ? NULL : err);
	first = keep_first(r, first);
	return first;
}
