/* Logging for all Gannet programs: stderr in the foreground, syslog otherwise (OpenSMTPD style). */
#ifndef GANNET_LOG_H
#define GANNET_LOG_H

#include <stdbool.h>
#include <stddef.h>

enum log_level { LOG_LEVEL_ERR, LOG_LEVEL_WARN, LOG_LEVEL_INFO, LOG_LEVEL_DEBUG };

/* Start logging as PROCNAME ("gannetd", "gannetd/login" ...); to stderr when FOREGROUND. */
void log_init(const char *procname, bool foreground, enum log_level level);
/* Change the process name used in each line (after fork). */
void log_procname(const char *procname);
void log_set_level(enum log_level level);

/* Warnings and errors; the _warn variants append ": strerror(errno)". */
void log_warn(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void log_warnx(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void log_info(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void log_debug(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* Log and exit(1): start-up failures and broken invariants in a disposable process only. */
void fatal(const char *fmt, ...) __attribute__((format(printf, 1, 2), noreturn));
void fatalx(const char *fmt, ...) __attribute__((format(printf, 1, 2), noreturn));

/* Copy SRC (LEN bytes, may hold anything) into OUT (SIZE bytes, NUL-terminated) for a log line:
 * printable ASCII except '"' and '\\' kept, the rest as \xHH, cut at SIZE-1. Returns OUT. */
char *log_sanitize(char *out, size_t size, const char *src, size_t len);

#endif
