//! Flow control and session lifetime: what one client may do to the
//! channel and to the other clients (per-session outboxes, back-pressure,
//! `max_sessions`), recovery from a failed session, and two hostile clients
//! run against the real daemon from the guest suite (`--flood`,
//! `--export-rmmod`).

use std::os::fd::{AsRawFd, OwnedFd};
use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};

use daedalus_proto::{uapi, KernelBody, KernelMsg, MSG_SIZE};
use v4l2r::ioctl::{self, ExpbufFlags};
use v4l2r::memory::MemoryType;
use v4l2r::nix::errno::Errno;
use v4l2r::nix::sys::mman::{mmap, munmap, MapFlags, ProtFlags};

use crate::{
    busy_session, v4l2_err, wait_bitstream, wait_open, Args, Client, FakeDaemon, Report, CAP_Q,
    OUT_Q, WAIT,
};

const MAX_SESSIONS_PARAM: &str = "/sys/module/daedalus_v4l2/parameters/max_sessions";
/// Unread messages one session may have (DAEDALUS_OUTBOX_MSGS in the module).
const OUTBOX_MSGS: usize = 64;
/// OUTPUT buffers of the flooding client.
const FLOOD_BUFFERS: u32 = 16;

/// Runs `f` with module parameter `path` set to `value`, restoring it after.
pub(crate) fn with_param<T>(path: &str, value: &str, f: impl FnOnce() -> Result<T>) -> Result<T> {
    let old = std::fs::read_to_string(path).with_context(|| format!("reading {path}"))?;
    std::fs::write(path, value).with_context(|| format!("writing {path}"))?;
    let outcome = f();
    std::fs::write(path, old.trim()).with_context(|| format!("restoring {path}"))?;
    outcome
}

/// Every message the kernel has for the fake daemon now, read to the end.
pub(crate) fn read_all(d: &mut FakeDaemon) -> Result<Vec<KernelMsg>> {
    loop {
        let before = d.pending.len();
        d.collect(Duration::from_millis(200))?;
        if d.pending.len() == before {
            return Ok(std::mem::take(&mut d.pending));
        }
    }
}

/// One flood cycle: a seek with every OUTPUT buffer queued again, the
/// most messages a client can make the kernel send per STREAMOFF/STREAMON.
fn flood_cycle(c: &Client) -> Result<(), Errno> {
    c.streamoff(OUT_Q)?;
    for i in 0..FLOOD_BUFFERS {
        c.qbuf_out(i, 64, i64::from(i) + 1)?;
    }
    c.streamon(OUT_Q)
}

fn flood_client(args: &Args) -> Result<Client> {
    let mut c = Client::open(args)?;
    c.setup_output(FLOOD_BUFFERS)?;
    for i in 0..FLOOD_BUFFERS {
        c.qbuf_out(i, 64, i64::from(i) + 1)
            .map_err(v4l2_err("QBUF(OUTPUT)"))?;
    }
    c.streamon(OUT_Q).map_err(v4l2_err("STREAMON(OUTPUT)"))?;
    Ok(c)
}

