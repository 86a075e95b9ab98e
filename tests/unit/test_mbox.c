/* Unit tests for lib/mbox.c: parsing, sizes, UIDLs, session and delivery locks, crash-safe UPDATE.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <setjmp.h> /* cmocka needs these three before its header */
#include <stdarg.h>
#include <cmocka.h>

#include <lockfile.h>

#include "mbox.h"
#include "pop3.h"

/* Lock waits in these tests: long enough for a busy machine, short enough to keep tests quick. */
#define TEST_LOCK_WAIT_MS 300

/* Crash test: rounds, and the longest a round may take before the test fails. */
#define CRASH_ROUNDS      200
#define CRASH_ROUND_LIMIT 10 /* seconds */
#define CRASH_MESSAGES    1000

#define TEXT_MAX (4 * 1024 * 1024)

struct fx {
	char top[64];
	char box[128];  /* TOP/user */
	char lock[160]; /* TOP/user.lock */
	char tmp[160];  /* TOP/.user.gannet-update */
};

static void pathf(char *buf, size_t size, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void pathf(char *buf, size_t size, const char *fmt, ...)
{
	va_list ap;
	int n;

	va_start(ap, fmt);
	n = vsnprintf(buf, size, fmt, ap);
	va_end(ap);
	assert_true(n > 0 && (size_t)n < size);
}

static int setup(void **state)
{
	struct fx *f = calloc(1, sizeof(*f));

	assert_non_null(f);
	snprintf(f->top, sizeof(f->top), "/tmp/gannet-mbox-XXXXXX");
	assert_non_null(mkdtemp(f->top));
	pathf(f->box, sizeof(f->box), "%s/user", f->top);
	pathf(f->lock, sizeof(f->lock), "%s/user.lock", f->top);
	pathf(f->tmp, sizeof(f->tmp), "%s/.user.gannet-update", f->top);
	mbox_set_lock_wait_ms(TEST_LOCK_WAIT_MS);
	*state = f;
	return 0;
}

/* Removes everything the tests and liblockfile (".lk*" files of a killed locker) left. */
static int teardown(void **state)
{
	struct fx *f = *state;
	struct dirent *e;
	char p[256];
	DIR *d = opendir(f->top);

	assert_non_null(d);
	while ((e = readdir(d)) != NULL) {
		if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0)
			continue;
		pathf(p, sizeof(p), "%s/%s", f->top, e->d_name);
		assert_int_equal(unlink(p), 0);
	}
	closedir(d);
	assert_int_equal(rmdir(f->top), 0);
	free(f);
	return 0;
}

static void put(const char *path, const void *data, size_t len)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);

	assert_true(fd >= 0);
	assert_int_equal(write(fd, data, len), (ssize_t)len);
	assert_int_equal(close(fd), 0);
}

static void append(const char *path, const char *s)
{
	int fd = open(path, O_WRONLY | O_APPEND | O_CLOEXEC);

	assert_true(fd >= 0);
	assert_int_equal(write(fd, s, strlen(s)), (ssize_t)strlen(s));
	assert_int_equal(close(fd), 0);
}

/* The whole file into a malloc'd buffer. */
static char *slurp(const char *path, size_t *len_r)
{
	struct stat st;
	char *buf;
	int fd = open(path, O_RDONLY | O_CLOEXEC);

	assert_true(fd >= 0);
	assert_int_equal(fstat(fd, &st), 0);
	buf = malloc((size_t)st.st_size + 1);
	assert_non_null(buf);
	assert_int_equal(read(fd, buf, (size_t)st.st_size), st.st_size);
	buf[st.st_size] = '\0';
	close(fd);
	*len_r = (size_t)st.st_size;
	return buf;
}

static const char *uidl(const struct mbox_snapshot *s, size_t i)
{
	static char bufs[4][POP3_UIDL_MAX + 1];
	static size_t k;
	size_t len;
	const char *u = mbox_msg_uidl(s, i, &len);

	assert_true(len >= 1 && len <= POP3_UIDL_MAX);
	for (size_t j = 0; j < len; j++)
		assert_true(u[j] >= 0x21 && u[j] <= 0x7e);
	snprintf(bufs[k % 4], sizeof(bufs[0]), "%.*s", (int)len, u);
	return bufs[k++ % 4];
}

/* What the pop3 encoder (as RETR uses it) emits for RAW, before dot-stuffing. */
static uint64_t encoded_size(const char *raw, size_t len)
{
	struct pop3_enc e;
	char out[2 * 64 + 3];
	uint64_t total = 0;

	pop3_enc_init(&e, false, UINT64_MAX);
	for (size_t off = 0; off < len; off += 64) {
		size_t n = len - off < 64 ? len - off : 64;

		total += pop3_enc_feed(&e, raw + off, n, out);
	}
	total += pop3_enc_finish(&e, out);
	return total;
}

/* Parse TEXT whole and in small chunks (same results), check sizes against the encoder. */
static void parse(const char *text, size_t len, struct mbox_snapshot *s)
{
	const char *err = NULL;
	uint64_t sum = 0;

	assert_int_equal(mbox_parse_mem(text, len, 0, s, &err), MBOX_OK);
	for (size_t chunk = 1; chunk <= 7; chunk++) {
		struct mbox_snapshot c;

		assert_int_equal(mbox_parse_mem(text, len, chunk, &c, &err), MBOX_OK);
		assert_int_equal(c.count, s->count);
		assert_int_equal(c.total_size, s->total_size);
		for (size_t i = 0; i < s->count; i++) {
			assert_int_equal(mbox_msg_raw_offset(&c, i), mbox_msg_raw_offset(s, i));
			assert_int_equal(mbox_msg_raw_len(&c, i), mbox_msg_raw_len(s, i));
			assert_string_equal(uidl(&c, i), uidl(s, i));
		}
		mbox_snapshot_free(&c);
	}
	for (size_t i = 0; i < s->count; i++) {
		uint64_t off = mbox_msg_raw_offset(s, i), rl = mbox_msg_raw_len(s, i);

		assert_true(off + rl <= len);
		assert_int_equal(mbox_msg_size(s, i), encoded_size(text + off, (size_t)rl));
		sum += mbox_msg_size(s, i);
	}
	assert_int_equal(sum, s->total_size);
}

