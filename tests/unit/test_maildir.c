/* Unit tests for lib/maildir.c and lib/maildir_lock.c: scan, sizes, order, UIDL, Seen renames,
 * locks (flock and dotlock), error classes. */
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <grp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <setjmp.h> /* cmocka needs these three before its header */
#include <stdarg.h>
#include <cmocka.h>

#include "maildir.h"

#define NOBODY 65534

/* Child exit codes for tests run without privileges. */
#define CHILD_SKIP 77
#define CHILD_BASE 10

struct fx {
	char top[64]; /* mkdtemp directory */
	char md[128]; /* TOP/Maildir, created with new/ cur/ tmp/ */
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

static void put(const struct fx *f, const char *sub, const char *name, const void *data, size_t len)
{
	char path[512];
	int fd;

	pathf(path, sizeof(path), "%s/%s/%s", f->md, sub, name);
	fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	assert_true(fd >= 0);
	assert_int_equal(write(fd, data, len), (ssize_t)len);
	assert_int_equal(close(fd), 0);
}

static void put_str(const struct fx *f, const char *sub, const char *name, const char *s)
{
	put(f, sub, name, s, strlen(s));
}

static void set_mtime(const struct fx *f, const char *sub, const char *name, time_t t)
{
	struct timespec ts[2] = {{.tv_sec = t}, {.tv_sec = t}};
	char path[512];

	pathf(path, sizeof(path), "%s/%s/%s", f->md, sub, name);
	assert_int_equal(utimensat(AT_FDCWD, path, ts, AT_SYMLINK_NOFOLLOW), 0);
}

static bool exists(const struct fx *f, const char *sub, const char *name)
{
	char path[512];
	struct stat st;

	pathf(path, sizeof(path), "%s/%s/%s", f->md, sub, name);
	return lstat(path, &st) == 0;
}

/* Message I's name or UIDL as a string, in four rotating buffers (enough for one assertion). */
static char strbuf[4][MAILDIR_NAME_BUF];
static unsigned strk;

static const char *nm(const struct maildir_snapshot *s, size_t i)
{
	return maildir_msg_name(s, i, strbuf[strk++ % 4]);
}

static const char *ud(const struct maildir_snapshot *s, size_t i)
{
	size_t len;
	const char *u = maildir_msg_uidl(s, i, &len);

	assert_true(len >= 1 && len <= POP3_UIDL_MAX);
	snprintf(strbuf[strk % 4], MAILDIR_NAME_BUF, "%.*s", (int)len, u);
	return strbuf[strk++ % 4];
}

static size_t find(const struct maildir_snapshot *s, const char *name)
{
	for (size_t i = 0; i < s->count; i++)
		if (strcmp(nm(s, i), name) == 0)
			return i;
	fail_msg("message %s not in the snapshot", name);
	return 0;
}

static int rm_cb(const char *path, const struct stat *st, int type, struct FTW *ftw)
{
	(void)st;
	(void)ftw;
	return type == FTW_DP ? rmdir(path) : unlink(path);
}

static void rm_rf(const char *path)
{
	nftw(path, rm_cb, 16, FTW_DEPTH | FTW_PHYS);
}

static int setup(void **state)
{
	struct fx *f = calloc(1, sizeof(*f));
	char p[256];

	assert_non_null(f);
	snprintf(f->top, sizeof(f->top), "/tmp/gannet-maildir-XXXXXX");
	assert_non_null(mkdtemp(f->top));
	/* Traversable, so that tests dropping to nobody can reach their own Maildir. */
	assert_int_equal(chmod(f->top, 0755), 0);
	pathf(f->md, sizeof(f->md), "%s/Maildir", f->top);
	assert_int_equal(mkdir(f->md, 0700), 0);
	for (int i = 0; i < 3; i++) {
		static const char *const sub[] = {"new", "cur", "tmp"};
		pathf(p, sizeof(p), "%s/%s", f->md, sub[i]);
		assert_int_equal(mkdir(p, 0700), 0);
	}
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	struct fx *f = *state;

	rm_rf(f->top);
	free(f);
	return 0;
}

static struct maildir_snapshot scan_ok(const struct fx *f)
{
	struct maildir_snapshot s;
	const char *error = NULL;
	int rc = maildir_scan(f->md, UIDL_SOURCE_GANNET, &s, &error);