/// One client floods the channel while the daemon reads nothing: its own
/// unread messages stay bounded, none of its ioctls fail, and the other
/// clients' sessions neither fail nor wait behind its backlog.
fn flood_case(r: &mut Report, args: &Args, d: &mut FakeDaemon) -> Result<()> {
    let (drained, drained_session) = crate::sequences::drained(args, d)?;
    d.pending.clear();

    let flooder = flood_client(args)?;
    let cycles = 300;
    let failed = (0..cycles).find_map(|i| flood_cycle(&flooder).err().map(|e| (i, e)));
    r.check(
        "flood: 300 seeks with 16 OUTPUT buffers each, daemon not reading",
        failed.is_none(),
        format!("first failure {failed:?}"),
    );

    // dev-decoder.rst "Drain" then a CAPTURE restart: vb2 hands the
    // pre-queued CAPTURE buffers to the driver inside STREAMON, which must
    // neither fail nor complete buffers there (vb2 WARNs on done buffers)
    drained
        .qbuf_out(1, 16, 2)
        .map_err(v4l2_err("QBUF(OUTPUT 1)"))?;
    drained
        .streamoff(CAP_Q)
        .map_err(v4l2_err("STREAMOFF(CAPTURE)"))?;
    drained.qbuf_cap(0).map_err(v4l2_err("QBUF(CAPTURE 0)"))?;
    drained.qbuf_cap(1).map_err(v4l2_err("QBUF(CAPTURE 1)"))?;
    let on = drained.streamon(CAP_Q);
    r.check(
        "flood: another client's STREAMON(CAPTURE) after a drain succeeds",
        on.is_ok(),
        format!("{on:?}"),
    );
    let b = drained
        .dqbuf(CAP_Q, Duration::from_millis(200))
        .map(|b| (b.index(), b.has_error()));
    r.check(
        "flood: ... and completes no CAPTURE buffer (no ERROR inside STREAMON)",
        b == Err(Errno::EAGAIN),
        format!("{b:?}"),
    );

    // a newcomer's session opens at once, behind nobody's backlog
    let mut newcomer = Client::open(args)?;
    newcomer.setup_output(2)?;
    newcomer
        .qbuf_out(0, 16, 1)
        .map_err(v4l2_err("QBUF(OUTPUT 0)"))?;
    newcomer
        .streamon(OUT_Q)
        .map_err(v4l2_err("STREAMON(OUTPUT)"))?;
    let mut first = Vec::new();
    d.chan.read_batch(8, &mut first)?;
    // the flooder's SESSION_OPEN is unread too; the newcomer has the newer id
    let opens: Vec<u32> = first
        .iter()
        .flatten()
        .filter(|m| matches!(m.body, KernelBody::SessionOpen(_)))
        .map(|m| m.session)
        .collect();
    let opened = opens.iter().copied().max().filter(|_| opens.len() == 2);
    r.check(
        "flood: the newcomer's SESSION_OPEN is among the first 8 messages read",
        opened.is_some(),
        format!("{} read, opens {opens:?}", first.len()),
    );
    for m in first {
        d.pending.push(m.context("undecodable message")?);
    }
    let all = read_all(d)?;
    let flood_session = opens.iter().copied().min();
    let flood_msgs: Vec<&KernelMsg> = all
        .iter()
        .filter(|m| Some(m.session) == flood_session)
        .collect();
    r.check(
        "flood: the flooder's unread messages stay within its outbox",
        flood_msgs.len() <= OUTBOX_MSGS,
        format!("{} messages (outbox {OUTBOX_MSGS})", flood_msgs.len()),
    );
    let epochs: Vec<u32> = flood_msgs
        .iter()
        .filter_map(|m| match m.body {
            KernelBody::Bitstream(b) => Some(b.epoch),
            KernelBody::Flush { epoch } => Some(epoch),
            _ => None,
        })
        .collect();
    let one_epoch = epochs.windows(2).all(|w| w[0] == w[1]);
    r.check(
        "flood: superseded messages were purged (one FLUSH epoch left)",
        one_epoch && epochs.len() == FLOOD_BUFFERS as usize + 1,
        format!(
            "{} FLUSH/BITSTREAM, epochs {:?}",
            epochs.len(),
            epochs.first()
        ),
    );
    let restarted = all.iter().any(|m| {
        m.session == drained_session && matches!(m.body, KernelBody::Capture(c) if c.index == 0)
    });
    r.check(
        "flood: the drained client's CAPTURE restart reached the daemon",
        restarted,
        format!(
            "{} messages of its session",
            all.iter().filter(|m| m.session == drained_session).count()
        ),
    );
    drop((flooder, drained, newcomer));
    read_all(d)?;
    Ok(())
}

