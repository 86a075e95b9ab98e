/* SASL for the fetch client. GNU SASL does the mechanisms it has (PLAIN, LOGIN, SCRAM with and
 * without channel binding); this file carries its messages over POP3 AUTH (RFC 5034) with strict
 * checks on every challenge. */
#include "sasl.h"

#include <gsasl.h>
#include <openssl/evp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sysexits.h>

#include "log.h"
#include "session.h"

/* Base64 of a message of GANNET_SASL_MSG_MAX bytes, with CRLF and a NUL. */
#define SASL_B64_MAX (((GANNET_SASL_MSG_MAX + 2) / 3) * 4 + 3)

/* What the gsasl callback needs: only the channel binding (user and password are set as
 * properties directly), and only for a -PLUS mechanism. */
struct sasl_cb_state {
	enum sasl_cb_type type;
	char b64[((GANNET_CB_MAX + 2) / 3) * 4 + 1];
	int asked; /* which binding gsasl asked for, for the error message */
};

enum sasl_cb_type sasl_channel_binding(SSL *ssl, unsigned char out[GANNET_CB_MAX], size_t *len_r)
{
	static const char label[] = "EXPORTER-Channel-Binding";
	size_t n;

	*len_r = 0;
	if (ssl == NULL)
		return SASL_CB_NONE;
	if (SSL_version(ssl) >= TLS1_3_VERSION) {
		if (SSL_export_keying_material(ssl, out, 32, label, sizeof(label) - 1, NULL, 0,
		                               0) != 1)
			return SASL_CB_NONE;
		*len_r = 32;
		return SASL_CB_TLS_EXPORTER;
	}
	/* RFC 5929 §3.1: the first Finished message of the connection: the client's in a full
	 * handshake, the server's in a resumed one. */
	n = SSL_session_reused(ssl) ? SSL_get_peer_finished(ssl, out, GANNET_CB_MAX)
	                            : SSL_get_finished(ssl, out, GANNET_CB_MAX);
	if (n == 0 || n > GANNET_CB_MAX)
		return SASL_CB_NONE;
	*len_r = n;
	return SASL_CB_TLS_UNIQUE;
}

static int sasl_cb(Gsasl *ctx, Gsasl_session *sctx, Gsasl_property prop)
{
	struct sasl_cb_state *st = gsasl_callback_hook_get(ctx);

	if (st == NULL)
		return GSASL_NO_CALLBACK;
	/* gsasl asks for the binding inside gsasl_client_start; give only the one that fits the
	 * TLS version, so it picks the right cbname. */
	if (prop == GSASL_CB_TLS_EXPORTER || prop == GSASL_CB_TLS_UNIQUE) {
		enum sasl_cb_type want =
		    prop == GSASL_CB_TLS_EXPORTER ? SASL_CB_TLS_EXPORTER : SASL_CB_TLS_UNIQUE;
		st->asked |= 1 << want;
		if (st->type == want)
			return gsasl_property_set(sctx, prop, st->b64);
	}
	return GSASL_NO_CALLBACK;
}

/* Append S[0..N) to OUT at *POS with RFC 5801 saslname escapes when ESC; false when full. */
static bool put(char *out, size_t size, size_t *pos, const char *s, size_t n, bool esc)
{
	for (size_t i = 0; i < n; i++) {
		const char *rep = NULL;
		char one[2] = {s[i], '\0'};

		if (esc && s[i] == ',')
			rep = "=2C";
		else if (esc && s[i] == '=')
			rep = "=3D";
		else
			rep = one;
		size_t rl = rep == one ? 1 : 3;
		if (size - *pos < rl + 1)
			return false;
		memcpy(out + *pos, rep, rl);
		*pos += rl;
	}
	return true;
}

size_t sasl_oauth_message(bool xoauth2, const char *user, const char *host, unsigned port,
                          const char *token, size_t toklen, char *out, size_t size)
{
	char ps[16];
	size_t pos = 0;
	bool ok;

	if (size == 0 || memchr(token, '\x01', toklen) != NULL || strchr(user, '\x01') != NULL ||
	    strchr(host, '\x01') != NULL || toklen == 0)
		return 0;
	snprintf(ps, sizeof(ps), "%u", port);
	/* GNU SASL 2.2 has no OAUTHBEARER or XOAUTH2 client (gsasl --client-mechanisms), and each
	 * is one fixed message, so we build them here: RFC 7628 §3.1 GS2 header "n,a=USER," then
	 * ^A-separated key=value pairs; XOAUTH2 is Google's "user=U^Aauth=Bearer T^A^A". */
	if (xoauth2)
		ok = put(out, size, &pos, "user=", 5, false) &&
		     put(out, size, &pos, user, strlen(user), false) &&
		     put(out, size, &pos,
		         "\x01"
		         "auth=Bearer ",
		         13, false) &&
		     put(out, size, &pos, token, toklen, false) &&
		     put(out, size, &pos, "\x01\x01", 2, false);
	else
		ok = put(out, size, &pos, "n,a=", 4, false) &&
		     put(out, size, &pos, user, strlen(user), true) &&
		     put(out, size, &pos,
		         ",\x01"
		         "host=",
		         7, false) &&
		     put(out, size, &pos, host, strlen(host), false) &&
		     put(out, size, &pos,
		         "\x01"
		         "port=",
		         6, false) &&
		     put(out, size, &pos, ps, strlen(ps), false) &&
		     put(out, size, &pos,
		         "\x01"
		         "auth=Bearer ",
		         13, false) &&
		     put(out, size, &pos, token, toklen, false) &&
		     put(out, size, &pos, "\x01\x01", 2, false);
	if (!ok) {
		explicit_bzero(out, size);
		return 0;
	}
	out[pos] = '\0';
	return pos;
}

