"""One typed configuration for every part of sensorwatch.

Why one type: the local demo, the tests, ``flink run -py`` on a cluster and the
docker-compose services all read the same :class:`Settings`, so pointing the job at
another Kafka or model server is a configuration change, never a code change.

Sources, later ones winning: the defaults below (documented, one for one, in
``config/sensorwatch.yaml``), a YAML file (``--config`` or ``SENSORWATCH_CONFIG``), then
environment variables ``SENSORWATCH__<SECTION>__<KEY>`` (for example
``SENSORWATCH__KAFKA__BOOTSTRAP_SERVERS=broker:9092``). Unknown keys are rejected with
a message naming the key, in files and environment alike: a typo must never silently
fall back to a default.
"""

from __future__ import annotations

import difflib
import os
import re
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, SecretStr, ValidationError, field_validator, model_validator

from sensorwatch.core.windows import FEATURES

ENV_PREFIX = "SENSORWATCH__"
CONFIG_ENV = "SENSORWATCH_CONFIG"


class ConfigError(ValueError):
    """A configuration that cannot be used; the message names the offending key."""


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_assignment=True, use_attribute_docstrings=True)


class TopicsConfig(_Section):
    """Kafka topic names. Every topic the stack creates and the job reads or writes."""

    readings: str = "sensorwatch.readings"
    """raw readings in: one JSON {device, tag, ts, value} per reading, or one {device, ts, values} per device and time (kafka.readings_format)"""
    aggregates: str = "sensorwatch.aggregates"
    """tumbling-window means per sensor: the training data"""
    anomalies: str = "sensorwatch.anomalies"
    """anomaly records out"""
    scores: str = "sensorwatch.scores"
    """every score, when job.emit_scores is on"""
    incidents: str = "sensorwatch.incidents"
    """incident records (opened, closed), keyed by incident id: what operators are alerted on"""
    no_model: str = "sensorwatch.no-model"
    """windows of sensors the model server has no model for"""
    dead_letters: str = "sensorwatch.dead-letters"
    """rejected readings with the reason and the original payload"""
    late: str = "sensorwatch.late"
    """readings that arrived after their window closed"""
    labels: str = "sensorwatch.labels"
    """ground truth of injected anomalies (simulator), and operators' verdicts on incidents (`sensorwatch label`, type incident_label)"""
    silences: str = "sensorwatch.silences"
    """operators' per-sensor silences (`sensorwatch alert silence`), keyed by sensor: the alert forwarder holds back their alerts"""

    def all(self) -> list[str]:
        return [getattr(self, name) for name in type(self).model_fields]


class KafkaConfig(_Section):
    """How every client reaches Kafka: the local broker by default, any cluster by config."""

    bootstrap_servers: str = "127.0.0.1:9092"
    """comma-separated host:port list"""
    security_protocol: Literal["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"] = "PLAINTEXT"
    """PLAINTEXT, SSL, SASL_PLAINTEXT or SASL_SSL; applies to every client, the job included"""
    sasl_mechanism: Literal["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"] | None = None
    """with SASL_*: PLAIN, SCRAM-SHA-256 or SCRAM-SHA-512"""
    sasl_username: str | None = None
    """with SASL_*"""
    sasl_password: SecretStr | None = None
    """with SASL_*; never logged or printed (prefer the environment variable)"""
    ssl_cafile: Path | None = None
    """with *SSL: CA bundle that signed the brokers' certificates"""
    ssl_certfile: Path | None = None
    """with *SSL: client certificate for mutual TLS"""
    ssl_keyfile: Path | None = None
    """with *SSL: client key for mutual TLS"""
    partitions: int = Field(4, ge=1, description="partitions of each topic the stack creates")
    replication_factor: int = Field(1, ge=1)
    """replicas of each topic the stack creates"""
    topics: TopicsConfig = TopicsConfig()
    readings_format: Literal["reading", "device"] = "reading"
    """the format of topics.readings: reading, one message per reading {device, tag, ts, value}; device, one message per device and time {device, ts, values: {tag: number}} (IoT Hub, AWS IoT, Sparkplug style), read by the job and written by the simulator"""

    @model_validator(mode="after")
    def _sasl_complete(self) -> KafkaConfig:
        if self.security_protocol.startswith("SASL") and not (
            self.sasl_mechanism and self.sasl_username and self.sasl_password
        ):
            raise ValueError("security_protocol SASL_* needs sasl_mechanism, sasl_username and sasl_password")
        return self


