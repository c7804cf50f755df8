"""A server program from a Debian package, run on loopback with its files in one work folder.

What Alertmanager and Prometheus share here: the configuration written as JSON (which is
YAML), a log file, readiness by their ``/-/ready`` endpoint, and a stop that lets them write
their state (SIGTERM, then SIGKILL if they will not go).
"""

from __future__ import annotations

import json
import subprocess
import time
from pathlib import Path

import requests

from sensorwatch.core.optional import system_program


class LoopbackService:
    """Subclasses name the program and its package and give its command-line flags."""

    program: str
    package: str

    def __init__(self, work_dir: Path, port: int, config: dict):
        self.work = Path(work_dir)
        self.port, self.config = port, config
        self.url = f"http://127.0.0.1:{port}"
        self.proc: subprocess.Popen | None = None

    def flags(self, config_file: Path) -> list[str]:
        raise NotImplementedError

    def start(self, timeout_s: float = 60.0):
        path = system_program(self.program, self.package)
        self.work.mkdir(parents=True, exist_ok=True)
        cfg = self.work / f"{self.program}.yml"
        cfg.write_text(json.dumps(self.config, indent=2))
        with open(self.work / f"{self.program}.log", "ab") as log:
            self.proc = subprocess.Popen([path, *self.flags(cfg)], stdout=log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"{self.program} exited with {self.proc.returncode}; see {self.work}")
            try:
                if requests.get(f"{self.url}/-/ready", timeout=1).status_code == 200:
                    return self
            except requests.RequestException:
                pass
            time.sleep(0.2)
        self.stop()
        raise TimeoutError(f"{self.program} not ready on {self.url} after {timeout_s} s")

    def stop(self, timeout_s: float = 20.0) -> None:
        if self.proc is None:
            return
        self.proc.terminate()
        try:
            self.proc.wait(timeout_s)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self.proc = None
