/* The auth process: the only reader of the user database. Verifies passwords on a small thread
 * pool (a slow hash never stalls the event loop) and issues one-time tokens that the master
 * redeems for the user record when the login process hands a session over. */
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <time.h>
#include <unistd.h>

#include <event2/event.h>
#include <openssl/crypto.h>

#include "child.h"
#include "ipc.h"
#include "log.h"
#include "pwhash.h"
#include "userdb.h"

/* Requests waiting for a hashing thread; beyond this, logins get [SYS/TEMP] at once rather than
 * queueing for minutes behind an attacker's flood. */
#define AUTH_QUEUE_MAX 1024
/* Unredeemed tokens kept at once. */
#define TOKENS_MAX 4096
/* Login channels (one per login process; per-connection mode has one per session). */
#define CLIENTS_MAX (SESSIONS_MAX_MAX + WORKERS_MAX)

struct client {
	uint32_t login_id;
	int fd;
	struct event *ev;
	struct ipc_queue *q;
	struct client *next;
};

struct request {
	struct client *client; /* NULL once the login channel went away */
	uint32_t req_id;
	char user[USERNAME_MAX + 1];
	char password[PASSWORD_MAX + 1];
	size_t pwlen;
	char ip[64];
	char session[40];
	/* results */
	enum auth_result result;
	struct userdb_entry entry;
	char maildir[GANNET_PATH_MAX];
	char reason[256]; /* for the log only: may quote file paths */
	struct request *next;
};

struct token {
	bool used;
	unsigned char token[AUTH_TOKEN_LEN];
	uint32_t login_id;
	time_t expires;
	char user[USERNAME_MAX + 1];
	uid_t uid;
	gid_t gid;
	char maildir[GANNET_PATH_MAX];
};

static struct child_env *env;
static struct event_base *base;
static struct ipc_queue *master_q;
static struct client *clients;
static size_t n_clients;
static struct token *tokens;
static bool draining;

static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t cond = PTHREAD_COND_INITIALIZER;
static struct request *todo_head, *todo_tail, *done_head;
static size_t todo_len, in_flight;
static int done_efd;
static struct ipc_msg msgbuf;

static void set_reason(struct request *r, const char *why)
{
	log_sanitize(r->reason, sizeof(r->reason), why, strlen(why));
}

static void verify(struct request *r)
{
	const char *error = NULL;
	int found = userdb_lookup(env->conf.userdb, r->user, &r->entry, &error);

	if (found < 0) {
		r->result = AUTH_TEMPFAIL;
		set_reason(r, error);
		pwhash_dummy_verify(r->password, r->pwlen);
		return;
	}
	if (found == 0) {
		/* The same work as a real check, so timing does not tell which users exist. */
		pwhash_dummy_verify(r->password, r->pwlen);
		r->result = AUTH_FAIL;
		set_reason(r, "unknown_user");
		return;
	}
	switch (pwhash_verify(r->password, r->pwlen, r->entry.pwhash, &error)) {
	case 1:
		break;
	case 0:
		r->result = AUTH_FAIL;
		set_reason(r, "wrong_password");
		return;
	default:
		r->result = AUTH_FAIL;
		set_reason(r, "unusable_hash");
		log_warnx("session=%s ip=%s event=bad_hash user=%s reason=\"%s\"", r->session,
		          r->ip, r->user, error);
		return;
	}
	if (userdb_mail_path(r->entry.mail[0] ? r->entry.mail : env->conf.mail_location, &r->entry,
	                     r->maildir, sizeof(r->maildir), &error) < 0) {
		r->result = AUTH_TEMPFAIL;
		set_reason(r, error);
		return;
	}
	r->result = AUTH_OK;
}

static void *worker(void *arg)
{
	for (;;) {
		struct request *r;
		uint64_t one = 1;

		pthread_mutex_lock(&lock);
		while (todo_head == NULL)
			pthread_cond_wait(&cond, &lock);
		r = todo_head;
		todo_head = r->next;
		if (todo_head == NULL)
			todo_tail = NULL;
		todo_len--;
		pthread_mutex_unlock(&lock);

		verify(r);
		explicit_bzero(r->password, sizeof(r->password));

		pthread_mutex_lock(&lock);
		r->next = done_head;
		done_head = r;
		pthread_mutex_unlock(&lock);
		if (write(done_efd, &one, sizeof(one)) < 0 && errno != EAGAIN)
			log_warn("eventfd write");
	}
	return NULL;
}

static struct token *issue_token(struct request *r)
{
	time_t now = time(NULL);
	struct token *t = NULL;

	for (size_t i = 0; i < TOKENS_MAX; i++) {
		if (tokens[i].used && tokens[i].expires < now) {
			explicit_bzero(&tokens[i], sizeof(tokens[i]));
		}
		if (!tokens[i].used && t == NULL)
			t = &tokens[i];
	}
	if (t == NULL)
		return NULL;
	t->used = true;
	arc4random_buf(t->token, sizeof(t->token));
	t->login_id = r->client->login_id;
	t->expires = now + AUTH_TOKEN_TTL;
	snprintf(t->user, sizeof(t->user), "%s", r->entry.user);
	t->uid = r->entry.uid;
	t->gid = r->entry.gid;
	snprintf(t->maildir, sizeof(t->maildir), "%s", r->maildir);
	return t;
}

