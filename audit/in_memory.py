"""polars' in-memory engine, for the stages that work on small frames.

polars 2 picks the engine of a lazy query itself unless told ("auto"), and runs most of ours on
its streaming engine (inferred: naming the in-memory one changes their times). That suits the files'
read (audit.canonical, audit.records): bounded memory, parsing and checking overlapped. But after
the read the run works on small frames (the few per cent of episodes that need the full audit,
their findings, the report's samples), in hundreds of small queries, and there the streaming
engine's start-up costs more than the work. Measured in-process, best of 5, the same frames
on each engine: the report's render 0.300 -> 0.273 s (1M episodes) and 0.270 -> 0.229 s (200,000
spinal); the rules 0.194 -> 0.181 s (100,000) and 0.819 -> 0.774 s (spinal); the outputs
0.65 -> 0.61 s (1M); matching unchanged. The files' read is slower and bigger on the in-memory
engine, even with the batches' own queries left streaming (1M CSV rows: 2.5 -> 3.1 s,
1.16 -> 1.72 GB), so it stays on polars' default.
"""

from __future__ import annotations

import polars as pl


def in_memory() -> pl.Config:
    """A context in which `collect()` runs on the in-memory engine (an explicit `engine=` still
    wins). polars' configuration is process-wide: threads started inside it use it too."""
    return pl.Config(engine_affinity="in-memory")
