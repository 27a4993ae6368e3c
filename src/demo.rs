//! In-process demo staging server: a small stateful checkout API that the bundled smoke-test
//! suite runs against, so `preflight demo` works without any other process.
//!
//! The server binds to a random loopback port, keeps carts and orders in memory, and can be
//! started with [`Fault`]s that reproduce the classic false-PASS situations the gate exists to
//! catch: a broken payment provider, a stale config, an old release, a slow dependency, a
//! response that drifted from the API contract.

use std::collections::HashMap;
use std::net::{Ipv4Addr, SocketAddr};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::Serialize;
use serde_json::{Value, json};
use tokio::net::TcpListener;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

/// Environment variable the demo suite reads as `secret.DEMO_SHOP_TOKEN`.
pub const DEMO_TOKEN_ENV: &str = "DEMO_SHOP_TOKEN";
/// The bearer token the demo server accepts for payments.
pub const DEMO_TOKEN: &str = "demo-secret-7f3a9c";
/// The release version the demo server reports.
pub const DEMO_VERSION: &str = "1.4.2";

const DEMO_COMMIT: &str = "4f2a9c1";
const OLD_VERSION: &str = "1.4.1";
const OLD_COMMIT: &str = "0ld0ld0";

/// The reviewed checkout config; staging serves these exact bytes unless `StaleConfig` is on.
const CHECKOUT_CONFIG: &str = include_str!("../config/checkout-config.json");

/// The folder of the bundled suite, relative to where `preflight demo` runs.
pub const DEMO_SUITE: &str = "smoke-tests";

/// The bundled suite and the config it pins, carried by the binary so that `preflight demo`
/// works from any directory: paths relative to one root, as in the repository, so the lock's
/// `../config/checkout-config.json` still names the pinned file.
pub const BUNDLED_FILES: [(&str, &str); 9] = [
    (
        "smoke-tests/preflight.toml",
        include_str!("../smoke-tests/preflight.toml"),
    ),
    (
        "smoke-tests/preflight.lock",
        include_str!("../smoke-tests/preflight.lock"),
    ),
    (
        "smoke-tests/catalogue/browse.toml",
        include_str!("../smoke-tests/catalogue/browse.toml"),
    ),
    (
        "smoke-tests/guest-checkout.toml",
        include_str!("../smoke-tests/guest-checkout.toml"),
    ),
    (
        "smoke-tests/health.toml",
        include_str!("../smoke-tests/health.toml"),
    ),
    (
        "smoke-tests/recommendations.toml",
        include_str!("../smoke-tests/recommendations.toml"),
    ),
    (
        "smoke-tests/openapi.yaml",
        include_str!("../smoke-tests/openapi.yaml"),
    ),
    (
        "smoke-tests/schemas/products.schema.json",
        include_str!("../smoke-tests/schemas/products.schema.json"),
    ),
    ("config/checkout-config.json", CHECKOUT_CONFIG),
];

/// The bundled suite written to a fresh temporary directory, removed again when dropped.
#[derive(Debug)]
pub struct BundledSuite {
    root: std::path::PathBuf,
}

impl BundledSuite {
    /// Writes [`BUNDLED_FILES`] below a new directory in the system's temporary directory.
    pub fn write() -> std::io::Result<BundledSuite> {
        let root = std::env::temp_dir().join(format!("preflight-demo-{}", Uuid::new_v4()));
        // `create_dir`, not `create_dir_all`: a directory that exists already is not ours.
        std::fs::create_dir(&root)?;
        let suite = BundledSuite { root };
        for (relative, content) in BUNDLED_FILES {
            let path = suite.root.join(relative);
            if let Some(parent) = path.parent() {
                std::fs::create_dir_all(parent)?;
            }
            std::fs::write(path, content)?;
        }
        Ok(suite)
    }

    /// The temporary directory it was written to.
    pub fn root(&self) -> &std::path::Path {
        &self.root
    }

    /// The suite directory to run.
    pub fn suite(&self) -> std::path::PathBuf {
        self.root.join(DEMO_SUITE)
    }
}

impl Drop for BundledSuite {
    fn drop(&mut self) {
        // Best effort: it is a temporary directory either way.
        let _ = std::fs::remove_dir_all(&self.root);
    }
}

