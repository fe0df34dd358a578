"""The adaptive backend's decision: which path runs for which input, and how the node counts it."""

import cv2
import numpy as np
import pytest

from flownet_ros.data.photos import skimage_photos
from flownet_ros.inference import EstimatorSpec, build_estimator
from flownet_ros.inference.adaptive import (
    NETWORK_THRESHOLD,
    SPREAD_LIMIT,
    dis_failure_score,
    flow_spread,
    residual_ratio,
)
from flownet_ros.inference.classic import to_grey
from flownet_ros.ros.diagnostics import FlowStats, make_status, status_values


@pytest.fixture(scope="module")
def photo():
    """A real photo (scikit-image's 'coffee', shipped in its wheel), 240x320 grey."""
    return cv2.resize(to_grey(skimage_photos(("coffee",))[0]), (320, 240), interpolation=cv2.INTER_AREA)


def shifted(img, dx):
    """``img`` moved right by ``dx`` px (the flow from img to the result is (dx, 0) where defined)."""
    return cv2.warpAffine(img, np.float32([[1, 0, dx], [0, 1, 0]]), img.shape[::-1], borderMode=cv2.BORDER_REFLECT)


def field(h, w, u, v=0.0):
    out = np.zeros((h, w, 2), np.float32)
    out[..., 0], out[..., 1] = u, v
    return out


def test_residual_ratio_tells_a_right_flow_from_a_wrong_one(photo):
    moved = shifted(photo, 6)
    right, wrong = field(*photo.shape, 6.0), field(*photo.shape, 0.0)
    assert residual_ratio(photo, moved, right) < 0.3 < 1.0 < residual_ratio(photo, moved, wrong)
    assert residual_ratio(photo, moved, field(*photo.shape, 1e4)) == 10.0  # every target outside


def test_flow_spread_flags_wild_vectors_in_a_calm_field():
    calm = field(100, 100, 3.0, 1.0)
    assert flow_spread(calm) == pytest.approx(0.0, abs=1e-6)
    wild = calm.copy()
    wild[:10] = 40.0  # 10 % of the field torn away
    assert flow_spread(wild) > SPREAD_LIMIT


def test_failure_score_of_dis_on_a_small_motion_is_below_the_threshold(photo):
    moved = shifted(photo, 3)
    assert dis_failure_score(photo, moved, field(*photo.shape, 3.0)) < NETWORK_THRESHOLD
    assert dis_failure_score(photo, moved, field(*photo.shape, -9.0)) > NETWORK_THRESHOLD


@pytest.fixture(scope="module")
def adaptive():
    return build_estimator(EstimatorSpec(backend="adaptive", device="cpu"))


def rgb(grey):
    return np.repeat(grey[..., None], 3, axis=2)


def test_small_motion_takes_the_dis_path(adaptive, photo):
    flow = adaptive.estimate(rgb(photo), rgb(shifted(photo, 3)))
    info = adaptive.last_flow_info()
    assert info["path"] == "dis" and info["score"] <= adaptive.network_threshold and info["seconds"] > 0
    assert np.median(flow[20:-20, 20:-20, 0]) == pytest.approx(3.0, abs=0.2)


def test_the_path_follows_the_score_and_the_threshold(adaptive, photo):
    a, b = adaptive.prepare(rgb(photo)), adaptive.prepare(rgb(shifted(photo, 3)))
    adaptive.configure(network_threshold=0.0)  # 0: the network on every pair, like backend flownet
    try:
        adaptive.flow(a, b)
        assert adaptive.last_flow_info()["path"] == "network"
        score = dis_failure_score(a.grey, b.grey, adaptive._dis.calc(a.grey, b.grey, None))
        adaptive.configure(network_threshold=score * 0.99)  # just below this pair's score
        adaptive.flow(a, b)
        assert adaptive.last_flow_info()["path"] == "network"
        adaptive.configure(network_threshold=score * 1.01)
        adaptive.flow(a, b)
        assert adaptive.last_flow_info()["path"] == "dis"
    finally:
        adaptive.configure(network_threshold=NETWORK_THRESHOLD)


def test_the_network_runs_where_dis_cannot_follow(adaptive):
    """A motion far beyond DIS's reach on a periodic texture: DIS locks onto a wrong match, the check sees it."""
    rng = np.random.default_rng(3)
    tile = cv2.GaussianBlur(rng.integers(0, 255, (24, 24), dtype=np.uint8), (3, 3), 0.8)
    grey = np.tile(tile, (10, 14))[:240, :320]
    grey = (grey.astype(np.float32) * np.linspace(0.6, 1.0, 320)[None, :]).astype(np.uint8)  # not purely periodic
    adaptive.estimate(rgb(grey), rgb(shifted(grey, 70)))
    assert adaptive.last_flow_info()["path"] == "network", adaptive.last_flow_info()


def test_cuda_devices_run_the_network_first():
    from flownet_ros.inference.adaptive import AdaptiveEstimator

    class FakeNet:
        device, runtime_settings, description = "cuda:0", (), "fake"

    assert AdaptiveEstimator(FakeNet(), None, "medium").network_first


def test_diagnostics_count_each_path():
    stats = FlowStats()
    for path, seconds in (("dis", 0.03), ("dis", 0.05), ("network", 0.1)):
        stats.output(0.01, seconds)
        stats.flow_path({"path": path, "score": 0.5, "seconds": seconds})
    stats.output(0.01, 0.01)
    stats.flow_path({})  # an estimator with one path: nothing counted
    report = stats.report()
    assert report["path_dis_pairs"] == 2 and report["path_network_pairs"] == 1
    assert report["path_dis_mean_ms"] == pytest.approx(40.0) and report["path_network_fraction"] == pytest.approx(0.25)
    values = status_values(make_status(report, "flownet", "cpu", {"backend": "adaptive"}))
    assert values["path_network_pairs"] == "1" and values["path_dis_fraction"] == "0.5"