/// `max_sessions`: the client past it gets EBUSY at STREAMON, and a slot
/// that frees up serves it.
fn max_sessions_case(r: &mut Report, args: &Args, d: &mut FakeDaemon) -> Result<()> {
    with_param(MAX_SESSIONS_PARAM, "2", || {
        let (first, ..) = busy_session(args, d)?;
        let (_second, ..) = busy_session(args, d)?;
        let mut third = Client::open(args)?;
        third.setup_output(2)?;
        third
            .qbuf_out(0, 16, 1)
            .map_err(v4l2_err("QBUF(OUTPUT 0)"))?;
        let over = third.streamon(OUT_Q);
        r.check(
            "max_sessions=2: a third STREAMON(OUTPUT) gets EBUSY",
            over == Err(Errno::EBUSY),
            format!("{over:?}"),
        );
        drop(first);
        let again = third.streamon(OUT_Q);
        let opened = again.is_ok().then(|| wait_open(d)).flatten();
        r.check(
            "max_sessions=2: it starts once another client closed",
            opened.is_some(),
            format!("{again:?}, open {opened:?}"),
        );
        Ok(())
    })?;
    read_all(d)?;
    Ok(())
}

/// dev-decoder.rst: after a fatal error the client recovers by stopping
/// both queues and starting again, with a new session.
fn recovery_case(r: &mut Report, args: &Args, d: &mut FakeDaemon) -> Result<()> {
    let (mut c, session, _) = busy_session(args, d)?;
    c.setup_capture(2)?;
    c.qbuf_cap(0).map_err(v4l2_err("QBUF(CAPTURE 0)"))?;
    c.streamon(CAP_Q).map_err(v4l2_err("STREAMON(CAPTURE)"))?;
    let err = daedalus_proto::DaemonMsg {
        session,
        body: daedalus_proto::DaemonBody::SessionError { error: -5 },
    };
    r.expect("recovery: SESSION_ERROR", d.send(&err), Ok(MSG_SIZE));
    let half = c.streamoff(OUT_Q).and_then(|()| c.streamon(OUT_Q));
    r.check(
        "recovery: restarting OUTPUT alone gets EIO",
        half == Err(Errno::EIO),
        format!("{half:?}"),
    );
    c.streamoff(CAP_Q).map_err(v4l2_err("STREAMOFF(CAPTURE)"))?;
    c.qbuf_out(0, 16, 3).map_err(v4l2_err("QBUF(OUTPUT 0)"))?;
    let on = c.streamon(OUT_Q);
    let reopened = on.is_ok().then(|| wait_open(d)).flatten();
    r.check(
        "recovery: both queues stopped, STREAMON opens a new session",
        reopened.is_some_and(|s| s != session),
        format!("{on:?}, session {session} -> {reopened:?}"),
    );
    let bs = reopened.and_then(|s| wait_bitstream(d, s, 0));
    r.check(
        "recovery: the new session gets the bitstream",
        bs.is_some(),
        format!("{bs:?}"),
    );
    drop(c);
    read_all(d)?;
    Ok(())
}

/// More buffers than a session's outbox holds: the rest waits in the
/// kernel and follows as the daemon reads (back-pressure, not failure).
fn backpressure_case(r: &mut Report, args: &Args, d: &mut FakeDaemon) -> Result<()> {
    let n = 32;
    let mut c = Client::open(args)?;
    c.setup_output(n)?;
    for i in 0..n {
        c.qbuf_out(i, 16, i64::from(i) + 1)
            .map_err(v4l2_err("QBUF(OUTPUT)"))?;
    }
    c.streamon(OUT_Q).map_err(v4l2_err("STREAMON(OUTPUT)"))?;
    c.setup_capture(n)?;
    let mut queued = Ok(());
    for i in 0..n {
        queued = queued.and(c.qbuf_cap(i));
    }
    let on = queued.and_then(|()| c.streamon(CAP_Q));
    r.check(
        "back-pressure: 32 OUTPUT + 32 CAPTURE queued while the daemon reads nothing",
        on.is_ok(),
        format!("{on:?}"),
    );
    let all = read_all(d)?;
    let count = |f: fn(&KernelBody) -> bool| all.iter().filter(|m| f(&m.body)).count();
    let (bs, cap) = (
        count(|b| matches!(b, KernelBody::Bitstream(_))),
        count(|b| matches!(b, KernelBody::Capture(_))),
    );
    r.check(
        "back-pressure: every buffer reached the daemon once it read",
        bs == n as usize && cap == n as usize,
        format!("{bs} BITSTREAM, {cap} CAPTURE of {n} each"),
    );
    drop(c);
    read_all(d)?;
    Ok(())
}

