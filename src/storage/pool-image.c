/* SPDX-License-Identifier: MIT */
/* The host side of a pool: filesystems, the btrfs image and its loop device (pool-image.h). */
#include "pool-image.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/loop.h>
#include <linux/magic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#include "file-util.h"
#include "parse.h"
#include "storage-driver.h"
#include "strbuf.h"
#include "strv.h"

#ifndef XFS_SUPER_MAGIC
#define XFS_SUPER_MAGIC 0x58465342
#endif

char *pool_path_join(const char *a, const char *b)
{
	_cleanup_strbuf_ StrBuf sb = STRBUF_INIT;
	if (strbuf_appendf(&sb, "%s/%s", a, b) < 0)
		return NULL;
	return strbuf_detach(&sb);
}

const char *pool_fstype_name(long type)
{
	switch ((unsigned long)type) {
	case BTRFS_SUPER_MAGIC: return "btrfs";
	case XFS_SUPER_MAGIC: return "xfs";
	case EXT4_SUPER_MAGIC: return "ext4";
	case TMPFS_MAGIC: return "tmpfs";
	case OVERLAYFS_SUPER_MAGIC: return "overlay";
	default: return "other";
	}
}

int pool_path_fstype(const char *path, long *ret)
{
	struct statfs sfs;
	if (statfs(path, &sfs) < 0)
		return negative_errno();
	*ret = sfs.f_type;
	return 0;
}

bool pool_kernel_has_btrfs(void)
{
	_cleanup_free_ char *fs = NULL;
	if (read_full_file("/proc/filesystems", 1 << 20, &fs, NULL) < 0)
		return false;
	return strstr(fs, "\tbtrfs\n") != NULL;
}

bool pool_have_mkfs_btrfs(void)
{
	static const char *const dirs[] = { "/usr/sbin", "/sbin", "/usr/bin", "/bin" };
	for (size_t i = 0; i < ELEMENTSOF(dirs); i++) {
		_cleanup_free_ char *p = pool_path_join(dirs[i], "mkfs.btrfs");
		if (p && access(p, X_OK) == 0)
			return true;
	}
	return false;
}

/* True when path is the root of a mount of type btrfs (not just a dir on its parent fs). */
bool pool_is_btrfs_mountpoint(const char *path)
{
	long type;
	if (pool_path_fstype(path, &type) < 0 || (unsigned long)type != BTRFS_SUPER_MAGIC)
		return false;
	_cleanup_free_ char *parent = pool_path_join(path, "..");
	struct stat a, b;
	if (!parent || stat(path, &a) < 0 || stat(parent, &b) < 0)
		return false;
	return a.st_dev != b.st_dev;
}

static int loop_device_path(int n, char **ret)
{
	_cleanup_strbuf_ StrBuf sb = STRBUF_INIT;
	if (strbuf_appendf(&sb, "/dev/loop%d", n) < 0)
		return -ENOMEM;
	/* Without udev (containers) a fresh device may have no node yet. */
	if (access(strbuf_str(&sb), F_OK) < 0 &&
	    mknod(strbuf_str(&sb), S_IFBLK | 0660, makedev(7, n)) < 0 && errno != EEXIST)
		return negative_errno();
	*ret = strbuf_detach(&sb);
	return *ret ? 0 : -ENOMEM;
}

/* Attach image to a free loop device (autoclear) and mount it btrfs at mnt. */
int pool_loop_mount(const char *image, const char *mnt, char **ret_device, BbxError *err)
{
	_cleanup_close_ int img = open(image, O_RDWR | O_CLOEXEC | O_NOFOLLOW);
	if (img < 0) {
		int r = negative_errno();
		return bbx_error_set(err, r, BBX_INTERNAL, "cannot open pool image %s: %s", image,
				     strerror(-r));
	}
	_cleanup_close_ int ctl = open("/dev/loop-control", O_RDWR | O_CLOEXEC);
	if (ctl < 0) {
		int r = negative_errno();
		return bbx_error_set(err, r, BBX_INTERNAL, "cannot open /dev/loop-control: %s",
				     strerror(-r));
	}
	for (int attempt = 0; attempt < 16; attempt++) {
		int n = ioctl(ctl, LOOP_CTL_GET_FREE);
		if (n < 0) {
			int r = negative_errno();
			return bbx_error_set(err, r, BBX_INTERNAL, "no free loop device: %s",
					     strerror(-r));
		}
		_cleanup_free_ char *dev = NULL;
		int r = loop_device_path(n, &dev);
		if (r < 0)
			return bbx_error_set(err, r, BBX_INTERNAL, "cannot create /dev/loop%d: %s",
					     n, strerror(-r));
		_cleanup_close_ int lfd = open(dev, O_RDWR | O_CLOEXEC);
		if (lfd < 0) {
			r = negative_errno();
			return bbx_error_set(err, r, BBX_INTERNAL, "cannot open %s: %s", dev,
					     strerror(-r));
		}
		struct loop_config cfg = { .fd = (unsigned)img };
		/* Autoclear: the device detaches itself once the mount is gone. */
		cfg.info.lo_flags = LO_FLAGS_AUTOCLEAR;
		size_t len = strlen(image);
		if (len >= sizeof(cfg.info.lo_file_name))
			len = sizeof(cfg.info.lo_file_name) - 1;
		memcpy(cfg.info.lo_file_name, image, len);
		if (ioctl(lfd, LOOP_CONFIGURE, &cfg) < 0) {
			if (errno == EBUSY)
				continue; /* another process took it between GET_FREE and here */
			r = negative_errno();
			return bbx_error_set(err, r, BBX_INTERNAL, "cannot attach %s to %s: %s",
					     image, dev, strerror(-r));
		}
		if (mount(dev, mnt, "btrfs", MS_NOATIME, NULL) < 0) {
			r = negative_errno();
			(void)ioctl(lfd, LOOP_CLR_FD);
			return bbx_error_set(err, r, BBX_INTERNAL, "cannot mount %s (%s) at %s: %s",
					     image, dev, mnt, strerror(-r));
		}
		if (ret_device)
			*ret_device = TAKE_PTR(dev);
		return 0;
	}
	return bbx_error_set(err, -EBUSY, BBX_INTERNAL, "no free loop device for %s", image);
}