/// Only two currencies are sold; prices are kept in EUR and converted at a fixed rate.
const CURRENCIES: [&str; 2] = ["EUR", "USD"];
const USD_PER_100_EUR: u64 = 108;
/// Mirrors `cart.max_qty_per_item` in the checkout config.
const MAX_QTY: u64 = 99;
const SLOW_RECOMMENDATIONS: Duration = Duration::from_secs(3);

/// A misbehaviour the demo server can be started with, to show how the gate fails.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Fault {
    /// The payment provider is down: paying an order answers 502.
    BrokenPayments,
    /// Staging serves a checkout config that differs from the reviewed, locked file.
    StaleConfig,
    /// The previous release is still deployed (version 1.4.1, commit 0ld0ld0).
    OldVersion,
    /// Recommendations take 3 s to answer.
    SlowRecommendations,
    /// An order is read back without its `currency`, a field the API contract requires and
    /// no hand-written assertion of the bundled suite looks at.
    ContractDrift,
}

/// A running demo server; dropping it (or calling [`DemoServer::shutdown`]) stops it.
#[derive(Debug)]
pub struct DemoServer {
    addr: SocketAddr,
    cancel: CancellationToken,
    task: Option<JoinHandle<std::io::Result<()>>>,
}

impl DemoServer {
    /// Binds 127.0.0.1:0 and serves in a tokio task until dropped or shut down.
    pub async fn start(faults: &[Fault]) -> std::io::Result<DemoServer> {
        let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).await?;
        let addr = listener.local_addr()?;
        let cancel = CancellationToken::new();
        let app = router(Arc::new(AppState {
            faults: faults.to_vec(),
            store: Mutex::default(),
        }));
        let task = tokio::spawn(
            axum::serve(listener, app)
                .with_graceful_shutdown(cancel.clone().cancelled_owned())
                .into_future(),
        );
        Ok(DemoServer {
            addr,
            cancel,
            task: Some(task),
        })
    }

    /// The base URL to point a suite at, e.g. `http://127.0.0.1:40123`.
    pub fn base_url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// The bound loopback address.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Stops the server and waits until it no longer accepts connections.
    pub async fn shutdown(mut self) {
        self.cancel.cancel();
        if let Some(task) = self.task.take() {
            // The server's own result does not matter any more: it is going away.
            let _ = task.await;
        }
    }
}

impl Drop for DemoServer {
    fn drop(&mut self) {
        // Cancelling is synchronous, so this also works when the runtime is shutting down.
        self.cancel.cancel();
    }
}

struct Product {
    sku: &'static str,
    name: &'static str,
    price_cents: u64,
}

const PRODUCTS: [Product; 4] = [
    Product {
        sku: "SKU-123",
        name: "Trail running shoes",
        price_cents: 1999,
    },
    Product {
        sku: "SKU-456",
        name: "Merino running socks",
        price_cents: 1250,
    },
    Product {
        sku: "SKU-789",
        name: "Insulated water bottle",
        price_cents: 2490,
    },
    Product {
        sku: "SKU-999",
        name: "Reflective running vest",
        price_cents: 3400,
    },
];

fn find_product(sku: &str) -> Option<&'static Product> {
    PRODUCTS.iter().find(|p| p.sku == sku)
}

fn product_json(p: &Product) -> Value {
    json!({ "sku": p.sku, "name": p.name, "price_cents": p.price_cents, "currency": "EUR" })
}

#[derive(Debug, Clone, Serialize)]
struct Item {
    sku: String,
    qty: u64,
    unit_cents: u64,
}

#[derive(Debug, Clone, Serialize)]
struct Cart {
    id: String,
    currency: String,
    items: Vec<Item>,
    total_cents: u64,
    /// The session the cart was created in, when the client sent a `session_id` cookie.
    #[serde(skip_serializing_if = "Option::is_none")]
    session_id: Option<String>,
}

#[derive(Debug, Clone, Serialize)]
struct Order {
    order_id: String,
    cart_id: String,
    email: String,
    status: &'static str,
    total_cents: u64,
    currency: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    payment_id: Option<String>,
}

