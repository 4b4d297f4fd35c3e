//! Decoded frame layouts (as the driver reports them) and the packed raw
//! form the tools write: only the visible rectangle, rows without stride
//! padding, planes one after the other (what `ffmpeg -f rawvideo` writes).

use thiserror::Error;

/// CAPTURE pixel formats the tools can read (also the binaries' `--format`
/// values).
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum RawFormat {
    /// Y plane then interleaved CbCr, one memory plane.
    Nv12,
    /// As NV12, with Y and CbCr in two memory planes.
    Nv12m,
    /// Planar Y, Cb, Cr (V4L2 YU12), one memory plane.
    Yuv420,
    /// As NV12 with 16-bit little-endian samples, 10 bits in the high bits.
    P010,
}

impl RawFormat {
    pub const ALL: [RawFormat; 4] = [
        RawFormat::Nv12,
        RawFormat::Nv12m,
        RawFormat::Yuv420,
        RawFormat::P010,
    ];

    pub fn fourcc(self) -> [u8; 4] {
        match self {
            RawFormat::Nv12 => *b"NV12",
            RawFormat::Nv12m => *b"NM12",
            RawFormat::Yuv420 => *b"YU12",
            RawFormat::P010 => *b"P010",
        }
    }

    pub fn from_fourcc(fourcc: [u8; 4]) -> Option<RawFormat> {
        Self::ALL.into_iter().find(|f| f.fourcc() == fourcc)
    }

    pub fn name(self) -> &'static str {
        match self {
            RawFormat::Nv12 => "nv12",
            RawFormat::Nv12m => "nv12m",
            RawFormat::Yuv420 => "yuv420",
            RawFormat::P010 => "p010",
        }
    }

    pub fn from_name(name: &str) -> Option<RawFormat> {
        Self::ALL
            .into_iter()
            .find(|f| f.name().eq_ignore_ascii_case(name))
    }

    /// The pix_fmt `ffmpeg -f rawvideo` uses for the same bytes.
    pub fn ffmpeg_pix_fmt(self) -> &'static str {
        match self {
            RawFormat::Nv12 | RawFormat::Nv12m => "nv12",
            RawFormat::Yuv420 => "yuv420p",
            RawFormat::P010 => "p010le",
        }
    }

    pub fn memory_planes(self) -> usize {
        match self {
            RawFormat::Nv12m => 2,
            _ => 1,
        }
    }

    fn bytes_per_sample(self) -> usize {
        match self {
            RawFormat::P010 => 2,
            _ => 1,
        }
    }

    pub fn component_names(self) -> &'static [&'static str] {
        match self {
            RawFormat::Yuv420 => &["Y", "Cb", "Cr"],
            _ => &["Y", "CbCr"],
        }
    }
}

impl std::fmt::Display for RawFormat {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// Visible rectangle inside the coded frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Visible {
    pub left: u32,
    pub top: u32,
    pub width: u32,
    pub height: u32,
}

/// A negotiated CAPTURE format plus its visible rectangle.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FrameLayout {
    pub format: RawFormat,
    /// Format width and height (the coded size, possibly aligned).
    pub width: u32,
    pub height: u32,
    /// Per memory plane.
    pub bytesperline: Vec<u32>,
    pub visible: Visible,
}

#[derive(Debug, Error, PartialEq, Eq)]
pub enum FrameError {
    #[error("frame layout needs memory plane {plane} but the buffer has {planes}")]
    MissingPlane { plane: usize, planes: usize },
    #[error(
        "plane {component}: row {row} ends at byte {end} of memory plane {plane}, \
         which has only {len} bytes (driver reported an inconsistent layout)"
    )]
    OutOfBounds {
        component: &'static str,
        row: usize,
        plane: usize,
        end: usize,
        len: usize,
    },
    #[error("visible rectangle {0:?} does not fit in the {1}x{2} format")]
    BadVisible(Visible, u32, u32),
}

/// Where one component plane lives and what of it is visible.
struct ComponentSource {
    name: &'static str,
    memory_plane: usize,
    offset: usize,
    stride: usize,
    first_row: usize,
    rows: usize,
    first_byte: usize,
    row_bytes: usize,
}

