"""The shipped default model loads through the default path and beats zero flow on held-out pairs."""

import numpy as np

from flownet_ros.data.procedural import render_pair
from flownet_ros.flow.metrics import epe
from flownet_ros.inference import FlowEstimator
from flownet_ros.models.checkpoint import DEFAULT_MODEL_CPU


def test_shipped_cpu_model_is_the_default_and_beats_zero_flow():
    est = FlowEstimator.from_checkpoint(None, device="cpu")
    assert est.checkpoint.endswith(DEFAULT_MODEL_CPU)
    assert est.spec.arch == "flownetc" and est.spec.training, "shipped model must carry its training metadata"
    model_epe, zero_epe = [], []
    for index in range(8):  # seed far from any training seed: held out
        pair = render_pair((987654, index), (256, 320))
        flow = est.estimate(pair["img1"], pair["img2"])
        model_epe.append(epe(flow, pair["flow"], pair["valid"]))
        zero_epe.append(epe(np.zeros_like(pair["flow"]), pair["flow"], pair["valid"]))
    # An untrained network sits at (or above) the zero-flow error; the shipped one must be clearly better.
    assert np.mean(model_epe) < 0.85 * np.mean(zero_epe), (model_epe, zero_epe)
