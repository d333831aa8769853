//! CUR deliveries as S3 shows them: decoding event keys, telling the "delivery finished" signals from
//! everything else a delivery writes, and reading a CUR 2.0 / FOCUS manifest
//! (docs/cur-reference.md#formats and #delivery-events).
//!
//! Pure groundwork for the ingest function (issue 3): no S3 client here, only keys and bytes.

use super::window::BillingPeriod;
use std::fmt;

/// Why an S3 key or manifest cannot be used. Always names the offending input.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DeliveryError {
    #[error("S3 key `{key}` is not valid URL encoding: {reason}")]
    BadKey { key: String, reason: String },
    #[error("manifest `{key}` is not usable: {reason}")]
    BadManifest { key: String, reason: String },
}

/// Decodes a key from an S3 event notification: S3 URL-encodes keys there, with spaces as `+`
/// (docs/cur-reference.md#delivery-events: `year%3D2024/month%3D6`). Invalid escapes or non-UTF-8
/// results are errors.
pub fn decode_event_key(encoded: &str) -> Result<String, DeliveryError> {
    let bad = |reason: &str| DeliveryError::BadKey {
        key: encoded.to_string(),
        reason: reason.to_string(),
    };
    let bytes = encoded.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' => {
                let hex = bytes
                    .get(i + 1..i + 3)
                    .ok_or_else(|| bad("`%` is not followed by two hex digits"))?;
                let text = std::str::from_utf8(hex)
                    .map_err(|_| bad("`%` is not followed by two hex digits"))?;
                out.push(
                    u8::from_str_radix(text, 16)
                        .map_err(|_| bad("`%` is not followed by two hex digits"))?,
                );
                i += 2;
            }
            other => out.push(other),
        }
        i += 1;
    }
    String::from_utf8(out).map_err(|_| bad("the decoded key is not UTF-8"))
}

/// What one object of a delivery means to kubecur.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DeliveryObject {
    /// A CUR 2.0 / FOCUS manifest, written after all data files: the period's delivery is complete.
    /// `export_root` is the key prefix above `metadata/` (`<prefix>/<export name>`).
    ExportManifest {
        export_root: String,
        billing_period: BillingPeriod,
    },
    /// Legacy CUR's status object; the delivery is complete only when it reads `READY`.
    /// `report_root` is the key prefix above `cost_and_usage_data_status/`.
    LegacyStatus { report_root: String },
    /// Anything else: acknowledged and ignored.
    Ignored(Ignored),
}

/// Why an object is no delivery signal.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ignored {
    /// A data part: the signal comes after all of them.
    DataPart,
    /// AWS's crawler template for legacy CUR.
    CrawlerTemplate,
    /// AWS's `aws-programmatic-access-test-object`, written when a report is set up.
    AccessTestObject,
    /// A legacy CUR manifest (`yyyymmdd-yyyymmdd/<report>-Manifest.json`): legacy deliveries are
    /// signalled by the status object, which the Athena integration maintains.
    LegacyManifest,
    /// An export manifest whose folder is not `BILLING_PERIOD=YYYY-MM`: logged, never guessed.
    UnreadablePeriod,
    /// None of the above.
    Unrelated,
}

impl fmt::Display for Ignored {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Ignored::DataPart => "a data part",
            Ignored::CrawlerTemplate => "AWS's crawler template",
            Ignored::AccessTestObject => "AWS's access test object",
            Ignored::LegacyManifest => "a legacy CUR manifest (the status object is the signal)",
            Ignored::UnreadablePeriod => {
                "an export manifest without a BILLING_PERIOD=YYYY-MM folder"
            }
            Ignored::Unrelated => "not part of a CUR delivery",
        })
    }
}

const LEGACY_STATUS: &str = "cost_and_usage_data_status/cost_and_usage_data_status.parquet";

