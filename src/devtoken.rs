//! Development tokens: sign a JWT with a local PEM key, and publish its JWKS.
//! Used by `authzd token`, `authzd jwks`, the demo and the tests. Never needed
//! in production.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use jsonwebtoken::{
    EncodingKey, Header,
    jwk::{Jwk, PublicKeyUse, ThumbprintHash},
};
use serde_json::{Map, Value, json};

use crate::token::Alg;

#[derive(Debug, thiserror::Error)]
pub enum DevTokenError {
    #[error("`{0}` is not an RSA, EC (P-256/P-384) or Ed25519 private key in PEM form")]
    Key(String),
    #[error("cannot sign: {0}")]
    Sign(String),
    #[error("invalid --claim `{0}`: expected key=value")]
    Claim(String),
}

/// A private key and the algorithm it signs with.
pub struct SigningKey {
    pub key: EncodingKey,
    pub alg: Alg,
    /// Public JWK, with `kid` = RFC 7638 thumbprint, `alg` and `use = sig`.
    pub jwk: Jwk,
}

impl SigningKey {
    /// Reads a PEM private key: RSA signs RS256, P-256 ES256, P-384 ES384, Ed25519 EdDSA.
    pub fn from_pem(pem: &[u8], name: &str) -> Result<SigningKey, DevTokenError> {
        type Loader = fn(&[u8]) -> jsonwebtoken::errors::Result<EncodingKey>;
        let candidates: [(Loader, Alg); 4] = [
            (EncodingKey::from_rsa_pem, Alg::RS256),
            (EncodingKey::from_ec_pem, Alg::ES256),
            (EncodingKey::from_ec_pem, Alg::ES384),
            (EncodingKey::from_ed_pem, Alg::EdDSA),
        ];
        for (load, alg) in candidates {
            let Ok(key) = load(pem) else { continue };
            let Ok(mut jwk) = Jwk::from_encoding_key(&key, alg.to_jwt()) else {
                continue;
            };
            let Ok(kid) = jwk.thumbprint(ThumbprintHash::SHA256) else {
                continue;
            };
            jwk.common.key_id = Some(kid);
            jwk.common.public_key_use = Some(PublicKeyUse::Signature);
            return Ok(SigningKey { key, alg, jwk });
        }
        Err(DevTokenError::Key(name.to_string()))
    }

    /// The RFC 7638 thumbprint `kid`.
    pub fn kid(&self) -> &str {
        self.jwk.common.key_id.as_deref().unwrap_or_default()
    }

    /// A JWKS document holding this key's public half.
    pub fn jwks(&self) -> Value {
        json!({ "keys": [self.jwk] })
    }
}

/// What to put in a development token.
#[derive(Debug, Clone, Default)]
pub struct Claims {
    pub iss: String,
    pub sub: String,
    pub aud: Option<String>,
    pub groups: Vec<String>,
    pub scope: Option<String>,
    pub ttl: Duration,
    /// Extra `key=value` claims; a value that parses as JSON is used as JSON.
    pub extra: Vec<String>,
}

/// Signs `claims` with `key`; `kid` overrides the thumbprint.
pub fn mint(
    key: &SigningKey,
    claims: &Claims,
    kid: Option<&str>,
    now: SystemTime,
) -> Result<String, DevTokenError> {
    let now = now
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    let mut body = Map::new();
    body.insert("iss".into(), json!(claims.iss));
    body.insert("sub".into(), json!(claims.sub));
    body.insert("iat".into(), json!(now));
    body.insert("exp".into(), json!(now + claims.ttl.as_secs()));
    if let Some(aud) = &claims.aud {
        body.insert("aud".into(), json!(aud));
    }
    if !claims.groups.is_empty() {
        body.insert("cognito:groups".into(), json!(claims.groups));
    }
    if let Some(scope) = &claims.scope {
        body.insert("scope".into(), json!(scope));
    }
    for kv in &claims.extra {
        let (k, v) = kv
            .split_once('=')
            .ok_or_else(|| DevTokenError::Claim(kv.clone()))?;
        let v = serde_json::from_str(v).unwrap_or_else(|_| Value::String(v.to_string()));
        body.insert(k.to_string(), v);
    }
    let mut header = Header::new(key.alg.to_jwt());
    header.kid = Some(kid.unwrap_or(key.kid()).to_string());
    jsonwebtoken::encode(&header, &body, &key.key).map_err(|e| DevTokenError::Sign(e.to_string()))
}
