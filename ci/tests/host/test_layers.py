"""The Yocto layer (meta-daedalus/) and the Buildroot external tree
(br2-external/), checked offline: oelint-adv on every recipe, the generated
crates.inc against Cargo.lock, the kas pins, and the rules of Buildroot's
utils/check-package that need no Buildroot checkout. The full checks
(bitbake -p / -n with the pinned layers, Buildroot's own check-package and
show-info) are in docs/yocto.md and docs/buildroot.md; they need checkouts
this suite does not make.
"""

import json
import re
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest
import yaml

from ci.harness import paths

REPO = paths.REPO
LAYER = REPO / "meta-daedalus"
BR2 = REPO / "br2-external"
CRATES_INC = LAYER / "recipes-multimedia/daedalus-v4l2d/daedalus-v4l2d-crates.inc"
DAEMON_RECIPE = LAYER / "recipes-multimedia/daedalus-v4l2d/daedalus-v4l2d_0.1.0.bb"
BR_DAEMON_MK = BR2 / "package/daedalus-v4l2d/daedalus-v4l2d.mk"
KAS_DIR = LAYER / "kas"
VENV_BIN = Path(sys.executable).parent
CRATES_IO = "registry+https://github.com/rust-lang/crates.io-index"

# What every image installs (the names all packagings agreed on).
BINARIES = ["daedalus-v4l2d", "daedalus-decode", "daedalus-bench", "daedalus-chan-fault"]
PLUGIN = "libdaedalus_fourier_cpu.so"


def recipe_files():
    return sorted(p for p in LAYER.rglob("*") if p.suffix in (".bb", ".bbappend", ".bbclass"))


def bitbake_assignments(path: Path) -> dict[str, str]:
    """VAR = "value" assignments of a recipe, continuation lines joined
    (enough for our own recipes; not a bitbake parser)."""
    text = re.sub(r"\\\n", " ", path.read_text())
    out = {}
    for m in re.finditer(r'^([A-Za-z0-9_:${}\[\]-]+)\s*(\?\?=|\?=|:=|\+=|=\+|=)\s*"(.*)"\s*$', text, re.M):
        out.setdefault(m.group(1), "")
        out[m.group(1)] = (out[m.group(1)] + " " + m.group(3)).strip()
    return out


# --- Yocto -----------------------------------------------------------------


def test_oelint_adv_clean():
    """oelint-adv --release scarthgap: no error or warning on any recipe,
    bbappend or class. Not checked: the generated crates.inc (bitbake's own
    generator writes `SRC_URI += " \\`, which oelint dislikes), the
    HOMEPAGE reachability rule (needs network) and the BBCLASSEXTEND
    suggestion (nothing here is meant for native or SDK builds)."""
    oelint = VENV_BIN / "oelint-adv"
    assert oelint.exists(), f"{oelint} missing: run ci/setup-host.sh"
    files = [str(p) for p in recipe_files()]
    res = subprocess.run(
        [str(oelint), "--release", "scarthgap", "--quiet", "--exit-zero", "--jobs", "1",
         "--suppress", "oelint.vars.homepageping", "--suppress", "oelint.var.bbclassextend",
         f"--constantmods=+{LAYER / 'oelint-constants.json'}", *files],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, cwd=LAYER, check=True)
    findings = [line for line in res.stdout.splitlines() if re.search(r":(error|warning|info):", line)]
    blocking = [f for f in findings
                if re.search(r":(error|warning):", f) and "-crates.inc:" not in f]
    assert findings or files, "oelint-adv printed nothing and checked nothing"
    assert not blocking, "\n".join(blocking)


def parse_crates_inc(text: str) -> tuple[set[tuple[str, str]], dict[tuple[str, str], str]]:
    uris = set(re.findall(r"crate://crates\.io/([^/\s]+)/([^\s\\]+)", text))
    # The checksum key is "<name>-<version>" (the crate fetcher's default
    # name); versions may contain '-' themselves (1.2.1+spec-1.1.0).
    by_key = {f"{name}-{ver}": (name, ver) for name, ver in uris}
    sums = {}
    for key, digest in re.findall(r'^SRC_URI\[([^\]]+)\.sha256sum\]\s*=\s*"([0-9a-f]{64})"', text, re.M):
        sums[by_key.get(key, (key, "?"))] = digest
    return uris, sums


def crates_mismatch(lock_text: str, inc_text: str) -> str:
    """What differs between Cargo.lock's crates.io packages and a crates.inc
    ("" when they list the same crates with the same checksums)."""
    lock = tomllib.loads(lock_text)
    registry = [p for p in lock["package"] if "source" in p]
    foreign = [f"{p['name']} {p['source']}" for p in registry if p["source"] != CRATES_IO]
    if foreign:
        return f"git/other-registry crates need their own SRC_URI entries: {foreign}"
    want = {(p["name"], p["version"]): p["checksum"] for p in registry}
    uris, sums = parse_crates_inc(inc_text)
    if uris != set(want):
        return f"missing {sorted(set(want) - uris)}, extra {sorted(uris - set(want))}"
    bad = sorted(k for k in want if sums.get(k) != want[k])
    return f"checksums differ: {bad}" if bad else ""


