SELECT
  "day",
  "cluster",
  "namespace",
  "deployment",
  "pod",
  "daemonset",
  "container",
  "service",
  "account",
  CASE WHEN "namespace" = '__unallocated__' THEN 0 ELSE 1 END AS "allocated",
  SUM("list_cost") AS "list_cost",
  SUM("net_cost") AS "net_cost",
  SUM("amortized_cost") AS "amortized_cost",
  SUM("amortized_net_cost") AS "amortized_net_cost",
  COUNT(DISTINCT "resource_id") AS "resources",
  SUM("line_item") AS "line_items",
  SUM("tag_source_0") AS "tag_source_0",
  SUM("tag_source_1") AS "tag_source_1"
FROM (
  SELECT
    CAST("line_item_usage_start_date" AS DATE) AS "day",
    COALESCE(NULLIF(TRIM("resource_tags_user_kubernetes_cluster"), ''), '__unallocated__') AS "cluster",
    COALESCE(NULLIF(TRIM("resource_tags_user_kubernetes_namespace"), ''), NULLIF(TRIM("resource_tags_user_app_kubernetes_io_part_of"), ''), '__unallocated__') AS "namespace",
    COALESCE(NULLIF(TRIM("resource_tags_user_kubernetes_deployment"), ''), '__unallocated__') AS "deployment",
    '__unallocated__' AS "pod",
    '__unallocated__' AS "daemonset",
    '__unallocated__' AS "container",
    COALESCE(NULLIF(TRIM("line_item_product_code"), ''), '') AS "service",
    COALESCE(NULLIF(TRIM("line_item_usage_account_id"), ''), '') AS "account",
    CASE WHEN "line_item_line_item_type" IN ('EdpDiscount', 'PrivateRateDiscount') THEN 0E0 ELSE COALESCE("line_item_unblended_cost", 0E0) END AS "list_cost",
    COALESCE("line_item_net_unblended_cost", "line_item_unblended_cost", 0E0) AS "net_cost",
    CASE WHEN "line_item_line_item_type" IN ('DiscountedUsage') THEN COALESCE("reservation_effective_cost", 0E0) WHEN "line_item_line_item_type" IN ('SavingsPlanCoveredUsage') THEN COALESCE("savings_plan_savings_plan_effective_cost", 0E0) WHEN "line_item_line_item_type" IN ('SavingsPlanNegation', 'SavingsPlanUpfrontFee') THEN 0E0 WHEN "line_item_line_item_type" IN ('Fee') AND COALESCE("reservation_reservation_a_r_n", '') <> '' THEN 0E0 WHEN "line_item_line_item_type" IN ('RIFee') THEN (COALESCE("reservation_unused_amortized_upfront_fee_for_billing_period", 0E0) + COALESCE("reservation_unused_recurring_fee", 0E0)) WHEN "line_item_line_item_type" IN ('SavingsPlanRecurringFee') THEN (COALESCE("savings_plan_total_commitment_to_date", 0E0) - COALESCE("savings_plan_used_commitment", 0E0)) ELSE COALESCE("line_item_unblended_cost", 0E0) END AS "amortized_cost",
    CASE WHEN "line_item_line_item_type" IN ('DiscountedUsage') THEN COALESCE("reservation_effective_cost", 0E0) WHEN "line_item_line_item_type" IN ('SavingsPlanCoveredUsage') THEN COALESCE("savings_plan_savings_plan_effective_cost", 0E0) WHEN "line_item_line_item_type" IN ('SavingsPlanNegation', 'SavingsPlanUpfrontFee') THEN 0E0 WHEN "line_item_line_item_type" IN ('Fee') AND COALESCE("reservation_reservation_a_r_n", '') <> '' THEN 0E0 WHEN "line_item_line_item_type" IN ('RIFee') THEN (COALESCE("reservation_unused_amortized_upfront_fee_for_billing_period", 0E0) + COALESCE("reservation_unused_recurring_fee", 0E0)) WHEN "line_item_line_item_type" IN ('SavingsPlanRecurringFee') THEN (COALESCE("savings_plan_total_commitment_to_date", 0E0) - COALESCE("savings_plan_used_commitment", 0E0)) ELSE COALESCE("line_item_net_unblended_cost", "line_item_unblended_cost", 0E0) END AS "amortized_net_cost",
    COALESCE(NULLIF(TRIM("line_item_resource_id"), ''), CAST(NULL AS VARCHAR)) AS "resource_id",
    1 AS "line_item",
    CASE WHEN NULLIF(TRIM("resource_tags_user_kubernetes_namespace"), '') IS NULL THEN 0 ELSE 1 END AS "tag_source_0",
    CASE WHEN NULLIF(TRIM("resource_tags_user_app_kubernetes_io_part_of"), '') IS NULL THEN 0 ELSE 1 END AS "tag_source_1"
  FROM "athenacurcfn_kubecur"."2024_cur"
  WHERE (("year" = '2024' AND "month" = '6'))
    AND "line_item_usage_start_date" >= TIMESTAMP '2024-06-01 00:00:00' AND "line_item_usage_start_date" < TIMESTAMP '2024-07-01 00:00:00'
    AND ("line_item_operation" IS NULL OR "line_item_operation" NOT IN ('EKSPod-EC2', 'ECSTask-EC2'))
    AND "line_item_usage_account_id" IN ('123456789012')
) AS "line_items"
GROUP BY "day", "cluster", "namespace", "deployment", "pod", "daemonset", "container", "service", "account", CASE WHEN "namespace" = '__unallocated__' THEN 0 ELSE 1 END