/* The login process's AUTHORIZATION command table (RFC 1939, 2449, 2595, 5034, 6856): CAPA,
 * USER/PASS, APOP, AUTH with its SASL exchange, STLS, UTF8, LANG, QUIT, and the bounded reading
 * of input lines. Connections, TLS, the auth channel and the handover are in login.c. */
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <event2/buffer.h>
#include <openssl/evp.h>

#include "authcheck.h"
#include "client.h"
#include "ipc.h"
#include "lang.h"
#include "log.h"
#include "login_int.h"
#include "mechs.h"
#include "pop3client.h"
#include "utf8.h"

bool login_plaintext_allowed(const struct lconn *c)
{
	return c->tls || c->trusted || !login_env->conf.disable_plaintext_auth;
}

/* RFC 1939 §7: a msg-id shaped timestamp, different on every greeting (S-016, S-017): random
 * bytes and a per-process counter, so parallel login processes never repeat one. */
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
void login_send_challenge(struct lconn *c, const void *data, size_t len)
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
	if (login_plaintext_allowed(c))
		bufferevent_write(c->bev, "USER\r\n", 6);
	{
		char line[POP3_RESP_MAX];
		size_t n = 0;

		for (const struct mech_info *m = mech_table; m->name != NULL; m++) {
			if (!mech_offered(&login_env->conf, m, login_plaintext_allowed(c), c->tls,
			                  c->a->cb_len > 0) ||
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
	if (!c->tls && login_env->conf.have_tls && !c->utf8)
		bufferevent_write(c->bev, "STLS\r\n", 6);
	/* RFC 2449 §6.5/§6.7, S-041: before login, the most conservative value with USER (a user's
	 * own value may differ: userdb_policy_*). Under expire_days = never the smallest per-user
	 * value is unknown here, so EXPIRE is left to TRANSACTION (EXPIRE NEVER for most users). */
	if (login_env->conf.expire_days >= 0)
		evbuffer_add_printf(bufferevent_get_output(c->bev), "EXPIRE %ld USER\r\n",
		                    login_env->conf.expire_days);
	if (login_env->conf.login_delay > 0)
		evbuffer_add_printf(bufferevent_get_output(c->bev), "LOGIN-DELAY %ld USER\r\n",
		                    login_env->conf.login_delay);
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
		memcpy(c->a->user, name, len);
		c->a->user[len] = '\0';
	} else if (utf8_saslprep(name, len, false, c->a->user, sizeof(c->a->user), &error) < 0) {
		return -1;
	}
	return userdb_valid_name(c->a->user, strlen(c->a->user), &error);
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

	c->a->have_user = false;
	if (!login_plaintext_allowed(c))
		return lang_reply(c->bev, c->lang, TXT_PLAINTEXT_OFF_STLS), CMD_ERR;
	if (cmd->argc != 1 || cmd->bad_spacing)
		return lang_reply(c->bev, c->lang, TXT_USAGE, "USER name"), CMD_ERR;
	if (take_user(c, cmd->argv[0], cmd->argl[0]) < 0)
		return lang_reply(c->bev, c->lang, TXT_BAD_USER), CMD_ERR;
	c->a->have_user = true;
	/* The same answer for every valid name, so USER does not reveal who exists (S-025). */
	client_reply(c->bev, "+OK");
	return CMD_OK;
}

static int cmd_pass(void *arg, struct pop3_cmd *cmd)
{
	struct lconn *c = arg;
	bool had_user = c->a->have_user;

	/* A PASS always consumes the pending USER, right or wrong (S-027). */
	c->a->have_user = false;
	if (!had_user)
		return lang_reply(c->bev, c->lang, TXT_USER_FIRST), CMD_ERR;
	if (!login_plaintext_allowed(c))
		return lang_reply(c->bev, c->lang, TXT_PLAINTEXT_OFF), CMD_ERR;
	if (cmd->rest == NULL || cmd->rest_len == 0)
		return lang_reply(c->bev, c->lang, TXT_USAGE, "PASS password"), CMD_ERR;
	if (!password_ok(cmd->rest, cmd->rest_len))
		return lang_reply(c->bev, c->lang, TXT_BAD_PASSWORD), CMD_ERR;
	if (login_auth_q == NULL) {
		lang_reply(c->bev, c->lang, TXT_AUTH_UNAVAILABLE);
		return CMD_OK;
	}
	c->a->req_id = login_next_req++;
	snprintf(c->a->mech, sizeof(c->a->mech), "PASS");
	ipc_msg_init(&login_msgbuf, MSG_AUTH_REQ);
	ipc_put_u32(&login_msgbuf, c->a->req_id);
	ipc_put_u32(&login_msgbuf, AUTH_METHOD_PASS);
	ipc_put_str(&login_msgbuf, c->a->user);
	ipc_put_data(&login_msgbuf, cmd->rest, cmd->rest_len);
	ipc_put_str(&login_msgbuf, "");
	ipc_put_str(&login_msgbuf, c->ip);
	ipc_put_str(&login_msgbuf, c->session);
	ipc_queue_send(login_auth_q, &login_msgbuf, -1);
	explicit_bzero(login_msgbuf.data, login_msgbuf.len);
	explicit_bzero((void *)cmd->rest, cmd->rest_len);
	login_set_state(c, LS_WAIT_AUTH);
	return CMD_SUSPEND;
}

/* APOP name digest (RFC 1939 §7), only when the greeting carried a timestamp. */
static int cmd_apop(void *arg, struct pop3_cmd *cmd)
{
	struct lconn *c = arg;

	c->a->have_user = false;
	if (c->a->apop_ts[0] == '\0')
		return lang_reply(c->bev, c->lang, TXT_APOP_OFF), CMD_ERR;
	if (cmd->argc != 2 || cmd->bad_spacing || cmd->argl[1] != 32)
		return lang_reply(c->bev, c->lang, TXT_USAGE, "APOP name digest"), CMD_ERR;
	/* The APOP name is SASLprep'd like USER's (RFC 6856 §2.2). */
	if (take_user(c, cmd->argv[0], cmd->argl[0]) < 0)
		return lang_reply(c->bev, c->lang, TXT_AUTH_FAILED), CMD_ERR;
	if (login_auth_q == NULL) {
		lang_reply(c->bev, c->lang, TXT_AUTH_UNAVAILABLE);
		return CMD_OK;
	}
	c->a->req_id = login_next_req++;
	snprintf(c->a->mech, sizeof(c->a->mech), "APOP");
	ipc_msg_init(&login_msgbuf, MSG_AUTH_REQ);
	ipc_put_u32(&login_msgbuf, c->a->req_id);
	ipc_put_u32(&login_msgbuf, AUTH_METHOD_APOP);
	ipc_put_str(&login_msgbuf, c->a->user);
	ipc_put_data(&login_msgbuf, cmd->argv[1], cmd->argl[1]);
	ipc_put_str(&login_msgbuf, c->a->apop_ts);
	ipc_put_str(&login_msgbuf, c->ip);
	ipc_put_str(&login_msgbuf, c->session);
	ipc_queue_send(login_auth_q, &login_msgbuf, -1);
	login_set_state(c, LS_WAIT_AUTH);
	return CMD_SUSPEND;
}

/* Tell the auth process to forget an open exchange (client "*", a bad line, or a disconnect). */
void login_sasl_abort(struct lconn *c)
{
	if (c->a == NULL || !c->a->in_sasl)
		return;
	c->a->in_sasl = false;
	if (login_auth_q == NULL)
		return;
	ipc_msg_init(&login_msgbuf, MSG_SASL_ABORT);
	ipc_put_u32(&login_msgbuf, c->a->req_id);
	ipc_queue_send(login_auth_q, &login_msgbuf, -1);
}

/* AUTH (RFC 5034). Bare AUTH lists the mechanisms offered here, one a line. */
static int cmd_auth(void *arg, struct pop3_cmd *cmd)
{
	struct lconn *c = arg;
	const struct mech_info *m;
	unsigned char *initial;
	size_t initial_len = 0;
	char mech[32];

	c->a->have_user = false;
	if (cmd->argc == 0) {
		struct evbuffer *out = bufferevent_get_output(c->bev);

		lang_reply(c->bev, c->lang, TXT_AUTH_LIST);
		for (m = mech_table; m->name != NULL; m++)
			if (mech_offered(&login_env->conf, m, login_plaintext_allowed(c), c->tls,
			                 c->a->cb_len > 0))
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
	if (m == NULL || !mech_configured(&login_env->conf, m))
		return lang_reply(c->bev, c->lang, TXT_MECH_UNSUPPORTED), CMD_ERR;
	if (!mech_offered(&login_env->conf, m, login_plaintext_allowed(c), c->tls,
	                  c->a->cb_len > 0)) {
		if (m->needs == MECH_NEEDS_PLAINTEXT)
			lang_reply(c->bev, c->lang, TXT_PLAINTEXT_OFF_STLS);
		else
			lang_reply(c->bev, c->lang, TXT_MECH_NEEDS_TLS, m->name);
		return CMD_ERR;
	}
	if (login_auth_q == NULL) {
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
	c->a->req_id = login_next_req++;
	c->a->in_sasl = true;
	snprintf(c->a->mech, sizeof(c->a->mech), "%s", m->name);
	ipc_msg_init(&login_msgbuf, MSG_SASL_START);
	ipc_put_u32(&login_msgbuf, c->a->req_id);
	ipc_put_str(&login_msgbuf, m->name);
	ipc_put_u32(&login_msgbuf, cmd->argc == 2);
	ipc_put_data(&login_msgbuf, initial, initial_len);
	ipc_put_str(&login_msgbuf, c->ip);
	ipc_put_str(&login_msgbuf, c->session);
	ipc_put_str(&login_msgbuf, c->a->cb_type);
	ipc_put_data(&login_msgbuf, c->a->cb, c->a->cb_len);
	ipc_queue_send(login_auth_q, &login_msgbuf, -1);
	explicit_bzero(login_msgbuf.data, login_msgbuf.len);
	explicit_bzero(initial, initial_len);
	free(initial);
	login_set_state(c, LS_WAIT_AUTH);
	return CMD_SUSPEND;
}

/* One client line during an AUTH exchange: "*" cancels (S-096), anything else is base64. */
static void sasl_line(struct lconn *c, char *line, size_t len)
{
	unsigned char *data;
	size_t dlen = 0;

	if (len == 1 && line[0] == '*') {
		login_sasl_abort(c);
		login_set_state(c, LS_AUTH);
		lang_reply(c->bev, c->lang, TXT_AUTH_CANCELLED);
		return;
	}
	if ((data = malloc(AUTH_INPUT_MAX)) == NULL ||
	    b64_decode(line, len, data, AUTH_INPUT_MAX, &dlen) < 0) {
		free(data);
		login_sasl_abort(c);
		login_set_state(c, LS_AUTH);
		lang_reply(c->bev, c->lang, TXT_B64_RESPONSE);
		if (client_bad_command(c->bev, c->lang, &c->bad, login_env->conf.max_bad_commands,
		                       c->session, c->ip))
			login_close_after_flush(c);
		return;
	}
	ipc_msg_init(&login_msgbuf, MSG_SASL_STEP);
	ipc_put_u32(&login_msgbuf, c->a->req_id);
	ipc_put_data(&login_msgbuf, data, dlen);
	ipc_queue_send(login_auth_q, &login_msgbuf, -1);
	explicit_bzero(login_msgbuf.data, login_msgbuf.len);
	explicit_bzero(data, dlen);
	free(data);
	login_set_state(c, LS_WAIT_AUTH);
}

static int cmd_quit(void *arg, struct pop3_cmd *cmd)
{
	struct lconn *c = arg;

	if (cmd->argc != 0)
		return lang_reply(c->bev, c->lang, TXT_NO_ARGS, "QUIT"), CMD_ERR;
	lang_reply(c->bev, c->lang, TXT_BYE);
	return CMD_CLOSE;
}

static int cmd_stls(void *arg, struct pop3_cmd *cmd)
{
	struct lconn *c = arg;

	if (c->tls)
		return lang_reply(c->bev, c->lang, TXT_TLS_ACTIVE), CMD_ERR;
	/* RFC 6856 §2.1, S-089: a client must not start TLS after UTF8. */
	if (c->utf8)
		return lang_reply(c->bev, c->lang, TXT_STLS_AFTER_UTF8), CMD_ERR;
	if (!login_env->conf.have_tls)
		return lang_reply(c->bev, c->lang, TXT_TLS_OFF), CMD_ERR;
	if (cmd->argc != 0)
		return lang_reply(c->bev, c->lang, TXT_NO_ARGS, "STLS"), CMD_ERR;
	/* Anything pipelined behind STLS would be read as if it came through TLS: the STARTTLS
	 * command injection attack (CVE-2011-0411 in SMTP). Refuse the whole connection. */
	if (evbuffer_get_length(bufferevent_get_input(c->bev)) > 0) {
		log_warnx("session=%s ip=%s event=stls_injection action=close", c->session, c->ip);
		return CMD_CLOSE;
	}
	c->a->have_user = false; /* a name sent in the clear is forgotten (S-082) */
	lang_reply(c->bev, c->lang, TXT_STLS_GO);
	login_set_state(c, LS_STLS);
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
		if (client_bad_command(c->bev, c->lang, &c->bad, login_env->conf.max_bad_commands,
		                       c->session, c->ip))
			login_close_after_flush(c);
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
	if (r == CMD_ERR && client_bad_command(c->bev, c->lang, &c->bad,
	                                       login_env->conf.max_bad_commands, c->session, c->ip))
		r = CMD_CLOSE;
	if (r == CMD_CLOSE)
		login_close_after_flush(c);
}

/* The client's line after the server-final data of a successful AUTH: empty means go on. */
static void sasl_final_line(struct lconn *c, size_t len)
{
	unsigned char token[AUTH_TOKEN_LEN];

	if (len != 0) {
		explicit_bzero(c->a->token, sizeof(c->a->token));
		login_set_state(c, LS_AUTH);
		lang_reply(c->bev, c->lang, TXT_AUTH_CANCELLED);
		return;
	}
	memcpy(token, c->a->token, sizeof(token));
	explicit_bzero(c->a->token, sizeof(c->a->token));
	login_handover(c, token, sizeof(token));
	explicit_bzero(token, sizeof(token));
}

void login_process_input(struct lconn *c)
{
	char *line = malloc(LOGIN_LINE_MAX + 1);
	size_t len;

	if (line == NULL) {
		login_close_after_flush(c);
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
			login_sasl_abort(c);
			explicit_bzero(c->a->token, sizeof(c->a->token));
			login_set_state(c, LS_AUTH);
			lang_reply(c->bev, c->lang, TXT_AUTH_MALFORMED);
		} else {
			client_reply_dropped(c->bev, c->lang, r);
		}
		if (client_bad_command(c->bev, c->lang, &c->bad, login_env->conf.max_bad_commands,
		                       c->session, c->ip)) {
			login_close_after_flush(c);
			break;
		}
	}
	free(line);
}
