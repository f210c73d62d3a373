"""The ``probe-console`` entry point: version, help, usage errors, dispatch."""

from __future__ import annotations

import argparse
import subprocess
import sys
from importlib import metadata
from pathlib import Path

import pytest

import console
from console import cli


def test_version_prints_distribution_version(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["--version"]) == 0
    out, err = capsys.readouterr()
    assert out == f"probe-console {metadata.version('probe-console')}\n"
    assert err == ""


def test_package_version_matches_distribution() -> None:
    # The fallback below must not report a different version than the metadata.
    assert console.__version__ == metadata.version("probe-console")


def test_version_falls_back_to_package_when_not_installed(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    def not_installed(name: str) -> str:
        raise metadata.PackageNotFoundError(name)

    monkeypatch.setattr(metadata, "version", not_installed)
    assert cli.package_version() == console.__version__


@pytest.mark.parametrize("argv", [["--bogus"], [], ["no-such-command"]])
def test_usage_errors_exit_2_without_traceback(
    argv: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    assert cli.main(argv) == 2
    out, err = capsys.readouterr()
    assert out == ""
    assert err.startswith("usage: probe-console")
    assert "Traceback" not in err


def test_registered_command_is_dispatched_with_its_exit_code() -> None:
    seen: list[argparse.Namespace] = []

    def handle(args: argparse.Namespace) -> int:
        seen.append(args)
        return 5

    def register(subparsers: cli.Subparsers) -> None:
        parser = subparsers.add_parser("demo")
        parser.add_argument("--count", type=int, required=True)
        parser.set_defaults(handler=handle)

    parser = cli.build_parser([register])
    assert cli.run(parser, ["demo", "--count", "3"]) == 5
    assert seen[0].count == 3
    assert cli.run(parser, ["demo", "--count", "three"]) == 2
    assert len(seen) == 1


def test_python_dash_m_console_help(tmp_path: Path) -> None:
    # From a directory outside the source tree: the installed package answers.
    done = subprocess.run(
        [sys.executable, "-m", "console", "--help"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("usage: probe-console")
    assert "--version" in done.stdout


def test_an_interrupt_before_a_command_handles_it_is_not_a_traceback(
    capsys: pytest.CaptureFixture[str],
) -> None:
    """SR-23: no traceback for the user, even for a Ctrl-C during start-up."""

    def interrupted(args: argparse.Namespace) -> int:
        raise KeyboardInterrupt

    parser = argparse.ArgumentParser()
    parser.set_defaults(handler=interrupted)
    assert cli.run(parser, []) == 1
    assert "interrupted" in capsys.readouterr().err
