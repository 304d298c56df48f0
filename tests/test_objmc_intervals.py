"""bench.objmc_tiny.ratio_interval: the bootstrap interval over tasks of one variant's ObjMC over another's."""
import json

import numpy as np
import pytest

from bench.objmc_tiny import ratio_interval


def rows(errors_per_task):
    """Per-task rows as bench.objmc_tiny.measure writes them: one sprite per task, None = not found."""
    return [{"sprites": [{"error_px": list(e)}]} for e in errors_per_task]


def test_a_constant_per_task_ratio_has_no_spread():
    base = rows([[1.0, 2.0, 4.0], [3.0, 5.0, 8.0], [0.5, 6.0, 9.0]])
    half = rows([[0.5, 1.0, 2.0], [1.5, 2.5, 4.0], [0.25, 3.0, 4.5]])
    assert ratio_interval(half, base) == pytest.approx((0.5, 0.5))


def test_interval_brackets_the_pooled_ratio_and_widens_with_disagreeing_tasks():
    rng = np.random.default_rng(1)
    base_e = rng.uniform(5, 10, (32, 8))
    agree = rows(base_e * 0.5)
    spread = rows(base_e * rng.choice([0.1, 0.9], size=(32, 1)))      # half the tasks 0.1x, half 0.9x
    base = rows(base_e)
    low, high = ratio_interval(spread, base)
    point = sum(sum(r["sprites"][0]["error_px"]) for r in spread) / base_e.sum()
    assert low < point < high and high - low > 0.2, (low, point, high)
    a_low, a_high = ratio_interval(agree, base)
    assert a_high - a_low < 1e-9


def test_frames_where_the_sprite_is_not_found_are_left_out():
    base = rows([[2.0, 2.0], [2.0, 2.0]])
    found_half = rows([[1.0, None], [1.0, None]])                      # mean of the found frames: 1.0
    assert ratio_interval(found_half, base) == pytest.approx((0.5, 0.5))


def test_intervals_divide_by_the_chosen_base_over_the_chosen_kind(tmp_path, capsys):
    from bench.objmc_tiny import intervals
    tasks = [{"kind": "object"}, {"kind": "object"}, {"kind": "camera"}]
    per_task = {"none": rows([[4.0, 4.0], [8.0, 8.0], [6.0, 6.0]]),
                "a": rows([[2.0, 2.0], [4.0, 4.0], [6.0, 6.0]]),             # object tasks halved, camera not
                "b": rows([[1.0, 1.0], [2.0, 2.0], [6.0, 6.0]])}
    path = tmp_path / "r.json"
    path.write_text(json.dumps({"tasks": tasks, "per_task": per_task}))

    def printed():
        return {line.split()[0]: float(line.split()[1]) for line in capsys.readouterr().out.splitlines()[1:]}
    intervals(str(path), kind="object")
    assert printed() == {"none": 1.0, "a": 0.5, "b": 0.25}
    intervals(str(path), kind="camera")
    assert printed() == {"none": 1.0, "a": 1.0, "b": 1.0}
    intervals(str(path), base="a")                                   # all tasks: a pooled 4.0, b 3.0, none 6.0
    assert printed() == {"none": 1.5, "a": 1.0, "b": 0.75}
    with pytest.raises(SystemExit, match="no variant 'c'"):
        intervals(str(path), base="c")
