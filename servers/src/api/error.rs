//! Errors as HTTP responses: a status and a JSON body `{"error": "..."}`.

use std::time::Duration;

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;

use crate::strategy::Rejection;

/// An error answered to the client; the server carries on serving.
#[derive(Debug)]
pub struct ApiError {
    status: StatusCode,
    message: String,
    retry_after: Option<Duration>,
}

impl ApiError {
    /// 400: the request asked for something invalid.
    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, message)
    }

    /// 503 with `Retry-After`.
    pub fn unavailable(message: impl Into<String>, retry_after: Duration) -> Self {
        ApiError {
            status: StatusCode::SERVICE_UNAVAILABLE,
            message: message.into(),
            retry_after: Some(retry_after),
        }
    }

    /// What the client is told.
    pub fn message(&self) -> &str {
        &self.message
    }

    /// Any status with a message.
    pub fn new(status: StatusCode, message: impl Into<String>) -> Self {
        ApiError {
            status,
            message: message.into(),
            retry_after: None,
        }
    }
}

impl From<Rejection> for ApiError {
    fn from(rejection: Rejection) -> Self {
        match rejection {
            Rejection::QueueFull {
                capacity,
                retry_after,
            } => ApiError {
                status: StatusCode::SERVICE_UNAVAILABLE,
                message: format!("the job queue is full ({capacity} waiting); retry later"),
                retry_after: Some(retry_after),
            },
            Rejection::WorkerLost => ApiError::new(
                StatusCode::INTERNAL_SERVER_ERROR,
                "the worker running this job went away",
            ),
            // The job's own call went wrong: the gateway's answer, not the server's.
            Rejection::Failed(error) => ApiError::new(StatusCode::BAD_GATEWAY, error),
            Rejection::TimedOut(error) => ApiError::new(StatusCode::GATEWAY_TIMEOUT, error),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        if self.status.is_server_error() {
            tracing::warn!(status = %self.status, "{}", self.message);
        }
        let mut response = (
            self.status,
            Json(serde_json::json!({ "error": self.message })),
        )
            .into_response();
        if let Some(after) = self.retry_after {
            // Rounded up: a client that comes back sooner finds the queue still full.
            let secs = after.as_nanos().div_ceil(1_000_000_000).max(1) as u64;
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(secs));
        }
        response
    }
}
