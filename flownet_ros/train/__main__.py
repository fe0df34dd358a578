"""``python -m flownet_ros.train --config config/train_cpu.yaml [--resume] [--set section.key=value ...]``.

Also under torchrun without changes: ``torchrun --nproc_per_node N -m flownet_ros.train --config ...``.
"""

from __future__ import annotations

import argparse
import logging
import shlex
import sys
from pathlib import Path

from flownet_ros.cli import tool
from flownet_ros.train.config import load_config


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m flownet_ros.train", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--config", required=True, help="YAML training config (see config/train_*.yaml)")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="SECTION.KEY=VALUE",
                   help="override a config value (YAML syntax), e.g. --set train.iterations=100")
    p.add_argument("--resume", nargs="?", const="auto", default=None, metavar="CHECKPOINT",
                   help="continue from CHECKPOINT (default: <out_dir>/checkpoint.pt) exactly where it stopped")
    p.add_argument("--overwrite", action="store_true",
                   help="start a new run in an out_dir that holds one (its checkpoints and logs are deleted)")
    p.add_argument("--stop-at", type=int, default=None, metavar="N",
                   help="stop (with a checkpoint) after iteration N; --resume continues later")
    p.add_argument("--max-minutes", type=float, default=None,
                   help="stop (with a checkpoint) after this many minutes of this session")
    p.add_argument("--no-progress", action="store_true", help="no tqdm progress bar")
    return p.parse_args(argv)


@tool("python -m flownet_ros.train")
def main(argv=None) -> int:
    args = parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s",
                        datefmt="%H:%M:%S")
    cfg = load_config(args.config, args.overrides)
    from flownet_ros.train.trainer import CHECKPOINT, Trainer, claim_out_dir  # heavy imports after argument checks

    claim_out_dir(Path(cfg["train"]["out_dir"]), resume=bool(args.resume), overwrite=args.overwrite)

    command = "python -m flownet_ros.train " + " ".join(shlex.quote(a) for a in
                                                        (sys.argv[1:] if argv is None else argv))
    trainer = Trainer(cfg, command=command, config_path=args.config)
    try:
        if args.resume:
            path = Path(cfg["train"]["out_dir"]) / CHECKPOINT if args.resume == "auto" else Path(args.resume)
            trainer.resume(path)
        summary = trainer.fit(stop_at=args.stop_at, max_minutes=args.max_minutes, progress=not args.no_progress)
    finally:
        trainer.close()
    if trainer.env.is_main:
        print(f"finished: iteration {summary['iteration']} ({summary['reason']}), "
              f"weights sha256 {summary['weights_digest'][:16]}, ranks agree: "
              f"{len(set(summary['rank_weights_digests'])) == 1} ({len(summary['rank_weights_digests'])} ranks)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
