//! IVF container (VP8, VP9, AV1): a 32-byte file header, then frames each
//! with a 12-byte header (little-endian size, 64-bit pts).

use super::{AccessUnit, Codec, Stream, StreamError};

const FILE_HEADER_LEN: usize = 32;
const FRAME_HEADER_LEN: usize = 12;
/// No sane frame is bigger; a larger size field means a corrupt file.
const MAX_FRAME_LEN: usize = 64 << 20;

pub fn parse(what: &str, data: Vec<u8>) -> Result<Stream, StreamError> {
    if !data.starts_with(b"DKIF") {
        return Err(StreamError::WrongFormat {
            what: what.to_string(),
            expected: "an IVF file (DKIF signature)".to_string(),
            actual: super::sniff(&data).to_string(),
        });
    }
    if data.len() < FILE_HEADER_LEN {
        return Err(StreamError::Malformed(format!(
            "{what}: truncated IVF header ({} of {FILE_HEADER_LEN} bytes)",
            data.len()
        )));
    }
    let header_len = usize::from(u16::from_le_bytes([data[6], data[7]]));
    if header_len < FILE_HEADER_LEN || header_len > data.len() {
        return Err(StreamError::Malformed(format!(
            "{what}: IVF header length {header_len} is invalid"
        )));
    }
    let codec = match &data[8..12] {
        b"VP90" => Codec::Vp9,
        b"AV01" => Codec::Av1,
        b"VP80" => Codec::Vp8,
        other => {
            return Err(StreamError::Malformed(format!(
                "{what}: IVF codec {:?} is not one of VP80, VP90, AV01",
                String::from_utf8_lossy(other)
            )))
        }
    };
    let width = u32::from(u16::from_le_bytes([data[12], data[13]]));
    let height = u32::from(u16::from_le_bytes([data[14], data[15]]));

    let mut units = Vec::new();
    let mut keys = KeyframeDetector::new(codec);
    let mut pos = header_len;
    while pos < data.len() {
        let index = units.len();
        let Some(frame_header) = data.get(pos..pos + FRAME_HEADER_LEN) else {
            return Err(StreamError::Malformed(format!(
                "{what}: truncated IVF frame header of frame {index} at offset {pos}"
            )));
        };
        let len = u32::from_le_bytes([
            frame_header[0],
            frame_header[1],
            frame_header[2],
            frame_header[3],
        ]) as usize;
        if len > MAX_FRAME_LEN {
            return Err(StreamError::Malformed(format!(
                "{what}: IVF frame {index} at offset {pos} claims {len} bytes (corrupt size field)"
            )));
        }
        let start = pos + FRAME_HEADER_LEN;
        let end = start + len;
        if end > data.len() {
            return Err(StreamError::Malformed(format!(
                "{what}: IVF frame {index} at offset {pos} is truncated ({} of {len} bytes)",
                data.len() - start
            )));
        }
        // An empty frame would read as the legacy "bytesused 0 = drain" on
        // OUTPUT: skip it (VP8 encoders emit them for dropped frames).
        if len > 0 {
            units.push(AccessUnit {
                range: start..end,
                keyframe: keys.is_keyframe(&data[start..end]),
            });
        }
        pos = end;
    }
    Ok(Stream {
        codec,
        coded_size: (width > 0 && height > 0).then_some((width, height)),
        data,
        units,
    })
}

/// MSB-first bit reader over a byte slice; reads past the end give None.
struct Bits<'a> {
    data: &'a [u8],
    pos: usize,
}

impl<'a> Bits<'a> {
    fn new(data: &'a [u8]) -> Self {
        Bits { data, pos: 0 }
    }

    fn bit(&mut self) -> Option<u32> {
        let byte = *self.data.get(self.pos / 8)?;
        let bit = (byte >> (7 - self.pos % 8)) & 1;
        self.pos += 1;
        Some(u32::from(bit))
    }

    fn bits(&mut self, n: u32) -> Option<u32> {
        (0..n).try_fold(0, |acc, _| Some((acc << 1) | self.bit()?))
    }
}

struct KeyframeDetector {
    codec: Codec,
    /// AV1: from the last sequence header; every frame is a key frame then.
    av1_reduced_still_picture: bool,
}

impl KeyframeDetector {
    fn new(codec: Codec) -> Self {
        KeyframeDetector {
            codec,
            av1_reduced_still_picture: false,
        }
    }

