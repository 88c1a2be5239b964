//! The settings every Graph integration takes, with the same names and defaults.
//!
//! | setting | default | what |
//! |---|---|---|
//! | `baseUrl` | `https://graph.microsoft.com/v1.0` | the Graph root (a fake's in tests) |
//! | `tokenUrl` | derived from `tenant` | the token endpoint (a fake's in tests) |
//! | `tenant` | `common` | whose users sign in (`organizations`, `consumers`, a tenant id) |
//! | `pageSize` | 100 (1 to 1,000) | items per page asked with `Prefer: odata.maxpagesize` |
//!
//! The manifests declare these defaults too (the kit fills settings from the
//! manifest); the serde defaults here say the same, so a [`GraphSettings`] decodes on
//! its own. An integration embeds it with `#[serde(flatten)]`, or copies the four
//! fields into one.

use serde::{Deserialize, Serialize};
use tributary_sdk::IntegrationError;
use url::Url;

use crate::oauth;

/// Graph v1.0's root.
pub const DEFAULT_BASE_URL: &str = "https://graph.microsoft.com/v1.0";

/// The default `pageSize`.
pub const DEFAULT_PAGE_SIZE: u32 = 100;

/// The largest `odata.maxpagesize` sent (Graph's largest message page).
pub const MAX_PAGE_SIZE: u32 = 1000;

/// The settings of a Graph account (see the module docs).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct GraphSettings {
    /// The Graph root, e.g. `https://graph.microsoft.com/v1.0`.
    #[serde(default = "default_base_url")]
    pub base_url: String,
    /// The token endpoint, when not the tenant's.
    #[serde(default)]
    pub token_url: Option<String>,
    /// The tenant of the identity platform.
    #[serde(default = "default_tenant")]
    pub tenant: String,
    /// Items per page.
    #[serde(default = "default_page_size")]
    pub page_size: u32,
}

fn default_base_url() -> String {
    DEFAULT_BASE_URL.to_owned()
}

fn default_tenant() -> String {
    oauth::DEFAULT_TENANT.to_owned()
}

fn default_page_size() -> u32 {
    DEFAULT_PAGE_SIZE
}

impl Default for GraphSettings {
    fn default() -> GraphSettings {
        GraphSettings {
            base_url: default_base_url(),
            token_url: None,
            tenant: default_tenant(),
            page_size: DEFAULT_PAGE_SIZE,
        }
    }
}

impl GraphSettings {
    /// The token endpoint to refresh at: `tokenUrl`, else the tenant's
    /// ([`oauth::token_url`]). Errors (a bad tenant, a `tokenUrl` that is not http(s))
    /// are permanent.
    pub fn token_endpoint(&self) -> Result<String, IntegrationError> {
        match &self.token_url {
            Some(url) => {
                http_url("tokenUrl", url)?;
                Ok(url.clone())
            }
            None => oauth::token_url(&self.tenant),
        }
    }

    /// `baseUrl` as a directory (a trailing slash added), so that relative paths join
    /// under it: `https://graph.microsoft.com/v1.0/` + `me/messages`.
    pub fn base(&self) -> Result<Url, IntegrationError> {
        let mut url = http_url("baseUrl", &self.base_url)?;
        if url.query().is_some() || url.fragment().is_some() {
            return Err(invalid(
                "baseUrl",
                &self.base_url,
                "it has a query or fragment",
            ));
        }
        if !url.path().ends_with('/') {
            let path = format!("{}/", url.path());
            url.set_path(&path);
        }
        Ok(url)
    }

    /// `pageSize` within 1..=[`MAX_PAGE_SIZE`].
    pub fn clamped_page_size(&self) -> u32 {
        self.page_size.clamp(1, MAX_PAGE_SIZE)
    }
}

fn http_url(name: &str, text: &str) -> Result<Url, IntegrationError> {
    let url = Url::parse(text).map_err(|e| invalid(name, text, &e.to_string()))?;
    if !matches!(url.scheme(), "http" | "https") || url.host_str().is_none() {
        return Err(invalid(name, text, "expected an absolute http(s) url"));
    }
    Ok(url)
}

fn invalid(name: &str, text: &str, why: &str) -> IntegrationError {
    let shown: String = text.chars().take(200).collect();
    IntegrationError::permanent(format!("invalid microsoft graph {name} `{shown}`: {why}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_decode_from_nothing() {
        let settings: GraphSettings = serde_json::from_str("{}").unwrap();
        assert_eq!(settings, GraphSettings::default());
        assert_eq!(
            settings.token_endpoint().unwrap(),
            "https://login.microsoftonline.com/common/oauth2/v2.0/token"
        );
        assert_eq!(
            settings.base().unwrap().as_str(),
            "https://graph.microsoft.com/v1.0/"
        );
    }

    #[test]
    fn the_tenant_or_the_token_url_decide_where_to_refresh() {
        let settings: GraphSettings =
            serde_json::from_value(serde_json::json!({"tenant": "organizations"})).unwrap();
        assert_eq!(
            settings.token_endpoint().unwrap(),
            "https://login.microsoftonline.com/organizations/oauth2/v2.0/token"
        );
        let settings = GraphSettings {
            token_url: Some("http://127.0.0.1:9/common/oauth2/v2.0/token".into()),
            tenant: "not/valid".into(),
            ..GraphSettings::default()
        };
        assert_eq!(
            settings.token_endpoint().unwrap(),
            "http://127.0.0.1:9/common/oauth2/v2.0/token"
        );
        let bad = GraphSettings {
            tenant: "a/b".into(),
            ..GraphSettings::default()
        };
        assert!(bad.token_endpoint().is_err());
        let bad = GraphSettings {
            token_url: Some("ftp://x/token".into()),
            ..GraphSettings::default()
        };
        assert!(bad.token_endpoint().is_err());
    }

    #[test]
    fn base_urls_are_directories_and_only_http() {
        let with = |base: &str| GraphSettings {
            base_url: base.into(),
            ..GraphSettings::default()
        };
        assert_eq!(
            with("http://127.0.0.1:8080/v1.0/").base().unwrap().as_str(),
            "http://127.0.0.1:8080/v1.0/"
        );
        for bad in [
            "",
            "graph.microsoft.com",
            "mailto:a@b.c",
            "https://g/v1.0?x=1",
            "file:///v1.0",
        ] {
            assert!(with(bad).base().is_err(), "{bad}");
        }
        assert_eq!(
            GraphSettings {
                page_size: 0,
                ..GraphSettings::default()
            }
            .clamped_page_size(),
            1
        );
        assert_eq!(
            GraphSettings {
                page_size: 5000,
                ..GraphSettings::default()
            }
            .clamped_page_size(),
            MAX_PAGE_SIZE
        );
    }
}
