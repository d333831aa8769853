//! Native functions the DataFusion dialect renders (names in `domain::sql`):
//!
//! - `kubecur_tag(tags, key)`: the value of `key` in a map column (CUR 2.0 `resource_tags`, FOCUS `Tags`
//!   in Parquet) or in a JSON object held as text (the same columns in CSV exports). NULL when absent.
//!   DataFusion's own `element_at` on maps returns a list, and it has no JSON functions without extra crates.
//! - `kubecur_first_nonblank(value, …, fallback)` and `kubecur_nonblank(value)`: tag coalescing in one pass.
//! - `kubecur_unreadable_tags(tags, …)`: 1 when a tag cell cannot be read ([`TagCell::Unreadable`]).
//!   Such a cell reads as no tags in `kubecur_tag`: counted, never fatal.
//! - `kubecur_resource_hash(id)`: a resource id's 64-bit hash as 16 hex digits
//!   ([`crate::domain::resources::resource_hash`]), NULL for a NULL or blank id.
//! - `kubecur_cost('<Expr JSON>', column, …)`: the domain's cost expression evaluated column-wise. A cost
//!   cell that is not plausible ([`is_plausible_cost`]: NaN, ±infinity, beyond ±1e15) fails the query
//!   with an [`ImplausibleCost`] error, which the engine turns into one naming the file, row and column.
//!
//! They exist for speed (docs/local-engine.md#native-functions; BENCHMARKS.md): DataFusion turns
//! COALESCE into CASE and runs CASE chains over strings branch by branch, copying strings each
//! time.

use crate::domain::expr::{is_plausible_cost, Expr, MAX_COST_MAGNITUDE};
use crate::domain::tags::TagCell;
use datafusion::arrow::array::{
    Array, ArrayRef, AsArray, Float64Array, Int64Array, StringArray, StringBuilder,
};
use datafusion::arrow::compute::cast;
use datafusion::arrow::datatypes::DataType;
use datafusion::common::{exec_err, DataFusionError, Result, ScalarValue};
use datafusion::logical_expr::{
    ColumnarValue, ScalarFunctionArgs, ScalarUDF, ScalarUDFImpl, Signature, Volatility,
};
use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock};

#[derive(Debug, PartialEq, Eq, Hash)]
struct TagLookup {
    signature: Signature,
}

/// Every kubecur function, to register on a session.
pub fn all() -> Vec<ScalarUDF> {
    vec![
        ScalarUDF::new_from_impl(TagLookup {
            signature: Signature::any(2, Volatility::Immutable),
        }),
        ScalarUDF::new_from_impl(FirstNonBlank {
            signature: Signature::variadic_any(Volatility::Immutable),
        }),
        ScalarUDF::new_from_impl(NonBlank {
            signature: Signature::any(1, Volatility::Immutable),
        }),
        ScalarUDF::new_from_impl(UnreadableTags {
            signature: Signature::variadic_any(Volatility::Immutable),
        }),
        ScalarUDF::new_from_impl(ResourceHash {
            signature: Signature::any(1, Volatility::Immutable),
        }),
        ScalarUDF::new_from_impl(Cost {
            signature: Signature::variadic_any(Volatility::Immutable),
        }),
    ]
}

fn as_utf8(array: &ArrayRef) -> Result<StringArray> {
    let converted = if array.data_type() == &DataType::Utf8 {
        array.clone()
    } else {
        cast(array, &DataType::Utf8)?
    };
    Ok(converted.as_string::<i32>().clone())
}

/// The keys and values of a map column as text, or `None` when they cannot be text (a map of the wrong
/// type, e.g. `map<string, struct>`): then every cell of the column is unreadable.
fn map_texts(array: &ArrayRef) -> Option<(StringArray, StringArray)> {
    let maps = array.as_map();
    Some((as_utf8(maps.keys()).ok()?, as_utf8(maps.values()).ok()?))
}

fn lookup_in_maps(array: &ArrayRef, key: &str) -> Result<ArrayRef> {
    let maps = array.as_map();
    let Some((keys, values)) = map_texts(array) else {
        return Ok(Arc::new(StringArray::new_null(array.len())));
    };
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
        // Blank and unreadable cells are no tags (unreadable ones are counted by UnreadableTags).
        let cell = TagCell::read(texts.is_valid(row).then(|| texts.value(row)));
        out.append_option(cell.get(key));
    }
    Ok(Arc::new(out.finish()))
}

