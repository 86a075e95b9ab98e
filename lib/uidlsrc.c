/* UIDL sources: name rules, SHA-256 fallbacks, the X-UIDL header, and dovecot-uidlist lookups. */
#include "uidlsrc.h"

#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/evp.h>

#include "log.h"
#include "mindex.h"
#include "pop3.h"
#include "strnum.h"

#define UIDL_HASH_BYTES 20 /* 40 hex digits + "H" = 41 characters, well within 70 */

/* A dovecot-uidlist line: "<uid> <ext>... :<name>". Dovecot's longest extension values are a
 * GUID and a saved POP3 UIDL; 8 KiB is far above any real line and bounds what we buffer. */
#define DOVECOT_LINE_MAX 8192
/* Dovecot keeps lines of expunged messages until it rewrites the file; beyond this many lines
 * the file is not a real uidlist and the rest is ignored (a hostile file cannot keep a login busy
 * for ever). */
#define DOVECOT_LINES_MAX (4 * (size_t)MAILDROP_MESSAGES_MAX)
#define DOVECOT_NAME      "dovecot-uidlist"

static const char *const source_names[UIDL_SOURCE_COUNT] = {"gannet", "maildir", "dovecot",
                                                            "x-uidl"};

int uidl_source_parse(const char *s, enum uidl_source *src_r)
{
	for (int i = 0; i < UIDL_SOURCE_COUNT; i++) {
		if (strcasecmp(s, source_names[i]) == 0) {
			*src_r = (enum uidl_source)i;
			return 0;
		}
	}
	return -1;
}

const char *uidl_source_name(enum uidl_source src)
{
	return (unsigned)src < UIDL_SOURCE_COUNT ? source_names[src] : "?";
}

bool uidl_valid(const char *s, size_t len)
{
	if (len < 1 || len > POP3_UIDL_MAX)
		return false;
	for (size_t i = 0; i < len; i++)
		if ((unsigned char)s[i] < 0x21 || (unsigned char)s[i] > 0x7e)
			return false;
	return true;
}

/* Only a last ':' followed by "2," starts the info, so that a ':' inside the unique part (edge
 * case 30) and the ":2,S" that a Seen rename appends leave the unique part unchanged. */
size_t maildir_base_len(const char *name, size_t len)
{
	const char *colon = memrchr(name, ':', len);

	if (colon != NULL && (size_t)(colon - name) + 2 < len && colon[1] == '2' && colon[2] == ',')
		return (size_t)(colon - name);
	return len;
}

size_t maildir_unique_len(const char *name, size_t len)
{
	size_t base = maildir_base_len(name, len);
	const char *comma = memchr(name, ',', base);

	return comma != NULL ? (size_t)(comma - name) : base;
}

size_t uidl_hashed(const char *s, size_t len, uint32_t salt, char out[POP3_UIDL_MAX + 1])
{
	static const char hex[] = "0123456789abcdef";
	unsigned char md[EVP_MAX_MD_SIZE], sb[4];
	unsigned int mdlen = 0;
	EVP_MD_CTX *ctx = EVP_MD_CTX_new();
	bool ok;

	sb[0] = (unsigned char)(salt >> 24);
	sb[1] = (unsigned char)(salt >> 16);
	sb[2] = (unsigned char)(salt >> 8);
	sb[3] = (unsigned char)salt;
	/* S-139: a stable hash of the name (never of the content: S-066, edge case 12). */
	ok = ctx != NULL && EVP_DigestInit_ex(ctx, EVP_sha256(), NULL) == 1 &&
	     EVP_DigestUpdate(ctx, s, len) == 1 &&
	     (salt == 0 || EVP_DigestUpdate(ctx, sb, sizeof(sb)) == 1) &&
	     EVP_DigestFinal_ex(ctx, md, &mdlen) == 1 && mdlen >= UIDL_HASH_BYTES;
	EVP_MD_CTX_free(ctx);
	if (!ok)
		return 0;
	out[0] = 'H';
	for (size_t i = 0; i < UIDL_HASH_BYTES; i++) {
		out[1 + 2 * i] = hex[md[i] >> 4];
		out[2 + 2 * i] = hex[md[i] & 15];
	}
	out[UIDL_HASHED_LEN] = '\0';
	return UIDL_HASHED_LEN;
}

size_t uidl_derive(const char *s, size_t len, char out[POP3_UIDL_MAX + 1], bool *plain_r)
{
	*plain_r = uidl_valid(s, len);
	if (*plain_r)
		return len;
	return uidl_hashed(s, len, 0, out);
}

