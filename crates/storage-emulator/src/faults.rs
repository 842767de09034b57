//! Fault injection: rules that match requests and change how the emulator answers them.
//!
//! A rule matches on provider, listener, method and a path pattern; it can let the first
//! `skip` matches through and then act on the next `times` matches (or on all of them).

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;
use std::time::{Duration, Instant};

use parking_lot::Mutex;
use serde::{Deserialize, Serialize};

use crate::origin::Origin;
pub use crate::origin::Provider;

/// Why Microsoft's token endpoint sends the user back to sign in, for
/// [`EmulatorHandle::require_sign_in`](crate::EmulatorHandle::require_sign_in).
///
/// Each answers a refresh with 400, its `error` and its AADSTS code in
/// `error_codes` ("Microsoft identity platform error codes",
/// <https://learn.microsoft.com/entra/identity-platform/reference-error-codes>;
/// `error` values from "Microsoft identity platform and OAuth 2.0 authorization
/// code flow", <https://learn.microsoft.com/entra/identity-platform/v2-oauth2-auth-code-flow>).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum SignInRequired {
    /// `interaction_required`, AADSTS50076: multi-factor authentication is required.
    Mfa,
    /// `interaction_required`, AADSTS50079: the user must enrol in multi-factor authentication.
    MfaEnrollment,
    /// `consent_required`, AADSTS65001: the user or an administrator has not consented.
    Consent,
    /// `invalid_grant`, AADSTS70043: Conditional Access sign-in frequency expired the refresh token.
    SignInFrequency,
    /// `invalid_grant`, AADSTS700084: a single-page app's refresh token reached its 24 h lifetime.
    SpaLifetime,
}

impl SignInRequired {
    /// Every reason, for tests that walk them all.
    pub const ALL: [Self; 5] = [
        Self::Mfa,
        Self::MfaEnrollment,
        Self::Consent,
        Self::SignInFrequency,
        Self::SpaLifetime,
    ];

    /// The OAuth `error` value.
    pub fn error(self) -> &'static str {
        match self {
            Self::Mfa | Self::MfaEnrollment => "interaction_required",
            Self::Consent => "consent_required",
            Self::SignInFrequency | Self::SpaLifetime => "invalid_grant",
        }
    }

    /// The AADSTS number.
    pub fn code(self) -> u32 {
        match self {
            Self::Mfa => 50_076,
            Self::MfaEnrollment => 50_079,
            Self::Consent => 65_001,
            Self::SignInFrequency => 70_043,
            Self::SpaLifetime => 700_084,
        }
    }

    /// The description text, after `AADSTS{code}: ` (the reference list's wording).
    pub(crate) fn text(self) -> &'static str {
        match self {
            Self::Mfa => {
                "Due to a configuration change made by your administrator, or because you moved to a new location, you must use multi-factor authentication to access '00000003-0000-0000-c000-000000000000'."
            }
            Self::MfaEnrollment => {
                "Due to a configuration change made by your administrator, or because you moved to a new location, you must enroll in multi-factor authentication to access '00000003-0000-0000-c000-000000000000'."
            }
            Self::Consent => {
                "The user or administrator has not consented to use the application. Send an interactive authorization request for this user and resource."
            }
            Self::SignInFrequency => {
                "The refresh token has expired or is invalid due to sign-in frequency checks by conditional access."
            }
            Self::SpaLifetime => {
                "The refresh token was issued to a single page app (SPA), and therefore has a fixed, limited lifetime of 1.00:00:00, which cannot be extended."
            }
        }
    }
}

