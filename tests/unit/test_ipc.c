/* Unit tests for lib/ipc.c: put/get round trips, limits, fd passing, malformed datagrams, queue. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cmocka.h>
#include <event2/event.h>

#include "ipc.h"
#include "log.h"

static struct ipc_msg msg_a, msg_b;

static int open_fds_at_start;

static int count_open_fds(void)
{
	DIR *d = opendir("/proc/self/fd");
	int n = 0;

	assert_non_null(d);
	while (readdir(d) != NULL)
		n++;
	closedir(d);
	return n;
}

static int fd_setup(void **state)
{
	(void)state;
	open_fds_at_start = count_open_fds();
	return 0;
}

/* Every test must close what it opened: a leaked descriptor is a bug in ipc or in the test. */
static int fd_teardown(void **state)
{
	(void)state;
	assert_int_equal(count_open_fds(), open_fds_at_start);
	return 0;
}

static void make_pair(int sv[2])
{
	assert_int_equal(ipc_socketpair(sv), 0);
}

static void close_pair(int sv[2])
{
	close(sv[0]);
	close(sv[1]);
}

/* Nonblocking, so that a leaked write end fails a check instead of hanging the test. */
static int make_pipe(int p[2])
{
	return pipe2(p, O_NONBLOCK | O_CLOEXEC);
}

/* True when nobody holds the write end of the pipe any more, i.e. every copy was closed. */
static bool pipe_write_end_gone(int rfd)
{
	char c;

	return read(rfd, &c, 1) == 0;
}

static void send_raw_fds(int sock, const void *buf, size_t len, const int *fds, size_t nfds)
{
	union {
		struct cmsghdr hdr;
		unsigned char buf[CMSG_SPACE(4 * sizeof(int))];
	} cbuf;
	struct iovec iov = {.iov_base = (void *)buf, .iov_len = len};
	struct msghdr mh;

	memset(&mh, 0, sizeof(mh));
	memset(&cbuf, 0, sizeof(cbuf));
	mh.msg_iov = &iov;
	mh.msg_iovlen = 1;
	if (nfds > 0) {
		struct cmsghdr *c;

		assert_true(nfds <= 4);
		mh.msg_control = cbuf.buf;
		mh.msg_controllen = CMSG_SPACE(nfds * sizeof(int));
		c = CMSG_FIRSTHDR(&mh);
		c->cmsg_level = SOL_SOCKET;
		c->cmsg_type = SCM_RIGHTS;
		c->cmsg_len = CMSG_LEN(nfds * sizeof(int));
		memcpy(CMSG_DATA(c), fds, nfds * sizeof(int));
	}
	assert_int_equal(sendmsg(sock, &mh, MSG_NOSIGNAL), (ssize_t)len);
}

static void test_socketpair_flags(void **state)
{
	int sv[2], type;
	socklen_t tlen = sizeof(type);

	(void)state;
	make_pair(sv);
	for (int i = 0; i < 2; i++) {
		assert_true(fcntl(sv[i], F_GETFL) & O_NONBLOCK);
		assert_true(fcntl(sv[i], F_GETFD) & FD_CLOEXEC);
	}
	assert_int_equal(getsockopt(sv[0], SOL_SOCKET, SO_TYPE, &type, &tlen), 0);
	assert_int_equal(type, SOCK_SEQPACKET);
	close_pair(sv);
}

static void put_all_types(struct ipc_msg *m)
{
	static const unsigned char bin[5] = {0x00, 0xff, 0x0a, 0x00, 0x7f};

	ipc_msg_init(m, 0xabcd1234);
	ipc_put_u32(m, 0);
	ipc_put_u32(m, 0xdeadbeef);
	ipc_put_u32(m, UINT32_MAX);
	ipc_put_u64(m, UINT64_MAX);
	ipc_put_u64(m, 0x0123456789abcdefULL);
	ipc_put_data(m, bin, sizeof(bin));
	ipc_put_data(m, NULL, 0);
	ipc_put_str(m, "hello");
	ipc_put_str(m, "");
}

