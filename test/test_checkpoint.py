"""Checkpoint loading: public layouts built from the documented key names, own format, bad files."""

import pickle

import numpy as np
import pytest
import torch

from flownet_ros.models import CheckpointError, FlowNetC, ModelSpec, load_checkpoint, save_checkpoint
from flownet_ros.models.checkpoint import FLOWNETPYTORCH_MEAN


def public_state_dict(arch: str, layout: str, batch_norm: bool = False, seed: int = 0):
    """A state_dict written from the public checkpoints' documented key names, independent of our
    model code."""
    g = torch.Generator().manual_seed(seed)
    sd = {}

    def conv(name, cin, cout, k):
        sd[f"{name}.0.weight"] = torch.randn(cout, cin, k, k, generator=g) * 0.01
        if batch_norm:
            sd[f"{name}.1.weight"] = torch.ones(cout)
            sd[f"{name}.1.bias"] = torch.zeros(cout)
            sd[f"{name}.1.running_mean"] = torch.zeros(cout)
            sd[f"{name}.1.running_var"] = torch.ones(cout)
            sd[f"{name}.1.num_batches_tracked"] = torch.tensor(0)
        else:
            sd[f"{name}.0.bias"] = torch.zeros(cout)

    flownet2 = layout == "flownet2"
    if arch == "flownetc":
        conv("conv1", 3, 64, 7), conv("conv2", 64, 128, 5), conv("conv3", 128, 256, 5)
        conv("conv_redir", 256, 32, 1), conv("conv3_1", 473, 256, 3)
    else:
        conv("conv1", 6, 64, 7), conv("conv2", 64, 128, 5), conv("conv3", 128, 256, 5)
        conv("conv3_1", 256, 256, 3)
    for name, cin, cout in (("conv4", 256, 512), ("conv4_1", 512, 512), ("conv5", 512, 512),
                            ("conv5_1", 512, 512), ("conv6", 512, 1024), ("conv6_1", 1024, 1024)):
        conv(name, cin, cout, 3)
    for name, cin, cout in (("deconv5", 1024, 512), ("deconv4", 1026, 256), ("deconv3", 770, 128),
                            ("deconv2", 386, 64)):
        sd[f"{name}.0.weight"] = torch.randn(cin, cout, 4, 4, generator=g) * 0.01
        if flownet2:
            sd[f"{name}.0.bias"] = torch.zeros(cout)
    for level, cin in ((6, 1024), (5, 1026), (4, 770), (3, 386), (2, 194)):
        sd[f"predict_flow{level}.weight"] = torch.randn(2, cin, 3, 3, generator=g) * 0.01
        if flownet2:
            sd[f"predict_flow{level}.bias"] = torch.zeros(2)
    for a, b in ((6, 5), (5, 4), (4, 3), (3, 2)):
        sd[f"upsampled_flow{a}_to_{b}.weight"] = torch.randn(2, 2, 4, 4, generator=g) * 0.01
        if flownet2 and arch == "flownetc":
            sd[f"upsampled_flow{a}_to_{b}.bias"] = torch.zeros(2)
    return sd


def test_flownet2_pytorch_flownetc_with_prefix(tmp_path):
    sd = public_state_dict("flownetc", "flownet2")
    path = tmp_path / "FlowNet2-C_checkpoint.pth.tar"
    torch.save({"epoch": 0, "state_dict": {"flownetc." + k: v for k, v in sd.items()}, "best_EPE": 3.1}, path)
    model, spec = load_checkpoint(path)
    assert (spec.arch, spec.bias_layout, spec.normalization, spec.source) == \
        ("flownetc", "flownet2", "sample_mean", "flownet2-pytorch")
    assert spec.width == 1.0 and not spec.batch_norm and spec.div_flow == 20.0
    assert sum(p.numel() for p in model.parameters()) == 39_175_298
    torch.testing.assert_close(model.state_dict()["conv3_1.0.weight"], sd["conv3_1.0.weight"])
    assert not model.training


def test_flownet2_pytorch_flownets_with_module_prefix(tmp_path):
    sd = public_state_dict("flownets", "flownet2")
    path = tmp_path / "FlowNet2-S_checkpoint.pth.tar"
    torch.save({"epoch": 0, "state_dict": {"module." + k: v for k, v in sd.items()}, "best_EPE": 3.1}, path)
    model, spec = load_checkpoint(path)
    assert spec.arch == "flownets" and spec.bias_layout == "flownet2"
    torch.testing.assert_close(model.state_dict()["predict_flow2.weight"], sd["predict_flow2.weight"])


@pytest.mark.parametrize("arch,bn", [("flownetc", False), ("flownets", False), ("flownets", True)])
def test_flownetpytorch_files(tmp_path, arch, bn):
    sd = public_state_dict(arch, "flownetpytorch", batch_norm=bn)
    path = tmp_path / f"{arch}_EPE1.766.pth.tar"
    name = arch + ("_bn" if bn else "")
    torch.save({"epoch": 300, "arch": name, "state_dict": sd, "best_EPE": 1.766, "div_flow": 20}, path)
    model, spec = load_checkpoint(path)
    assert (spec.arch, spec.batch_norm, spec.bias_layout) == (arch, bn, "flownetpytorch")
    assert spec.normalization == "fixed_mean" and spec.mean == FLOWNETPYTORCH_MEAN
    assert spec.training["best_EPE"] == 1.766
    if arch == "flownetc":
        assert sum(p.numel() for p in model.parameters()) == 39_174_320
    torch.testing.assert_close(model.state_dict()["conv2.0.weight"], sd["conv2.0.weight"])