void maildir_uidl(const char *name, char out[POP3_UIDL_MAX + 1])
{
	size_t len = maildir_unique_len(name, strlen(name));
	uint64_t h = 0xcbf29ce484222325ULL;
	bool plain;

	if (uidl_derive(name, len, out, &plain) > 0) {
		if (plain) {
			memcpy(out, name, len);
			out[len] = '\0';
		}
		return;
	}
	/* SHA-256 failing means libcrypto could not allocate; a legal UIDL that differs from the
	 * usual one is better than none (the scan itself reports a temporary error instead). */
	log_warnx("maildir: SHA-256 failed, using a fallback UIDL");
	for (size_t i = 0; i < len; i++)
		h = (h ^ (unsigned char)name[i]) * 0x100000001b3ULL;
	snprintf(out, POP3_UIDL_MAX + 1, "F%016llx", (unsigned long long)h);
}

/* The value of field ",K=<n>" in base name BASE[0..LEN), strictly decimal: true when there. */
static bool name_field(const char *base, size_t len, char k, uint64_t *v_r)
{
	const char *p = memchr(base, ',', len), *end = base + len;

	while (p != NULL) {
		const char *f = p + 1, *fe = memchr(f, ',', (size_t)(end - f));

		fe = fe != NULL ? fe : end;
		if (fe - f > 2 && f[0] == k && f[1] == '=' &&
		    strnum_u64(f + 2, (size_t)(fe - f - 2), 0, INT64_MAX, v_r) == 0)
			return true;
		p = fe < end ? fe : NULL;
	}
	return false;
}

bool maildir_w_size(const char *base, size_t len, uint64_t file_size, uint64_t *w_r)
{
	uint64_t s;

	/* S-137: a name can lie (a copy, a tool that rewrote the file). The CRLF form is never
	 * shorter than the file nor more than twice it plus a final CRLF, and ",S=" is the file
	 * size itself; a name that fails either is not believed and the file is read. */
	if (!name_field(base, len, 'W', w_r) || *w_r < file_size || *w_r > 2 * file_size + 2)
		return false;
	return !name_field(base, len, 'S', &s) || s == file_size;
}

/* ---- reading a message once: X-UIDL and size ---- */

static ssize_t read_full(int fd, char *buf, size_t want)
{
	size_t have = 0;

	while (have < want) {
		ssize_t n = read(fd, buf + have, want - have);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return -1;
		if (n == 0)
			break;
		have += (size_t)n;
	}
	return (ssize_t)have;
}
_Static_assert(XUIDL_SCAN_MAX <= RETR_CHUNK, "the header fits the read buffer");

int maildir_read_msg(int fd, struct maildir_readbuf *buf, char xuidl[POP3_UIDL_MAX + 1],
                     size_t *xlen_r, uint64_t *size_r)
{
	struct pop3_enc e;
	ssize_t n = 0;

	*xlen_r = 0;
	if (buf->in == NULL)
		buf->in = malloc(RETR_CHUNK);
	if (buf->out == NULL)
		buf->out = malloc(2 * (size_t)RETR_CHUNK + 3);
	if (buf->in == NULL || buf->out == NULL) {
		errno = ENOMEM;
		return -1;
	}
	/* The header is searched in the first XUIDL_SCAN_MAX octets, read together. */
	if (xuidl != NULL) {
		if ((n = read_full(fd, buf->in, XUIDL_SCAN_MAX)) < 0)
			return -1;
		*xlen_r = uidl_xuidl(buf->in, (size_t)n, xuidl);
	}
	if (size_r == NULL)
		return 0;
	/* S-052, S-137: the exact wire size, counted by the same encoder RETR uses. */
	pop3_enc_init(&e, false, UINT64_MAX);
	pop3_enc_feed(&e, buf->in, (size_t)n, buf->out);
	for (;;) {
		n = read(fd, buf->in, RETR_CHUNK);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return -1;
		if (n == 0)
			break;
		pop3_enc_feed(&e, buf->in, (size_t)n, buf->out);
	}
	pop3_enc_finish(&e, buf->out);
	*size_r = e.size;
	return 0;
}

/* ---- X-UIDL ---- */

static bool is_wsp(char c)
{
	return c == ' ' || c == '\t';
}

