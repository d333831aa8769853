SELECT COUNT(NULLIF(TRIM("resource_tags_user_kubernetes_cluster"), '')) AS "source_0", COUNT(NULLIF(TRIM("resource_tags_user_kubernetes_namespace"), '')) AS "source_1", COUNT(NULLIF(TRIM("resource_tags_user_app_kubernetes_io_part_of"), '')) AS "source_2", COUNT(NULLIF(TRIM("resource_tags_user_kubernetes_deployment"), '')) AS "source_3" FROM "athenacurcfn_kubecur"."2024_cur"
WHERE (("year" = '2024' AND "month" = '6'))
  AND "line_item_usage_start_date" >= TIMESTAMP '2024-06-01 00:00:00' AND "line_item_usage_start_date" < TIMESTAMP '2024-07-01 00:00:00'
  AND COALESCE("line_item_operation", '') NOT IN ('EKSPod-EC2', 'ECSTask-EC2')
  AND "line_item_usage_account_id" IN ('123456789012')