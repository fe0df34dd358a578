"""``python -m flownet_ros.train.summary CHECKPOINT EVAL_JSON OUT_JSON``: one JSON summary of a training run.

What scripts/gpu_train.sh brings back besides the model: iterations, samples, wall time, throughput
(iterations/s, pairs/s over the training time), hardware, precision, the final loss and EPE, and the
evaluation table (real-image set, all pairs) next to the CPU model, DIS and zero flow.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any, Dict

from flownet_ros.models.checkpoint import read_checkpoint


def summarize_run(checkpoint: Path, eval_json: Path, seconds: float = 0.0) -> Dict[str, Any]:
    obj = read_checkpoint(checkpoint, "training checkpoint")
    training = obj["spec"].get("training", {})
    wall = float(obj.get("wall_time_s", 0.0)) or float("nan")
    iterations = int(obj.get("iteration", 0))
    results = json.loads(Path(eval_json).read_text()).get("results", []) if Path(eval_json).is_file() else []
    return {
        "iterations": iterations, "samples_seen": training.get("samples_seen"), "wall_time_s": round(wall, 1),
        "iterations_per_s": iterations / wall, "pairs_per_s": (training.get("samples_seen") or 0) / wall,
        "hardware": training.get("hardware"), "amp": training.get("amp"), "torch": training.get("torch"),
        "model": {k: obj["spec"][k] for k in ("arch", "width")}, "final": obj.get("final_stats", {}),
        "call_seconds": seconds,
        "evaluation": [{k: r.get(k) for k in ("method", "epe", "fl_all", "epe_bins", "latency_ms_median")}
                       for r in results],
    }


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m flownet_ros.train.summary", description=__doc__.split("\n")[0])
    p.add_argument("checkpoint", type=Path)
    p.add_argument("eval_json", type=Path)
    p.add_argument("out", type=Path)
    p.add_argument("--seconds", type=float, default=0.0, help="wall time of the whole call")
    args = p.parse_args(argv)
    summary = summarize_run(args.checkpoint, args.eval_json, args.seconds)
    args.out.write_text(json.dumps(summary, indent=1, default=str))
    print(json.dumps({k: summary[k] for k in ("iterations", "wall_time_s", "iterations_per_s", "pairs_per_s",
                                              "final")}, default=str))
    return 0


if __name__ == "__main__":
    sys.exit(main())
