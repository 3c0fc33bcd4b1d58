"""docs/architecture.md's module table lists every module with its docstring's first sentence,
so the map stays true to the code (`python -m tests.test_architecture_doc` rewrites the table)."""

from __future__ import annotations

import ast
import re
import sys

from tests.conftest import PROJECT_ROOT

PACKAGE = PROJECT_ROOT / "src" / "xai_kedro"
DOC = PROJECT_ROOT / "docs" / "architecture.md"
HEADER = "| module | what it is |\n|---|---|\n"


def first_sentence(text: str) -> str:
    flat = " ".join(text.split())
    match = re.match(r"(.+?[.?!])(\s|$)", flat)
    return (match.group(1) if match else flat).replace("|", "\\|")


def module_rows() -> list[str]:
    rows = []
    for path in sorted(PACKAGE.rglob("*.py")):
        doc = ast.get_docstring(ast.parse(path.read_text())) or ""
        rows.append(f"| `{path.relative_to(PACKAGE).as_posix()}` | {first_sentence(doc)} |")
    return rows


def documented_table() -> str:
    text = DOC.read_text()
    start = text.index(HEADER) + len(HEADER)
    end = text.find("\n\n", start)
    return text[start : end if end != -1 else len(text)].strip("\n")


def test_every_module_is_documented_with_its_docstring():
    expected = module_rows()
    missing_docstrings = [row for row in expected if row.endswith("|  |")]
    assert not missing_docstrings, f"modules without a docstring: {missing_docstrings}"
    assert documented_table().splitlines() == expected, (
        "docs/architecture.md's module table is stale: run `python -m tests.test_architecture_doc`"
    )


if __name__ == "__main__" and sys.argv[1:] != ["--check"]:
    text = DOC.read_text()
    start = text.index(HEADER) + len(HEADER)
    end = text.find("\n\n", start)
    end = len(text) if end == -1 else end
    DOC.write_text(text[:start] + "\n".join(module_rows()) + text[end:])
