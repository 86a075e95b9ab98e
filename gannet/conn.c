/* Non-blocking socket and TLS I/O with a deadline on everything: a hostile or dead server can
 * stall us for at most the configured timeout, in any state, the TLS handshake included. */
#include "conn.h"

#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <openssl/err.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <sysexits.h>
#include <unistd.h>

#include "log.h"
#include "tlsclient.h"

void conn_init(struct conn *c, const char *host, int timeout_s)
{
	c->fd = -1;
	c->ssl = NULL;
	c->host = host;
	c->timeout_ms = timeout_s * 1000;
	c->start = c->end = 0;
	c->bytes_in = 0;
	c->deadline = 0;
}

void conn_expect(struct conn *c, uint64_t bytes)
{
	uint64_t extra = bytes / GANNET_MIN_RATE;

	if (extra > GANNET_TIMEOUT_MAX * 1000ULL)
		extra = GANNET_TIMEOUT_MAX * 1000ULL;
	c->deadline = now_ms() + c->timeout_ms + (int64_t)extra * 1000;
}

/* Wait for EVENTS on the socket until DEADLINE. 1 ready, 0 timed out, -1 error. */
static int wait_fd(int fd, short events, int64_t deadline)
{
	for (;;) {
		struct pollfd p = {.fd = fd, .events = events};
		int64_t left = deadline - now_ms();
		int r;

		if (left <= 0)
			return 0;
		r = poll(&p, 1, left > 60000 ? 60000 : (int)left);
		if (r > 0)
			return 1;
		if (r < 0 && errno != EINTR)
			return -1;
	}
}

static int connect_one(const struct addrinfo *ai, int64_t deadline, int *err_r)
{
	int fd =
	    socket(ai->ai_family, ai->ai_socktype | SOCK_NONBLOCK | SOCK_CLOEXEC, ai->ai_protocol);
	int soerr = 0, one = 1;
	socklen_t sl = sizeof(soerr);

	if (fd < 0) {
		*err_r = errno;
		return -1;
	}
	if (connect(fd, ai->ai_addr, ai->ai_addrlen) < 0 && errno != EINPROGRESS) {
		*err_r = errno;
		close(fd);
		return -1;
	}
	if (wait_fd(fd, POLLOUT, deadline) <= 0) {
		*err_r = ETIMEDOUT;
		close(fd);
		return -1;
	}
	if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &soerr, &sl) < 0 || soerr != 0) {
		*err_r = soerr ? soerr : errno;
		close(fd);
		return -1;
	}
	/* Pipelined commands are small and we wait for their replies: do not let Nagle hold them.
	 */
	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	return fd;
}

/* One asynchronous lookup: everything glibc reads while it runs lives here, on the heap, because
 * a lookup that cannot be cancelled outlives our wait for it. */
struct lookup {
	struct gaicb cb;
	struct addrinfo hints;
	char host[GANNET_HOST_MAX + 1];
	char port[8];
};

/* getaddrinfo with a deadline (getaddrinfo_a runs it in a glibc thread): a DNS server that never
 * answers costs at most TIMEOUT_MS. 0 with *RES_R, or a getaddrinfo error (EAI_AGAIN on time
 * out, with *TIMED_OUT_R set). */
static int resolve(const char *host, uint16_t port, int timeout_ms, struct addrinfo **res_r,
                   bool *timed_out_r)
{
	struct lookup *l = calloc(1, sizeof(*l));
	struct gaicb *list[1];
	int64_t deadline = now_ms() + timeout_ms;
	int r;

	*timed_out_r = false;
	if (l == NULL || strlen(host) > GANNET_HOST_MAX) {
		free(l);
		return EAI_MEMORY;
	}
	memcpy(l->host, host, strlen(host) + 1);
	snprintf(l->port, sizeof(l->port), "%u", (unsigned)port);
	l->hints = (struct addrinfo){.ai_socktype = SOCK_STREAM, .ai_flags = AI_ADDRCONFIG};
	l->cb = (struct gaicb){.ar_name = l->host, .ar_service = l->port, .ar_request = &l->hints};
	list[0] = &l->cb;
	r = getaddrinfo_a(GAI_NOWAIT, list, 1, NULL);
	if (r != 0) {
		free(l);
		return r;
	}
	for (;;) {
		int64_t left = deadline - now_ms();
		struct timespec ts = {left > 0 ? left / 1000 : 0,
		                      left > 0 ? (left % 1000) * 1000000 : 0};

		r = gai_error(&l->cb);
		if (r != EAI_INPROGRESS)
			break;
		if (left <= 0) {
			*timed_out_r = true;
			r = gai_cancel(&l->cb);
			if (r == EAI_ALLDONE) { /* it finished after all */
				r = gai_error(&l->cb);
				break;
			}
			if (r == EAI_CANCELED)
				free(l);
			/* EAI_NOTCANCELED: the glibc thread still uses L; it is left to it (a few
			 * hundred bytes, once per hanging lookup). */
			return EAI_AGAIN;
		}
		(void)gai_suspend((const struct gaicb *const *)list, 1, &ts);
	}
	*res_r = r == 0 ? l->cb.ar_result : NULL;
	if (r != 0 && l->cb.ar_result != NULL)
		freeaddrinfo(l->cb.ar_result);
	free(l);
	return r;
}

