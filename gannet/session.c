/* POP3 session set-up for the fetch client: connect, TLS, greeting, CAPA, STLS and the command
 * and reply primitives. Every state change goes through sess_set_state(). */
#include "session.h"

#include <stdio.h>
#include <string.h>
#include <sysexits.h>

#include "auth.h"
#include "log.h"
#include "tlsclient.h"

static const char *const state_names[] = {
    [SESS_START] = "start",
    [SESS_CONNECT] = "connect",
    [SESS_TLS_HANDSHAKE] = "tls-handshake",
    [SESS_GREETING] = "greeting",
    [SESS_CAPA] = "capa",
    [SESS_STLS] = "stls",
    [SESS_AUTH] = "auth",
    [SESS_TRANSACTION] = "transaction",
    [SESS_STAT] = "stat",
    [SESS_UIDL] = "uidl",
    [SESS_LIST] = "list",
    [SESS_FINGERPRINT] = "fingerprint",
    [SESS_TRANSFER] = "transfer",
    [SESS_QUIT] = "quit",
    [SESS_DONE] = "done",
    [SESS_FAILED] = "failed",
};

const char *sess_state_name(enum sess_state st)
{
	return st <= SESS_FAILED ? state_names[st] : "?";
}

void sess_set_state(struct sess *s, enum sess_state st)
{
	if (s->state != st)
		log_debug("account=%s state=%s->%s", s->acc->name, sess_state_name(s->state),
		          sess_state_name(st));
	if (st == SESS_FAILED && s->state != SESS_FAILED)
		s->failed_in = s->state;
	s->state = st;
}

int sess_send_raw(struct sess *s, const char *buf, size_t len)
{
	return conn_write(&s->conn, buf, len, s->e);
}

int sess_send(struct sess *s, const char *fmt, ...)
{
	char buf[POP3_CMD_MAX + 1];
	va_list ap;
	int n;

	va_start(ap, fmt);
	n = vsnprintf(buf, sizeof(buf), fmt, ap);
	va_end(ap);
	/* RFC 2449 §4: 255 octets with CRLF (C-006). */
	if (n < 0 || (size_t)n + 2 > POP3_CMD_MAX) {
		gerr_set(s->e, EX_SOFTWARE, "command longer than 255 octets");
		return -1;
	}
	memcpy(buf + n, "\r\n", 2);
	return conn_write(&s->conn, buf, (size_t)n + 2, s->e);
}

int sess_reply(struct sess *s, bool cont_ok)
{
	char clean[128];
	int st;

	conn_expect(&s->conn, GANNET_REPLY_MAX);
	if (conn_read_line(&s->conn, s->line, sizeof(s->line), &s->line_len, "reply", s->e) < 0)
		return -1;
	st = (int)pop3c_status(s->line, s->line_len, &s->text, &s->text_len);
	s->rcode = st == POP3C_ERR ? pop3c_resp_code(s->text, s->text_len) : POP3C_RC_NONE;
	if (st == POP3C_BAD || (st == POP3C_CONT && !cont_ok)) {
		gerr_set(s->e, EX_PROTOCOL, "%s sent a malformed reply: \"%s\"", s->acc->host,
		         log_sanitize(clean, sizeof(clean), s->line, s->line_len));
		return -1;
	}
	return st;
}

int sess_cmd(struct sess *s, const char *fmt, ...)
{
	char buf[POP3_CMD_MAX + 1];
	va_list ap;
	int n, st;

	va_start(ap, fmt);
	n = vsnprintf(buf, sizeof(buf), fmt, ap);
	va_end(ap);
	if (n < 0 || (size_t)n >= sizeof(buf)) {
		gerr_set(s->e, EX_SOFTWARE, "command longer than 255 octets");
		return -1;
	}
	if (sess_send(s, "%s", buf) < 0 || (st = sess_reply(s, false)) < 0)
		return -1;
	return st == POP3C_OK ? 0 : 1;
}

