//! Stream formats: what FFmpeg decoded, what the kernel is told (FORMAT) and
//! whether a CAPTURE buffer can hold it (and where each plane goes).

use daedalus_proto::{fourcc, Capture, Format, MAX_PLANES};
use ffmpeg_next::color;
use ffmpeg_next::format::Pixel;

/// Sample depth of the decoded frames.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Depth {
    /// yuv420p (and yuvj420p): NV12, NV12M or YUV420 buffers.
    Eight,
    /// yuv420p10le: P010 buffers.
    Ten,
}

impl Depth {
    /// The depth of an FFmpeg pixel format this daemon can output, if any.
    pub fn of(pixel: Pixel) -> Option<Depth> {
        match pixel {
            Pixel::YUV420P | Pixel::YUVJ420P => Some(Depth::Eight),
            Pixel::YUV420P10LE => Some(Depth::Ten),
            _ => None,
        }
    }

    pub fn bits(self) -> u32 {
        match self {
            Depth::Eight => 8,
            Depth::Ten => 10,
        }
    }

    fn bytes(self) -> u64 {
        match self {
            Depth::Eight => 1,
            Depth::Ten => 2,
        }
    }
}

/// V4L2 colorimetry (enum v4l2_colorspace, _xfer_func, _ycbcr_encoding,
/// _quantization values).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Colorimetry {
    pub colorspace: u32,
    pub xfer_func: u32,
    pub ycbcr_enc: u32,
    pub quantization: u32,
}

// videodev2.h values.
const V4L2_COLORSPACE_SMPTE170M: u32 = 1;
const V4L2_COLORSPACE_SMPTE240M: u32 = 2;
const V4L2_COLORSPACE_REC709: u32 = 3;
const V4L2_COLORSPACE_470_SYSTEM_M: u32 = 5;
const V4L2_COLORSPACE_470_SYSTEM_BG: u32 = 6;
const V4L2_COLORSPACE_BT2020: u32 = 10;
const V4L2_COLORSPACE_DCI_P3: u32 = 12;
const V4L2_XFER_FUNC_709: u32 = 1;
const V4L2_XFER_FUNC_SRGB: u32 = 2;
const V4L2_XFER_FUNC_SMPTE240M: u32 = 4;
const V4L2_XFER_FUNC_NONE: u32 = 5;
const V4L2_XFER_FUNC_DCI_P3: u32 = 6;
const V4L2_XFER_FUNC_SMPTE2084: u32 = 7;
const V4L2_YCBCR_ENC_601: u32 = 1;
const V4L2_YCBCR_ENC_709: u32 = 2;
const V4L2_YCBCR_ENC_BT2020: u32 = 6;
const V4L2_YCBCR_ENC_BT2020_CONST_LUM: u32 = 7;
const V4L2_YCBCR_ENC_SMPTE240M: u32 = 8;
const V4L2_QUANTIZATION_FULL_RANGE: u32 = 1;
const V4L2_QUANTIZATION_LIM_RANGE: u32 = 2;

