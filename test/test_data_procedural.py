"""Procedural generator: exact flow (warping image 2 back reconstructs image 1), determinism,
occlusion-aware valid mask, Flying Chairs export."""

import numpy as np
import pytest

from flownet_ros.data.procedural import ProceduralFlowDataset, export_chairs, render_pair
from flownet_ros.flow import read_flo
from flownet_ros.flow.warping import inside_mask, warp_backward

SIZE = (96, 128)


@pytest.fixture(scope="module")
def samples():
    ds = ProceduralFlowDataset(size=SIZE, length=8, seed=3)
    return [ds[i] for i in range(len(ds))]


def test_item_format(samples):
    s = samples[0]
    assert set(s) == {"img1", "img2", "flow", "valid"}
    assert s["img1"].shape == SIZE + (3,) and s["img1"].dtype == np.uint8
    assert s["img2"].shape == SIZE + (3,) and s["img2"].dtype == np.uint8
    assert s["flow"].shape == SIZE + (2,) and s["flow"].dtype == np.float32
    assert s["valid"].shape == SIZE and s["valid"].dtype == bool
    assert all(np.isfinite(x["flow"]).all() for x in samples)


def test_deterministic_per_seed_and_index():
    a = ProceduralFlowDataset(size=SIZE, length=5, seed=7)
    b = ProceduralFlowDataset(size=SIZE, length=5, seed=7)
    for key in ("img1", "img2", "flow", "valid"):
        np.testing.assert_array_equal(a[4][key], b[4][key])
        np.testing.assert_array_equal(a[4][key], render_pair([7, 4], SIZE)[key])
    assert not np.array_equal(a[3]["img1"], a[4]["img1"])
    assert not np.array_equal(a[3]["flow"], ProceduralFlowDataset(size=SIZE, length=5, seed=8)[3]["flow"])


def test_warping_image2_by_flow_reconstructs_image1(samples):
    """On valid pixels the only differences are texture resampling (both frames are bilinear
    renderings of the same textures at different sub-pixel positions, and warping image 2 back
    interpolates once more) and uint8 rounding. That error is small on smooth texture and larger
    on hard step edges, so: per-pair median below 3 grey levels, mean over pairs below 3, and far
    below the error of zero flow or of a flow off by 3 px."""
    means = []
    for s in samples:
        warped = warp_backward(s["img2"], s["flow"])
        err = np.abs(warped - s["img1"].astype(np.float32)).mean(axis=2)
        valid = s["valid"]
        assert valid.mean() > 0.4
        assert np.median(err[valid]) < 3.0
        means.append(err[valid].mean())
        zero = np.abs(s["img2"].astype(np.float32) - s["img1"]).mean(axis=2)
        if np.abs(s["flow"][valid]).max() > 2:
            assert zero[valid].mean() > 2 * err[valid].mean()
        off = s["flow"] + np.float32(3.0)
        ok = valid & inside_mask(off)
        assert np.abs(warp_backward(s["img2"], off) - s["img1"]).mean(axis=2)[ok].mean() > 1.5 * err[valid].mean()
    assert np.mean(means) < 3.0


def test_occluded_pixels_are_the_ones_that_do_not_match(samples):
    occ_err, valid_err = [], []
    for s in samples:
        warped = warp_backward(s["img2"], s["flow"])
        err = np.abs(warped - s["img1"].astype(np.float32)).mean(axis=2)
        occluded = inside_mask(s["flow"]) & ~s["valid"]
        occ_err.append(err[occluded])
        valid_err.append(err[s["valid"]])
    occ, val = np.concatenate(occ_err), np.concatenate(valid_err)
    assert occ.size > 100  # objects do occlude each other and the background
    assert occ.mean() > 3 * val.mean()


def test_valid_mask_marks_pixels_leaving_the_image(samples):
    for s in samples:
        assert not (s["valid"] & ~inside_mask(s["flow"])).any()


def test_background_only_translation_is_exact():
    """No objects, pure translation: flow is constant and valid is exactly the in-image set."""
    cfg = dict(min_objects=0, max_objects=0, bg_rotation_deg=0.0, bg_log_scale=0.0, blur_prob=0.0)
    s = ProceduralFlowDataset(size=SIZE, length=1, seed=1, **cfg)[0]
    f = s["flow"]
    np.testing.assert_allclose(f - f[0, 0], 0, atol=1e-4)
    assert np.linalg.norm(f[0, 0]) > 0.1
    np.testing.assert_array_equal(s["valid"], inside_mask(f))


def test_objects_have_their_own_motion(samples):
    distinct = [len(np.unique(np.round(s["flow"][s["valid"]], 1), axis=0)) for s in samples]
    assert max(distinct) > 100  # rotation/scale fields plus several independently moving layers


def test_bad_arguments():
    with pytest.raises(TypeError, match="bogus"):
        ProceduralFlowDataset(size=SIZE, length=2, bogus=1)
    with pytest.raises(ValueError):
        ProceduralFlowDataset(size=(4, 4), length=2)
    with pytest.raises(IndexError):
        ProceduralFlowDataset(size=SIZE, length=2)[2]


def test_export_chairs_layout(tmp_path):
    import cv2
    split = export_chairs(tmp_path / "chairs", n=4, size=(64, 80), seed=5)
    assert split.name == "FlyingChairs_train_val.txt"
    assert split.read_text().split() == ["1", "1", "1", "2"]
    ds = ProceduralFlowDataset(size=(64, 80), length=4, seed=5)
    for i in range(4):
        stem = tmp_path / "chairs" / f"{i + 1:05d}"
        np.testing.assert_array_equal(read_flo(f"{stem}_flow.flo"), ds[i]["flow"])
        img1 = cv2.imread(f"{stem}_img1.ppm")[:, :, ::-1]
        np.testing.assert_array_equal(img1, ds[i]["img1"])


def test_independent_of_opencv_threads():
    """Data loader workers may run OpenCV with any thread count; pairs must not change."""
    import cv2
    before = cv2.getNumThreads()
    try:
        cv2.setNumThreads(1)
        a = render_pair([1, 2], (240, 320))  # large enough for OpenCV to split work across threads
        cv2.setNumThreads(4)
        b = render_pair([1, 2], (240, 320))
    finally:
        cv2.setNumThreads(before)
    for key in a:
        np.testing.assert_array_equal(a[key], b[key])
