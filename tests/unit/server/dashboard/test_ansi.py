"""The ANSI-to-HTML converter of job logs: escaped first, SGR codes as classes, a stream's
style and cut sequences carried across chunks."""

from __future__ import annotations

from conveyor.server.dashboard.ansi import PLAIN, AnsiHtml, Style, ansi_to_html, apply_sgr


def test_text_is_escaped_before_anything_else() -> None:
    html = ansi_to_html('<script>alert("x")</script> & \x1b[31m<b>red</b>\x1b[0m')
    assert "<script>" not in html and "<b>" not in html
    assert "&lt;script&gt;" in html and "&amp;" in html
    assert '<span class="ansi-fg-1">&lt;b&gt;red&lt;/b&gt;</span>' in html


def test_sgr_codes_become_classes_and_reset() -> None:
    html = ansi_to_html("a\x1b[1;32mok\x1b[0m b \x1b[94;41mx\x1b[39my\x1b[m z")
    assert html == (
        'a<span class="ansi-bold ansi-fg-2">ok</span> b '
        '<span class="ansi-fg-12 ansi-bg-1">x</span><span class="ansi-bg-1">y</span> z'
    )


def test_the_runners_own_colour_sequence() -> None:
    # job_log.JobLog.say writes ESC[36;1m … ESC[0;m
    assert ansi_to_html("\x1b[36;1m$ make\x1b[0;m\n") == (
        '<span class="ansi-bold ansi-fg-6">$ make</span>\n'
    )


def test_extended_colours_keep_the_first_sixteen_and_skip_their_parameters() -> None:
    assert apply_sgr(PLAIN, "38;5;9") == Style(fg=9)
    assert apply_sgr(PLAIN, "38;5;200;1") == Style(bold=True)  # 200 has no class
    assert apply_sgr(PLAIN, "48;2;10;20;30;4") == Style(underline=True)


def test_other_sequences_and_control_characters_are_dropped() -> None:
    assert ansi_to_html("a\x1b[2Kb\x1b[?25lc\rd\x07e\x1b(Bf\r\n") == "abcdef\n"


def test_a_stream_carries_its_style_and_cut_sequences_across_chunks() -> None:
    c = AnsiHtml()
    first = c.feed("plain \x1b[3")  # the sequence is cut
    assert first == "plain "
    second = c.feed("1mred")
    assert second == '<span class="ansi-fg-1">red</span>'  # complete on its own
    third = c.feed(" still red\x1b[0m done")
    assert third == '<span class="ansi-fg-1"> still red</span> done'
    assert c.close() == ""


def test_a_stray_escape_at_the_end_is_dropped_on_close() -> None:
    c = AnsiHtml()
    assert c.feed("x\x1b") == "x"
    assert c.close() == ""
