/* The login process: TLS, greeting and the AUTHORIZATION state. It never sees the user database
 * or a mailbox: it asks the auth process to check credentials, then hands the session to the
 * master (the socket itself when plaintext; one end of a socketpair that it keeps relaying to the
 * TLS connection otherwise). Chrooted and unprivileged when started as root. */
#include <errno.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <unistd.h>

#include <event2/bufferevent_ssl.h>
#include <event2/event.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/rand.h>
#include <openssl/ssl.h>

#include "authcheck.h"
#include "child.h"
#include "client.h"
#include "ipc.h"
#include "lang.h"
#include "log.h"
#include "mechs.h"
#include "netaddr.h"
#include "pop3client.h"
#include "tls.h"
#include "userdb.h"
#include "utf8.h"
#include "wthru.h"

/* Bytes queued towards one side of a TLS relay before we stop reading the other side. */
#define RELAY_HIGH_WATER (256 * 1024)

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
	struct lconn *prev, *next;
};

static struct child_env *env;
static struct event_base *base;
static SSL_CTX *ssl_ctx;
static struct ipc_queue *master_q;
static int auth_fd = -1;
static struct event *auth_ev;
static struct ipc_queue *auth_q;
static struct lconn *conns;
static size_t n_conns;
static bool draining;
static uint32_t next_req = 1;
static struct ipc_msg msgbuf;

static void conn_read_cb(struct bufferevent *bev, void *arg);
static void conn_write_cb(struct bufferevent *bev, void *arg);
static void conn_event_cb(struct bufferevent *bev, short what, void *arg);
static void process_input(struct lconn *c);

static void set_state(struct lconn *c, enum lstate st)
{
	static const char *const names[] = {"handshake",  "authorization", "wait_auth", "sasl",
	                                    "sasl_final", "stls",          "closing",   "relay"};
	log_debug("session=%s ip=%s state=%s->%s", c->session, c->ip, names[c->state], names[st]);
	c->state = st;
}

static void exit_check_cb(evutil_socket_t fd, short what, void *arg);

/* Exit when draining and idle, but only once our last messages to the master have left. */
static void maybe_exit(void)
{
	if (!draining || n_conns != 0)
		return;
	if (ipc_queue_pending(master_q) == 0)
		exit(0);
	event_base_once(base, -1, EV_TIMEOUT, exit_check_cb, NULL, &(struct timeval){0, 10000});
}

static void exit_check_cb(evutil_socket_t fd, short what, void *arg)
{
	maybe_exit();
}

static void sasl_abort(struct lconn *c);

static void conn_free(struct lconn *c, const char *reason, bool report)
{
	sasl_abort(c);
	log_info("session=%s ip=%s event=disconnect state=%s reason=%s", c->session, c->ip,
	         c->state == LS_RELAY ? "relay" : "authorization", reason);
	wthru_stop(&c->wt);
	wthru_stop(&c->pair_wt);
	if (c->bev != NULL)
		bufferevent_free(c->bev);
	if (c->pair != NULL)
		bufferevent_free(c->pair);
	if (c->fd >= 0)
		close(c->fd);
	if (report) {
		ipc_msg_init(&msgbuf, MSG_CONN_DONE);
		ipc_put_u64(&msgbuf, c->conn_id);
		ipc_queue_send(master_q, &msgbuf, -1);
	}
	if (c->prev != NULL)
		c->prev->next = c->next;
	else
		conns = c->next;
	if (c->next != NULL)
		c->next->prev = c->prev;
	explicit_bzero(c, sizeof(*c));
	free(c);
	n_conns--;
	maybe_exit();
}

static void deferred_free_cb(evutil_socket_t fd, short what, void *arg)
{
	struct lconn *c = arg;
	conn_free(c, "closed", c->pair == NULL);
}

/* The session ends once what is queued has gone out. Never frees C before returning: callers
 * up the stack (the command loop) may still look at it. */
static void close_after_flush(struct lconn *c)
{
	set_state(c, LS_CLOSING);
	bufferevent_disable(c->bev, EV_READ);
	if (evbuffer_get_length(bufferevent_get_output(c->bev)) == 0) {
		bufferevent_setcb(c->bev, NULL, NULL, NULL, NULL);
		bufferevent_disable(c->bev, EV_READ | EV_WRITE);
		if (event_base_once(base, -1, EV_TIMEOUT, deferred_free_cb, c,
		                    &(struct timeval){0, 0}) < 0)
			fatal("event_base_once");
	}
}

static bool plaintext_allowed(const struct lconn *c)
{
	return c->tls || c->trusted || !env->conf.disable_plaintext_auth;
}

/* RFC 1939 §7: a msg-id shaped timestamp, different on every greeting (S-016, S-017): random
 * bytes and a per-process counter, so parallel login processes never repeat one. */
static void make_apop_timestamp(struct lconn *c)
{
	static uint64_t counter;
	unsigned char rnd[8];
	char hex[17];

	if (!env->conf.apop || RAND_bytes(rnd, sizeof(rnd)) != 1) {
		c->apop_ts[0] = '\0';
		return;
	}
	for (size_t i = 0; i < sizeof(rnd); i++)
		snprintf(hex + 2 * i, 3, "%02x", rnd[i]);
	snprintf(c->apop_ts, sizeof(c->apop_ts), "<%s.%llu@%s>", hex, (unsigned long long)++counter,
	         env->conf.hostname);
}

static void greet(struct lconn *c)
{
	set_state(c, LS_AUTH);
	make_apop_timestamp(c);
	if (c->apop_ts[0] != '\0')
		client_reply(c->bev, "+OK %s Gannet POP3 server ready %s", env->conf.hostname,
		             c->apop_ts);
	else
		client_reply(c->bev, "+OK %s Gannet POP3 server ready", env->conf.hostname);
}

/* Channel binding data of a finished TLS handshake (RFC 5929, RFC 9266): tls-exporter on TLS
 * 1.3; tls-unique on TLS 1.2, and only when the session was not resumed without the extended
 * master secret (RFC 7677 §4, S-118). */
