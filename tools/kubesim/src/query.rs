//! The query parameters of the resource endpoints, as one serde-deserialised struct (axum's
//! `Query` extractor), and their checks in the API server's words.

use crate::selector::{FieldSelector, LabelSelector};
use crate::status::ApiError;
use crate::store::WriteOptions;
use axum::http::{HeaderMap, header};
use serde::{Deserialize, Deserializer};
use std::time::Duration;

/// What a request may carry after `?`. Values whose bad forms get a Kubernetes `Status`
/// (dryRun, force, limit, timeoutSeconds) stay strings here and are checked by the
/// methods below, since a serde error would only give axum's plain-text rejection.
/// Unknown parameters are ignored, as the API server ignores them.
#[derive(Debug, Default, Clone, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct Params {
    pub dry_run: Option<String>,
    pub field_manager: Option<String>,
    pub force: Option<String>,
    /// Accepted and ignored: kubesim has no schemas to validate against.
    pub field_validation: Option<String>,
    pub label_selector: Option<String>,
    pub field_selector: Option<String>,
    #[serde(deserialize_with = "flag")]
    pub watch: bool,
    pub resource_version: Option<String>,
    /// Accepted and ignored: every list is served from the current state.
    pub resource_version_match: Option<String>,
    #[serde(deserialize_with = "flag")]
    pub allow_watch_bookmarks: bool,
    #[serde(deserialize_with = "flag")]
    pub send_initial_events: bool,
    pub timeout_seconds: Option<String>,
    pub limit: Option<String>,
    #[serde(rename = "continue")]
    pub continue_token: Option<String>,
    /// Accepted and ignored: kubesim has no garbage collector to propagate to.
    pub propagation_policy: Option<String>,
}

/// A boolean flag as the API server reads `watch=`: `true` or `1` is on, anything else off.
fn flag<'de, D: Deserializer<'de>>(d: D) -> Result<bool, D::Error> {
    let v = Option::<String>::deserialize(d)?;
    Ok(matches!(v.as_deref(), Some("true" | "1")))
}

impl Params {
    /// How a write is made: dryRun, fieldManager (or the User-Agent's program) and force.
    pub fn write_options(
        &self,
        headers: &HeaderMap,
        subresource: Option<&str>,
    ) -> Result<WriteOptions, ApiError> {
        Ok(WriteOptions {
            dry_run: self.dry_run()?,
            manager: self.manager(headers)?,
            force: self.force()?,
            subresource: subresource.map(str::to_string),
        })
    }

    pub fn dry_run(&self) -> Result<bool, ApiError> {
        match self.dry_run.as_deref() {
            None | Some("") => Ok(false),
            Some("All") => Ok(true),
            Some(other) => Err(ApiError::bad_request(format!(
                "dryRun: Unsupported value: {other:?}: supported values: \"All\""
            ))),
        }
    }

    /// `dryRun=All` alone, for counting a request before its options are checked.
    pub fn is_dry_run(&self) -> bool {
        self.dry_run.as_deref() == Some("All")
    }

    fn manager(&self, headers: &HeaderMap) -> Result<String, ApiError> {
        match self.field_manager.as_deref() {
            Some(m) if m.len() > 128 => Err(ApiError::bad_request(
                "fieldManager: Too long: may not be more than 128 bytes",
            )),
            Some(m) if !m.is_empty() => Ok(m.to_string()),
            // Kubernetes names an unnamed manager after the client's User-Agent.
            _ => Ok(headers
                .get(header::USER_AGENT)
                .and_then(|v| v.to_str().ok())
                .and_then(|ua| ua.split('/').next())
                .filter(|s| !s.is_empty())
                .unwrap_or("unknown")
                .to_string()),
        }
    }

    /// Whether the request named its field manager (server-side apply must).
    pub fn names_manager(&self) -> bool {
        self.field_manager.as_deref().is_some_and(|m| !m.is_empty())
    }

    fn force(&self) -> Result<bool, ApiError> {
        match self.force.as_deref() {
            None | Some("false") | Some("") => Ok(false),
            Some("true") => Ok(true),
            Some(other) => Err(ApiError::bad_request(format!(
                "force: invalid value {other:?}"
            ))),
        }
    }

    pub fn selectors(&self) -> Result<(LabelSelector, FieldSelector), ApiError> {
        let labels = LabelSelector::parse(self.label_selector.as_deref().unwrap_or(""))
            .map_err(ApiError::bad_request)?;
        let fields = FieldSelector::parse(self.field_selector.as_deref().unwrap_or(""))
            .map_err(ApiError::bad_request)?;
        Ok((labels, fields))
    }

    pub fn timeout(&self) -> Result<Option<Duration>, ApiError> {
        self.timeout_seconds
            .as_deref()
            .map(|t| {
                t.parse().map(Duration::from_secs).map_err(|_| {
                    ApiError::bad_request(format!("timeoutSeconds: invalid value {t:?}"))
                })
            })
            .transpose()
    }

    pub fn limit(&self) -> Result<Option<usize>, ApiError> {
        self.limit
            .as_deref()
            .map(|l| {
                l.parse()
                    .map_err(|_| ApiError::bad_request(format!("limit: invalid value {l:?}")))
            })
            .transpose()
    }

    /// The continue token of a list page, if any.
    pub fn continue_from(&self) -> Option<&str> {
        self.continue_token.as_deref().filter(|s| !s.is_empty())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::extract::Query;
    use axum::http::Uri;

    fn parse(q: &str) -> Params {
        let uri: Uri = format!("/api/v1/configmaps?{q}").parse().expect("uri");
        Query::<Params>::try_from_uri(&uri).expect("query parses").0
    }

    #[test]
    fn decodes_names_flags_and_escapes() {
        let p = parse(
            "watch=1&allowWatchBookmarks=true&labelSelector=app%3Dweb,tier+in+(a)&continue=abc&limit=5&timeoutSeconds=7&unknown=x",
        );
        assert!(p.watch && p.allow_watch_bookmarks && !p.send_initial_events);
        assert_eq!(p.label_selector.as_deref(), Some("app=web,tier in (a)"));
        assert_eq!(p.continue_from(), Some("abc"));
        assert_eq!(p.limit().expect("limit"), Some(5));
        assert_eq!(p.timeout().expect("timeout"), Some(Duration::from_secs(7)));
        assert!(!parse("watch=yes").watch);
    }

    #[test]
    fn a_parameter_given_twice_is_refused() {
        let uri: Uri = "/api/v1/configmaps?limit=1&limit=2".parse().expect("uri");
        let e = Query::<Params>::try_from_uri(&uri).expect_err("duplicate");
        assert!(
            e.body_text().contains("duplicate field `limit`"),
            "{}",
            e.body_text()
        );
    }

    #[test]
    fn bad_values_get_the_api_servers_words() {
        let e = parse("dryRun=Some").dry_run().expect_err("bad dryRun");
        assert_eq!(
            e.message,
            "dryRun: Unsupported value: \"Some\": supported values: \"All\""
        );
        assert_eq!(
            parse("limit=x").limit().expect_err("bad limit").message,
            "limit: invalid value \"x\""
        );
        let opts = parse("force=true&fieldManager=me&dryRun=All")
            .write_options(&HeaderMap::new(), None)
            .expect("options");
        assert!(opts.force && opts.dry_run);
        assert_eq!(opts.manager, "me");
    }
}
