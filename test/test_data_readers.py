"""Dataset readers on small files written in each format; missing and corrupt files are named."""

import cv2
import numpy as np
import pytest

from flownet_ros.data import (
    KITTI,
    FlowListDataset,
    FlyingChairs,
    GeneratedFlowDataset,
    Sintel,
    build_dataset,
    export_chairs,
    read_image,
)
from flownet_ros.flow import FlowFileError, write_flo, write_kitti_flow

H, W = 24, 32


def _rgb(seed, h=H, w=W):
    return np.random.default_rng(seed).integers(0, 256, (h, w, 3), dtype=np.uint8)


def _write_png(path, rgb):
    path.parent.mkdir(parents=True, exist_ok=True)
    assert cv2.imwrite(str(path), rgb[:, :, ::-1])


def _check_item(item, h=H, w=W):
    assert set(item) == {"img1", "img2", "flow", "valid"}
    assert item["img1"].shape == (h, w, 3) and item["img1"].dtype == np.uint8
    assert item["img2"].shape == (h, w, 3) and item["img2"].dtype == np.uint8
    assert item["flow"].shape == (h, w, 2) and item["flow"].dtype == np.float32
    assert item["valid"].shape == (h, w) and item["valid"].dtype == bool


def test_flying_chairs_on_exported_files(tmp_path):
    root = tmp_path / "FlyingChairs_release" / "data"
    export_chairs(root, n=5, size=(H, W), seed=9, photos="skimage")
    gen = GeneratedFlowDataset(size=(H, W), length=5, seed=9, photos="skimage")
    train = FlyingChairs(root, split="train")
    val = FlyingChairs(root, split="val")
    every = FlyingChairs(root.parent, split="all")  # the release folder with data/ inside
    assert (len(train), len(val), len(every)) == (4, 1, 5)
    item = val[0]
    _check_item(item)
    np.testing.assert_array_equal(item["img1"], gen[4]["img1"])
    np.testing.assert_array_equal(item["img2"], gen[4]["img2"])
    np.testing.assert_array_equal(item["flow"], gen[4]["flow"])
    assert item["valid"].all()
    np.testing.assert_array_equal(train[1]["flow"], gen[1]["flow"])
    assert len(build_dataset({"type": "chairs", "root": str(root), "split": "val"})) == 1


def test_flying_chairs_errors(tmp_path):
    root = tmp_path / "chairs"
    export_chairs(root, n=3, size=(H, W), seed=1, photos="skimage")
    (root / "00002_flow.flo").write_bytes(b"PIEH")
    with pytest.raises(FlowFileError, match="00002_flow.flo"):
        FlyingChairs(root, split="all")[1]
    (root / "00003_img2.ppm").unlink()
    with pytest.raises(FileNotFoundError, match="00003_img2.ppm"):
        FlyingChairs(root, split="all")
    (root / "00003_img1.ppm").unlink()
    (root / "00003_flow.flo").unlink()
    with pytest.raises(ValueError, match="FlyingChairs_train_val.txt.*3 split entries for 2"):
        FlyingChairs(root, split="train")
    (root / "FlyingChairs_train_val.txt").unlink()
    with pytest.raises(FileNotFoundError, match="FlyingChairs_train_val.txt"):
        FlyingChairs(root, split="train")
    (root / "00001_img1.ppm").write_bytes(b"P6 garbage")
    with pytest.raises(ValueError, match="00001_img1.ppm"):
        FlyingChairs(root, split="all")[0]


def _make_sintel(root, scenes=("alley_1", "market_2"), frames=3):
    truth = {}
    for s, scene in enumerate(scenes):
        for i in range(1, frames + 1):
            for dstype in ("clean", "final"):
                _write_png(root / "training" / dstype / scene / f"frame_{i:04d}.png", _rgb(100 * s + i))
            if i < frames:
                flow = np.random.default_rng(s * 10 + i).normal(0, 5, (H, W, 2)).astype(np.float32)
                (root / "training" / "flow" / scene).mkdir(parents=True, exist_ok=True)
                write_flo(root / "training" / "flow" / scene / f"frame_{i:04d}.flo", flow)
                occ = np.zeros((H, W), np.uint8)
                occ[:, :5] = 255
                (root / "training" / "occlusions" / scene).mkdir(parents=True, exist_ok=True)
                cv2.imwrite(str(root / "training" / "occlusions" / scene / f"frame_{i:04d}.png"), occ)
                truth[(scene, i)] = flow
    return truth


def test_sintel(tmp_path):
    truth = _make_sintel(tmp_path)
    ds = Sintel(tmp_path, "final")
    assert len(ds) == 4
    item = ds[2]  # market_2, frames 1 -> 2
    _check_item(item)
    np.testing.assert_array_equal(item["img1"], _rgb(101))
    np.testing.assert_array_equal(item["img2"], _rgb(102))
    np.testing.assert_array_equal(item["flow"], truth[("market_2", 1)])
    assert item["valid"].all()
    occ = Sintel(tmp_path / "training", "clean", occlusions=True)[0]
    assert not occ["valid"][:, :5].any() and occ["valid"][:, 5:].all()
    assert len(Sintel(tmp_path, scenes=["alley_1"])) == 2
    with pytest.raises(ValueError):
        Sintel(tmp_path, "albedo")
    (tmp_path / "training" / "flow" / "alley_1" / "frame_0002.flo").unlink()
    with pytest.raises(FileNotFoundError, match="alley_1/frame_0002.flo"):
        Sintel(tmp_path, "clean")


