/* The account-security commands: app-password, totp and apop, editing the store in auth_dir. */
#include <err.h>
#include <errno.h>
#include <pwd.h>
#include <sys/stat.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "authstore.h"
#include "conf.h"
#include "gannetctl.h"
#include "gannet_limits.h"
#include "log.h"
#include "totp.h"
#include "userdb.h"

/* Where the store is and what to call it in authenticator apps. */
struct sec_ctx {
	char dir[GANNET_PATH_MAX];
	char issuer[128];
};

/* Names come from the command line; quote them safely in messages all the same. */
static const char *shown(const char *name)
{
	static char buf[USERNAME_MAX * 4 + 1];

	return log_sanitize(buf, sizeof(buf), name, strlen(name));
}

/* The store directory: --auth-dir, else the config's auth_dir. The config (-c, or the default
 * one unless both -f and --auth-dir are given) also names the issuer shown in authenticator apps
 * (its hostname; "Gannet" without a config) and auth_user, who must own what root creates. */
static int sec_setup(const struct cmd_args *a, struct sec_ctx *ctx)
{
	const char *dir = args_get(a, "--auth-dir");
	const char *path = a->conf_path != NULL ? a->conf_path : GANNETCTL_CONF_DEFAULT;
	struct conf *c;
	struct stat st;
	int ret = -1;

	snprintf(ctx->issuer, sizeof(ctx->issuer), "Gannet");
	if (dir != NULL && a->user_file != NULL) {
		if (dir[0] == '\0' ||
		    (size_t)snprintf(ctx->dir, sizeof(ctx->dir), "%s", dir) >= sizeof(ctx->dir)) {
			warnx("--auth-dir: empty or too long");
			return -1;
		}
		return 0;
	}
	c = calloc(1, sizeof(*c));
	if (c == NULL)
		err(EXIT_FAIL, "calloc");
	if (conf_load(path, c, " (give the directory with --auth-dir and the user file with -f)") <
	    0)
		goto out;
	if (dir == NULL)
		dir = c->auth_dir;
	if (dir[0] == '\0' ||
	    (size_t)snprintf(ctx->dir, sizeof(ctx->dir), "%s", dir) >= sizeof(ctx->dir)) {
		warnx("auth directory empty or too long");
		goto out;
	}
	if (c->hostname[0] != '\0')
		snprintf(ctx->issuer, sizeof(ctx->issuer), "%s", c->hostname);
	if (geteuid() == 0 && c->auth_user[0] != '\0') {
		struct passwd *pw;

		errno = 0;
		pw = getpwnam(c->auth_user);
		if (pw == NULL) {
			warnx("%s: auth_user %s: no such system user", path, shown(c->auth_user));
			goto out;
		}
		authstore_set_owner(pw->pw_uid, pw->pw_gid);
		/* The auth process renames files in the directory, so it must own it. */
		if (stat(ctx->dir, &st) == 0 && st.st_uid != pw->pw_uid)
			warnx("warning: %s is owned by uid %u, not by auth_user %s: the server "
			      "cannot record logins there",
			      ctx->dir, (unsigned)st.st_uid, shown(c->auth_user));
	}
	ret = 0;
out:
	free(c);
	return ret;
}

static int check_user_name(const char *user)
{
	const char *error;

	if (userdb_valid_name(user, strlen(user), &error) < 0) {
		warnx("invalid user name '%s': %s", shown(user), error);
		return -1;
	}
	return 0;
}

/* USER must be a valid name and, for commands that create something, be in the user file. */
static int user_must_exist(const struct cmd_args *a, const char *user)
{
	struct userfile uf = {.lock_fd = -1};
	char path[sizeof(uf.path)];
	const char *line, *u;
	size_t pos = 0, line_len, ulen, nlen = strlen(user);
	bool found = false;

	if (check_user_name(user) < 0)
		return -1;
	if (userfile_locate(a, path, sizeof(path)) < 0 || userfile_load(&uf, path, false) < 0) {
		userfile_close(&uf);
		return -1;
	}
	while (!found && userfile_next_line(uf.data, uf.len, &pos, &line, &line_len)) {
		if (userfile_line_user(line, line_len, &u, &ulen) && ulen == nlen &&
		    memcmp(u, user, nlen) == 0)
			found = true;
	}
	userfile_close(&uf);
	if (!found)
		warnx("user '%s' does not exist in %s", shown(user), path);
	return found ? 0 : -1;
}

static int flush_stdout(void)
{
	if (fflush(stdout) != 0 || ferror(stdout)) {
		warn("stdout");
		return EXIT_FAIL;
	}
	return 0;
}

