/* The load generator's engine: non-blocking POP3 client connections (plain or implicit TLS) on
 * one epoll loop, with a streaming multi-line reader that unstuffs and counts without copying. */
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <netinet/tcp.h>
#include <openssl/err.h>

#include "bench.h"

enum bconn_state { ST_CONNECTING, ST_HANDSHAKE, ST_READY, ST_DEAD };

/* Where the multi-line reader stands inside a body. */
enum ml_state {
	ML_FIRST, /* reading the status line */
	ML_BOL,   /* at the start of a body line */
	ML_DOT,   /* the line began with '.' */
	ML_DOTCR, /* ".\r" so far: the terminator unless LF does not follow */
	ML_MID    /* inside a line */
};

struct bconn {
	int fd;
	SSL *ssl;
	enum bconn_state state;
	const struct bconn_ops *ops;
	unsigned slot;
	void *arg;
	double t_open;
	double deadline;
	bool awaiting;    /* a reply is expected */
	unsigned pending; /* further replies expected after it (pipelined commands) */
	enum bconn_expect expect;
	enum ml_state ml;
	uint64_t payload;
	bool want_out; /* EPOLLOUT registered */
	bool read_wants_write;
	bool closed; /* freed after the current batch of events: callbacks may still hold it */
	bool failed; /* broke rather than ended: its TLS session is not worth keeping */
	char first[BENCH_LINE_MAX + 1];
	char out[BENCH_OUT_BUF];
	size_t out_len, out_off;
	char in[BENCH_IO_BUF];
	size_t in_len;
	struct bconn *prev, *next;
};

static int epfd = -1;
static SSL_CTX *tls_ctx;
static struct bconn *conns;
static struct bconn *graveyard;
static size_t n_conns;
/* Per-slot sessions for resumption: a client that reconnects offers its last ticket. */
static SSL_SESSION **slot_sess;
static unsigned n_slot_sess;
static uint64_t n_tls_full, n_tls_resumed;

double bench_now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

void bconn_engine_init(const struct bench_opts *o)
{
	epfd = epoll_create1(EPOLL_CLOEXEC);
	if (epfd < 0)
		bench_die("epoll_create1: %s", strerror(errno));
	if (!o->tls)
		return;
	tls_ctx = SSL_CTX_new(TLS_client_method());
	if (tls_ctx == NULL)
		bench_die("SSL_CTX_new failed");
	/* A benchmark against our own loopback servers: the certificate is the one run.sh made,
	 * and checking it would only add the same cost to both sides. */
	SSL_CTX_set_verify(tls_ctx, SSL_VERIFY_NONE, NULL);
	SSL_CTX_set_mode(tls_ctx, SSL_MODE_RELEASE_BUFFERS);
	SSL_CTX_set_session_cache_mode(tls_ctx, SSL_SESS_CACHE_CLIENT | SSL_SESS_CACHE_NO_INTERNAL);
	n_slot_sess = o->concurrency ? o->concurrency : 1;
	slot_sess = calloc(n_slot_sess, sizeof(*slot_sess));
	if (slot_sess == NULL)
		bench_die("out of memory");
}

static void set_events(struct bconn *c, bool out)
{
	struct epoll_event ev = {.events = EPOLLIN | (out ? EPOLLOUT : 0), .data.ptr = c};

	if (out == c->want_out)
		return;
	c->want_out = out;
	epoll_ctl(epfd, EPOLL_CTL_MOD, c->fd, &ev);
}

static void conn_fail(struct bconn *c, const char *why)
{
	const struct bconn_ops *ops = c->ops;

	if (c->state == ST_DEAD)
		return;
	c->state = ST_DEAD;
	c->failed = true;
	ops->fail(c, why);
}

