//! A realistic synthetic CUR in every flavour, so a newcomer (and the tests and the benchmark) can run
//! kubecur on a fresh machine without a billing account.
//!
//! The same logical line items are written as legacy CUR (Parquet in the Athena layout, and gzip CSV
//! with `lineItem/UnblendedCost` headers), CUR 2.0 (Parquet with a `resource_tags` map, and gzip CSV
//! with it as JSON) and FOCUS 1.x (Parquet with a `Tags` map, and plain CSV with it as JSON). FOCUS
//! cost columns are computed from the legacy line item with kubecur's own rule table, so every
//! flavour allocates to the same per-namespace numbers for the metrics FOCUS carries.
//!
//! Every line item type of docs/cur-reference.md#cost-rules appears (plus one unknown type), EKS
//! split-cost rows appear (they must be excluded), several accounts appear, and tags come in varied
//! forms: keys with `.`, `/`, `:` and upper case, keys AWS merges (`Team`/`team`), unicode and blank
//! values.
//!
//! - `estate`: the seeded resources and the legacy line items they bill;
//! - `legacy`, `cur2`, `focus`: the three schemas, as columns filled from a line item;
//! - `write`: Arrow batches, Parquet and CSV files, the export layout and its delivery markers.

mod cur2;
mod estate;
mod focus;
mod legacy;
mod write;

pub use estate::{sample_line_items, SampleLineItem};
pub use write::write_sample;

use crate::domain::named::named_enum;
use std::path::PathBuf;

/// One output of the generator.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SampleOutput {
    LegacyParquet,
    LegacyCsvGz,
    Cur2Parquet,
    Cur2CsvGz,
    FocusParquet,
    FocusCsv,
}

named_enum!(SampleOutput {
    LegacyParquet => "legacy-parquet",
    LegacyCsvGz => "legacy-csv",
    Cur2Parquet => "cur2-parquet",
    Cur2CsvGz => "cur2-csv",
    FocusParquet => "focus-parquet",
    FocusCsv => "focus-csv",
} from_str: String, |text| text.trim().to_string(), |given, allowed| {
    format!("unknown sample output `{given}`; expected one of: {allowed}")
});

impl SampleOutput {
    /// The folder under the output directory, also the name users pass to `--only`.
    pub fn dir_name(self) -> &'static str {
        self.name()
    }

    /// Parses a folder name; the error lists the valid ones.
    pub fn parse(text: &str) -> Result<SampleOutput, String> {
        text.parse()
    }
}

/// What to generate.
#[derive(Debug, Clone)]
pub struct SampleSpec {
    pub rows: u64,
    pub outputs: Vec<SampleOutput>,
    /// Rows per Parquet file / CSV part.
    pub rows_per_file: u64,
    pub seed: u64,
    /// Further resources, each tagged with a pod of its own (0: the standard estate only).
    pub pods: u64,
    /// Usage days from [`FIRST_DAY`] the line items spread over ([`DAYS`]: May and June 2024).
    pub days: u64,
}

impl SampleSpec {
    pub fn new(rows: u64) -> SampleSpec {
        SampleSpec {
            rows,
            outputs: SampleOutput::ALL.to_vec(),
            rows_per_file: 1_000_000,
            seed: 0x006b_7562_6563_7572,
            pods: 0,
            days: DAYS,
        }
    }
}

/// What was written.
#[derive(Debug, Clone)]
pub struct SampleReport {
    pub rows: u64,
    pub files: Vec<PathBuf>,
    pub bytes: u64,
}

/// Errors of the generator: only I/O and Arrow/Parquet encoding.
#[derive(Debug, thiserror::Error)]
pub enum SampleError {
    #[error("cannot write {path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("cannot encode {path}: {source}")]
    Encode {
        path: PathBuf,
        source: Box<dyn std::error::Error + Send + Sync>,
    },
}

