//! Small HTTP helpers shared by both providers: ids, times, ranges, query strings.

use axum::body::{Body, Bytes};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use chrono::{DateTime, SecondsFormat, Utc};

/// A random string over `[A-Za-z0-9_-]`, the alphabet of real Drive ids, which google-drive3
/// inserts into URLs unescaped (`google-apis-common` 8.0.0 `src/url.rs`).
pub(crate) fn random_id(len: usize) -> String {
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_-";
    (0..len)
        .map(|_| char::from(ALPHABET[fastrand::usize(..ALPHABET.len())]))
        .collect()
}

/// A random upper-case alphanumeric string.
pub(crate) fn random_upper(len: usize) -> String {
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789";
    (0..len)
        .map(|_| char::from(ALPHABET[fastrand::usize(..ALPHABET.len())]))
        .collect()
}

/// A random version-4-looking UUID, for request and trace ids.
pub(crate) fn random_uuid() -> String {
    let hex = |n: usize| -> String {
        (0..n)
            .map(|_| char::from(b"0123456789abcdef"[fastrand::usize(..16)]))
            .collect()
    };
    format!("{}-{}-4{}-a{}-{}", hex(8), hex(4), hex(3), hex(3), hex(12))
}

/// RFC 3339 UTC with milliseconds, as Google writes times (`2024-01-01T12:00:00.000Z`;
/// the millisecond precision is UNCONFIRMED).
pub(crate) fn rfc3339_millis(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Millis, true)
}

/// RFC 3339 UTC to whole seconds, as Graph's examples write `createdDateTime`
/// (<https://learn.microsoft.com/graph/api/driveitem-get>).
pub(crate) fn rfc3339_secs(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Secs, true)
}

/// The bearer token of the `Authorization` header, if it is a bearer header.
pub(crate) fn bearer(headers: &HeaderMap) -> Option<&str> {
    let value = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = value.split_once(' ')?;
    scheme.eq_ignore_ascii_case("bearer").then_some(token.trim())
}

/// A header value as text.
pub(crate) fn header_str<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers.get(name).and_then(|v| v.to_str().ok())
}

/// Form-decodes a query string (`+` is a space, keys are decoded too): both SDKs build their
/// query strings with `application/x-www-form-urlencoded` (google-apis-common 8.0.0
/// `src/url.rs`; graph-http 3.0.0 `src/request_handler.rs`).
pub(crate) fn parse_query(raw: Option<&str>) -> Vec<(String, String)> {
    raw.map(|q| {
        url::form_urlencoded::parse(q.as_bytes())
            .map(|(k, v)| (k.into_owned(), v.into_owned()))
            .collect()
    })
    .unwrap_or_default()
}

/// The first value of a query parameter.
pub(crate) fn query_get<'a>(query: &'a [(String, String)], key: &str) -> Option<&'a str> {
    query.iter().find(|(k, _)| k == key).map(|(_, v)| v.as_str())
}

/// A 200 HTML page.
pub(crate) fn html(body: String) -> axum::response::Response {
    use axum::response::IntoResponse as _;
    ([(axum::http::header::CONTENT_TYPE, "text/html; charset=utf-8")], body).into_response()
}

/// A parsed `Content-Range` request header (RFC 9110 §14.4).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ContentRange {
    /// `bytes first-last/total` (`total` is `None` for `*`).
    Bytes { first: u64, last: u64, total: Option<u64> },
    /// `bytes */total`: a status query, or the final zero-length request.
    Unsatisfied { total: Option<u64> },
}

/// Parses `bytes a-b/T`, `bytes a-b/*`, `bytes */T` and `bytes */*` (RFC 9110 §14.4 syntax;
/// the `*` total for an unknown length is Google's resumable extension, see
/// <https://developers.google.com/drive/api/guides/manage-uploads#resumable>).
pub(crate) fn parse_content_range(value: &str) -> Option<ContentRange> {
    let rest = value.trim().strip_prefix("bytes")?;
    let rest = rest.strip_prefix([' ', '='])?.trim();
    let (range, total) = rest.split_once('/')?;
    let total = match total.trim() {
        "*" => None,
        t => Some(parse_u64(t)?),
    };
    if range.trim() == "*" {
        return Some(ContentRange::Unsatisfied { total });
    }
    let (first, last) = range.trim().split_once('-')?;
    let (first, last) = (parse_u64(first)?, parse_u64(last)?);
    if last < first || total.is_some_and(|t| last >= t) {
        return None;
    }
    Some(ContentRange::Bytes { first, last, total })
}