/// What a matching rule does.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum FaultAction {
    /// Answer with this status, these headers and this body instead of serving the request.
    /// Without a body, the emulator writes the provider's own error JSON for the status.
    Respond {
        /// HTTP status code.
        status: u16,
        /// Extra response headers, e.g. `("Retry-After", "3")`.
        #[serde(default)]
        headers: Vec<(String, String)>,
        /// Response body; `None` means "the provider's error JSON for `status`".
        #[serde(default)]
        body: Option<String>,
    },
    /// Reset the TCP connection (RST) before any response byte is written.
    ResetBeforeResponse,
    /// Serve the request (state changes happen, e.g. an upload chunk is stored), then reset the
    /// connection (RST) instead of sending the response: the "server got it, the answer was lost"
    /// case.
    ResetAfterProcessing,
    /// Serve the request, write the first `after_bytes` bytes of the response body, then
    /// reset the connection (RST).
    ResetMidBody {
        /// Body bytes written before the reset.
        after_bytes: u64,
    },
    /// Serve the request but close the connection (FIN) after `after_bytes` body bytes, so the
    /// body ends short of its `Content-Length`.
    TruncateBody {
        /// Body bytes written before the close.
        after_bytes: u64,
    },
    /// On an upload chunk or fragment, keep only the first `bytes` bytes of it; the 308 `Range`
    /// or `nextExpectedRanges` then shows fewer bytes than were sent.
    AcceptPartialChunk {
        /// Bytes of the chunk that are kept.
        bytes: u64,
    },
    /// Expire the upload session the request addresses, then answer as for an expired session.
    ExpireUploadSession,
    /// Serve the request with the byte at `offset` of its body inverted, as a link or
    /// proxy that damages data in transit would: the server stores and hashes what it
    /// received, which is not what the client sent. Past the body's end, the request is
    /// served unchanged.
    CorruptRequestBody {
        /// Offset of the damaged byte within the request body.
        offset: u64,
    },
    /// Wait this long before serving the request.
    Delay {
        /// Delay in milliseconds.
        millis: u64,
    },
    /// Serve the request (its state changes happen), then wait this long
    /// before answering: a slow answer to a request that already took effect,
    /// during which a client may give up.
    DelayResponse {
        /// Delay in milliseconds.
        millis: u64,
    },
    /// A slow link: read the request body at no more than `bytes` per
    /// `every_millis`, then serve the request. TCP's flow control makes the
    /// client's writes wait accordingly (RFC 9293 §3.8.6: the receive window
    /// closes while the receiver does not read).
    DripRequestBody {
        /// Bytes read per interval.
        bytes: u64,
        /// The interval, in milliseconds.
        every_millis: u64,
    },
    /// A link that stalls: read the first `after_bytes` of the request body,
    /// then nothing for `millis`, then the rest, and serve the request.
    StallRequestBody {
        /// Body bytes read before the stall.
        after_bytes: u64,
        /// How long nothing is read, in milliseconds.
        millis: u64,
    },
    /// Allow each grant (identified by its access token) `limit` matching requests per
    /// `window_millis`; beyond that answer with the provider's throttling response: Drive 403
    /// `userRateLimitExceeded`, Graph 429 `activityLimitReached` with `Retry-After`.
    RateLimitPerGrant {
        /// Requests allowed per window and grant.
        limit: u32,
        /// Window length in milliseconds.
        window_millis: u64,
        /// `Retry-After` seconds on the throttling response (Graph always sends one).
        #[serde(default)]
        retry_after_secs: Option<u64>,
    },
}

impl FaultAction {
    /// Answer with `status` and the provider's error JSON for it.
    pub fn status(status: u16) -> Self {
        Self::Respond {
            status,
            headers: Vec::new(),
            body: None,
        }
    }

    /// Answer with `status`, a `Retry-After: secs` header and the provider's error JSON.
    pub fn retry_after(status: u16, secs: u64) -> Self {
        Self::Respond {
            status,
            headers: vec![("Retry-After".to_owned(), secs.to_string())],
            body: None,
        }
    }

    /// Like [`FaultAction::retry_after`], but `Retry-After` is an HTTP-date `secs` seconds from
    /// now (the other form RFC 9110 §10.2.3 allows; IMF-fixdate per §5.6.7).
    pub fn retry_after_http_date(status: u16, secs: u64) -> Self {
        let at = chrono::Utc::now() + chrono::Duration::seconds(i64::try_from(secs).unwrap_or(i64::MAX / 1000));
        Self::Respond {
            status,
            headers: vec![(
                "Retry-After".to_owned(),
                at.format("%a, %d %b %Y %H:%M:%S GMT").to_string(),
            )],
            body: None,
        }
    }