class StackConfig(_Section):
    """The embedded local stack: a real single-node Kafka broker (KRaft) on loopback."""

    work_dir: Path = Path(".sensorwatch")
    """broker data, logs, pid and state files"""
    kafka_port: int = Field(9092, ge=0, le=65535, description="0 picks a free port")
    controller_port: int = Field(9093, ge=0, le=65535, description="0 picks a free port")
    kafka_heap: str = "512m"
    """JVM heap of the broker"""
    start_timeout_s: float = Field(60.0, gt=0)
    """give up when the broker is not ready this soon"""
    message_max_bytes: int = Field(
        4 * 1024 * 1024,
        ge=1024,
        description="broker and topic limit; above Kafka's 1 MB so oversized readings reach "
        "the dead-letter topic instead of failing at the producer",
    )
    kafka_properties: dict[str, str] = Field(
        default_factory=dict,
        description="more server.properties for the embedded broker, over sensorwatch's own "
        "(say log.retention.hours for a longer history)",
    )


class SimulatorConfig(_Section):
    """The simulated fleet: devices x tags, each a sensor with its own normal behaviour."""

    devices: int = Field(10, ge=0)
    """number of devices; each carries every tag"""
    tags: list[Literal["temperature", "pressure", "vibration"]] = [
        "temperature",
        "pressure",
        "vibration",
    ]
    """tag kinds every device carries: temperature, pressure, vibration"""
    pumps: int = Field(0, ge=0)
    """pump devices (pump-NNNN) besides the devices above: each pump's tags (flow, pressure, power, speed) follow one hidden load (the affinity laws); see ``relation_faults_per_hour``"""
    relation_faults_per_hour: float = Field(1.0, ge=0)
    """injected per pump per hour: one tag decouples from the load (it follows another load of the same kind, so it stays in its own normal range while its relation to the others breaks)"""
    interval_s: float = Field(1.0, gt=0, description="event-time spacing of one sensor's readings")
    duration_s: float = Field(600.0, gt=0, description="event time simulated")
    start_ms: int | None = Field(None, description="event time of the first reading; default: now - duration_s")
    realtime: bool = Field(False, description="pace event time to wall time; else as fast as possible")
    speed: float = Field(1.0, gt=0, description="with realtime: event-time seconds per wall-clock second")
    seed: int = 42
    """same seed, same readings, delivery order and ground truth"""
    anomaly_rate_per_hour: float = Field(2.0, ge=0, description="injected anomalies per sensor per hour of event time")
    anomaly_kinds: list[Literal["spike", "level_shift", "drift", "stuck", "noise_burst", "dropout"]] = [
        "spike",
        "level_shift",
        "drift",
        "stuck",
        "noise_burst",
        "dropout",
    ]
    """kinds injected: spike, level_shift, drift, stuck, noise_burst, dropout"""
    anomaly_min_s: float = Field(60.0, gt=0)
    """shortest injected anomaly"""
    anomaly_max_s: float = Field(180.0, gt=0)
    """longest injected anomaly; also the quiet gap between two of one sensor"""
    warmup_s: float = Field(300.0, ge=0, description="no anomaly starts this soon after the first reading")
    out_of_order_rate: float = Field(0.01, ge=0, le=1, description="share delivered slightly out of order")
    out_of_order_max_s: float = Field(2.0, ge=0)
    """largest out-of-order delay; keep <= job.out_of_orderness_ms"""
    late_rate: float = Field(0.0, ge=0, le=1, description="share delivered after the watermark passed")
    late_by_s: float = Field(120.0, ge=0)
    """delay of late readings"""
    malformed_rate: float = Field(0.0, ge=0, le=1, description="share replaced by malformed payloads")
    labels_file: Path | None = Field(None, description="ground truth also written here (JSON lines)")

    @model_validator(mode="after")
    def _ranges(self) -> SimulatorConfig:
        if self.anomaly_min_s > self.anomaly_max_s:
            raise ValueError("anomaly_min_s must not exceed anomaly_max_s")
        if self.devices + self.pumps < 1:
            raise ValueError("a fleet needs at least one device or pump")
        return self


