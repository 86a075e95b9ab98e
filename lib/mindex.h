/* The per-maildrop index file (gannet.index): format, checksum, reader, atomic writer, hashing. */
#ifndef GANNET_MINDEX_H
#define GANNET_MINDEX_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

/* gannet.index lives in the Maildir root (beside new/ cur/ tmp/ and gannet.lock), so no scan of
 * new/ or cur/ ever lists it. It is a cache of what a scan learnt (sizes, UIDLs, times), never
 * trusted over the directory: every scan still reads new/ and cur/, and a file the index does not
 * list, or lists under another base name, is examined afresh.
 *
 * Format, version 1. All integers little-endian, no padding, no alignment.
 *
 *   header, 24 octets
 *     0   8  magic "GANNETIX"
 *     8   4  version, 1. A larger version is "from a newer Gannet": ignored, rebuilt.
 *    12   4  flags: bits 0..7 the UIDL source (enum uidl_source) the UIDLs were made with;
 *            bits 8..31 zero (a set bit is a feature this reader lacks: ignored, rebuilt)
 *    16   4  entry count, at most MAILDROP_MESSAGES_MAX
 *    20   4  CRC32C (Castagnoli, as iSCSI/ext4: reflected 0x82F63B78, init and final xor
 *            0xFFFFFFFF) of header octets 0..19 followed by every entry octet
 *   entries, count times, in the order of the snapshot that wrote them (delivery order)
 *     0   8  size: exact POP3 size (CRLF form, before dot-stuffing), at most 2^63-1
 *     8   8  mtime, signed seconds: the delivery time that orders the messages
 *    16   8  first seen by a scan, seconds, >= 0
 *    24   8  first retrieved (a whole RETR), seconds, 0 = never (for EXPIRE), >= 0
 *    32   2  name length, 1..255
 *    34   1  UIDL length, 1..70
 *    35   1  flags: bit 0 the file is in new/ (else cur/); bit 1 the UIDL is the first
 *            "UIDL length" octets of the name and is not stored again; bits 2..7 zero
 *    36   .  the current file name: no '/', no NUL, not starting with '.'. Its unique part
 *            (before ":2," then before the first ',') is the key a scan matches files by.
 *     .   .  the UIDL octets (0x21..0x7E) unless flag bit 1
 *   The file ends right after the last entry.
 *
 * Why CRC32C and not SHA-256: the checksum is there to catch torn writes, truncation and bit rot,
 * not forgery (whoever can write the index can write the messages); CRC32C catches every burst
 * up to 32 bits and runs at memory speed with SSE4.2, needs no allocation that could fail, and
 * keeps the fuzzed reader free of libcrypto. Everything read is validated field by field anyway.
 *
 * Written atomically: gannet.index.tmp in the root (never in tmp/ new/ cur/), created with
 * O_EXCL after removing a stale one, written, fsync'd, renamed over gannet.index, then the root
 * fsync'd. A failure at any step (full disk, quota, read-only Maildir) removes the temporary and
 * leaves the previous index as it was. */
#define MINDEX_NAME      "gannet.index"
#define MINDEX_TMP_NAME  "gannet.index.tmp"
#define MINDEX_MAGIC     "GANNETIX"
#define MINDEX_VERSION   1
#define MINDEX_HDR_SIZE  24
#define MINDEX_ENT_FIXED 36
#define MINDEX_NAME_MAX  255

/* One entry as read or to be written. NAME and UIDL are not NUL-terminated; on reading they
 * point into the reader's buffer and are valid during the callback only. */
struct mindex_entry {
	const char *name;
	size_t name_len;
	const char *uidl; /* may point into NAME */
	size_t uidl_len;
	bool in_new;
	uint64_t size;
	int64_t mtime;
	int64_t first_seen;
	int64_t first_retrieved;
};

/* What a read gives. */
enum mindex_result {
	MINDEX_LOADED = 1,    /* every entry was valid and the checksum matched */
	MINDEX_ABSENT = 0,    /* no gannet.index: a first scan */
	MINDEX_REJECTED = -1, /* corrupt, truncated, newer, absurd: ignore it and rebuild */
	MINDEX_IOERR = -2,    /* could not be read: ignore it this time */
	MINDEX_ABORTED = -3,  /* the callback returned non-zero */
};

