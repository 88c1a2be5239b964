//! Where a fake Graph tenant is served: the URLs a client is pointed at, made from the
//! server's address in one place for every Graph fake (the Outlook and OneDrive
//! fakes' `base_url`/`token_url`/`authorize_url`, their standalone links, tests).

use std::net::SocketAddr;

use serde_json::{Map, Value};

use crate::GraphHandle;

/// The URLs of a Graph tenant served on `http://ADDR` (the router of
/// [`GraphHandle::router`]): the Graph root and the identity platform's endpoints for
/// the `common` tenant.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct GraphUrls {
    addr: SocketAddr,
}

impl From<SocketAddr> for GraphUrls {
    fn from(addr: SocketAddr) -> GraphUrls {
        GraphUrls::new(addr)
    }
}

impl GraphUrls {
    /// The URLs of the server on `addr`.
    pub fn new(addr: SocketAddr) -> GraphUrls {
        GraphUrls { addr }
    }

    /// The address served.
    pub fn addr(self) -> SocketAddr {
        self.addr
    }

    /// `http://127.0.0.1:PORT`: the server's origin.
    pub fn origin(self) -> String {
        format!("http://{}", self.addr)
    }

    /// `http://127.0.0.1:PORT/v1.0`: the Graph root, the `baseUrl` setting.
    pub fn base_url(self) -> String {
        format!("{}/v1.0", self.origin())
    }

    /// `http://127.0.0.1:PORT/common/oauth2/v2.0/token`, the `tokenUrl` setting.
    pub fn token_url(self) -> String {
        format!("{}{}", self.origin(), GraphHandle::token_path("common"))
    }

    /// `http://127.0.0.1:PORT/common/oauth2/v2.0/authorize`.
    pub fn authorize_url(self) -> String {
        format!("{}{}", self.origin(), GraphHandle::authorize_path("common"))
    }

    /// The settings that point a Graph integration at the server: `baseUrl` and
    /// `tokenUrl`.
    pub fn settings(self) -> Map<String, Value> {
        let mut settings = Map::new();
        settings.insert("baseUrl".into(), Value::String(self.base_url()));
        settings.insert("tokenUrl".into(), Value::String(self.token_url()));
        settings
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_are_made_from_the_address() {
        let urls = GraphUrls::from(SocketAddr::from(([127, 0, 0, 1], 8123)));
        assert_eq!(urls.base_url(), "http://127.0.0.1:8123/v1.0");
        assert_eq!(
            urls.token_url(),
            "http://127.0.0.1:8123/common/oauth2/v2.0/token"
        );
        assert_eq!(
            urls.authorize_url(),
            "http://127.0.0.1:8123/common/oauth2/v2.0/authorize"
        );
        let settings = urls.settings();
        assert_eq!(settings["baseUrl"], urls.base_url().as_str());
        assert_eq!(settings["tokenUrl"], urls.token_url().as_str());
    }
}
