//! Measures the row kernels on one 1920x1080 frame's planes and prints MB/s
//! (bytes written per second) for every implementation this CPU runs.
//!
//! `daedalus-fourier-bench [width height [iterations]]`

use daedalus_fourier_cpu::kernels::{self, pattern, Dst, Impl, Src};
use std::time::Instant;

fn main() {
    let args: Vec<usize> = std::env::args()
        .skip(1)
        .filter_map(|a| a.parse().ok())
        .collect();
    let (w, h) = (
        args.first().copied().unwrap_or(1920),
        args.get(1).copied().unwrap_or(1080),
    );
    let iters = args.get(2).copied().unwrap_or(200);
    let (cw, ch) = (w.div_ceil(2), h.div_ceil(2));
    println!("frame {w}x{h}, {iters} iterations, bytes written per second");

    let u8p = pattern(cw * ch, 1);
    let v8p = pattern(cw * ch, 2);
    let y16 = pattern(w * h * 2, 3);
    let u16p = pattern(cw * ch * 2, 4);
    let v16p = pattern(cw * ch * 2, 5);
    let mut out = vec![0u8; w * h * 2];

    for imp in Impl::available() {
        let mut run = |name: &str, bytes: usize, f: &mut dyn FnMut(&mut [u8])| {
            f(&mut out); // warm-up, faults the pages in
            let t = Instant::now();
            for _ in 0..iters {
                f(&mut out);
            }
            let secs = t.elapsed().as_secs_f64();
            println!(
                "{imp:>6} {name:<18} {:>9.1} MB/s",
                (bytes * iters) as f64 / secs / 1e6
            );
        };
        run("nv12_interleave", cw * ch * 2, &mut |o| {
            kernels::nv12_interleave(
                imp,
                Src {
                    data: &u8p,
                    stride: cw,
                },
                Src {
                    data: &v8p,
                    stride: cw,
                },
                Dst {
                    data: o,
                    stride: cw * 2,
                },
                cw,
                ch,
            )
            .expect("planes sized above")
        });
        run("p010_pack (luma)", w * h * 2, &mut |o| {
            kernels::p010_pack(
                imp,
                Src {
                    data: &y16,
                    stride: w * 2,
                },
                Dst {
                    data: o,
                    stride: w * 2,
                },
                w,
                h,
            )
            .expect("planes sized above")
        });
        run("p010_interleave", cw * ch * 4, &mut |o| {
            kernels::p010_interleave(
                imp,
                Src {
                    data: &u16p,
                    stride: cw * 2,
                },
                Src {
                    data: &v16p,
                    stride: cw * 2,
                },
                Dst {
                    data: o,
                    stride: cw * 4,
                },
                cw,
                ch,
            )
            .expect("planes sized above")
        });
        run("depth_10_to_8", w * h, &mut |o| {
            kernels::depth_10_to_8(
                imp,
                Src {
                    data: &y16,
                    stride: w * 2,
                },
                Dst { data: o, stride: w },
                w,
                h,
            )
            .expect("planes sized above")
        });
    }
}
