"""griffe extensions for the API reference (loaded by mkdocs.yml; the source files are untouched).

:class:`ReexportsOverSubmodules`: ``gradkit.optim.adam`` is a submodule *and* the function that
``gradkit/optim/__init__.py`` imports over it (as at runtime, where the import wins); griffe keeps
the submodule, so every such name is pointed back at what was imported.

:class:`SphinxRoles`: gradkit's docstrings are written in reST habits (``:func:`name```,
``text::`` before a literal block, bare ``>>>`` examples); this turns them into Markdown that
mkdocstrings renders well:

* ``:func:`x``` / ``:class:`~a.b.C``` / ... -> an *optional* cross-reference: a link when the
  target is documented on some page, plain code otherwise (never a warning, so ``mkdocs build
  --strict`` does not depend on which private helper a docstring mentions);
* a paragraph ending in ``::`` -> ``:`` (the indented block after it is already a Markdown code block);
* a run of ``>>>`` lines (with their expected output) -> a fenced ``pycon`` block.
"""

from __future__ import annotations

import re
from typing import Any

import griffe

ROLE = re.compile(r":(?:py:)?(?:func|class|meth|mod|data|attr|obj|exc|const|ref):`(~?)([^`<]+?)(?:\s*<([^>`]+)>)?`")


def _module_path(obj: griffe.Object) -> str:
    while obj is not None and not obj.is_module:
        obj = obj.parent
    return obj.path if obj is not None else ""


def _identifier(target: str, obj: griffe.Object) -> str:
    """The dotted path a role's target most likely means, seen from ``obj``: absolute when it
    starts with ``gradkit``, else the nearest enclosing class or module that has its first part."""
    if target.startswith("gradkit"):
        return target
    head = target.split(".", 1)[0]
    scope = obj if (obj.is_class or obj.is_module) else obj.parent
    while scope is not None:
        if head in scope.members:
            return f"{scope.path}.{target}"
        scope = scope.parent
    return f"{_module_path(obj)}.{target}"


def _replace_roles(text: str, obj: griffe.Object) -> str:
    def replace(match: re.Match) -> str:
        tilde, text_part, explicit = match.group(1), match.group(2).strip(), match.group(3)
        target = (explicit or text_part).strip().lstrip(".").removesuffix("()")
        label = text_part if explicit else (target.rsplit(".", 1)[-1] if tilde else text_part)
        identifier = _identifier(target, obj)
        return f'<autoref identifier="{identifier}" optional><code>{label}</code></autoref>'

    return ROLE.sub(replace, text)


def _fence_doctests(text: str) -> str:
    lines, out, i = text.split("\n"), [], 0
    while i < len(lines):
        if lines[i].lstrip().startswith(">>>") and not (out and out[-1].lstrip().startswith("```")):
            indent = lines[i][: len(lines[i]) - len(lines[i].lstrip())]
            block = []
            while i < len(lines) and lines[i].strip():
                block.append(lines[i][len(indent):] if lines[i].startswith(indent) else lines[i].strip())
                i += 1
            out += ([""] if out and out[-1].strip() else []) + [indent + "```pycon"] + [indent + b for b in block] + [
                indent + "```"]
            continue
        out.append(lines[i])
        i += 1
    return "\n".join(out)


def _literal_colons(text: str) -> str:
    return re.sub(r"(\S)::[ \t]*\n(?=[ \t]*\n)", r"\1:\n", text)


def _own_objects(pkg: griffe.Module) -> list[griffe.Object]:
    """Every object defined in the package, each once (``from gradkit import landscapes`` in
    ``gradkit/__init__.py`` makes the submodule an alias of itself: it is followed)."""
    seen, objects, out = set(), [pkg], []
    while objects:
        obj = objects.pop()
        if id(obj) in seen:
            continue
        seen.add(id(obj))
        out.append(obj)
        for name, member in obj.members.items():
            if member.is_alias:
                if member.target_path == f"{obj.path}.{name}" and obj.is_module:
                    try:
                        objects.append(member.final_target)
                    except (griffe.AliasResolutionError, griffe.CyclicAliasError):
                        pass
            else:
                objects.append(member)
    return out


class SphinxRoles(griffe.Extension):
    """Rewrite every docstring of the package once it is loaded."""

    def on_package(self, *, pkg: griffe.Module, **kwargs: Any) -> None:
        for obj in _own_objects(pkg):
            if obj.docstring is not None:
                obj.docstring.value = _fence_doctests(_literal_colons(_replace_roles(obj.docstring.value, obj)))


class ReexportsOverSubmodules(griffe.Extension):
    """Make ``module.name`` the object ``module`` imports as ``name`` where griffe kept a
    same-named submodule instead (``from gradkit.optim.adam import adam``).

    Every alias of the package is resolved first, on the tree as griffe built it, so that no
    path through a submodule that is about to be shadowed is looked up afterwards."""

    def on_package(self, *, pkg: griffe.Module, **kwargs: Any) -> None:
        modules, objects, aliases = [], [pkg], []
        while objects:
            obj = objects.pop()
            for member in obj.members.values():
                if member.is_alias:
                    aliases.append(member)
                    try:
                        member.resolve_target()
                    except (griffe.AliasResolutionError, griffe.CyclicAliasError):
                        pass  # outside the package (jax, optax, ...): left as griffe left it
                elif member.is_module or member.is_class:
                    objects.append(member)
            if obj.is_module:
                modules.append(obj)
        shadowed = []
        for module in modules:
            for name, target in module.imports.items():
                member = module.members.get(name)
                if member is not None and not member.is_alias and member.is_module and target != member.path:
                    try:
                        final = module.modules_collection.get_member(target)
                        final = final.final_target if final.is_alias else final
                    except (KeyError, griffe.AliasResolutionError, griffe.CyclicAliasError):
                        continue
                    shadowed.append((module, name, final))
        replaced = {}
        for module, name, final in shadowed:
            replaced[id(module.members[name])] = final
            module.set_member(name, griffe.Alias(name, final, parent=module))
        for alias in aliases:  # an import of the name elsewhere (gradkit.check) follows it too
            if alias.resolved and id(alias.target) in replaced:
                alias.target = replaced[id(alias.target)]
