/* Server memory as the kernel accounts it: Pss summed over a process tree (smaps_rollup). Pss
 * splits shared pages between their users, so forked workers are neither missed nor counted
 * twice. */
#include <ctype.h>
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bench.h"
#include "strnum.h"

/* More processes than any server under test runs (Dovecot's default mode: one per session). */
#define PROCMEM_PROCS_MAX 65536

static int read_ppid(int pid)
{
	char path[64], buf[512];
	FILE *f;
	char *rp;
	uint64_t ppid;
	size_t n;

	snprintf(path, sizeof(path), "/proc/%d/stat", pid);
	f = fopen(path, "re");
	if (f == NULL)
		return -1;
	n = fread(buf, 1, sizeof(buf) - 1, f);
	fclose(f);
	buf[n] = '\0';
	/* "pid (comm) state ppid": comm may hold spaces and ')', so take the last ')'. */
	rp = strrchr(buf, ')');
	if (rp == NULL || strlen(rp) < 5)
		return -1;
	rp += 4;
	n = strspn(rp, "0123456789");
	if (strnum_u64(rp, n, 0, 1u << 30, &ppid) < 0)
		return -1;
	return (int)ppid;
}

static long long read_pss(int pid)
{
	char path[64], line[256];
	FILE *f;
	long long kib = -1;

	snprintf(path, sizeof(path), "/proc/%d/smaps_rollup", pid);
	f = fopen(path, "re");
	if (f == NULL)
		return -1;
	while (fgets(line, sizeof(line), f) != NULL) {
		if (strncmp(line, "Pss:", 4) == 0) {
			char *p = line + 4;
			uint64_t v;
			size_t n;

			while (*p == ' ')
				p++;
			n = strspn(p, "0123456789");
			if (strnum_u64(p, n, 0, UINT64_MAX / 2, &v) == 0)
				kib = (long long)v;
			break;
		}
	}
	fclose(f);
	return kib;
}

long long procmem_pss_kib(int root, int *nproc_r)
{
	static int pids[PROCMEM_PROCS_MAX], ppids[PROCMEM_PROCS_MAX];
	static unsigned char in_tree[PROCMEM_PROCS_MAX];
	size_t n = 0;
	long long total;
	bool grew = true;
	DIR *d = opendir("/proc");
	struct dirent *de;

	*nproc_r = 0;
	if (d == NULL)
		return -1;
	while ((de = readdir(d)) != NULL && n < PROCMEM_PROCS_MAX) {
		uint64_t pid;

		if (!isdigit((unsigned char)de->d_name[0]) ||
		    strnum_parse(de->d_name, 1, 1u << 30, &pid) < 0)
			continue;
		pids[n] = (int)pid;
		ppids[n] = read_ppid((int)pid);
		in_tree[n] = pids[n] == root;
		n++;
	}
	closedir(d);
	/* Fixed point over the parent links: bounded by the tree depth. */
	for (int round = 0; grew && round < 64; round++) {
		grew = false;
		for (size_t i = 0; i < n; i++) {
			if (in_tree[i])
				continue;
			for (size_t j = 0; j < n; j++) {
				if (in_tree[j] && pids[j] == ppids[i]) {
					in_tree[i] = 1;
					grew = true;
					break;
				}
			}
		}
	}
	total = read_pss(root);
	if (total < 0)
		return -1;
	*nproc_r = 1;
	for (size_t i = 0; i < n; i++) {
		long long kib;

		if (!in_tree[i] || pids[i] == root)
			continue;
		kib = read_pss(pids[i]);
		if (kib >= 0) {
			total += kib;
			(*nproc_r)++;
		}
	}
	return total;
}
