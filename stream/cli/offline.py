"""Offline subcommands of ``seqstream``, no broker involved: ``replay``, ``train``, ``evaluate``.

Registered by :mod:`stream.cli`; heavy imports (torch) happen inside the commands.
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
from typing import Any

__all__ = ["register"]


def _cmd_replay(args: argparse.Namespace) -> int:
    from models.replay import replay_path

    report = replay_path(
        args.input,
        args.output,
        checkpoint=args.checkpoint,
        batch_size=args.batch_size,
        device=args.device,
        values=args.values.split(",") if args.values else None,
        progress=not args.quiet,
    )
    print(report.summary(), file=sys.stderr)
    return 0


class _EpochProgress:
    """Training progress: a bar over the epochs with the last losses on a terminal, a line per epoch
    otherwise (logs, CI). Called once per epoch; :meth:`close` ends the bar (also after an early stop)."""

    def __init__(self, epochs: int) -> None:
        self.epochs = epochs
        self.bar: Any = None
        if sys.stderr.isatty():
            from tqdm import tqdm

            self.bar = tqdm(total=epochs, unit="epoch", desc="train", file=sys.stderr, leave=True)

    def __call__(self, epoch: int, tr: float, vl: float) -> None:
        if self.bar is None:
            print(f"epoch {epoch + 1:3d}/{self.epochs}  train {tr:.5f}  val {vl:.5f}", file=sys.stderr, flush=True)
            return
        self.bar.set_postfix(train=f"{tr:.5f}", val=f"{vl:.5f}", refresh=False)
        self.bar.update(1)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


def _print_epoch(epochs: int) -> _EpochProgress:
    return _EpochProgress(epochs)


def _report_trained(path: Any, meta: dict[str, Any], progress: _EpochProgress) -> int:
    """The loss summary and what was written, on stderr, after any training path."""
    progress.close()  # the bar's line ends before the summary
    print(_loss_summary(meta), file=sys.stderr)
    print(
        f"wrote {path}: {meta['epochs_run']} epochs, best val loss {meta['best_val_loss']:.5f}, "
        f"{meta['n_series']} series / {meta['n_events']} events, {meta['seconds']} s",
        file=sys.stderr,
    )
    return 0


def _loss_summary(meta: dict[str, Any]) -> str:
    """One paragraph after training: best validation loss and when, how training ended."""
    hist = meta.get("history") or []
    if not hist:
        return "loss summary: no epoch ran"
    best = min(hist, key=lambda h: h["val_loss"])
    planned = meta.get("train_config", {}).get("epochs", len(hist))
    ended = "all epochs" if len(hist) >= planned else f"early stop after {len(hist)} of {planned} epochs"
    return (
        f"loss summary: train {hist[0]['train_loss']:.5f} -> {hist[-1]['train_loss']:.5f}, "
        f"val {hist[0]['val_loss']:.5f} -> best {best['val_loss']:.5f} at epoch {best['epoch'] + 1} ({ended}; "
        f"the checkpoint holds the best epoch's weights)"
    )


def _cmd_train(args: argparse.Namespace) -> int:
    from models.scoring_config import ScoringConfig, named_scoring
    from models.train import run_training

    if not args.csv and not args.synthetic and not args.simulated and not args.topic:
        print(
            "seqstream train: give CSV files/directories, --synthetic N, --simulated SOURCE or --topic TOPIC",
            file=sys.stderr,
        )
        return 2
    if args.topic:
        return _train_topic(args)
    if args.simulated:
        return _train_simulated(args)
    net, cfg = _net_and_train_config(args, args.features)
    path, meta = run_training(
        args.output,
        net,
        named_scoring(args.scoring) if net.input_size == 1 else ScoringConfig(),
        cfg,
        csvs=args.csv,
        synthetic=args.synthetic,
        values=args.values.split(",") if args.values else None,
        model_id=args.model_id,
        progress=(progress := _print_epoch(cfg.epochs)),
    )
    return _report_trained(path, meta, progress)


def _cmd_evaluate(args: argparse.Namespace) -> int:
    import json

    if args.benchmark in ("ticks", "machines"):
        return _evaluate_simulated(args)
    if args.benchmark == "synthetic":
        from models.synthetic import evaluate_synthetic, format_quality

        rows = evaluate_synthetic(args.checkpoint, seed=args.seed, device=args.device)
        print(json.dumps([r.to_dict() for r in rows], indent=2) if args.json else format_quality(rows))
        return 0
    if not args.data or not args.labels:
        print("seqstream evaluate nab: give the NAB data directory and combined_windows.json", file=sys.stderr)
        return 2
    from models.evaluate import evaluate_nab

    rep = evaluate_nab(
        args.data,
        args.labels,
        args.output,
        checkpoint=args.checkpoint,
        threshold=args.threshold,
        batch_size=args.batch_size,
        device=args.device,
        progress=not args.quiet,
        protocol=args.protocol,
    )
    if args.json:
        print(json.dumps(rep.to_dict(), indent=2, sort_keys=True))
    else:
        print(rep.table())
        print(f"{rep.events} events replayed in {rep.seconds:.1f} s ({rep.events / rep.seconds:.0f} events/s)")
    return 0


def _evaluate_simulated(args: argparse.Namespace) -> int:
    """Detection quality of a source's checkpoint on labelled simulated events (stream.tools.evaluate_simulated)."""
    import json

    from stream.settings import load_settings
    from stream.tools.evaluate_simulated import evaluate_source, report_dict

    checkpoint = args.checkpoint or load_settings().checkpoint(args.benchmark)
    rep = evaluate_source(
        args.benchmark,
        checkpoint,
        streams=args.streams,
        rounds=args.rounds,
        seed=args.seed,
        device=args.device,
    )
    if args.json:
        print(json.dumps(report_dict(rep), indent=2, sort_keys=True))
    else:
        print(rep.summary())
        print(rep.table())
    return 0