impl ScalarUDFImpl for TagLookup {
    fn name(&self) -> &str {
        crate::domain::sql::LOCAL_TAG_FUNCTION
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
            // Neither a map nor text (a list, a struct …): no cell can be read; counted as unreadable.
            _ => Arc::new(StringArray::new_null(array.len())),
        };
        Ok(ColumnarValue::Array(result))
    }
}

/// 1 for each row where any of the given tag columns holds a cell that cannot be read.
#[derive(Debug, PartialEq, Eq, Hash)]
struct UnreadableTags {
    signature: Signature,
}

/// Marks the rows of one tag column whose cell cannot be read.
fn mark_unreadable(array: &ArrayRef, marks: &mut [bool]) -> Result<()> {
    match array.data_type() {
        DataType::Null => {}
        DataType::Map(..) => {
            if map_texts(array).is_none() {
                for (row, mark) in marks.iter_mut().enumerate() {
                    *mark |= array.is_valid(row);
                }
            }
        }
        DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View => {
            let texts = as_utf8(array)?;
            for (row, mark) in marks.iter_mut().enumerate() {
                if !*mark && texts.is_valid(row) {
                    *mark = TagCell::read(Some(texts.value(row))).is_unreadable();
                }
            }
        }
        _ => {
            for (row, mark) in marks.iter_mut().enumerate() {
                *mark |= array.is_valid(row);
            }
        }
    }
    Ok(())
}

impl ScalarUDFImpl for UnreadableTags {
    fn name(&self) -> &str {
        crate::domain::sql::LOCAL_UNREADABLE_TAGS_FUNCTION
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, _arg_types: &[DataType]) -> Result<DataType> {
        Ok(DataType::Int64)
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        let rows = args.number_rows;
        let mut marks = vec![false; rows];
        for arg in &args.args {
            mark_unreadable(&arg.clone().into_array(rows)?, &mut marks)?;
        }
        let out = Int64Array::from_iter_values(marks.into_iter().map(i64::from));
        Ok(ColumnarValue::Array(Arc::new(out)))
    }
}

/// A resource id's hash as the allocation query aggregates it (see `domain::resources`).
#[derive(Debug, PartialEq, Eq, Hash)]
struct ResourceHash {
    signature: Signature,
}

impl ScalarUDFImpl for ResourceHash {
    fn name(&self) -> &str {
        crate::domain::sql::LOCAL_RESOURCE_HASH_FUNCTION
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, _arg_types: &[DataType]) -> Result<DataType> {
        Ok(DataType::Utf8)
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        let rows = args.number_rows;
        let Some(arg) = args.args.first() else {
            return exec_err!("kubecur_resource_hash needs a resource id");
        };
        let array = arg.clone().into_array(rows)?;
        if array.data_type() == &DataType::Null {
            return Ok(ColumnarValue::Array(Arc::new(StringArray::new_null(rows))));
        }
        let ids = as_utf8(&array)?;
        const DIGITS: &[u8; 16] = b"0123456789abcdef";
        let mut out = StringBuilder::with_capacity(rows, rows * 16);
        // One line item per row: the 16 digits are written in place, no string per row.
        let mut digits = [0u8; 16];
        for row in 0..rows {
            match ids
                .is_valid(row)
                .then(|| crate::domain::resources::resource_hash(ids.value(row)))
                .flatten()
            {
                Some(hash) => {
                    for (i, digit) in digits.iter_mut().enumerate() {
                        *digit = DIGITS[((hash >> (60 - 4 * i)) & 0xf) as usize];
                    }
                    // ASCII hex digits are always UTF-8.
                    out.append_value(std::str::from_utf8(&digits).unwrap_or_default());
                }
                None => out.append_null(),
            }
        }
        Ok(ColumnarValue::Array(Arc::new(out.finish())))
    }
}

/// A cost cell kubecur refuses to add up (see [`is_plausible_cost`]): the canonical column and the value
/// as read. The engine locates the file and row (Parquet: row group) before reporting it.
#[derive(Debug, Clone, PartialEq)]
pub struct ImplausibleCost {
    pub column: String,
    pub value: f64,
}

impl std::fmt::Display for ImplausibleCost {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "cost column `{}` holds {}, which is not a finite amount within ±{MAX_COST_MAGNITUDE:e}",
            self.column, self.value
        )
    }
}

