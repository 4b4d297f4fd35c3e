//! The opened channel device `/dev/daedalus-v4l2`.
//!
//! `Channel` methods take `&self`: every read and write moves whole messages in
//! one syscall, so a `Channel` may be shared (e.g. in an `Arc`) by threads that
//! each write their own replies.

use crate::msg::{DaemonMsg, KernelMsg, ProtoError, Queue, MSG_SIZE};
use crate::{sys, uapi};
use nix::errno::Errno;
use nix::fcntl::{open, OFlag};
use nix::sys::stat::Mode;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::path::{Path, PathBuf};
use thiserror::Error;

/// Default device path.
pub const DEFAULT_PATH: &str = "/dev/daedalus-v4l2";

/// Failure on the channel.
#[derive(Debug, Error)]
pub enum ChannelError {
    #[error("cannot open {path}: {source}")]
    Open { path: PathBuf, source: Errno },
    #[error("{0} is already held by another daemon (EBUSY)")]
    Busy(PathBuf),
    #[error("kernel refused HELLO (protocol {major}.{minor}): {source}")]
    Hello {
        major: u32,
        minor: u32,
        source: Errno,
    },
    #[error("kernel message size {0} differs from ours ({MSG_SIZE})")]
    MessageSize(u32),
    #[error("{count} coded formats announced, allowed 1..={max}", max = uapi::DAEDALUS_MAX_CODED_FORMATS)]
    CodedFormats { count: usize },
    #[error("buffer generation is stale (ESTALE)")]
    Stale,
    #[error("channel I/O: {0}")]
    Io(#[from] Errno),
    #[error("short write: {written} of {len} bytes accepted")]
    ShortWrite { written: usize, len: usize },
}

/// What the kernel answered to HELLO.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HelloInfo {
    pub version_major: u32,
    pub version_minor: u32,
    pub msg_size: u32,
}

/// A buffer to export with [`Channel::get_buf_fd`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct BufferRef {
    pub session: u32,
    pub queue: Queue,
    pub index: u32,
    pub plane: u32,
    pub generation: u32,
    /// `mem_seq` of the message that announced the buffer: the kernel
    /// refuses (ESTALE) if the buffer has other memory now. 0: no check
    /// (what a kernel older than protocol 1.2 sends, and accepts).
    pub mem_seq: u32,
}

/// The opened channel device.
#[derive(Debug)]
pub struct Channel {
    fd: OwnedFd,
}

impl Channel {
    /// Opens the device non-blocking (use `poll` on [`AsFd`] to wait).
    pub fn open(path: impl AsRef<Path>) -> Result<Self, ChannelError> {
        let path = path.as_ref();
        match open(
            path,
            OFlag::O_RDWR | OFlag::O_CLOEXEC | OFlag::O_NONBLOCK,
            Mode::empty(),
        ) {
            Ok(fd) => Ok(Channel { fd }),
            Err(Errno::EBUSY) => Err(ChannelError::Busy(path.to_owned())),
            Err(source) => Err(ChannelError::Open {
                path: path.to_owned(),
                source,
            }),
        }
    }

    /// Wraps an already-open descriptor (tests, socketpairs).
    pub fn from_fd(fd: OwnedFd) -> Self {
        Channel { fd }
    }

    /// The version handshake; announces the coded formats (V4L2 fourccs) this
    /// daemon decodes. Required before any read or write.
    pub fn hello(&self, coded_formats: &[u32]) -> Result<HelloInfo, ChannelError> {
        self.hello_with(coded_formats, 0)
    }

    /// HELLO that also says which coded formats the daemon takes in OUTPUT
    /// buffers of any chunking: bit i of `continuous_formats` stands for
    /// `coded_formats[i]` (protocol minor 1; a minor-0 kernel answers
    /// EINVAL to a non-zero mask).
    pub fn hello_with(
        &self,
        coded_formats: &[u32],
        continuous_formats: u32,
    ) -> Result<HelloInfo, ChannelError> {
        self.hello_flags(coded_formats, continuous_formats, 0)
    }

