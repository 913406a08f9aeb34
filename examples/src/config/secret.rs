//! Secret values: `${ENV_VAR}` references expanded when the file is read, shown as `<redacted>` everywhere.

use std::fmt;

use serde::{Deserialize, Deserializer};

/// A value that may hold a secret (a password, a database URL): read from the environment through `${NAME}`
/// references, never printed.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    /// The value itself, for the one place that needs it.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("<redacted>")
    }
}

impl<'de> Deserialize<'de> for Secret {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Secret, D::Error> {
        let text = String::deserialize(d)?;
        expand(&text, |name| std::env::var(name).ok())
            .map(Secret)
            .map_err(serde::de::Error::custom)
    }
}

/// Replaces every `${NAME}` with the variable's value; `$$` is a literal `$`. An unset variable is an error
/// naming it (never its would-be value).
fn expand(text: &str, var: impl Fn(&str) -> Option<String>) -> Result<String, String> {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(i) = rest.find('$') {
        out.push_str(&rest[..i]);
        let after = &rest[i + 1..];
        if let Some(tail) = after.strip_prefix('$') {
            out.push('$');
            rest = tail;
        } else if let Some(tail) = after.strip_prefix('{') {
            let end = tail
                .find('}')
                .ok_or_else(|| "an unclosed `${` (write `${NAME}`, or `$$` for a `$`)".to_string())?;
            let name = &tail[..end];
            if name.is_empty() || !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
                return Err(format!(
                    "`${{{name}}}` is not a variable name (letters, digits, `_`)"
                ));
            }
            let value = var(name).ok_or_else(|| {
                format!("the environment variable {name} is not set; export it before running connect-ops")
            })?;
            out.push_str(&value);
            rest = &tail[end + 1..];
        } else {
            out.push('$');
            rest = after;
        }
    }
    out.push_str(rest);
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::expand;

    #[test]
    fn references_expand_and_unset_ones_are_named() {
        let var = |n: &str| (n == "PW").then(|| "s3cret".to_string());
        assert_eq!(expand("${PW}", var).unwrap(), "s3cret");
        assert_eq!(
            expand("postgres://u:${PW}@db/x", var).unwrap(),
            "postgres://u:s3cret@db/x"
        );
        assert_eq!(expand("price $$5 and $x", var).unwrap(), "price $5 and $x");
        let e = expand("${NOPE}", var).unwrap_err();
        assert!(e.contains("NOPE is not set"), "{e}");
        assert!(expand("${bad name}", var).is_err());
        assert!(expand("${PW", var).is_err());
    }
}