static void compute_binding(struct lconn *c, SSL *ssl)
{
	static const char label[] = "EXPORTER-Channel-Binding";

	c->cb_len = 0;
	c->cb_type[0] = '\0';
	if (SSL_version(ssl) >= TLS1_3_VERSION) {
		if (SSL_export_keying_material(ssl, c->cb, 32, label, sizeof(label) - 1, NULL, 0,
		                               0) == 1) {
			c->cb_len = 32;
			snprintf(c->cb_type, sizeof(c->cb_type), "tls-exporter");
		}
		return;
	}
	if (SSL_session_reused(ssl) && SSL_get_extms_support(ssl) != 1)
		return;
	/* tls-unique is the first Finished message: the client's in a full handshake. */
	c->cb_len = SSL_session_reused(ssl) ? SSL_get_finished(ssl, c->cb, sizeof(c->cb))
	                                    : SSL_get_peer_finished(ssl, c->cb, sizeof(c->cb));
	if (c->cb_len == 0 || c->cb_len > sizeof(c->cb))
		c->cb_len = 0;
	else
		snprintf(c->cb_type, sizeof(c->cb_type), "tls-unique");
}

/* Strict base64 (RFC 5034 §4, S-098): the alphabet only, padded, no spaces; "=" alone is an
 * empty response. 0 with *LEN_R, or -1. */
static int b64_decode(const char *in, size_t len, unsigned char *out, size_t size, size_t *len_r)
{
	int n;

	if (len == 1 && in[0] == '=') {
		*len_r = 0;
		return 0;
	}
	if (len == 0) {
		*len_r = 0;
		return 0;
	}
	if (!pop3c_b64_valid(in, len) || len / 4 * 3 > size || len > INT_MAX)
		return -1;
	n = EVP_DecodeBlock(out, (const unsigned char *)in, (int)len);
	if (n < 0)
		return -1;
	*len_r = (size_t)n - (in[len - 1] == '=') - (in[len - 2] == '=');
	return 0;
}

/* Send "+ BASE64" (RFC 5034 §4: exactly "+ " for an empty challenge, S-093). */
static void send_challenge(struct lconn *c, const void *data, size_t len)
{
	struct evbuffer *out = bufferevent_get_output(c->bev);
	size_t cap = 4 * ((len + 2) / 3) + 1;
	unsigned char *b64 = malloc(cap);

	if (b64 == NULL) {
		evbuffer_add(out, "+ \r\n", 4);
		return;
	}
	EVP_EncodeBlock(b64, data, (int)len);
	evbuffer_add(out, "+ ", 2);
	evbuffer_add(out, b64, strlen((char *)b64));
	evbuffer_add(out, "\r\n", 2);
	free(b64);
}

static int cmd_capa(void *arg, struct pop3_cmd *cmd)
{
	struct lconn *c = arg;
	static const char head[] = "TOP\r\nUIDL\r\nRESP-CODES\r\nAUTH-RESP-CODE\r\nPIPELINING\r\n";
	static const char tail[] = "IMPLEMENTATION Gannet\r\n.\r\n";

	if (cmd->argc != 0)
		return lang_reply(c->bev, c->lang, TXT_NO_ARGS, "CAPA"), CMD_ERR;
	lang_reply(c->bev, c->lang, TXT_CAPA_HEAD);
	bufferevent_write(c->bev, head, sizeof(head) - 1);
	if (plaintext_allowed(c))
		bufferevent_write(c->bev, "USER\r\n", 6);
	{
		char line[POP3_RESP_MAX];
		size_t n = 0;

		for (const struct mech_info *m = mech_table; m->name != NULL; m++) {
			if (!mech_offered(&env->conf, m, plaintext_allowed(c), c->tls,
			                  c->cb_len > 0) ||
			    n + strlen(m->name) + 8 > sizeof(line))
				continue;
			n += (size_t)snprintf(line + n, sizeof(line) - n, "%s%s",
			                      n == 0 ? "SASL " : " ", m->name);
		}
		if (n > 0) {
			bufferevent_write(c->bev, line, n);
			bufferevent_write(c->bev, "\r\n", 2);
		}
	}
	/* STLS is refused after UTF8 (S-089), so it is not offered then. */
	if (!c->tls && env->conf.have_tls && !c->utf8)
		bufferevent_write(c->bev, "STLS\r\n", 6);
	/* RFC 2449 §6.5/§6.7, S-041: before login, the most conservative value with USER (a user's
	 * own value may differ: userdb_policy_*). Under expire_days = never the smallest per-user
	 * value is unknown here, so EXPIRE is left to TRANSACTION (EXPIRE NEVER for most users). */
	if (env->conf.expire_days >= 0)
		evbuffer_add_printf(bufferevent_get_output(c->bev), "EXPIRE %ld USER\r\n",
		                    env->conf.expire_days);
	if (env->conf.login_delay > 0)
		evbuffer_add_printf(bufferevent_get_output(c->bev), "LOGIN-DELAY %ld USER\r\n",
		                    env->conf.login_delay);
	bufferevent_write(c->bev, LANG_CAPA_LINES, sizeof(LANG_CAPA_LINES) - 1);
	bufferevent_write(c->bev, tail, sizeof(tail) - 1);
	return CMD_OK;
}

/* RFC 6856 §2.2, S-132 (UTF8 USER is always offered): a name holding non-ASCII bytes must be
 * UTF-8, is SASLprep'd as a query string and refused when that fails; the prepared form is what
 * the user file holds (userdb_valid_name insists on it). 0 with C->user set, or -1. */
static int take_user(struct lconn *c, const char *name, size_t len)
{
	const char *error;

	if (utf8_is_ascii(name, len)) {
		if (len > USERNAME_MAX)
			return -1;
		memcpy(c->user, name, len);
		c->user[len] = '\0';
	} else if (utf8_saslprep(name, len, false, c->user, sizeof(c->user), &error) < 0) {
		return -1;
	}
	return userdb_valid_name(c->user, strlen(c->user), &error);
}

/* The same for a PASS argument with non-ASCII bytes (S-132). The password itself goes to auth
 * as sent: the hashes in the user file are of the bytes the user typed. */
