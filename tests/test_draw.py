"""guidance/draw.py: boxes and paths land where the trajectories say, one colour per box."""
import numpy as np
import pytest
from PIL import Image

from guidance.draw import colour, draw_condition, draw_overlay
from guidance.trajectory import Trajectories


def two_boxes(size=(128, 96)) -> Trajectories:
    boxes = [[10, 10, 30, 30], [70, 50, 100, 80]]
    path0 = [[20 + 10 * n, 20] for n in range(4)]                   # moves right by 30 px
    path1 = [[85, 65]] * 4                                          # pinned
    return Trajectories(np.array(boxes), np.array([path0, path1]), size)


def test_draw_condition_boxes_path_and_colours():
    image = Image.new("RGB", (128, 96))
    out = np.array(draw_condition(image, two_boxes()))
    assert np.array_equal(np.array(image), np.zeros((96, 128, 3)))  # input untouched
    assert tuple(out[10, 20]) == colour(0) and tuple(out[50, 85]) == colour(1)   # top edges of the boxes
    assert tuple(out[20, 40]) == colour(0)                          # on the path, right of box 0
    assert tuple(out[20, 49]) == colour(0)                          # the arrow head at the last centre
    assert colour(0) != colour(1)
    assert tuple(out[5, 120]) == (0, 0, 0)                          # elsewhere: unchanged


def test_draw_condition_rescales_to_the_image():
    out = np.array(draw_condition(Image.new("RGB", (256, 192)), two_boxes()))   # 2x the trajectory size
    assert tuple(out[20, 40]) == colour(0) and tuple(out[100, 170]) == colour(1)


def test_draw_overlay_draws_each_frames_target_box():
    frames = np.zeros((4, 96, 128, 3), np.uint8)
    out = draw_overlay(frames, two_boxes())
    assert out.shape == frames.shape and out.dtype == np.uint8 and not frames.any()
    for n in range(4):
        x0 = 10 + 10 * n                                            # box 0 translated by 10 px per frame
        assert tuple(out[n, 20, x0]) == colour(0), n                   # its left edge
        assert tuple(out[n, 20, x0 - 2]) == (0, 0, 0), n
        assert tuple(out[n, 65, 70]) == colour(1)                      # box 1 stays
    with pytest.raises(ValueError, match="4 trajectory frames"):
        draw_overlay(frames[:3], two_boxes())
