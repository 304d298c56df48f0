"""Every command-line entry point prints its --help (argparse formats help strings with %-expansion,
so a literal '%' in one crashes --help only, which nothing else exercises)."""
import importlib
import sys

import pytest

ENTRY_POINTS = ["bench.camera_probe", "bench.load_memory", "bench.objmc_tiny", "bench.pan_probe",
                "bench.parity_full", "bench.perf", "bench.plot_training", "bench.tiny_quality",
                "bench.train_speed", "bench.vae_recon", "weights.tiny.train"]


@pytest.mark.parametrize("name", ENTRY_POINTS)
def test_help_prints(name, monkeypatch, capsys):
    module = importlib.import_module(name)
    monkeypatch.setattr(sys, "argv", [name, "--help"])
    with pytest.raises(SystemExit) as exit_info:
        module.main()
    assert exit_info.value.code == 0
    assert "usage:" in capsys.readouterr().out


def test_run_py_help_prints(capsys):
    import run
    with pytest.raises(SystemExit) as exit_info:
        run.parser().parse_args(["--help"])
    assert exit_info.value.code == 0
    assert "--trajectory" in capsys.readouterr().out
