/* gannet.index: CRC32C, the bounded streaming reader, the atomic writer, and a SipHash table. */
#include "mindex.h"

#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <dirent.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "fdio.h"
#include "gannet_limits.h"
#include "siphash.h"
#include "uidlsrc.h"

/* Reads and writes go through one buffer of this size: big enough for any entry (36 + 255 + 70
 * octets) many times over, small enough that a session's scan stays cheap. */
#define MINDEX_IO_BUF   65536
#define MINDEX_ENT_MAX  (MINDEX_ENT_FIXED + MINDEX_NAME_MAX + POP3_UIDL_MAX)
#define MINDEX_ENT_MIN  (MINDEX_ENT_FIXED + 1)
#define ENT_FLAG_IN_NEW 0x01
#define ENT_FLAG_INNAME 0x02

_Static_assert(MINDEX_IO_BUF >= 2 * MINDEX_ENT_MAX, "an entry must fit the buffer");
_Static_assert(MAILDROP_MESSAGES_MAX <= UINT32_MAX / 2, "count field and hash sizes");

static _Thread_local char mindex_why[256];

__attribute__((format(printf, 1, 2))) static const char *why(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(mindex_why, sizeof(mindex_why), fmt, ap);
	va_end(ap);
	return mindex_why;
}

/* ---- CRC32C ---- */

/* Reflected 0x82F63B78, four bits at a time. */
static const uint32_t crc_nibble[16] = {
    0x00000000, 0x105ec76f, 0x20bd8ede, 0x30e349b1, 0x417b1dbc, 0x5125dad3, 0x61c69362, 0x7198540d,
    0x82f63b78, 0x92a8fc17, 0xa24bb5a6, 0xb21572c9, 0xc38d26c4, 0xd3d3e1ab, 0xe330a81a, 0xf36e6f75,
};

uint32_t mindex_crc32c_portable(uint32_t crc, const void *buf, size_t len)
{
	const unsigned char *p = buf;

	crc = ~crc;
	for (size_t i = 0; i < len; i++) {
		crc ^= p[i];
		crc = (crc >> 4) ^ crc_nibble[crc & 15];
		crc = (crc >> 4) ^ crc_nibble[crc & 15];
	}
	return ~crc;
}

#if defined(__x86_64__)
__attribute__((target("sse4.2"))) static uint32_t crc32c_sse42(uint32_t crc, const void *buf,
                                                               size_t len)
{
	const unsigned char *p = buf;
	uint64_t c = ~crc;
	uint32_t c32;

	for (; len >= 8; p += 8, len -= 8) {
		uint64_t w;
		memcpy(&w, p, 8);
		c = __builtin_ia32_crc32di(c, w);
	}
	c32 = (uint32_t)c;
	for (size_t i = 0; i < len; i++)
		c32 = __builtin_ia32_crc32qi(c32, p[i]);
	return ~c32;
}
#endif

uint32_t mindex_crc32c(uint32_t crc, const void *buf, size_t len)
{
#if defined(__x86_64__)
	if (__builtin_cpu_supports("sse4.2"))
		return crc32c_sse42(crc, buf, len);
#endif
	return mindex_crc32c_portable(crc, buf, len);
}

/* ---- little-endian fields ---- */

static uint64_t get_le(const unsigned char *p, int n)
{
	uint64_t v = 0;

	for (int i = n - 1; i >= 0; i--)
		v = (v << 8) | p[i];
	return v;
}

static void put_le(unsigned char *p, uint64_t v, int n)
{
	for (int i = 0; i < n; i++, v >>= 8)
		p[i] = (unsigned char)(v & 0xff);
}

/* ---- validation shared by reader and writer, so we never write what we would reject ---- */

static bool name_ok(const char *name, size_t len)
{
	if (len < 1 || len > MINDEX_NAME_MAX || name[0] == '.')
		return false;
	return memchr(name, '/', len) == NULL && memchr(name, '\0', len) == NULL;
}

