"""The install is reproducible: the environment holds exactly requirements.lock, which covers pyproject.toml."""

from __future__ import annotations

import importlib.util
import subprocess
import sys
import tomllib
from pathlib import Path

from packaging.requirements import Requirement

ROOT = Path(__file__).resolve().parent.parent


def _lock_check():
    spec = importlib.util.spec_from_file_location("lock_check", ROOT / "scripts" / "lock_check.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_installed_distributions_equal_the_lock():
    lc = _lock_check()
    assert lc.differences(lc.read_lock(), lc.installed()) == []


def test_lock_check_reports_every_kind_of_difference():
    lc = _lock_check()
    lock = {"a": "1.0", "b": "2.0"}
    assert lc.differences(lock, {"a": "1.0", "b": "2.0", "mnv3-nas": "0.1.0"}) == []
    assert lc.differences(lock, {"a": "1.1", "c": "3"}) == [
        "version: a is 1.1, the lock says 1.0", "missing: b==2.0", "not in the lock: c==3"]


def test_lock_pins_every_requirement_of_pyproject_within_its_range():
    lock = _lock_check().read_lock()
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    requirements = list(project["dependencies"])
    for extra in project["optional-dependencies"].values():
        requirements += extra
    for text in requirements:
        req = Requirement(text)
        name = _lock_check().canonical(req.name)
        assert name in lock, f"{req.name} is not in requirements.lock: run bash scripts/lock.sh"
        assert req.specifier.contains(lock[name], prereleases=True), f"lock has {name}=={lock[name]}, pyproject wants {req}"


def test_lock_has_only_exact_pins_and_the_cpu_build_of_torch():
    lock = _lock_check().read_lock()
    assert lock["torch"].endswith("+cpu")
    assert not any(name.startswith("nvidia-") for name in lock)


def test_pip_check_is_clean():
    proc = subprocess.run([sys.executable, "-m", "pip", "check"], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_vendored_copies_on_sys_path_do_not_count(tmp_path, monkeypatch):
    """Ray puts ray/thirdparty_files (psutil, colorama) on sys.path; they are not installed packages."""
    vendored = tmp_path / "thirdparty_files" / "psutil-7.2.2.dist-info"
    vendored.mkdir(parents=True)
    (vendored / "METADATA").write_text("Metadata-Version: 2.1\nName: psutil\nVersion: 7.2.2\n")
    monkeypatch.syspath_prepend(str(tmp_path / "thirdparty_files"))
    assert "psutil" not in _lock_check().installed()