def test_wrongly_shaped_key_fails_naming_file_and_key(tmp_path):
    sd = public_state_dict("flownetc", "flownet2")
    sd["conv3_1.0.weight"] = torch.zeros(256, 400, 3, 3)
    path = tmp_path / "bad.pth.tar"
    torch.save({"state_dict": sd}, path)
    with pytest.raises(CheckpointError) as err:
        load_checkpoint(path)
    msg = str(err.value)
    assert "bad.pth.tar" in msg and "conv3_1.0.weight" in msg and "(256, 400, 3, 3)" in msg


def test_missing_and_unexpected_keys_are_listed(tmp_path):
    sd = public_state_dict("flownetc", "flownet2")
    del sd["predict_flow3.weight"]
    sd["extra_head.weight"] = torch.zeros(3)
    path = tmp_path / "partial.pth"
    torch.save(sd, path)
    with pytest.raises(CheckpointError, match=r"missing keys: predict_flow3.weight.*unexpected keys: extra_head"):
        load_checkpoint(path)


def test_own_format_round_trip_keeps_weights_and_metadata(tmp_path):
    torch.manual_seed(1)
    spec = ModelSpec(width=0.25, training={"iterations": 20, "data": "procedural"})
    model = spec.build()
    path = save_checkpoint(tmp_path / "sub" / "own.pt", model, spec)
    loaded, spec2 = load_checkpoint(path)
    assert spec2 == spec
    for k, v in model.state_dict().items():
        torch.testing.assert_close(loaded.state_dict()[k], v, rtol=0, atol=0)
    half = save_checkpoint(tmp_path / "half.pt", model, spec, half=True)
    assert torch.load(half, weights_only=True)["state_dict"]["conv1.0.weight"].dtype == torch.float16
    loaded_half, _ = load_checkpoint(half)
    torch.testing.assert_close(loaded_half.state_dict()["conv1.0.weight"], model.state_dict()["conv1.0.weight"],
                               atol=1e-3, rtol=1e-3)
    assert not list(tmp_path.glob("*.tmp")) and not list((tmp_path / "sub").glob("*.tmp"))


def test_spec_override_changes_colour_order(tmp_path):
    sd = public_state_dict("flownets", "flownetpytorch")
    torch.save({"arch": "flownets", "state_dict": sd, "div_flow": 20}, tmp_path / "caffe.pth")
    _, spec = load_checkpoint(tmp_path / "caffe.pth", spec_override={"color_order": "bgr"})
    assert spec.color_order == "bgr"


class NotAllowed:
    pass


@pytest.mark.parametrize("content,match", [
    (b"", "the file is empty"),
    (b"this is not a checkpoint at all", "not a PyTorch checkpoint"),
    (np.random.default_rng(0).bytes(4096), "not a PyTorch checkpoint"),
    (pickle.dumps({"a": 1}), "a pickle that is not a dict of tensors"),
])
def test_corrupt_files_name_the_file(tmp_path, content, match):
    """One line naming the file and what it is; never advice to turn the weights_only safety check off."""
    path = tmp_path / "corrupt.pt"
    path.write_bytes(content)
    with pytest.raises(CheckpointError, match=match) as err:
        load_checkpoint(path)
    text = str(err.value)
    assert "corrupt.pt" in text and len(text.splitlines()) == 1
    assert "weights_only=False" not in text and "set to `False`" not in text


def test_truncated_file_and_missing_file(tmp_path):
    good = save_checkpoint(tmp_path / "good.pt", FlowNetC(width=0.125), ModelSpec(width=0.125))
    data = good.read_bytes()
    (tmp_path / "truncated.pt").write_bytes(data[: len(data) // 2])
    with pytest.raises(CheckpointError, match="truncated.pt: damaged or truncated PyTorch zip archive"):
        load_checkpoint(tmp_path / "truncated.pt")
    with pytest.raises(CheckpointError, match="nothere.pt: file not found"):
        load_checkpoint(tmp_path / "nothere.pt")


def test_pickled_objects_are_refused_weights_only(tmp_path):
    path = tmp_path / "evil.pt"
    torch.save({"state_dict": public_state_dict("flownets", "flownet2"), "payload": NotAllowed()}, path)
    with pytest.raises(CheckpointError, match=r"evil.pt.*NotAllowed.*refused \(checkpoints are loaded with "
                                              r"weights_only=True\)") as err:
        load_checkpoint(path)
    assert "weights_only=False" not in str(err.value) and len(str(err.value).splitlines()) == 1


def test_not_a_flownet(tmp_path):
    torch.save({"state_dict": {"backbone.weight": torch.zeros(3)}}, tmp_path / "resnet.pth")
    with pytest.raises(CheckpointError, match="no FlowNet weights"):
        load_checkpoint(tmp_path / "resnet.pth")
