//! A software TPM for tests and demos: `swtpm` (Debian's `swtpm` and `swtpm-tools`), with an
//! endorsement certificate issued by a local CA of its own (`swtpm_localca`), so a test can
//! put that CA's root in a genesis exactly as production puts a TPM vendor's root there.
//!
//! This is a real TPM 2.0 implementation (libtpms) reached over TCP, not a stand-in: every
//! key, quote and activation is computed by it.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A local certificate authority for swtpm EK certificates.
#[derive(Debug, Clone)]
pub struct LocalCa {
    /// Its state directory.
    pub dir: PathBuf,
}

impl LocalCa {
    /// A CA in `dir` (created by the first `SwTpm::manufacture` that uses it).
    pub fn new(dir: &Path) -> Self {
        Self { dir: dir.into() }
    }

    /// The root certificate (PEM): what a genesis lists.
    pub fn root_pem(&self) -> std::io::Result<String> {
        std::fs::read_to_string(self.dir.join("swtpm-localca-rootca-cert.pem"))
    }

    /// The intermediate that signs EK certificates (PEM): the chain evidence carries.
    pub fn issuer_pem(&self) -> std::io::Result<String> {
        std::fs::read_to_string(self.dir.join("issuercert.pem"))
    }
}

/// A running swtpm instance; killed on drop.
#[derive(Debug)]
pub struct SwTpm {
    child: Child,
    /// The TCTI string for tpm2-tools.
    pub tcti: String,
    /// The TPM state directory.
    pub state: PathBuf,
}

impl SwTpm {
    /// Whether swtpm and tpm2-tools are installed.
    pub fn available() -> bool {
        ["swtpm", "swtpm_setup", "tpm2_createak"].iter().all(|t| {
            Command::new("which")
                .arg(t)
                .stdout(Stdio::null())
                .status()
                .is_ok_and(|s| s.success())
        })
    }

    /// For tests: whether to run. True when swtpm is installed; otherwise prints why the test
    /// is skipped, and fails instead when `WEB4FED_REQUIRE_TPM` is set (CI installs swtpm).
    pub fn available_or_skip() -> bool {
        if Self::available() {
            return true;
        }
        assert!(
            std::env::var("WEB4FED_REQUIRE_TPM").is_err(),
            "WEB4FED_REQUIRE_TPM is set but swtpm/tpm2-tools are missing"
        );
        eprintln!(
            "SKIPPED: swtpm or tpm2-tools missing (apt-get install swtpm swtpm-tools tpm2-tools)"
        );
        false
    }

    /// Manufactures a TPM in `state` (EK and EK certificate from `ca`) and starts it.
    pub fn manufacture(state: &Path, ca: &LocalCa) -> std::io::Result<Self> {
        std::fs::create_dir_all(state)?;
        std::fs::create_dir_all(&ca.dir)?;
        let conf_dir = state.join("conf");
        std::fs::create_dir_all(&conf_dir)?;
        let ca_conf = conf_dir.join("swtpm-localca.conf");
        let d = ca.dir.display();
        std::fs::write(
            &ca_conf,
            format!(
                "statedir = {d}\nsigningkey = {d}/signkey.pem\nissuercert = {d}/issuercert.pem\ncertserial = {d}/certserial\n"
            ),
        )?;
        let opts = conf_dir.join("swtpm-localca.options");
        std::fs::write(
            &opts,
            "--platform-manufacturer web4fed\n--platform-version 2.1\n--platform-model test\n",
        )?;
        let setup_conf = conf_dir.join("swtpm_setup.conf");
        std::fs::write(
            &setup_conf,
            format!(
                "create_certs_tool = swtpm_localca\ncreate_certs_tool_config = {}\ncreate_certs_tool_options = {}\nactive_pcr_banks = sha256\n",
                ca_conf.display(),
                opts.display()
            ),
        )?;
        let out = Command::new("swtpm_setup")
            .args(["--tpm2", "--create-ek-cert", "--overwrite", "--tpmstate"])
            .arg(state)
            .arg("--config")
            .arg(&setup_conf)
            .output()?;
        if !out.status.success() {
            return Err(std::io::Error::other(format!(
                "swtpm_setup: {}{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            )));
        }
        Self::start(state)
    }

    /// Starts swtpm on a manufactured state directory.
    pub fn start(state: &Path) -> std::io::Result<Self> {
        // Unix sockets in the state directory: TCP ports would compete with every other
        // test process for free pairs (the swtpm TCTI wants the control port next to the
        // server port), and a loaded machine can run out of them.
        let sock = state.join("swtpm.sock");
        let ctrl = state.join("swtpm.sock.ctrl");
        for p in [&sock, &ctrl] {
            let _ = std::fs::remove_file(p);
        }
        let child = Command::new("swtpm")
            .args(["socket", "--tpm2", "--tpmstate"])
            .arg(format!("dir={}", state.display()))
            .arg("--server")
            .arg(format!("type=unixio,path={}", sock.display()))
            .arg("--ctrl")
            .arg(format!("type=unixio,path={}", ctrl.display()))
            .args(["--flags", "not-need-init,startup-clear"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()?;
        let start = Instant::now();
        while std::os::unix::net::UnixStream::connect(&sock).is_err() {
            if start.elapsed() > Duration::from_secs(10) {
                return Err(std::io::Error::other("swtpm did not start listening"));
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        Ok(Self {
            child,
            tcti: format!("swtpm:path={}", sock.display()),
            state: state.into(),
        })
    }

    /// Extends PCR `pcr` (SHA-256 bank) with `byte` repeated: this machine now reports a
    /// boot state other than a fresh one's, as if it had booted other firmware.
    pub fn extend_pcr(&self, pcr: u8, byte: u8) -> std::io::Result<()> {
        let out = Command::new("tpm2_pcrextend")
            .arg(format!("{pcr}:sha256={}", format!("{byte:02x}").repeat(32)))
            .env("TPM2TOOLS_TCTI", &self.tcti)
            .output()?;
        if out.status.success() {
            Ok(())
        } else {
            Err(std::io::Error::other(format!(
                "tpm2_pcrextend: {}",
                String::from_utf8_lossy(&out.stderr).trim()
            )))
        }
    }
}

impl Drop for SwTpm {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