static bool password_ok(const char *pw, size_t len)
{
	char prepped[PASSWORD_MAX + 1];
	const char *error;
	bool ok;

	if (utf8_is_ascii(pw, len))
		return true;
	ok = utf8_saslprep(pw, len, false, prepped, sizeof(prepped), &error) == 0;
	explicit_bzero(prepped, sizeof(prepped));
	return ok;
}

/* UTF8 (RFC 6856 §2.1, S-128): AUTHORIZATION only (the mail process refuses it), no arguments.
 * The mode lasts for the session: the handover carries it to the mail process. */
static int cmd_utf8(void *arg, struct pop3_cmd *cmd)
{
	struct lconn *c = arg;

	if (cmd->argc != 0)
		return lang_reply(c->bev, c->lang, TXT_NO_ARGS, "UTF8"), CMD_ERR;
	c->utf8 = true;
	lang_reply(c->bev, c->lang, TXT_UTF8_OK);
	return CMD_OK;
}

static int cmd_lang(void *arg, struct pop3_cmd *cmd)
{
	struct lconn *c = arg;

	return lang_cmd(c->bev, cmd, c->utf8, &c->lang);
}

static int cmd_user(void *arg, struct pop3_cmd *cmd)
{
	struct lconn *c = arg;

	c->have_user = false;
	if (!plaintext_allowed(c))
		return lang_reply(c->bev, c->lang, TXT_PLAINTEXT_OFF_STLS), CMD_ERR;
	if (cmd->argc != 1 || cmd->bad_spacing)
		return lang_reply(c->bev, c->lang, TXT_USAGE, "USER name"), CMD_ERR;
	if (take_user(c, cmd->argv[0], cmd->argl[0]) < 0)
		return lang_reply(c->bev, c->lang, TXT_BAD_USER), CMD_ERR;
	c->have_user = true;
	/* The same answer for every valid name, so USER does not reveal who exists (S-025). */
	client_reply(c->bev, "+OK");
	return CMD_OK;
}

static int cmd_pass(void *arg, struct pop3_cmd *cmd)
{
	struct lconn *c = arg;
	bool had_user = c->have_user;

	/* A PASS always consumes the pending USER, right or wrong (S-027). */
	c->have_user = false;
	if (!had_user)
		return lang_reply(c->bev, c->lang, TXT_USER_FIRST), CMD_ERR;
	if (!plaintext_allowed(c))
		return lang_reply(c->bev, c->lang, TXT_PLAINTEXT_OFF), CMD_ERR;
	if (cmd->rest == NULL || cmd->rest_len == 0)
		return lang_reply(c->bev, c->lang, TXT_USAGE, "PASS password"), CMD_ERR;
	if (!password_ok(cmd->rest, cmd->rest_len))
		return lang_reply(c->bev, c->lang, TXT_BAD_PASSWORD), CMD_ERR;
	if (auth_q == NULL) {
		lang_reply(c->bev, c->lang, TXT_AUTH_UNAVAILABLE);
		return CMD_OK;
	}
	c->req_id = next_req++;
	snprintf(c->mech, sizeof(c->mech), "PASS");
	ipc_msg_init(&msgbuf, MSG_AUTH_REQ);
	ipc_put_u32(&msgbuf, c->req_id);
	ipc_put_u32(&msgbuf, AUTH_METHOD_PASS);
	ipc_put_str(&msgbuf, c->user);
	ipc_put_data(&msgbuf, cmd->rest, cmd->rest_len);
	ipc_put_str(&msgbuf, "");
	ipc_put_str(&msgbuf, c->ip);
	ipc_put_str(&msgbuf, c->session);
	ipc_queue_send(auth_q, &msgbuf, -1);
	explicit_bzero(msgbuf.data, msgbuf.len);
	explicit_bzero((void *)cmd->rest, cmd->rest_len);
	set_state(c, LS_WAIT_AUTH);
	return CMD_SUSPEND;
}

/* APOP name digest (RFC 1939 §7), only when the greeting carried a timestamp. */
static int cmd_apop(void *arg, struct pop3_cmd *cmd)
{
	struct lconn *c = arg;

	c->have_user = false;
	if (c->apop_ts[0] == '\0')
		return lang_reply(c->bev, c->lang, TXT_APOP_OFF), CMD_ERR;
	if (cmd->argc != 2 || cmd->bad_spacing || cmd->argl[1] != 32)
		return lang_reply(c->bev, c->lang, TXT_USAGE, "APOP name digest"), CMD_ERR;
	/* The APOP name is SASLprep'd like USER's (RFC 6856 §2.2). */
	if (take_user(c, cmd->argv[0], cmd->argl[0]) < 0)
		return lang_reply(c->bev, c->lang, TXT_AUTH_FAILED), CMD_ERR;
	if (auth_q == NULL) {
		lang_reply(c->bev, c->lang, TXT_AUTH_UNAVAILABLE);
		return CMD_OK;
	}
	c->req_id = next_req++;
	snprintf(c->mech, sizeof(c->mech), "APOP");
	ipc_msg_init(&msgbuf, MSG_AUTH_REQ);
	ipc_put_u32(&msgbuf, c->req_id);
	ipc_put_u32(&msgbuf, AUTH_METHOD_APOP);
	ipc_put_str(&msgbuf, c->user);
	ipc_put_data(&msgbuf, cmd->argv[1], cmd->argl[1]);
	ipc_put_str(&msgbuf, c->apop_ts);
	ipc_put_str(&msgbuf, c->ip);
	ipc_put_str(&msgbuf, c->session);
	ipc_queue_send(auth_q, &msgbuf, -1);
	set_state(c, LS_WAIT_AUTH);
	return CMD_SUSPEND;
}

/* Tell the auth process to forget an open exchange (client "*", a bad line, or a disconnect). */
static void sasl_abort(struct lconn *c)
{
	if (!c->in_sasl)
		return;
	c->in_sasl = false;
	if (auth_q == NULL)
		return;
	ipc_msg_init(&msgbuf, MSG_SASL_ABORT);
	ipc_put_u32(&msgbuf, c->req_id);
	ipc_queue_send(auth_q, &msgbuf, -1);
}