static void parse_s(const char *text, struct mbox_snapshot *s)
{
	parse(text, strlen(text), s);
}

static void assert_msg(const char *text, const struct mbox_snapshot *s, size_t i, const char *want)
{
	uint64_t off = mbox_msg_raw_offset(s, i), rl = mbox_msg_raw_len(s, i);

	assert_int_equal(rl, strlen(want));
	assert_memory_equal(text + off, want, rl);
}

static int parse_err(const char *text)
{
	struct mbox_snapshot s;
	const char *err = NULL;
	int r = mbox_parse_mem(text, strlen(text), 0, &s, &err);

	if (r != MBOX_OK)
		assert_non_null(err);
	assert_int_equal(s.count, 0);
	mbox_snapshot_free(&s);
	return r;
}

static void test_parse_one(void **state)
{
	static const char t[] = "From alice@example.org Mon Jan  1 00:00:00 2024\n"
	                        "Subject: hi\n\nbody\n\n";
	struct mbox_snapshot s;

	(void)state;
	parse_s(t, &s);
	assert_int_equal(s.count, 1);
	assert_msg(t, &s, 0, "Subject: hi\n\nbody\n");
	/* "Subject: hi\r\n\r\nbody\r\n" */
	assert_int_equal(mbox_msg_size(&s, 0), 21);
	mbox_snapshot_free(&s);
}

static void test_parse_many(void **state)
{
	static const char t[] = "From a Mon Jan  1 00:00:00 2024\nSubject: 1\n\none\n\n"
	                        "From b Mon Jan  1 00:00:01 2024\nSubject: 2\n\ntwo\n\n"
	                        "From c Mon Jan  1 00:00:02 2024\nSubject: 3\n\nthree\n";
	struct mbox_snapshot s;

	(void)state;
	parse_s(t, &s);
	assert_int_equal(s.count, 3);
	assert_msg(t, &s, 0, "Subject: 1\n\none\n");
	assert_msg(t, &s, 1, "Subject: 2\n\ntwo\n");
	assert_msg(t, &s, 2, "Subject: 3\n\nthree\n");
	assert_string_not_equal(uidl(&s, 0), uidl(&s, 1));
	assert_int_equal(strlen(uidl(&s, 0)), MBOX_HASH_UIDL_HEX);
	mbox_snapshot_free(&s);
}

/* ">From " stays as stored; a "From " line that does not follow an empty line is body text. */
static void test_parse_from_in_body(void **state)
{
	static const char t[] = "From a Mon Jan  1 00:00:00 2024\nSubject: q\n\n"
	                        ">From the start\nline\nFrom here, not a separator\n\n"
	                        ">>From x\n\n"
	                        "From b Mon Jan  1 00:00:01 2024\n\nsecond\n";
	struct mbox_snapshot s;

	(void)state;
	parse_s(t, &s);
	assert_int_equal(s.count, 2);
	assert_msg(t, &s, 0,
	           "Subject: q\n\n>From the start\nline\nFrom here, not a separator\n\n>>From x\n");
	assert_msg(t, &s, 1, "\nsecond\n");
	mbox_snapshot_free(&s);
}

static void test_parse_crlf(void **state)
{
	static const char t[] = "From a Mon Jan  1 00:00:00 2024\r\nSubject: 1\r\n\r\none\r\n\r\n"
	                        "From b Mon Jan  1 00:00:01 2024\r\nSubject: 2\r\n\r\ntwo\r\n\r\n";
	static const char lf[] = "From a Mon Jan  1 00:00:00 2024\nSubject: 1\n\none\n\n"
	                         "From b Mon Jan  1 00:00:01 2024\nSubject: 2\n\ntwo\n\n";
	struct mbox_snapshot s, l;

	(void)state;
	parse_s(t, &s);
	parse_s(lf, &l);
	assert_int_equal(s.count, 2);
	assert_msg(t, &s, 0, "Subject: 1\r\n\r\none\r\n");
	assert_msg(t, &s, 1, "Subject: 2\r\n\r\ntwo\r\n");
	/* Same wire size and the same UIDLs as the LF form of the same mail. */
	assert_int_equal(s.total_size, l.total_size);
	assert_string_equal(uidl(&s, 0), uidl(&l, 0));
	assert_string_equal(uidl(&s, 1), uidl(&l, 1));
	mbox_snapshot_free(&s);
	mbox_snapshot_free(&l);
}

static void test_parse_no_final_newline(void **state)
{
	static const char t[] = "From a Mon Jan  1 00:00:00 2024\nSubject: 1\n\none\n\n"
	                        "From b Mon Jan  1 00:00:01 2024\nSubject: 2\n\nlast line";
	static const char t2[] = "From a x\nSubject: z";
	static const char t3[] = "From a x";
	struct mbox_snapshot s;

	(void)state;
	parse_s(t, &s);
	assert_int_equal(s.count, 2);
	assert_msg(t, &s, 1, "Subject: 2\n\nlast line");
	/* "Subject: 2\r\n\r\nlast line\r\n" */
	assert_int_equal(mbox_msg_size(&s, 1), 12 + 2 + 11);
	mbox_snapshot_free(&s);
	parse_s(t2, &s);
	assert_int_equal(s.count, 1);
	assert_msg(t2, &s, 0, "Subject: z");
	mbox_snapshot_free(&s);
	parse_s(t3, &s);
	assert_int_equal(s.count, 1);
	assert_msg(t3, &s, 0, "");
	assert_int_equal(mbox_msg_size(&s, 0), 0);
	mbox_snapshot_free(&s);
}

