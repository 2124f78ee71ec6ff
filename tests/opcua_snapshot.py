"""A client's view of the PlantGuard OPC UA address space, as plain JSON data.

The address space is pinned by a golden file (``test_opcua_golden.py``) so that a
rewrite of how nodes are answered (points, properties and alarm conditions served
from a compact view instead of full asyncua nodes) can be checked against what
clients saw before.  That is why everything here goes through the services a
client uses — Browse and Read on a connected :class:`asyncua.Client` — and never
looks at the server's internals: the snapshot must mean the same thing whatever
the server keeps inside.

What a snapshot holds, for every node reached from ``nsu=urn:plantguard;s=/``
over forward hierarchical references (Browse with HierarchicalReferences and
IncludeSubtypes):

* ``attributes``: NodeId, NodeClass, BrowseName, DisplayName, Description,
  WriteMask and UserWriteMask, plus the attributes of the node's class
  (:data:`CLASS_ATTRIBUTES`).  An attribute the server refuses is recorded as
  ``{"Status": "<status name>"}``, so a change in which attributes exist is a
  difference too.  The Value attribute keeps its StatusCode and Variant type.
* ``references``: every reference of the node, forward and inverse, with its
  type, direction, target NodeId, target BrowseName, NodeClass and
  TypeDefinition, sorted so the order the server answers in does not matter.

Stability between runs: NodeIds and QualifiedNames name their namespace by URI,
never by index; standard (ns=0) numeric NodeIds carry their symbolic name for
readability; ByteStrings (EventIds) become a placeholder with their length;
DateTimes within :data:`RUN_TIME_WINDOW` of the snapshot are replaced by
:data:`RUN_TIME` (they were set by the run, e.g. a condition's ReceiveTime),
while configured dates (CommissioningDate) and times from a fixed test clock are
kept; DataValue timestamps are not requested at all.
"""

from __future__ import annotations

import base64
import dataclasses
import datetime as dt
import enum
import json
import math
import uuid
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any, TypeVar

from asyncua import ua
from asyncua.client.client import Client
from asyncua.ua.attribute_ids import AttributeIds
from asyncua.ua.object_ids import ObjectIdNames, ObjectIds

__all__ = [
    "CLASS_ATTRIBUTES",
    "RUN_TIME",
    "RUN_TIME_WINDOW",
    "Allowance",
    "NodeRecord",
    "Snapshot",
    "diff_snapshots",
    "format_differences",
    "read_golden",
    "render_golden",
    "snapshot_address_space",
    "write_golden",
]

#: One node: ``{"attributes": {...}, "references": [...]}`` (JSON types only).
NodeRecord = dict[str, Any]
#: Stable NodeId string → its record.
Snapshot = dict[str, NodeRecord]
#: ``allow(node_id, field, expected, actual)``: is this one difference intended?
Allowance = Callable[[str, str, Any, Any], bool]

#: Placeholder of a DateTime value the run itself set (wall-clock "now").
RUN_TIME = "<DateTime set at run time>"
#: DateTimes this close to the snapshot's wall clock count as set at run time.
RUN_TIME_WINDOW = dt.timedelta(days=1)

#: Nodes per Browse request (two BrowseDescriptions each) and ReadValueIds per Read
#: request; asyncua's server allows 10,000 of either per call.
BROWSE_BATCH = 500
READ_BATCH = 4000

_T = TypeVar("_T")
_COMMON: tuple[str, ...] = (
    "NodeId",
    "NodeClass",
    "BrowseName",
    "DisplayName",
    "Description",
    "WriteMask",
    "UserWriteMask",
)

