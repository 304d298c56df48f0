"""SG-I2V trajectory control works end to end with the shipped tiny model (CPU).

The first three tasks of bench/objmc_tiny.py's held-out task set, taken as they come (not picked by
result): seed 3000 one sprite redirected, 3001 one pinned and one redirected, 3002 three redirected
(boxes = the sprites' frame-0 boxes; targets differ from the scene's own motion; see the bench's
docstring). 10 Euler steps (the window (0.2, 0.6) then optimises steps 2..6), sampling seed 0, each
scene's own motion bucket, the bench's tiny setting (bench.objmc_tiny.TINY: the shipped model's guidance
defaults, model.config.tiny_world().guidance: layers (2,1),(2,2),(3,1),(3,2), window 0.2-0.6, lr 0.3,
10 iterations, gamma 0.75).

ObjMC = mean distance (px at 128x128) between found and target sprite centres, pooled over the 6 sprites
and 8 frames, as in the bench. Measured with the model at 52,371 U-Net steps, trained on the world with
background landmarks (torch 2.13, CPU, 1 thread, a script running this file's tasks and configs):

    no control            ObjMC 9.77 px (pin 13.13, redirect 9.10), found 100%, frame-0 PSNR 28.77 dB, colour 0.077
    SG-I2V, tiny setting  ObjMC 1.29 px (pin 0.83, redirect 1.38), found 100%, frame-0 PSNR 28.34 dB, colour 0.074
                          ratio 0.13 (the tiny defaults until session 11, window 0.1-0.4 at lr 10: 1.98 px,
                          ratio 0.20, 28.20 dB)
    guidance switched off ObjMC 9.77 px, ratio 1.00 (the same numbers as no control)
    Earlier models (world without landmarks, window 0.1-0.4 at lr 10, gamma 0.5): 44,321 steps 9.52 / 2.28 px
    (0.24); 33,999 steps 9.71 / 2.71 px (0.28); 23,865 steps 9.81 / 2.71 px (0.28); 17,484 steps 9.85 / 3.36 px (0.34).

The control must take at least 30% off (ratio <= 0.7: the measured 0.13 leaves room for other CPUs'
arithmetic); the same criterion is checked to FAIL when the guidance is switched off (the same hook with
iterations=0). Making test_sgi2v_moves_sprites_along_their_targets use that switched-off config makes it
fail with "ObjMC 9.77 px with SG-I2V vs 9.77 px without control (ratio 1.00 > 0.7)".
"""
import dataclasses

import pytest

from bench.objmc_tiny import build_tasks, measure, parse_variant, run_task, summarise
from weights import load_svd
from weights.svd import SHIPPED_TINY
from weights.tiny.train import world_config

TASKS = 3                       # bench tasks 0, 1, 2 = seeds 3000, 3001, 3002
STEPS = 10
MAX_RATIO = 0.7                 # SG-I2V ObjMC / no-control ObjMC

pytestmark = pytest.mark.skipif(not (SHIPPED_TINY / "sgi2v_config.json").exists(), reason="no shipped tiny model")


@pytest.fixture(scope="module")
def results():
    svd = load_svd()
    tasks = build_tasks(TASKS, world_config(svd.cfg))
    assert [t.seed for t in tasks] == [3000, 3001, 3002]
    tiny = parse_variant("tiny")
    configs = {"none": None, "tiny": tiny, "off": dataclasses.replace(tiny, iterations=0)}
    out = {}
    for name, cfg in configs.items():
        out[name] = summarise([measure(run_task(svd, t, cfg, STEPS)[0], t) for t in tasks])
    return out


def passes(results, name) -> bool:
    """The acceptance criterion: ObjMC of `name` <= MAX_RATIO x ObjMC without control."""
    return results[name]["objmc"] <= MAX_RATIO * results["none"]["objmc"]


def test_sgi2v_moves_sprites_along_their_targets(results):
    none, tiny = results["none"], results["tiny"]
    assert tiny["found"] >= 0.9 and none["found"] >= 0.9, (none["found"], tiny["found"])
    assert passes(results, "tiny"), \
        f"ObjMC {tiny['objmc']:.2f} px with SG-I2V vs {none['objmc']:.2f} px without control (ratio " \
        f"{tiny['objmc'] / none['objmc']:.2f} > {MAX_RATIO})"


def test_criterion_fails_with_guidance_switched_off(results):
    """The check above can fail: with the hook running but no optimisation it does."""
    ratio = results["off"]["objmc"] / results["none"]["objmc"]
    assert not passes(results, "off"), f"guidance off still passes: ratio {ratio:.2f}"
    assert abs(ratio - 1) < 0.05, f"guidance off should match no control, ratio {ratio:.3f}"


def test_control_keeps_frame0_and_colours(results):
    none, tiny = results["none"], results["tiny"]
    assert tiny["frame0_psnr"] >= none["frame0_psnr"] - 1.0, (none["frame0_psnr"], tiny["frame0_psnr"])
    assert tiny["colour_error"] <= none["colour_error"] + 0.05, (none["colour_error"], tiny["colour_error"])
