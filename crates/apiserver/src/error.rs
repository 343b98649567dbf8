//! The one place an `ApiError` becomes an HTTP response (a `metav1.Status` body).

use axum::response::{IntoResponse, Response};
use http::{HeaderValue, StatusCode, header};
use model::ApiError;

/// An error on its way out of a handler.
#[derive(Debug)]
pub struct Failure(pub ApiError);

impl From<ApiError> for Failure {
    fn from(e: ApiError) -> Failure {
        Failure(e)
    }
}

impl From<store::StoreError> for Failure {
    fn from(e: store::StoreError) -> Failure {
        tracing::error!(error = %e, "store failure");
        Failure(ApiError::internal("storage error"))
    }
}

impl IntoResponse for Failure {
    fn into_response(self) -> Response {
        status_response(&self.0)
    }
}

/// Render an `ApiError` as kube-apiserver does.
pub fn status_response(e: &ApiError) -> Response {
    let body = serde_json::to_vec(&e.to_status()).unwrap_or_default();
    let code = StatusCode::from_u16(e.code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let mut resp = (code, body).into_response();
    resp.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
    resp
}

pub type HandlerResult<T = Response> = Result<T, Failure>;

/// What a request whose handler panicked gets: a 500 `Status` with reason `InternalError` (in
/// kube-apiserver's words), and the panic logged. The catch-panic layer of `router` calls this,
/// so a bug in one handler costs its request, not the client's connection.
pub fn panic_response(payload: Box<dyn std::any::Any + Send + 'static>) -> Response {
    let message = payload
        .downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| payload.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "a panic without a message".into());
    tracing::error!(panic = %message, "a request handler panicked");
    status_response(&ApiError::internal("This request caused apiserver to panic. Look in the logs for details."))
}
