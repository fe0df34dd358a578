"""Readers for public optical flow datasets and for list files of (img1, img2, flow) paths.

Every reader is a torch ``Dataset`` whose item is ``{'img1': uint8 [H,W,3] RGB, 'img2': same,
'flow': float32 [H,W,2] pixels, 'valid': bool [H,W]}``. Pairs are listed when the dataset is
built (a missing file raises FileNotFoundError naming it then); files are decoded when an item is
read (a corrupt file raises DatasetError / FlowFileError naming it; both are ValueErrors).

Layouts (see docs/data.md):
- Flying Chairs: ``<root>/NNNNN_img1.ppm``, ``NNNNN_img2.ppm``, ``NNNNN_flow.flo`` (also under
  ``<root>/data/``), split list ``FlyingChairs_train_val.txt`` ('1' train, '2' validation).
- MPI Sintel: ``<root>/training/{clean,final}/<scene>/frame_%04d.png`` and
  ``<root>/training/flow/<scene>/frame_%04d.flo`` (optional ``training/occlusions``).
- KITTI 2015: ``<root>/training/image_2/NNNNNN_1{0,1}.png``, ``flow_occ`` / ``flow_noc``;
  KITTI 2012 uses ``colored_0`` for the images.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Tuple, Union

import cv2
import numpy as np
from torch.utils.data import Dataset

from flownet_ros.flow.io import read_flow

PathLike = Union[str, "os.PathLike[str]"]
Pair = Tuple[Path, Path, Path]


class DatasetError(ValueError):
    """A dataset file or list is corrupt or does not fit (sizes, list lines). The message names the file."""


def read_image(path: PathLike) -> np.ndarray:
    """Read an image file -> uint8 [H,W,3] RGB (grey is replicated, alpha dropped, 16-bit scaled)."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: image file not found")
    img = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
    if img is None:
        raise DatasetError(f"{path}: cannot decode image (corrupt or unsupported format)")
    if img.dtype == np.uint16:
        img = (img >> 8).astype(np.uint8)
    elif img.dtype != np.uint8:
        raise DatasetError(f"{path}: unsupported image dtype {img.dtype}")
    if img.ndim == 2:
        return np.ascontiguousarray(np.repeat(img[:, :, None], 3, axis=2))
    if img.shape[2] == 4:
        img = img[:, :, :3]
    if img.shape[2] != 3:
        raise DatasetError(f"{path}: expected 1, 3 or 4 channels, got {img.shape[2]}")
    return np.ascontiguousarray(img[:, :, ::-1])


def _require(path: Path, what: str) -> Path:
    if not path.is_file():
        raise FileNotFoundError(f"{path}: {what} not found")
    return path


class FlowPairDataset(Dataset):
    """A list of (img1, img2, flow file) paths read on access; flow files are ``.flo`` or KITTI ``.png``."""

    def __init__(self, pairs: Sequence[Pair], name: str = "flow pairs"):
        self.pairs: List[Pair] = [tuple(Path(p) for p in pair) for pair in pairs]
        self.name = name

    def __len__(self) -> int:
        return len(self.pairs)

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.name!r}, {len(self)} pairs)"

    def valid_mask(self, index: int, flow_valid: np.ndarray) -> np.ndarray:
        """Hook for readers with extra masks (e.g. Sintel occlusions)."""
        return flow_valid

    def __getitem__(self, index: int) -> Dict[str, np.ndarray]:
        if not -len(self) <= index < len(self):
            raise IndexError(f"index {index} out of range for {len(self)} pairs in {self.name}")
        p1, p2, pf = self.pairs[index]
        img1, img2 = read_image(p1), read_image(p2)
        flow, valid = read_flow(pf)
        if img1.shape != img2.shape:
            raise DatasetError(f"{p1} and {p2}: image sizes differ ({img1.shape[:2]} vs {img2.shape[:2]})")
        if flow.shape[:2] != img1.shape[:2]:
            raise DatasetError(f"{pf}: flow size {flow.shape[:2]} does not match image {p1} {img1.shape[:2]}")
        return {"img1": img1, "img2": img2, "flow": flow, "valid": self.valid_mask(index, valid)}


class FlyingChairs(FlowPairDataset):
    """Flying Chairs. ``split``: 'train' ('1' lines), 'val' ('2' lines) or 'all'.

    ``split_file`` defaults to ``FlyingChairs_train_val.txt`` in ``root``, its ``data/`` folder
    or its parent (the official release keeps it next to ``data/``).
    """

    SPLITS = {"train": "1", "val": "2", "validation": "2"}

    def __init__(self, root: PathLike, split: str = "train", split_file: Optional[PathLike] = None):
        root = Path(root)
        folder = root / "data" if (root / "data").is_dir() and not any(root.glob("*_img1.ppm")) else root
        if not folder.is_dir():
            raise FileNotFoundError(f"{root}: Flying Chairs folder not found")
        firsts = sorted(folder.glob("*_img1.ppm"))
        if not firsts:
            raise FileNotFoundError(f"{folder}: no Flying Chairs pairs (*_img1.ppm) found")
        pairs = []
        for p1 in firsts:
            stem = p1.name[:-len("_img1.ppm")]
            pairs.append((p1, _require(folder / f"{stem}_img2.ppm", "second image"),
                          _require(folder / f"{stem}_flow.flo", "flow file")))
        if split != "all":
            if split not in self.SPLITS:
                raise DatasetError(f"split must be 'train', 'val' or 'all', got {split!r}")
            if split_file is None:
                candidates = [folder / "FlyingChairs_train_val.txt", root / "FlyingChairs_train_val.txt",
                              root.parent / "FlyingChairs_train_val.txt"]
                found = [c for c in candidates if c.is_file()]
                if not found:
                    raise FileNotFoundError(f"{candidates[0]}: Flying Chairs split list not found (also looked "
                                            f"in {root} and {root.parent}); pass split_file or split='all'")
                split_file = found[0]
            labels = self._read_split(Path(split_file), len(pairs))
            want = self.SPLITS[split]
            pairs = [p for p, lab in zip(pairs, labels) if lab == want]
        super().__init__(pairs, f"Flying Chairs {split} at {folder}")

    @staticmethod
    def _read_split(path: Path, n: int) -> List[str]:
        _require(path, "Flying Chairs split list")
        labels = path.read_text().split()
        if len(labels) != n:
            raise DatasetError(f"{path}: {len(labels)} split entries for {n} image pairs")
        bad = sorted(set(labels) - {"1", "2"})
        if bad:
            raise DatasetError(f"{path}: split entries must be '1' or '2', found {bad[:5]}")
        return labels