#: Attributes read for each node class, besides the common ones.
CLASS_ATTRIBUTES: dict[ua.NodeClass, tuple[str, ...]] = {
    ua.NodeClass.Object: ("EventNotifier",),
    ua.NodeClass.Variable: (
        "Value",
        "DataType",
        "ValueRank",
        "ArrayDimensions",
        "AccessLevel",
        "UserAccessLevel",
        "MinimumSamplingInterval",
        "Historizing",
    ),
    ua.NodeClass.Method: ("Executable", "UserExecutable"),
    ua.NodeClass.ObjectType: ("IsAbstract",),
    ua.NodeClass.VariableType: ("Value", "DataType", "ValueRank", "ArrayDimensions", "IsAbstract"),
    ua.NodeClass.ReferenceType: ("IsAbstract", "Symmetric", "InverseName"),
    ua.NodeClass.DataType: ("IsAbstract",),
    ua.NodeClass.View: ("ContainsNoLoops", "EventNotifier"),
}

_NODE_ID_KIND = {
    ua.NodeIdType.TwoByte: "i",
    ua.NodeIdType.FourByte: "i",
    ua.NodeIdType.Numeric: "i",
    ua.NodeIdType.String: "s",
    ua.NodeIdType.Guid: "g",
    ua.NodeIdType.ByteString: "b",
}


class _Plain:
    """Turns asyncua values into stable JSON values (see the module docstring)."""

    def __init__(self, namespaces: Sequence[str], now: dt.datetime) -> None:
        self.namespaces = list(namespaces)
        self.now = now

    def _uri(self, index: int) -> str:
        return self.namespaces[index] if index < len(self.namespaces) else f"ns{index}?"

    def node_id(self, node: ua.NodeId) -> str:
        """``i=85 (ObjectsFolder)`` in ns=0, else ``nsu=<uri>;s=…`` (``svr=`` if remote)."""
        raw = node.Identifier
        kind = _NODE_ID_KIND.get(node.NodeIdType, "?")
        ident = base64.b64encode(raw).decode("ascii") if isinstance(raw, bytes) else str(raw)
        uri = getattr(node, "NamespaceUri", None)
        server = getattr(node, "ServerIndex", 0) or 0
        prefix = f"svr={server};" if server else ""
        if uri:
            return f"{prefix}nsu={uri};{kind}={ident}"
        if node.NamespaceIndex == 0:
            name = ObjectIdNames.get(raw) if isinstance(raw, int) else None
            return f"{prefix}{kind}={ident}" + (f" ({name})" if name else "")
        return f"{prefix}nsu={self._uri(node.NamespaceIndex)};{kind}={ident}"

    def qualified(self, name: ua.QualifiedName) -> str:
        """``0:Name`` in ns=0, else ``<uri>:Name``."""
        ns = name.NamespaceIndex
        return f"{ns if ns == 0 else self._uri(ns)}:{name.Name}"

    def value(self, value: Any) -> Any:
        if value is None or isinstance(value, bool | str):
            return value
        if isinstance(value, enum.Enum):
            return value.name
        if isinstance(value, int):
            return value
        if isinstance(value, float):
            if math.isnan(value):
                return "NaN"
            if math.isinf(value):
                return "Infinity" if value > 0 else "-Infinity"
            return value
        if isinstance(value, bytes):
            return f"<ByteString of {len(value)} bytes>"
        if isinstance(value, dt.datetime):
            aware = value if value.tzinfo is not None else value.replace(tzinfo=dt.UTC)
            if abs(aware - self.now) <= RUN_TIME_WINDOW:
                return RUN_TIME
            return aware.isoformat()
        if isinstance(value, ua.NodeId):  # ExpandedNodeId included
            return self.node_id(value)
        if isinstance(value, ua.QualifiedName):
            return self.qualified(value)
        if isinstance(value, ua.LocalizedText):
            # Text alone when there is no locale; the pair when there is one.
            return (
                value.Text if value.Locale is None else {"Locale": value.Locale, "Text": value.Text}
            )
        if isinstance(value, ua.StatusCode):
            return value.name
        if isinstance(value, ua.Variant):
            return self.variant(value)
        if isinstance(value, ua.DataValue):
            return self.data_value(value)
        if isinstance(value, list | tuple):
            return [self.value(v) for v in value]
        if isinstance(value, uuid.UUID):
            return str(value)
        if dataclasses.is_dataclass(value) and not isinstance(value, type):
            fields = {f.name: self.value(getattr(value, f.name)) for f in dataclasses.fields(value)}
            return {"_type": type(value).__name__, **fields}
        raise TypeError(f"no stable form for {type(value).__name__}: {value!r}")

    def variant(self, variant: ua.Variant) -> dict[str, Any]:
        plain: dict[str, Any] = {
            "Type": variant.VariantType.name,
            "Value": self.value(variant.Value),
        }
        if variant.Dimensions:
            plain["Dimensions"] = list(variant.Dimensions)
        return plain

    def data_value(self, data: ua.DataValue) -> dict[str, Any]:
        """A Value attribute: its StatusCode and Variant (timestamps are not requested)."""
        plain: dict[str, Any] = {"Status": self.value(data.StatusCode)}
        if data.Value is not None:
            plain.update(self.variant(data.Value))
        return plain


