"""Forward-backward consistency (confidence, occlusion) and the moving-object mask on flow fields with
exact geometry: layered scenes whose occlusions are known, and 3D scenes seen by a pinhole camera."""

import math

import cv2
import numpy as np
import pytest

from flownet_ros.flow.consistency import backward_at_target, confidence, fb_confidence, occlusion_from_confidence
from flownet_ros.flow.motion import Intrinsics
from flownet_ros.flow.moving import CameraModel, fit_camera_model, moving_mask, residual_map

H, W = 120, 160
INTR = Intrinsics(150.0, 150.0, 79.5, 59.5)


def layered(bg=(3.0, 1.0), obj=(15.0, -2.0), box=(40, 80, 50, 90)):
    """Background and one square translating rigidly: exact forward/backward flow and occlusion of frame 1."""
    y0, y1, x0, x1 = box
    ys, xs = np.mgrid[0:H, 0:W]
    in1 = (ys >= y0) & (ys < y1) & (xs >= x0) & (xs < x1)
    in2 = (ys >= y0 + obj[1]) & (ys < y1 + obj[1]) & (xs >= x0 + obj[0]) & (xs < x1 + obj[0])
    fw = np.where(in1[..., None], np.float32(obj), np.float32(bg)).astype(np.float32)
    bw = np.where(in2[..., None], -np.float32(obj), -np.float32(bg)).astype(np.float32)
    tx, ty = xs + fw[..., 0], ys + fw[..., 1]
    inside = (tx >= 0) & (tx <= W - 1) & (ty >= 0) & (ty <= H - 1)
    lands_on_obj = (ty >= y0 + obj[1]) & (ty < y1 + obj[1]) & (tx >= x0 + obj[0]) & (tx < x1 + obj[0])
    occluded = ~inside | (~in1 & lands_on_obj)
    return fw, bw, occluded


def test_consistent_flow_has_full_confidence_inside_the_image():
    fw = np.full((H, W, 2), (2.5, -1.25), np.float32)
    conf = fb_confidence(fw, -fw)
    inside = (np.arange(W)[None, :] + 2.5 <= W - 1) & (np.arange(H)[:, None] - 1.25 >= 0)
    np.testing.assert_allclose(conf[inside], 1.0, atol=1e-6)
    assert (conf[~inside] == 0).all() and conf.dtype == np.float32
    assert not occlusion_from_confidence(conf)[inside].any()


def test_occlusion_of_a_layered_scene_is_exact_away_from_edges():
    fw, bw, occluded = layered()
    occ = occlusion_from_confidence(fb_confidence(fw, bw)) > 0
    # bilinear reads of b at the object's edges mix both layers: one pixel band either side may differ
    edge = cv2.dilate((cv2.Canny(occluded.astype(np.uint8) * 255, 1, 1) > 0).astype(np.uint8), np.ones((3, 3)))
    np.testing.assert_array_equal(occ[edge == 0], occluded[edge == 0])
    assert occluded.sum() > 500 and occ[~occluded & (edge == 0)].sum() == 0


def test_confidence_falls_with_the_mismatch_and_tolerates_larger_errors_for_larger_motion():
    fw = np.full((H, W, 2), (1.0, 0.0), np.float32)
    c = [fb_confidence(fw, -fw + np.float32(e))[60, 60] for e in (0.0, 0.5, 1.0, 2.0)]
    assert c[0] > c[1] > c[2] > c[3] and c[3] < math.exp(-1)
    big = np.full((H, W, 2), (20.0, 0.0), np.float32)
    assert fb_confidence(big, -big + np.float32(1.0))[60, 20] > c[2]


def test_backward_at_target_reads_where_the_flow_lands():
    fw = np.full((H, W, 2), (4.0, 2.0), np.float32)
    ramp = np.dstack([np.tile(np.arange(W, dtype=np.float32), (H, 1)), np.zeros((H, W), np.float32)])
    np.testing.assert_allclose(backward_at_target(fw, ramp)[10, 10], (14.0, 0.0), atol=1e-3)
    with pytest.raises(ValueError, match="one size"):
        fb_confidence(fw, fw[:, :-1])


# ---- moving objects ------------------------------------------------------------------------------


def camera_flow(t, rotvec, depth, intr=INTR):
    """Exact flow of a static scene of per-pixel ``depth`` when the camera moves: X' = R X + t."""
    r = cv2.Rodrigues(np.asarray(rotvec, np.float64))[0]
    ys, xs = np.mgrid[0:H, 0:W].astype(np.float64)
    pts = np.stack([(xs - intr.cx) / intr.fx * depth, (ys - intr.cy) / intr.fy * depth, depth], -1) @ r.T + t
    return np.stack([intr.fx * pts[..., 0] / pts[..., 2] + intr.cx - xs,
                     intr.fy * pts[..., 1] / pts[..., 2] + intr.cy - ys], -1).astype(np.float32)