#[derive(Default)]
struct Store {
    carts: HashMap<String, Cart>,
    orders: HashMap<String, Order>,
}

struct AppState {
    faults: Vec<Fault>,
    store: Mutex<Store>,
}

impl AppState {
    fn has(&self, fault: Fault) -> bool {
        self.faults.contains(&fault)
    }

    fn store(&self) -> MutexGuard<'_, Store> {
        // A panicking handler must not take the whole demo down with a poisoned lock.
        self.store.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn version(&self) -> (&'static str, &'static str) {
        if self.has(Fault::OldVersion) {
            (OLD_VERSION, OLD_COMMIT)
        } else {
            (DEMO_VERSION, DEMO_COMMIT)
        }
    }
}

type Shared = State<Arc<AppState>>;
/// `Err` lets handlers bail out early with `?`.
type Reply = Result<Response, ApiError>;

/// An error answer: `{"error": message}` with its status, so even failures are JSON.
#[derive(Debug)]
struct ApiError(StatusCode, String);

impl ApiError {
    fn new(status: StatusCode, message: impl Into<String>) -> Self {
        ApiError(status, message.into())
    }

    fn not_found() -> Self {
        ApiError::new(StatusCode::NOT_FOUND, "not found")
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        reply(self.0, json!({ "error": self.1 }))
    }
}

fn router(state: Arc<AppState>) -> Router {
    Router::new()
        .route("/health", get(health))
        .route("/version", get(version))
        .route("/config/checkout", get(checkout_config))
        .route("/api/products", get(list_products))
        .route("/api/products/{sku}", get(get_product))
        .route("/api/session", post(start_session))
        .route("/api/carts", post(create_cart))
        .route("/api/carts/{id}", get(get_cart).delete(delete_cart))
        .route("/api/carts/{id}/items", post(add_item))
        .route("/api/carts/{id}/checkout", post(checkout))
        .route("/api/orders/{id}", get(get_order))
        .route("/api/orders/{id}/pay", post(pay_order))
        .route("/api/recommendations", get(recommendations))
        // axum's defaults have empty bodies; every demo answer is JSON.
        .fallback(|| async { ApiError::not_found() })
        .method_not_allowed_fallback(|| async {
            ApiError::new(StatusCode::METHOD_NOT_ALLOWED, "method not allowed")
        })
        .with_state(state)
}

fn reply(status: StatusCode, body: impl Serialize) -> Response {
    (status, Json(body)).into_response()
}

/// Parses a JSON request body by hand (rather than with axum's `Json` extractor) so that
/// rejections are JSON too and a missing content-type is tolerated. An empty body is `{}`.
fn parse_body(body: &Bytes) -> Result<Value, ApiError> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok(json!({}));
    }
    serde_json::from_slice(body)
        .map_err(|e| ApiError::new(StatusCode::BAD_REQUEST, format!("invalid JSON body: {e}")))
}

fn str_field<'a>(body: &'a Value, name: &str) -> Option<&'a str> {
    body.get(name).and_then(Value::as_str)
}

fn session_cookie(headers: &HeaderMap) -> Option<String> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .find_map(|pair| pair.trim().strip_prefix("session_id="))
        .map(str::to_owned)
}

fn new_id() -> String {
    Uuid::new_v4().to_string()
}

async fn health(State(state): Shared) -> Response {
    let (version, _) = state.version();
    reply(
        StatusCode::OK,
        json!({ "status": "ok", "version": version }),
    )
}

async fn version(State(state): Shared) -> Response {
    let (version, commit) = state.version();
    let body = Json(json!({ "commit": commit, "version": version }));
    ([("x-release", version)], body).into_response()
}

async fn checkout_config(State(state): Shared) -> Response {
    let config = if state.has(Fault::StaleConfig) {
        // The story: a pipeline restored last year's config, with the old German VAT rate.
        CHECKOUT_CONFIG.replacen("\"DE\": 0.19", "\"DE\": 0.16", 1)
    } else {
        CHECKOUT_CONFIG.to_owned()
    };
    ([(header::CONTENT_TYPE, "application/json")], config).into_response()
}

