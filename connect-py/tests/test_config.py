"""``Deployer.from_config``: the same connect.toml and composition as the ``connect-ops`` command."""

from pathlib import Path

import pytest

import connect_ops as ops


def test_a_broken_file_raises_invalid_input_with_its_line_and_column(tmp_path: Path) -> None:
    config = tmp_path / "connect.toml"
    config.write_text('[server]\nhots = "prod-host"\n[app]\nimage = "connect"\n')
    with pytest.raises(ops.InvalidInputError, match=r"connect\.toml:2:1.*unknown field `hots`") as info:
        ops.Deployer.from_config(config)
    assert info.value.hint and "connect-ops init" in info.value.hint


def test_a_missing_file_names_the_way_out(tmp_path: Path) -> None:
    with pytest.raises(ops.NotFoundError) as info:
        ops.Deployer.from_config(str(tmp_path / "nope.toml"))
    assert info.value.hint and "init" in info.value.hint


def test_a_local_server_builds_a_deployer_whose_calls_name_what_does_not_answer(tmp_path: Path) -> None:
    admin = tmp_path / "admin.sock"
    config = tmp_path / "connect.toml"
    config.write_text(
        "[server]\n"
        'host = "local"\n'
        "[docker]\n"
        f'socket = "{tmp_path / "docker.sock"}"\n'
        "[haproxy]\n"
        f'admin_socket = "{admin}"\n'
        "[app]\n"
        'image = "connect"\n'
    )
    with pytest.raises(ops.ConnectError) as info:
        ops.Deployer.from_config(config).status()
    assert "docker.sock" in str(info.value) or str(admin) in str(info.value), str(info.value)
