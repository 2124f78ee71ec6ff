"""The asyncua workarounds of plantguard_opcua.compat, against a real (unstarted) server."""

from __future__ import annotations

from typing import Any

from asyncua import ua
from asyncua.common.instantiate_util import instantiate
from asyncua.server.server import Server
from asyncua.ua.object_ids import ObjectIds

from plantguard_opcua import compat


def _sid(text: str, ns: int) -> ua.NodeId:
    return ua.NodeId(ua.String(text), ua.Int16(ns), ua.NodeIdType.String)


async def _tree(server: Server, node_id: ua.NodeId, prefix: str) -> dict[str, Any]:
    """Relative browse path → (node class, type definition, reference kinds) of a subtree."""
    out: dict[str, Any] = {}

    async def walk(nid: ua.NodeId, path: str) -> None:
        node = server.get_node(nid)
        refs = await node.get_references(
            refs=ObjectIds.References, direction=ua.BrowseDirection.Both
        )
        kinds = sorted(
            (
                r.ReferenceTypeId.Identifier,
                r.IsForward,
                str(r.NodeId.Identifier).replace(prefix, "<root>"),
            )
            for r in refs
        )
        out[path] = (await node.read_node_class(), kinds)
        for child in await node.get_children():
            ident = child.nodeid.Identifier
            if isinstance(ident, str) and ident.startswith(prefix + "."):
                await walk(child.nodeid, path + "/" + (await child.read_browse_name()).Name)

    await walk(node_id, "")
    return out


async def test_stamped_condition_equals_an_instantiated_one() -> None:
    server = Server()
    await server.init()
    compat.cache_reference_subtypes(server)
    ns = await server.register_namespace("urn:test")
    objects = server.nodes.objects
    folder_a = await objects.add_folder(_sid("a", ns), "a")
    folder_b = await objects.add_folder(_sid("b", ns), "b")
    source = await objects.add_variable(_sid("src", ns), "src", 1.0)
    alarm_type = server.get_node(ua.NodeId(ua.Int32(ObjectIds.ExclusiveLimitAlarmType)))

    async def instantiated(name: str, folder: Any) -> list[ua.NodeId]:
        nodes = await instantiate(
            folder, alarm_type, nodeid=_sid(name, ns), bname=ua.QualifiedName(name, ns)
        )
        return [n.nodeid for n in nodes]

    template = compat.NodeTemplate.capture(
        server, _sid("a/t", ns), await instantiated("a/t", folder_a)
    )
    await source.add_reference(_sid("a/t", ns), ObjectIds.HasCondition)  # must not be copied
    stamped = template.stamp(
        server,
        _sid("b/s", ns),
        folder_b.nodeid,
        ua.QualifiedName("b/s", ns),
        ua.LocalizedText("b/s"),
    )
    await instantiated("b/i", folder_b)

    assert len(stamped) > 50
    tree_s = await _tree(server, _sid("b/s", ns), "b/s")
    tree_i = await _tree(server, _sid("b/i", ns), "b/i")
    assert tree_s == tree_i
    assert await server.get_node(_sid("b/s", ns)).read_browse_name() == ua.QualifiedName("b/s", ns)
    children = {(await c.read_browse_name()).Name for c in await folder_b.get_children()}
    assert children == {"b/s", "b/i"}
    # Values are independent copies: writing one condition leaves the template alone.
    active_id = _sid("b/s.ActiveState.Id", ns)
    await server.write_attribute_value(
        active_id, ua.DataValue(ua.Variant(True, ua.VariantType.Boolean))
    )
    assert await server.get_node(_sid("a/t.ActiveState.Id", ns)).read_value() is not True
    assert compat.node_classes(server, [active_id, _sid("b/s", ns)]) == [
        ua.NodeClass.Variable,
        ua.NodeClass.Object,
    ]
