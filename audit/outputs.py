"""Stage 7: write the findings, episode statuses, rejected rows and summary into --out.

Files are written into a fresh directory beside --out and swapped into place only when all of
them are complete, so a run that dies leaves the previous outputs intact.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import polars as pl

from audit import __version__, codes
from audit.judge import STATUSES
from audit.pipeline import AuditResult
from audit.rules import RULES, SEVERITIES

FINDINGS_CSV = "findings.csv"
FINDINGS_PARQUET = "findings.parquet"
EPISODES_CSV = "episodes.csv"
REJECTED_CSV = "rejected.csv"
SEQUENCES_CSV = "sequences.csv"
SUMMARY_JSON = "summary.json"


def sequences(result: AuditResult) -> pl.DataFrame:
    """The full procedure sequence of every episode with a finding or a guidance match, for the
    report's worksheet (which reads only output files)."""
    flagged = pl.concat([result.findings.select("episode_id"), result.episodes.select("episode_id")]).unique()
    return (
        result.data.procedures.join(flagged, on="episode_id", how="semi")
        .select(
            "episode_id",
            "position",
            pl.when(pl.col("code").is_not_null())
            .then(codes.display_expr(pl.col("code")))
            .otherwise(pl.col("code_raw").str.strip_chars())
            .alias("code"),
            "code_kind",
        )
        .sort("episode_id", "position")
    )


def _counts(frame: pl.DataFrame, column: str, keys) -> dict[str, int]:
    found = dict(frame.group_by(column).len().iter_rows()) if frame.height else {}
    return {key: int(found.get(key, 0)) for key in keys}


def summary(result: AuditResult) -> dict:
    data, findings, episodes = result.data, result.findings, result.episodes
    files = [
        {
            "path": f.path, "layout": f.layout, "sha256": f.sha256, "encoding": f.encoding,
            "rows_read": f.rows_read, "rows_rejected": f.rows_rejected,
            "rows_audited": f.rows_audited, "episodes_audited": f.episodes_audited,
            "invalid_dates": f.invalid_dates, "columns_present": list(f.columns_present),
        }
        for f in data.files
    ]
    kinds = _counts(data.procedures, "code_kind", codes.CODE_KINDS)
    by_guidance = {}
    for guidance_id in sorted(set(episodes["guidance_id"].to_list())):
        these = episodes.filter(pl.col("guidance_id") == guidance_id)
        by_guidance[guidance_id] = {"episodes": these.height, **_counts(these, "status", STATUSES)}
    return {
        "tool_version": __version__,
        "run_started": result.started.isoformat(timespec="seconds"),
        "as_of": result.options.as_of.isoformat(),
        "catalogue_version": result.catalogue.version,
        "guidance_in_catalogue": len(result.catalogue.guidance),
        "inputs": files,
        "totals": {
            "rows_read": sum(f["rows_read"] for f in files),
            "rows_rejected": sum(f["rows_rejected"] for f in files),
            "rows_audited": sum(f["rows_audited"] for f in files),
            "episodes_audited": data.episodes.height,
            "procedures": kinds[codes.PROCEDURE],
            "matched_pairs": episodes.height,
            "matched_episodes": episodes["episode_id"].n_unique(),
            "findings": findings.height,
        },
        "by_guidance": by_guidance,
        "by_status": _counts(episodes, "status", STATUSES),
        "by_rule": _counts(findings, "rule_id", RULES),
        "by_severity": _counts(findings, "severity", SEVERITIES),
        "rejected_by_reason": dict(sorted(_counts(data.rejected, "reason", set(data.rejected["reason"])).items())),
        "data_quality": {
            "invalid_codes": kinds[codes.INVALID],
            "not_known_codes": kinds[codes.NOT_KNOWN],
            "no_operation_markers": kinds[codes.NO_OPERATION],
            "local_fifth_characters": data.procedures["local_suffix"].is_not_null().sum(),
            "invalid_dates": sum(f["invalid_dates"] for f in files),
        },
    }


def write_outputs(result: AuditResult, out: Path) -> Path:
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    staging = out.with_name(f".{out.name}.tmp-{os.getpid()}")
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir()
    findings = result.findings
    findings.write_csv(staging / FINDINGS_CSV, date_format="%Y-%m-%d")
    findings.write_parquet(staging / FINDINGS_PARQUET, statistics=False)
    result.episodes.write_csv(staging / EPISODES_CSV, date_format="%Y-%m-%d")
    result.data.rejected.write_csv(staging / REJECTED_CSV)
    sequences(result).write_csv(staging / SEQUENCES_CSV)
    text = json.dumps(summary(result), indent=2, sort_keys=False, default=int)
    (staging / SUMMARY_JSON).write_text(text + "\n", encoding="utf-8")
    _swap_into_place(staging, out)
    return out


def _swap_into_place(staging: Path, out: Path) -> None:
    """Replace `out` with `staging`; the old outputs stay whole until the new ones are complete."""
    if out.exists():
        retired = out.with_name(f".{out.name}.old-{os.getpid()}")
        os.replace(out, retired)
        os.replace(staging, out)
        shutil.rmtree(retired, ignore_errors=True)
    else:
        os.replace(staging, out)
