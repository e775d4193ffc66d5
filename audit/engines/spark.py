"""`--engine spark`: the same audit on Apache Spark, next to where national HES lives.

Spark only moves rows; all audit logic is `audit.unit.audit_rows`, run once per partition:

    per input:  read Parquet / table / JDBC, the plan's columns as text, plus the source row
                -> mapInArrow(prepare): canonical names and the partition key, in polars
    union       -> repartition(P, key): every copy of an episode id meets in one partition
                -> mapInArrow(audit): audit_rows over the whole partition, one union frame
                -> written once, by kind; then findings/episodes (by provider), rejected,
                   sequences as Parquet datasets; counts collected and reduced to summary.json

Why it is correct (scale-out.md): the key is the canonical stage's own polars strip (Spark's
`trim` is not polars' `strip_chars`, P8); without the shuffle a cross-file duplicate goes unseen
(P7); batches cut across episodes, so a partition is audited whole (P6); outgoing Arrow tables
are cast to the declared schema (no unsigned ints, P5). Only the DataFrame API is used (no RDD,
no sparkContext), so the code runs on classic Spark, Spark Connect and Databricks
shared/serverless compute (P14). Console and logs carry counts and paths only.
"""

from __future__ import annotations

import logging
import math
import os
import sys
from collections.abc import Iterator
from dataclasses import dataclass, replace
from datetime import datetime, timezone
from pathlib import Path

import polars as pl

from audit import history, load, unit
from audit.engines import publish
from audit.catalogue import Catalogue
from audit.config import Settings
from audit.errors import UserError
from audit.ingest import SOURCE_LINE, SOURCE_ROW, read_manifest
from audit.layouts import load_mapping, plan_for
from audit.opcs import load_code_list

log = logging.getLogger(__name__)

KIND = publish.KIND
KINDS = ("findings", "episodes", "rejected", "sequences", "carried", "counts", "episode_ids")
CARRIED = publish.CARRIED
RUNS = publish.RUNS
EPISODES_PER_PARTITION = 500_000  # one Python worker stays around 1-2 GB (scale-out.md P11)

# Sensible defaults for a session nice-audit builds itself; platform sessions are left alone.
SESSION_DEFAULTS = {
    "spark.ui.showConsoleProgress": "false",  # the console carries counts and paths only
    "spark.sql.execution.arrow.maxRecordsPerBatch": "100000",  # fewer, larger Arrow batches
    # Spark's own logging is off: failed tasks are logged with tracebacks that can quote episode
    # values (never on the console); nice-audit reports failures itself (exit 3).
    "spark.driver.extraJavaOptions": f"-Dlog4j2.configurationFile={Path(__file__).with_name('log4j2.properties').as_uri()}",
}


# --- Types: polars frames out, exactly the declared Spark schema --------------------------------


def _spark_type(dtype: pl.DataType) -> str:
    if dtype in (pl.String, pl.Categorical) or isinstance(dtype, pl.Enum):
        return "string"
    if dtype == pl.Int32:
        return "int"
    if dtype in (pl.Int8, pl.Int16, pl.Int64, pl.UInt8, pl.UInt16, pl.UInt32):
        return "bigint"  # Spark has no unsigned types (P5)
    if dtype == pl.Date:
        return "date"
    if dtype == pl.Boolean:
        return "boolean"
    if dtype == pl.Float64:
        return "double"
    if dtype == pl.Null:
        return "string"
    raise TypeError(f"no Spark type for polars {dtype}")


_POLARS_FOR = {"string": pl.String, "int": pl.Int32, "bigint": pl.Int64, "date": pl.Date,
               "boolean": pl.Boolean, "double": pl.Float64}


@dataclass(frozen=True)
class UnionSchema:
    """One schema holding every kind of result, so one Spark pass produces all of them."""

    columns: tuple[tuple[str, str], ...]  # (name, Spark type), in order; KIND first
    kinds: dict  # kind -> its own column names

    @property
    def ddl(self) -> str:
        return ", ".join(f"`{name}` {kind}" for name, kind in self.columns)

    def polars(self) -> dict[str, pl.DataType]:
        return {name: _POLARS_FOR[kind] for name, kind in self.columns}

    def arrow(self):
        import pyarrow as pa

        types = {"string": pa.string(), "int": pa.int32(), "bigint": pa.int64(), "date": pa.date32(),
                 "boolean": pa.bool_(), "double": pa.float64()}
        return pa.schema([pa.field(name, types[kind]) for name, kind in self.columns])