    fn is_keyframe(&mut self, frame: &[u8]) -> bool {
        match self.codec {
            // VP8 frame tag: bit 0 is 0 for a key frame.
            Codec::Vp8 => frame.first().is_some_and(|b| b & 1 == 0),
            Codec::Vp9 => vp9_is_keyframe(frame).unwrap_or(false),
            Codec::Av1 => self.av1_is_keyframe(frame),
            _ => false,
        }
    }

    /// A temporal unit is a key frame when it holds a frame (header) OBU
    /// with frame_type KEY_FRAME that is not a show_existing_frame.
    fn av1_is_keyframe(&mut self, tu: &[u8]) -> bool {
        let mut pos = 0;
        let mut key = false;
        while pos < tu.len() {
            let header = tu[pos];
            let obu_type = (header >> 3) & 0xf;
            let has_extension = header & 0x4 != 0;
            let has_size = header & 0x2 != 0;
            pos += 1 + usize::from(has_extension);
            let size = if has_size {
                match leb128(&tu[pos.min(tu.len())..]) {
                    Some((value, used)) => {
                        pos += used;
                        value
                    }
                    None => return key,
                }
            } else {
                tu.len().saturating_sub(pos)
            };
            let Some(payload) = tu.get(pos..pos.saturating_add(size)) else {
                return key;
            };
            match obu_type {
                // OBU_SEQUENCE_HEADER: seq_profile(3) still_picture(1)
                // reduced_still_picture_header(1).
                1 => {
                    let mut b = Bits::new(payload);
                    if let Some(v) = b.bits(5) {
                        self.av1_reduced_still_picture = v & 1 != 0;
                    }
                }
                // OBU_FRAME_HEADER, OBU_FRAME
                3 | 6 => {
                    if self.av1_reduced_still_picture {
                        key = true;
                    } else {
                        let mut b = Bits::new(payload);
                        if b.bit() == Some(0) && b.bits(2) == Some(0) {
                            key = true;
                        }
                    }
                }
                _ => {}
            }
            pos += size;
        }
        key
    }
}

fn leb128(data: &[u8]) -> Option<(usize, usize)> {
    let mut value: u64 = 0;
    for (i, byte) in data.iter().take(8).enumerate() {
        value |= u64::from(byte & 0x7f) << (7 * i);
        if byte & 0x80 == 0 {
            return Some((usize::try_from(value).ok()?, i + 1));
        }
    }
    None
}

/// VP9 uncompressed header: frame_marker(2) profile(2, +1 reserved bit for
/// profile 3) show_existing_frame(1) frame_type(1, 0 = KEY_FRAME). In a
/// superframe the first frame comes first, so this reads it.
fn vp9_is_keyframe(frame: &[u8]) -> Option<bool> {
    let mut b = Bits::new(frame);
    if b.bits(2)? != 2 {
        return Some(false);
    }
    let low = b.bit()?;
    let high = b.bit()?;
    if (high << 1) | low == 3 {
        b.bit()?;
    }
    if b.bit()? == 1 {
        return Some(false);
    }
    Some(b.bit()? == 0)
}

#[cfg(test)]
mod tests {
    use super::*;

    pub(crate) fn ivf(fourcc: &[u8; 4], frames: &[&[u8]]) -> Vec<u8> {
        let mut out = Vec::new();
        out.extend_from_slice(b"DKIF");
        out.extend_from_slice(&0u16.to_le_bytes());
        out.extend_from_slice(&32u16.to_le_bytes());
        out.extend_from_slice(fourcc);
        out.extend_from_slice(&320u16.to_le_bytes());
        out.extend_from_slice(&240u16.to_le_bytes());
        out.extend_from_slice(&30u32.to_le_bytes());
        out.extend_from_slice(&1u32.to_le_bytes());
        out.extend_from_slice(&(frames.len() as u32).to_le_bytes());
        out.extend_from_slice(&0u32.to_le_bytes());
        for (i, f) in frames.iter().enumerate() {
            out.extend_from_slice(&(f.len() as u32).to_le_bytes());
            out.extend_from_slice(&(i as u64).to_le_bytes());
            out.extend_from_slice(f);
        }
        out
    }

    // VP9 profile 0: marker 10, profile 00, show_existing 0, frame_type 0/1.
    const VP9_KEY: &[u8] = &[0b1000_0000, 0x49, 0x83, 0x42];
    const VP9_INTER: &[u8] = &[0b1000_0100, 0x00];

