//! The daemon's main loop.
//!
//! Structure: the main thread owns the channel reads, signals and systemd
//! notifications; each session runs on its own thread fed through an mpsc
//! queue, and writes its replies to the shared channel itself (every write
//! is one whole message, so writers do not interleave). Why threads: FFmpeg
//! calls block for milliseconds per frame, and one slow or stuck stream must
//! not delay another session's buffers; a panic in a session also stays on
//! its thread (caught there and reported as SESSION_ERROR).
//!
//! Liveness (HELLO with `DAEDALUS_HELLO_F_ALIVE`): the main thread, and
//! only it, writes ALIVE at least every `DAEDALUS_ALIVE_INTERVAL_MS`. It
//! never waits for a decoder (it hands messages to the session threads
//! through their queues and joins only threads that have ended), so ALIVE
//! keeps coming while a session spends seconds on one frame; the kernel
//! then takes a slow decode for what it is, and only a daemon that sends
//! nothing at all for its `daemon_timeout_ms` (stopped, hung) for a stall.
//!
//! A session's messages are applied, and its buffers read and written, on
//! its thread only (FFmpeg's frame threads aside, see `lending`); that is
//! what lets it answer a take-back with RELEASED right after applying it
//! (see `session`). A take-back for a session without a thread (its
//! SESSION_OPEN failed, or the thread ended after a panic, having dropped
//! the session first) is answered here: nothing of it touches a buffer.

use crate::config::{Codec, Config};
use crate::convert::Converter;
use crate::decoder;
use crate::session::{Session, SessionConfig, SessionStats};
use crate::transport::Transport;
use daedalus_proto::uapi::{
    DAEDALUS_ALIVE_INTERVAL_MS, DAEDALUS_HELLO_F_ALIVE, DAEDALUS_HELLO_F_RELEASE_ACK,
};
use daedalus_proto::{
    Channel, ChannelError, DaemonBody, DaemonMsg, HelloInfo, KernelBody, KernelMsg, Queue,
};
use nix::errno::Errno;
use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
use nix::sys::signal::{SigSet, Signal};
use nix::sys::signalfd::{SfdFlags, SignalFd};
use std::collections::HashMap;
use std::os::fd::AsFd;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::Ordering;
use std::sync::mpsc::{self, Receiver, Sender};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};
use thiserror::Error;

/// Messages read per read() call.
const READ_BATCH: usize = 64;
/// STATUS= update period.
const STATUS_PERIOD: Duration = Duration::from_secs(2);
/// The `hello.flags` this daemon offers: RELEASED answers to take-backs and
/// ALIVE messages.
const HELLO_FLAGS: u32 = DAEDALUS_HELLO_F_RELEASE_ACK | DAEDALUS_HELLO_F_ALIVE;
/// The longest the kernel may go without an ALIVE (`DAEDALUS_ALIVE_INTERVAL_MS`).
const ALIVE_INTERVAL: Duration = Duration::from_millis(DAEDALUS_ALIVE_INTERVAL_MS as u64);
/// How often the main thread writes ALIVE: half the interval (as systemd's
/// watchdog is pinged at half WatchdogSec), so a wake-up that comes late
/// by up to half an interval (a loaded machine, a batch of SESSION_OPENs)
/// still keeps the promise.
const ALIVE_PERIOD: Duration = Duration::from_millis(ALIVE_INTERVAL.as_millis() as u64 / 2);
/// Failed ALIVE writes logged (the rest only counted, they recur every
/// period while the cause lasts).
const ALIVE_FAILURES_LOGGED: u64 = 5;
/// How often `shutdown` looks whether the session threads have ended.
const SHUTDOWN_POLL: Duration = Duration::from_millis(5);

