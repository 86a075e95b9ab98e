/* Finding, locking, reading and atomically replacing the passwd-file that gannetctl edits. */
#include <err.h>
#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <time.h>
#include <unistd.h>

#include "fdio.h"
#include "conf.h"
#include "gannetctl.h"
#include "gannet_limits.h"

/* Read one path setting ("userdb" or "mail_location") from the gannetd configuration, parsed
 * by the same code as gannetd, so a file gannetd rejects is rejected here too. Returns 1 when the
 * value is set, 0 when empty, -1 on error (reported). */
int conf_value(const char *conf, const char *key, char *out, size_t size)
{
	struct conf *c = calloc(1, sizeof(*c));
	const char *v;
	int ret = -1;

	if (c == NULL)
		err(1, "calloc");
	if (conf_load(conf, c, " (give the user file with -f)") < 0)
		goto out;
	if (strcmp(key, "userdb") == 0)
		v = c->userdb;
	else if (strcmp(key, "mail_location") == 0)
		v = c->mail_location;
	else if (strcmp(key, "state_dir") == 0)
		v = c->state_dir;
	else
		errx(1, "conf_value: unknown key %s", key);
	if (strlen(v) >= size) {
		warnx("%s: %s value too long", conf, key);
		goto out;
	}
	memcpy(out, v, strlen(v) + 1);
	ret = v[0] != '\0';
out:
	free(c);
	return ret;
}

int conf_load(const char *path, struct conf *c, const char *hint)
{
	char msg[1024];
	size_t len;
	char *text = conf_read_file(path, &len, msg, sizeof(msg));
	int r = -1;

	if (text == NULL)
		warnx("%s%s", msg, hint);
	else if (conf_parse(path, text, len, c, msg, sizeof(msg)) < 0)
		warnx("%s", msg);
	else
		r = 0;
	free(text);
	return r;
}

struct conf *conf_from_args(const struct cmd_args *a, const char **path_r)
{
	const char *path = args_get(a, "--config");
	struct conf *c;

	if (path != NULL && a->conf_path != NULL) {
		warnx("-c and --config given both");
		usage_command();
	}
	if (path == NULL)
		path = a->conf_path != NULL ? a->conf_path : GANNETCTL_CONF_DEFAULT;
	if (path_r != NULL)
		*path_r = path;
	if ((c = calloc(1, sizeof(*c))) == NULL)
		err(EXIT_FAIL, "calloc");
	if (conf_load(path, c, "") < 0) {
		free(c);
		return NULL;
	}
	return c;
}

int userfile_locate(const struct cmd_args *a, char *out, size_t size)
{
	const char *conf = a->conf_path != NULL ? a->conf_path : GANNETCTL_CONF_DEFAULT;
	int r;

	if (a->user_file != NULL) {
		if ((size_t)snprintf(out, size, "%s", a->user_file) >= size) {
			warnx("user file path too long");
			return -1;
		}
		return 0;
	}
	r = conf_value(conf, "userdb", out, size);
	if (r == 0)
		warnx("%s: no \"userdb = PATH\" line (give the user file with -f)", conf);
	return r == 1 ? 0 : -1;
}

static int take_lock(struct userfile *uf)
{
	char lockpath[sizeof(uf->path) + 8];
	struct timespec pause = {0, 100 * 1000 * 1000};
	int tries = USERFILE_LOCK_SECONDS * 10;

	snprintf(lockpath, sizeof(lockpath), "%s.lock", uf->path);
	/* The lock file stays: removing it would let two runs lock two different inodes. */
	uf->lock_fd = open(lockpath, O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600);
	if (uf->lock_fd < 0) {
		warn("%s", lockpath);
		return -1;
	}
	while (flock(uf->lock_fd, LOCK_EX | LOCK_NB) < 0) {
		if (errno != EWOULDBLOCK && errno != EINTR) {
			warn("%s: flock", lockpath);
			return -1;
		}
		if (--tries <= 0) {
			warnx("%s: still locked by another gannetctl after %d s", lockpath,
			      USERFILE_LOCK_SECONDS);
			return -1;
		}
		nanosleep(&pause, NULL);
	}
	return 0;
}

static int read_all(struct userfile *uf, int fd)
{
	size_t cap = (size_t)uf->st.st_size + 1;

	if ((size_t)uf->st.st_size > USERFILE_MAX) {
		warnx("%s: larger than %zu bytes", uf->path, USERFILE_MAX);
		return -1;
	}
	uf->data = malloc(cap);
	if (uf->data == NULL) {
		warn("malloc");
		return -1;
	}
	for (;;) {
		ssize_t n;

		/* The file may have grown since fstat: whoever edits it without the lock. */
		if (uf->len == cap) {
			char *p;

			if (cap > USERFILE_MAX) {
				warnx("%s: larger than %zu bytes", uf->path, USERFILE_MAX);
				return -1;
			}
			p = realloc(uf->data, cap * 2);
			if (p == NULL) {
				warn("realloc");
				return -1;
			}
			uf->data = p;
			cap *= 2;
		}
		n = read(fd, uf->data + uf->len, cap - uf->len);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			warn("%s", uf->path);
			return -1;
		}
		if (n == 0)
			return 0;
		uf->len += (size_t)n;
	}
}

