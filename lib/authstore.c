/* The account-security store: app passwords, TOTP records and APOP secrets in locked text files. */
#include "authstore.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/rand.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include "authstore_int.h"
#include "fdio.h"
#include "strnum.h"
#include "userdb.h"

static uid_t owner_uid = (uid_t)-1;
static gid_t owner_gid = (gid_t)-1;

static _Thread_local char store_err[GANNET_PATH_MAX + 256];

int as_fail(const char **error_r, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(store_err, sizeof(store_err), fmt, ap);
	va_end(ap);
	*error_r = store_err;
	return -1;
}

int as_fail_line(struct sfile *f, const char *reason, const char **error_r)
{
	return as_fail(error_r, "%s:%lu: %s", f->path, f->lineno, reason);
}

void authstore_set_owner(uid_t uid, gid_t gid)
{
	owner_uid = uid;
	owner_gid = gid;
}

/* Root gives what it creates to the configured owner; any other user owns what it creates. */
static int give_to_owner(int fd)
{
	if (geteuid() != 0 || owner_uid == (uid_t)-1)
		return 0;
	return fchown(fd, owner_uid, owner_gid);
}

int authstore_mkdir(const char *dir, const char **error_r)
{
	struct stat st;
	int fd;

	if (dir == NULL || dir[0] == '\0')
		return as_fail(error_r, "no auth directory given");
	if (mkdir(dir, 0700) < 0) {
		if (errno != EEXIST)
			return as_fail(error_r, "%s: mkdir: %s", dir, strerror(errno));
		if (stat(dir, &st) < 0 || !S_ISDIR(st.st_mode))
			return as_fail(error_r, "%s: not a directory", dir);
		return 0;
	}
	fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd < 0 || give_to_owner(fd) < 0) {
		as_fail(error_r, "%s: chown: %s", dir, strerror(errno));
		if (fd >= 0)
			close(fd);
		return -1;
	}
	close(fd);
	return 0;
}

/* --- Verifiers */

static void to_hex(const unsigned char *in, size_t len, char *out)
{
	static const char hex[] = "0123456789abcdef";

	for (size_t i = 0; i < len; i++) {
		out[2 * i] = hex[in[i] >> 4];
		out[2 * i + 1] = hex[in[i] & 15];
	}
	out[2 * len] = '\0';
}

/* Strict lower-case hex of exactly 2 * LEN digits. */
static int from_hex(const char *in, size_t in_len, unsigned char *out, size_t len)
{
	if (in_len != 2 * len)
		return -1;
	for (size_t i = 0; i < in_len; i++) {
		char c = in[i];
		int v = c >= '0' && c <= '9' ? c - '0' : c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1;

		if (v < 0)
			return -1;
		if (i % 2 == 0)
			out[i / 2] = (unsigned char)(v << 4);
		else
			out[i / 2] |= (unsigned char)v;
	}
	return 0;
}

static int salted_sha256(const unsigned char *salt, const void *secret, size_t len,
                         unsigned char md[32])
{
	EVP_MD_CTX *ctx = EVP_MD_CTX_new();
	unsigned int mdlen = 0;
	int ok;

	if (ctx == NULL)
		return -1;
	ok = EVP_DigestInit_ex(ctx, EVP_sha256(), NULL) == 1 &&
	     EVP_DigestUpdate(ctx, salt, AUTHSTORE_SALT_LEN) == 1 &&
	     EVP_DigestUpdate(ctx, secret, len) == 1 && EVP_DigestFinal_ex(ctx, md, &mdlen) == 1 &&
	     mdlen == 32;
	EVP_MD_CTX_free(ctx);
	return ok ? 0 : -1;
}

/* A salted SHA-256 and not a slow hash: app passwords and recovery codes carry 80 to 100 random
 * bits, beyond any brute force whatever the hash costs, while the server checks every app
 * password of a user at each login, where a slow hash would multiply the cost by their number. */