    /// HELLO with `hello.flags` as well (`DAEDALUS_HELLO_F_*`, protocol
    /// minor 3: [`uapi::DAEDALUS_HELLO_F_RELEASE_ACK`] promises a
    /// `DaemonBody::Released` answer to every FLUSH and CAPTURE_RESET,
    /// [`uapi::DAEDALUS_HELLO_F_ALIVE`] a `DaemonBody::Alive` at least every
    /// `DAEDALUS_ALIVE_INTERVAL_MS`). A kernel older than minor 3 answers
    /// EINVAL to any flag ([`ChannelError::Hello`]); the caller then says
    /// HELLO again without.
    pub fn hello_flags(
        &self,
        coded_formats: &[u32],
        continuous_formats: u32,
        flags: u32,
    ) -> Result<HelloInfo, ChannelError> {
        let max = uapi::DAEDALUS_MAX_CODED_FORMATS as usize;
        if coded_formats.is_empty() || coded_formats.len() > max {
            return Err(ChannelError::CodedFormats {
                count: coded_formats.len(),
            });
        }
        let mut arg = uapi::daedalus_hello {
            version_major: uapi::DAEDALUS_PROTO_VERSION_MAJOR,
            version_minor: uapi::DAEDALUS_PROTO_VERSION_MINOR,
            num_coded_formats: coded_formats.len() as u32,
            continuous_formats,
            flags,
            ..Default::default()
        };
        arg.coded_formats[..coded_formats.len()].copy_from_slice(coded_formats);
        sys::hello(self.fd.as_fd(), &mut arg).map_err(|source| ChannelError::Hello {
            major: uapi::DAEDALUS_PROTO_VERSION_MAJOR,
            minor: uapi::DAEDALUS_PROTO_VERSION_MINOR,
            source,
        })?;
        if arg.msg_size as usize != MSG_SIZE {
            return Err(ChannelError::MessageSize(arg.msg_size));
        }
        Ok(HelloInfo {
            version_major: arg.version_major,
            version_minor: arg.version_minor,
            msg_size: arg.msg_size,
        })
    }

    /// Reads up to `max` pending messages without blocking and appends them
    /// (each decoded on its own, so one bad message does not hide the others)
    /// to `out`. Returns how many were read; 0 means nothing was pending.
    pub fn read_batch(
        &self,
        max: usize,
        out: &mut Vec<Result<KernelMsg, ProtoError>>,
    ) -> Result<usize, ChannelError> {
        let mut buf = vec![0u8; max.max(1) * MSG_SIZE];
        let n = match self.read_raw(&mut buf) {
            Ok(n) => n,
            Err(ChannelError::Io(Errno::EAGAIN)) => return Ok(0),
            Err(e) => return Err(e),
        };
        let count = n / MSG_SIZE;
        out.extend(
            buf[..count * MSG_SIZE]
                .chunks_exact(MSG_SIZE)
                .map(KernelMsg::decode),
        );
        if n % MSG_SIZE != 0 {
            out.push(Err(ProtoError::BadLength(n % MSG_SIZE)));
        }
        Ok(count)
    }

    /// Waits until messages are pending (true) or `timeout` passes (false).
    /// POLLHUP/POLLERR count as readable: the next read reports the error.
    pub fn wait_readable(&self, timeout: std::time::Duration) -> Result<bool, ChannelError> {
        use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
        let ms = i32::try_from(timeout.as_millis()).unwrap_or(i32::MAX);
        let timeout = PollTimeout::try_from(ms).unwrap_or(PollTimeout::MAX);
        let mut fds = [PollFd::new(self.fd.as_fd(), PollFlags::POLLIN)];
        loop {
            match poll(&mut fds, timeout) {
                Ok(n) => return Ok(n > 0),
                Err(Errno::EINTR) => continue,
                Err(e) => return Err(ChannelError::Io(e)),
            }
        }
    }

    /// Writes one message.
    pub fn send(&self, msg: &DaemonMsg) -> Result<(), ChannelError> {
        let wire = msg.encode();
        let written = self.write_raw(&wire)?;
        if written != wire.len() {
            return Err(ChannelError::ShortWrite {
                written,
                len: wire.len(),
            });
        }
        Ok(())
    }

    /// Raw `read()` (the fault tester uses it; EINTR is retried).
    pub fn read_raw(&self, buf: &mut [u8]) -> Result<usize, ChannelError> {
        loop {
            match nix::unistd::read(self.fd.as_fd(), buf) {
                Err(Errno::EINTR) => continue,
                other => return other.map_err(ChannelError::Io),
            }
        }
    }

    /// Raw `write()` of arbitrary bytes (for hostile-message tests).
    pub fn write_raw(&self, bytes: &[u8]) -> Result<usize, ChannelError> {
        loop {
            match nix::unistd::write(self.fd.as_fd(), bytes) {
                Err(Errno::EINTR) => continue,
                other => return other.map_err(ChannelError::Io),
            }
        }
    }