	if (rc != MAILDIR_OK)
		fail_msg("maildir_scan: %d %s", rc, error != NULL ? error : "(no message)");
	return s;
}

/* S-052, edge cases 1, 3, 4, 9: sizes are CRLF wire sizes, NULs counted, final CRLF added. */
static void test_sizes(void **state)
{
	struct fx *f = *state;
	struct maildir_snapshot s;

	put_str(f, "new", "lf", "a\nb\n");
	put_str(f, "new", "crlf", "a\r\nb\r\n");
	put_str(f, "new", "mixed", "a\r\nb\nc\r\n");
	put_str(f, "new", "nofinal", "abc");
	put_str(f, "cur", "zero:2,S", "");
	put(f, "cur", "nul:2,", "a\0b\n", 4);
	s = scan_ok(f);
	assert_int_equal(s.count, 6);
	assert_int_equal(maildir_msg_size(&s, find(&s, "lf")), 6);
	assert_int_equal(maildir_msg_size(&s, find(&s, "crlf")), 6);
	assert_int_equal(maildir_msg_size(&s, find(&s, "mixed")), 9);
	assert_int_equal(maildir_msg_size(&s, find(&s, "nofinal")), 5);
	assert_int_equal(maildir_msg_size(&s, find(&s, "zero:2,S")), 0);
	assert_int_equal(maildir_msg_size(&s, find(&s, "nul:2,")), 5);
	assert_int_equal(s.total_size, 31);
	assert_true(maildir_msg_in_new(&s, find(&s, "lf")));
	assert_false(maildir_msg_in_new(&s, find(&s, "nul:2,")));
	maildir_snapshot_free(&s);
	assert_int_equal(s.count, 0);
	assert_null(s.arena.p);
}

/* A CRLF split across two 64 KiB reads is one line ending, not a bare CR plus a bare LF. */
static void test_chunk_boundary(void **state)
{
	struct fx *f = *state;
	struct maildir_snapshot s;
	size_t len = RETR_CHUNK + 3;
	char *buf = malloc(len);

	assert_non_null(buf);
	memset(buf, 'a', RETR_CHUNK - 1);
	memcpy(buf + RETR_CHUNK - 1, "\r\nb\n", 4);
	put(f, "new", "split", buf, len);
	memcpy(buf + RETR_CHUNK - 1, "\nbc", 3);
	put(f, "new", "lfsplit", buf, RETR_CHUNK + 2);
	free(buf);
	s = scan_ok(f);
	assert_int_equal(maildir_msg_size(&s, find(&s, "split")), RETR_CHUNK - 1 + 2 + 3);
	assert_int_equal(maildir_msg_size(&s, find(&s, "lfsplit")), RETR_CHUNK - 1 + 2 + 4);
	maildir_snapshot_free(&s);
}

static void test_large_message(void **state)
{
	struct fx *f = *state;
	struct maildir_snapshot s;
	size_t len = 2 * 1024 * 1024;
	char *buf = malloc(len);

	assert_non_null(buf);
	/* 32768 lines of 63 'x' and LF: each LF becomes CRLF. */
	for (size_t i = 0; i < len; i += 64) {
		memset(buf + i, 'x', 63);
		buf[i + 63] = '\n';
	}
	put(f, "cur", "big:2,S", buf, len);
	free(buf);
	s = scan_ok(f);
	assert_int_equal(s.count, 1);
	assert_int_equal(maildir_msg_size(&s, 0), 2097152 + 32768);
	assert_int_equal(s.total_size, 2129920);
	maildir_snapshot_free(&s);
}

/* Edge case 10: a 64-bit size. A sparse file, so it costs no disk; gated because reading 4 GiB
 * through the encoder takes seconds (longer under ASan). */
static void test_over_4gib(void **state)
{
	struct fx *f = *state;
	struct maildir_snapshot s;
	const off_t len = ((off_t)1 << 32) + 1;
	char path[512];
	int fd;

	if (getenv("GANNET_SLOW_TESTS") == NULL)
		skip(); /* set GANNET_SLOW_TESTS=1 to run */
	pathf(path, sizeof(path), "%s/new/huge", f->md);
	fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
	assert_true(fd >= 0);
	if (ftruncate(fd, len - 1) < 0) {
		close(fd);
		skip();
	}
	assert_int_equal(pwrite(fd, "x", 1, len - 1), 1);
	close(fd);
	put_str(f, "new", "small", "a\n");
	s = scan_ok(f);
	/* + CRLF for the last line */
	assert_int_equal(maildir_msg_size(&s, find(&s, "huge")), 4294967299ULL);
	assert_int_equal(s.total_size, 4294967299ULL + 3);
	maildir_snapshot_free(&s);
}

/* S-140, edge case 31: tmp/, dot files and anything but regular files are never listed, and a
 * FIFO does not block the scan. */
static void test_skips_non_messages(void **state)
{
	struct fx *f = *state;
	struct maildir_snapshot s;
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	char path[512];
	int sock, lock;

	alarm(20); /* a scan blocked on the FIFO fails the run instead of hanging it */
	put_str(f, "new", "real", "hello\n");
	put_str(f, "tmp", "inflight", "partial");
	put_str(f, "cur", ".hidden", "x\n");
	put_str(f, "new", ".also-hidden:2,S", "x\n");
	pathf(path, sizeof(path), "%s/cur/link:2,S", f->md);
	assert_int_equal(symlink("../new/real", path), 0);
	pathf(path, sizeof(path), "%s/cur/dangling", f->md);
	assert_int_equal(symlink("/nonexistent", path), 0);
	pathf(path, sizeof(path), "%s/cur/fifo", f->md);
	assert_int_equal(mkfifo(path, 0600), 0);
	pathf(path, sizeof(path), "%s/cur/subdir", f->md);
	assert_int_equal(mkdir(path, 0700), 0);
	pathf(sa.sun_path, sizeof(sa.sun_path), "%s/cur/sock", f->md);
	sock = socket(AF_UNIX, SOCK_STREAM, 0);
	assert_true(sock >= 0);
	assert_int_equal(bind(sock, (struct sockaddr *)&sa, sizeof(sa)), 0);
	lock = maildir_lock(f->md);
	assert_true(lock >= 0);

	s = scan_ok(f);
	assert_int_equal(s.count, 1);
	assert_string_equal(nm(&s, 0), "real");
	assert_int_equal(s.total_size, 7);
	maildir_snapshot_free(&s);
	maildir_unlock(lock);
	close(sock);
	alarm(0);
}

/* Delivery order: mtime, then the unique part, across new/ and cur/. */
static void test_order(void **state)
{
	struct fx *f = *state;
	struct maildir_snapshot s;

	put_str(f, "new", "a", "1\n");
	put_str(f, "cur", "b", "2\n");
	put_str(f, "cur", "c:2,S", "3\n");
	put_str(f, "new", "d", "4\n");
	put_str(f, "cur", "e:2,RS", "5\n");
	set_mtime(f, "new", "a", 2000000000);
	set_mtime(f, "cur", "b", 1000000000);
	set_mtime(f, "cur", "c:2,S", 1000000000);
	set_mtime(f, "new", "d", 500000000);
	set_mtime(f, "cur", "e:2,RS", 1500000000);
	s = scan_ok(f);
	assert_int_equal(s.count, 5);
	assert_string_equal(nm(&s, 0), "d");
	assert_string_equal(nm(&s, 1), "b");
	assert_string_equal(nm(&s, 2), "c:2,S");
	assert_string_equal(nm(&s, 3), "e:2,RS");
	assert_string_equal(nm(&s, 4), "a");
	assert_int_equal(maildir_msg_mtime(&s, 0), 500000000);
	maildir_snapshot_free(&s);
}

/* Setting Seen must not move a message in the order: "x1" sorts before "x10" before and after
 * it became "x1:2,S" (a plain strcmp would put "x10" first then). */
static void test_order_stable_after_seen(void **state)
{
	struct fx *f = *state;
	struct maildir_snapshot s;

	put_str(f, "new", "x1", "1\n");
	put_str(f, "new", "x10", "2\n");
	set_mtime(f, "new", "x1", 1000000000);
	set_mtime(f, "new", "x10", 1000000000);
	s = scan_ok(f);
	assert_string_equal(nm(&s, 0), "x1");
	assert_int_equal(maildir_mark_seen(f->md, &s, 0), 0);
	assert_string_equal(nm(&s, 0), "x1:2,S");
	maildir_snapshot_free(&s);
	s = scan_ok(f);
	assert_string_equal(nm(&s, 0), "x1:2,S");
	assert_string_equal(nm(&s, 1), "x10");
	maildir_snapshot_free(&s);
}

/* Many messages: the array grows past several doublings and stays sorted. */
static void test_many_messages(void **state)
{
	struct fx *f = *state;
	struct maildir_snapshot s;
	char name[64];

	for (int i = 0; i < 3000; i++) {
		pathf(name, sizeof(name), "%d.M%dP1.host", 1700000000 + i, i);
		put_str(f, i % 2 ? "cur" : "new", name, "m\n");
		set_mtime(f, i % 2 ? "cur" : "new", name, 1700000000 + i);
	}
	s = scan_ok(f);
	assert_int_equal(s.count, 3000);
	assert_int_equal(s.total_size, 3000 * 3);
	for (size_t i = 0; i < s.count; i++) {
		pathf(name, sizeof(name), "%d.M%dP1.host", 1700000000 + (int)i, (int)i);
		assert_string_equal(nm(&s, i), name);
		assert_string_equal(ud(&s, i), name);
	}
	maildir_snapshot_free(&s);
}

/* RFC 1939 §7: one UIDL names one message; a second copy of a unique name is not listed. */
static void test_duplicate_unique_name(void **state)
{
	struct fx *f = *state;
	struct maildir_snapshot s;

	put_str(f, "new", "dup", "one\n");
	put_str(f, "cur", "dup:2,S", "two!\n");
	put_str(f, "cur", "dup,S=4:2,FS", "three\n");
	put_str(f, "cur", "other", "x\n");
	set_mtime(f, "new", "dup", 1000);
	set_mtime(f, "cur", "dup:2,S", 1000);
	set_mtime(f, "cur", "dup,S=4:2,FS", 1000);
	set_mtime(f, "cur", "other", 2000);
	s = scan_ok(f);
	assert_int_equal(s.count, 2);
	/* Same mtime and unique part: the shortest full name, new/dup, comes first and stays. */
	assert_string_equal(nm(&s, 0), "dup");
	assert_true(maildir_msg_in_new(&s, 0));
	assert_string_equal(ud(&s, 0), "dup");
	assert_string_equal(nm(&s, 1), "other");
	assert_int_equal(s.total_size, 5 + 3);
	maildir_snapshot_free(&s);
}

static bool uidl_legal(const char *u)
{
	size_t n = strlen(u);

	if (n < 1 || n > POP3_UIDL_MAX)
		return false;
	for (size_t i = 0; i < n; i++)
		if ((unsigned char)u[i] < 0x21 || (unsigned char)u[i] > 0x7e)
			return false;
	return true;
}

static void check_uidl(const char *name, const char *want)
{
	char out[POP3_UIDL_MAX + 1];

	maildir_uidl(name, out);
	assert_string_equal(out, want);
	assert_true(uidl_legal(out));
}

/* S-064, S-138, S-139, edge cases 13, 14, 30. */
static void test_uidl(void **state)
{
	char a70[71], a71[72], buf[128];
	const char *h80 = "Hb7236f5927567f6813f6cdc8b1a7f63af5bab711";
	const char *dovecot =
	    "1136731697.M580106P15382V0000000000000303I0009030C_0.host.example.org";

	(void)state;
	/* The classic Dovecot name: its unique part is 69 characters, so it is used as it is. */
	check_uidl(
	    "1136731697.M580106P15382V0000000000000303I0009030C_0.host.example.org,S=1234:2,S",
	    dovecot);
	check_uidl(dovecot, dovecot);
	/* An 80-character unique part is hashed: "H" + 40 hex, whatever the flags and sizes. */
	check_uidl(
	    "1136731697.M580106P15382V0000000000000303I0009030C_0.host.example.org.xxxxxxxxxx",
	    h80);
	check_uidl(
	    "1136731697.M580106P15382V0000000000000303I0009030C_0.host.example.org.xxxxxxxxxx"
	    ",S=1234,W=1300:2,FS",
	    h80);
	assert_int_equal(strlen(h80), 41);
	/* A space (hostname escapes gone wrong), 8-bit bytes and DEL are outside 0x21..0x7E. */
	check_uidl("abc def:2,S", "H010971ea0013a09d91df437de2cd6f66df4dbdf7");
	check_uidl("abc def", "H010971ea0013a09d91df437de2cd6f66df4dbdf7");
	check_uidl("\xc3\xa9t\xc3\xa9", "Hbd010c64132bf5cae8aea89f6762515727dcf68a");
	check_uidl("a\x7f"
	           "b:2,",
	           "H4ef992561c6efb5dd9dc8e156a4bf8d702ebceb3");
	/* Plain names, with and without info, ",S=" and ",W=". */
	check_uidl("1700000000.M1P2.host", "1700000000.M1P2.host");
	check_uidl("1700000000.M1P2.host:2,", "1700000000.M1P2.host");
	check_uidl("1700000000.M1P2.host:2,S", "1700000000.M1P2.host");
	check_uidl("1700000000.M1P2.host,S=123,W=456", "1700000000.M1P2.host");
	check_uidl("1700000000.M1P2.host,S=123,W=456:2,FRS", "1700000000.M1P2.host");
	/* Edge case 30: a ':' that does not start ":2," belongs to the unique part. */
	check_uidl("a:b", "a:b");
	check_uidl("a:b:2,S", "a:b");
	check_uidl("x:1,foo", "x:1");
	check_uidl("x:1,foo:2,S", "x:1");
	/* An empty unique part still gives a legal UIDL (SHA-256 of ""). */
	check_uidl(":2,S", "He3b0c44298fc1c149afbf4c8996fb92427ae41e4");
	check_uidl(",S=12", "He3b0c44298fc1c149afbf4c8996fb92427ae41e4");
	/* The 70-character bound. */
	memset(a70, 'a', 70);
	a70[70] = '\0';
	check_uidl(a70, a70);
	memset(a71, 'a', 71);
	a71[71] = '\0';
	check_uidl(a71, "Heefa4cfbea79400c2f4239e1f702e02ebece761f");
	pathf(buf, sizeof(buf), "%s:2,S", a70);
	check_uidl(buf, a70);
}

/* S-138: new/N -> cur/N:2,S, and the UIDL stays the same in this session and the next. */
static void test_mark_seen_new(void **state)
{
	struct fx *f = *state;
	const char *name =
	    "1136731697.M580106P15382V0000000000000303I0009030C_0.host.example.org.xxxxxxxxxx,S=3";
	struct maildir_snapshot s;
	char before[POP3_UIDL_MAX + 1], now[POP3_UIDL_MAX + 1];

	put_str(f, "new", name, "hi\n");
	s = scan_ok(f);
	snprintf(before, sizeof(before), "%s", ud(&s, 0));
	assert_int_equal(maildir_mark_seen(f->md, &s, 0), 0);
	assert_false(maildir_msg_in_new(&s, 0));
	assert_string_equal(nm(&s, 0) + strlen(name), ":2,S");
	assert_false(exists(f, "new", name));
	assert_true(exists(f, "cur", nm(&s, 0)));
	maildir_uidl(nm(&s, 0), now);
	assert_string_equal(now, before);
	assert_string_equal(ud(&s, 0), before);
	/* A second call is a no-op. */
	assert_int_equal(maildir_mark_seen(f->md, &s, 0), 0);
	assert_true(exists(f, "cur", nm(&s, 0)));
	maildir_snapshot_free(&s);
	s = scan_ok(f);
	assert_int_equal(s.count, 1);
	assert_string_equal(ud(&s, 0), before);
	assert_false(maildir_msg_in_new(&s, 0));
	maildir_snapshot_free(&s);
}

static void seen_case(const struct fx *f, const char *from, const char *want)
{
	struct maildir_snapshot s;
	char before[POP3_UIDL_MAX + 1], now[POP3_UIDL_MAX + 1];
	size_t i;

	put_str(f, "cur", from, "x\n");
	s = scan_ok(f);
	i = find(&s, from);
	maildir_uidl(from, before);
	assert_string_equal(ud(&s, i), before);
	assert_int_equal(maildir_mark_seen(f->md, &s, i), 0);
	assert_string_equal(nm(&s, i), want);
	assert_false(maildir_msg_in_new(&s, i));
	assert_true(exists(f, "cur", want));
	if (strcmp(from, want) != 0)
		assert_false(exists(f, "cur", from));
	maildir_uidl(nm(&s, i), now);
	assert_string_equal(now, before);
	assert_string_equal(ud(&s, i), before);
	maildir_snapshot_free(&s);
}

/* S-141: flags stay in ASCII order, S already there means no rename. */
static void test_mark_seen_flags(void **state)
{
	struct fx *f = *state;

	seen_case(f, "x:2,FR", "x:2,FRS");
	seen_case(f, "y:2,T", "y:2,ST");
	seen_case(f, "z:2,", "z:2,S");
	seen_case(f, "w:2,DS", "w:2,DS");
	seen_case(f, "v", "v:2,S");
	seen_case(f, "u:2,Fa", "u:2,FSa");
	seen_case(f, "t,S=2,W=3:2,DFPRT", "t,S=2,W=3:2,DFPRST");
	seen_case(f, "a:b", "a:b:2,S");
	/* Infos that are not sorted letters are kept as they are, S inserted as before. */
	seen_case(f, "r:2,RF", "r:2,RFS");
	seen_case(f, "q:2,F,x", "q:2,F,Sx");
	seen_case(f, "p:2,1", "p:2,1S");
	seen_case(f, "o:2,FF", "o:2,FFS");
}

/* The rename never replaces another file that already carries the target name. */
static void test_mark_seen_no_clobber(void **state)
{
	struct fx *f = *state;
	struct maildir_snapshot s;
	char path[512], buf[16];
	ssize_t n;
	int fd;

	put_str(f, "new", "k", "new copy\n");
	put_str(f, "cur", "k:2,S", "cur copy\n");
	set_mtime(f, "new", "k", 1000);
	set_mtime(f, "cur", "k:2,S", 1000);
	/* One unique part: the scan keeps new/k (same mtime, shorter name). */
	s = scan_ok(f);
	assert_int_equal(s.count, 1);
	assert_string_equal(nm(&s, 0), "k");
	errno = 0;
	assert_int_equal(maildir_mark_seen(f->md, &s, 0), -1);
	assert_int_equal(errno, EEXIST);
	assert_string_equal(nm(&s, 0), "k");
	assert_true(maildir_msg_in_new(&s, 0));
	maildir_snapshot_free(&s);
	pathf(path, sizeof(path), "%s/cur/k:2,S", f->md);
	fd = open(path, O_RDONLY);
	assert_true(fd >= 0);
	n = read(fd, buf, sizeof(buf));
	close(fd);
	assert_int_equal(n, 9);
	assert_memory_equal(buf, "cur copy\n", 9);
	assert_true(exists(f, "new", "k"));
}

static void test_open_msg(void **state)
{
	struct fx *f = *state;
	struct maildir_snapshot s;
	char path[512], buf[16];
	ssize_t n;
	int fd;

	alarm(20);
	put_str(f, "cur", "msg:2,S", "body\n");
	s = scan_ok(f);
	fd = maildir_open_msg(f->md, &s, 0);
	assert_true(fd >= 0);
	n = read(fd, buf, sizeof(buf));
	assert_int_equal(n, 5);
	assert_memory_equal(buf, "body\n", 5);
	close(fd);

	/* S-142: removed from outside. */
	pathf(path, sizeof(path), "%s/cur/msg:2,S", f->md);
	assert_int_equal(unlink(path), 0);
	errno = 0;
	assert_int_equal(maildir_open_msg(f->md, &s, 0), -1);
	assert_int_equal(errno, ENOENT);

	/* Swapped for a symlink or a FIFO after the scan. */
	assert_int_equal(symlink("/etc/passwd", path), 0);
	errno = 0;
	assert_int_equal(maildir_open_msg(f->md, &s, 0), -1);
	assert_int_equal(errno, ELOOP);
	assert_int_equal(unlink(path), 0);
	assert_int_equal(mkfifo(path, 0600), 0);
	errno = 0;
	assert_int_equal(maildir_open_msg(f->md, &s, 0), -1);
	assert_int_equal(errno, EINVAL);
	maildir_snapshot_free(&s);
	alarm(0);
}

static void test_unlink(void **state)
{
	struct fx *f = *state;
	struct maildir_snapshot s;

	put_str(f, "new", "n1", "x\n");
	put_str(f, "cur", "c1:2,S", "y\n");
	s = scan_ok(f);
	assert_int_equal(s.count, 2);
	for (size_t i = 0; i < s.count; i++) {
		assert_int_equal(maildir_unlink_msg(f->md, &s, i), 0);
		/* Already gone counts as done. */
		assert_int_equal(maildir_unlink_msg(f->md, &s, i), 0);
	}
	assert_false(exists(f, "new", "n1"));
	assert_false(exists(f, "cur", "c1:2,S"));
	maildir_snapshot_free(&s);
	s = scan_ok(f);
	assert_int_equal(s.count, 0);
	assert_int_equal(s.total_size, 0);
	maildir_snapshot_free(&s);
}

/* S-019, S-021: one session per maildrop, even two sessions in the same process. */
static void test_lock_twice(void **state)
{
	struct fx *f = *state;
	char path[512];
	struct stat st;
	int a, b;

	a = maildir_lock(f->md);
	assert_true(a >= 0);
	b = maildir_lock(f->md);
	assert_int_equal(b, -2);
	maildir_unlock(a);
	b = maildir_lock(f->md);
	assert_true(b >= 0);
	pathf(path, sizeof(path), "%s/gannet.lock", f->md);
	assert_int_equal(stat(path, &st), 0);
	assert_true(S_ISREG(st.st_mode));
	assert_int_equal(st.st_mode & 0777, 0600);
	maildir_unlock(b);
}

/* Edge case 23: the kernel drops the lock of a session that died. */
static void test_lock_holder_killed(void **state)
{
	struct fx *f = *state;
	int pfd[2], fd, status;
	char c;
	pid_t pid;

	assert_int_equal(pipe(pfd), 0);
	pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		close(pfd[0]);
		if (maildir_lock(f->md) < 0)
			_exit(1);
		if (write(pfd[1], "L", 1) != 1)
			_exit(1);
		for (;;)
			pause();
	}
	close(pfd[1]);
	assert_int_equal(read(pfd[0], &c, 1), 1);
	close(pfd[0]);
	assert_int_equal(maildir_lock(f->md), -2);
	assert_int_equal(kill(pid, SIGKILL), 0);
	assert_int_equal(waitpid(pid, &status, 0), pid);
	assert_true(WIFSIGNALED(status));
	fd = maildir_lock(f->md);
	assert_true(fd >= 0);
	maildir_unlock(fd);
}

