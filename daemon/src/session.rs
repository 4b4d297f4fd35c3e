//! One decode session: the state machine between the channel messages and
//! an FFmpeg decoder.
//!
//! OUTPUT and CAPTURE are decoupled: bitstream buffers queue in `input`,
//! decoded frames wait in `pending` (at most `max_pending_frames`) until a
//! CAPTURE buffer that fits their format is free. `apply` records a message;
//! `pump` then makes every step that is possible (deliver frames, receive
//! from FFmpeg, feed FFmpeg) until nothing moves. The session never blocks
//! on the channel; it is driven by its owner (a thread per session in the
//! daemon, the test directly).
//!
//! Nothing here trusts the bitstream: FFmpeg errors cost the packet
//! (BITSTREAM_DONE with ERROR) or the frame (FRAME_DONE with ERROR), never
//! the session.
//!
//! Synchronous take-back (`SessionConfig::release_ack`, the kernel accepted
//! `DAEDALUS_HELLO_F_RELEASE_ACK`): the kernel's STREAMOFF waits for a
//! RELEASED answer to its FLUSH / CAPTURE_RESET, which promises that no
//! buffer of that queue from an earlier epoch is read or written again, so
//! nothing touches a buffer after STREAMOFF has returned it to the client.
//! Every access the daemon itself makes happens on the session's one thread
//! (`apply` and `pump` alternate there, see `service`): OUTPUT buffers are
//! read only inside `feed`, whose parser and packets copy the bytes, and
//! CAPTURE buffers are written only inside `deliver` (plugin kernels return
//! when they are done). So by the time `apply` sees the take-back, the
//! daemon's own accesses are over, and:
//! - FLUSH: once `input`, `parsed` and the parser are cleared (the decoder
//!   is flushed as the seek asks anyway) nothing refers to an old OUTPUT
//!   buffer; RELEASED goes at once.
//! - CAPTURE_RESET: FFmpeg's frame threads are the only other party, and
//!   only in zero-copy YUV420 buffers lent to them (`lending`). If none is
//!   lent (NV12, P010, the usual case) RELEASED goes at once and no frame is
//!   lost. If some are, the pending frames in lent memory are dropped, the
//!   decoder is flushed (waiting for its frame threads, dropping its
//!   reference frames, hence the leases; where FFmpeg keeps some through a
//!   flush, as VP9 does, the context is replaced) and restarts at the next
//!   keyframe as after a seek; RELEASED follows once no lease is left. Cost:
//!   a YUV420 client that restarts CAPTURE mid-stream loses the frames up to
//!   the next keyframe.
//!
//! SESSION_CLOSE gets no answer: the kernel sends FLUSH and CAPTURE_RESET
//! before it for queues that are streaming, and waits for those.

use crate::buffers::BufferCache;
use crate::bytestream::ByteStream;
use crate::config::Codec;
use crate::convert::Converter;
use crate::decoder::{Decoder, DecoderError, HeaderProbe, ProbedFormat, Received, Sent};
use crate::format::{layout, Colorimetry, Depth, FrameLayout, StreamFormat};
use crate::lending::{CapturePool, HeldFrame};
use crate::mapping::{Access, Mapping};
use crate::transport::Transport;
use crate::writer::write_frame;
use daedalus_proto::uapi::{
    DAEDALUS_BITSTREAM_F_ERROR, DAEDALUS_FRAME_F_CHANGE_END, DAEDALUS_FRAME_F_DRAIN_END,
    DAEDALUS_FRAME_F_ERROR, DAEDALUS_FRAME_F_KEYFRAME,
};
use daedalus_proto::{
    Bitstream, BitstreamDone, BufferRef, Capture, DaemonBody, DaemonMsg, FrameDone, KernelBody,
    Queue, SessionOpen, MAX_PLANES,
};
use ffmpeg_next::frame;
use std::collections::VecDeque;
use std::ops::Range;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use thiserror::Error;

/// CAPTURE buffers the client should allocate. FFmpeg keeps its reference
/// frames in its own pool (frames are copied out), so this only has to allow
/// pipelining between the client, the kernel and the daemon. Zero-copy
/// YUV420 lends only buffers beyond these (see `lending`).
pub const MIN_CAPTURE_BUFFERS: u32 = 4;

/// Frames of a format the daemon cannot output (e.g. 4:4:4) in a row, with
/// no good frame before, after which the session gives up.
const UNSUPPORTED_LIMIT: u32 = 8;
/// Frame sizes the kernel accepts in FORMAT (kernel/daedalus.h
/// DAEDALUS_MIN_SIZE / DAEDALUS_MAX_SIZE); frames outside are dropped as
/// errors instead of sending a FORMAT the kernel would reject.
const MIN_SIZE: u32 = 16;
const MAX_SIZE: u32 = 8192;
/// Decode errors reported in one `receive` round before yielding.
const FAILURES_PER_ROUND: u32 = 16;

