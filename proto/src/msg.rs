//! Typed channel messages and their validated wire form.
//!
//! Every message is [`MSG_SIZE`] bytes (`struct daedalus_msg`). `decode`
//! rejects unknown types, session 0 (except for ALIVE, which must carry 0),
//! non-zero reserved header words and out-of-range plane counts, a
//! BITSTREAM whose `data_offset` is not inside its payload (and, for
//! RELEASED, an unknown queue or non-zero reserved words; for ALIVE, any
//! non-zero body byte); `encode` writes exactly what the header describes
//! (reserved fields zero).

use crate::sys;
use crate::uapi;
use thiserror::Error;

/// Size of one message on the wire (`DAEDALUS_MSG_SIZE`).
pub const MSG_SIZE: usize = uapi::DAEDALUS_MSG_SIZE as usize;
/// Maximum memory planes of a buffer (`DAEDALUS_MAX_PLANES`).
pub const MAX_PLANES: usize = uapi::DAEDALUS_MAX_PLANES as usize;

const _: () = assert!(core::mem::size_of::<uapi::daedalus_msg>() == MSG_SIZE);

/// A message that does not follow the protocol.
#[derive(Debug, Error, PartialEq, Eq, Clone)]
pub enum ProtoError {
    #[error("message is {0} bytes, expected {MSG_SIZE}")]
    BadLength(usize),
    #[error("unknown message type {0}")]
    UnknownType(u32),
    #[error("message type {0} travels in the other direction")]
    WrongDirection(u32),
    #[error("session id 0 in message type {0}")]
    ZeroSession(u32),
    /// A message that belongs to no session (ALIVE) carries session 0.
    #[error("session id {session} in message type {ty}, which carries session 0")]
    SessionNotZero { ty: u32, session: u32 },
    #[error("reserved header words are not zero")]
    ReservedNotZero,
    #[error("num_planes {0} out of range 1..={MAX_PLANES}")]
    BadPlaneCount(u32),
    #[error("queue {0} is neither OUTPUT (0) nor CAPTURE (1)")]
    BadQueue(u32),
    #[error("reserved fields of message type {0} are not zero")]
    ReservedBodyNotZero(u32),
    /// A BITSTREAM's range `[data_offset, bytesused)` is not a range of the
    /// payload: `data_offset` non-zero and not below `bytesused`.
    #[error("bitstream data_offset {data_offset} not below bytesused {bytesused}")]
    BadDataOffset { data_offset: u32, bytesused: u32 },
}

/// Buffer queue selector (`DAEDALUS_QUEUE_*`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Queue {
    /// Bitstream buffers.
    Output,
    /// Decoded frame buffers.
    Capture,
}

impl Queue {
    /// The wire value.
    pub fn raw(self) -> u32 {
        match self {
            Queue::Output => uapi::DAEDALUS_QUEUE_OUTPUT,
            Queue::Capture => uapi::DAEDALUS_QUEUE_CAPTURE,
        }
    }

    /// The queue a wire value names, if any.
    pub fn from_raw(raw: u32) -> Option<Queue> {
        match raw {
            uapi::DAEDALUS_QUEUE_OUTPUT => Some(Queue::Output),
            uapi::DAEDALUS_QUEUE_CAPTURE => Some(Queue::Capture),
            _ => None,
        }
    }
}

/// `DAEDALUS_K2D_SESSION_OPEN`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SessionOpen {
    /// V4L2 fourcc of the coded format.
    pub coded_format: u32,
    /// Client's size hint (may be 0).
    pub width: u32,
    pub height: u32,
}

/// `DAEDALUS_K2D_BITSTREAM`: an OUTPUT buffer with bitstream.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Bitstream {
    pub timestamp_ns: u64,
    pub index: u32,
    pub generation: u32,
    pub epoch: u32,
    pub bytesused: u32,
    pub length: u32,
    pub flags: u32,
    /// Changes when the buffer's memory does (another dma-buf queued under
    /// the index); 0 from a kernel older than protocol 1.2.
    pub mem_seq: u32,
    /// Bytes before the bitstream (`v4l2_plane.data_offset`): the bitstream
    /// is `[data_offset, bytesused)` of plane 0. 0 from a kernel older than
    /// protocol 1.3. `decode` guarantees `data_offset < bytesused`, or
    /// `data_offset == 0` when `bytesused` is 0 (vb2's own rule).
    pub data_offset: u32,
}