/// The billing periods the sample covers: May and June 2024.
pub const FIRST_DAY: (i32, u32, u32) = (2024, 5, 1);
pub const DAYS: u64 = 61;

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs;

    /// FNV-1a, 64 bit: a fingerprint anyone can recompute outside Rust (it is a few lines of Python).
    fn fnv1a64(hash: &mut u64, bytes: &[u8]) {
        for byte in bytes {
            *hash ^= u64::from(*byte);
            *hash = hash.wrapping_mul(0x0000_0100_0000_01b3);
        }
    }

    /// Every file the generator writes for a small sample, as `relative path → FNV-1a 64 of its bytes`.
    fn fingerprints(spec: &SampleSpec) -> Vec<(String, u64)> {
        let dir = tempfile::tempdir().expect("temporary directory");
        let report = write_sample(dir.path(), spec, |_| {}).expect("sample is written");
        let mut prints: Vec<(String, u64)> = report
            .files
            .iter()
            .map(|path| {
                let relative = path
                    .strip_prefix(dir.path())
                    .expect("files are below the output directory")
                    .to_string_lossy()
                    .into_owned();
                let mut hash = 0xcbf2_9ce4_8422_2325;
                fnv1a64(&mut hash, &fs::read(path).expect("file is readable"));
                (relative, hash)
            })
            .collect();
        prints.sort();
        prints
    }

    /// The output for the default seed, 2,000 rows, 700 rows per file, byte for byte as the generator
    /// wrote it before it was split into modules (the same as
    /// `kubecur sample --out D --rows 2000 --rows-per-file 700`, hashed file by file): refactoring the
    /// generator must not change a single byte of what tests and benchmarks read.
    #[test]
    fn pods_add_a_resource_with_a_pod_of_its_own_and_days_narrow_the_usage() {
        let mut spec = SampleSpec::new(20_000);
        spec.pods = 5_000;
        spec.days = 31;
        let items = sample_line_items(&spec);
        let pods: std::collections::BTreeSet<&str> = items
            .iter()
            .flat_map(|i| &i.tags)
            .filter(|(key, _)| *key == "kubernetes_pod")
            .map(|(_, value)| value.as_str())
            .collect();
        // 20,000 draws over 5,240 resources reach about 98 % of the 5,000 pods.
        assert!(
            pods.len() > 4_500 && pods.len() <= 5_000 + 240,
            "{}",
            pods.len()
        );
        let may = chrono::NaiveDate::from_ymd_opt(2024, 5, 1).expect("valid");
        let june = chrono::NaiveDate::from_ymd_opt(2024, 6, 1).expect("valid");
        assert!(items
            .iter()
            .all(|i| (may..june).contains(&i.usage_start.date())));
    }

    #[test]
    fn output_is_byte_identical_for_a_seed() {
        let mut spec = SampleSpec::new(2_000);
        spec.rows_per_file = 700;
        let actual = fingerprints(&spec);
        let expected: &[(&str, u64)] = &[
        ("cur2-csv/aws-programmatic-access-test-object", 0xcbf29ce484222325),
        ("cur2-csv/kubecur-cur2/data/BILLING_PERIOD=2024-05/kubecur-cur2-00001.csv.gz", 0x021d2322fb0d7709),
        ("cur2-csv/kubecur-cur2/data/BILLING_PERIOD=2024-06/kubecur-cur2-00002.csv.gz", 0xd5e4a9f6bd4157eb),
        ("cur2-csv/kubecur-cur2/metadata/BILLING_PERIOD=2024-05/kubecur-cur2-Manifest.json", 0xac3d38ee605806f4),
        ("cur2-csv/kubecur-cur2/metadata/BILLING_PERIOD=2024-06/kubecur-cur2-Manifest.json", 0xf6f55257db93e74e),
        ("cur2-parquet/aws-programmatic-access-test-object", 0xcbf29ce484222325),
        ("cur2-parquet/kubecur-cur2/data/BILLING_PERIOD=2024-05/kubecur-cur2-00001.snappy.parquet", 0xdea9a465bdc271b8),
        ("cur2-parquet/kubecur-cur2/data/BILLING_PERIOD=2024-06/kubecur-cur2-00002.snappy.parquet", 0x52fd448223b04a30),
        ("cur2-parquet/kubecur-cur2/metadata/BILLING_PERIOD=2024-05/kubecur-cur2-Manifest.json", 0xac3d38ee605806f4),
        ("cur2-parquet/kubecur-cur2/metadata/BILLING_PERIOD=2024-06/kubecur-cur2-Manifest.json", 0xf6f55257db93e74e),
        ("focus-csv/aws-programmatic-access-test-object", 0xcbf29ce484222325),
        ("focus-csv/kubecur-focus/data/BILLING_PERIOD=2024-05/kubecur-focus-00001.csv", 0x131569003c36263d),
        ("focus-csv/kubecur-focus/data/BILLING_PERIOD=2024-06/kubecur-focus-00002.csv", 0xbed549a51a43b1e5),
        ("focus-csv/kubecur-focus/metadata/BILLING_PERIOD=2024-05/kubecur-focus-Manifest.json", 0xac3d38ee605806f4),
        ("focus-csv/kubecur-focus/metadata/BILLING_PERIOD=2024-06/kubecur-focus-Manifest.json", 0xf6f55257db93e74e),
        ("focus-parquet/aws-programmatic-access-test-object", 0xcbf29ce484222325),
        ("focus-parquet/kubecur-focus/data/BILLING_PERIOD=2024-05/kubecur-focus-00001.snappy.parquet", 0x82c420582205c974),
        ("focus-parquet/kubecur-focus/data/BILLING_PERIOD=2024-06/kubecur-focus-00002.snappy.parquet", 0xc94c4d7fab6b0807),
        ("focus-parquet/kubecur-focus/metadata/BILLING_PERIOD=2024-05/kubecur-focus-Manifest.json", 0xac3d38ee605806f4),
        ("focus-parquet/kubecur-focus/metadata/BILLING_PERIOD=2024-06/kubecur-focus-Manifest.json", 0xf6f55257db93e74e),
        ("legacy-csv/aws-programmatic-access-test-object", 0xcbf29ce484222325),
        ("legacy-csv/kubecur-sample/20240501-20240601/kubecur-sample-00001.csv.gz", 0x4749e23b937b9dae),
        ("legacy-csv/kubecur-sample/20240601-20240701/kubecur-sample-00002.csv.gz", 0x38ebc840c28e5706),
        ("legacy-parquet/aws-programmatic-access-test-object", 0xcbf29ce484222325),
        ("legacy-parquet/kubecur-sample/crawler-cfn.yml", 0x8b10eb29024c3a7d),
        ("legacy-parquet/kubecur-sample/kubecur-sample/cost_and_usage_data_status/cost_and_usage_data_status.parquet", 0x5a749f0d29438982),
        ("legacy-parquet/kubecur-sample/kubecur-sample/year=2024/month=5/kubecur-sample-00001.snappy.parquet", 0x7b3c80e9aa40a950),
        ("legacy-parquet/kubecur-sample/kubecur-sample/year=2024/month=6/kubecur-sample-00002.snappy.parquet", 0x70d10ab2e3ac77c4),
        ];
        let expected: Vec<(String, u64)> = expected
            .iter()
            .map(|(path, hash)| (path.to_string(), *hash))
            .collect();
        assert_eq!(actual, expected);
    }

    #[test]
    fn output_is_deterministic_and_depends_on_the_seed() {
        let mut spec = SampleSpec::new(300);
        spec.outputs = vec![SampleOutput::LegacyParquet, SampleOutput::FocusCsv];
        let first = fingerprints(&spec);
        assert_eq!(first, fingerprints(&spec));
        spec.seed += 1;
        assert_ne!(first, fingerprints(&spec));
    }
}
