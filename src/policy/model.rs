//! What authzd reads from a Casbin model before any line: the request's
//! fields (and its attributes), whether the effect is one casbin-rs
//! implements, and how many fields each policy type takes.

use casbin::{DefaultModel, Model};

use super::Field;

/// The effects casbin-rs implements; any other makes its enforce panic, so it is refused at load.
const EFFECTS: [&str; 4] = [
    "some(where (p_eft == allow))",
    "!some(where (p_eft == deny))",
    "some(where (p_eft == allow)) && !some(where (p_eft == deny))",
    "priority(p_eft) || deny",
];

/// The request definition's fields, and the names of its attributes (the
/// fields beyond `sub`, `dom`, `obj` and `act`), in order.
pub(super) fn request_fields(model: &DefaultModel) -> Result<(Vec<Field>, Vec<String>), String> {
    if let Some(e) = model.get_model().get("e").and_then(|m| m.get("e"))
        && !EFFECTS.contains(&e.value.as_str())
    {
        return Err(format!(
            "policy effect `{}` is not one casbin-rs supports (allow-override, deny-override, allow-and-deny, priority)",
            e.value.replace("p_eft", "p.eft")
        ));
    }
    for (sec, name) in [
        ("p", "policy_definition"),
        ("e", "policy_effect"),
        ("m", "matchers"),
    ] {
        if model
            .get_model()
            .get(sec)
            .and_then(|m| m.get(sec))
            .is_none()
        {
            return Err(format!("no `[{name}]` `{sec}` section"));
        }
    }
    let r = model
        .get_model()
        .get("r")
        .and_then(|m| m.get("r"))
        .ok_or("no `[request_definition]` `r`")?;
    let mut fields = Vec::new();
    let mut attributes: Vec<String> = Vec::new();
    for token in &r.tokens {
        let name = token.strip_prefix("r_").unwrap_or(token);
        let f = match name {
            "sub" => Field::Sub,
            "dom" => Field::Dom,
            "obj" => Field::Obj,
            "act" => Field::Act,
            other => {
                if attributes.iter().any(|a| a == other) {
                    return Err(format!("request field `{name}` appears twice"));
                }
                attributes.push(other.to_string());
                Field::Attr(attributes.len() - 1)
            }
        };
        if fields.contains(&f) {
            return Err(format!("request field `{name}` appears twice"));
        }
        fields.push(f);
    }
    for need in [Field::Sub, Field::Obj, Field::Act] {
        if !fields.contains(&need) {
            let has: Vec<String> = r
                .tokens
                .iter()
                .map(|t| format!("`{}`", t.strip_prefix("r_").unwrap_or(t)))
                .collect();
            return Err(format!(
                "request definition must have `sub`, `obj` and `act` (missing {need:?}); it has {} (fields beyond `sub`, `dom`, `obj` and `act` are attributes, filled from `[policy.attributes]`)",
                has.join(", ")
            ));
        }
    }
    Ok((fields, attributes))
}

/// Number of fields each policy type (`p`, `p2`, `g`, `g2`…) takes.
pub(super) fn arities(model: &DefaultModel) -> Vec<(String, usize)> {
    let mut out = Vec::new();
    for sec in ["p", "g"] {
        if let Some(m) = model.get_model().get(sec) {
            for (ptype, ast) in m {
                let n = if sec == "g" {
                    ast.value.matches('_').count()
                } else {
                    ast.tokens.len()
                };
                out.push((ptype.clone(), n));
            }
        }
    }
    out
}
