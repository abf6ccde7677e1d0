/* SPDX-License-Identifier: MIT */
/*
 * Fuzz the resolver of agent-writable trees: any path (NULs and all) is checked by
 * beneath_path_check(); whatever it accepts is resolved beneath a scratch tree holding a
 * symlink out, a climbing symlink and a FIFO, and whatever opens must lie inside the tree.
 * The tree is made once per process and removed at exit.
 */
#include "fuzz.h"

#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "beneath.h"
#include "file-util.h"

static char tree[64];
static char root[96];
static int root_fd = -1;

static void cleanup(void)
{
	if (root_fd >= 0)
		close(root_fd);
	if (tree[0])
		(void)rm_rf(tree);
}

static int setup(void)
{
	char p[160];
	snprintf(tree, sizeof(tree), "/tmp/bbx-fuzz-beneath-XXXXXX");
	if (!mkdtemp(tree))
		abort();
	atexit(cleanup);
	snprintf(root, sizeof(root), "%s/root", tree);
	if (mkdir(root, 0755) < 0)
		abort();
	snprintf(p, sizeof(p), "%s/a", root);
	(void)mkdir(p, 0755);
	snprintf(p, sizeof(p), "%s/a/f", root);
	(void)write_file_atomic(p, "x", 1, 0644);
	snprintf(p, sizeof(p), "%s/out", root);
	(void)symlink(tree, p);
	snprintf(p, sizeof(p), "%s/a/up", root);
	(void)symlink("../..", p);
	snprintf(p, sizeof(p), "%s/fifo", root);
	(void)mkfifo(p, 0644);
	root_fd = open(root, O_PATH | O_DIRECTORY | O_CLOEXEC);
	return root_fd >= 0 ? 0 : -1;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size > 2 * BENEATH_PATH_MAX)
		return 0;
	if (root_fd < 0 && setup() < 0)
		abort();
	char *path = malloc(size + 1);
	if (!path)
		return 0;
	memcpy(path, data, size);
	path[size] = '\0';
	const char *why = NULL;
	if (beneath_path_check(path, size, true, &why) == 0) {
		int fd = beneath_open(root_fd, path, O_PATH);
		if (fd >= 0) {
			char link[64], target[PATH_MAX];
			snprintf(link, sizeof(link), "/proc/self/fd/%d", fd);
			ssize_t n = readlink(link, target, sizeof(target) - 1);
			if (n < 0)
				abort();
			target[n] = '\0';
			size_t rl = strlen(root);
			/* Inside the tree, or the tree's root itself: nothing else. */
			if (strncmp(target, root, rl) || (target[rl] && target[rl] != '/'))
				abort();
			close(fd);
		}
		int rfd = beneath_open_regular(root_fd, path, NULL);
		if (rfd >= 0)
			close(rfd);
	} else if (!why)
		abort();
	free(path);
	return 0;
}
