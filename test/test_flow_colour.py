"""Middlebury colour wheel: known colours at known directions; numpy and torch agree."""

import numpy as np
import pytest
import torch

from flownet_ros.flow import flow_to_color, flow_to_color_torch
from flownet_ros.flow.colour import _COLOR_TABLE, COLORWHEEL
from flownet_ros.flow.warping import remap_position_step

# Full-saturation colours of the wheel (Baker et al.): angle a = atan2(-v, -u)/pi indexes the
# 55 colours; worked out by hand from the segment definitions RY15 YG6 GC4 CB11 BM13 MR6.
KNOWN = {
    (1.0, 0.0): (255, 0, 0),     # +x (right): red, wheel index 0
    (0.0, 1.0): (255, 229, 0),   # +y (down): between index 13 (255,221,0) and 14 (255,238,0)
    (-1.0, 0.0): (0, 209, 255),  # -x (left): index 27, cyan-blue (0, 255-46, 255)
    (0.0, -1.0): (88, 0, 255),   # -y (up): between index 40 (78,0,255) and 41 (98,0,255)
}


def _field(directions, mag=1.0):
    return np.array([[[u * mag, v * mag] for (u, v) in directions]], np.float32)


def test_wheel_definition():
    assert COLORWHEEL.shape == (55, 3)
    np.testing.assert_array_equal(COLORWHEEL[0], (255, 0, 0))
    np.testing.assert_array_equal(COLORWHEEL[15], (255, 255, 0))   # yellow starts YG
    np.testing.assert_array_equal(COLORWHEEL[21], (0, 255, 0))     # green starts GC
    np.testing.assert_array_equal(COLORWHEEL[25], (0, 255, 255))   # cyan starts CB
    np.testing.assert_array_equal(COLORWHEEL[36], (0, 0, 255))     # blue starts BM
    np.testing.assert_array_equal(COLORWHEEL[49], (255, 0, 255))   # magenta starts MR


@pytest.mark.parametrize("direction", list(KNOWN))
def test_known_directions_fixed_max(direction):
    flow = _field([direction], mag=10.0)
    rgb = flow_to_color(flow, max_flow=10.0)
    assert rgb.dtype == np.uint8 and rgb.shape == (1, 1, 3)
    np.testing.assert_allclose(rgb[0, 0].astype(int), KNOWN[direction], atol=1)
    t = flow_to_color_torch(torch.from_numpy(flow).permute(2, 0, 1)[None], max_flow=10.0)
    assert t.dtype == torch.uint8 and t.shape == (1, 1, 1, 3)
    np.testing.assert_allclose(t[0, 0, 0].numpy().astype(int), KNOWN[direction], atol=1)


def test_saturation_and_overflow():
    # half the max magnitude: halfway between white and the wheel colour
    rgb = flow_to_color(_field([(1.0, 0.0)], 5.0), max_flow=10.0)
    np.testing.assert_allclose(rgb[0, 0].astype(int), (255, 127, 127), atol=1)
    # zero flow is white, above max keeps hue at 75 %
    assert tuple(flow_to_color(_field([(0.0, 0.0)]), max_flow=1.0)[0, 0]) == (255, 255, 255)
    np.testing.assert_allclose(flow_to_color(_field([(-1.0, 0.0)], 20.0), max_flow=10.0)[0, 0].astype(int),
                               (0, 156, 191), atol=1)


def test_automatic_max_uses_largest_magnitude():
    flow = _field([(3.0, 0.0), (-6.0, 0.0)])
    auto = flow_to_color(flow)
    np.testing.assert_array_equal(auto, flow_to_color(flow, max_flow=6.0))
    np.testing.assert_allclose(auto[0, 1].astype(int), KNOWN[(-1.0, 0.0)], atol=1)  # largest: saturated
    t = flow_to_color_torch(torch.from_numpy(np.stack([flow, 2 * flow])).permute(0, 3, 1, 2))
    # per-sample automatic max: both samples render identically
    np.testing.assert_array_equal(t[0].numpy(), t[1].numpy())


def test_numpy_and_torch_agree_on_random_field():
    """+-1 (rounding) with OpenCV 5; OpenCV 4 (apt on robots) rounds the table lookup positions to 1/32 of
    a cell, so there the bound adds half a step per axis times the table's largest change between cells."""
    rng = np.random.default_rng(0)
    flow = rng.normal(0, 8, size=(2, 40, 50, 2)).astype(np.float32)
    flow[0, 3, 4] = np.nan
    t = flow_to_color_torch(torch.from_numpy(flow).permute(0, 3, 1, 2), max_flow=12.0).numpy()
    cell = max(np.abs(np.diff(_COLOR_TABLE, axis=0)).max(), np.abs(np.diff(_COLOR_TABLE, axis=1)).max())
    step = remap_position_step()
    tol = 1 + int(np.ceil(step * cell))
    for b in range(2):
        n = flow_to_color(flow[b], max_flow=12.0)
        diff = np.abs(n.astype(int) - t[b].astype(int))
        assert diff.max() <= tol
        if step == 0:
            assert (diff <= 1).mean() > 0.999
        else:  # position errors uniform in +-step/2 per axis: mean |error| step/4 per axis, times the steepest cell
            assert diff.mean() <= 0.5 + 2 * (step / 4) * cell
    assert (t[0, 3, 4] == 0).all()  # non-finite: black
    tauto = flow_to_color_torch(torch.from_numpy(flow[1:]).permute(0, 3, 1, 2))[0].numpy()
    assert np.abs(tauto.astype(int) - flow_to_color(flow[1]).astype(int)).max() <= tol


def test_bad_shapes():
    with pytest.raises(ValueError):
        flow_to_color(np.zeros((4, 4, 3)))
    with pytest.raises(ValueError):
        flow_to_color_torch(torch.zeros(4, 4, 2))
    with pytest.raises(ValueError):
        flow_to_color(np.zeros((4, 4, 2)), max_flow=0)
