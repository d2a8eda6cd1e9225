"""The Argo CD health check and ``rotate`` action (deploy/argocd/), run under Lua 5.1 as Argo CD runs them.

Argo CD runs gopher-lua (Lua 5.1) with only the base, table and package libraries and an ``os``
holding ``date`` and ``time`` (util/lua/lua.go, oslib_safe.go): a script from ``argocd-cm`` gets no
``string``, ``math`` or ``io`` unless ``resource.customizations.useOpenLibs`` is set. Each script
runs here under Debian's ``lua5.1`` (``make tools``) in that same sandbox, on the test files in
Argo CD's own layout (``health_test.yaml``, ``actions/action_test.yaml``, ``testdata/``), and the
result is compared as util/lua/health_test.go and custom_actions_test.go compare it.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import yaml

from secretrotation.core import names
from statuscheck import KNOWN_REASONS, STATUS_SCHEMA, undeclared

CUSTOMIZATION = Path(__file__).parents[2] / "deploy/argocd/rotation.sre.dev/SecretRotation"
ACTIONS = CUSTOMIZATION / "actions"
SCRIPTS = [CUSTOMIZATION / "health.lua", ACTIONS / "discovery.lua", *sorted(ACTIONS.glob("*/action.lua"))]
HEALTH_STATUSES = {"Healthy", "Progressing", "Degraded", "Suspended", "Missing", "Unknown"}
# Argo CD's action tests set time-dependent annotations to this before comparing (custom_actions_test.go).
NORMALIZED_TIME = "0001-01-01T00:00:00Z"
# The strftime directives Argo CD's os.date knows (util/lua/oslib_safe.go, cDateFlagToGo and 'w').
ARGO_DATE_DIRECTIVES = set("aAbBcdFHImMpPSxXyYzZw%")

# Encodes what a script returns as JSON (as gopher-json does: an empty table is an array), then
# takes away what Argo CD never opens for a script: string, math, io, debug, coroutine, the string
# methods, and every os function but date and time.
HARNESS = r"""
local format, byte, gsub, concat, sort = string.format, string.byte, string.gsub, table.concat, table.sort
local write, loadfile = io.write, loadfile

