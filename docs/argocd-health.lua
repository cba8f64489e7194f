-- Argo CD health check for Herald's kinds (herald.dev: Tenant, ChannelBinding,
-- Subprocessor, RetentionPolicy, BreachNotice, DataSubjectRequest). Install it as
-- described in docs/argocd.md.
--
-- Herald's status follows kstatus: `observedGeneration`, and the conditions `Ready`
-- (the summary), `Reconciling` (converging by itself) and `Stalled` (a person must act),
-- plus `Paused` while the herald.dev/paused annotation is set. Kinds the operator does
-- not reconcile (RetentionPolicy: admission alone judges it) have no status: Healthy.
-- It uses only what Argo CD opens for health scripts (base, table, package and a safe
-- os): no string library.
local hs = {}

local function condition(t)
  if obj.status == nil or obj.status.conditions == nil then
    return nil
  end
  for _, c in ipairs(obj.status.conditions) do
    if c.type == t then
      return c
    end
  end
  return nil
end

if obj.kind == "RetentionPolicy" then
  hs.status = "Healthy"
  hs.message = "Validated at admission"
  return hs
end

if obj.status == nil then
  hs.status = "Progressing"
  hs.message = "Waiting for the Herald operator to reconcile"
  return hs
end

-- Paused first: Herald writes observedGeneration while paused, but a pause is what a
-- person asked for whatever the spec says (a tenant paused before it was ever built
-- included: its message says so).
local paused = condition("Paused")
if paused ~= nil and paused.status == "True" then
  hs.status = "Suspended"
  hs.message = paused.message or "Paused (herald.dev/paused)"
  return hs
end

-- A status written for an older spec says nothing about the current one.
if obj.metadata.generation ~= nil and
   (obj.status.observedGeneration == nil or obj.status.observedGeneration < obj.metadata.generation) then
  hs.status = "Progressing"
  hs.message = "Waiting for the operator to observe generation " .. obj.metadata.generation
  return hs
end

local stalled = condition("Stalled")
if stalled ~= nil and stalled.status == "True" then
  hs.status = "Degraded"
  hs.message = (stalled.reason or "Stalled") .. ": " .. (stalled.message or "")
  return hs
end

local ready = condition("Ready")
-- Chosen quiet states that resume when a person says so: a suspended contract, a
-- binding with spec.suspend. Ready (nothing is wrong), and Argo CD's word for it.
if ready ~= nil and ready.status == "True" and
   (ready.reason == "ContractSuspended" or ready.reason == "Suspended") then
  hs.status = "Suspended"
  hs.message = ready.message or "Suspended"
  return hs
end
if ready ~= nil and ready.status == "True" then
  hs.status = "Healthy"
  hs.message = ready.message or "Ready"
  return hs
end

local reconciling = condition("Reconciling")
if reconciling ~= nil and reconciling.status == "True" then
  hs.status = "Progressing"
  hs.message = (reconciling.reason or "Progressing") .. ": " .. (reconciling.message or "")
  return hs
end

if ready ~= nil and ready.status == "False" then
  hs.status = "Degraded"
  hs.message = (ready.reason or "NotReady") .. ": " .. (ready.message or "")
  return hs
end

hs.status = "Progressing"
hs.message = "Waiting for the Ready condition"
return hs
