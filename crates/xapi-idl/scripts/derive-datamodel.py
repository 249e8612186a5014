#!/usr/bin/env python3
"""Derive the project's datamodel files from the published XenAPI interface description.

Reads the upstream interface facts (xenapi.json, api-dispatch.json, errors.json) and writes
interface facts only -- names, types, qualifiers, defaults, params, results, errors, roles,
lifecycle states -- with no upstream prose:

  spec/datamodel.json   classes, fields, messages, enums
  spec/companion.json   facts the datamodel lacks: async-capable messages, default
                        parameters, hidden messages, error parameter names, relations

Usage: derive-datamodel.py [SPEC_DIR]   (default: ../../../shared/spec relative to the repo root)
Output is deterministic (sorted where upstream order carries no meaning) so a re-run on the same
input leaves git clean.
"""
import json
import os
import re
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
CRATE = os.path.dirname(HERE)
REPO = os.path.dirname(os.path.dirname(CRATE))
SPEC = sys.argv[1] if len(sys.argv) > 1 else os.path.join(REPO, "..", "shared", "spec")

LIFECYCLE = {
    "Published_s": "published",
    "Prototyped_s": "prototyped",
    "Deprecated_s": "deprecated",
    "Removed_s": "removed",
}
QUALIFIER = {"RW": "rw", "RO/constructor": "static_ro", "RO/runtime": "dynamic_ro"}


def load(name):
    with open(os.path.join(SPEC, name)) as f:
        return json.load(f)


def split_map(t):
    """'(K -> V) map' -> (K, V), respecting nested parentheses."""
    inner = t[1:-len(") map")]
    depth = 0
    for i in range(len(inner) - 3):
        c = inner[i]
        if c == "(":
            depth += 1
        elif c == ")":
            depth -= 1
        elif depth == 0 and inner[i:i + 4] == " -> ":
            return inner[:i], inner[i + 4:]
    raise ValueError("bad map type " + t)


def split_items(s):
    """Split a '{a; b}' or '{"k" -> "v", ...}' body on top-level separators."""
    out, depth, cur, quoted = [], 0, "", False
    for c in s:
        if c == '"':
            quoted = not quoted
        if not quoted and c in "({":
            depth += 1
        if not quoted and c in ")}":
            depth -= 1
        if not quoted and depth == 0 and c in ",;":
            out.append(cur.strip())
            cur = ""
            continue
        cur += c
    if cur.strip():
        out.append(cur.strip())
    return out


def unquote(s):
    s = s.strip()
    if len(s) >= 2 and s[0] == '"' and s[-1] == '"':
        return s[1:-1]
    return s


def default_value(t, raw):
    """Upstream renders defaults in OCaml-ish text; turn them into typed JSON values."""
    raw = raw.strip()
    if t.endswith(") map"):
        k, v = split_map(t)
        body = raw[1:-1].strip()
        out = {}
        for item in split_items(body):
            key, val = item.split("->", 1)
            out[str(default_value(k, key))] = default_value(v, val)
        return out
    if t.endswith(" set"):
        elem = t[:-len(" set")]
        body = raw[1:-1].strip()
        return [default_value(elem, x) for x in split_items(body)]
    if t == "int":
        return int(raw)
    if t == "float":
        return float(raw + "0" if raw.endswith(".") else raw)
    if t == "bool":
        return raw == "true"
    if t.endswith(" ref"):
        return "OpaqueRef:NULL" if raw in ("Null", "OpaqueRef:NULL") else raw
    return unquote(raw)


def field(f):
    out = {
        "name": f["name"],
        "type": f["type"],
        "qualifier": QUALIFIER[f["qualifier"]],
        "lifecycle": LIFECYCLE[f["lifecycle"]["state"]],
    }
    if "default" in f:
        out["default"] = default_value(f["type"], f["default"])
    return out