#[derive(Debug, Error)]
pub enum SessionError {
    #[error("coded format {0} is not one this daemon announced")]
    UnknownCodec(String),
    #[error(transparent)]
    Decoder(#[from] DecoderError),
}

/// Per-session settings from the configuration.
#[derive(Debug, Clone, Copy)]
pub struct SessionConfig {
    pub threads: u32,
    pub max_pending_frames: usize,
    /// Let FFmpeg decode into YUV420 CAPTURE buffers where that is safe.
    pub zero_copy: bool,
    /// The kernel accepted `DAEDALUS_HELLO_F_RELEASE_ACK`: answer every
    /// FLUSH and CAPTURE_RESET with RELEASED (see the module doc).
    pub release_ack: bool,
}

/// Counters the main loop reads for STATUS=.
#[derive(Debug, Default)]
pub struct SessionStats {
    pub frames: AtomicU64,
    pub errors: AtomicU64,
    /// Frames FFmpeg decoded straight into the CAPTURE buffer they left in.
    pub zero_copy_frames: AtomicU64,
    /// Picture bytes written into CAPTURE buffers by the copy path.
    pub bytes_copied: AtomicU64,
}

enum Input {
    Bitstream(Bitstream),
    /// DRAIN arrived after the bitstream queued before it.
    Drain,
}

struct Pending {
    frame: frame::Video,
    format: StreamFormat,
    timestamp_ns: u64,
    flags: u32,
    drain_end: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Drain {
    Idle,
    /// EOF sent to FFmpeg; `mark`: put DRAIN_END on the last frame (false
    /// once CAPTURE_RESET cancelled the drain).
    Active {
        mark: bool,
    },
}

pub struct Session {
    id: u32,
    transport: Arc<dyn Transport>,
    converter: Arc<dyn Converter>,
    config: SessionConfig,
    stats: Arc<SessionStats>,
    decoder: Decoder,
    /// Until the format is announced: learns it from the headers (see
    /// HeaderProbe); None once announced, given up, or unavailable.
    probe: Option<HeaderProbe>,
    /// Codecs with start codes: OUTPUT buffers in any chunking, cut into
    /// access units here (see `bytestream`). None: one frame per buffer.
    stream: Option<ByteStream>,
    /// OUTPUT buffers the parser has read whose access units the decoder
    /// has not all taken yet: returned (BITSTREAM_DONE) once it has, so a
    /// client sees its buffer back when the data is consumed, as with a
    /// hardware decoder (v4l2-ctl polls on that).
    parsed: VecDeque<Bitstream>,
    input: VecDeque<Input>,
    pending: VecDeque<Pending>,
    /// CAPTURE buffers the daemon holds, and which of them FFmpeg holds.
    captures: CapturePool,
    output_epoch: u32,
    announced: Option<StreamFormat>,
    /// A frame went out since the last CAPTURE_RESET (a format change then
    /// needs CHANGE_END).
    delivered_in_epoch: bool,
    change_end_pending: bool,
    awaiting_reset: bool,
    drain: Drain,
    empty_drain_end: bool,
    skip_to_keyframe: bool,
    cache: BufferCache,
    unsupported_run: u32,
    supported_seen: bool,
    failed: bool,
}

impl Session {
    /// Opens the decoder for a SESSION_OPEN.
    pub fn new(
        id: u32,
        open: SessionOpen,
        transport: Arc<dyn Transport>,
        converter: Arc<dyn Converter>,
        config: SessionConfig,
        stats: Arc<SessionStats>,
    ) -> Result<Session, SessionError> {
        let codec = Codec::from_fourcc(open.coded_format).ok_or_else(|| {
            SessionError::UnknownCodec(daedalus_proto::fourcc::to_string(open.coded_format))
        })?;
        let captures = CapturePool::new(MIN_CAPTURE_BUFFERS as usize);
        let decoder = Decoder::open(
            codec,
            config.threads,
            config.zero_copy.then(|| captures.clone()),
        )?;
        let probe = HeaderProbe::open(codec)
            .map_err(|e| log::debug!("session {id}: no header probe ({e})"))
            .ok();
        log::info!(
            "session {id}: {} ({}), hint {}x{}",
            daedalus_proto::fourcc::to_string(open.coded_format),
            codec.ffmpeg_decoder(),
            open.width,
            open.height
        );
        Ok(Session {
            id,
            transport,
            converter,
            config,
            stats,
            decoder,
            probe,
            stream: ByteStream::new(codec),
            parsed: VecDeque::new(),
            input: VecDeque::new(),
            pending: VecDeque::new(),
            captures,
            output_epoch: 0,
            announced: None,
            delivered_in_epoch: false,
            change_end_pending: false,
            awaiting_reset: false,
            drain: Drain::Idle,
            empty_drain_end: false,
            skip_to_keyframe: false,
            cache: BufferCache::default(),
            unsupported_run: 0,
            supported_seen: false,
            failed: false,
        })
    }

