/* Seen-message journal: "S time flags key" and "P key" records appended to a text file, one write
 * per record, so a kill -9 can at worst cut the last line, which the next load repairs. */
#include "journal.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <sysexits.h>
#include <unistd.h>

#include "log.h"
#include "strnum.h"

#define JOURNAL_MAGIC "gannet-journal 1\n"

static uint64_t hash_key(const char *k, size_t len)
{
	uint64_t h = 1469598103934665603ULL;

	for (size_t i = 0; i < len; i++) {
		h ^= (unsigned char)k[i];
		h *= 1099511628211ULL;
	}
	return h;
}

const char *journal_key(const struct journal *j, const struct jentry *e, size_t *len_r)
{
	*len_r = e->key_len;
	return j->keys + e->key_off;
}

static size_t find_slot(const struct journal *j, const char *key, size_t len)
{
	size_t i = (size_t)hash_key(key, len) & (j->nslots - 1);

	for (;; i = (i + 1) & (j->nslots - 1)) {
		uint32_t v = j->slot[i];
		if (v == 0)
			return i;
		const struct jentry *e = &j->ent[v - 1];
		if (e->key_len == len && memcmp(j->keys + e->key_off, key, len) == 0)
			return i;
	}
}

static int rehash(struct journal *j, size_t nslots)
{
	uint32_t *s = calloc(nslots, sizeof(*s));

	if (s == NULL)
		return -1;
	free(j->slot);
	j->slot = s;
	j->nslots = nslots;
	for (size_t k = 0; k < j->n; k++) {
		size_t len;
		const char *key = journal_key(j, &j->ent[k], &len);
		j->slot[find_slot(j, key, len)] = (uint32_t)(k + 1);
	}
	return 0;
}

static int grow(void **p, size_t *cap, size_t need, size_t elem)
{
	size_t nc = *cap ? *cap : 1024;
	void *np;

	if (need <= *cap)
		return 0;
	while (nc < need)
		nc *= 2;
	np = realloc(*p, nc * elem);
	if (np == NULL)
		return -1;
	*p = np;
	*cap = nc;
	return 0;
}

/* Find or create the entry for KEY. NULL when the journal is full or memory runs out. */
static struct jentry *upsert(struct journal *j, const char *key, size_t len)
{
	size_t i;
	struct jentry *e;

	if (j->nslots == 0 && rehash(j, 4096) < 0)
		return NULL;
	i = find_slot(j, key, len);
	if (j->slot[i] != 0)
		return &j->ent[j->slot[i] - 1];
	if (j->n >= GANNET_JOURNAL_MAX ||
	    grow((void **)&j->ent, &j->cap, j->n + 1, sizeof(*e)) < 0 ||
	    grow((void **)&j->keys, &j->keys_cap, j->keys_len + len, 1) < 0)
		return NULL;
	e = &j->ent[j->n];
	memset(e, 0, sizeof(*e));
	e->key_off = (uint32_t)j->keys_len;
	e->key_len = (uint8_t)len;
	memcpy(j->keys + j->keys_len, key, len);
	j->keys_len += len;
	j->slot[i] = (uint32_t)++j->n;
	if (j->n * 2 > j->nslots && rehash(j, j->nslots * 2) < 0)
		return NULL;
	return &j->ent[j->n - 1];
}

struct jentry *journal_get(struct journal *j, const char *key)
{
	size_t len = strlen(key), i;

	if (j->nslots == 0)
		return NULL;
	i = find_slot(j, key, len);
	return j->slot[i] ? &j->ent[j->slot[i] - 1] : NULL;
}

static bool valid_key(const char *k, size_t len)
{
	if (len == 0 || len > GANNET_KEY_MAX)
		return false;
	for (size_t i = 0; i < len; i++)
		if ((unsigned char)k[i] < 0x21 || (unsigned char)k[i] > 0x7e)
			return false;
	return true;
}

/* Split LINE[0..LEN) at spaces into at most 4 fields, the last one taking the rest. */
static int split(char *line, size_t len, char *f[4])
{
	char *p = line, *end = line + len;
	int nf = 0;

	line[len] = '\0';
	while (nf < 4) {
		char *sp = memchr(p, ' ', (size_t)(end - p));
		f[nf++] = p;
		if (sp == NULL || nf == 4)
			break;
		*sp = '\0';
		p = sp + 1;
	}
	return nf;
}

