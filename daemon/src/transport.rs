//! What a session needs from the channel: sending replies and exporting
//! buffer fds. The daemon uses the real [`Channel`]; tests use memfds.

use daedalus_proto::{BufferRef, Channel, ChannelError, DaemonMsg};
use std::os::fd::OwnedFd;

pub trait Transport: Send + Sync {
    /// Writes one message to the kernel.
    fn send(&self, msg: &DaemonMsg) -> Result<(), ChannelError>;
    /// Exports one buffer plane: its fd and length in bytes.
    fn buffer_fd(&self, buf: BufferRef) -> Result<(OwnedFd, u32), ChannelError>;
}

impl Transport for Channel {
    fn send(&self, msg: &DaemonMsg) -> Result<(), ChannelError> {
        Channel::send(self, msg)
    }

    fn buffer_fd(&self, buf: BufferRef) -> Result<(OwnedFd, u32), ChannelError> {
        self.get_buf_fd(buf)
    }
}
