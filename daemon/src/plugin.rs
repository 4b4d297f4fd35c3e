//! Loading a daedalus-fourier compute plugin (`fourier-cpu/include/daedalus_fourier.h`).
//!
//! The plugin is trusted only after the ABI version check and, when
//! configured, a bit-exact self-test against the CPU path on odd sizes and
//! strides (the whole destination, padding included, must match). Any problem
//! is returned as an error; the caller logs it and keeps the CPU path. All
//! `unsafe` FFI of the plugin is in this file.

use crate::convert::{ConvertError, Converter, Cpu};
use daedalus_fourier_cpu::kernels::{pattern, Dst, Src};
use daedalus_fourier_cpu::{Api, ABI_VERSION};
use std::ffi::CStr;
use std::path::{Path, PathBuf};
use thiserror::Error;

const ENTRY: &[u8] = b"daedalus_fourier_get_api\0";

#[derive(Debug, Error)]
pub enum PluginError {
    #[error("cannot load {path}: {source}")]
    Load {
        path: PathBuf,
        source: libloading::Error,
    },
    #[error("{path}: entry point daedalus_fourier_get_api returned NULL")]
    NullApi { path: PathBuf },
    #[error("{path}: ABI version {found}, this daemon speaks {ABI_VERSION}")]
    Abi { path: PathBuf, found: u32 },
    #[error("{path}: function table of {found} bytes, need {need}")]
    TableSize {
        path: PathBuf,
        found: u32,
        need: usize,
    },
    #[error("{path}: function {name} missing")]
    MissingFunction { path: PathBuf, name: &'static str },
    #[error("{path}: self-test of {name} at {width}x{height}: {detail}")]
    SelfTest {
        path: PathBuf,
        name: &'static str,
        width: usize,
        height: usize,
        detail: String,
    },
}

/// A loaded, ABI-checked plugin.
pub struct Plugin {
    api: *const Api,
    name: String,
    // Keeps the code `api` points into loaded; dropped last.
    _library: libloading::Library,
}

// SAFETY: the header requires the functions to be callable from several
// threads at once, and the table is immutable static data of the library,
// which stays loaded as long as this value.
unsafe impl Send for Plugin {}
// SAFETY: as above; `&Plugin` only calls the thread-safe functions.
unsafe impl Sync for Plugin {}

type TwoPlaneFn = daedalus_fourier_cpu::TwoPlaneFn;
type OnePlaneFn = daedalus_fourier_cpu::OnePlaneFn;

fn fits(len: usize, stride: usize, row_bytes: usize, height: usize) -> bool {
    if height == 0 || row_bytes == 0 {
        return true;
    }
    if height > 1 && stride < row_bytes {
        return false;
    }
    (height - 1)
        .checked_mul(stride)
        .and_then(|v| v.checked_add(row_bytes))
        .is_some_and(|n| n <= len)
}

fn bad_layout(what: &'static str) -> ConvertError {
    ConvertError::Layout(daedalus_fourier_cpu::kernels::LayoutError {
        what,
        needed: 0,
        len: 0,
        stride: 0,
        row_bytes: 0,
    })
}

impl Plugin {
    /// Loads and checks the ABI of the plugin at `path`.
    pub fn load(path: &Path) -> Result<Plugin, PluginError> {
        // SAFETY: loading runs the library's initialisers; the path comes from
        // the administrator's configuration, which is trusted like the daemon
        // binary itself.
        let library =
            unsafe { libloading::Library::new(path) }.map_err(|source| PluginError::Load {
                path: path.to_owned(),
                source,
            })?;
        // SAFETY: the symbol has the signature the header declares:
        // `const struct daedalus_fourier_api *daedalus_fourier_get_api(void)`.
        let api = unsafe {
            let get: libloading::Symbol<'_, unsafe extern "C" fn() -> *const Api> =
                library.get(ENTRY).map_err(|source| PluginError::Load {
                    path: path.to_owned(),
                    source,
                })?;
            get()
        };
        if api.is_null() {
            return Err(PluginError::NullApi {
                path: path.to_owned(),
            });
        }
        // SAFETY: non-null pointer to the plugin's static table; only the first
        // two u32 fields are read before their values are checked.
        let (abi, size) = unsafe { ((*api).abi_version, (*api).struct_size) };
        if abi != ABI_VERSION {
            return Err(PluginError::Abi {
                path: path.to_owned(),
                found: abi,
            });
        }
        let need = std::mem::size_of::<Api>();
        if (size as usize) < need {
            return Err(PluginError::TableSize {
                path: path.to_owned(),
                found: size,
                need,
            });
        }
        // SAFETY: ABI version and size checked: `api` points to a full table
        // that lives as long as `library`.
        let table = unsafe { &*api };
        let missing = |name| PluginError::MissingFunction {
            path: path.to_owned(),
            name,
        };
        table
            .nv12_interleave
            .ok_or_else(|| missing("nv12_interleave"))?;
        table.p010_pack.ok_or_else(|| missing("p010_pack"))?;
        table
            .p010_interleave
            .ok_or_else(|| missing("p010_interleave"))?;
        table
            .depth_10_to_8
            .ok_or_else(|| missing("depth_10_to_8"))?;
        let name = if table.name.is_null() {
            "unnamed".to_string()
        } else {
            // SAFETY: the header requires a static NUL-terminated string.
            unsafe { CStr::from_ptr(table.name) }
                .to_string_lossy()
                .into_owned()
        };
        Ok(Plugin {
            api,
            name,
            _library: library,
        })
    }