/// `DAEDALUS_K2D_CAPTURE`: an empty CAPTURE buffer and its negotiated layout.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Capture {
    pub index: u32,
    pub generation: u32,
    pub epoch: u32,
    /// V4L2 fourcc: NV12, NV12M, YUV420 or P010.
    pub pixelformat: u32,
    pub width: u32,
    pub height: u32,
    /// Memory planes, 1..=[`MAX_PLANES`] (validated by `decode`).
    pub num_planes: u32,
    /// As [`Bitstream::mem_seq`].
    pub mem_seq: u32,
    pub bytesperline: [u32; MAX_PLANES],
    pub length: [u32; MAX_PLANES],
}

/// The body of a kernel -> daemon message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KernelBody {
    SessionOpen(SessionOpen),
    SessionClose,
    Bitstream(Bitstream),
    Capture(Capture),
    /// CAPTURE streamed off; carries the new CAPTURE epoch.
    CaptureReset {
        epoch: u32,
    },
    Drain,
    /// OUTPUT streamed off (seek); carries the new OUTPUT epoch.
    Flush {
        epoch: u32,
    },
}

/// A kernel -> daemon message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KernelMsg {
    /// Session id, never 0.
    pub session: u32,
    pub body: KernelBody,
}

/// `DAEDALUS_D2K_BITSTREAM_DONE`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BitstreamDone {
    pub index: u32,
    pub epoch: u32,
    /// `DAEDALUS_BITSTREAM_F_*`.
    pub flags: u32,
}

/// `DAEDALUS_D2K_FRAME_DONE`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FrameDone {
    pub timestamp_ns: u64,
    pub index: u32,
    pub epoch: u32,
    /// `DAEDALUS_FRAME_F_*`.
    pub flags: u32,
    pub num_planes: u32,
    pub bytesused: [u32; MAX_PLANES],
}

/// `DAEDALUS_D2K_FORMAT`: the stream format parsed from the bitstream.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Format {
    pub epoch: u32,
    pub pixelformat: u32,
    pub width: u32,
    pub height: u32,
    pub visible_left: u32,
    pub visible_top: u32,
    pub visible_width: u32,
    pub visible_height: u32,
    pub bit_depth: u32,
    pub colorspace: u32,
    pub xfer_func: u32,
    pub ycbcr_enc: u32,
    pub quantization: u32,
    pub min_capture_buffers: u32,
}

/// The body of a daemon -> kernel message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DaemonBody {
    BitstreamDone(BitstreamDone),
    FrameDone(FrameDone),
    Format(Format),
    /// Negative errno, for the kernel log.
    SessionError {
        error: i32,
    },
    /// `DAEDALUS_D2K_RELEASED` (protocol minor 3, only after HELLO with
    /// `DAEDALUS_HELLO_F_RELEASE_ACK`): the daemon will neither read nor
    /// write any buffer of `queue` from before `epoch` again, `epoch` being
    /// the one of the FLUSH (OUTPUT) or CAPTURE_RESET (CAPTURE) answered.
    Released {
        queue: Queue,
        epoch: u32,
    },
    /// `DAEDALUS_D2K_ALIVE` (protocol minor 3, only after HELLO with
    /// `DAEDALUS_HELLO_F_ALIVE`): the daemon as a whole is alive; sent at
    /// least every `DAEDALUS_ALIVE_INTERVAL_MS` from a thread that never
    /// waits for a decoder. It belongs to no session: on the wire session 0
    /// and the body all zero, whatever [`DaemonMsg::session`] says (build it
    /// with [`DaemonMsg::alive`]).
    Alive,
}

/// A daemon -> kernel message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DaemonMsg {
    /// Session id, never 0; 0 for [`DaemonBody::Alive`] (the only message
    /// of no session).
    pub session: u32,
    pub body: DaemonBody,
}

/// Message types that belong to no session and carry session 0.
fn is_sessionless(t: u32) -> bool {
    t == uapi::DAEDALUS_D2K_ALIVE
}

fn check_header(raw: &uapi::daedalus_msg) -> Result<(), ProtoError> {
    if is_sessionless(raw.type_) {
        if raw.session != 0 {
            return Err(ProtoError::SessionNotZero {
                ty: raw.type_,
                session: raw.session,
            });
        }
    } else if raw.session == 0 {
        return Err(ProtoError::ZeroSession(raw.type_));
    }
    if raw.reserved != [0, 0] {
        return Err(ProtoError::ReservedNotZero);
    }
    Ok(())
}

