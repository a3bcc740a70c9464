"""GitLab CI/CD variable expressions: `rules:if`, `only/except:variables`, `workflow:rules:if`.

The semantics are GitLab's (`Gitlab::Ci::Pipeline::Expression`), quirks included, because
pipelines are written and debugged against GitLab:

- Tokens are tried in GitLab's order at each position: `(`, `)`, `$VAR`, a quoted string
  (no escapes: the string ends at the first matching quote), a `/pattern/flags` literal,
  `null`, then `==`, `=~`, `!=`, `!~`, `&&`, `||`. A pattern literal needs at least two
  characters between the slashes (GitLab's lexer cannot see `/a/`; a variable holding "/a/"
  works). At most 99 tokens, like GitLab's lexer.
- `${VAR}` is accepted as well as `$VAR` (Conveyor's addition: GitLab's lexer rejects it).
- `&&` binds tighter than `||`; comparisons bind tighter than both and chain to the left.
- Values are Ruby values: an undefined variable is `nil`, so `$X == null` is true only when X
  is undefined, and `&&`/`||` return an operand, not a boolean (`"" || "x"` is `""`, because
  an empty string is truthy in Ruby). The whole expression is true when its value is
  `present?` in Rails terms: not nil, not false, and not a blank (empty or whitespace) string.
- `=~` and `!~` take a pattern on the right: a literal, or any value holding `/re/flags`. A
  right-hand string that is not a pattern is searched *for the left value* as plain text
  (Ruby's `String#scan(String)`), which is what GitLab does. A nil right side never matches.
- Variable values are used as they are: `$A` holding "$B" is the text "$B", never B's value.

Patterns are RE2 (GitLab's `UntrustedRegexp`). `translate_re2` turns RE2 syntax into an
equivalent Python pattern and rejects what RE2 lacks (backreferences, lookaround, atomic
groups, possessive quantifiers) with the reason, so a pattern that works here works in GitLab.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Literal, NoReturn

from conveyor.errors import ExprError

__all__ = [
    "And",
    "Compare",
    "ExprError",
    "Node",
    "Null",
    "Or",
    "Pattern",
    "RegexValue",
    "Str",
    "Var",
    "compile_ruby_regex",
    "evaluate",
    "iter_nodes",
    "parse",
    "ruby_regex_or_none",
    "translate_re2",
    "variables_in",
]


# --- nodes -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Var:
    name: str
    pos: int = 0


@dataclass(frozen=True)
class Str:
    value: str
    pos: int = 0


@dataclass(frozen=True)
class Null:
    pos: int = 0


@dataclass(frozen=True)
class Pattern:
    """A `/source/flags` literal, compiled when parsed so a bad pattern fails at lint time."""

    source: str
    flags: str
    pos: int = 0
    compiled: re.Pattern[str] = field(default=re.compile(""), compare=False, repr=False)


CompareOp = Literal["==", "!=", "=~", "!~"]


@dataclass(frozen=True)
class Compare:
    op: CompareOp
    left: Node
    right: Node
    pos: int = 0


@dataclass(frozen=True)
class And:
    left: Node
    right: Node
    pos: int = 0


@dataclass(frozen=True)
class Or:
    left: Node
    right: Node
    pos: int = 0


Node = Var | Str | Null | Pattern | Compare | And | Or


def variables_in(node: Node) -> set[str]:
    """Names of the variables an expression reads (for `ci graph` and diagnostics)."""
    match node:
        case Var(name=name):
            return {name}
        case (
            Compare(left=left, right=right)
            | And(left=left, right=right)
            | Or(left=left, right=right)
        ):
            return variables_in(left) | variables_in(right)
        case _:
            return set()


# --- lexer -----------------------------------------------------------------------------------

TokenKind = Literal["(", ")", "var", "str", "pattern", "null", "==", "=~", "!=", "!~", "&&", "||"]


@dataclass(frozen=True)
class _Token:
    kind: TokenKind
    text: str
    pos: int


# GitLab tries its lexemes in this order at each position (first match wins, not the longest).
_LEXEMES: tuple[tuple[TokenKind, re.Pattern[str]], ...] = (
    ("(", re.compile(r"\(")),
    (")", re.compile(r"\)")),
    ("var", re.compile(r"\$\{[A-Za-z0-9_]+\}|\$[A-Za-z0-9_]+")),
    ("str", re.compile(r"\"[^\n]*?\"|'[^\n]*?'")),
    ("pattern", re.compile(r"/(?:[^/]|\\/)+[^\\]/[ismU]*")),
    ("null", re.compile(r"null")),
    ("==", re.compile(r"==")),
    ("=~", re.compile(r"=~")),
    ("!=", re.compile(r"!=")),
    ("!~", re.compile(r"!~")),
    ("&&", re.compile(r"&&")),
    ("||", re.compile(r"\|\|")),
)
_SPACE = re.compile(r"[ \t\r\n\f\v]+")
_MAX_TOKENS = 99  # GitLab's lexer gives up after 100 scans, the last one spent finding the end


def _tokenize(text: str) -> list[_Token]:
    tokens: list[_Token] = []
    pos = 0
    while True:
        space = _SPACE.match(text, pos)
        if space:
            pos = space.end()
        if pos >= len(text):
            return tokens
        if len(tokens) == _MAX_TOKENS:
            raise ExprError(f"too many tokens (GitLab allows {_MAX_TOKENS})", pos, text)
        for kind, lexeme in _LEXEMES:
            found = lexeme.match(text, pos)
            if found:
                tokens.append(_Token(kind, found.group(), pos))
                pos = found.end()
                break
        else:
            raise ExprError(_unknown_token(text, pos), pos, text)


def _unknown_token(text: str, pos: int) -> str:
    message = f"unknown token {text[pos : pos + 10]!r}"
    if text.startswith("/", pos):
        # GitLab's lexer needs two characters between the slashes (gitlab-org/gitlab#335930).
        message += "; a /pattern/ literal needs at least two characters between the slashes"
    return message


# --- parser ----------------------------------------------------------------------------------

_COMPARE_OPS: dict[str, CompareOp] = {"==": "==", "!=": "!=", "=~": "=~", "!~": "!~"}


class _Parser:
    """Recursive descent: or := and ('||' and)*; and := cmp ('&&' cmp)*;
    cmp := operand (op operand)*; operand := value | '(' or ')'."""

    def __init__(self, text: str) -> None:
        self.text = text
        self.tokens = _tokenize(text)
        self.index = 0

    def fail(self, message: str, pos: int | None = None) -> NoReturn:
        raise ExprError(message, len(self.text) if pos is None else pos, self.text)

    def peek(self) -> _Token | None:
        return self.tokens[self.index] if self.index < len(self.tokens) else None

    def take(self) -> _Token:
        token = self.peek()
        if token is None:
            self.fail("unexpected end of expression, expected a value")
        self.index += 1
        return token

    def parse(self) -> Node:
        if not self.tokens:
            self.fail("empty expression", 0)
        node = self.parse_or()
        extra = self.peek()
        if extra is not None:
            what = "unmatched )" if extra.kind == ")" else f"unexpected {extra.text!r}"
            self.fail(f"{what}; expected && or || between values", extra.pos)
        return node

    def parse_or(self) -> Node:
        node = self.parse_and()
        while (token := self.peek()) is not None and token.kind == "||":
            self.index += 1
            node = Or(node, self.parse_and(), token.pos)
        return node

    def parse_and(self) -> Node:
        node = self.parse_compare()
        while (token := self.peek()) is not None and token.kind == "&&":
            self.index += 1
            node = And(node, self.parse_compare(), token.pos)
        return node

    def parse_compare(self) -> Node:
        node = self.parse_operand()
        while (token := self.peek()) is not None and token.kind in _COMPARE_OPS:
            self.index += 1
            node = Compare(_COMPARE_OPS[token.kind], node, self.parse_operand(), token.pos)
        return node

    def parse_operand(self) -> Node:
        token = self.take()
        if token.kind == "(":
            inner = self.parse_or()
            close = self.peek()
            if close is None or close.kind != ")":
                self.fail("missing ) for the ( here", token.pos)
            self.index += 1
            return inner
        return self.leaf(token)

    def leaf(self, token: _Token) -> Node:
        match token.kind:
            case "var":
                return Var(token.text.lstrip("$").strip("{}"), token.pos)
            case "str":
                return Str(token.text[1:-1], token.pos)
            case "null":
                return Null(token.pos)
            case "pattern":
                return self.pattern(token)
            case _:
                self.fail(f"unexpected {token.text!r}, expected a value", token.pos)

    def pattern(self, token: _Token) -> Pattern:
        # GitLab unescapes `\/` before handing the literal to RE2.
        literal = token.text.replace("\\/", "/")
        source, flags = _split_literal(literal) or ("", "")
        try:
            compiled = _compile(source, flags)
        except ExprError as exc:
            self.fail(f"invalid regular expression {literal}: {exc.message}", token.pos)
        return Pattern(source, flags, token.pos, compiled)


def parse(expression: str) -> Node:
    """Parse a GitLab expression; raise `ExprError` with the offending position."""
    return _Parser(expression).parse()


# --- evaluation ------------------------------------------------------------------------------


@dataclass(frozen=True)
class RegexValue:
    """A pattern as a value (GitLab compares two patterns by their RE2 source)."""

    source: str
    flags: str
    compiled: re.Pattern[str] = field(compare=False, repr=False)


Value = str | bool | None | RegexValue


def evaluate(expression: str | Node, variables: Mapping[str, str]) -> bool:
    """True when GitLab would find the expression true for these variables."""
    node = _parse_cached(expression) if isinstance(expression, str) else expression
    return _present(_value(node, variables))


_parse_cached = lru_cache(maxsize=2048)(parse)  # trees are immutable; rules repeat a lot


def _value(node: Node, variables: Mapping[str, str]) -> Value:
    match node:
        case Var(name=name):
            return variables.get(name)
        case Str(value=value):
            return value
        case Null():
            return None
        case Pattern(source=source, flags=flags, compiled=compiled):
            return RegexValue(source, flags, compiled)
        case And(left=left, right=right):
            first = _value(left, variables)
            return _value(right, variables) if _ruby_truthy(first) else first
        case Or(left=left, right=right):
            first = _value(left, variables)
            return first if _ruby_truthy(first) else _value(right, variables)
        case Compare(op=op, left=left, right=right):
            return _compare(op, _value(left, variables), _value(right, variables))


def _compare(op: CompareOp, left: Value, right: Value) -> bool:
    if op == "==":
        return left == right and type(left) is type(right)
    if op == "!=":
        return not (left == right and type(left) is type(right))
    if right is None or right is False:
        return op == "!~"  # GitLab: no pattern never matches, so `!~` holds
    found = _scan(right, _ruby_to_s(left))
    return found if op == "=~" else not found


def _scan(target: Value, text: str) -> bool:
    if isinstance(target, RegexValue):
        return target.compiled.search(text) is not None
    if isinstance(target, str):
        compiled = ruby_regex_or_none(target)
        if compiled is not None:
            return compiled.search(text) is not None
        # GitLab falls back to `target.scan(text)`: the left value searched in the right text.
        return text in target
    return False  # `true` as a pattern: GitLab itself fails with a server error


def _ruby_truthy(value: Value) -> bool:
    return value is not None and value is not False


def _present(value: Value) -> bool:
    if isinstance(value, str):
        return value != "" and not value.isspace()
    return _ruby_truthy(value)


def _ruby_to_s(value: Value) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, RegexValue):
        return value.source
    return value


# --- Ruby `/re/flags` literals -----------------------------------------------------------------

_LITERAL = re.compile(r"/([^\n]*)/([ismU]*)")


def _split_literal(text: str) -> tuple[str, str] | None:
    found = _LITERAL.fullmatch(text)
    return (found.group(1), found.group(2)) if found else None


def compile_ruby_regex(text: str) -> re.Pattern[str]:
    """Compile GitLab's `/re/flags` notation (flags i, m, s, U) with RE2 semantics."""
    parts = _split_literal(text.replace("\\/", "/"))
    if parts is None:
        raise ExprError("not a /pattern/ (expected /regex/ with optional flags i, m, s, U)", 0)
    return _compile(*parts)


