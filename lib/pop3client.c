/* POP3 client codec: parsing of everything a server sends, without I/O, so it can be unit-tested
 * and fuzzed on its own. */
#include "pop3client.h"

#include <string.h>
#include <strings.h>

#include "strnum.h"

static bool ieq(const char *a, size_t alen, const char *b)
{
	size_t blen = strlen(b);

	return alen == blen && strncasecmp(a, b, blen) == 0;
}

enum pop3c_status pop3c_status(const char *line, size_t len, const char **text_r,
                               size_t *text_len_r)
{
	static const struct {
		const char *word;
		size_t len;
		enum pop3c_status st;
	} words[] = {{"+OK", 3, POP3C_OK}, {"-ERR", 4, POP3C_ERR}, {"+", 1, POP3C_CONT}};

	*text_r = line + len;
	*text_len_r = 0;
	for (size_t i = 0; i < sizeof(words) / sizeof(words[0]); i++) {
		size_t w = words[i].len;

		if (len < w || strncasecmp(line, words[i].word, w) != 0)
			continue;
		if (len == w) {
			*text_r = line + w;
			return words[i].st;
		}
		if (line[w] != ' ')
			continue;
		*text_r = line + w + 1;
		*text_len_r = len - w - 1;
		return words[i].st;
	}
	return POP3C_BAD;
}

enum pop3c_rcode pop3c_resp_code(const char *text, size_t len)
{
	const char *end, *slash, *second;
	size_t first_len, second_len;

	if (len < 2 || text[0] != '[')
		return POP3C_RC_NONE;
	end = memchr(text, ']', len);
	if (end == NULL || end == text + 1)
		return POP3C_RC_NONE;
	for (const char *p = text + 1; p < end; p++)
		if ((unsigned char)*p <= 0x20 || (unsigned char)*p >= 0x7f)
			return POP3C_RC_NONE;
	slash = memchr(text + 1, '/', (size_t)(end - text - 1));
	first_len = (size_t)((slash ? slash : end) - (text + 1));
	second = slash ? slash + 1 : end;
	second_len = (size_t)(end - second);
	if (slash != NULL) {
		const char *s2 = memchr(second, '/', second_len);
		if (s2 != NULL)
			second_len = (size_t)(s2 - second);
	}
	if (ieq(text + 1, first_len, "IN-USE"))
		return POP3C_RC_IN_USE;
	if (ieq(text + 1, first_len, "LOGIN-DELAY"))
		return POP3C_RC_LOGIN_DELAY;
	if (ieq(text + 1, first_len, "AUTH"))
		return POP3C_RC_AUTH;
	if (ieq(text + 1, first_len, "UTF8"))
		return POP3C_RC_UTF8;
	if (ieq(text + 1, first_len, "SYS") && slash != NULL) {
		if (ieq(second, second_len, "TEMP"))
			return POP3C_RC_SYS_TEMP;
		if (ieq(second, second_len, "PERM"))
			return POP3C_RC_SYS_PERM;
	}
	return POP3C_RC_OTHER;
}

int pop3c_number(const char *s, size_t len, uint64_t max, uint64_t *out_r)
{
	while (len > 1 && s[0] == '0') {
		s++;
		len--;
	}
	return strnum_u64(s, len, 0, max, out_r);
}

/* Split "A SP B [SP ...]" into A and B; the rest is ignored (C-003). */
static int two_fields(const char *s, size_t len, const char **b_r, size_t *alen_r, size_t *blen_r)
{
	const char *sp = memchr(s, ' ', len), *sp2;

	if (len == 0 || sp == NULL)
		return -1;
	*alen_r = (size_t)(sp - s);
	*b_r = sp + 1;
	sp2 = memchr(*b_r, ' ', len - *alen_r - 1);
	*blen_r = sp2 ? (size_t)(sp2 - *b_r) : len - *alen_r - 1;
	return 0;
}

