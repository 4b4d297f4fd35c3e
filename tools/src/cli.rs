//! Command-line values both binaries take that are not library types
//! (`--codec` and `--format` take `stream::Codec` and `frame::RawFormat`).

use clap::ValueEnum;

/// `--capture-memory`: V4L2 MMAP buffers, or dma-bufs the client allocates.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum MemoryArg {
    Mmap,
    Dmabuf,
}
