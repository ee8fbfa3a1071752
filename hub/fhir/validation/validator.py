"""Profile validation of FHIR R4 JSON resources against StructureDefinition trees.

Checks, per element of the profile: cardinality (also of slices), fixed and pattern values, the type
of choice elements, reference targets (targetProfile), slicing by value/pattern/type/profile/exists
discriminators (closed slicing rejects the rest), required and extensible bindings, extensions against
their definitions, and FHIRPath invariants (fhirpathpy) with their severity. The base structure (unknown
elements, primitive formats) is the models' job: ``check_base``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, cast

from hub.fhir.errors import Issue
from hub.fhir.validation.bsn import BSN_SYSTEM, is_valid_bsn
from hub.fhir.validation.invariants import Invariant, invariant
from hub.fhir.validation.registry import CORE_SD, Registry
from hub.fhir.validation.snapshot import Node, Tree, _type_code
from hub.fhir.validation.terminology import Terminology

_SKIP_CONSTRAINTS = frozenset({"ele-1"})
_BEST_PRACTICE = frozenset({"dom-6"})  # reported as information, not as a warning on every write
_RESOURCE_TYPES = frozenset({"Resource", "DomainResource"})
_EXTENSION_NAMES = frozenset({"extension", "modifierExtension"})
_URL_DISCRIMINATOR = ({"type": "value", "path": "url"},)
_CODED = frozenset({"code", "Coding", "CodeableConcept"})
_MAX_ISSUES = 200
_CONTAINER = (dict, list)
_NON_PRIMITIVE = (dict, list, type(None))

# Core invariants that hold trivially for most values: skipping FHIRPath for them is most of the speed.
_VACUOUS: dict[str, Callable[[Any], bool]] = {
    "dom-2": lambda v: "contained" not in v,
    "dom-3": lambda v: "contained" not in v,
    "dom-4": lambda v: "contained" not in v,
    "dom-5": lambda v: "contained" not in v,
    "ref-1": lambda v: not str(v.get("reference", "")).startswith("#"),
    "per-1": lambda v: "start" not in v or "end" not in v,
    "ext-1": lambda v: ("extension" in v) != any(k.startswith("value") for k in v),
}
Item = tuple[str, Any, Any, str]  # json key, value, primitive extension part ("_key"), FHIRPath
Check = tuple[Invariant, Callable[[Any], bool] | None, str, str]  # invariant, shortcut, severity, message
InvariantPlan = tuple[tuple[Check, ...], str]  # the checks, the type or path they are evaluated against
Kid = tuple[str, Node, str, int, int | None, str]  # name, node, ".name" of its path, min, max (None: *), "_name"


class Validator:
    """Validates resources against the loaded profiles; trees and expansions are built once and kept."""

    def __init__(self, registry: Registry, default_profile: Callable[[dict[str, Any]], str | None] | None = None):
        self.registry = registry
        self.terminology = Terminology(registry)
        self._default_profile = default_profile
        self._trees: dict[str, Tree | None] = {}
        self._type_checks: dict[str, list[dict[str, Any]]] = {}

    # -- definitions -------------------------------------------------------------------------------
    def tree(self, url: str) -> Tree | None:
        """The element tree of a StructureDefinition (base chain resolved), or None if unknown."""
        url = url.split("|", 1)[0]
        if url in self._trees:
            return self._trees[url]
        self._trees[url] = None  # guards against cycles in base chains
        sd = self.registry.get(url)
        tree: Tree | None = None
        if sd is not None and sd.get("resourceType") == "StructureDefinition":
            base_url = sd.get("baseDefinition")
            if sd.get("derivation") == "constraint" and base_url and "differential" in sd:
                base = self.tree(base_url)
                tree = base.derive(sd) if base is not None else None
            elif "snapshot" in sd:
                tree = Tree.from_snapshot(sd, self.tree)
        self._trees[url] = tree
        return tree

    def is_loaded(self, url: str) -> bool:
        """Whether a StructureDefinition with this url can be validated against."""
        return self.tree(url) is not None

    def profiles_for(self, resource: dict[str, Any]) -> list[str]:
        """The claimed profiles (meta.profile) that are loaded, plus the hub's default profile for it."""
        out = [p for p in resource.get("meta", {}).get("profile", []) if isinstance(p, str) and self.is_loaded(p)]
        if self._default_profile is not None:
            default = self._default_profile(resource)
            if default and default not in out and self.is_loaded(default):
                out.append(default)
        return out

    # -- validation ---------------------------------------------------------------------------------
    def validate(
        self, resource: dict[str, Any], profiles: list[str] | None = None, *, base: bool = False
    ) -> list[Issue]:
        """Issues of ``resource`` against ``profiles`` (default: ``profiles_for``; none: the core type)."""
        issues: list[Issue] = []
        if base:
            from hub.fhir.validation.base import check_base

            issues.extend(check_base(resource))
        run = _Run(self, resource)
        run.resource(resource, resource.get("resourceType", "Resource"), profiles)
        issues.extend(run.issues)
        return issues

    def validate_claimed(self, resource: dict[str, Any]) -> tuple[list[Issue], list[str]]:
        """``validate(resource)`` and the profiles it was held to (``profiles_for``: empty when it was
        the core type), worked out once for both (a write's rules depend on whether there were any)."""
        run = _Run(self, resource)
        run.resource(resource, resource.get("resourceType", "Resource"), None)
        return run.issues, run.claimed if run.claimed is not None else self.profiles_for(resource)

    # -- helpers used by runs ------------------------------------------------------------------------
    def invariant_plan(self, node: Node, tcode: str | None) -> InvariantPlan:
        """The invariants to check on a value of ``node`` (typed ``tcode``): the element's own, then its
        type's root invariants (per-1 of a Period), each key once, with the shortcut for values it
        holds trivially on, the severity and message of a failure; and the type or element path it
        is evaluated against (unless the value is a resource). Worked out once per node and type."""
        plans = node.plans
        if plans is None:
            plans = node.plans = {}
        plan = plans.get(tcode)
        if plan is None:
            cons = list(node.ed.get("constraint") or ())
            if tcode and tcode[:1].isupper() and tcode not in _RESOURCE_TYPES and node.owner.root is not node:
                cons += self.type_checks(CORE_SD + tcode)
            done: set[str] = set()
            out: list[Check] = []
            for c in cons:
                key = c.get("key", "")
                if key in _SKIP_CONSTRAINTS or key in done or not c.get("expression"):
                    continue
                done.add(key)
                inv = invariant(c)
                severity = "error" if inv.severity == "error" else "warning"
                if inv.key in _BEST_PRACTICE:
                    severity = "information"
                out.append((inv, _VACUOUS.get(inv.key), severity, f"Constraint {inv.key} failed: {inv.human}"))
            typed = tcode if tcode and tcode[:1].isupper() and tcode not in ("BackboneElement", "Element") else None
            plan = plans[tcode] = (tuple(out), typed or node.ed.get("path", ""))
        return cast(InvariantPlan, plan)

    def type_checks(self, type_url: str) -> list[dict[str, Any]]:
        """The invariants on the root of a type or type profile (e.g. per-1 of Period)."""
        if type_url not in self._type_checks:
            tree = self.tree(type_url)
            cons = tree.root.ed.get("constraint", []) if tree is not None else []
            self._type_checks[type_url] = [c for c in cons if c.get("key") not in _SKIP_CONSTRAINTS]
        return self._type_checks[type_url]

    def profile_type(self, url: str) -> str | None:
        if url.startswith(CORE_SD) and "/" not in url[len(CORE_SD) :] and url[len(CORE_SD) :][:1].isupper():
            name = url[len(CORE_SD) :]
            sd = self.registry.get(url)
            return sd.get("type", name) if sd else name
        tree = self.tree(url)
        return tree.type if tree is not None else None


