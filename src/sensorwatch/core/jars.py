"""The JVM jars sensorwatch runs, fetched from Maven Central through ``jvm/pom.xml``.

One command (``sensorwatch jars`` / ``make jars``) runs Maven once; a stamp holding a
hash of the poms and the Java sources makes every later call a no-op that downloads
nothing. The cache folder is git-ignored: ``.cache/jars/{kafka,flink}``.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
from pathlib import Path

from sensorwatch.core.paths import REPO

JVM_DIR = REPO / "jvm"


class JarsMissing(RuntimeError):
    """The jar cache is absent or stale; the message says which command fills it."""


def jars_dir() -> Path:
    return Path(os.environ.get("SENSORWATCH_JARS", REPO / ".cache" / "jars"))


def _sources_digest() -> str:
    h = hashlib.sha256()
    for path in sorted(JVM_DIR.rglob("*")):
        if path.is_file() and (path.name == "pom.xml" or path.suffix == ".java"):
            h.update(str(path.relative_to(JVM_DIR)).encode())
            h.update(path.read_bytes())
    return h.hexdigest()


def _stamp() -> Path:
    return jars_dir() / ".stamp"


def up_to_date() -> bool:
    stamp = _stamp()
    return stamp.is_file() and JVM_DIR.is_dir() and stamp.read_text().strip() == _sources_digest()


def fetch(quiet: bool = True) -> Path:
    """Run Maven if the cache is stale; return the cache folder. Idempotent."""
    out = jars_dir()
    if not JVM_DIR.is_dir():
        if (out / "flink").is_dir() or (out / "kafka").is_dir():
            # an installed copy with a prepared cache: the Flink image carries only flink/;
            # kafka_classpath() and flink_jars() still say which jars are missing, by name
            return out
        raise JarsMissing(f"no jvm/ sources next to the package and no jars in {out}")
    if up_to_date():
        return out
    mvn = shutil.which("mvn")
    if mvn is None:
        raise JarsMissing("Maven (mvn) is not on PATH; install it (apt-get install maven) and retry")
    cmd = [mvn, "-B", "-f", str(JVM_DIR / "pom.xml"), "package", "-DskipTests", f"-Djars.dir={out}"]
    if quiet:
        # quiet Maven still writes terminal colour codes: keep its output, and show it if it fails
        cmd.insert(2, "-q")
        r = subprocess.run(cmd, capture_output=True, text=True)
        if r.returncode != 0:
            raise JarsMissing(f"Maven failed ({' '.join(cmd)}), exit {r.returncode}:\n{(r.stdout + r.stderr)[-4000:]}")
    else:
        subprocess.run(cmd, check=True)
    _stamp().write_text(_sources_digest())
    return out


def kafka_classpath() -> str:
    d = jars_dir() / "kafka"
    if not any(d.glob("kafka_2.13-*.jar")):
        raise JarsMissing(f"Kafka broker jars missing in {d}: run `sensorwatch jars` (or `make jars`)")
    return str(d / "*")


def flink_jars() -> list[Path]:
    """Jars the job adds to Flink's pipeline: the Kafka SQL connector and our UDFs."""
    d = jars_dir() / "flink"
    jars = sorted(d.glob("flink-sql-connector-kafka-*.jar")) + sorted(d.glob("sensorwatch-flink-udfs*.jar"))
    if len(jars) != 2:
        raise JarsMissing(f"Flink jars missing in {d}: run `sensorwatch jars` (or `make jars`)")
    return jars
