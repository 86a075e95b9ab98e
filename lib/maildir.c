/* Maildir access: the scan of new/ and cur/ against gannet.index into a compact snapshot. One
 * message at a time: maildir_msg.c; the lock: maildir_lock.c; UPDATE: maildir_update.c. */
#include "maildir.h"
#include "maildir_int.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <unistd.h>

#include "errmsg.h"
#include "fdio.h"
#include "log.h"
#include "strnum.h"

/* Edge case 10: sizes and offsets must stay 64-bit on 32-bit hosts too. */
_Static_assert(sizeof(off_t) == 8, "build with -D_FILE_OFFSET_BITS=64");
_Static_assert(MAILDROP_MESSAGES_MAX < SIZE_MAX / sizeof(struct mindex_rec), "message cap");

/* Thread-local: sessions scanned by different threads never overwrite each other's message. */
static _Thread_local char maildir_errbuf[ERRMSG_MAX];

int maildir_err_class(int e)
{
	switch (e) {
	case EMFILE:
	case ENFILE:
	case EIO:
	case ENOMEM:
	case ENOSPC:
	case EDQUOT:
	case EINTR:
	case EAGAIN:
	case ENOBUFS:
	case ESTALE:
	case ETIMEDOUT:
		return MAILDIR_ERR_TEMP;
	default:
		return MAILDIR_ERR_PERM;
	}
}

int maildir_fail(int cls, const char **error_r, const char *fmt, ...)
{
	va_list ap;

	/* errno survives: maildir_lock() reports through it what the scan reports here */
	va_start(ap, fmt);
	errmsg_vformat(maildir_errbuf, sizeof(maildir_errbuf), fmt, ap);
	va_end(ap);
	if (error_r != NULL)
		*error_r = maildir_errbuf;
	return cls;
}

/* Open the Maildir root, creating it (with new/ cur/ tmp/) when missing, as Dovecot does, so that
 * a user who never received mail gets an empty maildrop rather than an error. */
int maildir_root_open(const char *dir, int *fd_r, const char **error_r)
{
	int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);

	if (fd < 0 && errno == ENOENT) {
		if (mkdir(dir, 0700) < 0 && errno != EEXIST) {
			int e = errno;
			if (e == ENOENT)
				return maildir_fail(MAILDIR_ERR_PERM, error_r,
				                    "maildir %s: parent directory does not exist",
				                    dir);
			return maildir_fail(maildir_err_class(e), error_r, "maildir %s: mkdir: %s",
			                    dir, strerror(e));
		}
		fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
		if (fd >= 0) {
			for (size_t i = 0; i < 3; i++) {
				const char *sub = i < 2 ? maildir_subdir(i) : "tmp";
				if (mkdirat(fd, sub, 0700) < 0 && errno != EEXIST) {
					int e = errno;
					close(fd);
					errno = e;
					return maildir_fail(maildir_err_class(e), error_r,
					                    "maildir %s/%s: mkdir: %s", dir, sub,
					                    strerror(e));
				}
			}
		}
	}
	if (fd < 0) {
		int e = errno;
		return maildir_fail(maildir_err_class(e), error_r, "maildir %s: open: %s", dir,
		                    strerror(e));
	}
	*fd_r = fd;
	return MAILDIR_OK;
}

/* ---- the scan ---- */

/* A scan starts from gannet.index: one record per entry, in the index's (delivery) order, each
 * keyed by unique part in BYNAME. One readdir of new/ then cur/ claims them (MREC_LISTED) or adds
 * records for files the index lacks; what is left unclaimed has vanished. */
#define MREC_LISTED (1 << 8)
/* Arena octets reserved per indexed message before the names come in: a Dovecot name with ",S="
 * and ",W=" is about 70. More is grown as needed, and the excess given back by shrink(). */
#define ARENA_GUESS 72

struct scan_ctx {
	const char *dir;
	struct maildir_snapshot *snap;
	enum uidl_source source;
	const char **error_r;
	int rootfd, subfd[2];
	size_t cap;                 /* records allocated */
	struct mindex_hash byname;  /* unique part -> record */
	struct maildir_readbuf buf; /* for reading files */
	time_t now;
	struct mindex_head head; /* of the index read */
	bool stamps_checked;     /* the index's stamps were compared with the live ones */
	bool trusted; /* ... and matched: the index lists what new/ and cur/ hold, no readdir */
	bool changed; /* the index must be rewritten */
};

/* See maildir_scan_trust_stamps(). */
static bool trust_stamps = true;

void maildir_scan_trust_stamps(bool on)
{
	trust_stamps = on;
}

static int oom(struct scan_ctx *sc)
{
	errno = ENOMEM;
	return maildir_fail(MAILDIR_ERR_TEMP, sc->error_r, "maildir %s: out of memory", sc->dir);
}

static bool byname_eq(void *arg, uint32_t v, const void *key, size_t len)
{
	struct maildir_snapshot *snap = arg;
	const struct mindex_rec *r = &snap->msgs[v];

	return r->unique_len == len && memcmp(snap->arena.p + r->name_off, key, len) == 0;
}

