"""Photo generator: exact flow (warping image 2 back reconstructs image 1), determinism independent of the
batch, occlusion-aware valid mask, motion statistics, camera effects, Flying Chairs export.

Uses scikit-image's photos (in its wheel), so it runs without the downloaded photo sets.
"""

import cv2
import numpy as np
import pytest
import torch
from helpers import NO_CAMERA

from flownet_ros.data.generator import GeneratedFlowDataset, SceneConfig, SceneGenerator, export_chairs
from flownet_ros.data.photos import skimage_photos
from flownet_ros.flow import read_flo
from flownet_ros.flow.warping import inside_mask, warp_backward

SIZE = (96, 128)


@pytest.fixture(scope="module")
def clean():
    """Pairs without camera effects or defocus: the renderings differ only by the motion."""
    ds = GeneratedFlowDataset(size=SIZE, length=12, seed=3, photos="skimage", camera=NO_CAMERA, defocus_prob=0.0)
    return [ds[i] for i in range(len(ds))]


def _warp_error(s, flow=None):
    flow = s["flow"] if flow is None else flow
    return np.abs(warp_backward(s["img2"], flow) - s["img1"].astype(np.float32)).mean(axis=2)


def test_item_format(clean):
    s = clean[0]
    assert set(s) == {"img1", "img2", "flow", "valid"}
    assert s["img1"].shape == SIZE + (3,) and s["img1"].dtype == np.uint8
    assert s["img2"].shape == SIZE + (3,) and s["img2"].dtype == np.uint8
    assert s["flow"].shape == SIZE + (2,) and s["flow"].dtype == np.float32
    assert s["valid"].shape == SIZE and s["valid"].dtype == bool
    assert all(np.isfinite(x["flow"]).all() for x in clean)


def test_deterministic_per_seed_and_index_whatever_the_batch():
    gen = SceneGenerator(skimage_photos(), SIZE)
    alone = gen.batch(7, [4])
    in_batch = gen.batch(7, [9, 4, 2])
    for key in ("img1", "img2", "flow", "valid"):
        torch.testing.assert_close(alone[key][0], in_batch[key][1], rtol=0, atol=0)
    again = GeneratedFlowDataset(size=SIZE, length=10, seed=7, photos="skimage")[4]
    np.testing.assert_array_equal(again["img1"], alone["img1"][0].permute(1, 2, 0).to(torch.uint8).numpy())
    assert not torch.equal(gen.batch(7, [3])["img1"], alone["img1"])
    assert not torch.equal(gen.batch(8, [4])["flow"], alone["flow"])


def test_warping_image2_by_flow_reconstructs_image1(clean):
    """On valid pixels the only differences are photo resampling (both frames are bilinear renderings
    at different sub-pixel positions, and warping image 2 back interpolates once more) and uint8
    rounding: per-pair median below 3 grey levels, mean over pairs below 3, far below a flow off by 3 px."""
    means = []
    for s in clean:
        err, valid = _warp_error(s), s["valid"]
        assert valid.mean() > 0.4
        assert np.median(err[valid]) < 3.0
        means.append(err[valid].mean())
        off = s["flow"] + np.float32(3.0)
        ok = valid & inside_mask(off)
        assert _warp_error(s, off)[ok].mean() > 1.5 * err[valid].mean()
    assert np.mean(means) < 3.0


def test_occluded_pixels_are_the_ones_that_do_not_match(clean):
    occ_err, valid_err = [], []
    for s in clean:
        err = _warp_error(s)
        occ_err.append(err[inside_mask(s["flow"]) & ~s["valid"]])
        valid_err.append(err[s["valid"]])
    occ, val = np.concatenate(occ_err), np.concatenate(valid_err)
    assert occ.size > 100  # objects do occlude each other and the background
    assert occ.mean() > 3 * val.mean()


def test_valid_mask_marks_pixels_leaving_the_image(clean):
    for s in clean:
        assert not (s["valid"] & ~inside_mask(s["flow"])).any()


def test_background_only_translation_is_exact():
    """No objects, no rotation, zoom or perspective: the flow is one vector; valid is the in-image set."""
    cfg = dict(min_objects=0, max_objects=0, rotation_deg=(0.0, 0.0), log_zoom=(0.0, 0.0), perspective=0.0,
               static_camera_prob=0.0)
    s = GeneratedFlowDataset(size=SIZE, length=1, seed=1, photos="skimage", **cfg)[0]
    f = s["flow"]
    np.testing.assert_allclose(f - f[0, 0], 0, atol=1e-3)
    assert np.linalg.norm(f[0, 0]) > 0.05
    np.testing.assert_array_equal(s["valid"], inside_mask(f))


def test_objects_have_their_own_motion(clean):
    distinct = [len(np.unique(np.round(s["flow"][s["valid"]], 1), axis=0)) for s in clean]
    assert max(distinct) > 100  # rotation/zoom/perspective fields plus independently moving layers


