//! tdfs over HTTP. Every metadata node's `--http` address serves the
//! WebHDFS REST API (`/webhdfs/v1/<path>?op=...`), the status page (`/`) and
//! `/metrics`; every datanode's serves `/metrics` and the data half of
//! WebHDFS (OPEN, CREATE, APPEND), where the metadata node's 307 points.
//!
//! The gateway is a client of the cluster like any other: namespace calls
//! and block streams go through `tdfs-client`, acting as the user the
//! request names (`user.name`, Hadoop's simple authentication).

pub mod blocks;
pub mod clients;
pub mod data;
pub mod error;
pub mod feature_json;
pub mod features;
pub mod gateway;
pub mod json;
pub mod limits;
pub mod op;
pub mod query;
pub mod server;
pub mod status;

use axum::body::Body;
use axum::extract::State;
use axum::http::{header, HeaderValue, Method, StatusCode, Uri};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use std::sync::Arc;

pub use blocks::ServerDefaults;
pub use clients::Clients;
pub use data::DataCounters;
pub use error::WebError;
pub use gateway::Gateway;
pub use limits::HttpLimits;
pub use query::{parse_request, Op, Params, WebRequest};
pub use server::{start_datanode, start_meta, HttpServer, MetaHttpConfig};

/// Renders a node's metrics in the Prometheus/OpenMetrics text format.
pub type MetricsFn = Arc<dyn Fn() -> String + Send + Sync>;

/// What a metadata node's HTTP server needs.
pub struct MetaHttp {
    pub gateway: Gateway,
    /// This node's RPC address (the status page asks it for its state).
    pub self_rpc: String,
    pub counters: Arc<DataCounters>,
    pub metrics: MetricsFn,
}

/// What a datanode's HTTP server needs.
pub struct DataHttp {
    pub clients: Clients,
    pub counters: Arc<DataCounters>,
    pub metrics: MetricsFn,
}

/// The routes of a metadata node.
pub fn meta_router(st: Arc<MetaHttp>) -> Router {
    Router::new()
        .route("/", get(status_page))
        .route("/metrics", get(metrics_meta))
        .fallback(webhdfs_meta)
        .with_state(st)
}

/// The routes of a datanode.
pub fn datanode_router(st: Arc<DataHttp>) -> Router {
    Router::new()
        .route("/metrics", get(metrics_data))
        .fallback(webhdfs_data)
        .with_state(st)
}

/// Serves `router` on `listener` until `shutdown` resolves, under the
/// default [`HttpLimits`]; runs in its own task.
pub fn spawn(
    listener: tokio::net::TcpListener,
    router: Router,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> tokio::task::JoinHandle<()> {
    spawn_with(listener, router, HttpLimits::default(), shutdown)
}

/// [`spawn`] under the given limits.
pub fn spawn_with(
    listener: tokio::net::TcpListener,
    router: Router,
    limits: HttpLimits,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(limits::serve(listener, router, limits, shutdown))
}

fn metrics_response(text: String) -> Response {
    let mut r = text.into_response();
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/openmetrics-text; version=1.0.0; charset=utf-8"),
    );
    r
}

async fn metrics_meta(State(st): State<Arc<MetaHttp>>) -> Response {
    metrics_response((st.metrics)())
}

async fn metrics_data(State(st): State<Arc<DataHttp>>) -> Response {
    metrics_response((st.metrics)())
}

async fn status_page(State(st): State<Arc<MetaHttp>>) -> Response {
    let c = match st.gateway.clients.for_user(None) {
        Ok(c) => c,
        Err(e) => return WebError::from(e).into_response(),
    };
    let s = status::gather(&c, &st.self_rpc).await;
    Html(status::render(&s)).into_response()
}

fn parse(method: &Method, uri: &Uri) -> Result<WebRequest, Response> {
    if !uri.path().starts_with(query::PREFIX) {
        return Err((StatusCode::NOT_FOUND, "not found\n").into_response());
    }
    parse_request(method.as_str(), uri.path(), uri.query().unwrap_or(""))
        .map_err(IntoResponse::into_response)
}

async fn webhdfs_meta(
    State(st): State<Arc<MetaHttp>>,
    method: Method,
    uri: Uri,
    body: Body,
) -> Response {
    let req = match parse(&method, &uri) {
        Ok(r) => r,
        Err(r) => return r,
    };
    // The second step of a data operation redirected to this node itself
    // (no datanode serves HTTP): move the data here, as HttpFS does.
    let r = if req.op.is_data() && req.params.get("namenoderpcaddress").is_some() {
        data::serve(&st.gateway.clients, &st.counters, req, body).await
    } else {
        st.gateway.handle(req).await
    };
    r.unwrap_or_else(IntoResponse::into_response)
}

async fn webhdfs_data(
    State(st): State<Arc<DataHttp>>,
    method: Method,
    uri: Uri,
    body: Body,
) -> Response {
    let req = match parse(&method, &uri) {
        Ok(r) => r,
        Err(r) => return r,
    };
    data::serve(&st.clients, &st.counters, req, body)
        .await
        .unwrap_or_else(IntoResponse::into_response)
}
