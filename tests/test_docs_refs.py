"""Docs that match the repository: every repository path and every `§` section that code, tests
and docs cite exists, and nothing cites the issue tracker, which is not in the repository (a
citation of it tells a reader nothing; the reason is written instead).

A path is a word with a slash whose first folder is one of the repository's (`callbacks/…`,
`docs/…`, `tests/…`) or one of a package's (`rules/shop.py` from inside callbacks/, `static/…`
from inside sandbox/), or a bare `*.py` / `*.md` name. It resolves against the repository root,
callbacks/, sandbox/ and the folders above the citing file. URLs, URL paths (`/api/…`), globs
and placeholders (`*`, `{…}`, `<…>`, `…`) are not paths.

A section is `§N` or `§N.M`. It points into the document named just before it (`docs/klarna.md
§6`, `[klarna.md §5]`, `design §5.7`); further numbers of the same citation (`§7.1, §8`,
`§5.1–§5.6`, `§4 (the shop file) and §5`) point into the same document. A bare `§N` points into
the citing document itself when that is docs/design.md or docs/klarna.md, and into
docs/design.md everywhere else (README: "its sections are cited as §n in the code"). Sections
are the numbered headings, `## 5. Market rules` and `### 5.7 Country change`. `RFC 9110 §13.1.2`
cites the RFC.
"""
from __future__ import annotations

import re
import sys
from functools import cache
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
SKIP = {".git", ".venv", "instance", "node_modules", "__pycache__", ".pytest_cache", ".hypothesis",
        ".mypy_cache", ".ruff_cache", "build", "dist"}
SUFFIXES = {".py", ".md", ".sh", ".toml", ".txt", ".cfg", ".ini", ".js", ".mjs", ".html", ".css", ".json",
            ".mako", ".po", ".pot"}
NAMED = {".ci/run", "Procfile", ".gitignore"}
# Paths cited on purpose that are not in the repository, each with the reason.
ALLOWED_PATHS = {
    # written on branch webdocs: remove this entry when that branch is merged
    "docs/webhooks.md": "written on branch webdocs",
    "sandbox/sandbox": "the sandbox's user name and password (user/password), not a path",
    "klarna/kco_rest_java": "Klarna's Java SDK on GitHub, cited with its link (docs/klarna.md sources)",
    "tests/test_x.py": "CONTRIBUTING.md's placeholder for the test file of a change",
    "bench/last-run.md": "written by bench/run.py (ignored by git)",
    "bench/last-run.json": "written by bench/run.py (ignored by git)",
    "bench/profiles/": "written by bench/run.py --profile (ignored by git)",
    "OUT.md": "bench/run.py's --out placeholder: the file the user names",
    "test_counting.py": "the test file tests/reliability/test_figures.py writes into its tmp directory",
}

URL = re.compile(r"\b[a-z][a-z0-9+.-]*://[^\s)\]>`'\"]*|\bmailto:\S+|<https?:[^>]*>")
# A path-like word: folders and a last part, not glued to a word, a dot, a slash or a colon before it.
PATHLIKE = re.compile(r"(?<![\w./:@~$-])((?:\.ci|[A-Za-z_][\w-]*)(?:/[\w.-]+)+/?)")
BARE = re.compile(r"(?<![\w./:@~$-])([A-Za-z_][\w-]*(?:\.[\w-]+)*\.(?:py|md))(?![\w/])")
SECTION = re.compile(r"§(\d+(?:\.\d+)*)")
ISSUE = re.compile(r"\bissues?\s+#?\d", re.I)


def cited_files() -> list[tuple[str, str]]:
    found = []
    for path in sorted(ROOT.rglob("*")):
        rel = path.relative_to(ROOT)
        if SKIP & set(rel.parts) or not path.is_file() or path.suffix == ".egg-info":
            continue
        if path.suffix in SUFFIXES or rel.as_posix() in NAMED:
            found.append((rel.as_posix(), path.read_text(encoding="utf-8", errors="replace")))
    return found


@cache
def files() -> tuple[tuple[str, str], ...]:
    return tuple(cited_files())


@cache
def basenames() -> frozenset[str]:
    return frozenset(Path(rel).name for rel, _ in files()) | {p.name for p in ROOT.iterdir()}


@cache
def first_folders() -> frozenset[str]:
    """Folders a cited path may start with: the repository's, and its packages' (cited from inside them)."""
    top = {p.name for p in ROOT.iterdir() if p.is_dir() and p.name not in SKIP}
    inner = {p.name for base in ("callbacks", "sandbox") for p in (ROOT / base).iterdir()
             if p.is_dir() and p.name not in SKIP}
    return frozenset(top | inner | {".ci"})


