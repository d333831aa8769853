//! The three output formats of `kubecur allocate`: a readable table, JSON and CSV.

use kubecur_shared::api::{csv_field, group_name, shared_json};
use kubecur_shared::domain::share::SharedSource;
use kubecur_shared::domain::{Allocation, CostMetric, Summary};
use kubecur_shared::service::DisplayAllocation;
use std::io::{self, Write};
use unicode_width::UnicodeWidthStr;

fn money(value: f64) -> String {
    let negative = value < 0.0;
    let cents = (value.abs() * 100.0).round() as u128;
    let (units, fraction) = (cents / 100, cents % 100);
    let digits = units.to_string();
    let mut grouped = String::new();
    for (i, ch) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i) % 3 == 0 {
            grouped.push(',');
        }
        grouped.push(ch);
    }
    format!(
        "{}{grouped}.{fraction:02}",
        if negative && cents > 0 { "-" } else { "" }
    )
}

fn pad(text: &str, width: usize, right: bool) -> String {
    let fill = " ".repeat(width.saturating_sub(text.width()));
    if right {
        format!("{fill}{text}")
    } else {
        format!("{text}{fill}")
    }
}

/// The summary line: total, allocated share, unallocated amount, warnings.
pub fn summary_line(allocation: &Allocation, summary: &Summary) -> String {
    let window = match allocation.window {
        Some(w) => format!("{} to {} (exclusive)", w.from(), w.to()),
        None => "every usage day in the data".to_string(),
    };
    let share = summary
        .allocated_share
        .map_or("n/a".to_string(), |s| format!("{:.1} %", s * 100.0));
    format!(
        "{} {} total {} over {window} ({} line items): allocated {share}, unallocated {}, {} warning{}",
        allocation.flavour,
        summary.metric,
        money(summary.total),
        summary.line_items,
        money(summary.unallocated),
        summary.warnings,
        if summary.warnings == 1 { "" } else { "s" }
    )
}

/// A display row that could not be read back (a temporary file): an output error.
fn unread(error: kubecur_shared::ports::EngineError) -> io::Error {
    io::Error::other(error.to_string())
}

/// The rows whose cells set the table's column widths. A full-grain allocation can have millions of
/// rows: past this many, rows are written as they are read, at the widths these set (a longer cell
/// pushes the rest of its line right), so the table never holds more than this many rows.
const TABLE_MEASURED_ROWS: usize = 100_000;

/// `sources`: what sharing moved (`None` without sharing: no SHARED column, no shared lines). The
/// column widths are those of the first [`TABLE_MEASURED_ROWS`] rows (every row, in any allocation
/// that has fewer); CSV and JSON are written row by row.
pub fn write_table(
    out: &mut impl Write,
    display: DisplayAllocation,
    sources: Option<&[SharedSource]>,
    metric: CostMetric,
) -> io::Result<()> {
    write_table_measuring(out, display, sources, metric, TABLE_MEASURED_ROWS)
}