    /// A Drive-shaped error with this status and `errors[0].reason`
    /// (e.g. 403 `userRateLimitExceeded` or `rateLimitExceeded`).
    pub fn google_error(status: u16, reason: &str) -> Self {
        Self::Respond {
            status,
            headers: vec![("Content-Type".to_owned(), "application/json; charset=UTF-8".to_owned())],
            body: Some(crate::errors::google_error_json(status, reason, None).to_string()),
        }
    }

    /// A Graph-shaped error with this status and `error.code` (e.g. 429 `activityLimitReached`).
    pub fn graph_error(status: u16, code: &str) -> Self {
        Self::Respond {
            status,
            headers: vec![("Content-Type".to_owned(), "application/json".to_owned())],
            body: Some(crate::errors::graph_error_json(code, None, None).to_string()),
        }
    }

    /// Adds a response header to a [`FaultAction::Respond`]; other actions are unchanged.
    #[must_use]
    pub fn with_header(mut self, name: &str, value: &str) -> Self {
        if let Self::Respond { headers, .. } = &mut self {
            headers.push((name.to_owned(), value.to_owned()));
        }
        self
    }
}

/// A fault rule: a matcher plus an action.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FaultRule {
    /// Only requests to this provider (any provider when `None`).
    #[serde(default)]
    pub provider: Option<Provider>,
    /// Only requests on this listener (both when `None`).
    #[serde(default)]
    pub origin: Option<Origin>,
    /// Only this HTTP method (case-insensitive; any when `None`).
    #[serde(default)]
    pub method: Option<String>,
    /// Only paths matching this pattern, where `*` matches any run of characters
    /// (e.g. `/drive/v3/files/*`, `*/content`). Matched against the raw path, without query.
    #[serde(default)]
    pub path: Option<String>,
    /// Let this many matching requests through before acting (the rule acts from the
    /// `skip + 1`-th match on).
    #[serde(default)]
    pub skip: u32,
    /// Act on at most this many matches, then retire (`None`: no limit).
    #[serde(default)]
    pub times: Option<u32>,
    /// What to do.
    pub action: FaultAction,
}

impl FaultRule {
    /// A rule that applies `action` to every request.
    pub fn new(action: FaultAction) -> Self {
        Self {
            provider: None,
            origin: None,
            method: None,
            path: None,
            skip: 0,
            times: None,
            action,
        }
    }

    /// Restricts the rule to one provider.
    #[must_use]
    pub fn provider(mut self, provider: Provider) -> Self {
        self.provider = Some(provider);
        self
    }

    /// Restricts the rule to one listener.
    #[must_use]
    pub fn origin(mut self, origin: Origin) -> Self {
        self.origin = Some(origin);
        self
    }

    /// Restricts the rule to one HTTP method.
    #[must_use]
    pub fn method(mut self, method: &str) -> Self {
        self.method = Some(method.to_owned());
        self
    }

    /// Restricts the rule to paths matching `pattern` (`*` is a wildcard).
    #[must_use]
    pub fn path(mut self, pattern: &str) -> Self {
        self.path = Some(pattern.to_owned());
        self
    }

    /// Lets the first `n` matches through.
    #[must_use]
    pub fn skip(mut self, n: u32) -> Self {
        self.skip = n;
        self
    }

    /// Acts on the next `n` matches only.
    #[must_use]
    pub fn times(mut self, n: u32) -> Self {
        self.times = Some(n);
        self
    }

    fn matches(&self, req: &RequestFacts<'_>) -> bool {
        if self.provider.is_some_and(|p| Some(p) != req.provider) {
            return false;
        }
        if self.origin.is_some_and(|o| o != req.origin) {
            return false;
        }
        if self
            .method
            .as_deref()
            .is_some_and(|m| !m.eq_ignore_ascii_case(req.method))
        {
            return false;
        }
        self.path.as_deref().is_none_or(|pattern| glob_match(pattern, req.path))
    }
}

/// Identifies a rule added to a [`FaultController`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct RuleId(u64);