int pop3c_parse_stat(const char *text, size_t len, uint64_t *count_r, uint64_t *size_r)
{
	const char *b;
	size_t al, bl;

	if (two_fields(text, len, &b, &al, &bl) < 0)
		return -1;
	if (pop3c_number(text, al, UINT64_MAX, count_r) < 0 ||
	    pop3c_number(b, bl, UINT64_MAX, size_r) < 0)
		return -1;
	return 0;
}

int pop3c_parse_list(const char *line, size_t len, uint64_t *num_r, uint64_t *size_r)
{
	if (pop3c_parse_stat(line, len, num_r, size_r) < 0 || *num_r == 0)
		return -1;
	return 0;
}

bool pop3c_uidl_valid(const char *s, size_t len)
{
	if (len == 0 || len > POP3_UIDL_MAX)
		return false;
	for (size_t i = 0; i < len; i++)
		if ((unsigned char)s[i] < 0x21 || (unsigned char)s[i] > 0x7e)
			return false;
	return true;
}

int pop3c_parse_uidl(const char *line, size_t len, uint64_t *num_r, char uid[POP3_UIDL_MAX + 1])
{
	const char *b;
	size_t al, bl;

	if (two_fields(line, len, &b, &al, &bl) < 0)
		return -1;
	if (pop3c_number(line, al, UINT64_MAX, num_r) < 0 || *num_r == 0)
		return -1;
	if (!pop3c_uidl_valid(b, bl))
		return -1;
	memcpy(uid, b, bl);
	uid[bl] = '\0';
	return 0;
}

void pop3c_capa_reset(struct pop3c_capa *c)
{
	memset(c, 0, sizeof(*c));
}

/* Next SP-separated word of LINE after *POS; false at the end. */
static bool next_word(const char *line, size_t len, size_t *pos, const char **w, size_t *wl)
{
	size_t p = *pos;

	while (p < len && line[p] == ' ')
		p++;
	if (p >= len)
		return false;
	*w = line + p;
	while (p < len && line[p] != ' ')
		p++;
	*wl = (size_t)(line + p - *w);
	*pos = p;
	return true;
}

static void capa_sasl(struct pop3c_capa *c, const char *w, size_t wl)
{
	c->sasl_any = true;
	if (ieq(w, wl, "PLAIN"))
		c->sasl_plain = true;
	else if (ieq(w, wl, "LOGIN"))
		c->sasl_login = true;
	else if (ieq(w, wl, "SCRAM-SHA-256"))
		c->sasl_scram_sha256 = true;
	else if (ieq(w, wl, "SCRAM-SHA-256-PLUS"))
		c->sasl_scram_sha256_plus = true;
	else if (ieq(w, wl, "SCRAM-SHA-1"))
		c->sasl_scram_sha1 = true;
	else if (ieq(w, wl, "SCRAM-SHA-1-PLUS"))
		c->sasl_scram_sha1_plus = true;
	else if (ieq(w, wl, "OAUTHBEARER"))
		c->sasl_oauthbearer = true;
	else if (ieq(w, wl, "XOAUTH2"))
		c->sasl_xoauth2 = true;
}

/* EXPIRE and LOGIN-DELAY: "NAME value [USER]" (RFC 2449 §6.5, §6.7). */
static void capa_timer(const char *line, size_t len, size_t pos, bool is_expire,
                       struct pop3c_capa *c)
{
	const char *w;
	size_t wl;
	uint64_t v = 0;
	bool never = false;

	if (!next_word(line, len, &pos, &w, &wl))
		return;
	if (is_expire && ieq(w, wl, "NEVER"))
		never = true;
	else if (pop3c_number(w, wl, UINT32_MAX, &v) < 0)
		return;
	bool user = next_word(line, len, &pos, &w, &wl) && ieq(w, wl, "USER");
	if (is_expire) {
		c->expire_set = true;
		c->expire_never = never;
		c->expire_days = v;
		c->expire_user = user;
	} else {
		c->login_delay_set = true;
		c->login_delay = v;
		c->login_delay_user = user;
	}
}