/* The last message keeps its size and UIDL when the next one arrives. */
static void test_parse_stable_when_appended(void **state)
{
	static const char a[] = "From a Mon Jan  1 00:00:00 2024\nSubject: 1\n\none\n\n";
	static const char b[] = "From a Mon Jan  1 00:00:00 2024\nSubject: 1\n\none\n\n"
	                        "From b Mon Jan  1 00:00:01 2024\nSubject: 2\n\ntwo\n\n";
	static const char c[] = "From a Mon Jan  1 00:00:00 2024\nSubject: 1";
	static const char d[] = "From a Mon Jan  1 00:00:00 2024\nSubject: 1\n\nFrom b x\n";
	struct mbox_snapshot s1, s2;

	(void)state;
	parse_s(a, &s1);
	parse_s(b, &s2);
	assert_int_equal(mbox_msg_size(&s1, 0), mbox_msg_size(&s2, 0));
	assert_string_equal(uidl(&s1, 0), uidl(&s2, 0));
	mbox_snapshot_free(&s2);
	parse_s(c, &s2);
	assert_string_equal(uidl(&s1, 0), uidl(&s2, 0));
	mbox_snapshot_free(&s2);
	parse_s(d, &s2);
	assert_string_equal(uidl(&s1, 0), uidl(&s2, 0));
	mbox_snapshot_free(&s2);
	mbox_snapshot_free(&s1);
}

static void test_parse_not_mbox(void **state)
{
	struct mbox_snapshot s;

	(void)state;
	assert_int_equal(parse_err("Subject: hi\n\nbody\n"), MBOX_ERR_PERM);
	assert_int_equal(parse_err("\nFrom a x\n"), MBOX_ERR_PERM);
	assert_int_equal(parse_err("from a x\n"), MBOX_ERR_PERM);
	assert_int_equal(parse_err("Fro"), MBOX_ERR_PERM);
	assert_int_equal(parse_err("From\n"), MBOX_ERR_PERM);
	assert_int_equal(parse_err("\n"), MBOX_ERR_PERM);
	parse_s("", &s);
	assert_int_equal(s.count, 0);
	assert_int_equal(s.total_size, 0);
	mbox_snapshot_free(&s);
}

/* A From_ line without address or date still separates messages. */
static void test_parse_broken_from(void **state)
{
	static const char t[] = "From \nA: 1\n\nx\n\nFrom garbage\nB: 2\n\ny\n\nFrom\tno\n";
	struct mbox_snapshot s;

	(void)state;
	parse_s(t, &s);
	assert_int_equal(s.count, 2);
	assert_msg(t, &s, 0, "A: 1\n\nx\n");
	assert_msg(t, &s, 1, "B: 2\n\ny\n\nFrom\tno\n");
	mbox_snapshot_free(&s);
}

static void test_parse_zero_length(void **state)
{
	static const char t[] = "From a x\n\nFrom b y\n\n\nFrom c z\n\n\n\nFrom d w\n";
	struct mbox_snapshot s;

	(void)state;
	parse_s(t, &s);
	assert_int_equal(s.count, 4);
	assert_msg(t, &s, 0, "");
	assert_int_equal(mbox_msg_size(&s, 0), 0);
	assert_msg(t, &s, 1, "\n");
	assert_int_equal(mbox_msg_size(&s, 1), 2);
	assert_msg(t, &s, 2, "\n\n");
	assert_msg(t, &s, 3, "");
	mbox_snapshot_free(&s);
}

static void test_uidl_x_uidl(void **state)
{
	static const char t[] =
	    "From a x\nSubject: 1\nX-UIDL: abc123\n\none\n\n"
	    "From b x\nx-uidl:\t  def456  \n\ntwo\n\n"
	    "From c x\nX-UIDL: abc123\n\nduplicate\n\n"
	    "From d x\nX-UIDL: has space\n\nbad\n\n"
	    "From e x\nX-UIDL: folded\n continued\n\nbad\n\n"
	    "From f x\nX-UIDL: "
	    "12345678901234567890123456789012345678901234567890123456789012345678901\n\nlong\n\n"
	    "From g x\nSubject: s\n\nX-UIDL: inbody\n\n"
	    "From h x\nX-UIDL: first\nX-UIDL: second\n\nb\n\n"
	    "From i x\r\nX-UIDL: crlf\r\n\r\nb\r\n";
	struct mbox_snapshot s;

	(void)state;
	parse_s(t, &s);
	assert_int_equal(s.count, 9);
	assert_string_equal(uidl(&s, 0), "abc123");
	assert_string_equal(uidl(&s, 1), "def456");
	for (size_t i = 2; i <= 6; i++)
		assert_int_equal(strlen(uidl(&s, i)), MBOX_HASH_UIDL_HEX);
	assert_string_equal(uidl(&s, 7), "first");
	assert_string_equal(uidl(&s, 8), "crlf");
	mbox_snapshot_free(&s);
}

