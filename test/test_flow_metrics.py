"""EPE and Fl-all on hand-computed cases."""

import math

import numpy as np
import pytest
import torch

from flownet_ros.flow import epe, epe_map, fl_all


def test_epe_hand_computed():
    gt = np.zeros((1, 2, 2), np.float32)
    pred = np.array([[[3, 4], [0, 1]]], np.float32)  # errors 5 and 1
    np.testing.assert_allclose(epe_map(pred, gt), [[5, 1]])
    assert epe(pred, gt) == pytest.approx(3.0)
    assert epe(pred, gt, valid=np.array([[False, True]])) == pytest.approx(1.0)
    assert math.isnan(epe(pred, gt, valid=np.zeros((1, 2), bool)))
    assert epe(torch.from_numpy(pred), torch.from_numpy(gt)) == pytest.approx(3.0)


def test_fl_all_hand_computed():
    gt = np.array([[[100, 0], [10, 0], [0, 0], [2, 0]]], np.float32)
    pred = np.array([[[104, 0],    # err 4 > 3 but 4 < 5 % of 100 -> not outlier
                      [14, 0],     # err 4 > 3 and > 0.5 -> outlier
                      [0, 2.9],    # err 2.9 <= 3 -> not outlier
                      [2, 3.5]]], np.float32)  # err 3.5 -> outlier
    assert fl_all(pred, gt) == pytest.approx(0.5)
    assert fl_all(pred, gt, valid=np.array([[True, True, True, False]])) == pytest.approx(1 / 3)
    with pytest.raises(ValueError):
        fl_all(pred, gt, valid=np.ones((2, 2), bool))


def test_shape_mismatch():
    with pytest.raises(ValueError):
        epe(np.zeros((2, 2, 2)), np.zeros((2, 3, 2)))
