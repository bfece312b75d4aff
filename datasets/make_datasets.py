"""Regenerate every example CSV in this folder.

Usage::

    python datasets/make_datasets.py

All synthetic data use fixed seeds, so repeated runs produce identical files.
scikit-learn is needed only to run this script (it supplies the bundled
iris, digits and diabetes data and the two-moons generator); it is not a
runtime dependency of nnctl.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
from sklearn import datasets as skd
from sklearn.model_selection import train_test_split

OUT_DIR = Path(__file__).resolve().parent
FLOAT_FORMAT = "%.6g"

WAVE_STEPS = 40
WAVE_SHAPES = ("sine", "square", "sawtooth", "triangle")
SINE_NEXT_STEPS = 20


def _write(df: pd.DataFrame, name: str) -> Path:
    path = OUT_DIR / name
    df.to_csv(path, index=False, float_format=FLOAT_FORMAT, lineterminator="\n")
    return path


# --------------------------------------------------------------------------
# Small 2-D classification toys
# --------------------------------------------------------------------------
def make_moons() -> pd.DataFrame:
    """Two interleaving half-circles, 1000 rows, noise 0.2, seed 0."""
    X, y = skd.make_moons(n_samples=1000, noise=0.2, random_state=0)
    return pd.DataFrame({"x1": X[:, 0], "x2": X[:, 1], "label": y.astype(int)})


def make_xor() -> pd.DataFrame:
    """x1, x2 ~ U[-1, 1]; label = 1 if x1 * x2 > 0 else 0. 800 rows, seed 0."""
    rng = np.random.default_rng(0)
    X = rng.uniform(-1.0, 1.0, size=(800, 2))
    label = (X[:, 0] * X[:, 1] > 0).astype(int)
    return pd.DataFrame({"x1": X[:, 0], "x2": X[:, 1], "label": label})


# --------------------------------------------------------------------------
# Classic bundled data sets (shipped with scikit-learn, no download)
# --------------------------------------------------------------------------
def make_iris() -> pd.DataFrame:
    """Fisher's iris (150 rows) with species names as strings."""
    iris = skd.load_iris()
    cols = ["sepal_length", "sepal_width", "petal_length", "petal_width"]
    df = pd.DataFrame(iris.data, columns=cols)
    df["species"] = np.asarray(iris.target_names)[iris.target]
    return df


def make_digits() -> tuple[pd.DataFrame, pd.DataFrame]:
    """8x8 digits (1797 rows), stratified 75/25 split, random_state 0."""
    digits = skd.load_digits()
    X = digits.data.astype(int)
    y = digits.target.astype(int)
    X_tr, X_te, y_tr, y_te = train_test_split(
        X, y, test_size=0.25, stratify=y, random_state=0
    )
    cols = [f"p{i}" for i in range(X.shape[1])]

    def frame(X_part: np.ndarray, y_part: np.ndarray) -> pd.DataFrame:
        df = pd.DataFrame(X_part, columns=cols)
        df["digit"] = y_part
        return df

    return frame(X_tr, y_tr), frame(X_te, y_te)


def make_regression() -> pd.DataFrame:
    """Diabetes data (Efron et al. 2004), unscaled, 442 rows."""
    diab = skd.load_diabetes(scaled=False)
    cols = ["age", "sex", "bmi", "bp", "s1", "s2", "s3", "s4", "s5", "s6"]
    df = pd.DataFrame(diab.data, columns=cols)
    df["progression"] = diab.target
    return df


# --------------------------------------------------------------------------
# Synthetic regression
# --------------------------------------------------------------------------
def make_regression_multi() -> pd.DataFrame:
    """Two-output regression, 1000 rows, seed 0.

    x1..x4 ~ N(0, 1)
    y1 = sin(x1) + 0.5 * x2 * x3 + N(0, 0.05)
    y2 = x4**2 - x1           + N(0, 0.05)
    """
    rng = np.random.default_rng(0)
    n = 1000
    X = rng.standard_normal((n, 4))
    x1, x2, x3, x4 = X.T
    y1 = np.sin(x1) + 0.5 * x2 * x3 + rng.normal(0.0, 0.05, n)
    y2 = x4**2 - x1 + rng.normal(0.0, 0.05, n)
    df = pd.DataFrame(X, columns=["x1", "x2", "x3", "x4"])
    df["y1"] = y1
    df["y2"] = y2
    return df


