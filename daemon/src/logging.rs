//! Logging: native journal fields when stderr is connected to the journal
//! (running under systemd), plain lines on stderr otherwise.

use log::{LevelFilter, Log, Metadata, Record};
use std::io::Write;

struct Stderr;

impl Log for Stderr {
    fn enabled(&self, metadata: &Metadata<'_>) -> bool {
        metadata.level() <= log::max_level()
    }

    fn log(&self, record: &Record<'_>) {
        if self.enabled(record.metadata()) {
            // One write per line so lines of session threads do not interleave.
            let line = format!("daedalus-v4l2d: {:<5} {}\n", record.level(), record.args());
            let _ = std::io::stderr().lock().write_all(line.as_bytes());
        }
    }

    fn flush(&self) {
        let _ = std::io::stderr().flush();
    }
}

static STDERR: Stderr = Stderr;

static TO_JOURNAL: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

/// Whether log lines go to the journal (else they are on stderr already).
pub fn to_journal() -> bool {
    TO_JOURNAL.load(std::sync::atomic::Ordering::Relaxed)
}

/// Installs the logger; returns where logs go.
pub fn init(level: LevelFilter) -> &'static str {
    let target = if systemd_journal_logger::connected_to_journal() {
        match systemd_journal_logger::JournalLog::new()
            .map(|j| j.with_syslog_identifier("daedalus-v4l2d".into()).install())
        {
            Ok(Ok(())) => {
                TO_JOURNAL.store(true, std::sync::atomic::Ordering::Relaxed);
                "journal"
            }
            _ => install_stderr(),
        }
    } else {
        install_stderr()
    };
    log::set_max_level(level);
    target
}

fn install_stderr() -> &'static str {
    let _ = log::set_logger(&STDERR);
    "stderr"
}

/// Changes the level after the configuration is known.
pub fn set_level(level: LevelFilter) {
    log::set_max_level(level);
}