static void check_all_types(struct ipc_msg *m)
{
	static const unsigned char bin[5] = {0x00, 0xff, 0x0a, 0x00, 0x7f};
	uint32_t u32;
	uint64_t u64;
	const void *p;
	size_t len;
	char s[16];

	assert_int_equal(m->type, 0xabcd1234);
	assert_int_equal(m->len, 3 * 4 + 2 * 8 + (4 + 5) + 4 + (4 + 5) + 4);
	assert_int_equal(ipc_get_u32(m, &u32), 0);
	assert_int_equal(u32, 0);
	assert_int_equal(ipc_get_u32(m, &u32), 0);
	assert_int_equal(u32, 0xdeadbeef);
	assert_int_equal(ipc_get_u32(m, &u32), 0);
	assert_int_equal(u32, UINT32_MAX);
	assert_int_equal(ipc_get_u64(m, &u64), 0);
	assert_true(u64 == UINT64_MAX);
	assert_int_equal(ipc_get_u64(m, &u64), 0);
	assert_true(u64 == 0x0123456789abcdefULL);
	assert_int_equal(ipc_get_data(m, &p, &len), 0);
	assert_int_equal(len, 5);
	assert_memory_equal(p, bin, 5);
	assert_int_equal(ipc_get_data(m, &p, &len), 0);
	assert_int_equal(len, 0);
	assert_int_equal(ipc_get_str(m, s, sizeof(s)), 0);
	assert_string_equal(s, "hello");
	assert_int_equal(ipc_get_str(m, s, sizeof(s)), 0);
	assert_string_equal(s, "");
	assert_false(m->error);
	assert_int_equal(ipc_end(m), 0);
}

static void test_roundtrip_memory(void **state)
{
	(void)state;
	put_all_types(&msg_a);
	assert_false(msg_a.error);
	assert_int_equal(msg_a.fd, -1);
	check_all_types(&msg_a);
}

static void test_roundtrip_socket(void **state)
{
	int sv[2];

	(void)state;
	make_pair(sv);
	put_all_types(&msg_a);
	assert_int_equal(ipc_send(sv[0], &msg_a, -1), 0);
	assert_int_equal(ipc_recv(sv[1], &msg_b), 1);
	assert_int_equal(msg_b.fd, -1);
	assert_int_equal(msg_b.rpos, 0);
	check_all_types(&msg_b);
	/* Nothing else was queued. */
	assert_int_equal(ipc_recv(sv[1], &msg_b), -1);
	assert_int_equal(errno, EAGAIN);
	close_pair(sv);
}

static void test_empty_message(void **state)
{
	int sv[2];

	(void)state;
	make_pair(sv);
	ipc_msg_init(&msg_a, 42);
	assert_int_equal(ipc_send(sv[0], &msg_a, -1), 0);
	assert_int_equal(ipc_recv(sv[1], &msg_b), 1);
	assert_int_equal(msg_b.type, 42);
	assert_int_equal(msg_b.len, 0);
	assert_int_equal(ipc_end(&msg_b), 0);
	close_pair(sv);
}

static void test_full_size_message(void **state)
{
	static unsigned char big[IPC_MSG_MAX - 4];
	const void *p;
	size_t len;
	int sv[2];

	(void)state;
	for (size_t i = 0; i < sizeof(big); i++)
		big[i] = (unsigned char)(i * 7);
	make_pair(sv);
	ipc_msg_init(&msg_a, 1);
	ipc_put_data(&msg_a, big, sizeof(big));
	assert_false(msg_a.error);
	assert_int_equal(msg_a.len, IPC_MSG_MAX);
	assert_int_equal(ipc_send(sv[0], &msg_a, -1), 0);
	assert_int_equal(ipc_recv(sv[1], &msg_b), 1);
	assert_int_equal(msg_b.len, IPC_MSG_MAX);
	assert_int_equal(ipc_get_data(&msg_b, &p, &len), 0);
	assert_int_equal(len, sizeof(big));
	assert_memory_equal(p, big, sizeof(big));
	assert_int_equal(ipc_end(&msg_b), 0);
	close_pair(sv);
}