/* Called for each entry while reading. Entries arrive BEFORE the checksum is known: the caller
 * must treat them as provisional and undo what it did unless the read returns MINDEX_LOADED. */
typedef int (*mindex_entry_cb)(void *arg, const struct mindex_entry *e);

/* Read ROOTFD/gannet.index (O_NOFOLLOW, non-blocking, regular files only). *SOURCE_R and *COUNT_R
 * get the header's UIDL source and entry count once the header is valid. On anything but LOADED
 * and ABSENT, *WHY_R says what was wrong (thread-local text, valid until the next call). */
int mindex_load(int rootfd, uint32_t *source_r, uint32_t *count_r, mindex_entry_cb cb, void *arg,
                const char **why_r);
/* The same reader on an index held in memory (the fuzz target and tests). */
int mindex_read_mem(const void *buf, size_t len, uint32_t *source_r, uint32_t *count_r,
                    mindex_entry_cb cb, void *arg, const char **why_r);

/* Called by the writer for entries 0..count-1 in turn; fill *E (NAME and UIDL must stay valid
 * until the next call). Return 0, or -1 to abort the write. */
typedef int (*mindex_get_cb)(void *arg, size_t i, struct mindex_entry *e);

/* Write a whole index (header and COUNT entries from GET) to FD from its current offset, which
 * must be 0 of a file that can be pwrite()n (the header goes last). 0, or -1 with errno (EINVAL:
 * an entry out of bounds). */
int mindex_write_fd(int fd, uint32_t source, size_t count, mindex_get_cb get, void *arg);
/* Replace ROOTFD/gannet.index atomically (see above). 0, or -1 with errno and *WHY_R set; the old
 * index is then untouched and no temporary is left behind. */
int mindex_save(int rootfd, uint32_t source, size_t count, mindex_get_cb get, void *arg,
                const char **why_r);

/* CRC32C of BUF[0..LEN) continuing from CRC (0 to start): hardware when the CPU has it. */
uint32_t mindex_crc32c(uint32_t crc, const void *buf, size_t len);
/* The same in portable C only (tests compare the two). */
uint32_t mindex_crc32c_portable(uint32_t crc, const void *buf, size_t len);

/* A fixed-size open-addressing table of uint32 values (record numbers) keyed by byte strings
 * the caller keeps; SipHash-1-3 with a per-table random key, so crafted keys (X-UIDL values
 * come from mail senders) cannot force collisions. */
struct mindex_hash {
	uint32_t *slots; /* value + 1; 0 = empty */
	uint32_t *tags;  /* 32 more bits of each slot's hash: most mismatches cost no key compare */
	size_t mask;
	uint64_t k0, k1;
};
/* KEY of value V equals the probe? */
typedef bool (*mindex_hash_eq)(void *arg, uint32_t v, const void *key, size_t len);

/* Room for N values (N <= UINT32_MAX - 1). 0, or -1 when out of memory. */
int mindex_hash_init(struct mindex_hash *h, size_t n);
void mindex_hash_free(struct mindex_hash *h);
/* The slot for KEY: *slot is 0 when absent (store value + 1 there to insert, before any other
 * lookup; never more than N insertions), else the value found + 1. */
uint32_t *mindex_hash_slot(struct mindex_hash *h, const void *key, size_t len, mindex_hash_eq eq,
                           void *arg);
/* How many values the table was sized for (insert no more, or resize first). */
size_t mindex_hash_room(const struct mindex_hash *h);
/* The key of value V, for rehashing. */
typedef const void *(*mindex_hash_key)(void *arg, uint32_t v, size_t *len_r);
/* Rebuild H with room for N values (at least those stored), rehashing each stored value with KEY.
 * 0, or -1 when out of memory (H unchanged). */
int mindex_hash_resize(struct mindex_hash *h, size_t n, mindex_hash_key key, void *arg);

/* ---- the in-memory index: one compact record a message (the snapshot's layout) ---- */

/* Names and UIDLs of a snapshot, addressed by 32-bit offsets. */
struct mindex_arena {
	char *p;
	size_t len, cap;
};