    fn table(&self) -> &Api {
        // SAFETY: checked in `load`; valid while `_library` is loaded.
        unsafe { &*self.api }
    }

    #[allow(clippy::too_many_arguments)]
    fn call_two(
        &self,
        f: Option<TwoPlaneFn>,
        sample: usize,
        u: Src<'_>,
        v: Src<'_>,
        dst: Dst<'_>,
        w: usize,
        h: usize,
    ) -> Result<(), ConvertError> {
        let f = f.ok_or(ConvertError::Plugin(-38))?;
        let row = w.checked_mul(sample).ok_or(bad_layout("width"))?;
        if !fits(u.data.len(), u.stride, row, h) || !fits(v.data.len(), v.stride, row, h) {
            return Err(bad_layout("source plane"));
        }
        if !fits(dst.data.len(), dst.stride, row * 2, h) {
            return Err(bad_layout("destination plane"));
        }
        let (wu, hu) = (
            u32::try_from(w).map_err(|_| bad_layout("width"))?,
            u32::try_from(h).map_err(|_| bad_layout("height"))?,
        );
        // SAFETY: every plane holds (h-1)*stride + row bytes (checked above),
        // which is all the header lets the function touch; dst is exclusive.
        let r = unsafe {
            f(
                u.data.as_ptr(),
                u.stride,
                v.data.as_ptr(),
                v.stride,
                dst.data.as_mut_ptr(),
                dst.stride,
                wu,
                hu,
            )
        };
        if r == 0 {
            Ok(())
        } else {
            Err(ConvertError::Plugin(r))
        }
    }

    #[allow(clippy::too_many_arguments)]
    fn call_one(
        &self,
        f: Option<OnePlaneFn>,
        ssample: usize,
        dsample: usize,
        src: Src<'_>,
        dst: Dst<'_>,
        w: usize,
        h: usize,
    ) -> Result<(), ConvertError> {
        let f = f.ok_or(ConvertError::Plugin(-38))?;
        let srow = w.checked_mul(ssample).ok_or(bad_layout("width"))?;
        let drow = w.checked_mul(dsample).ok_or(bad_layout("width"))?;
        if !fits(src.data.len(), src.stride, srow, h) {
            return Err(bad_layout("source plane"));
        }
        if !fits(dst.data.len(), dst.stride, drow, h) {
            return Err(bad_layout("destination plane"));
        }
        let (wu, hu) = (
            u32::try_from(w).map_err(|_| bad_layout("width"))?,
            u32::try_from(h).map_err(|_| bad_layout("height"))?,
        );
        // SAFETY: as in call_two.
        let r = unsafe {
            f(
                src.data.as_ptr(),
                src.stride,
                dst.data.as_mut_ptr(),
                dst.stride,
                wu,
                hu,
            )
        };
        if r == 0 {
            Ok(())
        } else {
            Err(ConvertError::Plugin(r))
        }
    }

