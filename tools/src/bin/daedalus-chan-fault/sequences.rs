//! dev-decoder.rst sequences the kernel must follow to the letter, checked
//! message by message with the fake daemon: a seek resumes a stopped
//! decoder (Drain, step 3), V4L2_DEC_CMD_START resumes after a resolution
//! change's LAST buffer when the buffers fit (Dynamic Resolution Change,
//! step 6), CREATE_BUFS leaves the buffers already there as they were, and
//! S_FMT(OUTPUT) is refused while either queue has buffers.

use std::time::Duration;

use anyhow::{Context, Result};

use daedalus_proto::{fourcc, uapi, BufferRef, KernelBody, Queue};
use v4l2r::bindings::{v4l2_create_buffers, v4l2_format};
use v4l2r::ioctl::{self, DecoderCmd};
use v4l2r::memory::MemoryType;
use v4l2r::nix::errno::Errno;
use v4l2r::PixelFormat;

use crate::{
    busy_session, errno_of, format_msg, frame_done, nv12_format, v4l2_err, wait_bitstream,
    wait_capture, Args, Client, FakeDaemon, Report, CAP_Q, OUT_Q, WAIT,
};

/// A CAPTURE message of `session` for buffer `index`: (epoch, generation, width).
fn capture_msg(d: &mut FakeDaemon, session: u32, index: u32) -> Option<(u32, u32, u32)> {
    d.take(WAIT, |m| match m.body {
        KernelBody::Capture(c) if m.session == session && c.index == index => {
            Some((c.epoch, c.generation, c.width))
        }
        _ => None,
    })
}

/// A session decoding 320x240 into two CAPTURE buffers, both announced.
/// Returns the client, the session, the OUTPUT epoch, the CAPTURE epoch
/// and the CAPTURE buffers' generation.
fn decoding(args: &Args, d: &mut FakeDaemon) -> Result<(Client, u32, u32, u32, u32)> {
    let (mut c, session, out_epoch) = busy_session(args, d)?;
    d.send(&format_msg(session, nv12_format(out_epoch, 320, 240, 2)))
        .map_err(|e| anyhow::anyhow!("FORMAT refused: {}", Errno::from_raw(e)))?;
    c.setup_capture(2)?;
    c.qbuf_cap(0).map_err(v4l2_err("QBUF(CAPTURE 0)"))?;
    c.qbuf_cap(1).map_err(v4l2_err("QBUF(CAPTURE 1)"))?;
    c.streamon(CAP_Q).map_err(v4l2_err("STREAMON(CAPTURE)"))?;
    let (cap_epoch, cap_gen, _) = wait_capture(d, session, 0).context("no CAPTURE 0")?;
    wait_capture(d, session, 1).context("no CAPTURE 1")?;
    Ok((c, session, out_epoch, cap_epoch, cap_gen))
}

/// A session drained to its end (dev-decoder.rst "Drain"): STOP, DRAIN,
/// OUTPUT 0 done, DRAIN_END on CAPTURE 0 dequeued with LAST; CAPTURE 1 is
/// still with the daemon. Returns the client and its session.
pub(crate) fn drained(args: &Args, d: &mut FakeDaemon) -> Result<(Client, u32)> {
    let (c, session, out_epoch, cap_epoch, _) = decoding(args, d)?;
    c.decoder_cmd(DecoderCmd::stop())
        .map_err(v4l2_err("DECODER_CMD(STOP)"))?;
    d.take(WAIT, |m| {
        (m.session == session && matches!(m.body, KernelBody::Drain)).then_some(())
    })
    .context("no DRAIN")?;
    d.send(&crate::bitstream_done(session, 0, out_epoch, 0))
        .map_err(|e| anyhow::anyhow!("BITSTREAM_DONE: {}", Errno::from_raw(e)))?;
    d.send(&frame_done(
        session,
        0,
        cap_epoch,
        uapi::DAEDALUS_FRAME_F_DRAIN_END,
        [0; 3],
    ))
    .map_err(|e| anyhow::anyhow!("DRAIN_END: {}", Errno::from_raw(e)))?;
    let last = c
        .dqbuf(CAP_Q, WAIT)
        .map_err(v4l2_err("DQBUF(CAPTURE) LAST"))?;
    if !last.is_last() {
        anyhow::bail!("the drain did not end with LAST");
    }
    Ok((c, session))
}