int userfile_load(struct userfile *uf, const char *path, bool lock)
{
	char *real;
	int fd;

	memset(uf, 0, sizeof(*uf));
	uf->lock_fd = -1;
	/* Edit the file a symlink points to, so that the rename does not replace the link. */
	real = realpath(path, NULL);
	if ((size_t)snprintf(uf->path, sizeof(uf->path), "%s", real != NULL ? real : path) >=
	    sizeof(uf->path)) {
		free(real);
		warnx("%s: path too long", path);
		return -1;
	}
	free(real);
	if (lock && take_lock(uf) < 0)
		return -1;
	fd = open(uf->path, O_RDONLY | O_CLOEXEC);
	if (fd < 0) {
		if (errno != ENOENT) {
			warn("%s", uf->path);
			return -1;
		}
		uf->data = malloc(1);
		if (uf->data == NULL) {
			warn("malloc");
			return -1;
		}
		return 0;
	}
	if (fstat(fd, &uf->st) < 0 || !S_ISREG(uf->st.st_mode)) {
		if (S_ISREG(uf->st.st_mode))
			warn("%s", uf->path);
		else
			warnx("%s: not a regular file", uf->path);
		close(fd);
		return -1;
	}
	uf->exists = true;
	if (read_all(uf, fd) < 0) {
		close(fd);
		return -1;
	}
	close(fd);
	return 0;
}

int userfile_replace(struct userfile *uf, const char *data, size_t len)
{
	char tmp[sizeof(uf->path) + 16], dir[sizeof(uf->path)];
	int fd, dfd;

	snprintf(tmp, sizeof(tmp), "%s.tmp.XXXXXX", uf->path);
	fd = mkostemp(tmp, O_CLOEXEC);
	if (fd < 0) {
		warn("%s", tmp);
		return -1;
	}
	/* fchmod rather than the umask: the auth process's group must keep reading the file. */
	if (fchmod(fd, uf->exists ? (uf->st.st_mode & 07777) : 0640) < 0) {
		warn("%s: fchmod", tmp);
		goto fail;
	}
	if (uf->exists && geteuid() == 0 && fchown(fd, uf->st.st_uid, uf->st.st_gid) < 0) {
		warn("%s: fchown", tmp);
		goto fail;
	}
	if (fd_write_all(fd, data, len) < 0 || fsync(fd) < 0) {
		warn("%s", tmp);
		goto fail;
	}
	if (close(fd) < 0) {
		fd = -1;
		warn("%s", tmp);
		goto fail;
	}
	fd = -1;
	if (rename(tmp, uf->path) < 0) {
		warn("rename %s to %s", tmp, uf->path);
		goto fail;
	}
	/* The rename is durable only once the directory is on disk too. */
	snprintf(dir, sizeof(dir), "%s", uf->path);
	dfd = open(dirname(dir), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (dfd < 0 || fsync(dfd) < 0) {
		warn("%s: fsync of the directory", uf->path);
		if (dfd >= 0)
			close(dfd);
		return -1;
	}
	close(dfd);
	return 0;
fail:
	if (fd >= 0)
		close(fd);
	unlink(tmp);
	return -1;
}

void userfile_close(struct userfile *uf)
{
	if (uf->data != NULL) {
		/* Hashes are not passwords, but no reason to leave them in freed memory. */
		explicit_bzero(uf->data, uf->len);
		free(uf->data);
		uf->data = NULL;
	}
	if (uf->lock_fd >= 0) {
		close(uf->lock_fd);
		uf->lock_fd = -1;
	}
}

bool userfile_next_line(const char *data, size_t len, size_t *pos, const char **line,
                        size_t *line_len)
{
	const char *nl;

	if (*pos >= len)
		return false;
	*line = data + *pos;
	nl = memchr(*line, '\n', len - *pos);
	*line_len = nl != NULL ? (size_t)(nl - *line) : len - *pos;
	*pos += *line_len + (nl != NULL ? 1 : 0);
	return true;
}

bool userfile_line_user(const char *line, size_t line_len, const char **user, size_t *user_len)
{
	const char *colon;

	if (line_len > 0 && line[line_len - 1] == '\r')
		line_len--;
	if (line_len == 0 || line[0] == '#')
		return false;
	colon = memchr(line, ':', line_len);
	*user = line;
	*user_len = colon != NULL ? (size_t)(colon - line) : line_len;
	return true;
}