int authstore_hash(const void *secret, size_t len, char *out, size_t size, const char **error_r)
{
	unsigned char salt[AUTHSTORE_SALT_LEN], md[32];
	char salt_hex[2 * AUTHSTORE_SALT_LEN + 1], md_hex[65];

	if (size < AUTHSTORE_HASH_TEXT + 1)
		return as_fail(error_r, "hash buffer too small");
	if (RAND_bytes(salt, sizeof(salt)) != 1 || salted_sha256(salt, secret, len, md) < 0)
		return as_fail(error_r, "OpenSSL: SHA-256 or RAND_bytes failed");
	to_hex(salt, sizeof(salt), salt_hex);
	to_hex(md, sizeof(md), md_hex);
	snprintf(out, size, "sha256$%s$%s", salt_hex, md_hex);
	explicit_bzero(md, sizeof(md));
	return 0;
}

bool as_hash_well_formed(const char *stored)
{
	unsigned char buf[32];

	return strlen(stored) == AUTHSTORE_HASH_TEXT && strncmp(stored, "sha256$", 7) == 0 &&
	       stored[7 + 2 * AUTHSTORE_SALT_LEN] == '$' &&
	       from_hex(stored + 7, 2 * AUTHSTORE_SALT_LEN, buf, AUTHSTORE_SALT_LEN) == 0 &&
	       from_hex(stored + 8 + 2 * AUTHSTORE_SALT_LEN, 64, buf, 32) == 0;
}

int authstore_hash_verify(const void *secret, size_t len, const char *stored, const char **error_r)
{
	unsigned char salt[AUTHSTORE_SALT_LEN], want[32], got[32];
	int ret;

	if (!as_hash_well_formed(stored))
		return as_fail(error_r, "malformed verifier (want sha256$SALT$HASH)");
	from_hex(stored + 7, 2 * AUTHSTORE_SALT_LEN, salt, sizeof(salt));
	from_hex(stored + 8 + 2 * AUTHSTORE_SALT_LEN, 64, want, sizeof(want));
	if (salted_sha256(salt, secret, len, got) < 0)
		return as_fail(error_r, "OpenSSL: SHA-256 failed");
	ret = CRYPTO_memcmp(got, want, sizeof(got)) == 0;
	explicit_bzero(got, sizeof(got));
	return ret;
}

/* --- Store files: lock, read, walk lines, rewrite */

