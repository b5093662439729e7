"""Bundles as package data: a wheel built from the checkout, installed into a throwaway virtual environment (no
checkout, not editable), lists its bundles, copies one, and `python -m monai.bundle run` trains from the copy.

The throwaway environment sees the test environment's packages (torch, monai, ...) through a plain path line, not as
a site folder, so the checkout's editable install (a .pth hook there) is not loaded: every import of monai_genesis
must come from the wheel, which the test checks.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import sysconfig
import venv
from pathlib import Path

import pytest
import torch

from bundle_cases import TINY, cli_args, write_cubes
from monai_genesis.bundles import RUN_OUTPUTS, list_bundles

REPO = Path(__file__).resolve().parents[1]
SKIP_IN_SOURCE_COPY = (".git", ".venv*", "build", "dist", "*.egg-info", "demo_output", ".pytest_cache", *RUN_OUTPUTS)


@pytest.fixture(scope="module")
def installed(tmp_path_factory):
    """(python, genesis, env) of a fresh venv holding only the wheel of this checkout."""
    tmp = tmp_path_factory.mktemp("wheel")
    source = tmp / "source"
    shutil.copytree(REPO, source, ignore=shutil.ignore_patterns(*SKIP_IN_SOURCE_COPY))
    (source / "bundles" / "genesis_pretrain" / "eval").mkdir()
    (source / "bundles" / "genesis_pretrain" / "eval" / "stale_run_output.txt").write_text("not package data")
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", str(source),
                    "-w", str(tmp / "dist")], check=True, capture_output=True, timeout=300)
    [wheel] = (tmp / "dist").glob("monai_genesis-*.whl")
    env_dir = tmp / "venv"
    venv.create(env_dir, with_pip=False)
    python = env_dir / "bin" / "python"
    subprocess.run([sys.executable, "-m", "pip", "--python", str(python), "install", "--no-deps", "-q", str(wheel)],
                   check=True, capture_output=True, timeout=300)
    site = Path(subprocess.run([str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                               check=True, capture_output=True, text=True).stdout.strip())
    (site / "test_environment.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")  # a path, not a site dir
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "GENESIS_DEBUG")}
    env["OMP_NUM_THREADS"] = "1"
    return python, env_dir / "bin" / "genesis", env, tmp


def _run(cmd, tmp, env, **kwargs):
    return subprocess.run([str(c) for c in cmd], cwd=tmp, env=env, capture_output=True, text=True, timeout=300,
                          **kwargs)


@pytest.mark.slow
def test_the_wheel_ships_every_bundle_file_and_no_run_output(installed):
    python, _, env, tmp = installed
    probe = ("import json, monai_genesis.bundles as b, monai_genesis.cli.demo as d; "
             "print(json.dumps([b.__file__, str(d.BUNDLE_DIR), str(b.bundle_path('genesis_pretrain'))]))")
    result = _run([python, "-c", probe], tmp, env)
    assert result.returncode == 0, result.stderr[-2000:]
    module, demo_bundle, pretrain = json.loads(result.stdout)
    assert module.startswith(str(tmp / "venv")), module  # the wheel's copy, not the checkout
    assert demo_bundle == pretrain  # `genesis demo` finds its bundle without --bundle_dir
    shipped = Path(module).parent
    for bundle in list_bundles():
        source = Path(bundle["path"])
        expected = {p.relative_to(source) for p in source.rglob("*")
                    if p.is_file() and not set(p.relative_to(source).parts) & set(RUN_OUTPUTS)}
        assert {p.relative_to(shipped / bundle["name"]) for p in (shipped / bundle["name"]).rglob("*") if p.is_file()} == expected
    assert not (shipped / "genesis_pretrain" / "eval").exists()


@pytest.mark.slow
def test_list_copy_and_run_a_bundle_from_the_wheel(installed):
    python, genesis, env, tmp = installed
    listed = _run([genesis, "bundles"], tmp, env)
    assert listed.returncode == 0, listed.stderr[-2000:]
    lines = listed.stdout.strip().splitlines()
    assert [line.split()[:2] for line in lines] == [[b["name"], b["version"]] for b in list_bundles()]
    assert all(b["task"] in line for b, line in zip(list_bundles(), lines))

    copied = _run([genesis, "bundle-copy", "genesis_pretrain", tmp / "mine"], tmp, env)
    assert copied.returncode == 0, copied.stderr[-2000:]
    bundle = tmp / "mine" / "genesis_pretrain"
    assert not (bundle / "eval").exists() and (bundle / "configs" / "train.json").is_file()

    data = write_cubes(tmp / "cubes")
    settings = {**TINY["genesis_pretrain"], **data, "epochs": 1}
    trained = _run([python, "-m", "monai.bundle", "run", "--config_file", "configs/train.json", *cli_args(settings)],
                   bundle, env)
    assert trained.returncode == 0, (trained.stdout + trained.stderr)[-3000:]
    assert "train_loss" in trained.stdout  # StatsHandler logs as usual beside the short-errors log filter
    model = torch.load(bundle / "models" / "model.pt", weights_only=True)
    assert model["epoch"] == 1 and "model" in model


def _genesis(monkeypatch, capsys, *args):
    from monai_genesis.cli.main import main

    monkeypatch.setattr(sys, "argv", ["genesis", *map(str, args)])
    monkeypatch.delenv("GENESIS_DEBUG", raising=False)
    try:
        main()
        code = 0
    except SystemExit as stop:
        code = stop.code
    return code, capsys.readouterr()


def test_bundle_copy_refuses_an_unknown_name_or_a_used_folder(tmp_path, monkeypatch, capsys):
    code, out = _genesis(monkeypatch, capsys, "bundle-copy", "genesis_nope", tmp_path)
    assert code == 2 and out.err.startswith("genesis: error: no bundle named 'genesis_nope'; the bundles are: genesis_")
    assert list(tmp_path.iterdir()) == []
    (tmp_path / "genesis_pe_fpr").mkdir()  # an empty folder is fine
    code, out = _genesis(monkeypatch, capsys, "bundle-copy", "genesis_pe_fpr", tmp_path)
    assert code == 0 and (tmp_path / "genesis_pe_fpr" / "configs" / "metadata.json").is_file()
    code, out = _genesis(monkeypatch, capsys, "bundle-copy", "genesis_pe_fpr", tmp_path)
    assert code == 2 and out.err.strip() == (
        f"genesis: error: {tmp_path / 'genesis_pe_fpr'}: exists and is not empty; choose another folder or remove it.")