def _attribute(plain: _Plain, name: str, data: ua.DataValue) -> Any:
    """One attribute as recorded: the value, or ``{"Status": name}`` if the read failed."""
    status = data.StatusCode
    if name == "Value":
        return plain.data_value(data)
    if status is not None and not status.is_good():
        return {"Status": status.name}
    value = data.Value.Value if data.Value is not None else None
    if name == "NodeClass" and isinstance(value, int):
        return ua.NodeClass(value).name
    return plain.value(value)


def _reference(plain: _Plain, ref: ua.ReferenceDescription) -> dict[str, Any]:
    return {
        "ReferenceType": plain.node_id(ref.ReferenceTypeId),
        "IsForward": ref.IsForward,
        "Target": plain.node_id(ref.NodeId),
        "BrowseName": plain.qualified(ref.BrowseName),
        "NodeClass": ua.NodeClass(ref.NodeClass).name,
        "TypeDefinition": plain.node_id(ref.TypeDefinition),
    }


def _reference_key(ref: dict[str, Any]) -> str:
    return json.dumps(ref, sort_keys=True)


def _chunks(items: Sequence[_T], size: int) -> Iterator[Sequence[_T]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


def _description(node: ua.NodeId, direction: ua.BrowseDirection, ref_type: int) -> Any:
    desc = ua.BrowseDescription()
    desc.NodeId = node
    desc.BrowseDirection = direction
    desc.ReferenceTypeId = ua.NodeId(ua.Int32(ref_type))
    desc.IncludeSubtypes = True
    desc.NodeClassMask = 0
    desc.ResultMask = ua.BrowseResultMask.All
    return desc


async def _browse_all(client: Client, descriptions: list[Any]) -> list[list[Any] | ua.StatusCode]:
    """Browse (following continuation points): references per description, or the bad status."""
    params = ua.BrowseParameters()
    params.RequestedMaxReferencesPerNode = 0
    params.NodesToBrowse = descriptions
    results = await client.uaclient.browse(params)
    out: list[list[Any] | ua.StatusCode] = []
    for result in results:
        if not result.StatusCode.is_good():
            out.append(result.StatusCode)
            continue
        refs = list(result.References)
        point = result.ContinuationPoint
        while point:
            following = ua.BrowseNextParameters()
            following.ContinuationPoints = [point]
            (more,) = await client.uaclient.browse_next(following)
            more.StatusCode.check()
            refs.extend(more.References)
            point = more.ContinuationPoint
        out.append(refs)
    return out


async def _read(client: Client, requests: list[tuple[ua.NodeId, str]]) -> list[ua.DataValue]:
    values: list[ua.DataValue] = []
    for chunk in _chunks(requests, READ_BATCH):
        params = ua.ReadParameters()
        params.MaxAge = 0
        params.TimestampsToReturn = ua.TimestampsToReturn.Neither
        for node, name in chunk:
            rv = ua.ReadValueId()
            rv.NodeId = node
            rv.AttributeId = getattr(AttributeIds, name)
            params.NodesToRead.append(rv)
        values.extend(await client.uaclient.read(params))
    return values


async def snapshot_address_space(client: Client, ns: int, root_identifier: str = "/") -> Snapshot:
    """Walk the PlantGuard tree from ``ns=<ns>;s=<root_identifier>`` and record every node.

    One Browse call covers :data:`BROWSE_BATCH` nodes of a level (their forward
    hierarchical children and all their references), one Read call
    :data:`READ_BATCH` attributes, so a walk of a few thousand nodes takes a few
    dozen round trips.  The walk descends into every local target of a forward
    hierarchical reference, once, whatever its namespace.
    """
    plain = _Plain(await client.get_namespace_array(), dt.datetime.now(dt.UTC))
    root = ua.NodeId(ua.String(root_identifier), ua.Int16(ns), ua.NodeIdType.String)
    (root_class,) = await _read(client, [(root, "NodeClass")])
    if root_class.StatusCode is not None:
        root_class.StatusCode.check()
    if root_class.Value is None:
        raise ValueError(f"no NodeClass for {root.to_string()}")
    classes: dict[ua.NodeId, ua.NodeClass] = {root: ua.NodeClass(root_class.Value.Value)}
    references: dict[ua.NodeId, list[dict[str, Any]] | str] = {}
    level = [root]
    while level:
        following: list[ua.NodeId] = []
        for chunk in _chunks(level, BROWSE_BATCH):
            descriptions = []
            for node in chunk:
                descriptions.append(
                    _description(node, ua.BrowseDirection.Forward, ObjectIds.HierarchicalReferences)
                )
                descriptions.append(
                    _description(node, ua.BrowseDirection.Both, ObjectIds.References)
                )
            results = await _browse_all(client, descriptions)
            for i, node in enumerate(chunk):
                children, every = results[2 * i], results[2 * i + 1]
                if isinstance(every, ua.StatusCode):
                    references[node] = every.name
                else:
                    refs = [_reference(plain, r) for r in every]
                    references[node] = sorted(refs, key=_reference_key)
                if isinstance(children, ua.StatusCode):
                    continue
                for ref in children:
                    target = ref.NodeId
                    if getattr(target, "ServerIndex", 0):
                        continue  # on another server: recorded as a reference, not walked
                    local = ua.NodeId(target.Identifier, target.NamespaceIndex, target.NodeIdType)
                    if local not in classes:
                        classes[local] = ua.NodeClass(ref.NodeClass)
                        following.append(local)
        level = following

    requests = [
        (node, name)
        for node, node_class in classes.items()
        for name in (*_COMMON, *CLASS_ATTRIBUTES.get(node_class, ()))
    ]
    values = iter(await _read(client, requests))
    snapshot: Snapshot = {}
    for node, node_class in classes.items():
        names = (*_COMMON, *CLASS_ATTRIBUTES.get(node_class, ()))
        attributes = {name: _attribute(plain, name, next(values)) for name in names}
        snapshot[plain.node_id(node)] = {
            "attributes": attributes,
            "references": references[node],
        }
    return snapshot


# --- golden files ------------------------------------------------------------------------


def _compact(value: Any) -> str:
    return json.dumps(value, sort_keys=True, ensure_ascii=False)


def render_golden(snapshot: Snapshot, about: str) -> str:
    """JSON with sorted keys, one attribute or reference per line.

    Indented down to the attributes and references, each of which is one compact
    line: a review diff then shows whole attributes and whole references, and the
    file stays a fraction of fully indented JSON (references are most of it).
    """
    out = ["{", f' "about": {_compact(about)},', f' "node_count": {len(snapshot)},', ' "nodes": {']
    for n, node in enumerate(sorted(snapshot)):
        record = snapshot[node]
        attributes = record["attributes"]
        references = record["references"]
        out.append(f"  {_compact(node)}: {{")
        out.append('   "attributes": {')
        out.append(
            ",\n".join(f"    {_compact(k)}: {_compact(attributes[k])}" for k in sorted(attributes))
        )
        out.append("   },")
        if isinstance(references, list) and references:
            out.append('   "references": [')
            out.append(",\n".join(f"    {_compact(ref)}" for ref in references))
            out.append("   ]")
        else:
            out.append(f'   "references": {_compact(references)}')
        out.append("  }" + ("," if n < len(snapshot) - 1 else ""))
    out += [" }", "}", ""]
    return "\n".join(out)


def write_golden(path: Path, snapshot: Snapshot, about: str) -> None:
    """Write ``snapshot`` as :func:`render_golden` formats it."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(render_golden(snapshot, about), encoding="utf-8")


def read_golden(path: Path) -> Snapshot:
    nodes: Snapshot = json.loads(path.read_text(encoding="utf-8"))["nodes"]
    return nodes


# --- comparison --------------------------------------------------------------------------


def _short(value: Any, limit: int = 160) -> str:
    text = json.dumps(value, sort_keys=True, ensure_ascii=False)
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _reference_text(ref: Any) -> str:
    if not isinstance(ref, dict):
        return _short(ref)
    arrow = "->" if ref["IsForward"] else "<-"
    return (
        f"{ref['ReferenceType']} {arrow} {ref['Target']} "
        f"[{ref['NodeClass']} {ref['BrowseName']}, type {ref['TypeDefinition']}]"
    )


def _node_summary(record: NodeRecord) -> str:
    attributes = record.get("attributes", {})
    return f"{attributes.get('NodeClass')} {attributes.get('BrowseName')}"


def diff_snapshots(
    expected: Snapshot, actual: Snapshot, allow: Allowance | None = None
) -> list[str]:
    """Every difference as one readable line, nodes in sorted order.

    ``allow(node_id, attribute, expected, actual)`` may excuse an attribute
    difference that is intended; references and the set of nodes must always match.
    """
    lines: list[str] = []
    for node in sorted(expected.keys() | actual.keys()):
        if node not in actual:
            lines.append(f"{node}: missing ({_node_summary(expected[node])})")
            continue
        if node not in expected:
            lines.append(f"{node}: unexpected new node ({_node_summary(actual[node])})")
            continue
        want, got = expected[node], actual[node]
        want_attrs, got_attrs = want["attributes"], got["attributes"]
        if want_attrs != got_attrs:
            for name in sorted(want_attrs.keys() | got_attrs.keys()):
                a = want_attrs.get(name, "<not read>")
                b = got_attrs.get(name, "<not read>")
                if a != b and not (allow is not None and allow(node, name, a, b)):
                    lines.append(f"{node}: {name}: expected {_short(a)}, got {_short(b)}")
        want_refs, got_refs = want["references"], got["references"]
        if want_refs == got_refs:
            continue
        if isinstance(want_refs, str) or isinstance(got_refs, str):
            if want_refs != got_refs:
                lines.append(
                    f"{node}: browse: expected {_short(want_refs)}, got {_short(got_refs)}"
                )
            continue
        want_count = Counter(_reference_key(r) for r in want_refs)
        got_count = Counter(_reference_key(r) for r in got_refs)
        for key in sorted((want_count - got_count).elements()):
            lines.append(f"{node}: reference missing: {_reference_text(json.loads(key))}")
        for key in sorted((got_count - want_count).elements()):
            lines.append(f"{node}: reference unexpected: {_reference_text(json.loads(key))}")
    return lines


def format_differences(lines: Sequence[str], limit: int = 20) -> str:
    """The first ``limit`` differences and how many there are in how many nodes."""
    nodes = {line.split(": ", 1)[0] for line in lines}
    head = f"{len(lines)} difference(s) in {len(nodes)} node(s)"
    shown = "\n".join(f"  {line}" for line in lines[:limit])
    more = f"\n  … and {len(lines) - limit} more" if len(lines) > limit else ""
    return f"{head}:\n{shown}{more}"
