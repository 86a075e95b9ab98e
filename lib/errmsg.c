/* Per-call error messages: see errmsg.h. */
#include "errmsg.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

const char *errmsg_vformat(char *buf, size_t size, const char *fmt, va_list ap)
{
	char tmp[ERRMSG_MAX];
	int e = errno;

	if (size > sizeof(tmp))
		size = sizeof(tmp);
	if (size == 0)
		return buf;
	if (vsnprintf(tmp, size, fmt, ap) < 0)
		tmp[0] = '\0';
	memcpy(buf, tmp, size);
	errno = e;
	return buf;
}
