#!/usr/bin/env bash
# A short guided tour of Herald, after `make demo`: copy each command into a shell in the
# repository root, after `eval "$(e2e/cluster/cluster.sh env)"` (with the same
# HERALD_CLUSTER_DIR and HERALD_PORT_BASE as `make demo`, if you set them).
# tests/e2e/tour.rs runs exactly these commands, one line each, against the e2e cluster
# (with a tenant of its own in place of acme-retail) and checks what each step says.
set -euo pipefail

# 1. Rotate a credential. acme-retail's SMS credential is minted by the provider's API
#    (the fake one `make demo` runs on 127.0.0.1). Ask for a new version: the senders
#    roll onto v2, and v1 is revoked at the provider once no pod uses it and the
#    binding's overlap (15 minutes) has passed.
kubectl -n herald-system annotate cb acme-retail-sms herald.dev/rotate-requested-at="$(date -u +%FT%TZ)" --overwrite
kubectl -n herald-system wait cb/acme-retail-sms --for=jsonpath='{.status.credentialSecret}'=herald-cred-sms-v2 --timeout=90s
kubectl -n tenant-acme-retail get secrets -l herald.dev/channel=sms

# 2. Object to a sub-processor. acme-retail objects to Parcelmail (email delivered from
#    the US): its email channel stops reaching the senders, and the binding says why.
kubectl patch tenants.herald.dev acme-retail --type=merge -p '{"spec":{"subprocessorObjections":[{"name":"parcelmail-email","reason":"No email delivery from outside the EEA."}]}}'
kubectl -n herald-system wait cb/acme-retail-email --for=jsonpath='{.status.conditions[?(@.type=="SubprocessorEffective")].reason}'=Objected --timeout=90s

# 3. Terminate a tenant, here one whose contract ended 27 days ago: its senders go to 0,
#    its credentials are revoked at the provider, and since its erasure deadline (30
#    days after the end) is within the safety margin (3 days), erasure starts at once and
#    ends with a signed deletion receipt. (Delivering the receipt to the customer's
#    webhook keeps failing in the demo, as for nordlicht-travel: the examples' hosts are
#    fictional. ErasureStepFailing says so, and erasure does not wait for it.)
kubectl patch tenants.herald.dev acme-retail --type=merge -p '{"spec":{"contract":{"state":"Terminated","terminatedAt":"'"$(date -u -d '27 days ago' +%FT%TZ)"'"}}}'
kubectl wait tenants.herald.dev/acme-retail --for=jsonpath='{.status.phase}'=Erased --timeout=180s
kubectl get tenants.herald.dev acme-retail -o jsonpath='{.status.deletionDeadline}{"  "}{.status.conditions[?(@.type=="Erased")].message}{"\n"}'

# 4. Verify its deletion receipt offline, against the platform's published keys (what an
#    auditor keeps): exit 0 and a summary when it verifies, exit 1 and why when not.
kubectl -n herald-system get cm herald-receipt-public-keys -o yaml > target/tour-keys.yaml
kubectl -n herald-system get "$(kubectl -n herald-system get cm -l herald.dev/receipt-for=acme-retail -o name)" -o yaml > target/tour-receipt-acme-retail.yaml
target/debug/herald receipt verify target/tour-receipt-acme-retail.yaml --public-key target/tour-keys.yaml