/* A lock file replaced by a FIFO neither hangs nor counts as a lock. */
static void test_lock_fifo(void **state)
{
	struct fx *f = *state;
	char path[512];

	alarm(20);
	pathf(path, sizeof(path), "%s/gannet.lock", f->md);
	assert_int_equal(mkfifo(path, 0600), 0);
	assert_int_equal(maildir_lock(f->md), -1);
	alarm(0);
}

static void assert_is_dir_0700(const char *path)
{
	struct stat st;

	assert_int_equal(lstat(path, &st), 0);
	assert_true(S_ISDIR(st.st_mode));
	assert_int_equal(st.st_mode & 0777, 0700);
}

static void assert_maildir_created(const char *root)
{
	char p[512];

	assert_is_dir_0700(root);
	pathf(p, sizeof(p), "%s/new", root);
	assert_is_dir_0700(p);
	pathf(p, sizeof(p), "%s/cur", root);
	assert_is_dir_0700(p);
	pathf(p, sizeof(p), "%s/tmp", root);
	assert_is_dir_0700(p);
}

/* A new user who never received mail logs in to an empty maildrop. */
static void test_scan_creates_root(void **state)
{
	struct fx *f = *state;
	struct maildir_snapshot s;
	const char *error = NULL;
	char root[256];

	pathf(root, sizeof(root), "%s/fresh", f->top);
	assert_int_equal(maildir_scan(root, UIDL_SOURCE_GANNET, &s, &error), MAILDIR_OK);
	assert_int_equal(s.count, 0);
	assert_int_equal(s.total_size, 0);
	maildir_snapshot_free(&s);
	assert_maildir_created(root);
}

