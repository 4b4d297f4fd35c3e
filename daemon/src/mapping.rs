//! Memory mappings of dma-bufs (and of memfds standing in for them in
//! tests). All `unsafe` of buffer access lives here.
//!
//! A [`Mapping`] owns its fd and its mapping; it is created once per
//! (session, queue, index, plane, generation) by the buffer cache and
//! unmapped on drop. CPU access is bracketed by DMA_BUF_IOCTL_SYNC so caches
//! are coherent with devices that read the buffer (display, GPU).

use nix::errno::Errno;
use nix::sys::mman::{mmap, munmap, MapFlags, ProtFlags};
use std::num::NonZeroUsize;
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::ptr::NonNull;
use thiserror::Error;

#[derive(Debug, Error)]
pub enum MapError {
    #[error("buffer length 0")]
    Empty,
    #[error("mmap of {len} bytes failed: {source}")]
    Mmap { len: usize, source: Errno },
    #[error("sysconf(_SC_PAGESIZE) failed")]
    PageSize,
}

/// `struct dma_buf_sync` of `<linux/dma-buf.h>`.
#[repr(C)]
struct DmaBufSync {
    flags: u64,
}

const DMA_BUF_SYNC_READ: u64 = 1;
const DMA_BUF_SYNC_WRITE: u64 = 2;
const DMA_BUF_SYNC_END: u64 = 4;

// DMA_BUF_IOCTL_SYNC = _IOW('b', 0, struct dma_buf_sync)
nix::ioctl_write_ptr!(dma_buf_ioctl_sync, b'b', 0, DmaBufSync);

/// The system page size, from sysconf (16K on the Pi 5 kernel, 4K on x86).
pub fn page_size() -> Result<usize, MapError> {
    match nix::unistd::sysconf(nix::unistd::SysconfVar::PAGE_SIZE) {
        Ok(Some(n)) if n > 0 => Ok(n as usize),
        _ => Err(MapError::PageSize),
    }
}

/// A buffer's identity: (st_dev, st_ino) of its fd.
pub type Identity = (nix::libc::dev_t, nix::libc::ino_t);

/// Access a mapping is made for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    /// Bitstream (OUTPUT) buffers: read only.
    Read,
    /// Frame (CAPTURE) buffers: written.
    Write,
}

/// One mapped buffer plane.
#[derive(Debug)]
pub struct Mapping {
    ptr: NonNull<u8>,
    len: usize,
    map_len: usize,
    access: Access,
    fd: OwnedFd,
}

// SAFETY: the mapping is plain shared memory owned by this value; moving it to
// another thread moves the only handle (no thread-local state involved).
unsafe impl Send for Mapping {}

impl Mapping {
    /// Maps `len` bytes of `fd` (rounded up to whole pages for mmap).
    pub fn new(fd: OwnedFd, len: usize, access: Access) -> Result<Mapping, MapError> {
        let page = page_size()?;
        let map_len = len.checked_next_multiple_of(page).ok_or(MapError::Empty)?;
        let nz = NonZeroUsize::new(map_len).ok_or(MapError::Empty)?;
        let prot = match access {
            Access::Read => ProtFlags::PROT_READ,
            Access::Write => ProtFlags::PROT_READ | ProtFlags::PROT_WRITE,
        };
        // SAFETY: a fresh shared mapping chosen by the kernel (addr None) does
        // not alias any Rust object; it lives until munmap in Drop.
        let ptr = unsafe { mmap(None, nz, prot, MapFlags::MAP_SHARED, fd.as_fd(), 0) }.map_err(
            |source| MapError::Mmap {
                len: map_len,
                source,
            },
        )?;
        Ok(Mapping {
            ptr: ptr.cast(),
            len,
            map_len,
            access,
            fd,
        })
    }

    pub fn len(&self) -> usize {
        self.len
    }

    /// Which buffer this maps: (device, inode) of its fd. Every dma-buf (and
    /// memfd) has an inode of its own, so two fds of one buffer, e.g. exported
    /// for different V4L2 indices, give the same identity.
    pub fn identity(&self) -> Option<Identity> {
        nix::sys::stat::fstat(&self.fd)
            .ok()
            .map(|st| (st.st_dev, st.st_ino))
    }

