//! The decode loop of a V4L2 stateful decoder (dev-decoder.rst), single
//! threaded around poll(): bitstream keeps flowing into the OUTPUT ring while
//! frames come back on the CAPTURE ring; source-change events set up (and,
//! mid-stream, re-set up) CAPTURE; `--seek` is STREAMOFF/STREAMON of OUTPUT;
//! the end is a drain (V4L2_DEC_CMD_STOP -> LAST buffer -> EPIPE).
//!
//! v4l2r's threaded `Decoder` is not used: it fixes the CAPTURE buffer count
//! at 4 (ignoring V4L2_CID_MIN_BUFFERS_FOR_CAPTURE), panics on driver errors
//! and hides the per-buffer timing a benchmark needs. The ioctl layer of
//! v4l2r gives us everything with full control.

use std::collections::{HashMap, VecDeque};
use std::fs::File;
use std::os::fd::AsFd;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use thiserror::Error;
use v4l2r::device::Device;
use v4l2r::ioctl::{
    self, DecoderCmd, DqBufIoctlError, Event, EventType, PlaneMapping, QBufPlane, QBuffer,
    QueryBuffer, SelectionTarget, SelectionType, SrcChanges, SubscribeEventFlags, V4l2Buffer,
};
use v4l2r::memory::{DmaBufHandle, MemoryType, MmapHandle};
use v4l2r::nix::errno::Errno;
use v4l2r::nix::poll::{poll, PollFd, PollFlags, PollTimeout};
use v4l2r::{bindings, Format, PixelFormat, PlaneLayout, QueueType};

use crate::device::{fourcc_list, DecoderInfo};
use crate::frame::{FrameError, FrameLayout, RawFormat, Visible};
use crate::stream::Stream;
use crate::sys;

pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// Where buffers come from (CAPTURE, and OUTPUT with `output_memory`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CaptureMemory {
    /// The driver allocates them (V4L2_MEMORY_MMAP).
    Mmap,
    /// We allocate dma-bufs from this dma-heap (V4L2_MEMORY_DMABUF).
    DmaHeap(PathBuf),
    /// We allocate dma-bufs from memfds through /dev/udmabuf.
    Udmabuf,
}

#[derive(Debug, Clone)]
pub struct DecodeConfig {
    /// CAPTURE format; None keeps the decoder's choice if the tools can read it.
    pub format: Option<RawFormat>,
    pub capture_memory: CaptureMemory,
    /// OUTPUT (bitstream) buffers: MMAP, or dma-bufs from a heap/udmabuf.
    pub output_memory: CaptureMemory,
    /// DMABUF queues only: every QBUF hands the driver another dma-buf than
    /// the index had before (twice as many are allocated, used in turn), as
    /// clients importing from their own pools do. The memory holds zeros or
    /// an older frame, so a frame written into the buffer the index had
    /// before shows up as a mismatch. (Not filled with a pattern: a decoder
    /// may still read a dequeued CAPTURE buffer as a reference.)
    pub swap_dmabufs: bool,
    pub output_buffers: u32,
    /// CAPTURE buffers on top of V4L2_CID_MIN_BUFFERS_FOR_CAPTURE.
    pub extra_capture_buffers: u32,
    /// Stop after this many frames.
    pub max_frames: Option<u64>,
    /// Feed the stream this many times back to back.
    pub loops: u32,
    /// Seek when this access unit is reached: resume at the next keyframe.
    pub seek: Option<usize>,
    /// Give up when the device does nothing for this long.
    pub stall_timeout: Duration,
    /// Print progress lines to stderr every so often.
    pub progress: bool,
}

impl Default for DecodeConfig {
    fn default() -> Self {
        DecodeConfig {
            format: None,
            capture_memory: CaptureMemory::Mmap,
            output_memory: CaptureMemory::Mmap,
            swap_dmabufs: false,
            output_buffers: 8,
            extra_capture_buffers: 4,
            max_frames: None,
            loops: 1,
            seek: None,
            stall_timeout: Duration::from_secs(30),
            progress: false,
        }
    }
}

/// One decoded frame handed to a [`FrameSink`].
pub struct DecodedFrame<'a> {
    /// Output order, from 0.
    pub index: u64,
    /// Which pass of `--loop` it belongs to.
    pub pass: u32,
    /// Access unit (within the pass) whose timestamp it carries.
    pub unit: usize,
    pub layout: &'a FrameLayout,
    /// The visible rectangle, packed (see [`FrameLayout::pack`]).
    pub packed: &'a [u8],
    /// The driver flagged the buffer with V4L2_BUF_FLAG_ERROR.
    pub error: bool,
    /// From queueing the access unit to dequeueing this frame.
    pub latency: Option<Duration>,
}

pub trait FrameSink {
    fn frame(&mut self, frame: &DecodedFrame) -> Result<(), BoxError>;
    /// A seek dropped the frames before access unit `resume_unit`.
    fn seeked(&mut self, _resume_unit: usize) -> Result<(), BoxError> {
        Ok(())
    }
}

