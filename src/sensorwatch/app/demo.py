"""The embedded default, end to end: Kafka, training, the model server, the job, the fleet.

What ``sensorwatch demo`` (and so ``make demo``) runs. Everything it starts, it stops. The
summary is computed once the job's output is complete: every reading sent is accounted for
(aggregated, late or dead-lettered) and every count window the job owes has its record, as
:class:`~sensorwatch.app.ledger.Ledger` reconciles it, not after a fixed wait.
"""

from __future__ import annotations

import logging
import shutil
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

from sensorwatch.app import local
from sensorwatch.app.cli.common import incident_line
from sensorwatch.app.evaluate import evaluate_incidents
from sensorwatch.app.ledger import Ledger
from sensorwatch.core.config import Settings
from sensorwatch.core.optional import MissingSystemPackage
from sensorwatch.core.retry import wait_until
from sensorwatch.stack import LocalStack
from sensorwatch.stack.alertmanager import AlertmanagerProcess, webhook_config
from sensorwatch.stack.kafka_broker import free_port

#: How long the demo waits for the job's last records once the fleet is sent.
OUTPUT_TIMEOUT_S = 180.0

#: The demo's newest device: no model of its own is trained for it, so the job scores it by its
#: tags' fleet priors (``sensorwatch.core.prior``) from its first count window.
NEW_DEVICE = "dev-0009"


def scored_by(outputs: dict[str, list[dict]]) -> dict[str, list[str]]:
    """Per sensor (or device model), the model versions that scored its windows, in the order
    they first did: ``["packed-003 v1", ...]``; a fleet prior's is marked as such.

    >>> prior = {"sensor": "d/t", "model_name": "_prior~t", "model_version": 1, "status": "prior", "window_end": 5}
    >>> own = {"sensor": "d/t", "model_name": "packed-001", "model_version": 2, "status": "scored", "window_end": 9}
    >>> scored_by({"k2": [own], "k1": [prior]})
    {'d/t': ['_prior~t v1 (fleet prior)', 'packed-001 v2']}
    """
    first: dict[str, dict[str, int]] = {}
    for recs in outputs.values():
        for r in recs:
            if r.get("model_version") is None:
                continue
            name = f"{r['model_name']} v{r['model_version']}" + (" (fleet prior)" if r.get("status") == "prior" else "")
            seen = first.setdefault(r["sensor"], {})
            seen[name] = min(seen.get(name, r["window_end"]), r["window_end"])
    return {s: sorted(v, key=v.get) for s, v in sorted(first.items())}


def demo_settings(settings: Settings, duration_s: float, speed: float) -> Settings:
    """The demo's own stack on free ports in a fresh work folder: a mixed fleet, one model each.

    30 sensors (10 devices x 3 tags), and 4 pumps whose 4 related tags are scored by one device
    model each (``serving.device_models``), side by side in one job. Every plain sensor but the
    newest device's (:data:`NEW_DEVICE`) has a model of its own; that one's tags are scored
    by their fleet priors until the lifecycle (:class:`DemoLifecycle`) has trained and promoted
    their own models. One model per sensor (the per-sensor layout): a new sensor's first
    version is then its own, not a retrain of a packed group whose other members' history
    (two hours, trained offline) the aggregates topic does not hold."""
    s = settings.model_copy(deep=True)
    work = Path(s.stack.work_dir) / "demo"
    s.stack.work_dir = work
    s.stack.kafka_port = s.stack.controller_port = 0
    port = free_port()
    s.serving.port, s.serving.target = port, f"127.0.0.1:{port}"
    s.serving.model_base_path = work / "models"
    s.serving.layout = "per-sensor"
    s.serving.poll_wait_s = 0.5
    s.job.emit_scores = True  # every window gets a record, so the demo knows when the output is complete
    sim = s.simulator
    sim.duration_s = duration_s
    sim.late_rate, sim.malformed_rate, sim.realtime, sim.speed = 0.002, 0.002, True, speed
    sim.anomaly_rate_per_hour = 4.0
    sim.pumps, sim.relation_faults_per_hour = 4, 2.0
    s.serving.device_models = "pump-*"
    s.training.epochs, s.training.plots = 20, False
    lc = s.lifecycle
    lc.new_sensor_windows, lc.holdout_s = 150, 150.0  # 12.5 minutes of event time, the last 2.5 judged on
    # the lifecycle's triggers but one: a lasting change would retrain a sensor on the minutes of
    # history the demo's aggregates topic holds (the two hours its model learnt from were offline)
    lc.lasting_change_windows = 10**6
    s.dashboard.port = 0
    s.alerting.group_id = f"sensorwatch-demo-{port}"
    return s


