/* In-process driver for profiling gannetd's RETR transform (pop3_enc_feed) under callgrind:
 * gannetd's children re-exec /proc/self/exe, which valgrind cannot follow, so this runs the same
 * code in one process. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "bench.h"
#include "gannet_limits.h"
#include "pop3.h"
#include "strnum.h"

/* gannet-bench encode MAILDIR: every message of MAILDIR/cur and MAILDIR/new through the RETR
 * encoder in RETR_CHUNK reads, as the mail process streams it. */
int profile_encode_main(int argc, char **argv)
{
	static char in[RETR_CHUNK], out[2 * RETR_CHUNK + 3];
	static const char *const subs[] = {"cur", "new"};
	uint64_t bytes = 0, files = 0;
	double t0 = bench_now(), secs;

	if (argc != 2)
		bench_die("usage: gannet-bench encode MAILDIR");
	for (size_t s = 0; s < 2; s++) {
		char dir[4096];
		struct dirent *de;
		DIR *d;

		if ((size_t)snprintf(dir, sizeof(dir), "%s/%s", argv[1], subs[s]) >= sizeof(dir))
			bench_die("path too long");
		d = opendir(dir);
		if (d == NULL)
			continue;
		while ((de = readdir(d)) != NULL) {
			struct pop3_enc e;
			ssize_t n;
			int fd;

			if (de->d_name[0] == '.')
				continue;
			fd = openat(dirfd(d), de->d_name, O_RDONLY | O_CLOEXEC);
			if (fd < 0)
				bench_die("open %s/%s: %s", dir, de->d_name, strerror(errno));
			pop3_enc_init(&e, true, UINT64_MAX);
			while ((n = read(fd, in, sizeof(in))) > 0)
				bytes += pop3_enc_feed(&e, in, (size_t)n, out);
			bytes += pop3_enc_finish(&e, out);
			close(fd);
			files++;
		}
		closedir(d);
	}
	secs = bench_now() - t0;
	printf("encode files=%" PRIu64 " wire_bytes=%" PRIu64 " seconds=%.3f mb_per_s=%.1f\n",
	       files, bytes, secs, secs > 0 ? (double)bytes / secs / 1e6 : 0.0);
	return 0;
}