#[derive(Debug, Default, Clone)]
pub struct DecodeReport {
    pub frames: u64,
    pub error_frames: u64,
    /// Frames dropped because they came from before a seek.
    pub dropped_before_seek: u64,
    pub units_queued: u64,
    pub output_errors: u64,
    pub latencies: Vec<Duration>,
    pub elapsed: Duration,
    /// Every CAPTURE set-up: the first one, then each resolution change.
    pub layouts: Vec<FrameLayout>,
    pub capture_buffers: u32,
    pub seek_resumed_at: Option<usize>,
    /// QBUFs that gave an index another dma-buf than before (`swap_dmabufs`).
    pub dmabuf_swaps: u64,
}

#[derive(Debug, Error)]
pub enum DecodeError {
    #[error("{what} failed: {cause}")]
    Ioctl { what: &'static str, cause: BoxError },
    #[error(
        "access unit {unit} is {len} bytes but OUTPUT buffers hold {capacity}; \
         the decoder refused a larger sizeimage"
    )]
    UnitTooLarge {
        unit: usize,
        len: usize,
        capacity: usize,
    },
    #[error("the decoder does not offer {wanted} for this stream (it offers: {offered})")]
    CaptureFormat { wanted: String, offered: String },
    #[error("{0} needs the multi-planar API, which this device does not use")]
    NeedsMplane(RawFormat),
    #[error("the decoder did nothing for {0:?} ({1}); it may be stalled (is the daemon running?)")]
    Stalled(Duration, String),
    #[error("the decoder reported a fatal error on its queues (POLLERR)")]
    QueueError,
    #[error("cannot allocate a {len}-byte capture dma-buf from {source_name}: {errno}")]
    DmaBuf {
        len: usize,
        source_name: String,
        errno: Errno,
    },
    #[error("cannot open {path}: {cause}")]
    DmaBufDevice {
        path: PathBuf,
        cause: std::io::Error,
    },
    #[error("--seek {0}: no keyframe at or after access unit {0}")]
    NoKeyframe(usize),
    #[error("decoded frame has an unreadable layout: {0}")]
    Frame(#[from] FrameError),
    #[error("{0}")]
    Sink(BoxError),
}

fn ioctl_err<E: std::error::Error + Send + Sync + 'static>(
    what: &'static str,
) -> impl FnOnce(E) -> DecodeError {
    move |e| {
        // The errnos a decoder without its backend gives, said in words.
        let text = e.to_string();
        let hint = if text.contains("ENODEV") {
            " (the decoder has no backend: is daedalus-v4l2d running?)"
        } else if text.contains("EIO") {
            " (the decoder failed underneath: did its daemon die?)"
        } else {
            ""
        };
        DecodeError::Ioctl {
            what,
            cause: format!("{text}{hint}").into(),
        }
    }
}

/// Timestamps carry the global access unit number (pass * units + unit).
fn unit_timestamp(n: u64) -> (i64, i64) {
    ((n / 1_000_000) as i64, (n % 1_000_000) as i64)
}

fn timestamp_unit(buf: &V4l2Buffer) -> u64 {
    let ts = buf.timestamp();
    (ts.tv_sec as u64)
        .wrapping_mul(1_000_000)
        .wrapping_add(ts.tv_usec as u64)
}

struct OutputRing {
    queue: QueueType,
    memory: MemoryType,
    maps: Vec<PlaneMapping>,
    /// DMABUF memory only: the dma-buf behind each map.
    dmabufs: Vec<File>,
    /// `swap_dmabufs`: dma-bufs not queued now, next in line first.
    spare: VecDeque<(PlaneMapping, File)>,
    free: Vec<u32>,
    queued: usize,
}

struct CaptureBuffer {
    maps: Vec<PlaneMapping>,
    /// DMABUF memory only: the dma-bufs behind the planes.
    dmabufs: Vec<File>,
    queued: bool,
}

struct CaptureRing {
    queue: QueueType,
    memory: MemoryType,
    layout: FrameLayout,
    buffers: Vec<CaptureBuffer>,
    /// `swap_dmabufs`: plane sets not queued now, next in line first.
    spare: VecDeque<CaptureBuffer>,
    /// LAST seen (or DQBUF gave EPIPE): nothing more until re-set-up.
    ended: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Drain {
    NotYet,
    Sent,
    Done,
}

pub struct Decoder<'s, S: FrameSink> {
    device: Device,
    info: DecoderInfo,
    stream: &'s Stream,
    config: DecodeConfig,
    sink: S,
    output: OutputRing,
    capture: Option<CaptureRing>,
    /// Next access unit to queue, its pass, and whether all passes are fed.
    next_unit: usize,
    pass: u32,
    fed_all: bool,
    drain: Drain,
    resolution_change_pending: bool,
    seek_done: bool,
    /// Frames from access units below this are dropped (after a seek).
    seek_floor: u64,
    queued_at: HashMap<u64, Instant>,
    packed: Vec<u8>,
    report: DecodeReport,
    dma_source: Option<File>,
    last_progress: Instant,
}

