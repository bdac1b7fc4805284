#!/usr/bin/env python3
"""Checks that docs/ARCHITECTURE.md names every source file, so the map cannot fall behind.

A file counts as named when its path from the repository root appears in the document, or
when it is named relative to a directory that its section's heading gives in backticks
("## Core modules (`core/src/`)" then "`kernels/x86.rs`"), or that its paragraph or list
item names (in backticks, "`capi/src/`", or as the directory of another path there,
"`fuzz/harness/examples/replay.rs`, `write_seeds.rs`").
Source files are the tracked files ending in .rs, .c, .h, .sh or .py, and `.ci/run`.
Prints the files that are not named and exits 1 if there are any.
"""

import pathlib
import re
import subprocess
import sys

SOURCE = re.compile(r"\.(rs|c|h|sh|py)$")
PATH_TOKEN = re.compile(r"[A-Za-z0-9_.\-/]+")
HEADING = re.compile(r"^#+ ")
DIRECTORY = re.compile(r"`([A-Za-z0-9_.\-/]+/)`")


def source_files(root):
    listed = subprocess.run(
        ["git", "ls-files"], cwd=root, check=True, capture_output=True, text=True
    ).stdout.splitlines()
    return [f for f in listed if SOURCE.search(f) or f == ".ci/run"]


def paragraphs(document):
    """(heading directories, paragraph text) for each paragraph or list item."""
    heading_dirs, lines = [], []
    for line in document.splitlines() + [""]:
        starts_item = line.startswith("- ") or HEADING.match(line) or not line.strip()
        if starts_item and lines:
            yield heading_dirs, " ".join(lines)
            lines = []
        if HEADING.match(line):
            heading_dirs = DIRECTORY.findall(line)
        elif line.strip():
            lines.append(line)


def named_paths(document):
    """Every path the document names, with the directories in scope prepended."""
    named = set()
    for heading_dirs, text in paragraphs(document):
        tokens = [t.rstrip(".") for t in PATH_TOKEN.findall(text)]
        bases = {""} | set(heading_dirs) | set(DIRECTORY.findall(text))
        bases |= {t.rsplit("/", 1)[0] + "/" for t in tokens if "/" in t}
        for token in tokens:
            for base in bases:
                named.add(base + token)
    return named


def main():
    root = pathlib.Path(__file__).resolve().parent.parent
    document = (root / "docs" / "ARCHITECTURE.md").read_text(encoding="utf-8")
    named = named_paths(document)
    missing = [f for f in source_files(root) if f not in named]
    if missing:
        print("docs/ARCHITECTURE.md does not name these source files:")
        for f in missing:
            print(f"  {f}")
        return 1
    print(f"docs/ARCHITECTURE.md names all {len(source_files(root))} source files")
    return 0


if __name__ == "__main__":
    sys.exit(main())
