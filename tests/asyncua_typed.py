"""Typed constructors and accessors for asyncua values, shared by the OPC UA tests.

asyncua's annotations and its behaviour differ in two places the tests meet often:

* ``ua.NodeId`` annotates its identifier as ``ua.Int32 | ua.String | ua.Guid |
  ua.ByteString`` and its namespace index as ``ua.Int16`` (asyncua's own int and str
  subclasses), though it takes plain ints and strs.  :func:`numeric_id` and
  :func:`string_id` wrap them once, as ``plantguard_opcua`` does; the NodeIds are equal
  to (and hash like) the plain-int and plain-str ones.
* ``ua.DataValue.Value`` and ``ua.DataValue.StatusCode`` are optional in the
  annotations, but a DataValue always has both (``__post_init__`` wraps a missing value
  in a null Variant; the status code defaults to Good).  :func:`variant_of`,
  :func:`value_of` and :func:`status_of` assert that instead of every test repeating it.
"""

from __future__ import annotations

from typing import Any

from asyncua import ua

__all__ = ["numeric_id", "status_of", "string_id", "value_of", "variant_of"]


def numeric_id(identifier: int, ns: int = 0) -> ua.NodeId:
    """A numeric NodeId; namespace 0 (the standard nodes of ``ObjectIds``) by default."""
    return ua.NodeId(ua.Int32(identifier), ua.Int16(ns))


def string_id(identifier: str, ns: int) -> ua.NodeId:
    """A string NodeId (every PlantGuard node) in namespace ``ns``."""
    return ua.NodeId(ua.String(identifier), ua.Int16(ns))


def variant_of(dv: ua.DataValue) -> ua.Variant:
    """The Variant of ``dv`` (a null Variant when it carries no value)."""
    assert dv.Value is not None, dv
    return dv.Value


def value_of(dv: ua.DataValue) -> Any:
    """The Python value ``dv`` carries (None for a null Variant)."""
    return variant_of(dv).Value


def status_of(dv: ua.DataValue) -> ua.StatusCode:
    """The StatusCode of ``dv``."""
    assert dv.StatusCode is not None, dv
    return dv.StatusCode
