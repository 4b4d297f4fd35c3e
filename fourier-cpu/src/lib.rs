//! CPU pixel kernels of daedalus-v4l2 and the reference `daedalus-fourier`
//! plugin built from them.
//!
//! - [`kernels`]: the safe plane API (NV12 chroma interleave, P010 pack and
//!   interleave, 10 -> 8 bit) with a scalar reference and SIMD variants
//!   (SSE2/AVX2 on x86_64 with runtime detection, NEON on aarch64).
//! - `ffi` (private): the C ABI of `include/daedalus_fourier.h`, exported from
//!   the cdylib `libdaedalus_fourier_cpu.so`.
//!
//! The daemon links this crate as its built-in CPU path and dlopens the
//! cdylib (or a GPU plugin with the same ABI) as the optional plugin.

mod ffi;
pub mod kernels;
#[cfg(target_arch = "aarch64")]
mod neon;
mod scalar;
#[cfg(target_arch = "x86_64")]
mod x86;

pub use ffi::{Api, OnePlaneFn, TwoPlaneFn, ABI_VERSION, FAULT_ENV};
