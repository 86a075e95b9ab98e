/* Maildir access: indexed snapshot scan of new/ and cur/, UIDLs, Seen renames, removal, locking. */
#ifndef GANNET_MAILDIR_H
#define GANNET_MAILDIR_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>
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
	struct mindex_arena arena;      /* names, and the UIDLs that are not part of a name */
	uint32_t source;                /* enum uidl_source the UIDLs were made with */
	struct mindex_dirstamp dirs[2]; /* new/ and cur/ before the scan, for gannet.index */
	bool listed; /* public: the scan read new/ and cur/ (false: the index's stamps matched) */
	bool dirty;  /* differs from gannet.index: maildir_snapshot_save() has work to do */
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
 * and one of cur/ (none when both directories still carry the stamps of the index, so nothing was
 * added, removed or renamed since it was written: then the index is the listing, see mindex.h);
 * files DIR/gannet.index knows (same base name) are neither stat'ed nor opened.
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
/* Whether maildir_scan may skip the readdirs when new/ and cur/ carry the stamps gannet.index
 * was written with (see "Directory stamps" in mindex.h); on by default. Turn it off for Maildirs
 * on shared storage (NFS caches directory attributes; hosts' clocks differ): process-wide. */
void maildir_scan_trust_stamps(bool on);
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

/* Create DIR with new/ cur/ tmp/ (0700) when missing, as maildir_scan does. 0, or -1 with errno. */
int maildir_create(const char *dir);

/* ---- the maildrop lock by kind (issue 3 item 5; lib/maildir_lock.c) ----
 *
 * flock: DIR/gannet.lock as maildir_lock() above; one host (every gannetd on it excludes every
 * other), released by the kernel when the holder dies.
 * dotlock: DIR/gannet.dotlock made by liblockfile (a unique temp file, link(), then a check that
 * the lock is that file: atomic on NFS, where O_EXCL and flock are not to be trusted). It holds
 * "PID HOST\n". It is stale, and taken over, when HOST is this host (or absent, as
 * `dotlockfile -p` writes) and PID is gone, or, whatever it names, when its mtime is
 * MAILDIR_DOTLOCK_STALE_SEC old: a pid means nothing on another host, so between hosts only the
 * age counts, and a live holder refreshes it every MAILDIR_DOTLOCK_TOUCH_SEC. Host names must
 * differ between the hosts that share a Maildir, and their clocks agree to well under a minute.
 * Every gannetd that shares a Maildir must use the same kind: a flock and a dotlock ignore each
 * other. Neither kind is anything a delivery agent looks at: Maildir delivery takes no lock. */
#define MAILDIR_DOTLOCK_NAME "gannet.dotlock"
/* liblockfile's own age rule for a lock without a valid pid (lockfile_check): fixed at 5 minutes,
 * so ours is the same; a longer one would be overruled by every liblockfile user, ourselves too. */
#define MAILDIR_DOTLOCK_STALE_SEC 300
/* The holder touches its lock this often: five refreshes fit in the stale age, so one late or
 * lost refresh (a busy NFS server) never makes a live lock look stale. */
#define MAILDIR_DOTLOCK_TOUCH_SEC 60
/* Largest lock file content read back: a pid, a space, a host name (HOST_NAME_MAX 64), "\n". */
#define MAILDIR_DOTLOCK_CONTENT_MAX 96

enum maildir_lock_kind { MAILDIR_LOCK_FLOCK, MAILDIR_LOCK_DOTLOCK };

/* A held maildrop lock. fd >= 0 while held: the flock fd, or the dotlock file opened to check
 * that the lock is still ours. Set fd to -1 before first use. */
struct maildir_lockh {
	int fd;
	enum maildir_lock_kind kind;
	dev_t dev; /* dotlock: the lock file we made, to tell it from a successor's */
	ino_t ino;
	char *path; /* dotlock: its file name (heap, exact size: a held lock lives as long as a
	               POP3 session, and sessions are many); NULL otherwise */
};

/* Take the lock of DIR of KIND, never waiting (a held lock is -2 at once; the caller retries if
 * it wants). Creates DIR like maildir_scan when missing. 0 with H filled, -2 when another session
 * holds it, -1 with errno. */
int maildir_lock_mode(const char *dir, enum maildir_lock_kind kind, struct maildir_lockh *h);

/* Dotlock: check the lock file is still the one we made and set its mtime to now (on NFS the
 * server's time); flock: nothing to do. 0, or -1 when the lock was lost (taken over as stale
 * after MAILDIR_DOTLOCK_STALE_SEC without a refresh): H is then released without touching the
 * successor's file, and the caller must not change the maildrop any more. */
int maildir_lock_refresh(struct maildir_lockh *h);

/* Release H (a dotlock file is removed only while it is still ours). Harmless when not held. */
void maildir_lock_drop(struct maildir_lockh *h);