/* Seconds since the epoch as ISO 8601 UTC, "-" for 0 (never). */
static const char *iso_time(int64_t t, char *buf, size_t size)
{
	time_t tt = (time_t)t;
	struct tm tm;

	if (t <= 0 || gmtime_r(&tt, &tm) == NULL ||
	    strftime(buf, size, "%Y-%m-%dT%H:%M:%SZ", &tm) == 0)
		snprintf(buf, size, "-");
	return buf;
}

/* --- app-password */

int cmd_apppw_add(const struct cmd_args *a)
{
	const char *user = args_get(a, "USER"), *name = args_get(a, "--name"), *error;
	char pw[APPPW_TEXT_LEN + 1];
	struct sec_ctx ctx;
	int ret = EXIT_FAIL;

	if (name == NULL) {
		warnx("--name NAME is required");
		usage_command();
	}
	if (apppw_valid_name(name, &error) < 0) {
		warnx("'%s': %s", shown(name), error);
		return EXIT_FAIL;
	}
	if (sec_setup(a, &ctx) < 0 || user_must_exist(a, user) < 0)
		return EXIT_FAIL;
	if (apppw_add(ctx.dir, user, name, time(NULL), pw, sizeof(pw), &error) < 0) {
		warnx("%s", error);
		return EXIT_FAIL;
	}
	printf("%s\n", pw);
	printf("This app password for %s (%s) is shown only once.\n", user, name);
	ret = flush_stdout();
	explicit_bzero(pw, sizeof(pw));
	return ret;
}

int cmd_apppw_list(const struct cmd_args *a)
{
	const char *user = args_get(a, "USER"), *error;
	struct apppw *list;
	struct sec_ctx ctx;
	char created[32], used[32];
	size_t n, wu = 4, wn = 4;

	if ((user != NULL && check_user_name(user) < 0) || sec_setup(a, &ctx) < 0)
		return EXIT_FAIL;
	if (apppw_list(ctx.dir, user, &list, &n, &error) < 0) {
		warnx("%s", error);
		return EXIT_FAIL;
	}
	for (size_t i = 0; i < n; i++) {
		if (strlen(list[i].user) > wu)
			wu = strlen(list[i].user);
		if (strlen(list[i].name) > wn)
			wn = strlen(list[i].name);
	}
	printf("%-*s  %-*s  %-20s  %-20s  %s\n", (int)wu, "USER", (int)wn, "NAME", "CREATED",
	       "LAST USED", "LAST IP");
	for (size_t i = 0; i < n; i++)
		printf("%-*s  %-*s  %-20s  %-20s  %s\n", (int)wu, list[i].user, (int)wn,
		       list[i].name, iso_time(list[i].created, created, sizeof(created)),
		       iso_time(list[i].last_used, used, sizeof(used)), list[i].last_ip);
	free(list);
	return flush_stdout();
}

int cmd_apppw_revoke(const struct cmd_args *a)
{
	const char *user = args_get(a, "USER"), *name = args_get(a, "NAME"), *error;
	struct sec_ctx ctx;
	int r;

	if (check_user_name(user) < 0 || sec_setup(a, &ctx) < 0)
		return EXIT_FAIL;
	if (apppw_valid_name(name, &error) < 0) {
		warnx("'%s': %s", shown(name), error);
		return EXIT_FAIL;
	}
	r = apppw_revoke(ctx.dir, user, name, &error);
	if (r < 0)
		warnx("%s", error);
	else if (r == 0)
		warnx("user '%s' has no app password named '%s'", user, name);
	return r == 1 ? 0 : EXIT_FAIL;
}

/* --- totp */

/* A fresh set of recovery codes: their hashes go into R, the codes themselves into CODES. */
static int new_recovery(struct totp_record *r, char codes[][TOTP_RECOVERY_TEXT_MAX])
{
	const char *error;

	for (size_t i = 0; i < TOTP_RECOVERY_CODES; i++) {
		if (totp_recovery_new(codes[i], TOTP_RECOVERY_TEXT_MAX) < 0) {
			warnx("cannot make a recovery code (RNG failure)");
			return -1;
		}
		if (totpstore_hash_recovery(codes[i], r->recovery[i], sizeof(r->recovery[i]),
		                            &error) < 0) {
			warnx("%s", error);
			return -1;
		}
	}
	r->n_recovery = TOTP_RECOVERY_CODES;
	return 0;
}

