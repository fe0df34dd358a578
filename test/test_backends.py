"""The backend registry: capabilities decide the spec's validation, the node's choices, the baselines and the
run-time settings; a new backend is one registry entry plus its class; tools share one set of options."""

import argparse

import numpy as np
import pytest
from helpers import textured

from flownet_ros.inference import BACKENDS, Backend, Estimator, EstimatorSpec, build_estimator
from flownet_ros.inference.factory import add_estimator_arguments, baselines, specs_from_args
from flownet_ros.ros.node import estimator_spec, runtime_settings
from flownet_ros.ros.parameters import DEFAULTS, PARAM_BY_NAME


@pytest.mark.parametrize("name", sorted(BACKENDS))
def test_every_backend_builds_and_estimates(name):
    img = textured()
    est = build_estimator(EstimatorSpec(backend=name, device="cpu"))
    assert isinstance(est, Estimator)
    flow = est.estimate(img, np.roll(img, 2, axis=1))
    assert flow.shape == (64, 96, 2) and flow.dtype == np.float32 and np.isfinite(flow).all()


@pytest.mark.parametrize("name", sorted(BACKENDS))
def test_capabilities_decide_what_a_spec_may_ask(name):
    b = BACKENDS[name]
    assert EstimatorSpec(backend=name).refine == ("dis" if b.refinable else "none")
    for field, value, allowed in (("refine", "variational", b.refinable), ("bidirectional", True, b.bidirectional)):
        if allowed:
            EstimatorSpec(backend=name, **{field: value})
        else:
            with pytest.raises(ValueError, match=name):
                EstimatorSpec(backend=name, **{field: value})
    kept = EstimatorSpec.applicable(backend=name, refine="variational", bidirectional=True)
    assert (kept.refine == "variational") == b.refinable and kept.bidirectional == b.bidirectional


def test_node_choices_and_baselines_come_from_the_registry():
    assert PARAM_BY_NAME["backend"].choices == tuple(n for n, b in BACKENDS.items() if b.node)
    labels = baselines()
    assert {s.backend for s in labels.values()} == {n for n, b in BACKENDS.items() if not b.network}
    assert "dis-medium" in labels and "dis-ultrafast" in labels and "zero" in labels


def test_runtime_settings_go_through_configure():
    cfg = dict(DEFAULTS, inference_height=128, inference_width=192, bidirectional=True, network_threshold=2.5)
    net = build_estimator(estimator_spec(dict(DEFAULTS, backend="flownet", device="cpu")))  # refined network
    net.configure(**runtime_settings(net, cfg))
    assert net.base.inference_size == (128, 192) and net.base.bidirectional is True
    adaptive = build_estimator(estimator_spec(dict(DEFAULTS, backend="adaptive", device="cpu")))
    adaptive.configure(**runtime_settings(adaptive, cfg))
    assert adaptive.network_threshold == 2.5 and adaptive.network.inference_size == (128, 192)
    dis = build_estimator(estimator_spec(dict(DEFAULTS, backend="dis")))
    assert runtime_settings(dis, cfg) == {}
    with pytest.raises(ValueError, match="no run-time setting inference_size"):
        dis.configure(inference_size=(64, 64))


class HalfShift(Estimator):
    """A toy backend: the flow is half a pixel to the right everywhere."""

    description, device = "half a pixel right", "cpu"

    def prepare(self, image, color_order="rgb"):
        return image.shape[:2]

    def flow(self, first, second):
        out = np.zeros(tuple(first) + (2,), np.float32)
        out[..., 0] = 0.5
        return out


def test_a_new_backend_is_one_registry_entry(monkeypatch):
    monkeypatch.setitem(BACKENDS, "half", Backend("half", "toy", lambda spec: HalfShift(), node=False))
    spec = EstimatorSpec(backend="half")
    assert spec.name == "half" and "half" in baselines()
    flow = build_estimator(spec).estimate(textured(), textured())
    assert np.all(flow[..., 0] == 0.5)
    p = argparse.ArgumentParser()
    add_estimator_arguments(p)
    assert specs_from_args(p.parse_args(["--backend", "half"])) == [spec]


def test_tool_options_default_to_what_the_node_runs():
    node = estimator_spec(DEFAULTS)
    single, many = argparse.ArgumentParser(), argparse.ArgumentParser()
    add_estimator_arguments(single)
    add_estimator_arguments(many, many=True)
    assert specs_from_args(single.parse_args([])) == [node]
    args = many.parse_args([])
    args.checkpoint = [""]
    assert specs_from_args(args) == [node]
    args = many.parse_args(["--backend", "flownet", "--checkpoint", "a.pt", "--refine", "none", "dis",
                            "--dis-preset", "fast", "medium", "--directions", "forward", "both",
                            "--inference-size", "auto", "128x192"])
    names = [s.name for s in specs_from_args(args)]
    assert len(names) == 12 == len(set(names))  # presets multiply only the DIS refinement
    assert "a.pt-bi@128x192+dis-fast" in names and "a.pt" in names
    args = many.parse_args(["--backend", "adaptive", "flownet", "--checkpoint", "", "--network-threshold", "1", "2"])
    names = [s.name for s in specs_from_args(args)]  # thresholds multiply only the adaptive backend
    assert names == ["adaptive:flownet+dis-medium", "adaptive:flownet>2+dis-medium", "flownet+dis-medium"]
    with pytest.raises(SystemExit):
        many.parse_args(["--inference-size", "128by192"])
