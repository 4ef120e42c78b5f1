"""`collector train DATASET --policy act|baseline --steps N --out CKPT`: train an imitation policy.

Reads the episodes through EpisodeDataset (any catalogue filter: --task --lighting --weight --outcome
--qa ...; an empty selection is an error naming the filters), learns to predict action chunks from
camera frames, joint state and the instruction's task and target object, and writes one checkpoint
file (weights, normalization, cameras and image size, joint names, conditioning vocabulary, training
config, provenance with every episode's SHA-256) plus a loss-curve PNG beside it (CKPT with suffix
.loss.png). CPU by default, CUDA when present (--device). A fixed --seed gives the same run;
--resume CKPT continues a run from its last checkpoint (same data, model and seed) up to --steps.
The checkpoint is registered in the catalogue of each dataset folder it learnt from, with the episode
ids it used (`collector catalog policies DATASET` lists them).

Last line: one JSON object (checkpoint, steps, final_loss, samples_per_s, wall_s, parameters, ...).
"""
from __future__ import annotations

import argparse
import json

from collector.dataset.cli_options import add_filter_arguments, add_source_argument
from collector.dataset.selection import FILTER_NAMES

POLICY_NAMES = ("act", "baseline")


def run(args) -> int:
    import torch

    from collector.errors import ConfigError
    from collector.policy.train import TrainConfig, train

    if args.threads:
        torch.set_num_threads(args.threads)
    try:
        height, width = _image_size(args.image_size)
    except ValueError:
        raise ConfigError(f"--image-size {args.image_size!r}: expected WIDTHxHEIGHT, e.g. 80x60") from None
    hyperparameters = _hyperparameters(args.hp or [])
    filters = {name: getattr(args, f"filter_{name}") for name in FILTER_NAMES if getattr(args, f"filter_{name}")}
    config = TrainConfig(sources=list(args.source), out=args.out, policy=args.policy, steps=args.steps,
                         batch_size=args.batch_size, lr=args.lr, ema_decay=args.ema_decay, chunk=args.chunk, cameras=args.cameras,
                         hyperparameters=hyperparameters,
                         image_size=(height, width), filters=filters, val_fraction=args.val_fraction,
                         seed=args.seed, device=args.device, checkpoint_every=args.checkpoint_every,
                         num_workers=args.workers, resume=args.resume, control=args.control,
                         operator_weight=args.operator_weight,
                         augment=_augment(args.augment), scene_views=list(args.scene_views or []),
                         scene_batch=args.scene_batch,
                         time_limit_s=None if args.time_limit is None else 60.0 * args.time_limit,
                         progress=False if args.no_progress else None, plot=not args.no_plot)
    result = train(config)
    summary = result.summary()
    print(f"trained {config.policy} for {result.steps - result.start_step} step(s)"
          f"{f' (resumed at {result.start_step})' if result.start_step else ''}: final loss {summary['final_loss']}, "
          f"{summary['samples_per_s']} samples/s on {result.device}, {result.parameters:,} parameters, "
          f"{summary['wall_s']} s")
    print(f"checkpoint: {result.checkpoint}" + (f"   loss curve: {result.plot}" if result.plot else ""))
    summary["registered"] = _register(result.checkpoint, summary)
    print(json.dumps(summary))
    return 0


def _register(checkpoint_path, summary: dict) -> list:
    """Catalogue the checkpoint in each dataset folder it trained on; returns [{dataset, policy_id}].

    The checkpoint is already written, so a catalogue that cannot take the record is a warning, not
    a failed run."""
    import sys
    from pathlib import Path

    from collector.errors import CollectorError
    from collector.policy.checkpoint import Checkpoint
    from collector.session.policy_records import has_catalogue, record_checkpoint

    checkpoint = Checkpoint.load(checkpoint_path)
    provenance = checkpoint.provenance
    details = {"steps": summary["steps"], "final_loss": summary["final_loss"], "wall_s": summary["wall_s"],
               "filters": provenance.get("filters"), "conditioning": checkpoint.vocabulary.to_state(),
               "collector_version": provenance.get("collector_version"),
               "training_started": provenance.get("created_at")}
    registered = []
    for root in provenance.get("dataset_roots", []):
        if not has_catalogue(root):
            continue
        episodes = [e["episode_id"] for e in provenance.get("episodes", [])
                    if Path(e["path"]).resolve().is_relative_to(Path(root))]
        try:
            policy_id = record_checkpoint(root, checkpoint_path, policy=checkpoint.policy, episodes=episodes,
                                          details=details)
        except CollectorError as exc:
            print(f"collector train: warning: checkpoint not catalogued: {exc}", file=sys.stderr)
            continue
        print(f"catalogued in {root} as policy {policy_id} ({len(episodes)} episode(s))")
        registered.append({"dataset": root, "policy_id": policy_id})
    return registered