/// Classifies a decoded S3 key.
pub fn classify(key: &str) -> DeliveryObject {
    let name = key.rsplit('/').next().unwrap_or(key);
    if let Some(report_root) = key.strip_suffix(LEGACY_STATUS) {
        return DeliveryObject::LegacyStatus {
            report_root: report_root.trim_end_matches('/').to_string(),
        };
    }
    if name.ends_with("-Manifest.json") {
        let segments: Vec<&str> = key.split('/').collect();
        // <export_root>/metadata/BILLING_PERIOD=2024-06/<name>-Manifest.json
        if segments.len() >= 3 && segments[segments.len() - 3] == "metadata" {
            let partition = segments[segments.len() - 2];
            let period = partition
                .split_once('=')
                .filter(|(k, _)| k.eq_ignore_ascii_case("billing_period"))
                .and_then(|(_, v)| BillingPeriod::parse(v).ok());
            return match period {
                Some(billing_period) => {
                    let export_root = segments[..segments.len() - 3].join("/");
                    DeliveryObject::ExportManifest {
                        export_root,
                        billing_period,
                    }
                }
                None => DeliveryObject::Ignored(Ignored::UnreadablePeriod),
            };
        }
        return DeliveryObject::Ignored(Ignored::LegacyManifest);
    }
    let lower = name.to_ascii_lowercase();
    DeliveryObject::Ignored(if name == "crawler-cfn.yml" {
        Ignored::CrawlerTemplate
    } else if name == "aws-programmatic-access-test-object" {
        Ignored::AccessTestObject
    } else if lower.ends_with(".parquet")
        || lower.ends_with(".csv.gz")
        || lower.ends_with(".csv")
        || lower.ends_with(".csv.zip")
    {
        Ignored::DataPart
    } else {
        Ignored::Unrelated
    })
}

/// What kubecur needs from a CUR 2.0 / FOCUS manifest.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExportManifest {
    /// The delivery's identity: claims a run exactly once per delivery.
    pub execution_id: String,
    /// Full `s3://` URIs of the data files of this delivery.
    pub data_files: Vec<String>,
    /// Column names, when the manifest lists them.
    pub columns: Vec<String>,
}

