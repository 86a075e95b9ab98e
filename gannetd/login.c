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
#include <sys/socket.h>
#include <unistd.h>

#include <event2/bufferevent_ssl.h>
#include <event2/event.h>
#include <openssl/err.h>

#include "child.h"
#include "client.h"
#include "ipc.h"
#include "log.h"
#include "netaddr.h"
#include "tls.h"
#include "userdb.h"

/* Bytes queued towards one side of a TLS relay before we stop reading the other side. */
#define RELAY_HIGH_WATER (256 * 1024)

enum lstate {
	LS_HANDSHAKE, /* implicit TLS or STLS handshake in progress */
	LS_AUTH,      /* AUTHORIZATION: reading commands */
	LS_WAIT_AUTH, /* PASS sent to the auth process */
	LS_STLS,      /* +OK to STLS queued; handshake starts when it is flushed */
	LS_CLOSING,   /* flushing the last reply */
	LS_RELAY,     /* logged in over TLS: relaying to the mail process */
};

struct lconn {
	uint64_t conn_id;
	char session[40];
	char ip[64];
	int fd;
	struct bufferevent *bev;
	struct bufferevent *pair; /* relay towards the mail process */
	bool tls;
	bool stls; /* TLS was started with STLS */
	bool trusted;
	enum lstate state;
	struct line_reader lr;
	unsigned bad;
	bool have_user;
	char user[USERNAME_MAX + 1];
	uint32_t req_id;
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
	static const char *const names[] = {"handshake", "authorization", "wait_auth",
	                                    "stls",      "closing",       "relay"};
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

static void conn_free(struct lconn *c, const char *reason, bool report)
{
	log_info("session=%s ip=%s event=disconnect state=%s reason=%s", c->session, c->ip,
	         c->state == LS_RELAY ? "relay" : "authorization", reason);
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

static void greet(struct lconn *c)
{
	set_state(c, LS_AUTH);
	client_reply(c->bev, "+OK %s Gannet POP3 server ready", env->conf.hostname);
}

static int cmd_capa(void *arg, struct pop3_cmd *cmd)
{
	struct lconn *c = arg;
	static const char head[] = "+OK Capability list follows\r\n"
	                           "TOP\r\nUIDL\r\nRESP-CODES\r\nAUTH-RESP-CODE\r\nPIPELINING\r\n";
	static const char tail[] = "IMPLEMENTATION Gannet\r\n.\r\n";

	if (cmd->argc != 0)
		return client_reply(c->bev, "-ERR CAPA takes no arguments"), CMD_ERR;
	bufferevent_write(c->bev, head, sizeof(head) - 1);
	if (plaintext_allowed(c))
		bufferevent_write(c->bev, "USER\r\n", 6);
	if (!c->tls && env->conf.have_tls)
		bufferevent_write(c->bev, "STLS\r\n", 6);
	bufferevent_write(c->bev, tail, sizeof(tail) - 1);
	return CMD_OK;
}

static int cmd_user(void *arg, struct pop3_cmd *cmd)
{
	struct lconn *c = arg;
	const char *error;

	c->have_user = false;
	if (!plaintext_allowed(c))
		return client_reply(c->bev, "-ERR [AUTH] Plaintext authentication disallowed on "
		                            "non-secure connection; use STLS or port 995"),
		       CMD_ERR;
	if (cmd->argc != 1 || cmd->bad_spacing)
		return client_reply(c->bev, "-ERR Usage: USER name"), CMD_ERR;
	if (userdb_valid_name(cmd->argv[0], cmd->argl[0], &error) < 0)
		return client_reply(c->bev, "-ERR Invalid user name"), CMD_ERR;
	memcpy(c->user, cmd->argv[0], cmd->argl[0]);
	c->user[cmd->argl[0]] = '\0';
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
		return client_reply(c->bev, "-ERR USER first"), CMD_ERR;
	if (!plaintext_allowed(c))
		return client_reply(c->bev, "-ERR [AUTH] Plaintext authentication disallowed on "
		                            "non-secure connection"),
		       CMD_ERR;
	if (cmd->rest == NULL || cmd->rest_len == 0)
		return client_reply(c->bev, "-ERR Usage: PASS password"), CMD_ERR;
	if (auth_q == NULL) {
		client_reply(c->bev, "-ERR [SYS/TEMP] Authentication service unavailable");
		return CMD_OK;
	}
	c->req_id = next_req++;
	ipc_msg_init(&msgbuf, MSG_AUTH_REQ);
	ipc_put_u32(&msgbuf, c->req_id);
	ipc_put_str(&msgbuf, c->user);
	ipc_put_data(&msgbuf, cmd->rest, cmd->rest_len);
	ipc_put_str(&msgbuf, c->ip);
	ipc_put_str(&msgbuf, c->session);
	ipc_queue_send(auth_q, &msgbuf, -1);
	explicit_bzero(msgbuf.data, msgbuf.len);
	explicit_bzero((void *)cmd->rest, cmd->rest_len);
	set_state(c, LS_WAIT_AUTH);
	return CMD_SUSPEND;
}

static int cmd_quit(void *arg, struct pop3_cmd *cmd)
{
	struct lconn *c = arg;

	if (cmd->argc != 0)
		return client_reply(c->bev, "-ERR QUIT takes no arguments"), CMD_ERR;
	client_reply(c->bev, "+OK Bye");
	return CMD_CLOSE;
}

static void start_tls(struct lconn *c);

static int cmd_stls(void *arg, struct pop3_cmd *cmd)
{
	struct lconn *c = arg;

	if (c->tls)
		return client_reply(c->bev, "-ERR TLS is already active"), CMD_ERR;
	if (!env->conf.have_tls)
		return client_reply(c->bev, "-ERR TLS is not configured"), CMD_ERR;
	if (cmd->argc != 0)
		return client_reply(c->bev, "-ERR STLS takes no arguments"), CMD_ERR;
	/* Anything pipelined behind STLS would be read as if it came through TLS: the STARTTLS
	 * command injection attack (CVE-2011-0411 in SMTP). Refuse the whole connection. */
	if (evbuffer_get_length(bufferevent_get_input(c->bev)) > 0) {
		log_warnx("session=%s ip=%s event=stls_injection action=close", c->session, c->ip);
		return CMD_CLOSE;
	}
	c->have_user = false; /* a name sent in the clear is forgotten (S-082) */
	client_reply(c->bev, "+OK Begin TLS negotiation");
	set_state(c, LS_STLS);
	bufferevent_disable(c->bev, EV_READ);
	return CMD_SUSPEND;
}

static const struct cmd_def auth_cmds[] = {
    {"CAPA", cmd_capa, 0},   {"USER", cmd_user, 0},   {"PASS", cmd_pass, 0},
    {"QUIT", cmd_quit, 0},   {"STLS", cmd_stls, 0},   {"STAT", NULL, CMD_BAD},
    {"LIST", NULL, CMD_BAD}, {"RETR", NULL, CMD_BAD}, {"DELE", NULL, CMD_BAD},
    {"NOOP", NULL, CMD_BAD}, {"RSET", NULL, CMD_BAD}, {"TOP", NULL, CMD_BAD},
    {"UIDL", NULL, CMD_BAD}, {NULL, NULL, 0},
};

static void handle_line(struct lconn *c, char *line, size_t len)
{
	struct pop3_cmd cmd;
	const struct cmd_def *def;
	int r;

	if (pop3_parse_cmd(line, len, &cmd) < 0 ||
	    (def = cmd_lookup(auth_cmds, cmd.keyword)) == NULL) {
		client_reply(c->bev, "-ERR Unknown command");
		r = CMD_ERR;
	} else if (def->flags & CMD_BAD) {
		client_reply(c->bev, "-ERR Command not valid before login");
		r = CMD_ERR;
	} else {
		r = def->handler(c, &cmd);
	}
	explicit_bzero(line, len);
	if (r == CMD_ERR &&
	    client_bad_command(c->bev, &c->bad, env->conf.max_bad_commands, c->session, c->ip))
		r = CMD_CLOSE;
	if (r == CMD_CLOSE)
		close_after_flush(c);
}

static void process_input(struct lconn *c)
{
	char line[POP3_CMD_MAX + 1];
	size_t len;

	while (c->state == LS_AUTH) {
		enum line_result r = client_read_line(bufferevent_get_input(c->bev), &c->lr, line,
		                                      sizeof(line), &len);
		if (r == LINE_NEED_MORE)
			return;
		if (r == LINE_OK) {
			handle_line(c, line, len);
			continue;
		}
		client_reply_dropped(c->bev, r);
		if (client_bad_command(c->bev, &c->bad, env->conf.max_bad_commands, c->session,
		                       c->ip)) {
			close_after_flush(c);
			return;
		}
	}
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
	bufferevent_setwatermark(c->bev, EV_READ, 0, HANDOVER_INPUT_MAX);
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
		client_reply(c->bev, "-ERR Too many pipelined commands during login");
		close_after_flush(c);
		return;
	}
	evbuffer_remove(in, input, inlen);
	if (c->tls) {
		if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, sv) < 0) {
			log_warn("socketpair");
			client_reply(c->bev, "-ERR [SYS/TEMP] Internal error");
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
	ipc_put_data(&msgbuf, input, inlen);
	ipc_queue_send(master_q, &msgbuf, pass_fd);
	explicit_bzero(input, sizeof(input));
	if (!c->tls) {
		/* The socket now belongs to the mail process; our copy goes. */
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
	set_state(c, LS_RELAY);
	bufferevent_setcb(c->bev, relay_client_read_cb, relay_client_write_cb,
	                  relay_client_event_cb, c);
	bufferevent_setcb(c->pair, relay_pair_read_cb, relay_pair_write_cb, relay_pair_event_cb, c);
	bufferevent_setwatermark(c->bev, EV_READ, 0, RELAY_HIGH_WATER);
	bufferevent_setwatermark(c->pair, EV_READ, 0, RELAY_HIGH_WATER);
	/* The mail process enforces the idle and write-stall timeouts now. */
	bufferevent_set_timeouts(c->bev, NULL, NULL);
	bufferevent_enable(c->bev, EV_READ | EV_WRITE);
	bufferevent_enable(c->pair, EV_READ | EV_WRITE);
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
	const void *token;
	size_t toklen;
	struct lconn *c;

	if (ipc_get_u32(m, &req_id) < 0 || ipc_get_u32(m, &result) < 0 ||
	    ipc_get_data(m, &token, &toklen) < 0 || ipc_end(m) < 0) {
		log_warnx("event=bad_message from=auth type=auth_res");
		return;
	}
	if ((c = find_req(req_id)) == NULL)
		return; /* the client left while its password was being checked */
	if (result == AUTH_OK && toklen == AUTH_TOKEN_LEN) {
		log_info("session=%s ip=%s event=auth_ok user=%s method=PASS tls=%s", c->session,
		         c->ip, c->user, c->tls ? c->tlsdesc : "no");
		handover(c, token, toklen);
		return;
	}
	set_state(c, LS_AUTH);
	if (result == AUTH_TEMPFAIL)
		client_reply(c->bev, "-ERR [SYS/TEMP] Authentication temporarily unavailable");
	else
		client_reply(c->bev, "-ERR [AUTH] Authentication failed");
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
				if (c->state == LS_WAIT_AUTH) {
					set_state(c, LS_AUTH);
					client_reply(c->bev, "-ERR [SYS/TEMP] Authentication "
					                     "temporarily unavailable");
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
	line_reader_init(&c->lr, POP3_CMD_MAX);
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
		greet(c);
	}
	bufferevent_setcb(c->bev, conn_read_cb, conn_write_cb, conn_event_cb, c);
	/* Pipelined input is bounded: past this the kernel buffer holds it (back-pressure). */
	bufferevent_setwatermark(c->bev, EV_READ, 0, HANDOVER_INPUT_MAX);
	bufferevent_enable(c->bev, EV_READ | EV_WRITE);
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
