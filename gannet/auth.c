/* Authentication methods of the fetch client. Secrets are wiped as soon as they are sent. */
#include "auth.h"

#include <openssl/evp.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <sysexits.h>

#include "log.h"
#include "sasl.h"
#include "session.h"

int auth_secret(const struct account *a, char *buf, size_t size, size_t *len_r, struct gerr *e)
{
	size_t len;
	char *nl;
	int rc;

	if (a->password != NULL) {
		len = strlen(a->password);
		if (len >= size)
			return gerr_set(e, EX_CONFIG, "password too long"), -1;
		memcpy(buf, a->password, len + 1);
		*len_r = len;
		return 0;
	}
	rc = run_command(a->password_command, -1, buf, size - 1, &len, NULL, a->command_timeout, e);
	if (rc != 0) {
		explicit_bzero(buf, size);
		if (rc > 0)
			gerr_set(e, EX_CONFIG, "password_command exited with status %d", rc);
		return -1;
	}
	buf[len] = '\0';
	/* The first line is the secret (pass(1) prints more lines after it). */
	nl = memchr(buf, '\n', len);
	if (nl != NULL) {
		explicit_bzero(nl, len - (size_t)(nl - buf));
		len = (size_t)(nl - buf);
	}
	if (len > 0 && buf[len - 1] == '\r')
		buf[--len] = '\0';
	if (len == 0 || memchr(buf, '\0', len) != NULL) {
		explicit_bzero(buf, size);
		return gerr_set(e, EX_CONFIG, "password_command printed no usable secret"), -1;
	}
	*len_r = len;
	return 0;
}

int auth_apop_digest(const char *ts, size_t ts_len, const char *secret, size_t secret_len,
                     char out[33])
{
	unsigned char md[EVP_MAX_MD_SIZE];
	unsigned int mdlen = 0;
	EVP_MD_CTX *ctx = EVP_MD_CTX_new();
	int ok;

	ok = ctx != NULL && EVP_DigestInit_ex(ctx, EVP_md5(), NULL) &&
	     EVP_DigestUpdate(ctx, ts, ts_len) && EVP_DigestUpdate(ctx, secret, secret_len) &&
	     EVP_DigestFinal_ex(ctx, md, &mdlen) && mdlen == 16;
	EVP_MD_CTX_free(ctx);
	if (!ok)
		return -1;
	hex_encode(md, 16, out);
	return 0;
}

static bool ascii_only(const char *s, size_t len)
{
	for (size_t i = 0; i < len; i++)
		if ((unsigned char)s[i] >= 0x80 || (unsigned char)s[i] < 0x20)
			return false;
	return true;
}

static int check_ok(struct sess *s, int r, const char *what)
{
	if (r == 0)
		return 0;
	if (r > 0)
		sess_fail_reply(s, what);
	return -1;
}

static int login_user(struct sess *s, const char *secret, size_t len)
{
	const struct account *a = s->acc;
	char line[POP3_CMD_MAX + 1];
	int r, n;

	if (check_ok(s, sess_cmd(s, "USER %s", a->user), "USER") < 0)
		return -1;
	n = snprintf(line, sizeof(line), "PASS %.*s\r\n", (int)len, secret);
	r = sess_send_raw(s, line, (size_t)n);
	explicit_bzero(line, sizeof(line));
	if (r < 0)
		return -1;
	r = sess_reply(s, false);
	return check_ok(s, r < 0 ? -1 : r == POP3C_OK ? 0 : 1, "login");
}

static int login_apop(struct sess *s, const char *secret, size_t len)
{
	const char *ts;
	size_t tl;
	char digest[33];

	if (!pop3c_apop_timestamp(s->greeting, s->greeting_len, &ts, &tl))
		return gerr_set(s->e, EX_UNAVAILABLE,
		                "auth = apop, but the server's greeting has no APOP timestamp"),
		       -1;
	if (auth_apop_digest(ts, tl, secret, len, digest) < 0)
		return gerr_set(s->e, EX_SOFTWARE, "MD5 is not available"), -1;
	return check_ok(s, sess_cmd(s, "APOP %s %s", s->acc->user, digest), "login");
}

/* Whether the server offers mechanism M (CAPA answered with a SASL line listing it). */
static bool offers(const struct pop3c_capa *c, enum auth_method m)
{
	switch (m) {
	case AUTH_SCRAM_SHA256_PLUS:
		return c->sasl_scram_sha256_plus;
	case AUTH_SCRAM_SHA256:
		return c->sasl_scram_sha256;
	case AUTH_SCRAM_SHA1_PLUS:
		return c->sasl_scram_sha1_plus;
	case AUTH_SCRAM_SHA1:
		return c->sasl_scram_sha1;
	case AUTH_PLAIN:
		return c->sasl_plain;
	case AUTH_LOGIN:
		return c->sasl_login;
	default:
		return false;
	}
}

