"""jobs.train starts Ray without waiting for the run's code, which a thread imports meanwhile."""
from __future__ import annotations

import importlib
import json
import subprocess
import sys
from pathlib import Path

import pytest

from core.profiling import startup

REPO = Path(__file__).resolve().parents[2]
_PROBE = """
import json, sys
import jobs.train
first = set(sys.modules)
for name in jobs.train.RUN_CODE:
    __import__(name)
print(json.dumps({"first": sorted(first), "then": sorted(set(sys.modules) - first)}))
"""


def test_jobs_train_leaves_torch_to_the_thread_and_the_thread_leaves_ray_alone():
    done = subprocess.run([sys.executable, "-c", _PROBE], cwd=REPO, capture_output=True, text=True, check=True)
    modules = json.loads(done.stdout)
    assert "torch" not in modules["first"], "jobs.train imports torch before it starts Ray"
    assert "torch" in modules["then"] and "jobs._train.experiment" in modules["then"]
    # ray.init imports Ray's modules meanwhile; a module both threads import makes one wait for the other.
    assert [name for name in modules["then"] if name == "ray" or name.startswith("ray.")] == []


def test_background_imports_load_modules_and_leave_a_failure_to_the_caller(tmp_path, monkeypatch):
    (tmp_path / "startup_probe_ok.py").write_text("VALUE = 1\n")
    (tmp_path / "startup_probe_broken.py").write_text("raise RuntimeError('broken on purpose')\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    try:
        startup.import_in_background(("startup_probe_ok", "startup_probe_broken")).join(timeout=60)
        assert sys.modules["startup_probe_ok"].VALUE == 1
        with pytest.raises(RuntimeError, match="broken on purpose"):
            importlib.import_module("startup_probe_broken")
    finally:
        sys.modules.pop("startup_probe_ok", None)


_START_PROBE = "import jobs, os; from core.profiling import startup; print(os.getpid(), startup.process_start(jobs.IMPORTED_AT) - jobs.IMPORTED_AT)"


@pytest.mark.parametrize("shell_first_s", [0, startup.EXEC_GAP_S + 1])
def test_the_start_is_pythons_where_a_shell_became_python_late(shell_first_s):
    """bash runs `exec python` in its own process, whose start the OS dates to the shell's."""
    shell = subprocess.Popen(["bash", "-c", f"sleep {shell_first_s}; exec {sys.executable} -c '{_START_PROBE}'"],
                             cwd=REPO, stdout=subprocess.PIPE, text=True)
    pid, before_our_code = shell.communicate(timeout=120)[0].split()
    assert int(pid) == shell.pid, "the probe ran in the shell's process"
    assert -startup.EXEC_GAP_S < float(before_our_code) <= 0, "counted from the shell's start, not Python's"
