"""The Kubernetes manifests and the Grafana dashboard in deploy/ stay true to the code: the manifests pass the
Kubernetes schemas, their config file loads with the bot's own parser and points at the Services they
define, every command they run is a real subcommand, every variable they set is one the code reads, and the
dashboard queries only metrics the bot exports."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from prometheus_client import generate_latest

from bot.cli import build_parser
from bot.config import default_config_path, discord_token, parse_config, redis_password
from bot.ops.metrics import Metrics
from tests.conftest import REPO

yaml = pytest.importorskip("yaml")
kubernetes_validate = pytest.importorskip("kubernetes_validate")

KUBERNETES = REPO / "deploy" / "kubernetes"
DASHBOARD = REPO / "deploy" / "grafana" / "nst-bot.json"
KUBERNETES_VERSION = "1.30.0"  # the oldest minor still supported upstream when these were written


def manifests() -> list[dict]:
    return [document for path in sorted(KUBERNETES.glob("*.yaml")) if path.name != "kustomization.yaml"
            for document in yaml.safe_load_all(path.read_text()) if document]


def find(kind: str, name: str) -> dict:
    return next(m for m in manifests() if m["kind"] == kind and m["metadata"]["name"] == name)


def containers(resource: dict) -> list[dict]:
    spec = resource["spec"]["template"]["spec"]
    return spec.get("initContainers", []) + spec["containers"]


def exported_metric_names() -> set[str]:
    """Every series name the bot's registry exposes, as Prometheus scrapes it (``_total``, ``_bucket``, …)."""
    text = generate_latest(Metrics().registry).decode()
    return {line.split("{")[0].split(" ")[0] for line in text.splitlines() if line and not line.startswith("#")}


def test_every_manifest_passes_the_kubernetes_schemas_strictly() -> None:
    resources = manifests()
    assert {r["kind"] for r in resources} >= {"ConfigMap", "StatefulSet", "Deployment", "Service",
                                              "HorizontalPodAutoscaler", "NetworkPolicy"}
    for resource in resources:
        kubernetes_validate.validate(resource, KUBERNETES_VERSION, strict=True)


def test_the_kustomization_lists_every_manifest() -> None:
    listed = yaml.safe_load((KUBERNETES / "kustomization.yaml").read_text())["resources"]
    assert sorted(listed) == sorted(p.name for p in KUBERNETES.glob("*.yaml") if p.name != "kustomization.yaml")


def test_the_config_map_loads_and_points_at_the_services_it_names(tmp_path: Path) -> None:
    import tomllib

    raw = tomllib.loads(find("ConfigMap", "nst-bot-config")["data"]["config.toml"])
    config = parse_config(raw, tmp_path)
    assert config.queue.backend == "redis"
    host, port = re.fullmatch(r"redis://([\w-]+):(\d+)/\d+", config.queue.redis_url).groups()
    redis = find("Service", host)
    assert int(port) in [p["port"] for p in redis["spec"]["ports"]]
    metrics = find("Service", "nst-bot-metrics")
    assert config.metrics.enabled and config.metrics.host == "0.0.0.0"
    assert [p["port"] for p in metrics["spec"]["ports"]] == [config.metrics.port]
    bot = find("StatefulSet", "nst-bot")
    assert [p["containerPort"] for c in containers(bot) for p in c.get("ports", [])] == [config.metrics.port]
    mounts = {m["name"]: m["mountPath"] for c in containers(bot) for m in c["volumeMounts"]}
    assert Path(mounts["data"]) == config.storage.data_dir


# What each variable the pods set means to the code: set it, and this reader must return what it points at.
READERS = {"NST_CONFIG": default_config_path, "DISCORD_TOKEN_FILE": discord_token,
           "NST_REDIS_PASSWORD_FILE": redis_password}
PROCESS_VARIABLES = ("NST_BOT_PROCESS", "NST_BOT_PROCESSES")  # a bot pod's index among the replicas, their count
POD_INDEX = "metadata.labels['apps.kubernetes.io/pod-index']"


def test_pods_run_real_subcommands_with_variables_the_code_reads(tmp_path: Path,
                                                                monkeypatch: pytest.MonkeyPatch) -> None:
    subcommands = set(build_parser()._subparsers._group_actions[0].choices)
    for plain in ("DISCORD_TOKEN", "NST_REDIS_PASSWORD"):  # the files must be what the readers use
        monkeypatch.delenv(plain, raising=False)
    for name in ("nst-bot", "nst-worker"):
        kind = "StatefulSet" if name == "nst-bot" else "Deployment"
        for container in containers(find(kind, name)):
            assert container["args"][0] in subcommands, container["name"]
            for variable in container.get("env", []):
                if variable["name"] in PROCESS_VARIABLES:
                    continue  # read by the config loader: test_each_bot_pod_connects_its_own_block_of_the_shards
                reader = READERS[variable["name"]]  # a KeyError names a variable no code is known to read
                secret = tmp_path / variable["name"]
                secret.write_text("a-secret-word\n")
                monkeypatch.setenv(variable["name"], str(secret))
                assert str(reader()).strip() in (str(secret), "a-secret-word"), variable["name"]
            probes = [container.get(p, {}).get("exec", {}).get("command") for p in ("startupProbe", "livenessProbe")]
            for command in filter(None, probes):
                assert command[0] == "nst-bot" and command[1] in subcommands