async fn list_products() -> Response {
    let products: Vec<Value> = PRODUCTS.iter().map(product_json).collect();
    reply(StatusCode::OK, json!({ "products": products }))
}

async fn get_product(Path(sku): Path<String>) -> Response {
    match find_product(&sku) {
        Some(p) => reply(StatusCode::OK, product_json(p)),
        None => ApiError::not_found().into_response(),
    }
}

async fn start_session() -> Response {
    let cookie = format!("session_id={}; Path=/; HttpOnly", new_id());
    let body = Json(json!({ "session": "started" }));
    ([(header::SET_COOKIE, cookie)], body).into_response()
}

async fn create_cart(State(state): Shared, headers: HeaderMap, body: Bytes) -> Reply {
    let body = parse_body(&body)?;
    let currency = str_field(&body, "currency")
        .filter(|c| CURRENCIES.contains(c))
        .ok_or_else(|| {
            ApiError::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                "currency must be one of EUR, USD",
            )
        })?;
    let cart = Cart {
        id: new_id(),
        currency: currency.to_owned(),
        items: Vec::new(),
        total_cents: 0,
        session_id: session_cookie(&headers),
    };
    let location = format!("/api/carts/{}", cart.id);
    state.store().carts.insert(cart.id.clone(), cart.clone());
    Ok((
        StatusCode::CREATED,
        [(header::LOCATION, location)],
        Json(cart),
    )
        .into_response())
}

async fn get_cart(State(state): Shared, Path(id): Path<String>) -> Response {
    match state.store().carts.get(&id) {
        Some(cart) => reply(StatusCode::OK, cart),
        None => ApiError::not_found().into_response(),
    }
}

async fn delete_cart(State(state): Shared, Path(id): Path<String>) -> Response {
    match state.store().carts.remove(&id) {
        Some(_) => StatusCode::NO_CONTENT.into_response(),
        None => ApiError::not_found().into_response(),
    }
}

async fn add_item(State(state): Shared, Path(id): Path<String>, body: Bytes) -> Reply {
    let body = parse_body(&body)?;
    let mut store = state.store();
    let cart = store.carts.get_mut(&id).ok_or_else(ApiError::not_found)?;
    let product = str_field(&body, "sku")
        .and_then(find_product)
        .ok_or_else(|| ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, "unknown sku"))?;
    let qty = body
        .get("qty")
        .and_then(Value::as_u64)
        .filter(|q| (1..=MAX_QTY).contains(q))
        .ok_or_else(|| {
            ApiError::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                format!("qty must be an integer from 1 to {MAX_QTY}"),
            )
        })?;
    let unit_cents = match cart.currency.as_str() {
        "USD" => (product.price_cents * USD_PER_100_EUR).div_ceil(100),
        _ => product.price_cents,
    };
    // Adding a SKU that is already in the cart raises its quantity, as real shops do.
    match cart.items.iter_mut().find(|i| i.sku == product.sku) {
        Some(item) if item.qty + qty > MAX_QTY => {
            return Err(ApiError::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                format!("at most {MAX_QTY} of one item per cart"),
            ));
        }
        Some(item) => item.qty += qty,
        None => cart.items.push(Item {
            sku: product.sku.to_owned(),
            qty,
            unit_cents,
        }),
    }
    cart.total_cents = cart.items.iter().map(|i| i.qty * i.unit_cents).sum();
    Ok(reply(StatusCode::CREATED, &*cart))
}

async fn checkout(State(state): Shared, Path(id): Path<String>, body: Bytes) -> Reply {
    let body = parse_body(&body)?;
    let mut store = state.store();
    let cart = store.carts.get(&id).ok_or_else(ApiError::not_found)?;
    if cart.items.is_empty() {
        return Err(ApiError::new(StatusCode::CONFLICT, "cart is empty"));
    }
    let email = str_field(&body, "email")
        .filter(|e| e.contains('@'))
        .ok_or_else(|| {
            ApiError::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                "a valid email is required",
            )
        })?;
    let order = Order {
        order_id: new_id(),
        cart_id: cart.id.clone(),
        email: email.to_owned(),
        status: "pending_payment",
        total_cents: cart.total_cents,
        currency: cart.currency.clone(),
        payment_id: None,
    };
    store.orders.insert(order.order_id.clone(), order.clone());
    Ok(reply(
        StatusCode::CREATED,
        json!({
            "order_id": order.order_id,
            "status": order.status,
            "total_cents": order.total_cents,
            "currency": order.currency,
        }),
    ))
}