impl FrameLayout {
    fn check(&self) -> Result<(), FrameError> {
        let v = self.visible;
        if v.width == 0
            || v.height == 0
            || u64::from(v.left) + u64::from(v.width) > u64::from(self.width)
            || u64::from(v.top) + u64::from(v.height) > u64::from(self.height)
            || self.bytesperline.len() < self.format.memory_planes()
        {
            return Err(FrameError::BadVisible(v, self.width, self.height));
        }
        Ok(())
    }

    fn components(&self) -> Vec<ComponentSource> {
        let bps = self.format.bytes_per_sample();
        let v = self.visible;
        let (l, t, w, h) = (
            v.left as usize,
            v.top as usize,
            v.width as usize,
            v.height as usize,
        );
        let (cl, ct, cw, ch) = (l / 2, t / 2, w.div_ceil(2), h.div_ceil(2));
        let bpl0 = self.bytesperline[0] as usize;
        let height = self.height as usize;
        let luma = ComponentSource {
            name: "Y",
            memory_plane: 0,
            offset: 0,
            stride: bpl0,
            first_row: t,
            rows: h,
            first_byte: l * bps,
            row_bytes: w * bps,
        };
        let interleaved = |memory_plane, offset, stride| ComponentSource {
            name: "CbCr",
            memory_plane,
            offset,
            stride,
            first_row: ct,
            rows: ch,
            first_byte: cl * 2 * bps,
            row_bytes: cw * 2 * bps,
        };
        match self.format {
            RawFormat::Nv12 | RawFormat::P010 => vec![luma, interleaved(0, bpl0 * height, bpl0)],
            RawFormat::Nv12m => vec![luma, interleaved(1, 0, self.bytesperline[1] as usize)],
            RawFormat::Yuv420 => {
                let cstride = bpl0 / 2;
                let cb_offset = bpl0 * height;
                let cr_offset = cb_offset + cstride * height.div_ceil(2);
                let planar = |name, offset| ComponentSource {
                    name,
                    memory_plane: 0,
                    offset,
                    stride: cstride,
                    first_row: ct,
                    rows: ch,
                    first_byte: cl,
                    row_bytes: cw,
                };
                vec![luma, planar("Cb", cb_offset), planar("Cr", cr_offset)]
            }
        }
    }

    /// Component planes of the packed frame: name and size in bytes.
    pub fn packed_planes(&self) -> Vec<(&'static str, usize)> {
        self.components()
            .iter()
            .map(|c| (c.name, c.rows * c.row_bytes))
            .collect()
    }

    pub fn packed_size(&self) -> usize {
        self.packed_planes().iter().map(|(_, len)| len).sum()
    }