/// RELEASED on the wire (its body: queue, epoch, reserved).
fn released(session: u32, queue: u32, epoch: u32) -> [u8; MSG_SIZE] {
    let mut wire = [0u8; MSG_SIZE];
    for (i, v) in [uapi::DAEDALUS_D2K_RELEASED, session, 0, 0, queue, epoch]
        .into_iter()
        .enumerate()
    {
        wire[i * 4..i * 4 + 4].copy_from_slice(&v.to_ne_bytes());
    }
    wire
}

/// The epoch of the next FLUSH (OUTPUT) or CAPTURE_RESET of `session`.
fn wait_take_back(d: &mut FakeDaemon, session: u32, output: bool) -> Option<u32> {
    d.take(WAIT, |m| match m.body {
        KernelBody::Flush { epoch } if output && m.session == session => Some(epoch),
        KernelBody::CaptureReset { epoch } if !output && m.session == session => Some(epoch),
        _ => None,
    })
}

/// A daemon that sets DAEDALUS_HELLO_F_RELEASE_ACK: STREAMOFF and close()
/// return only once it answered RELEASED (or its time ran out).
fn release_ack_cases(r: &mut Report, args: &Args, d: &mut FakeDaemon) -> Result<()> {
    let (mut c, session, _) = busy_session(args, d)?;
    let hold = Duration::from_millis(300);
    let (off, waited) = std::thread::scope(|s| -> Result<_> {
        let streamoff = s.spawn(|| {
            let t0 = Instant::now();
            (c.streamoff(OUT_Q), t0.elapsed())
        });
        let epoch = wait_take_back(d, session, true).context("no FLUSH at STREAMOFF")?;
        std::thread::sleep(hold);
        let early = streamoff.is_finished();
        r.check(
            "release-ack: STREAMOFF(OUTPUT) waits for RELEASED",
            !early,
            format!("returned before RELEASED: {early}"),
        );
        r.expect_err(
            "release-ack: RELEASED from the future",
            d.write(&released(session, uapi::DAEDALUS_QUEUE_OUTPUT, epoch + 1)),
            Errno::EINVAL,
        );
        r.expect_err(
            "release-ack: RELEASED for queue 2",
            d.write(&released(session, 2, epoch)),
            Errno::EINVAL,
        );
        r.expect(
            "release-ack: RELEASED",
            d.write(&released(session, uapi::DAEDALUS_QUEUE_OUTPUT, epoch)),
            Ok(MSG_SIZE),
        );
        Ok(streamoff.join().expect("STREAMOFF thread"))
    })?;
    r.check(
        "release-ack: ... and returns once it came",
        off.is_ok() && waited >= hold,
        format!("{off:?} after {} ms", waited.as_millis()),
    );

    // both queues streaming, then close(): RELEASED for each, then CLOSE
    c.qbuf_out(0, 16, 2).map_err(v4l2_err("QBUF(OUTPUT 0)"))?;
    c.streamon(OUT_Q).map_err(v4l2_err("STREAMON(OUTPUT)"))?;
    c.setup_capture(2)?;
    c.qbuf_cap(0).map_err(v4l2_err("QBUF(CAPTURE 0)"))?;
    c.streamon(CAP_Q).map_err(v4l2_err("STREAMON(CAPTURE)"))?;
    let closed = std::thread::scope(|s| -> Result<_> {
        let close = s.spawn(move || drop(c));
        let out = wait_take_back(d, session, true).context("no FLUSH at close")?;
        let out_ack = d.write(&released(session, uapi::DAEDALUS_QUEUE_OUTPUT, out));
        let cap = wait_take_back(d, session, false).context("no CAPTURE_RESET at close")?;
        std::thread::sleep(hold);
        let early = close.is_finished();
        let cap_ack = d.write(&released(session, uapi::DAEDALUS_QUEUE_CAPTURE, cap));
        close.join().expect("close thread");
        let closed = d.take(WAIT, |m| {
            (m.session == session && matches!(m.body, KernelBody::SessionClose)).then_some(())
        });
        let acked = out_ack == Ok(MSG_SIZE) && cap_ack == Ok(MSG_SIZE);
        Ok((early, acked, closed.is_some()))
    })?;
    r.check(
        "release-ack: close() waits for RELEASED of both queues, then SESSION_CLOSE",
        closed == (false, true, true),
        format!("(returned early, RELEASED accepted, closed) = {closed:?}"),
    );

    // no answer: STREAMOFF returns after daemon_timeout_ms, the session failed
    with_param(crate::TIMEOUT_PARAM, "300", || {
        let (c, session, _) = busy_session(args, d)?;
        let t0 = Instant::now();
        let off = c.streamoff(OUT_Q);
        let took = t0.elapsed();
        let closed = d.take(WAIT, |m| {
            (m.session == session && matches!(m.body, KernelBody::SessionClose)).then_some(())
        });
        r.check(
            "release-ack: no RELEASED within daemon_timeout_ms fails the session",
            off.is_ok() && took >= Duration::from_millis(250) && closed.is_some(),
            format!(
                "{off:?} after {} ms, SESSION_CLOSE {closed:?}",
                took.as_millis()
            ),
        );
        Ok(())
    })?;
    read_all(d)?;
    Ok(())
}