#[derive(Debug)]
struct ActiveRule {
    id: RuleId,
    rule: FaultRule,
    matched: u32,
    fired: u32,
    windows: HashMap<String, VecDeque<Instant>>,
}

#[derive(Debug, Default)]
struct Rules {
    next_id: u64,
    rules: Vec<ActiveRule>,
}

/// A rule as the control API lists it.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct ListedRule {
    pub id: RuleId,
    pub fired: u32,
    pub active: bool,
    pub rule: FaultRule,
}

/// What the pipeline knows about a request when it consults the rules.
#[derive(Debug)]
pub(crate) struct RequestFacts<'a> {
    pub provider: Option<Provider>,
    pub origin: Origin,
    pub method: &'a str,
    pub path: &'a str,
    /// Grant key for per-grant rate limits (the bearer token's grant, or "anonymous").
    pub grant: &'a str,
}

/// The emulator's fault rules. Cheap to clone; clones share the rules.
#[derive(Debug, Clone, Default)]
pub struct FaultController {
    inner: Arc<Mutex<Rules>>,
}

impl FaultController {
    /// Adds a rule after the existing ones; the first rule that acts on a request wins.
    pub fn add(&self, rule: FaultRule) -> RuleId {
        let mut rules = self.inner.lock();
        rules.next_id += 1;
        let id = RuleId(rules.next_id);
        rules.rules.push(ActiveRule {
            id,
            rule,
            matched: 0,
            fired: 0,
            windows: HashMap::new(),
        });
        id
    }

    /// Adds every rule of a JSON array of [`FaultRule`]s (the binary's `--faults` file format).
    ///
    /// # Errors
    /// When the text is not a JSON array of rules; no rule is added then.
    pub fn add_json(&self, json: &str) -> Result<Vec<RuleId>, serde_json::Error> {
        let rules: Vec<FaultRule> = serde_json::from_str(json)?;
        Ok(rules.into_iter().map(|r| self.add(r)).collect())
    }

    /// Removes a rule; returns whether it was still present.
    pub fn remove(&self, id: RuleId) -> bool {
        let mut rules = self.inner.lock();
        let before = rules.rules.len();
        rules.rules.retain(|r| r.id != id);
        rules.rules.len() != before
    }

    /// Removes every rule.
    pub fn clear(&self) {
        self.inner.lock().rules.clear();
    }

    /// How many times the rule has acted (0 for an unknown or removed rule).
    pub fn fired(&self, id: RuleId) -> u32 {
        self.inner
            .lock()
            .rules
            .iter()
            .find(|r| r.id == id)
            .map_or(0, |r| r.fired)
    }

    /// Rules that can still act.
    pub fn active(&self) -> Vec<FaultRule> {
        self.inner
            .lock()
            .rules
            .iter()
            .filter(|r| r.rule.times.is_none_or(|t| r.fired < t))
            .map(|r| r.rule.clone())
            .collect()
    }

    /// Every rule with its id, how often it acted, and whether it still can.
    pub(crate) fn listed(&self) -> Vec<ListedRule> {
        self.inner
            .lock()
            .rules
            .iter()
            .map(|r| ListedRule {
                id: r.id,
                fired: r.fired,
                active: r.rule.times.is_none_or(|t| r.fired < t),
                rule: r.rule.clone(),
            })
            .collect()
    }

    /// Finds the action for a request, counting the match.
    pub(crate) fn take(&self, req: &RequestFacts<'_>) -> Option<FaultAction> {
        let mut rules = self.inner.lock();
        let now = Instant::now();
        for active in &mut rules.rules {
            if !active.rule.matches(req) {
                continue;
            }
            if active.rule.times.is_some_and(|t| active.fired >= t) {
                continue;
            }
            active.matched = active.matched.saturating_add(1);
            if active.matched <= active.rule.skip {
                continue;
            }
            if let FaultAction::RateLimitPerGrant {
                limit, window_millis, ..
            } = active.rule.action
            {
                let window = Duration::from_millis(window_millis);
                let seen = active.windows.entry(req.grant.to_owned()).or_default();
                while seen.front().is_some_and(|t| now.duration_since(*t) >= window) {
                    seen.pop_front();
                }
                if seen.len() < limit as usize {
                    seen.push_back(now);
                    continue;
                }
            }
            active.fired += 1;
            return Some(active.rule.action.clone());
        }
        None
    }
}

