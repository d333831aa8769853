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
  "label_b806e99413c8f9b4",
  "resource_key",
  CASE WHEN "namespace" = '__unallocated__' THEN 0 ELSE 1 END AS "allocated",
  SUM("list_cost") AS "list_cost",
  SUM("net_cost") AS "net_cost",
  SUM("amortized_cost") AS "amortized_cost",
  SUM("amortized_net_cost") AS "amortized_net_cost",
  array_join(array_agg(DISTINCT "resource_hash") FILTER (WHERE "resource_hash" IS NOT NULL), ' ') AS "resource_hashes",
  SUM("line_item") AS "line_items"
FROM (
  SELECT
    CAST("line_item_usage_start_date" AS DATE) AS "day",
    COALESCE(NULLIF(TRIM(element_at("resource_tags", 'user_kubernetes_cluster')), ''), '__unallocated__') AS "cluster",
    COALESCE(NULLIF(TRIM(element_at("resource_tags", 'user_kubernetes_namespace')), ''), '__unallocated__') AS "namespace",
    COALESCE(NULLIF(TRIM(element_at("resource_tags", 'user_kubernetes_deployment')), ''), '__unallocated__') AS "deployment",
    COALESCE(NULLIF(TRIM(element_at("resource_tags", 'user_kubernetes_pod')), ''), '__unallocated__') AS "pod",
    COALESCE(NULLIF(TRIM(element_at("resource_tags", 'user_kubernetes_daemonset')), ''), '__unallocated__') AS "daemonset",
    COALESCE(NULLIF(TRIM(element_at("resource_tags", 'user_kubernetes_container')), ''), '__unallocated__') AS "container",
    COALESCE(NULLIF(TRIM("line_item_product_code"), ''), '') AS "service",
    COALESCE(NULLIF(TRIM("line_item_usage_account_id"), ''), '') AS "account",
    COALESCE(NULLIF(TRIM(element_at("resource_tags", 'user_team')), ''), '__unallocated__') AS "label_b806e99413c8f9b4",
    CASE WHEN COALESCE(NULLIF(TRIM("line_item_resource_id"), ''), '') IN ('arn:aws:rds:eu-west-1:111122223333:db:shared-postgres', 'vol-0''quoted') THEN COALESCE(NULLIF(TRIM("line_item_resource_id"), ''), '') ELSE '' END AS "resource_key",
    CASE WHEN "line_item_line_item_type" IN ('EdpDiscount', 'PrivateRateDiscount') THEN 0E0 ELSE COALESCE("line_item_unblended_cost", 0E0) END AS "list_cost",
    COALESCE("line_item_net_unblended_cost", "line_item_unblended_cost", 0E0) AS "net_cost",
    CASE WHEN "line_item_line_item_type" IN ('DiscountedUsage') THEN COALESCE("reservation_effective_cost", 0E0) WHEN "line_item_line_item_type" IN ('SavingsPlanNegation', 'SavingsPlanUpfrontFee') THEN 0E0 ELSE COALESCE("line_item_unblended_cost", 0E0) END AS "amortized_cost",
    CASE WHEN "line_item_line_item_type" IN ('DiscountedUsage') THEN COALESCE("reservation_effective_cost", 0E0) WHEN "line_item_line_item_type" IN ('SavingsPlanNegation', 'SavingsPlanUpfrontFee') THEN 0E0 ELSE COALESCE("line_item_net_unblended_cost", "line_item_unblended_cost", 0E0) END AS "amortized_net_cost",
    COALESCE(NULLIF(TRIM("line_item_resource_id"), ''), CAST(NULL AS VARCHAR)) AS "resource_id",
    substr(lower(to_hex(md5(to_utf8(COALESCE(NULLIF(TRIM("line_item_resource_id"), ''), CAST(NULL AS VARCHAR)))))), 1, 16) AS "resource_hash",
    1 AS "line_item"
  FROM "athenacurcfn_kubecur"."2024_cur"
  WHERE "billing_period" IN ('2024-06')
    AND "line_item_usage_start_date" >= TIMESTAMP '2024-06-01 00:00:00' AND "line_item_usage_start_date" < TIMESTAMP '2024-07-01 00:00:00'
    AND ("line_item_operation" IS NULL OR "line_item_operation" NOT IN ('EKSPod-EC2', 'ECSTask-EC2'))
) AS "line_items"
GROUP BY "day", "cluster", "namespace", "deployment", "pod", "daemonset", "container", "service", "account", "label_b806e99413c8f9b4", "resource_key", CASE WHEN "namespace" = '__unallocated__' THEN 0 ELSE 1 END