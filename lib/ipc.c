/* Typed IPC messages over SOCK_SEQPACKET socketpairs: put/get helpers, fd passing, send queue. */
#include "ipc.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <unistd.h>

#include <event2/event.h>

#include "log.h"

/* Room for a few descriptors, so that a peer sending two is seen and both are closed here rather
 * than half-delivered; anything beyond this arrives as MSG_CTRUNC and the kernel drops the rest. */
#define IPC_RECV_FDS 4

int ipc_socketpair(int fds[2])
{
	return socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, fds);
}

void ipc_msg_init(struct ipc_msg *m, uint32_t type)
{
	/* data is left alone: clearing 16 KiB per message buys nothing, only len bytes are sent. */
	m->type = type;
	m->len = 0;
	m->rpos = 0;
	m->fd = -1;
	m->error = false;
}

static void put_bytes(struct ipc_msg *m, const void *p, size_t len)
{
	if (m->error || m->len > IPC_MSG_MAX || len > IPC_MSG_MAX - m->len) {
		m->error = true;
		return;
	}
	if (len > 0)
		memcpy(m->data + m->len, p, len);
	m->len += len;
}

void ipc_put_u32(struct ipc_msg *m, uint32_t v)
{
	put_bytes(m, &v, sizeof(v));
}

void ipc_put_u64(struct ipc_msg *m, uint64_t v)
{
	put_bytes(m, &v, sizeof(v));
}

void ipc_put_data(struct ipc_msg *m, const void *p, size_t len)
{
	/* Checked as a whole so a failed put never leaves a length without its bytes. */
	if (m->error || m->len > IPC_MSG_MAX || len > UINT32_MAX || len > IPC_MSG_MAX - m->len ||
	    sizeof(uint32_t) > IPC_MSG_MAX - m->len - len) {
		m->error = true;
		return;
	}
	ipc_put_u32(m, (uint32_t)len);
	put_bytes(m, p, len);
}

void ipc_put_str(struct ipc_msg *m, const char *s)
{
	ipc_put_data(m, s, strlen(s));
}

/* Errors are sticky: once one get failed, the remaining fields are not trusted either. */
static int get_bytes(struct ipc_msg *m, void *out, size_t len)
{
	if (m->error || m->rpos > m->len || len > m->len - m->rpos) {
		m->error = true;
		return -1;
	}
	memcpy(out, m->data + m->rpos, len);
	m->rpos += len;
	return 0;
}

int ipc_get_u32(struct ipc_msg *m, uint32_t *v)
{
	return get_bytes(m, v, sizeof(*v));
}

int ipc_get_u64(struct ipc_msg *m, uint64_t *v)
{
	return get_bytes(m, v, sizeof(*v));
}

int ipc_get_data(struct ipc_msg *m, const void **p, size_t *len)
{
	uint32_t n;

	if (ipc_get_u32(m, &n) == -1)
		return -1;
	if (n > m->len - m->rpos) {
		m->error = true;
		return -1;
	}
	*p = m->data + m->rpos;
	*len = n;
	m->rpos += n;
	return 0;
}

int ipc_get_str(struct ipc_msg *m, char *out, size_t size)
{
	const void *p;
	size_t len;

	if (size > 0)
		out[0] = '\0';
	if (ipc_get_data(m, &p, &len) == -1)
		return -1;
	/* A NUL inside would let the peer make two readers of the same string disagree on it. */
	if (len >= size || memchr(p, '\0', len) != NULL) {
		m->error = true;
		return -1;
	}
	memcpy(out, p, len);
	out[len] = '\0';
	return 0;
}

int ipc_end(const struct ipc_msg *m)
{
	return m->error || m->rpos != m->len ? -1 : 0;
}

