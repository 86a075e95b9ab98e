/* Authentication methods of the fetch client. Secrets are wiped as soon as they are sent. */
#include "auth.h"

#include <openssl/evp.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <sysexits.h>

#include "log.h"
#include "session.h"

/* Base64 of a PLAIN message: 1 + USERNAME_MAX + 1 + GANNET_SECRET_MAX bytes, plus CRLF. */
#define B64_MAX (((USERNAME_MAX + GANNET_SECRET_MAX + 2 + 2) / 3) * 4 + 4)

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

/* Base64 of DATA into OUT followed by CRLF; returns the length with CRLF. */
static size_t b64_line(const char *data, size_t len, char *out)
{
	int n = EVP_EncodeBlock((unsigned char *)out, (const unsigned char *)data, (int)len);

	memcpy(out + n, "\r\n", 2);
	return (size_t)n + 2;
}

/* Read a "+ challenge" line; a challenge that is not clean base64 is cancelled with "*"
 * (RFC 5034 §4, C-019). 0 when a continuation came, 1 for -ERR/+OK, -1 on errors. */
static int challenge(struct sess *s)
{
	int st = sess_reply(s, true);

	if (st < 0)
		return -1;
	if (st != POP3C_CONT) {
		if (st == POP3C_ERR)
			sess_fail_reply(s, "login");
		else
			gerr_set(s->e, EX_PROTOCOL, "%s accepted a login before it was complete",
			         s->acc->host);
		return 1;
	}
	if (!pop3c_b64_valid(s->text, s->text_len)) {
		sess_send_raw(s, "*\r\n", 3);
		sess_reply(s, false);
		gerr_set(s->e, EX_PROTOCOL, "%s sent a malformed SASL challenge", s->acc->host);
		return -1;
	}
	return 0;
}

static int send_secret_line(struct sess *s, const char *data, size_t len)
{
	char b64[B64_MAX];
	size_t n = b64_line(data, len, b64);
	int r = sess_send_raw(s, b64, n);

	explicit_bzero(b64, sizeof(b64));
	return r;
}

static int final_reply(struct sess *s)
{
	int st = sess_reply(s, false);

	return check_ok(s, st < 0 ? -1 : st == POP3C_OK ? 0 : 1, "login");
}

static int login_plain(struct sess *s, const char *secret, size_t len)
{
	const struct account *a = s->acc;
	size_t ul = strlen(a->user), ml = ul + len + 2;
	char msg[USERNAME_MAX + GANNET_SECRET_MAX + 2], b64[B64_MAX];
	int r = -1;

	if (ml > sizeof(msg))
		return gerr_set(s->e, EX_CONFIG, "secret too long for AUTH PLAIN"), -1;
	msg[0] = '\0'; /* no authorization identity: act as ourselves (RFC 4616) */
	memcpy(msg + 1, a->user, ul);
	msg[1 + ul] = '\0';
	memcpy(msg + 2 + ul, secret, len);
	size_t n = b64_line(msg, ml, b64);
	explicit_bzero(msg, sizeof(msg));
	/* The initial response only when it fits in 255 octets (C-018) and SASL was advertised
	 * (C-017); otherwise wait for the empty challenge. */
	if (s->capa.sasl_any && n + 11 <= POP3_CMD_MAX) {
		char line[POP3_CMD_MAX + 1];
		memcpy(line, "AUTH PLAIN ", 11);
		memcpy(line + 11, b64, n);
		r = sess_send_raw(s, line, n + 11);
		explicit_bzero(line, sizeof(line));
		if (r == 0)
			r = final_reply(s);
	} else if (sess_send(s, "AUTH PLAIN") == 0 && (r = challenge(s)) == 0) {
		r = sess_send_raw(s, b64, n);
		if (r == 0)
			r = final_reply(s);
	}
	explicit_bzero(b64, sizeof(b64));
	return r == 0 ? 0 : -1;
}

static int login_login(struct sess *s, const char *secret, size_t len)
{
	const char *u = s->acc->user;

	if (sess_send(s, "AUTH LOGIN") < 0 || challenge(s) != 0)
		return -1;
	if (send_secret_line(s, u, strlen(u)) < 0 || challenge(s) != 0)
		return -1;
	if (send_secret_line(s, secret, len) < 0)
		return -1;
	return final_reply(s);
}

static enum auth_method choose(struct sess *s, const char *secret, size_t len)
{
	const struct pop3c_capa *c = &s->capa;
	const char *ts;
	size_t tl;
	bool apop = pop3c_apop_timestamp(s->greeting, s->greeting_len, &ts, &tl);
	bool user_ok =
	    (c->user || !c->answered) && strlen(s->acc->user) + 7 <= POP3_CMD_MAX &&
	    len + 7 <= POP3_CMD_MAX &&
	    ((ascii_only(s->acc->user, strlen(s->acc->user)) && ascii_only(secret, len)) ||
	     c->utf8_user);

	if (s->acc->auth != AUTH_AUTO)
		return s->acc->auth;
	/* Without TLS (only when the account says tls = none) never send the password itself when
	 * the server allows a digest. */
	if (!s->tls && apop)
		return AUTH_APOP;
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
	static const char *const names[] = {"auto", "USER", "APOP", "PLAIN", "LOGIN"};
	enum auth_method m = choose(s, secret, secret_len);

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
		return login_plain(s, secret, secret_len);
	case AUTH_LOGIN:
		return login_login(s, secret, secret_len);
	default:
		return gerr_set(s->e, EX_SOFTWARE, "no login method"), -1;
	}
}