impl<'s, S: FrameSink> Decoder<'s, S> {
    /// Sets up the OUTPUT side and subscribes to events; CAPTURE waits for
    /// the source-change event.
    pub fn new(
        mut device: Device,
        info: DecoderInfo,
        stream: &'s Stream,
        config: DecodeConfig,
        sink: S,
    ) -> Result<Self, DecodeError> {
        if config.format == Some(RawFormat::Nv12m) && !info.multiplanar {
            return Err(DecodeError::NeedsMplane(RawFormat::Nv12m));
        }
        let queue = info.output_queue();
        // Keep the driver's size unless the container knows better: Annex-B
        // has no size outside the bitstream, and 0x0 may be refused.
        let current: Format = ioctl::g_fmt(&device, queue).map_err(ioctl_err("G_FMT(OUTPUT)"))?;
        let (width, height) = stream.coded_size.unwrap_or((current.width, current.height));
        // Room for the largest access unit, at least 1 MiB.
        let wanted = (stream.max_unit_len() + 4095).max(1 << 20) as u32;
        let format = Format {
            width,
            height,
            pixelformat: PixelFormat::from_fourcc(&stream.codec.fourcc()),
            plane_fmt: vec![PlaneLayout {
                sizeimage: wanted,
                bytesperline: 0,
            }],
        };
        let applied: Format =
            ioctl::s_fmt(&mut device, (queue, &format)).map_err(ioctl_err("S_FMT(OUTPUT)"))?;
        if applied.pixelformat != format.pixelformat {
            return Err(DecodeError::CaptureFormat {
                wanted: format!("coded format {}", stream.codec),
                offered: fourcc_list(&info.coded_formats),
            });
        }
        let output_source = open_source(&config.output_memory)?;
        let memory = match output_source {
            None => MemoryType::Mmap,
            Some(_) => MemoryType::DmaBuf,
        };
        let count: usize = ioctl::reqbufs(
            &device,
            queue,
            memory,
            config.output_buffers.max(1),
            ioctl::MemoryConsistency::empty(),
        )
        .map_err(ioctl_err("REQBUFS(OUTPUT)"))?;
        let mut maps = Vec::with_capacity(count);
        let mut dmabufs = Vec::new();
        let mut spare = VecDeque::new();
        if let Some(source) = &output_source {
            let len = applied.plane_fmt.first().map_or(wanted, |p| p.sizeimage) as usize;
            let sets = if config.swap_dmabufs {
                2 * count
            } else {
                count
            };
            for i in 0..sets {
                let (file, map) = alloc_dmabuf(source, &config.output_memory, len)?;
                if i < count {
                    maps.push(map);
                    dmabufs.push(file);
                } else {
                    spare.push_back((map, file));
                }
            }
        } else {
            for index in 0..count {
                let qb: QueryBuffer = ioctl::querybuf(&device, queue, index)
                    .map_err(ioctl_err("QUERYBUF(OUTPUT)"))?;
                let plane = qb.planes.first().ok_or_else(|| DecodeError::Ioctl {
                    what: "QUERYBUF(OUTPUT)",
                    cause: "buffer without planes".into(),
                })?;
                maps.push(
                    ioctl::mmap(&device, plane.mem_offset, plane.length)
                        .map_err(ioctl_err("mmap(OUTPUT)"))?,
                );
            }
        }
        let capacity = maps.iter().map(|m| m.len()).min().unwrap_or(0);
        if let Some((unit, len)) = stream
            .units
            .iter()
            .enumerate()
            .map(|(i, u)| (i, u.range.len()))
            .find(|&(_, len)| len > capacity)
        {
            return Err(DecodeError::UnitTooLarge {
                unit,
                len,
                capacity,
            });
        }
        ioctl::subscribe_event(
            &device,
            EventType::SourceChange(0),
            SubscribeEventFlags::empty(),
        )
        .map_err(ioctl_err("SUBSCRIBE_EVENT(SOURCE_CHANGE)"))?;
        // EOS is optional for stateful decoders; LAST is what we rely on.
        let _ = ioctl::subscribe_event(&device, EventType::Eos, SubscribeEventFlags::empty());
        let dma_source = open_source(&config.capture_memory)?;
        Ok(Decoder {
            device,
            info,
            stream,
            sink,
            output: OutputRing {
                queue,
                memory,
                free: (0..count as u32).rev().collect(),
                maps,
                dmabufs,
                spare,
                queued: 0,
            },
            capture: None,
            next_unit: 0,
            pass: 0,
            fed_all: false,
            drain: Drain::NotYet,
            resolution_change_pending: false,
            seek_done: config.seek.is_none(),
            // Frames before the resume point are dropped, including those
            // that come out before the seek is issued.
            seek_floor: match config.seek {
                Some(target) => stream
                    .next_keyframe(target)
                    .ok_or(DecodeError::NoKeyframe(target))? as u64,
                None => 0,
            },
            queued_at: HashMap::new(),
            packed: Vec::new(),
            report: DecodeReport::default(),
            dma_source,
            last_progress: Instant::now(),
            config,
        })
    }