/* An X-UIDL that equals a hashed UIDL keeps it; the hashed message moves to the next suffix. */
static void test_uidl_x_uidl_takes_hash(void **state)
{
	static const char one[] = "From a x\nSubject: 1\n\none\n";
	char t[512], h[POP3_UIDL_MAX + 1];
	struct mbox_snapshot s;

	(void)state;
	parse_s(one, &s);
	snprintf(h, sizeof(h), "%s", uidl(&s, 0));
	mbox_snapshot_free(&s);
	pathf(t, sizeof(t), "%s\nFrom b x\nX-UIDL: %s\n\nz\n", one, h);
	parse_s(t, &s);
	assert_int_equal(s.count, 2);
	assert_string_equal(uidl(&s, 1), h);
	pathf(h + strlen(h), sizeof(h) - strlen(h), "-1");
	assert_string_equal(uidl(&s, 0), h);
	mbox_snapshot_free(&s);
}

static void test_uidl_duplicates(void **state)
{
	static const char m[] = "From a Mon Jan  1 00:00:00 2024\nSubject: same\n\nbody\n\n";
	char t[512], base[POP3_UIDL_MAX + 1], want[POP3_UIDL_MAX + 1];
	struct mbox_snapshot s;

	(void)state;
	pathf(t, sizeof(t), "%s%s%s", m, m, m);
	parse_s(t, &s);
	assert_int_equal(s.count, 3);
	snprintf(base, sizeof(base), "%s", uidl(&s, 0));
	assert_int_equal(strlen(base), MBOX_HASH_UIDL_HEX);
	pathf(want, sizeof(want), "%s-1", base);
	assert_string_equal(uidl(&s, 1), want);
	pathf(want, sizeof(want), "%s-2", base);
	assert_string_equal(uidl(&s, 2), want);
	mbox_snapshot_free(&s);
}

static struct mbox_handle *open_ok(const struct fx *f)
{
	struct mbox_handle *h = NULL;
	const char *err = NULL;
	int r = mbox_open(f->box, &h, &err);

	if (r != MBOX_OK)
		fail_msg("mbox_open: %d %s", r, err);
	assert_non_null(h);
	return h;
}

static void scan_ok(struct mbox_handle *h, struct mbox_snapshot *s)
{
	const char *err = NULL;
	int r = mbox_scan(h, s, &err);

	if (r != MBOX_OK)
		fail_msg("mbox_scan: %d %s", r, err);
}

/* Read message I through mbox_msg_read in odd pieces and compare with WANT. */
static void assert_read(struct mbox_handle *h, const struct mbox_snapshot *s, size_t i,
                        const char *want)
{
	char buf[4096];
	size_t got, total = 0, wl = strlen(want);

	for (;;) {
		assert_int_equal(mbox_msg_read(h, s, i, total, buf, 3, &got), MBOX_OK);
		if (got == 0)
			break;
		assert_true(total + got <= wl);
		assert_memory_equal(buf, want + total, got);
		total += got;
	}
	assert_int_equal(total, wl);
}

static void test_file_scan_read(void **state)
{
	struct fx *f = *state;
	static const char t[] = "From a x\nSubject: 1\n\none\n\nFrom b x\nSubject: 2\n\ntwo\n\n";
	struct mbox_snapshot s;
	struct mbox_handle *h;

	put(f->box, t, strlen(t));
	h = open_ok(f);
	scan_ok(h, &s);
	assert_int_equal(s.count, 2);
	assert_read(h, &s, 0, "Subject: 1\n\none\n");
	assert_read(h, &s, 1, "Subject: 2\n\ntwo\n");
	/* Mail delivered during the session is not part of it. */
	append(f->box, "From c x\nSubject: 3\n\nthree\n\n");
	assert_read(h, &s, 1, "Subject: 2\n\ntwo\n");
	/* The dotlock is gone after the scan. */
	assert_int_equal(access(f->lock, F_OK), -1);
	/* A file cut shorter than at scan time: reads fail rather than send garbage. */
	assert_int_equal(truncate(f->box, 10), 0);
	{
		char buf[16];
		size_t got = 99;

		assert_int_equal(mbox_msg_read(h, &s, 1, 0, buf, sizeof(buf), &got), MBOX_ERR_TEMP);
		assert_int_equal(got, 0);
		assert_non_null(strstr(mbox_last_error(), f->box));
	}
	mbox_snapshot_free(&s);
	mbox_close(h);
}

static void test_file_empty_and_missing(void **state)
{
	struct fx *f = *state;
	struct mbox_snapshot s;
	struct mbox_handle *h;
	unsigned char del[1] = {1};
	const char *err;

	h = open_ok(f); /* missing */
	scan_ok(h, &s);
	assert_int_equal(s.count, 0);
	assert_int_equal(mbox_update(h, &s, del, &err), MBOX_OK);
	assert_int_equal(access(f->box, F_OK), -1); /* never created */
	mbox_snapshot_free(&s);
	mbox_close(h);
	put(f->box, "", 0);
	h = open_ok(f);
	scan_ok(h, &s);
	assert_int_equal(s.count, 0);
	assert_int_equal(s.total_size, 0);
	mbox_snapshot_free(&s);
	mbox_close(h);
}

static void test_file_not_mbox(void **state)
{
	struct fx *f = *state;
	static const char t[] = "Subject: not an mbox\n\nbody\n";
	struct mbox_snapshot s;
	struct mbox_handle *h;
	const char *err = NULL;

	put(f->box, t, strlen(t));
	h = open_ok(f);
	assert_int_equal(mbox_scan(h, &s, &err), MBOX_ERR_PERM);
	assert_non_null(strstr(err, "not an mbox"));
	assert_non_null(strstr(err, f->box));
	assert_int_equal(s.count, 0);
	mbox_close(h);
}

