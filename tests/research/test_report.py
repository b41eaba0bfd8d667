"""The research report (argus.research.report): one self-contained HTML file, rendered in a real browser."""

from __future__ import annotations

import re
import shutil

import pytest

from argus.research.report import NOT_AVAILABLE, SECTIONS, write_report
from tests.research.fixtures import fake_run_dir

#: Charts of a complete run directory: equity, underwater, monthly, rolling_sharpe, mae_mfe, parameters,
#: folds, folds_scatter, trial_sharpes, fan, drawdown_dist, slippage.
FULL_FIGURES = 12


@pytest.fixture(scope="module")
def full_report(tmp_path_factory):
    run = fake_run_dir(tmp_path_factory.mktemp("run"), seed=7)
    path = write_report(run)
    return run, path, path.read_text(encoding="utf-8")


def _plotly_js_head() -> str:
    from plotly.offline import get_plotlyjs

    return get_plotlyjs()[:400]


def _figure_ids(html: str) -> list[str]:
    return re.findall(r'<div class="chart" data-figure="([^"]+)">', html)


def test_report_is_written_into_the_run_directory(full_report):
    run, path, _ = full_report
    assert path == run / "report.html" and path.stat().st_size > 1_000_000


def test_report_loads_no_external_script_or_stylesheet(full_report):
    html = full_report[2]
    assert not re.search(r"<script[^>]*\bsrc\s*=", html, re.IGNORECASE)
    assert not re.search(r"<link[^>]*\bhref\s*=", html, re.IGNORECASE)
    assert not re.search(r"<(img|iframe|embed|object|source)\b[^>]*\b(src|data)\s*=", html, re.IGNORECASE)
    assert not re.search(r"@import|url\(\s*['\"]?https?:", html, re.IGNORECASE)


def test_report_inlines_plotly_js_exactly_once(full_report):
    html = full_report[2]
    assert html.count(_plotly_js_head()) == 1
    assert len(re.findall(r"plotly\.js v\d", html)) == 1


def test_report_has_every_section_with_a_heading(full_report):
    html = full_report[2]
    for sid, title in SECTIONS:
        m = re.search(rf'<section id="{re.escape(sid)}">\s*<h2>([^<]+)</h2>', html)
        assert m, sid
        assert m.group(1) == title.replace("&", "&amp;")


def test_complete_run_directory_has_every_chart_and_nothing_unavailable(full_report):
    html = full_report[2]
    ids = _figure_ids(html)
    assert len(ids) == FULL_FIGURES and len(set(ids)) == len(ids)
    assert f'data-figures="{FULL_FIGURES}"' in html
    assert '<p class="na">' not in html
    for div_id in ids:
        assert html.count(f'id="{div_id}"') == 1


def test_same_run_directory_gives_the_same_bytes(tmp_path):
    a = write_report(fake_run_dir(tmp_path / "a", seed=3)).read_bytes()
    b = write_report(fake_run_dir(tmp_path / "a", seed=3)).read_bytes()
    assert a == b


def test_missing_optional_files_say_not_available(tmp_path):
    run = fake_run_dir(tmp_path / "run", seed=1)
    for name in ("curves.parquet", "trades.parquet", "robustness.json", "folds.parquet", "allocations.json",
                 "config.yaml", "returns.parquet"):
        (run / name).unlink()
    html = write_report(run).read_text(encoding="utf-8")
    for sid in ("equity", "drawdowns", "monthly", "rolling-sharpe", "trades", "folds", "bootstrap", "slippage",
                "regimes", "allocations", "config"):
        body = html.split(f'<section id="{sid}">', 1)[1].split("</section>", 1)[0]
        assert NOT_AVAILABLE in body, sid
    assert _figure_ids(html) == ["fig-parameters", "fig-trial_sharpes"]


def test_only_summary_json_is_enough(tmp_path):
    run = fake_run_dir(tmp_path / "run", seed=1)
    for p in run.iterdir():
        if p.name != "summary.json":
            p.unlink()
    html = write_report(run).read_text(encoding="utf-8")
    assert all(f'<section id="{sid}">' in html for sid, _ in SECTIONS)
    assert _figure_ids(html) == []


