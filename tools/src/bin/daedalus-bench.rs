//! daedalus-bench: decode a stream K times through a V4L2 decoder and K
//! times through FFmpeg in this process (same codec, thread count and output
//! format), and report frames per second, per-frame latency (bitstream queued
//! -> frame dequeued, p50/p99), CPU time per frame of this client and of the
//! daemon, and the daemon's peak RSS.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{Context, Result};
use clap::Parser;
use serde::Serialize;

use daedalus_tools::cli::MemoryArg;
use daedalus_tools::decoder::{
    BoxError, CaptureMemory, DecodeConfig, DecodedFrame, Decoder, FrameSink,
};
use daedalus_tools::device::{self, DAEDALUS_DRIVER};
use daedalus_tools::frame::RawFormat;
use daedalus_tools::plot;
use daedalus_tools::procstat::{self, DAEMON_COMM};
use daedalus_tools::stats::SideSummary;
use daedalus_tools::stream::{self, Codec};

/// Benchmark a V4L2 stateful decoder against FFmpeg in the same process.
#[derive(Debug, Parser)]
#[command(version)]
struct Args {
    /// Input bitstream (.ivf, .h264, .hevc, .m2v, .fwht).
    input: PathBuf,
    #[arg(short, long, value_name = "DEV")]
    device: Option<PathBuf>,
    #[arg(long, default_value = DAEDALUS_DRIVER)]
    driver: String,
    /// Codec of the input (h264, hevc, vp8, vp9, av1, fwht); default from the file.
    #[arg(short, long)]
    codec: Option<String>,
    /// Decode the stream this many times on each side.
    #[arg(short = 'k', long, default_value_t = 5)]
    runs: u32,
    /// FFmpeg frame threads (0 = one per CPU); default: the daemon's
    /// [decoder] threads from --daemon-config, so both sides match.
    #[arg(long)]
    threads: Option<usize>,
    #[arg(
        long,
        default_value = "/etc/daedalus/daedalus-v4l2d.toml",
        value_name = "PATH"
    )]
    daemon_config: PathBuf,
    /// Output format on both sides; default: the device's choice (FFmpeg
    /// side: the same, or NV12/P010 by bit depth without a device).
    #[arg(short, long, value_enum)]
    format: Option<RawFormat>,
    #[arg(long, value_enum, default_value_t = MemoryArg::Mmap)]
    capture_memory: MemoryArg,
    /// OUTPUT ring depth on the device side. Device latency includes the
    /// time a unit waits in this ring behind the ones queued before it.
    #[arg(long, default_value_t = 8, value_name = "N")]
    output_buffers: u32,
    /// PID of the daemon; default: the process named daedalus-v4l2d.
    #[arg(long)]
    daemon_pid: Option<u32>,
    /// Only the device side.
    #[arg(long, conflicts_with = "no_device")]
    no_ffmpeg: bool,
    /// Only the FFmpeg side (a baseline on machines without the decoder).
    #[arg(long)]
    no_device: bool,
    /// Print the results as JSON on stdout (progress stays on stderr).
    #[arg(long)]
    json: bool,
    /// Draw fps and latency charts into this PNG.
    #[arg(long, value_name = "FILE.png")]
    plot: Option<PathBuf>,
    #[arg(long, default_value_t = 30.0, value_name = "SECONDS")]
    timeout: f64,
}

#[derive(Debug, Serialize)]
struct Results {
    input: String,
    codec: String,
    access_units: usize,
    runs: u32,
    threads: usize,
    format: String,
    device_path: String,
    driver: String,
    device: SideSummary,
    ffmpeg: Option<SideSummary>,
    /// device fps / FFmpeg fps.
    fps_ratio: Option<f64>,
    notes: Vec<String>,
}

struct CountingSink;

impl FrameSink for CountingSink {
    fn frame(&mut self, _frame: &DecodedFrame) -> Result<(), BoxError> {
        Ok(())
    }
}

