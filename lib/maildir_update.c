/* Crash-safe UPDATE (the journal) and the RFC 2449 policies (EXPIRE marks, LOGIN-DELAY's last
 * login time); formats and rules are in maildir.h. */
#include "maildir.h"
#include "maildir_int.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include "fdio.h"
#include "log.h"
#include "strnum.h"

/* ---- crash-safe UPDATE: the journal ---- */

static void le_put(unsigned char *p, uint64_t v, int n)
{
	for (int i = 0; i < n; i++)
		p[i] = (unsigned char)(v >> (8 * i));
}

static uint64_t le_get(const unsigned char *p, int n)
{
	uint64_t v = 0;

	for (int i = n - 1; i >= 0; i--)
		v = (v << 8) | p[i];
	return v;
}

static uint32_t journal_crc(const unsigned char *buf, size_t len)
{
	uint32_t crc = mindex_crc32c(0, buf, 24);

	return mindex_crc32c(crc, buf + MAILDIR_JOURNAL_HDR_SIZE, len - MAILDIR_JOURNAL_HDR_SIZE);
}

/* Write BUF[0..LEN) as ROOTFD/NAME through TMP: create (O_EXCL after removing a stale one), write,
 * optionally fsync, rename, optionally fsync the root. 0, or -1 with errno and *STEP_R. */
