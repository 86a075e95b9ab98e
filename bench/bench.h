/* gannet-bench internals: the non-blocking POP3 client engine, the modes and the corpus tools. */
#ifndef GANNET_BENCH_H
#define GANNET_BENCH_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <netinet/in.h>
#include <openssl/ssl.h>

/* Hard bounds on every run: nothing the command line says can make a run longer or larger. */
#define BENCH_SECONDS_MAX   600
#define BENCH_CONNS_MAX     20000
#define BENCH_SESSIONS_MAX  10000000
#define BENCH_LINE_MAX      1024        /* a reply line; RFC 2449 says 512, be lenient */
#define BENCH_LISTING_MAX   2000000     /* LIST/UIDL lines kept from one reply */
#define BENCH_IO_BUF        (64 * 1024) /* per-connection input buffer */
#define BENCH_OUT_BUF       512         /* per-connection command buffer */
#define BENCH_REPLY_TIMEOUT 60.0        /* seconds for one reply, a huge RETR included */
#define BENCH_PIPELINE_MAX  32 /* retr: RETRs in flight (32 x "RETR 1000000" fits OUT_BUF) */

/* Options shared by every mode, filled from the command line. */
struct bench_opts {
	const char *mode;
	struct sockaddr_in server;
	bool tls;
	bool tls_resume;         /* offer the previous session's ticket on reconnect */
	const char *user;        /* single user (retr, bigbox) */
	const char *user_prefix; /* multi-user modes: PREFIX0, PREFIX1, ... */
	unsigned user_count;     /* users PREFIX0..PREFIX<count-1> exist */
	const char *password;
	unsigned concurrency; /* clients (sessions) or held connections (idle) */
	double seconds;       /* run length (sessions) or hold time (idle) */
	uint64_t max_sessions;
	unsigned passes;     /* retr: RETR sweeps over the maildrop */
	unsigned pipeline;   /* retr: RETRs in flight (RFC 2449 PIPELINING); 1 = one at a time */
	unsigned src_addrs;  /* spread client sockets over 127.0.0.1..127.0.0.N */
	int server_pid;      /* idle: root of the server's process tree, for PSS */
	const char *label;   /* echoed in the result line */
	double ramp_timeout; /* idle: seconds allowed to get every connection logged in */
};

/* ---- time and output ---- */

/* Monotonic seconds. */
double bench_now(void);
/* Print "result mode=... key=value ..." with the client's own CPU use appended; one line. */
void bench_result(const struct bench_opts *o, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
/* Message to stderr and exit(2): bad usage or a set-up failure, never a measurement. */
void bench_die(const char *fmt, ...) __attribute__((format(printf, 1, 2), noreturn));

/* ---- the client engine (net.c) ---- */

struct bconn;

/* What the mode is told about a connection. REPLY: a whole reply arrived (OK tells +OK/-ERR;
 * the first line is in bconn_first_line). LINE: one unstuffed body line of a LISTED multi-line
 * reply. FAIL: the connection broke (WHY says how); the engine has closed it. */
struct bconn_ops {
	void (*reply)(struct bconn *c, bool ok);
	void (*line)(struct bconn *c, const char *line, size_t len);
	void (*fail)(struct bconn *c, const char *why);
};

/* How the next reply is read. */
enum bconn_expect {
	EXPECT_LINE,   /* one status line */
	EXPECT_LISTED, /* multi-line; each body line goes to ops->line */
	EXPECT_COUNTED /* multi-line; body only counted (RETR), bconn_payload gives the octets */
};

/* Set up the engine: epoll set, TLS client context. Call once. */
void bconn_engine_init(const struct bench_opts *o);
/* Start connecting a new connection; its first reply (the greeting) goes to OPS->reply. SLOT and
 * ARG belong to the mode. NULL if the socket could not even be created (counted by the caller). */
struct bconn *bconn_open(const struct bench_opts *o, const struct bconn_ops *ops, unsigned slot,
                         void *arg);
/* Send one command line (CRLF added) and read the reply as EXPECT says. Called while a reply is
 * still awaited, the command is pipelined: its reply is read after the ones before it, and must
 * be expected the same way (the modes pipeline only RETR). */
void bconn_cmd(struct bconn *c, enum bconn_expect expect, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
/* Close and free. */
void bconn_close(struct bconn *c);
/* Run the loop for at most TIMEOUT seconds or until *STOP is true. TICK (may be NULL) runs at
 * least every 50 ms. */
void bconn_run(double timeout, const bool *stop, void (*tick)(void));
unsigned bconn_slot(const struct bconn *c);
void *bconn_arg(const struct bconn *c);
const char *bconn_first_line(const struct bconn *c);
uint64_t bconn_payload(const struct bconn *c);
/* Seconds since bconn_open. */
double bconn_age(const struct bconn *c);
/* Connections currently open. */
size_t bconn_open_count(void);
/* TLS handshakes completed so far on connections since closed: full, and resumed from a ticket. */
void bconn_tls_counts(uint64_t *full_r, uint64_t *resumed_r);

/* ---- modes (modes.c, idle.c) ---- */

int mode_sessions(const struct bench_opts *o);
int mode_retr(const struct bench_opts *o);
int mode_bigbox(const struct bench_opts *o);
int mode_idle(const struct bench_opts *o);

/* ---- server memory (procmem.c) ---- */

/* Sum of Pss over PID and all its descendants, in KiB; -1 if PID is gone. NPROC_R gets the
 * number of processes counted. */
long long procmem_pss_kib(int pid, int *nproc_r);

/* ---- latency samples (stats.c) ---- */

struct samples {
	double *v;
	size_t n, cap, max;
};
void samples_init(struct samples *s, size_t max);
void samples_add(struct samples *s, double v);
/* The P-th percentile (0..100) by nearest rank; 0 when empty. Sorts in place. */
double samples_pct(struct samples *s, double p);
void samples_free(struct samples *s);

/* ---- corpus and users (corpus.c) ---- */

/* gannet-bench corpus KIND SEED MAILDIR: write the deterministic corpus (small, big, huge, tiny).
 */
int corpus_main(int argc, char **argv);
/* gannet-bench users ... : write a passwd-file and empty Maildirs for PREFIX0..PREFIXn-1. */
int users_main(int argc, char **argv);

/* ---- profiling driver (profile.c) ---- */

/* gannet-bench encode MAILDIR: run every message through the RETR encoder, timed. */
int profile_encode_main(int argc, char **argv);

#endif