fn seek_resumes_stopped(r: &mut Report, args: &Args, d: &mut FakeDaemon) -> Result<()> {
    let (c, session) = drained(args, d)?;
    c.dqbuf(OUT_Q, WAIT).map_err(v4l2_err("DQBUF(OUTPUT 0)"))?;
    // stopped: a seek (STREAMOFF/STREAMON OUTPUT) must resume decoding
    c.streamoff(OUT_Q).map_err(v4l2_err("STREAMOFF(OUTPUT)"))?;
    c.qbuf_out(1, 16, 7).map_err(v4l2_err("QBUF(OUTPUT 1)"))?;
    c.streamon(OUT_Q).map_err(v4l2_err("STREAMON(OUTPUT)"))?;
    let bs = wait_bitstream(d, session, 1);
    r.check(
        "Drain step 3: a seek resumes a stopped decoder (bitstream flows)",
        bs.is_some(),
        format!("{bs:?}"),
    );
    let dq = c
        .dqbuf(CAP_Q, Duration::from_millis(100))
        .map(|b| b.index());
    r.check(
        "Drain step 3: ... and CAPTURE no longer answers EPIPE",
        dq == Err(Errno::EAGAIN),
        format!("{dq:?}"),
    );
    drop(c);
    crate::flow::read_all(d)?;
    Ok(())
}

fn start_after_resolution_change(r: &mut Report, args: &Args, d: &mut FakeDaemon) -> Result<()> {
    let (c, session, out_epoch, cap_epoch, _) = decoding(args, d)?;
    // a smaller picture: the 320x240 buffers hold it, so START may resume
    d.send(&format_msg(session, nv12_format(out_epoch, 160, 120, 2)))
        .map_err(|e| anyhow::anyhow!("FORMAT 160x120: {}", Errno::from_raw(e)))?;
    d.send(&frame_done(
        session,
        0,
        cap_epoch,
        uapi::DAEDALUS_FRAME_F_CHANGE_END,
        [0; 3],
    ))
    .map_err(|e| anyhow::anyhow!("CHANGE_END: {}", Errno::from_raw(e)))?;
    let last = c.dqbuf(CAP_Q, WAIT).map(|b| b.is_last());
    let pipe = c.dqbuf(CAP_Q, Duration::from_millis(50)).map(|b| b.index());
    r.check(
        "resolution change: LAST, then EPIPE",
        last == Ok(true) && pipe == Err(Errno::EPIPE),
        format!("{last:?}, {pipe:?}"),
    );
    let start = c.decoder_cmd(DecoderCmd::start());
    r.check(
        "resolution change step 6: V4L2_DEC_CMD_START resumes",
        start.is_ok(),
        format!("{start:?}"),
    );
    let reset = d.take(WAIT, |m| match m.body {
        KernelBody::CaptureReset { epoch } if m.session == session => Some(epoch),
        _ => None,
    });
    let again = capture_msg(d, session, 1);
    r.check(
        "... the daemon gets CAPTURE_RESET and the queued buffer again at 160 wide",
        reset == Some(cap_epoch + 1)
            && again.is_some_and(|(e, _, w)| e == cap_epoch + 1 && w == 160),
        format!("reset {reset:?}, CAPTURE 1 {again:?}"),
    );
    c.qbuf_cap(0).map_err(v4l2_err("QBUF(CAPTURE 0)"))?;
    let requeued = capture_msg(d, session, 0);
    let dq = c.dqbuf(CAP_Q, Duration::from_millis(50)).map(|b| b.index());
    r.check(
        "... the LAST buffer queued again goes out, and DQBUF no longer gives EPIPE",
        requeued.is_some_and(|(_, _, w)| w == 160) && dq == Err(Errno::EAGAIN),
        format!("{requeued:?}, {dq:?}"),
    );
    drop(c);
    crate::flow::read_all(d)?;
    Ok(())
}

