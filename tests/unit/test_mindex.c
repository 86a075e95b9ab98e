/* Unit tests for lib/mindex.c, lib/uidlsrc.c and the indexed scan: format, rebuilds, warm scans,
 * UIDL sources, races, memory, full and read-only disks. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <grp.h>
#include <malloc.h>
#include <sched.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <setjmp.h> /* cmocka needs these three before its header */
#include <stdarg.h>
#include <cmocka.h>

#include "maildir.h"
#include "mindex.h"

#if defined(__has_feature)
#if __has_feature(address_sanitizer)
#define TEST_ASAN 1
#endif
#endif
#if defined(__SANITIZE_ADDRESS__)
#define TEST_ASAN 1
#endif
#ifdef TEST_ASAN
size_t __sanitizer_get_current_allocated_bytes(void);
#endif

#define NOBODY     65534
#define CHILD_SKIP 77
#define N_OF(a)    (sizeof(a) / sizeof((a)[0]))

struct fx {
	char top[64];
	char md[128];
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

static void write_file(const char *path, const void *data, size_t len)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);

	assert_true(fd >= 0);
	assert_int_equal(write(fd, data, len), (ssize_t)len);
	assert_int_equal(close(fd), 0);
}

/* F's Maildir/REL ("new/x", "cur/y:2,S") holding BODY, with mtime T unless T is 0. */
static void put(const struct fx *f, const char *rel, const char *body, time_t t)
{
	struct timespec ts[2] = {{.tv_sec = t}, {.tv_sec = t}};
	char path[512];

	pathf(path, sizeof(path), "%s/%s", f->md, rel);
	write_file(path, body, strlen(body));
	if (t != 0)
		assert_int_equal(utimensat(AT_FDCWD, path, ts, 0), 0);
}

/* F's Maildir/REL as a sparse file of SIZE octets (costs no disk). */
static void put_sparse(const struct fx *f, const char *rel, off_t size)
{
	char path[512];
	int fd;

	pathf(path, sizeof(path), "%s/%s", f->md, rel);
	fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	assert_true(fd >= 0);
	assert_int_equal(ftruncate(fd, size), 0);
	close(fd);
}

static void mv(const struct fx *f, const char *from, const char *to)
{
	char a[512], b[512];

	pathf(a, sizeof(a), "%s/%s", f->md, from);
	pathf(b, sizeof(b), "%s/%s", f->md, to);
	assert_int_equal(rename(a, b), 0);
}

static int rm_cb(const char *path, const struct stat *st, int type, struct FTW *ftw)
{
	(void)st;
	(void)ftw;
	return type == FTW_DP ? rmdir(path) : unlink(path);
}

static int chown_cb(const char *path, const struct stat *st, int type, struct FTW *ftw)
{
	(void)st;
	(void)type;
	(void)ftw;
	return lchown(path, NOBODY, NOBODY);
}

/* Message files only (in new/ or cur/), not the index. */
static mode_t chmod_mode;
static int chmod_cb(const char *path, const struct stat *st, int type, struct FTW *ftw)
{
	(void)st;
	if (type == FTW_F && ftw->level == 2 && (strstr(path, "/new/") || strstr(path, "/cur/")))
		return chmod(path, chmod_mode);
	return 0;
}

static void chmod_all(const struct fx *f, mode_t mode)
{
	chmod_mode = mode;
	assert_int_equal(nftw(f->md, chmod_cb, 16, FTW_PHYS), 0);
}

static int setup(void **state)
{
	struct fx *f = calloc(1, sizeof(*f));
	char p[256];

	assert_non_null(f);
	snprintf(f->top, sizeof(f->top), "/tmp/gannet-mindex-XXXXXX");
	assert_non_null(mkdtemp(f->top));
	assert_int_equal(chmod(f->top, 0755), 0);
	pathf(f->md, sizeof(f->md), "%s/Maildir", f->top);
	assert_int_equal(mkdir(f->md, 0700), 0);
	for (int i = 0; i < 3; i++) {
		pathf(p, sizeof(p), "%s/%s", f->md, (const char *[]){"new", "cur", "tmp"}[i]);
		assert_int_equal(mkdir(p, 0700), 0);
	}
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	struct fx *f = *state;

	nftw(f->top, rm_cb, 16, FTW_DEPTH | FTW_PHYS);
	free(f);
	return 0;
}

static struct maildir_snapshot scan_src(const struct fx *f, enum uidl_source src)
{
	struct maildir_snapshot s;
	const char *error = NULL;
	int rc = maildir_scan(f->md, src, &s, &error);

	if (rc != MAILDIR_OK)
		fail_msg("maildir_scan: %d %s", rc, error != NULL ? error : "(no message)");
	return s;
}

static struct maildir_snapshot scan(const struct fx *f)
{
	return scan_src(f, UIDL_SOURCE_GANNET);
}

static const char *uidl(const struct maildir_snapshot *s, size_t i)
{
	static char buf[4][POP3_UIDL_MAX + 1];
	static unsigned k;
	char *b = buf[k++ % 4];
	size_t len;
	const char *u = maildir_msg_uidl(s, i, &len);

	assert_true(len >= 1 && len <= POP3_UIDL_MAX);
	memcpy(b, u, len);
	b[len] = '\0';
	return b;
}

static size_t find(const struct maildir_snapshot *s, const char *name)
{
	char buf[MAILDIR_NAME_BUF];

	for (size_t i = 0; i < s->count; i++)
		if (strcmp(maildir_msg_name(s, i, buf), name) == 0)
			return i;
	fail_msg("message %s not in the snapshot", name);
	return 0;
}

/* The index file's identity: a rewrite is a rename, so the inode changes. */
static ino_t index_ino(const struct fx *f)
{
	char path[512];
	struct stat st;

	pathf(path, sizeof(path), "%s/%s", f->md, MINDEX_NAME);
	return stat(path, &st) == 0 ? st.st_ino : 0;
}

/* Run FN(F) in a child without root's bypass of permissions: as nobody (the tree is handed to
 * nobody first) when we are root, as ourselves otherwise. Returns FN's result or CHILD_SKIP. */
static int unprivileged(const struct fx *f, int (*fn)(const struct fx *))
{
	int status;
	pid_t pid;

	if (geteuid() == 0)
		assert_int_equal(nftw(f->top, chown_cb, 16, FTW_PHYS), 0);
	pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		gid_t gid = NOBODY;
		if (geteuid() == 0 &&
		    (setgroups(1, &gid) < 0 || setresgid(NOBODY, NOBODY, NOBODY) < 0 ||
		     setresuid(NOBODY, NOBODY, NOBODY) < 0 || geteuid() == 0))
			_exit(CHILD_SKIP);
		_exit(fn(f));
	}
	assert_int_equal(waitpid(pid, &status, 0), pid);
	assert_true(WIFEXITED(status));
	return WEXITSTATUS(status);
}

/* Log lines are checked by sending stderr to a memfd for a while. */
static int cap_saved = -1, cap_fd = -1;

static void capture_start(void)
{
	fflush(stderr);
	cap_saved = dup(2);
	cap_fd = memfd_create("log", MFD_CLOEXEC);
	assert_true(cap_saved >= 0 && cap_fd >= 0);
	assert_int_equal(dup2(cap_fd, 2), 2);
}

