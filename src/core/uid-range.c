/* SPDX-License-Identifier: MIT */
#include "uid-range.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <unistd.h>

#include "file-util.h"
#include "macro.h"
#include "parse.h"

#define ETC_FILE_MAX (16u << 20)
#define CLAIM_MAX 8192

int uid_range_parse(const char *s, UidRange *ret, BbxError *err)
{
	char first[16], last[16];
	const char *dash = s ? strchr(s, '-') : NULL;
	UidRange r;

	if (!dash || (size_t)(dash - s) >= sizeof(first) || strlen(dash + 1) >= sizeof(last))
		return bbx_error_set(err, -EINVAL, BBX_INVALID, "uid range '%s': want FIRST-LAST",
				     s ? s : "");
	memcpy(first, s, (size_t)(dash - s));
	first[dash - s] = '\0';
	memcpy(last, dash + 1, strlen(dash + 1) + 1);
	if (parse_uint32(first, &r.first) < 0 || parse_uint32(last, &r.last) < 0)
		return bbx_error_set(err, -EINVAL, BBX_INVALID, "uid range '%s': want FIRST-LAST",
				     s);
	if (r.first < UID_RANGE_MIN || r.last > UID_RANGE_MAX || r.last <= r.first)
		return bbx_error_set(err, -ERANGE, BBX_INVALID,
				     "uid range '%s': want %u <= FIRST < LAST <= %u (an "
				     "environment takes two uids)",
				     s, UID_RANGE_MIN, UID_RANGE_MAX);
	*ret = r;
	return 0;
}

static bool overlaps(const UidRange *r, uint64_t first, uint64_t count)
{
	return count > 0 && first <= r->last && first + count - 1 >= r->first;
}

/* "name:x:ID:..." (passwd, group: field 3) or "name:FIRST:COUNT" (subuid, subgid). */
static int check_file(const UidRange *range, const char *etc_dir, const char *file, bool sub,
		      BbxError *err)
{
	char path[4096];
	_cleanup_free_ char *text = NULL;

	snprintf(path, sizeof(path), "%s/%s", etc_dir, file);
	int r = read_full_file(path, ETC_FILE_MAX, &text, NULL);
	if (r == -ENOENT)
		return 0;
	if (r < 0)
		return bbx_error_set(err, r, BBX_INTERNAL, "%s: %s", path, strerror(-r));
	unsigned line = 0;
	for (char *l = text, *next; l; l = next) {
		next = strchr(l, '\n');
		if (next)
			*next++ = '\0';
		line++;
		char *f[4] = { l };
		size_t n = 1;
		for (char *c = l; *c && n < ELEMENTSOF(f); c++)
			if (*c == ':') {
				*c = '\0';
				f[n++] = c + 1;
			}
		uint32_t first, count = 1;
		if (n < 3 || parse_uint32(sub ? f[1] : f[2], &first) < 0 ||
		    (sub && parse_uint32(f[2], &count) < 0))
			continue; /* comments, blank and foreign lines */
		if (!overlaps(range, first, count))
			continue;
		if (sub)
			return bbx_error_set(
				err, -EEXIST, BBX_INVALID,
				"uid range %u-%u: %s line %u ('%s') delegates ids %u-%llu",
				range->first, range->last, path, line, f[0], first,
				(unsigned long long)first + count - 1);
		return bbx_error_set(err, -EEXIST, BBX_INVALID,
				     "uid range %u-%u: %s line %u ('%s') has id %u", range->first,
				     range->last, path, line, f[0], first);
	}
	return 0;
}

int uid_range_check_host(const UidRange *range, const char *etc_dir, BbxError *err)
{
	static const struct {
		const char *file;
		bool sub;
	} files[] = {
		{ "passwd", false }, { "group", false }, { "subuid", true }, { "subgid", true }
	};
	for (size_t i = 0; i < ELEMENTSOF(files); i++) {
		int r = check_file(range, etc_dir ? etc_dir : "/etc", files[i].file, files[i].sub,
				   err);
		if (r < 0)
			return r;
	}
	return 0;
}

