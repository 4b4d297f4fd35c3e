//! Scalar reference rows: the definition every SIMD variant and plugin is
//! compared against.

/// dst = u0 v0 u1 v1 ...; `dst.len() == 2 * u.len()`.
pub fn interleave_u8(u: &[u8], v: &[u8], dst: &mut [u8]) {
    for ((pair, &a), &b) in dst.chunks_exact_mut(2).zip(u).zip(v) {
        pair[0] = a;
        pair[1] = b;
    }
}

/// 16-bit LE samples: dst = (u0 << 6) (v0 << 6) ...
pub fn interleave_u16_shl6(u: &[u8], v: &[u8], dst: &mut [u8]) {
    for ((quad, a), b) in dst
        .chunks_exact_mut(4)
        .zip(u.chunks_exact(2))
        .zip(v.chunks_exact(2))
    {
        let a = u16::from_le_bytes([a[0], a[1]]) << 6;
        let b = u16::from_le_bytes([b[0], b[1]]) << 6;
        quad[..2].copy_from_slice(&a.to_le_bytes());
        quad[2..].copy_from_slice(&b.to_le_bytes());
    }
}

/// 16-bit LE samples: dst = src << 6.
pub fn shl6_u16(src: &[u8], dst: &mut [u8]) {
    for (d, s) in dst.chunks_exact_mut(2).zip(src.chunks_exact(2)) {
        let x = u16::from_le_bytes([s[0], s[1]]) << 6;
        d.copy_from_slice(&x.to_le_bytes());
    }
}

/// 16-bit LE samples to bytes: dst = min(src >> 2, 255).
pub fn u16_to_u8(src: &[u8], dst: &mut [u8]) {
    for (d, s) in dst.iter_mut().zip(src.chunks_exact(2)) {
        let x = u16::from_le_bytes([s[0], s[1]]) >> 2;
        *d = x.min(255) as u8;
    }
}
