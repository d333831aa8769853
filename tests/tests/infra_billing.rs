//! The billing side that Terraform (`modules/kubecur-billing`) and SAM (`CreateDataExport=true`) create
//! delivers what kubecur reads: the CUR 2.0 export's column list agrees with the Glue table each tool
//! declares, every column the allocation plan reads for that table is exported, and the export is
//! Parquet, overwritten per month, with resource ids. The HCL and YAML are parsed, not grepped.

use kubecur_shared::domain::columns::ColumnSet;
use kubecur_shared::domain::{AllocationPlan, AllocationRequest, Flavour};
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("repository root")
        .to_path_buf()
}

fn hcl_file(relative: &str) -> hcl::Body {
    let path = repo().join(relative);
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path:?}: {e}"));
    hcl::parse(&text).unwrap_or_else(|e| panic!("{path:?} is not valid HCL: {e}"))
}

/// The expression of `locals { name = … }` in `body`.
fn local<'a>(body: &'a hcl::Body, name: &str) -> &'a hcl::Expression {
    body.blocks()
        .filter(|b| b.identifier() == "locals")
        .flat_map(|b| b.body().attributes())
        .find(|a| a.key() == name)
        .map(|a| a.expr())
        .unwrap_or_else(|| panic!("no local {name}"))
}

/// The body of the block `identifier "labels"…` directly inside `body`.
fn block<'a>(body: &'a hcl::Body, identifier: &str, labels: &[&str]) -> &'a hcl::Body {
    body.blocks()
        .find(|b| {
            b.identifier() == identifier
                && b.labels()
                    .iter()
                    .map(|l| l.as_str())
                    .eq(labels.iter().copied())
        })
        .map(|b| b.body())
        .unwrap_or_else(|| panic!("no block {identifier} {labels:?}"))
}

fn attribute<'a>(body: &'a hcl::Body, name: &str) -> &'a hcl::Expression {
    body.attributes()
        .find(|a| a.key() == name)
        .map(|a| a.expr())
        .unwrap_or_else(|| panic!("no attribute {name}"))
}

fn string(expr: &hcl::Expression) -> String {
    match expr {
        hcl::Expression::String(s) => s.clone(),
        other => panic!("not a literal string: {other:?}"),
    }
}

fn object_field(expr: &hcl::Expression, key: &str) -> hcl::Expression {
    let hcl::Expression::Object(object) = expr else {
        panic!("not an object: {expr:?}")
    };
    object
        .iter()
        .find(|(k, _)| match k {
            hcl::ObjectKey::Identifier(id) => id.as_str() == key,
            hcl::ObjectKey::Expression(hcl::Expression::String(s)) => s == key,
            _ => false,
        })
        .map(|(_, v)| v.clone())
        .unwrap_or_else(|| panic!("no key {key} in {expr:?}"))
}

/// The plan kubecur makes for a CUR 2.0 table with `columns` reads only exported columns, and loses
/// nothing against the full Glue table: same columns read, no warning.
fn assert_export_serves_the_plan(
    origin: &str,
    exported: &BTreeSet<String>,
    glue: &BTreeSet<String>,
) {
    let exported_set = ColumnSet::new(exported.iter().cloned());
    let glue_set = ColumnSet::new(glue.iter().cloned());
    assert_eq!(
        Flavour::detect(&exported_set).ok(),
        Some(Flavour::Cur2),
        "{origin}: the export is not read as CUR 2.0"
    );
    let request = AllocationRequest::default();
    let on_export = AllocationPlan::new(&exported_set, &request)
        .unwrap_or_else(|e| panic!("{origin}: kubecur cannot plan over the exported columns: {e}"));
    let on_glue = AllocationPlan::new(&glue_set, &request).expect("plan over the Glue table");
    let read: BTreeSet<String> = on_export
        .required_columns()
        .into_iter()
        .map(|(c, _)| c)
        .collect();
    for column in &read {
        assert!(
            exported.contains(column),
            "{origin}: kubecur reads {column}, which the export does not deliver"
        );
    }
    let read_on_glue: BTreeSet<String> = on_glue
        .required_columns()
        .into_iter()
        .map(|(c, _)| c)
        .collect();
    assert_eq!(
        read, read_on_glue,
        "{origin}: the export narrows what kubecur reads from the Glue table"
    );
    assert!(
        on_export.warnings.is_empty(),
        "{origin}: planning over the export warns: {:?}",
        on_export.warnings
    );
}

