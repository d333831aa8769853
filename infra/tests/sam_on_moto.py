#!/usr/bin/env python3
"""Deploys infra/sam/template.yaml into moto's CloudFormation and checks what it created.

Two steps, two Pythons (scripts/check_sam.sh runs both):

1. ``translate`` runs in the pinned SAM venv (it imports ``samtranslator``): the SAM template becomes plain
   CloudFormation JSON, offline (a managed-policy loader that answers from a local map, no IAM call; the
   template uses its own roles, so the map stays empty and any managed-policy lookup fails loudly).
2. ``deploy`` runs in a Python with boto3 and moto[server] (the system python3): it starts
   ``moto_server`` on a free loopback port, uploads a dummy function zip, creates the stack and asserts
   the deployed resources.

moto's CloudFormation does not implement every resource type (and deploys a few, e.g. AWS::KMS::Key, only
in part: what a deployed resource cannot show is checked statically, and the comment there says why). Such resources are stripped from the
template before the deploy and listed on the output as NOT deployed; their references are replaced by
the value real CloudFormation's Ref would give (e.g. a workgroup's name) so the rest still deploys, and
their properties are only checked statically in the translated template (reported as "static").

Usage (from the repository root):
  <sam venv>/bin/python infra/tests/sam_on_moto.py translate OUT.json
  python3 infra/tests/sam_on_moto.py deploy OUT.json
"""

from __future__ import annotations

import ast
import copy
import io
import json
import os
import shutil
import socket
import subprocess
import sys
import time
import zipfile

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
TEMPLATE = os.path.join(REPO, "infra", "sam", "template.yaml")

REGION = "us-east-1"
ACCOUNT = "123456789012"  # moto's default account
ARTIFACT_BUCKET = "kubecur-test-artifacts"
PARAMS = {
    "NamePrefix": "kubecurtest",
    "CurBucketName": "kubecur-test-cur",
    "CurPrefix": "cur/kubecur-export/",
    "GlueDatabase": "cur_db",
    "GlueTable": "kubecur_export",
    "Architecture": "x86_64",
    "TagKeys": "namespace=team,squad",
    "Labels": "team,CostCenter",
    # Both the ingest (it keys the resource ids the rules select) and the API (it applies them) read it.
    "ShareRules": '{"rules": [{"name": "shared db", "select": {"resource": "db-shared"}}]}',
    # The billing side too (us-east-1, where the export can be created): the stack makes the CUR bucket,
    # its policy, the Glue database and table, and the CUR 2.0 export.
    "CreateDataExport": "true",
    "CreateGlueDatabase": "true",
    "CreateGlueTable": "true",
}
FUNCTIONS = {
    # logical id: (binary, memory, timeout, environment variable names)
    "CurIngestFunction": (
        "cur-ingest",
        512,
        300,
        {
            "KUBECUR_TABLE",
            "KUBECUR_ATHENA_WORKGROUP",
            "KUBECUR_ATHENA_DATABASE",
            "KUBECUR_ATHENA_TABLE",
            "KUBECUR_TAG_KEYS",
            "KUBECUR_LABELS",
            "KUBECUR_SHARE_RULES",
            "KUBECUR_LOG",
        },
    ),
    "AllocationWriterFunction": (
        "allocation-writer",
        1024,
        900,
        {"KUBECUR_TABLE", "KUBECUR_ATHENA_WORKGROUP", "KUBECUR_LOG"},
    ),
    "AllocationApiFunction": ("allocation-api", 256, 29, {"KUBECUR_TABLE", "KUBECUR_LOG", "KUBECUR_API_MAX_WINDOW_DAYS", "KUBECUR_API_MAX_STEPS", "KUBECUR_API_MAX_GROUPS", "KUBECUR_SHARE_RULES", "KUBECUR_LABELS"}),
}


# ----------------------------------------------------------------------------- step 1: translate
def translate(out_path: str) -> None:
    # The translator reads the region from boto's default session; no credentials are needed.
    os.environ["AWS_DEFAULT_REGION"] = REGION
    from samcli.yamlhelper import yaml_parse  # noqa: PLC0415 (only in the SAM venv)
    from samtranslator.translator.transform import transform  # noqa: PLC0415

    class OfflineManagedPolicyLoader:
        """Answers managed-policy lookups without calling IAM: kubecur attaches none."""

        def load(self) -> dict[str, str]:
            return {}

    with open(TEMPLATE, encoding="utf-8") as f:
        sam = yaml_parse(f.read())

    # The template points CodeUri at the cargo-lambda zips; `sam deploy` uploads them. Check the paths,
    # then point the functions at the dummy zip the deploy step uploads to moto's S3.
    for logical_id, (binary, *_rest) in FUNCTIONS.items():
        props = sam["Resources"][logical_id]["Properties"]
        expected = f"../../target/lambda/{binary}/bootstrap.zip"
        if props["CodeUri"] != expected:
            raise SystemExit(f"{logical_id}.CodeUri is {props['CodeUri']!r}, expected {expected!r}")
        props["CodeUri"] = {"Bucket": ARTIFACT_BUCKET, "Key": f"{binary}/bootstrap.zip"}

    parameter_values = dict(PARAMS)
    parameter_values.update(
        {"AWS::Region": REGION, "AWS::AccountId": ACCOUNT, "AWS::Partition": "aws"}
    )
    cfn = transform(sam, parameter_values, OfflineManagedPolicyLoader())
    with open(out_path, "w", encoding="utf-8") as f:
        json.dump(cfn, f, indent=1, sort_keys=True)
    types: dict[str, int] = {}
    for res in cfn["Resources"].values():
        types[res["Type"]] = types.get(res["Type"], 0) + 1
    print(f"translated {len(cfn['Resources'])} resources: " + ", ".join(f"{t} x{n}" for t, n in sorted(types.items())))


