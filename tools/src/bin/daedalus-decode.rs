//! daedalus-decode: decode a bitstream file through a V4L2 stateful decoder
//! (the daedalus one by default), write raw frames and/or verify them
//! byte-exactly against a reference. Exit status 0 only when every frame
//! decoded without error (and matched the reference, with --verify).

use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{bail, Context, Result};
use clap::{Parser, ValueEnum};

use daedalus_tools::cli::MemoryArg;
use daedalus_tools::decoder::{
    BoxError, CaptureMemory, DecodeConfig, DecodedFrame, Decoder, FrameSink,
};
use daedalus_tools::device::{self, DAEDALUS_DRIVER};
use daedalus_tools::frame::RawFormat;
use daedalus_tools::stream::{self, Codec};
use daedalus_tools::verify::Verifier;

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum DmabufSourceArg {
    /// /dev/dma_heap/system if present, else /dev/udmabuf.
    Auto,
    Heap,
    Udmabuf,
}

/// Decode a VP8/VP9/AV1 IVF, H.264/HEVC Annex-B, MPEG-2 (.m2v) or raw FWHT file through a
/// V4L2 stateful decoder.
#[derive(Debug, Parser)]
#[command(version)]
struct Args {
    /// Input bitstream (.ivf, .h264/.264, .hevc/.h265, .m2v, .fwht).
    #[arg(required_unless_present = "list")]
    input: Option<PathBuf>,
    /// List the V4L2 video nodes (media controller first), what they are and
    /// what they decode, then exit.
    #[arg(long)]
    list: bool,
    /// Decoder node; default: the first /dev/video* whose driver is --driver.
    #[arg(short, long, value_name = "DEV")]
    device: Option<PathBuf>,
    /// Driver name to look for when no --device is given.
    #[arg(long, default_value = DAEDALUS_DRIVER)]
    driver: String,
    /// Codec of the input; default: from the extension (IVF: from its header).
    #[arg(short, long, value_enum)]
    codec: Option<Codec>,
    /// Write raw frames here ("-" for stdout): visible rectangle, no padding.
    #[arg(short, long, value_name = "FILE")]
    output: Option<PathBuf>,
    /// Compare every frame byte-exactly with this raw reference.
    #[arg(long, value_name = "REF")]
    verify: Option<PathBuf>,
    /// CAPTURE pixel format; default: the decoder's choice.
    #[arg(short, long, value_enum)]
    format: Option<RawFormat>,
    /// Seek when access unit FRAME is reached (STREAMOFF/STREAMON of OUTPUT);
    /// decoding resumes at the next keyframe, earlier frames are dropped and
    /// --verify skips the reference to that keyframe.
    #[arg(long, value_name = "FRAME")]
    seek: Option<usize>,
    /// Stop after N frames.
    #[arg(long, value_name = "N")]
    frames: Option<u64>,
    /// Feed the stream N times back to back (--verify rewinds the reference).
    #[arg(long = "loop", value_name = "N", default_value_t = 1)]
    loops: u32,
    #[arg(long, value_enum, default_value_t = MemoryArg::Mmap)]
    capture_memory: MemoryArg,
    /// OUTPUT (bitstream) buffers: V4L2 MMAP, or dma-bufs from the same
    /// source as dmabuf CAPTURE buffers.
    #[arg(long, value_enum, default_value_t = MemoryArg::Mmap)]
    output_memory: MemoryArg,
    /// With dmabuf memory: queue every buffer with another dma-buf than its
    /// index had before (twice as many allocated, used in turn), as clients
    /// importing from their own pools may; --verify then proves each frame
    /// landed in the buffer queued now (it holds zeros or an older frame).
    #[arg(long)]
    swap_dmabufs: bool,
    /// Where dmabuf CAPTURE (and OUTPUT) buffers come from.
    #[arg(long, value_enum, default_value_t = DmabufSourceArg::Auto)]
    dmabuf_source: DmabufSourceArg,
    /// The dma-heap; default: a CMA heap if there is one (contiguous memory,
    /// which dma-contig drivers need), else /dev/dma_heap/system.
    #[arg(long, value_name = "PATH")]
    dma_heap: Option<PathBuf>,
    /// OUTPUT (bitstream) ring depth.
    #[arg(long, default_value_t = 8, value_name = "N")]
    output_buffers: u32,
    /// CAPTURE buffers on top of the decoder's minimum.
    #[arg(long, default_value_t = 4, value_name = "N")]
    extra_capture_buffers: u32,
    /// Fail when the decoder does nothing for this many seconds.
    #[arg(long, default_value_t = 30.0, value_name = "SECONDS")]
    timeout: f64,
    /// No progress lines on stderr.
    #[arg(short, long)]
    quiet: bool,
}

