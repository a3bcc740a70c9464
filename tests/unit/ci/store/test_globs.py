"""Doublestar patterns, as GitLab Runner matches artifacts and cache paths."""

from __future__ import annotations

import pytest

from conveyor.ci.select.globs import match, normalize, split_pattern

CASES = [
    # pattern, path, matches
    ("*.xml", "report.xml", True),
    ("*.xml", "sub/report.xml", False),  # `*` stays within a directory
    ("*", ".hidden", True),  # no dot-file rule, unlike a shell
    ("**/*.xml", "report.xml", True),  # `**` matches zero directories
    ("**/*.xml", "a/b/c/report.xml", True),
    ("a/**", "a", True),  # trailing /** matches the directory itself
    ("a/**", "a/b/c", True),
    ("a/**", "ab/c", False),
    ("a/**/b", "a/b", True),
    ("a/**/b", "a/x/y/b", True),
    ("a/**/b", "a/xb", False),
    ("**", "any/thing", True),
    ("a**b", "axyb", True),  # `**` inside a name is a plain `*`
    ("a**b", "a/b", False),
    ("f?o", "fio", True),
    ("f?o", "f/o", False),
    ("[a-c]x", "bx", True),
    ("[!a]x", "ax", False),
    ("[^a]x", "bx", True),
    ("[!a]x", "/x", False),  # a class never matches the separator
    ("{bin,lib}/*.so", "lib/x.so", True),
    ("{bin,lib}/*.so", "src/x.so", False),
    ("*.{js,map}", "app.map", True),
    ("a\\*", "a*", True),  # escaped star is literal
    ("a\\*", "ab", False),
    ("dist/", "dist", True),  # trailing slash and ./ are noise
    ("./dist", "dist", True),
    ("dist//out", "dist/out", True),
    ("dist", "dist/file", False),  # matching is whole-path; directories are walked elsewhere
    ("[unterminated", "[unterminated", True),
]


@pytest.mark.parametrize(("pattern", "path", "expected"), CASES)
def test_match(pattern: str, path: str, expected: bool) -> None:
    assert match(pattern, path) is expected


@pytest.mark.parametrize(
    ("pattern", "split"),
    [
        ("build/out/*.xml", ("build/out", "*.xml")),
        ("**/x", ("", "**/x")),
        ("a/b", ("a/b", "")),
        ("a/{b,c}/d", ("a", "{b,c}/d")),
    ],
)
def test_split_pattern_gives_the_walk_root(pattern: str, split: tuple[str, str]) -> None:
    assert split_pattern(pattern) == split


def test_normalize() -> None:
    assert normalize(" ./a//b/ ") == "a/b"