    pub fn id(&self) -> u32 {
        self.id
    }

    /// One line for the log when the session ends: how its frames left.
    fn summary(&self) -> String {
        let load = |c: &AtomicU64| c.load(Ordering::Relaxed);
        format!(
            "session {}: {} frames, {} zero-copy, {} bytes copied, {} errors",
            self.id,
            load(&self.stats.frames),
            load(&self.stats.zero_copy_frames),
            load(&self.stats.bytes_copied),
            load(&self.stats.errors)
        )
    }

    fn reply(&self, body: DaemonBody) {
        if let Err(e) = self.transport.send(&DaemonMsg {
            session: self.id,
            body,
        }) {
            // The kernel rejects replies that lost a race (handled silently by
            // it) or that it considers invalid; neither is fatal for us.
            log::warn!("session {}: reply {body:?} not accepted: {e}", self.id);
        }
    }

    fn frame_done(
        &self,
        cap: &Capture,
        timestamp_ns: u64,
        flags: u32,
        num_planes: u32,
        bytesused: [u32; MAX_PLANES],
    ) {
        self.reply(DaemonBody::FrameDone(FrameDone {
            timestamp_ns,
            index: cap.index,
            epoch: cap.epoch,
            flags,
            num_planes,
            bytesused,
        }));
    }

    /// Answers a take-back (see the module doc); only after HELLO with
    /// `DAEDALUS_HELLO_F_RELEASE_ACK`, which the kernel otherwise rejects.
    fn released(&self, queue: Queue, epoch: u32) {
        if self.config.release_ack {
            self.reply(DaemonBody::Released { queue, epoch });
        }
    }

    fn bitstream_done(&self, b: &Bitstream, flags: u32) {
        self.reply(DaemonBody::BitstreamDone(BitstreamDone {
            index: b.index,
            epoch: b.epoch,
            flags,
        }));
    }

    /// Records one kernel message (call `pump` afterwards). SESSION_OPEN and
    /// SESSION_CLOSE are the owner's business and ignored here.
    pub fn apply(&mut self, body: KernelBody) {
        match body {
            KernelBody::SessionOpen(_) | KernelBody::SessionClose => {}
            KernelBody::Bitstream(b) => {
                self.output_epoch = b.epoch;
                self.input.push_back(Input::Bitstream(b));
            }
            KernelBody::Capture(c) => self.queue_capture(c),
            KernelBody::CaptureReset { epoch } => {
                log::debug!("session {}: CAPTURE_RESET epoch {epoch}", self.id);
                self.captures.reset();
                self.cache.forget_queue(Queue::Capture);
                self.awaiting_reset = false;
                self.change_end_pending = false;
                self.delivered_in_epoch = false;
                // The kernel left the draining state: no DRAIN_END any more.
                if let Drain::Active { .. } = self.drain {
                    self.drain = Drain::Active { mark: false };
                }
                self.empty_drain_end = false;
                self.pending.iter_mut().for_each(|p| p.drain_end = false);
                self.input.retain(|i| !matches!(i, Input::Drain));
                if self.config.release_ack {
                    self.release_capture(epoch);
                }
            }
            KernelBody::Drain => self.input.push_back(Input::Drain),
            KernelBody::Flush { epoch } => {
                log::debug!("session {}: FLUSH epoch {epoch}", self.id);
                let drain_open = matches!(self.drain, Drain::Active { mark: true })
                    || self.input.iter().any(|i| matches!(i, Input::Drain))
                    || self.pending.iter().any(|p| p.drain_end);
                self.output_epoch = epoch;
                self.input.clear();
                self.pending.clear();
                self.decoder.flush();
                self.drain = Drain::Idle;
                self.skip_to_keyframe = true;
                if let Some(s) = self.stream.as_mut() {
                    s.reset();
                }
                // the kernel took these back with the flush
                self.parsed.clear();
                self.cache.forget_queue(Queue::Output);
                if drain_open {
                    self.empty_drain_end = true;
                }
                // Nothing left refers to an OUTPUT buffer of an older epoch
                // (the parser and FFmpeg hold copies of the bytes).
                self.released(Queue::Output, epoch);
            }
        }
    }

