"""FlowNetS / FlowNetC architecture: parameter counts, layer names, output shapes."""

import pytest
import torch

from flownet_ros.models import FlowNetC, FlowNetS, build_model


def n_params(model):
    return sum(p.numel() for p in model.parameters())


@pytest.mark.parametrize("arch,layout,expected", [
    ("flownetc", "flownet2", 39_175_298),        # flownet2-pytorch FlowNetC (its published parameter count)
    ("flownetc", "flownetpytorch", 39_174_320),  # FlowNetPytorch flownetc: 978 fewer biases
])
def test_flownetc_parameter_counts(arch, layout, expected):
    assert n_params(build_model(arch, bias_layout=layout)) == expected


def test_flownets_bias_layouts_differ_by_missing_biases():
    full = n_params(FlowNetS(bias_layout="flownet2"))
    # flownet2 FlowNetS: deconv + predict biases, no upsample biases; FlowNetPytorch has neither.
    deconv_bias = 512 + 256 + 128 + 64
    predict_bias = 5 * 2
    assert full - n_params(FlowNetS(bias_layout="flownetpytorch")) == deconv_bias + predict_bias
    assert not any(k.startswith("upsampled") and k.endswith("bias") for k in FlowNetS().state_dict())


def test_public_layer_names_and_shapes():
    sd = FlowNetC().state_dict()
    assert sd["conv1.0.weight"].shape == (64, 3, 7, 7)
    assert sd["conv_redir.0.weight"].shape == (32, 256, 1, 1)
    assert sd["conv3_1.0.weight"].shape == (256, 473, 3, 3)
    assert sd["deconv5.0.weight"].shape == (1024, 512, 4, 4)
    assert sd["deconv2.0.weight"].shape == (386, 64, 4, 4)
    assert sd["predict_flow2.weight"].shape == (2, 194, 3, 3)
    assert sd["upsampled_flow6_to_5.bias"].shape == (2,)
    assert FlowNetS().state_dict()["conv1.0.weight"].shape == (64, 6, 7, 7)


def test_batch_norm_variant_has_bn_keys_and_no_conv_bias():
    sd = FlowNetS(batch_norm=True, bias_layout="flownetpytorch").state_dict()
    assert "conv1.1.running_mean" in sd and "conv1.0.bias" not in sd


@pytest.mark.parametrize("arch", ["flownetc", "flownets"])
@pytest.mark.parametrize("size", [(64, 64), (100, 130), (128, 192), (75, 61)])
def test_output_shapes_training_and_eval(arch, size):
    torch.manual_seed(0)
    model = build_model(arch, width=0.125)
    h, w = size
    x1, x2 = torch.randn(2, 3, h, w), torch.randn(2, 3, h, w)
    model.train()
    flows = model(x1, x2)
    assert len(flows) == 5
    for level, flow in zip((2, 3, 4, 5, 6), flows):
        expected = (h, w)
        for _ in range(level):
            expected = ((expected[0] + 1) // 2, (expected[1] + 1) // 2)
        assert flow.shape == (2, 2) + expected, (level, flow.shape)
    model.eval()
    with torch.no_grad():
        out = model(x1, x2)
    assert out.shape == (2, 2, h, w)
    assert torch.isfinite(out).all()


def test_eval_output_is_div_flow_times_upsampled_flow2():
    torch.manual_seed(0)
    model = FlowNetC(width=0.125, div_flow=20.0)
    x1, x2 = torch.randn(1, 3, 64, 128), torch.randn(1, 3, 64, 128)
    model.train()
    with torch.no_grad():
        flow2 = model(x1, x2)[0]
    model.eval()
    with torch.no_grad():
        out = model(x1, x2)
    expected = 20.0 * torch.nn.functional.interpolate(flow2, size=(64, 128), mode="bilinear", align_corners=False)
    torch.testing.assert_close(out, expected)


def test_width_multiplier_scales_channels_but_keeps_correlation():
    small = FlowNetC(width=0.5)
    sd = small.state_dict()
    assert sd["conv1.0.weight"].shape[0] == 32
    assert sd["conv3_1.0.weight"].shape[1] == 16 + 441  # redir (scaled) + 441 correlation channels
    assert n_params(small) < n_params(FlowNetC()) / 3


def test_invalid_arguments():
    with pytest.raises(ValueError, match="arch"):
        build_model("flownetx")
    with pytest.raises(ValueError, match="bias_layout"):
        FlowNetC(bias_layout="caffe")
    with pytest.raises(ValueError, match="width"):
        FlowNetC(width=0)
