//! The registry's `WWW-Authenticate` challenge, parsed (pure).
//!
//! Distribution answers an unauthenticated read with `401` and either `Bearer
//! realm="…",service="…",scope="…"` (the token flow: fetch a token from the realm with
//! basic credentials, then retry with it) or `Basic realm="…"`. The client in `client.rs`
//! acts on what this returns; nothing here does I/O or sees a credential.

/// What a registry asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Challenge {
    /// The distribution token flow.
    Bearer {
        /// The token service URL, as the registry named it.
        realm: String,
        /// `service=` to pass on, if given.
        service: Option<String>,
        /// `scope=` to pass on, if given.
        scope: Option<String>,
    },
    /// Plain basic authentication.
    Basic,
}

/// Parses one `WWW-Authenticate` value; None for a scheme we do not speak or a Bearer
/// challenge without a realm.
pub(crate) fn parse(header: &str) -> Option<Challenge> {
    let header = header.trim();
    let (scheme, rest) = header.split_once(' ').unwrap_or((header, ""));
    if scheme.eq_ignore_ascii_case("basic") {
        return Some(Challenge::Basic);
    }
    if !scheme.eq_ignore_ascii_case("bearer") {
        return None;
    }
    let params = params(rest);
    let get = |name: &str| {
        params
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.clone())
    };
    Some(Challenge::Bearer {
        realm: get("realm").filter(|r| !r.is_empty())?,
        service: get("service"),
        scope: get("scope"),
    })
}

/// `k=v` and `k="v, with \"quotes\""` pairs separated by commas.
fn params(mut rest: &str) -> Vec<(String, String)> {
    let mut out = Vec::new();
    loop {
        rest = rest.trim_start_matches([' ', ',', '\t']);
        let Some((key, after)) = rest.split_once('=') else {
            return out;
        };
        let key = key.trim().to_owned();
        let after = after.trim_start();
        let (value, next) = if let Some(quoted) = after.strip_prefix('"') {
            let mut value = String::new();
            let mut chars = quoted.char_indices();
            let mut end = quoted.len();
            while let Some((i, c)) = chars.next() {
                match c {
                    '\\' => {
                        if let Some((_, escaped)) = chars.next() {
                            value.push(escaped);
                        }
                    }
                    '"' => {
                        end = i + 1;
                        break;
                    }
                    c => value.push(c),
                }
            }
            (value, &quoted[end.min(quoted.len())..])
        } else {
            let end = after.find(',').unwrap_or(after.len());
            (after[..end].trim().to_owned(), &after[end..])
        };
        out.push((key, value));
        rest = next;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_distribution_bearer_challenge() {
        let c = parse(
            r#"Bearer realm="https://auth.example/token",service="registry.example",scope="repository:acme/app:pull""#,
        );
        assert_eq!(
            c,
            Some(Challenge::Bearer {
                realm: "https://auth.example/token".into(),
                service: Some("registry.example".into()),
                scope: Some("repository:acme/app:pull".into()),
            })
        );
    }

    #[test]
    fn scopes_with_commas_escapes_and_unquoted_values() {
        let c = parse(
            r#"bearer realm=http://127.0.0.1:9/t, scope="repository:a/b:pull,push", service="s\"q""#,
        );
        assert_eq!(
            c,
            Some(Challenge::Bearer {
                realm: "http://127.0.0.1:9/t".into(),
                service: Some("s\"q".into()),
                scope: Some("repository:a/b:pull,push".into()),
            })
        );
    }

    #[test]
    fn basic_other_schemes_and_missing_realms() {
        assert_eq!(
            parse(r#"Basic realm="Registry Realm""#),
            Some(Challenge::Basic)
        );
        assert_eq!(parse("Negotiate"), None);
        assert_eq!(parse(r#"Bearer service="x""#), None);
        assert_eq!(parse(r#"Bearer realm="""#), None);
        assert_eq!(parse(""), None);
        // An unterminated quote ends the value rather than panicking.
        assert!(matches!(
            parse(r#"Bearer realm="http://x/t"#),
            Some(Challenge::Bearer { .. })
        ));
    }
}
