"""DMABUF clients that queue another dma-buf under an index without REQBUFS
(GStreamer's dmabuf-import, Chromium, any app with its own allocator): every
QBUF of `daedalus-decode --swap-dmabufs` hands the driver another buffer from
a CMA dma-heap than the index had before (holding zeros or an older frame).
Bit-exact output proves each frame was written into the buffer queued now and
each bitstream read from it (protocol 1.2 mem_seq, kernel/README.md); with
zero-copy YUV420, FFmpeg's references stay in the dma-bufs swapped out, which
come back under other indices."""

import re
import time

import pytest

from ci.harness import report

from .decode import daedalus_decode

SWAP = "--capture-memory dmabuf --swap-dmabufs"


def _summary(target, stack, since_line: int) -> tuple[int, int]:
    """(frames, zero-copy frames) of the session summary logged after since_line."""
    # the daemon logs it when the session closes, just after the client exits
    for _ in range(50):
        since = target.run(f"tail -n +{since_line + 1} {stack.daemon_log}").stdout
        lines = [line for line in since.splitlines() if " zero-copy, " in line]
        if lines:
            m = re.search(r"(\d+) frames, (\d+) zero-copy", lines[-1])
            assert m, lines[-1]
            return int(m.group(1)), int(m.group(2))
        time.sleep(0.1)
    raise AssertionError(f"no session summary in the daemon log:\n{stack.log_tail()}")


# name, client options, reference pixel format (None: the stream's), zero-copy expected
CASES = [
    # NV12, copy path; OUTPUT dma-bufs swapped too
    ("h264-320x240", f"{SWAP} --output-memory dmabuf", None, False),
    # two memory planes, each swapped
    ("vp9-320x240", f"{SWAP} --format nv12m", None, False),
    # zero-copy YUV420: FFmpeg keeps references in dma-bufs the client swapped out
    ("vp9-640x480", f"{SWAP} --output-memory dmabuf --format yuv420 --extra-capture-buffers 12",
     "yuv420p", True),
]


@pytest.mark.parametrize("name,opts,pix_fmt,zero_copy", CASES, ids=[c[0] for c in CASES])
def test_swapped_dmabufs_bit_exact(request, target, stack, running, manifest, name, opts, pix_fmt,
                                   zero_copy):
    stream = manifest[name]
    if request.config.getoption("--kernel-variant") == "debug":
        # The 3 GiB debug guest puts its CMA area above 4 GiB; the module's
        # 32-bit DMA mask then bounces imports through SWIOTLB, which refuses
        # the 1 MiB OUTPUT buffers ("swiotlb buffer is full (sz: 2097152
        # bytes)", QBUF EINVAL). 320x240 CAPTURE buffers still fit.
        opts = opts.replace("--output-memory dmabuf", "")
    heaps = target.run("ls /dev/dma_heap").stdout.split()
    assert any("reserved" in h or "cma" in h for h in heaps), \
        f"no CMA dma-heap in the guest (the module's dma-contig needs contiguous memory): {heaps}"
    if pix_fmt:
        ref = f"/tmp/dmabuf-{name}.{pix_fmt}"
        made = target.run(f"ffmpeg -nostdin -loglevel error -i {stream['path']} -fps_mode passthrough "
                          f"-pix_fmt {pix_fmt} -f rawvideo -y {ref}", timeout=600)
        assert made.rc == 0, made.stdout
        stream = dict(stream, ref=ref)
    log_lines = int(target.run(f"wc -l < {stack.daemon_log}").stdout.strip() or 0)
    res = target.run(daedalus_decode(stack, running.video, stream, extra=opts) + " 2>&1", timeout=900)
    assert res.rc == 0, f"daedalus-decode failed ({res.rc}):\n{res.stdout[-3000:]}\ndaemon log:\n{stack.log_tail()}"
    m = re.search(r"(\d+) QBUFs with another dma-buf", res.stdout)
    assert m and int(m.group(1)) >= stream["total_frames"], res.stdout[-2000:]
    frames, zc = _summary(target, stack, log_lines)
    assert frames == stream["total_frames"], (frames, stream["total_frames"])
    if zero_copy:
        assert zc > 0, f"no frame went out zero-copy ({frames} frames)"
    report.figure(f"swapped dma-bufs {name}", f"{m.group(1)} swaps, {frames} frames bit-exact, {zc} zero-copy")