static void test_overflow(void **state)
{
	static unsigned char big[IPC_MSG_MAX];
	int sv[2];

	(void)state;
	make_pair(sv);

	/* data: the 4-byte length plus IPC_MSG_MAX bytes cannot fit. */
	ipc_msg_init(&msg_a, 1);
	ipc_put_data(&msg_a, big, sizeof(big));
	assert_true(msg_a.error);
	assert_int_equal(msg_a.len, 0);
	errno = 0;
	assert_int_equal(ipc_send(sv[0], &msg_a, -1), -1);
	assert_int_equal(errno, EINVAL);

	/* Exactly full, then one more u32. */
	ipc_msg_init(&msg_a, 1);
	ipc_put_data(&msg_a, big, IPC_MSG_MAX - 4);
	assert_false(msg_a.error);
	ipc_put_u32(&msg_a, 1);
	assert_true(msg_a.error);
	assert_int_equal(msg_a.len, IPC_MSG_MAX);
	assert_int_equal(ipc_send(sv[0], &msg_a, -1), -1);
	assert_int_equal(errno, EINVAL);

	/* A u64 with only 7 bytes left. */
	ipc_msg_init(&msg_a, 1);
	ipc_put_data(&msg_a, big, IPC_MSG_MAX - 4 - 7);
	ipc_put_u64(&msg_a, 1);
	assert_true(msg_a.error);
	/* The error is sticky: a small put afterwards does not make the message valid again. */
	ipc_put_u32(&msg_a, 1);
	assert_true(msg_a.error);
	assert_int_equal(msg_a.len, IPC_MSG_MAX - 7);
	assert_int_equal(ipc_send(sv[0], &msg_a, -1), -1);
	assert_int_equal(errno, EINVAL);

	/* Nothing reached the peer. */
	assert_int_equal(ipc_recv(sv[1], &msg_b), -1);
	assert_int_equal(errno, EAGAIN);
	close_pair(sv);
}

static void test_get_past_end(void **state)
{
	uint32_t u32;
	uint64_t u64;
	const void *p;
	size_t len;

	(void)state;
	ipc_msg_init(&msg_a, 1);
	ipc_put_u32(&msg_a, 5);
	assert_int_equal(ipc_get_u32(&msg_a, &u32), 0);
	assert_int_equal(u32, 5);
	assert_int_equal(ipc_end(&msg_a), 0);
	assert_int_equal(ipc_get_u32(&msg_a, &u32), -1);
	assert_true(msg_a.error);
	assert_int_equal(ipc_end(&msg_a), -1);

	/* u64 from a 4-byte payload. */
	ipc_msg_init(&msg_a, 1);
	ipc_put_u32(&msg_a, 5);
	assert_int_equal(ipc_get_u64(&msg_a, &u64), -1);
	assert_true(msg_a.error);
	assert_int_equal(ipc_end(&msg_a), -1);

	/* A data length that claims more bytes than remain. */
	ipc_msg_init(&msg_a, 1);
	ipc_put_u32(&msg_a, 100);
	ipc_put_u32(&msg_a, 0);
	assert_int_equal(ipc_get_data(&msg_a, &p, &len), -1);
	assert_true(msg_a.error);
	assert_int_equal(ipc_end(&msg_a), -1);

	/* The length itself cut short. */
	ipc_msg_init(&msg_a, 1);
	ipc_put_data(&msg_a, "ab", 2);
	msg_a.len = 3;
	assert_int_equal(ipc_get_data(&msg_a, &p, &len), -1);
	assert_int_equal(ipc_end(&msg_a), -1);

	/* After a failed get, later gets fail too, even ones that would fit. */
	ipc_msg_init(&msg_a, 1);
	ipc_put_u32(&msg_a, 1);
	assert_int_equal(ipc_get_u64(&msg_a, &u64), -1);
	assert_int_equal(ipc_get_u32(&msg_a, &u32), -1);
	assert_int_equal(ipc_end(&msg_a), -1);
}

