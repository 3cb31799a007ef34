"""Run `fusionproxy ARGS` in-process through the console-script entry point, as a user's shell would."""

from __future__ import annotations

import sys

import pytest

from fusionproxy.cli import main


def run_cli(args: list[str], monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture) -> tuple[int, str]:
    """(exit code, stderr) of `fusionproxy ARGS`."""
    monkeypatch.setattr(sys, "argv", ["fusionproxy", *args])
    with pytest.raises(SystemExit) as exit_info:
        main()
    return int(exit_info.value.code or 0), capsys.readouterr().err
