/* gannetctl internals shared by its files: parsed arguments, the user file, password input. */
#ifndef GANNETCTL_H
#define GANNETCTL_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/stat.h>

#define GANNETCTL_CONF_DEFAULT "/etc/gannet/gannetd.conf"

/* Exit codes: 1 for a failed command, 2 for a command line we do not understand. */
#define EXIT_FAIL  1
#define EXIT_USAGE 2

/* A user file beyond this size is refused rather than read into memory: a million users at
 * about 150 bytes a line is 150 MB. */
#define USERFILE_MAX ((size_t)1 << 30)

/* How long an edit waits for another gannetctl holding the user file's lock. */
#define USERFILE_LOCK_SECONDS 10

/* Values given on the command line: positional arguments under their grammar name ("NAME"),
 * options under their long name ("--scheme"; flags have the value ""). */
#define ARGS_MAX 16
struct cmd_args {
	const char *conf_path; /* -c, or NULL */
	const char *user_file; /* -f, or NULL */
	size_t n;
	struct {
		const char *key;
		const char *value;
	} kv[ARGS_MAX];
};

/* The value given for KEY, or NULL when it was not given. */
const char *args_get(const struct cmd_args *a, const char *key);

/* Print "usage: " and the grammar of the command being run to stderr, exit EXIT_USAGE. */
void usage_command(void) __attribute__((noreturn));

/* Command handlers: return the exit status. */
int cmd_user_add(const struct cmd_args *a);
int cmd_user_passwd(const struct cmd_args *a);
int cmd_user_del(const struct cmd_args *a);
int cmd_user_list(const struct cmd_args *a);
int cmd_pw(const struct cmd_args *a);
/* Remove USER's app passwords, TOTP and APOP records from the configured auth_dir (nothing when
 * no configuration names one). 0, or -1 after a warning. */
int security_forget_user(const struct cmd_args *a, const char *user);
int cmd_penalty_list(const struct cmd_args *a);
int cmd_penalty_clear(const struct cmd_args *a);
/* Account security (cmd_security.c): app passwords, TOTP, APOP secrets in conf auth_dir. */
int cmd_apppw_add(const struct cmd_args *a);
int cmd_apppw_list(const struct cmd_args *a);
int cmd_apppw_revoke(const struct cmd_args *a);
int cmd_totp_enable(const struct cmd_args *a);
int cmd_totp_disable(const struct cmd_args *a);
int cmd_totp_recovery(const struct cmd_args *a);
int cmd_totp_status(const struct cmd_args *a);
int cmd_apop_enable(const struct cmd_args *a);
int cmd_apop_disable(const struct cmd_args *a);
/* UIDLs a POP3 client would see (cmd_uidl.c), read-only, without the maildrop lock. */
int cmd_uidl_list(const struct cmd_args *a);
/* EXPIRE offline (cmd_expire.c): per maildrop under its lock, through the UPDATE journal. */
int cmd_expire(const struct cmd_args *a);

/* A user file read into memory, optionally locked against other gannetctl runs. */
struct userfile {
	char path[4096];
	int lock_fd; /* -1 when not locked */
	bool exists; /* false: the file is new, DATA is empty */
	struct stat st;
	char *data;
	size_t len;
};

/* The value of the first "KEY = VALUE" line of the config file CONF (the first word after '=').
 * 1 found, 0 absent, -1 after printing why the file cannot be read. */
int conf_value(const char *conf, const char *key, char *out, size_t size);

struct conf;

/* Parse the gannetd configuration PATH into C with gannetd's own code. 0, or -1 after a warning
 * (HINT is added when the file cannot be read, e.g. how to do without it). */
int conf_load(const char *path, struct conf *c, const char *hint);

/* The configuration named by -c before the command or --config after it (both is a usage error),
 * else the default; malloc'd, or NULL after a warning. *PATH_R gets the path when not NULL. */
struct conf *conf_from_args(const struct cmd_args *a, const char **path_r);

/* Find the user file: -f FILE, else the first "userdb = PATH" line of the config file (-c or
 * GANNETCTL_CONF_DEFAULT). 0, or -1 after printing why. */
int userfile_locate(const struct cmd_args *a, char *out, size_t size);

/* Read PATH (a missing file reads as empty) into UF; with LOCK, first take the exclusive lock on
 * PATH.lock, waiting up to USERFILE_LOCK_SECONDS. 0, or -1 after printing why. */
int userfile_load(struct userfile *uf, const char *path, bool lock);

/* Replace the file with DATA atomically: temporary file in the same directory with the old mode
 * and owner (0640 when new), fsync, rename, fsync of the directory. 0, or -1 after printing why. */
int userfile_replace(struct userfile *uf, const char *data, size_t len);

/* Free UF's memory and drop the lock. */
void userfile_close(struct userfile *uf);

/* Walk the lines of DATA[0..LEN) from *POS: sets *LINE and *LINE_LEN (without "\n"), advances
 * *POS past the '\n'. false at the end. */
bool userfile_next_line(const char *data, size_t len, size_t *pos, const char **line,
                        size_t *line_len);

/* The user name a line defines (the bytes before the first ':'), or false for a comment or an
 * empty line. */
bool userfile_line_user(const char *line, size_t line_len, const char **user, size_t *user_len);

/* Read a password: one line from stdin (FROM_STDIN; "\n" or "\r\n" stripped), else twice from
 * /dev/tty without echo. Refuses empty, NUL and more than PASSWORD_MAX bytes. BUF holds at least
 * PASSWORD_MAX + 2 bytes; the caller wipes it. 0, or -1 after printing why. */
int password_read(bool from_stdin, char *buf, size_t size, size_t *len_r);

/* Check PASSWORD with passwdqc's default policy and against user NAME, GECOS and HOME (may be
 * ""). 0 when acceptable, else -1 after printing "weak password: REASON; use --force ...". */
int password_quality(const char *password, const char *name, const char *gecos, const char *home);

#endif
