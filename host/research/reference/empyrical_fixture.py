"""Reference values for `stratbox-research`'s metrics, from empyrical-reloaded.

Reads real daily closes from ../shared/data (Lean's IBM and SPY, neither split in the span),
turns them into close-to-close simple returns over each window below, and writes what
empyrical-reloaded (and scipy, for skew, kurtosis and the normal distribution
of the probabilistic and deflated Sharpe ratios) says about them to
host/research/tests/fixtures/empyrical.json. The Rust test reads the same closes, computes the
same windows and compares at 1e-9 relative.

    python3 -m venv .venv && .venv/bin/pip install -r host/research/reference/requirements.txt
    .venv/bin/python host/research/reference/empyrical_fixture.py
"""

import csv
import json
import pathlib

import empyrical
import numpy as np
import scipy.stats

ROOT = pathlib.Path(__file__).resolve().parents[3]
DATA = ROOT.parent / "shared" / "data" / "lean" / "equity_usa_daily"
OUT = ROOT / "host" / "research" / "tests" / "fixtures" / "empyrical.json"

# (name, series, benchmark, first date, last date), dates inclusive, as YYYY-MM-DD.
WINDOWS = [
    ("ibm-vs-spy-2000-2020", "ibm", "spy", "2000-01-03", "2020-12-31"),
    ("ibm-vs-spy-2008-crash", "ibm", "spy", "2008-09-01", "2009-03-31"),
    ("spy-2020", "spy", "ibm", "2020-01-02", "2020-12-31"),
]


def closes(symbol):
    with open(DATA / f"{symbol}.csv") as f:
        return {row["datetime"][:10]: float(row["close"]) for row in csv.DictReader(f)}


def returns(series, benchmark, first, last):
    days = sorted(d for d in series.keys() & benchmark.keys() if first <= d <= last)
    r = np.array([series[b] / series[a] - 1 for a, b in zip(days, days[1:])])
    b = np.array([benchmark[y] / benchmark[x] - 1 for x, y in zip(days, days[1:])])
    return days, r, b


def probabilistic_sharpe(r, benchmark):
    """Bailey and Lopez de Prado (2012), with scipy's normal: per-period Sharpe, raw kurtosis."""
    sr = r.mean() / r.std(ddof=1)
    skew, kurt = scipy.stats.skew(r), scipy.stats.kurtosis(r, fisher=False)
    return scipy.stats.norm.cdf((sr - benchmark) * np.sqrt(len(r) - 1) / np.sqrt(1 - skew * sr + (kurt - 1) / 4 * sr**2))


def expected_max_sharpe(trials, variance):
    """The deflated Sharpe's benchmark (Bailey and Lopez de Prado 2014)."""
    g = np.euler_gamma
    return np.sqrt(variance) * ((1 - g) * scipy.stats.norm.ppf(1 - 1 / trials) + g * scipy.stats.norm.ppf(1 - 1 / (trials * np.e)))


def metrics(r, b):
    alpha, beta = empyrical.alpha_beta(r, b)
    return {
        "total_return": empyrical.cum_returns_final(r),
        "annual_return": empyrical.annual_return(r),
        "annual_volatility": empyrical.annual_volatility(r),
        "sharpe": empyrical.sharpe_ratio(r),
        "sortino": empyrical.sortino_ratio(r),
        "calmar": empyrical.calmar_ratio(r),
        "omega": empyrical.omega_ratio(r),
        "max_drawdown": empyrical.max_drawdown(r),
        "tail_ratio": empyrical.tail_ratio(r),
        "var_95": empyrical.value_at_risk(r, cutoff=0.05),
        "cvar_95": empyrical.conditional_value_at_risk(r, cutoff=0.05),
        "var_99": empyrical.value_at_risk(r, cutoff=0.01),
        "cvar_99": empyrical.conditional_value_at_risk(r, cutoff=0.01),
        "stability": empyrical.stability_of_timeseries(r),
        "skew": scipy.stats.skew(r),
        "excess_kurtosis": scipy.stats.kurtosis(r),
        "alpha": alpha,
        "beta": beta,
        "information_ratio": empyrical.excess_sharpe(r, b),
        "up_capture": empyrical.up_capture(r, b),
        "down_capture": empyrical.down_capture(r, b),
        # Not empyrical's: the overfitting guards' formulas, with scipy's normal distribution.
        "psr_vs_zero": probabilistic_sharpe(r, 0.0),
        "expected_max_sharpe_100_trials": expected_max_sharpe(100, r.var(ddof=1)),
    }


def main():
    data = {s: closes(s) for s in {w[1] for w in WINDOWS} | {w[2] for w in WINDOWS}}
    out = {
        "reference": f"empyrical-reloaded {empyrical.__version__}, scipy {scipy.__version__} (skew, kurtosis, the normal distribution), numpy {np.__version__}",
        "source": "../shared/data/lean/equity_usa_daily/{symbol}.csv, close to close",
        "windows": [],
    }
    for name, series, benchmark, first, last in WINDOWS:
        days, r, b = returns(data[series], data[benchmark], first, last)
        values = {k: float(v) for k, v in metrics(r, b).items()}
        out["windows"].append({"name": name, "series": series, "benchmark": benchmark, "first": days[0], "last": days[-1], "periods": len(r), "metrics": values})
    OUT.write_text(json.dumps(out, indent=2) + "\n")
    print(f"wrote {OUT}")


if __name__ == "__main__":
    main()
