"""How fast report.html opens in headless Chromium, and how big it is. Prints figures, asserts nothing.

    python tests/benchmarks/report_load.py --episodes 50000,1000000 [--workdir out/bench-report] [--repeat 5]
    python tests/benchmarks/report_load.py --run-dir OUT_DIR [--run-dir OUT_DIR2 ...]

For each size: generate a seeded HES export (tests/benchmarks/generate.py, cached), audit it with
`nice-audit run`, then open its report.html --repeat times in a fresh Chromium tab (1400 px wide)
and read the Navigation Timing entry: `loadEventEnd` (ms from navigation start to the end of the
load event, the page's script included) and `domContentLoadedEventEnd`. Reported: the median and
the fastest, the file size, the DOM node count, and the rows listed. A first, unmeasured open warms
Chromium's own caches.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from tests.cdp import CHROMIUM, Browser  # noqa: E402

BIN = Path(sys.executable).parent


def prepare(workdir: Path, episodes: int) -> Path:
    export = workdir / f"hes-{episodes}.csv"
    out = workdir / f"audit-{episodes}"
    if not export.exists():
        subprocess.run([sys.executable, str(ROOT / "tests/benchmarks/generate.py"), str(export),
                        "--episodes", str(episodes)], check=True, stdout=subprocess.DEVNULL)
    if not (out / "report.html").exists():
        subprocess.run([str(BIN / "nice-audit"), "run", str(export), "--out", str(out), "--quiet"], check=False)
    return out


def measure(browser: Browser, report: Path, repeat: int) -> dict:
    url = report.resolve().as_uri()
    browser.open(url)  # warm-up
    loads, ready = [], []
    for _ in range(repeat):
        browser.open(url)
        timing = browser.evaluate("(() => { const t = performance.getEntriesByType('navigation')[0];"
                                  " return [t.loadEventEnd, t.domContentLoadedEventEnd]; })()")
        loads.append(timing[0])
        ready.append(timing[1])
    return {
        "bytes": report.stat().st_size,
        "load_ms_median": statistics.median(loads), "load_ms_min": min(loads),
        "dcl_ms_median": statistics.median(ready),
        "dom_nodes": browser.evaluate("document.getElementsByTagName('*').length"),
        "worklist_rows": browser.evaluate("document.querySelectorAll('[data-filter-item=worklist]').length"),
        "findings_rows": browser.evaluate("document.querySelectorAll('[data-filter-item=findings]').length"),
        "errors": browser.console_errors(),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--episodes", default="50000,1000000", help="comma-separated sizes to generate")
    parser.add_argument("--run-dir", action="append", type=Path, default=[], help="an existing run's --out folder")
    parser.add_argument("--workdir", type=Path, default=ROOT / "out" / "bench-report")
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    if not CHROMIUM.exists():
        print(f"{CHROMIUM} not found", file=sys.stderr)
        return 2
    args.workdir.mkdir(parents=True, exist_ok=True)
    runs = list(args.run_dir) or [prepare(args.workdir, int(n)) for n in args.episodes.split(",") if n]
    print(f"{'run':40} {'MB':>6} {'load ms (median/min)':>22} {'DCL ms':>8} {'DOM nodes':>10} "
          f"{'worklist':>9} {'findings':>9}")
    with Browser(args.workdir / "chromium-profile") as browser:
        for out in runs:
            started = time.perf_counter()
            r = measure(browser, out / "report.html", args.repeat)
            print(f"{str(out)[-40:]:40} {r['bytes'] / 1e6:6.2f} {r['load_ms_median']:12.0f} / {r['load_ms_min']:<7.0f}"
                  f" {r['dcl_ms_median']:8.0f} {r['dom_nodes']:10,} {r['worklist_rows']:9,} {r['findings_rows']:9,}"
                  f"   ({time.perf_counter() - started:.1f} s; page errors: {len(r['errors'])})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