static void test_leftover(void **state)
{
	uint32_t u32;

	(void)state;
	ipc_msg_init(&msg_a, 1);
	ipc_put_u32(&msg_a, 1);
	ipc_put_u32(&msg_a, 2);
	assert_int_equal(ipc_get_u32(&msg_a, &u32), 0);
	assert_int_equal(ipc_end(&msg_a), -1);
	assert_int_equal(ipc_get_u32(&msg_a, &u32), 0);
	assert_int_equal(u32, 2);
	assert_int_equal(ipc_end(&msg_a), 0);

	/* A single stray byte. */
	ipc_msg_init(&msg_a, 1);
	ipc_put_u32(&msg_a, 1);
	msg_a.data[msg_a.len++] = 0;
	assert_int_equal(ipc_get_u32(&msg_a, &u32), 0);
	assert_false(msg_a.error);
	assert_int_equal(ipc_end(&msg_a), -1);
}

static void test_get_str(void **state)
{
	char s[8];

	(void)state;
	/* Embedded NUL. */
	ipc_msg_init(&msg_a, 1);
	ipc_put_data(&msg_a, "ab\0cd", 5);
	assert_int_equal(ipc_get_str(&msg_a, s, sizeof(s)), -1);
	assert_true(msg_a.error);
	assert_string_equal(s, "");
	assert_int_equal(ipc_end(&msg_a), -1);

	/* Trailing NUL counts as embedded too. */
	ipc_msg_init(&msg_a, 1);
	ipc_put_data(&msg_a, "abc", 4);
	assert_int_equal(ipc_get_str(&msg_a, s, sizeof(s)), -1);

	/* Fits only with room for the NUL. */
	ipc_msg_init(&msg_a, 1);
	ipc_put_str(&msg_a, "hello");
	assert_int_equal(ipc_get_str(&msg_a, s, 5), -1);
	assert_int_equal(ipc_end(&msg_a), -1);
	msg_a.rpos = 0;
	msg_a.error = false;
	assert_int_equal(ipc_get_str(&msg_a, s, 6), 0);
	assert_string_equal(s, "hello");
	assert_int_equal(ipc_end(&msg_a), 0);

	/* Size 0 fits nothing, not even "". */
	ipc_msg_init(&msg_a, 1);
	ipc_put_str(&msg_a, "");
	assert_int_equal(ipc_get_str(&msg_a, s, 0), -1);
}

static void test_fd_passing(void **state)
{
	int sv[2], p[2];
	char buf[8];

	(void)state;
	make_pair(sv);
	assert_int_equal(make_pipe(p), 0);
	ipc_msg_init(&msg_a, 7);
	ipc_put_u32(&msg_a, 99);
	assert_int_equal(ipc_send(sv[0], &msg_a, p[1]), 0);
	/* The sender keeps its copy; close it so only the passed one can write. */
	close(p[1]);

	assert_int_equal(ipc_recv(sv[1], &msg_b), 1);
	assert_int_equal(msg_b.type, 7);
	assert_true(msg_b.fd >= 0);
	assert_true(fcntl(msg_b.fd, F_GETFD) & FD_CLOEXEC);
	assert_int_equal(write(msg_b.fd, "ping", 4), 4);
	close(msg_b.fd);
	assert_int_equal(read(p[0], buf, sizeof(buf)), 4);
	assert_memory_equal(buf, "ping", 4);
	assert_true(pipe_write_end_gone(p[0]));
	close(p[0]);
	close_pair(sv);
}

static void test_eof(void **state)
{
	int sv[2];

	(void)state;
	make_pair(sv);
	assert_int_equal(ipc_recv(sv[1], &msg_b), -1);
	assert_int_equal(errno, EAGAIN);
	close(sv[0]);
	assert_int_equal(ipc_recv(sv[1], &msg_b), 0);
	close(sv[1]);
}