async fn get_order(State(state): Shared, Path(id): Path<String>) -> Response {
    let Some(order) = state.store().orders.get(&id).cloned() else {
        return ApiError::not_found().into_response();
    };
    let mut body = json!(order);
    if state.has(Fault::ContractDrift)
        && let Some(fields) = body.as_object_mut()
    {
        // The story: a refactoring renamed a field and the mobile app lost the currency.
        fields.remove("currency");
    }
    reply(StatusCode::OK, body)
}

async fn pay_order(
    State(state): Shared,
    Path(id): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Reply {
    let authorized = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .is_some_and(|token| token == DEMO_TOKEN);
    if !authorized {
        return Err(ApiError::new(StatusCode::UNAUTHORIZED, "unauthorized"));
    }
    let body = parse_body(&body)?;
    let mut store = state.store();
    let order = store.orders.get_mut(&id).ok_or_else(ApiError::not_found)?;
    if order.status == "paid" {
        return Err(ApiError::new(StatusCode::CONFLICT, "order is already paid"));
    }
    if !str_field(&body, "card_token").is_some_and(|t| t.starts_with("tok_")) {
        return Err(ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "card_token must be a token like tok_visa",
        ));
    }
    if state.has(Fault::BrokenPayments) {
        return Err(ApiError::new(
            StatusCode::BAD_GATEWAY,
            "payment provider unavailable: upstream connect timeout",
        ));
    }
    let payment_id = format!("pay_{}", &Uuid::new_v4().simple().to_string()[..16]);
    order.status = "paid";
    order.payment_id = Some(payment_id.clone());
    Ok(reply(
        StatusCode::OK,
        json!({ "status": "paid", "payment_id": payment_id, "order_id": order.order_id }),
    ))
}

