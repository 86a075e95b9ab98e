/* The master: binds listeners, spawns and supervises login/auth/mail children, routes logins from
 * the login process to a mail process once the auth process vouches for them, and handles
 * SIGHUP (reload as a new generation of children) and SIGTERM (drain). */
#include "master.h"

#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <systemd/sd-daemon.h>
#include <unistd.h>

#include <event2/event.h>

#include "control.h"
#include "ipc.h"
#include "lang.h"
#include "log.h"
#include "proto.h"
#include "tls.h"

/* Accepts per listener callback, so one busy listener cannot starve the loop. */
#define ACCEPT_BURST 64
/* Handovers waiting for the auth process to confirm their token. */
#define PENDING_MAX 4096
/* A child that dies within this many seconds of its start is restarted only after a pause, so a
 * broken set-up does not fork in a tight loop. */
#define RESPAWN_DELAY 1

struct generation;

struct proc {
	pid_t pid;
	enum proc_kind kind;
	struct generation *gen;
	uint32_t id;
	int chan;
	struct event *ev;
	struct ipc_queue *q;
	size_t conns;
	bool draining;
	struct proc *next;
};

struct generation {
	uint32_t num;
	struct conf conf;
	char *text;
	size_t textlen;
	unsigned char ticket_keys[TLS_TICKET_KEYS_LEN]; /* shared by its login processes */
	struct proc *auth;
	size_t live; /* login + mail processes still running */
	struct generation *next;
};

struct listener {
	int fd;
	bool implicit_tls;
	struct event *ev;
	char text[64];
};

struct pending {
	bool used;
	uint32_t id;
	int fd;
	uint64_t conn_id;
	struct proc *login;
	struct generation *gen;
	char session[40];
	char ip[64];
	char tls[96];
	uint32_t utf8; /* RFC 6856 session state, passed through unread */
	char lang[LANG_TAG_MAX + 1];
	unsigned char input[HANDOVER_INPUT_MAX];
	size_t inlen;
};

static struct event_base *base;
static struct proc *procs;
static struct generation *gens, *cur;
static struct listener listeners[2 * CONF_LIST_MAX];
static size_t n_listeners;
static const char *conf_file;
static bool foreground, stopping;
static uint32_t next_gen = 1, next_login_id = 1, next_pending_id = 1;
static uint64_t next_conn_id = 1;
static size_t total_conns;
static struct pending *pending;
static struct event *grace_ev;
static struct ipc_msg msgbuf; /* one message at a time: the master is single-threaded */

static void proc_read_cb(evutil_socket_t fd, short what, void *arg);
static struct proc *spawn(enum proc_kind kind, struct generation *g);

static const char *kind_name(enum proc_kind k)
{
	static const char *const names[] = {"master", "login", "auth", "mail"};
	return names[k];
}

static void proc_send(struct proc *p, const struct ipc_msg *m, int fd)
{
	if (ipc_queue_send(p->q, m, fd) < 0)
		log_warnx("event=ipc_overflow proc=%s pid=%d", kind_name(p->kind), (int)p->pid);
}

static void new_session_id(char *out, size_t size)
{
	unsigned char r[8];

	arc4random_buf(r, sizeof(r));
	snprintf(out, size, "%02x%02x%02x%02x%02x%02x%02x%02x", r[0], r[1], r[2], r[3], r[4], r[5],
	         r[6], r[7]);
}

/* Connect login process P with its generation's auth process. */
static void link_login_auth(struct proc *login)
{
	struct proc *auth = login->gen->auth;
	int sv[2];

	if (auth == NULL)
		return;
	if (ipc_socketpair(sv) < 0) {
		log_warn("socketpair");
		return;
	}
	ipc_msg_init(&msgbuf, MSG_AUTH_CLIENT);
	ipc_put_u32(&msgbuf, login->id);
	proc_send(auth, &msgbuf, sv[0]);
	proc_send(login, &msgbuf, sv[1]);
	close(sv[0]);
	close(sv[1]);
}