class ValidationConfig(_Section):
    """The reading contract's limits (enforced in the JVM by the job, in Python by tools)."""

    max_payload_bytes: int = Field(4096, ge=64)
    """larger payloads are dead-lettered (too_large)"""
    max_abs_value: float = Field(1e12, gt=0)
    """larger |value| is dead-lettered (bad_value)"""
    max_past_ms: int = Field(7 * 24 * 3600 * 1000, ge=0, description="ts may lag the Kafka record time by this")
    max_future_ms: int = Field(5 * 60 * 1000, ge=0, description="ts may lead the Kafka record time by this")
    dead_letter_payload_chars: int = Field(65536, ge=1024)
    """dead letters carry the payload whole up to this many characters; a longer one is cut to its head with payload_truncated and payload_chars (the original stays in the readings topic at its partition/offset), so no dead letter can exceed a Kafka record limit and stop the job"""


class IncidentsConfig(_Section):
    """Each sensor's calibration and incident lifecycle (``sensorwatch.core.incidents`` explains
    the rules; the job's ``TrackIncidents`` runs them in Flink state). Defaults: Numenta HTM's
    published ones where HTM has one."""

    enabled: bool = True
    """run the incident stage (the incidents topic); off, the job publishes per-window records only"""
    horizon_windows: int = Field(8640, ge=2)
    """HTM's historic window: the long-term score statistics weigh about this many windows"""
    short_windows: int = Field(10, ge=1, le=64)
    """HTM's averaging window: the evidence is the mean score of this many latest windows"""
    learning_windows: int = Field(288, ge=0)
    """HTM's learning period, in windows of history (a model's validation windows count, as its seed); meanwhile the model's own threshold opens incidents, marked learning (not alerted)"""
    clip_sd: float = Field(6.0, gt=0)
    """a score joins the history as at most mean + clip_sd x sd: an anomaly does not widen what the sensor counts as normal, while a lasting change still moves it"""
    alert_tail: float = Field(1e-4, gt=0, lt=0.5)
    """an incident opens at a tail probability this small (HTM's likelihood >= 0.9999)"""
    close_after_windows: int = Field(16, ge=1)
    """normal windows in a row that close an incident (= the default S: no window overlaps it then)"""
    silence_windows: int = Field(64, ge=1)
    """an open incident of a sensor silent for longer than this many windows closes (closed_by silence)"""


