//! Running the real binary, as a user does; shared by the CLI tests.
#![allow(dead_code)] // each test binary uses a different subset

use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// The binary, with no database or config inherited from the environment.
pub fn bin() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_botwatch"));
    c.env_remove("BOTWATCH_DB").env_remove("BOTWATCH_CONFIG");
    c
}

pub fn run(args: &[&str]) -> Output {
    bin().args(args).output().unwrap()
}

/// A child process (a server, a browser driver) killed and reaped when dropped, so a
/// failing test leaves nothing running.
pub struct Running(pub std::process::Child);

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Starts `botwatch --config CFG serve` on a free port (in `dir` when given): the process,
/// the base URL it announced (`{scheme}://127.0.0.1:PORT`) and the whole announcement.
pub fn serve(dir: Option<&Path>, cfg: &str, scheme: &str) -> (Running, String, String) {
    use std::io::BufRead;
    let mut cmd = bin();
    if let Some(d) = dir {
        cmd.current_dir(d);
    }
    let mut child = cmd
        .args(["--config", cfg, "serve", "--listen", "127.0.0.1:0"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let mut line = String::new();
    std::io::BufReader::new(child.stdout.take().unwrap()).read_line(&mut line).unwrap();
    let prefix = format!("{scheme}://");
    let base = line
        .split_whitespace()
        .find(|w| w.starts_with(&prefix))
        .unwrap_or_else(|| panic!("no {prefix} URL in {line:?}"))
        .trim_end_matches('/')
        .to_string();
    (Running(child), base, line)
}

/// Runs and asserts success; stdout.
pub fn ok(args: &[&str]) -> String {
    let o = run(args);
    assert!(
        o.status.success(),
        "{args:?} failed: {}\n{}",
        String::from_utf8_lossy(&o.stderr),
        String::from_utf8_lossy(&o.stdout)
    );
    String::from_utf8(o.stdout).unwrap()
}

/// The JSON objects among stdout's lines.
pub fn json_lines(s: &str) -> Vec<Value> {
    s.lines().filter(|l| l.starts_with('{')).map(|l| serde_json::from_str(l).unwrap()).collect()
}

/// A feed fixture (crates/feeds/tests/data).
pub fn data(rel: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../feeds/tests/data").join(rel)
}

/// The Python that has the peers' validators (PyPI `intelmq` and `xarf`): `BOTWATCH_PYTHON`,
/// else `python3`. `None` (the test says it skipped) when neither has them; with
/// `BOTWATCH_VALIDATORS=1` (set by `.ci/run` once it installed them) that is a failure.
pub fn validator_python() -> Option<String> {
    let py = std::env::var("BOTWATCH_PYTHON").unwrap_or_else(|_| "python3".into());
    let has = Command::new(&py)
        .args(["-c", "import intelmq.lib.message, xarf, prometheus_client, openapi_spec_validator"])
        .output()
        .is_ok_and(|o| o.status.success());
    if has {
        return Some(py);
    }
    assert!(
        std::env::var("BOTWATCH_VALIDATORS").as_deref() != Ok("1"),
        "BOTWATCH_VALIDATORS=1 but {py} cannot import intelmq, xarf, prometheus_client and openapi_spec_validator"
    );
    eprintln!(
        "skipped: no Python with the intelmq and xarf packages (set BOTWATCH_PYTHON; .ci/run installs them)"
    );
    None
}

/// Runs `scripts/validate.py KIND FILE` (the peers' own validators); asserts every line
/// passed and returns the validator's summary.
pub fn validate(py: &str, kind: &str, file: &Path) -> String {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../scripts/validate.py");
    let o = Command::new(py).arg(script).arg(kind).arg(file).output().unwrap();
    let out = String::from_utf8_lossy(&o.stdout).into_owned();
    assert!(
        o.status.success(),
        "{kind} validation of {} failed:\n{out}{}",
        file.display(),
        String::from_utf8_lossy(&o.stderr)
    );
    out
}

/// Logs in through the web form as a browser does (nonce cookie + field); the session
/// cookie (`bw_session=…`).
pub fn login(c: &reqwest::blocking::Client, base: &str, token: &str) -> String {
    let cookie = |r: &reqwest::blocking::Response, name: &str| {
        r.headers()
            .get_all("set-cookie")
            .iter()
            .map(|v| v.to_str().unwrap().split(';').next().unwrap().to_string())
            .find(|c| c.starts_with(name))
    };
    let form = c.get(format!("{base}/login")).send().unwrap();
    let nonce_cookie = cookie(&form, "bw_form=").expect("a form nonce cookie");
    let nonce = nonce_cookie.trim_start_matches("bw_form=").to_string();
    let r = c
        .post(format!("{base}/login"))
        .header("cookie", &nonce_cookie)
        .header("content-type", "application/x-www-form-urlencoded")
        .body(format!("token={token}&nonce={nonce}"))
        .send()
        .unwrap();
    cookie(&r, "bw_session=").expect("a session cookie")
}