#[derive(Debug, Error)]
pub enum ServiceError {
    #[error("channel device {path} did not appear within {waited_ms} ms (is the daedalus_v4l2 module loaded?): {last}")]
    DeviceMissing {
        path: String,
        waited_ms: u128,
        last: ChannelError,
    },
    #[error(transparent)]
    Channel(#[from] ChannelError),
    #[error("none of the configured codecs {0:?} is available in the linked FFmpeg")]
    NoCodecs(Vec<Codec>),
    #[error("signal set-up: {0}")]
    Signals(Errno),
    #[error("poll: {0}")]
    Poll(Errno),
    #[error("channel closed by the kernel (module unloaded?)")]
    Hangup,
    #[error("stopped by a signal before the channel was connected")]
    Stopped,
}

pub(crate) enum Command {
    Message(KernelBody),
    Shutdown,
}

struct SessionHandle {
    tx: Sender<Command>,
    thread: JoinHandle<()>,
    stats: Arc<SessionStats>,
    last_frames: u64,
}

/// Blocks SIGTERM and SIGINT and returns a signalfd for them. Called first
/// thing in main (before FFmpeg or any session starts a thread, so every
/// thread inherits the mask): a stop request during start-up (waiting for
/// the device) is then a clean exit too, not death by signal.
pub fn block_stop_signals() -> Result<SignalFd, ServiceError> {
    let mut mask = SigSet::empty();
    mask.add(Signal::SIGTERM);
    mask.add(Signal::SIGINT);
    mask.thread_block().map_err(ServiceError::Signals)?;
    SignalFd::with_flags(&mask, SfdFlags::SFD_NONBLOCK | SfdFlags::SFD_CLOEXEC)
        .map_err(ServiceError::Signals)
}

/// Waits up to `timeout` for a stop signal; true if one arrived.
fn stop_requested(signals: &SignalFd, timeout: Duration) -> Result<bool, ServiceError> {
    let ms = i32::try_from(timeout.as_millis()).unwrap_or(i32::MAX);
    let mut fds = [PollFd::new(signals.as_fd(), PollFlags::POLLIN)];
    match poll(
        &mut fds,
        PollTimeout::try_from(ms).unwrap_or(PollTimeout::MAX),
    ) {
        Ok(_) | Err(Errno::EINTR) => {}
        Err(e) => return Err(ServiceError::Poll(e)),
    }
    if fds[0]
        .revents()
        .is_some_and(|r| r.contains(PollFlags::POLLIN))
    {
        if let Ok(Some(info)) = signals.read_signal() {
            log::info!("signal {}: shutting down", info.ssi_signo);
        }
        return Ok(true);
    }
    Ok(false)
}

/// The codecs to announce: configured and present in the linked FFmpeg.
pub fn announced_codecs(config: &Config) -> Vec<Codec> {
    let mut out = Vec::new();
    for &c in &config.decoder.codecs {
        if out.contains(&c) {
            continue;
        }
        if decoder::available(c) {
            out.push(c);
        } else {
            log::warn!(
                "codec {c:?}: FFmpeg decoder \"{}\" not available, not announced",
                c.ffmpeg_decoder()
            );
        }
    }
    out
}

/// Opens the channel, retrying while the device is absent, up to the
/// configured wait.
fn open_channel(config: &Config, signals: &SignalFd) -> Result<Channel, ServiceError> {
    let start = Instant::now();
    let wait = config.device_wait();
    let mut logged = false;
    loop {
        match Channel::open(&config.device) {
            Ok(c) => return Ok(c),
            Err(
                e @ ChannelError::Open {
                    source: Errno::ENOENT | Errno::ENODEV | Errno::ENXIO,
                    ..
                },
            )
            | Err(e @ ChannelError::Busy(_)) => {
                if start.elapsed() >= wait {
                    return Err(ServiceError::DeviceMissing {
                        path: config.device.display().to_string(),
                        waited_ms: wait.as_millis(),
                        last: e,
                    });
                }
                if !logged {
                    log::info!(
                        "waiting up to {} ms for {}: {e}",
                        wait.as_millis(),
                        config.device.display()
                    );
                    logged = true;
                }
                let pause = Duration::from_millis(100).min(wait.saturating_sub(start.elapsed()));
                if stop_requested(signals, pause)? {
                    return Err(ServiceError::Stopped);
                }
            }
            Err(e) => return Err(e.into()),
        }
    }
}

/// How long the main loop may sleep in poll(): until the next watchdog ping
/// (every half WatchdogSec), STATUS= update or ALIVE (every [`ALIVE_PERIOD`]
/// when HELLO took `DAEDALUS_HELLO_F_ALIVE`; `since_alive` is `None`
/// without) is due. A fixed period would let channel traffic that wakes the
/// loop just before a ping was due push that ping almost a whole period
/// later: gaps of up to WatchdogSec, which systemd's watchdog would punish
/// on a busy system (measured under systemd in the QEMU guest: 3.2 s gaps
/// with WatchdogSec=4s). ALIVE is due far more often than either, so an
/// idle loop sleeps [`ALIVE_PERIOD`] at most while it is on.
fn poll_wait(
    watchdog: Option<Duration>,
    since_ping: Duration,
    since_status: Duration,
    since_alive: Option<Duration>,
) -> Duration {
    let mut due = STATUS_PERIOD.saturating_sub(since_status);
    if let Some(w) = watchdog {
        due = due.min((w / 2).saturating_sub(since_ping));
    }
    if let Some(a) = since_alive {
        due = due.min(ALIVE_PERIOD.saturating_sub(a));
    }
    // rounded up to whole ms (poll's unit), so the loop never wakes just
    // before the deadline and spins
    Duration::from_millis(due.as_micros().div_ceil(1000) as u64).max(Duration::from_millis(1))
}

/// HELLO with everything this daemon offers, stepping down for older
/// kernels, which answer EINVAL to what they do not know: a minor-2 kernel
/// to any `hello.flags`, a minor-0 one also to the continuous byte-stream
/// mask. `hello(continuous, flags)` says HELLO once. Returns the kernel's
/// answer and the flags it took: [`HELLO_FLAGS`] or 0.
///
/// The flags go together, both or none: RELEASE_ACK and ALIVE are both
/// protocol minor 3 (ALIVE joined before 1.3 was released), so a kernel
/// that knows one knows both, and one EINVAL means it knows neither.
fn hello_stepping_down(
    continuous: u32,
    mut hello: impl FnMut(u32, u32) -> Result<HelloInfo, ChannelError>,
) -> Result<(HelloInfo, u32), ChannelError> {
    let refused = |r: &Result<HelloInfo, ChannelError>| {
        matches!(
            r,
            Err(ChannelError::Hello {
                source: Errno::EINVAL,
                ..
            })
        )
    };
    let first = hello(continuous, HELLO_FLAGS);
    if !refused(&first) {
        return first.map(|h| (h, HELLO_FLAGS));
    }
    // A protocol 1.0-1.2 module: STREAMOFF does not wait for this daemon,
    // and its stall watchdog judges every session by its own replies.
    log::info!(
        "kernel module predates protocol 1.3 flags: neither confirming take-backs (RELEASED) \
         nor sending ALIVE"
    );
    let second = hello(continuous, 0);
    if continuous == 0 || !refused(&second) {
        return second.map(|h| (h, 0));
    }
    // A protocol 1.0 module: it has no field for the mask.
    log::info!("kernel module predates continuous byte streams; not advertised");
    hello(0, 0).map(|h| (h, 0))
}

/// The RELEASED answer to a take-back: FLUSH (OUTPUT) or CAPTURE_RESET
/// (CAPTURE), with the message's epoch.
fn release_for(body: &KernelBody) -> Option<DaemonBody> {
    match *body {
        KernelBody::Flush { epoch } => Some(DaemonBody::Released {
            queue: Queue::Output,
            epoch,
        }),
        KernelBody::CaptureReset { epoch } => Some(DaemonBody::Released {
            queue: Queue::Capture,
            epoch,
        }),
        _ => None,
    }
}

fn notify(states: &[sd_notify::NotifyState<'_>]) {
    if let Err(e) = sd_notify::notify(states) {
        log::debug!("sd_notify: {e}");
    }
}

pub(crate) fn session_thread(
    session: Session,
    rx: Receiver<Command>,
    transport: Arc<dyn Transport>,
) -> std::io::Result<JoinHandle<()>> {
    let id = session.id();
    std::thread::Builder::new()
        .name(format!("session-{id}"))
        .spawn(move || {
            let mut session = session;
            let result = catch_unwind(AssertUnwindSafe(|| {
                while let Ok(first) = rx.recv() {
                    // Apply everything queued, then pump once.
                    let mut next = Some(first);
                    while let Some(cmd) = next {
                        match cmd {
                            Command::Message(KernelBody::SessionClose) => return,
                            Command::Message(body) => session.apply(body),
                            Command::Shutdown => {
                                session.shutdown();
                                return;
                            }
                        }
                        next = rx.try_recv().ok();
                    }
                    session.pump();
                }
            }));
            // The session (decoder, frame threads, mappings) goes before the
            // receiver: once the main thread cannot send to this thread any
            // more, nothing of the session touches a buffer (see `dispatch`).
            drop(session);
            if result.is_err() {
                log::error!("session {id}: panicked; reporting SESSION_ERROR");
                let msg = DaemonMsg {
                    session: id,
                    body: DaemonBody::SessionError { error: -5 }, // -EIO
                };
                if let Err(e) = transport.send(&msg) {
                    log::warn!("session {id}: SESSION_ERROR not sent: {e}");
                }
            }
            drop(rx);
        })
}

/// The main thread's ALIVE messages (HELLO took `DAEDALUS_HELLO_F_ALIVE`).
#[derive(Debug, Default)]
struct Alive {
    /// When the last one was written (or tried); `None` before the first.
    last: Option<Instant>,
    /// Writes the kernel did not accept, for rate-limited logging.
    failures: u64,
}

impl Alive {
    /// Time since the last ALIVE, for [`poll_wait`]; `None` before the
    /// first one, which is then due at once.
    fn since(&self) -> Duration {
        self.last.map_or(ALIVE_PERIOD, |t| t.elapsed())
    }

    /// Writes ALIVE if one is due. A failure is logged (the first
    /// [`ALIVE_FAILURES_LOGGED`]), never fatal: the next try comes one
    /// period later, and a channel that is gone shows in poll().
    fn send_if_due(&mut self, channel: &Channel) {
        if self.since() < ALIVE_PERIOD {
            return;
        }
        self.last = Some(Instant::now());
        if let Err(e) = channel.send(&DaemonMsg::alive()) {
            self.failures += 1;
            if self.failures <= ALIVE_FAILURES_LOGGED {
                log::warn!(
                    "ALIVE not accepted by the kernel: {e}{}",
                    if self.failures == ALIVE_FAILURES_LOGGED {
                        " (further failures not logged)"
                    } else {
                        ""
                    }
                );
            }
        }
    }
}

pub struct Service {
    signals: SignalFd,
    channel: Arc<Channel>,
    converter: Arc<dyn Converter>,
    session_config: SessionConfig,
    sessions: HashMap<u32, SessionHandle>,
    finished: Vec<JoinHandle<()>>,
    /// `Some` when HELLO took `DAEDALUS_HELLO_F_ALIVE`.
    alive: Option<Alive>,
}

impl Service {
    /// Opens the channel and says HELLO.
    pub fn start(
        config: &Config,
        converter: Arc<dyn Converter>,
        signals: SignalFd,
    ) -> Result<Service, ServiceError> {
        let codecs = announced_codecs(config);
        if codecs.is_empty() {
            return Err(ServiceError::NoCodecs(config.decoder.codecs.clone()));
        }
        let channel = open_channel(config, &signals)?;
        let fourccs: Vec<u32> = codecs.iter().map(|c| c.fourcc()).collect();
        // Codecs with a byte-stream parser take OUTPUT buffers of any
        // chunking; the kernel advertises V4L2_FMT_FLAG_CONTINUOUS_BYTESTREAM.
        let continuous = codecs
            .iter()
            .enumerate()
            .filter(|(_, c)| crate::bytestream::ByteStream::new(**c).is_some())
            .fold(0u32, |mask, (i, _)| mask | 1 << i);
        let (hello, flags) = hello_stepping_down(continuous, |mask, flags| {
            channel.hello_flags(&fourccs, mask, flags)
        })?;
        let release_ack = flags & DAEDALUS_HELLO_F_RELEASE_ACK != 0;
        let alive = flags & DAEDALUS_HELLO_F_ALIVE != 0;
        log::info!(
            "connected to {} (protocol {}.{}), codecs {:?}, take-backs {}, liveness {}",
            config.device.display(),
            hello.version_major,
            hello.version_minor,
            codecs,
            if release_ack {
                "confirmed (RELEASED)"
            } else {
                "not confirmed"
            },
            if alive {
                format!(
                    "ALIVE every {} ms (at most {})",
                    ALIVE_PERIOD.as_millis(),
                    ALIVE_INTERVAL.as_millis()
                )
            } else {
                "per session (no ALIVE)".to_string()
            }
        );
        let session_config = SessionConfig {
            threads: config.decoder.threads.0,
            max_pending_frames: config.decoder.max_pending_frames.0 as usize,
            zero_copy: config.decoder.zero_copy,
            release_ack,
        };
        Ok(Service::new(
            signals,
            channel,
            converter,
            session_config,
            alive,
        ))
    }

    /// A service on a channel that has said HELLO; `alive`: the kernel took
    /// `DAEDALUS_HELLO_F_ALIVE`.
    fn new(
        signals: SignalFd,
        channel: Channel,
        converter: Arc<dyn Converter>,
        session_config: SessionConfig,
        alive: bool,
    ) -> Service {
        Service {
            signals,
            channel: Arc::new(channel),
            converter,
            session_config,
            sessions: HashMap::new(),
            finished: Vec::new(),
            alive: alive.then(Alive::default),
        }
    }

    /// ALIVE, if HELLO took the flag and one is due. Main thread only.
    fn alive_if_due(&mut self) {
        if let Some(a) = &mut self.alive {
            a.send_if_due(&self.channel);
        }
    }

    fn session_error(&self, session: u32, errno: i32) {
        let msg = DaemonMsg {
            session,
            body: DaemonBody::SessionError { error: -errno },
        };
        if let Err(e) = self.channel.send(&msg) {
            log::warn!("session {session}: SESSION_ERROR not sent: {e}");
        }
    }

    fn dispatch(&mut self, msg: KernelMsg) {
        let id = msg.session;
        if let KernelBody::SessionOpen(open) = msg.body {
            if self.sessions.contains_key(&id) {
                log::warn!("session {id}: opened twice; ignoring the second SESSION_OPEN");
                return;
            }
            let stats = Arc::new(SessionStats::default());
            let transport: Arc<dyn Transport> = self.channel.clone();
            let session = match Session::new(
                id,
                open,
                transport.clone(),
                self.converter.clone(),
                self.session_config,
                stats.clone(),
            ) {
                Ok(s) => s,
                Err(e) => {
                    log::error!("session {id}: {e}");
                    self.session_error(id, Errno::EINVAL as i32);
                    return;
                }
            };
            let (tx, rx) = mpsc::channel();
            match session_thread(session, rx, transport) {
                Ok(thread) => {
                    self.sessions.insert(
                        id,
                        SessionHandle {
                            tx,
                            thread,
                            stats,
                            last_frames: 0,
                        },
                    );
                }
                Err(e) => {
                    log::error!("session {id}: cannot start a thread: {e}");
                    self.session_error(id, Errno::ENOMEM as i32);
                }
            }
            return;
        }
        let close = matches!(msg.body, KernelBody::SessionClose);
        let Some(handle) = self.sessions.get(&id) else {
            if !close {
                log::debug!("message for unknown session {id}: {:?}", msg.body);
            }
            self.release_orphan(id, &msg.body);
            return;
        };
        if handle.tx.send(Command::Message(msg.body)).is_err() {
            log::warn!("session {id}: thread is gone; dropping it");
            self.retire(id);
            self.release_orphan(id, &msg.body);
        } else if close {
            log::info!("session {id}: closed");
            self.retire(id);
        }
    }

    /// Answers a take-back of a session that has no thread (never started,
    /// or ended and dropped its state): it holds no buffer, so the kernel's
    /// STREAMOFF need not wait out its timeout.
    fn release_orphan(&self, session: u32, body: &KernelBody) {
        if !self.session_config.release_ack {
            return;
        }
        if let Some(body) = release_for(body) {
            if let Err(e) = self.channel.send(&DaemonMsg { session, body }) {
                log::debug!("session {session}: {body:?} not accepted: {e}");
            }
        }
    }

    fn retire(&mut self, id: u32) {
        if let Some(h) = self.sessions.remove(&id) {
            self.finished.push(h.thread);
        }
    }

    fn reap(&mut self) {
        let (done, running): (Vec<_>, Vec<_>) = std::mem::take(&mut self.finished)
            .into_iter()
            .partition(|t| t.is_finished());
        self.finished = running;
        for t in done {
            let _ = t.join();
        }
    }

    fn status(&mut self, elapsed: Duration) -> String {
        let secs = elapsed.as_secs_f64().max(0.001);
        let mut total = 0.0;
        let mut parts = Vec::new();
        let mut ids: Vec<_> = self.sessions.keys().copied().collect();
        ids.sort_unstable();
        for id in ids {
            if let Some(h) = self.sessions.get_mut(&id) {
                let frames = h.stats.frames.load(Ordering::Relaxed);
                let fps = (frames - h.last_frames) as f64 / secs;
                h.last_frames = frames;
                total += fps;
                parts.push(format!("s{id} {fps:.1}"));
            }
        }
        if parts.is_empty() {
            "idle, 0 sessions".to_string()
        } else {
            format!(
                "{} sessions, {total:.1} fps ({})",
                parts.len(),
                parts.join(", ")
            )
        }
    }

    /// Serves the channel until SIGTERM/SIGINT.
    pub fn run(mut self) -> Result<(), ServiceError> {
        let watchdog = sd_notify::watchdog_enabled();
        notify(&[
            sd_notify::NotifyState::Ready,
            sd_notify::NotifyState::Status("ready, 0 sessions"),
        ]);
        log::info!(
            "ready{}",
            watchdog
                .map(|w| format!(", watchdog {} ms", w.as_millis()))
                .unwrap_or_default()
        );

        let mut last_status = Instant::now();
        let mut last_ping = Instant::now();
        let mut batch = Vec::with_capacity(READ_BATCH);
        let mut bad_messages: u64 = 0;
        // The first ALIVE at once: the kernel's clock runs since HELLO.
        self.alive_if_due();
        let result = loop {
            let wait = poll_wait(
                watchdog,
                last_ping.elapsed(),
                last_status.elapsed(),
                self.alive.as_ref().map(Alive::since),
            );
            let timeout = PollTimeout::try_from(wait.as_millis().min(60_000) as i32)
                .unwrap_or(PollTimeout::NONE);
            let (chan_ev, sig_ev) = {
                let mut fds = [
                    PollFd::new(self.channel.as_fd(), PollFlags::POLLIN),
                    PollFd::new(self.signals.as_fd(), PollFlags::POLLIN),
                ];
                match poll(&mut fds, timeout) {
                    Ok(_) | Err(Errno::EINTR) => {}
                    Err(e) => break Err(ServiceError::Poll(e)),
                }
                (
                    fds[0].revents().unwrap_or(PollFlags::empty()),
                    fds[1].revents().unwrap_or(PollFlags::empty()),
                )
            };
            if sig_ev.contains(PollFlags::POLLIN) {
                if let Ok(Some(info)) = self.signals.read_signal() {
                    log::info!("signal {}: shutting down", info.ssi_signo);
                }
                break Ok(());
            }
            if chan_ev.intersects(PollFlags::POLLERR | PollFlags::POLLHUP | PollFlags::POLLNVAL)
                && !chan_ev.contains(PollFlags::POLLIN)
            {
                break Err(ServiceError::Hangup);
            }
            if chan_ev.contains(PollFlags::POLLIN) {
                loop {
                    batch.clear();
                    match self.channel.read_batch(READ_BATCH, &mut batch) {
                        Ok(0) => break,
                        Ok(_) => {}
                        Err(ChannelError::Io(Errno::EAGAIN)) => break,
                        Err(e) => return Err(e.into()),
                    }
                    for m in batch.drain(..) {
                        match m {
                            Ok(msg) => self.dispatch(msg),
                            Err(e) => {
                                bad_messages += 1;
                                if bad_messages <= 10 {
                                    log::warn!("invalid message from the kernel: {e}");
                                }
                            }
                        }
                    }
                    if batch.capacity() > READ_BATCH * 4 {
                        batch.shrink_to(READ_BATCH);
                    }
                    // A long burst (SESSION_OPENs create decoders here)
                    // does not hold ALIVE back.
                    self.alive_if_due();
                }
            }
            self.alive_if_due();
            self.reap();
            if let Some(w) = watchdog {
                if last_ping.elapsed() >= w / 2 {
                    notify(&[sd_notify::NotifyState::Watchdog]);
                    last_ping = Instant::now();
                }
            }
            if last_status.elapsed() >= STATUS_PERIOD {
                let status = self.status(last_status.elapsed());
                notify(&[sd_notify::NotifyState::Status(&status)]);
                last_status = Instant::now();
            }
        };
        self.shutdown();
        result
    }

    /// Every session returns its buffers, then its thread ends.
    fn shutdown(&mut self) {
        notify(&[
            sd_notify::NotifyState::Stopping,
            sd_notify::NotifyState::Status("stopping"),
        ]);
        for (_, h) in self.sessions.drain() {
            let _ = h.tx.send(Command::Shutdown);
            self.finished.push(h.thread);
        }
        // A session thread first finishes the frame it is decoding, which
        // on a slow machine may take longer than the kernel's
        // daemon_timeout_ms: wait for the threads without blocking on one,
        // still sending ALIVE, so that their buffers come back through the
        // channel instead of the kernel failing the sessions.
        loop {
            self.reap();
            if self.finished.is_empty() {
                break;
            }
            self.alive_if_due();
            std::thread::sleep(SHUTDOWN_POLL);
        }
        log::info!("stopped");
    }
}

#[cfg(test)]
mod hello_tests {
    use super::*;

    fn answer(minor: u32) -> HelloInfo {
        HelloInfo {
            version_major: 1,
            version_minor: minor,
            msg_size: daedalus_proto::MSG_SIZE as u32,
        }
    }

    fn refused(source: Errno) -> ChannelError {
        ChannelError::Hello {
            major: 1,
            minor: 3,
            source,
        }
    }

    /// A kernel of protocol minor `minor` as far as HELLO is concerned.
    fn kernel(
        minor: u32,
        calls: &mut Vec<(u32, u32)>,
    ) -> impl FnMut(u32, u32) -> Result<HelloInfo, ChannelError> + '_ {
        move |mask, flags| {
            calls.push((mask, flags));
            if (flags != 0 && minor < 3) || (mask != 0 && minor < 1) {
                Err(refused(Errno::EINVAL))
            } else {
                Ok(answer(minor))
            }
        }
    }

    #[test]
    fn hello_offers_release_ack_and_alive() {
        assert_eq!(
            HELLO_FLAGS,
            DAEDALUS_HELLO_F_RELEASE_ACK | DAEDALUS_HELLO_F_ALIVE
        );
        assert_eq!(HELLO_FLAGS, 0b11, "bits 0 and 1 of the header");
    }

    #[test]
    fn flags_are_announced_and_dropped_for_older_kernels() {
        let both = HELLO_FLAGS;
        let mut calls = Vec::new();
        let (h, flags) = hello_stepping_down(0b11, kernel(3, &mut calls)).unwrap();
        assert_eq!((h.version_minor, flags), (3, both));
        assert_eq!(calls, [(0b11, both)]);

        let mut calls = Vec::new();
        let (h, flags) = hello_stepping_down(0b11, kernel(2, &mut calls)).unwrap();
        assert_eq!((h.version_minor, flags), (2, 0));
        assert_eq!(calls, [(0b11, both), (0b11, 0)]);

        let mut calls = Vec::new();
        let (h, flags) = hello_stepping_down(0b11, kernel(0, &mut calls)).unwrap();
        assert_eq!((h.version_minor, flags), (0, 0));
        assert_eq!(calls, [(0b11, both), (0b11, 0), (0, 0)]);

        // No mask to drop: a refusal without flags is final.
        let mut calls = Vec::new();
        let err = hello_stepping_down(0, |mask, flags| {
            calls.push((mask, flags));
            Err::<HelloInfo, _>(refused(Errno::EINVAL))
        })
        .unwrap_err();
        assert!(matches!(
            err,
            ChannelError::Hello {
                source: Errno::EINVAL,
                ..
            }
        ));
        assert_eq!(calls, [(0, both), (0, 0)]);
    }

    #[test]
    fn a_refused_flag_drops_both() {
        // Both or none, never one: a kernel that refuses the pair (here an
        // unreleased 1.3 build that knew RELEASE_ACK only) gets no flag,
        // not RELEASE_ACK alone.
        let mut calls = Vec::new();
        let (h, flags) = hello_stepping_down(1, |mask, flags| {
            calls.push((mask, flags));
            if flags & !DAEDALUS_HELLO_F_RELEASE_ACK != 0 {
                Err(refused(Errno::EINVAL))
            } else {
                Ok(answer(3))
            }
        })
        .unwrap();
        assert_eq!((h.version_minor, flags), (3, 0));
        assert_eq!(calls, [(1, HELLO_FLAGS), (1, 0)]);
    }

    #[test]
    fn other_hello_errors_are_not_retried() {
        let mut calls = 0;
        let err = hello_stepping_down(1, |_, _| {
            calls += 1;
            Err::<HelloInfo, _>(refused(Errno::EPROTONOSUPPORT))
        })
        .unwrap_err();
        assert!(matches!(
            err,
            ChannelError::Hello {
                source: Errno::EPROTONOSUPPORT,
                ..
            }
        ));
        assert_eq!(calls, 1);
    }

    #[test]
    fn take_backs_are_answered_with_their_queue_and_epoch() {
        assert_eq!(
            release_for(&KernelBody::Flush { epoch: 3 }),
            Some(DaemonBody::Released {
                queue: Queue::Output,
                epoch: 3
            })
        );
        assert_eq!(
            release_for(&KernelBody::CaptureReset { epoch: 8 }),
            Some(DaemonBody::Released {
                queue: Queue::Capture,
                epoch: 8
            })
        );
        assert_eq!(release_for(&KernelBody::Drain), None);
        assert_eq!(release_for(&KernelBody::SessionClose), None);
    }
}

#[cfg(test)]
mod poll_wait_tests {
    use super::{poll_wait, ALIVE_INTERVAL, ALIVE_PERIOD, STATUS_PERIOD};
    use daedalus_proto::uapi::DAEDALUS_ALIVE_INTERVAL_MS;
    use std::time::Duration;