local function encode(value)
  local kind = type(value)
  if kind == "table" then
    local count = 0
    for _ in pairs(value) do count = count + 1 end
    local items = {}
    if count == #value then
      for i = 1, #value do items[i] = encode(value[i]) end
      return "[" .. concat(items, ",") .. "]"
    end
    local keys = {}
    for key in pairs(value) do
      if type(key) ~= "string" then error("a table mixes array and object keys") end
      keys[#keys + 1] = key
    end
    sort(keys)
    for i, key in ipairs(keys) do items[i] = encode(key) .. ":" .. encode(value[key]) end
    return "{" .. concat(items, ",") .. "}"
  elseif kind == "string" then
    return '"' .. (gsub(value, '[%c"\\]', function(c) return format("\\u%04x", byte(c)) end)) .. '"'
  elseif kind == "number" then
    return format("%.17g", value)
  elseif kind == "boolean" then
    return tostring(value)
  elseif kind == "nil" then
    return "null"
  end
  error("cannot encode a " .. kind)
end

local date, time = os.date, os.time
string, math, io, debug, coroutine = nil, nil, nil, nil, nil
getmetatable("").__index = nil
os = {date = date, time = time}
for name in pairs(package.loaded) do
  if name ~= "_G" and name ~= "package" and name ~= "table" then package.loaded[name] = nil end
end
package.loaded.os = os
package.path, package.cpath, package.loadlib = "", "", nil
"""


class KubeLoader(yaml.SafeLoader):
    """YAML as Kubernetes reads it: a timestamp stays a string."""


KubeLoader.yaml_implicit_resolvers = {
    first: [(tag, rx) for tag, rx in resolvers if tag != "tag:yaml.org,2002:timestamp"]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}


def load(path: Path) -> Any:
    return yaml.load(path.read_text(), Loader=KubeLoader)  # KubeLoader is a SafeLoader


def lua_literal(value: Any) -> str:
    """``value`` (as JSON decodes) as a Lua 5.1 expression, the table Argo CD builds from the object."""
    if isinstance(value, Mapping):
        return "{" + ", ".join(f"[{lua_literal(str(k))}] = {lua_literal(v)}" for k, v in value.items()) + "}"
    if isinstance(value, list):
        return "{" + ", ".join(lua_literal(v) for v in value) + "}"
    if isinstance(value, bool):
        return "true" if value else "false"
    if value is None:
        return "nil"
    if isinstance(value, int | float):
        return repr(value)
    if isinstance(value, str):
        # Decimal escapes for every byte outside printable ASCII: the one escape Lua 5.1 has for any byte.
        return '"' + "".join(chr(b) if 32 <= b < 127 and b not in b'"\\' else f"\\{b}" for b in value.encode()) + '"'
    raise TypeError(f"no Lua literal for {value!r}")


@pytest.fixture(scope="module")
def lua() -> str:
    found = shutil.which("lua5.1")
    if found is None:
        pytest.fail("lua5.1 is missing: `make tools` installs it (Debian package lua5.1)")
    return found


def run(lua: str, script: Path, obj: Mapping[str, Any]) -> Any:
    """What ``script`` returns for ``obj``, as JSON decodes it, run in Argo CD's sandbox."""
    program = f"{HARNESS}\nobj = {lua_literal(obj)}\nwrite(encode(assert(loadfile({lua_literal(str(script))}))()))\n"
    done = subprocess.run([lua, "-"], input=program, capture_output=True, text=True, timeout=30, check=False)
    assert done.returncode == 0, f"{script.name} failed under lua5.1: {done.stderr}"
    return json.loads(done.stdout)


def clean_returned(new: Any, old: Any) -> Any:
    """Argo CD's cleanReturnedObj: an empty table that was an object in the input is an object again."""
    if isinstance(new, dict) and isinstance(old, dict):
        return {k: clean_returned(v, old[k]) if k in old else v for k, v in new.items()}
    if isinstance(new, list) and isinstance(old, dict) and not new:
        return {}
    if isinstance(new, list) and isinstance(old, list):
        return [clean_returned(v, old[i]) if i < len(old) else v for i, v in enumerate(new)]
    return new


HEALTH_CASES: list[dict[str, Any]] = load(CUSTOMIZATION / "health_test.yaml")["tests"]
ACTION_TESTS = load(ACTIONS / "action_test.yaml")


@pytest.mark.parametrize("case", HEALTH_CASES, ids=[c["inputPath"] for c in HEALTH_CASES])
def test_the_health_check_maps_each_status_as_health_test_yaml_says(lua: str, case: dict[str, Any]) -> None:
    health = run(lua, CUSTOMIZATION / "health.lua", load(CUSTOMIZATION / case["inputPath"]))
    expected = case["healthStatus"]
    assert health["status"] in HEALTH_STATUSES, health
    assert (health["status"], health.get("message", "")) == (expected["status"], expected.get("message", ""))


@pytest.mark.parametrize(
    "case", ACTION_TESTS["discoveryTests"], ids=[c["inputPath"] for c in ACTION_TESTS["discoveryTests"]]
)
def test_discovery_offers_rotate_enabled_or_disabled_as_action_test_yaml_says(lua: str, case: dict[str, Any]) -> None:
    actions = run(lua, ACTIONS / "discovery.lua", load(ACTIONS / case["inputPath"]))
    found = [{"name": name, "disabled": False, **fields} for name, fields in sorted(actions.items())]
    assert found == case["result"]


@pytest.mark.parametrize(
    "case", ACTION_TESTS["actionTests"], ids=[f"{c['action']}/{c['inputPath']}" for c in ACTION_TESTS["actionTests"]]
)
def test_rotate_sets_requested_at_to_now_in_utc_and_changes_nothing_else(lua: str, case: dict[str, Any]) -> None:
    source = load(ACTIONS / case["inputPath"])
    before = datetime.now(UTC).replace(microsecond=0)

    returned = clean_returned(run(lua, ACTIONS / case["action"] / "action.lua", source), source)

    annotations = returned["metadata"]["annotations"]
    requested = annotations[names.REQUESTED_AT_ANNOTATION]
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", requested), requested
    at = datetime.strptime(requested, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC)
    assert before <= at <= datetime.now(UTC) + timedelta(seconds=1), f"{requested} is not now, in UTC"
    assert requested != (source["metadata"].get("annotations") or {}).get(names.REQUESTED_AT_ANNOTATION)
    annotations[names.REQUESTED_AT_ANNOTATION] = NORMALIZED_TIME
    assert returned == load(ACTIONS / case["expectedOutputPath"])


def test_every_testdata_file_is_a_case_and_a_status_the_operator_could_write() -> None:
    used = {CUSTOMIZATION / c["inputPath"] for c in HEALTH_CASES}
    used |= {ACTIONS / c["inputPath"] for c in ACTION_TESTS["discoveryTests"] + ACTION_TESTS["actionTests"]}
    used |= {ACTIONS / c["expectedOutputPath"] for c in ACTION_TESTS["actionTests"]}
    files = set(CUSTOMIZATION.glob("testdata/*.yaml")) | set(ACTIONS.glob("testdata/*.yaml"))
    assert files == used, f"unused: {sorted(files - used)}, missing: {sorted(used - files)}"
    for path in sorted(files):
        obj = load(path)
        assert (obj["apiVersion"], obj["kind"]) == ("rotation.sre.dev/v1alpha1", "SecretRotation"), path
        status = obj.get("status") or {}
        assert not undeclared(status, STATUS_SCHEMA), f"{path.name}: {undeclared(status, STATUS_SCHEMA)}"
        reasons = {c["reason"] for c in status.get("conditions") or []}
        assert reasons <= KNOWN_REASONS, f"{path.name}: reasons outside the documented set: {reasons - KNOWN_REASONS}"


# Comments, then strings: what is left is code.
COMMENT_OR_STRING = re.compile(
    r"--\[(=*)\[.*?\]\1\]|--[^\n]*|\[(=*)\[.*?\]\2\]|\"(?:\\.|[^\"\\\n])*\"|'(?:\\.|[^'\\\n])*'", re.DOTALL
)


def code_of(script: Path) -> str:
    return COMMENT_OR_STRING.sub(lambda m: "" if m.group().startswith("--") else '""', script.read_text())


@pytest.mark.parametrize("script", SCRIPTS, ids=[str(s.relative_to(CUSTOMIZATION)) for s in SCRIPTS])
def test_each_script_is_lua_5_1_with_only_what_argo_cd_opens(lua: str, script: Path) -> None:
    # luac5.1 refuses what Lua 5.1 cannot parse: goto, //, bitwise operators, integer literals of 5.3.
    compiled = subprocess.run(["luac5.1", "-p", str(script)], capture_output=True, text=True, check=False)
    assert compiled.returncode == 0, compiled.stderr
    code = code_of(script)
    for library in ("string", "math", "io", "debug", "coroutine", "utf8", "bit32"):
        assert not re.search(rf"\b{library}\s*[.\[]", code), f"{script.name} uses {library}, closed in Argo CD"
    assert not re.search(r"\btable\.(unpack|pack|move)\b", code), f"{script.name} uses a table function of Lua 5.2+"
    assert not re.search(r"\b(goto|load|setfenv|getfenv)\b", code), f"{script.name}: not portable to gopher-lua"
    assert set(re.findall(r"\bos\.(\w+)", code)) <= {"date", "time"}, f"{script.name}: Argo CD's os has date, time"
    for fmt in re.findall(r"os\.date\(\s*\"([^\"]*)\"", script.read_text()):
        assert set(re.findall(r"%(.)", fmt)) <= ARGO_DATE_DIRECTIVES, f"{fmt!r}: a directive Argo CD's os.date lacks"


@pytest.mark.parametrize(
    "body",
    [
        'return {status = ("Healthy"):lower()}',
        "return {status = string.upper('healthy')}",
        "return {status = math.floor(1)}",
        "return {status = io.read()}",
    ],
)
def test_the_sandbox_refuses_what_argo_cd_does_not_open(lua: str, tmp_path: Path, body: str) -> None:
    script = tmp_path / "health.lua"
    script.write_text(body + "\n")
    with pytest.raises(AssertionError, match=r"failed under lua5\.1"):
        run(lua, script, {})


def test_the_argocd_cm_patch_carries_each_script_byte_for_byte() -> None:
    data = load(CUSTOMIZATION.parents[1] / "argocd-cm-patch.yaml")["data"]
    assert (
        data["resource.customizations.health.rotation.sre.dev_SecretRotation"]
        == (CUSTOMIZATION / "health.lua").read_text()
    )
    actions = yaml.safe_load(data["resource.customizations.actions.rotation.sre.dev_SecretRotation"])
    assert actions["discovery.lua"] == (ACTIONS / "discovery.lua").read_text()
    definitions = {d["name"]: d["action.lua"] for d in actions["definitions"]}
    assert definitions == {p.parent.name: p.read_text() for p in ACTIONS.glob("*/action.lua")}