def depth_scene():
    """Depth with strong parallax: a near wall, a slanted far part, a floor."""
    ys, xs = np.mgrid[0:H, 0:W].astype(np.float64)
    return np.where(xs < 50, 2.0, np.where(ys > 85, 6.0, 4.0 + xs / 40.0))


def with_objects(flow):
    gt = np.zeros((H, W), bool)
    gt[20:50, 70:110] = True
    gt[90:115, 120:150] = True
    flow = flow.copy()
    flow[20:50, 70:110] += (3.0, -2.5)
    flow[90:115, 120:150] += (-2.0, -3.0)
    return flow, gt


def iou(mask, gt):
    m = mask > 0
    return (m & gt).sum() / max(1, (m | gt).sum())


@pytest.mark.parametrize("intr", [None, INTR])
def test_translating_camera_in_a_3d_scene_uses_the_epipolar_model(intr):
    static = camera_flow([0.15, 0.03, 0.08], [0.004, -0.006, 0.002], depth_scene())
    mask, model = moving_mask(static, intrinsics=intr)
    assert model.kind == ("fundamental" if intr is None else "essential")
    assert not mask.any()
    mask, model = moving_mask(with_objects(static)[0], intrinsics=intr)
    assert iou(mask, with_objects(static)[1]) > 0.95
    assert 0.8 < model.inlier_fraction < 0.95


def test_a_homography_would_mark_parallax_as_moving_the_chosen_model_does_not():
    static = camera_flow([0.15, 0.03, 0.08], [0.004, -0.006, 0.002], depth_scene())
    chosen = fit_camera_model(static)
    assert residual_map(static, chosen).max() < 0.05
    ys, xs = np.mgrid[0:H:4, 0:W:4]
    x1 = np.stack([xs.ravel(), ys.ravel()], 1).astype(np.float32)
    h, _ = cv2.findHomography(x1, x1 + static[::4, ::4].reshape(-1, 2), cv2.RANSAC, 1.0)
    forced = CameraModel("homography", h, 0.0, 0.0, len(x1))
    assert (residual_map(static, forced) > 1.0).mean() > 0.1
    none = fit_camera_model(static, max_points=8)  # too few points: no model, nothing marked
    assert none.kind == "none" and not moving_mask(static, model=none)[0].any()


@pytest.mark.parametrize("t,rot,depth", [
    ([0, 0, 0], [0.01, -0.02, 0.01], depth_scene()),  # rotation only: a homography whatever the depth
    ([0.2, 0.05, 0.1], [0.003, 0.004, -0.002], np.full((H, W), 5.0)),  # a planar scene
    ([0, 0, 0], [0, 0, 0], depth_scene()),  # a still camera
])
def test_rotation_planar_scene_or_still_camera_use_the_homography(t, rot, depth):
    flow, gt = with_objects(camera_flow(t, rot, depth))
    mask, model = moving_mask(flow)
    assert model.kind == "homography"
    assert iou(mask, gt) > 0.95


def test_noise_below_the_threshold_marks_nothing_and_small_blobs_are_dropped():
    rng = np.random.default_rng(0)
    static = camera_flow([0.15, 0.03, 0.08], [0.004, -0.006, 0.002], depth_scene())
    noisy = static + rng.normal(0, 0.25, static.shape).astype(np.float32)
    assert (moving_mask(noisy, threshold=1.5)[0] > 0).mean() < 0.001
    speck = static.copy()
    speck[10:15, 10:15] += 5.0  # 25 px = 0.13 % of the image
    assert not moving_mask(speck, min_blob=0.005)[0].any()
    assert moving_mask(speck, min_blob=0.001)[0][10:15, 10:15].all()
    with pytest.raises(ValueError, match="HxWx2"):
        moving_mask(static[..., 0])
    with pytest.raises(ValueError, match="threshold"):
        moving_mask(static, threshold=0.0)


def test_only_trusted_flow_is_marked_moving_and_confidence_multiplies_in_the_photometric_term():
    static = camera_flow([0.15, 0.03, 0.08], [0.004, -0.006, 0.002], depth_scene())
    flow, gt = with_objects(static)
    conf = np.ones((H, W), np.float32)
    conf[90:115, 120:150] = 0.2  # the second object's flow is not trusted (e.g. a wrong match)
    mask = moving_mask(flow, confidence=conf, min_confidence=0.7)[0] > 0
    assert mask[20:50, 70:110].all() and not mask[90:115, 120:150].any()
    with pytest.raises(ValueError, match="same H, W"):
        moving_mask(flow, confidence=conf[:, :-1])
    rng = np.random.default_rng(1)
    img1 = rng.integers(0, 256, (H, W, 3), dtype=np.uint8)
    fw = np.zeros((H, W, 2), np.float32)
    img2 = img1.copy()
    img2[:, :40] = 255 - img2[:, :40]  # consistent zero flow, but the left part changed its look
    c = confidence(fw, fw, img1, img2, tau=20.0)
    np.testing.assert_allclose(c[:, 40:], 1.0)
    assert c[:, :40].mean() < 0.05
    np.testing.assert_allclose(confidence(fw, fw, img1, img2, tau=0.0), 1.0)