    #[test]
    fn parses_frames_and_keyframes() {
        let data = ivf(b"VP90", &[VP9_KEY, VP9_INTER, VP9_INTER]);
        let s = parse("t.ivf", data).unwrap();
        assert_eq!(s.codec, Codec::Vp9);
        assert_eq!(s.coded_size, Some((320, 240)));
        assert_eq!(s.units.len(), 3);
        assert_eq!(s.unit(0), VP9_KEY);
        assert_eq!(s.unit(2), VP9_INTER);
        let keys: Vec<bool> = s.units.iter().map(|u| u.keyframe).collect();
        assert_eq!(keys, [true, false, false]);
        assert_eq!(s.next_keyframe(1), None);
        assert_eq!(s.next_keyframe(0), Some(0));
    }

    #[test]
    fn vp9_show_existing_frame_is_not_a_keyframe() {
        assert_eq!(vp9_is_keyframe(&[0b1000_1000]), Some(false));
        // profile 3 has a reserved bit before show_existing_frame
        assert_eq!(vp9_is_keyframe(&[0b1011_0000]), Some(true));
    }

    #[test]
    fn vp8_keyframe_bit() {
        let data = ivf(b"VP80", &[&[0x10, 0x02, 0x00], &[0x31, 0x02, 0x00]]);
        let s = parse("t.ivf", data).unwrap();
        assert_eq!(s.codec, Codec::Vp8);
        assert!(s.units[0].keyframe);
        assert!(!s.units[1].keyframe);
    }

    #[test]
    fn av1_key_and_inter_temporal_units() {
        // TD, sequence header (profile 0, not still), frame OBU: show_existing 0,
        // frame_type 00 (key).
        let key_tu: &[u8] = &[0x12, 0x00, 0x0a, 0x01, 0x00, 0x32, 0x01, 0x00];
        // TD, frame OBU with frame_type 01 (inter).
        let inter_tu: &[u8] = &[0x12, 0x00, 0x32, 0x01, 0b0010_0000];
        let data = ivf(b"AV01", &[key_tu, inter_tu]);
        let s = parse("t.ivf", data).unwrap();
        assert_eq!(s.codec, Codec::Av1);
        assert!(s.units[0].keyframe);
        assert!(!s.units[1].keyframe);
    }

    #[test]
    fn truncated_payload_is_reported_with_frame_and_offset() {
        let mut data = ivf(b"VP90", &[VP9_KEY, VP9_INTER]);
        data.truncate(data.len() - 1);
        let err = parse("t.ivf", data).unwrap_err().to_string();
        assert!(err.contains("frame 1"), "{err}");
        assert!(err.contains("truncated"), "{err}");
    }

    #[test]
    fn truncated_frame_header() {
        let mut data = ivf(b"VP90", &[VP9_KEY]);
        data.extend_from_slice(&[1, 2, 3]);
        let err = parse("t.ivf", data).unwrap_err().to_string();
        assert!(err.contains("truncated IVF frame header"), "{err}");
    }

    #[test]
    fn truncated_file_header() {
        let data = ivf(b"VP90", &[])[..20].to_vec();
        let err = parse("t.ivf", data).unwrap_err().to_string();
        assert!(err.contains("truncated IVF header"), "{err}");
    }

    #[test]
    fn absurd_frame_size_is_malformed() {
        let mut data = ivf(b"VP90", &[]);
        data.extend_from_slice(&u32::MAX.to_le_bytes());
        data.extend_from_slice(&0u64.to_le_bytes());
        let err = parse("t.ivf", data).unwrap_err().to_string();
        assert!(err.contains("corrupt size field"), "{err}");
    }

    #[test]
    fn unknown_fourcc() {
        let data = ivf(b"H264", &[VP9_KEY]);
        let err = parse("t.ivf", data).unwrap_err().to_string();
        assert!(err.contains("not one of"), "{err}");
    }

    #[test]
    fn annexb_file_named_ivf_is_wrong_format() {
        let err = parse("t.ivf", vec![0, 0, 0, 1, 0x67, 0x42, 0, 0x1e])
            .unwrap_err()
            .to_string();
        assert!(err.contains("looks like"), "{err}");
        assert!(err.contains("H.264"), "{err}");
    }

    #[test]
    fn empty_frames_are_skipped() {
        let data = ivf(b"VP80", &[&[0x10, 0, 0], &[], &[0x11, 0, 0]]);
        let s = parse("t.ivf", data).unwrap();
        assert_eq!(s.units.len(), 2);
    }
}
