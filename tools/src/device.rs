//! Finding a stateful decoder and checking what it decodes, with messages
//! that say what is wrong (no such device, not a decoder, codec missing).

use std::path::{Path, PathBuf};

use thiserror::Error;
use v4l2r::device::{Device, DeviceConfig, DeviceOpenError};
use v4l2r::ioctl::{self, Capabilities, FormatFlags};
use v4l2r::nix::errno::Errno;
use v4l2r::QueueType;

use crate::stream::Codec;

/// The daedalus decoder's driver name (QUERYCAP).
pub const DAEDALUS_DRIVER: &str = "daedalus_v4l2";

#[derive(Debug, Error)]
pub enum DeviceError {
    #[error("no such device: {0}")]
    NoSuchDevice(PathBuf),
    #[error("permission denied opening {0} (is the user in the `video` group?)")]
    PermissionDenied(PathBuf),
    #[error("cannot open {path}: {errno}")]
    Open { path: PathBuf, errno: Errno },
    #[error("{0} is not a V4L2 device")]
    NotV4l2(PathBuf),
    #[error("{path} ({driver}) is not a memory-to-memory device, so not a decoder")]
    NotM2m { path: PathBuf, driver: String },
    #[error(
        "{path} ({driver}) is not a decoder: its OUTPUT queue takes raw frames, \
         not compressed bitstream (an encoder or a converter?)"
    )]
    NotDecoder { path: PathBuf, driver: String },
    #[error(
        "{path} ({driver}) is a stateless decoder (request API); these tools drive \
         stateful decoders"
    )]
    Stateless { path: PathBuf, driver: String },
    #[error("{path} ({driver}) does not decode {codec}; it decodes: {offered}")]
    CodecNotSupported {
        path: PathBuf,
        driver: String,
        codec: Codec,
        offered: String,
    },
    #[error("no decoder with driver name {driver:?} found in /dev/video*{seen}")]
    NotFound { driver: String, seen: String },
}

/// What QUERYCAP and ENUM_FMT say about a device.
#[derive(Debug)]
pub struct DecoderInfo {
    pub path: PathBuf,
    pub driver: String,
    pub card: String,
    pub multiplanar: bool,
    pub coded_formats: Vec<[u8; 4]>,
    pub raw_formats: Vec<[u8; 4]>,
}

impl DecoderInfo {
    pub fn output_queue(&self) -> QueueType {
        if self.multiplanar {
            QueueType::VideoOutputMplane
        } else {
            QueueType::VideoOutput
        }
    }

    pub fn capture_queue(&self) -> QueueType {
        if self.multiplanar {
            QueueType::VideoCaptureMplane
        } else {
            QueueType::VideoCapture
        }
    }

    pub fn supports(&self, codec: Codec) -> bool {
        self.coded_formats.contains(&codec.fourcc())
    }
}

pub fn fourcc_list(formats: &[[u8; 4]]) -> String {
    if formats.is_empty() {
        return "nothing".to_string();
    }
    formats
        .iter()
        .map(|f| String::from_utf8_lossy(f).trim_end().to_string())
        .collect::<Vec<_>>()
        .join(", ")
}

/// Opens `path` non-blocking, as the decode loop needs it.
pub fn open(path: &Path) -> Result<Device, DeviceError> {
    match Device::open(path, DeviceConfig::new().non_blocking_dqbuf()) {
        Ok(device) => Ok(device),
        Err(DeviceOpenError::OpenError(Errno::ENOENT | Errno::ENODEV | Errno::ENXIO)) => {
            Err(DeviceError::NoSuchDevice(path.to_path_buf()))
        }
        Err(DeviceOpenError::OpenError(Errno::EACCES | Errno::EPERM)) => {
            Err(DeviceError::PermissionDenied(path.to_path_buf()))
        }
        Err(DeviceOpenError::OpenError(errno)) => Err(DeviceError::Open {
            path: path.to_path_buf(),
            errno,
        }),
        Err(DeviceOpenError::QueryCapError(_)) => Err(DeviceError::NotV4l2(path.to_path_buf())),
    }
}

/// Checks that `device` is a stateful M2M decoder and lists its formats.
pub fn probe(path: &Path, device: &Device) -> Result<DecoderInfo, DeviceError> {
    let caps = device.caps();
    let device_caps = caps.device_caps();
    let multiplanar = device_caps.contains(Capabilities::VIDEO_M2M_MPLANE);
    if !multiplanar && !device_caps.contains(Capabilities::VIDEO_M2M) {
        return Err(DeviceError::NotM2m {
            path: path.to_path_buf(),
            driver: caps.driver.clone(),
        });
    }
    let mut info = DecoderInfo {
        path: path.to_path_buf(),
        driver: caps.driver.clone(),
        card: caps.card.clone(),
        multiplanar,
        coded_formats: Vec::new(),
        raw_formats: Vec::new(),
    };
    let mut raw_output = false;
    for desc in ioctl::FormatIterator::new(device, info.output_queue()) {
        if desc.flags.contains(FormatFlags::COMPRESSED) {
            info.coded_formats.push(desc.pixelformat.to_fourcc());
        } else {
            raw_output = true;
        }
    }
    for desc in ioctl::FormatIterator::new(device, info.capture_queue()) {
        if !desc.flags.contains(FormatFlags::COMPRESSED) {
            info.raw_formats.push(desc.pixelformat.to_fourcc());
        }
    }
    if info.coded_formats.is_empty() || (raw_output && info.raw_formats.is_empty()) {
        return Err(DeviceError::NotDecoder {
            path: path.to_path_buf(),
            driver: info.driver,
        });
    }
    // A stateful decoder's OUTPUT queue does not take requests; a stateless one's does.
    let output_caps: Result<ioctl::BufferCapabilities, _> = ioctl::reqbufs(
        device,
        info.output_queue(),
        v4l2r::memory::MemoryType::Mmap,
        0,
        ioctl::MemoryConsistency::empty(),
    );
    if output_caps.is_ok_and(|c| c.contains(ioctl::BufferCapabilities::SUPPORTS_REQUESTS)) {
        return Err(DeviceError::Stateless {
            path: path.to_path_buf(),
            driver: info.driver,
        });
    }
    Ok(info)
}