class DemoLifecycle(threading.Thread):
    """``sensorwatch lifecycle`` as the demo runs it, beside the stream: every 2 s of wall time
    one pass (:func:`~sensorwatch.training.lifecycle.cycle_once`) at the stream's event time,
    until :data:`NEW_DEVICE`'s sensors each have a verdict. The schedule is marked as run at the
    fleet's start, so only the new-sensor trigger acts in 30 minutes (see :func:`demo_settings`)."""

    def __init__(self, s: Settings, fleet: Any, console: Console):
        super().__init__(name="demo-lifecycle", daemon=True)
        from sensorwatch.training.lifecycle import Ledger

        self.s = s.model_copy(deep=True)
        self.s.training.workers = 1  # in this thread: the job and the stream keep the other core
        self.fleet, self.console = fleet, console
        self.stop = threading.Event()
        self.verdicts: list[dict] = []
        self.error: BaseException | None = None
        self.t0 = time.monotonic()
        ledger = Ledger(self.s)
        ledger.state["last_schedule_ms"] = fleet.start_ms
        ledger.save()

    def event_now_ms(self) -> int:
        """The stream's event time now (the fleet is paced at ``simulator.speed``)."""
        sim = self.s.simulator
        return min(self.fleet.end_ms, self.fleet.start_ms + int((time.monotonic() - self.t0) * sim.speed * 1000))

    def run(self) -> None:
        from sensorwatch.serving.client import ScoringClient
        from sensorwatch.training.lifecycle import cycle_once

        want = {x for x in self.fleet.sensors if x.startswith(NEW_DEVICE + "/")}
        client = ScoringClient(self.s.serving)
        try:
            while not self.stop.wait(2.0) and not want <= self.judged():
                for v in cycle_once(self.s, client, now_ms=self.event_now_ms()):
                    self.verdicts.append(v)
                    self.console.print(
                        f"    [cyan]lifecycle: {v['model']} v{v['challenger']} {v['stage']}[/] "
                        f"({'; '.join(v['why'])}): {v['reason']}",
                        soft_wrap=True,
                    )
        except Exception as exc:  # reported in the summary; the demo goes on without it
            logging.getLogger("sensorwatch.demo").exception("the demo's lifecycle stopped")
            self.error = exc
        finally:
            client.close()

    def judged(self) -> set[str]:
        from sensorwatch.core.windows import sensor_of_model

        return {sensor_of_model(v["model"]) for v in self.verdicts}


@dataclass
class DemoRun:
    """What the demo has up once its summary is printed: for whoever looks before it stops."""

    settings: Settings
    fleet: Any
    incidents: list[dict]
    dashboard_url: str
    alertmanager: AlertmanagerProcess | None = None
    forwarder: Any = None


def demo_alertmanager(s: Settings, work: Path, webhook: str | None) -> AlertmanagerProcess | None:
    """A real Alertmanager for the demo's alerts (None, with the install line printed, when
    ``prometheus-alertmanager`` is missing): its notifications go to ``webhook`` when given,
    otherwise it only holds them (its web page and API list them)."""
    config = webhook_config(webhook) if webhook else {"route": {"receiver": "hold"}, "receivers": [{"name": "hold"}]}
    try:
        return AlertmanagerProcess(work / "alertmanager", free_port(), config).start()
    except MissingSystemPackage as exc:
        Console().print(f"    [yellow]no Alertmanager for the demo's alerts:[/] {exc}")
        return None


