"""Augmentation keeps images and flow consistent; photometric changes (on the device, in torch) leave the
flow untouched."""

import numpy as np
import pytest
import torch
from helpers import NO_CAMERA

from flownet_ros.data.augment import Augmentor, sample_flow
from flownet_ros.data.generator import GeneratedFlowDataset
from flownet_ros.data.photometric import PaperAugmentConfig, paper_augment
from flownet_ros.flow.warping import inside_mask, warp_backward

SIZE = (96, 128)
CROP = (64, 96)


@pytest.fixture(scope="module")
def samples():
    ds = GeneratedFlowDataset(size=SIZE, length=6, seed=11, photos="skimage", camera=NO_CAMERA, defocus_prob=0.0)
    return [ds[i] for i in range(len(ds))]


def translation_only(seed=2):
    """One generated pair whose flow is a single translation (no objects, rotation, zoom, perspective)."""
    return GeneratedFlowDataset(size=SIZE, length=1, seed=seed, photos="skimage", camera=NO_CAMERA, defocus_prob=0.0,
                                min_objects=0, max_objects=0, rotation_deg=(0.0, 0.0), log_zoom=(0.0, 0.0),
                                perspective=0.0, static_camera_prob=0.0, motion_px=(8.0, 12.0))[0]


def _valid_error(s):
    err = np.abs(warp_backward(s["img2"], s["flow"]) - s["img1"].astype(np.float32)).mean(axis=2)
    return err[s["valid"]]


def test_geometric_augmentation_keeps_flow_consistent(samples):
    """Same honest bound as for the generator itself: each image is resampled once more, so
    the per-pair median stays below 2 grey levels and the mean over pairs below 2.5; a flow that is
    off by 2 px (or the un-transformed flow) does far worse."""
    aug = Augmentor(crop=CROP)
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
    s = translation_only()
    t = s["flow"][0, 0].astype(np.float64)
    fixed = dict(crop=CROP, scale=(1.5, 1.5), rel_translate=0.0, rel_rotate=0.0,
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
    s = translation_only()
    base = dict(crop=CROP, translate=0.0, rotate=0.0, scale=(1.0, 1.0), rel_rotate=0.0,
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
    out = Augmentor(crop=(20, 30), geometric=False)(s, np.random.default_rng(5))
    # find the crop offset from image 1 and check the others use the same one
    found = [(y, x) for y in range(21) for x in range(21) if np.array_equal(img1[y:y + 20, x:x + 30], out["img1"])]
    assert len(found) == 1
    y, x = found[0]
    np.testing.assert_array_equal(out["img2"], s["img2"][y:y + 20, x:x + 30])
    np.testing.assert_array_equal(out["flow"][out["valid"]], flow[y:y + 20, x:x + 30][out["valid"]])
    assert not (out["valid"] & ~inside_mask(out["flow"])).any()
    with pytest.raises(ValueError, match="larger"):
        Augmentor(crop=(60, 30), geometric=False)(s, np.random.default_rng(0))


def _tensors(*imgs):
    return [torch.from_numpy(i).permute(2, 0, 1)[None].float() / 255.0 for i in imgs]


def test_photometric_changes_images_alike_and_keeps_brightness_constancy(samples):
    """The paper's photometric augmentation (torch, batched) changes both frames; with the same parameters
    for both (no noise, no relative change) the warp error stays far below the change itself, and a frame
    pair of identical images stays identical. The flow is not an input: it cannot change."""
    s = samples[0]
    a, b = _tensors(s["img1"], s["img2"])
    out1, _ = paper_augment(a, b, [np.random.default_rng(3)])
    assert out1.shape == a.shape and (out1 - a).abs().mean() * 255 > 1.0
    quiet = PaperAugmentConfig(noise=(0.0, 0.0), rel_brightness=0.0, rel_colour=0.0)
    for k in range(4):
        q1, q2 = paper_augment(a, b, [np.random.default_rng(k)], quiet)
        img1, img2 = ((t[0].permute(1, 2, 0).numpy() * 255).round().astype(np.uint8) for t in (q1, q2))
        change = np.abs(img1.astype(int) - s["img1"]).mean()
        err = np.abs(warp_backward(img2, s["flow"]) - img1.astype(np.float32)).mean(axis=2)[s["valid"]]
        assert err.mean() < 0.25 * change
    same1, same2 = paper_augment(a, a.clone(), [np.random.default_rng(4)], quiet)
    torch.testing.assert_close(same1, same2, rtol=0, atol=0)
    # one generator per sample: a sample's change does not depend on its batch (up to float rounding:
    # batched reductions may sum in another order; 1e-6 is 1/4000 of a grey level)
    both1, _ = paper_augment(torch.cat([a, b]), torch.cat([b, a]), [np.random.default_rng(3), np.random.default_rng(9)])
    torch.testing.assert_close(both1[:1], out1, rtol=0, atol=1e-6)


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
        Augmentor(rel_scale=(0.0, 1.0))
