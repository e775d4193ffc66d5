"""The `nice-audit` command's entry point: `--version` answered before the command line is built.

Schedulers and health checks call `nice-audit --version` often; building the typer app costs more
than the rest of Python's start (0.12 of 0.2 s on the standard machine, issue 15). Everything
else, `--version` among other options included, goes to `audit.cli`, which prints the same line.
"""

import sys


def main() -> None:
    if sys.argv[1:] == ["--version"]:
        from audit import __version__

        print(f"nice-audit {__version__}")
        return
    from audit.cli import main as command_line

    command_line()
