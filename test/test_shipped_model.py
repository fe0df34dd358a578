"""The shipped default model loads through the default path and beats zero flow: on held-out generated pairs,
and on the real-image set at every motion magnitude (where the evaluation data is fetched)."""

import numpy as np
import pytest

from flownet_ros.data.generator import GeneratedFlowDataset
from flownet_ros.flow.metrics import epe
from flownet_ros.inference import FlowEstimator
from flownet_ros.models.checkpoint import DEFAULT_MODEL_CPU


@pytest.fixture(scope="module")
def shipped():
    return FlowEstimator.from_checkpoint(None, device="cpu")


def test_shipped_cpu_model_is_the_default_and_beats_zero_flow(shipped):
    assert shipped.checkpoint.endswith(DEFAULT_MODEL_CPU)
    assert shipped.spec.arch == "flownetc" and shipped.spec.training, "shipped model must carry its training metadata"
    pairs = GeneratedFlowDataset(size=(256, 320), length=8, seed=987654, photos="skimage")  # held-out seed
    model_epe, zero_epe = [], []
    for pair in (pairs[i] for i in range(len(pairs))):
        flow = shipped.estimate(pair["img1"], pair["img2"])
        model_epe.append(epe(flow, pair["flow"], pair["valid"]))
        zero_epe.append(epe(np.zeros_like(pair["flow"]), pair["flow"], pair["valid"]))
    # An untrained network sits at (or above) the zero-flow error; the shipped one must be clearly better.
    assert np.mean(model_epe) < 0.85 * np.mean(zero_epe), (model_epe, zero_epe)


def test_shipped_cpu_model_beats_zero_flow_at_every_magnitude_on_real_images(shipped):
    """The promise of models/README.md, checked on the held-out photographs (2 pairs per photo and
    magnitude would take minutes; one pair per motion class and photo keeps it under a minute)."""
    from flownet_ros.data.photos import is_fetched
    from flownet_ros.data.realimages import RealImagePairs
    from flownet_ros.evaluation.evaluate import run, summaries
    from flownet_ros.inference.classic import ZeroFlowEstimator

    if not is_fetched("plasma-workspace-wallpapers"):
        pytest.skip("real-image evaluation photos not fetched: run `make data`")
    result = run([shipped, ZeroFlowEstimator()], ["model", "zero"], RealImagePairs(groups=["photos"]), progress=False)
    model, zero = summaries(result)["all"]
    for label, value in model["epe_bins"].items():
        assert value < zero["epe_bins"][label], (label, model["epe_bins"], zero["epe_bins"])
