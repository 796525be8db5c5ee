"""The guest image: Debian's stock kernel and a bookworm root, built from Debian's packages, cached.

Why: this host's kernel lacks the openvswitch module, ``sch_netem`` and ``sch_taprio``; Debian's
stock kernel has them (as modules). The image is everything ``tools.vm.guest`` boots under qemu:

- ``vmlinuz``: the kernel of the package ``linux-image-amd64`` depends on (``apt-get download``
  + ``dpkg -x``; never installed on the host);
- ``initrd.img``: a busybox initramfs (``recipe/initramfs-init``) that insmods virtio_pci,
  virtio_blk, ext4 and their dependencies (resolved here with ``modprobe --show-depends``), mounts
  ``/dev/vda`` and switch_roots to the agent;
- ``root.img``: ext4 made with ``mkfs.ext4 -d`` (no mount, no loop device) from an ``mmdebstrap
  --variant=minbase`` root with ``recipe/packages.txt``, the module trees of ``recipe/modules.txt``
  (depmod'ed), a fresh Open vSwitch database and ``recipe/agent`` as ``/sbin/detnet-agent``.

The cache lives in ``.cache/vm/<key>/`` of the repository (ignored by git; ``DETNET_VM_CACHE``
overrides the folder). The key is a hash of the recipe files, the kernel package and version and
``RECIPE_REVISION`` (bump it when the build steps below change), so a changed recipe or a new
stock kernel builds a new image; older images are removed after a successful build. A build runs
in ``<key>.build/`` and is renamed into place only when complete, under the machine-wide emulation
lock (two builds never race, and a build never competes with an emulation for the 2 cores).

Side effects: apt-get download, mmdebstrap (root), files under the cache folder. Failures raise
``ImageError`` with one line saying which step failed and its last line of output.
"""

from __future__ import annotations

import gzip
import hashlib
import json
import os
import shutil
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

from tools.emulation.network import emulation_lock
from tools.emulation.progress import Progress, progress

__all__ = ["HOST_TOOLS", "Image", "ImageError", "RECIPE", "RECIPE_REVISION", "SUITE", "cache_root",
           "cached_image", "ensure_image", "image_key", "missing_host_tools", "stock_kernel"]

REPO = Path(__file__).resolve().parents[2]
RECIPE = Path(__file__).resolve().parent / "recipe"
#: bump when the build steps in this module change (the recipe files are hashed by content)
RECIPE_REVISION = 2
#: the Debian release of the guest's root
SUITE = "bookworm"
#: the meta-package whose dependency is "Debian's stock kernel"
KERNEL_META = "linux-image-amd64"
#: modules the initramfs loads (with their dependencies) to reach the root disk
INITRAMFS_MODULES = ("virtio_pci", "virtio_blk", "ext4")
#: host commands a build needs, and the Debian packages that bring them
HOST_TOOLS = {"mmdebstrap": "mmdebstrap", "busybox": "busybox-static", "cpio": "cpio",
              "mkfs.ext4": "e2fsprogs", "depmod": "kmod", "modprobe": "kmod",
              "apt-get": "apt", "dpkg": "dpkg"}
#: documentation, manuals and translations are not installed into the root (saves ~40 MB)
PATH_EXCLUDES = ("/usr/share/man/*", "/usr/share/doc/*", "/usr/share/locale/*", "/usr/share/info/*")

log = progress("vm-image")


class ImageError(RuntimeError):
    """The image cannot be built; the message is one line naming the step that failed."""


@dataclass(frozen=True)
class Image:
    """A built image: its folder and the three files qemu boots, plus what it was built from."""

    folder: Path
    key: str
    kernel_release: str   # e.g. 6.1.0-57-amd64 (the guest's `uname -r`)
    manifest: dict

    @property
    def kernel(self) -> Path:
        return self.folder / "vmlinuz"

    @property
    def initrd(self) -> Path:
        return self.folder / "initrd.img"

    @property
    def root(self) -> Path:
        return self.folder / "root.img"


# ----- what the image is made of ---------------------------------------------------------------

def recipe_lines(name: str) -> list[str]:
    """The non-comment, non-empty lines of a recipe list file (``packages.txt``, ``modules.txt``)."""
    lines = (RECIPE / name).read_text().splitlines()
    return [s.strip() for s in lines if s.strip() and not s.lstrip().startswith("#")]


