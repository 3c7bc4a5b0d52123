//! A policy CSV behind a URL (an S3 or GCS object, any web server), fetched
//! with `If-None-Match`: an unchanged object costs a 304 and no rebuild.

use std::time::Duration;

use reqwest::{StatusCode, header};

use super::{Fetched, StoreError, redact};
use crate::config::PolicyConfig;

/// Largest policy body accepted (a policy, not a download).
const MAX_BODY: usize = 64 << 20;

pub struct Poller {
    http: reqwest::Client,
    url: String,
    redacted: String,
    etag: Option<header::HeaderValue>,
}

impl Poller {
    pub fn new(cfg: &PolicyConfig) -> Result<Poller, StoreError> {
        let url = cfg.store.clone().unwrap_or_default();
        let redacted = redact(&url);
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(10))
            .connect_timeout(Duration::from_secs(5))
            .build()
            .map_err(|e| StoreError {
                store: redacted.clone(),
                message: e.to_string(),
            })?;
        Ok(Poller {
            http,
            url,
            redacted,
            etag: None,
        })
    }

    fn err(&self, message: impl std::fmt::Display) -> StoreError {
        StoreError {
            store: self.redacted.clone(),
            message: message.to_string(),
        }
    }

    pub async fn sync(&mut self, force: bool) -> Result<Option<Fetched>, StoreError> {
        let mut req = self.http.get(&self.url);
        if let (false, Some(etag)) = (force, &self.etag) {
            req = req.header(header::IF_NONE_MATCH, etag.clone());
        }
        // reqwest's errors name the URL: strip it, it may carry credentials.
        let mut resp = req.send().await.map_err(|e| self.err(e.without_url()))?;
        match resp.status() {
            StatusCode::NOT_MODIFIED => return Ok(None),
            StatusCode::OK => {}
            s => return Err(self.err(format!("answered HTTP {s}"))),
        }
        let etag = resp.headers().get(header::ETAG).cloned();
        let mut body = Vec::new();
        while let Some(chunk) = resp.chunk().await.map_err(|e| self.err(e.without_url()))? {
            if body.len() + chunk.len() > MAX_BODY {
                return Err(self.err(format!("policy larger than {} MiB", MAX_BODY >> 20)));
            }
            body.extend_from_slice(&chunk);
        }
        let text = String::from_utf8(body).map_err(|_| self.err("policy is not UTF-8"))?;
        self.etag = etag;
        let rows = vec![None; text.lines().count()];
        Ok(Some(Fetched { text, rows }))
    }
}