static const char *capture_end(void)
{
	static char buf[8192];
	ssize_t n;

	fflush(stderr);
	assert_int_equal(dup2(cap_saved, 2), 2);
	close(cap_saved);
	n = pread(cap_fd, buf, sizeof(buf) - 1, 0);
	close(cap_fd);
	buf[n > 0 ? n : 0] = '\0';
	return buf;
}

static void expect_log(const char *log, const char *want)
{
	if (strstr(log, want) == NULL)
		fail_msg("log lacks \"%s\": \"%s\"", want, log);
}

/* ---- the format ---- */

static void test_crc32c(void **state)
{
	unsigned char buf[300];

	(void)state;
	/* The check value of CRC-32C (Castagnoli). */
	assert_int_equal(mindex_crc32c(0, "123456789", 9), 0xe3069283);
	assert_int_equal(mindex_crc32c_portable(0, "123456789", 9), 0xe3069283);
	for (size_t i = 0; i < sizeof(buf); i++)
		buf[i] = (unsigned char)(i * 7 + 3);
	for (size_t off = 0; off < 9; off++)
		for (size_t len = 0; len + off <= sizeof(buf); len += 13) {
			uint32_t a = mindex_crc32c(0, buf + off, len);
			assert_int_equal(a, mindex_crc32c_portable(0, buf + off, len));
			/* Chaining equals one pass. */
			assert_int_equal(mindex_crc32c(mindex_crc32c(0, buf + off, len / 2),
			                               buf + off + len / 2, len - len / 2),
			                 a);
		}
}

struct ents {
	struct mindex_entry e[8];
	char names[8][300], uidls[8][80];
	size_t n;
	int stop_at; /* the callback fails at this entry; -1 never */
};

static int collect_cb(void *arg, const struct mindex_entry *e)
{
	struct ents *c = arg;

	if ((int)c->n == c->stop_at)
		return -1;
	if (c->n < 8) {
		memcpy(c->names[c->n], e->name, e->name_len);
		memcpy(c->uidls[c->n], e->uidl, e->uidl_len);
		c->e[c->n] = *e;
		c->e[c->n].name = c->names[c->n];
		c->e[c->n].uidl = c->uidls[c->n];
	}
	c->n++;
	return 0;
}

static int give_cb(void *arg, size_t i, struct mindex_entry *e)
{
	*e = ((struct ents *)arg)->e[i];
	return 0;
}

/* A small index in memory: three entries, the second with its UIDL stored apart. */
/* Stamps of new/ and cur/ that the round trip must keep. */
static const struct mindex_head sample_head = {
    .source = UIDL_SOURCE_DOVECOT,
    .count = 3,
    .dirs = {{12, 1700000000123456789LL, 1700000001000000000LL}, {13, -1, 5}},
};

static size_t sample(unsigned char *out, size_t cap, struct ents *in)
{
	static const struct mindex_entry e[3] = {
	    {"1700000000.M1P2.host,W=42:2,S", 29, "1700000000.M1P2.host", 20, false, 42, 1700000000,
	     1700000100, 0},
	    {"x y", 3, "H0123456789abcdef0123456789abcdef01234567", 41, true, 0, -5, 7, 9},
	    {"big", 3, "big", 3, false, ((uint64_t)5 << 30) + 1, 1, 1, 1},
	};
	int fd = memfd_create("idx", MFD_CLOEXEC);
	ssize_t n;

	memset(in, 0, sizeof(*in));
	memcpy(in->e, e, sizeof(e));
	assert_true(fd >= 0);
	assert_int_equal(mindex_write_fd(fd, &sample_head, give_cb, in), 0);
	n = pread(fd, out, cap, 0);
	close(fd);
	assert_true(n > 0 && (size_t)n < cap);
	return (size_t)n;
}

static void expect(const unsigned char *buf, size_t len, int rc, const char *why_has)
{
	struct ents out = {.stop_at = -1};
	struct mindex_head h;
	const char *why = "";

	assert_int_equal(mindex_read_mem(buf, len, &h, collect_cb, &out, &why), rc);
	if (why_has != NULL && strstr(why, why_has) == NULL)
		fail_msg("reason \"%s\" lacks \"%s\"", why, why_has);
}

/* Round trip, then bad input: every truncation and bit flip, a newer version, unknown flags,
 * absurd counts, bad fields (checked before the checksum), trailing data. */
static void test_format(void **state)
{
	static const struct {
		size_t off;
		unsigned char val;
		const char *why;
	} bad[] = {
	    {8, 3, "newer"},
	    {8, 0, "invalid"},
	    {13, 1, "flags"},
	    {19, 0xff, "cannot fill"},
	    {MINDEX_HDR_SIZE + MINDEX_ENT_FIXED, '/', "entry 0"},
	    {MINDEX_HDR_SIZE + 2 * MINDEX_ENT_FIXED + 29 + 3, ' ', "entry 1"},
	    {MINDEX_HDR_SIZE + 35, 4, "entry 0"},
	};
	unsigned char buf[1024], mut[1100];
	struct ents in, out = {.stop_at = -1};
	struct mindex_head h;
	const char *why = NULL;
	size_t len = sample(buf, sizeof(buf), &in);

	(void)state;
	/* UIDLs that are a prefix of the name are not stored twice. */
	assert_int_equal(len, MINDEX_HDR_SIZE + 3 * MINDEX_ENT_FIXED + 29 + 3 + 41 + 3);
	assert_int_equal(mindex_read_mem(buf, len, &h, collect_cb, &out, &why), MINDEX_LOADED);
	assert_true(h.source == UIDL_SOURCE_DOVECOT && h.count == 3 && out.n == 3);
	assert_memory_equal(h.dirs, sample_head.dirs, sizeof(h.dirs));
	for (size_t i = 0; i < 3; i++) {
		const struct mindex_entry *a = &in.e[i], *b = &out.e[i];
		assert_true(a->name_len == b->name_len && a->uidl_len == b->uidl_len &&
		            a->in_new == b->in_new && a->size == b->size && a->mtime == b->mtime &&
		            a->first_seen == b->first_seen &&
		            a->first_retrieved == b->first_retrieved);
		assert_memory_equal(a->name, b->name, a->name_len);
		assert_memory_equal(a->uidl, b->uidl, a->uidl_len);
	}
	out = (struct ents){.stop_at = 1};
	assert_int_equal(mindex_read_mem(buf, len, &h, collect_cb, &out, &why), MINDEX_ABORTED);
	for (size_t cut = 0; cut < len; cut++)
		expect(buf, cut, MINDEX_REJECTED, NULL);
	for (size_t bit = 0; bit < len * 8; bit++) {
		memcpy(mut, buf, len);
		mut[bit / 8] ^= (unsigned char)(1 << (bit % 8));
		expect(mut, len, MINDEX_REJECTED, NULL);
	}
	for (size_t i = 0; i < N_OF(bad); i++) {
		memcpy(mut, buf, len);
		mut[bad[i].off] = bad[i].val;
		expect(mut, len, MINDEX_REJECTED, bad[i].why);
	}
	memcpy(mut, buf, len);
	mut[len] = 0;
	expect(mut, len + 1, MINDEX_REJECTED, "after the last entry");
	expect((const unsigned char *)"NOTANINDEXATALLNOTANINDEX", 25, MINDEX_REJECTED, "magic");
}

