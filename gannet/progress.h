/* Progress display and summaries: a one-line bar on a terminal (messages, bytes, rate, time
 * left), nothing otherwise, and the per-account JSON summary for scripts. */
#ifndef GANNET_PROGRESS_H
#define GANNET_PROGRESS_H

#include <stdbool.h>
#include <stdint.h>

struct fetch_stats {
	uint64_t new_msgs;    /* not seen before */
	uint64_t fetched;     /* delivered (headers-only included) */
	uint64_t skipped;     /* over max_size with oversize = skip, or without a usable key */
	uint64_t dropped;     /* dropped by the filter */
	uint64_t deleted;     /* deleted at the server (QUIT confirmed) */
	uint64_t bytes;       /* body octets downloaded */
	uint64_t errors;      /* messages that failed, plus one for a failed session */
	int exit_code;        /* sysexits.h code for this account */
	uint64_t login_delay; /* the server's LOGIN-DELAY (seconds), 0 if none */
	char error[512];      /* the first error, in plain words */
};

struct progress {
	bool enabled;
	const char *account;
	uint64_t msgs_total, msgs_done, bytes_total, bytes_done;
	int64_t start_ms, last_ms;
	int fd; /* where child processes send updates (-1: draw here) */
	int slot;
};

/* Whether bars are drawn at all (stderr is a terminal and neither --json nor -q was given). */
void progress_enable(bool on);

/* Start the bar of ACCOUNT for MSGS messages and BYTES octets. */
void progress_start(struct progress *p, const char *account, uint64_t msgs, uint64_t bytes);

/* BYTES more octets arrived; MSG_DONE when a message is complete. Redraws at most 10 times a
 * second. */
void progress_add(struct progress *p, uint64_t bytes, bool msg_done);

/* Remove the bar. */
void progress_end(struct progress *p);

/* Send progress of this (child) process to FD for the parent to draw, as slot SLOT. */
void progress_to_parent(int fd, int slot);

/* Parent side: read the updates waiting on FD (non-blocking) and redraw the combined bar. */
void progress_collect(int fd);

/* Parent side: clear the combined bar. */
void progress_collect_end(void);

/* Print ST of ACCOUNT as one JSON object on one line to stdout, with a single write. */
void progress_json(const char *account, const struct fetch_stats *st);

/* Print a one-line human summary of ACCOUNT to stderr (terminal only). */
void progress_summary(const char *account, const struct fetch_stats *st);

#endif
