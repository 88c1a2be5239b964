//! Serving a fake's axum router on a loopback port ([`LoopbackServer`]), with layers
//! that tests put in front of it: [`ResponseGate`], which holds chosen responses until
//! released (to make a change happen while a fetch is in flight), and
//! [`crate::fault_layer::FaultInjector`]; and [`Deliveries`], which adds items to a
//! running fake on a period (`tributary fake <domain> --deliver-every`).
//!
//! A held response has already been computed by the fake: the fetch has read the
//! item's state, and only its answer waits. That is the window in which a change at
//! the service races with a sync.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use axum::Router;
use axum::extract::{Request, State};
use axum::middleware::{self, Next};
use axum::response::Response;
use tokio::net::TcpListener;
use tokio::sync::{oneshot, watch};
use tokio::task::JoinHandle;

/// A router served on a TCP address until stopped or dropped.
#[derive(Debug)]
pub struct LoopbackServer {
    addr: SocketAddr,
    shutdown: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<std::io::Result<()>>>,
}

impl LoopbackServer {
    /// Serves `router` on `127.0.0.1` at a free port until dropped.
    ///
    /// # Panics
    /// When no loopback port can be bound.
    pub async fn start(router: Router) -> LoopbackServer {
        LoopbackServer::bind(SocketAddr::from(([127, 0, 0, 1], 0)), router)
            .await
            .expect("bind a loopback port")
    }

    /// Serves `router` on `addr` (port 0 picks a free one) until dropped or
    /// [`LoopbackServer::stop`].
    pub async fn bind(addr: SocketAddr, router: Router) -> std::io::Result<LoopbackServer> {
        let listener = TcpListener::bind(addr).await?;
        Ok(LoopbackServer::serve(listener, router))
    }

    /// Serves `router` on a bound `listener`.
    ///
    /// # Panics
    /// When the listener has no local address (never for a bound TCP listener).
    pub fn serve(listener: TcpListener, router: Router) -> LoopbackServer {
        let addr = listener.local_addr().expect("local address");
        let (tx, rx) = oneshot::channel::<()>();
        let task = tokio::spawn(serve(listener, router, async {
            // A dropped sender also means "stop".
            let _ = rx.await;
        }));
        LoopbackServer {
            addr,
            shutdown: Some(tx),
            task: Some(task),
        }
    }

    /// The address served.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `http://127.0.0.1:PORT/`, with a trailing slash.
    pub fn base_url(&self) -> String {
        format!("http://{}/", self.addr)
    }

    /// Stops accepting connections, finishes the requests in flight and waits for the
    /// server task.
    pub async fn stop(mut self) -> std::io::Result<()> {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        match self.task.take() {
            Some(task) => task.await.map_err(std::io::Error::other)?,
            None => Ok(()),
        }
    }
}

impl Drop for LoopbackServer {
    fn drop(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
    }
}

/// Serves `router` on `listener` until `shutdown` completes, then finishes the
/// requests in flight and returns.
pub async fn serve(
    listener: TcpListener,
    router: Router,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    axum::serve(listener, router)
        .with_graceful_shutdown(shutdown)
        .await
}

/// Calls a function on a period (the first call one period after the start) until
/// dropped: a running fake's `--deliver-every`.
#[derive(Debug)]
pub struct Deliveries {
    task: JoinHandle<()>,
}

impl Deliveries {
    /// Calls `deliver` every `every` on a blocking thread (generating an item may
    /// take CPU time); `None` for a zero period.
    pub fn every(every: Duration, deliver: impl Fn() + Send + Sync + 'static) -> Option<Self> {
        if every.is_zero() {
            return None;
        }
        let deliver = Arc::new(deliver);
        let task = tokio::spawn(async move {
            let mut ticker = tokio::time::interval(every);
            ticker.tick().await;
            loop {
                ticker.tick().await;
                let deliver = deliver.clone();
                let _ = tokio::task::spawn_blocking(move || deliver()).await;
            }
        });
        Some(Deliveries { task })
    }
}

impl Drop for Deliveries {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Holds the responses of requests whose path contains a fragment, after the fake has
/// answered them, until [`ResponseGate::release`]. Cheap to clone.
#[derive(Debug, Clone)]
pub struct ResponseGate {
    state: Arc<Mutex<GateState>>,
    open: watch::Sender<bool>,
}

#[derive(Debug, Default)]
struct GateState {
    fragment: Option<String>,
    held: usize,
}

impl Default for ResponseGate {
    fn default() -> Self {
        ResponseGate::new()
    }
}

impl ResponseGate {
    /// A gate that holds nothing.
    pub fn new() -> ResponseGate {
        ResponseGate {
            state: Arc::new(Mutex::new(GateState::default())),
            open: watch::Sender::new(true),
        }
    }

    fn lock(&self) -> MutexGuard<'_, GateState> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Holds the responses of requests whose path contains `fragment` from now on.
    pub fn hold(&self, fragment: impl Into<String>) {
        let mut state = self.lock();
        state.fragment = Some(fragment.into());
        state.held = 0;
        self.open.send_replace(false);
    }

    /// How many responses have been held since [`ResponseGate::hold`].
    pub fn held(&self) -> usize {
        self.lock().held
    }

    /// Lets every held response go, and holds nothing more.
    pub fn release(&self) {
        self.lock().fragment = None;
        self.open.send_replace(true);
    }

    /// `router` with this gate in front of every route.
    pub fn layer(&self, router: Router) -> Router {
        router.layer(middleware::from_fn_with_state(self.clone(), hold))
    }
}

async fn hold(State(gate): State<ResponseGate>, request: Request, next: Next) -> Response {
    let matches = {
        let state = gate.lock();
        state
            .fragment
            .as_deref()
            .is_some_and(|f| request.uri().path().contains(f))
    };
    let response = next.run(request).await;
    if matches {
        let mut open = gate.open.subscribe();
        gate.lock().held += 1;
        // An error means the gate was dropped: nothing will ever open it, let go.
        let _ = open.wait_for(|open| *open).await;
    }
    response
}