class JobConfig(_Section):
    """The streaming job: windows, watermarks, scoring, delivery guarantees."""

    window_s: float = Field(5.0, gt=0, description="tumbling mean window")
    seq_len: int = Field(16, ge=2, description="S: window means per count window")
    slide: int = Field(1, ge=1, description="count-window slide, in means")
    out_of_orderness_ms: int = Field(2000, ge=0)
    """bounded out-of-orderness of the watermark"""
    idle_timeout_ms: int = Field(5000, ge=0, description="idle partitions stop holding the watermark")
    checkpoint_interval_ms: int = Field(5000, ge=100)
    """Flink checkpoints; also when exactly-once output becomes visible"""
    parallelism: int = Field(1, ge=1)
    """Flink parallelism of the job"""
    delivery: Literal["exactly-once", "at-least-once"] = "at-least-once"
    """Kafka sinks: at-least-once publishes at once, keyed for dedup; exactly-once commits at checkpoints"""
    start_from: Literal["group-offsets", "earliest", "latest"] = "group-offsets"
    """where a job without a checkpoint starts reading; group-offsets falls back to earliest"""
    emit_scores: bool = Field(False, description="also publish every score to the scores topic")
    score_batch_size: int = Field(256, ge=1)
    """windows per Predict call, at most"""
    max_in_flight: int = Field(64, ge=1)
    """Predict calls in flight at once per Python worker"""
    batch_shards: int | None = Field(None, ge=1)
    """scoring batches per window end: the count windows that close at one event time are split by
    sensor hash into this many batches, each one Python row whose Predict calls (one per model)
    run at once. Fewer, larger batches keep more calls in flight; the batches are also what
    spreads scoring over parallel slots. Unset: twice the parallelism (bench/pipeline.py
    measured 2 against 8 batches at parallelism 1). In the packed layout at most
    serving.packed_groups: a batch holds whole models"""
    python_bundle_ms: int = Field(20, ge=1)
    """PyFlink bundle time: how long the Python worker may hold results before flushing them"""
    buffer_timeout_ms: int = Field(10, ge=0)
    """how long a task may hold a partly filled network buffer before sending it on (Flink's
    execution.buffer-timeout.interval, default 100 ms; 0 sends every record at once). Each
    exchange between tasks adds up to this to a window's latency while the stream is light; under
    load buffers fill and go at once (bench/latency.py measures both)"""
    checkpoint_dir: Path | None = None
    """durable checkpoint folder (or URI); unset: checkpoints in JobManager memory (mini-cluster)"""
    restore_from: str | None = None
    """checkpoint or savepoint path to resume from (Flink's execution.state-recovery.path)"""
    python_executable: str | None = None
    """Python of the Flink workers; unset: the interpreter that builds the job (its virtualenv)"""
    group_id: str = "sensorwatch-job"
    """Kafka consumer group of the job"""
    metrics_port: str | None = None
    """the job's metrics in Prometheus' text format through Flink's Prometheus reporter, on this port (or a range, '9250-9259', one port per task manager); for the mini-cluster the job starts; a standalone cluster sets its reporters in its own configuration. Unset: off"""
    validation: ValidationConfig = ValidationConfig()
    incidents: IncidentsConfig = IncidentsConfig()


class ServingConfig(_Section):
    """The model server (local, or tensorflow/serving) and the job's client of it."""

    host: str = Field("127.0.0.1", description="bind address of `sensorwatch serve`; loopback by default")
    port: int = Field(8500, ge=0, le=65535)
    """gRPC port of `sensorwatch serve` (tensorflow_model_server --port)"""
    target: str = Field("127.0.0.1:8500", description="where clients dial the model server")
    model_base_path: Path = Path(".sensorwatch/models")
    """model repository: <base>/<model>/<version>/saved_model.pb"""
    model_config_file: Path | None = Field(None, description="models.config; default <model_base_path>/models.config")
    poll_wait_s: float = Field(2.0, ge=0, description="file-system poll for new versions and config")
    deadline_s: float = Field(2.0, gt=0, description="deadline on every RPC")
    backoff_initial_s: float = Field(
        0.1,
        gt=0,
        description="first retry delay, doubling per retry; the job retries UNAVAILABLE and "
        "DEADLINE_EXCEEDED for ever (an outage delays scoring, it never loses a window)",
    )
    backoff_max_s: float = Field(5.0, gt=0)
    """longest retry delay"""
    layout: Literal["per-sensor", "packed"] = "per-sensor"
    """per-sensor: one model per sensor; packed: many sensors per SavedModel"""
    packed_groups: int = Field(8, ge=1, description="packed layout: sensors hash into this many models")
    device_models: str | None = None
    """devices (shell-style selectors, comma-separated: 'pump-*,press-01') scored by one multivariate model per device over all its tags; the rest of the fleet keeps one model per sensor"""
    metrics_port: int | None = Field(None, ge=0, le=65535)
    """the model server's Prometheus metrics port (tensorflow_model_server --rest_api_port; TF Serving's names, at /monitoring/prometheus/metrics and /metrics); unset: off"""
    tls_ca: Path | None = None
    """TLS to the model server: CA certificate the client trusts"""
    tls_cert: Path | None = None
    """TLS: certificate (server; client for mutual TLS)"""
    tls_key: Path | None = None
    """TLS: private key (server; client for mutual TLS)"""

    @model_validator(mode="after")
    def _selector(self) -> ServingConfig:
        if self.device_models and not re.fullmatch(r"[A-Za-z0-9_.*?,\- ]+", self.device_models):
            raise ValueError(
                "device_models takes device names and the wildcards * and ?, comma-separated; "
                f"got {self.device_models!r}"
            )
        return self

    @property
    def config_file(self) -> Path:
        return self.model_config_file or self.model_base_path / "models.config"