/* One exchange: the mechanism's messages either from gsasl or (OAuth) from a fixed buffer. */
struct exch {
	struct sess *s;
	const char *mech;
	Gsasl_session *gs; /* NULL for the hand-built OAuth mechanisms */
	bool oauth, xoauth2;
	bool done; /* gsasl said GSASL_OK: the server proved itself (SCRAM) or nothing is left */
	char *b64; /* SASL_B64_MAX bytes for a response line */
};

/* Base64 of DATA[0..LEN) + CRLF into x->b64; its length, or 0 when too long. */
static size_t encode(struct exch *x, const char *data, size_t len)
{
	int n;

	if (len > GANNET_SASL_MSG_MAX)
		return 0;
	n = EVP_EncodeBlock((unsigned char *)x->b64, (const unsigned char *)data, (int)len);
	memcpy(x->b64 + n, "\r\n", 3);
	return (size_t)n + 2;
}

/* Cancel the exchange with "*" (RFC 5034 §4) and read the server's -ERR; E already set. */
static int cancel(struct exch *x)
{
	if (sess_send_raw(x->s, "*\r\n", 3) == 0)
		(void)sess_reply(x->s, false);
	return -1;
}

/* The client's next message for challenge IN[0..INLEN) into *OUT_R / *OUTLEN_R (gsasl_free it;
 * for OAuth a static reply). 0, or -1 with E set. */
static int next_message(struct exch *x, const char *in, size_t inlen, char **out_r,
                        size_t *outlen_r)
{
	int rc;

	*out_r = NULL;
	*outlen_r = 0;
	if (x->oauth) {
		/* A challenge after our message is the error JSON (RFC 7628 §3.2.2): answer with
		 * the dummy ^A (XOAUTH2: an empty line), then the server says -ERR. */
		char clean[160];
		log_sanitize(clean, sizeof(clean), in, inlen);
		gerr_set(x->s->e, EX_NOPERM, "login: %s refused the %s token: %s", x->s->acc->host,
		         x->mech, clean);
		*out_r = (char *)(x->xoauth2 ? "" : "\x01");
		*outlen_r = x->xoauth2 ? 0 : 1;
		return 0;
	}
	if (x->done) {
		gerr_set(x->s->e, EX_PROTOCOL,
		         "%s sent a SASL challenge after the %s exchange was "
		         "complete",
		         x->s->acc->host, x->mech);
		return -1;
	}
	/* gsasl_step wants a pointer even for an empty challenge ("+ " with no data). */
	rc = gsasl_step(x->gs, inlen > 0 ? in : "", inlen, out_r, outlen_r);
	if (rc == GSASL_OK)
		x->done = true;
	else if (rc != GSASL_NEEDS_MORE) {
		*out_r = NULL;
		if (rc == GSASL_AUTHENTICATION_ERROR)
			gerr_set(
			    x->s->e, EX_PROTOCOL,
			    "login: %s failed to prove that it knows your password (its %s "
			    "signature is wrong): refusing it; the connection may be intercepted",
			    x->s->acc->host, x->mech);
		else
			gerr_set(x->s->e, EX_PROTOCOL,
			         "login: %s sent a %s challenge gsasl refused: %s", x->s->acc->host,
			         x->mech, gsasl_strerror(rc));
		return -1;
	}
	return 0;
}

static void free_message(struct exch *x, char *out, size_t len)
{
	if (x->oauth || out == NULL)
		return;
	explicit_bzero(out, len);
	gsasl_free(out);
}

/* Send MSG as a response line; an empty message is an empty line. */
static int respond(struct exch *x, const char *msg, size_t len)
{
	size_t n = encode(x, msg, len);
	int r;

	if (n == 0)
		return gerr_set(x->s->e, EX_SOFTWARE, "SASL message too long"), -1;
	r = sess_send_raw(x->s, x->b64, n);
	explicit_bzero(x->b64, n);
	return r;
}

