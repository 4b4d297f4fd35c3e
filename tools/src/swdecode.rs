//! The benchmark's baseline: the same stream decoded by FFmpeg in this
//! process, with the same codec, thread count and output format as the
//! daemon uses, each frame converted into the same packed layout the device
//! path produces (the daemon does the same conversion into CAPTURE buffers).

use std::collections::HashMap;
use std::time::{Duration, Instant};

use ffmpeg::format::Pixel;
use ffmpeg_next as ffmpeg;
use thiserror::Error;

use crate::frame::RawFormat;
use crate::stream::{Codec, Stream};

#[derive(Debug, Error)]
pub enum SwDecodeError {
    #[error("FFmpeg has no decoder for {0}")]
    NoDecoder(Codec),
    #[error("FFmpeg: {0}")]
    Ffmpeg(#[from] ffmpeg::Error),
    #[error("FFmpeg decodes to {0:?}, which the benchmark cannot convert to {1}")]
    Conversion(Pixel, RawFormat),
}

#[derive(Debug, Default)]
pub struct SwRun {
    pub frames: u64,
    pub elapsed: Duration,
    pub latencies: Vec<Duration>,
    /// Bytes of the last packed frame (to check sizes agree with the device).
    pub frame_bytes: usize,
}

/// Decodes every access unit of `stream` once. `format` None: NV12 for
/// 8-bit streams, P010 for 10-bit ones (what the daemon picks).
pub fn decode(
    stream: &Stream,
    threads: usize,
    format: Option<RawFormat>,
) -> Result<SwRun, SwDecodeError> {
    decode_with(stream, threads, format, &mut |_| {})
}

/// As [`decode`], handing every packed frame to `on_frame`.
pub fn decode_with(
    stream: &Stream,
    threads: usize,
    format: Option<RawFormat>,
    on_frame: &mut dyn FnMut(&[u8]),
) -> Result<SwRun, SwDecodeError> {
    ffmpeg::init()?;
    ffmpeg::util::log::set_level(ffmpeg::util::log::Level::Error);
    let (codec_id, preferred) = match stream.codec {
        Codec::H264 => (ffmpeg::codec::Id::H264, None),
        Codec::Hevc => (ffmpeg::codec::Id::HEVC, None),
        Codec::Vp8 => (ffmpeg::codec::Id::VP8, None),
        Codec::Vp9 => (ffmpeg::codec::Id::VP9, None),
        Codec::Mpeg2 => (ffmpeg::codec::Id::MPEG2VIDEO, None),
        // The daemon decodes AV1 with libdav1d.
        Codec::Av1 => (ffmpeg::codec::Id::AV1, Some("libdav1d")),
        Codec::Fwht => return Err(SwDecodeError::NoDecoder(stream.codec)),
    };
    let codec = preferred
        .and_then(ffmpeg::decoder::find_by_name)
        .or_else(|| ffmpeg::decoder::find(codec_id))
        .ok_or(SwDecodeError::NoDecoder(stream.codec))?;
    let mut context = ffmpeg::codec::context::Context::new_with_codec(codec);
    context.set_threading(ffmpeg::threading::Config {
        kind: ffmpeg::threading::Type::Frame,
        count: threads,
        ..Default::default()
    });
    let mut decoder = context.decoder().open_as(codec)?.video()?;

    let start = Instant::now();
    let mut run = SwRun::default();
    let mut sent_at: HashMap<i64, Instant> = HashMap::new();
    let mut frame = ffmpeg::frame::Video::empty();
    let mut packed = Vec::new();
    let mut receive = |decoder: &mut ffmpeg::decoder::Video,
                       run: &mut SwRun,
                       sent_at: &mut HashMap<i64, Instant>|
     -> Result<(), SwDecodeError> {
        loop {
            match decoder.receive_frame(&mut frame) {
                Ok(()) => {
                    let now = Instant::now();
                    if let Some(t) = frame.pts().and_then(|pts| sent_at.remove(&pts)) {
                        run.latencies.push(now.duration_since(t));
                    }
                    packed.clear();
                    let format = format.unwrap_or(match frame.format() {
                        Pixel::YUV420P10LE | Pixel::P010LE => RawFormat::P010,
                        _ => RawFormat::Nv12,
                    });
                    pack(&frame, format, &mut packed)?;
                    on_frame(&packed);
                    run.frame_bytes = packed.len();
                    run.frames += 1;
                }
                Err(ffmpeg::Error::Other { errno }) if errno == ffmpeg::util::error::EAGAIN => {
                    return Ok(())
                }
                Err(ffmpeg::Error::Eof) => return Ok(()),
                Err(e) => return Err(e.into()),
            }
        }
    };
    for (i, _) in stream.units.iter().enumerate() {
        let mut packet = ffmpeg::Packet::copy(stream.unit(i));
        packet.set_pts(Some(i as i64));
        sent_at.insert(i as i64, Instant::now());
        decoder.send_packet(&packet)?;
        receive(&mut decoder, &mut run, &mut sent_at)?;
    }
    decoder.send_eof()?;
    receive(&mut decoder, &mut run, &mut sent_at)?;
    run.elapsed = start.elapsed();
    Ok(run)
}

fn rows(
    frame: &ffmpeg::frame::Video,
    plane: usize,
    rows: usize,
    bytes: usize,
) -> impl Iterator<Item = &[u8]> {
    let data = frame.data(plane);
    let stride = frame.stride(plane);
    (0..rows).filter_map(move |r| data.get(r * stride..r * stride + bytes))
}

/// Converts a decoded frame into the packed layout of [`crate::frame`].
fn pack(
    frame: &ffmpeg::frame::Video,
    format: RawFormat,
    out: &mut Vec<u8>,
) -> Result<(), SwDecodeError> {
    let (w, h) = (frame.width() as usize, frame.height() as usize);
    let (cw, ch) = (w.div_ceil(2), h.div_ceil(2));
    match (frame.format(), format) {
        (Pixel::YUV420P | Pixel::YUVJ420P, RawFormat::Nv12 | RawFormat::Nv12m) => {
            rows(frame, 0, h, w).for_each(|r| out.extend_from_slice(r));
            for (u, v) in rows(frame, 1, ch, cw).zip(rows(frame, 2, ch, cw)) {
                out.extend(u.iter().zip(v).flat_map(|(&a, &b)| [a, b]));
            }
        }
        (Pixel::YUV420P | Pixel::YUVJ420P, RawFormat::Yuv420) => {
            rows(frame, 0, h, w).for_each(|r| out.extend_from_slice(r));
            rows(frame, 1, ch, cw).for_each(|r| out.extend_from_slice(r));
            rows(frame, 2, ch, cw).for_each(|r| out.extend_from_slice(r));
        }
        (Pixel::NV12, RawFormat::Nv12 | RawFormat::Nv12m) => {
            rows(frame, 0, h, w).for_each(|r| out.extend_from_slice(r));
            rows(frame, 1, ch, cw * 2).for_each(|r| out.extend_from_slice(r));
        }
        (Pixel::YUV420P10LE, RawFormat::P010) => {
            let shifted = |r: &[u8]| -> Vec<u8> {
                r.chunks_exact(2)
                    .flat_map(|s| (u16::from_le_bytes([s[0], s[1]]) << 6).to_le_bytes())
                    .collect()
            };
            rows(frame, 0, h, w * 2).for_each(|r| out.extend(shifted(r)));
            for (u, v) in rows(frame, 1, ch, cw * 2).zip(rows(frame, 2, ch, cw * 2)) {
                let (u, v) = (shifted(u), shifted(v));
                out.extend(
                    u.chunks_exact(2)
                        .zip(v.chunks_exact(2))
                        .flat_map(|(a, b)| [a[0], a[1], b[0], b[1]]),
                );
            }
        }
        (Pixel::P010LE, RawFormat::P010) => {
            rows(frame, 0, h, w * 2).for_each(|r| out.extend_from_slice(r));
            rows(frame, 1, ch, cw * 4).for_each(|r| out.extend_from_slice(r));
        }
        (pixel, format) => return Err(SwDecodeError::Conversion(pixel, format)),
    }
    Ok(())
}
