/* The auth process: the only reader of the user database and the security store. Runs every
 * credential check (authcheck.c) on a small thread pool, so a slow hash never stalls the event
 * loop; keeps the SASL exchanges between steps; keeps the brute-force table (penalty.c) and
 * delays failed replies; and issues one-time tokens that the master redeems for the user record
 * when the login process hands a session over. */
#include <arpa/inet.h>
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

#include "authcheck.h"
#include "child.h"
#include "ipc.h"
#include "log.h"
#include "netaddr.h"
#include "pamworker.h"
#include "penalty.h"
#include "userdb.h"

/* Requests waiting for a hashing thread; beyond this, logins get [SYS/TEMP] at once rather than
 * queueing for minutes behind an attacker's flood. */
#define AUTH_QUEUE_MAX 1024
/* Unredeemed tokens kept at once. */
#define TOKENS_MAX 4096
/* Hash buckets of the token table, by the token's first bytes (random, chosen by us): twice the
 * slots, so a chain holds one token or none almost always and issue and redeem are O(1). */
#define TOKEN_BUCKETS (2 * TOKENS_MAX)
/* Login channels (one per login process; per-connection mode has one per session). */
#define CLIENTS_MAX (SESSIONS_MAX_MAX + WORKERS_MAX)
/* SASL exchanges open at once across all login processes; one per connection in
 * AUTHORIZATION at most, so this matches the session limit. */
#define EXCHANGES_MAX SESSIONS_MAX_MAX
/* Text a control command may return (gannetctl penalty list): fits one IPC message. */
#define CTL_REPLY_MAX (IPC_MSG_MAX - 256)
/* Entries penalty list shows at most. */
#define CTL_PENALTY_LIST_MAX 200

struct exchange;

struct client {
	uint32_t login_id;
	int fd;
	struct event *ev;
	struct ipc_queue *q;
	struct exchange *exchanges;
	struct client *next;
};

/* One SASL exchange between AUTH and its last reply. BUSY while a worker runs a step. */
struct exchange {
	uint32_t req_id;
	struct sasl_state *st;
	bool busy;
	bool aborted; /* the client cancelled while a step was running: free when it returns */
	/* What earlier steps learnt, carried to the next step's job. */
	char ip[64];
	char session[40];
	char user[USERNAME_MAX + 1];
	struct userdb_entry entry;
	char maildir[GANNET_PATH_MAX];
	enum auth_result result;
	char reason[256];
	struct exchange *next;
};

struct request {
	struct client *client; /* NULL once the login channel went away */
	uint32_t req_id;
	struct exchange *ex; /* SASL only */
	struct auth_job job;
	struct event *delay; /* failed reply waiting out its penalty delay */
	struct request *next;
	struct request *prev_delayed, *next_delayed;
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
	uint32_t expire, login_delay; /* the user file's policies, POLICY_WIRE_* */
	/* table links (slot numbers, -1 = none): bucket chain or free list, and issue order */
	int32_t hnext;
	int32_t older, newer;
};

static struct child_env *env;
static struct event_base *base;
static struct ipc_queue *master_q;
static struct client *clients;
static size_t n_clients, n_exchanges;
static struct token *tokens;
/* Token table: bucket heads, free slots, and the issue order (all tokens live AUTH_TOKEN_TTL, so
 * the oldest expires first and expiry never needs a scan). */
static int32_t token_buckets[TOKEN_BUCKETS];
static int32_t tokens_free = -1, tokens_oldest = -1, tokens_newest = -1;
static bool tokens_ready;
static bool draining;
static struct penalty *penalty;
static struct request *delayed; /* failed replies waiting out their delay */

static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t cond = PTHREAD_COND_INITIALIZER;
static struct request *todo_head, *todo_tail, *done_head;
static size_t todo_len, in_flight;
static int done_efd;
static struct ipc_msg msgbuf;