#[test]
fn terraform_export_delivers_the_glue_tables_columns_as_parquet_with_resource_ids() {
    let billing = hcl_file("infra/terraform/modules/kubecur-billing/main.tf");
    let storage = hcl_file("infra/terraform/modules/kubecur/storage.tf");

    let hcl::Expression::Array(items) = local(&billing, "export_columns") else {
        panic!("export_columns is not a literal list")
    };
    let exported: Vec<String> = items.iter().map(string).collect();
    let exported_set: BTreeSet<String> = exported.iter().cloned().collect();
    assert_eq!(
        exported.len(),
        exported_set.len(),
        "export_columns repeats a column: {exported:?}"
    );

    let hcl::Expression::Object(columns) = local(&storage, "cur2_columns") else {
        panic!("cur2_columns is not a literal map")
    };
    let glue: BTreeSet<String> = columns
        .keys()
        .map(|k| match k {
            hcl::ObjectKey::Identifier(id) => id.as_str().to_string(),
            other => panic!("computed column name {other:?}"),
        })
        .collect();
    assert_eq!(
        exported_set, glue,
        "the export's columns and modules/kubecur's CUR 2.0 Glue columns differ"
    );
    assert_export_serves_the_plan("terraform", &exported_set, &glue);

    let resource = block(&billing, "resource", &["aws_bcmdataexports_export", "cur2"]);
    let export = block(resource, "export", &[]);
    let query = block(export, "data_query", &[]);
    let statement = attribute(query, "query_statement").to_string();
    assert!(
        statement.contains("local.export_columns")
            && statement.contains("FROM COST_AND_USAGE_REPORT"),
        "query_statement must select local.export_columns from COST_AND_USAGE_REPORT: {statement}"
    );
    let config = object_field(
        attribute(query, "table_configurations"),
        "COST_AND_USAGE_REPORT",
    );
    assert_eq!(string(&object_field(&config, "INCLUDE_RESOURCES")), "TRUE");
    assert_eq!(
        string(&object_field(&config, "INCLUDE_SPLIT_COST_ALLOCATION_DATA")),
        "FALSE"
    );
    let destination = block(export, "destination_configurations", &[]);
    let output = block(
        block(destination, "s3_destination", &[]),
        "s3_output_configurations",
        &[],
    );
    assert_eq!(string(attribute(output, "format")), "PARQUET");
    assert_eq!(string(attribute(output, "compression")), "PARQUET");
    assert_eq!(string(attribute(output, "overwrite")), "OVERWRITE_REPORT");
}

#[test]
fn terraform_from_zero_example_points_kubecur_at_the_export() {
    let main = hcl_file("infra/terraform/examples/from-zero/main.tf");
    let kubecur = block(&main, "module", &["kubecur"]);
    assert_eq!(
        attribute(kubecur, "cur_bucket_name").to_string(),
        "module.billing.bucket_name"
    );
    assert_eq!(
        attribute(kubecur, "cur_prefix").to_string(),
        "module.billing.cur_prefix"
    );
    assert_eq!(attribute(kubecur, "create_glue_table").to_string(), "true");
    // Only one aws_s3_bucket_notification may own the bucket's notification configuration.
    assert_eq!(
        attribute(kubecur, "enable_bucket_eventbridge").to_string(),
        "false"
    );
}

/// The SELECT list of a Data Exports query statement.
fn selected(statement: &str) -> Vec<String> {
    let upper = statement.to_ascii_uppercase();
    let start = upper.find("SELECT ").expect("SELECT") + "SELECT ".len();
    let end = upper
        .find(" FROM COST_AND_USAGE_REPORT")
        .expect("FROM COST_AND_USAGE_REPORT");
    statement[start..end]
        .split(',')
        .map(|c| c.trim().to_string())
        .collect()
}

