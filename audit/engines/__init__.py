"""Engines that move rows to `audit.unit.audit_rows`: the single machine (audit.pipeline) and
Apache Spark (audit.engines.spark). Engines hold no audit logic."""
