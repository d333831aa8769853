//! The synthetic estate: accounts, tagged resources and the legacy line items they bill, drawn from a
//! seeded generator. Every other flavour is written from these line items.

use super::cur2::cur2_key;
use super::legacy::legacy_tag_column;
use super::{SampleSpec, FIRST_DAY};
use crate::domain::columns::aws_column_name;
use crate::domain::expr::LineItemValues;
use chrono::{Days, NaiveDate, NaiveDateTime};
use std::collections::BTreeMap;

const ACCOUNTS: [&str; 3] = ["111122223333", "444455556666", "777788889999"];
pub(super) const PAYER: &str = "999900001111";

// Tag keys as written on resources. Legacy CUR merges keys that normalise alike (`Team`, `team`).
const KEY_NAMESPACE: &str = "kubernetes_namespace";
const KEY_DEPLOYMENT: &str = "kubernetes_deployment";
const KEY_POD: &str = "kubernetes_pod";
const KEY_DAEMONSET: &str = "kubernetes_daemonset";
const KEY_CONTAINER: &str = "kubernetes_container";
const KEY_CLUSTER: &str = "kubernetes_cluster";
const KEY_PART_OF: &str = "app.kubernetes.io/part-of";
const KEY_PVC_NAMESPACE: &str = "kubernetes.io/created-for/pvc/namespace";
const KEY_TEAM_UPPER: &str = "Team";
const KEY_TEAM_LOWER: &str = "team";
const KEY_COST_CENTER: &str = "CostCenter";
const KEY_EKS_CLUSTER: &str = "aws:eks:cluster-name";

pub(super) const TAG_KEYS: [&str; 12] = [
    KEY_NAMESPACE,
    KEY_DEPLOYMENT,
    KEY_POD,
    KEY_DAEMONSET,
    KEY_CONTAINER,
    KEY_CLUSTER,
    KEY_PART_OF,
    KEY_PVC_NAMESPACE,
    KEY_TEAM_UPPER,
    KEY_TEAM_LOWER,
    KEY_COST_CENTER,
    KEY_EKS_CLUSTER,
];

const NAMESPACES: [&str; 7] = [
    "payments",
    "checkout",
    "search",
    "zahlungsverkehr-ü",
    "支付",
    "data-platform",
    "kube-system",
];
const CLUSTERS: [&str; 2] = ["prod-eu-1", "prod-us-1"];

/// SplitMix64: small, fast, deterministic.
pub(super) struct Rng(pub(super) u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }
    fn unit(&mut self) -> f64 {
        (self.next() >> 11) as f64 / (1u64 << 53) as f64
    }
    fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.below(items.len() as u64) as usize]
    }
}

