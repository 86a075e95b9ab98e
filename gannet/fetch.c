/* One account's fetch: build the plan (what is new, what to delete, what is too big) from the
 * server's listings and the journal, then hand it to the transfer engine. */
#include "fetch.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sysexits.h>
#include <time.h>

#include "auth.h"
#include "deliver.h"
#include "journal.h"
#include "log.h"
#include "mbox.h"
#include "session.h"
#include "transfer.h"

/* Up to this many new messages, their sizes come from pipelined "LIST n"; above it one LIST of
 * the whole maildrop is cheaper. */
#define LIST_ONE_BY_ONE_MAX 256

static int uidl_cb(void *arg, const char *line, size_t len)
{
	struct fetch_ctx *f = arg;
	char uid[POP3_UIDL_MAX + 1], clean[100];
	uint64_t num;

	if (pop3c_parse_uidl(line, len, &num, uid) < 0) {
		/* An unusable unique-id (C-034) leaves that message without a key; the
		 * fingerprint path or a skip takes care of it. */
		log_warnx("account=%s: ignoring a malformed UIDL line \"%s\"", f->acc->name,
		          log_sanitize(clean, sizeof(clean), line, len));
		return 0;
	}
	if (num > f->n || (f->m[num - 1].flags & M_HAS_KEY)) {
		gerr_set(f->e, EX_PROTOCOL,
		         "%s sent a UIDL listing that does not match STAT "
		         "(message %" PRIu64 " of %zu, or listed twice)",
		         f->acc->host, num, f->n);
		return -1;
	}
	snprintf(f->m[num - 1].key, sizeof(f->m[num - 1].key), "u:%s", uid);
	f->m[num - 1].flags |= M_HAS_KEY;
	return 0;
}

static int list_cb(void *arg, const char *line, size_t len)
{
	struct fetch_ctx *f = arg;
	uint64_t num, size;

	if (pop3c_parse_list(line, len, &num, &size) < 0 || num > f->n) {
		gerr_set(f->e, EX_PROTOCOL, "%s sent a malformed LIST listing", f->acc->host);
		return -1;
	}
	f->m[num - 1].size = size;
	return 0;
}

static int cmp_key(const void *a, const void *b)
{
	const struct fmsg *x = *(const struct fmsg *const *)a, *y = *(const struct fmsg *const *)b;
	int c = strcmp(x->key, y->key);

	return c != 0 ? c : (x->num > y->num) - (x->num < y->num);
}

/* Two messages with one UIDL (hash-derived IDs) both get fetched once: the later ones by number
 * become "d2:KEY", "d3:KEY" ..., stable from one session to the next (C-033). A real UIDL is
 * always "u:..." and a fingerprint "f:...", so these can never collide with one. */
static int dedupe(struct fetch_ctx *f)
{
	struct fmsg **v = calloc(f->n ? f->n : 1, sizeof(*v));
	char prev[GANNET_KEY_MAX + 1] = "";
	size_t k = 0, run = 1;

	if (v == NULL)
		return gerr_set(f->e, EX_OSERR, "out of memory"), -1;
	for (size_t i = 0; i < f->n; i++)
		if (f->m[i].flags & M_HAS_KEY)
			v[k++] = &f->m[i];
	qsort(v, k, sizeof(*v), cmp_key);
	for (size_t i = 0; i < k; i++) {
		char key[GANNET_KEY_MAX + 1];

		if (i == 0 || strcmp(v[i]->key, prev) != 0) {
			run = 1;
			memcpy(prev, v[i]->key, sizeof(prev));
			continue;
		}
		memcpy(key, v[i]->key, sizeof(key));
		/* keys here are "u:" + a UIDL or "f:" + 40 hex: at most POP3_UIDL_MAX + 2 */
		snprintf(v[i]->key, sizeof(v[i]->key), "d%zu:%.*s", ++run, POP3_UIDL_MAX + 2, key);
		log_info("account=%s: messages share the unique-id %s", f->acc->name, key);
	}
	free(v);
	return 0;
}

