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
  SUM("line_item") AS "line_items"
FROM (
  SELECT
    CAST(CAST("chargeperiodstart" AS DATE) AS VARCHAR) AS "day",
    COALESCE(NULLIF(TRIM(element_at("tags", 'kubernetes_cluster')), ''), NULLIF(TRIM(element_at("tags", 'user:kubernetes_cluster')), ''), '__unallocated__') AS "cluster",
    COALESCE(NULLIF(TRIM(element_at("tags", 'kubernetes_namespace')), ''), NULLIF(TRIM(element_at("tags", 'user:kubernetes_namespace')), ''), '__unallocated__') AS "namespace",
    COALESCE(NULLIF(TRIM(element_at("tags", 'kubernetes_deployment')), ''), NULLIF(TRIM(element_at("tags", 'user:kubernetes_deployment')), ''), '__unallocated__') AS "deployment",
    COALESCE(NULLIF(TRIM(element_at("tags", 'kubernetes_pod')), ''), NULLIF(TRIM(element_at("tags", 'user:kubernetes_pod')), ''), '__unallocated__') AS "pod",
    COALESCE(NULLIF(TRIM(element_at("tags", 'kubernetes_daemonset')), ''), NULLIF(TRIM(element_at("tags", 'user:kubernetes_daemonset')), ''), '__unallocated__') AS "daemonset",
    COALESCE(NULLIF(TRIM(element_at("tags", 'kubernetes_container')), ''), NULLIF(TRIM(element_at("tags", 'user:kubernetes_container')), ''), '__unallocated__') AS "container",
    COALESCE("servicename", '') AS "service",
    COALESCE("subaccountid", '') AS "account",
    COALESCE("listcost", 0E0) AS "list_cost",
    COALESCE("billedcost", 0E0) AS "net_cost",
    COALESCE("effectivecost", 0E0) AS "amortized_cost",
    COALESCE("effectivecost", 0E0) AS "amortized_net_cost",
    NULLIF(TRIM("resourceid"), '') AS "resource_id",
    1 AS "line_item"
  FROM "athenacurcfn_kubecur"."2024_cur"
  WHERE "billing_period" IN ('2024-05', '2024-06')
    AND "chargeperiodstart" >= TIMESTAMP '2024-05-25 00:00:00' AND "chargeperiodstart" < TIMESTAMP '2024-06-08 00:00:00'
    AND COALESCE("x_operation", '') NOT IN ('EKSPod-EC2', 'ECSTask-EC2')
) AS "line_items"
GROUP BY "day", "cluster", "namespace", "deployment", "pod", "daemonset", "container", "service", "account", CASE WHEN "namespace" = '__unallocated__' THEN 0 ELSE 1 END