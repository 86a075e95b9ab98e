/* Descriptor helpers shared by every writer of a state file. */
#ifndef GANNET_FDIO_H
#define GANNET_FDIO_H

#include <stddef.h>

/* Write all LEN bytes of BUF to FD, retrying short writes and EINTR. 0, or -1 with errno. */
int fd_write_all(int fd, const void *buf, size_t len);

#endif
