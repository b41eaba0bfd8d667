"""The research report: one self-contained HTML page built from a research run directory.

`write_report(run_dir)` reads only the files that docs/research-run-dir.md lists (summary.json,
results.parquet, folds.parquet, returns.parquet, curves.parquet, trades.parquet, robustness.json,
allocations.json, config.yaml) and writes ``RUN_DIR/report.html``: a Jinja2 template
(``argus/research/templates/report.html.j2``, autoescaped) with Plotly's JavaScript inlined once and
every chart drawn from JSON by ``Plotly.newPlot``. The page makes no network request, so it opens
offline; a CDN link would render blank there.

Only summary.json is required. A missing or empty optional file turns the sections that need it into a
"not available" note. The output is a function of the inputs alone: no generation time, fixed chart ids,
sorted keys, so the same run directory always gives the same bytes.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

__all__ = ["SECTIONS", "ReportData", "build_sections", "load_run", "render_report", "write_report"]

#: (id, heading) of every section, in page order. Each section is ``<section id=ID>`` with an ``<h2>``.
SECTIONS: tuple[tuple[str, str], ...] = (
    ("summary", "Summary and kill reasons"),
    ("equity", "Equity curves against buy and hold"),
    ("drawdowns", "Underwater curve and worst drawdowns"),
    ("monthly", "Monthly returns"),
    ("rolling-sharpe", "Rolling Sharpe ratio (63 days)"),
    ("trades", "Trade statistics, MAE and MFE"),
    ("parameters", "Parameter heatmap"),
    ("folds", "In-sample against out-of-sample, per fold"),
    ("trials", "Number of trials"),
    ("gates", "Deploy gates: PSR, DSR, MinTRL, PBO, Reality Check and SPA"),
    ("bootstrap", "Bootstrap of trades: fan chart and drawdown distribution"),
    ("slippage", "Slippage sensitivity and break-even"),
    ("regimes", "Per-regime results"),
    ("allocations", "Allocations"),
    ("config", "Configuration"),
)

TEMPLATE = "report.html.j2"
ROLLING_WINDOW = 63
TRADING_DAYS = 252
TOP_ROWS = 20
WORST_DRAWDOWNS = 5
NOT_AVAILABLE = "not available"
_MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")
_PLOTLY_CONFIG = {"displaylogo": False, "responsive": True}
_FIG_HEIGHT = 380
_BENCHMARK = "benchmark"


# ----------------------------------------------------------------------------------------------- loading


@dataclass
class ReportData:
    """The files of one run directory; an optional file that is absent (or empty) is None."""

    run_dir: Path
    summary: dict[str, Any]
    results: pd.DataFrame | None = None
    folds: pd.DataFrame | None = None
    returns: pd.DataFrame | None = None
    curves: pd.DataFrame | None = None
    trades: pd.DataFrame | None = None
    robustness: dict[str, Any] | None = None
    allocations: dict[str, Any] | None = None
    config_text: str | None = None
    labels: dict[str, str] = field(default_factory=dict)

    @property
    def best_key(self) -> str | None:
        """summary.stats.best_key; else the survivor (or, failing that, any configuration) with the best Sharpe."""
        key = (self.summary.get("stats") or {}).get("best_key")
        if key:
            return str(key)
        r = self.results
        if r is None or "sharpe" not in r or "key" not in r:
            return None
        pool = r[~r["killed"].fillna(False).astype(bool)] if "killed" in r else r
        pool = pool if len(pool) else r
        pool = pool.sort_values(["sharpe", "key"], ascending=[False, True], na_position="last")
        return str(pool["key"].iloc[0]) if len(pool) else None

    def label(self, key: str) -> str:
        """A short legend label: ``strategy(params) · key[:8]``."""
        if key == _BENCHMARK:
            sym = (self.summary.get("benchmark") or {}).get("symbol")
            return f"buy and hold {sym}" if sym else "buy and hold"
        return self.labels.get(key, str(key)[:8])


def _read_parquet(path: Path) -> pd.DataFrame | None:
    if not path.is_file():
        return None
    df = pd.read_parquet(path)
    return df if len(df) else None


def _read_json(path: Path) -> Any:
    if not path.is_file():
        return None
    return json.loads(path.read_text())


def _params_text(params: Any) -> str:
    try:
        doc = json.loads(params) if isinstance(params, str) else params
    except ValueError:
        return str(params)
    if isinstance(doc, dict):
        return ", ".join(f"{k}={v}" for k, v in doc.items())
    return str(doc)


def load_run(run_dir: str | Path) -> ReportData:
    """Read the run directory's files (docs/research-run-dir.md). summary.json is required."""
    root = Path(run_dir)
    summary_path = root / "summary.json"
    if not summary_path.is_file():
        raise FileNotFoundError(f"{root}: summary.json is missing, so this is not a research run directory")
    data = ReportData(run_dir=root, summary=json.loads(summary_path.read_text()))
    data.results = _read_parquet(root / "results.parquet")
    data.folds = _read_parquet(root / "folds.parquet")
    data.returns = _read_parquet(root / "returns.parquet")
    data.curves = _read_parquet(root / "curves.parquet")
    data.trades = _read_parquet(root / "trades.parquet")
    data.robustness = _read_json(root / "robustness.json") or None
    data.allocations = _read_json(root / "allocations.json") or None
    config = root / "config.yaml"
    data.config_text = config.read_text() if config.is_file() else None
    if data.results is not None and {"key", "strategy"} <= set(data.results.columns):
        params = data.results["params"] if "params" in data.results else [""] * len(data.results)
        for key, strategy, p in zip(data.results["key"], data.results["strategy"], params, strict=True):
            text = _params_text(p)
            data.labels[str(key)] = f"{strategy}({text}) · {str(key)[:8]}"
    return data


# ------------------------------------------------------------------------------------------- formatting