static void maybe_exit(void);

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

		authcheck_run(&r->job);
		explicit_bzero(r->job.input, sizeof(r->job.input));

		pthread_mutex_lock(&lock);
		r->next = done_head;
		done_head = r;
		pthread_mutex_unlock(&lock);
		if (write(done_efd, &one, sizeof(one)) < 0 && errno != EAGAIN)
			log_warn("eventfd write");
	}
	return NULL;
}

static size_t token_bucket(const void *token)
{
	uint32_t h;

	memcpy(&h, token, sizeof(h));
	return h % TOKEN_BUCKETS;
}

static void tokens_init(void)
{
	for (size_t i = 0; i < TOKEN_BUCKETS; i++)
		token_buckets[i] = -1;
	for (int32_t i = TOKENS_MAX - 1; i >= 0; i--) {
		tokens[i].hnext = tokens_free;
		tokens_free = i;
	}
	tokens_ready = true;
}

/* Take slot I out of its bucket and the issue order, wipe it, and make it free. */
static void token_release(int32_t i)
{
	struct token *t = &tokens[i];
	int32_t *pp = &token_buckets[token_bucket(t->token)];

	while (*pp >= 0 && *pp != i)
		pp = &tokens[*pp].hnext;
	if (*pp == i)
		*pp = t->hnext;
	if (t->older >= 0)
		tokens[t->older].newer = t->newer;
	else
		tokens_oldest = t->newer;
	if (t->newer >= 0)
		tokens[t->newer].older = t->older;
	else
		tokens_newest = t->older;
	explicit_bzero(t, sizeof(*t));
	t->hnext = tokens_free;
	tokens_free = i;
}

static struct token *issue_token(struct request *r)
{
	time_t now = time(NULL);
	struct token *t;
	int32_t i;
	size_t b;

	if (!tokens_ready)
		tokens_init();
	while (tokens_oldest >= 0 && tokens[tokens_oldest].expires < now)
		token_release(tokens_oldest);
	if (tokens_free < 0)
		return NULL;
	i = tokens_free;
	t = &tokens[i];
	tokens_free = t->hnext;
	t->used = true;
	arc4random_buf(t->token, sizeof(t->token));
	t->login_id = r->client->login_id;
	t->expires = now + AUTH_TOKEN_TTL;
	snprintf(t->user, sizeof(t->user), "%s", r->job.entry.user);
	t->uid = r->job.entry.uid;
	t->gid = r->job.entry.gid;
	snprintf(t->maildir, sizeof(t->maildir), "%s", r->job.maildir);
	t->expire = policy_to_wire(r->job.entry.has_expire, r->job.entry.expire_days);
	t->login_delay = policy_to_wire(r->job.entry.has_login_delay, r->job.entry.login_delay);
	b = token_bucket(t->token);
	t->hnext = token_buckets[b];
	token_buckets[b] = i;
	t->newer = -1;
	t->older = tokens_newest;
	if (tokens_newest >= 0)
		tokens[tokens_newest].newer = i;
	else
		tokens_oldest = i;
	tokens_newest = i;
	return t;
}

/* Trusted networks (local relays, webmail) are exempt from the brute-force defence. */
static bool ip_trusted(const char *ip)
{
	struct sockaddr_storage ss;
	struct sockaddr_in *sin = (struct sockaddr_in *)&ss;
	struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *)&ss;

	memset(&ss, 0, sizeof(ss));
	if (inet_pton(AF_INET, ip, &sin->sin_addr) == 1)
		ss.ss_family = AF_INET;
	else if (inet_pton(AF_INET6, ip, &sin6->sin6_addr) == 1)
		ss.ss_family = AF_INET6;
	else
		return false;
	for (size_t i = 0; i < env->conf.n_trusted; i++)
		if (netmask_match(&env->conf.trusted[i], (struct sockaddr *)&ss))
			return true;
	return false;
}

