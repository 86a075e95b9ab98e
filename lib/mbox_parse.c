/* Streaming mbox parser: message boundaries, exact POP3 sizes, X-UIDL or hashed UIDLs. Pure. */
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/random.h>

#include <openssl/evp.h>

#include "mbox_int.h"
#include "siphash.h"

_Static_assert(MAILDROP_MESSAGES_MAX <= UINT32_MAX / 4, "table indexes are 32-bit");
_Static_assert(MAILDROP_MESSAGES_MAX < SIZE_MAX / sizeof(struct mbox_rec), "message cap");
_Static_assert(POP3_UIDL_MAX <= UINT8_MAX, "UIDL lengths are 8-bit");
/* A hashed UIDL: hex, '-', a duplicate number below MAILDROP_MESSAGES_MAX (7 digits). */
_Static_assert(MBOX_HASH_UIDL_HEX + 1 + 7 <= POP3_UIDL_MAX, "hashed UIDL fits");

#define MSGS_INITIAL 64

static const char from_[5] = {'F', 'r', 'o', 'm', ' '};

static int oom(const char **error_r)
{
	return mbox_fail(MBOX_ERR_TEMP, error_r, "out of memory");
}

static int not_mbox(const char **error_r)
{
	/* Never rewrite what we do not understand: an administrator has to look at it. */
	return mbox_fail(MBOX_ERR_PERM, error_r, "not an mbox (does not start with a From_ line)");
}

static void emit(struct mbox_parser *p, const char *d, size_t n)
{
	while (n > 0) {
		size_t piece = n < MBOX_ENC_PIECE ? n : MBOX_ENC_PIECE;

		(void)pop3_enc_feed(&p->enc, d, piece, p->encbuf);
		d += piece;
		n -= piece;
	}
}

/* A held empty line turned out to be message text (something other than a From_ line follows). */
static void flush_pending(struct mbox_parser *p)
{
	if (p->pend_len > 0) {
		emit(p, p->pend, p->pend_len);
		p->pend_len = 0;
	}
}

/* Hash a line without its ending: a CR right before the LF is held back and dropped, so that LF
 * and CRLF mailboxes give the same UIDLs. */
static int md_bytes(struct mbox_parser *p, const char *d, size_t n)
{
	if (n == 0)
		return 0;
	if (p->md_cr) {
		p->md_cr = false;
		if (EVP_DigestUpdate(p->md, "\r", 1) != 1)
			return -1;
	}
	if (d[n - 1] == '\r') {
		p->md_cr = true;
		n--;
	}
	return n == 0 || EVP_DigestUpdate(p->md, d, n) == 1 ? 0 : -1;
}

static int md_eol(struct mbox_parser *p)
{
	p->md_cr = false;
	return EVP_DigestUpdate(p->md, "\n", 1) == 1 ? 0 : -1;
}

static void hline_bytes(struct mbox_parser *p, const char *d, size_t n)
{
	size_t room = sizeof(p->hline) - p->hline_len;

	if (n > room) {
		n = room;
		p->hline_long = true;
	}
	memcpy(p->hline + p->hline_len, d, n);
	p->hline_len += n;
}

static bool is_blank(char c)
{
	return c == ' ' || c == '\t';
}

/* The header block ends: a pending X-UIDL candidate was not continued, so it stands. */
static void header_end(struct mbox_parser *p)
{
	if (p->xstate == MBOX_X_CANDIDATE)
		p->xstate = MBOX_X_DONE;
}

/* A header line is complete: look for the message's first X-UIDL: header. */
static void hline_eol(struct mbox_parser *p)
{
	const char *l = p->hline;
	size_t len = p->hline_len;

	if (p->xstate == MBOX_X_CANDIDATE) {
		/* A folded X-UIDL has blanks in its value once unfolded: not a valid UIDL. */
		if (len > 0 && is_blank(l[0]))
			p->xlen = 0;
		p->xstate = MBOX_X_DONE;
	}
	if (p->xstate == MBOX_X_NONE && len >= 7 && strncasecmp(l, "X-UIDL:", 7) == 0) {
		size_t b = 7, e = len;
		bool ok;

		while (b < e && is_blank(l[b]))
			b++;
		while (e > b && (is_blank(l[e - 1]) || l[e - 1] == '\r'))
			e--;
		ok = !p->hline_long && e > b && e - b <= POP3_UIDL_MAX;
		for (size_t i = b; ok && i < e; i++)
			ok = (unsigned char)l[i] >= 0x21 && (unsigned char)l[i] <= 0x7e;
		if (ok) {
			memcpy(p->xval, l + b, e - b);
			p->xlen = e - b;
			p->xstate = MBOX_X_CANDIDATE;
		} else {
			p->xlen = 0;
			p->xstate = MBOX_X_DONE;
		}
	}
	p->hline_len = 0;
	p->hline_long = false;
}

