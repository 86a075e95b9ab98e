/* mboxrd delivery. A reader must never see half a message: before appending we journal where the
 * append starts and ends, and after a crash those bytes are cut off again. mboxrd quoting means
 * no line of our message can start with "From ", which lets recovery tell our bytes from mail
 * another program appended after them. */
#include "mbox.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sysexits.h>
#include <time.h>
#include <unistd.h>

#include "log.h"
#include "pop3client.h"
#include "strnum.h"

/* Between two attempts at a lock. */
#define LOCK_POLL_MS 100

static void nap_ms(long ms)
{
	struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};

	while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
		;
}

/* "PID HOSTNAME\n" of this process: 20 digits, a space, a host name of at most 64 octets. */
#define DOTLOCK_ID_MAX 96

static int lock_id(char *out, size_t size)
{
	char host[65] = "";

	if (gethostname(host, sizeof(host) - 1) < 0)
		return -1;
	return fmt_path(out, size, "%ld %s\n", (long)getpid(), host);
}

/* Whether the dotlock PATH was made by a gannet on this host whose process no longer exists. Any
 * other content (another program's lock, an empty file) is left to the age rule. */
static bool holder_dead(const char *path)
{
	char buf[DOTLOCK_ID_MAX], mine[DOTLOCK_ID_MAX], *sp;
	uint64_t pid;
	ssize_t n;
	int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);

	if (fd < 0)
		return false;
	n = read(fd, buf, sizeof(buf) - 1);
	close(fd);
	if (n <= 0 || lock_id(mine, sizeof(mine)) < 0)
		return false;
	buf[n] = '\0';
	sp = strchr(buf, ' ');
	if (sp == NULL || strcmp(sp, strchr(mine, ' ')) != 0 ||
	    strnum_u64(buf, (size_t)(sp - buf), 1, INT32_MAX, &pid) < 0)
		return false;
	return kill((pid_t)pid, 0) < 0 && errno == ESRCH;
}

/* RFC-less but universal: PATH.lock made by link() of a unique file, which is atomic even on
 * NFS (the link count tells when the reply was lost). 1 locked, 0 not possible here, -1. */
static int dotlock(struct mbox_lock *l, const char *path, int64_t deadline, struct gerr *e)
{
	char tmp[GANNET_PATH_MAX];
	struct stat st;
	int fd;

	if (fmt_path(l->dotlock, sizeof(l->dotlock), "%s.lock", path) < 0 ||
	    fmt_path(tmp, sizeof(tmp), "%s.lock.%ld.gannet", path, (long)getpid()) < 0)
		return gerr_set(e, EX_CONFIG, "mbox path too long"), -1;
	fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, 0600);
	if (fd >= 0) {
		/* "PID HOST": lets the next run break the lock of a killed gannet at once. */
		char id[DOTLOCK_ID_MAX];
		if (lock_id(id, sizeof(id)) < 0 || write_all(fd, id, strlen(id)) < 0) {
			close(fd);
			unlink(tmp);
			return gerr_sys(e, EX_CANTCREAT, "cannot write %s", tmp), -1;
		}
	}
	if (fd < 0) {
		/* /var/mail style directories are writable only by group mail: fcntl alone. */
		if (errno == EACCES || errno == EROFS || errno == EPERM) {
			log_debug("mbox=%s: no dotlock (directory not writable), fcntl lock only",
			          path);
			return 0;
		}
		return gerr_sys(e, EX_CANTCREAT, "cannot create %s", tmp), -1;
	}
	close(fd);
	for (;;) {
		if (link(tmp, l->dotlock) == 0 || (stat(tmp, &st) == 0 && st.st_nlink == 2))
			break;
		if (errno != EEXIST) {
			gerr_sys(e, EX_CANTCREAT, "cannot create %s", l->dotlock);
			unlink(tmp);
			return -1;
		}
		if (stat(l->dotlock, &st) == 0 && time(NULL) - st.st_mtime > GANNET_DOTLOCK_STALE) {
			log_warnx("mbox=%s: breaking a dotlock older than %d s", path,
			          GANNET_DOTLOCK_STALE);
			unlink(l->dotlock);
			continue;
		}
		if (holder_dead(l->dotlock)) {
			log_info("mbox=%s: breaking the dotlock of a process that is gone", path);
			unlink(l->dotlock);
			continue;
		}
		if (now_ms() >= deadline) {
			unlink(tmp);
			return gerr_set(e, EX_TEMPFAIL, "%s is locked by another program (%s)",
			                path, l->dotlock),
			       -1;
		}
		nap_ms(LOCK_POLL_MS);
	}
	unlink(tmp);
	l->dotlocked = true;
	return 1;
}