    /// Appends the visible part of a frame held in `planes` (one slice per
    /// memory plane) to `out`. Every access is bounds-checked: the layout
    /// comes from the driver.
    pub fn pack(&self, planes: &[&[u8]], out: &mut Vec<u8>) -> Result<(), FrameError> {
        self.check()?;
        out.reserve(self.packed_size());
        for c in self.components() {
            let plane = planes.get(c.memory_plane).ok_or(FrameError::MissingPlane {
                plane: c.memory_plane,
                planes: planes.len(),
            })?;
            for row in c.first_row..c.first_row + c.rows {
                let start = c.offset + row * c.stride + c.first_byte;
                let end = start + c.row_bytes;
                let bytes = plane.get(start..end).ok_or(FrameError::OutOfBounds {
                    component: c.name,
                    row,
                    plane: c.memory_plane,
                    end,
                    len: plane.len(),
                })?;
                out.extend_from_slice(bytes);
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn layout(format: RawFormat, w: u32, h: u32, bpl: &[u32], visible: Visible) -> FrameLayout {
        FrameLayout {
            format,
            width: w,
            height: h,
            bytesperline: bpl.to_vec(),
            visible,
        }
    }

    fn full(w: u32, h: u32) -> Visible {
        Visible {
            left: 0,
            top: 0,
            width: w,
            height: h,
        }
    }

    /// A 4x4 NV12 frame with stride 8: sample value = row * 16 + column.
    fn nv12_buffer() -> Vec<u8> {
        let mut buf = vec![0xeeu8; 8 * 4 + 8 * 2];
        for r in 0..4 {
            for c in 0..4 {
                buf[r * 8 + c] = (r * 16 + c) as u8;
            }
        }
        for r in 0..2 {
            for c in 0..4 {
                buf[32 + r * 8 + c] = (0x80 + r * 16 + c) as u8;
            }
        }
        buf
    }

    #[test]
    fn nv12_strips_stride_padding() {
        let l = layout(RawFormat::Nv12, 4, 4, &[8], full(4, 4));
        let buf = nv12_buffer();
        let mut out = Vec::new();
        l.pack(&[&buf], &mut out).unwrap();
        assert_eq!(out.len(), 24);
        assert_eq!(l.packed_planes(), [("Y", 16), ("CbCr", 8)]);
        assert_eq!(&out[..4], &[0, 1, 2, 3]);
        assert_eq!(&out[4..8], &[16, 17, 18, 19]);
        assert_eq!(&out[16..20], &[0x80, 0x81, 0x82, 0x83]);
        assert!(!out.contains(&0xee));
    }

    #[test]
    fn nv12_visible_crop() {
        // 2x2 visible at (2, 2): Y rows 2-3 columns 2-3, chroma row 1 pair 1.
        let l = layout(
            RawFormat::Nv12,
            4,
            4,
            &[8],
            Visible {
                left: 2,
                top: 2,
                width: 2,
                height: 2,
            },
        );
        let buf = nv12_buffer();
        let mut out = Vec::new();
        l.pack(&[&buf], &mut out).unwrap();
        assert_eq!(out, [34, 35, 50, 51, 0x92, 0x93]);
    }

    #[test]
    fn odd_visible_size_rounds_chroma_up() {
        let l = layout(RawFormat::Nv12, 4, 4, &[8], full(3, 3));
        assert_eq!(l.packed_planes(), [("Y", 9), ("CbCr", 8)]);
        let l = layout(RawFormat::Yuv420, 4, 4, &[4], full(3, 3));
        assert_eq!(l.packed_planes(), [("Y", 9), ("Cb", 4), ("Cr", 4)]);
    }

    #[test]
    fn nv12m_uses_second_memory_plane() {
        let l = layout(RawFormat::Nv12m, 2, 2, &[4, 4], full(2, 2));
        let y = [1, 2, 9, 9, 3, 4, 9, 9];
        let uv = [5, 6, 9, 9];
        let mut out = Vec::new();
        l.pack(&[&y, &uv], &mut out).unwrap();
        assert_eq!(out, [1, 2, 3, 4, 5, 6]);
        let err = l.pack(&[&y], &mut Vec::new()).unwrap_err();
        assert_eq!(
            err,
            FrameError::MissingPlane {
                plane: 1,
                planes: 1
            }
        );
    }

    #[test]
    fn yuv420_planes_follow_v4l2_layout() {
        // 4x2, stride 4: Y 8 bytes, Cb at 8 (stride 2, 1 row), Cr at 10.
        let l = layout(RawFormat::Yuv420, 4, 2, &[4], full(4, 2));
        let buf = [0, 1, 2, 3, 4, 5, 6, 7, 10, 11, 20, 21];
        let mut out = Vec::new();
        l.pack(&[&buf], &mut out).unwrap();
        assert_eq!(out, buf);
    }

    #[test]
    fn p010_uses_two_bytes_per_sample() {
        let l = layout(RawFormat::P010, 2, 2, &[8], full(2, 2));
        assert_eq!(l.packed_planes(), [("Y", 8), ("CbCr", 4)]);
        let mut buf = vec![0u8; 8 * 3];
        buf[..4].copy_from_slice(&[1, 2, 3, 4]);
        let mut out = Vec::new();
        l.pack(&[&buf], &mut out).unwrap();
        assert_eq!(&out[..4], &[1, 2, 3, 4]);
    }

    #[test]
    fn short_buffer_is_an_error_not_a_panic() {
        let l = layout(RawFormat::Nv12, 4, 4, &[8], full(4, 4));
        let buf = vec![0u8; 40];
        let err = l.pack(&[&buf], &mut Vec::new()).unwrap_err();
        assert!(matches!(
            err,
            FrameError::OutOfBounds {
                component: "CbCr",
                ..
            }
        ));
    }

    #[test]
    fn visible_outside_format_is_rejected() {
        let l = layout(RawFormat::Nv12, 4, 4, &[8], full(5, 4));
        assert!(matches!(
            l.pack(&[&[0u8; 64]], &mut Vec::new()),
            Err(FrameError::BadVisible(..))
        ));
    }
}