def message(m):
    out = {
        "name": m["name"],
        "params": [{"name": p["name"], "type": p["type"]} for p in m["params"]],
        "result": m["result"][0],
        "errors": [e["name"] for e in m["errors"]],
        "roles": m["roles"],
        "lifecycle": LIFECYCLE[m["lifecycle"]["state"]],
    }
    if m["implicit"]:
        out["implicit"] = True
    return out


# Hidden messages that upstream's IDL (ocaml/idl/datamodel.ml, module VDI) declares but the
# published xenapi.json leaves out. Facts only, written down here by hand:
#   VDI.db_introduce  upstream's `pool_introduce` renamed and hidden: VDI.introduce's parameter
#                     list plus a trailing `cbt_enabled` bool; result `VDI ref`; no declared
#                     errors; allowed roles _R_LOCAL_ROOT_ONLY (the empty role list).
#   VDI.db_forget     one `VDI ref` param named `vdi`; void; _R_LOCAL_ROOT_ONLY.
# Both carry upstream's default flags (Session, Async). `copy_of` names a published message
# whose params, result and lifecycle are copied before `extra_params` are appended.
UPSTREAM_HIDDEN = [
    {
        "class": "VDI",
        "name": "db_introduce",
        "copy_of": "introduce",
        "extra_params": [{"name": "cbt_enabled", "type": "bool"}],
        "errors": [],
        "roles": [],
    },
    {
        "class": "VDI",
        "name": "db_forget",
        "params": [
            {"name": "session_id", "type": "session ref"},
            {"name": "vdi", "type": "VDI ref"},
        ],
        "result": "void",
        "errors": [],
        "roles": [],
        "lifecycle": "published",
    },
]

# Trailing parameter defaults upstream's IDL declares (its `param_default`s) where
# api-dispatch.json lists none. VDI.introduce's parameters from xenstore_data on have defaults
# upstream; db_introduce shares that list and adds `cbt_enabled` (default false).
INTRODUCE_DEFAULTS = [
    {"param": "xenstore_data", "value": {}},
    {"param": "sm_config", "value": {}},
    {"param": "managed", "value": True},
    {"param": "virtual_size", "value": 0},
    {"param": "physical_utilisation", "value": 0},
    {"param": "metadata_of_pool", "value": "OpaqueRef:NULL"},
    {"param": "is_a_snapshot", "value": False},
    {"param": "snapshot_time", "value": "19700101T00:00:00Z"},
    {"param": "snapshot_of", "value": "OpaqueRef:NULL"},
]
UPSTREAM_DEFAULTS = {
    "VDI.introduce": INTRODUCE_DEFAULTS,
    "VDI.db_introduce": INTRODUCE_DEFAULTS + [{"param": "cbt_enabled", "value": False}],
}


def add_upstream_hidden(classes):
    """Append UPSTREAM_HIDDEN to their classes; returns their wire names."""
    by_name = {c["name"]: c for c in classes}
    names = []
    for h in UPSTREAM_HIDDEN:
        c = by_name[h["class"]]
        if any(m["name"] == h["name"] for m in c["messages"]):
            raise SystemExit("%s.%s is published now: drop it from UPSTREAM_HIDDEN" % (h["class"], h["name"]))
        if "copy_of" in h:
            base = next(m for m in c["messages"] if m["name"] == h["copy_of"])
            params = [dict(p) for p in base["params"]] + h["extra_params"]
            result, lifecycle = base["result"], base["lifecycle"]
        else:
            params, result, lifecycle = h["params"], h["result"], h["lifecycle"]
        c["messages"].append({
            "name": h["name"],
            "params": params,
            "result": result,
            "errors": h["errors"],
            "roles": h["roles"],
            "lifecycle": lifecycle,
        })
        names.append("%s.%s" % (h["class"], h["name"]))
    return names