struct Output {
    writer: Option<Box<dyn Write>>,
    verifier: Option<Verifier>,
    pass: u32,
    skip_reference_frames: Option<u64>,
    error_frames: Vec<u64>,
}

impl FrameSink for Output {
    fn frame(&mut self, frame: &DecodedFrame) -> Result<(), BoxError> {
        if frame.error {
            self.error_frames.push(frame.index);
        }
        if let Some(w) = &mut self.writer {
            w.write_all(frame.packed)?;
        }
        if let Some(v) = &mut self.verifier {
            if frame.pass != self.pass {
                self.pass = frame.pass;
                v.rewind()?;
            }
            if let Some(skip) = self.skip_reference_frames.take() {
                v.skip(skip, frame.packed.len())?;
            }
            v.check(frame.layout, frame.packed)?;
        }
        Ok(())
    }

    fn seeked(&mut self, resume_unit: usize) -> Result<(), BoxError> {
        self.skip_reference_frames = Some(resume_unit as u64);
        Ok(())
    }
}

fn buffer_memory(args: &Args, memory: MemoryArg) -> Result<CaptureMemory> {
    let heap = args
        .dma_heap
        .clone()
        .or_else(daedalus_tools::decoder::default_dma_heap);
    Ok(match (memory, args.dmabuf_source, heap) {
        (MemoryArg::Mmap, _, _) => CaptureMemory::Mmap,
        (MemoryArg::Dmabuf, DmabufSourceArg::Udmabuf, _) => CaptureMemory::Udmabuf,
        (MemoryArg::Dmabuf, DmabufSourceArg::Heap | DmabufSourceArg::Auto, Some(heap)) => {
            CaptureMemory::DmaHeap(heap)
        }
        (MemoryArg::Dmabuf, DmabufSourceArg::Auto, None) if Path::new("/dev/udmabuf").exists() => {
            CaptureMemory::Udmabuf
        }
        (MemoryArg::Dmabuf, _, None) => bail!(
            "dmabuf memory: no dma-heap in /dev/dma_heap{} \
             (kernel without CONFIG_DMABUF_HEAPS / CONFIG_UDMABUF?)",
            if args.dmabuf_source == DmabufSourceArg::Auto {
                " and no /dev/udmabuf"
            } else {
                ""
            }
        ),
    })
}

fn list() -> bool {
    let nodes = device::all_video_nodes();
    if nodes.is_empty() {
        println!("no V4L2 video nodes");
    }
    for (path, media_driver) in nodes {
        let via = media_driver.map_or(String::new(), |d| format!(" [media controller {d}]"));
        match device::open(&path).and_then(|dev| device::probe(&path, &dev)) {
            Ok(info) => println!(
                "{}: {} ({}) stateful decoder{via}: {} -> {}",
                path.display(),
                info.driver,
                info.card,
                device::fourcc_list(&info.coded_formats),
                device::fourcc_list(&info.raw_formats)
            ),
            Err(e) => println!("{}: {e}{via}", path.display()),
        }
    }
    true
}

