//! Go Casbin as a reference: `tests/reference/main.go`, built against
//! Debian's `golang-github-casbin-casbin-dev` (Casbin's own Go
//! implementation, whose behaviour Casbin's documentation describes), run
//! as one long-lived process per test that answers JSON questions.

use std::{
    collections::BTreeMap,
    io::{BufRead, BufReader, Write},
    path::{Path, PathBuf},
    process::{Child, ChildStdin, ChildStdout, Command, Stdio},
    sync::OnceLock,
};

use serde_json::{Value, json};

/// Where Debian installs Go sources.
const GOCODE: &str = "/usr/share/gocode/src/github.com";

pub struct Reference {
    child: Child,
    stdin: ChildStdin,
    stdout: BufReader<ChildStdout>,
}

/// One question: a model, a policy, the role managers' matching functions.
#[derive(Default)]
pub struct Job<'a> {
    pub model: &'a str,
    pub policy: &'a str,
    /// Role definition (`g`, `g2`) → function name (`keyMatch2`).
    pub role_matching: BTreeMap<String, String>,
    pub domain_matching: BTreeMap<String, String>,
}

/// Go Casbin's answer to one request: `Err` where it failed or panicked.
pub type Answer = Result<(bool, Vec<String>), String>;

/// Builds the reference once per test binary; `None` without Go or Go Casbin.
fn binary() -> Option<&'static Path> {
    static BUILT: OnceLock<Option<PathBuf>> = OnceLock::new();
    BUILT
        .get_or_init(|| {
            let go = ["/usr/bin/go", "/usr/lib/go/bin/go"]
                .into_iter()
                .find(|p| Path::new(p).exists());
            let casbin = Path::new(GOCODE).join("casbin/casbin");
            let govaluate = Path::new(GOCODE).join("Knetic/govaluate");
            let (Some(go), true, true) = (go, casbin.exists(), govaluate.exists()) else {
                return None;
            };
            // A GOPATH that resolves the `/v2` import path to Debian's sources.
            // Per process: test binaries build concurrently; the Go cache is shared.
            let tmp = Path::new(env!("CARGO_TARGET_TMPDIR"));
            let root = tmp.join(format!("casbin-reference-{}", std::process::id()));
            let gopath = root.join("gopath/src/github.com");
            std::fs::create_dir_all(gopath.join("casbin/casbin")).unwrap();
            std::fs::create_dir_all(gopath.join("Knetic")).unwrap();
            for (link, to) in [
                (gopath.join("casbin/casbin/v2"), &casbin),
                (gopath.join("Knetic/govaluate"), &govaluate),
            ] {
                let _ = std::fs::remove_file(&link);
                std::os::unix::fs::symlink(to, &link).unwrap();
            }
            let out = root.join("casbin-reference");
            let status = Command::new(go)
                .args(["build", "-o"])
                .arg(&out)
                .arg(".")
                .current_dir(Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/reference"))
                .env("GO111MODULE", "off")
                .env("GOPATH", root.join("gopath"))
                .env("GOCACHE", tmp.join("casbin-reference-gocache"))
                .env("GOFLAGS", "")
                .status()
                .unwrap();
            assert!(status.success(), "building tests/reference failed");
            Some(out)
        })
        .as_deref()
}

impl Reference {
    /// The running reference, or `None` (said loudly) where Go Casbin is not installed.
    pub fn start() -> Option<Reference> {
        let Some(bin) = binary() else {
            eprintln!(
                "\n*** SKIPPED: Go Casbin is not installed (apt-get install golang-go golang-github-casbin-casbin-dev; .ci/run does this) ***\n"
            );
            return None;
        };
        let mut child = Command::new(bin)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        let stdin = child.stdin.take().unwrap();
        let stdout = BufReader::new(child.stdout.take().unwrap());
        Some(Reference {
            child,
            stdin,
            stdout,
        })
    }

    /// Go Casbin's answers to `requests` (request values, and policy lines
    /// added for that request alone), or why the model and policy did not load.
    pub fn ask(
        &mut self,
        job: &Job<'_>,
        requests: &[(Vec<&str>, String)],
    ) -> Result<Vec<Answer>, String> {
        let question = json!({
            "model": job.model,
            "policy": job.policy,
            "role_matching": job.role_matching,
            "domain_matching": job.domain_matching,
            "requests": requests
                .iter()
                .map(|(values, extra)| json!({"values": values, "extra": extra}))
                .collect::<Vec<_>>(),
        });
        writeln!(self.stdin, "{question}").unwrap();
        self.stdin.flush().unwrap();
        let mut line = String::new();
        self.stdout.read_line(&mut line).unwrap();
        let answer: Value = serde_json::from_str(&line).unwrap();
        let error = answer["error"].as_str().unwrap_or_default();
        if !error.is_empty() {
            return Err(error.to_string());
        }
        Ok(answer["results"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| match r["error"].as_str() {
                Some(e) if !e.is_empty() => Err(e.to_string()),
                _ => Ok((
                    r["allowed"].as_bool().unwrap(),
                    r["explain"]
                        .as_array()
                        .unwrap()
                        .iter()
                        .map(|v| v.as_str().unwrap().to_string())
                        .collect(),
                )),
            })
            .collect())
    }
}

impl Drop for Reference {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