def _finite(x: Any) -> bool:
    try:
        return x is not None and not isinstance(x, bool) and math.isfinite(float(x))
    except (TypeError, ValueError):
        return False


def fmt(x: Any, digits: int = 3, pct: bool = False) -> str:
    """A table cell: None/NaN → "—", numbers rounded, percentages with a % sign, the rest as text."""
    if x is None:
        return "—"
    if isinstance(x, (bool, np.bool_)):
        return "yes" if x else "no"
    if isinstance(x, (int, np.integer)):
        return f"{int(x):,}"
    if isinstance(x, (float, np.floating)):
        v = float(x)
        if math.isnan(v):
            return "—"
        if math.isinf(v):
            return "∞" if v > 0 else "−∞"
        return f"{v * 100:.{max(digits - 1, 0)}f}%" if pct else f"{v:,.{digits}f}"
    if x is pd.NaT:
        return "—"
    if isinstance(x, pd.Timestamp):
        return x.isoformat(sep=" ", timespec="minutes")
    if isinstance(x, pd.Timedelta):
        days, rest = divmod(int(x.total_seconds()), 86_400)
        return f"{days}d {rest // 3600}h {rest % 3600 // 60:02d}m" if days else f"{rest // 3600}h {rest % 3600 // 60:02d}m"
    if isinstance(x, (list, tuple)):
        return ", ".join(str(v) for v in x)
    return str(x)


_NUMERIC = re.compile(r"[−+-]?[\d,]+(\.\d+)?%?|—|−?∞")


def _table(columns: Sequence[str], rows: Iterable[Sequence[Any]], caption: str = "") -> dict[str, Any]:
    """A table block; each cell is {text, num} (numbers are right-aligned)."""
    cells = [[{"text": str(c), "num": bool(_NUMERIC.fullmatch(str(c)))} for c in r] for r in rows]
    return {"kind": "table", "columns": list(columns), "rows": cells, "caption": caption}


def _kv(pairs: Iterable[tuple[str, Any]], caption: str = "") -> dict[str, Any]:
    return _table(("", "value"), ([k, v] for k, v in pairs), caption)


def _note(text: str) -> dict[str, Any]:
    return {"kind": "note", "text": text}


def _na(what: str) -> dict[str, Any]:
    return {"kind": "na", "text": f"{what}: {NOT_AVAILABLE}."}


# ---------------------------------------------------------------------------------------------- figures


def _json_values(values: Any) -> list[Any]:
    """A list JSON can hold: NaN/inf → None, numpy scalars → Python, timestamps → ISO text."""
    out = []
    for v in values:
        if isinstance(v, pd.Timestamp):
            out.append(None if pd.isna(v) else v.isoformat())
        elif isinstance(v, (float, np.floating)):
            out.append(float(v) if math.isfinite(v) else None)
        elif isinstance(v, np.integer):
            out.append(int(v))
        elif isinstance(v, np.bool_):
            out.append(bool(v))
        elif v is None or v is pd.NaT:
            out.append(None)
        else:
            out.append(v)
    return out


@dataclass
class Figure:
    """One chart: Plotly traces and layout as plain JSON-ready dicts, drawn into ``<div id=fig-NAME>``."""

    name: str
    traces: list[dict[str, Any]]
    layout: dict[str, Any]

    @property
    def div_id(self) -> str:
        return f"fig-{self.name}"

    def html(self) -> str:
        """The chart's ``<div>`` and its ``Plotly.newPlot`` call (the JSON escapes ``<``, so no tag breaks out)."""
        import plotly.graph_objects as go

        layout = {
            "template": "none",
            "height": _FIG_HEIGHT,
            "margin": {"l": 60, "r": 20, "t": 40, "b": 50},
            "font": {"family": "system-ui, sans-serif", "size": 12},
            "legend": {"orientation": "h", "y": -0.2},
            "hovermode": "closest",
            **self.layout,
        }
        fig = go.Figure(data=self.traces, layout=layout)
        return fig.to_html(full_html=False, include_plotlyjs=False, div_id=self.div_id,
                           config=_PLOTLY_CONFIG, default_height=f"{_FIG_HEIGHT}px")


def _figure(fig: Figure) -> dict[str, Any]:
    return {"kind": "figure", "figure": fig}


def _axis(title: str, **extra: Any) -> dict[str, Any]:
    return {"title": {"text": title}, "gridcolor": "#e5e5e5", "zerolinecolor": "#999", **extra}


# --------------------------------------------------------------------------------------------- sections


