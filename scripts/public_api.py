#!/usr/bin/env python3
"""Lists the public API of a crate from rustdoc's JSON output, one item a line.

Used by scripts/public-api (read that first). Input: the JSON file that
`cargo +nightly rustdoc -p CRATE --lib -- -Z unstable-options
--output-format json` writes. Output: sorted, deduplicated lines such as

    pub fn utp::connect_with(url: &str, options: &Options) -> Result<Box<dyn Channel>>
    pub struct utp::channel::Options
    pub field utp::channel::Options::max_payload: usize
    impl Clone for utp::channel::Options

Every path a user can name is listed (an item re-exported at two paths
appears at both). The JSON is made with `--document-hidden-items`, and this
script leaves out every item marked `#[doc(hidden)]` and everything under
it: hiding is how internals stay out of the API. (Without that flag rustdoc
drops a public type defined in a hidden module even where it is
re-exported, so such re-exports could not be followed.)
Auto-trait impls (Send, Sync, ...) are listed, since losing one breaks
callers (except Freeze, which only nightly can name); blanket impls (`impl<T> From<T> for T`) are not.

Why not cargo-public-api: its newest release reads rustdoc JSON format 57;
the nightly CI installs writes a newer format. This script reads the few
fields it needs and fails loudly on anything it does not know.
"""

import json
import sys


def render_type(t):
    """A Rust type from its JSON form, short names (last path segment)."""
    if t is None:
        return "()"
    (kind, v), = t.items()
    if kind == "resolved_path":
        return short(v["path"]) + render_args(v.get("args"))
    if kind == "primitive":
        return v
    if kind == "generic":
        return v
    if kind == "borrowed_ref":
        life = (v["lifetime"] + " ") if v.get("lifetime") else ""
        mut = "mut " if v["is_mutable"] else ""
        return f"&{life}{mut}{render_type(v['type'])}"
    if kind == "raw_pointer":
        return ("*mut " if v["is_mutable"] else "*const ") + render_type(v["type"])
    if kind == "slice":
        return f"[{render_type(v)}]"
    if kind == "array":
        return f"[{render_type(v['type'])}; {v['len']}]"
    if kind == "tuple":
        return "(" + ", ".join(render_type(x) for x in v) + ("," if len(v) == 1 else "") + ")"
    if kind == "impl_trait":
        return "impl " + " + ".join(render_bound(b) for b in v)
    if kind == "dyn_trait":
        parts = [short(p["trait"]["path"]) + render_args(p["trait"].get("args")) for p in v["traits"]]
        if v.get("lifetime"):
            parts.append(v["lifetime"])
        return "dyn " + " + ".join(parts)
    if kind == "qualified_path":
        trait = v.get("trait")
        self_ty = render_type(v["self_type"])
        if trait:
            return f"<{self_ty} as {short(trait['path'])}>::{v['name']}"
        return f"{self_ty}::{v['name']}"
    if kind == "function_pointer":
        sig = v["sig"]
        ins = ", ".join(render_type(x[1]) for x in sig["inputs"])
        out = sig.get("output")
        return f"fn({ins})" + (f" -> {render_type(out)}" if out else "")
    if kind == "infer":
        return "_"
    raise SystemExit(f"public_api.py: unknown type kind {kind!r}")


# Auto traits rustdoc reports that stable Rust cannot name: not API.
UNSTABLE_AUTO_TRAITS = {"Freeze"}


def hidden(it):
    return any("#[doc(hidden)]" in json.dumps(a) for a in it.get("attrs", []))


def short(path):
    return path.split("::")[-1]


def render_args(args):
    if not args:
        return ""
    (kind, v), = args.items()
    if kind == "angle_bracketed":
        parts = []
        for a in v["args"]:
            (ak, av), = a.items()
            if ak == "type":
                parts.append(render_type(av))
            elif ak == "lifetime":
                parts.append(av)
            elif ak == "const":
                parts.append(av.get("expr", "_"))
            else:
                parts.append("_")
        for c in v.get("constraints", []):
            binding = c.get("binding", {})
            if "equality" in binding:
                eq = binding["equality"]
                val = render_type(eq["type"]) if "type" in eq else str(eq)
                parts.append(f"{c['name']} = {val}")
            else:
                parts.append(c["name"])
        return "<" + ", ".join(parts) + ">" if parts else ""
    if kind == "parenthesized":
        ins = ", ".join(render_type(x) for x in v["inputs"])
        out = v.get("output")
        return f"({ins})" + (f" -> {render_type(out)}" if out else "")
    return ""