/* One message in 48 octets (issue 3: under 100 octets a message beyond the UIDL strings). The
 * name is in the arena: only its base name when the ":2," info is a sorted set of letters (then
 * the flags are INFO bits and a Seen rename costs no memory), the whole name otherwise
 * (MREC_RAW). The UIDL is (offset, length) in the arena, inside the name when it is a prefix of
 * the base name (the GANNET and MAILDIR sources, normally). */
struct mindex_rec {
	uint64_t size; /* exact POP3 wire size (CRLF form, before stuffing) */
	int64_t mtime; /* delivery time, the first sort key */
	uint64_t info; /* flag letters: bits 0..25 = 'A'..'Z', 26..51 = 'a'..'z' (ASCII order) */
	uint32_t first_seen, first_retrieved; /* seconds, 0 = never; clamped to 1970..2106 */
	uint32_t name_off, uidl_off;
	uint8_t name_len, uidl_len;
	uint16_t flags;     /* MREC_* */
	uint8_t unique_len; /* the unique part: the first unique_len octets of the name */
};

enum {
	MREC_IN_NEW = 1 << 0,
	MREC_INFO = 1 << 1,     /* name = base ":2," INFO letters */
	MREC_RAW = 1 << 2,      /* name kept whole: its info is not sorted letters */
	MREC_KNOWN = 1 << 3,    /* size and mtime came from the index */
	MREC_TIMES = 1 << 4,    /* first_seen and first_retrieved came from the index */
	MREC_UIDL = 1 << 5,     /* the UIDL is set */
	MREC_UIDL_IDX = 1 << 6, /* ... and came from the index */
	MREC_GONE = 1 << 7,     /* left out by the scan, or removed in UPDATE */
	                        /* bits 8..15: free for the scan's own bookkeeping */
};
#define MINDEX_FLAG_SEEN ('S' - 'A')
/* Longest name mindex_rec_name() writes: 255 + ":2," + 52 letters + NUL. */
#define MINDEX_NAME_BUF 320

/* Records and their arena, the argument of mindex_unique_eq. */
struct mindex_view {
	struct mindex_rec *rec;
	struct mindex_arena *arena;
};

/* Base name of R (before ":2,") into *BASE_R; returns its length. */
size_t mindex_rec_base(const struct mindex_arena *a, const struct mindex_rec *r,
                       const char **base_r);
/* Unique part of R (base name before the first ',') into *U_R; returns its length. */
size_t mindex_rec_unique(const struct mindex_arena *a, const struct mindex_rec *r,
                         const char **u_r);
/* R's current file name, NUL-terminated in BUF; returns its length. */
size_t mindex_rec_name(const struct mindex_arena *a, const struct mindex_rec *r,
                       char buf[MINDEX_NAME_BUF]);
/* The info of NAME[0..LEN) (after ":2," at BASE, if BASE < LEN) as flag bits: true when it is a
 * sorted set of letters (a record can keep it as bits), false otherwise. */
bool mindex_info_bits(const char *name, size_t len, size_t base, uint64_t *info_r);
/* Give R the file name NAME[0..LEN) (1..255) in new/ or cur/; the UIDL is left alone. 0 or -1. */
int mindex_rec_set_name(struct mindex_arena *a, struct mindex_rec *r, const char *name, size_t len,
                        bool in_new);
/* Give R the UIDL S[0..LEN) (1..70), inside its name when it is a prefix of the base. 0 or -1. */
int mindex_rec_set_uidl(struct mindex_arena *a, struct mindex_rec *r, const char *s, size_t len);
/* Seconds clamped into a record's uint32 fields. */
uint32_t mindex_time32(int64_t t);
/* mindex_hash_eq for tables of record numbers keyed by unique part (ARG: struct mindex_view). */
bool mindex_unique_eq(void *arg, uint32_t v, const void *key, size_t len);

/* Search ROOTFD's cur/ (then new/ when BOTH) for the unique parts of records V[WHICH[0..N)] and
 * give those found their current name and directory (another agent renamed them). Returns how
 * many were found, or -1 with errno. */
ssize_t mindex_relocate(int rootfd, const struct mindex_view *v, const uint32_t *which, size_t n,
                        bool both);

/* Save the records of V[0..N) that are not MREC_GONE with mindex_save(). */
int mindex_save_recs(int rootfd, uint32_t source, const struct mindex_view *v, size_t n,
                     const char **why_r);

#endif