class _Run:
    """One validation call: the issues found and the context (root resource, Bundle entries)."""

    def __init__(self, validator: Validator, root: dict[str, Any]) -> None:
        self.v = validator
        self.root = root
        self.issues: list[Issue] = []
        self._seen: set[tuple[str, str, tuple[str, ...]]] = set()
        self.full_urls: dict[str, str] = {}
        self.claimed: list[str] | None = None  # the root's ``profiles_for``, once worked out
        if root.get("resourceType") == "Bundle":
            for e in root.get("entry", []) or []:
                if isinstance(e, dict) and isinstance(e.get("resource"), dict) and e.get("fullUrl"):
                    self.full_urls[e["fullUrl"]] = e["resource"].get("resourceType", "")

    def add(self, severity: str, code: str, path: str, msg: str) -> None:
        key = (severity, msg, (path,))
        if key in self._seen or len(self.issues) >= _MAX_ISSUES:
            return
        self._seen.add(key)
        self.issues.append(Issue(f"{msg} ({path})", code, severity, (path,)))

    # -- resources -------------------------------------------------------------------------------
    def resource(self, res: dict[str, Any], path: str, profiles: list[str] | None) -> None:
        rtype = res.get("resourceType")
        if not isinstance(rtype, str):
            self.add("error", "structure", path, "A resource needs a resourceType")
            return
        if profiles is None:
            urls = self.v.profiles_for(res)
            if res is self.root and self.claimed is None:
                self.claimed = urls
            # A claimed profile the hub does not know is a warning (as the HL7 validator reports it);
            # the resource is then held to what the hub does know: its other profiles, or the base type.
            meta = res.get("meta")
            claimed = meta.get("profile") if isinstance(meta, dict) else None
            for url in claimed if isinstance(claimed, list) else ():
                if isinstance(url, str) and url not in urls:
                    self.add(
                        "warning",
                        "not-supported",
                        f"{path}.meta.profile",
                        f"Profile {url} is not known to this server; validated against the base type {rtype}",
                    )
        else:
            urls = list(profiles)
        if not urls:
            urls = [CORE_SD + rtype]
        if rtype == "Patient":
            self.bsn(res, path)
        for url in urls:
            tree = self.v.tree(url)
            if tree is None:
                self.add("error", "not-supported", path, f"Profile {url} is not known to this server")
                continue
            if tree.type != rtype:
                self.add("error", "invalid", path, f"Profile {url} is for {tree.type}, not {rtype}")
                continue
            self.item((rtype, res, None, path), tree.root, res, url)

    def bsn(self, res: dict[str, Any], path: str) -> None:
        """A Patient's BSN identifiers must pass the elfproef (11-test)."""
        idents = res.get("identifier")
        for i, ident in enumerate(idents if isinstance(idents, list) else ()):
            if isinstance(ident, dict) and ident.get("system") == BSN_SYSTEM:
                value = ident.get("value")
                if isinstance(value, str) and not is_valid_bsn(value):
                    self.add(
                        "error",
                        "value",
                        f"{path}.identifier[{i}].value",
                        f"'{value}' is not a valid BSN: nine digits that pass the elfproef (11-test)",
                    )

    # -- elements ---------------------------------------------------------------------------------
    def element(self, obj: dict[str, Any], node: Node, path: str, resource: dict[str, Any]) -> None:
        prep = node.prep or _prep(node)
        kids, bare = prep.kids, prep.bare
        for i in prep.present(obj):
            kid = kids[i]
            if bare[i] is None:
                bare[i] = _bare(kid)
            if bare[i]:  # a lone primitive with nothing to check on it: skipped (see _bare)
                value = obj.get(kid[0])
                if value is not None and not isinstance(value, _CONTAINER) and kid[5] not in obj:
                    continue
            self.child(obj, kid, path, resource)

    def child(self, obj: dict[str, Any], kid: Kid, path: str, resource: dict[str, Any]) -> None:
        name, child, label, lo, hi, uname = kid
        where = path + label
        if name[-1] == "]":
            items = _items(obj, name, path)
        else:  # a plain element: one key (and its "_key"), the value a list or not
            value, ext = obj.get(name), obj.get(uname)
            if isinstance(value, list) or isinstance(ext, list):
                items = _listed(name, value, ext, where)
            elif name in obj or uname in obj:
                items = [(name, value, ext, where)]
            else:
                items = []
        n = len(items)
        if n < lo:
            ed = child.ed
            self.add(
                "error",
                "required",
                where,
                f"Minimum cardinality of '{ed.get('path', name)}' is {ed.get('min')}, found {n}",
            )
        if hi is not None and n > hi:
            ed = child.ed
            self.add(
                "error",
                "structure",
                where,
                f"Maximum cardinality of '{ed.get('path', name)}' is {ed.get('max', '*')}, found {n}",
            )
        if not items:
            return
        if child.slices or name in _EXTENSION_NAMES:
            self.sliced(items, name, child, where, resource)
            return
        prep = child.prep or _prep(child)
        for it in items:
            if prep.plain and it[2] is None and not isinstance(it[1], _NON_PRIMITIVE):
                continue  # a primitive with nothing to check on it (formats are the models' job)
            self.item(it, child, resource, None)

    def sliced(self, items: list[Item], name: str, child: Node, where: str, resource: dict[str, Any]) -> None:
        slicing = child.ed.get("slicing", {})
        discs = slicing.get("discriminator") or (_URL_DISCRIMINATOR if name in _EXTENSION_NAMES else ())
        counts = dict.fromkeys(child.slices, 0)
        maybe = dict.fromkeys(child.slices, 0)
        assumed = dict.fromkeys(child.slices, 0)
        for it in items:
            hit = None
            undecided: list[str] = []
            for sname, sl in child.slices.items():
                m = self.matches(it, sl, discs, resource) if discs else False
                if m:
                    hit = sname
                    break
                if m is None:
                    undecided.append(sname)
            if hit is None and len(undecided) == 1:
                # the only slice it can be in, but not known to be (e.g. an unresolvable reference
                # under a profile discriminator): held to that slice's rules and counted for its
                # minimum, not against its maximum (as the HL7 validator leaves it unsliced)
                assumed[undecided[0]] += 1
                self.item(it, child.slices[undecided[0]], resource, None)
                continue
            elif hit is None and undecided:  # e.g. a profile discriminator on a reference that cannot be resolved
                for sname in undecided:
                    maybe[sname] += 1
                self.item(it, child, resource, None)
                continue
            if hit is not None:
                counts[hit] += 1
                self.item(it, child.slices[hit], resource, None)
                continue
            if slicing.get("rules") == "closed":
                self.add(
                    "error",
                    "structure",
                    it[3],
                    f"Element does not match any slice of closed slicing '{child.ed.get('id')}'",
                )
            self.item(it, child, resource, None)
            if name in _EXTENSION_NAMES:
                self.extension(it, resource, modifier=name == "modifierExtension")
        for sname, sl in child.slices.items():
            c, smin, smax = counts[sname], sl.ed.get("min", 0), sl.ed.get("max", "*")
            if c + assumed[sname] + maybe[sname] < smin:
                self.add(
                    "error",
                    "required",
                    where,
                    f"Slice '{sname}' of {child.ed.get('path')} needs at least {smin}, found {c}",
                )
            if smax != "*" and c > int(smax):
                self.add(
                    "error",
                    "structure",
                    where,
                    f"Slice '{sname}' of {child.ed.get('path')} allows at most {smax}, found {c}",
                )

    def extension(self, it: Item, resource: dict[str, Any], *, modifier: bool) -> None:
        value = it[1]
        url = value.get("url") if isinstance(value, dict) else None
        if not isinstance(url, str):
            return
        tree = self.v.tree(url)
        if tree is None:
            severity = "warning" if modifier else "information"
            self.add(severity, "extension", it[3], f"Unknown extension {url}; not checked")
            return
        if tree.type != "Extension":
            self.add("error", "extension", it[3], f"{url} is not an extension definition")
            return
        self.item(it, tree.root, resource, url)

    # -- one value ----------------------------------------------------------------------------------
    def item(self, it: Item, node: Node, resource: dict[str, Any], tree_url: str | None) -> None:
        key, value, ext, path = it
        prep = node.prep or _prep(node)
        base = prep.choice_base
        if base is not None:
            tcode = prep.choice_types.get(key[len(base) :].lower())
            if tcode is None:
                self.add(
                    "error",
                    "structure",
                    path,
                    f"Type '{key[len(base) :]}' is not allowed here; allowed: {', '.join(prep.type_codes)}",
                )
                return
        else:
            tcode = prep.tcode
            if tcode is None and isinstance(value, dict) and "resourceType" in value:
                tcode = "Resource"
        if tcode in _RESOURCE_TYPES and isinstance(value, dict) and not prep.is_root:
            self.resource(value, path, prep.resource_profiles or None)
            return
        if value is not None:
            if prep.fixed:
                self.fixed_and_pattern(value, prep.fixed, path)
            if prep.binding is not None and tcode in _CODED:
                self.binding(value, tcode, prep.binding, path)
            if tcode == "Reference" and isinstance(value, dict):
                self.reference(value, node, path)
            subject = value
        else:
            subject = ext
        if isinstance(subject, _CONTAINER):  # invariants on primitives are format rules, checked by the models
            self.invariants(subject, node, tcode, path, resource)
        target = value if isinstance(value, dict) else ext if isinstance(ext, dict) else None
        if target is None:
            return
        type_profile = prep.type_profile(node, tcode) if tcode else None
        if prep.walks_self:
            self.element(target, node, path, resource)
            if type_profile and node.source != type_profile and node.owner.url != type_profile:
                sub = self.v.tree(type_profile)
                if sub is not None:
                    self.element(target, sub.root, path, resource)
        elif tcode:
            sub = self.v.tree(type_profile or CORE_SD + tcode)
            if sub is not None:
                if isinstance(value, _CONTAINER):
                    self.invariants(value, sub.root, None, path, resource)
                self.element(target, sub.root, path, resource)

    def fixed_and_pattern(self, value: Any, fixed: tuple[tuple[str, Any], ...], path: str) -> None:
        for k, expected in fixed:
            if k.startswith("fixed") and k != "fixed" and value != expected:
                self.add("error", "value", path, f"Value must be exactly {_short(expected)}")
            elif k.startswith("pattern") and not _contains(value, expected):
                self.add("error", "value", path, f"Value must match the pattern {_short(expected)}")

    def binding(self, value: Any, tcode: str, binding: dict[str, Any], path: str) -> None:
        vs, strength = binding["valueSet"], binding["strength"]
        term = self.v.terminology
        if tcode == "code":
            ok = term.contains(vs, None, value) if isinstance(value, str) else None
            shown = repr(value)
        elif tcode == "Coding":
            ok = term.contains(vs, value.get("system"), value.get("code")) if isinstance(value, dict) else None
            shown = _coding(value)
        else:
            codings = value.get("coding", []) if isinstance(value, dict) else []
            if not codings:
                if strength == "required" and term.expansion(vs) is not None:
                    self.add(
                        "error",
                        "code-invalid",
                        path,
                        f"A coding from {vs.split('|')[0]} is required (required binding)",
                    )
                return
            results = [term.contains(vs, c.get("system"), c.get("code")) for c in codings if isinstance(c, dict)]
            ok = None if all(r is None for r in results) else any(results)
            shown = ", ".join(_coding(c) for c in codings if isinstance(c, dict))
        if ok is False:
            if strength == "required":
                self.add(
                    "error",
                    "code-invalid",
                    path,
                    f"{shown} is not in value set {vs.split('|')[0]} (required binding)",
                )
            else:
                self.add(
                    "warning",
                    "code-invalid",
                    path,
                    f"{shown} is not in value set {vs.split('|')[0]} (extensible binding)",
                )

    def reference(self, value: dict[str, Any], node: Node, path: str) -> None:
        allowed = _prep(node).reference_targets(self.v, node)
        if not allowed:
            return
        rtype = self.ref_type(value)
        if rtype is None:
            return
        if rtype not in allowed and not allowed & _RESOURCE_TYPES:
            self.add(
                "error",
                "structure",
                path,
                f"Reference to a {rtype} is not allowed here; allowed: {', '.join(sorted(allowed))}",
            )

    def ref_type(self, value: dict[str, Any]) -> str | None:
        declared = value.get("type")
        if isinstance(declared, str):
            return declared.rsplit("/", 1)[-1]
        ref = value.get("reference")
        if not isinstance(ref, str) or not ref:
            return None
        if ref.startswith("#"):
            for c in self.root.get("contained", []) or []:
                if isinstance(c, dict) and c.get("id") == ref[1:]:
                    return c.get("resourceType")
            return None
        if ref in self.full_urls:
            return self.full_urls[ref]
        if ref.startswith(("urn:", "#")):
            return None
        parts = ref.split("?", 1)[0].split("/")
        if "_history" in parts:
            parts = parts[: parts.index("_history")]
        return parts[-2] if len(parts) >= 2 and parts[-2][:1].isupper() else None

    def invariants(
        self, value: dict[str, Any] | list[Any], node: Node, tcode: str | None, path: str, resource: dict[str, Any]
    ) -> None:
        checks, typed = self.v.invariant_plan(node, tcode)
        if not checks:
            return
        is_dict = isinstance(value, dict)
        # a resource is typed by its resourceType (None), any other value by its type or element path
        path_type = None if is_dict and "resourceType" in value and node.owner.root is node else typed
        for inv, vacuous, severity, message in checks:
            if vacuous is not None and is_dict and vacuous(value):
                continue
            if inv.failed(value, path_type, resource, self.root):
                self.add(severity, "invariant", path, message)

    # -- slicing -----------------------------------------------------------------------------------
    def matches(self, it: Item, sl: Node, discs: Any, resource: dict[str, Any]) -> bool | None:
        """Whether an item belongs to a slice; None when that cannot be decided (unresolvable reference)."""
        value = it[1]
        undecided = False
        for d in discs:
            dtype, dpath = d.get("type"), d.get("path", "$this")
            if dtype in ("value", "pattern"):
                target, expected = _value_discriminator(sl, dpath)
                if target is None:
                    return False
                actual = _walk(value, dpath)
                if expected:
                    _, exp = expected[0]
                    if not any(_contains(a, exp) for a in actual):
                        return False
                    continue
                binding = target.ed.get("binding")
                if binding and binding.get("strength") == "required" and binding.get("valueSet"):
                    if not any(self._in_vs(a, binding["valueSet"]) for a in actual):
                        return False
                    continue
                if not self._conforms(it, sl, resource):
                    return False
            elif dtype == "type":
                if dpath.endswith("resolve()"):
                    ref_node = _sub_node(sl, dpath[: -len("resolve()")].rstrip(".") or "$this")
                    if ref_node is None or not self._ref_matches(
                        _walk(value, dpath[: -len("resolve()")].rstrip(".") or "$this"), ref_node
                    ):
                        return False
                    continue
                target = _sub_node(sl, dpath)
                if target is None:
                    return False
                actual_types = {_json_type(it[0], v) for v in ([value] if dpath == "$this" else _walk(value, dpath))}
                if not actual_types & set(target.type_codes):
                    return False
            elif dtype == "profile":
                if dpath.endswith("resolve()"):
                    ref_path = dpath[: -len("resolve()")].rstrip(".") or "$this"
                    ref_node = _sub_node(sl, ref_path)
                    if ref_node is None:
                        return False
                    m = self._ref_conforms(_walk(value, ref_path), ref_node, resource)
                    if m is False:
                        return False
                    undecided = undecided or m is None
                elif not self._conforms(it, sl, resource):
                    return False
            elif dtype == "exists":
                target = _sub_node(sl, dpath)
                if target is None:
                    return False
                must = target.ed.get("min", 0) > 0
                if bool(_walk(value, dpath)) != must and (must or target.ed.get("max") == "0"):
                    return False
            else:
                return False
        return None if undecided else True

    def _ref_conforms(self, refs: list[Any], ref_node: Node, resource: dict[str, Any]) -> bool | None:
        """Whether a referenced resource conforms to one of the target profiles (None: not resolvable)."""
        if not self._ref_matches(refs, ref_node):
            return False
        targets = [tp for t in ref_node.types for tp in t.get("targetProfile", [])]
        for r in refs:
            target = self.resolve(r) if isinstance(r, dict) else None
            if target is None:
                return None
            for tp in targets:
                if not any(i.severity == "error" for i in self.v.validate(target, [tp])):
                    return True
        return False

    def resolve(self, ref: dict[str, Any]) -> dict[str, Any] | None:
        """A referenced resource found in the resource itself (contained) or in the Bundle being validated."""
        r = ref.get("reference")
        if not isinstance(r, str):
            return None
        if r.startswith("#"):
            return next(
                (c for c in self.root.get("contained", []) or [] if isinstance(c, dict) and c.get("id") == r[1:]),
                None,
            )
        if self.root.get("resourceType") == "Bundle":
            for e in self.root.get("entry", []) or []:
                res = e.get("resource") if isinstance(e, dict) else None
                if isinstance(res, dict) and (
                    e.get("fullUrl") == r or f"{res.get('resourceType')}/{res.get('id')}" == r
                ):
                    return res
        return None

    def _in_vs(self, value: Any, vs: str) -> bool:
        term = self.v.terminology
        if isinstance(value, str):
            return bool(term.contains(vs, None, value))
        if isinstance(value, dict):
            codings = value.get("coding", [value])
            return any(term.contains(vs, c.get("system"), c.get("code")) for c in codings if isinstance(c, dict))
        return False

    def _ref_matches(self, refs: list[Any], ref_node: Node) -> bool:
        targets = [tp for t in ref_node.types for tp in t.get("targetProfile", [])]
        if not targets:
            return True
        allowed = {self.v.profile_type(t) for t in targets}
        for r in refs:
            if isinstance(r, dict):
                rtype = self.ref_type(r)
                if rtype is None or rtype in allowed:
                    return True
        return False

    def _conforms(self, it: Item, sl: Node, resource: dict[str, Any]) -> bool:
        trial = _Run(self.v, self.root)
        trial.full_urls = self.full_urls
        trial.item(it, sl, resource, None)
        return not any(i.severity == "error" for i in trial.issues)


