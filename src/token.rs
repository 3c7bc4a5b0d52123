//! JWT parsing and verification (`docs/pipeline.md`).
//!
//! [`parse`] splits and decodes a compact JWS once; [`verify`] checks it
//! against one issuer's configuration and key set, synchronously and without
//! I/O. Fetching keys is [`jwks`]'s job; reading claims is [`claims`]'s.
//! Keys are never taken from the token: `jku`, `x5u`, `jwk` and `x5c` are
//! not even deserialized.

pub mod alg;
pub mod claims;
pub mod jwks;
pub mod verified;

use std::time::{SystemTime, UNIX_EPOCH};

use base64::{Engine as _, engine::general_purpose::URL_SAFE_NO_PAD};
use serde::Deserialize;
use serde_json::{Map, Value};

pub use alg::Alg;
use jwks::{Key, KeySet};

use crate::{config::IssuerConfig, reason::Reason};

/// Tokens longer than this are rejected before any decoding.
pub const MAX_TOKEN_BYTES: usize = 16 * 1024;

/// Why a token was rejected. `Display` is the human `detail` of the decision log.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum TokenError {
    #[error("token is malformed: {0}")]
    Malformed(String),
    #[error("token issuer `{iss}` is not configured")]
    IssuerUnknown { iss: String },
    #[error(
        "token issuer `{iss}` is not configured; it differs from the configured `{configured}` only by a trailing slash"
    )]
    IssuerTrailingSlash { iss: String, configured: String },
    #[error("token algorithm `{0}` is not allowed for this issuer")]
    AlgorithmNotAllowed(String),
    #[error("token algorithm `{alg}` does not fit key `{kid}`")]
    AlgorithmKeyMismatch { alg: &'static str, kid: String },
    #[error("no key `{0}` in the issuer's key set")]
    KeyUnknown(String),
    #[error("the issuer's keys cannot be fetched ({0}): no cached key can check this token")]
    IssuerUnavailable(String),
    #[error("token signature does not verify")]
    SignatureInvalid,
    #[error("token expired {0} s ago")]
    Expired(i64),
    #[error("token is not valid for another {0} s")]
    NotYetValid(i64),
    #[error("token was issued {0} s in the future (`iat`)")]
    IssuedInFuture(i64),
    #[error("token audience does not match: {0}")]
    AudienceMismatch(String),
    #[error("token_use is `{got}`, this issuer requires `{want}`")]
    TokenUseMismatch { got: String, want: String },
}

impl TokenError {
    pub fn reason(&self) -> Reason {
        match self {
            TokenError::Malformed(_) => Reason::TokenMalformed,
            TokenError::IssuerUnknown { .. } | TokenError::IssuerTrailingSlash { .. } => {
                Reason::IssuerUnknown
            }
            TokenError::AlgorithmNotAllowed(_) | TokenError::AlgorithmKeyMismatch { .. } => {
                Reason::AlgorithmNotAllowed
            }
            TokenError::KeyUnknown(_) => Reason::KeyUnknown,
            TokenError::IssuerUnavailable(_) => Reason::IssuerUnavailable,
            TokenError::SignatureInvalid => Reason::SignatureInvalid,
            TokenError::Expired(_) => Reason::TokenExpired,
            TokenError::NotYetValid(_) | TokenError::IssuedInFuture(_) => Reason::TokenNotYetValid,
            TokenError::AudienceMismatch(_) => Reason::AudienceMismatch,
            TokenError::TokenUseMismatch { .. } => Reason::TokenUseMismatch,
        }
    }
}

fn malformed(msg: impl Into<String>) -> TokenError {
    TokenError::Malformed(msg.into())
}

/// Attacker-chosen strings (kid, alg, iss) are clipped before they reach a
/// log line, so a 10 KiB `kid` cannot bloat the decision log.
pub fn clip(s: &str) -> String {
    const MAX: usize = 80;
    match s.char_indices().nth(MAX) {
        Some((i, _)) => format!("{}…", &s[..i]),
        None => s.to_string(),
    }
}

/// The JOSE header fields authzd reads. Unknown fields are ignored; duplicate
/// fields are an error (serde rejects them), so `{"alg":"RS256","alg":"none"}`
/// cannot smuggle a second meaning past us.
#[derive(Debug, Deserialize)]
pub struct Header {
    pub alg: String,
    pub kid: Option<String>,
    pub crit: Option<Vec<String>>,
    pub typ: Option<String>,
}

/// `typ` values of access and ID tokens (RFC 7519, RFC 9068). Explicit typing
/// (RFC 8725 §3.11) keeps other JWT kinds — logout tokens, security event
/// tokens, JWE-style `typ`s — from being accepted as access tokens.
const ACCEPTED_TYP: [&str; 3] = ["JWT", "at+jwt", "application/at+jwt"];