/* With the registry locked: fail when a live entry overlaps range; drop entries nobody holds. */
static int check_claims(int dfd, const UidRange *range, BbxError *err)
{
	int d2 = fcntl(dfd, F_DUPFD_CLOEXEC, 3);
	DIR *d = d2 >= 0 ? fdopendir(d2) : NULL;
	if (!d) {
		safe_close(d2);
		return bbx_error_set(err, -errno, BBX_INTERNAL, "uid range registry: %m");
	}
	int r = 0;
	struct dirent *de;
	while (r >= 0 && (de = readdir(d))) {
		if (de->d_name[0] == '.')
			continue;
		_cleanup_close_ int fd = openat(dfd, de->d_name, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
		if (fd < 0)
			continue;
		if (flock(fd, LOCK_SH | LOCK_NB) == 0) {
			/* Its daemon is gone (the lock went with it). */
			(void)unlinkat(dfd, de->d_name, 0);
			continue;
		}
		_cleanup_free_ char *text = NULL;
		if (read_full_fd(fd, CLAIM_MAX, &text, NULL) < 0)
			continue;
		/* "FIRST LAST STATE_DIR\n" */
		text[strcspn(text, "\n")] = '\0';
		char *last = strchr(text, ' ');
		char *dir = last ? strchr(last + 1, ' ') : NULL;
		if (!dir)
			continue;
		*last++ = '\0';
		*dir++ = '\0';
		UidRange other;
		if (parse_uint32(text, &other.first) < 0 || parse_uint32(last, &other.last) < 0 ||
		    other.last < other.first)
			continue;
		if (overlaps(range, other.first, (uint64_t)other.last - other.first + 1))
			r = bbx_error_set(err, -EBUSY, BBX_CONFLICT,
					  "uid range %u-%u overlaps %u-%u of the running daemon "
					  "with state %s: "
					  "give each daemon its own --uid-range",
					  range->first, range->last, other.first, other.last, dir);
	}
	closedir(d);
	return r;
}

int uid_range_claim(const UidRange *range, const char *state_dir, const char *registry, int *ret_fd,
		    BbxError *err)
{
	if (!registry)
		registry = UID_RANGE_REGISTRY;
	int r = mkdir_p(registry, 0700);
	if (r < 0)
		return bbx_error_set(err, r, BBX_INTERNAL, "%s: %s", registry, strerror(-r));
	_cleanup_close_ int dfd = open(registry, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	/* One daemon at a time looks and claims: two starting together cannot both see a gap. */
	if (dfd < 0 || flock(dfd, LOCK_EX) < 0)
		return bbx_error_set(err, -errno, BBX_INTERNAL, "%s: %m", registry);
	r = check_claims(dfd, range, err);
	if (r < 0)
		return r;

	unsigned char h[crypto_hash_sha256_BYTES];
	char name[2 * 8 + 1];
	crypto_hash_sha256(h, (const unsigned char *)state_dir, strlen(state_dir));
	sodium_bin2hex(name, sizeof(name), h, 8);
	_cleanup_close_ int fd = openat(dfd, name, O_RDWR | O_CREAT | O_NOFOLLOW | O_CLOEXEC, 0600);
	if (fd < 0 || flock(fd, LOCK_EX | LOCK_NB) < 0)
		return bbx_error_set(err, -errno, BBX_INTERNAL, "%s/%s: %m", registry, name);
	char line[4200];
	int n = snprintf(line, sizeof(line), "%u %u %s\n", range->first, range->last, state_dir);
	if (n < 0 || (size_t)n >= sizeof(line))
		return bbx_error_set(err, -ENAMETOOLONG, BBX_INVALID,
				     "state directory path too long");
	if (ftruncate(fd, 0) < 0 || write_all(fd, line, (size_t)n) < 0)
		return bbx_error_set(err, -errno, BBX_INTERNAL, "%s/%s: %m", registry, name);
	*ret_fd = TAKE_FD(fd);
	return 0;
}