    const MS: Duration = Duration::from_millis(1);

    #[test]
    fn sleeps_until_the_ping_is_due() {
        let w = Some(Duration::from_secs(4));
        assert_eq!(
            poll_wait(w, Duration::ZERO, Duration::ZERO, None),
            2000 * MS
        );
        // woken by traffic 1.9 s after the last ping: 0.1 s left, not 2 s
        assert_eq!(poll_wait(w, 1900 * MS, Duration::ZERO, None), 100 * MS);
    }

    #[test]
    fn status_update_can_come_first() {
        let w = Some(Duration::from_secs(20));
        assert_eq!(
            poll_wait(w, Duration::ZERO, 500 * MS, None),
            STATUS_PERIOD - 500 * MS
        );
        assert_eq!(poll_wait(None, Duration::ZERO, 1999 * MS, None), MS);
    }

    #[test]
    fn overdue_and_fractional_deadlines_do_not_spin() {
        let w = Some(Duration::from_secs(4));
        assert_eq!(
            poll_wait(w, Duration::from_secs(9), Duration::ZERO, None),
            MS
        );
        // 0.3 ms left rounds up to 1 ms, never down to a zero timeout
        let left = poll_wait(
            w,
            2000 * MS - Duration::from_micros(300),
            Duration::ZERO,
            None,
        );
        assert_eq!(left, MS);
        // the same for ALIVE
        let almost = ALIVE_PERIOD - Duration::from_micros(300);
        assert_eq!(
            poll_wait(w, Duration::ZERO, Duration::ZERO, Some(almost)),
            MS
        );
        let overdue = Some(Duration::from_secs(3));
        assert_eq!(poll_wait(None, Duration::ZERO, Duration::ZERO, overdue), MS);
    }

