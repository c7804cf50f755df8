"""The console script, run as a user runs it."""

import subprocess
import sys
import typing

import pytest

from sensorwatch.app.cli import build_parser

SUBCOMMANDS = sorted(build_parser()._subparsers._group_actions[0].choices)


def _run(*args, **kw):
    return subprocess.run([sys.executable, "-m", "sensorwatch", *args], capture_output=True, text=True, **kw)


@pytest.mark.parametrize("sub", SUBCOMMANDS)
def test_every_subcommand_has_help(sub):
    r = _run(sub, "--help")
    assert r.returncode == 0, r.stderr
    assert "usage: sensorwatch " + sub in r.stdout


def test_bad_config_exits_2_naming_the_key(tmp_path):
    f = tmp_path / "c.yaml"
    f.write_text("simulator:\n  devcies: 3\n")
    r = _run("--config", str(f), "config", "check")
    assert r.returncode == 2
    assert "unknown key 'simulator.devcies'" in r.stderr


def test_stack_status_reports_not_running(tmp_path):
    r = _run("stack", "status", env={"SENSORWATCH__STACK__WORK_DIR": str(tmp_path), "PATH": ""})
    assert r.returncode == 3
    assert '"running": false' in r.stdout


def _on_fresh_topics(kafka_stack, prefix: str):
    """(settings, env): the session broker and topic names no other test uses (not created),
    as settings and as the environment that gives them to the console script."""
    import os

    from sensorwatch.app.local import renamed_topics
    from sensorwatch.core.config import Settings

    _, info = kafka_stack
    s = Settings()
    s.kafka.bootstrap_servers = info["bootstrap_servers"]
    s = renamed_topics(s, prefix)
    env = dict(os.environ, SENSORWATCH__KAFKA__BOOTSTRAP_SERVERS=s.kafka.bootstrap_servers)
    for name in type(s.kafka.topics).model_fields:
        env[f"SENSORWATCH__KAFKA__TOPICS__{name.upper()}"] = getattr(s.kafka.topics, name)
    return s, env


def test_topics_creates_every_configured_topic_on_an_existing_broker(kafka_stack):
    """`sensorwatch topics` is how the compose cluster initialises Kafka: run it twice on the real
    broker with fresh topic names; the first run creates all, the second none, both exit 0."""
    import json

    s, env = _on_fresh_topics(kafka_stack, "cli")
    env["SENSORWATCH__KAFKA__PARTITIONS"] = "3"
    names = s.kafka.topics.model_dump()
    first = _run("topics", env=env)
    assert first.returncode == 0, first.stderr
    out = json.loads(first.stdout)
    assert sorted(out["created"]) == sorted(names.values())
    assert out["partitions"] == {n: 3 for n in names.values()} and out["missing"] == []
    assert out["warnings"] == [], "the aggregates topic was created to cover the lifecycle's span"
    again = _run("topics", env=env)
    assert again.returncode == 0, again.stderr
    assert json.loads(again.stdout)["created"] == []
    # a longer lifecycle history than the existing topic keeps: named, with the fix, not changed
    longer = _run("topics", env=dict(env, SENSORWATCH__LIFECYCLE__HISTORY_S="172800"))
    assert longer.returncode == 0, longer.stderr
    (warning,) = json.loads(longer.stdout)["warnings"]
    assert names["aggregates"] in warning and "retention.ms=178200000" in warning


def test_choices_come_from_the_configuration_types():
    from sensorwatch.core.config import ServingConfig, TopicsConfig, TrainingConfig

    sub = build_parser()._subparsers._group_actions[0].choices
    opts = {a.dest: a for a in sub["train"]._actions}
    assert opts["kind"].choices == list(typing.get_args(TrainingConfig.model_fields["kind"].annotation))
    assert opts["layout"].choices == list(typing.get_args(ServingConfig.model_fields["layout"].annotation))
    tail = {a.dest: a for a in sub["tail"]._actions}
    assert tail["topic"].choices == list(TopicsConfig.model_fields)


def test_job_set_overrides_are_validated_like_the_entry_points(tmp_path):
    bad = _run("job", "--explain", "--set", "job.windw_s=3")
    assert bad.returncode == 2 and "unknown key 'job.windw_s'" in bad.stderr
    malformed = _run("job", "--explain", "--set", "job.window_s")
    assert malformed.returncode == 2 and "--set takes section.key=value" in malformed.stderr
    from sensorwatch.jobs.anomaly_job import main as entry

    assert entry(["--explain", "--set", "job.windw_s=3"]) == 2


def test_python_dash_m_sensorwatch_is_the_command_line():
    r = _run("--help")
    assert r.returncode == 0 and "usage: sensorwatch" in r.stdout


@pytest.mark.integration
def test_job_set_overrides_reach_the_plan():
    """`sensorwatch job --set` builds the real plan (PyFlink's planner) with the overridden keys."""
    default = _run("job", "--explain", timeout=300)
    assert default.returncode == 0, default.stderr[-2000:]
    changed = _run("job", "--explain", "--set", "job.window_s=7", "--set", "job.emit_scores=true", timeout=300)
    assert changed.returncode == 0, changed.stderr[-2000:]
    assert "7000" in changed.stdout and "7000" not in default.stdout
    assert "scores_out" in changed.stdout and "scores_out" not in default.stdout


def test_lifecycle_warns_at_start_when_the_aggregates_topic_keeps_less_than_it_reads(kafka_stack, tmp_path):
    """An aggregates topic made by hand with a 1 h retention: `sensorwatch lifecycle` still runs
    its pass, and says at start that each history's oldest part is deleted before it is read,
    with the command that raises the retention (the topic is not changed)."""
    from kafka.admin import NewTopic

    from sensorwatch.core.kafka import admin_client
    from sensorwatch.stack.topics import topic_retention_ms

    s, env = _on_fresh_topics(kafka_stack, "lc")
    env["SENSORWATCH__SERVING__MODEL_BASE_PATH"] = str(tmp_path / "models")
    env["SENSORWATCH__LIFECYCLE__STATE_DIR"] = str(tmp_path / "state")
    admin = admin_client(s.kafka)
    try:
        admin.create_topics(
            [
                NewTopic(t, 1, 1, topic_configs={"retention.ms": "3600000"} if t == s.kafka.topics.aggregates else {})
                for t in s.kafka.topics.all()
            ]
        )
    finally:
        admin.close()
    r = _run("lifecycle", "--once", env=env)
    assert r.returncode == 0, r.stderr
    assert "WARNING" in r.stderr and f"the aggregates topic {s.kafka.topics.aggregates!r} keeps 1.0 h" in r.stderr
    assert "--add-config retention.ms=91800000" in r.stderr
    assert topic_retention_ms(s.kafka, s.kafka.topics.aggregates) == 3_600_000