    /// Decodes everything; returns the sink and what happened.
    pub fn run(mut self) -> Result<(DecodeReport, S), DecodeError> {
        let start = Instant::now();
        ioctl::streamon(&self.device, self.output.queue).map_err(ioctl_err("STREAMON(OUTPUT)"))?;
        let mut idle_since = Instant::now();
        while self.drain != Drain::Done {
            self.feed()?;
            self.maybe_start_drain()?;
            if self.drain == Drain::Done {
                break;
            }
            let mut flags = PollFlags::POLLPRI;
            if self.output.queued > 0 {
                flags |= PollFlags::POLLOUT;
            }
            if let Some(cap) = &self.capture {
                if !cap.ended && cap.buffers.iter().any(|b| b.queued) {
                    flags |= PollFlags::POLLIN;
                }
            }
            let revents = {
                let mut fds = [PollFd::new(self.device.as_fd(), flags)];
                let timeout =
                    PollTimeout::try_from(Duration::from_millis(500)).unwrap_or(PollTimeout::MAX);
                match poll(&mut fds, timeout) {
                    Ok(_) => fds[0].revents().unwrap_or(PollFlags::empty()),
                    Err(Errno::EINTR) => PollFlags::empty(),
                    Err(e) => return Err(ioctl_err("poll")(e)),
                }
            };
            if revents.is_empty() {
                if idle_since.elapsed() >= self.config.stall_timeout {
                    return Err(DecodeError::Stalled(
                        self.config.stall_timeout,
                        self.describe_state(),
                    ));
                }
                continue;
            }
            idle_since = Instant::now();
            if revents.contains(PollFlags::POLLERR)
                && !revents.intersects(PollFlags::POLLIN | PollFlags::POLLOUT | PollFlags::POLLPRI)
            {
                return Err(DecodeError::QueueError);
            }
            if revents.contains(PollFlags::POLLPRI) {
                self.handle_events()?;
                // The event came after the LAST buffer was already dequeued.
                if self.resolution_change_pending && self.capture.as_ref().is_some_and(|c| c.ended)
                {
                    self.reconfigure_capture()?;
                }
            }
            if revents.contains(PollFlags::POLLOUT) {
                self.dequeue_output()?;
            }
            if revents.contains(PollFlags::POLLIN) {
                self.dequeue_capture()?;
            }
            self.progress(start);
        }
        self.report.elapsed = start.elapsed();
        self.teardown();
        Ok((self.report, self.sink))
    }

    fn describe_state(&self) -> String {
        let capture = match &self.capture {
            None => "CAPTURE not set up (no source-change event yet)".to_string(),
            Some(c) => format!(
                "{} of {} CAPTURE buffers queued{}",
                c.buffers.iter().filter(|b| b.queued).count(),
                c.buffers.len(),
                if c.ended { ", LAST seen" } else { "" }
            ),
        };
        format!(
            "{} access units queued, {} frames out, {} OUTPUT buffers with the driver, {capture}, drain {:?}",
            self.report.units_queued, self.report.frames, self.output.queued, self.drain
        )
    }

    fn progress(&mut self, start: Instant) {
        if self.config.progress && self.last_progress.elapsed() >= Duration::from_secs(2) {
            self.last_progress = Instant::now();
            let secs = start.elapsed().as_secs_f64();
            eprintln!(
                "daedalus-decode: {} frames in {:.1} s ({:.1} fps), {} of {} access units queued",
                self.report.frames,
                secs,
                self.report.frames as f64 / secs.max(1e-9),
                self.report.units_queued,
                self.stream.units.len() as u64 * u64::from(self.config.loops.max(1)),
            );
        }
    }

    fn frames_wanted(&self) -> bool {
        self.config
            .max_frames
            .is_none_or(|max| self.report.frames < max)
    }

    /// Fills every free OUTPUT buffer with the next access units.
    fn feed(&mut self) -> Result<(), DecodeError> {
        while !self.fed_all {
            if !self.frames_wanted() {
                self.fed_all = true;
                break;
            }
            if !self.seek_done && self.pass == 0 && Some(self.next_unit) == self.config.seek {
                // Seek mid-stream, as a player does: once the decoder is
                // running (CAPTURE set up) and has taken the bitstream so far
                // or returned a frame. Until then, stop feeding.
                let running = self.capture.is_some()
                    && (self.output.queued == 0
                        || self.report.frames + self.report.dropped_before_seek > 0);
                if !running {
                    break;
                }
                self.seek()?;
            }
            if self.next_unit >= self.stream.units.len() {
                self.pass += 1;
                self.next_unit = 0;
                if self.pass >= self.config.loops.max(1) {
                    self.fed_all = true;
                    break;
                }
            }
            let Some(index) = self.output.free.pop() else {
                break;
            };
            let unit = self.stream.unit(self.next_unit);
            let global =
                u64::from(self.pass) * self.stream.units.len() as u64 + self.next_unit as u64;
            let (sec, usec) = unit_timestamp(global);
            let out = &mut self.output;
            let i = index as usize;
            if out.memory == MemoryType::Mmap {
                out.maps[i][..unit.len()].copy_from_slice(unit);
                let mut qbuf =
                    QBuffer::<MmapHandle>::new(out.queue, index).set_timestamp(sec, usec);
                qbuf.planes.push(QBufPlane::new(unit.len()));
                ioctl::qbuf::<_, ()>(&self.device, qbuf).map_err(ioctl_err("QBUF(OUTPUT)"))?;
            } else {
                if let Some((map, file)) = out.spare.pop_front() {
                    let old_map = std::mem::replace(&mut out.maps[i], map);
                    let old_file = std::mem::replace(&mut out.dmabufs[i], file);
                    out.spare.push_back((old_map, old_file));
                    self.report.dmabuf_swaps += 1;
                }
                let file = &out.dmabufs[i];
                sys::dma_buf_begin_write(file).map_err(ioctl_err("DMA_BUF_IOCTL_SYNC"))?;
                out.maps[i][..unit.len()].copy_from_slice(unit);
                sys::dma_buf_end_write(file).map_err(ioctl_err("DMA_BUF_IOCTL_SYNC"))?;
                let mut qbuf =
                    QBuffer::<DmaBufHandle<File>>::new(out.queue, index).set_timestamp(sec, usec);
                let mut plane = QBufPlane::new(unit.len());
                plane.0.m.fd = std::os::fd::AsRawFd::as_raw_fd(file);
                plane.0.length = out.maps[i].len() as u32;
                qbuf.planes.push(plane);
                ioctl::qbuf::<_, ()>(&self.device, qbuf).map_err(|e| DecodeError::Ioctl {
                    what: "QBUF(OUTPUT) of a dma-buf",
                    cause: format!("{e}{DMA_CONTIG_HINT}").into(),
                })?;
            }
            self.queued_at.insert(global, Instant::now());
            self.output.queued += 1;
            self.report.units_queued += 1;
            self.next_unit += 1;
        }
        Ok(())
    }