    /// Exports one plane of a buffer the daemon owns as a dma-buf fd;
    /// returns the fd and the plane length in bytes.
    pub fn get_buf_fd(&self, buf: BufferRef) -> Result<(OwnedFd, u32), ChannelError> {
        let mut arg = uapi::daedalus_buf_fd {
            session: buf.session,
            queue: buf.queue.raw(),
            index: buf.index,
            plane: buf.plane,
            generation: buf.generation,
            fd: -1,
            mem_seq: buf.mem_seq,
            ..Default::default()
        };
        match sys::get_buf_fd(self.fd.as_fd(), &mut arg) {
            Ok(()) => {}
            Err(Errno::ESTALE) => return Err(ChannelError::Stale),
            Err(e) => return Err(ChannelError::Io(e)),
        }
        let fd = sys::own_fd(arg.fd).ok_or(ChannelError::Io(Errno::EBADF))?;
        Ok((fd, arg.length))
    }
}

impl AsFd for Channel {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.fd.as_fd()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ioctl_numbers_match_the_header_encoding() {
        // _IOWR(type, nr, size) = (3 << 30) | (size << 16) | (type << 8) | nr on
        // x86/arm; daedalus_hello is 4*4 + 16*4 + 4 + 7*4 = 112 bytes,
        // daedalus_buf_fd 8*4 = 32 bytes.
        let (hello, buf_fd) = sys::ioctl_numbers();
        assert_eq!(hello, (3u64 << 30) | (112 << 16) | (0x44 << 8));
        assert_eq!(buf_fd, (3u64 << 30) | (32 << 16) | (0x44 << 8) | 1);
    }

    #[test]
    fn hello_flags_failures_are_typed() {
        use nix::sys::socket::{socketpair, AddressFamily, SockFlag, SockType};
        let (a, _b) = socketpair(
            AddressFamily::Unix,
            SockType::SeqPacket,
            None,
            SockFlag::SOCK_CLOEXEC,
        )
        .unwrap();
        let chan = Channel::from_fd(a);
        // Checked before any ioctl.
        assert!(matches!(
            chan.hello_flags(&[], 0, uapi::DAEDALUS_HELLO_F_RELEASE_ACK),
            Err(ChannelError::CodedFormats { count: 0 })
        ));
        // A refused HELLO carries the errno (the daemon retries without the
        // flag on EINVAL); a socket knows no HELLO ioctl.
        match chan.hello_flags(
            &[crate::fourcc::H264],
            1,
            uapi::DAEDALUS_HELLO_F_RELEASE_ACK,
        ) {
            Err(ChannelError::Hello {
                major,
                minor,
                source,
            }) => {
                assert_eq!(
                    (major, minor),
                    (
                        uapi::DAEDALUS_PROTO_VERSION_MAJOR,
                        uapi::DAEDALUS_PROTO_VERSION_MINOR
                    )
                );
                assert_eq!(source, Errno::ENOTTY);
            }
            other => panic!("HELLO on a socket: {other:?}"),
        }
    }

    #[test]
    fn open_missing_device_names_the_path() {
        let err = Channel::open("/nonexistent/daedalus").unwrap_err();
        assert!(err.to_string().contains("/nonexistent/daedalus"), "{err}");
    }

    #[test]
    fn messages_pass_through_a_socketpair() {
        use nix::sys::socket::{socketpair, AddressFamily, SockFlag, SockType};
        let (a, b) = socketpair(
            AddressFamily::Unix,
            SockType::SeqPacket,
            None,
            SockFlag::SOCK_NONBLOCK | SockFlag::SOCK_CLOEXEC,
        )
        .unwrap();
        let kernel = Channel::from_fd(a);
        let daemon = Channel::from_fd(b);
        let msg = KernelMsg {
            session: 3,
            body: crate::msg::KernelBody::Drain,
        };
        kernel.write_raw(&msg.encode()).unwrap();
        let mut out = Vec::new();
        assert_eq!(daemon.read_batch(8, &mut out).unwrap(), 1);
        assert_eq!(out, vec![Ok(msg)]);
        out.clear();
        assert_eq!(daemon.read_batch(8, &mut out).unwrap(), 0);
        assert!(!daemon
            .wait_readable(std::time::Duration::from_millis(10))
            .unwrap());
        kernel.write_raw(&msg.encode()).unwrap();
        assert!(daemon
            .wait_readable(std::time::Duration::from_secs(5))
            .unwrap());
    }
}
