/* Maildir access: snapshot scan of new/ and cur/, UIDL derivation, Seen-flag rename, locking. */
#ifndef GANNET_MAILDIR_H
#define GANNET_MAILDIR_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>

#include "gannet_limits.h"

struct maildir_msg {
	char *name;    /* file name (no directory), malloc'd */
	bool in_new;   /* lives in new/ (else cur/) */
	uint64_t size; /* exact POP3 wire size (CRLF form, before stuffing) */
	char uidl[POP3_UIDL_MAX + 1];
	time_t mtime;
};

struct maildir_snapshot {
	struct maildir_msg *msgs; /* delivery order: mtime, then unique part, then name */
	size_t count;
	uint64_t total_size;
};

/* Errors are reported as one of these with a message for the log through ERROR_R: a thread-local
 * buffer ("maildir PATH[/SUB[/FILE]]: what: strerror"), valid until the next failing maildir_*
 * call in the same thread; never free it, and do not send it to the client (it holds paths). */
enum maildir_err {
	MAILDIR_OK = 0,
	MAILDIR_ERR_TEMP = -1, /* transient (I/O error, EMFILE ...): [SYS/TEMP] */
	MAILDIR_ERR_PERM =
	    -2, /* needs an administrator (missing, not a Maildir, EACCES): [SYS/PERM] */
};

/* Scan DIR (the Maildir root holding new/ and cur/). Regular files only (O_NOFOLLOW, fstat, never
 * blocks on a FIFO); names starting with '.' and tmp/ are ignored. Sizes are computed by reading
 * each file through the pop3 encoder. A missing DIR is created with new/ cur/ tmp/ (0700), missing
 * new/ or cur/ too; a missing parent is MAILDIR_ERR_PERM. A second file with the same unique part
 * (same UIDL) is left out with a warning. More than MAILDROP_MESSAGES_MAX messages is
 * MAILDIR_ERR_TEMP. On error SNAP is left empty; on success free it with maildir_snapshot_free. */
int maildir_scan(const char *dir, struct maildir_snapshot *snap, const char **error_r);
void maildir_snapshot_free(struct maildir_snapshot *snap);

/* UIDL for a Maildir file name: the unique part (before a final ":2," info, then before the first
 * ','), used as it is when it is 1..70 characters of 0x21..0x7E, otherwise "H" + the first 40 hex
 * digits of its SHA-256. Flag changes and new/ -> cur/ moves never change it. */
void maildir_uidl(const char *name, char out[POP3_UIDL_MAX + 1]);

/* Open message M for reading (O_RDONLY|O_NOFOLLOW|O_NONBLOCK then regular-file check). Returns an
 * fd or -1 (errno ENOENT when the file was removed from outside). */
int maildir_open_msg(const char *dir, const struct maildir_msg *m);

/* Mark M as seen: rename new/NAME -> cur/NAME:2,S or cur/NAME:2,FLAGS -> cur/NAME:2,FLAGS+S
 * (flags kept in ASCII order; nothing to do when S is there). Updates m->name and m->in_new.
 * 0 or -1 with errno: ENOENT when the file was removed from outside, EEXIST when the target name
 * is taken (never overwritten). The UIDL does not change. */
int maildir_mark_seen(const char *dir, struct maildir_msg *m);

/* Remove message M. 0, or -1 with errno (ENOENT counts as success: already gone). */
int maildir_unlink_msg(const char *dir, const struct maildir_msg *m);

/* Take the exclusive maildrop lock (flock on DIR/gannet.lock, released by the kernel when the
 * holder dies; two sessions of one process exclude each other). Creates DIR like maildir_scan when
 * missing. Returns the lock fd (O_CLOEXEC), -2 when another session holds it, -1 with errno.
 * A child forked while the lock is held shares it until it closes the fd too. */
int maildir_lock(const char *dir);
void maildir_unlock(int lockfd);

#endif
