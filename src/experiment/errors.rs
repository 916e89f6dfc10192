//! What a refused folder says: every problem as `file:line: what is
//! wrong; how to fix it`, collected per file with byte spans turned into
//! lines.

use std::fmt;
use std::ops::Range;

#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct ValidationError {
    pub file: String,
    pub line: Option<usize>,
    pub message: String,
}

impl fmt::Display for ValidationError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.line {
            Some(line) => write!(f, "{}:{}: {}", self.file, line, self.message),
            None => write!(f, "{}: {}", self.file, self.message),
        }
    }
}

/// Every problem found in a folder.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[serde(transparent)]
pub struct ValidationErrors(pub Vec<ValidationError>);

impl fmt::Display for ValidationErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, e) in self.0.iter().enumerate() {
            if i > 0 {
                writeln!(f)?;
            }
            write!(f, "{e}")?;
        }
        Ok(())
    }
}

impl std::error::Error for ValidationErrors {}

/// Collects the errors of one file, turning byte spans into line numbers.
pub(super) struct FileErrors<'a> {
    pub(super) file: &'a str,
    pub(super) text: &'a str,
    pub(super) errors: Vec<ValidationError>,
}

impl<'a> FileErrors<'a> {
    pub(super) fn new(file: &'a str, text: &'a str) -> Self {
        FileErrors { file, text, errors: Vec::new() }
    }

    pub(super) fn line_of(&self, span: Range<usize>) -> Option<usize> {
        // A span of 0..0 marks a defaulted field that is not in the file.
        (span.end > 0).then(|| self.text[..span.start.min(self.text.len())].matches('\n').count() + 1)
    }

    pub(super) fn at(&mut self, span: Range<usize>, message: impl Into<String>) {
        let line = self.line_of(span);
        self.errors.push(ValidationError { file: self.file.to_owned(), line, message: message.into() });
    }

    pub(super) fn whole(&mut self, message: impl Into<String>) {
        self.at(0..0, message);
    }

    pub(super) fn toml(&mut self, e: toml::de::Error) {
        let mut message = e.message().trim().to_owned();
        if message.starts_with("unknown field") {
            message.push_str("; remove it or correct its spelling");
        } else if message.starts_with("unknown variant") {
            message.push_str("; use one of the listed values");
        } else if message.starts_with("missing field") {
            message.push_str("; add it");
        }
        // An error without a place (a missing top-level field) is about the
        // top-level table, which starts at line 1.
        let line = e.span().and_then(|span| self.line_of(span)).or(Some(1));
        self.errors.push(ValidationError { file: self.file.to_owned(), line, message });
    }

    pub(super) fn finish<T>(self, value: T) -> Result<T, Vec<ValidationError>> {
        if self.errors.is_empty() {
            Ok(value)
        } else {
            Err(self.errors)
        }
    }
}