impl std::error::Error for ImplausibleCost {}

/// The [`ImplausibleCost`] anywhere in a query error's chain.
pub fn implausible_cost(error: &DataFusionError) -> Option<ImplausibleCost> {
    let mut current: Option<&(dyn std::error::Error + 'static)> = Some(error);
    while let Some(level) = current {
        if let Some(found) = level.downcast_ref::<ImplausibleCost>() {
            return Some(found.clone());
        }
        current = level.source();
    }
    None
}

/// The first value of `array` that is not a plausible cost.
pub fn first_implausible(array: &Float64Array) -> Option<(usize, f64)> {
    let values = array.values();
    if array.null_count() == 0 {
        // The common case: one tight pass over the values.
        if values.iter().all(|v| is_plausible_cost(*v)) {
            return None;
        }
        return values
            .iter()
            .position(|v| !is_plausible_cost(*v))
            .map(|row| (row, values[row]));
    }
    (0..array.len())
        .find(|&row| array.is_valid(row) && !is_plausible_cost(values[row]))
        .map(|row| (row, values[row]))
}

fn text_arrays(args: &[ColumnarValue], rows: usize) -> Result<Vec<StringArray>> {
    args.iter()
        .map(|arg| {
            let array = arg.clone().into_array(rows)?;
            if array.data_type() == &DataType::Null {
                Ok(StringArray::new_null(rows))
            } else {
                as_utf8(&array)
            }
        })
        .collect()
}

/// The trimmed value at `row` if it is not NULL or blank.
fn nonblank(array: &StringArray, row: usize) -> Option<&str> {
    if array.is_null(row) {
        return None;
    }
    let value = array.value(row).trim();
    (!value.is_empty()).then_some(value)
}

#[derive(Debug, PartialEq, Eq, Hash)]
struct FirstNonBlank {
    signature: Signature,
}

impl ScalarUDFImpl for FirstNonBlank {
    fn name(&self) -> &str {
        crate::domain::sql::LOCAL_FIRST_NONBLANK_FUNCTION
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, _arg_types: &[DataType]) -> Result<DataType> {
        Ok(DataType::Utf8)
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        let Some((fallback, sources)) = args.args.split_last() else {
            return exec_err!("kubecur_first_nonblank needs at least a fallback");
        };
        let fallback = match fallback {
            ColumnarValue::Scalar(
                ScalarValue::Utf8(v) | ScalarValue::LargeUtf8(v) | ScalarValue::Utf8View(v),
            ) => v.clone(),
            ColumnarValue::Scalar(ScalarValue::Null) => None,
            other => {
                return exec_err!(
                "kubecur_first_nonblank's fallback must be a text literal or NULL, got {other:?}"
            )
            }
        };
        let rows = args.number_rows;
        let sources = text_arrays(sources, rows)?;
        let mut out = StringBuilder::with_capacity(rows, rows * 12);
        for row in 0..rows {
            match sources.iter().find_map(|s| nonblank(s, row)) {
                Some(value) => out.append_value(value),
                None => out.append_option(fallback.as_deref()),
            }
        }
        Ok(ColumnarValue::Array(Arc::new(out.finish())))
    }
}

#[derive(Debug, PartialEq, Eq, Hash)]
struct NonBlank {
    signature: Signature,
}

impl ScalarUDFImpl for NonBlank {
    fn name(&self) -> &str {
        crate::domain::sql::LOCAL_NONBLANK_FUNCTION
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, _arg_types: &[DataType]) -> Result<DataType> {
        Ok(DataType::Int64)
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        let rows = args.number_rows;
        let values = text_arrays(&args.args, rows)?;
        let Some(values) = values.first() else {
            return exec_err!("kubecur_nonblank takes one argument");
        };
        let out = Int64Array::from_iter_values(
            (0..rows).map(|row| i64::from(nonblank(values, row).is_some())),
        );
        Ok(ColumnarValue::Array(Arc::new(out)))
    }
}

#[derive(Debug, PartialEq, Eq, Hash)]
struct Cost {
    signature: Signature,
}

/// Parsed cost expressions by their JSON text: a query evaluates the same four for every batch.
fn parsed(json: &str) -> Result<Arc<Expr>> {
    static CACHE: OnceLock<Mutex<HashMap<String, Arc<Expr>>>> = OnceLock::new();
    let cache = CACHE.get_or_init(|| Mutex::new(HashMap::new()));
    let mut cache = match cache.lock() {
        Ok(guard) => guard,
        Err(poisoned) => poisoned.into_inner(),
    };
    if let Some(expr) = cache.get(json) {
        return Ok(expr.clone());
    }
    let expr: Expr = match serde_json::from_str(json) {
        Ok(expr) => expr,
        Err(error) => return exec_err!("kubecur_cost got an invalid expression ({error})"),
    };
    let expr = Arc::new(expr);
    cache.insert(json.to_string(), expr.clone());
    Ok(expr)
}

/// The columns of one batch, by name.
struct Columns {
    numbers: HashMap<String, Float64Array>,
    texts: HashMap<String, StringArray>,
    rows: usize,
}

impl Columns {
    fn number(&self, name: &str) -> Result<&Float64Array> {
        match self.numbers.get(name) {
            Some(array) => Ok(array),
            None => exec_err!("kubecur_cost: column `{name}` was not passed"),
        }
    }

    fn text(&self, name: &str) -> Result<&StringArray> {
        match self.texts.get(name) {
            Some(array) => Ok(array),
            None => exec_err!("kubecur_cost: column `{name}` was not passed"),
        }
    }
}

/// Evaluates `expr` for every row, with SQL's semantics (the same as [`Expr::eval`]).
fn evaluate(expr: &Expr, columns: &Columns) -> Result<Vec<f64>> {
    let rows = columns.rows;
    Ok(match expr {
        Expr::Zero => vec![0.0; rows],
        Expr::Cost(names) => {
            let mut out = vec![0.0; rows];
            let mut filled = vec![false; rows];
            for name in names {
                let array = columns.number(name)?;
                for row in 0..rows {
                    if !filled[row] && array.is_valid(row) {
                        out[row] = array.value(row);
                        filled[row] = true;
                    }
                }
            }
            out
        }
        Expr::Add(parts) => {
            let mut out = vec![0.0; rows];
            for part in parts {
                for (slot, value) in out.iter_mut().zip(evaluate(part, columns)?) {
                    *slot += value;
                }
            }
            out
        }
        Expr::Sub(left, right) => {
            let mut out = evaluate(left, columns)?;
            for (slot, value) in out.iter_mut().zip(evaluate(right, columns)?) {
                *slot -= value;
            }
            out
        }
        Expr::ByLineItemType {
            type_column,
            branches,
            otherwise,
        } => {
            let types = columns.text(type_column)?;
            let required = branches
                .iter()
                .map(|b| {
                    b.requires_non_empty
                        .as_deref()
                        .map(|c| columns.text(c))
                        .transpose()
                })
                .collect::<Result<Vec<_>>>()?;
            let otherwise_index = branches.len();
            let choice: Vec<usize> = (0..rows)
                .map(|row| {
                    if types.is_null(row) {
                        return otherwise_index;
                    }
                    let line_item_type = types.value(row);
                    branches
                        .iter()
                        .zip(&required)
                        .position(|(branch, required)| {
                            branch.types.iter().any(|t| t == line_item_type)
                                && required.is_none_or(|column| {
                                    column.is_valid(row) && !column.value(row).is_empty()
                                })
                        })
                        .unwrap_or(otherwise_index)
                })
                .collect();
            let mut used = vec![false; branches.len() + 1];
            for &c in &choice {
                used[c] = true;
            }
            let mut values: Vec<Option<Vec<f64>>> = Vec::with_capacity(branches.len() + 1);
            for (index, then) in branches
                .iter()
                .map(|b| &b.then)
                .chain([otherwise.as_ref()])
                .enumerate()
            {
                values.push(if used[index] {
                    Some(evaluate(then, columns)?)
                } else {
                    None
                });
            }
            choice
                .iter()
                .enumerate()
                .map(|(row, &c)| values[c].as_ref().map_or(0.0, |v| v[row]))
                .collect()
        }
    })
}

impl ScalarUDFImpl for Cost {
    fn name(&self) -> &str {
        crate::domain::sql::LOCAL_COST_FUNCTION
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, _arg_types: &[DataType]) -> Result<DataType> {
        Ok(DataType::Float64)
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        let Some((json, values)) = args.args.split_first() else {
            return exec_err!("kubecur_cost needs an expression");
        };
        let expr = match json {
            ColumnarValue::Scalar(
                ScalarValue::Utf8(Some(text))
                | ScalarValue::LargeUtf8(Some(text))
                | ScalarValue::Utf8View(Some(text)),
            ) => parsed(text)?,
            other => {
                return exec_err!("kubecur_cost's expression must be a text literal, got {other:?}")
            }
        };
        let names = expr.columns();
        if names.len() != values.len() {
            return exec_err!(
                "kubecur_cost: the expression reads {} columns, {} were passed",
                names.len(),
                values.len()
            );
        }
        let rows = args.number_rows;
        let cost_names = expr.cost_columns();
        let mut columns = Columns {
            numbers: HashMap::new(),
            texts: HashMap::new(),
            rows,
        };
        for (name, value) in names.into_iter().zip(values) {
            let array = value.clone().into_array(rows)?;
            if cost_names.contains(&name) {
                let numbers = if array.data_type() == &DataType::Float64 {
                    array
                } else {
                    cast(&array, &DataType::Float64)?
                };
                let numbers = numbers
                    .as_primitive::<datafusion::arrow::datatypes::Float64Type>()
                    .clone();
                // NaN, infinities and absurd figures never reach a sum (one cheap pass per column).
                if let Some((_, value)) = first_implausible(&numbers) {
                    return Err(DataFusionError::External(Box::new(ImplausibleCost {
                        column: name,
                        value,
                    })));
                }
                columns.numbers.insert(name, numbers);
            } else {
                columns.texts.insert(
                    name,
                    if array.data_type() == &DataType::Null {
                        StringArray::new_null(rows)
                    } else {
                        as_utf8(&array)?
                    },
                );
            }
        }
        let values = evaluate(&expr, &columns)?;
        Ok(ColumnarValue::Array(Arc::new(Float64Array::from(values))))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use datafusion::arrow::array::MapBuilder;

    #[tokio::test]
    async fn resource_hashes_are_md5s_first_16_hex_digits_of_the_trimmed_id() -> Result<()> {
        let ctx = datafusion::prelude::SessionContext::new();
        for function in all() {
            ctx.register_udf(function);
        }
        let batches = ctx
            .sql("SELECT kubecur_resource_hash(id) AS h FROM (VALUES ('abc'), (' abc '), ('  '), (NULL)) AS t(id)")
            .await?
            .collect()
            .await?;
        let hashes = batches[0].column(0).as_string::<i32>();
        // MD5("abc") = 900150983cd24fb0d6963f7d28e17f72 (RFC 1321, appendix A.5).
        assert_eq!(
            (0..4)
                .map(|i| hashes.is_valid(i).then(|| hashes.value(i)))
                .collect::<Vec<_>>(),
            vec![
                Some("900150983cd24fb0"),
                Some("900150983cd24fb0"),
                None,
                None
            ]
        );
        Ok(())
    }

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
    fn unreadable_json_cells_are_no_tags_and_counted() -> Result<()> {
        let json: ArrayRef = Arc::new(StringArray::from(vec![
            Some("{not json"),
            Some("NULL"),
            Some(r#"{"k":"v"}"#),
            None,
            Some(""),
        ]));
        let found = lookup_in_json(&json, "k")?;
        let found = found.as_string::<i32>();
        assert_eq!(
            (0..5).map(|i| found.is_valid(i)).collect::<Vec<_>>(),
            [false, false, true, false, false]
        );
        let mut marks = vec![false; 5];
        mark_unreadable(&json, &mut marks)?;
        assert_eq!(marks, [true, true, false, false, false]);
        Ok(())
    }

    #[test]
    fn implausible_costs_are_found_with_and_without_nulls() {
        let clean = Float64Array::from(vec![1.0, -2.5, 1e15]);
        assert_eq!(first_implausible(&clean), None);
        let nan = Float64Array::from(vec![1.0, f64::NAN]);
        assert_eq!(first_implausible(&nan).map(|(row, _)| row), Some(1));
        let with_nulls = Float64Array::from(vec![None, Some(2.0), Some(f64::NEG_INFINITY)]);
        assert_eq!(first_implausible(&with_nulls), Some((2, f64::NEG_INFINITY)));
        let huge = Float64Array::from(vec![Some(1.1e15), None]);
        assert_eq!(first_implausible(&huge), Some((0, 1.1e15)));
    }
}