static struct proc *spawn(enum proc_kind kind, struct generation *g)
{
	struct proc *p;
	int sv[2];
	pid_t pid;

	if (ipc_socketpair(sv) < 0) {
		log_warn("socketpair");
		return NULL;
	}
	pid = fork();
	if (pid < 0) {
		log_warn("fork");
		close(sv[0]);
		close(sv[1]);
		return NULL;
	}
	if (pid == 0) {
		char name[32];
		char *argv[5] = {name, "-X", (char *)kind_name(kind), NULL, NULL};

		/* A name of its own, so that "pidof gannetd" finds only the master. */
		snprintf(name, sizeof(name), "gannetd-%s", kind_name(kind));
		if (foreground)
			argv[3] = "-d";
		if (dup2(sv[1], CHILD_CHANNEL_FD) < 0)
			_exit(1);
		closefrom(CHILD_CHANNEL_FD + 1);
		execv("/proc/self/exe", argv);
		_exit(127);
	}
	close(sv[1]);
	p = calloc(1, sizeof(*p));
	if (p == NULL)
		fatal("calloc");
	p->pid = pid;
	p->kind = kind;
	p->gen = g;
	p->chan = sv[0];
	p->id = kind == PROC_LOGIN ? next_login_id++ : 0;
	p->q = ipc_queue_new(base, sv[0]);
	p->ev = event_new(base, sv[0], EV_READ | EV_PERSIST, proc_read_cb, p);
	if (p->q == NULL || p->ev == NULL)
		fatal("event_new");
	event_add(p->ev, NULL);
	p->next = procs;
	procs = p;
	if (kind != PROC_AUTH)
		g->live++;

	ipc_msg_init(&msgbuf, MSG_HELLO);
	ipc_put_u32(&msgbuf, IPC_VERSION);
	ipc_put_u32(&msgbuf, (uint32_t)kind);
	ipc_put_u32(&msgbuf, g->num);
	ipc_put_u32(&msgbuf, foreground);
	ipc_put_data(&msgbuf, g->text, g->textlen);
	ipc_put_data(&msgbuf, g->ticket_keys, kind == PROC_LOGIN ? sizeof(g->ticket_keys) : 0);
	proc_send(p, &msgbuf, -1);
	explicit_bzero(&msgbuf, sizeof(msgbuf));

	if (kind == PROC_AUTH) {
		g->auth = p;
		/* A restarted auth process needs a fresh channel to every login of its generation.
		 */
		for (struct proc *l = procs; l != NULL; l = l->next)
			if (l->kind == PROC_LOGIN && l->gen == g && l->pid > 0)
				link_login_auth(l);
	} else if (kind == PROC_LOGIN) {
		link_login_auth(p);
	}
	log_debug("event=spawn proc=%s pid=%d generation=%u", kind_name(kind), (int)pid, g->num);
	return p;
}

static struct proc *least_loaded(enum proc_kind kind, struct generation *g)
{
	struct proc *best = NULL;

	for (struct proc *p = procs; p != NULL; p = p->next)
		if (p->kind == kind && p->gen == g && !p->draining && p->pid > 0 &&
		    (best == NULL || p->conns < best->conns))
			best = p;
	return best;
}

/* Per-connection mode keeps a few fresh, never-used processes ready (login_processes and
 * mail_processes of them), so a connection does not wait for a fork and exec: each still serves
 * exactly one session. */
static struct proc *take_fresh(enum proc_kind kind)
{
	size_t spares = 0;
	long want = kind == PROC_LOGIN ? cur->conf.login_processes : cur->conf.mail_processes;
	struct proc *p = least_loaded(kind, cur);

