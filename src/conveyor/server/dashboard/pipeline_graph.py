"""A pipeline's graph laid out for an SVG: one column per stage (in the pipeline's order),
its jobs stacked in it, and one edge per `needs:` entry from the needed job's right side to
the needing job's left side. Pure: coordinates only, the template draws them. Jobs without
`needs` run in stage order, which the columns already show, so they get no edges."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

BOX_W, BOX_H = 180, 44  # a job's box
COL_GAP, ROW_GAP = 56, 12  # room for the edges between columns; between boxes
HEAD_H = 28  # the stage's name above its column
PAD = 8


@dataclass(frozen=True)
class GraphInput:
    """What the layout needs of a job."""

    id: int  # 0: a job of the configuration the pipeline has not started yet (no page)
    name: str
    stage: str
    status: str
    duration: float | None


@dataclass(frozen=True)
class Box:
    job: GraphInput
    x: int
    y: int
    w: int = BOX_W
    h: int = BOX_H


@dataclass(frozen=True)
class Column:
    stage: str
    x: int
    boxes: list[Box]


@dataclass(frozen=True)
class Edge:
    source: str  # the needed job
    target: str  # the job that needs it
    path: str  # an SVG path (a cubic curve)


@dataclass(frozen=True)
class Layout:
    columns: list[Column]
    edges: list[Edge]
    width: int
    height: int


def layout(
    jobs: Sequence[GraphInput],
    needs: Mapping[str, Sequence[str] | None],
    stage_order: Sequence[str] = (),
) -> Layout:
    """Columns in `stage_order` (the configuration's), then any other stage in the order it
    first appears among `jobs` (the engine records jobs in stage order); a job's retries
    (same name) show once, the newest."""
    newest: dict[str, GraphInput] = {}
    for j in jobs:
        newest[j.name] = j  # later ids are retries: they win
    stages: dict[str, list[GraphInput]] = {name: [] for name in stage_order}
    for j in newest.values():
        stages.setdefault(j.stage, []).append(j)
    stages = {name: members for name, members in stages.items() if members}
    columns: list[Column] = []
    where: dict[str, Box] = {}
    for i, (stage, members) in enumerate(stages.items()):
        x = PAD + i * (BOX_W + COL_GAP)
        boxes = []
        for k, j in enumerate(members):
            box = Box(j, x, PAD + HEAD_H + k * (BOX_H + ROW_GAP))
            boxes.append(box)
            where[j.name] = box
        columns.append(Column(stage, x, boxes))
    edges: list[Edge] = []
    for name, box in where.items():
        for needed in needs.get(name) or ():
            source = where.get(needed)
            if source is None or source is box:
                continue  # a need that did not run here (rules, optional): nothing to draw
            edges.append(Edge(needed, name, _curve(source, box)))
    tallest = max((len(c.boxes) for c in columns), default=0)
    width = PAD * 2 + max(0, len(columns) * (BOX_W + COL_GAP) - COL_GAP)
    height = PAD * 2 + HEAD_H + max(0, tallest * (BOX_H + ROW_GAP) - ROW_GAP)
    return Layout(columns, edges, width, height)


def _curve(source: Box, target: Box) -> str:
    x1, y1 = source.x + source.w, source.y + source.h // 2
    x2, y2 = target.x, target.y + target.h // 2
    if x2 <= x1:  # a need within the same stage or backwards: go round below the boxes
        x1, y1 = source.x + source.w // 2, source.y + source.h
        x2, y2 = target.x + target.w // 2, target.y + target.h
        bend = max(y1, y2) + ROW_GAP
        return f"M{x1},{y1} C{x1},{bend} {x2},{bend} {x2},{y2}"
    mid = (x1 + x2) // 2
    return f"M{x1},{y1} C{mid},{y1} {mid},{y2} {x2},{y2}"