static void test_file_refused(void **state)
{
	struct fx *f = *state;
	struct mbox_handle *h = NULL;
	const char *err = NULL;
	char other[192], hard[192];

	pathf(other, sizeof(other), "%s/other", f->top);
	pathf(hard, sizeof(hard), "%s/link", f->top);
	put(other, "From a x\n\n", 10);
	assert_int_equal(symlink(other, f->box), 0);
	assert_int_equal(mbox_open(f->box, &h, &err), MBOX_ERR_PERM);
	assert_null(h);
	assert_int_equal(unlink(f->box), 0);
	assert_int_equal(link(other, f->box), 0); /* a hard link to someone else's file */
	assert_int_equal(mbox_open(f->box, &h, &err), MBOX_ERR_PERM);
	assert_int_equal(unlink(f->box), 0);
	assert_int_equal(mkfifo(f->box, 0600), 0);
	assert_int_equal(mbox_open(f->box, &h, &err), MBOX_ERR_PERM);
	assert_int_equal(unlink(f->box), 0);
	if (geteuid() == 0) {
		put(f->box, "From a x\n\n", 10);
		assert_int_equal(chown(f->box, 65534, 65534), 0);
		assert_int_equal(mbox_open(f->box, &h, &err), MBOX_ERR_PERM);
		assert_non_null(strstr(err, "owned"));
	}
}

static void test_session_lock(void **state)
{
	struct fx *f = *state;
	struct mbox_handle *a, *b = NULL;
	const char *err = NULL;
	int status;
	pid_t pid;

	put(f->box, "From a x\n\n", 10);
	a = open_ok(f);
	assert_int_equal(mbox_open(f->box, &b, &err), MBOX_ERR_INUSE);
	assert_null(b);
	pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		struct mbox_handle *c = NULL;
		const char *e = NULL;

		_exit(mbox_open(f->box, &c, &e) == MBOX_ERR_INUSE ? 0 : 1);
	}
	assert_int_equal(waitpid(pid, &status, 0), pid);
	assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 0);
	/* The session lock does not keep delivery out: a scan (dotlock + fcntl) still works
	 * while the other session is open, as an MDA's locking would. */
	{
		struct mbox_snapshot s;

		scan_ok(a, &s);
		assert_int_equal(s.count, 1);
		mbox_snapshot_free(&s);
	}
	mbox_close(a);
	b = open_ok(f);
	mbox_close(b);
}

/* Build an mbox of N messages, skipping those with SKIP[I] set, into BUF. */
static size_t build(char *buf, size_t size, size_t n, const unsigned char *skip)
{
	static char fill[501];
	size_t len = 0;

	memset(fill, 'x', sizeof(fill) - 1);

	for (size_t i = 0; i < n; i++) {
		int k;

		if (skip != NULL && skip[i])
			continue;
		k = snprintf(buf + len, size - len,
		             "From sender%zu@example.org Mon Jan  1 00:00:%02zu 2024\n"
		             "Subject: message %zu\nMessage-ID: <%zu@example.org>\n\n"
		             "Body of %zu.\n>From quoted\n%.*s\n\n", /* filler: sizes differ */
		             i, i % 60, i, i, i, (int)(i * 37 % 500), "");
		assert_true(k > 0 && (size_t)k < size - len);
		len += (size_t)k;
	}
	return len;
}

static void test_update_basic(void **state)
{
	struct fx *f = *state;
	static char old[65536], want[65536];
	unsigned char del[8] = {0, 1, 0, 1, 1, 0, 0, 1};
	char uidls[8][POP3_UIDL_MAX + 1];
	struct mbox_snapshot s;
	struct mbox_handle *h;
	struct stat st0, st1;
	const char *err = NULL;
	size_t len, wl, gl;
	char *got;

	len = build(old, sizeof(old), 8, NULL);
	put(f->box, old, len);
	assert_int_equal(chmod(f->box, 0640), 0);
	assert_int_equal(stat(f->box, &st0), 0);
	h = open_ok(f);
	scan_ok(h, &s);
	assert_int_equal(s.count, 8);
	for (size_t i = 0; i < 8; i++)
		snprintf(uidls[i], sizeof(uidls[i]), "%s", uidl(&s, i));
	/* Mail delivered after the scan survives the UPDATE, byte for byte. */
	append(f->box, "From late x\nSubject: late\n\nlate\n\n");
	assert_int_equal(mbox_update(h, &s, del, &err), MBOX_OK);
	mbox_snapshot_free(&s);
	wl = build(want, sizeof(want), 8, del);
	pathf(want + wl, sizeof(want) - wl, "From late x\nSubject: late\n\nlate\n\n");
	wl = strlen(want);
	got = slurp(f->box, &gl);
	assert_int_equal(gl, wl);
	assert_memory_equal(got, want, wl);
	free(got);
	assert_int_equal(stat(f->box, &st1), 0);
	assert_int_not_equal(st1.st_ino, st0.st_ino);
	assert_int_equal(st1.st_mode & 07777, 0640);
	assert_int_equal(st1.st_gid, st0.st_gid);
	assert_int_equal(access(f->tmp, F_OK), -1);
	assert_int_equal(access(f->lock, F_OK), -1);
	/* The handle keeps the session lock on the new file. */
	{
		struct mbox_handle *b = NULL;

		assert_int_equal(mbox_open(f->box, &b, &err), MBOX_ERR_INUSE);
	}
	mbox_close(h);
	/* The kept messages have the UIDLs they had. */
	h = open_ok(f);
	scan_ok(h, &s);
	assert_int_equal(s.count, 5);
	{
		size_t j = 0;

		for (size_t i = 0; i < 8; i++)
			if (!del[i])
				assert_string_equal(uidl(&s, j++), uidls[i]);
	}
	mbox_snapshot_free(&s);
	mbox_close(h);
}