	if (p == NULL || p->conns > 0)
		p = spawn(kind, cur);
	if (p == NULL)
		return NULL;
	p->draining = true; /* one session, then it exits */
	for (struct proc *q = procs; q != NULL; q = q->next)
		if (q->kind == kind && q->gen == cur && !q->draining && q->pid > 0)
			spares++;
	while ((long)spares++ < want)
		if (spawn(kind, cur) == NULL)
			break;
	return p;
}

static void refuse(int fd, bool implicit_tls, const char *why)
{
	static const char busy[] = "-ERR [SYS/TEMP] Server busy, try again later\r\n";

	/* On a TLS listener the client expects a handshake, so plain text would be noise. */
	if (!implicit_tls && send(fd, busy, sizeof(busy) - 1, MSG_NOSIGNAL | MSG_DONTWAIT) < 0)
		log_debug("refuse: %s", strerror(errno));
	log_warnx("event=refused reason=%s", why);
	close(fd);
}

static void accept_cb(evutil_socket_t lfd, short what, void *arg)
{
	struct listener *l = arg;

	for (int i = 0; i < ACCEPT_BURST; i++) {
		struct sockaddr_storage ss;
		socklen_t sl = sizeof(ss);
		char session[40];
		struct proc *login;
		int one = 1;
		int fd = accept4(lfd, (struct sockaddr *)&ss, &sl, SOCK_NONBLOCK | SOCK_CLOEXEC);

		if (fd < 0) {
			if (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR &&
			    errno != ECONNABORTED)
				log_warn("accept on %s", l->text);
			return;
		}
		if (total_conns >= (size_t)cur->conf.max_sessions) {
			refuse(fd, l->implicit_tls, "max_sessions");
			continue;
		}
		setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
		if (cur->conf.isolation == ISOLATION_PER_CONNECTION)
			login = take_fresh(PROC_LOGIN);
		else
			login = least_loaded(PROC_LOGIN, cur);
		if (login == NULL) {
			refuse(fd, l->implicit_tls, "no_login_process");
			continue;
		}
		new_session_id(session, sizeof(session));
		ipc_msg_init(&msgbuf, MSG_CONN);
		ipc_put_u64(&msgbuf, next_conn_id++);
		ipc_put_u32(&msgbuf, l->implicit_tls);
		ipc_put_str(&msgbuf, session);
		proc_send(login, &msgbuf, fd);
		close(fd);
		login->conns++;
		total_conns++;
	}
}

static int bind_one(const struct conf_listen *cl)
{
	int one = 1;
	int fd = socket(cl->addr.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);

	if (fd < 0)
		return -1;
	setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	if (cl->addr.ss_family == AF_INET6)
		setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof(one));
	if (bind(fd, (const struct sockaddr *)&cl->addr, cl->addrlen) < 0 || listen(fd, 1024) < 0) {
		int e = errno;
		close(fd);
		errno = e;
		return -1;
	}
	return fd;
}

static void close_listeners(void)
{
	for (size_t i = 0; i < n_listeners; i++) {
		event_free(listeners[i].ev);
		close(listeners[i].fd);
	}
	n_listeners = 0;
}

static bool same_listeners(const struct conf *a, const struct conf *b)
{
	if (a->n_listen != b->n_listen || a->n_listen_tls != b->n_listen_tls)
		return false;
	for (size_t i = 0; i < a->n_listen; i++)
		if (strcmp(a->listen[i].text, b->listen[i].text) != 0)
			return false;
	for (size_t i = 0; i < a->n_listen_tls; i++)
		if (strcmp(a->listen_tls[i].text, b->listen_tls[i].text) != 0)
			return false;
	return true;
}