static const void *byname_key(void *arg, uint32_t v, size_t *len_r)
{
	struct maildir_snapshot *snap = arg;

	*len_r = snap->msgs[v].unique_len;
	return snap->arena.p + snap->msgs[v].name_off;
}

/* Room in BYNAME for one more record, so that a slot found stays valid until it is filled. */
static int byname_room(struct scan_ctx *sc)
{
	size_t n = sc->snap->count;

	if (n < mindex_hash_room(&sc->byname))
		return MAILDIR_OK;
	return mindex_hash_resize(&sc->byname, 2 * n + 256, byname_key, sc->snap) < 0 ? oom(sc)
	                                                                              : MAILDIR_OK;
}

/* A new record named NAME[0..LEN) (its unique part not in BYNAME yet): its number, or -1. */
static ssize_t add_record(struct scan_ctx *sc, const char *name, size_t len, bool in_new)
{
	struct maildir_snapshot *snap = sc->snap;
	struct mindex_rec *r;

	if (snap->count >= MAILDROP_MESSAGES_MAX) {
		log_warnx("maildir %s: more than %d messages, refusing the maildrop", sc->dir,
		          MAILDROP_MESSAGES_MAX);
		return maildir_fail(MAILDIR_ERR_TEMP, sc->error_r,
		                    "maildir %s: more than %d messages", sc->dir,
		                    MAILDROP_MESSAGES_MAX);
	}
	if (snap->count == sc->cap) {
		/* Edge case 11: geometric growth keeps 100k+ messages linear. */
		size_t ncap = sc->cap < 256 ? 256 : sc->cap * 2;
		struct mindex_rec *n;

		if (ncap > MAILDROP_MESSAGES_MAX)
			ncap = MAILDROP_MESSAGES_MAX;
		n = realloc(snap->msgs, ncap * sizeof(*n));
		if (n == NULL)
			return oom(sc);
		snap->msgs = n;
		sc->cap = ncap;
	}
	r = &snap->msgs[snap->count];
	memset(r, 0, sizeof(*r));
	if (mindex_rec_set_name(&snap->arena, r, name, len, in_new) < 0)
		return oom(sc);
	return (ssize_t)snap->count++;
}

/* Do new/ and cur/ still carry the stamps the index was written with (decided once, when the
 * header has been read)? Only an index of the wanted UIDL source counts: another one needs every
 * UIDL made anew anyway. */
static bool stamps_match(struct scan_ctx *sc)
{
	if (!sc->stamps_checked) {
		sc->stamps_checked = true;
		sc->trusted = trust_stamps && sc->head.source == (uint32_t)sc->source &&
		              mindex_stamp_eq(&sc->head.dirs[MINDEX_DIR_NEW],
		                              &sc->snap->dirs[MINDEX_DIR_NEW]) &&
		              mindex_stamp_eq(&sc->head.dirs[MINDEX_DIR_CUR],
		                              &sc->snap->dirs[MINDEX_DIR_CUR]);
	}
	return sc->trusted;
}

/* Fill record R from index entry E. */
static int loaded_rec(struct scan_ctx *sc, struct mindex_rec *r, const struct mindex_entry *e)
{
	r->flags |= MREC_KNOWN | MREC_TIMES;
	r->size = e->size;
	r->mtime = e->mtime;
	r->first_seen = mindex_time32(e->first_seen);
	r->first_retrieved = mindex_time32(e->first_retrieved);
	if (sc->head.source != (uint32_t)sc->source)
		return 0;
	r->flags |= MREC_UIDL_IDX;
	return mindex_rec_set_uidl(&sc->snap->arena, r, e->uidl, e->uidl_len);
}

/* Fault in the pages of a fresh big allocation with one call: touched one by one they cost a
 * page fault each (some 2,500 for a 100,000-message snapshot), and in a virtual machine those
 * faults were most of a warm login. Best effort: kernels before 5.14 lack MADV_POPULATE_WRITE. */
static void prefault(void *p, size_t len)
{
	uintptr_t pg = (uintptr_t)sysconf(_SC_PAGESIZE);
	uintptr_t a = ((uintptr_t)p + pg - 1) & ~(pg - 1), b = ((uintptr_t)p + len) & ~(pg - 1);

	if (p != NULL && b > a)
		(void)madvise((void *)a, b - a, MADV_POPULATE_WRITE);
}