    /// Runs every function on odd sizes and strides and compares the whole
    /// destination with the CPU path.
    pub fn self_test(&self, path: &Path) -> Result<(), PluginError> {
        let cpu = Cpu::default();
        for &(w, h) in &[
            (1usize, 1usize),
            (17, 3),
            (33, 5),
            (64, 2),
            (131, 7),
            (962, 3),
        ] {
            let fail = |name, detail: String| PluginError::SelfTest {
                path: path.to_owned(),
                name,
                width: w,
                height: h,
                detail,
            };
            type Case<'a> = (
                &'static str,
                usize,
                usize,
                &'a dyn Fn(&dyn Converter, Src<'_>, Src<'_>, Dst<'_>) -> Result<(), ConvertError>,
            );
            let cases: [Case<'_>; 4] = [
                ("nv12_interleave", 1, 2, &|c, u, v, d| {
                    c.nv12_interleave(u, v, d, w, h)
                }),
                ("p010_interleave", 2, 4, &|c, u, v, d| {
                    c.p010_interleave(u, v, d, w, h)
                }),
                ("p010_pack", 2, 2, &|c, u, _, d| c.p010_pack(u, d, w, h)),
                ("depth_10_to_8", 2, 1, &|c, u, _, d| {
                    c.depth_10_to_8(u, d, w, h)
                }),
            ];
            for (name, in_sample, out_sample, run) in cases {
                let ss = w * in_sample + 3;
                let ds = w * out_sample + 5;
                let u = pattern(ss * h, 11);
                let v = pattern(ss * h, 12);
                let mut want = pattern(ds * h, 13);
                let mut got = want.clone();
                run(
                    &cpu,
                    Src {
                        data: &u,
                        stride: ss,
                    },
                    Src {
                        data: &v,
                        stride: ss,
                    },
                    Dst {
                        data: &mut want,
                        stride: ds,
                    },
                )
                .map_err(|e| fail(name, format!("CPU path: {e}")))?;
                run(
                    self,
                    Src {
                        data: &u,
                        stride: ss,
                    },
                    Src {
                        data: &v,
                        stride: ss,
                    },
                    Dst {
                        data: &mut got,
                        stride: ds,
                    },
                )
                .map_err(|e| fail(name, e.to_string()))?;
                if let Some(i) = want.iter().zip(&got).position(|(a, b)| a != b) {
                    return Err(fail(
                        name,
                        format!(
                            "byte {i} is {:#04x}, CPU path gives {:#04x}",
                            got[i], want[i]
                        ),
                    ));
                }
            }
        }
        Ok(())
    }
}

impl Converter for Plugin {
    fn name(&self) -> String {
        format!("plugin {}", self.name)
    }
    fn nv12_interleave(
        &self,
        u: Src<'_>,
        v: Src<'_>,
        dst: Dst<'_>,
        width: usize,
        height: usize,
    ) -> Result<(), ConvertError> {
        self.call_two(self.table().nv12_interleave, 1, u, v, dst, width, height)
    }
    fn p010_pack(
        &self,
        src: Src<'_>,
        dst: Dst<'_>,
        width: usize,
        height: usize,
    ) -> Result<(), ConvertError> {
        self.call_one(self.table().p010_pack, 2, 2, src, dst, width, height)
    }
    fn p010_interleave(
        &self,
        u: Src<'_>,
        v: Src<'_>,
        dst: Dst<'_>,
        width: usize,
        height: usize,
    ) -> Result<(), ConvertError> {
        self.call_two(self.table().p010_interleave, 2, u, v, dst, width, height)
    }
    fn depth_10_to_8(
        &self,
        src: Src<'_>,
        dst: Dst<'_>,
        width: usize,
        height: usize,
    ) -> Result<(), ConvertError> {
        self.call_one(self.table().depth_10_to_8, 2, 1, src, dst, width, height)
    }
}