/* Bind every listener of CONF into a fresh set; on failure nothing changes. */
static int open_listeners(const struct conf *conf, char *err, size_t errsize)
{
	struct listener fresh[2 * CONF_LIST_MAX];
	size_t n = 0;

	for (size_t k = 0; k < 2; k++) {
		const struct conf_listen *ls = k == 0 ? conf->listen : conf->listen_tls;
		size_t cnt = k == 0 ? conf->n_listen : conf->n_listen_tls;

		for (size_t i = 0; i < cnt; i++) {
			int fd = bind_one(&ls[i]);
			if (fd < 0) {
				snprintf(err, errsize, "cannot listen on %s: %s", ls[i].text,
				         strerror(errno));
				for (size_t j = 0; j < n; j++)
					close(fresh[j].fd);
				return -1;
			}
			fresh[n].fd = fd;
			fresh[n].implicit_tls = k == 1;
			snprintf(fresh[n].text, sizeof(fresh[n].text), "%s", ls[i].text);
			n++;
		}
	}
	close_listeners();
	for (size_t i = 0; i < n; i++) {
		listeners[i] = fresh[i];
		listeners[i].ev = event_new(base, listeners[i].fd, EV_READ | EV_PERSIST, accept_cb,
		                            &listeners[i]);
		if (listeners[i].ev == NULL)
			fatal("event_new");
		event_add(listeners[i].ev, NULL);
		log_info("event=listen addr=%s tls=%s", listeners[i].text,
		         listeners[i].implicit_tls ? "implicit" : "stls");
	}
	n_listeners = n;
	return 0;
}

static struct generation *new_generation(struct conf *conf, char *text, size_t len)
{
	struct generation *g = calloc(1, sizeof(*g));

	if (g == NULL)
		fatal("calloc");
	g->num = next_gen++;
	g->conf = *conf;
	g->text = text;
	g->textlen = len;
	arc4random_buf(g->ticket_keys, sizeof(g->ticket_keys));
	g->next = gens;
	gens = g;
	return g;
}

static void start_generation(struct generation *g)
{
	/* In per-connection mode these are the fresh spares, each used for one session. */
	spawn(PROC_AUTH, g);
	for (long i = 0; i < g->conf.login_processes; i++)
		spawn(PROC_LOGIN, g);
	for (long i = 0; i < g->conf.mail_processes; i++)
		spawn(PROC_MAIL, g);
}

static void drain_proc(struct proc *p)
{
	if (p->draining || p->pid <= 0)
		return;
	p->draining = true;
	ipc_msg_init(&msgbuf, MSG_SHUTDOWN);
	proc_send(p, &msgbuf, -1);
}

/* Ask an old generation's auth process to leave once nothing of its generation needs it. */
static void retire_generations(void)
{
	for (struct generation *g = gens; g != NULL; g = g->next) {
		if (g == cur && !stopping)
			continue;
		if (g->live == 0 && g->auth != NULL)
			drain_proc(g->auth);
	}
}

static void pending_fail(struct pending *pd, const char *why)
{
	static const char msg[] = "-ERR [SYS/TEMP] Login failed because of a server error\r\n";

	log_warnx("session=%s ip=%s event=handover_failed reason=%s", pd->session, pd->ip, why);
	if (send(pd->fd, msg, sizeof(msg) - 1, MSG_NOSIGNAL | MSG_DONTWAIT) < 0)
		log_debug("handover_failed: %s", strerror(errno));
	close(pd->fd);
	pd->used = false;
	if (total_conns > 0)
		total_conns--;
}