def _net_and_train_config(args: argparse.Namespace, features: int | dict[str, Any]) -> tuple[Any, Any]:
    from models.nets import NetConfig
    from models.train import TrainConfig

    shape = features if isinstance(features, dict) else {"input_size": features}
    net = NetConfig(cell=args.cell, hidden_size=args.hidden, num_layers=args.layers, proj_size=args.proj, **shape)
    # the training options are named as TrainConfig's fields (--window, --batch-size, --epochs, ...)
    cfg = TrainConfig(
        **{f.name: getattr(args, f.name) for f in dataclasses.fields(TrainConfig) if hasattr(args, f.name)}
    )
    return net, cfg


def _train_simulated(args: argparse.Namespace) -> int:
    """Train a source's checkpoint on simulator output decoded by the worker's codec."""
    from models.checkpoint import save_checkpoint
    from models.scoring_config import ScoringConfig
    from models.train import train
    from stream.tools.training_data import net_shape, simulated_data

    series, times = simulated_data(args.simulated, args.sim_streams, args.sim_rounds, seed=args.seed)
    net, cfg = _net_and_train_config(args, net_shape(args.simulated))
    scoring = ScoringConfig()
    progress = _print_epoch(cfg.epochs)
    model, meta = train(series, net, scoring, cfg, progress, times=times)
    meta["data"] = {"simulated": args.simulated, "streams": args.sim_streams, "rounds": args.sim_rounds}
    meta["model_id"] = args.model_id or f"{args.simulated}-{args.cell}-h{args.hidden}"
    path = save_checkpoint(args.output, model, scoring, meta)
    return _report_trained(path, meta, progress)