    /// CAPTURE_RESET's RELEASED, once no buffer of an older CAPTURE epoch
    /// can be touched any more (see the module doc): at once when nothing
    /// is lent to FFmpeg, else after taking every lease back.
    fn release_capture(&mut self, epoch: u32) {
        let lent = self.captures.lent_count();
        if lent > 0 {
            log::debug!(
                "session {}: CAPTURE_RESET with {lent} buffers lent to FFmpeg: \
                 flushing the decoder, restarting at the next keyframe",
                self.id
            );
            self.reclaim_lent_buffers();
        }
        let lent = self.captures.lent_count();
        if lent > 0 {
            // Only if the decoder could not be replaced (allocation failure):
            // no false promise; the kernel fails the session when RELEASED
            // does not come in time.
            log::error!(
                "session {}: FFmpeg still holds {lent} CAPTURE buffers after CAPTURE_RESET; \
                 not confirming the take-back",
                self.id
            );
            return;
        }
        self.released(Queue::Capture, epoch);
    }

    /// Makes FFmpeg let go of every lent CAPTURE buffer: pending frames that
    /// live in one are dropped (each holds a lease), the decoder is flushed
    /// (its frame threads finish, its reference frames go) and restarts at
    /// the next keyframe. A decoder may keep frames through a flush: FFmpeg's
    /// VP9 keeps the references it set up for the next frame (`next_refs`)
    /// until it decodes one, so then a fresh context replaces it (freeing
    /// the old one joins its threads and drops every frame it holds). That
    /// is only a second step: a new context also forgets parameter sets,
    /// which a VP9 keyframe carries but an H.264/HEVC one need not.
    fn reclaim_lent_buffers(&mut self) {
        let captures = &self.captures;
        self.pending.retain(|p| {
            let f = &p.frame;
            !(0..f.planes()).any(|i| captures.in_lent_memory(f.data(i).as_ptr() as usize))
        });
        self.decoder.flush();
        self.skip_to_keyframe = true;
        // The flush also ended FFmpeg's draining; the kernel cancelled the
        // drain with the reset, so nothing waits for its end.
        self.drain = Drain::Idle;
        let kept = self.captures.lent_count();
        if kept > 0 {
            log::debug!(
                "session {}: FFmpeg kept {kept} lent CAPTURE buffers through the flush; \
                 replacing the decoder context",
                self.id
            );
            if let Err(e) = self.decoder.reopen() {
                log::error!("session {}: {e}", self.id);
            }
        }
    }

    /// Makes every step currently possible.
    pub fn pump(&mut self) {
        // Each round that reports progress consumed input, a frame or a
        // buffer; the bound only guards against a decoder that never settles.
        for _ in 0..100_000 {
            let mut progress = self.deliver();
            progress |= self.receive();
            progress |= self.feed();
            if !progress {
                return;
            }
        }
        log::warn!("session {}: pump did not settle", self.id);
    }

    /// Gives every buffer back (SIGTERM): unconsumed bitstream and unused
    /// CAPTURE buffers return with the ERROR flag.
    pub fn shutdown(&mut self) {
        // FFmpeg's threads stop (and drop lent buffers) before the buffers go back.
        self.pending.clear();
        self.decoder.flush();
        for b in std::mem::take(&mut self.parsed) {
            self.bitstream_done(&b, 0);
        }
        for input in std::mem::take(&mut self.input) {
            if let Input::Bitstream(b) = input {
                self.bitstream_done(&b, DAEDALUS_BITSTREAM_F_ERROR);
            }
        }
        for cap in self.captures.take_all() {
            self.frame_done(
                &cap,
                0,
                DAEDALUS_FRAME_F_ERROR,
                cap.num_planes,
                [0; MAX_PLANES],
            );
        }
    }

    /// Frames currently held for CAPTURE buffers (for tests and logs).
    #[cfg(test)]
    pub fn pending_frames(&self) -> usize {
        self.pending.len()
    }

    /// The session's CAPTURE pool (tests watch what FFmpeg holds).
    #[cfg(test)]
    pub fn capture_pool(&self) -> CapturePool {
        self.captures.clone()
    }

    fn take_free(&mut self) -> Option<Capture> {
        self.captures.take_free(|_| true)
    }

    /// Records a CAPTURE buffer the client queued; YUV420 buffers are mapped
    /// (once) for lending when zero-copy is on.
    fn queue_capture(&mut self, c: Capture) {
        let lend = self.config.zero_copy;
        let (transport, id) = (self.transport.as_ref(), self.id);
        self.captures.queue(c, |cap| {
            if !lend {
                return None;
            }
            let buf = BufferRef {
                session: id,
                queue: Queue::Capture,
                index: cap.index,
                plane: 0,
                generation: cap.generation,
                mem_seq: cap.mem_seq,
            };
            let mapped = transport
                .buffer_fd(buf)
                .map_err(|e| e.to_string())
                .and_then(|(fd, len)| {
                    Mapping::new(fd, len as usize, Access::Write).map_err(|e| e.to_string())
                });
            mapped
                .map_err(|e| log::warn!("session {id}: CAPTURE {} not lendable: {e}", cap.index))
                .ok()
        });
    }