int mbox_lock(const char *path, int wait_s, struct mbox_lock *l, struct gerr *e)
{
	int64_t deadline = now_ms() + (int64_t)wait_s * 1000;
	struct flock fl = {.l_type = F_WRLCK, .l_whence = SEEK_SET};
	struct stat st;

	memset(l, 0, sizeof(*l));
	l->fd = open(path, O_RDWR | O_APPEND | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600);
	if (l->fd < 0)
		return gerr_sys(e, EX_CANTCREAT, "cannot open the mbox %s", path), -1;
	if (fstat(l->fd, &st) < 0 || !S_ISREG(st.st_mode)) {
		close(l->fd);
		l->fd = -1;
		return gerr_set(e, EX_CANTCREAT, "%s is not a regular file", path), -1;
	}
	/* Debian policy §11.6: fcntl first, then the dotlock, so that we never hold a dotlock
	 * while waiting for a kernel lock. */
	while (fcntl(l->fd, F_SETLK, &fl) < 0) {
		if ((errno != EACCES && errno != EAGAIN && errno != EINTR) ||
		    now_ms() >= deadline) {
			gerr_sys(e, EX_TEMPFAIL, "cannot lock %s", path);
			close(l->fd);
			l->fd = -1;
			return -1;
		}
		nap_ms(LOCK_POLL_MS);
	}
	if (dotlock(l, path, deadline, e) < 0) {
		close(l->fd);
		l->fd = -1;
		return -1;
	}
	return 0;
}

void mbox_unlock(struct mbox_lock *l)
{
	if (l->dotlocked)
		unlink(l->dotlock);
	l->dotlocked = false;
	if (l->fd >= 0)
		close(l->fd); /* drops the fcntl lock */
	l->fd = -1;
}

int mbox_record_path(const struct account *a, const char *state_dir, char *out, size_t size)
{
	return fmt_path(out, size, "%s/%s.mbox-append", state_dir, a->name);
}

/* Read all of FD from offset 0 through the mboxrd quoter; with OUT_FD write the result, else
 * only count it. The quoted length, or -1 with errno. */
static int64_t quote_spool(int spool_fd, int out_fd)
{
	static char in[GANNET_IO_CHUNK], out[POP3C_MBOXRD_CAP(GANNET_IO_CHUNK) + 2];
	struct pop3c_mboxrd q;
	size_t o;

	pop3c_mboxrd_init(&q);
	if (lseek(spool_fd, 0, SEEK_SET) < 0)
		return -1;
	for (;;) {
		ssize_t n = read(spool_fd, in, sizeof(in));

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return -1;
		if (n == 0)
			break;
		o = pop3c_mboxrd_feed(&q, in, (size_t)n, out);
		if (out_fd >= 0 && write_all(out_fd, out, o) < 0)
			return -1;
	}
	o = pop3c_mboxrd_finish(&q, out);
	if (out_fd >= 0 && write_all(out_fd, out, o) < 0)
		return -1;
	return (int64_t)q.out;
}

/* "From SENDER DATE\n" (the date as ctime(3) writes it) into OUT. Its length. */
static size_t from_line(int spool_fd, char *out, size_t size)
{
	char sender[GANNET_ENVELOPE_MAX], date[64];
	char *hdr = malloc(GANNET_MBOX_HEADER_SCAN);
	ssize_t n = hdr ? pread(spool_fd, hdr, GANNET_MBOX_HEADER_SCAN, 0) : -1;
	time_t now = time(NULL);
	struct tm tm;

	if (n <= 0 || !pop3c_envelope_sender(hdr, (size_t)n, sender, sizeof(sender)))
		memcpy(sender, "MAILER-DAEMON", 14);
	free(hdr);
	localtime_r(&now, &tm);
	strftime(date, sizeof(date), "%a %b %e %H:%M:%S %Y", &tm);
	return (size_t)snprintf(out, size, "From %s %s\n", sender, date);
}

static int write_record(const char *path, const char *state_dir, const struct stat *st,
                        uint64_t off, uint64_t end, bool headers_only, const char *key,
                        struct gerr *e)
{
	char line[GANNET_MBOX_RECORD_MAX];
	int n = snprintf(
	    line, sizeof(line),
	    "gannet-mbox-append %" PRIu64 " %" PRIu64 " %" PRIu64 " %" PRIu64 " %c %s\n", off, end,
	    (uint64_t)st->st_dev, (uint64_t)st->st_ino, headers_only ? 'H' : 'S', key);
	int fd;

