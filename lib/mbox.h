/* mbox access (/var/mail/USER): session lock, snapshot scan under the delivery locks, UIDLs,
 * reads for RETR/TOP, and a crash-safe UPDATE that writes a new file and renames it. */
#ifndef GANNET_MBOX_H
#define GANNET_MBOX_H

#include <stddef.h>
#include <stdint.h>

#include "gannet_limits.h"

/* ---- Format and conventions ----
 *
 * A message starts with a "From " line at the start of the file or right after an empty line
 * ("\n" or "\r\n"); the rest of that line is not checked (a broken From_ line with no date still
 * separates). The From_ line is not part of the message, nor is the empty line before the next
 * From_ line, nor a last empty line at the end of the file (the separator the MDA writes after
 * each message, so that a message's size does not change when the next one arrives). A "From "
 * line that does not follow an empty line is body text. A message without a final newline ends
 * at EOF. A non-empty file that does not start with "From " is not an mbox: MBOX_ERR_PERM, and it
 * is never rewritten.
 *
 * ">From " lines are sent as they are stored. mboxo quoting (">From " for "From ") cannot be
 * undone reliably (a line that really began with ">From " is indistinguishable), so, as popa3d and
 * Dovecot do, the stored octets go out unchanged (after the usual CRLF and dot-stuffing).
 *
 * Sizes are exact POP3 sizes: the octets RETR sends before dot-stuffing, counted by the encoder of
 * lib/pop3.h over the stored message (bare LF -> CRLF, a final CRLF when the message does not end
 * in a newline).
 *
 * UIDLs: the message's first X-UIDL: header (in the header block, unfolded, value without
 * surrounding blanks) when it is 1..70 characters 0x21..0x7E and no earlier message has it; else
 * the first 32 hex digits of the SHA-256 of the From_ line and the header lines (each without
 * its line ending, then "\n"), with "-1", "-2" ... for the second, third ... message with the
 * same value. So UIDLs do not depend on the message's position, the file's line endings, or a
 * missing final newline, and stay the same across sessions and across UPDATEs that remove other
 * messages (only removing the first of two identical copies moves the plain UIDL to the other).
 *
 * ---- Locks ----
 *
 * Session lock: flock(LOCK_EX|LOCK_NB) on the open mailbox, held from mbox_open to mbox_close, so
 * two POP3 sessions exclude each other ([IN-USE]) and a crashed session's lock goes with it. On
 * Linux flock and fcntl locks are independent, so delivery (Postfix local(8) and procmail lock
 * with a dotlock and fcntl) never waits for a POP3 session. Not for NFS, where flock is emulated
 * with fcntl locks and would block delivery for the whole session. An MDA configured to use flock
 * (Postfix mailbox_delivery_lock = flock) would wait for the session too.
 *
 * Delivery locks, held only while scanning and updating, in the order Postfix local(8) and
 * procmail take them: the dotlock PATH.lock (liblockfile, with our pid in it, so a lock left by a
 * dead process is stale; liblockfile falls back to its setgid helper when the spool directory is
 * not writable), then an fcntl write lock on the whole file. Both are waited for at most
 * mbox_lock_wait_ms() (default MBOX_LOCK_WAIT_SECONDS), then MBOX_ERR_TEMP.
 *
 * UPDATE replaces the file with rename(2): the MDA must take the dotlock before it opens the
 * mailbox (Postfix and procmail do on Debian), otherwise an MDA blocked in fcntl on the old file
 * could append to the replaced inode. The process needs write access to the spool directory for
 * the temporary file (on Debian /var/mail is root:mail 2775: run the mail process with the mail
 * group as a supplementary group, like Dovecot's mail_privileged_group); without it UPDATE fails
 * with MBOX_ERR_PERM and changes nothing.
 *
 * Ownership: the mailbox must be a regular file with one link, owned by the effective uid (the
 * mail process runs as the mailbox owner; an mbox of another user, a symlink or a hard link is
 * MBOX_ERR_PERM). Its group and mode are kept by UPDATE.
 */

/* How long scan and update wait for the delivery locks by default. Postfix local(8) itself
 * gives up on a busy mailbox after about 20 s (deliver_lock_attempts * deliver_lock_delay); a POP3
 * login that waits longer than that is better answered with [SYS/TEMP]. */
#define MBOX_LOCK_WAIT_SECONDS 20

/* Interval between lock attempts while waiting (dotlock and fcntl). */
#define MBOX_LOCK_POLL_MS 50

/* The temporary file UPDATE writes beside DIR/BASE: DIR/.BASE.gannet-update (a dot file, so no
 * user name can collide with it). mbox_open removes a leftover one under the delivery locks. */
#define MBOX_UPDATE_TMP_PREFIX "."
#define MBOX_UPDATE_TMP_SUFFIX ".gannet-update"

/* Appended to the mailbox path for the dotlock (the convention of every MDA). */
#define MBOX_DOTLOCK_SUFFIX ".lock"

/* Octets of a From_ line or header line kept to look for X-UIDL: ("X-UIDL:", blanks, 70
 * characters, blanks, CRLF). Longer lines are hashed but never taken as an X-UIDL. */
#define MBOX_HDR_LINE_MAX 256

/* UIDL of a hashed message: 32 hex digits, '-', at most 7 digits (< MAILDROP_MESSAGES_MAX). */
#define MBOX_HASH_UIDL_HEX 32

/* Octets read per pread while scanning and copying. */
#define MBOX_IO_CHUNK RETR_CHUNK

/* Errors are reported as one of these with a message for the log through ERROR_R: a thread-local
 * buffer ("mbox PATH: what: strerror"), valid until the next failing mbox_* call in the same
 * thread; never free it, and do not send it to the client (it holds paths). */
