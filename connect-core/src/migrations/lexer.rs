//! Splits migration SQL into statements, blanking what is not a statement of this migration: comments,
//! string literals and dollar-quoted bodies.

/// Splits SQL into statements with their starting line, blanking comments, literals and dollar quotes.
pub(super) fn statements(sql: &str) -> Vec<(usize, String)> {
    let chars: Vec<char> = sql.chars().collect();
    let mut out = Vec::new();
    let mut cur = String::new();
    let mut line = 1;
    let mut start_line = None;
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        let next = chars.get(i + 1).copied();
        if c == '-' && next == Some('-') {
            while i < chars.len() && chars[i] != '\n' {
                i += 1;
            }
            continue;
        }
        if c == '/' && next == Some('*') {
            i += 2;
            while i < chars.len() && !(chars[i] == '*' && chars.get(i + 1) == Some(&'/')) {
                line += usize::from(chars[i] == '\n');
                i += 1;
            }
            i += 2;
            cur.push(' ');
            continue;
        }
        if c == '\'' || c == '"' {
            // Quoted identifiers keep their text (they name tables); string literals are blanked.
            let quote = c;
            // In an escape string (E'…') a backslash takes the next character literally, a quote included:
            // E'it\'s; DROP TABLE x' is one literal, not a literal followed by a statement.
            let escapes = quote == '\'' && escape_string_prefix(&chars, i);
            let mut text = String::new();
            i += 1;
            while i < chars.len() {
                if escapes && chars[i] == '\\' && i + 1 < chars.len() {
                    line += usize::from(chars[i + 1] == '\n');
                    text.push(chars[i + 1]);
                    i += 2;
                    continue;
                }
                if chars[i] == quote {
                    if chars.get(i + 1) == Some(&quote) {
                        text.push(quote);
                        i += 2;
                        continue;
                    }
                    break;
                }
                line += usize::from(chars[i] == '\n');
                text.push(chars[i]);
                i += 1;
            }
            i += 1;
            cur.push_str(if quote == '"' { &text } else { "''" });
            continue;
        }
        if c == '$' {
            // $tag$ … $tag$: a function body, never a statement of this migration.
            let mut j = i + 1;
            while j < chars.len() && (chars[j].is_alphanumeric() || chars[j] == '_') {
                j += 1;
            }
            if chars.get(j) == Some(&'$') {
                let tag: String = chars[i..=j].iter().collect();
                let rest: String = chars[j + 1..].iter().collect();
                let end = rest.find(&tag).map_or(chars.len(), |p| {
                    j + 1 + rest[..p].chars().count() + tag.chars().count()
                });
                line += chars[i..end.min(chars.len())]
                    .iter()
                    .filter(|&&c| c == '\n')
                    .count();
                i = end;
                cur.push_str(" $$ ");
                continue;
            }
        }
        if c == ';' {
            if !cur.trim().is_empty() {
                out.push((start_line.unwrap_or(line), cur.trim().to_string()));
            }
            cur.clear();
            start_line = None;
            i += 1;
            continue;
        }
        if c == '\n' {
            line += 1;
        }
        if start_line.is_none() && !c.is_whitespace() {
            start_line = Some(line);
        }
        cur.push(c);
        i += 1;
    }
    if !cur.trim().is_empty() {
        out.push((start_line.unwrap_or(line), cur.trim().to_string()));
    }
    out
}

/// Whether the quote at `i` opens an escape string: an `E` (or `e`) right before it that is a token of its
/// own, not the end of an identifier such as `type'…'` (which is not valid SQL anyway) or `some_e`.
fn escape_string_prefix(chars: &[char], i: usize) -> bool {
    let ident = |c: char| c.is_alphanumeric() || c == '_' || c == '$';
    i >= 1 && matches!(chars[i - 1], 'E' | 'e') && (i < 2 || !ident(chars[i - 2]))
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::super::lint::{DestructiveKind, lint_sql};
    use super::*;

    fn kinds(sql: &str) -> Vec<DestructiveKind> {
        lint_sql(sql).into_iter().map(|c| c.kind).collect()
    }

    #[test]
    fn an_escaped_quote_does_not_end_an_escape_string() {
        assert!(kinds(r"INSERT INTO t VALUES (E'it\'s; DROP TABLE users; --');").is_empty());
        assert!(kinds(r"INSERT INTO t VALUES (e'\\\'; TRUNCATE users; ');").is_empty());
        assert!(kinds("INSERT INTO t VALUES (E'a''b; DROP TABLE x');").is_empty());
        assert_eq!(statements(r"SELECT E'a\'b;c'; SELECT 2").len(), 2);
    }

    #[test]
    fn a_statement_after_an_escape_string_is_still_seen() {
        // E'\\' is one backslash: the string ends at its second quote.
        assert_eq!(kinds(r"SELECT E'\\'; DROP TABLE x;"), [DestructiveKind::Drop]);
        // Outside E'…' a backslash is an ordinary character (standard_conforming_strings, on since 9.1).
        assert_eq!(
            kinds(r"INSERT INTO t VALUES ('a\'); DROP TABLE y; --');"),
            [DestructiveKind::Drop]
        );
        // An identifier ending in e before a quote is not an escape prefix.
        assert_eq!(statements(r"SELECT some_e'\'; DROP TABLE z").len(), 2);
    }

    #[test]
    fn lines_count_through_escape_strings() {
        let c = lint_sql("INSERT INTO t VALUES (E'a\\\n\\'\nb');\nDROP TABLE x;");
        assert_eq!(c.len(), 1);
        assert_eq!(c[0].line, 4);
    }

    /// Text written into an E'…' literal the way a careful client escapes it.
    fn e_literal(s: &str) -> String {
        format!("E'{}'", s.replace('\\', "\\\\").replace('\'', "\\'"))
    }

    fn std_literal(s: &str) -> String {
        format!("'{}'", s.replace('\'', "''"))
    }

    fn hostile_text() -> impl Strategy<Value = String> {
        proptest::collection::vec(
            prop_oneof![
                Just("'".to_string()),
                Just("\\".to_string()),
                Just(";".to_string()),
                Just("\n".to_string()),
                Just("--".to_string()),
                Just("/*".to_string()),
                Just("$$".to_string()),
                Just("\"".to_string()),
                Just(" DROP TABLE users".to_string()),
                Just(" TRUNCATE x".to_string()),
                Just("E'".to_string()),
                "[a-zA-Z ]{0,5}",
            ],
            0..24,
        )
        .prop_map(|v| v.concat())
    }

    proptest! {
        #[test]
        fn nothing_inside_a_literal_is_a_statement(s in hostile_text(), escape in any::<bool>()) {
            let lit = if escape { e_literal(&s) } else { std_literal(&s) };
            let sql = format!("INSERT INTO notes VALUES ({lit});\nDROP TABLE old;");
            let found = lint_sql(&sql);
            prop_assert_eq!(found.len(), 1, "{} -> {:?}", sql, found);
            prop_assert_eq!(found[0].kind, DestructiveKind::Drop);
            prop_assert_eq!(found[0].statement.as_str(), "DROP TABLE old");
            prop_assert_eq!(found[0].line, 2 + s.matches('\n').count());
            prop_assert_eq!(statements(&sql).len(), 2);
        }
    }
}