/* The temporary is never written through a planted symlink; the index is 0600. */
static void test_save_no_follow(void **state)
{
	struct fx *f = *state;
	struct ents in;
	unsigned char buf[1024];
	char p[512], victim[512];
	const char *why = NULL;
	struct stat st;
	int root = open(f->md, O_RDONLY | O_DIRECTORY);

	sample(buf, sizeof(buf), &in);
	pathf(victim, sizeof(victim), "%s/victim", f->top);
	write_file(victim, "keep", 4);
	pathf(p, sizeof(p), "%s/%s", f->md, MINDEX_TMP_NAME);
	assert_int_equal(symlink(victim, p), 0);
	assert_int_equal(mindex_save(root, &(struct mindex_head){.count = 3}, give_cb, &in, &why),
	                 0);
	close(root);
	assert_int_equal(lstat(p, &st), -1);
	assert_int_equal(stat(victim, &st), 0);
	assert_int_equal(st.st_size, 4);
	pathf(p, sizeof(p), "%s/%s", f->md, MINDEX_NAME);
	assert_int_equal(lstat(p, &st), 0);
	assert_true(S_ISREG(st.st_mode) && (st.st_mode & 0777) == 0600);
}

/* ---- the indexed scan ---- */

static void add_messages(const struct fx *f, int n)
{
	char rel[128], body[128];

	for (int i = 0; i < n; i++) {
		snprintf(body, sizeof(body), "Subject: %d\n\nbody %d\n%s", i, i,
		         i % 3 ? "" : "no final newline");
		pathf(rel, sizeof(rel), "%s/%d.M%dP1.host%s", i % 2 ? "cur" : "new", 1700000000 + i,
		      i, i % 2 ? ":2,S" : "");
		put(f, rel, body, 1700000000 + i);
	}
}

/* What a first scan gave, for children to compare with. */
static struct {
	size_t count;
	uint64_t total, size[64];
	char uidl[64][POP3_UIDL_MAX + 1];
} want;
static enum uidl_source child_src = UIDL_SOURCE_GANNET;

static void remember(const struct maildir_snapshot *s)
{
	want.count = s->count;
	want.total = s->total_size;
	for (size_t i = 0; i < s->count && i < 64; i++) {
		want.size[i] = maildir_msg_size(s, i);
		snprintf(want.uidl[i], sizeof(want.uidl[i]), "%s", uidl(s, i));
	}
}

static int same_as_remembered(const struct maildir_snapshot *s)
{
	if (s->count != want.count || s->total_size != want.total)
		return 1;
	for (size_t i = 0; i < s->count && i < 64; i++) {
		size_t len;
		const char *u = maildir_msg_uidl(s, i, &len);
		if (maildir_msg_size(s, i) != want.size[i] || len != strlen(want.uidl[i]) ||
		    memcmp(u, want.uidl[i], len) != 0)
			return 2;
	}
	return 0;
}

static int warm_child(const struct fx *f)
{
	struct maildir_snapshot s;
	const char *error = NULL;
	int rc = maildir_scan(f->md, child_src, &s, &error);

	if (rc != MAILDIR_OK) {
		fprintf(stderr, "  (child: %s)\n", error ? error : "?");
		return 10;
	}
	rc = same_as_remembered(&s);
	maildir_snapshot_free(&s);
	return rc;
}

/* Issue 3: a warm scan opens no message file. Every file is made unreadable and the scan runs
 * without privileges: one open() would fail it with EACCES. It must not rewrite the index. */
static void test_warm_scan_opens_nothing(void **state)
{
	struct fx *f = *state;
	struct maildir_snapshot s;
	char p[512];
	ino_t ino;
	int rc;

	add_messages(f, 40);
	assert_int_equal(index_ino(f), 0);
	s = scan(f);
	assert_int_equal(s.count, 40);
	remember(&s);
	maildir_snapshot_free(&s);
	assert_true((ino = index_ino(f)) != 0);
	chmod_all(f, 0);
	if ((rc = unprivileged(f, warm_child)) == CHILD_SKIP)
		skip();
	assert_int_equal(rc, 0);
	assert_int_equal(index_ino(f), ino);
	/* Without the index the same scan fails: the test can tell. */
	pathf(p, sizeof(p), "%s/%s", f->md, MINDEX_NAME);
	assert_int_equal(unlink(p), 0);
	assert_int_equal(unprivileged(f, warm_child), 10);
}

/* Flag renames and new/ -> cur/ moves keep size and UIDL (the content is not read again: here it
 * even changed), vanished files drop out, new ones come in, and the index follows. */
static void test_incremental(void **state)
{
	struct fx *f = *state;
	struct maildir_snapshot s;
	ino_t ino;

	put(f, "new/a", "aaaa\n", 100);
	put(f, "cur/b:2,S", "bb\n", 200);
	put(f, "cur/c:2,", "c\n", 300);
	s = scan(f);
	assert_int_equal(s.total_size, 6 + 4 + 3);
	maildir_snapshot_free(&s);
	ino = index_ino(f);
	s = scan(f); /* unchanged: the index is not rewritten */
	maildir_snapshot_free(&s);
	assert_int_equal(index_ino(f), ino);

	mv(f, "new/a", "cur/a:2,RS");
	put(f, "cur/a:2,RS", "this is much longer now\n", 0);
	mv(f, "cur/b:2,S", "cur/b:2,FS");
	mv(f, "cur/c:2,", "cur/c,S=2:2,"); /* more than flags: examined afresh */
	put(f, "new/d", "dddddd\n", 400);
	s = scan(f);
	assert_int_equal(s.count, 4);
	assert_int_equal(maildir_msg_size(&s, find(&s, "a:2,RS")), 6);
	assert_int_equal(maildir_msg_size(&s, find(&s, "b:2,FS")), 4);
	assert_int_equal(maildir_msg_size(&s, find(&s, "c,S=2:2,")), 3);
	assert_int_equal(maildir_msg_mtime(&s, find(&s, "a:2,RS")), 100);
	assert_string_equal(uidl(&s, 0), "a");
	assert_string_equal(uidl(&s, 3), "d");
	assert_false(maildir_msg_in_new(&s, 0));
	maildir_snapshot_free(&s);
	assert_true(index_ino(f) != ino);
	ino = index_ino(f);
	mv(f, "cur/b:2,FS", "tmp/b");
	s = scan(f);
	assert_int_equal(s.count, 3);
	assert_int_equal(s.total_size, 6 + 3 + 8);
	maildir_snapshot_free(&s);
	assert_true(index_ino(f) != ino);
}

/* ",W=" is the CRLF size (Dovecot writes it): used without opening the file when it agrees with
 * the file's size (and ",S=", if any); otherwise the file is read (S-137: names can lie). */
static int w_child(const struct fx *f)
{
	struct maildir_snapshot s;
	const char *error = NULL;
	int rc = maildir_scan(f->md, UIDL_SOURCE_GANNET, &s, &error);

	if (rc != MAILDIR_OK)
		return 10;
	rc = s.count == 2 && maildir_msg_size(&s, find(&s, "m1,S=3,W=7:2,S")) == 7 &&
	             maildir_msg_size(&s, find(&s, "m2,W=5000000000")) == 5000000000ULL
	         ? 0
	         : 11;
	maildir_snapshot_free(&s);
	return rc;
}

