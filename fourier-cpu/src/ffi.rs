//! The C ABI of `include/daedalus_fourier.h`, exported by the cdylib.
//!
//! The struct layout here is the Rust twin of `struct daedalus_fourier_api`;
//! the daemon reads it through this very type, and `tests` check the offsets
//! the C header implies on LP64.

use crate::kernels::{self, Dst, Impl, LayoutError, Src};
use std::ffi::{c_char, c_int};

/// `DAEDALUS_FOURIER_ABI_VERSION`.
pub const ABI_VERSION: u32 = 1;

/// Fault injection for tests: `abi` (wrong ABI version) or `mismatch`
/// (nv12_interleave corrupts one output byte).
pub const FAULT_ENV: &str = "DAEDALUS_FOURIER_FAULT";

/// `int f(const uint8_t *u, size_t, const uint8_t *v, size_t, uint8_t *dst, size_t, uint32_t w, uint32_t h)`.
pub type TwoPlaneFn =
    unsafe extern "C" fn(*const u8, usize, *const u8, usize, *mut u8, usize, u32, u32) -> c_int;
/// `int f(const uint8_t *src, size_t, uint8_t *dst, size_t, uint32_t w, uint32_t h)`.
pub type OnePlaneFn = unsafe extern "C" fn(*const u8, usize, *mut u8, usize, u32, u32) -> c_int;

/// `struct daedalus_fourier_api`.
#[repr(C)]
#[derive(Debug)]
pub struct Api {
    pub abi_version: u32,
    pub struct_size: u32,
    pub name: *const c_char,
    pub nv12_interleave: Option<TwoPlaneFn>,
    pub p010_pack: Option<OnePlaneFn>,
    pub p010_interleave: Option<TwoPlaneFn>,
    pub depth_10_to_8: Option<OnePlaneFn>,
}

struct StaticApi(Api);
// SAFETY: the table is immutable; `name` points to a static NUL-terminated
// string and the function pointers are thread-safe (header: "may be called
// from several threads at once").
unsafe impl Sync for StaticApi {}

const EINVAL: c_int = 22;

fn plane_len(stride: usize, row_bytes: usize, height: u32) -> Option<usize> {
    if height == 0 {
        return Some(0);
    }
    (height as usize - 1)
        .checked_mul(stride)?
        .checked_add(row_bytes)
}

/// Builds the source slice a kernel may read.
///
/// # Safety
/// `ptr` must be valid for reads of `plane_len(stride, row_bytes, height)` bytes.
unsafe fn src<'a>(ptr: *const u8, stride: usize, row_bytes: usize, height: u32) -> Option<Src<'a>> {
    let len = plane_len(stride, row_bytes, height)?;
    if ptr.is_null() || (height > 1 && stride < row_bytes) {
        return None;
    }
    // SAFETY: non-null; the caller guarantees `len` readable bytes.
    Some(Src {
        data: unsafe { std::slice::from_raw_parts(ptr, len) },
        stride,
    })
}

/// # Safety
/// `ptr` must be valid for writes of `plane_len(stride, row_bytes, height)`
/// bytes that no other live reference covers.
unsafe fn dst<'a>(ptr: *mut u8, stride: usize, row_bytes: usize, height: u32) -> Option<Dst<'a>> {
    let len = plane_len(stride, row_bytes, height)?;
    if ptr.is_null() || (height > 1 && stride < row_bytes) {
        return None;
    }
    // SAFETY: non-null; the caller guarantees `len` writable, unaliased bytes.
    Some(Dst {
        data: unsafe { std::slice::from_raw_parts_mut(ptr, len) },
        stride,
    })
}

fn status(r: Option<Result<(), LayoutError>>) -> c_int {
    match r {
        Some(Ok(())) => 0,
        _ => -EINVAL,
    }
}