    /// STREAMOFF/STREAMON of OUTPUT, then resume at the next keyframe.
    fn seek(&mut self) -> Result<(), DecodeError> {
        let target = self.next_unit;
        let resume = self
            .stream
            .next_keyframe(target)
            .ok_or(DecodeError::NoKeyframe(target))?;
        ioctl::streamoff(&self.device, self.output.queue)
            .map_err(ioctl_err("STREAMOFF(OUTPUT) for seek"))?;
        self.output.free = (0..self.output.maps.len() as u32).rev().collect();
        self.output.queued = 0;
        ioctl::streamon(&self.device, self.output.queue)
            .map_err(ioctl_err("STREAMON(OUTPUT) after seek"))?;
        self.next_unit = resume;
        self.seek_done = true;
        self.report.seek_resumed_at = Some(resume);
        self.sink.seeked(resume).map_err(DecodeError::Sink)?;
        Ok(())
    }

    fn maybe_start_drain(&mut self) -> Result<(), DecodeError> {
        if !self.fed_all || self.drain != Drain::NotYet || self.resolution_change_pending {
            return Ok(());
        }
        let Some(capture) = &self.capture else {
            // Nothing decodable was seen yet: the source-change event will
            // come, or the stall timeout says why not.
            return Ok(());
        };
        if capture.ended {
            return Ok(());
        }
        match ioctl::decoder_cmd::<_, ()>(&self.device, DecoderCmd::stop()) {
            // EBUSY: the decoder kept an earlier drain across the CAPTURE
            // re-set-up; that one will end with LAST.
            Ok(())
            | Err(ioctl::IoctlConvertError::IoctlError(
                ioctl::DecoderCmdIoctlError::DrainInProgress,
            )) => {}
            Err(e) => return Err(ioctl_err("DECODER_CMD(STOP)")(e)),
        }
        self.drain = Drain::Sent;
        Ok(())
    }

    fn handle_events(&mut self) -> Result<(), DecodeError> {
        loop {
            match ioctl::dqevent::<Event>(&self.device) {
                Ok(Event::SrcChangeEvent(changes)) => {
                    if self.capture.is_none() {
                        self.setup_capture()?;
                    } else if changes.contains(SrcChanges::RESOLUTION) || changes.is_empty() {
                        // Frames of the old format are still coming; the
                        // change takes effect at the LAST buffer.
                        self.resolution_change_pending = true;
                    }
                }
                Ok(Event::Eos) => {}
                Err(ioctl::DqEventError::NotReady) => return Ok(()),
                Err(e) => return Err(ioctl_err("DQEVENT")(e)),
            }
        }
    }

    fn dequeue_output(&mut self) -> Result<(), DecodeError> {
        loop {
            match ioctl::dqbuf::<V4l2Buffer>(&self.device, self.output.queue) {
                Ok(buf) => {
                    if buf.has_error() {
                        self.report.output_errors += 1;
                    }
                    self.output.free.push(buf.index());
                    self.output.queued = self.output.queued.saturating_sub(1);
                }
                Err(ioctl::IoctlConvertError::IoctlError(DqBufIoctlError::NotReady)) => {
                    return Ok(())
                }
                Err(e) => return Err(ioctl_err("DQBUF(OUTPUT)")(e)),
            }
        }
    }

