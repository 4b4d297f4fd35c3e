//! The safe plane API: each function checks that every row it touches lies
//! inside the slices, then runs the row kernel of the chosen [`Impl`].

use crate::scalar;
use std::fmt;

/// Which row kernels to use.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Impl {
    /// The scalar reference.
    Scalar,
    /// x86_64 SSE2 (baseline on x86_64).
    Sse2,
    /// x86_64 AVX2 (detected at run time).
    Avx2,
    /// aarch64 NEON (baseline on aarch64).
    Neon,
}

impl fmt::Display for Impl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Impl::Scalar => "scalar",
            Impl::Sse2 => "sse2",
            Impl::Avx2 => "avx2",
            Impl::Neon => "neon",
        })
    }
}

impl Impl {
    /// Every implementation this CPU can run, the scalar reference first.
    pub fn available() -> Vec<Impl> {
        let mut v = vec![Impl::Scalar];
        #[cfg(target_arch = "x86_64")]
        {
            v.push(Impl::Sse2);
            if std::arch::is_x86_feature_detected!("avx2") {
                v.push(Impl::Avx2);
            }
        }
        #[cfg(target_arch = "aarch64")]
        v.push(Impl::Neon);
        v
    }

    /// The fastest implementation this CPU runs.
    pub fn best() -> Impl {
        Impl::available().last().copied().unwrap_or(Impl::Scalar)
    }

    fn supported(self) -> bool {
        Impl::available().contains(&self)
    }
}

/// A plane, or the part of one a kernel touches, with a stride in bytes.
#[derive(Debug, Clone, Copy)]
pub struct Src<'a> {
    pub data: &'a [u8],
    pub stride: usize,
}

/// A destination plane with a stride in bytes.
#[derive(Debug)]
pub struct Dst<'a> {
    pub data: &'a mut [u8],
    pub stride: usize,
}

/// A plane that does not hold the rows a kernel needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LayoutError {
    pub what: &'static str,
    pub needed: usize,
    pub len: usize,
    pub stride: usize,
    pub row_bytes: usize,
}

impl fmt::Display for LayoutError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}: needs {} bytes (rows of {} at stride {}), has {}",
            self.what, self.needed, self.row_bytes, self.stride, self.len
        )
    }
}

impl std::error::Error for LayoutError {}

fn check(
    what: &'static str,
    len: usize,
    stride: usize,
    row_bytes: usize,
    height: usize,
) -> Result<(), LayoutError> {
    let err = |needed| LayoutError {
        what,
        needed,
        len,
        stride,
        row_bytes,
    };
    if height == 0 || row_bytes == 0 {
        return Ok(());
    }
    if height > 1 && stride < row_bytes {
        return Err(err(usize::MAX));
    }
    let needed = (height - 1)
        .checked_mul(stride)
        .and_then(|v| v.checked_add(row_bytes))
        .ok_or(err(usize::MAX))?;
    if needed > len {
        return Err(err(needed));
    }
    Ok(())
}

type Row2 = fn(Impl, &[u8], &[u8], &mut [u8]);
type Row1 = fn(Impl, &[u8], &mut [u8]);

fn row_interleave_u8(imp: Impl, u: &[u8], v: &[u8], dst: &mut [u8]) {
    match imp {
        #[cfg(target_arch = "x86_64")]
        // SAFETY: `imp` was checked with `supported()` by the plane function;
        // slice lengths are exact (n, n, 2n).
        Impl::Sse2 => unsafe { crate::x86::interleave_u8_sse2(u, v, dst) },
        #[cfg(target_arch = "x86_64")]
        // SAFETY: as above; AVX2 was detected.
        Impl::Avx2 => unsafe { crate::x86::interleave_u8_avx2(u, v, dst) },
        #[cfg(target_arch = "aarch64")]
        // SAFETY: NEON is baseline on aarch64; exact slice lengths.
        Impl::Neon => unsafe { crate::neon::interleave_u8_neon(u, v, dst) },
        _ => scalar::interleave_u8(u, v, dst),
    }
}

