"""torchrun: 2 gloo processes train with the unchanged command and agree on the weights."""

import os
import socket
import subprocess
import sys

import torch
import yaml
from helpers import tiny_config


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def run(args, cwd):
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONPATH=str(cwd))
    return subprocess.run([sys.executable, *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=600)


def test_two_process_gloo_run_agrees_with_itself_and_with_one_process(tmp_path, repo):
    cfg = tiny_config(tmp_path, "ddp", iterations=4, checkpoint_every=2, val_every=2, log_every=2)
    data = yaml.safe_load(cfg.read_text())
    data["optim"]["lr"] = 1.0e-4  # small steps: 1- and 2-process runs stay numerically close
    cfg.write_text(yaml.safe_dump(data))
    train = ["-m", "flownet_ros.train", "--config", str(cfg), "--no-progress"]
    two = run(["-m", "torch.distributed.run", "--nproc_per_node", "2", "--master_addr", "127.0.0.1",
               "--master_port", str(free_port()), *train], repo)
    assert two.returncode == 0, two.stdout[-3000:] + two.stderr[-3000:]
    assert "ranks agree: True (2 ranks)" in two.stdout
    ddp = torch.load(tmp_path / "ddp" / "final.pt", weights_only=True)
    digests = ddp["rank_weights_digests"]
    assert len(digests) == 2 and digests[0] == digests[1]
    assert ddp["spec"]["training"]["world_size"] == 2 and ddp["iteration"] == 4

    # same global batch in one process: the same samples, so (up to float rounding, which Adam can
    # amplify for near-zero gradients) the same updates; wrong sharding would differ by ~100 %
    one = run([*train, "--set", f"train.out_dir={tmp_path / 'single'}"], repo)
    assert one.returncode == 0, one.stderr[-3000:]
    init = run([*train, "--set", f"train.out_dir={tmp_path / 'init'}", "--stop-at", "0"], repo)
    assert init.returncode == 0, init.stderr[-3000:]
    single = torch.load(tmp_path / "single" / "final.pt", weights_only=True)["state_dict"]
    start = torch.load(tmp_path / "init" / "checkpoint.pt", weights_only=True)["state_dict"]
    update = sum(float((single[k] - start[k]).abs().sum()) for k in single)
    diff = sum(float((single[k] - ddp["state_dict"][k]).abs().sum()) for k in single)
    assert update > 0 and diff < 0.01 * update, (diff, update)
