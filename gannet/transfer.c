/* Pipelined TRANSACTION commands and their replies, paired strictly in order (C-026). A window of
 * at most GANNET_PIPELINE_MAX short commands always fits in the socket buffer, so writing never
 * blocks while replies wait unread (C-027). */
#include "transfer.h"

#include <inttypes.h>
#include <openssl/evp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sysexits.h>

#include "log.h"

/* The header block kept for a fingerprint; the rest of a huge header is read and dropped. */
#define FP_HEADER_MAX 65536

struct fp_buf {
	char data[FP_HEADER_MAX];
	size_t len;
};

typedef int (*body_sink)(struct fetch_ctx *f, void *arg, const char *buf, size_t len);

int xfer_queue_dele(struct fetch_ctx *f, uint32_t idx)
{
	if (f->ndele == f->dele_cap) {
		size_t nc = f->dele_cap ? f->dele_cap * 2 : 256;
		struct xitem *nd = realloc(f->dele, nc * sizeof(*nd));
		if (nd == NULL)
			return gerr_set(f->e, EX_OSERR, "out of memory"), -1;
		f->dele = nd;
		f->dele_cap = nc;
	}
	f->dele[f->ndele].op = XOP_DELE;
	f->dele[f->ndele].idx = idx;
	f->ndele++;
	return 0;
}

int xfer_commit(struct fetch_ctx *f)
{
	if (f->ncommit == 0)
		return 0;
	/* Order matters: the files are durable in new/ before the journal says "seen", and the
	 * journal is on disk before a DELE can remove the server's copy (C-035). */
	if (deliver_commit(f->d, f->e) < 0)
		return -1;
	for (size_t i = 0; i < f->ncommit; i++) {
		struct fmsg *m = &f->m[f->commit[i]];
		int flags = (m->flags & M_HEADERS) ? J_HEADERS : J_SEEN;

		if (m->flags & M_DROPPED)
			flags = J_DROPPED;
		if (journal_seen(f->j, m->key, flags, f->now, f->e) < 0)
			return -1;
	}
	if (journal_sync(f->j, f->e) < 0)
		return -1;
	for (size_t i = 0; i < f->ncommit; i++) {
		const struct fmsg *m = &f->m[f->commit[i]];
		/* A headers-only copy is not the message: never delete the only full copy. */
		if (f->acc->keep == KEEP_NONE && !(m->flags & M_HEADERS) &&
		    xfer_queue_dele(f, f->commit[i]) < 0)
			return -1;
	}
	f->ncommit = 0;
	return 0;
}

static int send_item(struct fetch_ctx *f, const struct xitem *it)
{
	unsigned long long num = (unsigned long long)f->m[it->idx].num;

	switch (it->op) {
	case XOP_LIST:
		return sess_send(f->s, "LIST %llu", num);
	case XOP_FP:
	case XOP_TOP:
		return sess_send(f->s, "TOP %llu 0", num);
	case XOP_RETR:
		return sess_send(f->s, "RETR %llu", num);
	default:
		return sess_send(f->s, "DELE %llu", num);
	}
}

static int read_body(struct fetch_ctx *f, uint64_t cap, body_sink sink, void *arg, uint64_t *wire_r)
{
	struct conn *c = &f->s->conn;
	struct pop3c_dec dec;
	static char out[GANNET_IO_CHUNK + 1];

	pop3c_dec_init(&dec, true);
	for (;;) {
		size_t used, o;

		if (conn_pending(c) == 0 && conn_fill(c, f->e) < 0)
			return -1;
		o = pop3c_dec_feed(&dec, c->buf + c->start, conn_pending(c), out, &used);
		c->start += used;
		progress_add(f->prog, used, false);
		if (dec.wire > cap) {
			gerr_set(f->e, EX_PROTOCOL,
			         "%s sent a message of more than %" PRIu64
			         " octets (max_size); session aborted",
			         f->acc->host, cap);
			return -1;
		}
		if (o > 0 && sink(f, arg, out, o) < 0)
			return -1;
		if (dec.done)
			break;
	}
	*wire_r = dec.wire;
	return 0;
}

static int sink_deliver(struct fetch_ctx *f, void *arg, const char *buf, size_t len)
{
	return deliver_write(f->d, buf, len, f->e);
}

static int sink_fp(struct fetch_ctx *f, void *arg, const char *buf, size_t len)
{
	struct fp_buf *fp = arg;
	size_t room = sizeof(fp->data) - fp->len;

	if (len > room)
		len = room;
	memcpy(fp->data + fp->len, buf, len);
	fp->len += len;
	return 0;
}

