/* The maildrop lock by kind: flock for one host, or an NFS-safe dotlock made by liblockfile. */
#include "maildir.h"
#include "maildir_int.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <lockfile.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "log.h"
#include "strnum.h"

_Static_assert(MAILDIR_DOTLOCK_TOUCH_SEC * 3 <= MAILDIR_DOTLOCK_STALE_SEC,
               "a live holder must refresh several times within the stale age");
/* HOST_NAME_MAX (64) and a pid of 10 digits fit the content limit. */
_Static_assert(10 + 1 + HOST_NAME_MAX + 1 <= MAILDIR_DOTLOCK_CONTENT_MAX, "holder line");

/* Why two hosts are safe:
 * - Taking the lock is liblockfile's link() of a unique temp file (named after pid and host)
 *   followed by a comparison of the lock's inode with the temp file's: only one link can win
 *   on an NFS server, and a lost reply to a link that did succeed is still recognised as ours.
 * - A lock is taken over only when it is stale. A pid is checked only when the lock names this
 *   host (or no host, as `dotlockfile -p` writes, whose own rule is the same): host B must never
 *   judge host A's pid. Any lock, from any host, is stale once it was not touched for
 *   MAILDIR_DOTLOCK_STALE_SEC by this host's clock against the mtime the file server stamped:
 *   the clocks must agree (NTP) to well under the margin between the touch interval and the
 *   stale age, four minutes. A live holder touches its lock every
 *   MAILDIR_DOTLOCK_TOUCH_SEC and checks at each touch, and at QUIT, that the file is still its
 *   own: a holder that stalled past the stale age (a hung NFS mount) finds out and stops before
 *   it changes the maildrop.
 * - Removing a stale lock races with another session removing it and taking a fresh lock: we
 *   remove only the file we judged (same device, inode and ctime), the window left being the
 *   microseconds between that check and unlink(), as in liblockfile itself. */

static int dotlock_path(const char *dir, char *buf, size_t size)
{
	int n = snprintf(buf, size, "%s/%s", dir, MAILDIR_DOTLOCK_NAME);

	if (n < 0 || (size_t)n >= size) {
		errno = ENAMETOOLONG;
		return -1;
	}
	return 0;
}

/* "PID HOST\n" for this process, as written into our lock files. */
static int holder_line(char *buf, size_t size)
{
	char host[HOST_NAME_MAX + 1];
	int n;

	if (gethostname(host, sizeof(host)) < 0)
		return -1;
	host[sizeof(host) - 1] = '\0';
	n = snprintf(buf, size, "%ld %s\n", (long)getpid(), host);
	if (n < 0 || (size_t)n >= size) {
		errno = ENAMETOOLONG;
		return -1;
	}
	return n;
}

/* Whether BUF (a lock file's content) names a process of this host that no longer exists. A
 * lock without a pid ("0\n" from liblockfile without L_PID) or from another host: never. */
static bool holder_gone(const char *buf)
{
	char host[HOST_NAME_MAX + 1];
	size_t plen = strspn(buf, "0123456789");
	const char *rest = buf + plen;
	uint64_t pid;

	if (strnum_u64(buf, plen, 1, INT_MAX, &pid) < 0)
		return false;
	if (*rest == ' ') {
		size_t hlen = strcspn(rest + 1, "\n");

		if (gethostname(host, sizeof(host)) < 0)
			return false;
		host[sizeof(host) - 1] = '\0';
		if (hlen != strlen(host) || memcmp(rest + 1, host, hlen) != 0)
			return false;
	} else if (*rest != '\n' && *rest != '\0') {
		return false;
	}
	/* EPERM: alive under another uid (per-connection mode runs as the user). */
	return kill((pid_t)pid, 0) < 0 && errno == ESRCH;
}

/* Remove the lock at PATH if it is stale: its holder on this host is dead, or nobody touched it
 * for MAILDIR_DOTLOCK_STALE_SEC. liblockfile has an age rule too, but it takes "now" from the
 * atime before its own read, which a first read under relatime makes the lock's last touch: a
 * dead session's lock would look fresh to the first login after it. True when removed. */