static int send_raw(int sock, uint32_t type, const void *data, size_t len, int fd)
{
	union {
		struct cmsghdr hdr;
		unsigned char buf[CMSG_SPACE(sizeof(int))];
	} cbuf;
	struct iovec iov[2];
	struct msghdr mh;
	ssize_t n;

	memset(&mh, 0, sizeof(mh));
	iov[0].iov_base = &type;
	iov[0].iov_len = sizeof(type);
	iov[1].iov_base = (void *)data;
	iov[1].iov_len = len;
	mh.msg_iov = iov;
	mh.msg_iovlen = 2;
	if (fd >= 0) {
		struct cmsghdr *c;

		memset(&cbuf, 0, sizeof(cbuf));
		mh.msg_control = cbuf.buf;
		mh.msg_controllen = sizeof(cbuf.buf);
		c = CMSG_FIRSTHDR(&mh);
		c->cmsg_level = SOL_SOCKET;
		c->cmsg_type = SCM_RIGHTS;
		c->cmsg_len = CMSG_LEN(sizeof(int));
		memcpy(CMSG_DATA(c), &fd, sizeof(int));
	}
	do
		n = sendmsg(sock, &mh, MSG_NOSIGNAL);
	while (n == -1 && errno == EINTR);
	if (n == -1)
		return -1;
	/* SEQPACKET sends all or nothing; a partial datagram would be a different message. */
	if ((size_t)n != sizeof(type) + len) {
		errno = EIO;
		return -1;
	}
	return 0;
}

int ipc_send(int sock, const struct ipc_msg *m, int fd)
{
	if (m->error || m->len > IPC_MSG_MAX) {
		errno = EINVAL;
		return -1;
	}
	return send_raw(sock, m->type, m->data, m->len, fd);
}

int ipc_recv(int sock, struct ipc_msg *m)
{
	union {
		struct cmsghdr hdr;
		unsigned char buf[CMSG_SPACE(IPC_RECV_FDS * sizeof(int))];
	} cbuf;
	struct iovec iov[2];
	struct msghdr mh;
	struct cmsghdr *c;
	int fds[IPC_RECV_FDS];
	size_t nfds = 0;
	bool bad = false;
	ssize_t n;

	ipc_msg_init(m, 0);
	memset(&mh, 0, sizeof(mh));
	iov[0].iov_base = &m->type;
	iov[0].iov_len = sizeof(m->type);
	iov[1].iov_base = m->data;
	iov[1].iov_len = sizeof(m->data);
	mh.msg_iov = iov;
	mh.msg_iovlen = 2;
	mh.msg_control = cbuf.buf;
	mh.msg_controllen = sizeof(cbuf.buf);
	do
		n = recvmsg(sock, &mh, MSG_CMSG_CLOEXEC);
	while (n == -1 && errno == EINTR);
	if (n == -1)
		return -1;

	/* Collect every descriptor first: whatever else is wrong, none of them may leak. */
	for (c = CMSG_FIRSTHDR(&mh); c != NULL; c = CMSG_NXTHDR(&mh, c)) {
		size_t k;

		if (c->cmsg_level != SOL_SOCKET || c->cmsg_type != SCM_RIGHTS ||
		    c->cmsg_len < CMSG_LEN(0)) {
			bad = true;
			continue;
		}
		k = (c->cmsg_len - CMSG_LEN(0)) / sizeof(int);
		for (size_t i = 0; i < k; i++) {
			int f;

			memcpy(&f, CMSG_DATA(c) + i * sizeof(int), sizeof(int));
			if (nfds < IPC_RECV_FDS)
				fds[nfds++] = f;
			else
				close(f);
		}
	}
	if (n == 0) {
		/* A zero-length datagram reads as EOF too; our own peers never send one. */
		for (size_t i = 0; i < nfds; i++)
			close(fds[i]);
		return 0;
	}
	if (bad || nfds > 1 || (mh.msg_flags & (MSG_TRUNC | MSG_CTRUNC)) ||
	    (size_t)n < sizeof(m->type)) {
		for (size_t i = 0; i < nfds; i++)
			close(fds[i]);
		ipc_msg_init(m, 0);
		errno = EPROTO;
		return -1;
	}
	m->len = (size_t)n - sizeof(m->type);
	m->fd = nfds == 1 ? fds[0] : -1;
	return 1;
}