/* Items to send, grown as the plan is made. */
struct items {
	struct xitem *v;
	size_t n;
};

static int run_for(struct fetch_ctx *f, uint8_t op, uint8_t need, uint8_t avoid)
{
	struct items it = {calloc(f->n ? f->n : 1, sizeof(struct xitem)), 0};
	int r;

	if (it.v == NULL)
		return gerr_set(f->e, EX_OSERR, "out of memory"), -1;
	for (size_t i = 0; i < f->n; i++)
		if ((f->m[i].flags & need) == need && !(f->m[i].flags & avoid))
			it.v[it.n++] = (struct xitem){op, (uint32_t)i};
	r = it.n > 0 ? xfer_run(f, it.v, it.n) : 0;
	free(it.v);
	return r;
}

/* Without UIDL: the key of each message is a fingerprint of its header (TOP n 0). */
static int fingerprints(struct fetch_ctx *f)
{
	size_t missing = 0;

	for (size_t i = 0; i < f->n; i++)
		missing += !(f->m[i].flags & M_HAS_KEY);
	if (missing == 0)
		return 0;
	if (f->s->capa.answered && !f->s->capa.top) {
		log_warnx("account=%s: the server offers neither UIDL nor TOP for %zu messages; "
		          "they are left on the server (gannet cannot tell them apart)",
		          f->acc->name, missing);
		for (size_t i = 0; i < f->n; i++)
			if (!(f->m[i].flags & M_HAS_KEY)) {
				f->m[i].flags |= M_SKIP;
				f->st->skipped++;
			}
		return 0;
	}
	log_info("account=%s: identifying %zu messages by their header (no UIDL)", f->acc->name,
	         missing);
	/* The size is part of the fingerprint. */
	sess_set_state(f->s, SESS_LIST);
	int r = sess_cmd(f->s, "LIST");
	if (r != 0) {
		if (r > 0)
			sess_fail_reply(f->s, "LIST");
		return -1;
	}
	if (sess_listing(f->s, f->n, list_cb, f) < 0)
		return -1;
	if (run_for(f, XOP_FP, 0, M_HAS_KEY) < 0)
		return -1;
	for (size_t i = 0; i < f->n; i++)
		if (!(f->m[i].flags & M_HAS_KEY)) {
			f->m[i].flags |= M_SKIP;
			f->st->skipped++;
		}
	return dedupe(f);
}

/* Decide for every keyed message: new, to delete, or nothing. */
static int classify(struct fetch_ctx *f)
{
	const struct account *a = f->acc;

	for (size_t i = 0; i < f->n; i++) {
		struct fmsg *m = &f->m[i];
		struct jentry *je;
		bool pending;

		if (!(m->flags & M_HAS_KEY) || (m->flags & M_SKIP))
			continue;
		je = journal_get(f->j, m->key);
		if (je != NULL)
			je->live = true;
		if (je != NULL && (je->flags & (J_SEEN | J_HEADERS | J_DROPPED))) {
			bool full = !(je->flags & J_HEADERS);
			if (full && (a->keep == KEEP_NONE ||
			             (a->keep == KEEP_DAYS &&
			              f->now - je->first_seen >= (int64_t)a->keep_days * 86400)))
				m->flags |= M_DELETE;
			continue;
		}
		pending = je != NULL && (je->flags & J_PENDING);
		/* Delivered before a crash cut the journal record: take it as seen, do not fetch
		 * it again. new/ is checked always (one stat), cur/ only after a crash. */
		if (deliver_exists(f->d, m->key, pending)) {
			log_info("account=%s message=%" PRIu64 ": delivered by an interrupted run",
			         a->name, m->num);
			m->flags |= M_DONE;
			f->commit[f->ncommit++] = (uint32_t)i;
			f->d->uncommitted++; /* fsync new/ before anything relies on it */
			continue;
		}
		if (pending && a->deliver == DELIVER_MDA)
			log_warnx("account=%s message=%" PRIu64 ": its delivery to the MDA was cut "
			          "off; delivering it again (the MDA may see it twice)",
			          a->name, m->num);
		m->flags |= M_NEW;
		f->st->new_msgs++;
	}
	/* Records the recovered ones and queues DELEs for them under keep = no. */
	if (xfer_commit(f) < 0)
		return -1;
	for (size_t i = 0; i < f->n; i++)
		if ((f->m[i].flags & M_DELETE) && xfer_queue_dele(f, (uint32_t)i) < 0)
			return -1;
	return 0;
}