def resolves(citing: str, path: str) -> bool:
    """`path` from the root, callbacks/, sandbox/, a folder above the citing file or any
    templates/ folder (Flask's render_template looks in every blueprint's); `pkg/module.name` is
    a name in pkg/module.py, and the name must be in it."""
    path = path.rstrip("/")
    bases = [ROOT, ROOT / "callbacks", ROOT / "sandbox", *(ROOT / citing).parents,
             *ROOT.glob("callbacks/*/templates"), ROOT / "sandbox" / "templates"]
    bases = [base for base in bases if ROOT in (base, *base.parents)]
    if any((base / path).exists() for base in bases):
        return True
    folder, _, last = path.rpartition("/")
    module, dot, name = last.partition(".")
    if not dot or not folder:
        return False
    for base in bases:
        source = base / folder / f"{module}.py"
        if source.is_file() and re.search(rf"\b{re.escape(name.split('.')[0])}\b", source.read_text(encoding="utf-8")):
            return True
    return False


def path_citations(rel: str, text: str):
    text = URL.sub(" ", text)
    for match in PATHLIKE.finditer(text):
        word = match.group(1)
        end = text[match.end():match.end() + 1]
        if any(c in word for c in "*{}<>…") or end in ("*", "{", "<", "…"):
            continue  # a glob or a placeholder
        word = re.sub(r"(?:::[\w\[\]-]+|:\d+)$", "", word).rstrip(".")  # test ids, line numbers, a full stop
        if word.split("/")[0] in first_folders():
            yield word
    for match in BARE.finditer(text):
        yield match.group(1)


SELF = "tests/test_docs_refs.py"  # its examples are the scanners' test inputs


def dangling_paths() -> list[str]:
    dangling = []
    for rel, text in files():
        if rel == SELF:
            continue
        for word in path_citations(rel, text):
            if word in ALLOWED_PATHS or word.rstrip("/") in ALLOWED_PATHS:
                continue
            ok = resolves(rel, word) if "/" in word else (
                word in basenames() or word.endswith(".py") and word[:-3] in sys.stdlib_module_names)
            if not ok:
                dangling.append(f"{rel}: {word}")
    return sorted(set(dangling))


@cache
def documents() -> dict[str, str]:
    """Names a citation may use for a document (`docs/klarna.md`, `klarna.md`, `klarna`) → its path."""
    names = {}
    for path in (ROOT / "docs").glob("*.md"):
        rel = path.relative_to(ROOT).as_posix()
        names.update({rel: rel, path.name: rel, path.stem: rel})
    for name in ("README.md", "BENCHMARKS.md", "CONTRIBUTING.md", "samples/README.md"):
        names[name] = name
    return names


@cache
def sections(doc: str) -> frozenset[str]:
    """The numbers of a document's numbered headings, `## 5. Market rules` → 5 and `### 5.7 …` →
    5.7, and of its numbered items, `- **5.8** quantity, …` (docs/klarna.md numbers its rules so)."""
    text = (ROOT / doc).read_text(encoding="utf-8")
    headings = re.findall(r"^#{1,6}\s+(\d+(?:\.\d+)*)\.?\s", text, re.M)
    items = re.findall(r"^\s*[-*]\s+\*\*(\d+(?:\.\d+)+)\*\*", text, re.M)
    return frozenset(headings + items)


DOC_NAME = "|".join(sorted((re.escape(n) for n in ("docs/design.md", "docs/klarna.md", "design.md", "klarna.md",
                                                    "design", "klarna")), key=len, reverse=True))
# The citation a § belongs to: a document (or an RFC) and the § numbers of the same citation.
CITED_DOC = re.compile(rf"(?:(?<![\w/])(?:docs/)?(?P<doc>[\w-]+\.md|{DOC_NAME})|(?P<rfc>\bRFC\s+\d+))\s+$")
CONTINUATION = re.compile(r"§\d+(?:\.\d+)*(?:\s*\([^()§]*\))?\s*(?:,|–|-|\band\b|\bor\b|&)\s*$")


def section_citations(rel: str, text: str):
    """(document or None for an RFC, number) for every § in the text."""
    home = rel if rel in ("docs/design.md", "docs/klarna.md") else "docs/design.md"
    for match in SECTION.finditer(text):
        start = match.start()
        # Walk back over earlier numbers of the same citation to the document it names.
        while (previous := CONTINUATION.search(text, 0, start)) is not None:
            start = previous.start()
        named = CITED_DOC.search(text, max(0, start - 80), start)
        if named and named.group("rfc"):
            continue
        doc = home
        if named:
            name = named.group("doc")
            doc = documents().get(name) or documents().get(f"docs/{name}") or name
        yield doc, match.group(1)