static void reply(struct request *r)
{
	struct token *t = NULL;
	enum auth_result result = r->result;

	if (r->client == NULL)
		return;
	if (result == AUTH_OK && (t = issue_token(r)) == NULL) {
		result = AUTH_TEMPFAIL;
		set_reason(r, "token_table_full");
	}
	if (result != AUTH_OK)
		log_info("session=%s ip=%s event=auth_failed user=%s reason=\"%s\"", r->session,
		         r->ip, r->user, r->reason);
	ipc_msg_init(&msgbuf, MSG_AUTH_RES);
	ipc_put_u32(&msgbuf, r->req_id);
	ipc_put_u32(&msgbuf, result);
	if (t != NULL)
		ipc_put_data(&msgbuf, t->token, sizeof(t->token));
	else
		ipc_put_data(&msgbuf, "", 0);
	ipc_queue_send(r->client->q, &msgbuf, -1);
}

static void done_cb(evutil_socket_t fd, short what, void *arg)
{
	struct request *list;
	uint64_t n;

	if (read(done_efd, &n, sizeof(n)) < 0 && errno != EAGAIN)
		log_warn("eventfd read");
	pthread_mutex_lock(&lock);
	list = done_head;
	done_head = NULL;
	pthread_mutex_unlock(&lock);
	while (list != NULL) {
		struct request *r = list;
		list = r->next;
		reply(r);
		explicit_bzero(r, sizeof(*r));
		free(r);
		in_flight--;
	}
}

static void send_auth_res(struct client *c, uint32_t req_id, enum auth_result res)
{
	ipc_msg_init(&msgbuf, MSG_AUTH_RES);
	ipc_put_u32(&msgbuf, req_id);
	ipc_put_u32(&msgbuf, res);
	ipc_put_data(&msgbuf, "", 0);
	ipc_queue_send(c->q, &msgbuf, -1);
}

static void handle_auth_req(struct client *c, struct ipc_msg *m)
{
	struct request *r = calloc(1, sizeof(*r));
	const void *pw;
	size_t pwlen;

	if (r == NULL) {
		log_warn("calloc");
		return;
	}
	if (ipc_get_u32(m, &r->req_id) < 0 || ipc_get_str(m, r->user, sizeof(r->user)) < 0 ||
	    ipc_get_data(m, &pw, &pwlen) < 0 || ipc_get_str(m, r->ip, sizeof(r->ip)) < 0 ||
	    ipc_get_str(m, r->session, sizeof(r->session)) < 0 || ipc_end(m) < 0 ||
	    pwlen > PASSWORD_MAX) {
		log_warnx("event=bad_message from=login type=auth_req");
		explicit_bzero(m->data, m->len);
		free(r);
		return;
	}
	memcpy(r->password, pw, pwlen);
	r->pwlen = pwlen;
	explicit_bzero(m->data, m->len);
	r->client = c;
	pthread_mutex_lock(&lock);
	if (todo_len >= AUTH_QUEUE_MAX) {
		pthread_mutex_unlock(&lock);
		log_warnx("session=%s ip=%s event=auth_failed reason=queue_full", r->session,
		          r->ip);
		send_auth_res(c, r->req_id, AUTH_TEMPFAIL);
		explicit_bzero(r, sizeof(*r));
		free(r);
		return;
	}
	if (todo_tail != NULL)
		todo_tail->next = r;
	else
		todo_head = r;
	todo_tail = r;
	todo_len++;
	in_flight++;
	pthread_cond_signal(&cond);
	pthread_mutex_unlock(&lock);
}

static void detach_client(struct client *c)
{
	struct client **pp = &clients;

	/* Requests still being hashed must not answer into a freed channel. */
	pthread_mutex_lock(&lock);
	for (struct request *r = todo_head; r != NULL; r = r->next)
		if (r->client == c)
			r->client = NULL;
	for (struct request *r = done_head; r != NULL; r = r->next)
		if (r->client == c)
			r->client = NULL;
	pthread_mutex_unlock(&lock);
	while (*pp != NULL && *pp != c)
		pp = &(*pp)->next;
	if (*pp != NULL)
		*pp = c->next;
	event_free(c->ev);
	ipc_queue_free(c->q);
	close(c->fd);
	free(c);
	n_clients--;
}

static void maybe_exit(void)
{
	if (draining && clients == NULL && in_flight == 0)
		exit(0);
}

static void client_cb(evutil_socket_t fd, short what, void *arg)
{
	struct client *c = arg;

	for (int i = 0; i < 64; i++) {
		int r = ipc_recv(fd, &msgbuf);
		if (r < 0 && (errno == EAGAIN || errno == EINTR))
			return;
		if (r <= 0) {
			detach_client(c);
			maybe_exit();
			return;
		}
		if (msgbuf.fd >= 0) {
			close(msgbuf.fd);
			msgbuf.fd = -1;
		}
		if (msgbuf.type == MSG_AUTH_REQ)
			handle_auth_req(c, &msgbuf);
		else
			log_warnx("event=bad_message from=login type=%u", msgbuf.type);
	}
}

