/* Deterministic benchmark data: seeded Maildir corpora with realistic mail, and the passwd-file
 * plus Maildirs of many benchmark users. Same seed, same bytes, on any machine. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "bench.h"
#include "strnum.h"

/* Delivery times start here (2023-11-14 22:13:20 UTC) so every run writes the same names. */
#define CORPUS_EPOCH   1700000000ULL
#define CORPUS_MSG_MAX (11 * 1024 * 1024)
#define USERS_MAX      200000

struct corpus_kind {
	const char *name;
	unsigned count;
	size_t min_size, max_size;
	unsigned long_line_pct; /* messages with one very long line */
};

static const struct corpus_kind kinds[] = {
    {"tiny", 10, 1024, 8 * 1024, 20},
    {"small", 1000, 2 * 1024, 50 * 1024, 12},
    {"big", 100000, 3584, 4608, 2},
    {"huge", 20, 10 * 1024 * 1024, 10 * 1024 * 1024, 50},
};

/* splitmix64: tiny, seedable and the same everywhere (rand() is neither). */
static uint64_t rng_state;

static uint64_t rng(void)
{
	uint64_t z = (rng_state += 0x9e3779b97f4a7c15ULL);

	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
	return z ^ (z >> 31);
}

static uint64_t rng_below(uint64_t n)
{
	return n ? rng() % n : 0;
}

static const char *const words[] = {
    "the",       "meeting",  "report",      "invoice",  "attached", "please",  "review",
    "before",    "Friday",   "thanks",      "regards",  "server",   "mailbox", "delivery",
    "quarterly", "numbers",  "project",     "schedule", "update",   "budget",  "draft",
    "final",     "question", "answer",      "café",     "Grüße",    "naïve",   "Zürich",
    "façade",    "jalapeño", "smörgåsbord", "日本語",   "Ελληνικά", "привет",  "€100",
    "coöperate", "déjà",     "vu",          "résumé",   "Åland",
};
#define N_WORDS (sizeof(words) / sizeof(words[0]))

static const char *const names[] = {"Alice Martin",  "Bob Dupont",    "Chloé Bernard",
                                    "Dmitri Ivanov", "Eva Müller",    "Farid Haddad",
                                    "Grace Hopper",  "Hiroshi Tanaka"};
static const char *const domains[] = {"example.com", "example.net", "example.org",
                                      "mail.example.de", "lists.example.fr"};

struct mbuf {
	char *p;
	size_t len, cap;
};

static void put(struct mbuf *b, const char *s, size_t n)
{
	if (n > b->cap - b->len)
		n = b->cap - b->len; /* the caller sized the buffer; never overrun it */
	memcpy(b->p + b->len, s, n);
	b->len += n;
}

static void puts_(struct mbuf *b, const char *s)
{
	put(b, s, strlen(s));
}

