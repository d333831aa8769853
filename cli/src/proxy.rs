//! `kubecur serve --api URL`: the Cost Allocation page on this machine, in front of a deployed API.
//!
//! The deployed HTTP API authorizes with IAM (SigV4) by default, which a browser cannot sign. This
//! proxy serves the page's files itself and forwards every other `GET` to the API, signed with the
//! user's AWS credentials for the service `execute-api` (the signing name of API Gateway's invoke
//! endpoint: https://docs.aws.amazon.com/apigateway/latest/developerguide/http-api-access-control-iam.html
//! and, for the signature, https://docs.aws.amazon.com/IAM/latest/UserGuide/reference_sigv.html), or
//! with `Authorization: Bearer $KUBECUR_API_TOKEN` for an API behind the JWT authorizer.

use crate::serve::Answer;
use crate::CliError;
use aws_credential_types::provider::{ProvideCredentials, SharedCredentialsProvider};
use aws_credential_types::Credentials;
use aws_sigv4::http_request::{sign, SignableBody, SignableRequest, SigningSettings};
use aws_sigv4::sign::v4;
use std::time::{Duration, SystemTime};

/// The signing name of API Gateway's invoke endpoint (`execute-api:Invoke`).
pub const SERVICE: &str = "execute-api";

/// How the proxy authenticates to the deployed API.
pub enum Auth {
    /// SigV4 with credentials from the default chain (environment, web identity, container, instance).
    SigV4 {
        credentials: SharedCredentialsProvider,
        region: String,
    },
    /// A JWT for the JWT authorizer.
    Bearer(String),
}

pub struct Proxy {
    base: String,
    auth: Auth,
    client: reqwest::Client,
}

/// The region of an API Gateway endpoint, `https://ID.execute-api.REGION.amazonaws.com[.cn]/…`.
pub fn region_of(url: &str) -> Option<String> {
    let host = url.split("://").nth(1)?.split(['/', ':', '?']).next()?;
    let labels: Vec<&str> = host.split('.').collect();
    let at = labels.iter().position(|l| *l == SERVICE)?;
    labels
        .get(at + 1)
        .filter(|r| !r.is_empty() && **r != "amazonaws")
        .map(|r| r.to_string())
}

/// The headers that sign `GET url` for `execute-api` in `region` at `time`: `authorization`,
/// `x-amz-date` and, with temporary credentials, `x-amz-security-token`.
pub fn sign_get(
    url: &str,
    credentials: Credentials,
    region: &str,
    time: SystemTime,
) -> Result<Vec<(String, String)>, String> {
    let identity = credentials.into();
    let params = v4::SigningParams::builder()
        .identity(&identity)
        .region(region)
        .name(SERVICE)
        .time(time)
        .settings(SigningSettings::default())
        .build()
        .map_err(|e| e.to_string())?
        .into();
    let request = SignableRequest::new("GET", url, std::iter::empty(), SignableBody::Bytes(&[]))
        .map_err(|e| e.to_string())?;
    let (instructions, _) = sign(request, &params)
        .map_err(|e| e.to_string())?
        .into_parts();
    Ok(instructions
        .headers()
        .map(|(name, value)| (name.to_string(), value.to_string()))
        .collect())
}

impl Proxy {
    /// A proxy to `base` (the API's URL, e.g. `https://abc123.execute-api.eu-west-1.amazonaws.com`).
    /// Checks at once that credentials (or a token) are there, so a missing login fails here and not
    /// on the first page view.
    pub async fn connect(base: &str, region: Option<String>) -> Result<Proxy, CliError> {
        let base = base.trim_end_matches('/').to_string();
        if !(base.starts_with("https://") || base.starts_with("http://")) {
            return Err(CliError::Usage(format!(
                "--api {base}: give the API's URL, e.g. https://abc123.execute-api.eu-west-1.amazonaws.com"
            )));
        }
        let auth = match std::env::var("KUBECUR_API_TOKEN") {
            Ok(token) if !token.trim().is_empty() => Auth::Bearer(token.trim().to_string()),
            _ => {
                let config = aws_config::load_from_env().await;
                let region = region
                    .or_else(|| region_of(&base))
                    .or_else(|| config.region().map(|r| r.to_string()))
                    .ok_or_else(|| {
                        CliError::Usage(format!(
                            "--api {base}: the URL names no region; give --region or set AWS_REGION"
                        ))
                    })?;
                let credentials = config.credentials_provider().ok_or_else(|| {
                    CliError::Usage("no AWS credentials provider is configured".into())
                })?;
                credentials.provide_credentials().await.map_err(|e| {
                    CliError::Usage(format!(
                        "no AWS credentials to sign requests to {base} with: {e} (set AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY[/AWS_SESSION_TOKEN], e.g. eval \"$(aws configure export-credentials --format env)\"; or KUBECUR_API_TOKEN for a JWT authorizer)"
                    ))
                })?;
                Auth::SigV4 {
                    credentials,
                    region,
                }
            }
        };
        Proxy::with_auth(&base, auth)
    }

