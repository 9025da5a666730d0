"""The operator CLI works beside ``tokenrelay up`` (which records where its private Redis is),
and every CLI error is one clear line and a non-zero exit, never a traceback."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import orjson
import pytest

from service.cli.embedded_redis import free_port
from service.cli.launcher import Child, tokenrelay_argv
from tests.processes import ROOT

pytestmark = pytest.mark.slow


def _env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("TOKENRELAY_")}
    # The tree's packages, whatever the folder the command runs in.
    env["PYTHONPATH"] = str(ROOT)
    return {**env, **extra}


def _tokenrelay(cwd: Path, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "service.cli", *args],
        cwd=cwd,
        env=_env(**env),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_jobs_commands_find_the_private_redis_of_up_in_the_same_folder(tmp_path: Path) -> None:
    port = free_port()
    up = Child(
        "up",
        tokenrelay_argv("up", "--port", str(port)),
        log_path=tmp_path / "up.log",
        env=_env(TOKENRELAY_WORKER_METRICS_PORT="0"),
        cwd=tmp_path,
        port=port,
    )
    up.start(within=30)
    try:
        recorded = (tmp_path / ".tokenrelay" / "redis.url").read_text().strip()
        assert recorded.startswith("redis://127.0.0.1:")
        listed = _tokenrelay(tmp_path, "jobs", "--json", "queue")
        assert listed.returncode == 0, listed.stderr
        assert "partitions" in orjson.loads(listed.stdout)
    finally:
        assert up.stop(timeout=30) == 0
    assert not (tmp_path / ".tokenrelay" / "redis.url").exists()
    after = _tokenrelay(tmp_path, "jobs", "list")
    assert after.returncode != 0
    assert after.stderr.count("\n") == 1 and "TOKENRELAY_REDIS_URL is not set" in after.stderr


@pytest.mark.parametrize(
    ("args", "env", "says"),
    [
        (("jobs", "list"), {}, "TOKENRELAY_REDIS_URL is not set"),
        (("jobs", "show", "nojob0001"), {"TOKENRELAY_REDIS_URL": "redis://127.0.0.1:1/0"}, "Redis"),
        (("gateway",), {"TOKENRELAY_REDIS_URL": "redis://u:secret@127.0.0.1:1/0"}, "Redis"),
        (("worker",), {"TOKENRELAY_REDIS_URL": "redis://127.0.0.1:1/0"}, "Redis"),
        (("jobs", "list"), {"TOKENRELAY_PORT": "eighty"}, "TOKENRELAY_PORT"),
        (("jobs", "list"), {"TOKENRELAY_NO_SUCH": "1"}, "TOKENRELAY_NO_SUCH"),
    ],
    ids=[
        "no_redis",
        "redis_down",
        "gateway_redis_down",
        "worker_redis_down",
        "bad_value",
        "unknown",
    ],
)
def test_every_cli_error_is_a_clear_message_and_a_non_zero_exit(
    tmp_path: Path, args: tuple[str, ...], env: dict[str, str], says: str
) -> None:
    done = _tokenrelay(tmp_path, *args, **env)
    assert done.returncode != 0
    assert "Traceback" not in done.stderr
    assert says in done.stderr
    assert done.stderr.startswith("tokenrelay: ")
    assert "secret" not in done.stderr


def test_a_note_left_by_a_killed_up_is_ignored(tmp_path: Path) -> None:
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()  # reaped: its pid names no process now
    (tmp_path / ".tokenrelay").mkdir()
    (tmp_path / ".tokenrelay" / "redis.url").write_text(f"redis://127.0.0.1:1/0\n{dead.pid}\n")
    done = _tokenrelay(tmp_path, "jobs", "list")
    assert done.returncode != 0
    assert "TOKENRELAY_REDIS_URL is not set" in done.stderr