/* Only the used bytes are kept: a full queue of IPC_MSG_MAX copies would be 1 GiB. */
struct ipc_qent {
	struct ipc_qent *next;
	int fd;
	uint32_t type;
	size_t len;
	unsigned char data[];
};

struct ipc_queue {
	int sock;
	int dead_errno; /* the send error that broke the channel, or 0 */
	struct event *ev;
	struct ipc_qent *head;
	struct ipc_qent *tail;
	size_t count;
};

static void qent_free(struct ipc_qent *e)
{
	if (e->fd >= 0)
		close(e->fd);
	free(e);
}

static void queue_drop(struct ipc_queue *q)
{
	struct ipc_qent *e;

	while ((e = q->head) != NULL) {
		q->head = e->next;
		qent_free(e);
	}
	q->tail = NULL;
	q->count = 0;
	event_del(q->ev);
}

static bool send_would_block(int err)
{
	return err == EAGAIN || err == EWOULDBLOCK;
}

static void queue_write_cb(evutil_socket_t sock, short what, void *arg)
{
	struct ipc_queue *q = arg;
	struct ipc_qent *e;

	(void)sock;
	(void)what;
	while ((e = q->head) != NULL) {
		if (send_raw(q->sock, e->type, e->data, e->len, e->fd) == -1) {
			if (send_would_block(errno))
				return;
			q->dead_errno = errno;
			log_warn("ipc: send on fd %d failed, dropping %zu queued messages", q->sock,
			         q->count);
			queue_drop(q);
			return;
		}
		q->head = e->next;
		if (q->head == NULL)
			q->tail = NULL;
		q->count--;
		qent_free(e);
	}
	event_del(q->ev);
}

struct ipc_queue *ipc_queue_new(struct event_base *base, int sock)
{
	struct ipc_queue *q;

	q = calloc(1, sizeof(*q));
	if (q == NULL)
		return NULL;
	q->sock = sock;
	q->ev = event_new(base, sock, EV_WRITE | EV_PERSIST, queue_write_cb, q);
	if (q->ev == NULL) {
		free(q);
		return NULL;
	}
	return q;
}

int ipc_queue_send(struct ipc_queue *q, const struct ipc_msg *m, int fd)
{
	struct ipc_qent *e;

	if (m->error || m->len > IPC_MSG_MAX) {
		errno = EINVAL;
		return -1;
	}
	if (q->dead_errno != 0) {
		errno = q->dead_errno;
		return -1;
	}
	/* Sending directly while others wait would reorder the channel. */
	if (q->count == 0) {
		if (send_raw(q->sock, m->type, m->data, m->len, fd) == 0)
			return 0;
		if (!send_would_block(errno)) {
			q->dead_errno = errno;
			return -1;
		}
	}
	if (q->count >= IPC_QUEUE_MAX) {
		errno = ENOBUFS;
		return -1;
	}
	e = malloc(sizeof(*e) + m->len);
	if (e == NULL)
		return -1;
	e->next = NULL;
	e->type = m->type;
	e->len = m->len;
	if (m->len > 0)
		memcpy(e->data, m->data, m->len);
	e->fd = -1;
	/* The caller may close its fd as soon as we return, so the queue keeps its own. */
	if (fd >= 0 && (e->fd = fcntl(fd, F_DUPFD_CLOEXEC, 0)) == -1) {
		free(e);
		return -1;
	}
	if (q->count == 0 && event_add(q->ev, NULL) == -1) {
		qent_free(e);
		errno = ENOMEM;
		return -1;
	}
	if (q->tail != NULL)
		q->tail->next = e;
	else
		q->head = e;
	q->tail = e;
	q->count++;
	return 0;
}

size_t ipc_queue_pending(const struct ipc_queue *q)
{
	return q->count;
}

void ipc_queue_free(struct ipc_queue *q)
{
	if (q == NULL)
		return;
	queue_drop(q);
	event_free(q->ev);
	free(q);
}