static bool uidl_ok(const char *u, size_t len)
{
	if (len < 1 || len > POP3_UIDL_MAX)
		return false;
	for (size_t i = 0; i < len; i++)
		if ((unsigned char)u[i] < 0x21 || (unsigned char)u[i] > 0x7e)
			return false;
	return true;
}

static bool entry_ok(const struct mindex_entry *e)
{
	return name_ok(e->name, e->name_len) && uidl_ok(e->uidl, e->uidl_len) &&
	       e->size <= (uint64_t)INT64_MAX && e->first_seen >= 0 && e->first_retrieved >= 0;
}

/* ---- reader ---- */

struct rd {
	int fd; /* -1: everything is in P[0..AVAIL) already */
	const unsigned char *p;
	size_t avail;
	unsigned char *buf;
};

/* Make N contiguous octets available at r->p: 1, 0 at end of data, -1 on a read error. */
static int rd_need(struct rd *r, size_t n)
{
	if (r->avail >= n)
		return 1;
	if (r->fd < 0)
		return 0;
	memmove(r->buf, r->p, r->avail);
	r->p = r->buf;
	while (r->avail < n) {
		ssize_t got = read(r->fd, r->buf + r->avail, MINDEX_IO_BUF - r->avail);
		if (got < 0 && errno == EINTR)
			continue;
		if (got < 0)
			return -1;
		if (got == 0)
			return 0;
		r->avail += (size_t)got;
	}
	return 1;
}

static int rd_short(int rc, const char *what, uint32_t i, const char **why_r)
{
	if (rc < 0) {
		*why_r = why("read: %s", strerror(errno));
		return MINDEX_IOERR;
	}
	*why_r = why("truncated in %s %u", what, i);
	return MINDEX_REJECTED;
}

static void get_stamp(const unsigned char *p, struct mindex_dirstamp *d)
{
	d->ino = get_le(p, 8);
	d->mtime_ns = (int64_t)get_le(p + 8, 8);
	d->ctime_ns = (int64_t)get_le(p + 16, 8);
}

static void put_stamp(unsigned char *p, const struct mindex_dirstamp *d)
{
	put_le(p, d->ino, 8);
	put_le(p + 8, (uint64_t)d->mtime_ns, 8);
	put_le(p + 16, (uint64_t)d->ctime_ns, 8);
}