size_t uidl_xuidl(const char *msg, size_t len, char out[POP3_UIDL_MAX + 1])
{
	/* An unfolded value longer than this cannot be legal once trimmed; stop collecting. */
	char val[POP3_UIDL_MAX * 4];
	size_t pos = 0, vlen = 0, start, end;
	bool capturing = false, found = false, overflow = false;

	if (len > XUIDL_SCAN_MAX)
		len = XUIDL_SCAN_MAX;
	while (pos < len) {
		const char *lf = memchr(msg + pos, '\n', len - pos);
		size_t eol = lf != NULL ? (size_t)(lf - msg) : len, llen = eol - pos;
		const char *line = msg + pos;

		if (llen > 0 && line[llen - 1] == '\r')
			llen--;
		if (llen == 0)
			break; /* end of the header */
		if (capturing && !is_wsp(line[0]))
			break; /* the field ended */
		if (capturing || (llen >= 7 && strncasecmp(line, "X-UIDL:", 7) == 0)) {
			size_t skip = capturing ? 0 : 7;
			if (vlen + (llen - skip) > sizeof(val))
				overflow = true;
			else
				memcpy(val + vlen, line + skip, llen - skip);
			vlen += llen - skip;
			capturing = found = true;
		}
		pos = eol + 1;
	}
	if (!found || overflow)
		return 0;
	for (start = 0; start < vlen && is_wsp(val[start]);)
		start++;
	for (end = vlen; end > start && is_wsp(val[end - 1]);)
		end--;
	if (!uidl_valid(val + start, end - start))
		return 0;
	memcpy(out, val + start, end - start);
	out[end - start] = '\0';
	return end - start;
}

/* ---- dovecot-uidlist ---- */

struct dv_ctx {
	struct uidl_dovecot_req *req;
	struct mindex_hash h;
	const char *dir;
	int version;
	uint32_t uidvalidity;
	uint32_t prev_uid;
	size_t lineno, bad, first_bad;
};

static bool dv_eq(void *arg, uint32_t v, const void *key, size_t len)
{
	const struct uidl_dovecot_req *r = &((struct dv_ctx *)arg)->req[v];

	return r->base_len == len && memcmp(r->base, key, len) == 0;
}

/* A decimal uint32 in 1..UINT32_MAX-1 at *P (advanced past it): Dovecot's UID range. */
static bool dv_number(const char **p, const char *end, uint32_t *v_r)
{
	uint64_t v = 0;
	const char *s = *p;

	if (s >= end || *s < '0' || *s > '9')
		return false;
	for (; s < end && *s >= '0' && *s <= '9'; s++) {
		v = v * 10 + (uint64_t)(*s - '0');
		if (v >= UINT32_MAX)
			return false;
	}
	if (v == 0)
		return false;
	*p = s;
	*v_r = (uint32_t)v;
	return true;
}

/* "3 V<uidvalidity> N<nextuid> G<guid> ..." or "1 <uidvalidity> <nextuid>". */
static bool dv_header(struct dv_ctx *c, const char *s, const char *end)
{
	uint32_t next = 0;

	if (end - s < 2 || (s[0] != '1' && s[0] != '3') || s[1] != ' ')
		return false;
	c->version = s[0] - '0';
	s += 2;
	if (c->version == 1) {
		if (!dv_number(&s, end, &c->uidvalidity) || s >= end || *s != ' ')
			return false;
		s++;
		return dv_number(&s, end, &next);
	}
	while (s < end) {
		const char *f = s, *fe = memchr(s, ' ', (size_t)(end - s));
		const char *v = f + 1;

		fe = fe != NULL ? fe : end;
		if (*f == 'V' && (!dv_number(&v, fe, &c->uidvalidity) || v != fe))
			return false;
		if (*f == 'N' && (!dv_number(&v, fe, &next) || v != fe))
			return false;
		for (s = fe; s < end && *s == ' ';)
			s++;
	}
	return c->uidvalidity != 0 && next != 0;
}

