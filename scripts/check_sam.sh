#!/usr/bin/env bash
# Offline checks of the SAM template (issue 4), run from the repository root:
#   1. cfn-lint infra/sam/template.yaml                         (pinned, in the SAM venv)
#   2. sam validate --lint --template infra/sam/template.yaml   (pinned; no credentials, no network)
#   3. checkov -f infra/sam/template.yaml --framework cloudformation: zero failed checks; every skip is
#      in the resource's Metadata.checkov.skip with a non-empty comment (checked here too)
#   4. infra/tests/sam_on_moto.py: the template translated to CloudFormation with the pinned
#      aws-sam-translator (SAM venv), deployed into moto's CloudFormation (moto_server on a free
#      loopback port, system python3 with boto3 and moto[server]==5.2.5), and the resources asserted.
# The venvs live under /var/tmp/kubecur-venvs (override: KUBECUR_VENVS), are created on demand and are
# left alone when the pinned versions are already installed. The checkov venv and its version are
# shared with scripts/check_terraform.sh.
set -euo pipefail

SAM_CLI_VERSION="1.170.0"
CFN_LINT_VERSION="1.58.0"
CHECKOV_VERSION="3.3.30"
MOTO_VERSION="5.2.5"
TEMPLATE="infra/sam/template.yaml"

cd "$(dirname "${BASH_SOURCE[0]}")/.."
# shellcheck source=scripts/lib/venv.sh
source scripts/lib/venv.sh
SAM_VENV="$VENV_ROOT/sam"
CHECKOV_VENV="$VENV_ROOT/checkov"

ensure_venv "$SAM_VENV" "aws-sam-cli==$SAM_CLI_VERSION" "cfn-lint==$CFN_LINT_VERSION"
ensure_venv "$CHECKOV_VENV" "checkov==$CHECKOV_VERSION"
translator="$(pinned_version "$SAM_VENV" aws-sam-translator)"

# The deploy step runs in the system python3 (boto3 + moto[server], installed by .ci/run).
if ! python3 -c "import boto3, moto, sys; sys.exit(moto.__version__ != '$MOTO_VERSION')" 2>/dev/null; then
  echo "FAIL: python3 needs boto3 and moto[server]==$MOTO_VERSION (.ci/run installs them:" \
    "python3 -m pip install 'moto[server]==$MOTO_VERSION')" >&2
  exit 1
fi

echo "== cfn-lint $CFN_LINT_VERSION $TEMPLATE"
"$SAM_VENV/bin/cfn-lint" "$TEMPLATE"
echo "ok: cfn-lint found nothing"

echo "== sam validate --lint (SAM CLI $SAM_CLI_VERSION, offline)"
# No credentials are needed for --lint; a region is. Telemetry off: the machine has no network.
AWS_DEFAULT_REGION=us-east-1 SAM_CLI_TELEMETRY=0 "$SAM_VENV/bin/sam" validate --lint --template "$TEMPLATE"

echo "== every checkov skip in $TEMPLATE carries a reason (Metadata.checkov.skip[].comment)"
"$SAM_VENV/bin/python" - "$TEMPLATE" <<'EOF'
import sys
from samcli.yamlhelper import yaml_parse

template = yaml_parse(open(sys.argv[1], encoding="utf-8").read())
skips, bad = [], []
for logical_id, resource in template["Resources"].items():
    for skip in ((resource.get("Metadata") or {}).get("checkov") or {}).get("skip") or []:
        skips.append((logical_id, skip.get("id")))
        if not str(skip.get("id", "")).startswith("CKV") or len(str(skip.get("comment") or "").strip()) < 20:
            bad.append((logical_id, skip))
if bad:
    sys.exit(f"FAIL: checkov skips without a reason: {bad}")
print(f"ok: {len(skips)} skips, each with a reason:")
for check in sorted({c for _, c in skips}):
    print(f"  {check}: " + ", ".join(l for l, c in skips if c == check))
EOF

echo "== checkov $("$CHECKOV_VENV/bin/checkov" --version) -f $TEMPLATE --framework cloudformation --compact --skip-download"
# AWS::Serverless::* resources are scanned by checkov's cloudformation framework (its "serverless"
# framework is for the Serverless Framework's serverless.yml, not SAM). --skip-download: no Prisma
# Cloud guideline download (no network). checkov exits non-zero when a check fails.
report="$(mktemp)"
work="$(mktemp -d)"
trap 'rm -rf "$report" "$work"' EXIT
status=0
"$CHECKOV_VENV/bin/checkov" -f "$TEMPLATE" --framework cloudformation --compact --skip-download >"$report" 2>&1 || status=$?
grep -E 'Passed checks|FAILED|SKIPPED|Check: ' "$report" | grep -B1 -E 'FAILED' || true
summary="$(grep -E 'Passed checks: [0-9]+, Failed checks: [0-9]+' "$report" | head -1 || true)"
if [[ $status -ne 0 || -z "$summary" ]] || ! grep -qE 'Failed checks: 0,' <<<"$summary"; then
  cat "$report" >&2
  echo "FAIL: checkov (exit $status): ${summary:-no summary}" >&2
  exit 1
fi
echo "ok: checkov $summary"

echo "== SAM template on moto (aws-sam-translator $translator, moto $MOTO_VERSION)"
"$SAM_VENV/bin/python" infra/tests/sam_on_moto.py translate "$work/template.json"
python3 infra/tests/sam_on_moto.py deploy "$work/template.json"
