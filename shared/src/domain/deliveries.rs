//! Several deliveries of one month side by side: which data files the local runner reads.
//!
//! A report that keeps every version (legacy CUR "create new report version", Data Exports
//! `CREATE_NEW_REPORT`) leaves each delivery's files in its own folder under the month, and each
//! delivery's manifest lists exactly its files:
//!
//! - legacy CUR: `<prefix>/<report>/yyyymmdd-yyyymmdd/<assemblyId>/<report>-<n>.csv.gz`, manifests
//!   `<report>-Manifest.json` with `assemblyId` and `reportKeys` (bucket-relative keys), one per
//!   delivery and one for the month that always describes the latest
//!   (<https://docs.aws.amazon.com/cur/latest/userguide/understanding-report-versions.html>);
//! - CUR 2.0 / FOCUS: `metadata/BILLING_PERIOD=YYYY-MM/…-Manifest.json` with `executionId` and
//!   `dataFiles` (full `s3://` URIs), delivered after every data file
//!   (<https://docs.aws.amazon.com/cur/latest/userguide/dataexports-manifest.html>,
//!   <https://docs.aws.amazon.com/cur/latest/userguide/dataexports-export-delivery.html>).
//!
//! The rule ([`select`]): per billing period, the newest manifest (the last written) wins and only the
//! files it lists are read. A period without a manifest keeps every file, with a note when its files
//! sit in several folders (which looks like several deliveries). Pure: keys, times and bytes in,
//! a decision out.

use super::delivery::{parse_manifest, DeliveryError};
use super::window::BillingPeriod;
use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

/// One delivery, as its manifest describes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Delivery {
    /// The manifest's key (relative to `--cur` locally, the object key on S3).
    pub manifest: String,
    pub period: BillingPeriod,
    /// `assemblyId` (legacy) or `executionId` (CUR 2.0 / FOCUS).
    pub id: String,
    /// When the manifest was written (milliseconds since the epoch): the newest delivery wins.
    pub written: i64,
    /// The delivery's data files as bucket-relative keys.
    pub files: Vec<String>,
}

/// Reads a legacy or a CUR 2.0 / FOCUS manifest. The period is the one its path names
/// (`20240601-20240701`, `BILLING_PERIOD=2024-06`) or else its `billingPeriod.start`.
pub fn parse_delivery(
    key: &str,
    bytes: &[u8],
    period_from_path: Option<BillingPeriod>,
    written: i64,
) -> Result<Delivery, DeliveryError> {
    let bad = |reason: String| DeliveryError::BadManifest {
        key: key.to_string(),
        reason,
    };
    let value: serde_json::Value =
        serde_json::from_slice(bytes).map_err(|e| bad(format!("not JSON ({e})")))?;
    let (id, files) = if let Some(keys) = value.get("reportKeys") {
        let id = value
            .get("assemblyId")
            .and_then(serde_json::Value::as_str)
            .filter(|id| !id.trim().is_empty())
            .ok_or_else(|| bad("no `assemblyId`".into()))?;
        let keys = keys
            .as_array()
            .ok_or_else(|| bad("`reportKeys` is not a list".into()))?
            .iter()
            .map(|k| {
                k.as_str()
                    .map(|k| k.trim_start_matches('/').to_string())
                    .ok_or_else(|| bad(format!("`reportKeys` entry {k} is not a key")))
            })
            .collect::<Result<Vec<_>, _>>()?;
        (id.to_string(), keys)
    } else {
        let manifest = parse_manifest(key, bytes)?;
        let keys = manifest
            .data_files
            .iter()
            .map(|uri| {
                // s3://bucket/key → key
                uri.trim_start_matches("s3://")
                    .split_once('/')
                    .map(|(_, key)| key.to_string())
                    .ok_or_else(|| bad(format!("`dataFiles` entry `{uri}` names no object")))
            })
            .collect::<Result<Vec<_>, _>>()?;
        (manifest.execution_id, keys)
    };
    let period = match period_from_path {
        Some(period) => period,
        None => value
            .pointer("/billingPeriod/start")
            .and_then(serde_json::Value::as_str)
            .and_then(period_of_start)
            .ok_or_else(|| {
                bad("neither its path nor `billingPeriod.start` names a billing period".into())
            })?,
    };
    Ok(Delivery {
        manifest: key.to_string(),
        period,
        id,
        written,
        files,
    })
}

