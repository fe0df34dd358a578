"""Benchmark CLIs: they run end to end on tiny sizes and report what they measured (timings are never
asserted), and a backend that computes a different function is reported, not timed."""

import argparse
import json
import subprocess
import sys

import torch
from helpers import REPO

from flownet_ros.bench import correlation as bench_corr


def run_bench(*args):
    proc = subprocess.run([sys.executable, "-m", "flownet_ros.bench", *args], cwd=REPO, capture_output=True,
                          text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return proc.stdout


def test_correlation_bench_json(tmp_path):
    out = tmp_path / "corr.json"
    text = run_bench("correlation", "--device", "cpu", "--batch", "1", "2", "--channels", "8", "--height", "6",
                     "--width", "10", "--max-displacement", "4", "--repeat", "1", "--warmup", "0",
                     "--markdown", "--json", str(out))
    assert "| device |" in text
    rows = json.loads(out.read_text())["results"]
    by = {(r["backend"], r["batch"]): r for r in rows}
    for b in (1, 2):
        ours, ref = by[("flownet_ros-cpu", b)], by[("reference", b)]
        assert ours["max_abs_diff"] < 1e-5 and ref["fwd_speedup"] == 1.0
        assert ours["fwd_ms"] > 0 and ours["fwdbwd_ms"] > 0 and ours["fwd_speedup"] > 0


def test_wrong_function_is_not_timed(capsys):
    args = argparse.Namespace(channels=4, height=5, width=7, max_displacement=2, stride2=1, warmup=0, repeat=1,
                              clock="wall")
    wrong = lambda a, b: bench_corr._reference(2, 1)(a, b).flip(1)  # noqa: E731 - channel order reversed
    results = bench_corr.run_config("cpu", torch.float32, 1, args,
                                    {"reference": bench_corr._reference(2, 1), "flipped": wrong})
    assert [r.backend for r in results] == ["reference"]
    assert "flipped on cpu/torch.float32: output differs from the reference" in capsys.readouterr().out


def test_estimator_bench_runs():
    text = run_bench("estimator", "--height", "64", "--width", "96", "--inference-size", "64x64", "auto",
                     "--refine", "none", "variational", "dis", "--directions", "forward", "both",
                     "--backend", "flownet", "adaptive",
                     "--device", "cpu", "--repeat", "1")
    assert "| step" in text and "DIS medium (alone)" in text and " bidirectional [cpu, fp32] | 64x64 |" in text
    for row in ("refine variational", "refine dis (medium)", "node path (flownet, refine none)",
                "node path (flownet, refine dis)"):
        assert f"| {row} |" in text, text
    assert "| node path (adaptive, refine dis: dis path) |" in text or "(adaptive, refine dis: network path)" in text


def test_generator_bench_runs(tmp_path):
    out = tmp_path / "gen.json"
    text = run_bench("generator", "--size", "32", "48", "--batch", "2", "--width", "0.125", "--photos", "skimage",
                     "--repeat", "1", "--warmup", "0", "--json", str(out))
    assert "| device |" in text and "|flow| px" in text
    res = json.loads(out.read_text())
    assert res["generator_pairs_per_s"] > 0 and res["train_pairs_per_s"] > 0 and res["photo_count"] == 4


def test_flow_ops_bench_both_allocators():
    text = run_bench("flow_ops", "--height", "32", "--width", "48", "--repeat", "1", "--threads", "1")
    rows = [line for line in text.splitlines() if line.startswith("| flow_to_color (numpy")]
    assert [r.split("|")[2].strip() for r in rows] == ["default", "heap"]
