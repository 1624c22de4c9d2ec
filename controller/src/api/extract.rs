//! Extractors whose rejections use the API error shape.
//!
//! axum's own `Json` and `Path` reject with plain-text bodies; these wrap the
//! same work so a bad body or path names the offending field in the usual
//! `{"error","field","reason"}` JSON (DESIGN.md §5).

use super::error::ApiError;
use super::strict::Strict;
use axum::body::Bytes;
use axum::extract::rejection::{BytesRejection, PathRejection};
use axum::extract::{FromRequest, FromRequestParts, Path, Request};
use axum::http::{header, request::Parts, HeaderMap, StatusCode};
use serde::de::DeserializeOwned;

/// A JSON request body. Rejections: 415 without a JSON content type, 413
/// over the body limit, 400 naming the field (`rules[0].port`) for type
/// errors, missing or unknown fields (`field: null` for syntax errors), 422
/// naming it for a value of the right type that does not parse (a MAC, a
/// CIDR) or is out of range.
#[derive(Debug, Clone, Copy, Default)]
pub struct ApiJson<T>(pub T);

impl<T, S> FromRequest<S> for ApiJson<T>
where
    T: DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, ApiError> {
        if !is_json(req.headers()) {
            return Err(ApiError::UnsupportedMediaType(
                "expected a request body with Content-Type: application/json".into(),
            ));
        }
        let bytes = Bytes::from_request(req, state)
            .await
            .map_err(body_rejection)?;
        decode_json(&bytes).map(ApiJson)
    }
}

fn is_json(headers: &HeaderMap) -> bool {
    let Some(value) = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
    else {
        return false;
    };
    let mime = value
        .split(';')
        .next()
        .unwrap_or_default()
        .trim()
        .to_ascii_lowercase();
    mime == "application/json" || (mime.starts_with("application/") && mime.ends_with("+json"))
}

fn body_rejection(r: BytesRejection) -> ApiError {
    if r.status() == StatusCode::PAYLOAD_TOO_LARGE {
        ApiError::PayloadTooLarge(r.body_text())
    } else {
        ApiError::BadRequest {
            field: None,
            reason: r.body_text(),
        }
    }
}

/// Decodes `bytes` as a `T`, mapping serde's error to a 400 that names the
/// field path where serde knows it.
pub fn decode_json<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, ApiError> {
    let mut de = serde_json::Deserializer::from_slice(bytes);
    let value = serde_path_to_error::deserialize(Strict(&mut de)).map_err(|e| {
        let path = e.path().to_string();
        json_error(&path, e.into_inner())
    })?;
    de.end().map_err(|e| json_error(".", e))?;
    Ok(value)
}

fn json_error(path: &str, e: serde_json::Error) -> ApiError {
    use serde_json::error::Category;
    match e.classify() {
        Category::Syntax | Category::Eof | Category::Io => ApiError::BadRequest {
            field: None,
            reason: format!("invalid JSON: {e}"),
        },
        Category::Data => {
            let reason = e.to_string();
            let field = field_of(path, &reason);
            match (is_shape_error(&reason), field) {
                (false, Some(field)) => ApiError::Invalid { field, reason },
                (_, field) => ApiError::BadRequest { field, reason },
            }
        }
    }
}

/// Whether serde refused the JSON's shape (a wrong type, a missing or
/// unknown field: what the OpenAPI document describes, so a 400) rather
/// than a value of the right type (an unparsable MAC, a number out of
/// range: a 422). serde's messages for the shape errors start so. A number
/// with a fraction where an integer goes is a value: JSON Schema counts
/// `80.0` as an integer, Flowgate refuses it.
fn is_shape_error(message: &str) -> bool {
    if message.starts_with("invalid type: floating point") {
        return false;
    }
    [
        "invalid type:",
        "invalid length",
        "missing field `",
        "unknown field `",
        "duplicate field `",
        "unknown variant `",
    ]
    .iter()
    .any(|prefix| message.starts_with(prefix))
}

/// The field a data error is about: serde_path_to_error's path (`.` for the
/// root), extended by the field serde names in "missing field `x`" and
/// "unknown field `x`" messages, which point at the enclosing object.
fn field_of(path: &str, message: &str) -> Option<String> {
    let parent = (path != ".").then_some(path);
    let named = ["missing field `", "unknown field `"]
        .iter()
        .find_map(|prefix| message.strip_prefix(prefix))
        .and_then(|rest| rest.split('`').next());
    match (parent, named) {
        (Some(p), Some(n)) if p == n || p.ends_with(&format!(".{n}")) => Some(p.to_owned()),
        (Some(p), Some(n)) => Some(format!("{p}.{n}")),
        (None, Some(n)) => Some(n.to_owned()),
        (Some(p), None) => Some(p.to_owned()),
        (None, None) => None,
    }
}

/// Path parameters; a value that does not deserialize is a 400 naming the
/// parameter.
#[derive(Debug, Clone, Copy, Default)]
pub struct ApiPath<T>(pub T);