static void test_short_datagram(void **state)
{
	int sv[2], p[2];

	(void)state;
	make_pair(sv);
	assert_int_equal(send(sv[0], "ab", 2, MSG_NOSIGNAL), 2);
	errno = 0;
	assert_int_equal(ipc_recv(sv[1], &msg_b), -1);
	assert_int_equal(errno, EPROTO);
	assert_int_equal(msg_b.fd, -1);

	/* With a descriptor attached, which must be closed. */
	assert_int_equal(make_pipe(p), 0);
	send_raw_fds(sv[0], "abc", 3, &p[1], 1);
	close(p[1]);
	assert_int_equal(ipc_recv(sv[1], &msg_b), -1);
	assert_int_equal(errno, EPROTO);
	assert_true(pipe_write_end_gone(p[0]));
	close(p[0]);

	/* The channel still works afterwards. */
	ipc_msg_init(&msg_a, 3);
	assert_int_equal(ipc_send(sv[0], &msg_a, -1), 0);
	assert_int_equal(ipc_recv(sv[1], &msg_b), 1);
	assert_int_equal(msg_b.type, 3);
	close_pair(sv);
}

static void test_oversize_datagram(void **state)
{
	static unsigned char big[4 + IPC_MSG_MAX + 1];
	int sv[2], p[2], sndbuf = 1 << 20;

	(void)state;
	make_pair(sv);
	assert_int_equal(setsockopt(sv[0], SOL_SOCKET, SO_SNDBUF, &sndbuf, sizeof(sndbuf)), 0);
	assert_int_equal(make_pipe(p), 0);
	send_raw_fds(sv[0], big, sizeof(big), &p[1], 1);
	close(p[1]);
	errno = 0;
	assert_int_equal(ipc_recv(sv[1], &msg_b), -1);
	assert_int_equal(errno, EPROTO);
	assert_true(pipe_write_end_gone(p[0]));
	close(p[0]);

	/* One byte less is the largest valid message. */
	assert_int_equal(send(sv[0], big, sizeof(big) - 1, MSG_NOSIGNAL), (ssize_t)sizeof(big) - 1);
	assert_int_equal(ipc_recv(sv[1], &msg_b), 1);
	assert_int_equal(msg_b.len, IPC_MSG_MAX);
	close_pair(sv);
}

static void test_two_fds(void **state)
{
	int sv[2], p1[2], p2[2], fds[2];

	(void)state;
	make_pair(sv);
	assert_int_equal(make_pipe(p1), 0);
	assert_int_equal(make_pipe(p2), 0);
	fds[0] = p1[1];
	fds[1] = p2[1];
	ipc_msg_init(&msg_a, 5);
	send_raw_fds(sv[0], &msg_a.type, 4, fds, 2);
	close(p1[1]);
	close(p2[1]);
	errno = 0;
	assert_int_equal(ipc_recv(sv[1], &msg_b), -1);
	assert_int_equal(errno, EPROTO);
	assert_int_equal(msg_b.fd, -1);
	assert_true(pipe_write_end_gone(p1[0]));
	assert_true(pipe_write_end_gone(p2[0]));
	close(p1[0]);
	close(p2[0]);
	close_pair(sv);
}

/* Send sequence-numbered messages until the socket is full; returns how many went through. */
static uint32_t fill_socket(int sock)
{
	static unsigned char pad[1000];
	uint32_t n = 0;

	for (;;) {
		ipc_msg_init(&msg_a, 100);
		ipc_put_u32(&msg_a, n);
		ipc_put_data(&msg_a, pad, sizeof(pad));
		if (ipc_send(sock, &msg_a, -1) == -1) {
			assert_true(errno == EAGAIN || errno == EWOULDBLOCK);
			return n;
		}
		n++;
		assert_true(n < 100000);
	}
}

#define NQUEUED 6

