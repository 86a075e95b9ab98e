/* The offline user commands: user add, passwd, del, list, and pw (hash a password). */
#include <err.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "gannetctl.h"
#include "gannet_limits.h"
#include "log.h"
#include "pwhash.h"
#include "strnum.h"
#include "userdb.h"

/* Names come from the command line; quote them safely in messages all the same. */
static const char *shown(const char *name)
{
	static char buf[USERNAME_MAX * 4 + 1];

	return log_sanitize(buf, sizeof(buf), name, strlen(name));
}

static int check_name(const char *name)
{
	const char *error;

	if (userdb_valid_name(name, strlen(name), &error) < 0) {
		warnx("invalid user name '%s': %s", shown(name), error);
		return -1;
	}
	return 0;
}

/* Reads a password and hashes it with SCHEME into OUT; the password is wiped either way. */
static int new_hash(const struct cmd_args *a, char *out, size_t size)
{
	char pw[PASSWORD_MAX + 2];
	size_t len = 0;
	const char *error;
	int ret = -1;

	if (password_read(args_get(a, "--password-stdin") != NULL, pw, sizeof(pw), &len) == 0) {
		ret = pwhash_make(pw, len, args_get(a, "--scheme"), out, size, &error);
		if (ret < 0)
			warnx("%s", error);
	}
	explicit_bzero(pw, sizeof(pw));
	return ret;
}

/* Offset of the first line defining NAME at or after *POS, or false. Sets *LINE_LEN. */
static bool find_user(const char *data, size_t len, const char *name, size_t *pos, size_t *start_r,
                      size_t *line_len_r)
{
	const char *line, *user;
	size_t line_len, user_len, nlen = strlen(name);

	while (*pos < len) {
		size_t start = *pos;

		userfile_next_line(data, len, pos, &line, &line_len);
		if (userfile_line_user(line, line_len, &user, &user_len) && user_len == nlen &&
		    memcmp(user, name, nlen) == 0) {
			*start_r = start;
			*line_len_r = line_len;
			return true;
		}
	}
	return false;
}

static bool user_exists(const struct userfile *uf, const char *name)
{
	size_t pos = 0, start, line_len;

	return find_user(uf->data, uf->len, name, &pos, &start, &line_len);
}

/* Loads the user file (locked when LOCK) and checks whether NAME is in it as WANT says. */
static int load_checked(const struct cmd_args *a, struct userfile *uf, const char *name, bool want,
                        bool lock)
{
	char path[sizeof(uf->path)];

	if (userfile_locate(a, path, sizeof(path)) < 0 || userfile_load(uf, path, lock) < 0)
		return -1;
	if (user_exists(uf, name) != want) {
		warnx(want ? "user '%s' does not exist" : "user '%s' already exists", shown(name));
		return -1;
	}
	return 0;
}

static int parse_id(const char *opt, const char *s, uint32_t *id_r)
{
	uint64_t v;

	if (strnum_parse(s, 0, UINT32_MAX - 1, &v) < 0) {
		warnx("%s: '%s' is not a number from 0 to 4294967294", opt, shown(s));
		return -1;
	}
	*id_r = (uint32_t)v;
	return 0;
}

/* Fills E from the options other than the password; the checks run before the password is
 * asked, so that a typo does not cost the administrator a second prompt. */
static int entry_from_options(const struct cmd_args *a, const char *name, struct userdb_entry *e)
{
	const char *uid = args_get(a, "--uid"), *gid = args_get(a, "--gid");
	const char *home = args_get(a, "--home"), *mail = args_get(a, "--mail");
	char path[GANNET_PATH_MAX];
	const char *error;
	uint32_t id;

	memset(e, 0, sizeof(*e));
	snprintf(e->user, sizeof(e->user), "%s", name);
	e->uid = (uid_t)-1;
	e->gid = (gid_t)-1;
	if ((uid == NULL) != (gid == NULL)) {
		warnx("--uid and --gid go together");
		usage_command();
	}
	if (uid != NULL) {
		if (parse_id("--uid", uid, &id) < 0)
			return -1;
		e->uid = (uid_t)id;
		if (parse_id("--gid", gid, &id) < 0)
			return -1;
		e->gid = (gid_t)id;
	}
	if (home != NULL) {
		if (home[0] != '/' || strpbrk(home, ":\n") != NULL ||
		    (size_t)snprintf(e->home, sizeof(e->home), "%s", home) >= sizeof(e->home)) {
			warnx("--home must be an absolute path without ':'");
			return -1;
		}
	}
	if (mail != NULL) {
		if (strncmp(mail, "maildir:", 8) == 0)
			mail += 8;
		if (strpbrk(mail, ": \n") != NULL ||
		    (size_t)snprintf(e->mail, sizeof(e->mail), "%s", mail) >= sizeof(e->mail)) {
			warnx("--mail must be a path without ':' or spaces");
			return -1;
		}
		if (userdb_mail_path(e->mail, e, path, sizeof(path), &error) < 0) {
			warnx("--mail %s: %s", shown(mail), error);
			return -1;
		}
	}
	return 0;
}

