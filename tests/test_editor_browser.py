"""The editor's page in a real browser: headless Chromium driven by selenium (Debian's chromium and
chromium-driver; .ci/run installs them), against the server on the shipped tiny model (128x128, 8 frames).
Skipped, with the reason, only where chromium or chromedriver is not installed."""
import json
import math
import shutil
import tempfile
import time
from pathlib import Path

import numpy as np
import pytest

from guidance.trajectory import load_npy, load_trajectories
from tests.test_editor_server import serving

REPO = Path(__file__).resolve().parents[1]
CHROMIUM, CHROMEDRIVER = shutil.which("chromium"), shutil.which("chromedriver")
pytestmark = pytest.mark.skipif(CHROMIUM is None or CHROMEDRIVER is None,
                                reason="needs Debian's chromium and chromium-driver (apt-get install chromium "
                                       "chromium-driver; .ci/run does)")
CHROMIUM_FLAGS = ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                  "--disable-background-networking", "--disable-component-update", "--disable-sync",
                  "--window-size=1400,1000"]
F, SIZE = 8, (128, 128)                                   # the shipped tiny model's frames and the example's size


@pytest.fixture(scope="module")
def downloads(tmp_path_factory):
    return tmp_path_factory.mktemp("downloads")


@pytest.fixture(scope="module")
def browser(downloads):
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in CHROMIUM_FLAGS:
        options.add_argument(flag)
    profile = tempfile.mkdtemp(prefix="chromium-profile-")
    options.add_argument(f"--user-data-dir={profile}")
    options.add_experimental_option("prefs", {"download.default_directory": str(downloads),
                                              "download.prompt_for_download": False})
    driver = webdriver.Chrome(options=options, service=Service(CHROMEDRIVER))
    driver.execute_cdp_cmd("Browser.setDownloadBehavior", {"behavior": "allow", "downloadPath": str(downloads)})
    yield driver
    driver.quit()
    shutil.rmtree(profile, ignore_errors=True)


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    """The shipped tiny model on the bundled example's image, no start trajectory; 6 steps, 1 iteration (speed)."""
    root = tmp_path_factory.mktemp("editor")
    with serving(["--image", str(REPO / "examples" / "sprites.png"), "--out", str(root), "--steps", "6",
                  "--iterations", "1"]) as s:
        yield s


def open_page(browser, server):
    browser.get(server.url)
    wait(lambda: browser.execute_script("return window.editor && editor.state.config && editor.state.image !== null"))


def wait(condition, timeout_s=20.0, what="condition"):
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(0.1)
    raise AssertionError(f"{what}: not met within {timeout_s} s")


def canvas_origin(browser):
    """Viewport position of the canvas's image area and its display px per image px."""
    return browser.execute_script("""const c = document.getElementById('canvas'), r = c.getBoundingClientRect();
        return [r.left + c.clientLeft, r.top + c.clientTop, c.width / editor.state.imageSize[0]];""")


def drag(browser, start, end, origin):
    """Press at image point start, move in 4 steps, release at end (viewport pixels are whole numbers).
    Returns the image points the page received."""
    from selenium.webdriver.common.actions.action_builder import ActionBuilder
    left, top, k = origin
    (x0, y0), (x1, y1) = [(round(left + x * k), round(top + y * k)) for x, y in (start, end)]
    actions = ActionBuilder(browser)
    actions.pointer_action.move_to_location(x0, y0).pointer_down()
    for i in range(1, 5):
        actions.pointer_action.move_to_location(round(x0 + (x1 - x0) * i / 4), round(y0 + (y1 - y0) * i / 4))
    actions.pointer_action.pointer_up()
    actions.perform()
    return ((x0 - left) / k, (y0 - top) / k), ((x1 - left) / k, (y1 - top) / k)


def round2(v):                                           # the page's Math.round(v * 100) / 100, for v >= 0
    return math.floor(v * 100 + 0.5) / 100


def go_to_frame(browser, n):
    from selenium.webdriver.common.keys import Keys
    slider = browser.find_element("id", "frame")
    current = browser.execute_script("return editor.state.frame")
    slider.send_keys((Keys.ARROW_RIGHT if n > current else Keys.ARROW_LEFT) * abs(n - current))
    assert browser.execute_script("return editor.state.frame") == n


def save(browser, downloads):
    """Click Save JSON; the downloaded file's JSON."""
    for old in downloads.iterdir():
        old.unlink()
    browser.find_element("id", "save").click()

    def downloaded():                                     # the file may appear before its bytes are written
        for path in downloads.glob("*.json"):
            try:
                return path, json.loads(path.read_text())
            except json.JSONDecodeError:
                return None
    return wait(downloaded, what="download")


def js_centres(browser):
    return np.array(browser.execute_script("return editor.state.boxes.map(editor.centres)"))   # (B, F, 2)