/* Apply one record line (no newline). 0 or -1 when the line is malformed. */
static int apply(struct journal *j, char *line, size_t len)
{
	struct jentry *e;
	uint64_t when, flags;
	char *f[4];
	int nf = split(line, len, f);

	if (nf == 2 && strcmp(f[0], "P") == 0 && valid_key(f[1], strlen(f[1]))) {
		if ((e = upsert(j, f[1], strlen(f[1]))) == NULL)
			return -1;
		if (!(e->flags & J_SEEN))
			e->flags |= J_PENDING;
		return 0;
	}
	if (nf != 4 || strcmp(f[0], "S") != 0 || strnum_parse(f[1], 0, INT64_MAX, &when) < 0 ||
	    strnum_parse(f[2], 1, 7, &flags) < 0 || !valid_key(f[3], strlen(f[3])))
		return -1;
	if ((e = upsert(j, f[3], strlen(f[3]))) == NULL)
		return -1;
	if (e->first_seen == 0 || (int64_t)when < e->first_seen)
		e->first_seen = (int64_t)when;
	e->flags = (uint8_t)flags;
	return 0;
}

static int load(struct journal *j, struct gerr *e)
{
	char buf[GANNET_IO_CHUNK], line[GANNET_JOURNAL_LINE_MAX + 1];
	size_t ll = 0;
	off_t good = 0, pos = 0;
	unsigned lineno = 0;
	ssize_t n;
	struct stat st;

	if (fstat(j->fd, &st) == 0 && st.st_size > 0) {
		size_t keys = (size_t)st.st_size / GANNET_JOURNAL_BYTES_PER_KEY, slots = 4096;
		if (keys > GANNET_JOURNAL_MAX)
			keys = GANNET_JOURNAL_MAX;
		while (slots / 2 < keys)
			slots *= 2;
		if (rehash(j, slots) < 0)
			return gerr_set(e, EX_OSERR, "out of memory for journal %s", j->path), -1;
	}
	while ((n = read(j->fd, buf, sizeof(buf))) > 0) {
		for (ssize_t i = 0; i < n; i++, pos++) {
			if (buf[i] != '\n') {
				if (ll >= GANNET_JOURNAL_LINE_MAX) {
					lineno++;
					goto damaged;
				}
				line[ll++] = buf[i];
				continue;
			}
			lineno++;
			if (lineno == 1) {
				if (ll + 1 != strlen(JOURNAL_MAGIC) ||
				    memcmp(line, JOURNAL_MAGIC, ll) != 0)
					goto damaged;
			} else if (apply(j, line, ll) < 0)
				goto damaged;
			else
				j->records++;
			ll = 0;
			good = pos + 1;
		}
	}
	if (n < 0)
		return gerr_sys(e, EX_IOERR, "cannot read %s", j->path), -1;
	if (ll > 0 || good == 0) {
		/* A record cut off by a crash (or an empty new file): drop the tail. */
		if (ll > 0)
			log_warnx("journal %s: removing an incomplete last record", j->path);
		if (ftruncate(j->fd, good) < 0)
			return gerr_sys(e, EX_IOERR, "cannot repair %s", j->path), -1;
		if (good == 0 && write_all(j->fd, JOURNAL_MAGIC, strlen(JOURNAL_MAGIC)) < 0)
			return gerr_sys(e, EX_IOERR, "cannot write %s", j->path), -1;
		if (fsync(j->fd) < 0)
			return gerr_sys(e, EX_IOERR, "cannot sync %s", j->path), -1;
	}
	return 0;
damaged:
	gerr_set(e, EX_DATAERR,
	         "journal %s is damaged near line %u; move it away to start over (messages still "
	         "on the server will then be downloaded again)",
	         j->path, lineno);
	return -1;
}

int journal_open(struct journal *j, const char *state_dir, const char *account, struct gerr *e)
{
	char lockpath[GANNET_PATH_MAX];

	memset(j, 0, sizeof(*j));
	j->fd = j->lockfd = -1;
	if (fmt_path(j->dir, sizeof(j->dir), "%s", state_dir) < 0 ||
	    fmt_path(j->path, sizeof(j->path), "%s/%s.journal", state_dir, account) < 0 ||
	    fmt_path(lockpath, sizeof(lockpath), "%s/%s.lock", state_dir, account) < 0)
		return gerr_set(e, EX_CONFIG, "state_dir path too long"), -1;
	if (mkdir_p(state_dir, 0700) < 0)
		return gerr_sys(e, EX_CANTCREAT, "cannot create %s", state_dir), -1;
	j->lockfd = open(lockpath, O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600);
	if (j->lockfd < 0)
		return gerr_sys(e, EX_CANTCREAT, "cannot open %s", lockpath), -1;
	if (flock(j->lockfd, LOCK_EX | LOCK_NB) < 0)
		return gerr_set(e, EX_TEMPFAIL, "another gannet is fetching account %s", account),
		       -1;
	j->fd = open(j->path, O_RDWR | O_CREAT | O_APPEND | O_CLOEXEC | O_NOFOLLOW, 0600);
	if (j->fd < 0)
		return gerr_sys(e, EX_CANTCREAT, "cannot open %s", j->path), -1;
	return load(j, e);
}

