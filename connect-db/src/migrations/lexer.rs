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
            let mut text = String::new();
            i += 1;
            while i < chars.len() {
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