impl<T, S> FromRequestParts<S> for ApiPath<T>
where
    T: DeserializeOwned + Send,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        match Path::<T>::from_request_parts(parts, state).await {
            Ok(Path(value)) => Ok(ApiPath(value)),
            Err(PathRejection::FailedToDeserializePathParams(e)) => {
                use axum::extract::path::ErrorKind;
                let field = match e.kind() {
                    ErrorKind::ParseErrorAtKey { key, .. }
                    | ErrorKind::InvalidUtf8InPathParam { key }
                    | ErrorKind::DeserializeError { key, .. } => Some(key.clone()),
                    _ => None,
                };
                Err(ApiError::BadRequest {
                    field,
                    reason: e.body_text(),
                })
            }
            // The route has no such parameter: a bug in our routing table.
            Err(e) => Err(ApiError::internal(anyhow::anyhow!(
                "path extraction: {}",
                e.body_text()
            ))),
        }
    }
}

/// Query parameters with the API's error shape: a bad or unknown
/// parameter is a 400 naming it.
pub struct ApiQuery<T>(pub T);

impl<T, S> FromRequestParts<S> for ApiQuery<T>
where
    T: DeserializeOwned + Send,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, ApiError> {
        let query = parts.uri.query().unwrap_or("");
        let de = serde_urlencoded::Deserializer::new(form_urlencoded::parse(query.as_bytes()));
        serde_path_to_error::deserialize(de)
            .map(ApiQuery)
            .map_err(|e| {
                let path = e.path().to_string();
                let reason = e.inner().to_string();
                let field = field_of(&path, &reason);
                ApiError::BadRequest { field, reason }
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn field_paths() {
        assert_eq!(field_of(".", "missing field `name`"), Some("name".into()));
        assert_eq!(
            field_of("rules[0]", "missing field `port` at line 1 column 3"),
            Some("rules[0].port".into())
        );
        assert_eq!(
            field_of("rules[0].port", "invalid type: string"),
            Some("rules[0].port".into())
        );
        assert_eq!(
            field_of("extra", "unknown field `extra`, expected `name`"),
            Some("extra".into())
        );
        assert_eq!(
            field_of("a.extra", "unknown field `extra`, expected `name`"),
            Some("a.extra".into())
        );
        assert_eq!(field_of(".", "invalid type: map"), None);
    }

    #[test]
    fn shape_errors_are_400_and_refused_values_422() {
        #[derive(Debug, serde::Deserialize)]
        #[serde(deny_unknown_fields)]
        #[allow(dead_code)]
        struct Body {
            port: u16,
            mac: crate::policy::Mac,
        }
        let status = |text: &str| match decode_json::<Body>(text.as_bytes()) {
            Err(ApiError::BadRequest { .. }) => 400,
            Err(ApiError::Invalid { .. }) => 422,
            other => panic!("{other:?}"),
        };
        assert_eq!(status("{"), 400);
        assert_eq!(status("[80, \"02:00:00:00:00:01\"]"), 400);
        assert_eq!(status(r#"{"port": "80", "mac": "02:00:00:00:00:01"}"#), 400);
        assert_eq!(status(r#"{"port": 80}"#), 400);
        assert_eq!(
            status(r#"{"port": 80, "mac": "02:00:00:00:00:01", "x": 1}"#),
            400
        );
        assert_eq!(
            status(r#"{"port": 70000, "mac": "02:00:00:00:00:01"}"#),
            422
        );
        assert_eq!(status(r#"{"port": 80.0, "mac": "02:00:00:00:00:01"}"#), 422);
        assert_eq!(status(r#"{"port": 80, "mac": "not a mac"}"#), 422);
    }

    #[test]
    fn content_types() {
        let with = |v: &str| {
            let mut h = HeaderMap::new();
            h.insert(header::CONTENT_TYPE, v.parse().unwrap());
            is_json(&h)
        };
        assert!(with("application/json"));
        assert!(with("Application/JSON; charset=utf-8"));
        assert!(with("application/merge-patch+json"));
        assert!(!with("text/plain"));
        assert!(!with("application/jsonx"));
        assert!(!is_json(&HeaderMap::new()));
    }

    #[tokio::test]
    async fn query_errors_name_the_parameter() {
        #[derive(Debug, serde::Deserialize)]
        #[serde(deny_unknown_fields)]
        #[allow(dead_code)]
        struct Q {
            window: Option<u64>,
        }
        let parts = |uri: &str| {
            axum::http::Request::builder()
                .uri(uri)
                .body(())
                .unwrap()
                .into_parts()
                .0
        };
        let ok = ApiQuery::<Q>::from_request_parts(&mut parts("/x?window=60"), &()).await;
        assert_eq!(ok.unwrap().0.window, Some(60));
        let bad = ApiQuery::<Q>::from_request_parts(&mut parts("/x?window=soon"), &()).await;
        assert!(matches!(bad, Err(ApiError::BadRequest { field: Some(f), .. }) if f == "window"));
        let unknown = ApiQuery::<Q>::from_request_parts(&mut parts("/x?windw=1"), &()).await;
        assert!(
            matches!(unknown, Err(ApiError::BadRequest { field: Some(f), .. }) if f == "windw")
        );
    }
}