    #[test]
    fn alive_period_comes_from_the_header() {
        assert_eq!(ALIVE_INTERVAL, Duration::from_millis(250));
        assert_eq!(
            ALIVE_INTERVAL.as_millis(),
            u128::from(DAEDALUS_ALIVE_INTERVAL_MS)
        );
        assert_eq!(ALIVE_PERIOD, ALIVE_INTERVAL / 2);
    }

    #[test]
    fn sleeps_until_alive_is_due() {
        // ALIVE (every 125 ms) is due long before ping and STATUS.
        let w = Some(Duration::from_secs(4));
        let zero = Duration::ZERO;
        assert_eq!(poll_wait(w, zero, zero, Some(zero)), ALIVE_PERIOD);
        assert_eq!(poll_wait(None, zero, zero, Some(zero)), ALIVE_PERIOD);
        // woken by traffic 100 ms after the last ALIVE: 25 ms left
        assert_eq!(
            poll_wait(w, zero, zero, Some(100 * MS)),
            ALIVE_PERIOD - 100 * MS
        );
        // an earlier ping or STATUS still wins
        assert_eq!(
            poll_wait(Some(200 * MS), 90 * MS, zero, Some(zero)),
            10 * MS
        );
        assert_eq!(poll_wait(w, zero, 1990 * MS, Some(zero)), 10 * MS);
        // without ALIVE (older kernel) the loop sleeps as before
        assert_eq!(poll_wait(w, zero, zero, None), 2000 * MS);
    }