def _apt_query(args: list[str]) -> str:
    try:
        res = subprocess.run(["apt-cache", *args], capture_output=True, text=True, timeout=60)
    except (OSError, subprocess.TimeoutExpired) as e:
        raise ImageError(f"apt-cache {' '.join(args)}: {e}") from None
    if res.returncode != 0:
        raise ImageError(f"apt-cache {' '.join(args)} failed: {_last_line(res.stderr)}")
    return res.stdout


def stock_kernel() -> tuple[str, str]:
    """``(package, version)`` of Debian's stock kernel: what ``linux-image-amd64`` depends on.

    Read from the machine's apt lists (``apt-cache``: no network); 'newest' is what the lists say.
    """
    deps = [line.split(":", 1)[1].strip() for line in _apt_query(["depends", KERNEL_META]).splitlines()
            if line.strip().startswith("Depends:")]
    pkgs = [d for d in deps if d.startswith("linux-image-")]
    if not pkgs:
        raise ImageError(f"apt-cache depends {KERNEL_META}: no linux-image dependency "
                         "(run apt-get update?)")
    pkg = pkgs[0]
    versions = [line.split(":", 1)[1].strip() for line in
                _apt_query(["show", "--no-all-versions", pkg]).splitlines() if line.startswith("Version:")]
    if not versions:
        raise ImageError(f"apt-cache show {pkg}: no version")
    return pkg, versions[0]


def image_key(kernel: tuple[str, str]) -> str:
    """Hash of the recipe files (by name and content), the kernel package/version and the revision."""
    h = hashlib.sha256()
    h.update(f"revision {RECIPE_REVISION}\nsuite {SUITE}\nkernel {kernel[0]} {kernel[1]}\n".encode())
    for path in sorted(RECIPE.iterdir()):
        if path.is_file():
            h.update(path.name.encode() + b"\0" + path.read_bytes() + b"\0")
    return h.hexdigest()[:16]


def cache_root() -> Path:
    """Where images are cached: ``$DETNET_VM_CACHE`` or ``.cache/vm`` in the repository."""
    return Path(os.environ.get("DETNET_VM_CACHE") or REPO / ".cache" / "vm")


def _load(folder: Path) -> Image | None:
    try:
        manifest = json.loads((folder / "manifest.json").read_text())
    except (OSError, ValueError):
        return None
    img = Image(folder, manifest["key"], manifest["kernel_release"], manifest)
    return img if all(p.is_file() for p in (img.kernel, img.initrd, img.root)) else None


def cached_image(key: str | None = None) -> Image | None:
    """The cached image for ``key`` (default: the current recipe's), or None when not built."""
    key = key or image_key(stock_kernel())
    return _load(cache_root() / key)


def missing_host_tools() -> list[str]:
    """Host commands a build needs that are not on PATH, as 'cmd (package)'."""
    return [f"{cmd} ({pkg})" for cmd, pkg in HOST_TOOLS.items() if not shutil.which(cmd)]


def ensure_image(say: Progress = log) -> Image:
    """The image of the current recipe: from the cache, else built now (progress through ``say``)."""
    kernel = stock_kernel()
    key = image_key(kernel)
    img = _load(cache_root() / key)
    if img:
        return img
    with emulation_lock():
        img = _load(cache_root() / key)   # built by someone else while we waited
        if img:
            return img
        return build(key, kernel, say)


# ----- the build ---------------------------------------------------------------------------------

def _last_line(text: str) -> str:
    lines = [line.strip() for line in (text or "").splitlines() if line.strip()]
    return lines[-1] if lines else "(no output)"


def _step(what: str, cmd: list[str], timeout: float = 900, **kw) -> subprocess.CompletedProcess:
    """Run one build command; ImageError (one line) when it fails or cannot run."""
    try:
        res = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, **kw)
    except FileNotFoundError:
        raise ImageError(f"{what}: {cmd[0]} not found (install {HOST_TOOLS.get(cmd[0], cmd[0])})") from None
    except subprocess.TimeoutExpired:
        raise ImageError(f"{what}: {cmd[0]} did not finish within {timeout:g} s") from None
    if res.returncode != 0:
        raise ImageError(f"{what} failed (exit {res.returncode}): {_last_line(res.stderr or res.stdout)}")
    return res


