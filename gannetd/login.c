/* The login process: TLS, greeting and the AUTHORIZATION state. It never sees the user database
 * or a mailbox: it asks the auth process to check credentials, then hands the session to the
 * master (the socket itself when plaintext; one end of a socketpair that it keeps relaying to the
 * TLS connection otherwise). Chrooted and unprivileged when started as root. The commands of the
 * AUTHORIZATION state are in login_cmd.c. */
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
#include <openssl/rand.h>
#include <openssl/ssl.h>

#include "authcheck.h"
#include "child.h"
#include "client.h"
#include "ipc.h"
#include "lang.h"
#include "log.h"
#include "netaddr.h"
#include "tls.h"
#include "login_int.h"
#include "wthru.h"

/* Bytes queued towards one side of a TLS relay before we stop reading the other side. */
#define RELAY_HIGH_WATER (256 * 1024)

struct child_env *login_env;
static struct event_base *base;
static SSL_CTX *ssl_ctx;
static struct ipc_queue *master_q;
static int auth_fd = -1;
static struct event *auth_ev;
struct ipc_queue *login_auth_q;
static struct lconn *conns;
static size_t n_conns;
static bool draining;
uint32_t login_next_req = 1;
struct ipc_msg login_msgbuf;

static void conn_read_cb(struct bufferevent *bev, void *arg);
static void start_tls(struct lconn *c);
static void conn_write_cb(struct bufferevent *bev, void *arg);
static void conn_event_cb(struct bufferevent *bev, short what, void *arg);

void login_set_state(struct lconn *c, enum lstate st)
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

/* The AUTHORIZATION state goes once it is no longer needed; it may hold a session token. */
static void free_auth(struct lconn *c)
{
	if (c->a == NULL)
		return;
	explicit_bzero(c->a, sizeof(*c->a));
	free(c->a);
	c->a = NULL;
}