static void test_update_nothing_deleted(void **state)
{
	struct fx *f = *state;
	static char old[65536];
	unsigned char del[4] = {0};
	struct mbox_snapshot s;
	struct mbox_handle *h;
	struct stat st0, st1;
	const char *err = NULL;
	size_t len;

	len = build(old, sizeof(old), 4, NULL);
	put(f->box, old, len);
	assert_int_equal(stat(f->box, &st0), 0);
	h = open_ok(f);
	scan_ok(h, &s);
	assert_int_equal(mbox_update(h, &s, del, &err), MBOX_OK);
	assert_int_equal(stat(f->box, &st1), 0);
	assert_int_equal(st1.st_ino, st0.st_ino);
	assert_true(st1.st_mtim.tv_sec == st0.st_mtim.tv_sec &&
	            st1.st_mtim.tv_nsec == st0.st_mtim.tv_nsec);
	mbox_snapshot_free(&s);
	mbox_close(h);
}

static void test_update_all_deleted(void **state)
{
	struct fx *f = *state;
	static char old[65536];
	unsigned char del[3] = {1, 1, 1};
	struct mbox_snapshot s;
	struct mbox_handle *h;
	struct stat st;
	const char *err = NULL;
	size_t len;

	len = build(old, sizeof(old), 3, NULL);
	put(f->box, old, len);
	assert_int_equal(chmod(f->box, 0660), 0);
	h = open_ok(f);
	scan_ok(h, &s);
	assert_int_equal(mbox_update(h, &s, del, &err), MBOX_OK);
	assert_int_equal(stat(f->box, &st), 0);
	assert_true(S_ISREG(st.st_mode));
	assert_int_equal(st.st_size, 0);
	assert_int_equal(st.st_mode & 07777, 0660);
	mbox_snapshot_free(&s);
	mbox_close(h);
}

/* The file changed behind our back (another program rewrote it): nothing is written. */
static void test_update_file_changed(void **state)
{
	struct fx *f = *state;
	static char old[65536];
	unsigned char del[3] = {1, 0, 0};
	struct mbox_snapshot s;
	struct mbox_handle *h;
	const char *err = NULL;
	size_t len, gl;
	char *got;

	len = build(old, sizeof(old), 3, NULL);
	put(f->box, old, len);
	h = open_ok(f);
	scan_ok(h, &s);
	assert_int_equal(truncate(f->box, (off_t)len - 1), 0);
	assert_int_equal(mbox_update(h, &s, del, &err), MBOX_ERR_TEMP);
	got = slurp(f->box, &gl);
	assert_int_equal(gl, len - 1);
	assert_memory_equal(got, old, gl);
	free(got);
	assert_int_equal(access(f->tmp, F_OK), -1);
	assert_int_equal(access(f->lock, F_OK), -1);
	mbox_snapshot_free(&s);
	mbox_close(h);
}

/* A spool directory the user cannot write (Debian's /var/mail, root:mail 2775, for a user outside
 * the mail group): the dotlock works through liblockfile's setgid helper, the temporary file
 * cannot be created: MBOX_ERR_PERM and the old file untouched. */
static void test_update_dir_not_writable(void **state)
{
	struct fx *f = *state;
	static char old[65536];
	struct group *g = getgrnam("mail");
	int status;
	size_t len;
	pid_t pid;

	if (geteuid() != 0 || g == NULL || access("/usr/bin/dotlockfile", X_OK) != 0)
		skip();
	len = build(old, sizeof(old), 3, NULL);
	put(f->box, old, len);
	assert_int_equal(chown(f->box, 65534, 65534), 0);
	assert_int_equal(chown(f->top, 0, g->gr_gid), 0);
	assert_int_equal(chmod(f->top, 02775), 0);
	pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		unsigned char del[3] = {1, 0, 0};
		struct mbox_snapshot s;
		struct mbox_handle *h = NULL;
		const char *e = NULL;
		gid_t gid = 65534;

		if (setgroups(1, &gid) < 0 || setgid(65534) < 0 || setuid(65534) < 0)
			_exit(2);
		if (mbox_open(f->box, &h, &e) != MBOX_OK)
			_exit(3);
		if (mbox_scan(h, &s, &e) != MBOX_OK) {
			fprintf(stderr, "scan: %s\n", e);
			_exit(4);
		}
		if (mbox_update(h, &s, del, &e) != MBOX_ERR_PERM) {
			fprintf(stderr, "update: %s\n", e);
			_exit(5);
		}
		_exit(0);
	}
	assert_int_equal(waitpid(pid, &status, 0), pid);
	assert_true(WIFEXITED(status));
	assert_int_equal(WEXITSTATUS(status), 0);
	{
		size_t gl;
		char *got = slurp(f->box, &gl);

		assert_int_equal(gl, len);
		assert_memory_equal(got, old, len);
		free(got);
	}
	assert_int_equal(access(f->tmp, F_OK), -1);
	assert_int_equal(access(f->lock, F_OK), -1);
	assert_int_equal(chmod(f->top, 0700), 0);
}

static void test_leftover_tmp_removed(void **state)
{
	struct fx *f = *state;
	struct mbox_handle *h;

	put(f->box, "From a x\n\n", 10);
	put(f->tmp, "From a x\nhalf written", 21);
	h = open_ok(f);
	assert_int_equal(access(f->tmp, F_OK), -1);
	mbox_close(h);
}