/* One record line: false when corrupt. */
static bool dv_line(struct dv_ctx *c, const char *s, const char *end)
{
	const char *pval = NULL, *name, *base_end;
	size_t plen = 0;
	uint32_t uid, *slot;
	struct uidl_dovecot_req *r;

	if (!dv_number(&s, end, &uid) || s >= end || *s != ' ' || uid <= c->prev_uid)
		return false;
	while (s < end && *s == ' ')
		s++;
	if (c->version == 3) {
		/* Extension fields "<A-Z><value>" up to the ':' that starts the name. */
		while (s < end && *s != ':') {
			const char *fe = memchr(s, ' ', (size_t)(end - s));
			fe = fe != NULL ? fe : end;
			if (*s < 'A' || *s > 'Z')
				return false;
			if (*s == 'P') {
				pval = s + 1;
				plen = (size_t)(fe - s - 1);
			}
			for (s = fe; s < end && *s == ' ';)
				s++;
		}
		if (s >= end || *s != ':')
			return false;
		s++;
	}
	name = s;
	if (name >= end || memchr(name, '/', (size_t)(end - name)) != NULL ||
	    memchr(name, '\0', (size_t)(end - name)) != NULL)
		return false;
	c->prev_uid = uid;
	base_end = memchr(name, ':', (size_t)(end - name));
	base_end = base_end != NULL ? base_end : end;
	slot = mindex_hash_slot(&c->h, name, (size_t)(base_end - name), dv_eq, c);
	if (*slot == 0)
		return true;
	r = &c->req[*slot - 1];
	r->uidl_len = 0;
	if (pval != NULL && plen == 0) {
		pval = name; /* "P" alone: the base name */
		plen = (size_t)(base_end - name);
	}
	if (pval != NULL) {
		if (uidl_valid(pval, plen)) {
			memcpy(r->uidl, pval, plen);
			r->uidl[plen] = '\0';
			r->uidl_len = (uint8_t)plen;
		}
		return true;
	}
	snprintf(r->uidl, sizeof(r->uidl), "%08x%08x", uid, c->uidvalidity);
	r->uidl_len = 16;
	return true;
}

static void dv_bad(struct dv_ctx *c)
{
	if (c->bad++ == 0)
		c->first_bad = c->lineno;
}

static int dv_read(struct dv_ctx *c, int fd, const char **why_r)
{
	char *buf = malloc(DOVECOT_LINE_MAX);
	size_t have = 0; /* octets of an unfinished line at buf[0]; always < DOVECOT_LINE_MAX */
	bool skipping = false, eof = false;

	if (buf == NULL) {
		*why_r = "out of memory";
		return -1;
	}
	while (!eof && c->lineno < DOVECOT_LINES_MAX) {
		ssize_t n = read(fd, buf + have, DOVECOT_LINE_MAX - have);
		char *p = buf, *lf;

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			*why_r = strerror(errno);
			free(buf);
			return -1;
		}
		have += (size_t)n;
		eof = n == 0;
		if (eof && (have > 0 || skipping))
			buf[have++] = '\n'; /* a last line without its newline still counts */
		while ((lf = memchr(p, '\n', have - (size_t)(p - buf))) != NULL) {
			bool ok;

			c->lineno++;
			if (c->lineno == 1)
				ok = !skipping && dv_header(c, p, lf);
			else
				ok = !skipping && dv_line(c, p, lf);
			if (!ok && c->lineno == 1) {
				*why_r = "bad header line";
				free(buf);
				return -1;
			}
			if (!ok)
				dv_bad(c);
			skipping = false;
			p = lf + 1;
		}
		have -= (size_t)(p - buf);
		memmove(buf, p, have);
		if (have == DOVECOT_LINE_MAX) {
			/* Too long for a record: dropped up to its newline, counted there. */
			skipping = true;
			have = 0;
		}
	}
	free(buf);
	if (c->lineno == 0) {
		*why_r = "empty file";
		return -1;
	}
	return 0;
}

int uidl_dovecot_lookup(int rootfd, const char *dir, struct uidl_dovecot_req *req, size_t n,
                        const char **why_r)
{
	struct dv_ctx c = {.req = req, .dir = dir};
	struct stat st;
	int fd, rc;

	for (size_t i = 0; i < n; i++)
		req[i].uidl_len = 0;
	fd = openat(rootfd, DOVECOT_NAME, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC);
	if (fd < 0) {
		*why_r = errno == ENOENT ? "no dovecot-uidlist" : strerror(errno);
		return -1;
	}
	if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode)) {
		close(fd);
		*why_r = "not a regular file";
		return -1;
	}
	if (mindex_hash_init(&c.h, n) < 0) {
		close(fd);
		*why_r = "out of memory";
		return -1;
	}
	for (size_t i = 0; i < n; i++) {
		uint32_t *slot = mindex_hash_slot(&c.h, req[i].base, req[i].base_len, dv_eq, &c);
		if (*slot == 0)
			*slot = (uint32_t)i + 1;
	}
	rc = dv_read(&c, fd, why_r);
	close(fd);
	mindex_hash_free(&c.h);
	if (rc < 0) {
		for (size_t i = 0; i < n; i++)
			req[i].uidl_len = 0;
		return -1;
	}
	if (c.bad > 0)
		log_warnx("maildir %s/%s: %zu corrupt line%s skipped (first: line %zu)", dir,
		          DOVECOT_NAME, c.bad, c.bad == 1 ? "" : "s", c.first_bad);
	if (c.lineno >= DOVECOT_LINES_MAX)
		log_warnx("maildir %s/%s: more than %zu lines, the rest ignored", dir, DOVECOT_NAME,
		          DOVECOT_LINES_MAX);
	return 0;
}

