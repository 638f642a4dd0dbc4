//! `POST /v1/logs`: an OTLP/HTTP logs receiver turning log records back into events.

use axum::Router;
use std::sync::Arc;

use crate::server::Gateway;

pub(crate) fn routes() -> Router<Arc<Gateway>> {
    Router::new()
}
