/* One POP3 session of the fetch client: an explicit state enum with a single logging state
 * setter (curl's pop3_state), the AUTHORIZATION dance (greeting, CAPA, STLS, login) and the
 * command/reply primitives the TRANSACTION code (fetch.c) builds on. */
#ifndef GANNET_SESSION_H
#define GANNET_SESSION_H

#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "climits.h"
#include "config.h"
#include "conn.h"
#include "pop3client.h"
#include "util.h"

/* CAPA lines kept as text for reports; more is cut off. */
#define GANNET_CAPA_TEXT 2048

enum sess_state {
	SESS_START,
	SESS_CONNECT,
	SESS_TLS_HANDSHAKE,
	SESS_GREETING,
	SESS_CAPA,
	SESS_STLS,
	SESS_AUTH,
	SESS_TRANSACTION,
	SESS_STAT,
	SESS_UIDL,
	SESS_LIST,
	SESS_FINGERPRINT,
	SESS_TRANSFER,
	SESS_QUIT,
	SESS_DONE,
	SESS_FAILED,
};

struct sess {
	enum sess_state state;
	enum sess_state failed_in; /* the state we were in when the session failed */
	const struct account *acc;
	bool verify; /* false only for probe: report the certificate, do not refuse it */
	struct conn conn;
	SSL_CTX *ctx;
	bool tls; /* TLS is active */
	struct pop3c_capa capa;
	char capa_text[GANNET_CAPA_TEXT]; /* the CAPA lines, sanitized, for check and probe */
	char greeting[GANNET_REPLY_MAX];
	size_t greeting_len;
	char line[GANNET_REPLY_MAX]; /* the last reply line */
	size_t line_len;
	const char *text; /* its text after the status */
	size_t text_len;
	enum pop3c_rcode rcode;
	const char *mech; /* the login method used */
	struct gerr *e;
};

/* Name of a state for logs. */
const char *sess_state_name(enum sess_state st);

/* The one place a state changes; logs the transition at debug level. */
void sess_set_state(struct sess *s, enum sess_state st);

/* Connect to A's server and get to the point where a login can start: TLS (implicit or STLS),
 * greeting, capabilities (asked again after TLS). 0, or -1 with E set and the state FAILED. */
int sess_open(struct sess *s, const struct account *a, bool verify, struct gerr *e);

/* Log in with SECRET (see auth.c for the method choice); on success the state is TRANSACTION and
 * the capabilities are current (re-read when EXPIRE or LOGIN-DELAY said USER, C-025). */
int sess_login(struct sess *s, const char *secret, size_t secret_len);

/* Send one command line (CRLF added). Commands over 255 octets are refused (C-006). */
int sess_send(struct sess *s, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Send pre-formatted bytes as they are (a SASL response line, CRLF included). */
int sess_send_raw(struct sess *s, const char *buf, size_t len);

/* Read one reply line into s->line and classify it: POP3C_OK, POP3C_ERR, POP3C_CONT (only when
 * CONT_OK), or -1 with E set for anything malformed. */
int sess_reply(struct sess *s, bool cont_ok);

/* Send a command and read its status: 0 for +OK, 1 for -ERR, -1 on failure. */
int sess_cmd(struct sess *s, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Read a multi-line listing after +OK, one line at a time (unstuffed, no terminator) into CB,
 * at most MAX_LINES lines. CB returns 0 to go on or -1 to fail (it sets E). */
int sess_listing(struct sess *s, uint64_t max_lines,
                 int (*cb)(void *arg, const char *line, size_t len), void *arg);

/* Record an -ERR reply to WHAT as the error, with an exit code chosen from its response code. */
void sess_fail_reply(struct sess *s, const char *what);

/* QUIT and read its answer. 0 on +OK, 1 on -ERR (some deletions may have failed), -1. */
int sess_quit(struct sess *s);

/* Close the connection (no QUIT: used after errors so that nothing is deleted, C-035). */
void sess_close(struct sess *s);

#endif