/* ---- crash-safe UPDATE (issue 3 item 4) ----
 *
 * QUIT writes a journal before it removes any file: DIR/gannet.update lists the base names (the
 * file name before ":2,") of every message UPDATE is about to remove. It is written to
 * gannet.update.tmp, fsync'd, renamed into place and the root fsync'd, so gannet.update is either
 * whole or absent; the unlinks follow, then new/ and cur/ are fsync'd, the journal removed and
 * the root fsync'd again. A session that finds a journal at login (under the maildrop lock, before
 * the scan) finishes the interrupted UPDATE: it removes exactly the journalled names still
 * present in new/ or cur/ (whatever their flags now) and then the journal. A journal that fails
 * its checks, and any gannet.update.tmp, are from a crash before the UPDATE started: they are
 * removed and nothing is deleted.
 *
 * Format, version 1, integers little-endian:
 *   0   8  magic "GANNETUJ"
 *   8   4  version, 1 (any other: rejected, nothing deleted)
 *  12   4  entry count, 1..MAILDROP_MESSAGES_MAX
 *  16   8  length of the whole file in octets (must equal the file's size)
 *  24   4  CRC32C (as gannet.index) of octets 0..23 followed by octets 28..end
 *  28   .  count entries: 2 octets name length (1..MINDEX_NAME_MAX), then the base name (no
 *          '/', no NUL, not starting with '.')
 */
#define MAILDIR_JOURNAL_NAME     "gannet.update"
#define MAILDIR_JOURNAL_TMP_NAME "gannet.update.tmp"
#define MAILDIR_JOURNAL_MAGIC    "GANNETUJ"
#define MAILDIR_JOURNAL_VERSION  1
#define MAILDIR_JOURNAL_HDR_SIZE 28
/* Largest journal read back: every message of the largest maildrop with a longest name. Beyond
 * that the file cannot be ours and is rejected before anything is allocated. */
#define MAILDIR_JOURNAL_MAX                                                                        \
	((uint64_t)MAILDIR_JOURNAL_HDR_SIZE +                                                      \
	 (uint64_t)MAILDROP_MESSAGES_MAX * (2 + MINDEX_NAME_MAX))

/* Journal the messages I of SNAP with DEL[I] != 0 (DEL has snap->count octets) into
 * DIR/gannet.update, durably (see above). Nothing to remove writes nothing. 0, or a maildir_err
 * with *ERROR_R: then nothing was journalled and nothing may be removed. */
int maildir_journal_write(const char *dir, const struct maildir_snapshot *snap,
                          const unsigned char *del, const char **error_r);

/* After the unlinks: fsync new/ and cur/, remove DIR/gannet.update, fsync DIR. 0, or a
 * maildir_err with *ERROR_R (the journal may stay: the next login finishes it, harmlessly). */
int maildir_journal_finish(const char *dir, const char **error_r);

/* At login, under the lock, before maildir_scan: finish an UPDATE a crash interrupted (see
 * above). *REMOVED_R counts the files removed now; *IGNORED_R is true when a torn or corrupt
 * journal was found and discarded. 0 (also when there is no journal), or a maildir_err with
 * *ERROR_R (the journal is then kept for the next login). */
int maildir_journal_recover(const char *dir, size_t *removed_r, bool *ignored_r,
                            const char **error_r);

/* ---- RFC 2449 policies: EXPIRE and LOGIN-DELAY (issue 3 item 6) ---- */

/* EXPIRE values: whole days, or never. */
#define MAILDIR_EXPIRE_NEVER (-1L)

/* Mark in DEL (snap->count octets) every message retrieved (first-retrieved time in the index) at
 * least DAYS days before NOW: DAYS 0 marks every message retrieved at all, MAILDIR_EXPIRE_NEVER
 * none. Returns how many were newly marked (already marked ones are left as they are). */
size_t maildir_expire_mark(const struct maildir_snapshot *snap, unsigned char *del, time_t now,
                           long days);

/* DIR/gannet.login holds the time of the last successful login, as decimal seconds and "\n",
 * written through gannet.login.tmp and rename (a torn write leaves the old time). */
#define MAILDIR_LOGIN_NAME     "gannet.login"
#define MAILDIR_LOGIN_TMP_NAME "gannet.login.tmp"
/* Its largest plausible size: 20 digits and a newline, with room to spare. */
#define MAILDIR_LOGIN_FILE_MAX 32

/* The last login time recorded in DIR, or 0 when none (missing, unreadable or malformed: a
 * policy must never lock a user out because of a broken file; the reason is logged). */
time_t maildir_last_login(const char *dir);

/* Record NOW as the last login in DIR. 0, or -1 with errno (logged by the caller). */
int maildir_set_last_login(const char *dir, time_t now);

/* Seconds until a login is allowed again under DELAY seconds after LAST (0 = allowed now). A
 * LAST in the future (the clock went back, or a forged file) counts as no login. */
long maildir_login_wait(time_t last, time_t now, long delay);

#endif
