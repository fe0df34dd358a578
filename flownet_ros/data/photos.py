"""Real photographs for training and evaluation, fetched from pinned Debian packages.

``python -m flownet_ros.data.photos fetch [--set train|eval|all]`` downloads each package of the set
from deb.debian.org (exact version, SHA-256 checked), extracts only the files listed here (pure
Python: a .deb is an ``ar`` archive holding ``data.tar.xz``), and deletes the .deb. Files land in
``<data root>/photos/<package>/`` (``flownet_ros.paths.data_root``, ``$FLOWNET_ROS_DATA`` to move it)
with the package's ``copyright`` file next to them. The same bytes on every machine, Debian or Ubuntu.

Sets (licences in models/README.md and in each copyright file):

* ``train``: 31 photographs: lomiri-wallpapers-16.04 (14, CC-BY / CC-BY-SA / CC0), mate-backgrounds
  nature (12, GPL-2+), palapeli-data (5, public domain / GFDL); plus scikit-image's photos that ship in
  its wheel (astronaut, coffee, chelsea, rocket; public domain / CC0), which need no download.
* ``eval`` (held out, never trained on): 11 photographs of plasma-workspace-wallpapers (LGPL-3 / GPL-2+),
  and OpenCV's sample data from opencv-doc (Middlebury Aloe stereo pair with its disparity, Oxford
  Graffiti 1 -> 3 with its homography). scikit-image's stereo motorcycle pair (in its wheel) is
  evaluation material too, and so is every GNOME background image: neither is ever used for training.
"""

from __future__ import annotations

import argparse
import fnmatch
import hashlib
import io
import shutil
import sys
import tarfile
import tempfile
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np

from flownet_ros.paths import data_root

MIRROR = "http://deb.debian.org/debian/"
PLASMA_PHOTOS = ("BytheWater", "ColdRipple", "ColorfulCups", "DarkestHour", "EveningGlow", "FallenLeaf", "Grey",
                 "Kite", "OneStandsOut", "Path", "summer_1am")  # the photographs among its wallpapers
OPENCV_DATA = ("aloeL.jpg", "aloeR.jpg", "aloeGT.png", "graf1.png", "graf3.png", "H1to3p.xml")
SKIMAGE_TRAIN_PHOTOS = ("astronaut", "coffee", "chelsea", "rocket")


@dataclass(frozen=True)
class DebianSource:
    """One pinned Debian package and the member paths (fnmatch patterns) to keep from it."""

    package: str
    pool_path: str  # below MIRROR
    sha256: str
    size: int
    licence: str
    members: Tuple[str, ...]

    @property
    def copyright(self) -> str:
        return f"usr/share/doc/{self.package}/copyright"


