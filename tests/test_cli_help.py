"""Every command-line entry point prints its --help (argparse formats help strings with %-expansion,
so a literal '%' in one crashes --help only, which nothing else exercises)."""
import importlib
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
# every module under bench/ and weights/ that runs as a script (python -m ...); run.py is tested below
ENTRY_POINTS = sorted(".".join(f.relative_to(ROOT).with_suffix("").parts)
                      for folder in ("bench", "weights") for f in (ROOT / folder).rglob("*.py")
                      if 'if __name__ == "__main__":' in f.read_text())


def test_entry_points_found():
    assert {"bench.objmc_tiny", "weights.tiny.train"} <= set(ENTRY_POINTS), ENTRY_POINTS


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