fn is_daemon_type(t: u32) -> bool {
    matches!(
        t,
        uapi::DAEDALUS_D2K_BITSTREAM_DONE
            | uapi::DAEDALUS_D2K_FRAME_DONE
            | uapi::DAEDALUS_D2K_FORMAT
            | uapi::DAEDALUS_D2K_SESSION_ERROR
            | uapi::DAEDALUS_D2K_RELEASED
            | uapi::DAEDALUS_D2K_ALIVE
    )
}

fn is_kernel_type(t: u32) -> bool {
    (uapi::DAEDALUS_K2D_SESSION_OPEN..=uapi::DAEDALUS_K2D_FLUSH).contains(&t)
}

/// The header's `[data_offset, bytesused)` must be a range of the payload.
/// vb2 (`__verify_length`) refuses a non-zero `data_offset` that is not below
/// the plane's bytesused, so the kernel sends `data_offset < bytesused`;
/// with `bytesused == 0` (an empty buffer) the only range is `[0, 0)`.
fn data_offset(data_offset: u32, bytesused: u32) -> Result<u32, ProtoError> {
    if data_offset != 0 && data_offset >= bytesused {
        Err(ProtoError::BadDataOffset {
            data_offset,
            bytesused,
        })
    } else {
        Ok(data_offset)
    }
}

fn plane_count(n: u32) -> Result<u32, ProtoError> {
    if n == 0 || n as usize > MAX_PLANES {
        Err(ProtoError::BadPlaneCount(n))
    } else {
        Ok(n)
    }
}

impl KernelMsg {
    /// Parses and validates one kernel -> daemon message.
    pub fn decode(bytes: &[u8]) -> Result<Self, ProtoError> {
        let raw = sys::msg_from_bytes(bytes)?;
        let t = raw.type_;
        if is_daemon_type(t) {
            return Err(ProtoError::WrongDirection(t));
        }
        if !is_kernel_type(t) {
            return Err(ProtoError::UnknownType(t));
        }
        check_header(&raw)?;
        let body = match t {
            uapi::DAEDALUS_K2D_SESSION_OPEN => {
                let o = sys::session_open(&raw);
                KernelBody::SessionOpen(SessionOpen {
                    coded_format: o.coded_format,
                    width: o.width,
                    height: o.height,
                })
            }
            uapi::DAEDALUS_K2D_SESSION_CLOSE => KernelBody::SessionClose,
            uapi::DAEDALUS_K2D_BITSTREAM => {
                let b = sys::bitstream(&raw);
                KernelBody::Bitstream(Bitstream {
                    timestamp_ns: b.timestamp_ns,
                    index: b.index,
                    generation: b.generation,
                    epoch: b.epoch,
                    bytesused: b.bytesused,
                    length: b.length,
                    flags: b.flags,
                    mem_seq: b.mem_seq,
                    data_offset: data_offset(b.data_offset, b.bytesused)?,
                })
            }
            uapi::DAEDALUS_K2D_CAPTURE => {
                let c = sys::capture(&raw);
                KernelBody::Capture(Capture {
                    index: c.index,
                    generation: c.generation,
                    epoch: c.epoch,
                    pixelformat: c.pixelformat,
                    width: c.width,
                    height: c.height,
                    num_planes: plane_count(c.num_planes)?,
                    mem_seq: c.mem_seq,
                    bytesperline: c.bytesperline,
                    length: c.length,
                })
            }
            uapi::DAEDALUS_K2D_CAPTURE_RESET => KernelBody::CaptureReset {
                epoch: sys::epoch(&raw).epoch,
            },
            uapi::DAEDALUS_K2D_DRAIN => KernelBody::Drain,
            uapi::DAEDALUS_K2D_FLUSH => KernelBody::Flush {
                epoch: sys::epoch(&raw).epoch,
            },
            other => return Err(ProtoError::UnknownType(other)),
        };
        Ok(KernelMsg {
            session: raw.session,
            body,
        })
    }

