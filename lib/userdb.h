/* The passwd-file user database, Dovecot's format:
 *   user:{SCHEME}hash:uid:gid:gecos:home::extra
 * Fields after the hash may be missing ("user:{PLAIN}pw" is a whole line). "extra" is the rest of
 * the line, space-separated key=value fields: userdb_mail=maildir:/path or mail=... (Dovecot's
 * ":KEY=VALUE" options after the path are ignored), scram-sha-1=VERIFIER and
 * scram-sha-256=VERIFIER (SCRAM verifiers, see scram.h; at most once each), the RFC 2449 policies
 * expire=DAYS|never and login_delay=SECONDS (at most once each), the others are
 * ignored (as Dovecot ignores ours); nopassword is not supported. Lines starting with '#' and empty
 * lines are ignored. A line is at most USERDB_LINE_MAX bytes with its '\n'; a trailing '\r' is
 * dropped. */
#ifndef GANNET_USERDB_H
#define GANNET_USERDB_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

#include "gannet_limits.h"
#include "pwhash.h"
#include "scram.h"

/* expire=never. */
#define USERDB_EXPIRE_NEVER (-1L)
/* Largest expire= in days: 100 years; anything longer is "never" in all but name, and the bound
 * keeps DAYS * 86400 far from overflowing. Shared with the expire_days setting. */
#define USERDB_EXPIRE_DAYS_MAX 36500
/* Largest login_delay= in seconds: one week. RFC 2449 §6.5 delays are minutes to hours; a week
 * is far beyond any sane polling interval and bounds a typo. Shared with login_delay (conf). */
#define USERDB_LOGIN_DELAY_MAX 604800

struct userdb_entry {
	char user[USERNAME_MAX + 1];
	char pwhash[PWHASH_MAX + 1];
	uid_t uid; /* (uid_t)-1 when the field is empty */
	gid_t gid;
	char home[GANNET_PATH_MAX];
	char mail[GANNET_PATH_MAX]; /* from userdb_mail= / mail= in extra ("maildir:" stripped), or
	                               "" */
	char scram_sha1[SCRAM_FIELD_MAX + 1];   /* scram-sha-1= verifier text, or "" */
	char scram_sha256[SCRAM_FIELD_MAX + 1]; /* scram-sha-256= verifier text, or "" */
	/* RFC 2449 policies; a zeroed entry has none (the configuration's values apply) */
	bool has_expire;      /* expire= given */
	long expire_days;     /* ... in days, or USERDB_EXPIRE_NEVER */
	bool has_login_delay; /* login_delay= given */
	long login_delay;     /* ... in seconds */
};

/* Check a user name: 1..USERNAME_MAX bytes, "local" or "local@domain" (one '@', neither part
 * empty, the domain not starting with '.' or '-'), no '/', "..", '%', ':', space or control
 * character, not starting with '.' or '-'. Non-ASCII names must be well-formed UTF-8 that
 * SASLprep (stored string) leaves unchanged (RFC 6856 §2.2). 0 when acceptable, -1 with
 * *ERROR_R. */
int userdb_valid_name(const char *name, size_t len, const char **error_r);

/* Parse one passwd-file line (no newline). uid and gid are strict decimals below 2^32-1, empty
 * -> (uid_t)-1; home is empty or absolute; a scram-sha-1= or scram-sha-256= verifier must pass
 * scram_parse and appear at most once. 0, or -1 with *ERROR_R (the caller adds file:line): a
 * static string, or for a broken verifier a thread-local one naming the field, valid until the
 * next call in the same thread. */
int userdb_parse_line(const char *line, struct userdb_entry *e, const char **error_r);

/* Format E as a passwd-file line (with '\n') into OUT: "user:hash:uid:gid::home::userdb_mail=
 * maildir:mail scram-sha-1=V1 scram-sha-256=V2 expire=D login_delay=S" (empty and unset values
 * left out). 0, or -1 when it does
 * not fit in SIZE or USERDB_LINE_MAX, when a field holds a separator (':', '\n', a space in mail),
 * a verifier fails scram_parse, or the name is invalid. */
int userdb_format_line(const struct userdb_entry *e, char *out, size_t size);

/* Look USER up in the file PATH (read each time: the file is the source of truth, and editing it
 * with gannetctl takes effect at the next login). Names compare exactly; the first match wins.
 * Returns 1 found, 0 not found, -1 error: *ERROR_R says which "file:line: reason" is broken (any
 * line before the match) or why the file cannot be read; it points to a thread-local buffer that
 * the next userdb_lookup in the same thread overwrites. */
int userdb_lookup(const char *path, const char *user, struct userdb_entry *e, const char **error_r);

/* The EXPIRE days that apply to a user (RFC 2449 §6.7): GLOBAL (expire_days, or
 * USERDB_EXPIRE_NEVER) unless HAS (expire= given) supplies USER. When GLOBAL is a number it is
 * also the smallest value, because CAPA before login announces it as the most conservative one
 * (S-041): a smaller USER is raised to it. */
long userdb_policy_expire(long global, bool has, long user);

/* The LOGIN-DELAY seconds that apply to a user (RFC 2449 §6.5): GLOBAL (login_delay) unless HAS
 * supplies USER, capped at GLOBAL, which CAPA before login announces as the largest (S-041). */
long userdb_policy_login_delay(long global, bool has, long user);

/* Expand a mail location template: %u full user, %n local part, %d domain (empty when none),
 * %h home, %% a percent sign; a leading "~/" is the home (Dovecot). A leading "maildir:" is
 * dropped. 0, or -1 with a static *ERROR_R for an unknown %x, a missing home, or a result that
 * would be empty, not absolute, hold "/../" or end in "/..", or not fit in SIZE. */
int userdb_mail_path(const char *template, const struct userdb_entry *e, char *out, size_t size,
                     const char **error_r);

#endif
