"""`timelaw phases`, through the argparse piece the top-level CLI registers."""
import argparse
import json

import pytest

from timelaw.theory.cli import register


def run(argv):
    parser = argparse.ArgumentParser(prog="timelaw")
    register(parser.add_subparsers(dest="command"))
    args = parser.parse_args(argv)
    return args.func(args)


def test_text_output(capsys):
    assert run(["phases", "--alpha", "0.7", "--beta", "0.7"]) == 0
    out = capsys.readouterr().out
    assert "phase III" in out and "f^0.5000" in out and "f^-0.6429" in out


def test_json_output(capsys):
    assert run(["phases", "--alpha", "1.25", "--beta", "0.75", "--json"]) == 0
    record = json.loads(capsys.readouterr().out)
    assert record["name"] == "II" and record["xi"] == pytest.approx(0.375)
    assert record["terms"] == ["F_pp", "F_ac"]


def test_measure(capsys):
    assert run(["phases", "--alpha", "1", "--beta", "2", "--json", "--measure", "--flops", "1e6", "1e9"]) == 0
    measured = json.loads(capsys.readouterr().out)["measured"]
    assert abs(measured["eta"] - 0.75) < 0.05


def test_invalid_input_exits_2(capsys):
    assert run(["phases", "--alpha", "0.2", "--beta", "0.2"]) == 2
    assert "alpha + beta" in capsys.readouterr().err


def test_plot_writes_png(tmp_path):
    pytest.importorskip("matplotlib")
    path = tmp_path / "phases.png"
    assert run(["phases", "--alpha", "0.4", "--beta", "1", "--plot", str(path)]) == 0
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