fn row_interleave_u16(imp: Impl, u: &[u8], v: &[u8], dst: &mut [u8]) {
    match imp {
        #[cfg(target_arch = "x86_64")]
        // SAFETY: checked support; exact slice lengths (2n, 2n, 4n).
        Impl::Sse2 => unsafe { crate::x86::interleave_u16_shl6_sse2(u, v, dst) },
        #[cfg(target_arch = "x86_64")]
        // SAFETY: as above; AVX2 was detected.
        Impl::Avx2 => unsafe { crate::x86::interleave_u16_shl6_avx2(u, v, dst) },
        #[cfg(target_arch = "aarch64")]
        // SAFETY: NEON is baseline on aarch64; exact slice lengths.
        Impl::Neon => unsafe { crate::neon::interleave_u16_shl6_neon(u, v, dst) },
        _ => scalar::interleave_u16_shl6(u, v, dst),
    }
}

fn row_shl6(imp: Impl, src: &[u8], dst: &mut [u8]) {
    match imp {
        #[cfg(target_arch = "x86_64")]
        // SAFETY: checked support; exact slice lengths (2n, 2n).
        Impl::Sse2 => unsafe { crate::x86::shl6_u16_sse2(src, dst) },
        #[cfg(target_arch = "x86_64")]
        // SAFETY: as above; AVX2 was detected.
        Impl::Avx2 => unsafe { crate::x86::shl6_u16_avx2(src, dst) },
        #[cfg(target_arch = "aarch64")]
        // SAFETY: NEON is baseline on aarch64; exact slice lengths.
        Impl::Neon => unsafe { crate::neon::shl6_u16_neon(src, dst) },
        _ => scalar::shl6_u16(src, dst),
    }
}

fn row_to_u8(imp: Impl, src: &[u8], dst: &mut [u8]) {
    match imp {
        #[cfg(target_arch = "x86_64")]
        // SAFETY: checked support; exact slice lengths (2n, n).
        Impl::Sse2 => unsafe { crate::x86::u16_to_u8_sse2(src, dst) },
        #[cfg(target_arch = "x86_64")]
        // SAFETY: as above; AVX2 was detected.
        Impl::Avx2 => unsafe { crate::x86::u16_to_u8_avx2(src, dst) },
        #[cfg(target_arch = "aarch64")]
        // SAFETY: NEON is baseline on aarch64; exact slice lengths.
        Impl::Neon => unsafe { crate::neon::u16_to_u8_neon(src, dst) },
        _ => scalar::u16_to_u8(src, dst),
    }
}

fn usable(imp: Impl) -> Impl {
    if imp.supported() {
        imp
    } else {
        Impl::Scalar
    }
}

#[allow(clippy::too_many_arguments)]
fn two_planes(
    imp: Impl,
    row: Row2,
    sample: usize,
    u: Src<'_>,
    v: Src<'_>,
    dst: Dst<'_>,
    width: usize,
    height: usize,
) -> Result<(), LayoutError> {
    let src_row = width.checked_mul(sample).ok_or(LayoutError {
        what: "width",
        needed: usize::MAX,
        len: 0,
        stride: 0,
        row_bytes: usize::MAX,
    })?;
    check("u plane", u.data.len(), u.stride, src_row, height)?;
    check("v plane", v.data.len(), v.stride, src_row, height)?;
    check(
        "destination",
        dst.data.len(),
        dst.stride,
        src_row * 2,
        height,
    )?;
    let imp = usable(imp);
    for y in 0..height {
        let ur = &u.data[y * u.stride..][..src_row];
        let vr = &v.data[y * v.stride..][..src_row];
        let dr = &mut dst.data[y * dst.stride..][..src_row * 2];
        row(imp, ur, vr, dr);
    }
    Ok(())
}

