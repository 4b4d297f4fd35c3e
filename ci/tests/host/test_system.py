"""System integration on the host: the systemd unit, udev rules, sysusers file
and default config of rootfs-overlay/, and the two Debian packages built by
packaging/build-debs.sh, installed into clean Debian 12 and 13 roots where
DKMS must build the module against the guest's 6.12 kernel tree and refuse
Debian's stock amd64 headers (no CONFIG_V4L2_MEM2MEM_DEV). The arm64 daemon
packages (cross-built: packaging/cross-cargo.sh) are resolved by apt against
Debian 12 and 13 arm64 and their binaries run under qemu-aarch64.

Needs root (chroots, mount namespaces) and the Debian mirror (the clean roots
install the packages' dependencies with apt; downloads are cached under
~/.cache/daedalus-v4l2/apt-archives/).
"""

import os
import re
import shutil
import subprocess
import tomllib
from pathlib import Path
from typing import NamedTuple

import pytest

from ci.harness import paths, report

REPO = paths.REPO
OVERLAY = REPO / "rootfs-overlay"
UNIT = OVERLAY / "usr/lib/systemd/system/daedalus-v4l2d.service"
RULES = OVERLAY / "usr/lib/udev/rules.d/70-daedalus-v4l2.rules"
SYSUSERS = OVERLAY / "usr/lib/sysusers.d/daedalus.conf"
CONFIG = OVERLAY / "etc/daedalus/daedalus-v4l2d.toml"
MODULES_LOAD = OVERLAY / "usr/lib/modules-load.d/daedalus-v4l2.conf"
BINARIES = ["daedalus-v4l2d", "daedalus-decode", "daedalus-bench", "libdaedalus_fourier_cpu.so"]
# the FFmpeg library package each release's daemon must depend on
AVCODEC = {"bookworm": "libavcodec59", "trixie": "libavcodec61"}
# readelf's "Machine:" for each Debian architecture
ELF_MACHINE = {"amd64": "Advanced Micro Devices X86-64", "arm64": "AArch64"}
MIRROR = os.environ.get("DAEDALUS_DEBIAN_MIRROR", "http://deb.debian.org/debian")
MAX_EXPOSURE = 2.0


def run(cmd, check=True, **kw) -> subprocess.CompletedProcess:
    kw.setdefault("stdout", subprocess.PIPE)
    kw.setdefault("stderr", subprocess.STDOUT)
    res = subprocess.run(cmd, text=True, **kw)
    if check and res.returncode != 0:
        pytest.fail(f"{cmd!r} exited with {res.returncode}:\n{res.stdout[-6000:]}")
    return res


def unit_settings(path: Path) -> dict[str, list[str]]:
    """All Key=value assignments of a unit file (keys may repeat), by key."""
    out: dict[str, list[str]] = {}
    for line in path.read_text().splitlines():
        line = line.strip()
        if not line or line[0] in "#;[":
            continue
        key, _, value = line.partition("=")
        out.setdefault(key.strip(), []).append(value.strip())
    return out


@pytest.fixture(scope="module")
def unit_root(tmp_path_factory) -> Path:
    """A root for `systemd-analyze --root`: the host's system units (for the
    targets the unit refers to), the overlay, and a stand-in executable at
    ExecStart's path (verify checks that it exists)."""
    root = tmp_path_factory.mktemp("unit-root")
    shutil.copytree("/usr/lib/systemd/system", root / "usr/lib/systemd/system", symlinks=True)
    shutil.copytree(OVERLAY, root, dirs_exist_ok=True, symlinks=True)
    exe = root / "usr/bin/daedalus-v4l2d"
    exe.parent.mkdir(parents=True, exist_ok=True)
    exe.write_text("#!/bin/sh\n")
    exe.chmod(0o755)
    return root


# --- rootfs-overlay ------------------------------------------------------------

def test_unit_verify_clean(unit_root):
    res = run(["systemd-analyze", "verify", f"--root={unit_root}", "daedalus-v4l2d.service"], check=False)
    # verify exits 0 even for unknown keys or bad values: any output is a finding
    assert res.returncode == 0 and not res.stdout.strip(), res.stdout