def _hyperparameters(items):
    from collector.errors import ConfigError

    out = {}
    for item in items:
        key, sep, text = item.partition("=")
        if not sep or not key:
            raise ConfigError(f"--hp {item!r}: expected KEY=VALUE, e.g. d_model=64")
        try:
            out[key] = json.loads(text)
        except ValueError:
            out[key] = text  # a bare word is a string
    return out


def _augment(items):
    """--augment (the study's setting) or --augment KEY=VALUE ... (collector/policy/augmentation.py)."""
    from collector.errors import ConfigError

    if items is None:
        return {}
    if items == []:
        from collector.policy.augmentation import STUDY_AUGMENTATION

        return dict(STUDY_AUGMENTATION)
    out = {}
    for item in items:
        key, sep, value = item.partition("=")
        try:
            out[key.strip()] = float(value)
        except ValueError:
            sep = ""
        if not sep:
            raise ConfigError(f"--augment {item!r}: expected KEY=NUMBER (shift, brightness, contrast)")
    return out


def _image_size(text: str):
    width, height = (int(v) for v in text.lower().split("x"))
    if width < 8 or height < 8:
        raise ValueError(text)
    return height, width


def register(subparsers):
    parser = subparsers.add_parser("train", help="train an ACT-style or baseline policy on a dataset",
                                   description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_source_argument(parser)
    parser.add_argument("--policy", choices=POLICY_NAMES, default="act", help="policy to train (default act)")
    parser.add_argument("--steps", type=int, default=2000, help="total optimizer steps (default 2000)")
    parser.add_argument("--out", "-o", required=True, metavar="CKPT", help="checkpoint file to write, e.g. policy.pt")
    parser.add_argument("--resume", metavar="CKPT", help="continue the run saved in this checkpoint")
    parser.add_argument("--seed", type=int, default=0, help="seed of weights, data order and split (default 0)")
    parser.add_argument("--device", choices=("auto", "cpu", "cuda"), default="auto",
                        help="auto: CUDA when torch sees a GPU, else CPU (default)")
    parser.add_argument("--batch-size", type=int, default=16, help="samples per step (default 16)")
    parser.add_argument("--lr", type=float, default=3e-4, help="AdamW learning rate (default 3e-4)")
    parser.add_argument("--ema-decay", type=float, default=0.0, metavar="D",
                        help="ship a moving average of the weights, e.g. 0.999 (~the last 1000 steps); 0 (default): "
                             "the last step's weights")
    parser.add_argument("--chunk", type=int, default=30, help="actions predicted per step (default 30: 1 s at 30 Hz)")
    parser.add_argument("--cameras", nargs="+", metavar="CAM", help="cameras the policy sees (default: all recorded)")
    parser.add_argument("--image-size", default="80x60", metavar="WxH",
                        help="frames are downscaled to this size (default 80x60)")
    parser.add_argument("--hp", action="append", metavar="KEY=VALUE",
                        help="a policy hyperparameter (JSON value), e.g. --hp d_model=64 --hp kl_weight=1; "
                             "unknown keys are refused with the known ones listed")
    parser.add_argument("--val-fraction", type=float, default=0.0,
                        help="share of episodes held out for a validation L1 at each checkpoint (default 0)")
    parser.add_argument("--checkpoint-every", type=int, default=500, metavar="N",
                        help="write the checkpoint every N steps (and at the end)")
    parser.add_argument("--workers", type=int, default=0,
                        help="data loader processes (default 0: read in this process, with the frame cache)")
    parser.add_argument("--threads", type=int, default=1,
                        help="torch CPU threads (default 1: on a shared 2-core machine 2 threads trained 3x slower "
                             "than 1; 0 = torch's choice)")
    parser.add_argument("--control", action="append", metavar="SOURCE",
                        help="train only on rows this source commanded (repeatable): --control operator keeps the "
                             "demonstrations and the operator's corrections of policy takes (HG-DAgger)")
    parser.add_argument("--operator-weight", type=float, default=1.0, metavar="W",
                        help="draw the rows the operator commanded W times as often as the policy's (default 1): "
                             "weights corrections above the takes the policy drove")
    parser.add_argument("--augment", nargs="*", metavar="KEY=VALUE",
                        help="image augmentation: alone, shift=3 brightness=0.2 contrast=0.2; or set each")
    parser.add_argument("--scene-views", nargs="+", metavar="FILE",
                        help="labelled views of new layouts (collector scene-views) that also train the object "
                             "head, each step --scene-batch of them (baseline with --hp object_loss above 0)")
    parser.add_argument("--scene-batch", type=int, default=16, help="scene views per step (default 16)")
    parser.add_argument("--time-limit", type=float, metavar="MINUTES",
                        help="stop and save after this much training time, even before --steps")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    parser.add_argument("--no-plot", action="store_true", help="no loss-curve PNG")
    add_filter_arguments(parser)
    parser.set_defaults(func=run)