struct bconn *bconn_open(const struct bench_opts *o, const struct bconn_ops *ops, unsigned slot,
                         void *arg)
{
	struct bconn *c = malloc(sizeof(*c));
	struct sockaddr_in src = {.sin_family = AF_INET};
	struct epoll_event ev;
	int one = 1;

	if (c == NULL)
		return NULL;
	memset(c, 0, offsetof(struct bconn, out));
	c->out_len = c->out_off = c->in_len = 0;
	c->prev = c->next = NULL;
	c->fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (c->fd < 0) {
		free(c);
		return NULL;
	}
	setsockopt(c->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	if (o->src_addrs > 1) {
		/* Thousands of short sessions a second exhaust one source address's ports. */
		setsockopt(c->fd, IPPROTO_IP, IP_BIND_ADDRESS_NO_PORT, &one, sizeof(one));
		src.sin_addr.s_addr = htonl(0x7f000001u + slot % o->src_addrs);
		if (bind(c->fd, (struct sockaddr *)&src, sizeof(src)) < 0) {
			close(c->fd);
			free(c);
			return NULL;
		}
	}
	c->ops = ops;
	c->slot = slot;
	c->arg = arg;
	c->t_open = bench_now();
	c->deadline = c->t_open + BENCH_REPLY_TIMEOUT;
	c->state = ST_CONNECTING;
	c->awaiting = true; /* the greeting */
	c->expect = EXPECT_LINE;
	c->ml = ML_FIRST;
	if (connect(c->fd, (const struct sockaddr *)&o->server, sizeof(o->server)) < 0 &&
	    errno != EINPROGRESS) {
		close(c->fd);
		free(c);
		return NULL;
	}
	if (o->tls) {
		c->ssl = SSL_new(tls_ctx);
		if (c->ssl == NULL || !SSL_set_fd(c->ssl, c->fd))
			bench_die("SSL_new failed");
		SSL_set_connect_state(c->ssl);
		if (o->tls_resume && slot < n_slot_sess && slot_sess[slot] != NULL)
			SSL_set_session(c->ssl, slot_sess[slot]);
	}
	ev.events = EPOLLIN | EPOLLOUT;
	ev.data.ptr = c;
	c->want_out = true;
	if (epoll_ctl(epfd, EPOLL_CTL_ADD, c->fd, &ev) < 0)
		bench_die("epoll_ctl: %s", strerror(errno));
	c->next = conns;
	if (conns)
		conns->prev = c;
	conns = c;
	n_conns++;
	return c;
}

void bconn_close(struct bconn *c)
{
	if (c->closed)
		return;
	c->closed = true;
	c->state = ST_DEAD;
	if (c->ssl) {
		if (SSL_is_init_finished(c->ssl)) {
			if (SSL_session_reused(c->ssl))
				n_tls_resumed++;
			else
				n_tls_full++;
		}
		/* OpenSSL marks the session of a connection freed without a shutdown as not
		 * resumable; after QUIT the server has closed cleanly, so say so. */
		if (!c->failed)
			SSL_set_shutdown(c->ssl, SSL_SENT_SHUTDOWN | SSL_RECEIVED_SHUTDOWN);
		/* Keep the newest ticket, as mail clients do: a TLS 1.3 ticket resumes once, and
		 * every connection, resumed or not, brings a fresh one. */
		if (!c->failed && slot_sess != NULL && c->slot < n_slot_sess) {
			SSL_SESSION *s = SSL_get1_session(c->ssl);

			if (s != NULL && !SSL_SESSION_is_resumable(s)) {
				SSL_SESSION_free(s);
				s = NULL;
			}
			if (s != NULL) {
				if (slot_sess[c->slot])
					SSL_SESSION_free(slot_sess[c->slot]);
				slot_sess[c->slot] = s;
			}
		}
		SSL_free(c->ssl);
		c->ssl = NULL;
	}
	close(c->fd);
	if (c->prev)
		c->prev->next = c->next;
	else
		conns = c->next;
	if (c->next)
		c->next->prev = c->prev;
	n_conns--;
	c->prev = NULL;
	c->next = graveyard;
	graveyard = c;
}

static void bury(void)
{
	while (graveyard != NULL) {
		struct bconn *c = graveyard;

		graveyard = c->next;
		free(c);
	}
}

/* Write what is queued. false when the connection failed (already reported). */
static bool flush_out(struct bconn *c)
{
	while (c->out_off < c->out_len) {
		size_t left = c->out_len - c->out_off;
		ssize_t n;

		if (c->ssl) {
			int r = SSL_write(c->ssl, c->out + c->out_off, (int)left);

			if (r <= 0) {
				int e = SSL_get_error(c->ssl, r);

				if (e == SSL_ERROR_WANT_WRITE || e == SSL_ERROR_WANT_READ) {
					set_events(c, e == SSL_ERROR_WANT_WRITE);
					return true;
				}
				conn_fail(c, "tls_write");
				return false;
			}
			n = r;
		} else {
			n = write(c->fd, c->out + c->out_off, left);
			if (n < 0) {
				if (errno == EAGAIN || errno == EINTR) {
					set_events(c, true);
					return true;
				}
				conn_fail(c, "write");
				return false;
			}
		}
		c->out_off += (size_t)n;
	}
	c->out_off = c->out_len = 0;
	set_events(c, c->read_wants_write);
	return true;
}

void bconn_cmd(struct bconn *c, enum bconn_expect expect, const char *fmt, ...)
{
	va_list ap;
	int n;

	if (c->state == ST_DEAD)
		return;
	va_start(ap, fmt);
	n = vsnprintf(c->out + c->out_len, sizeof(c->out) - c->out_len - 2, fmt, ap);
	va_end(ap);
	if (n < 0 || (size_t)n >= sizeof(c->out) - c->out_len - 2)
		bench_die("command too long");
	c->out_len += (size_t)n;
	c->out[c->out_len++] = '\r';
	c->out[c->out_len++] = '\n';
	if (c->awaiting) {
		if (expect != c->expect)
			bench_die("pipelined commands must expect the same kind of reply");
		c->pending++;
	} else {
		c->awaiting = true;
		c->expect = expect;
		c->ml = ML_FIRST;
		c->payload = 0;
		c->deadline = bench_now() + BENCH_REPLY_TIMEOUT;
	}
	if (c->state == ST_READY)
		flush_out(c);
}

/* A whole reply is in: hand it to the mode, which usually sends the next command. */
static void reply_done(struct bconn *c, bool ok)
{
	bool more = c->pending > 0;

	if (more)
		c->pending--;
	c->awaiting = more;
	c->ops->reply(c, ok); /* reads this reply's first line and payload */
	if (more) {
		c->ml = ML_FIRST;
		c->payload = 0;
		c->deadline = bench_now() + BENCH_REPLY_TIMEOUT;
	}
}

/* Counted body: only line starts matter, so jump from LF to LF with memchr. Returns bytes used;
 * *DONE once the terminator has been read. */
static size_t count_body(struct bconn *c, const char *p, size_t len, bool *done)
{
	size_t i = 0;

	while (i < len) {
		switch (c->ml) {
		case ML_MID: {
			const char *lf = memchr(p + i, '\n', len - i);

			if (lf == NULL) {
				c->payload += len - i;
				return len;
			}
			c->payload += (size_t)(lf - (p + i)) + 1;
			i = (size_t)(lf - p) + 1;
			c->ml = ML_BOL;
			break;
		}
		case ML_BOL:
			if (p[i] == '.') {
				c->ml = ML_DOT;
				i++;
			} else {
				c->ml = ML_MID;
			}
			break;
		case ML_DOT:
			if (p[i] == '\r') {
				c->ml = ML_DOTCR;
				i++;
			} else {
				c->ml = ML_MID; /* a stuffed dot: dropped, the rest is payload */
			}
			break;
		case ML_DOTCR:
			if (p[i] == '\n') {
				*done = true;
				return i + 1;
			}
			c->payload++; /* ".\r" then more: the CR was payload */
			c->ml = ML_MID;
			break;
		case ML_FIRST:
			return i;
		}
	}
	return i;
}

/* Parse what is buffered. false when the connection is gone. */
static bool parse_input(struct bconn *c)
{
	size_t off = 0;

	while (off < c->in_len && c->state != ST_DEAD) {
		char *p = c->in + off;
		size_t len = c->in_len - off;

		if (!c->awaiting) {
			conn_fail(c, "unexpected_data");
			return false;
		}
		if (c->ml == ML_FIRST) {
			char *lf = memchr(p, '\n', len);
			size_t l;
			bool ok;

			if (lf == NULL) {
				if (len > BENCH_LINE_MAX) {
					conn_fail(c, "status_line_too_long");
					return false;
				}
				break;
			}
			l = (size_t)(lf - p);
			off += l + 1;
			if (l > 0 && p[l - 1] == '\r')
				l--;
			if (l > BENCH_LINE_MAX)
				l = BENCH_LINE_MAX;
			memcpy(c->first, p, l);
			c->first[l] = '\0';
			ok = l >= 3 && memcmp(p, "+OK", 3) == 0;
			if (!ok && !(l >= 4 && memcmp(p, "-ERR", 4) == 0)) {
				conn_fail(c, "bad_status_line");
				return false;
			}
			if (c->expect == EXPECT_LINE || !ok) {
				reply_done(c, ok);
				continue;
			}
			c->ml = ML_BOL;
			continue;
		}
		if (c->expect == EXPECT_COUNTED) {
			bool done = false;

			off += count_body(c, p, len, &done);
			if (done)
				reply_done(c, true);
			continue;
		}
		/* EXPECT_LISTED: whole lines only. */
		{
			char *lf = memchr(p, '\n', len);
			size_t l;

			if (lf == NULL) {
				if (len > BENCH_LINE_MAX) {
					conn_fail(c, "listing_line_too_long");
					return false;
				}
				break;
			}
			l = (size_t)(lf - p);
			off += l + 1;
			if (l > 0 && p[l - 1] == '\r')
				l--;
			if (l == 1 && p[0] == '.') {
				reply_done(c, true);
				continue;
			}
			if (l > 0 && p[0] == '.') {
				p++;
				l--;
			}
			c->ops->line(c, p, l);
		}
	}
	if (c->state == ST_DEAD)
		return false;
	if (off > 0) {
		memmove(c->in, c->in + off, c->in_len - off);
		c->in_len -= off;
	}
	return true;
}

static void do_read(struct bconn *c)
{
	for (int rounds = 0; rounds < 64 && c->state == ST_READY; rounds++) {
		size_t room = sizeof(c->in) - c->in_len;
		ssize_t n;

		if (c->ssl) {
			int r = SSL_read(c->ssl, c->in + c->in_len, (int)room);

			c->read_wants_write = false;
			if (r <= 0) {
				int e = SSL_get_error(c->ssl, r);

				if (e == SSL_ERROR_WANT_READ)
					return;
				if (e == SSL_ERROR_WANT_WRITE) {
					c->read_wants_write = true;
					set_events(c, true);
					return;
				}
				conn_fail(c, e == SSL_ERROR_ZERO_RETURN ? "eof" : "tls_read");
				return;
			}
			n = r;
		} else {
			n = read(c->fd, c->in + c->in_len, room);
			if (n < 0) {
				if (errno == EAGAIN || errno == EINTR)
					return;
				conn_fail(c, "read");
				return;
			}
			if (n == 0) {
				conn_fail(c, "eof");
				return;
			}
		}
		c->in_len += (size_t)n;
		if (!parse_input(c))
			return;
		if (c->in_len == sizeof(c->in)) {
			conn_fail(c, "input_overflow");
			return;
		}
	}
}

static void do_handshake(struct bconn *c)
{
	int r = SSL_do_handshake(c->ssl);

	if (r == 1) {
		c->state = ST_READY;
		set_events(c, false);
		do_read(c);
		return;
	}
	switch (SSL_get_error(c->ssl, r)) {
	case SSL_ERROR_WANT_READ:
		set_events(c, false);
		break;
	case SSL_ERROR_WANT_WRITE:
		set_events(c, true);
		break;
	default:
		ERR_clear_error();
		conn_fail(c, "tls_handshake");
	}
}

static void on_event(struct bconn *c, uint32_t ev)
{
	if (c->state == ST_CONNECTING) {
		int err = 0;
		socklen_t len = sizeof(err);

		if (getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &err, &len) < 0 || err != 0) {
			conn_fail(c, "connect");
			return;
		}
		if (!(ev & (EPOLLOUT | EPOLLIN)))
			return;
		if (c->ssl) {
			c->state = ST_HANDSHAKE;
			do_handshake(c);
		} else {
			c->state = ST_READY;
			set_events(c, false);
			do_read(c);
		}
		return;
	}
	if (c->state == ST_HANDSHAKE) {
		do_handshake(c);
		return;
	}
	if (c->state != ST_READY)
		return;
	if ((ev & EPOLLOUT) && c->out_len > 0 && !flush_out(c))
		return;
	if (ev & (EPOLLIN | EPOLLHUP | EPOLLERR) || c->read_wants_write)
		do_read(c);
}

