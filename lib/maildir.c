/* Maildir access: scan new/ and cur/ into a sorted snapshot, derive UIDLs, set Seen, lock. */
#include "maildir.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <unistd.h>

#include <openssl/evp.h>

#include "log.h"
#include "pop3.h"

/* Edge case 10: sizes and offsets must stay 64-bit on 32-bit hosts too. */
_Static_assert(sizeof(off_t) == 8, "build with -D_FILE_OFFSET_BITS=64");
_Static_assert(MAILDROP_MESSAGES_MAX < SIZE_MAX / sizeof(struct maildir_msg), "message cap");

#define LOCK_NAME       "gannet.lock"
#define UIDL_HASH_BYTES 20 /* 40 hex digits + "H" = 41 characters, well within 70 */

/* Thread-local: sessions scanned by different threads never overwrite each other's message. */
static _Thread_local char maildir_errbuf[GANNET_PATH_MAX + 512];

static const char *const maildir_subdirs[2] = {"new", "cur"};

static int err_class(int e)
{
	switch (e) {
	case EMFILE:
	case ENFILE:
	case EIO:
	case ENOMEM:
	case ENOSPC:
	case EDQUOT:
	case EINTR:
	case EAGAIN:
	case ENOBUFS:
	case ESTALE:
	case ETIMEDOUT:
		return MAILDIR_ERR_TEMP;
	default:
		return MAILDIR_ERR_PERM;
	}
}

__attribute__((format(printf, 3, 4))) static int fail(int cls, const char **error_r,
                                                      const char *fmt, ...)
{
	int e = errno; /* maildir_lock() reports through errno what the scan reports here */
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(maildir_errbuf, sizeof(maildir_errbuf), fmt, ap);
	va_end(ap);
	if (error_r != NULL)
		*error_r = maildir_errbuf;
	errno = e;
	return cls;
}

/* The ":2,FLAGS" info suffix, or NULL. Only a last ':' followed by "2," counts, so that a ':'
 * inside the unique part (edge case 30) and the ":2,S" that maildir_mark_seen() appends to such
 * a name leave the unique part, hence the UIDL, unchanged. */
static const char *info_suffix(const char *name)
{
	const char *colon = strrchr(name, ':');

	if (colon != NULL && colon[1] == '2' && colon[2] == ',')
		return colon;
	return NULL;
}

/* Length of the unique part: before the info, then before the first ',' (",S=", ",W="). */
static size_t unique_len(const char *name)
{
	const char *info = info_suffix(name);
	size_t len = info != NULL ? (size_t)(info - name) : strlen(name);
	const char *comma = memchr(name, ',', len);

	return comma != NULL ? (size_t)(comma - name) : len;
}

static int uidl_make(const char *name, char out[POP3_UIDL_MAX + 1])
{
	static const char hex[] = "0123456789abcdef";
	size_t len = unique_len(name);
	unsigned char md[EVP_MAX_MD_SIZE];
	unsigned int mdlen = 0;
	bool plain = len >= 1 && len <= POP3_UIDL_MAX;

	for (size_t i = 0; plain && i < len; i++) {
		unsigned char c = (unsigned char)name[i];
		if (c < 0x21 || c > 0x7e)
			plain = false;
	}
	if (plain) {
		memcpy(out, name, len);
		out[len] = '\0';
		return 0;
	}
	/* S-139: a stable hash of the unique part (never of the content: S-066, edge case 12). */
	if (EVP_Digest(name, len, md, &mdlen, EVP_sha256(), NULL) != 1 || mdlen < UIDL_HASH_BYTES)
		return -1;
	out[0] = 'H';
	for (size_t i = 0; i < UIDL_HASH_BYTES; i++) {
		out[1 + 2 * i] = hex[md[i] >> 4];
		out[2 + 2 * i] = hex[md[i] & 15];
	}
	out[1 + 2 * UIDL_HASH_BYTES] = '\0';
	return 0;
}

void maildir_uidl(const char *name, char out[POP3_UIDL_MAX + 1])
{
	uint64_t h = 0xcbf29ce484222325ULL;
	size_t len;

	if (uidl_make(name, out) == 0)
		return;
	/* SHA-256 failing means libcrypto could not allocate; a legal UIDL that differs from the
	 * usual one is better than none (the scan itself reports a temporary error instead). */
	log_warnx("maildir: SHA-256 failed, using a fallback UIDL");
	len = unique_len(name);
	for (size_t i = 0; i < len; i++)
		h = (h ^ (unsigned char)name[i]) * 0x100000001b3ULL;
	snprintf(out, POP3_UIDL_MAX + 1, "F%016llx", (unsigned long long)h);
}