    /// The main loop's schedule, simulated: woken by channel traffic at
    /// random times or by the poll timeout, late by up to `late` (a loaded
    /// machine), it writes ALIVE whenever one is due. `scheduled`: poll's
    /// timeout accounts for ALIVE (false: only for ping and STATUS, as
    /// before ALIVE). Returns the longest gap between two ALIVEs.
    fn longest_alive_gap(late: Duration, seed: u64, scheduled: bool) -> Duration {
        let mut rng = seed;
        let mut next = || {
            rng = rng
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            Duration::from_micros((rng >> 33) % 1_000_000)
        };
        let (mut now, mut last_alive, mut longest) =
            (Duration::ZERO, Duration::ZERO, Duration::ZERO);
        let (mut last_ping, mut last_status) = (Duration::ZERO, Duration::ZERO);
        let w = Some(Duration::from_secs(4));
        while now < Duration::from_secs(600) {
            let wait = poll_wait(
                w,
                now - last_ping,
                now - last_status,
                scheduled.then_some(now - last_alive),
            );
            // traffic within 0..1 s, whichever comes first, then the delay
            let traffic = next();
            let delay =
                Duration::from_micros(next().as_micros() as u64 % (late.as_micros() as u64 + 1));
            now += wait.min(traffic) + delay;
            if now - last_alive >= ALIVE_PERIOD {
                longest = longest.max(now - last_alive);
                last_alive = now;
            }
            if now - last_ping >= Duration::from_secs(2) {
                last_ping = now;
            }
            if now - last_status >= STATUS_PERIOD {
                last_status = now;
            }
        }
        longest
    }

