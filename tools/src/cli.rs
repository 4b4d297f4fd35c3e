//! Command-line values both binaries take (`--format`, `--capture-memory`,
//! `--codec`), so `daedalus-decode` and `daedalus-bench` spell them alike.

use clap::ValueEnum;

use crate::frame::RawFormat;
use crate::stream::Codec;

/// `--codec`: the coded format, when the file name does not tell.
#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum CodecArg {
    H264,
    Hevc,
    Vp8,
    Vp9,
    Av1,
    Fwht,
}

impl From<CodecArg> for Codec {
    fn from(c: CodecArg) -> Codec {
        match c {
            CodecArg::H264 => Codec::H264,
            CodecArg::Hevc => Codec::Hevc,
            CodecArg::Vp8 => Codec::Vp8,
            CodecArg::Vp9 => Codec::Vp9,
            CodecArg::Av1 => Codec::Av1,
            CodecArg::Fwht => Codec::Fwht,
        }
    }
}

/// `--format`: the CAPTURE pixel format to ask for.
#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum FormatArg {
    Nv12,
    Nv12m,
    Yuv420,
    P010,
}

impl From<FormatArg> for RawFormat {
    fn from(f: FormatArg) -> RawFormat {
        match f {
            FormatArg::Nv12 => RawFormat::Nv12,
            FormatArg::Nv12m => RawFormat::Nv12m,
            FormatArg::Yuv420 => RawFormat::Yuv420,
            FormatArg::P010 => RawFormat::P010,
        }
    }
}

/// `--capture-memory`: V4L2 MMAP buffers, or dma-bufs the client allocates.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum MemoryArg {
    Mmap,
    Dmabuf,
}