# --------------------------------------------------------------------------
# Sequence data sets (for recurrent layers)
# --------------------------------------------------------------------------
def _waveform(shape: str, phase_cycles: np.ndarray) -> np.ndarray:
    """Unit-amplitude periodic waveform evaluated at phase (in cycles)."""
    frac = np.mod(phase_cycles, 1.0)
    if shape == "sine":
        return np.sin(2.0 * np.pi * phase_cycles)
    if shape == "square":
        return np.where(frac < 0.5, 1.0, -1.0)
    if shape == "sawtooth":
        return 2.0 * frac - 1.0
    if shape == "triangle":
        return 1.0 - 4.0 * np.abs(frac - 0.5)
    raise ValueError(f"unknown shape {shape!r}")


def _waveform_split(n_rows: int, seed: int) -> pd.DataFrame:
    """Balanced, shuffled noisy waveforms of WAVE_STEPS steps each.

    For each row: frequency f ~ U[1, 3] cycles per 40 steps, phase
    p ~ U[0, 1) cycles, amplitude A ~ U[0.5, 1.5], noise N(0, 0.3):
        t_k = A * shape(f * k / 40 + p) + noise,  k = 0..39
    """
    if n_rows % len(WAVE_SHAPES):
        raise ValueError("n_rows must be a multiple of the number of shapes")
    rng = np.random.default_rng(seed)
    labels = np.repeat(np.array(WAVE_SHAPES), n_rows // len(WAVE_SHAPES))
    rng.shuffle(labels)

    k = np.arange(WAVE_STEPS) / WAVE_STEPS
    freq = rng.uniform(1.0, 3.0, n_rows)
    phase = rng.uniform(0.0, 1.0, n_rows)
    amp = rng.uniform(0.5, 1.5, n_rows)
    noise = rng.normal(0.0, 0.3, (n_rows, WAVE_STEPS))

    X = np.empty((n_rows, WAVE_STEPS))
    for i, shape in enumerate(labels):
        X[i] = amp[i] * _waveform(shape, freq[i] * k + phase[i])
    X += noise

    df = pd.DataFrame(X, columns=[f"t{j}" for j in range(WAVE_STEPS)])
    df["shape"] = labels
    return df


def make_waveforms() -> tuple[pd.DataFrame, pd.DataFrame]:
    """Waveform-shape classification: 2000 train rows (seed 1), 800 test (seed 2)."""
    return _waveform_split(2000, seed=1), _waveform_split(800, seed=2)


def make_sine_next() -> pd.DataFrame:
    """Next-value prediction for a noisy sum of two sines, 1500 rows, seed 0.

    For each row: f1 ~ U[0.02, 0.08], f2 ~ U[0.08, 0.20] cycles per step,
    phases p1, p2 ~ U[0, 1) cycles, amplitudes a1 ~ U[0.5, 1.0],
    a2 ~ U[0.2, 0.6]:
        s(k) = a1 * sin(2*pi*(f1*k + p1)) + a2 * sin(2*pi*(f2*k + p2))
    Inputs t0..t19 = s(0..19) + N(0, 0.05); target next = s(20) (clean).
    """
    rng = np.random.default_rng(0)
    n = 1500
    f1 = rng.uniform(0.02, 0.08, n)[:, None]
    f2 = rng.uniform(0.08, 0.20, n)[:, None]
    p1 = rng.uniform(0.0, 1.0, n)[:, None]
    p2 = rng.uniform(0.0, 1.0, n)[:, None]
    a1 = rng.uniform(0.5, 1.0, n)[:, None]
    a2 = rng.uniform(0.2, 0.6, n)[:, None]
    k = np.arange(SINE_NEXT_STEPS + 1)[None, :]
    clean = a1 * np.sin(2 * np.pi * (f1 * k + p1)) + a2 * np.sin(
        2 * np.pi * (f2 * k + p2)
    )
    noisy = clean[:, :SINE_NEXT_STEPS] + rng.normal(0.0, 0.05, (n, SINE_NEXT_STEPS))
    df = pd.DataFrame(noisy, columns=[f"t{j}" for j in range(SINE_NEXT_STEPS)])
    df["next"] = clean[:, SINE_NEXT_STEPS]
    return df


# --------------------------------------------------------------------------
def main() -> None:
    written = [
        _write(make_moons(), "moons.csv"),
        _write(make_xor(), "xor.csv"),
        _write(make_iris(), "iris.csv"),
    ]
    digits_train, digits_test = make_digits()
    written += [
        _write(digits_train, "digits_train.csv"),
        _write(digits_test, "digits_test.csv"),
        _write(make_regression(), "regression.csv"),
        _write(make_regression_multi(), "regression_multi.csv"),
    ]
    waves_train, waves_test = make_waveforms()
    written += [
        _write(waves_train, "waveforms_train.csv"),
        _write(waves_test, "waveforms_test.csv"),
        _write(make_sine_next(), "sine_next.csv"),
    ]
    for path in written:
        print(f"wrote {path.name} ({path.stat().st_size / 1024:.1f} KiB)")


if __name__ == "__main__":
    main()
