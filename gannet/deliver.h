/* Local delivery: idempotent Maildir (tmp/, fsync, rename to new/ under a name derived from the
 * account and the message key), an mboxrd file (mbox.c), or an MDA command fed from a spool
 * file, with an optional filter command in front of all three. */
#ifndef GANNET_DELIVER_H
#define GANNET_DELIVER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "climits.h"
#include "config.h"
#include "util.h"

/* "gannet-" + 40 hex digits. */
#define DELIVER_NAME_MAX 48

enum deliver_result { DELIVERED = 0, DELIVER_DROPPED = 1 };

struct deliverer {
	const struct account *acc;
	char state_dir[GANNET_PATH_MAX];
	unsigned uncommitted; /* Maildir renames not yet made durable by a directory fsync */
	/* the message being written */
	int fd;
	char key[GANNET_KEY_MAX + 1];
	char name[DELIVER_NAME_MAX];
	char tmp[GANNET_PATH_MAX];
	uint64_t bytes;
	bool
	    headers_only; /* set by the caller before deliver_begin: a TOP n 0 copy (mbox record) */
};

/* Prepare delivery for A (Maildir created with new/ cur/ tmp/ 0700 when missing). 0 or -1. */
int deliver_init(struct deliverer *d, const struct account *a, const char *state_dir,
                 struct gerr *e);

/* The Maildir file name of KEY for account ACCOUNT: the same every time, which makes a repeated
 * delivery after a crash replace the first one instead of duplicating it. */
void deliver_name(const char *account, const char *key, char out[DELIVER_NAME_MAX]);

/* Whether KEY is already in the Maildir: in new/ (one stat), or with CHECK_CUR also in cur/
 * (a directory scan, done only for deliveries a crash interrupted). Always false for an MDA. */
bool deliver_exists(struct deliverer *d, const char *key, bool check_cur);

/* Start writing the message KEY. 0 or -1 with E. */
int deliver_begin(struct deliverer *d, const char *key, struct gerr *e);

/* Append BUF[0..LEN) to the message. 0 or -1 with E. */
int deliver_write(struct deliverer *d, const char *buf, size_t len, struct gerr *e);

/* Finish the message: fsync, run the filter, then rename into new/ (durable after
 * deliver_commit), append to the mbox (durable on return) or run the MDA (durable when it exits
 * 0). DELIVERED, DELIVER_DROPPED, or -1 with E; the temporary file is gone in every case. */
int deliver_end(struct deliverer *d, struct gerr *e);

/* Throw away a message being written (the transfer failed). */
void deliver_abort(struct deliverer *d);

/* Make the Maildir renames since the last commit durable (fsync of new/). 0 or -1 with E. */
int deliver_commit(struct deliverer *d, struct gerr *e);

#endif