/* AUTH (RFC 5034). Bare AUTH lists the mechanisms offered here, one a line. */
static int cmd_auth(void *arg, struct pop3_cmd *cmd)
{
	struct lconn *c = arg;
	const struct mech_info *m;
	unsigned char *initial;
	size_t initial_len = 0;
	char mech[32];

	c->have_user = false;
	if (cmd->argc == 0) {
		struct evbuffer *out = bufferevent_get_output(c->bev);

		lang_reply(c->bev, c->lang, TXT_AUTH_LIST);
		for (m = mech_table; m->name != NULL; m++)
			if (mech_offered(&env->conf, m, plaintext_allowed(c), c->tls,
			                 c->cb_len > 0))
				evbuffer_add_printf(out, "%s\r\n", m->name);
		evbuffer_add(out, ".\r\n", 3);
		return CMD_OK;
	}
	if (cmd->argc > 2 || cmd->bad_spacing || cmd->argl[0] >= sizeof(mech))
		return lang_reply(c->bev, c->lang, TXT_USAGE, "AUTH mechanism [initial-response]"),
		       CMD_ERR;
	memcpy(mech, cmd->argv[0], cmd->argl[0]);
	mech[cmd->argl[0]] = '\0';
	m = mech_find(mech); /* case-insensitive (S-092) */
	if (m == NULL || !mech_configured(&env->conf, m))
		return lang_reply(c->bev, c->lang, TXT_MECH_UNSUPPORTED), CMD_ERR;
	if (!mech_offered(&env->conf, m, plaintext_allowed(c), c->tls, c->cb_len > 0)) {
		if (m->needs == MECH_NEEDS_PLAINTEXT)
			lang_reply(c->bev, c->lang, TXT_PLAINTEXT_OFF_STLS);
		else
			lang_reply(c->bev, c->lang, TXT_MECH_NEEDS_TLS, m->name);
		return CMD_ERR;
	}
	if (auth_q == NULL) {
		lang_reply(c->bev, c->lang, TXT_AUTH_UNAVAILABLE);
		return CMD_OK;
	}
	if ((initial = malloc(AUTH_INPUT_MAX)) == NULL) {
		lang_reply(c->bev, c->lang, TXT_NO_MEMORY);
		return CMD_OK;
	}
	if (cmd->argc == 2 &&
	    b64_decode(cmd->argv[1], cmd->argl[1], initial, AUTH_INPUT_MAX, &initial_len) < 0) {
		free(initial);
		return lang_reply(c->bev, c->lang, TXT_B64_INITIAL), CMD_ERR;
	}
	c->req_id = next_req++;
	c->in_sasl = true;
	snprintf(c->mech, sizeof(c->mech), "%s", m->name);
	ipc_msg_init(&msgbuf, MSG_SASL_START);
	ipc_put_u32(&msgbuf, c->req_id);
	ipc_put_str(&msgbuf, m->name);
	ipc_put_u32(&msgbuf, cmd->argc == 2);
	ipc_put_data(&msgbuf, initial, initial_len);
	ipc_put_str(&msgbuf, c->ip);
	ipc_put_str(&msgbuf, c->session);
	ipc_put_str(&msgbuf, c->cb_type);
	ipc_put_data(&msgbuf, c->cb, c->cb_len);
	ipc_queue_send(auth_q, &msgbuf, -1);
	explicit_bzero(msgbuf.data, msgbuf.len);
	explicit_bzero(initial, initial_len);
	free(initial);
	set_state(c, LS_WAIT_AUTH);
	return CMD_SUSPEND;
}

/* One client line during an AUTH exchange: "*" cancels (S-096), anything else is base64. */
static void sasl_line(struct lconn *c, char *line, size_t len)
{
	unsigned char *data;
	size_t dlen = 0;

	if (len == 1 && line[0] == '*') {
		sasl_abort(c);
		set_state(c, LS_AUTH);
		lang_reply(c->bev, c->lang, TXT_AUTH_CANCELLED);
		return;
	}
	if ((data = malloc(AUTH_INPUT_MAX)) == NULL ||
	    b64_decode(line, len, data, AUTH_INPUT_MAX, &dlen) < 0) {
		free(data);
		sasl_abort(c);
		set_state(c, LS_AUTH);
		lang_reply(c->bev, c->lang, TXT_B64_RESPONSE);
		if (client_bad_command(c->bev, c->lang, &c->bad, env->conf.max_bad_commands,
		                       c->session, c->ip))
			close_after_flush(c);
		return;
	}
	ipc_msg_init(&msgbuf, MSG_SASL_STEP);
	ipc_put_u32(&msgbuf, c->req_id);
	ipc_put_data(&msgbuf, data, dlen);
	ipc_queue_send(auth_q, &msgbuf, -1);
	explicit_bzero(msgbuf.data, msgbuf.len);
	explicit_bzero(data, dlen);
	free(data);
	set_state(c, LS_WAIT_AUTH);
}

static int cmd_quit(void *arg, struct pop3_cmd *cmd)
{
	struct lconn *c = arg;

	if (cmd->argc != 0)
		return lang_reply(c->bev, c->lang, TXT_NO_ARGS, "QUIT"), CMD_ERR;
	lang_reply(c->bev, c->lang, TXT_BYE);
	return CMD_CLOSE;
}

static void start_tls(struct lconn *c);

static int cmd_stls(void *arg, struct pop3_cmd *cmd)
{
	struct lconn *c = arg;

	if (c->tls)
		return lang_reply(c->bev, c->lang, TXT_TLS_ACTIVE), CMD_ERR;
	/* RFC 6856 §2.1, S-089: a client must not start TLS after UTF8. */
	if (c->utf8)
		return lang_reply(c->bev, c->lang, TXT_STLS_AFTER_UTF8), CMD_ERR;
	if (!env->conf.have_tls)
		return lang_reply(c->bev, c->lang, TXT_TLS_OFF), CMD_ERR;
	if (cmd->argc != 0)
		return lang_reply(c->bev, c->lang, TXT_NO_ARGS, "STLS"), CMD_ERR;
	/* Anything pipelined behind STLS would be read as if it came through TLS: the STARTTLS
	 * command injection attack (CVE-2011-0411 in SMTP). Refuse the whole connection. */
	if (evbuffer_get_length(bufferevent_get_input(c->bev)) > 0) {
		log_warnx("session=%s ip=%s event=stls_injection action=close", c->session, c->ip);
		return CMD_CLOSE;
	}
	c->have_user = false; /* a name sent in the clear is forgotten (S-082) */
	lang_reply(c->bev, c->lang, TXT_STLS_GO);
	set_state(c, LS_STLS);
	bufferevent_disable(c->bev, EV_READ);
	return CMD_SUSPEND;
}