/// The converter to use: the plugin at `path` if it loads and passes the
/// checks, else the CPU path (the reason is logged).
pub fn select(path: &Path, self_test: bool) -> std::sync::Arc<dyn Converter> {
    let cpu = std::sync::Arc::new(Cpu::default());
    if path.as_os_str().is_empty() {
        log::info!("pixel conversion: {} (no plugin configured)", cpu.name());
        return cpu;
    }
    match load_checked(path, self_test) {
        Ok(p) => {
            log::info!("pixel conversion: {} from {}", p.name(), path.display());
            std::sync::Arc::new(p)
        }
        Err(e) => {
            log::warn!("plugin not used, falling back to {}: {e}", cpu.name());
            cpu
        }
    }
}

/// Loads, ABI-checks and (if asked) self-tests a plugin.
pub fn load_checked(path: &Path, self_test: bool) -> Result<Plugin, PluginError> {
    let p = Plugin::load(path)?;
    if self_test {
        p.self_test(path)?;
    } else {
        log::warn!(
            "plugin {}: self-test disabled by configuration",
            path.display()
        );
    }
    Ok(p)
}

#[cfg(test)]
mod tests {
    use super::*;
    use daedalus_fourier_cpu::FAULT_ENV;

    /// The reference plugin cargo built next to this test binary (the daemon
    /// depends on daedalus-fourier-cpu, whose cdylib lands in deps/).
    fn reference_plugin() -> Option<PathBuf> {
        let exe = std::env::current_exe().ok()?;
        let deps = exe.parent()?;
        [
            deps.join("libdaedalus_fourier_cpu.so"),
            deps.parent()?.join("libdaedalus_fourier_cpu.so"),
        ]
        .into_iter()
        .find(|p| p.exists())
    }

    // One test on purpose: the fault injection is an environment variable the
    // plugin reads on every get_api call, so the cases must not run in parallel.
    #[test]
    fn good_wrong_abi_mismatch_and_missing_plugins() {
        let Some(path) = reference_plugin() else {
            panic!(
                "libdaedalus_fourier_cpu.so not found next to {:?}",
                std::env::current_exe()
            );
        };
        std::env::remove_var(FAULT_ENV);
        let p = load_checked(&path, true).expect("reference plugin loads and passes the self-test");
        assert_eq!(p.name(), "plugin daedalus-fourier-cpu");
        let mut d = [0u8; 4];
        p.nv12_interleave(
            Src {
                data: &[1, 2],
                stride: 2,
            },
            Src {
                data: &[3, 4],
                stride: 2,
            },
            Dst {
                data: &mut d,
                stride: 4,
            },
            2,
            1,
        )
        .unwrap();
        assert_eq!(d, [1, 3, 2, 4]);
        // Too-short planes are refused before the plugin sees them.
        assert!(p
            .nv12_interleave(
                Src {
                    data: &[1],
                    stride: 2
                },
                Src {
                    data: &[3, 4],
                    stride: 2
                },
                Dst {
                    data: &mut d,
                    stride: 4
                },
                2,
                1
            )
            .is_err());

        std::env::set_var(FAULT_ENV, "abi");
        let e = load_checked(&path, true)
            .err()
            .expect("wrong ABI is refused");
        assert!(matches!(e, PluginError::Abi { found: 1001, .. }), "{e}");

        std::env::set_var(FAULT_ENV, "mismatch");
        let e = load_checked(&path, true)
            .err()
            .expect("self-test catches the mismatch");
        assert!(
            matches!(
                e,
                PluginError::SelfTest {
                    name: "nv12_interleave",
                    ..
                }
            ),
            "{e}"
        );
        assert!(
            load_checked(&path, false).is_ok(),
            "without self-test the faulty plugin is (knowingly) trusted"
        );
        // select() falls back to the CPU path.
        assert!(select(&path, true).name().starts_with("cpu-"));
        std::env::remove_var(FAULT_ENV);

        let e = load_checked(Path::new("/nonexistent/libnothing.so"), true)
            .err()
            .expect("missing library");
        assert!(matches!(e, PluginError::Load { .. }), "{e}");
        assert!(e.to_string().contains("/nonexistent/libnothing.so"));
        assert!(select(Path::new("/nonexistent/libnothing.so"), true)
            .name()
            .starts_with("cpu-"));
        assert!(select(&path, true).name().starts_with("plugin "));
    }
}
