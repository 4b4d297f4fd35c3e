//! daedalus-v4l2d: the decode daemon of daedalus-v4l2.
//!
//! `daedalus-v4l2d [--config PATH] [--check-config] [--version]`
//! Runs in the foreground; under systemd (Type=notify) it logs to the journal.

mod buffers;
mod bytestream;
mod config;
mod convert;
mod decoder;
mod format;
mod lavc;
mod lending;
mod logging;
mod mapping;
mod plugin;
mod service;
mod session;
mod transport;
mod writer;

#[cfg(test)]
mod tests;

use anyhow::{Context, Result};
use config::Config;
use std::path::PathBuf;

struct Args {
    config: PathBuf,
    check_config: bool,
}

fn parse_args() -> Result<Option<Args>> {
    use lexopt::prelude::*;
    let mut args = Args {
        config: PathBuf::from(config::DEFAULT_PATH),
        check_config: false,
    };
    let mut parser = lexopt::Parser::from_env();
    while let Some(arg) = parser.next()? {
        match arg {
            Long("config") | Short('c') => args.config = parser.value()?.into(),
            Long("check-config") => args.check_config = true,
            Long("version") | Short('V') => {
                println!("daedalus-v4l2d {}", env!("CARGO_PKG_VERSION"));
                return Ok(None);
            }
            Long("help") | Short('h') => {
                println!("usage: daedalus-v4l2d [--config PATH] [--check-config] [--version]\n  default config: {}", config::DEFAULT_PATH);
                return Ok(None);
            }
            _ => return Err(arg.unexpected().into()),
        }
    }
    Ok(Some(args))
}

fn run() -> Result<()> {
    let signals = service::block_stop_signals()?;
    let Some(args) = parse_args()? else {
        return Ok(());
    };
    let target = logging::init(log::LevelFilter::Info);
    let config = Config::load(&args.config)?;
    if args.check_config {
        println!("{}: OK", args.config.display());
        return Ok(());
    }
    logging::set_level(config.log_level.filter());
    log::info!(
        "daedalus-v4l2d {} starting (config {}, logging to {target})",
        env!("CARGO_PKG_VERSION"),
        args.config.display()
    );
    ffmpeg_next::init().context("FFmpeg initialisation")?;
    // FFmpeg's own messages about corrupt streams would flood the log; the
    // daemon reports errors per buffer instead.
    ffmpeg_next::util::log::set_level(match config.log_level {
        config::LogLevel::Trace => ffmpeg_next::util::log::Level::Warning,
        config::LogLevel::Debug => ffmpeg_next::util::log::Level::Error,
        _ => ffmpeg_next::util::log::Level::Fatal,
    });
    let converter = plugin::select(&config.plugin.path, config.plugin.self_test);
    let service = match service::Service::start(&config, converter, signals) {
        Ok(s) => s,
        Err(service::ServiceError::Stopped) => {
            log::info!("stopped before the channel was connected");
            return Ok(());
        }
        Err(e) => return Err(e.into()),
    };
    service.run()?;
    Ok(())
}

fn main() -> std::process::ExitCode {
    match run() {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            if logging::to_journal() {
                log::error!("{e:#}");
            } else {
                eprintln!("daedalus-v4l2d: error: {e:#}");
            }
            std::process::ExitCode::FAILURE
        }
    }
}