/// `threads = N` in the [decoder] section of the daemon's TOML config.
fn daemon_threads(path: &Path) -> Option<usize> {
    let text = std::fs::read_to_string(path).ok()?;
    let mut in_decoder = false;
    for line in text.lines() {
        let line = line.split('#').next().unwrap_or("").trim();
        if line.starts_with('[') {
            in_decoder = line == "[decoder]";
        } else if in_decoder {
            if let Some(value) = line.strip_prefix("threads") {
                return value.trim().strip_prefix('=')?.trim().parse().ok();
            }
        }
    }
    None
}

fn sub(a: Option<Duration>, b: Option<Duration>) -> Option<Duration> {
    Some(a?.saturating_sub(b?))
}

fn run(args: Args) -> Result<bool> {
    let codec = args
        .codec
        .as_deref()
        .map(|c| Codec::from_name(c).with_context(|| format!("unknown codec {c:?}")))
        .transpose()?;
    let stream = stream::open(&args.input, codec)?;
    let mut format = args.format;
    let threads = args
        .threads
        .or_else(|| daemon_threads(&args.daemon_config))
        .unwrap_or(0);
    let runs = args.runs.max(1);
    let mut notes = Vec::new();

    let daemon = args
        .daemon_pid
        .or_else(|| procstat::find_process(DAEMON_COMM));
    match daemon {
        None => notes.push(format!(
            "no {DAEMON_COMM} process: daemon CPU and memory not measured"
        )),
        Some(pid) => {
            if !procstat::reset_peak_rss(pid) {
                notes.push(
                    "could not reset the daemon's peak RSS: VmHWM is its lifetime peak".into(),
                );
            }
        }
    }

    // Device side.
    let mut device_side = SideSummary::new("device");
    let (mut device_path, mut driver) = (String::new(), String::new());
    let client0 = procstat::cpu_time(None);
    let daemon0 = daemon.and_then(|p| procstat::cpu_time(Some(p)));
    let device_runs = if args.no_device { 0 } else { runs };
    for k in 0..device_runs {
        let (dev, info) = match &args.device {
            Some(path) => device::open_decoder(path, stream.codec)?,
            None => device::find_decoder(&args.driver, stream.codec)?,
        };
        device_path = info.path.display().to_string();
        driver = info.driver.clone();
        let config = DecodeConfig {
            format,
            capture_memory: match args.capture_memory {
                MemoryArg::Mmap => CaptureMemory::Mmap,
                MemoryArg::Dmabuf => daedalus_tools::decoder::default_dma_heap()
                    .map_or(CaptureMemory::Udmabuf, CaptureMemory::DmaHeap),
            },
            stall_timeout: Duration::from_secs_f64(args.timeout.max(0.1)),
            output_buffers: args.output_buffers,
            ..Default::default()
        };
        let (report, _) = Decoder::new(dev, info, &stream, config, CountingSink)?.run()?;
        eprintln!(
            "daedalus-bench: device run {}/{runs}: {} frames in {:.3} s ({:.1} fps)",
            k + 1,
            report.frames,
            report.elapsed.as_secs_f64(),
            report.frames as f64 / report.elapsed.as_secs_f64().max(1e-9)
        );
        // The FFmpeg side writes what the device chose.
        format = format.or(report.layouts.first().map(|l| l.format));
        device_side.add_run(
            report.frames,
            report.error_frames,
            report.elapsed,
            &report.latencies,
        );
    }
    let client1 = procstat::cpu_time(None);
    let daemon1 = daemon.and_then(|p| procstat::cpu_time(Some(p)));
    device_side.finish(sub(client1, client0), sub(daemon1, daemon0));
    device_side.daemon_peak_rss_kib = daemon.and_then(|p| procstat::peak_rss_kib(Some(p)));

    // FFmpeg side.
    let ffmpeg_side = if args.no_ffmpeg {
        None
    } else {
        ffmpeg_baseline(&stream, threads, format, runs, &mut notes)
    };

    let fps_ratio = ffmpeg_side
        .as_ref()
        .filter(|_| device_runs > 0)
        .map(|f| device_side.fps / f.fps.max(1e-9));
    let ok = device_side.error_frames == 0
        && device_side.frames == stream.units.len() as u64 * u64::from(device_runs);
    if !ok {
        notes.push(format!(
            "device: {} frames ({} with ERROR) from {} access units x {runs} runs",
            device_side.frames,
            device_side.error_frames,
            stream.units.len()
        ));
    }
    let results = Results {
        input: args.input.display().to_string(),
        codec: stream.codec.to_string(),
        access_units: stream.units.len(),
        runs,
        threads,
        format: format.map_or("auto".to_string(), |f| f.to_string()),
        device_path,
        driver,
        device: device_side,
        ffmpeg: ffmpeg_side,
        fps_ratio,
        notes,
    };
    if let Some(path) = &args.plot {
        plot::draw(path, &results.device, results.ffmpeg.as_ref())
            .map_err(|e| anyhow::anyhow!("cannot write {}: {e}", path.display()))?;
    }
    if args.json {
        println!("{}", serde_json::to_string_pretty(&results)?);
    } else {
        print_table(&results);
    }
    Ok(ok)
}