static void send_result(struct client *c, uint32_t req_id, enum auth_result res,
                        const struct token *t, const char *user, const void *final,
                        size_t final_len)
{
	ipc_msg_init(&msgbuf, MSG_AUTH_RES);
	ipc_put_u32(&msgbuf, req_id);
	ipc_put_u32(&msgbuf, res);
	ipc_put_data(&msgbuf, t ? t->token : (const unsigned char *)"", t ? AUTH_TOKEN_LEN : 0);
	ipc_put_str(&msgbuf, user);
	ipc_put_data(&msgbuf, final ? final : "", final_len);
	ipc_queue_send(c->q, &msgbuf, -1);
}

static void exchange_save(struct exchange *ex, const struct auth_job *j)
{
	snprintf(ex->user, sizeof(ex->user), "%s", j->user);
	ex->entry = j->entry;
	snprintf(ex->maildir, sizeof(ex->maildir), "%s", j->maildir);
	ex->result = j->result;
	snprintf(ex->reason, sizeof(ex->reason), "%s", j->reason);
}

static void exchange_restore(const struct exchange *ex, struct auth_job *j)
{
	snprintf(j->ip, sizeof(j->ip), "%s", ex->ip);
	snprintf(j->session, sizeof(j->session), "%s", ex->session);
	snprintf(j->user, sizeof(j->user), "%s", ex->user);
	j->entry = ex->entry;
	snprintf(j->maildir, sizeof(j->maildir), "%s", ex->maildir);
	j->result = ex->result;
	snprintf(j->reason, sizeof(j->reason), "%s", ex->reason);
}

static void exchange_unlink(struct client *c, struct exchange *ex)
{
	for (struct exchange **pp = &c->exchanges; *pp != NULL; pp = &(*pp)->next) {
		if (*pp == ex) {
			*pp = ex->next;
			break;
		}
	}
	authcheck_sasl_free(ex->st);
	free(ex);
	n_exchanges--;
}

static void request_free(struct request *r)
{
	free(r->job.out);
	explicit_bzero(r, sizeof(*r));
	free(r);
}

static void delayed_unlink(struct request *r)
{
	if (r->prev_delayed != NULL)
		r->prev_delayed->next_delayed = r->next_delayed;
	else
		delayed = r->next_delayed;
	if (r->next_delayed != NULL)
		r->next_delayed->prev_delayed = r->prev_delayed;
}

static void finish_failure(struct request *r)
{
	struct auth_job *j = &r->job;

	if (r->client != NULL)
		send_result(r->client, r->req_id, j->result, NULL, "", NULL, 0);
}

static void delay_cb(evutil_socket_t fd, short what, void *arg)
{
	struct request *r = arg;

	delayed_unlink(r);
	event_free(r->delay);
	finish_failure(r);
	request_free(r);
	maybe_exit();
}