static void test_w_field(void **state)
{
	static const struct {
		const char *rel, *body;
		uint64_t size;
	} read[] = {{"new/m3,W=012", "x\n", 3},
	            {"new/m4,W=", "yy\n", 4},
	            {"new/m5,W=99999999999999999999", "zzz\n", 5},
	            {"new/m6,XW=7", "\n", 2},
	            {"new/m7,S=10,W=12", "0123456789\n", 12}, /* S is 11 */
	            {"new/m8,W=3", "x\nx\n", 6},              /* below the file size */
	            {"new/m9,W=9", "abc", 5}};                /* above 2 * 3 + 2 */
	struct fx *f = *state;
	struct maildir_snapshot s;
	int rc;

	put(f, "cur/m1,S=3,W=7:2,S", "abc", 0); /* 5 in truth: W is believed, not checked */
	put_sparse(f, "new/m2,W=5000000000", 2600000000);
	chmod_all(f, 0);
	if ((rc = unprivileged(f, w_child)) == CHILD_SKIP)
		skip();
	assert_int_equal(rc, 0);
	chmod_all(f, 0600);
	for (size_t i = 0; i < N_OF(read); i++)
		put(f, read[i].rel, read[i].body, 0);
	s = scan(f);
	for (size_t i = 0; i < N_OF(read); i++)
		assert_int_equal(maildir_msg_size(&s, find(&s, read[i].rel + 4)), read[i].size);
	maildir_snapshot_free(&s);
}

/* Corrupt, truncated, newer or planted indexes are ignored with a warning and rebuilt; the scan
 * gives what the directory says. */
static void test_bad_index_rebuilt(void **state)
{
	static const struct {
		int off; /* octet changed (-1: none), or length cut when negative below -1 */
		unsigned char val;
		const char *why;
	} bad[] = {{-8, 0, "truncated"},      {-2, 0x40, "checksum"}, {8, 7, "newer"},
	           {18, 0x7f, "cannot fill"}, {0, 'x', "magic"},      {-1, 0, "regular"}};
	struct fx *f = *state;
	struct maildir_snapshot s;
	unsigned char data[4096], mut[4096];
	char p[512];
	struct mindex_head h;
	const char *why = NULL, *log;
	ssize_t len;
	int fd;

	add_messages(f, 10);
	s = scan(f);
	remember(&s);
	maildir_snapshot_free(&s);
	pathf(p, sizeof(p), "%s/%s", f->md, MINDEX_NAME);
	fd = open(p, O_RDONLY);
	len = read(fd, data, sizeof(data));
	close(fd);
	assert_true(len > MINDEX_HDR_SIZE);
	for (size_t i = 0; i < N_OF(bad); i++) {
		size_t mlen = (size_t)len;

		memcpy(mut, data, (size_t)len);
		if (bad[i].off == -8)
			mlen -= 7;
		else if (bad[i].off == -2)
			mut[len - 1] ^= bad[i].val; /* inside the last name */
		else if (bad[i].off >= 0)
			mut[bad[i].off] = bad[i].val;
		unlink(p);
		if (bad[i].off == -1)
			assert_int_equal(mkfifo(p, 0600), 0);
		else
			write_file(p, mut, mlen);
		alarm(20);
		capture_start();
		s = scan(f);
		log = capture_end();
		alarm(0);
		expect_log(log, "ignored and rebuilt");
		expect_log(log, bad[i].why);
		assert_int_equal(same_as_remembered(&s), 0);
		maildir_snapshot_free(&s);
		/* Rebuilt: valid again, same entries (first-seen times may differ). */
		fd = open(p, O_RDONLY | O_NONBLOCK);
		assert_int_equal(read(fd, mut, sizeof(mut)), len);
		close(fd);
		assert_int_equal(mindex_read_mem(mut, (size_t)len, &h, NULL, NULL, &why),
		                 MINDEX_LOADED);
		assert_int_equal(h.count, 10);
	}
}

static int ro_child(const struct fx *f)
{
	struct maildir_snapshot s;
	const char *error = NULL;
	int rc;

	capture_start();
	rc = maildir_scan(f->md, UIDL_SOURCE_GANNET, &s, &error);
	rc = rc != MAILDIR_OK ? 10 : same_as_remembered(&s);
	if (rc == 0 && strstr(capture_end(), "not written, the previous one is kept") == NULL)
		rc = 12;
	maildir_snapshot_free(&s);
	return rc;
}

/* A read-only Maildir: logins work, the index simply is not written. Also without tmp/. */
static void test_read_only_maildir(void **state)
{
	struct fx *f = *state;
	struct maildir_snapshot s;
	char p[512];
	int rc;

	pathf(p, sizeof(p), "%s/tmp", f->md);
	assert_int_equal(rmdir(p), 0);
	add_messages(f, 6);
	s = scan(f);
	remember(&s);
	maildir_snapshot_free(&s);
	pathf(p, sizeof(p), "%s/%s", f->md, MINDEX_NAME);
	assert_int_equal(unlink(p), 0);
	assert_int_equal(chmod(f->md, 0555), 0);
	rc = unprivileged(f, ro_child);
	assert_int_equal(chmod(f->md, 0700), 0);
	if (rc == CHILD_SKIP)
		skip();
	assert_int_equal(rc, 0);
	assert_int_equal(index_ino(f), 0);
	pathf(p, sizeof(p), "%s/tmp", f->md);
	assert_int_equal(access(p, F_OK), -1);
}

/* A full disk while the index is written leaves the old index as it was; the scan works. The
 * disk is a 64 KiB tmpfs in a private mount namespace (root only). */
static int full_disk_child(const struct fx *f)
{
	struct fx t = *f;
	struct maildir_snapshot s;
	char p[512], before[8192], after[8192];
	const char *error = NULL;
	uint64_t total;
	ssize_t nb, na;
	int fd;

	if (unshare(CLONE_NEWNS) < 0 || mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL) < 0 ||
	    mount("gannet-test", f->top, "tmpfs", 0, "size=64k,mode=0755") < 0)
		return CHILD_SKIP;
	pathf(t.md, sizeof(t.md), "%s/Maildir", f->top);
	if (maildir_scan(t.md, UIDL_SOURCE_GANNET, &s, &error) != MAILDIR_OK)
		return 10;
	maildir_snapshot_free(&s);
	add_messages(&t, 3);
	if (maildir_scan(t.md, UIDL_SOURCE_GANNET, &s, &error) != MAILDIR_OK || s.count != 3)
		return 11;
	total = s.total_size;
	maildir_snapshot_free(&s);
	pathf(p, sizeof(p), "%s/%s", t.md, MINDEX_NAME);
	fd = open(p, O_RDONLY);
	nb = read(fd, before, sizeof(before));
	close(fd);
	/* Fill the disk, then deliver (sparse files with ",S=" and ",W=" need no data blocks). */
	pathf(p, sizeof(p), "%s/filler", f->top);
	fd = open(p, O_WRONLY | O_CREAT, 0600);
	memset(after, 'f', sizeof(after));
	while (write(fd, after, sizeof(after)) > 0)
		;
	close(fd);
	for (int i = 0; i < 40; i++) {
		pathf(p, sizeof(p), "%s/new/%d.M%dP9.a-rather-long-host-name.example,S=50,W=77",
		      t.md, 1800000000 + i, i);
		if ((fd = open(p, O_WRONLY | O_CREAT, 0600)) < 0 || ftruncate(fd, 50) < 0)
			return 12;
		close(fd);
	}
	capture_start();
	if (maildir_scan(t.md, UIDL_SOURCE_GANNET, &s, &error) != MAILDIR_OK || s.count != 43 ||
	    s.total_size != total + 40 * 77)
		return 13;
	maildir_snapshot_free(&s);
	if (strstr(capture_end(), "No space left on device") == NULL)
		return 14;
	pathf(p, sizeof(p), "%s/%s", t.md, MINDEX_NAME);
	fd = open(p, O_RDONLY);
	na = read(fd, after, sizeof(after));
	close(fd);
	pathf(p, sizeof(p), "%s/%s", t.md, MINDEX_TMP_NAME);
	return na == nb && memcmp(before, after, (size_t)na) == 0 && access(p, F_OK) < 0 ? 0 : 15;
}

