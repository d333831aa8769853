//! Test support: checks a JSON value against the subset of JSON Schema (2020-12, as OpenAPI 3.1 uses it)
//! that `openapi.json` is written in: `$ref` to components, `type` (one or a list), `const`, `enum`,
//! `required`, `properties`, `additionalProperties` (false or a schema), `propertyNames` with `enum`,
//! `items`, `minItems`, `minimum`. `pattern` and `format` are left to the schemathesis run in CI
//! (`scripts/check_api_contract.sh`), which validates every response in full.

use serde_json::Value;

/// Every violation of `schema` by `value`, as `path: reason`; empty when it conforms.
pub fn violations(document: &Value, schema: &Value, value: &Value) -> Vec<String> {
    let mut out = Vec::new();
    check(document, schema, value, "$", &mut out);
    out
}

fn resolve<'a>(document: &'a Value, schema: &'a Value) -> &'a Value {
    match schema.get("$ref").and_then(Value::as_str) {
        Some(reference) => resolve(
            document,
            document
                .pointer(reference.trim_start_matches('#'))
                .unwrap_or(&Value::Null),
        ),
        None => schema,
    }
}

fn type_matches(name: &str, value: &Value) -> bool {
    match name {
        "object" => value.is_object(),
        "array" => value.is_array(),
        "string" => value.is_string(),
        "boolean" => value.is_boolean(),
        "null" => value.is_null(),
        "integer" => value.is_i64() || value.is_u64(),
        "number" => value.is_number(),
        _ => false,
    }
}

fn check(document: &Value, schema: &Value, value: &Value, path: &str, out: &mut Vec<String>) {
    let schema = resolve(document, schema);
    if schema.is_null() {
        out.push(format!("{path}: unresolvable schema reference"));
        return;
    }
    if let Some(types) = schema.get("type") {
        let names: Vec<&str> = match types {
            Value::String(one) => vec![one.as_str()],
            Value::Array(many) => many.iter().filter_map(Value::as_str).collect(),
            _ => vec![],
        };
        if !names.iter().any(|n| type_matches(n, value)) {
            out.push(format!("{path}: {value} is not of type {types}"));
            return;
        }
    }
    if let Some(constant) = schema.get("const") {
        if constant != value {
            out.push(format!("{path}: {value} is not {constant}"));
        }
    }
    if let Some(allowed) = schema.get("enum").and_then(Value::as_array) {
        if !allowed.contains(value) {
            out.push(format!("{path}: {value} is not one of {allowed:?}"));
        }
    }
    if let (Some(minimum), Some(number)) = (
        schema.get("minimum").and_then(Value::as_f64),
        value.as_f64(),
    ) {
        if number < minimum {
            out.push(format!("{path}: {number} is below {minimum}"));
        }
    }
    if let Value::Object(fields) = value {
        for name in schema
            .get("required")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .filter_map(Value::as_str)
        {
            if !fields.contains_key(name) {
                out.push(format!("{path}: missing required `{name}`"));
            }
        }
        let properties = schema.get("properties").and_then(Value::as_object);
        for (name, field) in fields {
            let at = format!("{path}.{name}");
            if let Some(names) = schema
                .pointer("/propertyNames/enum")
                .and_then(Value::as_array)
            {
                if !names.iter().any(|n| n == name) {
                    out.push(format!("{at}: property name not one of {names:?}"));
                }
            }
            match properties.and_then(|p| p.get(name)) {
                Some(sub) => check(document, sub, field, &at, out),
                None => match schema.get("additionalProperties") {
                    Some(Value::Bool(false)) => out.push(format!("{at}: not allowed")),
                    Some(sub @ Value::Object(_)) => check(document, sub, field, &at, out),
                    _ => {}
                },
            }
        }
    }
    if let Value::Array(items) = value {
        if let Some(minimum) = schema.get("minItems").and_then(Value::as_u64) {
            if (items.len() as u64) < minimum {
                out.push(format!("{path}: fewer than {minimum} items"));
            }
        }
        if let Some(sub) = schema.get("items") {
            for (i, item) in items.iter().enumerate() {
                check(document, sub, item, &format!("{path}[{i}]"), out);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn each_keyword_reports_what_breaks_it() {
        let document =
            json!({ "components": { "schemas": { "N": { "type": "integer", "minimum": 0 } } } });
        let schema = json!({
            "type": "object",
            "required": ["a", "b"],
            "additionalProperties": false,
            "properties": {
                "a": { "$ref": "#/components/schemas/N" },
                "b": { "type": ["string", "null"], "enum": ["x", null] },
                "c": { "type": "array", "minItems": 1, "items": { "const": 1 } },
                "d": { "type": "object", "propertyNames": { "enum": ["k"] } }
            }
        });
        assert!(violations(&document, &schema, &json!({ "a": 1, "b": null, "c": [1] })).is_empty());
        let bad = violations(
            &document,
            &schema,
            &json!({ "a": -1, "c": [2], "d": { "z": 1 }, "e": 0 }),
        );
        for needle in [
            "$.a: -1 is below 0",
            "missing required `b`",
            "$.c[0]: 2 is not 1",
            "$.d.z: property name",
            "$.e: not allowed",
        ] {
            assert!(bad.iter().any(|v| v.contains(needle)), "{needle}: {bad:?}");
        }
        assert_eq!(
            violations(&document, &schema, &json!({ "a": 1, "b": "y", "c": [] })).len(),
            2
        );
    }
}