int sess_listing(struct sess *s, uint64_t max_lines,
                 int (*cb)(void *arg, const char *line, size_t len), void *arg)
{
	uint64_t n = 0;

	/* A listing line is short (a UIDL line is under 100 octets); allow that rate. */
	conn_expect(&s->conn, (max_lines + 1) * 100);
	for (;;) {
		size_t len;
		const char *p = s->line;

		if (conn_read_line(&s->conn, s->line, sizeof(s->line), &len, "listing", s->e) < 0)
			return -1;
		if (len == 1 && s->line[0] == '.')
			return 0;
		if (++n > max_lines) {
			gerr_set(s->e, EX_PROTOCOL, "%s sent a listing longer than %llu lines",
			         s->acc->host, (unsigned long long)max_lines);
			return -1;
		}
		if (len > 0 && p[0] == '.') {
			p++;
			len--;
		}
		if (cb(arg, p, len) < 0)
			return -1;
	}
}

void sess_fail_reply(struct sess *s, const char *what)
{
	char clean[200];
	int code;

	log_sanitize(clean, sizeof(clean), s->text, s->text_len);
	switch (s->rcode) {
	case POP3C_RC_IN_USE:
		code = EX_TEMPFAIL;
		break;
	case POP3C_RC_LOGIN_DELAY:
	case POP3C_RC_SYS_TEMP:
		code = EX_TEMPFAIL;
		break;
	case POP3C_RC_SYS_PERM:
		code = EX_UNAVAILABLE;
		break;
	default:
		code = s->state == SESS_AUTH ? EX_NOPERM : EX_PROTOCOL;
	}
	gerr_set(s->e, code, "%s: %s said \"%s\"%s", what, s->acc->host, clean,
	         s->rcode == POP3C_RC_IN_USE        ? " (the mailbox is in use; try again later)"
	         : s->rcode == POP3C_RC_LOGIN_DELAY ? " (polled too soon; wait and try again)"
	         : s->rcode == POP3C_RC_SYS_PERM    ? " (a server problem: ask its administrator)"
	                                            : "");
}

static int capa_cb(void *arg, const char *line, size_t len)
{
	struct sess *s = arg;
	size_t used = strlen(s->capa_text), cl;
	char clean[GANNET_REPLY_MAX * 4];

	pop3c_capa_line(&s->capa, line, len);
	log_sanitize(clean, sizeof(clean), line, len);
	cl = strlen(clean);
	if (used + cl + 4 < sizeof(s->capa_text)) {
		if (used > 0) {
			memcpy(s->capa_text + used, " | ", 3);
			used += 3;
		}
		memcpy(s->capa_text + used, clean, cl + 1);
	}
	return 0;
}

/* Ask for the capabilities; a server without CAPA is fine (C-032). */
static int read_capa(struct sess *s)
{
	int r;

	sess_set_state(s, SESS_CAPA);
	pop3c_capa_reset(&s->capa);
	s->capa_text[0] = '\0';
	r = sess_cmd(s, "CAPA");
	if (r != 0)
		return r < 0 ? -1 : 0;
	s->capa.answered = true;
	return sess_listing(s, 256, capa_cb, s);
}

static int handshake(struct sess *s)
{
	SSL *ssl;

	sess_set_state(s, SESS_TLS_HANDSHAKE);
	if (s->ctx == NULL && (s->ctx = tlsc_ctx(s->acc->ca_file, s->e)) == NULL)
		return -1;
	ssl = tlsc_new(s->ctx, s->conn.fd, s->acc->host, s->verify, s->e);
	if (ssl == NULL ||
	    conn_start_tls(&s->conn, ssl,
	                   s->acc->timeout < GANNET_HANDSHAKE_TIMEOUT ? s->acc->timeout
	                                                              : GANNET_HANDSHAKE_TIMEOUT,
	                   s->e) < 0)
		return -1;
	if (s->verify && tlsc_check_peer(ssl, s->acc->have_pin ? s->acc->pin : NULL, s->e) < 0)
		return -1;
	s->tls = true;
	log_debug("account=%s tls=%s cipher=%s", s->acc->name, SSL_get_version(ssl),
	          SSL_get_cipher_name(ssl));
	return 0;
}

