//! The libavcodec C API that ffmpeg-next has no safe wrapper for, behind
//! safe types. All of the daemon's FFmpeg `unsafe` lives here.
//!
//! - [`LendHook`]: a `get_buffer2` callback that lets FFmpeg decode straight
//!   into a lent CAPTURE buffer (policy and bookkeeping: `lending`).
//! - [`decode_error_flags`]: a frame field ffmpeg-next 8.1 does not expose.

use crate::lending::{CapturePool, FrameRequest, Lease};
use ffmpeg_next::ffi;
use ffmpeg_next::frame;
use std::ffi::{c_int, c_void};
use std::panic::{catch_unwind, AssertUnwindSafe};

/// `decode_error_flags` of a frame (missing reference, invalid bitstream,
/// concealment active).
pub fn decode_error_flags(f: &frame::Video) -> i32 {
    // SAFETY: `f` holds a valid AVFrame for the duration of the borrow; the
    // field is a plain int (read-only access).
    unsafe { (*f.as_ptr()).decode_error_flags }
}

/// Installs the lending `get_buffer2` on a decoder context before it is
/// opened. Keep the hook alive until the context is freed (the decoder
/// struct drops its context first); frames that outlive both keep their own
/// reference to the pool through their leases.
pub struct LendHook {
    pool: *const CapturePool,
}

// SAFETY: `pool` is an `Arc<CapturePool>` turned into a raw pointer;
// CapturePool is Send + Sync (Arc + Mutex inside), so the owning handle may
// move between threads like the Arc itself.
unsafe impl Send for LendHook {}

impl LendHook {
    pub fn install(ctx: &mut ffmpeg_next::codec::Context, pool: CapturePool) -> LendHook {
        let pool = std::sync::Arc::into_raw(std::sync::Arc::new(pool));
        // SAFETY: the context is valid and not opened yet (no thread reads
        // these fields concurrently); opaque points to a CapturePool that
        // lives until this hook is dropped, after the context (see above).
        // Frame-thread contexts copy both fields from this one.
        unsafe {
            let raw = ctx.as_mut_ptr();
            (*raw).opaque = pool as *mut c_void;
            (*raw).get_buffer2 = Some(get_buffer2);
        }
        LendHook { pool }
    }
}

impl Drop for LendHook {
    fn drop(&mut self) {
        // SAFETY: `pool` came from Arc::into_raw in install and is released
        // exactly once, here.
        drop(unsafe { std::sync::Arc::from_raw(self.pool) });
    }
}

/// True for the planar 4:2:0 8-bit formats a YUV420 CAPTURE buffer holds.
fn is_yuv420p(format: c_int) -> bool {
    format == ffi::AVPixelFormat::AV_PIX_FMT_YUV420P as c_int
        || format == ffi::AVPixelFormat::AV_PIX_FMT_YUVJ420P as c_int
}

unsafe extern "C" fn get_buffer2(
    ctx: *mut ffi::AVCodecContext,
    frame: *mut ffi::AVFrame,
    flags: c_int,
) -> c_int {
    // SAFETY: FFmpeg calls this with a valid context and a frame whose
    // format/width/height are set; the default allocator fills it.
    let ret = unsafe { ffi::avcodec_default_get_buffer2(ctx, frame, flags) };
    if ret < 0 {
        return ret;
    }
    // A panic must not unwind into C; on one the frame keeps FFmpeg's buffer.
    let _ = catch_unwind(AssertUnwindSafe(|| {
        // SAFETY: as above; `opaque` is the pool LendHook::install put there
        // (frame-thread contexts copy it), alive while the context is.
        unsafe { lend_into(ctx, frame) }
    }));
    ret
}

/// Replaces the default buffers of `frame` by a lent CAPTURE buffer when
/// the pool has one that fits.
///
/// # Safety
/// `ctx` and `frame` as passed to get_buffer2, after the default allocator
/// succeeded; `(*ctx).opaque` points to a live CapturePool.
unsafe fn lend_into(ctx: *mut ffi::AVCodecContext, frame: *mut ffi::AVFrame) {
    // SAFETY: guaranteed by the caller.
    let (pool, f) = unsafe { (&*((*ctx).opaque as *const CapturePool), &mut *frame) };
    if !is_yuv420p(f.format) {
        return;
    }
    let (mut w, mut h) = (f.width, f.height);
    let mut align = [0 as c_int; ffi::AV_NUM_DATA_POINTERS as usize];
    // SAFETY: valid context, pointers to live ints and an array of
    // AV_NUM_DATA_POINTERS entries as the API requires.
    unsafe { ffi::avcodec_align_dimensions2(ctx, &mut w, &mut h, align.as_mut_ptr()) };
    let to_usize = |v: c_int| usize::try_from(v).ok();
    let (Some(aligned_height), Some(l0), Some(l1), Some(l2)) = (
        to_usize(h),
        to_usize(f.linesize[0]),
        to_usize(f.linesize[1]),
        to_usize(f.linesize[2]),
    ) else {
        return;
    };
    let req = FrameRequest {
        aligned_height,
        linesize: [l0, l1, l2],
        align: align[..3]
            .iter()
            .copied()
            .max()
            .and_then(to_usize)
            .unwrap_or(0),
    };
    let Some(lease) = pool.lend(&req) else {
        return;
    };
    let (base, len) = lease.memory();
    let offsets = lease.offsets;
    let opaque = Box::into_raw(Box::new(lease));
    // SAFETY: base/len describe the lease's mapping, which the lease (now
    // owned by the AVBuffer through `opaque`) keeps alive until free_lease.
    let buf = unsafe { ffi::av_buffer_create(base, len, Some(free_lease), opaque.cast(), 0) };
    if buf.is_null() {
        // SAFETY: av_buffer_create failed, so `opaque` is still ours alone.
        drop(unsafe { Box::from_raw(opaque) });
        return;
    }
    for b in f.buf.iter_mut() {
        // SAFETY: each entry is null or a reference the default allocator
        // made; unref nulls it.
        unsafe { ffi::av_buffer_unref(b) };
    }
    f.buf[0] = buf;
    for (plane, offset) in offsets.iter().enumerate() {
        // SAFETY: PlanarLayout::misfit checked that every plane, with
        // FFmpeg's aligned rows and padding, lies inside the mapping.
        f.data[plane] = unsafe { base.add(*offset) };
    }
}

unsafe extern "C" fn free_lease(opaque: *mut c_void, _data: *mut u8) {
    // SAFETY: `opaque` is the Box<Lease> lend_into gave av_buffer_create;
    // FFmpeg calls this once, when the last reference is gone.
    let lease = unsafe { Box::from_raw(opaque as *mut Lease) };
    let _ = catch_unwind(AssertUnwindSafe(move || drop(lease)));
}