/* A header line's octets (without the LF). */
static int header_bytes(struct mbox_parser *p, const char *d, size_t n)
{
	hline_bytes(p, d, n);
	return md_bytes(p, d, n);
}

static int header_eol(struct mbox_parser *p)
{
	hline_eol(p);
	return md_eol(p);
}

static int arena_add(struct mbox_snapshot *snap, const char *d, size_t n, uint32_t *off_r)
{
	if (snap->arena_len + n > UINT32_MAX)
		return -1;
	if (snap->arena_len + n > snap->arena_cap) {
		size_t cap = snap->arena_cap ? snap->arena_cap : 4096;
		char *a;

		while (cap < snap->arena_len + n)
			cap *= 2;
		a = realloc(snap->arena, cap);
		if (a == NULL)
			return -1;
		snap->arena = a;
		snap->arena_cap = cap;
	}
	memcpy(snap->arena + snap->arena_len, d, n);
	*off_r = (uint32_t)snap->arena_len;
	snap->arena_len += n;
	return 0;
}

static int msg_begin(struct mbox_parser *p, uint64_t from_off, const char **error_r)
{
	if (p->snap->count >= MAILDROP_MESSAGES_MAX)
		return mbox_fail(MBOX_ERR_TEMP, error_r, "more than %d messages",
		                 MAILDROP_MESSAGES_MAX);
	memset(&p->cur, 0, sizeof(p->cur));
	p->cur.from_off = from_off;
	p->in_msg = true;
	pop3_enc_init(&p->enc, false, UINT64_MAX);
	if (EVP_DigestInit_ex(p->md, EVP_sha256(), NULL) != 1)
		return mbox_fail(MBOX_ERR_TEMP, error_r, "SHA-256 init failed");
	p->md_cr = false;
	p->hline_len = 0;
	p->hline_long = false;
	p->xstate = MBOX_X_NONE;
	p->xlen = 0;
	return 0;
}

static int msg_end(struct mbox_parser *p, uint64_t end, const char **error_r)
{
	struct mbox_snapshot *snap = p->snap;
	unsigned char md[EVP_MAX_MD_SIZE];
	unsigned int mdlen = 0;

	header_end(p);
	(void)pop3_enc_finish(&p->enc, p->encbuf);
	p->cur.raw_len = end - p->cur.raw_off;
	p->cur.size = p->enc.size;
	if (EVP_DigestFinal_ex(p->md, md, &mdlen) != 1 || mdlen < MBOX_HASH_LEN)
		return mbox_fail(MBOX_ERR_TEMP, error_r, "SHA-256 failed");
	memcpy(p->cur.hash, md, MBOX_HASH_LEN);
	if (p->xlen > 0) {
		if (arena_add(snap, p->xval, p->xlen, &p->cur.x_off) < 0)
			return oom(error_r);
		p->cur.x_len = (uint8_t)p->xlen;
	}
	if (snap->count == p->msgs_cap) {
		size_t cap = p->msgs_cap ? p->msgs_cap * 2 : MSGS_INITIAL;
		struct mbox_rec *m;

		if (cap > MAILDROP_MESSAGES_MAX)
			cap = MAILDROP_MESSAGES_MAX;
		m = realloc(snap->msgs, cap * sizeof(*m));
		if (m == NULL)
			return oom(error_r);
		snap->msgs = m;
		p->msgs_cap = cap;
	}
	snap->msgs[snap->count++] = p->cur;
	snap->total_size += p->cur.size;
	p->in_msg = false;
	return 0;
}

int mbox_parser_init(struct mbox_parser *p, struct mbox_snapshot *snap, const char **error_r)
{
	memset(p, 0, sizeof(*p));
	memset(snap, 0, sizeof(*snap));
	p->snap = snap;
	p->ls = MBOX_LS_HEAD;
	p->zone = MBOX_Z_NONE;
	p->after_empty = true; /* the start of the file may hold a From_ line */
	p->md = EVP_MD_CTX_new();
	if (p->md == NULL)
		return oom(error_r);
	return 0;
}

