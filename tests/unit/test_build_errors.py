"""Every model-build failure is one family: a FidelityError is a BuildError, and `ovchat-build`
prints it as the one line it prints for any other (exit 1)."""

from __future__ import annotations

import sys
from types import SimpleNamespace

import pytest

from ovchat_build import command
from ovchat_build.errors import BuildError
from ovchat_build.export.plan import BuildRequest
from ovchat_build.fidelity.criteria import FidelityError


def test_a_fidelity_error_is_printed_as_one_line(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    message = "top-1 agreement with the source is 0.500, below the required 0.850"

    def build(request: BuildRequest) -> None:
        raise FidelityError(message)

    assert issubclass(FidelityError, BuildError)
    monkeypatch.setattr(command.signal, "signal", lambda *args: None)  # pytest keeps its own SIGTERM
    monkeypatch.setattr(command, "check_build_env", lambda: None)  # no torch here: the unit layer's env
    monkeypatch.setitem(sys.modules, "ovchat_build.build", SimpleNamespace(build=build))
    assert command.main([]) == 1
    assert capsys.readouterr().err == f"ovchat-build: error: {message}\n"