static void test_queue(void **state)
{
	struct event_base *base;
	struct ipc_queue *q;
	int sv[2], pipes[NQUEUED][2];
	uint32_t nfill, next = 0, total, seq;
	int rounds = 0;

	(void)state;
	make_pair(sv);
	base = event_base_new();
	assert_non_null(base);
	q = ipc_queue_new(base, sv[0]);
	assert_non_null(q);

	nfill = fill_socket(sv[0]);
	assert_true(nfill > 0);
	for (uint32_t i = 0; i < NQUEUED; i++) {
		assert_int_equal(make_pipe(pipes[i]), 0);
		ipc_msg_init(&msg_a, 200);
		ipc_put_u32(&msg_a, nfill + i);
		/* Every other message without a descriptor. */
		assert_int_equal(ipc_queue_send(q, &msg_a, i % 2 == 0 ? pipes[i][1] : -1), 0);
		assert_int_equal(ipc_queue_pending(q), i + 1);
		/* The queue holds its own dup: closing ours must not matter. */
		close(pipes[i][1]);
	}

	total = nfill + NQUEUED;
	while (next < total) {
		int r;

		assert_true(++rounds < 10000);
		while ((r = ipc_recv(sv[1], &msg_b)) == 1) {
			assert_int_equal(ipc_get_u32(&msg_b, &seq), 0);
			assert_int_equal(seq, next);
			if (next < nfill) {
				assert_int_equal(msg_b.type, 100);
				assert_int_equal(msg_b.fd, -1);
			} else {
				uint32_t i = next - nfill;
				char c = (char)('a' + i);

				assert_int_equal(msg_b.type, 200);
				assert_int_equal(ipc_end(&msg_b), 0);
				if (i % 2 == 0) {
					assert_true(msg_b.fd >= 0);
					assert_int_equal(write(msg_b.fd, &c, 1), 1);
					close(msg_b.fd);
				} else {
					assert_int_equal(msg_b.fd, -1);
				}
			}
			next++;
		}
		assert_int_equal(r, -1);
		assert_int_equal(errno, EAGAIN);
		assert_true(event_base_loop(base, EVLOOP_NONBLOCK) >= 0);
	}
	assert_int_equal(ipc_queue_pending(q), 0);
	/* The write event is gone once the queue is empty: the loop has nothing left to wait for.
	 */
	assert_int_equal(event_base_loop(base, EVLOOP_NONBLOCK), 1);

	for (uint32_t i = 0; i < NQUEUED; i++) {
		char c;

		if (i % 2 == 0) {
			assert_int_equal(read(pipes[i][0], &c, 1), 1);
			assert_int_equal(c, 'a' + (int)i);
		}
		/* The queue's dup was closed after sending, and the receiver closed its copy. */
		assert_true(pipe_write_end_gone(pipes[i][0]));
		close(pipes[i][0]);
	}

	/* With the queue empty, a send goes out at once. */
	ipc_msg_init(&msg_a, 300);
	assert_int_equal(ipc_queue_send(q, &msg_a, -1), 0);
	assert_int_equal(ipc_queue_pending(q), 0);
	assert_int_equal(ipc_recv(sv[1], &msg_b), 1);
	assert_int_equal(msg_b.type, 300);

	/* Invalid messages are refused. */
	ipc_msg_init(&msg_a, 1);
	msg_a.error = true;
	assert_int_equal(ipc_queue_send(q, &msg_a, -1), -1);
	assert_int_equal(errno, EINVAL);

	ipc_queue_free(q);
	event_base_free(base);
	close_pair(sv);
}