fn run(args: Args) -> Result<bool> {
    if args.list {
        return Ok(list());
    }
    let Some(input) = args.input.clone() else {
        bail!("no input file");
    };
    let stream = stream::open(&input, args.codec)?;
    if args.seek == Some(0) {
        bail!("--seek 0 is the start of the stream; give a later access unit");
    }
    if let Some(seek) = args.seek {
        if seek >= stream.units.len() {
            bail!(
                "--seek {seek}: the stream has only {} access units",
                stream.units.len()
            );
        }
    }
    let (device, info) = match &args.device {
        Some(path) => device::open_decoder(path, stream.codec)?,
        None => device::find_decoder(&args.driver, stream.codec)?,
    };
    if !args.quiet {
        eprintln!(
            "daedalus-decode: {} ({} access units, {}) on {} ({}, {})",
            input.display(),
            stream.units.len(),
            stream.codec,
            info.path.display(),
            info.driver,
            info.card
        );
    }
    let writer: Option<Box<dyn Write>> = match &args.output {
        None => None,
        Some(p) if p.as_os_str() == "-" => Some(Box::new(BufWriter::new(std::io::stdout().lock()))),
        Some(p) => Some(Box::new(BufWriter::with_capacity(
            1 << 20,
            File::create(p).with_context(|| format!("cannot create {}", p.display()))?,
        ))),
    };
    let verifier = args.verify.as_deref().map(Verifier::open).transpose()?;
    if args.swap_dmabufs
        && args.capture_memory == MemoryArg::Mmap
        && args.output_memory == MemoryArg::Mmap
    {
        bail!("--swap-dmabufs needs --capture-memory dmabuf or --output-memory dmabuf");
    }
    let config = DecodeConfig {
        format: args.format,
        capture_memory: buffer_memory(&args, args.capture_memory)?,
        output_memory: buffer_memory(&args, args.output_memory)?,
        swap_dmabufs: args.swap_dmabufs,
        output_buffers: args.output_buffers,
        extra_capture_buffers: args.extra_capture_buffers,
        max_frames: args.frames,
        loops: args.loops.max(1),
        seek: args.seek,
        stall_timeout: Duration::from_secs_f64(args.timeout.max(0.1)),
        progress: !args.quiet,
    };
    let sink = Output {
        writer,
        verifier,
        pass: 0,
        skip_reference_frames: None,
        error_frames: Vec::new(),
    };
    let decoder = Decoder::new(device, info, &stream, config, sink)?;
    let (report, mut sink) = decoder.run()?;
    if let Some(w) = &mut sink.writer {
        w.flush().context("writing frames")?;
    }

    let mut ok = true;
    let expected = stream.units.len() as u64 * u64::from(args.loops.max(1));
    if let Some(layout) = report.layouts.first() {
        let v = layout.visible;
        if !args.quiet {
            eprintln!(
                "daedalus-decode: {} {}x{} (visible {}x{} at {},{}), {} CAPTURE buffers{}",
                layout.format,
                layout.width,
                layout.height,
                v.width,
                v.height,
                v.left,
                v.top,
                report.capture_buffers,
                report.layouts[1..]
                    .iter()
                    .map(|l| format!(
                        ", then {}x{} (visible {}x{})",
                        l.width, l.height, l.visible.width, l.visible.height
                    ))
                    .collect::<String>()
            );
        }
    }
    if args.swap_dmabufs && !args.quiet {
        eprintln!(
            "daedalus-decode: {} QBUFs with another dma-buf than the index had",
            report.dmabuf_swaps
        );
    }
    if let Some(resume) = report.seek_resumed_at {
        eprintln!(
            "daedalus-decode: seek resumed at access unit {resume} ({} earlier frames dropped)",
            report.dropped_before_seek
        );
    }
    if report.frames == 0 {
        eprintln!("daedalus-decode: FAIL: no frame decoded");
        ok = false;
    }
    if report.error_frames > 0 {
        eprintln!(
            "daedalus-decode: FAIL: {} frames flagged ERROR (first: frame {})",
            report.error_frames,
            sink.error_frames.first().copied().unwrap_or_default()
        );
        ok = false;
    }
    if args.frames.is_none() && args.seek.is_none() && report.frames != expected {
        eprintln!(
            "daedalus-decode: FAIL: {} frames from {expected} access units",
            report.frames
        );
        ok = false;
    }
    if let Some(frames) = args.frames {
        if report.frames < frames.min(expected) {
            eprintln!(
                "daedalus-decode: FAIL: {} frames, {frames} asked for",
                report.frames
            );
            ok = false;
        }
    }
    if let Some(v) = &mut sink.verifier {
        if args.frames.is_none() {
            if let Err(e) = v.finish() {
                eprintln!("daedalus-decode: FAIL: {e}");
                ok = false;
            }
        }
    }
    let secs = report.elapsed.as_secs_f64();
    eprintln!(
        "daedalus-decode: {} {} frames in {:.2} s ({:.1} fps){}",
        if ok { "OK:" } else { "FAILED:" },
        report.frames,
        secs,
        report.frames as f64 / secs.max(1e-9),
        match (&args.verify, ok) {
            (Some(_), true) => ", all identical to the reference",
            _ => "",
        }
    );
    Ok(ok)
}

fn main() -> ExitCode {
    let args = Args::parse();
    match run(args) {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::FAILURE,
        Err(e) => {
            eprintln!("daedalus-decode: error: {e:#}");
            ExitCode::FAILURE
        }
    }
}