def _frames(part: unit.PartitionResult) -> dict[str, pl.DataFrame]:
    frames = {kind: getattr(part, kind) for kind in KINDS}
    carried = frames["carried"]
    if carried.width == 1:  # the mapping carries nothing: no need to ship every episode id
        carried = carried.clear()
    frames["carried"] = carried.rename({c: CARRIED + c for c in carried.columns if c != "episode_id"})
    return frames


def union_schema(ctx: unit.AuditContext, episode_ids: bool = False) -> UnionSchema:
    """Derived from the unit's own (empty) result, so it can never drift from the stages.
    `episode_ids`: partitions also hand back every accepted episode id (one narrow row per
    episode), which only the history comparison needs."""
    empty = pl.concat([pl.DataFrame(schema=unit.canonical_schema(e)) for e in ctx.exports], how="diagonal")
    columns: dict[str, str] = {KIND: "string"}
    kinds = {}
    for kind, frame in _frames(unit.audit_rows(empty, ctx)).items():
        if kind == "episode_ids" and not episode_ids:
            continue
        kinds[kind] = tuple(frame.columns)
        for name, dtype in frame.schema.items():
            spark = _spark_type(dtype)
            if columns.setdefault(name, spark) != spark:
                raise TypeError(f"column {name} has two types in the results: {columns[name]}, {spark}")
    return UnionSchema(tuple(columns.items()), kinds)


def to_union(part: unit.PartitionResult, schema: UnionSchema):
    """One Arrow table of every result frame, cast to the declared schema."""
    typed = schema.polars()
    frames = [frame.with_columns(pl.lit(kind).alias(KIND)) for kind, frame in _frames(part).items()
              if frame.height and kind in schema.kinds]
    if not frames:
        return schema.arrow().empty_table()
    joined = pl.concat(frames, how="diagonal_relaxed")
    table = joined.select(
        (pl.col(c) if c in joined.columns else pl.lit(None)).cast(t).alias(c) for c, t in typed.items()
    ).to_arrow()
    return table.cast(schema.arrow())


# --- Inputs -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Source:
    """One input: its facts as an Export (path = the name findings carry) and how Spark reads it."""

    export: load.Export
    kind: str  # "parquet" | "table" | "jdbc"
    location: str  # Parquet path, table name or JDBC table
    row_column: str | None = None  # a stored source row (ingested files); else Parquet's row index
    line_column: str | None = None  # the original export's line of the row (ingested files)


def _parquet_sources(settings: Settings) -> list[Source]:
    mapping = load_mapping(settings.mapping) if settings.mapping else None
    sources = []
    for given in settings.inputs:
        manifest = read_manifest(given) if given.is_dir() else None
        if manifest is not None:
            for entry in manifest["files"]:
                # Findings and rejected rows name the export the trust sent, not our copy.
                path = given / entry["parquet"]
                try:
                    stored = pl.read_parquet_schema(path)
                    header = [c for c in stored if c not in (SOURCE_ROW, SOURCE_LINE)]
                except load.READ_ERRORS:
                    raise UserError(f"{path}: cannot be read as Parquet (re-run nice-audit ingest)") from None
                plan = plan_for(path, header, settings.layout, mapping)
                export = load.Export(Path(entry["source"]), plan, entry["sha256"], entry["encoding"], None)
                sources.append(Source(export, "parquet", str(path), SOURCE_ROW,
                                      SOURCE_LINE if SOURCE_LINE in stored else None))
            continue
        for path in load.expand_inputs([given]):
            if not load.is_parquet(path):
                raise UserError(f"{path}: --engine spark reads Parquet only; convert exports first with "
                                f"'nice-audit ingest EXPORT... --to DIR' (nice-audit's own CSV reader)")
            export = load.open_export(path, layout=settings.layout, mapping=mapping, encoding="auto")
            row_column = SOURCE_ROW if SOURCE_ROW in export.plan.source_columns() else None
            sources.append(Source(replace(export, source=None), "parquet", str(path), row_column))
    return sources


def _table_sources(spark, settings: Settings) -> list[Source]:
    mapping = load_mapping(settings.mapping) if settings.mapping else None
    sources = []
    for name in settings.tables:
        try:
            header = spark.read.table(name).columns
        except Exception:  # AnalysisException and its Connect twin: the name, never the data
            raise UserError(f"{name}: no such table or view") from None
        plan = plan_for(Path(name), header, settings.layout, mapping)
        export = load.Export(Path(name), plan, digest="", encoding="table", source=None)
        sources.append(Source(export, "table", name))
    if settings.jdbc_url:
        if not settings.jdbc_table:
            raise UserError("--jdbc-url needs --jdbc-table")
        header = _jdbc(spark, settings).columns
        plan = plan_for(Path(settings.jdbc_table), header, settings.layout, mapping)
        export = load.Export(Path(settings.jdbc_table), plan, digest="", encoding="jdbc", source=None)
        sources.append(Source(export, "jdbc", settings.jdbc_table))
    return sources


