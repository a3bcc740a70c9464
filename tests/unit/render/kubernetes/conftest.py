"""Rendering the corpus and the examples the way `conveyor render kubernetes` does."""

from __future__ import annotations

from pathlib import Path

from conveyor.app.render import KubeRendering, kube_rendering
from conveyor.model.kube import KubeOptions

HERE = Path(__file__).parent
ROOT = HERE.parents[3]
CORPUS = HERE / "corpus"
GOLDEN = HERE / "golden"
# Every case: the corpus's compose files and every example.
CASES = {
    **{f"corpus-{p.name}": p for p in sorted(CORPUS.iterdir()) if p.is_dir()},
    **{f"example-{p.name}": p for p in sorted((ROOT / "examples").iterdir()) if p.is_dir()},
}


def render_case(directory: Path, options: KubeOptions | None = None) -> KubeRendering:
    # No process environment: the examples' ${VAR:-default} take their defaults.
    return kube_rendering([], Path("conveyor.yaml"), {}, directory, options=options)


def as_text(rendering: KubeRendering) -> str:
    """Every rendered file and every warning, as one text (the golden file's form)."""
    parts = [f"--- {path}\n{text}" for path, text in sorted(rendering.rendering.files.items())]
    parts.append("--- warnings\n" + "".join(f"{w.render()}\n" for w in rendering.warnings))
    return "".join(parts)