/* A child holding a lock until we tell it to go. Returns its pid; *FD_R is our pipe end. */
static pid_t lock_holder(const struct fx *f, bool dotlock, int *fd_r)
{
	int go[2], ready[2];
	char c;
	pid_t pid;

	assert_int_equal(pipe(go), 0);
	assert_int_equal(pipe(ready), 0);
	pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		int fd = -1;

		close(go[1]);
		close(ready[0]);
		if (dotlock) {
			if (lockfile_create(f->lock, 0, L_PID) != L_SUCCESS)
				_exit(1);
		} else {
			struct flock fl = {.l_type = F_WRLCK, .l_whence = SEEK_SET};

			fd = open(f->box, O_RDWR);
			if (fd < 0 || fcntl(fd, F_SETLK, &fl) < 0)
				_exit(1);
		}
		if (write(ready[1], "R", 1) != 1)
			_exit(1);
		(void)read(go[0], &c, 1);
		if (dotlock)
			lockfile_remove(f->lock);
		_exit(0);
	}
	close(go[0]);
	close(ready[1]);
	assert_int_equal(read(ready[0], &c, 1), 1);
	close(ready[0]);
	*fd_r = go[1];
	return pid;
}

static void release_holder(pid_t pid, int fd)
{
	int status;

	assert_int_equal(write(fd, "G", 1), 1);
	close(fd);
	assert_int_equal(waitpid(pid, &status, 0), pid);
	assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 0);
}

static uint64_t ms_now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

static void check_lock_blocks(struct fx *f, bool dotlock)
{
	static char old[65536];
	unsigned char del[3] = {1, 0, 0};
	struct mbox_snapshot s;
	struct mbox_handle *h;
	const char *err = NULL;
	uint64_t t0, dt;
	size_t len, gl;
	char *got;
	int fd;
	pid_t pid;

	len = build(old, sizeof(old), 3, NULL);
	put(f->box, old, len);
	h = open_ok(f);
	scan_ok(h, &s);
	pid = lock_holder(f, dotlock, &fd);
	t0 = ms_now();
	{
		struct mbox_snapshot s2;

		assert_int_equal(mbox_scan(h, &s2, &err), MBOX_ERR_TEMP);
		assert_non_null(strstr(err, dotlock ? "dotlock" : "fcntl"));
	}
	dt = ms_now() - t0;
	assert_true(dt >= TEST_LOCK_WAIT_MS - 10 && dt < TEST_LOCK_WAIT_MS + 2000);
	assert_int_equal(mbox_update(h, &s, del, &err), MBOX_ERR_TEMP);
	got = slurp(f->box, &gl);
	assert_int_equal(gl, len);
	assert_memory_equal(got, old, len);
	free(got);
	assert_int_equal(access(f->tmp, F_OK), -1);
	/* Somebody else's dotlock is never removed by us. */
	if (dotlock)
		assert_int_equal(access(f->lock, F_OK), 0);
	release_holder(pid, fd);
	/* Once the holder is gone both work. */
	assert_int_equal(mbox_update(h, &s, del, &err), MBOX_OK);
	mbox_snapshot_free(&s);
	scan_ok(h, &s);
	assert_int_equal(s.count, 2);
	mbox_snapshot_free(&s);
	mbox_close(h);
}

static void test_dotlock_held(void **state)
{
	check_lock_blocks(*state, true);
}

static void test_fcntl_held(void **state)
{
	check_lock_blocks(*state, false);
}

/* A dotlock left by a dead process is stale and taken over. */
static void test_dotlock_stale(void **state)
{
	struct fx *f = *state;
	struct mbox_snapshot s;
	struct mbox_handle *h;
	int status;
	pid_t pid;

	put(f->box, "From a x\n\n", 10);
	pid = fork();
	assert_true(pid >= 0);
	if (pid == 0)
		_exit(lockfile_create(f->lock, 0, L_PID) == L_SUCCESS ? 0 : 1);
	assert_int_equal(waitpid(pid, &status, 0), pid);
	assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 0);
	assert_int_equal(access(f->lock, F_OK), 0);
	h = open_ok(f);
	scan_ok(h, &s);
	assert_int_equal(s.count, 1);
	assert_int_equal(access(f->lock, F_OK), -1);
	mbox_snapshot_free(&s);
	mbox_close(h);
}

static int update_child(const struct fx *f, const unsigned char *del)
{
	struct mbox_snapshot s;
	struct mbox_handle *h;
	const char *e = NULL;

	if (mbox_open(f->box, &h, &e) != MBOX_OK || mbox_scan(h, &s, &e) != MBOX_OK ||
	    mbox_update(h, &s, del, &e) != MBOX_OK)
		return 1;
	return 0;
}