def _summary_section(d: ReportData) -> list[dict[str, Any]]:
    s = d.summary
    market = s.get("market") or {}
    bench = s.get("benchmark") or {}
    wf = s.get("walk_forward") or {}
    blocks = [_kv([
        ("name", fmt(s.get("name"))),
        ("configurations", fmt(s.get("configs"))),
        ("folds", fmt(s.get("folds"))),
        ("survivors", fmt(s.get("survivors"))),
        ("seconds", fmt(s.get("seconds"), 2)),
        ("configurations per second", fmt(s.get("configs_per_s"), 2)),
        ("results digest", fmt(s.get("results_digest"))),
        ("market log head", fmt(market.get("head"))),
        ("symbols", fmt(market.get("symbols"))),
        ("timeframe", fmt(market.get("timeframe"))),
        ("from", fmt(market.get("from"))),
        ("to", fmt(market.get("to"))),
        ("benchmark", fmt(bench.get("symbol"))),
        ("benchmark Sharpe", fmt(bench.get("sharpe"), 2)),
        ("benchmark CAGR", fmt(bench.get("cagr"), 3, pct=True)),
        ("walk-forward efficiency", fmt(wf.get("efficiency"), 2)),
        ("walk-forward out-of-sample Sharpe", fmt(wf.get("oos_sharpe"), 2)),
        ("best configuration", fmt(d.label(d.best_key) if d.best_key else None)),
    ], caption="Run summary (summary.json)")]

    killed = {str(k): int(v) for k, v in (s.get("killed") or {}).items()}
    counted: dict[str, int] = {}
    r = d.results
    if r is not None and "killed" in r:
        dead = r[r["killed"].fillna(False).astype(bool)]
        gates = dead["kill_gate"].fillna("?").astype(str) if "kill_gate" in dead else pd.Series(["?"] * len(dead))
        counted = {str(k): int(v) for k, v in gates.value_counts().items()}
    gates_all = sorted(set(killed) | set(counted))
    thresholds = s.get("gates") or {}
    if gates_all:
        blocks.append(_table(
            ("gate", "killed (summary.json)", "killed (results.parquet)", "thresholds"),
            ([g, fmt(killed.get(g)), fmt(counted.get(g)),
              fmt(", ".join(f"{k} = {v}" for k, v in sorted(thresholds.items()) if k.startswith(g)) or None)]
             for g in gates_all),
            caption="Kill reasons: configurations killed by each gate",
        ))
    else:
        blocks.append(_note("No configuration was killed."))

    if r is not None and {"key", "strategy", "sharpe"} <= set(r.columns):
        top = r.sort_values(["sharpe", "key"], ascending=[False, True], na_position="last").head(TOP_ROWS)
        blocks.append(_table(
            ("configuration", "trades", "Sharpe", "CAGR", "max drawdown", "DSR", "killed", "gate", "value",
             "threshold"),
            ([d.label(str(row["key"])), fmt(row.get("trades")), fmt(row.get("sharpe"), 2),
              fmt(row.get("cagr"), 3, pct=True), fmt(row.get("max_drawdown"), 3, pct=True), fmt(row.get("dsr")),
              fmt(row.get("killed")), fmt(row.get("kill_gate")), fmt(row.get("kill_value")),
              fmt(row.get("kill_threshold"))] for _, row in top.iterrows()),
            caption=f"The {len(top)} configurations with the best Sharpe ratio (results.parquet)",
        ))
    else:
        blocks.append(_na("results.parquet"))
    return blocks


def _curve_keys(curves: pd.DataFrame) -> list[str]:
    keys = [str(k) for k in pd.unique(curves["key"])]
    return [k for k in keys if k != _BENCHMARK] + ([_BENCHMARK] if _BENCHMARK in keys else [])


def _equity_section(d: ReportData) -> list[dict[str, Any]]:
    c = d.curves
    if c is None:
        return [_na("curves.parquet")]
    traces = []
    for key in _curve_keys(c):
        part = c[c["key"] == key].sort_values("ts")
        style = {"dash": "dash", "color": "#333"} if key == _BENCHMARK else {}
        traces.append({"type": "scatter", "mode": "lines", "name": d.label(key), "x": _json_values(part["ts"]),
                       "y": _json_values(part["equity"]), "line": {"width": 1.5, **style}})
    return [_figure(Figure("equity", traces, {"xaxis": _axis("time"), "yaxis": _axis("equity")}))]


def _drawdown_frame(ts: pd.Series, equity: pd.Series) -> pd.DataFrame:
    e = equity.to_numpy(dtype=np.float64)
    peak = np.maximum.accumulate(np.where(np.isfinite(e), e, -np.inf))
    with np.errstate(divide="ignore", invalid="ignore"):
        dd = np.where(peak > 0, e / peak - 1.0, 0.0)
    return pd.DataFrame({"ts": ts.to_numpy(), "dd": dd})


def worst_drawdowns(ts: pd.Series, equity: pd.Series, n: int = WORST_DRAWDOWNS) -> list[dict[str, Any]]:
    """The ``n`` deepest drawdown episodes: peak, trough, recovery (None if not recovered), depth, length."""
    f = _drawdown_frame(ts.reset_index(drop=True), equity.reset_index(drop=True))
    dd, times = f["dd"].to_numpy(), f["ts"]
    episodes, i = [], 0
    while i < len(dd):
        if dd[i] < 0:
            start = i
            while i < len(dd) and dd[i] < 0:
                i += 1
            trough = start + int(np.argmin(dd[start:i]))
            recovered = i < len(dd)
            peak_i = max(start - 1, 0)
            end_i = i if recovered else len(dd) - 1
            episodes.append({"peak": times.iloc[peak_i], "trough": times.iloc[trough],
                             "recovery": times.iloc[i] if recovered else None, "depth": float(dd[trough]),
                             "length": end_i - peak_i})
        else:
            i += 1
    episodes.sort(key=lambda x: (x["depth"], str(x["peak"])))
    return episodes[:n]


def _drawdowns_section(d: ReportData) -> list[dict[str, Any]]:
    c = d.curves
    if c is None:
        return [_na("curves.parquet")]
    traces = []
    for key in _curve_keys(c):
        part = c[c["key"] == key].sort_values("ts")
        f = _drawdown_frame(part["ts"], part["equity"])
        style = {"dash": "dash", "color": "#333"} if key == _BENCHMARK else {}
        traces.append({"type": "scatter", "mode": "lines", "name": d.label(key), "x": _json_values(part["ts"]),
                       "y": _json_values(f["dd"]), "line": {"width": 1.2, **style},
                       "fill": "tozeroy" if key == d.best_key else "none"})
    blocks = [_figure(Figure("underwater", traces, {"xaxis": _axis("time"),
                                                    "yaxis": _axis("drawdown", tickformat=".0%")}))]
    keys = _curve_keys(c)
    key = d.best_key if d.best_key in keys else next((k for k in keys if k != _BENCHMARK), None)
    if key is None:
        blocks.append(_na("worst drawdowns (curves.parquet holds only the benchmark)"))
        return blocks
    part = c[c["key"] == key].sort_values("ts")
    rows = worst_drawdowns(part["ts"], part["equity"])
    blocks.append(_table(
        ("peak", "trough", "recovery", "depth", "samples peak to recovery"),
        ([fmt(r["peak"]), fmt(r["trough"]), fmt(r["recovery"]) if r["recovery"] is not None else "not recovered",
          fmt(r["depth"], 3, pct=True), fmt(r["length"])] for r in rows),
        caption=f"Worst drawdowns of {d.label(key)}",
    ))
    return blocks


