//! Annex-B elementary streams (H.264, HEVC) split into access units: start
//! codes find the NAL units, the standard's "first NAL of a new access unit"
//! rules group them. Each unit keeps its start codes, as decoders expect.

use super::{AccessUnit, Codec, Stream, StreamError};

/// How far into a file we look for the first start code before giving up.
const FIRST_START_CODE_WITHIN: usize = 64;

/// A NAL unit: where its start code begins, where its header begins.
#[derive(Debug, Clone, Copy)]
struct Nal {
    start: usize,
    header: usize,
}

/// Finds every start code (00 00 01, with any leading zero bytes counted as
/// part of the start code, so 00 00 00 01 starts where its first zero is).
fn find_nals(data: &[u8]) -> Vec<Nal> {
    let mut nals = Vec::new();
    let mut i = 0;
    while i + 3 <= data.len() {
        if data[i] == 0 && data[i + 1] == 0 && data[i + 2] == 1 {
            let mut start = i;
            while start > 0
                && data[start - 1] == 0
                && nals.last().is_none_or(|n: &Nal| start > n.header)
            {
                start -= 1;
            }
            nals.push(Nal {
                start,
                header: i + 3,
            });
            i += 3;
        } else {
            i += 1;
        }
    }
    nals
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum NalRole {
    /// Begins a new access unit when the current one already has a picture.
    AuDelimiting,
    /// A slice; the flag says it is the first slice of a picture.
    Vcl {
        first_in_picture: bool,
        irap: bool,
    },
    Other,
}

fn h264_role(nal: &[u8]) -> Option<NalRole> {
    let header = *nal.first()?;
    if header & 0x80 != 0 {
        return None;
    }
    let nal_type = header & 0x1f;
    Some(match nal_type {
        // non-IDR slice, partition A, IDR slice; first_mb_in_slice is ue(v),
        // which is 0 exactly when its first bit is 1.
        1 | 2 | 5 => NalRole::Vcl {
            first_in_picture: nal.get(1).is_some_and(|b| b & 0x80 != 0),
            irap: nal_type == 5,
        },
        // SEI, SPS, PPS, AUD, prefix/subset SPS and reserved 16..18.
        6..=9 | 14..=18 => NalRole::AuDelimiting,
        // Unspecified: no H.264 encoder writes these; an HEVC stream read
        // as H.264 starts with them.
        0 | 24..=31 => return None,
        _ => NalRole::Other,
    })
}

fn hevc_role(nal: &[u8]) -> Option<NalRole> {
    let header = *nal.first()?;
    if header & 0x80 != 0 || nal.len() < 2 {
        return None;
    }
    let nal_type = (header >> 1) & 0x3f;
    // nuh_temporal_id_plus1 must not be 0.
    if nal[1] & 0x7 == 0 {
        return None;
    }
    Some(match nal_type {
        0..=31 => NalRole::Vcl {
            first_in_picture: nal.get(2).is_some_and(|b| b & 0x80 != 0),
            irap: (16..=23).contains(&nal_type),
        },
        // VPS, SPS, PPS, AUD, prefix SEI, reserved 41..44, unspecified 48..55.
        32..=35 | 39 | 41..=44 | 48..=55 => NalRole::AuDelimiting,
        _ => NalRole::Other,
    })
}

fn role(codec: Codec, nal: &[u8]) -> Option<NalRole> {
    match codec {
        Codec::H264 => h264_role(nal),
        Codec::Hevc => hevc_role(nal),
        _ => None,
    }
}

/// A guess at which Annex-B codec `data` holds, for error messages.
pub fn sniff_codec(data: &[u8]) -> Option<&'static str> {
    let nals = find_nals(&data[..data.len().min(4096)]);
    let first = nals.first()?;
    if first.start > FIRST_START_CODE_WITHIN {
        return None;
    }
    let bytes = |n: &Nal| &data[n.header..data.len().min(n.header + 3)];
    let all = |codec| nals.iter().all(|n| role(codec, bytes(n)).is_some());
    let header = data.get(first.header).copied()?;
    // A stream normally opens with a parameter set or a delimiter.
    if matches!(header & 0x1f, 7 | 9) && all(Codec::H264) {
        Some("an H.264 Annex-B stream")
    } else if matches!((header >> 1) & 0x3f, 32 | 35) && all(Codec::Hevc) {
        Some("an HEVC Annex-B stream")
    } else if all(Codec::H264) {
        Some("an H.264 Annex-B stream")
    } else if all(Codec::Hevc) {
        Some("an HEVC Annex-B stream")
    } else {
        Some("an Annex-B stream of an unknown codec")
    }
}