def exposure(output: str) -> float:
    m = re.search(r"Overall exposure level for daedalus-v4l2d\.service: (\d+\.\d+) (\w+)", output)
    assert m, output[-3000:]
    return float(m.group(1))


def test_unit_security_exposure(unit_root):
    res = run(["systemd-analyze", "security", "--offline=yes", f"--root={unit_root}",
               "--no-pager", "daedalus-v4l2d.service"])
    score = exposure(res.stdout)
    report.figure("systemd-analyze security exposure (systemd 252, host)", f"{score}")
    assert score <= MAX_EXPOSURE, res.stdout


def test_unit_contract():
    s = unit_settings(UNIT)
    assert s["Type"] == ["notify"]
    assert s["ExecStart"][0].split()[0] == "/usr/bin/daedalus-v4l2d"
    assert s["Restart"] == ["on-failure"]
    assert s["WatchdogSec"] and s["WatchdogSec"][0] not in ("0", "infinity")
    assert s["User"] == ["daedalus"]
    # the only device the daemon may open is its channel (dma-bufs come as fds)
    assert s["DevicePolicy"] == ["closed"]
    assert s["DeviceAllow"] == ["/dev/daedalus-v4l2 rw"]
    for key in ("NoNewPrivileges", "PrivateNetwork", "PrivateTmp", "ProtectHome",
                "MemoryDenyWriteExecute", "LockPersonality", "RestrictRealtime",
                "RestrictSUIDSGID", "ProtectClock", "ProtectHostname"):
        assert s[key] == ["yes"], key
    assert s["ProtectSystem"] == ["strict"]
    assert s["CapabilityBoundingSet"] == [""]
    assert s["RestrictAddressFamilies"] == ["AF_UNIX"]
    assert "@system-service" in s["SystemCallFilter"]
    assert s["SystemCallArchitectures"] == ["native"]
    # started after modules-load and only where the module made its node
    assert any("systemd-modules-load.service" in v for v in s["After"])
    assert s["ConditionPathExists"] == ["/dev/daedalus-v4l2"]


def test_sysusers_creates_daedalus(tmp_path):
    (tmp_path / "etc").mkdir()
    run(["systemd-sysusers", f"--root={tmp_path}", str(SYSUSERS)])
    passwd = {l.split(":")[0]: l.split(":") for l in (tmp_path / "etc/passwd").read_text().splitlines()}
    assert "daedalus" in passwd, passwd
    name, _, uid, gid, _, home, shell = passwd["daedalus"]
    assert 0 < int(uid) < 1000, uid  # a system user
    assert shell == "/usr/sbin/nologin" and home == "/nonexistent"
    groups = (tmp_path / "etc/group").read_text()
    assert re.search(rf"^daedalus:x:{gid}:", groups, re.M), groups


def test_udev_rules():
    rules = [l for l in RULES.read_text().replace("\\\n", " ").splitlines()
             if l.strip() and not l.lstrip().startswith("#")]
    channel = [r for r in rules if 'KERNEL=="daedalus-v4l2"' in r]
    assert len(channel) == 1, rules
    for frag in ('SUBSYSTEM=="misc"', 'OWNER="daedalus"', 'MODE="0600"', 'TAG+="systemd"',
                 'ENV{SYSTEMD_WANTS}+="daedalus-v4l2d.service"'):
        assert frag in channel[0], frag
    for subsystem in ("video4linux", "media"):
        ours = [r for r in rules if f'SUBSYSTEM=="{subsystem}"' in r]
        assert ours, subsystem
        for r in ours:
            assert 'GROUP="video"' in r and 'MODE="0660"' in r, r
            assert "daedalus_v4l2" in r or "daedalus-v4l2" in r, r


def test_modules_load():
    lines = [l for l in MODULES_LOAD.read_text().splitlines() if l.strip() and not l.startswith("#")]
    assert lines == ["daedalus_v4l2"]


def test_default_config_is_the_agreed_schema():
    cfg = tomllib.loads(CONFIG.read_text())
    assert cfg == {
        "log_level": "info",
        "device": "/dev/daedalus-v4l2",
        "decoder": {"threads": 0, "codecs": ["h264", "hevc", "vp9", "av1"], "max_pending_frames": 16,
                    "zero_copy": True},
        "timeouts": {"device_wait_ms": 10000},
        "plugin": {"path": "", "self_test": True},
    }


