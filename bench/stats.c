/* Latency samples and nearest-rank percentiles. */
#include <stdlib.h>

#include "bench.h"

void samples_init(struct samples *s, size_t max)
{
	s->v = NULL;
	s->n = s->cap = 0;
	s->max = max;
}

void samples_add(struct samples *s, double v)
{
	if (s->n == s->cap) {
		size_t cap = s->cap ? s->cap * 2 : 4096;
		double *nv;

		if (cap > s->max)
			cap = s->max;
		if (cap <= s->n)
			return; /* full: the run is bounded in count anyway */
		nv = realloc(s->v, cap * sizeof(*nv));
		if (nv == NULL)
			bench_die("out of memory");
		s->v = nv;
		s->cap = cap;
	}
	s->v[s->n++] = v;
}

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return (x > y) - (x < y);
}

double samples_pct(struct samples *s, double p)
{
	size_t rank;

	if (s->n == 0)
		return 0;
	qsort(s->v, s->n, sizeof(*s->v), cmp_double);
	rank = (size_t)(p / 100.0 * (double)s->n + 0.999999);
	if (rank < 1)
		rank = 1;
	if (rank > s->n)
		rank = s->n;
	return s->v[rank - 1];
}

void samples_free(struct samples *s)
{
	free(s->v);
	s->v = NULL;
	s->n = s->cap = 0;
}
