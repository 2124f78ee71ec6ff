"""The asyncua workarounds of plantguard_opcua.compat, against a real (unstarted) server."""

from __future__ import annotations

from typing import Any

from asyncua import ua
from asyncua.common.instantiate_util import instantiate
from asyncua.server.server import Server
from asyncua.ua.attribute_ids import AttributeIds
from asyncua.ua.object_ids import ObjectIds
from asyncua_typed import value_of

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


async def test_rendered_condition_equals_an_instantiated_one() -> None:
    server = Server()
    await server.init()
    compat.cache_reference_subtypes(server)
    ns = await server.register_namespace("urn:test")
    objects = server.nodes.objects
    folder_a = await objects.add_folder(_sid("a", ns), "a")
    folder_b = await objects.add_folder(_sid("b", ns), "b")
    alarm_type = server.get_node(ua.NodeId(ua.Int32(ObjectIds.ExclusiveLimitAlarmType)))

    async def instantiated(name: str, folder: Any) -> list[ua.NodeId]:
        nodes = await instantiate(
            folder, alarm_type, nodeid=_sid(name, ns), bname=ua.QualifiedName(name, ns)
        )
        return [n.nodeid for n in nodes]

    created = await instantiated("a/t", folder_a)
    template = await compat.NodeTemplate.capture(server, _sid("a/t", ns), created)
    aspace = server.iserver.aspace
    # Captured and gone: the template's instance is no longer in the address space.
    assert all(n not in aspace for n in created)
    assert await folder_a.get_children() == []

    # Render every node of "b/s" and store it, as if it were real, to compare trees.
    root = _sid("b/s", ns)
    name, display = ua.QualifiedName("b/s", ns), ua.LocalizedText("b/s")
    for suffix in template.nodes:
        data = template.render(suffix, root, folder_b.nodeid, name, display)
        aspace[data.nodeid] = data
    aspace[folder_b.nodeid].references.append(template.reference(root, name, display))
    await instantiated("b/i", folder_b)

    assert len(template.nodes) > 50
    assert template.has(".ActiveState.Id")
    assert not template.has(".NoSuchThing")
    tree_s = await _tree(server, root, "b/s")
    tree_i = await _tree(server, _sid("b/i", ns), "b/i")
    assert tree_s == tree_i
    assert await server.get_node(root).read_browse_name() == name
    children = {(await c.read_browse_name()).Name for c in await folder_b.get_children()}
    assert children == {"b/s", "b/i"}
    # Rendered copies are independent: writing one leaves the template alone.
    active_id = _sid("b/s.ActiveState.Id", ns)
    await server.write_attribute_value(
        active_id, ua.DataValue(ua.Variant(True, ua.VariantType.Boolean))
    )
    again = template.render(".ActiveState.Id", root, folder_b.nodeid, name, display)
    copied = again.attributes[AttributeIds.Value].value
    assert copied is not None
    assert value_of(copied) is not True