static void reply(struct request *r)
{
	struct auth_job *j = &r->job;
	struct token *t = NULL;
	time_t now = time(NULL);
	bool trusted = ip_trusted(j->ip);

	if (r->ex != NULL) {
		r->ex->busy = false;
		if (r->ex->aborted || r->client == NULL) {
			/* Cancelled while the step ran; the client was told already. */
			if (r->client != NULL)
				exchange_unlink(r->client, r->ex);
			else {
				authcheck_sasl_free(r->ex->st);
				free(r->ex);
				n_exchanges--;
			}
			request_free(r);
			return;
		}
		if (j->challenge) {
			exchange_save(r->ex, j);
			ipc_msg_init(&msgbuf, MSG_SASL_CHALLENGE);
			ipc_put_u32(&msgbuf, r->req_id);
			ipc_put_data(&msgbuf, j->out ? j->out : (unsigned char *)"", j->out_len);
			ipc_queue_send(r->client->q, &msgbuf, -1);
			request_free(r);
			return;
		}
		exchange_unlink(r->client, r->ex);
		r->ex = NULL;
	}
	if (r->client == NULL) {
		request_free(r);
		return;
	}
	if (j->result == AUTH_OK && (t = issue_token(r)) == NULL) {
		j->result = AUTH_TEMPFAIL;
		snprintf(j->reason, sizeof(j->reason), "token_table_full");
	}
	if (j->result == AUTH_OK) {
		log_info("session=%s ip=%s event=auth_ok user=%s method=%s", j->session, j->ip,
		         j->entry.user, j->method);
		if (!trusted)
			penalty_success(penalty, j->ip, j->entry.user, now);
		send_result(r->client, r->req_id, AUTH_OK, t, j->entry.user, j->out, j->out_len);
		request_free(r);
		return;
	}
	{
		char user[2 * USERNAME_MAX + 1];
		log_sanitize(user, sizeof(user), j->user, strlen(j->user));
		/* A server-side fault is not the client's failure: its own event, so fail2ban
		 * never bans clients for a broken user file. */
		log_info("session=%s ip=%s event=%s user=%s method=%s reason=\"%s\"", j->session,
		         j->ip, j->result == AUTH_TEMPFAIL ? "auth_tempfail" : "auth_failed", user,
		         j->method, j->reason);
	}
	if (j->result == AUTH_FAIL && !trusted) {
		long ms = penalty_failure(penalty, j->ip, j->user, now);

		if (ms > 0) {
			struct timeval tv = {ms / 1000, (ms % 1000) * 1000};

			r->delay = evtimer_new(base, delay_cb, r);
			if (r->delay != NULL && evtimer_add(r->delay, &tv) == 0) {
				r->next_delayed = delayed;
				r->prev_delayed = NULL;
				if (delayed != NULL)
					delayed->prev_delayed = r;
				delayed = r;
				return;
			}
			if (r->delay != NULL)
				event_free(r->delay);
		}
	}
	finish_failure(r);
	request_free(r);
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
		in_flight--;
		reply(r);
	}
	maybe_exit();
}

/* Queue R for a worker; false (and R untouched) when the queue is full. */
static bool enqueue(struct request *r)
{
	pthread_mutex_lock(&lock);
	if (todo_len >= AUTH_QUEUE_MAX) {
		pthread_mutex_unlock(&lock);
		return false;
	}
	r->next = NULL;
	if (todo_tail != NULL)
		todo_tail->next = r;
	else
		todo_head = r;
	todo_tail = r;
	todo_len++;
	in_flight++;
	pthread_cond_signal(&cond);
	pthread_mutex_unlock(&lock);
	return true;
}

/* Refuse at once a client address that failed too often (not trusted ones). */
static bool refuse_blocked(struct client *c, uint32_t req_id, const char *ip, const char *session)
{
	long retry = 0;

	if (ip_trusted(ip) || penalty_blocked(penalty, ip, time(NULL), &retry) == 0)
		return false;
	log_info("session=%s ip=%s event=auth_blocked retry_after=%ld", session, ip, retry);
	send_result(c, req_id, AUTH_BLOCKED, NULL, "", NULL, 0);
	return true;
}