static void print_recovery(char codes[][TOTP_RECOVERY_TEXT_MAX])
{
	printf("Recovery codes (each works once; they are shown only now):\n");
	for (size_t i = 0; i < TOTP_RECOVERY_CODES; i++)
		printf("%s\n", codes[i]);
}

/* One line from stdin into BUF ("\n" or "\r\n" stripped): 0, or -1 after saying why. */
static int read_code(char *buf, size_t size)
{
	size_t n = 0;
	bool too_long = false;

	if (isatty(STDIN_FILENO)) {
		printf("Code shown by the app: ");
		fflush(stdout);
	}
	for (;;) {
		char c;
		ssize_t r = read(STDIN_FILENO, &c, 1);

		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0) {
			warn("reading the code from stdin");
			return -1;
		}
		if (r == 0 || c == '\n')
			break;
		if (n + 1 < size)
			buf[n++] = c;
		else
			too_long = true;
	}
	if (n > 0 && buf[n - 1] == '\r')
		n--;
	buf[n] = '\0';
	if (too_long || n == 0) {
		warnx(n == 0 ? "no code given" : "code too long");
		return -1;
	}
	return 0;
}

int cmd_totp_enable(const struct cmd_args *a)
{
	const char *user = args_get(a, "USER"), *given = args_get(a, "--code"), *error;
	char uri[TOTP_URI_MAX], b32[TOTP_BASE32_MAX], code[TOTP_TYPED_MAX + 1];
	char codes[TOTP_RECOVERY_CODES][TOTP_RECOVERY_TEXT_MAX];
	struct totp_record r;
	struct sec_ctx ctx;
	int64_t step;
	int found, ok, ret = EXIT_FAIL;

	if (sec_setup(a, &ctx) < 0 || user_must_exist(a, user) < 0)
		return EXIT_FAIL;
	found = totpstore_get(ctx.dir, user, &r, &error);
	if (found < 0) {
		warnx("%s", error);
		return EXIT_FAIL;
	}
	if (found && r.active) {
		warnx("TOTP is already active for '%s' (totp disable first)", user);
		goto out;
	}
	/* A pending record keeps its secret, so that an app that scanned it already keeps
	 * working when the administrator runs enable again after a mistyped code. */
	if (!found) {
		memset(&r, 0, sizeof(r));
		snprintf(r.user, sizeof(r.user), "%s", user);
		r.secret_len = TOTP_SECRET_LEN;
		if (totp_new_secret(r.secret, r.secret_len) < 0) {
			warnx("cannot make a TOTP secret (RNG failure)");
			goto out;
		}
		if (totpstore_put(ctx.dir, &r, &error) < 0) {
			warnx("%s", error);
			goto out;
		}
	}
	if (totp_uri(ctx.issuer, user, r.secret, r.secret_len, uri, sizeof(uri)) < 0 ||
	    totp_base32_encode(r.secret, r.secret_len, b32, sizeof(b32)) < 0) {
		warnx("cannot build the otpauth URI for '%s'", user);
		goto out;
	}
	printf("Add this account to the authenticator app: scan the QR code or open the URI.\n");
	printf("%s\n", uri);
	if (totp_qr_print(stdout, uri) < 0)
		warnx("cannot draw the QR code");
	printf("Secret for typing in by hand: %s\n", b32);
	fflush(stdout);
	if (given != NULL) {
		if ((size_t)snprintf(code, sizeof(code), "%s", given) >= sizeof(code)) {
			warnx("--code: too long");
			goto out;
		}
	} else if (read_code(code, sizeof(code)) < 0) {
		goto out;
	}
	ok = totp_verify(r.secret, r.secret_len, code, time(NULL), r.last_step, &step);
	if (ok < 0) {
		warnx("TOTP verification failed");
		goto out;
	}
	if (ok == 0) {
		warnx("wrong code: TOTP for '%s' stays pending (run totp enable again)", user);
		goto out;
	}
	if (new_recovery(&r, codes) < 0)
		goto out;
	r.active = true;
	r.last_step = step;
	if (totpstore_put(ctx.dir, &r, &error) < 0) {
		warnx("%s", error);
		goto out;
	}
	printf("TOTP is active for %s.\n", user);
	print_recovery(codes);
	ret = flush_stdout();
out:
	explicit_bzero(&r, sizeof(r));
	explicit_bzero(b32, sizeof(b32));
	explicit_bzero(uri, sizeof(uri));
	explicit_bzero(codes, sizeof(codes));
	explicit_bzero(code, sizeof(code));
	return ret;
}