def _returns_of(d: ReportData) -> tuple[str, pd.Series] | None:
    r = d.returns
    key = d.best_key
    if r is None or "date" not in r or key is None or key not in r.columns:
        return None
    s = pd.Series(r[key].to_numpy(dtype=np.float64), index=pd.to_datetime(r["date"])).sort_index()
    return key, s


def _monthly_section(d: ReportData) -> list[dict[str, Any]]:
    got = _returns_of(d)
    if got is None:
        return [_na("returns.parquet (or its column for the best configuration)")]
    key, s = got
    s = s.dropna()
    grouped = (1.0 + s).groupby([s.index.year, s.index.month]).prod() - 1.0
    years = sorted({int(y) for y, _ in grouped.index})
    z = [[float(grouped.get((y, m), np.nan)) for m in range(1, 13)] for y in years]
    text = [[fmt(v, 2, pct=True) if math.isfinite(v) else "" for v in row] for row in z]
    z_json = [_json_values(row) for row in z]
    finite = [abs(v) for row in z for v in row if math.isfinite(v)]
    bound = max(finite) if finite else 1.0
    trace = {"type": "heatmap", "x": list(_MONTHS), "y": [str(y) for y in years], "z": z_json, "text": text,
             "texttemplate": "%{text}", "colorscale": "RdYlGn", "zmid": 0.0, "zmin": -bound, "zmax": bound,
             "colorbar": {"tickformat": ".1%"}, "hovertemplate": "%{y} %{x}: %{z:.2%}<extra></extra>"}
    layout = {"xaxis": _axis("month", type="category"), "yaxis": _axis("year", type="category", autorange="reversed"),
              "height": max(220, 60 + 40 * len(years))}
    yearly = (1.0 + s).groupby(s.index.year).prod() - 1.0
    return [_note(f"Monthly compounded daily returns of {d.label(key)} (returns.parquet)."),
            _figure(Figure("monthly", [trace], layout)),
            _table(("year", "return"), ([str(int(y)), fmt(v, 3, pct=True)] for y, v in yearly.items()),
                   caption="Yearly returns")]


def _rolling_sharpe(s: pd.Series) -> pd.Series:
    m = s.rolling(ROLLING_WINDOW).mean()
    sd = s.rolling(ROLLING_WINDOW).std(ddof=1)
    with np.errstate(divide="ignore", invalid="ignore"):
        out = m / sd * math.sqrt(TRADING_DAYS)
    return out.replace([np.inf, -np.inf], np.nan).dropna()


def _rolling_section(d: ReportData) -> list[dict[str, Any]]:
    got = _returns_of(d)
    if got is None:
        return [_na("returns.parquet (or its column for the best configuration)")]
    key, s = got
    series = [(key, s)]
    if _BENCHMARK in d.returns.columns:
        b = pd.Series(d.returns[_BENCHMARK].to_numpy(dtype=np.float64), index=pd.to_datetime(d.returns["date"]))
        series.append((_BENCHMARK, b.sort_index()))
    traces = []
    for k, x in series:
        rs = _rolling_sharpe(x.dropna())
        style = {"dash": "dash", "color": "#333"} if k == _BENCHMARK else {}
        traces.append({"type": "scatter", "mode": "lines", "name": d.label(k),
                       "x": [t.strftime("%Y-%m-%d") for t in rs.index], "y": _json_values(rs.to_numpy()),
                       "line": {"width": 1.3, **style}})
    if not any(t["x"] for t in traces):
        return [_na(f"rolling Sharpe (fewer than {ROLLING_WINDOW} daily returns)")]
    return [_figure(Figure("rolling_sharpe", traces, {"xaxis": _axis("date"),
                                                      "yaxis": _axis("annualised Sharpe, 63 trading days")}))]


def _trade_stats(t: pd.DataFrame) -> list[Any]:
    pnl = t["pnl"].astype(np.float64)
    wins, losses = pnl[pnl > 0], pnl[pnl < 0]
    gross_loss = -losses.sum()
    held = (t["exit_ts"] - t["entry_ts"]).dropna() if {"exit_ts", "entry_ts"} <= set(t.columns) else pd.Series([])
    hold = held.median() if len(held) else None
    return [len(t), fmt(len(wins) / len(pnl) if len(pnl) else None, 3, pct=True), fmt(pnl.sum(), 2),
            fmt(pnl.mean(), 2), fmt(wins.mean() if len(wins) else None, 2),
            fmt(losses.mean() if len(losses) else None, 2),
            fmt(wins.sum() / gross_loss if gross_loss > 0 else None, 2),
            fmt(pnl.max(), 2), fmt(pnl.min(), 2),
            fmt(t["commission"].sum(), 2) if "commission" in t else "—",
            fmt(t["slippage_cost"].sum(), 2) if "slippage_cost" in t else "—",
            fmt(hold) if hold is not None and not pd.isna(hold) else "—"]