static bool remove_if_stale(const char *path)
{
	char buf[MAILDIR_DOTLOCK_CONTENT_MAX + 1], shown[4 * MAILDIR_DOTLOCK_CONTENT_MAX + 1];
	struct stat seen, now;
	ssize_t n;
	int fd = open(path, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC);

	if (fd < 0)
		return false;
	n = -1;
	if (fstat(fd, &seen) == 0 && S_ISREG(seen.st_mode))
		n = read(fd, buf, sizeof(buf) - 1);
	close(fd);
	if (n < 0)
		return false;
	buf[n] = '\0';
	if (time(NULL) - seen.st_mtime < MAILDIR_DOTLOCK_STALE_SEC && !holder_gone(buf))
		return false;
	/* Only the file we judged, not a fresh lock another session made meanwhile. */
	if (lstat(path, &now) < 0 || now.st_dev != seen.st_dev || now.st_ino != seen.st_ino ||
	    now.st_ctim.tv_sec != seen.st_ctim.tv_sec ||
	    now.st_ctim.tv_nsec != seen.st_ctim.tv_nsec)
		return false;
	if (unlink(path) < 0)
		return false;
	/* The content is the Maildir owner's to write: sanitised before it reaches the log. */
	log_info("event=stale_lock_removed lock=%s holder=\"%s\"", path,
	         log_sanitize(shown, sizeof(shown), buf, strcspn(buf, "\n")));
	return true;
}

/* We won the link: open our lock file, remember which file it is, and write the holder. */
static int dotlock_claim(struct maildir_lockh *h)
{
	char line[MAILDIR_DOTLOCK_CONTENT_MAX];
	struct stat st;
	int n, e, fd;

	fd = open(h->path, O_RDWR | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC);
	if (fd < 0)
		goto fail;
	if (fstat(fd, &st) < 0)
		goto fail;
	n = holder_line(line, sizeof(line));
	if (n < 0 || ftruncate(fd, 0) < 0 || pwrite(fd, line, (size_t)n, 0) != n)
		goto fail;
	h->fd = fd;
	h->dev = st.st_dev;
	h->ino = st.st_ino;
	return 0;
fail:
	e = errno != 0 ? errno : EIO;
	if (fd >= 0)
		close(fd);
	unlink(h->path);
	errno = e;
	return -1;
}

/* liblockfile opens an existing lock without O_NONBLOCK: a FIFO planted as the lock file would
 * hang the whole mail process, so anything but a regular file is refused first. */
static int dotlock_sane(const char *path)
{
	struct stat st;

	if (lstat(path, &st) < 0)
		return errno == ENOENT ? 0 : -1;
	if (!S_ISREG(st.st_mode)) {
		errno = EINVAL;
		return -1;
	}
	return 0;
}

static int dotlock_take(const char *dir, struct maildir_lockh *h)
{
	char path[GANNET_PATH_MAX];
	int r;

	if (dotlock_path(dir, path, sizeof(path)) < 0)
		return -1;
	if ((h->path = strdup(path)) == NULL)
		return -1;
	/* liblockfile runs the setgid-mail dotlockfile helper when it cannot write the directory:
	 * a mail process must never fork that, so a missing or foreign Maildir stops here. */
	if (faccessat(AT_FDCWD, dir, W_OK, AT_EACCESS) < 0) {
		if (errno != ENOENT || maildir_create(dir) < 0)
			return -1;
	}
	if (dotlock_sane(h->path) < 0)
		return -1;
	/* Retries 0: one link() attempt (and one more after removing a lock liblockfile found
	 * stale by age), never a sleep. No L_PID: its stale rule would judge other hosts' pids. */
	r = lockfile_create(h->path, 0, 0);
	if (r == L_MAXTRYS && remove_if_stale(h->path))
		r = lockfile_create(h->path, 0, 0);
	if (r == L_MAXTRYS)
		return -2;
	if (r != L_SUCCESS) {
		if (errno == 0)
			errno = EIO;
		return -1;
	}
	return dotlock_claim(h);
}

static void dotlock_forget(struct maildir_lockh *h)
{
	int e = errno;

	free(h->path);
	h->path = NULL;
	errno = e;
}

