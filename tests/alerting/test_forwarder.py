"""``sensorwatch alert`` against a real Alertmanager and a real broker.

Incident records come from the reference incident rules (:class:`IncidentTracker`) over
scored windows with injected bursts, as the job's ``TrackIncidents`` writes them. Alertmanager
(Debian's ``prometheus-alertmanager``) routes every alert to a webhook receiver run by the test,
with ``send_resolved``: what it notifies is what an operator's pager would get.
"""

from __future__ import annotations

import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import numpy as np
import pytest
import requests

from sensorwatch.alerting.forwarder import AlertForwarder
from sensorwatch.alerting.silences import publish_silence, silence_record
from sensorwatch.core.incidents import IncidentTracker
from sensorwatch.core.kafka import producer
from sensorwatch.stack.alertmanager import AlertmanagerProcess, webhook_config
from sensorwatch.stack.kafka_broker import free_port
from webhook import Receiver

pytestmark = pytest.mark.integration
W = 5000


@pytest.fixture
def receiver():
    r = Receiver()
    yield r
    r.close()


@pytest.fixture
def alertmanager(tmp_path, receiver):
    am = AlertmanagerProcess(tmp_path / "am", free_port(), webhook_config(receiver.url)).start()
    yield am
    am.stop()


def incidents(sensor: str, bursts: list[int], n: int, learning: bool = False) -> list[dict]:
    """The incident records of ``sensor`` over ``n`` windows with 3-window bursts at ``bursts``."""
    rng = np.random.default_rng(abs(hash(sensor)) % 2**32)
    scores = rng.normal(1.0, 0.1, n)
    for b in bursts:
        scores[b : b + 3] = 60.0
    tr = IncidentTracker(window_ms=W)
    seed = None if learning else (500.0, 1.0, 0.01)
    out = []
    for i, sc in enumerate(scores):
        end = 1_000_000 + i * W
        for e in tr.step(end, float(sc), threshold=5.0, version=1, seed=seed):
            out.append(
                dict(
                    incident_id=f"{sensor}@{e.start}",
                    event=e.event,
                    sensor=sensor,
                    device=sensor.split("/")[0],
                    incident=e.incident,
                    start=e.start,
                    end=e.end,
                    closed_by=e.closed_by,
                    severity=e.severity,
                    peak_score=e.peak_score,
                    threshold=e.threshold,
                    model_name="packed-001",
                    model_version=e.version,
                    learning=e.learning,
                    explanation={"feature": "mean", "kind_hint": "spike", "tags": None},
                )
            )
    return out


def publish(settings, records: list[dict]) -> None:
    p = producer(settings.kafka, acks="all")
    for r in records:
        p.send(settings.kafka.topics.incidents, key=r["incident_id"].encode(), value=json.dumps(r).encode())
    p.flush(30)
    p.close()


def ids(records, event=None) -> set[str]:
    return {r["incident_id"] for r in records if event is None or r["event"] == event}


def firing(am) -> set[str]:
    return {a["labels"]["incident_id"] for a in am.alerts()}


def wait_for(cond, timeout_s=60.0, what="condition"):
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if cond():
            return
        time.sleep(0.25)
    raise AssertionError(f"timed out waiting for {what() if callable(what) else what}")


class Running:
    """A forwarder on its own thread, stopped on exit (uncommitted work is left for the next)."""

    def __init__(self, settings):
        self.fwd = AlertForwarder(settings).start()
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self.fwd.run, args=(self.stop.is_set,), daemon=True)
        self.thread.start()

    def close(self):
        self.stop.set()
        self.thread.join(60)
        assert not self.thread.is_alive()
        self.fwd.close()


