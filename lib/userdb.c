/* The passwd-file user database: name checks, line parsing and formatting, lookup, mail paths. */
#include "userdb.h"

#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "strnum.h"
#include "utf8.h"

/* Field numbers of user:password:uid:gid:gecos:home:shell:extra. */
enum { F_USER, F_PASS, F_UID, F_GID, F_GECOS, F_HOME, F_SHELL, F_EXTRA, F_COUNT };

/* RFC 6856 §2.2: a UTF-8 name must be what SASLprep makes of it as a stored string, so the
 * prepared USER argument finds it, and two spellings of one name cannot be two accounts. */
static bool saslprep_stable(const char *name, size_t len)
{
	char prepped[USERNAME_MAX + 1];
	const char *error;

	return utf8_saslprep(name, len, true, prepped, sizeof(prepped), &error) == 0 &&
	       strlen(prepped) == len && memcmp(prepped, name, len) == 0;
}

int userdb_valid_name(const char *name, size_t len, const char **error_r)
{
	size_t at = SIZE_MAX;

	if (len == 0 || len > USERNAME_MAX) {
		*error_r = "user name empty or too long";
		return -1;
	}
	for (size_t i = 0; i < len; i++) {
		unsigned char c = (unsigned char)name[i];

		if (c < 0x20 || c == 0x7f) {
			*error_r = "user name holds a control character";
			return -1;
		}
		/* '/' and ".." would escape a maildir template, '%' would be expanded by one,
		 * ':' and ' ' are the passwd-file separators. */
		if (c == '/' || c == ':' || c == ' ' || c == '%') {
			*error_r = "user name holds '/', ':', '%' or a space";
			return -1;
		}
		if (c == '.' && i + 1 < len && name[i + 1] == '.') {
			*error_r = "user name holds \"..\"";
			return -1;
		}
		if (c == '@') {
			if (at != SIZE_MAX) {
				*error_r = "user name holds more than one '@'";
				return -1;
			}
			at = i;
		}
	}
	if (name[0] == '.' || name[0] == '-') {
		*error_r = "user name starts with '.' or '-'";
		return -1;
	}
	if (!utf8_is_ascii(name, len) && !saslprep_stable(name, len)) {
		*error_r = "user name is not UTF-8 in SASLprep form (RFC 4013: no control, "
		           "prohibited or unassigned characters, already normalised)";
		return -1;
	}
	if (at != SIZE_MAX) {
		/* Each part becomes a path component through %n and %d. */
		if (at == 0 || at + 1 == len || name[at + 1] == '.' || name[at + 1] == '-') {
			*error_r = "user name has an empty or malformed local part or domain";
			return -1;
		}
	}
	return 0;
}

static int parse_id(const char *s, size_t len, uint32_t *id_r, const char **error_r)
{
	uint64_t v;

	if (len == 0) {
		*id_r = UINT32_MAX;
		return 0;
	}
	/* (uid_t)-1 means "unchanged" to chown(2) and setresuid(2), so it cannot be an id. */
	if (strnum_u64(s, len, 0, UINT32_MAX - 1, &v) < 0) {
		*error_r = "uid or gid is not a decimal number below 4294967295";
		return -1;
	}
	*id_r = (uint32_t)v;
	return 0;
}

static int copy_field(char *dst, size_t size, const char *src, size_t len)
{
	if (len >= size)
		return -1;
	memcpy(dst, src, len);
	dst[len] = '\0';
	return 0;
}

/* Dovecot mail locations look like "maildir:/path[:KEY=VALUE...]"; we take the path and ignore
 * the options (INDEX=, LAYOUT= ... are Dovecot's own). A bare "/path" is accepted as well. */
static int parse_mail(const char *v, size_t len, char *out, size_t size, const char **error_r)
{
	const char *colon;

	if (len >= 8 && memcmp(v, "maildir:", 8) == 0) {
		v += 8;
		len -= 8;
	} else if (memchr(v, ':', len) != NULL) {
		*error_r = "mail location is not maildir:";
		return -1;
	}
	colon = memchr(v, ':', len);
	if (colon != NULL)
		len = (size_t)(colon - v);
	if (len == 0) {
		*error_r = "empty mail location";
		return -1;
	}
	if (copy_field(out, size, v, len) < 0) {
		*error_r = "mail location too long";
		return -1;
	}
	return 0;
}