/* S-019 locks before the scan, so the lock must work on a Maildir that does not exist yet. */
static void test_lock_creates_root(void **state)
{
	struct fx *f = *state;
	char root[256];
	int fd;

	pathf(root, sizeof(root), "%s/fresh-lock", f->top);
	fd = maildir_lock(root);
	assert_true(fd >= 0);
	assert_maildir_created(root);
	maildir_unlock(fd);
}

/* ---- dotlock (issue 3 item 5) ---- */

/* Write DIR/gannet.dotlock as another holder would, with its mtime AGE seconds in the past. */
static void put_dotlock(const struct fx *f, const char *content, time_t age)
{
	struct timespec ts[2];
	char path[512];

	pathf(path, sizeof(path), "%s/%s", f->md, MAILDIR_DOTLOCK_NAME);
	put_str(f, ".", MAILDIR_DOTLOCK_NAME, content);
	ts[0].tv_sec = ts[1].tv_sec = time(NULL) - age;
	ts[0].tv_nsec = ts[1].tv_nsec = 0;
	assert_int_equal(utimensat(AT_FDCWD, path, ts, 0), 0);
}

/* A pid that surely names no process: a child we reaped. */
static pid_t dead_pid(void)
{
	pid_t pid = fork();

	assert_true(pid >= 0);
	if (pid == 0)
		_exit(0);
	assert_int_equal(waitpid(pid, NULL, 0), pid);
	return pid;
}