    /// The wire form (used by tests and tools that play the kernel's part).
    pub fn encode(&self) -> [u8; MSG_SIZE] {
        let mut raw = uapi::daedalus_msg {
            session: self.session,
            ..Default::default()
        };
        match self.body {
            KernelBody::SessionOpen(o) => {
                raw.type_ = uapi::DAEDALUS_K2D_SESSION_OPEN;
                raw.__bindgen_anon_1.session_open = uapi::daedalus_k2d_session_open {
                    coded_format: o.coded_format,
                    width: o.width,
                    height: o.height,
                    ..Default::default()
                };
            }
            KernelBody::SessionClose => raw.type_ = uapi::DAEDALUS_K2D_SESSION_CLOSE,
            KernelBody::Bitstream(b) => {
                raw.type_ = uapi::DAEDALUS_K2D_BITSTREAM;
                raw.__bindgen_anon_1.bitstream = uapi::daedalus_k2d_bitstream {
                    timestamp_ns: b.timestamp_ns,
                    index: b.index,
                    generation: b.generation,
                    epoch: b.epoch,
                    bytesused: b.bytesused,
                    length: b.length,
                    flags: b.flags,
                    mem_seq: b.mem_seq,
                    data_offset: b.data_offset,
                };
            }
            KernelBody::Capture(c) => {
                raw.type_ = uapi::DAEDALUS_K2D_CAPTURE;
                raw.__bindgen_anon_1.capture = uapi::daedalus_k2d_capture {
                    index: c.index,
                    generation: c.generation,
                    epoch: c.epoch,
                    pixelformat: c.pixelformat,
                    width: c.width,
                    height: c.height,
                    num_planes: c.num_planes,
                    mem_seq: c.mem_seq,
                    bytesperline: c.bytesperline,
                    length: c.length,
                };
            }
            KernelBody::CaptureReset { epoch } => {
                raw.type_ = uapi::DAEDALUS_K2D_CAPTURE_RESET;
                raw.__bindgen_anon_1.epoch = uapi::daedalus_k2d_epoch {
                    epoch,
                    ..Default::default()
                };
            }
            KernelBody::Drain => raw.type_ = uapi::DAEDALUS_K2D_DRAIN,
            KernelBody::Flush { epoch } => {
                raw.type_ = uapi::DAEDALUS_K2D_FLUSH;
                raw.__bindgen_anon_1.epoch = uapi::daedalus_k2d_epoch {
                    epoch,
                    ..Default::default()
                };
            }
        }
        sys::msg_to_bytes(&raw)
    }
}

impl DaemonMsg {
    /// `DAEDALUS_D2K_ALIVE` (session 0).
    pub const fn alive() -> Self {
        DaemonMsg {
            session: 0,
            body: DaemonBody::Alive,
        }
    }

    /// Parses and validates one daemon -> kernel message.
    pub fn decode(bytes: &[u8]) -> Result<Self, ProtoError> {
        let raw = sys::msg_from_bytes(bytes)?;
        let t = raw.type_;
        if is_kernel_type(t) {
            return Err(ProtoError::WrongDirection(t));
        }
        if !is_daemon_type(t) {
            return Err(ProtoError::UnknownType(t));
        }
        check_header(&raw)?;
        let body = match t {
            uapi::DAEDALUS_D2K_BITSTREAM_DONE => {
                let d = sys::bitstream_done(&raw);
                DaemonBody::BitstreamDone(BitstreamDone {
                    index: d.index,
                    epoch: d.epoch,
                    flags: d.flags,
                })
            }
            uapi::DAEDALUS_D2K_FRAME_DONE => {
                let f = sys::frame_done(&raw);
                DaemonBody::FrameDone(FrameDone {
                    timestamp_ns: f.timestamp_ns,
                    index: f.index,
                    epoch: f.epoch,
                    flags: f.flags,
                    num_planes: plane_count(f.num_planes)?,
                    bytesused: f.bytesused,
                })
            }
            uapi::DAEDALUS_D2K_FORMAT => {
                let f = sys::format(&raw);
                DaemonBody::Format(Format {
                    epoch: f.epoch,
                    pixelformat: f.pixelformat,
                    width: f.width,
                    height: f.height,
                    visible_left: f.visible_left,
                    visible_top: f.visible_top,
                    visible_width: f.visible_width,
                    visible_height: f.visible_height,
                    bit_depth: f.bit_depth,
                    colorspace: f.colorspace,
                    xfer_func: f.xfer_func,
                    ycbcr_enc: f.ycbcr_enc,
                    quantization: f.quantization,
                    min_capture_buffers: f.min_capture_buffers,
                })
            }
            uapi::DAEDALUS_D2K_SESSION_ERROR => DaemonBody::SessionError {
                error: sys::session_error(&raw).error,
            },
            uapi::DAEDALUS_D2K_RELEASED => {
                let r = sys::released(&raw);
                if r.reserved.iter().any(|&w| w != 0) {
                    return Err(ProtoError::ReservedBodyNotZero(t));
                }
                DaemonBody::Released {
                    queue: Queue::from_raw(r.queue).ok_or(ProtoError::BadQueue(r.queue))?,
                    epoch: r.epoch,
                }
            }
            uapi::DAEDALUS_D2K_ALIVE => {
                if sys::raw_body(&raw).iter().any(|&b| b != 0) {
                    return Err(ProtoError::ReservedBodyNotZero(t));
                }
                DaemonBody::Alive
            }
            other => return Err(ProtoError::UnknownType(other)),
        };
        Ok(DaemonMsg {
            session: raw.session,
            body,
        })
    }

