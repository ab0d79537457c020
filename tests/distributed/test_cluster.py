"""Starting a local Ray cluster: environment defaults, and a failed start that says where its logs are."""

from __future__ import annotations

from pathlib import Path

import pytest

ray = pytest.importorskip("ray")


def test_agent_registration_waits_long_enough_on_a_loaded_machine():
    from nas.distributed import RAY_ENV

    assert int(RAY_ENV["RAY_agent_register_timeout_ms"]) >= 120_000


def test_failed_start_names_its_log_folder_and_keeps_it(monkeypatch):
    from nas.distributed import RayStartError, ray_cluster

    def refuse(**kwargs):
        Path(kwargs["_temp_dir"], "raylet.out").write_text("timed out waiting for the agent\n")
        raise TimeoutError("The raylet did not register in time.")

    monkeypatch.setattr(ray, "init", refuse)
    logs: list[str] = []
    with pytest.raises(RayStartError) as info:
        with ray_cluster(None, num_cpus=1, log=logs.append):
            pass
    message = str(info.value)
    assert "could not start a local Ray cluster: The raylet did not register in time." in message
    folder = message.split("session logs are in ")[1].split(" ")[0]
    assert (Path(folder) / "raylet.out").is_file() and folder in logs[0]
    import shutil

    shutil.rmtree(folder)
