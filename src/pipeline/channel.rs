//! A bounded channel between a source task and a direction's run loop, bounded by
//! items and by weight (rows), so a large transaction's fragments and thousands of
//! small transactions both fit in bounded memory. It carries the source's error too:
//! a failing source ends the run loop with that error, never with a silent end.

use super::{Item, Source};
use crate::error::Error;
use std::sync::Arc;
use tokio::sync::{mpsc, Semaphore};

pub struct Sender<T> {
    tx: mpsc::Sender<(Result<T, Error>, u32)>,
    weight: Arc<Semaphore>,
    max_weight: usize,
}

pub struct Receiver<T> {
    rx: mpsc::Receiver<(Result<T, Error>, u32)>,
    weight: Arc<Semaphore>,
}

/// A channel holding at most `items` items and `max_weight` weight (an item heavier
/// than that alone still passes, alone).
pub fn channel<T: Item>(items: usize, max_weight: usize) -> (Sender<T>, Receiver<T>) {
    let (tx, rx) = mpsc::channel(items);
    let weight = Arc::new(Semaphore::new(max_weight));
    (
        Sender {
            tx,
            weight: weight.clone(),
            max_weight,
        },
        Receiver { rx, weight },
    )
}

impl<T: Item> Sender<T> {
    /// Sends one item, waiting for room; `false` when the receiver is gone.
    pub async fn send(&self, item: T) -> bool {
        let n = item.weight().clamp(1, self.max_weight) as u32;
        match self.weight.acquire_many(n).await {
            Ok(p) => p.forget(),
            Err(_) => return false,
        }
        self.tx.send((Ok(item), n)).await.is_ok()
    }

    /// Moves every item of `source` into the channel until the source ends, fails
    /// (the error is passed on) or the receiver is gone.
    pub async fn pump<S: Source<Item = T>>(self, mut source: S) {
        loop {
            match source.next().await {
                Ok(Some(item)) => {
                    if !self.send(item).await {
                        return;
                    }
                }
                Ok(None) => return,
                Err(e) => {
                    let _ = self.tx.send((Err(e), 0)).await;
                    return;
                }
            }
        }
    }
}

impl<T: Item> Source for Receiver<T> {
    type Item = T;

    async fn next(&mut self) -> Result<Option<T>, Error> {
        match self.rx.recv().await {
            Some((r, n)) => {
                self.weight.add_permits(n as usize);
                r.map(Some)
            }
            None => Ok(None),
        }
    }

    fn has_ready(&mut self) -> bool {
        !self.rx.is_empty()
    }
}