/// Largest `exp`/`nbf` accepted: 9999-12-31T23:59:59Z. Anything later is not a real date.
const MAX_NUMERIC_DATE: i64 = 253_402_300_799;

/// A compact JWS split and decoded once; nothing here is trusted yet.
#[derive(Debug)]
pub struct ParsedToken<'a> {
    pub header: Header,
    pub claims: Map<String, Value>,
    /// `base64(header) "." base64(payload)`: the signed bytes.
    signing_input: &'a str,
    signature: &'a str,
}

impl ParsedToken<'_> {
    /// The unverified `iss`; only used to choose which issuer's rules apply.
    pub fn iss(&self) -> Result<&str, TokenError> {
        match self.claims.get("iss") {
            Some(Value::String(s)) => Ok(s),
            Some(_) => Err(malformed("`iss` is not a string")),
            None => Err(malformed("no `iss` claim")),
        }
    }
}

/// Splits and decodes a compact JWS. Pure and cheap: no crypto, no I/O.
pub fn parse(raw: &str) -> Result<ParsedToken<'_>, TokenError> {
    if raw.len() > MAX_TOKEN_BYTES {
        return Err(malformed(format!(
            "token is {} bytes, the limit is {MAX_TOKEN_BYTES}",
            raw.len()
        )));
    }
    let mut parts = raw.split('.');
    let (Some(h), Some(p), Some(s), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(malformed(
            "a JWT has three dot-separated parts (JWE is not accepted)",
        ));
    };
    let header_bytes = URL_SAFE_NO_PAD
        .decode(h)
        .map_err(|e| malformed(format!("header is not base64url: {e}")))?;
    let header: Header = serde_json::from_slice(&header_bytes)
        .map_err(|e| malformed(format!("header is not a JOSE header: {e}")))?;
    // An unsigned token is an algorithm-confusion attempt whatever else is
    // wrong with it (its signature part is usually empty): name it so.
    if header.alg.trim().eq_ignore_ascii_case("none") {
        return Err(TokenError::AlgorithmNotAllowed(clip(&header.alg)));
    }
    if s.is_empty() {
        return Err(malformed("the signature part is empty"));
    }
    if let Some(typ) = &header.typ
        && !ACCEPTED_TYP.iter().any(|t| t.eq_ignore_ascii_case(typ))
    {
        return Err(malformed(format!(
            "`typ` `{typ}` is not a JWT access or ID token type"
        )));
    }
    let payload = URL_SAFE_NO_PAD
        .decode(p)
        .map_err(|e| malformed(format!("payload is not base64url: {e}")))?;
    let claims: Map<String, Value> = serde_json::from_slice(&payload)
        .map_err(|e| malformed(format!("payload is not a JSON object: {e}")))?;
    if has_duplicate_top_level_keys(&payload, claims.len()) {
        return Err(malformed("payload has duplicate claim names"));
    }
    Ok(ParsedToken {
        header,
        claims,
        signing_input: &raw[..h.len() + 1 + p.len()],
        signature: s,
    })
}

