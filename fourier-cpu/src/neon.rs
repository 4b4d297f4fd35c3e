//! NEON rows (aarch64, where NEON is baseline). Each function handles the full
//! SIMD blocks and hands the tail to the scalar reference. Loads and stores go
//! through u8 vectors so no alignment beyond one byte is assumed.

use crate::scalar;
use core::arch::aarch64::*;

/// # Safety
/// `v.len() >= u.len()`, `dst.len() >= 2 * u.len()`.
pub unsafe fn interleave_u8_neon(u: &[u8], v: &[u8], dst: &mut [u8]) {
    let n = u.len();
    let blocks = n / 16;
    for i in 0..blocks {
        // SAFETY: 16 bytes from i*16 within u and v, 32 bytes from i*32 within
        // dst; NEON is mandatory on aarch64; st2 needs only byte alignment.
        unsafe {
            let pair = uint8x16x2_t(
                vld1q_u8(u.as_ptr().add(i * 16)),
                vld1q_u8(v.as_ptr().add(i * 16)),
            );
            vst2q_u8(dst.as_mut_ptr().add(i * 32), pair);
        }
    }
    let done = blocks * 16;
    scalar::interleave_u8(&u[done..], &v[done..n], &mut dst[done * 2..n * 2]);
}

/// # Safety
/// `u.len()` even, `v.len() >= u.len()`, `dst.len() >= 2 * u.len()`.
pub unsafe fn interleave_u16_shl6_neon(u: &[u8], v: &[u8], dst: &mut [u8]) {
    let n = u.len() / 2;
    let blocks = n / 8;
    for i in 0..blocks {
        // SAFETY: 16 bytes from i*16 within u and v, 32 bytes from i*32 within
        // dst; byte loads/stores, reinterpretation between lane types is free.
        unsafe {
            let a = vshlq_n_u16::<6>(vreinterpretq_u16_u8(vld1q_u8(u.as_ptr().add(i * 16))));
            let b = vshlq_n_u16::<6>(vreinterpretq_u16_u8(vld1q_u8(v.as_ptr().add(i * 16))));
            let out = dst.as_mut_ptr().add(i * 32);
            vst1q_u8(out, vreinterpretq_u8_u16(vzip1q_u16(a, b)));
            vst1q_u8(out.add(16), vreinterpretq_u8_u16(vzip2q_u16(a, b)));
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
/// `dst.len() >= src.len()`, `src.len()` even.
pub unsafe fn shl6_u16_neon(src: &[u8], dst: &mut [u8]) {
    let n = src.len();
    let blocks = n / 16;
    for i in 0..blocks {
        // SAFETY: 16 bytes from i*16 within src and dst; byte loads/stores.
        unsafe {
            let a = vshlq_n_u16::<6>(vreinterpretq_u16_u8(vld1q_u8(src.as_ptr().add(i * 16))));
            vst1q_u8(dst.as_mut_ptr().add(i * 16), vreinterpretq_u8_u16(a));
        }
    }
    let done = blocks * 16;
    scalar::shl6_u16(&src[done..], &mut dst[done..n]);
}

/// # Safety
/// `src.len() == 2 * n`, `dst.len() >= n`.
pub unsafe fn u16_to_u8_neon(src: &[u8], dst: &mut [u8]) {
    let n = src.len() / 2;
    let blocks = n / 16;
    for i in 0..blocks {
        // SAFETY: 32 bytes from i*32 within src, 16 from i*16 within dst.
        // vqshrn saturates (x >> 2) to 255 like the scalar min().
        unsafe {
            let a = vreinterpretq_u16_u8(vld1q_u8(src.as_ptr().add(i * 32)));
            let b = vreinterpretq_u16_u8(vld1q_u8(src.as_ptr().add(i * 32 + 16)));
            let packed = vcombine_u8(vqshrn_n_u16::<2>(a), vqshrn_n_u16::<2>(b));
            vst1q_u8(dst.as_mut_ptr().add(i * 16), packed);
        }
    }
    let done = blocks * 16;
    scalar::u16_to_u8(&src[done * 2..n * 2], &mut dst[done..n]);
}
