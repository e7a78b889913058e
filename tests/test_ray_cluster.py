"""``articleqa index --embed-with ray --ray-address`` on a real Ray cluster: a head and a second
node, each ``ray start`` with one CPU on this machine (two raylets, loopback), token authentication on
(Ray's default) with a token of the cluster's own. The driver is the CLI, as an operator runs it."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys

import numpy as np
import pytest

pytest.importorskip("ray", reason="the Ray job needs pip install 'articleqa[scale]'")

from conftest import ROOT, SEEDS  # noqa: E402

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    from articleqa.testing import RayCluster

    with RayCluster(tmp_path_factory.mktemp("ray-cluster"), cpus=(1, 1)) as c:
        yield c


def corpus(folder):
    """The seeds and sixteen more articles: about 800 passages, batches for both nodes' actors."""
    shutil.copytree(SEEDS, folder)
    for i in range(16):
        lines = [f"Harbour bulletin {i}", ""] + [
            f"Ship {i}-{k} of the {['north', 'south', 'east'][k % 3]} fleet docked at berth {k + i} on day {k}. "
            f"Its master, captain number {i * 10 + k}, reported {k + 2} crates of cargo."
            for k in range(160)
        ]
        (folder / f"bulletin_{i:02d}.txt").write_text("\n\n".join(lines) + "\n", encoding="utf-8")
    return folder


def without_ray_env() -> dict:
    """This environment without RAY_* (no token, no address of another Ray)."""
    return {k: v for k, v in os.environ.items() if not k.startswith("RAY_")}


def index(folder, out, env, *extra):
    return subprocess.run(
        [sys.executable, "-m", "articleqa.cli", "index", str(folder), "--index-dir", str(out), "--json", *extra],
        capture_output=True,
        text=True,
        timeout=900,
        cwd=ROOT,
        env=env,
    )


def test_index_on_a_two_node_cluster_matches_the_in_process_build(tmp_path, cluster):
    from articleqa.stores import FaissIndexStore

    articles = corpus(tmp_path / "articles")
    env = without_ray_env()
    local = index(articles, tmp_path / "local", env)
    assert local.returncode == 0, local.stderr[-3000:]
    # the driver has only the token's path: articleqa turns Ray's token mode on by itself
    remote = index(
        articles,
        tmp_path / "ray",
        {**env, **cluster.driver_env},
        "--embed-with",
        "ray",
        "--ray-address",
        cluster.address,
    )
    assert remote.returncode == 0, remote.stderr[-3000:]
    report = json.loads(remote.stdout.strip().splitlines()[-1])
    assert (
        report["embedded"] == report["passages"] == json.loads(local.stdout.strip().splitlines()[-1])["passages"] > 500
    )
    assert "with token authentication" in remote.stderr
    assert "on 2 node(s)" in remote.stderr, remote.stderr[-3000:]  # both raylets ran encoder actors

    a = FaissIndexStore(tmp_path / "local").load()
    b = FaissIndexStore(tmp_path / "ray").load()
    assert b.passages == a.passages  # same files, offsets, texts, ids
    cosine = np.sum(a.vectors * b.vectors, axis=1) / (
        np.linalg.norm(a.vectors, axis=1) * np.linalg.norm(b.vectors, axis=1)
    )
    assert cosine.min() >= 0.999, cosine.min()


def test_a_driver_without_the_token_is_refused_with_a_hint(tmp_path, cluster):
    # (a ~/.ray/auth_token a local Ray may have left holds another token: refused all the same)
    r = index(SEEDS, tmp_path / "i", without_ray_env(), "--embed-with", "ray", "--ray-address", cluster.address)
    assert r.returncode == 3, r.stderr[-2000:]
    assert "cannot join the Ray cluster" in r.stderr and "RAY_AUTH_TOKEN" in r.stderr and "Traceback" not in r.stderr
    assert not (tmp_path / "i" / "CURRENT").exists()  # nothing published
