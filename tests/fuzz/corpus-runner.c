/* SPDX-License-Identifier: MIT */
/*
 * Replay a fuzz corpus through LLVMFuzzerTestOneInput once, without libFuzzer, so that
 * `make check` runs every target over its corpus under ASan+UBSan in a normal build.
 * Usage: fuzz-NAME-corpus DIR|FILE...   Prints TAP: "ok N - FILE" per input.
 */
#include "fuzz.h"

#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "file-util.h"
#include "macro.h"

#define CORPUS_MAX_INPUT (4 * 1024 * 1024)

static int cmp_str(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

static int add(char ***list, size_t *n, const char *path)
{
	char **l = reallocarray(*list, *n + 1, sizeof(char *));
	if (!l)
		return -ENOMEM;
	*list = l;
	l[*n] = strdup(path);
	if (!l[*n])
		return -ENOMEM;
	(*n)++;
	return 0;
}

static int collect(const char *path, char ***list, size_t *n)
{
	struct stat st;
	DIR *d;
	struct dirent *de;
	int r = 0;

	if (stat(path, &st) < 0)
		return negative_errno();
	if (!S_ISDIR(st.st_mode))
		return add(list, n, path);
	d = opendir(path);
	if (!d)
		return negative_errno();
	while (r >= 0 && (de = readdir(d))) {
		_cleanup_free_ char *p = NULL;
		if (de->d_name[0] == '.')
			continue;
		if (asprintf(&p, "%s/%s", path, de->d_name) < 0) {
			p = NULL;
			r = -ENOMEM;
			break;
		}
		if (stat(p, &st) == 0 && S_ISREG(st.st_mode))
			r = add(list, n, p);
	}
	closedir(d);
	return r;
}

int main(int argc, char **argv)
{
	char **files = NULL;
	size_t n = 0;
	int failed = 0;

	for (int i = 1; i < argc; i++) {
		int r = collect(argv[i], &files, &n);
		if (r < 0) {
			printf("Bail out! %s: %s\n", argv[i], strerror(-r));
			return 1;
		}
	}
	if (n == 0) {
		printf("Bail out! empty corpus\n");
		return 1;
	}
	qsort(files, n, sizeof(char *), cmp_str);
	printf("1..%zu\n", n);
	for (size_t i = 0; i < n; i++) {
		_cleanup_free_ char *data = NULL;
		size_t size = 0;
		int r = read_full_file(files[i], CORPUS_MAX_INPUT, &data, &size);
		if (r < 0) {
			printf("not ok %zu - %s # %s\n", i + 1, files[i], strerror(-r));
			failed = 1;
		} else {
			fflush(stdout);
			LLVMFuzzerTestOneInput((const uint8_t *)data, size);
			printf("ok %zu - %s\n", i + 1, files[i]);
		}
		free(files[i]);
	}
	free(files);
	return failed;
}
