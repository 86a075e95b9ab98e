/* The sessions, retr and bigbox modes: each a small per-connection state machine on the engine. */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bench.h"
#include "strnum.h"

/* A broken server must not turn a timed run into a storm of instant reconnects. */
#define SESSIONS_ERRORS_MAX 1000
/* In-flight sessions get this long to finish once the run time is over. */
#define DRAIN_SECONDS 30.0

enum step {
	STEP_GREET,
	STEP_USER,
	STEP_PASS,
	STEP_STAT,
	STEP_LIST,
	STEP_UIDL,
	STEP_RETR,
	STEP_QUIT
};

/* Parse "+OK N ..." (STAT) or "N SIZE" (LIST line) into two numbers. */
static int two_numbers(const char *s, size_t len, uint64_t *a, uint64_t *b)
{
	const char *sp = memchr(s, ' ', len);
	const char *end;
	size_t blen;

	if (sp == NULL)
		return -1;
	end = memchr(sp + 1, ' ', len - (size_t)(sp + 1 - s));
	blen = end ? (size_t)(end - (sp + 1)) : len - (size_t)(sp + 1 - s);
	if (strnum_u64(s, (size_t)(sp - s), 0, UINT64_MAX, a) < 0 ||
	    strnum_u64(sp + 1, blen, 0, UINT64_MAX, b) < 0)
		return -1;
	return 0;
}

static int stat_reply(const char *line, uint64_t *n, uint64_t *size)
{
	if (strncmp(line, "+OK ", 4) != 0)
		return -1;
	return two_numbers(line + 4, strlen(line + 4), n, size);
}

/* ---------------------------------------------------------------- sessions */

struct sclient {
	enum step step;
	double t0;
	uint64_t stat_n, uidl_lines;
};

static struct {
	const struct bench_opts *o;
	struct sclient *clients;
	struct samples lat;
	uint64_t done, started, errors;
	char first_error[128];
	double t_begin, t_last, t_stop;
	bool stopping, stop;
} S;

static void sess_start(unsigned slot);

static void sess_error(struct bconn *c, const char *why)
{
	unsigned slot = bconn_slot(c);

	S.errors++;
	if (S.first_error[0] == '\0')
		snprintf(S.first_error, sizeof(S.first_error), "%s(step=%d)", why,
		         (int)S.clients[slot].step);
	bconn_close(c);
	if (S.errors >= SESSIONS_ERRORS_MAX)
		S.stopping = true;
	sess_start(slot);
}

static void sess_reply(struct bconn *c, bool ok)
{
	struct sclient *cl = &S.clients[bconn_slot(c)];
	const struct bench_opts *o = S.o;
	uint64_t size;

	if (!ok) {
		sess_error(c, "err_reply");
		return;
	}
	switch (cl->step) {
	case STEP_GREET:
		cl->step = STEP_USER;
		bconn_cmd(c, EXPECT_LINE, "USER %s%u", o->user_prefix,
		          bconn_slot(c) % o->user_count);
		break;
	case STEP_USER:
		cl->step = STEP_PASS;
		bconn_cmd(c, EXPECT_LINE, "PASS %s", o->password);
		break;
	case STEP_PASS:
		cl->step = STEP_STAT;
		bconn_cmd(c, EXPECT_LINE, "STAT");
		break;
	case STEP_STAT:
		if (stat_reply(bconn_first_line(c), &cl->stat_n, &size) < 0) {
			sess_error(c, "bad_stat");
			return;
		}
		cl->step = STEP_UIDL;
		cl->uidl_lines = 0;
		bconn_cmd(c, EXPECT_LISTED, "UIDL");
		break;
	case STEP_UIDL:
		if (cl->uidl_lines != cl->stat_n) {
			sess_error(c, "uidl_count");
			return;
		}
		cl->step = STEP_QUIT;
		bconn_cmd(c, EXPECT_LINE, "QUIT");
		break;
	case STEP_QUIT: {
		double now = bench_now();
		unsigned slot = bconn_slot(c);

		samples_add(&S.lat, now - cl->t0);
		S.done++;
		S.t_last = now;
		bconn_close(c);
		sess_start(slot);
		break;
	}
	default:
		sess_error(c, "bad_step");
	}
}

static void sess_line(struct bconn *c, const char *line, size_t len)
{
	S.clients[bconn_slot(c)].uidl_lines++;
}

static void sess_fail(struct bconn *c, const char *why)
{
	sess_error(c, why);
}

static const struct bconn_ops sess_ops = {sess_reply, sess_line, sess_fail};

