//! The kernel <-> daemon channel of daedalus-v4l2 (`/dev/daedalus-v4l2`).
//!
//! The protocol is defined by `kernel/include/uapi/linux/daedalus_v4l2.h`;
//! [`uapi`] is generated from it by bindgen at build time (with layout tests),
//! so the Rust side cannot drift from the header.
//!
//! - [`msg`]: typed messages in both directions, [`msg::KernelMsg`] (kernel ->
//!   daemon) and [`msg::DaemonMsg`] (daemon -> kernel), with validating
//!   `decode` and exact `encode` to the fixed 128-byte wire form.
//! - [`Channel`]: the opened device: HELLO (with the coded formats, the
//!   continuous byte-stream mask and the `DAEDALUS_HELLO_F_*` flags),
//!   reading a batch of messages, writing one, exporting a buffer's dma-buf
//!   fd.
//! - [`fourcc`]: the V4L2 fourccs the protocol uses.
//!
//! All `unsafe` code (union access, ioctls) lives in the private `sys` module.

pub mod channel;
pub mod fourcc;
pub mod msg;
mod sys;
pub mod uapi;

pub use channel::{BufferRef, Channel, ChannelError, HelloInfo};
pub use msg::{
    Bitstream, BitstreamDone, Capture, DaemonBody, DaemonMsg, Format, FrameDone, KernelBody,
    KernelMsg, ProtoError, Queue, SessionOpen, MAX_PLANES, MSG_SIZE,
};