int maildir_lock_mode(const char *dir, enum maildir_lock_kind kind, struct maildir_lockh *h)
{
	int r;

	h->fd = -1;
	h->kind = kind;
	h->path = NULL;
	if (kind == MAILDIR_LOCK_DOTLOCK) {
		r = dotlock_take(dir, h);
		if (r < 0)
			dotlock_forget(h);
		return r;
	}
	r = maildir_lock(dir);
	if (r < 0)
		return r;
	h->fd = r;
	return 0;
}

/* Whether the file at H's path is still the lock file H made. */
static bool dotlock_ours(const struct maildir_lockh *h)
{
	struct stat st;

	return lstat(h->path, &st) == 0 && st.st_dev == h->dev && st.st_ino == h->ino;
}

int maildir_lock_refresh(struct maildir_lockh *h)
{
	if (h->fd < 0)
		return -1;
	if (h->kind != MAILDIR_LOCK_DOTLOCK)
		return 0;
	/* futimens on the fd, not lockfile_touch() on the name: it touches the file we checked,
	 * never a successor's lock that replaced it in between. */
	if (dotlock_ours(h) && futimens(h->fd, NULL) == 0)
		return 0;
	log_warnx("event=lock_lost lock=%s", h->path);
	close(h->fd);
	h->fd = -1;
	dotlock_forget(h);
	return -1;
}

void maildir_lock_drop(struct maildir_lockh *h)
{
	if (h->fd < 0)
		return;
	if (h->kind == MAILDIR_LOCK_DOTLOCK) {
		if (dotlock_ours(h))
			lockfile_remove(h->path);
		close(h->fd);
		dotlock_forget(h);
	} else {
		maildir_unlock(h->fd);
	}
	h->fd = -1;
}

/* ---- flock (maildir_lock, maildir_unlock) and maildir_create ---- */

#define LOCK_NAME "gannet.lock"

static int lock_open(const char *path)
{
	/* O_NONBLOCK and O_NOFOLLOW: a FIFO or symlink planted as the lock file must not hang or
	 * redirect us. */
	return open(path, O_RDONLY | O_CREAT | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC, 0600);
}

int maildir_lock(const char *dir)
{
	char path[GANNET_PATH_MAX];
	struct stat st;
	int fd, n, e;

	/* In the root, beside new/ cur/ tmp/, so that no scan ever lists it. */
	n = snprintf(path, sizeof(path), "%s/%s", dir, LOCK_NAME);
	if (n < 0 || (size_t)n >= sizeof(path)) {
		errno = ENAMETOOLONG;
		return -1;
	}
	fd = lock_open(path);
	if (fd < 0 && errno == ENOENT) {
		/* S-019 takes the lock before the scan: a new user's Maildir is created here. */
		const char *error;
		int rootfd;

		if (maildir_root_open(dir, &rootfd, &error) != MAILDIR_OK)
			return -1;
		close(rootfd);
		fd = lock_open(path);
	}
	if (fd < 0)
		return -1;
	if (fstat(fd, &st) < 0)
		goto error;
	if (!S_ISREG(st.st_mode)) {
		errno = EINVAL;
		goto error;
	}
	/* flock, not fcntl: the lock belongs to the open file description, so two sessions of the
	 * same process exclude each other, and the kernel drops it when the holder dies (edge case
	 * 23). */
	while (flock(fd, LOCK_EX | LOCK_NB) < 0) {
		if (errno == EINTR)
			continue;
		e = errno;
		close(fd);
		if (e == EWOULDBLOCK)
			return -2;
		errno = e;
		return -1;
	}
	return fd;
error:
	e = errno;
	close(fd);
	errno = e;
	return -1;
}

void maildir_unlock(int lockfd)
{
	if (lockfd >= 0)
		close(lockfd);
}

int maildir_create(const char *dir)
{
	const char *error;
	int rootfd;

	if (maildir_root_open(dir, &rootfd, &error) != MAILDIR_OK)
		return -1; /* maildir_fail() kept errno */
	close(rootfd);
	return 0;
}
