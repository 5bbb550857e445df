"""The package's version is written once (`vend_client.__version__`, which the build reads into
the distribution's metadata): `vend-client --version`, the module and the installed
distribution agree."""

from __future__ import annotations

from importlib.metadata import version

import pytest

import vend_client
from vend_client.cli import main


def test_version_prints_the_installed_distributions_version(
    capsys: pytest.CaptureFixture[str],
) -> None:
    with pytest.raises(SystemExit) as exited:
        main(["--version"])
    assert exited.value.code == 0
    assert capsys.readouterr().out == f"vend-client {version('secret-vending-client')}\n"
    assert vend_client.__version__ == version("secret-vending-client")
