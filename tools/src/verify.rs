//! Byte-exact comparison of decoded frames with a reference raw file (for
//! instance `ffmpeg -i IN -pix_fmt nv12 -f rawvideo REF`), frame by frame as
//! they arrive, so a mismatch is reported with its frame, plane and offset.

use std::fs::File;
use std::io::{BufReader, Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};

use thiserror::Error;

use crate::frame::FrameLayout;

#[derive(Debug, Error)]
pub enum VerifyError {
    #[error("cannot read reference {path}: {cause}")]
    Io {
        path: PathBuf,
        cause: std::io::Error,
    },
    #[error(
        "frame {frame}: plane {plane} differs at offset {offset} (row {row}, byte {column}): \
         decoded 0x{got:02x}, reference 0x{want:02x}"
    )]
    Mismatch {
        frame: u64,
        plane: &'static str,
        offset: usize,
        row: usize,
        column: usize,
        got: u8,
        want: u8,
    },
    #[error(
        "frame {frame}: the reference ends {missing} bytes short of it \
         (the decoder produced more frames than the reference has)"
    )]
    ReferenceTooShort { frame: u64, missing: usize },
    #[error(
        "the reference has {extra} more bytes after the {frames} decoded frames \
         (the decoder produced fewer frames than the reference has)"
    )]
    ReferenceTooLong { frames: u64, extra: u64 },
}

pub struct Verifier {
    path: PathBuf,
    reader: BufReader<File>,
    buf: Vec<u8>,
    frames: u64,
}

impl Verifier {
    pub fn open(path: &Path) -> Result<Self, VerifyError> {
        let io = |cause| VerifyError::Io {
            path: path.to_path_buf(),
            cause,
        };
        Ok(Verifier {
            path: path.to_path_buf(),
            reader: BufReader::with_capacity(1 << 20, File::open(path).map_err(io)?),
            buf: Vec::new(),
            frames: 0,
        })
    }

    fn io(&self, cause: std::io::Error) -> VerifyError {
        VerifyError::Io {
            path: self.path.clone(),
            cause,
        }
    }

    /// Starts over at the beginning of the reference (next --loop pass).
    pub fn rewind(&mut self) -> Result<(), VerifyError> {
        self.reader
            .seek(SeekFrom::Start(0))
            .map_err(|e| self.io(e))?;
        Ok(())
    }

    /// Skips `frames` reference frames of `frame_size` bytes (after a seek).
    pub fn skip(&mut self, frames: u64, frame_size: usize) -> Result<(), VerifyError> {
        let bytes = frames * frame_size as u64;
        self.reader
            .seek_relative(bytes as i64)
            .map_err(|e| self.io(e))?;
        Ok(())
    }

    /// Compares one packed frame with the next one of the reference.
    pub fn check(&mut self, layout: &FrameLayout, packed: &[u8]) -> Result<(), VerifyError> {
        let frame = self.frames;
        self.frames += 1;
        self.buf.resize(packed.len(), 0);
        let mut filled = 0;
        while filled < packed.len() {
            match self.reader.read(&mut self.buf[filled..]) {
                Ok(0) => {
                    return Err(VerifyError::ReferenceTooShort {
                        frame,
                        missing: packed.len() - filled,
                    })
                }
                Ok(n) => filled += n,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(e) => return Err(self.io(e)),
            }
        }
        if self.buf[..] == packed[..] {
            return Ok(());
        }
        let mut plane_start = 0;
        for (index, (plane, len)) in layout.packed_planes().into_iter().enumerate() {
            let range = plane_start..plane_start + len;
            if let Some(offset) = self.buf[range.clone()]
                .iter()
                .zip(&packed[range])
                .position(|(a, b)| a != b)
            {
                let row_bytes = plane_row_bytes(layout, index);
                return Err(VerifyError::Mismatch {
                    frame,
                    plane,
                    offset,
                    row: offset / row_bytes.max(1),
                    column: offset % row_bytes.max(1),
                    got: packed[plane_start + offset],
                    want: self.buf[plane_start + offset],
                });
            }
            plane_start += len;
        }
        unreachable!("frames differ but no plane does");
    }