def run_demo(
    settings: Settings,
    duration_s: float = 1800.0,
    speed: float = 40.0,
    on_ready: Callable[[DemoRun], None] | None = None,
    alert_webhook: str | None = None,
    wait_for_enter: bool | None = None,
) -> int:
    """Run the demo; ``on_ready(run)`` is called once the summary is printed, with everything
    still up (the tests drive a browser and check Alertmanager there). The dashboard stays up
    until Enter when ``wait_for_enter`` (default: when standard input is a terminal)."""
    from sensorwatch.alerting.forwarder import AlertForwarder
    from sensorwatch.dashboard.app import Dashboard
    from sensorwatch.jobs.pipeline import run
    from sensorwatch.simulate import Fleet, simulate

    console = Console()
    s = demo_settings(settings, duration_s, speed)
    work = Path(s.stack.work_dir)
    shutil.rmtree(work, ignore_errors=True)  # a fresh broker and model repository every run
    sim = s.simulator
    fleet = Fleet(sim)
    stack = LocalStack(s)
    server = job = ui = am = fwd = None
    complete = False
    stop_alerts = threading.Event()
    forwarding: threading.Thread | None = None
    console.print("[bold]1/5[/] starting a real Kafka broker (KRaft) on loopback ...")
    info = stack.up()
    console.print(f"    ready in {info['start_seconds']} s at {info['bootstrap_servers']}")
    try:
        n_pump_tags = sum(s.startswith("pump-") for s in fleet.sensors)
        n_new = sum(s.startswith(NEW_DEVICE + "/") for s in fleet.sensors)
        console.print(
            f"[bold]2/5[/] training one model per sensor ({len(fleet.sensors) - n_pump_tags - n_new}), the fleet "
            "priors, and one per pump "
            f"({len(fleet.pumps)}, over its {n_pump_tags // max(1, len(fleet.pumps))} tags) on 2 h of clean "
            "simulated history ..."
        )
        t0 = time.monotonic()
        out = local.train_on_history(s, fleet.start_ms, progress=True, keep=lambda x: not x.startswith(NEW_DEVICE))
        console.print(
            f"    {out['trained']} trained, {out['failed']} failed, and {out['priors']} fleet priors (one per tag)"
            f" in {time.monotonic() - t0:.0f} s into {s.serving.model_base_path}; {NEW_DEVICE} joined the fleet "
            "today: no model of its own, its tags' priors score it"
        )
        console.print("[bold]3/5[/] starting the model server (TF Serving gRPC API) ...")
        server = local.ModelServerProcess(s, work / "model-server.log").start()
        console.print(f"    serving at {s.serving.target}; log: {work / 'model-server.log'}")
        console.print("[bold]4/5[/] starting the streaming job on a Flink mini-cluster ...")
        job = run(s, detached=True)
        console.print(f"    job {job.get_job_id()}")
        ui = Dashboard(s).start()
        s.alerting.dashboard_url = ui.url
        am = demo_alertmanager(s, work, alert_webhook)
        if am is not None:
            s.alerting.url = am.url
            fwd = AlertForwarder(s).start()
            forwarding = threading.Thread(target=fwd.run, args=(stop_alerts.is_set,), name="demo-alerts", daemon=True)
            forwarding.start()
        console.print(
            f"    dashboard at [bold]{ui.url}[/]"
            + (f"; alerts to Alertmanager at {am.url} (`sensorwatch alert`)" if am is not None else "")
        )
        console.print(
            f"[bold]5/5[/] streaming {len(fleet.sensors)} sensors x {sim.duration_s / 60:.0f} min of event "
            f"time at {sim.speed:.0f}x, {len(fleet.labels)} anomalies injected; incidents as they open "
            "(as `sensorwatch tail` shows them):"
        )
        stop = threading.Event()
        shown: set[str] = set()

        def show(rec, _msg) -> None:
            if rec["event"] == "opened" and rec["incident_id"] not in shown:
                console.print(f"    [red]{incident_line(rec)}[/]", soft_wrap=True)
            shown.add(rec["incident_id"])

        def follow() -> None:
            local.consume(s, s.kafka.topics.incidents, lambda _r: stop.is_set(), 1e9, show)

        tailer = threading.Thread(target=follow, daemon=True)
        tailer.start()
        lifecycle = DemoLifecycle(s, fleet, console)
        lifecycle.start()
        stats = simulate(sim, s.kafka, fleet=fleet)
        # closes the fleet's last windows; the flush readings' own window stays open, so the
        # ledger owes only the fleet's readings
        local.flush_watermark(s, fleet.end_ms + 120_000)
        ledger = Ledger(s)
        ledger.read_inputs(stats.readings, timeout_s=OUTPUT_TIMEOUT_S)
        ledger.read_outputs(timeout_s=OUTPUT_TIMEOUT_S, quiet_s=OUTPUT_TIMEOUT_S)
        incidents = ledger.read_incidents()
        stop.set()
        tailer.join(10)
        lifecycle.stop.set()
        lifecycle.join(120)
        promoted = [v for v in lifecycle.verdicts if v["stage"] == "stable"]
        console.print(
            f"    lifecycle: {len(promoted)} of {len(lifecycle.verdicts)} new version(s) promoted"
            + (f"; it stopped: {lifecycle.error!r}" if lifecycle.error else "")
        )
        missing = ledger.missing()
        complete = not missing and ledger.readings_accounted() >= stats.readings
        if not complete:
            console.print(
                f"    [yellow]incomplete after {OUTPUT_TIMEOUT_S:.0f} s:[/] "
                f"{ledger.readings_accounted()} of {stats.readings} readings accounted for, "
                f"{len(missing)} windows without a record"
            )
        anomalies = {r["key"] for r in ledger.anomalies()}
        opened = {r["incident_id"] for r in incidents if r["event"] == "opened"}
        closed = {r["incident_id"] for r in incidents if r["event"] == "closed"}
        learning = {r["incident_id"] for r in incidents if r["learning"]}
        console.print(
            f"    {stats.readings} readings sent ({stats.malformed} malformed, {stats.late} late); "
            f"{len(ledger.outputs)} windows scored, {len(anomalies)} over their model's threshold; "
            f"{len(incidents)} incident records: {len(opened)} opened, {len(closed)} closed, "
            f"{len(learning)} learning"
        )
        window_ms = int(s.job.window_s * 1000)
        ev = evaluate_incidents(incidents, [lab.to_dict() for lab in fleet.labels], window_ms, s.job.seq_len)
        versions = scored_by(ledger.outputs)
        by_device: dict[str, list[str]] = {}
        for sensor, names in versions.items():
            by_device.setdefault(sensor.split("/")[0], []).append(
                f"{sensor.partition('/')[2] or '(device model)'}: {', '.join(names)}"
            )
        vt = Table("device", "the model versions that scored each sensor", title="scored by")
        for device, rows in by_device.items():
            vt.add_row(device, "; ".join(rows))
        console.print(vt)
        table = Table("kind", "detected / injected", title="against the simulator's ground truth")
        for kind, (hit, n) in sorted(ev.per_kind.items()):
            table.add_row(kind, f"{hit} / {n}")
        console.print(table)
        d = ev.to_dict()
        per_event = ev.true_alerts / ev.detected if ev.detected else float("nan")
        console.print(
            f"incidents as emitted: precision {d['precision']:.2f} ({ev.true_alerts}/{ev.alerts} incidents), recall "
            f"{d['recall']:.2f} ({ev.detected}/{ev.events} events), {per_event:.2f} incidents per detected event; "
            f"detection delay median {d['delay_s_median']} s, max {d['delay_s_max']} s (event time)"
        )
        if fwd is not None:
            if not wait_until(lambda: fwd.stats.records >= len(incidents), 60.0):
                console.print(
                    f"    [yellow]the alert forwarder read {fwd.stats.records} of {len(incidents)} incident "
                    "records in 60 s[/]"
                )
            st = fwd.stats
            console.print(
                f"    Alertmanager got {st.fired} firing and {st.resolved} resolved alerts "
                f"({st.filtered} learning or filtered); see {am.url}/#/alerts"
            )
        demo_run = DemoRun(s, fleet, incidents, ui.url, am, fwd)
        if on_ready is not None:
            on_ready(demo_run)
        if wait_for_enter is None:
            wait_for_enter = sys.stdin.isatty()
        if wait_for_enter:
            console.print(f"the dashboard stays up at [bold]{ui.url}[/]: press Enter to stop everything")
            input()
    finally:
        stop_alerts.set()
        if forwarding is not None:
            forwarding.join(15)
        if fwd is not None:
            fwd.close()
        if am is not None:
            am.stop()
        if ui is not None:
            ui.stop()
        if job is not None:
            job.cancel()
        if server is not None:
            server.stop()
        stack.down()
        console.print("job, model server, dashboard and broker stopped")
    return 0 if complete else 1
