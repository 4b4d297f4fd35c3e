//! V4L2 fourccs used on the channel (same values as `videodev2.h`).

/// Builds a V4L2 fourcc from its four characters, like `v4l2_fourcc()`.
pub const fn fourcc(code: &[u8; 4]) -> u32 {
    (code[0] as u32) | ((code[1] as u32) << 8) | ((code[2] as u32) << 16) | ((code[3] as u32) << 24)
}

/// H.264 access units (`V4L2_PIX_FMT_H264`).
pub const H264: u32 = fourcc(b"H264");
/// HEVC access units (`V4L2_PIX_FMT_HEVC`).
pub const HEVC: u32 = fourcc(b"HEVC");
/// VP9 frames (`V4L2_PIX_FMT_VP9`).
pub const VP9: u32 = fourcc(b"VP90");
/// AV1 OBU stream (`V4L2_PIX_FMT_AV1`).
pub const AV1: u32 = fourcc(b"AV01");
/// VP8 frames (`V4L2_PIX_FMT_VP8`).
pub const VP8: u32 = fourcc(b"VP80");
/// MPEG-2 elementary stream (`V4L2_PIX_FMT_MPEG2`).
pub const MPEG2: u32 = fourcc(b"MPG2");

/// 8-bit Y plane + interleaved CbCr, one memory plane.
pub const NV12: u32 = fourcc(b"NV12");
/// 8-bit Y + interleaved CbCr in two memory planes.
pub const NV12M: u32 = fourcc(b"NM12");
/// 8-bit planar Y, Cb, Cr in one memory plane (`V4L2_PIX_FMT_YUV420`).
pub const YUV420: u32 = fourcc(b"YU12");
/// 10-bit in the high bits of 16-bit little-endian samples, NV12 layout.
pub const P010: u32 = fourcc(b"P010");

/// Printable form of a fourcc, for logs (`"H264"`, or hex if not ASCII).
pub fn to_string(code: u32) -> String {
    let bytes = code.to_le_bytes();
    if bytes.iter().all(|b| b.is_ascii_graphic() || *b == b' ') {
        bytes.iter().map(|&b| b as char).collect()
    } else {
        format!("{code:#010x}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_values() {
        // videodev2.h: V4L2_PIX_FMT_NV12 = v4l2_fourcc('N','V','1','2') = 0x3231564e
        assert_eq!(NV12, 0x3231_564e);
        assert_eq!(to_string(H264), "H264");
        assert_eq!(to_string(0x0102_0304), "0x01020304");
    }
}