static int greeting(struct sess *s)
{
	int st;

	sess_set_state(s, SESS_GREETING);
	st = sess_reply(s, false);
	if (st < 0)
		return -1;
	if (st != POP3C_OK) {
		sess_fail_reply(s, "greeting");
		return -1;
	}
	memcpy(s->greeting, s->line, s->line_len + 1);
	s->greeting_len = s->line_len;
	return 0;
}

static int stls(struct sess *s)
{
	int r;

	/* Require STLS rather than guess: a man in the middle strips it from CAPA (C-014). A
	 * server without CAPA may still know STLS, so we try it then. */
	if (s->capa.answered && !s->capa.stls) {
		gerr_set(s->e, EX_PROTOCOL,
		         "%s does not offer STLS, and tls = starttls requires it (the connection "
		         "may be tampered with, or the server needs tls = tls on port 995)",
		         s->acc->host);
		return -1;
	}
	sess_set_state(s, SESS_STLS);
	r = sess_cmd(s, "STLS");
	if (r != 0) {
		if (r > 0)
			sess_fail_reply(s, "STLS");
		return -1;
	}
	if (handshake(s) < 0)
		return -1;
	/* RFC 2595 §4: forget what we learnt in plaintext and ask again (C-011). */
	return read_capa(s);
}

int sess_open(struct sess *s, const struct account *a, bool verify, struct gerr *e)
{
	memset(s, 0, sizeof(*s));
	s->acc = a;
	s->verify = verify;
	s->e = e;
	s->state = SESS_START;
	conn_init(&s->conn, a->host, a->timeout);
	sess_set_state(s, SESS_CONNECT);
	if (conn_connect(&s->conn, a->port, e) < 0)
		goto fail;
	if (a->tls == TLS_MODE_IMPLICIT && handshake(s) < 0)
		goto fail;
	if (greeting(s) < 0 || read_capa(s) < 0)
		goto fail;
	if (a->tls == TLS_MODE_STARTTLS && stls(s) < 0)
		goto fail;
	return 0;
fail:
	sess_set_state(s, SESS_FAILED);
	return -1;
}

/* RFC 6856: a server that offers UTF8 refuses messages with UTF-8 headers ([UTF8]) until the
 * client enables UTF-8 mode (C-039). We store messages as they are, so we enable it whenever it
 * is offered, after STLS (C-016) and before authenticating (the command is AUTHORIZATION-only).
 * A -ERR is no reason to stop: we go on as a client without it would. */
static int utf8_mode(struct sess *s)
{
	if (!s->capa.utf8)
		return 0;
	return sess_cmd(s, "UTF8") < 0 ? -1 : 0;
}

int sess_login(struct sess *s, const char *secret, size_t secret_len)
{
	sess_set_state(s, SESS_AUTH);
	if (utf8_mode(s) < 0 || auth_run(s, secret, secret_len) < 0) {
		sess_set_state(s, SESS_FAILED);
		return -1;
	}
	sess_set_state(s, SESS_TRANSACTION);
	/* RFC 2449 §5: values marked USER may change after login (C-025). */
	if ((s->capa.expire_user || s->capa.login_delay_user) && read_capa(s) < 0) {
		sess_set_state(s, SESS_FAILED);
		return -1;
	}
	sess_set_state(s, SESS_TRANSACTION);
	return 0;
}

int sess_quit(struct sess *s)
{
	int r;

	sess_set_state(s, SESS_QUIT);
	r = sess_cmd(s, "QUIT");
	sess_close(s);
	sess_set_state(s, r < 0 ? SESS_FAILED : SESS_DONE);
	return r;
}

void sess_close(struct sess *s)
{
	conn_close(&s->conn);
	if (s->ctx != NULL) {
		SSL_CTX_free(s->ctx);
		s->ctx = NULL;
	}
}
