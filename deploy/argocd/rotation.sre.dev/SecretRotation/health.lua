-- Argo CD health of a SecretRotation (rotation.sre.dev/v1alpha1).
-- Its status follows kstatus: Ready always, Reconciling True while a rotation is in flight,
-- Stalled True when a human must act, GarbageCollected False while a deletion is blocked,
-- each with observedGeneration; spec.paused makes Ready's reason Paused.
-- Lua 5.1 with only the base and table libraries: Argo CD opens no others for a script
-- from argocd-cm unless resource.customizations.useOpenLibs is set.

local function condition(conditions, kind)
  for _, c in ipairs(conditions) do
    if c.type == kind then
      return c
    end
  end
  return nil
end

local function text(value)
  if value == nil or value == "" then
    return nil
  end
  return value
end

local status = obj.status
if status == nil or status.conditions == nil or condition(status.conditions, "Ready") == nil then
  return {status = "Progressing", message = "Waiting for the operator to report status"}
end
local conditions = status.conditions

-- Stalled first: the operator has stopped and a human must act. Nothing it does next can
-- clear it without that human, so no other reading may hide it: not a spec edit it has not
-- seen yet (an operator that is down sees none, and "Progressing" would then be a lie),
-- and not a pause (a paused rotation whose last attempt failed still needs its human).
local stalled = condition(conditions, "Stalled")
if stalled ~= nil and stalled.status == "True" then
  local message = text(stalled.message) or "stalled"
  if text(stalled.reason) ~= nil then
    message = stalled.reason .. ": " .. message
  end
  return {status = "Degraded", message = message}
end

-- A status older than the spec says nothing about the spec Argo CD just applied.
local generation = obj.metadata.generation
local observed = status.observedGeneration
if generation ~= nil and (observed == nil or observed < generation) then
  return {
    status = "Progressing",
    message = "Waiting for the operator to observe generation " .. generation,
  }
end

local reconciling = condition(conditions, "Reconciling")
if reconciling ~= nil and reconciling.status == "True" then
  return {status = "Progressing", message = text(reconciling.message) or "rotation in progress"}
end

local ready = condition(conditions, "Ready")
if ready.reason == "Paused" then
  return {status = "Suspended", message = text(ready.message) or "paused"}
end

if ready.status == "True" then
  local message = text(ready.message) or "ready"
  -- A blocked collection is the reference guard at work, not a fault of the version in use.
  local collected = condition(conditions, "GarbageCollected")
  if collected ~= nil and collected.status == "False" then
    message = message .. "; collection blocked: " .. (text(collected.message) or "an old version is still referenced")
  end
  return {status = "Healthy", message = message}
end

-- Not Ready, not stalled, nothing in flight: the first rotation has not started yet.
return {status = "Progressing", message = text(ready.message) or "not ready"}
