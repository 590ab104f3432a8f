//! Source files and errors that point into them.
//!
//! Every file a user writes (manifests, behaviours, policies) is loaded as a [`SourceFile`];
//! every problem found in it becomes a [`Located`] diagnostic naming the file, line and column
//! and saying what was expected. A [`LoadError`] carries one or more of them, so a user sees all
//! the problems of a file at once, and renders with a source excerpt through `miette`.

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use miette::{Diagnostic, NamedSource, SourceSpan};

/// The text of a file a user wrote, with the name used in error messages.
#[derive(Debug, Clone)]
pub struct SourceFile {
    name: Arc<str>,
    text: Arc<str>,
}

impl SourceFile {
    /// Wraps text that did not come from disk (a test, a taught package, an API call).
    pub fn new(name: impl Into<String>, text: impl Into<String>) -> SourceFile {
        SourceFile {
            name: name.into().into(),
            text: text.into().into(),
        }
    }

    /// Reads a file from disk.
    pub fn read(path: impl AsRef<Path>) -> Result<SourceFile, LoadError> {
        let path = path.as_ref();
        let text = std::fs::read_to_string(path).map_err(|source| LoadError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        Ok(SourceFile::new(path.display().to_string(), text))
    }

    /// The name shown in diagnostics (usually the path).
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The full text.
    pub fn text(&self) -> &str {
        &self.text
    }

    /// Byte offset of a 1-based line and column (columns count characters).
    pub(crate) fn offset(&self, line: usize, column: usize) -> usize {
        let mut offset = 0;
        for (i, l) in self.text.split_inclusive('\n').enumerate() {
            if i + 1 == line {
                let col = l
                    .char_indices()
                    .nth(column.saturating_sub(1))
                    .map_or(l.len(), |(b, _)| b);
                return offset + col;
            }
            offset += l.len();
        }
        self.text.len()
    }

    /// A diagnostic at a 1-based line and column.
    pub fn error_at(&self, line: usize, column: usize, message: impl Into<String>) -> Located {
        Located {
            file: self.name.to_string(),
            line,
            column,
            message: message.into(),
            src: NamedSource::new(&self.name, self.text.to_string()),
            span: Some((self.offset(line, column), 0).into()),
        }
    }

    /// A diagnostic about the file as a whole (reported at line 1, column 1).
    pub fn error(&self, message: impl Into<String>) -> Located {
        let mut e = self.error_at(1, 1, message);
        e.span = None;
        e
    }

    /// A diagnostic at a position a Rhai error or call reports (the file as a whole when the
    /// position is unknown).
    pub(crate) fn error_at_script(
        &self,
        pos: rhai::Position,
        message: impl Into<String>,
    ) -> Located {
        match (pos.line(), pos.position()) {
            (Some(l), c) => self.error_at(l, c.unwrap_or(1), message),
            _ => self.error(message),
        }
    }

    /// Converts a YAML deserialization error into a located diagnostic.
    pub(crate) fn yaml_error(&self, err: &serde_saphyr::Error) -> Located {
        let plain = err.without_snippet();
        let message = yaml_message(plain);
        match plain.location() {
            Some(loc) if loc.line() > 0 => {
                self.error_at(loc.line() as usize, loc.column().max(1) as usize, message)
            }
            _ => self.error(message),
        }
    }

    /// A diagnostic at a `serde_saphyr` location (as captured by `Spanned` values).
    pub(crate) fn error_at_location(
        &self,
        loc: &serde_saphyr::Location,
        message: impl Into<String>,
    ) -> Located {
        if loc.line() == 0 {
            self.error(message)
        } else {
            self.error_at(loc.line() as usize, loc.column().max(1) as usize, message)
        }
    }
}

/// serde-saphyr's messages may end with its own "at line X column Y"; ours adds the location
/// in front, so the tail is cut to keep one location per message.
fn yaml_message(err: &serde_saphyr::Error) -> String {
    let text = err.to_string();
    let first = text.lines().next().unwrap_or("invalid YAML").trim();
    match first.rfind(" at line ") {
        Some(i) => first[..i].to_string(),
        None => first.to_string(),
    }
}

/// One problem in a source file, at a line and column.
///
/// Displays as `file:line:col: message`; through `miette` it also shows the source excerpt.
#[derive(Debug, Clone, thiserror::Error, Diagnostic)]
#[error("{file}:{line}:{column}: {message}")]
pub struct Located {
    file: String,
    line: usize,
    column: usize,
    message: String,
    #[source_code]
    src: NamedSource<String>,
    #[label("here")]
    span: Option<SourceSpan>,
}

impl Located {
    /// The file name.
    pub fn file(&self) -> &str {
        &self.file
    }
    /// The 1-based line.
    pub fn line(&self) -> usize {
        self.line
    }
    /// The 1-based column.
    pub fn column(&self) -> usize {
        self.column
    }
    /// What is wrong, without the location.
    pub fn message(&self) -> &str {
        &self.message
    }
}

/// A file that could not be loaded: unreadable, or with one or more located problems.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    /// The file could not be read.
    #[error("cannot read {}", path.display())]
    Read {
        /// The path that was tried.
        path: PathBuf,
        /// Why reading failed.
        #[source]
        source: std::io::Error,
    },
    /// The file was read but has problems; there is at least one.
    #[error("{}", Problems(.0))]
    Invalid(Vec<Located>),
}