async fn recommendations(State(state): Shared) -> Response {
    if state.has(Fault::SlowRecommendations) {
        tokio::time::sleep(SLOW_RECOMMENDATIONS).await;
    }
    reply(
        StatusCode::OK,
        json!({ "items": ["SKU-456", "SKU-789", "SKU-999"] }),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Instant;

    fn client() -> reqwest::Client {
        client_sending(HeaderMap::new())
    }

    /// A client that sends `headers` with every request: the demo's session cookie, once it
    /// is known (preflight's reqwest is built without a cookie store of its own).
    fn client_sending(headers: HeaderMap) -> reqwest::Client {
        // reqwest is built with `rustls-no-provider`: a crypto provider must be installed first.
        let _ = rustls::crypto::ring::default_provider().install_default();
        reqwest::Client::builder()
            .default_headers(headers)
            .no_proxy()
            .build()
            .expect("client builds")
    }

    async fn json_of(resp: reqwest::Response) -> Value {
        let content_type = resp.headers()[header::CONTENT_TYPE].to_str().unwrap();
        assert!(
            content_type.starts_with("application/json"),
            "{content_type}"
        );
        resp.json().await.expect("JSON body")
    }

    #[tokio::test]
    async fn guest_checkout_end_to_end() {
        let server = DemoServer::start(&[]).await.unwrap();
        let base = server.base_url();
        assert_eq!(base, format!("http://127.0.0.1:{}", server.addr().port()));
        let http = client();

        let resp = http.get(format!("{base}/health")).send().await.unwrap();
        assert_eq!(resp.status(), 200);
        assert_eq!(
            json_of(resp).await,
            json!({ "status": "ok", "version": DEMO_VERSION })
        );

        let resp = http.get(format!("{base}/version")).send().await.unwrap();
        assert_eq!(resp.headers()["x-release"], DEMO_VERSION);
        assert_eq!(json_of(resp).await["commit"], "4f2a9c1");

        let resp = http.get(format!("{base}/config/checkout")).send().await;
        let resp = resp.unwrap();
        assert_eq!(resp.headers()[header::CONTENT_TYPE], "application/json");
        assert_eq!(resp.text().await.unwrap(), CHECKOUT_CONFIG);

        let resp = http.get(format!("{base}/api/products")).send().await;
        let products = json_of(resp.unwrap()).await;
        assert_eq!(products["products"][0]["sku"], "SKU-123");
        assert_eq!(products["products"][0]["price_cents"], 1999);
        let resp = http
            .get(format!("{base}/api/products/SKU-123"))
            .send()
            .await;
        assert_eq!(json_of(resp.unwrap()).await["currency"], "EUR");

        let resp = http
            .post(format!("{base}/api/session"))
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 200);
        let cookie = resp.headers()[header::SET_COOKIE].to_str().unwrap();
        assert!(cookie.starts_with("session_id=") && cookie.ends_with("; Path=/; HttpOnly"));
        let session = cookie["session_id=".len()..cookie.find(';').unwrap()].to_owned();
        let mut sent = HeaderMap::new();
        sent.insert(
            header::COOKIE,
            format!("session_id={session}").parse().unwrap(),
        );
        let http = client_sending(sent);

        let resp = http
            .post(format!("{base}/api/carts"))
            .json(&json!({ "currency": "EUR" }))
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 201);
        let location = resp.headers()[header::LOCATION]
            .to_str()
            .unwrap()
            .to_owned();
        let cart = json_of(resp).await;
        let cart_id = cart["id"].as_str().unwrap().to_owned();
        assert_eq!(location, format!("/api/carts/{cart_id}"));
        assert_eq!(cart["items"], json!([]));
        assert_eq!(cart["total_cents"], 0);
        // The session cookie went back, and the cart remembers it.
        assert_eq!(cart["session_id"], session.as_str());

        for _ in 0..2 {
            let resp = http
                .post(format!("{base}/api/carts/{cart_id}/items"))
                .json(&json!({ "sku": "SKU-123", "qty": 1 }))
                .send()
                .await
                .unwrap();
            assert_eq!(resp.status(), 201);
        }
        let resp = http.get(format!("{base}{location}")).send().await.unwrap();
        let cart = json_of(resp).await;
        assert_eq!(
            cart["items"],
            json!([{ "sku": "SKU-123", "qty": 2, "unit_cents": 1999 }])
        );
        assert_eq!(cart["total_cents"], 3998);

        let resp = http
            .post(format!("{base}/api/carts/{cart_id}/checkout"))
            .json(&json!({ "email": "smoke@example.com" }))
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 201);
        let order = json_of(resp).await;
        assert_eq!(order["status"], "pending_payment");
        assert_eq!(order["total_cents"], 3998);
        assert_eq!(order["currency"], "EUR");
        let order_id = order["order_id"].as_str().unwrap().to_owned();

        let pay = format!("{base}/api/orders/{order_id}/pay");
        let card = json!({ "card_token": "tok_visa" });
        let resp = http.post(&pay).json(&card).send().await.unwrap();
        assert_eq!(resp.status(), 401);
        assert_eq!(json_of(resp).await, json!({ "error": "unauthorized" }));

        let resp = http
            .post(&pay)
            .bearer_auth(DEMO_TOKEN)
            .json(&card)
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 200);
        let paid = json_of(resp).await;
        assert_eq!(paid["status"], "paid");
        assert_eq!(paid["order_id"], order_id.as_str());
        let payment_id = paid["payment_id"].as_str().unwrap();
        assert!(payment_id.starts_with("pay_"));
        assert!(payment_id[4..].chars().all(|c| c.is_ascii_hexdigit()));

        let resp = http
            .post(&pay)
            .bearer_auth(DEMO_TOKEN)
            .json(&card)
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 409);

        let resp = http
            .get(format!("{base}/api/orders/{order_id}"))
            .send()
            .await;
        let order = json_of(resp.unwrap()).await;
        assert_eq!(order["status"], "paid");
        assert_eq!(order["payment_id"], payment_id);

        let resp = http
            .delete(format!("{base}{location}"))
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 204);
        assert!(resp.headers().get(header::CONTENT_TYPE).is_none());
        let resp = http.get(format!("{base}{location}")).send().await.unwrap();
        assert_eq!(resp.status(), 404);
        let resp = http
            .delete(format!("{base}{location}"))
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 404);

        let resp = http.get(format!("{base}/api/recommendations")).send().await;
        assert_eq!(json_of(resp.unwrap()).await["items"][0], "SKU-456");

        server.shutdown().await;
    }

    #[tokio::test]
    async fn rejects_bad_requests_with_json_errors() {
        let server = DemoServer::start(&[]).await.unwrap();
        let base = server.base_url();
        let http = client();
        let post = |path: &str, body: Value| http.post(format!("{base}{path}")).json(&body).send();

        let resp = post("/api/carts", json!({ "currency": "GBP" }))
            .await
            .unwrap();
        assert_eq!(resp.status(), 422);
        assert!(json_of(resp).await["error"].is_string());
        let resp = post("/api/carts", json!({})).await.unwrap();
        assert_eq!(resp.status(), 422);
        let resp = http
            .post(format!("{base}/api/carts"))
            .body("{not json")
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 400);
        assert!(json_of(resp).await["error"].is_string());

        let resp = post("/api/carts", json!({ "currency": "USD" }))
            .await
            .unwrap();
        let cart_id = json_of(resp).await["id"].as_str().unwrap().to_owned();
        let items = format!("/api/carts/{cart_id}/items");

        let resp = post(&items, json!({ "sku": "SKU-000", "qty": 1 })).await;
        assert_eq!(resp.unwrap().status(), 422);
        let resp = post(&items, json!({ "sku": "SKU-123", "qty": 0 })).await;
        assert_eq!(resp.unwrap().status(), 422);
        let resp = post(
            "/api/carts/nope/items",
            json!({ "sku": "SKU-123", "qty": 1 }),
        )
        .await;
        assert_eq!(resp.unwrap().status(), 404);

        let checkout = format!("/api/carts/{cart_id}/checkout");
        let resp = post(&checkout, json!({ "email": "a@b.c" })).await.unwrap();
        assert_eq!(resp.status(), 409);

        // USD prices are converted from EUR at a fixed rate.
        let resp = post(&items, json!({ "sku": "SKU-123", "qty": 1 })).await;
        assert_eq!(json_of(resp.unwrap()).await["total_cents"], 2159);

        let resp = post(&checkout, json!({ "email": "nope" })).await.unwrap();
        assert_eq!(resp.status(), 422);
        let resp = post("/api/orders/nope/pay", json!({ "card_token": "tok_visa" }));
        assert_eq!(resp.await.unwrap().status(), 401);

        let resp = http
            .get(format!("{base}/api/products/SKU-000"))
            .send()
            .await;
        let resp = resp.unwrap();
        assert_eq!(resp.status(), 404);
        assert_eq!(json_of(resp).await, json!({ "error": "not found" }));
        let resp = http
            .get(format!("{base}/no/such/path"))
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 404);
        assert_eq!(json_of(resp).await["error"], "not found");
        let resp = http.put(format!("{base}/health")).send().await.unwrap();
        assert_eq!(resp.status(), 405);
        assert!(json_of(resp).await["error"].is_string());
    }

    /// Creates a cart with one item and checks it out; returns the pay URL.
    async fn pending_order(http: &reqwest::Client, base: &str) -> String {
        let resp = http
            .post(format!("{base}/api/carts"))
            .json(&json!({ "currency": "EUR" }))
            .send()
            .await
            .unwrap();
        let cart_id = json_of(resp).await["id"].as_str().unwrap().to_owned();
        http.post(format!("{base}/api/carts/{cart_id}/items"))
            .json(&json!({ "sku": "SKU-789", "qty": 3 }))
            .send()
            .await
            .unwrap();
        let resp = http
            .post(format!("{base}/api/carts/{cart_id}/checkout"))
            .json(&json!({ "email": "smoke@example.com" }))
            .send()
            .await
            .unwrap();
        let order = json_of(resp).await;
        assert_eq!(order["total_cents"], 3 * 2490);
        format!(
            "{base}/api/orders/{}/pay",
            order["order_id"].as_str().unwrap()
        )
    }

    #[tokio::test]
    async fn fault_broken_payments() {
        let server = DemoServer::start(&[Fault::BrokenPayments]).await.unwrap();
        let http = client();
        let pay = pending_order(&http, &server.base_url()).await;
        let resp = http
            .post(pay)
            .bearer_auth(DEMO_TOKEN)
            .json(&json!({ "card_token": "tok_visa" }))
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 502);
        assert_eq!(
            json_of(resp).await["error"],
            "payment provider unavailable: upstream connect timeout"
        );
    }

    #[tokio::test]
    async fn fault_stale_config() {
        let server = DemoServer::start(&[Fault::StaleConfig]).await.unwrap();
        let resp = client()
            .get(format!("{}/config/checkout", server.base_url()))
            .send()
            .await
            .unwrap();
        assert_eq!(resp.headers()[header::CONTENT_TYPE], "application/json");
        let served = resp.text().await.unwrap();
        assert_ne!(served, CHECKOUT_CONFIG);
        // Still valid JSON, so only the hash check can catch it.
        let served: Value = serde_json::from_str(&served).unwrap();
        assert_eq!(served["tax_rates"]["DE"], 0.16);
    }

    #[tokio::test]
    async fn fault_old_version() {
        let server = DemoServer::start(&[Fault::OldVersion]).await.unwrap();
        let base = server.base_url();
        let http = client();
        let resp = http.get(format!("{base}/health")).send().await.unwrap();
        assert_eq!(resp.status(), 200);
        assert_eq!(json_of(resp).await["version"], "1.4.1");
        let resp = http.get(format!("{base}/version")).send().await.unwrap();
        assert_eq!(resp.headers()["x-release"], "1.4.1");
        assert_eq!(
            json_of(resp).await,
            json!({ "commit": "0ld0ld0", "version": "1.4.1" })
        );
    }

    #[tokio::test]
    async fn fault_slow_recommendations() {
        let server = DemoServer::start(&[Fault::SlowRecommendations])
            .await
            .unwrap();
        let url = format!("{}/api/recommendations", server.base_url());
        let started = Instant::now();
        let resp = client().get(url).send().await.unwrap();
        assert_eq!(resp.status(), 200);
        assert!(started.elapsed() >= SLOW_RECOMMENDATIONS);
        assert!(json_of(resp).await["items"].is_array());
    }

    /// The binary's copy of the suite is the repository's, file for file: a flow added to
    /// `smoke-tests/` and not to [`BUNDLED_FILES`] would be missing from an installed demo.
    #[test]
    fn bundled_files_mirror_the_repository() {
        fn files(dir: &std::path::Path, out: &mut Vec<std::path::PathBuf>) {
            for entry in std::fs::read_dir(dir).unwrap() {
                let path = entry.unwrap().path();
                if path.is_dir() {
                    files(&path, out);
                } else {
                    out.push(path);
                }
            }
        }
        let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
        let mut on_disk = vec![root.join("config/checkout-config.json")];
        files(&root.join(DEMO_SUITE), &mut on_disk);
        on_disk.sort();
        let mut bundled: Vec<_> = BUNDLED_FILES.iter().map(|(p, _)| root.join(p)).collect();
        bundled.sort();
        assert_eq!(bundled, on_disk);
        for (relative, content) in BUNDLED_FILES {
            let disk = std::fs::read_to_string(root.join(relative)).unwrap();
            assert_eq!(disk, content, "{relative}");
        }
        let written = BundledSuite::write().unwrap();
        let root = written.root.clone();
        assert!(written.suite().join("preflight.lock").is_file());
        drop(written);
        assert!(!root.exists(), "removed when dropped");
    }

    #[tokio::test]
    async fn stops_when_shut_down_or_dropped() {
        let server = DemoServer::start(&[]).await.unwrap();
        let addr = server.addr();
        server.shutdown().await;
        assert!(tokio::net::TcpStream::connect(addr).await.is_err());

        let server = DemoServer::start(&[]).await.unwrap();
        let addr = server.addr();
        drop(server);
        // Dropping only signals the task; give it a moment to close the listener.
        for _ in 0..50 {
            if tokio::net::TcpStream::connect(addr).await.is_err() {
                return;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        panic!("server still accepts connections after drop");
    }
}