static _Thread_local char field_error[160];

/* A SCRAM verifier word: checked now, so that a broken one is reported with its file and line
 * rather than failing a client's AUTH later. */
static int parse_scram(const char *key, enum scram_hash h, const char *v, size_t len, char *out,
                       size_t size, const char **error_r)
{
	struct scram_secret secret;
	const char *reason;

	if (out[0] != '\0') {
		snprintf(field_error, sizeof(field_error), "%s= given twice", key);
		*error_r = field_error;
		return -1;
	}
	if (len > SCRAM_FIELD_MAX || len >= size) {
		snprintf(field_error, sizeof(field_error), "%s=: verifier longer than %d bytes",
		         key, SCRAM_FIELD_MAX);
		*error_r = field_error;
		return -1;
	}
	memcpy(out, v, len);
	out[len] = '\0';
	if (len == 0 || scram_parse(h, out, &secret, &reason) < 0) {
		snprintf(field_error, sizeof(field_error), "%s=: %s", key,
		         len == 0 ? "empty verifier" : reason);
		*error_r = field_error;
		out[0] = '\0';
		return -1;
	}
	return 0;
}

static bool key_is(const char *s, size_t klen, const char *key)
{
	return klen == strlen(key) && memcmp(s, key, klen) == 0;
}

/* expire=DAYS|never, login_delay=SECONDS: strict decimals up to MAX, at most once per line (a
 * second value would leave the effective policy to the order of fields). */
static int parse_policy(const char *key, const char *v, size_t vlen, long max, bool never_ok,
                        bool *has, long *out, const char **error_r)
{
	uint64_t n;

	if (*has) {
		snprintf(field_error, sizeof(field_error), "%s= given twice", key);
		*error_r = field_error;
		return -1;
	}
	if (never_ok && vlen == 5 && memcmp(v, "never", 5) == 0) {
		*has = true;
		*out = USERDB_EXPIRE_NEVER;
		return 0;
	}
	if (strnum_u64(v, vlen, 0, (uint64_t)max, &n) < 0) {
		snprintf(field_error, sizeof(field_error),
		         "%s=: expected %sa whole number from 0 to %ld", key,
		         never_ok ? "never or " : "", max);
		*error_r = field_error;
		return -1;
	}
	*has = true;
	*out = (long)n;
	return 0;
}

static int parse_extra(const char *s, size_t len, struct userdb_entry *e, const char **error_r)
{
	size_t i = 0;

	while (i < len) {
		size_t start, end, klen, vlen;
		const char *eq, *v;

		while (i < len && s[i] == ' ')
			i++;
		start = i;
		while (i < len && s[i] != ' ')
			i++;
		end = i;
		if (start == end)
			break;
		eq = memchr(s + start, '=', end - start);
		if (eq == NULL)
			continue;
		klen = (size_t)(eq - (s + start));
		v = eq + 1;
		vlen = (size_t)(s + end - v);
		if (key_is(s + start, klen, "userdb_mail") || key_is(s + start, klen, "mail")) {
			if (parse_mail(v, vlen, e->mail, sizeof(e->mail), error_r) < 0)
				return -1;
		} else if (key_is(s + start, klen, "scram-sha-1")) {
			if (parse_scram("scram-sha-1", SCRAM_SHA1, v, vlen, e->scram_sha1,
			                sizeof(e->scram_sha1), error_r) < 0)
				return -1;
		} else if (key_is(s + start, klen, "scram-sha-256")) {
			if (parse_scram("scram-sha-256", SCRAM_SHA256, v, vlen, e->scram_sha256,
			                sizeof(e->scram_sha256), error_r) < 0)
				return -1;
		} else if (key_is(s + start, klen, "expire")) {
			if (parse_policy("expire", v, vlen, USERDB_EXPIRE_DAYS_MAX, true,
			                 &e->has_expire, &e->expire_days, error_r) < 0)
				return -1;
		} else if (key_is(s + start, klen, "login_delay")) {
			if (parse_policy("login_delay", v, vlen, USERDB_LOGIN_DELAY_MAX, false,
			                 &e->has_login_delay, &e->login_delay, error_r) < 0)
				return -1;
		}
	}
	return 0;
}