fn create_bufs_keeps_generations(r: &mut Report, args: &Args, d: &mut FakeDaemon) -> Result<()> {
    let (c, session, _, _, cap_gen) = decoding(args, d)?;
    let fmt: v4l2_format = ioctl::g_fmt(&c.dev, CAP_Q).map_err(v4l2_err("G_FMT(CAPTURE)"))?;
    let created: Result<v4l2_create_buffers, _> =
        ioctl::create_bufs(&c.dev, 1, MemoryType::Mmap, fmt).map_err(errno_of);
    let new_index = created.as_ref().map(|b| b.index);
    let old = d.chan.get_buf_fd(BufferRef {
        session,
        queue: Queue::Capture,
        index: 1,
        plane: 0,
        generation: cap_gen,
        mem_seq: 0,
    });
    r.check(
        "CREATE_BUFS while streaming: a queued buffer keeps its generation (GET_BUF_FD works)",
        created.is_ok() && old.is_ok(),
        format!(
            "created {new_index:?}, GET_BUF_FD {:?}",
            old.as_ref().map(|(_, len)| *len)
        ),
    );
    drop(old);
    if let Ok(index) = new_index {
        c.qbuf_cap(index).map_err(v4l2_err("QBUF(created)"))?;
        let msg = capture_msg(d, session, index);
        r.check(
            "... and the created buffer has a newer generation",
            msg.is_some_and(|(_, g, _)| g != cap_gen),
            format!("{msg:?} (old {cap_gen})"),
        );
    }
    drop(c);
    crate::flow::read_all(d)?;
    Ok(())
}

fn s_fmt_output_busy(r: &mut Report, args: &Args, d: &mut FakeDaemon) -> Result<()> {
    let mut c = Client::open(args)?;
    c.setup_capture(2)?;
    let fmt = v4l2r::Format {
        width: 320,
        height: 240,
        pixelformat: PixelFormat::from_fourcc(&fourcc::VP9.to_le_bytes()),
        plane_fmt: vec![],
    };
    let got: Result<v4l2r::Format, _> = ioctl::s_fmt(&mut c.dev, (OUT_Q, &fmt)).map_err(errno_of);
    r.check(
        "S_FMT(OUTPUT) with CAPTURE buffers allocated gets EBUSY",
        got.as_ref().err() == Some(&Errno::EBUSY),
        format!("{:?}", got.map(|f| f.pixelformat)),
    );
    drop(c);
    crate::flow::read_all(d)?;
    Ok(())
}

/// Initialization with one OUTPUT buffer: the daemon has consumed it but
/// needs more before it can say the format, so the client must get it back
/// (parking it until CAPTURE streams would deadlock).
fn one_output_buffer(r: &mut Report, args: &Args, d: &mut FakeDaemon) -> Result<()> {
    let mut c = Client::open(args)?;
    c.setup_output(1)?;
    c.qbuf_out(0, 16, 1).map_err(v4l2_err("QBUF(OUTPUT 0)"))?;
    c.streamon(OUT_Q).map_err(v4l2_err("STREAMON(OUTPUT)"))?;
    let session = crate::wait_open(d).context("no SESSION_OPEN")?;
    let (epoch, ..) = wait_bitstream(d, session, 0).context("no BITSTREAM")?;
    d.send(&crate::bitstream_done(session, 0, epoch, 0))
        .map_err(|e| anyhow::anyhow!("BITSTREAM_DONE: {}", Errno::from_raw(e)))?;
    let back = c.dqbuf(OUT_Q, WAIT).map(|b| (b.index(), b.has_error()));
    let again = back
        .is_ok()
        .then(|| {
            c.qbuf_out(0, 16, 2)
                .ok()
                .and_then(|()| wait_bitstream(d, session, 0))
        })
        .flatten();
    r.check(
        "one OUTPUT buffer, format not known yet: it comes back and can carry more",
        back == Ok((0, false)) && again.is_some(),
        format!("{back:?}, next BITSTREAM {again:?}"),
    );
    drop(c);
    crate::flow::read_all(d)?;
    Ok(())
}

pub(crate) fn cases(r: &mut Report, args: &Args, d: &mut FakeDaemon) {
    use crate::flow::guarded;
    guarded(r, d, "one OUTPUT buffer", |r, d| {
        one_output_buffer(r, args, d)
    });
    guarded(r, d, "S_FMT(OUTPUT) busy", |r, d| {
        s_fmt_output_busy(r, args, d)
    });
    guarded(r, d, "seek after drain", |r, d| {
        seek_resumes_stopped(r, args, d)
    });
    guarded(r, d, "START after resolution change", |r, d| {
        start_after_resolution_change(r, args, d)
    });
    guarded(r, d, "CREATE_BUFS", |r, d| {
        create_bufs_keeps_generations(r, args, d)
    });
}