static int replace_file(int rootfd, const char *tmp, const char *name, const unsigned char *buf,
                        size_t len, bool durable, const char **step_r)
{
	int fd, e;

	*step_r = "unlink";
	if (unlinkat(rootfd, tmp, 0) < 0 && errno != ENOENT)
		return -1;
	*step_r = "create";
	fd = openat(rootfd, tmp, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
	if (fd < 0)
		return -1;
	*step_r = "write";
	if (fd_write_all(fd, buf, len) < 0)
		goto error;
	*step_r = "fsync";
	if (durable && fsync(fd) < 0)
		goto error;
	*step_r = "close";
	e = close(fd);
	fd = -1;
	if (e < 0)
		goto error;
	*step_r = "rename";
	if (renameat(rootfd, tmp, rootfd, name) < 0)
		goto error;
	*step_r = "fsync of the root";
	if (durable && fsync(rootfd) < 0)
		return -1; /* renamed, maybe not durably: the caller must not go on */
	return 0;
error:
	e = errno;
	if (fd >= 0)
		close(fd);
	unlinkat(rootfd, tmp, 0);
	errno = e;
	return -1;
}

int maildir_journal_write(const char *dir, const struct maildir_snapshot *snap,
                          const unsigned char *del, const char **error_r)
{
	size_t n = 0, len = MAILDIR_JOURNAL_HDR_SIZE, off;
	unsigned char *buf;
	const char *step;
	int rootfd, rc, e;

	for (size_t i = 0; i < snap->count; i++) {
		const char *b;

		if (!del[i])
			continue;
		n++;
		len += 2 + mindex_rec_base(&snap->arena, &snap->msgs[i], &b);
	}
	if (n == 0)
		return MAILDIR_OK;
	if ((buf = malloc(len)) == NULL)
		return maildir_fail(MAILDIR_ERR_TEMP, error_r, "maildir %s: %s: out of memory", dir,
		                    MAILDIR_JOURNAL_NAME);
	memcpy(buf, MAILDIR_JOURNAL_MAGIC, 8);
	le_put(buf + 8, MAILDIR_JOURNAL_VERSION, 4);
	le_put(buf + 12, n, 4);
	le_put(buf + 16, len, 8);
	off = MAILDIR_JOURNAL_HDR_SIZE;
	for (size_t i = 0; i < snap->count; i++) {
		const char *b;
		size_t bl;

		if (!del[i])
			continue;
		bl = mindex_rec_base(&snap->arena, &snap->msgs[i], &b);
		le_put(buf + off, bl, 2);
		memcpy(buf + off + 2, b, bl);
		off += 2 + bl;
	}
	le_put(buf + 24, journal_crc(buf, len), 4);
	if ((rc = maildir_root_open(dir, &rootfd, error_r)) != MAILDIR_OK) {
		free(buf);
		return rc;
	}
	rc = replace_file(rootfd, MAILDIR_JOURNAL_TMP_NAME, MAILDIR_JOURNAL_NAME, buf, len, true,
	                  &step);
	e = errno;
	free(buf);
	if (rc < 0 && strcmp(step, "fsync of the root") == 0) {
		/* In place but perhaps not durable: take it back, so nothing is removed on a
		 * journal a power cut could lose. */
		unlinkat(rootfd, MAILDIR_JOURNAL_NAME, 0);
	}
	close(rootfd);
	errno = e;
	if (rc < 0)
		return maildir_fail(maildir_err_class(e), error_r, "maildir %s: %s: %s: %s", dir,
		                    MAILDIR_JOURNAL_NAME, step, strerror(e));
	return MAILDIR_OK;
}

/* fsync new/ and cur/ of ROOTFD: the unlinks are durable before the journal that vouches for
 * them goes. */
static int sync_subdirs(int rootfd, const char *dir, const char **error_r)
{
	for (int s = 0; s < 2; s++) {
		int fd = openat(rootfd, maildir_subdir(s), O_RDONLY | O_DIRECTORY | O_CLOEXEC), e;

		if (fd < 0 && errno == ENOENT)
			continue;
		if (fd < 0 || fsync(fd) < 0) {
			e = errno;
			if (fd >= 0)
				close(fd);
			errno = e;
			return maildir_fail(maildir_err_class(e), error_r,
			                    "maildir %s/%s: fsync: %s", dir, maildir_subdir(s),
			                    strerror(e));
		}
		close(fd);
	}
	return MAILDIR_OK;
}

static int journal_remove(int rootfd, const char *dir, const char **error_r)
{
	int rc = sync_subdirs(rootfd, dir, error_r), e;

	if (rc != MAILDIR_OK)
		return rc;
	if (unlinkat(rootfd, MAILDIR_JOURNAL_NAME, 0) < 0 && errno != ENOENT) {
		e = errno;
		return maildir_fail(maildir_err_class(e), error_r, "maildir %s: unlink %s: %s", dir,
		                    MAILDIR_JOURNAL_NAME, strerror(e));
	}
	if (fsync(rootfd) < 0) {
		e = errno;
		return maildir_fail(maildir_err_class(e), error_r, "maildir %s: fsync: %s", dir,
		                    strerror(e));
	}
	return MAILDIR_OK;
}

int maildir_journal_finish(const char *dir, const char **error_r)
{
	int rootfd, rc = maildir_root_open(dir, &rootfd, error_r);

	if (rc != MAILDIR_OK)
		return rc;
	rc = journal_remove(rootfd, dir, error_r);
	close(rootfd);
	return rc;
}

/* One journalled base name, pointing into the journal buffer. */
struct jname {
	const char *p;
	size_t len;
};

static int jname_cmp(const void *pa, const void *pb)
{
	const struct jname *a = pa, *b = pb;

	if (a->len != b->len)
		return a->len < b->len ? -1 : 1;
	return memcmp(a->p, b->p, a->len);
}

/* Check a journal BUF[0..LEN) and collect its names into *NAMES_R (malloc'd, sorted). NULL when
 * it is fine, else why not. */
static const char *journal_parse(const unsigned char *buf, size_t len, struct jname **names_r,
                                 size_t *n_r)
{
	struct jname *names;
	uint64_t count;
	size_t off = MAILDIR_JOURNAL_HDR_SIZE;

	*names_r = NULL;
	if (len < MAILDIR_JOURNAL_HDR_SIZE || memcmp(buf, MAILDIR_JOURNAL_MAGIC, 8) != 0)
		return "not a journal";
	if (le_get(buf + 8, 4) != MAILDIR_JOURNAL_VERSION)
		return "unknown version";
	if (le_get(buf + 16, 8) != len)
		return "length does not match (torn write)";
	if (le_get(buf + 24, 4) != journal_crc(buf, len))
		return "checksum mismatch";
	count = le_get(buf + 12, 4);
	if (count == 0 || count > MAILDROP_MESSAGES_MAX)
		return "absurd entry count";
	if ((names = calloc((size_t)count, sizeof(*names))) == NULL)
		return "out of memory";
	for (size_t i = 0; i < count; i++) {
		size_t nl;

		if (len - off < 2 || (nl = (size_t)le_get(buf + off, 2)) == 0 ||
		    nl > MINDEX_NAME_MAX || len - off - 2 < nl) {
			free(names);
			return "entry out of bounds";
		}
		names[i].p = (const char *)buf + off + 2;
		names[i].len = nl;
		if (names[i].p[0] == '.' || memchr(names[i].p, '/', nl) != NULL ||
		    memchr(names[i].p, '\0', nl) != NULL) {
			free(names);
			return "bad file name";
		}
		off += 2 + nl;
	}
	if (off != len) {
		free(names);
		return "trailing octets";
	}
	qsort(names, (size_t)count, sizeof(*names), jname_cmp);
	*names_r = names;
	*n_r = (size_t)count;
	return NULL;
}

/* Read ROOTFD/gannet.update whole into *BUF_R (malloc'd). 1 read, 0 absent, -1 with errno. */
static int journal_read(int rootfd, unsigned char **buf_r, size_t *len_r)
{
	int fd =
	    openat(rootfd, MAILDIR_JOURNAL_NAME, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC);
	unsigned char *buf;
	struct stat st;
	size_t got = 0;
	int e;

	if (fd < 0)
		return errno == ENOENT ? 0 : -1;
	if (fstat(fd, &st) < 0)
		goto error;
	errno = EINVAL;
	if (!S_ISREG(st.st_mode) || (uint64_t)st.st_size > MAILDIR_JOURNAL_MAX)
		goto error;
	/* One octet more than the size: a file that grew reads as too long. */
	if ((buf = malloc((size_t)st.st_size + 1)) == NULL)
		goto error;
	for (;;) {
		ssize_t n = read(fd, buf + got, (size_t)st.st_size + 1 - got);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			e = errno;
			free(buf);
			close(fd);
			errno = e;
			return -1;
		}
		if (n == 0 || (got += (size_t)n) > (size_t)st.st_size)
			break;
	}
	close(fd);
	*buf_r = buf;
	*len_r = got;
	return 1;
error:
	e = errno;
	close(fd);
	errno = e;
	return -1;
}

