/* UIDL sources: Gannet's own rule, the Maildir base name, Dovecot's dovecot-uidlist, X-UIDL. */
#ifndef GANNET_UIDLSRC_H
#define GANNET_UIDLSRC_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "gannet_limits.h"
#include "mindex.h"

/* Where a message's UIDL comes from (the issue 3 migration setting). The values are stored in
 * gannet.index, so never renumber them. Whatever the source, a message it gives no legal UIDL
 * (RFC 1939 §7: 1..70 octets of 0x21..0x7E) gets the GANNET form, and so does every message but
 * the first that would share a UIDL (see maildir_scan).
 *   GANNET   the unique part (name before ":2," and before the first ','), as it is when legal,
 *            else "H" + 40 lower-case hex digits of its SHA-256.
 *   MAILDIR  Courier/qmail style: the base name before ":2,", ",S=" and ",W=" fields included;
 *            when that is not legal (too long, or a byte outside 0x21..0x7E), "H" + 40 hex of
 *            the SHA-256 of the base name (never truncated: two names sharing 70 characters
 *            must not share a UIDL).
 *   DOVECOT  Dovecot's default pop3_uidl_format %08Xu%08Xv: UID then UIDVALIDITY from
 *            dovecot-uidlist, 8 hex digits each, lower case (Dovecot's %X modifier prints "%llx":
 *            checked against dovecot-pop3d 2.3.19 on the same Maildir); a record's P extension (a
 *            saved POP3 UIDL) wins as in Dovecot: "P" alone means the base name, "Pvalue" the
 * value. XUIDL    the value of the first "X-UIDL:" header (qpopper and others), read once. */
enum uidl_source {
	UIDL_SOURCE_GANNET = 0,
	UIDL_SOURCE_MAILDIR = 1,
	UIDL_SOURCE_DOVECOT = 2,
	UIDL_SOURCE_XUIDL = 3,
};
#define UIDL_SOURCE_COUNT 4

/* Length of "H" + 40 hex digits, the hashed form. */
#define UIDL_HASHED_LEN 41

/* "gannet", "maildir", "dovecot" or "x-uidl" (any case) into *SRC_R: 0, or -1 when unknown. */
int uidl_source_parse(const char *s, enum uidl_source *src_r);
/* The setting value for SRC ("gannet" ...), "?" when out of range. */
const char *uidl_source_name(enum uidl_source src);

/* True when S[0..LEN) is a legal unique-id: 1..70 octets, each 0x21..0x7E. */
bool uidl_valid(const char *s, size_t len);

/* Offset of the ":2," info in NAME[0..LEN) (the last ':' when "2," follows it, so a ':' inside
 * the unique part is kept), or LEN when there is none: the length of the base name. */
size_t maildir_base_len(const char *name, size_t len);
/* Length of the unique part: the base name up to its first ','. */
size_t maildir_unique_len(const char *name, size_t len);

/* The ",W=<n>" field of base name BASE[0..LEN) (the CRLF size Dovecot records) into *W_R, when
 * it is there and agrees with FILE_SIZE (the file's st_size): FILE_SIZE <= W <= 2*FILE_SIZE+2,
 * and ",S=", if any, equal to FILE_SIZE. Otherwise false: read the file (S-137). */
bool maildir_w_size(const char *base, size_t len, uint64_t file_size, uint64_t *w_r);

/* Buffers for maildir_read_msg, allocated on first use; free both members when done. */
struct maildir_readbuf {
	char *in, *out;
};
/* Read message FD once: with XUIDL, its X-UIDL into XUIDL and *XLEN_R (0 when none, or not
 * legal); with SIZE_R, its exact POP3 size through the pop3 encoder. 0, or -1 with errno. */
int maildir_read_msg(int fd, struct maildir_readbuf *buf, char xuidl[POP3_UIDL_MAX + 1],
                     size_t *xlen_r, uint64_t *size_r);

/* The GANNET/MAILDIR rule on S[0..LEN): when S is legal, sets *PLAIN_R and returns LEN (OUT is
 * untouched: the UIDL is S itself); otherwise writes "H" + 40 hex of SHA-256(S) into OUT
 * (NUL-terminated) and returns 41. Returns 0 only when SHA-256 failed (out of memory). */
size_t uidl_derive(const char *s, size_t len, char out[POP3_UIDL_MAX + 1], bool *plain_r);

/* The GANNET-source UIDL of a Maildir file name (S-139): the unique part as it is when it is 1..70
 * characters of 0x21..0x7E, otherwise "H" + 40 hex digits of its SHA-256. */
void maildir_uidl(const char *name, char out[POP3_UIDL_MAX + 1]);

/* "H" + 40 hex of SHA-256(S[0..LEN) followed by SALT as 4 big-endian octets when SALT > 0):
 * the collision fallbacks. Returns 41, or 0 when SHA-256 failed. */
size_t uidl_hashed(const char *s, size_t len, uint32_t salt, char out[POP3_UIDL_MAX + 1]);

/* The X-UIDL of a message whose first LEN octets are MSG (the caller reads at most
 * XUIDL_SCAN_MAX). Only the header counts (up to the first empty line), the first X-UIDL field
 * only, matched in any case; folded lines are unfolded and the value trimmed of SP/HTAB. Writes
 * the value into OUT and returns its length, or 0 when there is none or it is not legal. */
size_t uidl_xuidl(const char *msg, size_t len, char out[POP3_UIDL_MAX + 1]);
/* How much of a message uidl_xuidl looks at: headers beyond this are not searched. */
#define XUIDL_SCAN_MAX 65536

/* One message to look up in dovecot-uidlist. */
struct uidl_dovecot_req {
	const char *base; /* in: the file name up to its first ':' (Dovecot's base name) */
	size_t base_len;
	char uidl[POP3_UIDL_MAX + 1]; /* out, NUL-terminated */
	uint8_t uidl_len;             /* out: 0 when not found, or its P value is not legal */
};

/* Fill REQ[0..N) from ROOTFD/dovecot-uidlist (DIR only names it in log lines). Version 1 and 3
 * files are read; a corrupt line is skipped and counted, and one warning per call says how many.
 * Returns 0, or -1 when the file is missing, unreadable or has a bad header (REQ left empty,
 * *WHY_R says why; nothing is logged). Duplicate base names: the last line wins, as in Dovecot. */
int uidl_dovecot_lookup(int rootfd, const char *dir, struct uidl_dovecot_req *req, size_t n,
                        const char **why_r);

/* Give each record of V[0..N) without a UIDL (MREC_UIDL) one from SOURCE, else its GANNET form;
 * then make UIDLs unique (RFC 1939 §7): records whose UIDL came from the index claim theirs first,
 * then the rest in array order. A later claimant gets its GANNET form, else a salted hash of its
 * unique part, else is left out (MREC_GONE); each case is logged. ROOTFD is the Maildir root
 * (dovecot-uidlist), DIR its name for logs. *CHANGED_R is set when a UIDL was replaced. 0, or -1
 * with errno (ENOMEM, or EIO when SHA-256 failed). */
int uidl_assign(const struct mindex_view *v, size_t n, enum uidl_source source, int rootfd,
                const char *dir, bool *changed_r);

#endif