SOURCES: Dict[str, DebianSource] = {s.package: s for s in (
    DebianSource("lomiri-wallpapers-16.04", "pool/main/l/lomiri-wallpapers/lomiri-wallpapers-16.04_20.04.0-2_all.deb",
                 "a99ff6a3bfe451e4cc0682ecb3cc82e71740626d59e4845ae34a0a0e45421eab", 15783184,
                 "CC-BY-4.0 / CC-BY-SA-4.0 / CC0 (per photo, see copyright)",
                 tuple(f"usr/share/backgrounds/{n}_by_*.jpg" for n in (
                     "Bridge", "Dragonfly", "Picture_0B", "Picture_1A", "Wine", "aitzgorri", "analogpattern",
                     "free", "friends", "greentock", "life", "picosdeeuropa", "seeding", "sunset"))),
    DebianSource("mate-backgrounds", "pool/main/m/mate-backgrounds/mate-backgrounds_1.26.0-1_all.deb",
                 "7bf4c2209f34b4f61ba6d24c8b58c28b361e82e4b943aae6d42c030169af9e04", 46638500, "GPL-2+",
                 ("usr/share/backgrounds/mate/nature/*.jpg",)),
    DebianSource("palapeli-data", "pool/main/p/palapeli/palapeli-data_22.12.3-1_all.deb",
                 "69a15dce2ac25ed8708ac518cd0cee5f4eb0c70ed15da2fdb8899a19ac0ee058", 2136268,
                 "public domain / GFDL (per photo, see the .desktop files)",
                 ("usr/share/palapeli/collection/*.jpg", "usr/share/palapeli/collection/*.desktop")),
    DebianSource("plasma-workspace-wallpapers",
                 "pool/main/p/plasma-workspace-wallpapers/plasma-workspace-wallpapers_5.27.5-2_all.deb",
                 "32cd18b71c8c938a18b3b351f217c02ac590e323caa3cf322fbb875ce8892f8b", 94047772,
                 "LGPL-3 (metadata) / GPL-2+ (Debian copyright)",
                 tuple(f"usr/share/wallpapers/{n}/contents/images/2560x1600.jpg" for n in PLASMA_PHOTOS)),
    DebianSource("opencv-doc", "pool/main/o/opencv/opencv-doc_4.6.0+dfsg-12_all.deb",
                 "4b12681df35878207ac7097dc66184b2ae552e4bf4ddd2af04a0f03ed0b8682a", 95715012,
                 "BSD-3-Clause (OpenCV); Middlebury and Oxford data as distributed with OpenCV",
                 tuple(f"usr/share/doc/opencv-doc/examples/data/{n}" for n in OPENCV_DATA)),
)}
#: photo set -> packages; the packages of 'eval' never enter training.
SETS: Dict[str, Tuple[str, ...]] = {
    "train": ("lomiri-wallpapers-16.04", "mate-backgrounds", "palapeli-data"),
    "eval": ("plasma-workspace-wallpapers", "opencv-doc"),
}
PHOTO_SUFFIXES = (".jpg", ".png")


class PhotoError(RuntimeError):
    """A photo set is missing, or a download failed its checksum or could not be unpacked."""


def photos_dir(root: Optional[Path] = None) -> Path:
    return Path(root) if root is not None else data_root() / "photos"


def package_dir(package: str, root: Optional[Path] = None) -> Path:
    return photos_dir(root) / package


def _stamp(package: str, root: Optional[Path]) -> Path:
    return package_dir(package, root) / ".complete"


def is_fetched(package: str, root: Optional[Path] = None) -> bool:
    stamp = _stamp(package, root)
    return stamp.is_file() and stamp.read_text().strip() == SOURCES[package].sha256


def _ar_members(blob: bytes) -> Dict[str, bytes]:
    """Members of a System V ``ar`` archive (the container of a .deb)."""
    if not blob.startswith(b"!<arch>\n"):
        raise ValueError("not an ar archive")
    out, pos = {}, 8
    while pos + 60 <= len(blob):
        header = blob[pos:pos + 60]
        name = header[:16].decode().strip().rstrip("/")
        size = int(header[48:58].decode().strip())
        out[name] = blob[pos + 60:pos + 60 + size]
        pos += 60 + size + (size & 1)
    return out


def extract_deb(blob: bytes, patterns: Sequence[str], dest: Path) -> List[Path]:
    """Write the members of a .deb's data archive that match ``patterns`` under ``dest`` (paths kept)."""
    data = next((v for k, v in _ar_members(blob).items() if k.startswith("data.tar")), None)
    if data is None:
        raise ValueError("no data.tar member")
    written = []
    with tarfile.open(fileobj=io.BytesIO(data), mode="r:*") as tar:
        for member in tar:
            name = member.name.lstrip("./")
            if not member.isfile() or not any(fnmatch.fnmatch(name, p) for p in patterns):
                continue
            target = dest / name
            target.parent.mkdir(parents=True, exist_ok=True)
            with tar.extractfile(member) as src, open(target, "wb") as dst:
                shutil.copyfileobj(src, dst)
            written.append(target)
    return written