/* Failing a connection lets the mode close it, so walk a snapshot of deadlines each tick. */
static void check_timeouts(double now)
{
	struct bconn *c = conns;

	while (c != NULL) {
		struct bconn *next = c->next;

		if (c->state != ST_DEAD && c->awaiting && now > c->deadline)
			conn_fail(c, "timeout");
		c = next;
	}
}

void bconn_run(double timeout, const bool *stop, void (*tick)(void))
{
	struct epoll_event evs[256];
	double end = bench_now() + timeout;
	double next_check = 0;

	while (!*stop) {
		double now = bench_now();
		int n;

		if (now >= end)
			break;
		n = epoll_wait(epfd, evs, 256, 50);
		if (n < 0 && errno != EINTR)
			bench_die("epoll_wait: %s", strerror(errno));
		for (int i = 0; i < n; i++)
			on_event(evs[i].data.ptr, evs[i].events);
		bury();
		now = bench_now();
		if (now >= next_check) {
			check_timeouts(now);
			next_check = now + 0.1;
		}
		if (tick)
			tick();
		bury();
	}
}

unsigned bconn_slot(const struct bconn *c)
{
	return c->slot;
}

void *bconn_arg(const struct bconn *c)
{
	return c->arg;
}

const char *bconn_first_line(const struct bconn *c)
{
	return c->first;
}

uint64_t bconn_payload(const struct bconn *c)
{
	return c->payload;
}

double bconn_age(const struct bconn *c)
{
	return bench_now() - c->t_open;
}

size_t bconn_open_count(void)
{
	return n_conns;
}

void bconn_tls_counts(uint64_t *full_r, uint64_t *resumed_r)
{
	*full_r = n_tls_full;
	*resumed_r = n_tls_resumed;
}