void pop3c_capa_line(struct pop3c_capa *c, const char *line, size_t len)
{
	size_t pos = 0;
	const char *w;
	size_t wl;

	if (!next_word(line, len, &pos, &w, &wl))
		return;
	if (ieq(w, wl, "TOP"))
		c->top = true;
	else if (ieq(w, wl, "UIDL"))
		c->uidl = true;
	else if (ieq(w, wl, "USER"))
		c->user = true;
	else if (ieq(w, wl, "STLS"))
		c->stls = true;
	else if (ieq(w, wl, "PIPELINING"))
		c->pipelining = true;
	else if (ieq(w, wl, "RESP-CODES"))
		c->resp_codes = true;
	else if (ieq(w, wl, "UTF8")) {
		c->utf8 = true;
		if (next_word(line, len, &pos, &w, &wl) && ieq(w, wl, "USER"))
			c->utf8_user = true;
	} else if (ieq(w, wl, "SASL")) {
		while (next_word(line, len, &pos, &w, &wl))
			capa_sasl(c, w, wl);
	} else if (ieq(w, wl, "EXPIRE"))
		capa_timer(line, len, pos, true, c);
	else if (ieq(w, wl, "LOGIN-DELAY"))
		capa_timer(line, len, pos, false, c);
}

bool pop3c_apop_timestamp(const char *g, size_t len, const char **ts_r, size_t *ts_len_r)
{
	for (size_t i = 0; i < len; i++) {
		bool at = false;
		size_t j;

		if (g[i] != '<')
			continue;
		for (j = i + 1; j < len; j++) {
			unsigned char ch = (unsigned char)g[j];
			if (ch == '>' || ch == '<' || ch <= 0x20 || ch >= 0x7f)
				break;
			if (ch == '@')
				at = true;
		}
		if (j < len && g[j] == '>' && at && j > i + 2) {
			*ts_r = g + i;
			*ts_len_r = j - i + 1;
			return true;
		}
	}
	return false;
}

static bool b64_char(unsigned char ch)
{
	return (ch >= 'A' && ch <= 'Z') || (ch >= 'a' && ch <= 'z') || (ch >= '0' && ch <= '9') ||
	       ch == '+' || ch == '/';
}

bool pop3c_b64_valid(const char *s, size_t len)
{
	size_t pad = 0;

	if (len % 4 != 0)
		return false;
	if (len > 0 && s[len - 1] == '=')
		pad = (len > 1 && s[len - 2] == '=') ? 2 : 1;
	for (size_t i = 0; i < len - pad; i++)
		if (!b64_char((unsigned char)s[i]))
			return false;
	return true;
}

bool pop3c_header_find(const char *h, size_t len, const char *name, const char **val_r,
                       size_t *val_len_r)
{
	size_t nl = strlen(name), pos = 0;

	while (pos < len) {
		const char *lf = memchr(h + pos, '\n', len - pos);
		size_t end = lf ? (size_t)(lf - h) : len, ll = end - pos;
		const char *line = h + pos;

		if (ll > 0 && line[ll - 1] == '\r')
			ll--;
		if (ll == 0)
			return false; /* the header/body separator */
		if (ll > nl && line[nl] == ':' && strncasecmp(line, name, nl) == 0) {
			const char *v = line + nl + 1, *ve = line + ll;
			while (v < ve && (*v == ' ' || *v == '\t'))
				v++;
			while (ve > v && (ve[-1] == ' ' || ve[-1] == '\t'))
				ve--;
			*val_r = v;
			*val_len_r = (size_t)(ve - v);
			return true;
		}
		pos = end + 1;
	}
	return false;
}

enum { D_LS, D_DOT, D_DOTCR, D_MID, D_CR, D_DONE };

void pop3c_dec_init(struct pop3c_dec *d, bool to_lf)
{
	memset(d, 0, sizeof(*d));
	d->state = D_LS;
	d->to_lf = to_lf;
}

