"""The Rust workspace on the host (Debian 12, FFmpeg 5.1) and inside the
Debian 13 root (rustc 1.85, FFmpeg 7.1), which also builds the guest binaries."""

from ci.harness import paths

from ci.harness.hostrun import tail

GUEST_BINARIES = ["daedalus-v4l2d", "daedalus-decode", "daedalus-bench", "daedalus-chan-fault",
                  "libdaedalus_fourier_cpu.so"]


def test_cargo_fmt(host_run):
    res = host_run(["cargo", "fmt", "--all", "--check"], "cargo-fmt")
    assert res.returncode == 0, tail(res.stdout)


def test_cargo_clippy(host_run):
    res = host_run(["cargo", "clippy", "--workspace", "--all-targets", "--", "-D", "warnings"], "cargo-clippy")
    assert res.returncode == 0, tail(res.stdout)


def test_cargo_test_host(host_run):
    res = host_run(["cargo", "test", "--workspace"], "cargo-test-host")
    assert res.returncode == 0, tail(res.stdout)


def test_trixie_release_build(host_run):
    """Builds what the guest suite runs (target/trixie/release)."""
    res = host_run([str(paths.REPO / "ci/trixie-cargo.sh"), "build", "--release", "--workspace"],
                   "trixie-build-release")
    assert res.returncode == 0, tail(res.stdout)
    missing = [b for b in GUEST_BINARIES if not (paths.REPO / "target/trixie/release" / b).exists()]
    assert not missing, f"not built: {missing}"


def test_cargo_test_trixie(host_run):
    # --release: the dependencies are the ones test_trixie_release_build just
    # built, where a debug test build would compile them all again (minutes on
    # a cold machine); debug assertions and overflow checks run on the host
    # (test_cargo_test_host), the same tests against FFmpeg 5.1
    res = host_run([str(paths.REPO / "ci/trixie-cargo.sh"), "test", "--release", "--workspace"],
                   "cargo-test-trixie")
    assert res.returncode == 0, tail(res.stdout)