def _jdbc(spark, settings: Settings):
    reader = spark.read.format("jdbc").option("url", settings.jdbc_url).option("dbtable", settings.jdbc_table)
    for pair in settings.spark_conf:
        key, _, value = pair.partition("=")
        if key.startswith("jdbc."):  # driver options such as jdbc.user, jdbc.fetchsize
            reader = reader.option(key.removeprefix("jdbc."), value)
    return reader.load()


def _read(spark, source: Source, settings: Settings):
    """The plan's columns as text, plus source_row (1-based; stored, Parquet's index, or an id)."""
    from pyspark.sql import functions as F

    if source.kind == "parquet":
        frame = spark.read.parquet(source.location)
        if source.row_column:
            row = F.col(f"`{source.row_column}`").cast("bigint")
        else:
            row = F.col("_metadata.row_index") + 1  # 0-based per file, right across splits (P16)
    else:
        frame = spark.read.table(source.location) if source.kind == "table" else _jdbc(spark, settings)
        # Tables have no row numbers: a unique, increasing id (not consecutive) names the row.
        row = F.monotonically_increasing_id() + 1
    line = F.col(f"`{source.line_column}`").cast("bigint") if source.line_column else F.lit(None).cast("bigint")
    columns = [c for c in source.export.plan.source_columns() if c not in (SOURCE_ROW, SOURCE_LINE)]
    return frame.select(*[_as_text(frame, c) for c in columns], row.alias("_source_row"), line.alias("_source_line"))


def _as_text(frame, column: str):
    """A column as text. A timestamp (an instant, TimestampType) with its offset, which Spark's cast
    leaves out (it writes the session's wall time): audit.dates.parse_date dates it by its day in
    England, as the local engine does a Parquet timestamp with a time zone, whatever the session's
    time zone (UTC on Databricks)."""
    from pyspark.sql import functions as F
    from pyspark.sql.types import TimestampType

    value = F.col(f"`{column}`")
    if isinstance(frame.schema[column].dataType, TimestampType):
        return F.date_format(value, "yyyy-MM-dd'T'HH:mm:ssXXX").alias(column)
    return value.cast("string").alias(column)


def _prepare(export: load.Export, schema: dict[str, pl.DataType]):
    """Map side: nice-audit's canonical names and the partition key, computed with polars."""
    ordered = list(schema)

    def prepare(batches: Iterator) -> Iterator:
        from audit.load import _canonical_names

        for batch in batches:
            frame = pl.from_arrow(batch)
            canonical = (
                _canonical_names(frame.drop("_source_row", "_source_line").lazy(), export.plan, export.path).collect()
                .with_columns(source_row=frame["_source_row"].cast(pl.Int64),
                              source_line=frame["_source_line"].cast(pl.Int64))
            )
            out = canonical.select(
                (pl.col(c) if c in canonical.columns else pl.lit(None)).cast(t).alias(c) for c, t in schema.items()
                if c != "_key"
            ).with_columns(unit.partition_key(pl.col("episode_id")).alias("_key"))
            yield from out.select(ordered).to_arrow().cast(_arrow(schema)).to_batches()

    return prepare


def _arrow(schema: dict[str, pl.DataType]):
    import pyarrow as pa

    return pa.schema([pa.field(c, pa.int64() if t == pl.Int64 else pa.string()) for c, t in schema.items()])


def _audit(ctx: unit.AuditContext, schema: UnionSchema):
    """Reduce side: one whole partition (every row of its episodes) through audit_rows."""

    def audit(batches: Iterator) -> Iterator:
        frames = [pl.from_arrow(b) for b in batches]
        rows = pl.concat([f for f in frames if f.height], how="vertical_relaxed") if any(f.height for f in frames) else None
        if rows is None:
            return
        yield from to_union(unit.audit_rows(rows.drop("_key"), ctx), schema).to_batches()

    return audit


# --- Session ------------------------------------------------------------------------------------