impl LoadError {
    /// The located problems (empty for a read error).
    pub fn problems(&self) -> &[Located] {
        match self {
            LoadError::Read { .. } => &[],
            LoadError::Invalid(p) => p,
        }
    }
}

impl From<Located> for LoadError {
    fn from(l: Located) -> LoadError {
        LoadError::Invalid(vec![l])
    }
}

impl Diagnostic for LoadError {
    fn related<'a>(&'a self) -> Option<Box<dyn Iterator<Item = &'a dyn Diagnostic> + 'a>> {
        match self {
            LoadError::Invalid(p) if p.len() > 1 => {
                Some(Box::new(p.iter().skip(1).map(|l| l as &dyn Diagnostic)))
            }
            _ => None,
        }
    }
    fn source_code(&self) -> Option<&dyn miette::SourceCode> {
        self.problems().first().and_then(|l| l.source_code())
    }
    fn labels(&self) -> Option<Box<dyn Iterator<Item = miette::LabeledSpan> + '_>> {
        self.problems().first().and_then(|l| l.labels())
    }
}

struct Problems<'a>(&'a [Located]);

impl fmt::Display for Problems<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, p) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str("\n")?;
            }
            write!(f, "{p}")?;
        }
        Ok(())
    }
}

/// Reads YAML the way every selflet file is read: YAML 1.2's core schema, so that only
/// `true` and `false` are booleans — `n`, `no`, `on` and `off` stay strings, as they do for
/// the JSON Schemas and the editors that use them.
pub fn from_yaml<'de, T: serde::Deserialize<'de>>(
    text: &'de str,
) -> Result<T, serde_saphyr::Error> {
    let options = serde_saphyr::options! { strict_booleans: true };
    serde_saphyr::from_str_with_options(text, options)
}

/// A YAML map read in document order, keeping where each key was written.
#[derive(Debug, Clone)]
pub(crate) struct Ordered<T>(pub(crate) Vec<(serde_saphyr::Spanned<String>, T)>);

impl<T> Default for Ordered<T> {
    fn default() -> Self {
        Ordered(Vec::new())
    }
}

impl<'de, T: serde::Deserialize<'de>> serde::Deserialize<'de> for Ordered<T> {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V<T>(std::marker::PhantomData<T>);
        impl<'de, T: serde::Deserialize<'de>> serde::de::Visitor<'de> for V<T> {
            type Value = Ordered<T>;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a map")
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(
                self,
                mut map: A,
            ) -> Result<Ordered<T>, A::Error> {
                let mut out = Vec::new();
                while let Some(entry) = map.next_entry()? {
                    out.push(entry);
                }
                Ok(Ordered(out))
            }
        }
        d.deserialize_map(V(std::marker::PhantomData))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn offsets_count_characters_within_a_line() {
        let f = SourceFile::new("t", "ab\nçd: x\n");
        assert_eq!(f.offset(1, 1), 0);
        assert_eq!(f.offset(2, 1), 3);
        assert_eq!(f.offset(2, 2), 5); // 'ç' is two bytes
        assert_eq!(f.offset(9, 1), f.text().len());
    }

    #[test]
    fn located_displays_file_line_column() {
        let f = SourceFile::new("a.yaml", "x: 1\n");
        let e = f.error_at(1, 4, "expected a string");
        assert_eq!(e.to_string(), "a.yaml:1:4: expected a string");
    }
}
