"""Training: multi-scale loss on hand-made cases, schedule, config, a short run, exact resume."""

import math
import sys
from dataclasses import replace

import numpy as np
import pytest
import torch
import yaml
from helpers import tiny_config

from flownet_ros.models import load_checkpoint
from flownet_ros.train import ConfigError, MultiScaleEPE, PaperSchedule, load_config
from flownet_ros.train.__main__ import main as train_main
from flownet_ros.train.data import IterationSampler
from flownet_ros.train.loss import downsample_target

SIZES = [(16, 16), (8, 8), (4, 4), (2, 2), (1, 1)]  # flow2..flow6 of a 64x64 input


def zeros_preds(batch=1):
    return [torch.zeros(batch, 2, h, w) for h, w in SIZES]


# ----------------------------------------------------------------------------- loss
def test_loss_constant_flow_zero_prediction():
    # gt u = 20 px everywhere -> target 1.0 (/20) at every scale; EPE 1 per coarse pixel, summed
    flow = torch.zeros(1, 2, 64, 64)
    flow[:, 0] = 20.0
    out = MultiScaleEPE()(zeros_preds(), flow)
    expected = 0.005 * 256 + 0.01 * 64 + 0.02 * 16 + 0.08 * 4 + 0.32 * 1
    assert out.total.item() == pytest.approx(expected, rel=1e-6)  # 2.88
    assert float(out.per_scale["flow2"]) == pytest.approx(256.0)
    assert float(out.epe_px["flow6"]) == pytest.approx(20.0)


def test_loss_pythagorean_error_and_batch_normalisation():
    flow = torch.zeros(2, 2, 64, 64)  # gt zero; prediction (3, 4) px = (0.15, 0.2) / 20 everywhere
    preds = [p + torch.tensor([0.15, 0.2]).view(1, 2, 1, 1) for p in zeros_preds(2)]
    out = MultiScaleEPE()(preds, flow)
    single = MultiScaleEPE()([p[:1] for p in preds], flow[:1])
    assert float(out.epe_px["flow2"]) == pytest.approx(5.0, rel=1e-5)
    assert out.total.item() == pytest.approx(0.25 * 2.88, rel=1e-5)
    assert out.total.item() == pytest.approx(single.total.item(), rel=1e-6)  # sum over pixels / batch