    /// The lent buffer `p` was decoded into, if the frame can leave in it as
    /// it is: the buffer is still queued in this epoch and fits the format,
    /// and every plane sits where the buffer's YUV420 layout puts it (a
    /// decoder that crops the top or left moves the pointers: copied then).
    fn in_place(&self, p: &Pending) -> Option<(HeldFrame, FrameLayout)> {
        let f = &p.frame;
        if f.planes() < 3 {
            return None;
        }
        let held = self.captures.holding(f.data(0).as_ptr() as usize)?;
        let frame_layout = layout(&held.cap, &p.format).ok()?;
        let placed = (0..3).all(|i| {
            f.data(i).as_ptr() as usize == held.base + held.layout.offsets[i]
                && f.stride(i) == held.layout.strides[i]
        });
        placed.then_some((held, frame_layout))
    }

    fn deliver(&mut self) -> bool {
        let mut progress = false;
        loop {
            if self.awaiting_reset {
                return progress;
            }
            if self.change_end_pending {
                let Some(cap) = self.take_free() else {
                    return progress;
                };
                log::debug!("session {}: CHANGE_END on CAPTURE {}", self.id, cap.index);
                self.frame_done(
                    &cap,
                    0,
                    DAEDALUS_FRAME_F_CHANGE_END,
                    cap.num_planes,
                    [0; MAX_PLANES],
                );
                self.change_end_pending = false;
                self.awaiting_reset = true;
                progress = true;
                continue;
            }
            if let Some(front) = self.pending.front() {
                let format = front.format;
                if !self.announced.is_some_and(|a| a.same_geometry(&format)) {
                    let previous = self.announced.replace(format);
                    log::info!(
                        "session {}: format {}x{} {}-bit{}",
                        self.id,
                        format.width,
                        format.height,
                        format.depth.bits(),
                        if previous.is_some() { " (changed)" } else { "" }
                    );
                    self.reply(DaemonBody::Format(
                        format.message(self.output_epoch, MIN_CAPTURE_BUFFERS),
                    ));
                    progress = true;
                    if previous.is_some() && self.delivered_in_epoch {
                        self.change_end_pending = true;
                        continue;
                    }
                }
                if let Some((held, frame_layout)) = self.in_place(front) {
                    self.captures.deliver_in_place(&held);
                    let Some(p) = self.pending.pop_front() else {
                        return progress;
                    };
                    let drain_flag = if p.drain_end {
                        DAEDALUS_FRAME_F_DRAIN_END
                    } else {
                        0
                    };
                    self.frame_done(
                        &held.cap,
                        p.timestamp_ns,
                        p.flags | drain_flag,
                        frame_layout.num_planes,
                        frame_layout.bytesused,
                    );
                    self.stats.frames.fetch_add(1, Ordering::Relaxed);
                    self.stats.zero_copy_frames.fetch_add(1, Ordering::Relaxed);
                    self.delivered_in_epoch = true;
                    progress = true;
                    // `p` (FFmpeg's reference to the frame) is dropped here,
                    // outside the pool's lock: its lease may end now.
                    continue;
                }
                let found = self
                    .captures
                    .take_free(|cap| layout(cap, &format).is_ok())
                    .and_then(|cap| layout(&cap, &format).ok().map(|l| (cap, l)));
                let Some((cap, frame_layout)) = found else {
                    if let Some(cap) = self.captures.first_free() {
                        log::trace!(
                            "session {}: CAPTURE {} does not fit: {:?}",
                            self.id,
                            cap.index,
                            layout(&cap, &format).err()
                        );
                    }
                    return progress;
                };
                let Some(p) = self.pending.pop_front() else {
                    return progress;
                };
                let written = write_frame(
                    &p.frame,
                    self.id,
                    &cap,
                    &frame_layout,
                    &mut self.cache,
                    self.transport.as_ref(),
                    self.converter.as_ref(),
                );
                let drain_flag = if p.drain_end {
                    DAEDALUS_FRAME_F_DRAIN_END
                } else {
                    0
                };
                match written {
                    Err(e) if e.buffer_gone() => {
                        // The client reallocated CAPTURE while this buffer's
                        // QBUF was in flight (GStreamer 1.22 does so at the
                        // first source change): the frame waits for a buffer
                        // of the new set instead of being lost. The buffer
                        // still goes back, empty and ERROR: the kernel drops
                        // that for a buffer it took back (older epoch) and
                        // returns it to the client if it merely got a new
                        // generation (CREATE_BUFS), so none is stranded.
                        log::debug!(
                            "session {}: CAPTURE {} gone before it was written ({e}); the frame waits",
                            self.id,
                            cap.index
                        );
                        self.frame_done(
                            &cap,
                            0,
                            DAEDALUS_FRAME_F_ERROR,
                            cap.num_planes,
                            [0; MAX_PLANES],
                        );
                        self.pending.push_front(p);
                        progress = true;
                        continue;
                    }
                    Ok(()) => {
                        self.frame_done(
                            &cap,
                            p.timestamp_ns,
                            p.flags | drain_flag,
                            frame_layout.num_planes,
                            frame_layout.bytesused,
                        );
                        self.stats.frames.fetch_add(1, Ordering::Relaxed);
                        self.stats
                            .bytes_copied
                            .fetch_add(format.picture_bytes(), Ordering::Relaxed);
                    }
                    Err(e) => {
                        log::warn!(
                            "session {}: cannot write CAPTURE {}: {e}",
                            self.id,
                            cap.index
                        );
                        self.stats.errors.fetch_add(1, Ordering::Relaxed);
                        self.frame_done(
                            &cap,
                            p.timestamp_ns,
                            DAEDALUS_FRAME_F_ERROR | drain_flag,
                            cap.num_planes,
                            [0; MAX_PLANES],
                        );
                    }
                }
                self.delivered_in_epoch = true;
                progress = true;
                continue;
            }
            if self.empty_drain_end {
                let Some(cap) = self.take_free() else {
                    return progress;
                };
                log::debug!(
                    "session {}: empty DRAIN_END on CAPTURE {}",
                    self.id,
                    cap.index
                );
                self.frame_done(
                    &cap,
                    0,
                    DAEDALUS_FRAME_F_DRAIN_END,
                    cap.num_planes,
                    [0; MAX_PLANES],
                );
                self.empty_drain_end = false;
                progress = true;
                continue;
            }
            return progress;
        }
    }

