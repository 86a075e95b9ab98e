/* mbox files: session flock, delivery locks (dotlock + fcntl), scan, reads, rename-based UPDATE. */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <lockfile.h>

#include "errmsg.h"
#include "log.h"
#include "mbox_int.h"

_Static_assert(sizeof(off_t) == 8, "build with -D_FILE_OFFSET_BITS=64");

/* Opens that find the mailbox replaced (by another session's UPDATE) between open and flock. */
#define MBOX_OPEN_TRIES 3

struct mbox_handle {
	char path[GANNET_PATH_MAX];
	char lock[GANNET_PATH_MAX]; /* PATH.lock */
	char tmp[GANNET_PATH_MAX];  /* the UPDATE temporary */
	int fd;                     /* -1: the mailbox did not exist at open */
	dev_t dev;
	ino_t ino;
};

/* Thread-local: sessions on different threads never overwrite each other's message. */
static _Thread_local char mbox_errbuf[ERRMSG_MAX];

static unsigned int lock_wait_ms = MBOX_LOCK_WAIT_SECONDS * 1000u;

int mbox_fail(int cls, const char **error_r, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	errmsg_vformat(mbox_errbuf, sizeof(mbox_errbuf), fmt, ap);
	va_end(ap);
	if (error_r != NULL)
		*error_r = mbox_errbuf;
	return cls;
}

const char *mbox_last_error(void)
{
	return mbox_errbuf;
}

unsigned int mbox_lock_wait_ms(void)
{
	return lock_wait_ms;
}

void mbox_set_lock_wait_ms(unsigned int ms)
{
	lock_wait_ms = ms;
}

/* Transient errors are worth a retry by the client; the rest need an administrator. */
static int err_class(int e)
{
	switch (e) {
	case EACCES:
	case EPERM:
	case EROFS:
	case ELOOP:
	case ENOTDIR:
	case EISDIR:
	case ENAMETOOLONG:
	case ENOENT:
		return MBOX_ERR_PERM;
	default:
		return MBOX_ERR_TEMP;
	}
}

int mbox_update_tmp_path(const char *path, char *buf, size_t size)
{
	const char *slash = strrchr(path, '/');
	size_t dlen = slash != NULL ? (size_t)(slash - path) + 1 : 0;
	int n;

	n = snprintf(buf, size, "%.*s%s%s%s", (int)dlen, path, MBOX_UPDATE_TMP_PREFIX, path + dlen,
	             MBOX_UPDATE_TMP_SUFFIX);
	return n > 0 && (size_t)n < size && path[dlen] != '\0' ? 0 : -1;
}

static uint64_t now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

static void sleep_ms(unsigned int ms)
{
	struct timespec ts = {.tv_sec = ms / 1000u, .tv_nsec = (long)(ms % 1000u) * 1000000L};

	while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
		;
}

/* Sleep one poll interval unless DEADLINE has passed: false when it has. */
static bool wait_more(uint64_t deadline)
{
	uint64_t now = now_ms();

	if (now >= deadline)
		return false;
	sleep_ms(deadline - now < MBOX_LOCK_POLL_MS ? (unsigned int)(deadline - now)
	                                            : MBOX_LOCK_POLL_MS);
	return true;
}

/* The delivery locks in Postfix local(8)'s order: dotlock, then an fcntl write lock on FD. */
static int dlock_take(struct mbox_handle *h, int fd, const char **error_r)
{
	uint64_t deadline = now_ms() + lock_wait_ms;
	struct flock fl;
	int r;

	for (;;) {
		/* L_PID: our pid goes in, and a lock whose pid is dead is taken over. Retries 0:
		 * liblockfile's own back-off sleeps 5 s and more; we poll on our own deadline. */
		r = lockfile_create(h->lock, 0, L_PID);
		if (r == L_SUCCESS)
			break;
		if (r != L_MAXTRYS) {
			int e = errno;

			return mbox_fail(e == 0 ? MBOX_ERR_TEMP : err_class(e), error_r,
			                 "mbox %s: dotlock %s: error %d: %s", h->path, h->lock, r,
			                 strerror(e));
		}
		if (!wait_more(deadline))
			return mbox_fail(MBOX_ERR_TEMP, error_r,
			                 "mbox %s: dotlock %s held by another process for %u ms",
			                 h->path, h->lock, lock_wait_ms);
	}
	memset(&fl, 0, sizeof(fl));
	fl.l_type = F_WRLCK;
	fl.l_whence = SEEK_SET;
	for (;;) {
		if (fcntl(fd, F_SETLK, &fl) == 0)
			return 0;
		if (errno != EAGAIN && errno != EACCES && errno != EINTR) {
			int e = errno;

			(void)lockfile_remove(h->lock);
			return mbox_fail(MBOX_ERR_TEMP, error_r, "mbox %s: fcntl lock: %s", h->path,
			                 strerror(e));
		}
		if (!wait_more(deadline)) {
			(void)lockfile_remove(h->lock);
			return mbox_fail(MBOX_ERR_TEMP, error_r,
			                 "mbox %s: fcntl lock held by another process for %u ms",
			                 h->path, lock_wait_ms);
		}
	}
}