    #[test]
    fn alive_keeps_the_interval_whatever_wakes_the_loop() {
        // On time: the period and poll's 1 ms rounding.
        let gap = longest_alive_gap(Duration::ZERO, 1, true);
        assert!(gap <= ALIVE_PERIOD + MS, "{gap:?}");
        // Late by up to half an interval: still within the interval.
        for seed in 1..5 {
            let gap = longest_alive_gap(ALIVE_PERIOD - MS, seed, true);
            assert!(gap <= ALIVE_INTERVAL, "seed {seed}: {gap:?}");
        }
        // Without ALIVE in poll's timeout only traffic would wake the loop
        // in time: gaps far beyond the interval.
        let gap = longest_alive_gap(Duration::ZERO, 1, false);
        assert!(gap > 2 * ALIVE_INTERVAL, "{gap:?}");
    }
}

#[cfg(test)]
mod alive_tests {
    use super::*;
    use crate::convert::Cpu;
    use daedalus_proto::MSG_SIZE;
    use nix::sys::pthread::pthread_kill;
    use std::os::unix::thread::JoinHandleExt;

    /// Runs a `Service` on one end of a socketpair (the other end plays the
    /// kernel) for `window`, then stops it with SIGUSR1 to its thread (the
    /// only thread that blocks it, so the signal reaches its signalfd and
    /// nothing else). Returns what it wrote, with arrival times from start.
    fn run_service(alive: bool, window: Duration) -> Vec<(Duration, DaemonMsg)> {
        // Datagrams keep message boundaries, like the channel device.
        let (k, d) = std::os::unix::net::UnixDatagram::pair().unwrap();
        k.set_nonblocking(true).unwrap();
        d.set_nonblocking(true).unwrap();
        let (k, d) = (std::os::fd::OwnedFd::from(k), std::os::fd::OwnedFd::from(d));
        let kernel = Channel::from_fd(k);
        let (ready_tx, ready_rx) = mpsc::channel();
        let thread = std::thread::spawn(move || {
            let mut mask = SigSet::empty();
            mask.add(Signal::SIGUSR1);
            mask.thread_block().unwrap();
            let signals =
                SignalFd::with_flags(&mask, SfdFlags::SFD_NONBLOCK | SfdFlags::SFD_CLOEXEC)
                    .unwrap();
            let config = SessionConfig {
                threads: 1,
                max_pending_frames: 4,
                zero_copy: false,
                release_ack: true,
            };
            let service = Service::new(
                signals,
                Channel::from_fd(d),
                Arc::new(Cpu::default()),
                config,
                alive,
            );
            ready_tx.send(()).unwrap();
            service.run()
        });
        // SIGUSR1 is blocked in the service thread from here on.
        ready_rx.recv().unwrap();
        let start = Instant::now();
        let mut out = Vec::new();
        while let Some(left) = window.checked_sub(start.elapsed()) {
            if !kernel.wait_readable(left).unwrap() {
                continue;
            }
            let mut buf = [0u8; MSG_SIZE];
            match kernel.read_raw(&mut buf) {
                Ok(n) => {
                    assert_eq!(n, MSG_SIZE);
                    out.push((start.elapsed(), DaemonMsg::decode(&buf).unwrap()));
                }
                Err(ChannelError::Io(Errno::EAGAIN)) => {}
                Err(e) => panic!("{e}"),
            }
        }
        pthread_kill(thread.as_pthread_t(), Signal::SIGUSR1).unwrap();
        thread.join().unwrap().expect("stopped by the signal");
        out
    }

