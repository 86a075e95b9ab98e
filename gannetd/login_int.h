/* The login process's connection, shared by login.c (connections, TLS, the auth and master
 * channels, handover and relay) and login_cmd.c (the AUTHORIZATION commands). Internal to the
 * login process. */
#ifndef GANNETD_LOGIN_INT_H
#define GANNETD_LOGIN_INT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <event2/bufferevent.h>

#include "authcheck.h"
#include "child.h"
#include "gannet_limits.h"
#include "ipc.h"
#include "lang.h"
#include "lineio.h"
#include "pop3.h"
#include "userdb.h"
#include "wthru.h"

enum lstate {
	LS_HANDSHAKE,  /* implicit TLS or STLS handshake in progress */
	LS_AUTH,       /* AUTHORIZATION: reading commands */
	LS_WAIT_AUTH,  /* PASS, APOP or a SASL step sent to the auth process */
	LS_SASL,       /* AUTH: a challenge went out, reading the client's response line */
	LS_SASL_FINAL, /* AUTH succeeded with data for the client: waiting for its empty line */
	LS_STLS,       /* +OK to STLS queued; handshake starts when it is flushed */
	LS_CLOSING,    /* flushing the last reply */
	LS_RELAY,      /* logged in over TLS: relaying to the mail process */
};

/* Longest input line before login: an AUTH line or SASL response (commands are checked against
 * POP3_CMD_MAX after reading). */
#define LOGIN_LINE_MAX POP3_AUTH_LINE_MAX

/* What only AUTHORIZATION needs. It lives apart from struct lconn and is freed when a TLS
 * session moves to the relay: an idle logged-in TLS connection then holds the OpenSSL object,
 * two bufferevents and the small struct lconn, about 0.6 KiB less than with these inline. */
struct lauth {
	bool have_user;
	char user[USERNAME_MAX + 1];
	uint32_t req_id;
	bool in_sasl;  /* an AUTH exchange is open in the auth process (req_id) */
	char mech[32]; /* its mechanism, or "PASS" / "APOP" */
	unsigned char token[AUTH_TOKEN_LEN];  /* LS_SASL_FINAL: the token to hand over after the
	                                         client's empty line */
	char apop_ts[APOP_TIMESTAMP_MAX + 1]; /* the greeting's timestamp, "" without APOP */
	char cb_type[16];                     /* channel binding of this TLS connection */
	unsigned char cb[64];
	size_t cb_len;
	char tlsdesc[96];
};

struct lconn {
	uint64_t conn_id;
	char session[40];
	char ip[64];
	int fd;
	struct bufferevent *bev;
	struct bufferevent *pair; /* relay towards the mail process */
	struct wthru wt;          /* writes on a plaintext client socket (wthru.h) */
	struct wthru pair_wt;     /* writes towards the mail process */
	bool tls;
	bool stls; /* TLS was started with STLS */
	bool trusted;
	bool utf8;      /* RFC 6856 UTF-8 mode (the UTF8 command) */
	enum lang lang; /* LANG: the language of reply texts */
	enum lstate state;
	struct line_reader lr;
	unsigned bad;
	struct lauth *a; /* until the relay starts, then NULL */
	struct lconn *prev, *next;
};

/* Shared state of the process (login.c): its configuration, the channel to the auth process
 * (NULL while it is being replaced), the next request id, and one message buffer. */
extern struct child_env *login_env;
extern struct ipc_queue *login_auth_q;
extern uint32_t login_next_req;
extern struct ipc_msg login_msgbuf;

/* login.c */
void login_set_state(struct lconn *c, enum lstate st);
/* Close once the queued output is out; never frees C before returning. */
void login_close_after_flush(struct lconn *c);
/* Hand the authenticated session to the master with TOKEN (frees C when plaintext). */
void login_handover(struct lconn *c, const unsigned char *token, size_t toklen);

/* login_cmd.c */
/* Read and run the client's lines while the state takes input (may free C on handover). */
void login_process_input(struct lconn *c);
/* Tell the auth process to forget C's open SASL exchange, if any. */
void login_sasl_abort(struct lconn *c);
/* Send "+ BASE64" of DATA (RFC 5034 §4). */
void login_send_challenge(struct lconn *c, const void *data, size_t len);
/* USER/PASS and PLAIN-like mechanisms are allowed on C (TLS, trusted network, or the
 * configuration says so). */
bool login_plaintext_allowed(const struct lconn *c);

#endif
