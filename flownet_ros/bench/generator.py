"""Training data throughput: the photo generator alone, and the full training step, on CPU or CUDA.

    python -m flownet_ros.bench generator [--device cpu|cuda] [--size 256 320] [--batch 4] [--width 0.25]

Times (median of ``--repeat`` after ``--warmup``): ``SceneGenerator.batch`` (render both frames, flow,
valid, camera effects), the paper's photometric augmentation, and one whole training step of the
trainer on generated batches (generation + augmentation + forward + backward + Adam), as pairs/s.
Also reports the flow statistics of the generated pairs. ``--photos skimage`` needs no download.
"""

from __future__ import annotations

import argparse
import json

import numpy as np
import torch

from flownet_ros.bench._common import machine_description, median, time_ms


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--device", default="cpu", help="cpu | cuda")
    p.add_argument("--size", type=int, nargs=2, default=(256, 320), metavar=("H", "W"))
    p.add_argument("--batch", type=int, default=4)
    p.add_argument("--width", type=float, default=0.25, help="FlowNetC width of the training step")
    p.add_argument("--amp", default="fp32", choices=("fp32", "bf16", "fp16"), help="training step precision")
    p.add_argument("--photos", default="train", choices=("train", "skimage"))
    p.add_argument("--threads", type=int, default=0, help="CPU threads of torch and OpenCV (0 = all cores)")
    p.add_argument("--repeat", type=int, default=5)
    p.add_argument("--warmup", type=int, default=1)
    p.add_argument("--json", help="also write the result to this JSON file")


def _trainer(args, tmp: str):
    from flownet_ros.train.config import load_config
    from flownet_ros.train.trainer import Trainer

    cfg = load_config(None, [f"model.width={args.width}", f"data.batch_size={args.batch}",
                             f"data.train.size=[{args.size[0]}, {args.size[1]}]", f"data.train.photos={args.photos}",
                             "data.val=null", "train.val_every=0", f"train.device={args.device}",
                             f"train.amp={args.amp}", f"train.channels_last={str(args.device == 'cuda').lower()}",
                             f"train.threads={args.threads}", f"train.out_dir={tmp}"])
    return Trainer(cfg, command="bench")


def run(args) -> int:
    import tempfile

    from flownet_ros.data.photometric import paper_augment
    from flownet_ros.train.data import BatchSource

    with tempfile.TemporaryDirectory() as tmp:
        trainer = _trainer(args, tmp)
        dev, gen = trainer.env.device, trainer.train_set.generator(trainer.env.device)
        ids = iter(range(10**9))
        gen_ms = median(time_ms(lambda: gen.batch(0, [next(ids) for _ in range(args.batch)]), dev,
                                args.warmup, args.repeat))
        b = gen.batch(0, range(args.batch))
        rngs = [np.random.default_rng(i) for i in range(args.batch)]
        aug_ms = median(time_ms(lambda: paper_augment(b["img1"] / 255, b["img2"] / 255, rngs), dev,
                                args.warmup, args.repeat))
        batches = iter(BatchSource(trainer.train_set, {"photometric": True}, 0, args.batch, dev))
        step_ms = median(time_ms(lambda: trainer.train_step(next(batches)), dev, args.warmup, args.repeat))
        flow = b["flow"]
        mags = torch.linalg.vector_norm(flow, dim=1)[b["valid"]].float().cpu().numpy()
        res = {"device": str(dev), "size": list(args.size), "batch": args.batch, "width": args.width,
               "amp": trainer.precision, "photos": args.photos, "photo_count": len(gen.atlas.sizes),
               "generator_ms": gen_ms, "generator_pairs_per_s": 1000.0 * args.batch / gen_ms,
               "augment_ms": aug_ms, "train_step_ms": step_ms, "train_pairs_per_s": 1000.0 * args.batch / step_ms,
               "flow_px_percentiles": {str(p): float(np.percentile(mags, p)) for p in (10, 50, 90, 99)},
               "valid_fraction": float(b["valid"].float().mean()), "machine": machine_description()}
        trainer.close()
    print(res["machine"])
    print(f"| device | size | batch | generator pairs/s | augmentation ms/batch | training step (width {args.width:g}, "
          f"{res['amp']}) pairs/s |\n|---|---|---:|---:|---:|---:|\n| {res['device']} | {args.size[0]}x{args.size[1]} "
          f"| {args.batch} | {res['generator_pairs_per_s']:.1f} | {aug_ms:.1f} | {res['train_pairs_per_s']:.2f} |")
    p = res["flow_px_percentiles"]
    print(f"|flow| px over valid pixels: p10 {p['10']:.2f}, median {p['50']:.2f}, p90 {p['90']:.1f}, "
          f"p99 {p['99']:.1f}; valid {100 * res['valid_fraction']:.1f} %")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(res, f, indent=2)
    return 0


if __name__ == "__main__":  # pragma: no cover
    parser = argparse.ArgumentParser(prog="python -m flownet_ros.bench.generator", description=__doc__)
    add_arguments(parser)
    raise SystemExit(run(parser.parse_args()))