class _Prep:
    """What the walk needs of an element, worked out once: its children (with their cardinality and
    which JSON keys they appear as), its type codes, and its fixed and pattern values."""

    __slots__ = (
        "kids",
        "bare",
        "discriminators",
        "keys",
        "required",
        "choice_base",
        "choice_types",
        "tcode",
        "is_root",
        "walks_self",
        "resource_profiles",
        "binding",
        "plain",
        "fixed",
        "type_codes",
        "_targets",
        "_type_profiles",
    )

    def __init__(self, node: Node) -> None:
        self.kids: tuple[Kid, ...] = tuple(_kid(name, child) for name, child in node.children.items())
        self.required = tuple(i for i, kid in enumerate(self.kids) if kid[3] > 0)
        self.bare: list[bool | None] = [None] * len(self.kids)  # per child: see _bare (worked out on first use)
        self.keys: dict[str, tuple[int, ...]] = {}
        self.discriminators: dict[str, tuple[Node | None, tuple[tuple[str, Any], ...]]] = {}
        self.type_codes = node.type_codes
        self.fixed = tuple((k, v) for k, v in node.ed.items() if k.startswith(("fixed", "pattern")))
        path = node.ed.get("path", "")
        self.choice_base = path.rsplit(".", 1)[-1][:-3] if path.endswith("[x]") else None
        self.choice_types: dict[str, str] = {}
        for code in self.type_codes:
            self.choice_types.setdefault(code.lower(), code)
        self.tcode = self.type_codes[0] if len(self.type_codes) == 1 else None
        self.is_root = node.owner.root is node
        self.walks_self = len(node.types) == 1 or self.is_root
        self.resource_profiles = [p for t in node.types for p in t.get("profile", [])]
        binding = node.ed.get("binding")
        usable = binding and binding.get("strength") in ("required", "extensible") and binding.get("valueSet")
        self.binding: dict[str, Any] | None = binding if usable else None
        # nothing to check on a primitive value here: no choice type, fixed value or code binding
        self.plain = self.choice_base is None and not self.fixed and (self.binding is None or self.tcode not in _CODED)
        self._type_profiles: dict[str, str | None] = {}
        self._targets: frozenset[str] | None = None

    def present(self, obj: dict[str, Any]) -> list[int] | tuple[int, ...]:
        """The children to check on ``obj``, in the profile's order: those with a value in it (a JSON
        key, its ``_key`` or a choice type's key) and the required ones. An absent optional child has
        nothing to check, so the walk follows the instance's keys, not the profile's elements."""
        keys = self.keys
        found: list[int] = []
        for k in obj:
            hit = keys.get(k)
            if hit is None:
                hit = keys[k] = self._kids_of(k)
            found += hit
        if not found:
            return self.required
        found += self.required
        return sorted(set(found))

    def _kids_of(self, key: str) -> tuple[int, ...]:
        name = key[1:] if key[:1] == "_" else key
        out = []
        for i, kid in enumerate(self.kids):
            kname = kid[0]
            if kname.endswith("[x]"):
                base = kname[:-3]
                if name.startswith(base) and len(name) > len(base) and name[len(base)].isupper():
                    out.append(i)
            elif kname == name:
                out.append(i)
        return tuple(out)

    def reference_targets(self, validator: Validator, node: Node) -> frozenset[str]:
        """The resource types a Reference here may point at (empty: any)."""
        if self._targets is None:
            targets = [
                tp for t in node.types if _type_code(t["code"]) == "Reference" for tp in t.get("targetProfile", [])
            ]
            self._targets = frozenset(validator.profile_type(t) or t.rsplit("/", 1)[-1] for t in targets)
        return self._targets

    def type_profile(self, node: Node, tcode: str) -> str | None:
        """The one profile the element sets for values of type ``tcode`` (None: none, or several)."""
        if tcode not in self._type_profiles:
            found = [p for t in node.types if _type_code(t["code"]) == tcode for p in t.get("profile", [])]
            self._type_profiles[tcode] = found[0] if len(found) == 1 else None
        return self._type_profiles[tcode]


