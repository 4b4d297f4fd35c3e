//! daedalus-chan-fault: hostile daemon-side input against /dev/daedalus-v4l2.
//!
//! It plays the daemon (the channel) and a V4L2 client (the decoder device)
//! at once, so every reply it forges refers to a real session and real
//! buffers: wrong session ids and indexes, oversize bytesused, future and
//! stale epochs, bad flags, set reserved fields, truncated writes, replies
//! out of order, a second open, daemon death and a daemon stall. Each case
//! prints one PASS/FAIL line with what came back; the exit status is 0 only
//! if every case got the answer the UAPI header documents.
//!
//! Flow control and session lifetime live in `flow.rs`, with two hostile
//! clients the guest suite runs on their own: `--flood SECONDS` (against
//! the real daemon) and `--export-rmmod`.
//!
//! Needs: the module loaded, no daemon running (the channel has one holder),
//! root (the channel is 0600; the stall case writes a module parameter).

use std::fmt::Display;
use std::io::Write;
use std::os::fd::{AsFd, AsRawFd};
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::{Duration, Instant};

mod flow;
mod sequences;

use anyhow::{bail, Context, Result};
use clap::Parser;

use daedalus_proto::{
    fourcc, uapi, BitstreamDone, BufferRef, Channel, ChannelError, DaemonBody, DaemonMsg, Format,
    FrameDone, KernelBody, KernelMsg, Queue, MSG_SIZE,
};
use daedalus_tools::device::{self, DAEDALUS_DRIVER};
use daedalus_tools::stream::Codec;
use v4l2r::device::Device;
use v4l2r::ioctl::{
    self, DecoderCmd, DqBufIoctlError, Event, EventType, IntoErrno, IoctlConvertError, QBufPlane,
    QBuffer, SubscribeEventFlags, V4l2Buffer,
};
use v4l2r::memory::{MemoryType, MmapHandle};
use v4l2r::nix::errno::Errno;
use v4l2r::nix::poll::{poll, PollFd, PollFlags, PollTimeout};
use v4l2r::{bindings, PixelFormat, PlaneLayout, QueueType};

const OUT_Q: QueueType = QueueType::VideoOutputMplane;
const CAP_Q: QueueType = QueueType::VideoCaptureMplane;
const TIMEOUT_PARAM: &str = "/sys/module/daedalus_v4l2/parameters/daemon_timeout_ms";
/// The codecs this fake daemon announces (no AV1: v4l2-compliance 1.30 and
/// older clients do not know its fourcc).
const CODECS: [u32; 3] = [fourcc::H264, fourcc::HEVC, fourcc::VP9];

#[derive(Parser, Debug)]
#[command(about = "Send hostile daemon messages to /dev/daedalus-v4l2 and check every answer")]
struct Args {
    /// The channel device.
    #[arg(long, default_value = "/dev/daedalus-v4l2")]
    channel: PathBuf,
    /// The decoder; found by driver name when not given.
    #[arg(long)]
    device: Option<PathBuf>,
    /// Skip the daemon-stall case (it changes daemon_timeout_ms for a moment).
    #[arg(long)]
    no_stall: bool,
    /// Only be a hostile client for SECONDS (the real daemon serving): seek
    /// in a loop with every OUTPUT buffer queued each time.
    #[arg(long, value_name = "SECONDS")]
    flood: Option<u64>,
    /// Only export a CAPTURE buffer, close the decoder, rmmod the module,
    /// then use and drop the dma-buf (no daemon needed).
    #[arg(long)]
    export_rmmod: bool,
}

// ------------------------------------------------------------------------
// raw ioctls for malformed HELLO / GET_BUF_FD (the proto crate only builds
// well-formed ones)
// ------------------------------------------------------------------------

mod raw {
    use daedalus_proto::uapi;
    v4l2r::nix::ioctl_readwrite!(hello, b'D', 0, uapi::daedalus_hello);
    v4l2r::nix::ioctl_readwrite!(get_buf_fd, b'D', 1, uapi::daedalus_buf_fd);
}

fn raw_hello(chan: &Channel, arg: &mut uapi::daedalus_hello) -> Result<(), Errno> {
    // SAFETY: the fd is the open channel for the whole call and `arg` is a
    // live, exclusively borrowed daedalus_hello, the type the ioctl number
    // encodes; the kernel reads and writes only sizeof(daedalus_hello) bytes.
    unsafe { raw::hello(chan.as_fd().as_raw_fd(), arg) }.map(drop)
}

fn raw_get_buf_fd(chan: &Channel, arg: &mut uapi::daedalus_buf_fd) -> Result<(), Errno> {
    // SAFETY: as in raw_hello, with struct daedalus_buf_fd. A returned fd is
    // closed by the caller through std::fs::File.
    unsafe { raw::get_buf_fd(chan.as_fd().as_raw_fd(), arg) }.map(drop)
}

// ------------------------------------------------------------------------
// outcomes
// ------------------------------------------------------------------------

/// What a channel operation gave: a count (bytes, or 0 for ioctls) or an errno.
type Outcome = std::result::Result<usize, i32>;

fn chan_outcome<T>(r: std::result::Result<T, ChannelError>, ok: impl Fn(T) -> usize) -> Outcome {
    match r {
        Ok(v) => Ok(ok(v)),
        Err(ChannelError::Io(e)) => Err(e as i32),
        Err(ChannelError::Busy(_)) => Err(Errno::EBUSY as i32),
        Err(ChannelError::Stale) => Err(Errno::ESTALE as i32),
        Err(ChannelError::Open { source, .. }) => Err(source as i32),
        Err(ChannelError::Hello { source, .. }) => Err(source as i32),
        Err(_) => Err(Errno::EPROTO as i32),
    }
}

fn show(o: &Outcome) -> String {
    match o {
        Ok(n) => format!("ok ({n})"),
        Err(e) => format!("{}", Errno::from_raw(*e)),
    }
}

struct Report {
    passed: u32,
    failed: u32,
}

impl Report {
    fn check(&mut self, name: &str, ok: bool, detail: impl Display) {
        if ok {
            self.passed += 1;
            println!("PASS {name}: {detail}");
        } else {
            self.failed += 1;
            println!("FAIL {name}: {detail}");
        }
        let _ = std::io::stdout().flush();
    }

    fn expect(&mut self, name: &str, got: Outcome, want: Outcome) {
        let detail = format!("got {}, want {}", show(&got), show(&want));
        self.check(name, got == want, detail);
    }

    fn expect_err(&mut self, name: &str, got: Outcome, errno: Errno) {
        self.expect(name, got, Err(errno as i32));
    }
}