#[cfg(feature = "ffmpeg")]
fn ffmpeg_baseline(
    stream: &stream::Stream,
    threads: usize,
    format: Option<RawFormat>,
    runs: u32,
    notes: &mut Vec<String>,
) -> Option<SideSummary> {
    let mut side = SideSummary::new("ffmpeg");
    let client0 = procstat::cpu_time(None);
    for k in 0..runs {
        match daedalus_tools::swdecode::decode(stream, threads, format) {
            Ok(r) => {
                eprintln!(
                    "daedalus-bench: FFmpeg run {}/{runs}: {} frames in {:.3} s ({:.1} fps)",
                    k + 1,
                    r.frames,
                    r.elapsed.as_secs_f64(),
                    r.frames as f64 / r.elapsed.as_secs_f64().max(1e-9)
                );
                side.add_run(r.frames, 0, r.elapsed, &r.latencies);
            }
            Err(e) => {
                notes.push(format!("FFmpeg baseline skipped: {e}"));
                return None;
            }
        }
    }
    side.finish(sub(procstat::cpu_time(None), client0), None);
    Some(side)
}

#[cfg(not(feature = "ffmpeg"))]
fn ffmpeg_baseline(
    _stream: &stream::Stream,
    _threads: usize,
    _format: Option<RawFormat>,
    _runs: u32,
    notes: &mut Vec<String>,
) -> Option<SideSummary> {
    notes.push("FFmpeg baseline skipped: built without the `ffmpeg` feature".into());
    None
}

fn opt(v: Option<f64>, unit: &str) -> String {
    v.map_or("n/a".to_string(), |v| format!("{v:.2}{unit}"))
}

fn print_table(r: &Results) {
    println!(
        "{} ({}, {} access units), {} runs, {} frame threads, {}, device {} ({})",
        r.input, r.codec, r.access_units, r.runs, r.threads, r.format, r.device_path, r.driver
    );
    println!(
        "{:<8} {:>9} {:>11} {:>11} {:>16} {:>16} {:>14}",
        "side", "fps", "lat p50", "lat p99", "client cpu/frm", "daemon cpu/frm", "daemon hwm"
    );
    let sides = std::iter::once(&r.device)
        .filter(|d| d.runs > 0)
        .chain(r.ffmpeg.as_ref());
    for s in sides {
        println!(
            "{:<8} {:>9.1} {:>11} {:>11} {:>16} {:>16} {:>14}",
            s.name,
            s.fps,
            opt(s.latency_p50_ms, " ms"),
            opt(s.latency_p99_ms, " ms"),
            opt(s.client_cpu_ms_per_frame, " ms"),
            opt(s.daemon_cpu_ms_per_frame, " ms"),
            s.daemon_peak_rss_kib.map_or("n/a".to_string(), |k| format!(
                "{:.1} MiB",
                k as f64 / 1024.0
            )),
        );
    }
    if let Some(ratio) = r.fps_ratio {
        println!("device/FFmpeg fps ratio: {ratio:.3}");
    }
    for n in &r.notes {
        println!("note: {n}");
    }
}

fn main() -> ExitCode {
    let args = Args::parse();
    match run(args) {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::FAILURE,
        Err(e) => {
            eprintln!("daedalus-bench: error: {e:#}");
            ExitCode::FAILURE
        }
    }
}
