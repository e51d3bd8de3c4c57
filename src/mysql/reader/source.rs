//! The binlog reader as a pipeline [`Source`]: committed transaction fragments of
//! the server, in commit order.

use super::live::LiveReader;
use crate::error::Error;
use crate::model::Transaction;
use crate::pipeline::Source;
use std::collections::VecDeque;

pub struct BinlogSource {
    reader: LiveReader,
    ready: VecDeque<Transaction>,
}

impl BinlogSource {
    pub fn new(reader: LiveReader) -> BinlogSource {
        BinlogSource {
            reader,
            ready: VecDeque::new(),
        }
    }

    /// The position right after everything read so far.
    pub fn reader(&self) -> &LiveReader {
        &self.reader
    }
}

impl Source for BinlogSource {
    type Item = Transaction;

    async fn next(&mut self) -> Result<Option<Transaction>, Error> {
        while self.ready.is_empty() {
            // cancel-safe: a batch is only lost if `LiveReader::next` is dropped
            // mid-read, which then re-reads from its own resume point
            self.ready.extend(self.reader.next().await?);
        }
        Ok(self.ready.pop_front())
    }

    fn has_ready(&mut self) -> bool {
        !self.ready.is_empty()
    }
}