static int read_common(struct rd *r, uint64_t total, struct mindex_head *head_r, mindex_entry_cb cb,
                       void *arg, const char **why_r)
{
	unsigned char hdr[MINDEX_HDR_SIZE];
	uint32_t version, flags, count, crc, want;
	size_t hsize;
	int rc;

	memset(head_r, 0, sizeof(*head_r));
	rc = rd_need(r, MINDEX_HDR_V1);
	if (rc <= 0)
		return rd_short(rc, "header", 0, why_r);
	memcpy(hdr, r->p, MINDEX_HDR_V1);
	if (memcmp(hdr, MINDEX_MAGIC, 8) != 0) {
		*why_r = why("not a Gannet index (bad magic)");
		return MINDEX_REJECTED;
	}
	version = (uint32_t)get_le(hdr + 8, 4);
	flags = (uint32_t)get_le(hdr + 12, 4);
	count = (uint32_t)get_le(hdr + 16, 4);
	want = (uint32_t)get_le(hdr + 20, 4);
	if (version == 0 || version > MINDEX_VERSION) {
		*why_r = why("version %u%s", version,
		             version > MINDEX_VERSION ? " is from a newer Gannet" : " is invalid");
		return MINDEX_REJECTED;
	}
	if ((flags >> 8) != 0) {
		*why_r = why("unknown flags 0x%x", flags);
		return MINDEX_REJECTED;
	}
	hsize = version == 1 ? MINDEX_HDR_V1 : MINDEX_HDR_SIZE;
	/* Absurd counts are refused before anything is allocated or called back. */
	if (count > MAILDROP_MESSAGES_MAX || total < hsize + (uint64_t)count * MINDEX_ENT_MIN ||
	    total > hsize + (uint64_t)count * MINDEX_ENT_MAX) {
		*why_r =
		    why("%u entries cannot fill %llu octets", count, (unsigned long long)total);
		return MINDEX_REJECTED;
	}
	rc = rd_need(r, hsize);
	if (rc <= 0)
		return rd_short(rc, "header", 0, why_r);
	memcpy(hdr, r->p, hsize);
	crc = mindex_crc32c(0, hdr, MINDEX_CRC_GAP);
	if (hsize > MINDEX_HDR_V1) {
		crc = mindex_crc32c(crc, hdr + MINDEX_HDR_V1, hsize - MINDEX_HDR_V1);
		get_stamp(hdr + MINDEX_HDR_V1, &head_r->dirs[MINDEX_DIR_NEW]);
		get_stamp(hdr + MINDEX_HDR_V1 + 24, &head_r->dirs[MINDEX_DIR_CUR]);
	}
	head_r->source = flags & 0xff;
	head_r->count = count;
	r->p += hsize;
	r->avail -= hsize;

	for (uint32_t i = 0; i < count; i++) {
		struct mindex_entry e;
		const unsigned char *p;
		unsigned eflags;
		size_t stored;

		rc = rd_need(r, MINDEX_ENT_FIXED);
		if (rc <= 0)
			return rd_short(rc, "entry", i, why_r);
		p = r->p;
		e.size = get_le(p, 8);
		e.mtime = (int64_t)get_le(p + 8, 8);
		e.first_seen = (int64_t)get_le(p + 16, 8);
		e.first_retrieved = (int64_t)get_le(p + 24, 8);
		e.name_len = (size_t)get_le(p + 32, 2);
		e.uidl_len = p[34];
		eflags = p[35];
		e.in_new = (eflags & ENT_FLAG_IN_NEW) != 0;
		if ((eflags & ~(unsigned)(ENT_FLAG_IN_NEW | ENT_FLAG_INNAME)) != 0 ||
		    e.name_len < 1 || e.name_len > MINDEX_NAME_MAX || e.uidl_len < 1 ||
		    e.uidl_len > POP3_UIDL_MAX ||
		    ((eflags & ENT_FLAG_INNAME) && e.uidl_len > e.name_len)) {
			*why_r = why("entry %u: bad lengths or flags", i);
			return MINDEX_REJECTED;
		}
		stored = e.name_len + ((eflags & ENT_FLAG_INNAME) ? 0 : e.uidl_len);
		rc = rd_need(r, MINDEX_ENT_FIXED + stored);
		if (rc <= 0)
			return rd_short(rc, "entry", i, why_r);
		p = r->p;
		e.name = (const char *)p + MINDEX_ENT_FIXED;
		e.uidl = (eflags & ENT_FLAG_INNAME) ? e.name : e.name + e.name_len;
		if (!entry_ok(&e)) {
			*why_r = why("entry %u: bad name, UIDL, size or time", i);
			return MINDEX_REJECTED;
		}
		crc = mindex_crc32c(crc, p, MINDEX_ENT_FIXED + stored);
		if (cb != NULL && cb(arg, &e) != 0) {
			*why_r = why("stopped by the caller at entry %u", i);
			return MINDEX_ABORTED;
		}
		r->p += MINDEX_ENT_FIXED + stored;
		r->avail -= MINDEX_ENT_FIXED + stored;
	}
	rc = rd_need(r, 1);
	if (rc != 0) {
		*why_r =
		    rc < 0 ? why("read: %s", strerror(errno)) : why("data after the last entry");
		return rc < 0 ? MINDEX_IOERR : MINDEX_REJECTED;
	}
	if (crc != want) {
		*why_r = why("checksum mismatch (0x%08x, header says 0x%08x)", crc, want);
		return MINDEX_REJECTED;
	}
	return MINDEX_LOADED;
}

int mindex_read_mem(const void *buf, size_t len, struct mindex_head *head_r, mindex_entry_cb cb,
                    void *arg, const char **why_r)
{
	struct rd r = {.fd = -1, .p = buf, .avail = len};

	return read_common(&r, len, head_r, cb, arg, why_r);
}