def _du(path: Path) -> int:
    """Bytes used by the files under ``path`` (apparent sizes, no hard-link double counting)."""
    seen, total = set(), 0
    for dirpath, _dirs, files in os.walk(path):
        for name in files:
            st = os.lstat(os.path.join(dirpath, name))
            if (st.st_dev, st.st_ino) not in seen:
                seen.add((st.st_dev, st.st_ino))
                total += st.st_size
    return total


def _kernel(work: Path, pkg: str, say: Progress) -> tuple[Path, str]:
    """Download and unpack the kernel package; returns (unpacked folder, kernel release)."""
    debs = work / "debs"
    debs.mkdir()
    say(f"downloading {pkg}")
    _step("apt-get download", ["apt-get", "download", "-q", "-o", "APT::Sandbox::User=root", pkg],
          timeout=600, cwd=debs)
    deb = next(debs.glob("*.deb"))
    kdir = work / "kernel"
    say(f"unpacking {deb.name}")
    _step("dpkg -x", ["dpkg", "-x", str(deb), str(kdir)])
    releases = sorted(p.name for p in (kdir / "lib" / "modules").iterdir())
    if len(releases) != 1:
        raise ImageError(f"{deb.name}: expected one module tree, found {releases}")
    release = releases[0]
    _step("depmod (kernel)", ["depmod", "-b", str(kdir), release])
    return kdir, release


def _root(work: Path, kdir: Path, release: str, say: Progress) -> Path:
    """mmdebstrap the root, then add the modules, the OVS database and the agent."""
    root = work / "root"
    packages = recipe_lines("packages.txt")
    say(f"mmdebstrap {SUITE} minbase + {len(packages)} packages (about a minute)")
    mirror = os.environ.get("DETNET_VM_MIRROR")
    _step("mmdebstrap", ["mmdebstrap", "--variant=minbase", "--mode=root", "--quiet",
                         "--include=" + ",".join(packages),
                         *[f"--dpkgopt=path-exclude={p}" for p in PATH_EXCLUDES],
                         "--dpkgopt=path-include=/usr/share/doc/*/copyright",
                         SUITE, str(root), *([mirror] if mirror else [])], timeout=1800)
    say("adding kernel modules, the Open vSwitch database and the agent")
    src = kdir / "lib" / "modules" / release
    dst = root / "lib" / "modules" / release
    for part in recipe_lines("modules.txt"):
        s, d = src / "kernel" / part, dst / "kernel" / part
        if not s.exists():
            raise ImageError(f"recipe/modules.txt: {part} is not in {release}")
        d.parent.mkdir(parents=True, exist_ok=True)
        if s.is_dir():
            shutil.copytree(s, d, symlinks=True)
        else:
            shutil.copy2(s, d)
    for f in src.glob("modules.*"):
        if f.name in ("modules.order", "modules.builtin", "modules.builtin.modinfo"):
            shutil.copy2(f, dst / f.name)
    _step("depmod (root)", ["depmod", "-b", str(root), release])
    db = root / "etc" / "openvswitch" / "conf.db"
    db.unlink(missing_ok=True)
    _step("ovsdb-tool create", ["chroot", str(root), "ovsdb-tool", "create", "/etc/openvswitch/conf.db",
                                "/usr/share/openvswitch/vswitch.ovsschema"])
    shutil.copy2(RECIPE / "agent", root / "sbin" / "detnet-agent")
    (root / "sbin" / "detnet-agent").chmod(0o755)
    for d in ("ctl", "out", "repo"):
        (root / d).mkdir(exist_ok=True)
    (root / "etc" / "hostname").write_text("detnet-vm\n")
    with open(root / "etc" / "hosts", "a") as hosts:   # `hostname -f` (ovs-ctl) must resolve
        hosts.write("127.0.1.1\tdetnet-vm\n")
    (root / "etc" / "fstab").write_text("# the agent mounts everything (see /sbin/detnet-agent)\n")
    for junk in ("var/cache/apt", "var/lib/apt/lists"):
        shutil.rmtree(root / junk, ignore_errors=True)
        (root / junk).mkdir(parents=True, exist_ok=True)
    return root