/* Sizes of the new messages, then the oversize policy. */
static int sizes(struct fetch_ctx *f)
{
	size_t unknown = 0;

	for (size_t i = 0; i < f->n; i++)
		unknown += (f->m[i].flags & M_NEW) && f->m[i].size == SIZE_UNKNOWN;
	if (unknown > LIST_ONE_BY_ONE_MAX) {
		sess_set_state(f->s, SESS_LIST);
		int r = sess_cmd(f->s, "LIST");
		if (r != 0) {
			if (r > 0)
				sess_fail_reply(f->s, "LIST");
			return -1;
		}
		if (sess_listing(f->s, f->n, list_cb, f) < 0)
			return -1;
	} else if (unknown > 0 && run_for(f, XOP_LIST, M_NEW, 0) < 0) {
		return -1;
	}
	for (size_t i = 0; i < f->n; i++) {
		struct fmsg *m = &f->m[i];

		if (!(m->flags & M_NEW) || (m->flags & M_SKIP)) {
			if ((m->flags & M_NEW) && (m->flags & M_SKIP))
				m->flags &= (uint8_t)~M_NEW; /* vanished between UIDL and LIST */
			continue;
		}
		if (m->size == SIZE_UNKNOWN || m->size <= f->acc->max_size)
			continue;
		if (f->acc->oversize == OVERSIZE_HEADERS &&
		    (f->s->capa.top || !f->s->capa.answered)) {
			m->flags |= M_HEADERS;
			continue;
		}
		log_info("account=%s message=%" PRIu64 ": %" PRIu64 " octets is over max_size; "
		         "left on the server",
		         f->acc->name, m->num, m->size);
		m->flags = (uint8_t)((m->flags & ~M_NEW) | M_SKIP);
		f->st->skipped++;
	}
	return 0;
}

static int transfer(struct fetch_ctx *f)
{
	struct xitem *it = calloc(f->n ? f->n : 1, sizeof(*it));
	uint64_t bytes = 0;
	size_t n = 0;
	int r;

	if (it == NULL)
		return gerr_set(f->e, EX_OSERR, "out of memory"), -1;
	for (size_t i = 0; i < f->n; i++) {
		if (!(f->m[i].flags & M_NEW))
			continue;
		it[n++] =
		    (struct xitem){(f->m[i].flags & M_HEADERS) ? XOP_TOP : XOP_RETR, (uint32_t)i};
		if (f->m[i].size != SIZE_UNKNOWN && !(f->m[i].flags & M_HEADERS))
			bytes += f->m[i].size;
	}
	progress_start(f->prog, f->acc->name, n, bytes);
	r = xfer_run(f, it, n);
	progress_end(f->prog);
	free(it);
	return r;
}

static void expire_note(const struct fetch_ctx *f)
{
	const struct pop3c_capa *c = &f->s->capa;

	if (f->acc->keep == KEEP_DAYS && c->expire_set && !c->expire_never &&
	    c->expire_days < f->acc->keep_days)
		log_warnx("account=%s: the server expires mail after %" PRIu64 " days, before "
		          "keep = %" PRIu64 " days",
		          f->acc->name, c->expire_days, f->acc->keep_days);
}