int userdb_parse_line(const char *line, struct userdb_entry *e, const char **error_r)
{
	const char *f[F_COUNT] = {"", "", "", "", "", "", "", ""};
	size_t flen[F_COUNT] = {0};
	size_t nf = 0, len = strlen(line);
	const char *p = line, *end = line + len;
	uint32_t id;

	/* E may still hold the previous line's hash. */
	explicit_bzero(e, sizeof(*e));
	e->uid = (uid_t)-1;
	e->gid = (gid_t)-1;
	/* The extra field is the rest of the line: its values ("maildir:/x") may hold ':'. */
	while (nf < F_COUNT) {
		const char *colon = nf == F_EXTRA ? NULL : memchr(p, ':', (size_t)(end - p));

		f[nf] = p;
		flen[nf] = colon != NULL ? (size_t)(colon - p) : (size_t)(end - p);
		nf++;
		if (colon == NULL)
			break;
		p = colon + 1;
	}
	if (nf < 2) {
		*error_r = "no ':' after the user name";
		return -1;
	}
	if (userdb_valid_name(f[F_USER], flen[F_USER], error_r) < 0)
		return -1;
	if (copy_field(e->user, sizeof(e->user), f[F_USER], flen[F_USER]) < 0 ||
	    copy_field(e->pwhash, sizeof(e->pwhash), f[F_PASS], flen[F_PASS]) < 0) {
		*error_r = "password hash too long";
		return -1;
	}
	if (parse_id(f[F_UID], flen[F_UID], &id, error_r) < 0)
		return -1;
	e->uid = (uid_t)id;
	if (parse_id(f[F_GID], flen[F_GID], &id, error_r) < 0)
		return -1;
	e->gid = (gid_t)id;
	if (flen[F_HOME] > 0 && f[F_HOME][0] != '/') {
		*error_r = "home directory is not an absolute path";
		return -1;
	}
	if (copy_field(e->home, sizeof(e->home), f[F_HOME], flen[F_HOME]) < 0) {
		*error_r = "home directory too long";
		return -1;
	}
	if (parse_extra(f[F_EXTRA], flen[F_EXTRA], e, error_r) < 0)
		return -1;
	return 0;
}

static bool has_any(const char *s, const char *chars)
{
	for (; *s != '\0'; s++) {
		if ((unsigned char)*s < 0x20 || *s == 0x7f || strchr(chars, *s) != NULL)
			return true;
	}
	return false;
}

static bool scram_ok(enum scram_hash h, const char *v)
{
	struct scram_secret secret;
	const char *error;

	return v[0] == '\0' || scram_parse(h, v, &secret, &error) == 0;
}

