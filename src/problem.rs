//! Located problems: every error in a suite points at file:line:col and shows the line.

use std::fmt;
use std::ops::Range;
use std::path::{Path, PathBuf};

/// One thing wrong with the suite, pointing at the text that causes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    pub file: PathBuf,
    /// 1-based line and column; 0 when the problem concerns the whole file.
    pub line: usize,
    pub col: usize,
    pub message: String,
    /// The offending source line and the width of the part to underline.
    pub snippet: Option<(String, usize)>,
    pub hint: Option<String>,
}

impl Problem {
    /// A problem about a whole file (missing, unreadable, empty).
    pub fn file(file: &Path, message: impl Into<String>) -> Self {
        Problem {
            file: file.to_path_buf(),
            line: 0,
            col: 0,
            message: message.into(),
            snippet: None,
            hint: None,
        }
    }

    /// A problem at a byte range of `source`. A range that is off the text or splits a
    /// character is moved to the character it is in, so a location can never panic.
    pub fn at(file: &Path, source: &str, span: Range<usize>, message: impl Into<String>) -> Self {
        let start = char_start(source, span.start);
        let line_start = source[..start].rfind('\n').map_or(0, |i| i + 1);
        let line_end = source[start..]
            .find('\n')
            .map_or(source.len(), |i| start + i);
        let line_text = source[line_start..line_end].trim_end_matches('\r');
        let line = source[..start].matches('\n').count() + 1;
        let col = source[line_start..start].chars().count() + 1;
        let end = char_start(source, span.end.clamp(start, line_end));
        let width = source[start..end].chars().count().max(1);
        Problem {
            file: file.to_path_buf(),
            line,
            col,
            message: message.into(),
            snippet: Some((line_text.to_string(), width)),
            hint: None,
        }
    }

    pub fn with_hint(mut self, hint: impl Into<String>) -> Self {
        self.hint = Some(hint.into());
        self
    }

    /// `file:line:col`, or just the file for whole-file problems.
    pub fn location(&self) -> String {
        if self.line == 0 {
            self.file.display().to_string()
        } else {
            format!("{}:{}:{}", self.file.display(), self.line, self.col)
        }
    }
}

impl fmt::Display for Problem {
    /// Drawn like rustc: message, location, the line with the offending part underlined, hint.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "error: {}", self.message)?;
        let gutter = if self.line == 0 {
            String::new()
        } else {
            self.line.to_string()
        };
        let pad = " ".repeat(gutter.len());
        write!(f, "{pad}--> {}", self.location())?;
        if let Some((text, width)) = &self.snippet {
            write!(f, "\n{pad} |\n{gutter} | {text}\n{pad} | ")?;
            write!(f, "{}{}", " ".repeat(self.col - 1), "^".repeat(*width))?;
        }
        if let Some(hint) = &self.hint {
            write!(f, "\n{pad} = help: {hint}")?;
        }
        Ok(())
    }
}

/// The start of the character at byte `at` of `text` (its end when `at` is past it).
fn char_start(text: &str, at: usize) -> usize {
    let mut at = at.min(text.len());
    while !text.is_char_boundary(at) {
        at -= 1;
    }
    at
}

/// The closest candidate to a misspelt name, for "did you mean" hints.
pub fn did_you_mean<'a>(
    name: &str,
    candidates: impl IntoIterator<Item = &'a str>,
) -> Option<String> {
    candidates
        .into_iter()
        .map(|c| (strsim::jaro_winkler(name, c), c))
        .filter(|(score, _)| *score > 0.8)
        .max_by(|a, b| a.0.total_cmp(&b.0))
        .map(|(_, c)| format!("did you mean `{c}`?"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn points_at_line_and_column() {
        let src = "a = 1\npath = \"/x/{{ nope }}\"\n";
        let at = src.find("nope").unwrap();
        let p = Problem::at(Path::new("f.toml"), src, at..at + 4, "unknown name `nope`");
        assert_eq!((p.line, p.col), (2, 15));
        let text = p.to_string();
        assert!(text.contains(" --> f.toml:2:15"), "{text}");
        assert!(text.contains("2 | path = \"/x/{{ nope }}\""), "{text}");
        assert!(text.contains("\n  |               ^^^^"), "{text}");
    }

    #[test]
    fn ranges_off_the_text_or_inside_a_character_do_not_panic() {
        let src = "a = \"é€\"\n";
        #[allow(clippy::reversed_empty_ranges)]
        for span in [5..6, 6..8, 7..100, 100..200, 3..2] {
            let p = Problem::at(Path::new("f.toml"), src, span.clone(), "x");
            assert!(p.line >= 1 && p.col >= 1, "{span:?}: {p:?}");
        }
        let p = Problem::at(Path::new("f.toml"), src, 6..7, "x");
        assert_eq!((p.line, p.col), (1, 6), "inside `é`: at `é`");
    }

    #[test]
    fn suggests_near_misses() {
        assert_eq!(
            did_you_mean("methd", ["name", "method", "path"]),
            Some("did you mean `method`?".into())
        );
        assert_eq!(did_you_mean("zzz", ["name", "method"]), None);
    }
}
