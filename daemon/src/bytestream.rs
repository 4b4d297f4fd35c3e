//! Any-chunking input for codecs with start codes (H.264, HEVC, MPEG-2):
//! OUTPUT buffers may hold any piece of the byte stream (one byte, a whole
//! file, an access unit and a half); an FFmpeg parser cuts it into the
//! access units the decoder takes. The kernel then advertises
//! V4L2_FMT_FLAG_CONTINUOUS_BYTESTREAM for these formats.
//!
//! Timestamps: each access unit carries the timestamp of the OUTPUT buffer
//! that holds its first byte (the stateful decoder rule: a frame's CAPTURE
//! timestamp is the one of the OUTPUT buffer it was decoded from; for a
//! frame spread over several buffers, the one it started in). With one
//! access unit per buffer, as FFmpeg's and GStreamer's V4L2 decoders send,
//! that is simply its buffer's timestamp.
//!
//! Cost: the parser knows an access unit is complete only when the next
//! one starts, so each unit reaches the decoder one OUTPUT buffer later;
//! DRAIN flushes the last one.

use crate::config::Codec;
use crate::lavc::Parser;
use std::collections::VecDeque;

/// One access unit, ready for the decoder.
pub struct Unit {
    pub data: Vec<u8>,
    pub timestamp_ns: u64,
}

pub struct ByteStream {
    id: ffmpeg_next::codec::Id,
    parser: Parser,
    /// (end offset, timestamp) of each OUTPUT buffer fed, oldest first,
    /// offsets counted from the start of the stream (or the last reset).
    chunks: VecDeque<(u64, u64)>,
    /// Bytes fed to the parser.
    fed: u64,
    /// Bytes the parser has returned in units.
    emitted: u64,
    /// Timestamp of the last chunk dropped from `chunks` (fallback).
    last_timestamp: u64,
    ready: VecDeque<Unit>,
    /// The parser was flushed and nothing was fed since.
    finished: bool,
}

impl ByteStream {
    /// The byte-stream front end for `codec`, if it has start codes and the
    /// linked FFmpeg has its parser.
    pub fn new(codec: Codec) -> Option<ByteStream> {
        let id = codec.byte_stream_parser()?;
        Some(ByteStream {
            id,
            parser: Parser::new(id)?,
            chunks: VecDeque::new(),
            fed: 0,
            emitted: 0,
            last_timestamp: 0,
            ready: VecDeque::new(),
            finished: false,
        })
    }

    /// Feeds one OUTPUT buffer; returns how many units it completed (they
    /// are the last ones of [`ByteStream::ready`]).
    pub fn push(&mut self, data: &[u8], timestamp_ns: u64) -> usize {
        if data.is_empty() {
            return 0;
        }
        self.finished = false;
        self.fed += data.len() as u64;
        self.chunks.push_back((self.fed, timestamp_ns));
        self.run_parser(data)
    }

    /// End of stream (DRAIN): the unit the parser still holds comes out.
    /// Returns how many units that completed; 0 also when already finished.
    pub fn finish(&mut self) -> usize {
        if self.finished {
            return 0;
        }
        self.finished = true;
        let n = self.run_parser(&[]);
        // A fresh parser and offsets for whatever follows the drain.
        if let Some(p) = Parser::new(self.id) {
            self.parser = p;
        }
        self.chunks.clear();
        self.fed = 0;
        self.emitted = 0;
        n
    }

    /// Seek: everything buffered is dropped.
    pub fn reset(&mut self) {
        self.ready.clear();
        self.chunks.clear();
        self.fed = 0;
        self.emitted = 0;
        self.finished = false;
        if let Some(p) = Parser::new(self.id) {
            self.parser = p;
        }
    }

    pub fn front(&self) -> Option<&Unit> {
        self.ready.front()
    }

    /// The `n`-th newest ready unit (1: the newest); with the count a
    /// [`ByteStream::push`] returned, the first unit that buffer completed.
    pub fn nth_newest(&self, n: usize) -> Option<&Unit> {
        let i = self.ready.len().checked_sub(n)?;
        self.ready.get(i)
    }

    pub fn pop(&mut self) -> Option<Unit> {
        self.ready.pop_front()
    }

    fn run_parser(&mut self, data: &[u8]) -> usize {
        let mut units = Vec::new();
        self.parser
            .parse(data, &mut |packet| units.push(packet.to_vec()));
        let n = units.len();
        for data in units {
            let timestamp_ns = self.timestamp_at(self.emitted);
            self.emitted += data.len() as u64;
            self.ready.push_back(Unit { data, timestamp_ns });
        }
        n
    }

    /// Timestamp of the chunk holding stream offset `offset`.
    fn timestamp_at(&mut self, offset: u64) -> u64 {
        while let Some(&(end, ts)) = self.chunks.front() {
            if end > offset {
                return ts;
            }
            self.last_timestamp = ts;
            self.chunks.pop_front();
        }
        self.last_timestamp
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Four H.264-like access units: AUD + a slice NAL each (the parser
    /// splits at access unit delimiters / first slices).
    fn annex_b() -> Vec<u8> {
        let mut v = Vec::new();
        for i in 0..4u8 {
            v.extend_from_slice(&[0, 0, 0, 1, 0x09, 0xf0]); // AUD
            v.extend_from_slice(&[0, 0, 0, 1, 0x65, 0x88, 0x80 + i, 1, 2, 3, 4, 5]);
        }
        v
    }

    fn units(chunk: usize) -> Vec<(Vec<u8>, u64)> {
        let mut s = ByteStream::new(Codec::H264).expect("FFmpeg has the H.264 parser");
        let stream = annex_b();
        for (i, c) in stream.chunks(chunk).enumerate() {
            s.push(c, (i * chunk) as u64);
        }
        s.finish();
        std::iter::from_fn(|| s.pop())
            .map(|u| (u.data, u.timestamp_ns))
            .collect()
    }

    #[test]
    fn any_chunking_gives_the_same_units_and_start_timestamps() {
        let whole = units(usize::MAX);
        let bytes = units(1);
        assert!(
            bytes.len() >= 2,
            "the parser split nothing: {}",
            bytes.len()
        );
        let data = |v: &[(Vec<u8>, u64)]| v.iter().map(|u| u.0.clone()).collect::<Vec<_>>();
        assert_eq!(data(&whole), data(&bytes));
        assert_eq!(data(&units(7)), data(&bytes));
        let total: usize = bytes.iter().map(|u| u.0.len()).sum();
        assert_eq!(total, annex_b().len(), "the units partition the stream");
        // 1-byte chunks time-stamped with their offset: each unit carries
        // the offset of its own first byte; 7-byte chunks the start of the
        // chunk holding it; one buffer: its timestamp for all.
        let mut offset = 0;
        for ((data, ts1), (_, ts7)) in bytes.iter().zip(units(7)) {
            assert_eq!(*ts1, offset);
            assert_eq!(ts7, offset / 7 * 7);
            offset += data.len() as u64;
        }
        assert!(whole.iter().all(|u| u.1 == 0));
    }
}