    /// Checks that the reference has no frame left over.
    pub fn finish(&mut self) -> Result<(), VerifyError> {
        let mut rest = Vec::new();
        let extra = self.reader.read_to_end(&mut rest).map_err(|e| self.io(e))? as u64;
        if extra > 0 {
            return Err(VerifyError::ReferenceTooLong {
                frames: self.frames,
                extra,
            });
        }
        Ok(())
    }
}

fn plane_row_bytes(layout: &FrameLayout, component: usize) -> usize {
    let planes = layout.packed_planes();
    let rows = if component == 0 {
        layout.visible.height as usize
    } else {
        (layout.visible.height as usize).div_ceil(2)
    };
    planes[component].1 / rows.max(1)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::frame::{RawFormat, Visible};
    use std::io::Write;

    fn layout() -> FrameLayout {
        FrameLayout {
            format: RawFormat::Nv12,
            width: 4,
            height: 2,
            bytesperline: vec![4],
            visible: Visible {
                left: 0,
                top: 0,
                width: 4,
                height: 2,
            },
        }
    }

    fn reference(frames: &[[u8; 12]]) -> tempfile_like::TempPath {
        let path = tempfile_like::TempPath::new();
        let mut f = File::create(&path.0).unwrap();
        for fr in frames {
            f.write_all(fr).unwrap();
        }
        path
    }

    /// Minimal temp file helper (no extra dependency for two tests).
    mod tempfile_like {
        pub struct TempPath(pub std::path::PathBuf);
        impl TempPath {
            pub fn new() -> Self {
                use std::sync::atomic::{AtomicU32, Ordering};
                static N: AtomicU32 = AtomicU32::new(0);
                let n = N.fetch_add(1, Ordering::Relaxed);
                TempPath(
                    std::env::temp_dir()
                        .join(format!("daedalus-verify-test-{}-{n}", std::process::id())),
                )
            }
        }
        impl Drop for TempPath {
            fn drop(&mut self) {
                let _ = std::fs::remove_file(&self.0);
            }
        }
    }

    const A: [u8; 12] = [1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12];

    #[test]
    fn reports_frame_plane_and_offset() {
        let r = reference(&[A, A]);
        let mut v = Verifier::open(&r.0).unwrap();
        v.check(&layout(), &A).unwrap();
        let mut bad = A;
        bad[10] = 0;
        let err = v.check(&layout(), &bad).unwrap_err();
        match err {
            VerifyError::Mismatch {
                frame,
                plane,
                offset,
                row,
                column,
                got,
                want,
            } => {
                assert_eq!((frame, plane, offset, row, column), (1, "CbCr", 2, 0, 2));
                assert_eq!((got, want), (0, 11));
            }
            other => panic!("{other}"),
        }
    }

    #[test]
    fn too_many_and_too_few_frames() {
        let r = reference(&[A]);
        let mut v = Verifier::open(&r.0).unwrap();
        v.check(&layout(), &A).unwrap();
        assert!(matches!(
            v.check(&layout(), &A),
            Err(VerifyError::ReferenceTooShort { frame: 1, .. })
        ));
        let r = reference(&[A, A]);
        let mut v = Verifier::open(&r.0).unwrap();
        v.check(&layout(), &A).unwrap();
        assert!(matches!(
            v.finish(),
            Err(VerifyError::ReferenceTooLong {
                frames: 1,
                extra: 12
            })
        ));
    }

    #[test]
    fn rewind_and_skip() {
        let mut b = A;
        b[0] = 99;
        let r = reference(&[A, b]);
        let mut v = Verifier::open(&r.0).unwrap();
        v.skip(1, 12).unwrap();
        v.check(&layout(), &b).unwrap();
        v.rewind().unwrap();
        v.check(&layout(), &A).unwrap();
    }
}
