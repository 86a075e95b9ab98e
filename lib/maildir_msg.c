/* Maildir access, one message at a time: names, retrieval times, open, Seen, removal (each
 * following a rename from outside); the API is in maildir.h. */
#include "maildir.h"
#include "maildir_int.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include "fdio.h"
#include "log.h"

/* ---- accessors ---- */

const char *maildir_msg_name(const struct maildir_snapshot *snap, size_t i,
                             char buf[MAILDIR_NAME_BUF])
{
	mindex_rec_name(&snap->arena, &snap->msgs[i], buf);
	return buf;
}

void maildir_msg_set_retrieved(struct maildir_snapshot *snap, size_t i, time_t when)
{
	struct mindex_rec *r = &snap->msgs[i];

	if (r->first_retrieved != 0)
		return;
	r->first_retrieved = mindex_time32(when);
	snap->dirty = true;
}

/* ---- operations on one message ---- */

static int msg_path(char *buf, size_t size, const char *dir, const struct maildir_snapshot *snap,
                    const struct mindex_rec *r)
{
	char name[MINDEX_NAME_BUF];
	int n;

	mindex_rec_name(&snap->arena, r, name);
	n = snprintf(buf, size, "%s/%s/%s", dir, maildir_sub_of(r), name);
	if (n < 0 || (size_t)n >= size) {
		errno = ENAMETOOLONG;
		return -1;
	}
	return 0;
}

/* Message I's file went away: find it again in cur/ or new/ by its unique part (an IMAP client
 * set a flag, say). 0 when found (the snapshot has its new name), -1 with errno (ENOENT: gone). */
static int follow(const char *dir, struct maildir_snapshot *snap, size_t i)
{
	uint32_t which = (uint32_t)i;
	int rootfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC), e;
	struct mindex_view v;
	ssize_t found;

	if (rootfd < 0)
		return -1;
	v = maildir_view(snap);
	found = mindex_relocate(rootfd, &v, &which, 1, true);
	e = errno;
	close(rootfd);
	if (found == 1) {
		snap->dirty = true;
		return 0;
	}
	errno = found < 0 ? e : ENOENT;
	return -1;
}

static int open_once(const char *dir, struct maildir_snapshot *snap, size_t i)
{
	char path[GANNET_PATH_MAX];
	struct stat st;
	int fd, e;

	if (msg_path(path, sizeof(path), dir, snap, &snap->msgs[i]) < 0)
		return -1;
	fd = open(path, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC);
	if (fd < 0)
		return -1;
	if (fstat(fd, &st) < 0) {
		e = errno;
		close(fd);
		errno = e;
		return -1;
	}
	if (!S_ISREG(st.st_mode)) {
		close(fd);
		errno = EINVAL;
		return -1;
	}
	return fd;
}

int maildir_open_msg(const char *dir, struct maildir_snapshot *snap, size_t i)
{
	int fd = open_once(dir, snap, i);

	/* S-142: removed from outside, or renamed. */
	if (fd < 0 && errno == ENOENT && follow(dir, snap, i) == 0)
		fd = open_once(dir, snap, i);
	return fd;
}

/* The name R gets once Seen is set, into OUT; *unchanged_r when it already has it. S-141: flags
 * stay in ASCII order; an info that is not sorted letters (MREC_RAW) gets S before the first
 * flag above it, the rest left as it is. */
static void seen_name(const struct maildir_snapshot *snap, const struct mindex_rec *r,
                      char out[MINDEX_NAME_BUF], bool *unchanged_r)
{
	struct mindex_rec t = *r;
	size_t len, pos;

	*unchanged_r = false;
	if (!(r->flags & MREC_RAW)) {
		*unchanged_r = (r->flags & MREC_INFO) && ((r->info >> MINDEX_FLAG_SEEN) & 1);
		t.flags |= MREC_INFO;
		t.info |= (uint64_t)1 << MINDEX_FLAG_SEEN;
		mindex_rec_name(&snap->arena, &t, out);
		return;
	}
	len = mindex_rec_name(&snap->arena, r, out);
	pos = maildir_base_len(out, len) + 3;
	if (memchr(out + pos, 'S', len - pos) != NULL) {
		*unchanged_r = true;
		return;
	}
	while (pos < len && (unsigned char)out[pos] < 'S')
		pos++;
	memmove(out + pos + 1, out + pos, len - pos + 1);
	out[pos] = 'S';
}

static int seen_once(const char *dir, struct maildir_snapshot *snap, size_t i)
{
	struct mindex_rec *r = &snap->msgs[i];
	char from[GANNET_PATH_MAX], to[GANNET_PATH_MAX], next[MINDEX_NAME_BUF];
	bool unchanged;
	int n;

	seen_name(snap, r, next, &unchanged);
	if (unchanged && !(r->flags & MREC_IN_NEW))
		return 0;
	n = snprintf(to, sizeof(to), "%s/cur/%s", dir, next);
	if (msg_path(from, sizeof(from), dir, snap, r) < 0)
		return -1;
	if (n < 0 || (size_t)n >= sizeof(to) || strlen(next) > MINDEX_NAME_MAX) {
		errno = ENAMETOOLONG;
		return -1;
	}
	/* Atomic, and never over an existing file: rename(2) would silently replace a message
	 * that happens to carry the target name. File systems without RENAME_NOREPLACE get
	 * plain rename. */
	if (renameat2(AT_FDCWD, from, AT_FDCWD, to, RENAME_NOREPLACE) < 0) {
		if (errno != EINVAL && errno != ENOSYS)
			return -1;
		if (rename(from, to) < 0)
			return -1;
	}
	snap->dirty = true;
	return mindex_rec_set_name(&snap->arena, r, next, strlen(next), false);
}

int maildir_mark_seen(const char *dir, struct maildir_snapshot *snap, size_t i)
{
	if (seen_once(dir, snap, i) == 0)
		return 0;
	if (errno != ENOENT || follow(dir, snap, i) < 0)
		return -1;
	return seen_once(dir, snap, i);
}

int maildir_unlink_msg(const char *dir, struct maildir_snapshot *snap, size_t i)
{
	char path[GANNET_PATH_MAX];

	for (int attempt = 0; attempt < 2; attempt++) {
		if (msg_path(path, sizeof(path), dir, snap, &snap->msgs[i]) < 0)
			return -1;
		if (unlink(path) == 0)
			break;
		if (errno != ENOENT)
			return -1;
		/* Gone, or renamed by another agent: the client asked for it to go. */
		if (attempt > 0 || follow(dir, snap, i) < 0)
			break;
	}
	snap->msgs[i].flags |= MREC_GONE;
	snap->dirty = true;
	return 0;
}