static void test_full_disk(void **state)
{
	int status;
	pid_t pid;

	if (geteuid() != 0) {
		print_message("not root: cannot mount a small tmpfs; full-disk test skipped\n");
		skip();
	}
	pid = fork();
	assert_true(pid >= 0);
	if (pid == 0)
		_exit(full_disk_child(*state));
	assert_int_equal(waitpid(pid, &status, 0), pid);
	assert_true(WIFEXITED(status));
	if (WEXITSTATUS(status) == CHILD_SKIP) {
		print_message("cannot mount tmpfs in a private namespace; test skipped\n");
		skip();
	}
	assert_int_equal(WEXITSTATUS(status), 0);
}

/* Retrieval times and Seen renames survive in the index; removed messages leave it. */
static void test_save_session_changes(void **state)
{
	struct fx *f = *state;
	struct maildir_snapshot s;
	ino_t ino;

	add_messages(f, 4);
	s = scan(f);
	assert_int_equal(maildir_msg_first_retrieved(&s, 0), 0);
	assert_true(maildir_msg_first_seen(&s, 0) >= time(NULL) - 60);
	assert_int_equal(maildir_snapshot_save(f->md, &s), 0); /* nothing to do */
	maildir_msg_set_retrieved(&s, 0, 1750000000);
	maildir_msg_set_retrieved(&s, 0, 1760000000); /* the first retrieval counts */
	assert_int_equal(maildir_mark_seen(f->md, &s, 0), 0);
	assert_int_equal(maildir_unlink_msg(f->md, &s, 3), 0);
	assert_int_equal(s.count, 4);
	assert_int_equal(maildir_snapshot_save(f->md, &s), 0);
	maildir_snapshot_free(&s);
	ino = index_ino(f);
	s = scan(f);
	assert_int_equal(s.count, 3);
	assert_int_equal(maildir_msg_first_retrieved(&s, 0), 1750000000);
	assert_false(maildir_msg_in_new(&s, 0));
	maildir_snapshot_free(&s);
	assert_int_equal(index_ino(f), ino); /* the saved index matched the directory */
}

/* Odd names (spaces, 8-bit, DEL, no ":2,", infos that are not sorted letters) give the same
 * snapshot cold and warm. */
static void test_odd_names_warm(void **state)
{
	static const char *const rel[] = {
	    "cur/plain",     "new/sp ace",    "cur/\xc3\xa9t\xc3\xa9:2,S",
	    "new/del\x7f",   "cur/:2,S",      "new/a:b:2,RS",
	    "cur/x:2,",      "new/y:2,SR",    "cur/z:2,S,extra",
	    "new/w,S=1,W=3", "cur/tab\there", "new/q:2,abc",
	};
	struct fx *f = *state;
	struct maildir_snapshot s;
	char buf[MAILDIR_NAME_BUF];

	for (size_t i = 0; i < N_OF(rel); i++)
		put(f, rel[i], i % 3 ? "m\n" : "", 0);
	s = scan(f);
	assert_int_equal(s.count, N_OF(rel));
	remember(&s);
	maildir_snapshot_free(&s);
	s = scan(f);
	assert_int_equal(same_as_remembered(&s), 0);
	for (size_t i = 0; i < N_OF(rel); i++)
		assert_string_equal(maildir_msg_name(&s, find(&s, rel[i] + 4), buf), rel[i] + 4);
	maildir_snapshot_free(&s);
}

/* ---- UIDL sources ---- */

struct ufile {
	const char *rel, *body, *want; /* the UIDL expected */
};

/* Deliver U[0..N) in that order (mtimes 1000, 1001 ...), then scan cold and warm with SRC. */
static void uidl_case(const struct fx *f, enum uidl_source src, const struct ufile *u, size_t n)
{
	struct maildir_snapshot s;
	char buf[MAILDIR_NAME_BUF];

	for (size_t i = 0; i < n; i++)
		put(f, u[i].rel, u[i].body, 1000 + (time_t)i);
	for (int warm = 0; warm < 2; warm++) {
		s = scan_src(f, src);
		assert_int_equal(s.count, n);
		for (size_t i = 0; i < n; i++)
			if (strcmp(uidl(&s, i), u[i].want) != 0)
				fail_msg("%s scan, %s: UIDL %s, want %s", warm ? "warm" : "cold",
				         maildir_msg_name(&s, i, buf), uidl(&s, i), u[i].want);
		maildir_snapshot_free(&s);
	}
}

static void test_uidl_maildir(void **state)
{
	static const struct ufile u[] = {
	    {"cur/1700000000.M1P2.host,S=12,W=13:2,S", "x\n", "1700000000.M1P2.host,S=12,W=13"},
	    {"new/a b", "x\n", "Hc8687a08aa5d6ed2044328fa6a697ab8e96dc342"},
	    {"cur/x:y:2,RS", "x\n", "x:y"},
	    {"cur/"
	     "1700000001.M1P2.host,S=12,"
	     "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx",
	     "", "H5dc80b74d4bf50f5d7630d1c87c04076cb956f30"},
	};

	uidl_case(*state, UIDL_SOURCE_MAILDIR, u, N_OF(u));
}

static void put_uidlist(const struct fx *f, const char *text)
{
	char p[512];

	pathf(p, sizeof(p), "%s/dovecot-uidlist", f->md);
	write_file(p, text, strlen(text));
}

/* Dovecot's %08Xu%08Xv, its P extension, corrupt lines skipped and counted, unlisted messages on
 * Gannet UIDLs; version 1 files; a missing or broken file. */