def dangling_sections() -> list[str]:
    dangling = []
    for rel, text in files():
        if rel == SELF:
            continue
        for doc, number in section_citations(rel, text):
            if not (ROOT / doc).is_file():
                dangling.append(f"{rel}: §{number} of {doc}, which is not in the repository")
            elif number not in sections(doc):
                dangling.append(f"{rel}: {doc} has no §{number}")
    return sorted(set(dangling))


def issue_lines(text: str):
    """(line number, line) of each line citing an issue of a tracker that is not linked."""
    for number, line in enumerate(text.splitlines(), 1):
        # Another project's tracker, cited with its link, is a source (docs/klarna.md §13).
        if ISSUE.search(line) and not re.search(r"https?://\S+/issues/\d+", line):
            yield number, line


def tracker_citations() -> list[str]:
    return [f"{rel}:{number}: {line.strip()[:100]}" for rel, text in files() for number, line in issue_lines(text)]


# -- the scanners find what they are meant to: a pattern that matched nothing would pass forever --

def test_the_path_scan_finds_paths_and_leaves_urls_globs_and_words_alone():
    text = ("see callbacks/rules/shop.py and `docs/klarna.md`, tests/test_store.py::test_x, config.py:12, "
            "https://example.com/docs/nothing.md, /api/sessions/s-1, callbacks/translations/*/LC_MESSAGES, "
            "SE/SEK and/or HTTP/1.1, rules/texts.py.")
    assert list(path_citations("callbacks/web/i18n.py", text)) == [
        "callbacks/rules/shop.py", "docs/klarna.md", "tests/test_store.py", "rules/texts.py", "config.py"]
    assert resolves("callbacks/web/i18n.py", "rules/texts.py")
    assert resolves("sandbox/snippet.py", "static/klarna-checkout.js")
    assert resolves("callbacks/webhooks/console.py", "support/replayed.html")  # a template
    assert resolves("docs/design.md", "klarna/schemas.LineObjects")  # a name in a module
    assert not resolves("docs/design.md", "klarna/schemas.NoSuchName")
    assert not resolves("gunicorn.conf.py", "callbacks/metrics.py")  # the file is callbacks/web/metrics.py


def test_the_section_scan_follows_a_citation_to_its_document():
    text = ("(docs/klarna.md §6), (docs/design.md §7.1, §8), [klarna.md §5], (design §5.7), §5.1–§5.6, "
            "docs/design.md §4 (the shop file) and §5, RFC 9110 §13.1.2, the state (§7.2)")
    assert list(section_citations("callbacks/x.py", text)) == [
        ("docs/klarna.md", "6"), ("docs/design.md", "7.1"), ("docs/design.md", "8"), ("docs/klarna.md", "5"),
        ("docs/design.md", "5.7"), ("docs/design.md", "5.1"), ("docs/design.md", "5.6"),
        ("docs/design.md", "4"), ("docs/design.md", "5"), ("docs/design.md", "7.2")]
    assert list(section_citations("docs/klarna.md", "the amount rules of §5"))[0] == ("docs/klarna.md", "5")
    assert {"5", "5.7", "7.4"} <= sections("docs/design.md") and {"0", "2.3", "13"} <= sections("docs/klarna.md")


def test_the_tracker_scan_finds_issue_numbers_but_not_linked_sources():
    word = "issue"  # built, so that this file passes its own scan and a grep of the tree
    text = (f"fixed in {word.title()} 12's second round\n({word} 10.2)\n{word}s 4 and 5\n"
            f"- **S38** `klarna/kco_rest_java` {word} 18: <https://github.com/klarna/kco_rest_java/issues/18>\n"
            f"browser.{word}(sid)\nan {word} with the cart")
    assert [number for number, _ in issue_lines(text)] == [1, 2, 3]


def test_the_scans_cover_code_tests_and_docs():
    scanned = {rel for rel, _ in files()}
    assert {"README.md", "docs/design.md", "callbacks/__init__.py", "tests/conftest.py", "bench/run.sh",
            "scripts/run.sh", ".ci/run", "callbacks/static/kco-sync.js"} <= scanned
    assert sum(1 for rel, text in files() for _ in section_citations(rel, text)) > 200
    assert sum(1 for rel, text in files() for _ in path_citations(rel, text)) > 500


# -- the repository ----------------------------------------------------------------------------

def test_every_cited_repository_path_exists():
    dangling = dangling_paths()
    assert dangling == [], "cite a file that exists, or add it to ALLOWED_PATHS with the reason"


def test_every_cited_section_is_a_heading_of_its_document():
    assert dangling_sections() == []


def test_nothing_cites_the_issue_tracker():
    assert tracker_citations() == [], "write the reason the issue stood for instead"


@pytest.mark.parametrize("path", sorted(ALLOWED_PATHS))
def test_an_allowed_path_is_still_cited(path):
    """An allow-list entry nothing cites any more is one to delete."""
    assert any(path in text for rel, text in files() if rel != SELF), path
