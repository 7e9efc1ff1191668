//! Who may talk to the JSON-RPC server over HTTP and WebSocket.
//!
//! A web page the operator opens can send requests to `127.0.0.1:9944`
//! from their browser, and on a loopback listener the unsafe methods are
//! on. Two checks close that door, as Substrate and Geth do:
//!
//! - **Origin.** A browser always names the page's origin. Requests whose
//!   `Origin` is not on the allow-list (`--rpc-cors`; default the local
//!   origins `http(s)://localhost:*`, `http(s)://127.0.0.1:*` and
//!   `http(s)://[::1]:*`) are refused with 403 before any method runs.
//!   Requests without `Origin` (curl, the CLI, other programs) pass.
//! - **Host.** On a loopback listener, the `Host` header must be
//!   `localhost`, `127.0.0.1` or `[::1]` (any port). A DNS-rebinding page,
//!   whose own host name now resolves to 127.0.0.1, sends its own name and
//!   is refused.
//!
//! Batch requests are limited in length ([`crate::rpc::RpcLimits`]).

use jsonrpsee::server::{HttpBody, HttpRequest, HttpResponse};

/// The `Origin` allow-list.
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub enum RpcCors {
    /// Local origins only (the default).
    #[default]
    Localhost,
    /// Any origin (`--rpc-cors all`): only for a node no browser can reach.
    All,
    /// These origins, e.g. `https://dash.example.org` or
    /// `http://localhost:*` (a `*` port matches any).
    List(Vec<String>),
}

impl std::str::FromStr for RpcCors {
    type Err = String;

    /// `all`, `localhost`, or a comma-separated list of origins.
    fn from_str(s: &str) -> Result<RpcCors, String> {
        match s.trim() {
            "all" => Ok(RpcCors::All),
            "localhost" => Ok(RpcCors::Localhost),
            list => {
                let origins: Vec<String> = list
                    .split(',')
                    .map(|o| o.trim().trim_end_matches('/').to_string())
                    .filter(|o| !o.is_empty())
                    .collect();
                for o in &origins {
                    if !(o.starts_with("http://") || o.starts_with("https://")) {
                        return Err(format!(
                            "--rpc-cors origin '{o}' must start with http:// or https:// \
                             (or use 'all' or 'localhost')"
                        ));
                    }
                }
                if origins.is_empty() {
                    return Err("--rpc-cors needs 'all', 'localhost' or origins".into());
                }
                Ok(RpcCors::List(origins))
            }
        }
    }
}

const LOCAL_ORIGINS: &[&str] = &[
    "http://localhost:*",
    "https://localhost:*",
    "http://127.0.0.1:*",
    "https://127.0.0.1:*",
    "http://[::1]:*",
    "https://[::1]:*",
];

/// Whether `origin` matches `pattern` (exact, or any port for `:*`; a
/// pattern without a port also matches the origin's default port).
fn matches(pattern: &str, origin: &str) -> bool {
    if let Some(base) = pattern.strip_suffix(":*") {
        if origin == base {
            return true;
        }
        return origin
            .strip_prefix(base)
            .and_then(|rest| rest.strip_prefix(':'))
            .is_some_and(|port| !port.is_empty() && port.bytes().all(|b| b.is_ascii_digit()));
    }
    pattern.eq_ignore_ascii_case(origin)
}

impl RpcCors {
    /// Whether a request from `origin` is allowed.
    pub fn allows(&self, origin: &str) -> bool {
        let origin = origin.trim();
        match self {
            RpcCors::All => true,
            RpcCors::Localhost => LOCAL_ORIGINS.iter().any(|p| matches(p, origin)),
            RpcCors::List(list) => list.iter().any(|p| matches(p, origin)),
        }
    }

    /// The check, as a request validator for the server's HTTP middleware
    /// (whose signature returns the refusal response as the error).
    #[allow(clippy::result_large_err)]
    pub fn validator(
        &self,
    ) -> impl FnMut(&mut HttpRequest) -> Result<(), HttpResponse> + Clone + Send + 'static {
        let cors = self.clone();
        move |req: &mut HttpRequest| {
            let Some(origin) = req.headers().get("origin") else {
                return Ok(());
            };
            let text = origin.to_str().unwrap_or("");
            if cors.allows(text) {
                return Ok(());
            }
            tracing::debug!(target: "cachecash::rpc", origin = text, "refused a request from a foreign origin");
            let body = format!(
                "origin '{text}' may not use this node's RPC; start the node with --rpc-cors {text} to allow it\n"
            );
            let mut r = HttpResponse::new(HttpBody::from(body));
            *r.status_mut() = axum::http::StatusCode::FORBIDDEN;
            Err(r)
        }
    }
}

/// The hosts allowed on a loopback listener.
pub const LOCAL_HOSTS: &[&str] = &["localhost:*", "127.0.0.1:*", "[::1]:*"];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn local_origins_pass_and_foreign_ones_do_not() {
        let c = RpcCors::Localhost;
        for ok in [
            "http://localhost:3000",
            "http://127.0.0.1:9944",
            "https://[::1]:8443",
            "http://localhost",
        ] {
            assert!(c.allows(ok), "{ok}");
        }
        for bad in [
            "https://evil.example",
            "http://localhost.evil.example",
            "http://127.0.0.1.nip.io:9944",
            "http://localhost:80x",
            "null",
            "",
        ] {
            assert!(!c.allows(bad), "{bad}");
        }
        assert!(RpcCors::All.allows("https://evil.example"));
    }

    #[test]
    fn rpc_cors_parses_lists_with_clear_errors() {
        let c: RpcCors = "https://dash.example.org/, http://localhost:*"
            .parse()
            .unwrap();
        assert!(c.allows("https://dash.example.org"));
        assert!(c.allows("http://localhost:5173"));
        assert!(!c.allows("https://other.example.org"));
        assert_eq!("all".parse::<RpcCors>().unwrap(), RpcCors::All);
        let e = "dash.example.org".parse::<RpcCors>().unwrap_err();
        assert!(e.contains("http://"), "{e}");
        assert!(",".parse::<RpcCors>().is_err());
    }
}