size_t pop3c_dec_feed(struct pop3c_dec *d, const char *in, size_t len, char *out,
                      size_t *consumed_r)
{
	size_t o = 0, i;

	for (i = 0; i < len && d->state != D_DONE; i++) {
		char ch = in[i];

		switch (d->state) {
		case D_LS:
			if (ch == '.') {
				d->state = D_DOT;
				continue;
			}
			break;
		case D_DOT:
			if (ch == '\r') {
				d->state = D_DOTCR;
				continue;
			}
			/* the stuffed dot is dropped; ch is an ordinary first byte */
			break;
		case D_DOTCR:
			if (ch == '\n') {
				d->state = D_DONE;
				d->done = true;
				continue;
			}
			/* ".\rX": the dot was stuffing, the CR is data: fall into the CR case */
			d->state = D_CR;
			/* fall through */
		case D_CR:
			if (ch == '\n') {
				if (!d->to_lf)
					out[o++] = '\r';
				out[o++] = '\n';
				d->wire += 2;
				d->state = D_LS;
				continue;
			}
			out[o++] = '\r';
			d->wire++;
			break;
		default:
			break;
		}
		/* an ordinary byte of a line */
		if (ch == '\r') {
			d->state = D_CR;
			continue;
		}
		out[o++] = ch;
		d->wire++;
		d->state = D_MID;
	}
	*consumed_r = i;
	d->out += o;
	return o;
}

void pop3c_mboxrd_init(struct pop3c_mboxrd *q)
{
	memset(q, 0, sizeof(*q));
	q->line_start = true;
	q->last = '\n';
}

size_t pop3c_mboxrd_feed(struct pop3c_mboxrd *q, const char *in, size_t len, char *out)
{
	static const char from[] = "From ";
	size_t o = 0;

	for (size_t i = 0; i < len; i++) {
		char ch = in[i];

		if (q->line_start) {
			/* The '>' run goes out as it comes: the extra '>' is the same byte, so it
			 * can be added at the end of the run once "From " is seen. */
			if (ch == '>' && q->held == 0) {
				out[o++] = ch;
				continue;
			}
			if (ch == from[q->held]) {
				if (++q->held < 5)
					continue;
				out[o++] = '>';
				memcpy(out + o, from, 5);
				o += 5;
				q->held = 0;
				q->line_start = false;
				continue;
			}
			memcpy(out + o, from, q->held);
			o += q->held;
			q->held = 0;
			q->line_start = false;
		}
		out[o++] = ch;
		if (ch == '\n')
			q->line_start = true;
	}
	if (o > 0)
		q->last = out[o - 1];
	q->out += o;
	return o;
}

size_t pop3c_mboxrd_finish(struct pop3c_mboxrd *q, char *out)
{
	size_t o = 0;

	memcpy(out, "From ", q->held);
	o += q->held;
	if (o > 0)
		q->last = out[o - 1];
	q->held = 0;
	if (q->last != '\n')
		out[o++] = '\n';
	out[o++] = '\n';
	q->out += o;
	q->last = '\n';
	return o;
}

bool pop3c_envelope_sender(const char *h, size_t len, char *out, size_t size)
{
	const char *v, *lt, *gt;
	size_t vl, al;

	if (!pop3c_header_find(h, len, "Return-Path", &v, &vl))
		return false;
	lt = memchr(v, '<', vl);
	if (lt == NULL)
		return false;
	gt = memchr(lt, '>', vl - (size_t)(lt - v));
	if (gt == NULL)
		return false;
	al = (size_t)(gt - lt - 1);
	if (al == 0 || al >= size)
		return false;
	for (size_t i = 0; i < al; i++) {
		unsigned char ch = (unsigned char)lt[1 + i];
		if (ch < 0x21 || ch > 0x7e || ch == '<')
			return false;
	}
	memcpy(out, lt + 1, al);
	out[al] = '\0';
	return true;
}
