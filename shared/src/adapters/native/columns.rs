//! Reading one batch's columns the way the plan types them ([`crate::domain::plan::ColumnKind`]): text
//! as trimmed or exact strings, costs as doubles (blank text is NULL), usage starts as UTC days, tag
//! maps (or JSON objects held as text) by key.
//!
//! Text is never copied per row: [`text_map`] calls its function once per dictionary value (Parquet
//! dictionaries) or once per run of equal values (plain strings), and spreads the results over the rows.

use crate::domain::tags::TagCell;
use arrow_array::cast::AsArray;
use arrow_array::types::{Float64Type, TimestampMillisecondType};
use arrow_array::{Array, ArrayRef, StringArray};
use arrow_schema::{DataType, TimeUnit};
use chrono::Utc;

/// No usage day (NULL or blank).
pub const NO_DAY: i32 = i32::MIN;

/// Why a cell cannot be typed: its row in the batch and what it holds, for a message.
#[derive(Debug)]
pub struct BadCell {
    pub row: usize,
    pub reason: String,
}

/// `f` of every row's text (`None` for NULL), computed once per distinct dictionary value or run of equal
/// values. Columns of other types are read as their text (arrow's cast to Utf8, like SQL's CAST to VARCHAR).
pub fn text_map<T: Clone>(
    array: Option<&ArrayRef>,
    rows: usize,
    f: &mut impl FnMut(Option<&str>) -> T,
) -> Result<Vec<T>, String> {
    let Some(array) = array else {
        return Ok(vec![f(None); rows]);
    };
    match array.data_type() {
        DataType::Null => Ok(vec![f(None); rows]),
        DataType::Utf8 => Ok(runs(array.as_string::<i32>().iter(), rows, f)),
        DataType::LargeUtf8 => Ok(runs(array.as_string::<i64>().iter(), rows, f)),
        DataType::Utf8View => Ok(runs(array.as_string_view().iter(), rows, f)),
        DataType::Dictionary(_, _) => {
            let dictionary = array
                .as_any_dictionary_opt()
                .ok_or_else(|| format!("unexpected dictionary type {}", array.data_type()))?;
            let values = dictionary.values();
            if values.is_empty() {
                // A column NULL throughout (e.g. a tag no line item of a row group has): no key
                // can point anywhere, and arrow's `normalized_keys` asserts on an empty dictionary.
                return Ok(vec![f(None); rows]);
            }
            let null = f(None);
            let keys = dictionary.normalized_keys();
            if values.len() > rows {
                if let Some(value_at) = string_values(values) {
                    // A dictionary larger than the batch (a page's whole dictionary, at high
                    // cardinality): only the values the batch's rows use, each once. Mapping all
                    // of them per batch was most of a full-grain scan over a million pods.
                    let mut mapped: rustc_hash::FxHashMap<usize, T> = Default::default();
                    let mut out = Vec::with_capacity(rows);
                    for row in 0..rows {
                        let key = keys.get(row).copied().filter(|&k| k < values.len());
                        out.push(match key {
                            Some(k) if !array.is_null(row) => {
                                mapped.entry(k).or_insert_with(|| f(value_at(k))).clone()
                            }
                            _ => null.clone(),
                        });
                    }
                    return Ok(out);
                }
            }
            let mapped = text_map(Some(values), values.len(), f)?;
            Ok((0..rows)
                .map(|row| {
                    if array.is_null(row) {
                        null.clone()
                    } else {
                        keys.get(row)
                            .and_then(|&k| mapped.get(k))
                            .cloned()
                            .unwrap_or_else(|| null.clone())
                    }
                })
                .collect())
        }
        other => {
            let text = arrow_cast::cast(array, &DataType::Utf8)
                .map_err(|e| format!("cannot be read as text ({other}: {e})"))?;
            text_map(Some(&text), rows, f)
        }
    }
}

/// The text at a position of a string array (`None` for NULL); `None` for arrays of other types.
fn string_values<'a>(values: &'a ArrayRef) -> Option<Box<dyn Fn(usize) -> Option<&'a str> + 'a>> {
    fn at<'a>(
        values: &'a dyn Array,
        text: impl Fn(usize) -> &'a str + 'a,
    ) -> Box<dyn Fn(usize) -> Option<&'a str> + 'a> {
        Box::new(move |k| (!values.is_null(k)).then(|| text(k)))
    }
    match values.data_type() {
        DataType::Utf8 => {
            let strings = values.as_string::<i32>();
            Some(at(strings, move |k| strings.value(k)))
        }
        DataType::LargeUtf8 => {
            let strings = values.as_string::<i64>();
            Some(at(strings, move |k| strings.value(k)))
        }
        DataType::Utf8View => {
            let strings = values.as_string_view();
            Some(at(strings, move |k| strings.value(k)))
        }
        _ => None,
    }
}

