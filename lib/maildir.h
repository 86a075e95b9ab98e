/* Maildir access: indexed snapshot scan of new/ and cur/, UIDLs, Seen renames, removal, locking. */
#ifndef GANNET_MAILDIR_H
#define GANNET_MAILDIR_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>

#include "gannet_limits.h"
#include "mindex.h"
#include "uidlsrc.h"

/* A buffer that holds any message file name maildir_msg_name() can produce. */
#define MAILDIR_NAME_BUF MINDEX_NAME_BUF

/* The messages of a maildrop at login, numbered 0..count-1 in delivery order (mtime, then unique
 * part). Numbering, sizes and UIDLs never change during a session; removing a message (UPDATE)
 * leaves count and total_size as they were. Read the two counters directly, everything else
 * through the functions below (the record layout may change). */
struct maildir_snapshot {
	size_t count;
	uint64_t total_size;
	/* private to maildir.c: 48 octets a message plus names (see struct mindex_rec) */
	struct mindex_rec *msgs;
	struct mindex_arena arena; /* names, and the UIDLs that are not part of a name */
	uint32_t source;           /* enum uidl_source the UIDLs were made with */
	bool dirty; /* differs from gannet.index: maildir_snapshot_save() has work to do */
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

/* Scan DIR (the Maildir root holding new/ and cur/) with UIDLs from SOURCE. One readdir of new/
 * and one of cur/; files DIR/gannet.index knows (same base name) are neither stat'ed nor opened.
 * Others are regular files only (O_NOFOLLOW, fstat, never blocks on a FIFO), sized from ",W=" in
 * the name or by reading them through the pop3 encoder; names starting with '.' and tmp/ are
 * ignored. A missing DIR is created with new/ cur/ tmp/ (0700), missing new/ or cur/ too; a
 * missing parent is MAILDIR_ERR_PERM. Two files with one unique part: the one still there and
 * first in delivery order is kept, with a warning. Two messages with one UIDL: the one the index
 * knew (then the earlier) keeps it, the other gets its GANNET form (or a salted hash of its unique
 * part when that is taken too). The index is rewritten when anything changed; a failure to write
 * it is logged and the scan still succeeds. More than MAILDROP_MESSAGES_MAX messages is
 * MAILDIR_ERR_TEMP. On error SNAP is left empty; on success free it with maildir_snapshot_free. */
int maildir_scan(const char *dir, enum uidl_source source, struct maildir_snapshot *snap,
                 const char **error_r);
void maildir_snapshot_free(struct maildir_snapshot *snap);

/* Write DIR/gannet.index from SNAP when renames, retrievals or removals changed it (call before
 * releasing the lock). 0 when written or nothing to do, else -1 (logged; the index is a cache). */
int maildir_snapshot_save(const char *dir, struct maildir_snapshot *snap);

/* Message I of SNAP (I < snap->count): its current file name, written into BUF and returned. */
const char *maildir_msg_name(const struct maildir_snapshot *snap, size_t i,
                             char buf[MAILDIR_NAME_BUF]);

/* Message I's exact POP3 size (what LIST says and RETR sends, before dot-stuffing). */
static inline uint64_t maildir_msg_size(const struct maildir_snapshot *snap, size_t i)
{
	return snap->msgs[i].size;
}

/* Message I's UIDL: *LEN_R octets, NOT NUL-terminated (print it with "%.*s"); valid until SNAP is
 * freed, whatever happens to the message meanwhile. */
static inline const char *maildir_msg_uidl(const struct maildir_snapshot *snap, size_t i,
                                           size_t *len_r)
{
	*len_r = snap->msgs[i].uidl_len;
	return snap->arena.p + snap->msgs[i].uidl_off;
}

/* Whether message I is in new/ (else cur/). */
static inline bool maildir_msg_in_new(const struct maildir_snapshot *snap, size_t i)
{
	return (snap->msgs[i].flags & MREC_IN_NEW) != 0;
}

/* Message I's delivery time (the mtime its file had when first seen), and when a scan first saw
 * it and a RETR first retrieved it (0 = never). */
static inline time_t maildir_msg_mtime(const struct maildir_snapshot *snap, size_t i)
{
	return (time_t)snap->msgs[i].mtime;
}

static inline time_t maildir_msg_first_seen(const struct maildir_snapshot *snap, size_t i)
{
	return (time_t)snap->msgs[i].first_seen;
}

static inline time_t maildir_msg_first_retrieved(const struct maildir_snapshot *snap, size_t i)
{
	return (time_t)snap->msgs[i].first_retrieved;
}

/* Record that message I was retrieved whole at WHEN, unless it already was (EXPIRE counts from the
 * first retrieval). Kept by the next maildir_snapshot_save(). */
void maildir_msg_set_retrieved(struct maildir_snapshot *snap, size_t i, time_t when);

/* Open message I for reading (O_RDONLY|O_NOFOLLOW|O_NONBLOCK then regular-file check). When its
 * file is gone, new/ and cur/ are searched for its unique part (another agent renamed it) and the
 * snapshot follows. Returns an fd or -1 (errno ENOENT when the message was removed). */
int maildir_open_msg(const char *dir, struct maildir_snapshot *snap, size_t i);

/* Mark message I as seen: rename new/NAME -> cur/NAME:2,S or cur/NAME:2,FLAGS -> cur/NAME:2,FLAGS+S
 * (flags kept in ASCII order; nothing to do when S is there), following a rename from outside as
 * maildir_open_msg does. 0 or -1 with errno: ENOENT when the message was removed, EEXIST when the
 * target name is taken (never overwritten). The UIDL does not change. */
int maildir_mark_seen(const char *dir, struct maildir_snapshot *snap, size_t i);

/* Remove message I (following a rename from outside). 0, or -1 with errno; ENOENT counts as
 * success (already gone). Count, numbering and total_size stay as they are. */
int maildir_unlink_msg(const char *dir, struct maildir_snapshot *snap, size_t i);

/* Take the exclusive maildrop lock (flock on DIR/gannet.lock, released by the kernel when the
 * holder dies; two sessions of one process exclude each other). Creates DIR like maildir_scan when
 * missing. Returns the lock fd (O_CLOEXEC), -2 when another session holds it, -1 with errno.
 * A child forked while the lock is held shares it until it closes the fd too. */
int maildir_lock(const char *dir);
void maildir_unlock(int lockfd);

#endif