def test_incidents_fire_and_resolve_in_alertmanager_once_each(settings, alertmanager, receiver):
    settings.alerting.url = alertmanager.url
    settings.alerting.metrics_port = 0  # any free port
    closed_ones = incidents("dev-1/temp", [100], 200) + incidents("dev-2/rpm", [50, 120], 200)
    open_ones = incidents("dev-3/flow", [180], 200) + incidents("pump-4", [150], 170)
    learning = incidents("dev-5/temp", [30], 100, learning=True)
    assert ids(closed_ones, "closed") == ids(closed_ones) and len(ids(closed_ones)) == 3
    assert not ids(open_ones, "closed") and len(ids(open_ones)) == 2 and ids(learning)
    # as the stream writes them: every incident opens, and closes (at least 16 windows) later
    opened = [r for r in closed_ones + open_ones + learning if r["event"] == "opened"]
    closed = [r for r in closed_ones + learning if r["event"] == "closed"]
    publish(settings, [*opened, dict(open_ones[0])])  # the job publishes at least once: a record twice
    alerted = ids(closed_ones) | ids(open_ones)

    run = Running(settings)
    try:
        wait_for(lambda: firing(alertmanager) == alerted, what="every opened incident firing")
        wait_for(lambda: {i for i, st in receiver.got if st == "firing"} == alerted, what="their notifications")
        publish(settings, closed)
        wait_for(lambda: firing(alertmanager) == ids(open_ones), what="the closed ones resolved")
        wait_for(
            lambda: {i for i, st in receiver.got if st == "resolved"} == ids(closed_ones),
            what=lambda: f"the resolutions notified: {sorted(set(receiver.got))}",
        )
        wait_for(lambda: run.fwd.stats.records == len(opened) + 1 + len(closed), what="every record read")
        metrics = requests.get(f"http://127.0.0.1:{run.fwd.metrics_port}/metrics", timeout=5).text
    finally:
        run.close()
    assert 'sensorwatch_alerts_sent_total{kind="fired"} 5.0' in metrics
    assert 'sensorwatch_alerts_sent_total{kind="resolved"} 3.0' in metrics
    assert "sensorwatch_alert_open_incidents 2.0" in metrics and "sensorwatch_alerts_failed_total 0.0" in metrics
    st = run.fwd.stats
    assert (st.fired, st.resolved, st.duplicates, st.rejected) == (5, 3, 1, 0)
    assert st.filtered == sum(r["learning"] for r in opened + closed) > 0
    assert not ids(learning) & {i for i, _ in receiver.got}, "learning incidents are not alerted"
    assert all(receiver.count(i, "firing") == 1 for i in alerted)
    assert all(receiver.count(i, "resolved") == 1 for i in ids(closed_ones))
    labels = {a["labels"]["incident_id"]: a["labels"] for a in alertmanager.alerts()}
    flow = next(i for i in ids(open_ones) if i.startswith("dev-3/"))
    assert labels[flow]["tag"] == "flow" and labels[flow]["device"] == "dev-3"
    assert labels[flow]["severity"] in ("info", "warning", "critical")