int userdb_format_line(const struct userdb_entry *e, char *out, size_t size)
{
	char uid[16] = "", gid[16] = "", policy[64] = "";
	const char *error;
	size_t min;
	int n;

	/* Refuse what would split a field or a line, so a bad value cannot forge a second user;
	 * a verifier that passes scram_parse holds neither ':' nor ' '. */
	if (userdb_valid_name(e->user, strnlen(e->user, sizeof(e->user)), &error) < 0 ||
	    has_any(e->pwhash, ":") || has_any(e->home, ":") || has_any(e->mail, ": ") ||
	    !scram_ok(SCRAM_SHA1, e->scram_sha1) || !scram_ok(SCRAM_SHA256, e->scram_sha256))
		return -1;
	if (e->uid != (uid_t)-1)
		snprintf(uid, sizeof(uid), "%u", (unsigned)e->uid);
	if (e->gid != (gid_t)-1)
		snprintf(gid, sizeof(gid), "%u", (unsigned)e->gid);
	/* The policies go last; a line without mail or verifiers still gets its separator. */
	if (e->has_expire && e->expire_days == USERDB_EXPIRE_NEVER)
		snprintf(policy, sizeof(policy), " expire=never");
	else if (e->has_expire && e->expire_days >= 0 && e->expire_days <= USERDB_EXPIRE_DAYS_MAX)
		snprintf(policy, sizeof(policy), " expire=%ld", e->expire_days);
	if (e->has_login_delay && e->login_delay >= 0 && e->login_delay <= USERDB_LOGIN_DELAY_MAX)
		snprintf(policy + strlen(policy), sizeof(policy) - strlen(policy),
		         " login_delay=%ld", e->login_delay);
	n = snprintf(out, size, "%s:%s:%s:%s::%s::%s%s%s%s%s%s%s%s%s\n", e->user, e->pwhash, uid,
	             gid, e->home, e->mail[0] != '\0' ? "userdb_mail=maildir:" : "", e->mail,
	             e->mail[0] != '\0' && e->scram_sha1[0] != '\0' ? " " : "",
	             e->scram_sha1[0] != '\0' ? "scram-sha-1=" : "", e->scram_sha1,
	             (e->mail[0] != '\0' || e->scram_sha1[0] != '\0') && e->scram_sha256[0] != '\0'
	                 ? " "
	                 : "",
	             e->scram_sha256[0] != '\0' ? "scram-sha-256=" : "", e->scram_sha256,
	             e->mail[0] != '\0' || e->scram_sha1[0] != '\0' || e->scram_sha256[0] != '\0'
	                 ? policy
	                 : policy + (policy[0] != '\0'));
	if (n < 0 || (size_t)n >= size || (size_t)n > USERDB_LINE_MAX) {
		explicit_bzero(out, size);
		return -1;
	}
	/* Drop empty trailing fields ("bob:{PLAIN}pw" rather than "bob:{PLAIN}pw::::::"); no field
	 * can end in ':', so only separators go. */
	min = strlen(e->user) + 1 + strlen(e->pwhash);
	n--;
	while ((size_t)n > min && out[n - 1] == ':')
		n--;
	out[n++] = '\n';
	out[n] = '\0';
	return 0;
}

/* Reads one line into BUF without its '\n'. 1 line, 0 end of file, -1 too long, -2 read error or
 * NUL byte. An over-long line is consumed to its end so the caller could go on. */
static int read_line(FILE *fp, char *buf, size_t size, size_t *len_r)
{
	size_t n = 0;
	bool too_long = false, nul = false;
	int c;

	while ((c = getc_unlocked(fp)) != EOF && c != '\n') {
		if (c == '\0')
			nul = true;
		if (n + 1 < size)
			buf[n++] = (char)c;
		else
			too_long = true;
	}
	if (c == EOF && ferror(fp))
		return -2;
	if (c == EOF && n == 0 && !too_long)
		return 0;
	buf[n] = '\0';
	*len_r = n;
	if (too_long)
		return -1;
	return nul ? -2 : 1;
}

static _Thread_local char lookup_error[512];

static const char *line_error(const char *path, unsigned long lineno, const char *reason)
{
	snprintf(lookup_error, sizeof(lookup_error), "%s:%lu: %s", path, lineno, reason);
	return lookup_error;
}