static void test_uidl_dovecot(void **state)
{
	static const struct ufile u[] = {
	    {"cur/1276528487.M364837P9451.kurkku,S=1355,W=1394:2,S", "a\n", "000061ae4c0907b0"},
	    {"new/1276533073.M242911P3632.kurkku", "b\n", "000061b94c0907b0"},
	    {"cur/base-only:2,S", "", "base-only"},
	    {"cur/popsaved", "", "my-old-uidl-42"},
	    {"cur/longp", "", "longp"},
	    {"new/unlisted", "", "unlisted"},
	};
	static const struct ufile v1[] = {{"cur/msgfile:2,S", "", "00000005000004d2"}};
	char longp[81], longline[9001], *text = malloc(16384);
	const char *log;

	memset(longp, '7', 80);
	longp[80] = '\0';
	memset(longline, 'L', 9000); /* too long to be a record */
	longline[9000] = '\0';
	assert_non_null(text);
	assert_true(snprintf(text, 16384,
	                     "3 V1275660208 N25030 G3085f01b7f11094c501100008c4a11c1\n"
	                     "25006 :1276528487.M364837P9451.kurkku,S=1355,W=1394:2,\n"
	                     "25017 W2481 :1276533073.M242911P3632.kurkku:2,F\n"
	                     "25018 P :base-only\n25019 Pmy-old-uidl-42 G0123 :popsaved\n"
	                     "25020 P%s :longp\n"
	                     "garbage\n25021 :no/slash\n24000 :out-of-order\n25022 nocolon\n"
	                     "25023 :%s\n25024 :last\n",
	                     longp, longline) < 16384);
	put_uidlist(*state, text);
	free(text);
	capture_start();
	uidl_case(*state, UIDL_SOURCE_DOVECOT, u, N_OF(u));
	log = capture_end();
	expect_log(log, "5 corrupt lines skipped (first: line 7)");
	expect_log(log, "longp: no usable record in dovecot-uidlist, Gannet UIDL used (2 messages");
	for (int round = 0; round < 3; round++) {
		static const char *const text2[] = {"1 1234 10\n5 msgfile:2,S", NULL, "4 V1 N2\n"};
		static const char *const why[] = {"", "no dovecot-uidlist", "bad header line"};
		static const struct ufile gannet[] = {{"cur/msgfile:2,S", "", "msgfile"}};

		teardown(state);
		setup(state);
		if (text2[round] != NULL)
			put_uidlist(*state, text2[round]);
		capture_start();
		uidl_case(*state, UIDL_SOURCE_DOVECOT, round ? gannet : v1, 1);
		expect_log(capture_end(), why[round]);
	}
}

/* X-UIDL: header only, any case, unfolded and trimmed, legal or not at all; read once (a warm
 * scan of unreadable files gives the same); collisions go to the later message, whose GANNET form
 * may be taken too ("zz"), then to a salted hash. The message the index knew keeps its UIDL. */
static void test_uidl_xuidl(void **state)
{
	static const struct ufile u[] = {
	    {"new/m1", "X-UIDL: abc123\r\nSubject: x\r\n\r\nbody\r\n", "abc123"},
	    {"cur/m2:2,S", "Subject: y\nx-uidl:   spaced  \n\nb\n", "spaced"},
	    {"cur/m3:2,S", "X-UIDL:\n\tfolded-value\nSubject: z\n\n", "folded-value"},
	    {"new/m4", "X-UIDL: has space\n\n", "m4"},
	    {"new/m5", "Subject: a\n\nX-UIDL: in-body\n", "m5"},
	    {"new/m6", "X-UIDL: abc123\n\n", "m6"},
	    {"new/m7,W=20", "X-UIDL: fromw\n\n", "fromw"},
	    {"new/m8",
	     "X-UIDL: 01234567890123456789012345678901234567890123456789012345678901234567890\n",
	     "m8"},
	    {"new/m9", "X-UIDL: zz\n\n", "zz"},
	    {"new/zz", "no header at all", "H28d143aa95e87c0891d3cd161d7962cc71caa16f"},
	};
	struct fx *f = *state;
	struct maildir_snapshot s;
	int rc;

	uidl_case(f, UIDL_SOURCE_XUIDL, u, N_OF(u));
	s = scan_src(f, UIDL_SOURCE_XUIDL);
	assert_int_equal(maildir_msg_size(&s, 6), 20); /* ",W=" believed: 15 <= 20 <= 32 */
	remember(&s);
	maildir_snapshot_free(&s);
	chmod_all(f, 0);
	child_src = UIDL_SOURCE_XUIDL;
	rc = unprivileged(f, warm_child);
	child_src = UIDL_SOURCE_GANNET;
	if (rc != CHILD_SKIP)
		assert_int_equal(rc, 0);
	chmod_all(f, 0600);
	put(f, "new/early", "X-UIDL: abc123\n\n", 10);
	s = scan_src(f, UIDL_SOURCE_XUIDL);
	assert_string_equal(uidl(&s, 0), "early");
	assert_string_equal(uidl(&s, find(&s, "m1")), "abc123");
	maildir_snapshot_free(&s);
	/* Another source: the UIDLs are made again, sizes are kept. */
	s = scan(f);
	assert_string_equal(uidl(&s, find(&s, "m1")), "m1");
	assert_int_equal(maildir_msg_size(&s, find(&s, "m7,W=20")), 20);
	maildir_snapshot_free(&s);
}

/* GANNET: a unique part that spells another message's hashed UIDL gets a salted hash. */
static void test_uidl_collision_gannet(void **state)
{
	struct fx *f = *state;
	char rel[128], hashed[POP3_UIDL_MAX + 1], salted[POP3_UIDL_MAX + 1];
	struct maildir_snapshot s;

	memset(rel, 'a', 84);
	memcpy(rel, "cur/", 4);
	rel[84] = '\0';
	maildir_uidl(rel + 4, hashed);
	assert_int_equal(uidl_hashed(hashed, strlen(hashed), 1, salted), UIDL_HASHED_LEN);
	put(f, rel, "x\n", 100);
	pathf(rel, sizeof(rel), "cur/%s", hashed);
	put(f, rel, "y\n", 200);
	for (int warm = 0; warm < 2; warm++) {
		s = scan(f);
		assert_string_equal(uidl(&s, 0), hashed);
		assert_string_equal(uidl(&s, 1), salted);
		maildir_snapshot_free(&s);
	}
}

/* ---- other agents at work ---- */

/* A message renamed by another agent after the scan (an IMAP client setting flags) is followed
 * by RETR, Seen and DELE: found again by its unique part. */
static void test_follow_renames(void **state)
{
	struct fx *f = *state;
	struct maildir_snapshot s;
	char buf[MAILDIR_NAME_BUF], p[512];
	int fd;

	put(f, "new/r1", "x\n", 100);
	put(f, "new/r2", "y\n", 200);
	s = scan(f);
	mv(f, "new/r1", "cur/r1:2,S");
	fd = maildir_open_msg(f->md, &s, 0);
	assert_true(fd >= 0);
	close(fd);
	assert_string_equal(maildir_msg_name(&s, 0, buf), "r1:2,S");
	mv(f, "cur/r1:2,S", "cur/r1:2,FRS");
	mv(f, "new/r2", "cur/r2:2,");
	assert_int_equal(maildir_unlink_msg(f->md, &s, 0), 0);
	assert_int_equal(maildir_mark_seen(f->md, &s, 1), 0);
	assert_string_equal(maildir_msg_name(&s, 1, buf), "r2:2,S");
	pathf(p, sizeof(p), "%s/cur/r1:2,FRS", f->md);
	assert_int_equal(access(p, F_OK), -1);
	assert_int_equal(maildir_snapshot_save(f->md, &s), 0);
	maildir_snapshot_free(&s);
	s = scan(f);
	assert_int_equal(s.count, 1);
	maildir_snapshot_free(&s);
}

/* S-142: the file went away from outside; the caller answers -ERR and goes on. */
static void test_mark_seen_vanished(void **state)
{
	struct fx *f = *state;
	struct maildir_snapshot s;
	char buf[MAILDIR_NAME_BUF], path[512];

	put(f, "new/gone", "x\n", 0);
	s = scan(f);
	pathf(path, sizeof(path), "%s/new/gone", f->md);
	assert_int_equal(unlink(path), 0);
	errno = 0;
	assert_int_equal(maildir_mark_seen(f->md, &s, 0), -1);
	assert_int_equal(errno, ENOENT);
	assert_string_equal(maildir_msg_name(&s, 0, buf), "gone");
	assert_true(maildir_msg_in_new(&s, 0));
	maildir_snapshot_free(&s);
}