def test_page_needs_the_token(browser, server):
    browser.get(server.url.split("?")[0])                             # no token (and no cookie yet)
    assert "403 forbidden" in browser.find_element("tag name", "body").text
    open_page(browser, server)
    assert browser.title == "SG-I2V trajectory editor"
    assert browser.find_element("id", "model-info").text == "sgi2v-tiny: 8 frames at 128x128, 7 fps, 6 steps"
    status = browser.execute_async_script("""const done = arguments[0];      // without cookie and header
        fetch('/api/config', {credentials: 'omit'}).then(r => done(r.status));""")
    assert status == 403


def test_drawn_box_and_two_keyframes_save_the_expected_trajectory(browser, server, downloads):
    open_page(browser, server)
    origin = canvas_origin(browser)
    (ax, ay), (bx, by) = drag(browser, (20, 24), (60, 56), origin)             # frame 0: draw a box
    box = [round2(min(ax, bx)), round2(min(ay, by)), round2(max(ax, bx)), round2(max(ay, by))]
    centre = [(box[0] + box[2]) / 2, (box[1] + box[3]) / 2]
    go_to_frame(browser, 3)                                                    # frame 3: drag it up-right
    (ax, ay), (bx, by) = drag(browser, centre, (centre[0] + 10, centre[1] - 10), origin)
    key3 = [round2(centre[0] + bx - ax), round2(centre[1] + by - ay)]
    go_to_frame(browser, 7)                                                    # frame 7: it waits at key 3; drag on
    (ax, ay), (bx, by) = drag(browser, key3, (key3[0] + 20, key3[1] + 5), origin)
    key7 = [round2(key3[0] + bx - ax), round2(key3[1] + by - ay)]

    path, doc = save(browser, downloads)
    expected = {"image_size": list(SIZE), "boxes": [{"box": box, "keyframes": {"3": key3, "7": key7}}]}
    if "num_frames" in browser.execute_script("return editor.state.config.json_fields"):
        expected = {"image_size": list(SIZE), "num_frames": F, "boxes": expected["boxes"]}
    assert doc == expected
    assert box == [20, 24, 60, 56] and key3 == [50, 30] and key7 == [70, 35]    # the canvas sits on whole pixels
    # the loader reads the per-frame centres the page drew; float32 rounding of ~100 px values is < 1e-5
    traj = load_trajectories(path, SIZE, F)
    np.testing.assert_allclose(js_centres(browser), traj.centres, atol=1e-4)

    from selenium.webdriver.support.select import Select
    Select(browser.find_element("css selector", "#boxes li .interpolation")).select_by_visible_text("catmull-rom")
    path, doc = save(browser, downloads)
    assert doc["boxes"][0]["interpolation"] == "catmull-rom"
    curved = load_trajectories(path, SIZE, F)
    np.testing.assert_allclose(js_centres(browser), curved.centres, atol=1e-4)
    assert np.abs(curved.centres - traj.centres).max() > 1                     # a different path, not the line


def test_camera_group_pin_and_delete(browser, server, downloads):
    from selenium.webdriver.support.select import Select
    open_page(browser, server)
    origin = canvas_origin(browser)
    for start, end in [((10, 10), (30, 30)), ((80, 80), (110, 100)), ((70, 10), (90, 30))]:
        drag(browser, start, end, origin)
    swatches = browser.find_elements("css selector", "#boxes li .swatch")
    assert [swatch.text for swatch in swatches] == ["0", "1", "2"]
    for i in range(2):                                                         # the list is redrawn on each change
        Select(browser.find_elements("css selector", "#boxes li .group")[i]).select_by_visible_text("1")
    browser.find_elements("css selector", "#boxes li .pin")[2].click()
    go_to_frame(browser, 4)
    drag(browser, (20, 20), (14, 23), origin)                                  # box 0 moves box 1 too: a camera pan
    drag(browser, (80, 20), (100, 20), origin)                                 # box 2 is pinned: no keyframe
    _, doc = save(browser, downloads)
    assert [b.get("group") for b in doc["boxes"]] == [1, 1, None]
    assert doc["boxes"][0]["keyframes"] == {"4": [14, 23]} and doc["boxes"][1]["keyframes"] == {"4": [89, 93]}
    assert doc["boxes"][2]["keyframes"] == {}
    browser.find_elements("css selector", "#boxes li .delete")[1].click()
    _, doc = save(browser, downloads)
    assert [b["box"] for b in doc["boxes"]] == [[10, 10, 30, 30], [70, 10, 90, 30]]


