"""A deterministic simulated fleet: per-sensor normal behaviour plus injected anomalies.

Everything is vectorised over sensors with numpy, a block of event time at a time, so the
simulator is limited by the Kafka producer, not by Python. The same seed gives the same
readings, the same delivery order and the same ground truth.

Normal behaviour per tag kind (parameters drawn per sensor):

* temperature: level 20..80, slow process cycle (10..30 min), small noise, AR(1) wander
* pressure:    level 1..10, faster cycle (2..10 min), noise ~1% of level
* vibration:   level 0.5..3, short cycle (30..120 s), noise ~8% of level

Anomaly kinds (ground truth: sensor, kind, start, end):

* spike        10% of the readings in the event jump by 8..15 sigma
* level_shift  the level moves by 0.6..1.0 of the normal range
* drift        a ramp that reaches 0.8..1.4 of the normal range at the end
* stuck        the reading freezes at its value when the event starts
* noise_burst  the noise grows 5..9 times
* dropout      a flaky link: 70..90% of the readings never arrive

Pumps (``pumps``, devices ``pump-NNNN``) are devices whose tags are related: a variable-speed
pump's speed follows a hidden load (a sum of slow cycles and a wander, in 0.3..1 of full
speed), and by the affinity laws its flow follows speed, its pressure speed squared and its
power speed cubed. Their one fault kind:

* decouple     one tag stops following the pump's load and follows a second, independent load
               of the same kind: every tag stays inside its own normal range, with its normal
               dynamics, and only the relation between the tags breaks. The label names the
               device and the tag (``tags``).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import numpy as np

from sensorwatch.core.config import SimulatorConfig
from sensorwatch.core.contracts import sensor_id
from sensorwatch.core.windows import device_of

#: Pump tags: offset, gain per unit of f(speed), noise sd (x value). A variable-speed pump
#: follows the affinity laws: flow ~ speed, pressure (head) ~ speed squared, power ~ speed cubed.
PUMP_TAGS = ("flow", "pressure", "power", "speed")
PUMP_PROFILE = {
    "flow": (0.0, 120.0, 0.01),  # m3/h
    "pressure": (0.5, 8.0, 0.01),  # bar
    "power": (1.0, 40.0, 0.01),  # kW
    "speed": (0.0, 1500.0, 0.005),  # rpm
}
#: Periods (s) of the load's slow cycles: the load moves within one count window of the defaults.
LOAD_PERIODS = (90.0, 240.0, 600.0)
#: A decoupled tag moves from the pump's load to its second load (and back) over this many seconds.
RAMP_S = 20.0

TAG_PROFILES = {
    # level range, cycle period range (s), cycle amplitude (x level), noise sd (x level), wander sd (x level)
    "temperature": ((20.0, 80.0), (600.0, 1800.0), 0.05, 0.004, 0.0008),
    "pressure": ((1.0, 10.0), (120.0, 600.0), 0.06, 0.01, 0.001),
    "vibration": ((0.5, 3.0), (30.0, 120.0), 0.08, 0.08, 0.002),
}


@dataclass(frozen=True)
class Label:
    """Ground truth for one injected anomaly; times in epoch ms, end exclusive."""

    sensor: str
    kind: str
    start: int
    end: int
    tags: tuple[str, ...] = ()
    """a relation fault: the tags involved (``sensor`` is then device/first tag)"""

    @property
    def device(self) -> str:
        return device_of(self.sensor)

    def to_dict(self) -> dict:
        out = {"sensor": self.sensor, "kind": self.kind, "start": self.start, "end": self.end}
        if self.tags:
            out.update(device=self.device, tags=list(self.tags))
        return out


@dataclass
class Block:
    """One block of readings in delivery order (columns, not objects, for speed)."""

    sensor_idx: np.ndarray  # int32
    ts: np.ndarray  # int64 event time, ms
    emit_ts: np.ndarray  # int64 time the device sends it (Kafka CreateTime), ms
    value: np.ndarray  # float64
    late: np.ndarray  # bool: sent after the watermark passes its window


@dataclass
class Fleet:
    """D devices x T tags. ``blocks()`` yields readings in delivery order."""

    cfg: SimulatorConfig
    now_ms: int | None = None
    sensors: list[str] = field(init=False)
    sensor_bytes: list[tuple[bytes, bytes]] = field(init=False)
    devices: list[str] = field(init=False)
    tags: list[str] = field(init=False)

    def __post_init__(self) -> None:
        c = self.cfg
        # Independent streams, so that turning anomalies or disorder on or off leaves the
        # normal signal of a seed unchanged (tests compare against that counterfactual).
        seeds = np.random.SeedSequence(c.seed).spawn(5)
        self.rng, self._rng_labels, self._rng_normal, self._rng_anom, self._rng_delivery = (
            np.random.default_rng(x) for x in seeds
        )
        self.devices = [f"dev-{d:04d}" for d in range(c.devices)]
        self.tags = list(c.tags)
        self.sensor_device = np.repeat(np.arange(c.devices), len(self.tags))
        self.sensor_tag = np.tile(np.arange(len(self.tags)), c.devices)
        self.sensors = [sensor_id(self.devices[d], self.tags[t]) for d, t in zip(self.sensor_device, self.sensor_tag)]
        n_plain = len(self.sensors)
        self.pumps = [f"pump-{p:04d}" for p in range(c.pumps)]
        self.sensors += [sensor_id(p, t) for p in self.pumps for t in PUMP_TAGS]
        #: per sensor, its device and tag as UTF-8: what the publisher writes, made once
        self.sensor_bytes = [tuple(x.encode() for x in s.split("/")) for s in self.sensors]
        n = len(self.sensors)
        now = self.now_ms if self.now_ms is not None else int(time.time() * 1000)
        self.interval_ms = int(round(c.interval_s * 1000))
        self.steps = int(c.duration_s * 1000) // self.interval_ms
        start = c.start_ms if c.start_ms is not None else now - self.steps * self.interval_ms
        # by default on a whole minute, so the first tumbling window is a whole one (a partial
        # first window holds fewer readings than any other, and models rightly flag it)
        align = self.interval_ms if c.start_ms is not None else max(self.interval_ms, 60_000)
        self.start_ms = start - start % align
        self.end_ms = self.start_ms + self.steps * self.interval_ms

        level = np.zeros(n)
        period = np.ones(n)
        amp = np.zeros(n)
        noise = np.zeros(n)
        wander = np.zeros(n)
        for ti, tag in enumerate(self.tags):
            (lo, hi), (plo, phi), a, sd, w = TAG_PROFILES[tag]
            m = np.zeros(n, bool)
            m[:n_plain] = self.sensor_tag == ti
            k = int(m.sum())
            level[m] = self.rng.uniform(lo, hi, k)
            period[m] = self.rng.uniform(plo, phi, k)
            amp[m] = a * level[m] * self.rng.uniform(0.7, 1.3, k)
            noise[m] = sd * level[m] * self.rng.uniform(0.8, 1.2, k)
            wander[m] = w * level[m]
        self.level, self.period, self.amp, self.noise, self.wander_sd = level, period, amp, noise, wander
        self.phase = self.rng.uniform(0, 2 * np.pi, n)
        self._n_plain = n_plain
        self._pump_setup()
        #: peak-to-peak of the normal signal: what anomaly magnitudes are measured against
        self.range = 2 * amp + 6 * noise
        self._wander = np.zeros(n)
        self._stuck_value: dict[Label, float] = {}  # the value each stuck event froze at
        self._index = {s: i for i, s in enumerate(self.sensors)}
        self.labels = self._draw_labels()
        self._by_sensor: list[list[tuple[Label, float, float]]] = [[] for _ in range(n)]
        for lab in self.labels:
            i = self._index[lab.sensor]
            sign = self._rng_labels.choice([-1.0, 1.0])
            mag = self._rng_labels.uniform(0, 1)
            self._by_sensor[i].append((lab, sign, mag))

    def _pump_setup(self) -> None:
        """Per pump: two independent loads (the second drives a decoupled tag) and tag gains."""
        P, K = len(self.pumps), len(LOAD_PERIODS)
        rng = np.random.default_rng(np.random.SeedSequence([self.cfg.seed, 7]))
        self._load_period = np.asarray(LOAD_PERIODS) * rng.uniform(0.8, 1.25, (P, 2, K))
        self._load_phase = rng.uniform(0, 2 * np.pi, (P, 2, K))
        self._load_wander = np.zeros((P, 2))
        self._pump_scale = rng.uniform(0.8, 1.25, (P, len(PUMP_TAGS)))
        self._rng_pump = rng

    def _pump_values(self, t_s: float) -> np.ndarray:
        """[P, 2, tags]: every pump tag's value under each of the pump's two loads (no noise)."""
        cyc = np.sin(2 * np.pi * t_s / self._load_period + self._load_phase)  # [P, 2, K]
        self._load_wander = 0.995 * self._load_wander + self._rng_pump.normal(0, 0.01, self._load_wander.shape)
        load = np.clip(0.65 + 0.3 * cyc.mean(-1) + self._load_wander, 0.3, 1.0)
        f = {"flow": load, "pressure": load**2, "power": load**3, "speed": load}
        out = np.stack([PUMP_PROFILE[t][0] + PUMP_PROFILE[t][1] * f[t] for t in PUMP_TAGS], -1)
        return out * self._pump_scale[:, None, :]

    def _spans(self, rate_per_hour: float):
        """Yield (start, end) of one sensor's (or pump's) events at ``rate_per_hour``: a Poisson
        count, exponential gaps, at least ``anomaly_max_s`` of quiet between two, none before the
        warm-up or past the end. Draw the event's kind between two yields: the draws then come
        in the same order as they always have, and a seed keeps its ground truth."""
        c, rng = self.cfg, self._rng_labels
        count = rng.poisson(rate_per_hour * c.duration_s / 3600.0)
        t = self.start_ms + int(c.warmup_s * 1000)
        for _ in range(count):
            t += int(rng.exponential(3600_000 / rate_per_hour / 2))
            dur = int(rng.uniform(c.anomaly_min_s, c.anomaly_max_s) * 1000)
            if t + dur > self.end_ms:
                return
            yield t, t + dur
            t += dur + int(c.anomaly_max_s * 1000)

    def _draw_labels(self) -> list[Label]:
        c = self.cfg
        labels: list[Label] = []
        if c.relation_faults_per_hour > 0:
            for p in self.pumps:
                for a, b in self._spans(c.relation_faults_per_hour):
                    tag = str(self._rng_labels.choice(PUMP_TAGS))
                    labels.append(Label(sensor_id(p, tag), "decouple", a, b, (tag,)))
        if c.anomaly_rate_per_hour > 0 and c.anomaly_kinds:
            for s in self.sensors[: self._n_plain]:
                for a, b in self._spans(c.anomaly_rate_per_hour):
                    labels.append(Label(s, str(self._rng_labels.choice(c.anomaly_kinds)), a, b))
        return sorted(labels, key=lambda lab: (lab.start, lab.sensor))

    def _normal(self, ts: np.ndarray) -> np.ndarray:
        """Values for all sensors at one time step (shape: sensors)."""
        t = ts / 1000.0
        rng = self._rng_normal
        self._wander = 0.995 * self._wander + rng.normal(0, 1, self._wander.shape) * self.wander_sd
        cycle = self.amp * np.sin(2 * np.pi * t / self.period + self.phase)
        out = self.level + cycle + self._wander + rng.normal(0, 1, self.level.shape) * self.noise
        if self.pumps:
            both = self._pump_values(float(t[0]))  # [P, 2, tags]
            self._pump_both = both
            noise = np.asarray([PUMP_PROFILE[k][2] for k in PUMP_TAGS]) * np.abs(both[:, 0])
            pump = both[:, 0] + self._rng_pump.normal(0, 1, noise.shape) * noise
            out[self._n_plain :] = pump.reshape(-1)
        return out

    def _apply_anomalies(self, ts: int, values: np.ndarray, keep: np.ndarray) -> None:
        rng = self._rng_anom
        for i, events in enumerate(self._by_sensor):
            for lab, sign, mag in events:
                if not (lab.start <= ts < lab.end):
                    continue
                frac = (ts - lab.start) / max(1, lab.end - lab.start)
                if lab.kind == "spike":
                    if rng.uniform() < 0.10:
                        values[i] += sign * (8 + 7 * mag) * self.noise[i]
                elif lab.kind == "level_shift":
                    values[i] += sign * (0.6 + 0.4 * mag) * self.range[i]
                elif lab.kind == "drift":
                    values[i] += sign * (0.8 + 0.6 * mag) * self.range[i] * frac
                elif lab.kind == "stuck":
                    values[i] = self._stuck_value.setdefault(lab, values[i])
                elif lab.kind == "noise_burst":
                    values[i] += rng.normal() * (5 + 4 * mag) * self.noise[i]
                elif lab.kind == "dropout":
                    keep[i] = rng.uniform() >= 0.7 + 0.2 * mag
                elif lab.kind == "decouple":
                    # the tag follows the pump's second load: same range, same dynamics, no relation
                    # (eased in and out over RAMP_S, as a slipping coupling or a fouling sensor does)
                    p, k = divmod(i - self._n_plain, len(PUMP_TAGS))
                    ramp = min(1.0, (ts - lab.start) / 1000 / RAMP_S, (lab.end - ts) / 1000 / RAMP_S)
                    values[i] += ramp * (self._pump_both[p, 1, k] - self._pump_both[p, 0, k])

    def blocks(self, block_steps: int = 60):
        """Yield :class:`Block` s covering the whole duration, in delivery order.

        Out-of-order readings are delayed by up to ``out_of_order_max_s``; late ones by
        ``late_by_s``. Delayed readings are carried into the block where they are due, so
        the stream's delivery order is exactly the order of ``emit_ts``.
        """
        c = self.cfg
        n = len(self.sensors)
        pending = Block(*(np.empty(0, dt) for dt in (np.int32, np.int64, np.int64, np.float64, bool)))
        any_anomalies = any(self._by_sensor)
        for b0 in range(0, self.steps, block_steps):
            b1 = min(self.steps, b0 + block_steps)
            rows_idx, rows_ts, rows_val = [], [], []
            for k in range(b0, b1):
                ts = self.start_ms + k * self.interval_ms
                values = self._normal(np.full(n, ts, dtype=np.float64))
                keep = np.ones(n, dtype=bool)
                if any_anomalies:
                    self._apply_anomalies(ts, values, keep)
                idx = np.nonzero(keep)[0].astype(np.int32)
                rows_idx.append(idx)
                rows_ts.append(np.full(idx.size, ts, dtype=np.int64))
                rows_val.append(values[idx])
            idx = np.concatenate(rows_idx)
            ts = np.concatenate(rows_ts)
            val = np.concatenate(rows_val)
            delay = np.zeros(idx.size, dtype=np.int64)
            rng = self._rng_delivery
            u = rng.uniform(0, 1, idx.size)
            ooo = u < c.out_of_order_rate
            late = (u >= c.out_of_order_rate) & (u < c.out_of_order_rate + c.late_rate)
            delay[ooo] = (rng.uniform(0, c.out_of_order_max_s, int(ooo.sum())) * 1000).astype(np.int64)
            delay[late] = int(c.late_by_s * 1000)
            merged = Block(
                np.concatenate([pending.sensor_idx, idx]),
                np.concatenate([pending.ts, ts]),
                np.concatenate([pending.emit_ts, ts + delay]),
                np.concatenate([pending.value, val]),
                np.concatenate([pending.late, late]),
            )
            horizon = self.start_ms + b1 * self.interval_ms
            due = merged.emit_ts < horizon if b1 < self.steps else np.ones(merged.ts.size, dtype=bool)
            order = np.argsort(merged.emit_ts[due], kind="stable")
            out = Block(*(getattr(merged, f)[due][order] for f in ("sensor_idx", "ts", "emit_ts", "value", "late")))
            pending = Block(*(getattr(merged, f)[~due] for f in ("sensor_idx", "ts", "emit_ts", "value", "late")))
            yield out
