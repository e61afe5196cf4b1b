"""demo.sh stops at a failed part, naming it, with a non-zero exit (the full demo runs by hand)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from tests.conftest import mosquitto_binary

ROOT = Path(__file__).resolve().parent.parent


def _demo(tmp_path: Path, **env: str) -> subprocess.CompletedProcess[str]:
    mosquitto_binary()  # the demo would otherwise try to install it
    full = {**os.environ, "DEMO_PYTHON": sys.executable, "DEMO_OUT": str(tmp_path / "demo"), **env}
    full.setdefault("NUMBA_CACHE_DIR", str(ROOT / ".cache" / "numba"))
    return subprocess.run(
        ["bash", str(ROOT / "demo.sh")], cwd=ROOT, env=full, capture_output=True, text=True,
        timeout=120,
    )  # fmt: skip


def test_a_part_that_fails_stops_the_demo_naming_it(tmp_path: Path) -> None:
    # a one-tower scenario is not a county: `simulate county` refuses it and exits 2
    done = _demo(tmp_path, DEMO_SCENARIO="benchmarks/scenarios/mission-2m-10km.yaml")
    assert done.returncode == 1, done.stderr
    assert "demo: county exited with code 2" in done.stderr
    assert "describes one tower" in done.stderr  # the part's own log, shown
    assert "demo: FAILED: county" in done.stderr
    assert (tmp_path / "demo" / "county.log").exists()
    assert (tmp_path / "demo" / "broker.log").exists()


def test_an_unknown_demo_kind_is_refused(tmp_path: Path) -> None:
    done = _demo(tmp_path, DEMO="village")
    assert done.returncode == 2 and "DEMO=village" in done.stderr