def render_bound(b):
    (kind, v), = b.items()
    if kind == "trait_bound":
        modifier = "?" if v.get("modifier") == "maybe" else ""
        return modifier + short(v["trait"]["path"]) + render_args(v["trait"].get("args"))
    if kind == "outlives":
        return v
    return "_"


def render_generics(g):
    params = []
    for p in g["params"]:
        (kind, v), = p["kind"].items()
        if kind == "lifetime":
            params.append(p["name"])
        elif kind == "type":
            if v.get("is_synthetic"):
                continue  # `impl Trait` in argument position
            bounds = " + ".join(render_bound(b) for b in v.get("bounds", []))
            params.append(p["name"] + (f": {bounds}" if bounds else ""))
        elif kind == "const":
            params.append(f"const {p['name']}: {render_type(v['type'])}")
    return "<" + ", ".join(params) + ">" if params else ""


def render_where(g):
    preds = []
    for w in g.get("where_predicates", []):
        (kind, v), = w.items()
        if kind == "bound_predicate":
            bounds = " + ".join(render_bound(b) for b in v["bounds"])
            preds.append(f"{render_type(v['type'])}: {bounds}")
    return (" where " + ", ".join(preds)) if preds else ""


def render_fn(name, f):
    sig = f["sig"]
    head = f["header"]
    quals = ("const " if head["is_const"] else "") + ("async " if head["is_async"] else "") + (
        "unsafe " if head["is_unsafe"] else "")
    args = []
    for arg_name, t in sig["inputs"]:
        if arg_name == "self":
            rendered = render_type(t)
            args.append({"Self": "self", "&Self": "&self", "&mut Self": "&mut self"}.get(rendered, f"self: {rendered}"))
        else:
            args.append(f"{arg_name}: {render_type(t)}")
    out = sig.get("output")
    ret = f" -> {render_type(out)}" if out else ""
    return f"{quals}fn {name}{render_generics(f['generics'])}({', '.join(args)}){ret}{render_where(f['generics'])}"