    fn receive(&mut self) -> bool {
        let mut progress = false;
        let mut failures = 0;
        while self.pending.len() < self.config.max_pending_frames {
            match self.decoder.receive() {
                Received::Frame(f) => {
                    progress = true;
                    self.accept(f);
                }
                Received::Again => break,
                Received::Eof => {
                    self.finish_drain();
                    progress = true;
                    break;
                }
                Received::Failed(e) => {
                    log::debug!("session {}: decode error: {e}", self.id);
                    self.stats.errors.fetch_add(1, Ordering::Relaxed);
                    progress = true;
                    failures += 1;
                    if failures >= FAILURES_PER_ROUND {
                        break;
                    }
                }
            }
        }
        progress
    }

    fn finish_drain(&mut self) {
        if let Drain::Active { mark: true } = self.drain {
            match self.pending.back_mut() {
                Some(last) => last.drain_end = true,
                None => self.empty_drain_end = true,
            }
        }
        self.drain = Drain::Idle;
        // Leaves FFmpeg's draining state so new bitstream can follow.
        self.decoder.flush();
        log::debug!("session {}: drain complete", self.id);
    }

    fn accept(&mut self, f: frame::Video) {
        let Some(depth) = Depth::of(f.format()) else {
            self.unsupported_run += 1;
            self.stats.errors.fetch_add(1, Ordering::Relaxed);
            if self.unsupported_run == 1 {
                log::warn!(
                    "session {}: dropping frames of unsupported pixel format {:?}",
                    self.id,
                    f.format()
                );
            }
            if !self.supported_seen && self.unsupported_run >= UNSUPPORTED_LIMIT && !self.failed {
                self.failed = true;
                log::error!(
                    "session {}: stream has no frames this daemon can output",
                    self.id
                );
                self.reply(DaemonBody::SessionError { error: -95 }); // -EOPNOTSUPP
            }
            return;
        };
        self.unsupported_run = 0;
        if !(MIN_SIZE..=MAX_SIZE).contains(&f.width())
            || !(MIN_SIZE..=MAX_SIZE).contains(&f.height())
        {
            self.stats.errors.fetch_add(1, Ordering::Relaxed);
            log::debug!(
                "session {}: dropping a {}x{} frame (outside {MIN_SIZE}..={MAX_SIZE})",
                self.id,
                f.width(),
                f.height()
            );
            return;
        }
        if self.skip_to_keyframe {
            if !f.is_key() {
                return; // silently: the seek asked for a restart at a keyframe
            }
            self.skip_to_keyframe = false;
        }
        self.supported_seen = true;
        let format = StreamFormat {
            width: f.width(),
            height: f.height(),
            depth,
            colorimetry: Colorimetry::from_ffmpeg(
                f.color_primaries(),
                f.color_transfer_characteristic(),
                f.color_space(),
                f.color_range(),
            ),
        };
        let mut flags = 0;
        if f.is_key() {
            flags |= DAEDALUS_FRAME_F_KEYFRAME;
        }
        if crate::decoder::is_damaged(&f) {
            flags |= DAEDALUS_FRAME_F_ERROR;
            self.stats.errors.fetch_add(1, Ordering::Relaxed);
        }
        // The pts FFmpeg carried from the packet that produced this frame (the
        // OUTPUT buffer's timestamp, as V4L2 wants); best-effort as fallback.
        let timestamp_ns = f.pts().or(f.timestamp()).map_or(0, |t| t as u64);
        self.pending.push_back(Pending {
            frame: f,
            format,
            timestamp_ns,
            flags,
            drain_end: false,
        });
    }

