"""Plain YAML scalars read as Compose reads them: the YAML 1.2 core schema of Go's yaml.v3.

PyYAML implements YAML 1.1, where `no`, `yes`, `on` and `off` are booleans and `22:22` is
the base-60 number 1342. Compose's loader (yaml.v3) reads those as the strings a person wrote,
so `restart: no` means "no" and `- 2222:22` is a port mapping. What is left typed:

- null: empty, `~`, `null`, `Null`, `NULL`
- booleans: `true`, `True`, `TRUE`, `false`, `False`, `FALSE`
- floats: `.inf`, `-.inf`, `.nan` (and their capitalised spellings), `1.5`, `1e3`, `.5`
- integers: decimal, `0x1F`, `0o17`, `0b101`, and yaml.v3's compatible `017` (octal);
  underscores between digits are ignored, as yaml.v3 does

Everything else, timestamps included, stays the string it was written as.
"""

from __future__ import annotations

import math
import re

_NULLS = frozenset({"", "~", "null", "Null", "NULL"})
_BOOLS = {"true": True, "True": True, "TRUE": True, "false": False, "False": False, "FALSE": False}
_SPECIAL_FLOATS = {
    **dict.fromkeys((".nan", ".NaN", ".NAN"), math.nan),
    **dict.fromkeys((".inf", ".Inf", ".INF", "+.inf", "+.Inf", "+.INF"), math.inf),
    **dict.fromkeys(("-.inf", "-.Inf", "-.INF"), -math.inf),
}
# Go's strconv.ParseInt(s, 0, 64) accepts these shapes (after yaml.v3 drops underscores).
_INT = re.compile(
    r"[-+]?(?:0[xX][0-9a-fA-F]+|0[oO][0-7]+|0[bB][01]+|0[0-7]*|[1-9][0-9]*)",
)
_FLOAT = re.compile(r"[-+]?(?:\.[0-9]+|[0-9]+(?:\.[0-9]*)?)(?:[eE][-+]?[0-9]+)?")
_NUMERIC_START = frozenset("0123456789+-.")


def resolve_plain(text: str) -> str | int | float | bool | None:
    """The value of an untagged, unquoted scalar written as `text`."""
    if text in _NULLS:
        return None
    if text in _BOOLS:
        return _BOOLS[text]
    if text in _SPECIAL_FLOATS:
        return _SPECIAL_FLOATS[text]
    if text[0] not in _NUMERIC_START:
        return text
    plain = text.replace("_", "")
    if _INT.fullmatch(plain):
        return _int(plain)
    if _FLOAT.fullmatch(plain):
        return float(plain)
    return text


def _int(plain: str) -> int:
    sign = -1 if plain.startswith("-") else 1
    digits = plain.lstrip("+-")
    prefix = digits[:2].lower()
    if prefix in ("0x", "0o", "0b"):
        return sign * int(digits[2:], {"0x": 16, "0o": 8, "0b": 2}[prefix])
    if len(digits) > 1 and digits.startswith("0"):
        return sign * int(digits[1:], 8)  # Go's base-0 parse reads a leading 0 as octal
    return sign * int(digits)
