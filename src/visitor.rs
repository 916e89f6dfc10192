//! The visitor identifier the storefront sends.

use std::fmt;

/// Longest accepted visitor id, in bytes.
pub const MAX_VISITOR_ID_LEN: usize = 256;

/// A non-empty visitor id of at most [`MAX_VISITOR_ID_LEN`] bytes with no
/// control characters.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct VisitorId(String);

impl VisitorId {
    pub fn parse(s: &str) -> Result<Self, String> {
        Self::parse_owned(s.to_owned())
    }

    /// [`VisitorId::parse`] keeping the string it was given.
    pub fn parse_owned(s: String) -> Result<Self, String> {
        if s.is_empty() {
            return Err("visitor_id is empty; send the storefront's stable id for this visitor".into());
        }
        if s.len() > MAX_VISITOR_ID_LEN {
            return Err(format!("visitor_id is {} bytes long; at most {MAX_VISITOR_ID_LEN} are accepted", s.len()));
        }
        if s.chars().any(char::is_control) {
            return Err("visitor_id contains control characters; send a printable id".into());
        }
        Ok(VisitorId(s))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    pub fn into_string(self) -> String {
        self.0
    }
}

impl fmt::Display for VisitorId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}
