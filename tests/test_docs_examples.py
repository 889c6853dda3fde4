"""Every ```python block of the user guide (docs/*.md) and of README.md runs, on asyncio.

A block that is a fragment (it cannot run on its own) is marked with ``<!-- no-run -->`` on
the line just before its opening fence; such blocks are only compiled. Every other block is
executed as a script of its own (``__name__ == "__main__"``), in a fresh namespace; the
guide's examples end with ``anyio.run(main)``, whose default backend is asyncio.
"""

from __future__ import annotations

import contextlib
import io
import re
from pathlib import Path

import attrs
import pytest

ROOT = Path(__file__).resolve().parent.parent
SKIP_MARKER = "<!-- no-run -->"
_FENCE = re.compile(r"^(?P<indent>[ \t]*)```(?P<info>[^\n`]*)$")


@attrs.frozen
class Example:
    """One ```python block: where it is, its code, and whether it is a fragment."""

    path: Path
    line: int
    code: str
    fragment: bool

    @property
    def id(self) -> str:
        return f"{self.path.relative_to(ROOT)}:{self.line}"


def extract(path: Path) -> list[Example]:
    """The ```python blocks of one Markdown file, in order."""
    lines = path.read_text(encoding="utf-8").splitlines()
    examples: list[Example] = []
    i = 0
    while i < len(lines):
        opening = _FENCE.match(lines[i])
        if opening is None:
            i += 1
            continue
        info = opening["info"].strip().split()
        indent = opening["indent"]
        start = i
        body: list[str] = []
        i += 1
        while i < len(lines) and lines[i].strip() != "```":
            body.append(lines[i].removeprefix(indent))
            i += 1
        i += 1  # the closing fence
        if info and info[0] in ("python", "py"):
            previous = next((line.strip() for line in reversed(lines[:start]) if line.strip()), "")
            examples.append(Example(path, start + 1, "\n".join(body) + "\n", previous == SKIP_MARKER))
    return examples


def _all_examples() -> list[Example]:
    paths = [*sorted((ROOT / "docs").glob("*.md")), ROOT / "README.md"]
    return [example for path in paths for example in extract(path)]


EXAMPLES = _all_examples()


def test_the_guide_has_examples() -> None:
    """The extractor finds the guide's examples, and most of them run."""
    assert len(EXAMPLES) >= 10
    fragments = [example for example in EXAMPLES if example.fragment]
    assert len(fragments) <= len(EXAMPLES) // 3, [example.id for example in fragments]


def test_extract_honours_the_skip_marker(tmp_path: Path) -> None:
    """A block right after the marker is a fragment; the next one is not."""
    page = tmp_path / "page.md"
    page.write_text(
        "# t\n\n<!-- no-run -->\n```python\nx = 1\n```\n\ntext\n\n```python\ny = 2\n```\n\n```sh\nls\n```\n"
    )
    found = extract(page)
    assert [(e.line, e.code, e.fragment) for e in found] == [(4, "x = 1\n", True), (10, "y = 2\n", False)]


@pytest.mark.parametrize("example", EXAMPLES, ids=lambda example: example.id)
def test_example_runs(example: Example) -> None:
    """The block compiles, and (unless it is a marked fragment) runs to the end."""
    code = compile(example.code, example.id, "exec")
    if example.fragment:
        return
    namespace: dict[str, object] = {"__name__": "__main__"}
    output = io.StringIO()
    with contextlib.redirect_stdout(output):
        exec(code, namespace)
