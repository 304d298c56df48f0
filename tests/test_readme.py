"""The README as a user meets it: its Python snippet runs and steers the video, the names it uses are the
public API, the library imports without PyAV and tqdm, and every file the docs cite is in the repository."""
import ast
import glob
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
DOCS = [README, *sorted((ROOT / "docs").glob("*.md"))]
PACKAGES = ("model", "sampler", "guidance", "weights")


def readme_snippet() -> str:
    """The ```python block of the README's library section."""
    section = README.read_text().split("## Use it as a library", 1)[1].split("\n## ", 1)[0]
    blocks = re.findall(r"```python\n(.*?)```", section, re.S)
    assert len(blocks) == 1, f"expected one python block in the README's library section, found {len(blocks)}"
    return blocks[0]


def disc_centres(frames: np.ndarray) -> np.ndarray:
    """(F, 2) centre of the example's disc in each frame, found by its palette colour (NaN: not found).
    The example is frame 0 of scene 22 of the world (examples/make_examples.py); the disc is sprite 0."""
    from model.config import tiny_world
    from weights.tiny import world
    from weights.tiny.train import world_config
    scenes = world.sample_scenes(world_config(tiny_world()), [22], "cpu")
    video = torch.from_numpy(frames).permute(0, 3, 1, 2).float() / 127.5 - 1          # (F, 3, H, W) in [-1, 1]
    centres, found, _ = world.find_sprite(video, scenes.colour[0, 0])
    assert found.all(), f"the disc is not found in frames {np.flatnonzero(~found.numpy()).tolist()}"
    return centres.numpy()


def test_readme_snippet_generates_and_the_disc_follows_its_path(tmp_path, monkeypatch):
    from sampler import generate, read_video
    (tmp_path / "examples").symlink_to(ROOT / "examples", target_is_directory=True)
    monkeypatch.chdir(tmp_path)                        # the snippet's relative paths; its mp4 lands here
    namespace = {}
    exec(compile(readme_snippet(), "README.md", "exec"), namespace)
    frames, svd, image, traj = (namespace[k] for k in ("frames", "svd", "image", "traj"))
    assert frames.dtype == np.uint8 and frames.shape == (8, 128, 128, 3)   # the tiny model's own size and frames
    assert read_video(tmp_path / "sprites.mp4").shape == (8, 128, 128, 3)

    plain = generate(svd.unet, svd.vae, svd.clip, image, config=svd.cfg, generator=torch.Generator().manual_seed(817))
    target = traj.centres[0]                                               # (F, 2) where the disc is sent (up)
    controlled_error = np.linalg.norm(disc_centres(frames) - target, axis=1).mean()
    plain_error = np.linalg.norm(disc_centres(plain) - target, axis=1).mean()
    # Measured with the shipped model on a CPU: 3.8 px with control against 18.2 px without (ratio 0.21): with
    # control the disc rises 31 of the wanted 36 px; without, it drifts 4 px right and does not rise. Asking
    # for less than half of no control's error leaves a wide margin on the side that matters.
    assert controlled_error < 0.5 * plain_error, (controlled_error, plain_error)


def test_readme_snippet_uses_only_public_names():
    import importlib
    for node in ast.walk(ast.parse(readme_snippet())):
        if isinstance(node, ast.ImportFrom) and node.module.split(".")[0] in PACKAGES:
            assert node.module in PACKAGES, f"the README imports from {node.module}, not a package's public API"
            public = importlib.import_module(node.module).__all__
            for alias in node.names:
                assert alias.name in public, f"{node.module}.{alias.name} is not in {node.module}.__all__"


@pytest.mark.parametrize("package", PACKAGES)
def test_public_names_exist(package):
    import importlib
    module = importlib.import_module(package)
    assert module.__all__ and all(hasattr(module, name) for name in module.__all__)


