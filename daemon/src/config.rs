//! The configuration file (`/etc/daedalus/daedalus-v4l2d.toml`).
//!
//! Unknown keys and bad values are rejected; every error names the file, the
//! line and the key (`FILE:LINE: key `decoder.threads`: ...`).

use serde::Deserialize;
use std::path::{Path, PathBuf};
use std::time::Duration;
use thiserror::Error;

/// Where the packaged configuration lives.
pub const DEFAULT_PATH: &str = "/etc/daedalus/daedalus-v4l2d.toml";

/// A configuration that cannot be used.
#[derive(Debug, Error)]
pub enum ConfigError {
    #[error("{path}: cannot read: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path}:{line}: key `{key}`: {message}")]
    Invalid {
        path: PathBuf,
        line: usize,
        key: String,
        message: String,
    },
    #[error("{path}: {message}")]
    Other { path: PathBuf, message: String },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogLevel {
    Error,
    Warn,
    Info,
    Debug,
    Trace,
}

impl LogLevel {
    pub fn filter(self) -> log::LevelFilter {
        match self {
            LogLevel::Error => log::LevelFilter::Error,
            LogLevel::Warn => log::LevelFilter::Warn,
            LogLevel::Info => log::LevelFilter::Info,
            LogLevel::Debug => log::LevelFilter::Debug,
            LogLevel::Trace => log::LevelFilter::Trace,
        }
    }
}

/// A codec the daemon may announce.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Codec {
    H264,
    Hevc,
    Vp9,
    Av1,
    Vp8,
    Mpeg2,
}

impl Codec {
    /// V4L2 coded fourcc.
    pub fn fourcc(self) -> u32 {
        use daedalus_proto::fourcc;
        match self {
            Codec::H264 => fourcc::H264,
            Codec::Hevc => fourcc::HEVC,
            Codec::Vp9 => fourcc::VP9,
            Codec::Av1 => fourcc::AV1,
            Codec::Vp8 => fourcc::VP8,
            Codec::Mpeg2 => fourcc::MPEG2,
        }
    }

    /// The codec for a fourcc announced in HELLO.
    pub fn from_fourcc(code: u32) -> Option<Codec> {
        [
            Codec::H264,
            Codec::Hevc,
            Codec::Vp9,
            Codec::Av1,
            Codec::Vp8,
            Codec::Mpeg2,
        ]
        .into_iter()
        .find(|c| c.fourcc() == code)
    }

    /// FFmpeg decoder name. AV1 goes through libdav1d: FFmpeg's native av1
    /// decoder only works with a hwaccel.
    /// The FFmpeg parser that cuts this codec's byte stream into access
    /// units, for codecs whose stream delimits them itself (start codes):
    /// OUTPUT buffers may then hold any chunk of it. VP8/VP9/AV1 frames have
    /// no start codes (their sizes live in the container), so buffers must
    /// hold whole frames.
    pub fn byte_stream_parser(self) -> Option<ffmpeg_next::codec::Id> {
        use ffmpeg_next::codec::Id;
        match self {
            Codec::H264 => Some(Id::H264),
            Codec::Hevc => Some(Id::HEVC),
            Codec::Mpeg2 => Some(Id::MPEG2VIDEO),
            Codec::Vp9 | Codec::Av1 | Codec::Vp8 => None,
        }
    }

    pub fn ffmpeg_decoder(self) -> &'static str {
        match self {
            Codec::H264 => "h264",
            Codec::Hevc => "hevc",
            Codec::Vp9 => "vp9",
            Codec::Av1 => "libdav1d",
            Codec::Vp8 => "vp8",
            Codec::Mpeg2 => "mpeg2video",
        }
    }
}

fn default_log_level() -> LogLevel {
    LogLevel::Info
}
fn default_device() -> PathBuf {
    PathBuf::from(daedalus_proto::channel::DEFAULT_PATH)
}
fn default_codecs() -> Vec<Codec> {
    vec![Codec::H264, Codec::Hevc, Codec::Vp9, Codec::Av1]
}
fn default_max_pending() -> Bounded<1, 64> {
    Bounded(16)
}
fn default_device_wait() -> Bounded<0, 600_000> {
    Bounded(10_000)
}
fn default_true() -> bool {
    true
}

/// An integer checked against `MIN..=MAX` while deserialising, so a bad value
/// gets the same file:line:key error as a type mismatch.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(try_from = "i64")]
pub struct Bounded<const MIN: u32, const MAX: u32>(pub u32);