int conn_connect(struct conn *c, uint16_t port, struct gerr *e)
{
	struct addrinfo *res = NULL, *ai;
	int r, err = 0, limit = GANNET_RESOLVE_TIMEOUT * 1000;
	bool timed_out;

	r = resolve(c->host, port, c->timeout_ms < limit ? c->timeout_ms : limit, &res, &timed_out);
	if (r != 0) {
		if (timed_out)
			gerr_set(
			    e, EX_TEMPFAIL,
			    "cannot find the address of %s: the DNS server did not answer within "
			    "%d s",
			    c->host, (c->timeout_ms < limit ? c->timeout_ms : limit) / 1000);
		else
			gerr_set(e, r == EAI_AGAIN ? EX_TEMPFAIL : EX_NOHOST,
			         "cannot find the address of %s: %s", c->host,
			         r == EAI_SYSTEM ? strerror(errno) : gai_strerror(r));
		return -1;
	}
	for (ai = res; ai != NULL; ai = ai->ai_next) {
		c->fd = connect_one(ai, now_ms() + c->timeout_ms, &err);
		if (c->fd >= 0)
			break;
	}
	freeaddrinfo(res);
	if (c->fd >= 0)
		return 0;
	errno = err;
	if (err == ECONNREFUSED)
		gerr_set(e, EX_UNAVAILABLE,
		         "%s refused the connection on port %u (nothing listens there; POP3 over "
		         "TLS is usually port 995, POP3 with STLS port 110)",
		         c->host, (unsigned)port);
	else if (err == ETIMEDOUT)
		gerr_set(e, EX_TEMPFAIL, "%s:%u did not answer within %d s", c->host,
		         (unsigned)port, c->timeout_ms / 1000);
	else
		gerr_sys(e, EX_UNAVAILABLE, "cannot connect to %s:%u", c->host, (unsigned)port);
	return -1;
}

/* Map an SSL_ERROR_WANT_* to poll events; 0 when the error is final. */
static short want_events(SSL *ssl, int ret)
{
	switch (SSL_get_error(ssl, ret)) {
	case SSL_ERROR_WANT_READ:
		return POLLIN;
	case SSL_ERROR_WANT_WRITE:
		return POLLOUT;
	default:
		return 0;
	}
}

int conn_start_tls(struct conn *c, SSL *ssl, int handshake_s, struct gerr *e)
{
	int64_t deadline = now_ms() + (int64_t)handshake_s * 1000;
	char junk[1];

	/* RFC 2595 §4 and the STARTTLS injection class: anything the server sent before the
	 * handshake (buffered or already waiting in the kernel) aborts the session. */
	if (conn_pending(c) > 0 || recv(c->fd, junk, 1, MSG_PEEK | MSG_DONTWAIT) > 0) {
		SSL_free(ssl);
		gerr_set(e, EX_PROTOCOL,
		         "the server sent data before the TLS handshake (possible STARTTLS "
		         "injection attack); session aborted");
		return -1;
	}
	c->ssl = ssl;
	for (;;) {
		int r = SSL_connect(ssl);
		short ev;

		if (r == 1)
			return 0;
		ev = want_events(ssl, r);
		if (ev == 0) {
			tlsc_failure(ssl, c->host, e);
			return -1;
		}
		r = wait_fd(c->fd, ev, deadline);
		if (r <= 0) {
			gerr_set(e, EX_TEMPFAIL, "TLS handshake with %s did not finish within %d s",
			         c->host, handshake_s);
			return -1;
		}
	}
}