/// `20240601T000000.000Z` (legacy) or `2024-06-01T00:00:00.000Z` (Data Exports).
fn period_of_start(start: &str) -> Option<BillingPeriod> {
    let digits: String = start
        .chars()
        .take_while(|c| *c != 'T')
        .filter(char::is_ascii_digit)
        .collect();
    let (year, month) = (digits.get(0..4)?, digits.get(4..6)?);
    BillingPeriod::parse(&format!("{year}-{month}")).ok()
}

/// A data file found beside the manifests.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FoundFile {
    /// Relative to `--cur` locally; the object key on S3.
    pub key: String,
    /// The period its path names, if any.
    pub period: Option<BillingPeriod>,
}

/// What the selection decided, beside the files it keeps.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SelectionNote {
    /// A period's newest delivery: only its files are read.
    Newest {
        period: BillingPeriod,
        id: String,
        manifest: String,
        files: usize,
        /// Data files of the period left out (older deliveries, or files no manifest lists).
        left_out: usize,
        /// Other manifests of the period (older deliveries).
        older: usize,
    },
    /// A manifest that lists no data file: not used to choose files (debug log only).
    ListsNoFiles {
        period: BillingPeriod,
        manifest: String,
    },
    /// A period without a manifest whose files sit in several folders: they look like several
    /// deliveries, and all of them are read.
    SeveralFolders {
        period: BillingPeriod,
        folders: Vec<String>,
    },
}

impl SelectionNote {
    /// Whether the user must hear of it (the other notes are for the debug log).
    pub fn is_warning(&self) -> bool {
        matches!(self, SelectionNote::SeveralFolders { .. })
    }
}

impl fmt::Display for SelectionNote {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SelectionNote::Newest { period, id, manifest, files, left_out, older } => write!(
                f,
                "billing period {}: reading the newest delivery `{id}` ({files} files listed by `{manifest}`); {older} older deliveries and {left_out} other data files are not read",
                period.label()
            ),
            SelectionNote::ListsNoFiles { period, manifest } => write!(
                f,
                "billing period {}: manifest `{manifest}` lists no data files; the period's files are read as found",
                period.label()
            ),
            SelectionNote::SeveralFolders { period, folders } => write!(
                f,
                "billing period {} has data files in {} folders ({}), which looks like several deliveries of one month, and has no manifest to tell the newest: all of them are read, so costs may count twice; keep the deliveries' manifests beside the data or point --cur at one delivery",
                period.label(),
                folders.len(),
                folders.iter().take(3).cloned().collect::<Vec<_>>().join(", ")
            ),
        }
    }
}

/// The outcome of [`select`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Selection {
    /// One flag per input file, in input order: read it or not.
    pub keep: Vec<bool>,
    pub notes: Vec<SelectionNote>,
}

/// Whether manifest entry `listed` (a bucket-relative key) names `file`: the same key, or `file` is a
/// path relative to a local copy of a folder above it.
fn names(listed: &str, file: &str) -> bool {
    listed == file
        || listed
            .strip_suffix(file)
            .is_some_and(|head| head.ends_with('/'))
}