static const struct cmd_def auth_cmds[] = {
    {"CAPA", cmd_capa, 0},   {"USER", cmd_user, 0},   {"PASS", cmd_pass, 0},
    {"APOP", cmd_apop, 0},   {"AUTH", cmd_auth, 0},   {"QUIT", cmd_quit, 0},
    {"STLS", cmd_stls, 0},   {"UTF8", cmd_utf8, 0},   {"LANG", cmd_lang, 0},
    {"STAT", NULL, CMD_BAD}, {"LIST", NULL, CMD_BAD}, {"RETR", NULL, CMD_BAD},
    {"DELE", NULL, CMD_BAD}, {"NOOP", NULL, CMD_BAD}, {"RSET", NULL, CMD_BAD},
    {"TOP", NULL, CMD_BAD},  {"UIDL", NULL, CMD_BAD}, {NULL, NULL, 0},
};

static void handle_line(struct lconn *c, char *line, size_t len)
{
	struct pop3_cmd cmd;
	const struct cmd_def *def;
	int r;

	/* Commands are at most 255 octets (RFC 2449 §4), except AUTH: an OAuth bearer token does
	 * not fit, and XOAUTH2 clients send it as the initial response anyway. */
	if (len + 2 > POP3_CMD_MAX && !(len > 5 && strncasecmp(line, "AUTH ", 5) == 0)) {
		explicit_bzero(line, len);
		client_reply_dropped(c->bev, c->lang, LINE_TOO_LONG);
		if (client_bad_command(c->bev, c->lang, &c->bad, env->conf.max_bad_commands,
		                       c->session, c->ip))
			close_after_flush(c);
		return;
	}
	if (pop3_parse_cmd(line, len, &cmd) < 0 ||
	    (def = cmd_lookup(auth_cmds, cmd.keyword)) == NULL) {
		lang_reply(c->bev, c->lang, TXT_UNKNOWN_COMMAND);
		r = CMD_ERR;
	} else if (def->flags & CMD_BAD) {
		lang_reply(c->bev, c->lang, TXT_NOT_BEFORE_LOGIN);
		r = CMD_ERR;
	} else {
		r = def->handler(c, &cmd);
	}
	explicit_bzero(line, len);
	if (r == CMD_ERR && client_bad_command(c->bev, c->lang, &c->bad, env->conf.max_bad_commands,
	                                       c->session, c->ip))
		r = CMD_CLOSE;
	if (r == CMD_CLOSE)
		close_after_flush(c);
}

static void handover(struct lconn *c, const unsigned char *token, size_t toklen);

/* The client's line after the server-final data of a successful AUTH: empty means go on. */
static void sasl_final_line(struct lconn *c, size_t len)
{
	unsigned char token[AUTH_TOKEN_LEN];

	if (len != 0) {
		explicit_bzero(c->token, sizeof(c->token));
		set_state(c, LS_AUTH);
		lang_reply(c->bev, c->lang, TXT_AUTH_CANCELLED);
		return;
	}
	memcpy(token, c->token, sizeof(token));
	explicit_bzero(c->token, sizeof(c->token));
	handover(c, token, sizeof(token));
	explicit_bzero(token, sizeof(token));
}

static void process_input(struct lconn *c)
{
	char *line = malloc(LOGIN_LINE_MAX + 1);
	size_t len;

	if (line == NULL) {
		close_after_flush(c);
		return;
	}
	while (c->state == LS_AUTH || c->state == LS_SASL || c->state == LS_SASL_FINAL) {
		enum lstate st = c->state;
		struct line_reader *lr = &c->lr;
		enum line_result r = client_read_line(bufferevent_get_input(c->bev), lr, line,
		                                      LOGIN_LINE_MAX + 1, &len);
		if (r == LINE_NEED_MORE)
			break;
		if (r == LINE_OK) {
			if (st == LS_AUTH)
				handle_line(c, line, len);
			else if (st == LS_SASL)
				sasl_line(c, line, len);
			else if (len == 0) {
				free(line);
				sasl_final_line(c, len); /* hands over: C may be gone */
				return;
			} else {
				sasl_final_line(c, len);
			}
			explicit_bzero(line, len);
			continue;
		}
		if (st != LS_AUTH) {
			/* An over-long or broken response ends the exchange (S-099). */
			sasl_abort(c);
			explicit_bzero(c->token, sizeof(c->token));
			set_state(c, LS_AUTH);
			lang_reply(c->bev, c->lang, TXT_AUTH_MALFORMED);
		} else {
			client_reply_dropped(c->bev, c->lang, r);
		}
		if (client_bad_command(c->bev, c->lang, &c->bad, env->conf.max_bad_commands,
		                       c->session, c->ip)) {
			close_after_flush(c);
			break;
		}
	}
	free(line);
}

static void conn_read_cb(struct bufferevent *bev, void *arg)
{
	process_input(arg);
}

static void conn_write_cb(struct bufferevent *bev, void *arg)
{
	struct lconn *c = arg;

	if (c->state == LS_CLOSING)
		conn_free(c, "closed", c->pair == NULL);
	else if (c->state == LS_STLS)
		start_tls(c);
}

