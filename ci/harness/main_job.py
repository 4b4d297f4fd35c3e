"""The README's main job, after the builds (ci/main-job.sh does those): boot
the guest, load the module, start the daemon, decode the sample clips through
/dev/videoN with daedalus-decode and FFmpeg's *_v4l2m2m, verify every frame
bit-exact, print frame rates, and write out/main-job/contact-sheet.png.
"""

import shlex
import subprocess
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from ci.harness import paths, qemu  # noqa: E402
from ci.harness.stack import DEPENDENCIES, DRIVER  # noqa: E402
from ci.harness.streams import streams  # noqa: E402

CLIPS = ["h264-320x240", "h264-1920x1080", "h264-reschange", "hevc-320x240", "vp9-320x240",
         "vp9-10bit-320x240", "vp9-854x480", "av1-320x240", "av1-1920x1080"]
FFMPEG_CLIPS = ["h264-320x240", "hevc-320x240", "vp9-320x240"]


def guest_script(clips: list[dict], out: Path) -> str:
    r = paths.REPO
    bin_ = r / "target/trixie/release"
    q = shlex.quote
    lines = [
        "set -u -o pipefail", "fail=0",
        f"mkdir -p {q(str(out))}",
        'echo "== loading the module"',
        f"modprobe -a {' '.join(DEPENDENCIES)} && insmod {r}/kernel/daedalus_v4l2.ko || exit 10",
        'echo "== starting daedalus-v4l2d"',
        f"python3 {r}/ci/tests/guest/helpers/start-daemon.py --log {out}/daedalus-v4l2d.log "
        f"--pidfile /run/daedalus-v4l2d.pid -- {bin_}/daedalus-v4l2d --config {r}/ci/tests/guest/daedalus-v4l2d.test.toml"
        f" || {{ tail -20 {out}/daedalus-v4l2d.log; exit 11; }}",
        f"video=$(for v in /dev/video*; do v4l2-ctl -d $v -D 2>/dev/null | grep -Eq 'Driver name *: {DRIVER}$' && echo $v; done)",
        'echo "decoder: $video"; v4l2-ctl -d "$video" -D | sed -n "1,4p"',
        'rates=""',
    ]
    for c in clips:
        name = c["name"]
        lines += [
            f'echo "== daedalus-decode {name} ({c["total_frames"]} frames)"',
            f"if {bin_}/daedalus-decode --device \"$video\" --verify {c['ref']} --output {out}/{name}.raw {c['path']} "
            f"2>&1 | tee /tmp/dec.log; then st=bit-exact; else st=FAILED; fail=1; fi",
            f'rates="$rates\\n  daedalus-decode  {name:20} $(grep -Eo "[0-9.]+ fps" /tmp/dec.log | tail -1)  $st"',
        ]
    for c in clips:
        if c["name"] not in FFMPEG_CLIPS:
            continue
        name, raw = c["name"], f"/tmp/{c['name']}.ffmpeg.raw"
        lines += [
            f'echo "== ffmpeg -c:v {c["v4l2m2m"]} {name}"',
            f"if ffmpeg -nostdin -hide_banner -nostats -loglevel info -benchmark -c:v {c['v4l2m2m']} -i {c['path']} "
            f"-fps_mode passthrough -noautoscale -pix_fmt {c['ref_pix_fmt']} -f rawvideo -y {raw} >/tmp/ff.log 2>&1"
            f" && cmp {raw} {c['ref']}; then st=bit-exact; else st=FAILED; fail=1; fi",
            '[ "$st" = FAILED ] && tail -5 /tmp/ff.log',
            f"t=$(grep -Eo 'rtime=[0-9.]+' /tmp/ff.log | cut -d= -f2)",
            f'rates="$rates\\n  ffmpeg {c["v4l2m2m"]:13} {name:20} $(awk -v t="$t" \'BEGIN{{if (t>0) printf "%.1f fps", {c["total_frames"]}/t}}\')  $st"',
        ]
    lines += [
        'echo "== stopping"',
        "kill $(cat /run/daedalus-v4l2d.pid) && sleep 2",
        f"rmmod {DRIVER} || fail=1",
        'echo "== frame rates (guest, $(nproc) vCPUs)"; printf "$rates\\n"',
        "exit $fail",
    ]
    return "\n".join(lines)


def _frame_size(w: int, h: int, pix: str) -> int:
    per = 2 if pix == "p010le" else 1
    return w * h * per + 2 * ((w + 1) // 2) * ((h + 1) // 2) * per


def contact_sheet(clips: list[dict], out: Path) -> Path:
    """First and middle decoded frame of every clip, 4 to a row, one PNG."""
    tiles = out / "tiles"
    tiles.mkdir(exist_ok=True)
    n = 0
    for c in clips:
        raw = out / f"{c['name']}.raw"
        if not raw.exists():
            continue
        parts = c["parts"] or [{"width": c["width"], "height": c["height"], "frames": c["total_frames"]}]
        offset = 0
        picks = []
        for p in parts:
            size = _frame_size(p["width"], p["height"], c["ref_pix_fmt"])
            picks += [(offset, p), (offset + size * (p["frames"] // 2), p)]
            offset += size * p["frames"]
        for off, p in picks[:2] if not c["parts"] else [picks[0], picks[2]]:
            size = _frame_size(p["width"], p["height"], c["ref_pix_fmt"])
            with raw.open("rb") as f:
                f.seek(off)
                frame = f.read(size)
            if len(frame) != size:
                continue
            subprocess.run(
                ["ffmpeg", "-nostdin", "-hide_banner", "-loglevel", "error", "-y", "-f", "rawvideo",
                 "-pix_fmt", c["ref_pix_fmt"], "-s", f"{p['width']}x{p['height']}", "-i", "-",
                 "-vf", "scale=320:180:force_original_aspect_ratio=decrease,pad=320:180:(ow-iw)/2:(oh-ih)/2",
                 "-frames:v", "1", str(tiles / f"{n:03d}.png")], input=frame, check=True)
            n += 1
    sheet = out / "contact-sheet.png"
    rows = max(1, (n + 3) // 4)
    subprocess.run(["ffmpeg", "-nostdin", "-hide_banner", "-loglevel", "error", "-y", "-framerate", "1",
                    "-i", str(tiles / "%03d.png"), "-vf", f"tile=4x{rows}:padding=4:color=gray",
                    "-frames:v", "1", str(sheet)], check=True)
    return sheet


def main() -> int:
    by_name = {s["name"]: s for s in streams()}
    clips = [by_name[n] for n in CLIPS]
    out = paths.OUT / "main-job"
    out.mkdir(parents=True, exist_ok=True)
    for old in out.glob("*.raw"):
        old.unlink()
    cfg = qemu.GuestConfig(shares=[(paths.STREAMS, True)])
    res = qemu.run_command(cfg, guest_script(clips, out), timeout=1800)
    sheet = contact_sheet(clips, out)
    print(f"main-job: contact sheet {sheet}")
    for raw in out.glob("*.raw"):
        raw.unlink()  # the sheet is what we keep; raw frames are large
    print(f"main-job: {'OK, every frame bit-exact' if res.rc == 0 else f'FAILED (exit status {res.rc})'}; "
          f"guest console log {res.run_dir / 'console.log'}")
    return res.rc


if __name__ == "__main__":
    sys.exit(main())