/// serde_json keeps the last of duplicate keys silently; RFC 8725 §3.x asks
/// us to reject them. Counting top-level keys with a streaming pass is cheap.
fn has_duplicate_top_level_keys(payload: &[u8], unique: usize) -> bool {
    #[derive(Deserialize)]
    struct Count(#[serde(deserialize_with = "count_keys")] usize);
    fn count_keys<'de, D: serde::Deserializer<'de>>(d: D) -> Result<usize, D::Error> {
        struct V;
        impl<'de> serde::de::Visitor<'de> for V {
            type Value = usize;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("an object")
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(self, mut m: A) -> Result<usize, A::Error> {
                let mut n = 0;
                while m
                    .next_entry::<serde::de::IgnoredAny, serde::de::IgnoredAny>()?
                    .is_some()
                {
                    n += 1;
                }
                Ok(n)
            }
        }
        d.deserialize_map(V)
    }
    match serde_json::from_slice::<Count>(payload) {
        Ok(Count(n)) => n != unique,
        Err(_) => true,
    }
}

/// A token whose signature and claims checked out.
#[derive(Debug, Clone)]
pub struct Verified {
    pub claims: Map<String, Value>,
}

/// Verifies `token` for `issuer` with `keys`. `now` is injected for tests.
///
/// Order: algorithm allow-list, `crit`, key, signature, then claims, so that
/// nothing about claim checking is observable with a forged signature.
pub fn verify(
    token: ParsedToken<'_>,
    issuer: &IssuerConfig,
    keys: &KeySet,
    now: SystemTime,
) -> Result<Verified, TokenError> {
    let key = select_key(&token.header, issuer, keys)?;
    let ok = jsonwebtoken::crypto::verify(
        token.signature,
        token.signing_input.as_bytes(),
        &key.decoding,
        key_alg(&token.header, issuer)?.to_jwt(),
    )
    .unwrap_or(false);
    if !ok {
        return Err(TokenError::SignatureInvalid);
    }
    check_claims(&token.claims, issuer, now)?;
    Ok(Verified {
        claims: token.claims,
    })
}

/// The header's `alg` if this issuer allows it.
pub fn key_alg(header: &Header, issuer: &IssuerConfig) -> Result<Alg, TokenError> {
    match Alg::parse(&header.alg) {
        Some(alg) if issuer.algs.contains(&alg) => Ok(alg),
        _ => Err(TokenError::AlgorithmNotAllowed(clip(&header.alg))),
    }
}

/// Checks `alg` and `crit`, then finds the key. `KeyUnknown` may be retried
/// after a key refresh.
pub fn select_key<'k>(
    header: &Header,
    issuer: &IssuerConfig,
    keys: &'k KeySet,
) -> Result<&'k Key, TokenError> {
    let alg = key_alg(header, issuer)?;
    if let Some(crit) = &header.crit {
        // We implement no JWS extensions, so any named critical parameter is unknown.
        return Err(malformed(match crit.first() {
            Some(name) => format!(
                "critical header parameter `{}` is not understood",
                clip(name)
            ),
            None => "`crit` must not be empty".to_string(),
        }));
    }
    let key = keys.find(header.kid.as_deref(), alg).ok_or_else(|| {
        TokenError::KeyUnknown(
            header
                .kid
                .as_deref()
                .map_or_else(|| "(no kid)".into(), clip),
        )
    })?;
    if !key.fits(alg) {
        return Err(TokenError::AlgorithmKeyMismatch {
            alg: alg.name(),
            kid: key.kid.clone().unwrap_or_default(),
        });
    }
    Ok(key)
}

fn check_claims(
    claims: &Map<String, Value>,
    issuer: &IssuerConfig,
    now: SystemTime,
) -> Result<(), TokenError> {
    let now = now
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0);
    let leeway = i64::try_from(issuer.leeway_secs).unwrap_or(i64::MAX);
    let exp = numeric_date(claims, "exp")?.ok_or_else(|| malformed("no `exp` claim"))?;
    if now > exp.saturating_add(leeway) {
        return Err(TokenError::Expired(now - exp));
    }
    if let Some(nbf) = numeric_date(claims, "nbf")?
        && now.saturating_add(leeway) < nbf
    {
        return Err(TokenError::NotYetValid(nbf - now));
    }
    // API Gateway also requires `iat` in the past: a token from the future was
    // minted with a wrong clock or forged ahead of time.
    if let Some(iat) = numeric_date(claims, "iat")?
        && now.saturating_add(leeway) < iat
    {
        return Err(TokenError::IssuedInFuture(iat - now));
    }
    if !issuer.audiences.is_empty() {
        check_audience(claims, &issuer.audiences)?;
    }
    if let Some(want) = &issuer.token_use {
        let got = claims
            .get("token_use")
            .and_then(Value::as_str)
            .unwrap_or("");
        if got != want {
            return Err(TokenError::TokenUseMismatch {
                got: got.to_string(),
                want: want.clone(),
            });
        }
    }
    Ok(())
}

/// RFC 7519 NumericDate: a JSON number (fractions allowed, truncated). A string is malformed.
fn numeric_date(claims: &Map<String, Value>, name: &str) -> Result<Option<i64>, TokenError> {
    match claims.get(name) {
        None => Ok(None),
        Some(Value::Number(n)) => {
            let secs = match (n.as_i64(), n.as_f64()) {
                (Some(i), _) => i,
                // Fractions are allowed (RFC 7519 §2) and truncated; range is checked below.
                (None, Some(f)) if f.is_finite() && f.abs() < 1e15 => f as i64,
                _ => return Err(malformed(format!("`{name}` is not a usable number"))),
            };
            if !(0..=MAX_NUMERIC_DATE).contains(&secs) {
                return Err(malformed(format!(
                    "`{name}` {secs} is not a date between 1970 and 9999"
                )));
            }
            Ok(Some(secs))
        }
        Some(_) => Err(malformed(format!("`{name}` is not a number"))),
    }
}