type TwoPlaneKernel = fn(Impl, Src<'_>, Src<'_>, Dst<'_>, usize, usize) -> Result<(), LayoutError>;
type OnePlaneKernel = fn(Impl, Src<'_>, Dst<'_>, usize, usize) -> Result<(), LayoutError>;

/// # Safety
/// The C contract of the header for two-plane functions.
#[allow(clippy::too_many_arguments)]
unsafe fn two_plane(
    k: TwoPlaneKernel,
    sample: usize,
    u: *const u8,
    us: usize,
    v: *const u8,
    vs: usize,
    d: *mut u8,
    ds: usize,
    w: u32,
    h: u32,
) -> c_int {
    let row = (w as usize) * sample;
    // SAFETY: the C caller passes planes of the documented size.
    let r = unsafe {
        (|| {
            Some(k(
                Impl::best(),
                src(u, us, row, h)?,
                src(v, vs, row, h)?,
                dst(d, ds, row * 2, h)?,
                w as usize,
                h as usize,
            ))
        })()
    };
    status(r)
}

/// # Safety
/// The C contract of the header for one-plane functions.
#[allow(clippy::too_many_arguments)]
unsafe fn one_plane(
    k: OnePlaneKernel,
    ss: usize,
    ds_: usize,
    s: *const u8,
    sst: usize,
    d: *mut u8,
    dst_stride: usize,
    w: u32,
    h: u32,
) -> c_int {
    // SAFETY: the C caller passes planes of the documented size.
    let r = unsafe {
        (|| {
            Some(k(
                Impl::best(),
                src(s, sst, w as usize * ss, h)?,
                dst(d, dst_stride, w as usize * ds_, h)?,
                w as usize,
                h as usize,
            ))
        })()
    };
    status(r)
}

unsafe extern "C" fn nv12_interleave(
    u: *const u8,
    us: usize,
    v: *const u8,
    vs: usize,
    d: *mut u8,
    ds: usize,
    w: u32,
    h: u32,
) -> c_int {
    // SAFETY: forwarded C contract.
    unsafe { two_plane(kernels::nv12_interleave, 1, u, us, v, vs, d, ds, w, h) }
}

unsafe extern "C" fn nv12_interleave_faulty(
    u: *const u8,
    us: usize,
    v: *const u8,
    vs: usize,
    d: *mut u8,
    ds: usize,
    w: u32,
    h: u32,
) -> c_int {
    // SAFETY: forwarded C contract.
    let r = unsafe { two_plane(kernels::nv12_interleave, 1, u, us, v, vs, d, ds, w, h) };
    if r == 0 && w > 0 && h > 0 {
        // SAFETY: the first destination byte is inside the plane just written.
        unsafe { *d ^= 0x01 };
    }
    r
}

unsafe extern "C" fn p010_interleave(
    u: *const u8,
    us: usize,
    v: *const u8,
    vs: usize,
    d: *mut u8,
    ds: usize,
    w: u32,
    h: u32,
) -> c_int {
    // SAFETY: forwarded C contract.
    unsafe { two_plane(kernels::p010_interleave, 2, u, us, v, vs, d, ds, w, h) }
}

unsafe extern "C" fn p010_pack(
    s: *const u8,
    ss: usize,
    d: *mut u8,
    ds: usize,
    w: u32,
    h: u32,
) -> c_int {
    // SAFETY: forwarded C contract.
    unsafe { one_plane(kernels::p010_pack, 2, 2, s, ss, d, ds, w, h) }
}

unsafe extern "C" fn depth_10_to_8(
    s: *const u8,
    ss: usize,
    d: *mut u8,
    ds: usize,
    w: u32,
    h: u32,
) -> c_int {
    // SAFETY: forwarded C contract.
    unsafe { one_plane(kernels::depth_10_to_8, 2, 1, s, ss, d, ds, w, h) }
}

const fn table(abi_version: u32, nv12: TwoPlaneFn) -> StaticApi {
    StaticApi(Api {
        abi_version,
        struct_size: std::mem::size_of::<Api>() as u32,
        name: c"daedalus-fourier-cpu".as_ptr(),
        nv12_interleave: Some(nv12),
        p010_pack: Some(p010_pack),
        p010_interleave: Some(p010_interleave),
        depth_10_to_8: Some(depth_10_to_8),
    })
}

static API: StaticApi = table(ABI_VERSION, nv12_interleave);
static API_WRONG_ABI: StaticApi = table(ABI_VERSION + 1000, nv12_interleave);
static API_MISMATCH: StaticApi = table(ABI_VERSION, nv12_interleave_faulty);

/// `daedalus_fourier_get_api()`: the exported entry point.
#[no_mangle]
pub extern "C" fn daedalus_fourier_get_api() -> *const Api {
    let api = match std::env::var(FAULT_ENV).as_deref() {
        Ok("abi") => &API_WRONG_ABI,
        Ok("mismatch") => &API_MISMATCH,
        _ => &API,
    };
    &api.0
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::mem::offset_of;

    #[test]
    fn layout_matches_the_c_header_on_lp64() {
        assert_eq!(offset_of!(Api, abi_version), 0);
        assert_eq!(offset_of!(Api, struct_size), 4);
        assert_eq!(offset_of!(Api, name), 8);
        assert_eq!(offset_of!(Api, nv12_interleave), 16);
        assert_eq!(offset_of!(Api, p010_pack), 24);
        assert_eq!(offset_of!(Api, p010_interleave), 32);
        assert_eq!(offset_of!(Api, depth_10_to_8), 40);
        assert_eq!(std::mem::size_of::<Api>(), 48);
    }

    #[test]
    fn c_entry_points_match_the_kernels() {
        let api = daedalus_fourier_get_api();
        // SAFETY: the returned pointer is a static table.
        let api = unsafe { &*api };
        let f = api.nv12_interleave.unwrap();
        let u = [1u8, 2, 3, 0, 4, 5, 6, 0];
        let v = [7u8, 8, 9, 0, 10, 11, 12, 0];
        let mut d = [0u8; 14];
        // SAFETY: planes of 2 rows, stride 4 (3 used) and stride 7 (6 used).
        let r = unsafe { f(u.as_ptr(), 4, v.as_ptr(), 4, d.as_mut_ptr(), 7, 3, 2) };
        assert_eq!(r, 0);
        assert_eq!(d, [1, 7, 2, 8, 3, 9, 0, 4, 10, 5, 11, 6, 12, 0]);
        // SAFETY: NULL is rejected before any access.
        assert_eq!(
            unsafe { f(std::ptr::null(), 4, v.as_ptr(), 4, d.as_mut_ptr(), 7, 3, 2) },
            -EINVAL
        );
        // SAFETY: a stride shorter than the row is rejected before any access.
        assert_eq!(
            unsafe { f(u.as_ptr(), 2, v.as_ptr(), 4, d.as_mut_ptr(), 7, 3, 2) },
            -EINVAL
        );
    }
}
