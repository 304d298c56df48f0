"""Tests for guidance/trajectory.py: loaders, geometry and one test per invalid input."""
import json

import numpy as np
import pytest

from guidance.trajectory import (Trajectories, TrajectoryError, latent_boxes, load_json, load_npy,
                                 load_trajectories, rescale, save_npy, to_json)

F = 5
SIZE = (64, 48)  # (W, H)


def write_npy(tmp_path, array, name="traj.npy"):
    path = tmp_path / name
    np.save(path, np.asarray(array))
    return path


def write_json(tmp_path, doc, name="traj.json"):
    path = tmp_path / name
    path.write_text(doc if isinstance(doc, str) else json.dumps(doc))
    return path


def npy_array():
    """Two boxes, F = 5 frames, in the reference layout (B, 2 + F, 2)."""
    box0 = [[8, 4], [24, 20]]                                            # x0,y0 / x1,y1
    path0 = [[16 + 4 * n, 12 + 1.5 * n] for n in range(F)]
    box1 = [[30, 10], [40, 18]]
    path1 = [[35, 14]] * F
    return np.array([box0 + path0, box1 + path1], dtype=np.float64)


def good_json():
    return {"boxes": [{"box": [8, 4, 24, 20], "keyframes": {"0": [16, 12], "4": [32, 18]}},
                      {"box": [30, 10, 40, 18], "keyframes": {}}]}


# ---------------------------------------------------------------------------------------------
# Loading and geometry


def test_npy_and_equivalent_json_give_identical_boxes(tmp_path):
    a = load_npy(write_npy(tmp_path, npy_array()), SIZE, F)
    b = load_json(write_json(tmp_path, good_json()), SIZE, F)
    np.testing.assert_array_equal(a.boxes, b.boxes)
    np.testing.assert_array_equal(a.centres, b.centres)
    np.testing.assert_array_equal(a.boxes_per_frame(), b.boxes_per_frame())
    np.testing.assert_array_equal(latent_boxes(a), latent_boxes(b))
    assert a.image_size == b.image_size == SIZE


def test_load_trajectories_dispatches_on_suffix(tmp_path):
    a = load_trajectories(write_npy(tmp_path, npy_array()), SIZE, F)
    b = load_trajectories(write_json(tmp_path, good_json()), SIZE, F)
    np.testing.assert_array_equal(a.centres, b.centres)


def test_keyframes_interpolate_default_to_box_centre_and_hold(tmp_path):
    doc = {"boxes": [{"box": [0, 0, 10, 20], "keyframes": {"2": [9, 10]}}]}
    t = load_json(write_json(tmp_path, doc), SIZE, 6)
    # frame 0 = box centre (5, 10), linear to frame 2 = (9, 10), then held
    expected = [[5, 10], [7, 10], [9, 10], [9, 10], [9, 10], [9, 10]]
    np.testing.assert_array_equal(t.centres[0], np.array(expected, np.float32))


def test_json_image_size_overrides_and_path_format(tmp_path):
    doc = {"image_size": [128, 96], "comment": "x",
           "boxes": [{"box": [100, 80, 120, 96], "path": [[110, 88]] * F, "comment": "y"}]}
    t = load_json(write_json(tmp_path, doc), SIZE, F)  # would be outside a 64x48 image
    assert t.image_size == (128, 96)


def test_json_round_trip_is_exact(tmp_path):
    t = load_npy(write_npy(tmp_path, npy_array() + np.pi), SIZE, F)
    t = rescale(t, (1024, 576))
    back = load_json(write_json(tmp_path, to_json(t)), None, F)
    np.testing.assert_array_equal(back.boxes, t.boxes)
    np.testing.assert_array_equal(back.centres, t.centres)
    assert back.image_size == (1024, 576)


def test_npy_round_trip_is_exact(tmp_path):
    t = rescale(load_npy(write_npy(tmp_path, npy_array() + 0.3), SIZE, F), (100, 70))
    save_npy(t, tmp_path / "out.npy")
    back = load_npy(tmp_path / "out.npy", t.image_size, F)
    np.testing.assert_array_equal(back.boxes, t.boxes)
    np.testing.assert_array_equal(back.centres, t.centres)


