"""The reliability figures under pytest-xdist: what every worker counted reaches the printed
summary and the JSON, summed (a maximum stays the largest), written once by the controller.

Runs pytest in a subprocess on a two-test module that counts figures, with `--dist each` so that
both workers run both tests: the totals are then known exactly.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys

from tests.servers import ROOT

COUNTING = '''
from tests.reliability import figures

def test_a_2xx():
    figures.example("area")
    figures.response("area", 200)
    figures.maximum("area", "slowest (ms)", 5)

def test_a_5xx_and_none():
    figures.response("area", 500)
    figures.response("area", None)
    figures.maximum("area", "slowest (ms)", 7)
'''


def run_pytest(tmp_path, *args) -> tuple[subprocess.CompletedProcess, dict]:
    (tmp_path / "test_counting.py").write_text(COUNTING)
    (tmp_path / "pytest.ini").write_text("[pytest]\n")
    target = tmp_path / "figures.json"
    env = {**os.environ, "PYTHONPATH": str(ROOT), "KCO_RELIABILITY_FIGURES": str(target)}
    env.pop("PYTEST_XDIST_WORKER", None)
    env.pop("PYTEST_ADDOPTS", None)
    result = subprocess.run([sys.executable, "-m", "pytest", "-p", "tests.reliability.figures",
                             "-p", "no:cacheprovider", "-q", *args, "test_counting.py"],
                            cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stdout + result.stderr
    return result, json.loads(target.read_text())


def test_two_workers_figures_are_summed_printed_and_written_once(tmp_path):
    result, written = run_pytest(tmp_path, "-n", "2", "--dist", "each")
    area = written["areas"]["area"]
    assert area["examples"] == 2 and area["requests"] == 6
    assert area["2xx"] == 2 and area["5xx"] == 2 and area["no response"] == 2
    assert area["slowest (ms)"] == 7
    assert written["totals"]["requests"] == 6
    assert result.stdout.count("reliability figures (short form)") == 1
    assert "TOTAL" in result.stdout and "requests=6" in result.stdout


def test_a_serial_run_prints_and_writes_its_own_figures(tmp_path):
    result, written = run_pytest(tmp_path, "-p", "no:xdist")
    assert written["areas"]["area"]["requests"] == 3
    assert written["areas"]["area"]["slowest (ms)"] == 7
    assert "reliability figures (short form)" in result.stdout