class TrackingConfig(_Section):
    """Every training run as an MLflow run (``sensorwatch train``, and every caller of ``train_fleet``)."""

    enabled: bool = True
    """log each training run and each model version it publishes to MLflow"""
    uri: str | None = None
    """an MLflow tracking URI (a server's http://..., or a database); unset: a local SQLite store, <model_base_path>/../mlflow.db, its artifacts in <model_base_path>/../mlartifacts; `mlflow ui --backend-store-uri sqlite:///<that file>` shows the runs"""
    experiment: str = "sensorwatch"
    """the MLflow experiment the runs go to"""


class TrainingConfig(_Section):
    """Offline training of one model per sensor."""

    kind: Literal["dense_ae", "lstm_ae", "conv_ae", "ocsvm"] = "dense_ae"
    """model kind: dense_ae, lstm_ae, conv_ae or ocsvm"""
    epochs: int = Field(30, ge=1)
    """training epochs"""
    batch_size: int = Field(64, ge=1)
    """training batch size"""
    learning_rate: float = Field(1e-3, gt=0)
    """Adam learning rate"""
    latent: int = Field(4, ge=1)
    """autoencoder bottleneck width"""
    hidden: int = Field(16, ge=1)
    """autoencoder hidden width (LSTM units, Conv1D filters)"""
    kernel_size: int = Field(5, ge=1)
    """conv_ae kernel length, in steps"""
    svm_nu: float = Field(0.01, gt=0, le=1)
    """ocsvm: upper bound on the share of training windows treated as outliers"""
    svm_max_samples: int = Field(2000, ge=10)
    """ocsvm: training windows sampled per sensor (the SVM is quadratic in this)"""
    device_errors: Literal["relations", "reconstruction"] = "relations"
    """device models: relations rebuilds each tag from the other tags (a tag that stops following them shows, even inside its own range, and is named), its error relative to its error in training, the window scored by its worst tag; reconstruction rebuilds all tags at once and scores the mean error (the SKAB protocol's Conv-AE)"""
    device_features: list[Literal["values", "stddev", "count"]] = ["values"]
    """device models: the features of each tag they read (the job sends all three); the means alone by default: a tag's window spread and count are noise to the relations between tags, and each feature more multiplies the model's input by the tag count"""
    scale_floor: float = Field(0.05, ge=0)
    """normalisation scale >= this x |feature mean|, so near-constant features (the count) do not explode"""
    min_windows: int = Field(32, ge=1)
    """a sensor with fewer training windows is reported as failed, not trained"""
    chunk_size: int = Field(256, ge=1)
    """per-sensor layout: sensors trained together as one stacked (vectorised) model"""
    jit_compile: bool = True
    """compile the training step with XLA (several times faster on CPU for small stacked models)"""
    plots: bool = True
    """write a validation-score PNG (and a ROC PNG with labels) per sensor into the version"""
    validation_split: float = Field(0.2, gt=0, lt=1)
    """share of windows held out to calibrate the threshold"""
    threshold_quantile: float = Field(0.995, gt=0, lt=1)
    """threshold = this quantile of validation scores x threshold_margin"""
    threshold_margin: float = Field(1.5, gt=0, description="threshold = quantile x margin")
    relations_threshold_margin: float = Field(
        2.25,
        gt=0,
        description="device models in the relations mode: threshold = quantile x this (their score is the worst of their tags' errors, each relative to its own training error, and its tail reaches past a short validation stretch further than a sensor's; chosen on simulated pumps of another draw than bench/relations.py's)",
    )
    target_far: float = Field(0.01, gt=0, lt=1, description="with labels: false-alarm rate to aim for")
    false_positive_max_raise: float = Field(2.0, ge=1)
    """the false-positive rule (docs/LIFECYCLE.md): a sensor's new threshold is raised past the scores its new model gives the windows operators called false positives, to at most this many times the threshold training chose"""
    workers: int = Field(0, ge=0, description="parallel processes; 0 = all cores")
    seed: int = 0
    """training seed"""
    tracking: TrackingConfig = TrackingConfig()

    @field_validator("device_features")
    @classmethod
    def _device_features(cls, v: list[str]) -> list[str]:
        if not v or len(set(v)) != len(v):
            raise ValueError(f"device_features takes one or more of {list(FEATURES)}, each once; got {v}")
        return [f for f in FEATURES if f in v]  # the job's order, however written: one layout