// ------------------------------------------------------------------------
// the daemon side
// ------------------------------------------------------------------------

struct FakeDaemon {
    chan: Channel,
    pending: Vec<KernelMsg>,
}

impl FakeDaemon {
    fn write(&self, bytes: &[u8]) -> Outcome {
        chan_outcome(self.chan.write_raw(bytes), |n| n)
    }

    fn send(&self, msg: &DaemonMsg) -> Outcome {
        self.write(&msg.encode())
    }

    /// Reads whatever the kernel sent within `wait`.
    fn collect(&mut self, wait: Duration) -> Result<()> {
        let deadline = Instant::now() + wait;
        loop {
            let mut batch = Vec::new();
            let n = self.chan.read_batch(64, &mut batch)?;
            for m in batch {
                self.pending
                    .push(m.context("kernel sent an undecodable message")?);
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if n > 0 || left.is_zero() {
                return Ok(());
            }
            let mut fds = [PollFd::new(self.chan.as_fd(), PollFlags::POLLIN)];
            let ms = u16::try_from(left.as_millis()).unwrap_or(u16::MAX);
            poll(&mut fds, PollTimeout::from(ms))?;
        }
    }

    /// The first pending or arriving message `pick` accepts, within `wait`.
    fn take<T>(&mut self, wait: Duration, pick: impl Fn(&KernelMsg) -> Option<T>) -> Option<T> {
        let deadline = Instant::now() + wait;
        loop {
            if let Some(pos) = self.pending.iter().position(|m| pick(m).is_some()) {
                let m = self.pending.remove(pos);
                return pick(&m);
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() || self.collect(left.min(Duration::from_millis(50))).is_err() {
                return None;
            }
        }
    }
}

const WAIT: Duration = Duration::from_secs(2);

fn bitstream_done(session: u32, index: u32, epoch: u32, flags: u32) -> DaemonMsg {
    DaemonMsg {
        session,
        body: DaemonBody::BitstreamDone(BitstreamDone {
            index,
            epoch,
            flags,
        }),
    }
}

fn frame_done(session: u32, index: u32, epoch: u32, flags: u32, bytesused: [u32; 3]) -> DaemonMsg {
    DaemonMsg {
        session,
        body: DaemonBody::FrameDone(FrameDone {
            timestamp_ns: 1_000_000_000,
            index,
            epoch,
            flags,
            num_planes: 1,
            bytesused,
        }),
    }
}

fn nv12_format(epoch: u32, width: u32, height: u32, min_buffers: u32) -> Format {
    Format {
        epoch,
        pixelformat: fourcc::NV12,
        width,
        height,
        visible_width: width,
        visible_height: height,
        bit_depth: 8,
        colorspace: bindings::v4l2_colorspace_V4L2_COLORSPACE_REC709,
        min_capture_buffers: min_buffers,
        ..Default::default()
    }
}

fn format_msg(session: u32, f: Format) -> DaemonMsg {
    DaemonMsg {
        session,
        body: DaemonBody::Format(f),
    }
}

/// `msg` on the wire with the u32 at byte `offset` replaced.
fn patched(msg: &DaemonMsg, offset: usize, value: u32) -> [u8; MSG_SIZE] {
    let mut wire = msg.encode();
    wire[offset..offset + 4].copy_from_slice(&value.to_ne_bytes());
    wire
}

// ------------------------------------------------------------------------
// the client side
// ------------------------------------------------------------------------

struct Client {
    dev: Device,
}

fn v4l2_err<E: std::fmt::Debug>(what: &'static str) -> impl Fn(E) -> anyhow::Error {
    move |e| anyhow::anyhow!("{what}: {e:?}")
}

impl Client {
    fn open(args: &Args) -> Result<Client> {
        let dev = match &args.device {
            Some(p) => device::open(p)?,
            None => device::find_decoder(DAEDALUS_DRIVER, Codec::H264)?.0,
        };
        Ok(Client { dev })
    }

    /// H.264 at 320x240 with `count` MMAP OUTPUT buffers.
    fn setup_output(&mut self, count: u32) -> Result<()> {
        let fmt = v4l2r::Format {
            width: 320,
            height: 240,
            pixelformat: PixelFormat::from_fourcc(b"H264"),
            plane_fmt: vec![PlaneLayout {
                sizeimage: 0,
                bytesperline: 0,
            }],
        };
        let _: v4l2r::Format =
            ioctl::s_fmt(&mut self.dev, (OUT_Q, &fmt)).map_err(v4l2_err("S_FMT(OUTPUT)"))?;
        let n: usize = ioctl::reqbufs(
            &self.dev,
            OUT_Q,
            MemoryType::Mmap,
            count,
            ioctl::MemoryConsistency::empty(),
        )
        .map_err(v4l2_err("REQBUFS(OUTPUT)"))?;
        if n < count as usize {
            bail!("REQBUFS(OUTPUT) gave {n} buffers, wanted {count}");
        }
        ioctl::subscribe_event(
            &self.dev,
            EventType::SourceChange(0),
            SubscribeEventFlags::empty(),
        )
        .map_err(v4l2_err("SUBSCRIBE(SOURCE_CHANGE)"))?;
        ioctl::subscribe_event(&self.dev, EventType::Eos, SubscribeEventFlags::empty())
            .map_err(v4l2_err("SUBSCRIBE(EOS)"))?;
        Ok(())
    }

    fn qbuf_out(&self, index: u32, bytes: usize, ts_sec: i64) -> Result<(), Errno> {
        let mut q = QBuffer::<MmapHandle>::new(OUT_Q, index).set_timestamp(ts_sec, 0);
        q.planes.push(QBufPlane::new(bytes));
        ioctl::qbuf::<_, ()>(&self.dev, q).map_err(errno_of)
    }

    fn qbuf_cap(&self, index: u32) -> Result<(), Errno> {
        let mut q = QBuffer::<MmapHandle>::new(CAP_Q, index);
        q.planes.push(QBufPlane::new(0));
        ioctl::qbuf::<_, ()>(&self.dev, q).map_err(errno_of)
    }

    fn setup_capture(&mut self, count: u32) -> Result<()> {
        let fmt: v4l2r::Format =
            ioctl::g_fmt(&self.dev, CAP_Q).map_err(v4l2_err("G_FMT(CAPTURE)"))?;
        let _: v4l2r::Format =
            ioctl::s_fmt(&mut self.dev, (CAP_Q, &fmt)).map_err(v4l2_err("S_FMT(CAPTURE)"))?;
        let n: usize = ioctl::reqbufs(
            &self.dev,
            CAP_Q,
            MemoryType::Mmap,
            count,
            ioctl::MemoryConsistency::empty(),
        )
        .map_err(v4l2_err("REQBUFS(CAPTURE)"))?;
        if n < count as usize {
            bail!("REQBUFS(CAPTURE) gave {n} buffers, wanted {count}");
        }
        Ok(())
    }

    fn streamon(&self, q: QueueType) -> Result<(), Errno> {
        ioctl::streamon(&self.dev, q).map_err(errno_of)
    }

    fn streamoff(&self, q: QueueType) -> Result<(), Errno> {
        ioctl::streamoff(&self.dev, q).map_err(errno_of)
    }

    /// DQBUF, waiting up to `wait` for a buffer.
    fn dqbuf(&self, q: QueueType, wait: Duration) -> Result<V4l2Buffer, Errno> {
        let deadline = Instant::now() + wait;
        loop {
            match ioctl::dqbuf::<V4l2Buffer>(&self.dev, q) {
                Ok(b) => return Ok(b),
                Err(IoctlConvertError::IoctlError(DqBufIoctlError::NotReady)) => {}
                Err(IoctlConvertError::IoctlError(DqBufIoctlError::Eos)) => {
                    return Err(Errno::EPIPE)
                }
                Err(IoctlConvertError::IoctlError(DqBufIoctlError::Other(e))) => return Err(e),
                Err(_) => return Err(Errno::EINVAL),
            }
            if Instant::now() >= deadline {
                return Err(Errno::EAGAIN);
            }
            std::thread::sleep(Duration::from_millis(5));
        }
    }

    /// The next event within `wait`, if any.
    fn event(&self, wait: Duration) -> Option<Event> {
        let deadline = Instant::now() + wait;
        loop {
            if let Ok(ev) = ioctl::dqevent::<Event>(&self.dev) {
                return Some(ev);
            }
            if Instant::now() >= deadline {
                return None;
            }
            std::thread::sleep(Duration::from_millis(5));
        }
    }

    fn decoder_cmd(&self, cmd: DecoderCmd) -> Result<(), Errno> {
        ioctl::decoder_cmd::<_, ()>(&self.dev, cmd).map_err(errno_of)
    }
}

fn errno_of(e: impl IntoErrno) -> Errno {
    Errno::from_raw(e.into_errno())
}

fn errno_outcome(r: Result<(), Errno>) -> Outcome {
    r.map(|()| 0).map_err(|e| e as i32)
}

// ------------------------------------------------------------------------
// the cases
// ------------------------------------------------------------------------

fn hello_arg(formats: &[u32]) -> uapi::daedalus_hello {
    let mut h = uapi::daedalus_hello {
        version_major: uapi::DAEDALUS_PROTO_VERSION_MAJOR,
        version_minor: uapi::DAEDALUS_PROTO_VERSION_MINOR,
        num_coded_formats: formats.len() as u32,
        ..Default::default()
    };
    h.coded_formats[..formats.len()].copy_from_slice(formats);
    h
}

/// Channel-only cases, up to and including a good HELLO.
fn channel_cases(r: &mut Report, args: &Args) -> Result<FakeDaemon> {
    let chan = Channel::open(&args.channel).map_err(|e| match e {
        ChannelError::Busy(_) => anyhow::anyhow!(
            "{} is held by another process: stop daedalus-v4l2d first",
            args.channel.display()
        ),
        e => anyhow::Error::new(e),
    })?;
    r.expect_err(
        "second open",
        chan_outcome(Channel::open(&args.channel), |_| 0),
        Errno::EBUSY,
    );

    let mut buf = [0u8; MSG_SIZE];
    r.expect_err(
        "read before HELLO",
        chan_outcome(chan.read_raw(&mut buf), |n| n),
        Errno::EPROTO,
    );
    let probe = bitstream_done(1, 0, 0, 0).encode();
    r.expect_err(
        "write before HELLO",
        chan_outcome(chan.write_raw(&probe), |n| n),
        Errno::EPROTO,
    );

    let mut h = hello_arg(&CODECS);
    h.version_major += 1;
    r.expect_err(
        "HELLO other major",
        errno_outcome(raw_hello(&chan, &mut h)),
        Errno::EPROTONOSUPPORT,
    );
    let mut h = hello_arg(&[]);
    r.expect_err(
        "HELLO no codecs",
        errno_outcome(raw_hello(&chan, &mut h)),
        Errno::EINVAL,
    );
    let mut h = hello_arg(&[fourcc::H264, fourcc::fourcc(b"XXXX")]);
    r.expect_err(
        "HELLO unknown codec",
        errno_outcome(raw_hello(&chan, &mut h)),
        Errno::EINVAL,
    );
    let mut h = hello_arg(&[fourcc::H264, fourcc::H264]);
    r.expect_err(
        "HELLO duplicate codec",
        errno_outcome(raw_hello(&chan, &mut h)),
        Errno::EINVAL,
    );
    let mut h = hello_arg(&CODECS);
    h.num_coded_formats = uapi::DAEDALUS_MAX_CODED_FORMATS + 1;
    r.expect_err(
        "HELLO too many codecs",
        errno_outcome(raw_hello(&chan, &mut h)),
        Errno::EINVAL,
    );
    let mut h = hello_arg(&CODECS);
    h.reserved[3] = 1;
    r.expect_err(
        "HELLO reserved set",
        errno_outcome(raw_hello(&chan, &mut h)),
        Errno::EINVAL,
    );
    let mut h = hello_arg(&CODECS);
    h.flags = !(uapi::DAEDALUS_HELLO_F_RELEASE_ACK | uapi::DAEDALUS_HELLO_F_ALIVE);
    r.expect_err(
        "HELLO unknown flag set",
        errno_outcome(raw_hello(&chan, &mut h)),
        Errno::EINVAL,
    );
    let mut h = hello_arg(&CODECS);
    h.continuous_formats = 1 << CODECS.len();
    r.expect_err(
        "HELLO continuous-format bit beyond the codecs",
        errno_outcome(raw_hello(&chan, &mut h)),
        Errno::EINVAL,
    );

    let info = chan
        .hello(&CODECS)
        .context("HELLO with good arguments failed")?;
    r.check(
        "HELLO",
        info.msg_size as usize == MSG_SIZE,
        format!(
            "protocol {}.{}, msg_size {}",
            info.version_major, info.version_minor, info.msg_size
        ),
    );
    r.expect_err(
        "second HELLO",
        chan_outcome(chan.hello(&CODECS), |_| 0),
        Errno::EINVAL,
    );

    let mut odd = [0u8; 100];
    r.expect_err(
        "read of 100 bytes",
        chan_outcome(chan.read_raw(&mut odd), |n| n),
        Errno::EINVAL,
    );
    r.expect_err(
        "read with nothing queued",
        chan_outcome(chan.read_raw(&mut buf), |n| n),
        Errno::EAGAIN,
    );

    let d = FakeDaemon {
        chan,
        pending: Vec::new(),
    };
    r.expect_err(
        "truncated write (100 bytes)",
        d.write(&probe[..100]),
        Errno::EINVAL,
    );
    let mut one_and_half = probe.to_vec();
    one_and_half.extend_from_slice(&probe[..64]);
    r.expect_err(
        "write of 1.5 messages",
        d.write(&one_and_half),
        Errno::EINVAL,
    );
    r.expect_err(
        "unknown type 999",
        d.write(&patched(&bitstream_done(1, 0, 0, 0), 0, 999)),
        Errno::EINVAL,
    );
    r.expect_err(
        "kernel->daemon type (BITSTREAM)",
        d.write(&patched(
            &bitstream_done(1, 0, 0, 0),
            0,
            uapi::DAEDALUS_K2D_BITSTREAM,
        )),
        Errno::EINVAL,
    );
    r.expect_err(
        "header reserved set",
        d.write(&patched(&bitstream_done(1, 0, 0, 0), 8, 1)),
        Errno::EINVAL,
    );
    r.expect_err(
        "session 0",
        d.send(&bitstream_done(0, 0, 0, 0)),
        Errno::EINVAL,
    );
    r.expect_err(
        "never-issued session",
        d.send(&bitstream_done(0x7fff_fff0, 0, 0, 0)),
        Errno::EINVAL,
    );

    let mut bf = uapi::daedalus_buf_fd {
        session: 0x7fff_fff0,
        ..Default::default()
    };
    r.expect_err(
        "GET_BUF_FD never-issued session",
        errno_outcome(raw_get_buf_fd(&d.chan, &mut bf)),
        Errno::EINVAL,
    );
    let mut bf = uapi::daedalus_buf_fd {
        session: 1,
        queue: 7,
        ..Default::default()
    };
    r.expect_err(
        "GET_BUF_FD queue 7",
        errno_outcome(raw_get_buf_fd(&d.chan, &mut bf)),
        Errno::EINVAL,
    );
    Ok(d)
}

/// What the kernel told the daemon about a session so far.
#[derive(Debug, Default, Clone, Copy)]
struct SessionView {
    session: u32,
    out_epoch: u32,
    out_gen: u32,
    cap_epoch: u32,
    cap_gen: u32,
    cap_len: u32,
}

fn wait_open(d: &mut FakeDaemon) -> Option<u32> {
    d.take(WAIT, |m| match m.body {
        KernelBody::SessionOpen(_) => Some(m.session),
        _ => None,
    })
}

/// (epoch, generation, timestamp, bytesused, mem_seq) of a BITSTREAM.
fn wait_bitstream(
    d: &mut FakeDaemon,
    session: u32,
    index: u32,
) -> Option<(u32, u32, u64, u32, u32)> {
    d.take(WAIT, |m| match m.body {
        KernelBody::Bitstream(b) if m.session == session && b.index == index => Some((
            b.epoch,
            b.generation,
            b.timestamp_ns,
            b.bytesused,
            b.mem_seq,
        )),
        _ => None,
    })
}

fn wait_capture(d: &mut FakeDaemon, session: u32, index: u32) -> Option<(u32, u32, u32)> {
    d.take(WAIT, |m| match m.body {
        KernelBody::Capture(c) if m.session == session && c.index == index => {
            Some((c.epoch, c.generation, c.length[0]))
        }
        _ => None,
    })
}

fn gbf(chan: &Channel, s: &SessionView, queue: Queue, index: u32, generation: u32) -> Outcome {
    chan_outcome(chan.get_buf_fd(buf_ref(s, queue, index, generation)), |_| 0)
}

fn buf_ref(s: &SessionView, queue: Queue, index: u32, generation: u32) -> BufferRef {
    BufferRef {
        session: s.session,
        queue,
        index,
        plane: 0,
        generation,
        mem_seq: 0,
    }
}

fn output_cases(r: &mut Report, d: &mut FakeDaemon, c: &mut Client) -> Result<SessionView> {
    c.setup_output(4)?;
    c.qbuf_out(0, 64, 1).map_err(v4l2_err("QBUF(OUTPUT 0)"))?;
    c.streamon(OUT_Q).map_err(v4l2_err("STREAMON(OUTPUT)"))?;
    let session = wait_open(d).context("no SESSION_OPEN after STREAMON(OUTPUT)")?;
    let (out_epoch, out_gen, ts, used, mem_seq) =
        wait_bitstream(d, session, 0).context("no BITSTREAM for OUTPUT 0")?;
    r.check(
        "BITSTREAM carries the client's data",
        ts == 1_000_000_000 && used == 64,
        format!("timestamp {ts} ns, bytesused {used}"),
    );
    let mut s = SessionView {
        session,
        out_epoch,
        out_gen,
        ..Default::default()
    };

    let got = d.chan.get_buf_fd(buf_ref(&s, Queue::Output, 0, out_gen));
    let good_len = matches!(&got, Ok((_, len)) if *len >= 64);
    r.check(
        "GET_BUF_FD owned OUTPUT buffer",
        good_len,
        format!("{:?}", got.as_ref().map(|(_, l)| *l)),
    );
    drop(got);
    r.check(
        "BITSTREAM carries a mem_seq (protocol 1.2)",
        mem_seq != 0,
        format!("mem_seq {mem_seq}"),
    );
    let with_seq = |seq: u32| BufferRef {
        mem_seq: seq,
        ..buf_ref(&s, Queue::Output, 0, out_gen)
    };
    let got = d.chan.get_buf_fd(with_seq(mem_seq));
    r.check(
        "GET_BUF_FD with the buffer's mem_seq",
        got.is_ok(),
        format!("{:?}", got.as_ref().map(|(_, l)| *l)),
    );
    drop(got);
    r.expect_err(
        "GET_BUF_FD with another mem_seq (memory changed)",
        chan_outcome(d.chan.get_buf_fd(with_seq(mem_seq.wrapping_add(1))), |_| 0),
        Errno::ESTALE,
    );
    r.expect_err(
        "GET_BUF_FD old generation",
        gbf(&d.chan, &s, Queue::Output, 0, out_gen.wrapping_sub(1)),
        Errno::ESTALE,
    );
    r.expect_err(
        "GET_BUF_FD buffer the daemon does not own",
        gbf(&d.chan, &s, Queue::Output, 1, out_gen),
        Errno::ESTALE,
    );
    r.expect_err(
        "GET_BUF_FD index 9 (none)",
        gbf(&d.chan, &s, Queue::Output, 9, out_gen),
        Errno::EINVAL,
    );
    let mut bf = uapi::daedalus_buf_fd {
        session,
        queue: uapi::DAEDALUS_QUEUE_OUTPUT,
        index: 0,
        plane: 1,
        generation: out_gen,
        ..Default::default()
    };
    r.expect_err(
        "GET_BUF_FD plane 1 of a 1-plane buffer",
        errno_outcome(raw_get_buf_fd(&d.chan, &mut bf)),
        Errno::EINVAL,
    );

    r.expect_err(
        "BITSTREAM_DONE buffer not owned",
        d.send(&bitstream_done(session, 1, out_epoch, 0)),
        Errno::EINVAL,
    );
    r.expect_err(
        "BITSTREAM_DONE index 99",
        d.send(&bitstream_done(session, 99, out_epoch, 0)),
        Errno::EINVAL,
    );
    r.expect_err(
        "BITSTREAM_DONE future epoch",
        d.send(&bitstream_done(session, 0, out_epoch + 1, 0)),
        Errno::EINVAL,
    );
    r.expect_err(
        "BITSTREAM_DONE unknown flag",
        d.send(&bitstream_done(session, 0, out_epoch, 2)),
        Errno::EINVAL,
    );
    r.expect_err(
        "BITSTREAM_DONE reserved set",
        d.write(&patched(&bitstream_done(session, 0, out_epoch, 0), 44, 1)),
        Errno::EINVAL,
    );
    r.expect_err(
        "FRAME_DONE with no CAPTURE owned",
        d.send(&frame_done(session, 0, 0, 0, [0; 3])),
        Errno::EINVAL,
    );

    let bad_formats: [(&str, Format); 9] = [
        (
            "FORMAT width 9000",
            Format {
                width: 9000,
                visible_width: 9000,
                ..nv12_format(out_epoch, 320, 240, 2)
            },
        ),
        (
            "FORMAT height 8",
            Format {
                height: 8,
                visible_height: 8,
                ..nv12_format(out_epoch, 320, 240, 2)
            },
        ),
        (
            "FORMAT visible rect outside",
            Format {
                visible_left: 300,
                ..nv12_format(out_epoch, 320, 240, 2)
            },
        ),
        (
            "FORMAT empty visible rect",
            Format {
                visible_height: 0,
                ..nv12_format(out_epoch, 320, 240, 2)
            },
        ),
        (
            "FORMAT P010 at 8 bits",
            Format {
                pixelformat: fourcc::P010,
                ..nv12_format(out_epoch, 320, 240, 2)
            },
        ),
        (
            "FORMAT pixelformat YUV420",
            Format {
                pixelformat: fourcc::YUV420,
                ..nv12_format(out_epoch, 320, 240, 2)
            },
        ),
        (
            "FORMAT min_capture_buffers 0",
            nv12_format(out_epoch, 320, 240, 0),
        ),
        (
            "FORMAT min_capture_buffers 33",
            nv12_format(out_epoch, 320, 240, 33),
        ),
        (
            "FORMAT colorspace 99",
            Format {
                colorspace: 99,
                ..nv12_format(out_epoch, 320, 240, 2)
            },
        ),
    ];
    for (name, f) in bad_formats {
        r.expect_err(name, d.send(&format_msg(session, f)), Errno::EINVAL);
    }
    r.expect_err(
        "FORMAT reserved set",
        d.write(&patched(
            &format_msg(session, nv12_format(out_epoch, 320, 240, 2)),
            72,
            1,
        )),
        Errno::EINVAL,
    );
    r.expect_err(
        "FORMAT future epoch",
        d.send(&format_msg(
            session,
            nv12_format(out_epoch + 1, 320, 240, 2),
        )),
        Errno::EINVAL,
    );

    let good = format_msg(session, nv12_format(out_epoch, 320, 240, 3));
    r.expect("FORMAT valid", d.send(&good), Ok(MSG_SIZE));
    let ev = c.event(WAIT);
    r.check(
        "client sees SOURCE_CHANGE",
        matches!(ev, Some(Event::SrcChangeEvent(_))),
        format!("{ev:?}"),
    );
    let min = ioctl::g_ctrl(&c.dev, bindings::V4L2_CID_MIN_BUFFERS_FOR_CAPTURE);
    r.check(
        "MIN_BUFFERS_FOR_CAPTURE follows FORMAT",
        matches!(min, Ok(3)),
        format!("{min:?}"),
    );
    r.expect("same FORMAT again", d.send(&good), Ok(MSG_SIZE));
    let ev = c.event(Duration::from_millis(100));
    r.check(
        "no SOURCE_CHANGE for an unchanged FORMAT",
        ev.is_none(),
        format!("{ev:?}"),
    );

    r.expect(
        "BITSTREAM_DONE valid",
        d.send(&bitstream_done(session, 0, out_epoch, 0)),
        Ok(MSG_SIZE),
    );
    // the driver's last OUTPUT buffer waits for CAPTURE to stream (an empty
    // OUTPUT queue without CAPTURE streaming makes poll() report EPOLLERR)
    let b = c
        .dqbuf(OUT_Q, Duration::from_millis(200))
        .map(|b| (b.index(), b.has_error()));
    r.check(
        "OUTPUT 0 parked while CAPTURE is not streaming",
        b == Err(Errno::EAGAIN),
        format!("{b:?}"),
    );
    r.expect_err(
        "BITSTREAM_DONE twice",
        d.send(&bitstream_done(session, 0, out_epoch, 0)),
        Errno::EINVAL,
    );

    // a batch stops at the first bad message and reports what it took
    c.qbuf_out(1, 32, 2).map_err(v4l2_err("QBUF(OUTPUT 1)"))?;
    c.qbuf_out(2, 32, 3).map_err(v4l2_err("QBUF(OUTPUT 2)"))?;
    wait_bitstream(d, session, 1).context("no BITSTREAM for OUTPUT 1")?;
    wait_bitstream(d, session, 2).context("no BITSTREAM for OUTPUT 2")?;
    let mut batch = bitstream_done(session, 1, out_epoch, 0).encode().to_vec();
    batch.extend_from_slice(&bitstream_done(session, 7, out_epoch, 0).encode());
    r.expect(
        "batch [good, bad] takes the good one",
        d.write(&batch),
        Ok(MSG_SIZE),
    );
    r.expect(
        "BITSTREAM_DONE with ERROR flag",
        d.send(&bitstream_done(
            session,
            2,
            out_epoch,
            uapi::DAEDALUS_BITSTREAM_F_ERROR,
        )),
        Ok(MSG_SIZE),
    );
    // 1 was done while 2 was still the daemon's: 0 then 1 go back, 2 is parked
    let b0 = c.dqbuf(OUT_Q, WAIT).map(|b| (b.index(), b.has_error()));
    let b1 = c.dqbuf(OUT_Q, WAIT).map(|b| (b.index(), b.has_error()));
    let b2 = c
        .dqbuf(OUT_Q, Duration::from_millis(200))
        .map(|b| (b.index(), b.has_error()));
    r.check(
        "client gets OUTPUT 0 and 1 back in order, 2 parked",
        b0 == Ok((0, false)) && b1 == Ok((1, false)) && b2 == Err(Errno::EAGAIN),
        format!("{b0:?} {b1:?} {b2:?}"),
    );

    // seek: the daemon's answer about a taken-back buffer is a stale race
    c.qbuf_out(3, 32, 4).map_err(v4l2_err("QBUF(OUTPUT 3)"))?;
    wait_bitstream(d, session, 3).context("no BITSTREAM for OUTPUT 3")?;
    c.streamoff(OUT_Q).map_err(v4l2_err("STREAMOFF(OUTPUT)"))?;
    let flush = d.take(WAIT, |m| match m.body {
        KernelBody::Flush { epoch } if m.session == session => Some(epoch),
        _ => None,
    });
    r.check(
        "STREAMOFF(OUTPUT) sends FLUSH with a new epoch",
        flush == Some(out_epoch + 1),
        format!("{flush:?}"),
    );
    r.expect(
        "stale BITSTREAM_DONE accepted silently",
        d.send(&bitstream_done(session, 3, out_epoch, 0)),
        Ok(MSG_SIZE),
    );
    r.expect(
        "stale FORMAT accepted silently",
        d.send(&format_msg(session, nv12_format(out_epoch, 64, 64, 2))),
        Ok(MSG_SIZE),
    );
    r.expect_err(
        "GET_BUF_FD after take-back",
        gbf(&d.chan, &s, Queue::Output, 3, out_gen),
        Errno::ESTALE,
    );
    s.out_epoch = flush.unwrap_or(out_epoch + 1);
    c.streamon(OUT_Q)
        .map_err(v4l2_err("STREAMON(OUTPUT) after seek"))?;
    Ok(s)
}

fn capture_cases(
    r: &mut Report,
    d: &mut FakeDaemon,
    c: &mut Client,
    mut s: SessionView,
) -> Result<SessionView> {
    let session = s.session;
    // STREAMOFF(OUTPUT) took the parked OUTPUT 2 back (vb2 warns if a
    // buffer stays active); now one parks until CAPTURE streams
    c.qbuf_out(0, 32, 5).map_err(v4l2_err("QBUF(OUTPUT 0)"))?;
    wait_bitstream(d, session, 0).context("no BITSTREAM for OUTPUT 0 after the seek")?;
    r.expect(
        "BITSTREAM_DONE with ERROR before CAPTURE streams",
        d.send(&bitstream_done(
            session,
            0,
            s.out_epoch,
            uapi::DAEDALUS_BITSTREAM_F_ERROR,
        )),
        Ok(MSG_SIZE),
    );
    c.setup_capture(2)?;
    c.qbuf_cap(0).map_err(v4l2_err("QBUF(CAPTURE 0)"))?;
    c.qbuf_cap(1).map_err(v4l2_err("QBUF(CAPTURE 1)"))?;
    let b = c
        .dqbuf(OUT_Q, Duration::from_millis(200))
        .map(|b| (b.index(), b.has_error()));
    r.check(
        "OUTPUT 0 parked until STREAMON(CAPTURE)",
        b == Err(Errno::EAGAIN),
        format!("{b:?}"),
    );
    c.streamon(CAP_Q).map_err(v4l2_err("STREAMON(CAPTURE)"))?;
    let b = c.dqbuf(OUT_Q, WAIT).map(|b| (b.index(), b.has_error()));
    r.check(
        "client gets the parked OUTPUT 0 with ERROR at STREAMON(CAPTURE)",
        b == Ok((0, true)),
        format!("{b:?}"),
    );
    let (cap_epoch, cap_gen, cap_len) =
        wait_capture(d, session, 0).context("no CAPTURE for CAPTURE 0")?;
    wait_capture(d, session, 1).context("no CAPTURE for CAPTURE 1")?;
    r.check(
        "CAPTURE length holds 320x240 NV12",
        cap_len >= 320 * 240 * 3 / 2,
        format!("{cap_len}"),
    );
    s.cap_epoch = cap_epoch;
    s.cap_gen = cap_gen;
    s.cap_len = cap_len;

    let got = d.chan.get_buf_fd(buf_ref(&s, Queue::Capture, 0, cap_gen));
    r.check(
        "GET_BUF_FD owned CAPTURE buffer",
        matches!(&got, Ok((_, l)) if *l == cap_len),
        format!("{:?}", got.as_ref().map(|(_, l)| *l)),
    );
    drop(got);

    let fd = |i, f, used| frame_done(session, i, cap_epoch, f, used);
    let mut two_planes = fd(0, 0, [16, 16, 0]);
    if let DaemonBody::FrameDone(f) = &mut two_planes.body {
        f.num_planes = 2;
    }
    r.expect_err(
        "FRAME_DONE num_planes 2 for NV12",
        d.send(&two_planes),
        Errno::EINVAL,
    );
    r.expect_err(
        "FRAME_DONE bytesused > plane",
        d.send(&fd(0, 0, [cap_len + 1, 0, 0])),
        Errno::EINVAL,
    );
    r.expect_err(
        "FRAME_DONE bytesused beyond num_planes",
        d.send(&fd(0, 0, [16, 16, 0])),
        Errno::EINVAL,
    );
    r.expect_err(
        "FRAME_DONE DRAIN_END while not draining",
        d.send(&fd(0, uapi::DAEDALUS_FRAME_F_DRAIN_END, [0; 3])),
        Errno::EINVAL,
    );
    r.expect_err(
        "FRAME_DONE CHANGE_END without new FORMAT",
        d.send(&fd(0, uapi::DAEDALUS_FRAME_F_CHANGE_END, [0; 3])),
        Errno::EINVAL,
    );
    r.expect_err(
        "FRAME_DONE DRAIN_END|CHANGE_END",
        d.send(&fd(
            0,
            uapi::DAEDALUS_FRAME_F_DRAIN_END | uapi::DAEDALUS_FRAME_F_CHANGE_END,
            [0; 3],
        )),
        Errno::EINVAL,
    );
    r.expect_err(
        "FRAME_DONE unknown flag",
        d.send(&fd(0, 0x10, [0; 3])),
        Errno::EINVAL,
    );
    r.expect_err(
        "FRAME_DONE reserved set",
        d.write(&patched(&fd(0, 0, [0; 3]), 52, 1)),
        Errno::EINVAL,
    );
    r.expect_err(
        "FRAME_DONE index 5",
        d.send(&fd(5, 0, [0; 3])),
        Errno::EINVAL,
    );
    r.expect_err(
        "FRAME_DONE future epoch",
        d.send(&frame_done(session, 0, cap_epoch + 1, 0, [0; 3])),
        Errno::EINVAL,
    );

    let frame = 320 * 240 * 3 / 2;
    r.expect(
        "FRAME_DONE valid",
        d.send(&fd(0, uapi::DAEDALUS_FRAME_F_KEYFRAME, [frame, 0, 0])),
        Ok(MSG_SIZE),
    );
    let b = c.dqbuf(CAP_Q, WAIT);
    let ok = matches!(&b, Ok(b) if b.index() == 0 && !b.has_error()
        && *b.get_first_plane().bytesused == frame
        && b.timestamp().tv_sec == 1
        && b.flags().bits() & bindings::V4L2_BUF_FLAG_KEYFRAME != 0);
    r.check(
        "client gets the frame (bytesused, timestamp, KEYFRAME)",
        ok,
        format!("{:?}", b.map(|b| (b.index(), b.timestamp(), b.flags()))),
    );
    r.expect_err(
        "FRAME_DONE twice",
        d.send(&fd(0, 0, [frame, 0, 0])),
        Errno::EINVAL,
    );
    r.expect(
        "FRAME_DONE with ERROR flag",
        d.send(&fd(1, uapi::DAEDALUS_FRAME_F_ERROR, [0; 3])),
        Ok(MSG_SIZE),
    );
    let b = c.dqbuf(CAP_Q, WAIT).map(|b| (b.index(), b.has_error()));
    r.check(
        "client gets CAPTURE 1 with ERROR",
        b == Ok((1, true)),
        format!("{b:?}"),
    );

    // drain
    c.qbuf_cap(0).map_err(v4l2_err("QBUF(CAPTURE 0)"))?;
    c.qbuf_cap(1).map_err(v4l2_err("QBUF(CAPTURE 1)"))?;
    wait_capture(d, session, 0).context("no CAPTURE 0 again")?;
    wait_capture(d, session, 1).context("no CAPTURE 1 again")?;
    r.expect(
        "DECODER_CMD STOP",
        errno_outcome(c.decoder_cmd(DecoderCmd::stop())),
        Ok(0),
    );
    let drain = d.take(WAIT, |m| {
        matches!(m.body, KernelBody::Drain).then_some(m.session)
    });
    r.check(
        "daemon gets DRAIN",
        drain == Some(session),
        format!("{drain:?}"),
    );
    r.expect_err(
        "second DECODER_CMD STOP while draining",
        errno_outcome(c.decoder_cmd(DecoderCmd::stop())),
        Errno::EBUSY,
    );
    r.expect(
        "FRAME_DONE DRAIN_END (empty)",
        d.send(&fd(0, uapi::DAEDALUS_FRAME_F_DRAIN_END, [0; 3])),
        Ok(MSG_SIZE),
    );
    let b = c.dqbuf(CAP_Q, WAIT);
    r.check(
        "client gets LAST",
        matches!(&b, Ok(b) if b.is_last()),
        format!("{:?}", b.map(|b| (b.index(), b.flags()))),
    );
    let ev = c.event(WAIT);
    r.check(
        "client sees EOS",
        matches!(ev, Some(Event::Eos)),
        format!("{ev:?}"),
    );
    let b = c.dqbuf(CAP_Q, Duration::from_millis(50)).map(|b| b.index());
    r.check(
        "DQBUF after LAST gives EPIPE",
        b == Err(Errno::EPIPE),
        format!("{b:?}"),
    );
    r.expect_err(
        "DRAIN_END after the drain ended",
        d.send(&fd(1, uapi::DAEDALUS_FRAME_F_DRAIN_END, [0; 3])),
        Errno::EINVAL,
    );
    r.expect(
        "DECODER_CMD START",
        errno_outcome(c.decoder_cmd(DecoderCmd::start())),
        Ok(0),
    );

    // resolution change
    let bigger = format_msg(session, nv12_format(s.out_epoch, 640, 480, 4));
    r.expect("FORMAT with a new size", d.send(&bigger), Ok(MSG_SIZE));
    let ev = c.event(WAIT);
    r.check(
        "client sees SOURCE_CHANGE for the new size",
        matches!(ev, Some(Event::SrcChangeEvent(_))),
        format!("{ev:?}"),
    );
    r.expect(
        "FRAME_DONE CHANGE_END",
        d.send(&fd(1, uapi::DAEDALUS_FRAME_F_CHANGE_END, [0; 3])),
        Ok(MSG_SIZE),
    );
    let b = c.dqbuf(CAP_Q, WAIT);
    r.check(
        "client gets LAST before the change",
        matches!(&b, Ok(b) if b.is_last() && b.index() == 1),
        format!("{:?}", b.map(|b| (b.index(), b.flags()))),
    );

    c.streamoff(CAP_Q).map_err(v4l2_err("STREAMOFF(CAPTURE)"))?;
    let reset = d.take(WAIT, |m| match m.body {
        KernelBody::CaptureReset { epoch } if m.session == session => Some(epoch),
        _ => None,
    });
    r.check(
        "STREAMOFF(CAPTURE) sends CAPTURE_RESET with a new epoch",
        reset == Some(cap_epoch + 1),
        format!("{reset:?}"),
    );
    r.expect(
        "stale FRAME_DONE accepted silently",
        d.send(&fd(0, 0, [0; 3])),
        Ok(MSG_SIZE),
    );
    s.cap_epoch = reset.unwrap_or(cap_epoch + 1);
    Ok(s)
}

fn error_cases(r: &mut Report, d: &mut FakeDaemon, c: &Client, s: SessionView) {
    let session = s.session;
    let err = DaemonMsg {
        session,
        body: DaemonBody::SessionError { error: -22 },
    };
    r.expect_err(
        "SESSION_ERROR reserved set",
        d.write(&patched(&err, 24, 1)),
        Errno::EINVAL,
    );
    r.expect("SESSION_ERROR", d.send(&err), Ok(MSG_SIZE));
    let closed = d.take(WAIT, |m| {
        matches!(m.body, KernelBody::SessionClose).then_some(m.session)
    });
    r.check(
        "kernel closes the failed session",
        closed == Some(session),
        format!("{closed:?}"),
    );
    let q = c.qbuf_out(0, 16, 9);
    r.check(
        "client QBUF on the failed session gets EIO",
        q == Err(Errno::EIO),
        format!("{q:?}"),
    );
    r.expect(
        "reply for a closed session accepted silently",
        d.send(&bitstream_done(session, 0, s.out_epoch, 0)),
        Ok(MSG_SIZE),
    );
    let g = chan_outcome(
        d.chan.get_buf_fd(buf_ref(&s, Queue::Output, 0, s.out_gen)),
        |_| 0,
    );
    r.expect_err("GET_BUF_FD for a closed session", g, Errno::ESTALE);
}

/// A fresh session with OUTPUT 0 handed to the daemon; and its OUTPUT epoch.
fn busy_session(args: &Args, d: &mut FakeDaemon) -> Result<(Client, u32, u32)> {
    let mut c = Client::open(args)?;
    c.setup_output(2)?;
    c.qbuf_out(0, 16, 1).map_err(v4l2_err("QBUF(OUTPUT 0)"))?;
    c.streamon(OUT_Q).map_err(v4l2_err("STREAMON(OUTPUT)"))?;
    let session = wait_open(d).context("no SESSION_OPEN")?;
    let (epoch, ..) = wait_bitstream(d, session, 0).context("no BITSTREAM")?;
    Ok((c, session, epoch))
}

fn stall_case(r: &mut Report, args: &Args, d: &mut FakeDaemon) -> Result<()> {
    flow::with_param(TIMEOUT_PARAM, "300", || {
        let (c, session, _) = busy_session(args, d)?;
        let start = Instant::now();
        // no FORMAT yet and bitstream held: the daemon is the one stuck
        let closed = d.take(Duration::from_secs(3), |m| {
            matches!(m.body, KernelBody::SessionClose).then_some(m.session)
        });
        let after = start.elapsed();
        r.check(
            "silent daemon: session closed after daemon_timeout_ms",
            closed == Some(session) && after >= Duration::from_millis(250),
            format!("{closed:?} after {} ms", after.as_millis()),
        );
        let b = c.dqbuf(OUT_Q, WAIT).map(|b| (b.index(), b.has_error()));
        r.check(
            "client gets its OUTPUT buffer back with ERROR (or EIO)",
            b == Ok((0, true)) || b == Err(Errno::EIO),
            format!("{b:?}"),
        );
        Ok(())
    })
}

fn death_case(r: &mut Report, args: &Args, mut d: FakeDaemon) -> Result<FakeDaemon> {
    let (old_client, _, _) = busy_session(args, &mut d)?;
    // done with by the daemon, parked in the kernel (CAPTURE not streaming)
    let (parked_client, parked, epoch) = busy_session(args, &mut d)?;
    r.expect(
        "BITSTREAM_DONE parks the only OUTPUT buffer",
        d.send(&bitstream_done(parked, 0, epoch, 0)),
        Ok(MSG_SIZE),
    );
    drop(d);
    let b = old_client
        .dqbuf(OUT_Q, WAIT)
        .map(|b| (b.index(), b.has_error()));
    r.check(
        "daemon gone: pending OUTPUT completes with ERROR (or EIO)",
        b == Ok((0, true)) || b == Err(Errno::EIO),
        format!("{b:?}"),
    );
    let b = parked_client
        .dqbuf(OUT_Q, WAIT)
        .map(|b| (b.index(), b.has_error()));
    r.check(
        "daemon gone: the parked OUTPUT completes with ERROR (or EIO)",
        b == Ok((0, true)) || b == Err(Errno::EIO),
        format!("{b:?}"),
    );
    drop(parked_client);
    let q = old_client.qbuf_out(1, 16, 2);
    r.check(
        "daemon gone: QBUF gets EIO",
        q == Err(Errno::EIO),
        format!("{q:?}"),
    );

    let chan = Channel::open(&args.channel).context("reopening the channel")?;
    chan.hello(&CODECS).context("HELLO of the new daemon")?;
    let mut d = FakeDaemon {
        chan,
        pending: Vec::new(),
    };
    // dev-decoder.rst: both queues stopped (CAPTURE never streamed here),
    // Initialization again: the new daemon gets a new session
    let restart = old_client
        .streamoff(OUT_Q)
        .and_then(|()| old_client.qbuf_out(0, 16, 3))
        .and_then(|()| old_client.streamon(OUT_Q));
    let reopened = restart.is_ok().then(|| wait_open(&mut d)).flatten();
    r.check(
        "old client recovers on the new daemon by STREAMOFF + STREAMON",
        reopened.is_some(),
        format!("{restart:?}, open {reopened:?}"),
    );
    drop(old_client);
    let fresh = busy_session(args, &mut d);
    r.check(
        "new daemon serves a new session",
        fresh.is_ok(),
        format!("{:?}", fresh.as_ref().map(|(_, s, _)| *s)),
    );
    drop(fresh);
    d.pending.clear();
    Ok(d)
}

fn run(args: &Args, r: &mut Report) -> Result<()> {
    let mut d = channel_cases(r, args)?;
    let mut c = Client::open(args)?;
    let s = output_cases(r, &mut d, &mut c)?;
    let s = capture_cases(r, &mut d, &mut c, s)?;
    error_cases(r, &mut d, &c, s);
    drop(c);
    if !args.no_stall {
        stall_case(r, args, &mut d)?;
    }
    let d = death_case(r, args, d)?;
    flow::cases(r, args, d)
}

fn main() -> ExitCode {
    let args = Args::parse();
    let only = match (args.flood, args.export_rmmod) {
        (Some(seconds), _) => Some(flow::flood(&args, seconds)),
        (None, true) => Some(flow::export_rmmod(&args)),
        (None, false) => None,
    };
    if let Some(result) = only {
        return match result {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                println!("FAIL: {e:#}");
                ExitCode::FAILURE
            }
        };
    }
    let mut r = Report {
        passed: 0,
        failed: 0,
    };
    let result = run(&args, &mut r);
    if let Err(e) = &result {
        println!("ABORT: {e:#}");
    }
    println!("{} passed, {} failed", r.passed, r.failed);
    if result.is_ok() && r.failed == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}