# --- binaries and packages -------------------------------------------------------

@pytest.fixture(scope="session")
def host_binaries() -> Path:
    """The workspace's release binaries for this host (Debian 12)."""
    run(["cargo", "build", "--release", "--workspace"], cwd=REPO, stdout=None, stderr=None)
    return REPO / "target" / "release"


@pytest.fixture(scope="session")
def trixie_binaries() -> Path:
    """The workspace's release binaries for Debian 13, built in the guest root."""
    run([str(REPO / "ci/trixie-cargo.sh"), "build", "--release", "--workspace"], cwd=REPO,
        stdout=None, stderr=None)
    return REPO / "target" / "trixie" / "release"


def test_daemon_accepts_default_config(host_binaries):
    res = run([str(host_binaries / "daedalus-v4l2d"), "--check-config", "--config", str(CONFIG)], check=False)
    assert res.returncode == 0, res.stdout
    bad = CONFIG.read_text() + "\nno_such_key = 1\n"
    bad_file = paths.OUT / "bad-config.toml"
    bad_file.parent.mkdir(parents=True, exist_ok=True)
    bad_file.write_text(bad)
    res = run([str(host_binaries / "daedalus-v4l2d"), "--check-config", "--config", str(bad_file)], check=False)
    assert res.returncode != 0, "an unknown key was accepted:\n" + res.stdout


def arm64_binaries(release: str) -> Path:
    """The workspace's release binaries for Debian `release` arm64, cross-built
    in that release's cross root (its rustc 1.85, its arm64 FFmpeg)."""
    run([str(REPO / "packaging/cross-cargo.sh"), release, "build", "--release", "--workspace"],
        cwd=REPO, stdout=None, stderr=None)
    return REPO / "target" / f"{release}-arm64" / "aarch64-unknown-linux-gnu" / "release"


def build_debs(release: str, arch: str, bin_dir: Path) -> dict[str, Path]:
    out = paths.OUT / "debs" / f"{release}-{arch}"
    res = run([str(REPO / "packaging/build-debs.sh"), "--release", release, "--arch", arch,
               "--bin-dir", str(bin_dir), "--out", str(out)], stderr=None)
    debs = [Path(l) for l in res.stdout.split() if l.endswith(".deb")]
    by_name = {d.name.split("_")[0]: d for d in debs}
    assert set(by_name) == {"daedalus-v4l2-dkms", "daedalus-v4l2d"}, debs
    return by_name


@pytest.fixture(scope="session")
def debs(request):
    """debs(release, arch="amd64"): the two packages, built once per session."""
    cache: dict[tuple[str, str], dict[str, Path]] = {}

    def get(release: str, arch: str = "amd64") -> dict[str, Path]:
        if (release, arch) not in cache:
            if arch == "arm64":
                bins = arm64_binaries(release)
            elif release == "bookworm":
                bins = request.getfixturevalue("host_binaries")
            else:
                bins = request.getfixturevalue("trixie_binaries")
            cache[(release, arch)] = build_debs(release, arch, bins)
        return cache[(release, arch)]

    return get


def deb_field(deb: Path, field: str) -> str:
    return run(["dpkg-deb", "-f", str(deb), field]).stdout.strip()


def deb_files(deb: Path) -> set[str]:
    listing = run(["dpkg-deb", "-c", str(deb)]).stdout
    return {l.split()[5].removeprefix(".") for l in listing.splitlines() if len(l.split()) >= 6}