/* Unlock FD (when still open) and remove the dotlock, in the reverse order. */
static void dlock_release(struct mbox_handle *h, int fd)
{
	if (fd >= 0) {
		struct flock fl;

		memset(&fl, 0, sizeof(fl));
		fl.l_type = F_UNLCK;
		fl.l_whence = SEEK_SET;
		(void)fcntl(fd, F_SETLK, &fl);
	}
	if (lockfile_remove(h->lock) < 0)
		log_warn("mbox %s: removing dotlock %s", h->path, h->lock);
}

/* A leftover UPDATE temporary is from a crash: nobody holds its flock (a live UPDATE does). */
static void remove_stale_tmp(struct mbox_handle *h)
{
	const char *err;
	struct stat st;
	int tfd;

	if (lstat(h->tmp, &st) < 0)
		return; /* the usual case: no lock taken for nothing */
	tfd = open(h->tmp, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC);
	if (tfd >= 0 && flock(tfd, LOCK_EX | LOCK_NB) < 0) {
		close(tfd);
		return;
	}
	if (dlock_take(h, h->fd, &err) < 0) {
		log_warnx("%s (leftover %s kept for the next login)", err, h->tmp);
	} else {
		if (unlink(h->tmp) < 0 && errno != ENOENT)
			log_warn("mbox %s: removing leftover %s", h->path, h->tmp);
		else
			log_info("mbox %s: removed %s left by an interrupted UPDATE", h->path,
			         h->tmp);
		dlock_release(h, h->fd);
	}
	if (tfd >= 0)
		close(tfd);
}

int mbox_open(const char *path, struct mbox_handle **h_r, const char **error_r)
{
	struct mbox_handle *h;
	struct stat st, pst;
	int tries;

	*h_r = NULL;
	h = calloc(1, sizeof(*h));
	if (h == NULL)
		return mbox_fail(MBOX_ERR_TEMP, error_r, "mbox %s: out of memory", path);
	h->fd = -1;
	if (snprintf(h->path, sizeof(h->path), "%s", path) >= (int)sizeof(h->path) ||
	    snprintf(h->lock, sizeof(h->lock), "%s%s", path, MBOX_DOTLOCK_SUFFIX) >=
	        (int)sizeof(h->lock) ||
	    mbox_update_tmp_path(path, h->tmp, sizeof(h->tmp)) < 0) {
		free(h);
		return mbox_fail(MBOX_ERR_PERM, error_r, "mbox %.64s...: path too long or empty",
		                 path);
	}
	for (tries = 0; tries < MBOX_OPEN_TRIES; tries++) {
		/* O_NONBLOCK: a FIFO in place of the mailbox must not hang the session. */
		int fd = open(path, O_RDWR | O_NOFOLLOW | O_NONBLOCK | O_NOCTTY | O_CLOEXEC);

		if (fd < 0) {
			int e = errno;

			if (e == ENOENT) {
				*h_r = h; /* no mail yet: an empty mailbox */
				return MBOX_OK;
			}
			free(h);
			return mbox_fail(err_class(e), error_r, "mbox %s: open: %s", path,
			                 e == ELOOP ? "is a symbolic link" : strerror(e));
		}
		if (fstat(fd, &st) < 0) {
			int e = errno;

			close(fd);
			free(h);
			return mbox_fail(MBOX_ERR_TEMP, error_r, "mbox %s: fstat: %s", path,
			                 strerror(e));
		}
		if (!S_ISREG(st.st_mode) || st.st_uid != geteuid() || st.st_nlink != 1) {
			close(fd);
			free(h);
			return mbox_fail(MBOX_ERR_PERM, error_r, "mbox %s: %s", path,
			                 !S_ISREG(st.st_mode) ? "not a regular file"
			                 : st.st_nlink != 1   ? "has more than one link"
			                                      : "not owned by the session's user");
		}
		if (flock(fd, LOCK_EX | LOCK_NB) < 0) {
			int e = errno;

			close(fd);
			free(h);
			if (e == EWOULDBLOCK)
				return mbox_fail(MBOX_ERR_INUSE, error_r,
				                 "mbox %s: in use by another session", path);
			return mbox_fail(MBOX_ERR_TEMP, error_r, "mbox %s: flock: %s", path,
			                 strerror(e));
		}
		/* Another session's UPDATE may have renamed a new file over the one we opened
		 * while we were locking it: our lock must be on the current file. */
		if (lstat(path, &pst) == 0 && pst.st_dev == st.st_dev && pst.st_ino == st.st_ino) {
			h->fd = fd;
			h->dev = st.st_dev;
			h->ino = st.st_ino;
			remove_stale_tmp(h);
			*h_r = h;
			return MBOX_OK;
		}
		close(fd);
	}
	free(h);
	return mbox_fail(MBOX_ERR_TEMP, error_r, "mbox %s: replaced while opening it", path);
}