impl Colorimetry {
    /// Maps FFmpeg's frame properties; anything V4L2 has no value for (or the
    /// stream leaves unspecified) becomes 0, the V4L2 "default".
    pub fn from_ffmpeg(
        primaries: color::Primaries,
        transfer: color::TransferCharacteristic,
        space: color::Space,
        range: color::Range,
    ) -> Colorimetry {
        use color::{Primaries as P, Range as R, Space as S, TransferCharacteristic as T};
        let colorspace = match primaries {
            P::BT709 => V4L2_COLORSPACE_REC709,
            P::BT470M => V4L2_COLORSPACE_470_SYSTEM_M,
            P::BT470BG => V4L2_COLORSPACE_470_SYSTEM_BG,
            P::SMPTE170M => V4L2_COLORSPACE_SMPTE170M,
            P::SMPTE240M => V4L2_COLORSPACE_SMPTE240M,
            P::BT2020 => V4L2_COLORSPACE_BT2020,
            P::SMPTE431 | P::SMPTE432 => V4L2_COLORSPACE_DCI_P3,
            _ => 0,
        };
        let xfer_func = match transfer {
            T::BT709 | T::SMPTE170M | T::BT2020_10 | T::BT2020_12 => V4L2_XFER_FUNC_709,
            T::IEC61966_2_1 => V4L2_XFER_FUNC_SRGB,
            T::SMPTE240M => V4L2_XFER_FUNC_SMPTE240M,
            T::Linear => V4L2_XFER_FUNC_NONE,
            T::SMPTE428 => V4L2_XFER_FUNC_DCI_P3,
            T::SMPTE2084 => V4L2_XFER_FUNC_SMPTE2084,
            _ => 0,
        };
        let ycbcr_enc = match space {
            S::BT709 => V4L2_YCBCR_ENC_709,
            S::BT470BG | S::SMPTE170M | S::FCC => V4L2_YCBCR_ENC_601,
            S::SMPTE240M => V4L2_YCBCR_ENC_SMPTE240M,
            S::BT2020NCL => V4L2_YCBCR_ENC_BT2020,
            S::BT2020CL => V4L2_YCBCR_ENC_BT2020_CONST_LUM,
            _ => 0,
        };
        let quantization = match range {
            R::MPEG => V4L2_QUANTIZATION_LIM_RANGE,
            R::JPEG => V4L2_QUANTIZATION_FULL_RANGE,
            _ => 0,
        };
        Colorimetry {
            colorspace,
            xfer_func,
            ycbcr_enc,
            quantization,
        }
    }
}

/// The format of decoded frames.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StreamFormat {
    pub width: u32,
    pub height: u32,
    pub depth: Depth,
    pub colorimetry: Colorimetry,
}

impl StreamFormat {
    /// Whether CAPTURE buffers must be renegotiated to go from `self` to
    /// `other` (size or depth differ; a colorimetry change alone does not).
    pub fn same_geometry(&self, other: &StreamFormat) -> bool {
        self.width == other.width && self.height == other.height && self.depth == other.depth
    }

    /// Bytes of picture data in a frame (what the copy path writes).
    pub fn picture_bytes(&self) -> u64 {
        let (w, h) = (u64::from(self.width), u64::from(self.height));
        (w * h + 2 * w.div_ceil(2) * h.div_ceil(2)) * self.depth.bytes()
    }

    /// The FORMAT message body. FFmpeg already crops, so the visible
    /// rectangle is the whole frame.
    pub fn message(self, output_epoch: u32, min_capture_buffers: u32) -> Format {
        Format {
            epoch: output_epoch,
            pixelformat: match self.depth {
                Depth::Eight => fourcc::NV12,
                Depth::Ten => fourcc::P010,
            },
            width: self.width,
            height: self.height,
            visible_left: 0,
            visible_top: 0,
            visible_width: self.width,
            visible_height: self.height,
            bit_depth: self.depth.bits(),
            colorspace: self.colorimetry.colorspace,
            xfer_func: self.colorimetry.xfer_func,
            ycbcr_enc: self.colorimetry.ycbcr_enc,
            quantization: self.colorimetry.quantization,
            min_capture_buffers,
        }
    }
}

/// Where a component plane goes: memory plane, byte offset, stride.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PlanePos {
    pub plane: usize,
    pub offset: usize,
    pub stride: usize,
}

/// How chroma is stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Chroma {
    /// Interleaved CbCr (NV12, NV12M, P010).
    Interleaved(PlanePos),
    /// Separate Cb and Cr planes (YUV420).
    Planar(PlanePos, PlanePos),
}

/// A frame's placement in one CAPTURE buffer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FrameLayout {
    pub depth: Depth,
    pub luma: PlanePos,
    pub chroma: Chroma,
    pub num_planes: u32,
    /// Bytes used per memory plane (the full image of the buffer's format).
    pub bytesused: [u32; MAX_PLANES],
}