class LifecycleConfig(_Section):
    """``sensorwatch lifecycle``: retrain due sensors, judge each new version, serve only a better one.

    The rules: docs/LIFECYCLE.md (champion and challenger, the triggers, what training leaves out)."""

    interval_s: float = Field(3600.0, gt=0)
    """how often every sensor is retrained on schedule (triggers act at every check)"""
    check_s: float = Field(30.0, gt=0, description="how often the triggers are looked at")
    history_s: float = Field(86400.0, gt=0)
    """the sliding history a version trains on, up to the hold-out: the aggregates of the last history_s"""
    holdout_s: float = Field(1800.0, gt=0)
    """the most recent stretch, never trained on: the champion and the challenger are judged on it"""
    far_tolerance: float = Field(0.002, ge=0, le=1)
    """promote only if the challenger's false-alarm rate on the hold-out's normal windows is at most the champion's plus this"""
    lasting_change_windows: int = Field(24, ge=1)
    """an incident of at least this many anomalous windows is a lasting change: its sensor is retrained once it has closed"""
    new_sensor_windows: int = Field(64, ge=1)
    """a sensor with no model is trained once it has this many aggregates in the history"""
    wait_s: float = Field(120.0, ge=0, description="how long a promotion waits for the model server to answer with it")
    exclude: str | None = None
    """sensors the lifecycle never trains, shell patterns, comma-separated ("watermark/*,pump-7/*"): a test signal, a sensor under maintenance"""
    state_dir: Path | None = None
    """where the lifecycle keeps its ledger (lifecycle.json); unset: beside the model repository, <model_base_path>/.."""


class PriorConfig(_Section):
    """The fleet prior (docs/LIFECYCLE.md, ``sensorwatch.core.prior``): one model per tag that
    scores a sensor with no model of its own from its first count window."""

    enabled: bool = True
    """``sensorwatch train`` trains a prior for each tag of at least min_sensors sensors, and the job scores a sensor no model knows by its tag's prior (records with status prior); false: such a sensor gets no_model records"""
    min_sensors: int = Field(2, ge=1)
    """a tag's prior is trained on at least this many sensors of that tag"""
    max_windows: int = Field(20_000, ge=100)
    """training windows of a tag's prior, at most (taken evenly from its sensors' windows)"""


class AlertingConfig(_Section):
    """``sensorwatch alert``: incidents to Prometheus Alertmanager (API v2) or a JSON webhook."""

    target: Literal["alertmanager", "webhook"] = "alertmanager"
    """alertmanager: POST <url>/api/v2/alerts; webhook: POST <url> with {"version", "alerts"}"""
    url: str = "http://127.0.0.1:9093"
    """Alertmanager's base address, or the webhook's full address"""
    min_severity: int = Field(0, ge=0, le=100)
    """incidents below this severity (0-100) are not forwarded"""
    match: dict[str, str] = {}
    """label filters, each a shell-style pattern on one alert label ({"device": "pump-*"}): all must match"""
    resend_s: float = Field(60.0, gt=0)
    """firing alerts are posted again this often, each valid for 4 x resend_s (Prometheus' rule): an open incident stays firing, and one whose forwarder stopped resolves by itself"""
    timeout_s: float = Field(10.0, gt=0, description="deadline on every HTTP request")
    backoff_initial_s: float = Field(0.5, gt=0, description="first retry delay while the target is down, doubling")
    backoff_max_s: float = Field(15.0, gt=0, description="longest retry delay")
    batch_max: int = Field(500, ge=1, description="incident records per poll and per POST, at most")
    group_id: str = "sensorwatch-alert"
    """Kafka consumer group: offsets commit only once the target accepted the batch; <group_id>.operators marks how far the silences and labels topics' unreadable records were dead-lettered (those topics are read whole at every start)"""
    dashboard_url: str = "http://127.0.0.1:8050"
    """where alerts link to (the sensor's page of `sensorwatch ui`)"""
    metrics_port: int | None = Field(None, ge=0, le=65535)
    """serve the forwarder's counters in Prometheus' text format on this port (/metrics); unset: off"""
    metrics_host: str = "127.0.0.1"
    """address the metrics listen on (0.0.0.0 in a container, for Prometheus to reach)"""