@pytest.mark.parametrize("arch", ["amd64", "arm64"])
@pytest.mark.parametrize("release", ["bookworm", "trixie"])
def test_deb_contents(debs, release, arch, tmp_path):
    pkgs = debs(release, arch)
    daemon, dkms = pkgs["daedalus-v4l2d"], pkgs["daedalus-v4l2-dkms"]
    files = deb_files(daemon)
    for f in ("/usr/bin/daedalus-v4l2d", "/usr/bin/daedalus-decode", "/usr/bin/daedalus-bench",
              "/usr/lib/daedalus/libdaedalus_fourier_cpu.so", "/etc/daedalus/daedalus-v4l2d.toml",
              "/usr/lib/udev/rules.d/70-daedalus-v4l2.rules", "/usr/lib/sysusers.d/daedalus.conf",
              "/usr/lib/modules-load.d/daedalus-v4l2.conf"):
        assert f in files, f
    assert {"/lib/systemd/system/daedalus-v4l2d.service",
            "/usr/lib/systemd/system/daedalus-v4l2d.service"} & files
    depends = deb_field(daemon, "Depends")
    assert re.search(rf"\b{AVCODEC[release]}\b", depends), depends
    assert "systemd" in depends
    assert deb_field(daemon, "Architecture") == arch
    # the binaries are for that machine (dh_strip used the matching binutils)
    run(["dpkg-deb", "-x", str(daemon), str(tmp_path)])
    for f in ("usr/bin/daedalus-v4l2d", "usr/bin/daedalus-decode", "usr/bin/daedalus-bench",
              "usr/lib/daedalus/libdaedalus_fourier_cpu.so"):
        header = run(["readelf", "-h", str(tmp_path / f)]).stdout
        assert re.search(rf"Machine:\s+{re.escape(ELF_MACHINE[arch])}$", header, re.M), f + header
    assert deb_field(dkms, "Architecture") == "all"
    assert re.search(r"\bdkms\b", deb_field(dkms, "Depends"))
    src = [f for f in deb_files(dkms) if f.startswith("/usr/src/daedalus-v4l2-")]
    assert any(f.endswith("/dkms.conf") for f in src), src
    assert not any(f.endswith((".o", ".ko", ".cmd")) for f in src), src


# --- installing into clean Debian roots ------------------------------------------

class DebRoot:
    """A throw-away Debian root unpacked from packaging/debroot.sh's cached
    tarball. Every command runs chrooted in its own mount namespace, so the
    proc/dev/bind mounts vanish with it and the tree can simply be deleted."""

    def __init__(self, release: str, where: Path):
        self.release = release
        self.path = where / "root"
        tar = run([str(REPO / "packaging/debroot.sh"), release, "clean"], stderr=None).stdout.split()[-1]
        self.path.mkdir()
        run(["tar", "-C", str(self.path), "--numeric-owner", "-xpf", tar])
        shutil.copy("/etc/resolv.conf", self.path / "etc/resolv.conf")
        self.archives = paths.CACHE / "apt-archives" / release
        self.archives.mkdir(parents=True, exist_ok=True)
        self.binds: list[tuple[Path, str]] = [(self.archives, "/var/cache/apt/archives")]

    def bind(self, host: Path, inside: str | None = None) -> str:
        inside = inside or str(host)
        self.binds.append((host, inside))
        return inside

    def run(self, cmd: str, check: bool = True, timeout: float = 1800) -> subprocess.CompletedProcess:
        mounts = ['mount -t proc proc "$R/proc"', 'mount --rbind /dev "$R/dev"',
                  'mount -t tmpfs tmpfs "$R/tmp"']
        for host, inside in self.binds:
            mounts.append(f'mkdir -p "$R{inside}" && mount --bind "{host}" "$R{inside}"')
        script = "set -e; " + "; ".join(mounts) + '; exec chroot "$R" /usr/bin/env -i ' \
            "PATH=/usr/sbin:/usr/bin:/sbin:/bin HOME=/root LC_ALL=C.UTF-8 DEBIAN_FRONTEND=noninteractive " \
            '/bin/sh -c "$1"'
        env = dict(os.environ, R=str(self.path))
        return run(["unshare", "--mount", "--propagation", "private", "--", "/bin/sh", "-c", script, "sh", cmd],
                   check=check, env=env, timeout=timeout)

    def copy_in(self, files: list[Path]) -> list[str]:
        dest = self.path / "tmp-debs"
        dest.mkdir(exist_ok=True)
        for f in files:
            shutil.copy(f, dest)
        return [f"/tmp-debs/{f.name}" for f in files]