static void add_client(struct ipc_msg *m)
{
	uint32_t login_id;
	struct client *c;

	if (ipc_get_u32(m, &login_id) < 0 || ipc_end(m) < 0 || m->fd < 0 ||
	    n_clients >= CLIENTS_MAX) {
		log_warnx("event=bad_message from=master type=auth_client");
		if (m->fd >= 0)
			close(m->fd);
		return;
	}
	c = calloc(1, sizeof(*c));
	if (c == NULL)
		fatal("calloc");
	c->login_id = login_id;
	c->fd = m->fd;
	c->q = ipc_queue_new(base, c->fd);
	c->ev = event_new(base, c->fd, EV_READ | EV_PERSIST, client_cb, c);
	if (c->q == NULL || c->ev == NULL)
		fatal("event_new");
	event_add(c->ev, NULL);
	c->next = clients;
	clients = c;
	n_clients++;
}

static void redeem(struct ipc_msg *m)
{
	uint32_t mreq, login_id;
	const void *tok;
	size_t toklen;
	struct token *t = NULL;
	time_t now = time(NULL);

	if (ipc_get_u32(m, &mreq) < 0 || ipc_get_u32(m, &login_id) < 0 ||
	    ipc_get_data(m, &tok, &toklen) < 0 || ipc_end(m) < 0) {
		log_warnx("event=bad_message from=master type=redeem");
		return;
	}
	for (size_t i = 0; i < TOKENS_MAX && toklen == AUTH_TOKEN_LEN; i++) {
		if (tokens[i].used && tokens[i].login_id == login_id && tokens[i].expires >= now &&
		    CRYPTO_memcmp(tokens[i].token, tok, AUTH_TOKEN_LEN) == 0) {
			t = &tokens[i];
			break;
		}
	}
	ipc_msg_init(&msgbuf, MSG_REDEEM_RES);
	ipc_put_u32(&msgbuf, mreq);
	ipc_put_u32(&msgbuf, t != NULL);
	ipc_put_str(&msgbuf, t ? t->user : "");
	ipc_put_u32(&msgbuf, t ? (uint32_t)t->uid : (uint32_t)-1);
	ipc_put_u32(&msgbuf, t ? (uint32_t)t->gid : (uint32_t)-1);
	ipc_put_str(&msgbuf, t ? t->maildir : "");
	ipc_queue_send(master_q, &msgbuf, -1);
	if (t != NULL)
		explicit_bzero(t, sizeof(*t)); /* a token is good for one handover only */
}

static void master_cb(evutil_socket_t fd, short what, void *arg)
{
	for (int i = 0; i < 64; i++) {
		int r = ipc_recv(fd, &msgbuf);
		if (r < 0 && (errno == EAGAIN || errno == EINTR))
			return;
		if (r <= 0)
			exit(0); /* the master is gone: nothing to serve */
		switch (msgbuf.type) {
		case MSG_AUTH_CLIENT:
			add_client(&msgbuf);
			break;
		case MSG_REDEEM:
			redeem(&msgbuf);
			break;
		case MSG_SHUTDOWN:
			draining = true;
			maybe_exit();
			break;
		default:
			log_warnx("event=bad_message from=master type=%u", msgbuf.type);
			if (msgbuf.fd >= 0)
				close(msgbuf.fd);
		}
	}
}

static void term_cb(evutil_socket_t sig, short what, void *arg)
{
	exit(0);
}

void auth_main(struct child_env *e)
{
	struct event *ev;

	env = e;
	signal(SIGPIPE, SIG_IGN);
	signal(SIGHUP, SIG_IGN);
	child_drop_privileges(env->conf.auth_user, "auth_user", "");
	tokens = calloc(TOKENS_MAX, sizeof(*tokens));
	base = event_base_new();
	done_efd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
	if (tokens == NULL || base == NULL || done_efd < 0)
		fatal("auth start-up");
	master_q = ipc_queue_new(base, CHILD_CHANNEL_FD);
	ev = event_new(base, CHILD_CHANNEL_FD, EV_READ | EV_PERSIST, master_cb, NULL);
	if (master_q == NULL || ev == NULL || event_add(ev, NULL) < 0)
		fatal("event_new");
	ev = event_new(base, done_efd, EV_READ | EV_PERSIST, done_cb, NULL);
	if (ev == NULL || event_add(ev, NULL) < 0)
		fatal("event_new");
	ev = evsignal_new(base, SIGTERM, term_cb, NULL);
	if (ev == NULL || event_add(ev, NULL) < 0)
		fatal("event_new");
	for (long i = 0; i < env->conf.auth_threads; i++) {
		pthread_t t;
		if (pthread_create(&t, NULL, worker, NULL) != 0)
			fatalx("pthread_create failed");
		pthread_detach(t);
	}
	event_base_dispatch(base);
	fatalx("event loop ended");
}
