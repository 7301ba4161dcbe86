//! How errors reach API callers: `{ "error": { "code", "message" } }` with a fitting status,
//! including for malformed JSON, bad paths and unknown routes.

use axum::extract::rejection::{BytesRejection, JsonRejection, PathRejection, QueryRejection};
use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::request::Parts;
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use portcullis_api::{ErrorBody, ErrorDetail};
use serde::de::DeserializeOwned;

use crate::error::AuthError;

/// An error on its way to the caller.
#[derive(Debug)]
pub struct ApiError {
    status: StatusCode,
    code: &'static str,
    message: String,
    retry_after: Option<u64>,
}

impl ApiError {
    /// A 400 with `message`.
    pub fn bad_request(message: impl Into<String>) -> Self {
        Self {
            status: StatusCode::BAD_REQUEST,
            code: "bad_request",
            message: message.into(),
            retry_after: None,
        }
    }

    /// A 404 for routes that do not exist.
    pub fn no_route() -> Self {
        Self {
            status: StatusCode::NOT_FOUND,
            code: "not_found",
            message: "no such API endpoint; see /v1/openapi.json".into(),
            retry_after: None,
        }
    }

    /// A 405.
    pub fn method_not_allowed() -> Self {
        Self {
            status: StatusCode::METHOD_NOT_ALLOWED,
            code: "method_not_allowed",
            message: "this endpoint does not take that method; see /v1/openapi.json".into(),
            retry_after: None,
        }
    }
}

impl From<AuthError> for ApiError {
    fn from(e: AuthError) -> Self {
        let status = match &e {
            AuthError::BadRequest(_) => StatusCode::BAD_REQUEST,
            AuthError::Unauthenticated(_) => StatusCode::UNAUTHORIZED,
            AuthError::Forbidden(_) => StatusCode::FORBIDDEN,
            AuthError::NotFound(_) => StatusCode::NOT_FOUND,
            AuthError::AlreadyExists(_) | AuthError::Conflict(_) => StatusCode::CONFLICT,
            AuthError::RateLimited { .. } => StatusCode::TOO_MANY_REQUESTS,
            AuthError::Locked(_) => StatusCode::FORBIDDEN,
            AuthError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        };
        let retry_after = match &e {
            AuthError::RateLimited { retry_after } => Some(retry_after.as_secs().max(1)),
            _ => None,
        };
        let message = if let AuthError::Internal(detail) = &e {
            tracing::error!(error = %detail, "internal error");
            "internal error; the auth service log has the details".to_owned()
        } else {
            e.to_string()
        };
        Self {
            status,
            code: e.code(),
            message,
            retry_after,
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = ErrorBody {
            error: ErrorDetail {
                code: self.code.into(),
                message: self.message,
            },
        };
        let mut resp = (self.status, axum::Json(body)).into_response();
        if let Some(secs) = self.retry_after {
            if let Ok(v) = HeaderValue::from_str(&secs.to_string()) {
                resp.headers_mut().insert(header::RETRY_AFTER, v);
            }
        }
        resp
    }
}

impl ApiError {
    /// A request body that could not be read: too large, or not what was expected.
    fn body(status: StatusCode, text: String) -> Self {
        let mut e = Self::bad_request(format!("request body: {text}"));
        if status == StatusCode::PAYLOAD_TOO_LARGE {
            e.status = StatusCode::PAYLOAD_TOO_LARGE;
            e.code = "payload_too_large";
            e.message = "the request body is larger than the 1 MiB accepted".into();
        } else if status == StatusCode::UNSUPPORTED_MEDIA_TYPE {
            e.message = "send the body as JSON with Content-Type: application/json".into();
        }
        e
    }

    /// A `POST /v1/events` body that could not be read: larger than
    /// [`portcullis_api::MAX_EVENTS_BODY`], or cut off.
    pub fn events_body(e: &axum::Error) -> Self {
        let too_large = std::error::Error::source(e)
            .is_some_and(|s| s.is::<http_body_util::LengthLimitError>());
        if too_large {
            let mut err = Self::bad_request(String::new());
            err.status = StatusCode::PAYLOAD_TOO_LARGE;
            err.code = "payload_too_large";
            err.message = format!(
                "an audit batch may be at most {} MiB: send fewer events per request",
                portcullis_api::MAX_EVENTS_BODY / (1024 * 1024)
            );
            err
        } else {
            Self::bad_request(format!("request body: {e}"))
        }
    }
}

impl From<JsonRejection> for ApiError {
    fn from(r: JsonRejection) -> Self {
        Self::body(r.status(), r.body_text())
    }
}

impl From<BytesRejection> for ApiError {
    fn from(r: BytesRejection) -> Self {
        Self::body(r.status(), r.body_text())
    }
}

/// `axum::Json` with our error shape.
pub struct ApiJson<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequest<S> for ApiJson<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        let axum::Json(v) = axum::Json::<T>::from_request(req, state).await?;
        Ok(Self(v))
    }
}

/// `axum::extract::Path` with our error shape.
pub struct ApiPath<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned + Send> FromRequestParts<S> for ApiPath<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        axum::extract::Path::<T>::from_request_parts(parts, state)
            .await
            .map(|p| Self(p.0))
            .map_err(|r: PathRejection| ApiError::bad_request(format!("path: {}", r.body_text())))
    }
}

/// `axum::extract::Query` with our error shape.
pub struct ApiQuery<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequestParts<S> for ApiQuery<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        axum::extract::Query::<T>::from_request_parts(parts, state)
            .await
            .map(|q| Self(q.0))
            .map_err(|r: QueryRejection| ApiError::bad_request(format!("query: {}", r.body_text())))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn an_oversized_event_batch_says_what_to_do() {
        let big = axum::body::Body::from(vec![b'x'; 64]);
        let e = axum::body::to_bytes(big, 16).await.unwrap_err();
        let err = ApiError::events_body(&e);
        assert_eq!(err.status, StatusCode::PAYLOAD_TOO_LARGE);
        assert_eq!(err.code, "payload_too_large");
        assert!(err.message.contains("at most 8 MiB"), "{}", err.message);
    }
}