/// ALIVE on the wire: session 0, empty body.
fn alive_msg(session: u32) -> [u8; MSG_SIZE] {
    let mut wire = [0u8; MSG_SIZE];
    wire[..4].copy_from_slice(&uapi::DAEDALUS_D2K_ALIVE.to_ne_bytes());
    wire[4..8].copy_from_slice(&session.to_ne_bytes());
    wire
}

/// A daemon that sends ALIVE (UAPI header, "Liveness") is judged as a
/// whole: a session it holds bitstream for survives any latency while ALIVE
/// comes, and fails once the daemon falls silent.
fn alive_cases(r: &mut Report, args: &Args, d: &mut FakeDaemon) -> Result<()> {
    r.expect_err(
        "ALIVE with a session id",
        d.write(&alive_msg(1)),
        Errno::EINVAL,
    );
    with_param(crate::TIMEOUT_PARAM, "300", || {
        let (c, session, _) = busy_session(args, d)?;
        let closed = |m: &KernelMsg| {
            (m.session == session && matches!(m.body, KernelBody::SessionClose)).then_some(())
        };
        let mut early = None;
        for _ in 0..12 {
            let sent = d.write(&alive_msg(0));
            if sent != Ok(MSG_SIZE) || d.take(Duration::from_millis(100), closed).is_some() {
                early = Some(sent);
                break;
            }
        }
        let held = c.dqbuf(OUT_Q, Duration::from_millis(10)).map(|b| b.index());
        r.check(
            "ALIVE: 1.2 s without a reply for the session, daemon_timeout_ms 300: still open",
            early.is_none() && held == Err(Errno::EAGAIN),
            format!("stopped early: {early:?}, DQBUF(OUTPUT) {held:?}"),
        );
        let t0 = Instant::now();
        let failed = d.take(Duration::from_secs(2), closed);
        r.check(
            "ALIVE: once the daemon falls silent the session fails",
            failed.is_some(),
            format!(
                "SESSION_CLOSE after {} ms: {failed:?}",
                t0.elapsed().as_millis()
            ),
        );
        Ok(())
    })?;
    read_all(d)?;
    Ok(())
}

