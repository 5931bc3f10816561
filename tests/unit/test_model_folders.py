"""Where models are looked for by name: the checkout ovchat runs from, never the current folder."""

from pathlib import Path

import pytest

from ovchat.model.contract import checkout_models, find_named, model_folders, models_home

ROOT = Path(__file__).resolve().parents[2]


def test_the_checkout_is_found_from_the_package_not_from_the_current_folder(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "build" / "models" / "stranger").mkdir(parents=True)
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("OVCHAT_HOME", str(tmp_path / "home"))
    assert checkout_models() == ROOT / "build" / "models"  # this test runs from the checkout
    assert model_folders() == [ROOT / "build" / "models", models_home()]
    assert find_named("stranger") is None  # a build/models under the current folder is not looked at
