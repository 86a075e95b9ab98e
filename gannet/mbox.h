/* mboxrd delivery: locking (fcntl and a link()-based dotlock), the From_ line, ">From " quoting,
 * and crash safety through an append record journalled before each append. */
#ifndef GANNET_MBOX_H
#define GANNET_MBOX_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "climits.h"
#include "config.h"
#include "journal.h"
#include "util.h"

/* A locked mbox. */
struct mbox_lock {
	int fd;
	bool dotlocked;
	char dotlock[GANNET_PATH_MAX];
};

/* Open PATH (created 0600 when missing) and lock it: the dotlock PATH.lock (made with link(),
 * broken when older than GANNET_DOTLOCK_STALE seconds; skipped when the directory is not
 * writable for us), then an fcntl write lock; each waited for at most WAIT_S seconds. 0 or -1
 * with E (EX_TEMPFAIL when another program holds the lock). */
int mbox_lock(const char *path, int wait_s, struct mbox_lock *l, struct gerr *e);

/* Release both locks and close. */
void mbox_unlock(struct mbox_lock *l);

/* Append the message in SPOOL_FD (LF lines, read from offset 0) to A's mbox: lock, write the
 * append record "offset end flags key" to STATE_DIR/ACCOUNT.mbox-append and fsync it, then the
 * From_ line (envelope sender from Return-Path, else MAILER-DAEMON), the mboxrd-quoted message
 * and an empty line, fsync, unlock. HEADERS_ONLY is kept in the record for the recovery. 0 or -1
 * with E; on failure the mbox is truncated back to its old size. */
int mbox_append(const struct account *a, const char *state_dir, int spool_fd, const char *key,
                bool headers_only, struct gerr *e);

/* After a crash: read the append record of A and repair the mbox. Bytes of an append the journal
 * J does not record as seen are cut off (the message is fetched again), unless other mail was
 * appended after a complete copy, in which case the copy is recorded as seen instead. 0 or -1
 * with E. */
int mbox_recover(const struct account *a, const char *state_dir, struct journal *j, struct gerr *e);

/* The path of A's append record. 0 or -1 when too long. */
int mbox_record_path(const struct account *a, const char *state_dir, char *out, size_t size);

#endif