static int session(struct fetch_ctx *f)
{
	uint64_t count, total;
	int r;

	sess_set_state(f->s, SESS_STAT);
	if ((r = sess_cmd(f->s, "STAT")) != 0) {
		if (r > 0)
			sess_fail_reply(f->s, "STAT");
		return -1;
	}
	if (pop3c_parse_stat(f->s->text, f->s->text_len, &count, &total) < 0 ||
	    count > GANNET_MESSAGES_MAX) {
		gerr_set(f->e, EX_PROTOCOL,
		         "%s sent a malformed STAT reply, or more than %d messages", f->acc->host,
		         GANNET_MESSAGES_MAX);
		return -1;
	}
	f->n = (size_t)count;
	f->m = calloc(f->n ? f->n : 1, sizeof(*f->m));
	f->commit = calloc(f->n ? f->n : 1, sizeof(*f->commit));
	if (f->m == NULL || f->commit == NULL)
		return gerr_set(f->e, EX_OSERR, "out of memory for %zu messages", f->n), -1;
	for (size_t i = 0; i < f->n; i++) {
		f->m[i].num = i + 1;
		f->m[i].size = SIZE_UNKNOWN;
	}
	/* Asked even when CAPA does not list it: some servers forget to, and -ERR costs little. */
	if (f->n > 0) {
		sess_set_state(f->s, SESS_UIDL);
		r = sess_cmd(f->s, "UIDL");
		if (r < 0 || (r == 0 && sess_listing(f->s, f->n, uidl_cb, f) < 0))
			return -1;
		if (r == 0 && dedupe(f) < 0)
			return -1;
	}
	if (fingerprints(f) < 0 || classify(f) < 0 || sizes(f) < 0)
		return -1;
	expire_note(f);
	return transfer(f);
}

int fetch_account(const struct gconfig *cfg, const struct account *a, struct fetch_stats *st)
{
	char secret[GANNET_SECRET_MAX + 1];
	struct journal j;
	struct deliverer d;
	struct sess s;
	struct progress prog = {0};
	struct gerr e = {0};
	struct fetch_ctx f = {0};
	size_t slen = 0;
	bool opened = false, complete = false;

	memset(st, 0, sizeof(*st));
	memset(&s, 0, sizeof(s));
	f = (struct fetch_ctx){.acc = a,
	                       .s = &s,
	                       .j = &j,
	                       .d = &d,
	                       .prog = &prog,
	                       .st = st,
	                       .e = &e,
	                       .now = (int64_t)time(NULL)};
	if (journal_open(&j, cfg->state_dir, a->name, &e) < 0 ||
	    deliver_init(&d, a, cfg->state_dir, &e) < 0 ||
	    mbox_recover(a, cfg->state_dir, &j, &e) < 0 ||
	    auth_secret(a, secret, sizeof(secret), &slen, &e) < 0)
		goto out;
	opened = true;
	if (sess_open(&s, a, true, &e) < 0 || sess_login(&s, secret, slen) < 0) {
		explicit_bzero(secret, sizeof(secret));
		goto out;
	}
	explicit_bzero(secret, sizeof(secret));
	st->login_delay = s.capa.login_delay_set ? s.capa.login_delay : 0;
	if (session(&f) == 0) {
		int r = sess_quit(&s);
		if (r == 0) {
			st->deleted = f.dele_ok;
			complete = true;
		} else if (r > 0 && f.dele_ok > 0) {
			/* The journal still says "seen", so nothing is fetched twice (C-036). */
			gerr_set(&f.msgerr, EX_TEMPFAIL,
			         "the server refused QUIT; some deletions may not have happened");
			st->errors++;
		}
	}
out:
	if (opened && s.state != SESS_DONE)
		sess_close(&s); /* without QUIT: nothing is deleted after an error (C-035) */
	if (complete) {
		bool all_keyed = true;
		for (size_t i = 0; i < f.n; i++)
			all_keyed &= (f.m[i].flags & M_HAS_KEY) != 0;
		if (all_keyed && journal_compact(&j, &e) < 0)
			log_warnx("account=%s: %s", a->name, e.msg);
		gerr_clear(&e);
	}
	if (e.code != 0)
		st->errors++; /* the session itself failed */
	else if (f.msgerr.code != 0)
		e = f.msgerr;
	st->exit_code = e.code;
	if (e.code != 0)
		snprintf(st->error, sizeof(st->error), "%s", e.msg);
	journal_close(&j);
	free(f.m);
	free(f.commit);
	free(f.dele);
	return st->exit_code;
}