/* auth = auto: the strongest method both sides have. With TLS: SCRAM with channel binding, then
 * SCRAM, then PLAIN, USER, LOGIN, APOP. Without TLS (only on a tls = none account) only methods
 * that never reveal the password: SCRAM, then APOP; AUTH_AUTO when there is none. */
static enum auth_method choose(struct sess *s, const char *secret, size_t len)
{
	static const enum auth_method scram[] = {AUTH_SCRAM_SHA256_PLUS, AUTH_SCRAM_SHA256,
	                                         AUTH_SCRAM_SHA1_PLUS, AUTH_SCRAM_SHA1};
	const struct pop3c_capa *c = &s->capa;
	const char *ts;
	size_t tl;
	unsigned char cb[GANNET_CB_MAX];
	size_t cbl = 0;
	bool apop = pop3c_apop_timestamp(s->greeting, s->greeting_len, &ts, &tl);
	bool binding = s->tls && sasl_channel_binding(s->conn.ssl, cb, &cbl) != SASL_CB_NONE;
	bool user_ok =
	    (c->user || !c->answered) && strlen(s->acc->user) + 7 <= POP3_CMD_MAX &&
	    len + 7 <= POP3_CMD_MAX &&
	    ((ascii_only(s->acc->user, strlen(s->acc->user)) && ascii_only(secret, len)) ||
	     c->utf8_user);

	explicit_bzero(cb, sizeof(cb));
	for (size_t i = 0; i < sizeof(scram) / sizeof(scram[0]); i++) {
		bool plus = scram[i] == AUTH_SCRAM_SHA256_PLUS || scram[i] == AUTH_SCRAM_SHA1_PLUS;
		if (offers(c, scram[i]) && (!plus || binding))
			return scram[i];
	}
	if (!s->tls)
		return apop ? AUTH_APOP : AUTH_AUTO;
	if (c->sasl_plain)
		return AUTH_PLAIN;
	if (user_ok)
		return AUTH_USER;
	if (c->sasl_login)
		return AUTH_LOGIN;
	if (apop)
		return AUTH_APOP;
	/* A long or non-ASCII name or password still has a chance with PLAIN (C-006, C-038). */
	return AUTH_PLAIN;
}

int auth_run(struct sess *s, const char *secret, size_t secret_len)
{
	static const char *const names[] = {
	    [AUTH_AUTO] = "auto",
	    [AUTH_USER] = "USER",
	    [AUTH_APOP] = "APOP",
	    [AUTH_PLAIN] = "PLAIN",
	    [AUTH_LOGIN] = "LOGIN",
	    [AUTH_SCRAM_SHA1] = "SCRAM-SHA-1",
	    [AUTH_SCRAM_SHA1_PLUS] = "SCRAM-SHA-1-PLUS",
	    [AUTH_SCRAM_SHA256] = "SCRAM-SHA-256",
	    [AUTH_SCRAM_SHA256_PLUS] = "SCRAM-SHA-256-PLUS",
	    [AUTH_OAUTHBEARER] = "OAUTHBEARER",
	    [AUTH_XOAUTH2] = "XOAUTH2",
	};
	enum auth_method m = s->acc->auth;

	if (m == AUTH_AUTO) {
		m = choose(s, secret, secret_len);
		if (m == AUTH_AUTO)
			return gerr_set(
			           s->e, EX_UNAVAILABLE,
			           "%s offers no login without TLS that keeps the password secret "
			           "(no SCRAM, no APOP); gannet will not send it in clear text. "
			           "Use TLS, or set auth = user (or plain) on this tls = none "
			           "account to allow it",
			           s->acc->host),
			       -1;
	}
	s->mech = names[m];
	log_debug("account=%s auth=%s", s->acc->name, s->mech);
	switch (m) {
	case AUTH_USER:
		if (strlen(s->acc->user) + 7 > POP3_CMD_MAX || secret_len + 7 > POP3_CMD_MAX)
			return gerr_set(
			           s->e, EX_CONFIG,
			           "user or password too long for USER/PASS; use auth = plain"),
			       -1;
		return login_user(s, secret, secret_len);
	case AUTH_APOP:
		return login_apop(s, secret, secret_len);
	case AUTH_PLAIN:
	case AUTH_LOGIN:
	case AUTH_SCRAM_SHA1:
	case AUTH_SCRAM_SHA1_PLUS:
	case AUTH_SCRAM_SHA256:
	case AUTH_SCRAM_SHA256_PLUS:
	case AUTH_OAUTHBEARER:
	case AUTH_XOAUTH2:
		return sasl_login(s, s->mech, secret, secret_len);
	default:
		return gerr_set(s->e, EX_SOFTWARE, "no login method"), -1;
	}
}
