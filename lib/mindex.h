/* The per-maildrop index file (gannet.index): format, checksum, reader, atomic writer, hashing. */
#ifndef GANNET_MINDEX_H
#define GANNET_MINDEX_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

/* gannet.index lives in the Maildir root (beside new/ cur/ tmp/ and gannet.lock), so no scan of
 * new/ or cur/ ever lists it. It is a cache of what a scan learnt (sizes, UIDLs, times), never
 * trusted over the directory: every scan checks new/ and cur/ (a readdir of each, or only their
 * stamps when neither changed since the index was written, see "Directory stamps" below), and a
 * file the index does not list, or lists under another base name, is examined afresh.
 *
 * Format, version 2 (version 1, written by earlier Gannets, is read too: it is the same without
 * the directory stamps, so its header is 24 octets). All integers little-endian, no padding.
 *
 *   header, 72 octets
 *     0   8  magic "GANNETIX"
 *     8   4  version, 2 (or 1). A larger version is "from a newer Gannet": ignored, rebuilt.
 *    12   4  flags: bits 0..7 the UIDL source (enum uidl_source) the UIDLs were made with;
 *            bits 8..31 zero (a set bit is a feature this reader lacks: ignored, rebuilt)
 *    16   4  entry count, at most MAILDROP_MESSAGES_MAX
 *    20   4  CRC32C (Castagnoli, as iSCSI/ext4: reflected 0x82F63B78, init and final xor
 *            0xFFFFFFFF) of octets 0..19 followed by every octet from 24 to the end
 *    24  48  directory stamps of new/ then cur/ (version 2 only), each: 8 inode number, 8 mtime
 *            and 8 ctime in signed nanoseconds. All zero = unknown. See "Directory stamps".
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
 * Directory stamps: what new/ and cur/ looked like (inode, mtime, ctime) just BEFORE the scan that
 * wrote the index listed them. Adding, removing or renaming an entry changes a directory's mtime
 * and ctime, so when both directories still carry their stamps nothing was added, removed or
 * renamed since that listing, and the entries are exactly what a readdir would give: the scan may
 * skip both readdirs (the one cost a warm login of a big maildrop cannot otherwise avoid). Kernel
 * timestamps are coarse (a clock tick), so a change in the same tick as the stamp could leave it
 * unchanged: a stamp is recorded only when the directory was last changed at least
 * MINDEX_STAMP_MARGIN_NS before the listing began, and is all zero (never matches) otherwise.
 * Shared storage (NFS clients cache attributes, and hosts' clocks differ) must not trust stamps:
 * see maildir_scan_trust_stamps().
 *
 * Written atomically: gannet.index.tmp in the root (never in tmp/ new/ cur/), created with
 * O_EXCL after removing a stale one, written, fsync'd, renamed over gannet.index, then the root
 * fsync'd. A failure at any step (full disk, quota, read-only Maildir) removes the temporary and
 * leaves the previous index as it was. */
#define MINDEX_NAME     "gannet.index"
#define MINDEX_TMP_NAME "gannet.index.tmp"
#define MINDEX_MAGIC    "GANNETIX"
#define MINDEX_VERSION  2
#define MINDEX_HDR_SIZE 72 /* version 2 */
#define MINDEX_HDR_V1   24 /* version 1: no directory stamps */
#define MINDEX_CRC_GAP  20 /* the CRC covers 0..19, then 24..end */
/* A directory changed less than this before a scan began gets no stamp (see above): two clock
 * ticks of the coarsest kernel timestamps (10 ms at HZ=100) with a wide margin. */
#define MINDEX_STAMP_MARGIN_NS (2LL * 1000 * 1000 * 1000)
#define MINDEX_ENT_FIXED       36
#define MINDEX_NAME_MAX        255

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

/* One directory as a scan saw it; all zero = unknown (never equal to a live directory). */
struct mindex_dirstamp {
	uint64_t ino;
	int64_t mtime_ns, ctime_ns;
};
enum { MINDEX_DIR_NEW = 0, MINDEX_DIR_CUR = 1 };

/* The header's fields. */
struct mindex_head {
	uint32_t source; /* enum uidl_source */
	uint32_t count;
	struct mindex_dirstamp dirs[2]; /* new/, cur/ */
};

/* Whether A is a known stamp equal to B. */
bool mindex_stamp_eq(const struct mindex_dirstamp *a, const struct mindex_dirstamp *b);

/* The stamp of the directory DIRFD/SUB as of now (NOW_NS: CLOCK_REALTIME, nanoseconds), or all
 * zero when it changed within MINDEX_STAMP_MARGIN_NS of NOW_NS (or later: the clock went back) or
 * cannot be stat'ed. */
void mindex_stamp_dir(int dirfd, const char *sub, int64_t now_ns, struct mindex_dirstamp *out);

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

/* Read ROOTFD/gannet.index (O_NOFOLLOW, non-blocking, regular files only). *HEAD_R gets the
 * header's fields once the header is valid, before the first callback (zero stamps for version
 * 1). On anything but LOADED and ABSENT, *WHY_R says what was wrong (thread-local text, valid
 * until the next call). */
int mindex_load(int rootfd, struct mindex_head *head_r, mindex_entry_cb cb, void *arg,
                const char **why_r);
/* The same reader on an index held in memory (the fuzz target and tests). */
int mindex_read_mem(const void *buf, size_t len, struct mindex_head *head_r, mindex_entry_cb cb,
                    void *arg, const char **why_r);

/* Called by the writer for entries 0..count-1 in turn; fill *E (NAME and UIDL must stay valid
 * until the next call). Return 0, or -1 to abort the write. */
typedef int (*mindex_get_cb)(void *arg, size_t i, struct mindex_entry *e);

/* Write a whole index (HEAD, then HEAD->count entries from GET) to FD from its current offset,
 * which must be 0 of a file that can be pwrite()n (the header goes last). 0, or -1 with errno
 * (EINVAL: an entry out of bounds). */
int mindex_write_fd(int fd, const struct mindex_head *head, mindex_get_cb get, void *arg);
/* Replace ROOTFD/gannet.index atomically (see above). 0, or -1 with errno and *WHY_R set; the old
 * index is then untouched and no temporary is left behind. */
int mindex_save(int rootfd, const struct mindex_head *head, mindex_get_cb get, void *arg,
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
	MREC_KNOWN = 1 << 3,    /* size and mtime are known: from the index, or examined */
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

/* Save the records of V[0..N) that are not MREC_GONE with mindex_save(), with the directory
 * stamps DIRS (NULL: unknown). */
int mindex_save_recs(int rootfd, uint32_t source, const struct mindex_dirstamp dirs[2],
                     const struct mindex_view *v, size_t n, const char **why_r);

#endif