    /// The wire form written to the channel (for [`DaemonBody::Alive`] the
    /// session is always 0 on the wire).
    pub fn encode(&self) -> [u8; MSG_SIZE] {
        let mut raw = uapi::daedalus_msg {
            session: self.session,
            ..Default::default()
        };
        match self.body {
            DaemonBody::BitstreamDone(d) => {
                raw.type_ = uapi::DAEDALUS_D2K_BITSTREAM_DONE;
                raw.__bindgen_anon_1.bitstream_done = uapi::daedalus_d2k_bitstream_done {
                    index: d.index,
                    epoch: d.epoch,
                    flags: d.flags,
                    ..Default::default()
                };
            }
            DaemonBody::FrameDone(f) => {
                raw.type_ = uapi::DAEDALUS_D2K_FRAME_DONE;
                raw.__bindgen_anon_1.frame_done = uapi::daedalus_d2k_frame_done {
                    timestamp_ns: f.timestamp_ns,
                    index: f.index,
                    epoch: f.epoch,
                    flags: f.flags,
                    num_planes: f.num_planes,
                    bytesused: f.bytesused,
                    reserved: 0,
                };
            }
            DaemonBody::Format(f) => {
                raw.type_ = uapi::DAEDALUS_D2K_FORMAT;
                raw.__bindgen_anon_1.format = uapi::daedalus_d2k_format {
                    epoch: f.epoch,
                    pixelformat: f.pixelformat,
                    width: f.width,
                    height: f.height,
                    visible_left: f.visible_left,
                    visible_top: f.visible_top,
                    visible_width: f.visible_width,
                    visible_height: f.visible_height,
                    bit_depth: f.bit_depth,
                    colorspace: f.colorspace,
                    xfer_func: f.xfer_func,
                    ycbcr_enc: f.ycbcr_enc,
                    quantization: f.quantization,
                    min_capture_buffers: f.min_capture_buffers,
                    reserved: [0; 2],
                };
            }
            DaemonBody::SessionError { error } => {
                raw.type_ = uapi::DAEDALUS_D2K_SESSION_ERROR;
                raw.__bindgen_anon_1.session_error = uapi::daedalus_d2k_session_error {
                    error,
                    ..Default::default()
                };
            }
            DaemonBody::Released { queue, epoch } => {
                raw.type_ = uapi::DAEDALUS_D2K_RELEASED;
                raw.__bindgen_anon_1.released = uapi::daedalus_d2k_released {
                    queue: queue.raw(),
                    epoch,
                    ..Default::default()
                };
            }
            DaemonBody::Alive => {
                // Session 0 and an all-zero body, whatever `self.session`.
                raw.type_ = uapi::DAEDALUS_D2K_ALIVE;
                raw.session = 0;
            }
        }
        sys::msg_to_bytes(&raw)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn field_u32(bytes: &[u8], offset: usize) -> u32 {
        u32::from_le_bytes(bytes[offset..offset + 4].try_into().unwrap())
    }

    #[test]
    fn kernel_messages_round_trip() {
        let msgs = [
            KernelBody::SessionOpen(SessionOpen {
                coded_format: crate::fourcc::H264,
                width: 1920,
                height: 1080,
            }),
            KernelBody::SessionClose,
            KernelBody::Bitstream(Bitstream {
                timestamp_ns: 0x1122_3344_5566_7788,
                index: 3,
                generation: 2,
                epoch: 7,
                bytesused: 1000,
                length: 4096,
                flags: 0,
                mem_seq: 3,
                data_offset: 0,
            }),
            KernelBody::Bitstream(Bitstream {
                timestamp_ns: 1,
                index: 1,
                generation: 1,
                epoch: 1,
                bytesused: 1000,
                length: 4096,
                flags: 0,
                mem_seq: 1,
                data_offset: 999,
            }),
            KernelBody::Capture(Capture {
                index: 1,
                generation: 1,
                epoch: 4,
                pixelformat: crate::fourcc::NV12M,
                width: 320,
                height: 240,
                num_planes: 2,
                mem_seq: 2,
                bytesperline: [320, 320, 0],
                length: [76800, 38400, 0],
            }),
            KernelBody::CaptureReset { epoch: 9 },
            KernelBody::Drain,
            KernelBody::Flush { epoch: 5 },
        ];
        for body in msgs {
            let m = KernelMsg { session: 42, body };
            let wire = m.encode();
            assert_eq!(KernelMsg::decode(&wire), Ok(m));
            assert_eq!(
                DaemonMsg::decode(&wire),
                Err(ProtoError::WrongDirection(field_u32(&wire, 0)))
            );
        }
    }

    #[test]
    fn mem_seq_sits_where_the_header_puts_it() {
        // After timestamp_ns, index, generation, epoch, bytesused, length, flags.
        let b = KernelMsg {
            session: 1,
            body: KernelBody::Bitstream(Bitstream {
                timestamp_ns: 0,
                index: 0,
                generation: 1,
                epoch: 0,
                bytesused: 1,
                length: 1,
                flags: 0,
                mem_seq: 0xabcd,
                data_offset: 0,
            }),
        }
        .encode();
        assert_eq!(field_u32(&b, 16 + 32), 0xabcd);
        assert_eq!(field_u32(&b, 16 + 36), 0, "data_offset after mem_seq");
        // In place of the former reserved word after num_planes.
        let c = KernelMsg {
            session: 1,
            body: KernelBody::Capture(Capture {
                index: 0,
                generation: 1,
                epoch: 0,
                pixelformat: crate::fourcc::NV12,
                width: 16,
                height: 16,
                num_planes: 1,
                mem_seq: 0x1234,
                bytesperline: [16, 0, 0],
                length: [384, 0, 0],
            }),
        }
        .encode();
        assert_eq!(field_u32(&c, 16 + 28), 0x1234);
        assert_eq!(field_u32(&c, 16 + 32), 16, "bytesperline[0] follows");
    }

    #[test]
    fn daemon_messages_round_trip_and_layout() {
        let fd = DaemonMsg {
            session: 7,
            body: DaemonBody::FrameDone(FrameDone {
                timestamp_ns: 0xdead_beef_0000_0001,
                index: 2,
                epoch: 3,
                flags: uapi::DAEDALUS_FRAME_F_KEYFRAME,
                num_planes: 1,
                bytesused: [115200, 0, 0],
            }),
        };
        let wire = fd.encode();
        // Offsets straight from the header: type, session, reserved[2], then the union.
        assert_eq!(field_u32(&wire, 0), uapi::DAEDALUS_D2K_FRAME_DONE);
        assert_eq!(field_u32(&wire, 4), 7);
        assert_eq!(&wire[16..24], &0xdead_beef_0000_0001u64.to_le_bytes());
        assert_eq!(field_u32(&wire, 24), 2);
        assert_eq!(field_u32(&wire, 36), 1);
        assert_eq!(field_u32(&wire, 40), 115200);
        assert_eq!(DaemonMsg::decode(&wire), Ok(fd));

        for body in [
            DaemonBody::BitstreamDone(BitstreamDone {
                index: 5,
                epoch: 1,
                flags: uapi::DAEDALUS_BITSTREAM_F_ERROR,
            }),
            DaemonBody::Format(Format {
                epoch: 1,
                pixelformat: crate::fourcc::P010,
                width: 1920,
                height: 1080,
                visible_width: 1920,
                visible_height: 1080,
                bit_depth: 10,
                min_capture_buffers: 4,
                ..Default::default()
            }),
            DaemonBody::SessionError { error: -22 },
            DaemonBody::Released {
                queue: Queue::Output,
                epoch: 4,
            },
            DaemonBody::Released {
                queue: Queue::Capture,
                epoch: u32::MAX,
            },
        ] {
            let m = DaemonMsg { session: 1, body };
            assert_eq!(DaemonMsg::decode(&m.encode()), Ok(m));
        }
    }

    #[test]
    fn invalid_messages_are_rejected() {
        let good = KernelMsg {
            session: 1,
            body: KernelBody::Drain,
        }
        .encode();
        assert_eq!(
            KernelMsg::decode(&good[..100]),
            Err(ProtoError::BadLength(100))
        );

        let mut zero_session = good;
        zero_session[4..8].copy_from_slice(&0u32.to_le_bytes());
        assert_eq!(
            KernelMsg::decode(&zero_session),
            Err(ProtoError::ZeroSession(6))
        );

        let mut reserved = good;
        reserved[8] = 1;
        assert_eq!(
            KernelMsg::decode(&reserved),
            Err(ProtoError::ReservedNotZero)
        );

        let mut unknown = good;
        unknown[0..4].copy_from_slice(&99u32.to_le_bytes());
        assert_eq!(
            KernelMsg::decode(&unknown),
            Err(ProtoError::UnknownType(99))
        );

        let mut planes = KernelMsg {
            session: 1,
            body: KernelBody::Capture(Capture {
                index: 0,
                generation: 0,
                epoch: 0,
                pixelformat: crate::fourcc::NV12,
                width: 16,
                height: 16,
                num_planes: 1,
                mem_seq: 1,
                bytesperline: [16, 0, 0],
                length: [384, 0, 0],
            }),
        }
        .encode();
        // num_planes sits after index, generation, epoch, pixelformat, width, height.
        planes[16 + 24..16 + 28].copy_from_slice(&4u32.to_le_bytes());
        assert_eq!(
            KernelMsg::decode(&planes),
            Err(ProtoError::BadPlaneCount(4))
        );
    }

    #[test]
    fn released_layout_and_validation() {
        let m = DaemonMsg {
            session: 9,
            body: DaemonBody::Released {
                queue: Queue::Capture,
                epoch: 0x0102_0304,
            },
        };
        let wire = m.encode();
        // Offsets from the header: queue, epoch, then reserved[6] (all zero).
        assert_eq!(field_u32(&wire, 0), uapi::DAEDALUS_D2K_RELEASED);
        assert_eq!(field_u32(&wire, 4), 9);
        assert_eq!(field_u32(&wire, 16), uapi::DAEDALUS_QUEUE_CAPTURE);
        assert_eq!(field_u32(&wire, 20), 0x0102_0304);
        assert!(wire[24..].iter().all(|&b| b == 0), "reserved and rest zero");
        assert_eq!(DaemonMsg::decode(&wire), Ok(m));
        // It travels daemon -> kernel only.
        assert_eq!(
            KernelMsg::decode(&wire),
            Err(ProtoError::WrongDirection(uapi::DAEDALUS_D2K_RELEASED))
        );

        let mut queue = wire;
        queue[16..20].copy_from_slice(&2u32.to_le_bytes());
        assert_eq!(DaemonMsg::decode(&queue), Err(ProtoError::BadQueue(2)));

        // Each reserved word (after queue and epoch) must be zero.
        for word in 0..6 {
            let mut reserved = wire;
            let at = 24 + 4 * word;
            reserved[at..at + 4].copy_from_slice(&1u32.to_le_bytes());
            assert_eq!(
                DaemonMsg::decode(&reserved),
                Err(ProtoError::ReservedBodyNotZero(uapi::DAEDALUS_D2K_RELEASED))
            );
        }
    }

    #[test]
    fn alive_layout_and_validation() {
        let m = DaemonMsg::alive();
        assert_eq!(
            m,
            DaemonMsg {
                session: 0,
                body: DaemonBody::Alive
            }
        );
        let wire = m.encode();
        // The header's form: type, session 0, reserved[2] zero, body all zero.
        assert_eq!(field_u32(&wire, 0), uapi::DAEDALUS_D2K_ALIVE);
        assert_eq!(field_u32(&wire, 0), 106);
        assert!(
            wire[4..].iter().all(|&b| b == 0),
            "session and the rest zero"
        );
        assert_eq!(DaemonMsg::decode(&wire), Ok(m));
        // Whatever session the caller puts in, ALIVE travels with session 0.
        let other = DaemonMsg {
            session: 7,
            body: DaemonBody::Alive,
        };
        assert_eq!(other.encode(), wire);
        // It travels daemon -> kernel only.
        assert_eq!(
            KernelMsg::decode(&wire),
            Err(ProtoError::WrongDirection(uapi::DAEDALUS_D2K_ALIVE))
        );

        let mut session = wire;
        session[4..8].copy_from_slice(&5u32.to_le_bytes());
        assert_eq!(
            DaemonMsg::decode(&session),
            Err(ProtoError::SessionNotZero {
                ty: uapi::DAEDALUS_D2K_ALIVE,
                session: 5
            })
        );
        for at in 8..16 {
            let mut reserved = wire;
            reserved[at] = 1;
            assert_eq!(
                DaemonMsg::decode(&reserved),
                Err(ProtoError::ReservedNotZero),
                "header byte {at}"
            );
        }
        // Every byte of the body (the whole union) must be zero.
        for at in 16..MSG_SIZE {
            let mut body = wire;
            body[at] = 0x80;
            assert_eq!(
                DaemonMsg::decode(&body),
                Err(ProtoError::ReservedBodyNotZero(uapi::DAEDALUS_D2K_ALIVE)),
                "body byte {at}"
            );
        }
    }

    #[test]
    fn session_zero_is_only_for_alive() {
        // Every other daemon message still needs a session.
        for body in [
            DaemonBody::SessionError { error: -5 },
            DaemonBody::Released {
                queue: Queue::Output,
                epoch: 1,
            },
        ] {
            let wire = DaemonMsg { session: 0, body }.encode();
            assert_eq!(
                DaemonMsg::decode(&wire),
                Err(ProtoError::ZeroSession(field_u32(&wire, 0)))
            );
        }
    }

    #[test]
    fn queue_wire_values() {
        for q in [Queue::Output, Queue::Capture] {
            assert_eq!(Queue::from_raw(q.raw()), Some(q));
        }
        assert_eq!(Queue::from_raw(2), None);
    }
    fn bitstream(bytesused: u32, data_offset: u32) -> KernelMsg {
        KernelMsg {
            session: 3,
            body: KernelBody::Bitstream(Bitstream {
                timestamp_ns: 0x0102_0304_0506_0708,
                index: 0x11,
                generation: 0x22,
                epoch: 0x33,
                bytesused,
                length: 0x10_0000,
                flags: 0,
                mem_seq: 0x44,
                data_offset,
            }),
        }
    }

    #[test]
    fn data_offset_sits_where_the_header_puts_it() {
        let m = bitstream(0x1000, 0x0abc);
        let wire = m.encode();
        // The header's offsets, in the union after the 16-byte header.
        let base = 16;
        assert_eq!(
            core::mem::offset_of!(uapi::daedalus_msg, __bindgen_anon_1),
            base
        );
        let at = base + core::mem::offset_of!(uapi::daedalus_k2d_bitstream, data_offset);
        assert_eq!(at, 16 + 36, "the last word, where `reserved` was");
        assert_eq!(
            core::mem::size_of::<uapi::daedalus_k2d_bitstream>(),
            40,
            "no field added, one renamed"
        );
        assert_eq!(field_u32(&wire, at), 0x0abc);
        assert_eq!(field_u32(&wire, 16 + 20), 0x1000, "bytesused");
        assert_eq!(field_u32(&wire, 16 + 32), 0x44, "mem_seq before it");
        assert!(wire[16 + 40..].iter().all(|&b| b == 0), "rest of the union");
        assert_eq!(KernelMsg::decode(&wire), Ok(m));

        // The same bytes written by hand decode to that field.
        let mut by_hand = bitstream(0x1000, 0).encode();
        by_hand[at..at + 4].copy_from_slice(&0x0fffu32.to_le_bytes());
        match KernelMsg::decode(&by_hand).unwrap().body {
            KernelBody::Bitstream(b) => assert_eq!(b.data_offset, 0x0fff),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn data_offset_must_lie_inside_the_payload() {
        // Accepted: 0 (older kernels, no header) and anything below bytesused,
        // also with an empty buffer [0, 0).
        for (bytesused, off) in [
            (0, 0),
            (1, 0),
            (100, 0),
            (100, 99),
            (u32::MAX, u32::MAX - 1),
        ] {
            let m = bitstream(bytesused, off);
            assert_eq!(KernelMsg::decode(&m.encode()), Ok(m), "{off}/{bytesused}");
        }
        // Rejected: an offset at or past the end of the payload (an empty or
        // inverted range), including any offset of an empty buffer.
        for (bytesused, off) in [
            (100, 100),
            (100, 101),
            (1, 1),
            (0, 1),
            (0, u32::MAX),
            (5, u32::MAX),
        ] {
            assert_eq!(
                KernelMsg::decode(&bitstream(bytesused, off).encode()),
                Err(ProtoError::BadDataOffset {
                    data_offset: off,
                    bytesused
                }),
                "{off}/{bytesused}"
            );
        }
    }
}