/* Open the Maildir root, creating it (with new/ cur/ tmp/) when missing, as Dovecot does, so that
 * a user who never received mail gets an empty maildrop rather than an error. */
static int root_open(const char *dir, int *fd_r, const char **error_r)
{
	int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);

	if (fd < 0 && errno == ENOENT) {
		if (mkdir(dir, 0700) < 0 && errno != EEXIST) {
			int e = errno;
			if (e == ENOENT)
				return fail(MAILDIR_ERR_PERM, error_r,
				            "maildir %s: parent directory does not exist", dir);
			return fail(err_class(e), error_r, "maildir %s: mkdir: %s", dir,
			            strerror(e));
		}
		fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
		if (fd >= 0) {
			for (size_t i = 0; i < 3; i++) {
				const char *sub = i < 2 ? maildir_subdirs[i] : "tmp";
				if (mkdirat(fd, sub, 0700) < 0 && errno != EEXIST) {
					int e = errno;
					close(fd);
					errno = e;
					return fail(err_class(e), error_r,
					            "maildir %s/%s: mkdir: %s", dir, sub,
					            strerror(e));
				}
			}
		}
	}
	if (fd < 0) {
		int e = errno;
		return fail(err_class(e), error_r, "maildir %s: open: %s", dir, strerror(e));
	}
	*fd_r = fd;
	return MAILDIR_OK;
}

struct scan_ctx {
	const char *dir;
	struct maildir_snapshot *snap;
	size_t cap;
	char *inbuf;  /* RETR_CHUNK */
	char *outbuf; /* 2 * RETR_CHUNK + 3, the encoder's worst case */
	const char **error_r;
};

/* S-052, S-137: the exact wire size, counted by the same encoder RETR uses, never from ",S=". */
static int wire_size(struct scan_ctx *sc, int fd, const char *sub, const char *name,
                     uint64_t *size_r)
{
	struct pop3_enc e;

	pop3_enc_init(&e, false, UINT64_MAX);
	for (;;) {
		ssize_t n = read(fd, sc->inbuf, RETR_CHUNK);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			int err = errno;
			char safe[256];
			log_sanitize(safe, sizeof(safe), name, strlen(name));
			return fail(err_class(err), sc->error_r, "maildir %s/%s/%s: read: %s",
			            sc->dir, sub, safe, strerror(err));
		}
		if (n == 0)
			break;
		pop3_enc_feed(&e, sc->inbuf, (size_t)n, sc->outbuf);
	}
	pop3_enc_finish(&e, sc->outbuf);
	*size_r = e.size;
	return MAILDIR_OK;
}

static int snap_add(struct scan_ctx *sc, const char *name, bool in_new, uint64_t size, time_t mtime)
{
	struct maildir_snapshot *snap = sc->snap;
	struct maildir_msg *m;

	if (snap->count >= MAILDROP_MESSAGES_MAX) {
		log_warnx("maildir %s: more than %d messages, refusing the maildrop", sc->dir,
		          MAILDROP_MESSAGES_MAX);
		return fail(MAILDIR_ERR_TEMP, sc->error_r, "maildir %s: more than %d messages",
		            sc->dir, MAILDROP_MESSAGES_MAX);
	}
	if (snap->count == sc->cap) {
		/* Edge case 11: geometric growth keeps 100k+ messages linear. */
		size_t ncap = sc->cap == 0 ? 64 : sc->cap * 2;
		struct maildir_msg *n;

		if (ncap > MAILDROP_MESSAGES_MAX)
			ncap = MAILDROP_MESSAGES_MAX;
		n = realloc(snap->msgs, ncap * sizeof(*n));
		if (n == NULL)
			return fail(MAILDIR_ERR_TEMP, sc->error_r, "maildir %s: out of memory",
			            sc->dir);
		snap->msgs = n;
		sc->cap = ncap;
	}
	m = &snap->msgs[snap->count];
	memset(m, 0, sizeof(*m));
	if (uidl_make(name, m->uidl) < 0)
		return fail(MAILDIR_ERR_TEMP, sc->error_r, "maildir %s: SHA-256 failed", sc->dir);
	m->name = strdup(name);
	if (m->name == NULL)
		return fail(MAILDIR_ERR_TEMP, sc->error_r, "maildir %s: out of memory", sc->dir);
	m->in_new = in_new;
	m->size = size;
	m->mtime = mtime;
	snap->count++;
	snap->total_size += size;
	return MAILDIR_OK;
}

