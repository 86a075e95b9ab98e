/* Error messages built per call into a caller's thread-local buffer (the maildir, mbox and OAuth
 * loaders report "what failed, on which file" through a const char ** that stays valid until the
 * thread's next error). */
#ifndef GANNET_ERRMSG_H
#define GANNET_ERRMSG_H

#include <stdarg.h>
#include <stddef.h>

#include "gannet_limits.h"

/* The largest buffer errmsg_vformat() fills: a path and a sentence about it. */
#define ERRMSG_MAX (GANNET_PATH_MAX + 512)

/* Format FMT into BUF (SIZE <= ERRMSG_MAX bytes, cut to fit) through a copy, so that an argument
 * may be BUF's own previous message (a prefix added to it). errno is left as it was.
 * Returns BUF. */
const char *errmsg_vformat(char *buf, size_t size, const char *fmt, va_list ap)
    __attribute__((format(printf, 3, 0)));

#endif