/* A per-message failure: counted and logged, the session goes on without that message. */
static void msg_failed(struct fetch_ctx *f, const struct fmsg *m, int code, const char *what)
{
	char clean[128];

	f->st->errors++;
	gerr_set(&f->msgerr, code, "message %" PRIu64 ": %s", m->num, what);
	log_sanitize(clean, sizeof(clean), f->s->text, f->s->text_len);
	log_warnx("account=%s message=%" PRIu64 ": %s%s%s%s", f->acc->name, m->num, what,
	          code == EX_TEMPFAIL ? " (server said \"" : "", code == EX_TEMPFAIL ? clean : "",
	          code == EX_TEMPFAIL ? "\")" : "");
}

static int handle_fetch(struct fetch_ctx *f, const struct xitem *it)
{
	struct fmsg *m = &f->m[it->idx];
	uint64_t cap = f->acc->max_size + f->acc->max_size / 4 + 65536, wire;
	struct gerr me = {0};
	int st = sess_reply(f->s, false), r;

	if (st < 0)
		return -1;
	if (st == POP3C_ERR) {
		progress_add(f->prog, 0, true);
		/* Not saved, and so never deleted (C-026). */
		msg_failed(f, m, EX_TEMPFAIL, "the server refused to send it");
		return 0;
	}
	conn_expect(&f->s->conn, (m->size == SIZE_UNKNOWN ? 0 : m->size) + 65536);
	f->d->headers_only = it->op == XOP_TOP;
	if (deliver_begin(f->d, m->key, f->e) < 0)
		return -1;
	if (it->op == XOP_TOP) {
		char hdr[160];
		int n = snprintf(hdr, sizeof(hdr),
		                 "X-Gannet-Truncated: header only; the message has %" PRIu64
		                 " octets on the server\n",
		                 m->size);
		if (deliver_write(f->d, hdr, (size_t)n, f->e) < 0)
			goto fail;
	}
	if (read_body(f, cap, sink_deliver, NULL, &wire) < 0)
		goto fail;
	progress_add(f->prog, 0, true);
	if (it->op == XOP_RETR && m->size != SIZE_UNKNOWN && wire != m->size)
		log_info("account=%s message=%" PRIu64 ": LIST said %" PRIu64
		         " octets, RETR sent %" PRIu64,
		         f->acc->name, m->num, m->size, wire);
	/* "P" before the delivery becomes visible: after a crash we know to look for it in cur/
	 * too, and an MDA delivery is known to be in doubt. */
	if (journal_pending(f->j, m->key, f->acc->deliver == DELIVER_MDA, f->e) < 0)
		goto fail;
	r = deliver_end(f->d, &me);
	if (r < 0) {
		if (me.code == EX_IOERR && f->acc->deliver != DELIVER_MDA) {
			gerr_set(f->e, me.code, "%s", me.msg);
			return -1;
		}
		msg_failed(f, m, me.code, me.msg);
		return 0;
	}
	m->flags |= M_DONE | (r == DELIVER_DROPPED ? M_DROPPED : 0);
	if (r == DELIVER_DROPPED)
		f->st->dropped++;
	else
		f->st->fetched++;
	f->st->bytes += wire;
	f->commit[f->ncommit++] = it->idx;
	/* An MDA or mbox delivery is already durable; record it now so a crash cannot repeat it
	 * (for an mbox, the next append record replaces this one only after this commit). */
	if (f->acc->deliver == DELIVER_MDA || f->acc->deliver == DELIVER_MBOX)
		return xfer_commit(f);
	return 0;
fail:
	deliver_abort(f->d);
	return -1;
}

/* Key from TOP n 0: Message-ID, Date and size identify a message without UIDL (issue item 6). */
static void fingerprint(struct fmsg *m, const struct fp_buf *fp)
{
	const char *v;
	size_t vl;
	unsigned char md[EVP_MAX_MD_SIZE];
	char hex[2 * 20 + 1];
	EVP_MD_CTX *c = EVP_MD_CTX_new();
	bool any = false;

	if (c == NULL || EVP_DigestInit_ex(c, EVP_sha256(), NULL) != 1)
		fatalx("SHA-256 is not available");
	if (pop3c_header_find(fp->data, fp->len, "Message-ID", &v, &vl)) {
		EVP_DigestUpdate(c, v, vl);
		any = true;
	}
	EVP_DigestUpdate(c, "\n", 1);
	if (pop3c_header_find(fp->data, fp->len, "Date", &v, &vl)) {
		EVP_DigestUpdate(c, v, vl);
		any = true;
	}
	EVP_DigestUpdate(c, "\n", 1);
	if (!any) /* neither header: the whole header block stands in for them */
		EVP_DigestUpdate(c, fp->data, fp->len);
	char size[24];
	int sl = snprintf(size, sizeof(size), "%" PRIu64, m->size);
	EVP_DigestUpdate(c, size, (size_t)sl);
	EVP_DigestFinal_ex(c, md, NULL);
	EVP_MD_CTX_free(c);
	hex_encode(md, 20, hex);
	snprintf(m->key, sizeof(m->key), "f:%s", hex);
	m->flags |= M_HAS_KEY;
}