def _train_topic(args: argparse.Namespace) -> int:
    """Train a source's checkpoint on a Kafka topic replayed from its first offset (the worker's codec)."""
    from models.checkpoint import save_checkpoint
    from models.scoring_config import ScoringConfig, named_scoring
    from models.train import train
    from stream.settings import load_settings
    from stream.tools.training_data import net_shape, topic_data

    settings = load_settings(broker_url=args.broker)
    if settings.broker_url is None:
        print("seqstream train --topic: give --broker kafka://HOST:PORT or set SEQSTREAM_BROKER_URL", file=sys.stderr)
        return 2
    src = args.source
    from stream.preflight import preflight

    preflight(settings, [args.topic], "check its name (kafka-topics.sh --list shows the topics)")
    data = topic_data(
        settings.kafka_kwargs(),
        args.topic,
        src,
        max_events=args.max_events,
        idle_s=args.idle_s,
        max_payload_bytes=settings.max_payload_bytes,
    )
    skipped = ", ".join(f"{n} {r}" for r, n in sorted(data.rejected.items())) or "none"
    print(
        f"read {data.records} records of {args.topic} in {data.seconds} s: {len(data.series)} streams; "
        f"skipped: {skipped}; {data.reordered} put back in event-time order",
        file=sys.stderr,
    )
    if not data.series:
        print(f"seqstream train: no decodable {src} events in {args.topic}", file=sys.stderr)
        return 1
    net, cfg = _net_and_train_config(args, net_shape(src))
    scoring = named_scoring(args.scoring) if src == "sensors" else ScoringConfig()
    progress = _print_epoch(cfg.epochs)
    model, meta = train(data.series, net, scoring, cfg, progress, times=data.times)
    meta["data"] = {
        "topic": args.topic,
        "source": src,
        "records": data.records,
        "rejected": data.rejected,
        "reordered": data.reordered,
        "streams": len(data.series),
    }
    meta["model_id"] = args.model_id or f"{src}-{args.cell}-h{args.hidden}"
    path = save_checkpoint(args.output, model, scoring, meta)
    return _report_trained(path, meta, progress)


def _add_train_arguments(t: argparse.ArgumentParser) -> None:
    t.add_argument("csv", nargs="*", help="CSV files or directories (timestamp,value[,...][,stream])")
    t.add_argument("-o", "--output", required=True, help="checkpoint file to write")
    t.add_argument("--synthetic", type=int, default=0, help="add N generated univariate sensor series")
    t.add_argument(
        "--simulated",
        default=None,
        metavar="SOURCE",
        help="train on the simulator's streams of this source (a forecaster source of stream/sources/), decoded "
        "by the worker's codec "
        "(ticks and machines get their featurised model shape; --features is ignored)",
    )
    t.add_argument(
        "--topic",
        default=None,
        help="train on this Kafka topic, replayed from its first offset without a consumer group and decoded "
        "by the worker's codec as --source (until --idle-s without records or --max-events)",
    )
    t.add_argument("--source", default="sensors", help="--topic: the source its records are (default sensors)")
    t.add_argument("--broker", default=None, help="kafka://HOST:PORT[,...] for --topic (default SEQSTREAM_BROKER_URL)")
    t.add_argument("--max-events", type=int, default=5_000_000, help="most records read from --topic")
    t.add_argument("--idle-s", type=float, default=3.0, help="--topic is read until this long without a record")
    t.add_argument(
        "--scoring",
        choices=["calibrated", "context", "plain"],
        default="calibrated",
        help="scoring stored in a univariate checkpoint: calibrated = the bundled sensor detector "
        "(models.scoring.CALIBRATED_SCORING); context = the previous one (CONTEXT_SCORING); plain = "
        "ScoringConfig(), residual only (default calibrated)",
    )
    t.add_argument("--sim-streams", type=int, default=64, help="simulated streams (with --simulated)")
    t.add_argument("--sim-rounds", type=int, default=3000, help="simulated events per stream (with --simulated)")
    t.add_argument("--cell", choices=["gru", "lstm"], default="gru")
    t.add_argument("--features", type=int, default=1, help="input vector length")
    t.add_argument("--hidden", type=int, default=64)
    t.add_argument("--layers", type=int, default=1)
    t.add_argument("--proj", type=int, default=0, help="input projection size (0: none)")
    t.add_argument("--window", type=int, default=128, help="truncated-BPTT window (events)")
    t.add_argument("--batch-size", type=int, default=64)
    t.add_argument("--epochs", type=int, default=30)
    t.add_argument("--steps-per-epoch", type=int, default=100)
    t.add_argument("--lr", type=float, default=3e-3)
    t.add_argument("--clip", type=float, default=1.0, help="gradient-norm clip")
    t.add_argument("--patience", type=int, default=5, help="early-stopping patience (epochs)")
    t.add_argument("--seed", type=int, default=0)
    t.add_argument("--values", default=None, help="comma-separated value columns")
    t.add_argument("--model-id", default=None, help="model id stored in the checkpoint (default: file stem)")


