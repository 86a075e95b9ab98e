/* Typed messages between Gannet processes over AF_UNIX SOCK_SEQPACKET socketpairs, with fd
 * passing (OpenSMTPD imsg in spirit). One datagram = one message: a 4-byte type, then the payload
 * written with the put helpers. Readers check every length and that nothing is left over. */
#ifndef GANNET_IPC_H
#define GANNET_IPC_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "gannet_limits.h"

/* Bumped whenever a message layout changes; the first message on every channel is a hello that
 * carries it, and a mismatch is fatal for the child (a restarted master with new binaries). */
#define IPC_VERSION 5

struct ipc_msg {
	uint32_t type;
	size_t len;  /* payload bytes */
	size_t rpos; /* read position for the get helpers */
	int fd;      /* a received descriptor, or -1; the receiver owns it */
	bool error;  /* a put overflowed or a get ran short: the message is invalid */
	unsigned char data[IPC_MSG_MAX];
};

/* A nonblocking, close-on-exec SOCK_SEQPACKET pair. 0 or -1 with errno. */
int ipc_socketpair(int fds[2]);

/* Start a message of TYPE for writing. */
void ipc_msg_init(struct ipc_msg *m, uint32_t type);

/* Append fields; on overflow they set m->error and ipc_send refuses the message. */
void ipc_put_u32(struct ipc_msg *m, uint32_t v);
void ipc_put_u64(struct ipc_msg *m, uint64_t v);
void ipc_put_data(struct ipc_msg *m, const void *p, size_t len); /* u32 length + bytes */
void ipc_put_str(struct ipc_msg *m, const char *s);              /* as data, without the NUL */

/* Read fields in order; each returns 0, or -1 (and sets m->error) when the payload runs short.
 * m->error is sticky: after one failed get every later get fails too. */
int ipc_get_u32(struct ipc_msg *m, uint32_t *v);
int ipc_get_u64(struct ipc_msg *m, uint64_t *v);
/* Points *P into the message (valid while M lives). */
int ipc_get_data(struct ipc_msg *m, const void **p, size_t *len);
/* Copies into OUT (SIZE bytes, NUL-terminated; "" on failure); fails and sets m->error when the
 * string holds a NUL or does not fit. */
int ipc_get_str(struct ipc_msg *m, char *out, size_t size);
/* 0 when every payload byte was read and no get failed, else -1: leftover bytes are an error. */
int ipc_end(const struct ipc_msg *m);

/* Send M on SOCK, with FD attached when FD >= 0 (the caller keeps its copy of FD). Returns 0,
 * or -1 with errno (EINVAL when m->error is set; EAGAIN when the socket is full: use an
 * ipc_queue instead). */
int ipc_send(int sock, const struct ipc_msg *m, int fd);

/* Receive one message into M (m->fd = attached descriptor or -1). Returns 1 for a message, 0 at
 * EOF, -1 with errno (EAGAIN: nothing to read; EPROTO: truncated datagram or control data, more
 * than one descriptor, a control message other than SCM_RIGHTS, or shorter than the type field;
 * any descriptor that did arrive is closed). Received descriptors are close-on-exec. */
int ipc_recv(int sock, struct ipc_msg *m);

/* An outgoing queue for a nonblocking channel, flushed from the event loop. */
struct ipc_queue;
struct event_base;

/* Create a queue that writes to SOCK, armed on BASE. */
struct ipc_queue *ipc_queue_new(struct event_base *base, int sock);
/* Send now if possible, else copy M (and dup FD) into the queue and flush when SOCK is writable.
 * 0, or -1 with errno: EINVAL (M invalid), ENOBUFS (IPC_QUEUE_MAX queued), or the send error that
 * broke the channel (EPIPE, ECONNRESET): then the queue is dropped (logged) and later calls fail.
 */
int ipc_queue_send(struct ipc_queue *q, const struct ipc_msg *m, int fd);
/* Messages still waiting. */
size_t ipc_queue_pending(const struct ipc_queue *q);
/* Drop the queue, its messages and their descriptors; SOCK stays open. Accepts NULL. */
void ipc_queue_free(struct ipc_queue *q);

/* A queue longer than this means the peer process is stuck; refuse rather than grow. */
#define IPC_QUEUE_MAX 65536

#endif
