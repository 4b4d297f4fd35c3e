//! The pixel conversion path the frame writer uses: the built-in CPU kernels
//! or a verified daedalus-fourier plugin (see `plugin`).

use daedalus_fourier_cpu::kernels::{self, Dst, Impl, LayoutError, Src};
use thiserror::Error;

#[derive(Debug, Error)]
pub enum ConvertError {
    #[error("plane layout: {0}")]
    Layout(#[from] LayoutError),
    #[error("plugin returned {0}")]
    Plugin(i32),
}

/// Frame conversions. Widths and heights are in samples of the plane.
pub trait Converter: Send + Sync {
    fn name(&self) -> String;
    fn nv12_interleave(
        &self,
        u: Src<'_>,
        v: Src<'_>,
        dst: Dst<'_>,
        width: usize,
        height: usize,
    ) -> Result<(), ConvertError>;
    fn p010_pack(
        &self,
        src: Src<'_>,
        dst: Dst<'_>,
        width: usize,
        height: usize,
    ) -> Result<(), ConvertError>;
    fn p010_interleave(
        &self,
        u: Src<'_>,
        v: Src<'_>,
        dst: Dst<'_>,
        width: usize,
        height: usize,
    ) -> Result<(), ConvertError>;
    fn depth_10_to_8(
        &self,
        src: Src<'_>,
        dst: Dst<'_>,
        width: usize,
        height: usize,
    ) -> Result<(), ConvertError>;
}

/// The built-in CPU path (fastest SIMD variant this CPU runs).
#[derive(Debug, Clone, Copy)]
pub struct Cpu {
    pub imp: Impl,
}

impl Default for Cpu {
    fn default() -> Self {
        Cpu { imp: Impl::best() }
    }
}

impl Converter for Cpu {
    fn name(&self) -> String {
        format!("cpu-{}", self.imp)
    }
    fn nv12_interleave(
        &self,
        u: Src<'_>,
        v: Src<'_>,
        dst: Dst<'_>,
        width: usize,
        height: usize,
    ) -> Result<(), ConvertError> {
        Ok(kernels::nv12_interleave(
            self.imp, u, v, dst, width, height,
        )?)
    }
    fn p010_pack(
        &self,
        src: Src<'_>,
        dst: Dst<'_>,
        width: usize,
        height: usize,
    ) -> Result<(), ConvertError> {
        Ok(kernels::p010_pack(self.imp, src, dst, width, height)?)
    }
    fn p010_interleave(
        &self,
        u: Src<'_>,
        v: Src<'_>,
        dst: Dst<'_>,
        width: usize,
        height: usize,
    ) -> Result<(), ConvertError> {
        Ok(kernels::p010_interleave(
            self.imp, u, v, dst, width, height,
        )?)
    }
    fn depth_10_to_8(
        &self,
        src: Src<'_>,
        dst: Dst<'_>,
        width: usize,
        height: usize,
    ) -> Result<(), ConvertError> {
        Ok(kernels::depth_10_to_8(self.imp, src, dst, width, height)?)
    }
}