def install_stock_headers(root: DebRoot) -> None:
    """Debian's stock 6.12 amd64 headers (bookworm: from backports, which is
    dropped again so that everything else comes from bookworm proper)."""
    if root.release == "bookworm":
        bpo = root.path / "etc/apt/sources.list.d/backports.list"
        bpo.write_text("deb http://deb.debian.org/debian bookworm-backports main\n")
        root.run("apt-get update -q && apt-get install -y -q linux-headers-amd64/bookworm-backports")
        bpo.unlink()
    root.run("apt-get update -q && apt-get install -y -q linux-headers-amd64")


@pytest.fixture(scope="module", params=["bookworm", "trixie"])
def installed(request, debs, tmp_path_factory):
    """A clean root of the release with Debian's stock 6.12 amd64 headers and
    then both packages installed, as a user would with `apt install ./*.deb`."""
    release = request.param
    pkgs = debs(release)
    root = DebRoot(release, tmp_path_factory.mktemp(f"install-{release}"))
    install_stock_headers(root)
    inside = root.copy_in([pkgs["daedalus-v4l2-dkms"], pkgs["daedalus-v4l2d"]])
    res = root.run("apt-get install -y -q " + " ".join(inside))
    root.install_log = res.stdout
    yield root
    shutil.rmtree(root.path.parent, ignore_errors=True)


def test_installed_files_user_unit(installed):
    root = installed
    for f in ("usr/bin/daedalus-v4l2d", "usr/bin/daedalus-decode", "usr/bin/daedalus-bench",
              "usr/lib/daedalus/libdaedalus_fourier_cpu.so", "etc/daedalus/daedalus-v4l2d.toml",
              "usr/lib/udev/rules.d/70-daedalus-v4l2.rules", "usr/lib/modules-load.d/daedalus-v4l2.conf"):
        assert (root.path / f).exists(), f
    passwd = root.run("getent passwd daedalus").stdout.strip().split(":")
    assert passwd[0] == "daedalus" and 0 < int(passwd[2]) < 1000, passwd
    assert passwd[6] == "/usr/sbin/nologin", passwd
    # enabled by the package (dh_installsystemd), as apt would leave it on a real system
    wants = root.path / "etc/systemd/system/multi-user.target.wants/daedalus-v4l2d.service"
    assert wants.is_symlink(), root.install_log[-3000:]
    # the config is a conffile: local edits survive upgrades
    conffiles = (root.path / "var/lib/dpkg/info/daedalus-v4l2d.conffiles").read_text()
    assert "/etc/daedalus/daedalus-v4l2d.toml" in conffiles


def test_installed_unit_verify_and_exposure(installed):
    root = installed
    res = root.run("systemd-analyze verify daedalus-v4l2d.service", check=False)
    assert res.returncode == 0 and not res.stdout.strip(), res.stdout
    res = root.run("systemd-analyze security --offline=yes --no-pager daedalus-v4l2d.service")
    score = exposure(res.stdout)
    version = root.run("systemctl --version").stdout.split()[1]
    assert version == {"bookworm": "252", "trixie": "257"}[root.release], version
    report.figure(f"systemd-analyze security exposure (systemd {version}, {root.release} root)", f"{score}")
    assert score <= MAX_EXPOSURE, res.stdout


def test_installed_udev_rules_parse(installed):
    root = installed
    if root.run("udevadm verify --help", check=False).returncode != 0:
        # udevadm verify came with systemd 254: Debian 13 has it, Debian 12 not
        assert root.release == "bookworm"
        return
    res = root.run("udevadm verify --resolve-names=never /usr/lib/udev/rules.d/70-daedalus-v4l2.rules")
    assert "Success" in res.stdout or res.returncode == 0, res.stdout


def dkms_module(root: DebRoot) -> str:
    status = root.run("dkms status").stdout
    m = re.search(r"^(daedalus-v4l2)[/,] ?([^,:\s]+)", status, re.M)
    assert m, "module not added to DKMS:\n" + status
    return f"{m.group(1)}/{m.group(2)}"


