//! The HTTP gateway: `--gateway ADDR` on any node, and `cachecash gateway`
//! (a node that syncs the chain and serves the gateway, mining nothing).
//!
//! ```toml
//! [gateway]
//! listen = "127.0.0.1:8080"
//! default_publisher = "pypi"          # an alias or a peer id: GET /PATH goes there
//! max_requests = 256
//! [gateway.aliases]
//! pypi = "12D3KooW…"                  # GET /pypi/PATH
//! ```

use anyhow::Context;
use cachecash_node::cdn::gateway::{GatewayConfig, GatewayModule};
use cachecash_node::network::PeerId;
use clap::Args;
use std::collections::{BTreeMap, HashMap};
use std::net::SocketAddr;

/// Gateway flags of a node.
#[derive(Debug, Clone, Default, Args)]
pub struct GatewayArgs {
    /// Serve the HTTP gateway on ADDR, e.g. 127.0.0.1:8080.
    #[arg(long, value_name = "ADDR", help_heading = "HTTP gateway")]
    pub gateway: Option<SocketAddr>,
    /// Publisher of /PATH URLs: a peer id or an alias.
    #[arg(long, value_name = "PEER_ID|ALIAS", help_heading = "HTTP gateway")]
    pub default_publisher: Option<String>,
    /// A publisher alias NAME=PEER_ID: /NAME/PATH (repeatable or comma-separated).
    #[arg(
        long,
        value_name = "NAME=PEER_ID",
        value_delimiter = ',',
        help_heading = "HTTP gateway"
    )]
    pub gateway_alias: Vec<String>,
    /// Requests served at once; more get 503 [default: 256].
    #[arg(long, value_name = "N", help_heading = "HTTP gateway")]
    pub gateway_max_requests: Option<usize>,
}

/// The `[gateway]` table of the CDN config file.
#[derive(Debug, Default, Clone, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GatewayFile {
    listen: Option<SocketAddr>,
    default_publisher: Option<String>,
    #[serde(default)]
    aliases: BTreeMap<String, String>,
    max_requests: Option<usize>,
}

fn peer(s: &str, what: &str) -> anyhow::Result<PeerId> {
    s.trim()
        .parse()
        .with_context(|| format!("{what} '{s}' is not a peer id (12D3KooW…)"))
}

/// The gateway module, when flags or the file ask for one.
pub fn module(
    args: &GatewayArgs,
    file: Option<&GatewayFile>,
) -> anyhow::Result<Option<GatewayModule>> {
    let file = file.cloned().unwrap_or_default();
    let Some(listen) = args.gateway.or(file.listen) else {
        if args.default_publisher.is_some() || !args.gateway_alias.is_empty() {
            anyhow::bail!("--default-publisher and --gateway-alias need --gateway ADDR");
        }
        return Ok(None);
    };
    let mut aliases = HashMap::new();
    for (name, id) in &file.aliases {
        aliases.insert(
            name.clone(),
            peer(id, &format!("[gateway.aliases] {name}"))?,
        );
    }
    for a in &args.gateway_alias {
        let (name, id) = a
            .split_once('=')
            .with_context(|| format!("--gateway-alias '{a}' must be NAME=PEER_ID"))?;
        if name.is_empty() || name.contains('/') {
            anyhow::bail!("--gateway-alias '{a}': the name must be one URL path segment");
        }
        aliases.insert(name.to_string(), peer(id, "--gateway-alias")?);
    }
    let default = match args
        .default_publisher
        .as_deref()
        .or(file.default_publisher.as_deref())
    {
        None => None,
        Some(d) => Some(match aliases.get(d) {
            Some(p) => *p,
            None => peer(d, "--default-publisher")?,
        }),
    };
    let mut config = GatewayConfig::new(listen);
    config.aliases = aliases;
    config.default_publisher = default;
    if let Some(n) = args.gateway_max_requests.or(file.max_requests) {
        config.max_requests = n.max(1);
    }
    let m = GatewayModule::bind(config).map_err(|e| anyhow::anyhow!(e))?;
    Ok(Some(m))
}

/// Run a node whose job is the HTTP gateway: it joins the network, keeps
/// the chain (to read the escrows that pay for what it fetches) and serves
/// GET/HEAD through the CDN. Takes every node flag.
///
/// Examples:
///   cachecash gateway --listen 127.0.0.1:8080 --chain local --base-path /tmp/gw \
///       --port 30360 --no-rpc --bootnodes /ip4/127.0.0.1/tcp/30333/p2p/12D3KooW…
///   curl http://127.0.0.1:8080/12D3KooW…/hello.txt
///   cachecash gateway --listen 127.0.0.1:8080 --default-publisher 12D3KooW… …
///   pip install --index-url http://127.0.0.1:8080/simple/ demo-pkg
#[derive(Debug, Args)]
#[command(verbatim_doc_comment)]
pub struct GatewayCommandArgs {
    /// Where to serve HTTP.
    #[arg(long, value_name = "ADDR", default_value = "127.0.0.1:8080")]
    pub listen: SocketAddr,
    /// Node options.
    #[command(flatten)]
    pub run: crate::commands::run::RunArgs,
}

/// Runs `cachecash gateway`.
pub fn run(mut args: GatewayCommandArgs) -> anyhow::Result<()> {
    if args.run.roles.gateway.gateway.is_none() {
        args.run.roles.gateway.gateway = Some(args.listen);
    }
    crate::commands::run::run(args.run)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn aliases_and_the_default_publisher_resolve_with_clear_errors() {
        let p = PeerId::random();
        let args = GatewayArgs {
            gateway: Some("127.0.0.1:0".parse().unwrap()),
            default_publisher: Some("pypi".into()),
            gateway_alias: vec![format!("pypi={p}")],
            gateway_max_requests: None,
        };
        assert!(module(&args, None).unwrap().is_some());
        let bad = GatewayArgs {
            gateway_alias: vec!["pypi".into()],
            ..args.clone()
        };
        let e = module(&bad, None).unwrap_err().to_string();
        assert!(e.contains("NAME=PEER_ID"), "{e}");
        let unknown = GatewayArgs {
            default_publisher: Some("nobody".into()),
            gateway_alias: vec![],
            ..args.clone()
        };
        let e = format!("{:#}", module(&unknown, None).unwrap_err());
        assert!(e.contains("not a peer id"), "{e}");
        let none = GatewayArgs {
            gateway: None,
            ..args
        };
        assert!(module(&none, None).is_err());
        assert!(module(&GatewayArgs::default(), None).unwrap().is_none());
    }
}