static void handle_handover(struct proc *login, struct ipc_msg *m)
{
	const void *token, *input;
	size_t toklen, inlen;
	struct pending *pd = NULL;

	for (size_t i = 0; i < PENDING_MAX; i++) {
		if (!pending[i].used) {
			pd = &pending[i];
			break;
		}
	}
	if (login->conns > 0)
		login->conns--;
	if (pd == NULL) {
		log_warnx("event=handover_dropped reason=too_many_pending");
		if (m->fd >= 0)
			close(m->fd);
		if (total_conns > 0)
			total_conns--;
		return;
	}
	memset(pd, 0, offsetof(struct pending, input));
	if (ipc_get_u64(m, &pd->conn_id) < 0 || ipc_get_data(m, &token, &toklen) < 0 ||
	    ipc_get_str(m, pd->session, sizeof(pd->session)) < 0 ||
	    ipc_get_str(m, pd->ip, sizeof(pd->ip)) < 0 ||
	    ipc_get_str(m, pd->tls, sizeof(pd->tls)) < 0 || ipc_get_u32(m, &pd->utf8) < 0 ||
	    ipc_get_str(m, pd->lang, sizeof(pd->lang)) < 0 || ipc_get_data(m, &input, &inlen) < 0 ||
	    ipc_end(m) < 0 || toklen != AUTH_TOKEN_LEN || inlen > sizeof(pd->input) || m->fd < 0) {
		log_warnx("event=bad_message from=login pid=%d type=handover", (int)login->pid);
		if (m->fd >= 0)
			close(m->fd);
		if (total_conns > 0)
			total_conns--;
		return;
	}
	pd->used = true;
	pd->id = next_pending_id++;
	pd->fd = m->fd;
	m->fd = -1;
	pd->login = login;
	pd->gen = login->gen;
	memcpy(pd->input, input, inlen);
	pd->inlen = inlen;
	if (pd->gen->auth == NULL) {
		pending_fail(pd, "no_auth_process");
		return;
	}
	ipc_msg_init(&msgbuf, MSG_REDEEM);
	ipc_put_u32(&msgbuf, pd->id);
	ipc_put_u32(&msgbuf, login->id);
	ipc_put_data(&msgbuf, token, toklen);
	proc_send(pd->gen->auth, &msgbuf, -1);
}

static void handle_redeem_res(struct proc *auth, struct ipc_msg *m)
{
	uint32_t id, ok, uid, gid, expire, login_delay;
	char user[USERNAME_MAX + 1], maildir[GANNET_PATH_MAX];
	struct pending *pd = NULL;
	struct proc *mail;

	if (ipc_get_u32(m, &id) < 0 || ipc_get_u32(m, &ok) < 0 ||
	    ipc_get_str(m, user, sizeof(user)) < 0 || ipc_get_u32(m, &uid) < 0 ||
	    ipc_get_u32(m, &gid) < 0 || ipc_get_str(m, maildir, sizeof(maildir)) < 0 ||
	    ipc_get_u32(m, &expire) < 0 || ipc_get_u32(m, &login_delay) < 0 || ipc_end(m) < 0) {
		log_warnx("event=bad_message from=auth type=redeem_res");
		return;
	}
	for (size_t i = 0; i < PENDING_MAX; i++) {
		if (pending[i].used && pending[i].id == id) {
			pd = &pending[i];
			break;
		}
	}
	if (pd == NULL || pd->gen != auth->gen)
		return;
	if (!ok) {
		pending_fail(pd, "token_rejected");
		return;
	}
	if (cur->conf.isolation == ISOLATION_PER_CONNECTION)
		mail = take_fresh(PROC_MAIL);
	else
		mail = least_loaded(PROC_MAIL, cur);
	if (mail == NULL) {
		pending_fail(pd, "no_mail_process");
		return;
	}
	ipc_msg_init(&msgbuf, MSG_SESSION);
	ipc_put_u64(&msgbuf, pd->conn_id);
	ipc_put_str(&msgbuf, pd->session);
	ipc_put_str(&msgbuf, pd->ip);
	ipc_put_str(&msgbuf, pd->tls);
	ipc_put_str(&msgbuf, user);
	ipc_put_u32(&msgbuf, uid);
	ipc_put_u32(&msgbuf, gid);
	ipc_put_str(&msgbuf, maildir);
	ipc_put_u32(&msgbuf, expire);
	ipc_put_u32(&msgbuf, login_delay);
	ipc_put_u32(&msgbuf, pd->utf8);
	ipc_put_str(&msgbuf, pd->lang);
	ipc_put_data(&msgbuf, pd->input, pd->inlen);
	proc_send(mail, &msgbuf, pd->fd);
	close(pd->fd);
	pd->used = false;
	mail->conns++;
}

