-- Argo CD health of a rehearsal.dev Scenario, read from the operator's validation: its
-- observedGeneration and its Valid condition. Rules, first match wins: being deleted, or
-- generation not yet observed -> Progressing; Valid=True -> Healthy ("N steps, expected duration
-- D"); Valid=False -> Degraded with the first problem; otherwise Progressing. Plain Lua 5.1 with
-- only the base library (no string library), so it runs from argocd-cm without useOpenLibs. Every
-- field is type-checked: a missing or malformed status never raises an error. Copied verbatim
-- into ../../../argocd-cm-patch.yaml (a test checks it).

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

local hs = {}
local metadata = field(obj, "metadata")
local status = field(obj, "status")

if field(metadata, "deletionTimestamp") ~= nil then
  hs.status = "Progressing"
  hs.message = "being deleted"
  return hs
end

local generation = field(metadata, "generation")
local observed = field(status, "observedGeneration")
if type(observed) ~= "number" or (type(generation) == "number" and observed < generation) then
  hs.status = "Progressing"
  if type(generation) == "number" then
    hs.message = "waiting for the operator to validate generation " .. generation
  else
    hs.message = "waiting for the operator to validate this Scenario"
  end
  return hs
end

local valid = condition(status, "Valid")
local verdict = field(valid, "status")

if verdict == "True" then
  hs.status = "Healthy"
  local steps = field(status, "steps")
  local duration = text(field(status, "expectedDuration"))
  local summary = nil
  if type(steps) == "number" then
    if steps == 1 then
      summary = "1 step"
    else
      summary = steps .. " steps"
    end
  end
  if duration ~= nil then
    if summary ~= nil then
      summary = summary .. ", expected duration " .. duration
    else
      summary = "expected duration " .. duration
    end
  end
  hs.message = summary or text(field(valid, "message")) or "valid"
  return hs
end

if verdict == "False" then
  hs.status = "Degraded"
  hs.message = text(field(valid, "message")) or text(field(valid, "reason")) or "invalid"
  return hs
end

hs.status = "Progressing"
hs.message = "waiting for the operator to validate this Scenario"
return hs