/// Opens and probes `path`, requiring `codec`.
pub fn open_decoder(path: &Path, codec: Codec) -> Result<(Device, DecoderInfo), DeviceError> {
    let device = open(path)?;
    let info = probe(path, &device)?;
    if !info.supports(codec) {
        return Err(DeviceError::CodecNotSupported {
            path: path.to_path_buf(),
            driver: info.driver,
            codec,
            offered: fourcc_list(&info.coded_formats),
        });
    }
    Ok((device, info))
}

fn numbered_nodes(prefix: &str) -> Vec<PathBuf> {
    let mut nodes: Vec<(u32, PathBuf)> = std::fs::read_dir("/dev")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|entry| {
            let name = entry.file_name().into_string().ok()?;
            let n = name.strip_prefix(prefix)?.parse().ok()?;
            Some((n, entry.path()))
        })
        .collect();
    nodes.sort();
    nodes.into_iter().map(|(_, p)| p).collect()
}

/// The /dev node of a character device, from sysfs.
fn char_device_node(major: u32, minor: u32) -> Option<PathBuf> {
    let uevent = std::fs::read_to_string(format!("/sys/dev/char/{major}:{minor}/uevent")).ok()?;
    let name = uevent.lines().find_map(|l| l.strip_prefix("DEVNAME="))?;
    Some(Path::new("/dev").join(name))
}

/// Video nodes of the media devices whose driver is `driver`.
fn media_controller_nodes(driver: &str) -> Vec<PathBuf> {
    numbered_nodes("media")
        .into_iter()
        .filter_map(|m| std::fs::File::open(m).ok())
        .filter_map(|f| crate::sys::media_video_interfaces(&f).ok())
        .filter(|(name, _)| name == driver)
        .flat_map(|(_, nodes)| nodes)
        .filter_map(|(major, minor)| char_device_node(major, minor))
        .collect()
}

/// Every V4L2 video node: the media controllers' video interfaces first
/// (tagged with their media driver), then the rest of /dev/video*.
pub fn all_video_nodes() -> Vec<(PathBuf, Option<String>)> {
    let mut nodes: Vec<(PathBuf, Option<String>)> = numbered_nodes("media")
        .into_iter()
        .filter_map(|m| std::fs::File::open(m).ok())
        .filter_map(|f| crate::sys::media_video_interfaces(&f).ok())
        .flat_map(|(name, nodes)| {
            nodes.into_iter().filter_map(move |(major, minor)| {
                Some((char_device_node(major, minor)?, Some(name.clone())))
            })
        })
        .collect();
    for node in numbered_nodes("video") {
        if !nodes.iter().any(|(p, _)| *p == node) {
            nodes.push((node, None));
        }
    }
    nodes
}

/// Finds a decoder whose QUERYCAP driver is `driver` and which decodes
/// `codec`: first among the video interfaces of that driver's media
/// controller, then walking /dev/video* (a driver may register several
/// nodes, e.g. vicodec's encoder and decoders).
pub fn find_decoder(driver: &str, codec: Codec) -> Result<(Device, DecoderInfo), DeviceError> {
    let mut seen = Vec::new();
    let mut codec_error = None;
    let mut candidates = media_controller_nodes(driver);
    for node in numbered_nodes("video") {
        if !candidates.contains(&node) {
            candidates.push(node);
        }
    }
    for path in candidates {
        let Ok(device) = open(&path) else { continue };
        let name = device.caps().driver.clone();
        if name != driver {
            seen.push(format!("{} ({name})", path.display()));
            continue;
        }
        match probe(&path, &device) {
            Ok(info) if info.supports(codec) => return Ok((device, info)),
            Ok(info) => {
                codec_error.get_or_insert(DeviceError::CodecNotSupported {
                    path: path.clone(),
                    driver: info.driver,
                    codec,
                    offered: fourcc_list(&info.coded_formats),
                });
            }
            Err(_) => seen.push(format!("{} ({name}, not a decoder)", path.display())),
        }
    }
    if let Some(e) = codec_error {
        return Err(e);
    }
    Err(DeviceError::NotFound {
        driver: driver.to_string(),
        seen: if seen.is_empty() {
            " (there are no video devices)".to_string()
        } else {
            format!("; found: {}", seen.join(", "))
        },
    })
}
