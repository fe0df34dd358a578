"""Augmentation keeps images and flow consistent; photometric changes leave the flow untouched."""

import numpy as np
import pytest

from flownet_ros.data.augment import Augmentor, sample_flow
from flownet_ros.data.procedural import ProceduralFlowDataset
from flownet_ros.flow.warping import inside_mask, warp_backward

SIZE = (96, 128)
CROP = (64, 96)


@pytest.fixture(scope="module")
def samples():
    ds = ProceduralFlowDataset(size=SIZE, length=6, seed=11)
    return [ds[i] for i in range(len(ds))]


def _valid_error(s):
    err = np.abs(warp_backward(s["img2"], s["flow"]) - s["img1"].astype(np.float32)).mean(axis=2)
    return err[s["valid"]]


def test_geometric_augmentation_keeps_flow_consistent(samples):
    """Same honest bound as for the generator itself: each image is resampled once more, so
    the per-pair median stays below 2 grey levels and the mean over pairs below 2.5; a flow that is
    off by 2 px (or the un-transformed flow) does far worse."""
    aug = Augmentor(crop=CROP, photometric=False)
    means = []
    for i, s in enumerate(samples):
        for j in range(3):
            out = aug(s, np.random.default_rng([i, j]))
            assert out["img1"].shape == CROP + (3,) and out["img1"].dtype == np.uint8
            assert out["flow"].shape == CROP + (2,) and out["flow"].dtype == np.float32
            assert out["valid"].shape == CROP and out["valid"].dtype == bool
            assert not (out["valid"] & ~inside_mask(out["flow"])).any()
            if out["valid"].mean() < 0.05:
                continue
            err = _valid_error(out)
            assert np.median(err) < 2.0
            means.append(err.mean())
            bad = dict(out, flow=out["flow"] + np.float32(2.0))
            bad["valid"] = out["valid"] & inside_mask(bad["flow"])
            assert _valid_error(bad).mean() > 1.5 * err.mean()
    assert len(means) >= 10
    assert np.mean(means) < 2.5


def test_flow_is_transformed_by_scale_and_rotation():
    """Background-only pure translation (flow constant t): after zoom s of both images (no
    relative transform) the flow is s * t; with a rotation r it is s * R(r) t: constant, of
    length s |t|, turned by at most the rotation range."""
    s = ProceduralFlowDataset(size=SIZE, length=1, seed=2, min_objects=0, max_objects=0, bg_rotation_deg=0.0,
                              bg_log_scale=0.0, blur_prob=0.0)[0]
    t = s["flow"][0, 0].astype(np.float64)
    fixed = dict(crop=CROP, photometric=False, scale=(1.5, 1.5), rel_translate=0.0, rel_rotate=0.0,
                 rel_scale=(1.0, 1.0))
    out = Augmentor(rotate=0.0, **fixed)(s, np.random.default_rng(0))
    assert out["valid"].mean() > 0.5
    np.testing.assert_allclose(out["flow"][out["valid"]], np.broadcast_to(1.5 * t, (out["valid"].sum(), 2)),
                               atol=1e-3)
    out = Augmentor(rotate=30.0, **fixed)(s, np.random.default_rng(1))
    f = out["flow"][out["valid"]]
    np.testing.assert_allclose(f, np.broadcast_to(f[0], f.shape), atol=1e-3)
    assert np.linalg.norm(f[0]) == pytest.approx(1.5 * np.linalg.norm(t), rel=1e-4)
    turn = np.degrees(np.arctan2(f[0, 1], f[0, 0]) - np.arctan2(t[1], t[0]))
    turn = (turn + 180) % 360 - 180
    assert 0.01 < abs(turn) <= 30.0


def test_relative_transform_moves_image2_only():
    """A relative translation of image 2 alone adds exactly that translation to the flow."""
    s = ProceduralFlowDataset(size=SIZE, length=1, seed=2, min_objects=0, max_objects=0, bg_rotation_deg=0.0,
                              bg_log_scale=0.0, blur_prob=0.0)[0]
    base = dict(crop=CROP, photometric=False, translate=0.0, rotate=0.0, scale=(1.0, 1.0), rel_rotate=0.0,
                rel_scale=(1.0, 1.0))
    plain = Augmentor(rel_translate=0.0, **base)(s, np.random.default_rng(0))
    moved = Augmentor(rel_translate=0.1, **base)(s, np.random.default_rng(0))
    np.testing.assert_array_equal(plain["img1"], moved["img1"])
    assert not np.array_equal(plain["img2"], moved["img2"])
    both = plain["valid"] & moved["valid"]
    d = moved["flow"][both] - plain["flow"][both]
    np.testing.assert_allclose(d, np.broadcast_to(d[0], d.shape), atol=1e-3)
    assert 0 < np.abs(d[0]).max() <= 0.1 * max(CROP) + 1e-3
    assert np.median(_valid_error(moved)) < 3.0