def register(sub: Any) -> None:
    """Add the offline subcommands to the ``seqstream`` parser."""
    r = sub.add_parser("replay", help="stream CSV file(s) through the Runner offline (NAB results format)")
    r.add_argument("input", help="a CSV file (timestamp,value[,value...][,stream]) or a directory of them")
    r.add_argument("-o", "--output", required=True, help="output CSV (for a file) or directory (for a directory)")
    r.add_argument("--checkpoint", default=None, help="checkpoint file (default: the bundled sensor model)")
    r.add_argument("--batch-size", type=int, default=256, help="events per micro-batch (default 256)")
    r.add_argument("--device", default="cpu", help="auto | cpu | cuda (default cpu)")
    r.add_argument("--values", default=None, help="comma-separated value columns (default: all but timestamp/stream)")
    r.add_argument("-q", "--quiet", action="store_true", help="no progress bar")
    r.set_defaults(func=_cmd_replay)

    t = sub.add_parser("train", help="train a GRU/LSTM forecaster checkpoint offline")
    _add_train_arguments(t)
    t.set_defaults(func=_cmd_train)

    e = sub.add_parser("evaluate", help="score the detector on a labelled benchmark (NAB, simulated events)")
    e.add_argument(
        "benchmark",
        choices=["nab", "ticks", "machines", "synthetic"],
        help="nab: Numenta Anomaly Benchmark scoring; ticks/machines: precision, recall and latency per "
        "event kind on labelled simulated events (stream.tools.evaluate_simulated); synthetic: the sensor detector on "
        "generated families like NAB's unseen categories (models.synthetic, --seed)",
    )
    e.add_argument("data", nargs="?", help="NAB data directory (category/file.csv)")
    e.add_argument("labels", nargs="?", help="NAB combined_windows.json")
    e.add_argument("--streams", type=int, default=100, help="ticks/machines: simulated streams")
    e.add_argument("--rounds", type=int, default=2000, help="ticks/machines: simulator rounds")
    e.add_argument("--seed", type=int, default=0, help="ticks/machines: simulator seed; synthetic: generator seed")
    e.add_argument("-o", "--output", default=None, help="keep the result files in this directory")
    e.add_argument("--checkpoint", default=None, help="checkpoint file (default: the bundled model of the source)")
    e.add_argument("--threshold", type=float, default=None, help="fixed threshold (default: open_threshold)")
    e.add_argument(
        "--protocol",
        action="store_true",
        help="nab: also the leave-one-category-out protocol and the sensitivity table (models.protocol; minutes)",
    )
    e.add_argument("--batch-size", type=int, default=256, help="events per micro-batch (default 256)")
    e.add_argument("--device", default="cpu", help="auto | cpu | cuda (default cpu)")
    e.add_argument("--json", action="store_true", help="print the results as JSON")
    e.add_argument("-q", "--quiet", action="store_true", help="no progress bar")
    e.set_defaults(func=_cmd_evaluate)
