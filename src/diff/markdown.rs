//! `authzd diff`'s Markdown table, to paste into a pull request. Every
//! cell that holds text from a policy, a config or a request is escaped,
//! so no value can end its cell, start a new one, or format itself
//! (`|`, backticks, line breaks, emphasis, links, HTML).

use super::{Flip, NOBODY, Report, Side};

/// `s` as the text of one table cell.
pub fn cell(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 8);
    for c in s.chars() {
        match c {
            '\\' | '`' | '*' | '_' | '[' | ']' | '~' | '#' | '!' | '{' | '}' | '(' | ')' | '+'
            | '-' | '.' => {
                out.push('\\');
                out.push(c);
            }
            '|' => out.push_str("\\|"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '&' => out.push_str("&amp;"),
            '\r' | '\n' => out.push(' '),
            c if c.is_control() => out.push('\u{fffd}'),
            c => out.push(c),
        }
    }
    out
}

fn side(s: &Side) -> String {
    let verdict = if s.allowed { "allow" } else { "deny" };
    match s.matched_policy.is_empty() {
        true => format!("{verdict} ({})", cell(s.reason)),
        false => format!("{verdict} by {}", cell(&s.matched_policy.join(", "))),
    }
}

fn request(f: &Flip) -> String {
    let r = match (&f.method, &f.path, &f.resource, &f.action) {
        (Some(m), Some(p), _, _) => cell(&format!("{m} {p}")),
        (_, _, Some(res), Some(a)) => format!("{} on {}", cell(a), cell(res)),
        _ => String::new(),
    };
    let r = match &f.domain {
        Some(d) => format!("{r} in {}", cell(d)),
        None => r,
    };
    match f.claims.is_empty() {
        true => r,
        false => {
            let claims: Vec<String> = f
                .claims
                .iter()
                .map(|(k, v)| format!("{}={}", cell(k), cell(v)))
                .collect();
            format!("{r} with {}", claims.join(", "))
        }
    }
}

/// The report as a Markdown table.
pub fn markdown(r: &Report) -> String {
    let mut out = format!(
        "**{} newly allowed, {} newly denied** ({} principals × {} requests compared)\n\n",
        r.summary.newly_allowed, r.summary.newly_denied, r.summary.principals, r.summary.requests
    );
    if r.flips.is_empty() {
        out.push_str("No decision changes.\n");
        return out;
    }
    out.push_str(
        "| change | subject | claim roles | request | before | after |\n|---|---|---|---|---|---|\n",
    );
    for f in &r.flips {
        let subject = match f.subject == NOBODY {
            true => "any user".to_string(),
            false => cell(&f.subject),
        };
        out.push_str(&format!(
            "| {} | {subject} | {} | {} | {} | {} |\n",
            if f.after.allowed {
                "**newly allowed**"
            } else {
                "newly denied"
            },
            cell(&f.roles.join(", ")),
            request(f),
            side(&f.before),
            side(&f.after),
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn no_value_can_leave_its_cell() {
        for hostile in [
            "a | newly denied | ok",
            "`x` | y",
            "line\nbreak | z",
            "**bold** _it_ [link](http://x) <b>",
            "\\| escaped already",
        ] {
            let c = cell(hostile);
            // Every `|` is escaped, nothing starts a line or a code span.
            let unescaped = c
                .char_indices()
                .filter(|&(i, ch)| {
                    (ch == '|' || ch == '`') && (i == 0 || c.as_bytes()[i - 1] != b'\\')
                })
                .count();
            assert_eq!(unescaped, 0, "{hostile:?} → {c:?}");
            assert!(!c.contains('\n') && !c.contains('<'), "{c:?}");
        }
    }
}
