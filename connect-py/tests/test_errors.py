from __future__ import annotations

import builtins
from typing import Any, Dict

import pytest

import connect_ops as ops


def test_every_kind_has_a_connect_error_subclass() -> None:
    assert sorted(ops.ERROR_KINDS) == sorted(ops.ERRORS_BY_KIND)
    assert len(ops.ERROR_KINDS) == 12
    for kind, cls in ops.ERRORS_BY_KIND.items():
        assert issubclass(cls, ops.ConnectError) and issubclass(cls, Exception)
        assert cls.kind == kind
        assert getattr(ops, cls.__name__) is cls


def test_builtin_bases_where_natural() -> None:
    assert issubclass(ops.InvalidInputError, ValueError)
    assert issubclass(ops.NotFoundError, LookupError)
    assert issubclass(ops.OperationTimeoutError, builtins.TimeoutError)
    assert issubclass(ops.PermissionDeniedError, PermissionError)
    assert issubclass(ops.UnavailableError, ConnectionError)
    assert issubclass(ops.UnsupportedError, NotImplementedError)
    assert not issubclass(ops.ConflictError, ValueError)


@pytest.mark.parametrize("kind", ["timeout", "unavailable", "refused", "permission_denied", "not_found", "corrupt"])
def test_core_errors_arrive_as_their_class_with_context(stack: ops.MemoryStack, kind: Any) -> None:
    stack.fail("runtime.image", kind)
    deployer = ops.Deployer(stack, holder="pytest")
    with pytest.raises(ops.ConnectError) as info:
        deployer.deploy("connect:v1")
    e = info.value
    assert type(e) is ops.ERRORS_BY_KIND[kind]
    assert e.kind == kind
    assert (e.operation, e.target) == ("runtime.image", "connect:v1")
    assert str(e).startswith(f"runtime.image {kind.replace('_', ' ')} (connect:v1): injected fault")
    assert e.retryable == (kind in ("timeout", "unavailable"))


def test_error_attributes_keep_operation_target_and_hint(deployer: ops.Deployer) -> None:
    deployer.deploy("connect:v1")
    with pytest.raises(ops.NotFoundError) as info:
        deployer.rollback_to("v9")
    e = info.value
    assert (e.operation, e.target) == ("deploy.rollback_to", "v9")
    assert e.hint == "pick a version from the status's recent operations"
    assert 'the journal knows no release "v9"' in e.message
    assert str(e).startswith("deploy.rollback_to not found (v9): ") and str(e).endswith("fix: " + e.hint)
    assert e.retryable is False


def test_connect_error_can_be_raised_by_scripts() -> None:
    with pytest.raises(ops.ConnectError) as info:
        raise ops.DriftError("by hand")
    assert info.value.kind == "drift" and str(info.value) == "by hand" and info.value.hint is None


def test_star_import_leaves_the_builtin_timeout_error() -> None:
    namespace: Dict[str, Any] = {}
    exec("from connect_ops import *", namespace)
    assert "TimeoutError" not in namespace
    assert namespace["OperationTimeoutError"] is ops.OperationTimeoutError
    exec("caught = False\ntry:\n    raise OperationTimeoutError('late')\nexcept TimeoutError:\n    caught = True", namespace)
    assert namespace["caught"] is True
    # Every public name is a real attribute, and none is a built-in's name.
    for name in ops.__all__:
        assert hasattr(ops, name), name
        assert not hasattr(builtins, name), name


def test_old_timeout_name_is_a_deprecated_alias() -> None:
    with pytest.warns(DeprecationWarning, match="OperationTimeoutError"):
        old = getattr(ops, "TimeoutError")
    assert old is ops.OperationTimeoutError
    with pytest.raises(AttributeError, match="no attribute 'NoSuchThing'"):
        getattr(ops, "NoSuchThing")


def test_kinds_are_the_engines_words() -> None:
    assert sorted(ops.ERROR_KIND_NAMES) == sorted(ops.ERROR_KINDS)
    kind: ops.ErrorKind = "timeout"
    assert ops.ERRORS_BY_KIND[kind] is ops.OperationTimeoutError