def test_an_alertmanager_outage_of_20s_loses_nothing_and_duplicates_nothing(settings, alertmanager, receiver):
    settings.alerting.url = alertmanager.url
    settings.alerting.resend_s = 2.0  # Alertmanager keeps no alerts over a restart: the forwarder posts them again
    settings.alerting.backoff_max_s = 2.0
    a, b = incidents("dev-1/temp", [100], 200), incidents("dev-2/rpm", [150], 200)
    first = [r for r in a + b if r["event"] == "opened"]
    publish(settings, first)
    run = Running(settings)
    wait_for(lambda: firing(alertmanager) == ids(first), what="the first incidents firing")
    wait_for(lambda: {i for i, _ in receiver.got} == ids(first), what="their notifications")

    alertmanager.stop()
    c = incidents("dev-3/flow", [40], 100)
    later = [r for r in a if r["event"] == "closed"] + [r for r in c if r["event"] == "opened"]
    publish(settings, later)
    t0 = time.monotonic()
    wait_for(lambda: run.fwd.stats.retries >= 2, what="retries while Alertmanager is down")
    run.close()  # the forwarder goes away mid-outage: its batch is not committed
    assert run.fwd.stats.resolved == 0
    time.sleep(max(0.0, 20 - (time.monotonic() - t0)))

    alertmanager.start()
    run = Running(settings)  # a new forwarder: rebuilds from the committed offsets, posts the rest
    try:
        want = ids(b) | ids(c)
        wait_for(lambda: firing(alertmanager) == want, what="the open incidents firing after the outage")
        wait_for(lambda: receiver.count(next(iter(ids(a))), "resolved") == 1, what="the resolved one notified")
        wait_for(lambda: {i for i, _ in receiver.got} >= want, what="the new one notified")
        time.sleep(3 * settings.alerting.resend_s)  # resends in that time notify nothing new
    finally:
        run.close()
    assert run.fwd.stats.resolved == 1 and run.fwd.stats.fired == 1 and run.fwd.stats.resent > 0
    for iid in ids(a) | want:
        assert receiver.count(iid, "firing") == 1, (iid, receiver.got)
    assert receiver.count(next(iter(ids(a))), "resolved") == 1


def test_a_silenced_sensor_fires_when_its_silence_ends(settings, alertmanager, receiver):
    settings.alerting.url = alertmanager.url
    settings.alerting.resend_s = 1.0
    publish_silence(settings.kafka, silence_record("dev-7/*", 20.0, "pump swap"))
    quiet = [r for r in incidents("dev-7/temp", [100], 200) if r["event"] == "opened"]
    loud = [r for r in incidents("dev-8/temp", [100], 200) if r["event"] == "opened"]
    publish(settings, quiet + loud)
    run = Running(settings)
    try:
        wait_for(lambda: firing(alertmanager) == ids(loud), timeout_s=10, what="only the unsilenced sensor firing")
        assert run.fwd.stats.silenced == 1 and not firing(alertmanager) & ids(quiet)
        wait_for(lambda: firing(alertmanager) == ids(loud) | ids(quiet), what="the silenced one firing once it ends")
    finally:
        run.close()


def test_the_command_line_silences_and_forwards_to_a_webhook(settings, receiver, tmp_path, capsys):
    import yaml

    from sensorwatch.app.cli import main

    cfg = tmp_path / "sw.yaml"
    cfg.write_text(yaml.safe_dump(settings.model_dump(mode="json")))
    assert main(["--config", str(cfg), "silence", "dev-9/*", "--for", "10m", "--comment", "swap"]) == 0
    assert main(["--config", str(cfg), "silence"]) == 0
    out = capsys.readouterr().out
    assert '"dev-9/*"' in out and '"swap"' in out
    a = incidents("dev-1/temp", [100], 200)
    muted = [r for r in incidents("dev-9/temp", [100], 200) if r["event"] == "opened"]
    publish(settings, [r for r in a if r["event"] == "opened"] + muted)
    publish(settings, [r for r in a if r["event"] == "closed"])
    argv = ["--config", str(cfg), "alert", "--target", "webhook", "--url", receiver.url, "--for", "8s"]
    assert main(argv) == 0
    stats = json.loads(capsys.readouterr().out)
    assert stats["records"] == 3 and stats["silenced"] == 1 and stats["resolved"] == 1 and stats["batches"] >= 1
    iid = next(iter(ids(a)))
    assert receiver.count(iid, "resolved") == 1 and receiver.count(iid, "firing") == 0  # one batch: its latest state
    assert not {i for i, _ in receiver.got} & ids(muted)


