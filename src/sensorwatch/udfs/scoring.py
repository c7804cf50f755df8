"""Scoring a batch of count windows against the model server: the job's Python half.

Free of PyFlink so that it is tested on its own against the real gRPC server;
:mod:`sensorwatch.udfs.flink` wraps it in a PyFlink function. The rules:

* windows are grouped by model (:func:`sensorwatch.core.windows.model_name`); each group is one
  Predict call of at most ``score_batch_size`` windows, up to ``max_in_flight`` calls at once;
* every call has a deadline; UNAVAILABLE and DEADLINE_EXCEEDED are retried *for ever* under
  :class:`~sensorwatch.core.retry.RetryPolicy`: a model server that is down delays scoring
  (Flink back-pressures the source) and never loses a window;
* NOT_FOUND (no such model), and ``known = False`` from a packed model, give a ``no_model``
  record when no fleet prior takes the window (below); any other refusal (a model trained for another S, say) gives an ``error`` record with
  the server's message. Neither is silent;
* every scored window goes into the batch's one compact :data:`WINDOW_SCORES` row (score,
  threshold, anomaly flag, per-step errors, explanation); the JVM builds a sensor model's
  anomaly and score records from it (``explode_records``) and feeds the incident stage. Python
  makes only the records the JVM cannot: no-model records and device models' records, in
  batch order, tagged with their kind from :data:`sensorwatch.core.outputs.OUTPUTS`;
* a sensor window no model knows (NOT_FOUND, or ``known = False``) goes, with ``prior.enabled``,
  to its tag's fleet prior (:mod:`sensorwatch.core.prior`), normalised by the sensor's running
  statistics (this worker's :class:`~sensorwatch.core.prior.OnlineNormaliser`); it is then
  scored like any window, flagged ``prior`` in the compact row (its records' status is
  ``prior``). A tag without a prior leaves the window a ``no_model`` record;
* a :class:`DeviceBatch` goes to the devices' models (``device_model_name``) with the device
  signature; its records name the tags that drove each score, and every tag a device model
  does not know gets a no-model record of its own (``device/tag``), window by window.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass

import grpc
import numpy as np

from sensorwatch.core.config import Settings
from sensorwatch.core.contracts import anomaly_record
from sensorwatch.core.explain import drivers_text, explain
from sensorwatch.core.outputs import ANOMALY, NO_MODEL, SCORE, WINDOW_SCORES
from sensorwatch.core.prior import OnlineNormaliser, prior_model_name, tag_of
from sensorwatch.core.windows import device_model_name, model_name
from sensorwatch.serving.client import (
    RETRYABLE,
    ScoreResult,
    ScoringClient,
    device_inputs,
    parse_response,
    predict_request,
    score_inputs,
)
from sensorwatch.udfs.batch import DeviceBatch, ScoreBatch, WindowBatch, encode_scores
from sensorwatch.udfs.metrics import Metrics

Batch = WindowBatch | DeviceBatch

log = logging.getLogger("sensorwatch.scoring")
anomaly_log = logging.getLogger("sensorwatch.anomalies")

#: Upper bounds (ms) of the scoring-latency histogram's buckets; the last is +inf.
LATENCY_BUCKETS_MS = (50, 100, 250, 500, 1000, 2000, 5000)


@dataclass(frozen=True)
class Output:
    """One record for a Kafka topic: ``kind`` (an :class:`~sensorwatch.core.outputs.OutputKind`'s) picks it;
    or, kind :data:`WINDOW_SCORES`, the batch's compact scores for the incident stage in ``packed``."""

    kind: str
    key: str | None
    value: str | None
    packed: bytes | None = None


@dataclass
class _Call:
    model: str
    rows: np.ndarray
    attempt: int = 0
    future: Future | None = None
    features: np.ndarray | None = None  # a prior's call: the rows' windows, normalised
    prior: bool = False  # a call to a fleet prior, for rows no model knew


def _stack_errors(errors: list[np.ndarray | None], sizes: list[int]) -> np.ndarray | None:
    """The calls' per-step errors as one [n, E] block; NaN rows where a model gave none."""
    width = max((e.shape[1] for e in errors if e is not None), default=0)
    if width == 0:
        return None
    out = np.full((sum(sizes), width), np.nan)
    at = 0
    for e, k in zip(errors, sizes):
        if e is not None:
            out[at : at + k, : e.shape[1]] = e
        at += k
    return out


class BatchScorer:
    """Scores :class:`WindowBatch` es; one per Python worker, holding one gRPC channel."""

    def __init__(self, settings: Settings, metrics: Metrics | None = None, clock: Callable[[], float] = time.time):
        self.settings = settings
        self.client = ScoringClient(settings.serving, attempts=None)  # for ever: delay, never lose
        # Predict calls run as blocking calls on these threads, not as grpc futures: a grpc future
        # on an otherwise idle channel starts a new "channel spin" thread, so every batch paid a
        # thread start (waiting for a core on a busy machine) before its calls went out
        self._callers = ThreadPoolExecutor(max_workers=settings.job.max_in_flight, thread_name_prefix="predict")
        self.metrics = metrics or Metrics()
        self.clock = clock
        self._outage_since: float | None = None
        self.normaliser = OnlineNormaliser()  # the fleet prior's per-sensor running statistics

    def close(self) -> None:
        self._callers.shutdown(wait=False, cancel_futures=True)
        self.client.close()

    # ------------------------------------------------------------------ calls
    def _plan(self, batch: Batch) -> list[_Call]:
        sv = self.settings.serving
        name = device_model_name if isinstance(batch, DeviceBatch) else model_name
        models = [name(s, sv.layout, sv.packed_groups) for s in batch.sensors]
        by: dict[str, list[int]] = {}
        for i, m in enumerate(models):
            by.setdefault(m, []).append(i)
        size = self.settings.job.score_batch_size
        return [_Call(m, np.asarray(rows[k : k + size])) for m, rows in by.items() for k in range(0, len(rows), size)]

    def _submit(self, call: _Call, batch: Batch) -> None:
        if isinstance(batch, DeviceBatch):
            tags = batch.tags[call.rows]
            width = int((tags != "").sum(axis=1).max()) if len(call.rows) else 0
            inputs = device_inputs(
                [batch.devices[i] for i in call.rows], tags[:, :width], batch.features[call.rows][:, :, :width]
            )
        elif call.prior:
            inputs = score_inputs(call.features, None)
        else:
            packed = self.settings.serving.layout == "packed"
            sensors = [batch.sensors[i] for i in call.rows] if packed else None
            inputs = score_inputs(batch.features[call.rows], sensors)
        req = predict_request(call.model, inputs)
        call.future = self._callers.submit(
            self.client.predict_stub.Predict, req, timeout=self.settings.serving.deadline_s
        )

    def _run(self, calls: list[_Call], batch: Batch) -> dict[int, ScoreResult | grpc.RpcError]:
        """Every call to an answer: a result, or a non-retryable error. Retries for ever."""
        done: dict[int, ScoreResult | grpc.RpcError] = {}
        pending = list(range(len(calls)))
        limit = self.settings.job.max_in_flight
        while pending:
            retry: list[int] = []
            for lo in range(0, len(pending), limit):
                wave = pending[lo : lo + limit]
                for i in wave:
                    self._submit(calls[i], batch)
                for i in wave:
                    try:
                        done[i] = parse_response(calls[i].future.result())
                    except grpc.RpcError as exc:
                        if exc.code() in RETRYABLE:
                            retry.append(i)
                        else:
                            done[i] = exc
            if retry:
                self._note_outage(calls[retry[0]], len(retry))
                time.sleep(self.client.retry.delay(min(calls[i].attempt for i in retry)))
                for i in retry:
                    calls[i].attempt += 1
            elif self._outage_since is not None:
                lasted = self.clock() - self._outage_since
                log.warning("model server answers again after %.1f s; scoring resumes in order", lasted)
                self.metrics.counter("outage_ms").inc(int(lasted * 1000))
                self._outage_since = None
            pending = retry
        return done

    def _note_outage(self, call: _Call, n: int) -> None:
        self.metrics.counter("score_retries").inc(n)
        exc = call.future.exception() if call.future else None
        if self._outage_since is None:
            self._outage_since = self.clock()
            self.metrics.counter("outages").inc()
            log.warning(
                "model server at %s unavailable (%s); holding %d call(s) and retrying until it answers",
                self.settings.serving.target,
                exc.code().name if exc else "?",
                n,
            )

    # ---------------------------------------------------------------- records
    def score(self, batch: Batch) -> list[Output]:
        """The records Python makes (no-model windows, device models' windows), in batch order,
        then one :data:`WINDOW_SCORES` row holding every scored window (when there is one)."""
        if len(batch) == 0:
            return []
        calls = self._plan(batch)
        answers = self._run(calls, batch)
        covered = np.zeros(len(batch), bool)  # rows no model knew that a fleet prior scored
        if self.settings.prior.enabled and not isinstance(batch, DeviceBatch):
            covered = self._priors(batch, calls, answers)
        now = int(self.clock() * 1000)
        per_row: list[Output | None] = [None] * len(batch)
        per_row_extra: list[Output] = []
        m = self.metrics
        emit_scores = SCORE.enabled(self.settings)
        scored: list[tuple[_Call, ScoreResult, np.ndarray]] = []
        for i, call in enumerate(calls):
            ans = answers[i]
            if isinstance(ans, grpc.RpcError):
                status = "no_model" if ans.code() == grpc.StatusCode.NOT_FOUND else "error"
                # a row no model knew: its prior's answer stands for it, unless there is no prior
                rows = [int(r) for r in call.rows if covered[r] == call.prior]
                m.counter(status).inc(len(rows))
                if status == "error" and rows:
                    log.error(
                        "model %s refused %d window(s): %s %s",
                        call.model,
                        len(rows),
                        ans.code().name,
                        ans.details(),
                    )
                for r in rows:
                    per_row[r] = self._unscored(
                        batch,
                        r,
                        call.model,
                        status,
                        now,
                        None if status == "no_model" else f"{ans.code().name}: {ans.details()}",
                    )
                continue
            n = len(call.rows)
            known = ans.extra.get("known")
            ok = np.ones(n, bool) if known is None else np.asarray(known, bool)
            scored.append((call, ans, ok))
            anomalous = ok & np.asarray(ans.is_anomaly, bool)
            m.counter("windows_scored").inc(int(ok.sum()))
            m.counter("anomalies").inc(int(anomalous.sum()))
            if call.prior:
                m.counter("prior").inc(n)
            unknown = ~ok & ~covered[call.rows]  # no model knows them, nor a prior
            if unknown.any():
                m.counter("no_model").inc(int(unknown.sum()))
            device = isinstance(batch, DeviceBatch)
            for j in np.flatnonzero(anomalous).tolist():
                anomaly_log.info(
                    "%s@%d score %.6g over threshold %.6g (%s v%s)",
                    batch.sensors[int(call.rows[j])],
                    int(batch.end[int(call.rows[j])]),
                    float(ans.score[j]),
                    float(ans.threshold[j]),
                    call.model,
                    ans.model_version,
                )
            # A sensor model's records are built in the JVM (explode_records) from the batch's
            # window_scores row; here, a window pays for a record only when no model scored it
            # or a device model did (its tags' shares and unknown tags are made here).
            publish = unknown.copy()
            if device:
                publish |= (
                    anomalous | (ok & emit_scores) | (ok & np.asarray(ans.extra["unknown_tag"], bool).any(axis=1))
                )
            for j in np.flatnonzero(publish).tolist():
                r = int(call.rows[j])
                if unknown[j]:
                    per_row[r] = self._unscored(batch, r, call.model, "no_model", now, None)
                    continue
                rec = self._record(batch, r, ans, j, now)
                if rec.get("unknown_tags"):
                    per_row_extra.extend(self._unknown_tags(batch, r, call.model, rec["unknown_tags"], now))
                if anomalous[j]:
                    per_row[r] = Output(ANOMALY.kind, rec["key"], json.dumps(rec))
                elif emit_scores:
                    per_row[r] = Output(SCORE.kind, rec["key"], json.dumps(rec))
        self._observe_latency(batch, now)
        out = [o for o in per_row if o is not None] + per_row_extra
        packed = self._window_scores(batch, scored)
        if packed is not None:
            out.append(Output(WINDOW_SCORES, None, None, packed))
        return out

    def _priors(self, batch: WindowBatch, calls: list[_Call], answers: dict) -> np.ndarray:
        """Score the windows no model knew with their tags' fleet priors: the prior calls are
        appended to ``calls`` and their answers to ``answers``; returns the rows a prior
        answered (scored, or refused with an error other than NOT_FOUND: no prior for the tag).

        A sensor its own model scored is forgotten by the normaliser (its model was promoted)."""
        unknown = np.zeros(len(batch), bool)
        for i, call in enumerate(calls):
            ans = answers[i]
            if isinstance(ans, grpc.RpcError):
                unknown[call.rows] = ans.code() == grpc.StatusCode.NOT_FOUND
            elif "known" in ans.extra:
                unknown[call.rows] = ~np.asarray(ans.extra["known"], bool)
        if len(self.normaliser):
            self.normaliser.forget({batch.sensors[r] for r in np.flatnonzero(~unknown).tolist()})
        rows = np.flatnonzero(unknown)
        if rows.size == 0:
            return unknown
        sensors = [batch.sensors[r] for r in rows.tolist()]
        Z = self.normaliser.normalise(sensors, batch.features[rows])
        by: dict[str, list[int]] = {}
        for k, s in enumerate(sensors):
            by.setdefault(prior_model_name(tag_of(s)), []).append(k)
        size = self.settings.job.score_batch_size
        extra = [
            _Call(name, rows[ks[a : a + size]], features=Z[ks[a : a + size]], prior=True)
            for name, ks in by.items()
            for a in range(0, len(ks), size)
        ]
        got = self._run(extra, batch)
        covered = np.zeros(len(batch), bool)
        for k, call in enumerate(extra):
            answers[len(calls) + k] = got[k]
            if not isinstance(got[k], grpc.RpcError) or got[k].code() != grpc.StatusCode.NOT_FOUND:
                covered[call.rows] = True
        calls.extend(extra)
        self.normaliser.forget({sensors[k] for k in np.flatnonzero(~covered[rows]).tolist()})  # no prior: no state
        return covered

    @staticmethod
    def _window_scores(batch: Batch, scored: list[tuple[_Call, ScoreResult, np.ndarray]]) -> bytes | None:
        """Every scored window of ``batch`` as one compact row (see :class:`ScoreBatch`)."""
        parts = []
        errors: list[np.ndarray | None] = []
        for call, ans, ok in scored:
            if not ok.any():
                continue
            rows = call.rows[ok]
            n = len(rows)
            pse = None if ans.per_step_error is None else np.asarray(ans.per_step_error)[ok]
            drivers = [""] * n
            if isinstance(batch, DeviceBatch):
                # a device model explains itself by its tags: the step it blames, the tags' shares
                step = np.argmax(pse, axis=1).astype(np.int8) if pse is not None else np.full(n, -1, np.int8)
                feature, hint = np.full(n, -1, np.int8), np.zeros(n, np.int8)
                share = np.asarray(ans.extra["tag_share"])[ok]
                drivers = [drivers_text(batch.tags[r], share[j]) for j, r in enumerate(rows)]
            else:
                fz = ans.extra.get("feature_z")
                step, feature, hint = explain(batch.features[rows], pse, None if fz is None else np.asarray(fz)[ok])
            nan = np.full(n, np.nan)
            seed = {
                k: np.asarray(ans.extra[k], np.float64)[ok] if k in ans.extra else nan
                for k in ("seed_n", "seed_mean", "seed_var")
            }
            parts.append(
                (
                    [batch.sensors[r] for r in rows],
                    [call.model] * n,
                    drivers,
                    {
                        "row": rows,
                        "end": batch.end[rows],
                        "closed": batch.closed[rows],
                        "version": np.full(n, ans.model_version or 0, np.int64),
                        "score": np.asarray(ans.score, np.float64)[ok],
                        "threshold": np.asarray(ans.threshold, np.float64)[ok],
                        **seed,
                        "step": step,
                        "feature": feature,
                        "hint": hint,
                        "anomaly": np.asarray(ans.is_anomaly, np.int8)[ok],
                        "prior": np.full(n, int(call.prior), np.int8),
                    },
                )
            )
            errors.append(None if pse is None else np.asarray(pse, np.float64).reshape(n, -1))
        if not parts:
            return None
        cols = {k: np.concatenate([p[3][k] for p in parts]) for k in parts[0][3]}
        return encode_scores(
            ScoreBatch(
                [s for p in parts for s in p[0]],
                [m for p in parts for m in p[1]],
                cols,
                [d for p in parts for d in p[2]],
                _stack_errors(errors, [len(p[0]) for p in parts]),
            )
        )

    def _observe_latency(self, batch: Batch, now_ms: int) -> None:
        lat = np.maximum(now_ms - batch.closed, 0)
        dist = self.metrics.distribution("score_latency_ms")
        for v in lat.tolist():
            dist.update(int(v))
        edges = np.asarray(LATENCY_BUCKETS_MS)
        counts = np.bincount(np.searchsorted(edges, lat, side="left"), minlength=len(edges) + 1)
        for k, c in enumerate(counts.tolist()):
            if c:
                name = f"score_latency_le_{edges[k]}ms" if k < len(edges) else "score_latency_le_inf"
                self.metrics.counter(name).inc(c)

    def _base(self, batch: Batch, r: int) -> dict:
        f = batch.features[r]
        if isinstance(batch, DeviceBatch):
            cols = [(c, t) for c, t in enumerate(batch.tags[r]) if t]

            def per_tag(k: int) -> dict[str, list[float | None]]:
                return {t: [None if not np.isfinite(v) else float(v) for v in f[:, c, k]] for c, t in cols}

            return dict(
                sensor=batch.devices[r],
                window_start=int(batch.start[r]),
                window_end=int(batch.end[r]),
                values=per_tag(0),
                stddev=per_tag(1),
                counts=per_tag(2),
                window_closed_ts=int(batch.closed[r]),
            )
        return dict(
            sensor=batch.sensors[r],
            window_start=int(batch.start[r]),
            window_end=int(batch.end[r]),
            values=f[:, 0].tolist(),
            stddev=f[:, 1].tolist(),
            counts=f[:, 2].tolist(),
            window_closed_ts=int(batch.closed[r]),
        )

    def _record(self, batch: Batch, r: int, res: ScoreResult, j: int, now: int) -> dict:
        pse = res.per_step_error
        device: dict = {}
        if isinstance(batch, DeviceBatch):
            tags = batch.tags[r]
            share = np.asarray(res.extra["tag_share"][j], np.float64)
            unknown = np.asarray(res.extra["unknown_tag"][j], bool)
            order = np.argsort(-share, kind="stable")
            device = dict(
                tags=[
                    {"tag": str(tags[c]), "share": round(float(share[c]), 4)} for c in order if tags[c] and share[c] > 0
                ],
                unknown_tags=[str(tags[c]) for c in range(len(unknown)) if unknown[c]],
            )
        return anomaly_record(
            **device,
            **self._base(batch, r),
            score=float(res.score[j]),
            threshold=float(res.threshold[j]),
            is_anomaly=bool(res.is_anomaly[j]),
            model_name=res.model_name,
            model_version=res.model_version,
            processing_ts=now,
            per_step_error=None if pse is None else np.asarray(pse[j], dtype=float).tolist(),
        )

    def _unknown_tags(self, batch: DeviceBatch, r: int, model: str, tags: list[str], now: int) -> list[Output]:
        """A tag its device model does not know: a sensor without a model, reported as such."""
        self.metrics.counter("unknown_tags").inc(len(tags))
        error = f"unknown to the device model {model}; retrain the device to include it"
        out = []
        for tag in tags:
            f = batch.features[r][:, list(batch.tags[r]).index(tag)]
            base = dict(
                sensor=f"{batch.devices[r]}/{tag}",
                window_start=int(batch.start[r]),
                window_end=int(batch.end[r]),
                values=[None if not np.isfinite(v) else float(v) for v in f[:, 0]],
                window_closed_ts=int(batch.closed[r]),
            )
            out.append(self._no_model(base, model, "no_model", now, f"tag {tag!r} is {error}"))
        return out

    def _unscored(self, batch: Batch, r: int, model: str, status: str, now: int, error: str | None) -> Output:
        return self._no_model(self._base(batch, r), model, status, now, error)

    @staticmethod
    def _no_model(base: dict, model: str, status: str, now: int, error: str | None) -> Output:
        """A window no model scored (``status`` no_model or error), for the no-model topic."""
        rec = anomaly_record(
            **base,
            score=None,
            threshold=None,
            is_anomaly=False,
            model_name=model,
            model_version=None,
            processing_ts=now,
            status=status,
            error=error,
        )
        return Output(NO_MODEL.kind, rec["key"], json.dumps(rec))