static int dotlock(const struct fx *f, struct maildir_lockh *h)
{
	return maildir_lock_mode(f->md, MAILDIR_LOCK_DOTLOCK, h);
}

/* One holder at a time, even in one process; the file names the holder and goes at release. */
static void test_dotlock_twice(void **state)
{
	struct fx *f = *state;
	struct maildir_lockh a, b;
	char path[512], want[128], host[256], got[128] = {0};
	int fd;

	assert_int_equal(dotlock(f, &a), 0);
	assert_int_equal(dotlock(f, &b), -2);
	assert_int_equal(b.fd, -1);
	pathf(path, sizeof(path), "%s/%s", f->md, MAILDIR_DOTLOCK_NAME);
	assert_int_equal(gethostname(host, sizeof(host)), 0);
	pathf(want, sizeof(want), "%ld %s\n", (long)getpid(), host);
	fd = open(path, O_RDONLY);
	assert_true(fd >= 0);
	assert_true(read(fd, got, sizeof(got) - 1) > 0);
	close(fd);
	assert_string_equal(got, want);
	maildir_lock_drop(&a);
	assert_int_equal(access(path, F_OK), -1);
	assert_int_equal(dotlock(f, &b), 0);
	maildir_lock_drop(&b);
	maildir_lock_drop(&b); /* harmless twice */
}

/* Stale at once: a dead pid of this host, named with or without the host. Held: a live pid, a
 * dead pid of another host (it means nothing here), a fresh lock without pid. Any lock is stale
 * after MAILDIR_DOTLOCK_STALE_SEC without a touch. */
static void test_dotlock_stale(void **state)
{
	struct fx *f = *state;
	struct maildir_lockh h;
	char line[128], host[256];
	pid_t dead = dead_pid();

	assert_int_equal(gethostname(host, sizeof(host)), 0);
	pathf(line, sizeof(line), "%ld %s\n", (long)dead, host);
	put_dotlock(f, line, 0);
	assert_int_equal(dotlock(f, &h), 0);
	maildir_lock_drop(&h);
	pathf(line, sizeof(line), "%ld\n", (long)dead);
	put_dotlock(f, line, 0);
	assert_int_equal(dotlock(f, &h), 0);
	maildir_lock_drop(&h);

	pathf(line, sizeof(line), "%ld\n", (long)getppid());
	put_dotlock(f, line, 0);
	assert_int_equal(dotlock(f, &h), -2);
	pathf(line, sizeof(line), "%ld other-host.invalid\n", (long)dead);
	put_dotlock(f, line, 0);
	assert_int_equal(dotlock(f, &h), -2);
	put_dotlock(f, "0\n", MAILDIR_DOTLOCK_STALE_SEC - 60);
	assert_int_equal(dotlock(f, &h), -2);

	put_dotlock(f, line, MAILDIR_DOTLOCK_STALE_SEC + 5);
	assert_int_equal(dotlock(f, &h), 0);
	maildir_lock_drop(&h);
}