def _trades_section(d: ReportData) -> list[dict[str, Any]]:
    t = d.trades
    if t is None:
        return [_na("trades.parquet")]
    keys = sorted({str(k) for k in t["key"]}, key=lambda k: (k != d.best_key, d.label(k)))
    blocks = [_table(
        ("configuration", "trades", "win rate", "total P&L", "mean P&L", "mean win", "mean loss", "profit factor",
         "best", "worst", "commission", "slippage", "median holding time"),
        ([d.label(k), *_trade_stats(t[t["key"] == k])] for k in keys),
        caption="Round trips of the top configurations (trades.parquet; P&L net of commission)",
    )]
    key = d.best_key if d.best_key in keys else keys[0]
    part = t[(t["key"] == key) & t["mae"].notna() & t["mfe"].notna()]
    if not len(part):
        blocks.append(_na(f"MAE/MFE of {d.label(key)}"))
        return blocks
    traces = []
    for name, mask, color in (("winners", part["pnl"] > 0, "#2a9d3f"), ("losers", part["pnl"] <= 0, "#d1495b")):
        sub = part[mask]
        traces.append({"type": "scatter", "mode": "markers", "name": name, "x": _json_values(sub["mae"]),
                       "y": _json_values(sub["mfe"]), "text": _json_values(sub["pnl"].round(2)),
                       "marker": {"color": color, "size": 7, "opacity": 0.75},
                       "hovertemplate": "MAE %{x:.2f}<br>MFE %{y:.2f}<br>P&L %{text}<extra></extra>"})
    blocks.append(_note(f"Maximum adverse against maximum favourable excursion per trade of {d.label(key)}."))
    blocks.append(_figure(Figure("mae_mfe", traces, {"xaxis": _axis("MAE (worst unrealised P&L)"),
                                                     "yaxis": _axis("MFE (best unrealised P&L)")})))
    return blocks


def _param_label(v: Any) -> str:
    """A parameter value as an axis label: whole floats (ints read back through a nullable column) as ints."""
    if isinstance(v, (float, np.floating)) and math.isfinite(v) and float(v).is_integer():
        return str(int(v))
    return str(v)


def _sort_values(values: Iterable[Any]) -> list[Any]:
    vals = list(values)
    try:
        return sorted(vals)
    except TypeError:
        return sorted(vals, key=str)


def _parameters_section(d: ReportData) -> list[dict[str, Any]]:
    r = d.results
    if r is None or "strategy" not in r or "sharpe" not in r:
        return [_na("results.parquet")]
    counts = r["strategy"].astype(str).value_counts()
    strategy = sorted(counts.index, key=lambda s: (-int(counts[s]), s))[0]
    rows = r[r["strategy"].astype(str) == strategy]
    p_cols = [c for c in r.columns if str(c).startswith("p_")]
    varying = [c for c in p_cols if rows[c].notna().any() and rows[c].nunique(dropna=True) > 1]
    if not varying:
        return [_na(f"parameter heatmap ({strategy} has no parameter that varies)")]
    if len(varying) == 1:
        p = varying[0]
        g = rows.groupby(p)["sharpe"].median()
        xs = _sort_values(g.index)
        trace = {"type": "bar", "x": [_param_label(x) for x in xs], "y": _json_values([g[x] for x in xs]),
                 "marker": {"color": "#3a6ea5"}, "name": "Sharpe"}
        return [_note(f"{strategy}: Sharpe ratio against {p[2:]} ({len(rows)} configurations; "
                      "median over any other parameter)."),
                _figure(Figure("parameters", [trace], {"xaxis": _axis(p[2:], type="category"),
                                                       "yaxis": _axis("Sharpe")}))]
    px, py = varying[0], varying[1]
    pivot = rows.groupby([py, px])["sharpe"].median()
    xs, ys = _sort_values(rows[px].dropna().unique()), _sort_values(rows[py].dropna().unique())
    z = [[float(pivot.get((y, x), np.nan)) for x in xs] for y in ys]
    text = [[fmt(v, 2) if math.isfinite(v) else "" for v in row] for row in z]
    trace = {"type": "heatmap", "x": [_param_label(x) for x in xs], "y": [_param_label(y) for y in ys],
             "z": [_json_values(row) for row in z], "text": text, "texttemplate": "%{text}",
             "colorscale": "RdYlGn", "colorbar": {"title": {"text": "Sharpe"}},
             "hovertemplate": f"{px[2:]} %{{x}}, {py[2:]} %{{y}}: Sharpe %{{z:.2f}}<extra></extra>"}
    other = [c[2:] for c in varying[2:]]
    note = f"{strategy}: Sharpe ratio over {px[2:]} × {py[2:]} ({len(rows)} configurations"
    note += f"; median over {', '.join(other)})." if other else ")."
    return [_note(note), _figure(Figure("parameters", [trace], {"xaxis": _axis(px[2:], type="category"),
                                                               "yaxis": _axis(py[2:], type="category")}))]