def test_directory_without_summary_json_is_refused(tmp_path):
    with pytest.raises(FileNotFoundError, match="summary.json"):
        write_report(tmp_path)


def test_text_from_the_run_is_escaped(tmp_path):
    import json

    run = fake_run_dir(tmp_path / "run", seed=2)
    summary = json.loads((run / "summary.json").read_text())
    summary["name"] = "<script>alert(1)</script>"
    (run / "summary.json").write_text(json.dumps(summary))
    (run / "config.yaml").write_text("name: '</pre><img src=x onerror=alert(1)>'\n")
    html = write_report(run).read_text(encoding="utf-8")
    assert "<script>alert(1)</script>" not in html and "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    assert "<img src=x" not in html


def test_one_varying_parameter_gives_a_bar_chart(tmp_path):
    import pandas as pd

    run = fake_run_dir(tmp_path / "run", seed=4)
    results = pd.read_parquet(run / "results.parquet")
    results = results[results["strategy"] == "zscore_revert"]
    results.to_parquet(run / "results.parquet")
    html = write_report(run).read_text(encoding="utf-8")
    body = html.split('<section id="parameters">', 1)[1].split("</section>", 1)[0]
    assert '"type":"bar"' in body and "window" in body


# ----------------------------------------------------------------------------------------- real browser


def _browser_or_skip():
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        pytest.skip("BROWSER TEST SKIPPED: the playwright package is not installed (pip install -e '.[test]')")
    exe = shutil.which("chromium")
    if exe is None:
        pytest.skip("BROWSER TEST SKIPPED: chromium not installed: apt-get install chromium "
                    "(Debian's package; .ci/run installs it)")
    return sync_playwright, exe


def test_report_renders_offline_in_headless_chromium(full_report):
    sync_playwright, exe = _browser_or_skip()
    run, path, html = full_report
    n_figures = len(_figure_ids(html))
    errors: list[str] = []
    outside: list[str] = []
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=exe, args=["--no-sandbox"], headless=True)
        try:
            page = browser.new_page(viewport={"width": 1280, "height": 900})
            page.on("console", lambda m: errors.append(f"console.{m.type}: {m.text}") if m.type == "error" else None)
            page.on("pageerror", lambda e: errors.append(f"pageerror: {e}"))

            def route(r):
                if r.request.url.startswith("file:"):
                    r.continue_()
                else:
                    outside.append(r.request.url)
                    r.abort()

            page.route("**/*", route)
            page.goto(path.resolve().as_uri(), wait_until="load", timeout=20_000)
            page.wait_for_function(
                "n => Array.from(document.querySelectorAll('div.chart .js-plotly-plot'))"
                ".filter(d => d.querySelector('.main-svg')).length === n",
                arg=n_figures, timeout=20_000,
            )
            rendered = page.evaluate(
                "() => Array.from(document.querySelectorAll('div.chart')).map(c => ["
                "c.dataset.figure, !!c.querySelector('.js-plotly-plot .main-svg'), "
                "c.querySelectorAll('.js-plotly-plot .main-svg .trace, .js-plotly-plot .main-svg .hm').length])"
            )
            sections = page.evaluate("() => Array.from(document.querySelectorAll('section > h2'))"
                                     ".map(h => [h.parentElement.id, h.getBoundingClientRect().height > 0])")
            shot = run / "report.png"
            page.screenshot(path=str(shot), full_page=True)
        finally:
            browser.close()
    assert errors == []
    assert outside == []
    assert len(rendered) == n_figures == FULL_FIGURES
    assert [name for name, has_svg, _ in rendered if not has_svg] == []
    assert [name for name, _, traces in rendered if traces == 0] == []
    assert sections == [[sid, True] for sid, _ in SECTIONS]
    assert shot.is_file() and shot.stat().st_size > 50_000
