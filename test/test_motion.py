"""Robust global motion fit on synthetic flow fields with independently moving outliers."""

import math

import numpy as np
import pytest

from flownet_ros.flow.motion import Intrinsics, fit_motion, intrinsics_from_k, sample_flow

H, W = 120, 160


def similarity_flow(tx, ty, k, theta, h=H, w=W):
    """Exact flow of x' = c + t + k R(theta) (x - c) about the image centre."""
    y, x = np.mgrid[0:h, 0:w].astype(np.float64)
    cx, cy = (w - 1) / 2, (h - 1) / 2
    xc, yc = x - cx, y - cy
    xp = cx + tx + k * (math.cos(theta) * xc - math.sin(theta) * yc)
    yp = cy + ty + k * (math.sin(theta) * xc + math.cos(theta) * yc)
    return np.stack([xp - x, yp - y], -1).astype(np.float32)


def add_outliers(flow, seed=0, fraction=0.15, noise=0.2):
    """Gaussian noise, two independently moving objects and scattered random vectors."""
    rng = np.random.default_rng(seed)
    flow = flow + rng.normal(0, noise, flow.shape).astype(np.float32)
    flow[10:55, 20:75] = (15.0, 10.0)  # a car crossing
    flow[70:110, 100:150] += rng.normal(0, 4, (40, 50, 2)).astype(np.float32)  # a waving tree
    m = rng.random(flow.shape[:2]) < fraction
    flow[m] = rng.uniform(-25, 25, (int(m.sum()), 2))
    return flow


def rotation(axis_angle):
    th = np.linalg.norm(axis_angle)
    kx = np.asarray(axis_angle) / th
    kk = np.array([[0, -kx[2], kx[1]], [kx[2], 0, -kx[0]], [-kx[1], kx[0], 0]])
    return np.eye(3) + math.sin(th) * kk + (1 - math.cos(th)) * kk @ kk


def rotation_flow(intr, rot_vec, h=H, w=W):
    """Exact flow of a static scene rotated by rot_vec (axis-angle, optical frame) relative to the camera."""
    y, x = np.mgrid[0:h, 0:w].astype(np.float64)
    rays = np.stack([(x - intr.cx) / intr.fx, (y - intr.cy) / intr.fy, np.ones_like(x)], -1)
    r = rays @ rotation(rot_vec).T
    return np.stack([intr.fx * r[..., 0] / r[..., 2] + intr.cx - x,
                     intr.fy * r[..., 1] / r[..., 2] + intr.cy - y], -1).astype(np.float32)


@pytest.mark.parametrize("tx,ty,k,theta", [
    (3.0, -2.0, 1.0, 0.0),  # pure translation
    (0.0, 0.0, 1.04, 0.0),  # approaching: expansion
    (0.0, 0.0, 0.97, 0.0),  # receding
    (0.0, 0.0, 1.0, 0.03),  # in-plane rotation
    (-4.0, 1.5, 1.02, -0.02),  # everything
])
def test_similarity_recovered_with_outliers(tx, ty, k, theta):
    dt = 0.05
    m = fit_motion(add_outliers(similarity_flow(tx, ty, k, theta)), dt)
    lx, ly, lz = m.linear
    assert lx == pytest.approx(tx / dt, abs=0.05 / dt)
    assert ly == pytest.approx(ty / dt, abs=0.05 / dt)
    assert lz == pytest.approx(math.log(k) / dt, abs=0.002 / dt)
    assert m.angular[2] == pytest.approx(theta / dt, abs=0.002 / dt)
    assert m.angular[:2] == (0.0, 0.0)  # no intrinsics: no rotation about x/y
    assert 0.5 < m.fit.inlier_fraction < 0.85  # the moving objects and scattered vectors are outliers
    assert m.fit.rms < 0.5


def test_plain_least_squares_would_be_biased():
    """The outliers matter: an unweighted fit of the same field is far off (so the test above is meaningful)."""
    flow = add_outliers(similarity_flow(3.0, -2.0, 1.0, 0.0))
    naive = flow.reshape(-1, 2).mean(0)
    assert abs(naive[0] - 3.0) > 0.3 or abs(naive[1] + 2.0) > 0.3
    robust = fit_motion(flow, 1.0)
    assert robust.fit.tx == pytest.approx(3.0, abs=0.05) and robust.fit.ty == pytest.approx(-2.0, abs=0.05)


