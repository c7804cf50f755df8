"""A standalone Flink cluster from the apache-flink wheel's own scripts (``pyflink/bin``).

The daemon scripts with a generated configuration folder (free ports, loopback, logs and pid
files under ``work_dir``), then ``flink run -py jobs/anomaly_job.py`` against it: how the job
runs on a cluster, without a separate Flink download. Used by the tests and the benchmarks.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import yaml

from sensorwatch.core.paths import REPO
from sensorwatch.jobs.pipeline import prometheus_reporter
from sensorwatch.stack.kafka_broker import free_port


def flink_home() -> Path:
    import pyflink

    return Path(pyflink.__file__).resolve().parent


def _flatten(d: dict, prefix: str = "") -> dict:
    out = {}
    for k, v in d.items():
        key = f"{prefix}{k}"
        if isinstance(v, dict):
            out.update(_flatten(v, key + "."))
        else:
            out[key] = v
    return out


class StandaloneCluster:
    """One JobManager and one TaskManager on loopback."""

    def __init__(
        self, work_dir: Path, slots: int = 2, metrics_port: str | None = None, conf: dict[str, str] | None = None
    ):
        """``metrics_port``: serve Flink's Prometheus reporter there (a range for the JobManager
        and the TaskManager, which share the host), as ``job.metrics_port`` does in the mini-cluster.
        ``conf``: more Flink settings, over the generated ones."""
        self.work_dir = Path(work_dir)
        self.slots = slots
        self.metrics_port = metrics_port
        self.conf = dict(conf or {})
        self.rest_port = free_port()
        self.conf_dir = self.work_dir / "conf"

    @property
    def env(self) -> dict[str, str]:
        return {
            **os.environ,
            "FLINK_CONF_DIR": str(self.conf_dir),
            "FLINK_LOG_DIR": str(self.work_dir / "log"),
            "FLINK_PID_DIR": str(self.work_dir / "pid"),
            "FLINK_LIB_DIR": str(self.work_dir / "lib"),
        }

    def _write_conf(self) -> None:
        home = flink_home()
        for sub in ("conf", "log", "pid", "lib"):
            (self.work_dir / sub).mkdir(parents=True, exist_ok=True)
        # lib/ = the wheel's lib/ plus opt/flink-python (Python operators run in the cluster),
        # as the official Flink image's PyFlink setup does
        for jar in [*(home / "lib").glob("*.jar"), *(home / "opt").glob("flink-python-*.jar")]:
            link = self.work_dir / "lib" / jar.name
            if not link.exists():
                link.symlink_to(jar)
        for f in (home / "conf").iterdir():
            if f.name != "config.yaml":
                shutil.copy(f, self.conf_dir / f.name)
        conf = _flatten(yaml.safe_load((home / "conf" / "config.yaml").read_text()) or {})
        conf.update(
            {
                "jobmanager.rpc.address": "localhost",
                "jobmanager.bind-host": "localhost",
                "jobmanager.rpc.port": free_port(),
                "rest.port": self.rest_port,
                "rest.address": "localhost",
                "rest.bind-address": "localhost",
                "taskmanager.host": "localhost",
                "taskmanager.bind-host": "localhost",
                "taskmanager.numberOfTaskSlots": self.slots,
                "taskmanager.memory.process.size": "1600m",
                "jobmanager.memory.process.size": "1024m",
                "taskmanager.rpc.port": free_port(),
                "blob.server.port": free_port(),
                "taskmanager.data.port": free_port(),
            }
        )
        if self.metrics_port is not None:
            conf.update(prometheus_reporter(self.metrics_port))
        conf.update(self.conf)
        (self.conf_dir / "config.yaml").write_text(yaml.safe_dump(conf, default_flow_style=False))
        (self.conf_dir / "workers").write_text("localhost\n")
        (self.conf_dir / "masters").write_text(f"localhost:{self.rest_port}\n")

    def _daemon(self, script: str, *args: str) -> None:
        subprocess.run(
            ["bash", str(flink_home() / "bin" / script), *args],
            env=self.env,
            check=True,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            timeout=120,
        )

    def start(self, timeout_s: float = 120.0) -> StandaloneCluster:
        self._write_conf()
        # start-cluster.sh reaches workers over ssh unless they are local: start both daemons locally
        self._daemon("jobmanager.sh", "start")
        self._daemon("taskmanager.sh", "start")
        deadline = time.monotonic() + timeout_s
        while True:
            try:
                with urllib.request.urlopen(f"http://localhost:{self.rest_port}/overview", timeout=2) as r:
                    if b'"taskmanagers":1' in r.read().replace(b" ", b""):
                        return self
            except OSError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError(f"Flink cluster not up after {timeout_s} s; logs in {self.work_dir / 'log'}")
            time.sleep(1)

    def run_py(
        self, script: Path, *args: str, python: str | None = None, timeout_s: float = 300
    ) -> subprocess.CompletedProcess:
        """``flink run -d -pyclientexec PY -pyexec PY -py script args`` against this cluster;
        PY (default: this interpreter) is the virtualenv's Python, which has the project."""
        py = python or sys.executable
        cmd = [
            "bash",
            str(flink_home() / "bin" / "flink"),
            "run",
            "-m",
            f"localhost:{self.rest_port}",
            "-d",
            "-pyclientexec",
            py,
            "-pyexec",
            py,
            "-py",
            str(script),
            *args,
        ]
        return subprocess.run(cmd, env=self.env, capture_output=True, text=True, timeout=timeout_s, cwd=REPO)

    def stop(self) -> None:
        for script in ("taskmanager.sh", "jobmanager.sh"):
            try:
                self._daemon(script, "stop-all")
            except (subprocess.SubprocessError, OSError) as exc:
                print(f"stopping {script}: {exc}")