int cmd_totp_disable(const struct cmd_args *a)
{
	const char *user = args_get(a, "USER"), *error;
	struct sec_ctx ctx;
	int r;

	if (check_user_name(user) < 0 || sec_setup(a, &ctx) < 0)
		return EXIT_FAIL;
	r = totpstore_del(ctx.dir, user, &error);
	if (r < 0)
		warnx("%s", error);
	else if (r == 0)
		warnx("user '%s' has no TOTP record", user);
	return r == 1 ? 0 : EXIT_FAIL;
}

int cmd_totp_recovery(const struct cmd_args *a)
{
	const char *user = args_get(a, "USER"), *error;
	char codes[TOTP_RECOVERY_CODES][TOTP_RECOVERY_TEXT_MAX];
	struct totp_record r;
	struct sec_ctx ctx;
	int found, ret = EXIT_FAIL;

	if (sec_setup(a, &ctx) < 0 || user_must_exist(a, user) < 0)
		return EXIT_FAIL;
	found = totpstore_get(ctx.dir, user, &r, &error);
	if (found < 0)
		warnx("%s", error);
	else if (!found || !r.active)
		warnx("TOTP is not active for '%s'", user);
	else if (new_recovery(&r, codes) == 0) {
		if (totpstore_put(ctx.dir, &r, &error) < 0) {
			warnx("%s", error);
		} else {
			print_recovery(codes);
			ret = flush_stdout();
		}
	}
	explicit_bzero(&r, sizeof(r));
	explicit_bzero(codes, sizeof(codes));
	return ret;
}

int cmd_totp_status(const struct cmd_args *a)
{
	const char *user = args_get(a, "USER"), *error;
	struct totp_record r;
	struct sec_ctx ctx;
	char when[32];
	int found;

	if (check_user_name(user) < 0 || sec_setup(a, &ctx) < 0)
		return EXIT_FAIL;
	found = totpstore_get(ctx.dir, user, &r, &error);
	if (found < 0) {
		warnx("%s", error);
		return EXIT_FAIL;
	}
	if (!found)
		printf("%s: TOTP off\n", user);
	else if (!r.active)
		printf("%s: TOTP pending (not yet confirmed with a code)\n", user);
	else
		printf("%s: TOTP active, %zu recovery codes left, last code accepted %s\n", user,
		       r.n_recovery, iso_time(r.last_step * TOTP_STEP, when, sizeof(when)));
	explicit_bzero(&r, sizeof(r));
	return flush_stdout();
}

/* --- apop */

int cmd_apop_enable(const struct cmd_args *a)
{
	const char *user = args_get(a, "USER"), *error;
	char secret[PASSWORD_MAX + 2];
	struct sec_ctx ctx;
	size_t len = 0;
	int ret = EXIT_FAIL;

	if (sec_setup(a, &ctx) < 0 || user_must_exist(a, user) < 0)
		return EXIT_FAIL;
	if (password_read(args_get(a, "--password-stdin") != NULL, secret, sizeof(secret), &len) ==
	    0) {
		if (apop_set(ctx.dir, user, secret, len, &error) < 0)
			warnx("%s", error);
		else
			ret = 0;
	}
	explicit_bzero(secret, sizeof(secret));
	return ret;
}

int cmd_apop_disable(const struct cmd_args *a)
{
	const char *user = args_get(a, "USER"), *error;
	struct sec_ctx ctx;
	int r;

	if (check_user_name(user) < 0 || sec_setup(a, &ctx) < 0)
		return EXIT_FAIL;
	r = apop_del(ctx.dir, user, &error);
	if (r < 0)
		warnx("%s", error);
	else if (r == 0)
		warnx("user '%s' has no APOP secret", user);
	return r == 1 ? 0 : EXIT_FAIL;
}

int security_forget_user(const struct cmd_args *a, const char *user)
{
	const char *path = a->conf_path != NULL ? a->conf_path : GANNETCTL_CONF_DEFAULT;
	struct sec_ctx ctx;
	const char *error = NULL;
	int ret = 0;

	/* Only with a configuration to find auth_dir: `-f FILE` alone names no store. */
	if (a->conf_path == NULL && access(path, R_OK) != 0)
		return 0;
	memset(&ctx, 0, sizeof(ctx));
	if (sec_setup(a, &ctx) < 0)
		return -1;
	if (apppw_revoke_user(ctx.dir, user, &error) < 0 ||
	    totpstore_del(ctx.dir, user, &error) < 0 || apop_del(ctx.dir, user, &error) < 0) {
		warnx("%s: %s", ctx.dir, error);
		ret = -1;
	}
	return ret;
}
