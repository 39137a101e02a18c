"""kcat habits on a real broker: ``produce --from-stdin`` (key<TAB>value and JSON lines) and ``tail`` with
``--partition/--offset/--group/--key/--format json``, including a key that is not UTF-8 and a round trip
of ``tail --format json`` lines back through ``produce --format json``."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from pathlib import Path
from typing import Any

import pytest

from stream.admin import create_topics

from .conftest import Broker

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]


def _cli(broker: Broker, *args: str, stdin: str | bytes | None = None) -> subprocess.CompletedProcess[bytes]:
    env = {**os.environ, "PYTHONPATH": str(ROOT), "SEQSTREAM_BROKER_URL": broker.url}
    data = stdin.encode() if isinstance(stdin, str) else stdin
    p = subprocess.run(
        [sys.executable, "-m", "stream.cli", *args], input=data, capture_output=True, timeout=90, env=env
    )
    print(args, p.returncode, p.stderr.decode(errors="replace")[-500:])
    return p


def _json_lines(p: subprocess.CompletedProcess[bytes]) -> list[dict[str, Any]]:
    assert p.returncode == 0, p.stderr
    text = p.stdout.decode()  # strict: a replacement character would have needed errors="replace"
    assert "\ufffd" not in text
    return [json.loads(line) for line in text.splitlines() if line.strip()]


@pytest.fixture
def topics(broker: Broker) -> tuple[str, str]:
    t = f"kcat-{uuid.uuid4().hex[:8]}"
    create_topics(broker.bootstrap, [t, t + "-copy"], 3)
    return t, t + "-copy"


def test_produce_stdin_then_tail(broker: Broker, topics: tuple[str, str]) -> None:
    topic, copy = topics
    # key<TAB>value lines; a line without a tab has no key; the empty line is skipped
    p = _cli(broker, "produce", "--from-stdin", "-t", topic, stdin='pump-7\t{"v": 1}\n\nno-key-value\npump-7\t2\n')
    assert p.returncode == 0 and p.stderr.decode().strip().endswith(f"sent 3 records to {topic}"), p.stderr
    # JSON lines: a key that is not UTF-8 (b64:), an explicit partition, headers, a non-string value
    lines = [
        {"key": "b64:/+7/", "value": {"ts": 1.5, "value": 0.25}, "partition": 2, "headers": {"src": "test"}},
        {"key": "plain", "value": "b64:AP8=", "partition": 2},
    ]
    p = _cli(
        broker, "produce", "-P", "-t", topic, "--format", "json", stdin="".join(json.dumps(x) + "\n" for x in lines)
    )
    assert p.returncode == 0 and f"sent 2 records to {topic}" in p.stderr.decode()

    every = _json_lines(_cli(broker, "tail", topic, "--offset", "beginning", "--format", "json", "-e"))
    assert len(every) == 5
    by_key: dict[Any, list[dict[str, Any]]] = {}
    for r in every:
        by_key.setdefault(r["key"], []).append(r)
    assert [r["value"] for r in by_key["pump-7"]] == ['{"v": 1}', "2"]  # one partition: in order
    assert by_key[None][0]["value"] == "no-key-value"
    binary = by_key["b64:/+7/"][0]  # bytes ff ee ff: shown as base64, never as replacement characters
    assert binary["partition"] == 2 and binary["headers"] == [["src", "test"]]
    assert json.loads(binary["value"]) == {"ts": 1.5, "value": 0.25}
    assert by_key["plain"][0]["value"] == "b64:AP8="

    # --partition, --key (a binary key given as b64:), --offset -N (the last N of each partition)
    p2 = _json_lines(_cli(broker, "tail", topic, "-p", "2", "-o", "beginning", "--format", "json", "-e"))
    assert p2 == [r for r in every if r["partition"] == 2] and {"b64:/+7/", "plain"} <= {r["key"] for r in p2}
    keyed = _json_lines(_cli(broker, "tail", topic, "-k", "b64:/+7/", "-o", "beginning", "--format", "json", "-e"))
    assert [r["key"] for r in keyed] == ["b64:/+7/"]
    last = _json_lines(_cli(broker, "tail", topic, "-p", "2", "-o", "-1", "--format", "json", "-e"))
    assert [r["key"] for r in last] == ["plain"]
    text = _cli(broker, "tail", topic, "-p", "2", "-o", "beginning", "-e")
    assert text.returncode == 0 and b"b64:/+7/" in text.stdout and "\ufffd" not in text.stdout.decode()

    # --group: reads from the beginning once, commits; the same group again has nothing new
    group = f"g-{uuid.uuid4().hex[:6]}"
    first = _json_lines(
        _cli(broker, "tail", topic, "-G", group, "-o", "beginning", "--format", "json", "--timeout", "4")
    )
    assert len(first) == 5
    again = _json_lines(
        _cli(broker, "tail", topic, "-G", group, "-o", "beginning", "--format", "json", "--timeout", "3")
    )
    assert again == []

    # round trip: tail's JSON lines are produce's input (keys, values, partitions, headers kept)
    p = _cli(
        broker, "produce", "-P", "-t", copy, "--format", "json", stdin="".join(json.dumps(r) + "\n" for r in every)
    )
    assert p.returncode == 0, p.stderr
    copied = _json_lines(_cli(broker, "tail", copy, "-o", "beginning", "--format", "json", "-e"))

    def strip(rs: list[dict[str, Any]]) -> list[tuple[Any, ...]]:
        return sorted((r["partition"], r["key"] or "", r["value"], json.dumps(r["headers"])) for r in rs)

    assert strip(copied) == strip(every)


def test_produce_stdin_bad_line_is_one_line(broker: Broker, topics: tuple[str, str]) -> None:
    topic, _ = topics
    p = _cli(
        broker, "produce", "-P", "-t", topic, "--format", "json", stdin='{"value": 1}\n{"key": "k"}\n{"value": 3}\n'
    )
    lines = [ln for ln in p.stderr.decode().splitlines() if ln.strip()]
    assert p.returncode == 2 and len(lines) == 1, lines
    assert lines[0].startswith("seqstream: error: stdin line 2: ") and "1 record(s) before it were sent" in lines[0]
    got = _json_lines(_cli(broker, "tail", topic, "-o", "beginning", "--format", "json", "-e"))
    assert [r["value"] for r in got] == ["1"]
    p = _cli(broker, "tail", topic, "-p", "7", "-e")
    assert p.returncode == 2 and b"no partition 7" in p.stderr