@lru_cache(maxsize=512)
def ruby_regex_or_none(text: str) -> re.Pattern[str] | None:
    """The pattern a string like "/^v\\d+/i" stands for, or None when it is not one."""
    try:
        return compile_ruby_regex(text)
    except ExprError:
        return None


@lru_cache(maxsize=512)
def _compile(source: str, flags: str) -> re.Pattern[str]:
    translated = translate_re2(source, flags)
    try:
        return re.compile(translated)
    except re.error as exc:  # a translation gap: report it like a syntax error
        raise ExprError(f"cannot compile: {exc.msg}", exc.pos or 0) from exc


# --- RE2 -> Python ---------------------------------------------------------------------------


@dataclass
class _Flags:
    fold: bool = False  # i
    multiline: bool = False  # m: ^ and $ at line boundaries
    dotnl: bool = False  # s: . matches \n
    ungreedy: bool = False  # U: swaps greedy and lazy quantifiers

    def copy(self) -> _Flags:
        return _Flags(self.fold, self.multiline, self.dotnl, self.ungreedy)

    def apply(self, letters: str, on: bool) -> None:
        for letter in letters:
            if letter == "i":
                self.fold = on
            elif letter == "m":
                self.multiline = on
            elif letter == "s":
                self.dotnl = on
            else:
                self.ungreedy = on


