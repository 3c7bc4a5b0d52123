//! A fleet of real `authzd serve` processes on one store-backed config.

use std::{
    net::SocketAddr,
    path::{Path, PathBuf},
    process::Stdio,
    sync::Arc,
    time::Duration,
};

use parking_lot::Mutex;
use serde_json::{Value, json};
use tokio::io::{AsyncBufReadExt, BufReader};

use super::*;

pub const ISS: &str = "https://rsa.example";

pub const BASE: &str = "p, reader, /api/*, GET\n";
pub const GRANT_VALUES: [&str; 4] = ["p", "staff", "/api/reports", "POST"];

/// A config directory for a store-backed replica. Every replica of a fleet
/// gets the same text, as from one ConfigMap.
pub struct Fleet {
    pub dir: tempfile::TempDir,
    pub rsa: SigningKey,
}

impl Fleet {
    pub fn new(store: &str, extra: &str) -> Fleet {
        let rsa = key("rsa.pem");
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("model.conf"), RBAC_MODEL).unwrap();
        std::fs::write(
            dir.path().join("rsa-jwks.json"),
            jwks_of(&[&rsa]).to_string(),
        )
        .unwrap();
        let issuer = file_issuer(ISS, "rsa-jwks.json", "\"RS256\"", "");
        let text = format!(
            r#"[server]
grpc_addr = "127.0.0.1:0"
http_addr = "127.0.0.1:0"

{issuer}

[[route]]
method = "ANY"
path = "/api/{{proxy+}}"

[policy]
model = "model.conf"
store = "{store}"
{extra}

[decision_log]
output = "off"
"#
        );
        std::fs::write(dir.path().join("authzd.toml"), text).unwrap();
        Fleet { dir, rsa }
    }

    pub fn config(&self) -> PathBuf {
        self.dir.path().join("authzd.toml")
    }

    pub fn staff_token(&self) -> String {
        let mut c = claims(ISS, "sam");
        c["cognito:groups"] = json!(["staff", "reader"]);
        token(&self.rsa, &c)
    }

    pub fn authzd(&self, args: &[&str]) -> std::process::Output {
        std::process::Command::new(env!("CARGO_BIN_EXE_authzd"))
            .args(args)
            .arg("--config")
            .arg(self.config())
            .output()
            .unwrap()
    }

    pub fn store_cmd(&self, args: &[&str]) -> std::process::Output {
        std::process::Command::new(env!("CARGO_BIN_EXE_authzd"))
            .arg("store")
            .arg("--config")
            .arg(self.config())
            .args(args)
            .output()
            .unwrap()
    }

    pub fn import(&self, text: &str) {
        let file = self.dir.path().join("import.csv");
        std::fs::write(&file, text).unwrap();
        let out = self.store_cmd(&["import", file.to_str().unwrap()]);
        assert!(
            out.status.success(),
            "import failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

/// A real `authzd serve` process, its address read from its own startup line.
pub struct Replica {
    /// Killed when dropped.
    child: tokio::process::Child,
    pub http: SocketAddr,
    pub grpc: SocketAddr,
    pub stderr: Arc<Mutex<String>>,
}

impl Replica {
    pub async fn start(config: &Path) -> Replica {
        Self::start_with_env(config, &[]).await
    }

    pub async fn start_with_env(config: &Path, env: &[(&str, &Path)]) -> Replica {
        let mut cmd = tokio::process::Command::new(env!("CARGO_BIN_EXE_authzd"));
        for (k, v) in env {
            cmd.env(k, v);
        }
        let mut child = cmd
            .args(["--log-format", "json", "serve", "--config"])
            .arg(config)
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .unwrap();
        let stderr = Arc::new(Mutex::new(String::new()));
        let (tx, rx) = tokio::sync::oneshot::channel();
        let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
        let log = Arc::clone(&stderr);
        tokio::spawn(async move {
            let mut tx = Some(tx);
            while let Ok(Some(line)) = lines.next_line().await {
                log.lock().push_str(&line);
                log.lock().push('\n');
                if let Ok(v) = serde_json::from_str::<Value>(&line)
                    && v["fields"]["message"] == "authzd serving"
                    && let Some(tx) = tx.take()
                {
                    let addr = |k: &str| -> SocketAddr {
                        v["fields"][k].as_str().unwrap().parse().unwrap()
                    };
                    let _ = tx.send((addr("http"), addr("grpc")));
                }
            }
        });
        let (http, grpc) = tokio::time::timeout(Duration::from_secs(30), rx)
            .await
            .expect("replica never started serving")
            .unwrap();
        Replica {
            child,
            http,
            grpc,
            stderr,
        }
    }

    pub fn pid(&self) -> u32 {
        self.child.id().unwrap()
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.http)
    }

    /// `POST /api/reports` with `token`: (HTTP status of the check call, body).
    pub async fn check(&self, token: &str) -> (u16, Value) {
        let resp = reqwest::Client::new()
            .post(self.url("/v1/check"))
            .json(&json!({"method": "POST", "path": "/api/reports", "token": token}))
            .send()
            .await
            .unwrap();
        let status = resp.status().as_u16();
        (status, resp.json().await.unwrap())
    }

    pub async fn allowed(&self, token: &str) -> bool {
        self.check(token).await.1["allowed"] == true
    }

    pub async fn policy(&self) -> Value {
        reqwest::get(self.url("/v1/policy"))
            .await
            .unwrap()
            .json()
            .await
            .unwrap()
    }

    pub async fn revision(&self) -> String {
        self.policy().await["revision"]
            .as_str()
            .unwrap()
            .to_string()
    }

    pub async fn metrics(&self) -> String {
        reqwest::get(self.url("/metrics"))
            .await
            .unwrap()
            .text()
            .await
            .unwrap()
    }

    pub async fn counter(&self, name_and_labels: &str) -> f64 {
        self.metrics()
            .await
            .lines()
            .find_map(|l| l.strip_prefix(name_and_labels))
            .map_or(0.0, |v| v.trim().parse().unwrap())
    }
}
