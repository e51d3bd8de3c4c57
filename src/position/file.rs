//! `FilePos`: a binlog file and a byte offset, ordered the way the server rotates files.

use super::ParseError;
use serde::{Deserialize, Serialize};
use std::{cmp::Ordering, fmt, str::FromStr};

/// A binlog file name and the offset of an event boundary in it.
///
/// Text form: `zone-a-bin.000003:1234`. Positions order by the file's numeric suffix,
/// then by offset, which is the order the server writes them in.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct FilePos {
    pub file: String,
    pub pos: u64,
}

impl FilePos {
    pub fn new(file: impl Into<String>, pos: u64) -> Self {
        FilePos { file: file.into(), pos }
    }

    /// The numeric suffix of the file name (`.000003` → 3), if it has one.
    pub fn file_index(&self) -> Option<u64> {
        self.file.rsplit_once('.').and_then(|(_, n)| n.parse().ok())
    }
}

impl PartialOrd for FilePos {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for FilePos {
    fn cmp(&self, other: &Self) -> Ordering {
        let key = |p: &FilePos| (p.file.rsplit_once('.').map(|(b, _)| b.to_string()), p.file_index());
        key(self)
            .cmp(&key(other))
            .then_with(|| self.file.cmp(&other.file))
            .then(self.pos.cmp(&other.pos))
    }
}

impl fmt::Display for FilePos {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.file, self.pos)
    }
}

impl FromStr for FilePos {
    type Err = ParseError;
    fn from_str(s: &str) -> Result<Self, ParseError> {
        let (file, pos) = s
            .rsplit_once(':')
            .ok_or_else(|| ParseError::new("file position", s, "expected FILE:OFFSET"))?;
        if file.is_empty() {
            return Err(ParseError::new("file position", s, "empty file name"));
        }
        let pos = pos
            .parse()
            .map_err(|_| ParseError::new("file position", s, "offset is not a number"))?;
        Ok(FilePos::new(file, pos))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn orders_by_file_number_then_offset() {
        let a: FilePos = "bin.000009:900".parse().unwrap();
        let b: FilePos = "bin.000010:4".parse().unwrap();
        let c: FilePos = "bin.000010:5".parse().unwrap();
        assert!(a < b && b < c);
        assert!("bin.000010".parse::<FilePos>().is_err());
        assert!(":4".parse::<FilePos>().is_err());
    }

    proptest! {
        #[test]
        fn roundtrip(n in 0u64..1_000_000, pos in any::<u64>()) {
            let p = FilePos::new(format!("mysql-bin.{n:06}"), pos);
            prop_assert_eq!(p.to_string().parse::<FilePos>().unwrap(), p);
        }
    }
}