/* The holder's refresh moves the mtime; a lock taken over is noticed and left to its new owner. */
static void test_dotlock_refresh_lost(void **state)
{
	struct fx *f = *state;
	struct maildir_lockh h;
	char path[512];
	struct stat st;

	pathf(path, sizeof(path), "%s/%s", f->md, MAILDIR_DOTLOCK_NAME);
	assert_int_equal(dotlock(f, &h), 0);
	put_dotlock(f, "", 0); /* same file, truncated: only the mtime is set back below */
	assert_int_equal(
	    utimensat(AT_FDCWD, path, (struct timespec[2]){{.tv_sec = 1}, {.tv_sec = 1}}, 0), 0);
	assert_int_equal(maildir_lock_refresh(&h), 0);
	assert_int_equal(stat(path, &st), 0);
	assert_true(st.st_mtime > time(NULL) - 60);

	assert_int_equal(unlink(path), 0);
	put_dotlock(f, "1 other-host.invalid\n", 0);
	assert_int_equal(maildir_lock_refresh(&h), -1);
	assert_int_equal(h.fd, -1);
	maildir_lock_drop(&h);
	assert_int_equal(access(path, F_OK), 0);
}

/* A FIFO or symlink planted as the dotlock neither hangs nor counts as a lock. */
static void test_dotlock_not_a_file(void **state)
{
	struct fx *f = *state;
	struct maildir_lockh h;
	char path[512];

	alarm(20);
	pathf(path, sizeof(path), "%s/%s", f->md, MAILDIR_DOTLOCK_NAME);
	assert_int_equal(mkfifo(path, 0600), 0);
	assert_int_equal(dotlock(f, &h), -1);
	assert_int_equal(unlink(path), 0);
	assert_int_equal(symlink("/dev/null", path), 0);
	assert_int_equal(dotlock(f, &h), -1);
	assert_int_equal(h.fd, -1);
	alarm(0);
}

/* The dotlock, like the flock, is taken before the scan: it creates a missing Maildir. */
static void test_dotlock_creates_root(void **state)
{
	struct fx *f = *state;
	struct maildir_lockh h;
	char root[256];

	pathf(root, sizeof(root), "%s/fresh-dotlock", f->top);
	assert_int_equal(maildir_lock_mode(root, MAILDIR_LOCK_DOTLOCK, &h), 0);
	assert_maildir_created(root);
	maildir_lock_drop(&h);
	assert_int_equal(maildir_lock_mode(root, MAILDIR_LOCK_FLOCK, &h), 0);
	assert_true(h.fd >= 0);
	assert_int_equal(maildir_lock_refresh(&h), 0);
	maildir_lock_drop(&h);
}

static void test_scan_creates_subdirs(void **state)
{
	struct fx *f = *state;
	struct maildir_snapshot s;
	char p[512];

	pathf(p, sizeof(p), "%s/new", f->md);
	assert_int_equal(rmdir(p), 0);
	pathf(p, sizeof(p), "%s/cur", f->md);
	assert_int_equal(rmdir(p), 0);
	s = scan_ok(f);
	assert_int_equal(s.count, 0);
	maildir_snapshot_free(&s);
	pathf(p, sizeof(p), "%s/new", f->md);
	assert_is_dir_0700(p);
	pathf(p, sizeof(p), "%s/cur", f->md);
	assert_is_dir_0700(p);
}

static void test_missing_parent(void **state)
{
	struct fx *f = *state;
	struct maildir_snapshot s;
	const char *error = NULL;
	char root[256];

	pathf(root, sizeof(root), "%s/no/such/Maildir", f->top);
	assert_int_equal(maildir_scan(root, UIDL_SOURCE_GANNET, &s, &error), MAILDIR_ERR_PERM);
	assert_non_null(error);
	assert_non_null(strstr(error, "parent directory does not exist"));
	assert_non_null(strstr(error, root));
	assert_int_equal(s.count, 0);
	assert_null(s.arena.p);
	pathf(root, sizeof(root), "%s/no", f->top);
	assert_int_equal(access(root, F_OK), -1);
	pathf(root, sizeof(root), "%s/no/such/Maildir", f->top);
	assert_int_equal(maildir_lock(root), -1);
	assert_int_equal(errno, ENOENT);
}

static void test_root_not_a_directory(void **state)
{
	struct fx *f = *state;
	struct maildir_snapshot s;
	const char *error = NULL;
	char root[256];
	int fd;

	pathf(root, sizeof(root), "%s/file", f->top);
	fd = open(root, O_WRONLY | O_CREAT, 0600);
	assert_true(fd >= 0);
	close(fd);
	assert_int_equal(maildir_scan(root, UIDL_SOURCE_GANNET, &s, &error), MAILDIR_ERR_PERM);
	assert_non_null(strstr(error, "Not a directory"));
}

static int chown_cb(const char *path, const struct stat *st, int type, struct FTW *ftw)
{
	(void)st;
	(void)type;
	(void)ftw;
	return lchown(path, NOBODY, NOBODY);
}

/* Run maildir_scan(ROOT) without privileges: root bypasses EACCES, so as root a child drops to
 * nobody (the tree under TOP is handed to nobody first). Returns the scan's result, or
 * CHILD_SKIP when privileges cannot be dropped. */
static int scan_unprivileged(const struct fx *f, const char *root)
{
	struct maildir_snapshot s;
	const char *error;
	int status, rc;
	pid_t pid;

	if (geteuid() != 0) {
		rc = maildir_scan(root, UIDL_SOURCE_GANNET, &s, &error);
		maildir_snapshot_free(&s);
		return rc;
	}
	assert_int_equal(nftw(f->top, chown_cb, 16, FTW_PHYS), 0);
	pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		gid_t gid = NOBODY;
		if (setgroups(1, &gid) < 0 || setresgid(NOBODY, NOBODY, NOBODY) < 0 ||
		    setresuid(NOBODY, NOBODY, NOBODY) < 0 || geteuid() == 0)
			_exit(CHILD_SKIP);
		error = NULL;
		rc = maildir_scan(root, UIDL_SOURCE_GANNET, &s, &error);
		if (rc != MAILDIR_OK && (error == NULL || error[0] == '\0'))
			_exit(1);
		if (rc != MAILDIR_OK && s.arena.p != NULL)
			_exit(2);
		if (error != NULL)
			fprintf(stderr, "  (child: %s)\n", error);
		maildir_snapshot_free(&s);
		_exit(CHILD_BASE - rc);
	}
	assert_int_equal(waitpid(pid, &status, 0), pid);
	assert_true(WIFEXITED(status));
	if (WEXITSTATUS(status) == CHILD_SKIP)
		return CHILD_SKIP;
	assert_true(WEXITSTATUS(status) >= CHILD_BASE);
	return CHILD_BASE - WEXITSTATUS(status);
}