def test_traj_npy_import_with_resampling(browser, server, tmp_path):
    open_page(browser, server)
    t = np.linspace(0, 1, 14)
    array = np.zeros((2, 2 + 14, 2), np.float32)                               # the reference's layout
    array[:, 0], array[:, 1] = [[10, 12], [60, 70]], [[30.5, 40.25], [90, 100]]
    array[0, 2:] = np.stack([20.25 + 50 * t ** 2, 26.3 + 0 * t], -1)           # a curve, resampled in time
    array[1, 2:] = [75, 85]
    np.save(tmp_path / "traj14.npy", array)
    browser.find_element("id", "npy-file").send_keys(str(tmp_path / "traj14.npy"))
    note = wait(lambda: "resampled" in browser.find_element("id", "note-files").text, what="import note")
    assert browser.find_element("id", "note-files").text.startswith(
        "traj14.npy: 14 frames resampled to the model's 8 (linear in normalised time")
    u = np.arange(F) / (F - 1) * 13                                            # frame n at source time n/7 * 13
    expected = np.stack([np.stack([np.interp(u, np.arange(14), array[b, 2:, a]) for a in (0, 1)], -1)
                         for b in range(2)])
    np.testing.assert_allclose(js_centres(browser), expected, atol=1e-4)
    np.save(tmp_path / "traj8.npy", array[:, :2 + F])                          # the model's frame count: exact
    browser.find_element("id", "npy-file").send_keys(str(tmp_path / "traj8.npy"))
    wait(lambda: "traj8.npy" in browser.find_element("id", "note-files").text, what="second import")
    np.testing.assert_allclose(js_centres(browser), load_npy(tmp_path / "traj8.npy", SIZE, F).centres, atol=1e-4)
    assert browser.execute_script("return editor.state.boxes[1].box") == [60, 70, 90, 100]


def test_errors_appear_next_to_their_control(browser, server, tmp_path):
    open_page(browser, server)
    (tmp_path / "bad.json").write_text(json.dumps({"boxes": [{"box": [100, 10, 140, 30], "keyframes": {}}]}))
    browser.find_element("id", "json-file").send_keys(str(tmp_path / "bad.json"))
    error = wait(lambda: browser.find_element("id", "error-trajectory").text, what="trajectory error")
    assert error.startswith("bad.json: box 0: field box = [100.0, 10.0, 140.0, 30.0]: expected the first-frame box")
    seed = browser.find_element("id", "seed")
    seed.clear()
    seed.send_keys("-3")
    browser.find_element("id", "generate").click()
    assert wait(lambda: browser.find_element("id", "error-seed").text) == "seed -3: expected an integer >= 0"


def test_generate_shows_the_video_and_the_follow_report(browser, server):
    open_page(browser, server)
    browser.find_element("id", "json-file").send_keys(str(REPO / "examples" / "sprites.json"))
    wait(lambda: "2 boxes" in browser.find_element("id", "note-files").text, what="example loaded")
    browser.find_element("id", "generate").click()
    seen = set()
    wait(lambda: seen.add(browser.find_element("id", "progress-text").text)
         or "done" in browser.find_element("id", "progress-text").text
         or browser.find_element("id", "error-generate").text, timeout_s=600, what="generation")
    assert browser.find_element("id", "error-generate").text == ""
    assert any(f"denoising step 6 / 6" in text for text in seen), seen         # run.py's progress events
    # the tiny model's window 0.2-0.6 optimises steps 2 and 3 of 6; the page keeps the last loss shown
    assert any(", loss " in text and text.endswith("(step 3)") for text in seen), seen
    for video in ("video", "overlay"):                                         # Debian's chromium plays our H.264
        state = wait(lambda: browser.execute_script(
            f"const v = document.getElementById('{video}'); return v.readyState >= 3 && [v.readyState, v.duration];"))
        assert abs(state[1] - F / 7) < 0.02                                    # 8 frames at 7 fps: 1.143 s
        wait(lambda: browser.execute_script(f"return document.getElementById('{video}').currentTime > 0"),
             what=f"{video} plays")
        seeked = browser.execute_async_script(f"""const done = arguments[0], v = document.getElementById('{video}');
            v.pause(); v.addEventListener('seeked', () => done(v.currentTime), {{once: true}}); v.currentTime = 0.75;""")
        assert abs(seeked - 0.75) < 1e-3                                        # seeking works (Range requests)
    run_id = browser.find_element("id", "result-run").text.split()[1]
    record = json.loads((server.editor.root / run_id / "run.json").read_text())
    follow = browser.find_element("id", "follow").text
    if record.get("follow") is None:
        assert follow == "No follow report in run.json."
    else:
        rows = browser.find_elements("css selector", "#follow-table tr")
        assert len(rows) == 1 + len(record["follow"]["boxes"])
        assert [r.text.split()[-1] for r in rows[1:]] == [b["verdict"].split()[-1] for b in record["follow"]["boxes"]]
    status = browser.execute_async_script(f"""const done = arguments[0];
        fetch('/runs/{run_id}/..%2f..%2f..%2frun.py?token=' + encodeURIComponent('{server.editor.token}'))
          .then(r => done(r.status));""")
    assert status == 404


def test_play_animates_the_frames(browser, server):
    open_page(browser, server)
    play = browser.find_element("id", "play")
    play.click()
    seen = set()
    wait(lambda: seen.add(browser.execute_script("return editor.state.frame")) or len(seen) >= F, timeout_s=10,
         what="every frame shown")                                 # 8 frames at 7 fps loop in about 1.1 s
    play.click()
    stopped = browser.execute_script("return editor.state.frame")
    time.sleep(0.5)
    assert browser.execute_script("return editor.state.frame") == stopped and play.text == "Play"
    assert browser.find_element("id", "frame").get_attribute("value") == str(stopped)