/* An index entry becomes a record: provisional until the whole file checks out. */
static int load_cb(void *arg, const struct mindex_entry *e)
{
	struct scan_ctx *sc = arg;
	struct maildir_snapshot *snap = sc->snap;
	uint32_t *slot;
	ssize_t i;

	/* The header gave the count: size everything once instead of growing it. */
	if (sc->cap == 0 && sc->head.count > 0) {
		size_t n = sc->head.count + sc->head.count / 16 + 64;
		if (n > MAILDROP_MESSAGES_MAX)
			n = MAILDROP_MESSAGES_MAX;
		snap->msgs = malloc(n * sizeof(*snap->msgs));
		snap->arena.p = malloc(n * ARENA_GUESS);
		prefault(snap->msgs, n * sizeof(*snap->msgs));
		prefault(snap->arena.p, n * ARENA_GUESS);
		if (snap->msgs == NULL || snap->arena.p == NULL ||
		    (!stamps_match(sc) && mindex_hash_resize(&sc->byname, n, byname_key, snap) < 0))
			return -1;
		sc->cap = n;
		snap->arena.cap = n * ARENA_GUESS;
	}
	if (stamps_match(sc)) {
		/* Nothing was added, removed or renamed since the index was written (its entries
		 * hold distinct unique parts, as every scan that wrote one made sure): the entry
		 * stands for a file a readdir would list, and no lookup table is needed. */
		if ((i = add_record(sc, e->name, e->name_len, e->in_new)) < 0)
			return -1;
		snap->msgs[i].flags |= MREC_LISTED;
		return loaded_rec(sc, &snap->msgs[i], e);
	}
	if (byname_room(sc) != MAILDIR_OK)
		return -1;
	slot = mindex_hash_slot(&sc->byname, e->name, maildir_unique_len(e->name, e->name_len),
	                        byname_eq, snap);
	if (*slot != 0)
		return 0; /* a second entry for one unique part: the first counts */
	if ((i = add_record(sc, e->name, e->name_len, e->in_new)) < 0)
		return -1;
	*slot = (uint32_t)i + 1;
	return loaded_rec(sc, &snap->msgs[i], e);
}

static int load_index(struct scan_ctx *sc)
{
	struct maildir_snapshot *snap = sc->snap;
	const char *why = "";
	int rc = mindex_load(sc->rootfd, &sc->head, load_cb, sc, &why);

	if (rc == MINDEX_LOADED) {
		if (sc->head.source != (uint32_t)sc->source || snap->count != sc->head.count)
			sc->changed = true;
		if (sc->head.count == 0)
			(void)stamps_match(sc); /* no entry called back */
		return MAILDIR_OK;
	}
	/* Never trusted: forget whatever the entries read so far gave. */
	sc->trusted = false;
	snap->count = 0;
	snap->arena.len = 0;
	memset(sc->byname.slots, 0, (sc->byname.mask + 1) * sizeof(*sc->byname.slots));
	sc->changed = true;
	if (rc == MINDEX_ABORTED)
		return oom(sc);
	if (rc == MINDEX_REJECTED || rc == MINDEX_IOERR)
		log_warnx("maildir %s: %s ignored and rebuilt: %s", sc->dir, MINDEX_NAME, why);
	return MAILDIR_OK;
}

/* Two files with one unique part (new/X beside cur/X:2,S after a crash or a careless copy, or a
 * message moved while we listed): RFC 1939 §7 wants one UIDL per message. Keep the one that is
 * still a regular file, then the first by (mtime, name, cur before new). Rare: stats are fine.
 * Returns the record kept; the other is MREC_GONE. */
static uint32_t dup_pick(struct scan_ctx *sc, uint32_t a, uint32_t b)
{
	struct maildir_snapshot *snap = sc->snap;
	struct mindex_rec *ra = &snap->msgs[a], *rb = &snap->msgs[b];
	char na[MINDEX_NAME_BUF], nb[MINDEX_NAME_BUF], safe[256];
	struct stat sa, sb;
	bool oka, okb;
	int c;

	mindex_rec_name(&snap->arena, ra, na);
	mindex_rec_name(&snap->arena, rb, nb);
	oka = fstatat(sc->subfd[!(ra->flags & MREC_IN_NEW)], na, &sa, AT_SYMLINK_NOFOLLOW) == 0 &&
	      S_ISREG(sa.st_mode);
	okb = fstatat(sc->subfd[!(rb->flags & MREC_IN_NEW)], nb, &sb, AT_SYMLINK_NOFOLLOW) == 0 &&
	      S_ISREG(sb.st_mode);
	if (oka != okb) {
		c = oka ? -1 : 1;
	} else {
		int64_t ta = oka ? sa.st_mtim.tv_sec : 0, tb = okb ? sb.st_mtim.tv_sec : 0;
		c = ta != tb ? (ta < tb ? -1 : 1) : strcmp(na, nb);
		if (c == 0)
			c = (ra->flags & MREC_IN_NEW) - (rb->flags & MREC_IN_NEW);
	}
	(c <= 0 ? rb : ra)->flags |= MREC_GONE;
	log_sanitize(safe, sizeof(safe), c <= 0 ? nb : na, strlen(c <= 0 ? nb : na));
	if (oka && okb)
		log_warnx("maildir %s: duplicate unique name, ignoring %s/%s", sc->dir,
		          maildir_sub_of(c <= 0 ? rb : ra), safe);
	else
		log_debug("maildir %s: %s/%s moved while listed", sc->dir,
		          maildir_sub_of(c <= 0 ? rb : ra), safe);
	sc->changed = true;
	return c <= 0 ? a : b;
}

