//! One FFmpeg video decoder (send/receive API, frame threading).

use crate::config::Codec;
use crate::lavc::LendHook;
use crate::lending::CapturePool;
use ffmpeg_next::codec::{self, threading};
use ffmpeg_next::util::error::EAGAIN;
use ffmpeg_next::{frame, Error, Packet};
use thiserror::Error as ThisError;

#[derive(Debug, ThisError)]
pub enum DecoderError {
    #[error("FFmpeg has no decoder \"{0}\"")]
    Missing(&'static str),
    #[error("cannot open FFmpeg decoder \"{name}\": {source}")]
    Open { name: &'static str, source: Error },
}

/// Outcome of giving FFmpeg input.
#[derive(Debug)]
pub enum Sent {
    /// FFmpeg took it.
    Taken,
    /// FFmpeg wants frames received first.
    Again,
    /// FFmpeg refused it (corrupt or unsupported data).
    Rejected(Error),
}

/// Outcome of asking FFmpeg for a frame.
pub enum Received {
    Frame(frame::Video),
    /// Needs more input.
    Again,
    /// Drained after EOF.
    Eof,
    /// A decode error surfaced here (frame threading reports them late).
    Failed(Error),
}

/// Whether FFmpeg marked the frame as damaged: the CORRUPT flag or any
/// `decode_error_flags` bit (missing reference, invalid bitstream,
/// concealment active).
pub fn is_damaged(f: &frame::Video) -> bool {
    let error_flags = crate::lavc::decode_error_flags(f);
    f.is_corrupt() || error_flags != 0
}

/// Whether the linked FFmpeg has the decoder for `codec`.
pub fn available(codec: Codec) -> bool {
    ffmpeg_next::decoder::find_by_name(codec.ffmpeg_decoder()).is_some()
}

pub struct Decoder {
    // Field order matters: the context (and its frame threads) goes before
    // the get_buffer2 hook whose pool it points to.
    inner: ffmpeg_next::decoder::Video,
    _lend: Option<LendHook>,
    /// What `open` was given, for `reopen`.
    codec: Codec,
    threads: u32,
    pool: Option<CapturePool>,
}

impl Decoder {
    /// Opens a decoder with frame threading; `threads` 0 lets FFmpeg pick one
    /// per CPU. With `lend`, FFmpeg may decode into lent CAPTURE buffers
    /// (zero-copy YUV420, see `lending`).
    pub fn open(
        codec: Codec,
        threads: u32,
        lend: Option<CapturePool>,
    ) -> Result<Decoder, DecoderError> {
        let mut hook = None;
        let inner = open_video(codec, threading::Type::Frame, threads, |ctx| {
            hook = lend.clone().map(|pool| LendHook::install(ctx, pool));
        })?;
        Ok(Decoder {
            inner,
            _lend: hook,
            codec,
            threads,
            pool: lend,
        })
    }

    /// Replaces the FFmpeg context by a fresh one with the same settings.
    /// Freeing the old context joins its frame threads and drops every
    /// frame it and they still reference. On error the old one stays.
    pub fn reopen(&mut self) -> Result<(), DecoderError> {
        *self = Decoder::open(self.codec, self.threads, self.pool.clone())?;
        Ok(())
    }

    /// Gives FFmpeg one packet (copied: FFmpeg needs its own padded buffer).
    /// `data` must not be empty (an empty packet means EOF to FFmpeg).
    pub fn send(&mut self, data: &[u8], pts: i64) -> Sent {
        let mut pkt = Packet::copy(data);
        pkt.set_pts(Some(pts));
        classify(self.inner.send_packet(&pkt))
    }

    /// Starts draining.
    pub fn send_eof(&mut self) -> Sent {
        classify(self.inner.send_eof())
    }

    pub fn receive(&mut self) -> Received {
        let mut f = frame::Video::empty();
        match self.inner.receive_frame(&mut f) {
            Ok(()) => Received::Frame(f),
            Err(Error::Other { errno }) if errno == EAGAIN => Received::Again,
            Err(Error::Eof) => Received::Eof,
            Err(e) => Received::Failed(e),
        }
    }

    /// Drops everything FFmpeg holds and leaves draining mode. With frame
    /// threads, `avcodec_flush_buffers` first waits until every thread has
    /// finished the frame it was decoding, then flushes each thread's
    /// context: when it returns no thread writes a frame any more.
    pub fn flush(&mut self) {
        self.inner.flush();
    }
}

/// What the stream headers say, before the frame-threaded decoder has
/// returned a frame.
pub struct ProbedFormat {
    pub width: u32,
    pub height: u32,
    pub pixel: ffmpeg_next::format::Pixel,
    pub primaries: ffmpeg_next::color::Primaries,
    pub transfer: ffmpeg_next::color::TransferCharacteristic,
    pub space: ffmpeg_next::color::Space,
    pub range: ffmpeg_next::color::Range,
}

/// A single-threaded decoder of the same codec that sees the first packets
/// only, to learn the stream format from its headers. The frame-threaded
/// decoder reports its format with its first frame, which comes several
/// packets late (one per thread, plus reordering); the stateful decoder spec
/// wants the source-change event once the headers are parsed, and clients
/// (v4l2-compliance among them) may queue only a few OUTPUT buffers until it
/// arrives.
pub struct HeaderProbe {
    inner: ffmpeg_next::decoder::Video,
    packets: u32,
}

/// Packets a probe may see before it gives up (the main decoder's first frame
/// then announces the format).
const PROBE_PACKETS: u32 = 8;

impl HeaderProbe {
    pub fn open(codec: Codec) -> Result<HeaderProbe, DecoderError> {
        let inner = open_video(codec, threading::Type::Slice, 1, |_| {})?;
        Ok(HeaderProbe { inner, packets: 0 })
    }

    /// Feeds one packet; Some once the headers gave size and pixel format.
    /// Errors are not reported: the main decoder sees the same packet.
    pub fn probe(&mut self, data: &[u8]) -> Option<ProbedFormat> {
        self.packets += 1;
        let _ = self.inner.send_packet(&Packet::copy(data));
        let mut f = frame::Video::empty();
        while self.inner.receive_frame(&mut f).is_ok() {}
        let d = &self.inner;
        (d.width() > 0 && d.height() > 0 && d.format() != ffmpeg_next::format::Pixel::None).then(
            || ProbedFormat {
                width: d.width(),
                height: d.height(),
                pixel: d.format(),
                primaries: d.color_primaries(),
                transfer: d.color_transfer_characteristic(),
                space: d.color_space(),
                range: d.color_range(),
            },
        )
    }

    pub fn exhausted(&self) -> bool {
        self.packets >= PROBE_PACKETS
    }
}

/// Opens FFmpeg's decoder for `codec` with the given threading (`count` 0:
/// one thread per CPU).
fn open_video(
    codec: Codec,
    kind: threading::Type,
    count: u32,
    before_open: impl FnOnce(&mut codec::Context),
) -> Result<ffmpeg_next::decoder::Video, DecoderError> {
    let name = codec.ffmpeg_decoder();
    let found = ffmpeg_next::decoder::find_by_name(name).ok_or(DecoderError::Missing(name))?;
    let mut ctx = codec::Context::new_with_codec(found);
    ctx.set_threading(threading::Config {
        kind,
        count: count as usize,
        ..Default::default()
    });
    before_open(&mut ctx);
    ctx.decoder()
        .open_as(found)
        .and_then(|o| o.video())
        .map_err(|source| DecoderError::Open { name, source })
}

fn classify(r: Result<(), Error>) -> Sent {
    match r {
        Ok(()) => Sent::Taken,
        Err(Error::Other { errno }) if errno == EAGAIN => Sent::Again,
        Err(e) => Sent::Rejected(e),
    }
}
