//! Terraform, SAM and the functions' typed configuration agree on every environment variable name.
//! The HCL and the YAML are parsed (not grepped): each function's `environment` must set every variable
//! the function requires and nothing it does not read.

use kubecur_shared::config::{API_VARS, INGEST_VARS, WRITER_VARS};
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

/// A function's (required, optional) environment variables.
type Vars = (&'static [&'static str], &'static [&'static str]);

/// (Terraform resource name, SAM logical id, variables).
const FUNCTIONS: [(&str, &str, Vars); 3] = [
    ("cur_ingest", "CurIngestFunction", INGEST_VARS),
    ("allocation_writer", "AllocationWriterFunction", WRITER_VARS),
    ("allocation_api", "AllocationApiFunction", API_VARS),
];

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("repository root")
        .to_path_buf()
}

fn check(origin: &str, function: &str, set: &BTreeSet<String>, vars: (&[&str], &[&str])) {
    let (required, optional) = vars;
    for name in required {
        assert!(
            set.contains(*name),
            "{origin}: {function} does not set {name}, which the function requires; it sets {set:?}"
        );
    }
    for name in set {
        assert!(
            required.contains(&name.as_str()) || optional.contains(&name.as_str()),
            "{origin}: {function} sets {name}, which the function never reads (it reads {required:?} and {optional:?})"
        );
    }
}

/// Environment variable names of every `aws_lambda_function` in the module's `.tf` files.
fn terraform_environments() -> Vec<(String, BTreeSet<String>)> {
    let dir = repo().join("infra/terraform/modules/kubecur");
    let mut out = Vec::new();
    let entries = std::fs::read_dir(&dir).unwrap_or_else(|e| panic!("{dir:?}: {e}"));
    for entry in entries {
        let path = entry.expect("entry").path();
        if path.extension().and_then(|e| e.to_str()) != Some("tf") {
            continue;
        }
        let text = std::fs::read_to_string(&path).expect("readable");
        let body = hcl::parse(&text).unwrap_or_else(|e| panic!("{path:?} is not valid HCL: {e}"));
        for block in body.blocks() {
            let labels: Vec<&str> = block.labels().iter().map(|l| l.as_str()).collect();
            if block.identifier() != "resource" || labels.first() != Some(&"aws_lambda_function") {
                continue;
            }
            let name = labels.get(1).copied().unwrap_or_default().to_string();
            let mut keys = BTreeSet::new();
            for environment in block
                .body()
                .blocks()
                .filter(|b| b.identifier() == "environment")
            {
                for attribute in environment.body().attributes() {
                    if attribute.key() != "variables" {
                        continue;
                    }
                    let hcl::Expression::Object(object) = attribute.expr() else {
                        panic!("{path:?}: {name}'s environment variables are not a literal map");
                    };
                    for key in object.keys() {
                        keys.insert(match key {
                            hcl::ObjectKey::Identifier(id) => id.as_str().to_string(),
                            hcl::ObjectKey::Expression(hcl::Expression::String(s)) => s.clone(),
                            other => panic!("{path:?}: {name}: computed variable name {other:?}"),
                        });
                    }
                }
            }
            out.push((name, keys));
        }
    }
    out
}

#[test]
fn terraform_sets_what_each_function_reads() {
    let environments = terraform_environments();
    assert_eq!(
        environments.len(),
        3,
        "expected the three functions, found {environments:?}"
    );
    for (resource, _, vars) in FUNCTIONS {
        let (_, set) = environments
            .iter()
            .find(|(name, _)| name == resource)
            .unwrap_or_else(|| panic!("no aws_lambda_function \"{resource}\" in {environments:?}"));
        check("terraform", resource, set, vars);
    }
}

#[test]
fn sam_sets_what_each_function_reads() {
    let path = repo().join("infra/sam/template.yaml");
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path:?}: {e}"));
    let template: serde_yaml::Value =
        serde_yaml::from_str(&text).unwrap_or_else(|e| panic!("{path:?} is not YAML: {e}"));
    let globals = &template["Globals"]["Function"]["Environment"];
    assert!(
        globals.is_null(),
        "Globals set environment variables; keep them per function so this test sees them"
    );
    for (_, logical_id, vars) in FUNCTIONS {
        let variables =
            &template["Resources"][logical_id]["Properties"]["Environment"]["Variables"];
        let mapping = variables
            .as_mapping()
            .unwrap_or_else(|| panic!("{logical_id} has no Environment.Variables mapping"));
        let set: BTreeSet<String> = mapping
            .keys()
            .map(|k| k.as_str().expect("string keys").to_string())
            .collect();
        check("sam", logical_id, &set, vars);
    }
    let functions = template["Resources"]
        .as_mapping()
        .expect("resources")
        .values()
        .filter(|r| r["Type"].as_str() == Some("AWS::Serverless::Function"))
        .count();
    assert_eq!(functions, 3, "exactly the three functions");
}