def test_crates_inc_lists_exactly_cargo_lock():
    """Every crates.io package of Cargo.lock, with its checksum, and nothing
    else: a dependency change without a regenerated .inc fails here instead
    of in a Yocto build (meta-daedalus/scripts/update-crates-inc.py)."""
    problem = crates_mismatch((REPO / "Cargo.lock").read_text(), CRATES_INC.read_text())
    assert not problem, f"regenerate with meta-daedalus/scripts/update-crates-inc.py: {problem}"


def test_crates_check_catches_drift():
    """The check above fails on a bumped crate and on a changed checksum."""
    lock_text = (REPO / "Cargo.lock").read_text()
    inc_text = CRATES_INC.read_text()
    crate = next(p for p in tomllib.loads(lock_text)["package"] if "source" in p)
    bumped = inc_text.replace(f"crate://crates.io/{crate['name']}/{crate['version']} ",
                              f"crate://crates.io/{crate['name']}/{crate['version']}.1 ")
    assert "missing" in crates_mismatch(lock_text, bumped)
    tampered = inc_text.replace(crate["checksum"], "0" * 64)
    assert "checksums differ" in crates_mismatch(lock_text, tampered)


def test_module_names_agree():
    """Kbuild builds daedalus_v4l2.ko, which modules-load.d loads and the
    daemon package recommends (kernel-module-daedalus-v4l2)."""
    kbuild = (REPO / "kernel/Kbuild").read_text()
    assert re.search(r"^obj-m\s*[:+]?=\s*daedalus_v4l2\.o", kbuild, re.M)
    load = (REPO / "rootfs-overlay/usr/lib/modules-load.d/daedalus-v4l2.conf").read_text()
    assert "daedalus_v4l2" in [line.strip() for line in load.splitlines()]
    assert 'RRECOMMENDS:${PN} = "kernel-module-daedalus-v4l2"' in DAEMON_RECIPE.read_text()