void mbox_close(struct mbox_handle *h)
{
	if (h == NULL)
		return;
	if (h->fd >= 0)
		close(h->fd); /* releases the session flock */
	free(h);
}

/* Under the delivery locks: the path still names our file, and it is at least MIN octets. */
static int check_same(struct mbox_handle *h, uint64_t min, struct stat *st_r, const char **error_r)
{
	struct stat pst;

	if (fstat(h->fd, st_r) < 0)
		return mbox_fail(MBOX_ERR_TEMP, error_r, "mbox %s: fstat: %s", h->path,
		                 strerror(errno));
	if (lstat(h->path, &pst) < 0 || pst.st_dev != st_r->st_dev || pst.st_ino != st_r->st_ino)
		return mbox_fail(MBOX_ERR_TEMP, error_r, "mbox %s: replaced by another program",
		                 h->path);
	if ((uint64_t)st_r->st_size < min)
		return mbox_fail(MBOX_ERR_TEMP, error_r,
		                 "mbox %s: shrank from %llu to %llu octets (changed by another "
		                 "program)",
		                 h->path, (unsigned long long)min,
		                 (unsigned long long)st_r->st_size);
	return 0;
}

static int scan_locked(struct mbox_handle *h, struct mbox_snapshot *snap, const char **error_r)
{
	struct mbox_parser *p;
	struct stat st;
	uint64_t size, off = 0;
	char *buf;
	int r;

	r = check_same(h, 0, &st, error_r);
	if (r < 0)
		return r;
	size = (uint64_t)st.st_size;
	p = malloc(sizeof(*p));
	buf = malloc(MBOX_IO_CHUNK);
	if (p == NULL || buf == NULL) {
		free(p);
		free(buf);
		return mbox_fail(MBOX_ERR_TEMP, error_r, "mbox %s: out of memory", h->path);
	}
	r = mbox_parser_init(p, snap, error_r);
	while (r == 0 && off < size) {
		size_t want = size - off < MBOX_IO_CHUNK ? (size_t)(size - off) : MBOX_IO_CHUNK;
		ssize_t n = pread(h->fd, buf, want, (off_t)off);

		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0) {
			r = mbox_fail(MBOX_ERR_TEMP, error_r, "mbox %s: read at %llu: %s", h->path,
			              (unsigned long long)off,
			              n < 0 ? strerror(errno) : "short file");
			break;
		}
		r = mbox_parser_feed(p, buf, (size_t)n, error_r);
		off += (uint64_t)n;
	}
	if (r == 0) {
		r = mbox_parser_finish(p, error_r);
		if (r < 0)
			r = mbox_fail(r, error_r, "mbox %s: %s", h->path, mbox_errbuf);
	} else {
		if (r < 0 && strncmp(mbox_errbuf, "mbox ", 5) != 0)
			r = mbox_fail(r, error_r, "mbox %s: %s", h->path, mbox_errbuf);
		mbox_parser_abort(p);
	}
	free(p);
	free(buf);
	if (r == 0) {
		snap->file_size = size;
		snap->dev = (uint64_t)st.st_dev;
		snap->ino = (uint64_t)st.st_ino;
	}
	return r;
}

int mbox_scan(struct mbox_handle *h, struct mbox_snapshot *snap, const char **error_r)
{
	int r;

	memset(snap, 0, sizeof(*snap));
	if (h->fd < 0)
		return MBOX_OK; /* missing at open: empty */
	r = dlock_take(h, h->fd, error_r);
	if (r < 0)
		return r;
	r = scan_locked(h, snap, error_r);
	dlock_release(h, h->fd);
	return r;
}