pub fn parse(what: &str, data: Vec<u8>, codec: Codec) -> Result<Stream, StreamError> {
    let expected = match codec {
        Codec::H264 => "an H.264 Annex-B stream",
        _ => "an HEVC Annex-B stream",
    };
    let wrong = |data: &[u8]| StreamError::WrongFormat {
        what: what.to_string(),
        expected: expected.to_string(),
        actual: super::sniff(data).to_string(),
    };
    let nals = find_nals(&data);
    match nals.first() {
        Some(n) if n.start <= FIRST_START_CODE_WITHIN => {}
        _ => return Err(wrong(&data)),
    }

    let mut units = Vec::new();
    let mut au_start: Option<usize> = None;
    let mut au_has_picture = false;
    let mut au_key = false;
    for (i, nal) in nals.iter().enumerate() {
        let end = nals.get(i + 1).map_or(data.len(), |n| n.start);
        let body = &data[nal.header..end];
        if body.is_empty() {
            // 00 00 01 followed directly by another start code: nothing to carry.
            continue;
        }
        let Some(nal_role) = role(codec, body) else {
            let other = match codec {
                Codec::H264 => "an HEVC Annex-B stream",
                _ => "an H.264 Annex-B stream",
            };
            if (units.is_empty() && !au_has_picture) || sniff_codec(&data) == Some(other) {
                return Err(wrong(&data));
            }
            return Err(StreamError::Malformed(format!(
                "{what}: invalid {} NAL header 0x{:02x} at offset {} (access unit {})",
                codec,
                body[0],
                nal.header,
                units.len()
            )));
        };
        let starts_new = match nal_role {
            NalRole::AuDelimiting => au_has_picture,
            NalRole::Vcl {
                first_in_picture, ..
            } => au_has_picture && first_in_picture,
            NalRole::Other => false,
        };
        if starts_new {
            if let Some(start) = au_start {
                units.push(AccessUnit {
                    range: start..nal.start,
                    keyframe: au_key,
                });
            }
            au_start = None;
            au_has_picture = false;
            au_key = false;
        }
        au_start.get_or_insert(nal.start);
        if let NalRole::Vcl { irap, .. } = nal_role {
            au_has_picture = true;
            au_key |= irap;
        }
    }
    if let Some(start) = au_start {
        if !au_has_picture {
            return Err(StreamError::Malformed(format!(
                "{what}: the stream ends at offset {} in access unit {} before any slice data \
                 (truncated file?)",
                data.len(),
                units.len()
            )));
        }
        units.push(AccessUnit {
            range: start..data.len(),
            keyframe: au_key,
        });
    }
    Ok(Stream {
        codec,
        coded_size: None,
        data,
        units,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn nal(start4: bool, bytes: &[u8]) -> Vec<u8> {
        let mut v = if start4 {
            vec![0, 0, 0, 1]
        } else {
            vec![0, 0, 1]
        };
        v.extend_from_slice(bytes);
        v
    }

    fn cat(parts: &[Vec<u8>]) -> Vec<u8> {
        parts.concat()
    }

    // H.264 NAL headers: SPS 0x67, PPS 0x68, IDR 0x65, non-IDR 0x41, AUD 0x09, SEI 0x06.
    fn h264_stream() -> Vec<u8> {
        cat(&[
            nal(true, &[0x67, 0x42, 0x00, 0x1e]),
            nal(true, &[0x68, 0xce, 0x38, 0x80]),
            nal(false, &[0x65, 0x88, 0x84]), // IDR, first_mb = 0
            nal(false, &[0x65, 0x40, 0x11]), // second slice of the same picture
            nal(true, &[0x41, 0x9a, 0x01]),  // P, first_mb = 0 -> new AU
            nal(true, &[0x06, 0x05, 0x01]),  // SEI -> new AU
            nal(true, &[0x41, 0x9a, 0x02]),
        ])
    }

    #[test]
    fn h264_access_units() {
        let data = h264_stream();
        let s = parse("t.h264", data.clone(), Codec::H264).unwrap();
        assert_eq!(s.units.len(), 3);
        assert!(s.units[0].keyframe);
        assert!(!s.units[1].keyframe);
        assert!(!s.units[2].keyframe);
        // units tile the file and keep their start codes
        assert_eq!(s.units[0].range.start, 0);
        assert_eq!(s.units[0].range.end, s.units[1].range.start);
        assert_eq!(s.units[2].range.end, data.len());
        assert!(s.unit(1).starts_with(&[0, 0, 0, 1, 0x41]));
        assert!(s.unit(2).starts_with(&[0, 0, 0, 1, 0x06]));
        // SPS, PPS and both slices of the IDR picture are in unit 0
        assert_eq!(s.unit(0).windows(3).filter(|w| w == &[0, 0, 1]).count(), 4);
    }

    // HEVC NAL headers (type << 1, tid 1): VPS 0x40 01, SPS 0x42 01, PPS 0x44 01,
    // IDR_W_RADL 0x26 01, TRAIL_R 0x02 01, prefix SEI 0x4e 01.
    #[test]
    fn hevc_access_units() {
        let data = cat(&[
            nal(true, &[0x40, 0x01, 0x0c]),
            nal(true, &[0x42, 0x01, 0x01]),
            nal(true, &[0x44, 0x01, 0xc1]),
            nal(true, &[0x26, 0x01, 0xaf, 0x00]), // first slice segment
            nal(true, &[0x26, 0x01, 0x20, 0x00]), // dependent, same picture
            nal(true, &[0x02, 0x01, 0xd0, 0x00]), // next picture
            nal(true, &[0x4e, 0x01, 0x05]),       // SEI -> next AU
            nal(true, &[0x02, 0x01, 0xd0, 0x01]),
        ]);
        let s = parse("t.hevc", data, Codec::Hevc).unwrap();
        assert_eq!(s.units.len(), 3);
        assert!(s.units[0].keyframe);
        assert!(!s.units[1].keyframe);
    }

    #[test]
    fn hevc_file_named_h264_is_wrong_format() {
        let data = cat(&[
            nal(true, &[0x40, 0x01, 0x0c]),
            nal(true, &[0x42, 0x01, 0x01]),
            nal(true, &[0x26, 0x01, 0xaf]),
        ]);
        let err = parse("t.h264", data, Codec::H264).unwrap_err().to_string();
        assert!(err.contains("looks like an HEVC"), "{err}");
    }

    #[test]
    fn h264_file_named_hevc_is_wrong_format() {
        let err = parse("t.hevc", h264_stream(), Codec::Hevc)
            .unwrap_err()
            .to_string();
        assert!(err.contains("looks like an H.264"), "{err}");
    }

    #[test]
    fn ivf_file_named_h264_is_wrong_format() {
        let mut data = b"DKIF\0\0\x20\0VP90".to_vec();
        data.resize(64, 0);
        let err = parse("t.h264", data, Codec::H264).unwrap_err().to_string();
        assert!(err.contains("IVF file with VP9"), "{err}");
    }

    #[test]
    fn garbage_is_wrong_format() {
        let err = parse("t.h264", vec![0x55; 500], Codec::H264)
            .unwrap_err()
            .to_string();
        assert!(err.contains("unrecognised"), "{err}");
    }

    #[test]
    fn truncated_after_parameter_sets() {
        let mut data = h264_stream();
        data.extend(nal(true, &[0x09, 0xf0]));
        data.extend(nal(true, &[0x67, 0x42]));
        let err = parse("t.h264", data, Codec::H264).unwrap_err().to_string();
        assert!(err.contains("truncated"), "{err}");
    }

    #[test]
    fn forbidden_zero_bit_mid_stream_is_malformed() {
        let mut data = h264_stream();
        data.extend(nal(true, &[0xc1, 0x9a]));
        let err = parse("t.h264", data, Codec::H264).unwrap_err().to_string();
        assert!(err.contains("invalid h264 NAL header 0xc1"), "{err}");
    }

    #[test]
    fn empty_nals_are_skipped() {
        let mut data = vec![0, 0, 1];
        data.extend(h264_stream());
        let s = parse("t.h264", data, Codec::H264).unwrap();
        assert_eq!(s.units.len(), 3);
    }

    #[test]
    fn four_byte_start_codes_belong_to_their_nal() {
        let nals = find_nals(&[0, 0, 0, 1, 0x67, 0, 0, 1, 0x68]);
        assert_eq!(nals.len(), 2);
        assert_eq!(nals[0].start, 0);
        assert_eq!(nals[0].header, 4);
        assert_eq!(nals[1].start, 5);
    }
}