enum mbox_err {
	MBOX_OK = 0,
	MBOX_ERR_TEMP = -1, /* transient (I/O error, lock timeout, file changed): [SYS/TEMP] */
	MBOX_ERR_PERM =
	    -2, /* needs an administrator (not an mbox, wrong owner, EACCES): [SYS/PERM] */
	MBOX_ERR_INUSE = -3, /* another POP3 session holds the mailbox: [IN-USE] */
};

/* An open mailbox: path, descriptor (O_RDWR, session flock held), dev/ino. Opaque. */
struct mbox_handle;

/* Private per-message record (see mbox_int.h). */
struct mbox_rec;

/* The messages of the mailbox at scan time, numbered 0..count-1 in file order. Numbering, sizes
 * and UIDLs never change during a session; UPDATE leaves count and total_size as they were. Read
 * the two counters directly, everything else through the functions below. */
struct mbox_snapshot {
	size_t count;
	uint64_t total_size; /* sum of the POP3 sizes */
	/* private to mbox.c and mbox_parse.c */
	struct mbox_rec *msgs;
	char *arena; /* UIDLs, not NUL-terminated */
	size_t arena_len, arena_cap;
	uint64_t file_size; /* octets of the file the snapshot covers (later mail is not in it) */
	uint64_t dev, ino;  /* the file scanned (0/0 when the mailbox was missing) */
};

/* Open the mailbox PATH (O_RDWR|O_NOFOLLOW|O_NONBLOCK|O_CLOEXEC; regular, one link, owned by the
 * euid) and take the session lock: MBOX_ERR_INUSE when another session holds it. A missing
 * mailbox is an empty one (no session lock: there is nothing to protect; it is not created).
 * Then, under the delivery locks, remove a temporary file a crashed UPDATE left (one nobody
 * holds a flock on; a failure to get
 * the locks for that is not an error: the leftover is retried next time). On success *H_R is
 * freed with mbox_close. */
int mbox_open(const char *path, struct mbox_handle **h_r, const char **error_r);

/* Take the delivery locks, parse the mailbox into SNAP (see the format above; at most
 * MAILDROP_MESSAGES_MAX messages, else MBOX_ERR_TEMP), release the locks. On error SNAP is left
 * empty; on success free it with mbox_snapshot_free. */
int mbox_scan(struct mbox_handle *h, struct mbox_snapshot *snap, const char **error_r);

/* Read up to LEN stored octets of message I from its offset OFF (pread, no lock: delivery only
 * appends and only the session lock holder rewrites). *GOT_R is 0 at the end of the message.
 * MBOX_ERR_TEMP, the reason in mbox_last_error(), when the file is no longer the scanned one or
 * is shorter than at scan time, or a read fails. Feed the octets to the pop3 encoder. */
int mbox_msg_read(struct mbox_handle *h, const struct mbox_snapshot *snap, size_t i, uint64_t off,
                  void *buf, size_t len, size_t *got_r);

/* The text of the last failed mbox_msg_read in this thread (for the log). */
const char *mbox_last_error(void);

/* Message I's stored length (what mbox_msg_read can return in total) and its offset in the
 * file. */
uint64_t mbox_msg_raw_len(const struct mbox_snapshot *snap, size_t i);
uint64_t mbox_msg_raw_offset(const struct mbox_snapshot *snap, size_t i);

/* Message I's exact POP3 size (what LIST says and RETR sends, before dot-stuffing). */
uint64_t mbox_msg_size(const struct mbox_snapshot *snap, size_t i);

/* Message I's UIDL: *LEN_R octets, NOT NUL-terminated (print it with "%.*s"); valid until SNAP is
 * freed. */
const char *mbox_msg_uidl(const struct mbox_snapshot *snap, size_t i, size_t *len_r);

/* Remove the messages I with DEL[I] != 0 (DEL has snap->count octets). Under the delivery locks,
 * after checking that PATH is still the scanned file and at least as long (else MBOX_ERR_TEMP and
 * nothing changed), the kept messages (From_ lines, contents and separators exactly as stored)
 * and everything appended since the scan are written to the temporary file, which gets the old
 * file's group and mode, is fsync'd, takes over the session lock and is renamed over the mailbox;
 * then the directory is fsync'd. A crash leaves the old file or the new one, whole. Nothing to
 * delete writes nothing; everything deleted leaves an empty file (plus later mail). On error the
 * old file is untouched and the temporary removed: MBOX_ERR_TEMP (full disk, I/O, lock timeout)
 * or MBOX_ERR_PERM (read-only or unwritable directory). After success the handle refers to the
 * new file; SNAP is only good for freeing. */
int mbox_update(struct mbox_handle *h, const struct mbox_snapshot *snap, const unsigned char *del,
                const char **error_r);

void mbox_snapshot_free(struct mbox_snapshot *snap);

/* Release the session lock and free H (NULL is fine). */
void mbox_close(struct mbox_handle *h);

/* ---- also for tests, fuzzing and tools ---- */

/* Parse DATA[0..LEN) as a whole mailbox into SNAP, feeding the parser CHUNK octets at a time
 * (0: all at once), exactly as mbox_scan parses a file. Same results and errors as mbox_scan. */
int mbox_parse_mem(const void *data, size_t len, size_t chunk, struct mbox_snapshot *snap,
                   const char **error_r);

/* The delivery-lock wait in milliseconds, and a setter (tests; 0 = try once). */
unsigned int mbox_lock_wait_ms(void);
void mbox_set_lock_wait_ms(unsigned int ms);

/* The temporary file name of PATH's UPDATE into BUF[0..SIZE): 0, or -1 when it does not fit. */
int mbox_update_tmp_path(const char *path, char *buf, size_t size);

#endif
