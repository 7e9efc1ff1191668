//! The HTTP semantics of the gateway, kept free of I/O so each rule is
//! tested on its own: which publisher and path a URL names, single byte
//! ranges (RFC 9110 §14), conditional requests (§13) and the status a
//! failed fetch maps to.

use crate::cdn::client::FetchError;
use axum::http::{HeaderMap, StatusCode, header};
use cachecash_cdn::messages::ErrorKind;
use libp2p::PeerId;
use std::collections::HashMap;

/// Where a request goes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    /// The publisher.
    pub publisher: PeerId,
    /// The object path at the publisher (starts with `/`).
    pub path: String,
}

/// Resolves a request path: `/PUBLISHER/PATH`, where PUBLISHER is a peer
/// id or an alias, else `/PATH` at the default publisher. A path that ends
/// in `/` names its `index.html` (a directory listing such as a PEP 503
/// index). The query string is not part of the object.
pub fn resolve(
    path: &str,
    aliases: &HashMap<String, PeerId>,
    default: Option<PeerId>,
) -> Result<Target, String> {
    let rest = path.strip_prefix('/').unwrap_or(path);
    let (first, tail) = match rest.split_once('/') {
        Some((f, t)) => (f, Some(t)),
        None => (rest, None),
    };
    let named = aliases
        .get(first)
        .copied()
        .or_else(|| first.parse::<PeerId>().ok());
    let (publisher, object) = match (named, default) {
        (Some(p), _) => (p, format!("/{}", tail.unwrap_or(""))),
        (None, Some(d)) => (d, format!("/{rest}")),
        (None, None) => {
            return Err(format!(
                "unknown publisher '{first}': the URL must be /PUBLISHER_PEER_ID/PATH or /ALIAS/PATH \
                 (this gateway has no default publisher)"
            ));
        }
    };
    let object = if object.ends_with('/') {
        format!("{object}index.html")
    } else {
        object
    };
    Ok(Target {
        publisher,
        path: object,
    })
}

/// A single byte range as requested, before the size is known.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RangeSpec {
    /// `bytes=A-B` or `bytes=A-` (end inclusive, if given).
    From(u64, Option<u64>),
    /// `bytes=-N`: the last N bytes.
    Suffix(u64),
}

/// What the `Range` header asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RangeRequest {
    /// No range, or one the gateway ignores (several ranges, another unit,
    /// bad syntax, or an `If-Range` that no longer matches): the whole object.
    Whole,
    /// One byte range.
    One(RangeSpec),
}

/// Parses `Range` (RFC 9110 §14.2). Multiple ranges are answered with the
/// whole object, which the RFC allows.
pub fn parse_range(headers: &HeaderMap) -> RangeRequest {
    let Some(v) = headers.get(header::RANGE).and_then(|v| v.to_str().ok()) else {
        return RangeRequest::Whole;
    };
    let Some(spec) = v.trim().strip_prefix("bytes=") else {
        return RangeRequest::Whole;
    };
    if spec.contains(',') {
        return RangeRequest::Whole;
    }
    let Some((a, b)) = spec.trim().split_once('-') else {
        return RangeRequest::Whole;
    };
    let (a, b) = (a.trim(), b.trim());
    let digits = |s: &str| !s.is_empty() && s.bytes().all(|c| c.is_ascii_digit());
    match (a.is_empty(), b.is_empty()) {
        (true, false) if digits(b) => match b.parse() {
            Ok(n) => RangeRequest::One(RangeSpec::Suffix(n)),
            Err(_) => RangeRequest::Whole,
        },
        (false, true) if digits(a) => match a.parse() {
            Ok(s) => RangeRequest::One(RangeSpec::From(s, None)),
            Err(_) => RangeRequest::Whole,
        },
        (false, false) if digits(a) && digits(b) => match (a.parse(), b.parse()) {
            (Ok(s), Ok(e)) if s <= e => RangeRequest::One(RangeSpec::From(s, Some(e))),
            _ => RangeRequest::Whole,
        },
        _ => RangeRequest::Whole,
    }
}

/// Resolves a range against the object size: `Ok([start, end))`, or
/// `Err(())` when it is unsatisfiable (416).
#[allow(clippy::result_unit_err)]
pub fn satisfy(spec: RangeSpec, size: u64) -> Result<(u64, u64), ()> {
    match spec {
        RangeSpec::From(start, _) if start >= size => Err(()),
        RangeSpec::From(start, end) => {
            let last = end.unwrap_or(u64::MAX).min(size - 1);
            Ok((start, last + 1))
        }
        RangeSpec::Suffix(0) => Err(()),
        RangeSpec::Suffix(_) if size == 0 => Err(()),
        RangeSpec::Suffix(n) => Ok((size.saturating_sub(n), size)),
    }
}

