//! The binary's subcommands, end to end.

mod common;
use common::cachecash;

#[test]
fn key_inspect_resolves_dev_names_and_rejects_garbage() {
    let (ok, out, _) = cachecash(&["key", "inspect", "alice", "--json"]);
    assert!(ok);
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    let alice = cachecash_chain_spec::dev_accounts::dev_account("alice").unwrap();
    assert_eq!(v["account"], serde_json::json!(alice));
    let (ok, _, err) = cachecash(&["key", "inspect", "not-a-key"]);
    assert!(!ok);
    assert!(err.contains("not-a-key"), "{err}");
}

#[test]
fn key_generate_gives_distinct_valid_keys() {
    let (ok1, a, _) = cachecash(&["key", "generate", "--json"]);
    let (ok2, b, _) = cachecash(&["key", "generate", "--json"]);
    assert!(ok1 && ok2);
    let a: serde_json::Value = serde_json::from_str(&a).unwrap();
    let b: serde_json::Value = serde_json::from_str(&b).unwrap();
    assert_ne!(a["account"], b["account"]);
    let (ok, out, _) = cachecash(&[
        "key",
        "inspect",
        a["secretSeed"].as_str().unwrap(),
        "--json",
    ]);
    assert!(ok);
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["account"], a["account"]);
}

#[test]
fn export_chain_spec_round_trips_through_a_file() {
    let dir = tempfile::tempdir().unwrap();
    for raw in [false, true] {
        let mut args = vec!["export-chain-spec", "--chain", "local"];
        if raw {
            args.push("--raw");
        }
        let (ok, out, _) = cachecash(&args);
        assert!(ok);
        let path = dir.path().join(format!("spec-{raw}.json"));
        std::fs::write(&path, &out).unwrap();
        let spec = cachecash_chain_spec::ChainSpec::load(path.to_str().unwrap()).unwrap();
        assert_eq!(
            spec.genesis_hash().unwrap(),
            cachecash_chain_spec::ChainSpec::local()
                .genesis_hash()
                .unwrap()
        );
    }
}

#[test]
fn every_subcommand_has_help_with_examples() {
    for sub in [
        vec!["run"],
        vec!["key", "generate"],
        vec!["key", "inspect"],
        vec!["export-chain-spec"],
        vec!["purge-chain"],
        vec!["revert"],
        vec!["export-blocks"],
        vec!["import-blocks"],
        vec!["wallet", "balance"],
        vec!["wallet", "transfer"],
        vec!["benchmark", "ledger"],
    ] {
        let mut args = sub.clone();
        args.push("--help");
        let (ok, out, _) = cachecash(&args);
        assert!(ok, "{sub:?} --help");
        assert!(
            out.contains("Examples:"),
            "{sub:?} --help shows examples:\n{out}"
        );
    }
}

#[test]
fn bad_flags_and_chains_fail_with_a_clear_message() {
    let (ok, _, err) = cachecash(&["--chain", "/nonexistent/spec.json"]);
    assert!(!ok);
    assert!(err.contains("/nonexistent/spec.json"), "{err}");
    let (ok, _, err) = cachecash(&["--mine", "--chain", "dev", "--no-rpc"]);
    assert!(!ok);
    assert!(err.contains("--miner-account"), "{err}");
    let (ok, _, err) = cachecash(&["--rpc-methods", "sometimes"]);
    assert!(!ok);
    assert!(err.contains("auto, safe or unsafe"), "{err}");
}
