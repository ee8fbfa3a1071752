"""StructureDefinitions as element trees: base chains resolved, differentials merged, snapshots out.

A profile's tree is its base's tree (recursively, down to the R4 core snapshots) with the differential
laid over it, element by element, by element id. Children of an element that a profile does not touch
are not copied: they are expanded on demand from the element's type (or its type profile), which keeps
differential-only definitions (all of Nictiz's) cheap. ``snapshot_elements`` flattens a tree back into a
snapshot element list, e.g. to publish the hub's own profiles with a snapshot.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

_REPLACE_KEYS = frozenset(
    {
        "min",
        "max",
        "type",
        "binding",
        "maxLength",
        "mustSupport",
        "isModifier",
        "contentReference",
        "sliceName",
    }
)
TYPE_SYSTEM = "http://hl7.org/fhirpath/System."


class Node:
    """One element definition with its children (by name) and slices (by slice name)."""

    __slots__ = ("ed", "_children", "slices", "source", "owner", "plans", "prep")

    def __init__(self, ed: dict[str, Any], owner: Tree) -> None:
        self.ed = ed
        self._children: dict[str, Node] | None = None
        self.slices: dict[str, Node] = {}
        self.source: str | None = None  # url of the definition the children were expanded from
        self.owner = owner
        self.plans: dict[str | None, Any] | None = None  # the validator's per-type work for this element
        self.prep: Any = None  # the validator's per-element work (children to walk, fixed values)

    @property
    def children(self) -> dict[str, Node]:
        """The child elements, expanded from the element's type on first use."""
        if self._children is None:
            self._children = {}
            self.owner.expand(self)
        return self._children

    def has_children(self) -> bool:
        return bool(self._children)

    def clone(self, owner: Tree) -> Node:
        n = Node(dict(self.ed), owner)
        if self._children is not None:
            n._children = {k: c.clone(owner) for k, c in self._children.items()}
        n.slices = {k: s.clone(owner) for k, s in self.slices.items()}
        n.source = self.source
        return n

    def child(self, name: str) -> Node | None:
        """A child by name; ``valueQuantity`` finds ``value[x]`` (and its type slice, if any)."""
        kids = self.children
        node = kids.get(name)
        if node is not None:
            return node
        choice = _choice_of(kids, name)
        return None if choice is None else choice.slices.get(name, choice)

    @property
    def types(self) -> list[dict[str, Any]]:
        types: list[dict[str, Any]] = self.ed.get("type", [])
        return types

    @property
    def type_codes(self) -> list[str]:
        return [_type_code(t["code"]) for t in self.ed.get("type", [])]


def _type_code(code: str) -> str:
    return "string" if code.startswith(TYPE_SYSTEM) else code