#[allow(clippy::too_many_arguments)]
fn one_plane(
    imp: Impl,
    row: Row1,
    src_sample: usize,
    dst_sample: usize,
    src: Src<'_>,
    dst: Dst<'_>,
    width: usize,
    height: usize,
) -> Result<(), LayoutError> {
    let overflow = LayoutError {
        what: "width",
        needed: usize::MAX,
        len: 0,
        stride: 0,
        row_bytes: usize::MAX,
    };
    let src_row = width.checked_mul(src_sample).ok_or(overflow.clone())?;
    let dst_row = width.checked_mul(dst_sample).ok_or(overflow)?;
    check("source", src.data.len(), src.stride, src_row, height)?;
    check("destination", dst.data.len(), dst.stride, dst_row, height)?;
    let imp = usable(imp);
    for y in 0..height {
        row(
            imp,
            &src.data[y * src.stride..][..src_row],
            &mut dst.data[y * dst.stride..][..dst_row],
        );
    }
    Ok(())
}

/// NV12 chroma: `width` u/v samples per row become `2 * width` bytes.
pub fn nv12_interleave(
    imp: Impl,
    u: Src<'_>,
    v: Src<'_>,
    dst: Dst<'_>,
    width: usize,
    height: usize,
) -> Result<(), LayoutError> {
    two_planes(imp, row_interleave_u8, 1, u, v, dst, width, height)
}

/// P010 chroma: 16-bit u/v samples (10-bit values) interleaved, shifted left by 6.
pub fn p010_interleave(
    imp: Impl,
    u: Src<'_>,
    v: Src<'_>,
    dst: Dst<'_>,
    width: usize,
    height: usize,
) -> Result<(), LayoutError> {
    two_planes(imp, row_interleave_u16, 2, u, v, dst, width, height)
}

/// P010 luma: 16-bit samples shifted left by 6.
pub fn p010_pack(
    imp: Impl,
    src: Src<'_>,
    dst: Dst<'_>,
    width: usize,
    height: usize,
) -> Result<(), LayoutError> {
    one_plane(imp, row_shl6, 2, 2, src, dst, width, height)
}

/// 10 -> 8 bit: 16-bit samples become `min(x >> 2, 255)` bytes.
pub fn depth_10_to_8(
    imp: Impl,
    src: Src<'_>,
    dst: Dst<'_>,
    width: usize,
    height: usize,
) -> Result<(), LayoutError> {
    one_plane(imp, row_to_u8, 2, 1, src, dst, width, height)
}

/// Plain row copy (8-bit luma, planar formats).
pub fn copy_plane(
    src: Src<'_>,
    dst: Dst<'_>,
    row_bytes: usize,
    height: usize,
) -> Result<(), LayoutError> {
    check("source", src.data.len(), src.stride, row_bytes, height)?;
    check("destination", dst.data.len(), dst.stride, row_bytes, height)?;
    for y in 0..height {
        dst.data[y * dst.stride..][..row_bytes]
            .copy_from_slice(&src.data[y * src.stride..][..row_bytes]);
    }
    Ok(())
}

