"""A job log's ANSI colours as HTML: the text is escaped first, then each SGR sequence
(`ESC [ … m`) becomes a `<span class="ansi-…">`; every other escape or control sequence is
dropped. Pure. The project had no converter (the CLI passes the codes to the terminal).

`AnsiHtml` is fed a stream in chunks (a live log): the style carries over from one chunk to
the next, a sequence cut in two is held back until its end arrives, and each chunk's HTML is
complete on its own (spans closed at its end, reopened at the next), so a page can append it.
Classes, not inline styles: the dashboard's CSP allows no style attribute."""

from __future__ import annotations

import re
from dataclasses import dataclass, replace
from html import escape
from typing import Any

# CSI: ESC [ parameters intermediates final; the other escapes: ESC, intermediates
# (`(` of a charset designation), one final character.
_SEQUENCE = re.compile(r"\x1b(?:\[([0-9;:?<=>]*)[ -/]*([@-~])|(?!\[)[ -/]*[0-~])")
_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f]")  # keeps \t and \n; \r, bell… go
_HELD = 32  # an escape this close to a chunk's end may be cut: wait for the rest


@dataclass(frozen=True)
class Style:
    fg: int | None = None  # 0-15: the 8 colours, then their bright forms
    bg: int | None = None
    bold: bool = False
    faint: bool = False
    italic: bool = False
    underline: bool = False

    def classes(self) -> str:
        names = [
            *(["ansi-bold"] if self.bold else []),
            *(["ansi-faint"] if self.faint else []),
            *(["ansi-italic"] if self.italic else []),
            *(["ansi-underline"] if self.underline else []),
            *([f"ansi-fg-{self.fg}"] if self.fg is not None else []),
            *([f"ansi-bg-{self.bg}"] if self.bg is not None else []),
        ]
        return " ".join(names)


PLAIN = Style()


# The SGR codes that set or clear attributes, as the fields they change.
_FLAGS: dict[int, dict[str, Any]] = {
    1: {"bold": True},
    2: {"faint": True},
    3: {"italic": True},
    4: {"underline": True},
    22: {"bold": False, "faint": False},
    23: {"italic": False},
    24: {"underline": False},
    39: {"fg": None},
    49: {"bg": None},
}


def _colour(c: int) -> dict[str, Any] | None:
    """A basic or bright colour code's change (30-37, 90-97; 40-47, 100-107)."""
    for low, field_, base in ((30, "fg", 0), (90, "fg", 8), (40, "bg", 0), (100, "bg", 8)):
        if low <= c <= low + 7:
            return {field_: c - low + base}
    return None


def apply_sgr(style: Style, params: str) -> Style:
    """`style` after one SGR sequence's parameters (`1;31`, `0`, `` = reset)."""
    codes = [int(p) if p.isdigit() else 0 for p in params.replace(":", ";").split(";")]
    i = 0
    while i < len(codes):
        c = codes[i]
        change = _FLAGS.get(c) or _colour(c)
        if c == 0:
            style = PLAIN
        elif change is not None:
            style = replace(style, **change)
        elif c in (38, 48):
            # 256 colours (5;n) keep the first 16, which have classes; true colour (2;r;g;b)
            # is dropped: its parameters are skipped either way
            mode = codes[i + 1] if i + 1 < len(codes) else None
            if mode == 5 and i + 2 < len(codes):
                n = codes[i + 2]
                if n < 16:
                    style = replace(style, fg=n) if c == 38 else replace(style, bg=n)
                i += 2
            elif mode == 2:
                i += 4
        i += 1
    return style


class AnsiHtml:
    """A stream's converter: `feed` each chunk, `close` at its end."""

    def __init__(self) -> None:
        self.style = PLAIN
        self._pending = ""

    def feed(self, text: str) -> str:
        text = self._pending + text
        self._pending = ""
        cut = text.rfind("\x1b", max(0, len(text) - _HELD))
        if cut != -1 and not _SEQUENCE.match(text, cut):
            text, self._pending = text[:cut], text[cut:]
        return self._convert(text)

    def close(self) -> str:
        rest, self._pending = self._pending, ""
        return self._convert(rest.replace("\x1b", ""))

    def _convert(self, text: str) -> str:
        out: list[str] = []
        open_style = self._open(out)
        position = 0
        for m in _SEQUENCE.finditer(text):
            out.append(_plain(text[position : m.start()]))
            position = m.end()
            if m.group(2) == "m":
                new = apply_sgr(self.style, m.group(1) or "")
                if new != self.style:
                    if open_style:
                        out.append("</span>")
                    self.style = new
                    open_style = self._open(out)
        out.append(_plain(text[position:]))
        if open_style:
            out.append("</span>")
        return "".join(out)

    def _open(self, out: list[str]) -> bool:
        classes = self.style.classes()
        if classes:
            out.append(f'<span class="{classes}">')
        return bool(classes)


def _plain(text: str) -> str:
    """Text between sequences: escaped, stray control characters and ESCs removed."""
    return escape(_CONTROL.sub("", text.replace("\r\n", "\n")), quote=False)


def ansi_to_html(text: str) -> str:
    """A whole log at once."""
    converter = AnsiHtml()
    return converter.feed(text) + converter.close()