Ranges = list[tuple[int, int]]
_MAX_CODE = 0x10FFFF
_MAX_REPEAT = 1000  # RE2's limit for {n,m}

_DIGIT: Ranges = [(0x30, 0x39)]
_SPACE_RANGES: Ranges = [(0x09, 0x0A), (0x0C, 0x0D), (0x20, 0x20)]  # RE2's \s has no \v
_WORD: Ranges = [(0x30, 0x39), (0x41, 0x5A), (0x5F, 0x5F), (0x61, 0x7A)]
_POSIX: dict[str, Ranges] = {
    "alnum": [(0x30, 0x39), (0x41, 0x5A), (0x61, 0x7A)],
    "alpha": [(0x41, 0x5A), (0x61, 0x7A)],
    "ascii": [(0x00, 0x7F)],
    "blank": [(0x09, 0x09), (0x20, 0x20)],
    "cntrl": [(0x00, 0x1F), (0x7F, 0x7F)],
    "digit": _DIGIT,
    "graph": [(0x21, 0x7E)],
    "lower": [(0x61, 0x7A)],
    "print": [(0x20, 0x7E)],
    "punct": [(0x21, 0x2F), (0x3A, 0x40), (0x5B, 0x60), (0x7B, 0x7E)],
    "space": [(0x09, 0x0D), (0x20, 0x20)],
    "upper": [(0x41, 0x5A)],
    "word": _WORD,
    "xdigit": [(0x30, 0x39), (0x41, 0x46), (0x61, 0x66)],
}
_SIMPLE_ESCAPES = {"a": 0x07, "f": 0x0C, "t": 0x09, "n": 0x0A, "r": 0x0D, "v": 0x0B}
_POSIX_NAME = re.compile(r"\[:(\^?)([a-z]+):\]")
_REPEAT = re.compile(r"\{(\d+)(,(\d*))?\}")
_GROUP_NAME = re.compile(r"[A-Za-z0-9_]+")


