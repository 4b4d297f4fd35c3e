//! Every `unsafe` operation of the crate: reading the message union, byte
//! views of the POD message struct, and the two channel ioctls.
//!
//! All structs involved are bindgen-generated `#[repr(C)]` plain old data made
//! of fixed-width integers only, so every bit pattern is a valid value.

use crate::msg::{ProtoError, MSG_SIZE};
use crate::uapi;
use std::os::fd::{AsRawFd, BorrowedFd};

/// Copies a wire message into the C struct.
pub(crate) fn msg_from_bytes(bytes: &[u8]) -> Result<uapi::daedalus_msg, ProtoError> {
    if bytes.len() != MSG_SIZE {
        return Err(ProtoError::BadLength(bytes.len()));
    }
    // SAFETY: `bytes` holds exactly size_of::<daedalus_msg>() initialised bytes
    // (checked above and by the const assertion in msg.rs); the struct consists
    // only of integers, so any bit pattern is valid; read_unaligned copes with
    // the slice's alignment.
    Ok(unsafe { core::ptr::read_unaligned(bytes.as_ptr().cast::<uapi::daedalus_msg>()) })
}

/// Copies the C struct into its wire form.
pub(crate) fn msg_to_bytes(raw: &uapi::daedalus_msg) -> [u8; MSG_SIZE] {
    // SAFETY: daedalus_msg is MSG_SIZE bytes of integer fields with no padding
    // (16-byte header + 112-byte union whose members are all integer arrays or
    // structs of 4/8-byte integers laid out without holes, see the header), and
    // every caller starts from a Default (all-zero) value, so all bytes are
    // initialised.
    unsafe {
        core::ptr::read_unaligned((raw as *const uapi::daedalus_msg).cast::<[u8; MSG_SIZE]>())
    }
}

macro_rules! union_reader {
    ($name:ident, $field:ident, $ty:ty) => {
        pub(crate) fn $name(raw: &uapi::daedalus_msg) -> $ty {
            // SAFETY: every union member is integer-only POD, so reading any
            // member of an initialised union yields a valid value; the caller
            // picked the member that matches `raw.type_`.
            unsafe { raw.__bindgen_anon_1.$field }
        }
    };
}

union_reader!(session_open, session_open, uapi::daedalus_k2d_session_open);
union_reader!(bitstream, bitstream, uapi::daedalus_k2d_bitstream);
union_reader!(capture, capture, uapi::daedalus_k2d_capture);
union_reader!(epoch, epoch, uapi::daedalus_k2d_epoch);
union_reader!(
    bitstream_done,
    bitstream_done,
    uapi::daedalus_d2k_bitstream_done
);
union_reader!(frame_done, frame_done, uapi::daedalus_d2k_frame_done);
union_reader!(format, format, uapi::daedalus_d2k_format);
union_reader!(
    session_error,
    session_error,
    uapi::daedalus_d2k_session_error
);
union_reader!(released, released, uapi::daedalus_d2k_released);
union_reader!(raw_body, raw, [u8; MSG_SIZE - 16]);

// The ioctl numbers of the header: _IOWR('D', 0, struct daedalus_hello) and
// _IOWR('D', 1, struct daedalus_buf_fd); the struct sizes come from bindgen.
nix::ioctl_readwrite!(ioc_hello, uapi::DAEDALUS_IOC_MAGIC, 0, uapi::daedalus_hello);
nix::ioctl_readwrite!(
    ioc_get_buf_fd,
    uapi::DAEDALUS_IOC_MAGIC,
    1,
    uapi::daedalus_buf_fd
);

/// The request numbers, for the tests.
#[cfg(test)]
pub(crate) fn ioctl_numbers() -> (u64, u64) {
    (
        nix::request_code_readwrite!(
            uapi::DAEDALUS_IOC_MAGIC,
            0,
            core::mem::size_of::<uapi::daedalus_hello>()
        ) as u64,
        nix::request_code_readwrite!(
            uapi::DAEDALUS_IOC_MAGIC,
            1,
            core::mem::size_of::<uapi::daedalus_buf_fd>()
        ) as u64,
    )
}

/// DAEDALUS_IOC_HELLO.
pub(crate) fn hello(fd: BorrowedFd<'_>, arg: &mut uapi::daedalus_hello) -> nix::Result<()> {
    // SAFETY: `fd` is an open descriptor for the whole call; `arg` is a valid,
    // exclusive pointer to the struct the ioctl number encodes, which the
    // kernel reads and writes in place.
    unsafe { ioc_hello(fd.as_raw_fd(), arg) }.map(drop)
}

/// DAEDALUS_IOC_GET_BUF_FD; on success `arg.fd` is a new descriptor owned by
/// the caller.
pub(crate) fn get_buf_fd(fd: BorrowedFd<'_>, arg: &mut uapi::daedalus_buf_fd) -> nix::Result<()> {
    // SAFETY: as for `hello`: valid fd, valid exclusive pointer to the struct
    // of the size encoded in the request number.
    unsafe { ioc_get_buf_fd(fd.as_raw_fd(), arg) }.map(drop)
}

/// Takes ownership of a descriptor the kernel just installed for us.
pub(crate) fn own_fd(raw: i32) -> Option<std::os::fd::OwnedFd> {
    use std::os::fd::FromRawFd;
    if raw < 0 {
        return None;
    }
    // SAFETY: `raw` was returned by a successful GET_BUF_FD ioctl: a fresh
    // descriptor in our table that nothing else owns or closes.
    Some(unsafe { std::os::fd::OwnedFd::from_raw_fd(raw) })
}