def test_plain_crop_is_exact():
    rng = np.random.default_rng(0)
    img1 = rng.integers(0, 256, (40, 50, 3), dtype=np.uint8)
    flow = rng.normal(0, 3, (40, 50, 2)).astype(np.float32)
    s = {"img1": img1, "img2": img1[::-1].copy(), "flow": flow, "valid": np.ones((40, 50), bool)}
    out = Augmentor(crop=(20, 30), geometric=False, photometric=False)(s, np.random.default_rng(5))
    # find the crop offset from image 1 and check the others use the same one
    found = [(y, x) for y in range(21) for x in range(21) if np.array_equal(img1[y:y + 20, x:x + 30], out["img1"])]
    assert len(found) == 1
    y, x = found[0]
    np.testing.assert_array_equal(out["img2"], s["img2"][y:y + 20, x:x + 30])
    np.testing.assert_array_equal(out["flow"][out["valid"]], flow[y:y + 20, x:x + 30][out["valid"]])
    assert not (out["valid"] & ~inside_mask(out["flow"])).any()
    with pytest.raises(ValueError, match="larger"):
        Augmentor(crop=(60, 30), geometric=False)(s, np.random.default_rng(0))


def test_photometric_leaves_flow_untouched_and_changes_images(samples):
    s = samples[0]
    aug = Augmentor(crop=None, geometric=False)
    out = aug(s, np.random.default_rng(3))
    assert out["flow"] is s["flow"] and out["valid"] is s["valid"]
    assert out["img1"].dtype == np.uint8 and out["img1"].shape == s["img1"].shape
    assert np.abs(out["img1"].astype(int) - s["img1"]).mean() > 1.0
    # both images get the same change: without noise and relative change,
    # brightness constancy survives, so the warp error stays far below the change itself
    quiet = Augmentor(crop=None, geometric=False, noise=(0, 0), rel_brightness=0, rel_colour=0)
    for k in range(4):
        q = quiet(s, np.random.default_rng(k))
        change = np.abs(q["img1"].astype(int) - s["img1"]).mean()
        assert _valid_error(q).mean() < 0.25 * change
    # without noise, relative change and gamma the transform is the same monotone map for both
    exact = Augmentor(crop=None, geometric=False, noise=(0, 0), rel_brightness=0, rel_colour=0)
    o2 = exact({"img1": s["img1"], "img2": s["img1"].copy(), "flow": s["flow"], "valid": s["valid"]},
               np.random.default_rng(4))
    np.testing.assert_array_equal(o2["img1"], o2["img2"])
    assert s["img1"] is samples[0]["img1"]  # input untouched


def test_sample_flow_uses_nearest_across_motion_boundaries():
    flow = np.zeros((4, 4, 2), np.float32)
    flow[:, 2:, 0] = 10.0  # a motion boundary between columns 1 and 2
    valid = np.ones((4, 4), bool)
    f, ok = sample_flow(flow, valid, np.array([[1.4, 1.6, 0.5, 2.5]]), np.array([[1.0, 1.0, 1.0, 1.0]]))
    np.testing.assert_allclose(f[0, :, 0], [0.0, 10.0, 0.0, 10.0])
    assert ok.all()
    valid[1, 0] = False
    f, ok = sample_flow(flow, valid, np.array([[0.5, 3.5, 2.0]]), np.array([[1.0, 1.0, 1.0]]))
    assert list(ok[0]) == [False, False, True]  # invalid neighbour; outside the image


def test_bad_parameters():
    with pytest.raises(ValueError):
        Augmentor(scale=(2.0, 1.0))
    with pytest.raises(ValueError):
        Augmentor(crop=(0, 10))
    with pytest.raises(ValueError):
        Augmentor(colour=(0.0, 1.0))