static int append(struct journal *j, const char *line, size_t len, struct gerr *e)
{
	/* One write per record: a kill can cut it only at the end of the file. */
	if (write_all(j->fd, line, len) < 0)
		return gerr_sys(e, EX_IOERR, "cannot write %s", j->path), -1;
	j->records++;
	j->unsynced = true;
	return 0;
}

int journal_pending(struct journal *j, const char *key, bool sync, struct gerr *e)
{
	char line[GANNET_JOURNAL_LINE_MAX];
	size_t len = strlen(key);
	struct jentry *en;

	if (!valid_key(key, len) || (en = upsert(j, key, len)) == NULL)
		return gerr_set(e, EX_SOFTWARE, "journal full or bad key"), -1;
	if (!(en->flags & J_SEEN))
		en->flags |= J_PENDING;
	int n = snprintf(line, sizeof(line), "P %s\n", key);
	if (append(j, line, (size_t)n, e) < 0)
		return -1;
	return sync ? journal_sync(j, e) : 0;
}

int journal_seen(struct journal *j, const char *key, int flags, int64_t when, struct gerr *e)
{
	char line[GANNET_JOURNAL_LINE_MAX];
	size_t len = strlen(key);
	struct jentry *en;

	if (!valid_key(key, len) || (en = upsert(j, key, len)) == NULL)
		return gerr_set(e, EX_SOFTWARE, "journal full or bad key"), -1;
	if (en->first_seen != 0)
		when = en->first_seen;
	en->first_seen = when;
	en->flags = (uint8_t)flags;
	en->live = true;
	int n = snprintf(line, sizeof(line), "S %lld %d %s\n", (long long)when, flags, key);
	return append(j, line, (size_t)n, e);
}

int journal_sync(struct journal *j, struct gerr *e)
{
	if (!j->unsynced)
		return 0;
	if (fsync(j->fd) < 0)
		return gerr_sys(e, EX_IOERR, "cannot sync %s", j->path), -1;
	j->unsynced = false;
	return 0;
}

int journal_compact(struct journal *j, struct gerr *e)
{
	char tmp[GANNET_PATH_MAX + 8], line[GANNET_JOURNAL_LINE_MAX];
	size_t live = 0;
	FILE *f;
	int fd;

	for (size_t i = 0; i < j->n; i++)
		live += j->ent[i].live && (j->ent[i].flags & ~J_PENDING) != 0;
	/* A kept message costs a "P" and an "S" record until a rewrite leaves only the "S": without
	 * it a large kept mailbox loads twice the records at every poll. */
	if (j->records <= live + live / 2 + 64)
		return 0;
	if (fmt_path(tmp, sizeof(tmp), "%s.new", j->path) < 0)
		return gerr_set(e, EX_SOFTWARE, "path too long"), -1;
	fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, 0600);
	if (fd < 0 || (f = fdopen(fd, "w")) == NULL) {
		gerr_sys(e, EX_IOERR, "cannot create %s", tmp);
		if (fd >= 0)
			close(fd);
		return -1;
	}
	fputs(JOURNAL_MAGIC, f);
	for (size_t i = 0; i < j->n; i++) {
		const struct jentry *en = &j->ent[i];
		int fl = en->flags & ~J_PENDING;
		if (!en->live || fl == 0)
			continue;
		snprintf(line, sizeof(line), "S %lld %d %.*s\n", (long long)en->first_seen, fl,
		         (int)en->key_len, j->keys + en->key_off);
		fputs(line, f);
	}
	if (fflush(f) != 0 || fsync(fd) < 0 || fclose(f) != 0) {
		gerr_sys(e, EX_IOERR, "cannot write %s", tmp);
		unlink(tmp);
		return -1;
	}
	/* rename is the commit point: before it the old journal is intact, after it the new. */
	if (rename(tmp, j->path) < 0 || fsync_dir(j->dir) < 0) {
		gerr_sys(e, EX_IOERR, "cannot replace %s", j->path);
		unlink(tmp);
		return -1;
	}
	close(j->fd);
	j->fd = open(j->path, O_RDWR | O_APPEND | O_CLOEXEC | O_NOFOLLOW);
	if (j->fd < 0)
		return gerr_sys(e, EX_IOERR, "cannot reopen %s", j->path), -1;
	log_debug("journal %s: compacted %llu records to %zu", j->path,
	          (unsigned long long)j->records, live);
	j->records = live;
	return 0;
}

void journal_close(struct journal *j)
{
	if (j->fd >= 0)
		close(j->fd);
	if (j->lockfd >= 0)
		close(j->lockfd);
	free(j->ent);
	free(j->keys);
	free(j->slot);
	memset(j, 0, sizeof(*j));
	j->fd = j->lockfd = -1;
}