def _folds_section(d: ReportData) -> list[dict[str, Any]]:
    f = d.folds
    if f is None:
        return [_na("folds.parquet")]
    kinds = sorted({str(k) for k in f["kind"]}, key=lambda k: (k != "walk_forward", k))
    kind = kinds[0]
    fk = f[f["kind"] == kind]
    sel = fk[fk["selected"].fillna(False).astype(bool)] if "selected" in fk else fk.iloc[0:0]
    if not len(sel) and d.best_key is not None:
        sel = fk[fk["key"] == d.best_key]
    sel = sel.sort_values(["fold", "key"]).drop_duplicates("fold")
    blocks: list[dict[str, Any]] = []
    if len(sel):
        folds = [str(int(x)) for x in sel["fold"]]
        traces = [{"type": "bar", "name": "in-sample Sharpe", "x": folds, "y": _json_values(sel["is_sharpe"]),
                   "marker": {"color": "#8aa9c9"}},
                  {"type": "bar", "name": "out-of-sample Sharpe", "x": folds, "y": _json_values(sel["oos_sharpe"]),
                   "marker": {"color": "#e07a2f"}}]
        blocks.append(_note(f"{kind}: the in-sample winner of each fold, its in-sample Sharpe ratio and its "
                            "out-of-sample Sharpe ratio on the fold that follows."))
        blocks.append(_figure(Figure("folds", traces, {"barmode": "group", "xaxis": _axis("fold", type="category"),
                                                       "yaxis": _axis("Sharpe")})))
        blocks.append(_table(
            ("fold", "selected configuration", "in-sample", "out-of-sample", "IS Sharpe", "OOS Sharpe",
             "IS return", "OOS return"),
            ([str(int(row["fold"])), d.label(str(row["key"])),
              f"{fmt(row.get('is_start'))} → {fmt(row.get('is_end'))}",
              f"{fmt(row.get('oos_start'))} → {fmt(row.get('oos_end'))}",
              fmt(row.get("is_sharpe"), 2), fmt(row.get("oos_sharpe"), 2), fmt(row.get("is_return"), 3, pct=True),
              fmt(row.get("oos_return"), 3, pct=True)] for _, row in sel.iterrows()),
            caption=f"Folds ({kind})",
        ))
    else:
        blocks.append(_na(f"selected configurations per fold ({kind})"))
    traces = []
    for k in kinds:
        part = f[f["kind"] == k]
        traces.append({"type": "scattergl" if len(part) > 5000 else "scatter", "mode": "markers", "name": k,
                       "x": _json_values(part["is_sharpe"]), "y": _json_values(part["oos_sharpe"]),
                       "marker": {"size": 5, "opacity": 0.6}})
    blocks.append(_note("Every (configuration, fold): in-sample against out-of-sample Sharpe ratio. Points "
                        "below the diagonal lost performance out of sample."))
    blocks.append(_figure(Figure("folds_scatter", traces, {"xaxis": _axis("in-sample Sharpe"),
                                                           "yaxis": _axis("out-of-sample Sharpe")})))
    wf = d.summary.get("walk_forward") or {}
    blocks.append(_kv([("walk-forward efficiency", fmt(wf.get("efficiency"), 2)),
                       ("out-of-sample Sharpe (walk-forward)", fmt(wf.get("oos_sharpe"), 2))],
                      caption="Walk-forward (summary.json)"))
    return blocks


def _trials_section(d: ReportData) -> list[dict[str, Any]]:
    from argus.research.stats import expected_max_sharpe

    trials = d.summary.get("trials") or {}
    n, eff, var = trials.get("n"), trials.get("effective"), trials.get("sr_variance")
    sr0 = None
    if _finite(var) and _finite(eff) and float(var) >= 0 and float(eff) >= 1:
        sr0 = expected_max_sharpe(float(var), float(eff))
    blocks = [_kv([("trials", fmt(n)), ("effective number of trials", fmt(eff, 2)),
                   ("variance of the trials' Sharpe ratios", fmt(var, 6)),
                   ("expected maximum Sharpe ratio of that many null trials (SR₀, the DSR's benchmark; "
                    "in the units of the variance above)", fmt(sr0, 4))],
                  caption="Trials counted by the deploy gates (summary.json)")]
    r = d.results
    if r is not None and "sharpe" in r:
        x = r["sharpe"].astype(np.float64)
        x = x[np.isfinite(x)]
        traces = [{"type": "histogram", "x": _json_values(x), "name": "trials", "marker": {"color": "#8aa9c9"},
                   "nbinsx": 30}]
        layout: dict[str, Any] = {"xaxis": _axis("Sharpe ratio (annualised)"), "yaxis": _axis("configurations"),
                                  "bargap": 0.05}
        best = d.best_key
        if best is not None and (r["key"] == best).any():
            v = float(r.loc[r["key"] == best, "sharpe"].iloc[0])
            if math.isfinite(v):
                layout["shapes"] = [{"type": "line", "x0": v, "x1": v, "yref": "paper", "y0": 0, "y1": 1,
                                     "line": {"color": "#d1495b", "dash": "dash"}}]
                layout["annotations"] = [{"x": v, "y": 1, "yref": "paper", "text": "best", "showarrow": False,
                                          "yanchor": "bottom"}]
        blocks.append(_note("Distribution of the Sharpe ratios of all configurations tried (results.parquet)."))
        blocks.append(_figure(Figure("trial_sharpes", traces, layout)))
    else:
        blocks.append(_na("results.parquet"))
    return blocks


def _gates_section(d: ReportData) -> list[dict[str, Any]]:
    stats = d.summary.get("stats") or {}
    gates = d.summary.get("gates") or {}
    blocks = [_kv([("probability of backtest overfitting (PBO)", fmt(stats.get("pbo"))),
                   ("White's Reality Check p-value", fmt(stats.get("reality_check_pvalue"))),
                   ("Hansen's SPA p-value", fmt(stats.get("spa_pvalue")))],
                  caption="Whole-sweep tests (summary.json)")]
    if gates:
        blocks.append(_table(("gate", "threshold"), ([k, fmt(v)] for k, v in sorted(gates.items())),
                             caption="Gate thresholds (summary.json)"))
    r = d.results
    if r is None or "key" not in r:
        blocks.append(_na("per-configuration PSR, DSR and MinTRL (results.parquet)"))
        return blocks
    best = d.best_key
    alive = ~r["killed"].fillna(False).astype(bool) if "killed" in r else pd.Series(True, index=r.index)
    show = r[alive | (r["key"] == best)]
    sort = "dsr" if "dsr" in show else "sharpe"
    show = show.sort_values([sort, "key"], ascending=[False, True], na_position="last").head(TOP_ROWS)
    blocks.append(_table(
        ("configuration", "Sharpe", "PSR", "DSR", "MinTRL", "trades", "stability", "killed"),
        ([("★ " if str(row["key"]) == best else "") + d.label(str(row["key"])), fmt(row.get("sharpe"), 2),
          fmt(row.get("psr")), fmt(row.get("dsr")), fmt(row.get("min_trl"), 1), fmt(row.get("trades")),
          fmt(row.get("stability"), 2), fmt(row.get("killed"))] for _, row in show.iterrows()),
        caption="Survivors and the best configuration (★): PSR, DSR and minimum track record length",
    ))
    return blocks