int cmd_user_add(const struct cmd_args *a)
{
	const char *name = args_get(a, "NAME");
	char line[USERDB_LINE_MAX + 1], *data = NULL;
	struct userdb_entry e;
	struct userfile uf = {.lock_fd = -1};
	size_t llen;
	bool need_nl;
	int ret = EXIT_FAIL;

	if (check_name(name) < 0 || entry_from_options(a, name, &e) < 0)
		return EXIT_FAIL;
	/* A first look without the lock, so that nobody types a password for a name that is
	 * taken; the check is repeated under the lock. */
	if (load_checked(a, &uf, name, false, false) < 0) {
		userfile_close(&uf);
		return EXIT_FAIL;
	}
	userfile_close(&uf);
	if (new_hash(a, e.pwhash, sizeof(e.pwhash)) < 0)
		return EXIT_FAIL;
	if (userdb_format_line(&e, line, sizeof(line)) < 0) {
		warnx("the entry for '%s' does not fit in a user file line", shown(name));
		goto out;
	}
	if (load_checked(a, &uf, name, false, true) < 0)
		goto out_close;
	llen = strlen(line);
	need_nl = uf.len > 0 && uf.data[uf.len - 1] != '\n';
	data = malloc(uf.len + need_nl + llen);
	if (data == NULL) {
		warn("malloc");
		goto out_close;
	}
	memcpy(data, uf.data, uf.len);
	if (need_nl)
		data[uf.len] = '\n';
	memcpy(data + uf.len + need_nl, line, llen);
	if (userfile_replace(&uf, data, uf.len + need_nl + llen) == 0)
		ret = 0;
	explicit_bzero(data, uf.len + need_nl + llen);
	free(data);
out_close:
	userfile_close(&uf);
out:
	explicit_bzero(&e, sizeof(e));
	explicit_bzero(line, sizeof(line));
	return ret;
}

int cmd_user_passwd(const struct cmd_args *a)
{
	const char *name = args_get(a, "NAME");
	char hash[PWHASH_MAX + 1], *data = NULL;
	struct userfile uf = {.lock_fd = -1};
	size_t pos = 0, start, line_len, old_start, old_end, hlen, nlen;
	const char *colon;
	int ret = EXIT_FAIL;

	if (check_name(name) < 0)
		return EXIT_FAIL;
	if (load_checked(a, &uf, name, true, false) < 0) {
		userfile_close(&uf);
		return EXIT_FAIL;
	}
	userfile_close(&uf);
	if (new_hash(a, hash, sizeof(hash)) < 0)
		return EXIT_FAIL;
	if (load_checked(a, &uf, name, true, true) < 0)
		goto out;
	/* Only the hash field of the first line for NAME changes (the one userdb_lookup uses);
	 * every other byte of the file, that line's other fields included, stays. */
	find_user(uf.data, uf.len, name, &pos, &start, &line_len);
	colon = memchr(uf.data + start, ':', line_len);
	if (colon == NULL) {
		old_start = old_end = start + line_len;
	} else {
		const char *next;

		old_start = (size_t)(colon - uf.data) + 1;
		next = memchr(colon + 1, ':', start + line_len - old_start);
		old_end = next != NULL ? (size_t)(next - uf.data) : start + line_len;
		/* Keep a CRLF line's CR when the hash is the last field. */
		if (next == NULL && old_end > old_start && uf.data[old_end - 1] == '\r')
			old_end--;
	}
	hlen = strlen(hash);
	if (line_len - (old_end - old_start) + hlen + (colon == NULL) >= USERDB_LINE_MAX) {
		warnx("the line for '%s' would be longer than %d bytes", shown(name),
		      USERDB_LINE_MAX);
		goto out;
	}
	nlen = uf.len - (old_end - old_start) + hlen + (colon == NULL);
	data = malloc(nlen);
	if (data == NULL) {
		warn("malloc");
		goto out;
	}
	memcpy(data, uf.data, old_start);
	if (colon == NULL)
		data[old_start] = ':';
	memcpy(data + old_start + (colon == NULL), hash, hlen);
	memcpy(data + old_start + (colon == NULL) + hlen, uf.data + old_end, uf.len - old_end);
	if (userfile_replace(&uf, data, nlen) == 0)
		ret = 0;
	explicit_bzero(data, nlen);
	free(data);
out:
	userfile_close(&uf);
	explicit_bzero(hash, sizeof(hash));
	return ret;
}