def _training_dir(root: Path) -> Path:
    return root / "training" if (root / "training").is_dir() else root


class Sintel(FlowPairDataset):
    """MPI Sintel training set, pass ``'clean'`` or ``'final'``; pairs (frame i, i+1) with flow i.

    ``occlusions=True`` marks occluded pixels (``training/occlusions``, 255 = occluded) invalid.
    """

    def __init__(self, root: PathLike, dstype: str = "clean", occlusions: bool = False,
                 scenes: Optional[Sequence[str]] = None):
        if dstype not in ("clean", "final"):
            raise DatasetError(f"Sintel pass must be 'clean' or 'final', got {dstype!r}")
        train = _training_dir(Path(root))
        img_root, flow_root = train / dstype, train / "flow"
        for d in (img_root, flow_root):
            if not d.is_dir():
                raise FileNotFoundError(f"{d}: Sintel folder not found")
        scene_dirs = sorted(d for d in img_root.iterdir() if d.is_dir())
        if scenes is not None:
            scene_dirs = [d for d in scene_dirs if d.name in set(scenes)]
        pairs, self.occlusion_files = [], []
        for scene in scene_dirs:
            frames = sorted(scene.glob("frame_*.png"))
            for f1, f2 in zip(frames[:-1], frames[1:]):
                flo = _require(flow_root / scene.name / (f1.stem + ".flo"), "Sintel flow file")
                pairs.append((f1, f2, flo))
                if occlusions:
                    self.occlusion_files.append(_require(train / "occlusions" / scene.name / f1.name,
                                                         "Sintel occlusion mask"))
        if not pairs:
            raise FileNotFoundError(f"{img_root}: no Sintel frame pairs found")
        self.occlusions = occlusions
        super().__init__(pairs, f"Sintel {dstype} at {train}")

    def valid_mask(self, index: int, flow_valid: np.ndarray) -> np.ndarray:
        if not self.occlusions:
            return flow_valid
        occ = read_image(self.occlusion_files[index])[:, :, 0]
        if occ.shape != flow_valid.shape:
            raise DatasetError(f"{self.occlusion_files[index]}: size {occ.shape} does not match the flow")
        return flow_valid & (occ < 128)


class KITTI(FlowPairDataset):
    """KITTI 2015 (``version=2015``, images in ``image_2``) or 2012 (``colored_0``) training flow.

    ``occ=True`` uses ``flow_occ`` (all pixels with ground truth), False uses ``flow_noc``.
    """

    def __init__(self, root: PathLike, version: int = 2015, occ: bool = True):
        if int(version) not in (2012, 2015):
            raise DatasetError(f"KITTI version must be 2012 or 2015, got {version!r}")
        train = _training_dir(Path(root))
        img_dir = train / ("image_2" if int(version) == 2015 else "colored_0")
        flow_dir = train / ("flow_occ" if occ else "flow_noc")
        for d in (img_dir, flow_dir):
            if not d.is_dir():
                raise FileNotFoundError(f"{d}: KITTI {version} folder not found")
        pairs = []
        for flo in sorted(flow_dir.glob("*_10.png")):
            frame = flo.name[:-len("_10.png")]
            pairs.append((_require(img_dir / f"{frame}_10.png", "KITTI first image"),
                          _require(img_dir / f"{frame}_11.png", "KITTI second image"), flo))
        if not pairs:
            raise FileNotFoundError(f"{flow_dir}: no KITTI flow files (*_10.png) found")
        super().__init__(pairs, f"KITTI {version} {'occ' if occ else 'noc'} at {train}")


class FlowListDataset(FlowPairDataset):
    """Pairs listed in a text file, one ``img1 img2 flow`` per line (whitespace separated, ``#``
    comments). Relative paths are relative to ``root`` (default: the list file's folder)."""

    def __init__(self, list_file: PathLike, root: Optional[PathLike] = None):
        list_file = _require(Path(list_file), "flow list file")
        base = Path(root) if root is not None else list_file.parent
        pairs = []
        for lineno, line in enumerate(list_file.read_text().splitlines(), start=1):
            line = line.split("#", 1)[0].strip()
            if not line:
                continue
            parts = line.split()
            if len(parts) != 3:
                raise DatasetError(f"{list_file}:{lineno}: expected 3 paths (img1 img2 flow), got {len(parts)}")
            paths = [Path(p) if Path(p).is_absolute() else base / p for p in parts]
            for p, what in zip(paths, ("first image", "second image", "flow file")):
                _require(p, f"{what} listed in {list_file}:{lineno}")
            pairs.append(tuple(paths))
        if not pairs:
            raise DatasetError(f"{list_file}: no pairs listed")
        super().__init__(pairs, f"list {list_file}")