def _kid(name: str, child: Node) -> Kid:
    ed = child.ed
    mx = ed.get("max", "*")
    label = "." + (name[:-3] if name.endswith("[x]") else name)
    return (name, child, label, ed.get("min", 0), None if mx == "*" else int(mx), "_" + name)


def _bare(kid: Kid) -> bool:
    """Whether one primitive value (without a ``_name`` part) of this child has nothing to check: a plain
    element, not sliced, no fixed value or code binding, and one value within its cardinality."""
    name, child, _, lo, hi, _ = kid
    if name[-1] == "]" or child.slices or name in _EXTENSION_NAMES or lo > 1 or hi == 0:
        return False
    return (child.prep or _prep(child)).plain


def _value_discriminator(sl: Node, dpath: str) -> tuple[Node | None, tuple[tuple[str, Any], ...]]:
    """The element a value/pattern discriminator points at in slice ``sl`` and its fixed and pattern
    values (as ``matches`` reads them), worked out once per slice and path."""
    prep = sl.prep or _prep(sl)
    hit = prep.discriminators.get(dpath)
    if hit is None:
        target = _sub_node(sl, dpath)
        expected = () if target is None else (target.prep or _prep(target)).fixed
        hit = prep.discriminators[dpath] = (target, expected)
    return hit