static void handle_auth_req(struct client *c, struct ipc_msg *m)
{
	struct request *r = calloc(1, sizeof(*r));
	struct auth_job *j;
	uint32_t method;
	const void *pw;
	size_t pwlen;

	if (r == NULL) {
		log_warn("calloc");
		return;
	}
	j = &r->job;
	if (ipc_get_u32(m, &r->req_id) < 0 || ipc_get_u32(m, &method) < 0 ||
	    ipc_get_str(m, j->user, sizeof(j->user)) < 0 || ipc_get_data(m, &pw, &pwlen) < 0 ||
	    ipc_get_str(m, j->apop_timestamp, sizeof(j->apop_timestamp)) < 0 ||
	    ipc_get_str(m, j->ip, sizeof(j->ip)) < 0 ||
	    ipc_get_str(m, j->session, sizeof(j->session)) < 0 || ipc_end(m) < 0 ||
	    pwlen > PASSWORD_MAX || (method != AUTH_METHOD_PASS && method != AUTH_METHOD_APOP)) {
		log_warnx("event=bad_message from=login type=auth_req");
		explicit_bzero(m->data, m->len);
		free(r);
		return;
	}
	memcpy(j->input, pw, pwlen);
	j->input_len = pwlen;
	j->has_input = true;
	j->kind = method == AUTH_METHOD_APOP ? JOB_APOP : JOB_PASS;
	explicit_bzero(m->data, m->len);
	r->client = c;
	if (refuse_blocked(c, r->req_id, j->ip, j->session)) {
		request_free(r);
		return;
	}
	if (!enqueue(r)) {
		log_warnx("session=%s ip=%s event=auth_tempfail reason=queue_full", j->session,
		          j->ip);
		send_result(c, r->req_id, AUTH_TEMPFAIL, NULL, "", NULL, 0);
		request_free(r);
	}
}

static struct exchange *find_exchange(struct client *c, uint32_t req_id)
{
	for (struct exchange *ex = c->exchanges; ex != NULL; ex = ex->next)
		if (ex->req_id == req_id)
			return ex;
	return NULL;
}

static void handle_sasl_start(struct client *c, struct ipc_msg *m)
{
	struct request *r = calloc(1, sizeof(*r));
	struct exchange *ex = NULL;
	struct auth_job *j;
	char mech[32], cb_type[32];
	uint32_t has_initial;
	const void *initial, *cb;
	size_t initial_len, cb_len;
	const char *error = NULL;

	if (r == NULL) {
		log_warn("calloc");
		return;
	}
	j = &r->job;
	if (ipc_get_u32(m, &r->req_id) < 0 || ipc_get_str(m, mech, sizeof(mech)) < 0 ||
	    ipc_get_u32(m, &has_initial) < 0 || ipc_get_data(m, &initial, &initial_len) < 0 ||
	    ipc_get_str(m, j->ip, sizeof(j->ip)) < 0 ||
	    ipc_get_str(m, j->session, sizeof(j->session)) < 0 ||
	    ipc_get_str(m, cb_type, sizeof(cb_type)) < 0 || ipc_get_data(m, &cb, &cb_len) < 0 ||
	    ipc_end(m) < 0 || initial_len > sizeof(j->input) ||
	    find_exchange(c, r->req_id) != NULL) {
		log_warnx("event=bad_message from=login type=sasl_start");
		explicit_bzero(m->data, m->len);
		free(r);
		return;
	}
	memcpy(j->input, initial, initial_len);
	j->input_len = initial_len;
	j->has_input = has_initial != 0;
	j->kind = JOB_SASL;
	r->client = c;
	if (refuse_blocked(c, r->req_id, j->ip, j->session)) {
		explicit_bzero(m->data, m->len);
		request_free(r);
		return;
	}
	if (n_exchanges < EXCHANGES_MAX && (ex = calloc(1, sizeof(*ex))) != NULL)
		ex->st = authcheck_sasl_new(mech, cb_type, cb, cb_len, &error);
	explicit_bzero(m->data, m->len); /* CB pointed into it */
	if (ex == NULL || ex->st == NULL) {
		char safe[64];

		log_sanitize(safe, sizeof(safe), mech, strlen(mech));
		log_info("session=%s ip=%s event=%s method=%s reason=\"%s\"", j->session, j->ip,
		         error ? "auth_failed" : "auth_tempfail", safe,
		         error ? error : "too_many_exchanges");
		send_result(c, r->req_id, error ? AUTH_FAIL : AUTH_TEMPFAIL, NULL, "", NULL, 0);
		free(ex);
		request_free(r);
		return;
	}
	ex->req_id = r->req_id;
	snprintf(ex->ip, sizeof(ex->ip), "%s", j->ip);
	snprintf(ex->session, sizeof(ex->session), "%s", j->session);
	ex->busy = true;
	ex->next = c->exchanges;
	c->exchanges = ex;
	n_exchanges++;
	j->sasl = ex->st;
	r->ex = ex;
	if (!enqueue(r)) {
		log_warnx("session=%s ip=%s event=auth_tempfail reason=queue_full", j->session,
		          j->ip);
		send_result(c, r->req_id, AUTH_TEMPFAIL, NULL, "", NULL, 0);
		exchange_unlink(c, ex);
		request_free(r);
	}
}