static void sess_start(unsigned slot)
{
	struct sclient *cl = &S.clients[slot];

	if (S.stopping || S.started >= S.o->max_sessions)
		return;
	cl->step = STEP_GREET;
	cl->t0 = bench_now();
	S.started++;
	if (bconn_open(S.o, &sess_ops, slot, NULL) == NULL) {
		S.errors++;
		if (S.first_error[0] == '\0')
			snprintf(S.first_error, sizeof(S.first_error), "socket");
		S.stopping = true;
	}
}

static void sess_tick(void)
{
	double now = bench_now();

	if (!S.stopping && now - S.t_begin >= S.o->seconds)
		S.stopping = true;
	if (S.stopping && bconn_open_count() == 0)
		S.stop = true;
}

int mode_sessions(const struct bench_opts *o)
{
	double secs, p50, p99, pmax;
	uint64_t tls_full, tls_resumed;

	S.o = o;
	S.clients = calloc(o->concurrency, sizeof(*S.clients));
	if (S.clients == NULL)
		bench_die("out of memory");
	samples_init(&S.lat, BENCH_SESSIONS_MAX);
	S.t_begin = S.t_last = bench_now();
	for (unsigned i = 0; i < o->concurrency; i++)
		sess_start(i);
	bconn_run(o->seconds + DRAIN_SECONDS, &S.stop, sess_tick);
	secs = S.t_last - S.t_begin;
	p50 = samples_pct(&S.lat, 50) * 1e3;
	p99 = samples_pct(&S.lat, 99) * 1e3;
	pmax = samples_pct(&S.lat, 100) * 1e3;
	bconn_tls_counts(&tls_full, &tls_resumed);
	bench_result(o,
	             "concurrency=%u sessions=%" PRIu64 " seconds=%.3f sessions_per_s=%.1f "
	             "p50_ms=%.3f p99_ms=%.3f max_ms=%.3f unfinished=%zu errors=%" PRIu64
	             " first_error=%s tls_full=%" PRIu64 " tls_resumed=%" PRIu64,
	             o->concurrency, S.done, secs, secs > 0 ? (double)S.done / secs : 0.0, p50, p99,
	             pmax, bconn_open_count(), S.errors, S.first_error[0] ? S.first_error : "-",
	             tls_full, tls_resumed);
	samples_free(&S.lat);
	return S.errors == 0 && S.done > 0 && bconn_open_count() == 0 ? 0 : 1;
}

/* ---------------------------------------------------------------- retr and bigbox */

/* One connection walking a fixed script; retr and bigbox differ in what they do after LIST. */
static struct {
	const struct bench_opts *o;
	bool bigbox;
	enum step step;
	uint64_t stat_n, stat_size;
	uint64_t *sizes; /* LIST sizes, index = message number */
	uint64_t n_listed, n_uidl, cur, pass;
	uint64_t bytes, retrieved, mismatches;
	uint64_t inflight[BENCH_PIPELINE_MAX]; /* RETR message numbers sent, oldest first */
	unsigned in_head, in_n;
	bool draining; /* time or passes are up: no more RETRs, QUIT once the last reply is in */
	double t_open, t_step, t_retr0, t_retr1;
	double ms_login, ms_stat, ms_list, ms_uidl, ms_quit;
	const char *error;
	bool stop, quit_ok;
} R;

static double lap(void)
{
	double now = bench_now(), d = (now - R.t_step) * 1e3;

	R.t_step = now;
	return d;
}

static void single_done(struct bconn *c, const char *error)
{
	if (error != NULL && R.error == NULL)
		R.error = error;
	bconn_close(c);
	R.stop = true;
}

/* Keep o->pipeline RETRs in flight (one when the run is not pipelined), then QUIT once the last
 * reply is in. */
static void single_fill(struct bconn *c)
{
	while (!R.draining && R.in_n < R.o->pipeline) {
		if (R.cur >= R.n_listed) {
			R.pass++;
			R.cur = 0;
		}
		if (R.pass >= R.o->passes || bench_now() - R.t_retr0 > R.o->seconds) {
			R.draining = true;
			break;
		}
		R.cur++;
		R.inflight[(R.in_head + R.in_n) % BENCH_PIPELINE_MAX] = R.cur;
		R.in_n++;
		bconn_cmd(c, EXPECT_COUNTED, "RETR %" PRIu64, R.cur);
	}
	if (R.draining && R.in_n == 0) {
		R.t_retr1 = bench_now();
		R.step = STEP_QUIT;
		lap();
		bconn_cmd(c, EXPECT_LINE, "QUIT");
	}
}