def fetch_package(package: str, root: Optional[Path] = None, progress: bool = True) -> Path:
    """Download, check and unpack one source (no-op when already complete); returns its folder."""
    src = SOURCES[package]
    dest = package_dir(package, root)
    if is_fetched(package, root):
        return dest
    url = MIRROR + src.pool_path
    if progress:
        print(f"fetching {package} ({src.size / 1e6:.0f} MB) from {url}", flush=True)
    try:
        with urllib.request.urlopen(url, timeout=60) as resp:
            blob = resp.read()
    except OSError as exc:
        raise PhotoError(f"{package}: download of {url} failed: {exc}") from exc
    digest = hashlib.sha256(blob).hexdigest()
    if digest != src.sha256:
        raise PhotoError(f"{package}: {url} has SHA-256 {digest}, expected {src.sha256}")
    photos_dir(root).mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{package}.", dir=photos_dir(root)))
    try:
        files = extract_deb(blob, src.members + (src.copyright,), tmp)
        if len(files) < 2:
            raise PhotoError(f"{package}: none of {src.members} found in {url}")
        if dest.exists():
            shutil.rmtree(dest)
        dest.parent.mkdir(parents=True, exist_ok=True)
        tmp.rename(dest)
    except (ValueError, tarfile.TarError, OSError) as exc:
        raise PhotoError(f"{package}: cannot unpack {url}: {exc}") from exc
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    _stamp(package, root).write_text(src.sha256 + "\n")
    return dest


def fetch(set_name: str = "all", root: Optional[Path] = None, progress: bool = True) -> List[Path]:
    names = [p for s, pkgs in SETS.items() if set_name in (s, "all") for p in pkgs]
    if not names:
        raise ValueError(f"photo set must be one of {sorted(SETS)} or 'all', got {set_name!r}")
    return [fetch_package(p, root, progress) for p in names]


def require(package: str, root: Optional[Path] = None) -> Path:
    """The unpacked folder of ``package``; PhotoError naming the fetch command when it is missing."""
    if not is_fetched(package, root):
        set_name = next(s for s, pkgs in SETS.items() if package in pkgs)
        raise PhotoError(f"{package} is not in {package_dir(package, root)}: run "
                         f"`python -m flownet_ros.data.photos fetch --set {set_name}` (or `make data`)")
    return package_dir(package, root)


def photo_files(set_name: str, root: Optional[Path] = None) -> List[Path]:
    """Photo files of a set (downloaded packages only; OpenCV's stereo and graffiti data excluded)."""
    files = []
    for package in SETS[set_name]:
        if package == "opencv-doc":
            continue
        files += sorted(p for p in require(package, root).rglob("*") if p.suffix.lower() in PHOTO_SUFFIXES)
    return files


def skimage_photos(names: Sequence[str] = SKIMAGE_TRAIN_PHOTOS) -> List[np.ndarray]:
    """RGB uint8 photos that ship inside scikit-image's wheel (no download)."""
    from skimage import data

    return [np.ascontiguousarray(getattr(data, n)()[..., :3]) for n in names]


def load_photo(path: Path, max_side: int = 0) -> np.ndarray:
    """Photo file -> RGB uint8 [H,W,3], downscaled (area) so that its longer side is at most ``max_side``."""
    from flownet_ros.data.datasets import read_image

    img = read_image(path)
    if max_side and max(img.shape[:2]) > max_side:
        import cv2

        s = max_side / max(img.shape[:2])
        img = cv2.resize(img, (round(img.shape[1] * s), round(img.shape[0] * s)), interpolation=cv2.INTER_AREA)
    return img


def training_photos(root: Optional[Path] = None, max_side: int = 1024) -> List[np.ndarray]:
    """All training photos as RGB uint8 arrays: the 'train' set plus scikit-image's photos."""
    return [load_photo(p, max_side) for p in photo_files("train", root)] + skimage_photos()


def main(argv: Optional[Sequence[str]] = None) -> int:
    p = argparse.ArgumentParser(prog="python -m flownet_ros.data.photos", description=__doc__.split("\n")[0])
    sub = p.add_subparsers(dest="command", required=True)
    f = sub.add_parser("fetch", help="download and unpack a photo set")
    f.add_argument("--set", default="all", choices=sorted(SETS) + ["all"])
    f.add_argument("--root", type=Path, help=f"default {photos_dir()}")
    sub.add_parser("list", help="show which sets are present")
    args = p.parse_args(argv)
    if args.command == "list":
        for s, pkgs in SETS.items():
            for pkg in pkgs:
                print(f"{s:5s} {pkg:30s} {'present' if is_fetched(pkg) else 'missing'}  {package_dir(pkg)}")
        return 0
    try:
        for d in fetch(args.set, args.root):
            print(f"ok {d}")
    except PhotoError as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