/// Chooses the data files to read (module docs). Errors when a period's newest manifest lists a file
/// that is not there: reading the rest would silently return less.
pub fn select(files: &[FoundFile], deliveries: &[Delivery]) -> Result<Selection, DeliveryError> {
    let mut notes = Vec::new();
    // A manifest listing no file cannot say which files to read: the period is read as if it had none.
    let (empty, deliveries): (Vec<&Delivery>, Vec<&Delivery>) =
        deliveries.iter().partition(|d| d.files.is_empty());
    for delivery in empty {
        notes.push(SelectionNote::ListsNoFiles {
            period: delivery.period,
            manifest: delivery.manifest.clone(),
        });
    }
    // Per period, the newest delivery (the last written; ties by manifest key).
    let mut newest: BTreeMap<BillingPeriod, &Delivery> = BTreeMap::new();
    for &delivery in &deliveries {
        let entry = newest.entry(delivery.period).or_insert(delivery);
        if (delivery.written, &delivery.manifest) > (entry.written, &entry.manifest) {
            *entry = delivery;
        }
    }
    // A manifest for the whole month (legacy) and the delivery's own list the same files: one delivery.
    let same_delivery = |a: &Delivery, b: &Delivery| a.id == b.id && a.period == b.period;

    let listed_by = |file: &FoundFile| -> Vec<&Delivery> {
        deliveries
            .iter()
            .copied()
            .filter(|d| d.files.iter().any(|listed| names(listed, &file.key)))
            .collect()
    };
    let mut keep = Vec::with_capacity(files.len());
    let mut left_out: BTreeMap<BillingPeriod, usize> = BTreeMap::new();
    let mut unmanaged: BTreeMap<BillingPeriod, BTreeSet<String>> = BTreeMap::new();
    for file in files {
        let listers = listed_by(file);
        // The periods this file belongs to: its manifests', or its path's.
        let periods: BTreeSet<BillingPeriod> = if listers.is_empty() {
            file.period.into_iter().collect()
        } else {
            listers.iter().map(|d| d.period).collect()
        };
        let managed: Vec<&&Delivery> = periods.iter().filter_map(|p| newest.get(p)).collect();
        if managed.is_empty() {
            keep.push(true);
            if let Some(period) = file.period {
                let folder = file.key.rsplit_once('/').map(|(f, _)| f).unwrap_or("");
                unmanaged
                    .entry(period)
                    .or_default()
                    .insert(folder.to_string());
            }
            continue;
        }
        let read = listers
            .iter()
            .any(|d| managed.iter().any(|n| same_delivery(d, n)));
        if !read {
            for period in &periods {
                *left_out.entry(*period).or_default() += 1;
            }
        }
        keep.push(read);
    }

    for (period, delivery) in &newest {
        let missing: Vec<&String> = delivery
            .files
            .iter()
            .filter(|listed| !files.iter().any(|f| names(listed, &f.key)))
            .collect();
        if !missing.is_empty() {
            return Err(DeliveryError::BadManifest {
                key: delivery.manifest.clone(),
                reason: format!(
                    "it is the newest delivery of {} and lists {} data files that are not there (first: `{}`); copy the whole delivery, or remove this manifest to read the files as they are",
                    period.label(),
                    missing.len(),
                    missing[0]
                ),
            });
        }
        let older = deliveries
            .iter()
            .filter(|d| d.period == *period && !same_delivery(d, delivery))
            .map(|d| &d.id)
            .collect::<BTreeSet<_>>()
            .len();
        notes.push(SelectionNote::Newest {
            period: *period,
            id: delivery.id.clone(),
            manifest: delivery.manifest.clone(),
            files: delivery.files.len(),
            left_out: left_out.get(period).copied().unwrap_or(0),
            older,
        });
    }
    for (period, folders) in unmanaged {
        if folders.len() > 1 {
            notes.push(SelectionNote::SeveralFolders {
                period,
                folders: folders.into_iter().collect(),
            });
        }
    }
    Ok(Selection { keep, notes })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn june() -> BillingPeriod {
        BillingPeriod::parse("2024-06").expect("valid")
    }

    fn file(key: &str) -> FoundFile {
        FoundFile {
            key: key.into(),
            period: Some(june()),
        }
    }

    fn delivery(manifest: &str, id: &str, written: i64, files: &[&str]) -> Delivery {
        Delivery {
            manifest: manifest.into(),
            period: june(),
            id: id.into(),
            written,
            files: files.iter().map(|f| f.to_string()).collect(),
        }
    }

    #[test]
    fn legacy_manifest_gives_assembly_id_report_keys_and_period() {
        // Shape from https://docs.aws.amazon.com/cur/latest/userguide/understanding-report-versions.html
        let json = br#"{"assemblyId":"a-2","reportKeys":["cur/r/20240601-20240701/a-2/r-1.csv.gz"],
            "billingPeriod":{"start":"20240601T000000.000Z","end":"20240701T000000.000Z"}}"#;
        let d = parse_delivery("cur/r/20240601-20240701/r-Manifest.json", json, None, 5)
            .expect("valid");
        assert_eq!(d.id, "a-2");
        assert_eq!(d.period, june());
        assert_eq!(d.files, ["cur/r/20240601-20240701/a-2/r-1.csv.gz"]);
        let cur2 = br#"{"executionId":"e-1","dataFiles":["s3://b/x/data/BILLING_PERIOD=2024-06/x-1.parquet"],
            "billingPeriod":{"start":"2024-06-01T00:00:00.000Z"}}"#;
        let d = parse_delivery("m.json", cur2, None, 5).expect("valid");
        assert_eq!((d.id.as_str(), d.period), ("e-1", june()));
        assert_eq!(d.files, ["x/data/BILLING_PERIOD=2024-06/x-1.parquet"]);
        for (bytes, needle) in [
            (&br#"{"reportKeys":[]}"#[..], "no `assemblyId`"),
            (br#"{"assemblyId":"a","reportKeys":[1]}"#, "not a key"),
            (
                br#"{"assemblyId":"a","reportKeys":[]}"#,
                "names a billing period",
            ),
        ] {
            let err = parse_delivery("m.json", bytes, None, 0)
                .expect_err(needle)
                .to_string();
            assert!(err.contains(needle) && err.contains("m.json"), "{err}");
        }
    }

    #[test]
    fn only_the_newest_deliverys_files_are_read() {
        let files = [
            file("r/20240601-20240701/a-1/r-1.csv.gz"),
            file("r/20240601-20240701/a-2/r-1.csv.gz"),
            file("r/20240601-20240701/a-2/r-2.csv.gz"),
        ];
        let deliveries = [
            delivery(
                "cur/r/20240601-20240701/a-1/r-Manifest.json",
                "a-1",
                1,
                &["cur/r/20240601-20240701/a-1/r-1.csv.gz"],
            ),
            delivery(
                "cur/r/20240601-20240701/a-2/r-Manifest.json",
                "a-2",
                2,
                &[
                    "cur/r/20240601-20240701/a-2/r-1.csv.gz",
                    "cur/r/20240601-20240701/a-2/r-2.csv.gz",
                ],
            ),
            // The month's manifest, rewritten with every delivery: the latest.
            delivery(
                "cur/r/20240601-20240701/r-Manifest.json",
                "a-2",
                3,
                &[
                    "cur/r/20240601-20240701/a-2/r-1.csv.gz",
                    "cur/r/20240601-20240701/a-2/r-2.csv.gz",
                ],
            ),
        ];
        let selection = select(&files, &deliveries).expect("consistent");
        assert_eq!(selection.keep, [false, true, true]);
        assert!(
            matches!(
                &selection.notes[..],
                [SelectionNote::Newest { id, left_out: 1, older: 1, .. }] if id == "a-2"
            ),
            "{:?}",
            selection.notes
        );
        // Written order decides, not names: an older delivery with a larger id loses.
        let mut swapped = deliveries.clone();
        swapped[0].written = 9;
        let selection = select(&files, &swapped).expect("consistent");
        assert_eq!(selection.keep, [true, false, false]);
        // A manifest without files chooses nothing.
        let empty = [delivery("x-Manifest.json", "e", 99, &[])];
        let selection = select(&files[1..], &empty).expect("consistent");
        assert_eq!(selection.keep, [true, true]);
        assert!(
            !selection.notes.iter().any(SelectionNote::is_warning),
            "{:?}",
            selection.notes
        );
    }

    #[test]
    fn a_missing_listed_file_is_an_error_naming_it() {
        let files = [file("x/data/BILLING_PERIOD=2024-06/x-1.parquet")];
        let deliveries = [delivery(
            "x/metadata/BILLING_PERIOD=2024-06/x-Manifest.json",
            "e",
            1,
            &[
                "x/data/BILLING_PERIOD=2024-06/x-1.parquet",
                "x/data/BILLING_PERIOD=2024-06/x-2.parquet",
            ],
        )];
        let err = select(&files, &deliveries)
            .expect_err("x-2 is missing")
            .to_string();
        assert!(
            err.contains("x-2.parquet") && err.contains("x-Manifest.json"),
            "{err}"
        );
    }

    #[test]
    fn without_manifests_every_file_is_read_and_several_folders_are_a_warning() {
        let one_folder = [
            file("r/20240601-20240701/r-1.csv.gz"),
            file("r/20240601-20240701/r-2.csv.gz"),
        ];
        let selection = select(&one_folder, &[]).expect("no manifests");
        assert_eq!(selection.keep, [true, true]);
        assert!(selection.notes.is_empty());
        let two = [
            file("r/20240601-20240701/a-1/r-1.csv.gz"),
            file("r/20240601-20240701/a-2/r-1.csv.gz"),
        ];
        let selection = select(&two, &[]).expect("no manifests");
        assert_eq!(selection.keep, [true, true]);
        assert!(selection.notes[0].is_warning());
        assert!(selection.notes[0]
            .to_string()
            .contains("2024-06 has data files in 2 folders"));
    }

    #[test]
    fn local_paths_match_the_bucket_keys_they_are_copies_of() {
        assert!(names("cur/r/2024/a/r-1.csv.gz", "r/2024/a/r-1.csv.gz"));
        assert!(names("cur/r/2024/a/r-1.csv.gz", "cur/r/2024/a/r-1.csv.gz"));
        assert!(!names("cur/r/2024/a/xr-1.csv.gz", "r-1.csv.gz"));
    }
}
