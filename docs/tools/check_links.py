"""Check every relative link in README.md and docs/**/*.md: the target file exists and any #anchor is a heading.

Usage (from the repository root): python docs/tools/check_links.py [--pending FILE ...]
--pending names files that are expected but not written yet (reported, not failed). Exit status 1 on a broken link.
Links inside fenced code blocks and inline code are ignored; http(s), mailto and other URL schemes are skipped.
Anchors follow GitHub's rule: the heading lower-cased, punctuation other than '-' and '_' dropped, spaces to '-',
and '-1', '-2', ... appended to repeated headings.
"""

from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path
from urllib.parse import unquote

LINK = re.compile(r"!?\[(?:[^\[\]]|\[[^\]]*\])*\]\(\s*<?([^)\s>]+)>?(?:\s+\"[^\"]*\")?\s*\)")
FENCE = re.compile(r"^\s*(```|~~~)")
HEADING = re.compile(r"^(#{1,6})\s+(.*?)\s*#*\s*$")
CODE_SPAN = re.compile(r"(`+)(.+?)\1")


def prose_lines(text: str):
    """(line number, line without inline code) of every line outside fenced code blocks."""
    in_fence = False
    for number, line in enumerate(text.splitlines(), 1):
        if FENCE.match(line):
            in_fence = not in_fence
            continue
        if not in_fence:
            yield number, line


def slug(heading: str) -> str:
    text = re.sub(r"!?\[([^\]]*)\]\([^)]*\)", r"\1", heading)  # links keep their text
    text = text.replace("`", "").strip().lower()
    text = re.sub(r"[^\w\- ]", "", text)
    return text.replace(" ", "-")


def anchors(path: Path) -> set[str]:
    seen: dict[str, int] = {}
    out = set()
    for _, line in prose_lines(path.read_text(encoding="utf-8")):
        match = HEADING.match(line)
        if not match:
            continue
        base = slug(match.group(2))
        count = seen.get(base, 0)
        seen[base] = count + 1
        out.add(base if count == 0 else f"{base}-{count}")
    return out


def check(root: Path, pending: set[str]) -> tuple[int, list[str], list[str]]:
    files = [root / "README.md", *sorted((root / "docs").rglob("*.md"))]
    errors, waiting, checked = [], [], 0
    cache: dict[Path, set[str]] = {}
    for md in files:
        if not md.exists():
            continue
        for number, line in prose_lines(md.read_text(encoding="utf-8")):
            for target in LINK.findall(CODE_SPAN.sub("", line)):
                if re.match(r"^[a-zA-Z][a-zA-Z0-9+.-]*:", target):
                    continue
                checked += 1
                where = f"{md.relative_to(root)}:{number}: {target}"
                path_part, _, anchor = target.partition("#")
                dest = (md.parent / unquote(path_part)).resolve() if path_part else md.resolve()
                if not dest.exists():
                    rel = dest.relative_to(root.resolve()).as_posix() if dest.is_relative_to(root.resolve()) else str(dest)
                    (waiting if rel in pending else errors).append(where + ("  (pending)" if rel in pending else "  (no such file)"))
                    continue
                if anchor and dest.suffix == ".md":
                    if dest not in cache:
                        cache[dest] = anchors(dest)
                    if unquote(anchor) not in cache[dest]:
                        errors.append(where + "  (no such heading)")
    return checked, errors, waiting


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--root", type=Path, default=Path(__file__).resolve().parents[2])
    parser.add_argument("--pending", nargs="*", default=[], help="files expected but not written yet")
    args = parser.parse_args()
    checked, errors, waiting = check(args.root, set(args.pending))
    for line in waiting:
        print("pending:", line)
    for line in errors:
        print("broken:", line)
    print(f"{checked} relative links checked, {len(errors)} broken, {len(waiting)} pending")
    return 1 if errors else 0


if __name__ == "__main__":
    sys.exit(main())