def test_loss_perfect_prediction_is_zero_and_targets_are_area_pooled():
    torch.manual_seed(0)
    flow = torch.randn(1, 2, 64, 64) * 10
    preds = [torch.nn.functional.avg_pool2d(flow, 64 // h) / 20.0 for h, _ in SIZES]
    assert MultiScaleEPE()(preds, flow).total.item() == pytest.approx(0.0, abs=1e-5)
    t, v = downsample_target(flow, None, (16, 16))
    manual = flow[0, :, 4:8, 8:12].mean(dim=(1, 2))  # coarse pixel (1, 2) = mean of its 4x4 block
    assert torch.allclose(t[0, :, 1, 2], manual, atol=1e-5) and bool(v.all())


def test_loss_ignores_invalid_pixels():
    flow = torch.zeros(1, 2, 64, 64)
    flow[:, 0, :, :32] = 20.0     # valid left half moves 20 px
    flow[:, 0, :, 32:] = 1000.0   # invalid right half holds garbage
    valid = torch.zeros(1, 64, 64, dtype=torch.bool)
    valid[:, :, :32] = True
    preds = [torch.zeros(1, 2, h, w) for h, w in SIZES]
    for p in preds:
        p[:, 0] = 1.0  # 20 px everywhere (coarse pixels mixing both halves average only valid ones)
    masked = MultiScaleEPE()(preds, flow, valid)
    assert masked.total.item() == pytest.approx(0.0, abs=1e-6)
    assert MultiScaleEPE()(preds, flow).total.item() > 10  # without the mask the garbage counts
    # a fully invalid sample contributes nothing
    none_valid = MultiScaleEPE()(zeros_preds(), flow, torch.zeros(1, 64, 64, dtype=torch.bool))
    assert none_valid.total.item() == 0.0


def test_loss_rejects_wrong_number_of_scales():
    with pytest.raises(ValueError):
        MultiScaleEPE()(zeros_preds()[:4], torch.zeros(1, 2, 64, 64))
    with pytest.raises(ValueError):
        MultiScaleEPE(weights=[1.0, 2.0])


# ----------------------------------------------------------------------------- schedule, sampler, config
def test_paper_schedule():
    s = PaperSchedule(lr=1e-4, warmup_start_lr=1e-6, warmup_iters=100, halve_after=1000, halve_every=500)
    assert s.lr_at(0) == pytest.approx(1e-6)
    assert s.lr_at(50) == pytest.approx(1e-6 + 0.5 * (1e-4 - 1e-6))
    assert s.lr_at(100) == pytest.approx(1e-4) and s.lr_at(999) == pytest.approx(1e-4)
    assert s.lr_at(1000) == pytest.approx(5e-5) and s.lr_at(1499) == pytest.approx(5e-5)
    assert s.lr_at(1500) == pytest.approx(2.5e-5)
    paper = PaperSchedule()  # 1e-4, warm-up 10k, halved every 100k after 300k
    assert paper.lr_at(10_000) == pytest.approx(1e-4) and paper.lr_at(400_000) == pytest.approx(2.5e-5)


def test_sampler_shards_are_disjoint_and_independent_of_world_size():
    one = IterationSampler(10, 4, seed=3).batch_for(7)
    r0 = IterationSampler(10, 4, seed=3, rank=0, world_size=2).batch_for(7)
    r1 = IterationSampler(10, 4, seed=3, rank=1, world_size=2).batch_for(7)
    assert r0 + r1 == one
    assert [g for _, g in one] == [28, 29, 30, 31]
    epoch = [i for it in range(5) for i, _ in IterationSampler(20, 4, seed=1).batch_for(it)]
    assert sorted(epoch) == list(range(20))  # one epoch visits every item once
    resumed = IterationSampler(10, 4, seed=3, start_iteration=7, iterations=8)
    assert list(resumed) == [one]
    with pytest.raises(ValueError):
        IterationSampler(10, 3, seed=0, world_size=2)


def test_config_defaults_overrides_and_errors(tmp_path, repo):
    for name in ("train_cpu.yaml", "train_cuda.yaml"):
        cfg = load_config(repo / "config" / name)
        assert cfg["model"]["arch"] == "flownetc" and cfg["loss"]["weights"] == [0.005, 0.01, 0.02, 0.08, 0.32]
    cfg = load_config(repo / "config" / "train_cpu.yaml",
                      ["train.iterations=7", "data.train.size=[64, 64]", "data.augment=null"])
    assert cfg["train"]["iterations"] == 7 and cfg["data"]["augment"] == {}
    assert cfg["data"]["train"]["size"] == [64, 64] and cfg["data"]["train"]["type"] == "generated"
    bad = tmp_path / "bad.yaml"
    bad.write_text("optim:\n  lrr: 0.1\n")
    with pytest.raises(ConfigError, match="optim.lrr"):
        load_config(bad)
    with pytest.raises(ConfigError, match="amp"):
        load_config(None, ["train.amp=fp8"])
    with pytest.raises(ConfigError, match="not found"):
        load_config(tmp_path / "missing.yaml")


# ----------------------------------------------------------------------------- training runs
def batch_loss(checkpoint, data_cfg):
    """Multi-scale loss of a checkpoint on the 4 fixed training pairs (train-mode outputs)."""
    from flownet_ros.data import build_dataset
    from flownet_ros.inference.preprocess import normalize_pair
    from flownet_ros.train.data import collate

    model, spec = load_checkpoint(checkpoint)
    ds = build_dataset(data_cfg)
    batch = collate([ds[i] for i in range(len(ds))])
    a, b = normalize_pair(batch["img1"].float(), batch["img2"].float(), spec)
    model.train()
    with torch.no_grad():
        return MultiScaleEPE()(model(a, b), batch["flow"], batch["valid"]).total.item()


def test_twenty_iterations_lower_the_loss(tmp_path):
    cfg_path = tiny_config(tmp_path)
    # iteration 0 weights = the seeded initialisation: save them by stopping after 0 updates
    assert train_main(["--config", str(cfg_path), "--no-progress", "--stop-at", "0",
                       "--set", f"train.out_dir={tmp_path / 'init'}"]) == 0
    assert train_main(["--config", str(cfg_path), "--no-progress"]) == 0
    data = yaml.safe_load(cfg_path.read_text())["data"]["train"]
    before = batch_loss(tmp_path / "init" / "checkpoint.pt", data)
    after = batch_loss(tmp_path / "run" / "final.pt", data)
    assert math.isfinite(after) and after < 0.85 * before, (before, after)  # 0.68 -> 0.51 here

    # the checkpoint is loadable with weights_only=True and by the public loader / estimator
    obj = torch.load(tmp_path / "run" / "final.pt", map_location="cpu", weights_only=True)
    assert obj["iteration"] == 20 and obj["data_position"]["samples_seen"] == 80
    assert obj["spec"]["training"]["iterations"] == 20
    assert "python -m flownet_ros.train" in obj["spec"]["training"]["command"]
    from flownet_ros.inference import FlowEstimator
    est = FlowEstimator.from_checkpoint(str(tmp_path / "run" / "final.pt"), device="cpu")
    flow = est.estimate(np.zeros((50, 70, 3), np.uint8), np.zeros((50, 70, 3), np.uint8))
    assert flow.shape == (50, 70, 2)
    assert (tmp_path / "run" / "tb").is_dir() and any((tmp_path / "run" / "tb").iterdir())


def test_resume_gives_bit_identical_weights(tmp_path):
    straight = tiny_config(tmp_path, "straight", iterations=7, checkpoint_every=3, val_every=3)
    split = tiny_config(tmp_path, "split", iterations=7, checkpoint_every=3, val_every=3)
    assert train_main(["--config", str(straight), "--no-progress"]) == 0
    assert train_main(["--config", str(split), "--no-progress", "--stop-at", "4"]) == 0
    mid = torch.load(tmp_path / "split" / "checkpoint.pt", weights_only=True)
    assert mid["iteration"] == 4 and not (tmp_path / "split" / "final.pt").exists()
    assert train_main(["--config", str(split), "--no-progress", "--resume"]) == 0

    a = torch.load(tmp_path / "straight" / "final.pt", weights_only=True)
    b = torch.load(tmp_path / "split" / "final.pt", weights_only=True)
    assert a["iteration"] == b["iteration"] == 7
    for k in a["state_dict"]:
        assert torch.equal(a["state_dict"][k], b["state_dict"][k]), k
    for sa, sb in zip(a["optimizer"]["state"].values(), b["optimizer"]["state"].values()):
        assert torch.equal(sa["exp_avg"], sb["exp_avg"]) and torch.equal(sa["exp_avg_sq"], sb["exp_avg_sq"])
    assert a["rank_weights_digests"] == b["rank_weights_digests"]
    # and the run really changed the weights between the interruption and the end
    assert any(not torch.equal(mid["state_dict"][k], b["state_dict"][k]) for k in b["state_dict"])


def test_resume_rejects_bad_files_with_one_line_naming_them(tmp_path, capsys):
    """A model file (not a training checkpoint), a missing, a truncated and a random file: exit 2 and one
    error line naming the file and what is wrong; never a traceback, never advice to disable weights_only."""
    from flownet_ros.models import ModelSpec, build_model, save_checkpoint
    cfg_path = tiny_config(tmp_path, iterations=2)
    save_checkpoint(tmp_path / "plain.pt", build_model("flownetc", 0.125), ModelSpec(width=0.125))
    assert train_main(["--config", str(cfg_path), "--no-progress", "--stop-at", "1"]) == 0
    good = (tmp_path / "run" / "checkpoint.pt").read_bytes()
    (tmp_path / "truncated.pt").write_bytes(good[: len(good) // 2])
    (tmp_path / "random.pt").write_bytes(np.random.default_rng(0).bytes(4096))
    capsys.readouterr()
    for name, why in (("plain.pt", "optimizer"), ("nope.pt", "not found"), ("truncated.pt", "truncated"),
                      ("random.pt", "not a PyTorch checkpoint")):
        assert train_main(["--config", str(cfg_path), "--no-progress", "--resume", str(tmp_path / name)]) == 2
        err = capsys.readouterr().err.strip()
        assert len(err.splitlines()) == 1 and str(tmp_path / name) in err and why in err, err
        assert "weights_only=False" not in err and "weights_only` set to `False" not in err


class ShiftedNoise(torch.utils.data.Dataset):
    """A user's own dataset: blurred noise shifted by a known integer flow (for ``type: python``)."""

    def __init__(self, size=(64, 64), length=4, seed=0):
        self.size, self.length, self.seed = tuple(size), length, seed

    def __len__(self):
        return self.length

    def __getitem__(self, i):
        import cv2
        rng = np.random.default_rng([self.seed, i])
        (h, w), m = self.size, 6
        big = cv2.GaussianBlur(rng.integers(0, 256, (h + 2 * m, w + 2 * m, 3)).astype(np.uint8), (5, 5), 1.5)
        dx, dy = (int(v) for v in rng.integers(-m, m + 1, 2))
        flow = np.empty((h, w, 2), np.float32)
        flow[..., 0], flow[..., 1] = dx, dy
        return {"img1": big[m:m + h, m:m + w].copy(), "img2": big[m - dy:m - dy + h, m - dx:m - dx + w].copy(),
                "flow": flow, "valid": np.ones((h, w), bool)}


def test_own_dataset_class_and_augmentation(tmp_path):
    cfg_path = tiny_config(tmp_path, iterations=2, val_every=0)
    cfg = yaml.safe_load(cfg_path.read_text())
    cfg["data"]["train"] = {"type": "python", "target": "test_train:ShiftedNoise", "size": [80, 96]}
    cfg["data"]["augment"] = {"crop": [64, 64]}  # paper augmentation + crop from the data module
    cfg_path.write_text(yaml.safe_dump(cfg))
    assert train_main(["--config", str(cfg_path), "--no-progress"]) == 0
    obj = torch.load(tmp_path / "run" / "final.pt", weights_only=True)
    assert "target=test_train:ShiftedNoise" in obj["spec"]["training"]["data"]
    assert "crop" in obj["spec"]["training"]["augment"]


def test_time_limit_stops_with_a_checkpoint(tmp_path, capsys):
    cfg_path = tiny_config(tmp_path, iterations=50)
    assert train_main(["--config", str(cfg_path), "--no-progress", "--max-minutes", "0"]) == 0
    assert "iteration 1 (time limit)" in capsys.readouterr().out
    obj = torch.load(tmp_path / "run" / "checkpoint.pt", weights_only=True)
    assert obj["iteration"] == 1 and not (tmp_path / "run" / "final.pt").exists()


def test_kaiming_init_keeps_the_correlation_signal():
    from flownet_ros.models import build_model
    from flownet_ros.train.trainer import init_weights

    torch.manual_seed(0)
    model = build_model("flownetc", 0.25)
    init_weights(model)
    w = model.conv3_1[0].weight.detach()
    fan_in = w.shape[1] * w.shape[2] * w.shape[3]
    assert float(w.std()) == pytest.approx(math.sqrt(2.0 / (1 + 0.01) / fan_in), rel=0.05)
    assert all(float(p.detach().abs().max()) == 0.0 for n, p in model.named_parameters() if n.endswith("bias"))


def test_gpu_train_script_rehearsed_on_cpu(tmp_path, repo):
    """scripts/gpu_train.sh end to end with a tiny CPU config: build, train, export fp16, evaluate, split into
    parts of at most 16 MiB with a checksum, summary; the parts reassemble into a model that loads."""
    import hashlib
    import json
    import os
    import subprocess

    from flownet_ros.inference import FlowEstimator

    tiny = ("--set train.device=cpu --set train.amp=fp32 --set train.channels_last=false --set model.width=0.125 "
            "--set data.batch_size=2 --set data.train.size=[64,96] --set data.val.size=[64,96] --set data.val.length=2 "
            "--set data.train.photos=skimage --set data.val.photos=skimage --set train.iterations=4 "
            "--set train.log_every=2 --set train.val_every=2")
    env = dict(os.environ, PYTHON=sys.executable, GPU_TRAIN_MINUTES="2", GPU_TRAIN_ARGS=tiny,
               GPU_TRAIN_EVAL="--dataset generated --count 2 --size 64 96 --arg photos=skimage")
    out = tmp_path / "out"
    proc = subprocess.run(["bash", str(repo / "scripts" / "gpu_train.sh"), str(out)], cwd=repo, env=env,
                          capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    parts = sorted(out.glob("flownetc_cuda.pt.part-*"))
    assert parts and all(p.stat().st_size <= 16 * 2**20 for p in parts) and len(list(out.iterdir())) <= 8
    model = tmp_path / "flownetc_cuda.pt"
    model.write_bytes(b"".join(p.read_bytes() for p in parts))
    digest, name = (out / "flownetc_cuda.pt.sha256").read_text().split()
    assert name == "flownetc_cuda.pt" and hashlib.sha256(model.read_bytes()).hexdigest() == digest
    est = FlowEstimator.from_checkpoint(str(model), device="cpu")
    assert est.spec.width == 0.125 and est.spec.training["stored_dtype"] == "float16"
    summary = json.loads((out / "summary.json").read_text())
    assert summary["iterations"] == 4 and summary["pairs_per_s"] > 0 and summary["final"]["reason"] == "done"
    assert {r["method"] for r in summary["evaluation"]} >= {"flownetc_cuda.pt", "zero", "dis-medium"}
    assert "it 4 loss" in (out / "train.log").read_text()


def test_sigkill_never_leaves_a_broken_checkpoint_and_stale_temporaries_go(tmp_path, repo):
    """Killed (SIGKILL) at arbitrary moments while it checkpoints every iteration: checkpoint.pt always loads,
    and the temporaries a killed writer leaves are removed by the next run, which resumes and finishes."""
    import os
    import signal
    import subprocess
    import time

    cfg_path = tiny_config(tmp_path, iterations=150, checkpoint_every=1, val_every=0, log_every=50)
    cmd = [sys.executable, "-m", "flownet_ros.train", "--config", str(cfg_path), "--no-progress"]
    env = dict(os.environ, OMP_NUM_THREADS="1")
    ckpt = tmp_path / "run" / "checkpoint.pt"
    for delay in (0.05, 0.3, 0.7):  # after the run's first new checkpoint: start-up time varies with load
        before = ckpt.stat().st_mtime_ns if ckpt.exists() else 0
        proc = subprocess.Popen(cmd + (["--resume"] if ckpt.exists() else []), cwd=repo, env=env,
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 300
        while not (ckpt.exists() and ckpt.stat().st_mtime_ns != before) and proc.poll() is None:
            assert time.monotonic() < deadline, "no checkpoint written within 300 s"
            time.sleep(0.02)
        time.sleep(delay)
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        assert torch.load(ckpt, map_location="cpu", weights_only=True)["iteration"] >= 1
    (tmp_path / "run" / "checkpoint.pt.left_by_a_kill.tmp").write_bytes(b"partial")
    done = subprocess.run(cmd + ["--resume"], cwd=repo, env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    assert not list((tmp_path / "run").glob("*.tmp")), "stale temporaries left"
    assert "left by an interrupted checkpoint write" in done.stderr
    assert torch.load(tmp_path / "run" / "final.pt", map_location="cpu", weights_only=True)["iteration"] == 150


def test_export_averages_models_of_one_architecture(tmp_path):
    """export A B OUT: the weight average (uniform model soup) with both sources in the metadata; models of
    different architectures are refused, naming the file."""
    from flownet_ros.models import save_checkpoint
    from flownet_ros.models.checkpoint import ModelSpec
    from flownet_ros.train.export import main as export_main

    spec = ModelSpec(width=0.125)
    paths = []
    for seed in (0, 1):
        torch.manual_seed(seed)
        paths.append(save_checkpoint(tmp_path / f"m{seed}.pt", spec.build(), replace(spec, training={"seed": seed})))
    assert export_main([str(paths[0]), str(paths[1]), str(tmp_path / "avg.pt")]) == 0
    avg, avg_spec = load_checkpoint(tmp_path / "avg.pt")
    w = [load_checkpoint(p)[0].state_dict()["conv1.0.weight"] for p in paths]
    torch.testing.assert_close(avg.state_dict()["conv1.0.weight"], (w[0] + w[1]) / 2)
    assert [a["training"]["seed"] for a in avg_spec.training["averaged_from"]] == [0, 1]
    other = save_checkpoint(tmp_path / "wide.pt", ModelSpec(width=0.25).build(), ModelSpec(width=0.25))
    with pytest.raises(ValueError, match="m0.pt: model .* differs from .*wide.pt: .*only models of one architecture"):
        export_main([str(paths[0]), str(other), str(tmp_path / "bad.pt")])


def test_a_new_run_into_a_run_folder_is_refused_unless_resume_or_overwrite(tmp_path, capsys):
    cfg_path = tiny_config(tmp_path, iterations=2, val_every=0)
    assert train_main(["--config", str(cfg_path), "--no-progress", "--stop-at", "1"]) == 0
    before = (tmp_path / "run" / "checkpoint.pt").read_bytes()
    capsys.readouterr()
    assert train_main(["--config", str(cfg_path), "--no-progress"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and str(tmp_path / "run") in err and "--resume" in err and "--overwrite" in err
    assert (tmp_path / "run" / "checkpoint.pt").read_bytes() == before  # nothing replaced
    assert train_main(["--config", str(cfg_path), "--no-progress", "--overwrite", "--stop-at", "0"]) == 0
    assert torch.load(tmp_path / "run" / "checkpoint.pt", weights_only=True)["iteration"] == 0
    assert train_main(["--config", str(cfg_path), "--no-progress", "--resume"]) == 0
    assert (tmp_path / "run" / "final.pt").is_file()