static int take_lock(struct sfile *f, const char **error_r)
{
	char path[GANNET_PATH_MAX + 8];
	struct timespec now, deadline, pause = {0, LOCK_POLL_NS};
	int fd;

	snprintf(path, sizeof(path), "%s/.lock", f->dir);
	/* Created once and never removed: removing it would let two callers lock two inodes. */
	fd = open(path, O_RDWR | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
	if (fd >= 0) {
		if (give_to_owner(fd) < 0) {
			as_fail(error_r, "%s: chown: %s", path, strerror(errno));
			close(fd);
			return -1;
		}
	} else if (errno == EEXIST) {
		fd = open(path, O_RDWR | O_NOFOLLOW | O_CLOEXEC);
	}
	if (fd < 0) {
		/* A reader finding no directory reads an empty store. */
		if (errno == ENOENT && !f->write)
			return 0;
		return as_fail(error_r, "%s: %s", path, strerror(errno));
	}
	f->lock_fd = fd;
	clock_gettime(CLOCK_MONOTONIC, &deadline);
	deadline.tv_sec += AUTHSTORE_LOCK_SECONDS;
	while (flock(fd, (f->write ? LOCK_EX : LOCK_SH) | LOCK_NB) < 0) {
		if (errno != EWOULDBLOCK && errno != EINTR)
			return as_fail(error_r, "%s: flock: %s", path, strerror(errno));
		clock_gettime(CLOCK_MONOTONIC, &now);
		if (now.tv_sec > deadline.tv_sec ||
		    (now.tv_sec == deadline.tv_sec && now.tv_nsec >= deadline.tv_nsec))
			return as_fail(error_r, "%s: still locked after %d s", path,
			               AUTHSTORE_LOCK_SECONDS);
		nanosleep(&pause, NULL);
	}
	return 0;
}

static int read_file(struct sfile *f, const char **error_r)
{
	int fd = open(f->path, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
	size_t cap;

	if (fd < 0) {
		if (errno == ENOENT)
			return 0;
		return as_fail(error_r, "%s: %s", f->path, strerror(errno));
	}
	if (fstat(fd, &f->st) < 0 || !S_ISREG(f->st.st_mode) ||
	    (size_t)f->st.st_size > AUTHSTORE_FILE_MAX) {
		close(fd);
		return as_fail(error_r, "%s: not a regular file of at most %zu bytes", f->path,
		               AUTHSTORE_FILE_MAX);
	}
	f->exists = true;
	cap = (size_t)f->st.st_size + 1;
	f->data = malloc(cap);
	if (f->data == NULL) {
		close(fd);
		return as_fail(error_r, "%s: out of memory", f->path);
	}
	for (;;) {
		ssize_t n = read(fd, f->data + f->len, cap - f->len);

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			as_fail(error_r, "%s: %s", f->path, strerror(errno));
			close(fd);
			return -1;
		}
		if (n == 0)
			break;
		f->len += (size_t)n;
		/* Writers replace the file by rename under the lock, so it cannot grow while we
		 * read; a file that does anyway is not ours to trust. */
		if (f->len == cap) {
			close(fd);
			return as_fail(error_r, "%s: changed while being read", f->path);
		}
	}
	close(fd);
	return 0;
}

void as_sf_close(struct sfile *f)
{
	if (f->data != NULL) {
		explicit_bzero(f->data, f->len);
		free(f->data);
		f->data = NULL;
	}
	if (f->out != NULL) {
		explicit_bzero(f->out, f->out_len);
		free(f->out);
		f->out = NULL;
	}
	explicit_bzero(f->line, sizeof(f->line));
	if (f->lock_fd >= 0) {
		close(f->lock_fd);
		f->lock_fd = -1;
	}
}

int as_sf_open(struct sfile *f, const char *dir, const char *kind, bool write, const char **error_r)
{
	memset(f, 0, sizeof(*f));
	f->lock_fd = -1;
	f->kind = kind;
	f->write = write;
	if (dir == NULL || dir[0] == '\0')
		return as_fail(error_r, "no auth directory given");
	if ((size_t)snprintf(f->dir, sizeof(f->dir), "%s", dir) >= sizeof(f->dir) ||
	    (size_t)snprintf(f->path, sizeof(f->path), "%s/%s", dir, kind) >= sizeof(f->path) - 8)
		return as_fail(error_r, "%s: path too long", dir);
	if (write && authstore_mkdir(dir, error_r) < 0)
		return -1;
	if (take_lock(f, error_r) < 0 || (f->lock_fd >= 0 && read_file(f, error_r) < 0)) {
		as_sf_close(f);
		return -1;
	}
	return 0;
}

int as_out_add(struct sfile *f, const char *text, size_t len, const char **error_r)
{
	if (!f->write)
		return 0;
	if (f->out_len + len + 1 > AUTHSTORE_FILE_MAX)
		return as_fail(error_r, "%s: would grow beyond %zu bytes", f->path,
		               AUTHSTORE_FILE_MAX);
	if (f->out_len + len + 1 > f->out_cap) {
		size_t cap = (f->out_len + len + 1) * 2;
		char *p = malloc(cap);

		if (p == NULL)
			return as_fail(error_r, "%s: out of memory", f->path);
		/* Copy rather than realloc so that the old buffer can be wiped. */
		if (f->out != NULL) {
			memcpy(p, f->out, f->out_len);
			explicit_bzero(f->out, f->out_len);
			free(f->out);
		}
		f->out = p;
		f->out_cap = cap;
	}
	memcpy(f->out + f->out_len, text, len);
	f->out_len += len;
	f->out[f->out_len++] = '\n';
	return 0;
}

/* The next record line, NUL-terminated in f->line: 1, 0 at the end, -1 for a line too long or
 * holding a NUL. Comments and empty lines are skipped (and carried into the rewrite). */
int as_sf_next(struct sfile *f, const char **error_r)
{
	while (f->pos < f->len) {
		const char *start = f->data + f->pos, *nl;
		size_t n;

		nl = memchr(start, '\n', f->len - f->pos);
		n = nl != NULL ? (size_t)(nl - start) : f->len - f->pos;
		f->pos += n + (nl != NULL);
		f->lineno++;
		if (n + 1 > AUTHSTORE_LINE_MAX)
			return as_fail_line(f, "line too long", error_r);
		if (memchr(start, '\0', n) != NULL)
			return as_fail_line(f, "NUL byte in line", error_r);
		memcpy(f->line, start, n);
		f->line[n] = '\0';
		if (n > 0 && f->line[0] != '#')
			return 1;
		if (as_out_add(f, f->line, n, error_r) < 0)
			return -1;
	}
	return 0;
}

int as_sf_keep(struct sfile *f, const char **error_r)
{
	return as_out_add(f, f->line, strlen(f->line), error_r);
}

/* Replace the file with the output built so far: .KIND.tmp, fsync, rename, fsync DIR. */
int as_sf_commit(struct sfile *f, const char **error_r)
{
	char tmp[GANNET_PATH_MAX + 32];
	int fd, dfd, r;

	snprintf(tmp, sizeof(tmp), "%s/.%s.tmp", f->dir, f->kind);
	/* A crashed writer's leftover goes first; O_EXCL then makes sure we write a fresh inode
	 * of our own, not one planted under the name. */
	if (unlink(tmp) < 0 && errno != ENOENT)
		return as_fail(error_r, "%s: unlink: %s", tmp, strerror(errno));
	fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
	if (fd < 0)
		return as_fail(error_r, "%s: %s", tmp, strerror(errno));
	if (fchmod(fd, 0600) < 0)
		goto fail;
	if (f->exists && geteuid() == 0)
		r = fchown(fd, f->st.st_uid, f->st.st_gid);
	else
		r = give_to_owner(fd);
	if (r < 0 || fd_write_all(fd, f->out != NULL ? f->out : "", f->out_len) < 0 ||
	    fsync(fd) < 0)
		goto fail;
	r = close(fd);
	fd = -1;
	if (r < 0 || rename(tmp, f->path) < 0)
		goto fail;
	dfd = open(f->dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (dfd < 0 || fsync(dfd) < 0) {
		as_fail(error_r, "%s: fsync: %s", f->dir, strerror(errno));
		if (dfd >= 0)
			close(dfd);
		return -1;
	}
	close(dfd);
	return 0;
fail:
	as_fail(error_r, "%s: %s", tmp, strerror(errno));
	if (fd >= 0)
		close(fd);
	unlink(tmp);
	return -1;
}

/* Split LINE in place at single spaces. -1 for an empty field (two spaces, a leading or trailing
 * space) or more than MAX fields. */
static int split(char *line, char **fields, size_t max, size_t *n_r)
{
	size_t n = 0;
	char *p = line;

	for (;;) {
		char *sp = strchr(p, ' ');

		if (n == max || (sp != NULL ? sp == p : *p == '\0'))
			return -1;
		fields[n++] = p;
		if (sp == NULL)
			break;
		*sp = '\0';
		p = sp + 1;
	}
	*n_r = n;
	return 0;
}

int as_check_user(const char *user, const char **error_r)
{
	const char *why;

	if (user == NULL || userdb_valid_name(user, strlen(user), &why) < 0)
		return as_fail(error_r, "invalid user name: %s", user == NULL ? "none given" : why);
	return 0;
}

/* The fields of a record line of any kind; the user field is checked here. */
int as_sf_fields(struct sfile *f, char **fields, size_t min, size_t max, size_t *n_r,
                 const char **error_r)
{
	const char *why;

	if (split(f->line, fields, max, n_r) < 0 || *n_r < min)
		return as_fail_line(f, "wrong number of fields or stray spaces", error_r);
	if (userdb_valid_name(fields[0], strlen(fields[0]), &why) < 0)
		return as_fail_line(f, "invalid user name", error_r);
	return 0;
}

int as_parse_i64(const char *s, int64_t *v_r)
{
	uint64_t v;

	if (strnum_parse(s, 0, INT64_MAX, &v) < 0)
		return -1;
	*v_r = (int64_t)v;
	return 0;
}

/* --- App passwords */

/* The reason apppw_valid_name gives; fixed, so that file:line messages can quote it. */
#define STR_(x) #x
#define STR(x)  STR_(x)
#define APPPW_NAME_RULE                                                                            \
	"invalid app password name (1 to " STR(APPPW_NAME_MAX) " of A-Z a-z 0-9 . _ -)"

static bool name_ok(const char *name)
{
	size_t len = name != NULL ? strlen(name) : 0;

	return len > 0 && len <= APPPW_NAME_MAX &&
	       strspn(name, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789._-") ==
	           len;
}

int apppw_valid_name(const char *name, const char **error_r)
{
	if (!name_ok(name)) {
		*error_r = APPPW_NAME_RULE;
		return -1;
	}
	return 0;
}

static bool ip_valid(const char *ip)
{
	unsigned char addr[16];

	return strlen(ip) <= APPPW_IP_MAX &&
	       (inet_pton(AF_INET, ip, addr) == 1 || inet_pton(AF_INET6, ip, addr) == 1);
}

/* Parse the record in f->line into P; *HASH_R points into f->line. */
static int apppw_parse(struct sfile *f, struct apppw *p, char **hash_r, const char **error_r)
{
	char *fld[6];
	size_t n;

	if (as_sf_fields(f, fld, 6, 6, &n, error_r) < 0)
		return -1;
	if (!name_ok(fld[1]))
		return as_fail_line(f, APPPW_NAME_RULE, error_r);
	if (as_parse_i64(fld[2], &p->created) < 0 || as_parse_i64(fld[3], &p->last_used) < 0)
		return as_fail_line(f, "bad time stamp", error_r);
	if (strcmp(fld[4], "-") != 0 && !ip_valid(fld[4]))
		return as_fail_line(f, "bad address", error_r);
	if (!as_hash_well_formed(fld[5]))
		return as_fail_line(f, "bad verifier (want sha256$SALT$HASH)", error_r);
	snprintf(p->user, sizeof(p->user), "%s", fld[0]);
	snprintf(p->name, sizeof(p->name), "%s", fld[1]);
	snprintf(p->last_ip, sizeof(p->last_ip), "%s", fld[4]);
	*hash_r = fld[5];
	return 0;
}

static int apppw_emit(struct sfile *f, const struct apppw *p, const char *hash,
                      const char **error_r)
{
	char line[AUTHSTORE_LINE_MAX];
	int n = snprintf(line, sizeof(line), "%s %s %lld %lld %s %s", p->user, p->name,
	                 (long long)p->created, (long long)p->last_used, p->last_ip, hash);

	if (n < 0 || (size_t)n + 1 > sizeof(line))
		return as_fail(error_r, "app password record too long");
	return as_out_add(f, line, (size_t)n, error_r);
}

int apppw_add(const char *dir, const char *user, const char *name, time_t now, char *pw_out,
              size_t size, const char **error_r)
{
	unsigned char rnd[APPPW_SYMBOLS];
	char pw[APPPW_SYMBOLS + 1], hash[AUTHSTORE_HASH_TEXT + 1], *old_hash;
	struct sfile f;
	struct apppw p = {0}, old;
	size_t count = 0;
	int r, ret = -1;

	if (as_check_user(user, error_r) < 0 || apppw_valid_name(name, error_r) < 0)
		return -1;
	if (now < 0 || size < APPPW_TEXT_LEN + 1)
		return as_fail(error_r, "apppw_add: bad time or output buffer");
	if (RAND_bytes(rnd, sizeof(rnd)) != 1)
		return as_fail(error_r, "OpenSSL: RAND_bytes failed");
	/* 256 is a multiple of 32: the low five bits of a random byte are uniform. */
	for (size_t i = 0; i < APPPW_SYMBOLS; i++)
		pw[i] = APPPW_ALPHABET[rnd[i] & 31];
	pw[APPPW_SYMBOLS] = '\0';
	explicit_bzero(rnd, sizeof(rnd));
	if (authstore_hash(pw, APPPW_SYMBOLS, hash, sizeof(hash), error_r) < 0)
		goto out;
	if (as_sf_open(&f, dir, KIND_APPPW, true, error_r) < 0)
		goto out;
	while ((r = as_sf_next(&f, error_r)) == 1) {
		if (apppw_parse(&f, &old, &old_hash, error_r) < 0)
			goto out_close;
		if (strcmp(old.user, user) == 0 && strcmp(old.name, name) == 0) {
			as_fail(error_r, "%s already has an app password named %s", user, name);
			goto out_close;
		}
		count += strcmp(old.user, user) == 0;
		if (apppw_emit(&f, &old, old_hash, error_r) < 0)
			goto out_close;
	}
	if (r < 0)
		goto out_close;
	if (count >= APPPW_PER_USER_MAX) {
		as_fail(error_r, "%s already has %d app passwords, the most allowed", user,
		        APPPW_PER_USER_MAX);
		goto out_close;
	}
	snprintf(p.user, sizeof(p.user), "%s", user);
	snprintf(p.name, sizeof(p.name), "%s", name);
	p.created = (int64_t)now;
	snprintf(p.last_ip, sizeof(p.last_ip), "-");
	if (apppw_emit(&f, &p, hash, error_r) < 0 || as_sf_commit(&f, error_r) < 0)
		goto out_close;
	for (size_t i = 0, o = 0; i < APPPW_SYMBOLS; i++) {
		if (i > 0 && i % APPPW_GROUP == 0)
			pw_out[o++] = '-';
		pw_out[o++] = pw[i];
		pw_out[o] = '\0';
	}
	ret = 0;
out_close:
	as_sf_close(&f);
out:
	explicit_bzero(pw, sizeof(pw));
	return ret;
}

int apppw_list(const char *dir, const char *user, struct apppw **list_r, size_t *n_r,
               const char **error_r)
{
	struct sfile f;
	struct apppw *list = NULL, p;
	size_t n = 0, cap = 0;
	char *hash;
	int r;

	*list_r = NULL;
	*n_r = 0;
	if (user != NULL && as_check_user(user, error_r) < 0)
		return -1;
	if (as_sf_open(&f, dir, KIND_APPPW, false, error_r) < 0)
		return -1;
	while ((r = as_sf_next(&f, error_r)) == 1) {
		if (apppw_parse(&f, &p, &hash, error_r) < 0) {
			r = -1;
			break;
		}
		if (user != NULL && strcmp(p.user, user) != 0)
			continue;
		if (n == cap) {
			/* The file size bounds the count: each record takes over 100 bytes. */
			struct apppw *q = reallocarray(list, cap * 2 + 8, sizeof(*list));

			if (q == NULL) {
				r = as_fail(error_r, "out of memory");
				break;
			}
			list = q;
			cap = cap * 2 + 8;
		}
		list[n++] = p;
	}
	as_sf_close(&f);
	if (r < 0) {
		free(list);
		return -1;
	}
	*list_r = list;
	*n_r = n;
	return 0;
}

/* Drop USER's app passwords called NAME (every one when NAME is NULL): the number dropped. */
static int apppw_drop(const char *dir, const char *user, const char *name, const char **error_r)
{
	struct sfile f;
	struct apppw p;
	char *hash;
	int r, dropped = 0;

	if (as_check_user(user, error_r) < 0 ||
	    (name != NULL && apppw_valid_name(name, error_r) < 0))
		return -1;
	if (as_sf_open(&f, dir, KIND_APPPW, true, error_r) < 0)
		return -1;
	while ((r = as_sf_next(&f, error_r)) == 1) {
		if (apppw_parse(&f, &p, &hash, error_r) < 0) {
			r = -1;
			break;
		}
		if (strcmp(p.user, user) == 0 && (name == NULL || strcmp(p.name, name) == 0))
			dropped++;
		else if (apppw_emit(&f, &p, hash, error_r) < 0) {
			r = -1;
			break;
		}
	}
	if (r == 0 && dropped > 0 && as_sf_commit(&f, error_r) < 0)
		r = -1;
	as_sf_close(&f);
	return r < 0 ? -1 : dropped;
}

int apppw_revoke(const char *dir, const char *user, const char *name, const char **error_r)
{
	int r = apppw_drop(dir, user, name, error_r);

	return r < 0 ? -1 : r > 0;
}

int apppw_revoke_user(const char *dir, const char *user, const char **error_r)
{
	return apppw_drop(dir, user, NULL, error_r);
}

/* The canonical form of a typed app password (upper case, no dashes or spaces), or -1 when it
 * cannot be one. */
static int apppw_normalise(const char *password, size_t len, char *out, size_t size)
{
	char in[APPPW_INPUT_MAX + 1];
	int r;

	if (len > APPPW_INPUT_MAX || memchr(password, '\0', len) != NULL)
		return -1;
	memcpy(in, password, len);
	in[len] = '\0';
	r = totp_code_normalise(in, out, size);
	explicit_bzero(in, sizeof(in));
	if (r < 0 || strlen(out) != APPPW_SYMBOLS || strspn(out, APPPW_ALPHABET) != APPPW_SYMBOLS) {
		explicit_bzero(out, size);
		return -1;
	}
	return 0;
}

int apppw_verify(const char *dir, const char *user, const char *password, size_t len,
                 const char *ip, time_t now, char *name_out, size_t size, const char **error_r)
{
	char pw[TOTP_TYPED_MAX + 1], *hash;
	struct sfile f;
	struct apppw p;
	int r, match, found = 0;

	if (as_check_user(user, error_r) < 0)
		return -1;
	if (ip != NULL && !ip_valid(ip))
		return as_fail(error_r, "apppw_verify: not a numeric IP address");
	if (now < 0 || size < APPPW_NAME_MAX + 1)
		return as_fail(error_r, "apppw_verify: bad time or output buffer");
	if (apppw_normalise(password, len, pw, sizeof(pw)) < 0)
		return 0;
	if (as_sf_open(&f, dir, KIND_APPPW, true, error_r) < 0) {
		explicit_bzero(pw, sizeof(pw));
		return -1;
	}
	while ((r = as_sf_next(&f, error_r)) == 1) {
		if (apppw_parse(&f, &p, &hash, error_r) < 0) {
			r = -1;
			break;
		}
		/* Every password of the user is checked, also after a match. */
		match = 0;
		if (strcmp(p.user, user) == 0) {
			match = authstore_hash_verify(pw, APPPW_SYMBOLS, hash, error_r);
			if (match < 0) {
				r = -1;
				break;
			}
		}
		if (match && !found) {
			found = 1;
			snprintf(name_out, size, "%s", p.name);
			p.last_used = (int64_t)now;
			snprintf(p.last_ip, sizeof(p.last_ip), "%s", ip != NULL ? ip : "-");
		}
		if (apppw_emit(&f, &p, hash, error_r) < 0) {
			r = -1;
			break;
		}
	}
	explicit_bzero(pw, sizeof(pw));
	if (r == 0 && found && as_sf_commit(&f, error_r) < 0)
		r = -1;
	as_sf_close(&f);
	return r < 0 ? -1 : found;
}