    fn dequeue_capture(&mut self) -> Result<(), DecodeError> {
        loop {
            let Some(capture) = &mut self.capture else {
                return Ok(());
            };
            if capture.ended {
                return Ok(());
            }
            let buf = match ioctl::dqbuf::<V4l2Buffer>(&self.device, capture.queue) {
                Ok(buf) => buf,
                Err(ioctl::IoctlConvertError::IoctlError(DqBufIoctlError::NotReady)) => {
                    return Ok(())
                }
                Err(ioctl::IoctlConvertError::IoctlError(DqBufIoctlError::Eos)) => {
                    capture.ended = true;
                    return self.capture_ended();
                }
                Err(e) => return Err(ioctl_err("DQBUF(CAPTURE)")(e)),
            };
            let dequeued_at = Instant::now();
            let index = buf.index() as usize;
            let Some(slot) = capture.buffers.get_mut(index) else {
                return Err(DecodeError::Ioctl {
                    what: "DQBUF(CAPTURE)",
                    cause: format!("driver returned unknown buffer index {index}").into(),
                });
            };
            slot.queued = false;
            let bytesused = buf.get_first_plane().bytesused.to_owned();
            let last = buf.is_last();
            if bytesused > 0 {
                self.emit_frame(index, &buf, dequeued_at)?;
            } else if buf.has_error() && !last {
                // A frame the decoder gave up on without any data.
                self.report.error_frames += 1;
            }
            let capture = self.capture.as_mut().expect("capture ring exists");
            if last {
                capture.ended = true;
                return self.capture_ended();
            }
            self.queue_capture(index)?;
        }
    }

    fn emit_frame(
        &mut self,
        index: usize,
        buf: &V4l2Buffer,
        dequeued_at: Instant,
    ) -> Result<(), DecodeError> {
        let global = timestamp_unit(buf);
        let latency = self
            .queued_at
            .remove(&global)
            .map(|t| dequeued_at.duration_since(t));
        let units = self.stream.units.len().max(1) as u64;
        let (pass, unit) = ((global / units) as u32, (global % units) as usize);
        if pass == 0 && (unit as u64) < self.seek_floor {
            self.report.dropped_before_seek += 1;
            return Ok(());
        }
        if !self.frames_wanted() {
            return Ok(());
        }
        let capture = self.capture.as_ref().expect("capture ring exists");
        let slot = &capture.buffers[index];
        self.packed.clear();
        for dmabuf in &slot.dmabufs {
            sys::dma_buf_begin_read(dmabuf).map_err(ioctl_err("DMA_BUF_IOCTL_SYNC"))?;
        }
        let planes: Vec<&[u8]> = slot.maps.iter().map(|m| &m[..]).collect();
        let packed = capture.layout.pack(&planes, &mut self.packed);
        for dmabuf in &slot.dmabufs {
            sys::dma_buf_end_read(dmabuf).map_err(ioctl_err("DMA_BUF_IOCTL_SYNC"))?;
        }
        packed?;
        let error = buf.has_error();
        let frame = DecodedFrame {
            index: self.report.frames,
            pass,
            unit,
            layout: &capture.layout,
            packed: &self.packed,
            error,
            latency,
        };
        self.sink.frame(&frame).map_err(DecodeError::Sink)?;
        self.report.frames += 1;
        self.report.error_frames += u64::from(error);
        if let Some(l) = latency {
            self.report.latencies.push(l);
        }
        Ok(())
    }

    /// LAST buffer or EPIPE: a resolution change or the end of the drain.
    fn capture_ended(&mut self) -> Result<(), DecodeError> {
        // The source-change event is queued before the LAST buffer.
        self.handle_events()?;
        if self.resolution_change_pending {
            return self.reconfigure_capture();
        }
        if self.drain == Drain::Sent || self.fed_all {
            self.drain = Drain::Done;
            return Ok(());
        }
        // A LAST without a drain or a format change: the decoder stopped on
        // its own (EOS in the bitstream). Resume with V4L2_DEC_CMD_START
        // (buffers stay queued), or STREAMOFF/STREAMON of CAPTURE (which
        // returns them all).
        let queue = self.capture.as_ref().expect("capture ring exists").queue;
        if ioctl::decoder_cmd::<_, ()>(&self.device, DecoderCmd::start()).is_err() {
            ioctl::streamoff(&self.device, queue)
                .map_err(ioctl_err("STREAMOFF(CAPTURE) after an unexpected LAST"))?;
            ioctl::streamon(&self.device, queue)
                .map_err(ioctl_err("STREAMON(CAPTURE) after an unexpected LAST"))?;
            for b in &mut self.capture.as_mut().expect("capture ring exists").buffers {
                b.queued = false;
            }
        }
        let capture = self.capture.as_mut().expect("capture ring exists");
        capture.ended = false;
        let idle: Vec<usize> = (0..capture.buffers.len())
            .filter(|&i| !capture.buffers[i].queued)
            .collect();
        for index in idle {
            self.queue_capture(index)?;
        }
        Ok(())
    }

    fn reconfigure_capture(&mut self) -> Result<(), DecodeError> {
        self.release_capture()?;
        self.resolution_change_pending = false;
        // STREAMOFF(CAPTURE) aborts a drain in progress (dev-decoder.rst):
        // ask again once the new buffers stream.
        if self.drain == Drain::Sent {
            self.drain = Drain::NotYet;
        }
        self.setup_capture()
    }