/* One directory entry. Edge case 31: only regular files, opened without following symlinks and
 * without blocking, so a FIFO or a symlink to /dev/zero planted in cur/ can neither hang the
 * session nor leak another file. */
static int scan_entry(struct scan_ctx *sc, int dfd, const char *sub, const struct dirent *de)
{
	const char *name = de->d_name;
	char safe[256];
	struct stat st;
	uint64_t size = 0;
	int fd, rc, e;

	if (de->d_type != DT_REG && de->d_type != DT_UNKNOWN)
		goto skip;
	/* Where the file system gives no type, look before opening: opening a device node can have
	 * side effects even with O_NONBLOCK. */
	if (de->d_type == DT_UNKNOWN) {
		if (fstatat(dfd, name, &st, AT_SYMLINK_NOFOLLOW) < 0) {
			if (errno == ENOENT)
				return MAILDIR_OK;
			goto error;
		}
		if (!S_ISREG(st.st_mode))
			goto skip;
	}
	fd = openat(dfd, name, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC);
	if (fd < 0) {
		/* Vanished since readdir (another agent expunged it), or swapped for a symlink or a
		 * socket: not a message of this snapshot. */
		if (errno == ENOENT)
			return MAILDIR_OK;
		if (errno == ELOOP || errno == ENXIO)
			goto skip;
		goto error;
	}
	if (fstat(fd, &st) < 0) {
		e = errno;
		close(fd);
		errno = e;
		goto error;
	}
	if (!S_ISREG(st.st_mode)) {
		close(fd);
		goto skip;
	}
	rc = wire_size(sc, fd, sub, name, &size);
	close(fd);
	if (rc != MAILDIR_OK)
		return rc;
	return snap_add(sc, name, sub == maildir_subdirs[0], size, st.st_mtim.tv_sec);

skip:
	log_debug("maildir %s/%s/%s: not a regular file, skipped", sc->dir, sub,
	          log_sanitize(safe, sizeof(safe), name, strlen(name)));
	return MAILDIR_OK;
error:
	e = errno;
	log_sanitize(safe, sizeof(safe), name, strlen(name));
	return fail(err_class(e), sc->error_r, "maildir %s/%s/%s: open: %s", sc->dir, sub, safe,
	            strerror(e));
}

static int scan_subdir(struct scan_ctx *sc, int rootfd, const char *sub)
{
	const int flags = O_RDONLY | O_DIRECTORY | O_CLOEXEC;
	struct dirent *de;
	DIR *d;
	int dfd, e, rc = MAILDIR_OK;

	dfd = openat(rootfd, sub, flags);
	if (dfd < 0 && errno == ENOENT) {
		if (mkdirat(rootfd, sub, 0700) < 0 && errno != EEXIST) {
			e = errno;
			return fail(err_class(e), sc->error_r, "maildir %s/%s: mkdir: %s", sc->dir,
			            sub, strerror(e));
		}
		dfd = openat(rootfd, sub, flags);
	}
	if (dfd < 0) {
		e = errno;
		return fail(err_class(e), sc->error_r, "maildir %s/%s: open: %s", sc->dir, sub,
		            strerror(e));
	}
	d = fdopendir(dfd);
	if (d == NULL) {
		e = errno;
		close(dfd);
		return fail(err_class(e), sc->error_r, "maildir %s/%s: fdopendir: %s", sc->dir, sub,
		            strerror(e));
	}
	for (;;) {
		errno = 0;
		de = readdir(d);
		if (de == NULL) {
			if (errno != 0) {
				e = errno;
				rc = fail(err_class(e), sc->error_r, "maildir %s/%s: readdir: %s",
				          sc->dir, sub, strerror(e));
			}
			break;
		}
		/* S-140: ".", "..", and the temporaries of other tools are not messages. */
		if (de->d_name[0] == '.')
			continue;
		rc = scan_entry(sc, dirfd(d), sub, de);
		if (rc != MAILDIR_OK)
			break;
	}
	closedir(d);
	return rc;
}

/* Within one mtime the unique part decides, not the whole name, so that adding a flag never
 * moves a message ("x1:2,S" would sort after "x10"). */
