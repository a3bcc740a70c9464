"""YAML read as Compose reads it (YAML 1.2 core, Go's yaml.v3), and files that must be refused
quickly: alias explosions, deep nesting, control characters."""

from __future__ import annotations

import math

import pytest

from conveyor.errors import SpecError
from conveyor.spec.yaml12 import resolve_plain
from conveyor.spec.yamlpos import MAX_DEPTH, MAX_VALUES, load_yaml


@pytest.mark.parametrize(
    ("text", "value"),
    [
        ("no", "no"),
        ("yes", "yes"),
        ("on", "on"),
        ("off", "off"),
        ("y", "y"),
        ("22:22", "22:22"),  # YAML 1.1: the base-60 number 1342
        ("2222:22", "2222:22"),
        ("1:30:00", "1:30:00"),
        ("2001-12-14", "2001-12-14"),  # timestamps stay as written
        ("true", True),
        ("False", False),
        ("TRUE", True),
        ("~", None),
        ("", None),
        ("NULL", None),
        ("8080", 8080),
        ("-3", -3),
        ("+7", 7),
        ("0x1F", 31),
        ("0o17", 15),
        ("017", 15),  # yaml.v3 still reads 1.1 octals
        ("0b101", 5),
        ("1_000", 1000),
        ("1.5", 1.5),
        ("1e3", 1000.0),
        (".5", 0.5),
        ("08", 8.0),  # not an octal: Go then reads it as a float
        ("-.inf", -math.inf),
        ("1.2.3", "1.2.3"),
        ("-", "-"),
        ("0.5s", "0.5s"),
        ("512m", "512m"),
    ],
)
def test_plain_scalars_read_as_yaml_1_2(text: str, value: object) -> None:
    got = resolve_plain(text)
    assert got == value
    assert type(got) is type(value)


def test_nan_is_a_float() -> None:
    assert math.isnan(float(resolve_plain(".nan") or 0.0))


def test_compose_values_stay_strings_where_yaml_1_1_would_change_them() -> None:
    text = (
        "services:\n"
        "  ssh:\n"
        "    restart: no\n"
        "    ports:\n"
        "      - 2222:22\n"
        "      - 22:22\n"
        "    environment:\n"
        "      ENABLED: yes\n"
        "      DEBUG: on\n"
        "      QUOTED: 'true'\n"
        "      TYPED: !!str 5\n"
        "      COUNT: !!int '7'\n"
    )
    data = load_yaml(text, "compose.yaml", version="1.2").data["services"]["ssh"]
    assert data["restart"] == "no"
    assert data["ports"] == ["2222:22", "22:22"]
    assert data["environment"] == {
        "ENABLED": "yes",
        "DEBUG": "on",
        "QUOTED": "true",
        "TYPED": "5",
        "COUNT": 7,
    }
    # GitLab CI files keep YAML 1.1 (Ruby's Psych reads them that way).
    legacy = load_yaml(text, ".gitlab-ci.yml").data["services"]["ssh"]
    assert legacy["restart"] is False
    assert legacy["ports"] == [133342, 1342]


def test_a_standard_tag_with_a_value_of_another_type_is_refused() -> None:
    with pytest.raises(SpecError) as caught:
        load_yaml("a:\n  b: !!int yes\n", "compose.yaml", version="1.2")
    assert str(caught.value) == "compose.yaml:2: a.b: 'yes' is not a valid int"


def _laughs(levels: int) -> str:
    text = 'x-a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol","lol"]\n'
    previous = "a"
    for level in range(levels):
        name = f"l{level}"
        text += f"x-{name}: &{name} [" + ", ".join([f"*{previous}"] * 10) + "]\n"
        previous = name
    return text + f"services:\n  web:\n    image: nginx\n    labels: *{previous}\n"


@pytest.mark.parametrize("version", ["1.1", "1.2"])
def test_billion_laughs_is_refused_at_the_alias_that_explodes(version: str) -> None:
    with pytest.raises(SpecError) as caught:
        load_yaml(_laughs(8), "compose.yaml", version=version)  # type: ignore[arg-type]
    error = caught.value
    assert error.file == "compose.yaml"
    assert error.line == 5  # x-l3: 10**5 lols, the first anchor past the limit
    assert f"more than {MAX_VALUES} values" in error.message


def test_aliases_below_the_limit_load() -> None:
    doc = load_yaml(_laughs(2), "compose.yaml", version="1.2")
    assert len(doc.data["services"]["web"]["labels"]) == 10
    assert doc.data["services"]["web"]["labels"][0] == [["lol"] * 10] * 10


@pytest.mark.parametrize(
    ("text", "line"),
    [
        ("a: " + "[" * 5000 + "]" * 5000 + "\n", 1),
        ("a:\n" + "".join("  " * i + f"k{i}:\n" for i in range(1, 300)), MAX_DEPTH),
        ("a: " + "{k: " * 2000 + "1" + "}" * 2000 + "\n", 1),
    ],
    ids=["flow-lists", "block-mappings", "flow-mappings"],
)
def test_nesting_past_the_limit_is_a_spec_error_not_a_recursion_error(text: str, line: int) -> None:
    with pytest.raises(SpecError) as caught:
        load_yaml(text, "deep.yaml", version="1.2")
    assert str(caught.value) == (
        f"deep.yaml:{line}: invalid YAML: nested deeper than {MAX_DEPTH} levels"
    )


def test_aliases_cannot_nest_past_the_limit_either() -> None:
    deep = "{k: " * 60 + "1" + "}" * 60
    text = f"a: &a {deep}\nb: " + "{k: " * 60 + "*a" + "}" * 60 + "\n"
    with pytest.raises(SpecError) as caught:
        load_yaml(text, "deep.yaml", version="1.2")
    assert caught.value.line == 2
    assert caught.value.message.startswith(f"nested deeper than {MAX_DEPTH} levels")


def test_nesting_at_the_limit_loads() -> None:
    text = "a: " + "[" * (MAX_DEPTH - 1) + "]" * (MAX_DEPTH - 1) + "\n"
    assert load_yaml(text, "ok.yaml", version="1.2").data["a"] == _nested(MAX_DEPTH - 2)


def _nested(depth: int) -> list[object]:
    out: list[object] = []
    for _ in range(depth):
        out = [out]
    return out


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (
            "services:\n  web:\n    image: ngi\x07nx\n",
            "c.yaml:3: invalid YAML: control character U+0007 is not allowed (column 15); "
            "write it as an escape inside double quotes",
        ),
        (
            "services:\x00\n",
            "c.yaml:1: invalid YAML: control character U+0000 is not allowed (column 10); "
            "write it as an escape inside double quotes",
        ),
        (
            "a: 1\nb: \x1b[31mred\n",
            "c.yaml:2: invalid YAML: control character U+001B is not allowed (column 4); "
            "write it as an escape inside double quotes",
        ),
    ],
)
def test_control_characters_are_refused_with_their_line(text: str, expected: str) -> None:
    with pytest.raises(SpecError) as caught:
        load_yaml(text, "c.yaml", version="1.2")
    assert str(caught.value) == expected


def test_an_escaped_control_character_is_a_value() -> None:
    assert load_yaml('a: "x\\ty"\n', "c.yaml", version="1.2").data == {"a": "x\ty"}


def test_a_huge_file_is_refused_before_parsing() -> None:
    with pytest.raises(SpecError, match="larger than 8 MiB"):
        load_yaml("#" * (8 * 1024 * 1024 + 1), "big.yaml", version="1.2")