static void conn_event_cb(struct bufferevent *bev, short what, void *arg)
{
	struct lconn *c = arg;

	if (what & BEV_EVENT_CONNECTED) {
		SSL *ssl = bufferevent_openssl_get_ssl(bev);
		struct timeval idle = client_tv(conf_idle_timeout(&env->conf));
		struct timeval stall = client_tv(WRITE_STALL_TIMEOUT_DEFAULT);

		c->tls = true;
		tls_describe(ssl, c->tlsdesc, sizeof(c->tlsdesc));
		compute_binding(c, ssl);
		log_info("session=%s ip=%s event=tls version=%s", c->session, c->ip, c->tlsdesc);
		bufferevent_set_timeouts(c->bev, &idle, &stall);
		/* After STLS the greeting is not repeated (RFC 2595 §4); on port 995 it comes now.
		 */
		if (c->stls)
			set_state(c, LS_AUTH);
		else
			greet(c);
		return;
	}
	if (what & BEV_EVENT_TIMEOUT) {
		conn_free(c, c->state == LS_HANDSHAKE ? "handshake_timeout" : "idle_timeout", true);
		return;
	}
	if (what & BEV_EVENT_ERROR) {
		unsigned long e = bufferevent_get_openssl_error(bev);
		char ebuf[160] = "";
		if (e != 0)
			ERR_error_string_n(e, ebuf, sizeof(ebuf));
		log_info("session=%s ip=%s event=connection_error state=%d tls_error=\"%s\"",
		         c->session, c->ip, (int)c->state, ebuf);
	}
	conn_free(c, (what & BEV_EVENT_EOF) ? "client_closed" : "error", true);
}

static void start_tls(struct lconn *c)
{
	SSL *ssl;

	/* Bytes that arrived while +OK was being flushed are plaintext injected before the
	 * handshake: drop the connection rather than feed them to TLS or the parser. */
	if (evbuffer_get_length(bufferevent_get_input(c->bev)) > 0) {
		log_warnx("session=%s ip=%s event=stls_injection action=close", c->session, c->ip);
		conn_free(c, "stls_injection", true);
		return;
	}
	wthru_stop(&c->wt);
	bufferevent_free(c->bev);
	c->bev = NULL;
	ssl = SSL_new(ssl_ctx);
	if (ssl == NULL) {
		conn_free(c, "ssl_new_failed", true);
		return;
	}
	c->bev = bufferevent_openssl_socket_new(base, c->fd, ssl, BUFFEREVENT_SSL_ACCEPTING,
	                                        BEV_OPT_CLOSE_ON_FREE);
	if (c->bev == NULL) {
		SSL_free(ssl);
		conn_free(c, "bufferevent_failed", true);
		return;
	}
	c->fd = -1; /* the TLS bufferevent owns the socket and the SSL object now */
	c->stls = true;
	set_state(c, LS_HANDSHAKE);
	bufferevent_setcb(c->bev, conn_read_cb, conn_write_cb, conn_event_cb, c);
	bufferevent_setwatermark(c->bev, EV_READ, 0, LOGIN_LINE_MAX);
	bufferevent_set_timeouts(c->bev, &(struct timeval){HANDSHAKE_TIMEOUT, 0},
	                         &(struct timeval){HANDSHAKE_TIMEOUT, 0});
	bufferevent_enable(c->bev, EV_READ | EV_WRITE);
}

/* --- TLS relay between the client and the mail process ------------------------------------ */

static void relay_move(struct bufferevent *from, struct bufferevent *to)
{
	evbuffer_add_buffer(bufferevent_get_output(to), bufferevent_get_input(from));
	/* Back-pressure: stop reading FROM while TO has a lot queued. */
	if (evbuffer_get_length(bufferevent_get_output(to)) > RELAY_HIGH_WATER)
		bufferevent_disable(from, EV_READ);
}

static void relay_client_read_cb(struct bufferevent *bev, void *arg)
{
	struct lconn *c = arg;
	relay_move(c->bev, c->pair);
}

static void relay_pair_read_cb(struct bufferevent *bev, void *arg)
{
	struct lconn *c = arg;
	relay_move(c->pair, c->bev);
}

static void relay_client_write_cb(struct bufferevent *bev, void *arg)
{
	struct lconn *c = arg;

	if (c->state == LS_CLOSING) {
		conn_free(c, "logout", false);
		return;
	}
	bufferevent_enable(c->pair, EV_READ);
}

static void relay_pair_write_cb(struct bufferevent *bev, void *arg)
{
	struct lconn *c = arg;
	bufferevent_enable(c->bev, EV_READ);
}

static void relay_client_event_cb(struct bufferevent *bev, short what, void *arg)
{
	/* The client went away: the mail process sees EOF and ends the session without UPDATE. */
	conn_free(arg, (what & BEV_EVENT_EOF) ? "client_closed" : "client_error", false);
}

static void relay_pair_event_cb(struct bufferevent *bev, short what, void *arg)
{
	struct lconn *c = arg;

	/* The mail process closed the session (QUIT, timeout): flush what it said, then close. */
	relay_move(c->pair, c->bev);
	wthru_stop(&c->pair_wt);
	bufferevent_free(c->pair);
	c->pair = NULL;
	c->state = LS_CLOSING;
	bufferevent_disable(c->bev, EV_READ);
	if (evbuffer_get_length(bufferevent_get_output(c->bev)) == 0)
		conn_free(c, "logout", false);
}