class Walker:
    def __init__(self, doc):
        self.index = doc["index"]
        self.paths = doc["paths"]
        self.lines = set()
        self.seen = set()

    def item(self, item_id):
        return self.index.get(str(item_id))

    def walk_module(self, module, prefix):
        for child_id in module["inner"]["module"]["items"]:
            self.walk(self.item(child_id), prefix)

    def walk(self, it, prefix, name=None):
        if it is None or hidden(it):
            return  # stripped (private) or hidden
        if it["visibility"] != "public" and "use" not in it["inner"]:
            # Trait items and variants have "default" visibility.
            if it["visibility"] != "default":
                return
        (kind, v), = it["inner"].items()
        if kind == "use" and name is None:
            name = v["name"]
        name = name or it["name"]
        path = f"{prefix}::{name}" if prefix else name
        key = (path, it["id"])
        if key in self.seen:
            return
        self.seen.add(key)
        add = self.lines.add
        if kind == "module":
            add(f"pub mod {path}")
            self.walk_module(it, path)
        elif kind == "use":
            target = self.item(v["id"]) if v.get("id") is not None else None
            if v["is_glob"]:
                if target is not None and "module" in target["inner"]:
                    self.walk_module(target, prefix)
                elif target is not None and "enum" in target["inner"]:
                    for var in target["inner"]["enum"]["variants"]:
                        self.walk(self.item(var), prefix)
                return
            if target is None:
                # An external crate or item (e.g. `pub use bytemuck`).
                add(f"pub use {path} = {v['source']}")
                return
            self.walk(target, prefix, v["name"])
        elif kind == "function":
            add(f"pub {render_fn(path, v)}")
        elif kind == "struct":
            add(f"pub struct {path}{render_generics(v['generics'])}")
            k = v["kind"]
            if "plain" in k:
                for fid in k["plain"]["fields"]:
                    f = self.item(fid)
                    if f and f["visibility"] == "public" and not hidden(f):
                        add(f"pub field {path}::{f['name']}: {render_type(f['inner']['struct_field'])}")
            elif "tuple" in k:
                for i, fid in enumerate(k["tuple"]):
                    f = self.item(fid) if fid is not None else None
                    if f and f["visibility"] == "public" and not hidden(f):
                        add(f"pub field {path}::{i}: {render_type(f['inner']['struct_field'])}")
            self.walk_impls(v["impls"], path)
        elif kind == "enum":
            attrs = " ".join(a if isinstance(a, str) else json.dumps(a, sort_keys=True) for a in it.get("attrs", []))
            tag = " #[non_exhaustive]" if "non_exhaustive" in attrs else ""
            add(f"pub enum {path}{render_generics(v['generics'])}{tag}")
            for var_id in v["variants"]:
                var = self.item(var_id)
                if var is None or hidden(var):
                    continue
                vk = var["inner"]["variant"]["kind"]
                if vk == "plain":
                    add(f"pub variant {path}::{var['name']}")
                elif "tuple" in vk:
                    types = [render_type(self.item(f)["inner"]["struct_field"]) for f in vk["tuple"] if f is not None]
                    add(f"pub variant {path}::{var['name']}({', '.join(types)})")
                else:
                    fields = [self.item(f) for f in vk["struct"]["fields"]]
                    inner = ", ".join(f"{f['name']}: {render_type(f['inner']['struct_field'])}" for f in fields if f)
                    add(f"pub variant {path}::{var['name']} {{ {inner} }}")
            self.walk_impls(v["impls"], path)
        elif kind == "trait":
            unsafe = "unsafe " if v.get("is_unsafe") else ""
            bounds = " + ".join(render_bound(b) for b in v.get("bounds", []))
            add(f"pub {unsafe}trait {path}{render_generics(v['generics'])}" + (f": {bounds}" if bounds else ""))
            for tid in v["items"]:
                ti = self.item(tid)
                if ti is None or hidden(ti):
                    continue
                (tk, tv), = ti["inner"].items()
                if tk == "function":
                    add(f"pub {render_fn(path + '::' + ti['name'], tv)}")
                elif tk == "assoc_type":
                    add(f"pub type {path}::{ti['name']}")
                elif tk == "assoc_const":
                    add(f"pub const {path}::{ti['name']}: {render_type(tv['type'])}")
            for impl_id in v.get("implementations", []):
                imp = self.item(impl_id)
                if imp and imp["inner"]["impl"].get("blanket_impl") is None:
                    add(f"impl {path} for {render_type(imp['inner']['impl']['for'])}")
        elif kind == "constant":
            add(f"pub const {path}: {render_type(v['type'])}")
        elif kind == "static":
            add(f"pub static {path}: {render_type(v['type'])}")
        elif kind == "type_alias":
            add(f"pub type {path}{render_generics(v['generics'])} = {render_type(v['type'])}")
        elif kind == "macro":
            add(f"pub macro {path}!")
        elif kind in ("struct_field", "variant", "impl", "primitive", "extern_crate"):
            pass
        else:
            raise SystemExit(f"public_api.py: unknown item kind {kind!r} at {path}")

    def walk_impls(self, impl_ids, path):
        for impl_id in impl_ids:
            imp = self.item(impl_id)
            if imp is None or hidden(imp):
                continue
            iv = imp["inner"]["impl"]
            if iv.get("blanket_impl") is not None:
                continue
            trait = iv.get("trait")
            if trait is not None and short(trait["path"]) in UNSTABLE_AUTO_TRAITS:
                continue
            if trait is not None:
                neg = "!" if iv.get("is_negative") else ""
                self.lines.add(f"impl {neg}{short(trait['path'])}{render_args(trait.get('args'))} for {path}")
                continue
            for mid in iv["items"]:
                m = self.item(mid)
                if m is None or m["visibility"] != "public" or hidden(m):
                    continue
                (mk, mv), = m["inner"].items()
                if mk == "function":
                    self.lines.add(f"pub {render_fn(path + '::' + m['name'], mv)}")
                elif mk == "assoc_const":
                    self.lines.add(f"pub const {path}::{m['name']}: {render_type(mv['type'])}")


def main():
    if len(sys.argv) != 2:
        raise SystemExit("usage: public_api.py RUSTDOC.json")
    with open(sys.argv[1]) as f:
        doc = json.load(f)
    walker = Walker(doc)
    root = walker.item(doc["root"])
    walker.lines.add(f"pub mod {root['name']}")
    walker.walk_module(root, root["name"])
    for line in sorted(walker.lines):
        print(line)


if __name__ == "__main__":
    main()