# ----------------------------------------------------------------------------- step 2: deploy
class Checks:
    def __init__(self) -> None:
        self.passed = 0
        self.failed = 0

    def check(self, what: str, ok: bool, detail: object = "") -> None:
        if ok:
            self.passed += 1
            print(f"  ok    {what}")
        else:
            self.failed += 1
            print(f"  FAIL  {what}: {detail}")

    def equal(self, what: str, actual: object, expected: object) -> None:
        self.check(what, actual == expected, f"got {actual!r}, expected {expected!r}")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def replace_refs(node: object, replacements: dict[str, object]) -> object:
    """Replaces Ref / GetAtt / ${...} of stripped resources by what real CloudFormation would give."""
    if isinstance(node, dict):
        if set(node) == {"Ref"} and node["Ref"] in replacements:
            return copy.deepcopy(replacements[node["Ref"]])
        if set(node) == {"Fn::GetAtt"}:
            target = node["Fn::GetAtt"][0] if isinstance(node["Fn::GetAtt"], list) else node["Fn::GetAtt"].split(".")[0]
            if target in replacements:
                raise SystemExit(f"GetAtt of stripped resource {target} has no stand-in: {node}")
        if set(node) == {"Fn::Sub"}:
            sub = node["Fn::Sub"]
            text, variables = (sub, {}) if isinstance(sub, str) else (sub[0], dict(sub[1]))
            for name, value in replacements.items():
                if "${" + name + "}" in text:
                    variables[name] = copy.deepcopy(value)
                if "${" + name + "." in text:
                    raise SystemExit(f"Sub of an attribute of stripped resource {name} has no stand-in: {text}")
            return {"Fn::Sub": [text, variables] if variables else text}
        return {k: replace_refs(v, replacements) for k, v in node.items()}
    if isinstance(node, list):
        return [replace_refs(v, replacements) for v in node]
    return node


def strip_unsupported(cfn: dict, supported: set[str]) -> tuple[dict, list[tuple[str, str]]]:
    cfn = copy.deepcopy(cfn)
    stripped = [(lid, r["Type"]) for lid, r in cfn["Resources"].items() if r["Type"] not in supported]
    # What Ref returns in real CloudFormation for the stripped resources that others reference.
    stand_ins = {
        "AthenaWorkGroup": cfn["Resources"]["AthenaWorkGroup"]["Properties"]["Name"],  # Ref = workgroup name
        "HttpApi": "stubapiid",  # Ref = API id, generated by API Gateway
    }
    replacements: dict[str, object] = {}
    for logical_id, _type in stripped:
        del cfn["Resources"][logical_id]
        replacements[logical_id] = stand_ins.get(logical_id, f"STRIPPED-{logical_id}")
    cfn["Resources"] = replace_refs(cfn["Resources"], replacements)
    for name, output in list(cfn.get("Outputs", {}).items()):
        text = json.dumps(output)
        if any(f'"{lid}"' in text or "${" + lid in text for lid in replacements):
            del cfn["Outputs"][name]
    # Nothing left may point at a stripped resource.
    leftover = json.dumps(cfn["Resources"])
    for logical_id in replacements:
        for pattern in (f'"Ref": "{logical_id}"', f'"DependsOn": "{logical_id}"', f'"{logical_id}.'):
            if pattern in leftover:
                raise SystemExit(f"a deployed resource still references stripped {logical_id}")
        for res in cfn["Resources"].values():
            deps = res.get("DependsOn", [])
            if logical_id in (deps if isinstance(deps, list) else [deps]):
                raise SystemExit(f"a deployed resource depends on stripped {logical_id}")
    return cfn, stripped


def dummy_zip() -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        info = zipfile.ZipInfo("bootstrap")
        info.external_attr = 0o755 << 16
        z.writestr(info, "#!/bin/sh\necho dummy\n")
    return buf.getvalue()


def policy_statements(iam, role_name: str) -> dict[str, dict]:
    names = iam.list_role_policies(RoleName=role_name)["PolicyNames"]
    statements: dict[str, dict] = {}
    for name in names:
        doc = iam.get_role_policy(RoleName=role_name, PolicyName=name)["PolicyDocument"]
        if isinstance(doc, str):
            # moto keeps a CloudFormation inline policy as the Python repr of the dict, not JSON.
            try:
                doc = json.loads(doc)
            except json.JSONDecodeError:
                doc = ast.literal_eval(doc)
        for st in doc["Statement"]:
            statements[st["Sid"]] = st
    return statements


def as_list(v: object) -> list:
    return v if isinstance(v, list) else [v]


def check_private_bucket(c: Checks, s3, name: str, bucket_props: dict, label: str) -> dict:
    """A kubecur-made bucket: SSE-S3 (deployed), public access blocked, versioned, owner enforced
    (static: moto ignores those properties). Returns the bucket's template properties."""
    enc = s3.get_bucket_encryption(Bucket=name)["ServerSideEncryptionConfiguration"]["Rules"][0]
    c.equal(f"{label}SSE algorithm", enc["ApplyServerSideEncryptionByDefault"]["SSEAlgorithm"], "AES256")
    c.equal(f"static (moto ignores it): {label}public access fully blocked", bucket_props.get("PublicAccessBlockConfiguration"), {k: True for k in ("BlockPublicAcls", "BlockPublicPolicy", "IgnorePublicAcls", "RestrictPublicBuckets")})
    c.equal(f"static (moto ignores it): {label}versioning", bucket_props.get("VersioningConfiguration"), {"Status": "Enabled"})
    c.equal(f"static (moto ignores it): {label}bucket owner enforced", bucket_props.get("OwnershipControls"), {"Rules": [{"ObjectOwnership": "BucketOwnerEnforced"}]})
    return bucket_props