impl<const MIN: u32, const MAX: u32> TryFrom<i64> for Bounded<MIN, MAX> {
    type Error = String;
    fn try_from(v: i64) -> Result<Self, String> {
        if v < i64::from(MIN) || v > i64::from(MAX) {
            Err(format!("{v} is out of range {MIN}..={MAX}"))
        } else {
            Ok(Bounded(v as u32))
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DecoderConfig {
    /// FFmpeg frame threads; 0 = one per CPU.
    #[serde(default)]
    pub threads: Bounded<0, 64>,
    #[serde(default = "default_codecs")]
    pub codecs: Vec<Codec>,
    /// Decoded frames a session may hold while no CAPTURE buffer is free.
    #[serde(default = "default_max_pending")]
    pub max_pending_frames: Bounded<1, 64>,
    /// Let FFmpeg decode into YUV420 CAPTURE buffers where that is safe
    /// (daemon/README.md, "Zero-copy YUV420").
    #[serde(default = "default_true")]
    pub zero_copy: bool,
}

impl Default for Bounded<0, 64> {
    fn default() -> Self {
        Bounded(0)
    }
}

impl Default for DecoderConfig {
    fn default() -> Self {
        DecoderConfig {
            threads: Bounded(0),
            codecs: default_codecs(),
            max_pending_frames: default_max_pending(),
            zero_copy: true,
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TimeoutConfig {
    /// How long to wait for the channel device at start-up.
    #[serde(default = "default_device_wait")]
    pub device_wait_ms: Bounded<0, 600_000>,
}

impl Default for TimeoutConfig {
    fn default() -> Self {
        TimeoutConfig {
            device_wait_ms: default_device_wait(),
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PluginConfig {
    /// "" = CPU only; else a daedalus-fourier plugin .so.
    #[serde(default)]
    pub path: PathBuf,
    /// Compare the plugin bit-exactly with the CPU path before trusting it.
    #[serde(default = "default_true")]
    pub self_test: bool,
}

impl Default for PluginConfig {
    fn default() -> Self {
        PluginConfig {
            path: PathBuf::new(),
            self_test: true,
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    #[serde(default = "default_log_level")]
    pub log_level: LogLevel,
    #[serde(default = "default_device")]
    pub device: PathBuf,
    #[serde(default)]
    pub decoder: DecoderConfig,
    #[serde(default)]
    pub timeouts: TimeoutConfig,
    #[serde(default)]
    pub plugin: PluginConfig,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            log_level: default_log_level(),
            device: default_device(),
            decoder: DecoderConfig::default(),
            timeouts: TimeoutConfig::default(),
            plugin: PluginConfig::default(),
        }
    }
}

impl Config {
    pub fn device_wait(&self) -> Duration {
        Duration::from_millis(u64::from(self.timeouts.device_wait_ms.0))
    }

    /// Reads and validates a configuration file.
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_owned(),
            source,
        })?;
        Config::parse(&text, path)
    }

    /// Validates configuration text; `path` is only used in messages.
    pub fn parse(text: &str, path: &Path) -> Result<Config, ConfigError> {
        let config: Config = toml::from_str(text).map_err(|e| locate(text, path, &e))?;
        if config.decoder.codecs.is_empty() {
            return Err(ConfigError::Invalid {
                path: path.to_owned(),
                line: line_of_key(text, "codecs").unwrap_or(1),
                key: "decoder.codecs".into(),
                message: "at least one codec must be enabled".into(),
            });
        }
        Ok(config)
    }
}

/// Turns a toml error into file:line:key. The key is the dotted path of the
/// table header above the error and the key on the error's line (or the
/// field serde names in an "unknown field" message).
fn locate(text: &str, path: &Path, err: &toml::de::Error) -> ConfigError {
    let message = err.message().trim().to_string();
    let Some(span) = err.span() else {
        return ConfigError::Other {
            path: path.to_owned(),
            message,
        };
    };
    let offset = span.start.min(text.len());
    let line = text[..offset].matches('\n').count() + 1;
    let line_text = text.lines().nth(line - 1).unwrap_or("");
    let table = text
        .lines()
        .take(line)
        .filter_map(|l| {
            let t = l.trim();
            t.strip_prefix('[')
                .and_then(|r| r.strip_suffix(']'))
                .map(|s| s.trim().to_string())
        })
        .last();
    let unknown = message
        .strip_prefix("unknown field `")
        .and_then(|r| r.split('`').next())
        .map(str::to_string);
    let key_on_line = line_text
        .split_once('=')
        .map(|(k, _)| k.trim().trim_matches('"').to_string())
        .filter(|k| !k.is_empty() && !k.starts_with('['));
    let key = unknown.or(key_on_line);
    let full_key = match (table, key) {
        (Some(t), Some(k)) if !line_text.trim_start().starts_with('[') => format!("{t}.{k}"),
        (Some(t), _) => t,
        (None, Some(k)) => k,
        (None, None) => "(top level)".into(),
    };
    ConfigError::Invalid {
        path: path.to_owned(),
        line,
        key: full_key,
        message,
    }
}

fn line_of_key(text: &str, key: &str) -> Option<usize> {
    text.lines()
        .position(|l| l.split_once('=').is_some_and(|(k, _)| k.trim() == key))
        .map(|i| i + 1)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<Config, String> {
        Config::parse(text, Path::new("/etc/daedalus/test.toml")).map_err(|e| e.to_string())
    }

    #[test]
    fn full_example_parses() {
        let c = parse(
            r#"
log_level = "debug"
device = "/dev/daedalus-v4l2"
[decoder]
threads = 4
codecs = ["h264", "hevc", "vp9", "av1", "vp8", "mpeg2"]
max_pending_frames = 8
[timeouts]
device_wait_ms = 500
[plugin]
path = "/usr/lib/daedalus/libdaedalus_fourier_cpu.so"
self_test = true
"#,
        )
        .unwrap();
        assert_eq!(c.log_level, LogLevel::Debug);
        assert_eq!(c.decoder.threads.0, 4);
        assert_eq!(c.decoder.codecs.len(), 6);
        assert_eq!(c.decoder.max_pending_frames.0, 8);
        assert_eq!(c.device_wait(), Duration::from_millis(500));
    }

    #[test]
    fn empty_file_gives_defaults() {
        let c = parse("").unwrap();
        assert_eq!(c.decoder.max_pending_frames.0, 16);
        assert_eq!(c.device, PathBuf::from("/dev/daedalus-v4l2"));
        assert!(c.plugin.path.as_os_str().is_empty());
        assert!(c.plugin.self_test);
    }

    #[test]
    fn unknown_key_names_file_line_and_key() {
        let e = parse("log_level = \"info\"\n[decoder]\nthreads = 2\nturbo = true\n").unwrap_err();
        assert!(
            e.starts_with("/etc/daedalus/test.toml:4: key `decoder.turbo`:"),
            "{e}"
        );
        let e = parse("[plugins]\npath = \"\"\n").unwrap_err();
        assert!(
            e.starts_with("/etc/daedalus/test.toml:1: key `plugins`"),
            "{e}"
        );
    }

    #[test]
    fn bad_values_name_file_line_and_key() {
        let e = parse("[decoder]\n\nmax_pending_frames = 0\n").unwrap_err();
        assert!(
            e.starts_with("/etc/daedalus/test.toml:3: key `decoder.max_pending_frames`:"),
            "{e}"
        );
        assert!(e.contains("out of range"), "{e}");
        let e = parse("log_level = \"loud\"\n").unwrap_err();
        assert!(
            e.starts_with("/etc/daedalus/test.toml:1: key `log_level`:"),
            "{e}"
        );
        let e = parse("[decoder]\ncodecs = [\"h264\", \"mjpeg\"]\n").unwrap_err();
        assert!(
            e.starts_with("/etc/daedalus/test.toml:2: key `decoder.codecs`:"),
            "{e}"
        );
        let e = parse("[decoder]\nthreads = \"many\"\n").unwrap_err();
        assert!(
            e.starts_with("/etc/daedalus/test.toml:2: key `decoder.threads`:"),
            "{e}"
        );
        let e = parse("[decoder]\ncodecs = []\n").unwrap_err();
        assert!(
            e.starts_with("/etc/daedalus/test.toml:2: key `decoder.codecs`:"),
            "{e}"
        );
    }

    #[test]
    fn missing_file_names_the_path() {
        let e = Config::load(Path::new("/nonexistent/d.toml"))
            .unwrap_err()
            .to_string();
        assert!(e.contains("/nonexistent/d.toml"), "{e}");
    }
}