static void skip_unprivileged(void)
{
	print_message("cannot drop privileges to uid %d; EACCES test skipped\n", NOBODY);
	skip();
}

/* S-020: an unreadable directory is an administrator's problem: [SYS/PERM]. */
static void test_unreadable_cur(void **state)
{
	struct fx *f = *state;
	char p[512];
	int rc;

	put_str(f, "new", "m", "x\n");
	rc = scan_unprivileged(f, f->md);
	if (rc == CHILD_SKIP)
		skip_unprivileged();
	assert_int_equal(rc, MAILDIR_OK);
	pathf(p, sizeof(p), "%s/cur", f->md);
	assert_int_equal(chmod(p, 0), 0);
	rc = scan_unprivileged(f, f->md);
	assert_int_equal(chmod(p, 0700), 0);
	if (rc == CHILD_SKIP)
		skip_unprivileged();
	assert_int_equal(rc, MAILDIR_ERR_PERM);
	/* Fixed by the administrator: the next scan works. */
	assert_int_equal(scan_unprivileged(f, f->md), MAILDIR_OK);
}

static void test_unreadable_message(void **state)
{
	struct fx *f = *state;
	char p[512];
	int rc;

	put_str(f, "cur", "secret:2,S", "x\n");
	pathf(p, sizeof(p), "%s/cur/secret:2,S", f->md);
	assert_int_equal(chmod(p, 0), 0);
	rc = scan_unprivileged(f, f->md);
	if (rc == CHILD_SKIP)
		skip_unprivileged();
	assert_int_equal(rc, MAILDIR_ERR_PERM);
}

static void test_parent_not_writable(void **state)
{
	struct fx *f = *state;
	char parent[256], root[256];
	int rc;

	pathf(parent, sizeof(parent), "%s/ro", f->top);
	assert_int_equal(mkdir(parent, 0555), 0);
	pathf(root, sizeof(root), "%s/Maildir", parent);
	rc = scan_unprivileged(f, root);
	if (rc == CHILD_SKIP)
		skip_unprivileged();
	assert_int_equal(rc, MAILDIR_ERR_PERM);
	assert_int_equal(access(root, F_OK), -1);
}

/* Out of descriptors is temporary: [SYS/TEMP], try again later. */
static void test_emfile_is_temp(void **state)
{
	struct fx *f = *state;
	int status;
	pid_t pid;

	put_str(f, "new", "m", "x\n");
	pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		struct maildir_snapshot s;
		struct rlimit rl;
		const char *error = NULL;
		int fd = open("/dev/null", O_RDONLY), rc;

		/* Room for the root directory only: opening new/ fails with EMFILE. */
		if (fd < 0 || getrlimit(RLIMIT_NOFILE, &rl) < 0)
			_exit(1);
		close(fd);
		rl.rlim_cur = (rlim_t)fd + 1;
		if (setrlimit(RLIMIT_NOFILE, &rl) < 0)
			_exit(1);
		rc = maildir_scan(f->md, UIDL_SOURCE_GANNET, &s, &error);
		_exit(rc == MAILDIR_ERR_TEMP && error != NULL && strstr(error, "Too many") ? 0 : 2);
	}
	assert_int_equal(waitpid(pid, &status, 0), pid);
	assert_true(WIFEXITED(status));
	assert_int_equal(WEXITSTATUS(status), 0);
}

/* ---- crash-safe UPDATE journal and policies ---- */

static void read_all(const struct fx *f, const char *name, unsigned char *buf, size_t size,
                     size_t *len_r)
{
	char path[512];
	ssize_t n;
	int fd;

	pathf(path, sizeof(path), "%s/%s", f->md, name);
	fd = open(path, O_RDONLY | O_CLOEXEC);
	assert_true(fd >= 0);
	n = read(fd, buf, size);
	assert_true(n >= 0 && (size_t)n < size);
	close(fd);
	*len_r = (size_t)n;
}

static void write_root(const struct fx *f, const char *name, const void *buf, size_t len)
{
	char path[512];
	int fd;

	pathf(path, sizeof(path), "%s/%s", f->md, name);
	fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	assert_true(fd >= 0);
	assert_int_equal(write(fd, buf, len), (ssize_t)len);
	close(fd);
}

static bool root_has(const struct fx *f, const char *name)
{
	char path[512];
	struct stat st;

	pathf(path, sizeof(path), "%s/%s", f->md, name);
	return lstat(path, &st) == 0;
}

/* Journal messages 0 and 2 of four, "crash" before any unlink, then recover: exactly those two
 * go, even after one was renamed with flags meanwhile. */
static void test_journal_roundtrip(void **state)
{
	struct fx *f = *state;
	struct maildir_snapshot s;
	unsigned char del[4] = {1, 0, 1, 0}, buf[1024];
	const char *error = NULL;
	size_t removed = 99, len;
	bool ignored = true;

	for (int i = 0; i < 4; i++) {
		char name[32];
		snprintf(name, sizeof(name), "10%d.M1P1.host", i);
		put_str(f, "new", name, "Subject: x\n\nbody\n");
		set_mtime(f, "new", name, 1000 + i);
	}
	s = scan_ok(f);
	assert_int_equal(s.count, 4);
	assert_int_equal(maildir_journal_write(f->md, &s, del, &error), MAILDIR_OK);
	assert_true(root_has(f, MAILDIR_JOURNAL_NAME));
	assert_false(root_has(f, MAILDIR_JOURNAL_TMP_NAME));
	read_all(f, MAILDIR_JOURNAL_NAME, buf, sizeof(buf), &len);
	/* header + two entries of 2 + 13 octets */
	assert_int_equal(len, MAILDIR_JOURNAL_HDR_SIZE + 2 * (2 + 13));
	assert_memory_equal(buf, MAILDIR_JOURNAL_MAGIC, 8);
	assert_int_equal(buf[12], 2);
	assert_int_equal(buf[16], len);
	static const unsigned char entry0[] = {13,  0,   '1', '0', '0', '.', 'M', '1',
	                                       'P', '1', '.', 'h', 'o', 's', 't'};
	assert_memory_equal(buf + 28, entry0, sizeof(entry0));
	maildir_snapshot_free(&s);
	/* An IMAP client flags message 0 before the next login. */
	char from[512], to[512];
	pathf(from, sizeof(from), "%s/new/100.M1P1.host", f->md);
	pathf(to, sizeof(to), "%s/cur/100.M1P1.host:2,FS", f->md);
	assert_int_equal(rename(from, to), 0);
	assert_int_equal(maildir_journal_recover(f->md, &removed, &ignored, &error), MAILDIR_OK);
	assert_int_equal(removed, 2);
	assert_false(ignored);
	assert_false(root_has(f, MAILDIR_JOURNAL_NAME));
	assert_false(exists(f, "cur", "100.M1P1.host:2,FS"));
	assert_true(exists(f, "new", "101.M1P1.host"));
	assert_false(exists(f, "new", "102.M1P1.host"));
	assert_true(exists(f, "new", "103.M1P1.host"));
	/* No journal: nothing to do. */
	assert_int_equal(maildir_journal_recover(f->md, &removed, &ignored, &error), MAILDIR_OK);
	assert_int_equal(removed, 0);
	assert_false(ignored);
	/* Nothing marked: no journal written. */
	s = scan_ok(f);
	memset(del, 0, sizeof(del));
	assert_int_equal(maildir_journal_write(f->md, &s, del, &error), MAILDIR_OK);
	assert_false(root_has(f, MAILDIR_JOURNAL_NAME));
	maildir_snapshot_free(&s);
}

