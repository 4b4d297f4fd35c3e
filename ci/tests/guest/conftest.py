"""Guest suite fixtures: the labgrid target (booted once per session), a
kernel-splat check around every test, the stack (module + daemon), streams."""

import platform

import pytest

from ci.harness import paths, report
from ci.harness.stack import Stack
from ci.harness.streams import streams
from ci.harness.target import Target, env_file, target_option

from .decode import cli_reference


def pytest_collection_modifyitems(config, items):
    # what the target's kernel or userspace does not have (its environment
    # file's `daedalus_lacks`): tests marked with it are deselected, not skipped
    lacks = set(target_option(env_file(), "daedalus_lacks") or [])
    keep, drop = [], []
    for it in items:
        if "/guest/" in str(it.fspath):
            it.add_marker(pytest.mark.guest)
            if lacks & {m.name for m in it.iter_markers()}:
                drop.append(it)
                continue
        keep.append(it)
    if drop:
        config.hook.pytest_deselected(items=drop)
        items[:] = keep


@pytest.fixture(scope="session")
def target(request):
    variant = request.config.getoption("--kernel-variant")
    t = Target(variant)
    seconds = t.start()
    report.figure(f"guest boot to shell ({t.env_path.stem}, {variant})", f"{seconds:.1f} s")
    yield t
    leaks = t.kmemleak_report()
    t.stop()
    if leaks.strip():
        pytest.fail(f"kmemleak reports unreferenced objects:\n{leaks[:4000]}")


@pytest.fixture(autouse=True)
def kernel_log_clean(request, target):
    """Fails the test if the kernel printed a splat while it ran."""
    target.mark_dmesg()
    yield
    splats = target.new_splats()
    if splats:
        pytest.fail("kernel splat during the test:\n" + "\n".join(splats[:30]))


@pytest.fixture(scope="session")
def manifest(target):
    """All test streams (generated on the host on first use), by name, with
    their paths as the target sees them (QEMU: the same; a board: its copy)."""
    host, there = str(paths.STREAMS), str(target.streams)

    def moved(value):
        if isinstance(value, str):
            return value.replace(host, there, 1)
        if isinstance(value, list):
            return [moved(v) for v in value]
        if isinstance(value, dict):
            return {k: moved(v) for k, v in value.items()}
        return value

    manifest = {s["name"]: moved(s) for s in streams()}
    if target.arch != platform.machine():
        for stream in manifest.values():
            if stream["codec"] in INEXACT_IDCT:
                stream["ref"] = _reference_on_target(target, stream)
    return manifest


# MPEG-2 leaves the inverse DCT's rounding to the decoder (IEEE 1180
# accuracy, not bit-exactness): FFmpeg's NEON IDCT on aarch64 gives frames
# that differ by 1 in a few samples from its x86-64 (and C) one. The host's
# references only hold on the host's architecture; elsewhere the target's own
# FFmpeg CLI, the decoder the daemon links, makes the reference.
INEXACT_IDCT = {"mpeg2"}


def _reference_on_target(target, stream: dict) -> str:
    ref = f"/tmp/{stream['name']}.{target.arch}.{stream['ref_pix_fmt']}"
    cli_reference(target, stream, ref, stream["ref_pix_fmt"])
    return ref


@pytest.fixture(scope="session")
def stack(target):
    return Stack(target)


@pytest.fixture
def running(stack):
    """Module loaded and daemon up; returns the decoder's device nodes."""
    devs = stack.up()
    yield devs
    if stack.daemon_pid() is None:
        pytest.fail("daedalus-v4l2d died during the test:\n" + stack.log_tail())


@pytest.fixture
def compliance_running(stack, running):
    """Like `running`, with the daemon announcing only the coded formats
    v4l2-compliance 1.30.1 knows (see daedalus-v4l2d.compliance.toml)."""
    default = stack.config
    stack.stop_daemon()
    stack.config = f"{stack.t.repo}/ci/tests/guest/daedalus-v4l2d.compliance.toml"
    try:
        stack.start_daemon()
        yield running
    finally:
        stack.stop_daemon()
        stack.config = default
        stack.start_daemon()
