/* Terminal progress bar (drawn in the process that fetches, or by the parent for parallel
 * accounts from fixed-size records sent over a pipe) and the JSON and human summaries. */
#include "progress.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/ioctl.h>
#include <unistd.h>

#include "climits.h"
#include "util.h"

static bool bars_on;
static int parent_fd = -1, parent_slot;
static bool drawn;

/* One update from a child; far below PIPE_BUF, so each write arrives whole. */
struct prec {
	int32_t slot;
	uint64_t msgs_total, msgs_done, bytes_total, bytes_done;
};

static struct prec slots[GANNET_ACCOUNTS_MAX];
static int64_t collect_start, collect_last;

void progress_enable(bool on)
{
	bars_on = on;
}

void progress_to_parent(int fd, int slot)
{
	parent_fd = fd;
	parent_slot = slot;
}

static void human(char *out, size_t size, double v)
{
	static const char *const units[] = {"B", "kB", "MB", "GB", "TB"};
	int u = 0;

	while (v >= 1000 && u < 4) {
		v /= 1000;
		u++;
	}
	snprintf(out, size, u == 0 ? "%.0f %s" : "%.1f %s", v, units[u]);
}

static void draw(const char *label, uint64_t mt, uint64_t md, uint64_t bt, uint64_t bd,
                 int64_t start)
{
	char line[512], done_s[32], total_s[32], rate_s[32], eta[32] = "";
	double secs = (double)(now_ms() - start) / 1000.0, rate = secs > 0.2 ? bd / secs : 0;
	struct winsize ws;
	int width = 80, n, bar;

	if (ioctl(STDERR_FILENO, TIOCGWINSZ, &ws) == 0 && ws.ws_col > 20)
		width = ws.ws_col < sizeof(line) - 1 ? ws.ws_col : (int)sizeof(line) - 1;
	human(done_s, sizeof(done_s), (double)bd);
	human(total_s, sizeof(total_s), (double)(bt > bd ? bt : bd));
	human(rate_s, sizeof(rate_s), rate);
	if (rate > 0 && bt > bd) {
		uint64_t left = (uint64_t)((double)(bt - bd) / rate);
		snprintf(eta, sizeof(eta), " %llu:%02llu left", (unsigned long long)(left / 60),
		         (unsigned long long)(left % 60));
	}
	n = snprintf(line, sizeof(line), "%s %llu/%llu msgs %s/%s %s/s%s ", label,
	             (unsigned long long)md, (unsigned long long)mt, done_s, total_s, rate_s, eta);
	if (n < 0)
		return;
	bar = width - 1 - n - 2;
	if (bar >= 10 && (size_t)n + (size_t)bar + 3 < sizeof(line)) {
		int fill = bt > 0 ? (int)((double)bd / (double)bt * bar) : 0;
		fill = fill > bar ? bar : fill;
		line[n++] = '[';
		for (int i = 0; i < bar; i++)
			line[n++] = i < fill ? '#' : '.';
		line[n++] = ']';
		line[n] = '\0';
	} else if (n > width - 1) {
		n = width - 1;
	}
	fprintf(stderr, "\r%.*s\033[K", n, line);
	fflush(stderr);
	drawn = true;
}

static void clear_bar(void)
{
	if (drawn) {
		fputs("\r\033[K", stderr);
		fflush(stderr);
		drawn = false;
	}
}

static void send_parent(const struct progress *p)
{
	struct prec r = {parent_slot, p->msgs_total, p->msgs_done, p->bytes_total, p->bytes_done};
	ssize_t n;

	do
		n = write(parent_fd, &r, sizeof(r));
	while (n < 0 && errno == EINTR);
}

static void show(struct progress *p, bool force)
{
	int64_t now = now_ms();

	if (!p->enabled || (!force && now - p->last_ms < 100))
		return;
	p->last_ms = now;
	if (parent_fd >= 0)
		send_parent(p);
	else
		draw(p->account, p->msgs_total, p->msgs_done, p->bytes_total, p->bytes_done,
		     p->start_ms);
}

void progress_start(struct progress *p, const char *account, uint64_t msgs, uint64_t bytes)
{
	memset(p, 0, sizeof(*p));
	p->enabled = bars_on && msgs > 0;
	p->account = account;
	p->msgs_total = msgs;
	p->bytes_total = bytes;
	p->start_ms = now_ms();
	show(p, true);
}