fn to_usize(v: u64, what: &str) -> Result<usize, String> {
    usize::try_from(v).map_err(|_| format!("{what} overflows"))
}

/// Places a frame of `fmt` in `cap`, or says why it does not fit.
pub fn layout(cap: &Capture, fmt: &StreamFormat) -> Result<FrameLayout, String> {
    let (w, h) = (u64::from(fmt.width), u64::from(fmt.height));
    let cw = w.div_ceil(2);
    let sample = fmt.depth.bytes();
    let (buf_h, buf_h_even) = (
        u64::from(cap.height),
        u64::from(cap.height).next_multiple_of(2),
    );
    let bpl = cap.bytesperline.map(u64::from);
    let holds: &[u32] = match fmt.depth {
        Depth::Eight => &[fourcc::NV12, fourcc::NV12M, fourcc::YUV420],
        Depth::Ten => &[fourcc::P010],
    };
    if !holds.contains(&cap.pixelformat) {
        return Err(format!(
            "pixel format {} cannot hold {}-bit frames",
            fourcc::to_string(cap.pixelformat),
            fmt.depth.bits()
        ));
    }
    if u64::from(cap.width) < w || buf_h < h {
        return Err(format!(
            "buffer {}x{} smaller than frame {w}x{h}",
            cap.width, cap.height
        ));
    }
    if bpl[0] < w * sample {
        return Err(format!(
            "bytesperline {} < {} bytes of luma",
            bpl[0],
            w * sample
        ));
    }
    let single = cap.pixelformat != fourcc::NV12M;
    let expected_planes = if single { 1 } else { 2 };
    if cap.num_planes != expected_planes {
        return Err(format!(
            "{} memory planes, expected {expected_planes}",
            cap.num_planes
        ));
    }
    let luma_size = bpl[0] * buf_h;
    let luma = PlanePos {
        plane: 0,
        offset: 0,
        stride: to_usize(bpl[0], "stride")?,
    };
    let (chroma, used): (Chroma, [u64; MAX_PLANES]) = if cap.pixelformat == fourcc::NV12M {
        if bpl[1] < cw * 2 {
            return Err(format!("CbCr bytesperline {} < {}", bpl[1], cw * 2));
        }
        let pos = PlanePos {
            plane: 1,
            offset: 0,
            stride: to_usize(bpl[1], "stride")?,
        };
        (
            Chroma::Interleaved(pos),
            [luma_size, bpl[1] * (buf_h_even / 2), 0],
        )
    } else if cap.pixelformat == fourcc::YUV420 {
        let cstride = bpl[0] / 2;
        if cstride < cw {
            return Err(format!("chroma bytesperline {cstride} < {cw}"));
        }
        let csize = cstride * (buf_h_even / 2);
        let cb = PlanePos {
            plane: 0,
            offset: to_usize(luma_size, "offset")?,
            stride: to_usize(cstride, "stride")?,
        };
        let cr = PlanePos {
            offset: to_usize(luma_size + csize, "offset")?,
            ..cb
        };
        (Chroma::Planar(cb, cr), [luma_size + 2 * csize, 0, 0])
    } else {
        // NV12, P010: CbCr at bytesperline[0] * height, same stride.
        let pos = PlanePos {
            plane: 0,
            offset: to_usize(luma_size, "offset")?,
            stride: luma.stride,
        };
        (
            Chroma::Interleaved(pos),
            [luma_size + bpl[0] * (buf_h_even / 2), 0, 0],
        )
    };
    let mut bytesused = [0u32; MAX_PLANES];
    for i in 0..expected_planes as usize {
        if used[i] > u64::from(cap.length[i]) {
            return Err(format!(
                "plane {i} needs {} bytes, has {}",
                used[i], cap.length[i]
            ));
        }
        bytesused[i] = used[i] as u32;
    }
    Ok(FrameLayout {
        depth: fmt.depth,
        luma,
        chroma,
        num_planes: expected_planes,
        bytesused,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cap(pixelformat: u32, w: u32, h: u32, planes: u32, bpl: [u32; 3], len: [u32; 3]) -> Capture {
        Capture {
            index: 0,
            generation: 1,
            epoch: 1,
            pixelformat,
            width: w,
            height: h,
            num_planes: planes,
            mem_seq: 1,
            bytesperline: bpl,
            length: len,
        }
    }

    fn fmt(w: u32, h: u32, depth: Depth) -> StreamFormat {
        StreamFormat {
            width: w,
            height: h,
            depth,
            colorimetry: Colorimetry::default(),
        }
    }

    #[test]
    fn nv12_layout_follows_the_header() {
        let l = layout(
            &cap(
                fourcc::NV12,
                1920,
                1088,
                1,
                [1920, 0, 0],
                [1920 * 1088 * 3 / 2, 0, 0],
            ),
            &fmt(1920, 1080, Depth::Eight),
        )
        .unwrap();
        assert_eq!(
            l.chroma,
            Chroma::Interleaved(PlanePos {
                plane: 0,
                offset: 1920 * 1088,
                stride: 1920
            })
        );
        assert_eq!(l.bytesused[0], 1920 * 1088 * 3 / 2);
    }

    #[test]
    fn yuv420_and_nv12m_and_p010() {
        let l = layout(
            &cap(
                fourcc::YUV420,
                322,
                241,
                1,
                [352, 0, 0],
                [352 * 241 + 2 * 176 * 121, 0, 0],
            ),
            &fmt(321, 241, Depth::Eight),
        )
        .unwrap();
        let Chroma::Planar(cb, cr) = l.chroma else {
            panic!("planar expected")
        };
        assert_eq!(
            (cb.offset, cb.stride, cr.offset),
            (352 * 241, 176, 352 * 241 + 176 * 121)
        );
        let l = layout(
            &cap(
                fourcc::NV12M,
                320,
                240,
                2,
                [384, 320, 0],
                [384 * 240, 320 * 120, 0],
            ),
            &fmt(320, 240, Depth::Eight),
        )
        .unwrap();
        assert_eq!(l.bytesused, [384 * 240, 320 * 120, 0]);
        let l = layout(
            &cap(fourcc::P010, 64, 64, 1, [128, 0, 0], [128 * 96, 0, 0]),
            &fmt(64, 64, Depth::Ten),
        )
        .unwrap();
        assert_eq!(l.bytesused[0], 128 * 96);
    }

    #[test]
    fn misfits_are_reported() {
        let f8 = fmt(320, 240, Depth::Eight);
        assert!(layout(
            &cap(fourcc::P010, 320, 240, 1, [640, 0, 0], [640 * 360, 0, 0]),
            &f8
        )
        .is_err());
        assert!(layout(
            &cap(fourcc::NV12, 176, 144, 1, [176, 0, 0], [176 * 216, 0, 0]),
            &f8
        )
        .is_err());
        assert!(layout(
            &cap(fourcc::NV12, 320, 240, 1, [320, 0, 0], [1000, 0, 0]),
            &f8
        )
        .is_err());
        assert!(layout(
            &cap(fourcc::NV12, 320, 240, 1, [300, 0, 0], [320 * 360, 0, 0]),
            &f8
        )
        .is_err());
        assert!(layout(
            &cap(
                fourcc::NV12M,
                320,
                240,
                1,
                [320, 320, 0],
                [320 * 240, 320 * 120, 0]
            ),
            &f8
        )
        .is_err());
        assert!(layout(
            &cap(fourcc::NV12, 320, 240, 1, [320, 0, 0], [320 * 360, 0, 0]),
            &fmt(320, 240, Depth::Ten)
        )
        .is_err());
    }
}