def test_dkms_refuses_stock_headers(installed):
    """Debian's stock amd64 kernel has no V4L2 mem2mem: DKMS must skip it,
    and the package installation must not fail because of it."""
    root = installed
    kver = root.run("ls /usr/src | sed -n 's/^linux-headers-\\(6\\.12\\.[^ ]*-amd64\\)$/\\1/p'").stdout.split()
    assert kver, "stock headers missing"
    kconfig = (root.path / f"usr/src/linux-headers-{kver[0]}/.config").read_text()
    assert "CONFIG_V4L2_MEM2MEM_DEV=" not in kconfig, "stock headers have mem2mem: pick another refusal case"
    module = dkms_module(root)
    res = root.run(f"dkms build {module} -k {kver[0]}", check=False)
    assert res.returncode != 0, res.stdout
    assert "BUILD_EXCLUSIVE" in res.stdout or "not designed to be built" in res.stdout, res.stdout
    assert not list(root.path.glob(f"var/lib/dkms/daedalus-v4l2/*/{kver[0]}/*/module/*.ko*")), res.stdout


def test_dkms_builds_against_guest_kernel(installed):
    """The guest's 6.12 tree (ci/guest-kernel/build.sh) has V4L2 mem2mem as a
    module: DKMS builds daedalus_v4l2.ko against it."""
    root = installed
    kdir = paths.guest_kernel("release")
    kver = paths.kernel_release(kdir)
    src = root.bind(kdir / "src")
    module = dkms_module(root)
    res = root.run(f"dkms build {module} -k {kver} --kernelsourcedir {src}", check=False)
    built = list(root.path.glob(f"var/lib/dkms/daedalus-v4l2/*/{kver}/*/module/daedalus_v4l2.ko*"))
    if res.returncode != 0 or not built:
        logs = list(root.path.glob("var/lib/dkms/daedalus-v4l2/*/build/make.log"))
        log = logs[0].read_text()[-4000:] if logs else ""
        pytest.fail(f"dkms build failed ({res.returncode}):\n{res.stdout[-3000:]}\n{log}")
    modinfo = run(["modinfo", "-F", "vermagic", str(built[0])]).stdout
    assert modinfo.startswith(kver + " "), modinfo


# --- arm64: apt resolves the packages against Debian arm64, qemu-user runs them ---
#
# No arm64 root is *installed* here: that needs arm64 maintainer scripts run
# through binfmt_misc, which this container does not have (and registering
# qemu there would change the host kernel for everyone). Instead apt resolves
# both packages' Depends against the release's arm64 archive exactly as
# `apt install ./*.deb` on a Pi would, everything is unpacked, and the
# binaries run under qemu-aarch64 with that tree as their library prefix.
# qemu-user gives the guest the host's 4K pages (its -p option cannot change
# that), so the Pi 5's 16K pages are not exercised here; the daemon takes the
# page size from sysconf(_SC_PAGESIZE) and never assumes 4096.

class Unpacked(NamedTuple):
    release: str
    path: Path


@pytest.fixture(scope="module", params=["bookworm", "trixie"])
def arm64_unpacked(request, debs, tmp_path_factory):
    """Both arm64 packages plus their dependency closure from Debian arm64,
    unpacked (mmdebstrap --variant=extract: apt resolves, nothing runs)."""
    release = request.param
    pkgs = debs(release, "arm64")
    work = tmp_path_factory.mktemp(f"arm64-{release}")
    root = work / "root"
    # mmdebstrap wants local .debs visible at the same path inside the
    # target as well; a copy there is enough (nothing is installed). The
    # extract variant keeps no .debs to cache: apt downloads the closure
    # (a minute, mostly the -dkms package's compiler) on every run.
    local = [shutil.copy(pkgs[name], work) for name in ("daedalus-v4l2d", "daedalus-v4l2-dkms")]
    copy_in = f'mkdir -p "$1{work}" && cp {" ".join(local)} "$1{work}/"'
    # a private mount namespace: nothing mmdebstrap mounts outlives it
    run(["unshare", "--mount", "--propagation", "private", "--",
         "mmdebstrap", "--variant=extract", "--architectures=arm64",
         # the /bin, /lib, /sbin -> usr/ links every Debian 12/13 system has
         # (the extract variant does not unpack base-files' set-up)
         "--hook-dir=/usr/share/mmdebstrap/hooks/merged-usr",
         f"--setup-hook={copy_in}", *(f"--include={d}" for d in local),
         release, str(root), MIRROR])
    yield Unpacked(release, root)
    shutil.rmtree(work, ignore_errors=True)