def _prep(node: Node) -> _Prep:
    prep = node.prep
    if prep is None:
        prep = node.prep = _Prep(node)
    return cast(_Prep, prep)


# -- JSON helpers -------------------------------------------------------------------------------------
def _items(obj: dict[str, Any], name: str, path: str) -> list[Item]:
    if name.endswith("[x]"):
        base = name[:-3]
        keys = [k for k in obj if k.startswith(base) and len(k) > len(base) and k[len(base)].isupper()]
        keys += [
            k[1:]
            for k in obj
            if k.startswith("_" + base) and len(k) > len(base) + 1 and k[len(base) + 1].isupper() and k[1:] not in obj
        ]
    else:
        keys = [name] if name in obj or "_" + name in obj else []
    out: list[Item] = []
    for key in keys:
        value, ext = obj.get(key), obj.get("_" + key)
        if isinstance(value, list) or isinstance(ext, list):
            out += _listed(key, value, ext, f"{path}.{key}")
        else:
            out.append((key, value, ext, f"{path}.{key}"))
    return out


def _listed(key: str, value: Any, ext: Any, where: str) -> list[Item]:
    """The items of a list element (values and their ``_key`` parts paired by index; nulls skipped)."""
    vals = value if isinstance(value, list) else []
    exts = ext if isinstance(ext, list) else []
    if not exts:
        return [(key, v, None, f"{where}[{i}]") for i, v in enumerate(vals) if v is not None]
    out: list[Item] = []
    for i in range(max(len(vals), len(exts))):
        v = vals[i] if i < len(vals) else None
        e = exts[i] if i < len(exts) else None
        if v is None and e is None:
            continue
        out.append((key, v, e, f"{where}[{i}]"))
    return out