def test_a_models_defaults_reach_the_library_as_they_reach_run_py():
    from guidance import SGI2VConfig
    from model import svd, tiny_world
    from sampler import sampling_defaults
    tiny = SGI2VConfig.from_model(tiny_world())
    assert (tiny.layers, tiny.window, tiny.lr, tiny.iterations, tiny.cutoff) == (
        ((2, 1), (2, 2), (3, 1), (3, 2)), (0.2, 0.6), 0.3, 10, 0.75)       # model/config.py tiny_world().guidance
    assert SGI2VConfig.from_model(svd()) == SGI2VConfig()                  # SVD: the paper's settings
    assert SGI2VConfig.from_model(tiny_world(), lr=2.0, cutoff=None).lr == 2.0     # overrides win
    defaults = sampling_defaults(tiny_world())
    assert (defaults["num_frames"], defaults["height"], defaults["num_steps"], defaults["motion_bucket_id"]) == (8, 128, 16, 80)
    assert sampling_defaults() == sampling_defaults(svd()) and sampling_defaults()["motion_bucket_id"] == 127
    bad = tiny_world()
    bad.guidance["momentum"] = 0.9
    with pytest.raises(ValueError, match=r"model config sgi2v-tiny: guidance fields \['momentum'\]"):
        SGI2VConfig.from_model(bad)
    bad = tiny_world()
    bad.guidance["window"] = [0.6, 0.2]
    with pytest.raises(ValueError, match=r"model config sgi2v-tiny: guidance window = \(0.6, 0.2\)"):
        SGI2VConfig.from_model(bad)


BLOCK_AV_AND_TQDM = """
import importlib.abc, sys
class Block(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in ("av", "tqdm"):
            raise ImportError(f"blocked for the test: {name}")
sys.meta_path.insert(0, Block())
sys.path.insert(0, sys.argv[1])
import model, sampler, guidance, weights
from sampler import write_mp4
import numpy as np
try:
    write_mp4(np.zeros((1, 2, 2, 3), np.uint8), "never.mp4", fps=7)
except ImportError as e:
    assert "PyAV" in str(e), e
else:
    raise AssertionError("write_mp4 ran without PyAV")
print("imported without av and tqdm")
"""


def test_library_imports_without_av_and_tqdm(tmp_path):
    result = subprocess.run([sys.executable, "-c", BLOCK_AV_AND_TQDM, str(ROOT)], cwd=tmp_path,
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]
    assert "imported without av and tqdm" in result.stdout
    assert not (tmp_path / "never.mp4").exists()


def cited_paths(text: str) -> list:
    """Every repository path written in a document: `bench/results/...`, `docs/...`, `tests/...`, ..."""
    return re.findall(r"(?<![\w/.])((?:bench|docs|tests|weights|examples|model|sampler|guidance)/[\w./*-]*\w/?)", text)


@pytest.mark.parametrize("doc", DOCS, ids=lambda p: p.name)
def test_every_path_a_document_names_exists(doc):
    missing = [p for p in cited_paths(doc.read_text()) if not glob.glob(str(ROOT / p))]
    assert missing == [], f"{doc.name} names paths that are not in the repository: {missing}"


@pytest.mark.parametrize("doc", DOCS, ids=lambda p: p.name)
def test_every_relative_link_of_a_document_resolves(doc):
    links = re.findall(r"\]\(([^)#\s]+)(?:#[^)]*)?\)", doc.read_text())
    missing = [link for link in links if "://" not in link and not (doc.parent / link).exists()]
    assert missing == [], f"{doc.name} links to missing files: {missing}"


def test_no_file_cites_a_document_outside_the_repository():
    """Code and docs cite the paper or docs/, never the build environment's folders or notes."""
    outside = ["/" + "work/", "../" + "shared", "shared/" + "reference", "svd-" + "spec.md", "method " + "note",
               "INTERFACES" + ".md"]
    files = subprocess.run(["git", "ls-files", "*.py", "*.md", "*.sh", "*.ini", ".ci/*"], cwd=ROOT,
                           capture_output=True, text=True).stdout.split()
    if not files:
        pytest.skip("not a git checkout")
    found = [(f, s) for f in files if not f.startswith("bench/results/") and (ROOT / f).is_file()
             for s in outside if s in (ROOT / f).read_text(errors="replace")]
    assert found == [], found
