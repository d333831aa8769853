# The HTTP API (API Gateway v2, payload format 2.0): GET /allocation, GET /status, GET /openapi.json and
# the Cost Allocation page (GET / and its files under GET /page/{file}) -> allocation_api.
# Authorization is AWS_IAM (SigV4) by default or a JWT authorizer; no route is anonymous.

resource "aws_apigatewayv2_api" "kubecur" {
  name          = "${var.name_prefix}-api"
  description   = "kubecur allocation API"
  protocol_type = "HTTP"
  tags          = local.tags

  lifecycle {
    precondition {
      condition     = var.api_authorization != "JWT" || (var.jwt_issuer != "" && length(var.jwt_audience) > 0)
      error_message = "api_authorization = \"JWT\" needs jwt_issuer and at least one jwt_audience."
    }
  }
}

resource "aws_apigatewayv2_authorizer" "jwt" {
  count            = var.api_authorization == "JWT" ? 1 : 0
  api_id           = aws_apigatewayv2_api.kubecur.id
  name             = "${var.name_prefix}-jwt"
  authorizer_type  = "JWT"
  identity_sources = ["$request.header.Authorization"]

  jwt_configuration {
    issuer   = var.jwt_issuer
    audience = var.jwt_audience
  }
}

resource "aws_apigatewayv2_integration" "allocation_api" {
  api_id                 = aws_apigatewayv2_api.kubecur.id
  integration_type       = "AWS_PROXY"
  integration_method     = "POST"
  integration_uri        = aws_lambda_function.allocation_api.invoke_arn
  payload_format_version = "2.0"
  timeout_milliseconds   = 29000
}

resource "aws_apigatewayv2_route" "allocation" {
  api_id             = aws_apigatewayv2_api.kubecur.id
  route_key          = "GET /allocation"
  target             = "integrations/${aws_apigatewayv2_integration.allocation_api.id}"
  authorization_type = var.api_authorization
  authorizer_id      = var.api_authorization == "JWT" ? aws_apigatewayv2_authorizer.jwt[0].id : null
}

resource "aws_apigatewayv2_route" "status" {
  api_id             = aws_apigatewayv2_api.kubecur.id
  route_key          = "GET /status"
  target             = "integrations/${aws_apigatewayv2_integration.allocation_api.id}"
  authorization_type = var.api_authorization
  authorizer_id      = var.api_authorization == "JWT" ? aws_apigatewayv2_authorizer.jwt[0].id : null
}

resource "aws_apigatewayv2_route" "openapi" {
  api_id             = aws_apigatewayv2_api.kubecur.id
  route_key          = "GET /openapi.json"
  target             = "integrations/${aws_apigatewayv2_integration.allocation_api.id}"
  authorization_type = var.api_authorization
  authorizer_id      = var.api_authorization == "JWT" ? aws_apigatewayv2_authorizer.jwt[0].id : null
}

# The Cost Allocation page and its files: the same authorization as the data routes (the page reads only
# GET /allocation and GET /status; with AWS_IAM, open it through `kubecur serve --api URL`).
resource "aws_apigatewayv2_route" "page" {
  api_id             = aws_apigatewayv2_api.kubecur.id
  route_key          = "GET /"
  target             = "integrations/${aws_apigatewayv2_integration.allocation_api.id}"
  authorization_type = var.api_authorization
  authorizer_id      = var.api_authorization == "JWT" ? aws_apigatewayv2_authorizer.jwt[0].id : null
}

resource "aws_apigatewayv2_route" "page_files" {
  api_id             = aws_apigatewayv2_api.kubecur.id
  route_key          = "GET /page/{file}"
  target             = "integrations/${aws_apigatewayv2_integration.allocation_api.id}"
  authorization_type = var.api_authorization
  authorizer_id      = var.api_authorization == "JWT" ? aws_apigatewayv2_authorizer.jwt[0].id : null
}

resource "aws_cloudwatch_log_group" "api_access" {
  #checkov:skip=CKV_AWS_338: Retention is the log_retention_days variable (default 30 days, the design's choice for operational logs); set 365 or more where policy requires a year.
  name              = "/aws/apigateway/${var.name_prefix}-api"
  retention_in_days = var.log_retention_days
  kms_key_id        = aws_kms_key.kubecur.arn
  tags              = local.tags
}

resource "aws_apigatewayv2_stage" "default" {
  api_id      = aws_apigatewayv2_api.kubecur.id
  name        = "$default"
  auto_deploy = true

  default_route_settings {
    throttling_burst_limit = 50
    throttling_rate_limit  = 20
  }

  access_log_settings {
    destination_arn = aws_cloudwatch_log_group.api_access.arn
    format = jsonencode({
      requestId          = "$context.requestId"
      ip                 = "$context.identity.sourceIp"
      caller             = "$context.identity.caller"
      user               = "$context.identity.user"
      jwtSubject         = "$context.authorizer.claims.sub"
      requestTime        = "$context.requestTime"
      httpMethod         = "$context.httpMethod"
      routeKey           = "$context.routeKey"
      status             = "$context.status"
      protocol           = "$context.protocol"
      responseLength     = "$context.responseLength"
      integrationError   = "$context.integrationErrorMessage"
      integrationLatency = "$context.integrationLatency"
    })
  }

  tags = local.tags
}

# API Gateway may invoke the function only for the routes of this API (any stage):
# source ARN arn:aws:execute-api:<region>:<account>:<api id>/<stage>/<method>/<path>.
resource "aws_lambda_permission" "allocation_api_route_allocation" {
  statement_id  = "AllowApiGetAllocation"
  action        = "lambda:InvokeFunction"
  function_name = aws_lambda_function.allocation_api.function_name
  principal     = "apigateway.amazonaws.com"
  source_arn    = "${aws_apigatewayv2_api.kubecur.execution_arn}/*/GET/allocation"
}

resource "aws_lambda_permission" "allocation_api_route_status" {
  statement_id  = "AllowApiGetStatus"
  action        = "lambda:InvokeFunction"
  function_name = aws_lambda_function.allocation_api.function_name
  principal     = "apigateway.amazonaws.com"
  source_arn    = "${aws_apigatewayv2_api.kubecur.execution_arn}/*/GET/status"
}

resource "aws_lambda_permission" "allocation_api_route_openapi" {
  statement_id  = "AllowApiGetOpenApi"
  action        = "lambda:InvokeFunction"
  function_name = aws_lambda_function.allocation_api.function_name
  principal     = "apigateway.amazonaws.com"
  source_arn    = "${aws_apigatewayv2_api.kubecur.execution_arn}/*/GET/openapi.json"
}

resource "aws_lambda_permission" "allocation_api_route_page" {
  statement_id  = "AllowApiGetPage"
  action        = "lambda:InvokeFunction"
  function_name = aws_lambda_function.allocation_api.function_name
  principal     = "apigateway.amazonaws.com"
  source_arn    = "${aws_apigatewayv2_api.kubecur.execution_arn}/*/GET/"
}

resource "aws_lambda_permission" "allocation_api_route_page_files" {
  statement_id  = "AllowApiGetPageFiles"
  action        = "lambda:InvokeFunction"
  function_name = aws_lambda_function.allocation_api.function_name
  principal     = "apigateway.amazonaws.com"
  source_arn    = "${aws_apigatewayv2_api.kubecur.execution_arn}/*/GET/page/*"
}