def _robust_key(d: ReportData) -> str | None:
    rb = d.robustness
    if not rb:
        return None
    return d.best_key if d.best_key in rb else sorted(rb)[0]


def _bootstrap_section(d: ReportData) -> list[dict[str, Any]]:
    key = _robust_key(d)
    boot = (d.robustness or {}).get(key, {}).get("bootstrap") if key else None
    if not boot:
        return [_na("robustness.json (bootstrap)")]
    blocks = [_note(f"Stationary block bootstrap of the realized trades of {d.label(key)}.")]
    fan = boot.get("fan") or {}
    steps = fan.get("steps") or []
    if steps and all(fan.get(q) for q in ("q05", "q25", "q50", "q75", "q95")):
        band = {"type": "scatter", "mode": "lines", "line": {"width": 0}, "x": steps, "hoverinfo": "skip"}
        traces = [
            {**band, "y": _json_values(fan["q05"]), "name": "5%", "showlegend": False},
            {**band, "y": _json_values(fan["q95"]), "name": "5%–95%", "fill": "tonexty",
             "fillcolor": "rgba(58,110,165,0.18)"},
            {**band, "y": _json_values(fan["q25"]), "name": "25%", "showlegend": False},
            {**band, "y": _json_values(fan["q75"]), "name": "25%–75%", "fill": "tonexty",
             "fillcolor": "rgba(58,110,165,0.38)"},
            {"type": "scatter", "mode": "lines", "x": steps, "y": _json_values(fan["q50"]), "name": "median",
             "line": {"color": "#1d3f66", "width": 2}},
        ]
        blocks.append(_figure(Figure("fan", traces, {"xaxis": _axis("trade"), "yaxis": _axis("equity")})))
    else:
        blocks.append(_na("bootstrap fan"))
    ddq = boot.get("drawdown_quantiles") or {}
    if ddq:
        qs = sorted(ddq, key=lambda q: float(q))
        trace = {"type": "bar", "x": [f"{float(q):.0%}" if float(q) < 1 else str(q) for q in qs],
                 "y": _json_values([ddq[q] for q in qs]), "marker": {"color": "#d1495b"}, "name": "max drawdown"}
        blocks.append(_figure(Figure("drawdown_dist", [trace], {"xaxis": _axis("quantile", type="category"),
                                                                "yaxis": _axis("maximum drawdown")})))
    else:
        blocks.append(_na("bootstrap drawdown distribution"))
    fpq = boot.get("final_pnl_quantiles") or {}
    blocks.append(_kv([
        ("paths", fmt(boot.get("n_paths"))),
        ("block length (Politis–White)", fmt(boot.get("block_length"), 2)),
        ("ruin threshold", fmt(boot.get("ruin_threshold"), 2)),
        ("probability of ruin", fmt(boot.get("ruin_probability"), 3, pct=True)),
        ("probability that the edge is ≤ 0 after costs", fmt(boot.get("edge_le_zero_probability"), 3, pct=True)),
        ("worst fraction of paths", fmt(boot.get("worst_fraction"), 3, pct=True)),
        ("worst paths: mean final P&L", fmt(boot.get("worst_mean_final_pnl"), 2)),
        ("worst paths: mean maximum drawdown", fmt(boot.get("worst_mean_max_drawdown"), 4)),
        *((f"final P&L, {float(q):.0%} quantile", fmt(fpq[q], 2)) for q in sorted(fpq, key=float)),
    ], caption="Bootstrap results (robustness.json)"))
    return blocks


def _slippage_section(d: ReportData) -> list[dict[str, Any]]:
    rb = d.robustness or {}
    keys = sorted((k for k in rb if (rb[k] or {}).get("slippage")), key=lambda k: (k != d.best_key, d.label(k)))
    if not keys:
        return [_na("robustness.json (slippage)")]
    traces, rows = [], []
    for k in keys:
        sl = rb[k]["slippage"]
        traces.append({"type": "scatter", "mode": "lines+markers", "name": d.label(k),
                       "x": _json_values(sl.get("multipliers") or []), "y": _json_values(sl.get("net_pnl") or [])})
        rows.append([d.label(k), *[fmt(v, 2) for v in sl.get("net_pnl") or []][:4],
                     fmt(sl.get("break_even_multiplier"), 2)])
    layout = {"xaxis": _axis("cost multiplier"), "yaxis": _axis("net P&L"),
              "shapes": [{"type": "line", "xref": "paper", "x0": 0, "x1": 1, "y0": 0, "y1": 0,
                          "line": {"color": "#333", "dash": "dot"}}]}
    mults = rb[keys[0]]["slippage"].get("multipliers") or []
    head = [f"net P&L at {fmt(float(m), 2)}×" for m in mults][:4]
    rows = [r[: 1 + len(head)] + [r[-1]] for r in rows]
    return [_figure(Figure("slippage", traces, layout)),
            _table(("configuration", *head, "break-even multiplier"), rows,
                   caption="Net P&L with costs scaled; break-even = the cost multiplier at which net P&L is 0")]