static void conn_free(struct lconn *c, const char *reason, bool report)
{
	login_sasl_abort(c);
	free_auth(c);
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
		ipc_msg_init(&login_msgbuf, MSG_CONN_DONE);
		ipc_put_u64(&login_msgbuf, c->conn_id);
		ipc_queue_send(master_q, &login_msgbuf, -1);
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
void login_close_after_flush(struct lconn *c)
{
	login_set_state(c, LS_CLOSING);
	bufferevent_disable(c->bev, EV_READ);
	if (evbuffer_get_length(bufferevent_get_output(c->bev)) == 0) {
		bufferevent_setcb(c->bev, NULL, NULL, NULL, NULL);
		bufferevent_disable(c->bev, EV_READ | EV_WRITE);
		if (event_base_once(base, -1, EV_TIMEOUT, deferred_free_cb, c,
		                    &(struct timeval){0, 0}) < 0)
			fatal("event_base_once");
	}
}

static void make_apop_timestamp(struct lconn *c)
{
	static uint64_t counter;
	unsigned char rnd[8];
	char hex[17];

	if (!login_env->conf.apop || RAND_bytes(rnd, sizeof(rnd)) != 1) {
		c->a->apop_ts[0] = '\0';
		return;
	}
	for (size_t i = 0; i < sizeof(rnd); i++)
		snprintf(hex + 2 * i, 3, "%02x", rnd[i]);
	snprintf(c->a->apop_ts, sizeof(c->a->apop_ts), "<%s.%llu@%s>", hex,
	         (unsigned long long)++counter, login_env->conf.hostname);
}

static void greet(struct lconn *c)
{
	login_set_state(c, LS_AUTH);
	make_apop_timestamp(c);
	if (c->a->apop_ts[0] != '\0')
		client_reply(c->bev, "+OK %s Gannet POP3 server ready %s", login_env->conf.hostname,
		             c->a->apop_ts);
	else
		client_reply(c->bev, "+OK %s Gannet POP3 server ready", login_env->conf.hostname);
}

/* Channel binding data of a finished TLS handshake (RFC 5929, RFC 9266): tls-exporter on TLS
 * 1.3; tls-unique on TLS 1.2, and only when the session was not resumed without the extended
 * master secret (RFC 7677 §4, S-118). */
static void compute_binding(struct lconn *c, SSL *ssl)
{
	static const char label[] = "EXPORTER-Channel-Binding";

	c->a->cb_len = 0;
	c->a->cb_type[0] = '\0';
	if (SSL_version(ssl) >= TLS1_3_VERSION) {
		if (SSL_export_keying_material(ssl, c->a->cb, 32, label, sizeof(label) - 1, NULL, 0,
		                               0) == 1) {
			c->a->cb_len = 32;
			snprintf(c->a->cb_type, sizeof(c->a->cb_type), "tls-exporter");
		}
		return;
	}
	if (SSL_session_reused(ssl) && SSL_get_extms_support(ssl) != 1)
		return;
	/* tls-unique is the first Finished message: the client's in a full handshake. */
	c->a->cb_len = SSL_session_reused(ssl)
	                   ? SSL_get_finished(ssl, c->a->cb, sizeof(c->a->cb))
	                   : SSL_get_peer_finished(ssl, c->a->cb, sizeof(c->a->cb));
	if (c->a->cb_len == 0 || c->a->cb_len > sizeof(c->a->cb))
		c->a->cb_len = 0;
	else
		snprintf(c->a->cb_type, sizeof(c->a->cb_type), "tls-unique");
}

static void conn_read_cb(struct bufferevent *bev, void *arg)
{
	login_process_input(arg);
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
		struct timeval idle = client_tv(conf_idle_timeout(&login_env->conf));
		struct timeval stall = client_tv(WRITE_STALL_TIMEOUT_DEFAULT);

		c->tls = true;
		tls_describe(ssl, c->a->tlsdesc, sizeof(c->a->tlsdesc));
		compute_binding(c, ssl);
		log_info("session=%s ip=%s event=tls version=%s", c->session, c->ip, c->a->tlsdesc);
		bufferevent_set_timeouts(c->bev, &idle, &stall);
		/* After STLS the greeting is not repeated (RFC 2595 §4); on port 995 it comes now.
		 */
		if (c->stls)
			login_set_state(c, LS_AUTH);
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
	login_set_state(c, LS_HANDSHAKE);
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

void login_handover(struct lconn *c, const unsigned char *token, size_t toklen)
{
	struct evbuffer *in = bufferevent_get_input(c->bev);
	unsigned char input[HANDOVER_INPUT_MAX];
	size_t inlen = evbuffer_get_length(in);
	int sv[2], pass_fd;

	if (inlen > sizeof(input)) {
		lang_reply(c->bev, c->lang, TXT_PIPELINED_LOGIN);
		login_close_after_flush(c);
		return;
	}
	evbuffer_remove(in, input, inlen);
	if (c->tls) {
		if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, sv) < 0) {
			log_warn("socketpair");
			lang_reply(c->bev, c->lang, TXT_INTERNAL_TEMP);
			login_close_after_flush(c);
			return;
		}
		pass_fd = sv[0];
	} else {
		pass_fd = c->fd;
	}
	ipc_msg_init(&login_msgbuf, MSG_HANDOVER);
	ipc_put_u64(&login_msgbuf, c->conn_id);
	ipc_put_data(&login_msgbuf, token, toklen);
	ipc_put_str(&login_msgbuf, c->session);
	ipc_put_str(&login_msgbuf, c->ip);
	ipc_put_str(&login_msgbuf, c->tls ? c->a->tlsdesc : "");
	ipc_put_u32(&login_msgbuf, c->utf8);
	ipc_put_str(&login_msgbuf, lang_tag(c->lang));
	ipc_put_data(&login_msgbuf, input, inlen);
	ipc_queue_send(master_q, &login_msgbuf, pass_fd);
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
	free_auth(c);
	login_set_state(c, LS_RELAY);
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
		if (c->state == LS_WAIT_AUTH && c->a->req_id == req_id)
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
		return;        /* the client left while its password was being checked */
	c->a->in_sasl = false; /* the auth process closed the exchange */
	if (result == AUTH_OK && toklen == AUTH_TOKEN_LEN) {
		log_info("session=%s ip=%s event=auth_ok user=%s method=%s tls=%s", c->session,
		         c->ip, user, c->a->mech, c->tls ? c->a->tlsdesc : "no");
		if (final_len > 0) {
			/* POP3 has no "additional data with success": the data goes out as a
			 * challenge, the client answers with an empty line (S-100). */
			memcpy(c->a->token, token, AUTH_TOKEN_LEN);
			login_send_challenge(c, final, final_len);
			login_set_state(c, LS_SASL_FINAL);
			login_process_input(c);
			return;
		}
		login_handover(c, token, toklen);
		return;
	}
	login_set_state(c, LS_AUTH);
	if (result == AUTH_TEMPFAIL)
		lang_reply(c->bev, c->lang, TXT_AUTH_TEMPFAIL);
	else if (result == AUTH_BLOCKED)
		lang_reply(c->bev, c->lang, TXT_AUTH_BLOCKED);
	else
		lang_reply(c->bev, c->lang, TXT_AUTH_FAILED);
	login_process_input(c);
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
	if ((c = find_req(req_id)) == NULL || !c->a->in_sasl)
		return;
	login_send_challenge(c, data, len);
	login_set_state(c, LS_SASL);
	login_process_input(c);
}