static void handle_sasl_step(struct client *c, struct ipc_msg *m, bool abort)
{
	struct exchange *ex;
	struct request *r;
	uint32_t req_id;
	const void *data = NULL;
	size_t len = 0;

	if (ipc_get_u32(m, &req_id) < 0 || (!abort && ipc_get_data(m, &data, &len) < 0) ||
	    ipc_end(m) < 0 || len > AUTH_INPUT_MAX) {
		log_warnx("event=bad_message from=login type=sasl_step");
		explicit_bzero(m->data, m->len);
		return;
	}
	if ((ex = find_exchange(c, req_id)) == NULL) {
		explicit_bzero(m->data, m->len);
		return; /* already over (a failure crossed the client's response) */
	}
	if (abort) {
		if (ex->busy)
			ex->aborted = true;
		else
			exchange_unlink(c, ex);
		return;
	}
	if (ex->busy || (r = calloc(1, sizeof(*r))) == NULL) {
		log_warnx("event=bad_message from=login type=sasl_step reason=busy");
		explicit_bzero(m->data, m->len);
		return;
	}
	r->client = c;
	r->req_id = req_id;
	r->ex = ex;
	r->job.kind = JOB_SASL;
	r->job.sasl = ex->st;
	exchange_restore(ex, &r->job);
	memcpy(r->job.input, data, len);
	r->job.input_len = len;
	r->job.has_input = true;
	explicit_bzero(m->data, m->len);
	ex->busy = true;
	if (!enqueue(r)) {
		send_result(c, req_id, AUTH_TEMPFAIL, NULL, "", NULL, 0);
		exchange_unlink(c, ex);
		request_free(r);
	}
}