    fn release_capture(&mut self) -> Result<(), DecodeError> {
        if let Some(capture) = self.capture.take() {
            ioctl::streamoff(&self.device, capture.queue)
                .map_err(ioctl_err("STREAMOFF(CAPTURE)"))?;
            let (queue, memory) = (capture.queue, capture.memory);
            // Unmap and close before freeing, so nothing keeps the old buffers alive.
            drop(capture);
            ioctl::reqbufs::<()>(
                &self.device,
                queue,
                memory,
                0,
                ioctl::MemoryConsistency::empty(),
            )
            .map_err(ioctl_err("REQBUFS(CAPTURE, 0)"))?;
        }
        Ok(())
    }

    fn choose_format(&mut self, current: &Format) -> Result<Format, DecodeError> {
        let queue = self.info.capture_queue();
        let current_raw = RawFormat::from_fourcc(current.pixelformat.to_fourcc())
            .filter(|f| self.info.multiplanar || f.memory_planes() == 1);
        let wanted = match (self.config.format, current_raw) {
            (Some(w), _) => w,
            (None, Some(c)) => c,
            (None, None) => RawFormat::Nv12,
        };
        if current.pixelformat.to_fourcc() == wanted.fourcc() {
            return Ok(current.clone());
        }
        let request = Format {
            width: current.width,
            height: current.height,
            pixelformat: PixelFormat::from_fourcc(&wanted.fourcc()),
            plane_fmt: Vec::new(),
        };
        let applied: Format = ioctl::s_fmt(&mut self.device, (queue, &request))
            .map_err(ioctl_err("S_FMT(CAPTURE)"))?;
        if applied.pixelformat != request.pixelformat {
            let offered: Vec<[u8; 4]> = ioctl::FormatIterator::new(&self.device, queue)
                .map(|d| d.pixelformat.to_fourcc())
                .collect();
            return Err(DecodeError::CaptureFormat {
                wanted: wanted.to_string(),
                offered: fourcc_list(&offered),
            });
        }
        Ok(applied)
    }

    fn setup_capture(&mut self) -> Result<(), DecodeError> {
        let queue = self.info.capture_queue();
        let current: Format =
            ioctl::g_fmt(&self.device, queue).map_err(ioctl_err("G_FMT(CAPTURE)"))?;
        let format = self.choose_format(&current)?;
        let raw = RawFormat::from_fourcc(format.pixelformat.to_fourcc()).ok_or_else(|| {
            DecodeError::CaptureFormat {
                wanted: "nv12, nv12m, yuv420 or p010".to_string(),
                offered: format.pixelformat.to_string(),
            }
        })?;
        let visible = ioctl::g_selection::<v4l2r::Rect>(
            &self.device,
            SelectionType::Capture,
            SelectionTarget::Compose,
        )
        .ok()
        .filter(|r| r.width > 0 && r.height > 0 && r.left >= 0 && r.top >= 0)
        .map(|r| Visible {
            left: r.left as u32,
            top: r.top as u32,
            width: r.width,
            height: r.height,
        })
        .unwrap_or(Visible {
            left: 0,
            top: 0,
            width: format.width,
            height: format.height,
        });
        let layout = FrameLayout {
            format: raw,
            width: format.width,
            height: format.height,
            bytesperline: format.plane_fmt.iter().map(|p| p.bytesperline).collect(),
            visible,
        };
        let min_buffers = ioctl::g_ctrl(&self.device, bindings::V4L2_CID_MIN_BUFFERS_FOR_CAPTURE)
            .ok()
            .and_then(|v| u32::try_from(v).ok())
            .unwrap_or(1)
            .clamp(1, 32);
        let memory = match self.config.capture_memory {
            CaptureMemory::Mmap => MemoryType::Mmap,
            _ => MemoryType::DmaBuf,
        };
        let count: usize = ioctl::reqbufs(
            &self.device,
            queue,
            memory,
            min_buffers + self.config.extra_capture_buffers,
            ioctl::MemoryConsistency::empty(),
        )
        .map_err(ioctl_err("REQBUFS(CAPTURE)"))?;
        let mut buffers = Vec::with_capacity(count);
        for index in 0..count {
            buffers.push(self.allocate_capture_buffer(queue, memory, index, &format)?);
        }
        let mut spare = VecDeque::new();
        if self.config.swap_dmabufs && memory == MemoryType::DmaBuf {
            for index in 0..count {
                spare.push_back(self.allocate_capture_buffer(queue, memory, index, &format)?);
            }
        }
        self.report.layouts.push(layout.clone());
        self.report.capture_buffers = count as u32;
        self.capture = Some(CaptureRing {
            queue,
            memory,
            layout,
            buffers,
            spare,
            ended: false,
        });
        for index in 0..count {
            self.queue_capture(index)?;
        }
        ioctl::streamon(&self.device, queue).map_err(ioctl_err("STREAMON(CAPTURE)"))?;
        Ok(())
    }