    pub fn with_auth(base: &str, auth: Auth) -> Result<Proxy, CliError> {
        let client = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(5))
            .timeout(Duration::from_secs(35))
            .build()
            .map_err(|e| CliError::Failed(format!("cannot start the HTTP client: {e}")))?;
        Ok(Proxy {
            base: base.trim_end_matches('/').to_string(),
            auth,
            client,
        })
    }

    pub fn describe(&self) -> String {
        match &self.auth {
            Auth::SigV4 { region, .. } => {
                format!("{} (SigV4, {SERVICE}, {region})", self.base)
            }
            Auth::Bearer(_) => format!("{} (bearer token from KUBECUR_API_TOKEN)", self.base),
        }
    }

    /// Forwards `GET path?query` (the query still URL-encoded, as the browser sent it), signed.
    pub async fn forward(&self, path: &str, query: &str) -> Result<Answer, String> {
        let mut url = format!("{}{path}", self.base);
        if !query.is_empty() {
            url.push('?');
            url.push_str(query);
        }
        let mut request = self.client.get(&url);
        match &self.auth {
            Auth::SigV4 {
                credentials,
                region,
            } => {
                let credentials = credentials
                    .provide_credentials()
                    .await
                    .map_err(|e| format!("no AWS credentials: {e}"))?;
                for (name, value) in sign_get(&url, credentials, region, SystemTime::now())? {
                    request = request.header(name, value);
                }
            }
            Auth::Bearer(token) => request = request.bearer_auth(token),
        }
        let response = request
            .send()
            .await
            .map_err(|e| format!("{} did not answer: {e}", self.base))?;
        let status = response.status().as_u16();
        let content_type = response
            .headers()
            .get(reqwest::header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("application/octet-stream")
            .to_string();
        let body = response
            .bytes()
            .await
            .map_err(|e| format!("reading the answer of {}: {e}", self.base))?;
        Ok(Answer {
            status,
            content_type,
            body: body.to_vec(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_region_comes_from_the_endpoint() {
        assert_eq!(
            region_of("https://abc123.execute-api.eu-west-1.amazonaws.com/").as_deref(),
            Some("eu-west-1")
        );
        assert_eq!(
            region_of("https://a.execute-api.cn-north-1.amazonaws.com.cn").as_deref(),
            Some("cn-north-1")
        );
        assert_eq!(region_of("https://cost.example.com/api"), None);
        assert_eq!(region_of("http://127.0.0.1:9004"), None);
    }

    /// Checks `Authorization: AWS4-HMAC-SHA256 Credential=KEY/DATE/REGION/execute-api/aws4_request,
    /// SignedHeaders=…, Signature=<64 hex>` and `x-amz-date`; returns the signed header names.
    pub fn well_formed(headers: &[(String, String)], key: &str, region: &str) -> Vec<String> {
        let get = |name: &str| {
            headers
                .iter()
                .find(|(n, _)| n.eq_ignore_ascii_case(name))
                .map(|(_, v)| v.clone())
        };
        let date = get("x-amz-date").expect("x-amz-date");
        assert_eq!(date.len(), 16, "{date}");
        assert!(date.ends_with('Z') && date.as_bytes()[8] == b'T', "{date}");
        let authorization = get("authorization").expect("authorization");
        let rest = authorization
            .strip_prefix("AWS4-HMAC-SHA256 Credential=")
            .expect("the SigV4 algorithm");
        let parts: Vec<&str> = rest.split(", ").collect();
        assert_eq!(parts.len(), 3, "{authorization}");
        let scope = format!("{key}/{}/{region}/execute-api/aws4_request", &date[..8]);
        assert_eq!(parts[0], scope);
        let signed = parts[1]
            .strip_prefix("SignedHeaders=")
            .expect("SignedHeaders");
        let signature = parts[2].strip_prefix("Signature=").expect("Signature");
        assert_eq!(signature.len(), 64, "{signature}");
        assert!(signature
            .chars()
            .all(|c| c.is_ascii_digit() || ('a'..='f').contains(&c)));
        signed.split(';').map(str::to_string).collect()
    }

    #[test]
    fn requests_are_signed_for_execute_api_with_the_session_token() {
        let url = "https://abc.execute-api.eu-west-1.amazonaws.com/allocation?window=2024-06-01T00%3A00%3A00Z%2C2024-07-01T00%3A00%3A00Z&aggregate=namespace";
        let time = SystemTime::UNIX_EPOCH + Duration::from_secs(1_717_200_000);
        let long_term = Credentials::new("AKIDEXAMPLE", "secret", None, None, "test");
        let headers = sign_get(url, long_term.clone(), "eu-west-1", time).expect("signed");
        let signed = well_formed(&headers, "AKIDEXAMPLE", "eu-west-1");
        assert_eq!(signed, ["host", "x-amz-date"]);
        assert!(!headers.iter().any(|(n, _)| n == "x-amz-security-token"));
        // Same request, same time, same key: the same signature; another query: another one.
        assert_eq!(
            sign_get(url, long_term.clone(), "eu-west-1", time).expect("signed"),
            headers
        );
        let other = sign_get(
            &url.replace("namespace", "pod"),
            long_term,
            "eu-west-1",
            time,
        )
        .expect("signed");
        assert_ne!(other, headers);
        let session =
            Credentials::new("ASIAEXAMPLE", "secret", Some("the-token".into()), None, "t");
        let headers = sign_get(url, session, "eu-west-1", time).expect("signed");
        let signed = well_formed(&headers, "ASIAEXAMPLE", "eu-west-1");
        assert!(
            signed.contains(&"x-amz-security-token".to_string()),
            "{signed:?}"
        );
        assert!(headers
            .iter()
            .any(|(n, v)| n == "x-amz-security-token" && v == "the-token"));
    }

    /// The proxy against a local stand-in of the deployed API: the stand-in sees a well-formed
    /// signature for the path and query the page asked for, and its answer comes back unchanged.
    #[test]
    fn the_proxy_signs_what_it_forwards_and_returns_the_answer() {
        let server = tiny_http::Server::http("127.0.0.1:0").expect("a port");
        let address = server.server_addr().to_ip().expect("an IP address");
        let stand_in = std::thread::spawn(move || {
            let request = server.recv().expect("a request");
            let headers: Vec<(String, String)> = request
                .headers()
                .iter()
                .map(|h| (h.field.to_string(), h.value.to_string()))
                .collect();
            let url = request.url().to_string();
            let reply = tiny_http::Response::from_string(r#"{"code":200}"#)
                .with_status_code(200)
                .with_header(
                    tiny_http::Header::from_bytes("Content-Type", "application/json")
                        .expect("a header"),
                );
            request.respond(reply).expect("answered");
            (url, headers)
        });
        let credentials = Credentials::new("AKIDLOCAL", "secret", Some("tok".into()), None, "t");
        let proxy = Proxy::with_auth(
            &format!("http://{address}/"),
            Auth::SigV4 {
                credentials: SharedCredentialsProvider::new(credentials),
                region: "us-east-1".into(),
            },
        )
        .expect("a proxy");
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime");
        let answer = runtime
            .block_on(proxy.forward("/allocation", "window=month&aggregate=namespace%2Cpod"))
            .expect("forwarded");
        assert_eq!(answer.status, 200);
        assert_eq!(answer.content_type, "application/json");
        assert_eq!(answer.body, br#"{"code":200}"#);
        let (url, headers) = stand_in.join().expect("the stand-in");
        assert_eq!(url, "/allocation?window=month&aggregate=namespace%2Cpod");
        let signed = well_formed(&headers, "AKIDLOCAL", "us-east-1");
        assert_eq!(signed, ["host", "x-amz-date", "x-amz-security-token"]);
        let host = headers.iter().find(|(n, _)| n.eq_ignore_ascii_case("host"));
        assert_eq!(host.map(|(_, v)| v.clone()), Some(address.to_string()));
    }
}
