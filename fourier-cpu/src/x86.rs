//! SSE2 and AVX2 rows (x86_64). Each function handles the full SIMD blocks
//! and hands the tail to the scalar reference. Callers check CPU support
//! (SSE2 is part of the x86_64 baseline; AVX2 is detected at run time).

use crate::scalar;
use core::arch::x86_64::*;

/// # Safety
/// Slices as for [`scalar::interleave_u8`] (`dst.len() >= 2 * u.len()`,
/// `v.len() >= u.len()`); SSE2 available (always on x86_64).
#[target_feature(enable = "sse2")]
pub unsafe fn interleave_u8_sse2(u: &[u8], v: &[u8], dst: &mut [u8]) {
    let n = u.len();
    let blocks = n / 16;
    for i in 0..blocks {
        // SAFETY: i*16+16 <= n <= u.len(), v.len(); i*32+32 <= 2n <= dst.len();
        // loadu/storeu have no alignment requirement.
        unsafe {
            let a = _mm_loadu_si128(u.as_ptr().add(i * 16).cast());
            let b = _mm_loadu_si128(v.as_ptr().add(i * 16).cast());
            let out = dst.as_mut_ptr().add(i * 32);
            _mm_storeu_si128(out.cast(), _mm_unpacklo_epi8(a, b));
            _mm_storeu_si128(out.add(16).cast(), _mm_unpackhi_epi8(a, b));
        }
    }
    let done = blocks * 16;
    scalar::interleave_u8(&u[done..], &v[done..n], &mut dst[done * 2..n * 2]);
}

/// # Safety
/// As [`interleave_u8_sse2`], and AVX2 available.
#[target_feature(enable = "avx2")]
pub unsafe fn interleave_u8_avx2(u: &[u8], v: &[u8], dst: &mut [u8]) {
    let n = u.len();
    let blocks = n / 32;
    for i in 0..blocks {
        // SAFETY: i*32+32 <= n; i*64+64 <= 2n <= dst.len(); unaligned ops.
        unsafe {
            let a = _mm256_loadu_si256(u.as_ptr().add(i * 32).cast());
            let b = _mm256_loadu_si256(v.as_ptr().add(i * 32).cast());
            // unpack works per 128-bit lane; the permutes restore the order.
            let lo = _mm256_unpacklo_epi8(a, b);
            let hi = _mm256_unpackhi_epi8(a, b);
            let out = dst.as_mut_ptr().add(i * 64);
            _mm256_storeu_si256(out.cast(), _mm256_permute2x128_si256(lo, hi, 0x20));
            _mm256_storeu_si256(out.add(32).cast(), _mm256_permute2x128_si256(lo, hi, 0x31));
        }
    }
    let done = blocks * 32;
    scalar::interleave_u8(&u[done..], &v[done..n], &mut dst[done * 2..n * 2]);
}

/// # Safety
/// `u.len()` even, `v.len() >= u.len()`, `dst.len() >= 2 * u.len()`; SSE2.
#[target_feature(enable = "sse2")]
pub unsafe fn interleave_u16_shl6_sse2(u: &[u8], v: &[u8], dst: &mut [u8]) {
    let n = u.len() / 2; // samples
    let blocks = n / 8;
    for i in 0..blocks {
        // SAFETY: 8 samples = 16 bytes from i*16 within u and v; 32 bytes from
        // i*32 within dst; unaligned ops.
        unsafe {
            let a = _mm_slli_epi16::<6>(_mm_loadu_si128(u.as_ptr().add(i * 16).cast()));
            let b = _mm_slli_epi16::<6>(_mm_loadu_si128(v.as_ptr().add(i * 16).cast()));
            let out = dst.as_mut_ptr().add(i * 32);
            _mm_storeu_si128(out.cast(), _mm_unpacklo_epi16(a, b));
            _mm_storeu_si128(out.add(16).cast(), _mm_unpackhi_epi16(a, b));
        }
    }
    let done = blocks * 8;
    scalar::interleave_u16_shl6(
        &u[done * 2..n * 2],
        &v[done * 2..n * 2],
        &mut dst[done * 4..n * 4],
    );
}