fn runs<'a, T: Clone>(
    values: impl Iterator<Item = Option<&'a str>>,
    rows: usize,
    f: &mut impl FnMut(Option<&str>) -> T,
) -> Vec<T> {
    let mut out = Vec::with_capacity(rows);
    let mut previous: Option<(Option<&'a str>, T)> = None;
    for value in values {
        let result = match &previous {
            Some((seen, result)) if *seen == value => result.clone(),
            _ => {
                let result = f(value);
                previous = Some((value, result.clone()));
                result
            }
        };
        out.push(result);
    }
    out
}

/// The text of one cell, for messages.
pub fn text_at(array: &ArrayRef, row: usize) -> String {
    let one = array.slice(row, 1);
    match arrow_cast::cast(&one, &DataType::Utf8) {
        Ok(text) => {
            let text = text.as_string::<i32>();
            if text.is_null(0) {
                "NULL".into()
            } else {
                text.value(0).to_string()
            }
        }
        Err(_) => format!("a {} value", array.data_type()),
    }
}

/// The trimmed value when it is not NULL or blank.
pub fn nonblank(value: Option<&str>) -> Option<&str> {
    value.map(str::trim).filter(|v| !v.is_empty())
}

/// A cost column as doubles: `values[row]` is meaningful only where `valid[row]`.
pub struct Numbers {
    pub values: Vec<f64>,
    pub valid: Vec<bool>,
}

#[derive(Clone, Copy)]
enum Parsed {
    Null,
    Value(f64),
    Bad,
}

/// A cost column read as SQL's `CAST(NULLIF(TRIM(text), '') AS DOUBLE)` / `CAST(x AS DOUBLE)`: blank text
/// is NULL; text that is not a number is an error naming the cell.
pub fn numbers(array: Option<&ArrayRef>, rows: usize) -> Result<Numbers, BadCell> {
    let Some(array) = array else {
        return Ok(Numbers {
            values: vec![0.0; rows],
            valid: vec![false; rows],
        });
    };
    match array.data_type() {
        DataType::Null => Ok(Numbers {
            values: vec![0.0; rows],
            valid: vec![false; rows],
        }),
        DataType::Float64 => {
            let floats = array.as_primitive::<Float64Type>();
            Ok(Numbers {
                values: floats.values().to_vec(),
                valid: (0..rows).map(|row| floats.is_valid(row)).collect(),
            })
        }
        DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View | DataType::Dictionary(_, _) => {
            let parsed = text_map(
                Some(array),
                rows,
                &mut |value: Option<&str>| match nonblank(value) {
                    None => Parsed::Null,
                    Some(text) => match <Float64Type as arrow_cast::parse::Parser>::parse(text) {
                        Some(v) => Parsed::Value(v),
                        None => Parsed::Bad,
                    },
                },
            )
            .map_err(|reason| BadCell { row: 0, reason })?;
            let mut values = Vec::with_capacity(rows);
            let mut valid = Vec::with_capacity(rows);
            for (row, parsed) in parsed.into_iter().enumerate() {
                match parsed {
                    Parsed::Null => {
                        values.push(0.0);
                        valid.push(false);
                    }
                    Parsed::Value(v) => {
                        values.push(v);
                        valid.push(true);
                    }
                    Parsed::Bad => {
                        return Err(BadCell {
                            row,
                            reason: format!("`{}` is not a number", text_at(array, row)),
                        })
                    }
                }
            }
            Ok(Numbers { values, valid })
        }
        other => {
            let cast = arrow_cast::cast(array, &DataType::Float64).map_err(|e| BadCell {
                row: 0,
                reason: format!("a {other} column cannot be read as a number ({e})"),
            })?;
            numbers(Some(&cast), rows)
        }
    }
}

fn days_from(value: i64, per_day: i64) -> i32 {
    i32::try_from(value.div_euclid(per_day)).unwrap_or(NO_DAY)
}

const MILLIS_PER_DAY: i64 = 86_400_000;

/// The UTC day (days since 1970-01-01) of each usage start, [`NO_DAY`] for NULL or blank: SQL's
/// `CAST(CAST(NULLIF(TRIM(x), '') AS TIMESTAMP) AS DATE)`. Text that is no timestamp is an error.
pub fn days(array: Option<&ArrayRef>, rows: usize) -> Result<Vec<i32>, BadCell> {
    let Some(array) = array else {
        return Ok(vec![NO_DAY; rows]);
    };
    let per_day = |unit: &TimeUnit| match unit {
        TimeUnit::Second => 86_400,
        TimeUnit::Millisecond => MILLIS_PER_DAY,
        TimeUnit::Microsecond => MILLIS_PER_DAY * 1_000,
        TimeUnit::Nanosecond => MILLIS_PER_DAY * 1_000_000,
    };
    let from_i64 = |values: &[i64], per_day: i64| -> Vec<i32> {
        values
            .iter()
            .enumerate()
            .map(|(row, v)| {
                if array.is_valid(row) {
                    days_from(*v, per_day)
                } else {
                    NO_DAY
                }
            })
            .collect()
    };
    match array.data_type() {
        DataType::Null => Ok(vec![NO_DAY; rows]),
        DataType::Timestamp(unit, _) => {
            // Every unit counts since the epoch in an i64; only the units per day differ.
            let values: &[i64] = match unit {
                TimeUnit::Second => &array
                    .as_primitive::<arrow_array::types::TimestampSecondType>()
                    .values()[..],
                TimeUnit::Millisecond => {
                    &array.as_primitive::<TimestampMillisecondType>().values()[..]
                }
                TimeUnit::Microsecond => &array
                    .as_primitive::<arrow_array::types::TimestampMicrosecondType>()
                    .values()[..],
                TimeUnit::Nanosecond => &array
                    .as_primitive::<arrow_array::types::TimestampNanosecondType>()
                    .values()[..],
            };
            Ok(from_i64(values, per_day(unit)))
        }
        DataType::Date32 => {
            let dates = array.as_primitive::<arrow_array::types::Date32Type>();
            Ok((0..rows)
                .map(|row| {
                    if dates.is_valid(row) {
                        dates.value(row)
                    } else {
                        NO_DAY
                    }
                })
                .collect())
        }
        DataType::Date64 => Ok(from_i64(
            &array
                .as_primitive::<arrow_array::types::Date64Type>()
                .values()[..],
            MILLIS_PER_DAY,
        )),
        DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View | DataType::Dictionary(_, _) => {
            const BAD: i32 = i32::MIN + 1;
            let parsed = text_map(
                Some(array),
                rows,
                &mut |value: Option<&str>| match nonblank(value) {
                    None => NO_DAY,
                    Some(text) => match arrow_cast::parse::string_to_datetime(&Utc, text) {
                        Ok(at) => days_from(at.naive_utc().and_utc().timestamp(), 86_400),
                        Err(_) => BAD,
                    },
                },
            )
            .map_err(|reason| BadCell { row: 0, reason })?;
            match parsed.iter().position(|d| *d == BAD) {
                Some(row) => Err(BadCell {
                    row,
                    reason: format!("`{}` is not a timestamp", text_at(array, row)),
                }),
                None => Ok(parsed),
            }
        }
        other => {
            let cast = arrow_cast::cast(array, &DataType::Timestamp(TimeUnit::Millisecond, None))
                .map_err(|e| BadCell {
                row: 0,
                reason: format!("a {other} column cannot be read as a timestamp ({e})"),
            })?;
            days(Some(&cast), rows)
        }
    }
}

/// The values of `keys` in one tag column (a map, or JSON objects held as text), each row's value passed
/// through `intern` (0 when absent, NULL or blank), and which rows' cells could not be read
/// ([`TagCell::Unreadable`]; always false for a NULL map or a missing column).
pub struct TagLookup {
    /// One per key, one id per row.
    pub ids: Vec<Vec<u32>>,
    pub unreadable: Vec<bool>,
}

/// Looks `keys` up in `array` as `kubecur_tag` and `kubecur_unreadable_tags` do.
pub fn lookup_tags(
    array: Option<&ArrayRef>,
    rows: usize,
    keys: &[&str],
    intern: &mut impl FnMut(&str) -> u32,
) -> TagLookup {
    let absent = || TagLookup {
        ids: vec![vec![0; rows]; keys.len()],
        unreadable: vec![false; rows],
    };
    let Some(array) = array else {
        return absent();
    };
    let mut id_of = |value: Option<&str>| nonblank(value).map_or(0, &mut *intern);
    match array.data_type() {
        DataType::Null => absent(),
        DataType::Map(..) => {
            let maps = array.as_map();
            let text = |a: &ArrayRef| -> Option<StringArray> {
                let cast = arrow_cast::cast(a, &DataType::Utf8).ok()?;
                Some(cast.as_string::<i32>().clone())
            };
            let (Some(names), Some(values)) = (text(maps.keys()), text(maps.values())) else {
                // A map whose keys or values are not text: every present cell is unreadable.
                let mut out = absent();
                for (row, mark) in out.unreadable.iter_mut().enumerate() {
                    *mark = array.is_valid(row);
                }
                return out;
            };
            let offsets = maps.value_offsets();
            let mut out = absent();
            for row in 0..rows {
                if maps.is_null(row) {
                    continue;
                }
                let (start, end) = (offsets[row] as usize, offsets[row + 1] as usize);
                for (k, key) in keys.iter().enumerate() {
                    let found = (start..end)
                        .find(|&entry| names.is_valid(entry) && names.value(entry) == *key);
                    if let Some(entry) = found {
                        if values.is_valid(entry) {
                            out.ids[k][row] = id_of(Some(values.value(entry)));
                        }
                    }
                }
            }
            out
        }
        DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View | DataType::Dictionary(_, _) => {
            // One parse per distinct cell (cells repeat: the same resource's tags on every line item).
            let mut parsed: Vec<(bool, Vec<u32>)> = Vec::new();
            let mut seen: std::collections::HashMap<String, u32> = std::collections::HashMap::new();
            let cells = text_map(Some(array), rows, &mut |value: Option<&str>| {
                let text = value.unwrap_or("");
                if let Some(&index) = seen.get(text) {
                    return index;
                }
                let cell = TagCell::read(value);
                let ids = keys.iter().map(|k| id_of(cell.get(k).as_deref())).collect();
                parsed.push((cell.is_unreadable(), ids));
                let index = (parsed.len() - 1) as u32;
                seen.insert(text.to_string(), index);
                index
            });
            let Ok(cells) = cells else {
                return absent();
            };
            let mut out = absent();
            for (row, &index) in cells.iter().enumerate() {
                if let Some((unreadable, ids)) = parsed.get(index as usize) {
                    out.unreadable[row] = *unreadable;
                    for (k, id) in ids.iter().enumerate() {
                        out.ids[k][row] = *id;
                    }
                }
            }
            out
        }
        // Neither a map nor text (a list, a struct …): no cell can be read.
        _ => {
            let mut out = absent();
            for (row, mark) in out.unreadable.iter_mut().enumerate() {
                *mark = array.is_valid(row);
            }
            out
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow_array::{DictionaryArray, Float64Array, Int32Array, TimestampMillisecondArray};
    use std::sync::Arc;

    #[test]
    fn a_dictionary_without_values_is_null_in_every_row() {
        let keys = Int32Array::from(vec![None::<i32>; 3]);
        let values: ArrayRef = Arc::new(arrow_array::StringArray::from(Vec::<&str>::new()));
        let dictionary = DictionaryArray::try_new(keys, values).expect("valid dictionary");
        let array: ArrayRef = Arc::new(dictionary);
        let mapped = text_map(Some(&array), 3, &mut |v| v.map(str::to_string)).expect("readable");
        assert_eq!(mapped, vec![None, None, None]);
    }

    #[test]
    fn dictionaries_are_mapped_once_per_value() {
        let dictionary: DictionaryArray<arrow_array::types::Int32Type> =
            vec![Some("a"), Some(" a "), None, Some("a"), Some("b")]
                .into_iter()
                .collect();
        let array: ArrayRef = Arc::new(dictionary);
        let mut calls = 0;
        let out = text_map(Some(&array), 5, &mut |v: Option<&str>| {
            calls += 1;
            nonblank(v).map(str::to_string)
        })
        .expect("text");
        assert_eq!(
            out,
            [Some("a"), Some("a"), None, Some("a"), Some("b")].map(|v| v.map(str::to_string))
        );
        // Three dictionary values and the NULL, not five rows.
        assert_eq!(calls, 4);
    }

    /// A batch of a page with a large dictionary (high cardinality: a page's dictionary holds far more
    /// values than a batch has rows) maps only the values its rows use, once each: mapping the whole
    /// dictionary per batch was most of a full-grain scan over a million pods.
    #[test]
    fn a_dictionary_larger_than_the_batch_maps_only_the_values_used() {
        let values: ArrayRef = Arc::new(StringArray::from(
            (0..1000)
                .map(|n| Some(format!(" pod-{n} ")))
                .chain([None])
                .collect::<Vec<_>>(),
        ));
        let keys = Int32Array::from(vec![Some(7), Some(7), None, Some(999), Some(1000), Some(7)]);
        let array: ArrayRef =
            Arc::new(DictionaryArray::try_new(keys, values).expect("valid dictionary"));
        let mut calls = 0;
        let out = text_map(Some(&array), 6, &mut |v: Option<&str>| {
            calls += 1;
            nonblank(v).map(str::to_string)
        })
        .expect("text");
        let pod = |n: u32| Some(format!("pod-{n}"));
        assert_eq!(out, vec![pod(7), pod(7), None, pod(999), None, pod(7)]);
        // The NULL, pod-7, pod-999 and the NULL value: not a thousand.
        assert_eq!(calls, 4);
    }

    #[test]
    fn blank_text_costs_are_null_and_junk_is_an_error_naming_the_cell() {
        let array: ArrayRef = Arc::new(StringArray::from(vec![
            Some(" 1.5 "),
            Some("   "),
            None,
            Some("-2e3"),
        ]));
        let read = numbers(Some(&array), 4).expect("numbers");
        assert_eq!(read.valid, [true, false, false, true]);
        assert_eq!((read.values[0], read.values[3]), (1.5, -2000.0));
        let junk: ArrayRef = Arc::new(StringArray::from(vec!["1", "twelve"]));
        let bad = numbers(Some(&junk), 2).err().expect("twelve is no number");
        assert_eq!(bad.row, 1);
        assert!(bad.reason.contains("twelve"), "{}", bad.reason);
        // Non-finite values are read (and refused later, with the file and column).
        let nan: ArrayRef = Arc::new(StringArray::from(vec!["NaN", "inf", "1e400"]));
        let read = numbers(Some(&nan), 3).expect("numbers");
        assert!(
            read.values[0].is_nan() && read.values[1].is_infinite() && read.values[2].is_infinite()
        );
        let ints: ArrayRef = Arc::new(Int32Array::from(vec![Some(3), None]));
        let read = numbers(Some(&ints), 2).expect("cast");
        assert_eq!((read.values[0], read.valid[1]), (3.0, false));
        let floats: ArrayRef = Arc::new(Float64Array::from(vec![Some(0.25), None]));
        assert_eq!(numbers(Some(&floats), 2).expect("f64").valid, [true, false]);
        assert_eq!(numbers(None, 2).expect("missing").valid, [false, false]);
    }

    #[test]
    fn usage_days_are_utc_from_timestamps_and_text() {
        let june_first = 19_875; // 2024-06-01
        let millis: ArrayRef = Arc::new(TimestampMillisecondArray::from(vec![
            Some(1_717_200_000_000),
            Some(1_717_200_000_000 - 1),
            None,
        ]));
        assert_eq!(
            days(Some(&millis), 3).expect("days"),
            [june_first, june_first - 1, NO_DAY]
        );
        let text: ArrayRef = Arc::new(StringArray::from(vec![
            Some("2024-06-01T00:00:00Z"),
            Some(" 2024-06-01T23:59:59.999Z "),
            Some("2024-06-01T01:00:00+02:00"),
            Some(""),
        ]));
        assert_eq!(
            days(Some(&text), 4).expect("days"),
            [june_first, june_first, june_first - 1, NO_DAY]
        );
        let junk: ArrayRef = Arc::new(StringArray::from(vec!["2024-06-01", "yesterday"]));
        let bad = days(Some(&junk), 2).expect_err("not a timestamp");
        assert_eq!(bad.row, 1);
        assert!(bad.reason.contains("yesterday"));
    }

    #[test]
    fn json_tags_are_looked_up_and_unreadable_cells_marked() {
        let array: ArrayRef = Arc::new(StringArray::from(vec![
            Some(r#"{"k":" v "}"#),
            Some("NULL"),
            None,
            Some(""),
            Some(r#"{"k":"  "}"#),
            Some(r#"{"k":"v"}"#),
        ]));
        let mut strings: Vec<String> = Vec::new();
        let mut intern = |s: &str| match strings.iter().position(|known| known == s) {
            Some(at) => at as u32 + 1,
            None => {
                strings.push(s.to_string());
                strings.len() as u32
            }
        };
        let found = lookup_tags(Some(&array), 6, &["k"], &mut intern);
        assert_eq!(found.unreadable, [false, true, false, false, false, false]);
        let ids = &found.ids[0];
        assert!(ids[0] != 0 && ids[0] == ids[5], "{ids:?}");
        assert_eq!(&ids[1..5], [0, 0, 0, 0]);
        assert_eq!(strings, ["v"]);
    }
}
