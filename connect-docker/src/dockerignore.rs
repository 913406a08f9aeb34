//! `.dockerignore` as Docker reads it (moby's `patternmatcher`), which is not `.gitignore`: a pattern is
//! relative to the context's root at any depth it names (`*.md` is the root's only, `**/*.md` every
//! directory's), a pattern that matches a directory matches everything below it, `!` re-includes, and the
//! last pattern that matches a path or one of its parents decides. Lines are trimmed, `#` starts a comment,
//! and each pattern is cleaned (`./a//b/` is `a/b`, a leading `/` is dropped). The globs are `globset`'s with
//! `*` and `?` stopping at `/`, as Go's `filepath.Match` does, and `**` as any number of directories.

use globset::{Glob, GlobBuilder, GlobMatcher};

/// The rules of one `.dockerignore`.
#[derive(Debug, Clone, Default)]
pub(crate) struct DockerIgnore {
    /// Each pattern, and whether it excludes (`false`: a `!` exception).
    rules: Vec<(GlobMatcher, bool)>,
}

impl DockerIgnore {
    /// Parses the file's text; an invalid glob is an error naming it.
    pub(crate) fn parse(text: &str) -> Result<DockerIgnore, globset::Error> {
        let mut rules = Vec::new();
        for line in text.lines() {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let (pattern, excludes) = match line.strip_prefix('!') {
                Some(rest) => (rest.trim(), false),
                None => (line, true),
            };
            let pattern = clean(pattern);
            if pattern.is_empty() {
                continue;
            }
            rules.push((glob(&pattern)?.compile_matcher(), excludes));
        }
        Ok(DockerIgnore { rules })
    }

    /// Whether the context leaves out `path` (relative, `/`-separated).
    pub(crate) fn excludes(&self, path: &str) -> bool {
        let mut excluded = false;
        for (glob, excludes) in &self.rules {
            let parent_matches = path.match_indices('/').any(|(i, _)| glob.is_match(&path[..i]));
            if glob.is_match(path) || parent_matches {
                excluded = *excludes;
            }
        }
        excluded
    }

    /// Whether some `!` pattern may bring back a path below an excluded directory, which must then be read.
    pub(crate) fn has_exceptions(&self) -> bool {
        self.rules.iter().any(|(_, excludes)| !excludes)
    }
}

fn glob(pattern: &str) -> Result<Glob, globset::Error> {
    GlobBuilder::new(pattern)
        .literal_separator(true)
        .backslash_escape(true)
        .build()
}

/// Go's `filepath.Clean` on a pattern, without its leading `/`.
fn clean(pattern: &str) -> String {
    let mut parts: Vec<&str> = Vec::new();
    for part in pattern.split('/') {
        match part {
            "" | "." => {}
            ".." => {
                parts.pop();
            }
            _ => parts.push(part),
        }
    }
    parts.join("/")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ignore(text: &str) -> DockerIgnore {
        DockerIgnore::parse(text).expect("patterns")
    }

    #[test]
    fn patterns_are_rooted_unless_they_say_any_depth() {
        let i = ignore("*.md\n# a comment\n\n/build/\n./tmp//x\n");
        assert!(i.excludes("README.md"));
        assert!(
            !i.excludes("docs/README.md"),
            "unlike .gitignore, *.md is the root's only"
        );
        assert!(i.excludes("build") && i.excludes("build/out/app"));
        assert!(i.excludes("tmp/x"));
        assert!(!i.excludes("src/build"));
        let any = ignore("**/*.md");
        assert!(any.excludes("README.md") && any.excludes("docs/a/README.md"));
    }

    #[test]
    fn star_stops_at_a_slash_and_the_last_match_wins() {
        let i = ignore("docs/*\n!docs/keep.txt\n");
        assert!(i.excludes("docs/a.txt"));
        assert!(!i.excludes("docs/keep.txt"));
        assert!(
            i.excludes("docs/sub/deep.txt"),
            "docs/sub matches docs/*, so all below it"
        );
        assert!(i.has_exceptions());
        let again = ignore("!docs/keep.txt\ndocs\n");
        assert!(again.excludes("docs/keep.txt"), "the later pattern decides");
        assert!(!ignore("a?c").excludes("a/c"));
        assert!(!ignore("node_modules").has_exceptions());
    }

    #[test]
    fn a_bad_glob_is_an_error() {
        assert!(DockerIgnore::parse("[unclosed").is_err());
    }
}