def _regimes_section(d: ReportData) -> list[dict[str, Any]]:
    key = _robust_key(d)
    doc = (d.robustness or {}).get(key) or {} if key else {}
    regimes = doc.get("regimes")
    if not regimes:
        return [_na("robustness.json (regimes)")]
    blocks = [_table(("regime", "periods", "Sharpe", "annual return", "max drawdown"),
                     ([fmt(x.get("label")), fmt(x.get("periods")), fmt(x.get("sharpe"), 2),
                       fmt(x.get("annual_return"), 3, pct=True), fmt(x.get("max_drawdown"), 3, pct=True)]
                      for x in regimes),
                     caption=f"Per-regime results of {d.label(key)}")]
    hs = doc.get("hostile_stress") or {}
    blocks.append(_kv([("regime sensitivity", fmt(doc.get("regime_sensitivity"), 3)),
                       ("hostile regimes", fmt(hs.get("labels"))),
                       ("Sharpe on hostile regimes only", fmt(hs.get("sharpe"), 2)),
                       ("annual return on hostile regimes only", fmt(hs.get("annual_return"), 3, pct=True)),
                       ("max drawdown on hostile regimes only", fmt(hs.get("max_drawdown"), 3, pct=True))],
                      caption="Regime sensitivity and hostile-regime stress"))
    hr = doc.get("hostile_rerun")
    if hr:
        blocks.append(_kv([("entries allowed only in", fmt(hr.get("labels"))), ("trades", fmt(hr.get("trades"))),
                           ("total P&L", fmt(hr.get("total_pnl"), 2)), ("Sharpe", fmt(hr.get("sharpe"), 2)),
                           ("max drawdown", fmt(hr.get("max_drawdown"), 3, pct=True))],
                          caption="Rerun with entries in hostile regimes only"))
    sessions = doc.get("sessions")
    if sessions:
        blocks.append(_table(("session of entry", "trades", "win rate", "mean P&L", "total P&L"),
                             ([fmt(x.get("session")), fmt(x.get("trades")), fmt(x.get("win_rate"), 3, pct=True),
                               fmt(x.get("mean_pnl"), 2), fmt(x.get("total_pnl"), 2)] for x in sessions),
                             caption=f"Closed trades of {d.label(key)} by the session they entered in"))
    return blocks


def _allocations_section(d: ReportData) -> list[dict[str, Any]]:
    a = d.allocations
    if not a:
        return [_na("allocations.json")]
    rows = a.get("allocations") or []
    blocks = [_kv([("equity", fmt(a.get("equity"), 2)), ("gross", fmt(a.get("gross"), 3)),
                   ("strategies", fmt(a.get("strategies") if not isinstance(a.get("strategies"), dict)
                                      else sorted(a["strategies"])))],
                  caption="Allocation (allocations.json)")]
    if rows:
        blocks.append(_table(("strategy", "play", "parameters", "weight", "notional", "reason"),
                             ([fmt(x.get("strategy")), fmt(x.get("play")), _params_text(x.get("params")),
                               fmt(x.get("weight"), 3, pct=True), fmt(x.get("notional"), 2),
                               fmt(x.get("reason"))] for x in rows)))
    else:
        blocks.append(_note("No survivor was allocated."))
    return blocks


def _config_section(d: ReportData) -> list[dict[str, Any]]:
    if d.config_text is None:
        return [_na("config.yaml")]
    return [{"kind": "pre", "text": d.config_text}]


_BUILDERS = {
    "summary": _summary_section, "equity": _equity_section, "drawdowns": _drawdowns_section,
    "monthly": _monthly_section, "rolling-sharpe": _rolling_section, "trades": _trades_section,
    "parameters": _parameters_section, "folds": _folds_section, "trials": _trials_section,
    "gates": _gates_section, "bootstrap": _bootstrap_section, "slippage": _slippage_section,
    "regimes": _regimes_section, "allocations": _allocations_section, "config": _config_section,
}


def build_sections(data: ReportData) -> list[dict[str, Any]]:
    """Every section of SECTIONS: {id, title, blocks}; a block is a table, figure, note, "na" note or pre."""
    out = []
    for sid, title in SECTIONS:
        blocks = _BUILDERS[sid](data)
        for b in blocks:
            if b["kind"] == "figure":
                b["html"] = b["figure"].html()
                b["div_id"] = b["figure"].div_id
        out.append({"id": sid, "title": title, "blocks": blocks})
    return out


# ------------------------------------------------------------------------------------------- rendering


@lru_cache(maxsize=1)
def _plotly_js() -> str:
    from plotly.offline import get_plotlyjs

    js = get_plotlyjs()
    if "</script" in js.lower():  # would end the inline <script> early
        raise RuntimeError("plotly.js contains '</script', which cannot be inlined")
    return js


def _environment():
    import jinja2

    env = jinja2.Environment(loader=jinja2.FileSystemLoader(str(Path(__file__).parent / "templates")),
                             autoescape=True, undefined=jinja2.StrictUndefined, trim_blocks=True,
                             lstrip_blocks=True, keep_trailing_newline=True)
    return env


def render_report(data: ReportData) -> str:
    """The report page as text (see write_report)."""
    from markupsafe import Markup

    sections = build_sections(data)
    for s in sections:
        for b in s["blocks"]:
            if b["kind"] == "figure":
                b["html"] = Markup(b["html"])  # Plotly's own output: its JSON escapes "<"
    n_figures = sum(b["kind"] == "figure" for s in sections for b in s["blocks"])
    s = data.summary
    title = f"Argus research report: {s.get('name') or data.run_dir.name}"
    return _environment().get_template(TEMPLATE).render(
        title=title, summary=s, sections=sections, n_figures=n_figures, plotly_js=Markup(_plotly_js()),
        not_available=NOT_AVAILABLE,
    )


def write_report(run_dir: str | Path) -> Path:
    """Write ``RUN_DIR/report.html`` from the run directory's files and return its path.

    One self-contained page: Plotly's JavaScript inlined once, no ``<script src>`` or ``<link href>``, no
    network request when opened. Sections whose files are missing say "not available". Deterministic:
    the same files give the same bytes. Raises FileNotFoundError when RUN_DIR has no summary.json.
    """
    root = Path(run_dir)
    html = render_report(load_run(root))
    out = root / "report.html"
    tmp = root / ".report.html.tmp"
    tmp.write_text(html, encoding="utf-8")
    tmp.replace(out)
    return out