def test_a_batch_the_target_rejects_is_dead_lettered_with_its_reason(settings):
    """A 4xx other than 429 says the batch itself is wrong: it goes to the dead letters, in the
    dead-letter contract, with the target's answer, and the forwarder goes on (nothing blocks)."""
    from sensorwatch.app.local import consume

    class Refuse(BaseHTTPRequestHandler):
        def do_POST(self):
            self.rfile.read(int(self.headers["Content-Length"]))
            self.send_response(400)
            self.end_headers()
            self.wfile.write(b"bad alert: labels invalid")

        def log_message(self, *args):
            pass

    http = ThreadingHTTPServer(("127.0.0.1", 0), Refuse)
    threading.Thread(target=http.serve_forever, daemon=True).start()
    settings.alerting.target, settings.alerting.url = "webhook", f"http://127.0.0.1:{http.server_port}/in"
    opened = [r for r in incidents("dev-1/temp", [100], 200) if r["event"] == "opened"]
    publish(settings, opened)
    run = Running(settings)
    try:
        wait_for(lambda: run.fwd.stats.rejected == 1 and run.fwd.stats.batches == 1, what="the rejection")
        assert run.fwd.stats.retries == 0 and run.fwd.stats.fired == 1
    finally:
        run.close()
        http.shutdown()
    (dead,) = consume(settings, settings.kafka.topics.dead_letters, lambda recs: len(recs) >= 1, 30)
    assert "HTTP 400" in dead["reason"] and "labels invalid" in dead["reason"]
    assert dead["topic"] == settings.kafka.topics.incidents and not dead["payload_truncated"]
    assert json.loads(dead["payload"])[0]["labels"]["incident_id"] == opened[0]["incident_id"]


def test_a_record_that_is_not_an_incident_is_dead_lettered_and_blocks_nothing(settings, receiver, alertmanager):
    """Garbage on the incidents topic (not JSON, or JSON without an incident's fields) goes to
    the dead letters with its reason and its address; the incidents around it are alerted."""
    from sensorwatch.app.local import consume

    settings.alerting.url = alertmanager.url
    opened = [r for r in incidents("dev-2/temp", [100], 200) if r["event"] == "opened"]
    p = producer(settings.kafka, acks="all")
    # one key: one partition, so their order and offsets are known
    p.send(settings.kafka.topics.incidents, key=b"junk", value=b"{not json")
    p.send(settings.kafka.topics.incidents, key=b"junk", value=json.dumps({"hello": 1}).encode())
    p.flush(30)
    p.close()
    publish(settings, opened)
    run = Running(settings)
    try:
        wait_for(lambda: run.fwd.stats.fired == 1, what=lambda: run.fwd.stats)
        assert run.fwd.stats.unreadable == 2 and run.fwd.stats.records == 1
    finally:
        run.close()
    dead = consume(settings, settings.kafka.topics.dead_letters, lambda recs: len(recs) >= 2, 30)
    dead.sort(key=lambda d: d["offset"])  # the dead-letter topic's partitions interleave them
    assert [d["payload"] for d in dead] == ["{not json", '{"hello": 1}']
    assert "JSONDecodeError" in dead[0]["reason"]
    assert "missing ['incident_id', 'event', 'sensor']" in dead[1]["reason"]
    assert [d["offset"] for d in dead] == [0, 1] and all(d["topic"] == settings.kafka.topics.incidents for d in dead)
    wait_for(lambda: ids(opened) <= firing(alertmanager), what="the incident after the garbage firing")


def test_an_incident_that_grew_worse_resolves_the_alert_it_fired(settings, receiver, alertmanager):
    """The closed record carries the incident's highest severity, here a band above the one it
    opened with: the alert keeps its opening labels, so the close resolves that very alert
    instead of making a second one (the first would stay firing; the demo's test caught it)."""
    settings.alerting.url = alertmanager.url
    opened = next(r for r in incidents("dev-3/temp", [100], 200) if r["event"] == "opened")
    opened = {**opened, "severity": 50}
    publish(settings, [opened])
    run = Running(settings)
    try:
        wait_for(lambda: receiver.count(opened["incident_id"], "firing") == 1, what="the firing notification")
        publish(settings, [{**opened, "event": "closed", "end": opened["start"] + W, "severity": 95}])
        wait_for(lambda: receiver.count(opened["incident_id"], "resolved") == 1, what="the resolution")
        assert firing(alertmanager) == set()
    finally:
        run.close()
    assert receiver.got == [(opened["incident_id"], "firing"), (opened["incident_id"], "resolved")]