/* Read replies and answer challenges until +OK or -ERR. FIRST (not NULL) is the client-first
 * message to send at the first challenge (no initial response was sent). */
static int converse(struct exch *x, const char *first, size_t first_len)
{
	struct sess *s = x->s;
	char dec[GANNET_REPLY_MAX];

	for (int round = 0; round < GANNET_SASL_ROUNDS_MAX; round++) {
		int st = sess_reply(s, true), n;
		char *out;
		size_t outlen;

		if (st < 0)
			return -1;
		if (st == POP3C_ERR) {
			if (s->e->code == 0)
				sess_fail_reply(s, "login");
			return -1;
		}
		if (st == POP3C_OK) {
			if (x->oauth || x->done)
				return 0;
			/* Success before the mechanism finished: for SCRAM that skips the server's
			 * proof, so a fake server could accept anyone. */
			gerr_set(
			    s->e, EX_PROTOCOL,
			    "login: %s accepted the %s login before it proved that it knows your "
			    "password: refusing it",
			    s->acc->host, x->mech);
			return -1;
		}
		if (!pop3c_b64_valid(s->text, s->text_len)) {
			gerr_set(s->e, EX_PROTOCOL, "%s sent a malformed SASL challenge",
			         s->acc->host);
			return cancel(x);
		}
		n = EVP_DecodeBlock((unsigned char *)dec, (const unsigned char *)s->text,
		                    (int)s->text_len);
		if (n < 0) {
			gerr_set(s->e, EX_PROTOCOL, "%s sent a malformed SASL challenge",
			         s->acc->host);
			return cancel(x);
		}
		/* EVP_DecodeBlock counts the pad characters as zero bytes. */
		if (s->text_len >= 1 && s->text[s->text_len - 1] == '=')
			n--;
		if (s->text_len >= 2 && s->text[s->text_len - 2] == '=')
			n--;
		if (first != NULL) {
			/* The prompt for the message we could not send on the AUTH line. */
			int r = respond(x, first, first_len);
			first = NULL;
			explicit_bzero(dec, sizeof(dec));
			if (r < 0)
				return -1;
			continue;
		}
		if (next_message(x, dec, (size_t)n, &out, &outlen) < 0) {
			explicit_bzero(dec, sizeof(dec));
			return cancel(x);
		}
		explicit_bzero(dec, sizeof(dec));
		int r = respond(x, out, outlen);
		free_message(x, out, outlen);
		if (r < 0)
			return -1;
	}
	gerr_set(s->e, EX_PROTOCOL, "%s sent more than %d SASL challenges", s->acc->host,
	         GANNET_SASL_ROUNDS_MAX);
	return cancel(x);
}

/* Send "AUTH MECH" with MSG as initial response when it fits in 255 octets and the server
 * advertised SASL (C-017, C-018), else "AUTH MECH" alone and MSG at the first challenge. */
static int start(struct exch *x, const char *msg, size_t len, bool client_first)
{
	struct sess *s = x->s;
	char line[POP3_CMD_MAX + 1];
	size_t ml = strlen(x->mech), n;
	int r;

	if (!client_first) {
		if (sess_send(s, "AUTH %s", x->mech) < 0)
			return -1;
		return converse(x, NULL, 0);
	}
	n = encode(x, msg, len);
	if (n == 0)
		return gerr_set(s->e, EX_CONFIG, "secret too long for AUTH %s", x->mech), -1;
	if (s->capa.sasl_any && 5 + ml + 1 + n <= POP3_CMD_MAX) {
		int k = snprintf(line, sizeof(line), "AUTH %s %s", x->mech,
		                 n == 2 ? "=\r\n" : x->b64); /* "=": an empty initial response */
		explicit_bzero(x->b64, n);
		r = sess_send_raw(s, line, (size_t)k);
		explicit_bzero(line, sizeof(line));
		return r < 0 ? -1 : converse(x, NULL, 0);
	}
	explicit_bzero(x->b64, n);
	if (sess_send(s, "AUTH %s", x->mech) < 0)
		return -1;
	return converse(x, msg, len);
}

static int login_oauth(struct exch *x, const char *secret, size_t len)
{
	struct sess *s = x->s;
	char *msg = malloc(GANNET_SASL_MSG_MAX + 1);
	size_t n;
	int r;

	if (msg == NULL)
		return gerr_set(s->e, EX_OSERR, "out of memory"), -1;
	n = sasl_oauth_message(x->xoauth2, s->acc->user, s->acc->host, s->acc->port, secret, len,
	                       msg, GANNET_SASL_MSG_MAX + 1);
	if (n == 0) {
		free(msg);
		return gerr_set(s->e, EX_CONFIG,
		                "the token from password_command does not fit an %s message",
		                x->mech),
		       -1;
	}
	r = start(x, msg, n, true);
	explicit_bzero(msg, n);
	free(msg);
	return r;
}

