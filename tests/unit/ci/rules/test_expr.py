"""GitLab expressions and RE2 patterns, driven by expr_cases.yaml and re2_cases.yaml."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from conveyor.ci.select.expr import (
    And,
    Compare,
    Or,
    Var,
    compile_ruby_regex,
    evaluate,
    parse,
    ruby_regex_or_none,
    translate_re2,
    variables_in,
)
from conveyor.errors import ExprError

HERE = Path(__file__).parent
EXPR = yaml.safe_load((HERE / "expr_cases.yaml").read_text())
RE2 = yaml.safe_load((HERE / "re2_cases.yaml").read_text())
TRUTH = [c for c in EXPR["cases"] if "is" in c]
ERRORS = [c for c in EXPR["cases"] if "error" in c]


def test_the_tables_are_large() -> None:
    assert len(TRUTH) >= 80
    assert len(ERRORS) >= 25
    assert len(RE2) >= 60


@pytest.mark.parametrize("case", TRUTH, ids=lambda c: f"{c['e']} {c.get('v', '')}")
def test_expression_truth(case: dict[str, Any]) -> None:
    variables = {**EXPR["base"], **case.get("v", {})}
    assert evaluate(case["e"], variables) is case["is"]


@pytest.mark.parametrize("case", ERRORS, ids=lambda c: c["e"] or "<empty>")
def test_expression_errors_point_at_the_token(case: dict[str, Any]) -> None:
    with pytest.raises(ExprError) as raised:
        parse(case["e"])
    assert case["error"] in raised.value.message
    assert raised.value.position == case["at"]
    assert raised.value.expression == case["e"]
    assert f"at position {case['at']}" in str(raised.value)


@pytest.mark.parametrize("case", ERRORS, ids=lambda c: c["e"] or "<empty>")
def test_evaluate_refuses_what_parse_refuses(case: dict[str, Any]) -> None:
    with pytest.raises(ExprError):
        evaluate(case["e"], EXPR["base"])


@pytest.mark.parametrize("case", RE2, ids=lambda c: f"/{c['re']}/{c.get('flags', '')}")
def test_re2_translation(case: dict[str, Any]) -> None:
    if "error" in case:
        with pytest.raises(ExprError) as raised:
            translate_re2(case["re"], case.get("flags", ""))
        assert case["error"] in raised.value.message
        assert raised.value.position == case["at"]
        return
    import re

    found = re.search(translate_re2(case["re"], case.get("flags", "")), case["text"])
    assert (found.group() if found else None) == case["match"]


def test_and_binds_tighter_than_or_in_the_tree() -> None:
    tree = parse('$A || $B && $C == "x"')
    assert isinstance(tree, Or)
    assert isinstance(tree.right, And)
    assert isinstance(tree.right.right, Compare)
    assert tree.right.right.op == "=="
    assert tree.left == Var("A", 0)


def test_comparisons_chain_to_the_left() -> None:
    tree = parse("$A == $B != $C")
    assert isinstance(tree, Compare) and tree.op == "!="
    assert isinstance(tree.left, Compare) and tree.left.op == "=="


def test_variables_in_lists_every_reference() -> None:
    tree = parse('($A == "x" || ${B} =~ /ab/) && $C != null && "s" == $A')
    assert variables_in(tree) == {"A", "B", "C"}


def test_a_parsed_tree_can_be_evaluated_many_times() -> None:
    tree = parse("$CI_COMMIT_BRANCH == $CI_DEFAULT_BRANCH")
    assert evaluate(tree, {"CI_COMMIT_BRANCH": "main", "CI_DEFAULT_BRANCH": "main"})
    assert not evaluate(tree, {"CI_COMMIT_BRANCH": "dev", "CI_DEFAULT_BRANCH": "main"})


def test_gitlab_allows_99_tokens() -> None:
    # 50 variables joined by 49 `&&` are 99 tokens; one more pair is 101.
    fits = " && ".join(["$X"] * 50)
    assert evaluate(fits, {"X": "1"})
    too_many = " && ".join(["$X"] * 51)
    with pytest.raises(ExprError, match="too many tokens"):
        parse(too_many)


def test_ruby_regex_literals() -> None:
    assert compile_ruby_regex("/^v\\d+$/").search("v12")
    assert compile_ruby_regex("/^V/i").search("v1")
    assert compile_ruby_regex("/^a\\/b$/").search("a/b")
    assert ruby_regex_or_none("main") is None
    assert ruby_regex_or_none("/(/") is None
    assert ruby_regex_or_none("/a/") is not None  # only the expression lexer needs two chars
    with pytest.raises(ExprError, match="not a /pattern/"):
        compile_ruby_regex("^v1")