fn write_table_measuring(
    out: &mut impl Write,
    display: DisplayAllocation,
    sources: Option<&[SharedSource]>,
    metric: CostMetric,
    measured: usize,
) -> io::Result<()> {
    let total = display.totals().get(metric);
    let summary = display.summary(metric);
    let (about, rows) = display.into_parts();
    let allocation = &about;
    let mut header: Vec<String> = allocation
        .group_by
        .iter()
        .map(|d| d.name().to_uppercase())
        .collect();
    header.push(metric.name().to_string());
    if sources.is_some() {
        header.push("SHARED".into());
    }
    header.extend(["SHARE".into(), "RESOURCES".into()]);
    let cells_of = |row: kubecur_shared::domain::AllocationRow| -> Vec<String> {
        let mut cells = row.keys;
        let value = row.costs.get(metric);
        cells.push(money(value));
        if sources.is_some() {
            cells.push(money(row.shared.get(metric)));
        }
        cells.push(if total.abs() > f64::EPSILON {
            format!("{:.1} %", value / total * 100.0)
        } else {
            "-".into()
        });
        cells.push(row.resources.to_string());
        cells
    };
    let mut rows = rows.map(|row| row.map(cells_of).map_err(unread));
    let first = rows
        .by_ref()
        .take(measured)
        .collect::<Result<Vec<_>, _>>()?;
    let widths: Vec<usize> = (0..header.len())
        .map(|i| {
            first
                .iter()
                .map(|r| r[i].width())
                .chain([header[i].width()])
                .max()
                .unwrap_or(0)
        })
        .collect();
    let keys = allocation.group_by.len();
    let line = |cells: &[String]| -> String {
        cells
            .iter()
            .enumerate()
            .map(|(i, c)| pad(c, widths[i], i >= keys))
            .collect::<Vec<_>>()
            .join("  ")
    };
    writeln!(out, "{}", line(&header))?;
    for row in &first {
        writeln!(out, "{}", line(row))?;
    }
    drop(first);
    for row in rows {
        writeln!(out, "{}", line(&row?))?;
    }
    writeln!(out)?;
    writeln!(out, "{}", summary_line(allocation, &summary))?;
    for source in sources.unwrap_or_default() {
        writeln!(
            out,
            "shared by `{}`: {} {metric} from {} line items in {} groups",
            source.rule,
            money(source.costs.get(metric)),
            source.line_items,
            source.groups
        )?;
    }
    Ok(())
}

pub fn write_json(
    out: &mut impl Write,
    display: DisplayAllocation,
    sources: Option<&[SharedSource]>,
    metric: CostMetric,
) -> io::Result<()> {
    let summary = display.summary(metric);
    let (about, rows) = display.into_parts();
    let allocation = &about;
    let document = serde_json::json!({
        "flavour": allocation.flavour,
        "window": allocation.window.map(|w| serde_json::json!({"from": w.from(), "to": w.to()})),
        "aggregate": allocation.group_by,
        "metric": metric,
        "rows": [],
        "summary": summary,
        "shared": sources.unwrap_or_default().iter().map(|s| shared_json(s, metric)).collect::<Vec<_>>(),
        "warnings": allocation.warnings.iter().map(|w| serde_json::json!({"warning": w, "message": w.to_string()})).collect::<Vec<_>>(),
    });
    // The document is printed as serde_json prints it whole (two-space indents), but its rows are
    // written one at a time where the empty `rows` stands: no tree of every row is built.
    let text = serde_json::to_string_pretty(&document)?;
    let marker = "\n  \"rows\": []";
    let at = text.find(marker).ok_or_else(|| {
        io::Error::other("the JSON document has no top-level \"rows\" to write the rows into")
    })?;
    let (head, tail) = (&text[..at], &text[at + marker.len()..]);
    out.write_all(head.as_bytes())?;
    out.write_all(b"\n  \"rows\": [")?;
    let mut empty = true;
    for (n, row) in rows.enumerate() {
        let row = row.map_err(unread)?;
        empty = false;
        let printed = serde_json::to_string_pretty(&json_row(&allocation.group_by, row, metric))?;
        out.write_all(if n == 0 { b"\n    " } else { b",\n    " })?;
        out.write_all(printed.replace('\n', "\n    ").as_bytes())?;
    }
    out.write_all(if empty { b"]" } else { b"\n  ]" })?;
    out.write_all(tail.as_bytes())?;
    writeln!(out)
}