def qemu_arm64(root: Path, exe: str, *args: str, **kw) -> subprocess.CompletedProcess:
    """Runs /exe of the unpacked tree under qemu-aarch64; -L makes the dynamic
    loader, the libraries and every absolute path the program opens resolve
    inside the tree first."""
    return run(["qemu-aarch64", "-L", str(root), str(root / exe.lstrip("/")), *args], check=False,
               timeout=300, **kw)


def test_arm64_depends_cover_the_libraries(arm64_unpacked):
    """Every library the arm64 binaries link was brought in by the packages'
    Depends (and is an arm64 library)."""
    release, root = arm64_unpacked
    libdirs = [root / "lib/aarch64-linux-gnu", root / "usr/lib/aarch64-linux-gnu", root / "lib"]
    for f in ("usr/bin/daedalus-v4l2d", "usr/bin/daedalus-bench", "usr/lib/daedalus/libdaedalus_fourier_cpu.so"):
        needed = re.findall(r"\(NEEDED\)\s+Shared library: \[([^\]]+)\]", run(["readelf", "-d", str(root / f)]).stdout)
        assert needed, f
        for lib in needed:
            found = [d / lib for d in libdirs if (d / lib).exists()]
            assert found, f"{f}: {lib} not brought in by the Depends"
            assert "AArch64" in run(["readelf", "-h", str(found[0].resolve())]).stdout, found[0]
    assert list(root.glob(f"usr/lib/aarch64-linux-gnu/libavcodec.so.{AVCODEC[release][-2:]}*"))


def test_arm64_daemon_runs_under_qemu(arm64_unpacked):
    root = arm64_unpacked.path
    res = qemu_arm64(root, "/usr/bin/daedalus-v4l2d", "--version")
    version = tomllib.loads((REPO / "Cargo.toml").read_text())["workspace"]["package"]["version"]
    assert res.returncode == 0 and res.stdout.strip() == f"daedalus-v4l2d {version}", res.stdout
    res = qemu_arm64(root, "/usr/bin/daedalus-v4l2d", "--check-config", "--config", "/etc/daedalus/daedalus-v4l2d.toml")
    assert res.returncode == 0 and "OK" in res.stdout, res.stdout
    res = qemu_arm64(root, "/usr/bin/daedalus-decode", "--help")
    assert res.returncode == 0, res.stdout


def test_arm64_plugin_self_test_under_qemu(arm64_unpacked):
    """The packaged plugin loads in the packaged daemon and passes its
    bit-exact self-test against the daemon's CPU path (NEON kernels on both
    sides); the daemon then gives up on the absent channel device at once."""
    root = arm64_unpacked.path
    plugin = "/usr/lib/daedalus/libdaedalus_fourier_cpu.so"
    (root / "plugin-check.toml").write_text(
        'device = "/dev/daedalus-v4l2-absent"\n'
        "[timeouts]\ndevice_wait_ms = 0\n"
        f'[plugin]\npath = "{plugin}"\nself_test = true\n')
    res = qemu_arm64(root, "/usr/bin/daedalus-v4l2d", "--config", "/plugin-check.toml")
    assert re.search(rf"pixel conversion: plugin .* from {re.escape(plugin)}", res.stdout), res.stdout
    assert "falling back" not in res.stdout, res.stdout
    assert res.returncode != 0 and "daedalus-v4l2-absent" in res.stdout, res.stdout
    # the control: a plugin that corrupts one byte is caught and the daemon
    # keeps its own NEON path
    res = qemu_arm64(root, "/usr/bin/daedalus-v4l2d", "--config", "/plugin-check.toml",
                     env=dict(os.environ, DAEDALUS_FOURIER_FAULT="mismatch"))
    assert re.search(r"plugin not used, falling back to cpu-neon: .*self-test of nv12_interleave", res.stdout), \
        res.stdout
