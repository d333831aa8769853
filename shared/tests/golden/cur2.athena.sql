SELECT
  "namespace",
  "service",
  CASE WHEN "namespace" = '__unallocated__' THEN 0 ELSE 1 END AS "allocated",
  SUM("list_cost") AS "list_cost",
  SUM("net_cost") AS "net_cost",
  SUM("amortized_cost") AS "amortized_cost",
  SUM("amortized_net_cost") AS "amortized_net_cost",
  COUNT(DISTINCT "resource_id") AS "resources",
  SUM("line_item") AS "line_items",
  SUM("tag_source_0") AS "tag_source_0",
  SUM("tag_source_1") AS "tag_source_1",
  SUM("tag_source_2") AS "tag_source_2",
  SUM("tag_source_3") AS "tag_source_3",
  SUM("tag_source_4") AS "tag_source_4"
FROM (
  SELECT
    COALESCE(NULLIF(TRIM(element_at("resource_tags", 'user_kubernetes_namespace')), ''), '__unallocated__') AS "namespace",
    COALESCE(NULLIF(TRIM("line_item_product_code"), ''), '') AS "service",
    CASE WHEN "line_item_line_item_type" IN ('EdpDiscount', 'PrivateRateDiscount') THEN 0E0 ELSE COALESCE("line_item_unblended_cost", 0E0) END AS "list_cost",
    COALESCE("line_item_net_unblended_cost", "line_item_unblended_cost", 0E0) AS "net_cost",
    CASE WHEN "line_item_line_item_type" IN ('DiscountedUsage') THEN COALESCE("reservation_effective_cost", 0E0) WHEN "line_item_line_item_type" IN ('SavingsPlanNegation', 'SavingsPlanUpfrontFee') THEN 0E0 WHEN "line_item_line_item_type" IN ('Fee') AND COALESCE("reservation_reservation_arn", '') <> '' THEN 0E0 ELSE COALESCE("line_item_unblended_cost", 0E0) END AS "amortized_cost",
    CASE WHEN "line_item_line_item_type" IN ('DiscountedUsage') THEN COALESCE("reservation_effective_cost", 0E0) WHEN "line_item_line_item_type" IN ('SavingsPlanNegation', 'SavingsPlanUpfrontFee') THEN 0E0 WHEN "line_item_line_item_type" IN ('Fee') AND COALESCE("reservation_reservation_arn", '') <> '' THEN 0E0 ELSE COALESCE("line_item_net_unblended_cost", "line_item_unblended_cost", 0E0) END AS "amortized_net_cost",
    COALESCE(NULLIF(TRIM("line_item_resource_id"), ''), CAST(NULL AS VARCHAR)) AS "resource_id",
    1 AS "line_item",
    CASE WHEN NULLIF(TRIM(element_at("resource_tags", 'user_kubernetes_cluster')), '') IS NULL THEN 0 ELSE 1 END AS "tag_source_0",
    CASE WHEN NULLIF(TRIM(element_at("resource_tags", 'user_kubernetes_deployment')), '') IS NULL THEN 0 ELSE 1 END AS "tag_source_1",
    CASE WHEN NULLIF(TRIM(element_at("resource_tags", 'user_kubernetes_pod')), '') IS NULL THEN 0 ELSE 1 END AS "tag_source_2",
    CASE WHEN NULLIF(TRIM(element_at("resource_tags", 'user_kubernetes_daemonset')), '') IS NULL THEN 0 ELSE 1 END AS "tag_source_3",
    CASE WHEN NULLIF(TRIM(element_at("resource_tags", 'user_kubernetes_container')), '') IS NULL THEN 0 ELSE 1 END AS "tag_source_4"
  FROM "athenacurcfn_kubecur"."2024_cur"
  WHERE "billing_period" IN ('2024-06')
    AND "line_item_usage_start_date" >= TIMESTAMP '2024-06-01 00:00:00' AND "line_item_usage_start_date" < TIMESTAMP '2024-07-01 00:00:00'
    AND ("line_item_operation" IS NULL OR "line_item_operation" NOT IN ('EKSPod-EC2', 'ECSTask-EC2'))
) AS "line_items"
GROUP BY "namespace", "service", CASE WHEN "namespace" = '__unallocated__' THEN 0 ELSE 1 END