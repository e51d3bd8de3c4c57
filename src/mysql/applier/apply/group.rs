//! Group commit: complete origin transactions share one target transaction while the applier is behind; one marker, one position write and one commit per group.

use super::*;

/// A group commits when it holds this many origin transactions,
pub(super) const GROUP_MAX_TXS: usize = 1_000;
/// or this many applied rows,
pub(super) const GROUP_MAX_ROWS: u64 = 20_000;
/// or has been open this long (locks are held until the commit).
pub(super) const GROUP_MAX_AGE: std::time::Duration = std::time::Duration::from_millis(200);

impl Applier {
    /// Like [`Applier::apply`], but a complete origin transaction may stay uncommitted in
    /// the open target transaction, grouped with the next ones (group commit: one
    /// commit and one position write for many small origin transactions). The caller
    /// calls [`Applier::flush`] as soon as no further transaction is at hand, so a
    /// group only forms while the applier is behind; it also commits by itself at
    /// `GROUP_MAX_TXS` transactions, `GROUP_MAX_ROWS` rows or `GROUP_MAX_AGE`.
    /// Exactly once holds as before: the group's rows and the position of its last
    /// transaction commit together, or none of them do.
    ///
    /// Within a group, the rows of transactions that touch only batchable tables
    /// (inserts and key-preserving updates) are kept and applied together at the next
    /// transaction that is not, or at the commit: per table in multi-row statements
    /// (see `apply_deferred`).
    pub async fn apply_grouped(&mut self, origin: &str, tx: Transaction) -> Result<Outcome, Error> {
        let tx = match self.merge_replaces(tx).await {
            Ok(tx) => tx,
            Err(e) => {
                self.abort().await;
                return Err(e);
            }
        };
        let r = match self.apply_inner(origin, &tx, true).await {
            Ok(Step::Done(o)) => Ok(o),
            Ok(Step::Defer) => self.defer(origin, tx).await,
            Err(e) => Err(e),
        };
        if r.is_err() {
            self.abort().await;
        }
        r
    }

    /// Adds a complete transaction whose rows all wait for the group's batches.
    pub(super) async fn defer(&mut self, origin: &str, tx: Transaction) -> Result<Outcome, Error> {
        self.join_group(origin, &tx);
        let g = self.group.as_mut().expect("joined");
        g.deferred_rows += tx.changes.len();
        g.deferred.push(tx);
        if self.group_full() {
            self.flush().await?;
            return Ok(Outcome::Applied { committed: true });
        }
        Ok(Outcome::Applied { committed: false })
    }

    /// Applies the rows still waiting in the open group and commits it, if any.
    pub async fn flush(&mut self) -> Result<(), Error> {
        if self.group.is_none() {
            return Ok(());
        }
        let r = match self.apply_deferred().await {
            Ok(()) => {
                let g = self.group.take().expect("checked above");
                self.commit_group(&g).await.map(|()| g)
            }
            Err(e) => Err(e),
        };
        match r {
            Ok(g) => {
                self.group_committed(g);
                Ok(())
            }
            Err(e) => {
                self.abort().await;
                Err(e)
            }
        }
    }

    /// Records the complete origin transaction `tx` in the open group (opening one).
    pub(super) fn join_group(&mut self, origin: &str, tx: &Transaction) {
        let cp = tx.checkpoint.clone().expect("last fragment has a checkpoint");
        self.partial = false;
        self.applied.insert(origin.to_string(), cp.gtid.clone());
        let g = self.group.get_or_insert_with(|| Group {
            origin: origin.to_string(),
            started: std::time::Instant::now(),
            txs: Vec::new(),
            deferred: Vec::new(),
            deferred_rows: 0,
        });
        g.txs.push(Pending {
            gtid: tx.gtid.as_ref().map(|g| g.to_string()),
            commit_ts_us: tx.commit_ts_us,
            cp,
            transport: self.transport_position.clone(),
            counted: self.counting,
        });
    }

    pub(super) fn group_full(&self) -> bool {
        let applied = self.stats.rows - self.rows_reported;
        self.group.as_ref().is_some_and(|g| {
            g.txs.len() >= GROUP_MAX_TXS
                || applied + g.deferred_rows as u64 >= GROUP_MAX_ROWS
                || g.started.elapsed() >= GROUP_MAX_AGE
        })
    }

    /// Rolls back the open target transaction, group included.
    pub(super) async fn abort(&mut self) {
        self.uncommitted = Uncounted::default();
        self.rollback().await;
        self.skipping = None;
        self.group = None;
        self.partial = false;
    }

    /// Writes the position of the group's last transaction and commits.
    pub(super) async fn commit_group(&mut self, g: &Group) -> Result<(), Error> {
        let last = g.txs.last().expect("a group holds a transaction");
        self.write_position_and_commit(&g.origin, last, g.counted()).await
    }

    /// Metrics and status after a group of origin transactions committed here.
    pub(super) fn group_committed(&mut self, g: Group) {
        let d = self.direction(&g.origin);
        d.metrics.commits.increment(1);
        let u = std::mem::take(&mut self.uncommitted);
        d.metrics.batched_rows.increment(u.batched_rows);
        d.metrics.loaded_rows.increment(u.loaded_rows);
        d.metrics.id_range_violations.increment(u.id_range_violations);
        for (table, kind, resolution) in u.conflicts {
            metrics::counter!(m::CONFLICTS, "from_zone" => g.origin.clone(), "to_zone" => self.s.zone.clone(), "kind" => kind.clone())
                .increment(1);
            self.conflict_log.add((g.origin.clone(), table, kind, resolution), 1);
        }
        self.log_conflicts_if_due();
        self.stats.transactions += g.counted();
        d.metrics.applied_transactions.increment(g.counted());
        d.metrics.applied_rows.increment(self.stats.rows - self.rows_reported);
        self.rows_reported = self.stats.rows;
        for p in &g.txs {
            if p.commit_ts_us > 0 {
                d.observe_lag(p.commit_ts_us);
            }
        }
        let Some(last) = g.txs.into_iter().last() else {
            return;
        };
        d.metrics.applied_commit_ts.set(last.commit_ts_us as f64 / 1e6);
        Self::report_position(&d, &last.cp, &last.transport);
        let (stats, last) = (&self.stats, last.gtid);
        d.update(|st| {
            st.transactions = stats.transactions;
            st.rows = stats.rows;
            st.conflicts = stats.conflicts;
            st.last_gtid = last;
            st.state = "applying".into();
        });
    }
}

/// One log line per (origin, table, kind, resolution) with its count; a misrouted
/// write (a key outside its origin's ID range) is a warning.
pub(super) fn log_conflicts(summary: std::collections::BTreeMap<(String, String, String, String), u64>) {
    for ((origin, table, kind, resolution), count) in summary {
        if kind == "id_out_of_range" {
            tracing::warn!(
                origin,
                table,
                kind,
                resolution,
                count,
                "conflicts: misrouted writes, zone {origin} wrote keys outside its ID range (detail in drc.conflicts)"
            );
        } else {
            tracing::info!(
                origin,
                table,
                kind,
                resolution,
                count,
                "conflicts (detail in drc.conflicts)"
            );
        }
    }
}

impl Group {
    /// Origin transactions of the group that count as applied (journal ones do not).
    fn counted(&self) -> u64 {
        self.txs.iter().filter(|p| p.counted).count() as u64
    }
}