int conn_write(struct conn *c, const void *buf, size_t len, struct gerr *e)
{
	const char *p = buf;

	while (len > 0) {
		int64_t deadline = now_ms() + c->timeout_ms;
		short ev = POLLOUT;
		ssize_t n;

		if (c->ssl != NULL) {
			ERR_clear_error();
			int r = SSL_write(c->ssl, p, len > INT32_MAX ? INT32_MAX : (int)len);
			n = r;
			if (r <= 0 && (ev = want_events(c->ssl, r)) == 0) {
				gerr_set(e, EX_TEMPFAIL, "connection to %s lost while sending",
				         c->host);
				return -1;
			}
		} else {
			n = send(c->fd, p, len, MSG_NOSIGNAL);
			if (n < 0 && errno != EAGAIN && errno != EINTR) {
				gerr_sys(e, EX_TEMPFAIL, "connection to %s lost while sending",
				         c->host);
				return -1;
			}
		}
		if (n > 0) {
			p += n;
			len -= (size_t)n;
			continue;
		}
		if (wait_fd(c->fd, ev, deadline) <= 0) {
			gerr_set(e, EX_TEMPFAIL, "%s accepted no data for %d s", c->host,
			         c->timeout_ms / 1000);
			return -1;
		}
	}
	return 0;
}

int conn_fill(struct conn *c, struct gerr *e)
{
	int64_t deadline = now_ms() + c->timeout_ms;
	bool slow = false;

	if (c->deadline > 0 && c->deadline < deadline) {
		deadline = c->deadline;
		slow = true;
	}

	if (c->start > 0) {
		memmove(c->buf, c->buf + c->start, c->end - c->start);
		c->end -= c->start;
		c->start = 0;
	}
	if (c->end == sizeof(c->buf)) {
		gerr_set(e, EX_SOFTWARE, "input buffer full");
		return -1;
	}
	for (;;) {
		size_t room = sizeof(c->buf) - c->end;
		short ev = POLLIN;
		ssize_t n;

		if (c->ssl != NULL) {
			ERR_clear_error();
			int r = SSL_read(c->ssl, c->buf + c->end, (int)room);
			n = r;
			if (r <= 0) {
				int se = SSL_get_error(c->ssl, r);
				if (se == SSL_ERROR_ZERO_RETURN || se == SSL_ERROR_SYSCALL)
					n = 0;
				else if ((ev = want_events(c->ssl, r)) == 0) {
					tlsc_failure(c->ssl, c->host, e);
					return -1;
				}
			}
		} else {
			n = recv(c->fd, c->buf + c->end, room, 0);
			if (n < 0 && errno != EAGAIN && errno != EINTR) {
				gerr_sys(e, EX_TEMPFAIL, "connection to %s lost", c->host);
				return -1;
			}
		}
		if (n == 0) {
			gerr_set(e, EX_TEMPFAIL, "%s closed the connection unexpectedly", c->host);
			return -1;
		}
		if (n > 0) {
			c->end += (size_t)n;
			c->bytes_in += (uint64_t)n;
			return 0;
		}
		if (wait_fd(c->fd, ev, deadline) <= 0) {
			if (slow)
				gerr_set(e, EX_TEMPFAIL,
				         "%s is sending too slowly (under %d bytes/s)", c->host,
				         GANNET_MIN_RATE);
			else
				gerr_set(e, EX_TEMPFAIL, "%s sent nothing for %d s", c->host,
				         c->timeout_ms / 1000);
			return -1;
		}
	}
}

int conn_read_line(struct conn *c, char *out, size_t max, size_t *len_r, const char *what,
                   struct gerr *e)
{
	for (;;) {
		size_t have = c->end - c->start;
		const char *p = c->buf + c->start;
		const char *lf = memchr(p, '\n', have < max ? have : max);

		if (lf != NULL) {
			size_t len = (size_t)(lf - p);
			c->start += len + 1;
			if (len > 0 && p[len - 1] == '\r')
				len--;
			if (memchr(p, '\0', len) != NULL) {
				gerr_set(e, EX_PROTOCOL, "%s sent a NUL byte in a %s line", c->host,
				         what);
				return -1;
			}
			memcpy(out, p, len);
			out[len] = '\0';
			*len_r = len;
			return 0;
		}
		if (have >= max) {
			gerr_set(e, EX_PROTOCOL, "%s sent a %s line longer than %zu octets",
			         c->host, what, max);
			return -1;
		}
		if (conn_fill(c, e) < 0)
			return -1;
	}
}

size_t conn_pending(const struct conn *c)
{
	return c->end - c->start;
}

void conn_close(struct conn *c)
{
	if (c->ssl != NULL) {
		/* One close_notify without waiting for the peer's: a dead server must not stall. */
		SSL_set_shutdown(c->ssl, SSL_RECEIVED_SHUTDOWN);
		SSL_shutdown(c->ssl);
		SSL_free(c->ssl);
		c->ssl = NULL;
	}
	if (c->fd >= 0)
		close(c->fd);
	c->fd = -1;
	c->start = c->end = 0;
}