/* ---- assigning UIDLs to a snapshot's records ---- */

/* Fallback UIDLs tried for a message whose UIDL is taken: its GANNET form, then salted hashes. A
 * 17th collision cannot happen by chance (SHA-256), only through crafted X-UIDLs every time. */
#define UIDL_SALTS_MAX 16

struct assign_ctx {
	const struct mindex_view *v;
	size_t n;
	enum uidl_source source;
	int rootfd;
	const char *dir;
	bool changed;
};

__attribute__((format(printf, 3, 4))) static void
log_rec(const struct assign_ctx *c, const struct mindex_rec *r, const char *fmt, ...)
{
	char name[MINDEX_NAME_BUF], safe[256], msg[256];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	mindex_rec_name(c->v->arena, r, name);
	log_warnx("maildir %s: %s/%s: %s", c->dir, (r->flags & MREC_IN_NEW) ? "new" : "cur",
	          log_sanitize(safe, sizeof(safe), name, strlen(name)), msg);
}

/* The GANNET form (of the unique part) or the MAILDIR form (of the base name) of R's UIDL. */
static int uidl_own(struct assign_ctx *c, struct mindex_rec *r, bool maildir_style)
{
	char out[POP3_UIDL_MAX + 1];
	const char *s;
	size_t len, n;
	bool plain;

	if (maildir_style)
		len = mindex_rec_base(c->v->arena, r, &s);
	else
		len = mindex_rec_unique(c->v->arena, r, &s);
	n = uidl_derive(s, len, out, &plain);
	if (n == 0) {
		errno = EIO;
		return -1;
	}
	return mindex_rec_set_uidl(c->v->arena, r, plain ? s : out, n);
}

static int uidls_dovecot(struct assign_ctx *c)
{
	struct uidl_dovecot_req *req;
	uint32_t *which;
	size_t n = 0, missing = 0, first = 0;
	const char *why = NULL;
	int rc = 0;

	for (size_t i = 0; i < c->n; i++)
		n += !(c->v->rec[i].flags & (MREC_UIDL | MREC_GONE));
	if (n == 0)
		return 0;
	req = calloc(n, sizeof(*req));
	which = calloc(n, sizeof(*which));
	if (req == NULL || which == NULL) {
		free(req);
		free(which);
		errno = ENOMEM;
		return -1;
	}
	n = 0;
	for (uint32_t i = 0; i < c->n; i++) {
		const char *b, *colon;

		if (c->v->rec[i].flags & (MREC_UIDL | MREC_GONE))
			continue;
		req[n].base_len = mindex_rec_base(c->v->arena, &c->v->rec[i], &b);
		colon = memchr(b, ':', req[n].base_len); /* Dovecot's base: up to the first ':' */
		req[n].base = b;
		if (colon != NULL)
			req[n].base_len = (size_t)(colon - b);
		which[n++] = i;
	}
	if (uidl_dovecot_lookup(c->rootfd, c->dir, req, n, &why) < 0)
		log_warnx("maildir %s: %s unusable: %s", c->dir, DOVECOT_NAME, why);
	/* req[].base points into the arena: nothing may grow it before this loop is done. */
	for (size_t k = 0; k < n; k++) {
		if (req[k].uidl_len == 0 && missing++ == 0)
			first = which[k];
	}
	for (size_t k = 0; k < n && rc == 0; k++)
		if (req[k].uidl_len > 0)
			rc = mindex_rec_set_uidl(c->v->arena, &c->v->rec[which[k]], req[k].uidl,
			                         req[k].uidl_len);
	if (rc == 0 && missing > 0)
		log_rec(c, &c->v->rec[first],
		        "no usable record in %s, Gannet UIDL used (%zu message%s in all)",
		        DOVECOT_NAME, missing, missing == 1 ? "" : "s");
	free(req);
	free(which);
	return rc;
}