class DashboardConfig(_Section):
    """``sensorwatch ui``: the web dashboard over the output topics, in bounded memory."""

    host: str = "127.0.0.1"
    """address to listen on (0.0.0.0 in a container)"""
    port: int = Field(8050, ge=0, le=65535, description="HTTP port; 0 picks a free one")
    range_s: float = Field(86400.0, gt=0, description="the longest range a chart shows (event time): 24 h")
    coarse_buckets: int = Field(720, ge=10, le=100_000)
    """points per sensor over range_s (2 min each for 24 h): each holds the mean, min and max window mean and the highest score"""
    fine_buckets: int = Field(720, ge=10, le=100_000)
    """points per sensor at the job's window_s, for recent ranges (1 h at 5 s)"""
    max_sensors: int = Field(20_000, ge=1)
    """sensors (and device models) kept; past it the one quiet the longest is dropped"""
    incidents_per_sensor: int = Field(50, ge=1, description="incidents kept per sensor for its page")
    quiet_windows: int = Field(12, ge=1)
    """a sensor with no record for this many windows (of the fleet's latest event time) counts as quiet"""
    live_s: float = Field(1.0, gt=0, description="how often open pages are told of new data (server-sent events)")
    from_start: bool = False
    """read the output topics from their start; otherwise from range_s before now"""


class Settings(_Section):
    """Everything sensorwatch reads. See ``config/sensorwatch.yaml`` for each default."""

    kafka: KafkaConfig = KafkaConfig()
    stack: StackConfig = StackConfig()
    simulator: SimulatorConfig = SimulatorConfig()
    job: JobConfig = JobConfig()
    serving: ServingConfig = ServingConfig()
    training: TrainingConfig = TrainingConfig()
    lifecycle: LifecycleConfig = LifecycleConfig()
    prior: PriorConfig = PriorConfig()
    alerting: AlertingConfig = AlertingConfig()
    dashboard: DashboardConfig = DashboardConfig()


def _suggest(key: str, choices: list[str]) -> str:
    close = difflib.get_close_matches(key, choices, n=1)
    return f" (did you mean {close[0]!r}?)" if close else ""


def _explain(err: ValidationError, source: str) -> str:
    lines = []
    for e in err.errors():
        loc = ".".join(str(p) for p in e["loc"])
        if e["type"] == "extra_forbidden":
            model: Any = Settings
            for part in e["loc"][:-1]:
                field = model.model_fields.get(str(part)) if hasattr(model, "model_fields") else None
                model = field.annotation if field else None
            choices = list(model.model_fields) if hasattr(model, "model_fields") else []
            lines.append(f"unknown key {loc!r} in {source}{_suggest(str(e['loc'][-1]), choices)}")
        else:
            lines.append(f"{loc}: {e['msg']} (in {source})")
    return "invalid configuration: " + "; ".join(lines)


def _env_overrides(environ: dict[str, str]) -> dict[str, Any]:
    """``SENSORWATCH__JOB__WINDOW_S=10`` -> ``{"job": {"window_s": "10"}}`` (YAML-typed)."""
    out: dict[str, Any] = {}
    for name, raw in environ.items():
        if not name.startswith(ENV_PREFIX):
            continue
        path = [p.lower() for p in name[len(ENV_PREFIX) :].split("__") if p]
        if not path:
            continue
        node = out
        for part in path[:-1]:
            node = node.setdefault(part, {})
            if not isinstance(node, dict):
                raise ConfigError(f"environment variable {name} conflicts with another override")
        node[path[-1]] = yaml.safe_load(raw) if raw != "" else None
    return out


def _merge(base: dict[str, Any], over: dict[str, Any]) -> dict[str, Any]:
    merged = dict(base)
    for k, v in over.items():
        if isinstance(v, dict) and isinstance(merged.get(k), dict):
            merged[k] = _merge(merged[k], v)
        else:
            merged[k] = v
    return merged


