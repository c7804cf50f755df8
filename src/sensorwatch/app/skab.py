"""SKAB's published protocol, shared by the offline bench (``bench/skab.py``) and the stream
bench (``bench/skab_stream.py``): the files, the per-kind protocol, the point rule, the metrics,
and the published leaderboard (``../shared/datasets/skab/SOURCE.md``).

Each anomaly file separately: the first :data:`TRAIN_ROWS` rows train, the rest are test;
metrics point-wise, pooled over all test rows.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

TRAIN_ROWS = 400
#: Per kind: window (S), threshold quantile and margin (on a mean *absolute* residual, as
#: published), and model widths.
PROTOCOL = {
    "conv_ae": dict(seq_len=60, quantile=0.999, margin=4 / 3, hidden=32, latent=16, kernel_size=7),
    "lstm_ae": dict(seq_len=10, quantile=0.99, margin=3 / 2, hidden=32, latent=16),
    "dense_ae": dict(seq_len=60, quantile=0.999, margin=4 / 3, hidden=64, latent=16),
    "ocsvm": dict(seq_len=10, quantile=0.99, margin=3 / 2),
}
#: The repository's leaderboard: (F1, FAR %, MAR %).
PUBLISHED = {
    "Conv-AE": (0.78, 13.55, 28.02),
    "MSET": (0.78, 39.73, 14.13),
    "T2+Q (PCA)": (0.76, 26.62, 24.92),
    "LSTM-AE": (0.74, 29.96, 25.92),
    "T2": (0.66, 19.21, 42.60),
    "LSTM-VAE": (0.56, 9.13, 55.03),
}


@dataclass
class SkabFile:
    name: str  # <folder>/<file>.csv
    ts: np.ndarray  # int64 epoch ms, one row per second
    x: np.ndarray  # float32 [rows, channels]
    y: np.ndarray  # bool [rows]
    channels: list[str]

    @property
    def device(self) -> str:
        """The file as a device id (the reading contract's id alphabet)."""
        folder, _, stem = self.name.partition("/")
        return f"skab-{folder}-{stem.removesuffix('.csv')}".replace(" ", "_")

    @property
    def tags(self) -> list[str]:
        return [c.replace(" ", "_") for c in self.channels]


def load(skab: Path) -> list[SkabFile]:
    """The 34 anomaly files, in a fixed order."""
    import pandas as pd

    files = sorted(p for d in ("valve1", "valve2", "other") for p in (Path(skab) / d).glob("*.csv"))
    out = []
    for f in files:
        df = pd.read_csv(f, sep=";", index_col="datetime", parse_dates=True)
        y = df.pop("anomaly").to_numpy(bool)
        df.pop("changepoint")
        ts = df.index.as_unit("ms").asi8.astype(np.int64)
        out.append(SkabFile(f"{f.parent.name}/{f.name}", ts, df.to_numpy(np.float32), y, list(df.columns)))
    return out


def flag_points(win_flag: np.ndarray, n: int, s: int) -> np.ndarray:
    """Point t is anomalous when the windows starting at t-s+1 .. t-1 are all anomalous
    (``win_flag[k]``: the window of rows k .. k+s-1)."""
    pts = np.zeros(n, bool)
    for t in range(s - 1, n - s + 1):
        if win_flag[t - s + 1 : t].all():
            pts[t] = True
    return pts


@dataclass
class Confusion:
    tp: int = 0
    fp: int = 0
    fn: int = 0
    tn: int = 0

    def add(self, pred: np.ndarray, y: np.ndarray) -> None:
        self.tp += int((pred & y).sum())
        self.fp += int((pred & ~y).sum())
        self.fn += int((~pred & y).sum())
        self.tn += int((~pred & ~y).sum())

    def metrics(self) -> dict[str, float]:
        """F1 = TP / (TP + (FP + FN) / 2), FAR = FP / (FP + TN), MAR = FN / (FN + TP), as published."""
        return {
            "f1": round(self.tp / max(1e-9, self.tp + (self.fp + self.fn) / 2), 4),
            "far": round(100 * self.fp / max(1, self.fp + self.tn), 2),
            "mar": round(100 * self.fn / max(1, self.fn + self.tp), 2),
        }
