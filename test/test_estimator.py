"""FlowEstimator: any input size, correct rescaling of u and v, normalisation, input checks."""

import numpy as np
import pytest
import torch

from flownet_ros.inference import FlowEstimator
from flownet_ros.inference.postprocess import upsample_flow
from flownet_ros.inference.preprocess import AUTO_MAX_SIDE, network_size, normalize_pair
from flownet_ros.models import ModelSpec, save_checkpoint
from flownet_ros.models.flownet import FlowNetC


class ConstantFlow(torch.nn.Module):
    """Stands in for a network: predicts (u, v) = (8, 4) network pixels at 1/4 resolution (as
    FlowNetBase.predict) and records its input."""

    def __init__(self):
        super().__init__()
        self.seen = []

    def predict(self, a, b):
        self.seen.append((a.clone(), b.clone()))
        flow = torch.zeros(a.shape[0], 2, a.shape[-2] // 4, a.shape[-1] // 4)
        flow[:, 0], flow[:, 1] = 8.0, 4.0
        return flow


def rand_img(h, w, seed=0):
    return np.random.default_rng(seed).integers(0, 256, (h, w, 3), dtype=np.uint8)


def test_network_size_rounds_to_multiples_of_64():
    assert AUTO_MAX_SIDE == 320  # measured best for the shipped model (docs/evaluation.md)
    assert network_size(480, 640) == (256, 320)  # scaled to 240x320, 240 rounded to 256
    assert network_size(1080, 1920) == (192, 320)
    assert network_size(100, 150) == (128, 128)  # never scaled up
    assert network_size(20, 20) == (64, 64)
    assert network_size(288, 288) == (320, 320)  # 4.5 rounds up (not half-to-even)
    assert network_size(480, 640, max_side=640) == (512, 640)
    assert network_size(480, 640, (384, 512)) == (384, 512)
    assert network_size(480, 640, (0, 0)) == (256, 320)


@pytest.mark.parametrize("size", [(100, 150), (480, 640), (64, 64)])
def test_flow_is_rescaled_to_input_pixels(size):
    model = ConstantFlow()
    est = FlowEstimator(model, ModelSpec(), device="cpu")
    flow = est.estimate(rand_img(*size), rand_img(*size, seed=1))
    net_h, net_w = network_size(*size)
    assert flow.shape == size + (2,) and flow.dtype == np.float32
    np.testing.assert_allclose(flow[..., 0], 8.0 * size[1] / net_w, rtol=1e-5)
    np.testing.assert_allclose(flow[..., 1], 4.0 * size[0] / net_h, rtol=1e-5)
    assert model.seen[-1][0].shape[-2:] == (net_h, net_w)


def test_inference_size_is_what_the_network_sees():
    model = ConstantFlow()
    est = FlowEstimator(model, ModelSpec(), device="cpu", inference_size=(192, 256))
    flow = est.estimate(rand_img(480, 640), rand_img(480, 640))
    assert model.seen[-1][0].shape[-2:] == (192, 256)
    np.testing.assert_allclose(flow[0, 0], [8.0 * 640 / 256, 4.0 * 480 / 192], rtol=1e-5)


class BiasedMotion(torch.nn.Module):
    """Stands in for a network with a direction-independent bias: predicts bias (5, -1) plus a motion
    (2, 1) network pixels that changes sign when the inputs are swapped (the brighter image is second)."""

    def predict(self, a, b):
        sign = torch.sign(b.mean(dim=(1, 2, 3)) - a.mean(dim=(1, 2, 3))).view(-1, 1, 1, 1)
        flow = torch.tensor([5.0, -1.0]).view(1, 2, 1, 1) + sign * torch.tensor([2.0, 1.0]).view(1, 2, 1, 1)
        return flow.expand(a.shape[0], 2, a.shape[-2] // 4, a.shape[-1] // 4).contiguous()


def test_bidirectional_cancels_a_direction_independent_bias():
    dark, bright = np.full((128, 192, 3), 60, np.uint8), np.full((128, 192, 3), 180, np.uint8)
    one_way = FlowEstimator(BiasedMotion(), ModelSpec(normalization="fixed_mean"), device="cpu")
    both = FlowEstimator(BiasedMotion(), ModelSpec(normalization="fixed_mean"), device="cpu", bidirectional=True)
    np.testing.assert_allclose(one_way.estimate(dark, bright)[5, 7], [7.0, 0.0], atol=1e-5)
    flow = both.estimate(dark, bright)
    np.testing.assert_allclose(flow.reshape(-1, 2), np.tile([2.0, 1.0], (128 * 192, 1)), atol=1e-5)
    np.testing.assert_allclose(both.estimate(bright, dark)[0, 0], [-2.0, -1.0], atol=1e-5)
    assert both.estimate_batch(np.stack([dark, bright]), np.stack([bright, dark])).shape == (2, 128, 192, 2)
    assert "bidirectional" in both.description and "bidirectional" not in one_way.description


def test_upsample_flow_scales_components_independently():
    flow = torch.zeros(1, 2, 10, 20)
    flow[:, 0], flow[:, 1] = 1.0, 2.0
    out = upsample_flow(flow, (10, 20), (30, 80))
    assert out.shape == (1, 2, 30, 80)
    torch.testing.assert_close(out[0, 0], torch.full((30, 80), 4.0))
    torch.testing.assert_close(out[0, 1], torch.full((30, 80), 6.0))


def test_sample_mean_normalisation_and_colour_order():
    t1 = torch.rand(1, 3, 8, 8) * 255
    t2 = torch.rand(1, 3, 8, 8) * 255
    a, b = normalize_pair(t1, t2, ModelSpec(normalization="sample_mean"))
    torch.testing.assert_close((a.mean(dim=(2, 3)) + b.mean(dim=(2, 3))) / 2, torch.zeros(1, 3), atol=1e-6, rtol=0)
    torch.testing.assert_close(a - b, (t1 - t2) / 255)
    # BGR input to an RGB network is flipped to RGB first.
    a_bgr, _ = normalize_pair(t1.flip(1), t2.flip(1), ModelSpec(), input_order="bgr")
    torch.testing.assert_close(a_bgr, a)


def test_fixed_mean_normalisation():
    spec = ModelSpec(normalization="fixed_mean", mean=(0.411, 0.432, 0.45))
    t = torch.full((1, 3, 2, 2), 255.0)
    a, _ = normalize_pair(t, t, spec)
    torch.testing.assert_close(a[0, :, 0, 0], torch.tensor([1 - 0.411, 1 - 0.432, 1 - 0.45]))


def test_network_output_is_upsampled_once_straight_to_the_input_size():
    """predict() at 1/4 of the network size goes to the input size in one bilinear step: the same as the
    model's own eval output resized (two steps) where the field is smooth, without the second blur."""
    torch.manual_seed(0)
    model = FlowNetC(width=0.125).eval()
    est = FlowEstimator(model, ModelSpec(width=0.125), device="cpu", inference_size=(128, 192))
    img1, img2 = rand_img(100, 150), rand_img(100, 150, seed=1)
    low = est.flow_tensor(est.prepare(img1), est.prepare(img2))
    assert low.shape == (1, 2, 100, 150)
    a, b = normalize_pair(est.prepare(img1), est.prepare(img2), est.spec)
    with torch.no_grad():
        p = model.predict(torch.nn.functional.interpolate(a, (128, 192), mode="bilinear", align_corners=False),
                          torch.nn.functional.interpolate(b, (128, 192), mode="bilinear", align_corners=False))
    assert p.shape == (1, 2, 32, 48)
    expected = upsample_flow(p, (128, 192), (100, 150))
    torch.testing.assert_close(low, expected)


def test_batched_equals_single(tmp_path):
    torch.manual_seed(0)
    spec = ModelSpec(width=0.125)
    path = save_checkpoint(tmp_path / "tiny.pt", FlowNetC(width=0.125), spec)
    est = FlowEstimator.from_checkpoint(str(path), device="cpu")
    imgs1 = np.stack([rand_img(70, 90, s) for s in range(3)])
    imgs2 = np.stack([rand_img(70, 90, s + 10) for s in range(3)])
    batch = est.estimate_batch(imgs1, imgs2, batch_size=2)
    assert batch.shape == (3, 70, 90, 2)
    for i in range(3):
        np.testing.assert_allclose(batch[i], est.estimate(imgs1[i], imgs2[i]), atol=1e-4)
    assert "flownetc width 0.125" in est.description


@pytest.mark.parametrize("img1,img2,match", [
    (np.zeros((10, 10, 3), np.uint8), np.zeros((10, 12, 3), np.uint8), "sizes differ"),
    (np.zeros((10, 10, 3), np.float32), np.zeros((10, 10, 3), np.float32), "uint8"),
    (np.zeros((10, 10, 4), np.uint8), np.zeros((10, 10, 4), np.uint8), "HxWx3"),
    (np.zeros((10, 10, 2), np.uint8), np.zeros((10, 10, 2), np.uint8), "HxWx3"),
    (np.zeros((10, 10), np.float32), np.zeros((10, 10), np.float32), "uint16 if grey"),
    (np.zeros((10, 10, 3), np.uint16), np.zeros((10, 10, 3), np.uint16), "uint8"),
    (np.zeros((10, 10), np.uint8), np.zeros((10, 12), np.uint8), "sizes differ"),
    (np.zeros((0, 10, 3), np.uint8), np.zeros((0, 10, 3), np.uint8), "empty"),
])
def test_bad_inputs_raise_value_error(img1, img2, match):
    est = FlowEstimator(ConstantFlow(), ModelSpec(), device="cpu")
    with pytest.raises(ValueError, match=match):
        est.estimate(img1, img2)


@pytest.mark.parametrize("kind", ["mono8 HxW", "mono8 HxWx1", "mono16 HxW"])
def test_mono_frames_are_estimated_as_the_node_converts_them(kind):
    """estimate takes grey frames like the node (mono8, mono16): the same flow as the node's RGB of them."""
    from flownet_ros.imaging.decode import raw_to_rgb
    from flownet_ros.inference.classic import DISEstimator

    grey = rand_img(48, 64)[..., 0]
    shifted = np.roll(grey, 2, axis=1)
    encoding, frames = "mono8", (grey, shifted)
    if kind.startswith("mono16"):
        encoding, frames = "mono16", tuple(f.astype(np.uint16) << 4 for f in frames)  # a 12-bit camera
    elif kind.endswith("x1"):
        frames = tuple(f[..., None] for f in frames)
    node_rgb = [raw_to_rgb(encoding, 48, 64, f.itemsize * 64, False, np.ascontiguousarray(f).tobytes())
                for f in frames]
    for est in (FlowEstimator(ConstantFlow(), ModelSpec(), device="cpu"), DISEstimator("ultrafast")):
        np.testing.assert_array_equal(est.estimate(*frames), est.estimate(*node_rgb))
    net = ConstantFlow()
    FlowEstimator(net, ModelSpec(), device="cpu").estimate(*frames)
    assert net.seen[0][0].shape[1] == 3  # the network got three channels


def test_bad_settings():
    with pytest.raises(ValueError, match="precision"):
        FlowEstimator(ConstantFlow(), ModelSpec(), device="cpu", precision="int8")
    if not torch.cuda.is_available():
        with pytest.raises(ValueError, match="CUDA is not available"):
            FlowEstimator(ConstantFlow(), ModelSpec(), device="cuda")


def test_read_only_inputs_are_accepted_without_warning():
    import warnings

    img = rand_img(64, 64)
    img.flags.writeable = False  # like a view of a ROS message buffer
    est = FlowEstimator(ConstantFlow(), ModelSpec(), device="cpu")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert est.estimate(img, img).shape == (64, 64, 2)