/* Does record R already carry the name NAME[0..LEN) in that directory? 0 yes, 1 only its flags or
 * directory differ, 2 its base name differs (",S=" rewritten, say: the file is examined anew). */
static int name_differs(const struct maildir_snapshot *snap, const struct mindex_rec *r,
                        const char *name, size_t len, bool in_new)
{
	const char *b;
	size_t blen = mindex_rec_base(&snap->arena, r, &b);
	uint64_t info;

	if (maildir_base_len(name, len) != blen || memcmp(b, name, blen) != 0)
		return 2;
	if (!(r->flags & MREC_IN_NEW) != !in_new)
		return 1;
	if (r->flags & MREC_RAW)
		return len != r->name_len || memcmp(b, name, len) != 0;
	return !mindex_info_bits(name, len, blen, &info) || info != r->info ||
	       (blen < len) != ((r->flags & MREC_INFO) != 0);
}

/* One directory entry: claim the record the index made for it, or add one. */
static int list_one(struct scan_ctx *sc, const char *name, bool in_new)
{
	struct maildir_snapshot *snap = sc->snap;
	size_t len = strlen(name);
	struct mindex_rec *r;
	uint32_t *slot;
	ssize_t i;
	int d;

	if (byname_room(sc) != MAILDIR_OK)
		return MAILDIR_ERR_TEMP;
	slot = mindex_hash_slot(&sc->byname, name, maildir_unique_len(name, len), byname_eq, snap);
	if (*slot != 0 && !((r = &snap->msgs[*slot - 1])->flags & MREC_LISTED)) {
		r->flags |= MREC_LISTED;
		if ((d = name_differs(snap, r, name, len, in_new)) == 0)
			return MAILDIR_OK;
		sc->changed = true;
		if (d == 2) /* keep the times only */
			r->flags &= (uint16_t) ~(MREC_KNOWN | MREC_UIDL | MREC_UIDL_IDX);
		return mindex_rec_set_name(&snap->arena, r, name, len, in_new) < 0 ? oom(sc)
		                                                                   : MAILDIR_OK;
	}
	sc->changed = true;
	if ((i = add_record(sc, name, len, in_new)) < 0)
		return (int)i;
	snap->msgs[i].flags |= MREC_LISTED;
	*slot = (*slot == 0 ? (uint32_t)i : dup_pick(sc, *slot - 1, (uint32_t)i)) + 1;
	return MAILDIR_OK;
}