/// Matches `text` against `pattern`, where `*` matches any run of characters.
fn glob_match(pattern: &str, text: &str) -> bool {
    let parts: Vec<&str> = pattern.split('*').collect();
    let [first, middle @ .., last] = parts.as_slice() else {
        return pattern == text;
    };
    if parts.len() == 1 {
        return pattern == text;
    }
    let Some(mut rest) = text.strip_prefix(first) else {
        return false;
    };
    for part in middle {
        match rest.find(part) {
            Some(at) => rest = &rest[at + part.len()..],
            None => return false,
        }
    }
    rest.len() >= last.len() && rest.ends_with(last)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn glob_matches_wildcards() {
        assert!(glob_match("/drive/v3/files/*", "/drive/v3/files/abc"));
        assert!(glob_match("*/content", "/v1.0/me/drive/items/x/content"));
        assert!(glob_match("/a*b*c", "/aXXbYYc"));
        assert!(!glob_match("/a*b*c", "/aXXcYYb"));
        assert!(glob_match("/exact", "/exact"));
        assert!(!glob_match("/exact", "/exact/more"));
        assert!(glob_match("*", "/anything"));
        assert!(!glob_match("/ab*ab", "/ab"));
    }

    fn facts<'a>(path: &'a str, grant: &'a str) -> RequestFacts<'a> {
        RequestFacts {
            provider: Some(Provider::Google),
            origin: Origin::Api,
            method: "GET",
            path,
            grant,
        }
    }

    #[test]
    fn skip_and_times_limit_a_rule() {
        let faults = FaultController::default();
        let id = faults.add(FaultRule::new(FaultAction::status(503)).skip(1).times(2));
        let hits: Vec<bool> = (0..5).map(|_| faults.take(&facts("/x", "g")).is_some()).collect();
        assert_eq!(hits, [false, true, true, false, false]);
        assert_eq!(faults.fired(id), 2);
        assert!(faults.active().is_empty());
    }

    #[test]
    fn http_date_retry_after_is_imf_fixdate() {
        let FaultAction::Respond { headers, .. } = FaultAction::retry_after_http_date(503, 120) else {
            panic!("not a response");
        };
        let value = &headers[0].1;
        let parsed = chrono::DateTime::parse_from_rfc2822(value).unwrap();
        let delta = parsed.with_timezone(&chrono::Utc) - chrono::Utc::now();
        assert!((118..=120).contains(&delta.num_seconds()), "{value}");
        assert!(value.ends_with(" GMT"));
    }

    #[test]
    fn rate_limit_counts_per_grant() {
        let faults = FaultController::default();
        faults.add(FaultRule::new(FaultAction::RateLimitPerGrant {
            limit: 2,
            window_millis: 60_000,
            retry_after_secs: Some(1),
        }));
        assert!(faults.take(&facts("/x", "a")).is_none());
        assert!(faults.take(&facts("/x", "a")).is_none());
        assert!(faults.take(&facts("/x", "a")).is_some());
        assert!(faults.take(&facts("/x", "b")).is_none());
    }

    #[test]
    fn rules_load_from_json() {
        let faults = FaultController::default();
        let ids = faults
            .add_json(
                r#"[{"provider":"google","method":"GET","path":"/drive/*","times":1,
                     "action":{"kind":"respond","status":503,"headers":[["Retry-After","2"]]}},
                    {"action":{"kind":"delay","millis":5}}]"#,
            )
            .unwrap();
        assert_eq!(ids.len(), 2);
        let rules = faults.active();
        assert_eq!(rules[0].provider, Some(Provider::Google));
        assert_eq!(rules[0].action, FaultAction::retry_after(503, 2));
        assert!(faults.add_json("{}").is_err());
    }
}