	if (n < 0 || (size_t)n >= sizeof(line))
		return gerr_set(e, EX_SOFTWARE, "mbox record too long"), -1;
	bool created = false;

	fd = open(path, O_WRONLY | O_TRUNC | O_CLOEXEC | O_NOFOLLOW);
	if (fd < 0 && errno == ENOENT) {
		fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, 0600);
		created = true;
	}
	if (fd < 0)
		return gerr_sys(e, EX_CANTCREAT, "cannot create %s", path), -1;
	if (write_all(fd, line, (size_t)n) < 0 || fsync(fd) < 0) {
		gerr_sys(e, EX_IOERR, "cannot write %s", path);
		close(fd);
		return -1;
	}
	close(fd);
	/* A new name must be durable too; rewriting an existing file needs only its fsync. */
	if (created && fsync_dir(state_dir) < 0)
		return gerr_sys(e, EX_IOERR, "cannot sync %s", state_dir), -1;
	return 0;
}

int mbox_append(const struct account *a, const char *state_dir, int spool_fd, const char *key,
                bool headers_only, struct gerr *e)
{
	char rec[GANNET_PATH_MAX], from[GANNET_ENVELOPE_MAX + 64];
	struct mbox_lock l;
	struct stat st;
	size_t fl;
	int64_t body;
	int rc = -1;

	if (mbox_record_path(a, state_dir, rec, sizeof(rec)) < 0)
		return gerr_set(e, EX_CONFIG, "state_dir too long"), -1;
	fl = from_line(spool_fd, from, sizeof(from));
	body = quote_spool(spool_fd, -1);
	if (body < 0)
		return gerr_sys(e, EX_IOERR, "cannot read the spool file"), -1;
	if (mbox_lock(a->mbox, GANNET_MBOX_LOCK_WAIT, &l, e) < 0)
		return -1;
	if (fstat(l.fd, &st) < 0) {
		gerr_sys(e, EX_IOERR, "cannot stat %s", a->mbox);
		goto out;
	}
	/* The record first: after a crash it says which bytes are ours to cut off. */
	if (write_record(rec, state_dir, &st, (uint64_t)st.st_size,
	                 (uint64_t)st.st_size + fl + (uint64_t)body, headers_only, key, e) < 0)
		goto out;
	if (write_all(l.fd, from, fl) < 0 || quote_spool(spool_fd, l.fd) != body ||
	    fsync(l.fd) < 0) {
		gerr_sys(e, EX_IOERR, "cannot append to %s", a->mbox);
		/* Leave no partial message behind (the record stays for a crash right now). */
		if (ftruncate(l.fd, st.st_size) < 0 || fsync(l.fd) < 0)
			log_warn("mbox=%s: cannot cut off a failed append at %lld", a->mbox,
			         (long long)st.st_size);
		goto out;
	}
	rc = 0;
out:
	mbox_unlock(&l);
	return rc;
}

struct record {
	uint64_t off, end, dev, ino;
	bool headers_only;
	char key[GANNET_KEY_MAX + 1];
};

/* Parse the record file; 1 parsed, 0 absent or unusable (a record cut off by a crash was written
 * before its append began, so there is nothing to repair), -1 on read errors. */
static int read_record(const char *path, struct record *r)
{
	char line[GANNET_MBOX_RECORD_MAX + 1], *f[7], *p, *nl;
	ssize_t n;
	int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);

	if (fd < 0)
		return errno == ENOENT ? 0 : -1;
	n = read(fd, line, sizeof(line) - 1);
	close(fd);
	if (n < 0)
		return -1;
	line[n] = '\0';
	nl = memchr(line, '\n', (size_t)n);
	if (nl == NULL)
		return 0;
	*nl = '\0';
	p = line;
	for (int i = 0; i < 7; i++) {
		f[i] = p;
		p = i < 6 ? strchr(p, ' ') : NULL;
		if (i < 6) {
			if (p == NULL)
				return 0;
			*p++ = '\0';
		}
	}
	if (strcmp(f[0], "gannet-mbox-append") != 0 ||
	    strnum_parse(f[1], 0, INT64_MAX, &r->off) < 0 ||
	    strnum_parse(f[2], 0, INT64_MAX, &r->end) < 0 || r->end <= r->off ||
	    strnum_parse(f[3], 0, UINT64_MAX, &r->dev) < 0 ||
	    strnum_parse(f[4], 0, UINT64_MAX, &r->ino) < 0 ||
	    (strcmp(f[5], "S") != 0 && strcmp(f[5], "H") != 0) || strlen(f[6]) == 0 ||
	    strlen(f[6]) > GANNET_KEY_MAX)
		return 0;
	r->headers_only = f[5][0] == 'H';
	memcpy(r->key, f[6], strlen(f[6]) + 1);
	return 1;
}