/* kill -9 of an UPDATE at any moment leaves the old or the new mailbox, whole. */
static void test_update_crash(void **state)
{
	struct fx *f = *state;
	static char old[TEXT_MAX], want[TEXT_MAX];
	static unsigned char del[CRASH_MESSAGES];
	size_t n = CRASH_MESSAGES, len, wl;
	uint64_t t_full;
	int seen_old = 0, seen_new = 0;

	for (size_t i = 0; i < n; i++)
		del[i] = i % 3 == 0;
	len = build(old, sizeof(old), n, NULL);
	wl = build(want, sizeof(want), n, del);
	srandom((unsigned int)time(NULL));
	/* Time a complete UPDATE in a child, to spread the kills over all of it. */
	{
		uint64_t t0;
		int status;
		pid_t pid;

		put(f->box, old, len);
		t0 = ms_now();
		pid = fork();
		assert_true(pid >= 0);
		if (pid == 0)
			_exit(update_child(f, del));
		assert_int_equal(waitpid(pid, &status, 0), pid);
		assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 0);
		t_full = ms_now() - t0 + 1;
	}
	for (int round = 0; round < CRASH_ROUNDS; round++) {
		uint64_t t0 = ms_now();
		struct mbox_snapshot s;
		struct mbox_handle *h;
		size_t gl;
		char *got;
		int status;
		pid_t pid;
		long us;

		unlink(f->box);
		put(f->box, old, len);
		pid = fork();
		assert_true(pid >= 0);
		if (pid == 0)
			_exit(update_child(f, del));
		us = random() % (long)(t_full * 1200);
		usleep((useconds_t)us);
		kill(pid, SIGKILL);
		assert_int_equal(waitpid(pid, &status, 0), pid);
		assert_true(WIFSIGNALED(status) || (WIFEXITED(status) && WEXITSTATUS(status) == 0));
		got = slurp(f->box, &gl);
		if (gl == len && memcmp(got, old, len) == 0)
			seen_old++;
		else if (gl == wl && memcmp(got, want, wl) == 0)
			seen_new++;
		else
			fail_msg("round %d: mailbox is neither old nor new (%zu octets)", round,
			         gl);
		free(got);
		/* The next session cleans up and works. */
		h = open_ok(f);
		assert_int_equal(access(f->tmp, F_OK), -1);
		scan_ok(h, &s);
		assert_int_equal(s.count, gl == len ? n : n - (n + 2) / 3);
		mbox_snapshot_free(&s);
		mbox_close(h);
		assert_true(ms_now() - t0 < CRASH_ROUND_LIMIT * 1000u);
	}
	print_message("crash rounds: %d old, %d new (full update %llu ms)\n", seen_old, seen_new,
	              (unsigned long long)t_full);
	assert_int_equal(seen_old + seen_new, CRASH_ROUNDS);
}

/* Offsets and sizes are 64-bit: a sparse message of more than 4 GiB, and one after it. The scan
 * reads all 4 GiB (a minute on a busy small machine), so it runs only with GANNET_TEST_BIG=1. */
static void test_over_4gib(void **state)
{
	struct fx *f = *state;
	static const char head[] = "From a x\nSubject: big\n\n";
	static const char tail[] = "end\n\nFrom b x\nSubject: small\n\nsmall\n";
	const uint64_t hole = (UINT64_C(1) << 32) + 123;
	struct mbox_snapshot s;
	struct mbox_handle *h;
	char buf[8];
	size_t got;
	int fd;

	if (getenv("GANNET_TEST_BIG") == NULL)
		skip();
	fd = open(f->box, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	assert_true(fd >= 0);
	assert_int_equal(write(fd, head, strlen(head)), (ssize_t)strlen(head));
	assert_int_equal(pwrite(fd, tail, strlen(tail), (off_t)(strlen(head) + hole)),
	                 (ssize_t)strlen(tail));
	assert_int_equal(close(fd), 0);
	h = open_ok(f);
	scan_ok(h, &s);
	assert_int_equal(s.count, 2);
	/* NULs are plain octets: the encoder only adds the CR of "end\n". */
	assert_int_equal(mbox_msg_raw_len(&s, 0), strlen("Subject: big\n\n") + hole + 4);
	assert_int_equal(mbox_msg_size(&s, 0), strlen("Subject: big\n\n") + 2 + hole + 5);
	assert_int_equal(mbox_msg_raw_offset(&s, 1),
	                 strlen(head) + hole + strlen("end\n\nFrom b x\n"));
	assert_read(h, &s, 1, "Subject: small\n\nsmall\n");
	assert_int_equal(
	    mbox_msg_read(h, &s, 0, mbox_msg_raw_len(&s, 0) - 4, buf, sizeof(buf), &got), MBOX_OK);
	assert_int_equal(got, 4);
	assert_memory_equal(buf, "end\n", 4);
	mbox_snapshot_free(&s);
	mbox_close(h);
}

static void test_tmp_path(void **state)
{
	char buf[64];

	(void)state;
	assert_int_equal(mbox_update_tmp_path("/var/mail/alice", buf, sizeof(buf)), 0);
	assert_string_equal(buf, "/var/mail/.alice.gannet-update");
	assert_int_equal(mbox_update_tmp_path("alice", buf, sizeof(buf)), 0);
	assert_string_equal(buf, ".alice.gannet-update");
	assert_int_equal(mbox_update_tmp_path("/var/mail/", buf, sizeof(buf)), -1);
	assert_int_equal(mbox_update_tmp_path("/var/mail/alice", buf, 20), -1);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_parse_one),
	    cmocka_unit_test(test_parse_many),
	    cmocka_unit_test(test_parse_from_in_body),
	    cmocka_unit_test(test_parse_crlf),
	    cmocka_unit_test(test_parse_no_final_newline),
	    cmocka_unit_test(test_parse_stable_when_appended),
	    cmocka_unit_test(test_parse_not_mbox),
	    cmocka_unit_test(test_parse_broken_from),
	    cmocka_unit_test(test_parse_zero_length),
	    cmocka_unit_test(test_uidl_x_uidl),
	    cmocka_unit_test(test_uidl_x_uidl_takes_hash),
	    cmocka_unit_test(test_uidl_duplicates),
	    cmocka_unit_test(test_tmp_path),
	    cmocka_unit_test_setup_teardown(test_file_scan_read, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_file_empty_and_missing, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_file_not_mbox, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_file_refused, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_session_lock, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_update_basic, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_update_nothing_deleted, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_update_all_deleted, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_update_file_changed, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_update_dir_not_writable, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_leftover_tmp_removed, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_dotlock_held, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_fcntl_held, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_dotlock_stale, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_update_crash, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_over_4gib, setup, teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