static void putf(struct mbuf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void putf(struct mbuf *b, const char *fmt, ...)
{
	va_list ap;
	int n;

	va_start(ap, fmt);
	n = vsnprintf(b->p + b->len, b->cap - b->len, fmt, ap);
	va_end(ap);
	if (n > 0)
		b->len += (size_t)n < b->cap - b->len ? (size_t)n : b->cap - b->len - 1;
}

static void put_date(struct mbuf *b, uint64_t t)
{
	time_t tt = (time_t)t;
	struct tm tm;
	char s[64];

	gmtime_r(&tt, &tm);
	strftime(s, sizeof(s), "%a, %d %b %Y %H:%M:%S +0000", &tm);
	puts_(b, s);
}

static void put_headers(struct mbuf *b, unsigned i, uint64_t t)
{
	const char *from = names[rng_below(8)], *dom = domains[rng_below(5)];
	unsigned hops = 2 + (unsigned)rng_below(3);

	putf(b, "Return-Path: <sender%u@%s>\n", i % 97, dom);
	puts_(b, "Delivered-To: bench@gannet.test\n");
	for (unsigned h = 0; h < hops; h++) {
		putf(b,
		     "Received: from mx%u.%s (mx%u.%s [192.0.2.%u])\n"
		     "\tby mail.gannet.test (Postfix) with ESMTPS id %08" PRIX64 "\n"
		     "\tfor <bench@gannet.test>; ",
		     h, dom, h, dom, (unsigned)rng_below(254) + 1, rng() & 0xffffffffu);
		put_date(b, t - h);
		puts_(b, "\n");
	}
	puts_(b, "Date: ");
	put_date(b, t - hops);
	putf(b, "\nFrom: \"%s\" <%c.%u@%s>\nTo: Bench User <bench@gannet.test>\n", from, from[0],
	     i % 31, dom);
	putf(b, "Subject: %s %s %s #%u\n", words[rng_below(N_WORDS)], words[rng_below(N_WORDS)],
	     words[rng_below(N_WORDS)], i);
	putf(b, "Message-ID: <%016" PRIx64 ".%u@%s>\n", rng(), i, dom);
	puts_(b, "MIME-Version: 1.0\nContent-Type: text/plain; charset=utf-8\n"
	         "Content-Transfer-Encoding: 8bit\n\n");
}

/* One body line: words up to about WIDTH bytes; every so often a line that needs dot-stuffing. */
static void put_line(struct mbuf *b, size_t width)
{
	size_t start = b->len;
	uint64_t r = rng_below(40);

	if (r == 0)
		puts_(b, ".");
	else if (r == 1)
		puts_(b, "..");
	else if (r == 2)
		puts_(b, ". a line that starts with a dot");
	else if (r == 3)
		puts_(b, "...and three dots");
	while (b->len - start < width) {
		if (b->len > start)
			puts_(b, " ");
		puts_(b, words[rng_below(N_WORDS)]);
	}
	puts_(b, "\n");
}

static void make_message(struct mbuf *b, const struct corpus_kind *k, unsigned i, uint64_t t)
{
	size_t target = k->min_size + rng_below(k->max_size - k->min_size + 1);
	bool long_line = rng_below(100) < k->long_line_pct;

	b->len = 0;
	put_headers(b, i, t);
	while (b->len + 80 < target) {
		if (long_line && rng_below(20) == 0) {
			/* Long unbroken lines: what HTML mail and base64-less blobs look like. */
			put_line(b, 1000 + (size_t)rng_below(9000));
			long_line = false;
			continue;
		}
		put_line(b, 40 + (size_t)rng_below(36));
	}
	puts_(b, "-- \nsent by gannet-bench\n");
}

/* Format a path; a path that does not fit is a set-up error, never a silent truncation. */
static void path_fmt(char *out, size_t size, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void path_fmt(char *out, size_t size, const char *fmt, ...)
{
	va_list ap;
	int n;

	va_start(ap, fmt);
	n = vsnprintf(out, size, fmt, ap);
	va_end(ap);
	if (n < 0 || (size_t)n >= size)
		bench_die("path too long");
}

static void mkdir_p3(const char *maildir)
{
	static const char *const subs[] = {"", "/new", "/cur", "/tmp"};
	char path[4096];

	for (size_t i = 0; i < 4; i++) {
		path_fmt(path, sizeof(path), "%s%s", maildir, subs[i]);
		if (mkdir(path, 0700) < 0 && errno != EEXIST)
			bench_die("mkdir %s: %s", path, strerror(errno));
	}
}

static void write_file(const char *path, const char *data, size_t len, uint64_t t)
{
	struct timespec ts[2] = {{.tv_sec = (time_t)t}, {.tv_sec = (time_t)t}};
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);

	if (fd < 0)
		bench_die("open %s: %s", path, strerror(errno));
	while (len > 0) {
		ssize_t n = write(fd, data, len);

		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			bench_die("write %s: %s", path, strerror(errno));
		data += n;
		len -= (size_t)n;
	}
	/* Servers order messages by delivery time: make it the same on every run. */
	futimens(fd, ts);
	if (close(fd) < 0)
		bench_die("close %s: %s", path, strerror(errno));
}

int corpus_main(int argc, char **argv)
{
	const struct corpus_kind *k = NULL;
	struct mbuf b;
	uint64_t seed, total = 0;
	char path[4096];

	if (argc != 4) {
		fputs("usage: gannet-bench corpus tiny|small|big|huge SEED MAILDIR\n", stderr);
		return 2;
	}
	for (size_t i = 0; i < sizeof(kinds) / sizeof(kinds[0]); i++)
		if (strcmp(argv[1], kinds[i].name) == 0)
			k = &kinds[i];
	if (k == NULL)
		bench_die("unknown corpus kind \"%s\"", argv[1]);
	if (strnum_parse(argv[2], 0, UINT64_MAX, &seed) < 0)
		bench_die("bad seed \"%s\"", argv[2]);
	rng_state = seed ^ (uint64_t)k->count * 0x51ed27ULL;
	b.cap = CORPUS_MSG_MAX;
	b.p = malloc(b.cap);
	if (b.p == NULL)
		bench_die("out of memory");
	mkdir_p3(argv[3]);
	for (unsigned i = 0; i < k->count; i++) {
		/* About one message every 7 seconds, named the way Postfix's local delivery does.
		 */
		uint64_t t = CORPUS_EPOCH + (uint64_t)i * 7;

		make_message(&b, k, i, t);
		path_fmt(path, sizeof(path), "%s/new/%" PRIu64 ".V801I%xM%06u.bench.gannet.test",
		         argv[3], t, i + 1, (unsigned)(rng() % 1000000));
		write_file(path, b.p, b.len, t);
		total += b.len;
	}
	free(b.p);
	printf("corpus kind=%s seed=%" PRIu64 " messages=%u bytes=%" PRIu64 " dir=%s\n", k->name,
	       seed, k->count, total, argv[3]);
	return 0;
}

/* Hard links keep many users' copies of one corpus at the cost of one. */
static void link_corpus(const char *src, const char *dst_maildir)
{
	char from[4096], to[4096];
	struct dirent *de;
	DIR *d = opendir(src);

	if (d == NULL)
		bench_die("opendir %s: %s", src, strerror(errno));
	while ((de = readdir(d)) != NULL) {
		if (de->d_name[0] == '.')
			continue;
		path_fmt(from, sizeof(from), "%s/%s", src, de->d_name);
		path_fmt(to, sizeof(to), "%s/new/%s", dst_maildir, de->d_name);
		if (link(from, to) < 0 && errno != EEXIST)
			bench_die("link %s: %s", to, strerror(errno));
	}
	closedir(d);
}

int users_main(int argc, char **argv)
{
	uint64_t count, with_mail = 0;
	char home[4096], maildir[4096];
	FILE *f;

	if (argc != 6 && argc != 8) {
		fputs("usage: gannet-bench users PREFIX COUNT HOME_BASE HASH PASSWD_FILE "
		      "[MAIL_SRC_DIR USERS_WITH_MAIL]\n",
		      stderr);
		return 2;
	}
	if (strnum_parse(argv[2], 1, USERS_MAX, &count) < 0)
		bench_die("bad user count \"%s\"", argv[2]);
	if (argc == 8 && strnum_parse(argv[7], 0, count, &with_mail) < 0)
		bench_die("bad count of users with mail \"%s\"", argv[7]);
	f = fopen(argv[5], "we");
	if (f == NULL)
		bench_die("%s: %s", argv[5], strerror(errno));
	if (mkdir(argv[3], 0755) < 0 && errno != EEXIST)
		bench_die("mkdir %s: %s", argv[3], strerror(errno));
	for (uint64_t i = 0; i < count; i++) {
		path_fmt(home, sizeof(home), "%s/%s%" PRIu64, argv[3], argv[1], i);
		path_fmt(maildir, sizeof(maildir), "%s/Maildir", home);
		if (mkdir(home, 0700) < 0 && errno != EEXIST)
			bench_die("mkdir %s: %s", home, strerror(errno));
		mkdir_p3(maildir);
		if (i < with_mail)
			link_corpus(argv[6], maildir);
		/* Dovecot passwd-file: user:password:uid:gid:gecos:home:shell:extra */
		fprintf(f, "%s%" PRIu64 ":%s::::%s::\n", argv[1], i, argv[4], home);
	}
	if (fclose(f) != 0)
		bench_die("%s: %s", argv[5], strerror(errno));
	printf("users prefix=%s count=%" PRIu64 " with_mail=%" PRIu64 "\n", argv[1], count,
	       with_mail);
	return 0;
}