def translate_re2(pattern: str, flags: str = "") -> str:
    """Translate an RE2 pattern (GitLab's regex engine) to an equivalent Python pattern.

    `flags` are the letters after the closing slash (`i`, `m`, `s`, `U`). Raises `ExprError`
    with the position inside `pattern` for syntax RE2 rejects and for RE2 features Python's
    `re` cannot express (`\\p{...}` Unicode classes, `\\C`)."""
    start = _Flags()
    start.apply(flags, on=True)
    return _Re2(pattern).translate(start)


def _negate(ranges: Ranges) -> Ranges:
    result: Ranges = []
    nxt = 0
    for lo, hi in _merge(ranges):
        if lo > nxt:
            result.append((nxt, lo - 1))
        nxt = hi + 1
    if nxt <= _MAX_CODE:
        result.append((nxt, _MAX_CODE))
    return result


def _merge(ranges: Ranges) -> Ranges:
    merged: Ranges = []
    for lo, hi in sorted(ranges):
        if merged and lo <= merged[-1][1] + 1:
            merged[-1] = (merged[-1][0], max(hi, merged[-1][1]))
        else:
            merged.append((lo, hi))
    return merged


def _class_text(ranges: Ranges, negated: bool, fold: bool) -> str:
    merged = _merge(ranges)
    if not merged:
        return r"[\s\S]" if negated else "(?!)"
    items = "".join(f"\\U{lo:08x}" if lo == hi else f"\\U{lo:08x}-\\U{hi:08x}" for lo, hi in merged)
    text = f"[{'^' if negated else ''}{items}]"
    return f"(?i:{text})" if fold else text