def test_rescale_scales_x_by_width_and_y_by_height():
    t = Trajectories([[10, 20, 30, 40]], [[[20, 30], [25, 35]]], (100, 50))
    r = rescale(t, (200, 25))
    np.testing.assert_allclose(r.boxes, [[20, 10, 60, 20]])
    np.testing.assert_allclose(r.centres, [[[40, 15], [50, 17.5]]])
    assert r.image_size == (200, 25)


def test_boxes_per_frame_translate_first_box_by_centre_displacement():
    # the first centre need not be the box centre: only displacements matter
    t = Trajectories([[10, 20, 30, 40]], [[[19, 31], [24, 29], [9, 31]]], (100, 50))
    np.testing.assert_array_equal(t.boxes_per_frame()[0],
                                  [[10, 20, 30, 40], [15, 18, 35, 38], [0, 20, 20, 40]])


def reference_latent_boxes(boxes, centres):
    """Direct port of the reference's per-frame loop (inference.py + pipeline.py)."""
    out = []
    for j in range(len(boxes)):
        per_frame = []
        for i in range(centres.shape[1]):
            dx, dy = centres[j][i] - centres[j][0]
            p = np.array([boxes[j][1] + dy, boxes[j][0] + dx, boxes[j][3] + dy, boxes[j][2] + dx],
                         dtype=np.float32)
            p = (p // 8).astype(np.int32)
            per_frame.append([p[0], p[1], max(p[0] + 1, p[2]), max(p[1] + 1, p[3])])
        out.append(per_frame)
    return np.array(out)


def test_latent_boxes_match_reference_loop_including_floor_of_negatives_and_min_size():
    boxes = np.array([[8, 4, 24, 20], [3, 3, 5, 6], [100, 1, 127.9, 9]], np.float32)
    rng = np.random.default_rng(0)
    centres = rng.uniform(-60, 200, size=(3, 7, 2)).astype(np.float32)
    t = Trajectories(boxes, centres, (128, 64))
    got = latent_boxes(t)
    np.testing.assert_array_equal(got, reference_latent_boxes(t.boxes, t.centres))
    assert (got[..., 2] > got[..., 0]).all() and (got[..., 3] > got[..., 1]).all()
    # hand-checked: a 2x3-pixel box inside one cell becomes 1x1 cell; -1 px floors to cell -1
    t2 = Trajectories([[3, 3, 5, 6]], [[[4, 4.5], [-4, 4.5]]], (64, 64))
    np.testing.assert_array_equal(latent_boxes(t2)[0], [[0, 0, 1, 1], [0, -1, 1, 0]])


# ---------------------------------------------------------------------------------------------
# Invalid inputs: one test each, the message names the file, the box, the field and the value


def raises(path_fn, *needles):
    with pytest.raises(TrajectoryError) as info:
        path_fn()
    message = str(info.value)
    for needle in needles:
        assert needle in message, f"{needle!r} not in {message!r}"
    return message


def test_error_first_frame_box_outside_image(tmp_path):
    a = npy_array()
    a[1, 1] = [70, 18]                                                   # x1 = 70 > W = 64
    p = write_npy(tmp_path, a)
    raises(lambda: load_npy(p, SIZE, F), str(p), "box 1", "rows 0-1", "70.0", "inside the 64x48")


def test_error_first_frame_box_outside_image_json(tmp_path):
    doc = good_json()
    doc["boxes"][0]["box"] = [8, -2, 24, 20]
    p = write_json(tmp_path, doc)
    raises(lambda: load_json(p, SIZE, F), str(p), "box 0", "field box", "-2.0", "inside the 64x48")


def test_error_zero_size_box(tmp_path):
    doc = good_json()
    doc["boxes"][1]["box"] = [30, 10, 30, 18]
    p = write_json(tmp_path, doc)
    raises(lambda: load_json(p, SIZE, F), str(p), "box 1", "field box", "positive size", "width 0")


def test_error_negative_size_box(tmp_path):
    a = npy_array()
    a[0, 1] = [24, 2]                                                    # y1 = 2 < y0 = 4
    p = write_npy(tmp_path, a)
    raises(lambda: load_npy(p, SIZE, F), str(p), "box 0", "positive size", "height -2")


def test_error_wrong_array_shape(tmp_path):
    p = write_npy(tmp_path, np.zeros((2, 7, 3)))
    raises(lambda: load_npy(p, SIZE, F), str(p), "array shape", "(2, 7, 3)", "(B, 2 + F, 2)")


def test_error_frame_count_differs_from_video_npy(tmp_path):
    p = write_npy(tmp_path, npy_array())
    raises(lambda: load_npy(p, SIZE, 14), str(p), "frame count", "5", "14 frames")


def test_error_frame_count_differs_from_video_json(tmp_path):
    doc = {"boxes": [{"box": [8, 4, 24, 20], "path": [[16, 12]] * 3}]}
    p = write_json(tmp_path, doc)
    raises(lambda: load_json(p, SIZE, F), str(p), "box 0", "field path", "3 points", "5 points")


def test_error_nan_in_npy(tmp_path):
    a = npy_array()
    a[1, 2 + 3, 0] = np.nan
    p = write_npy(tmp_path, a)
    raises(lambda: load_npy(p, SIZE, F), str(p), "box 1", "centre of frame 3", "nan", "finite")


def test_error_inf_in_json(tmp_path):
    text = json.dumps({"boxes": [{"box": [8, 4, 24, 20], "path": [[16, 12]] * F}]})
    text = text.replace("[16, 12]]", "[Infinity, 12]]", 1)  # the last point becomes inf
    p = write_json(tmp_path, text)
    raises(lambda: load_json(p, SIZE, F), str(p), "box 0", "path[4][0]", "inf", "finite")


def test_error_unknown_json_field_top_level(tmp_path):
    doc = good_json()
    doc["frames"] = 14
    p = write_json(tmp_path, doc)
    raises(lambda: load_json(p, SIZE, F), str(p), "'frames'", "boxes, image_size, comment")


def test_error_unknown_json_field_in_box(tmp_path):
    doc = good_json()
    doc["boxes"][1]["colour"] = "red"
    p = write_json(tmp_path, doc)
    raises(lambda: load_json(p, SIZE, F), str(p), "box 1", "'colour'",
           "box, path, keyframes, comment")


def test_error_keyframe_index_out_of_range(tmp_path):
    doc = good_json()
    doc["boxes"][0]["keyframes"]["5"] = [20, 20]
    p = write_json(tmp_path, doc)
    raises(lambda: load_json(p, SIZE, F), str(p), "box 0", "keyframes['5']", "0 <= index < 5")


def test_error_keyframe_index_not_an_integer(tmp_path):
    doc = good_json()
    doc["boxes"][0]["keyframes"]["last"] = [20, 20]
    p = write_json(tmp_path, doc)
    raises(lambda: load_json(p, SIZE, F), str(p), "box 0", "keyframes['last']", "integer frame index")


def test_error_missing_boxes_field(tmp_path):
    p = write_json(tmp_path, {"image_size": [64, 48]})
    raises(lambda: load_json(p, SIZE, F), str(p), "field boxes is missing")


def test_error_missing_box_field(tmp_path):
    doc = good_json()
    del doc["boxes"][1]["box"]
    p = write_json(tmp_path, doc)
    raises(lambda: load_json(p, SIZE, F), str(p), "box 1", "field box is missing")


def test_error_missing_path_and_keyframes(tmp_path):
    doc = {"boxes": [{"box": [8, 4, 24, 20]}]}
    p = write_json(tmp_path, doc)
    raises(lambda: load_json(p, SIZE, F), str(p), "box 0", "path/keyframes is missing")


def test_error_non_numeric_json(tmp_path):
    doc = good_json()
    doc["boxes"][0]["box"] = [8, "4", 24, 20]
    p = write_json(tmp_path, doc)
    raises(lambda: load_json(p, SIZE, F), str(p), "box 0", "box[1]", "'4'", "a number")


def test_error_non_numeric_npy(tmp_path):
    p = write_npy(tmp_path, np.full((1, 7, 2), "a"))
    raises(lambda: load_npy(p, SIZE, F), str(p), "array dtype", "<U1", "numeric")


def test_error_invalid_json_syntax(tmp_path):
    p = write_json(tmp_path, '{"boxes": [}')
    raises(lambda: load_json(p, SIZE, F), str(p), "JSON", "line 1")


def test_error_unknown_suffix(tmp_path):
    p = write_json(tmp_path, good_json(), name="traj.txt")
    raises(lambda: load_trajectories(p, SIZE, F), str(p), "suffix", "'.txt'", ".npy")


def test_bundled_camera_example_moves_background_boxes_together():
    """examples/camera.json (examples/make_examples.py): every box on the background of examples/sprites.png
    moves 12 px left by the last of 8 frames, clear of the sprites' boxes (examples/sprites.json) and inside
    the image in every frame."""
    from pathlib import Path
    from PIL import Image
    here = Path(__file__).resolve().parents[1] / "examples"
    size = Image.open(here / "sprites.png").size
    cam = load_trajectories(here / "camera.json", size, 8)
    sprites = load_trajectories(here / "sprites.json", size, 8)
    assert len(cam.boxes) == 2
    shift = cam.centres - cam.centres[:, :1]                                     # (B, F, 2)
    assert np.allclose(shift[:, -1], [-12.0, 0.0]) and np.allclose(shift[0], shift[1])
    for box in cam.boxes:
        assert box[0] - 12 >= 0 and box[2] <= size[0] and box[1] >= 0 and box[3] <= size[1]
        for s in sprites.boxes:
            assert box[2] <= s[0] or s[2] <= box[0] or box[3] <= s[1] or s[3] <= box[1], (box, s)


def test_catmull_rom_keyframes_pass_through_keys_and_curve_between(tmp_path):
    # keys x = 10, 20, 10 at frames 0, 2, 4; Catmull-Rom tangents 5, 0, -5 px/frame; at frame 1 (s = 1/2 of a
    # 2-frame piece) the Hermite weights are 1/2, 1/8 * 2, 1/2, -1/8 * 2: x = 5 + 1.25 + 10 - 0 = 16.25
    # (linear: 15); every term is a short binary fraction, so float32 holds it exactly
    doc = {"boxes": [{"box": [5, 5, 15, 15], "interpolation": "catmull-rom", "group": 1,
                      "keyframes": {"2": [20, 10], "4": [10, 10]}}]}
    t = load_json(write_json(tmp_path, doc), SIZE, 6)
    np.testing.assert_array_equal(t.centres[0, :, 0], np.float32([10, 16.25, 20, 16.25, 10, 10]))
    # two keyframes: the one-sided tangents equal the slope, so the curve is the straight line
    doc = {"boxes": [{"box": [0, 0, 10, 20], "interpolation": "catmull-rom", "keyframes": {"2": [9, 10]}}]}
    curved = load_json(write_json(tmp_path, doc), SIZE, 6)
    del doc["boxes"][0]["interpolation"]
    np.testing.assert_allclose(curved.centres, load_json(write_json(tmp_path, doc), SIZE, 6).centres, atol=1e-6)


def test_error_unknown_interpolation_and_bad_group(tmp_path):
    doc = good_json()
    doc["boxes"][0]["interpolation"] = "cubic"
    p = write_json(tmp_path, doc)
    raises(lambda: load_json(p, SIZE, F), str(p), "box 0", "interpolation", "'cubic'", "linear, catmull-rom")
    doc = good_json()
    doc["boxes"][1]["group"] = -1
    p = write_json(tmp_path, doc)
    raises(lambda: load_json(p, SIZE, F), str(p), "box 1", "group", "-1", "an integer >= 0")
