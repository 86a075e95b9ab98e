/* The idle mode: hold N logged-in connections and report the server's memory per connection. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bench.h"

/* Logins in flight at once while ramping up: enough to ramp fast, few enough that a server
 * spawning a process per connection is not measured against a thundering herd. */
#define IDLE_INFLIGHT 64
/* Time for the server to settle after the last login before memory is read. */
#define IDLE_SETTLE_SECONDS 2.0
/* Time the QUITs at the end get. */
#define IDLE_QUIT_SECONDS 60.0

enum istep { I_GREET, I_USER, I_PASS, I_IDLE, I_QUIT, I_GONE };

static struct {
	const struct bench_opts *o;
	enum istep *step;
	struct bconn **conns;
	unsigned next, inflight, logged_in, quit_ok;
	unsigned errors;
	char first_error[96];
	bool stop;
	enum { PH_RAMP, PH_HOLD, PH_QUIT } phase;
} I;

static void idle_open_more(void);

static void idle_error(struct bconn *c, const char *why)
{
	unsigned slot = bconn_slot(c);

	I.errors++;
	if (I.first_error[0] == '\0')
		snprintf(I.first_error, sizeof(I.first_error), "%s(step=%d,conn=%u)", why,
		         (int)I.step[slot], slot);
	if (I.step[slot] < I_IDLE)
		I.inflight--;
	if (I.step[slot] == I_IDLE)
		I.logged_in--;
	I.step[slot] = I_GONE;
	I.conns[slot] = NULL;
	bconn_close(c);
	idle_open_more();
}

static void idle_reply(struct bconn *c, bool ok)
{
	unsigned slot = bconn_slot(c);

	if (!ok) {
		idle_error(c, "err_reply");
		return;
	}
	switch (I.step[slot]) {
	case I_GREET:
		I.step[slot] = I_USER;
		bconn_cmd(c, EXPECT_LINE, "USER %s%u", I.o->user_prefix, slot % I.o->user_count);
		break;
	case I_USER:
		I.step[slot] = I_PASS;
		bconn_cmd(c, EXPECT_LINE, "PASS %s", I.o->password);
		break;
	case I_PASS:
		I.step[slot] = I_IDLE;
		I.inflight--;
		I.logged_in++;
		idle_open_more();
		break;
	case I_QUIT:
		I.quit_ok++;
		I.step[slot] = I_GONE;
		I.conns[slot] = NULL;
		bconn_close(c);
		break;
	default:
		idle_error(c, "unexpected_reply");
	}
}

static void idle_line(struct bconn *c, const char *line, size_t len)
{
}

static void idle_fail(struct bconn *c, const char *why)
{
	idle_error(c, why);
}

static const struct bconn_ops idle_ops = {idle_reply, idle_line, idle_fail};

static void idle_open_more(void)
{
	while (I.phase == PH_RAMP && I.inflight < IDLE_INFLIGHT && I.next < I.o->concurrency) {
		unsigned slot = I.next++;

		I.step[slot] = I_GREET;
		I.conns[slot] = bconn_open(I.o, &idle_ops, slot, NULL);
		if (I.conns[slot] == NULL) {
			I.errors++;
			I.step[slot] = I_GONE;
			if (I.first_error[0] == '\0')
				snprintf(I.first_error, sizeof(I.first_error), "socket(conn=%u)",
				         slot);
			continue;
		}
		I.inflight++;
	}
}

static void idle_tick(void)
{
	if (I.phase == PH_RAMP && I.inflight == 0 && I.next >= I.o->concurrency)
		I.stop = true;
	if (I.phase == PH_QUIT && bconn_open_count() == 0)
		I.stop = true;
}

int mode_idle(const struct bench_opts *o)
{
	long long before, after = -1;
	int procs_before = 0, procs_after = 0;
	double t0, ramp, per_conn = 0;
	bool never = false;

	if (o->server_pid <= 0)
		bench_die("idle needs --server-pid (the server's master process)");
	I.o = o;
	I.step = calloc(o->concurrency, sizeof(*I.step));
	I.conns = calloc(o->concurrency, sizeof(*I.conns));
	if (I.step == NULL || I.conns == NULL)
		bench_die("out of memory");
	before = procmem_pss_kib(o->server_pid, &procs_before);
	if (before < 0)
		bench_die("server pid %d not found", o->server_pid);

	t0 = bench_now();
	I.phase = PH_RAMP;
	idle_open_more();
	bconn_run(o->ramp_timeout, &I.stop, idle_tick);
	ramp = bench_now() - t0;

	I.phase = PH_HOLD;
	I.stop = false;
	bconn_run(IDLE_SETTLE_SECONDS, &never, NULL);
	after = procmem_pss_kib(o->server_pid, &procs_after);
	if (I.logged_in > 0 && after >= 0)
		per_conn = (double)(after - before) / I.logged_in;
	/* Hold: a server that drops idle sessions shows up as errors here. */
	bconn_run(o->seconds, &never, NULL);

	I.phase = PH_QUIT;
	for (unsigned i = 0; i < o->concurrency; i++) {
		if (I.conns[i] != NULL && I.step[i] == I_IDLE) {
			I.step[i] = I_QUIT;
			bconn_cmd(I.conns[i], EXPECT_LINE, "QUIT");
		} else if (I.conns[i] != NULL) {
			I.errors++; /* still not logged in after the ramp */
			bconn_close(I.conns[i]);
			I.conns[i] = NULL;
		}
	}
	bconn_run(IDLE_QUIT_SECONDS, &I.stop, idle_tick);
	bench_result(
	    o,
	    "connections=%u logged_in=%u quit_ok=%u ramp_s=%.2f pss_before_kib=%lld "
	    "pss_after_kib=%lld procs_before=%d procs_after=%d kib_per_conn=%.1f errors=%u "
	    "first_error=%s",
	    o->concurrency, I.logged_in, I.quit_ok, ramp, before, after, procs_before, procs_after,
	    per_conn, I.errors, I.first_error[0] ? I.first_error : "-");
	return I.errors == 0 && I.quit_ok == o->concurrency ? 0 : 1;
}