def _literal_text(char: str, fold: bool) -> str:
    text = re.escape(char)
    return f"(?i:{text})" if fold and char.lower() != char.upper() else text


class _Re2:
    """One pass over an RE2 pattern, emitting Python syntax with every flag made explicit."""

    def __init__(self, source: str) -> None:
        self.src = source
        self.pos = 0
        self.names: set[str] = set()
        self.quoting = False  # inside \Q...\E every character is literal

    def fail(self, message: str, pos: int | None = None) -> NoReturn:
        raise ExprError(message, self.pos if pos is None else pos, self.src)

    def peek(self, ahead: int = 0) -> str:
        index = self.pos + ahead
        return self.src[index] if index < len(self.src) else ""

    def translate(self, flags: _Flags) -> str:
        out = self.alternation(flags)
        if self.pos < len(self.src):
            self.fail("unexpected ): no group is open")
        return out

    def alternation(self, flags: _Flags) -> str:
        # Flags set by `(?i)` last until the group closes, across `|` (Perl and RE2 agree).
        branches = [self.concat(flags)]
        while self.peek() == "|":
            self.pos += 1
            branches.append(self.concat(flags))
        return "|".join(branches)

    def concat(self, flags: _Flags) -> str:
        parts: list[str] = []
        while self.pos < len(self.src) and (self.quoting or self.peek() not in "|)"):
            atom = self.atom(flags)
            if atom is not None:
                parts.append(self.quantified(atom, flags))
        return "".join(parts)

    def atom(self, flags: _Flags) -> str | None:
        if self.quoting:
            return self.quoted_char(flags)
        char = self.peek()
        if char == "(":
            return self.group(flags)
        if char == "[":
            return self.char_class(flags)
        if char == "\\":
            return self.escape(flags)
        if char in "*+?" or (char == "{" and _REPEAT.match(self.src, self.pos)):
            self.fail("missing argument to repetition operator")
        self.pos += 1
        if char == ".":
            return r"[\s\S]" if flags.dotnl else r"[^\n]"
        if char == "^":
            return r"(?:(?<=\n)|\A)" if flags.multiline else r"\A"
        if char == "$":
            return r"(?=\n|\Z)" if flags.multiline else r"\Z"
        return _literal_text(char, flags.fold)

    def repeat(self) -> str | None:
        char = self.peek()
        if char in ("*", "+", "?"):
            self.pos += 1
            return char
        found = _REPEAT.match(self.src, self.pos) if char == "{" else None
        if found is None:
            return None
        low = int(found.group(1))
        high = low if found.group(2) is None else (int(found.group(3)) if found.group(3) else None)
        if low > _MAX_REPEAT or (high is not None and (high > _MAX_REPEAT or high < low)):
            self.fail(f"bad repetition operator {found.group()} (RE2 allows at most 1000)")
        self.pos = found.end()
        return found.group()

    def quantified(self, atom: str, flags: _Flags) -> str:
        if self.quoting:
            return atom  # `*` inside \Q...\E is a literal, not a quantifier
        start = self.pos
        op = self.repeat()
        if op is None:
            return atom
        lazy = self.peek() == "?"
        if lazy:
            self.pos += 1
        if self.peek() in ("*", "+", "?") or _REPEAT.match(self.src, self.pos):
            self.fail(
                f"bad repetition operator {self.src[start : self.pos + 1]!r} "
                "(RE2 has no possessive or stacked quantifiers)",
                start,
            )
        if flags.ungreedy:
            lazy = not lazy
        return f"(?:{atom}){op}{'?' if lazy else ''}"

    # groups

    def group(self, flags: _Flags) -> str | None:
        start = self.pos
        self.pos += 1
        if self.peek() != "?":
            return self.close(start, self.alternation(flags.copy()))
        self.pos += 1
        rest = self.src[self.pos :]
        if rest.startswith(("=", "!", "<=", "<!")):
            self.fail("lookahead and lookbehind are not supported by RE2", start)
        if rest.startswith(("P<", "<")):
            self.pos += 2 if rest.startswith("P") else 1
            self.group_name(start)
            return self.close(start, self.alternation(flags.copy()))
        if rest.startswith(("P=", "P>", "&", "R", "1", "+")):
            self.fail("backreferences and recursion are not supported by RE2", start)
        if rest.startswith(">"):
            self.fail("atomic groups are not supported by RE2", start)
        return self.flag_group(flags, start)

    def group_name(self, start: int) -> None:
        found = _GROUP_NAME.match(self.src, self.pos)
        end = self.pos + (len(found.group()) if found else 0)
        if found is None or self.peek(end - self.pos) != ">":
            self.fail("invalid named capture group", start)
        if found.group() in self.names:
            self.fail(f"duplicate capture group name {found.group()!r}", start)
        self.names.add(found.group())
        self.pos = end + 1

    def flag_group(self, flags: _Flags, start: int) -> str | None:
        on, off, negated = "", "", False
        while (char := self.peek()) in ("i", "m", "s", "U", "-"):
            if char == "-":
                if negated:
                    self.fail("invalid flag group: two -", start)
                negated = True
            elif negated:
                off += char
            else:
                on += char
            self.pos += 1
        end = self.peek()
        if end not in (")", ":") or (negated and not off) or not (on or off or end == ":"):
            self.fail("invalid or unsupported Perl syntax in (?...)", start)
        self.pos += 1
        target = flags if end == ")" else flags.copy()
        target.apply(on, on=True)
        target.apply(off, on=False)
        if end == ")":
            return None  # flags change for the rest of the enclosing group
        return self.close(start, self.alternation(target))

    def close(self, start: int, inner: str) -> str:
        if self.peek() != ")":
            self.fail("missing ): group opened here is not closed", start)
        self.pos += 1
        return f"(?:{inner})"

    # escapes

    def escape(self, flags: _Flags) -> str | None:
        start = self.pos
        self.pos += 1
        char = self.peek()
        if not char:
            self.fail("trailing \\ at the end of the pattern", start)
        perl = self.perl_class(char)
        if perl is not None:
            self.pos += 1
            return _class_text(perl, negated=False, fold=False)
        assertion = {"b": r"(?a:\b)", "B": r"(?a:\B)", "A": r"\A", "z": r"\Z"}.get(char)
        if assertion is not None:
            self.pos += 1
            return assertion
        if char == "Q":
            self.pos += 1
            self.quoting = True
            return None
        return _literal_text(chr(self.escaped_code(start)), flags.fold)

    def perl_class(self, char: str) -> Ranges | None:
        base = {"d": _DIGIT, "s": _SPACE_RANGES, "w": _WORD}.get(char.lower())
        if base is None:
            return None
        return _negate(base) if char.isupper() else list(base)

    def quoted_char(self, flags: _Flags) -> str | None:
        """One character of `\\Q...\\E`; a quantifier after `\\E` applies to the last one."""
        if self.src.startswith("\\E", self.pos):
            self.pos += 2
            self.quoting = False
            return None
        char = self.peek()
        self.pos += 1
        if self.src.startswith("\\E", self.pos):
            self.pos += 2
            self.quoting = False
        return _literal_text(char, flags.fold)

    def escaped_code(self, start: int) -> int:
        """The character an escape stands for; `self.pos` is just after the backslash."""
        char = self.peek()
        self.pos += 1
        if char in "01234567":
            return self.octal(char, start)
        if char in "89":
            self.fail("backreferences are not supported by RE2", start)
        if char == "x":
            return self.hex_code(start)
        if char in _SIMPLE_ESCAPES:
            return _SIMPLE_ESCAPES[char]
        if char in "pP":
            self.fail(
                "Unicode classes (\\p, \\P) are valid RE2 but Conveyor cannot run them", start
            )
        if char == "C":
            self.fail("\\C (any byte) is not supported", start)
        if ord(char) < 0x80 and not (char.isalnum() or char == "_"):
            return ord(char)
        self.fail(f"invalid escape sequence \\{char}", start)

    def octal(self, first: str, start: int) -> int:
        # RE2 reads \0, \0NN and \NNN as octal; a lone \1..\7 would be a backreference.
        if first != "0" and self.peek() not in tuple("01234567"):
            self.fail("backreferences are not supported by RE2", start)
        code = int(first)
        for _ in range(2):
            if self.peek() and self.peek() in "01234567":
                code = code * 8 + int(self.peek())
                self.pos += 1
            else:
                break
        return code

    def hex_code(self, start: int) -> int:
        if self.peek() == "{":
            end = self.src.find("}", self.pos)
            digits = self.src[self.pos + 1 : end] if end > 0 else ""
            self.pos = end + 1 if end > 0 else len(self.src)
        else:
            digits = self.src[self.pos : self.pos + 2]
            self.pos += 2
            if len(digits) != 2:
                digits = ""
        if not digits or any(c not in "0123456789abcdefABCDEF" for c in digits):
            self.fail("invalid escape sequence \\x", start)
        code = int(digits, 16)
        if code > _MAX_CODE:
            self.fail("invalid escape sequence \\x: beyond U+10FFFF", start)
        return code

    # character classes

    def char_class(self, flags: _Flags) -> str:
        start = self.pos
        self.pos += 1
        negated = self.peek() == "^"
        if negated:
            self.pos += 1
        ranges: Ranges = []
        first = True
        while True:
            char = self.peek()
            if not char:
                self.fail("missing closing ] for the class opened here", start)
            if char == "]" and not first:
                self.pos += 1
                return _class_text(ranges, negated, flags.fold)
            first = False
            ranges.extend(self.class_item())

    def class_item(self) -> Ranges:
        posix = _POSIX_NAME.match(self.src, self.pos)
        if posix:
            if posix.group(2) not in _POSIX:
                self.fail(f"invalid character class [:{posix.group(2)}:]")
            self.pos = posix.end()
            ranges = list(_POSIX[posix.group(2)])
            return _negate(ranges) if posix.group(1) else ranges
        low = self.class_char()
        if isinstance(low, list):
            return low
        if self.peek() == "-" and self.peek(1) not in ("]", ""):
            start = self.pos
            self.pos += 1
            high = self.class_char()
            if isinstance(high, list) or high < low:
                self.fail("invalid character class range", start)
            return [(low, high)]
        return [(low, low)]

    def class_char(self) -> int | Ranges:
        char = self.peek()
        if char != "\\":
            self.pos += 1
            return ord(char)
        start = self.pos
        self.pos += 1
        perl = self.perl_class(self.peek())
        if perl is not None:
            self.pos += 1
            return perl
        if not self.peek():
            self.fail("trailing \\ at the end of the pattern", start)
        return self.escaped_code(start)


def iter_nodes(node: Node) -> Iterator[Node]:
    """Every node of a tree, depth first (for tools that inspect expressions)."""
    yield node
    if isinstance(node, Compare | And | Or):
        yield from iter_nodes(node.left)
        yield from iter_nodes(node.right)