int mindex_load(int rootfd, struct mindex_head *head_r, mindex_entry_cb cb, void *arg,
                const char **why_r)
{
	struct rd r = {.fd = -1};
	struct stat st;
	int rc;

	/* O_NONBLOCK and the type check: a FIFO planted as the index must not hang the scan. */
	r.fd = openat(rootfd, MINDEX_NAME, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC);
	if (r.fd < 0) {
		if (errno == ENOENT)
			return MINDEX_ABSENT;
		*why_r = why("open: %s", strerror(errno));
		return errno == ELOOP || errno == ENXIO ? MINDEX_REJECTED : MINDEX_IOERR;
	}
	if (fstat(r.fd, &st) < 0 || !S_ISREG(st.st_mode)) {
		*why_r = why("not a regular file");
		close(r.fd);
		return MINDEX_REJECTED;
	}
	r.buf = malloc(MINDEX_IO_BUF);
	if (r.buf == NULL) {
		close(r.fd);
		*why_r = why("out of memory");
		return MINDEX_IOERR;
	}
	r.p = r.buf;
	rc = read_common(&r, (uint64_t)st.st_size, head_r, cb, arg, why_r);
	free(r.buf);
	close(r.fd);
	return rc;
}

/* ---- writer ---- */

int mindex_write_fd(int fd, const struct mindex_head *head, mindex_get_cb get, void *arg)
{
	unsigned char hdr[MINDEX_HDR_SIZE], *buf;
	size_t used = MINDEX_HDR_SIZE, count = head->count;
	uint32_t crc, source = head->source;
	int e;

	if (count > MAILDROP_MESSAGES_MAX || source > 0xff) {
		errno = EINVAL;
		return -1;
	}
	buf = malloc(MINDEX_IO_BUF);
	if (buf == NULL)
		return -1;
	memcpy(hdr, MINDEX_MAGIC, 8);
	put_le(hdr + 8, MINDEX_VERSION, 4);
	put_le(hdr + 12, source, 4);
	put_le(hdr + 16, count, 4);
	put_le(hdr + 20, 0, 4);
	put_stamp(hdr + MINDEX_HDR_V1, &head->dirs[MINDEX_DIR_NEW]);
	put_stamp(hdr + MINDEX_HDR_V1 + 24, &head->dirs[MINDEX_DIR_CUR]);
	crc = mindex_crc32c(0, hdr, MINDEX_CRC_GAP);
	crc = mindex_crc32c(crc, hdr + MINDEX_HDR_V1, MINDEX_HDR_SIZE - MINDEX_HDR_V1);
	memcpy(buf, hdr, sizeof(hdr));
	for (size_t i = 0; i < count; i++) {
		struct mindex_entry en;
		unsigned char *p;
		bool in_name;
		size_t n;

		memset(&en, 0, sizeof(en));
		errno = ECANCELED;
		if (get(arg, i, &en) < 0)
			goto error;
		if (!entry_ok(&en)) {
			errno = EINVAL;
			goto error;
		}
		in_name = en.uidl_len <= en.name_len && memcmp(en.name, en.uidl, en.uidl_len) == 0;
		n = MINDEX_ENT_FIXED + en.name_len + (in_name ? 0 : en.uidl_len);
		if (used + n > MINDEX_IO_BUF) {
			if (fd_write_all(fd, buf, used) < 0)
				goto error;
			used = 0;
		}
		p = buf + used;
		put_le(p, en.size, 8);
		put_le(p + 8, (uint64_t)en.mtime, 8);
		put_le(p + 16, (uint64_t)en.first_seen, 8);
		put_le(p + 24, (uint64_t)en.first_retrieved, 8);
		put_le(p + 32, en.name_len, 2);
		p[34] = (unsigned char)en.uidl_len;
		p[35] = (unsigned char)((en.in_new ? ENT_FLAG_IN_NEW : 0) |
		                        (in_name ? ENT_FLAG_INNAME : 0));
		memcpy(p + MINDEX_ENT_FIXED, en.name, en.name_len);
		if (!in_name)
			memcpy(p + MINDEX_ENT_FIXED + en.name_len, en.uidl, en.uidl_len);
		crc = mindex_crc32c(crc, p, n);
		used += n;
	}
	if (fd_write_all(fd, buf, used) < 0)
		goto error;
	free(buf);
	/* The header goes last, so a file cut short anywhere fails its checksum. */
	put_le(hdr + 20, crc, 4);
	for (size_t off = 0; off < sizeof(hdr);) {
		ssize_t n = pwrite(fd, hdr + off, sizeof(hdr) - off, (off_t)off);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return -1;
		off += (size_t)n;
	}
	return 0;
error:
	e = errno;
	free(buf);
	errno = e;
	return -1;
}

