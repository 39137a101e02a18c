"""The wheel is self-contained: built from the sources, installed into a fresh virtual environment
outside the repository, it runs ``seqstream demo`` with the checkpoints and the explorer page it
carries itself (issue 19).

The fresh environment gets seqstream only from the wheel; its dependencies (torch, faust, ...) come
from the current environment through a ``.pth`` file that lists the current ``site-packages`` as a
plain path. Such a path entry does not process the ``.pth`` files inside it, so the editable install
of the checkout (its finder or path hook) stays inactive: ``stream`` and ``models`` must import from
the fresh environment, which the test checks before it runs the demo from a directory outside the
repository with ``PYTHONPATH`` unset.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import sysconfig
from pathlib import Path

import pytest

pytestmark = [pytest.mark.integration, pytest.mark.slow]

ROOT = Path(__file__).resolve().parents[2]
# what the build reads: the metadata, the readme it embeds, the two packages
BUILD_INPUTS = ("pyproject.toml", "README.md", "LICENSE", "models", "stream")
JUNK = shutil.ignore_patterns("__pycache__", "*.pyc", "*.egg-info", "build", "dist")


def _clean_env() -> dict[str, str]:
    """The environment of a user's shell: no checkout on the path, no seqstream settings."""
    drop = ("PYTHONPATH", "PYTHONHOME", "VIRTUAL_ENV", "PYTHONSTARTUP")
    return {k: v for k, v in os.environ.items() if k not in drop and not k.startswith("SEQSTREAM_")}


def _run(cmd: list[str], cwd: Path, timeout: float) -> subprocess.CompletedProcess[str]:
    r = subprocess.run(cmd, cwd=cwd, env=_clean_env(), capture_output=True, text=True, timeout=timeout)
    assert r.returncode == 0, f"{' '.join(cmd)} exited {r.returncode}:\n{r.stdout[-4000:]}\n{r.stderr[-4000:]}"
    return r


def _no_warnings(r: subprocess.CompletedProcess[str], what: str) -> None:
    warnings = [ln.strip() for ln in (r.stdout + r.stderr).splitlines() if "warning" in ln.lower()]
    assert not warnings, f"{what} is not clean (pyproject.toml packaging):\n" + "\n".join(warnings)


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The wheel built as ``python -m build`` builds it: an sdist of a copy of the sources (no stale
    build/ of the checkout), then ``pip wheel`` of the unpacked sdist, so that the sdist must carry
    everything the wheel needs."""
    src = tmp_path_factory.mktemp("wheel-src")
    for name in BUILD_INPUTS:
        p = ROOT / name
        if p.is_dir():
            shutil.copytree(p, src / name, ignore=JUNK)
        elif p.is_file():
            shutil.copy2(p, src / name)
    sdist_dir = tmp_path_factory.mktemp("wheel-sdist")
    # no build isolation (here and below): the dev extra brings setuptools>=77, and the test runs offline
    build_sdist = f"from setuptools import build_meta; print(build_meta.build_sdist({str(sdist_dir)!r}))"
    r = _run([sys.executable, "-c", build_sdist], cwd=src, timeout=300)
    _no_warnings(r, "the sdist build")
    (sdist,) = sdist_dir.glob("seqstream-*.tar.gz")
    shutil.unpack_archive(sdist, sdist_dir)
    (unpacked,) = (d for d in sdist_dir.iterdir() if d.is_dir())
    out = tmp_path_factory.mktemp("wheel-out")
    r = _run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-w", str(out), str(unpacked)],
        cwd=unpacked,
        timeout=300,
    )
    _no_warnings(r, "the wheel build")
    (whl,) = out.glob("seqstream-*.whl")
    return whl


@pytest.fixture(scope="module")
def fresh_venv(wheel: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    venv = tmp_path_factory.mktemp("wheel-venv") / "venv"
    outside = venv.parent
    _run([sys.executable, "-m", "venv", "--without-pip", str(venv)], cwd=outside, timeout=120)
    py = venv / "bin" / "python"
    # the dependencies of the current environment, as a plain path (see the module docstring)
    site = Path(
        subprocess.check_output(
            [str(py), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"], text=True
        ).strip()
    )
    deps = {sysconfig.get_paths()["purelib"], sysconfig.get_paths()["platlib"]}
    (site / "zz_seqstream_test_deps.pth").write_text("".join(f"{d}\n" for d in sorted(deps)))
    _run(
        [sys.executable, "-m", "pip", "--python", str(py), "install", "--no-deps", "--no-index", str(wheel)],
        cwd=outside,
        timeout=300,
    )
    return venv


def test_the_wheel_carries_its_packages_and_data(fresh_venv: Path) -> None:
    probe = (
        "import stream, models, pathlib\n"
        "from stream.sources import SOURCES\n"
        "print(pathlib.Path(stream.__file__).resolve())\n"
        "print(pathlib.Path(models.__file__).resolve())\n"
        "for name, src in SOURCES.items():\n"
        "    if src.checkpoint:\n"
        "        print(src.default_checkpoint().resolve())\n"
        "print((pathlib.Path(stream.__file__).parent / 'explorer' / 'static' / 'explorer.html').resolve())\n"
    )
    r = _run([str(fresh_venv / "bin" / "python"), "-c", probe], cwd=fresh_venv.parent, timeout=120)
    paths = [Path(line) for line in r.stdout.split()]
    assert len(paths) >= 5, r.stdout  # stream, models, >= 2 checkpoints, the explorer page
    inside = fresh_venv.resolve()
    for p in paths:
        assert p.is_relative_to(inside), f"{p} does not come from the wheel (fresh venv {inside})"
        assert not p.is_relative_to(ROOT), p
        assert p.exists(), p
    assert any(p.suffix == ".pt" for p in paths), r.stdout


def test_installed_wheel_runs_the_demo_outside_the_repository(
    fresh_venv: Path, tmp_path_factory: pytest.TempPathFactory
) -> None:
    elsewhere = tmp_path_factory.mktemp("wheel-demo-cwd")
    assert not elsewhere.resolve().is_relative_to(ROOT)
    exe = fresh_venv / "bin" / "seqstream"
    assert exe.is_file(), "the wheel installs no seqstream console script"
    r = _run([str(exe), "demo", "--seconds", "20"], cwd=elsewhere, timeout=240)
    out = r.stdout + r.stderr
    assert "skipping source" not in out, out  # a checkpoint missing from the wheel
    assert "demo: worker ready" in out and "demo: done in" in out, out
    produced = int(out.split("produced ", 1)[1].split(" events", 1)[0].replace(",", ""))
    assert produced > 0, out
    print(next(line for line in out.splitlines() if line.startswith("demo: done")))
