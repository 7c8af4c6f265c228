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
