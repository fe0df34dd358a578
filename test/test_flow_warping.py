"""Backward warping: a translated image warped back by its true flow reconstructs the original."""

import numpy as np
import pytest
import torch

from flownet_ros.flow import bidirectional_average, photometric_error, warp_backward, warp_backward_torch
from flownet_ros.flow.warping import inside_mask, remap_position_step


def _smooth_image(h, w, seed=0):
    ys, xs = np.mgrid[0:h, 0:w].astype(np.float32)
    rng = np.random.default_rng(seed)
    chans = []
    for _ in range(3):
        a, b, c, d = rng.uniform(0.05, 0.3, 4)
        chans.append(127 + 60 * np.sin(a * xs + b * ys) + 60 * np.cos(c * xs - d * ys))
    return np.stack(chans, 2)


def _shift(img, dx, dy):
    """img2 such that img2(x + dx, y + dy) = img1(x, y) for integer dx, dy (wrap-around)."""
    return np.roll(img, shift=(dy, dx), axis=(0, 1))


def test_integer_translation_reconstructs_exactly():
    img1 = np.random.default_rng(0).integers(0, 256, size=(20, 30, 3)).astype(np.uint8)
    img2 = _shift(img1, 3, -2)
    flow = np.zeros((20, 30, 2), np.float32)
    flow[..., 0], flow[..., 1] = 3, -2
    warped = warp_backward(img2, flow)
    mask = inside_mask(flow)
    assert mask.sum() == (20 - 2) * (30 - 3)
    np.testing.assert_array_equal(warped[mask], img1[mask].astype(np.float32))
    assert photometric_error(img1, img2, flow) == 0.0
    # the wrong flow does not reconstruct it
    assert photometric_error(img1, img2, np.zeros_like(flow)) > 20


def test_subpixel_translation_of_smooth_image():
    h, w, dx, dy = 32, 40, 2.25, -1.5
    ys, xs = np.mgrid[0:h, 0:w].astype(np.float32)
    img1 = _smooth_image(h, w)
    # img2 = img1 content moved by (dx, dy): evaluate the analytic image at shifted coordinates
    rng = np.random.default_rng(0)
    chans = []
    for _ in range(3):
        a, b, c, d = rng.uniform(0.05, 0.3, 4)
        x, y = xs - dx, ys - dy
        chans.append(127 + 60 * np.sin(a * x + b * y) + 60 * np.cos(c * x - d * y))
    img2 = np.stack(chans, 2)
    flow = np.zeros((h, w, 2), np.float32)
    flow[..., 0], flow[..., 1] = dx, dy
    err = photometric_error(img1, img2, flow)
    assert err < 1.0  # bilinear interpolation error of a smooth image only
    assert photometric_error(img1, img2, np.zeros_like(flow)) > 10 * err


def test_numpy_and_torch_warps_agree():
    """Exact with OpenCV 5; with OpenCV 4 (apt on robots) remap rounds positions to 1/32 px, so the bound is
    that rounding (half a step per axis) times the image's largest change between neighbouring pixels."""
    rng = np.random.default_rng(3)
    img = rng.uniform(0, 255, size=(2, 3, 15, 17)).astype(np.float32)
    flow = rng.normal(0, 4, size=(2, 2, 15, 17)).astype(np.float32)
    t = warp_backward_torch(torch.from_numpy(img), torch.from_numpy(flow)).numpy()
    for b in range(2):
        n = warp_backward(img[b].transpose(1, 2, 0), flow[b].transpose(1, 2, 0))
        step = max(np.abs(np.diff(img[b], axis=1)).max(), np.abs(np.diff(img[b], axis=2)).max())
        np.testing.assert_allclose(n, t[b].transpose(1, 2, 0), atol=1e-3 + remap_position_step() * step)


def test_valid_mask_and_errors():
    img = np.full((4, 4, 3), 100, np.uint8)
    flow = np.zeros((4, 4, 2), np.float32)
    flow[:, :2, 0] = 10  # left half points outside
    assert photometric_error(img, img, flow) == 0.0
    assert np.isnan(photometric_error(img, img, flow, valid=np.zeros((4, 4), bool)))
    with pytest.raises(ValueError):
        warp_backward(img, np.zeros((3, 4, 2), np.float32))
    with pytest.raises(ValueError):
        warp_backward_torch(torch.zeros(1, 3, 4, 4), torch.zeros(1, 2, 4, 5))


def test_bidirectional_average_keeps_motion_and_cancels_bias():
    """forward = motion + bias, backward = -motion + bias (the same bias field): the average is the motion
    up to the bias' change over the motion's length; a constant bias cancels exactly,
    also where x + forward leaves the grid (border padding)."""
    h, w = 24, 32
    motion = torch.tensor([3.0, -2.0]).view(1, 2, 1, 1)
    bias = torch.tensor([1.5, 0.5]).view(1, 2, 1, 1)
    fwd, bwd = (motion + bias).expand(1, 2, h, w), (-motion + bias).expand(1, 2, h, w)
    torch.testing.assert_close(bidirectional_average(fwd, bwd), motion.expand(1, 2, h, w))
    ramp = torch.linspace(0, 1, w).view(1, 1, 1, w).expand(1, 2, h, w)  # bias growing by 1/31 px per px in x
    out = bidirectional_average(motion + ramp, -motion + ramp)
    assert (out - motion).abs().max() < 0.1 and (motion + ramp - motion).abs().max() > 0.9
    assert warp_backward_torch(torch.ones(1, 1, h, w), fwd, "zeros")[0, 0, -1, -1] == 0  # outside: zero