/// One display row as a JSON object: its name, each key under its dimension's name, the four metrics,
/// the shared part of `metric`, resources and line items.
fn json_row(
    group_by: &[kubecur_shared::domain::Dimension],
    row: kubecur_shared::domain::AllocationRow,
    metric: CostMetric,
) -> serde_json::Value {
    let mut object = serde_json::Map::new();
    object.insert("name".into(), group_name(&row.keys).into());
    for (dimension, key) in group_by.iter().zip(row.keys) {
        object.insert(dimension.name().to_string(), key.into());
    }
    for m in CostMetric::ALL {
        object.insert(m.name().to_string(), row.costs.get(m).into());
    }
    object.insert("sharedCost".into(), row.shared.get(metric).into());
    object.insert("resources".into(), row.resources.into());
    object.insert("lineItems".into(), row.line_items.into());
    serde_json::Value::Object(object)
}

/// With `sources` (sharing), a `sharedCost` column after the metric's.
pub fn write_csv(
    out: &mut impl Write,
    display: DisplayAllocation,
    sources: Option<&[SharedSource]>,
    metric: CostMetric,
) -> io::Result<()> {
    let (about, rows) = display.into_parts();
    let mut header: Vec<String> = about
        .group_by
        .iter()
        .map(|d| d.name().to_string())
        .collect();
    header.push(metric.name().to_string());
    if sources.is_some() {
        header.push("sharedCost".into());
    }
    writeln!(out, "{}", header.join(","))?;
    for row in rows {
        let row = row.map_err(unread)?;
        let mut cells: Vec<String> = row.keys.iter().map(|k| csv_field(k)).collect();
        cells.push(row.costs.get(metric).to_string());
        if sources.is_some() {
            cells.push(row.shared.get(metric).to_string());
        }
        writeln!(out, "{}", cells.join(","))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use kubecur_shared::domain::{AllocationRow, CostVector, Dimension, Flavour};

    /// An allocated row of one namespace, `cost` in every metric.
    fn namespace_row(namespace: &str, cost: f64) -> AllocationRow {
        AllocationRow {
            keys: vec![namespace.to_string()],
            allocated: true,
            costs: CostVector([cost; 4]),
            shared: Default::default(),
            resources: 1,
            resource_ids: None,
            line_items: 1,
        }
    }

    /// A CUR 2.0 allocation by namespace of these rows, for display by amortized net cost.
    fn by_namespace(rows: Vec<AllocationRow>) -> DisplayAllocation {
        let allocation = Allocation {
            flavour: Flavour::Cur2,
            window: None,
            group_by: vec![Dimension::Namespace],
            rows,
            warnings: vec![],
        };
        DisplayAllocation::from_allocation(allocation, CostMetric::AmortizedNetCost)
    }

    #[test]
    fn money_groups_thousands_and_rounds_to_cents() {
        assert_eq!(money(1234567.891), "1,234,567.89");
        assert_eq!(money(-0.004), "0.00");
        assert_eq!(money(-12.5), "-12.50");
    }

    #[test]
    fn csv_fields_are_quoted_when_needed() {
        assert_eq!(csv_field("payments"), "payments");
        assert_eq!(csv_field("CC-1234 \"core\""), "\"CC-1234 \"\"core\"\"\"");
        assert_eq!(csv_field("a,b"), "\"a,b\"");
    }

    /// Issue 9: a tag value `=1+2` was written as is (a formula when a spreadsheet opens the file).
    #[test]
    fn csv_text_cells_cannot_start_a_formula_and_numbers_stay_numbers() {
        let row = namespace_row;
        let display = by_namespace(vec![row("=1+2", 3.0), row("-team", -2.5), row("@x", 1.0)]);
        let mut out = Vec::new();
        write_csv(&mut out, display, None, CostMetric::AmortizedNetCost).expect("written");
        assert_eq!(
            String::from_utf8_lossy(&out),
            "namespace,amortizedNetCost\n'=1+2,3\n'@x,1\n'-team,-2.5\n"
        );
    }

    /// A table of millions of rows is not held whole: the first `measured` rows set the widths, the
    /// rest are written as they are read; every row is still written, in the same order.
    #[test]
    fn a_table_longer_than_its_measured_rows_keeps_every_row_at_the_first_rows_widths() {
        let names = [
            "a",
            "bb",
            "a-much-longer-namespace-than-any-before",
            "c",
            "d",
        ];
        let table = |measured: usize| {
            let rows = names.iter().enumerate();
            let display = by_namespace(
                rows.map(|(i, n)| namespace_row(n, 10.0 - i as f64))
                    .collect(),
            );
            let metric = CostMetric::AmortizedNetCost;
            let mut out = Vec::new();
            write_table_measuring(&mut out, display, None, metric, measured).expect("written");
            String::from_utf8(out).expect("UTF-8")
        };
        let whole = table(TABLE_MEASURED_ROWS);
        assert_eq!(table(names.len()), whole);
        let streamed = table(2);
        assert_ne!(streamed, whole);
        let (lines, whole_lines): (Vec<&str>, Vec<&str>) =
            (streamed.lines().collect(), whole.lines().collect());
        assert_eq!(lines.len(), whole_lines.len());
        // The header, then the rows in the same order, then the blank line and the same summary.
        for (line, whole_line) in lines.iter().zip(&whole_lines) {
            assert_eq!(
                line.split_whitespace().collect::<Vec<_>>(),
                whole_line.split_whitespace().collect::<Vec<_>>()
            );
        }
        for name in names {
            assert_eq!(
                lines
                    .iter()
                    .filter(|l| l.starts_with(&format!("{name} ")))
                    .count(),
                1,
                "{name}"
            );
        }
        // The header and the two measured rows share one width; the long name past them overflows it.
        let width = lines[0].len();
        assert!(lines[1..3].iter().all(|l| l.len() == width), "{streamed}");
        assert!(lines[3].len() > width, "{streamed}");
        assert!(lines[4..6].iter().all(|l| l.len() == width), "{streamed}");
    }

    /// The JSON is written row by row; it must read exactly as the whole document printed at once.
    #[test]
    fn json_written_row_by_row_is_the_whole_document_printed_at_once() {
        let row = |namespace: &str, cost: f64| AllocationRow {
            keys: vec![namespace.to_string(), "rds \"x\"\n".to_string()],
            allocated: namespace != "__unallocated__",
            costs: CostVector([cost; 4]),
            shared: Default::default(),
            resources: 2,
            resource_ids: None,
            line_items: 3,
        };
        for rows in [
            vec![],
            vec![row("a", 1.0)],
            vec![row("a", 1.0), row("__unallocated__", 2.5)],
        ] {
            let allocation = Allocation {
                flavour: Flavour::Cur2,
                window: None,
                group_by: vec![Dimension::Namespace, Dimension::Service],
                rows,
                warnings: vec![],
            };
            let metric = CostMetric::AmortizedNetCost;
            let whole = serde_json::json!({
                "flavour": allocation.flavour,
                "window": null,
                "aggregate": allocation.group_by,
                "metric": metric,
                "rows": allocation.display_rows(metric).into_iter().map(|r| json_row(&allocation.group_by, r, metric)).collect::<Vec<_>>(),
                "summary": allocation.summary(metric),
                "shared": [],
                "warnings": [],
            });
            let mut out = Vec::new();
            let display = DisplayAllocation::from_allocation(allocation, metric);
            write_json(&mut out, display, None, metric).expect("written");
            let expected = serde_json::to_string_pretty(&whole).expect("printed") + "\n";
            let keys: Vec<&str> = expected
                .lines()
                .filter(|l| l.starts_with("  \"") && !l.starts_with("   "))
                .map(|l| l.trim_start().split('"').nth(1).unwrap_or(""))
                .collect();
            assert_eq!(
                keys,
                [
                    "flavour",
                    "window",
                    "aggregate",
                    "metric",
                    "rows",
                    "summary",
                    "shared",
                    "warnings"
                ]
            );
            assert_eq!(String::from_utf8_lossy(&out), expected);
        }
    }
}