int mbox_msg_read(struct mbox_handle *h, const struct mbox_snapshot *snap, size_t i, uint64_t off,
                  void *buf, size_t len, size_t *got_r)
{
	const struct mbox_rec *m;
	struct stat st;
	size_t done = 0;

	*got_r = 0;
	if (i >= snap->count || h->fd < 0)
		return mbox_fail(MBOX_ERR_TEMP, NULL, "mbox %s: no message %zu", h->path, i);
	m = &snap->msgs[i];
	if (off >= m->raw_len || len == 0)
		return MBOX_OK;
	if (len > m->raw_len - off)
		len = (size_t)(m->raw_len - off);
	if (fstat(h->fd, &st) < 0)
		return mbox_fail(MBOX_ERR_TEMP, NULL, "mbox %s: fstat: %s", h->path,
		                 strerror(errno));
	if ((uint64_t)st.st_dev != snap->dev || (uint64_t)st.st_ino != snap->ino ||
	    (uint64_t)st.st_size < snap->file_size)
		return mbox_fail(MBOX_ERR_TEMP, NULL,
		                 "mbox %s: changed since the scan (truncated or replaced)",
		                 h->path);
	while (done < len) {
		ssize_t n =
		    pread(h->fd, (char *)buf + done, len - done, (off_t)(m->raw_off + off + done));

		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return mbox_fail(MBOX_ERR_TEMP, NULL, "mbox %s: read: %s", h->path,
			                 n < 0 ? strerror(errno) : "file shrank");
		done += (size_t)n;
	}
	*got_r = done;
	return MBOX_OK;
}

/* Copy [FROM, TO) of the mailbox to the end of TFD. */
static int copy_range(struct mbox_handle *h, int tfd, uint64_t from, uint64_t to, uint64_t *woff,
                      char *buf, const char **error_r)
{
	while (from < to) {
		size_t want = to - from < MBOX_IO_CHUNK ? (size_t)(to - from) : MBOX_IO_CHUNK;
		ssize_t n = pread(h->fd, buf, want, (off_t)from);

		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return mbox_fail(MBOX_ERR_TEMP, error_r, "mbox %s: read at %llu: %s",
			                 h->path, (unsigned long long)from,
			                 n < 0 ? strerror(errno) : "file shrank");
		for (size_t w = 0; w < (size_t)n;) {
			ssize_t k = pwrite(tfd, buf + w, (size_t)n - w, (off_t)*woff);

			if (k < 0 && errno == EINTR)
				continue;
			if (k <= 0) {
				int e = k < 0 ? errno : ENOSPC;

				return mbox_fail(e == EROFS ? MBOX_ERR_PERM : MBOX_ERR_TEMP,
				                 error_r, "mbox %s: writing %s: %s", h->path,
				                 h->tmp, strerror(e));
			}
			w += (size_t)k;
			*woff += (uint64_t)k;
		}
		from += (uint64_t)n;
	}
	return 0;
}

/* Write the kept spans and the mail appended since the scan to the temporary TFD. */
static int write_kept(struct mbox_handle *h, const struct mbox_snapshot *snap,
                      const unsigned char *del, int tfd, uint64_t cur_size, const char **error_r)
{
	char *buf = malloc(MBOX_IO_CHUNK);
	uint64_t woff = 0, run_from = 0, run_to = 0;
	int r = 0;

	if (buf == NULL)
		return mbox_fail(MBOX_ERR_TEMP, error_r, "mbox %s: out of memory", h->path);
	/* A message's span is its From_ line up to the next From_ line: separators as stored.
	 * Adjacent kept spans are copied as one run. */
	for (size_t i = 0; i < snap->count && r == 0; i++) {
		uint64_t b = snap->msgs[i].from_off;
		uint64_t e = i + 1 < snap->count ? snap->msgs[i + 1].from_off : snap->file_size;

		if (del[i])
			continue;
		if (b != run_to) {
			r = copy_range(h, tfd, run_from, run_to, &woff, buf, error_r);
			run_from = b;
		}
		run_to = e;
	}
	if (r == 0)
		r = copy_range(h, tfd, run_from, run_to, &woff, buf, error_r);
	if (r == 0)
		r = copy_range(h, tfd, snap->file_size, cur_size, &woff, buf, error_r);
	free(buf);
	return r;
}

static int fsync_dir(const char *path)
{
	const char *slash = strrchr(path, '/');
	char dir[GANNET_PATH_MAX];
	int dfd, r;

	if (slash == NULL)
		snprintf(dir, sizeof(dir), ".");
	else if (slash == path)
		snprintf(dir, sizeof(dir), "/");
	else
		snprintf(dir, sizeof(dir), "%.*s", (int)(slash - path), path);
	dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (dfd < 0)
		return -1;
	r = fsync(dfd);
	close(dfd);
	return r;
}