/// A fake daemon on a fresh channel (the old one must be gone: one holder).
fn reconnect(args: &Args, flags: u32) -> Result<FakeDaemon> {
    let chan = daedalus_proto::Channel::open(&args.channel).context("reopening the channel")?;
    let mut hello = crate::hello_arg(&crate::CODECS);
    hello.flags = flags;
    crate::raw_hello(&chan, &mut hello).map_err(|e| anyhow::anyhow!("HELLO: {e}"))?;
    Ok(FakeDaemon {
        chan,
        pending: Vec::new(),
    })
}

/// Clients open, STREAMON and close in a loop on two threads while the
/// daemon dies and comes back over and over (KASAN and lockdep watch on the
/// debug kernel); afterwards a new session works.
fn race_case(r: &mut Report, args: &Args, d: FakeDaemon) -> Result<FakeDaemon> {
    use std::sync::atomic::{AtomicBool, Ordering};
    let stop = AtomicBool::new(false);
    let mut d = Some(d);
    let (restarts, cycles) = std::thread::scope(|s| -> Result<_> {
        let client = || {
            let mut n = 0u64;
            while !stop.load(Ordering::Relaxed) {
                if let Ok(mut c) = Client::open(args) {
                    if c.setup_output(2).is_ok() {
                        let _ = c.qbuf_out(0, 16, 1);
                        let _ = c.streamon(OUT_Q);
                        let _ = c.streamoff(OUT_Q);
                        let _ = c.streamon(OUT_Q);
                    }
                }
                n += 1;
            }
            n
        };
        let a = s.spawn(client);
        let b = s.spawn(client);
        let end = Instant::now() + Duration::from_secs(3);
        let mut restarts = 0u32;
        while Instant::now() < end {
            if let Some(mut old) = d.take() {
                let _ = old.collect(Duration::from_millis(20));
            }
            d = Some(reconnect(args, 0)?);
            restarts += 1;
        }
        stop.store(true, Ordering::Relaxed);
        let cycles = a.join().expect("client thread") + b.join().expect("client thread");
        Ok((restarts, cycles))
    })?;
    let mut d = d.take().context("no daemon after the race")?;
    read_all(&mut d)?;
    let fresh = busy_session(args, &mut d).map(|(_, s, _)| s);
    r.check(
        "race: open/STREAMON/close on two threads against daemon restarts, then a new session",
        fresh.is_ok(),
        format!("{restarts} daemon restarts, {cycles} client cycles, session {fresh:?}"),
    );
    read_all(&mut d)?;
    Ok(d)
}

/// Runs one group of cases; a group that cannot go on (a missing module
/// parameter, an ioctl the kernel refuses) counts as one FAIL and the
/// others still run, so a kernel without a feature shows every gap at once.
pub(crate) fn guarded(
    r: &mut Report,
    d: &mut FakeDaemon,
    name: &str,
    f: impl FnOnce(&mut Report, &mut FakeDaemon) -> Result<()>,
) {
    if let Err(e) = f(r, d) {
        r.check(name, false, format!("aborted: {e:#}"));
        let _ = read_all(d);
    }
}

pub(crate) fn cases(r: &mut Report, args: &Args, mut d: FakeDaemon) -> Result<()> {
    guarded(r, &mut d, "recovery", |r, d| recovery_case(r, args, d));
    guarded(r, &mut d, "back-pressure", |r, d| {
        backpressure_case(r, args, d)
    });
    guarded(r, &mut d, "max_sessions", |r, d| {
        max_sessions_case(r, args, d)
    });
    guarded(r, &mut d, "flood", |r, d| flood_case(r, args, d));
    crate::sequences::cases(r, args, &mut d);
    let d = match race_case(r, args, d) {
        Ok(d) => d,
        Err(e) => {
            r.check("race", false, format!("aborted: {e:#}"));
            reconnect(args, 0)?
        }
    };

    // the channel has one holder: this daemon leaves, one that confirms
    // take-backs comes, then one that sends ALIVE
    drop(d);
    for (flag, name) in [
        (uapi::DAEDALUS_HELLO_F_RELEASE_ACK, "release-ack"),
        (uapi::DAEDALUS_HELLO_F_ALIVE, "ALIVE"),
    ] {
        let mut d = match reconnect(args, flag) {
            Ok(d) => d,
            Err(e) => {
                r.check(
                    &format!("{name}: HELLO with the flag"),
                    false,
                    format!("{e:#}"),
                );
                continue;
            }
        };
        if flag == uapi::DAEDALUS_HELLO_F_ALIVE {
            guarded(r, &mut d, name, |r, d| alive_cases(r, args, d));
        } else {
            guarded(r, &mut d, name, |r, d| release_ack_cases(r, args, d));
        }
    }
    Ok(())
}