def session(settings: Settings):
    """The active session inside a platform (Databricks, a notebook); else Spark Connect when
    SPARK_REMOTE is set; else local[*] (or SPARK_MASTER)."""
    try:
        from pyspark.sql import SparkSession
    except ImportError:
        raise UserError("--engine spark needs pyspark: pip install 'nice-audit[spark]' (and a Java runtime)") from None
    # py4j logs "Closing down clientserver connection" at INFO from a finaliser at interpreter exit,
    # after stderr may be closed: a quiet run prints nothing it does not need to.
    logging.getLogger("py4j").setLevel(logging.WARNING)
    active = SparkSession.getActiveSession()
    if active is not None:
        return active
    conf = {**SESSION_DEFAULTS, **dict(p.partition("=")[::2] for p in settings.spark_conf
                                       if not p.startswith("jdbc."))}
    # One polars thread per task CPU: Spark runs a Python worker per task (P10).
    conf.setdefault("spark.executorEnv.POLARS_MAX_THREADS", conf.get("spark.task.cpus", "1"))
    # Workers must run this Python, with nice-audit installed (P1, P4); a cluster's own setting wins.
    os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
    if os.environ.get("DATABRICKS_RUNTIME_VERSION"):  # a Databricks job: the platform's session
        return SparkSession.builder.getOrCreate()
    if os.environ.get("SPARK_REMOTE"):
        builder = SparkSession.builder.remote(os.environ["SPARK_REMOTE"])
        conf = {}  # static confs cannot be set from a Connect client (P14)
    else:
        builder = SparkSession.builder.master(os.environ.get("SPARK_MASTER", "local[*]")).appName("nice-audit")
        conf.setdefault("spark.ui.enabled", "false")
    for key, value in conf.items():
        builder = builder.config(key, value)
    return builder.getOrCreate()


# --- The run ------------------------------------------------------------------------------------


SparkOutcome = publish.SparkOutcome


def context(settings: Settings, catalogue: Catalogue, started: datetime, sources: list[Source]) -> unit.AuditContext:
    code_list = load_code_list(settings.opcs_codes) if settings.opcs_codes else None
    return unit.AuditContext(catalogue, settings.as_of or started.date(), started,
                             tuple(s.export for s in sources), code_list)


def audited(spark, settings: Settings, ctx: unit.AuditContext, sources: list[Source], schema: UnionSchema):
    """The union frame of every partition's results (lazy: nothing runs until it is written)."""
    canonical: dict[str, pl.DataType] = {}
    for export in ctx.exports:
        canonical.update(unit.canonical_schema(export))
    canonical.setdefault("source_line", pl.Int64)  # the export's line, where ingest kept it
    canonical["_key"] = pl.String
    ddl = ", ".join(f"`{c}` {'bigint' if t == pl.Int64 else 'string'}" for c, t in canonical.items())
    raw = [_read(spark, source, settings) for source in sources]
    # Counted before the Python step: for Parquet a count reads only the footers.
    partitions = settings.partitions or max(1, math.ceil(sum(r.count() for r in raw) / EPISODES_PER_PARTITION))
    keyed = None
    for source, frame in zip(sources, raw):
        part = frame.mapInArrow(_prepare(source.export, canonical), ddl)
        keyed = part if keyed is None else keyed.unionByName(part)
    return keyed.repartition(partitions, "_key").mapInArrow(_audit(ctx.portable(), schema), schema.ddl)


def check_inputs(settings: Settings) -> list[Source]:
    """The file inputs, checked before a JVM is started (a CSV export is refused at once)."""
    if settings.out is None:
        raise UserError("no output folder: give --out DIR (or set 'out' in nice-audit.toml)")
    if not settings.inputs and not settings.tables and not settings.jdbc_url:
        raise UserError("no inputs: name Parquet files or folders, --table or --jdbc-url "
                        "(or set 'inputs' / 'tables' in nice-audit.toml)")
    return _parquet_sources(settings)


def run(spark, settings: Settings, catalogue: Catalogue | None = None, started: datetime | None = None,
        files: list[Source] | None = None) -> SparkOutcome:
    """The Python API for notebooks and wheel jobs: audit `settings.inputs` / `settings.tables`
    into `settings.out`, exactly as `nice-audit run --engine spark` does."""
    from audit.catalogue import load_catalogue

    catalogue = catalogue or load_catalogue(list(settings.catalogue))
    started = started or datetime.now(timezone.utc)
    sources = (check_inputs(settings) if files is None else files) + _table_sources(spark, settings)
    if not sources:
        raise UserError("no inputs: name Parquet files or folders, --table or --jdbc-url")
    ctx = context(settings, catalogue, started, sources)
    schema = union_schema(ctx, episode_ids=settings.history is not None)
    out = Path(settings.out)
    run_id = history.new_run_id(started)
    folder = out / RUNS / run_id
    staging = folder / "staging"  # Spark skips folders whose names start with _ or .
    audited(spark, settings, ctx, sources, schema).write.mode("overwrite").partitionBy(KIND).parquet(str(staging))
    outcome = publish.finish(spark, settings, ctx, schema, staging, folder, run_id)
    log.info("spark run %s: %s findings", run_id, outcome.summary["totals"]["findings"])
    return outcome
