//! `kubecur_tag(tags, key)`: the value of `key` in a map column (CUR 2.0 `resource_tags`, FOCUS `Tags`
//! in Parquet) or in a JSON object held as text (the same columns in CSV exports). NULL when absent.
//! DataFusion's own `element_at` on maps returns a list, and it has no JSON functions without extra crates.

use datafusion::arrow::array::{Array, ArrayRef, AsArray, StringArray, StringBuilder};
use datafusion::arrow::compute::cast;
use datafusion::arrow::datatypes::DataType;
use datafusion::common::{exec_err, Result, ScalarValue};
use datafusion::logical_expr::{
    ColumnarValue, ScalarFunctionArgs, ScalarUDF, ScalarUDFImpl, Signature, Volatility,
};
use std::sync::Arc;

#[derive(Debug, PartialEq, Eq, Hash)]
struct TagLookup {
    signature: Signature,
}

/// The UDF, to register on a session.
pub fn tag_lookup_udf() -> ScalarUDF {
    ScalarUDF::new_from_impl(TagLookup {
        signature: Signature::any(2, Volatility::Immutable),
    })
}

fn as_utf8(array: &ArrayRef) -> Result<StringArray> {
    let converted = if array.data_type() == &DataType::Utf8 {
        array.clone()
    } else {
        cast(array, &DataType::Utf8)?
    };
    Ok(converted.as_string::<i32>().clone())
}

fn lookup_in_maps(array: &ArrayRef, key: &str) -> Result<ArrayRef> {
    let maps = array.as_map();
    let keys = as_utf8(maps.keys())?;
    let values = as_utf8(maps.values())?;
    let offsets = maps.value_offsets();
    let mut out = StringBuilder::with_capacity(maps.len(), maps.len() * 8);
    for row in 0..maps.len() {
        if maps.is_null(row) {
            out.append_null();
            continue;
        }
        let (start, end) = (offsets[row] as usize, offsets[row + 1] as usize);
        let found = (start..end).find(|&entry| keys.is_valid(entry) && keys.value(entry) == key);
        match found {
            Some(entry) if values.is_valid(entry) => out.append_value(values.value(entry)),
            _ => out.append_null(),
        }
    }
    Ok(Arc::new(out.finish()))
}

fn lookup_in_json(array: &ArrayRef, key: &str) -> Result<ArrayRef> {
    let texts = as_utf8(array)?;
    let mut out = StringBuilder::with_capacity(texts.len(), texts.len() * 8);
    for row in 0..texts.len() {
        if texts.is_null(row) || texts.value(row).trim().is_empty() {
            out.append_null();
            continue;
        }
        let text = texts.value(row);
        let object: serde_json::Map<String, serde_json::Value> = match serde_json::from_str(text) {
            Ok(object) => object,
            Err(error) => {
                let shown: String = text.chars().take(80).collect();
                return exec_err!("tags value is not a JSON object ({error}): {shown}");
            }
        };
        match object.get(key) {
            None | Some(serde_json::Value::Null) => out.append_null(),
            Some(serde_json::Value::String(value)) => out.append_value(value),
            Some(other) => out.append_value(other.to_string()),
        }
    }
    Ok(Arc::new(out.finish()))
}

impl ScalarUDFImpl for TagLookup {
    fn name(&self) -> &str {
        kubecur_shared_name()
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, _arg_types: &[DataType]) -> Result<DataType> {
        Ok(DataType::Utf8)
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        let [tags, key] = args.args.as_slice() else {
            return exec_err!("kubecur_tag takes two arguments, got {}", args.args.len());
        };
        let key = match key {
            ColumnarValue::Scalar(
                ScalarValue::Utf8(Some(k))
                | ScalarValue::LargeUtf8(Some(k))
                | ScalarValue::Utf8View(Some(k)),
            ) => k.clone(),
            other => return exec_err!("kubecur_tag's key must be a text literal, got {other:?}"),
        };
        let array = tags.clone().into_array(args.number_rows)?;
        let result = match array.data_type() {
            DataType::Map(..) => lookup_in_maps(&array, &key)?,
            DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View => {
                lookup_in_json(&array, &key)?
            }
            DataType::Null => Arc::new(StringArray::new_null(array.len())),
            other => {
                return exec_err!("kubecur_tag reads a map or a JSON text column, got {other}")
            }
        };
        Ok(ColumnarValue::Array(result))
    }
}

fn kubecur_shared_name() -> &'static str {
    crate::domain::sql::LOCAL_TAG_FUNCTION
}

#[cfg(test)]
mod tests {
    use super::*;
    use datafusion::arrow::array::MapBuilder;

    #[test]
    fn finds_keys_in_maps_and_json() -> Result<()> {
        let mut maps = MapBuilder::new(None, StringBuilder::new(), StringBuilder::new());
        maps.keys().append_value("user_kubernetes_namespace");
        maps.values().append_value("payments");
        maps.append(true)?;
        maps.append(true)?;
        maps.append(false)?;
        let maps: ArrayRef = Arc::new(maps.finish());
        let found = lookup_in_maps(&maps, "user_kubernetes_namespace")?;
        let found = found.as_string::<i32>();
        assert_eq!(
            (found.value(0), found.is_null(1), found.is_null(2)),
            ("payments", true, true)
        );

        let json: ArrayRef = Arc::new(StringArray::from(vec![
            Some(r#"{"kubernetes_namespace":"支付","n":3}"#),
            Some(""),
            None,
        ]));
        let found = lookup_in_json(&json, "kubernetes_namespace")?;
        let found = found.as_string::<i32>();
        assert_eq!(
            (found.value(0), found.is_null(1), found.is_null(2)),
            ("支付", true, true)
        );
        Ok(())
    }

    #[test]
    fn malformed_json_is_an_error_naming_the_value() {
        let json: ArrayRef = Arc::new(StringArray::from(vec![Some("{not json")]));
        let err = lookup_in_json(&json, "k")
            .expect_err("malformed")
            .to_string();
        assert!(
            err.contains("not a JSON object") && err.contains("{not json"),
            "{err}"
        );
    }
}