static void test_queue_max(void **state)
{
	struct event_base *base;
	struct ipc_queue *q;
	int sv[2], p[2];

	(void)state;
	make_pair(sv);
	base = event_base_new();
	q = ipc_queue_new(base, sv[0]);
	assert_non_null(q);
	fill_socket(sv[0]);
	ipc_msg_init(&msg_a, 1);
	ipc_put_u32(&msg_a, 1);
	for (size_t i = 0; i < IPC_QUEUE_MAX; i++)
		assert_int_equal(ipc_queue_send(q, &msg_a, -1), 0);
	assert_int_equal(ipc_queue_pending(q), IPC_QUEUE_MAX);
	errno = 0;
	assert_int_equal(ipc_queue_send(q, &msg_a, -1), -1);
	assert_int_equal(errno, ENOBUFS);
	assert_int_equal(ipc_queue_pending(q), IPC_QUEUE_MAX);

	/* A refused message with a descriptor leaves no dup behind. */
	assert_int_equal(make_pipe(p), 0);
	assert_int_equal(ipc_queue_send(q, &msg_a, p[1]), -1);
	close(p[1]);
	assert_true(pipe_write_end_gone(p[0]));
	close(p[0]);

	ipc_queue_free(q);
	event_base_free(base);
	close_pair(sv);
}

static void test_queue_peer_gone(void **state)
{
	struct event_base *base;
	struct ipc_queue *q;
	int sv[2], p[2];

	(void)state;
	make_pair(sv);
	base = event_base_new();
	q = ipc_queue_new(base, sv[0]);
	assert_non_null(q);
	fill_socket(sv[0]);
	assert_int_equal(make_pipe(p), 0);
	ipc_msg_init(&msg_a, 1);
	for (int i = 0; i < 3; i++)
		assert_int_equal(ipc_queue_send(q, &msg_a, p[1]), 0);
	close(p[1]);
	assert_int_equal(ipc_queue_pending(q), 3);

	close(sv[1]);
	assert_true(event_base_loop(base, EVLOOP_NONBLOCK) >= 0);
	assert_int_equal(ipc_queue_pending(q), 0);
	/* Every dup'd descriptor was closed with its dropped message. */
	assert_true(pipe_write_end_gone(p[0]));
	close(p[0]);
	/* The channel is broken for good; Linux reports ECONNRESET when the peer left unread data.
	 */
	errno = 0;
	assert_int_equal(ipc_queue_send(q, &msg_a, -1), -1);
	assert_true(errno == EPIPE || errno == ECONNRESET);
	assert_int_equal(event_base_loop(base, EVLOOP_NONBLOCK), 1);

	ipc_queue_free(q);
	event_base_free(base);
	close(sv[0]);
}

static void test_queue_free_pending(void **state)
{
	struct event_base *base;
	struct ipc_queue *q;
	int sv[2], p[2];

	(void)state;
	make_pair(sv);
	base = event_base_new();
	q = ipc_queue_new(base, sv[0]);
	assert_non_null(q);
	fill_socket(sv[0]);
	assert_int_equal(make_pipe(p), 0);
	ipc_msg_init(&msg_a, 1);
	assert_int_equal(ipc_queue_send(q, &msg_a, p[1]), 0);
	close(p[1]);
	ipc_queue_free(q);
	assert_true(pipe_write_end_gone(p[0]));
	close(p[0]);
	assert_int_equal(event_base_loop(base, EVLOOP_NONBLOCK), 1);
	ipc_queue_free(NULL);
	event_base_free(base);
	close_pair(sv);
}

#define T(f) cmocka_unit_test_setup_teardown(f, fd_setup, fd_teardown)

int main(void)
{
	const struct CMUnitTest tests[] = {
	    T(test_socketpair_flags),
	    T(test_roundtrip_memory),
	    T(test_roundtrip_socket),
	    T(test_empty_message),
	    T(test_full_size_message),
	    T(test_overflow),
	    T(test_get_past_end),
	    T(test_leftover),
	    T(test_get_str),
	    T(test_fd_passing),
	    T(test_eof),
	    T(test_short_datagram),
	    T(test_oversize_datagram),
	    T(test_two_fds),
	    T(test_queue),
	    T(test_queue_max),
	    T(test_queue_peer_gone),
	    T(test_queue_free_pending),
	};

	/* The queue logs when it drops messages; keep test output to cmocka's lines. */
	log_init("test_ipc", true, LOG_LEVEL_ERR);
	return cmocka_run_group_tests(tests, NULL, NULL);
}
