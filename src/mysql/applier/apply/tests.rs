//! Unit tests of the applier's pure parts.