static int cmp_delivery(const struct maildir_msg *a, const struct maildir_msg *b)
{
	size_t la, lb;
	int c;

	if (a->mtime != b->mtime)
		return a->mtime < b->mtime ? -1 : 1;
	la = unique_len(a->name);
	lb = unique_len(b->name);
	c = memcmp(a->name, b->name, la < lb ? la : lb);
	if (c != 0)
		return c;
	if (la != lb)
		return la < lb ? -1 : 1;
	c = strcmp(a->name, b->name);
	if (c != 0)
		return c;
	return (int)a->in_new - (int)b->in_new;
}

static int cmp_delivery_ptr(const void *pa, const void *pb)
{
	return cmp_delivery(*(struct maildir_msg *const *)pa, *(struct maildir_msg *const *)pb);
}

/* Equal UIDLs together, each run in array (delivery) order. */
static int cmp_uidl_ptr(const void *pa, const void *pb)
{
	const struct maildir_msg *a = *(struct maildir_msg *const *)pa;
	const struct maildir_msg *b = *(struct maildir_msg *const *)pb;
	int c = strcmp(a->uidl, b->uidl);

	if (c != 0)
		return c;
	return a < b ? -1 : a > b;
}

/* Sort by delivery order, then drop later copies of a unique name (new/X next to cur/X:2,S after
 * a crash or a careless copy): RFC 1939 §7 wants a UIDL to identify one message of the maildrop.
 * Pointers are sorted rather than the ~100-byte records so the extra memory is 8 bytes a
 * message; the records are then moved in place along the permutation's cycles. */
static int snap_sort(struct scan_ctx *sc)
{
	struct maildir_snapshot *snap = sc->snap;
	struct maildir_msg *base = snap->msgs;
	struct maildir_msg **p;
	size_t n = snap->count, out;

	if (n < 2)
		return MAILDIR_OK;
	p = calloc(n, sizeof(*p));
	if (p == NULL)
		return fail(MAILDIR_ERR_TEMP, sc->error_r, "maildir %s: out of memory", sc->dir);
	for (size_t i = 0; i < n; i++)
		p[i] = &base[i];
	qsort(p, n, sizeof(*p), cmp_delivery_ptr);
	for (size_t i = 0; i < n; i++) {
		struct maildir_msg tmp;
		size_t j = i;

		if (p[i] == &base[i])
			continue;
		tmp = base[i];
		while (p[j] != &base[i]) {
			size_t k = (size_t)(p[j] - base);
			base[j] = *p[j];
			p[j] = &base[j];
			j = k;
		}
		base[j] = tmp;
		p[j] = &base[j];
	}

	for (size_t i = 0; i < n; i++)
		p[i] = &base[i];
	qsort(p, n, sizeof(*p), cmp_uidl_ptr);
	for (size_t i = 1; i < n; i++) {
		char safe[256];

		/* A freed record keeps its uidl, so a run of three or more still compares. */
		if (strcmp(p[i]->uidl, p[i - 1]->uidl) != 0)
			continue;
		log_warnx("maildir %s: duplicate unique name, ignoring %s/%s", sc->dir,
		          p[i]->in_new ? "new" : "cur",
		          log_sanitize(safe, sizeof(safe), p[i]->name, strlen(p[i]->name)));
		snap->total_size -= p[i]->size;
		free(p[i]->name);
		p[i]->name = NULL;
	}
	free(p);
	out = 0;
	for (size_t i = 0; i < n; i++) {
		if (base[i].name == NULL)
			continue;
		if (out != i)
			base[out] = base[i];
		out++;
	}
	snap->count = out;
	return MAILDIR_OK;
}

int maildir_scan(const char *dir, struct maildir_snapshot *snap, const char **error_r)
{
	struct scan_ctx sc = {.dir = dir, .snap = snap, .error_r = error_r};
	int rootfd = -1, rc;

	memset(snap, 0, sizeof(*snap));
	rc = root_open(dir, &rootfd, error_r);
	if (rc != MAILDIR_OK)
		return rc;
	sc.inbuf = malloc(RETR_CHUNK);
	sc.outbuf = malloc(2 * (size_t)RETR_CHUNK + 3);
	if (sc.inbuf == NULL || sc.outbuf == NULL) {
		rc = fail(MAILDIR_ERR_TEMP, error_r, "maildir %s: out of memory", dir);
		goto out;
	}
	/* S-140: tmp/ holds deliveries in progress and is never read. */
	for (size_t i = 0; i < 2 && rc == MAILDIR_OK; i++)
		rc = scan_subdir(&sc, rootfd, maildir_subdirs[i]);
	if (rc == MAILDIR_OK)
		rc = snap_sort(&sc);
out:
	free(sc.inbuf);
	free(sc.outbuf);
	close(rootfd);
	if (rc != MAILDIR_OK)
		maildir_snapshot_free(snap);
	return rc;
}