static void handle_msg(struct proc *p, struct ipc_msg *m)
{
	uint64_t conn_id;

	switch (m->type) {
	case MSG_CONN_DONE:
		if (ipc_get_u64(m, &conn_id) < 0 || ipc_end(m) < 0)
			break;
		if (p->conns > 0)
			p->conns--;
		if (total_conns > 0)
			total_conns--;
		return;
	case MSG_HANDOVER:
		if (p->kind == PROC_LOGIN) {
			handle_handover(p, m);
			return;
		}
		break;
	case MSG_REDEEM_RES:
		if (p->kind == PROC_AUTH) {
			handle_redeem_res(p, m);
			return;
		}
		break;
	case MSG_CTL_RES:
		if (p->kind == PROC_AUTH) {
			uint32_t id, status;
			const void *text;
			size_t len;

			if (ipc_get_u32(m, &id) == 0 && ipc_get_u32(m, &status) == 0 &&
			    ipc_get_data(m, &text, &len) == 0 && ipc_end(m) == 0) {
				control_reply(id, status, text, len);
				return;
			}
		}
		break;
	default:
		break;
	}
	log_warnx("event=bad_message from=%s pid=%d type=%u", kind_name(p->kind), (int)p->pid,
	          m->type);
	if (m->fd >= 0)
		close(m->fd);
}

static void proc_read_cb(evutil_socket_t fd, short what, void *arg)
{
	struct proc *p = arg;

	/* Bounded per wake-up so one chatty child cannot starve the others; the channel stays
	 * readable, so the loop comes back for the rest. */
	for (int i = 0; i < 64; i++) {
		int r = ipc_recv(fd, &msgbuf);
		if (r < 0 && (errno == EAGAIN || errno == EINTR))
			return;
		if (r <= 0) {
			/* The child is gone or broke the protocol; SIGCHLD does the bookkeeping. */
			if (r < 0)
				log_warn("event=ipc_error proc=%s pid=%d", kind_name(p->kind),
				         (int)p->pid);
			event_del(p->ev);
			return;
		}
		handle_msg(p, &msgbuf);
	}
}

static void respawn_cb(evutil_socket_t fd, short what, void *arg)
{
	struct proc *dead = arg;

	if (!stopping && dead->gen == cur)
		spawn(dead->kind, cur);
	free(dead);
}

static char pidfile[GANNET_PATH_MAX + 16];

static void maybe_exit(void)
{
	if (!stopping)
		return;
	for (struct proc *p = procs; p != NULL; p = p->next)
		if (p->pid > 0)
			return;
	if (pidfile[0] != '\0')
		unlink(pidfile);
	control_close();
	log_info("event=stopped");
	exit(0);
}

/* STATE_DIR/gannetd.pid names the master, for "kill -HUP $(cat /run/gannetd/gannetd.pid)". */
static void write_pidfile(const char *state_dir)
{
	char tmp[sizeof(pidfile) + 8];
	FILE *f;

	if (mkdir(state_dir, 0755) < 0 && errno != EEXIST) {
		log_warn("state_dir %s", state_dir);
		return;
	}
	snprintf(pidfile, sizeof(pidfile), "%s/gannetd.pid", state_dir);
	snprintf(tmp, sizeof(tmp), "%s.tmp", pidfile);
	if ((f = fopen(tmp, "we")) == NULL || fprintf(f, "%d\n", (int)getpid()) < 0 ||
	    fclose(f) != 0 || rename(tmp, pidfile) < 0) {
		log_warn("cannot write %s", pidfile);
		pidfile[0] = '\0';
	}
}