static void detach_client(struct client *c)
{
	struct client **pp = &clients;

	/* Requests still being checked, or waiting out a delay, must not answer into a freed
	 * channel; their exchanges are freed when they come back. */
	pthread_mutex_lock(&lock);
	for (struct request *r = todo_head; r != NULL; r = r->next)
		if (r->client == c)
			r->client = NULL;
	for (struct request *r = done_head; r != NULL; r = r->next)
		if (r->client == c)
			r->client = NULL;
	pthread_mutex_unlock(&lock);
	for (struct request *r = delayed; r != NULL; r = r->next_delayed)
		if (r->client == c)
			r->client = NULL;
	while (c->exchanges != NULL) {
		struct exchange *ex = c->exchanges;

		c->exchanges = ex->next;
		if (ex->busy) {
			ex->aborted = true; /* owned by the running request now */
			ex->next = NULL;
		} else {
			authcheck_sasl_free(ex->st);
			free(ex);
			n_exchanges--;
		}
	}
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
	if (draining && clients == NULL && in_flight == 0 && delayed == NULL)
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
		switch (msgbuf.type) {
		case MSG_AUTH_REQ:
			handle_auth_req(c, &msgbuf);
			break;
		case MSG_SASL_START:
			handle_sasl_start(c, &msgbuf);
			break;
		case MSG_SASL_STEP:
			handle_sasl_step(c, &msgbuf, false);
			break;
		case MSG_SASL_ABORT:
			handle_sasl_step(c, &msgbuf, true);
			break;
		default:
			log_warnx("event=bad_message from=login type=%u", msgbuf.type);
		}
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
	if (!tokens_ready)
		tokens_init();
	for (int32_t i = toklen == AUTH_TOKEN_LEN ? token_buckets[token_bucket(tok)] : -1; i >= 0;
	     i = tokens[i].hnext) {
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
	ipc_put_u32(&msgbuf, t ? t->expire : POLICY_WIRE_UNSET);
	ipc_put_u32(&msgbuf, t ? t->login_delay : POLICY_WIRE_UNSET);
	ipc_queue_send(master_q, &msgbuf, -1);
	if (t != NULL)
		token_release((int32_t)(t - tokens)); /* a token is good for one handover only */
}

/* gannetctl's commands for the auth process, relayed by the master from the control socket:
 * "penalty list" and "penalty clear [IP|IP/64|USER]". */
static void ctl(struct ipc_msg *m)
{
	static char text[CTL_REPLY_MAX];
	char cmd[CONF_LINE_MAX];
	uint32_t id, status = 0;
	size_t len = 0;
	time_t now = time(NULL);

	if (ipc_get_u32(m, &id) < 0 || ipc_get_str(m, cmd, sizeof(cmd)) < 0 || ipc_end(m) < 0) {
		log_warnx("event=bad_message from=master type=ctl_req");
		return;
	}
	if (strcmp(cmd, "penalty list") == 0) {
		struct penalty_entry *e = calloc(CTL_PENALTY_LIST_MAX, sizeof(*e));
		size_t n = e ? penalty_list(penalty, now, e, CTL_PENALTY_LIST_MAX) : 0;

		for (size_t i = 0; i < n && len < sizeof(text) - 512; i++) {
			char key[2 * USERNAME_MAX + 1];

			log_sanitize(key, sizeof(key), e[i].key, strlen(e[i].key));
			len += (size_t)snprintf(
			    text + len, sizeof(text) - len,
			    "%s %s failures=%ld last=%lld blocked_for=%lld\n",
			    e[i].is_ip ? "ip" : "user", key, e[i].failures,
			    (long long)e[i].last_failure,
			    e[i].blocked_until > now ? (long long)(e[i].blocked_until - now) : 0LL);
		}
		free(e);
	} else if (strcmp(cmd, "penalty clear") == 0 || strncmp(cmd, "penalty clear ", 14) == 0) {
		size_t n = penalty_clear(penalty, cmd[13] == ' ' ? cmd + 14 : NULL);

		len = (size_t)snprintf(text, sizeof(text), "cleared %zu\n", n);
		log_info("event=penalty_clear what=%s removed=%zu",
		         cmd[13] == ' ' ? cmd + 14 : "all", n);
	} else {
		status = 1;
		len = (size_t)snprintf(text, sizeof(text), "unknown command\n");
	}
	ipc_msg_init(&msgbuf, MSG_CTL_RES);
	ipc_put_u32(&msgbuf, id);
	ipc_put_u32(&msgbuf, status);
	ipc_put_data(&msgbuf, text, len);
	ipc_queue_send(master_q, &msgbuf, -1);
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
		case MSG_CTL_REQ:
			ctl(&msgbuf);
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
	/* pam_unix reads /etc/shadow: its workers keep root, this process does not. */
	if (env->conf.system_users)
		pamw_start(&env->conf, (size_t)env->conf.auth_threads);
	child_drop_privileges(env->conf.auth_user, "auth_user", "");
	authcheck_init(&env->conf);
	penalty = penalty_new(
	    &(struct penalty_conf){env->conf.auth_failure_delay, env->conf.auth_failure_delay_max,
	                           env->conf.auth_ip_max_failures, env->conf.auth_ip_block_time});
	tokens = calloc(TOKENS_MAX, sizeof(*tokens));
	base = event_base_new();
	done_efd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
	if (tokens == NULL || base == NULL || done_efd < 0 || penalty == NULL)
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