def test_secrets_are_files_from_the_secret_never_plain_values() -> None:
    for resource in manifests():
        if resource["kind"] not in ("StatefulSet", "Deployment"):
            continue
        for container in containers(resource):
            for variable in container.get("env", []):
                if re.search(r"TOKEN|PASSWORD", variable["name"]):
                    assert variable["name"].endswith("_FILE"), variable
                    assert variable["value"].startswith("/run/secrets/"), variable
        for volume in resource["spec"]["template"]["spec"]["volumes"]:
            if "secret" in volume:
                assert volume["secret"]["secretName"] == "nst-bot"


def test_the_worker_autoscaler_follows_a_metric_the_bot_exports() -> None:
    autoscaler = find("HorizontalPodAutoscaler", "nst-worker")
    assert autoscaler["spec"]["scaleTargetRef"]["name"] == find("Deployment", "nst-worker")["metadata"]["name"]
    names = {m["external"]["metric"]["name"] for m in autoscaler["spec"]["metrics"]}
    assert names and names <= exported_metric_names()


def test_the_dashboard_queries_only_metrics_the_bot_exports() -> None:
    dashboard = json.loads(DASHBOARD.read_text())
    expressions = [target["expr"] for panel in dashboard["panels"] for target in panel["targets"]]
    queried = {name for expr in expressions for name in re.findall(r"\bnst_\w+", expr)}
    exported = exported_metric_names()
    assert queried - exported == set(), f"not exported by bot/ops/metrics.py: {sorted(queried - exported)}"
    # Every metric the bot exports is on the dashboard (a new one needs a panel).
    families = {re.sub(r"_(total|bucket|sum|count|created)$", "", name) for name in exported}
    shown = {re.sub(r"_(total|bucket|sum|count|created)$", "", name) for name in queried}
    assert families - shown == set(), f"exported but on no panel: {sorted(families - shown)}"


def several_processes(processes: int, shards: int) -> tuple[dict, str]:
    """The bot StatefulSet and the config file with the edits docs/kubernetes.md lists for several processes."""
    bot = find("StatefulSet", "nst-bot")
    bot["spec"]["replicas"] = processes
    for variable in containers(bot)[0]["env"]:
        if variable["name"] == "NST_BOT_PROCESSES":
            variable["value"] = str(processes)
    config = find("ConfigMap", "nst-bot-config")["data"]["config.toml"]
    return bot, config.replace("[discord]\n", f"[discord]\nshards = {shards}\n", 1)


@pytest.mark.parametrize(("processes", "shards"), [(1, 0), (2, 4), (3, 8)])  # (1, 0): as shipped, not sharded
def test_each_bot_pod_connects_its_own_block_of_the_shards(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                            processes: int, shards: int) -> None:
    import tomllib

    bot, config_text = several_processes(processes, shards) if shards else \
        (find("StatefulSet", "nst-bot"), find("ConfigMap", "nst-bot-config")["data"]["config.toml"])
    kubernetes_validate.validate(bot, KUBERNETES_VERSION, strict=True)
    env = {variable["name"]: variable for variable in containers(bot)[0]["env"]}
    assert env["NST_BOT_PROCESS"]["valueFrom"]["fieldRef"]["fieldPath"] == POD_INDEX
    assert int(env["NST_BOT_PROCESSES"]["value"]) == bot["spec"]["replicas"] == processes
    # Each pod has a data volume of its own (its own job store), at the config's data_dir.
    assert [claim["metadata"]["name"] for claim in bot["spec"]["volumeClaimTemplates"]] == ["data"]
    taken = []
    for index in range(processes):
        monkeypatch.setenv("NST_BOT_PROCESS", str(index))
        monkeypatch.setenv("NST_BOT_PROCESSES", env["NST_BOT_PROCESSES"]["value"])
        taken.append(parse_config(tomllib.loads(config_text), tmp_path).discord.shard_ids)
    if not shards:
        assert taken == [()]  # the whole bot on one connection
    else:  # every shard in exactly one process, the first holding shard 0 (direct messages)
        assert sorted(shard for block in taken for shard in block) == list(range(shards)) and 0 in taken[0]


def test_the_dashboard_adds_up_each_processs_own_jobs_but_not_the_shared_workers() -> None:
    """Several bot processes (one per StatefulSet replica) each export their own queue but the same worker pool."""
    dashboard = json.loads(DASHBOARD.read_text())
    expressions = [target["expr"] for panel in dashboard["panels"] for target in panel["targets"]]
    assert all("max(nst_workers_connected)" in e for e in expressions if "nst_workers_connected" in e)
    assert all("sum(nst_queue_length)" in e for e in expressions if "nst_queue_length" in e)