static void handover(struct lconn *c, const unsigned char *token, size_t toklen)
{
	struct evbuffer *in = bufferevent_get_input(c->bev);
	unsigned char input[HANDOVER_INPUT_MAX];
	size_t inlen = evbuffer_get_length(in);
	int sv[2], pass_fd;

	if (inlen > sizeof(input)) {
		lang_reply(c->bev, c->lang, TXT_PIPELINED_LOGIN);
		close_after_flush(c);
		return;
	}
	evbuffer_remove(in, input, inlen);
	if (c->tls) {
		if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, sv) < 0) {
			log_warn("socketpair");
			lang_reply(c->bev, c->lang, TXT_INTERNAL_TEMP);
			close_after_flush(c);
			return;
		}
		pass_fd = sv[0];
	} else {
		pass_fd = c->fd;
	}
	ipc_msg_init(&msgbuf, MSG_HANDOVER);
	ipc_put_u64(&msgbuf, c->conn_id);
	ipc_put_data(&msgbuf, token, toklen);
	ipc_put_str(&msgbuf, c->session);
	ipc_put_str(&msgbuf, c->ip);
	ipc_put_str(&msgbuf, c->tls ? c->tlsdesc : "");
	ipc_put_u32(&msgbuf, c->utf8);
	ipc_put_str(&msgbuf, lang_tag(c->lang));
	ipc_put_data(&msgbuf, input, inlen);
	ipc_queue_send(master_q, &msgbuf, pass_fd);
	explicit_bzero(input, sizeof(input));
	if (!c->tls) {
		/* The socket now belongs to the mail process; our copy goes. */
		wthru_stop(&c->wt);
		bufferevent_free(c->bev);
		c->bev = NULL;
		close(c->fd);
		c->fd = -1;
		conn_free(c, "handover", false);
		return;
	}
	close(sv[0]);
	c->pair = bufferevent_socket_new(base, sv[1], BEV_OPT_CLOSE_ON_FREE);
	if (c->pair == NULL) {
		close(sv[1]);
		conn_free(c, "relay_failed", false);
		return;
	}
	if (wthru_start(&c->pair_wt, base, c->pair, NULL) < 0) {
		conn_free(c, "relay_failed", false);
		return;
	}
	set_state(c, LS_RELAY);
	bufferevent_setcb(c->bev, relay_client_read_cb, relay_client_write_cb,
	                  relay_client_event_cb, c);
	bufferevent_setcb(c->pair, relay_pair_read_cb, relay_pair_write_cb, relay_pair_event_cb, c);
	bufferevent_setwatermark(c->bev, EV_READ, 0, RELAY_HIGH_WATER);
	bufferevent_setwatermark(c->pair, EV_READ, 0, RELAY_HIGH_WATER);
	/* The mail process enforces the idle and write-stall timeouts now. */
	bufferevent_set_timeouts(c->bev, NULL, NULL);
	bufferevent_enable(c->bev, EV_READ | EV_WRITE);
	bufferevent_enable(c->pair, EV_READ);
}

static struct lconn *find_req(uint32_t req_id)
{
	for (struct lconn *c = conns; c != NULL; c = c->next)
		if (c->state == LS_WAIT_AUTH && c->req_id == req_id)
			return c;
	return NULL;
}

static void auth_res(struct ipc_msg *m)
{
	uint32_t req_id, result;
	const void *token, *final;
	size_t toklen, final_len;
	char user[USERNAME_MAX + 1];
	struct lconn *c;

	if (ipc_get_u32(m, &req_id) < 0 || ipc_get_u32(m, &result) < 0 ||
	    ipc_get_data(m, &token, &toklen) < 0 || ipc_get_str(m, user, sizeof(user)) < 0 ||
	    ipc_get_data(m, &final, &final_len) < 0 || ipc_end(m) < 0) {
		log_warnx("event=bad_message from=auth type=auth_res");
		return;
	}
	if ((c = find_req(req_id)) == NULL)
		return;     /* the client left while its password was being checked */
	c->in_sasl = false; /* the auth process closed the exchange */
	if (result == AUTH_OK && toklen == AUTH_TOKEN_LEN) {
		log_info("session=%s ip=%s event=auth_ok user=%s method=%s tls=%s", c->session,
		         c->ip, user, c->mech, c->tls ? c->tlsdesc : "no");
		if (final_len > 0) {
			/* POP3 has no "additional data with success": the data goes out as a
			 * challenge, the client answers with an empty line (S-100). */
			memcpy(c->token, token, AUTH_TOKEN_LEN);
			send_challenge(c, final, final_len);
			set_state(c, LS_SASL_FINAL);
			process_input(c);
			return;
		}
		handover(c, token, toklen);
		return;
	}
	set_state(c, LS_AUTH);
	if (result == AUTH_TEMPFAIL)
		lang_reply(c->bev, c->lang, TXT_AUTH_TEMPFAIL);
	else if (result == AUTH_BLOCKED)
		lang_reply(c->bev, c->lang, TXT_AUTH_BLOCKED);
	else
		lang_reply(c->bev, c->lang, TXT_AUTH_FAILED);
	process_input(c);
}

static void sasl_challenge(struct ipc_msg *m)
{
	uint32_t req_id;
	const void *data;
	size_t len;
	struct lconn *c;

	if (ipc_get_u32(m, &req_id) < 0 || ipc_get_data(m, &data, &len) < 0 || ipc_end(m) < 0) {
		log_warnx("event=bad_message from=auth type=sasl_challenge");
		return;
	}
	if ((c = find_req(req_id)) == NULL || !c->in_sasl)
		return;
	send_challenge(c, data, len);
	set_state(c, LS_SASL);
	process_input(c);
}

static void auth_cb(evutil_socket_t fd, short what, void *arg)
{
	for (int i = 0; i < 64; i++) {
		int r = ipc_recv(fd, &msgbuf);
		if (r < 0 && (errno == EAGAIN || errno == EINTR))
			return;
		if (r <= 0) {
			/* The auth process died; the master starts a new one and sends us a new
			 * channel. Logins waiting for an answer get [SYS/TEMP]. */
			log_warnx("event=auth_channel_lost");
			event_free(auth_ev);
			ipc_queue_free(auth_q);
			close(auth_fd);
			auth_ev = NULL;
			auth_q = NULL;
			auth_fd = -1;
			for (struct lconn *c = conns, *n; c != NULL; c = n) {
				n = c->next;
				c->in_sasl = false; /* the exchanges died with the process */
				if (c->state == LS_WAIT_AUTH || c->state == LS_SASL ||
				    c->state == LS_SASL_FINAL) {
					explicit_bzero(c->token, sizeof(c->token));
					set_state(c, LS_AUTH);
					lang_reply(c->bev, c->lang, TXT_AUTH_TEMPFAIL);
					process_input(c);
				}
			}
			return;
		}
		if (msgbuf.fd >= 0) {
			close(msgbuf.fd);
			msgbuf.fd = -1;
		}
		if (msgbuf.type == MSG_AUTH_RES)
			auth_res(&msgbuf);
		else if (msgbuf.type == MSG_SASL_CHALLENGE)
			sasl_challenge(&msgbuf);
		else
			log_warnx("event=bad_message from=auth type=%u", msgbuf.type);
	}
}