    fn allocate_capture_buffer(
        &self,
        queue: QueueType,
        memory: MemoryType,
        index: usize,
        format: &Format,
    ) -> Result<CaptureBuffer, DecodeError> {
        let qb: QueryBuffer =
            ioctl::querybuf(&self.device, queue, index).map_err(ioctl_err("QUERYBUF(CAPTURE)"))?;
        let mut buffer = CaptureBuffer {
            maps: Vec::new(),
            dmabufs: Vec::new(),
            queued: false,
        };
        match memory {
            MemoryType::Mmap => {
                for plane in &qb.planes {
                    buffer.maps.push(
                        ioctl::mmap(&self.device, plane.mem_offset, plane.length)
                            .map_err(ioctl_err("mmap(CAPTURE)"))?,
                    );
                }
            }
            _ => {
                let source = self.dma_source.as_ref().expect("dma-buf source opened");
                for (plane, layout) in format.plane_fmt.iter().enumerate() {
                    let len = (layout.sizeimage as usize)
                        .max(qb.planes.get(plane).map_or(0, |p| p.length as usize));
                    let (file, map) = alloc_dmabuf(source, &self.config.capture_memory, len)?;
                    buffer.maps.push(map);
                    buffer.dmabufs.push(file);
                }
            }
        }
        Ok(buffer)
    }

    fn queue_capture(&mut self, index: usize) -> Result<(), DecodeError> {
        let capture = self.capture.as_mut().expect("capture ring exists");
        let slot = &mut capture.buffers[index];
        match capture.memory {
            MemoryType::Mmap => {
                let mut qbuf = QBuffer::<MmapHandle>::new(capture.queue, index as u32);
                qbuf.planes = slot.maps.iter().map(|_| QBufPlane::new(0)).collect();
                ioctl::qbuf::<_, ()>(&self.device, qbuf).map_err(ioctl_err("QBUF(CAPTURE)"))?;
            }
            _ => {
                if let Some(mut next) = capture.spare.pop_front() {
                    std::mem::swap(&mut slot.maps, &mut next.maps);
                    std::mem::swap(&mut slot.dmabufs, &mut next.dmabufs);
                    capture.spare.push_back(next);
                    self.report.dmabuf_swaps += 1;
                }
                let mut qbuf = QBuffer::<DmaBufHandle<File>>::new(capture.queue, index as u32);
                for (file, map) in slot.dmabufs.iter().zip(&slot.maps) {
                    let mut plane = QBufPlane::new(0);
                    plane.0.m.fd = std::os::fd::AsRawFd::as_raw_fd(file);
                    plane.0.length = map.len() as u32;
                    qbuf.planes.push(plane);
                }
                ioctl::qbuf::<_, ()>(&self.device, qbuf).map_err(|e| DecodeError::Ioctl {
                    what: "QBUF(CAPTURE) of a dma-buf",
                    cause: format!("{e}{DMA_CONTIG_HINT}").into(),
                })?;
            }
        }
        slot.queued = true;
        Ok(())
    }

    fn teardown(&mut self) {
        // Best effort: the file handle's close does the same.
        let _ = ioctl::streamoff(&self.device, self.output.queue);
        if let Some(capture) = &self.capture {
            let _ = ioctl::streamoff(&self.device, capture.queue);
        }
    }
}

/// A CMA heap if the system has one (contiguous: what dma-contig drivers
/// can import), else the system heap, else None.
pub fn default_dma_heap() -> Option<PathBuf> {
    let mut heaps: Vec<PathBuf> = std::fs::read_dir("/dev/dma_heap")
        .ok()?
        .flatten()
        .map(|e| e.path())
        .collect();
    heaps.sort();
    let named = |p: &PathBuf, what: &str| {
        p.file_name()
            .and_then(|n| n.to_str())
            .is_some_and(|n| n.contains(what))
    };
    heaps
        .iter()
        .find(|p| named(p, "cma") || named(p, "reserved"))
        .or_else(|| heaps.iter().find(|p| named(p, "system")))
        .or_else(|| heaps.first())
        .cloned()
}

/// Said when a driver refuses an imported dma-buf at QBUF.
const DMA_CONTIG_HINT: &str = " (the driver could not use the buffer: a dma-contig driver \
     needs physically contiguous memory: use a CMA heap, \
     --dma-heap /dev/dma_heap/linux,cma or .../reserved)";

/// The allocator device behind `memory` (None: MMAP).
fn open_source(memory: &CaptureMemory) -> Result<Option<File>, DecodeError> {
    Ok(match memory {
        CaptureMemory::Mmap => None,
        CaptureMemory::DmaHeap(path) => Some(open_rw(path)?),
        CaptureMemory::Udmabuf => Some(open_rw(&PathBuf::from("/dev/udmabuf"))?),
    })
}

/// A `len`-byte dma-buf from `source` (opened for `memory`), mapped.
fn alloc_dmabuf(
    source: &File,
    memory: &CaptureMemory,
    len: usize,
) -> Result<(File, PlaneMapping), DecodeError> {
    let (file, source_name) = match memory {
        CaptureMemory::DmaHeap(path) => {
            (sys::dma_heap_alloc(source, len), path.display().to_string())
        }
        _ => (sys::udmabuf_alloc(source, len), "/dev/udmabuf".to_string()),
    };
    let file = file.map_err(|errno| DecodeError::DmaBuf {
        len,
        source_name,
        errno,
    })?;
    let map = ioctl::mmap(&file, 0, len as u32).map_err(ioctl_err("mmap(dma-buf)"))?;
    Ok((file, map))
}

fn open_rw(path: &PathBuf) -> Result<File, DecodeError> {
    std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(path)
        .map_err(|cause| DecodeError::DmaBufDevice {
            path: path.clone(),
            cause,
        })
}