/* Remove from ROOTFD's new/ and cur/ every file whose base name is in NAMES. */
static int journal_apply(int rootfd, const char *dir, const struct jname *names, size_t n,
                         size_t *removed_r, const char **error_r)
{
	for (int s = 0; s < 2; s++) {
		int dfd = openat(rootfd, maildir_subdir(s), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
		struct dirent *de;
		DIR *d;
		int e;

		if (dfd < 0 && errno == ENOENT)
			continue;
		if (dfd < 0 || (d = fdopendir(dfd)) == NULL) {
			e = errno;
			if (dfd >= 0)
				close(dfd);
			return maildir_fail(maildir_err_class(e), error_r,
			                    "maildir %s/%s: open: %s", dir, maildir_subdir(s),
			                    strerror(e));
		}
		for (;;) {
			struct jname key;

			errno = 0;
			if ((de = readdir(d)) == NULL)
				break;
			if (de->d_name[0] == '.')
				continue;
			key.p = de->d_name;
			key.len = maildir_base_len(de->d_name, strlen(de->d_name));
			if (bsearch(&key, names, n, sizeof(*names), jname_cmp) == NULL)
				continue;
			if (unlinkat(dirfd(d), de->d_name, 0) == 0)
				(*removed_r)++;
			else if (errno != ENOENT)
				break;
			errno = 0;
		}
		e = errno;
		closedir(d);
		if (e != 0)
			return maildir_fail(maildir_err_class(e), error_r,
			                    "maildir %s/%s: finishing UPDATE: %s", dir,
			                    maildir_subdir(s), strerror(e));
	}
	return MAILDIR_OK;
}

int maildir_journal_recover(const char *dir, size_t *removed_r, bool *ignored_r,
                            const char **error_r)
{
	unsigned char *buf = NULL;
	struct jname *names = NULL;
	const char *why;
	size_t len = 0, n = 0;
	int rootfd, rc, r, e;

	*removed_r = 0;
	*ignored_r = false;
	if ((rc = maildir_root_open(dir, &rootfd, error_r)) != MAILDIR_OK)
		return rc;
	/* A temporary is a journal that never got renamed: the UPDATE never started. */
	if (unlinkat(rootfd, MAILDIR_JOURNAL_TMP_NAME, 0) == 0)
		*ignored_r = true;
	r = journal_read(rootfd, &buf, &len);
	if (r == 0) {
		close(rootfd);
		return MAILDIR_OK;
	}
	if (r < 0 && errno != EINVAL) {
		e = errno;
		close(rootfd);
		return maildir_fail(maildir_err_class(e), error_r, "maildir %s: read %s: %s", dir,
		                    MAILDIR_JOURNAL_NAME, strerror(e));
	}
	why = r < 0 ? "not a regular file of plausible size" : journal_parse(buf, len, &names, &n);
	if (why != NULL && strcmp(why, "out of memory") == 0) {
		free(buf);
		close(rootfd);
		return maildir_fail(MAILDIR_ERR_TEMP, error_r, "maildir %s: %s: out of memory", dir,
		                    MAILDIR_JOURNAL_NAME);
	}
	if (why != NULL) {
		log_warnx("maildir %s: %s ignored, nothing deleted: %s", dir, MAILDIR_JOURNAL_NAME,
		          why);
		*ignored_r = true;
		rc = MAILDIR_OK;
		if (unlinkat(rootfd, MAILDIR_JOURNAL_NAME, 0) < 0 && errno != ENOENT) {
			e = errno;
			rc =
			    maildir_fail(maildir_err_class(e), error_r, "maildir %s: unlink %s: %s",
			                 dir, MAILDIR_JOURNAL_NAME, strerror(e));
		}
	} else {
		rc = journal_apply(rootfd, dir, names, n, removed_r, error_r);
		if (rc == MAILDIR_OK)
			rc = journal_remove(rootfd, dir, error_r);
		if (rc == MAILDIR_OK)
			log_info("maildir %s: interrupted UPDATE finished: %zu of %zu journalled "
			         "messages removed now",
			         dir, *removed_r, n);
	}
	free(names);
	free(buf);
	close(rootfd);
	return rc;
}

/* ---- policies ---- */

size_t maildir_expire_mark(const struct maildir_snapshot *snap, unsigned char *del, time_t now,
                           long days)
{
	size_t n = 0;
	int64_t limit;

	if (days < 0)
		return 0;
	limit = (int64_t)days * 86400;
	for (size_t i = 0; i < snap->count; i++) {
		int64_t fr = snap->msgs[i].first_retrieved;

		if (del[i] || fr == 0 || (int64_t)now - fr < limit)
			continue;
		del[i] = 1;
		n++;
	}
	return n;
}

time_t maildir_last_login(const char *dir)
{
	char path[GANNET_PATH_MAX], text[MAILDIR_LOGIN_FILE_MAX + 1];
	uint64_t v;
	ssize_t n;
	int fd, len;

	len = snprintf(path, sizeof(path), "%s/%s", dir, MAILDIR_LOGIN_NAME);
	if (len < 0 || (size_t)len >= sizeof(path))
		return 0;
	fd = open(path, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC);
	if (fd < 0) {
		if (errno != ENOENT)
			log_warn("maildir %s: %s", dir, MAILDIR_LOGIN_NAME);
		return 0;
	}
	do
		n = read(fd, text, sizeof(text));
	while (n < 0 && errno == EINTR);
	close(fd);
	if (n < 2 || (size_t)n > MAILDIR_LOGIN_FILE_MAX || text[n - 1] != '\n' ||
	    strnum_u64(text, (size_t)n - 1, 0, INT64_MAX, &v) < 0) {
		log_warnx("maildir %s: %s malformed, ignored", dir, MAILDIR_LOGIN_NAME);
		return 0;
	}
	return (time_t)v;
}

int maildir_set_last_login(const char *dir, time_t now)
{
	char text[MAILDIR_LOGIN_FILE_MAX];
	const char *step;
	int rootfd, n, rc, e;

	n = snprintf(text, sizeof(text), "%lld\n", (long long)(now < 0 ? 0 : now));
	if (n < 0 || (size_t)n >= sizeof(text)) {
		errno = EOVERFLOW;
		return -1;
	}
	rootfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (rootfd < 0)
		return -1;
	/* Not fsync'd: losing the last login time to a power cut costs one early login at most. */
	rc = replace_file(rootfd, MAILDIR_LOGIN_TMP_NAME, MAILDIR_LOGIN_NAME,
	                  (const unsigned char *)text, (size_t)n, false, &step);
	e = errno;
	close(rootfd);
	errno = e;
	return rc;
}

long maildir_login_wait(time_t last, time_t now, long delay)
{
	if (delay <= 0 || last <= 0 || last > now || now - last >= delay)
		return 0;
	return delay - (long)(now - last);
}