#[test]
fn sam_export_delivers_the_glue_tables_columns_as_parquet_with_resource_ids() {
    let path = repo().join("infra/sam/template.yaml");
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path:?}: {e}"));
    let template: serde_yaml::Value =
        serde_yaml::from_str(&text).unwrap_or_else(|e| panic!("{path:?} is not YAML: {e}"));
    let resources = &template["Resources"];

    let glue: BTreeSet<String> = resources["CurGlueTable"]["Properties"]["TableInput"]
        ["StorageDescriptor"]["Columns"]
        .as_sequence()
        .expect("CurGlueTable columns")
        .iter()
        .map(|c| c["Name"].as_str().expect("column name").to_string())
        .collect();
    let export = &resources["CurDataExport"]["Properties"]["Export"];
    let statement = export["DataQuery"]["QueryStatement"]
        .as_str()
        .expect("QueryStatement");
    let exported = selected(statement);
    let exported_set: BTreeSet<String> = exported.iter().cloned().collect();
    assert_eq!(
        exported.len(),
        exported_set.len(),
        "the SAM export repeats a column: {exported:?}"
    );
    // Split cost allocation columns exist only with INCLUDE_SPLIT_COST_ALLOCATION_DATA, which is off.
    let expected: BTreeSet<String> = glue
        .iter()
        .filter(|c| !c.starts_with("split_line_item_"))
        .cloned()
        .collect();
    assert_eq!(
        exported_set, expected,
        "the SAM export's columns and CurGlueTable's differ"
    );
    assert_export_serves_the_plan("sam", &exported_set, &glue);

    let config = &export["DataQuery"]["TableConfigurations"]["COST_AND_USAGE_REPORT"];
    assert_eq!(config["INCLUDE_RESOURCES"].as_str(), Some("TRUE"));
    assert_eq!(
        config["INCLUDE_SPLIT_COST_ALLOCATION_DATA"].as_str(),
        Some("FALSE")
    );
    let output = &export["DestinationConfigurations"]["S3Destination"]["S3OutputConfigurations"];
    assert_eq!(output["Format"].as_str(), Some("PARQUET"));
    assert_eq!(output["Compression"].as_str(), Some("PARQUET"));
    assert_eq!(output["Overwrite"].as_str(), Some("OVERWRITE_REPORT"));
}

/// `kubecur doctor` without flags looks for what the from-zero setups create: the Glue database and
/// table of the Terraform example and of the SAM README's `sam deploy`, the default name prefix of both
/// Terraform modules and the SAM template (table, workgroup, export `<prefix>-cur2`).
#[test]
fn doctor_defaults_are_the_names_the_from_zero_setups_create() {
    use kubecur_shared::deployment::{
        DEFAULT_GLUE_DATABASE, DEFAULT_GLUE_TABLE, DEFAULT_NAME_PREFIX,
    };
    let main = hcl_file("infra/terraform/examples/from-zero/main.tf");
    let kubecur = block(&main, "module", &["kubecur"]);
    assert_eq!(
        string(attribute(kubecur, "glue_database")),
        DEFAULT_GLUE_DATABASE
    );
    assert_eq!(string(attribute(kubecur, "glue_table")), DEFAULT_GLUE_TABLE);
    assert_eq!(
        string(attribute(kubecur, "name_prefix")),
        DEFAULT_NAME_PREFIX
    );
    let billing = block(&main, "module", &["billing"]);
    assert_eq!(
        string(attribute(billing, "name_prefix")),
        DEFAULT_NAME_PREFIX
    );
    for module in ["kubecur", "kubecur-billing"] {
        let variables = hcl_file(&format!("infra/terraform/modules/{module}/variables.tf"));
        let prefix = block(&variables, "variable", &["name_prefix"]);
        assert_eq!(
            string(attribute(prefix, "default")),
            DEFAULT_NAME_PREFIX,
            "{module}"
        );
    }

    let path = repo().join("infra/sam/template.yaml");
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path:?}: {e}"));
    let template: serde_yaml::Value =
        serde_yaml::from_str(&text).unwrap_or_else(|e| panic!("{path:?} is not YAML: {e}"));
    assert_eq!(
        template["Parameters"]["NamePrefix"]["Default"].as_str(),
        Some(DEFAULT_NAME_PREFIX)
    );
    let path = repo().join("infra/sam/README.md");
    let readme = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path:?}: {e}"));
    let names = format!("GlueDatabase={DEFAULT_GLUE_DATABASE} GlueTable={DEFAULT_GLUE_TABLE}");
    assert!(
        readme.contains(&names),
        "infra/sam/README.md's from-zero `sam deploy` should pass {names}"
    );
    assert!(
        readme.contains(&format!("CurPrefix=cur/{DEFAULT_NAME_PREFIX}-cur2/")),
        "infra/sam/README.md's from-zero export should be named {DEFAULT_NAME_PREFIX}-cur2"
    );
}
