/* SipHash (Aumasson and Bernstein): a keyed hash for tables whose keys come from outside (message
 * names, client addresses, user names), so nobody can aim them at one bucket. Inline, so each
 * caller's round counts fold into straight-line code. */
#ifndef GANNET_SIPHASH_H
#define GANNET_SIPHASH_H

#include <stddef.h>
#include <stdint.h>

#define SIPHASH_ROTL(x, b) (uint64_t)(((x) << (b)) | ((x) >> (64 - (b))))

static inline void siphash_round(uint64_t v[4])
{
	v[0] += v[1];
	v[1] = SIPHASH_ROTL(v[1], 13);
	v[1] ^= v[0];
	v[0] = SIPHASH_ROTL(v[0], 32);
	v[2] += v[3];
	v[3] = SIPHASH_ROTL(v[3], 16);
	v[3] ^= v[2];
	v[0] += v[3];
	v[3] = SIPHASH_ROTL(v[3], 21);
	v[3] ^= v[0];
	v[2] += v[1];
	v[1] = SIPHASH_ROTL(v[1], 17);
	v[1] ^= v[2];
	v[2] = SIPHASH_ROTL(v[2], 32);
}

/* SipHash-C-D of IN[0..LEN) under the key (K0, K1): C rounds per word, D at the end (2-4 is the
 * reference, 1-3 the faster variant for in-process tables). */
static inline uint64_t siphash(uint64_t k0, uint64_t k1, const unsigned char *in, size_t len, int c,
                               int d)
{
	uint64_t v[4] = {0x736f6d6570736575ULL ^ k0, 0x646f72616e646f6dULL ^ k1,
	                 0x6c7967656e657261ULL ^ k0, 0x7465646279746573ULL ^ k1};
	uint64_t b = (uint64_t)len << 56;
	size_t full = len - len % 8;

	for (size_t i = 0; i < full; i += 8) {
		uint64_t m = 0;

		for (int j = 7; j >= 0; j--)
			m = m << 8 | in[i + (size_t)j];
		v[3] ^= m;
		for (int r = 0; r < c; r++)
			siphash_round(v);
		v[0] ^= m;
	}
	for (size_t i = 0; i < len % 8; i++)
		b |= (uint64_t)in[full + i] << (8 * i);
	v[3] ^= b;
	for (int r = 0; r < c; r++)
		siphash_round(v);
	v[0] ^= b;
	v[2] ^= 0xff;
	for (int r = 0; r < d; r++)
		siphash_round(v);
	return v[0] ^ v[1] ^ v[2] ^ v[3];
}

#endif
