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
# A real-world-looking table: text, yes/no, dates, blanks, class imbalance
# --------------------------------------------------------------------------
CUSTOMER_PLANS = ("basic", "plus", "premium")
CUSTOMER_REGIONS = (
    "North", "South", "East", "West", "Central",
    "Northeast", "Northwest", "Southeast", "Southwest", "Coastal",
)
_CITY_STEMS = (
    "Ash", "Birch", "Cedar", "Elm", "Fair", "Glen", "Hazel", "Iron", "Lake",
    "Maple", "Oak", "Pine", "Red", "Stone", "Willow",
)
_CITY_ENDINGS = ("ford", "field", "ton", "wood", "bury", "dale", "port", "ville", "mouth", "haven")
CUSTOMER_CITIES = tuple(stem + end for stem in _CITY_STEMS for end in _CITY_ENDINGS)
CUSTOMER_EXPORT_DATE = np.datetime64("2025-01-01")


def _customers(
    rng: np.random.Generator, n: int, id_numbers: np.ndarray
) -> tuple[pd.DataFrame, np.ndarray]:
    """n customers as a CRM export would list them, and each one's churn logit (no intercept).

    Every draw comes from rng, in a fixed order; see make_customers for the model.
    """
    first_day = np.datetime64("2021-01-01")
    days = int((CUSTOMER_EXPORT_DATE - first_day) / np.timedelta64(1, "D"))
    signup = first_day + rng.integers(0, days, n).astype("timedelta64[D]")
    tenure_months = (CUSTOMER_EXPORT_DATE - signup) / np.timedelta64(1, "D") / 30.44

    plan_idx = rng.choice(3, size=n, p=[0.5, 0.32, 0.18])
    # Zipf-like city sizes: a few big cities, a long tail of small ones.
    ranks = rng.permutation(len(CUSTOMER_CITIES))
    city_p = 1.0 / (ranks + 3.0) ** 1.1
    city_idx = rng.choice(len(CUSTOMER_CITIES), size=n, p=city_p / city_p.sum())
    city_region = rng.integers(0, len(CUSTOMER_REGIONS), len(CUSTOMER_CITIES))
    region_idx = city_region[city_idx]

    age = np.clip(np.round(rng.normal(42.0, 13.0, n)), 18, 85)
    base_spend = np.array([25.0, 45.0, 80.0])[plan_idx]
    spend = np.round(base_spend * rng.gamma(8.0, 1.0 / 8.0, n) + rng.integers(0, 3, n) * 5.0, 2)
    support_calls = np.minimum(rng.poisson(1.4, n), 9)
    paperless = rng.random(n) < 0.6
    partner = rng.random(n) < 0.45

    # Churn: a short tenure, the basic plan, support calls, spend above the plan's usual,
    # paperless billing, South and Northwest raise it; premium, a partner, age, West and
    # Southwest lower it; each city adds its own N(0, 1) effect.
    region_effect = np.array([0.0, 1.0, 0.0, -0.6, 0.0, 0.0, 0.9, 0.0, -0.5, 0.0])
    city_effect = rng.normal(0.0, 1.0, len(CUSTOMER_CITIES))
    logit = (
        -0.15 * tenure_months
        + np.array([1.0, 0.0, -1.2])[plan_idx]
        + 1.1 * support_calls
        + 0.07 * (spend - base_spend)
        + region_effect[region_idx]
        + city_effect[city_idx]
        + 0.5 * paperless
        - 0.6 * partner
        - 0.02 * (age - 42.0)
    )

    yes_no = np.array(["No", "Yes"])
    df = pd.DataFrame({
        "customer_id": [f"CU-{k:06d}" for k in id_numbers],
        "signup_date": np.datetime_as_string(signup, unit="D"),
        "plan": np.array(CUSTOMER_PLANS)[plan_idx],
        "region": np.array(CUSTOMER_REGIONS, dtype=object)[region_idx],
        "city": np.array(CUSTOMER_CITIES, dtype=object)[city_idx],
        "age": pd.array(age.astype(int), dtype="Int64"),
        "monthly_spend": spend,
        "support_calls": support_calls,
        "paperless_billing": yes_no[paperless.astype(int)],
        "has_partner": np.char.lower(yes_no[partner.astype(int)]).astype(object),
    })
    # Blank cells where an export has them: region not filled in, age not given, spend not
    # yet billed, partner status unknown.
    df.loc[rng.random(n) < 0.04, "region"] = None
    df.loc[rng.random(n) < 0.05, "age"] = pd.NA
    df.loc[rng.random(n) < 0.03, "monthly_spend"] = np.nan
    df.loc[rng.random(n) < 0.02, "has_partner"] = None
    return df, logit


def make_customers() -> tuple[pd.DataFrame, pd.DataFrame]:
    """Customer churn export (2000 rows, target `churned`, ~15% yes) and 200 new customers.

    P(churned = yes) = sigmoid(b + logit) with logit from _customers and b chosen so that the
    mean probability is 0.15; churned is then drawn from it (seed 11). The new customers
    (seed 12) have no target, a few cities and a region never seen in the export, and blanks.
    """
    rng = np.random.default_rng(11)
    ids = rng.choice(np.arange(100000, 1000000), size=2200, replace=False)
    df, logit = _customers(rng, 2000, ids[:2000])
    lo, hi = -20.0, 20.0
    for _ in range(100):  # bisection for the intercept: mean churn probability 0.15
        mid = (lo + hi) / 2
        if np.mean(1.0 / (1.0 + np.exp(-(mid + logit)))) < 0.15:
            lo = mid
        else:
            hi = mid
    prob = 1.0 / (1.0 + np.exp(-(lo + logit)))
    df["churned"] = np.where(rng.random(len(df)) < prob, "yes", "no")

    new_rng = np.random.default_rng(12)
    new, _ = _customers(new_rng, 200, ids[2000:])
    new_cities = ["Northgate", "Silverlake", "Quarrytown", "Brightwater"]
    rows = new_rng.choice(len(new), size=10, replace=False)
    new.loc[rows[:7], "city"] = [new_cities[i % len(new_cities)] for i in range(7)]
    new.loc[rows[7:], "region"] = "Islands"
    return df, new


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
    customers, customers_new = make_customers()
    written += [
        _write(customers, "customers.csv"),
        _write(customers_new, "customers_new.csv"),
    ]
    for path in written:
        print(f"wrote {path.name} ({path.stat().st_size / 1024:.1f} KiB)")


if __name__ == "__main__":
    main()