void maildir_snapshot_free(struct maildir_snapshot *snap)
{
	for (size_t i = 0; i < snap->count; i++)
		free(snap->msgs[i].name);
	free(snap->msgs);
	memset(snap, 0, sizeof(*snap));
}

static int msg_path(char *buf, size_t size, const char *dir, bool in_new, const char *name)
{
	int n = snprintf(buf, size, "%s/%s/%s", dir, in_new ? "new" : "cur", name);

	if (n < 0 || (size_t)n >= size) {
		errno = ENAMETOOLONG;
		return -1;
	}
	return 0;
}

int maildir_open_msg(const char *dir, const struct maildir_msg *m)
{
	char path[GANNET_PATH_MAX];
	struct stat st;
	int fd, e;

	if (msg_path(path, sizeof(path), dir, m->in_new, m->name) < 0)
		return -1;
	fd = open(path, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC);
	if (fd < 0)
		return -1;
	if (fstat(fd, &st) < 0) {
		e = errno;
		close(fd);
		errno = e;
		return -1;
	}
	if (!S_ISREG(st.st_mode)) {
		close(fd);
		errno = EINVAL;
		return -1;
	}
	return fd;
}

/* The name M gets once Seen is set, or NULL with errno; *unchanged_r when it already has it. */
static char *seen_name(const struct maildir_msg *m, bool *unchanged_r)
{
	const char *info = info_suffix(m->name);
	size_t len = strlen(m->name), pos;
	char *n;

	*unchanged_r = false;
	if (info == NULL) {
		n = malloc(len + 5);
		if (n == NULL)
			return NULL;
		memcpy(n, m->name, len);
		memcpy(n + len, ":2,S", 5);
		return n;
	}
	if (strchr(info + 3, 'S') != NULL) {
		*unchanged_r = true;
		return strdup(m->name);
	}
	/* S-141: flags stay in ASCII order; S goes before the first flag above it. */
	pos = (size_t)(info + 3 - m->name);
	while (pos < len && (unsigned char)m->name[pos] < 'S')
		pos++;
	n = malloc(len + 2);
	if (n == NULL)
		return NULL;
	memcpy(n, m->name, pos);
	n[pos] = 'S';
	memcpy(n + pos + 1, m->name + pos, len - pos + 1);
	return n;
}

int maildir_mark_seen(const char *dir, struct maildir_msg *m)
{
	char from[GANNET_PATH_MAX], to[GANNET_PATH_MAX];
	bool unchanged;
	char *n;
	int e;

	n = seen_name(m, &unchanged);
	if (n == NULL)
		return -1;
	if (unchanged && !m->in_new) {
		free(n);
		return 0;
	}
	if (msg_path(from, sizeof(from), dir, m->in_new, m->name) < 0 ||
	    msg_path(to, sizeof(to), dir, false, n) < 0)
		goto error;
	/* Atomic, and never over an existing file: rename(2) would silently replace a message
	 * that happens to carry the target name. File systems without RENAME_NOREPLACE get
	 * plain rename. */
	if (renameat2(AT_FDCWD, from, AT_FDCWD, to, RENAME_NOREPLACE) < 0) {
		if (errno != EINVAL && errno != ENOSYS)
			goto error;
		if (rename(from, to) < 0)
			goto error;
	}
	free(m->name);
	m->name = n;
	m->in_new = false;
	return 0;
error:
	e = errno;
	free(n);
	errno = e;
	return -1;
}

int maildir_unlink_msg(const char *dir, const struct maildir_msg *m)
{
	char path[GANNET_PATH_MAX];

	if (msg_path(path, sizeof(path), dir, m->in_new, m->name) < 0)
		return -1;
	if (unlink(path) < 0 && errno != ENOENT)
		return -1;
	return 0;
}

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

		if (root_open(dir, &rootfd, &error) != MAILDIR_OK)
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
