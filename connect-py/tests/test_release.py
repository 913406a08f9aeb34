from __future__ import annotations

import pytest

import connect_ops as ops


def test_release_from_repository_and_version() -> None:
    r = ops.Release("connect", "20251013-140000")
    assert (r.version, r.image, r.repository, r.digest) == ("20251013-140000", "connect:20251013-140000", "connect", None)
    assert repr(r) == "Release(version='20251013-140000', image='connect:20251013-140000')"
    assert r.to_dict() == {"version": "20251013-140000", "image": "connect:20251013-140000", "digest": None}
    assert str(r) == "20251013-140000 (connect:20251013-140000)"


def test_release_from_image_and_dict_are_equal_and_hashable() -> None:
    a = ops.Release.from_image("registry.local:5000/connect:v2")
    assert a.version == "v2" and a.repository == "registry.local:5000/connect"
    b = ops.Release.from_dict({"version": "v2", "image": "registry.local:5000/connect:v2"})
    assert a == b and hash(a) == hash(b) and len({a, b}) == 1
    c = ops.Release.from_image("connect:latest", version="20251014")
    assert c.version == "20251014" and c.image == "connect:latest"
    d = ops.Release.from_dict({"version": "v2", "image": "connect:v2", "digest": "sha256:" + "a" * 64})
    assert d.digest == "sha256:" + "a" * 64 and "digest=" in repr(d)


@pytest.mark.parametrize("image", ["Connect:v1", "connect:", "connect:-x", "con nect:v1", "", "connect@md5:abc"])
def test_invalid_image_is_invalid_input_and_value_error(image: str) -> None:
    with pytest.raises(ops.InvalidInputError) as info:
        ops.Release.from_image(image)
    assert isinstance(info.value, ValueError)
    assert info.value.kind == "invalid_input"
    assert info.value.hint is not None and "repository[:tag]" in info.value.hint


def test_release_without_tag_or_with_bad_dict_is_refused() -> None:
    with pytest.raises(ops.InvalidInputError, match="no tag"):
        ops.Release.from_image("connect")
    with pytest.raises(ops.InvalidInputError, match="needs"):
        ops.Release.from_dict({"image": "connect:v1"})
    with pytest.raises(TypeError, match="must be a str"):
        ops.Release.from_dict({"version": 3, "image": "connect:v1"})
    with pytest.raises(ops.InvalidInputError):
        ops.Release.from_image("connect:v1", version=" ")


def test_wrong_argument_types_raise_type_error() -> None:
    with pytest.raises(TypeError):
        ops.Release("connect", 2)  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        ops.Release.from_image(None)  # type: ignore[arg-type]