/* Where the first line starting "From " after OFF begins in FD[OFF, SIZE): its offset, SIZE
 * when there is none, -1 on errors. */
static int64_t next_from(int fd, uint64_t off, uint64_t size)
{
	static const char pat[] = "\nFrom ";
	static char buf[GANNET_IO_CHUNK];
	size_t k = 0;

	for (uint64_t pos = off; pos < size;) {
		size_t want = size - pos < sizeof(buf) ? (size_t)(size - pos) : sizeof(buf);
		ssize_t n = pread(fd, buf, want, (off_t)pos);

		if (n <= 0)
			return -1;
		for (ssize_t i = 0; i < n; i++) {
			if (buf[i] == pat[k])
				k++;
			else
				k = buf[i] == '\n' ? 1 : 0;
			if (k == 6)
				return (int64_t)(pos + (uint64_t)i) - 4;
		}
		pos += (uint64_t)n;
	}
	return (int64_t)size;
}

int mbox_recover(const struct account *a, const char *state_dir, struct journal *j, struct gerr *e)
{
	char rec[GANNET_PATH_MAX], head[5];
	struct record r;
	struct mbox_lock l;
	struct jentry *je;
	struct stat st;
	int64_t p;
	int rc;

	if (a->deliver != DELIVER_MBOX)
		return 0;
	if (mbox_record_path(a, state_dir, rec, sizeof(rec)) < 0)
		return gerr_set(e, EX_CONFIG, "state_dir too long"), -1;
	rc = read_record(rec, &r);
	if (rc < 0)
		return gerr_sys(e, EX_IOERR, "cannot read %s", rec), -1;
	je = rc == 1 ? journal_get(j, r.key) : NULL;
	if (rc == 0 || (je != NULL && (je->flags & (J_SEEN | J_HEADERS | J_DROPPED)))) {
		unlink(rec); /* nothing to do: no record, or its message is recorded */
		return 0;
	}
	if (mbox_lock(a->mbox, GANNET_MBOX_LOCK_WAIT, &l, e) < 0)
		return -1;
	rc = -1;
	if (fstat(l.fd, &st) < 0) {
		gerr_sys(e, EX_IOERR, "cannot stat %s", a->mbox);
		goto out;
	}
	size_t hl = (uint64_t)st.st_size > r.off && (uint64_t)st.st_size - r.off < 5
	                ? (size_t)((uint64_t)st.st_size - r.off)
	                : 5;
	if ((uint64_t)st.st_dev != r.dev || (uint64_t)st.st_ino != r.ino ||
	    (uint64_t)st.st_size <= r.off || pread(l.fd, head, hl, (off_t)r.off) != (ssize_t)hl ||
	    memcmp(head, "From ", hl) != 0) {
		/* Nothing of ours there (the append never began), or a mail reader rewrote the
		 * file since: offsets mean nothing now. */
		if ((uint64_t)st.st_size > r.off)
			log_warnx(
			    "mbox=%s: changed since an interrupted delivery; not repairing it",
			    a->mbox);
		rc = 0;
		goto out;
	}
	p = next_from(l.fd, r.off, (uint64_t)st.st_size);
	if (p < 0) {
		gerr_sys(e, EX_IOERR, "cannot read %s", a->mbox);
		goto out;
	}
	if (p == st.st_size && (uint64_t)st.st_size <= r.end) {
		/* Only our bytes: cut them off, the message is fetched again. */
		if (ftruncate(l.fd, (off_t)r.off) < 0 || fsync(l.fd) < 0) {
			gerr_sys(e, EX_IOERR, "cannot truncate %s", a->mbox);
			goto out;
		}
		log_info("account=%s mbox=%s: removed %" PRIu64
		         " bytes of an interrupted delivery; "
		         "fetching that message again",
		         a->name, a->mbox, (uint64_t)st.st_size - r.off);
	} else if ((uint64_t)p == r.end) {
		/* Complete, and other mail came after it: keep it and record it. */
		if (journal_seen(j, r.key, r.headers_only ? J_HEADERS : J_SEEN, (int64_t)time(NULL),
		                 e) < 0 ||
		    journal_sync(j, e) < 0)
			goto out;
	} else {
		log_warnx("mbox=%s: an interrupted delivery at offset %" PRIu64 " is followed by "
		          "mail from another program; leaving it (check that message by hand)",
		          a->mbox, r.off);
	}
	rc = 0;
out:
	mbox_unlock(&l);
	if (rc == 0)
		unlink(rec);
	return rc;
}