def deploy(cfn_path: str) -> int:
    import boto3  # noqa: PLC0415
    from moto.cloudformation.parsing import get_model_map  # noqa: PLC0415

    with open(cfn_path, encoding="utf-8") as f:
        cfn = json.load(f)
    supported = set(get_model_map())
    deployable, stripped = strip_unsupported(cfn, supported)

    c = Checks()
    print("moto's CloudFormation does not implement these types; stripped before the deploy, NOT deployed:")
    for logical_id, rtype in sorted(stripped, key=lambda x: (x[1], x[0])):
        print(f"  - {logical_id} ({rtype})")

    port = free_port()
    endpoint = f"http://127.0.0.1:{port}"
    log = open(os.path.join(os.path.dirname(os.path.abspath(cfn_path)), "moto_server.log"), "w")
    # moto_server from this Python's moto[server] (its console script, or the module when not on PATH).
    command = [shutil.which("moto_server")] if shutil.which("moto_server") else [sys.executable, "-m", "moto.server"]
    server = subprocess.Popen([*command, "-H", "127.0.0.1", "-p", str(port)], stdout=log, stderr=subprocess.STDOUT)
    try:
        deadline = time.time() + 60
        while True:
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=1):
                    break
            except OSError:
                if time.time() > deadline or server.poll() is not None:
                    raise SystemExit("moto_server did not start")
                time.sleep(0.2)

        session = boto3.session.Session(aws_access_key_id="testing", aws_secret_access_key="testing", region_name=REGION)

        def client(name: str):
            return session.client(name, endpoint_url=endpoint)

        s3, cf, iam = client("s3"), client("cloudformation"), client("iam")
        ddb, lam, events, sqs, logs = client("dynamodb"), client("lambda"), client("events"), client("sqs"), client("logs")
        kms = client("kms")

        s3.create_bucket(Bucket=ARTIFACT_BUCKET)
        if PARAMS.get("CreateDataExport") != "true":
            s3.create_bucket(Bucket=PARAMS["CurBucketName"])
        for binary, *_rest in FUNCTIONS.values():
            s3.put_object(Bucket=ARTIFACT_BUCKET, Key=f"{binary}/bootstrap.zip", Body=dummy_zip())

        stack = "kubecur-sam-test"
        cf.create_stack(
            StackName=stack,
            TemplateBody=json.dumps(deployable),
            Parameters=[{"ParameterKey": k, "ParameterValue": v} for k, v in PARAMS.items()],
            Capabilities=["CAPABILITY_NAMED_IAM"],
        )
        status = ""
        for _ in range(120):
            status = cf.describe_stacks(StackName=stack)["Stacks"][0]["StackStatus"]
            if not status.endswith("IN_PROGRESS"):
                break
            time.sleep(0.5)
        print("stack:")
        c.equal("stack status", status, "CREATE_COMPLETE")
        if status != "CREATE_COMPLETE":
            for ev in cf.describe_stack_events(StackName=stack)["StackEvents"]:
                print("   ", ev.get("LogicalResourceId"), ev.get("ResourceStatus"), ev.get("ResourceStatusReason", ""))
            return 1
        resources = {
            r["LogicalResourceId"]: r["PhysicalResourceId"]
            for r in cf.list_stack_resources(StackName=stack)["StackResourceSummaries"]
        }
        c.equal("deployed logical ids = template minus stripped", set(resources), set(deployable["Resources"]))

        prefix = PARAMS["NamePrefix"]
        workgroup = prefix
        workgroup_arn = f"arn:aws:athena:{REGION}:{ACCOUNT}:workgroup/{workgroup}"

        # --- DynamoDB
        print("dynamodb table:")
        table = ddb.describe_table(TableName=prefix)["Table"]
        table_arn = table["TableArn"]
        c.equal("key schema", sorted((k["AttributeName"], k["KeyType"]) for k in table["KeySchema"]), [("pk", "HASH"), ("sk", "RANGE")])
        c.equal("attribute types", sorted((a["AttributeName"], a["AttributeType"]) for a in table["AttributeDefinitions"]), [("pk", "S"), ("sk", "S")])
        c.equal("billing mode", table.get("BillingModeSummary", {}).get("BillingMode"), "PAY_PER_REQUEST")
        # moto's CloudFormation drops these properties (verified in moto 5.2.5's sources): the deployed
        # table and bucket cannot show them, so they are checked in the translated template and labelled.
        #   moto/dynamodb/models/table.py Table.create_from_cloudformation_json reads no
        #   TimeToLiveSpecification / PointInTimeRecoverySpecification, and reads SSESpecification under
        #   the API's key "Enabled" instead of CloudFormation's "SSEEnabled";
        #   moto/s3/models.py FakeBucket.create_from_cloudformation_json reads only BucketName,
        #   BucketEncryption and Tags.
        c.equal("deletion protection", table.get("DeletionProtectionEnabled"), True)
        table_props = cfn["Resources"]["Table"]["Properties"]
        c.equal("static (moto ignores it): server-side encryption with the kubecur KMS key", table_props.get("SSESpecification"), {"SSEEnabled": True, "SSEType": "KMS", "KMSMasterKeyId": {"Fn::GetAtt": ["KubecurKey", "Arn"]}})
        c.equal("static (moto ignores it): TTL attribute", table_props.get("TimeToLiveSpecification"), {"AttributeName": "expires_at", "Enabled": True})
        c.equal("static (moto ignores it): point-in-time recovery", table_props.get("PointInTimeRecoverySpecification"), {"PointInTimeRecoveryEnabled": True})

        # --- KMS key. moto deploys AWS::KMS::Key and AWS::KMS::Alias, but keeps a CloudFormation key's
        # KeyPolicy as the template's object instead of a JSON string, and its DescribeKey then fails
        # (moto 5.2.5 kms/policy_validator.py json.loads(key.policy) raises TypeError on a dict). So the
        # deployed key is checked through ListKeys / GetKeyRotationStatus / ListAliases (which do not read
        # the policy), and the key policy and key spec statically in the translated template.
        print("kms key:")
        key_id = resources.get("KubecurKey", "")
        key_arn = f"arn:aws:kms:{REGION}:{ACCOUNT}:key/{key_id}"
        c.check("key deployed", key_id in [k["KeyId"] for k in kms.list_keys()["Keys"]], key_id)
        c.equal("key rotation enabled", kms.get_key_rotation_status(KeyId=key_id).get("KeyRotationEnabled") if key_id else None, True)
        aliases = {a["AliasName"]: a.get("TargetKeyId") for a in kms.list_aliases()["Aliases"]}
        c.equal(f"alias/{prefix} points at the key", aliases.get(f"alias/{prefix}"), key_id)
        key_props = cfn["Resources"]["KubecurKey"]["Properties"]
        c.check("static: symmetric encryption key (KeySpec/KeyUsage/MultiRegion/Origin left at their defaults)", not {"KeySpec", "KeyUsage", "MultiRegion", "Origin"} & set(key_props), sorted(key_props))
        c.equal("static: pending window 30 days", key_props.get("PendingWindowInDays"), 30)
        key_statements = {st["Sid"]: st for st in key_props["KeyPolicy"]["Statement"]}
        c.equal("key policy statement ids", set(key_statements), {"AccountAdministersKey", "AccountDelegatesUseToIam", "CloudWatchLogsUseForKubecurLogGroups"})
        key_actions = [a for st in key_statements.values() for a in as_list(st["Action"])]
        c.check("key policy: no '*' in any action", all("*" not in a for a in key_actions), [a for a in key_actions if "*" in a])
        c.check("key policy: only Allow statements", all(st["Effect"] == "Allow" for st in key_statements.values()))
        c.equal(
            "key policy: administrators get the documented explicit list",
            set(as_list(key_statements.get("AccountAdministersKey", {}).get("Action", []))),
            {"kms:CreateAlias", "kms:CreateGrant", "kms:DescribeKey", "kms:EnableKey", "kms:EnableKeyRotation", "kms:ListGrants", "kms:ListKeyPolicies", "kms:ListKeyRotations", "kms:ListResourceTags", "kms:PutKeyPolicy", "kms:UpdateAlias", "kms:UpdateKeyDescription", "kms:RevokeGrant", "kms:DisableKey", "kms:DisableKeyRotation", "kms:GetKeyPolicy", "kms:GetKeyRotationStatus", "kms:DeleteAlias", "kms:TagResource", "kms:UntagResource", "kms:ScheduleKeyDeletion", "kms:CancelKeyDeletion", "kms:RotateKeyOnDemand"},
        )
        logs_key_st = key_statements.get("CloudWatchLogsUseForKubecurLogGroups", {})
        c.equal("key policy: CloudWatch Logs principal is the regional service", logs_key_st.get("Principal"), {"Service": {"Fn::Sub": "logs.${AWS::Region}.amazonaws.com"}})
        c.equal(
            "key policy: CloudWatch Logs only for kubecur's log groups",
            logs_key_st.get("Condition"),
            {"ArnLike": {"kms:EncryptionContext:aws:logs:arn": [
                {"Fn::Sub": "arn:${AWS::Partition}:logs:${AWS::Region}:${AWS::AccountId}:log-group:/aws/lambda/${NamePrefix}-*"},
                {"Fn::Sub": "arn:${AWS::Partition}:logs:${AWS::Region}:${AWS::AccountId}:log-group:/aws/apigateway/${NamePrefix}-*"},
            ]}},
        )

        # --- results bucket
        print("athena results bucket:")
        bucket = f"{prefix}-athena-results-{ACCOUNT}-{REGION}"
        c.equal("bucket is the stack's", resources.get("ResultsBucket"), bucket)
        bucket_props = check_private_bucket(c, s3, bucket, cfn["Resources"]["ResultsBucket"]["Properties"], "")
        rules = {r["Id"]: r for r in bucket_props.get("LifecycleConfiguration", {}).get("Rules", [])}
        expire = rules.get("expire-query-results", {})
        c.equal("static (moto ignores it): results expire after ResultsExpirationDays", expire.get("ExpirationInDays"), {"Ref": "ResultsExpirationDays"})
        c.equal("static (moto ignores it): noncurrent versions expire after 1 day", expire.get("NoncurrentVersionExpiration"), {"NoncurrentDays": 1})
        c.equal("static (moto ignores it): incomplete uploads aborted after 1 day", expire.get("AbortIncompleteMultipartUpload"), {"DaysAfterInitiation": 1})

        # --- queues
        print("failure queues:")
        queue_arns = {}
        for logical_id, name in (("CurIngestDeadLetterQueue", f"{prefix}-cur-ingest-dlq"), ("AllocationWriterDeadLetterQueue", f"{prefix}-allocation-writer-dlq")):
            url = sqs.get_queue_url(QueueName=name)["QueueUrl"]
            attrs = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["All"])["Attributes"]
            queue_arns[logical_id] = attrs["QueueArn"]
            c.equal(f"{name} SSE-SQS", attrs.get("SqsManagedSseEnabled"), "true")

        # --- log groups
        print("log groups:")
        for name in ("cur-ingest", "allocation-writer", "allocation-api"):
            group = f"/aws/lambda/{prefix}-{name}"
            found = [g for g in logs.describe_log_groups(logGroupNamePrefix=group)["logGroups"] if g["logGroupName"] == group]
            c.equal(f"{group} retention", found[0].get("retentionInDays") if found else None, 30)
        # moto's LogGroup reads the API's "kmsKeyId", not CloudFormation's "KmsKeyId" (moto/logs/models.py
        # LogGroup.__init__), so the key is checked in the translated template.
        for lid, r in sorted(cfn["Resources"].items()):
            if r["Type"] == "AWS::Logs::LogGroup":
                c.equal(f"static (moto ignores it): {lid} encrypted with the kubecur KMS key", r["Properties"].get("KmsKeyId"), {"Fn::GetAtt": ["KubecurKey", "Arn"]})
        api_group = f"/aws/apigateway/{prefix}-http-api"
        found = [g for g in logs.describe_log_groups(logGroupNamePrefix=api_group)["logGroups"] if g["logGroupName"] == api_group]
        c.equal(f"{api_group} retention", found[0].get("retentionInDays") if found else None, 30)

        # --- IAM
        print("iam roles:")
        cur = PARAMS["CurBucketName"]
        cur_prefix = PARAMS["CurPrefix"]
        glue_base = f"arn:aws:glue:{REGION}:{ACCOUNT}"
        bucket_arn = f"arn:aws:s3:::{bucket}"
        expected_roles = {
            f"{prefix}-cur-ingest": {
                "ReadCurObjects": ({"s3:GetObject"}, {f"arn:aws:s3:::{cur}/{cur_prefix}*"}),
                "ListCurPrefix": ({"s3:ListBucket"}, {f"arn:aws:s3:::{cur}"}),
                "LocateCurBucket": ({"s3:GetBucketLocation"}, {f"arn:aws:s3:::{cur}"}),
                "RunAthenaQueries": ({"athena:StartQueryExecution", "athena:GetQueryExecution"}, {workgroup_arn}),
                "ReadAndPartitionCurTable": (
                    {"glue:GetDatabase", "glue:GetTable", "glue:GetPartition", "glue:GetPartitions", "glue:BatchGetPartition", "glue:CreatePartition", "glue:BatchCreatePartition"},
                    {f"{glue_base}:catalog", f"{glue_base}:database/{PARAMS['GlueDatabase']}", f"{glue_base}:table/{PARAMS['GlueDatabase']}/{PARAMS['GlueTable']}"},
                ),
                "ListAthenaResultsBucket": ({"s3:GetBucketLocation", "s3:ListBucket", "s3:ListBucketMultipartUploads"}, {bucket_arn}),
                "WriteAthenaResults": ({"s3:PutObject", "s3:GetObject", "s3:AbortMultipartUpload", "s3:ListMultipartUploadParts"}, {f"{bucket_arn}/athena/*"}),
                "ClaimRuns": ({"dynamodb:PutItem", "dynamodb:GetItem", "dynamodb:UpdateItem", "dynamodb:Query", "dynamodb:BatchWriteItem"}, {table_arn}),
                "TableKeyViaDynamoDB": ({"kms:Decrypt", "kms:Encrypt", "kms:GenerateDataKey", "kms:DescribeKey"}, {key_arn}),
                "WriteOwnLogs": ({"logs:CreateLogStream", "logs:PutLogEvents"}, None),
                "SendToOwnFailureQueue": ({"sqs:SendMessage"}, {queue_arns["CurIngestDeadLetterQueue"]}),
            },
            f"{prefix}-allocation-writer": {
                "ReadQueryState": ({"athena:GetQueryExecution"}, {workgroup_arn}),
                "ReadQueryResults": ({"s3:GetObject"}, {f"{bucket_arn}/athena/*"}),
                "WriteSnapshots": ({"dynamodb:GetItem", "dynamodb:PutItem", "dynamodb:UpdateItem", "dynamodb:BatchWriteItem", "dynamodb:Query"}, {table_arn}),
                "TableKeyViaDynamoDB": ({"kms:Decrypt", "kms:Encrypt", "kms:GenerateDataKey", "kms:DescribeKey"}, {key_arn}),
                "WriteOwnLogs": ({"logs:CreateLogStream", "logs:PutLogEvents"}, None),
                "SendToOwnFailureQueue": ({"sqs:SendMessage"}, {queue_arns["AllocationWriterDeadLetterQueue"]}),
            },
            f"{prefix}-allocation-api": {
                "ReadSnapshots": ({"dynamodb:Query"}, {table_arn}),
                "TableKeyViaDynamoDB": ({"kms:Decrypt", "kms:DescribeKey"}, {key_arn}),
                "WriteOwnLogs": ({"logs:CreateLogStream", "logs:PutLogEvents"}, None),
            },
        }
        role_arns = {}
        for role_name, expected in expected_roles.items():
            role = iam.get_role(RoleName=role_name)["Role"]
            role_arns[role_name] = role["Arn"]
            trust = role["AssumeRolePolicyDocument"]
            trust = json.loads(trust) if isinstance(trust, str) else trust
            c.equal(f"{role_name} trusts only lambda.amazonaws.com", [s["Principal"] for s in trust["Statement"]], [{"Service": "lambda.amazonaws.com"}])
            c.equal(f"{role_name} has no managed policies", iam.list_attached_role_policies(RoleName=role_name)["AttachedPolicies"], [])
            statements = policy_statements(iam, role_name)
            c.equal(f"{role_name} statement ids", set(statements), set(expected))
            all_actions = [a for st in statements.values() for a in as_list(st["Action"])]
            all_resources = [r for st in statements.values() for r in as_list(st["Resource"])]
            c.check(f"{role_name}: no '*' in any action", all("*" not in a for a in all_actions), all_actions)
            c.check(f"{role_name}: no '*' resource", all(r != "*" and not r.endswith(":*:*") for r in all_resources), all_resources)
            c.check(f"{role_name}: only Allow statements", all(st["Effect"] == "Allow" for st in statements.values()))
            for sid, (actions, resources_expected) in expected.items():
                st = statements.get(sid)
                if st is None:
                    continue
                c.equal(f"{role_name}/{sid} actions", set(as_list(st["Action"])), actions)
                if resources_expected is not None:
                    c.equal(f"{role_name}/{sid} resources", set(as_list(st["Resource"])), resources_expected)
            key_st = statements.get("TableKeyViaDynamoDB")
            if key_st:
                c.equal(f"{role_name}/TableKeyViaDynamoDB only through DynamoDB", key_st.get("Condition"), {"StringEquals": {"kms:ViaService": f"dynamodb.{REGION}.amazonaws.com"}})
            logs_st = statements.get("WriteOwnLogs")
            if logs_st:
                function = role_name  # function name == role name
                c.check(f"{role_name}/WriteOwnLogs scoped to its log group", all(f":log-group:/aws/lambda/{function}:" in r or r.endswith(f":log-group:/aws/lambda/{function}") for r in as_list(logs_st["Resource"])), logs_st["Resource"])
        # The reconciler's schedule role: trusted by EventBridge Scheduler of this account only, may only
        # invoke cur-ingest.
        schedule_role = iam.get_role(RoleName=f"{prefix}-reconcile-schedule")["Role"]
        trust = schedule_role["AssumeRolePolicyDocument"]
        trust = json.loads(trust) if isinstance(trust, str) else trust
        c.equal("reconcile-schedule trusts only scheduler.amazonaws.com of this account", [(s["Principal"], s.get("Condition")) for s in trust["Statement"]], [({"Service": "scheduler.amazonaws.com"}, {"StringEquals": {"aws:SourceAccount": ACCOUNT}})])
        schedule_statements = policy_statements(iam, f"{prefix}-reconcile-schedule")
        c.equal("reconcile-schedule may only invoke cur-ingest", {sid: (set(as_list(st["Action"])), set(as_list(st["Resource"]))) for sid, st in schedule_statements.items()}, {"InvokeCurIngest": ({"lambda:InvokeFunction"}, {f"arn:aws:lambda:{REGION}:{ACCOUNT}:function:{prefix}-cur-ingest"})})
        ingest = policy_statements(iam, f"{prefix}-cur-ingest")
        c.equal("cur-ingest ListBucket limited to the CUR prefix", ingest["ListCurPrefix"].get("Condition"), {"StringLike": {"s3:prefix": f"{cur_prefix}*"}})

        # Every policy in the translated template (roles, key, queue and bucket policies): no Allow
        # statement has a "*" in an action; the only "*" action is the results bucket's TLS-only Deny.
        star_actions = []

        def scan_policies(node: object, where: str) -> None:
            if isinstance(node, dict):
                if "Statement" in node and isinstance(node["Statement"], list):
                    for st in node["Statement"]:
                        for a in as_list(st.get("Action", [])):
                            if isinstance(a, str) and "*" in a:
                                star_actions.append((where, st.get("Sid"), st.get("Effect"), a))
                for k, v in node.items():
                    scan_policies(v, where)
            elif isinstance(node, list):
                for v in node:
                    scan_policies(v, where)

        for lid, r in cfn["Resources"].items():
            scan_policies(r.get("Properties", {}), lid)
        c.equal(
            "template: the only '*' actions are the TLS-only Deny s3:* on the results and export buckets",
            sorted(star_actions),
            [("ExportBucketPolicy", "DenyInsecureTransport", "Deny", "s3:*"), ("ResultsBucketPolicy", "DenyInsecureTransport", "Deny", "s3:*")],
        )

        # --- functions
        print("functions:")
        function_arns = {}
        for logical_id, (binary, memory, timeout, env_names) in FUNCTIONS.items():
            name = f"{prefix}-{binary}"
            c.equal(f"{logical_id} physical name", resources.get(logical_id), name)
            conf = lam.get_function_configuration(FunctionName=name)
            function_arns[logical_id] = conf["FunctionArn"]
            c.equal(f"{name} runtime/handler/arch", (conf["Runtime"], conf["Handler"], conf.get("Architectures")), ("provided.al2023", "bootstrap", [PARAMS["Architecture"]]))
            c.equal(f"{name} memory/timeout", (conf["MemorySize"], conf["Timeout"]), (memory, timeout))
            c.equal(f"{name} role", conf["Role"], role_arns[name])
            env = conf.get("Environment", {}).get("Variables", {})
            c.equal(f"{name} environment variable names", set(env), env_names)
            c.equal(f"{name} KUBECUR_TABLE", env.get("KUBECUR_TABLE"), prefix)
            c.equal(f"{name} KUBECUR_LOG", env.get("KUBECUR_LOG"), "info")
            if "KUBECUR_ATHENA_WORKGROUP" in env_names:
                c.equal(f"{name} KUBECUR_ATHENA_WORKGROUP", env.get("KUBECUR_ATHENA_WORKGROUP"), workgroup)
        ingest_env = lam.get_function_configuration(FunctionName=f"{prefix}-cur-ingest")["Environment"]["Variables"]
        c.equal("cur-ingest database/table/tag keys/share rules", (ingest_env.get("KUBECUR_ATHENA_DATABASE"), ingest_env.get("KUBECUR_ATHENA_TABLE"), ingest_env.get("KUBECUR_TAG_KEYS"), ingest_env.get("KUBECUR_LABELS"), ingest_env.get("KUBECUR_SHARE_RULES")), (PARAMS["GlueDatabase"], PARAMS["GlueTable"], PARAMS["TagKeys"], PARAMS["Labels"], PARAMS["ShareRules"]))

        api_env = lam.get_function_configuration(FunctionName=f"{prefix}-allocation-api")["Environment"]["Variables"]
        c.equal("allocation-api share rules and labels", (api_env.get("KUBECUR_SHARE_RULES"), api_env.get("KUBECUR_LABELS")), (PARAMS["ShareRules"], PARAMS["Labels"]))
        # str(): moto hands Number parameters back as numbers; Lambda stores every variable as text.
        c.equal("allocation-api limits are the parameters' defaults", tuple(str(api_env.get(f"KUBECUR_API_MAX_{n}")) for n in ("WINDOW_DAYS", "STEPS", "GROUPS")), ("1096", "366", "10000"))

        # --- EventBridge rules, targets and permissions
        print("eventbridge rules:")
        expected_rules = {
            f"{prefix}-cur-object-created": (
                {"source": ["aws.s3"], "detail-type": ["Object Created"], "detail": {"bucket": {"name": [cur]}, "object": {"key": [{"prefix": cur_prefix}]}}},
                "CurIngestFunction",
                "CurIngestDeadLetterQueue",
            ),
            f"{prefix}-athena-query-state": (
                {"source": ["aws.athena"], "detail-type": ["Athena Query State Change"], "detail": {"workgroupName": [workgroup], "currentState": ["SUCCEEDED", "FAILED", "CANCELLED"]}},
                "AllocationWriterFunction",
                "AllocationWriterDeadLetterQueue",
            ),
        }
        for rule_name, (pattern, function_id, queue_id) in expected_rules.items():
            rule = events.describe_rule(Name=rule_name)
            c.equal(f"{rule_name} pattern", json.loads(rule["EventPattern"]), pattern)
            c.equal(f"{rule_name} state", rule.get("State"), "ENABLED")
            targets = events.list_targets_by_rule(Rule=rule_name)["Targets"]
            c.equal(f"{rule_name} target", [t["Arn"] for t in targets], [function_arns[function_id]])
            if targets:
                c.equal(f"{rule_name} target retry policy", targets[0].get("RetryPolicy"), {"MaximumRetryAttempts": 20, "MaximumEventAgeInSeconds": 21600})
                c.equal(f"{rule_name} target dead-letter queue", targets[0].get("DeadLetterConfig", {}).get("Arn"), queue_arns[queue_id])
            policy = json.loads(lam.get_policy(FunctionName=function_arns[function_id])["Policy"])
            grants = [s for s in policy["Statement"] if s.get("Principal", {}).get("Service") == "events.amazonaws.com"]
            c.equal(f"{rule_name} may invoke its function, scoped to the rule ARN", [g["Condition"]["ArnLike"]["AWS:SourceArn"] for g in grants], [rule["Arn"]])
        # Behaviour of the deployed patterns, with moto's event-pattern matcher (an approximation of
        # EventBridge's; moto's TestEventPattern API is not implemented, so the matcher runs in-process).
        from moto.events.models import EventPattern  # noqa: PLC0415

        def s3_event(bucket_name: str, key: str) -> dict:
            return ({"id": "1", "account": ACCOUNT, "source": "aws.s3", "time": "2024-06-02T00:00:00Z", "region": REGION, "resources": [], "detail-type": "Object Created", "detail": {"bucket": {"name": bucket_name}, "object": {"key": key}}})

        def athena_event(wg_name: str, state: str) -> dict:
            return ({"id": "1", "account": ACCOUNT, "source": "aws.athena", "time": "2024-06-02T00:00:00Z", "region": REGION, "resources": [], "detail-type": "Athena Query State Change", "detail": {"workgroupName": wg_name, "currentState": state, "queryExecutionId": "q"}})

        s3_pattern = events.describe_rule(Name=f"{prefix}-cur-object-created")["EventPattern"]
        athena_pattern = events.describe_rule(Name=f"{prefix}-athena-query-state")["EventPattern"]
        for label, pattern, event, expected in (
            ("manifest under the CUR prefix matches", s3_pattern, s3_event(cur, f"{cur_prefix}metadata/BILLING_PERIOD=2024-06/x-Manifest.json"), True),
            ("object outside the CUR prefix does not match", s3_pattern, s3_event(cur, "other/x.json"), False),
            ("object in another bucket does not match", s3_pattern, s3_event("other-bucket", f"{cur_prefix}x.json"), False),
            ("SUCCEEDED query of the workgroup matches", athena_pattern, athena_event(workgroup, "SUCCEEDED"), True),
            ("CANCELLED query of the workgroup matches", athena_pattern, athena_event(workgroup, "CANCELLED"), True),
            ("RUNNING query does not match", athena_pattern, athena_event(workgroup, "RUNNING"), False),
            ("query of another workgroup does not match", athena_pattern, athena_event("primary", "SUCCEEDED"), False),
        ):
            c.equal(f"pattern: {label}", EventPattern.load(pattern).matches_event(event), expected)

        api_policy = json.loads(lam.get_policy(FunctionName=function_arns["AllocationApiFunction"])["Policy"])
        api_grants = [s for s in api_policy["Statement"] if s.get("Principal", {}).get("Service") == "apigateway.amazonaws.com"]
        c.equal(
            "allocation-api invoke permissions, one per route, scoped to the execute-api ARN (API id is a stand-in: HttpApi not deployed)",
            sorted(g["Condition"]["ArnLike"]["AWS:SourceArn"] for g in api_grants),
            [f"arn:aws:execute-api:{REGION}:{ACCOUNT}:stubapiid/*/GET/", f"arn:aws:execute-api:{REGION}:{ACCOUNT}:stubapiid/*/GET/allocation", f"arn:aws:execute-api:{REGION}:{ACCOUNT}:stubapiid/*/GET/openapi.json", f"arn:aws:execute-api:{REGION}:{ACCOUNT}:stubapiid/*/GET/page/*", f"arn:aws:execute-api:{REGION}:{ACCOUNT}:stubapiid/*/GET/status"],
        )

        # --- what moto could not deploy: static checks of the translated template only
        print("static checks of the translated template (resources moto does not deploy):")
        res = cfn["Resources"]

        def props(logical_id: str) -> dict:
            return res[logical_id]["Properties"]

        wg = props("AthenaWorkGroup")["WorkGroupConfiguration"]
        c.check("static: workgroup enforced, metrics on, SSE_S3 results under athena/", wg["EnforceWorkGroupConfiguration"] is True and wg["PublishCloudWatchMetricsEnabled"] is True and wg["ResultConfiguration"]["EncryptionConfiguration"]["EncryptionOption"] == "SSE_S3" and wg["ResultConfiguration"]["OutputLocation"] == {"Fn::Sub": "s3://${ResultsBucket}/athena/"}, wg)
        c.equal("static: workgroup bytes cutoff is the parameter", wg["BytesScannedCutoffPerQuery"], {"Ref": "BytesScannedCutoffPerQuery"})
        bp = props("ResultsBucketPolicy")["PolicyDocument"]["Statement"]
        c.check("static: results bucket policy denies non-TLS", any(s["Effect"] == "Deny" and s["Condition"] == {"Bool": {"aws:SecureTransport": "false"}} for s in bp), bp)
        invoke_configs = {r["Properties"]["FunctionName"]["Ref"]: r["Properties"] for r in res.values() if r["Type"] == "AWS::Lambda::EventInvokeConfig"}
        for fid, qid in (("CurIngestFunction", "CurIngestDeadLetterQueue"), ("AllocationWriterFunction", "AllocationWriterDeadLetterQueue")):
            ic = invoke_configs.get(fid, {})
            c.check(f"static: {fid} async retries 2, max age 6 h, on-failure -> {qid}", ic.get("MaximumRetryAttempts") == 2 and ic.get("MaximumEventAgeInSeconds") == 21600 and ic.get("DestinationConfig", {}).get("OnFailure", {}).get("Destination") == {"Fn::GetAtt": [qid, "Arn"]}, ic)
        c.equal("static: no invoke config for the synchronous API function", "AllocationApiFunction" in invoke_configs, False)
        routes = {props(l)["RouteKey"]: props(l) for l, r in res.items() if r["Type"] == "AWS::ApiGatewayV2::Route"}
        c.equal("static: routes", sorted(routes), ["GET /", "GET /allocation", "GET /openapi.json", "GET /page/{file}", "GET /status"])
        c.check("static: routes authorize with AWS_IAM unless JWT", all(r["AuthorizationType"] == {"Fn::If": ["UseJwt", "JWT", "AWS_IAM"]} for r in routes.values()), routes)
        integ = props("HttpApiIntegration")
        c.equal("static: integration", (integ["IntegrationType"], integ["PayloadFormatVersion"], integ["IntegrationUri"]), ("AWS_PROXY", "2.0", {"Fn::GetAtt": ["AllocationApiFunction", "Arn"]}))
        c.equal("static: JWT authorizer only with UseJwt", res["HttpApiJwtAuthorizer"].get("Condition"), "UseJwt")
        c.equal("static: stage access logs", props("HttpApiStage")["AccessLogSettings"]["DestinationArn"], {"Fn::GetAtt": ["HttpApiAccessLogGroup", "Arn"]})
        c.equal("static: stage throttling as Terraform's (burst 50, 20/s)", props("HttpApiStage").get("DefaultRouteSettings"), {"ThrottlingBurstLimit": 50, "ThrottlingRateLimit": 20})
        mf = props("FailedAllocationRunsMetricFilter")
        c.check("static: metric filter on the writer log group -> kubecur/FailedAllocationRuns", mf["LogGroupName"] == {"Ref": "AllocationWriterLogGroup"} and "Allocation run failed" in mf["FilterPattern"] and mf["MetricTransformations"][0]["MetricNamespace"] == "kubecur" and mf["MetricTransformations"][0]["MetricName"] == "FailedAllocationRuns", mf)
        alarms = {l: props(l) for l, r in res.items() if r["Type"] == "AWS::CloudWatch::Alarm"}
        alarm_metrics = sorted((a["Namespace"], a["MetricName"]) for a in alarms.values())
        c.equal("static: alarms", alarm_metrics, sorted([("AWS/Lambda", "Errors")] * 3 + [("AWS/SQS", "ApproximateNumberOfMessagesVisible")] * 2 + [("kubecur", "FailedAllocationRuns"), ("kubecur", "StalePeriods"), ("kubecur", "FailedPeriods")]))
        c.check("static: every alarm > 0 with AlarmActions when given", all(a["ComparisonOperator"] == "GreaterThanThreshold" and a["Threshold"] == 0 and a["AlarmActions"] == {"Fn::If": ["HasAlarmActions", {"Ref": "AlarmActions"}, {"Ref": "AWS::NoValue"}]} for a in alarms.values()), alarms)
        schedule = props("ReconcilerSchedule")
        c.check(
            "static: reconciler schedule invokes cur-ingest with {\"kubecur\": \"reconcile\"} on the ReconcileSchedule parameter",
            schedule["ScheduleExpression"] == {"Ref": "ReconcileSchedule"}
            and schedule["Target"]["Arn"] == {"Fn::GetAtt": ["CurIngestFunction", "Arn"]}
            and schedule["Target"]["RoleArn"] == {"Fn::GetAtt": ["ReconcileScheduleRole", "Arn"]}
            and json.loads(schedule["Target"]["Input"]) == {"kubecur": "reconcile"},
            schedule,
        )
        c.equal("static: ReconcileSchedule default is hourly", cfn["Parameters"]["ReconcileSchedule"]["Default"], "rate(1 hour)")
        glue = res["CurGlueTable"]
        c.check("static: Glue table only with CreateGlueTable, partitioned by billing_period at <cur>/<prefix>data/", glue.get("Condition") == "CreateGlueTableCondition" and glue["Properties"]["TableInput"]["PartitionKeys"] == [{"Name": "billing_period", "Type": "string"}] and glue["Properties"]["TableInput"]["StorageDescriptor"]["Location"] == {"Fn::Sub": "s3://${CurBucketName}/${CurPrefix}data/"}, glue)
        qp = props("DeadLetterQueuePolicy")["PolicyDocument"]["Statement"]
        c.check("static: queue policy lets only the two rules send dead letters", sorted(s["Condition"]["ArnEquals"]["aws:SourceArn"]["Fn::GetAtt"][0] for s in qp) == ["AthenaQueryStateRule", "CurObjectCreatedRule"], qp)
        c.equal("static: HTTP API protocol", props("HttpApi")["ProtocolType"], "HTTP")
        # --- the billing side (CreateDataExport=true): the bucket is deployed, the rest is static.
        print("billing side:")
        cur_bucket = PARAMS["CurBucketName"]
        c.equal("export bucket deployed under its parameter name", resources.get("ExportBucket"), cur_bucket)
        check_private_bucket(c, s3, cur_bucket, props("ExportBucket"), "export bucket: ")
        c.equal("static: export bucket kept when the stack is deleted (it holds the billing history)", (res["ExportBucket"].get("DeletionPolicy"), res["ExportBucket"].get("Condition")), ("Retain", "CreateDataExportCondition"))
        eb = props("ExportBucket").get("NotificationConfiguration", {})
        c.equal("static: export bucket sends S3 events to EventBridge", eb, {"EventBridgeConfiguration": {"EventBridgeEnabled": True}})
        ebp = props("ExportBucketPolicy")["PolicyDocument"]["Statement"]
        allow = [s for s in ebp if s["Effect"] == "Allow"]
        c.check(
            "static: export bucket policy lets only bcm-data-exports put objects and read the policy, for this account's exports",
            len(allow) == 1
            and allow[0]["Principal"] == {"Service": "bcm-data-exports.amazonaws.com"}
            and sorted(allow[0]["Action"]) == ["s3:GetBucketPolicy", "s3:PutObject"]
            and allow[0]["Condition"]["StringEquals"] == {"aws:SourceAccount": {"Ref": "AWS::AccountId"}}
            and allow[0]["Condition"]["ArnLike"] == {"aws:SourceArn": {"Fn::Sub": "arn:${AWS::Partition}:bcm-data-exports:us-east-1:${AWS::AccountId}:export/*"}},
            ebp,
        )
        c.check("static: export bucket policy denies non-TLS", any(s["Effect"] == "Deny" and s["Condition"] == {"Bool": {"aws:SecureTransport": "false"}} for s in ebp), ebp)
        export = props("CurDataExport")["Export"]
        s3dest = export["DestinationConfigurations"]["S3Destination"]
        table_conf = export["DataQuery"]["TableConfigurations"]["COST_AND_USAGE_REPORT"]
        c.equal("static: export output Parquet, overwrite", s3dest["S3OutputConfigurations"], {"OutputType": "CUSTOM", "Format": "PARQUET", "Compression": "PARQUET", "Overwrite": "OVERWRITE_REPORT"})
        c.equal("static: export includes resource ids, no split rows", (table_conf["INCLUDE_RESOURCES"], table_conf["INCLUDE_SPLIT_COST_ALLOCATION_DATA"]), ("TRUE", "FALSE"))
        c.equal("static: export name and prefix from CurPrefix", (export["Name"], s3dest["S3Prefix"]), ({"Fn::Select": [1, {"Fn::Split": ["/", {"Ref": "CurPrefix"}]}]}, {"Fn::Select": [0, {"Fn::Split": ["/", {"Ref": "CurPrefix"}]}]}))
        c.equal("static: export only with CreateDataExport, after the bucket policy", (res["CurDataExport"].get("Condition"), res["CurDataExport"].get("DependsOn")), ("CreateDataExportCondition", "ExportBucketPolicy"))
        if "CurGlueDatabase" in dict(stripped):
            c.equal("static: Glue database named by the parameter", props("CurGlueDatabase")["DatabaseInput"]["Name"], {"Ref": "GlueDatabase"})
        covered = {"ReconcilerSchedule", "ExportBucketPolicy", "CurDataExport", "CurGlueDatabase", "HttpApi", "AthenaWorkGroup", "ResultsBucketPolicy", "HttpApiIntegration", "AllocationRoute", "StatusRoute", "OpenApiRoute", "PageRoute", "PageFilesRoute", "HttpApiJwtAuthorizer", "HttpApiStage", "FailedAllocationRunsMetricFilter", "CurGlueTable", "DeadLetterQueuePolicy"}
        covered |= set(alarms) | {l for l, r in res.items() if r["Type"] == "AWS::Lambda::EventInvokeConfig"}
        unchecked = sorted(l for l, _t in stripped if l not in covered)
        c.equal("every stripped resource has a static check", unchecked, [])
    finally:
        server.terminate()
        try:
            server.wait(timeout=10)
        except subprocess.TimeoutExpired:
            server.kill()
        log.close()

    print(f"moto: {c.passed} passed, {c.failed} failed")
    return 0 if c.failed == 0 else 1


def main() -> int:
    if len(sys.argv) != 3 or sys.argv[1] not in ("translate", "deploy"):
        print(__doc__)
        return 2
    if sys.argv[1] == "translate":
        translate(sys.argv[2])
        return 0
    return deploy(sys.argv[2])


if __name__ == "__main__":
    sys.exit(main())
