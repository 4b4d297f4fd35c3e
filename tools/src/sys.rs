//! Every unsafe block of the crate: the dma-buf ioctls v4l2r does not wrap
//! (dma-heap and udmabuf allocation, CPU access bracketing). Each is a plain
//! ioctl on a fd we own, with a repr(C) argument matching the kernel UAPI.

use std::fs::File;
use std::os::fd::{AsFd, AsRawFd, FromRawFd, OwnedFd};

use nix::errno::Errno;

/// struct dma_heap_allocation_data (linux/dma-heap.h).
#[repr(C)]
struct DmaHeapAllocationData {
    len: u64,
    fd: u32,
    fd_flags: u32,
    heap_flags: u64,
}

/// struct udmabuf_create (linux/udmabuf.h).
#[repr(C)]
struct UdmabufCreate {
    memfd: u32,
    flags: u32,
    offset: u64,
    size: u64,
}

/// struct dma_buf_sync (linux/dma-buf.h).
#[repr(C)]
struct DmaBufSync {
    flags: u64,
}

const UDMABUF_FLAGS_CLOEXEC: u32 = 0x01;
const DMA_BUF_SYNC_READ: u64 = 1;
const DMA_BUF_SYNC_START: u64 = 0;
const DMA_BUF_SYNC_END: u64 = 4;

nix::ioctl_readwrite!(dma_heap_ioctl_alloc, b'H', 0x0, DmaHeapAllocationData);
nix::ioctl_write_ptr!(udmabuf_ioctl_create, b'u', 0x42, UdmabufCreate);
nix::ioctl_write_ptr!(dma_buf_ioctl_sync, b'b', 0, DmaBufSync);

/// Allocates a `len`-byte dma-buf from an open dma-heap (e.g. /dev/dma_heap/system).
pub fn dma_heap_alloc(heap: &File, len: usize) -> Result<File, Errno> {
    let mut data = DmaHeapAllocationData {
        len: len as u64,
        fd: 0,
        fd_flags: (nix::libc::O_RDWR | nix::libc::O_CLOEXEC) as u32,
        heap_flags: 0,
    };
    // SAFETY: `heap` is an open fd for the call's duration and `data` is a
    // live, correctly laid out dma_heap_allocation_data the kernel reads and
    // writes back.
    unsafe { dma_heap_ioctl_alloc(heap.as_raw_fd(), &mut data) }?;
    let fd = i32::try_from(data.fd).map_err(|_| Errno::EBADF)?;
    // SAFETY: on success the kernel installed a new fd in our table and
    // handed its ownership to us; nothing else refers to it.
    Ok(File::from(unsafe { OwnedFd::from_raw_fd(fd) }))
}

/// Allocates a `len`-byte dma-buf backed by a sealed memfd through /dev/udmabuf.
pub fn udmabuf_alloc(udmabuf_dev: &File, len: usize) -> Result<File, Errno> {
    use nix::fcntl::{fcntl, FcntlArg, SealFlag};
    use nix::sys::memfd::{memfd_create, MemFdCreateFlag};

    // udmabuf wants whole pages; 64 KiB is a multiple of every arm64/x86 page size.
    let size = len.div_ceil(1 << 16) << 16;
    let memfd = memfd_create(
        c"daedalus-capture",
        MemFdCreateFlag::MFD_ALLOW_SEALING | MemFdCreateFlag::MFD_CLOEXEC,
    )?;
    nix::unistd::ftruncate(memfd.as_fd(), size as i64)?;
    // udmabuf refuses memfds that could shrink under the device.
    fcntl(
        memfd.as_raw_fd(),
        FcntlArg::F_ADD_SEALS(SealFlag::F_SEAL_SHRINK),
    )?;
    let create = UdmabufCreate {
        memfd: memfd.as_raw_fd() as u32,
        flags: UDMABUF_FLAGS_CLOEXEC,
        offset: 0,
        size: size as u64,
    };
    // SAFETY: `udmabuf_dev` and `memfd` are open for the call's duration and
    // `create` is a live udmabuf_create the kernel only reads.
    let fd = unsafe { udmabuf_ioctl_create(udmabuf_dev.as_raw_fd(), &create) }?;
    // SAFETY: the ioctl returns a new fd we now own exclusively.
    Ok(File::from(unsafe { OwnedFd::from_raw_fd(fd) }))
}

/// Brackets CPU reads of a dma-buf (cache maintenance on non-coherent systems).
pub fn dma_buf_begin_read(buf: &File) -> Result<(), Errno> {
    dma_buf_sync(buf, DMA_BUF_SYNC_START | DMA_BUF_SYNC_READ)
}

pub fn dma_buf_end_read(buf: &File) -> Result<(), Errno> {
    dma_buf_sync(buf, DMA_BUF_SYNC_END | DMA_BUF_SYNC_READ)
}

fn dma_buf_sync(buf: &File, flags: u64) -> Result<(), Errno> {
    let sync = DmaBufSync { flags };
    // SAFETY: `buf` is an open dma-buf fd and `sync` a live dma_buf_sync the
    // kernel only reads.
    unsafe { dma_buf_ioctl_sync(buf.as_raw_fd(), &sync) }?;
    Ok(())
}

/// Clock ticks per second of /proc/<pid>/stat's utime/stime.
pub fn clock_ticks_per_second() -> u64 {
    // SAFETY: sysconf only reads a configuration value; no pointers involved.
    let ticks = unsafe { nix::libc::sysconf(nix::libc::_SC_CLK_TCK) };
    u64::try_from(ticks).ok().filter(|&t| t > 0).unwrap_or(100)
}