fn parse_u64(text: &str) -> Option<u64> {
    if text.is_empty() || !text.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    text.parse().ok()
}

/// Outcome of evaluating a `Range` request header against a body of known size.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum RangeOutcome {
    /// No usable single range: serve the whole body with 200.
    Full,
    /// Serve bytes `first..=last` with 206.
    Partial { first: u64, last: u64 },
    /// 416 Range Not Satisfiable.
    Unsatisfiable,
}

/// Evaluates a single-range `Range: bytes=a-b | a- | -n` header (RFC 9110 §14.2). Multiple
/// ranges and other units are ignored, which RFC 9110 §14.2 permits ("A server MAY ignore the
/// Range header field").
pub(crate) fn evaluate_range(value: Option<&str>, size: u64) -> RangeOutcome {
    let Some(spec) = value.and_then(|v| v.trim().strip_prefix("bytes=")) else {
        return RangeOutcome::Full;
    };
    if spec.contains(',') {
        return RangeOutcome::Full;
    }
    let Some((a, b)) = spec.trim().split_once('-') else {
        return RangeOutcome::Full;
    };
    let (a, b) = (a.trim(), b.trim());
    if a.is_empty() {
        // suffix range: the last n bytes
        let Some(n) = parse_u64(b) else {
            return RangeOutcome::Full;
        };
        if n == 0 || size == 0 {
            return RangeOutcome::Unsatisfiable;
        }
        let n = n.min(size);
        return RangeOutcome::Partial {
            first: size - n,
            last: size - 1,
        };
    }
    let Some(first) = parse_u64(a) else {
        return RangeOutcome::Full;
    };
    if first >= size {
        return RangeOutcome::Unsatisfiable;
    }
    let last = if b.is_empty() {
        size - 1
    } else {
        match parse_u64(b) {
            Some(last) if last >= first => last.min(size - 1),
            _ => return RangeOutcome::Full,
        }
    };
    RangeOutcome::Partial { first, last }
}