void mbox_parser_abort(struct mbox_parser *p)
{
	EVP_MD_CTX_free(p->md);
	p->md = NULL;
	mbox_snapshot_free(p->snap);
}

/* A line of fewer than 5 octets ended (HEAD holds it without the LF). */
static int short_line(struct mbox_parser *p, const char **error_r)
{
	bool empty = p->head_len == 0 || (p->head_len == 1 && p->head[0] == '\r');

	if (!p->in_msg)
		return not_mbox(error_r);
	if (empty) {
		/* Maybe the separator before the next From_ line: hold it until we know. */
		flush_pending(p);
		memcpy(p->pend, p->head, p->head_len);
		p->pend[p->head_len] = '\n';
		p->pend_len = p->head_len + 1;
		p->pend_off = p->line_off;
		if (p->zone == MBOX_Z_HEADER) {
			header_end(p);
			p->zone = MBOX_Z_BODY;
		}
		p->after_empty = true;
		return 0;
	}
	flush_pending(p);
	emit(p, p->head, p->head_len);
	emit(p, "\n", 1);
	p->after_empty = false;
	if (p->zone == MBOX_Z_HEADER &&
	    (header_bytes(p, p->head, p->head_len) < 0 || header_eol(p) < 0))
		return mbox_fail(MBOX_ERR_TEMP, error_r, "SHA-256 failed");
	return 0;
}

/* HEAD holds the first 5 octets of a line: a From_ line or message text. */
static int classify(struct mbox_parser *p, const char **error_r)
{
	int r;

	if (p->after_empty && memcmp(p->head, from_, sizeof(from_)) == 0) {
		if (p->in_msg) {
			/* after_empty with a message open means an empty line is held: the
			 * separator, not part of the message. */
			r = msg_end(p, p->pend_len > 0 ? p->pend_off : p->line_off, error_r);
			if (r < 0)
				return r;
		}
		p->pend_len = 0;
		r = msg_begin(p, p->line_off, error_r);
		if (r < 0)
			return r;
		p->zone = MBOX_Z_NONE;
		p->ls = MBOX_LS_FROM;
		p->after_empty = false;
		if (md_bytes(p, p->head, p->head_len) < 0)
			return mbox_fail(MBOX_ERR_TEMP, error_r, "SHA-256 failed");
		return 0;
	}
	if (!p->in_msg)
		return not_mbox(error_r);
	flush_pending(p);
	emit(p, p->head, p->head_len);
	p->ls = MBOX_LS_TEXT;
	p->after_empty = false;
	if (p->zone == MBOX_Z_HEADER && header_bytes(p, p->head, p->head_len) < 0)
		return mbox_fail(MBOX_ERR_TEMP, error_r, "SHA-256 failed");
	return 0;
}

static void line_start(struct mbox_parser *p)
{
	p->ls = MBOX_LS_HEAD;
	p->head_len = 0;
	p->line_off = p->pos;
}

int mbox_parser_feed(struct mbox_parser *p, const char *data, size_t len, const char **error_r)
{
	size_t i = 0;
	int r;

	while (i < len) {
		const char *d = data + i, *lf;
		size_t n = len - i, seg;

		switch (p->ls) {
		case MBOX_LS_HEAD:
			i++;
			p->pos++;
			if (*d == '\n') {
				r = short_line(p, error_r);
				if (r < 0)
					return r;
				line_start(p);
				break;
			}
			p->head[p->head_len++] = *d;
			if (p->head_len == sizeof(p->head)) {
				r = classify(p, error_r);
				if (r < 0)
					return r;
			}
			break;
		case MBOX_LS_FROM:
			lf = memchr(d, '\n', n);
			seg = lf != NULL ? (size_t)(lf - d) : n;
			if (md_bytes(p, d, seg) < 0)
				return mbox_fail(MBOX_ERR_TEMP, error_r, "SHA-256 failed");
			i += seg;
			p->pos += seg;
			if (lf != NULL) {
				i++;
				p->pos++;
				if (md_eol(p) < 0)
					return mbox_fail(MBOX_ERR_TEMP, error_r, "SHA-256 failed");
				p->cur.raw_off = p->pos;
				p->zone = MBOX_Z_HEADER;
				line_start(p);
			}
			break;
		case MBOX_LS_TEXT:
			lf = memchr(d, '\n', n);
			seg = lf != NULL ? (size_t)(lf - d) : n;
			emit(p, d, lf != NULL ? seg + 1 : seg);
			if (p->zone == MBOX_Z_HEADER && header_bytes(p, d, seg) < 0)
				return mbox_fail(MBOX_ERR_TEMP, error_r, "SHA-256 failed");
			i += seg;
			p->pos += seg;
			if (lf != NULL) {
				i++;
				p->pos++;
				if (p->zone == MBOX_Z_HEADER && header_eol(p) < 0)
					return mbox_fail(MBOX_ERR_TEMP, error_r, "SHA-256 failed");
				line_start(p);
			}
			break;
		}
	}
	return 0;
}