/* Detach any loop device still backed by image (autoclear normally did it already). */
void pool_loop_detach_image(const char *image)
{
	for (int n = 0; n < 1024; n++) {
		_cleanup_strbuf_ StrBuf sb = STRBUF_INIT;
		if (strbuf_appendf(&sb, "/sys/block/loop%d/loop/backing_file", n) < 0)
			return;
		_cleanup_free_ char *backing = NULL;
		if (read_full_file(strbuf_str(&sb), 8192, &backing, NULL) < 0)
			continue;
		backing[strcspn(backing, "\n")] = 0;
		if (strcmp(backing, image))
			continue;
		_cleanup_free_ char *dev = NULL;
		if (loop_device_path(n, &dev) < 0)
			continue;
		_cleanup_close_ int fd = open(dev, O_RDWR | O_CLOEXEC);
		if (fd >= 0)
			(void)ioctl(fd, LOOP_CLR_FD);
	}
}

static void closedirp(DIR **d)
{
	if (*d)
		closedir(*d);
}

/* The loop devices backed by image ("/dev/loopN"), from sysfs. */
int pool_loop_devices_of_image(const char *image, char ***ret)
{
	_cleanup_strv_free_ char **devs = NULL;
	_cleanup_(closedirp) DIR *d = opendir("/sys/block");
	if (!d) {
		*ret = NULL;
		return 0;
	}
	for (struct dirent *de; (de = readdir(d));) {
		if (strncmp(de->d_name, "loop", 4))
			continue;
		_cleanup_strbuf_ StrBuf sb = STRBUF_INIT;
		if (strbuf_appendf(&sb, "/sys/block/%s/loop/backing_file", de->d_name) < 0)
			return -ENOMEM;
		_cleanup_free_ char *backing = NULL;
		if (read_full_file(strbuf_str(&sb), 8192, &backing, NULL) < 0)
			continue;
		backing[strcspn(backing, "\n")] = 0;
		if (strcmp(backing, image))
			continue;
		if (strv_pushf(&devs, "/dev/%s", de->d_name) < 0)
			return -ENOMEM;
	}
	*ret = TAKE_PTR(devs);
	return 0;
}

int pool_make_image(const char *pool_dir, const char *image, const char *mnt, uint64_t size,
		    BbxError *err)
{
	int r = mkdir_p(mnt, 0700);
	if (r < 0)
		return bbx_error_set(err, r, BBX_INTERNAL, "cannot create %s: %s", mnt,
				     strerror(-r));
	/* Sparse: the image costs only what the pool holds. */
	_cleanup_close_ int fd =
		open(image, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, 0600);
	if (fd < 0) {
		r = negative_errno();
		return bbx_error_set(err, r, BBX_INTERNAL, "cannot create %s: %s", image,
				     strerror(-r));
	}
	if (ftruncate(fd, (off_t)size) < 0) {
		r = negative_errno();
		return bbx_error_set(err, r, BBX_INTERNAL, "cannot size %s: %s", image,
				     strerror(-r));
	}
	fd = safe_close(fd);
	_cleanup_free_ char *out = NULL;
	char *argv[] = { (char *)"mkfs.btrfs", (char *)"-q", (char *)"-f", (char *)image, NULL };
	r = storage_run(argv, &out);
	if (r < 0)
		return bbx_error_set(err, r, BBX_INTERNAL, "mkfs.btrfs %s failed: %s", image,
				     out && *out ? out : strerror(-r));
	return 0;
}