@pytest.mark.parametrize("version, img_dir", [(2015, "image_2"), (2012, "colored_0")])
def test_kitti(tmp_path, version, img_dir):
    train = tmp_path / "training"
    flows = {}
    for i in range(2):
        _write_png(train / img_dir / f"{i:06d}_10.png", _rgb(i))
        _write_png(train / img_dir / f"{i:06d}_11.png", _rgb(i + 50))
        flow = np.round(np.random.default_rng(i).normal(0, 10, (H, W, 2)) * 64) / 64
        valid = np.random.default_rng(i + 7).random((H, W)) > 0.4
        for sub, v in (("flow_occ", valid), ("flow_noc", valid & (np.arange(W) > 10))):
            (train / sub).mkdir(parents=True, exist_ok=True)
            write_kitti_flow(train / sub / f"{i:06d}_10.png", flow, v)
        flows[i] = (flow.astype(np.float32), valid)
    ds = KITTI(tmp_path, version=version)
    assert len(ds) == 2
    item = ds[1]
    _check_item(item)
    np.testing.assert_array_equal(item["img2"], _rgb(51))
    np.testing.assert_array_equal(item["valid"], flows[1][1])
    np.testing.assert_array_equal(item["flow"][item["valid"]], flows[1][0][flows[1][1]])
    noc = KITTI(train, version=version, occ=False)[1]
    assert noc["valid"].sum() < item["valid"].sum() and not noc["valid"][:, :11].any()
    (train / img_dir / "000001_11.png").unlink()
    with pytest.raises(FileNotFoundError, match="000001_11.png"):
        KITTI(tmp_path, version=version)


def test_flow_list(tmp_path):
    export_chairs(tmp_path / "c", n=2, size=(H, W), seed=4, photos="skimage")
    write_kitti_flow(tmp_path / "k.png", np.ones((H, W, 2), np.float32), np.ones((H, W), bool))
    lst = tmp_path / "pairs.txt"
    lst.write_text("# img1 img2 flow\n"
                   "c/00001_img1.ppm c/00001_img2.ppm c/00001_flow.flo\n\n"
                   f"{tmp_path}/c/00002_img1.ppm c/00002_img2.ppm k.png  # KITTI-format flow\n")
    ds = build_dataset({"type": "list", "list_file": str(lst)})
    assert isinstance(ds, FlowListDataset) and len(ds) == 2
    gen = GeneratedFlowDataset(size=(H, W), length=2, seed=4, photos="skimage")
    np.testing.assert_array_equal(ds[0]["flow"], gen[0]["flow"])
    _check_item(ds[1])
    assert (ds[1]["flow"] == 1).all() and ds[1]["valid"].all()
    bad = tmp_path / "bad.txt"
    bad.write_text("c/00001_img1.ppm c/00001_img2.ppm\n")
    with pytest.raises(ValueError, match="bad.txt:1"):
        FlowListDataset(bad)
    bad.write_text("c/00001_img1.ppm c/missing.ppm k.png\n")
    with pytest.raises(FileNotFoundError, match="missing.ppm"):
        FlowListDataset(bad)
    # size mismatch between images and flow is reported with both files
    write_flo(tmp_path / "small.flo", np.zeros((4, 4, 2), np.float32))
    bad.write_text("c/00001_img1.ppm c/00001_img2.ppm small.flo\n")
    with pytest.raises(ValueError, match="small.flo"):
        FlowListDataset(bad)[0]


def test_read_image_conversions(tmp_path):
    grey = np.arange(12, dtype=np.uint8).reshape(3, 4)
    cv2.imwrite(str(tmp_path / "g.png"), grey)
    np.testing.assert_array_equal(read_image(tmp_path / "g.png"), np.repeat(grey[:, :, None], 3, 2))
    deep = (np.arange(36, dtype=np.uint16).reshape(3, 4, 3) * 1000)
    cv2.imwrite(str(tmp_path / "d.png"), deep)
    np.testing.assert_array_equal(read_image(tmp_path / "d.png"), (deep[:, :, ::-1] >> 8).astype(np.uint8))
    with pytest.raises(FileNotFoundError, match="none.png"):
        read_image(tmp_path / "none.png")


def test_build_dataset_errors():
    with pytest.raises(ValueError, match="dataset type"):
        build_dataset({"type": "imagenet"})
    with pytest.raises(TypeError, match="generated"):
        build_dataset({"type": "generated", "size": [16, 16], "colour": 3})
    ds = build_dataset({"type": "generated", "size": [16, 24], "length": 3, "seed": 1, "max_objects": 4,
                        "photos": "skimage"})
    assert len(ds) == 3 and ds[0]["img1"].shape == (16, 24, 3)


def test_photos_cli_runs_without_runpy_warning():
    """`python -m flownet_ros.data.photos` (make data) must not find its module imported by the package
    first: runpy then warns about unpredictable behaviour on every run."""
    import subprocess
    import sys

    proc = subprocess.run([sys.executable, "-W", "error::RuntimeWarning", "-m", "flownet_ros.data.photos", "list"],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0 and "RuntimeWarning" not in proc.stderr, proc.stderr[-2000:]