    #[test]
    fn the_main_loop_writes_alive_while_idle() {
        let window = Duration::from_millis(1000);
        let msgs = run_service(true, window);
        assert!(
            msgs.iter().all(|(_, m)| *m == DaemonMsg::alive()),
            "only ALIVE (session 0) from an idle daemon: {msgs:?}"
        );
        let times: Vec<Duration> = msgs.iter().map(|(t, _)| *t).collect();
        eprintln!("ALIVE at {times:?}");
        // One at once, then every ALIVE_PERIOD (125 ms): about 8 in 1 s.
        // The bounds leave room for a loaded test machine (other tests
        // decode video in parallel); the schedule itself is checked exactly
        // by the poll_wait tests.
        assert!(times.len() >= 4, "{times:?}");
        assert!(times[0] < Duration::from_millis(500), "{times:?}");
        let gaps: Vec<Duration> = times.windows(2).map(|w| w[1] - w[0]).collect();
        assert!(
            gaps.iter().all(|&g| g < 4 * ALIVE_INTERVAL),
            "gaps {gaps:?}"
        );
        // Never faster than the period (give or take the reader's latency):
        // ALIVE does not spin.
        assert!(times.len() <= 2 + (window.as_millis() / ALIVE_PERIOD.as_millis()) as usize);
    }

    #[test]
    fn failed_alive_writes_are_counted_not_fatal_nor_retried_at_once() {
        let (k, d) = std::os::unix::net::UnixDatagram::pair().unwrap();
        d.set_nonblocking(true).unwrap();
        drop(k); // the "kernel" is gone: every write fails
        let chan = Channel::from_fd(std::os::fd::OwnedFd::from(d));
        let mut alive = Alive::default();
        assert_eq!(alive.since(), ALIVE_PERIOD, "the first one is due at once");
        alive.send_if_due(&chan);
        assert_eq!(alive.failures, 1);
        assert!(alive.since() < ALIVE_PERIOD, "next try one period later");
        alive.send_if_due(&chan);
        assert_eq!(alive.failures, 1);
        for n in 2..=ALIVE_FAILURES_LOGGED + 3 {
            alive.last = Some(Instant::now() - ALIVE_PERIOD);
            alive.send_if_due(&chan);
            assert_eq!(alive.failures, n);
        }
    }

    #[test]
    fn no_alive_without_the_hello_flag() {
        let msgs = run_service(false, Duration::from_millis(400));
        assert!(msgs.is_empty(), "{msgs:?}");
    }
}