/// Deterministic test pattern (xorshift), used by tests and plugin self-tests.
pub fn pattern(len: usize, seed: u32) -> Vec<u8> {
    let mut x = seed | 1;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            (x >> 11) as u8
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    // Odd sizes, strides with slack, sizes around every SIMD block width.
    const SIZES: &[(usize, usize)] = &[
        (1, 1),
        (7, 3),
        (15, 2),
        (16, 1),
        (17, 5),
        (31, 3),
        (33, 4),
        (63, 2),
        (65, 3),
        (130, 7),
        (961, 3),
    ];

    type TwoPlane = fn(Impl, Src<'_>, Src<'_>, Dst<'_>, usize, usize) -> Result<(), LayoutError>;
    type OnePlane = fn(Impl, Src<'_>, Dst<'_>, usize, usize) -> Result<(), LayoutError>;

    fn run_two(f: TwoPlane, sample: usize, imp: Impl, w: usize, h: usize) -> Vec<u8> {
        let ss = w * sample + 5;
        let ds = 2 * w * sample + 3;
        let u = pattern(ss * h, 1);
        let v = pattern(ss * h, 2);
        let mut d = pattern(ds * h, 3); // garbage that must be overwritten or kept
        f(
            imp,
            Src {
                data: &u,
                stride: ss,
            },
            Src {
                data: &v,
                stride: ss,
            },
            Dst {
                data: &mut d,
                stride: ds,
            },
            w,
            h,
        )
        .unwrap();
        d
    }

    fn run_one(
        f: OnePlane,
        ssample: usize,
        dsample: usize,
        imp: Impl,
        w: usize,
        h: usize,
    ) -> Vec<u8> {
        let ss = w * ssample + 7;
        let ds = w * dsample + 1;
        let s = pattern(ss * h, 4);
        let mut d = pattern(ds * h, 5);
        f(
            imp,
            Src {
                data: &s,
                stride: ss,
            },
            Dst {
                data: &mut d,
                stride: ds,
            },
            w,
            h,
        )
        .unwrap();
        d
    }

    #[test]
    fn simd_matches_scalar_on_odd_sizes_and_strides() {
        for imp in Impl::available() {
            for &(w, h) in SIZES {
                assert_eq!(
                    run_two(nv12_interleave, 1, imp, w, h),
                    run_two(nv12_interleave, 1, Impl::Scalar, w, h),
                    "nv12 {imp} {w}x{h}"
                );
                assert_eq!(
                    run_two(p010_interleave, 2, imp, w, h),
                    run_two(p010_interleave, 2, Impl::Scalar, w, h),
                    "p010i {imp} {w}x{h}"
                );
                assert_eq!(
                    run_one(p010_pack, 2, 2, imp, w, h),
                    run_one(p010_pack, 2, 2, Impl::Scalar, w, h),
                    "p010 {imp} {w}x{h}"
                );
                assert_eq!(
                    run_one(depth_10_to_8, 2, 1, imp, w, h),
                    run_one(depth_10_to_8, 2, 1, Impl::Scalar, w, h),
                    "10to8 {imp} {w}x{h}"
                );
            }
        }
    }

    #[test]
    fn scalar_reference_values() {
        let mut d = [0u8; 6];
        nv12_interleave(
            Impl::Scalar,
            Src {
                data: &[1, 2, 3],
                stride: 3,
            },
            Src {
                data: &[7, 8, 9],
                stride: 3,
            },
            Dst {
                data: &mut d,
                stride: 6,
            },
            3,
            1,
        )
        .unwrap();
        assert_eq!(d, [1, 7, 2, 8, 3, 9]);
        let mut d = [0u8; 4];
        p010_pack(
            Impl::Scalar,
            Src {
                data: &[0xff, 0x03, 0x01, 0x00],
                stride: 4,
            },
            Dst {
                data: &mut d,
                stride: 4,
            },
            2,
            1,
        )
        .unwrap();
        assert_eq!(d, [0xc0, 0xff, 0x40, 0x00]);
        let mut d = [0u8; 3];
        depth_10_to_8(
            Impl::Scalar,
            Src {
                data: &[0xff, 0x03, 0x04, 0x00, 0xff, 0xff],
                stride: 6,
            },
            Dst {
                data: &mut d,
                stride: 3,
            },
            3,
            1,
        )
        .unwrap();
        assert_eq!(d, [255, 1, 255]);
    }

    #[test]
    fn short_planes_are_rejected() {
        let u = [0u8; 10];
        let mut d = [0u8; 40];
        let e = nv12_interleave(
            Impl::best(),
            Src {
                data: &u,
                stride: 4,
            },
            Src {
                data: &u,
                stride: 4,
            },
            Dst {
                data: &mut d,
                stride: 8,
            },
            4,
            3,
        )
        .unwrap_err();
        assert_eq!(e.what, "u plane");
        let e = nv12_interleave(
            Impl::best(),
            Src {
                data: &u,
                stride: 2,
            },
            Src {
                data: &u,
                stride: 2,
            },
            Dst {
                data: &mut d,
                stride: 8,
            },
            4,
            2,
        )
        .unwrap_err();
        assert_eq!(e.what, "u plane");
    }
}