def test_rotation_sign_convention():
    """theta > 0 turns +x toward +y: a point right of the centre moves down (clockwise on screen)."""
    flow = similarity_flow(0, 0, 1.0, 0.05)
    assert flow[H // 2, W - 1, 1] > 0 and flow[0, W // 2, 0] > 0
    assert fit_motion(flow, 1.0).angular[2] == pytest.approx(0.05, abs=1e-4)


@pytest.mark.parametrize("rot_vec", [(0.01, 0.0, 0.0), (0.0, -0.015, 0.0), (0.008, 0.012, -0.02)])
def test_camera_rotation_rates_with_intrinsics(rot_vec):
    intr = Intrinsics(fx=150.0, fy=155.0, cx=82.0, cy=57.0)
    dt = 0.1
    flow = rotation_flow(intr, rot_vec)
    flow[10:55, 20:75] = (9.0, -6.0)  # independently moving object
    m = fit_motion(flow, dt, intr)
    for got, want in zip(m.angular, rot_vec):
        assert got == pytest.approx(want / dt, abs=0.03 * max(abs(w) for w in rot_vec) / dt)
    assert m.linear[2] == pytest.approx(0.0, abs=0.01)  # no expansion
    # translation is the flow at the principal point
    assert m.linear[0] * dt == pytest.approx(intr.fx * math.tan(rot_vec[1]), rel=0.05, abs=0.02)
    assert m.fit.center == (82.0, 57.0)


def test_expansion_with_intrinsics():
    intr = Intrinsics(150.0, 150.0, 79.5, 59.5)
    y, x = np.mgrid[0:H, 0:W].astype(np.float32)
    flow = np.stack([0.03 * (x - intr.cx), 0.03 * (y - intr.cy)], -1)
    m = fit_motion(flow, 0.5, intr)
    assert m.linear[2] == pytest.approx(math.log(1.03) / 0.5, rel=1e-3)
    assert max(abs(a) for a in m.angular) < 1e-6


def test_nan_and_valid_mask_ignored():
    flow = similarity_flow(2.0, 1.0, 1.0, 0.0)
    flow[:20] = np.nan
    valid = np.ones((H, W), bool)
    valid[:, :40] = False
    flow[:, :40] = 50.0  # garbage where invalid
    m = fit_motion(flow, 1.0, valid=valid)
    assert (m.fit.tx, m.fit.ty) == (pytest.approx(2.0, abs=1e-3), pytest.approx(1.0, abs=1e-3))
    x, y, u, v = sample_flow(flow, valid, max_points=500)
    assert len(x) <= 500 and np.isfinite(u).all() and (x >= 40).all()


def test_zero_flow_and_bad_dt():
    m = fit_motion(np.zeros((H, W, 2), np.float32), 0.1)
    assert m.linear == (0.0, 0.0, 0.0) and m.angular == (0.0, 0.0, 0.0)
    with pytest.raises(ValueError, match="dt"):
        fit_motion(np.zeros((H, W, 2), np.float32), 0.0)
    with pytest.raises(ValueError, match="HxWx2"):
        fit_motion(np.zeros((H, W), np.float32), 0.1)


def test_intrinsics_from_camera_info_k():
    k = [600.0, 0, 319.5, 0, 610.0, 239.5, 0, 0, 1]
    assert intrinsics_from_k(k, (640, 480), (640, 480)) == Intrinsics(600.0, 610.0, 319.5, 239.5)
    half = intrinsics_from_k(k, (640, 480), (320, 240))
    assert (half.fx, half.fy, half.cx, half.cy) == (300.0, 305.0, 159.5, 119.5)
    assert intrinsics_from_k(k, (0, 0), (320, 240)).fx == 600.0  # size unset: same as the image
    assert intrinsics_from_k([0.0] * 9, (640, 480), (640, 480)) is None  # uncalibrated