/* Every corruption of a valid journal is detected and deletes nothing. */
static void test_journal_torn(void **state)
{
	struct fx *f = *state;
	struct maildir_snapshot s;
	unsigned char del[1] = {1}, good[256], bad[256];
	const char *error = NULL;
	size_t removed, len;
	bool ignored;

	put_str(f, "new", "200.M1P1.host", "x\n");
	s = scan_ok(f);
	assert_int_equal(maildir_journal_write(f->md, &s, del, &error), MAILDIR_OK);
	maildir_snapshot_free(&s);
	read_all(f, MAILDIR_JOURNAL_NAME, good, sizeof(good), &len);
	/* Every truncation, and a flipped bit in every octet. */
	for (size_t cut = 0; cut < 2 * len; cut++) {
		size_t blen = cut < len ? cut : len;

		memcpy(bad, good, len);
		if (cut >= len)
			bad[cut - len] ^= 0x10;
		write_root(f, MAILDIR_JOURNAL_NAME, bad, blen);
		assert_int_equal(maildir_journal_recover(f->md, &removed, &ignored, &error),
		                 MAILDIR_OK);
		assert_int_equal(removed, 0);
		assert_true(ignored);
		assert_false(root_has(f, MAILDIR_JOURNAL_NAME));
		assert_true(exists(f, "new", "200.M1P1.host"));
	}
	/* A temporary left by a crash while writing: the UPDATE never started. */
	write_root(f, MAILDIR_JOURNAL_TMP_NAME, good, len);
	assert_int_equal(maildir_journal_recover(f->md, &removed, &ignored, &error), MAILDIR_OK);
	assert_true(ignored);
	assert_int_equal(removed, 0);
	assert_false(root_has(f, MAILDIR_JOURNAL_TMP_NAME));
	assert_true(exists(f, "new", "200.M1P1.host"));
	/* The intact journal still works. */
	write_root(f, MAILDIR_JOURNAL_NAME, good, len);
	assert_int_equal(maildir_journal_recover(f->md, &removed, &ignored, &error), MAILDIR_OK);
	assert_int_equal(removed, 1);
	assert_false(exists(f, "new", "200.M1P1.host"));
}

static void test_expire_mark(void **state)
{
	struct fx *f = *state;
	struct maildir_snapshot s;
	unsigned char del[3];
	const time_t now = 1700000000;

	put_str(f, "new", "301.M1P1.host", "a\n");
	put_str(f, "new", "302.M1P1.host", "b\n");
	put_str(f, "new", "303.M1P1.host", "c\n");
	set_mtime(f, "new", "301.M1P1.host", 1);
	set_mtime(f, "new", "302.M1P1.host", 2);
	set_mtime(f, "new", "303.M1P1.host", 3);
	s = scan_ok(f);
	maildir_msg_set_retrieved(&s, 0, now - 3 * 86400);
	maildir_msg_set_retrieved(&s, 1, now - 2 * 86400 + 1);
	memset(del, 0, sizeof(del));
	assert_int_equal(maildir_expire_mark(&s, del, now, MAILDIR_EXPIRE_NEVER), 0);
	assert_int_equal(maildir_expire_mark(&s, del, now, 3), 1);
	assert_memory_equal(del, "\1\0\0", 3);
	assert_int_equal(maildir_expire_mark(&s, del, now, 2), 0); /* one second short */
	assert_int_equal(maildir_expire_mark(&s, del, now + 1, 2), 1);
	assert_memory_equal(del, "\1\1\0", 3);
	memset(del, 0, sizeof(del));
	del[0] = 1;
	assert_int_equal(maildir_expire_mark(&s, del, now, 0), 1); /* 0 already marked */
	assert_memory_equal(del, "\1\1\0", 3);
	maildir_snapshot_free(&s);
}

static void test_login_time(void **state)
{
	struct fx *f = *state;

	assert_int_equal(maildir_last_login(f->md), 0);
	assert_int_equal(maildir_set_last_login(f->md, 1700000123), 0);
	assert_int_equal(maildir_last_login(f->md), 1700000123);
	assert_false(root_has(f, MAILDIR_LOGIN_TMP_NAME));
	write_root(f, MAILDIR_LOGIN_NAME, "12x\n", 4);
	assert_int_equal(maildir_last_login(f->md), 0);
	write_root(f, MAILDIR_LOGIN_NAME, "99999999999999999999999\n", 24);
	assert_int_equal(maildir_last_login(f->md), 0);
	write_root(f, MAILDIR_LOGIN_NAME, "100", 3);
	assert_int_equal(maildir_last_login(f->md), 0);
	assert_int_equal(maildir_login_wait(1000, 1010, 60), 50);
	assert_int_equal(maildir_login_wait(1000, 1060, 60), 0);
	assert_int_equal(maildir_login_wait(1000, 1059, 60), 1);
	assert_int_equal(maildir_login_wait(0, 1010, 60), 0);
	assert_int_equal(maildir_login_wait(2000, 1010, 60), 0); /* in the future */
	assert_int_equal(maildir_login_wait(1000, 1010, 0), 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test_setup_teardown(test_sizes, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_chunk_boundary, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_large_message, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_over_4gib, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_skips_non_messages, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_order, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_order_stable_after_seen, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_many_messages, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_duplicate_unique_name, setup, teardown),
	    cmocka_unit_test(test_uidl),
	    cmocka_unit_test_setup_teardown(test_mark_seen_new, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_mark_seen_flags, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_mark_seen_no_clobber, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_open_msg, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_unlink, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_lock_twice, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_lock_holder_killed, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_lock_fifo, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_scan_creates_root, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_lock_creates_root, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_dotlock_twice, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_dotlock_stale, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_dotlock_refresh_lost, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_dotlock_not_a_file, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_dotlock_creates_root, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_scan_creates_subdirs, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_missing_parent, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_root_not_a_directory, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_unreadable_cur, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_unreadable_message, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_parent_not_writable, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_emfile_is_temp, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_journal_roundtrip, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_journal_torn, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_expire_mark, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_login_time, setup, teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