int mindex_save(int rootfd, const struct mindex_head *head, mindex_get_cb get, void *arg,
                const char **why_r)
{
	const char *step;
	int fd, e;

	/* A temporary left by a crash is ours to replace; O_EXCL after the unlink means a symlink
	 * or hard link planted under the temporary name is never written through. */
	if (unlinkat(rootfd, MINDEX_TMP_NAME, 0) < 0 && errno != ENOENT) {
		*why_r = why("unlink %s: %s", MINDEX_TMP_NAME, strerror(errno));
		return -1;
	}
	fd = openat(rootfd, MINDEX_TMP_NAME, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC,
	            0600);
	if (fd < 0) {
		e = errno;
		*why_r = why("create %s: %s", MINDEX_TMP_NAME, strerror(e));
		errno = e;
		return -1;
	}
	step = "write";
	if (mindex_write_fd(fd, head, get, arg) < 0)
		goto error;
	step = "fsync";
	if (fsync(fd) < 0)
		goto error;
	step = "close";
	e = close(fd);
	fd = -1;
	if (e < 0)
		goto error;
	step = "rename";
	if (renameat(rootfd, MINDEX_TMP_NAME, rootfd, MINDEX_NAME) < 0)
		goto error;
	/* The rename is only durable once the directory is. */
	if (fsync(rootfd) < 0) {
		e = errno;
		*why_r = why("fsync of the Maildir root: %s", strerror(e));
		errno = e;
		return -1;
	}
	return 0;
error:
	e = errno;
	*why_r = why("%s %s: %s", step, MINDEX_TMP_NAME, strerror(e));
	if (fd >= 0)
		close(fd);
	unlinkat(rootfd, MINDEX_TMP_NAME, 0);
	errno = e;
	return -1;
}

/* ---- SipHash-1-3 table ---- */

static int hash_alloc(struct mindex_hash *h, size_t n)
{
	size_t cap = 16;

	if (n > MAILDROP_MESSAGES_MAX * (size_t)2)
		return -1;
	/* At most half full: probes stay short and a lookup always ends on an empty slot. */
	while (cap < 2 * n)
		cap *= 2;
	h->slots = calloc(cap, sizeof(*h->slots));
	h->tags = malloc(cap * sizeof(*h->tags));
	if (h->slots == NULL || h->tags == NULL) {
		free(h->slots);
		free(h->tags);
		return -1;
	}
	h->mask = cap - 1;
	return 0;
}

int mindex_hash_init(struct mindex_hash *h, size_t n)
{
	uint64_t key[2];

	memset(h, 0, sizeof(*h));
	if (hash_alloc(h, n) < 0)
		return -1;
	if (getrandom(key, sizeof(key), GRND_NONBLOCK) != (ssize_t)sizeof(key)) {
		/* No entropy yet (early boot): still unpredictable enough from outside. */
		struct timespec ts;
		clock_gettime(CLOCK_MONOTONIC, &ts);
		key[0] = (uint64_t)ts.tv_nsec * 0x9e3779b97f4a7c15ULL ^ (uint64_t)(uintptr_t)h;
		key[1] = (uint64_t)ts.tv_sec ^ (uint64_t)getpid() << 32;
	}
	h->k0 = key[0];
	h->k1 = key[1];
	return 0;
}

void mindex_hash_free(struct mindex_hash *h)
{
	free(h->slots);
	free(h->tags);
	memset(h, 0, sizeof(*h));
}

size_t mindex_hash_room(const struct mindex_hash *h)
{
	return (h->mask + 1) / 2;
}