/* Mail moved from new/ to cur/ while scans run is in every snapshot exactly once: cold scans
 * (files examined after the listing) and warm ones alike. */
static void test_move_race(void **state)
{
	enum { N = 400 };
	struct fx *f = *state;
	char rel[64], idx[512];
	int status, scans = 0;
	pid_t pid;

	for (int i = 0; i < N; i++) {
		snprintf(rel, sizeof(rel), "new/m%d", i);
		put(f, rel, "Subject: race\n\nbody\n", 0);
	}
	pathf(idx, sizeof(idx), "%s/%s", f->md, MINDEX_NAME);
	pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		for (int i = 0; i < N; i++) {
			char a[512], b[512];
			snprintf(a, sizeof(a), "%s/new/m%d", f->md, i);
			snprintf(b, sizeof(b), "%s/cur/m%d:2,S", f->md, i);
			if (rename(a, b) < 0) /* no cmocka assertion in a child */
				_exit(1);
			usleep(300);
		}
		_exit(0);
	}
	while (waitpid(pid, &status, WNOHANG) == 0 || scans < 2) {
		static bool seen[N];
		struct maildir_snapshot s;

		if (scans++ % 2)
			unlink(idx);
		s = scan(f);
		assert_int_equal(s.count, N);
		memset(seen, 0, sizeof(seen));
		for (size_t i = 0; i < s.count; i++) {
			int k = (int)strtol(uidl(&s, i) + 1, NULL, 10);
			assert_true(k >= 0 && k < N && !seen[k]);
			seen[k] = true;
			assert_int_equal(maildir_msg_size(&s, i), 23);
		}
		maildir_snapshot_free(&s);
	}
	assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 0);
	print_message("%d scans raced with %d moves\n", scans, N);
}

/* ---- memory ---- */

static size_t heap_used(void)
{
#ifdef TEST_ASAN
	return __sanitizer_get_current_allocated_bytes();
#else
	struct mallinfo2 mi = mallinfo2();
	return mi.uordblks + mi.hblkhd;
#endif
}

/* Issue 3: a 100,000-message snapshot takes under 100 octets a message beyond its UIDLs, after a
 * cold scan and after a warm one. */
static void test_memory_100k(void **state)
{
	enum { N = 100000 };
	struct fx *f = *state;
	struct maildir_snapshot s;
	struct timespec t0, t1;
	size_t before, used[2], uidl_bytes = 0;
	double ms[2];
	char name[128];
	int dfd;

	pathf(name, sizeof(name), "%s/cur", f->md);
	assert_true((dfd = open(name, O_RDONLY | O_DIRECTORY)) >= 0);
	for (int i = 0; i < N; i++) {
		/* Dovecot-style names: unique part, S= and W= sizes, flags. */
		snprintf(name, sizeof(name), "%d.M%06dP%d.mx.example.org,S=%d,W=%d:2,%s",
		         1600000000 + i, i, 4000 + i % 1000, 4000 + i % 97, 4100 + i % 97,
		         i % 3 ? "S" : "RS");
		int fd = openat(dfd, name, O_WRONLY | O_CREAT | O_CLOEXEC, 0600);
		assert_true(fd >= 0 && ftruncate(fd, 4000 + i % 97) == 0); /* sparse: S= is true */
		close(fd);
	}
	close(dfd);
	for (int warm = 0; warm < 2; warm++) {
		clock_gettime(CLOCK_MONOTONIC, &t0);
		before = heap_used();
		s = scan(f);
		used[warm] = heap_used() - before;
		clock_gettime(CLOCK_MONOTONIC, &t1);
		ms[warm] =
		    (double)(t1.tv_sec - t0.tv_sec) * 1e3 + (double)(t1.tv_nsec - t0.tv_nsec) / 1e6;
		assert_int_equal(s.count, N);
		for (size_t i = 0; !warm && i < s.count; i++) {
			size_t len;
			maildir_msg_uidl(&s, i, &len);
			uidl_bytes += len;
		}
		maildir_snapshot_free(&s);
		assert_true((double)(used[warm] - uidl_bytes) / N < 100.0);
	}
	print_message("100k messages: snapshot %zu octets cold, %zu warm: %.1f a message beyond "
	              "%zu UIDL octets; cold scan %.0f ms, warm %.0f ms\n",
	              used[0], used[1], (double)(used[1] - uidl_bytes) / N, uidl_bytes, ms[0],
	              ms[1]);
}

/* Directory stamps (mindex.h): a scan skips the readdirs only while new/ and cur/ are unchanged
 * since the index was written, and every add, remove or rename is still noticed. The directories
 * must be older than MINDEX_STAMP_MARGIN_NS to get a stamp at all, hence the one wait. */
static void test_dir_stamps(void **state)
{
	struct fx *f = *state;
	struct maildir_snapshot s;
	struct timespec wait = {MINDEX_STAMP_MARGIN_NS / 1000000000, 200 * 1000 * 1000};
	char p[512];
	ino_t ino;

	add_messages(f, 12);
	s = scan(f); /* the directories just changed: no stamp */
	assert_true(s.listed);
	assert_int_equal(s.dirs[0].ino, 0);
	assert_int_equal(s.dirs[1].ino, 0);
	remember(&s);
	maildir_snapshot_free(&s);
	nanosleep(&wait, NULL);
	ino = index_ino(f);
	s = scan(f); /* old enough now: listed once more, and the stamps recorded */
	assert_true(s.listed && s.dirs[0].ino != 0 && s.dirs[1].ino != 0);
	assert_int_equal(same_as_remembered(&s), 0);
	maildir_snapshot_free(&s);
	assert_true(index_ino(f) != ino);
	ino = index_ino(f);
	s = scan(f); /* unchanged: the index is the listing, and it is not rewritten */
	assert_false(s.listed);
	assert_int_equal(same_as_remembered(&s), 0);
	assert_int_equal(maildir_msg_mtime(&s, 3), 1700000003);
	maildir_snapshot_free(&s);
	assert_int_equal(index_ino(f), ino);
	maildir_scan_trust_stamps(false); /* shared storage: always listed */
	s = scan(f);
	maildir_scan_trust_stamps(true);
	assert_true(s.listed);
	assert_int_equal(same_as_remembered(&s), 0);
	maildir_snapshot_free(&s);

	/* A rename in cur/ (flags), a removal from new/, a delivery: each noticed at once. */
	mv(f, "cur/1700000001.M1P1.host:2,S", "cur/1700000001.M1P1.host:2,FS");
	s = scan(f);
	assert_true(s.listed);
	assert_int_equal(s.count, 12);
	find(&s, "1700000001.M1P1.host:2,FS");
	maildir_snapshot_free(&s);
	pathf(p, sizeof(p), "%s/new/1700000002.M2P1.host", f->md);
	assert_int_equal(unlink(p), 0);
	s = scan(f);
	assert_true(s.listed);
	assert_int_equal(s.count, 11);
	maildir_snapshot_free(&s);
	put(f, "new/1800000000.M99P1.host", "late\n", 1800000000);
	s = scan(f);
	assert_true(s.listed);
	assert_int_equal(s.count, 12);
	assert_string_equal(uidl(&s, 11), "1800000000.M99P1.host");
	/* Changed just now: the index written carries no stamp, so the next scan lists too. */
	assert_int_equal(s.dirs[0].ino, 0);
	maildir_snapshot_free(&s);
	s = scan(f);
	assert_true(s.listed);
	maildir_snapshot_free(&s);
}

