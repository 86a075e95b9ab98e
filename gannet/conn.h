/* The fetch client's transport: a non-blocking TCP socket (optionally TLS) where every connect,
 * handshake, read and write waits in poll() against a deadline, and a bounded input buffer. */
#ifndef GANNET_CONN_H
#define GANNET_CONN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <openssl/ssl.h>

#include "climits.h"
#include "util.h"

struct conn {
	int fd;
	SSL *ssl;
	const char *host; /* for messages; owned by the caller */
	int timeout_ms;   /* inactivity limit of each read and write */
	int64_t deadline; /* the current reply must be complete by then (0: no limit) */
	char buf[GANNET_IO_CHUNK];
	size_t start, end; /* unread bytes are buf[start..end) */
	uint64_t bytes_in;
};

/* Prepare C (no socket yet). */
void conn_init(struct conn *c, const char *host, int timeout_s);

/* Resolve HOST and connect to PORT, trying each address until one answers within the timeout.
 * 0 or -1 with E (EX_NOHOST, EX_UNAVAILABLE, EX_TEMPFAIL). */
int conn_connect(struct conn *c, uint16_t port, struct gerr *e);

/* Run the TLS handshake as the client with SSL (taken over by C) within HANDSHAKE_S seconds.
 * Bytes already buffered are refused first: after STLS they would be injected plaintext. */
int conn_start_tls(struct conn *c, SSL *ssl, int handshake_s, struct gerr *e);

/* Start a reply of about BYTES octets: it must arrive within the timeout plus BYTES at
 * GANNET_MIN_RATE, so a server trickling one byte per minute cannot hold us forever. */
void conn_expect(struct conn *c, uint64_t bytes);

/* Send all of BUF. 0 or -1 with E. */
int conn_write(struct conn *c, const void *buf, size_t len, struct gerr *e);

/* Read whatever arrives (at least one byte) into the buffer, compacting it first; waits at most
 * the inactivity timeout. 0, or -1 with E on timeout, EOF, error or a full buffer. */
int conn_fill(struct conn *c, struct gerr *e);

/* One line of at most MAX octets with its CRLF (a bare LF is tolerated) into OUT (MAX bytes),
 * terminator removed and NUL-terminated; *LEN_R is its length. Longer lines, NULs and the end of
 * the connection are errors (EX_PROTOCOL or EX_TEMPFAIL). WHAT names the reply for messages. */
int conn_read_line(struct conn *c, char *out, size_t max, size_t *len_r, const char *what,
                   struct gerr *e);

/* Bytes received but not yet consumed. */
size_t conn_pending(const struct conn *c);

/* Close the connection without any protocol goodbye (and without a TLS close_notify wait). */
void conn_close(struct conn *c);

#endif
