"""Bad input to the command-line tools: one line ``<tool>: error: <file>: what is wrong``, exit 2, no traceback
(flownet_ros.cli.tool). Every case runs the tool's real ``main`` on real files."""

import struct

import cv2
import numpy as np
import pytest
import torch
import yaml

from flownet_ros.evaluation.evaluate import main as evaluate_main
from flownet_ros.flow.io import write_flo
from flownet_ros.models import ModelSpec, save_checkpoint
from flownet_ros.models.checkpoint import CheckpointError, load_checkpoint
from flownet_ros.train.__main__ import main as train_main

SIZE = (16, 24)


def one_error_line(capsys, tool, *names):
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "Traceback" not in err, err
    assert err.startswith(f"python -m flownet_ros.{tool}: error: "), err
    for name in names:
        assert str(name) in err, err
    return err


@pytest.fixture
def pair_dir(tmp_path):
    """Two real PNG frames and a valid .flo of their size; the list file ``pairs.txt`` names them."""
    rng = np.random.default_rng(0)
    for name in ("a.png", "b.png"):
        cv2.imwrite(str(tmp_path / name), rng.integers(0, 255, SIZE + (3,), dtype=np.uint8))
    write_flo(tmp_path / "f.flo", np.zeros(SIZE + (2,), np.float32))
    (tmp_path / "pairs.txt").write_text("a.png b.png f.flo\n")
    return tmp_path


def flo_header(w, h):
    return struct.pack("<f", 202021.25) + struct.pack("<ii", w, h)


BAD_FLO = {
    "corrupt": b"\x00garbage\xff" * 20,
    "huge": flo_header(1 << 20, 1 << 20) + b"\0" * 64,
    "negative": flo_header(-24, 16),
    "truncated": flo_header(SIZE[1], SIZE[0]) + b"\0" * 100,
}


@pytest.mark.parametrize("case", sorted(BAD_FLO))
def test_evaluate_bad_flo(pair_dir, capsys, case):
    (pair_dir / "f.flo").write_bytes(BAD_FLO[case])
    assert evaluate_main(["--baseline", "zero", "--dataset", "list", "--root", str(pair_dir / "pairs.txt"),
                          "--no-progress"]) == 2
    one_error_line(capsys, "evaluation.evaluate", pair_dir / "f.flo")


def test_evaluate_bad_dataset_files(pair_dir, capsys):
    args = ["--baseline", "zero", "--dataset", "list", "--root", str(pair_dir / "pairs.txt"), "--no-progress"]
    write_flo(pair_dir / "f.flo", np.zeros((4, 4, 2), np.float32))  # wrong flow size
    assert evaluate_main(args) == 2
    assert "does not match" in one_error_line(capsys, "evaluation.evaluate", pair_dir / "f.flo")
    write_flo(pair_dir / "f.flo", np.zeros(SIZE + (2,), np.float32))
    (pair_dir / "b.png").write_bytes(b"\x89PNG\r\n\x1a\n not really")  # undecodable PNG
    assert evaluate_main(args) == 2
    one_error_line(capsys, "evaluation.evaluate", pair_dir / "b.png")
    (pair_dir / "b.png").unlink()  # missing file
    assert evaluate_main(args) == 2
    one_error_line(capsys, "evaluation.evaluate", pair_dir / "b.png")
    (pair_dir / "pairs.txt").write_text("a.png f.flo\n")  # bad list line
    assert evaluate_main(args) == 2
    one_error_line(capsys, "evaluation.evaluate", f"{pair_dir / 'pairs.txt'}:1")
    missing_list = ["--baseline", "zero", "--dataset", "list", "--root", str(pair_dir / "nope.txt"), "--no-progress"]
    assert evaluate_main(missing_list) == 2
    one_error_line(capsys, "evaluation.evaluate", pair_dir / "nope.txt")


def test_evaluate_bad_checkpoints(pair_dir, capsys):
    (pair_dir / "random.pt").write_bytes(np.random.default_rng(1).bytes(2048))
    spec = ModelSpec(width=0.125)
    good = save_checkpoint(pair_dir / "good.pt", spec.build(), spec)
    obj = torch.load(good, weights_only=True)
    obj["version"] = "abc"
    torch.save(obj, pair_dir / "version.pt")
    (pair_dir / "folder.pt").mkdir()
    for name, why in (("missing.pt", "not found"), ("random.pt", "not a PyTorch checkpoint"),
                      ("version.pt", "'abc' is not an integer"), ("folder.pt", "is a directory")):
        assert evaluate_main(["--checkpoint", str(pair_dir / name), "--device", "cpu", "--dataset", "list",
                              "--root", str(pair_dir / "pairs.txt"), "--no-progress"]) == 2
        assert why in one_error_line(capsys, "evaluation.evaluate", pair_dir / name)


def test_wrong_width_in_metadata_is_refused_before_the_model_is_built(tmp_path, monkeypatch):
    spec = ModelSpec(width=0.125)
    path = save_checkpoint(tmp_path / "m.pt", spec.build(), spec)
    obj = torch.load(path, weights_only=True)
    obj["spec"]["width"] = 4.0  # would build a 2.7 GB model
    torch.save(obj, tmp_path / "wide.pt")
    monkeypatch.setattr(ModelSpec, "build", lambda self: pytest.fail(f"built a model of width {self.width}"))
    with pytest.raises(CheckpointError, match=r"wide.pt: bad metadata: width 4.0 means 256 channels in conv1, "
                                              r"the weights have 8"):
        load_checkpoint(tmp_path / "wide.pt")


def train_config(tmp_path):
    cfg = {"model": {"width": 0.125},
           "data": {"train": {"type": "list", "list_file": str(tmp_path / "pairs.txt")}, "augment": None,
                    "batch_size": 1},
           "train": {"iterations": 2, "threads": 1, "out_dir": str(tmp_path / "run"), "val_every": 0,
                     "device": "cpu", "log_every": 1}}
    path = tmp_path / "cfg.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return path


@pytest.mark.parametrize("section,key,value", [("train", "iterations", "abc"), ("optim", "lr", "fast")])
def test_train_bad_config_values_name_the_key(pair_dir, capsys, section, key, value):
    cfg = train_config(pair_dir)
    data = yaml.safe_load(cfg.read_text())
    data.setdefault(section, {})[key] = value
    cfg.write_text(yaml.safe_dump(data))
    assert train_main(["--config", str(cfg), "--no-progress"]) == 2
    err = one_error_line(capsys, "train")
    assert f"{section}.{key} must be" in err and repr(value) in err


def test_train_on_a_corrupt_flo(pair_dir, capsys):
    (pair_dir / "f.flo").write_bytes(BAD_FLO["corrupt"])
    assert train_main(["--config", str(train_config(pair_dir)), "--no-progress"]) == 2
    one_error_line(capsys, "train", pair_dir / "f.flo")
