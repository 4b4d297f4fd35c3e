//! Writes one decoded frame, once, straight into the mapped CAPTURE buffer
//! in the layout the CAPTURE message describes.
//!
//! yuv420p -> NV12/NV12M: luma row copy + chroma interleave;
//! yuv420p -> YUV420: three row copies;
//! yuv420p10le -> P010: luma pack + chroma interleave-and-pack.
//! (No zero-copy get_buffer2 path: every format is written by the CPU or
//! plugin kernels.)

use crate::buffers::{BufferCache, BufferError};
use crate::convert::{ConvertError, Converter};
use crate::format::{Chroma, Depth, FrameLayout, PlanePos};
use crate::transport::Transport;
use daedalus_fourier_cpu::kernels::{copy_plane, Dst, Src};
use daedalus_proto::{BufferRef, Capture, Queue};
use ffmpeg_next::frame;
use thiserror::Error;

#[derive(Debug, Error)]
pub enum WriteError {
    #[error(transparent)]
    Buffer(#[from] BufferError),
    #[error("frame has {0} planes, expected 3")]
    Planes(usize),
    #[error("plane {plane} offset {offset} beyond buffer of {len} bytes")]
    Offset {
        plane: usize,
        offset: usize,
        len: usize,
    },
    #[error("mapping is not writable")]
    ReadOnly,
    #[error(transparent)]
    Convert(#[from] ConvertError),
}

impl WriteError {
    /// See [`BufferError::buffer_gone`]: the frame is intact, only this
    /// CAPTURE buffer went away.
    pub fn buffer_gone(&self) -> bool {
        matches!(self, WriteError::Buffer(e) if e.buffer_gone())
    }
}

/// The source planes of a decoded frame.
struct Source<'a> {
    planes: [Src<'a>; 3],
    width: usize,
    height: usize,
}

fn source(frame: &frame::Video) -> Result<Source<'_>, WriteError> {
    let n = frame.planes();
    if n < 3 {
        return Err(WriteError::Planes(n));
    }
    let plane = |i| Src {
        data: frame.data(i),
        stride: frame.stride(i),
    };
    Ok(Source {
        planes: [plane(0), plane(1), plane(2)],
        width: frame.width() as usize,
        height: frame.height() as usize,
    })
}

fn dst_at(data: &mut [u8], pos: PlanePos) -> Result<Dst<'_>, WriteError> {
    let len = data.len();
    let rest = data.get_mut(pos.offset..).ok_or(WriteError::Offset {
        plane: pos.plane,
        offset: pos.offset,
        len,
    })?;
    Ok(Dst {
        data: rest,
        stride: pos.stride,
    })
}

/// Writes every component that lives in memory plane `plane`.
fn write_plane(
    src: &Source<'_>,
    layout: &FrameLayout,
    plane: usize,
    data: &mut [u8],
    conv: &dyn Converter,
) -> Result<(), WriteError> {
    let (w, h) = (src.width, src.height);
    let (cw, ch) = (w.div_ceil(2), h.div_ceil(2));
    if layout.luma.plane == plane {
        let dst = dst_at(data, layout.luma)?;
        match layout.depth {
            Depth::Eight => copy_plane(src.planes[0], dst, w, h).map_err(ConvertError::from)?,
            Depth::Ten => conv.p010_pack(src.planes[0], dst, w, h)?,
        }
    }
    match layout.chroma {
        Chroma::Interleaved(pos) if pos.plane == plane => {
            let dst = dst_at(data, pos)?;
            match layout.depth {
                Depth::Eight => conv.nv12_interleave(src.planes[1], src.planes[2], dst, cw, ch)?,
                Depth::Ten => conv.p010_interleave(src.planes[1], src.planes[2], dst, cw, ch)?,
            }
        }
        Chroma::Planar(cb, cr) => {
            if cb.plane == plane {
                copy_plane(src.planes[1], dst_at(data, cb)?, cw, ch).map_err(ConvertError::from)?;
            }
            if cr.plane == plane {
                copy_plane(src.planes[2], dst_at(data, cr)?, cw, ch).map_err(ConvertError::from)?;
            }
        }
        Chroma::Interleaved(_) => {}
    }
    Ok(())
}

/// Writes `frame` into CAPTURE buffer `cap` laid out as `layout`.
pub fn write_frame(
    frame: &frame::Video,
    session: u32,
    cap: &Capture,
    layout: &FrameLayout,
    cache: &mut BufferCache,
    transport: &dyn Transport,
    conv: &dyn Converter,
) -> Result<(), WriteError> {
    let src = source(frame)?;
    for plane in 0..layout.num_planes as usize {
        let buf = BufferRef {
            session,
            queue: Queue::Capture,
            index: cap.index,
            plane: plane as u32,
            generation: cap.generation,
            mem_seq: cap.mem_seq,
        };
        let mapping = cache.get(transport, buf)?;
        mapping.with_cpu_access(|m| match m.bytes_mut() {
            Some(data) => write_plane(&src, layout, plane, data, conv),
            None => Err(WriteError::ReadOnly),
        })?;
    }
    Ok(())
}