int mindex_hash_resize(struct mindex_hash *h, size_t n, mindex_hash_key key, void *arg)
{
	struct mindex_hash old = *h;

	if (hash_alloc(h, n) < 0) {
		*h = old;
		return -1;
	}
	for (size_t i = 0; i <= old.mask; i++) {
		uint64_t hv;
		size_t len, j;
		const void *k;

		if (old.slots[i] == 0)
			continue;
		k = key(arg, old.slots[i] - 1, &len);
		hv = siphash(h->k0, h->k1, k, len, 1, 3);
		for (j = (size_t)hv & h->mask; h->slots[j] != 0;)
			j = (j + 1) & h->mask;
		h->slots[j] = old.slots[i];
		h->tags[j] = (uint32_t)(hv >> 32);
	}
	free(old.slots);
	free(old.tags);
	return 0;
}

uint32_t *mindex_hash_slot(struct mindex_hash *h, const void *key, size_t len, mindex_hash_eq eq,
                           void *arg)
{
	uint64_t hv = siphash(h->k0, h->k1, key, len, 1, 3);
	uint32_t tag = (uint32_t)(hv >> 32);
	size_t i = (size_t)hv & h->mask;

	while (h->slots[i] != 0) {
		if (h->tags[i] == tag && eq(arg, h->slots[i] - 1, key, len))
			return &h->slots[i];
		i = (i + 1) & h->mask;
	}
	/* The caller stores a value here for this key, or nothing (then the tag is never read). */
	h->tags[i] = tag;
	return &h->slots[i];
}

/* ---- compact records ---- */

_Static_assert(sizeof(struct mindex_rec) == 48, "keep the record small");
/* Arena offsets are 32-bit: every name and UIDL of the largest maildrop, plus one renamed copy of
 * each name during a session, fits. */
_Static_assert(((uint64_t)MAILDROP_MESSAGES_MAX * (2 * 256 + POP3_UIDL_MAX)) < UINT32_MAX,
               "arena offsets");

#define FLAG_BITS 52

static int flag_bit(char c)
{
	if (c >= 'A' && c <= 'Z')
		return c - 'A';
	if (c >= 'a' && c <= 'z')
		return 26 + c - 'a';
	return -1;
}

uint32_t mindex_time32(int64_t t)
{
	return t <= 0 ? 0 : t >= (int64_t)UINT32_MAX ? UINT32_MAX : (uint32_t)t;
}

size_t mindex_rec_base(const struct mindex_arena *a, const struct mindex_rec *r,
                       const char **base_r)
{
	*base_r = a->p + r->name_off;
	return (r->flags & MREC_RAW) ? maildir_base_len(*base_r, r->name_len) : r->name_len;
}

size_t mindex_rec_unique(const struct mindex_arena *a, const struct mindex_rec *r, const char **u_r)
{
	*u_r = a->p + r->name_off;
	return r->unique_len;
}

size_t mindex_rec_name(const struct mindex_arena *a, const struct mindex_rec *r,
                       char buf[MINDEX_NAME_BUF])
{
	size_t n = r->name_len;

	memcpy(buf, a->p + r->name_off, n);
	if (r->flags & MREC_INFO) {
		memcpy(buf + n, ":2,", 3);
		n += 3;
		for (int b = 0; b < FLAG_BITS; b++)
			if ((r->info >> b) & 1)
				buf[n++] = (char)(b < 26 ? 'A' + b : 'a' + b - 26);
	}
	buf[n] = '\0';
	return n;
}

static int arena_add(struct mindex_arena *a, const char *s, size_t len, uint32_t *off_r)
{
	if (len > UINT32_MAX - a->len) {
		errno = ENOMEM;
		return -1;
	}
	if (a->len + len > a->cap) {
		size_t ncap = a->cap ? a->cap : 4096;
		char *n;

		while (ncap < a->len + len)
			ncap *= 2;
		if (ncap > UINT32_MAX)
			ncap = UINT32_MAX;
		n = realloc(a->p, ncap);
		if (n == NULL)
			return -1;
		a->p = n;
		a->cap = ncap;
	}
	memcpy(a->p + a->len, s, len);
	*off_r = (uint32_t)a->len;
	a->len += len;
	return 0;
}