    fn feed(&mut self) -> bool {
        if self.pending.len() >= self.config.max_pending_frames || self.drain != Drain::Idle {
            return false;
        }
        if let Some(unit) = self.stream.as_ref().and_then(|s| s.front()) {
            return match self.decoder.send(&unit.data, unit.timestamp_ns as i64) {
                Sent::Again => false,
                Sent::Taken => {
                    self.stream.as_mut().and_then(|s| s.pop());
                    self.release_parsed();
                    true
                }
                Sent::Rejected(e) => {
                    log::debug!("session {}: access unit rejected: {e}", self.id);
                    self.stats.errors.fetch_add(1, Ordering::Relaxed);
                    self.stream.as_mut().and_then(|s| s.pop());
                    self.release_parsed();
                    true
                }
            };
        }
        let Some(front) = self.input.front() else {
            return false;
        };
        match front {
            Input::Drain => {
                // The parser's last access unit goes to the decoder first.
                if self.stream.as_mut().is_some_and(|s| s.finish() > 0) {
                    return true;
                }
                match self.decoder.send_eof() {
                    Sent::Again => false,
                    Sent::Taken => {
                        self.input.pop_front();
                        self.drain = Drain::Active { mark: true };
                        true
                    }
                    Sent::Rejected(e) => {
                        log::debug!(
                            "session {}: EOF refused ({e}); ending the drain now",
                            self.id
                        );
                        self.input.pop_front();
                        self.drain = Drain::Active { mark: true };
                        self.finish_drain();
                        true
                    }
                }
            }
            Input::Bitstream(b) => {
                let b = *b;
                if self.stream.is_some() && b.bytesused > 0 {
                    self.input.pop_front();
                    if self.parse_bitstream(&b) {
                        self.parsed.push_back(b);
                        self.release_parsed();
                    } else {
                        self.stats.errors.fetch_add(1, Ordering::Relaxed);
                        self.bitstream_done(&b, DAEDALUS_BITSTREAM_F_ERROR);
                    }
                    return true;
                }
                if b.bytesused == 0 {
                    // An empty packet would mean EOF to FFmpeg.
                    self.input.pop_front();
                    self.bitstream_done(&b, 0);
                    return true;
                }
                let sent = self.send_bitstream(&b);
                match sent {
                    Some(Sent::Again) => false,
                    Some(Sent::Taken) => {
                        self.input.pop_front();
                        self.bitstream_done(&b, 0);
                        true
                    }
                    Some(Sent::Rejected(e)) => {
                        log::debug!("session {}: bitstream {} rejected: {e}", self.id, b.index);
                        self.stats.errors.fetch_add(1, Ordering::Relaxed);
                        self.input.pop_front();
                        self.bitstream_done(&b, DAEDALUS_BITSTREAM_F_ERROR);
                        true
                    }
                    None => {
                        self.stats.errors.fetch_add(1, Ordering::Relaxed);
                        self.input.pop_front();
                        self.bitstream_done(&b, DAEDALUS_BITSTREAM_F_ERROR);
                        true
                    }
                }
            }
        }
    }

    /// Returns the parsed OUTPUT buffers once the decoder has taken every
    /// access unit made so far (the parser keeps its own copy of the rest).
    fn release_parsed(&mut self) {
        if self.stream.as_ref().is_some_and(|s| s.front().is_none()) {
            for b in std::mem::take(&mut self.parsed) {
                self.bitstream_done(&b, 0);
            }
        }
    }

