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
const DMA_BUF_SYNC_WRITE: u64 = 2;
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

/// Brackets CPU writes of a dma-buf.
pub fn dma_buf_begin_write(buf: &File) -> Result<(), Errno> {
    dma_buf_sync(buf, DMA_BUF_SYNC_START | DMA_BUF_SYNC_WRITE)
}

pub fn dma_buf_end_write(buf: &File) -> Result<(), Errno> {
    dma_buf_sync(buf, DMA_BUF_SYNC_END | DMA_BUF_SYNC_WRITE)
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

/// struct media_device_info (linux/media.h).
#[repr(C)]
struct MediaDeviceInfo {
    driver: [u8; 16],
    model: [u8; 32],
    serial: [u8; 40],
    bus_info: [u8; 32],
    media_version: u32,
    hw_revision: u32,
    driver_version: u32,
    reserved: [u32; 31],
}

/// struct media_v2_topology (linux/media.h); only interfaces are asked for.
#[repr(C)]
#[derive(Default)]
struct MediaV2Topology {
    topology_version: u64,
    num_entities: u32,
    reserved1: u32,
    ptr_entities: u64,
    num_interfaces: u32,
    reserved2: u32,
    ptr_interfaces: u64,
    num_pads: u32,
    reserved3: u32,
    ptr_pads: u64,
    num_links: u32,
    reserved4: u32,
    ptr_links: u64,
}

/// struct media_v2_interface (linux/media.h), the devnode view of its union.
#[repr(C)]
#[derive(Clone, Copy, Default)]
struct MediaV2Interface {
    id: u32,
    intf_type: u32,
    flags: u32,
    reserved: [u32; 9],
    devnode_major: u32,
    devnode_minor: u32,
    raw_rest: [u32; 14],
}

const MEDIA_INTF_T_V4L_VIDEO: u32 = 0x200;

nix::ioctl_readwrite!(media_ioc_device_info, b'|', 0x00, MediaDeviceInfo);
nix::ioctl_readwrite!(media_ioc_g_topology, b'|', 0x04, MediaV2Topology);

/// The driver name of a media device and the (major, minor) of its V4L2
/// video interfaces.
pub fn media_video_interfaces(media: &File) -> Result<(String, Vec<(u32, u32)>), Errno> {
    // SAFETY: MediaDeviceInfo is plain old data; all zeroes is a valid value.
    let mut info: MediaDeviceInfo = unsafe { std::mem::zeroed() };
    // SAFETY: `media` is open and `info` is a live media_device_info the
    // kernel fills.
    unsafe { media_ioc_device_info(media.as_raw_fd(), &mut info) }?;
    let end = info
        .driver
        .iter()
        .position(|&b| b == 0)
        .unwrap_or(info.driver.len());
    let driver = String::from_utf8_lossy(&info.driver[..end]).into_owned();

    // First call: counts only (null pointers); second: the interfaces. The
    // topology may grow in between: the kernel then returns ENOSPC, retry.
    for _ in 0..4 {
        let mut topology = MediaV2Topology::default();
        // SAFETY: all pointers are null, so the kernel only writes counts
        // and the version into `topology`.
        unsafe { media_ioc_g_topology(media.as_raw_fd(), &mut topology) }?;
        let mut interfaces = vec![MediaV2Interface::default(); topology.num_interfaces as usize];
        let count = topology.num_interfaces;
        topology = MediaV2Topology {
            num_interfaces: count,
            ptr_interfaces: interfaces.as_mut_ptr() as u64,
            ..Default::default()
        };
        // SAFETY: ptr_interfaces points at `count` writable, correctly laid
        // out media_v2_interface entries that outlive the call; the other
        // pointers are null.
        match unsafe { media_ioc_g_topology(media.as_raw_fd(), &mut topology) } {
            Ok(_) => {
                let n = (topology.num_interfaces as usize).min(interfaces.len());
                let nodes = interfaces[..n]
                    .iter()
                    .filter(|i| i.intf_type == MEDIA_INTF_T_V4L_VIDEO)
                    .map(|i| (i.devnode_major, i.devnode_minor))
                    .collect();
                return Ok((driver, nodes));
            }
            Err(Errno::ENOSPC) => continue,
            Err(e) => return Err(e),
        }
    }
    Err(Errno::EAGAIN)
}

// The layouts above must match the UAPI to the byte.
const _: () = assert!(std::mem::size_of::<MediaDeviceInfo>() == 256);
const _: () = assert!(std::mem::size_of::<MediaV2Topology>() == 72);
const _: () = assert!(std::mem::size_of::<MediaV2Interface>() == 112);
const _: () = assert!(std::mem::size_of::<DmaHeapAllocationData>() == 24);
const _: () = assert!(std::mem::size_of::<UdmabufCreate>() == 24);
