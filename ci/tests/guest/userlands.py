"""The client userlands the player tests run in: the guest's own Debian 13
(GStreamer 1.26, FFmpeg 7.1) and Debian 12 (GStreamer 1.22, as Raspberry Pi
OS bookworm ships, and FFmpeg 5.1) from the side root ci/bookworm-root/
builds. The QEMU guest gets that root as a read-only 9p share at its host
path (ci/harness/target.py); the first test that needs it mounts a tmpfs
overlay on it and binds /dev, /proc, /sys, /tmp, the repository and the
stream cache at their own paths, then runs each client command under
`chroot`. The decoder's daemon and module stay the guest's: only the client
changes."""

from dataclasses import dataclass
from pathlib import Path

from ci.harness import paths

# where the guest mounts the bookworm root (a tmpfs overlay: its own writes
# and the mount points for the repository and the streams)
BOOKWORM_MOUNT = "/run/bookworm"
HELPERS = Path(__file__).parent / "helpers"


@dataclass(frozen=True)
class Userland:
    name: str  # what the tests are parametrized with
    gstreamer: str  # the GStreamer version it must report ("1.26.")
    prefix: str  # what runs a command in it

    def cmd(self, command: str) -> str:
        """`command` (its first program) run in this userland."""
        return self.prefix + command


TRIXIE = Userland("gst-1.26", "1.26.", "")
# HOME on the guest's tmpfs: GStreamer's registry and Python's caches
BOOKWORM = Userland("gst-1.22", "1.22.",
                    f"chroot {BOOKWORM_MOUNT} /usr/bin/env HOME=/tmp/bookworm-home ")


def enter(target, userland: Userland) -> Userland:
    """Makes `userland` usable in the guest (mounts once) and checks its GStreamer version."""
    if userland.prefix:
        if not target.is_qemu:
            raise AssertionError(f"{userland.name}: the bookworm side root is set up for the QEMU guest only")
        root = paths.bookworm_root()
        binds = f"{target.repo} {target.streams}"
        res = target.run(f"sh {HELPERS}/bookworm-mount.sh {root} {BOOKWORM_MOUNT} {binds} 2>&1 && "
                         "mkdir -p /tmp/bookworm-home", timeout=120)
        assert res.rc == 0, f"cannot set up the bookworm root in the guest:\n{res.stdout[-2000:]}"
    # the first GStreamer command of a boot scans every plugin into the
    # registry (HOME is on tmpfs): 98 s on the debug kernel in a warm run,
    # over 120 s in a cold one on a loaded host, so not the default timeout
    version = target.run(userland.cmd("gst-launch-1.0 --version 2>&1"), timeout=900).stdout
    assert f"GStreamer {userland.gstreamer}" in version, f"{userland.name}: expected GStreamer {userland.gstreamer}x:\n{version}"
    return userland
