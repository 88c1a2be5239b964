//! Serving a fake's axum router on a loopback port, with the harness's layers in
//! front of it: [`ResponseGate`], which holds chosen responses until released (to make
//! a change happen while a fetch is in flight), and
//! [`crate::fault_layer::FaultInjector`].
//!
//! A held response has already been computed by the fake: the fetch has read the
//! item's state, and only its answer waits. That is the window in which a change at
//! the service races with a sync.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use axum::Router;
use axum::extract::{Request, State};
use axum::middleware::{self, Next};
use axum::response::Response;
use tokio::sync::{oneshot, watch};

/// A fake served on `127.0.0.1` at a free port; stops when dropped.
#[derive(Debug)]
pub struct LoopbackServer {
    addr: SocketAddr,
    shutdown: Option<oneshot::Sender<()>>,
}

impl LoopbackServer {
    /// Serves `router` until dropped.
    ///
    /// # Panics
    /// When no loopback port can be bound.
    pub async fn start(router: Router) -> LoopbackServer {
        let listener = tokio::net::TcpListener::bind(("127.0.0.1", 0))
            .await
            .expect("bind a loopback port");
        let addr = listener.local_addr().expect("local address");
        let (tx, rx) = oneshot::channel::<()>();
        tokio::spawn(async move {
            axum::serve(listener, router)
                .with_graceful_shutdown(async {
                    let _ = rx.await;
                })
                .await
        });
        LoopbackServer {
            addr,
            shutdown: Some(tx),
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
}

impl Drop for LoopbackServer {
    fn drop(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
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