    /// The buffer contents.
    pub fn bytes(&self) -> &[u8] {
        // SAFETY: ptr is valid for `len` (<= map_len) readable bytes while self
        // lives. Other processes may write the buffer concurrently (it is shared
        // memory), which can only change values, all of which are valid u8.
        unsafe { std::slice::from_raw_parts(self.ptr.as_ptr(), self.len) }
    }

    /// The buffer contents, writable (only for [`Access::Write`] mappings).
    pub fn bytes_mut(&mut self) -> Option<&mut [u8]> {
        if self.access != Access::Write {
            return None;
        }
        // SAFETY: writable mapping of `len` bytes; `&mut self` makes this the
        // only Rust reference to it for the borrow's lifetime.
        Some(unsafe { std::slice::from_raw_parts_mut(self.ptr.as_ptr(), self.len) })
    }

    /// Start of the mapping, for memory handed to FFmpeg as frame planes
    /// (the zero-copy path); valid for [`Mapping::mapped_len`] bytes while
    /// `self` lives.
    pub fn as_mut_ptr(&self) -> *mut u8 {
        self.ptr.as_ptr()
    }

    /// Bytes actually mapped: the buffer length rounded up to whole pages
    /// (all of it is backed by the buffer: mmap succeeded on that length).
    pub fn mapped_len(&self) -> usize {
        self.map_len
    }

    /// SYNC_START, for CPU access that cannot be bracketed by one closure
    /// (FFmpeg decoding into a lent buffer); pair with [`Mapping::end_cpu_access`].
    pub fn begin_cpu_access(&self) {
        self.sync(false);
    }

    /// SYNC_END after [`Mapping::begin_cpu_access`].
    pub fn end_cpu_access(&self) {
        self.sync(true);
    }

    fn sync(&self, end: bool) {
        let mut flags = match self.access {
            Access::Read => DMA_BUF_SYNC_READ,
            Access::Write => DMA_BUF_SYNC_WRITE,
        };
        if end {
            flags |= DMA_BUF_SYNC_END;
        }
        let arg = DmaBufSync { flags };
        // SAFETY: valid fd for the ioctl's duration and a pointer to a live
        // struct of the size encoded in the request number.
        match unsafe { dma_buf_ioctl_sync(self.fd.as_raw_fd(), &arg) } {
            // ENOTTY: not a dma-buf (memfd in tests): nothing to synchronise.
            Ok(_) | Err(Errno::ENOTTY) => {}
            Err(e) => log::debug!("DMA_BUF_IOCTL_SYNC failed: {e}"),
        }
    }

    /// Brackets CPU access: `f` runs between SYNC_START and SYNC_END.
    pub fn with_cpu_access<R>(&mut self, f: impl FnOnce(&mut Mapping) -> R) -> R {
        self.sync(false);
        let r = f(self);
        self.sync(true);
        r
    }
}

impl Drop for Mapping {
    fn drop(&mut self) {
        // SAFETY: ptr/map_len are exactly what mmap returned; no slice into the
        // mapping outlives `self` (they borrow it).
        if let Err(e) = unsafe { munmap(self.ptr.cast(), self.map_len) } {
            log::warn!("munmap failed: {e}");
        }
    }
}

/// Anonymous shared memory standing in for a dma-buf in tests (memfd mmap
/// behaves like a dma-buf mmap for the CPU).
#[cfg(test)]
pub fn test_memfd(len: usize) -> OwnedFd {
    let fd =
        nix::sys::memfd::memfd_create(c"daedalus-test", nix::sys::memfd::MFdFlags::MFD_CLOEXEC)
            .expect("memfd_create");
    nix::unistd::ftruncate(&fd, len as i64).expect("ftruncate");
    fd
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn map_write_and_read_back_through_a_second_mapping() {
        let fd = test_memfd(10_000);
        let dup = fd.try_clone().unwrap();
        let mut w = Mapping::new(fd, 10_000, Access::Write).unwrap();
        w.with_cpu_access(|m| m.bytes_mut().unwrap()[9_999] = 0xab);
        let r = Mapping::new(dup, 10_000, Access::Read).unwrap();
        assert_eq!(r.bytes()[9_999], 0xab);
        assert_eq!(r.len(), 10_000);
        assert!(page_size().unwrap() >= 4096);
    }
}