/// Whether an `If-Range` header (if any) still matches the object: a
/// strong ETag equal to the current one, or an HTTP date equal to its
/// `Last-Modified`.
pub fn if_range_holds(headers: &HeaderMap, etag: &str, last_modified: &str) -> bool {
    let Some(v) = headers.get(header::IF_RANGE).and_then(|v| v.to_str().ok()) else {
        return true;
    };
    let v = v.trim();
    if v.starts_with('"') {
        return !etag.is_empty() && !etag.starts_with("W/") && v == etag;
    }
    !last_modified.is_empty() && v == last_modified
}

/// Whether a conditional GET/HEAD can be answered `304 Not Modified`
/// (RFC 9110 §13.2.2): `If-None-Match` decides when present (weak
/// comparison); otherwise `If-Modified-Since` against `Last-Modified`.
pub fn not_modified(headers: &HeaderMap, etag: &str, last_modified: &str) -> bool {
    if let Some(inm) = headers
        .get(header::IF_NONE_MATCH)
        .and_then(|v| v.to_str().ok())
    {
        if etag.is_empty() {
            return false;
        }
        let bare = |t: &str| t.trim().trim_start_matches("W/").to_string();
        let ours = bare(etag);
        return inm.split(',').any(|t| t.trim() == "*" || bare(t) == ours);
    }
    let Some(ims) = headers
        .get(header::IF_MODIFIED_SINCE)
        .and_then(|v| v.to_str().ok())
    else {
        return false;
    };
    match (
        httpdate::parse_http_date(ims.trim()),
        httpdate::parse_http_date(last_modified.trim()),
    ) {
        (Ok(since), Ok(modified)) => modified <= since,
        _ => false,
    }
}

/// Whether the request carries a precondition the gateway evaluates.
pub fn is_conditional(headers: &HeaderMap) -> bool {
    headers.contains_key(header::IF_NONE_MATCH) || headers.contains_key(header::IF_MODIFIED_SINCE)
}

