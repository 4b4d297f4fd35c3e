//! The libavcodec C API that ffmpeg-next has no safe wrapper for, behind
//! safe types. All of the daemon's FFmpeg `unsafe` lives here.
//!
//! - [`LendHook`]: a `get_buffer2` callback that lets FFmpeg decode straight
//!   into a lent CAPTURE buffer (policy and bookkeeping: `lending`).
//! - [`Parser`]: an `av_parser` that cuts a byte stream of any chunking
//!   into the access units the decoder wants.
//! - [`decode_error_flags`]: a frame field ffmpeg-next 8.1 does not expose.

use crate::lending::{CapturePool, FrameRequest, Lease};
use ffmpeg_next::ffi;
use ffmpeg_next::frame;
use std::ffi::{c_int, c_void};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::ptr::NonNull;

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

/// An FFmpeg bitstream parser (`av_parser_parse2`): bytes in, in chunks of
/// any size, whole packets (access units) out.
pub struct Parser {
    parser: NonNull<ffi::AVCodecParserContext>,
    /// The codec context av_parser_parse2 wants (parsers note stream
    /// properties there); never opened.
    avctx: NonNull<ffi::AVCodecContext>,
    /// Input copied with FFmpeg's padding (parsers may read past the end).
    padded: Vec<u8>,
}

// SAFETY: both contexts are owned by this value alone and used only through
// `&mut self`; FFmpeg keeps no thread-affine state in them.
unsafe impl Send for Parser {}

impl Parser {
    /// A parser for `id`, if FFmpeg has one.
    pub fn new(id: ffmpeg_next::codec::Id) -> Option<Parser> {
        let raw_id: ffi::AVCodecID = id.into();
        // SAFETY: av_parser_init takes any codec id and returns null when it
        // has no parser for it.
        let parser = NonNull::new(unsafe { ffi::av_parser_init(raw_id as c_int) })?;
        // SAFETY: a context without a codec is valid for parsing.
        let avctx = NonNull::new(unsafe { ffi::avcodec_alloc_context3(std::ptr::null()) });
        let Some(avctx) = avctx else {
            // SAFETY: parser came from av_parser_init and is closed once.
            unsafe { ffi::av_parser_close(parser.as_ptr()) };
            return None;
        };
        Some(Parser {
            parser,
            avctx,
            padded: Vec::new(),
        })
    }

    /// Feeds `data`; calls `packet` with each complete packet it finished
    /// (borrowed until the call returns). An empty `data` flushes: the last
    /// packet the parser was still assembling comes out.
    pub fn parse(&mut self, data: &[u8], packet: &mut dyn FnMut(&[u8])) {
        let pad = ffi::AV_INPUT_BUFFER_PADDING_SIZE as usize;
        // OUTPUT buffers are at most 16 MiB; chunk anything larger for c_int.
        let pieces: Vec<&[u8]> = if data.is_empty() {
            vec![data]
        } else {
            data.chunks(1 << 30).collect()
        };
        for piece in pieces {
            self.padded.clear();
            self.padded.extend_from_slice(piece);
            self.padded.resize(piece.len() + pad, 0);
            let mut offset = 0;
            let mut flush_rounds = 0;
            loop {
                let rest = piece.len() - offset;
                let mut out: *mut u8 = std::ptr::null_mut();
                let mut out_len: c_int = 0;
                // SAFETY: valid contexts; input pointer/length inside
                // `padded`, which has the padding FFmpeg may read beyond it;
                // `out`/`out_len` are written by FFmpeg.
                let used = unsafe {
                    ffi::av_parser_parse2(
                        self.parser.as_ptr(),
                        self.avctx.as_ptr(),
                        &mut out,
                        &mut out_len,
                        self.padded.as_ptr().add(offset),
                        rest as c_int,
                        ffi::AV_NOPTS_VALUE,
                        ffi::AV_NOPTS_VALUE,
                        0,
                    )
                };
                if let (false, Ok(len @ 1..)) = (out.is_null(), usize::try_from(out_len)) {
                    // SAFETY: FFmpeg returned `len` valid bytes at `out`, alive
                    // until the next parse call (after this borrow ends).
                    packet(unsafe { std::slice::from_raw_parts(out, len) });
                }
                let used = usize::try_from(used).unwrap_or(rest).min(rest);
                offset += used;
                // Flushing: one call per finished packet until none is left
                // (bounded: a parser holds at most a frame or two).
                flush_rounds += 1;
                if piece.is_empty() && out_len > 0 && flush_rounds < 64 {
                    continue;
                }
                if offset >= piece.len() || (used == 0 && out_len <= 0) {
                    break;
                }
            }
        }
    }
}

impl Drop for Parser {
    fn drop(&mut self) {
        // SAFETY: both pointers are owned by self and freed exactly once.
        unsafe {
            ffi::av_parser_close(self.parser.as_ptr());
            let mut avctx = self.avctx.as_ptr();
            ffi::avcodec_free_context(&mut avctx);
        }
    }
}
