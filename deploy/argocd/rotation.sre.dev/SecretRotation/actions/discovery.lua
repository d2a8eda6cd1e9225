-- Argo CD actions of a SecretRotation: "rotate" requests a rotation now.
-- Disabled while spec.paused holds every rotation (the request would wait, unseen, until someone
-- resumes it), and while Reconciling is True (a rotation is in flight or a request already waits:
-- another would roll every target again as soon as this one ends).
local paused = obj.spec ~= nil and obj.spec.paused == true
local busy = false
if obj.status ~= nil and obj.status.conditions ~= nil then
  for _, c in ipairs(obj.status.conditions) do
    if c.type == "Reconciling" and c.status == "True" then
      busy = true
    end
  end
end

local actions = {}
actions["rotate"] = {
  ["disabled"] = paused or busy,
  ["displayName"] = "Rotate now",
  ["iconClass"] = "fa fa-fw fa-redo",
}
return actions
