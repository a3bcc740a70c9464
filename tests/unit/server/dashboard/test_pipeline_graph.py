"""The pipeline graph's layout: stage columns in order, `needs` edges, retries once."""

from __future__ import annotations

from conveyor.server.dashboard.pipeline_graph import BOX_H, BOX_W, GraphInput, layout


def job(i: int, name: str, stage: str, status: str = "success") -> GraphInput:
    return GraphInput(i, name, stage, status, 1.0)


def test_columns_follow_the_stages_and_edges_the_needs() -> None:
    jobs = [
        job(1, "build", "build"),
        job(2, "lint", "test"),
        job(3, "unit", "test"),
        job(4, "deploy", "deploy"),
    ]
    g = layout(jobs, {"unit": ["build"], "deploy": ["unit", "lint"], "lint": None})
    assert [c.stage for c in g.columns] == ["build", "test", "deploy"]
    assert [b.job.name for b in g.columns[1].boxes] == ["lint", "unit"]
    xs = [c.x for c in g.columns]
    assert xs == sorted(xs) and len(set(xs)) == 3
    assert {(e.source, e.target) for e in g.edges} == {
        ("build", "unit"),
        ("unit", "deploy"),
        ("lint", "deploy"),
    }
    build = g.columns[0].boxes[0]
    unit = g.columns[1].boxes[1]
    edge = next(e for e in g.edges if e.target == "unit")
    # from the needed job's right side to the needing job's left side
    assert edge.path.startswith(f"M{build.x + BOX_W},{build.y + BOX_H // 2} ")
    assert edge.path.endswith(f" {unit.x},{unit.y + BOX_H // 2}")
    assert g.width >= xs[-1] + BOX_W and g.height >= unit.y + BOX_H


def test_a_need_that_did_not_run_draws_nothing_and_retries_show_once() -> None:
    jobs = [job(1, "a", "test", "failed"), job(2, "b", "test"), job(3, "a", "test")]
    g = layout(jobs, {"b": ["optional-job"], "a": []})
    assert g.edges == []
    boxes = g.columns[0].boxes
    assert [(b.job.name, b.job.id, b.job.status) for b in boxes] == [
        ("a", 3, "success"),
        ("b", 2, "success"),
    ]


def test_a_need_in_the_same_stage_goes_round_below() -> None:
    g = layout([job(1, "a", "test"), job(2, "b", "test")], {"b": ["a"]})
    (edge,) = g.edges
    a, _b = g.columns[0].boxes
    assert edge.path.startswith(f"M{a.x + BOX_W // 2},{a.y + BOX_H} ")


def test_no_jobs_no_columns() -> None:
    g = layout([], {})
    assert g.columns == [] and g.edges == [] and g.width > 0


def test_the_configurations_stage_order_wins_and_empty_stages_are_left_out() -> None:
    jobs = [job(1, "deploy", "deploy"), job(2, "build", "build")]
    g = layout(jobs, {}, ["build", "test", "deploy"])
    assert [c.stage for c in g.columns] == ["build", "deploy"]