def add_overrides_argument(parser) -> None:
    """``--set SECTION.KEY=VALUE`` (repeatable) on an argparse parser, for :func:`parse_overrides`."""
    parser.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="SECTION.KEY=VALUE",
        help="override one configuration key (repeatable)",
    )


def parse_overrides(pairs: list[str]) -> dict[str, Any]:
    """``["job.window_s=10", ...]`` -> ``{"job": {"window_s": 10}}``, values YAML-typed.

    The ``--set SECTION.KEY=VALUE`` of ``sensorwatch job`` and of the ``flink run -py`` entry
    point; the result goes to :func:`load_settings`'s ``overrides``, which validates it.

    >>> parse_overrides(["job.window_s=10", "kafka.topics.readings=r"])
    {'job': {'window_s': 10}, 'kafka': {'topics': {'readings': 'r'}}}
    """
    out: dict[str, Any] = {}
    for pair in pairs:
        key, sep, raw = pair.partition("=")
        if not sep or not key:
            raise ConfigError(f"--set takes section.key=value, got {pair!r}")
        node = out
        *parents, leaf = key.split(".")
        for part in parents:
            node = node.setdefault(part, {})
            if not isinstance(node, dict):
                raise ConfigError(f"--set {pair!r} conflicts with another --set")
        node[leaf] = yaml.safe_load(raw) if raw else None
    return out


def load_settings(
    path: str | Path | None = None,
    environ: dict[str, str] | None = None,
    overrides: dict[str, Any] | None = None,
) -> Settings:
    """Load the configuration: defaults, then the YAML file, then the environment, then overrides."""
    environ = dict(os.environ) if environ is None else environ
    path = path or environ.get(CONFIG_ENV)
    data: dict[str, Any] = {}
    source = "defaults"
    if path:
        p = Path(path)
        if not p.is_file():
            raise ConfigError(f"configuration file {p} does not exist")
        try:
            loaded = yaml.safe_load(p.read_text()) or {}
        except yaml.YAMLError as exc:
            raise ConfigError(f"configuration file {p} is not valid YAML: {exc}") from exc
        if not isinstance(loaded, dict):
            raise ConfigError(f"configuration file {p} must hold a mapping at the top")
        data = loaded
        source = str(p)
    env = _env_overrides(environ)
    if env:
        source += " + environment"
    data = _merge(_merge(data, env), overrides or {})
    try:
        return Settings.model_validate(data)
    except ValidationError as exc:
        raise ConfigError(_explain(exc, source)) from None


def defaults_yaml() -> str:
    """Every key with its default and description, as a commented YAML file.

    ``config/sensorwatch.yaml`` is this text; a test keeps the two identical, so the
    documented defaults can never drift from the code.
    """
    lines = [
        "# sensorwatch configuration: every key, its default, and what it means.",
        "# Generated by `sensorwatch config defaults`; a test keeps it equal to the code.",
        "# Override any key here or with SENSORWATCH__<SECTION>__<KEY> environment variables.",
    ]

    def emit(model: BaseModel, indent: int) -> None:
        pad = "  " * indent
        for name, field in type(model).model_fields.items():
            value = getattr(model, name)
            if isinstance(value, BaseModel):
                lines.append("")
                doc = (type(value).__doc__ or "").strip().splitlines()[0]
                lines.append(f"{pad}# {doc}")
                lines.append(f"{pad}{name}:")
                emit(value, indent + 1)
                continue
            for line in (field.description or "").splitlines():  # a docstring may run over lines
                lines.append(f"{pad}# {line.strip()}")
            dumped = json_value(value)
            text = yaml.safe_dump({name: dumped}, default_flow_style=True, width=200).strip()
            lines.append(f"{pad}{text[1:-1]}" if text.startswith("{") else f"{pad}{text}")

    emit(Settings(), 0)
    return "\n".join(lines) + "\n"


def json_value(value: Any) -> Any:
    if isinstance(value, Path):
        return str(value)
    if isinstance(value, SecretStr):
        return "**********"
    if isinstance(value, list):
        return [json_value(v) for v in value]
    return value