static int update_locked(struct mbox_handle *h, const struct mbox_snapshot *snap,
                         const unsigned char *del, int *tfd_r, const char **error_r)
{
	struct stat st, tst;
	int tfd, r;

	r = check_same(h, snap->file_size, &st, error_r);
	if (r < 0)
		return r;
	if ((uint64_t)st.st_dev != snap->dev || (uint64_t)st.st_ino != snap->ino)
		return mbox_fail(MBOX_ERR_TEMP, error_r, "mbox %s: not the file scanned", h->path);
	/* O_EXCL: a leftover can only be a crashed UPDATE's (we hold the session lock and the
	 * delivery locks), so it is removed and created afresh, never written through. */
	tfd = open(h->tmp, O_RDWR | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
	if (tfd < 0 && errno == EEXIST && unlink(h->tmp) == 0)
		tfd = open(h->tmp, O_RDWR | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
	if (tfd < 0)
		return mbox_fail(err_class(errno), error_r, "mbox %s: creating %s: %s", h->path,
		                 h->tmp, strerror(errno));
	*tfd_r = tfd;
	/* The new file carries the session lock from its birth: once renamed, no other session
	 * can open it before ours ends. A live temporary is never taken for a leftover. */
	if (flock(tfd, LOCK_EX | LOCK_NB) < 0)
		return mbox_fail(MBOX_ERR_TEMP, error_r, "mbox %s: flock %s: %s", h->path, h->tmp,
		                 strerror(errno));
	r = write_kept(h, snap, del, tfd, (uint64_t)st.st_size, error_r);
	if (r < 0)
		return r;
	if (fstat(tfd, &tst) < 0)
		return mbox_fail(MBOX_ERR_TEMP, error_r, "mbox %s: fstat %s: %s", h->path, h->tmp,
		                 strerror(errno));
	/* The MDA and mail readers must find the group and mode they set (Debian: mail, 0660). */
	if (tst.st_gid != st.st_gid && fchown(tfd, (uid_t)-1, st.st_gid) < 0)
		return mbox_fail(err_class(errno), error_r, "mbox %s: chown %s to group %lu: %s",
		                 h->path, h->tmp, (unsigned long)st.st_gid, strerror(errno));
	if (fchmod(tfd, st.st_mode & 07777) < 0)
		return mbox_fail(err_class(errno), error_r, "mbox %s: chmod %s: %s", h->path,
		                 h->tmp, strerror(errno));
	if (fsync(tfd) < 0)
		return mbox_fail(MBOX_ERR_TEMP, error_r, "mbox %s: fsync %s: %s", h->path, h->tmp,
		                 strerror(errno));
	if (rename(h->tmp, h->path) < 0)
		return mbox_fail(err_class(errno), error_r, "mbox %s: rename %s: %s", h->path,
		                 h->tmp, strerror(errno));
	*tfd_r = -1;
	/* The rename is done and visible; a failed directory fsync only weakens durability. */
	if (fsync_dir(h->path) < 0)
		log_warn("mbox %s: fsync of its directory", h->path);
	/* The handle moves to the new file, whose flock we hold. Closing the old descriptor drops
	 * its fcntl lock; the dotlock (released by the caller) still keeps the MDA out. */
	close(h->fd);
	h->fd = tfd;
	h->dev = tst.st_dev;
	h->ino = tst.st_ino;
	return 0;
}

int mbox_update(struct mbox_handle *h, const struct mbox_snapshot *snap, const unsigned char *del,
                const char **error_r)
{
	size_t ndel = 0;
	int tfd = -1, r;
	int old_fd = h->fd;

	for (size_t i = 0; i < snap->count; i++)
		ndel += del[i] != 0;
	if (ndel == 0 || h->fd < 0)
		return MBOX_OK; /* nothing to delete: nothing written */
	r = dlock_take(h, h->fd, error_r);
	if (r < 0)
		return r;
	r = update_locked(h, snap, del, &tfd, error_r);
	if (r < 0 && tfd >= 0) {
		if (unlink(h->tmp) < 0)
			log_warn("mbox %s: removing %s", h->path, h->tmp);
		close(tfd);
	}
	/* After success the old descriptor is closed (its fcntl lock with it). */
	dlock_release(h, h->fd == old_fd ? old_fd : -1);
	return r;
}
