"""Write docs/cli.md from the CLI's own --help output: python scripts/cli_reference.py"""

from pathlib import Path

from zoo.cli import reference_markdown

target = Path(__file__).resolve().parent.parent / "docs" / "cli.md"
target.write_text(reference_markdown(), encoding="utf-8")
print(f"wrote {target}")
