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
#include "scram.h"
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

/* What a new password becomes in the user file: the hash and both SCRAM verifiers. */
struct secrets {
	char hash[PWHASH_MAX + 1];
	char scram_sha1[SCRAM_FIELD_MAX + 1];
	char scram_sha256[SCRAM_FIELD_MAX + 1];
};

/* Reads a password, checks its quality for user NAME (GECOS and HOME may be "") unless NAME is
 * NULL or --force was given, and hashes it with --scheme into S->hash; with SCRAM, also makes
 * both verifiers. The password is wiped either way. */
static int new_secrets(const struct cmd_args *a, const char *name, const char *gecos,
                       const char *home, bool scram, struct secrets *s)
{
	char pw[PASSWORD_MAX + 2];
	size_t len = 0;
	const char *error;
	int ret = -1;

	memset(s, 0, sizeof(*s));
	if (password_read(args_get(a, "--password-stdin") != NULL, pw, sizeof(pw), &len) < 0)
		goto out;
	if (name != NULL && args_get(a, "--force") == NULL &&
	    password_quality(pw, name, gecos, home) < 0)
		goto out;
	if (pwhash_make(pw, len, args_get(a, "--scheme"), s->hash, sizeof(s->hash), &error) < 0 ||
	    (scram && (scram_make(SCRAM_SHA1, pw, len, SCRAM_ITER_DEFAULT, s->scram_sha1,
	                          sizeof(s->scram_sha1), &error) < 0 ||
	               scram_make(SCRAM_SHA256, pw, len, SCRAM_ITER_DEFAULT, s->scram_sha256,
	                          sizeof(s->scram_sha256), &error) < 0))) {
		warnx("%s", error);
		goto out;
	}
	ret = 0;
out:
	explicit_bzero(pw, sizeof(pw));
	if (ret < 0)
		explicit_bzero(s, sizeof(*s));
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
	struct secrets sec;
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
	if (new_secrets(a, name, "", e.home, true, &sec) < 0)
		return EXIT_FAIL;
	memcpy(e.pwhash, sec.hash, sizeof(e.pwhash));
	memcpy(e.scram_sha1, sec.scram_sha1, sizeof(e.scram_sha1));
	memcpy(e.scram_sha256, sec.scram_sha256, sizeof(e.scram_sha256));
	explicit_bzero(&sec, sizeof(sec));
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

/* Field N (0 = user) of a passwd-file LINE: *START and *LEN, or false when the line has fewer
 * fields. The extra field (7) runs to the end of the line. */
static bool line_field(const char *line, size_t len, unsigned n, size_t *start, size_t *flen)
{
	size_t pos = 0;

	for (unsigned i = 0; i < n; i++) {
		const char *colon = memchr(line + pos, ':', len - pos);

		if (colon == NULL)
			return false;
		pos = (size_t)(colon - line) + 1;
	}
	*start = pos;
	if (n == 7) {
		*flen = len - pos;
	} else {
		const char *colon = memchr(line + pos, ':', len - pos);

		*flen = colon != NULL ? (size_t)(colon - (line + pos)) : len - pos;
	}
	return true;
}

static int put(char *out, size_t size, size_t *pos, const char *s, size_t len)
{
	if (len >= size - *pos)
		return -1;
	memcpy(out + *pos, s, len);
	*pos += len;
	return 0;
}

/* The line for NAME with new secrets: the hash field replaced, the extra field's scram-sha-1=
 * and scram-sha-256= words (old verifiers would still accept the old password) replaced by the
 * new ones, every other field and extra word kept as it was (words joined by one space). Missing
 * fields are added empty; a CR before the line's '\n' stays. OUT gets the line without '\n'. 0,
 * or -1 when it would not fit in SIZE. */
static int rewrite_line(const char *line, size_t len, const struct secrets *sec, char *out,
                        size_t size, size_t *out_len)
{
	static const char *const words[] = {"scram-sha-1=", "scram-sha-256="};
	const char *values[] = {sec->scram_sha1, sec->scram_sha256};
	size_t pos = 0, start, flen, i;
	bool cr = len > 0 && line[len - 1] == '\r', first = true;

	if (cr)
		len--;
	if (!line_field(line, len, 0, &start, &flen) || put(out, size, &pos, line, flen) < 0 ||
	    put(out, size, &pos, ":", 1) < 0 ||
	    put(out, size, &pos, sec->hash, strlen(sec->hash)) < 0)
		return -1;
	for (unsigned n = 2; n < 7; n++) {
		if (put(out, size, &pos, ":", 1) < 0)
			return -1;
		if (line_field(line, len, n, &start, &flen) &&
		    put(out, size, &pos, line + start, flen) < 0)
			return -1;
	}
	if (put(out, size, &pos, ":", 1) < 0)
		return -1;
	if (line_field(line, len, 7, &start, &flen)) {
		for (i = start; i < start + flen;) {
			size_t w = i, wlen;
			bool drop = false;

			while (w < start + flen && line[w] == ' ')
				w++;
			for (i = w; i < start + flen && line[i] != ' ';)
				i++;
			wlen = i - w;
			if (wlen == 0)
				break;
			for (size_t k = 0; k < 2; k++) {
				if (wlen >= strlen(words[k]) &&
				    memcmp(line + w, words[k], strlen(words[k])) == 0)
					drop = true;
			}
			if (drop)
				continue;
			if ((!first && put(out, size, &pos, " ", 1) < 0) ||
			    put(out, size, &pos, line + w, wlen) < 0)
				return -1;
			first = false;
		}
	}
	for (i = 0; i < 2; i++) {
		if (values[i][0] == '\0')
			continue;
		if ((!first && put(out, size, &pos, " ", 1) < 0) ||
		    put(out, size, &pos, words[i], strlen(words[i])) < 0 ||
		    put(out, size, &pos, values[i], strlen(values[i])) < 0)
			return -1;
		first = false;
	}
	if (cr && put(out, size, &pos, "\r", 1) < 0)
		return -1;
	*out_len = pos;
	return 0;
}

/* Copies field N of LINE into OUT ("" when missing or too long), for the quality check. */
static void field_copy(const char *line, size_t len, unsigned n, char *out, size_t size)
{
	size_t start, flen;

	out[0] = '\0';
	if (line_field(line, len, n, &start, &flen) && flen < size) {
		memcpy(out, line + start, flen);
		out[flen] = '\0';
	}
}

int cmd_user_passwd(const struct cmd_args *a)
{
	const char *name = args_get(a, "NAME");
	char gecos[USERDB_LINE_MAX], home[GANNET_PATH_MAX], line[USERDB_LINE_MAX];
	char *data = NULL;
	struct secrets sec;
	struct userfile uf = {.lock_fd = -1};
	size_t pos = 0, start, line_len, new_len, nlen, end;
	int ret = EXIT_FAIL;

	if (check_name(name) < 0)
		return EXIT_FAIL;
	if (load_checked(a, &uf, name, true, false) < 0) {
		userfile_close(&uf);
		return EXIT_FAIL;
	}
	/* GECOS and home feed passwdqc's "based on personal login information" check. */
	find_user(uf.data, uf.len, name, &pos, &start, &line_len);
	field_copy(uf.data + start, line_len, 4, gecos, sizeof(gecos));
	field_copy(uf.data + start, line_len, 5, home, sizeof(home));
	userfile_close(&uf);
	if (new_secrets(a, name, gecos, home, true, &sec) < 0)
		return EXIT_FAIL;
	if (load_checked(a, &uf, name, true, true) < 0)
		goto out;
	/* Only the first line for NAME changes (the one userdb_lookup uses), and in it only the
	 * hash and the verifiers; every other byte of the file stays. */
	pos = 0;
	find_user(uf.data, uf.len, name, &pos, &start, &line_len);
	if (rewrite_line(uf.data + start, line_len, &sec, line, sizeof(line), &new_len) < 0) {
		warnx("the line for '%s' would be longer than %d bytes", shown(name),
		      USERDB_LINE_MAX);
		goto out;
	}
	end = start + line_len;
	nlen = start + new_len + (uf.len - end);
	data = malloc(nlen);
	if (data == NULL) {
		warn("malloc");
		goto out;
	}
	memcpy(data, uf.data, start);
	memcpy(data + start, line, new_len);
	memcpy(data + start + new_len, uf.data + end, uf.len - end);
	if (userfile_replace(&uf, data, nlen) == 0)
		ret = 0;
	explicit_bzero(data, nlen);
	free(data);
out:
	userfile_close(&uf);
	explicit_bzero(&sec, sizeof(sec));
	explicit_bzero(line, sizeof(line));
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
	/* A later user of the same name must not inherit app passwords, TOTP or APOP. */
	if (ret == 0 && security_forget_user(a, name) < 0) {
		warnx("user %s deleted, but the account-security store still holds their records",
		      name);
		ret = EXIT_FAIL;
	}
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
	struct secrets sec;
	int ret = EXIT_FAIL;

	/* Like doveadm pw: only the hash, and no quality check (nothing is stored). */
	if (new_secrets(a, NULL, "", "", false, &sec) == 0) {
		printf("%s\n", sec.hash);
		ret = fflush(stdout) == 0 ? 0 : EXIT_FAIL;
	}
	explicit_bzero(&sec, sizeof(sec));
	return ret;
}
