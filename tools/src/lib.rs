//! daedalus-tools: V4L2 stateful-decoder clients built on v4l2r.
//!
//! - [`cli`]: command-line values the binaries share that are not library types.
//! - [`stream`]: bitstream readers (IVF, Annex-B H.264/HEVC, raw FWHT).
//! - [`device`]: finding the decoder and checking what it can do.
//! - [`decoder`]: the asynchronous decode loop (rings, source change,
//!   resolution change, seek, drain).
//! - [`frame`]: the layout of decoded frames and their packed raw form.
//! - [`verify`]: byte-exact comparison with a reference file.
//! - [`sys`]: the only unsafe code (dma-buf allocation and mapping).

pub mod cli;
pub mod decoder;
pub mod device;
pub mod frame;
pub mod plot;
pub mod procstat;
pub mod stats;
pub mod stream;
#[cfg(feature = "ffmpeg")]
pub mod swdecode;
pub mod sys;
pub mod verify;