void progress_add(struct progress *p, uint64_t bytes, bool msg_done)
{
	p->bytes_done += bytes;
	p->msgs_done += msg_done;
	show(p, false);
}

void progress_end(struct progress *p)
{
	if (!p->enabled)
		return;
	if (parent_fd >= 0)
		send_parent(p);
	else
		clear_bar();
	p->enabled = false;
}

void progress_collect(int fd)
{
	struct prec r;
	uint64_t mt = 0, md = 0, bt = 0, bd = 0;
	int accounts = 0;
	char label[32];

	if (collect_start == 0)
		collect_start = now_ms();
	while (read(fd, &r, sizeof(r)) == (ssize_t)sizeof(r))
		if (r.slot >= 0 && r.slot < GANNET_ACCOUNTS_MAX)
			slots[r.slot] = r;
	if (!bars_on || now_ms() - collect_last < 100)
		return;
	collect_last = now_ms();
	for (int i = 0; i < GANNET_ACCOUNTS_MAX; i++) {
		if (slots[i].msgs_total == 0)
			continue;
		accounts++;
		mt += slots[i].msgs_total;
		md += slots[i].msgs_done;
		bt += slots[i].bytes_total;
		bd += slots[i].bytes_done;
	}
	if (mt == 0)
		return;
	snprintf(label, sizeof(label), "%d account%s", accounts, accounts == 1 ? "" : "s");
	draw(label, mt, md, bt, bd, collect_start);
}

void progress_collect_end(void)
{
	clear_bar();
}

/* Append S as a JSON string body (without quotes) to OUT at *POS. */
static void json_str(char *out, size_t size, size_t *pos, const char *s)
{
	for (; *s != '\0' && *pos + 8 < size; s++) {
		unsigned char ch = (unsigned char)*s;
		if (ch == '"' || ch == '\\')
			*pos += (size_t)snprintf(out + *pos, size - *pos, "\\%c", ch);
		else if (ch < 0x20 || ch == 0x7f)
			*pos += (size_t)snprintf(out + *pos, size - *pos, "\\u%04x", ch);
		else
			out[(*pos)++] = (char)ch;
	}
	out[*pos] = '\0';
}

void progress_json(const char *account, const struct fetch_stats *st)
{
	char out[2048];
	size_t pos = 0;

	pos += (size_t)snprintf(out, sizeof(out), "{\"account\":\"");
	json_str(out, sizeof(out), &pos, account);
	pos += (size_t)snprintf(out + pos, sizeof(out) - pos,
	                        "\",\"status\":\"%s\",\"exit\":%d,\"new\":%llu,\"fetched\":%llu,"
	                        "\"skipped\":%llu,\"dropped\":%llu,\"deleted\":%llu,\"bytes\":%llu,"
	                        "\"errors\":%llu,\"error\":",
	                        st->exit_code == 0 ? "ok" : "error", st->exit_code,
	                        (unsigned long long)st->new_msgs, (unsigned long long)st->fetched,
	                        (unsigned long long)st->skipped, (unsigned long long)st->dropped,
	                        (unsigned long long)st->deleted, (unsigned long long)st->bytes,
	                        (unsigned long long)st->errors);
	if (st->error[0] == '\0') {
		pos += (size_t)snprintf(out + pos, sizeof(out) - pos, "null}\n");
	} else {
		out[pos++] = '"';
		json_str(out, sizeof(out) - 3, &pos, st->error);
		pos += (size_t)snprintf(out + pos, sizeof(out) - pos, "\"}\n");
	}
	write_all(STDOUT_FILENO, out, pos);
}

void progress_summary(const char *account, const struct fetch_stats *st)
{
	char bytes[32];

	if (!bars_on)
		return;
	human(bytes, sizeof(bytes), (double)st->bytes);
	fprintf(stderr, "%s: %llu new, %llu fetched (%s)", account,
	        (unsigned long long)st->new_msgs, (unsigned long long)st->fetched, bytes);
	if (st->skipped)
		fprintf(stderr, ", %llu skipped", (unsigned long long)st->skipped);
	if (st->dropped)
		fprintf(stderr, ", %llu dropped", (unsigned long long)st->dropped);
	if (st->deleted)
		fprintf(stderr, ", %llu deleted", (unsigned long long)st->deleted);
	fprintf(stderr, "%s\n", st->exit_code ? ", FAILED" : "");
}