static int handle_fp(struct fetch_ctx *f, const struct xitem *it)
{
	static struct fp_buf fp;
	struct fmsg *m = &f->m[it->idx];
	uint64_t wire;
	int st = sess_reply(f->s, false);

	if (st < 0)
		return -1;
	if (st == POP3C_ERR)
		return 0; /* stays without a key, and so is left alone */
	fp.len = 0;
	if (read_body(f, f->acc->max_size + 65536, sink_fp, &fp, &wire) < 0)
		return -1;
	fingerprint(m, &fp);
	return 0;
}

static int handle_list(struct fetch_ctx *f, const struct xitem *it)
{
	struct fmsg *m = &f->m[it->idx];
	uint64_t num, size;
	int st = sess_reply(f->s, false);

	if (st < 0)
		return -1;
	if (st == POP3C_ERR) {
		m->flags |= M_SKIP;
		return 0;
	}
	if (pop3c_parse_list(f->s->text, f->s->text_len, &num, &size) < 0 || num != m->num) {
		gerr_set(f->e, EX_PROTOCOL, "%s sent a malformed LIST reply", f->acc->host);
		return -1;
	}
	m->size = size;
	return 0;
}

static int handle_dele(struct fetch_ctx *f, const struct xitem *it)
{
	int st = sess_reply(f->s, false);

	if (st < 0)
		return -1;
	if (st == POP3C_OK)
		f->dele_ok++;
	else
		msg_failed(f, &f->m[it->idx], EX_TEMPFAIL, "the server refused to delete it");
	return 0;
}

static int handle(struct fetch_ctx *f, const struct xitem *it)
{
	switch (it->op) {
	case XOP_LIST:
		return handle_list(f, it);
	case XOP_FP:
		return handle_fp(f, it);
	case XOP_RETR:
	case XOP_TOP:
		return handle_fetch(f, it);
	default:
		return handle_dele(f, it);
	}
}

int xfer_run(struct fetch_ctx *f, const struct xitem *items, size_t n)
{
	struct xitem win[GANNET_PIPELINE_MAX];
	size_t head = 0, inflight = 0, next = 0, dcur = 0, fetching = 0;
	size_t window = f->s->capa.pipelining ? (size_t)f->acc->pipeline : 1;
	int rc = 0;

	sess_set_state(f->s, n > 0 && items[0].op == XOP_LIST ? SESS_LIST
	                     : n > 0 && items[0].op == XOP_FP ? SESS_FINGERPRINT
	                                                      : SESS_TRANSFER);
	for (;;) {
		while (inflight < window) {
			const struct xitem *it;

			if (dcur < f->ndele)
				it = &f->dele[dcur++];
			else if (next < n)
				it = &items[next++];
			else
				break;
			if (send_item(f, it) < 0) {
				rc = -1;
				goto out;
			}
			fetching += it->op == XOP_RETR || it->op == XOP_TOP;
			win[(head + inflight++) % GANNET_PIPELINE_MAX] = *it;
		}
		if (inflight == 0)
			break;
		struct xitem cur = win[head];
		head = (head + 1) % GANNET_PIPELINE_MAX;
		inflight--;
		fetching -= cur.op == XOP_RETR || cur.op == XOP_TOP;
		if (handle(f, &cur) < 0) {
			rc = -1;
			goto out;
		}
		if (f->ncommit > 0 &&
		    (f->ncommit >= GANNET_COMMIT_BATCH || (next == n && fetching == 0)))
			if (xfer_commit(f) < 0) {
				rc = -1;
				goto out;
			}
	}
out:
	/* Whatever is complete is kept, even when the session failed. */
	if (xfer_commit(f) < 0)
		rc = -1;
	f->ndele = 0;
	return rc;
}
