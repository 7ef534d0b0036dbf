//! The `ssproc` binary, built once and run as a process.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::OnceLock;

use super::TestDb;

/// What one run of the binary did.
#[derive(Debug)]
pub struct Run {
    /// The exit code; `None` when a signal ended it.
    pub code: Option<i32>,
    pub stdout: String,
    pub stderr: String,
}

/// The binary beside this test executable (`target/<profile>/ssproc`),
/// built first with the same cargo and profile: cargo builds a dependency's
/// binaries for no test, so this test builds the one it runs.
pub fn binary() -> &'static Path {
    static BINARY: OnceLock<PathBuf> = OnceLock::new();
    BINARY.get_or_init(|| {
        let test_exe = std::env::current_exe().expect("locate the test executable");
        let profile_dir = test_exe
            .parent()
            .and_then(Path::parent)
            .expect("the test executable sits in target/<profile>/deps");
        let target_dir = profile_dir
            .parent()
            .expect("the profile directory sits in the target directory");
        let mut build = Command::new(env!("CARGO"));
        build
            .current_dir(env!("CARGO_MANIFEST_DIR"))
            .args(["build", "--quiet", "-p", "ssproc", "--features", "cli"])
            .args(["--bin", "ssproc", "--target-dir"])
            .arg(target_dir);
        match profile_dir.file_name().and_then(|name| name.to_str()) {
            Some("debug") => {}
            Some("release") => {
                build.arg("--release");
            }
            Some(profile) => {
                build.args(["--profile", profile]);
            }
            None => panic!("no profile directory above {}", test_exe.display()),
        }
        let status = build
            .stdin(Stdio::null())
            .status()
            .expect("run cargo build for the ssproc binary");
        assert!(status.success(), "cargo build of the ssproc binary failed");
        profile_dir.join("ssproc")
    })
}

/// Runs the binary with `args` alone, without `DATABASE_URL`.
pub async fn run(args: &[&str]) -> Run {
    let output = tokio::process::Command::new(binary())
        .args(args)
        .env_remove("DATABASE_URL")
        .stdin(Stdio::null())
        .output()
        .await
        .expect("run the ssproc binary");
    Run {
        code: output.status.code(),
        stdout: String::from_utf8(output.stdout).expect("stdout is UTF-8"),
        stderr: String::from_utf8(output.stderr).expect("stderr is UTF-8"),
    }
}

/// Runs the binary on the test's database and `<schema>.jobs`.
pub async fn run_on(db: &TestDb, args: &[&str]) -> Run {
    let mut all = vec![
        "--database-url",
        db.url.as_str(),
        "--schema",
        db.schema.as_str(),
        "--table",
        "jobs",
    ];
    all.extend_from_slice(args);
    run(&all).await
}

impl Run {
    /// Asserts exit code 0 and no stderr; returns stdout.
    #[track_caller]
    pub fn success(&self) -> &str {
        assert_eq!(self.code, Some(0), "expected success: {self:?}");
        assert_eq!(self.stderr, "", "expected no stderr: {self:?}");
        &self.stdout
    }

    /// Asserts exit code `code`, nothing on stdout and exactly one line on
    /// stderr; returns that line.
    #[track_caller]
    pub fn failure(&self, code: i32) -> &str {
        assert_eq!(self.code, Some(code), "expected exit code {code}: {self:?}");
        assert_eq!(self.stdout, "", "expected no stdout: {self:?}");
        let line = self
            .stderr
            .strip_suffix('\n')
            .expect("stderr ends with a newline");
        assert!(!line.contains('\n'), "expected one line: {self:?}");
        line
    }

    /// Parses stdout as JSON.
    #[track_caller]
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(self.success()).expect("stdout is JSON")
    }
}