def derive_relations(classes):
    """One-to-many relations: a runtime `X ref set` field mirrored by an `C ref` field in X."""
    by_name = {c["name"]: c for c in classes}
    overrides = {
        # Where a class has several candidate back-references, upstream pairs them like this.
        ("VM", "snapshots"): "snapshot_of",
        ("VM", "children"): "parent",
        ("VDI", "snapshots"): "snapshot_of",
        ("task", "subtasks"): "subtask_of",
        ("host", "resident_VMs"): "resident_on",
        ("PGPU", "resident_VGPUs"): "resident_on",
        ("VM", "VTPMs"): "VM",
        ("PIF", "bond_master_of"): "master",
        ("PIF", "VLAN_slave_of"): "tagged_PIF",
        ("PIF", "tunnel_access_PIF_of"): "access_PIF",
        ("PIF", "tunnel_transport_PIF_of"): "transport_PIF",
        ("PIF", "sriov_physical_PIF_of"): "physical_PIF",
        ("PIF", "sriov_logical_PIF_of"): "logical_PIF",
    }
    rels = []
    for c in classes:
        for f in c["fields"]:
            m = re.fullmatch(r"(\w+) ref set", f["type"])
            if not m or f["qualifier"] != "RO/runtime":
                continue
            target = by_name.get(m.group(1))
            if target is None:
                continue
            want = c["name"] + " ref"
            cands = [g["name"] for g in target["fields"] if g["type"] == want]
            pick = overrides.get((c["name"], f["name"]))
            if pick is None:
                if len(cands) != 1:
                    continue
                pick = cands[0]
            if pick not in cands:
                raise SystemExit("relation override names a missing field: %s.%s" % (target["name"], pick))
            rels.append({"one": [target["name"], pick], "many": [c["name"], f["name"]]})
    return rels


def main():
    api = load("xenapi.json")
    dispatch = load("api-dispatch.json")
    errors = load("errors.json")

    enums = {}
    classes = []
    for c in api:
        for e in c["enums"]:
            enums[e["name"]] = [v["name"] for v in e["values"]]
        classes.append({
            "name": c["name"],
            "lifecycle": LIFECYCLE[c["lifecycle"]["state"]],
            "fields": [field(f) for f in c["fields"]],
            "messages": [message(m) for m in c["messages"]],
        })
    upstream_hidden = add_upstream_hidden(classes)
    datamodel = {
        "classes": classes,
        "enums": [{"name": k, "values": enums[k]} for k in sorted(enums)],
    }

    async_msgs = sorted(
        ["%s.%s" % (m["class"], m["message"]) for m in dispatch["explicit_messages"] if m["async"]]
        + ["%s.%s" % (m["class"], m["message"]) for m in dispatch["implicit_async_capable"]]
        + upstream_hidden
    )
    defaults = {}
    for m in dispatch["explicit_messages"]:
        if m["defaults"]:
            defaults["%s.%s" % (m["class"], m["message"])] = [
                {"param": d["param"], "value": d["default"]["value"]} for d in m["defaults"]
            ]
    for wire, ds in UPSTREAM_DEFAULTS.items():
        if defaults.get(wire, ds) != ds:
            raise SystemExit("%s: api-dispatch.json has other defaults now" % wire)
        defaults[wire] = ds
    no_session = sorted(
        "%s.%s" % (m["class"], m["message"])
        for m in dispatch["explicit_messages"]
        if "Session" not in m["flags"]
    )
    hidden = sorted(
        {"%s.%s" % (m["class"], m["message"]) for m in dispatch["hidden_explicit_messages"]}
        | set(upstream_hidden)
    )
    companion = {
        "async": async_msgs,
        "defaults": dict(sorted(defaults.items())),
        "no_session": no_session,
        "hidden_explicit": hidden,
        "hidden_implicit": ["get_all_where", "get_all_records_where"],
        "errors": {e["code"]: e["params"] for e in sorted(errors, key=lambda e: e["code"])},
        "relations": derive_relations(api),
    }

    for name, obj in (("datamodel.json", datamodel), ("companion.json", companion)):
        path = os.path.join(CRATE, "spec", name)
        with open(path, "w") as f:
            json.dump(obj, f, indent=1, sort_keys=False)
            f.write("\n")
        print("wrote", os.path.relpath(path, REPO))


if __name__ == "__main__":
    main()