static void reap(void)
{
	int status;
	pid_t pid;

	while ((pid = waitpid(-1, &status, WNOHANG)) > 0) {
		struct proc **pp = &procs, *p;

		while (*pp != NULL && (*pp)->pid != pid)
			pp = &(*pp)->next;
		if ((p = *pp) == NULL)
			continue;
		*pp = p->next;
		/* A child's last messages (a handover, a CONN_DONE) may still sit in the channel
		 * when SIGCHLD is handled first: read them before the channel goes. */
		for (int k = 0; k < 16; k++)
			proc_read_cb(p->chan, EV_READ, p);
		if (WIFSIGNALED(status) ||
		    (WIFEXITED(status) && WEXITSTATUS(status) != 0 && !p->draining))
			log_warnx("event=child_died proc=%s pid=%d status=%d signal=%d",
			          kind_name(p->kind), (int)pid,
			          WIFEXITED(status) ? WEXITSTATUS(status) : -1,
			          WIFSIGNALED(status) ? WTERMSIG(status) : 0);
		if (total_conns >= p->conns)
			total_conns -= p->conns;
		else
			total_conns = 0;
		for (size_t i = 0; i < PENDING_MAX; i++)
			if (pending[i].used && pending[i].login == p)
				pending[i].login = NULL;
		if (p->kind == PROC_AUTH) {
			if (p->gen->auth == p)
				p->gen->auth = NULL;
			for (size_t i = 0; i < PENDING_MAX; i++)
				if (pending[i].used && pending[i].gen == p->gen)
					pending_fail(&pending[i], "auth_process_died");
		} else if (p->gen->live > 0) {
			p->gen->live--;
		}
		event_free(p->ev);
		ipc_queue_free(p->q);
		close(p->chan);
		p->pid = 0;
		/* Long-lived children of the current generation are replaced; per-connection and
		 * draining ones are not. */
		if (!p->draining && !stopping && p->gen == cur) {
			struct timeval tv = {RESPAWN_DELAY, 0};
			if (event_base_once(base, -1, EV_TIMEOUT, respawn_cb, p, &tv) < 0)
				free(p);
		} else {
			free(p);
		}
	}
	retire_generations();
	maybe_exit();
}

static void reload(void)
{
	struct conf *conf = calloc(1, sizeof(*conf));
	struct generation *old = cur;
	char err[1024];
	size_t len;
	char *text;

	if (conf == NULL)
		fatal("calloc");
	sd_notify(0, "RELOADING=1");
	text = conf_read_file(conf_file, &len, err, sizeof(err));
	if (text == NULL || conf_parse(conf_file, text, len, conf, err, sizeof(err)) < 0) {
		log_warnx("event=reload_failed reason=\"%s\" keeping=old", err);
		goto out;
	}
	if (conf->system_users && geteuid() != 0) {
		log_warnx("event=reload_failed reason=\"system_users = yes needs root\" "
		          "keeping=old");
		free(text);
		goto out;
	}
	if (conf->have_tls) {
		SSL_CTX *ctx = tls_server_ctx(conf, err, sizeof(err));
		if (ctx == NULL) {
			log_warnx("event=reload_failed reason=\"%s\" keeping=old", err);
			free(text);
			goto out;
		}
		SSL_CTX_free(ctx);
	}
	if (!same_listeners(&old->conf, conf) && open_listeners(conf, err, sizeof(err)) < 0) {
		log_warnx("event=reload_failed reason=\"%s\" keeping=old", err);
		free(text);
		goto out;
	}
	log_set_level((enum log_level)conf->log_level);
	cur = new_generation(conf, text, len);
	start_generation(cur);
	for (struct proc *p = procs; p != NULL; p = p->next)
		if (p->gen == old && p->kind != PROC_AUTH)
			drain_proc(p);
	retire_generations();
	log_info("event=reloaded generation=%u", cur->num);
out:
	free(conf);
	sd_notify(0, "READY=1");
}

static void grace_cb(evutil_socket_t fd, short what, void *arg)
{
	log_info("event=grace_expired action=close_sessions");
	for (struct proc *p = procs; p != NULL; p = p->next)
		if (p->pid > 0)
			kill(p->pid, SIGTERM);
}

