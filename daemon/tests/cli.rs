//! The daedalus-v4l2d binary at its edges: --version, --check-config, config
//! errors and a missing channel device (no kernel needed).

use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, Instant};

fn daemon() -> Command {
    Command::new(env!("CARGO_BIN_EXE_daedalus-v4l2d"))
}

fn config(name: &str, text: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("daedalus-v4l2d-cli-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join(name);
    std::fs::write(&path, text).unwrap();
    path
}

#[test]
fn version() {
    let out = daemon().arg("--version").output().unwrap();
    assert!(out.status.success());
    assert!(String::from_utf8_lossy(&out.stdout).starts_with("daedalus-v4l2d "));
}

#[test]
fn check_config_accepts_a_valid_file() {
    let path = config("ok.toml", "log_level = \"warn\"\n[decoder]\nthreads = 2\n");
    let out = daemon()
        .arg("--config")
        .arg(&path)
        .arg("--check-config")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("OK"));
}

#[test]
fn check_config_rejects_with_file_line_and_key() {
    let path = config("bad.toml", "[decoder]\nthreads = 2\nspeed = 11\n");
    let out = daemon()
        .arg("--config")
        .arg(&path)
        .arg("--check-config")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains(&format!("{}:3: key `decoder.speed`", path.display())),
        "{err}"
    );
}

#[test]
fn missing_config_file_is_an_error() {
    let out = daemon()
        .args(["--config", "/nonexistent/daedalus.toml", "--check-config"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("/nonexistent/daedalus.toml"));
}

#[test]
fn missing_device_fails_after_the_configured_wait() {
    let path = config(
        "nodev.toml",
        "device = \"/nonexistent/daedalus-v4l2\"\n[timeouts]\ndevice_wait_ms = 300\n",
    );
    let start = Instant::now();
    let out = daemon().arg("--config").arg(&path).output().unwrap();
    let took = start.elapsed();
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("/nonexistent/daedalus-v4l2 did not appear within 300 ms"),
        "{err}"
    );
    assert!(
        took >= Duration::from_millis(300) && took < Duration::from_secs(10),
        "{took:?}"
    );
}

#[test]
fn unknown_argument_is_an_error() {
    let out = daemon().arg("--frobnicate").output().unwrap();
    assert!(!out.status.success());
}

#[test]
fn sigterm_while_waiting_for_the_device_is_a_clean_exit() {
    let path = config(
        "wait.toml",
        "device = \"/nonexistent/daedalus-v4l2\"\n[timeouts]\ndevice_wait_ms = 20000\n",
    );
    let child = daemon()
        .arg("--config")
        .arg(&path)
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_millis(500));
    let killed = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(killed.success());
    let start = Instant::now();
    let out = child.wait_with_output().unwrap();
    assert!(
        start.elapsed() < Duration::from_secs(5),
        "took {:?} to stop",
        start.elapsed()
    );
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("stopped before the channel was connected")
    );
}