static bool uidl_eq(void *arg, uint32_t v, const void *key, size_t len)
{
	const struct mindex_view *view = arg;
	const struct mindex_rec *r = &view->rec[v];

	return r->uidl_len == len && memcmp(view->arena->p + r->uidl_off, key, len) == 0;
}

/* R's UIDL is taken: try its GANNET form, then salted hashes of its unique part. Returns the free
 * slot for the new UIDL (R updated), or the taken slot when none was free; NULL with errno. */
static uint32_t *uidl_rescue(struct assign_ctx *c, struct mindex_hash *h, struct mindex_rec *r,
                             uint32_t *slot)
{
	char alt[POP3_UIDL_MAX + 1], old[POP3_UIDL_MAX + 1];
	const char *u, *cand;
	size_t ulen, n;
	bool plain = false;

	for (uint32_t salt = 0; *slot != 0 && salt <= UIDL_SALTS_MAX; salt++) {
		ulen = mindex_rec_unique(c->v->arena, r, &u);
		n = salt == 0 ? uidl_derive(u, ulen, alt, &plain) : uidl_hashed(u, ulen, salt, alt);
		if (n == 0) {
			errno = EIO;
			return NULL;
		}
		cand = salt == 0 && plain ? u : alt;
		slot = mindex_hash_slot(h, cand, n, uidl_eq, (void *)c->v);
		if (*slot != 0)
			continue;
		memcpy(old, c->v->arena->p + r->uidl_off, r->uidl_len);
		old[r->uidl_len] = '\0';
		memcpy(alt, cand, n); /* CAND may be in the arena, which set_uidl can move */
		alt[n] = '\0';
		if (mindex_rec_set_uidl(c->v->arena, r, alt, n) < 0)
			return NULL;
		log_rec(c, r, "UIDL %s is taken by another message, now %s", old, alt);
		r->flags &= (uint16_t)~MREC_UIDL_IDX;
		c->changed = true;
	}
	return slot;
}

/* RFC 1939 §7: one UIDL, one message. */
static int uidls_unique(struct assign_ctx *c)
{
	struct mindex_hash h;
	int rc = 0;

	if (mindex_hash_init(&h, c->n) < 0)
		return -1;
	for (int pass = 0; pass < 2 && rc == 0; pass++) {
		for (uint32_t i = 0; i < c->n && rc == 0; i++) {
			struct mindex_rec *r = &c->v->rec[i];
			uint32_t *slot;

			if ((r->flags & MREC_GONE) ||
			    (pass == 0) != ((r->flags & MREC_UIDL_IDX) != 0))
				continue;
			slot = mindex_hash_slot(&h, c->v->arena->p + r->uidl_off, r->uidl_len,
			                        uidl_eq, (void *)c->v);
			if (*slot != 0)
				slot = uidl_rescue(c, &h, r, slot);
			if (slot == NULL) {
				rc = -1;
			} else if (*slot != 0) {
				log_rec(c, r, "no free UIDL, message left out");
				r->flags |= MREC_GONE;
				c->changed = true;
			} else {
				*slot = i + 1;
			}
		}
	}
	mindex_hash_free(&h);
	return rc;
}

int uidl_assign(const struct mindex_view *v, size_t n, enum uidl_source source, int rootfd,
                const char *dir, bool *changed_r)
{
	struct assign_ctx c = {.v = v, .n = n, .source = source, .rootfd = rootfd, .dir = dir};
	size_t fallback = 0;
	int rc = 0;

	if (source == UIDL_SOURCE_DOVECOT)
		rc = uidls_dovecot(&c);
	for (size_t i = 0; i < n && rc == 0; i++) {
		struct mindex_rec *r = &v->rec[i];

		if (r->flags & (MREC_UIDL | MREC_GONE))
			continue;
		fallback += source == UIDL_SOURCE_XUIDL;
		rc = uidl_own(&c, r, source == UIDL_SOURCE_MAILDIR);
	}
	if (rc == 0 && fallback > 0)
		log_info("maildir %s: %zu message%s without a valid X-UIDL get Gannet UIDLs", dir,
		         fallback, fallback == 1 ? "" : "s");
	if (rc == 0)
		rc = uidls_unique(&c);
	if (c.changed)
		*changed_r = true;
	return rc;
}
