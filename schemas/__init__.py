"""pandera schemas: the data contracts between pipeline stages.

- `inputs`: what a row of each input shape must hold to be audited at all (failures become
  rejected rows with a reason, never exceptions).
- `canonical`: the procedures and episodes frames every later stage relies on.
- `outputs`: findings and episode statuses, the contract for the report and for scripts
  (and the one list of severities and statuses).
"""


def polars_schema(schema) -> dict:
    """{column: polars dtype} of a pandera schema, e.g. to build its empty frame."""
    return {name: column.dtype.type for name, column in schema.columns.items()}
