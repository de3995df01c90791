//! Label selectors as `kubectl -l` takes them (`app=web,tier!=cache`,
//! `env in (prod,staging)`, `!canary`), checked before they reach the API
//! server so a typo stops start-up with a message instead of a watch that
//! fails forever.

/// Checks `s` against the label selector grammar of Kubernetes
/// (apimachinery `labels.Parse`); the error says what is wrong, where.
/// An empty selector selects everything.
pub fn check(s: &str) -> Result<(), String> {
    if s.trim().is_empty() {
        return Ok(());
    }
    for req in split_requirements(s)? {
        requirement(req.trim())?;
    }
    Ok(())
}

/// Splits on the commas that are not inside `( … )`.
fn split_requirements(s: &str) -> Result<Vec<&str>, String> {
    let mut out = Vec::new();
    let mut depth = 0usize;
    let mut start = 0;
    for (i, c) in s.char_indices() {
        match c {
            '(' => depth += 1,
            ')' => {
                depth = depth
                    .checked_sub(1)
                    .ok_or_else(|| format!("unbalanced `)` at character {}", i + 1))?
            }
            ',' if depth == 0 => {
                out.push(&s[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    if depth > 0 {
        return Err("a `(` is never closed".into());
    }
    out.push(&s[start..]);
    Ok(out)
}

fn requirement(r: &str) -> Result<(), String> {
    if r.is_empty() {
        return Err("an empty requirement (two commas in a row, or a trailing comma)".into());
    }
    if let Some(key) = r.strip_prefix('!') {
        return label_key(key.trim());
    }
    for op in ["==", "!=", "=", ">", "<"] {
        if let Some((k, v)) = r.split_once(op) {
            label_key(k.trim())?;
            let v = v.trim();
            if op == ">" || op == "<" {
                return v
                    .parse::<i64>()
                    .map(|_| ())
                    .map_err(|_| format!("`{op}` needs a whole number, not {v:?}"));
            }
            return label_value(v);
        }
    }
    let mut words = r.splitn(2, char::is_whitespace);
    let key = words.next().unwrap_or_default();
    let rest = words.next().unwrap_or_default().trim();
    label_key(key)?;
    if rest.is_empty() {
        return Ok(()); // `key`: the label exists
    }
    let (op, set) = rest
        .split_once(|c: char| c.is_whitespace() || c == '(')
        .map(|(op, _)| (op, &rest[op.len()..]))
        .unwrap_or((rest, ""));
    if op != "in" && op != "notin" {
        return Err(format!(
            "{op:?} after {key:?} is not an operator (use =, ==, !=, in, notin, or !key)"
        ));
    }
    let set = set.trim();
    let inner = set
        .strip_prefix('(')
        .and_then(|s| s.strip_suffix(')'))
        .ok_or_else(|| format!("`{op}` needs a list in parentheses, e.g. {key} {op} (a,b)"))?;
    for v in inner.split(',') {
        label_value(v.trim())?;
    }
    Ok(())
}

/// `[prefix/]name`: prefix a DNS subdomain, name at most 63 characters.
fn label_key(k: &str) -> Result<(), String> {
    let (prefix, name) = match k.split_once('/') {
        Some((p, n)) => (Some(p), n),
        None => (None, k),
    };
    if let Some(p) = prefix {
        let ok = !p.is_empty()
            && p.len() <= 253
            && p.split('.').all(|l| {
                !l.is_empty()
                    && l.bytes()
                        .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
                    && !l.starts_with('-')
                    && !l.ends_with('-')
            });
        if !ok {
            return Err(format!("{p:?} is not a DNS prefix of a label key"));
        }
    }
    if name.is_empty() {
        return Err(format!("{k:?} is missing a label key"));
    }
    if !is_name(name) {
        return Err(format!(
            "{k:?} is not a label key (at most 63 letters, digits, '-', '_', '.', starting and ending with a letter or digit)"
        ));
    }
    Ok(())
}

fn label_value(v: &str) -> Result<(), String> {
    if v.is_empty() || is_name(v) {
        Ok(())
    } else {
        Err(format!(
            "{v:?} is not a label value (at most 63 letters, digits, '-', '_', '.', starting and ending with a letter or digit)"
        ))
    }
}

fn is_name(s: &str) -> bool {
    let alnum = |c: u8| c.is_ascii_alphanumeric();
    s.len() <= 63
        && s.bytes()
            .all(|b| alnum(b) || b == b'-' || b == b'_' || b == b'.')
        && s.bytes().next().is_some_and(alnum)
        && s.bytes().last().is_some_and(alnum)
}

#[cfg(test)]
mod tests {
    use super::check;

    #[test]
    fn kubectl_selectors_pass() {
        for s in [
            "",
            "app=web",
            "app==web,tier!=cache",
            "app",
            "!canary",
            "env in (prod, staging)",
            "env notin (dev),app=web",
            "app.kubernetes.io/name=imagedrift",
            "replicas>2",
            "a=",
        ] {
            assert_eq!(check(s), Ok(()), "{s}");
        }
    }

    #[test]
    fn typos_are_named() {
        let cases = [
            ("app=web,", "empty requirement"),
            ("app=we b", "\"we b\" is not a label value"),
            ("env in prod", "needs a list in parentheses"),
            ("env in (prod", "never closed"),
            ("env is prod", "\"is\" after \"env\" is not an operator"),
            ("App_/x=1", "not a DNS prefix"),
            ("-app=1", "\"-app\" is not a label key"),
            ("replicas>two", "needs a whole number"),
        ];
        for (s, want) in cases {
            let e = check(s).unwrap_err();
            assert!(e.contains(want), "{s}: {e}");
        }
    }
}