/* uidl_source = dovecot numbers messages by Dovecot UID, as Dovecot does, whatever the mtimes say;
 * messages dovecot-uidlist does not know follow in delivery order. The index keeps that order,
 * so the next scan finds it sorted and does not rewrite the index. */
static void test_dovecot_uid_order(void **state)
{
	struct fx *f = *state;
	struct maildir_snapshot s;
	ino_t ino;

	put(f, "cur/a:2,S", "a\n", 300);
	put(f, "cur/b:2,S", "b\n", 200);
	put(f, "new/c", "c\n", 100);
	put(f, "new/z", "z\n", 50); /* unknown to Dovecot: last, although oldest */
	put_uidlist(f, "3 V1275660208 N4 G0\n1 :a:2,S\n2 :b:2,S\n3 :c\n");
	s = scan_src(f, UIDL_SOURCE_DOVECOT);
	assert_int_equal(s.count, 4);
	assert_string_equal(uidl(&s, 0), "000000014c0907b0");
	assert_string_equal(uidl(&s, 1), "000000024c0907b0");
	assert_string_equal(uidl(&s, 2), "000000034c0907b0");
	assert_string_equal(uidl(&s, 3), "z");
	maildir_snapshot_free(&s);
	ino = index_ino(f);
	s = scan_src(f, UIDL_SOURCE_DOVECOT);
	assert_string_equal(uidl(&s, 0), "000000014c0907b0");
	assert_string_equal(uidl(&s, 3), "z");
	maildir_snapshot_free(&s);
	assert_int_equal(index_ino(f), ino);
	s = scan(f); /* the GANNET source keeps delivery order */
	assert_string_equal(uidl(&s, 0), "z");
	assert_string_equal(uidl(&s, 3), "a");
	maildir_snapshot_free(&s);
}

/* A first scan of a big maildrop sizes its files on several threads (maildir.c, "examining many
 * files at once"): the sizes, the skipped non-files and an error on one file come out as from
 * one thread. */
#define PAR_N 700

static int par_child(const struct fx *f)
{
	struct maildir_snapshot s;
	const char *error = NULL;
	int rc = maildir_scan(f->md, UIDL_SOURCE_GANNET, &s, &error);

	if (rc != MAILDIR_ERR_PERM || error == NULL || strstr(error, "/cur/p611:2,S") == NULL ||
	    strstr(error, "Permission denied") == NULL) {
		fprintf(stderr, "  (child: %d %s)\n", rc, error ? error : "?");
		return 1;
	}
	return 0;
}

static void test_parallel_examine(void **state)
{
	struct fx *f = *state;
	struct maildir_snapshot s;
	char rel[64], body[64], p[512];
	uint64_t total = 0;
	int rc;

	for (int i = 0; i < PAR_N; i++) {
		int n = snprintf(body, sizeof(body), "Subject: %d\n\n%.*s", i, i % 40,
		                 "xxxxxxxx"
		                 "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx");
		pathf(rel, sizeof(rel), "%s/p%d%s", i % 2 ? "cur" : "new", i, i % 2 ? ":2,S" : "");
		put(f, rel, body, 1700000000 + i);
		/* every LF becomes CRLF, and a body without a final newline gets one */
		total += (uint64_t)n + 2 + (i % 40 ? 2 : 0);
	}
	pathf(p, sizeof(p), "%s/cur/fifo:2,", f->md);
	assert_int_equal(mkfifo(p, 0600), 0);
	pathf(p, sizeof(p), "%s/cur/link:2,", f->md);
	assert_int_equal(symlink("/etc/passwd", p), 0);
	s = scan(f);
	assert_int_equal(s.count, PAR_N);
	assert_int_equal(s.total_size, total);
	assert_int_equal(maildir_msg_size(&s, find(&s, "p7:2,S")), 19 + 2 + 2);
	assert_string_equal(uidl(&s, 0), "p0");
	maildir_snapshot_free(&s);
	/* No index, one unreadable file among them: the scan fails and names that file. */
	pathf(p, sizeof(p), "%s/%s", f->md, MINDEX_NAME);
	assert_int_equal(unlink(p), 0);
	pathf(p, sizeof(p), "%s/cur/p611:2,S", f->md);
	assert_int_equal(chmod(p, 0), 0);
	if ((rc = unprivileged(f, par_child)) == CHILD_SKIP)
		skip();
	assert_int_equal(rc, 0);
}

/* An index written by a Gannet before directory stamps (version 1) still loads, with no
 * stamps; the next scan that writes one writes version 2. */
static void test_version1_index(void **state)
{
	unsigned char v2[1024], v1[1024];
	struct ents in, out = {.stop_at = -1};
	struct mindex_head h;
	const char *why = NULL;
	size_t len = sample(v2, sizeof(v2), &in);
	uint32_t crc;

	(void)state;
	memcpy(v1, v2, MINDEX_HDR_V1);
	memcpy(v1 + MINDEX_HDR_V1, v2 + MINDEX_HDR_SIZE, len - MINDEX_HDR_SIZE);
	len -= MINDEX_HDR_SIZE - MINDEX_HDR_V1;
	v1[8] = 1;
	crc = mindex_crc32c(0, v1, MINDEX_CRC_GAP);
	crc = mindex_crc32c(crc, v1 + MINDEX_HDR_V1, len - MINDEX_HDR_V1);
	for (int i = 0; i < 4; i++)
		v1[20 + i] = (unsigned char)(crc >> (8 * i));
	assert_int_equal(mindex_read_mem(v1, len, &h, collect_cb, &out, &why), MINDEX_LOADED);
	assert_true(h.source == UIDL_SOURCE_DOVECOT && h.count == 3 && out.n == 3);
	assert_int_equal(h.dirs[0].ino, 0);
	assert_int_equal(h.dirs[1].ino, 0);
	v1[30] ^= 1; /* the checksum covers the entries as in version 2 */
	assert_int_equal(mindex_read_mem(v1, len, &h, collect_cb, &out, &why), MINDEX_REJECTED);
}

int main(void)
{
#define T(name) cmocka_unit_test_setup_teardown(name, setup, teardown)
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_crc32c),
	    cmocka_unit_test(test_format),
	    T(test_save_no_follow),
	    T(test_warm_scan_opens_nothing),
	    T(test_incremental),
	    T(test_w_field),
	    T(test_bad_index_rebuilt),
	    T(test_read_only_maildir),
	    T(test_full_disk),
	    T(test_save_session_changes),
	    T(test_odd_names_warm),
	    T(test_uidl_maildir),
	    T(test_uidl_dovecot),
	    T(test_uidl_xuidl),
	    T(test_uidl_collision_gannet),
	    T(test_follow_renames),
	    T(test_mark_seen_vanished),
	    T(test_move_race),
	    T(test_memory_100k),
	    T(test_dir_stamps),
	    T(test_parallel_examine),
	    T(test_dovecot_uid_order),
	    cmocka_unit_test(test_version1_index),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
