//! `cachecash wallet balance|transfer`, over JSON-RPC.

use crate::shared::{self, NodeClient, RpcArgs};
use anyhow::Context;
use cachecash_runtime::primitives::format_balance;
use cachecash_runtime::{Balance, Call};
use clap::{Args, Subcommand};
use serde_json::json;

/// Wallet commands.
#[derive(Debug, Subcommand)]
pub enum WalletCommand {
    /// Show an account's balance and nonce.
    ///
    /// Examples:
    ///   cachecash wallet balance alice
    ///   cachecash wallet balance 0x88dc3417d5058ec4b4503e0c12ea1a0a89be200fe98922423d4334014fa6b0ee --rpc http://10.0.0.5:9944
    #[command(verbatim_doc_comment)]
    Balance {
        /// 0x account id, or a dev name (dev/local chains).
        account: String,
        #[command(flatten)]
        rpc: RpcArgs,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Sign a transfer, submit it, wait for inclusion and print the block.
    ///
    /// Amounts are in the smallest unit, or in CCH with a suffix: 1.5CCH.
    ///
    /// Examples:
    ///   cachecash wallet transfer --from alice --to bob --amount 1.5CCH
    ///   cachecash wallet transfer --from ./my.key --to 0x… --amount 1000000 --fee 2000000
    #[command(verbatim_doc_comment)]
    Transfer(TransferArgs),
}

/// Transfer options.
#[derive(Debug, Args)]
pub struct TransferArgs {
    /// Signing key: dev name (dev/local), 0x secret seed, or key file.
    #[arg(long)]
    from: String,
    /// Receiving account: 0x account id or dev name (dev/local).
    #[arg(long)]
    to: String,
    /// Amount: smallest units, or CCH with the suffix `CCH` (e.g. 2.5CCH).
    #[arg(long)]
    amount: String,
    /// Fee [default: the chain minimum].
    #[arg(long)]
    fee: Option<String>,
    /// Give up waiting for inclusion after this many seconds.
    #[arg(long, default_value_t = 120)]
    timeout: u64,
    /// Submit and return without waiting.
    #[arg(long)]
    no_wait: bool,
    #[command(flatten)]
    rpc: RpcArgs,
    /// Print JSON.
    #[arg(long)]
    json: bool,
}

/// Runs a wallet command.
pub fn run(cmd: WalletCommand) -> anyhow::Result<()> {
    shared::runtime()?.block_on(async move {
        match cmd {
            WalletCommand::Balance { account, rpc, json } => balance(&account, &rpc, json).await,
            WalletCommand::Transfer(args) => transfer(args).await,
        }
    })
}

async fn balance(account: &str, rpc: &RpcArgs, as_json: bool) -> anyhow::Result<()> {
    let client = NodeClient::new(&rpc.rpc)?;
    let f = shared::facts(&client).await?;
    let id = shared::resolve_account(account, &f)?;
    let a = shared::account(&client, &id).await?;
    let (balance, nonce): (Balance, u64) = (a.balance, a.nonce);
    if as_json {
        println!(
            "{}",
            json!({"account": id, "balance": balance.to_string(), "nonce": nonce})
        );
    } else {
        println!("Account: {id}");
        println!(
            "Balance: {} {} ({balance} units)",
            format_balance(balance, f.decimals),
            f.symbol
        );
        println!("Nonce:   {nonce}");
    }
    Ok(())
}

/// Parses "123" (units) or "1.5CCH" (whole tokens with `decimals`).
pub(crate) fn parse_amount(s: &str, decimals: u8, symbol: &str) -> anyhow::Result<Balance> {
    let t = s.trim();
    let upper = t.to_ascii_uppercase();
    let sym = symbol.to_ascii_uppercase();
    if let Some(num) = upper.strip_suffix(&sym) {
        let num = num.trim();
        let (whole, frac) = num.split_once('.').unwrap_or((num, ""));
        if frac.len() > usize::from(decimals) {
            anyhow::bail!("'{s}' has more than {decimals} decimal places");
        }
        let unit = 10u128.pow(u32::from(decimals));
        let w: Balance = if whole.is_empty() {
            0
        } else {
            whole
                .parse()
                .with_context(|| format!("'{s}' is not an amount"))?
        };
        let f: Balance = if frac.is_empty() {
            0
        } else {
            format!("{frac:0<width$}", width = usize::from(decimals))
                .parse()
                .with_context(|| format!("'{s}' is not an amount"))?
        };
        return w
            .checked_mul(unit)
            .and_then(|x| x.checked_add(f))
            .with_context(|| format!("'{s}' is too large"));
    }
    t.parse::<Balance>().with_context(|| {
        format!("'{s}' is not an amount: use smallest units (e.g. 1000000) or {symbol} with the suffix (e.g. 1.5{symbol})")
    })
}

async fn transfer(args: TransferArgs) -> anyhow::Result<()> {
    let client = NodeClient::new(&args.rpc.rpc)?;
    let f = shared::facts(&client).await?;
    let key = shared::resolve_key(&args.from, &f)?;
    let signer = cachecash_runtime::AccountId::from_signing_key(&key);
    let dest = shared::resolve_account(&args.to, &f)?;
    let amount = parse_amount(&args.amount, f.decimals, &f.symbol)?;
    let call = Call::Transfer { dest, amount };
    let fee = match &args.fee {
        Some(x) => parse_amount(x, f.decimals, &f.symbol)?,
        None => shared::minimum_fee(&client, &call).await?,
    };
    let submitted = shared::submit(&client, &f, &key, call, fee).await?;
    if !args.json {
        println!(
            "Submitted {}: {} {} from {signer} to {dest} (fee {}, nonce {})",
            submitted.hash,
            format_balance(amount, f.decimals),
            f.symbol,
            format_balance(fee, f.decimals),
            submitted.nonce
        );
    }
    if args.no_wait {
        if args.json {
            println!("{}", json!({"hash": submitted.hash}));
        }
        return Ok(());
    }
    let found = shared::wait_included(&client, &submitted.hash, args.timeout).await?;
    if args.json {
        println!("{}", json!({"hash": submitted.hash, "included": found}));
    } else {
        println!("{}", shared::inclusion_line(&found));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::parse_amount;

    #[test]
    fn amounts_parse_in_units_and_tokens() {
        assert_eq!(parse_amount("1000", 12, "CCH").unwrap(), 1000);
        assert_eq!(
            parse_amount("1.5CCH", 12, "CCH").unwrap(),
            1_500_000_000_000
        );
        assert_eq!(parse_amount("2 cch", 12, "CCH").unwrap(), 2_000_000_000_000);
        assert!(parse_amount("1.0000000000001CCH", 12, "CCH").is_err());
        assert!(parse_amount("abc", 12, "CCH").is_err());
    }
}
