"""Masked variables: GitLab's maskability rules, and masking streamed job output."""

from __future__ import annotations

import itertools

import pytest

from conveyor.ci.run.masking import Masker, validate_maskable


@pytest.mark.parametrize(
    ("value", "raw", "problem"),
    [
        ("AbCd1234", False, None),
        ("glpat-Xy_Z0123456789abcd", False, None),
        ("dXNlcjpwYXNz+/==", False, None),  # Base64 with padding
        ("user@host:8080/path.~x", False, None),
        ("short", False, "fewer than 8 characters"),
        ("has space inside", False, "whitespace"),
        ("tab\tinside!", True, "whitespace"),
        ("two\nlines-here", False, "more than one line"),
        ("pa$$word!", False, "'!' '$'"),
        ("pa$$word!", True, None),  # raw variables may hold any non-space character
        ("ünïcödé-value", False, "'ï' 'ö' 'ü'"),
        ("ünïcödé-value", True, None),
    ],
)
def test_validate_maskable(value: str, raw: bool, problem: str | None) -> None:
    found = validate_maskable(value, raw=raw)
    if problem is None:
        assert found is None
    else:
        assert found is not None
        assert found.startswith("cannot be masked: ")
        assert problem in found


def test_a_value_equal_to_a_variable_name_cannot_be_masked() -> None:
    found = validate_maskable("CI_COMMIT_SHA", variable_names={"CI_COMMIT_SHA"})
    assert found is not None
    assert "name of a CI/CD variable" in found


def reference(values: list[str], text: bytes) -> bytes:
    """Brute force: every occurrence of every value; overlapping ones form one masked run."""
    spans = sorted(
        (i, i + len(v))
        for v in (x.encode() for x in values if x)
        for i in range(len(text))
        if text.startswith(v, i)
    )
    runs: list[list[int]] = []
    for start, end in spans:
        if runs and start < runs[-1][1]:
            runs[-1][1] = max(runs[-1][1], end)
        else:
            runs.append([start, end])
    out, pos = b"", 0
    for start, end in runs:
        out += text[pos:start] + b"[MASKED]"
        pos = end
    return out + text[pos:]


EXPECTED = [
    # values, text, masked text
    (["s3cr3tPW"], "pw=s3cr3tPW!", "pw=[MASKED]!"),
    (["s3cr3tPW"], "s3cr3tPWs3cr3tPW", "[MASKED][MASKED]"),  # adjacent: two markers
    (["password", "password123"], "x password123 y", "x [MASKED] y"),  # longest first
    (["abcdefgh", "efghijkl"], "abcdefghijkl", "[MASKED]"),  # overlapping: nothing leaks
    (["aaaaaaaa"], "a" * 20, "[MASKED]"),  # a run of overlaps is one marker
    (["tokenTOKEN"], "no secrets here", "no secrets here"),
    (["ünïcödé-secret"], "value: ünïcödé-secret.", "value: [MASKED]."),
]


@pytest.mark.parametrize(("values", "text", "masked"), EXPECTED)
def test_mask_text(values: list[str], text: str, masked: str) -> None:
    assert Masker(values).mask_text(text) == masked
    assert reference(values, text.encode()) == masked.encode()


def feed_chunks(values: list[str], chunks: list[bytes]) -> bytes:
    masker = Masker(values)
    return b"".join(masker.feed(c) for c in chunks) + masker.close()


STREAMS = [
    (["s3cr3tPW"], b"a s3cr3tPW b s3cr3tPWs3cr3tPW c s3cr3tP"),
    (["password", "password123"], b"password12 password123password"),
    (["abcdefgh", "efghijkl", "ghij"], b"xxabcdefghijklyy efghij abcdefgh"),
    (["aaaaaaaa", "aab"], b"aaaaaaaaaaaaab aaab"),
    (["\u00e9t\u00e9-secret"], "summer: \u00e9t\u00e9-secret \u00e9t\u00e9".encode()),
]


@pytest.mark.parametrize(("values", "text"), STREAMS)
def test_every_split_into_three_chunks(values: list[str], text: bytes) -> None:
    expected = reference(values, text)
    assert Masker(values).mask_bytes(text) == expected
    for i, j in itertools.combinations_with_replacement(range(len(text) + 1), 2):
        chunks = [text[:i], text[i:j], text[j:]]
        assert feed_chunks(values, chunks) == expected, (i, j)


@pytest.mark.parametrize(("values", "text"), STREAMS)
def test_byte_by_byte(values: list[str], text: bytes) -> None:
    assert feed_chunks(values, [text[k : k + 1] for k in range(len(text))]) == reference(
        values, text
    )


def test_the_held_back_tail_stays_small() -> None:
    masker = Masker(["aaaaaaaa"])
    out = b""
    for _ in range(1000):
        out += masker.feed(b"a" * 97)
        assert len(masker._buffer) <= 7  # longest value - 1, even inside an endless run
    out += masker.close()
    assert out == b"[MASKED]"


def test_output_is_released_as_soon_as_it_is_safe() -> None:
    masker = Masker(["s3cr3tPW"])
    assert masker.feed(b"hello world\n") == b"hello world\n"  # cannot start the secret
    assert masker.feed(b"token: s3cr") == b"token: "  # might: held back
    assert masker.feed(b"3tPW\n") == b"[MASKED]\n"
    assert masker.feed(b"s3cr3") == b""
    assert masker.feed(b"x") == b"s3cr3x"  # it was not the secret after all
    assert masker.close() == b""


def test_no_values_pass_everything_through() -> None:
    masker = Masker(["", b""])
    assert masker.feed(b"anything") == b"anything"
    assert masker.close() == b""
