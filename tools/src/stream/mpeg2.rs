//! MPEG-2 video elementary streams (ISO/IEC 13818-2, `.m2v`) split into
//! pictures: a sequence header, GOP header or picture header that follows a
//! picture's slices starts the next unit, so each unit carries the headers
//! that precede its picture, as a decoder expects.

use super::{AccessUnit, Codec, Stream, StreamError};

const PICTURE: u8 = 0x00;
const SLICE_FIRST: u8 = 0x01;
const SLICE_LAST: u8 = 0xaf;
const SEQUENCE_HEADER: u8 = 0xb3;
const GROUP_OF_PICTURES: u8 = 0xb8;
/// picture_coding_type of an intra-coded picture.
const I_PICTURE: u8 = 1;

/// A start code (00 00 01 xx): offset of its first zero and its code byte.
#[derive(Debug, Clone, Copy)]
struct StartCode {
    at: usize,
    code: u8,
}

fn find_start_codes(data: &[u8]) -> Vec<StartCode> {
    let mut codes = Vec::new();
    let mut i = 0;
    while i + 4 <= data.len() {
        if data[i] == 0 && data[i + 1] == 0 && data[i + 2] == 1 {
            codes.push(StartCode {
                at: i,
                code: data[i + 3],
            });
            i += 4;
        } else {
            i += 1;
        }
    }
    codes
}

/// Whether `data` opens like an MPEG-2 video elementary stream (a sequence
/// header first), for "this file looks like" messages.
pub fn looks_like_mpeg2(data: &[u8]) -> bool {
    data.starts_with(&[0, 0, 1, SEQUENCE_HEADER])
}

pub fn parse(what: &str, data: Vec<u8>) -> Result<Stream, StreamError> {
    if !looks_like_mpeg2(&data) {
        return Err(StreamError::WrongFormat {
            what: what.to_string(),
            expected: "an MPEG-2 video elementary stream".to_string(),
            actual: super::sniff(&data).to_string(),
        });
    }
    let mut units = Vec::new();
    let mut unit_start = 0;
    let mut has_slices = false;
    let mut has_sequence_header = false;
    let mut intra = false;
    for sc in find_start_codes(&data) {
        let heads_picture = matches!(sc.code, PICTURE | SEQUENCE_HEADER | GROUP_OF_PICTURES);
        if heads_picture && has_slices {
            units.push(AccessUnit {
                range: unit_start..sc.at,
                keyframe: intra && has_sequence_header,
            });
            unit_start = sc.at;
            has_slices = false;
            has_sequence_header = false;
            intra = false;
        }
        match sc.code {
            SEQUENCE_HEADER => has_sequence_header = true,
            PICTURE => {
                // temporal_reference (10 bits), then picture_coding_type (3)
                let coding_type = data.get(sc.at + 5).map_or(0, |b| (b >> 3) & 0x7);
                intra = coding_type == I_PICTURE;
            }
            SLICE_FIRST..=SLICE_LAST => has_slices = true,
            _ => {}
        }
    }
    if !has_slices {
        return Err(StreamError::Malformed(format!(
            "{what}: the stream ends at offset {} in picture {} before any slice data \
             (truncated file?)",
            data.len(),
            units.len()
        )));
    }
    units.push(AccessUnit {
        range: unit_start..data.len(),
        keyframe: intra && has_sequence_header,
    });
    Ok(Stream {
        codec: Codec::Mpeg2,
        coded_size: None,
        data,
        units,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn code(code: u8, payload: &[u8]) -> Vec<u8> {
        let mut v = vec![0, 0, 1, code];
        v.extend_from_slice(payload);
        v
    }

    /// picture header bytes with picture_coding_type `t` (1 I, 2 P, 3 B)
    fn picture(t: u8) -> Vec<u8> {
        code(PICTURE, &[0x00, t << 3, 0xff, 0xf8])
    }

    fn cat(parts: &[Vec<u8>]) -> Vec<u8> {
        parts.concat()
    }

    #[test]
    fn pictures_carry_their_headers() {
        let seq = code(SEQUENCE_HEADER, &[0x14, 0x00, 0xf0, 0x13]);
        let gop = code(GROUP_OF_PICTURES, &[0x00, 0x08, 0x00, 0x00]);
        let slice = code(0x01, &[0x12, 0x34]);
        let data = cat(&[
            seq.clone(),
            gop.clone(),
            picture(1),
            slice.clone(),
            code(0x02, &[0x56]),
            picture(3),
            slice.clone(),
            picture(2),
            slice.clone(),
            gop,
            picture(1),
            slice.clone(),
            seq,
            picture(1),
            slice,
            code(0xb7, &[]),
        ]);
        let s = parse("t.m2v", data).unwrap();
        assert_eq!(s.codec, Codec::Mpeg2);
        let keys: Vec<bool> = s.units.iter().map(|u| u.keyframe).collect();
        // an I-picture without a sequence header is no place to start
        assert_eq!(keys, [true, false, false, false, true]);
        assert_eq!(s.unit(0)[..4], [0, 0, 1, SEQUENCE_HEADER]);
        assert_eq!(s.unit(3)[..4], [0, 0, 1, GROUP_OF_PICTURES]);
        assert_eq!(s.units.last().unwrap().range.end, s.data.len());
        let total: usize = s.units.iter().map(|u| u.range.len()).sum();
        assert_eq!(total, s.data.len());
    }

    #[test]
    fn h264_is_wrong_format() {
        let data = cat(&[code(0x67, &[0x42, 0, 0x1e]), code(0x65, &[0x88])]);
        let err = parse("t.m2v", data).unwrap_err();
        assert!(matches!(err, StreamError::WrongFormat { .. }), "{err}");
    }

    #[test]
    fn headers_without_slices_are_truncated() {
        let data = cat(&[code(SEQUENCE_HEADER, &[0x14, 0, 0xf0, 0x13]), picture(1)]);
        let err = parse("t.m2v", data).unwrap_err();
        assert!(err.to_string().contains("truncated"), "{err}");
    }
}