/// The status a failed fetch maps to, before any byte was sent.
pub fn status_of(e: &FetchError) -> StatusCode {
    match e {
        FetchError::Publisher { kind, .. } => match kind {
            ErrorKind::NotFound => StatusCode::NOT_FOUND,
            ErrorKind::BadRequest => StatusCode::BAD_REQUEST,
            ErrorKind::Upstream => StatusCode::BAD_GATEWAY,
            ErrorKind::Unavailable => StatusCode::SERVICE_UNAVAILABLE,
            ErrorKind::Protocol => StatusCode::BAD_GATEWAY,
        },
        FetchError::Timeout(_) => StatusCode::GATEWAY_TIMEOUT,
        FetchError::Link(_) | FetchError::Protocol(_) | FetchError::Escrow(_) => {
            StatusCode::BAD_GATEWAY
        }
        FetchError::Output(_) => StatusCode::INTERNAL_SERVER_ERROR,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    fn with(name: header::HeaderName, v: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(name, HeaderValue::from_str(v).unwrap());
        h
    }

    #[test]
    fn urls_name_a_publisher_by_peer_id_alias_or_default() {
        let p = PeerId::random();
        let d = PeerId::random();
        let aliases = HashMap::from([("pypi".to_string(), p)]);
        let t = resolve(&format!("/{p}/a/b.whl"), &HashMap::new(), None).unwrap();
        assert_eq!((t.publisher, t.path.as_str()), (p, "/a/b.whl"));
        let t = resolve("/pypi/simple/", &aliases, None).unwrap();
        assert_eq!((t.publisher, t.path.as_str()), (p, "/simple/index.html"));
        let t = resolve("/simple/demo/", &aliases, Some(d)).unwrap();
        assert_eq!(
            (t.publisher, t.path.as_str()),
            (d, "/simple/demo/index.html")
        );
        let t = resolve(&format!("/{p}"), &aliases, Some(d)).unwrap();
        assert_eq!((t.publisher, t.path.as_str()), (p, "/index.html"));
        let e = resolve("/nobody/x", &aliases, None).unwrap_err();
        assert!(e.contains("unknown publisher 'nobody'"), "{e}");
    }

    #[test]
    fn single_byte_ranges_parse_and_resolve_as_rfc_9110_says() {
        let r = |v: &str| parse_range(&with(header::RANGE, v));
        assert_eq!(
            r("bytes=0-99"),
            RangeRequest::One(RangeSpec::From(0, Some(99)))
        );
        assert_eq!(
            r("bytes=100-"),
            RangeRequest::One(RangeSpec::From(100, None))
        );
        assert_eq!(r("bytes=-5"), RangeRequest::One(RangeSpec::Suffix(5)));
        for ignored in [
            "bytes=0-1,5-6",
            "items=0-1",
            "bytes=5-1",
            "bytes=a-b",
            "bytes=-",
            "bytes=+1-2",
        ] {
            assert_eq!(r(ignored), RangeRequest::Whole, "{ignored}");
        }
        assert_eq!(parse_range(&HeaderMap::new()), RangeRequest::Whole);
        assert_eq!(satisfy(RangeSpec::From(0, Some(99)), 50), Ok((0, 50)));
        assert_eq!(satisfy(RangeSpec::From(10, None), 50), Ok((10, 50)));
        assert_eq!(satisfy(RangeSpec::From(50, None), 50), Err(()));
        assert_eq!(satisfy(RangeSpec::Suffix(5), 50), Ok((45, 50)));
        assert_eq!(satisfy(RangeSpec::Suffix(500), 50), Ok((0, 50)));
        assert_eq!(satisfy(RangeSpec::Suffix(0), 50), Err(()));
        assert_eq!(satisfy(RangeSpec::Suffix(1), 0), Err(()));
    }

    #[test]
    fn preconditions_answer_304_only_when_the_validators_match() {
        let etag = "\"abc\"";
        let lm = "Wed, 21 Oct 2026 07:28:00 GMT";
        assert!(not_modified(
            &with(header::IF_NONE_MATCH, "\"abc\""),
            etag,
            lm
        ));
        assert!(not_modified(
            &with(header::IF_NONE_MATCH, "W/\"abc\""),
            etag,
            lm
        ));
        assert!(not_modified(
            &with(header::IF_NONE_MATCH, "\"x\", \"abc\""),
            etag,
            lm
        ));
        assert!(not_modified(&with(header::IF_NONE_MATCH, "*"), etag, lm));
        assert!(!not_modified(
            &with(header::IF_NONE_MATCH, "\"x\""),
            etag,
            lm
        ));
        assert!(!not_modified(
            &with(header::IF_NONE_MATCH, "\"abc\""),
            "",
            lm
        ));
        let later = "Thu, 22 Oct 2026 07:28:00 GMT";
        let earlier = "Tue, 20 Oct 2026 07:28:00 GMT";
        assert!(not_modified(
            &with(header::IF_MODIFIED_SINCE, later),
            etag,
            lm
        ));
        assert!(not_modified(&with(header::IF_MODIFIED_SINCE, lm), etag, lm));
        assert!(!not_modified(
            &with(header::IF_MODIFIED_SINCE, earlier),
            etag,
            lm
        ));
        assert!(!not_modified(
            &with(header::IF_MODIFIED_SINCE, "garbage"),
            etag,
            lm
        ));
        assert!(!not_modified(
            &with(header::IF_MODIFIED_SINCE, later),
            etag,
            ""
        ));
        // If-None-Match wins over If-Modified-Since.
        let mut both = with(header::IF_NONE_MATCH, "\"x\"");
        both.insert(
            header::IF_MODIFIED_SINCE,
            HeaderValue::from_static("Thu, 22 Oct 2026 07:28:00 GMT"),
        );
        assert!(!not_modified(&both, etag, lm));
        assert!(if_range_holds(&HeaderMap::new(), etag, lm));
        assert!(if_range_holds(&with(header::IF_RANGE, etag), etag, lm));
        assert!(!if_range_holds(
            &with(header::IF_RANGE, "\"old\""),
            etag,
            lm
        ));
        assert!(if_range_holds(&with(header::IF_RANGE, lm), etag, lm));
    }

    #[test]
    fn fetch_failures_map_to_the_statuses_tools_expect() {
        let p = |kind| FetchError::Publisher {
            kind,
            message: String::new(),
        };
        assert_eq!(status_of(&p(ErrorKind::NotFound)), StatusCode::NOT_FOUND);
        assert_eq!(status_of(&p(ErrorKind::Upstream)), StatusCode::BAD_GATEWAY);
        assert_eq!(
            status_of(&p(ErrorKind::Unavailable)),
            StatusCode::SERVICE_UNAVAILABLE
        );
        assert_eq!(
            status_of(&FetchError::Timeout(String::new())),
            StatusCode::GATEWAY_TIMEOUT
        );
        assert_eq!(
            status_of(&FetchError::Link(String::new())),
            StatusCode::BAD_GATEWAY
        );
    }
}
