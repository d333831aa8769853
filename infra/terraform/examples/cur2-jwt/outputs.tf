output "api_endpoint" {
  description = "Base URL of the kubecur API (send Authorization: Bearer <JWT>)."
  value       = module.kubecur.api_endpoint
}