static void auth_cb(evutil_socket_t fd, short what, void *arg)
{
	for (int i = 0; i < 64; i++) {
		int r = ipc_recv(fd, &login_msgbuf);
		if (r < 0 && (errno == EAGAIN || errno == EINTR))
			return;
		if (r <= 0) {
			/* The auth process died; the master starts a new one and sends us a new
			 * channel. Logins waiting for an answer get [SYS/TEMP]. */
			log_warnx("event=auth_channel_lost");
			event_free(auth_ev);
			ipc_queue_free(login_auth_q);
			close(auth_fd);
			auth_ev = NULL;
			login_auth_q = NULL;
			auth_fd = -1;
			for (struct lconn *c = conns, *n; c != NULL; c = n) {
				n = c->next;
				if (c->a != NULL) /* the exchanges died with the process */
					c->a->in_sasl = false;
				if (c->state == LS_WAIT_AUTH || c->state == LS_SASL ||
				    c->state == LS_SASL_FINAL) {
					explicit_bzero(c->a->token, sizeof(c->a->token));
					login_set_state(c, LS_AUTH);
					lang_reply(c->bev, c->lang, TXT_AUTH_TEMPFAIL);
					login_process_input(c);
				}
			}
			return;
		}
		if (login_msgbuf.fd >= 0) {
			close(login_msgbuf.fd);
			login_msgbuf.fd = -1;
		}
		if (login_msgbuf.type == MSG_AUTH_RES)
			auth_res(&login_msgbuf);
		else if (login_msgbuf.type == MSG_SASL_CHALLENGE)
			sasl_challenge(&login_msgbuf);
		else
			log_warnx("event=bad_message from=auth type=%u", login_msgbuf.type);
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
		ipc_queue_free(login_auth_q);
		close(auth_fd);
	}
	auth_fd = m->fd;
	m->fd = -1;
	login_auth_q = ipc_queue_new(base, auth_fd);
	auth_ev = event_new(base, auth_fd, EV_READ | EV_PERSIST, auth_cb, NULL);
	if (login_auth_q == NULL || auth_ev == NULL || event_add(auth_ev, NULL) < 0)
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
	if (c == NULL || (c->a = calloc(1, sizeof(*c->a))) == NULL)
		fatal("calloc");
	if (ipc_get_u64(m, &c->conn_id) < 0 || ipc_get_u32(m, &implicit) < 0 ||
	    ipc_get_str(m, c->session, sizeof(c->session)) < 0 || ipc_end(m) < 0 || fd < 0) {
		log_warnx("event=bad_message from=master type=conn");
		if (fd >= 0)
			close(fd);
		free(c->a);
		free(c);
		return;
	}
	c->fd = fd;
	if (getpeername(fd, (struct sockaddr *)&ss, &sl) < 0) {
		snprintf(c->ip, sizeof(c->ip), "unknown");
	} else {
		netaddr_ntop((struct sockaddr *)&ss, c->ip, sizeof(c->ip));
		for (size_t i = 0; i < login_env->conf.n_trusted; i++)
			if (netmask_match(&login_env->conf.trusted[i], (struct sockaddr *)&ss))
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
		struct timeval idle = client_tv(conf_idle_timeout(&login_env->conf));
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
		int r = ipc_recv(fd, &login_msgbuf);
		if (r < 0 && (errno == EAGAIN || errno == EINTR))
			return;
		if (r <= 0)
			exit(0); /* the master is gone */
		switch (login_msgbuf.type) {
		case MSG_CONN:
			new_conn(&login_msgbuf);
			break;
		case MSG_AUTH_CLIENT:
			set_auth_channel(&login_msgbuf);
			break;
		case MSG_SHUTDOWN:
			draining = true;
			maybe_exit();
			break;
		default:
			log_warnx("event=bad_message from=master type=%u", login_msgbuf.type);
		}
		if (login_msgbuf.fd >= 0) {
			close(login_msgbuf.fd);
			login_msgbuf.fd = -1;
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

	login_env = e;
	signal(SIGPIPE, SIG_IGN);
	signal(SIGHUP, SIG_IGN);
	if (login_env->conf.have_tls &&
	    (ssl_ctx = tls_server_ctx(&login_env->conf, err, sizeof(err))) == NULL)
		fatalx("%s", err);
	if (ssl_ctx != NULL && login_env->have_ticket_keys &&
	    tls_set_ticket_keys(ssl_ctx, login_env->ticket_keys, sizeof(login_env->ticket_keys)) <
	        0)
		fatalx("cannot set the TLS session ticket keys");
	explicit_bzero(login_env->ticket_keys, sizeof(login_env->ticket_keys));
	child_drop_privileges(login_env->conf.login_user, "login_user",
	                      login_env->conf.login_chroot);
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
	if (login_env->conf.isolation == ISOLATION_PER_CONNECTION)
		draining = true;
	event_base_dispatch(base);
	fatalx("event loop ended");
}