bool mindex_info_bits(const char *name, size_t len, size_t base, uint64_t *info_r)
{
	int prev = -1;

	*info_r = 0;
	for (size_t i = base + 3; i < len; i++) {
		int b = flag_bit(name[i]);
		if (b <= prev) /* not a letter, or not sorted, or twice */
			return false;
		*info_r |= (uint64_t)1 << b;
		prev = b;
	}
	return true;
}

int mindex_rec_set_name(struct mindex_arena *a, struct mindex_rec *r, const char *name, size_t len,
                        bool in_new)
{
	size_t base = maildir_base_len(name, len), keep = len;
	uint64_t info;
	bool canon = mindex_info_bits(name, len, base, &info);
	uint32_t off;

	if (canon)
		keep = base;
	if (len < 1 || len > MINDEX_NAME_MAX) {
		errno = ENAMETOOLONG;
		return -1;
	}
	if (!(r->flags & MREC_RAW) && canon && r->name_len == keep && r->name_len > 0 &&
	    memcmp(a->p + r->name_off, name, keep) == 0)
		off = r->name_off; /* same base name: only the flags or the directory changed */
	else if (arena_add(a, name, keep, &off) < 0)
		return -1;
	r->name_off = off;
	r->name_len = (uint8_t)keep;
	r->unique_len = (uint8_t)maildir_unique_len(name, len);
	r->info = canon ? info : 0;
	r->flags &= (uint16_t) ~(MREC_IN_NEW | MREC_INFO | MREC_RAW);
	r->flags |= (uint16_t)((in_new ? MREC_IN_NEW : 0) | (!canon ? MREC_RAW : 0) |
	                       (canon && base < len ? MREC_INFO : 0));
	return 0;
}

int mindex_rec_set_uidl(struct mindex_arena *a, struct mindex_rec *r, const char *s, size_t len)
{
	const char *b;
	size_t blen = mindex_rec_base(a, r, &b);
	uint32_t off;

	if (len <= blen && memcmp(b, s, len) == 0)
		off = r->name_off;
	else if (arena_add(a, s, len, &off) < 0)
		return -1;
	r->uidl_off = off;
	r->uidl_len = (uint8_t)len;
	r->flags |= MREC_UIDL;
	return 0;
}

bool mindex_unique_eq(void *arg, uint32_t v, const void *key, size_t len)
{
	const struct mindex_view *view = arg;
	const char *u;
	size_t ulen = mindex_rec_unique(view->arena, &view->rec[v], &u);

	return ulen == len && memcmp(u, key, len) == 0;
}

/* ---- relocation: a file renamed by another agent, found again by its unique part ---- */

struct reloc {
	const struct mindex_view *v;
	const uint32_t *which; /* record numbers looked for */
};

static bool reloc_eq(void *arg, uint32_t k, const void *key, size_t len)
{
	struct reloc *r = arg;

	return mindex_unique_eq((void *)r->v, r->which[k], key, len);
}