/* ---- UIDLs ---- */

struct uidl_tables {
	uint64_t k0, k1;
	size_t mask;
	uint32_t *xset;   /* messages holding an X-UIDL, by value (index + 1; 0 empty) */
	uint32_t *groups; /* first message of each hash value (index + 1) */
	uint32_t *dups;   /* per first message: how many of its group have been numbered */
};

static size_t xslot(const struct uidl_tables *t, const struct mbox_snapshot *snap, const char *v,
                    size_t len, bool *found_r)
{
	size_t s = (size_t)siphash(t->k0, t->k1, (const unsigned char *)v, len, 1, 3) & t->mask;

	for (;; s = (s + 1) & t->mask) {
		uint32_t e = t->xset[s];
		const struct mbox_rec *m;

		if (e == 0) {
			*found_r = false;
			return s;
		}
		m = &snap->msgs[e - 1];
		if (m->uidl_len == len && memcmp(snap->arena + m->uidl_off, v, len) == 0) {
			*found_r = true;
			return s;
		}
	}
}

static uint32_t group_first(struct uidl_tables *t, const struct mbox_snapshot *snap, uint32_t i)
{
	const unsigned char *h = snap->msgs[i].hash;
	size_t s = (size_t)siphash(t->k0, t->k1, h, MBOX_HASH_LEN, 1, 3) & t->mask;

	for (;; s = (s + 1) & t->mask) {
		uint32_t e = t->groups[s];

		if (e == 0) {
			t->groups[s] = i + 1;
			return i;
		}
		if (memcmp(snap->msgs[e - 1].hash, h, MBOX_HASH_LEN) == 0)
			return e - 1;
	}
}

static int assign_uidls(struct mbox_snapshot *snap, const char **error_r)
{
	static const char hex[] = "0123456789abcdef";
	struct uidl_tables t;
	size_t cap = 16;
	unsigned char key[16];
	int rc = 0;

	if (snap->count == 0)
		return 0;
	while (cap < 2 * snap->count)
		cap *= 2;
	memset(&t, 0, sizeof(t));
	/* X-UIDL values come from senders: a random key keeps them from piling up in one slot. A
	 * missing key only costs speed, never correctness. */
	if (getrandom(key, sizeof(key), GRND_NONBLOCK) == (ssize_t)sizeof(key)) {
		memcpy(&t.k0, key, 8);
		memcpy(&t.k1, key + 8, 8);
	}
	t.mask = cap - 1;
	t.xset = calloc(cap, sizeof(*t.xset));
	t.groups = calloc(cap, sizeof(*t.groups));
	t.dups = calloc(snap->count, sizeof(*t.dups));
	if (t.xset == NULL || t.groups == NULL || t.dups == NULL) {
		rc = oom(error_r);
		goto out;
	}
	/* X-UIDLs first, the earlier message keeping a duplicated one, so a hashed UIDL never
	 * takes a value a header asked for. */
	for (size_t i = 0; i < snap->count; i++) {
		struct mbox_rec *m = &snap->msgs[i];
		bool found;
		size_t s;

		if (m->x_len == 0)
			continue;
		s = xslot(&t, snap, snap->arena + m->x_off, m->x_len, &found);
		if (found) {
			m->x_len = 0;
			continue;
		}
		m->uidl_off = m->x_off;
		m->uidl_len = m->x_len;
		t.xset[s] = (uint32_t)i + 1;
	}
	for (size_t i = 0; i < snap->count; i++) {
		struct mbox_rec *m = &snap->msgs[i];
		uint32_t g;
		char u[POP3_UIDL_MAX + 1];
		size_t len;
		bool found;

		if (m->x_len != 0)
			continue;
		for (size_t k = 0; k < MBOX_HASH_LEN; k++) {
			u[2 * k] = hex[m->hash[k] >> 4];
			u[2 * k + 1] = hex[m->hash[k] & 15];
		}
		g = group_first(&t, snap, (uint32_t)i);
		/* Hashed UIDLs of different groups differ in the hex part; only an X-UIDL can
		 * take one, and each X-UIDL is skipped at most once. */
		do {
			uint32_t n = t.dups[g]++;

			len = MBOX_HASH_UIDL_HEX;
			if (n > 0)
				len += (size_t)snprintf(u + len, sizeof(u) - len, "-%u", n);
			(void)xslot(&t, snap, u, len, &found);
		} while (found);
		if (arena_add(snap, u, len, &m->uidl_off) < 0) {
			rc = oom(error_r);
			goto out;
		}
		m->uidl_len = (uint8_t)len;
	}
out:
	free(t.xset);
	free(t.groups);
	free(t.dups);
	return rc;
}

