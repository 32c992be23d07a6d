-- Argo CD health of a rehearsal.dev Simulation, read from the operator's status: its
-- observedGeneration and its Ready, Reconciling and Stalled conditions (driver stage conditions
-- are ignored). Rules, first match wins: being deleted, or generation not yet observed ->
-- Progressing; Stalled=True -> Degraded; Ready=True -> Healthy; suspended -> Suspended;
-- otherwise Progressing. Plain Lua 5.1 with only the base library (no string library), so it runs
-- from argocd-cm without useOpenLibs. Every field is type-checked: a missing or malformed status
-- never raises an error. Copied verbatim into ../../../argocd-cm-patch.yaml (a test checks it).

local function field(t, key)
  if type(t) == "table" then
    return t[key]
  end
  return nil
end

local function text(v)
  if type(v) == "string" and v ~= "" then
    return v
  end
  return nil
end

local function condition(status, ctype)
  local list = field(status, "conditions")
  if type(list) ~= "table" then
    return nil
  end
  for _, c in ipairs(list) do
    if type(c) == "table" and c.type == ctype then
      return c
    end
  end
  return nil
end

local function isTrue(c)
  return field(c, "status") == "True"
end

local hs = {}
local metadata = field(obj, "metadata")
local spec = field(obj, "spec")
local status = field(obj, "status")

if field(metadata, "deletionTimestamp") ~= nil then
  hs.status = "Progressing"
  hs.message = "being deleted"
  return hs
end

if type(status) ~= "table" then
  hs.status = "Progressing"
  hs.message = "waiting for the operator to report status"
  return hs
end

local generation = field(metadata, "generation")
local observed = field(status, "observedGeneration")
if type(observed) ~= "number" then
  hs.status = "Progressing"
  if type(generation) == "number" then
    hs.message = "waiting for the operator to observe generation " .. generation
  else
    hs.message = "waiting for the operator to observe this Simulation"
  end
  return hs
end
if type(generation) == "number" and observed < generation then
  hs.status = "Progressing"
  hs.message = "waiting for the operator to observe generation " .. generation ..
    " (status describes generation " .. observed .. ")"
  return hs
end

local ready = condition(status, "Ready")
local reconciling = condition(status, "Reconciling")
local stalled = condition(status, "Stalled")

if isTrue(stalled) then
  hs.status = "Degraded"
  hs.message = text(field(stalled, "message")) or text(field(stalled, "reason")) or "stalled"
  return hs
end

if isTrue(ready) then
  hs.status = "Healthy"
  local runs = text(field(status, "runsSummary"))
  if runs ~= nil then
    hs.message = runs .. " runs succeeded"
  else
    hs.message = text(field(ready, "message")) or "all runs succeeded"
  end
  return hs
end

local suspendedByOperator = field(reconciling, "status") == "False" and field(reconciling, "reason") == "Suspended"
if suspendedByOperator or field(spec, "suspend") == true then
  hs.status = "Suspended"
  hs.message = text(field(reconciling, "message")) or "spec.suspend is true: no further run starts"
  return hs
end

local phase = text(field(status, "phase"))
hs.status = "Progressing"
if phase == "Queued" then
  hs.message = text(field(reconciling, "message")) or "queued behind another Simulation"
elseif isTrue(reconciling) and text(field(reconciling, "message")) ~= nil then
  hs.message = field(reconciling, "message")
elseif phase ~= nil then
  hs.message = "phase " .. phase
else
  hs.message = "waiting for the operator"
end
return hs
