/* SPDX-License-Identifier: GPL-2.0-only */
/*
 * daedalus-fourier: the compute plugin ABI of daedalus-v4l2d.
 *
 * A plugin is a shared library exporting
 *
 *     const struct daedalus_fourier_api *daedalus_fourier_get_api(void);
 *
 * The daemon dlopen()s it (config [plugin] path), checks abi_version ==
 * DAEDALUS_FOURIER_ABI_VERSION and struct_size >= sizeof(struct
 * daedalus_fourier_api), then runs every function on test patterns with odd
 * sizes and strides and compares the result bit for bit with its own CPU
 * path. Any failure: the plugin is not used, the daemon logs why and decodes
 * with the CPU path.
 *
 * Conventions for all functions:
 *   - strides are in bytes and may be larger than the row;
 *   - 16-bit samples are little-endian, need not be 2-byte aligned;
 *   - "10-bit" input samples hold the value in the low 10 bits (FFmpeg
 *     yuv420p10le); P010 output holds it in the high 10 bits (value << 6,
 *     computed in 16 bits);
 *   - return 0 on success or a negative errno (-EINVAL for a NULL pointer or
 *     a stride smaller than the row); the destination is then unspecified;
 *   - functions may be called from several threads at once.
 *
 * The reference implementation is libdaedalus_fourier_cpu.so (fourier-cpu/ in
 * the daedalus-v4l2 repository). For tests it honours the environment variable
 * DAEDALUS_FOURIER_FAULT: "abi" reports a wrong ABI version, "mismatch" makes
 * nv12_interleave corrupt one byte per call.
 */
#ifndef DAEDALUS_FOURIER_H
#define DAEDALUS_FOURIER_H

#include <stddef.h>
#include <stdint.h>

#define DAEDALUS_FOURIER_ABI_VERSION 1u

struct daedalus_fourier_api {
	uint32_t abi_version;	/* DAEDALUS_FOURIER_ABI_VERSION */
	uint32_t struct_size;	/* sizeof(struct daedalus_fourier_api) */
	const char *name;	/* implementation name, NUL-terminated, static */

	/* NV12 chroma: dst row y = u0 v0 u1 v1 ... (width pairs). */
	int (*nv12_interleave)(const uint8_t *u, size_t u_stride,
			       const uint8_t *v, size_t v_stride,
			       uint8_t *dst, size_t dst_stride,
			       uint32_t width, uint32_t height);
	/* P010 luma: dst sample = src sample << 6. */
	int (*p010_pack)(const uint8_t *src, size_t src_stride,
			 uint8_t *dst, size_t dst_stride,
			 uint32_t width, uint32_t height);
	/* P010 chroma: dst row = (u0 << 6) (v0 << 6) ... (width pairs). */
	int (*p010_interleave)(const uint8_t *u, size_t u_stride,
			       const uint8_t *v, size_t v_stride,
			       uint8_t *dst, size_t dst_stride,
			       uint32_t width, uint32_t height);
	/* 10 -> 8 bit: dst = min(src >> 2, 255). */
	int (*depth_10_to_8)(const uint8_t *src, size_t src_stride,
			     uint8_t *dst, size_t dst_stride,
			     uint32_t width, uint32_t height);
};

const struct daedalus_fourier_api *daedalus_fourier_get_api(void);

#endif /* DAEDALUS_FOURIER_H */