    /// Maps the OUTPUT buffer and gives its bytes to the byte-stream parser
    /// (the parser copies them); false if the buffer cannot be read. The
    /// header probe sees the buffer as it is: with one access unit per
    /// buffer (what players send) the format is known after the first one,
    /// not only once the parser has seen where the second starts.
    fn parse_bitstream(&mut self, b: &Bitstream) -> bool {
        let Some(stream) = self.stream.as_mut() else {
            return false;
        };
        let Some((mapping, range)) =
            Self::output_mapping(self.id, &mut self.cache, &*self.transport, b)
        else {
            return false;
        };
        let probe = if self.announced.is_none() {
            self.probe.as_mut()
        } else {
            None
        };
        let probed = mapping.with_cpu_access(|m| {
            let bytes = &m.bytes()[range];
            let completed = stream.push(bytes, b.timestamp_ns);
            // A buffer of several access units (v4l2-ctl puts a whole file
            // in one): the first has the headers; the probe decoding all the
            // others too would hold back the main decoder (and the source
            // change) by as many pictures.
            let first = match completed {
                0 | 1 => bytes,
                n => stream.nth_newest(n).map_or(bytes, |u| &u.data[..]),
            };
            probe.and_then(|p| p.probe(first))
        });
        self.announce_probed(probed);
        true
    }

    /// The mapping of OUTPUT buffer `b` and its bitstream's byte range
    /// `[data_offset, bytesused)`, if that range is not empty and lies inside
    /// the buffer (callers handle `bytesused == 0` before).
    fn output_mapping<'c>(
        id: u32,
        cache: &'c mut BufferCache,
        transport: &dyn Transport,
        b: &Bitstream,
    ) -> Option<(&'c mut Mapping, Range<usize>)> {
        let buf = BufferRef {
            session: id,
            queue: Queue::Output,
            index: b.index,
            plane: 0,
            generation: b.generation,
            mem_seq: b.mem_seq,
        };
        let mapping = match cache.get(transport, buf) {
            Ok(m) => m,
            Err(e) => {
                log::warn!("session {id}: {e}");
                return None;
            }
        };
        if b.bytesused as usize > mapping.len() || b.bytesused > b.length {
            log::warn!(
                "session {id}: bitstream {} bytesused {} beyond buffer of {}",
                b.index,
                b.bytesused,
                mapping.len()
            );
            return None;
        }
        // `decode` already refused this; a `Bitstream` built elsewhere may not
        // have been checked, and an empty slice would mean EOF to FFmpeg.
        if b.data_offset >= b.bytesused {
            log::warn!(
                "session {id}: bitstream {} data_offset {} not below bytesused {}",
                b.index,
                b.data_offset,
                b.bytesused
            );
            return None;
        }
        Some((mapping, b.data_offset as usize..b.bytesused as usize))
    }

    /// Maps the OUTPUT buffer and gives its bytes to FFmpeg; None if the
    /// buffer cannot be read.
    fn send_bitstream(&mut self, b: &Bitstream) -> Option<Sent> {
        let (mapping, range) = Self::output_mapping(self.id, &mut self.cache, &*self.transport, b)?;
        let decoder = &mut self.decoder;
        let probe = if self.announced.is_none() {
            self.probe.as_mut()
        } else {
            None
        };
        let (sent, probed) = mapping.with_cpu_access(|m| {
            let bytes = &m.bytes()[range];
            let probed = probe.and_then(|p| p.probe(bytes));
            (decoder.send(bytes, b.timestamp_ns as i64), probed)
        });
        self.announce_probed(probed);
        Some(sent)
    }

    /// Announces the format the header probe found, ahead of the first frame.
    fn announce_probed(&mut self, probed: Option<ProbedFormat>) {
        let Some(p) = probed else {
            if self.announced.is_some() || self.probe.as_ref().is_some_and(|p| p.exhausted()) {
                self.probe = None;
            }
            return;
        };
        self.probe = None;
        // an unsupported or out-of-range stream is reported by the frame path
        let Some(depth) = Depth::of(p.pixel) else {
            return;
        };
        if self.announced.is_some()
            || !(MIN_SIZE..=MAX_SIZE).contains(&p.width)
            || !(MIN_SIZE..=MAX_SIZE).contains(&p.height)
        {
            return;
        }
        let format = StreamFormat {
            width: p.width,
            height: p.height,
            depth,
            colorimetry: Colorimetry::from_ffmpeg(p.primaries, p.transfer, p.space, p.range),
        };
        log::info!(
            "session {}: format {}x{} {}-bit (from the headers)",
            self.id,
            format.width,
            format.height,
            format.depth.bits()
        );
        self.announced = Some(format);
        self.reply(DaemonBody::Format(
            format.message(self.output_epoch, MIN_CAPTURE_BUFFERS),
        ));
    }
}

impl Drop for Session {
    fn drop(&mut self) {
        log::info!("{}", self.summary());
    }
}
