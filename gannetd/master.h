/* The master process: listeners, children, signals; it parses no client input. */
#ifndef GANNETD_MASTER_H
#define GANNETD_MASTER_H

#include <stdbool.h>
#include <stddef.h>

#include "conf.h"

/* Run the master with the parsed CONF (from TEXT of LEN bytes read from FILE); never returns. */
void master_main(const char *file, struct conf *conf, char *text, size_t len, bool foreground)
    __attribute__((noreturn));

#endif