static void signal_cb(evutil_socket_t sig, short what, void *arg)
{
	switch (sig) {
	case SIGCHLD:
		reap();
		break;
	case SIGHUP:
		if (!stopping)
			reload();
		break;
	case SIGTERM:
	case SIGINT:
		if (stopping) {
			grace_cb(-1, 0, NULL);
			break;
		}
		stopping = true;
		sd_notify(0, "STOPPING=1");
		log_info("event=stopping grace=%ld", cur->conf.shutdown_grace);
		close_listeners();
		for (struct proc *p = procs; p != NULL; p = p->next)
			drain_proc(p);
		{
			struct timeval tv = {cur->conf.shutdown_grace, 0};
			grace_ev = evtimer_new(base, grace_cb, NULL);
			evtimer_add(grace_ev, &tv);
		}
		maybe_exit();
		break;
	}
}

/* A gannetctl command for the current generation's auth process. */
static int relay_to_auth(uint32_t id, const char *command)
{
	if (cur == NULL || cur->auth == NULL)
		return -1;
	ipc_msg_init(&msgbuf, MSG_CTL_REQ);
	ipc_put_u32(&msgbuf, id);
	ipc_put_str(&msgbuf, command);
	proc_send(cur->auth, &msgbuf, -1);
	return 0;
}

static void raise_nofile(long sessions)
{
	struct rlimit rl;

	if (getrlimit(RLIMIT_NOFILE, &rl) < 0)
		return;
	/* Every session can hold two descriptors in the master's children plus the listeners. */
	rlim_t want = (rlim_t)sessions * 2 + 256;
	if (rl.rlim_cur < want) {
		rl.rlim_cur = want < rl.rlim_max ? want : rl.rlim_max;
		setrlimit(RLIMIT_NOFILE, &rl);
	}
}

void master_main(const char *file, struct conf *conf, char *text, size_t len, bool fg)
{
	static const int sigs[] = {SIGCHLD, SIGHUP, SIGTERM, SIGINT};
	char err[1024];

	conf_file = file;
	foreground = fg;
	log_set_level((enum log_level)conf->log_level);
	if (conf->system_users && geteuid() != 0)
		fatalx("system_users = yes needs gannetd started as root (each session switches to "
		       "its account's uid)");
	signal(SIGPIPE, SIG_IGN);
	raise_nofile(conf->max_sessions);
	pending = calloc(PENDING_MAX, sizeof(*pending));
	base = event_base_new();
	if (pending == NULL || base == NULL)
		fatal("start-up");
	for (size_t i = 0; i < sizeof(sigs) / sizeof(sigs[0]); i++) {
		struct event *ev = evsignal_new(base, sigs[i], signal_cb, NULL);
		if (ev == NULL || event_add(ev, NULL) < 0)
			fatal("signal event");
	}
	if (open_listeners(conf, err, sizeof(err)) < 0)
		fatalx("%s", err);
	/* Without -d, detach like a classic daemon; systemd runs us with -d (Type=notify). */
	if (!foreground && daemon(0, 0) < 0)
		fatal("daemon");
	write_pidfile(conf->state_dir);
	control_open(base, conf->state_dir, relay_to_auth);
	if (geteuid() == 0) {
		if (conf->login_user[0] == '\0')
			log_warnx("running the login processes as root: set login_user");
		if (conf->auth_user[0] == '\0')
			log_warnx("running the auth process as root: set auth_user");
		if (conf->mail_user[0] == '\0')
			log_warnx("running the mail processes as root: set mail_user");
	}
	cur = new_generation(conf, text, len);
	free(conf);
	start_generation(cur);
	log_info("event=started isolation=%s generation=%u",
	         cur->conf.isolation == ISOLATION_SHARED ? "shared" : "per-connection", cur->num);
	sd_notify(0, "READY=1");
	event_base_dispatch(base);
	fatalx("event loop ended");
}
