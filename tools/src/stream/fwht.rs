//! Raw FWHT streams, as vicodec's encoder writes them (e.g. captured with
//! `v4l2-ctl --stream-to`): frames back to back, each a 44-byte big-endian
//! header (struct fwht_cframe_hdr in the kernel's codec-fwht.h) followed by
//! `size` bytes of compressed data.

use super::{AccessUnit, Codec, Stream, StreamError};

const HEADER_LEN: usize = 44;
const MAGIC: [u8; 8] = [0x4f, 0x4f, 0x4f, 0x4f, 0xff, 0xff, 0xff, 0xff];
/// FWHT_FL_I_FRAME (header version 3 and later).
const FLAG_I_FRAME: u32 = 1 << 10;
const MAX_DIMENSION: u32 = 16384;

pub fn looks_like_fwht(data: &[u8]) -> bool {
    data.starts_with(&MAGIC)
}

fn be32(data: &[u8], at: usize) -> u32 {
    u32::from_be_bytes([data[at], data[at + 1], data[at + 2], data[at + 3]])
}

pub fn parse(what: &str, data: Vec<u8>) -> Result<Stream, StreamError> {
    if !looks_like_fwht(&data) {
        return Err(StreamError::WrongFormat {
            what: what.to_string(),
            expected: "a raw FWHT stream".to_string(),
            actual: super::sniff(&data).to_string(),
        });
    }
    let mut units = Vec::new();
    let mut coded_size = None;
    let mut pos = 0;
    while pos < data.len() {
        let index = units.len();
        let Some(header) = data.get(pos..pos + HEADER_LEN) else {
            return Err(StreamError::Malformed(format!(
                "{what}: truncated FWHT header of frame {index} at offset {pos}"
            )));
        };
        if header[..8] != MAGIC {
            return Err(StreamError::Malformed(format!(
                "{what}: no FWHT magic at offset {pos} (frame {index})"
            )));
        }
        let version = be32(header, 8);
        let (width, height) = (be32(header, 12), be32(header, 16));
        let flags = be32(header, 20);
        let size = be32(header, 40) as usize;
        if version == 0
            || width == 0
            || height == 0
            || width > MAX_DIMENSION
            || height > MAX_DIMENSION
        {
            return Err(StreamError::Malformed(format!(
                "{what}: FWHT frame {index} at offset {pos} has an invalid header \
                 (version {version}, {width}x{height})"
            )));
        }
        let end = pos + HEADER_LEN + size;
        if end > data.len() {
            return Err(StreamError::Malformed(format!(
                "{what}: FWHT frame {index} at offset {pos} is truncated ({} of {size} bytes)",
                data.len() - pos - HEADER_LEN
            )));
        }
        coded_size.get_or_insert((width, height));
        units.push(AccessUnit {
            range: pos..end,
            // Version 1-2 headers have no I-frame flag: only the first frame is
            // known to be one.
            keyframe: if version >= 3 {
                flags & FLAG_I_FRAME != 0
            } else {
                index == 0
            },
        });
        pos = end;
    }
    Ok(Stream {
        codec: Codec::Fwht,
        coded_size,
        data,
        units,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frame(i_frame: bool, payload: &[u8]) -> Vec<u8> {
        let mut v = MAGIC.to_vec();
        for field in [
            3u32,
            64,
            48,
            if i_frame { FLAG_I_FRAME } else { 0 },
            0,
            0,
            0,
            0,
            payload.len() as u32,
        ] {
            v.extend_from_slice(&field.to_be_bytes());
        }
        v.extend_from_slice(payload);
        v
    }

    #[test]
    fn parses_frames() {
        let data = [
            frame(true, &[1, 2, 3]),
            frame(false, &[4]),
            frame(false, &[]),
        ]
        .concat();
        let s = parse("t.fwht", data).unwrap();
        assert_eq!(s.units.len(), 3);
        assert_eq!(s.coded_size, Some((64, 48)));
        assert!(s.units[0].keyframe);
        assert!(!s.units[1].keyframe);
        assert_eq!(s.unit(1).len(), HEADER_LEN + 1);
    }

    #[test]
    fn truncated_payload() {
        let mut data = [frame(true, &[1, 2, 3]), frame(false, &[4, 5])].concat();
        data.pop();
        let err = parse("t.fwht", data).unwrap_err().to_string();
        assert!(
            err.contains("frame 1") && err.contains("truncated"),
            "{err}"
        );
    }

    #[test]
    fn truncated_header() {
        let mut data = frame(true, &[1]);
        data.extend_from_slice(&MAGIC);
        let err = parse("t.fwht", data).unwrap_err().to_string();
        assert!(err.contains("truncated FWHT header"), "{err}");
    }

    #[test]
    fn lost_sync() {
        let mut data = frame(true, &[1]);
        data.extend_from_slice(&[0u8; HEADER_LEN]);
        let err = parse("t.fwht", data).unwrap_err().to_string();
        assert!(err.contains("no FWHT magic"), "{err}");
    }

    #[test]
    fn bad_dimensions() {
        let mut data = frame(true, &[1]);
        data[12..16].copy_from_slice(&0u32.to_be_bytes());
        let err = parse("t.fwht", data).unwrap_err().to_string();
        assert!(err.contains("invalid header"), "{err}");
    }

    #[test]
    fn h264_named_fwht() {
        let err = parse(
            "t.fwht",
            vec![0, 0, 0, 1, 0x67, 0x42, 0, 0, 0, 1, 0x68, 0xce],
        )
        .unwrap_err()
        .to_string();
        assert!(err.contains("looks like an H.264"), "{err}");
    }
}