/// Percent-decodes a path segment (no `+` handling: `+` is literal in paths, RFC 3986 §3.3).
pub(crate) fn percent_decode(segment: &str) -> String {
    let bytes = segment.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' && i + 2 < bytes.len() {
            // Two hex digits exactly: `from_str_radix` alone would take `%+1` as byte 1
            // (found by the property test below).
            let pair = &bytes[i + 1..i + 3];
            let hex = pair
                .iter()
                .all(u8::is_ascii_hexdigit)
                .then(|| std::str::from_utf8(pair).ok())
                .flatten()
                .and_then(|h| u8::from_str_radix(h, 16).ok());
            if let Some(b) = hex {
                out.push(b);
                i += 3;
                continue;
            }
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Serves bytes honouring a single `Range` (RFC 9110 §14.2, §15.3.7 206, §15.5.17 416).
pub(crate) fn serve_bytes(
    content: &Bytes,
    media_type: &str,
    range: Option<&str>,
    unsatisfiable: impl Fn(u64) -> Response,
) -> Response {
    let size = content.len() as u64;
    let (status, body, content_range) = match evaluate_range(range, size) {
        RangeOutcome::Full => (StatusCode::OK, content.clone(), None),
        RangeOutcome::Partial { first, last } => {
            let (a, b) = (
                usize::try_from(first).unwrap_or(usize::MAX),
                usize::try_from(last).unwrap_or(usize::MAX),
            );
            (
                StatusCode::PARTIAL_CONTENT,
                content.slice(a..=b),
                Some(format!("bytes {first}-{last}/{size}")),
            )
        }
        RangeOutcome::Unsatisfiable => {
            let mut resp = unsatisfiable(size);
            if let Ok(v) = HeaderValue::from_str(&format!("bytes */{size}")) {
                resp.headers_mut().insert(header::CONTENT_RANGE, v);
            }
            return resp;
        }
    };
    let mut resp = (status, Body::from(body)).into_response();
    let headers = resp.headers_mut();
    if let Ok(v) = HeaderValue::from_str(media_type) {
        headers.insert(header::CONTENT_TYPE, v);
    }
    headers.insert(header::ACCEPT_RANGES, HeaderValue::from_static("bytes"));
    if let Some(cr) = content_range.and_then(|c| HeaderValue::from_str(&c).ok()) {
        headers.insert(header::CONTENT_RANGE, cr);
    }
    resp
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn content_range_forms() {
        assert_eq!(
            parse_content_range("bytes 0-9/20"),
            Some(ContentRange::Bytes {
                first: 0,
                last: 9,
                total: Some(20)
            })
        );
        assert_eq!(
            parse_content_range("bytes 10-19/*"),
            Some(ContentRange::Bytes {
                first: 10,
                last: 19,
                total: None
            })
        );
        assert_eq!(
            parse_content_range("bytes */20"),
            Some(ContentRange::Unsatisfied { total: Some(20) })
        );
        assert_eq!(parse_content_range("bytes 9-0/20"), None);
        assert_eq!(parse_content_range("bytes 0-20/20"), None);
        assert_eq!(parse_content_range("bites 0-1/2"), None);
        assert_eq!(parse_content_range("bytes 0-x/2"), None);
        assert_eq!(parse_content_range("bytes -1-2/3"), None);
    }

    #[test]
    fn range_forms() {
        assert_eq!(evaluate_range(None, 10), RangeOutcome::Full);
        assert_eq!(
            evaluate_range(Some("bytes=2-4"), 10),
            RangeOutcome::Partial { first: 2, last: 4 }
        );
        assert_eq!(
            evaluate_range(Some("bytes=8-"), 10),
            RangeOutcome::Partial { first: 8, last: 9 }
        );
        assert_eq!(
            evaluate_range(Some("bytes=-3"), 10),
            RangeOutcome::Partial { first: 7, last: 9 }
        );
        assert_eq!(
            evaluate_range(Some("bytes=5-100"), 10),
            RangeOutcome::Partial { first: 5, last: 9 }
        );
        assert_eq!(evaluate_range(Some("bytes=10-"), 10), RangeOutcome::Unsatisfiable);
        assert_eq!(evaluate_range(Some("bytes=0-1,3-4"), 10), RangeOutcome::Full);
    }

    mod properties {
        use proptest::prelude::*;

        use super::*;

        fn config() -> ProptestConfig {
            ProptestConfig {
                failure_persistence: None,
                ..ProptestConfig::with_cases(1000)
            }
        }

        fn header() -> impl Strategy<Value = String> {
            prop_oneof![
                "bytes[ =]?[0-9*]{0,21}-?[0-9]{0,21}/?[0-9*]{0,21}",
                "bytes=-?[0-9]{0,21}-?[0-9]{0,21}(,[0-9]{0,3}-[0-9]{0,3})?",
                "\\PC{0,32}",
            ]
        }

        proptest! {
            #![proptest_config(config())]

            /// Whatever a client sends, a parsed `Content-Range` is a real range inside its total.
            #[test]
            fn content_range_is_total_and_consistent(value in header()) {
                match parse_content_range(&value) {
                    Some(ContentRange::Bytes { first, last, total }) => {
                        prop_assert!(first <= last);
                        prop_assert!(total.is_none_or(|t| last < t));
                    }
                    Some(ContentRange::Unsatisfied { .. }) | None => {}
                }
            }

            /// Well-formed ranges parse back to what was written.
            #[test]
            fn content_range_round_trips(first in any::<u64>(), len in any::<u64>(), extra in any::<u64>()) {
                let last = first.saturating_add(len);
                let total = last.checked_add(1).map(|t| t.saturating_add(extra));
                let text = format!("bytes {first}-{last}/{}", total.map_or("*".to_owned(), |t| t.to_string()));
                prop_assert_eq!(parse_content_range(&text), Some(ContentRange::Bytes { first, last, total }));
            }

            /// A `Range` never selects bytes outside the body.
            #[test]
            fn range_stays_inside_the_body(value in header(), size in prop_oneof![0u64..100, any::<u64>()]) {
                if let RangeOutcome::Partial { first, last } = evaluate_range(Some(&value), size) {
                    prop_assert!(first <= last && last < size, "{first}-{last} of {size}");
                }
            }

            /// Percent-decoding undoes percent-encoding, and leaves text without an
            /// escape as it is.
            #[test]
            fn percent_decoding_inverts_encoding(text in "\\PC{0,24}", junk in "[^%]{0,8}%([^0-9a-fA-F%][0-9a-fA-F]|[0-9a-fA-F][^0-9a-fA-F%])") {
                let encoded: String = text.bytes().map(|b| format!("%{b:02X}")).collect();
                prop_assert_eq!(percent_decode(&encoded), text.clone());
                if !text.contains('%') {
                    prop_assert_eq!(percent_decode(&text), text);
                }
                prop_assert_eq!(percent_decode(&junk), junk.clone());
            }
        }
    }

    #[test]
    fn percent_decoding() {
        assert_eq!(percent_decode("a%20b%23c"), "a b#c");
        assert_eq!(percent_decode("100%"), "100%");
        assert_eq!(percent_decode("%2"), "%2");
        assert_eq!(percent_decode("a+b"), "a+b");
    }
}
