//! Just enough of the STIX patterning language to pull out the observables that
//! indicators name: comparisons like `[ipv4-addr:value = '192.0.2.1']`, joined by
//! `AND`/`OR`/`FOLLOWEDBY`, with qualifiers ignored. What a pattern *means* (sequences,
//! time windows, negation) is not modelled: botwatch wants the addresses, names and hashes.

/// One `<object-type>:<path> <op> <value>` comparison.
#[derive(Debug, Clone, PartialEq)]
pub(super) struct Comparison {
    pub object: String,
    pub path: String,
    pub op: String,
    pub negated: bool,
    pub values: Vec<String>,
}

#[derive(Debug, Clone, PartialEq)]
enum Tok {
    Open,
    Close,
    LParen,
    RParen,
    Comma,
    Str(String),
    Op(String),
    Word(String),
}

fn lex(p: &str) -> Result<Vec<Tok>, String> {
    let chars: Vec<char> = p.chars().collect();
    let mut out = Vec::new();
    let mut i = 0;
    let string = |i: &mut usize| -> Result<String, String> {
        // At the opening quote.
        let mut s = String::new();
        *i += 1;
        while let Some(&c) = chars.get(*i) {
            match c {
                '\\' => {
                    let next = chars.get(*i + 1).ok_or("pattern ends inside a string")?;
                    s.push(*next);
                    *i += 2;
                }
                '\'' => {
                    *i += 1;
                    return Ok(s);
                }
                c => {
                    s.push(c);
                    *i += 1;
                }
            }
        }
        Err("unterminated string in pattern".to_string())
    };
    while let Some(&c) = chars.get(i) {
        match c {
            c if c.is_whitespace() => i += 1,
            '[' => {
                out.push(Tok::Open);
                i += 1
            }
            ']' => {
                out.push(Tok::Close);
                i += 1
            }
            '(' => {
                out.push(Tok::LParen);
                i += 1
            }
            ')' => {
                out.push(Tok::RParen);
                i += 1
            }
            ',' => {
                out.push(Tok::Comma);
                i += 1
            }
            '\'' => out.push(Tok::Str(string(&mut i)?)),
            // Typed literals: t'…' (timestamp), b'…' (base64), h'…' (hex).
            't' | 'b' | 'h' if chars.get(i + 1) == Some(&'\'') => {
                i += 1;
                out.push(Tok::Str(string(&mut i)?));
            }
            '=' | '!' | '<' | '>' => {
                let mut op = c.to_string();
                i += 1;
                if chars.get(i) == Some(&'=') {
                    op.push('=');
                    i += 1;
                }
                if op == "!" {
                    return Err("'!' without '='".into());
                }
                out.push(Tok::Op(op));
            }
            c if c.is_alphanumeric() || c == '_' || c == '-' => {
                let mut w = String::new();
                while let Some(&c) = chars.get(i) {
                    if c.is_alphanumeric() || matches!(c, '_' | '-' | ':' | '.' | '*') {
                        w.push(c);
                        i += 1;
                        // A quoted path segment: hashes.'SHA-256'.
                        if c == '.' && chars.get(i) == Some(&'\'') {
                            w.push('\'');
                            w.push_str(&string(&mut i)?);
                            w.push('\'');
                        }
                    } else if c == '[' && w.contains(':') {
                        // A list index inside a path: body_multipart[*].
                        let end =
                            chars[i..].iter().position(|&x| x == ']').ok_or("unterminated index in path")?;
                        w.extend(&chars[i..=i + end]);
                        i += end + 1;
                    } else {
                        break;
                    }
                }
                out.push(Tok::Word(w));
            }
            other => return Err(format!("unexpected character {other:?} in pattern")),
        }
    }
    Ok(out)
}

/// Every comparison in the pattern, in order.
pub(super) fn comparisons(pattern: &str) -> Result<Vec<Comparison>, String> {
    let toks = lex(pattern)?;
    if !toks.contains(&Tok::Open) {
        return Err("no observation expression ('[…]')".into());
    }
    let depth = toks.iter().try_fold(0i32, |d, t| {
        let d = match t {
            Tok::Open => d + 1,
            Tok::Close => d - 1,
            _ => d,
        };
        (d >= 0).then_some(d)
    });
    if depth != Some(0) {
        return Err("unbalanced brackets".into());
    }
    let mut out = Vec::new();
    let mut i = 0;
    while i < toks.len() {
        let Tok::Word(w) = &toks[i] else {
            i += 1;
            continue;
        };
        let Some((object, path)) = w.split_once(':') else {
            i += 1;
            continue;
        };
        let mut j = i + 1;
        let negated = matches!(toks.get(j), Some(Tok::Word(n)) if n.eq_ignore_ascii_case("NOT"));
        if negated {
            j += 1;
        }
        let op = match toks.get(j) {
            Some(Tok::Op(o)) => o.clone(),
            Some(Tok::Word(o)) => o.to_ascii_uppercase(),
            _ => return Err(format!("comparison on {w} has no operator")),
        };
        j += 1;
        let mut values = Vec::new();
        match toks.get(j) {
            Some(Tok::Str(s)) => {
                values.push(s.clone());
                j += 1;
            }
            Some(Tok::Word(n)) => {
                values.push(n.clone());
                j += 1;
            }
            Some(Tok::LParen) => {
                j += 1;
                while let Some(t) = toks.get(j) {
                    j += 1;
                    match t {
                        Tok::Str(s) | Tok::Word(s) => values.push(s.clone()),
                        Tok::Comma => {}
                        Tok::RParen => break,
                        _ => return Err(format!("unexpected token in the value list of {w}")),
                    }
                }
            }
            _ => return Err(format!("comparison on {w} has no value")),
        }
        out.push(Comparison { object: object.to_string(), path: path.to_string(), op, negated, values });
        i = j;
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn simple_and_compound_patterns() {
        let c = comparisons("[ipv4-addr:value = '10.0.0.0']").unwrap();
        assert_eq!(c[0].object, "ipv4-addr");
        assert_eq!(c[0].values, vec!["10.0.0.0"]);
        let c = comparisons("[file:hashes.'SHA-256' = 'ab' OR file:hashes.MD5 = 'cd'] AND [domain-name:value IN ('a.example', 'b.example')] WITHIN 10 SECONDS").unwrap();
        assert_eq!(c.len(), 3);
        assert_eq!(c[0].path, "hashes.'SHA-256'");
        assert_eq!(c[2].op, "IN");
        assert_eq!(c[2].values.len(), 2);
        let c = comparisons(
            r"[email-message:body_multipart[*].body_raw_ref.name MATCHES '^Final Report.+\\.exe$']",
        )
        .unwrap();
        assert_eq!(c[0].op, "MATCHES");
        assert_eq!(c[0].values[0], r"^Final Report.+\.exe$");
        let c = comparisons("[url:value NOT = 'it\\'s']").unwrap();
        assert!(c[0].negated);
        assert_eq!(c[0].values[0], "it's");
    }

    #[test]
    fn broken_patterns_are_errors() {
        for p in [
            "",
            "ipv4-addr:value = '1'",
            "[ipv4-addr:value = '1'",
            "[ipv4-addr:value = '1]",
            "[ipv4-addr:value]",
            "[x:y ! 'a']",
            "[x:y = ]",
        ] {
            assert!(comparisons(p).is_err(), "{p}");
        }
    }
}
