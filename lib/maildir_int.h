/* Private to lib/maildir*.c: the error convention of maildir.h, the root opener and small
 * helpers shared by the scan (maildir.c), the per-message operations (maildir_msg.c), the lock
 * (maildir_lock.c) and UPDATE's journal and policies (maildir_update.c). */
#ifndef GANNET_MAILDIR_INT_H
#define GANNET_MAILDIR_INT_H

#include "maildir.h"

/* Format the thread-local error text, point *ERROR_R (if not NULL) at it, keep errno; returns
 * CLS (a maildir_err). */
__attribute__((format(printf, 3, 4))) int maildir_fail(int cls, const char **error_r,
                                                       const char *fmt, ...);

/* MAILDIR_ERR_TEMP for an errno value that may pass (EMFILE, EIO, ENOSPC ...), else
 * MAILDIR_ERR_PERM. */
int maildir_err_class(int e);

/* Open the Maildir root DIR (O_DIRECTORY), creating it with new/ cur/ tmp/ when missing. A
 * maildir_err, with the fd in *FD_R on success. */
int maildir_root_open(const char *dir, int *fd_r, const char **error_r);

/* "new" (0) or "cur" (1). */
static inline const char *maildir_subdir(int s)
{
	return s == 0 ? "new" : "cur";
}

/* The directory record R's file is in. */
static inline const char *maildir_sub_of(const struct mindex_rec *r)
{
	return maildir_subdir((r->flags & MREC_IN_NEW) ? 0 : 1);
}

/* SNAP's records and arena, as the mindex helpers take them. */
static inline struct mindex_view maildir_view(struct maildir_snapshot *snap)
{
	return (struct mindex_view){.rec = snap->msgs, .arena = &snap->arena};
}

#endif
