/* The TRANSACTION-state engine: a window of pipelined commands (LIST n, TOP n 0 fingerprints,
 * RETR, TOP n 0 headers, DELE) with replies paired in order, bodies streamed through the
 * dot-unstuffing decoder into delivery, and batched commits that make deliveries durable before
 * the journal records them and before any DELE is sent. */
#ifndef GANNET_TRANSFER_H
#define GANNET_TRANSFER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "climits.h"
#include "config.h"
#include "deliver.h"
#include "journal.h"
#include "progress.h"
#include "session.h"

#define SIZE_UNKNOWN UINT64_MAX

/* What the plan says about one message of the maildrop. */
enum {
	M_NEW = 1,      /* not seen before: download */
	M_HEADERS = 2,  /* download only the header (TOP n 0): oversize = headers */
	M_DELETE = 4,   /* seen and durable: delete at the server */
	M_SKIP = 8,     /* leave alone this time */
	M_HAS_KEY = 16, /* key[] is set */
	M_DONE = 32,    /* delivered (or dropped) in this session */
	M_DROPPED = 64, /* the filter dropped it */
};

struct fmsg {
	uint64_t num;  /* message number in this session */
	uint64_t size; /* LIST size, or SIZE_UNKNOWN */
	uint8_t flags;
	char key[GANNET_KEY_MAX + 1];
};

enum xop { XOP_LIST, XOP_FP, XOP_RETR, XOP_TOP, XOP_DELE };

struct xitem {
	uint8_t op;
	uint32_t idx; /* into the message table */
};

struct fetch_ctx {
	const struct account *acc;
	struct sess *s;
	struct journal *j;
	struct deliverer *d;
	struct progress *prog;
	struct fetch_stats *st;
	struct gerr *e;     /* errors that end the session */
	struct gerr msgerr; /* the first error of a single message */
	struct fmsg *m;
	size_t n;
	int64_t now;      /* wall-clock time for journal records */
	uint32_t *commit; /* delivered messages waiting for a commit */
	size_t ncommit;
	struct xitem *dele; /* DELE commands queued by commits */
	size_t ndele, dele_cap;
	uint64_t dele_ok; /* DELEs the server accepted (final only after QUIT) */
};

/* Send ITEMS[0..N) through the pipeline window and handle every reply, plus the DELEs that
 * commits queue on the way. 0, or -1 with f->e set when the session cannot go on (deliveries
 * made until then are committed before returning). */
int xfer_run(struct fetch_ctx *f, const struct xitem *items, size_t n);

/* Make pending deliveries durable, record them in the journal (synced), and queue their DELE
 * when the account deletes after download. 0 or -1 with f->e set. */
int xfer_commit(struct fetch_ctx *f);

/* Queue a DELE for message IDX (sent by the next xfer_run). 0 or -1 on memory exhaustion. */
int xfer_queue_dele(struct fetch_ctx *f, uint32_t idx);

#endif