int mbox_parser_finish(struct mbox_parser *p, const char **error_r)
{
	uint64_t end = p->pos;
	int r = 0;

	switch (p->ls) {
	case MBOX_LS_HEAD:
		if (p->head_len > 0) {
			/* A last line of fewer than 5 octets without a newline: text. */
			if (!p->in_msg) {
				r = not_mbox(error_r);
				break;
			}
			flush_pending(p);
			emit(p, p->head, p->head_len);
			if (p->zone == MBOX_Z_HEADER &&
			    (header_bytes(p, p->head, p->head_len) < 0 || header_eol(p) < 0))
				r = mbox_fail(MBOX_ERR_TEMP, error_r, "SHA-256 failed");
		} else if (p->pend_len > 0) {
			/* The empty line the MDA wrote after the last message. */
			end = p->pend_off;
			p->pend_len = 0;
		}
		break;
	case MBOX_LS_FROM:
		/* A From_ line without a newline at EOF: an empty message. */
		p->cur.raw_off = p->pos;
		if (md_eol(p) < 0)
			r = mbox_fail(MBOX_ERR_TEMP, error_r, "SHA-256 failed");
		break;
	case MBOX_LS_TEXT:
		if (p->zone == MBOX_Z_HEADER && header_eol(p) < 0)
			r = mbox_fail(MBOX_ERR_TEMP, error_r, "SHA-256 failed");
		break;
	}
	if (r == 0 && p->in_msg)
		r = msg_end(p, end, error_r);
	if (r == 0)
		r = assign_uidls(p->snap, error_r);
	EVP_MD_CTX_free(p->md);
	p->md = NULL;
	if (r < 0)
		mbox_snapshot_free(p->snap);
	return r;
}

void mbox_snapshot_free(struct mbox_snapshot *snap)
{
	if (snap == NULL)
		return;
	free(snap->msgs);
	free(snap->arena);
	memset(snap, 0, sizeof(*snap));
}

int mbox_parse_mem(const void *data, size_t len, size_t chunk, struct mbox_snapshot *snap,
                   const char **error_r)
{
	struct mbox_parser *p = malloc(sizeof(*p));
	const char *d = data;
	int r;

	if (p == NULL) {
		memset(snap, 0, sizeof(*snap));
		return oom(error_r);
	}
	r = mbox_parser_init(p, snap, error_r);
	if (r < 0) {
		mbox_parser_abort(p);
		free(p);
		return r;
	}
	if (chunk == 0)
		chunk = len > 0 ? len : 1;
	for (size_t off = 0; off < len; off += chunk) {
		size_t n = len - off < chunk ? len - off : chunk;

		r = mbox_parser_feed(p, d + off, n, error_r);
		if (r < 0) {
			mbox_parser_abort(p);
			free(p);
			return r;
		}
	}
	r = mbox_parser_finish(p, error_r);
	free(p);
	return r;
}

uint64_t mbox_msg_raw_len(const struct mbox_snapshot *snap, size_t i)
{
	return snap->msgs[i].raw_len;
}

uint64_t mbox_msg_raw_offset(const struct mbox_snapshot *snap, size_t i)
{
	return snap->msgs[i].raw_off;
}

uint64_t mbox_msg_size(const struct mbox_snapshot *snap, size_t i)
{
	return snap->msgs[i].size;
}

const char *mbox_msg_uidl(const struct mbox_snapshot *snap, size_t i, size_t *len_r)
{
	*len_r = snap->msgs[i].uidl_len;
	return snap->arena + snap->msgs[i].uidl_off;
}
