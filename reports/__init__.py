"""The HTML report of a run: one self-contained page rendered from the output files.

`render_report(out_dir, catalogue)` reads only the files a run writes (summary.json,
findings.csv, episodes.csv, sequences.csv, rejected.csv, and changes.csv and trend.csv when the
run kept a history), so a report can be re-rendered without auditing again.
"""

from reports.render import render_report

__all__ = ["render_report"]