def test_crates_inc_generator_is_current():
    """The checked-in file is byte-for-byte the generator's output."""
    res = subprocess.run([sys.executable, str(LAYER / "scripts/update-crates-inc.py"), "--check"],
                         stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    assert res.returncode == 0, res.stdout


def test_layer_conf():
    conf = bitbake_assignments(LAYER / "conf/layer.conf")
    assert "scarthgap" in conf["LAYERSERIES_COMPAT_daedalus"].split()
    deps = conf["LAYERDEPENDS_daedalus"].split()
    assert {"core", "raspberrypi", "multimedia-layer"} <= set(deps)


def test_distro_pins_kernel_and_ffmpeg():
    distro = bitbake_assignments(LAYER / "conf/distro/daedalus.conf")
    assert distro["PREFERRED_VERSION_linux-raspberrypi"] == "6.12.%"
    assert distro["PREFERRED_PROVIDER_ffmpeg"] == "ffmpeg"
    assert distro["INIT_MANAGER"] == "systemd"
    ffmpeg = (LAYER / "recipes-multimedia/ffmpeg/ffmpeg_%.bbappend").read_text()
    assert "--enable-libdav1d" in ffmpeg and 'PACKAGECONFIG:append = " dav1d"' in ffmpeg


def test_recipe_versions_follow_workspace():
    version = tomllib.loads((REPO / "Cargo.toml").read_text())["workspace"]["package"]["version"]
    for recipe in LAYER.rglob("daedalus-*_*.bb"):
        assert recipe.stem.rsplit("_", 1)[1] == version, f"{recipe.name}: workspace is {version}"
    mk = BR_DAEMON_MK.read_text() + (BR2 / "package/daedalus-v4l2-module/daedalus-v4l2-module.mk").read_text()
    assert re.findall(r"_VERSION = (\S+)", mk) == [version, version]


def test_recipe_sources_exist():
    """Every file:// the recipes fetch is a path of this repository (the
    layer builds the checkout it lives in): a rename elsewhere breaks here."""
    for recipe in recipe_files():
        src = bitbake_assignments(recipe).get("SRC_URI", "")
        for path in re.findall(r"file://([^;\s]+)", src):
            assert (REPO / path).exists(), f"{recipe.name}: file://{path} not in the repository"


def cargo_targets() -> tuple[set[str], set[str]]:
    cargo = shutil.which("cargo") or str(Path.home() / ".cargo/bin/cargo")
    res = subprocess.run([cargo, "metadata", "--no-deps", "--format-version", "1", "--offline"],
                         cwd=REPO, stdout=subprocess.PIPE, text=True, check=True)
    bins, cdylibs = set(), set()
    for pkg in json.loads(res.stdout)["packages"]:
        for target in pkg["targets"]:
            if "bin" in target["kind"]:
                bins.add(target["name"])
            if "cdylib" in target["kind"]:
                cdylibs.add(f"lib{target['name'].replace('-', '_')}.so")
    return bins, cdylibs


def test_installed_binaries_are_built_by_the_workspace():
    """Both image builders install exactly the agreed binaries and plugin,
    and the workspace builds each of them."""
    bins, cdylibs = cargo_targets()
    assert set(BINARIES) <= bins, f"workspace builds {sorted(bins)}"
    assert PLUGIN in cdylibs, f"workspace cdylibs: {sorted(cdylibs)}"
    recipe = DAEMON_RECIPE.read_text()
    mk = BR_DAEMON_MK.read_text()
    for name in BINARIES + [PLUGIN]:
        assert name in recipe, f"meta-daedalus does not install {name}"
        assert name in mk, f"br2-external does not install {name}"


def load_kas(path: Path) -> dict:
    return yaml.safe_load(path.read_text())


@pytest.mark.parametrize("kas_file", sorted(p.name for p in KAS_DIR.glob("*.yml")))
def test_kas_config(kas_file):
    """Valid against kas's own schema, every remote layer pinned by branch
    and full commit, includes present, and each pin named in docs/yocto.md."""
    from jsonschema import validate
    from kas.configschema import CONFIGSCHEMA

    config = load_kas(KAS_DIR / kas_file)
    validate(config, CONFIGSCHEMA)
    for inc in config["header"].get("includes", []):
        assert (KAS_DIR / inc).exists(), inc
    docs = (REPO / "docs/yocto.md").read_text()
    for name, repo in config.get("repos", {}).items():
        if repo is None or "url" not in repo:
            continue  # this repository
        assert re.fullmatch(r"[0-9a-f]{40}", repo.get("commit", "")), f"{name}: not pinned by commit"
        assert repo.get("branch"), f"{name}: no branch (kas checks the commit is on it)"
        assert repo["commit"] in docs, f"{name}: pin {repo['commit']} not recorded in docs/yocto.md"


def test_rauc_variant_is_consistent():
    """The bundle's compatible string is the one system.conf accepts, and
    the wks the image switches to exists."""
    dyn = LAYER / "dynamic-layers/rauc-raspberrypi"
    system_conf = (dyn / "recipes-core/rauc/files/system.conf").read_text()
    bundle = bitbake_assignments(next((dyn / "recipes-core/bundles").glob("daedalus-bundle_*.bb")))
    compatible = re.search(r"^compatible=(\S+)", system_conf, re.M).group(1)
    assert bundle["RAUC_BUNDLE_COMPATIBLE"] == compatible
    image = (dyn / "recipes-core/images/daedalus-image.bbappend").read_text()
    wks = re.search(r"'(daedalus-[\w-]+\.wks\.in)'", image).group(1)
    assert (LAYER / "files/wic" / wks).exists()
    devices = re.findall(r"^device=/dev/mmcblk0p(\d)", system_conf, re.M)
    assert devices == ["2", "3"], "slots must be the wks' 2nd and 3rd partitions"


# --- Buildroot ---------------------------------------------------------------


def br_packages() -> list[Path]:
    return sorted(p for p in (BR2 / "package").iterdir() if p.is_dir())


def test_br2_external_layout():
    """external.desc names the tree; Config.in and external.mk pull in every
    package (Buildroot manual, "Keeping customizations outside of Buildroot")."""
    desc = dict(line.split(": ", 1) for line in (BR2 / "external.desc").read_text().splitlines() if line)
    assert desc["name"] == "DAEDALUS" and desc["desc"]
    assert re.fullmatch(r"[A-Za-z0-9_]+", desc["name"])
    config_in = (BR2 / "Config.in").read_text()
    for pkg in br_packages():
        assert f'source "$BR2_EXTERNAL_DAEDALUS_PATH/package/{pkg.name}/Config.in"' in config_in
    assert "include $(sort $(wildcard $(BR2_EXTERNAL_DAEDALUS_PATH)/package/*/*.mk))" in \
        (BR2 / "external.mk").read_text()


MK_HEADER = "#" * 80 + "\n#\n# {name}\n#\n" + "#" * 80 + "\n\n"
# Variables a package .mk may set without its own prefix.
MK_FOREIGN_OK = re.compile(r"^(LINUX_NEEDS_MODULES|BR_[A-Z_]+)$")


@pytest.mark.parametrize("pkg", [p.name for p in br_packages()])
def test_br_package_mk(pkg):
    """check-package's .mk rules: the 80-hash header, variables prefixed with
    the package name, no trailing whitespace, tabs for recipe lines, the
    infrastructure $(eval ...) last, a .hash for anything downloaded."""
    mk = (BR2 / "package" / pkg / f"{pkg}.mk").read_text()
    prefix = pkg.upper().replace("-", "_")
    assert mk.startswith(MK_HEADER.format(name=pkg)), "header must be 80 '#', '#', '# name', '#', 80 '#'"
    lines = mk.splitlines()
    assert lines[-1].startswith("$(eval $(") and lines[-1].endswith("-package))")
    for n, line in enumerate(lines, 1):
        assert line == line.rstrip(), f"{pkg}.mk:{n}: trailing whitespace"
        m = re.match(r"^(?:define\s+)?([A-Z][A-Z0-9_]*)\s*(\+=|:=|\?=|=|$)", line)
        if m and not line.startswith(("\t", " ")):
            var = m.group(1)
            assert var.startswith(prefix + "_") or MK_FOREIGN_OK.match(var), \
                f"{pkg}.mk:{n}: {var} not prefixed with {prefix}_"
    site_method = re.search(rf"^{prefix}_SITE_METHOD = (\S+)", mk, re.M)
    if not site_method or site_method.group(1) != "local":
        assert (BR2 / "package" / pkg / f"{pkg}.hash").exists(), f"{pkg}: downloaded, needs {pkg}.hash"


@pytest.mark.parametrize("pkg", [p.name for p in br_packages()])
def test_br_package_config_in(pkg):
    """check-package's Config.in rules: first symbol BR2_PACKAGE_<NAME>, a
    help text indented with a tab and two spaces, wrapped at 62 columns,
    tabs for attributes."""
    text = (BR2 / "package" / pkg / "Config.in").read_text()
    symbol = "BR2_PACKAGE_" + pkg.upper().replace("-", "_")
    assert re.search(rf"^config {symbol}\n\tbool \"{pkg}\"\n", text, re.M), \
        f"first entry must be `config {symbol}` with prompt \"{pkg}\""
    in_help = False
    helps = 0
    for n, line in enumerate(text.splitlines(), 1):
        assert line == line.rstrip(), f"Config.in:{n}: trailing whitespace"
        if line.startswith("\thelp"):
            in_help, helps = True, helps + 1
            continue
        if in_help and line and not line.startswith("\t  "):
            in_help = False
        if in_help and line:
            assert len(line.expandtabs(8)) <= 72, f"Config.in:{n}: help text over 62 columns"
        elif line and not line.startswith(("config ", "menuconfig ", "comment ", "if ", "endif",
                                           "choice", "endchoice", "menu ", "endmenu", "source ")):
            assert line.startswith("\t") and not line.startswith("\t "), f"Config.in:{n}: indent with one tab"
    configs = len(re.findall(r"^(?:menu)?config ", text, re.M))
    assert helps == configs, "every config entry needs a help text"


@pytest.mark.parametrize("defconfig", sorted(p.name for p in (BR2 / "configs").glob("*_defconfig")))
def test_br_defconfig(defconfig):
    """Only BR2_ options, the shared rootfs-overlay, systemd, our packages,
    and every file of this tree it names exists."""
    text = (BR2 / "configs" / defconfig).read_text()
    for n, line in enumerate(text.splitlines(), 1):
        assert re.fullmatch(r"BR2_[A-Za-z0-9_]+=.+|# BR2_[A-Za-z0-9_]+ is not set", line), f"{defconfig}:{n}: {line}"
    for opt in ("BR2_INIT_SYSTEMD=y", "BR2_PACKAGE_DAEDALUS_V4L2_MODULE=y", "BR2_PACKAGE_DAEDALUS_V4L2D=y",
                'BR2_ROOTFS_OVERLAY="$(BR2_EXTERNAL_DAEDALUS_PATH)/../rootfs-overlay"'):
        assert opt in text.splitlines(), f"{defconfig} lacks {opt}"
    for rel in re.findall(r"\$\(BR2_EXTERNAL_DAEDALUS_PATH\)/([^\s\"]+)", text):
        assert (BR2 / rel).exists(), f"{defconfig} names missing {rel}"


def test_br_scripts_executable():
    for script in BR2.rglob("*.sh"):
        assert script.stat().st_mode & 0o111, f"{script} not executable"
        assert script.read_text().startswith("#!/bin/"), f"{script}: no shebang"


def test_br_hash_files_well_formed():
    for hash_file in BR2.rglob("*.hash"):
        for line in hash_file.read_text().splitlines():
            if line and not line.startswith("#"):
                assert re.fullmatch(r"sha256  [0-9a-f]{64}  \S+", line), f"{hash_file}: {line}"