int cmd_user_del(const struct cmd_args *a)
{
	const char *name = args_get(a, "NAME");
	struct userfile uf = {.lock_fd = -1};
	char *data;
	size_t pos = 0, from = 0, n = 0, start, line_len;
	int ret = EXIT_FAIL;

	if (check_name(name) < 0)
		return EXIT_FAIL;
	if (load_checked(a, &uf, name, true, true) < 0) {
		userfile_close(&uf);
		return EXIT_FAIL;
	}
	data = malloc(uf.len + 1);
	if (data == NULL) {
		warn("malloc");
		userfile_close(&uf);
		return EXIT_FAIL;
	}
	/* Every line for NAME goes: deleting only the first would bring a shadowed duplicate to
	 * life. */
	while (find_user(uf.data, uf.len, name, &pos, &start, &line_len)) {
		memcpy(data + n, uf.data + from, start - from);
		n += start - from;
		from = pos;
	}
	memcpy(data + n, uf.data + from, uf.len - from);
	n += uf.len - from;
	if (userfile_replace(&uf, data, n) == 0)
		ret = 0;
	explicit_bzero(data, uf.len + 1);
	free(data);
	userfile_close(&uf);
	return ret;
}

int cmd_user_list(const struct cmd_args *a)
{
	char path[4096], mail[GANNET_PATH_MAX], deflt[GANNET_PATH_MAX], line[USERDB_LINE_MAX];
	struct userdb_entry e;
	struct userfile uf = {.lock_fd = -1};
	const char *l, *user, *error, *tmpl;
	size_t pos = 0, line_len, user_len;
	unsigned long lineno = 0;
	int ret = 0;

	if (userfile_locate(a, path, sizeof(path)) < 0 || userfile_load(&uf, path, false) < 0) {
		userfile_close(&uf);
		return EXIT_FAIL;
	}
	if (!uf.exists) {
		warnx("%s: no such file", uf.path);
		userfile_close(&uf);
		return EXIT_FAIL;
	}
	/* With a config file, users without a mail= of their own show the server's default. */
	if (a->user_file == NULL &&
	    conf_value(a->conf_path != NULL ? a->conf_path : GANNETCTL_CONF_DEFAULT,
	               "mail_location", deflt, sizeof(deflt)) != 1)
		deflt[0] = '\0';
	while (userfile_next_line(uf.data, uf.len, &pos, &l, &line_len)) {
		lineno++;
		if (!userfile_line_user(l, line_len, &user, &user_len))
			continue;
		if (line_len >= sizeof(line)) {
			warnx("%s:%lu: line too long", uf.path, lineno);
			ret = EXIT_FAIL;
			continue;
		}
		if (memchr(l, '\0', line_len) != NULL) {
			warnx("%s:%lu: NUL byte in line", uf.path, lineno);
			ret = EXIT_FAIL;
			continue;
		}
		memcpy(line, l, line_len);
		line[line_len] = '\0';
		if (line[line_len - 1] == '\r')
			line[line_len - 1] = '\0';
		if (userdb_parse_line(line, &e, &error) < 0) {
			warnx("%s:%lu: %s", uf.path, lineno, error);
			ret = EXIT_FAIL;
			continue;
		}
		tmpl = e.mail[0] != '\0' ? e.mail : deflt;
		/* "-": no mail= of its own and no config file read, the server's default applies.
		 */
		if (tmpl[0] == '\0') {
			snprintf(mail, sizeof(mail), "-");
		} else if (userdb_mail_path(tmpl, &e, mail, sizeof(mail), &error) < 0) {
			warnx("%s:%lu: mail location %s: %s", uf.path, lineno, tmpl, error);
			snprintf(mail, sizeof(mail), "%s", tmpl);
			ret = EXIT_FAIL;
		}
		printf("%s\t%s\t%s\n", e.user, e.home[0] != '\0' ? e.home : "-", mail);
	}
	explicit_bzero(line, sizeof(line));
	explicit_bzero(&e, sizeof(e));
	userfile_close(&uf);
	if (fflush(stdout) != 0 || ferror(stdout)) {
		warn("stdout");
		ret = EXIT_FAIL;
	}
	return ret;
}

int cmd_pw(const struct cmd_args *a)
{
	char hash[PWHASH_MAX + 1];
	int ret = EXIT_FAIL;

	if (new_hash(a, hash, sizeof(hash)) == 0) {
		printf("%s\n", hash);
		ret = fflush(stdout) == 0 ? 0 : EXIT_FAIL;
	}
	explicit_bzero(hash, sizeof(hash));
	return ret;
}