/// `--flood SECONDS` against the real daemon: seeks in a loop, every
/// OUTPUT buffer queued each time. Recovers (STREAMOFF both) if its own
/// session fails; any other ioctl error fails the run.
pub(crate) fn flood(args: &Args, seconds: u64) -> Result<()> {
    let c = flood_client(args)?;
    let end = Instant::now() + Duration::from_secs(seconds);
    let (mut cycles, mut recoveries) = (0u64, 0u64);
    while Instant::now() < end {
        match flood_cycle(&c) {
            Ok(()) => cycles += 1,
            Err(Errno::EIO) => {
                recoveries += 1;
                c.streamoff(OUT_Q).map_err(v4l2_err("STREAMOFF(OUTPUT)"))?;
                c.streamoff(CAP_Q).map_err(v4l2_err("STREAMOFF(CAPTURE)"))?;
            }
            Err(e) => bail!("flood cycle {cycles}: {e}"),
        }
    }
    println!("flood: {cycles} cycles, {recoveries} recoveries in {seconds} s");
    Ok(())
}

/// `--export-rmmod`: a CAPTURE buffer exported with EXPBUF outlives its
/// file handle and the module; the dma-buf is used and dropped afterwards.
pub(crate) fn export_rmmod(args: &Args) -> Result<()> {
    let mut c = Client::open(args)?;
    c.setup_output(1)?;
    let n: usize = ioctl::reqbufs(
        &c.dev,
        CAP_Q,
        MemoryType::Mmap,
        1,
        ioctl::MemoryConsistency::empty(),
    )
    .map_err(v4l2_err("REQBUFS(CAPTURE)"))?;
    if n == 0 {
        bail!("REQBUFS(CAPTURE) gave no buffer");
    }
    let dmabuf: OwnedFd = ioctl::expbuf(&c.dev, CAP_Q, 0, 0, ExpbufFlags::RDWR)
        .map_err(v4l2_err("EXPBUF(CAPTURE 0)"))?;
    drop(c);
    let rmmod = Command::new("rmmod")
        .arg("daedalus_v4l2")
        .status()
        .context("running rmmod")?;
    if !rmmod.success() {
        bail!("rmmod daedalus_v4l2 with only a dma-buf left: {rmmod}");
    }
    println!("export-rmmod: module unloaded, the dma-buf is still open");
    let len = std::num::NonZeroUsize::new(4096).expect("non-zero");
    // SAFETY: a fresh shared mapping of a dma-buf we own; nothing else in
    // this process refers to it, and it is unmapped before the fd closes.
    unsafe {
        let p = mmap(
            None,
            len,
            ProtFlags::PROT_READ | ProtFlags::PROT_WRITE,
            MapFlags::MAP_SHARED,
            &dmabuf,
            0,
        )
        .context("mmap of the orphaned dma-buf")?;
        let byte = p.cast::<u8>().as_ptr();
        byte.write_volatile(0x5a);
        let back = byte.read_volatile();
        munmap(p, len.get()).context("munmap")?;
        if back != 0x5a {
            bail!("the orphaned dma-buf read back {back:#x}");
        }
    }
    let raw = dmabuf.as_raw_fd();
    drop(dmabuf);
    println!("export-rmmod: dma-buf {raw} written, read back and released");
    Ok(())
}