def _walk(value: Any, path: str) -> list[Any]:
    if path in ("$this", ""):
        return [value]
    cur = [value]
    for step in path.split("."):
        if "(" in step:
            return []
        nxt: list[Any] = []
        for c in cur:
            if isinstance(c, dict):
                v = c.get(step)
                if v is None:
                    continue
                nxt.extend(v if isinstance(v, list) else [v])
        cur = nxt
    return cur


def _sub_node(node: Node, path: str) -> Node | None:
    if path in ("$this", ""):
        return node
    cur: Node | None = node
    for step in path.split("."):
        if cur is None or "(" in step:
            return None
        cur = cur.child(step)
    return cur


def _json_type(key: str, value: Any) -> str:
    if isinstance(value, dict) and "resourceType" in value:
        declared: str = value["resourceType"]
        return declared
    for i in range(len(key) - 1, 0, -1):
        if key[i].isupper():
            t = key[i:]
            return t[0].lower() + t[1:] if t.lower() in _PRIMS else t
    return key


_PRIMS = frozenset(
    {
        "boolean",
        "integer",
        "string",
        "decimal",
        "uri",
        "url",
        "canonical",
        "base64binary",
        "instant",
        "date",
        "datetime",
        "time",
        "code",
        "oid",
        "id",
        "markdown",
        "unsignedint",
        "positiveint",
        "uuid",
    }
)


def _contains(actual: Any, pattern: Any) -> bool:
    if isinstance(pattern, dict):
        if not isinstance(actual, dict):
            return False
        return all(k in actual and _contains(actual[k], v) for k, v in pattern.items())
    if isinstance(pattern, list):
        if not isinstance(actual, list):
            actual = [actual]
        return all(any(_contains(a, p) for a in actual) for p in pattern)
    return bool(actual == pattern)


def _coding(c: Any) -> str:
    if not isinstance(c, dict):
        return repr(c)
    return f"{c.get('system', '')}|{c.get('code', '')}"


def _short(v: Any) -> str:
    s = repr(v)
    return s if len(s) < 160 else s[:157] + "..."
