//! Bitstream containers the tools read, split into access units: one unit is
//! what goes into one OUTPUT buffer (a coded frame, or a temporal unit).
//!
//! Files are read whole into memory: the tools decode test streams, and the
//! benchmark must not measure disk I/O.

pub mod annexb;
pub mod fwht;
pub mod ivf;
pub mod mpeg2;

use std::ops::Range;
use std::path::Path;

use thiserror::Error;

/// Coded formats the tools know how to feed to a stateful decoder (also
/// the binaries' `--codec` values).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, clap::ValueEnum)]
pub enum Codec {
    H264,
    Hevc,
    Vp8,
    Vp9,
    Av1,
    /// MPEG-2 video elementary stream (`.m2v`).
    Mpeg2,
    /// vicodec's Fast Walsh Hadamard Transform format (kernel test driver).
    Fwht,
}

impl Codec {
    /// The V4L2 fourcc of the coded format on the OUTPUT queue.
    pub fn fourcc(self) -> [u8; 4] {
        match self {
            Codec::H264 => *b"H264",
            Codec::Hevc => *b"HEVC",
            Codec::Vp8 => *b"VP80",
            Codec::Vp9 => *b"VP90",
            Codec::Av1 => *b"AV01",
            Codec::Mpeg2 => *b"MPG2",
            Codec::Fwht => *b"FWHT",
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Codec::H264 => "h264",
            Codec::Hevc => "hevc",
            Codec::Vp8 => "vp8",
            Codec::Vp9 => "vp9",
            Codec::Av1 => "av1",
            Codec::Mpeg2 => "mpeg2",
            Codec::Fwht => "fwht",
        }
    }

    pub fn from_name(name: &str) -> Option<Codec> {
        match name.to_ascii_lowercase().as_str() {
            "h264" | "avc" => Some(Codec::H264),
            "hevc" | "h265" => Some(Codec::Hevc),
            "vp8" => Some(Codec::Vp8),
            "vp9" => Some(Codec::Vp9),
            "av1" => Some(Codec::Av1),
            "mpeg2" | "mpeg2video" => Some(Codec::Mpeg2),
            "fwht" => Some(Codec::Fwht),
            _ => None,
        }
    }
}

impl std::fmt::Display for Codec {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// One unit of bitstream for one OUTPUT buffer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AccessUnit {
    /// Byte range in [`Stream::data`].
    pub range: Range<usize>,
    /// A decoder can start here (IDR/IRAP, VP8/VP9/AV1 key frame, FWHT I-frame).
    pub keyframe: bool,
}

/// A parsed stream: the file's bytes and where its access units are.
#[derive(Debug)]
pub struct Stream {
    pub codec: Codec,
    /// Size from the container header (IVF, FWHT), if it has one.
    pub coded_size: Option<(u32, u32)>,
    pub data: Vec<u8>,
    pub units: Vec<AccessUnit>,
}

impl Stream {
    pub fn unit(&self, index: usize) -> &[u8] {
        &self.data[self.units[index].range.clone()]
    }

    pub fn max_unit_len(&self) -> usize {
        self.units.iter().map(|u| u.range.len()).max().unwrap_or(0)
    }

    /// The first keyframe at or after `index`.
    pub fn next_keyframe(&self, index: usize) -> Option<usize> {
        (index..self.units.len()).find(|&i| self.units[i].keyframe)
    }
}

#[derive(Debug, Error)]
pub enum StreamError {
    #[error("cannot read {path}: {cause}")]
    Io { path: String, cause: std::io::Error },
    #[error("{0}")]
    Malformed(String),
    #[error("{what}: this file looks like {actual}, not {expected}")]
    WrongFormat {
        what: String,
        expected: String,
        actual: String,
    },
    #[error("cannot tell the codec of {0} from its extension; pass --codec")]
    UnknownExtension(String),
    #[error("the stream has no access unit to decode")]
    Empty,
}

/// What the first bytes of a file say it is, for "not the format its
/// extension says" messages.
pub fn sniff(data: &[u8]) -> &'static str {
    if data.starts_with(b"DKIF") {
        match data.get(8..12) {
            Some(b"VP90") => "an IVF file with VP9",
            Some(b"AV01") => "an IVF file with AV1",
            Some(b"VP80") => "an IVF file with VP8",
            _ => "an IVF file",
        }
    } else if fwht::looks_like_fwht(data) {
        "a raw FWHT (vicodec) stream"
    } else if data.len() >= 8 && &data[4..8] == b"ftyp" {
        "an MP4/ISOBMFF file (demux it to an elementary stream first)"
    } else if data.starts_with(&[0x1a, 0x45, 0xdf, 0xa3]) {
        "a Matroska/WebM file (demux it to IVF or an elementary stream first)"
    } else if mpeg2::looks_like_mpeg2(data) {
        "an MPEG-2 video elementary stream"
    } else if let Some(kind) = annexb::sniff_codec(data) {
        kind
    } else {
        "unrecognised data"
    }
}

/// Codec implied by a file name's extension.
pub fn codec_from_extension(path: &Path) -> Option<Codec> {
    let ext = path.extension()?.to_str()?.to_ascii_lowercase();
    match ext.as_str() {
        "h264" | "264" | "avc" => Some(Codec::H264),
        "hevc" | "h265" | "265" => Some(Codec::Hevc),
        "fwht" => Some(Codec::Fwht),
        "m2v" | "mpeg2" => Some(Codec::Mpeg2),
        // IVF carries its codec in the header.
        _ => None,
    }
}

fn is_ivf_extension(path: &Path) -> bool {
    path.extension()
        .and_then(|e| e.to_str())
        .is_some_and(|e| e.eq_ignore_ascii_case("ivf"))
}

/// Reads and parses `path`. `codec` overrides the extension; for IVF it must
/// match the header.
pub fn open(path: &Path, codec: Option<Codec>) -> Result<Stream, StreamError> {
    let data = std::fs::read(path).map_err(|cause| StreamError::Io {
        path: path.display().to_string(),
        cause,
    })?;
    let what = path.display().to_string();
    let codec = match codec.or_else(|| codec_from_extension(path)) {
        Some(codec) => Some(codec),
        None if is_ivf_extension(path) || data.starts_with(b"DKIF") => None,
        None => return Err(StreamError::UnknownExtension(what)),
    };
    parse(&what, data, codec)
}

/// Parses `data` as `codec` (None: an IVF file, codec from its header).
pub fn parse(what: &str, data: Vec<u8>, codec: Option<Codec>) -> Result<Stream, StreamError> {
    let stream = match codec {
        None | Some(Codec::Vp8 | Codec::Vp9 | Codec::Av1) => {
            let stream = ivf::parse(what, data)?;
            if let Some(wanted) = codec {
                if wanted != stream.codec {
                    return Err(StreamError::WrongFormat {
                        what: what.to_string(),
                        expected: format!("{wanted}"),
                        actual: format!("an IVF file with {}", stream.codec),
                    });
                }
            }
            stream
        }
        Some(c @ (Codec::H264 | Codec::Hevc)) => annexb::parse(what, data, c)?,
        Some(Codec::Mpeg2) => mpeg2::parse(what, data)?,
        Some(Codec::Fwht) => fwht::parse(what, data)?,
    };
    if stream.units.is_empty() {
        return Err(StreamError::Empty);
    }
    Ok(stream)
}
