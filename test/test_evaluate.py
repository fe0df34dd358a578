"""python -m flownet_ros.evaluate on procedural pairs and on real files (Chairs layout, list file)."""

import json

import numpy as np
import pytest
import torch

from flownet_ros.data import ProceduralFlowDataset, export_chairs
from flownet_ros.evaluate import main as evaluate_main
from flownet_ros.flow.io import read_flo
from flownet_ros.models import ModelSpec, build_model, save_checkpoint


@pytest.fixture(scope="module")
def checkpoints(tmp_path_factory):
    """A tiny model in this project's format and the same kind of model as a FlowNetPytorch file."""
    d = tmp_path_factory.mktemp("ckpt")
    torch.manual_seed(0)
    own = save_checkpoint(d / "own.pt", build_model("flownetc", 0.125), ModelSpec(width=0.125))
    public = build_model("flownetc", 0.125, bias_layout="flownetpytorch")
    torch.save({"epoch": 1, "arch": "flownetc", "div_flow": 20, "best_EPE": 9.9,
                "state_dict": public.state_dict()}, d / "flownetc_public.pth.tar")
    return own, d / "flownetc_public.pth.tar"


def zero_flow_truth(samples):
    """EPE / Fl-all of the zero-flow estimate computed by hand."""
    epe_all, epe_valid, out, n = [], [], 0, 0
    for s in samples:
        mag = np.linalg.norm(s["flow"], axis=-1)
        epe_all.append(mag.mean())
        epe_valid.append(mag[s["valid"]].mean())
        out += int(((mag > 3.0) & (mag > 0.05 * mag))[s["valid"]].sum())
        n += int(s["valid"].sum())
    return np.mean(epe_all), np.mean(epe_valid), 100.0 * out / n


def by_method(path):
    return {r["method"]: r for r in json.loads(path.read_text())["results"]}


def test_procedural_with_models_and_baselines(tmp_path, checkpoints, capsys):
    own, public = checkpoints
    out = tmp_path / "eval.json"
    rc = evaluate_main(["--checkpoint", str(own), "--checkpoint", str(public), "--baseline", "zero",
                        "--baseline", "dis", "--dataset", "procedural", "--count", "3", "--seed", "5",
                        "--size", "64", "96", "--device", "cpu", "--json", str(out), "--no-progress"])
    assert rc == 0
    table = capsys.readouterr().out
    assert "| method |" in table and "dis-medium" in table and "zero" in table
    res = by_method(out)
    assert set(res) == {"own.pt", "flownetc_public.pth.tar", "zero", "dis-medium"}
    truth = zero_flow_truth([ProceduralFlowDataset(size=(64, 96), length=3, seed=5)[i] for i in range(3)])
    z = res["zero"]
    assert z["pairs"] == 3
    assert z["epe_all"] == pytest.approx(truth[0], rel=1e-5)
    assert z["epe_valid"] == pytest.approx(truth[1], rel=1e-5)
    assert z["fl_all_percent"] == pytest.approx(truth[2], rel=1e-6)
    for r in res.values():
        assert np.isfinite(r["epe_all"]) and r["ms_per_pair"] > 0
    # DIS actually tracks the motion (procedural pairs have a few px of motion at 96 px width)
    assert res["dis-medium"]["epe_valid"] < z["epe_valid"]
    setup = json.loads(out.read_text())["setup"]
    assert setup["dataset"] == {"type": "procedural", "size": [64, 96], "length": 3, "seed": 5}


def test_chairs_files_and_list_file(tmp_path, checkpoints):
    own, _ = checkpoints
    export_chairs(tmp_path / "chairs", 3, size=(64, 96), seed=1)
    out = tmp_path / "chairs.json"
    assert evaluate_main(["--checkpoint", str(own), "--baseline", "zero", "--dataset", "chairs",
                          "--root", str(tmp_path / "chairs"), "--arg", "split=all", "--device", "cpu",
                          "--json", str(out), "--no-progress"]) == 0
    flows = [read_flo(tmp_path / "chairs" / f"{i:05d}_flow.flo") for i in (1, 2, 3)]
    expected = np.mean([np.linalg.norm(f, axis=-1).mean() for f in flows])
    assert by_method(out)["zero"]["epe_all"] == pytest.approx(expected, rel=1e-5)

    listing = tmp_path / "pairs.txt"
    listing.write_text("".join(f"chairs/{i:05d}_img1.ppm chairs/{i:05d}_img2.ppm chairs/{i:05d}_flow.flo\n"
                               for i in (1, 2, 3)))
    out2 = tmp_path / "list.json"
    assert evaluate_main(["--baseline", "zero", "--dataset", "list", "--root", str(listing),
                          "--json", str(out2), "--no-progress"]) == 0
    assert by_method(out2)["zero"]["epe_all"] == pytest.approx(expected, rel=1e-5)


def test_bad_invocations(tmp_path, capsys):
    assert evaluate_main(["--baseline", "zero", "--dataset", "chairs", "--no-progress"]) == 2
    assert "needs --root" in capsys.readouterr().err
    with pytest.raises(FileNotFoundError):
        evaluate_main(["--baseline", "zero", "--dataset", "chairs", "--root", str(tmp_path / "none"),
                       "--no-progress"])
    with pytest.raises(SystemExit):
        evaluate_main(["--dataset", "procedural", "--count", "1", "--no-progress"])  # no method