ssize_t mindex_relocate(int rootfd, const struct mindex_view *v, const uint32_t *which, size_t n,
                        bool both)
{
	static const char *const subs[2] = {"new", "cur"};
	struct reloc r = {.v = v, .which = which};
	struct mindex_hash h;
	bool *found = calloc(n ? n : 1, sizeof(*found));
	ssize_t hits = 0;
	int e = 0;

	if (found == NULL || mindex_hash_init(&h, n) < 0) {
		free(found);
		errno = ENOMEM;
		return -1;
	}
	for (size_t i = 0; i < n; i++) {
		const char *u;
		size_t ulen = mindex_rec_unique(v->arena, &v->rec[which[i]], &u);
		uint32_t *slot = mindex_hash_slot(&h, u, ulen, reloc_eq, &r);
		if (*slot == 0)
			*slot = (uint32_t)i + 1;
	}
	for (int s = 1; s >= (both ? 0 : 1) && (size_t)hits < n && e == 0; s--) {
		int dfd = openat(rootfd, subs[s], O_RDONLY | O_DIRECTORY | O_CLOEXEC);
		DIR *d = dfd >= 0 ? fdopendir(dfd) : NULL;
		struct dirent *de;

		if (d == NULL) {
			e = errno;
			if (dfd >= 0)
				close(dfd);
			break;
		}
		while ((size_t)hits < n && (de = readdir(d)) != NULL) {
			size_t len = strlen(de->d_name);
			uint32_t *slot;

			if (de->d_name[0] == '.' ||
			    (de->d_type != DT_REG && de->d_type != DT_UNKNOWN))
				continue;
			slot = mindex_hash_slot(&h, de->d_name, maildir_unique_len(de->d_name, len),
			                        reloc_eq, &r);
			if (*slot == 0 || found[*slot - 1])
				continue;
			if (mindex_rec_set_name(v->arena, &v->rec[which[*slot - 1]], de->d_name,
			                        len, s == 0) < 0) {
				e = errno;
				break;
			}
			found[*slot - 1] = true;
			hits++;
		}
		closedir(d);
	}
	mindex_hash_free(&h);
	free(found);
	if (e != 0) {
		errno = e;
		return -1;
	}
	return hits;
}

/* ---- saving records ---- */

struct save_ctx {
	const struct mindex_view *v;
	size_t next, n;
	char name[MINDEX_NAME_BUF];
};

static int save_get(void *arg, size_t i, struct mindex_entry *e)
{
	struct save_ctx *c = arg;
	const struct mindex_rec *r;

	(void)i;
	while (c->next < c->n && (c->v->rec[c->next].flags & MREC_GONE))
		c->next++;
	if (c->next >= c->n)
		return -1;
	r = &c->v->rec[c->next++];
	e->name = c->name;
	e->name_len = mindex_rec_name(c->v->arena, r, c->name);
	e->uidl = c->v->arena->p + r->uidl_off;
	e->uidl_len = r->uidl_len;
	e->in_new = (r->flags & MREC_IN_NEW) != 0;
	e->size = r->size;
	e->mtime = r->mtime;
	e->first_seen = r->first_seen;
	e->first_retrieved = r->first_retrieved;
	return 0;
}

int mindex_save_recs(int rootfd, uint32_t source, const struct mindex_dirstamp dirs[2],
                     const struct mindex_view *v, size_t n, const char **why_r)
{
	struct save_ctx c = {.v = v, .n = n};
	struct mindex_head head = {.source = source};

	for (size_t i = 0; i < n; i++)
		head.count += !(v->rec[i].flags & MREC_GONE);
	if (dirs != NULL)
		memcpy(head.dirs, dirs, sizeof(head.dirs));
	return mindex_save(rootfd, &head, save_get, &c, why_r);
}

/* ---- directory stamps ---- */

bool mindex_stamp_eq(const struct mindex_dirstamp *a, const struct mindex_dirstamp *b)
{
	return a->ino != 0 && a->ino == b->ino && a->mtime_ns == b->mtime_ns &&
	       a->ctime_ns == b->ctime_ns;
}

void mindex_stamp_dir(int dirfd, const char *sub, int64_t now_ns, struct mindex_dirstamp *out)
{
	struct stat st;
	int64_t m, c;

	memset(out, 0, sizeof(*out));
	if (fstatat(dirfd, sub, &st, AT_SYMLINK_NOFOLLOW) < 0 || !S_ISDIR(st.st_mode))
		return;
	m = (int64_t)st.st_mtim.tv_sec * 1000000000 + st.st_mtim.tv_nsec;
	c = (int64_t)st.st_ctim.tv_sec * 1000000000 + st.st_ctim.tv_nsec;
	/* Too recent (or in the future): a change in the same clock tick could keep these. */
	if (now_ns - m < MINDEX_STAMP_MARGIN_NS || now_ns - c < MINDEX_STAMP_MARGIN_NS)
		return;
	out->ino = (uint64_t)st.st_ino;
	out->mtime_ns = m;
	out->ctime_ns = c;
}