def test_motion_statistics_cover_small_and_large_motions():
    """Mean |flow| per pair at 512 px width: many below 5 px (where a camera usually is), a tail to
    tens of px, some still frames; horizontal larger than vertical on average."""
    gen = SceneGenerator(skimage_photos(), (64, 512 // 4), SceneConfig(max_objects=0))
    flow = gen.batch(0, range(64))["flow"] * 4  # at 512 px width
    mags = torch.linalg.vector_norm(flow, dim=1).mean(dim=(1, 2))
    assert (mags < 5).float().mean() > 0.35
    assert (mags > 20).float().mean() > 0.1 and mags.max() > 40
    assert (mags < 0.01).sum() >= 1  # a still camera
    assert flow[:, 0].abs().mean() > flow[:, 1].abs().mean()


def test_camera_effects_change_the_frames_but_not_the_flow():
    plain = GeneratedFlowDataset(size=SIZE, length=4, seed=5, photos="skimage", camera=NO_CAMERA)
    real = GeneratedFlowDataset(size=SIZE, length=4, seed=5, photos="skimage")
    for i in range(4):
        a, b = plain[i], real[i]
        np.testing.assert_array_equal(a["flow"], b["flow"])
        assert np.abs(a["img2"].astype(int) - b["img2"]).mean() > 0.5


def test_bad_arguments():
    with pytest.raises(TypeError, match="bogus"):
        GeneratedFlowDataset(size=SIZE, length=2, bogus=1)
    with pytest.raises(ValueError):
        GeneratedFlowDataset(size=(4, 4), length=2, photos="skimage")[0]
    with pytest.raises(IndexError):
        GeneratedFlowDataset(size=SIZE, length=2, photos="skimage")[2]
    with pytest.raises(ValueError, match="photos"):
        GeneratedFlowDataset(size=SIZE, length=2, photos="gnome")[0]


def test_export_chairs_layout(tmp_path):
    import cv2
    split = export_chairs(tmp_path / "chairs", n=4, size=(64, 80), seed=5, photos="skimage")
    assert split.name == "FlyingChairs_train_val.txt"
    assert split.read_text().split() == ["1", "1", "1", "2"]
    ds = GeneratedFlowDataset(size=(64, 80), length=4, seed=5, photos="skimage")
    for i in range(4):
        stem = tmp_path / "chairs" / f"{i + 1:05d}"
        np.testing.assert_array_equal(read_flo(f"{stem}_flow.flo"), ds[i]["flow"])
        np.testing.assert_array_equal(cv2.imread(f"{stem}_img1.ppm")[:, :, ::-1], ds[i]["img1"])


def test_independent_of_torch_threads():
    """Pairs must not change with the number of threads rendering them."""
    gen = SceneGenerator(skimage_photos(), (120, 160))
    before = torch.get_num_threads()
    try:
        torch.set_num_threads(1)
        a = gen.batch(1, [2])
        torch.set_num_threads(2)
        b = gen.batch(1, [2])
    finally:
        torch.set_num_threads(before)
    for key in a:
        torch.testing.assert_close(a[key], b[key], rtol=0, atol=0)


def test_layers_name_the_independently_moving_objects():
    """``layers=True``: front layer per pixel; a layer not 'independent' moves exactly with the background."""
    gen = SceneGenerator(skimage_photos(), SIZE, SceneConfig(min_objects=4, max_objects=4, static_object_prob=0.5))
    b = gen.batch(5, range(6), layers=True)
    plain = gen.batch(5, range(6))
    torch.testing.assert_close(b["flow"], plain["flow"], rtol=0, atol=0)
    assert b["layer"].shape == b["valid"].shape and b["independent"].shape == (6, 5)
    assert not b["independent"][:, 0].any() and b["independent"].any() and not b["independent"][:, 1:].all()
    ys, xs = np.mgrid[0:SIZE[0], 0:SIZE[1]]
    pix = np.stack([xs, ys], -1).astype(np.float64)
    checked = {False: 0, True: 0}
    for k in range(6):
        layer, flow = b["layer"][k].numpy(), b["flow"][k].permute(1, 2, 0).numpy().astype(np.float64)
        bg = layer == 0
        if bg.sum() < 50:
            continue
        hom, _ = cv2.findHomography(pix[bg], pix[bg] + flow[bg], 0)  # least squares on exact points
        for li in range(1, 5):
            sel = layer == li
            if sel.sum() < 20:
                continue
            q = np.c_[pix[sel], np.ones(int(sel.sum()))] @ hom.T
            off = np.abs(q[:, :2] / q[:, 2:] - pix[sel] - flow[sel]).max()
            moving = bool(b["independent"][k, li])
            assert (off > 1e-2) if moving else (off < 1e-2), (k, li, off)
            checked[moving] += 1
    assert checked[False] and checked[True]