/// Reads a manifest. `executionId` and `dataFiles` are required; `columns` may be a list of names or of
/// `{ "name": … }` objects (the exact shape is not documented where we looked; both are accepted).
pub fn parse_manifest(key: &str, bytes: &[u8]) -> Result<ExportManifest, DeliveryError> {
    let bad = |reason: String| DeliveryError::BadManifest {
        key: key.to_string(),
        reason,
    };
    let value: serde_json::Value =
        serde_json::from_slice(bytes).map_err(|e| bad(format!("not JSON ({e})")))?;
    let execution_id = value
        .get("executionId")
        .and_then(serde_json::Value::as_str)
        .filter(|id| !id.trim().is_empty())
        .ok_or_else(|| bad("no `executionId`".into()))?
        .to_string();
    let files = value
        .get("dataFiles")
        .and_then(serde_json::Value::as_array)
        .ok_or_else(|| bad("no `dataFiles` list".into()))?;
    let data_files = files
        .iter()
        .map(|f| match f.as_str() {
            Some(uri) if uri.starts_with("s3://") => Ok(uri.to_string()),
            _ => Err(bad(format!("`dataFiles` entry {f} is not an s3:// URI"))),
        })
        .collect::<Result<Vec<_>, _>>()?;
    let columns = value
        .get("columns")
        .and_then(serde_json::Value::as_array)
        .map(|list| {
            list.iter()
                .filter_map(|c| {
                    c.as_str()
                        .or_else(|| c.get("name").and_then(serde_json::Value::as_str))
                })
                .map(str::to_string)
                .collect()
        })
        .unwrap_or_default();
    Ok(ExportManifest {
        execution_id,
        data_files,
        columns,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn event_keys_are_url_decoded_with_plus_as_space() {
        assert_eq!(
            decode_event_key("cur/r/r/year%3D2024/month%3D6/r-00001.snappy.parquet").as_deref(),
            Ok("cur/r/r/year=2024/month=6/r-00001.snappy.parquet")
        );
        assert_eq!(
            decode_event_key("my+report/%E6%94%AF%E4%BB%98").as_deref(),
            Ok("my report/支付")
        );
    }

    #[test]
    fn bad_escapes_are_errors_naming_the_key() {
        for key in ["a%2", "a%zz", "a%ff%fe"] {
            let err = decode_event_key(key).expect_err(key).to_string();
            assert!(err.contains(key), "{err}");
        }
    }

    #[test]
    fn cur2_and_focus_manifests_signal_a_finished_period() {
        assert_eq!(
            classify("exports/kubecur/metadata/BILLING_PERIOD=2024-06/kubecur-Manifest.json"),
            DeliveryObject::ExportManifest {
                export_root: "exports/kubecur".into(),
                billing_period: BillingPeriod {
                    year: 2024,
                    month: 6
                },
            }
        );
    }

    #[test]
    fn legacy_status_object_is_the_legacy_signal() {
        assert_eq!(
            classify("cur/report/cost_and_usage_data_status/cost_and_usage_data_status.parquet"),
            DeliveryObject::LegacyStatus {
                report_root: "cur/report".into()
            }
        );
    }

    #[test]
    fn everything_else_a_delivery_writes_is_ignored_with_a_reason() {
        let cases = [
            (
                "cur/report/report/year=2024/month=6/report-00001.snappy.parquet",
                Ignored::DataPart,
            ),
            (
                "exports/kubecur/data/BILLING_PERIOD=2024-06/kubecur-00001.csv.gz",
                Ignored::DataPart,
            ),
            ("cur/report/crawler-cfn.yml", Ignored::CrawlerTemplate),
            (
                "aws-programmatic-access-test-object",
                Ignored::AccessTestObject,
            ),
            (
                "cur/report/20240601-20240701/report-Manifest.json",
                Ignored::LegacyManifest,
            ),
            (
                "exports/kubecur/metadata/BILLING_PERIOD=June/kubecur-Manifest.json",
                Ignored::UnreadablePeriod,
            ),
            ("notes/readme.txt", Ignored::Unrelated),
        ];
        for (key, reason) in cases {
            assert_eq!(classify(key), DeliveryObject::Ignored(reason), "{key}");
        }
    }

    #[test]
    fn manifest_gives_execution_id_files_and_columns() {
        let json = br#"{"executionId":"e-123","billingPeriod":{"start":"2024-06-01T00:00:00.000Z"},
            "dataFiles":["s3://b/exports/kubecur/data/BILLING_PERIOD=2024-06/kubecur-00001.snappy.parquet"],
            "columns":[{"name":"line_item_unblended_cost","type":"double"},"resource_tags"]}"#;
        let manifest = parse_manifest("m.json", json).expect("valid manifest");
        assert_eq!(manifest.execution_id, "e-123");
        assert_eq!(manifest.data_files.len(), 1);
        assert_eq!(
            manifest.columns,
            ["line_item_unblended_cost", "resource_tags"]
        );
    }

    #[test]
    fn unusable_manifests_say_why() {
        let cases: [(&[u8], &str); 4] = [
            (b"{not json", "not JSON"),
            (br#"{"dataFiles":[]}"#, "no `executionId`"),
            (br#"{"executionId":"e"}"#, "no `dataFiles`"),
            (
                br#"{"executionId":"e","dataFiles":["/local/file.parquet"]}"#,
                "not an s3:// URI",
            ),
        ];
        for (bytes, needle) in cases {
            let err = parse_manifest("exports/m.json", bytes)
                .expect_err(needle)
                .to_string();
            assert!(
                err.contains(needle) && err.contains("exports/m.json"),
                "{err}"
            );
        }
    }
}