static int login_gsasl(struct exch *x, Gsasl *ctx, const char *secret)
{
	struct sess *s = x->s;
	struct sasl_cb_state cbs = {0};
	bool plus = strlen(x->mech) > 5 && strcasecmp(x->mech + strlen(x->mech) - 5, "-PLUS") == 0;
	bool client_first = strcasecmp(x->mech, "LOGIN") != 0;
	char *out = NULL;
	size_t outlen = 0;
	int rc, r;

	if (plus) {
		unsigned char cb[GANNET_CB_MAX];
		size_t cbl;

		cbs.type = s->tls ? sasl_channel_binding(s->conn.ssl, cb, &cbl) : SASL_CB_NONE;
		if (cbs.type == SASL_CB_NONE)
			return gerr_set(
			           s->e, EX_CONFIG,
			           "%s needs TLS channel binding, and this connection has none",
			           x->mech),
			       -1;
		EVP_EncodeBlock((unsigned char *)cbs.b64, cb, (int)cbl);
		explicit_bzero(cb, sizeof(cb));
	}
	gsasl_callback_set(ctx, sasl_cb);
	/* The hook is read by the callback inside gsasl_client_start, so it has to be set on the
	 * context: a session hook does not exist before the session does. */
	gsasl_callback_hook_set(ctx, &cbs);
	rc = gsasl_client_start(ctx, x->mech, &x->gs);
	if (rc != GSASL_OK) {
		if (plus && (rc == GSASL_NO_CB_TLS_EXPORTER || rc == GSASL_NO_CB_TLS_UNIQUE))
			return gerr_set(s->e, EX_SOFTWARE,
			                "gsasl wanted a channel binding gannet cannot "
			                "give: %s",
			                gsasl_strerror(rc)),
			       -1;
		return gerr_set(s->e, EX_SOFTWARE, "gsasl cannot start %s: %s", x->mech,
		                gsasl_strerror(rc)),
		       -1;
	}
	if (gsasl_property_set(x->gs, GSASL_AUTHID, s->acc->user) != GSASL_OK ||
	    gsasl_property_set(x->gs, GSASL_PASSWORD, secret) != GSASL_OK)
		return gerr_set(s->e, EX_OSERR, "out of memory"), -1;
	if (!client_first)
		return start(x, NULL, 0, false);
	/* The client-first message (PLAIN's only one, SCRAM's client-first) needs no challenge. */
	rc = gsasl_step(x->gs, "", 0, &out, &outlen);
	if (rc != GSASL_OK && rc != GSASL_NEEDS_MORE) {
		if (out != NULL)
			gsasl_free(out);
		return gerr_set(s->e, rc == GSASL_SASLPREP_ERROR ? EX_CONFIG : EX_SOFTWARE,
		                "%s: %s", x->mech, gsasl_strerror(rc)),
		       -1;
	}
	x->done = rc == GSASL_OK;
	r = start(x, out, outlen, true);
	free_message(x, out, outlen);
	return r;
}

int sasl_login(struct sess *s, const char *mech, const char *secret, size_t secret_len)
{
	struct exch x = {.s = s, .mech = mech};
	Gsasl *ctx = NULL;
	int r;

	x.b64 = malloc(SASL_B64_MAX);
	if (x.b64 == NULL)
		return gerr_set(s->e, EX_OSERR, "out of memory"), -1;
	if (strcasecmp(mech, "OAUTHBEARER") == 0 || strcasecmp(mech, "XOAUTH2") == 0) {
		x.oauth = true;
		x.xoauth2 = strcasecmp(mech, "XOAUTH2") == 0;
		r = login_oauth(&x, secret, secret_len);
	} else if (memchr(secret, '\0', secret_len) != NULL) {
		gerr_set(s->e, EX_CONFIG, "the password holds a NUL byte");
		r = -1;
	} else if (gsasl_init(&ctx) != GSASL_OK) {
		gerr_set(s->e, EX_SOFTWARE, "cannot start GNU SASL");
		r = -1;
	} else {
		r = login_gsasl(&x, ctx, secret);
	}
	if (x.gs != NULL)
		gsasl_finish(x.gs); /* gsasl frees (and does not promise to wipe) its copy */
	if (ctx != NULL)
		gsasl_done(ctx);
	explicit_bzero(x.b64, SASL_B64_MAX);
	free(x.b64);
	if (r == 0)
		log_debug("account=%s sasl=%s ok", s->acc->name, mech);
	return r;
}