/// # Safety
/// As [`interleave_u16_shl6_sse2`], and AVX2 available.
#[target_feature(enable = "avx2")]
pub unsafe fn interleave_u16_shl6_avx2(u: &[u8], v: &[u8], dst: &mut [u8]) {
    let n = u.len() / 2;
    let blocks = n / 16;
    for i in 0..blocks {
        // SAFETY: 16 samples = 32 bytes from i*32 within u and v; 64 bytes
        // from i*64 within dst; unaligned ops.
        unsafe {
            let a = _mm256_slli_epi16::<6>(_mm256_loadu_si256(u.as_ptr().add(i * 32).cast()));
            let b = _mm256_slli_epi16::<6>(_mm256_loadu_si256(v.as_ptr().add(i * 32).cast()));
            let lo = _mm256_unpacklo_epi16(a, b);
            let hi = _mm256_unpackhi_epi16(a, b);
            let out = dst.as_mut_ptr().add(i * 64);
            _mm256_storeu_si256(out.cast(), _mm256_permute2x128_si256(lo, hi, 0x20));
            _mm256_storeu_si256(out.add(32).cast(), _mm256_permute2x128_si256(lo, hi, 0x31));
        }
    }
    let done = blocks * 16;
    scalar::interleave_u16_shl6(
        &u[done * 2..n * 2],
        &v[done * 2..n * 2],
        &mut dst[done * 4..n * 4],
    );
}

/// # Safety
/// `dst.len() >= src.len()`, `src.len()` even; SSE2.
#[target_feature(enable = "sse2")]
pub unsafe fn shl6_u16_sse2(src: &[u8], dst: &mut [u8]) {
    let n = src.len();
    let blocks = n / 16;
    for i in 0..blocks {
        // SAFETY: 16 bytes from i*16 within src and dst; unaligned ops.
        unsafe {
            let a = _mm_loadu_si128(src.as_ptr().add(i * 16).cast());
            _mm_storeu_si128(dst.as_mut_ptr().add(i * 16).cast(), _mm_slli_epi16::<6>(a));
        }
    }
    let done = blocks * 16;
    scalar::shl6_u16(&src[done..], &mut dst[done..n]);
}

/// # Safety
/// As [`shl6_u16_sse2`], and AVX2 available.
#[target_feature(enable = "avx2")]
pub unsafe fn shl6_u16_avx2(src: &[u8], dst: &mut [u8]) {
    let n = src.len();
    let blocks = n / 32;
    for i in 0..blocks {
        // SAFETY: 32 bytes from i*32 within src and dst; unaligned ops.
        unsafe {
            let a = _mm256_loadu_si256(src.as_ptr().add(i * 32).cast());
            _mm256_storeu_si256(
                dst.as_mut_ptr().add(i * 32).cast(),
                _mm256_slli_epi16::<6>(a),
            );
        }
    }
    let done = blocks * 32;
    scalar::shl6_u16(&src[done..], &mut dst[done..n]);
}

/// # Safety
/// `src.len() == 2 * n`, `dst.len() >= n`; SSE2.
#[target_feature(enable = "sse2")]
pub unsafe fn u16_to_u8_sse2(src: &[u8], dst: &mut [u8]) {
    let n = src.len() / 2;
    let blocks = n / 16;
    for i in 0..blocks {
        // SAFETY: 32 bytes from i*32 within src, 16 bytes from i*16 within
        // dst; unaligned ops. packus saturates values above 255 to 255 (after
        // the shift every value is at most 16383, positive as i16).
        unsafe {
            let a = _mm_srli_epi16::<2>(_mm_loadu_si128(src.as_ptr().add(i * 32).cast()));
            let b = _mm_srli_epi16::<2>(_mm_loadu_si128(src.as_ptr().add(i * 32 + 16).cast()));
            _mm_storeu_si128(dst.as_mut_ptr().add(i * 16).cast(), _mm_packus_epi16(a, b));
        }
    }
    let done = blocks * 16;
    scalar::u16_to_u8(&src[done * 2..n * 2], &mut dst[done..n]);
}

/// # Safety
/// As [`u16_to_u8_sse2`], and AVX2 available.
#[target_feature(enable = "avx2")]
pub unsafe fn u16_to_u8_avx2(src: &[u8], dst: &mut [u8]) {
    let n = src.len() / 2;
    let blocks = n / 32;
    for i in 0..blocks {
        // SAFETY: 64 bytes from i*64 within src, 32 bytes from i*32 within
        // dst; unaligned ops. packus works per lane: permute4x64 restores order.
        unsafe {
            let a = _mm256_srli_epi16::<2>(_mm256_loadu_si256(src.as_ptr().add(i * 64).cast()));
            let b =
                _mm256_srli_epi16::<2>(_mm256_loadu_si256(src.as_ptr().add(i * 64 + 32).cast()));
            let packed = _mm256_permute4x64_epi64::<0xd8>(_mm256_packus_epi16(a, b));
            _mm256_storeu_si256(dst.as_mut_ptr().add(i * 32).cast(), packed);
        }
    }
    let done = blocks * 32;
    scalar::u16_to_u8(&src[done * 2..n * 2], &mut dst[done..n]);
}