/// A resource in the synthetic estate, with its tags.
pub(super) struct Resource {
    id: String,
    product_code: &'static str,
    service_name: &'static str,
    usage_type: &'static str,
    operation: &'static str,
    account: &'static str,
    hourly: f64,
    tags: Vec<(&'static str, String)>,
}

/// The sample's resources: the standard estate of 240, then `pods` resources each tagged with a pod
/// of its own (`kubecur sample --pods N`, for benchmarks at scale). Without pods the draws, and so the
/// files, are those of every earlier sample.
pub(super) fn resource_pool(rng: &mut Rng, pods: u64) -> Vec<Resource> {
    let kinds: [(&str, &str, &str, &str); 6] = [
        (
            "AmazonRDS",
            "Amazon Relational Database Service",
            "InstanceUsage:db.r6g.large",
            "CreateDBInstance",
        ),
        (
            "AmazonS3",
            "Amazon Simple Storage Service",
            "TimedStorage-ByteHrs",
            "StandardStorage",
        ),
        (
            "AmazonEC2",
            "Amazon Elastic Compute Cloud",
            "EBS:VolumeUsage.gp3",
            "CreateVolume-Gp3",
        ),
        (
            "AmazonDynamoDB",
            "Amazon DynamoDB",
            "TimedStorage-ByteHrs",
            "StandardStorage",
        ),
        (
            "AWSQueueService",
            "Amazon Simple Queue Service",
            "Requests-Tier1",
            "GetQueueAttributes",
        ),
        (
            "AmazonElastiCache",
            "Amazon ElastiCache",
            "NodeUsage:cache.r6g.large",
            "CreateCacheCluster:0002",
        ),
    ];
    let id_of = |product_code: &str, account: &str, index: u64| match product_code {
        "AmazonRDS" => format!("arn:aws:rds:eu-west-1:{account}:db:app-db-{index}"),
        "AmazonS3" => format!("kubecur-sample-bucket-{index}"),
        "AmazonEC2" => format!("vol-0{index:016x}"),
        "AmazonDynamoDB" => {
            format!("arn:aws:dynamodb:eu-west-1:{account}:table/orders-{index}")
        }
        "AWSQueueService" => format!("arn:aws:sqs:eu-west-1:{account}:events-{index}"),
        _ => format!("arn:aws:elasticache:eu-west-1:{account}:cluster:cache-{index}"),
    };
    let mut pool = Vec::new();
    for index in 0..240u64 {
        let kind = *rng.pick(&kinds);
        let account = *rng.pick(&ACCOUNTS);
        let id = id_of(kind.0, account, index);
        let mut tags: Vec<(&'static str, String)> = Vec::new();
        let roll = rng.below(100);
        let namespace = rng.pick(&NAMESPACES).to_string();
        let cluster = rng.pick(&CLUSTERS).to_string();
        if roll < 70 {
            // Fully or partially tagged by the platform's conventions.
            tags.push((KEY_NAMESPACE, namespace.clone()));
            tags.push((KEY_CLUSTER, cluster.clone()));
            tags.push((KEY_EKS_CLUSTER, cluster));
            if rng.below(4) > 0 {
                tags.push((KEY_DEPLOYMENT, format!("{namespace}-api")));
                if rng.below(3) == 0 {
                    tags.push((KEY_POD, format!("{namespace}-api-7d9f{index:03}")));
                    tags.push((KEY_CONTAINER, "server".into()));
                }
            } else if namespace == "kube-system" {
                tags.push((KEY_DAEMONSET, "ebs-csi-node".into()));
            }
            tags.push((KEY_PART_OF, format!("{namespace}-suite")));
        } else if roll < 78 {
            // An EBS volume created by the CSI driver carries only its PVC's namespace.
            tags.push((KEY_PVC_NAMESPACE, namespace));
        } else if roll < 82 {
            // Blank and whitespace-only values count as absent.
            tags.push((
                KEY_NAMESPACE,
                if roll.is_multiple_of(2) {
                    String::new()
                } else {
                    "   ".into()
                },
            ));
        }
        match rng.below(3) {
            0 => tags.push((KEY_TEAM_UPPER, "Platform".into())),
            1 => tags.push((KEY_TEAM_LOWER, "payments-team".into())),
            _ => {}
        }
        if rng.below(5) == 0 {
            tags.push((KEY_COST_CENTER, "CC-1234 \"core\"".into()));
        }
        pool.push(Resource::new(kind, account, id, rng, tags));
    }
    for pod in 0..pods {
        let index = 240 + pod;
        let kind = *rng.pick(&kinds);
        let account = *rng.pick(&ACCOUNTS);
        let namespace = rng.pick(&NAMESPACES).to_string();
        let cluster = rng.pick(&CLUSTERS).to_string();
        let tags = vec![
            (KEY_CLUSTER, cluster),
            (KEY_DEPLOYMENT, format!("{namespace}-worker")),
            (KEY_POD, format!("{namespace}-worker-{pod:07x}")),
            (KEY_CONTAINER, "worker".into()),
            (KEY_NAMESPACE, namespace),
        ];
        let id = id_of(kind.0, account, index);
        pool.push(Resource::new(kind, account, id, rng, tags));
    }
    pool
}

impl Resource {
    /// A resource of `kind` (product code, service name, usage type, operation); its hourly cost is
    /// the next draw of `rng`, after every draw its tags took.
    fn new(
        (product_code, service_name, usage_type, operation): (
            &'static str,
            &'static str,
            &'static str,
            &'static str,
        ),
        account: &'static str,
        id: String,
        rng: &mut Rng,
        tags: Vec<(&'static str, String)>,
    ) -> Resource {
        Resource {
            id,
            product_code,
            service_name,
            usage_type,
            operation,
            account,
            hourly: 0.01 + rng.unit() * 2.0,
            tags,
        }
    }
}

/// One synthetic legacy line item. Also implements [`LineItemValues`] so the domain rules price it.
#[derive(Debug, Clone, Default)]
pub struct SampleLineItem {
    pub usage_start: NaiveDateTime,
    pub account: &'static str,
    pub line_item_type: &'static str,
    pub product_code: &'static str,
    pub service_name: &'static str,
    pub usage_type: &'static str,
    pub operation: &'static str,
    pub resource_id: String,
    pub numbers: BTreeMap<&'static str, f64>,
    pub reservation_arn: String,
    pub tags: Vec<(&'static str, String)>,
}

impl SampleLineItem {
    /// The end of the line item's usage: every sample line item covers one hour.
    pub(super) fn usage_end(&self) -> NaiveDateTime {
        self.usage_start + chrono::Duration::hours(1)
    }
}

impl LineItemValues for SampleLineItem {
    fn number(&self, column: &str) -> Option<f64> {
        self.numbers.get(column).copied()
    }
    fn text(&self, column: &str) -> Option<&str> {
        match column {
            "line_item_line_item_type" => Some(self.line_item_type),
            "line_item_product_code" => Some(self.product_code),
            "line_item_usage_account_id" => Some(self.account),
            "line_item_operation" => Some(self.operation),
            "line_item_resource_id" => Some(&self.resource_id),
            "reservation_reservation_a_r_n" => Some(&self.reservation_arn),
            tag_column if tag_column.starts_with("resource_tags_") => {
                // A legacy flat tag column: the first tag whose key normalises to it (AWS merges).
                self.tags
                    .iter()
                    .find(|(key, _)| legacy_tag_column(key) == tag_column)
                    .map(|(_, v)| v.as_str())
            }
            _ => None,
        }
    }
    fn tag(&self, column: &str, key: &str) -> Option<&str> {
        let key_of: fn(&str) -> String = if column == "resource_tags" {
            cur2_key
        } else {
            |k| k.to_string()
        };
        self.tags
            .iter()
            .find(|(k, _)| key_of(k) == key)
            .map(|(_, v)| v.as_str())
    }
    fn day(&self, _: &str) -> Option<NaiveDate> {
        Some(self.usage_start.date())
    }
}

pub(super) const NUMBER_COLUMNS: [&str; 15] = [
    "lineItem/UsageAmount",
    "lineItem/UnblendedCost",
    "lineItem/NetUnblendedCost",
    "reservation/EffectiveCost",
    "reservation/NetEffectiveCost",
    "reservation/UnusedAmortizedUpfrontFeeForBillingPeriod",
    "reservation/NetUnusedAmortizedUpfrontFeeForBillingPeriod",
    "reservation/UnusedRecurringFee",
    "reservation/NetUnusedRecurringFee",
    "savingsPlan/SavingsPlanEffectiveCost",
    "savingsPlan/NetSavingsPlanEffectiveCost",
    "savingsPlan/TotalCommitmentToDate",
    "savingsPlan/UsedCommitment",
    "savingsPlan/RecurringCommitmentForBillingPeriod",
    "pricing/publicOnDemandCost",
];

pub(super) fn number_column(header: &str) -> &'static str {
    // The canonical (Athena) names of NUMBER_COLUMNS, leaked once per process for 'static keys.
    use std::sync::OnceLock;
    static NAMES: OnceLock<BTreeMap<&'static str, &'static str>> = OnceLock::new();
    let names = NAMES.get_or_init(|| {
        NUMBER_COLUMNS
            .iter()
            .map(|h| (*h, &*Box::leak(aws_column_name(h).into_boxed_str())))
            .collect()
    });
    names.get(header).copied().unwrap_or("")
}

/// The line item types and their weights (out of 1000).
const TYPE_WEIGHTS: [(&str, u64); 17] = [
    ("Usage", 700),
    ("DiscountedUsage", 60),
    ("SavingsPlanCoveredUsage", 80),
    ("SavingsPlanNegation", 40),
    ("RIFee", 5),
    ("Fee", 6),
    ("SavingsPlanRecurringFee", 5),
    ("SavingsPlanUpfrontFee", 2),
    ("Credit", 12),
    ("Refund", 4),
    ("Tax", 20),
    ("EdpDiscount", 25),
    ("PrivateRateDiscount", 10),
    ("BundledDiscount", 5),
    ("Discount", 4),
    ("SplitCost", 20), // EKS split-cost rows (operation EKSPod-EC2): excluded from totals.
    ("FutureLineItemType", 2),
];

/// Line item `row` of `total_rows`, spread evenly over `days` days from [`FIRST_DAY`].
pub(super) fn generate_item(
    rng: &mut Rng,
    pool: &[Resource],
    row: u64,
    total_rows: u64,
    days: u64,
) -> SampleLineItem {
    let total_weight: u64 = TYPE_WEIGHTS.iter().map(|(_, w)| w).sum();
    let mut ticket = rng.below(total_weight);
    let mut kind = "Usage";
    for (name, weight) in TYPE_WEIGHTS {
        if ticket < weight {
            kind = name;
            break;
        }
        ticket -= weight;
    }
    let resource = &pool[rng.below(pool.len() as u64) as usize];
    let start = NaiveDate::from_ymd_opt(FIRST_DAY.0, FIRST_DAY.1, FIRST_DAY.2).unwrap_or_default();
    let day = (row * days) / total_rows.max(1);
    let hour = rng.below(24);
    let usage_start = start
        .checked_add_days(Days::new(day))
        .and_then(|d| d.and_hms_opt(hour as u32, 0, 0))
        .unwrap_or_default();
    let amount = (resource.hourly * (0.5 + rng.unit())).max(0.0001);
    let cents = |v: f64| (v * 1e6).round() / 1e6;
    let mut item = SampleLineItem {
        usage_start,
        account: resource.account,
        line_item_type: kind,
        product_code: resource.product_code,
        service_name: resource.service_name,
        usage_type: resource.usage_type,
        operation: resource.operation,
        resource_id: resource.id.clone(),
        numbers: BTreeMap::new(),
        reservation_arn: String::new(),
        tags: resource.tags.clone(),
    };
    let mut set = |header: &str, value: f64| {
        item.numbers.insert(number_column(header), cents(value));
    };
    set("lineItem/UsageAmount", 1.0);
    set("pricing/publicOnDemandCost", amount);
    let discount = 0.97; // a 3 % EDP shows up in net columns.
    match kind {
        "DiscountedUsage" => {
            set("lineItem/UnblendedCost", 0.0);
            set("lineItem/NetUnblendedCost", 0.0);
            set("reservation/EffectiveCost", amount * 0.6);
            set("reservation/NetEffectiveCost", amount * 0.6 * discount);
        }
        "SavingsPlanCoveredUsage" => {
            set("lineItem/UnblendedCost", amount);
            set("lineItem/NetUnblendedCost", amount * discount);
            set("savingsPlan/SavingsPlanEffectiveCost", amount * 0.7);
            set(
                "savingsPlan/NetSavingsPlanEffectiveCost",
                amount * 0.7 * discount,
            );
        }
        "SavingsPlanNegation" => {
            set("lineItem/UnblendedCost", -amount);
            set("lineItem/NetUnblendedCost", -amount * discount);
        }
        "RIFee" => {
            set("lineItem/UnblendedCost", amount * 20.0);
            set("lineItem/NetUnblendedCost", amount * 20.0 * discount);
            set(
                "reservation/UnusedAmortizedUpfrontFeeForBillingPeriod",
                amount * 2.0,
            );
            set(
                "reservation/NetUnusedAmortizedUpfrontFeeForBillingPeriod",
                amount * 2.0 * discount,
            );
            set("reservation/UnusedRecurringFee", amount);
            set("reservation/NetUnusedRecurringFee", amount * discount);
        }
        "SavingsPlanRecurringFee" => {
            set("lineItem/UnblendedCost", amount * 10.0);
            set("lineItem/NetUnblendedCost", amount * 10.0 * discount);
            set("savingsPlan/TotalCommitmentToDate", amount * 10.0);
            set("savingsPlan/UsedCommitment", amount * 8.5);
            set(
                "savingsPlan/RecurringCommitmentForBillingPeriod",
                amount * 300.0,
            );
        }
        "SavingsPlanUpfrontFee" => {
            set("lineItem/UnblendedCost", amount * 100.0);
            set("lineItem/NetUnblendedCost", amount * 100.0 * discount);
        }
        "Credit"
        | "Refund"
        | "EdpDiscount"
        | "PrivateRateDiscount"
        | "BundledDiscount"
        | "Discount" => {
            set("lineItem/UnblendedCost", -amount * 0.1);
            set("lineItem/NetUnblendedCost", -amount * 0.1);
        }
        _ => {
            set("lineItem/UnblendedCost", amount);
            set("lineItem/NetUnblendedCost", amount * discount);
        }
    }
    match kind {
        "Fee" => {
            // Half the fees are RI upfront fees (amortized away), half Marketplace fees (kept).
            if rng.below(2) == 0 {
                item.reservation_arn = format!(
                    "arn:aws:ec2:eu-west-1:{}:reserved-instances/ri-{row}",
                    resource.account
                );
            }
            item.product_code = if item.reservation_arn.is_empty() {
                "AWSMarketplace"
            } else {
                "AmazonEC2"
            };
        }
        "DiscountedUsage" | "RIFee" => {
            item.reservation_arn = format!(
                "arn:aws:rds:eu-west-1:{}:ri:ri-{}",
                resource.account,
                row % 7
            );
        }
        _ => {}
    }
    if matches!(
        kind,
        "RIFee"
            | "SavingsPlanRecurringFee"
            | "SavingsPlanUpfrontFee"
            | "Tax"
            | "Credit"
            | "Refund"
            | "EdpDiscount"
            | "PrivateRateDiscount"
            | "BundledDiscount"
            | "Discount"
    ) {
        // Commitment fees and account-level adjustments carry no resource and no tags
        // (docs/cur-reference.md#cost-rules).
        item.resource_id.clear();
        item.tags.clear();
    }
    if kind == "Tax" {
        item.product_code = "AWSSupportBusiness";
    }
    if kind == "SplitCost" {
        item.line_item_type = "Usage";
        item.operation = "EKSPod-EC2";
        item.product_code = "AmazonEC2";
    }
    item
}

/// Generates the line items of a sample in memory (for tests that compare engines with the reference).
pub fn sample_line_items(spec: &SampleSpec) -> Vec<SampleLineItem> {
    let mut rng = Rng(spec.seed);
    let pool = resource_pool(&mut rng, spec.pods);
    (0..spec.rows)
        .map(|row| generate_item(&mut rng, &pool, row, spec.rows, spec.days))
        .collect()
}
