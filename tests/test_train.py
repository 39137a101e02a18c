"""Training: deterministic, writes a loadable checkpoint with its config and metadata, learns."""

import numpy as np
import torch

from models import NetConfig, ScoringConfig, load_checkpoint
from models.train import TrainConfig, normalise_series, synthetic_series, train
from stream.cli import main


def test_training_is_deterministic_and_reduces_loss() -> None:
    series = synthetic_series(8, length=600, seed=3)
    cfg = TrainConfig(window=32, batch_size=16, epochs=4, steps_per_epoch=15, seed=5)
    m1, meta1 = train(series, NetConfig(hidden_size=8), ScoringConfig(), cfg)
    m2, _meta2 = train(series, NetConfig(hidden_size=8), ScoringConfig(), cfg)
    for k, v in m1.state_dict().items():
        assert torch.equal(v, m2.state_dict()[k])
    hist = [h["train_loss"] for h in meta1["history"]]
    assert hist[-1] < hist[0]


def test_normaliser_in_training_is_the_serving_one() -> None:
    from models import Batch

    from .conftest import make_runner

    series = synthetic_series(2, length=50, seed=1)
    norm = normalise_series(series, ScoringConfig())
    r = make_runner()
    # the serving path's normalised input is visible through the scorer: recompute it step by step
    aux = r.scorer.init_row().expand(1, -1).clone()
    for t in range(50):
        xn, _ = r.scorer.pre(aux, torch.from_numpy(series[0][t : t + 1]))
        assert abs(float(xn) - float(norm[0][t, 0])) < 1e-6
    assert r.process(Batch.from_rows([("a", 0.0, [1.0])])).accepted.all()


def test_cli_train_on_csv_writes_checkpoint(tmp_path, capsys) -> None:
    rng = np.random.default_rng(0)
    with open(tmp_path / "s.csv", "w") as fh:
        fh.write("timestamp,value\n")
        for t in range(400):
            fh.write(f"{t},{np.sin(t / 9) + rng.normal(0, 0.05):.5f}\n")
    out = tmp_path / "m.pt"
    rc = main(
        [
            "train",
            str(tmp_path),
            "-o",
            str(out),
            "--hidden",
            "8",
            "--epochs",
            "2",
            "--steps-per-epoch",
            "5",
            "--window",
            "32",
            "--cell",
            "lstm",
        ]
    )
    assert rc == 0
    ck = load_checkpoint(out)
    assert ck.model.config.cell == "lstm" and ck.meta["epochs_run"] == 2
    assert ck.meta["data"]["csv"] == [str(tmp_path)]
    err = capsys.readouterr().err
    assert "epoch   2/2  train" in err  # a line per epoch when stderr is not a terminal
    assert "loss summary: train " in err and "(all epochs;" in err


def test_training_progress_bar_and_loss_summary(monkeypatch, capsys) -> None:
    import sys

    from stream.cli.offline import _loss_summary, _print_epoch

    monkeypatch.setattr(sys.stderr, "isatty", lambda: True)
    update = _print_epoch(3)  # a terminal: a tqdm bar over the epochs
    update(0, 0.5, 0.4)
    update(1, 0.3, 0.35)
    update.close()  # an early stop: the bar ends where it is
    assert "train" in capsys.readouterr().err
    hist = [
        {"epoch": 0, "train_loss": 0.5, "val_loss": 0.4},
        {"epoch": 1, "train_loss": 0.3, "val_loss": 0.2},
        {"epoch": 2, "train_loss": 0.25, "val_loss": 0.21},
    ]
    text = _loss_summary({"history": hist, "train_config": {"epochs": 30}})
    assert "best 0.20000 at epoch 2" in text and "early stop after 3 of 30 epochs" in text
    assert _loss_summary({"history": []}) == "loss summary: no epoch ran"


def test_cli_train_on_simulated_source_uses_the_worker_codec(tmp_path) -> None:
    from stream.tools.training_data import N_FEATURES, simulated_series

    series = simulated_series("ticks", n_streams=6, rounds=40, seed=2)
    assert len(series) == 6 and all(s.shape[1] == N_FEATURES["ticks"] for s in series)
    # symbols trade at different activity levels (a quiet one may skip rounds, a busy one ticks often)
    lengths = sorted(len(s) for s in series)
    assert lengths[0] >= 1 and lengths[-1] >= 40 and lengths[-1] >= 2 * lengths[0]
    out = tmp_path / "ticks.pt"
    args = ["train", "--simulated", "speech", "--sim-streams", "4", "--sim-rounds", "200", "--hidden", "8"]
    args += ["--epochs", "1", "--steps-per-epoch", "3", "--window", "32", "-o", str(out)]
    assert main(args) == 0
    ck = load_checkpoint(out)
    assert ck.model.config.input_size == N_FEATURES["speech"] and ck.meta["data"]["simulated"] == "speech"


def test_cli_train_ticks_and_machines_get_their_featurised_shapes(tmp_path) -> None:
    for source, inputs, i, o in (("ticks", "ticks", 7, 2), ("machines", "masked", 8, 4)):
        out = tmp_path / f"{source}.pt"
        args = ["train", "--simulated", source, "--sim-streams", "4", "--sim-rounds", "150", "--hidden", "8"]
        args += ["--epochs", "1", "--steps-per-epoch", "3", "--window", "32", "-o", str(out)]
        assert main(args) == 0
        c = load_checkpoint(out).model.config
        assert (c.inputs, c.input_size, c.out_size) == (inputs, i, o)