static void single_reply(struct bconn *c, bool ok)
{
	if (!ok) {
		single_done(c, "err_reply");
		return;
	}
	switch (R.step) {
	case STEP_GREET:
		R.step = STEP_USER;
		bconn_cmd(c, EXPECT_LINE, "USER %s", R.o->user);
		break;
	case STEP_USER:
		R.step = STEP_PASS;
		lap();
		bconn_cmd(c, EXPECT_LINE, "PASS %s", R.o->password);
		break;
	case STEP_PASS:
		R.ms_login = lap();
		R.step = STEP_STAT;
		bconn_cmd(c, EXPECT_LINE, "STAT");
		break;
	case STEP_STAT:
		R.ms_stat = lap();
		if (stat_reply(bconn_first_line(c), &R.stat_n, &R.stat_size) < 0 ||
		    R.stat_n > BENCH_LISTING_MAX) {
			single_done(c, "bad_stat");
			return;
		}
		R.sizes = calloc(R.stat_n + 1, sizeof(*R.sizes));
		if (R.sizes == NULL)
			bench_die("out of memory");
		R.step = STEP_LIST;
		bconn_cmd(c, EXPECT_LISTED, "LIST");
		break;
	case STEP_LIST:
		R.ms_list = lap();
		if (R.n_listed != R.stat_n) {
			single_done(c, "list_count");
			return;
		}
		if (R.bigbox) {
			R.step = STEP_UIDL;
			bconn_cmd(c, EXPECT_LISTED, "UIDL");
			break;
		}
		R.step = STEP_RETR;
		R.t_retr0 = bench_now();
		single_fill(c);
		break;
	case STEP_UIDL:
		R.ms_uidl = lap();
		if (R.n_uidl != R.stat_n) {
			single_done(c, "uidl_count");
			return;
		}
		R.step = STEP_QUIT;
		bconn_cmd(c, EXPECT_LINE, "QUIT");
		break;
	case STEP_RETR: {
		uint64_t n = R.inflight[R.in_head];

		R.in_head = (R.in_head + 1) % BENCH_PIPELINE_MAX;
		R.in_n--;
		/* RFC 1939: the LIST size is the message in CRLF form, before dot-stuffing. */
		if (bconn_payload(c) != R.sizes[n])
			R.mismatches++;
		R.bytes += bconn_payload(c);
		R.retrieved++;
		single_fill(c);
		break;
	}
	case STEP_QUIT:
		R.ms_quit = lap();
		R.quit_ok = true;
		single_done(c, NULL);
		break;
	default:
		single_done(c, "bad_step");
	}
}

static void single_line(struct bconn *c, const char *line, size_t len)
{
	uint64_t n, size;

	if (R.step == STEP_UIDL) {
		R.n_uidl++;
		return;
	}
	if (two_numbers(line, len, &n, &size) < 0 || n != R.n_listed + 1 || n > R.stat_n) {
		if (R.error == NULL)
			R.error = "bad_list_line";
		return;
	}
	R.sizes[n] = size;
	R.n_listed++;
}

static void single_fail(struct bconn *c, const char *why)
{
	single_done(c, why);
}

static const struct bconn_ops single_ops = {single_reply, single_line, single_fail};

static int run_single(const struct bench_opts *o, bool bigbox)
{
	R.o = o;
	R.bigbox = bigbox;
	R.step = STEP_GREET;
	R.t_open = R.t_step = bench_now();
	if (bconn_open(o, &single_ops, 0, NULL) == NULL)
		bench_die("cannot open a socket");
	bconn_run(BENCH_SECONDS_MAX, &R.stop, NULL);
	if (!R.stop)
		R.error = "run_timeout";
	return R.error == NULL && R.quit_ok ? 0 : 1;
}

int mode_retr(const struct bench_opts *o)
{
	int rc = run_single(o, false);
	double secs = R.t_retr1 - R.t_retr0;

	if (R.mismatches > 0)
		rc = 1;
	bench_result(o,
	             "user=%s pipeline=%u messages=%" PRIu64 " retrieved=%" PRIu64 " bytes=%" PRIu64
	             " seconds=%.3f mb_per_s=%.2f size_mismatches=%" PRIu64 " errors=%d error=%s",
	             o->user, o->pipeline, R.stat_n, R.retrieved, R.bytes, secs,
	             secs > 0 ? (double)R.bytes / secs / 1e6 : 0.0, R.mismatches, rc,
	             R.error ? R.error : "-");
	return rc;
}

int mode_bigbox(const struct bench_opts *o)
{
	int rc = run_single(o, true);

	bench_result(o,
	             "user=%s messages=%" PRIu64 " login_ms=%.1f stat_ms=%.1f list_ms=%.1f "
	             "uidl_ms=%.1f quit_ms=%.1f total_ms=%.1f errors=%d error=%s",
	             o->user, R.stat_n, R.ms_login, R.ms_stat, R.ms_list, R.ms_uidl, R.ms_quit,
	             (bench_now() - R.t_open) * 1e3, rc, R.error ? R.error : "-");
	return rc;
}