int userdb_lookup(const char *path, const char *user, struct userdb_entry *e, const char **error_r)
{
	/* USERDB_LINE_MAX counts the '\n': the longest content is one byte shorter. */
	char line[USERDB_LINE_MAX];
	unsigned long lineno = 0;
	size_t len;
	FILE *fp;
	int ret = 0, r;

	fp = fopen(path, "re");
	if (fp == NULL) {
		snprintf(lookup_error, sizeof(lookup_error), "%s: %s", path, strerror(errno));
		*error_r = lookup_error;
		return -1;
	}
	while ((r = read_line(fp, line, sizeof(line), &len)) != 0) {
		const char *reason;

		lineno++;
		if (r == -1) {
			*error_r = line_error(path, lineno, "line too long");
			ret = -1;
			break;
		}
		if (r == -2) {
			*error_r = ferror(fp) ? line_error(path, lineno, strerror(errno))
			                      : line_error(path, lineno, "NUL byte in line");
			ret = -1;
			break;
		}
		if (len > 0 && line[len - 1] == '\r')
			line[--len] = '\0';
		if (len == 0 || line[0] == '#')
			continue;
		/* Every line up to the match is checked, so a broken file is noticed early rather
		 * than only when its broken user tries to log in. */
		if (userdb_parse_line(line, e, &reason) < 0) {
			*error_r = line_error(path, lineno, reason);
			ret = -1;
			break;
		}
		if (strcmp(e->user, user) == 0) {
			ret = 1;
			break;
		}
	}
	explicit_bzero(line, sizeof(line));
	fclose(fp);
	if (ret != 1) {
		explicit_bzero(e->pwhash, sizeof(e->pwhash));
		explicit_bzero(e->scram_sha1, sizeof(e->scram_sha1));
		explicit_bzero(e->scram_sha256, sizeof(e->scram_sha256));
		e->user[0] = '\0';
	}
	return ret;
}

static int append(char *out, size_t size, size_t *pos, const char *s, size_t len)
{
	if (len >= size - *pos)
		return -1;
	memcpy(out + *pos, s, len);
	*pos += len;
	return 0;
}

int userdb_mail_path(const char *template, const struct userdb_entry *e, char *out, size_t size,
                     const char **error_r)
{
	const char *at = strchr(e->user, '@');
	size_t nlen = at != NULL ? (size_t)(at - e->user) : strlen(e->user);
	const char *domain = at != NULL ? at + 1 : "";
	const char *t = template;
	size_t pos = 0, olen;

	if (size == 0) {
		*error_r = "mail path buffer too small";
		return -1;
	}
	if (strncmp(t, "maildir:", 8) == 0)
		t += 8;
	/* Dovecot's "~/Maildir" means the user's home. */
	if (t[0] == '~' && (t[1] == '/' || t[1] == '\0')) {
		if (e->home[0] == '\0') {
			*error_r = "mail location uses ~ but the user has no home";
			return -1;
		}
		if (append(out, size, &pos, e->home, strlen(e->home)) < 0)
			goto too_long;
		t++;
	}
	for (; *t != '\0'; t++) {
		const char *s;
		size_t slen;

		if (*t != '%') {
			if (append(out, size, &pos, t, 1) < 0)
				goto too_long;
			continue;
		}
		switch (*++t) {
		case 'u':
			s = e->user, slen = strlen(e->user);
			break;
		case 'n':
			s = e->user, slen = nlen;
			break;
		case 'd':
			s = domain, slen = strlen(domain);
			break;
		case 'h':
			if (e->home[0] == '\0') {
				*error_r = "mail location uses %h but the user has no home";
				return -1;
			}
			s = e->home, slen = strlen(e->home);
			break;
		case '%':
			s = "%", slen = 1;
			break;
		default:
			*error_r = "unknown %-variable in mail location (known: %u %n %d %h %%)";
			return -1;
		}
		if (append(out, size, &pos, s, slen) < 0)
			goto too_long;
	}
	out[pos] = '\0';
	olen = pos;
	if (olen == 0 || out[0] != '/') {
		*error_r = "mail location is not an absolute path";
		return -1;
	}
	if (strstr(out, "/../") != NULL || (olen >= 3 && memcmp(out + olen - 3, "/..", 3) == 0)) {
		*error_r = "mail location holds \"..\"";
		return -1;
	}
	return 0;
too_long:
	*error_r = "mail location too long";
	return -1;
}

long userdb_policy_expire(long global, bool has, long user)
{
	if (!has)
		return global;
	if (global == USERDB_EXPIRE_NEVER)
		return user;
	if (user == USERDB_EXPIRE_NEVER || user >= global)
		return user;
	return global;
}

long userdb_policy_login_delay(long global, bool has, long user)
{
	if (!has || user > global)
		return global;
	return user;
}