class Tree:
    """A StructureDefinition as a tree of Nodes; ``resolver(url)`` gives the tree of another definition."""

    def __init__(self, url: str, sd_type: str, kind: str, resolver: Callable[[str], Tree | None]) -> None:
        self.url = url
        self.type = sd_type
        self.kind = kind
        self.resolver = resolver
        self.root: Node = Node({"id": sd_type, "path": sd_type, "min": 0, "max": "*"}, self)

    # -- building ----------------------------------------------------------------------------------
    @classmethod
    def from_snapshot(cls, sd: dict[str, Any], resolver: Callable[[str], Tree | None]) -> Tree:
        tree = cls(sd["url"], sd["type"], sd.get("kind", ""), resolver)
        for el in sd["snapshot"]["element"]:
            node = tree._locate(el["id"], create=True)
            node.ed = dict(el)
            if node is not tree.root and node._children is None:
                node._children = {}
        tree._seal(tree.root)
        return tree

    def _seal(self, node: Node) -> None:
        """After a full snapshot: leaves with a complex type expand from their type on demand again."""
        for child in list((node._children or {}).values()) + list(node.slices.values()):
            if not child._children:
                child._children = None
            else:
                self._seal(child)

    def derive(self, sd: dict[str, Any]) -> Tree:
        """A new tree: this (base) tree with ``sd``'s differential merged over it."""
        tree = Tree(sd["url"], sd.get("type", self.type), sd.get("kind", self.kind), self.resolver)
        tree.root = self.root.clone(tree)
        for el in sd.get("differential", {}).get("element", []):
            node = tree._locate(el.get("id") or el["path"], create=True)
            _merge(node, el)
        return tree

    def _locate(self, element_id: str, *, create: bool) -> Node:
        segments = element_id.split(".")
        node = self.root
        if segments[0].split(":")[0] != self.type:
            raise KeyError(f"element id {element_id} does not start with {self.type}")
        for seg in segments[1:]:
            name, _, slice_name = seg.partition(":")
            kids = node.children
            child = kids.get(name)
            if child is None:
                choice = _choice_of(kids, name)
                if choice is not None:  # e.g. valueQuantity: the type slice of value[x]
                    child, slice_name = choice, slice_name or name
            if child is None:
                if not create:
                    raise KeyError(element_id)
                child = Node(
                    {
                        "id": f"{node.ed.get('id')}.{name}",
                        "path": f"{node.ed.get('path')}.{name}",
                        "min": 0,
                        "max": "*",
                    },
                    self,
                )
                kids[name] = child
            node = child
            if slice_name:
                for part in slice_name.split("/"):
                    sl = node.slices.get(part)
                    if sl is None:
                        if not create:
                            raise KeyError(element_id)
                        sl = _new_slice(node, part, self)
                        choice_path = node.ed.get("path", "")
                        if choice_path.endswith("[x]"):
                            suffix = part[len(choice_path.rsplit(".", 1)[-1]) - 3 :].lower()
                            sl.ed["type"] = [
                                t for t in node.types if _type_code(t["code"]).lower() == suffix
                            ] or node.types
                            sl._children = None
                    node = sl
        return node

    def expand(self, node: Node) -> None:
        """Fill ``node``'s children from its content reference, type profile or type."""
        ref = node.ed.get("contentReference")
        if ref:
            try:
                target = self._locate(ref[1:].split("#")[-1], create=False)
            except KeyError:
                target = None
            if target is not None and target is not node:
                node._children = {k: c.clone(self) for k, c in target.children.items()}
            return
        types = node.types
        if len(types) != 1:
            return
        code = _type_code(types[0]["code"])
        if code in ("Resource", "DomainResource"):
            return
        profiles = types[0].get("profile") or []
        src = profiles[0] if len(profiles) == 1 else "http://hl7.org/fhir/StructureDefinition/" + code
        base = self.resolver(src)
        if base is None and profiles:
            src = "http://hl7.org/fhir/StructureDefinition/" + code
            base = self.resolver(src)
        if base is None:
            return
        node.source = src
        node._children = {k: c.clone(self) for k, c in base.root.children.items()}
        if base.root.slices and not node.slices:
            node.slices = {}
        # the root's own constraints of the type (e.g. the extension's url) stay with the type tree


def _choice_of(kids: dict[str, Node], name: str) -> Node | None:
    for i in range(len(name) - 1, 0, -1):
        if name[i].isupper():
            choice = kids.get(name[:i] + "[x]")
            if choice is not None:
                return choice
    return None


def _new_slice(node: Node, name: str, owner: Tree) -> Node:
    """A new slice of ``node``: a copy of the sliced element without its slicing and slices."""
    sl = Node({k: v for k, v in node.ed.items() if k not in ("slicing",)}, owner)
    sl.ed["sliceName"] = name
    sl.ed["id"] = f"{node.ed.get('id')}:{name}"
    sl.ed["min"] = 0
    if node._children is not None:
        sl._children = {k: c.clone(owner) for k, c in node._children.items()}
    sl.source = node.source
    node.slices[name] = sl
    return sl


def _merge(node: Node, el: dict[str, Any]) -> None:
    ed = node.ed
    node.plans = node.prep = None  # worked out from the element as it was
    for key, value in el.items():
        if key in ("id", "path"):
            continue
        if key == "constraint":
            have = {c.get("key") for c in ed.get("constraint", [])}
            ed["constraint"] = ed.get("constraint", []) + [c for c in value if c.get("key") not in have]
        elif key == "slicing":
            ed["slicing"] = {**ed.get("slicing", {}), **value}
        elif key == "type":
            ed["type"] = value  # a new type profile is checked besides the children already here
        elif key.startswith(("fixed", "pattern")):
            for k in [k for k in ed if k.startswith(("fixed", "pattern"))]:
                del ed[k]
            ed[key] = value
        elif key in _REPLACE_KEYS or key in ("condition", "mustSupport", "short", "definition", "comment"):
            ed[key] = value
        else:
            ed[key] = value


def snapshot_elements(tree: Tree, *, depth_limit: int = 12) -> list[dict[str, Any]]:
    """The tree as a snapshot element list (expanded as far as the profile constrains it)."""
    out: list[dict[str, Any]] = []

    def walk(node: Node, element_id: str, path: str, depth: int) -> None:
        ed = dict(node.ed)
        ed["id"], ed["path"] = element_id, path
        out.append(ed)
        if depth > depth_limit or node._children is None:
            kids: dict[str, Node] = {}
        else:
            kids = node._children
        for name, child in kids.items():
            walk(child, f"{element_id}.{name}", f"{path}.{name}", depth + 1)
            for sname, sl in child.slices.items():
                walk(sl, f"{element_id}.{name}:{sname}", f"{path}.{name}", depth + 1)

    walk(tree.root, tree.type, tree.type, 0)
    return out