/* The stamps of new/ and cur/ as of now, kept in the snapshot for the index it writes. */
static void take_stamps(struct scan_ctx *sc)
{
	struct timespec ts;
	int64_t now_ns;

	clock_gettime(CLOCK_REALTIME, &ts);
	now_ns = (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
	for (int s = 0; s < 2; s++)
		mindex_stamp_dir(sc->rootfd, maildir_subdir(s), now_ns, &sc->snap->dirs[s]);
}

/* Open new/ or cur/ into sc->subfd[S], creating it when missing. */
static int open_subdir(struct scan_ctx *sc, int s)
{
	const char *sub = maildir_subdir(s);
	const int flags = O_RDONLY | O_DIRECTORY | O_CLOEXEC;
	int dfd, e;

	dfd = openat(sc->rootfd, sub, flags);
	if (dfd < 0 && errno == ENOENT) {
		if (mkdirat(sc->rootfd, sub, 0700) < 0 && errno != EEXIST) {
			e = errno;
			return maildir_fail(maildir_err_class(e), sc->error_r,
			                    "maildir %s/%s: mkdir: %s", sc->dir, sub, strerror(e));
		}
		dfd = openat(sc->rootfd, sub, flags);
	}
	if (dfd < 0) {
		e = errno;
		return maildir_fail(maildir_err_class(e), sc->error_r, "maildir %s/%s: open: %s",
		                    sc->dir, sub, strerror(e));
	}
	sc->subfd[s] = dfd;
	return MAILDIR_OK;
}

/* One readdir of new/ or cur/, creating it when missing; nothing is stat'ed or opened here. */
static int list_subdir(struct scan_ctx *sc, int s)
{
	const char *sub = maildir_subdir(s);
	struct dirent *de;
	DIR *d;
	int dfd, e, rc = open_subdir(sc, s);

	if (rc != MAILDIR_OK)
		return rc;
	dfd = fcntl(sc->subfd[s], F_DUPFD_CLOEXEC, 0);
	d = dfd >= 0 ? fdopendir(dfd) : NULL;
	if (d == NULL) {
		e = errno;
		if (dfd >= 0)
			close(dfd);
		errno = e;
		return maildir_fail(maildir_err_class(e), sc->error_r,
		                    "maildir %s/%s: fdopendir: %s", sc->dir, sub, strerror(e));
	}
	for (;;) {
		errno = 0;
		de = readdir(d);
		if (de == NULL) {
			if (errno != 0) {
				e = errno;
				rc = maildir_fail(maildir_err_class(e), sc->error_r,
				                  "maildir %s/%s: readdir: %s", sc->dir, sub,
				                  strerror(e));
			}
			break;
		}
		/* S-140: ".", "..", and the temporaries of other tools are not messages. Edge
		 * case 31: nor is what the directory itself says is not a regular file. */
		if (de->d_name[0] == '.' || (de->d_type != DT_REG && de->d_type != DT_UNKNOWN))
			continue;
		rc = list_one(sc, de->d_name, s == 0);
		if (rc != MAILDIR_OK)
			break;
	}
	closedir(d);
	return rc;
}

/* Records of the index no directory listed: gone (expunged by another agent). */
static void drop_unlisted(struct scan_ctx *sc)
{
	for (size_t i = 0; i < sc->snap->count; i++) {
		struct mindex_rec *r = &sc->snap->msgs[i];

		if (!(r->flags & MREC_LISTED)) {
			r->flags |= MREC_GONE;
			sc->changed = true;
		}
		r->flags &= (uint16_t)~MREC_LISTED;
	}
}

/* A file the index did not vouch for, or whose X-UIDL is wanted: type, mtime, size, X-UIDL. The
 * size comes from ",W=" in the name when there, else from reading the file. Returns 1 when the
 * file vanished, MAILDIR_OK (MREC_GONE when it is not a regular file), or an error. Edge case 31:
 * opened without following symlinks and without blocking, so a FIFO or a symlink to /dev/zero
 * planted in cur/ can neither hang the session nor leak another file. */
static int examine(struct scan_ctx *sc, struct mindex_rec *r)
{
	bool need_size = !(r->flags & MREC_KNOWN), have_w = false, has_w;
	bool need_hdr = sc->source == UIDL_SOURCE_XUIDL && !(r->flags & MREC_UIDL);
	int dfd = sc->subfd[(r->flags & MREC_IN_NEW) ? 0 : 1], fd = -1, e;
	char name[MINDEX_NAME_BUF], safe[256], xu[POP3_UIDL_MAX + 1];
	const char *what = "open", *b;
	uint64_t w = 0;
	struct stat st;
	size_t n = mindex_rec_base(&sc->snap->arena, r, &b);

	if (!need_size && !need_hdr)
		return MAILDIR_OK;
	has_w = need_size && memmem(b, n, ",W=", 3) != NULL;
	mindex_rec_name(&sc->snap->arena, r, name);
	/* A name with ",W=" may spare the open: stat first (type, mtime, and the size check). */
	if (has_w && !need_hdr) {
		if (fstatat(dfd, name, &st, AT_SYMLINK_NOFOLLOW) < 0)
			goto error;
		errno = ELOOP;
		if (!S_ISREG(st.st_mode))
			goto error;
		have_w = maildir_w_size(b, n, (uint64_t)st.st_size, &w);
	}
	if (!have_w) {
		fd = openat(dfd, name, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC);
		if (fd < 0 || fstat(fd, &st) < 0)
			goto error;
		errno = ELOOP;
		if (!S_ISREG(st.st_mode))
			goto error;
		if (has_w && need_hdr) /* open for the X-UIDL anyway */
			have_w = maildir_w_size(b, n, (uint64_t)st.st_size, &w);
	}
	what = "read";
	n = 0;
	if (fd >= 0 && maildir_read_msg(fd, &sc->buf, need_hdr ? xu : NULL, &n,
	                                need_size && !have_w ? &w : NULL) < 0)
		goto error;
	if (n > 0 && mindex_rec_set_uidl(&sc->snap->arena, r, xu, n) < 0)
		goto error;
	if (need_size) {
		r->size = w;
		r->mtime = st.st_mtim.tv_sec;
		if (!(r->flags & MREC_TIMES))
			r->first_seen = mindex_time32(sc->now);
		r->flags |= MREC_KNOWN;
	}
	if (fd >= 0)
		close(fd);
	return MAILDIR_OK;
error:
	e = errno;
	if (fd >= 0)
		close(fd);
	if (e == ENOENT)
		return 1; /* vanished since readdir: moved or expunged by another agent */
	log_sanitize(safe, sizeof(safe), name, strlen(name));
	if (e == ELOOP || e == ENXIO || e == EISDIR) {
		/* Swapped for a symlink, FIFO, socket or directory: not a message. */
		log_debug("maildir %s/%s/%s: not a regular file, skipped", sc->dir,
		          maildir_sub_of(r), safe);
		r->flags |= MREC_GONE;
		return MAILDIR_OK;
	}
	errno = e;
	return maildir_fail(maildir_err_class(e), sc->error_r, "maildir %s/%s/%s: %s: %s", sc->dir,
	                    maildir_sub_of(r), safe, what, strerror(e));
}

/* ---- examining many files at once ----
 *
 * A first login to a big maildrop (no index) opens and reads every message to size it: 100,000
 * files, each an open, a read and a close, and on a cold page cache a disk read each. One thread
 * waits for one read at a time; EXAMINE_THREADS threads keep that many reads in flight and use
 * every core for the CRLF sizing. Records are dealt out round-robin, so the threads walk the
 * directory order together. Only sizes, mtimes and flags are written, each record by one thread;
 * X-UIDL headers (which grow the shared arena) are read by the calling thread alone. */
#define EXAMINE_THREADS      4
#define EXAMINE_PARALLEL_MIN 512      /* fewer files than this: threads cost more than they save */
#define MREC_VANISHED        (1 << 9) /* examine() found the file gone: settled by the caller */

struct examiner {
	struct scan_ctx sc; /* a copy: its own read buffers and error pointer */
	pthread_t tid;
	unsigned k, of; /* records k, k+of, k+2*of ... */
	int rc;
	char error[ERRMSG_MAX];
};

static void *examiner_run(void *arg)
{
	struct examiner *x = arg;
	struct maildir_snapshot *snap = x->sc.snap;
	const char *error = NULL;

	x->sc.error_r = &error;
	for (size_t i = x->k; i < snap->count && x->rc == MAILDIR_OK; i += x->of) {
		struct mindex_rec *r = &snap->msgs[i];
		int rc;

		if ((r->flags & (MREC_GONE | MREC_KNOWN)) ||
		    (rc = examine(&x->sc, r)) == MAILDIR_OK)
			continue;
		if (rc == 1)
			r->flags |= MREC_VANISHED;
		else
			x->rc = rc;
	}
	if (x->rc != MAILDIR_OK) /* the message is in this thread's buffer: keep a copy */
		snprintf(x->error, sizeof(x->error), "%s",
		         error != NULL ? error : "examine failed");
	free(x->sc.buf.in);
	free(x->sc.buf.out);
	return NULL;
}

/* Size every unknown file on EXAMINE_THREADS threads; marks vanished files MREC_VANISHED.
 * MAILDIR_OK, an error, or 1 when threads could not be had (the caller goes on alone). */
static int examine_parallel(struct scan_ctx *sc)
{
	struct examiner x[EXAMINE_THREADS];
	size_t unknown = 0;
	unsigned started = 0;
	int rc = MAILDIR_OK;

	if (sc->source == UIDL_SOURCE_XUIDL)
		return 1;
	for (size_t i = 0; i < sc->snap->count && unknown < EXAMINE_PARALLEL_MIN; i++)
		unknown += !(sc->snap->msgs[i].flags & (MREC_GONE | MREC_KNOWN));
	if (unknown < EXAMINE_PARALLEL_MIN)
		return 1;
	for (unsigned t = 0; t < EXAMINE_THREADS; t++) {
		x[t] = (struct examiner){.sc = *sc, .k = t, .of = EXAMINE_THREADS};
		x[t].sc.buf = (struct maildir_readbuf){0};
		if (pthread_create(&x[t].tid, NULL, examiner_run, &x[t]) != 0)
			break;
		started++;
	}
	/* Fewer threads than slots cover only part of the records: let the started ones finish
	 * (what they sized is MREC_KNOWN, what vanished MREC_VANISHED) and return 1, so the
	 * sequential pass does the rest and retries whatever failed. Nothing is written to a
	 * running thread's state. */
	for (unsigned t = 0; t < started; t++) {
		pthread_join(x[t].tid, NULL);
		if (started == EXAMINE_THREADS && x[t].rc != MAILDIR_OK && rc == MAILDIR_OK)
			rc = maildir_fail(x[t].rc, sc->error_r, "%s", x[t].error);
	}
	return started == EXAMINE_THREADS ? rc : 1;
}

/* Examine every file the index did not vouch for. A new/ file that vanished was most likely moved
 * to cur/ after we listed cur/: look for it there once, so it is in this snapshot, not lost. One
 * renamed within cur/ meanwhile is left to the next scan (the index keeps nothing stale). */
static int examine_all(struct scan_ctx *sc)
{
	struct maildir_snapshot *snap = sc->snap;
	struct mindex_view v;
	uint32_t *lost = NULL;
	size_t nlost = 0, cap = 0;
	int rc = examine_parallel(sc);

	if (rc == 1)
		rc = MAILDIR_OK; /* no threads: examine() below does the work */
	for (uint32_t i = 0; i < snap->count && rc == MAILDIR_OK; i++) {
		struct mindex_rec *r = &snap->msgs[i];

		if (r->flags & MREC_VANISHED)
			r->flags &= (uint16_t)~MREC_VANISHED;
		else if ((r->flags & MREC_GONE) || (rc = examine(sc, r)) != 1)
			continue;
		rc = MAILDIR_OK;
		r->flags |= MREC_GONE;
		sc->changed = true;
		if (!(r->flags & MREC_IN_NEW))
			continue;
		if (nlost == cap) {
			uint32_t *grown = realloc(lost, (cap = cap ? 2 * cap : 16) * sizeof(*lost));
			if (grown == NULL) {
				rc = oom(sc);
				break;
			}
			lost = grown;
		}
		lost[nlost++] = i;
	}
	v = maildir_view(snap);
	if (rc == MAILDIR_OK && nlost > 0 &&
	    mindex_relocate(sc->rootfd, &v, lost, nlost, false) < 0)
		rc = maildir_fail(maildir_err_class(errno), sc->error_r,
		                  "maildir %s/cur: readdir: %s", sc->dir, strerror(errno));
	for (size_t k = 0; k < nlost && rc == MAILDIR_OK; k++) {
		struct mindex_rec *r = &snap->msgs[lost[k]];

		if (r->flags & MREC_IN_NEW)
			continue; /* not in cur/ either: expunged */
		r->flags &= (uint16_t)~MREC_GONE;
		if ((rc = examine(sc, r)) == 1) {
			r->flags |= MREC_GONE;
			rc = MAILDIR_OK;
		}
	}
	free(lost);
	return rc;
}

static void compact(struct maildir_snapshot *snap)
{
	size_t out = 0;

	for (size_t i = 0; i < snap->count; i++) {
		if (snap->msgs[i].flags & MREC_GONE)
			continue;
		if (out != i)
			snap->msgs[out] = snap->msgs[i];
		out++;
	}
	snap->count = out;
}

/* With uidl_source = dovecot, Dovecot's own message order: its UID, the first 8 hex digits of a
 * "%08Xu%08Xv" UIDL (Dovecot writes them in lower case). A message without one (not in
 * dovecot-uidlist, so a GANNET UIDL, never 16 hex digits) sorts after every UID. */
static uint64_t dovecot_uid(const struct maildir_snapshot *snap, const struct mindex_rec *r)
{
	const char *u = snap->arena.p + r->uidl_off;
	uint64_t uid = 0;

	if (snap->source != UIDL_SOURCE_DOVECOT || !(r->flags & MREC_UIDL) || r->uidl_len != 16)
		return UINT64_MAX;
	for (int i = 0; i < 16; i++) {
		char c = u[i];
		unsigned d = c >= '0' && c <= '9'   ? (unsigned)(c - '0')
		             : c >= 'a' && c <= 'f' ? (unsigned)(c - 'a' + 10)
		             : c >= 'A' && c <= 'F' ? (unsigned)(c - 'A' + 10)
		                                    : 16;
		if (d == 16)
			return UINT64_MAX;
		if (i < 8)
			uid = uid << 4 | d;
	}
	return uid;
}

/* Delivery order: mtime, then the unique part (unique after deduplication), so that adding a
 * flag never moves a message ("x1:2,S" would sort after "x10"). With uidl_source = dovecot the
 * Dovecot UID comes first, so both servers number the messages alike (RFC 1939 message numbers
 * are per session, but clients that compare listings, and people, notice). */
static int cmp_delivery(const void *pa, const void *pb, void *arg)
{
	const struct maildir_snapshot *snap = arg;
	const struct mindex_rec *a = &snap->msgs[*(const uint32_t *)pa];
	const struct mindex_rec *b = &snap->msgs[*(const uint32_t *)pb];
	uint64_t da = dovecot_uid(snap, a), db = dovecot_uid(snap, b);
	const char *ua, *ub;
	size_t la, lb;
	int c;

	if (da != db)
		return da < db ? -1 : 1;
	if (a->mtime != b->mtime)
		return a->mtime < b->mtime ? -1 : 1;
	la = mindex_rec_unique(&snap->arena, a, &ua);
	lb = mindex_rec_unique(&snap->arena, b, &ub);
	c = memcmp(ua, ub, la < lb ? la : lb);
	if (c != 0 || la == lb)
		return c;
	return la < lb ? -1 : 1;
}

/* Sort a permutation (4 octets a message) rather than the records, then move the records in
 * place along the permutation's cycles. */
static int sort_delivery(struct scan_ctx *sc)
{
	struct maildir_snapshot *snap = sc->snap;
	struct mindex_rec *base = snap->msgs;
	size_t n = snap->count;
	uint32_t *p;

	for (size_t i = 1; i < n; i++) {
		uint32_t a = (uint32_t)i - 1, b = (uint32_t)i;
		if (cmp_delivery(&a, &b, snap) > 0)
			break;
		if (i == n - 1)
			return MAILDIR_OK; /* the usual warm case: the index was in order already */
	}
	if (n < 2)
		return MAILDIR_OK;
	p = malloc(n * sizeof(*p));
	if (p == NULL)
		return oom(sc);
	sc->changed = true; /* the index keeps the snapshot's order: the next check is linear */
	for (size_t i = 0; i < n; i++)
		p[i] = (uint32_t)i;
	qsort_r(p, n, sizeof(*p), cmp_delivery, snap);
	for (size_t i = 0; i < n; i++) {
		struct mindex_rec tmp;
		size_t j = i;

		if (p[i] == i)
			continue;
		tmp = base[i];
		while (p[j] != i) {
			size_t k = p[j];
			base[j] = base[k];
			p[j] = (uint32_t)j;
			j = k;
		}
		base[j] = tmp;
		p[j] = (uint32_t)j;
	}
	free(p);
	return MAILDIR_OK;
}

/* The index is a cache: failing to write it costs the next login time, never the session. */
static void save_index(int rootfd, const char *dir, struct maildir_snapshot *snap)
{
	struct mindex_view v = maildir_view(snap);
	const char *why = "";

	snap->dirty = mindex_save_recs(rootfd, snap->source, snap->dirs, &v, snap->count, &why) < 0;
	if (snap->dirty)
		log_warnx("maildir %s: %s not written, the previous one is kept: %s", dir,
		          MINDEX_NAME, why);
}

/* Give back what geometric growth over-allocated: the snapshot lives as long as the session. */
static void shrink(struct maildir_snapshot *snap)
{
	void *p;

	if (snap->count == 0) {
		free(snap->msgs);
		snap->msgs = NULL;
	} else if ((p = realloc(snap->msgs, snap->count * sizeof(*snap->msgs))) != NULL) {
		snap->msgs = p;
	}
	if (snap->arena.len == 0) {
		free(snap->arena.p);
		snap->arena = (struct mindex_arena){0};
	} else if ((p = realloc(snap->arena.p, snap->arena.len)) != NULL) {
		snap->arena.p = p;
		snap->arena.cap = snap->arena.len;
	}
}

int maildir_scan(const char *dir, enum uidl_source source, struct maildir_snapshot *snap,
                 const char **error_r)
{
	struct scan_ctx sc = {.dir = dir,
	                      .snap = snap,
	                      .source = source,
	                      .error_r = error_r,
	                      .rootfd = -1,
	                      .subfd = {-1, -1}};
	struct mindex_view v;
	int rc;

	memset(snap, 0, sizeof(*snap));
	if ((unsigned)source >= UIDL_SOURCE_COUNT) {
		errno = EINVAL;
		return maildir_fail(MAILDIR_ERR_PERM, error_r, "maildir %s: bad UIDL source %d",
		                    dir, (int)source);
	}
	snap->source = source;
	sc.now = time(NULL);
	rc = maildir_root_open(dir, &sc.rootfd, error_r);
	if (rc == MAILDIR_OK && mindex_hash_init(&sc.byname, 0) < 0)
		rc = oom(&sc);
	/* The stamps come before the listing: a change made while we list moves them. */
	if (rc == MAILDIR_OK && trust_stamps)
		take_stamps(&sc);
	if (rc == MAILDIR_OK)
		rc = load_index(&sc);
	snap->listed = !sc.trusted;
	/* Listed although the directories have usable stamps: record them for the next login. */
	if (snap->listed && memcmp(snap->dirs, sc.head.dirs, sizeof(snap->dirs)) != 0 &&
	    (snap->dirs[0].ino != 0 || snap->dirs[1].ino != 0))
		sc.changed = true;
	/* S-140: tmp/ holds deliveries in progress and is never read. */
	for (int s = 0; s < 2 && rc == MAILDIR_OK && snap->listed; s++)
		rc = list_subdir(&sc, s);
	for (int s = 0; s < 2 && rc == MAILDIR_OK && !snap->listed; s++)
		rc = open_subdir(&sc, s);
	mindex_hash_free(&sc.byname);
	drop_unlisted(&sc);
	if (rc == MAILDIR_OK)
		rc = examine_all(&sc);
	compact(snap);
	if (rc == MAILDIR_OK)
		rc = sort_delivery(&sc);
	v = maildir_view(snap);
	/* Trusted, every UIDL came from an index whose UIDLs were made unique before it was
	 * written: nothing to assign or check. */
	if (rc == MAILDIR_OK && !sc.trusted &&
	    uidl_assign(&v, snap->count, source, sc.rootfd, dir, &sc.changed) < 0)
		rc = errno == ENOMEM ? oom(&sc)
		                     : maildir_fail(MAILDIR_ERR_TEMP, error_r,
		                                    "maildir %s: SHA-256 failed", dir);
	compact(snap);
	/* Dovecot UIDs known only now (dovecot-uidlist was read by uidl_assign): order by them. */
	if (rc == MAILDIR_OK && source == UIDL_SOURCE_DOVECOT && !sc.trusted)
		rc = sort_delivery(&sc);
	if (rc == MAILDIR_OK) {
		for (size_t i = 0; i < snap->count; i++)
			snap->total_size += snap->msgs[i].size;
		shrink(snap);
		if (sc.changed)
			save_index(sc.rootfd, dir, snap);
	}
	free(sc.buf.in);
	free(sc.buf.out);
	for (int s = 0; s < 2; s++)
		if (sc.subfd[s] >= 0)
			close(sc.subfd[s]);
	if (sc.rootfd >= 0)
		close(sc.rootfd);
	if (rc != MAILDIR_OK)
		maildir_snapshot_free(snap);
	return rc;
}

void maildir_snapshot_free(struct maildir_snapshot *snap)
{
	free(snap->msgs);
	free(snap->arena.p);
	memset(snap, 0, sizeof(*snap));
}

int maildir_snapshot_save(const char *dir, struct maildir_snapshot *snap)
{
	int rootfd;

	if (!snap->dirty)
		return 0;
	rootfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (rootfd < 0) {
		log_warn("maildir %s: %s not written", dir, MINDEX_NAME);
		return -1;
	}
	save_index(rootfd, dir, snap);
	close(rootfd);
	return snap->dirty ? -1 : 0;
}
