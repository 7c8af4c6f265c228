//! `init`, `genesis` and `inspect` as a user runs them: real processes, real files.

mod common;

use common::{run_ok, web4fed};
use std::os::unix::fs::PermissionsExt;

fn inspect_json(dir: &std::path::Path) -> serde_json::Value {
    let out = run_ok(web4fed().args(["inspect", "--json", "--dir"]).arg(dir));
    serde_json::from_slice(&out.stdout).unwrap()
}

#[test]
fn init_then_inspect() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("legion");
    let out = run_ok(
        web4fed()
            .args(["init", "--name", "legion", "--pow-bits", "8", "--dir"])
            .arg(&dir),
    );
    let lct = String::from_utf8(out.stdout).unwrap();
    assert!(lct.trim().starts_with("lct:web4:ai:"), "{lct}");
    let mode = std::fs::metadata(dir.join("node.key"))
        .unwrap()
        .permissions()
        .mode()
        & 0o777;
    assert_eq!(mode, 0o600);

    let v = inspect_json(&dir);
    assert_eq!(v["lct"], lct.trim());
    assert_eq!(v["feed_len"], 1);
    assert_eq!(v["trust_micro"], 100_000);
    assert_eq!(v["atp_milli"], 100_000);
    assert_eq!(v["state_root"], v["recorded_root"]);

    // A second init into the same directory refuses to overwrite the key.
    let again = web4fed()
        .args(["init", "--name", "x", "--pow-bits", "8", "--dir"])
        .arg(&dir)
        .output()
        .unwrap();
    assert!(!again.status.success());
    assert!(String::from_utf8_lossy(&again.stderr).contains("refusing to overwrite"));

    // A key readable by others is refused with the fix in the message.
    std::fs::set_permissions(dir.join("node.key"), std::fs::Permissions::from_mode(0o644)).unwrap();
    let out = web4fed()
        .args(["inspect", "--dir"])
        .arg(&dir)
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("chmod 600"));
}

#[test]
fn nodes_initialised_separately_with_the_same_flags_share_a_network() {
    let tmp = tempfile::tempdir().unwrap();
    let mut networks = Vec::new();
    for name in ["thor", "sprout"] {
        let dir = tmp.path().join(name);
        let st = web4fed()
            .args(["init", "--pow-bits", "8", "--name", name, "--dir"])
            .arg(&dir)
            .output()
            .unwrap();
        assert!(st.status.success());
        networks.push(inspect_json(&dir)["network"].clone());
    }
    assert_eq!(networks[0], networks[1]);

    // A genesis file handed out by the federation puts a node on that network.
    let g = tmp.path().join("genesis.toml");
    let out = web4fed()
        .args([
            "genesis",
            "--pow-bits",
            "9",
            "--network-name",
            "lab",
            "--out",
        ])
        .arg(&g)
        .output()
        .unwrap();
    assert!(out.status.success());
    let id = String::from_utf8(out.stdout).unwrap();
    let dir = tmp.path().join("legion");
    assert!(web4fed()
        .args(["init", "--name", "legion", "--dir"])
        .arg(&dir)
        .arg("--genesis")
        .arg(&g)
        .status()
        .unwrap()
        .success());
    assert_eq!(inspect_json(&dir)["network"], id.trim());
}

/// Founders: keys made first (`keygen`), named in the genesis (`--founder`), then `init` on
/// the same directories uses those keys. Bad input is refused with the flag named; a key is
/// never overwritten.
#[test]
fn founders_are_named_from_keys_made_before_the_genesis() {
    let tmp = tempfile::tempdir().unwrap();
    let keygen = |name: &str| {
        let out = run_ok(
            web4fed()
                .args(["keygen", "--dir"])
                .arg(tmp.path().join(name)),
        );
        String::from_utf8(out.stdout).unwrap().trim().to_string()
    };
    let ids: Vec<String> = ["legion", "thor"].iter().map(|n| keygen(n)).collect();
    for id in &ids {
        assert_eq!(id.len(), 64, "{id}");
        assert!(id.bytes().all(|b| b.is_ascii_hexdigit()), "{id}");
    }
    let again = web4fed()
        .args(["keygen", "--dir"])
        .arg(tmp.path().join("legion"))
        .output()
        .unwrap();
    assert!(!again.status.success());
    assert!(String::from_utf8_lossy(&again.stderr).contains("refusing to overwrite"));

    let g = tmp.path().join("genesis.toml");
    let genesis = |founders: &[&str]| {
        let mut cmd = web4fed();
        cmd.args([
            "genesis",
            "--pow-bits",
            "8",
            "--network-name",
            "founded",
            "--out",
        ])
        .arg(&g);
        for f in founders {
            cmd.args(["--founder", f]);
        }
        cmd.output().unwrap()
    };
    for bad in ["xyz", "lct:web4:ai:0123456789abcdef", &ids[0][..62]] {
        let out = genesis(&[bad]);
        assert!(!out.status.success(), "{bad}");
        assert!(
            String::from_utf8_lossy(&out.stderr).contains("--founder"),
            "{bad}"
        );
    }
    let out = genesis(&[&ids[0], &ids[0]]);
    assert!(!out.status.success(), "a founder named twice");
    assert!(String::from_utf8_lossy(&out.stderr).contains("distinct"));
    let out = genesis(&[&ids[0], &ids[1].to_uppercase()]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = std::fs::read_to_string(&g).unwrap();
    assert!(text.contains(&ids[0]) && text.contains(&ids[1]), "{text}");

    for (name, id) in ["legion", "thor"].iter().zip(&ids) {
        let dir = tmp.path().join(name);
        run_ok(
            web4fed()
                .args(["init", "--name", name, "--dir"])
                .arg(&dir)
                .arg("--genesis")
                .arg(&g),
        );
        assert_eq!(
            inspect_json(&dir)["member"],
            id.as_str(),
            "init used the key"
        );
    }
}