static void set_auth_channel(struct ipc_msg *m)
{
	uint32_t id;

	if (ipc_get_u32(m, &id) < 0 || ipc_end(m) < 0 || m->fd < 0) {
		log_warnx("event=bad_message from=master type=auth_client");
		return;
	}
	if (auth_ev != NULL) {
		event_free(auth_ev);
		ipc_queue_free(auth_q);
		close(auth_fd);
	}
	auth_fd = m->fd;
	m->fd = -1;
	auth_q = ipc_queue_new(base, auth_fd);
	auth_ev = event_new(base, auth_fd, EV_READ | EV_PERSIST, auth_cb, NULL);
	if (auth_q == NULL || auth_ev == NULL || event_add(auth_ev, NULL) < 0)
		fatal("event_new");
}

static void new_conn(struct ipc_msg *m)
{
	struct sockaddr_storage ss;
	socklen_t sl = sizeof(ss);
	uint32_t implicit;
	struct lconn *c = calloc(1, sizeof(*c));
	int fd = m->fd;

	m->fd = -1;
	if (c == NULL)
		fatal("calloc");
	if (ipc_get_u64(m, &c->conn_id) < 0 || ipc_get_u32(m, &implicit) < 0 ||
	    ipc_get_str(m, c->session, sizeof(c->session)) < 0 || ipc_end(m) < 0 || fd < 0) {
		log_warnx("event=bad_message from=master type=conn");
		if (fd >= 0)
			close(fd);
		free(c);
		return;
	}
	c->fd = fd;
	if (getpeername(fd, (struct sockaddr *)&ss, &sl) < 0) {
		snprintf(c->ip, sizeof(c->ip), "unknown");
	} else {
		netaddr_ntop((struct sockaddr *)&ss, c->ip, sizeof(c->ip));
		for (size_t i = 0; i < env->conf.n_trusted; i++)
			if (netmask_match(&env->conf.trusted[i], (struct sockaddr *)&ss))
				c->trusted = true;
	}
	line_reader_init(&c->lr, LOGIN_LINE_MAX);
	c->next = conns;
	if (conns != NULL)
		conns->prev = c;
	conns = c;
	n_conns++;
	log_info("session=%s ip=%s event=connect listener=%s", c->session, c->ip,
	         implicit ? "tls" : "plain");
	if (implicit) {
		SSL *ssl = SSL_new(ssl_ctx);
		c->bev = ssl ? bufferevent_openssl_socket_new(
		                   base, fd, ssl, BUFFEREVENT_SSL_ACCEPTING, BEV_OPT_CLOSE_ON_FREE)
		             : NULL;
		if (c->bev == NULL) {
			SSL_free(ssl);
			conn_free(c, "tls_setup_failed", true);
			return;
		}
		c->fd = -1;
		c->state = LS_HANDSHAKE;
		bufferevent_set_timeouts(c->bev, &(struct timeval){HANDSHAKE_TIMEOUT, 0},
		                         &(struct timeval){HANDSHAKE_TIMEOUT, 0});
	} else {
		struct timeval idle = client_tv(conf_idle_timeout(&env->conf));
		struct timeval stall = client_tv(WRITE_STALL_TIMEOUT_DEFAULT);

		c->bev = bufferevent_socket_new(base, fd, 0);
		if (c->bev == NULL) {
			conn_free(c, "bufferevent_failed", true);
			return;
		}
		bufferevent_set_timeouts(c->bev, &idle, &stall);
		if (wthru_start(&c->wt, base, c->bev, &stall) < 0) {
			conn_free(c, "bufferevent_failed", true);
			return;
		}
		greet(c);
	}
	bufferevent_setcb(c->bev, conn_read_cb, conn_write_cb, conn_event_cb, c);
	/* Pipelined input is bounded: past this the kernel buffer holds it (back-pressure). */
	bufferevent_setwatermark(c->bev, EV_READ, 0, LOGIN_LINE_MAX);
	bufferevent_enable(c->bev, implicit ? EV_READ | EV_WRITE : EV_READ);
}

static void master_cb(evutil_socket_t fd, short what, void *arg)
{
	for (int i = 0; i < 64; i++) {
		int r = ipc_recv(fd, &msgbuf);
		if (r < 0 && (errno == EAGAIN || errno == EINTR))
			return;
		if (r <= 0)
			exit(0); /* the master is gone */
		switch (msgbuf.type) {
		case MSG_CONN:
			new_conn(&msgbuf);
			break;
		case MSG_AUTH_CLIENT:
			set_auth_channel(&msgbuf);
			break;
		case MSG_SHUTDOWN:
			draining = true;
			maybe_exit();
			break;
		default:
			log_warnx("event=bad_message from=master type=%u", msgbuf.type);
		}
		if (msgbuf.fd >= 0) {
			close(msgbuf.fd);
			msgbuf.fd = -1;
		}
	}
}

static void term_cb(evutil_socket_t sig, short what, void *arg)
{
	exit(0);
}

void login_main(struct child_env *e)
{
	struct event *ev;
	char err[512];

	env = e;
	signal(SIGPIPE, SIG_IGN);
	signal(SIGHUP, SIG_IGN);
	if (env->conf.have_tls && (ssl_ctx = tls_server_ctx(&env->conf, err, sizeof(err))) == NULL)
		fatalx("%s", err);
	if (ssl_ctx != NULL && env->have_ticket_keys &&
	    tls_set_ticket_keys(ssl_ctx, env->ticket_keys, sizeof(env->ticket_keys)) < 0)
		fatalx("cannot set the TLS session ticket keys");
	explicit_bzero(env->ticket_keys, sizeof(env->ticket_keys));
	child_drop_privileges(env->conf.login_user, "login_user", env->conf.login_chroot);
	base = event_base_new();
	if (base == NULL)
		fatal("event_base_new");
	master_q = ipc_queue_new(base, CHILD_CHANNEL_FD);
	ev = event_new(base, CHILD_CHANNEL_FD, EV_READ | EV_PERSIST, master_cb, NULL);
	if (master_q == NULL || ev == NULL || event_add(ev, NULL) < 0)
		fatal("event_new");
	ev = evsignal_new(base, SIGTERM, term_cb, NULL);
	if (ev == NULL || event_add(ev, NULL) < 0)
		fatal("event_new");
	/* Per-connection logins live for one connection only. */
	if (env->conf.isolation == ISOLATION_PER_CONNECTION)
		draining = true;
	event_base_dispatch(base);
	fatalx("event loop ended");
}