def test_an_operators_verdict_reaches_the_alert(settings, alertmanager, tmp_path, capsys):
    """``sensorwatch label`` writes a verdict; the forwarder's next post of the open incident
    carries it as the ``verdict`` annotation (the simulator's ground truth on the same topic is
    not a verdict), and a malformed id or verdict is refused with the reason."""
    import yaml

    from sensorwatch.app.cli import main

    settings.alerting.url, settings.alerting.resend_s = alertmanager.url, 1.0
    cfg = tmp_path / "sw.yaml"
    cfg.write_text(yaml.safe_dump(settings.model_dump(mode="json")))
    opened = next(r for r in incidents("dev-4/temp", [100], 200) if r["event"] == "opened")
    publish(settings, [opened])
    p = producer(settings.kafka, acks="all")
    p.send(settings.kafka.topics.labels, value=json.dumps({"sensor": "dev-4/temp", "kind": "spike"}).encode())
    p.flush(30)
    p.close()
    run = Running(settings)
    try:
        wait_for(lambda: ids([opened]) <= firing(alertmanager), what="the incident firing")
        argv = ["--config", str(cfg), "label", opened["incident_id"], "false-positive", "--note", "valve test"]
        assert main(argv) == 0
        assert json.loads(capsys.readouterr().out)["label"] == "false-positive"

        def verdict() -> str:
            return next(iter(a["annotations"].get("verdict", "") for a in alertmanager.alerts()), "")

        wait_for(lambda: verdict().startswith("false-positive ("), what=lambda: alertmanager.alerts())
        assert "valve test" in verdict() and len(run.fwd.verdicts) == 1
    finally:
        run.close()
    assert main(["--config", str(cfg), "label", "not an id", "expected"]) == 2
    assert "is not an incident id" in capsys.readouterr().err


def test_an_unreadable_record_on_the_silences_topic_is_dead_lettered_once(settings, receiver, alertmanager):
    """The operators' topics are read at start: a record there that is not JSON goes to the dead
    letters under its own topic and address, and the forwarder starts and forwards all the same.
    A restart reads those topics whole again, and dead-letters only the record that came since."""
    from sensorwatch.app.local import consume

    settings.alerting.url = alertmanager.url
    p = producer(settings.kafka, acks="all")
    p.send(settings.kafka.topics.silences, key=b"dev-5/*", value=b"not a silence")
    p.flush(30)
    p.close()
    opened = [r for r in incidents("dev-5/temp", [100], 200) if r["event"] == "opened"]
    publish(settings, opened)
    run = Running(settings)
    try:
        wait_for(lambda: ids(opened) <= firing(alertmanager), what="the incident firing")
    finally:
        run.close()
    (dead,) = consume(settings, settings.kafka.topics.dead_letters, lambda recs: len(recs) >= 1, 30)
    assert dead["topic"] == settings.kafka.topics.silences and dead["offset"] == 0
    assert dead["payload"] == "not a silence" and "JSONDecodeError" in dead["reason"]
    p = producer(settings.kafka, acks="all")
    p.send(settings.kafka.topics.silences, key=b"dev-5/*", value=b"nor this")  # same key: offset 1
    p.flush(30)
    p.close()
    Running(settings).close()  # its start reads both
    # waits out the 20 s: a third letter would be the first one again
    dead = consume(settings, settings.kafka.topics.dead_letters, lambda recs: len(recs) >= 3, 20)
    assert sorted((d["offset"], d["payload"]) for d in dead) == [(0, "not a silence"), (1, "nor this")]
