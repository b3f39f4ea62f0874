-- Argo CD health check for tasks.asynctask.dev/AsyncTask.
--
-- It reads the kstatus conditions the operator writes (see docs/gitops.md):
--   Ready=True                                  -> Healthy     (the task succeeded)
--   Stalled=True (TaskFailed, DeadlineExceeded,
--     TaskNotFound or ProgressDeadlineExceeded) -> Degraded    (failed, or no progress for progressDeadlineSeconds)
--   anything else                               -> Progressing (pending, running, backend failing, not yet observed)
-- A status that describes an older generation (status.observedGeneration defaults to -1 on a new object) is
-- always Progressing, so a task nobody has looked at yet never reads as finished.
-- Only the base and table libraries are used, as Argo CD's sandbox provides.
local hs = { status = "Progressing", message = "Waiting for the operator to observe the task" }

if obj.status == nil or obj.status.observedGeneration == nil then
  return hs
end
local generation = 0
if obj.metadata ~= nil and obj.metadata.generation ~= nil then
  generation = obj.metadata.generation
end
if obj.status.observedGeneration ~= generation then
  return hs
end

local ready, stalled
if obj.status.conditions ~= nil then
  for _, c in ipairs(obj.status.conditions) do
    if c.type == "Ready" then
      ready = c
    elseif c.type == "Stalled" then
      stalled = c
    end
  end
end

if ready ~= nil and ready.message ~= nil and ready.message ~= "" then
  hs.message = ready.message
elseif obj.status.message ~= nil and obj.status.message ~= "" then
  hs.message = obj.status.message
else
  hs.message = ""
end

if ready ~= nil and ready.status == "True" then
  hs.status = "Healthy"
elseif stalled ~= nil and stalled.status == "True" then
  hs.status = "Degraded"
  if stalled.reason == "ProgressDeadlineExceeded" then
    -- The Ready message still describes the running task; say why it is Degraded.
    hs.message = stalled.message
  end
elseif obj.status.phase == "Succeeded" then
  hs.status = "Healthy"
elseif obj.status.phase == "Failed" then
  hs.status = "Degraded"
end
return hs