fn check_audience(claims: &Map<String, Value>, audiences: &[String]) -> Result<(), TokenError> {
    let allowed = |s: &str| audiences.iter().any(|a| a == s);
    match claims.get("aud") {
        Some(Value::String(s)) if allowed(s) => Ok(()),
        Some(Value::Array(items)) if items.iter().filter_map(Value::as_str).any(allowed) => Ok(()),
        Some(Value::String(_) | Value::Array(_)) => Err(TokenError::AudienceMismatch(
            "`aud` names none of the configured audiences".into(),
        )),
        Some(_) => Err(malformed("`aud` is neither a string nor an array")),
        None => match claims.get("client_id") {
            Some(Value::String(s)) if allowed(s) => Ok(()),
            Some(_) => Err(TokenError::AudienceMismatch(
                "no `aud`, and `client_id` is not a configured audience".into(),
            )),
            None => Err(TokenError::AudienceMismatch(
                "neither `aud` nor `client_id` is present".into(),
            )),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn b64(s: &str) -> String {
        URL_SAFE_NO_PAD.encode(s)
    }

    #[test]
    fn parse_rejects_shapes() {
        let h = b64(r#"{"alg":"RS256"}"#);
        let p = b64(r#"{"iss":"x"}"#);
        assert!(parse(&format!("{h}.{p}.c2ln")).is_ok());
        for bad in [
            String::new(),
            "a.b".into(),
            format!("{h}.{p}"),
            format!("{h}.{p}."),
            format!("{h}.{p}.sig.extra.part"),
            format!("!!.{p}.sig"),
            format!("{}.{p}.sig", b64("not json")),
            format!("{h}.{}.sig", b64("[1,2]")),
            format!("{}.{p}.sig", b64(r#"{"alg":"RS256","alg":"none"}"#)),
            format!("{h}.{}.sig", b64(r#"{"iss":"a","iss":"b"}"#)),
            format!("{h}.{p}.{}", "A".repeat(MAX_TOKEN_BYTES)),
        ] {
            let e = parse(&bad).unwrap_err();
            assert_eq!(e.reason(), Reason::TokenMalformed, "{bad:.80}: {e}");
        }
    }

    #[test]
    fn alg_none_in_any_spelling_is_not_allowed() {
        let p = b64(r#"{"iss":"x"}"#);
        for alg in ["none", "None", "NONE", "nOnE", " none"] {
            let h = b64(&format!(r#"{{"alg":"{alg}"}}"#));
            for sig in ["", "c2ln"] {
                let e = parse(&format!("{h}.{p}.{sig}")).unwrap_err();
                assert_eq!(
                    e.reason(),
                    Reason::AlgorithmNotAllowed,
                    "{alg} {sig:?}: {e}"
                );
            }
        }
    }

    #[test]
    fn dates_must_be_numbers_and_iat_in_the_past() {
        let mut issuer: IssuerConfig = toml::from_str("issuer = \"x\"").unwrap();
        issuer.leeway_secs = 60;
        let now = UNIX_EPOCH + std::time::Duration::from_secs(1_800_000_000);
        let check = |v: Value| check_claims(v.as_object().unwrap(), &issuer, now);
        let t = 1_800_000_000_i64;
        assert!(check(serde_json::json!({"exp": t + 600, "iat": t - 10})).is_ok());
        assert!(check(serde_json::json!({"exp": t + 600, "iat": t + 59})).is_ok());
        let e = check(serde_json::json!({"exp": t + 600, "iat": t + 86_400})).unwrap_err();
        assert_eq!(e.reason(), Reason::TokenNotYetValid, "{e}");
        for claim in ["exp", "nbf", "iat"] {
            let mut c = serde_json::json!({"exp": t + 600});
            c[claim] = serde_json::json!("yesterday");
            let e = check(c).unwrap_err();
            assert_eq!(e.reason(), Reason::TokenMalformed, "{claim}: {e}");
            assert!(e.to_string().contains(claim), "{e}");
        }
    }

    #[test]
    fn alg_names_are_exact() {
        assert_eq!(Alg::parse("RS256"), Some(Alg::RS256));
        assert_eq!(Alg::parse("rs256"), None);
        assert_eq!(Alg::parse("none"), None);
        assert_eq!(Alg::parse("HS256"), None);
    }

    #[test]
    fn audience_rules() {
        let auds = vec!["app".to_string()];
        let m = |v: Value| v.as_object().unwrap().clone();
        assert!(check_audience(&m(serde_json::json!({"aud": "app"})), &auds).is_ok());
        assert!(check_audience(&m(serde_json::json!({"aud": ["x", "app"]})), &auds).is_ok());
        assert!(check_audience(&m(serde_json::json!({"client_id": "app"})), &auds).is_ok());
        // `aud` present but wrong: client_id does not rescue it.
        assert!(
            check_audience(
                &m(serde_json::json!({"aud": "x", "client_id": "app"})),
                &auds
            )
            .is_err()
        );
        assert!(check_audience(&m(serde_json::json!({})), &auds).is_err());
    }
}
