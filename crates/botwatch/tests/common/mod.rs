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
