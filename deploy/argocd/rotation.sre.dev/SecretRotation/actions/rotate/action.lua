-- Request a rotation: a requested-at value the operator has not handled yet starts one
-- (the same annotation as `kubectl annotate ... rotation.sre.dev/requested-at=...`).
-- Argo CD's os.date knows %Y %m %d %H %M %S but not %T; "!" is UTC.
local os = require("os")
if obj.metadata.annotations == nil then
  obj.metadata.annotations = {}
end
obj.metadata.annotations["rotation.sre.dev/requested-at"] = os.date("!%Y-%m-%dT%H:%M:%SZ")
return obj
