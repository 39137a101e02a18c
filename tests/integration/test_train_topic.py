"""`seqstream train --topic`: a checkpoint trained on a Kafka topic replayed through the worker's codec."""

from __future__ import annotations

import math
import uuid
from pathlib import Path

import numpy as np
import orjson
import pytest

from models import Runner
from models.checkpoint import load_checkpoint
from models.scoring_config import CALIBRATED_SCORING
from stream import cli
from stream.admin import create_topics
from stream.tools.training_data import topic_data

from .conftest import Broker, produce_records

pytestmark = [pytest.mark.integration, pytest.mark.smoke]


def _topic_with_history(broker: Broker, streams: int = 6, events: int = 400) -> str:
    topic = f"history-{uuid.uuid4().hex[:6]}"
    create_topics(broker.bootstrap, [topic], partitions=3)
    rng = np.random.default_rng(0)
    t0 = 1_700_000_000.0
    recs: list[tuple[str, bytes | None, bytes | None]] = []
    for k in range(events):
        for s in range(streams):
            sid = f"pump-{s}"
            value = math.sin(2 * math.pi * k / 50 + s) + 0.05 * float(rng.standard_normal())
            recs.append((topic, sid.encode(), orjson.dumps({"stream": sid, "ts": t0 + 60 * k, "values": [value]})))
    recs += [(topic, b"pump-0", b"not json"), (topic, b"pump-1", b'{"stream": "pump-1"}')]  # two bad records
    late = {"stream": "pump-2", "ts": t0, "values": [0.0]}  # arrives after pump-2's later events
    recs.append((topic, b"pump-2", orjson.dumps(late)))
    produce_records(broker.bootstrap, recs)
    return topic


def test_topic_data_reads_everything_and_says_what_it_skipped(broker: Broker) -> None:
    topic = _topic_with_history(broker)
    d = topic_data({"bootstrap_servers": broker.bootstrap}, topic, "sensors", idle_s=1.0)
    assert d.records == 6 * 400 + 3  # every record read, nothing committed
    assert sorted(d.stream_ids) == [f"pump-{s}" for s in range(6)]
    lengths = dict(zip(d.stream_ids, (len(x) for x in d.series)))
    assert lengths == {**{f"pump-{s}": 400 for s in range(6)}, "pump-2": 401} and all(x.shape[1] == 1 for x in d.series)
    assert d.rejected == {"not_json": 1, "missing_field": 1} and d.reordered == 1
    assert all(np.all(np.diff(t) >= 0) for t in d.times)  # each series in event-time order
    late = d.times[d.stream_ids.index("pump-2")]
    assert late[0] == late[1] == 1_700_000_000.0  # the late event sits after the first one of its time
    capped = topic_data({"bootstrap_servers": broker.bootstrap}, topic, "sensors", max_events=100, idle_s=1.0)
    assert capped.records == 100


def test_train_on_a_topic_writes_a_checkpoint_the_worker_can_load(broker: Broker, tmp_path: Path) -> None:
    topic = _topic_with_history(broker)
    out = tmp_path / "from_topic.pt"
    argv = ["train", "--topic", topic, "--broker", broker.url, "-o", str(out), "--hidden", "8", "--epochs", "2"]
    argv += ["--steps-per-epoch", "5", "--batch-size", "8", "--window", "32", "--idle-s", "1", "--model-id", "t1"]
    assert cli.main(argv) == 0
    ck = load_checkpoint(out)
    # univariate sensors: the bundled detector's scoring (issue 18: calibrated; `--scoring` picks another)
    assert ck.model_id == "t1" and ck.scoring == CALIBRATED_SCORING
    data = ck.meta["data"]
    assert data["topic"] == topic and data["records"] == 6 * 400 + 3 and data["streams"] == 6
    assert data["rejected"] == {"not_json": 1, "missing_field": 1} and data["reordered"] == 1
    assert ck.meta["epochs_run"] == 2
    Runner.from_checkpoint(out, device="cpu")  # loads as the worker would
    assert cli.main(["train", "--topic", "no-such-topic", "--broker", broker.url, "-o", str(out)]) != 0