def _initramfs(work: Path, kdir: Path, release: str, out: Path, say: Progress) -> None:
    """A busybox initramfs that insmods INITRAMFS_MODULES (dependency order) and switch_roots."""
    say("building the initramfs")
    busybox = shutil.which("busybox")
    if busybox is None:
        raise ImageError("busybox not found (install busybox-static)")
    ird = work / "initramfs"
    for d in ("bin", "lib/modules", "proc", "sys", "dev", "newroot"):
        (ird / d).mkdir(parents=True, exist_ok=True)
    shutil.copy2(busybox, ird / "bin" / "busybox")
    shutil.copy2(RECIPE / "initramfs-init", ird / "init")
    (ird / "init").chmod(0o755)
    order: list[str] = []
    for mod in INITRAMFS_MODULES:
        res = _step(f"modprobe --show-depends {mod}",
                    ["modprobe", "-d", str(kdir), "-S", release, "--show-depends", mod])
        for line in res.stdout.splitlines():
            parts = line.split()
            if len(parts) >= 2 and parts[0] == "insmod":
                name = Path(parts[1]).name
                if name not in order:
                    order.append(name)
                    shutil.copy2(parts[1], ird / "lib" / "modules" / name)
    (ird / "modules").write_text("".join(f"{m}\n" for m in order))
    files = sorted(str(p.relative_to(ird)) for p in ird.rglob("*"))
    res = subprocess.run(["cpio", "--quiet", "-o", "-H", "newc", "-R", "0:0"], cwd=ird,
                         input="\n".join(files).encode(), capture_output=True, timeout=120)
    if res.returncode != 0:
        raise ImageError(f"cpio failed (exit {res.returncode}): {_last_line(res.stderr.decode())}")
    out.write_bytes(gzip.compress(res.stdout, compresslevel=6))


def build(key: str, kernel: tuple[str, str], say: Progress = log) -> Image:
    """Build the image for ``key`` into the cache (see the module docstring); returns it."""
    if os.geteuid() != 0:
        raise ImageError("building the VM image needs root (mmdebstrap --mode=root, chroot)")
    missing = missing_host_tools()
    if missing:
        raise ImageError("cannot build the VM image, missing: " + ", ".join(missing))
    t0 = time.monotonic()
    outer = say

    def say(msg: str) -> None:   # every progress line with the build's elapsed time
        outer(f"[{time.monotonic() - t0:4.0f} s] {msg}")

    croot = cache_root()
    croot.mkdir(parents=True, exist_ok=True)
    work = croot / f"{key}.build"
    shutil.rmtree(work, ignore_errors=True)   # a failed or interrupted earlier build
    work.mkdir()
    try:
        out = work / "image"
        out.mkdir()
        say(f"building image {key} in {work} (kernel {kernel[0]} {kernel[1]})")
        kdir, release = _kernel(work, kernel[0], say)
        shutil.copy2(kdir / "boot" / f"vmlinuz-{release}", out / "vmlinuz")
        _initramfs(work, kdir, release, out / "initrd.img", say)
        root = _root(work, kdir, release, say)
        used = _du(root)
        size_mb = int(used * 1.25 / 2**20) + 256   # room for the guest's writes (they go to a snapshot)
        say(f"mkfs.ext4 -d: {used / 2**20:.0f} MB of files in a {size_mb} MB file system")
        _step("mkfs.ext4", ["mkfs.ext4", "-q", "-F", "-L", "detnet-root", "-d", str(root),
                            str(out / "root.img"), f"{size_mb}M"], timeout=900)
        manifest = {
            "key": key, "suite": SUITE, "recipe_revision": RECIPE_REVISION,
            "kernel_package": kernel[0], "kernel_version": kernel[1], "kernel_release": release,
            "packages": recipe_lines("packages.txt"), "root_files_mb": round(used / 2**20),
            "root_fs_mb": size_mb, "build_seconds": round(time.monotonic() - t0, 1),
            "built_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        }
        (out / "manifest.json").write_text(json.dumps(manifest, indent=2) + "\n")
        final = croot / key
        shutil.rmtree(final, ignore_errors=True)
        out.rename(final)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    for old in croot.iterdir():   # images of older recipes and leftovers of other builds
        if old.name != key and old.is_dir():
            shutil.rmtree(old, ignore_errors=True)
    img = _load(final)
    assert img is not None
    say(f"image {key} ready in {manifest['build_seconds']:.0f} s: {final}")
    return img
